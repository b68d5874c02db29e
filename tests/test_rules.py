"""Every gradient rule against central finite differences in float64, first and second order."""

from __future__ import annotations

import warnings

import numpy
import pytest
from op_cases import CASES, FIRST_ORDER_ONLY, NO_GRADIENT

import chainrule as cr

SMOOTH_FIRST_ONLY = FIRST_ORDER_ONLY


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_first_order(case):
    report = cr.check_grads(case.fun, *case.inputs, order=1)
    assert report.passed


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.id not in SMOOTH_FIRST_ONLY],
    ids=[c.id for c in CASES if c.id not in SMOOTH_FIRST_ONLY],
)
def test_second_order(case):
    report = cr.check_grads(case.fun, *case.inputs, order=2)
    assert report.passed


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradient_shape_and_dtype_follow_the_input(case):
    args = [a.astype(numpy.float32) for a in case.inputs]
    scalar = lambda *a: case.fun(*a).sum()  # noqa: E731
    grads = cr.grad(scalar, argnums=tuple(range(len(args))))(*args)
    for a, g in zip(args, grads):
        assert isinstance(g, numpy.ndarray)
        assert g.shape == a.shape
        assert g.dtype == numpy.float32


def test_backward_and_grad_agree():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 2))
    f = lambda x, w: numpy.tanh(x @ w).sum()  # noqa: E731
    t_w = cr.tensor(w, requires_grad=True)
    f(cr.tensor(x), t_w).backward()
    numpy.testing.assert_allclose(t_w.grad, cr.grad(f, argnums=1)(x, w), rtol=1e-14)


@pytest.mark.parametrize("fun", NO_GRADIENT, ids=lambda f: f.__name__)
def test_piecewise_constant_functions_return_plain_arrays(fun):
    t = cr.tensor([[0.3, -1.2], [2.5, 0.7]], requires_grad=True)
    out = fun(t, t) if fun is numpy.greater else fun(t)
    assert not isinstance(out, cr.Tensor)
    expected = fun(t.data, t.data) if fun is numpy.greater else fun(t.data)
    numpy.testing.assert_array_equal(out, expected)


def test_sign_has_zero_gradient():
    g = cr.grad(lambda x: (numpy.sign(x) * x).sum())(numpy.array([-2.0, 3.0]))
    # d/dx sign(x) * x = sign(x) (sign itself contributes nothing)
    numpy.testing.assert_array_equal(g, [-1.0, 1.0])


def test_repeated_advanced_indices_accumulate():
    g = cr.grad(lambda x: x[[0, 0, 2, 0]].sum())(numpy.zeros(3))
    numpy.testing.assert_array_equal(g, [3.0, 0.0, 1.0])


def test_relu_convention_at_zero_matches_pytorch():
    z = numpy.array([-1.0, 0.0, 2.0])
    numpy.testing.assert_array_equal(
        cr.grad(lambda z: numpy.maximum(0, z).sum())(z), [0.0, 0.0, 1.0]
    )


def test_ties_in_maximum_go_to_the_first_argument():
    x = numpy.array([1.0, 2.0])
    y = numpy.array([1.0, 3.0])
    gx, gy = cr.grad(lambda x, y: numpy.maximum(x, y).sum(), argnums=(0, 1))(x, y)
    numpy.testing.assert_array_equal(gx, [1.0, 0.0])
    numpy.testing.assert_array_equal(gy, [0.0, 1.0])
    # maximum(x, x) is x: the gradient must be exactly 1, never 0 or 2.
    numpy.testing.assert_array_equal(cr.grad(lambda x: numpy.maximum(x, x).sum())(x), [1, 1])


def test_ties_in_max_share_the_gradient():
    g = cr.grad(lambda x: numpy.max(x))(numpy.array([3.0, 1.0, 3.0]))
    numpy.testing.assert_array_equal(g, [0.5, 0.0, 0.5])


