"""jit's NumPy backend merges the matrix products of a traced loop (``ir.merge_products``):
``X[t] @ W`` for every step as one product, a weight's gradient summed over the steps as one
product; and the sums over the steps of a broadcast parameter's gradient (``ir.merge_sums``).
The values agree with the eager path's to rounding; the gradients are checked against finite
differences and against the eager ones, on loops written in several ways."""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.readers import jit as jit_module

RNG = numpy.random.default_rng(31)


def elman(Wx, Wh, Wo, X, T):
    h = numpy.tanh(X[0] @ Wx)
    for t in range(1, X.shape[0]):
        h = numpy.tanh(X[t] @ Wx + h @ Wh)
    return ((h @ Wo - T) ** 2).mean()


def reversed_steps(Wx, Wh, Wo, X, T):  # rows read last to first, outputs kept every step
    h = numpy.zeros((X.shape[1], Wh.shape[0]), dtype=X.dtype)
    total = 0.0
    for t in range(X.shape[0] - 1, -1, -1):
        h = numpy.tanh(numpy.dot(X[t], Wx) + h @ Wh)
        total = total + ((h @ Wo - T) ** 2).sum()
    return total


def some_steps(Wx, Wh, Wo, X, T):  # every other row: most of X is still read
    h = numpy.tanh(X[0] @ Wx)
    for t in range(2, X.shape[0], 2):
        h = numpy.tanh(X[t] @ Wx + h @ Wh) * 0.5 + h * 0.5
    return ((h @ Wo - T) ** 2).mean()


def batch_first(Wx, Wh, Wo, X, T):  # X as (batch, steps, features), read as X[:, t]
    Xb = X.transpose(1, 0, 2).copy()
    h = numpy.tanh(Xb[:, 0] @ Wx)
    for t in range(1, Xb.shape[1]):
        h = numpy.tanh(Xb[:, t] @ Wx + h @ Wh)
    return ((h @ Wo - T) ** 2).mean()


def _data(dtype):
    X = RNG.standard_normal((12, 5, 4)).astype(dtype)
    T = RNG.standard_normal((5, 2)).astype(dtype)
    params = [(RNG.standard_normal(s) * 0.4).astype(dtype) for s in ((4, 6), (6, 6), (6, 2))]
    return params, X, T


def _products(src):
    return src.count(".dot(") + src.count(" @ ")


BACKENDS = ["numpy", "numba"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "loss,steps", [(elman, 12), (reversed_steps, 12), (some_steps, 6), (batch_first, 12)]
)
def test_merged_products_give_the_gradients(loss, steps, backend, monkeypatch, tmp_path):
    if backend == "numba":
        pytest.importorskip("numba")
        monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    params, X, T = _data(numpy.float64)
    vg = cr.value_and_grad(loss, argnums=(0, 1, 2))
    jvg = cr.jit(vg, backend=backend)
    value, grads = vg(*params, X, T)
    jvalue, jgrads = jvg(*params, X, T)
    src = jvg.source(*params, X, T)
    assert "reshape((60, 4))" in src  # X's rows times Wx: one product (X is 12 x 5 x 4)
    monkeypatch.setattr(jit_module, "merge_products", lambda prog: prog)
    unmerged = cr.jit(vg, backend=backend).source(*params, X, T)
    # one product for the steps' X[t] @ Wx, one for Wx's gradient (a term a step) and one for
    # Wh's (a term a step but the first)
    assert _products(src) <= _products(unmerged) - (steps - 1) - (steps - 1) - (steps - 2)
    numpy.testing.assert_allclose(jvalue, value, rtol=1e-13)
    for k, (g, jg) in enumerate(zip(grads, jgrads)):
        numpy.testing.assert_allclose(jg, g, rtol=1e-12, atol=1e-14)

        def f(p, k=k):
            ps = list(params)
            ps[k] = p
            return loss(*ps, X, T)

        numpy.testing.assert_allclose(jg, fd_grad(f, params[k]), rtol=1e-6, atol=1e-8)


def test_float32_loops_agree_to_rounding():
    params, X, T = _data(numpy.float32)
    vg = cr.value_and_grad(elman, argnums=(0, 1, 2))
    value, grads = vg(*params, X, T)
    jvalue, jgrads = cr.jit(vg, backend="numpy")(*params, X, T)
    assert all(g.dtype == numpy.float32 for g in jgrads)
    numpy.testing.assert_allclose(jvalue, value, rtol=1e-5)
    for g, jg in zip(grads, jgrads):
        numpy.testing.assert_allclose(jg, g, rtol=1e-4, atol=1e-6)


def test_products_that_depend_on_each_other_are_not_merged():
    # h @ Wh at step t reads the product of step t - 1: a chain, not a batch
    params, X, T = _data(numpy.float64)
    src = cr.jit(cr.value_and_grad(elman, argnums=(0, 1, 2)), backend="numpy").source(*params, X, T)
    assert src.count(".dot(a1)") == X.shape[0] - 1  # one per step, in order


def test_a_few_rows_of_a_long_array_are_not_multiplied_whole():
    X = RNG.standard_normal((100, 5, 4))
    W = RNG.standard_normal((4, 3))

    def f(W, X):
        return sum(((X[t] @ W) ** 2).sum() for t in (3, 50, 97))

    jf = cr.jit(cr.grad(f), backend="numpy")
    assert "reshape((500, 4))" not in jf.source(W, X)
    want = sum(2 * X[t].T @ (X[t] @ W) for t in (3, 50, 97))  # by hand
    numpy.testing.assert_allclose(jf(W, X), want, rtol=1e-12)


