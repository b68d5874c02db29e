"""Fine-tuning: frozen parameters (``requires_grad_(False)``) are skipped by every optimizer,
by fit/Trainer, schedulers and checkpoints, as in PyTorch."""

from __future__ import annotations

import csv
import math

import numpy
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.train.trainer import Trainer, fit


def blobs(n=120, seed=0):
    rng = numpy.random.default_rng(seed)
    centers = numpy.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + 0.6 * rng.standard_normal((n, 2)), y


OPTIMIZERS = [
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (optim.Adam, {"lr": 0.1, "weight_decay": 0.01}),
    (optim.AdamW, {"lr": 0.1}),
    (optim.RMSprop, {"lr": 0.1, "momentum": 0.5}),
    (optim.Adagrad, {"lr": 0.1}),
]


@pytest.mark.parametrize(("cls", "opts"), OPTIMIZERS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_optimizer_accepts_and_skips_a_frozen_parameter(cls, opts):
    frozen = cr.tensor([1.0, 2.0], requires_grad=False)
    w = cr.tensor([1.0, -1.0], requires_grad=True)
    opt = cls([frozen, w], **opts)
    for _ in range(3):
        opt.zero_grad()
        ((w * frozen) ** 2).sum().backward()
        assert frozen.grad is None
        opt.step()
    numpy.testing.assert_array_equal(frozen.data, [1.0, 2.0])
    assert not numpy.allclose(w.data, [1.0, -1.0])
    assert frozen not in opt.state  # no state is made for a parameter never updated
    state = opt.state_dict()
    assert sorted(state["state"]) == [1]
    opt2 = cls([frozen, w], **opts)
    opt2.load_state_dict(state)


def test_a_parameter_frozen_later_keeps_its_values_and_state():
    a = cr.tensor([1.0], requires_grad=True)
    b = cr.tensor([1.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * b).sum().backward()
    opt.step()
    state_a = {k: numpy.copy(v) for k, v in opt.state[a].items()}
    a.requires_grad = False
    before = a.data.copy()
    for _ in range(2):
        opt.zero_grad()
        (a * b).sum().backward()
        opt.step()
    numpy.testing.assert_array_equal(a.data, before)
    for k, v in state_a.items():
        numpy.testing.assert_array_equal(opt.state[a][k], v)


def test_fit_with_a_frozen_first_layer_trains_only_the_rest(tmp_path):
    X, y = blobs()
    model = nn.MLP([2, 8, 3], rng=0)
    model.layers[0].requires_grad_(False)
    first = {k: v.copy() for k, v in model.layers[0].state_dict().items()}
    last = {k: v.copy() for k, v in model.layers[2].state_dict().items()}
    h = fit(
        model,
        X,
        y,
        epochs=4,
        lr=0.05,
        batch_size=16,
        scheduler=lambda o: optim.StepLR(o, 2, 0.5),
        checkpoint_dir=tmp_path,
        progress=None,
    )
    for k, v in model.layers[0].state_dict().items():
        numpy.testing.assert_array_equal(v, first[k])
    assert any(not numpy.array_equal(v, last[k]) for k, v in model.layers[2].state_dict().items())
    assert h["loss"][-1] < h["loss"][0]
    assert h["lr"] == [0.05, 0.05, 0.025, 0.025]
    assert (tmp_path / "last.ckpt").exists() and (tmp_path / "best.ckpt").exists()


def test_resume_with_a_frozen_layer_equals_the_uninterrupted_run(tmp_path):
    X, y = blobs()

    def run(ckdir, epochs, resume):
        model = nn.MLP([2, 8, 3], rng=0)
        model.layers[0].requires_grad_(False)
        fit(model, X, y, epochs=epochs, lr=0.05, checkpoint_dir=ckdir, resume=resume, progress=None)
        return model.state_dict()

    full = run(tmp_path / "a", 4, False)
    run(tmp_path / "b", 2, False)
    resumed = run(tmp_path / "b", 4, True)
    for k in full:
        numpy.testing.assert_array_equal(resumed[k], full[k])


def test_a_fully_frozen_model_is_refused_clearly():
    model = nn.Linear(2, 2, rng=0).requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter of the model is frozen"):
        Trainer(model)


# --- the fine-tuning script as a PyTorch user writes it ----------------------------------------


def finetune_script(workdir, with_tensorboard):
    """Pre-train, then fine-tune: freeze the first layer, a new head, ReduceLROnPlateau, CSV
    (and TensorBoard) logs, early stopping, the best checkpoint."""
    from chainrule import callbacks

    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((400, 2))
    y_old = (X[:, 0] > 0).astype(int)
    y_new = numpy.where(X[:, 1] > 1, 2, (X[:, 0] * X[:, 1] > 0).astype(int))  # 3 classes

    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 2))
    cr.fit(model, X, y_old, epochs=5, lr=1e-2, verbose=0)  # "pre-training"

    for p in model[0].parameters():  # freeze the feature layer
        p.requires_grad = False
    model[2] = nn.Linear(64, 3)  # a new head for the new task
    opt = optim.Adam(model.parameters(), lr=3e-2)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
    cbs = [
        callbacks.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True),
        callbacks.ModelCheckpoint(workdir / "best.ckpt", monitor="val_loss", save_best_only=True),
        callbacks.CSVLogger(workdir / "log.csv"),
    ]
    if with_tensorboard:
        cbs.append(callbacks.TensorBoard(workdir / "tb"))
    history = cr.fit(
        model,
        X,
        y_new,
        optimizer=opt,
        scheduler=sched,
        epochs=200,
        batch_size=32,
        validation_split=0.25,
        callbacks=cbs,
        verbose=0,
    )
    return model, history, X, y_new


