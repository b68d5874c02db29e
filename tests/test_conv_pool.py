"""conv2d and max_pool2d at batch sizes where their fast routes run (issue 16): the im2col
matrix product, reductions over a pooling window slice by slice (engine.reduce.window_reduce),
max-pooling's gradient one window entry at a time, the windows' gradient added in place, and
padding by one filled array.  Expected values come from direct loops, NumPy's own functions
and central finite differences; ties in max-pooling share the gradient equally."""

from __future__ import annotations

import numpy
import pytest
from op_cases import conv2d_loops

import chainrule as cr
from chainrule.engine.primitives import filled_like, pad_constant
from chainrule.engine.reduce import window_reduce, window_route
from chainrule.nn import functional as F

RNG = numpy.random.default_rng(7)


def layouts(a):
    """``a`` as a C-contiguous array, a view of channel-major memory (C, H, W, N) and a
    strided view: the memory orders conv2d's output and other code hand on."""
    chwn = numpy.ascontiguousarray(numpy.moveaxis(a, 0, -1))
    wide = numpy.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    return {"C": a, "CHWN": numpy.moveaxis(chwn, -1, 0), "strided": wide[..., ::2]}


# --- window_reduce -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["C", "CHWN", "strided"])
@pytest.mark.parametrize("axis", [(3, 5), (5, 3), 5, (-1, 1), (0, 3)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_window_reduce_equals_numpys_reductions(layout, axis, keepdims):
    base = RNG.integers(-3, 4, (16, 4, 4, 2, 4, 2)).astype(numpy.float32)  # many ties
    base[0, 0, 0, 0, 0, 0] = numpy.nan
    x = layouts(base)[layout]
    for ufunc, fun in ((numpy.maximum, numpy.max), (numpy.minimum, numpy.min)):
        got = window_reduce(ufunc, x, axis, keepdims)
        want = fun(base, axis=axis, keepdims=keepdims)
        assert got.shape == want.shape and got.dtype == want.dtype
        numpy.testing.assert_array_equal(got, want)  # NaN where NumPy has NaN
    hits = x > 0
    got = window_reduce(numpy.add, hits, axis, keepdims, numpy.float32)
    want = numpy.sum(base > 0, axis=axis, keepdims=keepdims).astype(numpy.float32)
    assert got.dtype == numpy.float32
    numpy.testing.assert_array_equal(got, want)


def test_window_route_is_taken_for_pooling_windows_only():
    assert window_route((64, 8, 4, 2, 4, 2), (3, 5))
    assert not window_route((64, 8, 4, 2, 4, 2), None)  # everything: NumPy's own
    assert not window_route((2, 2, 2), (0, 1))  # small: NumPy's own
    assert not window_route((64, 8, 64), (1, 2))  # 512 entries a window: NumPy's own
    # one middle axis before a block of 8 or more: NumPy's inner loop runs along the block
    # ((32, 8, 8) over axis 1: 7 us against 15 us slice by slice)
    assert not window_route((32, 8, 8), 1)
    assert not window_route((64, 2, 64), 1)
    assert window_route((1000, 3, 4), 1)  # many short rows: the window (17 against 74 us)


# --- padding -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["C", "CHWN", "strided"])
@pytest.mark.parametrize("value", [0, 0.0, -0.0, -numpy.inf, 2.5])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, numpy.complex128, numpy.int64])
def test_pad_constant_equals_numpy_pad(layout, value, dtype):
    if dtype is numpy.int64 and not numpy.isfinite(value):
        return
    x = layouts(RNG.standard_normal((3, 2, 4, 5)).astype(dtype))[layout]
    width = ((0, 0), (1, 0), (2, 1), (1, 1))
    got = pad_constant(x, width, value)
    want = numpy.pad(x, width, constant_values=value)
    assert got.shape == want.shape and got.dtype == want.dtype
    numpy.testing.assert_array_equal(got, want)
    assert (numpy.signbit(got.real) == numpy.signbit(want.real)).all()  # -0.0 stays -0.0


def test_filled_like_keeps_the_memory_order():
    chwn = layouts(numpy.zeros((8, 3, 4, 4)))["CHWN"]
    out = filled_like(chwn, (8, 3, 6, 6), 1.5)
    assert (out == 1.5).all() and out.shape == (8, 3, 6, 6)
    assert numpy.argsort(out.strides).tolist() == numpy.argsort(chwn.strides).tolist()
    assert filled_like(numpy.zeros((2, 3)), (4, 5)).flags.c_contiguous


# --- max-pooling: ties share the gradient equally --------------------------------------------


