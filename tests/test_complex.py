"""Complex numbers: every rule on complex inputs, against finite differences in both directions.

The convention (autograd's and JAX's, stated in ``chainrule.engine.rules``): for a real-valued
``f`` of ``z = x + iy`` the gradient is ``df/dx - i df/dy``; a complex-valued function is checked
through ``Re(sum(f(z) * d))`` for a fixed complex ``d``.  ``check_grads`` computes both partial
derivatives by central differences, so these expected values are independent of the rules.
"""

from __future__ import annotations

import numpy
import pytest
from op_cases import CASES, FIRST_ORDER_ONLY

import chainrule as cr

rng = numpy.random.default_rng(11)


def _complexify(x: numpy.ndarray) -> numpy.ndarray:
    if x.dtype.kind != "f":
        return x
    return x + 0.3j * rng.standard_normal(x.shape)


COMPLEX_INPUTS = {c.id: [_complexify(x) for x in c.inputs] for c in CASES}


def _numpy_refuses(case, zs) -> bool:
    try:
        case.fun(*zs)
    except (TypeError, ValueError, numpy.linalg.LinAlgError, numpy.exceptions.ComplexWarning):
        return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_rule_on_complex_inputs_is_right_or_refused(case):
    """A rule marked complex-ready must match the finite differences (first and second order);
    any other must raise rather than differentiate (never a silently wrong gradient)."""
    zs = COMPLEX_INPUTS[case.id]
    try:
        report = cr.check_grads(case.fun, *zs, order=1 if case.id in FIRST_ORDER_ONLY else 2)
    except cr.GradientCheckError:
        raise
    except (TypeError, ValueError, numpy.linalg.LinAlgError, numpy.exceptions.ComplexWarning) as e:
        assert "complex" in str(e).lower() or _numpy_refuses(case, zs), str(e)
        return
    assert report.passed


# The operations whose complex gradients the guide promises (not a mere "raises" allowed):
MUST_WORK = [
    "add",
    "multiply",
    "divide",
    "exp",
    "log",
    "sin",
    "tanh",
    "sqrt",
    "abs",
    "matmul",
    "sum",
    "mean",
    "var",
    "std",
    "prod",
    "cumsum",
    "einsum",
    "linalg-inv",
    "linalg-solve",
    "linalg-det",
    "getitem",
    "reshape",
    "transpose",
    "concatenate",
]


@pytest.mark.parametrize("prefix", MUST_WORK)
def test_the_core_operations_are_complex_ready(prefix):
    cases = [c for c in CASES if c.id == prefix or c.id.startswith(prefix + "-")]
    assert cases, f"no op case named {prefix}"
    for case in cases:
        report = cr.check_grads(case.fun, *COMPLEX_INPUTS[case.id], order=1)
        assert report.passed


@pytest.mark.parametrize(
    "dtype, real", [(numpy.complex64, numpy.float32), (numpy.complex128, None)]
)
def test_gradients_keep_the_complex_dtype_and_real_inputs_get_real_gradients(dtype, real):
    z = (numpy.array([1.0, -2.0]) + 1j * numpy.array([0.5, 0.25])).astype(dtype)
    x = numpy.array([0.3, 0.7], dtype=real or numpy.float64)
    gz, gx = cr.grad(lambda z, x: (numpy.abs(z * x) ** 2).sum(), argnums=(0, 1))(z, x)
    assert gz.dtype == dtype and gx.dtype == x.dtype
    # |z x|^2 = |z|^2 x^2: d/dx = 2 |z|^2 x; d/dRe z - i d/dIm z = 2 x^2 conj(z)
    tol = 1e-6 if dtype == numpy.complex64 else 1e-14
    numpy.testing.assert_allclose(gx, 2 * numpy.abs(z) ** 2 * x, rtol=tol)
    numpy.testing.assert_allclose(gz, 2 * x**2 * numpy.conj(z), rtol=tol)


