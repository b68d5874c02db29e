"""The seed problem (docs/seed.md): the user's forward pass, unchanged, and its eight
gradients."""

from __future__ import annotations

import json

import numpy
import pytest

import chainrule as cr
from chainrule import seed
from chainrule.cli import main

NAMES = ["W1", "W2", "W3", "W4", "B1", "B2", "B3", "B4"]


def _run_users_forward_pass():
    X = cr.tensor(seed.X)
    T = cr.tensor(seed.T)
    W1, W2, W3, W4, B1, B2, B3, B4 = (cr.tensor(seed.PARAMS[k], requires_grad=True) for k in NAMES)
    # --- the user's code, verbatim ---
    W = [W1, W2, W3, W4]
    B = [B1, B2, B3, B4]
    Z1 = X.dot(W[0]) + B[0]
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W[1]) + B[1]
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W[2]) + B[2]
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W[3]) + B[3]
    err = ((Y - T) ** 2).mean()
    # ---
    return err, dict(zip(NAMES, (W1, W2, W3, W4, B1, B2, B3, B4)))


def test_backward_gives_all_eight_gradients_equal_to_the_hand_derived_chain_rule():
    err, params = _run_users_forward_pass()
    err.backward()
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for name in NAMES:
        assert params[name].grad.shape == params[name].shape
        numpy.testing.assert_allclose(
            params[name].grad, expected[name], rtol=1e-12, atol=0, err_msg=name
        )


def test_the_error_value_matches_plain_numpy():
    err, _ = _run_users_forward_pass()
    assert float(err.data) == seed.forward(seed.X, seed.T, **seed.PARAMS)


def test_functional_grad_on_plain_arrays_gives_the_same_gradients():
    grads = cr.grad(seed.forward, argnums=tuple(range(2, 10)))(
        seed.X, seed.T, *seed.PARAMS.values()
    )
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for name, g in zip(NAMES, grads):
        numpy.testing.assert_allclose(g, expected[name], rtol=1e-12, atol=0, err_msg=name)


def test_numerical_check_parameter_by_parameter():
    report = cr.check_grads(
        seed.forward, seed.X, seed.T, *seed.PARAMS.values(), argnums=tuple(range(2, 10))
    )
    assert [a.name for a in report.arguments] == NAMES


def test_the_general_mse_factor_is_2_over_Y_size_not_len_X():
    # Two output columns and a batch of three: dividing by len(X) alone would be wrong by 2x.
    rng = numpy.random.default_rng(5)
    X, T = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    W, b = rng.standard_normal((4, 2)), rng.standard_normal(2)
    dW = cr.grad(lambda W: (((X @ W + b) - T) ** 2).mean())(W)
    DY = 2 * (X @ W + b - T) / (X @ W + b).size
    numpy.testing.assert_allclose(dW, X.T @ DY, rtol=1e-12)
    assert not numpy.allclose(dW, X.T @ (2 * (X @ W + b - T) / len(X)))


def test_a_plain_numpy_input_dotted_with_a_tensor_is_refused_not_dropped():
    W1 = cr.tensor(seed.W1, requires_grad=True)
    with pytest.raises(TypeError, match=r"X @ W"):
        seed.X.dot(W1)


def test_demo_prints_forward_values_error_gradients_and_a_passing_check(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for name in ["Z1", "A1", "Z2", "A2", "Z3", "A3", "Y"]:
        assert f"  {name} " in out
    for name in NAMES:
        assert f"dE/d{name}" in out
    assert "err = " in out and "passed" in out


def test_demo_json_holds_the_same_numbers(capsys):
    assert main(["demo", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for name in NAMES:
        numpy.testing.assert_allclose(
            doc["gradients"][f"dE/d{name}"]["value"], expected[name], rtol=1e-12
        )
    assert doc["error"] == pytest.approx(seed.forward(seed.X, seed.T, **seed.PARAMS), rel=1e-15)
    assert doc["gradient_check"]["passed"] is True
