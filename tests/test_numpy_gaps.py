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


# --- piecewise ----------------------------------------------------------------------------------


def _pieces(t):
    return numpy.piecewise(t, [t < 0, t >= 0.5], [lambda v: v**2, lambda v: 3 * v, 0.25])


def test_piecewise_values_and_gradient_with_functions_and_constants():
    x = numpy.linspace(-1, 1, 7) + 0.05
    _same(_pieces(cr.tensor(x)), _pieces(x))
    g = _check_grad(lambda t: (_pieces(t) * numpy.arange(1.0, 8)).sum(), x)
    # by hand: 2x (x < 0), 3 (x >= 0.5), 0 (the constant "otherwise"), times the weights
    want = numpy.where(x < 0, 2 * x, numpy.where(x >= 0.5, 3.0, 0.0)) * numpy.arange(1.0, 8)
    numpy.testing.assert_allclose(g, want)

    # one condition given alone, extra arguments passed to the functions
    def f(t):
        return numpy.piecewise(t, t > 0, [lambda v, k: k * v, lambda v, k: -v], 2.0).sum()

    numpy.testing.assert_array_equal(cr.grad(f)(x), numpy.where(x > 0, 2.0, -1.0))


def test_piecewise_refuses_a_function_that_is_not_elementwise_under_jit():
    def f(t):
        return numpy.piecewise(t, [t < 0], [lambda v: v[:2], 1.0])

    with pytest.raises(TypeError, match="elementwise"):
        cr.jit(lambda t: f(t).sum())(numpy.linspace(-1, 1, 4))


# --- writes into a tensor: put, put_along_axis, copyto, fill_diagonal ---------------------------

W = numpy.arange(1.0, 7)


def _put(t):
    u = t * 1
    numpy.put(u, [0, 2, -1], t[:2] * 3)  # values repeated: 3 t0, 3 t1, 3 t0
    return u


def _put_modes(t):
    u = t * 1
    numpy.put(u, [7, -9], t[3:5], mode="wrap")
    numpy.put(u, [40], t[5], mode="clip")
    return u


def _copyto(t):
    u = t * 1
    numpy.copyto(u, t**2, where=t > 0)
    return u


def _copyto_all(t):
    u = numpy.zeros_like(t)
    numpy.copyto(u, t[::-1])
    return u


def _fill_diagonal(t):
    u = numpy.reshape(t, (3, 2)) * 1
    numpy.fill_diagonal(u, t[:2] * 5, wrap=True)
    return u


def _fill_diagonal_3d(t):
    u = numpy.zeros((2, 2, 2)) * t[0]
    numpy.fill_diagonal(u, t[1])
    return u


def _put_along_axis(t):
    u = numpy.reshape(t, (2, 3)) * 1
    numpy.put_along_axis(u, numpy.array([[2], [0]]), t[:2, None] * 7, axis=1)
    return u


WRITES = [
    _put,
    _put_modes,
    _copyto,
    _copyto_all,
    _fill_diagonal,
    _fill_diagonal_3d,
    _put_along_axis,
]


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.__name__)
def test_writes_into_a_tensor_are_recorded(write):
    x = numpy.linspace(-1, 1, 6) + 0.05
    _same(write(cr.tensor(x)), write(x))
    _check_grad(lambda t: (numpy.ravel(write(t)) * numpy.resize(W, write(x).size)).sum(), x)


def test_a_write_of_a_value_that_requires_grad_into_a_plain_array_is_refused():
    v = cr.tensor([1.0, 2.0], requires_grad=True)
    for write in (
        lambda a: numpy.put(a, [0, 1], v),
        lambda a: numpy.copyto(a, v),
        lambda a: numpy.fill_diagonal(a.reshape(2, 2), v),
        lambda a: numpy.put_along_axis(a, numpy.array([0, 1]), v, axis=None),
    ):
        with pytest.raises(TypeError, match="plain NumPy array"):
            write(numpy.zeros(4))
    a = numpy.zeros(4)  # values that need no gradient: NumPy's own write
    numpy.put(a, [1], cr.tensor([5.0]))
    numpy.testing.assert_array_equal(a, [0.0, 5.0, 0.0, 0.0])


