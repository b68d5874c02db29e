"""Every error case of the spec, and the behaviours next to them that must keep working.

Each error test checks the exception type and that the message says *what* went wrong, *where*
(the operation, the shapes) and *how to fix it*.  Expected gradients come from hand-derived
formulas or from float64 central finite differences computed on plain NumPy code, never from
chainrule itself.
"""

from __future__ import annotations

import math
import re
import threading
from collections import namedtuple

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def numeric_grad(f, x, h=1e-6):
    """Float64 central finite difference of scalar ``f`` (plain NumPy) at array ``x``."""
    x = numpy.array(x, dtype=numpy.float64)
    g = numpy.zeros_like(x)
    for idx in numpy.ndindex(x.shape):
        step = h * max(1.0, abs(float(x[idx])))
        xp = x.copy()
        xm = x.copy()
        xp[idx] += step
        xm[idx] -= step
        g[idx] = (float(f(xp)) - float(f(xm))) / (2 * step)
    return g


def assert_message(excinfo, *patterns):
    """Every pattern (a regular expression, case-insensitive) occurs in the message."""
    msg = str(excinfo.value)
    for p in patterns:
        assert re.search(p, msg, re.IGNORECASE), f"{p!r} not found in message:\n{msg}"


def leaf(values, dtype=numpy.float64):
    return cr.tensor(numpy.array(values, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------------------------------------
# NumPy functions without a gradient rule
# ---------------------------------------------------------------------------------------------

UNSUPPORTED = [
    pytest.param(
        lambda t: numpy.union1d(t, t),
        [[2.0, 1.0], [1.0, 3.0]],
        "union1d",
        "numpy.union1d",
        id="union1d",
    ),
    pytest.param(
        numpy.trim_zeros, [0.0, 1.0, 2.0, 0.0], "trim_zeros", "numpy.trim_zeros", id="trim_zeros"
    ),
    pytest.param(
        numpy.sort_complex, [1.0, 3.0, 2.0], "sort_complex", "numpy.sort_complex", id="sort_complex"
    ),
    pytest.param(
        numpy.logaddexp.accumulate,
        [0.25, 0.5, 1.5],
        "logaddexp.accumulate",
        "numpy.logaddexp.accumulate",
        id="logaddexp.accumulate",
    ),
    pytest.param(
        lambda t: numpy.subtract.reduceat(t, [0, 1]),
        [1.0, 2.0, 3.0],
        "subtract.reduceat",
        "numpy.subtract.reduceat",
        id="subtract.reduceat",
    ),
]


@pytest.mark.parametrize("func, values, name, qualname", UNSUPPORTED)
def test_unsupported_function_on_requires_grad_tensor_raises(func, values, name, qualname):
    t = leaf(values)
    with pytest.raises(TypeError) as excinfo:
        func(t)
    # what (the function), why (no gradient rule), how to fix (.detach(), no_grad, defvjp)
    assert_message(
        excinfo,
        rf"\b{re.escape(name)}\b",
        r"no gradient rule",
        r"requires grad",
        r"\.detach\(\)",
        r"no_grad",
        r"defvjp",
    )


@pytest.mark.parametrize("func, values, name, qualname", UNSUPPORTED)
def test_unsupported_function_error_uses_the_real_qualified_name(func, values, name, qualname):
    # "numpy.inv" / "numpy.fft" do not exist (or are a module): the message must name the
    # function the user called, e.g. numpy.add.reduceat.
    t = leaf(values)
    with pytest.raises(TypeError) as excinfo:
        func(t)
    assert_message(excinfo, rf"{re.escape(qualname)}\b")


@pytest.mark.parametrize("func, values, name, qualname", UNSUPPORTED)
def test_unsupported_function_without_grad_returns_plain_result(func, values, name, qualname):
    data = numpy.array(values)
    expected = func(data)
    for arg in (cr.tensor(values), leaf(values).detach()):
        out = func(arg)
        assert isinstance(out, (numpy.ndarray, numpy.generic)) and not isinstance(out, cr.Tensor)
        numpy.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_unsupported_function_inside_no_grad_works():
    t = leaf([[0.25, 0.5], [4.0, 1.0]])
    with cr.no_grad():
        out = numpy.union1d(t, t)
    assert not isinstance(out, cr.Tensor)
    numpy.testing.assert_array_equal(out, [0.25, 0.5, 1.0, 4.0])


# NumPy functions written as compositions: what they refuse, and NumPy's own errors
REFUSED = [
    pytest.param(
        lambda t: numpy.vsplit(t, 2), (4,), ValueError, [r"vsplit", r"2 or more"], id="vsplit-1d"
    ),
    pytest.param(
        lambda t: numpy.dsplit(t, 2), (2, 4), ValueError, [r"dsplit", r"3 or more"], id="dsplit-2d"
    ),
    pytest.param(
        lambda t: numpy.hsplit(t, 1), (), ValueError, [r"hsplit", r"1 or more"], id="hsplit-0d"
    ),
    pytest.param(
        lambda t: numpy.hsplit(t, 3), (2, 4), ValueError, [r"equal division"], id="hsplit-uneven"
    ),
    pytest.param(
        lambda t: t.sum(axis=2),
        (2, 3),
        numpy.exceptions.AxisError,
        [r"sum", r"axis 2"],
        id="sum-method-axis",
    ),
    pytest.param(
        lambda t: t.max(axis=-3),
        (2, 3),
        numpy.exceptions.AxisError,
        [r"max", r"-3"],
        id="max-method-axis",
    ),
    pytest.param(
        lambda t: numpy.rollaxis(t, 0, 4),
        (2, 3),
        numpy.exceptions.AxisError,
        [r"rollaxis"],
        id="rollaxis-start",
    ),
    pytest.param(
        lambda t: numpy.select([t], [t]),
        (3,),
        TypeError,
        [r"select", r"boolean"],
        id="select-float-cond",
    ),
    pytest.param(
        lambda t: numpy.select([], [], t),
        (3,),
        ValueError,
        [r"select", r"empty"],
        id="select-empty",
    ),
    pytest.param(
        lambda t: numpy.partition(t, 5), (3,), ValueError, [r"out of bounds"], id="partition-kth"
    ),
    pytest.param(
        lambda t: numpy.linspace(t, 1.0, 3, device="gpu"),
        (),
        TypeError,
        [r"linspace", r"device"],
        id="linspace-device",
    ),
    pytest.param(
        lambda t: numpy.linspace(t, 1.0, -1),
        (),
        ValueError,
        [r"linspace", r"non-negative"],
        id="linspace-num",
    ),
    pytest.param(
        lambda t: numpy.gradient(t, numpy.arange(4.0) ** 2),
        (4,),
        TypeError,
        [r"gradient", r"scalar spacing", r"diff"],
        id="gradient-coordinates",
    ),
    pytest.param(
        lambda t: numpy.gradient(t, edge_order=3),
        (4,),
        ValueError,
        [r"edge_order"],
        id="gradient-edge-order",
    ),
    pytest.param(
        lambda t: numpy.gradient(t, edge_order=2),
        (2,),
        ValueError,
        [r"too small"],
        id="gradient-too-short",
    ),
    pytest.param(
        lambda t: numpy.cross(t, t),
        (4, 2),
        ValueError,
        [r"cross", r"3 components"],
        id="cross-2-vectors",
    ),
    pytest.param(
        lambda t: numpy.einsum(t, [0, 52]),
        (2, 2),
        ValueError,
        [r"einsum", r"valid range"],
        id="einsum-sublist-range",
    ),
    pytest.param(
        lambda t: numpy.einsum(t, [0, -1]),
        (2, 2),
        ValueError,
        [r"einsum", r"valid range"],
        id="einsum-sublist-negative",
    ),
    pytest.param(
        lambda t: numpy.einsum(t, [0, True]),
        (2, 2),
        TypeError,
        [r"einsum", r"integer or an ellipsis"],
        id="einsum-sublist-bool",
    ),
    pytest.param(
        lambda t: numpy.convolve(t, t, "bogus"),
        (3,),
        ValueError,
        [r"mode", r"valid"],
        id="convolve-mode",
    ),
    pytest.param(
        lambda t: numpy.correlate(t, t, 3),
        (3,),
        ValueError,
        [r"mode", r"0, 1, or 2"],
        id="correlate-mode-int",
    ),
    pytest.param(
        lambda t: numpy.convolve(t, t), (2, 2), ValueError, [r"convolve", r"deep"], id="convolve-2d"
    ),
    pytest.param(
        lambda t: numpy.correlate(t, t[:0]),
        (3,),
        ValueError,
        [r"correlate", r"empty"],
        id="correlate-empty",
    ),
    pytest.param(
        lambda t: numpy.interp(1.0, t, t), (3,), TypeError, [r"interp", r"xp"], id="interp-xp-grad"
    ),
    pytest.param(
        lambda t: numpy.interp(t, [0.0, 1.0], t),
        (3,),
        ValueError,
        [r"interp", r"same length"],
        id="interp-length",
    ),
    pytest.param(
        lambda t: numpy.interp(t, [0.0, 1.0], [1j, 2.0]),
        (3,),
        TypeError,
        [r"interp", r"complex"],
        id="interp-complex",
    ),
    pytest.param(
        lambda t: numpy.interp(t, [0.0, 1.0], [1.0, 2.0], period=0),
        (3,),
        ValueError,
        [r"period"],
        id="interp-period-0",
    ),
]


@pytest.mark.parametrize("func, shape, error, patterns", REFUSED)
def test_compositions_refuse_what_they_do_not_support_and_what_numpy_refuses(
    func, shape, error, patterns
):
    with pytest.raises(error) as excinfo:
        func(leaf(numpy.ones(shape)))
    assert_message(excinfo, *patterns)


# ---------------------------------------------------------------------------------------------
# Conversions to plain arrays, and ndarray methods given a tensor
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("convert", [numpy.asarray, numpy.array], ids=["asarray", "array"])
def test_converting_requires_grad_tensor_to_ndarray_raises(convert):
    t = leaf([1.0, 2.0])
    with pytest.raises(TypeError) as excinfo:
        convert(t)
    assert_message(excinfo, r"requires grad", r"plain numpy array", r"detach\(\)")


def test_converting_detached_or_no_grad_tensor_works():
    t = leaf([1.0, 2.0])
    numpy.testing.assert_array_equal(numpy.asarray(t.detach()), [1.0, 2.0])
    numpy.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    numpy.testing.assert_array_equal(numpy.asarray(cr.tensor([3.0, 4.0])), [3.0, 4.0])
    with cr.no_grad():
        numpy.testing.assert_array_equal(numpy.asarray(t), [1.0, 2.0])


def test_ndarray_dot_method_with_tensor_argument_raises_and_says_what_to_write():
    X = numpy.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    W = leaf([[0.5], [-1.0]])
    with pytest.raises(TypeError) as excinfo:
        X.dot(W)
    assert_message(
        excinfo, r"X\.dot\(W\)", r"chainrule\.tensor\(X\)", r"X @ W", r"numpy\.dot\(X, W\)"
    )


@pytest.mark.parametrize(
    "product",
    [lambda X, W: X @ W, lambda X, W: numpy.dot(X, W), lambda X, W: cr.tensor(X).dot(W)],
    ids=["matmul-operator", "numpy.dot", "tensor-method"],
)
def test_the_suggested_products_work_and_differentiate(product):
    X = numpy.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    Wv = numpy.array([[0.5], [-1.0]])
    W = leaf(Wv)
    loss = ((product(X, W) - 1.0) ** 2).sum()
    loss.backward()
    expected = 2 * X.T @ (X @ Wv - 1.0)  # d/dW ||XW - 1||^2
    numpy.testing.assert_allclose(W.grad, expected, rtol=1e-12)
    numpy.testing.assert_allclose(
        W.grad, numeric_grad(lambda w: ((X @ w - 1.0) ** 2).sum(), Wv), rtol=1e-6
    )


# ---------------------------------------------------------------------------------------------
# requires_grad on integer / boolean data
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, kind",
    [
        ([1, 2, 3], "integer"),
        (numpy.arange(3), "integer"),
        ([True, False], "boolean"),
        (numpy.array([1, 2], dtype=numpy.uint8), "integer"),
    ],
)
def test_requires_grad_on_non_float_data_raises(data, kind):
    with pytest.raises(TypeError) as excinfo:
        cr.tensor(data, requires_grad=True)
    assert_message(excinfo, r"chainrule\.tensor", kind, r"floating", r"dtype=float|1\.0")


def test_non_float_data_without_requires_grad_is_fine():
    t = cr.tensor([1, 2, 3])
    assert t.dtype.kind == "i" and not t.requires_grad
    assert cr.tensor([1, 2], requires_grad=True, dtype=float).dtype == numpy.float64


@pytest.mark.parametrize(
    "x",
    [3, numpy.int64(3), numpy.array([1, 2]), True],
    ids=["int", "numpy.int64", "int-array", "bool"],
)
def test_grad_of_integer_argument_raises(x):
    def f(x):
        return (x * 2.0).sum()

    with pytest.raises(TypeError) as excinfo:
        cr.grad(f)(x)
    # which argument (by its parameter name), what is wrong, how to fix it
    assert_message(excinfo, r"argument x", r"integer", r"float")


def test_grad_of_integer_leaf_inside_pytree_names_the_leaf():
    def f(p):
        return p["w"].sum() + p["n"]

    with pytest.raises(TypeError) as excinfo:
        cr.grad(f)({"w": numpy.ones(2), "n": numpy.array([1, 2])})
    assert_message(excinfo, r"\['n'\]", r"integer", r"float")


def test_grad_with_integer_non_differentiated_argument_is_fine():
    g = cr.grad(lambda x, n: (x**n).sum())(numpy.array([1.0, 2.0]), 3)
    numpy.testing.assert_allclose(g, [3.0, 12.0], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# backward() misuse
# ---------------------------------------------------------------------------------------------


def test_backward_on_non_scalar_without_gradient_raises():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    with pytest.raises(RuntimeError) as excinfo:
        y.backward()
    assert_message(excinfo, r"scalar", r"\(3,\)", r"sum\(\)|mean\(\)", r"gradient=")


def test_backward_on_non_scalar_with_gradient_works():
    x = leaf([1.0, 2.0, 3.0])
    (x**2).backward(gradient=numpy.array([1.0, 10.0, 100.0]))
    numpy.testing.assert_allclose(x.grad, [2.0, 40.0, 600.0])


def test_second_backward_through_freed_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x**2).sum()
    y.backward()
    with pytest.raises(RuntimeError) as excinfo:
        y.backward()
    assert_message(excinfo, r"freed", r"retain_graph=True")
    numpy.testing.assert_allclose(x.grad, [2.0, 4.0])  # the first pass is unchanged


def test_backward_through_a_freed_shared_subgraph_raises():
    x = leaf([1.0, 2.0])
    h = x * 2
    h.sum().backward()
    y2 = (h * 3).sum()  # a new root, but it reaches h, whose graph is freed
    with pytest.raises(RuntimeError) as excinfo:
        y2.backward()
    assert_message(excinfo, r"freed", r"retain_graph=True", r"multiply")


def test_retain_graph_allows_a_second_backward_and_accumulates():
    xv = numpy.array([0.5, -1.0, 2.0])
    x = leaf(xv)
    y = (numpy.sin(x) * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    expected = numpy.cos(xv) * xv + numpy.sin(xv)
    numpy.testing.assert_allclose(x.grad, 2 * expected, rtol=1e-12)


@pytest.mark.parametrize("gshape", [(3,), (2, 1), (1, 2), ()])
def test_backward_gradient_of_wrong_shape_raises(gshape):
    x = leaf([1.0, 2.0])
    y = x * 3
    with pytest.raises(ValueError) as excinfo:
        y.backward(gradient=numpy.ones(gshape))
    assert_message(excinfo, r"gradient", re.escape(str(gshape)), r"\(2,\)", r"must match")


def test_backward_on_tensor_that_does_not_require_grad_raises():
    for t in (cr.tensor([1.0, 2.0]).sum(), cr.tensor(3.0)):
        with pytest.raises(RuntimeError) as excinfo:
            t.backward()
        assert_message(excinfo, r"does not require grad", r"requires_grad=True")


def test_backward_on_result_computed_under_no_grad_raises():
    x = leaf([1.0, 2.0])
    with cr.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError) as excinfo:
        y.backward()
    assert_message(excinfo, r"does not require grad", r"no_grad")


# ---------------------------------------------------------------------------------------------
# out= into a tensor
# ---------------------------------------------------------------------------------------------


def test_ufunc_out_into_a_plain_array_raises_and_into_a_tensor_is_recorded():
    a = leaf([1.0, 2.0])
    b = cr.tensor([3.0, 4.0])
    with pytest.raises(TypeError) as excinfo:
        numpy.exp(a, out=numpy.empty(2))
    assert_message(excinfo, r"numpy\.exp", r"out=", r"not supported", r"returned value|result")
    for out in (cr.tensor([0.0, 0.0]), (cr.tensor([0.0, 0.0]),)):
        t = out if isinstance(out, cr.Tensor) else out[0]
        r = numpy.add(a, b, out=out)
        assert r is t
        numpy.testing.assert_array_equal(t.data, [4.0, 6.0])
        (t * t).sum().backward()  # d/da sum((a + b)^2) = 2 (a + b), through the write
        numpy.testing.assert_array_equal(a.grad, [8.0, 12.0])
        a.grad = None


@pytest.mark.parametrize("fname", ["sum", "mean", "prod", "max", "cumsum"])
def test_function_out_into_array_raises_and_into_tensor_is_recorded(fname):
    t = leaf([[1.0, 2.0], [3.0, 4.0]])
    func = getattr(numpy, fname)
    with pytest.raises(TypeError) as excinfo:
        func(t, axis=0, out=numpy.empty(2))
    assert_message(excinfo, fname, r"out=", r"not supported", r"result")
    out = cr.tensor([0.0, 0.0]) if fname != "cumsum" else cr.tensor(numpy.zeros((2, 2)))
    func(t, axis=0, out=out)
    numpy.testing.assert_array_equal(out.data, func(t.data, axis=0))
    out.sum().backward()
    want = cr.grad(lambda x: func(x, axis=0).sum())(t.data)
    numpy.testing.assert_array_equal(t.grad, want)


# ---------------------------------------------------------------------------------------------
# In-place assignment
# ---------------------------------------------------------------------------------------------


def test_setitem_on_requires_grad_leaf_raises_and_leaves_it_unchanged():
    t = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError) as excinfo:
        t[0] = 5.0
    assert_message(excinfo, r"in-place", r"leaf", r"requires grad", r"copy\(\)")
    numpy.testing.assert_array_equal(t.data, [1.0, 2.0, 3.0])
    assert t.is_leaf and t.requires_grad


