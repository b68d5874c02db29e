"""Never silently wrong: jit signatures that tell apart what changes results, and stable
functions that are accurate (not only finite) on both sides."""

from __future__ import annotations

import math

import mpmath
import numpy
import pytest

import chainrule as cr
from chainrule import functions as F


def test_jit_tells_signed_zeros_apart():
    f = cr.jit(lambda y, x: numpy.arctan2(y, numpy.ones(1) * x))
    assert f(0.0, -1.0)[0] == math.pi
    assert f(-0.0, -1.0)[0] == -math.pi  # not the program traced for +0.0
    assert f(0.0, -1.0)[0] == math.pi


def test_a_nan_argument_does_not_retrace_at_every_call():
    g = cr.jit(lambda x, c: x * c)
    for _ in range(20):
        out = g(numpy.ones(2), float("nan"))
    assert numpy.isnan(out).all()
    assert g.cache_info()["signatures"] == 1


@pytest.mark.parametrize("x", [-40.0, -30.0, -5.0, 0.0, 5.0, 30.0, 40.0])
def test_sigmoid_gradient_is_accurate_on_both_sides(x):
    with mpmath.workdps(60):
        s = 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
        true = float(s * (1 - s))
    assert float(cr.grad(F.sigmoid)(x)) == pytest.approx(true, rel=1e-14, abs=0)