@pytest.mark.parametrize(
    "shape, axis", [((2, 2), 1), ((2, 6, 4, 2), (2, 3)), ((2, 900, 2, 2), (2, 3))]
)
def test_ties_share_next_to_a_slice_whose_max_is_nan(shape, axis):
    # one slice has no maximum (NaN: no element equals it) and one has two: as many hits as
    # slices in all, yet the tie must still be shared -- per slice, not by the total count
    x = numpy.arange(float(numpy.prod(shape))).reshape(shape)
    nd = len(shape)
    first = (0,) * (nd - 1) + (0,)
    x[first] = numpy.nan
    second = (1,) + (0,) * (nd - 1)
    twin = (1,) + (0,) * (nd - 2) + (1,)
    top = x.max(axis=axis, keepdims=True)[(1,) + (0,) * (nd - 1)]
    x[second] = x[twin] = top + 1.0  # the second slice's maximum, twice
    g = cr.grad(lambda x: numpy.max(x, axis=axis).sum())(x)  # no warning (they are errors)
    assert g[second] == g[twin] == 0.5
    assert numpy.isnan(g[first])  # the slice without a maximum: NaN, not a silent number


def test_abs_and_clip_conventions():
    numpy.testing.assert_array_equal(
        cr.grad(lambda x: numpy.abs(x).sum())(numpy.zeros(2)), [0.0, 0.0]
    )
    g = cr.grad(lambda x: numpy.clip(x, -1.0, 1.0).sum())(numpy.array([-1.0, 0.0, 1.0, 2.0]))
    numpy.testing.assert_array_equal(g, [1.0, 1.0, 1.0, 0.0])


def test_norm_gradient_at_zero_is_zero():
    numpy.testing.assert_array_equal(cr.grad(numpy.linalg.norm)(numpy.zeros(3)), numpy.zeros(3))


def test_kink_is_named_when_a_check_straddles_it():
    with pytest.raises(cr.GradientCheckError) as info:
        cr.check_grads(lambda z: numpy.maximum(0, z).sum(), numpy.array([0.0, 1.0]))
    text = str(info.value)
    assert "z[0]" in text and "kink of numpy.maximum" in text


def test_a_wrong_rule_is_caught_by_the_checker():
    from chainrule.engine import primitives as P

    saved = P.sin.vjps
    try:
        cr.defvjp(P.sin, lambda g, out, x: g * numpy.sin(x))  # deliberately wrong
        with pytest.raises(cr.GradientCheckError) as info:
            cr.check_grads(lambda x: numpy.sin(x).sum(), numpy.array([0.3, 1.1]))
        assert "x[0]" in str(info.value) or "x[1]" in str(info.value)
    finally:
        P.sin.vjps = saved


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize(
    "fname", ["nansum", "nanmean", "nanmax", "nanmin", "nanprod", "nanvar", "nanstd"]
)
def test_nan_functions_give_numpys_values_and_no_gradient_to_nans(fname, dtype):
    # values bit for bit as NumPy's nanfunctions (an all-NaN row included), and the gradient
    # of each NaN entry is 0, of the others finite
    f = getattr(numpy, fname)
    x = numpy.random.default_rng(7).uniform(0.5, 2.0, (4, 5)).astype(dtype)
    x[0, 1] = x[2, 4] = numpy.nan
    x[3] = numpy.nan
    for axis in (None, 0, 1):
        for keepdims in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = f(x, axis=axis, keepdims=keepdims)
                t = cr.tensor(x, requires_grad=True)
                got = f(t, axis=axis, keepdims=keepdims)
                numpy.where(numpy.isnan(got.data), 0.0, got).sum().backward()
            assert got.dtype == want.dtype and got.shape == numpy.shape(want)
            assert numpy.asarray(got.data).tobytes() == numpy.asarray(want).tobytes(), (axis, got)
            assert numpy.all(t.grad[numpy.isnan(x)] == 0)
            assert numpy.all(numpy.isfinite(t.grad))


