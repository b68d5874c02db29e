"""check_backward: a learner's hand-derived backward pass, checked and diagnosed."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule import seed

RNG = numpy.random.default_rng(11)
X = RNG.standard_normal((4, 4))  # the seed network with a batch of 4 samples
T = RNG.standard_normal((4, 1))
ARGS = (X, T, *seed.PARAMS.values())


def backward(X, T, W1, W2, W3, W4, B1, B2, B3, B4, mistake=None):
    """The seed's backward pass by hand, with one optional planted mistake."""
    Z1 = X @ W1 + B1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2 + B2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2 @ W3 + B3
    A3 = numpy.maximum(0, Z3)
    Y = A3 @ W4 + B4
    DY = 2 * (Y - T) if mistake == "missing 1/N" else 2 * (Y - T) / Y.size
    DW4 = A3.T @ DY
    DB4 = DY.sum(axis=0)
    DZ3 = DY @ W4.T * (Z3 > 0)
    DW3 = DZ3.T @ A2 if mistake == "transposed" else A2.T @ DZ3
    DB3 = DZ3.sum(axis=0)
    mask2 = (Z2 < 0) if mistake == "mask" else (Z2 > 0)
    DZ2 = DZ3 @ W3.T * mask2
    DW2 = A1.T @ DZ2
    DB2 = DZ2 if mistake == "bias not summed" else DZ2.sum(axis=0)
    DZ1 = DZ2 @ W2.T * (Z1 > 0)
    DW1 = -(X.T @ DZ1) if mistake == "sign" else X.T @ DZ1
    DB1 = DZ1.sum(axis=0)
    return {"W1": DW1, "W2": DW2, "W3": DW3, "W4": DW4, "B1": DB1, "B2": DB2, "B3": DB3, "B4": DB4}


def test_the_correct_backward_pass_passes():
    report = cr.check_backward(seed.forward, ARGS, backward(*ARGS))
    assert report.passed and report.wrong == []
    assert "all gradients are correct" in str(report)


@pytest.mark.parametrize(
    "mistake, first_wrong, words",
    [
        ("missing 1/N", "W4", "missing 1/N"),
        ("transposed", "W3", "transposed"),
        ("bias not summed", "B2", "not summed over the batch"),
        ("mask", "B2", "ReLU mask"),
        ("sign", "W1", "wrong sign"),
    ],
)
def test_each_planted_mistake_is_named(mistake, first_wrong, words):
    report = cr.check_backward(seed.forward, ARGS, backward(*ARGS, mistake=mistake))
    assert not report.passed
    by_name = {p.name: p for p in report.parameters}
    assert words in by_name[first_wrong].diagnosis
    assert report.wrong[0] in (first_wrong, "W2") if mistake == "mask" else True
    text = str(report)
    assert f"d{first_wrong}" in text and "correct:" in text


def test_only_the_affected_gradients_are_flagged():
    report = cr.check_backward(seed.forward, ARGS, backward(*ARGS, mistake="sign"))
    assert report.wrong == ["W1"]
    report = cr.check_backward(seed.forward, ARGS, backward(*ARGS, mistake="transposed"))
    assert report.wrong == ["W3"]


def test_their_source_line_is_shown_next_to_the_correct_one():
    def their_backward(X, T, W1, W2, W3, W4, B1, B2, B3, B4):
        return backward(X, T, W1, W2, W3, W4, B1, B2, B3, B4, mistake="sign")

    report = cr.check_backward(seed.forward, ARGS, their_backward(*ARGS), backward=backward)
    text = str(report)
    assert "DW1 = -(X.T @ DZ1)" in text and "dW1 = X.T @ dZ1" in text


def test_gradients_may_be_given_by_position_or_with_a_D_prefix():
    grads = backward(*ARGS)
    by_d = {f"D{k}": v for k, v in grads.items()}
    assert cr.check_backward(seed.forward, ARGS, by_d).passed
    positional = [grads[k] for k in ["W1", "W2", "W3", "W4", "B1", "B2", "B3", "B4"]]
    Xt, Tt = cr.tensor(X), cr.tensor(T)  # data closed over must be tensors for X.dot(W)
    assert cr.check_backward(
        lambda W1, W2, W3, W4, B1, B2, B3, B4: seed.forward(Xt, Tt, W1, W2, W3, W4, B1, B2, B3, B4),
        tuple(seed.PARAMS.values()),
        positional,
    ).passed


