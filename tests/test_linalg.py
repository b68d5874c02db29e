"""The SVD, the pseudo-inverse and least squares, composed the way users write them.

Every rule is also an op case (tests/op_cases.py: first and second order, float32, jit, vmap);
here the expected values come from closed forms: the normal equations, the Eckart-Young theorem,
the derivative of a sum of singular values, and the orthogonal Procrustes solution.
"""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr

rng = numpy.random.default_rng(31)


def test_least_squares_through_lstsq_and_pinv_agree_with_the_normal_equations():
    a = rng.standard_normal((8, 3))
    b = rng.standard_normal(8)

    def via_lstsq(a, b):
        x = numpy.linalg.lstsq(a, b, rcond=None)[0]
        return ((a @ x - b) ** 2).sum() + (x**2).sum()

    def via_pinv(a, b):
        x = numpy.linalg.pinv(a) @ b
        return ((a @ x - b) ** 2).sum() + (x**2).sum()

    def via_normal(a, b):
        x = numpy.linalg.solve(a.T @ a, a.T @ b)
        return ((a @ x - b) ** 2).sum() + (x**2).sum()

    want = cr.grad(via_normal, argnums=(0, 1))(a, b)
    for f in (via_lstsq, via_pinv):
        got = cr.grad(f, argnums=(0, 1))(a, b)
        for g, w in zip(got, want):
            numpy.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_residuals_of_lstsq_are_the_squared_error_and_differentiate_as_it():
    a, b = rng.standard_normal((6, 2)), rng.standard_normal(6)
    res = numpy.linalg.lstsq(cr.tensor(a), cr.tensor(b), rcond=None)[1]
    assert float(res.data[0]) == pytest.approx(numpy.linalg.lstsq(a, b, rcond=None)[1][0])
    # the minimum of |a x - b|^2 over x: by the envelope theorem its gradient in b is 2 (b - a x)
    x = numpy.linalg.lstsq(a, b, rcond=None)[0]
    g = cr.grad(lambda b: numpy.linalg.lstsq(a, b, rcond=None)[1].sum())(b)
    numpy.testing.assert_allclose(g, 2 * (b - a @ x), rtol=1e-10)


def test_low_rank_approximation_error_follows_eckart_young():
    # the best rank-1 approximation leaves sum_{i>1} s_i^2, whose gradient is 2 A - 2 s1 u1 v1^T
    a = rng.standard_normal((5, 4))

    def error(a):
        u, s, vh = numpy.linalg.svd(a, full_matrices=False)
        approx = s[0] * numpy.outer(u[:, 0], vh[0])
        return ((a - approx) ** 2).sum()

    u, s, vh = numpy.linalg.svd(a, full_matrices=False)
    assert float(error(a)) == pytest.approx((s[1:] ** 2).sum())
    want = 2 * a - 2 * s[0] * numpy.outer(u[:, 0], vh[0])
    numpy.testing.assert_allclose(cr.grad(error)(a), want, rtol=1e-9, atol=1e-12)


def test_nuclear_norm_gradient_is_u_vh():
    a = rng.standard_normal((4, 6))
    u, _, vh = numpy.linalg.svd(a, full_matrices=False)
    numpy.testing.assert_allclose(
        cr.grad(lambda a: numpy.linalg.norm(a, "nuc"))(a), u @ vh, rtol=1e-10, atol=1e-12
    )
    # spectral norm: u1 v1^T
    numpy.testing.assert_allclose(
        cr.grad(lambda a: numpy.linalg.norm(a, 2))(a),
        numpy.outer(u[:, 0], vh[0]),
        rtol=1e-10,
        atol=1e-12,
    )


def test_procrustes_rotation_from_the_svd():
    # the rotation R = U Vh of svd(B A^T) maximises tr(R^T B A^T); its objective's gradient in B
    # is the nuclear norm's (U Vh) A, checked against finite differences as well
    a = rng.standard_normal((3, 10))
    b = rng.standard_normal((3, 10))

    def fit(b):
        u, _, vh = numpy.linalg.svd(b @ a.T)
        r = u @ vh
        return numpy.trace(r.T @ b @ a.T)

    u, _, vh = numpy.linalg.svd(b @ a.T)
    numpy.testing.assert_allclose(cr.grad(fit)(b), u @ vh @ a, rtol=1e-9, atol=1e-12)
    assert cr.check_grads(fit, b, order=2).passed