def test_hand_derived_values():
    # d|z|/dz (convention: d/dx - i d/dy) = conj(z)/|z|; at 3+4j: (3-4j)/5
    assert complex(cr.grad(lambda z: numpy.abs(z))(3 + 4j)) == pytest.approx(0.6 - 0.8j)
    # angle(z) = atan2(y, x): d/dx = -y/|z|^2, d/dy = x/|z|^2 -> (-y - ix)/|z|^2
    assert complex(cr.grad(lambda z: numpy.angle(z))(1 + 2j)) == pytest.approx(-0.4 - 0.2j)
    # Re(z^2) = x^2 - y^2 -> 2x + 2iy... d/dx - i d/dy = 2x - i(-2y) = 2z (holomorphic: f'(z))
    assert complex(cr.grad(lambda z: (z * z).real)(1 + 2j)) == pytest.approx(2 + 4j)
    # Im(z) -> -i; |conj(z)|^2 = |z|^2 -> 2 conj(z)
    assert complex(cr.grad(lambda z: numpy.imag(z))(1 + 2j)) == pytest.approx(-1j)
    assert complex(cr.grad(lambda z: numpy.abs(numpy.conj(z)) ** 2)(1 + 2j)) == pytest.approx(
        2 - 4j
    )
    # vdot(a, b) = conj(a) b; Re(conj(a) b) = ax bx + ay by: d/dax - i d/day = bx - i by
    assert complex(cr.grad(lambda a: numpy.vdot(a, 2 - 1j).real)(1 + 1j)) == pytest.approx(2 + 1j)


def test_a_holomorphic_function_agrees_with_its_complex_derivative():
    # For holomorphic f, grad(Re f)(z) = f'(z) under the convention; f = z^3 e^z
    z = 0.4 - 0.7j
    got = complex(cr.grad(lambda z: (z**3 * numpy.exp(z)).real)(z))
    assert got == pytest.approx((3 * z**2 + z**3) * numpy.exp(z), rel=1e-13)


def test_jvp_and_vjp_on_complex_functions_satisfy_the_pairing():
    # <u, J v> = <vjp(u), v> with <a, b> = Re(sum(a * b)), also for non-holomorphic f
    f = lambda z: numpy.conj(z) * numpy.exp(z) + numpy.abs(z)  # noqa: E731
    z = numpy.array([0.5 + 1j, -1 - 0.3j])
    v = numpy.array([0.2 - 0.1j, 1 + 0.5j])
    u = numpy.array([1 - 2j, 0.3 + 0.4j])
    _, jv = cr.jvp(f, (z,), (v,))
    _, pull = cr.vjp(f, z)
    (uj,) = pull(u)
    assert numpy.real(numpy.sum(u * jv)) == pytest.approx(numpy.real(numpy.sum(uj * v)))
    # and J v against a finite difference along v
    h = 1e-7
    numpy.testing.assert_allclose(jv, (f(z + h * v) - f(z - h * v)) / (2 * h), rtol=1e-6)


def test_slogdet_of_a_complex_matrix_has_a_moving_sign():
    a = numpy.array([[1 + 1j, 0.3], [0.2 - 0.5j, 2 + 0.1j]])
    sign, logabs = numpy.linalg.slogdet(a)
    t = cr.tensor(a, requires_grad=True)
    s, la = numpy.linalg.slogdet(t)
    assert complex(s.data) == pytest.approx(complex(sign)) and float(la.data) == pytest.approx(
        logabs
    )
    cr.check_grads(lambda a: numpy.linalg.slogdet(a)[0].imag, a, order=2)
    cr.check_grads(lambda a: numpy.linalg.slogdet(a)[1], a, order=2)


def test_complex_sign_and_unready_operations_raise():
    with pytest.raises(TypeError, match=r"numpy.sign of complex"):
        cr.grad(lambda z: numpy.sign(z).real)(1 + 1j)
    with pytest.raises(TypeError, match=r"numpy.softmax: .*complex"):
        cr.grad(lambda z: cr.functions.softmax(z).real.sum())(numpy.array([1j, 2.0]))


def test_backward_on_a_complex_output_needs_a_gradient():
    z = cr.tensor([1 + 1j], requires_grad=True)
    out = (z * z).sum()
    with pytest.raises(RuntimeError, match="real-valued output"):
        out.backward()
    (z * z).sum().real.backward()
    numpy.testing.assert_allclose(z.grad, [2 + 2j])


