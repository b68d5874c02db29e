"""Every mistake at the command line is one line on stderr and a non-zero exit, never a
traceback; nothing is written before the inputs are validated."""

from __future__ import annotations

import pytest

from chainrule.cli import main

USER_FILE = """
import numpy
W = numpy.ones(2)
X = numpy.ones((3, 2))
def loss(W):
    return ((X @ W) ** 2).sum()
def raises(W):
    raise ValueError("boom in user code")
def backward(W):
    return (2 * X.T @ (X @ W),)
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(USER_FILE)
    (tmp_path / "broken.py").write_text("def loss(W):\n    return (W ** 2).sum(\n")
    (tmp_path / "imports.py").write_text("import no_such_module_anywhere\n")
    (tmp_path / "a_file").write_text("x")
    return tmp_path


BAD = [
    (["explain", "broken.py:loss"], "SyntaxError"),
    (["explain", "imports.py:loss"], "ModuleNotFoundError"),
    (["explain", "model.py:raises"], "boom in user code (at"),
    (["explain", "model.py:loss", "--wrt", "Q"], "is not a parameter"),
    (["explain", "model.py:nothing"], "has no function"),
    (["explain", "model.py:loss", "--args", "W=(("], ""),
    (["check", "model.py:loss", "model.py:raises"], "boom in user code"),
    (["train", "--dataset", "iris", "--lr", "nan"], "--lr"),
    (["train", "--dataset", "iris", "--lr", "-1"], "--lr"),
    (["train", "--dataset", "iris", "--epochs", "0"], "--epochs"),
    (["train", "--dataset", "iris", "--batch-size", "0"], "--batch-size"),
    (["train", "--dataset", "iris", "--test-size", "1.5"], "--test-size"),
    (
        ["train", "--dataset", "iris", "--out", "a_file", "--epochs", "1", "--no-progress"],
        "is a file",
    ),
    (["train", "--dataset", "no_such_set"], "no such data set"),
    (["evaluate", "no_such_dir"], ""),
]


@pytest.mark.parametrize("argv, says", BAD, ids=[" ".join(a)[:40] for a, _ in BAD])
def test_a_mistake_is_one_line_and_a_nonzero_exit(argv, says, files, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse and the file checks exit with a message
        code = e.code if isinstance(e.code, int) else (print(e.code) or 1)
    out = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in out.err + out.out
    lines = [line for line in out.err.splitlines() if line.startswith("chainrule")]
    assert lines or out.out.strip(), out
    assert says in out.err + out.out
    # nothing was written for a training run that was refused
    assert not (files / "runs").exists() and not (files / "checkpoints").exists()
