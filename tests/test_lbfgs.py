"""optim.LBFGS: PyTorch's closure-driven L-BFGS, against exact minimisers (a linear solve and
SciPy's L-BFGS-B on a strictly convex problem)."""

from __future__ import annotations

import numpy
import pytest
import scipy.optimize

import chainrule as cr
from chainrule import optim
from chainrule.nn import functional as F


def make_closure(opt, loss_fn):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


def test_lbfgs_solves_a_quadratic():
    rng = numpy.random.default_rng(0)
    M = rng.standard_normal((6, 6))
    A, b = M @ M.T + 6 * numpy.eye(6), rng.standard_normal(6)
    x = cr.tensor(numpy.zeros(6), requires_grad=True)
    frozen = cr.tensor(numpy.ones(2))
    opt = optim.LBFGS([x, frozen], max_iter=100, tolerance_change=1e-15, tolerance_grad=1e-12)
    first = opt.step(make_closure(opt, lambda: 0.5 * x @ (A @ x) - b @ x + frozen.sum()))
    assert float(first) == 2.0  # step returns the first loss, as PyTorch
    numpy.testing.assert_allclose(x.data, numpy.linalg.solve(A, b), rtol=1e-7, atol=1e-9)
    numpy.testing.assert_array_equal(frozen.data, [1.0, 1.0])


def test_lbfgs_reaches_the_minimum_scipy_finds_on_regularised_logistic_regression():
    rng = numpy.random.default_rng(1)
    X = rng.standard_normal((80, 3))
    y = (X @ numpy.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(80) > 0).astype(float)

    def objective(w):
        return F.binary_cross_entropy_with_logits(X @ w[:3] + w[3], y) + 0.01 * (w[:3] ** 2).sum()

    w = cr.tensor(numpy.zeros(4), requires_grad=True)
    opt = optim.LBFGS(
        [w], max_iter=100, history_size=10, tolerance_change=1e-15, tolerance_grad=1e-10
    )
    for _ in range(5):
        opt.step(make_closure(opt, lambda: objective(w)))
    ref = scipy.optimize.minimize(
        lambda v: float(objective(v)),
        numpy.zeros(4),
        jac=lambda v: cr.grad(objective)(v),
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 1000},
    )
    numpy.testing.assert_allclose(w.data, ref.x, rtol=1e-5, atol=1e-6)


def test_lbfgs_state_dict_continues_the_same_run_and_errors_are_clear():
    target = numpy.array([1.0, -3.0, 2.0])

    def run(opt, w):
        return opt.step(make_closure(opt, lambda: ((w - target) ** 4).sum()))

    w1 = cr.tensor(numpy.zeros(3), requires_grad=True)
    o1 = optim.LBFGS([w1], max_iter=3)
    run(o1, w1)
    w2 = cr.tensor(w1.data.copy(), requires_grad=True)
    o2 = optim.LBFGS([w2], max_iter=3)
    o2.load_state_dict(o1.state_dict())
    run(o1, w1)
    run(o2, w2)
    numpy.testing.assert_array_equal(w1.data, w2.data)
    with pytest.raises(NotImplementedError, match="strong_wolfe"):
        optim.LBFGS([w1], line_search_fn="strong_wolfe")
    with pytest.raises(ValueError, match="needs a closure"):
        o1.step()
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [w1]}, {"params": [w2]}])