def test_jacobian_of_complex_functions_follows_jax():
    z = numpy.array([1 + 1j, 0.5 - 2j])
    x = numpy.array([0.3, 0.7])
    f = lambda z: numpy.exp(z) * z  # noqa: E731
    want = numpy.diag((1 + z) * numpy.exp(z))  # f'(z), by hand
    for mode in ("reverse", "forward"):
        got = cr.jacobian(f, holomorphic=True, mode=mode)(z)
        numpy.testing.assert_allclose(got, want, rtol=1e-13)
    # real -> complex: the columns d out / dx
    got = cr.jacobian(lambda x: numpy.exp(1j * x))(x)
    numpy.testing.assert_allclose(got, numpy.diag(1j * numpy.exp(1j * x)), rtol=1e-13)
    # complex -> real: rows in grad's convention
    got = cr.jacobian(lambda z: numpy.abs(z) ** 2)(z)
    numpy.testing.assert_allclose(got, numpy.diag(2 * numpy.conj(z)), rtol=1e-13)
    with pytest.raises(TypeError, match="holomorphic=True"):
        cr.jacobian(lambda z: z * numpy.conj(z))(z)
    with pytest.raises(TypeError, match="mode='forward'"):
        cr.jacobian(lambda x: x * 1j, mode="reverse")(x)


def test_fft_gradients_keep_single_precision():
    x = numpy.linspace(-1, 1, 8).astype(numpy.float32)
    g = cr.grad(lambda x: (numpy.abs(numpy.fft.rfft(x)) ** 2).sum())(x)
    assert g.dtype == numpy.float32
    # Parseval for the real transform: sum |rfft x|^2 weights interior bins twice, so the
    # gradient is 2 * (2N x - x0-bin - nyquist-bin terms); compare with float64 instead.
    g64 = cr.grad(lambda x: (numpy.abs(numpy.fft.rfft(x)) ** 2).sum())(x.astype(numpy.float64))
    numpy.testing.assert_allclose(g, g64, rtol=1e-5, atol=1e-5)
    z = (x + 0.5j * x[::-1]).astype(numpy.complex64)
    gz = cr.grad(lambda z: (numpy.abs(numpy.fft.fft(z)) ** 2).sum())(z)
    # Parseval: sum |fft z|^2 = N sum |z|^2, whose gradient is 2 N conj(z)
    assert gz.dtype == numpy.complex64
    numpy.testing.assert_allclose(gz, 2 * 8 * numpy.conj(z), rtol=1e-5)


def test_power_spectrum_loss_matches_a_hand_derivation():
    # L = sum_k |X_k|^2 with X = fft(x) equals N sum |x|^2 (Parseval): dL/dx = 2 N x
    x = numpy.random.default_rng(3).standard_normal(16)
    g = cr.grad(lambda x: (numpy.abs(numpy.fft.fft(x)) ** 2).sum())(x)
    numpy.testing.assert_allclose(g, 2 * 16 * x, rtol=1e-12)


def test_spectral_convolution_equals_circular_convolution():
    # irfft(rfft(x) rfft(k)) is the circular convolution: its gradient in x is the circular
    # correlation of the cotangent with k, here checked against the same loss written directly.
    rng = numpy.random.default_rng(4)
    x, k, w = rng.standard_normal(8), rng.standard_normal(8), rng.standard_normal(8)

    def spectral(x):
        return (numpy.fft.irfft(numpy.fft.rfft(x) * numpy.fft.rfft(k), n=8) * w).sum()

    def direct(x):
        idx = (numpy.arange(8)[:, None] - numpy.arange(8)[None, :]) % 8
        return ((x[idx] * k[None, :]).sum(axis=1) * w).sum()

    assert spectral(x) == pytest.approx(direct(x))
    numpy.testing.assert_allclose(cr.grad(spectral)(x), cr.grad(direct)(x), rtol=1e-12)


def test_unitary_evolution_through_an_eigendecomposition():
    # |<phi| exp(-i t H) |psi>|^2 with H = A + A^T, the exponential through eigh (no expm)
    rng = numpy.random.default_rng(5)
    psi = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    psi /= numpy.linalg.norm(psi)
    phi = numpy.array([1.0, 0.0, 0.0], dtype=complex)

    def fidelity(a, t):
        h = a + a.T
        w, v = numpy.linalg.eigh(h)
        u = (v * numpy.exp(-1j * t * w)) @ v.T
        return numpy.abs(numpy.vdot(phi, u @ psi)) ** 2

    a = rng.standard_normal((3, 3))
    cr.check_grads(fidelity, a, 0.7, order=1)
    # and the value against the exponential series
    h = a + a.T
    u_series = numpy.eye(3, dtype=complex)
    term = numpy.eye(3, dtype=complex)
    for n in range(1, 60):
        term = term @ (-1j * 0.7 * h) / n
        u_series = u_series + term
    assert float(fidelity(a, 0.7)) == pytest.approx(abs(numpy.vdot(phi, u_series @ psi)) ** 2)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_jit_of_a_complex_program_equals_eager(backend):
    if backend == "numba":
        pytest.importorskip("numba")

    def loss(z, x):
        y = numpy.fft.fft(z * numpy.exp(1j * x))
        return (numpy.abs(y) ** 2).sum() + numpy.angle(z).sum() + numpy.var(z)

    step = cr.value_and_grad(loss, argnums=(0, 1))
    fast = cr.jit(step, backend=backend)
    rng = numpy.random.default_rng(6)
    for trial in range(2):
        z = rng.standard_normal(5) + 1j * rng.standard_normal(5)
        x = rng.standard_normal(5)
        if backend == "numba" and trial == 0:  # one warning: it falls back to the NumPy backend
            with pytest.warns(UserWarning, match="complex|fft|Numba"):
                got = fast(z, x)
        else:
            got = fast(z, x)
        want = step(z, x)
        assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-13)
        for a, b in zip(got[1], want[1]):
            assert a.dtype == b.dtype
            numpy.testing.assert_allclose(a, b, rtol=1e-12)


