"""fit's targets: one-hot, integer and text labels with the right loss and metric (or a clear
error naming the loss that fits), loss modules keeping their metric, sample and class weights."""

from __future__ import annotations

import numpy
import pytest

from chainrule import nn, optim
from chainrule.nn import functional as F
from chainrule.train.trainer import Trainer, fit


def blobs(n=90, seed=0):
    rng = numpy.random.default_rng(seed)
    centers = numpy.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + 0.9 * rng.standard_normal((n, 2)), y


def run(y, **kw):
    X, _ = blobs()
    model = nn.MLP([2, 8, 3], rng=0)
    h = fit(model, X, y, epochs=3, lr=0.05, batch_size=16, verbose=0, **kw)
    return model, h


def test_one_hot_targets_train_like_integer_labels_with_the_accuracy_metric():
    _, y = blobs()
    _, h_int = run(y)
    one_hot = numpy.eye(3)[y]
    _, h_float = run(one_hot, loss="cross_entropy")
    _, h_introws = run(one_hot.astype(int), loss="cross_entropy")
    for h in (h_float, h_introws):
        assert set(h.history) == {"loss", "accuracy", "lr"}
        numpy.testing.assert_allclose(h["loss"], h_int["loss"], rtol=1e-10)
        assert h["accuracy"] == h_int["accuracy"]


def test_text_labels_are_encoded_in_sorted_order_and_train_like_integers():
    _, y = blobs()
    names = numpy.array(["cat", "dog", "eel"])
    X, _ = blobs()
    model = nn.MLP([2, 8, 3], rng=0)
    trainer = Trainer(model, lr=0.05)
    h = trainer.fit(X, names[y], epochs=3, batch_size=16, verbose=0, validation_split=0.2)
    assert trainer.classes_.tolist() == ["cat", "dog", "eel"]
    _, h_int = run(y, validation_split=0.2)
    assert h.history == h_int.history
    assert trainer.evaluate(X, list(names[y]))["accuracy"] == trainer.evaluate(X, y)["accuracy"]
    with pytest.raises(ValueError, match="label 'fox' was not among the training labels"):
        trainer.evaluate(X[:2], ["cat", "fox"])


@pytest.mark.parametrize(
    ("target", "loss", "message"),
    [
        (
            "text",
            "mse",
            r"y holds text labels \(e.g. '[abc]'\) but loss 'mse' needs numbers; "
            r"for class labels use loss='cross_entropy'",
        ),
        (
            "int",
            "mse",
            r"loss 'mse' compares the model's outputs of shape \(16, 3\) with "
            r"targets of shape \(16,\); for class labels use loss='cross_entropy'",
        ),
        (
            "fraction",
            "cross_entropy",
            r"needs class labels, but y holds fractional numbers "
            r"\(e.g. [0-9.]+\); for regression use loss='mse'",
        ),
        (
            "multilabel",
            "cross_entropy",
            r"one-hot rows or class probabilities.*several labels "
            r"per sample use loss='bce_with_logits'",
        ),
        (
            "int",
            "bce_with_logits",
            r"needs 0/1 targets .*outside \[0, 1\] \(e.g. 2\); for "
            r"several classes use loss='cross_entropy'",
        ),
    ],
)
def test_a_target_that_does_not_fit_the_loss_names_the_loss_that_fits(target, loss, message):
    X, y = blobs()
    ys = {
        "text": numpy.array(["a", "b", "c"])[y],
        "int": y,
        "fraction": y + 0.5,
        "multilabel": (numpy.random.default_rng(0).random((len(y), 3)) > 0.5).astype(float),
    }[target]
    with pytest.raises(ValueError, match=message):
        fit(nn.MLP([2, 8, 3], rng=0), X, ys, loss=loss, epochs=1, batch_size=16, verbose=0)


