"""cholesky's rule multiplies and solves with L^T by BLAS's triangular routines when SciPy is
importable and by NumPy's matmul and solve otherwise: both give the gradient finite
differences give, for small and large, real and complex matrices."""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.engine import factors, rules, triangular


def gp_like(a, w):
    L = numpy.linalg.cholesky(a)
    return (L * w).sum() + numpy.log(numpy.diagonal(L)).sum()


def _without_scipy(monkeypatch):
    monkeypatch.setattr(triangular, "_BLAS", [None])
    monkeypatch.setattr(factors, "_LAPACK", [None])


@pytest.mark.parametrize("n", [5, 70])
@pytest.mark.parametrize("scipy_present", [True, False])
def test_cholesky_gradient_with_and_without_scipy(monkeypatch, scipy_present, n):
    if scipy_present:
        pytest.importorskip("scipy.linalg")
    else:
        _without_scipy(monkeypatch)
    rng = numpy.random.default_rng(0)
    m = rng.standard_normal((n, n))
    a = m @ m.T + n * numpy.eye(n)
    w = rng.standard_normal((n, n))
    g = cr.grad(gp_like)(a, w)
    # cholesky reads the lower triangle: perturb (i, j), i > j, only there
    want = numpy.tril(fd_grad(lambda x: gp_like(numpy.tril(x) + numpy.tril(x, -1).T, w), a))
    numpy.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("scipy_present", [True, False])
def test_complex_cholesky_gradient_by_directional_derivative(monkeypatch, scipy_present):
    # a Hermitian A = M M^H + n I; the loss reads L's real and imaginary parts.  chainrule's
    # gradient is df/dx - i df/dy (docs/guarantees.md), so along a Hermitian direction E,
    # d/dt f(A + t E) = Re sum(G * E), checked against a central difference.
    if scipy_present:
        pytest.importorskip("scipy.linalg")
    else:
        _without_scipy(monkeypatch)
    n = 60
    rng = numpy.random.default_rng(2)
    m = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    a = m @ m.conj().T + n * numpy.eye(n)
    w = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))

    def f(x):
        L = numpy.linalg.cholesky(x)
        return numpy.real(L * w).sum() + numpy.log(numpy.real(numpy.diagonal(L))).sum()

    g = cr.grad(f)(a)
    e = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    e = e + e.conj().T
    h = 1e-6
    fd = (f(a + h * e) - f(a - h * e)) / (2 * h)
    numpy.testing.assert_allclose(numpy.real(numpy.sum(g * e)), fd, rtol=1e-6)


@pytest.mark.parametrize("n", [30, 90])
def test_the_two_solves_agree(n):
    pytest.importorskip("scipy.linalg")
    rng = numpy.random.default_rng(1)
    m = rng.standard_normal((n, n))
    L = numpy.linalg.cholesky(m @ m.T + n * numpy.eye(n))
    b = rng.standard_normal((n, n))
    want = numpy.linalg.solve(L.T, b)
    numpy.testing.assert_allclose(rules._solve_lower_t(L, b), want, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(L.T @ rules._solve_lower_t(L, b), b, atol=1e-12)
