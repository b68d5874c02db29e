"""chainrule.numpy: NumPy's list idioms (array of tensors, r_, c_, a list given to a function).

Expected gradients are derived by hand in each test's comment; values against plain NumPy.
"""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
import chainrule.numpy as np


def test_everything_else_is_numpys_own_object():
    assert np.float64 is numpy.float64 and np.ndarray is numpy.ndarray
    assert np.sin is numpy.sin and np.add is numpy.add  # ufuncs untouched
    assert np.random is numpy.random and np.pi == numpy.pi
    assert np.linalg.LinAlgError is numpy.linalg.LinAlgError
    a = numpy.arange(6.0).reshape(2, 3)
    numpy.testing.assert_array_equal(np.mean(a, axis=0), numpy.mean(a, axis=0))
    numpy.testing.assert_array_equal(np.array([[1, 2], [3, 4]]), numpy.array([[1, 2], [3, 4]]))
    assert np.array([1, 2], dtype=numpy.float32).dtype == numpy.float32
    numpy.testing.assert_array_equal(np.r_[1:4, 7], numpy.r_[1:4, 7])
    numpy.testing.assert_array_equal(np.c_[[1, 2], [3, 4]], numpy.c_[[1, 2], [3, 4]])
    with pytest.raises(AttributeError, match="chainrule.numpy.*no_such_name"):
        _ = np.no_such_name


def test_array_of_tensors_keeps_the_gradient():
    # f(x) = det([[x, 1], [0, x^2]]) = x^3, f'(2) = 12
    g = cr.grad(lambda x: np.linalg.det(np.array([[x, 1.0], [0.0, x**2]])))(2.0)
    numpy.testing.assert_allclose(g, 12.0)
    # max of [x, x] at a tie: the gradient 1 is shared, as for numpy.max of a tensor
    numpy.testing.assert_allclose(cr.grad(lambda x: np.max(np.array([x, x])))(1.0), 1.0)
    # a list of vectors: sum(array([a, 2a])) = 3 sum(a)
    a = numpy.array([0.5, -1.0])
    numpy.testing.assert_allclose(cr.grad(lambda a: np.array([a, 2 * a]).sum())(a), [3.0, 3.0])


def test_array_of_tensors_has_numpys_value_dtype_and_ndmin():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    m = np.array([x, [3.0, 4.0]], dtype=numpy.float32, ndmin=3)
    assert m.shape == (1, 2, 2) and m.dtype == numpy.float32
    numpy.testing.assert_array_equal(m.detach().numpy(), [[[1, 2], [3, 4]]])
    assert np.asarray(x) is x
    c = np.array(x)
    assert c is not x and isinstance(c, cr.Tensor)


def test_r_and_c_with_tensors():
    # r_[x, x^2, 1:3] sums to x + x^2 + 3: derivative 1 + 2x = 7 at 3
    numpy.testing.assert_allclose(cr.grad(lambda x: np.r_[x, x**2, 1:3].sum())(3.0), 7.0)
    v = numpy.array([1.0, 2.0])
    out = np.r_[cr.tensor(v), 5.0]
    numpy.testing.assert_array_equal(out.numpy(), [1.0, 2.0, 5.0])
    # c_[a, 2a] is a 2x2 matrix [[a0, 2a0], [a1, 2a1]]; sum of squares = 5 |a|^2, gradient 10 a
    numpy.testing.assert_allclose(cr.grad(lambda a: (np.c_[a, 2 * a] ** 2).sum())(v), 10 * v)
    assert np.c_[cr.tensor(v), v].shape == (2, 2)
    with pytest.raises(ValueError, match="directive string"):
        np.r_["0", cr.tensor(v), cr.tensor(v)]


def test_a_list_of_tensors_given_to_a_function():
    # mean([x, 3x]) = 2x; var([x, 3x]) = x^2 (spread x about 2x); append: sum = x + 3x + 1
    numpy.testing.assert_allclose(cr.grad(lambda x: np.mean([x, 3 * x]))(1.5), 2.0)
    numpy.testing.assert_allclose(cr.grad(lambda x: np.var([x, 3 * x]))(1.5), 3.0)
    numpy.testing.assert_allclose(cr.grad(lambda x: np.sum(np.append([x, 3 * x], 1.0)))(2.0), 4.0)
    # norm([x, 2x]) = sqrt(5) |x|
    numpy.testing.assert_allclose(cr.grad(lambda x: np.linalg.norm([x, 2 * x]))(-2.0), -(5**0.5))
    # jacobian of x -> [x, x^2, x^3] at 0.7 (the list built with array)
    j = cr.jacobian(lambda x: np.array([x, x**2, x**3]))(0.7)
    numpy.testing.assert_allclose(j, [1.0, 1.4, 3 * 0.49])


def test_a_real_numpy_error_is_not_hidden():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError):  # shapes that do not stack are NumPy's error, not ours
        np.array([x, cr.tensor([1.0, 2.0, 3.0])])
    with pytest.raises(numpy.exceptions.AxisError):
        np.mean(numpy.ones(3), axis=4)


def test_in_jit_and_explain():
    def f(x):
        return np.sum(np.array([x, x**2]) * np.array([1.0, 2.0]))  # x + 2x^2: 1 + 4x

    numpy.testing.assert_allclose(cr.jit(cr.grad(f))(1.5), 7.0)
    ns: dict = {}
    exec(cr.explain(f, 1.5).to_python(), ns)
    fn = [v for k, v in ns.items() if callable(v) and not k.startswith("_")][-1]
    numpy.testing.assert_allclose(fn(1.5)[1]["x"], 7.0)