def test_setitem_on_leaf_under_no_grad_follows_the_message_advice():
    # The error above says "or update the data under chainrule.no_grad()": that must work
    # (the usual parameter-update idiom, as in PyTorch).
    t = leaf([1.0, 2.0, 3.0])
    with cr.no_grad():
        t[0] = 5.0
    numpy.testing.assert_array_equal(t.data, [5.0, 2.0, 3.0])
    assert t.is_leaf and t.requires_grad
    (t**2).sum().backward()
    numpy.testing.assert_allclose(t.grad, [10.0, 4.0, 6.0])


def test_setitem_on_tensor_read_by_an_unreachable_operation_raises_and_keeps_gradients():
    class Holder:
        pass

    t = leaf([1.0, 2.0, 3.0])
    u = t * 1.0
    held = Holder()
    held.v = (u * u).sum()  # reads u; kept where the write cannot find it (an attribute)
    with pytest.raises(RuntimeError) as excinfo:
        u[0] = 5.0
    assert_message(excinfo, r"in-place", r"already read", r"copy")
    numpy.testing.assert_array_equal(u.data, [1.0, 2.0, 3.0])
    held.v.backward()
    numpy.testing.assert_allclose(t.grad, [2.0, 4.0, 6.0])


def test_setitem_on_fresh_intermediate_is_recorded():
    tv = numpy.array([1.0, 2.0, 3.0])
    wv = 2.0
    t = leaf(tv)
    w = cr.tensor(wv, requires_grad=True)
    u = t * 1
    u[0] = 5 * w
    numpy.testing.assert_array_equal(u.data, [10.0, 2.0, 3.0])
    loss = (u**2).sum()
    loss.backward()

    def plain(tt, ww):
        uu = tt * 1
        uu[0] = 5 * ww
        return (uu**2).sum()

    # hand formula: u = [5w, t1, t2]; dL/dt = [0, 2 t1, 2 t2], dL/dw = 2 * 5w * 5 = 50 w
    assert t.grad is not None and w.grad is not None
    numpy.testing.assert_allclose(t.grad, [0.0, 4.0, 6.0])
    numpy.testing.assert_allclose(w.grad, 50 * wv)
    numpy.testing.assert_allclose(t.grad, numeric_grad(lambda x: plain(x, wv), tv), rtol=1e-6)
    numpy.testing.assert_allclose(w.grad, numeric_grad(lambda x: plain(tv, x), wv), rtol=1e-6)


