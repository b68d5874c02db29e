"""Property tests: chainrule's gradients equal float64 central finite differences.

Shapes, axes and values are drawn by Hypothesis.  The reference is a finite difference computed
here on plain NumPy code (chainrule is not involved in it); the function under test is the same
NumPy code run on chainrule tensors.  Non-scalar outputs are projected on a fixed random
direction.  Inputs stay away from kinks and singularities (distinct elements for max/min,
denominators away from zero, positive bases for power).
"""

from __future__ import annotations

import math
import operator
import warnings

import numpy
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr

# When a Hypothesis test fails, its pytest plugin imports hypothesis.extra._patching (libcst)
# to write a patch; with libcst 1.0 that import emits a DeprecationWarning from
# mypy_extensions, which filterwarnings=error turns into an INTERNALERROR that hides the real
# failure.  Import it once here, with that warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # pragma: no cover - libcst/black not installed
        pass

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

H = 1e-6  # relative step of the central difference
RTOL = 1e-5
ATOL = 1e-6


# ---------------------------------------------------------------------------------------------
# reference: finite differences on plain NumPy
# ---------------------------------------------------------------------------------------------


def _direction(shape, seed=0):
    return numpy.random.default_rng(seed).standard_normal(shape)


def _project(out, direction):
    """Scalar from a (possibly non-scalar) output: sum(out * direction)."""
    return (out * direction).sum()


def numeric_grads(f, args, direction):
    """Central differences of sum(f(*args) * direction) for every argument, in float64."""
    args = [numpy.array(a, dtype=numpy.float64) for a in args]
    grads = []
    for i, a in enumerate(args):
        g = numpy.zeros_like(a)
        for idx in numpy.ndindex(a.shape):
            step = H * max(1.0, abs(float(a[idx])))
            vals = []
            for sign in (1.0, -1.0):
                moved = list(args)
                m = a.copy()
                m[idx] += sign * step
                moved[i] = m
                vals.append(
                    float(_project(numpy.asarray(f(*moved), dtype=numpy.float64), direction))
                )
            g[idx] = (vals[0] - vals[1]) / (2 * step)
        grads.append(g)
    return grads


def check(f, *args, dtype=numpy.float64, rtol=RTOL, atol=ATOL):
    """chainrule's gradient of f at args equals the finite difference; shapes and dtypes kept."""
    typed = [numpy.asarray(a).astype(dtype) for a in args]
    args64 = [a.astype(numpy.float64) for a in typed]  # the very values chainrule sees
    out = numpy.asarray(f(*args64))
    direction = _direction(out.shape)
    expected = numeric_grads(f, args64, direction)
    scale = max(
        1.0,
        float(
            numpy.max(
                numpy.abs(numpy.concatenate([e.ravel() for e in expected] + [numpy.zeros(1)]))
            )
        ),
    )

    dir_t = direction.astype(dtype)

    # 1. chainrule.grad with every argument differentiated
    def loss(*xs):
        return _project(f(*xs), dir_t)

    got = cr.grad(loss, argnums=tuple(range(len(args))))(*typed)
    assert isinstance(got, tuple) and len(got) == len(args)
    tol_r, tol_a = (rtol, atol) if dtype == numpy.float64 else (2e-3, 2e-3 * scale)
    for g, a, e in zip(got, typed, expected):
        assert type(g) is numpy.ndarray
        assert g.shape == a.shape, (g.shape, a.shape)
        assert g.dtype == a.dtype, (g.dtype, a.dtype)
        numpy.testing.assert_allclose(g, e, rtol=tol_r, atol=tol_a)

    # 2. the same through Tensor.backward(): forward dtype kept, .grad of the input's shape/dtype
    leaves = [cr.tensor(a, requires_grad=True) for a in typed]
    y = f(*leaves)
    assert isinstance(y, cr.Tensor) and y.requires_grad
    assert y.dtype == dtype, (y.dtype, dtype)
    assert y.shape == out.shape
    y.backward(gradient=dir_t)
    for t, a, e in zip(leaves, typed, expected):
        assert type(t.grad) is numpy.ndarray
        assert t.grad.shape == a.shape and t.grad.dtype == a.dtype
        numpy.testing.assert_allclose(t.grad, e, rtol=tol_r, atol=tol_a)


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------