def pool_grad_by_loops(x, g, k, s):
    """d(sum(g * max_pool(x, k, s)))/dx: each window's g split equally between its maxima
    (added up where windows overlap)."""
    n, c, h, w = x.shape
    out = numpy.zeros_like(x)
    for a in range(n):
        for q in range(c):
            for i in range((h - k) // s + 1):
                for j in range((w - k) // s + 1):
                    win = x[a, q, i * s : i * s + k, j * s : j * s + k]
                    hit = win == win.max()
                    out[a, q, i * s : i * s + k, j * s : j * s + k] += (
                        hit * g[a, q, i, j] / hit.sum()
                    )
    return out


@pytest.mark.parametrize("layout", ["C", "CHWN", "strided"])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("k,s", [(2, 2), (3, 3), (3, 2), (2, 1)])
def test_max_pool_gradient_shares_ties_equally(layout, dtype, k, s):
    base = RNG.integers(0, 3, (32, 4, 3 * k, 3 * k)).astype(dtype)  # most windows tie
    ho = (3 * k - k) // s + 1
    g = RNG.standard_normal((32, 4, ho, ho)).astype(dtype)
    x = layouts(base)[layout]
    pool = cr.value_and_grad(lambda x: (F.max_pool2d(x, k, s) * g).sum(), argnums=(0,))
    value, (dx,) = pool(x)
    assert dx.dtype == dtype
    want = pool_grad_by_loops(base.astype(numpy.float64), g.astype(numpy.float64), k, s)
    tol = 1e-6 if dtype == numpy.float32 else 1e-14
    numpy.testing.assert_allclose(dx, want, rtol=tol, atol=tol)
    win = numpy.lib.stride_tricks.sliding_window_view(base, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    assert float(value) == pytest.approx(float((win.max(axis=(4, 5)) * g).sum()), rel=1e-5)


# --- conv2d: forward by loops, gradients by finite differences -------------------------------


CONVS = [(1, 1, 1, 1), (2, 1, 1, 1), (1, 0, 2, 1), (2, 2, 1, 1), (1, 1, 1, 3), (2, 1, 2, 6)]


@pytest.mark.parametrize("stride,pad,dil,groups", CONVS)  # stride, padding, dilation, groups
@pytest.mark.parametrize("layout", ["C", "CHWN"])
def test_conv2d_equals_the_definition_in_every_layout(stride, pad, dil, groups, layout):
    x = RNG.standard_normal((40, 6, 7, 6))
    w, b = RNG.standard_normal((12, 6 // groups, 3, 3)), RNG.standard_normal(12)
    got = F.conv2d(layouts(x)[layout], w, b, stride, pad, dil, groups)
    want = conv2d_loops(x, w, b, stride, pad, dil, groups)
    numpy.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    args32 = [a.astype(numpy.float32) for a in (x, w, b)]
    f32 = F.conv2d(*args32, stride, pad, dil, groups)
    assert f32.dtype == numpy.float32
    numpy.testing.assert_allclose(f32, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
def test_grouped_and_1d_convolutions_gradients_equal_finite_differences(groups):
    x, w = RNG.standard_normal((24, 4, 5, 6)), RNG.standard_normal((6, 4 // groups, 3, 2))
    b = RNG.standard_normal(6)

    def loss(x, w, b):
        z = F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=groups)
        return (numpy.sin(z) * z).sum()

    check_directions(loss, [x, w, b])
    x1, w1 = RNG.standard_normal((24, 4, 9)), RNG.standard_normal((6, 4 // groups, 3))

    def loss1(x, w, b):
        z = F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=groups)
        return (numpy.sin(z) * z).sum()

    check_directions(loss1, [x1, w1, b])


def check_directions(f, args, h=1e-6):
    """Each argument's gradient against a central finite difference along a random direction
    through the whole array."""
    _, grads = cr.value_and_grad(f, argnums=tuple(range(len(args))))(*args)
    for k, (a, g) in enumerate(zip(args, grads)):
        v = RNG.standard_normal(a.shape)
        plus, minus = list(args), list(args)
        plus[k], minus[k] = a + h * v, a - h * v
        fd = (f(*plus) - f(*minus)) / (2 * h)
        assert float((g * v).sum()) == pytest.approx(fd, rel=1e-6, abs=1e-8), k


def small_cnn(W1, b1, W2, b2, x):
    a = F.relu(F.max_pool2d(F.conv2d(x, W1, b1, padding=1), 2))
    a = F.max_pool2d(F.conv2d(a, W2, b2, stride=1, padding=1, dilation=1), 2)
    return (numpy.tanh(a) ** 2).sum()


def cnn_args(dtype=numpy.float64, seed=3):
    rng = numpy.random.default_rng(seed)  # the same data whichever tests ran before
    x = rng.standard_normal((48, 2, 8, 8))
    W1, b1 = rng.standard_normal((4, 2, 3, 3)) / 3, rng.standard_normal(4) / 10
    W2, b2 = rng.standard_normal((6, 4, 3, 3)) / 6, rng.standard_normal(6) / 10
    return [a.astype(dtype) for a in (W1, b1, W2, b2, x)]


def test_a_small_cnn_gradients_equal_finite_differences():
    check_directions(small_cnn, cnn_args())


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_small_cnn_second_order_equals_finite_differences_of_the_gradient(seed):
    args = cnn_args(seed=seed)
    v = numpy.random.default_rng(seed + 10).standard_normal(args[0].shape)

    def directional(W1, b1, W2, b2, x):  # d loss / dW1 in the direction v
        (gw,) = cr.grad(small_cnn, argnums=(0,))(W1, b1, W2, b2, x)
        return (gw * v).sum()

    (hv,) = cr.grad(directional, argnums=(0,))(*args)  # Hessian times v
    h = 1e-7  # small: a step across a kink of relu or a max would show as a jump
    plus = cr.grad(small_cnn, argnums=(0,))(args[0] + h * v, *args[1:])[0]
    minus = cr.grad(small_cnn, argnums=(0,))(args[0] - h * v, *args[1:])[0]
    numpy.testing.assert_allclose(hv, (plus - minus) / (2 * h), rtol=1e-5, atol=1e-7)


def test_a_small_cnn_in_float32_follows_float64():
    args = cnn_args(numpy.float32)
    g32 = cr.grad(small_cnn, argnums=(0, 1, 2, 3))(*args)
    g64 = cr.grad(small_cnn, argnums=(0, 1, 2, 3))(*[a.astype(numpy.float64) for a in args])
    for a, b in zip(g32, g64):
        assert a.dtype == numpy.float32
        numpy.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_jit_of_a_small_cnn_follows_the_eager_path(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    args = cnn_args()
    step = cr.value_and_grad(small_cnn, argnums=(0, 1, 2, 3))
    value, grads = step(*args)
    jvalue, jgrads = cr.jit(step, backend=backend)(*args)
    assert float(jvalue) == pytest.approx(float(value), rel=1e-12)
    for a, b in zip(jgrads, grads):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["edge", "reflect", "symmetric", "wrap"])
@pytest.mark.parametrize("width", [2, ((1, 3), (0, 2)), ((0, 0), (7, 1)), ((4, 0), (0, 0))])
def test_numpy_pad_copying_modes_values_and_gradients(mode, width):
    # numpy.pad's modes that copy the array's own elements: NumPy's values bit for bit, the
    # gradient of each input element the sum of the weights of every copy of it (by hand)
    x = RNG.standard_normal((4, 5))
    t = cr.tensor(x, requires_grad=True)
    y = numpy.pad(t, width, mode=mode)
    assert y.numpy().tobytes() == numpy.pad(x, width, mode=mode).tobytes()
    w = RNG.standard_normal(y.shape)
    (y * w).sum().backward()
    rows = [
        numpy.pad(numpy.arange(n), wd, mode=mode)
        for n, wd in zip(x.shape, numpy.broadcast_to(numpy.asarray(width), (2, 2)))
    ]
    want = numpy.zeros_like(x)
    for i, r in enumerate(rows[0]):
        for j, c in enumerate(rows[1]):
            want[r, c] += w[i, j]
    numpy.testing.assert_allclose(t.grad, want, rtol=1e-14, atol=1e-14)
    # jit and vmap of the same padding agree with the eager gradient
    f = cr.grad(lambda v: (numpy.pad(v, width, mode=mode) * w).sum())
    numpy.testing.assert_array_equal(cr.jit(f)(x), t.grad)
    vs = numpy.stack([x, -x])
    numpy.testing.assert_allclose(cr.vmap(f)(vs)[1], t.grad, rtol=1e-15)


def test_numpy_pad_modes_without_a_rule_say_what_is_supported():
    t = cr.tensor(numpy.ones((3, 3)), requires_grad=True)
    odd = {"mode": "reflect", "reflect_type": "odd"}
    for kw in ({"mode": "mean"}, {"mode": "linear_ramp"}, odd):
        with pytest.raises(TypeError, match="'edge', 'reflect', 'symmetric' and 'wrap'"):
            numpy.pad(t, 1, **kw)
    with pytest.raises(TypeError, match="unexpected arguments"):
        numpy.pad(t, 1, mode="edge", constant_values=2.0)


def test_window_routes_are_remembered_by_shape_and_axes(monkeypatch):
    from chainrule.engine import reduce

    monkeypatch.setattr(reduce, "_WINDOWS", {})
    monkeypatch.setattr(reduce, "_MAX_WINDOWS", 5)
    asks = []
    for shape in ((64, 8, 4, 2, 4, 2), (32, 8, 8), (1000, 3, 4), (4, 4)):
        for axis in (None, 1, -1, (3, 5), [3, 5], (0, 1), 2):
            if axis is None or all(-len(shape) <= a < len(shape) for a in numpy.atleast_1d(axis)):
                asks.append((shape, axis))
    want = [reduce._window_route(s, a) if a is not None else False for s, a in asks]
    assert True in want and False in want
    for order in (asks, asks[::-1]):
        for s, a in order:
            assert window_route(s, a) == want[asks.index((s, a))]