def test_setitem_slice_with_broadcast_value_is_recorded():
    tv = numpy.array([0.3, -0.7, 1.1])
    wv = 0.4
    c = numpy.array([1.0, 2.0, 3.0])
    t = leaf(tv)
    w = cr.tensor(wv, requires_grad=True)
    u = t * 2
    u[1:] = numpy.sin(w)
    (u * c).sum().backward()
    assert t.grad is not None and w.grad is not None
    numpy.testing.assert_allclose(t.grad, [2.0, 0.0, 0.0])
    numpy.testing.assert_allclose(w.grad, math.cos(wv) * (2.0 + 3.0), rtol=1e-12)


def test_setitem_into_constant_tensor_records_the_value():
    # a constant (no grad) receiving a value that requires grad becomes part of the graph
    w = cr.tensor(2.0, requires_grad=True)
    c = cr.tensor([1.0, 1.0, 1.0])
    c[1] = w * 3
    assert c.requires_grad
    (c**2).sum().backward()
    assert w.grad is not None
    numpy.testing.assert_allclose(w.grad, 2 * 6.0 * 3)  # d/dw (3w)^2 = 18 w


def test_copy_then_setitem_as_the_message_suggests():
    tv = numpy.array([1.0, 2.0, 3.0])
    t = leaf(tv)
    u = t.copy()
    u[2] = 0.0
    (u * numpy.array([1.0, 2.0, 3.0])).sum().backward()
    assert t.grad is not None
    numpy.testing.assert_allclose(t.grad, [1.0, 2.0, 0.0])


