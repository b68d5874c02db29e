"""detect_anomaly: the first NaN/inf is reported with its name and the line that made it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy
import pytest

import chainrule as cr
from chainrule import seed


def seed_forward_with_nan_in_layer_3():
    X, T = cr.tensor(seed.X), cr.tensor(seed.T)
    W3 = seed.W3.copy()
    W3[2, 4] = numpy.nan  # the planted NaN
    W1, W2, W3, W4 = (cr.tensor(w, requires_grad=True) for w in (seed.W1, seed.W2, W3, seed.W4))
    B1, B2, B3, B4 = (
        cr.tensor(b, requires_grad=True) for b in (seed.B1, seed.B2, seed.B3, seed.B4)
    )
    Z1 = X.dot(W1) + B1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W2) + B2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W3) + B3
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W4) + B4
    return ((Y - T) ** 2).mean()


def test_a_nan_planted_in_layer_3_is_reported_with_its_name_and_line():
    with cr.detect_anomaly():
        with pytest.raises(cr.AnomalyError) as info:
            seed_forward_with_nan_in_layer_3()
    text = str(info.value)
    assert "in Z3" in text
    assert "Z3 = A2.dot(W3) + B3" in text
    assert "test_anomaly.py" in text
    assert "(W3)" in text and "any NaN: True" in text  # which input carried it


def test_off_by_default_nan_propagates_like_numpy():
    with numpy.errstate(invalid="ignore"):
        err = seed_forward_with_nan_in_layer_3()
    assert numpy.isnan(err.data)


def test_a_gradient_that_becomes_nan_is_reported():
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with cr.detect_anomaly():
        y = numpy.sqrt(x)  # finite: sqrt(0) = 0
        with pytest.raises(cr.AnomalyError, match="gradient rule of numpy.sqrt"):
            y.sum().backward()  # d sqrt / dx at 0 is inf


def test_switching_off_restores_the_fast_path():
    t = sys.modules["chainrule.engine.tensor"]
    before = t._apply
    with cr.detect_anomaly():
        assert t._apply is not before
    assert t._apply is before


def test_environment_variable_switches_it_on_for_a_run():
    code = (
        "import numpy, chainrule as cr\n"
        "x = cr.tensor([-1.0], requires_grad=True)\n"
        "try:\n    numpy.log(x)\nexcept cr.AnomalyError as e:\n    print('caught', e)\n"
    )
    env = dict(os.environ, CHAINRULE_DETECT_ANOMALY="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("caught numpy.log produced NaN")
