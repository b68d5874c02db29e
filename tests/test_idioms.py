"""NumPy's everyday idioms on chainrule tensors: the right gradient, or an error that names the
idiom and what to write instead (never a silent zero or a silently different value)."""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr


def test_a_custom_primitive_without_rules_raises_naming_it():
    sp = cr.primitive(lambda x: numpy.logaddexp(0, x), name="softplus_norule")
    assert float(sp(numpy.array(0.0))) == pytest.approx(numpy.log(2))  # computing is fine
    with pytest.raises(TypeError, match=r"'softplus_norule' has no gradient rule.*defvjp"):
        cr.grad(lambda x: sp(x))(0.0)
    with pytest.raises(TypeError, match="softplus_norule"):
        cr.jvp(sp, (numpy.array([0.0]),), (numpy.array([1.0]),))
    # None on purpose: no gradient flows to that argument, and that is not an error
    scaled = cr.primitive(lambda x, k: x * k, name="scaled_by")
    cr.defvjp(scaled, lambda g, out, x, k: g * k, None)
    assert cr.grad(lambda x: scaled(x, 3.0))(1.0) == 3.0


@pytest.mark.parametrize(
    "f",
    [
        lambda t: numpy.dot(t, 2.0),
        lambda t: t.dot(2.0),
        lambda t: numpy.inner(2, t),
        lambda t: numpy.dot(3, t),
    ],
)
def test_dot_and_inner_with_a_python_scalar_are_multiplication(f):
    x = numpy.array([1.0, 2.0], dtype=numpy.float32)
    t = cr.tensor(x, requires_grad=True)
    out = f(t)
    # the value and dtype NumPy gives (the scalar is taken as an array, not a weak scalar)
    assert out.dtype == f(x).dtype
    numpy.testing.assert_array_equal(out.data, f(x))
    k = float(f(numpy.ones(1))[0])
    numpy.testing.assert_array_equal(cr.grad(lambda x: f(x).sum())(x), [k, k])