def test_vmap_of_a_complex_function_equals_a_loop():
    rng = numpy.random.default_rng(7)
    zs = rng.standard_normal((4, 6)) + 1j * rng.standard_normal((4, 6))
    f = cr.grad(lambda z: (numpy.abs(numpy.fft.fft(z) * numpy.conj(z)) ** 2).sum())
    got = cr.vmap(f)(zs)
    want = numpy.stack([f(z) for z in zs])
    numpy.testing.assert_allclose(got, want, rtol=1e-12)


def test_vmap_of_vdot_conjugates_its_first_argument():
    rng = numpy.random.default_rng(8)
    a = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    b = rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))
    want = [numpy.sum(numpy.conj(x) * y) for x, y in zip(a, b)]
    numpy.testing.assert_allclose(cr.vmap(numpy.vdot)(a, b), want, rtol=1e-13)


def test_real_if_close_follows_numpy_and_refuses_to_be_traced():
    z = numpy.array([1 + 1e-20j, 2 - 1e-18j])  # imaginary parts within 100 epsilons: real
    w = numpy.array([1 + 1e-3j, 2.0 + 0j])  # not close: stays complex
    assert numpy.real_if_close(cr.tensor(z)).dtype == numpy.float64
    assert numpy.real_if_close(cr.tensor(w)).dtype == numpy.complex128
    # Re z passes the cotangent on unchanged: d/dx - i d/dy of sum(Re z) is 1
    numpy.testing.assert_array_equal(cr.grad(lambda z: numpy.real_if_close(z).sum())(z), [1, 1])
    with pytest.raises(cr.TracerBoolError):  # which branch it takes depends on the values
        cr.jit(cr.grad(lambda z: numpy.real_if_close(z).sum()))(z)


def test_explain_derives_complex_inputs_and_its_code_matches_grad():
    def f(z, x):
        y = numpy.fft.fft(z * numpy.exp(1j * x))
        return (numpy.abs(y) ** 2).sum() + numpy.angle(z).sum() + numpy.var(z)

    z = numpy.array([1 + 2j, 0.5 - 1j, -0.3 + 0.2j])
    x = numpy.array([0.1, 0.2, 0.3])
    namespace: dict = {}
    exec(cr.explain(f, z, x).to_python(), namespace)
    _, grads = namespace["backward"](z, x)
    want = cr.grad(f, argnums=(0, 1))(z, x)
    numpy.testing.assert_allclose(grads["z"], want[0], rtol=1e-12)
    numpy.testing.assert_allclose(grads["x"], want[1], rtol=1e-12)


def test_a_custom_primitive_takes_complex_values_only_when_declared():
    plain = cr.primitive(lambda x: x * 2.0, name="double_real_only")
    cr.defvjp(plain, lambda g, out, x: g * 2.0)
    with pytest.raises(TypeError, match="complex_ready=True"):
        cr.grad(lambda z: numpy.abs(plain(z)))(1 + 1j)
    ready = cr.primitive(lambda x: x * 2.0, name="double_complex")
    cr.defvjp(ready, lambda g, out, x: g * 2.0, complex_ready=True)
    # |2z|^2 = 4 |z|^2: d/dx - i d/dy = 8 conj(z)
    assert complex(cr.grad(lambda z: numpy.abs(ready(z)) ** 2)(1 + 1j)) == pytest.approx(8 - 8j)