DTYPES = st.sampled_from([numpy.float64, numpy.float32])


def values(shape, lo=-2.0, hi=2.0):
    return hnp.arrays(
        numpy.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    )


def away_from_zero(shape, lo=0.5, hi=2.0):
    """Magnitudes in [lo, hi] with random signs."""
    return st.tuples(values(shape, lo, hi), hnp.arrays(numpy.bool_, shape)).map(
        lambda p: numpy.where(p[1], -p[0], p[0])
    )


@st.composite
def distinct(draw, shapes, scale=0.25, offset=-2.0):
    """Arrays of the given shapes whose elements are all distinct (spaced by ``scale``)."""
    sizes = [math.prod(s) for s in shapes]
    perm = numpy.array(draw(st.permutations(range(sum(sizes)))), dtype=numpy.float64)
    vals = perm * scale + offset
    out, start = [], 0
    for s, n in zip(shapes, sizes):
        out.append(vals[start : start + n].reshape(s))
        start += n
    return out


two_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3)


@st.composite
def axis_arg(draw, ndim, allow_empty=True):
    """None, an int (maybe negative), or a tuple of distinct axes (maybe negative)."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()] if allow_empty else [None]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(
        st.lists(
            st.integers(0, ndim - 1), unique=True, min_size=0 if allow_empty else 1, max_size=ndim
        )
    )
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)


def _count(shape, axis):
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axes)


# ---------------------------------------------------------------------------------------------
# broadcasting binary operations
# ---------------------------------------------------------------------------------------------

BINARY = {
    "add": (numpy.add, "any"),
    "add-operator": (operator.add, "any"),
    "subtract": (numpy.subtract, "any"),
    "subtract-operator": (operator.sub, "any"),
    "multiply": (numpy.multiply, "any"),
    "multiply-operator": (operator.mul, "any"),
    "divide": (numpy.divide, "denominator"),
    "divide-operator": (operator.truediv, "denominator"),
    "power": (numpy.power, "positive-base"),
    "power-operator": (operator.pow, "positive-base"),
    "arctan2": (numpy.arctan2, "both-away"),
    "hypot": (numpy.hypot, "both-away"),
    "logaddexp": (numpy.logaddexp, "any"),
    "maximum": (numpy.maximum, "distinct"),
    "minimum": (numpy.minimum, "distinct"),
}


@st.composite
def binary_inputs(draw, domain):
    bs = draw(two_shapes)
    sx, sy = bs.input_shapes
    if domain == "any":
        return draw(values(sx)), draw(values(sy))
    if domain == "denominator":
        return draw(values(sx)), draw(away_from_zero(sy))
    if domain == "positive-base":
        return draw(values(sx, 0.5, 2.0)), draw(values(sy, -2.0, 2.0))
    if domain == "both-away":
        return draw(away_from_zero(sx)), draw(away_from_zero(sy))
    if domain == "distinct":
        x, y = draw(distinct([sx, sy]))
        return x, y
    raise AssertionError(domain)


@pytest.mark.parametrize("name", list(BINARY))
@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_broadcasting_binary_op_gradient(name, data, dtype):
    op, domain = BINARY[name]
    x, y = data.draw(binary_inputs(domain))
    check(op, x, y, dtype=dtype)


@pytest.mark.parametrize("name", ["add", "multiply", "divide", "power", "maximum", "arctan2"])
@SETTINGS
@given(data=st.data())
def test_binary_op_with_constant_operand(name, data):
    """Only one side is a tensor; the other is a plain ndarray or a Python float."""
    op, domain = BINARY[name]
    x, y = data.draw(binary_inputs(domain))
    tensor_first = data.draw(st.booleans())
    as_float = data.draw(st.booleans()) and y.ndim == 0
    c = float(y) if as_float else y
    if tensor_first:

        def f(a):
            return op(a, c)

        check(f, x)
    else:
        cx = float(x) if as_float and x.ndim == 0 else x

        def f(b):
            return op(cx, b)

        check(f, y)


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------

REDUCTIONS = ["sum", "mean", "max", "min", "prod", "var", "std"]


@pytest.mark.parametrize("name", REDUCTIONS)
@SETTINGS
@given(data=st.data(), dtype=DTYPES, use_method=st.booleans())
def test_reduction_gradient(name, data, dtype, use_method):
    shape = data.draw(shapes)
    ndim = len(shape)
    moment = name in ("var", "std")
    axis = data.draw(axis_arg(ndim, allow_empty=not moment))
    keepdims = data.draw(st.booleans())
    kw = {"axis": axis, "keepdims": keepdims}
    if moment:
        ddof = data.draw(st.sampled_from([0, 1]))
        assume(_count(shape, axis) - ddof >= 1 and _count(shape, axis) >= 2)
        kw["ddof"] = ddof
    if name in ("max", "min", "std", "var"):
        (x,) = data.draw(distinct([shape]))  # no ties, never constant
    elif name == "prod":
        x = data.draw(values(shape, -1.5, 1.5))  # zeros allowed: prod is smooth
    else:
        x = data.draw(values(shape))

    if use_method:

        def f(a):
            return getattr(a, name)(**kw)
    else:
        func = getattr(numpy, name)

        def f(a):
            return func(a, **kw)

    check(f, x, dtype=dtype)


@SETTINGS
@given(data=st.data())
def test_prod_with_zeros_is_exact(data):
    shape = data.draw(nonscalar_shapes)
    x = data.draw(values(shape, -1.5, 1.5))
    zeros = data.draw(hnp.arrays(numpy.bool_, shape))
    x = numpy.where(zeros, 0.0, x)
    axis = data.draw(axis_arg(len(shape)))
    check(lambda a: numpy.prod(a, axis=axis), x)


# ---------------------------------------------------------------------------------------------
# shape operations
# ---------------------------------------------------------------------------------------------


def _divisor_shapes(size, max_dims=4):
    """All shapes of up to max_dims dims whose product is size."""
    out = [()] if size == 1 else []

    def rec(prefix, rest):
        if len(prefix) >= max_dims:
            return
        for d in range(1, rest + 1):
            if rest % d == 0:
                shape = prefix + (d,)
                if rest // d == 1:
                    out.append(shape)
                rec(shape, rest // d)

    rec((), size)
    return out


@SETTINGS
@given(data=st.data(), dtype=DTYPES, use_method=st.booleans())
def test_reshape_gradient(data, dtype, use_method):
    shape = data.draw(shapes)
    x = data.draw(values(shape))
    new = data.draw(st.sampled_from(_divisor_shapes(math.prod(shape))))
    if new and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(new) - 1))
        new = new[:i] + (-1,) + new[i + 1 :]
    if use_method:

        def f(a):
            return a.reshape(new)
    else:

        def f(a):
            return numpy.reshape(a, new)

    check(f, x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_transpose_gradient(data, dtype):
    how = data.draw(st.sampled_from(["perm", "none", "T", "method"]))
    # explicit permutations get >= 3 axes, so that most are not their own inverse
    shape = data.draw(
        hnp.array_shapes(
            min_dims=3 if how in ("perm", "method") else 0, max_dims=4, min_side=1, max_side=3
        )
    )
    x = data.draw(values(shape))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    if how == "perm":

        def f(a):
            return numpy.transpose(a, perm)
    elif how == "none":

        def f(a):
            return numpy.transpose(a)
    elif how == "T":

        def f(a):
            return a.T
    else:

        def f(a):
            return a.transpose(perm)

    check(f, x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_swapaxes_gradient(data, dtype):
    shape = data.draw(nonscalar_shapes)
    n = len(shape)
    a1 = data.draw(st.integers(-n, n - 1))
    a2 = data.draw(st.integers(-n, n - 1))
    x = data.draw(values(shape))
    check(lambda a: numpy.swapaxes(a, a1, a2), x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_flip_gradient(data, dtype):
    shape = data.draw(nonscalar_shapes)
    axis = data.draw(axis_arg(len(shape)))
    x = data.draw(values(shape))
    check(lambda a: numpy.flip(a, axis=axis), x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_roll_gradient(data, dtype):
    shape = data.draw(nonscalar_shapes)
    n = len(shape)
    kind = data.draw(st.sampled_from(["flat", "int", "tuple"]))
    if kind == "flat":
        shift, axis = data.draw(st.integers(-5, 5)), None
    elif kind == "int":
        shift, axis = data.draw(st.integers(-5, 5)), data.draw(st.integers(-n, n - 1))
    else:
        axis = tuple(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=3)))
        shift = tuple(
            data.draw(st.lists(st.integers(-5, 5), min_size=len(axis), max_size=len(axis)))
        )
    x = data.draw(values(shape))
    check(lambda a: numpy.roll(a, shift, axis=axis), x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_expand_dims_gradient(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    n = len(shape)
    if data.draw(st.booleans()):
        axis = data.draw(st.integers(-(n + 1), n))
    else:
        k = data.draw(st.integers(1, 2))
        out_nd = n + k
        axis = tuple(
            data.draw(st.lists(st.integers(0, out_nd - 1), unique=True, min_size=k, max_size=k))
        )
    x = data.draw(values(shape))
    check(lambda a: numpy.expand_dims(a, axis), x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, use_method=st.booleans())
def test_squeeze_gradient(data, dtype, use_method):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=2))
    ones = [i for i, s in enumerate(shape) if s == 1]
    if ones and data.draw(st.booleans()):
        chosen = data.draw(st.lists(st.sampled_from(ones), unique=True, min_size=1))
        axis = chosen[0] if len(chosen) == 1 else tuple(chosen)
    else:
        axis = None
    x = data.draw(values(shape))
    if use_method:

        def f(a):
            return a.squeeze(axis)
    else:

        def f(a):
            return numpy.squeeze(a, axis=axis)

    check(f, x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_broadcast_to_gradient(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    target = lead + tuple(data.draw(st.integers(1, 3)) if s == 1 else s for s in shape)
    x = data.draw(values(shape))
    check(lambda a: numpy.broadcast_to(a, target), x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES)
def test_tile_gradient(data, dtype):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    if data.draw(st.booleans()):
        reps = data.draw(st.integers(1, 3))
    else:
        reps = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4)))
    x = data.draw(values(shape))
    check(lambda a: numpy.tile(a, reps), x, dtype=dtype)


@SETTINGS
@given(data=st.data(), dtype=DTYPES, use_method=st.booleans())
def test_repeat_gradient(data, dtype, use_method):
    shape = data.draw(nonscalar_shapes)
    n = len(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-n, n - 1)))
    length = math.prod(shape) if axis is None else shape[axis]
    if data.draw(st.booleans()):
        repeats = data.draw(st.integers(0, 3))
    else:
        repeats = data.draw(st.lists(st.integers(0, 3), min_size=length, max_size=length))
    x = data.draw(values(shape))
    if use_method:

        def f(a):
            return a.repeat(repeats, axis=axis)
    else:

        def f(a):
            return numpy.repeat(a, repeats, axis=axis)

    check(f, x, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# compositions and chainrule.check_grads
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_composition_of_broadcast_reduction_and_shape_ops(data):
    bs = data.draw(two_shapes)
    sx, sy = bs.input_shapes
    x = data.draw(values(sx))
    y = data.draw(away_from_zero(sy))
    nd = len(bs.result_shape)
    perm = tuple(data.draw(st.permutations(range(nd))))
    axis = data.draw(axis_arg(nd))

    def f(a, b):
        z = numpy.transpose(numpy.tanh(a) * b + a / b, perm)
        return numpy.sum(numpy.exp(z * 0.3), axis=axis) * 2.0

    check(f, x, y)


@SETTINGS
@given(data=st.data())
def test_check_grads_agrees(data):
    bs = data.draw(two_shapes)
    sx, sy = bs.input_shapes
    x = data.draw(values(sx))
    y = data.draw(away_from_zero(sy))
    report = cr.check_grads(lambda a, b: numpy.logaddexp(a, b) * numpy.hypot(a, b), x, y)
    assert report.passed


@SETTINGS
@given(data=st.data())
def test_check_grads_detects_a_wrong_gradient(data):
    shape = data.draw(nonscalar_shapes)
    x = data.draw(away_from_zero(shape))

    def wrong(a):
        # the value is sum(a**2); the recorded gradient misses the factor 2 (detach trick)
        if isinstance(a, cr.Tensor):
            return (a * a.detach()).sum()
        return (a * a).sum()

    with pytest.raises(cr.GradientCheckError):
        cr.check_grads(wrong, x)
