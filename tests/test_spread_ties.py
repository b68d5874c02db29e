"""The gradient of a max or min under jit's NumPy backend (``ir.spread_ties``): the bits of
the eager rule, with ties, NaN extremes, signed zeros, any axes, float32 and float64."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule.engine import primitives as P


def _lse(x, axis, keepdims, reduce):
    m = reduce(x, axis=axis, keepdims=True)
    s = numpy.log(numpy.exp(x - m).sum(axis=axis, keepdims=True)) + m
    return (s if keepdims else s.squeeze(axis)).sum() * 1.5


CASES = [  # (shape, axis, keepdims)
    ((6, 5), 1, True),
    ((6, 5), 0, False),
    ((6, 5), -1, True),
    ((4, 3, 5), (0, 2), True),
    ((4, 3, 5), 1, False),
    ((7,), None, True),
    ((3, 4), None, False),
]


def _inputs(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    tied = x.copy()
    flat = tied.reshape(-1)
    flat[1::3] = flat[0]  # ties in most slices, the extreme among them in some
    flat[2] = flat.max()
    zeros = numpy.zeros(shape, dtype)
    zeros.reshape(-1)[::2] = -0.0  # +0 and -0 compare equal: ties of two signs
    nan = x.copy()
    nan.reshape(-1)[0] = numpy.nan
    coarse = numpy.round(x * 0.7)  # a few whole values: most slices tie at their extreme
    return {"distinct": x, "tied": tied, "coarse": coarse, "zeros": zeros, "nan": nan}


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("reduce", [numpy.max, numpy.min], ids=["max", "min"])
@pytest.mark.parametrize(("shape", "axis", "keepdims"), CASES)
def test_jit_gradient_of_an_extreme_has_the_eager_bits(dtype, reduce, shape, axis, keepdims):
    rng = numpy.random.default_rng(len(shape) + (axis if type(axis) is int else 7))

    def f(x):
        return _lse(x, axis, keepdims, reduce)

    eager = cr.value_and_grad(f)
    step = cr.jit(cr.value_and_grad(f))
    for name, x in _inputs(shape, dtype, rng).items():
        with numpy.errstate(invalid="ignore"):
            v_e, g_e = eager(x)
            v_j, g_j = step(x)
        numpy.testing.assert_array_equal(v_j, v_e, err_msg=name)
        numpy.testing.assert_array_equal(g_j, g_e, err_msg=name)  # NaN where eager has NaN
        assert g_j.dtype == g_e.dtype == dtype
    assert "_spread_ties(" in step.source(x)  # the rewrite took place


def test_ties_share_the_gradient_and_nan_extremes_give_nan():
    # max over rows: row 0 ties two ways, row 1 has one maximum, row 2 a NaN maximum (three
    # places equal to a maximum in three rows, yet not one per row)
    x = numpy.array([[2.0, 2.0, 1.0, 0.0], [0.0, 3.0, 1.0, -1.0], [numpy.nan, 1.0, 0.0, 0.0]])
    step = cr.jit(cr.grad(lambda x: x.max(axis=1).sum()))
    with numpy.errstate(invalid="ignore"):
        g = step(x)
    numpy.testing.assert_array_equal(g[0], [0.5, 0.5, 0, 0])  # by hand
    numpy.testing.assert_array_equal(g[1], [0, 1, 0, 0])
    assert numpy.isnan(g[2]).all()  # 1 / 0 ties * (x == nan): NaN, as the eager rule gives


def test_spread_ties_counts_only_where_needed():
    hit = numpy.array([[True, False], [False, True]])
    m = numpy.array([[1.0], [2.0]])
    g = numpy.array([[3.0], [-4.0]])
    numpy.testing.assert_array_equal(
        P.spread_ties.fun(g, hit, m, axis=(1,), count="int"), [[3.0, 0.0], [-0.0, -4.0]]
    )
    tied = numpy.array([[True, True], [False, True]])
    numpy.testing.assert_array_equal(
        P.spread_ties.fun(g, tied, m, axis=(1,), count="int"), [[1.5, 1.5], [-0.0, -4.0]]
    )


def test_a_product_with_an_unrelated_mask_is_left_alone():
    # g / count(mask) * mask where the mask is not x == max(x): no rewrite, same bits
    def f(x, y):
        mask = x > y
        return (x * (2.0 / mask.sum(axis=1, keepdims=True) * mask)).sum()

    rng = numpy.random.default_rng(5)
    x, y = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    step = cr.jit(cr.value_and_grad(f))
    v, g = step(x, y)
    v_e, g_e = cr.value_and_grad(f)(x, y)
    assert v == v_e
    numpy.testing.assert_array_equal(g, g_e)
    assert "_spread_ties(" not in step.source(x, y)


def test_pooling_windows_keep_the_per_entry_route():
    # 2 x 2 max pooling by two maxes over short axes: the NumPy backend counts ties per window
    # entry (reduce.window_reduce), which is faster there; left as it is, with eager's bits
    def pooled(x):
        p = x.reshape(64, 8, 2, 8, 2).max(axis=4, keepdims=True).max(axis=2, keepdims=True)
        return (p * p).sum()

    x = numpy.random.default_rng(2).standard_normal((64, 16, 16)).astype(numpy.float32)
    step = cr.jit(cr.grad(pooled), backend="numpy")
    numpy.testing.assert_array_equal(step(x), cr.grad(pooled)(x))
    text = step.source(x)
    assert "_spread_ties(" not in text and "_window_reduce(" in text
