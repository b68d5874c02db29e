"""chainrule.train.trainer.fit / Trainer: learning, determinism, resume, early stopping, progress,
and a reduced digits run (the full 30-second run is benchmarks/train_digits_vs_torch.py)."""

from __future__ import annotations

import io
import os
import sys

import numpy
import pytest

from chainrule import nn, optim
from chainrule.data import Standardizer, holdout_split, load_dataset
from chainrule.train.checkpoint import load
from chainrule.train.trainer import History, Trainer, accuracy, fit, r2


def blobs(n=240, seed=0):
    rng = numpy.random.default_rng(seed)
    centers = numpy.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + 0.6 * rng.standard_normal((n, 2)), y


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_fit_learns_a_separable_problem_and_reports_history():
    X, y = blobs()
    model = nn.MLP([2, 16, 3], rng=0)
    h = fit(model, X, y, epochs=15, batch_size=16, lr=0.02, validation_split=0.25, progress=None)
    assert isinstance(h, History) and len(h) == 15 and h.epoch == list(range(15))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert h["loss"][-1] < h["loss"][0] / 3
    assert h["val_accuracy"][-1] >= 0.95
    assert h.params["samples"] == 180  # 25 % held out, stratified


def test_metrics_are_computed_correctly():
    pred = numpy.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert accuracy(pred, numpy.array([0, 1, 1])) == 2 / 3
    assert accuracy(numpy.array([[-1.0], [2.0]]), numpy.array([0, 1])) == 1.0  # one logit
    # r2 = 1 - SS_res / SS_tot = 1 - (0.25 + 0.25 + 0) / 2 for y = 1, 2, 3
    assert r2(numpy.array([1.5, 1.5, 3.0]), numpy.array([1.0, 2.0, 3.0])) == 0.75


def test_regression_matches_a_one_column_output_to_a_1d_target():
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((128, 3))
    y = X @ numpy.array([1.0, -2.0, 0.5]) + 0.3
    trainer = Trainer(
        nn.Linear(3, 1, rng=0), loss="mse", optimizer="sgd", lr=0.1, metrics=["mae", "r2"]
    )
    h = trainer.fit(X, y, epochs=30, batch_size=16, progress=None)
    assert h["r2"][-1] > 0.999
    assert trainer.evaluate(X, y)["loss"] < 1e-6
    assert trainer.predict(X).shape == (128, 1)


def test_same_seed_same_result_different_seed_different_result():
    X, y = blobs()

    def run(seed):
        model = nn.MLP([2, 8, 3], dropout=0.2, rng=0)
        fit(model, X, y, epochs=3, batch_size=32, lr=0.01, seed=seed, progress=None)
        return weights(model)

    a, b, c = run(0), run(0), run(1)
    assert all(numpy.array_equal(a[k], b[k]) for k in a)
    assert not all(numpy.array_equal(a[k], c[k]) for k in a)


def _resumable_run(ckdir, epochs, resume):
    X, y = blobs(seed=3)
    model = nn.MLP([2, 8, 8, 3], dropout=0.3, norm="batch", rng=0)
    opt = optim.AdamW(model.parameters(), lr=0.01)
    sched = optim.LinearWarmup(opt, 2, after=optim.CosineAnnealingLR(opt, 4))
    h = fit(
        model,
        X,
        y,
        optimizer=opt,
        scheduler=sched,
        epochs=epochs,
        batch_size=32,
        validation_split=0.2,
        early_stopping=50,
        seed=5,
        checkpoint_dir=ckdir,
        resume=resume,
        progress=None,
    )
    return model, opt, h


def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    full, full_opt, full_h = _resumable_run(tmp_path / "full", 6, False)
    _resumable_run(tmp_path / "part", 3, False)  # "interrupted" after epoch 3
    assert load(tmp_path / "part" / "last.ckpt")["epochs_done"] == 3
    part, part_opt, part_h = _resumable_run(tmp_path / "part", 6, True)
    for k, v in full.state_dict().items():
        numpy.testing.assert_array_equal(part.state_dict()[k], v, err_msg=k)
    assert part_h.history == full_h.history
    assert part_h.best_epoch == full_h.best_epoch
    a, b = full_opt.state_dict(), part_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in a["state"][i]:
            numpy.testing.assert_array_equal(a["state"][i][k], b["state"][i][k])
    assert sorted(os.listdir(tmp_path / "part")) == ["best.ckpt", "last.ckpt"]
    # resuming with different settings is refused with an explanation
    X, y = blobs(seed=3)
    with pytest.raises(ValueError, match="batch_size=32 but now batch_size=16"):
        fit(
            nn.MLP([2, 8, 8, 3], dropout=0.3, norm="batch", rng=0),
            X,
            y,
            epochs=6,
            batch_size=16,
            validation_split=0.2,
            seed=5,
            checkpoint_dir=tmp_path / "part",
            resume=True,
            progress=None,
        )


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    X, y = blobs(seed=1)
    X_val, y_val = blobs(n=60, seed=2)
    y_val = (y_val + 1) % 3  # unlearnable: val loss rises
    model = nn.MLP([2, 16, 3], rng=0)
    trainer = Trainer(model, lr=0.05)
    h = trainer.fit(
        X,
        y,
        epochs=40,
        validation_data=(X_val, y_val),
        early_stopping=3,
        checkpoint_dir=tmp_path,
        progress=None,
    )
    assert h.stopped_epoch is not None and h.stopped_epoch < 39
    assert h.stopped_epoch == h.best_epoch + 3
    assert len(h) == h.stopped_epoch + 1
    best = load(tmp_path / "best.ckpt")
    assert best["epoch"] == h.best_epoch
    for k, v in best["model"].items():
        numpy.testing.assert_array_equal(model.state_dict()[k], v)
    assert trainer.evaluate(X_val, y_val)["loss"] == pytest.approx(h["val_loss"][h.best_epoch])


