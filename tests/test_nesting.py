"""Nested transforms are right by construction: each level differentiates its own variables, and a
value of an outer level that an inner function receives as a constant argument or closes over
stays differentiable for the outer level.

References are independent of chainrule: hand derivations, and central finite differences of the
plain NumPy function (second derivatives from the four-point mixed difference).
"""

from __future__ import annotations

import math

import numpy
import pytest

import chainrule as cr

# ---------------------------------------------------------------------------------------------
# The reported cases, each against a hand derivation
# ---------------------------------------------------------------------------------------------


def test_inner_function_closing_over_the_outer_variable():
    # d/dx [d/dy (x * y)] = d/dx x = 1
    assert cr.grad(lambda x: cr.grad(lambda y: x * y)(2.0))(1.0) == 1.0


def test_outer_variable_reaching_the_inner_transform_through_an_undifferentiated_argument():
    f = lambda x, y: numpy.sin(x) * numpy.cos(y)
    # d/dx d/dy sin(x) cos(y) = -cos(x) sin(y)
    assert cr.grad(cr.grad(f, 1), 0)(0.5, 0.7) == pytest.approx(-math.cos(0.5) * math.sin(0.7))


def test_the_classic_perturbation_confusion():
    # d/dx [x * (d/dy (x + y))|_{y=x}] = d/dx [x * 1] = 1; confusing the levels gives 2
    assert cr.grad(lambda x: x * cr.grad(lambda y: x + y)(x))(1.0) == 1.0


def test_hessian_over_several_argnums_has_jax_layout():
    f = lambda x, y: numpy.sin(x) * numpy.cos(y)
    (hxx, hxy), (hyx, hyy) = cr.hessian(f, argnums=(0, 1))(0.5, 0.7)
    s, c = math.sin, math.cos
    assert float(hxx) == pytest.approx(-s(0.5) * c(0.7))
    assert float(hxy) == pytest.approx(-c(0.5) * s(0.7))
    assert float(hyx) == pytest.approx(-c(0.5) * s(0.7))
    assert float(hyy) == pytest.approx(-s(0.5) * c(0.7))
    # vectors: the blocks have shape (len(x), len(y)) and so on
    g = lambda x, y: (x**2 * y**3).sum()
    x, y = numpy.array([1.0, 2.0]), numpy.array([3.0])
    (hxx, hxy), (hyx, hyy) = cr.hessian(g, argnums=(0, 1))(x, y)
    numpy.testing.assert_allclose(hxx, numpy.diag(2 * y**3 * numpy.ones(2)))
    numpy.testing.assert_allclose(hxy, (6 * x * y**2)[:, None])
    numpy.testing.assert_allclose(hyx, (6 * x * y**2)[None, :])
    numpy.testing.assert_allclose(hyy, [[6 * y[0] * (x**2).sum()]])


def test_jacobian_of_a_tuple_output_in_both_modes():
    x = numpy.array([1.0, 2.0])
    for mode in ("forward", "reverse"):
        jsq, jsum = cr.jacobian(lambda x: (x**2, x.sum()), mode=mode)(x)
        numpy.testing.assert_array_equal(jsq, numpy.diag(2 * x))
        numpy.testing.assert_array_equal(jsum, numpy.ones(2))


def test_second_backward_after_create_graph_accumulates_as_in_pytorch():
    # x.grad = 3x^2 (recorded); then backward of <x.grad, v> adds H v = 6x * v to it
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    v = numpy.array([1.0, 10.0])
    (x.grad * v).sum().backward()
    numpy.testing.assert_allclose(numpy.asarray(x.grad.data), [3 + 6, 12 + 120])


def test_gradient_penalty_from_create_graph():
    # penalty = |d/dx (w * x^2)|^2 = (2 w x)^2; d penalty / dw = 8 w x^2
    w = cr.tensor(1.5, requires_grad=True)
    x = cr.tensor(2.0, requires_grad=True)
    (w * x**2).backward(create_graph=True)
    (dx,) = (x.grad,)
    w.grad = None
    (dx**2).backward()
    assert float(w.grad) == pytest.approx(8 * 1.5 * 4.0)


def test_vmap_inside_grad_differentiates_through_the_batch():
    f = lambda x, y: (numpy.sin(x) * numpy.cos(y)).sum()
    x, y = numpy.array([0.3, 0.5]), numpy.array([0.7, 0.1])
    outer = lambda x: cr.vmap(cr.grad(f))(numpy.stack([x, 2 * x]), numpy.stack([y, y])).sum()
    expected = -numpy.sin(x) * numpy.cos(y) - 2 * numpy.sin(2 * x) * numpy.cos(y)
    numpy.testing.assert_allclose(cr.grad(outer)(x), expected)
    # a closure over the outer variable
    w, X = numpy.array([1.0, 2.0]), numpy.arange(6.0).reshape(3, 2)
    got = cr.grad(lambda w: cr.vmap(lambda x: (x * w).sum() ** 2)(X).sum())(w)
    numpy.testing.assert_allclose(got, (2 * (X @ w)[:, None] * X).sum(0))


def test_vmap_under_jit_follows_new_inputs():
    j = cr.jit(lambda X: cr.vmap(lambda x: (x**2).sum())(X))
    X = numpy.arange(6.0).reshape(3, 2)
    numpy.testing.assert_array_equal(j(X), (X**2).sum(1))
    numpy.testing.assert_array_equal(j(X + 1), ((X + 1) ** 2).sum(1))