def test_large_products_are_left_one_a_step():
    # 256 x 128 x 128 multiply-adds a step: the call costs little next to it, and merging
    # would keep every step's result alive at once
    X = RNG.standard_normal((4, 256, 128))
    W = RNG.standard_normal((128, 128)) * 0.1

    def f(W, X):
        h = numpy.tanh(X[0] @ W)
        for t in range(1, 4):
            h = numpy.tanh(X[t] @ W + h)
        return (h * h).sum()

    src = cr.jit(cr.grad(f), backend="numpy").source(W, X)
    assert "reshape((1024, 128))" not in src and "concatenate" not in src


def holt(a, b, Y):
    # damped-trend smoothing: two scalar constants broadcast over 4 series at every step, so
    # their gradients are sums of a step's (g * x).sum(axis=0) over the steps, some added,
    # some subtracted
    alpha = numpy.exp(a) / (1 + numpy.exp(a))
    beta = numpy.exp(b) / (1 + numpy.exp(b))
    level, slope, loss = Y[0], 0.5 * (Y[1] - Y[0]), 0.0
    for row in Y[1:]:
        guess = level + 0.9 * slope
        loss = loss + numpy.abs(row - guess).sum() + 0.5 * ((row - guess) ** 2).sum()
        fresh = (1 - alpha) * guess + alpha * row
        slope = (1 - beta) * 0.9 * slope + beta * (fresh - level)
        level = fresh
    return loss / Y.size


def test_sums_over_the_steps_are_one_sum_and_give_the_gradient(monkeypatch):
    Y = numpy.cumsum(RNG.standard_normal((30, 4)), axis=0)
    a, b = numpy.array(0.3), numpy.array(-0.7)
    vg = cr.value_and_grad(holt, argnums=(0, 1))
    jvg = cr.jit(vg, backend="numpy")
    (value, grads), (jvalue, jgrads) = vg(a, b, Y), jvg(a, b, Y)
    src = jvg.source(a, b, Y)
    monkeypatch.setattr(jit_module, "merge_sums", lambda prog: prog)
    unmerged = cr.jit(vg, backend="numpy").source(a, b, Y)
    assert src.count("numpy.add.reduce(") < unmerged.count("numpy.add.reduce(") - 50
    numpy.testing.assert_allclose(jvalue, value, rtol=1e-13)
    for k, (g, jg) in enumerate(zip(grads, jgrads)):
        numpy.testing.assert_allclose(jg, g, rtol=1e-11)
        p = (a, b)[k]

        def f(x, k=k):
            return holt(*((x, b) if k == 0 else (a, x)), Y)

        numpy.testing.assert_allclose(jg, fd_grad(f, p), rtol=1e-6)


def test_a_bias_added_at_every_step():
    params, X, T = _data(numpy.float64)
    bias = RNG.standard_normal(6) * 0.1

    def loss(Wx, Wh, bias, X, T):
        h = numpy.zeros((X.shape[1], 6))
        total = 0.0
        for t in range(X.shape[0]):
            h = numpy.tanh(X[t] @ Wx + h @ Wh + bias)
            total = total - (h * T[:, :1]).sum() + 0.1 * (h * h).sum()
        return total

    vg = cr.value_and_grad(loss, argnums=(0, 1, 2))
    args = (params[0], params[1], bias, X, T)
    (value, grads), (jvalue, jgrads) = vg(*args), cr.jit(vg, backend="numpy")(*args)
    assert "concatenate" in cr.jit(vg, backend="numpy").source(*args)
    numpy.testing.assert_allclose(jvalue, value, rtol=1e-13)
    for g, jg in zip(grads, jgrads):
        numpy.testing.assert_allclose(jg, g, rtol=1e-11, atol=1e-13)
    numpy.testing.assert_allclose(
        jgrads[2], fd_grad(lambda c: loss(params[0], params[1], c, X, T), bias), rtol=1e-6
    )


def test_terms_of_other_shapes_broadcast_in_the_merged_sum():
    # scalar terms (sums of 1-D rows) beside vector ones (sums of 2-D) in one running total
    X, Z = RNG.standard_normal((6, 5, 4)), RNG.standard_normal((6, 5))

    def f(c, d):
        tot = (d * Z[0]).sum(0) + (d * d).sum(0)
        for t in range(6):
            tot = tot + (c * X[t]).sum(0) - (d * Z[t]).sum(0)
        return (tot * tot).sum()

    c, d = RNG.standard_normal(4), RNG.standard_normal(5)
    vg = cr.value_and_grad(f, argnums=(0, 1))
    (value, grads), (jvalue, jgrads) = vg(c, d), cr.jit(vg, backend="numpy")(c, d)
    assert "concatenate" in cr.jit(vg, backend="numpy").source(c, d)
    numpy.testing.assert_allclose(jvalue, value, rtol=1e-12)
    for k, (g, jg) in enumerate(zip(grads, jgrads)):
        numpy.testing.assert_allclose(jg, g, rtol=1e-11)
        p = (c, d)[k]
        numpy.testing.assert_allclose(
            jg, fd_grad(lambda x, k=k: f(*((x, d) if k == 0 else (c, x))), p), rtol=1e-6
        )
