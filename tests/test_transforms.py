"""vjp, jvp, Jacobians, Hessians, higher derivatives and custom primitives."""

from __future__ import annotations

import math

import numpy
import pytest
import scipy.special
from op_cases import CASES, FIRST_ORDER_ONLY

import chainrule as cr

# forward mode differentiates the reverse rules once more: the first-order-only cases lack it
FORWARD = [c for c in CASES if c.id not in FIRST_ORDER_ONLY]

rng = numpy.random.default_rng(21)


def fd_hessian(f, x, h=1e-4):
    """Central second differences in float64 (an independent referee)."""
    n = x.size
    H = numpy.zeros((n, n))
    for i in range(n):
        for j in range(n):

            def at(di, dj, i=i, j=j):
                y = x.copy().ravel()
                y[i] += di
                y[j] += dj
                return f(y.reshape(x.shape))

            H[i, j] = (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4 * h * h)
    return H.reshape(x.shape + x.shape)


W1, W2 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
XB = rng.standard_normal((5, 3))


def tanh_mlp(w):
    return (numpy.tanh(numpy.tanh(XB @ w) @ W2) ** 2).mean()


def softmax_ce(z):
    labels = numpy.array([0, 2, 1])
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - numpy.log(numpy.exp(shifted).sum(axis=1, keepdims=True))
    return -logp[numpy.arange(3), labels].mean()


@pytest.mark.parametrize(
    "f, x",
    [(tanh_mlp, W1), (softmax_ce, rng.standard_normal((3, 4)))],
    ids=["tanh-mlp", "softmax-cross-entropy"],
)
def test_hessian_matches_finite_differences(f, x):
    H = cr.hessian(f)(x)
    ref = fd_hessian(f, x)
    assert H.shape == x.shape + x.shape
    numpy.testing.assert_allclose(H, ref, rtol=1e-6, atol=1e-6 * numpy.abs(ref).max())
    numpy.testing.assert_allclose(H.reshape(x.size, -1), H.reshape(x.size, -1).T, atol=1e-12)