def test_masked_arrays_and_matrices_are_refused_not_unmasked():
    m = numpy.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    with pytest.raises(TypeError, match=r"masked array.*numpy\.ma\.filled"):
        cr.grad(lambda x: (x * m).mean())(numpy.ones(3))
    with pytest.raises(TypeError, match="masked array"):
        cr.grad(lambda x: x.mean())(m)
    with pytest.raises(TypeError, match="masked array"):
        cr.tensor(m)
    with pytest.warns(PendingDeprecationWarning):  # NumPy's own warning about matrix
        mat = numpy.matrix([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match=r"numpy\.matrix.*numpy\.asarray"):
        cr.grad(lambda x: (x * mat).sum())(numpy.ones((2, 2)))
    with pytest.raises(TypeError, match=r"numpy\.matrix"):
        cr.tensor(mat)


class Wrapper:
    """A stand-in for a labelled-array library (xarray, pandas) that wraps ufunc results."""

    def __init__(self, a):
        self.a = a

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return Wrapper(ufunc(*[i.a if isinstance(i, Wrapper) else i for i in inputs]))


def test_a_foreign_wrapper_taking_over_a_result_is_an_error_not_a_detached_gradient():
    with pytest.raises(TypeError, match=r"Wrapper operand took over.*numpy\.asarray"):
        cr.grad(lambda x: (x * Wrapper(numpy.ones(3))).a.sum())(numpy.ones(3))


def test_zeros_like_of_a_tensor_is_a_tensor_so_masked_writes_are_recorded():
    x = numpy.array([0.3, -0.5, 1.2])

    def f(x):
        z = numpy.zeros_like(x)
        m = x > 0
        z[m] = numpy.exp(-x[m])
        return z.sum()

    numpy.testing.assert_allclose(cr.grad(f)(x), -numpy.exp(-x) * (x > 0))
    for like in (numpy.zeros_like, numpy.ones_like, numpy.empty_like):
        t = like(cr.tensor(x))
        assert isinstance(t, cr.Tensor) and not t.requires_grad and t.shape == x.shape
    # a fill value that is a tensor keeps its gradient
    numpy.testing.assert_array_equal(
        cr.grad(lambda x: numpy.full_like(x, x[0]).sum())(x), [3.0, 0.0, 0.0]
    )


@pytest.mark.parametrize("transform", ["eager", "jit", "explain"])
def test_masked_assignment_of_a_constant_in_every_reader(transform):
    def f(x):
        h = x * 3
        h[h < 0] = 0
        return (h**2).sum()

    for x in (numpy.array([0.3, -0.5, 1.2]), numpy.array([-0.3, 0.5, -1.2])):
        expected = 18 * x * (x > 0)  # d/dx (3x)^2 where 3x > 0
        if transform == "eager":
            got = cr.grad(f)(x)
        elif transform == "jit":
            step = cr.jit(cr.grad(f))
            step(-x)  # compiled at other inputs: the mask must follow the new ones
            got = step(x)
        else:
            ns: dict = {}
            exec(cr.explain(f, x).to_python(), ns)
            got = [v for k, v in ns.items() if callable(v) and not k.startswith("_")][-1](x)[1]["x"]
        numpy.testing.assert_allclose(got, expected, rtol=1e-15)


def test_a_list_of_tensors_given_to_numpy_names_the_idiom_and_the_rewrite():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    for bad in (
        lambda: numpy.array([x[0], x[1]]),
        lambda: numpy.mean([x[0], x[1]]),
        lambda: numpy.r_[x, x],
    ):
        with pytest.raises(TypeError, match=r"list of tensors.*numpy\.stack"):
            bad()
    # the rewrite the message gives
    numpy.stack([x[0], x[1]]).mean().backward()
    numpy.testing.assert_array_equal(x.grad, [0.5, 0.5])


def test_a_cast_to_integers_needs_no_gradient_and_is_allowed():
    # numpy.int64(t) asks for integers: nothing differentiable is dropped, so it is not refused
    # (indices computed from values, as in a one-hot or an embedding lookup)
    def f(w):
        idx = numpy.int64(w[:, -1])
        return (w[:, :-1][idx] ** 2).sum()

    w = numpy.array([[1.0, 2.0, 1.0], [3.0, 4.0, 0.0]])
    g = cr.grad(f)(w)
    # rows used: idx = [1, 0]; d/dw of w[1,:2]^2 + w[0,:2]^2 = 2 w on the first two columns
    numpy.testing.assert_array_equal(g, [[2.0, 4.0, 0.0], [6.0, 8.0, 0.0]])
    with pytest.raises(TypeError, match="dropped|drop it"):
        cr.grad(lambda w: numpy.float64(numpy.asarray(w, dtype=float)).sum())(w)


def test_check_grads_takes_functions_with_several_outputs():
    # numpy.gradient along two axes returns a list; numpy.linalg.slogdet a named tuple
    x = numpy.random.default_rng(2).standard_normal((4, 5))
    assert cr.check_grads(lambda x: numpy.gradient(x), x, order=2).passed
    a = numpy.eye(3) * 2 + 0.1 * x[:3, :3]
    assert cr.check_grads(lambda a: numpy.linalg.slogdet(a), a).passed
    with pytest.raises(cr.GradientCheckError):  # and it still catches a wrong rule there
        bad = cr.primitive(lambda x: x * 3.0, name="triple_wrong")
        cr.defvjp(bad, lambda g, out, x: g * 2.0)
        cr.check_grads(lambda x: [bad(x), x], x)


def test_out_into_a_tensor_is_a_recorded_write():
    # numpy.clip(d, -5, 5, out=d), the gradient clipping of many hand-written RNNs, and a ufunc
    # with out= a tensor: the result is written into it as t[...] = result
    x = cr.tensor([-3.0, 0.5, 7.0], requires_grad=True)
    d = x * 2.0
    r = numpy.clip(d, -5, 5, out=d)
    assert r is d
    numpy.testing.assert_array_equal(d.data, [-5.0, 1.0, 5.0])
    d.sum().backward()
    numpy.testing.assert_array_equal(x.grad, [0.0, 2.0, 0.0])  # clipped entries pass nothing
    y = cr.tensor([1.0, 2.0], requires_grad=True)
    e = y * 1.0
    numpy.add(e, 3.0, out=e)
    (e * e).sum().backward()
    numpy.testing.assert_allclose(y.grad, 2 * (numpy.array([1.0, 2.0]) + 3.0))
    f = y * 1.0
    numpy.multiply(f, f, out=f)  # f read twice, then overwritten: the reads keep the old f
    y.grad = None
    f.sum().backward()
    numpy.testing.assert_allclose(y.grad, 2 * numpy.array([1.0, 2.0]))  # d/dy y^2


# ---- running extremes: numpy.maximum.accumulate / minimum.accumulate --------------------------


@pytest.mark.parametrize("uf", [numpy.maximum, numpy.minimum])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_running_extremes_values_and_gradients(uf, axis):
    rng = numpy.random.default_rng(8)
    x = rng.standard_normal((7, 6))
    w = rng.standard_normal((7, 6))

    def f(v):
        return (uf.accumulate(v, axis=axis) * w).sum()

    t = cr.tensor(x, requires_grad=True)
    y = uf.accumulate(t, axis=axis)
    assert y.numpy().tobytes() == uf.accumulate(x, axis=axis).tobytes()
    g = cr.grad(f)(x)
    numpy.testing.assert_allclose(g, fd_grad(f, x), rtol=1e-7, atol=1e-9)
    assert cr.jit(cr.grad(f))(x).tobytes() == g.tobytes()
    numpy.testing.assert_allclose(cr.vmap(cr.grad(f))(numpy.stack([x, -x]))[1], cr.grad(f)(-x))


def test_running_maximum_ties_and_nan_by_hand():
    # the running value is kept on ties (the first of tied inputs is the maximum) and a NaN
    # holds from where it appears: out = [1, 3, 3, 3, 5, nan, nan]
    x = numpy.array([1.0, 3.0, 3.0, 2.0, 5.0, numpy.nan, 7.0])
    g = cr.grad(lambda v: (numpy.maximum.accumulate(v) * numpy.arange(1.0, 8.0)).sum())(x)
    numpy.testing.assert_array_equal(g, [1.0, 2 + 3 + 4, 0, 0, 5, 6 + 7, 0])
    with pytest.raises(TypeError, match="out="):
        numpy.maximum.accumulate(cr.tensor(x), out=numpy.empty(7))


# ---- weighted counts ----------------------------------------------------------------------------


def test_bincount_weights_have_a_gradient():
    # d/dw_k of sum_b c_b * bincount(x, w)_b is c at x_k (by hand); NumPy's values bit for bit
    rng = numpy.random.default_rng(9)
    x = rng.integers(0, 6, 50)
    w = rng.standard_normal(50)
    c = rng.standard_normal(8)

    def f(w):
        return numpy.bincount(x, weights=w, minlength=8) @ c

    t = cr.tensor(w, requires_grad=True)
    assert numpy.bincount(x, weights=t, minlength=8).numpy().tobytes() == (
        numpy.bincount(x, weights=w, minlength=8).tobytes()
    )
    g = cr.grad(f)(w)
    numpy.testing.assert_array_equal(g, c[x])
    numpy.testing.assert_array_equal(cr.jit(cr.grad(f))(w), g)
    numpy.testing.assert_array_equal(cr.vmap(cr.grad(f))(numpy.stack([w, 2 * w]))[1], g)
    # counts alone have no gradient: a plain array, as before
    assert type(numpy.bincount(cr.tensor(x))) is numpy.ndarray
    with pytest.raises(ValueError, match="same shape"):
        numpy.bincount(x, weights=cr.tensor(w[:10], requires_grad=True))


def test_histogram_weights_that_require_grad_are_refused_not_silently_zero():
    w = cr.tensor(numpy.ones(8), requires_grad=True)
    with pytest.raises(TypeError, match="bincount"):
        cr.grad(lambda w: numpy.histogram(numpy.arange(8.0), bins=3, weights=w)[0].sum())(
            numpy.ones(8)
        )
    counts, edges = numpy.histogram(numpy.arange(8.0), bins=3, weights=w.detach())
    numpy.testing.assert_array_equal(counts, [3, 2, 3])


# ---- cumprod's gradient in linear time, zeros included ---------------------------------------


@pytest.mark.parametrize("zeros", [[], [0], [5], [59], [5, 17, 40], [0, 1]])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.complex128])
def test_cumprod_gradient_by_hand_with_zeros(zeros, dtype):
    rng = numpy.random.default_rng(10)
    n = 60
    x = (1.0 + 0.3 * rng.standard_normal(n)).astype(dtype)
    if dtype == numpy.complex128:
        x = x + 0.2j * rng.standard_normal(n)
    x[zeros] = 0
    w = rng.standard_normal(n)

    def f(v):
        return numpy.real(numpy.cumprod(v) * w).sum()

    got = cr.grad(f)(x)
    # by hand: d out[j] / d x[i] = prod_{k <= j, k != i} x[k] for j >= i; for complex x the
    # gradient of the real part, df/dx - i df/dy, is that sum itself (holomorphic)
    want = numpy.zeros(n, dtype)
    for i in range(n):
        for j in range(i, n):
            want[i] += w[j] * numpy.prod(numpy.delete(x[: j + 1], i))
    numpy.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert cr.jit(cr.grad(f))(x).tobytes() == got.tobytes()


