"""NumPy functions and arguments that chainrule once refused on tensors that require grad:
NumPy's values (bit for bit where the composition calls NumPy's own operations), gradients
checked against central finite differences, ``jit`` and ``vmap`` agreeing with the eager path,
and a one-line ``TypeError`` for what stays unsupported."""

from __future__ import annotations

import warnings

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr

RNG = numpy.random.default_rng(20240611)


def _same(got, want):
    """The value NumPy gives: shape, dtype and bits (NaNs equal)."""
    got = numpy.asarray(got.data if isinstance(got, cr.Tensor) else got)
    assert got.shape == want.shape and got.dtype == want.dtype
    numpy.testing.assert_array_equal(got, want)


def _check_grad(f, x, atol=1e-6):
    """Eager gradient against finite differences; jit and vmap against the eager one."""
    g = cr.grad(f)(x)
    numpy.testing.assert_allclose(g, fd_grad(lambda v: float(f(v)), x), atol=atol)
    numpy.testing.assert_allclose(cr.jit(cr.grad(f))(x), g, rtol=1e-12, atol=1e-12)
    batch = cr.vmap(cr.grad(f))(numpy.stack([x, x[::-1].copy()]))
    numpy.testing.assert_allclose(batch[0], g, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(batch[1], cr.grad(f)(x[::-1].copy()), rtol=1e-12, atol=1e-12)
    return g


# --- quantiles ----------------------------------------------------------------------------------

METHODS = (
    "inverted_cdf", "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf",
    "hazen", "weibull", "linear", "median_unbiased", "normal_unbiased", "lower", "higher",
    "midpoint", "nearest",
)  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_every_quantile_method_gives_numpys_values(method, dtype):
    x = RNG.standard_normal((4, 5, 3)).astype(dtype)
    xn = x.copy()
    xn.flat[::4] = numpy.nan
    xn[:, -1] = numpy.nan  # all-NaN slices along axis 0 (not the first slice: NumPy's
    # apply_along_axis takes its result dtype from the first slice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "All-NaN slice"
        for q in (0.3, 1, numpy.float32(0.7), [0.0, 0.45, 1.0]):
            for axis in (None, 1, (0, 2), -1):
                for keepdims in (False, True):
                    kw = {"axis": axis, "method": method, "keepdims": keepdims}
                    _same(numpy.quantile(cr.tensor(x), q, **kw), numpy.quantile(x, q, **kw))
                    _same(numpy.nanquantile(cr.tensor(xn), q, **kw), numpy.nanquantile(xn, q, **kw))
                    p = numpy.multiply(q, 100).tolist() if isinstance(q, list) else q
                    _same(numpy.percentile(cr.tensor(x), p, **kw), numpy.percentile(x, p, **kw))
                    _same(
                        numpy.nanpercentile(cr.tensor(xn), p, **kw),
                        numpy.nanpercentile(xn, p, **kw),
                    )


GRAD_METHODS = ("linear", "lower", "nearest", "hazen", "midpoint", "inverted_cdf", "weibull")


@pytest.mark.parametrize("method", GRAD_METHODS + ("averaged_inverted_cdf",))
def test_quantile_gradients_reach_the_order_statistics_read(method):
    x = RNG.standard_normal((5, 6))
    c = numpy.arange(1.0, 11).reshape(2, 5)

    def f(t):
        return (numpy.quantile(t, [0.3, 0.8], axis=1, method=method) * c).sum()

    _check_grad(f, x)
    xn = x.copy()
    xn[1, 2] = xn[3, :4] = numpy.nan

    def fn(t):
        return (numpy.nanpercentile(t, [30, 80], axis=1, method=method) * c).sum()

    g = cr.grad(fn)(xn)
    assert numpy.all(g[numpy.isnan(xn)] == 0)  # NaNs are ignored: no gradient
    numpy.testing.assert_allclose(g, numpy.where(numpy.isnan(xn), 0, fd_grad(fn, xn)), atol=1e-6)
    numpy.testing.assert_array_equal(cr.jit(cr.grad(fn))(xn), g)
    numpy.testing.assert_array_equal(cr.vmap(cr.grad(fn))(numpy.stack([xn, xn]))[1], g)
    # a NaN moved under jit: the counts of each slice follow the values
    moved = numpy.where(numpy.isnan(xn), 0.25, xn)
    moved[0, 0] = numpy.nan
    numpy.testing.assert_array_equal(cr.jit(cr.grad(fn))(moved), cr.grad(fn)(moved))


def test_nanmedian_values_and_gradient():
    x = RNG.standard_normal((6, 5))
    x[0, 1] = x[2, 1] = x[4, 3] = numpy.nan
    x[:, 4] = numpy.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for axis in (None, 0, 1, (0, 1)):
            for keepdims in (False, True):
                want = numpy.nanmedian(x, axis=axis, keepdims=keepdims)
                _same(numpy.nanmedian(cr.tensor(x), axis=axis, keepdims=keepdims), want)

        def f(t):
            return (numpy.nanmedian(t, axis=0)[:4] * numpy.arange(1.0, 5)).sum()

        g = cr.grad(f)(x)
        assert numpy.all(g[numpy.isnan(x)] == 0)
        numpy.testing.assert_allclose(g, numpy.nan_to_num(fd_grad(f, x)), atol=1e-6)
        numpy.testing.assert_array_equal(cr.jit(cr.grad(f))(x), g)
        numpy.testing.assert_array_equal(cr.vmap(cr.grad(f))(numpy.stack([x, x]))[0], g)


def test_median_over_several_axes():
    x = RNG.standard_normal((4, 3, 5))
    _same(numpy.median(cr.tensor(x), axis=(0, 2)), numpy.median(x, axis=(0, 2)))
    _check_grad(lambda t: (numpy.median(t, axis=(0, 2)) ** 2).sum(), x)


def test_quantile_arguments_that_stay_unsupported():
    t = cr.tensor(numpy.arange(5.0), requires_grad=True)
    with pytest.raises(TypeError, match="weights= is not supported"):
        numpy.quantile(t, 0.5, method="inverted_cdf", weights=numpy.ones(5))
    with pytest.raises(ValueError, match="not a valid method"):
        numpy.quantile(t, 0.5, method="cubic")
