"""The documentation stays true: every module's docstring examples pass, every Python block of
README and docs/ runs as shown, and README's first example gives the hand-derived gradients."""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import pathlib
import pkgutil
import re

import numpy
import pytest

import chainrule
from chainrule import seed

ROOT = pathlib.Path(__file__).resolve().parents[1]
WALKED = sorted(m.name for m in pkgutil.walk_packages(chainrule.__path__, "chainrule.")) + [
    "chainrule"
]
# Importing chainrule.__main__ runs the command line: its examples are checked from its source.
MODULES = [name for name in WALKED if name != "chainrule.__main__"]
DOCUMENTS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def test_readme_example_runs_and_its_gradient_is_the_hand_derived_one():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(code.replace("print(", "(lambda *a: None)("), "README", "exec"), namespace)
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for i in range(4):
        numpy.testing.assert_allclose(namespace["W"][i].grad, expected[f"W{i + 1}"], rtol=1e-12)
        numpy.testing.assert_allclose(namespace["B"][i].grad, expected[f"B{i + 1}"], rtol=1e-12)


def test_readme_quick_start_has_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", readme, re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert "chainrule demo" in lines[0] and "pytest" in lines[1]


def test_the_module_walk_sees_every_layer():
    layers = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert {"engine", "program", "readers", "train", "cli", "nn"} <= layers
    assert len(MODULES) > 40
    assert set(WALKED) - set(MODULES) == {"chainrule.__main__"}


def source_examples(source: str) -> int:
    """How many doctest examples the docstrings in ``source`` hold (module, classes, functions,
    nested ones included)."""
    parser = doctest.DocTestParser()
    return sum(
        len(parser.get_examples(ast.get_docstring(node, clean=False) or ""))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    )


def test_the_module_left_out_of_the_walk_has_no_examples():
    origin = importlib.util.find_spec("chainrule.__main__").origin
    assert source_examples(pathlib.Path(origin).read_text()) == 0


@pytest.mark.parametrize("name", MODULES)
def test_every_docstring_example_in_the_source_is_one_doctest_runs(name):
    """doctest only finds examples on objects it can reach from the module; none may hide."""
    module = importlib.import_module(name)
    found = sum(len(t.examples) for t in doctest.DocTestFinder().find(module))
    assert found == source_examples(pathlib.Path(module.__file__).read_text())


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # NumPy's default print options (another test may have changed the global ones)
    with numpy.printoptions(precision=8, suppress=False, linewidth=75, threshold=1000):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


# The public facades, and every module of the training layer and the command line.
PUBLIC_MODULES = [name for name in MODULES if name.startswith(("chainrule.train", "chainrule.cli"))]
PUBLIC_MODULES += [
    "chainrule",
    "chainrule.nn",
    "chainrule.nn.functional",
    "chainrule.nn.init",
    "chainrule.optim",
    "chainrule.data",
    "chainrule.sklearn",
    "chainrule.functions",
    "chainrule.seed",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_function_and_class_has_a_docstring_example(name):
    module = importlib.import_module(name)
    missing = []
    for public in getattr(module, "__all__", []):
        obj = getattr(module, public)
        if callable(obj) and not (obj.__doc__ and "Example" in obj.__doc__):
            missing.append(public)
    assert not missing, f"{name}: no docstring example for {missing}"


def python_blocks(path: pathlib.Path) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown file, with the line each starts on."""
    text = path.read_text()
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_python_block_runs_as_shown(path, tmp_path, monkeypatch, capsys):
    """Each file's blocks run in order in one namespace, as a reader following along would;
    blocks written as an interactive session (>>>) are checked as doctests."""
    monkeypatch.chdir(tmp_path)  # blocks may write checkpoints and logs
    namespace: dict = {"__name__": "__doc_block__"}
    blocks = python_blocks(path)
    for line, code in blocks:
        where = f"{path.name}:{line}"
        if code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(code, namespace, where, str(path), line)
            runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
            with numpy.printoptions(precision=8, suppress=False, linewidth=75):
                runner.run(test, clear_globs=False)  # later blocks read its names
            assert runner.failures == 0, where
        else:
            exec(compile(code, where, "exec"), namespace)
    capsys.readouterr()


def opening_fences(path: pathlib.Path) -> list[tuple[int, str]]:
    """Each code block's opening fence: its line and its language (empty when none is named)."""
    fences, inside = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            if not inside:
                fences.append((number, line[3:].strip()))
            inside = not inside
    return fences


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_every_code_block_names_its_language(path):
    """A bare fence would hide Python from the test above: output is ```text or ```console,
    commands ```bash."""
    bare = [line for line, language in opening_fences(path) if not language]
    assert not bare, f"{path.name}: code blocks without a language on lines {bare}"


def test_the_block_finder_finds_blocks_and_skips_other_fences(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n```python\na = 1\n```\n```text\nnot = code(\n```\n```python\nb = 2\n```\n"
    )
    assert python_blocks(doc) == [(3, "a = 1\n"), (9, "b = 2\n")]
    assert opening_fences(doc) == [(2, "python"), (5, "text"), (8, "python")]