# NumPy functions chainrule writes as compositions of its primitives: the values must be NumPy's
# own, bit for bit (dtype and shape too), tuples of results included.
_r = numpy.random.default_rng(0)
x = _r.standard_normal((4, 5))
v = _r.standard_normal(5)
x3 = _r.standard_normal((3, 4, 5))
A = _r.standard_normal((3, 3)) * 0.4 + numpy.eye(3)
COMPOSITIONS = [
    ("sinc", lambda t: numpy.sinc(t), [numpy.array([0.0, 0.5, -1.5, 2.0, 1e-30])]),
    (
        "nan_to_num",
        lambda t: numpy.nan_to_num(t),
        [numpy.array([numpy.nan, numpy.inf, -numpy.inf, 1.0])],
    ),
    (
        "nan_to_num-args",
        lambda t: numpy.nan_to_num(t, nan=2.0, posinf=9.0, neginf=-9.0),
        [numpy.array([numpy.nan, numpy.inf, -numpy.inf, 1.0], numpy.float32)],
    ),
    ("rot90", lambda t: numpy.rot90(t), [x]),
    ("rot90-k2", lambda t: numpy.rot90(t, 2), [x]),
    ("rot90-k3-axes", lambda t: numpy.rot90(t, 3, axes=(2, 0)), [x3]),
    ("rot90-neg", lambda t: numpy.rot90(t, -1), [x]),
    ("append", lambda t, u: numpy.append(t, u), [x, v]),
    ("append-axis", lambda t, u: numpy.append(t, u[None], axis=0), [x, v]),
    ("delete", lambda t: numpy.delete(t, [0, 2], axis=1), [x]),
    ("delete-flat", lambda t: numpy.delete(t, slice(1, 7, 2)), [x]),
    ("delete-int", lambda t: numpy.delete(t, -1, 0), [x]),
    ("ediff1d", lambda t: numpy.ediff1d(t, to_begin=[1.0], to_end=numpy.array([2.0, 3.0])), [x]),
    ("ediff1d-plain", numpy.ediff1d, [x]),
    ("trapezoid", numpy.trapezoid, [x]),
    ("trapezoid-x", lambda t, u: numpy.trapezoid(t, u), [x, numpy.cumsum(numpy.abs(v))]),
    ("trapezoid-dx-axis0", lambda t: numpy.trapezoid(t, dx=0.1, axis=0), [x]),
    ("polyval", numpy.polyval, [v, x]),
    ("polyval-scalar", lambda p: numpy.polyval(p, 1.7), [v]),
    ("meshgrid", lambda a, b: numpy.meshgrid(a, b), [v, v[:3]]),
    ("meshgrid-ij", lambda a, b, c: numpy.meshgrid(a, b, c, indexing="ij"), [v, v[:3], v[:2]]),
    ("meshgrid-sparse", lambda a, b: numpy.meshgrid(a, b, sparse=True), [v, v[:3]]),
    ("broadcast_arrays", lambda a, b: numpy.broadcast_arrays(a, b), [x, v]),
    ("kron", numpy.kron, [x[:2, :3], x[:3, :2]]),
    ("kron-1d", numpy.kron, [v, v[:3]]),
    ("kron-mixed", numpy.kron, [v[:3], x[:2, :2]]),
    ("kron-3d", numpy.kron, [x3[:2, :2, :2], x[:2, :3]]),
    ("matrix_power", lambda a: numpy.linalg.matrix_power(a, 5), [A]),
    ("matrix_power-neg", lambda a: numpy.linalg.matrix_power(a, -3), [A]),
    ("matrix_power-0", lambda a: numpy.linalg.matrix_power(a, 0), [A]),
    ("matrix_power-7", lambda a: numpy.linalg.matrix_power(a, 7), [A]),
    ("median", numpy.median, [x]),
    ("median-axis", lambda t: numpy.median(t, axis=1), [x]),
    ("median-even-keep", lambda t: numpy.median(t, axis=0, keepdims=True), [x]),
    ("median-nan", lambda t: numpy.median(t, axis=1), [numpy.where(x > 1.2, numpy.nan, x)]),
    ("eigh", numpy.linalg.eigh, [A + A.T]),
    ("eigh-stack-lower-only", numpy.linalg.eigh, [numpy.stack([A, A.T])]),
    ("eigvalsh", numpy.linalg.eigvalsh, [A + A.T]),
    ("quantile", lambda t: numpy.quantile(t, 0.3), [x]),
    ("quantile-q1", lambda t: numpy.quantile(t, 1.0, axis=0), [x]),
    (
        "quantile-array-keepdims",
        lambda t: numpy.quantile(t, numpy.array([0.1, 0.5, 0.9]), axis=1, keepdims=True),
        [x],
    ),
    ("quantile-f32-2/3", lambda t: numpy.quantile(t, 2 / 3, axis=1), [x.astype(numpy.float32)]),
    (
        "quantile-nan",
        lambda t: numpy.quantile(t, 0.5, axis=1),
        [numpy.where(x > 1.2, numpy.nan, x)],
    ),
    ("percentile", lambda t: numpy.percentile(t, 30, axis=0), [x]),
    (
        "percentile-array-f32",
        lambda t: numpy.percentile(t, numpy.array([10, 50, 95.5])),
        [x.astype(numpy.float32)],
    ),
    ("cov", numpy.cov, [x]),
    ("cov-y-rowvar", lambda a, b: numpy.cov(a, b, rowvar=False), [x, x[:, :2]]),
    ("cov-bias", lambda a: numpy.cov(a, bias=True), [x]),
    ("cov-1d", numpy.cov, [v]),
    ("cov-ddof", lambda a: numpy.cov(a, ddof=0), [x]),
    ("cov-f32", numpy.cov, [x.astype(numpy.float32)]),
    ("corrcoef", numpy.corrcoef, [x]),
    ("corrcoef-rowvar", lambda a: numpy.corrcoef(a, rowvar=False), [x]),
    ("corrcoef-1d", lambda a, b: numpy.corrcoef(a, b), [v, v[::-1].copy()]),
    ("degrees", numpy.degrees, [x]),
    ("radians", numpy.radians, [x * 90]),
    ("rollaxis", lambda a: numpy.rollaxis(a, 1, 0), [x]),
    ("select", lambda a: numpy.select([a > 0.5, a < -0.5], [a**2, 3 * a], default=a), [x]),
    ("linspace", lambda a, b: numpy.linspace(a, b, 7), [numpy.float64(0.3), numpy.float64(2.9)]),
    ("linspace-noend", lambda a, b: numpy.linspace(a, b, 6, endpoint=False), [v[:2], v[2:4]]),
    ("linspace-f32", lambda a, b: numpy.linspace(a, b, 5), [v[:2].astype(numpy.float32), v[2:4]]),
    ("gradient", lambda a: numpy.gradient(a, 0.3), [v]),
    ("gradient-edge2", lambda a: numpy.gradient(a, 0.3, edge_order=2), [v]),
    ("gradient-2d", numpy.gradient, [x]),
    (
        "cross-axes",
        lambda a, b: numpy.cross(a, b, axisa=0, axisb=1, axisc=0),
        [x[:3, :2], x[:2, :3]],
    ),
    ("einsum-sublist", lambda a, b: numpy.einsum(a, [0, 1], b, [1, 0]), [x, x.T.copy()]),
    ("convolve", numpy.convolve, [v, v[:3]]),
    ("convolve-same-swapped", lambda a, b: numpy.convolve(a, b, "same"), [v[:3], v]),
    ("correlate", lambda a, b: numpy.correlate(a, b, "full"), [v, v[:3]]),
    (
        "interp",
        lambda a, fp: numpy.interp(a, [0.0, 1.0, 2.5, 3.0], fp),
        [numpy.array([-0.5, 0.0, 0.2, 1.0, 2.6, 3.0, 3.5]), v[:4]],
    ),
    ("i0", numpy.i0, [v]),
    ("insert", lambda a, b: numpy.insert(a, 1, b, axis=1), [x, v[: x.shape[0]]]),
    ("insert-many", lambda a: numpy.insert(a, [0, 2, 2], 7.0), [x]),
    ("diagflat", lambda a: numpy.diagflat(a, -1), [v]),
    ("hsplit", lambda a: numpy.hsplit(a, [1]), [x]),
    ("vsplit", lambda a: numpy.vsplit(a, 2), [x]),
    ("dsplit", lambda a: numpy.dsplit(a, [2, 4]), [x3]),
    ("hsplit-3d", lambda a: numpy.hsplit(a, [1, -1]), [x3]),
    ("rollaxis-negative", lambda a: numpy.rollaxis(a, -1, -2), [x3]),
    ("rollaxis-to-end", lambda a: numpy.rollaxis(a, 0, 3), [x3]),
    ("degrees-f32", numpy.degrees, [x.astype(numpy.float32)]),
    ("radians-scalar", numpy.radians, [numpy.float64(37.5)]),
    # Python numbers are weak in select's dtype (float32 stays float32), as in NumPy
    ("select-weak-f32", lambda a: numpy.select([a > 0], [a], 1.5), [x.astype(numpy.float32)]),
    ("select-scalar-choice", lambda a: numpy.select([a > 0, a < -1], [2, a]), [x]),
    # partition: NumPy's own arrangement (argpartition + gather), not only a valid one
    ("partition", lambda a: numpy.partition(a, 2), [x]),
    ("partition-kths-axis0", lambda a: numpy.partition(a, [0, 2], axis=0), [x]),
    ("partition-flat", lambda a: numpy.partition(a, -3, axis=None), [x]),
    ("partition-ties", lambda a: numpy.partition(a, 4), [numpy.round(x)]),
    ("real_if_close", numpy.real_if_close, [x]),
    (
        "linspace-f32-weak",
        lambda a: numpy.linspace(a, 0.1, 9),
        [v[:3].astype(numpy.float32)],
    ),
    ("linspace-axis", lambda a, b: numpy.linspace(a, b, 4, axis=-1), [v[:2], x[:3, :2]]),
    ("linspace-retstep", lambda a, b: numpy.linspace(a, b, 6, retstep=True), [v[:3], v[2]]),
    ("linspace-retstep-1", lambda a, b: numpy.linspace(a, b, 1, retstep=True), [v[:3], v[2]]),
    ("linspace-int", lambda a, b: numpy.linspace(a, b, 5, dtype=int), [v[:3] * 9, v[2]]),
    # a step that underflows to 0: NumPy's denormal branch, y / div * delta
    (
        "linspace-denormal",
        lambda a, b: numpy.linspace(a, b, 4),
        [numpy.zeros(2), numpy.array([5e-324, 0.7])],
    ),
    ("gradient-axes", lambda a: numpy.gradient(a, 0.5, 2.0, axis=(2, 0)), [x3]),
    ("gradient-f32-edge2", lambda a: numpy.gradient(a, 0.3, edge_order=2), [x.astype("f4")]),
    ("cross", numpy.cross, [x[:, :3], v[:3]]),
    ("cross-axis", lambda a, b: numpy.cross(a, b, axis=0), [x[:3], x[1:4]]),
    (
        "einsum-sublist-three",
        lambda a, b, c: numpy.einsum(a, [0, 1], b, [1, 2], c, [2], [0]),
        [x, x.T.copy(), v[:4]],
    ),
    # convolve/correlate: kernels up to 11 long sum in NumPy's order, so every full overlap
    # (all of 'valid') is NumPy's bit for bit; the ends ('same', 'full') and longer kernels are
    # summed by BLAS in NumPy (test_convolve_and_correlate_agree_with_numpy_to_rounding)
    ("convolve-valid", lambda a, b: numpy.convolve(a, b, "valid"), [x3.ravel(), v]),
    ("correlate-valid", lambda a, b: numpy.correlate(a, b, 0), [x3.ravel(), x.ravel()[:11]]),
    (
        "correlate-valid-swapped-f32",
        lambda a, b: numpy.correlate(a, b),
        [v.astype(numpy.float32), x.ravel().astype(numpy.float32)],
    ),
    ("convolve-scalar", lambda a: numpy.convolve(a, 2.5), [v]),
    (
        "interp-special",
        lambda a, fp: numpy.interp(a, [0.0, 1.0, 2.0, 3.0, 3.0], fp),
        [
            numpy.array([-numpy.inf, numpy.nan, 0.5, 1.0, 1.5, 2.5, 3.0, numpy.inf]),
            numpy.array([numpy.inf, numpy.inf, 1.0, -numpy.inf, 2.0]),
        ],
    ),
    (
        "interp-f32-left-right",
        lambda a, fp: numpy.interp(a, [0.0, 1.0, 2.5], fp, left=-9.0, right=9.0),
        [numpy.array([-1.0, 0.3, 1.7, 3.0], numpy.float32), v[:3].astype(numpy.float32)],
    ),
    ("interp-one-knot", lambda a: numpy.interp(a, [1.0], [2.0]), [numpy.array([0.0, 1.0, 2.0])]),
    (
        "interp-period",
        lambda a, fp: numpy.interp(a, [0.5, 1.5, 2.2, 3.0], fp, period=-3.0),
        [numpy.array([-1.3, 0.2, 1.0, 2.6, 4.1, numpy.nan]), v[:4]],
    ),
    ("i0-f32", numpy.i0, [x.astype(numpy.float32)]),
    ("trapezoid-x-2d", lambda a, b: numpy.trapezoid(a, b), [x, numpy.cumsum(numpy.abs(x), 1)]),
    ("insert-slice", lambda a, b: numpy.insert(a, slice(0, 4, 2), b, axis=0), [x, x[:2]]),
    ("insert-f32-values-f64", lambda a, b: numpy.insert(a, 3, b), [x.astype("f4"), v[:2]]),
    ("diagflat-2d", lambda a: numpy.diagflat(a, 2), [x[:2, :2]]),
]


