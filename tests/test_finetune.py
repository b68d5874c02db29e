"""Fine-tuning: frozen parameters (``requires_grad_(False)``) are skipped by every optimizer,
by fit/Trainer, schedulers and checkpoints, as in PyTorch."""

from __future__ import annotations

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
