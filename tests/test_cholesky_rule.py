"""cholesky's rule solves with L^T by SciPy's triangular solve when SciPy is importable and by
numpy.linalg.solve otherwise: both give the gradient finite differences give."""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.engine import rules


def gp_like(a, w):
    L = numpy.linalg.cholesky(a)
    return (L * w).sum() + numpy.log(numpy.diagonal(L)).sum()


@pytest.mark.parametrize("scipy_present", [True, False])
def test_cholesky_gradient_with_and_without_scipy(monkeypatch, scipy_present):
    if scipy_present:
        pytest.importorskip("scipy.linalg")
    else:
        monkeypatch.setattr(rules, "_SCIPY", [None])
    rng = numpy.random.default_rng(0)
    m = rng.standard_normal((5, 5))
    a = m @ m.T + 5 * numpy.eye(5)
    w = rng.standard_normal((5, 5))
    g = cr.grad(gp_like)(a, w)
    # cholesky reads the lower triangle: perturb (i, j), i > j, only there
    want = numpy.tril(fd_grad(lambda x: gp_like(numpy.tril(x) + numpy.tril(x, -1).T, w), a))
    numpy.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)


def test_the_two_solves_agree():
    pytest.importorskip("scipy.linalg")
    rng = numpy.random.default_rng(1)
    m = rng.standard_normal((30, 30))
    L = numpy.linalg.cholesky(m @ m.T + 30 * numpy.eye(30))
    b = rng.standard_normal((30, 30))
    want = numpy.linalg.solve(L.T, b)
    numpy.testing.assert_allclose(rules._solve_lower_t(L, b), want, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(L.T @ rules._solve_lower_t(L, b), b, atol=1e-12)