def test_full_singular_vectors_of_a_rectangular_matrix_are_refused():
    a = rng.standard_normal((4, 2))
    with pytest.raises(TypeError, match="full_matrices=False"):
        cr.grad(lambda a: (numpy.linalg.svd(a)[0] ** 2).sum())(a)
    # the singular values alone are fine with the default full_matrices=True
    s = numpy.linalg.svd(a, compute_uv=False)
    assert cr.check_grads(lambda a: numpy.linalg.svd(a)[1], a).passed
    numpy.testing.assert_allclose(numpy.linalg.svd(cr.tensor(a))[1].data, s)


def test_repeated_singular_values_give_nonfinite_vector_gradients_as_the_peers():
    # the identity has all singular values equal: the vectors have no derivative (inf/NaN, as
    # PyTorch and JAX), the values do
    a = numpy.eye(3)
    with numpy.errstate(all="ignore"):
        g = cr.grad(lambda a: (numpy.linalg.svd(a)[0] * numpy.arange(3.0)).sum())(a)
    assert not numpy.all(numpy.isfinite(g))
    numpy.testing.assert_allclose(cr.grad(lambda a: numpy.linalg.svd(a)[1].sum())(a), numpy.eye(3))


def test_matrix_rank_is_an_integer_without_gradient():
    t = cr.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    r = numpy.linalg.matrix_rank(t)
    assert int(r) == 3 and not isinstance(r, cr.Tensor)


def test_complex_svd_is_refused_not_differentiated_with_real_rules():
    z = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    with pytest.raises(TypeError, match="complex"):
        cr.grad(lambda z: numpy.linalg.svd(z, compute_uv=False).sum())(z)


def test_qr_least_squares_matches_the_normal_equations():
    # x = R^-1 Q^T b, the QR route to least squares, differentiates as the normal equations
    a, b = rng.standard_normal((7, 3)), rng.standard_normal(7)

    def via_qr(a):
        q, r = numpy.linalg.qr(a)
        return (numpy.linalg.solve(r, q.T @ b) ** 2).sum()

    def via_normal(a):
        return (numpy.linalg.solve(a.T @ a, a.T @ b) ** 2).sum()

    numpy.testing.assert_allclose(cr.grad(via_qr)(a), cr.grad(via_normal)(a), rtol=1e-9)
    with pytest.raises(TypeError, match="mode='reduced'"):
        cr.grad(lambda a: numpy.linalg.qr(a, mode="complete")[0].sum())(a)


@pytest.mark.skipif(not hasattr(numpy.linalg, "vector_norm"), reason="NumPy 2")
def test_vector_norm_over_several_axes_equals_the_norm_of_the_flattened_axes():
    x = rng.standard_normal((2, 3, 4))
    t = cr.tensor(x)
    got = numpy.linalg.vector_norm(t, axis=(0, 2), ord=3, keepdims=True)
    want = numpy.linalg.vector_norm(x, axis=(0, 2), ord=3, keepdims=True)
    numpy.testing.assert_allclose(numpy.asarray(got), want, rtol=1e-12)
    # d/dx sum_j (sum_{i,k} |x_ijk|^3)^(1/3) = sign(x) x^2 / norm_j^2 (hand derivation)
    g = cr.grad(lambda y: numpy.linalg.vector_norm(y, axis=(0, 2), ord=3).sum())(x)
    norm = (numpy.abs(x) ** 3).sum(axis=(0, 2), keepdims=True) ** (1 / 3)
    numpy.testing.assert_allclose(numpy.asarray(g), numpy.sign(x) * x**2 / norm**2, rtol=1e-10)
    with pytest.raises(numpy.exceptions.AxisError, match="vector_norm"):
        numpy.linalg.vector_norm(t, axis=3)
