"""fit/Trainer callbacks (hook order, early stopping, best checkpoint, CSV and TensorBoard
logs), verbose=, and the schedules PyTorch users reach for: ReduceLROnPlateau, OneCycleLR
(per batch) and the optim.lr_scheduler namespace."""

from __future__ import annotations

import csv
import math
import struct
import sys

import numpy
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    TensorBoard,
)
from chainrule.train.trainer import Trainer, fit


def blobs(n=120, seed=0):
    rng = numpy.random.default_rng(seed)
    centers = numpy.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + 0.9 * rng.standard_normal((n, 2)), y


def constant_loss(out, target):
    return (out * 0.0).sum() + 1.0  # a loss that never improves, for plateau tests


def test_hooks_are_called_in_order_with_their_logs():
    calls = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda e, logs: calls.append(f"epoch_begin {e}"),
        on_batch_begin=lambda b, logs: calls.append(f"batch_begin {b} {logs['size']}"),
        on_batch_end=lambda b, logs: calls.append(f"batch_end {b} {sorted(logs)}"),
        on_epoch_end=lambda e, logs: calls.append(f"epoch_end {e} {sorted(logs)}"),
        on_train_end=lambda logs: calls.append("train_end"),
    )
    X, y = blobs(10)
    fit(nn.Linear(2, 3, rng=0), X, y, epochs=2, batch_size=6, callbacks=[cb], verbose=0)
    batch = ["batch_begin 0 6", "batch_end 0 ['loss', 'size']"]
    batch += ["batch_begin 1 4", "batch_end 1 ['loss', 'size']"]
    logs = "['accuracy', 'loss', 'lr']"
    assert calls == (
        ["train_begin", "epoch_begin 0", *batch, f"epoch_end 0 {logs}"]
        + ["epoch_begin 1", *batch, f"epoch_end 1 {logs}", "train_end"]
    )


def test_a_callback_can_stop_training_and_must_be_a_callback():
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.trainer.stop_training = True

    X, y = blobs(20)
    h = fit(nn.Linear(2, 3, rng=0), X, y, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert len(h) == 2 and h.stopped_epoch == 1
    with pytest.raises(TypeError, match=r"callbacks\[0\] is a function"):
        fit(nn.Linear(2, 3, rng=0), X, y, callbacks=[lambda: None], verbose=0)


def test_early_stopping_callback_restores_the_best_weights_and_saves_the_best(tmp_path):
    X, y = blobs()
    Xv, yv = blobs(60, seed=1)
    model = nn.MLP([2, 32, 3], rng=0)
    saved = []
    ck = ModelCheckpoint(tmp_path / "best.ckpt", monitor="val_loss", save_best_only=True)
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    rec = LambdaCallback(on_epoch_end=lambda e, logs: saved.append(model.state_dict()))
    h = fit(
        model,
        X,
        y,
        epochs=200,
        lr=0.3,
        validation_data=(Xv, yv),
        callbacks=[rec, ck, es],
        verbose=0,
    )
    vl = h["val_loss"]
    best = int(numpy.argmin(vl))
    assert h.stopped_epoch is not None and h.stopped_epoch == best + 2 == len(h) - 1
    assert all(v >= vl[best] for v in vl[best + 1 :])
    for k, v in model.state_dict().items():
        numpy.testing.assert_array_equal(v, saved[best][k])
    state = cr.load(tmp_path / "best.ckpt")
    assert state["epoch"] == best and state["val_loss"] == vl[best]
    for k, v in state["model"].items():
        numpy.testing.assert_array_equal(v, saved[best][k])


def test_model_checkpoint_formats_the_path_and_names_a_missing_field(tmp_path):
    X, y = blobs(20)
    cb = ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.2f}.ckpt", monitor="loss")
    h = fit(nn.Linear(2, 3, rng=0), X, y, epochs=2, callbacks=[cb], verbose=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"m-{e + 1:02d}-{h['loss'][e]:.2f}.ckpt" for e in range(2)]
    bad = ModelCheckpoint(tmp_path / "{val_acc}.ckpt", monitor="loss")
    with pytest.raises(ValueError, match="names 'val_acc', which is not in the epoch logs"):
        fit(nn.Linear(2, 3, rng=0), X, y, epochs=1, callbacks=[bad], verbose=0)
    with pytest.raises(ValueError, match="cannot monitor 'val_loss'.*needs validation data"):
        fit(
            nn.Linear(2, 3, rng=0),
            X,
            y,
            epochs=1,
            verbose=0,
            callbacks=[EarlyStopping(monitor="val_loss")],
        )