def test_augmented_assignment_rebinds_and_keeps_the_old_graph():
    tv = numpy.array([1.0, -2.0, 0.5])
    t = leaf(tv)
    original = t
    u = t * 2
    v = t * 3  # recorded before the rebinding, reads the original t
    t += u  # t is now a new tensor t + u; the leaf is untouched
    assert t is not original
    assert original.is_leaf and original.requires_grad
    numpy.testing.assert_array_equal(original.data, tv)
    numpy.testing.assert_array_equal(t.data, 3 * tv)
    (t * t).sum().backward(retain_graph=True)
    numpy.testing.assert_allclose(original.grad, 18 * tv)  # d/dx (3x)^2
    original.grad = None
    v.sum().backward()
    numpy.testing.assert_allclose(original.grad, [3.0, 3.0, 3.0])


def test_augmented_assignment_on_intermediate_keeps_old_value_and_graph():
    x = leaf([1.0, 2.0])
    a = x * 2
    old = a
    a += 1.0
    a *= x
    numpy.testing.assert_array_equal(old.data, [2.0, 4.0])
    numpy.testing.assert_array_equal(a.data, [3.0, 10.0])
    a.sum().backward(retain_graph=True)
    numpy.testing.assert_allclose(x.grad, 4 * numpy.array([1.0, 2.0]) + 1)  # d/dx (2x+1)x
    x.grad = None
    old.sum().backward()
    numpy.testing.assert_allclose(x.grad, [2.0, 2.0])


# ---------------------------------------------------------------------------------------------
# Mutation safety
# ---------------------------------------------------------------------------------------------


def test_tensor_copies_its_input():
    arr = numpy.array([1.0, 2.0, 3.0])
    x = cr.tensor(arr, requires_grad=True)
    arr[:] = 100.0
    numpy.testing.assert_array_equal(x.data, [1.0, 2.0, 3.0])
    (x**2).sum().backward()
    numpy.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])


def test_mutating_source_of_constant_tensor_between_forward_and_backward():
    carr = numpy.array([3.0, 4.0])
    c = cr.tensor(carr)
    x = leaf([1.0, 1.0])
    y = (x * c).sum()
    carr[:] = 0.0
    y.backward()
    numpy.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_tensor_of_tensor_copies():
    x = leaf([1.0, 2.0])
    y = cr.tensor(x)
    assert not numpy.shares_memory(x.data, y.data)