def test_unknown_gradient_names_are_refused():
    with pytest.raises(TypeError, match="does not name a parameter"):
        cr.check_backward(seed.forward, ARGS, {"W9": numpy.zeros(1)})


def test_gradients_given_as_one_array_or_out_of_order_are_matched_by_shape():
    rng = numpy.random.default_rng(5)
    X, T, W = rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), rng.normal(size=(3, 2))

    def data_first(X, T, W):
        return ((X @ W - T) ** 2).mean()

    right = 2 * X.T @ (X @ W - T) / T.size  # d/dW mean((XW - T)^2), by hand
    assert cr.check_backward(data_first, (X, T, W), right).passed  # one bare array
    assert cr.check_backward(data_first, (X, T, W), (right,)).passed  # a tuple, out of order
    report = cr.check_backward(data_first, (X, T, W), right * T.size)
    assert report.wrong == ["W"] and report.parameters[0].kind == "missing-1/N"


def test_an_inline_relu_tie_is_a_convention_and_a_dict_argument_is_explained():
    rng = numpy.random.default_rng(6)
    X = numpy.vstack([numpy.zeros((1, 3)), rng.normal(size=(4, 3))])  # a zero row: Z ties at 0
    W1, b1, W2, T = (
        rng.normal(size=(3, 4)),
        numpy.zeros(4),
        rng.normal(size=(4, 1)),
        rng.normal(size=(5, 1)),
    )

    def net(W1, b1, W2, X, T):
        return ((numpy.maximum(0, X @ W1 + b1) @ W2 - T) ** 2).mean()  # the activation unnamed

    Z = X @ W1 + b1
    dY = 2 * (numpy.maximum(0, Z) @ W2 - T) / T.size
    dZ = (dY @ W2.T) * (Z >= 0)  # the tie taken the other way
    grads = {"W1": X.T @ dZ, "b1": dZ.sum(0), "W2": numpy.maximum(0, Z).T @ dY}
    report = cr.check_backward(net, (W1, b1, W2, X, T), grads)
    assert report.passed and any(p.kind == "tie-convention" for p in report.parameters)

    def with_dict(P, X, T):
        return ((X @ P["W"] - T) ** 2).sum()

    with pytest.raises(TypeError, match="key of the dict argument 'P'.*function of the arrays"):
        cr.check_backward(with_dict, ({"W": W1[:, :1]}, X, T), {"W": W1[:, :1]})


def _sig(z):
    return 1 / (1 + numpy.exp(-z))


def bce_net(W1, w2, X, y):
    H = numpy.tanh(X @ W1)
    p = _sig(H @ w2)
    return -numpy.mean(y * numpy.log(p) + (1 - y) * numpy.log(1 - p))


def bce_backward_with_dz_and_dZ(W1, w2, X, y):
    H = numpy.tanh(X @ W1)
    p = _sig(H @ w2)
    dz = (p - y) / len(y)  # the logit's gradient (z inside _sig)
    dw2 = H.T @ dz
    dZ = numpy.outer(dz, w2) * (1 - H)  # the mistake: tanh' is 1 - H ** 2
    dW1 = X.T @ dZ
    return dW1, dw2


def test_a_gradient_named_like_another_but_for_case_is_not_paired_with_it():
    rng = numpy.random.default_rng(8)
    args = (rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(8, 3)), rng.random(8))
    report = cr.check_backward(
        bce_net, args, bce_backward_with_dz_and_dZ(*args), backward=bce_backward_with_dz_and_dZ
    )
    assert report.wrong == ["W1"]
    # dz (right) must not be compared with dZ: the first line that differs is a W1 line
    assert report.first_wrong_line is not None and "dz" not in report.first_wrong_line.split(",")[1]
    assert "dW1" in report.first_wrong_line or "dZ" in report.first_wrong_line
    assert "shape (8, 4) where" not in report.first_wrong_line


def _rnn_loss(W, xs):
    total = 0.0
    for t in range(len(xs)):
        total = total + numpy.sum(numpy.tanh(W @ xs[t]))
    return total


