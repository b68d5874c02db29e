"""The gradient of reading by integer arrays (``E[tokens]``, ``U[users]``, ``logp[rows, y]``):
``engine.scatter.add_at`` against ``numpy.add.at`` bit for bit, its fall-backs, and gradients
against sums written out by hand."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule.engine import scatter
from chainrule.engine.scatter import add_at

RNG = numpy.random.default_rng(11)


@pytest.fixture(params=["numpy", "numba"])
def route(request, monkeypatch):
    """Each bit-for-bit test twice: through NumPy's routes (Numba's loop switched off) and
    through Numba's loop (taken from the smallest sizes on; skipped without Numba)."""
    if request.param == "numpy":
        monkeypatch.setattr(scatter, "_LOOP", [None])
    else:
        if scatter.row_loop() is None:
            pytest.skip("Numba is not installed")
        monkeypatch.setattr(scatter, "NUMBA_MIN_SIZE", scatter.MIN_SIZE)
    return request.param


def _both(shape, index, g, dtype=numpy.float64):
    base = RNG.standard_normal(shape).astype(dtype)
    want = base.copy()
    numpy.add.at(want, index, g)
    got = base.copy()
    add_at(got, index, g)
    return got, want


CASES = [
    # (out shape, index arrays' shapes and ranges) -- rows, rows by a 2-D index, elements by
    # one array per axis (broadcast against each other), a 3-D array by one and by two arrays
    ((500, 32), [((4000,), 500)]),
    ((300, 16), [((40, 30), 300)]),
    ((64, 40), [((2000,), 64), ((2000,), 40)]),
    ((64, 40), [((40, 1), 64), ((1, 50), 40)]),
    ((30, 20, 8), [((700,), 30)]),
    ((30, 20, 8), [((300,), 30), ((300,), 20)]),
    ((7, 5000), [((3,), 7)]),  # few rows, each longer than a chunk
]


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.complex128, numpy.int64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_add_at_is_numpy_add_at_bit_for_bit(case, dtype, route):
    shape, spec = CASES[case]
    # repeats on purpose (few distinct rows), negative indices from the end too
    index = tuple(RNG.integers(-n, n, s) for s, n in spec)
    bshape = numpy.broadcast_shapes(*(i.shape for i in index))
    g = (RNG.standard_normal(bshape + shape[len(index) :]) * 100).astype(dtype)
    assert g.size >= scatter.MIN_SIZE  # the fast route is taken
    got, want = _both(shape, index if len(index) > 1 else index[0], g, dtype)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.complex64, numpy.int32])
@pytest.mark.parametrize(
    "nrows, reads, width",
    [
        (5000, 2560, 64),  # most rows read once: rounds of distinct rows
        (40, 60, 32),  # about half distinct
        (3000, 3000, 33),  # some rows read more than MAX_ROUNDS times (below)
        (10, 4000, 40),  # few distinct rows: add.at's loop
    ],
)
def test_a_gradient_into_zeros_is_numpy_add_at_bit_for_bit(nrows, reads, width, dtype, route):
    # ``fresh``: the rows go in rounds of first, second, ... occurrences; the order of the terms
    # at each position, the sign of a zero, infinities and NaNs must all be add.at's
    rows = RNG.integers(0, nrows, reads)
    rows[:200] = 7  # one row read 200 times among the rest
    g = (RNG.standard_normal((reads, width)) * 1e3).astype(dtype)
    if dtype != numpy.int32:
        g[RNG.random(g.shape) < 0.05] = -0.0
        g[3, :3] = [numpy.inf, -numpy.inf, numpy.nan]
    want = numpy.zeros((nrows, width), dtype)
    numpy.add.at(want, rows, g)
    got = numpy.zeros((nrows, width), dtype)
    add_at(got, rows, g, fresh=True)
    assert got.tobytes() == want.tobytes()


def test_the_order_of_the_terms_is_numpy_add_ats(route):
    # terms of very different sizes at one position: any other order rounds differently
    g = numpy.array([1e16, 1.0, -1e16, 1.0] * 1200)[:, None] * numpy.ones((1, 4))
    index = numpy.zeros(4800, dtype=numpy.intp)
    got, want = _both((3, 4), index, g)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize(
    "index, g",
    [
        ((slice(None), RNG.integers(0, 40, 60)), RNG.standard_normal((50, 60))),  # a slice first
        (RNG.integers(0, 50, 2000), 1.5),  # a scalar g: broadcast
        (RNG.integers(0, 50, 100), RNG.standard_normal((1, 40))),  # g broadcast along rows
        (RNG.random(50) > 0.5, RNG.standard_normal(40)),  # a boolean mask
        (RNG.integers(0, 50, 2000), RNG.standard_normal((2000, 40)).astype(numpy.float32)),
    ],
)
def test_other_indices_and_values_are_numpy_add_at(index, g):
    got, want = _both((50, 40), index, g)
    assert got.tobytes() == want.tobytes()


def test_an_index_out_of_range_raises_numpys_error():
    out = numpy.zeros((50, 40))
    for bad in (numpy.full(2000, 50), numpy.full(2000, -51)):
        with pytest.raises(IndexError):
            add_at(out, bad, numpy.ones((2000, 40)))
    # one past the end of the last axis would be the next row's first element if not refused
    for bad in (numpy.full(2000, 40), numpy.full(2000, -41)):
        with pytest.raises(IndexError):
            add_at(out, (numpy.zeros(2000, dtype=int), bad), numpy.ones(2000))
    assert not out.any()


