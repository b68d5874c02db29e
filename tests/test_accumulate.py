"""Running sums and products (``engine.reduce.accumulate``): NumPy's steps in NumPy's order,
so NumPy's bits, whichever route runs; and the gradients of ``cumsum``/``cumprod`` through
them, zeros included."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule.engine import reduce as R

SHAPES = [  # (shape, axis): many slices (the stepped route) and few (NumPy's own loop)
    ((2000, 20), 1),
    ((20, 2000), 0),
    ((600, 3), -1),
    ((4, 300, 5), 1),
    ((8, 4), 1),
    ((5000,), 0),
]


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.complex128])
@pytest.mark.parametrize(("shape", "axis"), SHAPES)
@pytest.mark.parametrize("ufunc", [numpy.add, numpy.multiply], ids=["cumsum", "cumprod"])
def test_accumulate_has_numpys_bits(ufunc, shape, axis, dtype):
    rng = numpy.random.default_rng(len(shape) * 10 + axis % 7)
    x = (rng.random(shape) + 0.5).astype(dtype)
    if dtype == numpy.complex128:
        x = x + 1j * rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[::97] = numpy.nan  # NaN, inf and zeros run through as in NumPy
    flat[5::89] = numpy.inf
    flat[7::83] = 0.0
    view = numpy.swapaxes(x, 0, -1)  # not contiguous
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf * 0: both warn, both NaN
        numpy.testing.assert_array_equal(R.accumulate(ufunc, x, axis), ufunc.accumulate(x, axis))
        numpy.testing.assert_array_equal(
            R.accumulate(ufunc, view, axis), ufunc.accumulate(view, axis=axis)
        )


def test_the_stepped_route_is_taken_where_slices_are_many(monkeypatch):
    # the route must be the one under test above: count the ufunc calls it makes
    calls = []

    class Counting:
        def __init__(self, uf):
            self.uf = uf

        def __call__(self, *a, **k):
            calls.append(1)
            return self.uf(*a, **k)

        def accumulate(self, *a, **k):
            calls.append("numpy")
            return self.uf.accumulate(*a, **k)

    x = numpy.random.default_rng(1).random((2000, 20))
    R.accumulate(Counting(numpy.multiply), x, 1)
    assert calls == [1] * 19
    calls.clear()
    R.accumulate(Counting(numpy.multiply), x[:8], 1)
    assert calls == ["numpy"]


@pytest.mark.parametrize("zeros", [0, 1, 3])
def test_cumprod_gradient_with_and_without_zeros(zeros):
    rng = numpy.random.default_rng(zeros)
    x = rng.random((600, 6)) + 0.5
    for r in range(zeros):  # a zero in some rows, two in others
        x[r::7, (2 * r) % 6] = 0.0
    w = rng.standard_normal((600, 6))

    def f(x):
        return (numpy.cumprod(x, axis=1) * w).sum()

    g = cr.grad(f)(x)
    # by hand: d/dx[i] sum_j w[j] prod_{k<=j} x[k] = sum_{j>=i} w[j] prod_{k<=j, k!=i} x[k]
    want = numpy.zeros_like(x)
    for i in range(6):
        others = x.copy()
        others[:, i] = 1.0
        prods = numpy.cumprod(others, axis=1)
        want[:, i] = (w[:, i:] * prods[:, i:]).sum(axis=1)
    numpy.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)
    jitted = cr.jit(cr.grad(f))(x)
    numpy.testing.assert_allclose(jitted, want, rtol=1e-12, atol=1e-12)


def test_cumsum_gradient_and_values_through_the_stepped_route():
    rng = numpy.random.default_rng(4)
    x, w = rng.standard_normal((1000, 9)), rng.standard_normal((1000, 9))
    value, g = cr.value_and_grad(lambda x: (numpy.cumsum(x, axis=1) * w).sum())(x)
    assert value == (numpy.cumsum(x, axis=1) * w).sum()  # the forward's bits are NumPy's
    numpy.testing.assert_allclose(g, numpy.cumsum(w[:, ::-1], axis=1)[:, ::-1], rtol=1e-13)
