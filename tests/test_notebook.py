"""docs/from_gradient_to_model.ipynb executes from top to bottom without an error or a warning
(nbclient, when it and ipykernel are installed; a warning in a cell shows as a stderr output,
which fails the test), and its outputs show the History's curves as an inline PNG and its
table as HTML."""

from __future__ import annotations

import os
import pathlib

import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "docs" / "from_gradient_to_model.ipynb"
SRC = pathlib.Path(__file__).resolve().parents[1] / "src"


def test_the_docs_notebook_runs_and_shows_its_plots_and_reports(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    path = os.pathsep.join(p for p in [str(SRC), os.environ.get("PYTHONPATH", "")] if p)
    monkeypatch.setenv("PYTHONPATH", path)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    results = {m for o in outputs if "data" in o for m in o.data}
    assert {"image/png", "text/html"} <= results
    assert "True" in [o.data.get("text/plain") for o in outputs if "data" in o]