def test_progress_plain_lines_and_tqdm_bars():
    X, y = blobs(n=64)
    out = io.StringIO()
    fit(nn.MLP([2, 4, 3], rng=0), X, y, epochs=3, validation_split=0.25, progress="plain", file=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3: loss ")
    assert " - accuracy " in lines[0] and " - val_loss " in lines[0] and lines[0].endswith("s)")
    out = io.StringIO()
    fit(nn.MLP([2, 4, 3], rng=0), X, y, epochs=2, batch_size=16, progress="tqdm", file=out)
    text = out.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "4/4" in text


def test_progress_auto_falls_back_to_plain_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    X, y = blobs(n=32)
    fit(nn.MLP([2, 4, 3], rng=0), X, y, epochs=2, progress="auto")
    lines = capsys.readouterr().out.splitlines()
    assert [line[:11] for line in lines] == ["Epoch 1/2: ", "Epoch 2/2: "]


def test_errors_are_clear():
    X, y = blobs(n=32)
    model = nn.MLP([2, 4, 3], rng=0)
    with pytest.raises(ValueError, match="32 samples but y has 31"):
        fit(model, X, y[:-1], progress=None)
    with pytest.raises(ValueError, match="cannot monitor 'val_loss'"):
        fit(model, X, y, monitor="val_loss", progress=None)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        fit(model, X, y, resume=True, progress=None)
    with pytest.raises(ValueError, match="unknown loss"):
        fit(model, X, y, loss="hinge", progress=None)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(
            nn.Linear(2, 1, rng=0),
            X,
            y.astype(float),
            loss=lambda out, t: (out * numpy.nan).sum(),
            epochs=5,
            progress=None,
        )


def test_history_plot_writes_a_png(tmp_path):
    h = History()
    h.monitor = "val_loss"
    for e, (a, b) in enumerate([(1.0, 1.2), (0.5, 0.8), (0.25, 0.9)]):
        h.append(e, {"loss": a, "val_loss": b, "accuracy": 1 - a / 2, "val_accuracy": 0.5})
    h.best_epoch = 1
    fig = h.plot(tmp_path / "curve.png", title="test")
    assert len(fig.axes) == 2
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert History.from_dict(h.to_dict()).history == h.history


def _digits():
    ds = load_dataset("digits")
    return holdout_split(ds.X, ds.y, 0.2, stratify=True, seed=0)


def test_reduced_digits_mlp_learns():
    """600 training images, 12 epochs: the full default run (97 %+) is in the benchmark."""
    Xtr, Xte, ytr, yte = _digits()
    Xtr, ytr = Xtr[:600], ytr[:600]
    sc = Standardizer().fit(Xtr)
    model = nn.MLP([64, 64, 10], rng=0)
    trainer = Trainer(model, lr=3e-3)
    trainer.fit(sc.transform(Xtr), ytr, epochs=12, batch_size=32, progress=None, threads=1)
    assert trainer.evaluate(sc.transform(Xte), yte)["accuracy"] >= 0.93


def test_reduced_digits_cnn_learns():
    """Conv2d + MaxPool2d on 400 images for 4 epochs."""
    Xtr, Xte, ytr, yte = _digits()
    Xtr, ytr = Xtr[:400], ytr[:400]
    sc = Standardizer(per_feature=False).fit(Xtr)
    A = sc.transform(Xtr).reshape(-1, 1, 8, 8)
    B = sc.transform(Xte).reshape(-1, 1, 8, 8)
    g = numpy.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, rng=g),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, rng=g),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10, rng=g),
    )
    trainer = Trainer(model, lr=5e-3)
    trainer.fit(A, ytr, epochs=4, batch_size=32, progress=None, threads=1)
    assert trainer.evaluate(B, yte)["accuracy"] >= 0.85


def test_the_python_examples_in_docs_training_md_run(capsys):
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    for i, code in enumerate(blocks):
        exec(compile(code, f"docs/training.md block {i + 1}", "exec"), {})
    out = capsys.readouterr().out
    assert "['layers.0.weight', 'layers.0.bias', 'layers.2.weight']" in out
    assert "(6, 4)" in out and "True" in out
