"""The eager walk adds the cotangents of indexed reads into one buffer per base (engine.graph
INPLACE): the gradients stay those of the rule, checked against finite differences, and a base
read many times is scattered into zeros once, not once per read."""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.engine import plans
from chainrule.engine import primitives as P


def rnn_over_stacked_states(W, X):
    # states stacked into one array, then read back by h[t] (an intermediate base)
    hs = [numpy.tanh(X[0] @ W)]
    for t in range(1, X.shape[0]):
        hs.append(numpy.tanh(X[t] @ W + hs[-1]))
    H = numpy.stack(hs)
    total = 0.0
    for t in range(H.shape[0]):
        total = total + (H[t] * H[t, :, ::-1]).sum() + H[t, 0, 1:].sum()
    return total


def reads_of_a_leaf(x):
    # basic reads of the differentiated argument itself, advanced (repeating) reads, the whole
    return (x[0] * x[1]).sum() + x[2, 1:].sum() + (x[[0, 0, 2]] ** 2).sum() + (x * x).sum()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_stacked_state_reads_match_finite_differences(dtype):
    rng = numpy.random.default_rng(0)
    W = (rng.standard_normal((3, 3)) * 0.5).astype(dtype)
    X = rng.standard_normal((6, 2, 3)).astype(dtype)
    value, g = cr.value_and_grad(rnn_over_stacked_states)(W, X)
    assert g.dtype == dtype
    want = fd_grad(lambda w: rnn_over_stacked_states(w, X.astype(float)), W.astype(float))
    tol = 1e-7 if dtype == numpy.float64 else 2e-3
    numpy.testing.assert_allclose(g, want, rtol=tol, atol=tol)


def test_reads_of_a_differentiated_argument():
    x = numpy.random.default_rng(1).standard_normal((3, 4))
    g = cr.grad(reads_of_a_leaf)(x)
    numpy.testing.assert_allclose(g, fd_grad(reads_of_a_leaf, x), rtol=1e-7, atol=1e-8)
    # backward() into .grad takes the ordinary path: the same numbers
    t = cr.tensor(x, requires_grad=True)
    reads_of_a_leaf(t).backward()
    numpy.testing.assert_allclose(t.grad, g, rtol=1e-15)


def test_a_base_read_many_times_is_scattered_once(monkeypatch):
    calls = []
    scatter = P.scatter_add

    def counting(g, index, shape, unique):
        calls.append(shape)
        return scatter(g, index, shape, unique)

    monkeypatch.setattr(P, "scatter_add", counting)
    X = numpy.random.default_rng(2).standard_normal((40, 5))

    def f(X):
        return sum((X[t] * X[t - 1]).sum() for t in range(1, X.shape[0]))

    want = numpy.zeros_like(X)
    want[1:] += X[:-1]
    want[:-1] += X[1:]
    plans.clear()
    for _ in range(3):  # the plain walk, then a backward plan built (engine/plans.py) and reused
        calls.clear()
        g = cr.grad(f)(X)
        assert calls == [(40, 5)]  # 78 reads, one buffer
        numpy.testing.assert_allclose(g, want, rtol=1e-15)


def test_gradients_handed_out_do_not_alias_the_buffer():
    # x[0] read twice and x used whole: the returned gradient is one array, and a second call
    # does not write into the first call's result
    f = cr.grad(lambda x: (x[0] * 3.0).sum() + x[0].sum() + x.sum())
    x = numpy.ones((2, 2))
    g1 = f(x)
    g1_copy = g1.copy()
    g2 = f(x)
    numpy.testing.assert_array_equal(g1, g1_copy)
    numpy.testing.assert_array_equal(g2, [[5.0, 5.0], [1.0, 1.0]])
    assert not numpy.shares_memory(g1, g2)