@pytest.mark.parametrize("with_tensorboard", [False, True], ids=["csv", "csv+tensorboard"])
def test_the_fine_tuning_script_runs_and_each_piece_does_its_job(tmp_path, with_tensorboard):
    if with_tensorboard:
        pytest.importorskip("tensorboardX")
    cr.manual_seed(0)
    initial = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 2))
    model, h, X, y = finetune_script(tmp_path, with_tensorboard)
    # the frozen layer kept its pre-trained values (the pre-training did change them)
    assert not numpy.array_equal(model[0].weight.data, initial[0].weight.data)
    cr.manual_seed(0)
    pre = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 2))
    cr.fit(pre, X, (X[:, 0] > 0).astype(int), epochs=5, lr=1e-2, verbose=0)
    numpy.testing.assert_array_equal(model[0].weight.data, pre[0].weight.data)
    # the new head learned the new task
    assert h["val_accuracy"][h.best_epoch] > 0.8
    # ReduceLROnPlateau: replaying PyTorch's rule on the logged val_loss gives the logged rates
    lr, best, bad, expected = 3e-2, math.inf, 0, []
    for v in h["val_loss"]:
        expected.append(lr)
        if v < best * (1 - 1e-4):
            best, bad = v, 0
        else:
            bad += 1
        if bad > 2:
            lr, bad = lr * 0.5, 0
    assert h["lr"] == pytest.approx(expected, rel=1e-12) and min(h["lr"]) < 3e-2
    # early stopping ended the run 6 epochs after the best one and restored it
    best_epoch = int(numpy.argmin(h["val_loss"]))
    assert h.stopped_epoch == best_epoch + 6 == len(h) - 1 < 199
    state = cr.load(tmp_path / "best.ckpt")
    assert state["epoch"] == best_epoch
    for k, v in model.state_dict().items():
        numpy.testing.assert_array_equal(v, state["model"][k])
    # the CSV log has one row per epoch with the history's values
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(h)
    assert [float(r["val_loss"]) for r in rows] == h["val_loss"]
    if with_tensorboard:
        files = list((tmp_path / "tb" / "validation").iterdir())
        assert files and files[0].name.startswith("events.out.tfevents")


def test_half_precision_training_is_refused_with_the_way_out():
    model = nn.Linear(2, 2, rng=0).to(numpy.float16)
    with pytest.raises(ValueError, match=r"'weight' is float16.*model.float\(\)"):
        Trainer(model)
    h = fit(
        nn.Linear(2, 2, rng=0).float(),
        *blobs(20)[:1],
        numpy.array([0, 1] * 10),
        verbose=0,
        epochs=1,
    )
    assert len(h) == 1  # float32 trains


def test_a_pytorch_style_manual_loop_with_a_frozen_layer_and_a_per_batch_schedule():
    from chainrule.data import DataLoader
    from chainrule.nn import functional as F

    X, y = blobs(120)
    loader = DataLoader(X, y, batch_size=16, seed=0)
    model = nn.Sequential(nn.Linear(2, 16, rng=0), nn.ReLU(), nn.Linear(16, 3, rng=1))
    model[0].requires_grad_(False)
    frozen = model[0].weight.data.copy()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=len(loader))
    losses = []
    for _ in range(3):
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss) * len(yb)
        losses.append(total / len(y))
    numpy.testing.assert_array_equal(model[0].weight.data, frozen)
    assert model[0].weight.grad is None and losses[-1] < losses[0] / 2
    assert sched.last_epoch == 3 * len(loader)