@pytest.mark.parametrize(
    "f, x, expected",
    [
        (lambda x: numpy.std(x), 2.0, 0.0),  # std of one number is the constant 0
        (lambda x: numpy.std(x, axis=1).sum(), numpy.ones((2, 1)), numpy.zeros((2, 1))),
        (lambda x: numpy.var(x, axis=1).sum(), numpy.ones((2, 1)), numpy.zeros((2, 1))),
        (lambda x: numpy.std(x), numpy.array([1.0, 3.0]), numpy.array([-0.5, 0.5])),
        (lambda x: numpy.power(x, 0.0).sum(), numpy.array([0.0, 2.0]), numpy.zeros(2)),
        (lambda x: (x ** numpy.array([0.0, 2.0])).sum(), numpy.array([0.0, 2.0]), [0.0, 4.0]),
    ],
)
def test_finite_derivatives_where_the_naive_formula_divides_by_zero(f, x, expected):
    numpy.testing.assert_allclose(cr.grad(f)(x), expected)


def test_second_derivative_of_x_to_the_zero_at_zero():
    assert float(cr.grad(cr.grad(lambda x: numpy.power(x, 0.0)))(0.0)) == 0.0


# ---------------------------------------------------------------------------------------------
# Random compositions of transforms over random functions, against finite differences
# ---------------------------------------------------------------------------------------------

UNARY = [
    numpy.sin,
    numpy.cos,
    numpy.tanh,
    lambda u: numpy.exp(0.3 * u),
    lambda u: numpy.log1p(u * u),
    lambda u: u**3,
    numpy.arctan,
]


def random_function(seed: int, nx: int, ny: int):
    """A smooth scalar f(x, y) mixing x and y through indexing, products and ufuncs."""
    rng = numpy.random.default_rng(seed)
    terms = []
    for _ in range(4):
        op = UNARY[rng.integers(len(UNARY))]
        i, j = rng.integers(nx), rng.integers(ny)
        a, b, c = rng.uniform(-1, 1, 3)
        terms.append((op, i, j, a, b, c))
    M = rng.uniform(-1, 1, (nx, ny))

    def f(x, y):
        total = numpy.tanh(x @ M @ y)
        for op, i, j, a, b, c in terms:
            total = total + c * op(a * x[i] + b * y[j] + 0.5 * x[i] * y[j])
        return total

    return f


def fd_mixed(f, x, y, h=1e-4):
    """d^2 f / dx_i dy_j by the four-point central difference (plain NumPy floats)."""
    H = numpy.zeros((x.size, y.size))
    for i in range(x.size):
        for j in range(y.size):
            ei, ej = numpy.eye(x.size)[i] * h, numpy.eye(y.size)[j] * h
            H[i, j] = (
                f(x + ei, y + ej) - f(x + ei, y - ej) - f(x - ei, y + ej) + f(x - ei, y - ej)
            ) / (4 * h * h)
    return H


def fd_pure(f, x, h=1e-4):
    """d^2 f / dx_i dx_k (f of one vector): the mixed difference of (a, b) -> f(a + b - x)."""
    return fd_mixed(lambda a, b: f(a + b - x), x, x, h)


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_nested_compositions_match_finite_differences(seed):
    rng = numpy.random.default_rng(100 + seed)
    nx, ny = 2 + seed % 2, 2 + (seed // 2) % 2
    f = random_function(seed, nx, ny)
    x, y = rng.uniform(-1, 1, nx), rng.uniform(-1, 1, ny)
    v, tx, ty = rng.standard_normal(ny), rng.standard_normal(nx), rng.standard_normal(ny)
    Hxy = fd_mixed(f, x, y)
    Hxx = fd_pure(lambda a: f(a, y), x)
    Hyy = fd_pure(lambda b: f(x, b), y)
    close = lambda got, want: numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # grad of (an inner grad closing over x), projected on v
    close(cr.grad(lambda x: (cr.grad(lambda y: f(x, y))(y) * v).sum())(x), Hxy @ v)
    # grad over argnum 0 of grad over argnum 1 (x reaches the inner level as a constant)
    close(cr.grad(lambda x, y: (cr.grad(f, 1)(x, y) * v).sum(), 0)(x, y), Hxy @ v)
    # Hessian over both argnums
    (hxx, hxy), (hyx, hyy) = cr.hessian(f, argnums=(0, 1))(x, y)
    close(hxx, Hxx), close(hxy, Hxy), close(hyx, Hxy.T), close(hyy, Hyy)
    # jacobian of grad, both modes
    for mode in ("forward", "reverse"):
        close(cr.jacobian(lambda x: cr.grad(f, 1)(x, y), mode=mode)(x), Hxy.T)
    # jvp of grad: the Hessian times a tangent
    _, t = cr.jvp(lambda x, y: cr.grad(f, 0)(x, y), (x, y), (tx, ty))
    close(t, Hxx @ tx + Hxy @ ty)
    # vjp inside grad
    pull = lambda x: cr.vjp(lambda y: f(x, y), y)[1](1.0)[0]
    close(cr.grad(lambda x: (pull(x) * v).sum())(x), Hxy @ v)
    # grad of vmap of grad, over a batch of two x's
    batch = lambda x: (cr.vmap(cr.grad(f, 1), in_axes=(0, None))(numpy.stack([x, x]), y) @ v).sum()
    close(cr.grad(batch)(x), 2 * Hxy @ v)


@pytest.mark.parametrize("seed", SEEDS)
def test_third_derivatives_by_three_nested_grads(seed):
    op = UNARY[seed % len(UNARY)]
    a = 0.3 + 0.1 * seed
    g = lambda t: op(a * t) * t
    t0, h = 0.4, 1e-3
    fd3 = (g(t0 + 2 * h) - 2 * g(t0 + h) + 2 * g(t0 - h) - g(t0 - 2 * h)) / (2 * h**3)
    got = cr.grad(cr.grad(cr.grad(g)))(t0)
    assert float(got) == pytest.approx(fd3, rel=1e-4, abs=1e-5)