def test_cumprod_gradient_of_a_long_axis_takes_linear_memory():
    # 1e5 entries along the axis: the n x n table it used to build was 75 GB
    rng = numpy.random.default_rng(11)
    x = 1.0 + 1e-5 * rng.standard_normal((2, 100_000))
    x[1, 500] = 0.0
    g = cr.grad(lambda v: numpy.cumprod(v, axis=1).sum())(x)
    out = numpy.cumprod(x, axis=1)
    # the first row by its closed form; the second: after the zero nothing, at it out[499] * ...
    tail = numpy.cumsum(out[0][::-1])[::-1]
    numpy.testing.assert_allclose(g[0], tail / x[0], rtol=1e-9)
    assert not g[1, 501:].any()
    numpy.testing.assert_allclose(
        g[1, 500], out[1, 499] * numpy.cumprod(x[1, 501:]).sum() + out[1, 499], rtol=1e-9
    )


def test_a_list_operand_under_jit_vmap_and_explain():
    # x * [1, 2, 3]: NumPy makes an array of the list; the trace writes it as one
    def f(x):
        return (x * [1, 2, 3]).sum() + (numpy.maximum(x, (0.5, 0.5, 0.5)) ** 2).sum()

    x = numpy.array([1.0, 0.2, 3.0])
    want = numpy.array([1.0, 2.0, 3.0]) + 2 * numpy.maximum(x, 0.5) * (x >= 0.5)  # by hand
    numpy.testing.assert_array_equal(cr.grad(f)(x), want)
    numpy.testing.assert_array_equal(cr.jit(cr.grad(f))(x), want)
    numpy.testing.assert_array_equal(cr.vmap(cr.grad(f))(numpy.stack([x, x]))[0], want)
    ns: dict = {}
    exec(cr.explain(f, x).to_python(), ns)
    numpy.testing.assert_array_equal(ns["backward"](x)[1]["x"], want)


