"""chainrule.sklearn: scikit-learn's own estimator checks, plus behaviour on real data.

All of scikit-learn's applicable checks pass.  Two are skipped *by scikit-learn itself* in a
plain environment, whatever the estimator: ``check_array_api_input`` (runs only with
``SCIPY_ARRAY_API=1``) and ``check_*_data_not_an_array``'s pandas variant (runs only when
pandas is installed).  ``ConvergenceWarning`` is ignored in the checks: with ``max_iter`` kept
small for speed, stopping before convergence is expected, and the warning is scikit-learn's
own behaviour (tested below).
"""

from __future__ import annotations

import pickle

import numpy
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from chainrule.sklearn import MLPClassifier, MLPRegressor


@parametrize_with_checks(
    [
        MLPClassifier(max_iter=50, random_state=0),
        MLPRegressor(max_iter=50, random_state=0),
        MLPClassifier(solver="lbfgs", max_iter=50, random_state=0),
        MLPRegressor(solver="lbfgs", max_iter=50, random_state=0),
    ]
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_without_scikit_learn_the_import_error_says_what_to_install(monkeypatch):
    import importlib
    import sys

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "chainrule.sklearn")
    monkeypatch.delitem(sys.modules, "chainrule.train.sklearn")
    with pytest.raises(ImportError, match=r"pip install chainrule\[train\]"):
        importlib.import_module("chainrule.sklearn")
    from chainrule.data import load_dataset

    with pytest.raises(ImportError, match=r"pip install chainrule\[train\]"):
        load_dataset("iris")


def test_classifier_on_iris_probabilities_classes_and_attributes():
    X, y = load_iris(return_X_y=True)
    names = numpy.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier((32,), learning_rate_init=0.01, max_iter=300, random_state=0)
    clf.fit(X, names)  # converges: no warning
    assert clf.score(X, names) > 0.95
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert clf.n_features_in_ == 4
    proba = clf.predict_proba(X[:5])
    numpy.testing.assert_allclose(proba.sum(axis=1), 1.0)
    numpy.testing.assert_allclose(numpy.exp(clf.predict_log_proba(X[:5])), proba)
    assert [c.shape for c in clf.coefs_] == [(4, 32), (32, 3)]
    assert clf.n_iter_ == len(clf.loss_curve_) and clf.loss_curve_[-1] < clf.loss_curve_[0]
    restored = pickle.loads(pickle.dumps(clf))
    numpy.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_partial_fit_needs_classes_first_and_then_learns():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier((16,), learning_rate_init=0.05, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:50], y[:50], classes=[0, 1, 2])  # only class 0 in this batch
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 31 and clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X[:2], numpy.array([0, 7]))


def test_regressor_pipeline_cross_validation_and_multi_output():
    X, y = load_diabetes(return_X_y=True)
    pipe = make_pipeline(
        StandardScaler(), MLPRegressor((32,), learning_rate_init=0.01, max_iter=200, random_state=0)
    )
    with pytest.warns(ConvergenceWarning):  # sklearn's behaviour at max_iter
        scores = cross_val_score(pipe, X, y / 100, cv=3)
    assert scores.mean() > 0.3
    Y = numpy.column_stack([X[:, 0] + X[:, 1], X[:, 2] - X[:, 3]]) * 10
    reg = MLPRegressor(
        (16,), learning_rate_init=0.02, max_iter=300, tol=0, n_iter_no_change=300, random_state=0
    )
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, Y)
    assert reg.predict(X).shape == (len(X), 2) and reg.score(X, Y) > 0.95


def test_early_stopping_warm_start_params_and_errors():
    X, y = load_iris(return_X_y=True)
    clf = MLPClassifier(
        (16,),
        early_stopping=True,
        learning_rate_init=0.05,
        max_iter=500,
        n_iter_no_change=5,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.get_params()["hidden_layer_sizes"] == (16,)
    clf.set_params(warm_start=True, max_iter=3, early_stopping=False)
    before = clf.n_iter_
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert clf.n_iter_ == before + 3
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="only one class"):
        MLPClassifier().fit(X[:10], y[:10])
