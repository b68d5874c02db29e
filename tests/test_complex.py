"""Complex numbers: every rule on complex inputs, against finite differences in both directions.

The convention (autograd's and JAX's, stated in ``chainrule.engine.rules``): for a real-valued
``f`` of ``z = x + iy`` the gradient is ``df/dx - i df/dy``; a complex-valued function is checked
through ``Re(sum(f(z) * d))`` for a fixed complex ``d``.  ``check_grads`` computes both partial
derivatives by central differences, so these expected values are independent of the rules.
"""

from __future__ import annotations

import numpy
import pytest
from op_cases import CASES

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
        report = cr.check_grads(case.fun, *zs, order=2)
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
    h = numpy.array([[2.0, 1j], [-1j, 3.0]])
    with pytest.raises(TypeError, match=r"numpy.linalg.eigvalsh: .*complex"):
        cr.grad(lambda h: numpy.linalg.eigvalsh(h).sum())(h)
    with pytest.raises(TypeError, match=r"numpy.softmax: .*complex"):
        cr.grad(lambda z: cr.functions.softmax(z).real.sum())(numpy.array([1j, 2.0]))


def test_backward_on_a_complex_output_needs_a_gradient():
    z = cr.tensor([1 + 1j], requires_grad=True)
    out = (z * z).sum()
    with pytest.raises(RuntimeError, match="real-valued output"):
        out.backward()
    (z * z).sum().real.backward()
    numpy.testing.assert_allclose(z.grad, [2 + 2j])