def test_ndarray_methods_a_tensor_lacks_say_what_to_write():
    t = cr.tensor(numpy.array([3.0, 1.0, 2.0]), requires_grad=True)
    for name, hint in [
        ("sort", "numpy.sort"),
        ("fill", "t\\[...\\] = value"),
        ("flat", "ravel"),
        ("view", "astype"),
        ("tofile", "t.data.tofile"),
    ]:
        with pytest.raises(AttributeError, match=hint):
            getattr(t, name)
    with pytest.raises(AttributeError, match="no attribute 'no_such'"):
        t.no_such  # noqa: B018
    assert getattr(t, "no_such", None) is None
    assert (t.nbytes, t.itemsize, t.strides) == (24, 8, (8,))
    # methods that are NumPy functions: ptp's gradient by hand (+1 at the max, -1 at the min)
    numpy.testing.assert_array_equal(cr.grad(lambda x: x.ptp())(t.detach().numpy()), [1, -1, 0])
    assert cr.tensor(numpy.array([1.0, 2.0, 3.0])).searchsorted(2.5) == 2
    # set name by name: a __getattr__ would make every attribute read of a tensor slower
    assert all("__getattr__" not in vars(c) for c in type(t).__mro__ if c is not object)
    numpy.testing.assert_array_equal(t.compress([True, False, True]).numpy(), [3.0, 2.0])


