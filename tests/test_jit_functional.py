"""jit follows its inputs: every nn.functional function, compiled at one input and run at
another, equals the eager computation at that other input (value and gradient), on both
backends. A value read during tracing and frozen into the program would fail this."""

from __future__ import annotations

import warnings

import numpy
import pytest

import chainrule as cr
from chainrule.nn import functional as F

rng = numpy.random.default_rng(7)


def r(*shape):
    return rng.standard_normal(shape)


def probs(*shape):
    p = rng.uniform(0.1, 0.9, shape)
    return p


# (id, function of float arrays and other arguments, two argument tuples, differentiated argnums)
CASES = [
    ("relu", F.relu, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), [(r(3, 4),), (r(3, 4),)], (0,)),
    ("elu", F.elu, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("selu", F.selu, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("gelu", F.gelu, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("sigmoid", F.sigmoid, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("tanh", F.tanh, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("softplus", F.softplus, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("silu", F.silu, [(r(3, 4),), (r(3, 4),)], (0,)),
    ("softmax", lambda x: F.softmax(x, dim=1), [(r(3, 4),), (r(3, 4),)], (0,)),
    ("log_softmax", lambda x: F.log_softmax(x, dim=1), [(r(3, 4),), (r(3, 4),)], (0,)),
    ("linear", F.linear, [(r(5, 3), r(2, 3), r(2)), (r(5, 3), r(2, 3), r(2))], (0, 1, 2)),
    (
        "conv2d",
        lambda x, w: F.conv2d(x, w, padding=1),
        [(r(2, 1, 5, 5), r(3, 1, 3, 3)), (r(2, 1, 5, 5), r(3, 1, 3, 3))],
        (0, 1),
    ),
    ("max_pool2d", lambda x: F.max_pool2d(x, 2), [(r(2, 1, 4, 4),), (r(2, 1, 4, 4),)], (0,)),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2), [(r(2, 1, 4, 4),), (r(2, 1, 4, 4),)], (0,)),
    ("dropout_eval", lambda x: F.dropout(x, 0.5, training=False), [(r(3, 4),), (r(3, 4),)], (0,)),
    ("layer_norm", lambda x: F.layer_norm(x, (4,)), [(r(3, 4),), (r(3, 4),)], (0,)),
    ("mse_loss", F.mse_loss, [(r(3, 4), r(3, 4)), (r(3, 4), r(3, 4))], (0,)),
    ("l1_loss", F.l1_loss, [(r(3, 4), r(3, 4)), (r(3, 4), r(3, 4))], (0,)),
    ("huber_loss", F.huber_loss, [(r(3, 4), r(3, 4)), (r(3, 4), r(3, 4))], (0,)),
    ("smooth_l1_loss", F.smooth_l1_loss, [(r(3, 4), r(3, 4)), (r(3, 4), r(3, 4))], (0,)),
    (
        "cross_entropy",
        F.cross_entropy,
        [(r(4, 3), numpy.array([0, 1, 2, 0])), (r(4, 3), numpy.array([2, 2, 1, 0]))],
        (0,),
    ),
    (
        "cross_entropy_nd",
        F.cross_entropy,
        [
            (r(2, 3, 4), numpy.array([[0, 1, 2, 0], [2, 2, 1, 0]])),
            (r(2, 3, 4), numpy.array([[1, 1, 0, 2], [0, 2, 2, 1]])),
        ],
        (0,),
    ),
    (
        "cross_entropy_weighted",
        lambda z, y: F.cross_entropy(z, y, weight=numpy.array([1.0, 2.0, 0.5])),
        [(r(4, 3), numpy.array([0, 1, 2, 0])), (r(4, 3), numpy.array([2, 2, 1, 1]))],
        (0,),
    ),
    (
        "cross_entropy_probs",
        F.cross_entropy,
        [(r(4, 3), probs(4, 3)), (r(4, 3), probs(4, 3))],
        (0, 1),
    ),
    (
        "nll_loss",
        lambda z, y: F.nll_loss(F.log_softmax(z, dim=1), y),
        [(r(4, 3), numpy.array([0, 1, 2, 0])), (r(4, 3), numpy.array([1, 0, 0, 2]))],
        (0,),
    ),
    ("bce", F.binary_cross_entropy, [(probs(5), probs(5)), (probs(5), probs(5))], (0, 1)),
    (
        "bce_logits",
        F.binary_cross_entropy_with_logits,
        [(r(5), probs(5)), (r(5), probs(5))],
        (0, 1),
    ),
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name, fun, calls, argnums", CASES, ids=[c[0] for c in CASES])
def test_jit_follows_new_inputs(name, fun, calls, argnums, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    step = lambda *a: fun(*a).sum()  # noqa: E731
    eager = cr.value_and_grad(step, argnums=argnums)
    compiled = cr.jit(eager, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cr.JitFallbackWarning)  # Numba may not have every op
        for args in calls:  # compiled at the first inputs, then run at the second
            v_j, g_j = compiled(*args)
            v_e, g_e = eager(*args)
            numpy.testing.assert_allclose(v_j, v_e, rtol=1e-12, atol=1e-12)
            for a, b in zip(g_j, g_e):
                numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