def _rnn_backward(W, xs):
    hs = [numpy.tanh(W @ x) for x in xs]
    dW = numpy.zeros_like(W)
    for t in range(len(xs)):
        dz = 1 - hs[t] ** 2
        dW += numpy.outer(dz, xs[t])
    return dW


def _rnn_backward_wrong(W, xs):
    hs = [numpy.tanh(W @ x) for x in xs]
    dW = numpy.zeros_like(W)
    for t in range(len(xs)):
        dz = 1 - hs[t]  # the mistake: tanh's derivative is 1 - h ** 2
        dW += numpy.outer(dz, xs[t])
    return dW


def test_a_gradient_accumulated_in_place_is_judged_by_its_last_line():
    # dW = zeros_like(W); dW += ... in a loop: the value the zeros line bound keeps changing, so
    # the line to show is the accumulation, and a correct accumulation passes
    rng = numpy.random.default_rng(31)
    W, xs = rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    good = cr.check_backward(
        _rnn_loss, (W, xs), {"W": _rnn_backward(W, xs)}, backward=_rnn_backward
    )
    assert good.passed
    bad = _rnn_backward_wrong
    report = cr.check_backward(_rnn_loss, (W, xs), {"W": bad(W, xs)}, backward=bad)
    assert not report.passed
    assert "dW += numpy.outer(dz, xs[t])" in report.first_wrong_line
    assert "zeros_like" not in report.first_wrong_line
    assert "yours:   dW += numpy.outer(dz, xs[t])" in str(report)


@pytest.mark.parametrize("keepdims", [True, False])
def test_batch_norm_statistics_held_constant_are_named_with_or_without_keepdims(keepdims):
    # CS231n-style batch norm (h.mean(axis=0), no keepdims) and the keepdims spelling: a
    # backward pass that treats the mean and variance as constants is recognised in both
    def loss(gamma, W, X, y):
        h = X @ W
        mu = h.mean(axis=0, keepdims=keepdims)
        var = h.var(axis=0, keepdims=keepdims)
        xhat = (h - mu) / numpy.sqrt(var + 1e-5)
        return 0.5 * numpy.sum((gamma * xhat - y) ** 2) / X.shape[0]

    rng = numpy.random.default_rng(1)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 4))
    W, gamma = rng.standard_normal((3, 4)), 1 + 0.1 * rng.standard_normal(4)
    h = X @ W
    std = numpy.sqrt(h.var(axis=0) + 1e-5)
    xhat = (h - h.mean(axis=0)) / std
    dxhat = gamma * (gamma * xhat - y) / len(X)
    dgamma = ((gamma * xhat - y) * xhat).sum(axis=0) / len(X)
    wrong = {"gamma": dgamma, "W": X.T @ (dxhat / std)}  # the statistics' terms left out
    report = cr.check_backward(loss, (gamma, W, X, y), wrong)
    kinds = {p.name: p.kind for p in report.parameters}
    assert kinds == {"gamma": "", "W": "stats-constant"}
    # the full batch-norm backward (the textbook formula) passes
    dh = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    assert cr.check_backward(loss, (gamma, W, X, y), {"gamma": dgamma, "W": X.T @ dh}).passed


def test_a_missing_regulariser_is_named_by_the_parameters_it_penalises():
    def poisson_nll(beta, X, y):
        eta = X @ beta
        return numpy.sum(numpy.exp(eta) - y * eta) / len(y) + 0.05 * numpy.dot(beta, beta)

    rng = numpy.random.default_rng(5)
    X, y = rng.standard_normal((30, 3)), rng.poisson(2.0, 30).astype(float)
    b = 0.1 * rng.standard_normal(3)
    without = X.T @ ((numpy.exp(X @ b) - y) / len(y))  # the penalty's 0.1 * beta left out
    report = cr.check_backward(poisson_nll, (b, X, y), {"beta": without})
    (p,) = report.parameters
    assert p.kind == "regulariser-missing"
    assert "the penalty on beta" in str(report) and "intermediate value" not in str(report)
    assert cr.check_backward(poisson_nll, (b, X, y), {"beta": without + 0.1 * b}).passed
