"""chainrule.sklearn as a drop-in for scikit-learn's MLP: solver='lbfgs' (SciPy's L-BFGS-B on
chainrule's value_and_grad), sample_weight, learning_rate/power_t/max_fun with scikit-learn's
meaning, multilabel targets; compared with scikit-learn's own MLPClassifier; and
chainrule.data.train_test_split with scikit-learn's signature."""

from __future__ import annotations

import sys
import warnings

import numpy
import pytest
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split as sk_split
from sklearn.neural_network import MLPClassifier as SkMLP
from sklearn.preprocessing import StandardScaler

from chainrule.data import holdout_split, train_test_split
from chainrule.sklearn import MLPClassifier, MLPRegressor


def scaled(loader):
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, yte = sk_split(X, y, test_size=0.3, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def mean_accuracy(cls, data, fit_kw, **kw):
    Xtr, Xte, ytr, yte = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return numpy.mean(
            [
                cls((32,), max_iter=300, random_state=s, **kw)
                .fit(Xtr, ytr, **fit_kw)
                .score(Xte, yte)
                for s in range(3)
            ]
        )


@pytest.mark.parametrize("dataset", ["iris", "digits"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_lbfgs_and_sample_weight_match_scikit_learns_mlp_within_one_point(dataset, weighted):
    data = scaled({"iris": load_iris, "digits": load_digits}[dataset])
    w = numpy.random.default_rng(0).uniform(0.5, 2.0, len(data[2]))
    fit_kw = {"sample_weight": w} if weighted else {}
    ours = mean_accuracy(MLPClassifier, data, fit_kw, solver="lbfgs")
    theirs = mean_accuracy(SkMLP, data, fit_kw, solver="lbfgs")
    assert abs(ours - theirs) <= 0.01, (ours, theirs)
    assert ours > 0.95


def test_adam_with_sample_weight_matches_scikit_learn_on_digits():
    data = scaled(load_digits)
    w = numpy.random.default_rng(0).uniform(0.5, 2.0, len(data[2]))
    ours = mean_accuracy(MLPClassifier, data, {"sample_weight": w})
    theirs = mean_accuracy(SkMLP, data, {"sample_weight": w})
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_integer_sample_weights_equal_repeated_samples_with_lbfgs():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    w = numpy.random.default_rng(0).integers(0, 3, len(y))
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**kw).fit(X, y, sample_weight=w)
        b = MLPClassifier(**kw).fit(numpy.repeat(X, w, axis=0), numpy.repeat(y, w))
    for ca, cb in zip(a.coefs_, b.coefs_):
        numpy.testing.assert_allclose(ca, cb, rtol=1e-6, atol=1e-8)


def test_lbfgs_max_fun_and_max_iter_stop_with_scikit_learns_warning():
    X, y = load_iris(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf = MLPClassifier((8,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    assert clf.n_iter_ <= 5
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((8,), solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    assert clf.n_iter_ == 3
    assert not hasattr(clf, "partial_fit")  # as scikit-learn's lbfgs MLP
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'"):
        clf.partial_fit(X, y)


def test_lbfgs_without_scipy_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ImportError, match="pip install scipy, or use solver='adam'"):
        MLPClassifier(solver="lbfgs").fit(X, y)


def test_invscaling_and_adaptive_learning_rates_follow_scikit_learn():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier(
            (8,),
            solver="sgd",
            learning_rate="invscaling",
            learning_rate_init=0.5,
            power_t=0.25,
            max_iter=7,
            random_state=0,
        ).fit(X, y)
    seen = 7 * len(X)  # samples seen after 7 epochs
    assert clf._optimizer.param_groups[0]["lr"] == pytest.approx(0.5 / (seen + 1) ** 0.25)
    # adaptive: each time the loss stalls (tol=1e9: it always does), the rate is divided by 5
    # until it is at most 1e-6; constant stops at the first stall
    kw = dict(
        solver="sgd",
        learning_rate_init=0.1,
        tol=1e9,
        n_iter_no_change=1,
        max_iter=100,
        random_state=0,
    )
    constant = MLPClassifier((8,), **kw).fit(X, y)
    adaptive = MLPClassifier((8,), learning_rate="adaptive", **kw).fit(X, y)
    assert constant.n_iter_ == 3  # more than n_iter_no_change=1 stalled epochs after the first
    lr = adaptive._optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(0.1 / 5**8)  # 0.1 / 5**7 = 1.3e-6 > 1e-6, one more division
    assert adaptive.n_iter_ == 3 + 8 * 2
    with pytest.raises(ValueError, match="learning_rate must be"):
        MLPClassifier(learning_rate="cyclic").fit(X, y)


def test_multilabel_indicator_targets():
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    Y = numpy.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(int)
    clf = MLPClassifier((16,), solver="lbfgs", max_iter=300, random_state=0).fit(X, Y)
    assert clf.classes_.tolist() == [0, 1, 2]
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(numpy.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and ((proba > 0.5) == pred).all()
    theirs = SkMLP((16,), solver="lbfgs", max_iter=300, random_state=0).fit(X, Y).score(X, Y)
    assert clf.score(X, Y) >= theirs - 0.02  # subset accuracy, as scikit-learn's score
    with pytest.raises(ValueError, match="multilabel indicator matrix"):
        clf.fit(X, rng.standard_normal((300, 3)))


def test_regressor_sample_weight_zero_means_ignored():
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((100, 2))
    y = X[:, 0] - X[:, 1]
    y_noisy = y.copy()
    y_noisy[:20] = 100.0  # outliers with weight 0
    w = numpy.ones(100)
    w[:20] = 0
    kw = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=200, random_state=0)
    a = MLPRegressor(**kw).fit(X, y_noisy, sample_weight=w)
    b = MLPRegressor(**kw).fit(X[20:], y[20:])
    numpy.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-5, atol=1e-6)


# --- train_test_split --------------------------------------------------------------------


def test_train_test_split_has_scikit_learns_signature_and_sizes():
    X = numpy.arange(40).reshape(20, 2)
    y = numpy.array([0] * 12 + [1] * 8)
    parts = train_test_split(X, y)
    assert [len(p) for p in parts] == [15, 5, 15, 5]  # a quarter for testing by default
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=1, stratify=y)
    assert len(yte) == 6 and sorted(yte.tolist()) == [0, 0, 0, 0, 1, 1]  # 12:8 kept
    assert sorted(numpy.concatenate([Xtr[:, 0], Xte[:, 0]]).tolist()) == list(range(0, 40, 2))
    again = train_test_split(X, y, test_size=0.3, random_state=1, stratify=y)
    assert all((a == b).all() for a, b in zip(again, [Xtr, Xte, ytr, yte]))
    Xtr, Xte = train_test_split(X, train_size=5, test_size=3, random_state=0)
    assert len(Xtr) == 5 and len(Xte) == 3
    a, b = train_test_split(list(range(10)), shuffle=False, test_size=0.2)
    assert a == list(range(8)) and b == [8, 9]
    # the sizes agree with scikit-learn's for fractions and counts
    for kw in [dict(test_size=0.33), dict(train_size=0.5), dict(test_size=7, train_size=0.5)]:
        ours = [len(p) for p in train_test_split(X, **kw)]
        assert ours == [len(p) for p in sk_split(X, **kw)], kw


def test_train_test_split_refuses_the_old_call_with_the_new_spelling():
    X, y = numpy.zeros((10, 2)), numpy.array([0, 1] * 5)
    with pytest.raises(TypeError, match=r"scalar 0.2, not an array.*holdout_split"):
        train_test_split(X, y, 0.2)
    with pytest.raises(TypeError, match=r"\['seed'\].*holdout_split"):
        train_test_split(X, y, seed=0)
    with pytest.raises(TypeError, match=r"stratify takes the class labels \(stratify=y\)"):
        train_test_split(X, y, stratify=True)
    with pytest.raises(ValueError, match="least populated class"):
        train_test_split(X, numpy.arange(10), stratify=numpy.arange(10))
    assert len(holdout_split(X, y, 0.2, seed=0)[1]) == 2
