"""Property tests over the whole op list: every rule, at inputs Hypothesis draws.

For every case of ``tests/op_cases.py`` (each NumPy function with a gradient rule, and each
function of ``chainrule.functions``) Hypothesis draws new inputs of the case's shapes and
checks chainrule's gradients against central finite differences (``chainrule.check_grads``,
first or second order), and, for float32 inputs, that the gradients computed in float32 have
float32 dtype and agree with the float64 ones.

New inputs stay in each case's domain without knowing it: every element of the case's input is
multiplied by its own factor ``1 + delta * u`` (``0 <= delta <= 0.05``, ``-1 <= u <= 1``), which
keeps its sign and its distance from 0; an element that the factor would carry outside the
range of the case's values is divided by it instead (moved inwards), so bounded domains
(``arcsin``, ``logit``, ``arccosh``) hold (a single value keeps the factor: the generators of
op_cases.py leave more than 5% between their values and any singularity).  Zeros stay zeros
(cases about 0 stay about 0).
Distinct values (``max``, ``sort``) are 0.37 apart and move by at most 5%, so in the small
cases they stay more than 0.1 apart.  Should a draw still put a point within a finite-difference
step of a kink (a tie, a ``remainder`` jump), ``check_grads`` names the kink, and the example is
rejected rather than reported: there is no derivative there to compare.

Budget: by default 5 examples per op, so that the file runs in well under a minute on two
cores.  For a deeper run, set ``CHAINRULE_HYPOTHESIS_EXAMPLES``::

    CHAINRULE_HYPOTHESIS_EXAMPLES=200 python -m pytest tests/test_hypothesis_ops.py

A counterexample found that way belongs in ``tests/test_regressions.py``.
"""

from __future__ import annotations

import os
import warnings

import numpy
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from op_cases import CASES, FIRST_ORDER_ONLY

import chainrule as cr

# See test_properties.py: import Hypothesis' patch writer once, with its libcst warning
# silenced, so that a failure is reported instead of an INTERNALERROR under filterwarnings=error.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # pragma: no cover - libcst/black not installed
        pass

EXAMPLES = int(os.environ.get("CHAINRULE_HYPOTHESIS_EXAMPLES", "5"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
MAX_DELTA = 0.05


def perturb(x: numpy.ndarray, delta: float, u: numpy.ndarray) -> numpy.ndarray:
    """Each element times ``1 + delta * u``, or divided by it where that leaves x's range."""
    factor = 1.0 + delta * u
    y = numpy.array(x * factor, dtype=numpy.float64)
    if x.size <= 1:  # no range to keep to: the op_cases domains have 5% to spare
        return y
    lo, hi = x.min(), x.max()
    outside = (y < lo) | (y > hi)
    y[outside] = x[outside] / factor[outside]
    still = (y < lo) | (y > hi)
    y[still] = x[still]
    return y


def test_perturb_keeps_sign_range_and_order():
    rng = numpy.random.default_rng(0)
    x = numpy.array([0.06, 0.5, 0.94, -1.2, 0.0])
    for _ in range(100):
        y = perturb(x, MAX_DELTA, rng.uniform(-1, 1, x.shape))
        assert numpy.all(numpy.sign(y) == numpy.sign(x))
        assert y.min() >= x.min() and y.max() <= x.max()
        assert numpy.all(numpy.abs(y - x) <= MAX_DELTA * numpy.abs(x) * 1.0000001)
    d = numpy.arange(12) * 0.37 - 1.8  # op_cases.distinct(3, 4): 0.37 apart
    y = perturb(d, MAX_DELTA, numpy.where(numpy.arange(12) % 2 == 0, 1.0, -1.0))
    assert numpy.all(numpy.diff(y) > 0.1)  # the worst case: neighbours pushed together


@st.composite
def draws(draw, case):
    dtype = draw(st.sampled_from([numpy.float64, numpy.float32]))
    delta = draw(st.floats(0.0, MAX_DELTA))
    inputs = []
    for x in case.inputs:
        u = draw(hnp.arrays(numpy.float64, x.shape, elements=st.floats(-1.0, 1.0)))
        inputs.append(perturb(numpy.asarray(x, dtype=numpy.float64), delta, u).astype(dtype))
    order = 1 if case.id in FIRST_ORDER_ONLY else draw(st.sampled_from([1, 2]))
    return dtype, inputs, order


def _projected(fun, direction):
    def scalar(*args):
        out = fun(*args)
        d = direction.astype(numpy.asarray(getattr(out, "data", out)).dtype)
        return (out * d).sum()

    return scalar


def _fourth_order_agrees(fun, xs, report, rtol=1e-5, h=2e-6):
    """Whether every element check_grads reported (all of them, none left unreported) agrees
    with a fourth-order central difference (Richardson: error O(h^4) instead of O(h^2))."""
    for arg in report.arguments:
        if arg.bad_count != len(arg.mismatches) or not arg.name.startswith("arg"):
            return False
        k = int(arg.name[3:])
        for m in arg.mismatches:

            def at(t, k=k, index=m.index):
                ys = [x.copy() for x in xs]
                ys[k][index] += t
                return float(numpy.asarray(fun(*ys)).real)

            fd = (8 * (at(h / 2) - at(-h / 2)) - (at(h) - at(-h))) / (6 * h)
            if abs(m.analytic - fd) > rtol * max(abs(fd), 1.0):
                return False
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@SETTINGS
@given(data=st.data())
def test_gradients_match_finite_differences(case, data):
    dtype, inputs, order = data.draw(draws(case))
    inputs64 = [x.astype(numpy.float64) for x in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the shape probe may overflow nothing
        out_shape = numpy.shape(
            numpy.asarray(getattr(case.fun(*inputs64), "data", case.fun(*inputs64)))
        )
    direction = numpy.random.default_rng(len(case.id)).standard_normal(out_shape)
    scalar = _projected(case.fun, direction)
    try:
        cr.check_grads(scalar, *inputs64, order=order)
    except cr.GradientCheckError as e:
        mismatches = [m for a in e.report.arguments for m in a.mismatches]
        if mismatches and all(m.kinks for m in mismatches):
            event("rejected: the finite difference straddles a kink")
            reject()  # the step straddles a kink: no derivative to compare
        if order == 1 and _fourth_order_agrees(scalar, inputs64, e.report):
            # a central difference's own error (the function curves fast: eigenvalues close
            # to each other) and not the gradient's: a fourth-order difference agrees
            event("central difference inaccurate; fourth-order difference agrees")
            return
        raise
    if dtype is numpy.float32:
        nums = tuple(range(len(inputs)))
        g32 = cr.grad(scalar, argnums=nums)(*inputs)
        g64 = cr.grad(scalar, argnums=nums)(*inputs64)
        for a, b, x in zip(g32, g64, inputs):
            assert a.dtype == numpy.float32 and a.shape == x.shape
            scale = float(numpy.abs(b).max(initial=0.0))
            numpy.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * scale + 1e-30)
