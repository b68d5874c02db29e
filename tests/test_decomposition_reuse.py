"""The last few decompositions (eigh, svd, qr, eig) are reused by the rules that ask for them
again (engine.primitives._Recent): values from NumPy's own call on the current bits, gradients
against central finite differences."""

from __future__ import annotations

import gc

import numpy
import pytest

import chainrule as cr
from chainrule.engine import factors
from chainrule.engine import primitives as P

RNG = numpy.random.default_rng(21)
N = 24  # above primitives.RECENT_MIN_ORDER


@pytest.fixture
def counted(monkeypatch):
    """numpy.linalg.eigh and svd, counting their calls on arrays (a call on a tensor is the
    user's, which chainrule answers)."""
    calls = {"eigh": 0, "svd": 0}
    for name in calls:
        real = getattr(numpy.linalg, name)

        def counting(*a, _real=real, _name=name, **k):
            calls[_name] += type(a[0]) is numpy.ndarray
            return _real(*a, **k)

        monkeypatch.setattr(numpy.linalg, name, counting)
    monkeypatch.setattr(P._RECENT, "entries", type(P._RECENT.entries)())
    return calls


def _sym(n=N):
    a = RNG.standard_normal((n, n))
    return a + a.T


def _fd(f, x, h=1e-6):
    d = RNG.standard_normal(x.shape)
    return (f(x + h * d) - f(x - h * d)) / (2 * h), d


def test_the_eigenvalues_gradient_reuses_the_forward_eigh(counted):
    a = _sym()
    weights = numpy.arange(1.0, N + 1)

    def f(x):
        return (numpy.linalg.eigh(x @ x.T)[0] * weights).sum()

    g = cr.grad(f)(a)
    assert counted["eigh"] == 1
    fd, d = _fd(f, a)
    numpy.testing.assert_allclose((g * d).sum(), fd, rtol=1e-6)


def test_the_singular_values_gradient_reuses_the_forward_svd(counted):
    a = RNG.standard_normal((N + 6, N))

    def f(x):
        u, s, vh = numpy.linalg.svd(x, full_matrices=False)
        return (s * s * s).sum() + (u[:, 0] ** 2 * numpy.arange(N + 6.0)).sum()

    g = cr.grad(f)(a)
    assert counted["svd"] == 2  # the forward's: U and Vh by one call, S by the values-only one
    fd, d = _fd(f, a)
    numpy.testing.assert_allclose((g * d).sum(), fd, rtol=1e-6)


def test_a_matrix_written_in_place_is_decomposed_again(counted):
    a = _sym()
    first = P.eighvals.fun(a)
    a[3, 5] += 1.0  # the same array object, other values
    a[5, 3] += 1.0
    got = P.eigvecsh.fun(a)
    assert counted["eigh"] == 2
    want_w, want_v = numpy.linalg.eigh(a)
    numpy.testing.assert_array_equal(got, want_v)
    assert not numpy.array_equal(first, want_w)


def test_what_is_handed_out_is_a_new_array_each_time(counted):
    a = _sym()
    v1 = P.eigvecsh.fun(a)
    v1[...] = 0.0  # a caller writing over its result
    v2 = P.eigvecsh.fun(a)
    assert counted["eigh"] == 1
    assert v2 is not v1
    numpy.testing.assert_array_equal(v2, numpy.linalg.eigh(a)[1])


def test_another_array_with_other_bits_in_the_same_memory_is_not_mistaken(counted):
    buf = _sym()
    view = buf[:]
    w1 = P.eighvals.fun(view)
    del view
    gc.collect()
    buf[:] = _sym()  # the same memory, shape and strides: another matrix
    w2 = P.eighvals.fun(buf[:])
    numpy.testing.assert_array_equal(w2, numpy.linalg.eigh(buf)[0])
    assert not numpy.array_equal(w1, w2)


def test_entries_are_bounded_and_leave_with_their_array():
    entries = P._RECENT.entries
    entries.clear()
    kept = [_sym() for _ in range(P.RECENT_ENTRIES + 3)]
    for a in kept:
        P.eighvals.fun(a)
    assert len(entries) == P.RECENT_ENTRIES
    del kept, a
    gc.collect()
    assert len(entries) == 0


def test_small_and_odd_arrays_are_not_kept():
    entries = P._RECENT.entries
    entries.clear()
    small = _sym(P.RECENT_MIN_ORDER - 1)
    whole = numpy.arange(N * N).reshape(N, N) % 7  # integers: NumPy's call, not kept
    kept = _sym()
    for a in (small, kept):
        P.eighvals.fun(a)
    P._svd(whole, False)
    assert list(entries) and len(entries) == 1
    assert next(iter(entries))[2] == factors.array_key(kept)


@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
def test_qr_results_through_the_memo_are_numpys(mode):
    a = RNG.standard_normal((N + 4, N))
    first = P._qr(a, mode)
    again = P._qr(a, mode)
    want = numpy.linalg.qr(a, mode=mode)
    for got in (first, again):
        if mode == "r":
            numpy.testing.assert_array_equal(got, want)
        else:
            for g, w in zip(got, want):
                numpy.testing.assert_array_equal(g, w)


def test_jitted_code_decomposes_once_and_gives_the_eager_bits(counted):
    a = _sym()
    weights = numpy.arange(1.0, N + 1)

    def f(x):
        w, v = numpy.linalg.eigh(x @ x.T)
        return (w * weights).sum() + (v[:, -1] ** 4).sum()

    eager = cr.value_and_grad(f)(a)
    step = cr.jit(cr.value_and_grad(f), backend="numpy")
    step(a)  # compiles
    counted["eigh"] = 0
    got = step(a)
    assert counted["eigh"] == 1
    assert got[0] == eager[0]
    numpy.testing.assert_array_equal(got[1], eager[1])
    fd, d = _fd(f, a)
    numpy.testing.assert_allclose((got[1] * d).sum(), fd, rtol=1e-5)


def test_long_lived_matrices_decomposed_again_and_again_collect_no_callbacks():
    import weakref

    P._RECENT.entries.clear()
    mats = [_sym() for _ in range(P.RECENT_ENTRIES + 2)]  # more than are kept: each pushed out
    for _ in range(10):
        for a in mats:
            P.eighvals.fun(a)
    assert max(weakref.getweakrefcount(a) for a in mats) <= 1
    assert len(P._RECENT.entries) == P.RECENT_ENTRIES