def test_csv_logger_writes_every_epoch_and_appends_on_resume(tmp_path):
    X, y = blobs(40)
    path = tmp_path / "log.csv"

    def run(epochs, resume, append):
        model = nn.Linear(2, 3, rng=0)
        return fit(
            model,
            X,
            y,
            epochs=epochs,
            validation_split=0.25,
            verbose=0,
            checkpoint_dir=tmp_path / "ck",
            resume=resume,
            callbacks=[CSVLogger(path, append=append)],
        )

    run(2, False, False)
    h = run(4, True, True)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2, 3]
    for r in rows[1:]:
        e = int(r[0])
        for name, value in zip(rows[0][1:], r[1:]):
            assert float(value) == h[name][e]


def test_verbose_switches_between_silence_a_bar_and_lines(capsys):
    X, y = blobs(20)
    fit(nn.Linear(2, 3, rng=0), X, y, epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")
    fit(nn.Linear(2, 3, rng=0), X, y, epochs=2, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["Epoch 1/2", "Epoch 2/2"]
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        fit(nn.Linear(2, 3, rng=0), X, y, verbose=3)


def test_tensorboard_without_tensorboardx_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    X, y = blobs(20)
    with pytest.raises(ImportError, match="pip install tensorboardX.*CSVLogger"):
        fit(nn.Linear(2, 3, rng=0), X, y, epochs=1, verbose=0, callbacks=[TensorBoard("unused")])


def read_events(folder):
    """Scalars from TFRecord event files, decoded with tensorboardX's own protobuf classes."""
    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_tensorboard_writes_train_and_validation_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    X, y = blobs(40)
    h = fit(
        nn.Linear(2, 3, rng=0),
        X,
        y,
        epochs=3,
        validation_split=0.25,
        verbose=0,
        callbacks=[TensorBoard(tmp_path, update_freq="batch")],
    )
    train, val = read_events(tmp_path / "train"), read_events(tmp_path / "validation")
    for name in ("loss", "accuracy"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        numpy.testing.assert_allclose([v for _, v in train[f"epoch_{name}"]], h[name], rtol=1e-6)
        numpy.testing.assert_allclose(
            [v for _, v in val[f"epoch_{name}"]], h[f"val_{name}"], rtol=1e-6
        )
    assert len(train["batch_loss"]) == 3 * 1  # 30 training samples, batch 32: one per epoch


# --- schedules ----------------------------------------------------------------------------


def test_reduce_lr_on_plateau_follows_pytorchs_rule():
    w = cr.tensor([1.0], requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    s = optim.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.1, cooldown=1)
    lrs = []
    # 1.0 best; 0.95 is not 10 % better (bad 1); 0.91 bad 2 > patience -> 0.5, cooldown 1;
    # 0.95 (in cooldown: not counted); 0.95 bad 1; 0.95 bad 2 -> 0.25; 0.5 is better -> best
    for metric in [1.0, 0.95, 0.91, 0.95, 0.95, 0.95, 0.5]:
        s.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert s.best == 0.5
    s2 = optim.ReduceLROnPlateau(
        optim.SGD([w], lr=1.0),
        mode="max",
        threshold_mode="abs",
        threshold=0.01,
        patience=0,
        min_lr=0.3,
    )
    for metric in [0.5, 0.505, 0.6, 0.6]:
        s2.step(metric)
    assert s2.get_last_lr() == [0.3]  # 0.505 is not 0.01 better: 0.1; then 0.6 == 0.6: 0.3 floor
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        optim.ReduceLROnPlateau(opt, factor=2.0)


def test_fit_steps_reduce_lr_on_plateau_with_the_monitored_value():
    X, y = blobs(20)
    model = nn.Linear(2, 3, rng=0)
    opt = optim.SGD(model.parameters(), lr=1.0)
    h = fit(
        model,
        X,
        y,
        loss=constant_loss,
        optimizer=opt,
        epochs=6,
        verbose=0,
        scheduler=optim.ReduceLROnPlateau(opt, factor=0.5, patience=1),
    )
    assert h["lr"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def one_cycle_by_hand(step, total, max_lr, pct=0.3, div=25.0, final_div=1e4):
    """PyTorch's documented two-phase cosine 1cycle, written out independently."""
    lo, end = max_lr / div, max_lr / div / final_div
    up = pct * total - 1
    if step <= up:
        t, a, b = step / up, lo, max_lr
    else:
        t, a, b = (step - up) / (total - 1 - up), max_lr, end
    return b + (a - b) / 2 * (math.cos(math.pi * t) + 1)


def test_one_cycle_steps_per_batch_in_fit_with_pytorchs_curve_and_momentum():
    X, y = blobs(50)
    model = nn.Linear(2, 3, rng=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    epochs, steps = 4, 5  # 50 samples in batches of 10
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, epochs=epochs, steps_per_epoch=steps)
    lrs, moms = [], []
    rec = LambdaCallback(
        on_batch_begin=lambda b, logs: (
            lrs.append(opt.param_groups[0]["lr"]),
            moms.append(opt.param_groups[0]["momentum"]),
        )
    )
    fit(
        model,
        X,
        y,
        optimizer=opt,
        scheduler=sched,
        epochs=epochs,
        batch_size=10,
        callbacks=[rec],
        verbose=0,
    )
    total = epochs * steps
    expected = [one_cycle_by_hand(i, total, 0.5) for i in range(total)]
    numpy.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert max(lrs) == pytest.approx(0.5) and lrs.index(max(lrs)) == 5
    assert moms[0] == pytest.approx(0.95) and moms[5] == pytest.approx(0.85)
    assert sched.last_epoch == total  # PyTorch allows exactly total_steps steps
    with pytest.raises(ValueError, match="tried to step 21 times; total_steps is 20"):
        sched.step()


def test_one_cycle_cycles_adams_first_beta_and_refuses_optimizers_without_momentum():
    w = cr.tensor([1.0], requires_grad=True)
    opt = optim.Adam([w], lr=0.1, betas=(0.9, 0.99))
    optim.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.99)
    with pytest.raises(ValueError, match="neither momentum nor betas"):
        optim.OneCycleLR(optim.Adagrad([w]), max_lr=1.0, total_steps=10)
    with pytest.raises(ValueError, match="give total_steps, or epochs and steps_per_epoch"):
        optim.OneCycleLR(opt, max_lr=1.0)


def test_lr_scheduler_namespace_has_pytorchs_names():
    import chainrule.optim.lr_scheduler as ls

    from chainrule.optim import lr_scheduler

    assert ls is lr_scheduler
    for name in [
        "StepLR",
        "MultiStepLR",
        "ExponentialLR",
        "CosineAnnealingLR",
        "LinearLR",
        "LambdaLR",
        "ReduceLROnPlateau",
        "OneCycleLR",
        "LRScheduler",
    ]:
        assert getattr(lr_scheduler, name) is getattr(optim, name)


def test_resume_with_a_plateau_schedule_and_early_stopping_equals_the_full_run(tmp_path):
    X, y = blobs()

    def run(ckdir, epochs, resume):
        model = nn.MLP([2, 8, 3], rng=0)
        opt = optim.Adam(model.parameters(), lr=0.05)
        h = fit(
            model,
            X,
            y,
            optimizer=opt,
            epochs=epochs,
            validation_split=0.25,
            early_stopping=3,
            checkpoint_dir=ckdir,
            resume=resume,
            verbose=0,
            scheduler=optim.ReduceLROnPlateau(opt, factor=0.5, patience=1),
        )
        return model.state_dict(), h

    full, hf = run(tmp_path / "a", 12, False)
    run(tmp_path / "b", 5, False)
    resumed, hr = run(tmp_path / "b", 12, True)
    assert hr.history == hf.history and hr.stopped_epoch == hf.stopped_epoch
    for k in full:
        numpy.testing.assert_array_equal(resumed[k], full[k])


def test_trainer_rejects_a_scheduler_that_is_neither_a_scheduler_nor_a_factory():
    with pytest.raises(TypeError, match="scheduler must be a scheduler"):
        Trainer(nn.Linear(2, 2, rng=0), scheduler=3)