def test_copyto_follows_numpys_casting_rule():
    u = cr.tensor(numpy.zeros(3, dtype=numpy.int64))
    with pytest.raises(TypeError, match="same_kind"):
        numpy.copyto(u, cr.tensor([1.5, 2.0, 3.0], requires_grad=True))


# --- reduceat, logaddexp.reduce -----------------------------------------------------------------


@pytest.mark.parametrize("ufunc", [numpy.add, numpy.multiply, numpy.maximum, numpy.minimum])
@pytest.mark.parametrize("indices", [[0, 4, 1, 5, 7], [3], [2, 2, 8]])
def test_reduceat(ufunc, indices):
    x = RNG.standard_normal(9)
    _same(ufunc.reduceat(cr.tensor(x), indices), ufunc.reduceat(x, indices))  # bit for bit
    c = RNG.standard_normal(len(indices))
    _check_grad(lambda t: (ufunc.reduceat(t, indices) * c).sum(), x)
    m = RNG.standard_normal((9, 3))
    for axis, ind in ((0, indices), (1, [0, 2])):
        want = ufunc.reduceat(m, ind, axis=axis)  # to rounding along a leading axis
        numpy.testing.assert_allclose(ufunc.reduceat(cr.tensor(m), ind, axis=axis).data, want)
        c = RNG.standard_normal(want.shape)
        _check_grad(lambda t, ax=axis, i=ind, c=c: (ufunc.reduceat(t, i, axis=ax) * c).sum(), m)


@pytest.mark.parametrize("ufunc", [numpy.logaddexp, numpy.logaddexp2])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"axis": 1},
        {"axis": None},
        {"axis": (0, 1), "keepdims": True},
        {"initial": 0.5},
        {"axis": 1, "where": "mask"},
    ],  # fmt: skip
)
def test_logaddexp_reduce_is_numpys_fold(ufunc, kw):
    x = RNG.standard_normal((5, 4))
    if kw.get("where") == "mask":
        kw = {**kw, "where": numpy.arange(4) % 2 == 0}
    _same(ufunc.reduce(cr.tensor(x), **kw), numpy.asarray(ufunc.reduce(x, **kw)))
    _check_grad(lambda t: (ufunc.reduce(t, **kw) ** 2).sum(), x)


def test_logaddexp_reduce_of_a_long_axis_is_a_logsumexp():
    x = RNG.standard_normal((200, 3))
    for ufunc in (numpy.logaddexp, numpy.logaddexp2):
        numpy.testing.assert_allclose(ufunc.reduce(cr.tensor(x)).data, ufunc.reduce(x), rtol=1e-13)
    g = cr.grad(lambda t: numpy.logaddexp.reduce(t, axis=0).sum())(x)
    numpy.testing.assert_allclose(g, numpy.exp(x - numpy.logaddexp.reduce(x, axis=0)))  # softmax


# --- cov, corrcoef, average with weights --------------------------------------------------------

FW = numpy.array([1, 2, 1, 3, 1, 1, 2])
AW = RNG.random(7) + 0.1


@pytest.mark.parametrize(
    "kw",
    [{"fweights": FW}, {"aweights": AW}, {"fweights": FW, "aweights": AW},
     {"aweights": AW, "ddof": 0}, {"fweights": FW, "bias": True}, {"aweights": AW, "ddof": 3}],
)  # fmt: skip
def test_cov_with_frequency_and_observation_weights(kw):
    x = RNG.standard_normal((3, 7))
    _same(numpy.cov(cr.tensor(x), **kw), numpy.cov(x, **kw))
    _same(numpy.cov(cr.tensor(x.T), rowvar=False, **kw), numpy.cov(x.T, rowvar=False, **kw))
    _check_grad(lambda t: (numpy.cov(t, **kw) ** 2).sum(), x)
    _check_grad(lambda t: numpy.cov(x, **{**kw, "aweights": t}).sum(), AW)