def test_ufunc_outer_and_add_at_into_a_tensor():
    x, y = numpy.array([1.0, 2.0, 3.0]), numpy.array([4.0, 5.0])
    w = numpy.arange(6.0).reshape(3, 2)

    def f(x, y):
        return (numpy.multiply.outer(x, y) * w).sum() + numpy.subtract.outer(x, y).sum()

    assert numpy.multiply.outer(cr.tensor(x), y).numpy().tobytes() == (
        numpy.multiply.outer(x, y).tobytes()
    )
    gx, gy = cr.grad(f, argnums=(0, 1))(x, y)
    numpy.testing.assert_array_equal(gx, w @ y + 2)  # by hand
    numpy.testing.assert_array_equal(gy, x @ w - 3)

    def g(v):
        d = cr.tensor(numpy.zeros(4))
        numpy.add.at(d, numpy.array([0, 2, 2, 3]), v * 2.0)  # a repeated position accumulates
        numpy.subtract.at(d, numpy.array([1]), v[:1])
        return (d * numpy.arange(1.0, 5.0)).sum()

    v = numpy.array([1.0, 2.0, 3.0, 4.0])
    # by hand: d = [2 v0, -v0, 2 v1 + 2 v2, 2 v3]
    numpy.testing.assert_array_equal(cr.grad(g)(v), [0.0, 6.0, 6.0, 8.0])
    numpy.testing.assert_array_equal(cr.jit(cr.grad(g))(v), [0.0, 6.0, 6.0, 8.0])
    with pytest.raises(TypeError, match="plain NumPy array"):
        numpy.add.at(numpy.zeros(3), [0, 1], cr.tensor(numpy.ones(2), requires_grad=True))


def test_add_at_of_rows_by_an_index_array():
    # rows of a 2-D tensor by an integer array (negative ones wrap), values of exactly the
    # shape the index selects: the same sums as NumPy's, and each row's gradient its own
    idx = numpy.array([0, -1, 2, 0, 3])
    rows = numpy.arange(10.0).reshape(5, 2)

    def f(v):
        out = numpy.zeros_like(v[:4])  # a tensor: its writes are recorded
        numpy.add.at(out, idx, v * v)
        return (out * numpy.arange(1.0, 9.0).reshape(4, 2)).sum()

    want = numpy.zeros((4, 2))
    numpy.add.at(want, idx, rows * rows)
    value = f(cr.tensor(rows))
    assert value.numpy() == (want * numpy.arange(1.0, 9.0).reshape(4, 2)).sum()
    # by hand: d/dv[k] = 2 v[k] * weight[row of idx[k]]
    weights = numpy.arange(1.0, 9.0).reshape(4, 2)[idx % 4]
    numpy.testing.assert_array_equal(cr.grad(f)(rows), 2 * rows * weights)
    with pytest.raises(IndexError, match=r"numpy\.add\.at: index 9 is out of bounds"):
        numpy.add.at(cr.tensor(numpy.zeros(4)), numpy.array([0, 9]), cr.tensor(numpy.ones(2)))