@pytest.mark.parametrize("name, f, inputs", COMPOSITIONS, ids=[c[0] for c in COMPOSITIONS])
def test_compositions_give_numpys_values_bit_for_bit(name, f, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = f(*inputs)
        got = f(*[cr.tensor(i, requires_grad=True) for i in inputs])
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = numpy.asarray(g.data if isinstance(g, cr.Tensor) else g)
        w = numpy.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        assert g.tobytes() == w.tobytes(), (g, w)


def test_i0_rule_bessel_i1_matches_scipy():
    # the i0 rule's I1 is NumPy code (a trapezoid rule on (1/pi) * int_0^pi exp(x cos t) cos t
    # dt), not scipy's series: not bit for bit, relative error below 1e-14 for |x| <= 100
    import scipy.special

    from chainrule.engine.rules import _bessel_i1

    tiny = numpy.geomspace(1e-300, 1.0, 200)
    xs = numpy.concatenate([numpy.linspace(-100.0, 100.0, 2001), tiny, -tiny])
    numpy.testing.assert_allclose(_bessel_i1(xs), scipy.special.i1(xs), rtol=1e-14, atol=0)
    assert _bessel_i1(numpy.float64(0.0)) == 0.0
    grid = xs[:2000].reshape(4, 5, 100)  # any shape, elementwise
    numpy.testing.assert_allclose(_bessel_i1(grid), scipy.special.i1(grid), rtol=1e-14)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("n, m", [(6, 3), (3, 6), (9, 10), (30, 11), (40, 12), (12, 40), (200, 64)])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_convolve_and_correlate_agree_with_numpy_to_rounding(n, m, mode, dtype):
    # Not bit for bit everywhere: NumPy sums the partial overlaps at the ends, and every
    # overlap of a kernel longer than 11, with BLAS's dot, whose summation order is its own.
    # The difference is a rounding error of the sum: within a few eps of sum |a_i| |v_j|.
    rng = numpy.random.default_rng(n * 100 + m)
    a, w = rng.standard_normal(n).astype(dtype), rng.standard_normal(m).astype(dtype)
    for f in (numpy.convolve, numpy.correlate):
        want = f(a, w, mode)
        got = f(cr.tensor(a, requires_grad=True), w, mode).data
        assert got.dtype == want.dtype and got.shape == want.shape
        scale = f(numpy.abs(a).astype(float), numpy.abs(w).astype(float), mode)
        assert numpy.all(numpy.abs(got - want) <= 4 * numpy.finfo(dtype).eps * scale)
        if m <= 11 and n >= m:  # the full overlaps: NumPy's small_correlate order exactly
            full = f(a, w, "valid")
            assert f(cr.tensor(a), w, "valid").data.tobytes() == full.tobytes()
