"""The command line: explain and check on a user's own file, and demo --explain."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy
import pytest

from chainrule.cli import main

MODEL = textwrap.dedent("""
    import numpy
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    y = rng.standard_normal(5)
    w = rng.standard_normal(3)

    def loss(w, x, y):
        pred = numpy.tanh(x @ w)
        resid = pred - y
        return (resid ** 2).mean()

    def good_backward(w, x, y):
        pred = numpy.tanh(x @ w)
        dpred = 2 * (pred - y) / len(y)
        return {"w": x.T @ (dpred * (1 - pred ** 2))}

    def bad_backward(w, x, y):
        pred = numpy.tanh(x @ w)
        dpred = 2 * (pred - y)
        return {"w": x.T @ (dpred * (1 - pred ** 2))}
""")


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    return path


@pytest.mark.parametrize(
    "fmt, marker",
    [
        ("text", "dresid = 2 * resid / len(resid)"),
        ("python", "def backward(w, x, y):"),
        ("latex", r"\begin{align*}"),
        ("markdown", "```python"),
        ("dot", "digraph"),
    ],
)
def test_explain_a_users_file_in_every_format(model, capsys, fmt, marker):
    assert main(["explain", f"{model}:loss", "--wrt", "w", "--format", fmt]) == 0
    assert marker in capsys.readouterr().out


def test_explain_python_output_computes_the_gradient(model, capsys, tmp_path):
    main(["explain", f"{model}:loss", "--wrt", "w", "--format", "python"])
    namespace: dict = {}
    exec(capsys.readouterr().out, namespace)
    rng = numpy.random.default_rng(0)
    x, y, w = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal(3)
    value, grads = namespace["backward"](w, x, y)
    pred = numpy.tanh(x @ w)
    expected = x.T @ (2 * (pred - y) / 5 * (1 - pred**2))  # by hand
    numpy.testing.assert_allclose(grads["w"], expected, rtol=1e-12)
    assert value == pytest.approx(((pred - y) ** 2).mean(), rel=1e-15)


def test_explain_why_and_args_override(model, capsys):
    assert (
        main(["explain", f"{model}:loss", "--wrt", "w", "--why", "--args", "w=numpy.zeros(3)"]) == 0
    )
    out = capsys.readouterr().out
    assert "∂loss/∂resid" in out


def test_check_names_the_wrong_gradient(model, capsys):
    assert main(["check", f"{model}:loss", f"{model}:good_backward"]) == 0
    assert "all gradients are correct" in capsys.readouterr().out
    assert main(["check", f"{model}:loss", f"{model}:bad_backward"]) == 1
    out = capsys.readouterr().out
    assert "WRONG dw" in out and "5 times too large" in out


def test_missing_values_and_bad_targets_are_explained(model, capsys):
    with pytest.raises(SystemExit, match="FILE.py:FUNCTION"):
        main(["explain", "nofunction"])
    with pytest.raises(SystemExit, match="no such file"):
        main(["explain", "missing.py:f"])
    with pytest.raises(SystemExit, match="no function 'nope'"):
        main(["explain", f"{model}:nope"])


def test_demo_explain_shows_the_seed_derivation(capsys):
    assert main(["demo", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "dZ3 = dA3 * (Z3 > 0)" in out and "dW1 = X.T @ dZ1" in out and "len(X)" in out


def test_demo_json_with_explain(capsys):
    assert main(["demo", "--json", "--explain"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "dB1 = dZ1.sum(axis=0)" in doc["derivation"]["backward"]


def test_console_script_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "chainrule", "demo", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["gradient_check"]["passed"] is True