def test_hvp_is_the_hessian_times_the_vector():
    v = rng.standard_normal(W1.shape)
    (hv,) = cr.hvp(tanh_mlp, (W1,), (v,))
    H = cr.hessian(tanh_mlp)(W1).reshape(W1.size, W1.size)
    numpy.testing.assert_allclose(hv.ravel(), H @ v.ravel(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "f, d3",
    [
        (numpy.tanh, lambda x: -2 * (1 - numpy.tanh(x) ** 2) * (1 - 3 * numpy.tanh(x) ** 2)),
        (
            lambda x: numpy.exp(x) * numpy.sin(x),
            lambda x: 2 * numpy.exp(x) * (numpy.cos(x) - numpy.sin(x)),
        ),
        (
            lambda x: x * x * numpy.sin(x) * numpy.cos(x),  # x^2 sin(2x) / 2, third derivative
            lambda x: (
                -4 * x * x * numpy.cos(2 * x) - 12 * x * numpy.sin(2 * x) + 6 * numpy.cos(2 * x)
            ),
        ),
    ],
    ids=["tanh", "exp-sin", "product-chain"],
)
def test_third_derivatives_match_the_analytic_ones(f, d3):
    third = cr.grad(cr.grad(cr.grad(f)))
    for x in (-0.7, 0.3, 1.4):
        assert float(third(x)) == pytest.approx(float(d3(x)), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("case", FORWARD, ids=[c.id for c in FORWARD])
def test_jvp_equals_the_jacobian_times_the_tangent(case):
    tangents = tuple(rng.standard_normal(x.shape) for x in case.inputs)
    out, t_out = cr.jvp(case.fun, tuple(case.inputs), tangents)
    jacs = cr.jacobian(case.fun, argnums=tuple(range(len(case.inputs))), mode="reverse")(
        *case.inputs
    )
    expected = sum(
        numpy.tensordot(J, t, axes=t.ndim) if t.ndim else J * t for J, t in zip(jacs, tangents)
    )
    numpy.testing.assert_allclose(out, case.fun(*case.inputs), rtol=1e-13, atol=1e-13)
    numpy.testing.assert_allclose(t_out, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", FORWARD[::7], ids=[c.id for c in FORWARD[::7]])
def test_forward_and_reverse_jacobians_agree(case):
    nums = tuple(range(len(case.inputs)))
    fwd = cr.jacobian(case.fun, argnums=nums, mode="forward")(*case.inputs)
    rev = cr.jacobian(case.fun, argnums=nums, mode="reverse")(*case.inputs)
    for a, b in zip(fwd, rev):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_vjp_pulls_back_any_cotangent():
    A = rng.standard_normal((3, 4))
    out, pull = cr.vjp(lambda x: A @ x, rng.standard_normal(4))
    ct = rng.standard_normal(3)
    numpy.testing.assert_allclose(pull(ct)[0], A.T @ ct, rtol=1e-13)
    numpy.testing.assert_allclose(pull(2 * ct)[0], 2 * A.T @ ct, rtol=1e-13)
    with pytest.raises(ValueError, match="cotangent has shape"):
        pull(numpy.ones(4))


erf = cr.primitive(scipy.special.erf, name="erf")
cr.defvjp(erf, lambda g, out, x: g * (2 / math.sqrt(math.pi)) * numpy.exp(-(x**2)))


def test_custom_primitive_passes_second_order_checks_and_is_named_in_explain():
    x = rng.uniform(-1.5, 1.5, (3, 2))
    assert cr.check_grads(lambda x: erf(x * 1.3).sum(), x, order=2).passed

    def model(x):
        y = erf(x)
        return (y**2).sum()

    e = cr.explain(model, x)
    assert "y = erf(x)" in e.forward_lines()
    assert cr.jit(cr.grad(model))(x) == pytest.approx(cr.grad(model)(x), rel=1e-14)


def test_jacobian_mode_is_checked():
    with pytest.raises(ValueError, match="mode"):
        cr.jacobian(numpy.sin, mode="sideways")


def test_forward_mode_through_eig_follows_the_eigenvalue_derivative():
    # d lambda_k = (V^-1 dA V)_kk (first-order perturbation theory), here against a central
    # difference along the tangent as well; forward mode needs the eigenvectors' rule
    a = numpy.array([[2.0, 1.0], [0.5, 3.0]])
    d = numpy.array([[0.3, -1.0], [0.7, 0.2]])
    w, v = numpy.linalg.eig(a)
    order = numpy.argsort(w)
    _, jv = cr.jvp(lambda a: numpy.sort(numpy.linalg.eigvals(a).real), (a,), (d,))
    want = numpy.diag(numpy.linalg.inv(v) @ d @ v).real[order]
    numpy.testing.assert_allclose(jv, want, rtol=1e-10)
    h = 1e-6
    fd = (
        numpy.sort(numpy.linalg.eigvals(a + h * d).real)
        - numpy.sort(numpy.linalg.eigvals(a - h * d).real)
    ) / (2 * h)
    numpy.testing.assert_allclose(jv, fd, rtol=1e-6)


def test_value_and_grad_unused_and_shared_arguments_get_their_own_arrays():
    # an argument the value does not depend on gets zeros of its shape and dtype; no two
    # returned gradients share memory, even when the rules hand out one array twice (x + x)
    a = numpy.array([1.0, 2.0])
    b = numpy.ones((2, 3), dtype=numpy.float32)
    c = {"w": numpy.array([3.0])}
    value, (ga, gb, gc) = cr.value_and_grad(lambda a, b, c: (a + a).sum() * c["w"][0], (0, 1, 2))(
        a, b, c
    )
    assert float(value) == 18.0
    numpy.testing.assert_array_equal(ga, [6.0, 6.0])
    assert gb.dtype == numpy.float32 and gb.shape == (2, 3) and not gb.any()
    numpy.testing.assert_array_equal(gc["w"], [6.0])
    grads = [ga, gb, gc["w"]]
    for i, g in enumerate(grads):
        assert g.flags.writeable
        for h in grads[i + 1 :]:
            assert not numpy.shares_memory(g, h)


def test_the_gradient_of_an_argument_returned_as_it_is_is_the_callers_own():
    # d x / d x = 1; backward()'s seed is shared between calls and read-only, so the gradient
    # handed back must be a copy: writable, and not the array another call received.
    f = cr.grad(lambda x: x)
    g1, g2 = f(numpy.array(3.0)), f(numpy.array(5.0))
    assert float(g1) == 1.0 and float(g2) == 1.0
    assert g1.flags.writeable and g2.flags.writeable
    assert not numpy.may_share_memory(g1, g2)
    g1[...] = 7.0
    assert float(f(numpy.array(4.0))) == 1.0 and float(g2) == 1.0
