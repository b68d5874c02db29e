"""fit with batches from a DataLoader or a list of (x, y) pairs, and models with several
inputs (a tuple of arrays), checked against the equivalent single-array runs."""

from __future__ import annotations

import numpy
import pytest

from chainrule import nn, optim
from chainrule.data import DataLoader
from chainrule.train.trainer import Trainer, fit


def blobs(n=96, seed=0):
    rng = numpy.random.default_rng(seed)
    centers = numpy.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    y = rng.integers(0, 3, n)
    return centers[y] + 0.9 * rng.standard_normal((n, 2)), y


def test_a_dataloader_trains_exactly_like_the_arrays_it_holds():
    X, y = blobs()
    a, b = nn.MLP([2, 8, 3], rng=0), nn.MLP([2, 8, 3], rng=0)
    ha = fit(a, X, y, epochs=3, batch_size=16, seed=5, lr=0.05, verbose=0)
    hb = fit(b, DataLoader(X, y, batch_size=16, seed=5), epochs=3, lr=0.05, verbose=0)
    assert ha.history == hb.history
    for k, v in a.state_dict().items():
        numpy.testing.assert_array_equal(v, b.state_dict()[k])


def test_a_list_of_batches_with_weights_and_a_loader_for_validation():
    X, y = blobs()
    batches = [
        (X[i : i + 32], y[i : i + 32], numpy.ones(len(y[i : i + 32])) * 2.0)
        for i in range(0, 96, 32)
    ]
    val = DataLoader(*blobs(30, seed=1), batch_size=8, shuffle=False)
    m = nn.MLP([2, 8, 3], rng=0)
    h = fit(m, batches, epochs=2, lr=0.05, validation_data=val, verbose=0)
    same = nn.MLP([2, 8, 3], rng=0)
    h2 = fit(
        same,
        X,
        y,
        epochs=2,
        lr=0.05,
        batch_size=32,
        shuffle=False,
        validation_data=blobs(30, seed=1),
        verbose=0,
    )
    numpy.testing.assert_allclose(h["loss"], h2["loss"], rtol=1e-12)  # constant weights
    assert h["val_accuracy"] == h2["val_accuracy"]


def test_loader_errors_are_clear():
    X, y = blobs()
    with pytest.raises(TypeError, match="is an iterator"):
        fit(nn.Linear(2, 3, rng=0), iter([(X, y)]), verbose=0)
    with pytest.raises(ValueError, match="give validation_data instead of validation_split"):
        fit(nn.Linear(2, 3, rng=0), DataLoader(X, y), validation_split=0.2, verbose=0)
    with pytest.raises(TypeError, match=r"must be \(x, y\) or \(x, y, sample_weight\)"):
        fit(nn.Linear(2, 3, rng=0), DataLoader(X), verbose=0)
    with pytest.raises(ValueError, match="text labels from a loader"):
        fit(nn.Linear(2, 3, rng=0), [(X, numpy.array(["a", "b", "c"])[y])], verbose=0)
    with pytest.raises(TypeError, match="y is missing"):
        fit(nn.Linear(2, 3, rng=0), X, None, verbose=0)


class TwoInputs(nn.Module):
    """out = a @ Wa.T + b @ Wb.T + bias: a Linear on [a, b] split in two."""

    def __init__(self, weight, bias):
        super().__init__()
        self.wa = nn.Parameter(weight[:, :2])
        self.wb = nn.Parameter(weight[:, 2:])
        self.bias = nn.Parameter(bias)

    def forward(self, a, b):
        return a @ self.wa.T + b @ self.wb.T + self.bias


def test_a_model_with_two_inputs_trains_like_one_linear_layer_on_both():
    X, y = blobs()
    extra = numpy.random.default_rng(3).standard_normal((96, 3))
    single = nn.Linear(5, 3, rng=0)
    double = TwoInputs(single.weight.data.copy(), single.bias.data.copy())
    kw = dict(epochs=3, batch_size=16, validation_split=0.25, verbose=0)
    h1 = fit(
        single, numpy.hstack([X, extra]), y, optimizer=optim.SGD(single.parameters(), lr=0.1), **kw
    )
    h2 = fit(double, (X, extra), y, optimizer=optim.SGD(double.parameters(), lr=0.1), **kw)
    numpy.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-10)
    numpy.testing.assert_allclose(
        numpy.hstack([double.wa.data, double.wb.data]), single.weight.data, rtol=1e-10
    )
    t = Trainer(double)
    assert t.predict([X, extra]).shape == (96, 3)  # a list of arrays is several inputs too
    assert (
        t.evaluate((X, extra), y)["accuracy"]
        == Trainer(single).evaluate(numpy.hstack([X, extra]), y)["accuracy"]
    )
    with pytest.raises(ValueError, match="different numbers of samples"):
        fit(double, (X, extra[:10]), y, verbose=0)
