"""What Jupyter shows: History and its plot inline as PNG (no %matplotlib inline needed), a
History table as HTML, and scikit-learn's HTML repr of the estimators without warnings."""

from __future__ import annotations

import numpy

from chainrule import nn
from chainrule.train.trainer import History, fit

PNG = b"\x89PNG\r\n\x1a\n"


def trained_history():
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = (X[:, 0] > 0).astype(int)
    return fit(
        nn.Linear(2, 2, rng=0), X, y, epochs=3, validation_split=0.25, early_stopping=5, verbose=0
    )


def test_history_and_its_plot_display_inline_as_png():
    h = trained_history()
    assert h._repr_png_().startswith(PNG)
    fig = h.plot()
    assert fig._repr_png_().startswith(PNG)
    assert History()._repr_png_() is None


def test_history_html_table_has_the_last_and_best_epochs():
    h = trained_history()
    html = h._repr_html_()
    assert html.count("<tr>") == 3  # header, last, best
    assert f"<td>{h['val_loss'][-1]:.4g}</td>" in html
    assert "best (val_loss)" in html
    assert History()._repr_html_() == "<p>History (no epochs)</p>"


def test_scikit_learn_html_repr_parses_the_docstrings_without_warnings():
    from chainrule.sklearn import MLPClassifier, MLPRegressor

    for est in (MLPClassifier(solver="lbfgs"), MLPRegressor()):
        assert "MLP" in est._repr_html_()  # a numpydoc warning would fail this test
