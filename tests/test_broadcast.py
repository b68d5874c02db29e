"""engine.broadcast.binary: elementwise arithmetic of arrays broadcast over short rows, by other
routes than NumPy's loop; every value is checked against NumPy's own ufunc, bit for bit."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule.engine.broadcast import COMPARISONS, COPY_FIRST, NONE, PER_ENTRY, binary, route

UFUNCS = [numpy.add, numpy.subtract, numpy.multiply, numpy.divide]

# (x shape, y shape, the route binary takes)
CASES = [
    ((200, 1, 3), (1, 200, 3), PER_ENTRY),  # pairwise differences in 3-D
    ((300, 1, 2), (1, 40, 2), PER_ENTRY),
    ((40, 1, 2), (300, 2), PER_ENTRY),  # y has fewer dimensions
    ((200, 200, 1), (200, 200, 3), PER_ENTRY),  # a gradient spread over the coordinates
    ((64, 8, 8, 2, 8, 1), (64, 8, 8, 2, 8, 2), PER_ENTRY),  # a 2 x 2 pooling window's entries:
    # the axes before the last are whole in both, so each entry's loop runs over all of them
    ((64, 8, 8, 1, 8, 1), (64, 8, 8, 2, 8, 1), NONE),  # broadcast in the middle: loops of 8
    ((2000, 1, 8), (1, 16, 8), COPY_FIRST),  # 8 features: the short operand copied first
    ((1, 16, 8), (2000, 1, 8), COPY_FIRST),  # ... whichever side it is on
    ((64, 1, 5), (1, 64, 5), COPY_FIRST),
    ((500, 40, 1), (500, 40, 12), NONE),  # a column: its copy is as slow as NumPy's loop
    ((50, 1, 2, 5), (1, 30, 2, 5), NONE),  # NumPy's loop runs over 10
    ((50, 1, 4, 5), (1, 30, 4, 5), NONE),  # NumPy's loop runs over 20
    ((2000, 16, 16), (2000, 1, 16), NONE),  # rows of 16: NumPy's loop is long enough
    ((10, 1, 3), (1, 10, 3), NONE),  # small
    ((3000, 8), (8,), NONE),  # a matrix and a row: NumPy's loop costs 1 ns an element
    ((10000, 3), (3,), NONE),
    ((64, 3), (64, 3), NONE),
]


def _values(shape, dtype, rng):
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3, shape)
    flat = x.reshape(-1)
    if flat.size > 4:
        flat[:4] = [numpy.nan, numpy.inf, -0.0, 0.0]  # special values where they land
    return x.astype(dtype)


@pytest.mark.parametrize("xs,ys,how", CASES)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("ufunc", UFUNCS)
def test_binary_is_the_ufunc_bit_for_bit(xs, ys, how, dtype, ufunc):
    assert route(xs, ys) == how
    rng = numpy.random.default_rng(len(xs) + xs[0])
    x, y = _values(xs, dtype, rng), _values(ys, dtype, rng)
    with numpy.errstate(all="ignore"):
        got, want = binary(ufunc, x, y), ufunc(x, y)
    assert got.dtype == want.dtype
    numpy.testing.assert_array_equal(got, want, strict=True)
    assert (numpy.signbit(got) == numpy.signbit(want)).all()  # signed zeros and NaN signs


@pytest.mark.parametrize("xs,ys,how", [c for c in CASES if c[2] != NONE])
@pytest.mark.parametrize("into", [0, 1])
def test_binary_into_an_operand(xs, ys, how, into):
    # jit writes into a temporary that dies here: the full-shape operand
    rng = numpy.random.default_rng(7)
    shape = numpy.broadcast_shapes(xs, ys)
    x, y = _values(xs, numpy.float64, rng), _values(ys, numpy.float64, rng)
    full = [x, y]
    full[into] = _values(shape, numpy.float64, rng)
    with numpy.errstate(all="ignore"):
        want = numpy.subtract(*full)
        out = full[into]
        got = binary(numpy.subtract, full[0], full[1], out)
    assert got is out
    numpy.testing.assert_array_equal(got, want, strict=True)


def test_other_operands_are_the_ufuncs_own_call():
    x = numpy.arange(3000.0).reshape(1000, 1, 3)
    y = numpy.ones((1, 50, 3))
    assert binary(numpy.subtract, x, 1.0).shape == x.shape  # a scalar
    ints = binary(numpy.subtract, x.astype(int), y.astype(int))  # integers: NumPy's route
    numpy.testing.assert_array_equal(ints, x.astype(int) - y.astype(int))
    mixed = binary(numpy.subtract, x.astype(numpy.float32), y)  # mixed dtypes: NumPy's rules
    assert mixed.dtype == numpy.float64
    strided = numpy.ones((1000, 2, 3))[:, :1, :]  # not contiguous
    numpy.testing.assert_array_equal(binary(numpy.subtract, strided, y), strided - y)
    with pytest.raises(ValueError):
        binary(numpy.subtract, numpy.ones((200, 1, 3)), numpy.ones((1, 200, 4)))


def _pairwise_energy(P, Q):
    d = P[:, None, :] - Q[None, :, :]
    return ((d * d).sum(axis=-1) * 0.5).sum()


def test_gradient_of_pairwise_differences_eager_and_jit():
    # sum_ij |p_i - q_j|^2 / 2: the gradient in P is m p_i - sum_j q_j, in Q n q_j - sum_i p_i
    rng = numpy.random.default_rng(3)
    P, Q = rng.standard_normal((300, 3)), rng.standard_normal((200, 3))
    want_p = Q.shape[0] * P - Q.sum(axis=0)
    want_q = P.shape[0] * Q - P.sum(axis=0)
    vg = cr.value_and_grad(_pairwise_energy, argnums=(0, 1))
    value, (gp, gq) = vg(P, Q)
    numpy.testing.assert_allclose(gp, want_p, rtol=1e-11, atol=1e-9)
    numpy.testing.assert_allclose(gq, want_q, rtol=1e-11, atol=1e-9)
    d = P[:, None, :] - Q[None, :, :]
    numpy.testing.assert_allclose(value, 0.5 * (d * d).sum(), rtol=1e-12)
    compiled = cr.jit(vg, backend="numpy")
    assert "_binary(numpy.subtract" in compiled.source(P, Q)
    cvalue, (cp, cq) = compiled(P, Q)
    assert cvalue == value  # the eager path's routes: the same bits
    numpy.testing.assert_array_equal(cp, gp)
    numpy.testing.assert_array_equal(cq, gq)


def test_random_broadcasts_are_the_ufunc_bit_for_bit():
    # shapes drawn at random (3-4 axes, each operand broadcast along a random subset, sometimes
    # with fewer dimensions), so that every route and its refusals meet shapes nobody chose
    taken = {NONE: 0, PER_ENTRY: 0, COPY_FIRST: 0}
    for seed in range(60):
        rng = numpy.random.default_rng(seed)
        nd = int(rng.integers(3, 5))
        lead = [int(n) for n in rng.choice([1, 20, 40, 90], nd - 1)]
        shape = tuple(lead) + (int(rng.choice([2, 3, 4, 5, 8, 17])),)
        xs = tuple(n if rng.random() < 0.5 else 1 for n in shape)
        ys = tuple(n if rng.random() < 0.5 else 1 for n in shape)
        ys = ys[int(rng.integers(0, 2)) :]
        taken[route(xs, ys)] += 1
        dtype = [numpy.float32, numpy.float64][seed % 2]
        x, y = _values(xs, dtype, rng), _values(ys, dtype, rng)
        for ufunc in UFUNCS:
            with numpy.errstate(all="ignore"):
                got, want = binary(ufunc, x, y), ufunc(x, y)
            numpy.testing.assert_array_equal(got, want, strict=True)
            assert (numpy.signbit(got) == numpy.signbit(want)).all()
    assert taken[PER_ENTRY] and taken[COPY_FIRST]  # both routes were exercised


@pytest.mark.parametrize("xs,ys,how", [c for c in CASES if c[2] == PER_ENTRY])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_comparisons_per_entry_are_the_ufunc(xs, ys, how, dtype):
    # x == max over a window: small whole numbers, so that many pairs are equal, and NaN,
    # infinities and signed zeros where they land
    rng = numpy.random.default_rng(11)
    x, y = (rng.integers(-2, 3, s).astype(dtype) for s in (xs, ys))
    for a in (x, y):
        a.reshape(-1)[:4] = [numpy.nan, numpy.inf, -0.0, 0.0]
    for ufunc in sorted(COMPARISONS, key=lambda u: u.__name__):
        with numpy.errstate(all="ignore"):
            got, want = binary(ufunc, x, y), ufunc(x, y)
        assert got.dtype == numpy.bool_
        numpy.testing.assert_array_equal(got, want, strict=True)
    assert binary(numpy.equal, x, y).sum() > 0  # some equal pairs were compared


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_float_times_a_broadcast_mask_is_numpys_product(dtype):
    # the gradient through a max-pooling window: a share per window times the hits, with the
    # special values NumPy's own cast of the mask gives (inf * False is NaN, -0 stays -0)
    rng = numpy.random.default_rng(12)
    share = _values((64, 8, 8, 2, 8, 1), dtype, rng)
    hits = rng.random((64, 8, 8, 2, 8, 2)) < 0.5
    for a, b in ((share, hits), (hits, share)):
        with numpy.errstate(all="ignore"):
            got, want = binary(numpy.multiply, a, b), numpy.multiply(a, b)
        assert got.dtype == want.dtype == dtype
        numpy.testing.assert_array_equal(got, want, strict=True)
        assert (numpy.signbit(got) == numpy.signbit(want)).all()


def _pooled(W, X):
    H = numpy.maximum(X @ W, 0).reshape(16, 4, 16, 16)
    P = H.reshape(16, 4, 8, 2, 8, 2).max(axis=5).max(axis=3)
    return (P * P).sum()


def test_max_pooling_compiles_to_per_entry_steps_with_the_eager_gradient():
    rng = numpy.random.default_rng(13)
    X = rng.standard_normal((16, 8)).astype(numpy.float32)
    W = rng.standard_normal((8, 1024)).astype(numpy.float32)
    W[:, 1::2] = W[:, ::2]  # ties inside the windows: the gradient is shared between them
    vg = cr.value_and_grad(_pooled)
    value, grad = vg(W, X)
    compiled = cr.jit(vg, backend="numpy")
    text = compiled.source(W, X)
    assert "_binary(numpy.equal" in text and "_binary(numpy.multiply" in text
    cvalue, cgrad = compiled(W, X)
    assert cvalue == value
    numpy.testing.assert_allclose(cgrad, grad, rtol=1e-6, atol=1e-6)
    # the gradient by hand: each window's maximum gets 2 * P, split evenly among its ties
    H = numpy.maximum(X @ W, 0).reshape(16, 4, 8, 2, 8, 2)
    P = H.max(axis=(3, 5), keepdims=True)
    hit = H == P
    dH = (2 * P / hit.sum(axis=(3, 5), keepdims=True) * hit).reshape(16, 1024)
    want = X.T @ (dH * (X @ W > 0))
    numpy.testing.assert_allclose(cgrad, want, rtol=1e-5, atol=1e-5)


def test_routes_are_remembered_by_both_shapes(monkeypatch):
    # route() keeps its answers in a table that starts afresh when full: what it answers must
    # be what the computation answers, for each pair of shapes, in any order of asking
    from chainrule.engine import broadcast

    monkeypatch.setattr(broadcast, "_ROUTES", {})
    monkeypatch.setattr(broadcast, "_MAX_ROUTES", 7)
    rng = numpy.random.default_rng(5)
    pairs = []
    for _ in range(60):
        shape = tuple(int(n) for n in rng.choice([1, 2, 3, 8, 16, 40], rng.integers(1, 5)))
        other = tuple(n if rng.random() < 0.5 else 1 for n in shape)
        pairs += [(shape, other), (other, shape)]
    for x, y in (((2000, 1, 8), (1, 16, 8)), ((200, 1, 3), (1, 200, 3))):
        pairs += [(x, y), (x, x), (y, x), (y, y)]  # one shape, other answers
    want = [broadcast._route(a, b) for a, b in pairs]
    assert len(set(want)) == 3  # every route appears
    for order in (range(len(pairs)), reversed(range(len(pairs)))):
        for k in order:
            assert broadcast.route(*pairs[k]) == want[k]