def test_corrcoef_and_the_weight_checks():
    x = RNG.standard_normal((3, 7))
    _same(numpy.corrcoef(cr.tensor(x)), numpy.corrcoef(x))
    t = cr.tensor(x, requires_grad=True)
    with pytest.raises(TypeError, match="fweights must be integer"):
        numpy.cov(t, fweights=FW + 0.5)
    with pytest.raises(ValueError, match="aweights cannot be negative"):
        numpy.cov(t, aweights=-AW)
    with pytest.raises(RuntimeError, match="incompatible numbers of samples"):
        numpy.cov(t, aweights=AW[:3])


@pytest.mark.parametrize("axis", [1, (0, 2), (2, 0), None, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_average_with_weights_along_axes(axis, keepdims):
    a = RNG.standard_normal((4, 5, 3))
    shape = a.shape if axis is None else tuple(a.shape[i] for i in numpy.atleast_1d(axis))
    w = RNG.random(shape) + 0.1
    kw = {"axis": axis, "keepdims": keepdims}
    want = numpy.average(a, weights=w, returned=True, **kw)
    got = numpy.average(cr.tensor(a), weights=w, returned=True, **kw)
    for g_, w_ in zip(got, want):
        _same(g_, w_)
    _check_grad(lambda t: (numpy.average(t, weights=w, **kw) ** 2).sum(), a)
    _check_grad(lambda t: (numpy.average(a, weights=t, **kw) ** 2).sum(), w)
    with pytest.raises(ZeroDivisionError):
        numpy.average(cr.tensor(a), weights=numpy.zeros(shape), **kw)


# --- order='F', where=, initial= ------------------------------------------------------------------


@pytest.mark.parametrize("order", ["F", "A"])
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (24,), (3, 2, 2, 2)])
def test_reshape_in_fortran_order(order, shape):
    y = RNG.standard_normal((2, 3, 4))
    _same(numpy.reshape(cr.tensor(y), shape, order=order), numpy.reshape(y, shape, order=order))
    c = RNG.standard_normal(shape)
    _check_grad(lambda t: (numpy.reshape(t, shape, order=order) * c).sum(), y)


def test_ravel_and_flatten_in_every_order():
    y = RNG.standard_normal((2, 3, 4))
    for order in ("C", "F", "A", "K"):
        _same(cr.tensor(y).ravel(order), y.ravel(order))
        _same(cr.tensor(y).flatten(order), y.flatten(order))
    for data in (numpy.asfortranarray(y), y.transpose(1, 0, 2)):
        for order in ("A", "K"):
            _same(numpy.ravel(cr.tensor(data), order=order), numpy.ravel(data, order=order))
    c = RNG.standard_normal(24)
    _check_grad(lambda t: (t.flatten("F") * c).sum(), y)
    with pytest.raises(ValueError, match="'K' is not permitted"):
        numpy.reshape(cr.tensor(y), (6, 4), order="K")