def test_backward_gradient_argument_is_copied():
    g = numpy.array([1.0, 2.0])
    x = leaf([3.0, 4.0])
    x.backward(gradient=g)
    g[:] = 0.0
    numpy.testing.assert_allclose(x.grad, [1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# NaN and inf
# ---------------------------------------------------------------------------------------------


def test_log_of_zero_gives_minus_inf_with_numpy_warning():
    xv = numpy.array([0.0, 1.0, 2.0])
    x = leaf(xv)
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        y = numpy.log(x)
    with numpy.errstate(divide="ignore"):
        expected = numpy.log(xv)
    numpy.testing.assert_array_equal(y.data, expected)
    assert y.data[0] == -numpy.inf
    with numpy.errstate(divide="ignore", invalid="ignore"):
        y.sum().backward()
    numpy.testing.assert_array_equal(x.grad, [numpy.inf, 1.0, 0.5])  # 1/x


def test_sqrt_of_negative_gives_nan_with_numpy_warning():
    x = leaf([-1.0, 4.0])
    with pytest.warns(RuntimeWarning, match="invalid value"):
        y = numpy.sqrt(x)
    assert numpy.isnan(y.data[0]) and y.data[1] == 2.0
    with numpy.errstate(all="ignore"):
        y.sum().backward()
    assert numpy.isnan(x.grad[0])
    numpy.testing.assert_allclose(x.grad[1], 0.25)


def test_nan_propagates_only_where_numpy_puts_it():
    x = leaf([numpy.nan, 2.0, 3.0])
    y = (x * x).sum()
    assert numpy.isnan(y.data)
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [numpy.nan, 4.0, 6.0])

    # prod: d/dx_i = product of the others, so the nan element's own derivative is finite
    z = leaf([numpy.nan, 2.0, 3.0])
    z.prod().backward()
    numpy.testing.assert_array_equal(z.grad, [6.0, numpy.nan, numpy.nan])


def test_inf_propagates():
    x = leaf([numpy.inf, 1.0, -numpy.inf])
    y = numpy.exp(-x * x)
    numpy.testing.assert_array_equal(y.data, [0.0, math.exp(-1.0), 0.0])
    with numpy.errstate(invalid="ignore"):
        y.sum().backward()
    # -2x exp(-x^2): inf * 0 is nan, as in NumPy
    with numpy.errstate(invalid="ignore"):
        expected = -2 * x.data * numpy.exp(-x.data * x.data)
    numpy.testing.assert_array_equal(x.grad, expected)

    m = leaf([numpy.inf, 1.0, 2.0])
    m.max().backward()
    numpy.testing.assert_array_equal(m.grad, [1.0, 0.0, 0.0])


def test_engine_keeps_working_after_nan_and_inf():
    x = leaf([numpy.nan, numpy.inf, -numpy.inf, 0.0])
    with numpy.errstate(all="ignore"):
        y = (numpy.log(x) + numpy.sqrt(x) + x / x).sum()
        y.backward()
    assert x.grad.shape == (4,)
    # a fresh computation afterwards is unaffected
    z = leaf([0.5, 2.0])
    (numpy.log(z) * z).sum().backward()
    numpy.testing.assert_allclose(z.grad, numpy.log([0.5, 2.0]) + 1.0, rtol=1e-12)
    g = cr.grad(lambda a: numpy.tanh(a).sum())(numpy.array([0.1, -0.3]))
    numpy.testing.assert_allclose(g, 1 - numpy.tanh([0.1, -0.3]) ** 2, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad data for chainrule.tensor
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, pattern",
    [
        ([[1.0, 2.0], [3.0]], r"rectangular"),
        ([[1.0], [2.0, 3.0], []], r"rectangular"),
        (numpy.array([1.0, "a"], dtype=object), r"object"),
        (numpy.array([1.0, 2.0], dtype=object), r"object"),
        (None, r"object|not numeric"),
        ("abc", r"not numeric"),
        (["a", "b"], r"not numeric"),
        (b"ab", r"not numeric"),
        ([[1.0, 2.0], ["a", 3.0]], r"not numeric"),
        ({"a": 1.0}, r"object|not numeric"),
    ],
)
def test_tensor_of_bad_data_raises_clear_type_error(data, pattern):
    for rg in (False, True):
        with pytest.raises(TypeError) as excinfo:
            cr.tensor(data, requires_grad=rg)
        assert_message(excinfo, r"chainrule\.tensor", pattern, r"numbers")


# ---------------------------------------------------------------------------------------------
# Mismatched shapes
# ---------------------------------------------------------------------------------------------


def _numpy_message(func, *args):
    with pytest.raises(ValueError) as excinfo:
        func(*args)
    return str(excinfo.value).strip()


@pytest.mark.parametrize(
    "call, func, name",
    [
        (lambda a, b: a + b, numpy.add, "add"),
        (lambda a, b: numpy.add(a, b), numpy.add, "add"),
        (lambda a, b: a * b, numpy.multiply, "multiply"),
        (lambda a, b: numpy.subtract(a, b), numpy.subtract, "subtract"),
        (lambda a, b: a @ b, numpy.matmul, "matmul"),
    ],
)
def test_mismatched_shapes_raise_value_error_with_numpy_message(call, func, name):
    a = cr.tensor(numpy.ones((2, 3)), requires_grad=True)
    b = cr.tensor(numpy.ones(4))
    with pytest.raises(ValueError) as excinfo:
        call(a, b)
    expected = _numpy_message(func, numpy.ones((2, 3)), numpy.ones(4))
    assert expected in str(excinfo.value)
    assert_message(excinfo, rf"\b{name}\b", r"\(2, ?3\)", r"\(4,\)")


def test_mismatched_shapes_with_plain_array_on_the_left():
    b = cr.tensor(numpy.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as excinfo:
        numpy.ones(4) + b
    expected = _numpy_message(numpy.add, numpy.ones(4), numpy.ones((2, 3)))
    assert expected in str(excinfo.value)
    assert_message(excinfo, r"\badd\b", r"\(2, ?3\)", r"\(4,\)")


# ---------------------------------------------------------------------------------------------
# no_grad
# ---------------------------------------------------------------------------------------------


def test_no_grad_results_do_not_require_grad_and_recording_resumes():
    x = leaf([1.0, 2.0])
    assert cr.is_grad_enabled()
    with cr.no_grad():
        assert not cr.is_grad_enabled()
        y = numpy.sin(x) * 2 + x
        assert not y.requires_grad
        with cr.enable_grad():
            z = x * 3
        assert z.requires_grad
    assert cr.is_grad_enabled()
    w = x * 3
    assert w.requires_grad
    w.sum().backward()
    numpy.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_no_grad_restores_state_after_exception():
    with pytest.raises(ZeroDivisionError):
        with cr.no_grad():
            _ = 1 / 0
    assert cr.is_grad_enabled()
    assert (leaf([1.0]) * 2).requires_grad


def test_no_grad_is_thread_local():
    x = leaf([1.0, 2.0])
    inside = threading.Event()
    checked = threading.Event()
    results = {}

    def worker():
        try:
            with cr.no_grad():
                inside.set()
                assert checked.wait(10)
                results["worker_enabled"] = cr.is_grad_enabled()
                results["worker"] = (x * 2).requires_grad
        except BaseException as e:  # pragma: no cover - reported below
            results["error"] = e
            inside.set()

    th = threading.Thread(target=worker)
    th.start()
    try:
        assert inside.wait(10)
        # the other thread is inside no_grad right now; this thread still records
        results["main_enabled"] = cr.is_grad_enabled()
        y = (x * 5).sum()
        results["main"] = y.requires_grad
    finally:
        checked.set()
        th.join(10)
    assert "error" not in results, results.get("error")
    assert results == {"main_enabled": True, "main": True, "worker_enabled": False, "worker": False}
    y.backward()
    numpy.testing.assert_allclose(x.grad, [5.0, 5.0])


def test_new_threads_start_with_grad_enabled_even_from_inside_no_grad():
    results = {}

    def worker():
        results["enabled"] = cr.is_grad_enabled()
        results["rg"] = (leaf([1.0]) * 2).requires_grad

    with cr.no_grad():
        th = threading.Thread(target=worker)
        th.start()
        th.join(10)
    assert results == {"enabled": True, "rg": True}


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------


def test_float32_stays_float32_with_python_float_constants():
    xv = numpy.array([0.5, 1.0, 2.0], dtype=numpy.float32)
    x = cr.tensor(xv, requires_grad=True)
    y = (x * 0.5 + 1.5) ** 2.0 + 3.0 / x - numpy.exp(x * 0.1) + numpy.float32(2) * x
    assert y.dtype == numpy.float32
    loss = y.mean()
    assert loss.dtype == numpy.float32
    loss.backward()
    assert x.grad.dtype == numpy.float32 and x.grad.shape == (3,)
    x64 = xv.astype(numpy.float64)
    expected = ((x64 * 0.5 + 1.5) * 1.0 - 3.0 / x64**2 - 0.1 * numpy.exp(0.1 * x64) + 2) / 3
    numpy.testing.assert_allclose(x.grad, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: (x * 0.1).var(),
        lambda x: (x / 3.0).std(),
        lambda x: numpy.linalg.norm(x * 2.0),
        lambda x: numpy.tanh(x * 0.3).prod(),
        lambda x: numpy.arctan2(x, 2.0).sum(),
        lambda x: numpy.hypot(x, 0.5).sum(),
        lambda x: numpy.logaddexp(x, 1.0).max(),
        lambda x: (2.0**x).sum(),
        lambda x: numpy.sqrt(x + 1.0).mean(),
    ],
    ids=["var", "std", "norm", "tanh-prod", "arctan2", "hypot", "logaddexp-max", "rpow", "sqrt"],
)
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_gradient_dtype_matches_input_dtype(f, dtype):
    xv = numpy.array([0.25, 0.75, 1.5], dtype=dtype)
    x = cr.tensor(xv, requires_grad=True)
    y = f(x)
    assert y.dtype == dtype
    y.backward()
    assert x.grad.dtype == dtype and x.grad.shape == xv.shape
    g = cr.grad(f)(xv)
    assert type(g) is numpy.ndarray and g.dtype == dtype and g.shape == xv.shape

    expected = numeric_grad(f, xv.astype(numpy.float64))  # f on plain float64 arrays
    tol = 1e-3 if dtype == numpy.float32 else 1e-6
    numpy.testing.assert_allclose(g, expected, rtol=tol, atol=tol)


def test_float32_and_float64_leaves_in_one_graph_keep_their_dtypes():
    a = cr.tensor(numpy.array([1.0, 2.0], dtype=numpy.float32), requires_grad=True)
    b = cr.tensor(numpy.array([3.0, 4.0]), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == numpy.float32 and b.grad.dtype == numpy.float64
    numpy.testing.assert_allclose(a.grad, [3.0, 4.0])
    numpy.testing.assert_allclose(b.grad, [1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# grad(): structure of the result, argnums, has_aux, aliasing
# ---------------------------------------------------------------------------------------------

Pair = namedtuple("Pair", "a b")


def test_grad_returns_the_pytree_structure_of_the_argument():
    params = {
        "w": numpy.array([1.0, 2.0]),
        "layers": [numpy.array([[0.5]]), (numpy.array(3.0), 1.5)],
        "z": {"inner": numpy.array([-1.0, 0.0, 1.0])},
    }

    def f(p):
        w = p["w"]
        m, (s, c) = p["layers"]
        return (w * s).sum() + (m**2).sum() * c + (p["z"]["inner"] ** 3).sum()

    g = cr.grad(f)(params)
    assert type(g) is dict and list(g) == ["w", "layers", "z"]
    assert type(g["layers"]) is list and len(g["layers"]) == 2
    assert type(g["layers"][1]) is tuple and len(g["layers"][1]) == 2
    assert type(g["z"]) is dict and list(g["z"]) == ["inner"]
    numpy.testing.assert_allclose(g["w"], [3.0, 3.0])
    numpy.testing.assert_allclose(g["layers"][0], [[2 * 0.5 * 1.5]])
    numpy.testing.assert_allclose(g["layers"][1][0], 3.0)  # sum(w)
    numpy.testing.assert_allclose(g["layers"][1][1], 0.25)  # m^2
    numpy.testing.assert_allclose(g["z"]["inner"], [3.0, 0.0, 3.0])
    for got, arg in [
        (g["w"], params["w"]),
        (g["layers"][0], params["layers"][0]),
        (g["layers"][1][0], params["layers"][1][0]),
        (g["z"]["inner"], params["z"]["inner"]),
    ]:
        assert isinstance(got, numpy.ndarray) and not isinstance(got, cr.Tensor)
        assert got.shape == arg.shape and got.dtype == arg.dtype


def test_grad_keeps_namedtuples():
    g = cr.grad(lambda p: (p.a * p.b).sum())(Pair(numpy.array([1.0, 2.0]), numpy.array([3.0, 4.0])))
    assert type(g) is Pair
    numpy.testing.assert_allclose(g.a, [3.0, 4.0])
    numpy.testing.assert_allclose(g.b, [1.0, 2.0])


def test_grad_argnums():
    a = numpy.array([1.0, 2.0])
    b = numpy.array([3.0, 4.0])
    c = 0.5

    def f(a, b, c):
        return (a * b).sum() * c

    ga = cr.grad(f)(a, b, c)
    assert isinstance(ga, numpy.ndarray)
    numpy.testing.assert_allclose(ga, b * c)
    g = cr.grad(f, argnums=(0, 2))(a, b, c)
    assert type(g) is tuple and len(g) == 2
    numpy.testing.assert_allclose(g[0], b * c)
    numpy.testing.assert_allclose(g[1], (a * b).sum())
    g1 = cr.grad(f, argnums=(1,))(a, b, c)
    assert type(g1) is tuple and len(g1) == 1
    numpy.testing.assert_allclose(g1[0], a * c)
    gneg = cr.grad(f, argnums=-2)(a, b, c)
    numpy.testing.assert_allclose(gneg, a * c)


def test_grad_argnums_out_of_range_raises():
    with pytest.raises(ValueError) as excinfo:
        cr.grad(lambda a: a.sum(), argnums=3)(numpy.ones(2))
    assert_message(excinfo, r"argnums", r"3")


def test_grad_has_aux():
    x = numpy.array([1.0, -2.0])

    def f(x):
        y = x**2
        return y.sum(), {"y": y, "label": "sq"}

    g, aux = cr.grad(f, has_aux=True)(x)
    numpy.testing.assert_allclose(g, 2 * x)
    assert set(aux) == {"y", "label"} and aux["label"] == "sq"
    assert isinstance(aux["y"], numpy.ndarray) and not isinstance(aux["y"], cr.Tensor)
    numpy.testing.assert_allclose(aux["y"], x**2)

    (value, aux2), g2 = cr.value_and_grad(f, has_aux=True)(x)
    numpy.testing.assert_allclose(value, 5.0)
    numpy.testing.assert_allclose(g2, 2 * x)


def test_grad_has_aux_without_pair_raises():
    with pytest.raises(TypeError) as excinfo:
        cr.grad(lambda x: (x**2).sum(), has_aux=True)(numpy.ones(2))
    assert_message(excinfo, r"has_aux", r"pair")


def test_grad_of_non_scalar_function_raises():
    with pytest.raises(TypeError) as excinfo:
        cr.grad(lambda x: x**2)(numpy.ones(3))
    assert_message(excinfo, r"scalar", r"\(3,\)", r"sum|mean")


def test_gradient_of_unused_argument_is_zeros_of_its_shape():
    g = cr.grad(lambda a, b: (a**2).sum(), argnums=(0, 1))(numpy.ones(2), numpy.ones((2, 3)))
    numpy.testing.assert_array_equal(g[1], numpy.zeros((2, 3)))


def _assert_independent(g1, g2):
    assert not numpy.shares_memory(g1, g2)
    before = g2.copy()
    g1[...] = 123.0  # must be writable and must not change the other
    numpy.testing.assert_array_equal(g2, before)


def test_backward_gradients_of_two_leaves_never_alias():
    a = leaf([1.0, 2.0])
    b = leaf([3.0, 4.0])
    (a + b).sum().backward()
    numpy.testing.assert_array_equal(a.grad, [1.0, 1.0])
    numpy.testing.assert_array_equal(b.grad, [1.0, 1.0])
    _assert_independent(a.grad, b.grad)


def test_backward_gradient_of_a_non_scalar_add_does_not_alias_the_seed_or_each_other():
    a = leaf([1.0, 2.0])
    b = leaf([3.0, 4.0])
    g = numpy.array([1.0, 2.0])
    (a + b).backward(gradient=g)
    _assert_independent(a.grad, b.grad)
    numpy.testing.assert_array_equal(g, [1.0, 2.0])
    numpy.testing.assert_array_equal(b.grad, [1.0, 2.0])


def test_broadcast_gradient_is_a_writable_array_of_its_own():
    a = leaf([1.0, 2.0, 3.0])
    b = leaf(0.5)
    (a.sum() + b).backward()
    a.grad[0] = 7.0  # a broadcast view would be read-only
    numpy.testing.assert_array_equal(a.grad, [7.0, 1.0, 1.0])
    numpy.testing.assert_array_equal(b.grad, 1.0)


def test_a_reshaped_gradient_and_its_base_go_to_two_leaves_without_sharing_memory():
    # B's gradient is a reshape of the same array W receives (broadcasting over a length-1 axis)
    for w_first in (True, False):  # the walk reaches the newer leaf first
        if w_first:
            W, B = leaf(numpy.ones((1, 3))), leaf(numpy.ones(3))
        else:
            B, W = leaf(numpy.ones(3)), leaf(numpy.ones((1, 3)))
        ((W + B) * 2.0).sum().backward()
        numpy.testing.assert_array_equal(B.grad, [2.0, 2.0, 2.0])
        _assert_independent(W.grad, B.grad)
        _assert_independent(B.grad, W.grad)


def test_slices_of_one_gradient_given_to_two_leaves_are_copies():
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    (numpy.concatenate([a, b]) * numpy.array([1.0, 2.0, 3.0])).sum().backward()
    numpy.testing.assert_array_equal(a.grad, [1.0, 2.0])
    numpy.testing.assert_array_equal(b.grad, [3.0])
    _assert_independent(a.grad, b.grad)
    for g in (a.grad, b.grad):  # neither keeps the whole gradient alive
        assert g.base is None or g.base.size == g.size


def test_the_seed_of_backward_is_never_handed_out():
    for shape in ((), (1,), (1, 1)):
        x = leaf(numpy.full(shape, 2.0))
        x.sum().backward()
        x.grad[...] = 5.0  # writable, and writing must not change the seed
        y = leaf(numpy.full(shape, 2.0))
        (y * 3.0).sum().backward()
        numpy.testing.assert_array_equal(y.grad, numpy.full(shape, 3.0))
        z = leaf(numpy.full(shape, 2.0))
        if shape:
            z.backward(gradient=numpy.ones(shape))
        else:
            z.backward()
        z.grad[...] = 7.0
        numpy.testing.assert_array_equal(leaf_sum_grad(shape), numpy.ones(shape))


def leaf_sum_grad(shape):
    w = leaf(numpy.zeros(shape))
    w.sum().backward()
    return w.grad


def test_grad_results_never_alias():
    ga, gb = cr.grad(lambda a, b: (a + b).sum(), argnums=(0, 1))(numpy.ones(2), numpy.ones(2))
    _assert_independent(ga, gb)
    g = cr.grad(lambda p: (p["x"] - p["y"]).sum() + p["x"].sum())(
        {"x": numpy.ones(3), "y": numpy.ones(3)}
    )
    _assert_independent(g["x"], g["y"])
    numpy.testing.assert_array_equal(g["y"], -numpy.ones(3))


# ---------------------------------------------------------------------------------------------
# Higher derivatives
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "f, d2",
    [
        (lambda x: x**3, lambda x: 6 * x),
        (numpy.sin, lambda x: -numpy.sin(x)),
        (lambda x: numpy.exp(x) * numpy.sin(x), lambda x: 2 * numpy.exp(x) * numpy.cos(x)),
        (lambda x: numpy.log(x) * x, lambda x: 1 / x),
        (lambda x: 1.0 / (1.0 + x**2), lambda x: (6 * x**2 - 2) / (1 + x**2) ** 3),
    ],
    ids=["cube", "sin", "exp-sin", "xlogx", "lorentz"],
)
@pytest.mark.parametrize("x", [0.7, 1.3, 2.0])
def test_grad_of_grad_matches_analytic_second_derivative(f, d2, x):
    got = cr.grad(cr.grad(f))(x)
    numpy.testing.assert_allclose(got, d2(x), rtol=1e-10)


def test_third_derivative():
    numpy.testing.assert_allclose(cr.grad(cr.grad(cr.grad(lambda x: x**3)))(1.7), 6.0)
    numpy.testing.assert_allclose(cr.grad(cr.grad(cr.grad(numpy.sin)))(0.4), -math.cos(0.4))


def test_grad_of_grad_with_vector_input_gives_hessian_vector_product():
    xv = numpy.array([0.3, -0.5, 1.2])
    v = numpy.array([1.0, 2.0, -1.0])

    def f(x):
        return (numpy.sin(x) * x.sum()).sum()

    def hvp(x):
        return (cr.grad(f)(x) * v).sum()

    got = cr.grad(hvp)(xv)
    # f = S * sum(sin x), S = sum(x). H_ij = cos x_i + cos x_j + delta_ij (-S sin x_i)
    S = xv.sum()
    H = numpy.cos(xv)[:, None] + numpy.cos(xv)[None, :] - numpy.diag(S * numpy.sin(xv))
    numpy.testing.assert_allclose(got, H @ v, rtol=1e-10)


def test_backward_create_graph_then_differentiate_grad_again():
    xv = numpy.array([0.5, -1.0, 2.0])
    x = leaf(xv)
    (x**3).sum().backward(create_graph=True)
    gx = x.grad
    assert isinstance(gx, cr.Tensor) and gx.requires_grad
    numpy.testing.assert_allclose(gx.data, 3 * xv**2)
    x.grad = None
    (gx * gx).sum().backward()  # d/dx sum(9 x^4) = 36 x^3
    numpy.testing.assert_allclose(x.grad, 36 * xv**3, rtol=1e-12)


def test_backward_create_graph_scalar_exp_sin():
    xv = 0.8
    x = cr.tensor(xv, requires_grad=True)
    (numpy.exp(x) * numpy.sin(x)).backward(create_graph=True)
    first = x.grad
    numpy.testing.assert_allclose(first.data, math.exp(xv) * (math.sin(xv) + math.cos(xv)))
    x.grad = None
    first.backward()
    numpy.testing.assert_allclose(x.grad, 2 * math.exp(xv) * math.cos(xv), rtol=1e-12)


def test_check_grads_order_two_agrees_and_detects_wrong_rule():
    cr.check_grads(lambda x: (numpy.tanh(x) * x).sum(), numpy.array([0.2, -0.4]), order=2)

    # a deliberately wrong function: its "gradient" disagrees with finite differences
    def bad(x):
        return (
            (x * numpy.sin(x.detach())).sum()
            if isinstance(x, cr.Tensor)
            else (x * numpy.sin(x)).sum()
        )

    with pytest.raises(cr.GradientCheckError):
        cr.check_grads(bad, numpy.array([0.3, 0.9]))


def test_a_rule_that_fails_halfway_leaves_no_pending_gradient_behind():
    # The walk keeps pending gradients on the nodes; an error must not leave any there for the
    # next backward() through the same (retained) graph to add to.
    calls = []

    def flaky_rule(g, out, x):
        calls.append(1)
        if len(calls) == 1:
            raise FloatingPointError("planted failure")
        return g * 3.0

    triple = cr.primitive(lambda x: x * 3.0, name="flaky_triple")
    cr.defvjp(triple, flaky_rule)
    x = leaf([1.0, 2.0])
    h = x * 2.0  # pending gradients wait on h and on u during the walk
    u = numpy.sin(h)
    loss = (triple(h) + u * 1.0).sum()
    with pytest.raises(FloatingPointError, match="planted"):
        loss.backward(retain_graph=True)
    assert x.grad is None
    loss.backward()
    expected = 2.0 * (3.0 + numpy.cos(2.0 * numpy.array([1.0, 2.0])))
    numpy.testing.assert_allclose(x.grad, expected, rtol=1e-14)


def test_the_gradient_of_a_scalar_leaf_is_an_array_however_it_is_added_up():
    # Two contributions to a 0-d leaf, and a second backward() adding to .grad: NumPy returns
    # a scalar for 0-d + 0-d, but .grad stays an ndarray (so that in-place updates work)
    x = leaf(2.0)
    (x * x + x).backward()
    assert type(x.grad) is numpy.ndarray and x.grad.shape == ()
    numpy.testing.assert_array_equal(x.grad, 5.0)
    (x * 3.0).backward()
    assert type(x.grad) is numpy.ndarray
    numpy.testing.assert_array_equal(x.grad, 8.0)
    x.grad += 1.0
    numpy.testing.assert_array_equal(x.grad, 9.0)


def test_no_grad_and_enable_grad_as_decorators_nest_and_restore():
    w = leaf([1.0, 2.0])

    @cr.no_grad()
    def off(depth):
        inner = off(depth - 1) if depth else None
        return (w * 2).requires_grad, cr.is_grad_enabled(), inner

    @cr.enable_grad()
    def on():
        return (w * 2).requires_grad

    assert off(3)[:2] == (False, False)
    assert cr.is_grad_enabled()
    with cr.no_grad():
        assert on() is True  # switched back on inside, off again after
        assert not cr.is_grad_enabled()
    assert cr.is_grad_enabled()
    with pytest.raises(KeyError):
        with cr.no_grad():
            raise KeyError("inside")
    assert cr.is_grad_enabled() and (w * 2).requires_grad


def test_numpy_array_of_a_tensor_names_the_copy_that_keeps_the_gradient():
    # u = numpy.array(u0, copy=True): the working-copy idiom of explicit time stepping
    def loss(u0):
        u = numpy.array(u0, dtype=float, copy=True)
        return (u**2).sum()

    with pytest.raises(TypeError, match=r"numpy\.array\(t\).*t\.copy\(\) or numpy\.copy\(t\)"):
        cr.grad(loss)(numpy.linspace(0, 1, 6))

    def fixed(u0):
        u = u0.copy()
        u[1:-1] += 0.1 * (u[2:] - 2 * u[1:-1] + u[:-2])
        return (u**2).sum()

    x = numpy.linspace(0, 1, 6) ** 2
    numpy.testing.assert_allclose(cr.grad(fixed)(x), fd_grad(fixed, x), rtol=1e-6)
