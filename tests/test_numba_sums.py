"""jit(backend="numba") sums floats in NumPy's pairwise order (eight running sums in steps of
eight, halves of long rows added as NumPy's recursion adds them): its sums are NumPy's, bit for
bit, over rows of every length and whole arrays, of arrays and of fused expressions, negated or
not; integers and booleans are summed exactly.  Row constants in a fused loop are computed once
per row, with the same bits."""

from __future__ import annotations

import warnings

import numpy
import pytest

pytest.importorskip("numba")

import chainrule as cr  # noqa: E402

RNG = numpy.random.default_rng(11)
LENGTHS = [1, 5, 7, 8, 9, 16, 23, 100, 128, 129, 136, 300, 1000, 4099]


def _numba(f, *args, tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    g = cr.jit(f, backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the NumPy backend would warn
        out = g(*args)
    return g, out


def _same_bits(a, b):
    a, b = numpy.asarray(a), numpy.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), numpy.max(numpy.abs(a.astype(float) - b))


def _wide(shape, dtype):
    # magnitudes over six decades: the order of the additions shows in the last bits
    x = RNG.standard_normal(shape) * 10.0 ** RNG.uniform(-3, 3, shape)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_row_and_whole_sums_are_numpys(dtype, tmp_path, monkeypatch):
    def f(x):
        return x.sum(axis=1), x.sum(), x.mean(axis=-1), (-x).sum(axis=1), x.mean()

    for m in LENGTHS:
        x = _wide((3, m), dtype)
        x[0, 0] = -0.0  # (a signed zero first)
        _, got = _numba(f, x, tmp_path=tmp_path / str(m), monkeypatch=monkeypatch)
        want = (x.sum(axis=1), x.sum(), x.mean(axis=-1), (-x).sum(axis=1), x.mean())
        for a, b in zip(got, want):
            _same_bits(a, b)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_sums_of_fused_expressions_are_numpys(dtype, tmp_path, monkeypatch):
    def f(x, c):
        d = x[:, None, :] - c[None, :, :]
        return (d * d).sum(axis=2), (d * d * 0.5 + d).sum(axis=(1, 2)), -(d * 3.0).sum(axis=2)

    for m in (3, 8, 20, 130, 700):
        x, c = _wide((6, m), dtype), _wide((4, m), dtype)
        g, got = _numba(f, x, c, tmp_path=tmp_path / str(m), monkeypatch=monkeypatch)
        assert "def _fz" in g.source(x, c)  # the sums are loops over the expressions
        d = x[:, None, :] - c[None, :, :]
        want = ((d * d).sum(axis=2), (d * d * 0.5 + d).sum(axis=(1, 2)), -(d * 3.0).sum(axis=2))
        for a, b in zip(got, want):
            _same_bits(a, b)


def test_integer_and_boolean_sums_are_exact(tmp_path, monkeypatch):
    def f(x, k):
        return (x > 0).sum(axis=1), k.sum(axis=1)

    x = RNG.standard_normal((5, 300))
    k = RNG.integers(-(2**40), 2**40, (5, 300))
    _, (pos, ks) = _numba(f, x, k, tmp_path=tmp_path, monkeypatch=monkeypatch)
    assert (numpy.asarray(pos) == (x > 0).sum(axis=1)).all()
    assert (numpy.asarray(ks) == k.sum(axis=1)).all()


def test_pairwise_sums_are_more_accurate_than_one_running_sum(tmp_path, monkeypatch):
    # 2**20 float32 values of 0.1: one running sum drifts by percents; NumPy's order by ~1e-7
    x = numpy.full(2**20, 0.1, numpy.float32)
    _, got = _numba(lambda x: x.sum(), x, tmp_path=tmp_path, monkeypatch=monkeypatch)
    assert abs(float(got) - 0.1 * 2**20) / (0.1 * 2**20) < 1e-5
    _same_bits(got, x.sum())


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_row_constants_of_a_fused_loop_are_computed_once_a_row(dtype, tmp_path, monkeypatch):
    def f(x, s, t):
        # s[:, None] / (2 * t[:, None]) / 128 is the same for a whole row
        return s[:, None] / (2 * t[:, None]) / 128 * (2 * x) + (s[:, None] * s[:, None] + 1) * x

    x, s, t = _wide((40, 64), dtype), _wide(40, dtype), _wide(40, dtype)
    g, got = _numba(f, x, s, t, tmp_path=tmp_path, monkeypatch=monkeypatch)
    source = g.source(x, s, t)
    assert "h0 = " in source and "h1 = " in source  # taken out of the inner loop
    _same_bits(got, f(x, s, t))


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_linear_layer_on_a_stack_is_one_product_each_way(dtype, tmp_path, monkeypatch):
    # (batch, seq, features) @ W and W's gradient, mT(h) @ g summed over the batch: one
    # numpy.dot over the stack's rows each (no product per matrix, no copies of W)
    def loss(W, V, h):
        z = numpy.tanh(h @ W) @ V
        return (z * z).sum()

    h = RNG.standard_normal((4, 12, 8)).astype(dtype)
    W = (RNG.standard_normal((8, 16)) / 3).astype(dtype)
    V = (RNG.standard_normal((16, 5)) / 4).astype(dtype)
    f = cr.value_and_grad(loss, argnums=(0, 1))
    g, (value, grads) = _numba(f, W, V, h, tmp_path=tmp_path, monkeypatch=monkeypatch)
    kernel = g.source(W, V, h).split("def kernel")[1]
    assert "_bmm" not in kernel and "broadcast_to" not in kernel
    assert "ascontiguousarray" not in kernel  # mT(h) is read as the transpose of a reshape
    # against finite differences in float64
    h64, W64, V64 = (a.astype(numpy.float64) for a in (h, W, V))
    tol = 1e-6 if dtype == numpy.float64 else 2e-3
    for k, p in enumerate((W64, V64)):
        num = numpy.zeros_like(p)
        for i in numpy.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = loss(W64, V64, h64)
            p[i] = old - 1e-6
            down = loss(W64, V64, h64)
            p[i] = old
            num[i] = (up - down) / 2e-6
        scale = numpy.abs(num).max()
        assert numpy.abs(numpy.asarray(grads[k]) - num).max() <= tol * scale
    assert abs(float(value) - loss(W64, V64, h64)) <= tol * abs(loss(W64, V64, h64))
