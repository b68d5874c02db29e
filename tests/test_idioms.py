"""NumPy's everyday idioms on chainrule tensors: the right gradient, or an error that names the
idiom and what to write instead (never a silent zero or a silently different value)."""

from __future__ import annotations

import numpy
import pytest

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
