"""numpy.sort on tensors: the values NumPy gives, and a gradient that follows the stable order
(engine.primitives.sorting_order takes NumPy's faster default argsort where that is the same)."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule.engine.primitives import sorting_order

RNG = numpy.random.default_rng(11)


def _cases():
    ties = RNG.integers(-3, 4, (6, 7, 5)).astype(numpy.float64)  # many ties
    distinct = RNG.standard_normal((6, 7, 5))
    nan = distinct.copy()
    nan[2, 3, 1] = nan[4, 0, 0] = numpy.nan
    zeros = numpy.where(RNG.random((6, 7, 5)) < 0.5, 0.0, -0.0)  # ties by comparison only
    one_nan = distinct.copy()
    one_nan[0, 0, 0] = numpy.nan
    cplx = ties + 1j * RNG.integers(0, 2, (6, 7, 5))
    return {
        "ties": ties,
        "distinct": distinct,
        "float32": distinct.astype(numpy.float32),
        "nan": nan,
        "one_nan": one_nan,
        "signed_zeros": zeros,
        "complex": cplx,
        "int": ties.astype(numpy.int64),
    }


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_sorting_order_is_the_stable_argsort(case, axis):
    x = _cases()[case]
    want = numpy.argsort(x, axis=axis, kind="stable")
    numpy.testing.assert_array_equal(sorting_order(x, axis), want)
    view = x.transpose(2, 0, 1)[:, ::2]  # not contiguous
    want = numpy.argsort(view, axis=axis, kind="stable")
    numpy.testing.assert_array_equal(sorting_order(view, axis), want)


def test_sorting_order_of_short_axes():
    for x, axis in ((numpy.array(3.0), 0), (numpy.ones((4, 1)), 1), (numpy.ones((1, 4)), 0)):
        want = numpy.argsort(x, axis=axis, kind="stable")
        numpy.testing.assert_array_equal(sorting_order(x, axis), want)


def test_the_gradient_of_sort_with_ties_follows_the_stable_order():
    x = numpy.array([2.0, 1.0, 2.0, 1.0])
    weights = numpy.array([1.0, 10.0, 100.0, 1000.0])
    g = cr.grad(lambda v: (numpy.sort(v) * weights).sum())(x)
    # stable order of x: 1 (x[1]), 1 (x[3]), 2 (x[0]), 2 (x[2]); by hand
    numpy.testing.assert_array_equal(g, [100.0, 1.0, 1000.0, 10.0])


@pytest.mark.parametrize("kind", [None, "quicksort", "stable", "heapsort"])
def test_sort_gives_numpys_values_for_each_kind(kind):
    x = numpy.where(RNG.random(64) < 0.5, 0.0, -0.0) + (RNG.random(64) < 0.2)
    got = numpy.sort(cr.tensor(x), kind=kind).numpy()
    want = numpy.sort(x, kind=kind)
    numpy.testing.assert_array_equal(got, want)
    assert (numpy.signbit(got) == numpy.signbit(want)).all()


def test_sort_gradient_along_an_axis_matches_finite_differences():
    x = RNG.standard_normal((5, 9))
    w = RNG.standard_normal((5, 9))

    def f(v):
        return (numpy.sort(v, axis=1)[:, :6] * w[:, :6]).sum() + (numpy.sort(v, axis=0) ** 2).sum()

    g = cr.grad(f)(x)
    h = 1e-6
    fd = numpy.zeros_like(x)
    for i in numpy.ndindex(x.shape):
        d = numpy.zeros_like(x)
        d[i] = h
        fd[i] = (f(x + d) - f(x - d)) / (2 * h)
    numpy.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_sort_with_stable_true_is_accepted():
    x = numpy.array([3.0, 1.0, 2.0])
    g = cr.grad(lambda v: (numpy.sort(v, stable=True) * numpy.arange(3.0)).sum())(x)
    numpy.testing.assert_array_equal(g, [2.0, 0.0, 1.0])


@pytest.mark.parametrize("case", ["ties", "distinct", "nan"])
def test_jitted_sort_gives_the_eager_bits(case):
    x = _cases()[case][0]  # (7, 5)
    w = RNG.standard_normal((7, 5))

    def f(v):
        return (numpy.sort(v * 1.0, axis=0) * w).sum() + (numpy.sort(v, axis=1)[:, :3] ** 2).sum()

    eager = cr.value_and_grad(f)(x)
    got = cr.jit(cr.value_and_grad(f), backend="numpy")(x)
    numpy.testing.assert_array_equal(got[0], eager[0])
    numpy.testing.assert_array_equal(got[1], eager[1])
