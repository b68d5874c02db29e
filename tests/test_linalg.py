"""The SVD, the pseudo-inverse and least squares, composed the way users write them.

Every rule is also an op case (tests/op_cases.py: first and second order, float32, jit, vmap);
here the expected values come from closed forms: the normal equations, the Eckart-Young theorem,
the derivative of a sum of singular values, and the orthogonal Procrustes solution.
"""

from __future__ import annotations

from unittest import mock

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


def _c(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_complex_nuclear_and_spectral_norms_follow_their_closed_forms():
    # ||A||_* = Re tr(U^H A V) at fixed U, V: the gradient (d/dx - i d/dy) is conj(U Vh);
    # ||A||_2 = s_1: conj(u_1 vh_1)
    a = _c(4, 3)
    u, _, vh = numpy.linalg.svd(a, full_matrices=False)
    numpy.testing.assert_allclose(
        cr.grad(lambda a: numpy.linalg.norm(a, "nuc"))(a), numpy.conj(u @ vh), rtol=1e-10
    )
    numpy.testing.assert_allclose(
        cr.grad(lambda a: numpy.linalg.norm(a, 2))(a),
        numpy.conj(numpy.outer(u[:, 0], vh[0])),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("full_matrices", [True, False])
def test_complex_low_rank_approximation_follows_eckart_young(full_matrices):
    # |A - s1 u1 vh1|_F^2 = |A|_F^2 - s1^2; d/dx - i d/dy of |a|^2 is 2 conj(a), of s1^2 is
    # 2 s1 conj(u1 vh1): the gradient is 2 conj(A - s1 u1 vh1)
    a = _c(3, 3) if full_matrices else _c(5, 3)

    def error(a):
        u, s, vh = numpy.linalg.svd(a, full_matrices=full_matrices)
        approx = s[0] * numpy.outer(u[:, 0], vh[0])
        return (numpy.abs(a - approx) ** 2).sum()

    u, s, vh = numpy.linalg.svd(a, full_matrices=False)
    assert float(error(a)) == pytest.approx((s[1:] ** 2).sum())
    want = 2 * numpy.conj(a - s[0] * numpy.outer(u[:, 0], vh[0]))
    numpy.testing.assert_allclose(cr.grad(error)(a), want, rtol=1e-9, atol=1e-12)
    assert cr.check_grads(error, a, order=2).passed


def test_complex_stacked_svd_values_and_svdvals():
    a = _c(2, 3, 4)
    f = getattr(numpy.linalg, "svdvals", lambda x: numpy.linalg.svd(x, compute_uv=False))
    assert cr.check_grads(lambda a: f(a) ** 2, a, order=2).passed
    # sum of squared singular values is |A|_F^2: gradient 2 conj(A)
    g = cr.grad(lambda a: (numpy.linalg.svd(a, compute_uv=False) ** 2).sum())(a)
    numpy.testing.assert_allclose(g, 2 * numpy.conj(a), rtol=1e-10)


def test_a_loss_that_depends_on_the_phase_of_complex_vectors_is_refused():
    # u -> u e^{it}, vh -> e^{-it} vh leaves A unchanged: sum(Re u) is not a function of A
    a = _c(3, 3)
    h = a + a.conj().T
    gauge_dependent = [
        lambda a: numpy.linalg.svd(a)[0].real.sum(),
        lambda a: numpy.linalg.svd(a, full_matrices=False)[2].imag.sum(),
        lambda a: (numpy.linalg.svd(a)[0] @ numpy.linalg.svd(a)[2].T).real.sum(),
        lambda a: numpy.linalg.eigh(a)[1].real.sum(),
        lambda a: numpy.linalg.eig(a)[1].real.sum(),
    ]
    for f in gauge_dependent:
        with pytest.raises(ValueError, match="phases of the complex vectors"):
            cr.grad(f)(h)
    # phase-invariant functions of the same vectors are differentiated (and right)
    invariant = [
        lambda a: (lambda u, s, vh: (u @ vh).real.sum())(*numpy.linalg.svd(a)),
        lambda a: (numpy.abs(numpy.linalg.svd(a)[0]) ** 2 * numpy.arange(3.0)).sum(),
        lambda a: (numpy.abs(numpy.linalg.eigh(a)[1][0]) ** 2 * numpy.arange(3.0)).sum(),
        lambda a: (numpy.abs(numpy.linalg.eig(a)[1]) ** 2 * numpy.arange(3.0)).sum(),
    ]
    for f in invariant:
        assert cr.check_grads(f, a, order=2).passed


def test_full_singular_vectors_of_a_complex_rectangular_matrix_are_refused():
    with pytest.raises(TypeError, match="full_matrices=False"):
        cr.grad(lambda a: (numpy.abs(numpy.linalg.svd(a)[0]) ** 2).sum())(_c(4, 2))


def test_complex_least_squares_through_lstsq_and_pinv_agree_with_the_normal_equations():
    a, b = _c(6, 3), _c(6)

    def fit(solve):
        def loss(a, b):
            x = solve(a, b)
            return (numpy.abs(a @ x - b) ** 2).sum() + (numpy.abs(x) ** 2).sum()

        return loss

    def normal(a, b):  # x = (A^H A)^-1 A^H b
        ah = a.conj().T
        return numpy.linalg.solve(ah @ a, ah @ b)

    want = cr.grad(fit(normal), argnums=(0, 1))(a, b)
    for solve in (lambda a, b: numpy.linalg.lstsq(a, b, rcond=None)[0],
                  lambda a, b: numpy.linalg.pinv(a) @ b):  # fmt: skip
        got = cr.grad(fit(solve), argnums=(0, 1))(a, b)
        for g, w in zip(got, want):
            numpy.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    # NumPy's residuals of a complex fit are real sums of |r|^2
    res = numpy.linalg.lstsq(cr.tensor(a), cr.tensor(b), rcond=None)[1]
    numpy.testing.assert_allclose(res.data, numpy.linalg.lstsq(a, b, rcond=None)[1], rtol=1e-12)
    assert res.dtype == numpy.float64
    assert cr.check_grads(lambda a, b: numpy.linalg.lstsq(a, b, rcond=None)[1], a, b).passed


def test_unitary_evolution_of_a_complex_hermitian_matrix_through_eigh():
    # |<phi| exp(-i H t) |psi>|^2 with exp(-i H t) = V diag(exp(-i w t)) V^H, H Hermitian and
    # complex (read from its lower triangle, as NumPy does): against finite differences, and
    # the value against the exponential series
    psi = _c(3)
    psi /= numpy.linalg.norm(psi)
    phi = numpy.array([1.0, 0.0, 0.0], dtype=complex)

    def fidelity(h, t):
        w, v = numpy.linalg.eigh(h)
        u = (v * numpy.exp(-1j * t * w)) @ v.conj().T
        return numpy.abs(numpy.vdot(phi, u @ psi)) ** 2

    a = _c(3, 3)
    h = a + a.conj().T
    assert cr.check_grads(fidelity, h, 0.7, order=2).passed
    series, term = numpy.eye(3, dtype=complex), numpy.eye(3, dtype=complex)
    for n in range(1, 60):
        term = term @ (-1j * 0.7 * h) / n
        series = series + term
    assert float(fidelity(h, 0.7)) == pytest.approx(abs(numpy.vdot(phi, series @ psi)) ** 2)
    # only the lower triangle is read: zero gradient above the diagonal, a real diagonal
    g = cr.grad(fidelity)(h, 0.7)
    assert numpy.all(numpy.triu(g, 1) == 0) and numpy.all(numpy.diag(g).imag == 0)


def test_eig_eigenvectors_of_real_and_complex_matrices():
    # NumPy's eigenvectors have unit 2-norm; a phase-invariant function of them differentiates
    for a in (rng.standard_normal((4, 4)), _c(2, 3, 3)):
        f = lambda a: (
            numpy.abs(numpy.linalg.eig(a)[1]) ** 2 * numpy.arange(1.0, 4.0)[:, None]
        ).sum()  # noqa: E731
        if a.ndim == 2:
            f = lambda a: (
                (numpy.abs(numpy.linalg.eig(a)[1][:3]) ** 2).sum(axis=0) @ numpy.arange(4.0)
            )  # noqa: E731
        assert cr.check_grads(f, a, order=2).passed


def test_eigenvalues_keep_their_order_on_large_matrices():
    # LAPACK orders eigenvalues computed alone (eigvals) and with vectors (eig) differently on
    # large matrices; sum(w^2) = tr(A^2), whose gradient is 2 A^T, must not mix them up
    a = numpy.random.default_rng(0).standard_normal((200, 200))
    for f in (numpy.linalg.eigvals, lambda a: numpy.linalg.eig(a)[0]):
        g = cr.grad(lambda a, f=f: (f(a) ** 2).real.sum())(a)
        numpy.testing.assert_allclose(g, 2 * a.T, atol=1e-9)
    w, v = numpy.linalg.eig(cr.tensor(a))  # eig's pair belongs together
    numpy.testing.assert_allclose(a @ v.data, v.data * w.data, atol=1e-10)


@pytest.mark.parametrize(
    "name, f, make",
    [
        ("svd", lambda a: (lambda u, s, vh: (u * s) @ vh)(*numpy.linalg.svd(a, False)), (4, 3)),
        ("nuc", lambda a: numpy.linalg.norm(a, "nuc"), (3, 4)),
        ("pinv", numpy.linalg.pinv, (4, 3)),
        (
            "eigh",
            lambda a: numpy.abs(numpy.linalg.eigh(a)[1]) ** 2 + numpy.linalg.eigh(a)[0],
            (3, 3),
        ),
        ("eig", lambda a: numpy.abs(numpy.linalg.eig(a)[1]) ** 2, (3, 3)),
        ("qr", lambda a: (lambda q, r: q @ r @ r)(*numpy.linalg.qr(a)), (3, 3)),
        ("cholesky", lambda a: numpy.linalg.cholesky(a @ a.conj().T + 3 * numpy.eye(3)), (3, 3)),
        ("inv", numpy.linalg.inv, (3, 3)),
        ("slogdet", lambda a: numpy.linalg.slogdet(a)[1], (3, 3)),
        ("solve", lambda a: numpy.linalg.solve(a, a[:, ::-1] + 1), (3, 3)),
        ("det", numpy.linalg.det, (3, 3)),
        ("matrix_power", lambda a: numpy.linalg.matrix_power(a / 3, 3), (3, 3)),
        ("multi_dot", lambda a: numpy.linalg.multi_dot([a, a.T, a]), (3, 3)),
        ("tensorinv", lambda a: numpy.linalg.tensorinv(a.reshape(3, 3, 1), ind=1), (3, 3)),
        ("tensorsolve", lambda a: numpy.linalg.tensorsolve(a, a[0]), (3, 3)),
        ("eigvals", lambda a: numpy.linalg.eigvals(a) ** 2, (3, 3)),
        ("lstsq", lambda a: numpy.linalg.lstsq(a, a[:, 0] + 1, rcond=None)[0], (4, 3)),
        ("cond", numpy.linalg.cond, (4, 3)),
        ("norm-fro", numpy.linalg.norm, (3, 4)),
        ("norm-2", lambda a: numpy.linalg.norm(a, 2), (3, 4)),
    ],
)
def test_single_precision_complex_gradients_keep_their_dtype_and_agree(name, f, make):
    a = _c(*make) + 2 * numpy.eye(*make)
    loss = lambda a: (numpy.abs(f(a)) ** 2).sum()  # noqa: E731
    g64 = cr.grad(loss)(a.astype(numpy.complex64))
    g128 = cr.grad(loss)(a)
    assert g64.dtype == numpy.complex64
    numpy.testing.assert_allclose(g64, g128, rtol=2e-3, atol=2e-3 * numpy.abs(g128).max())
    x = a.real.astype(numpy.float32)
    g32 = cr.grad(loss)(x)
    assert g32.dtype == numpy.float32
    numpy.testing.assert_allclose(
        g32, cr.grad(loss)(x.astype(float)), rtol=2e-3, atol=2e-3 * numpy.abs(g32).max()
    )


def test_jit_and_vmap_of_complex_linear_algebra_equal_eager():
    def loss(a):
        u, s, vh = numpy.linalg.svd(a, full_matrices=False)
        w, v = numpy.linalg.eigh(a @ a.conj().T)
        q, r = numpy.linalg.qr(a)
        return (
            (s**2).sum()
            + numpy.abs(u @ vh).sum()
            + (w * numpy.abs(v[0]) ** 2).sum()
            + numpy.abs(r).sum()
        )

    step = cr.value_and_grad(loss)
    fast = cr.jit(step)
    for _ in range(2):
        a = _c(4, 3)
        got, want = fast(a), step(a)
        assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-12)
        numpy.testing.assert_allclose(got[1], want[1], rtol=1e-10)
    batch = _c(3, 4, 3)
    g = cr.grad(loss)
    numpy.testing.assert_allclose(cr.vmap(g)(batch), numpy.stack([g(x) for x in batch]), rtol=1e-10)


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


def test_repeated_values_of_complex_matrices_give_nonfinite_vector_gradients():
    # as for real matrices (and PyTorch, JAX): e^(0.3i) I has all singular values exactly 1, a
    # multiple of the identity one repeated eigenvalue; the values keep a gradient
    q = numpy.exp(0.3j) * numpy.eye(3)
    weights = numpy.arange(3.0)
    with numpy.errstate(all="ignore"):
        g = cr.grad(lambda a: (numpy.abs(numpy.linalg.svd(a)[0]) ** 2 * weights).sum())(q)
        h = cr.grad(lambda a: (numpy.abs(numpy.linalg.eigh(a)[1]) ** 2 * weights).sum())(
            2 * numpy.eye(3, dtype=complex)
        )
    assert not numpy.all(numpy.isfinite(g)) and not numpy.all(numpy.isfinite(h))
    # sum of singular values of a unitary matrix: the gradient is conj(U Vh) = conj(q)
    g = cr.grad(lambda a: numpy.linalg.svd(a, compute_uv=False).sum())(q)
    numpy.testing.assert_allclose(g, numpy.conj(q), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not hasattr(numpy.linalg, "matrix_transpose"), reason="NumPy 2")
@pytest.mark.parametrize(
    "f, shapes",
    [
        (lambda a, b: numpy.linalg.matmul(a, b), [(2, 3, 4), (4, 2)]),
        (lambda a: numpy.linalg.matrix_transpose(a), [(2, 3, 4)]),
        (lambda a: numpy.linalg.diagonal(a, offset=1), [(2, 3, 4)]),
        (lambda a: numpy.linalg.trace(a, offset=-1), [(2, 3, 4)]),
        (lambda a, b: numpy.linalg.outer(a, b), [(3,), (4,)]),
        (lambda a, b: numpy.linalg.vecdot(a, b, axis=0), [(3, 2), (3, 2)]),
        (lambda a, b: numpy.linalg.tensordot(a, b, axes=1), [(2, 3), (3, 4)]),
        (lambda a, b: numpy.linalg.cross(a, b, axis=0), [(3, 2), (3, 2)]),
    ],
    ids=[
        "matmul",
        "matrix_transpose",
        "diagonal",
        "trace",
        "outer",
        "vecdot",
        "tensordot",
        "cross",
    ],
)
def test_the_array_api_names_in_numpy_linalg_are_numpys_own(f, shapes):
    # NumPy 2's numpy.linalg.matmul, vecdot (which conjugates its first argument), ...: NumPy's
    # values, and gradients against finite differences, real and complex
    for xs in ([rng.standard_normal(s) for s in shapes], [_c(*s) for s in shapes]):
        got = f(*[cr.tensor(x) for x in xs])
        want = f(*xs)
        assert got.dtype == want.dtype
        numpy.testing.assert_allclose(got.data, want, rtol=1e-12)
        assert cr.check_grads(f, *xs, order=2).passed
    with pytest.raises(ValueError, match="numpy.linalg.outer: needs two vectors"):
        numpy.linalg.outer(cr.tensor(numpy.ones((2, 2))), numpy.ones(2))


@pytest.mark.parametrize(
    "name, call, calls",
    [
        # the user's own call counts once (it dispatches to chainrule), then NumPy's work
        ("slogdet", lambda a: numpy.linalg.slogdet(a)[1], 2),
        ("eigh", lambda a: numpy.linalg.eigh(a + a.T)[1].sum(), 2),
        ("qr", lambda a: numpy.linalg.qr(a)[0].sum(), 2),
        ("eig", lambda a: numpy.abs(numpy.linalg.eig(a)[1]).sum(), 2),
        ("svd", lambda a: numpy.linalg.svd(a)[0].sum(), 3),  # U and Vh: one call; S: its own
    ],
)
def test_the_results_of_one_decomposition_come_from_one_call(name, call, calls):
    a = numpy.random.default_rng(3).standard_normal((4, 4)) + 4 * numpy.eye(4)
    with mock.patch.object(numpy.linalg, name, wraps=getattr(numpy.linalg, name)) as spy:
        t = cr.tensor(a, requires_grad=True)
        call(t)  # the forward pass alone
    assert spy.call_count == calls
    # and the values are NumPy's own, bit for bit
    numpy.testing.assert_array_equal(
        numpy.linalg.slogdet(cr.tensor(a))[1], numpy.linalg.slogdet(a)[1]
    )


def test_lstsq_gradient_of_a_tall_matrix_without_a_square_of_its_rows():
    # 20000 rows: a 20000 x 20000 intermediate would be 3.2 GB; the gradient agrees with the
    # normal equations' (an independent formulation of the same solution)
    rng = numpy.random.default_rng(12)
    X = rng.standard_normal((20000, 5))
    y = rng.standard_normal(20000)
    w = rng.standard_normal(5)
    g = cr.grad(lambda X: numpy.linalg.lstsq(X, y, rcond=None)[0] @ w)(X)
    want = cr.grad(lambda X: numpy.linalg.solve(X.T @ X, X.T @ y) @ w)(X)
    numpy.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-12 * numpy.abs(want).max())