MASK = numpy.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1], [1, 1, 1, 0, 1], [1, 0, 1, 1, 0]], bool)
REDUCTIONS = {
    "sum": lambda t, m: numpy.sum(t, axis=1, where=m),
    "sum-initial": lambda t, m: numpy.sum(t, axis=0, initial=2.5, where=m),
    "sum-initial-alone": lambda t, m: numpy.sum(t, initial=2.5),
    "prod": lambda t, m: numpy.prod(t, axis=1, where=m, keepdims=True),
    "max": lambda t, m: numpy.max(t, axis=1, where=m, initial=-1.0),
    "max-initial-alone": lambda t, m: numpy.max(t, axis=0, initial=0.2),
    "min": lambda t, m: numpy.min(t, axis=(0, 1), where=m, initial=5.0),
    "mean": lambda t, m: numpy.mean(t, axis=1, where=m),
    "mean-all": lambda t, m: numpy.mean(t, where=m),
    "mean-column-mask": lambda t, m: numpy.mean(t, axis=0, where=m[:, :1]),
    "var": lambda t, m: numpy.var(t, axis=1, where=m, ddof=1),
    "std": lambda t, m: numpy.std(t, axis=0, where=m, keepdims=True),
    "var-given-mean": lambda t, m: numpy.var(t, axis=1, mean=numpy.mean(t, axis=1, keepdims=True)),
    "method-sum": lambda t, m: t.sum(axis=1, where=m),
    "method-max": lambda t, m: t.max(axis=1, where=m, initial=-9.0),
    "method-mean": lambda t, m: t.mean(axis=0, where=m),
    "method-std": lambda t, m: t.std(where=m),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions_with_where_and_initial(name):
    fn = REDUCTIONS[name]
    x = RNG.standard_normal((4, 5))
    want = numpy.asarray(fn(x, MASK))
    got = fn(cr.tensor(x), MASK).data
    assert got.shape == want.shape and got.dtype == want.dtype
    numpy.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)  # sums: to rounding
    g = _check_grad(lambda t: (fn(t, MASK) ** 2).sum(), x)
    if "alone" not in name and "given" not in name:
        assert numpy.all(g[~numpy.broadcast_to(MASK, x.shape) if "column" not in name else
                           ~numpy.broadcast_to(MASK[:, :1], x.shape)] == 0)  # fmt: skip
    # the mask traced too: an input of the compiled function
    numpy.testing.assert_allclose(
        cr.jit(cr.grad(lambda t, m: (fn(t, m) ** 2).sum()))(x, MASK), g, rtol=1e-12
    )


def test_max_with_where_needs_initial_as_in_numpy():
    with pytest.raises(ValueError, match="initial"):
        numpy.max(cr.tensor(numpy.ones(3), requires_grad=True), where=numpy.array([1, 0, 1], bool))


# --- unwrap -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{}, {"discont": 4.0}, {"period": 6.0}, {"axis": 0}, {"period": 1.0, "axis": 1}]
)
def test_unwrap_values_and_gradient(kw):
    x = numpy.cumsum(RNG.standard_normal((4, 6)) * 2.5, axis=1)
    phase = numpy.mod(x, 2 * numpy.pi)
    _same(numpy.unwrap(cr.tensor(phase), **kw), numpy.unwrap(phase, **kw))
    c = RNG.standard_normal(phase.shape)
    g = _check_grad(lambda t: (numpy.unwrap(t, **kw) * c).sum(), phase)
    # by hand: the corrections are constants, so each entry's gradient is its weight
    numpy.testing.assert_array_equal(g, c)


# --- polyfit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("deg, two_d, weighted", [(2, False, False), (3, False, True),
                                                  (2, True, False), (1, True, True)])  # fmt: skip
def test_polyfit_least_squares_in_x_y_and_w(deg, two_d, weighted):
    x = numpy.linspace(0, 2, 9)
    y = numpy.sin(x) + 0.1 * RNG.standard_normal(9)
    if two_d:
        y = numpy.stack([y, y**2], axis=1)
    kw = {"w": RNG.random(9) + 0.5} if weighted else {}
    want = numpy.polyfit(x, y, deg, **kw)
    _same(numpy.polyfit(cr.tensor(x), cr.tensor(y), deg, **kw), want)
    c = RNG.standard_normal(want.shape)
    _check_grad(lambda t: (numpy.polyfit(x, t, deg, **kw) * c).sum(), y)
    _check_grad(lambda t: (numpy.polyfit(t, y, deg, **kw) * c).sum(), x, atol=1e-5)
    if weighted:
        _check_grad(lambda t: (numpy.polyfit(x, y, deg, w=t) * c).sum(), kw["w"])


def test_polyfit_full_output_is_refused_with_what_to_write():
    t = cr.tensor(numpy.arange(5.0), requires_grad=True)
    with pytest.raises(TypeError, match="full= and cov="):
        numpy.polyfit(numpy.arange(5.0), t, 1, full=True)