def test_loss_modules_keep_their_metric_and_multilabel_gets_elementwise_accuracy():
    X, y = blobs()
    _, h = run(y, loss=nn.CrossEntropyLoss())
    _, h_named = run(y, loss="cross_entropy")
    assert h.history == h_named.history
    multi = numpy.stack([y == 0, y != 2, X[:, 0] > 0], axis=1).astype(float)
    model = nn.MLP([2, 8, 3], rng=0)
    trainer = Trainer(model, loss=nn.BCEWithLogitsLoss(), lr=0.05)
    trainer.fit(X, multi, epochs=20, batch_size=16, verbose=0)
    logits = trainer.predict(X)
    by_hand = numpy.mean((logits > 0) == (multi == 1))  # every label of every sample
    assert trainer.evaluate(X, multi)["accuracy"] == pytest.approx(by_hand, abs=1e-12)
    assert by_hand > 0.8
    # one logit per sample and 1-D 0/1 targets
    h1 = fit(
        nn.Linear(2, 1, rng=0),
        X,
        (y == 0).astype(int),
        loss=nn.BCEWithLogitsLoss(),
        epochs=2,
        verbose=0,
    )
    assert "accuracy" in h1.history


def full_batch_sgd(X, y, **kw):
    model = nn.MLP([2, 8, 3], rng=0)
    fit(
        model,
        X,
        y,
        optimizer=optim.SGD(model.parameters(), lr=0.5),
        epochs=3,
        batch_size=len(X),
        verbose=0,
        **kw,
    )
    return model.state_dict()


def test_integer_sample_weights_equal_repeating_the_samples():
    X, y = blobs(30)
    w = numpy.random.default_rng(1).integers(0, 4, len(y))
    weighted = full_batch_sgd(X, y, sample_weight=w)
    repeated = full_batch_sgd(numpy.repeat(X, w, axis=0), numpy.repeat(y, w))
    for k in weighted:
        numpy.testing.assert_allclose(weighted[k], repeated[k], rtol=1e-10, atol=1e-14)


def test_class_weight_is_pytorchs_weighted_cross_entropy():
    X, y = blobs(30)
    cw = numpy.array([1.0, 3.0, 0.5])
    model = nn.MLP([2, 8, 3], rng=0)
    start = nn.MLP([2, 8, 3], rng=0)
    fit(
        model,
        X,
        y,
        optimizer=optim.SGD(model.parameters(), lr=0.5),
        epochs=1,
        batch_size=len(X),
        verbose=0,
        class_weight={0: 1.0, 1: 3.0, 2: 0.5},
    )
    # the same step by hand with F.cross_entropy's own class weights
    opt = optim.SGD(start.parameters(), lr=0.5)
    F.cross_entropy(start(X), y, weight=cw).backward()
    opt.step()
    for k, v in model.state_dict().items():
        numpy.testing.assert_allclose(v, start.state_dict()[k], rtol=1e-10)
    # 'balanced' and text keys
    names = numpy.array(["a", "b", "c"])[y]
    counts = numpy.bincount(y)
    balanced = full_batch_sgd(X, y, class_weight="balanced")
    by_text = full_batch_sgd(
        X, names, class_weight={n: len(y) / (3 * c) for n, c in zip(["a", "b", "c"], counts)}
    )
    for k in balanced:
        numpy.testing.assert_allclose(balanced[k], by_text[k], rtol=1e-10)


def test_weights_are_checked():
    X, y = blobs(30)
    with pytest.raises(ValueError, match=r"one weight per sample \(30\)"):
        fit(nn.Linear(2, 3, rng=0), X, y, sample_weight=[1.0, 2.0], verbose=0)
    with pytest.raises(ValueError, match="finite and non-negative"):
        fit(nn.Linear(2, 3, rng=0), X, y, sample_weight=-numpy.ones(30), verbose=0)
    with pytest.raises(TypeError, match="not a custom function"):
        fit(
            nn.Linear(2, 3, rng=0),
            X,
            y,
            loss=lambda o, t: F.cross_entropy(o, t),
            sample_weight=numpy.ones(30),
            verbose=0,
        )
    with pytest.raises(ValueError, match="class_weight names 'z'"):
        fit(
            nn.Linear(2, 3, rng=0),
            X,
            numpy.array(["a", "b", "c"])[y],
            class_weight={"z": 2.0},
            verbose=0,
        )