def test_gradient_of_an_embedding_read_against_a_sum_by_hand():
    E = RNG.standard_normal((50, 32))
    idx = RNG.integers(0, 50, (20, 10))  # 200 reads of 50 rows: repeats
    W = RNG.standard_normal((20, 10, 32))
    got = cr.grad(lambda E: (E[idx] * W).sum())(E)
    want = numpy.zeros_like(E)
    for k in numpy.ndindex(idx.shape):  # every read's weights added to its row
        want[idx[k]] += W[k]
    numpy.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


def test_gradient_of_a_factorisation_against_a_sum_by_hand():
    U, V = RNG.standard_normal((40, 8)), RNG.standard_normal((30, 8))
    ui, vi, r = RNG.integers(0, 40, 600), RNG.integers(0, 30, 600), RNG.standard_normal(600)

    def loss(U, V):
        return (((U[ui] * V[vi]).sum(axis=1) - r) ** 2).sum()

    gU, gV = cr.grad(loss, argnums=(0, 1))(U, V)
    wU, wV = numpy.zeros_like(U), numpy.zeros_like(V)
    for k in range(600):
        e = 2 * (U[ui[k]] @ V[vi[k]] - r[k])
        wU[ui[k]] += e * V[vi[k]]
        wV[vi[k]] += e * U[ui[k]]
    numpy.testing.assert_allclose(gU, wU, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gV, wV, rtol=1e-12, atol=1e-12)
    # jit's code and vmap reach the same function: the eager gradients bit for bit
    jU, jV = cr.jit(cr.grad(loss, argnums=(0, 1)))(U, V)
    assert jU.tobytes() == gU.tobytes() and jV.tobytes() == gV.tobytes()
    Us = numpy.stack([U, 2 * U])
    vU = cr.vmap(cr.grad(lambda U: loss(U, V)))(Us)
    assert vU[0].tobytes() == gU.tobytes()


def test_pairs_of_index_arrays_with_a_label_gather():
    # logp[rows, y] (the cross-entropy gather), above the size where the fast route starts
    logits = RNG.standard_normal((2048, 10))
    y = RNG.integers(0, 10, 2048)
    rows = numpy.arange(2048)

    def loss(z):
        return -(z[rows, y] * 1.5).sum() + (z[rows, y] ** 2).sum()

    z = logits
    got = cr.grad(loss)(z)
    want = numpy.zeros_like(z)
    want[rows, y] = -1.5 + 2 * z[rows, y]  # distinct positions: one term each
    numpy.testing.assert_allclose(got, want, rtol=1e-15)


TAKE_INDICES = [
    numpy.array([3, 0, 3, 9, -1, -10]),  # repeats and negative positions
    numpy.array([[1, 2], [2, 1], [0, 0]]),  # a 2-D index: a (3, 2, ...) result
    numpy.array([5], dtype=numpy.uint8),
    (numpy.array([4, 1]), slice(None)),  # followed by a full slice
    (numpy.array([4, 1]), slice(None), slice(None)),
    numpy.array(3),  # 0-d: NumPy's integer index (a view), left to NumPy
    (numpy.array([4, 1]), 2),  # not whole rows: NumPy
    numpy.array([True] * 10),  # a mask: NumPy
]


@pytest.mark.parametrize("index", TAKE_INDICES, ids=range(len(TAKE_INDICES)))
def test_take_rows_is_fancy_indexing(index):
    x = RNG.standard_normal((10, 4, 3))
    got, want = scatter.take_rows(x, index), x[index]
    assert got.shape == want.shape and got.dtype == want.dtype
    numpy.testing.assert_array_equal(got, want)
    assert numpy.shares_memory(got, x) == numpy.shares_memory(want, x)


def test_take_rows_raises_numpys_error_out_of_range():
    x = numpy.zeros((5, 2))
    with pytest.raises(IndexError):
        scatter.take_rows(x, numpy.array([0, 5]))
    with pytest.raises(IndexError):
        scatter.take_rows(x, numpy.array([-6]))


def test_rows_read_by_take_eager_and_jit():
    # a factorisation's reads U[i], V[j]: eager (getitem) and jit (gather) read rows by take;
    # the gradient in U is sum over reads of (p - r) * V[j], written out by hand
    rng = numpy.random.default_rng(5)
    U, V = rng.standard_normal((50, 4)), rng.standard_normal((40, 4))
    i, j = rng.integers(-50, 50, 3000), rng.integers(0, 40, 3000)
    r = rng.standard_normal(3000)

    def loss(U, V, i, j, r):
        return (((U[i] * V[j]).sum(axis=1) - r) ** 2).sum() / 2

    want_u = numpy.zeros_like(U)
    e = (U[i] * V[j]).sum(axis=1) - r
    for k in range(3000):
        want_u[i[k]] += e[k] * V[j[k]]
    vg = cr.value_and_grad(loss, argnums=(0, 1))
    _, (gu, _) = vg(U, V, i, j, r)
    numpy.testing.assert_allclose(gu, want_u, rtol=1e-12, atol=1e-12)
    compiled = cr.jit(vg, backend="numpy")
    assert "numpy.take(" in compiled.source(U, V, i, j, r)
    _, (cu, _) = compiled(U, V, i, j, r)
    numpy.testing.assert_array_equal(cu, gu)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_rows_from_a_strided_gradient_are_numpy_add_at_bit_for_bit(dtype, route):
    # g a transposed view and a view of every other column: not C-ordered
    rows = RNG.integers(-60, 60, 3000)
    for g in (
        RNG.standard_normal((24, 3000)).astype(dtype).T,
        RNG.standard_normal((3000, 48)).astype(dtype)[:, ::2],
    ):
        got, want = _both((60, 24), rows, g, dtype)
        assert got.tobytes() == want.tobytes()
