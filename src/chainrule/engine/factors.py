"""One factorisation per matrix, shared by ``solve``, ``slogdet``, ``det`` and ``inv``.

A model that solves with a matrix and takes its log-determinant (a Gaussian process), or
inverts it and takes its determinant, asks LAPACK to factorise the same matrix several times:
NumPy's ``solve``, ``slogdet``, ``det`` and ``inv`` each start with their own LU, and the
gradient rules add more (``solve``'s rule solves with ``A^T``, ``slogdet``'s and ``det``'s read
``A^-T``).  Where SciPy is importable (never a dependency), these primitives' forward functions
(:mod:`chainrule.engine.primitives`) come here instead: the first one factorises ``A`` once
and keeps the factors; the others reuse them.  A real matrix that equals its transpose bit for
bit is tried first by Cholesky (``potrf``, half an LU's work: kernel and covariance matrices);
if it is not positive definite, or for any other matrix, by LU (``getrf``).  From an LU:
``getrs`` (``trans=1`` for ``A^T``), ``getri`` for the inverse, the determinant from the
diagonal of ``U`` and the pivots, as NumPy computes it.  From a Cholesky factor ``A = U^T U``:
``potrs`` (``A^T`` is ``A``), the inverse as ``U^-1 U^-T`` (``U^-1`` by halves through the
matrix product, :func:`_upper_inverse`), the log-determinant ``2 sum(log u_ii)``, the sign
``+1``.  The inverse is kept too.  Since the rules call the primitives,
the eager backward pass, higher-order gradients, ``jit`` (its NumPy backend calls these
functions) and ``vmap`` all share the factors.

Soundness.  An array can change between two calls (a plain array written in place, a tensor
written with ``t[i] = v``), and its memory can be reused by another array once it is freed, so
neither its identity nor its address proves anything about its values.  What does: every entry
keeps a copy of the matrix it factorised, and a lookup compares the array's current bits with
that copy (one pass over ``n^2`` numbers, about 2% of a factorisation at ``n = 300``).  An
array that matches has exactly the values that were factorised, whatever object it is; one that
does not is factorised afresh.  The address only finds the candidate: the entry for ``A`` also
serves ``A``'s transposed view (the rules' ``A^T``), which has the same address with the last
two axes' shape and strides swapped.  An entry lives while the array it was made from does (a
weak reference drops it with the array), and at most :data:`MAX_ENTRIES` entries and
:data:`MAX_BYTES` bytes (but for the newest entry) live per thread, so no large array is kept
for long.  When an entry of one matrix goes, its buffers (the copy, the LU, the inverse) are
kept for the next matrix of its shape and type if they are small (:data:`SPARE_BYTES`): a model
makes a new matrix every step, and fresh memory costs page faults where the allocator has
given the old memory back to the system.  Nothing handed out is ever one of these buffers.

Matrices of order below :data:`MIN_ORDER` (where one NumPy call costs less than the
bookkeeping) are not kept: ``solve`` of one such matrix is one call of SciPy's ``gesv`` (the
routine NumPy calls, without its copies in and out), anything else NumPy's own.  Arrays that
are not plain ``float32``/``float64``/``complex64``/``complex128``
ndarrays, and everything when SciPy is missing go straight to NumPy, unchanged.  Values agree
with NumPy's to rounding: the same algorithm (partial pivoting LU, then triangular solves; the
determinant as ``sign * exp(sum(log|u_ii|))`` accumulated in order), but SciPy's LAPACK build
may block its loops differently from NumPy's, ``inv`` comes from ``getri`` rather than
from solving against the identity, and a symmetric positive definite matrix is factorised by
Cholesky, not LU.

>>> import numpy
>>> a = numpy.array([[4.0, 1.0], [2.0, 3.0]])
>>> solve(a, numpy.array([1.0, 2.0]))
array([0.1, 0.6])
>>> float(slogdet(a)[1]) == float(numpy.log(10.0))
True
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy

from . import triangular

__all__ = [
    "solve",
    "cholesky",
    "inv",
    "det",
    "slogdet",
    "MIN_ORDER",
    "MAX_ENTRIES",
    "MAX_BYTES",
    "SPARE_BYTES",
    "scipy_lapack",
]

# Below this order NumPy's own call is cheaper than the copy, the comparison and the lookup
# (measured: benchmarks/bench_factors.py).
MIN_ORDER = 48
# At most this many factorisations, and (but for the newest) this many bytes of copies,
# factors and inverses, are kept per thread; the oldest go first.
MAX_ENTRIES = 8
MAX_BYTES = 1 << 28

_KINDS = {numpy.dtype(t): p for t, p in (("f4", "s"), ("f8", "d"), ("c8", "c"), ("c16", "z"))}
_UINT = {4: numpy.dtype(numpy.uint32), 8: numpy.dtype(numpy.uint64)}
_LAPACK: list[Any] = []
_LWORK: dict[tuple[str, int], int] = {}


def scipy_lapack() -> Any:
    """``scipy.linalg.lapack`` if SciPy is importable, else ``None`` (looked up once).

    >>> scipy_lapack() is None or hasattr(scipy_lapack(), "dgetrf")
    True
    """
    if not _LAPACK:
        try:
            found: Any = importlib.import_module("scipy.linalg.lapack")
        except ImportError:
            found = None
        _LAPACK.append(found)
    return _LAPACK[0]


class _Entry:
    """The factors of one matrix (or stack of them) and what was derived from them."""

    __slots__ = ("snap", "lus", "chol", "invs", "spare_inv", "ref", "key", "__weakref__")

    def __init__(self, snap: Any, lus: list[Any], key: Any, chol: bool = False) -> None:
        self.snap = snap  # a copy of the matrices factorised: what an array must equal
        # per matrix of the stack: (lu, piv, info); with ``chol``, one matrix: (U, None, 0),
        # its Cholesky factor (A = U^T U)
        self.lus = lus
        self.chol = chol
        self.invs: list[Any] | None = None
        self.spare_inv: Any = None  # a recycled buffer for the inverse (one matrix only)
        self.ref: Any = None
        self.key = key


class _State:
    """One thread's entries, newest last, and spare buffers."""

    __slots__ = ("entries", "spare", "indefinite")

    def __init__(self) -> None:
        self.entries: OrderedDict[Any, _Entry] = OrderedDict()
        # (order, dtype) of symmetric matrices Cholesky refused (not positive definite): LU
        # from the start for matrices like them, not a wasted attempt every time
        self.indefinite: set[Any] = set()
        # the buffers (copy, LU, inverse) of the last dropped entry of one matrix, for the next
        # matrix of its shape and type: a model makes a new matrix every step, and fresh
        # memory costs page faults where the allocator has handed the old back to the system
        self.spare: tuple[Any, Any, Any] | None = None


class _Cache(threading.local):
    def __init__(self) -> None:
        self.state = _State()


_CACHE = _Cache()


def array_key(a: Any) -> Any:
    """Where and how ``a`` lies in memory: its address, shape, strides and dtype (a candidate
    for a lookup, never a proof of its values: :func:`same_bits` is).

    >>> a = numpy.zeros((2, 3))
    >>> array_key(a)[1:]
    ((2, 3), (24, 8), '<f8')
    """
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)


def _swapped_key(a: Any) -> Any:
    # the key of a's transpose (last two axes swapped): the same memory read the other way
    s, t = list(a.shape), list(a.strides)
    s[-1], s[-2], t[-1], t[-2] = s[-2], s[-1], t[-2], t[-1]
    return (a.__array_interface__["data"][0], tuple(s), tuple(t), a.dtype.str)


def same_bits(x: Any, snap: Any) -> bool:
    """Whether ``x`` has exactly the bits of ``snap``, an array of its shape and dtype (NaNs
    and signed zeros included; float32/float64 and their complex types).

    >>> same_bits(numpy.array([0.0, numpy.nan]), numpy.array([-0.0, numpy.nan]))
    False
    """
    if x.dtype.kind == "c":
        return same_bits(x.real, snap.real) and same_bits(x.imag, snap.imag)
    u = _UINT[x.dtype.itemsize]
    return bool((x.view(u) == snap.view(u)).all())


def _usable(a: Any) -> bool:
    return (
        type(a) is numpy.ndarray
        and a.ndim >= 2
        and a.shape[-1] == a.shape[-2] >= MIN_ORDER
        and a.size > 0
        and a.dtype in _KINDS
        and scipy_lapack() is not None
    )


def _lookup(a: Any) -> tuple[_Entry, bool] | None:
    """The entry whose matrices ``a`` equals (``False``) or equals transposed (``True``)."""
    entries = _CACHE.state.entries
    hit = entries.get(array_key(a))
    if hit is not None and hit.snap.shape == a.shape and same_bits(a, hit.snap):
        entries.move_to_end(hit.key)
        return hit, False
    hit = entries.get(_swapped_key(a))
    if (
        hit is not None
        and hit.snap.shape == a.shape
        and same_bits(numpy.swapaxes(a, -1, -2), hit.snap)
    ):
        entries.move_to_end(hit.key)
        return hit, True
    return None


# Buffers of matrices whose copy has at most this many bytes are recycled (larger ones: the
# factorisation's n^3 dwarfs the page faults of fresh memory, and nothing large stays behind).
SPARE_BYTES = 1 << 22


def _retire(cache: _State, entry: _Entry) -> None:
    """``entry`` has left the cache: keep its buffers for the next matrix like it."""
    snap = entry.snap
    if snap.ndim == 2 and snap.nbytes <= SPARE_BYTES:
        # (a Cholesky entry's inverse is a product; its Fortran-ordered U^-1 is the buffer)
        inv = entry.invs[0] if entry.invs is not None and not entry.chol else entry.spare_inv
        cache.spare = (snap, entry.lus[0][0], inv)


def _forget(cache: _State, entry: _Entry) -> Any:
    # (the callback may run in any thread: it touches only this state, and retires the entry
    # only if it is the one that took it out, so no buffer is ever handed out twice)
    def drop(_: Any) -> None:
        if cache.entries.get(entry.key) is entry and cache.entries.pop(entry.key, None) is entry:
            _retire(cache, entry)

    return drop


def _symmetric(a: Any) -> bool:
    """Whether the real matrix ``a`` equals its transpose bit for bit (a few entries first:
    most matrices that are not symmetric are told apart without reading all of them)."""
    corners = a[1, 0] == a[0, 1] and a[-1, 0] == a[0, -1] and a[-1, -2] == a[-2, -1]
    return bool(corners) and same_bits(a, a.T)


def _factorise(a: Any, cache: _State) -> tuple[Any, list[Any], Any, bool]:
    """A copy of ``a``, the factors of each of its matrices, a buffer for the inverse, and
    whether the factors are Cholesky's: a real symmetric positive definite matrix is factorised
    as ``U^T U`` (``potrf``: half the work of an LU), any other by LU (``getrf``).  The spare
    buffers are used where they fit (LAPACK then factorises in place), else new ones."""
    n = a.shape[-1]
    kind = _KINDS[a.dtype]
    lapack = scipy_lapack()
    spare, cache.spare = cache.spare, None
    if spare is not None and (spare[0].shape != a.shape or spare[0].dtype != a.dtype):
        spare = None
    if spare is not None:
        snap, buf, inv = spare
        numpy.copyto(snap, a)
    else:
        snap, buf, inv = numpy.array(a, order="C"), None, None
    if a.ndim == 2 and kind in "sd" and (n, a.dtype) not in cache.indefinite and _symmetric(snap):
        # snap.T is the same matrix, Fortran-ordered: LAPACK reads it without a copy
        u, info = getattr(lapack, kind + "potrf")(
            snap.T if buf is None else _into(buf, snap.T), lower=0, overwrite_a=buf is not None
        )
        if info == 0:
            return snap, [(u, None, 0)], inv, True
        cache.indefinite.add((n, a.dtype))
    getrf = getattr(lapack, kind + "getrf")
    if buf is not None:
        # buf is Fortran-ordered: getrf overwrites it in place
        return snap, [getrf(_into(buf, snap), overwrite_a=1)], inv, False
    return snap, [getrf(m) for m in snap.reshape(-1, n, n)], None, False


def _into(buf: Any, a: Any) -> Any:
    numpy.copyto(buf, a)
    return buf


def _factors(a: Any) -> tuple[_Entry, bool]:
    """The LU factors of ``a`` (an :func:`_usable` array), found or computed and kept."""
    found = _lookup(a)
    if found is not None:
        return found
    cache = _CACHE.state
    snap, lus, spare_inv, chol = _factorise(a, cache)
    entries = cache.entries
    entry = _Entry(snap, lus, array_key(a), chol)
    entry.spare_inv = spare_inv
    entry.ref = weakref.ref(a, _forget(cache, entry))
    stale = entries.pop(entry.key, None)  # the same memory with other values (written over)
    if stale is not None:
        _retire(cache, stale)
    entries[entry.key] = entry
    kept = sum(_nbytes(e) for e in entries.values())
    while len(entries) > MAX_ENTRIES or (kept > MAX_BYTES and len(entries) > 1):
        old = entries.popitem(last=False)[1]
        kept -= _nbytes(old)
        _retire(cache, old)
    return entry, False


def _nbytes(entry: _Entry) -> int:
    arrays = 2 + (entry.invs is not None) + (entry.spare_inv is not None)
    return int(entry.snap.nbytes) * arrays


def _singular() -> numpy.linalg.LinAlgError:
    return numpy.linalg.LinAlgError("Singular matrix")


def solve(a: Any, b: Any) -> Any:
    """``numpy.linalg.solve(a, b)``, from the shared LU factors of ``a`` where that pays.

    >>> solve(numpy.eye(2) * 2, numpy.array([[2.0], [4.0]]))
    array([[1.],
           [2.]])
    """
    if not _usable(a):
        return _small_solve(a, b)
    b = numpy.asarray(b)
    if b.ndim == 0 or numpy.result_type(a, b) != a.dtype:
        return numpy.linalg.solve(a, b)
    n, stack = a.shape[-1], a.shape[:-2]
    vector = b.ndim == 1
    if not (vector and b.shape == (n,)) and not (b.ndim == a.ndim and b.shape[:-1] == a.shape[:-1]):
        return numpy.linalg.solve(a, b)  # broadcasting stacks: NumPy's own loop
    if a.ndim == 2:
        lower = triangular.triangle(a)
        if lower is not None:  # a Cholesky factor, or its transpose: substitution, no LU
            return triangular.solve(a, b.astype(a.dtype, copy=False), lower)
    entry, trans = _factors(a)
    if any(info > 0 for _, _, info in entry.lus):
        raise _singular()
    rhs = b.astype(a.dtype, copy=False)
    if entry.chol:  # symmetric: A^T = A
        u = entry.lus[0][0]
        potrs = getattr(scipy_lapack(), _KINDS[a.dtype] + "potrs")
        return numpy.array(potrs(u, rhs, lower=0)[0], order="C")
    getrs = getattr(scipy_lapack(), _KINDS[a.dtype] + "getrs")
    if a.ndim == 2:  # a C-ordered result, as NumPy's
        lu, piv, _ = entry.lus[0]
        return numpy.array(getrs(lu, piv, rhs, trans=int(trans))[0], order="C")
    if vector:
        xs = [getrs(lu, piv, rhs, trans=int(trans))[0] for lu, piv, _ in entry.lus]
        return numpy.reshape(numpy.stack(xs), (*stack, n))
    mats = rhs.reshape(-1, n, b.shape[-1])
    xs = [getrs(lu, piv, m, trans=int(trans))[0] for (lu, piv, _), m in zip(entry.lus, mats)]
    return numpy.reshape(numpy.stack(xs), b.shape)


def _small_solve(a: Any, b: Any) -> Any:
    """``numpy.linalg.solve`` of one matrix below :data:`MIN_ORDER` by SciPy's ``gesv``, the
    LAPACK routine NumPy calls, without NumPy's copies in and out: 1.4-3.5x faster (a 5 x 5
    system with 2000 right-hand sides, a multivariate normal's whitening: 126 -> 86 us); a
    triangular matrix (a Cholesky factor, its transpose in the gradient) by BLAS's ``trsm``,
    substitution without a factorisation (the same: 86 -> 15 us)."""
    lapack = scipy_lapack()
    if (
        lapack is None
        or type(a) is not numpy.ndarray
        or type(b) is not numpy.ndarray
        or a.ndim != 2
        or a.shape[0] != a.shape[1]
        or a.size == 0
        or a.dtype not in _KINDS
        or b.dtype != a.dtype
        or b.ndim not in (1, 2)
        or b.shape[0] != a.shape[0]
        or b.size == 0
    ):
        return numpy.linalg.solve(a, b)
    lower = triangular.triangle(a)
    if lower is not None:
        # a triangular matrix (a Cholesky factor): substitution, 5x faster than gesv's LU of
        # it for 2000 right-hand sides
        return triangular.solve(a, b, lower)
    x, info = getattr(lapack, _KINDS[a.dtype] + "gesv")(a, b)[2:]
    if info > 0:
        raise _singular()
    return numpy.array(x, order="C")


def cholesky(a: Any) -> Any:
    """``numpy.linalg.cholesky(a)``, the lower factor: one matrix by SciPy's ``potrf`` (the
    LAPACK routine NumPy calls, without NumPy's copies in and out: 1.3-2x faster from order 30
    to 300 in float64, up to 4x in float32), stacks and everything else by NumPy.

    >>> cholesky(numpy.array([[4.0, 2.0], [2.0, 2.0]]))
    array([[2., 0.],
           [1., 1.]])
    """
    lapack = scipy_lapack()
    if (
        lapack is None
        or type(a) is not numpy.ndarray
        or a.ndim != 2
        or a.shape[0] != a.shape[1]
        or a.size == 0
        or a.dtype not in _KINDS
    ):
        return numpy.linalg.cholesky(a)
    factor, info = getattr(lapack, _KINDS[a.dtype] + "potrf")(a, lower=1, clean=1)
    if info > 0:
        raise numpy.linalg.LinAlgError("Matrix is not positive definite")
    return numpy.ascontiguousarray(factor)


def inv(a: Any) -> Any:
    """``numpy.linalg.inv(a)``, from the shared LU factors of ``a`` where that pays (kept for
    the next call: the rules of ``slogdet`` and ``det`` read ``A^-T``).

    >>> inv(numpy.eye(2) * 4)
    array([[0.25, 0.  ],
           [0.  , 0.25]])
    """
    if not _usable(a):
        return numpy.linalg.inv(a)
    entry, trans = _factors(a)
    if entry.invs is None:
        if any(info > 0 for _, _, info in entry.lus):
            raise _singular()
        n = a.shape[-1]
        lapack = scipy_lapack()
        prefix = _KINDS[a.dtype]
        if entry.chol:  # A^-1 = U^-1 U^-T (trtri and one product: less work than potri's)
            u = entry.lus[0][0]
            spare, entry.spare_inv = entry.spare_inv, None
            if spare is None or not spare.flags.f_contiguous:
                spare = numpy.empty_like(u, order="F")
            ui = _upper_inverse(u, spare, getattr(lapack, prefix + "trtri"))
            entry.invs = [ui @ ui.T]
            entry.spare_inv = ui  # (Fortran-ordered: the buffer recycled for the next one)
        else:
            _lu_inverse(entry, n, lapack, prefix)
    if entry.chol:
        trans = False  # A^T is A: its inverse, C-ordered, needs no transposed copy
    invs: list[Any] = entry.invs  # type: ignore[assignment]  # computed just above
    # a fresh array every time (the caller may write into it; the kept one must not change)
    if a.ndim == 2:
        return numpy.array(invs[0].T if trans else invs[0], order="C")
    return numpy.reshape(numpy.stack([m.T if trans else m for m in invs]), a.shape)


# Triangular blocks of at most this order are inverted by LAPACK's trtri; larger ones by halves
# (measured at n = 300, one thread: OpenBLAS's trtri 710 us, by halves 520 us).
TRIANGLE_BLOCK = 96


def _upper_inverse(u: Any, out: Any, trtri: Any) -> Any:
    """The inverse of the upper triangular ``u``, written into ``out`` (same shape): by halves,
    ``[[A, B], [0, C]]^-1 = [[A^-1, -A^-1 B C^-1], [0, C^-1]]``, the two products done by
    the matrix product (which OpenBLAS runs several times faster than its ``trtri``).

    >>> u = numpy.array([[2.0, 1.0], [0.0, 4.0]])
    >>> _upper_inverse(u, numpy.empty((2, 2)), scipy_lapack().dtrtri) @ u
    array([[1., 0.],
           [0., 1.]])
    """
    m = u.shape[0]
    if m <= TRIANGLE_BLOCK:
        out[...] = trtri(u, lower=0)[0]
        return out
    h = m // 2
    a_inv = _upper_inverse(u[:h, :h], out[:h, :h], trtri)
    c_inv = _upper_inverse(u[h:, h:], out[h:, h:], trtri)
    numpy.matmul(-(a_inv @ u[:h, h:]), c_inv, out=out[:h, h:])
    out[h:, :h] = 0
    return out


def _lu_inverse(entry: _Entry, n: int, lapack: Any, prefix: str) -> None:
    """``entry.invs`` from the LU factors (``getri``)."""
    getri = getattr(lapack, prefix + "getri")
    lwork = _LWORK.get((prefix, n))
    if lwork is None:  # the optimal workspace (LAPACK's query), once per type and order
        query = getattr(lapack, prefix + "getri_lwork")(n)[0]
        lwork = _LWORK[prefix, n] = max(int(numpy.real(query)), n)
    if entry.spare_inv is not None:  # in the recycled buffer, in place
        lu, piv, _ = entry.lus[0]
        numpy.copyto(entry.spare_inv, lu)
        entry.invs = [getri(entry.spare_inv, piv, lwork=lwork, overwrite_lu=1)[0]]
        entry.spare_inv = None
    else:
        entry.invs = [getri(lu, piv, lwork=lwork)[0] for lu, piv, _ in entry.lus]


def _slogdet_lu(lu: Any, piv: Any, info: int, dtype: numpy.dtype[Any]) -> tuple[Any, Any]:
    # NumPy's steps (umath_linalg): the sign from the row swaps, then, along U's diagonal in
    # order, the sign (or phase) of each entry multiplied in and log|u_ii| added up
    if info > 0:
        return numpy.zeros((), dtype), numpy.full((), -numpy.inf, dtype.char.lower())
    d = numpy.diagonal(lu)
    flips = int(numpy.count_nonzero(piv != numpy.arange(len(piv))))
    mag = numpy.abs(d)
    if dtype.kind != "c":
        flips += int(numpy.count_nonzero(d < 0))
        sign = numpy.full((), -1 if flips % 2 else 1, dtype)
    else:
        unit = numpy.empty_like(d)  # each entry's phase, divided componentwise as NumPy does
        unit.real, unit.imag = d.real / mag, d.imag / mag
        unit[0] *= -1 if flips % 2 else 1
        sign = numpy.multiply.accumulate(unit)[-1]
    return sign, numpy.add.accumulate(numpy.log(mag))[-1]


def slogdet(a: Any) -> tuple[Any, Any]:
    """``numpy.linalg.slogdet(a)`` as ``(sign, logabsdet)``, from the shared LU factors.

    >>> [float(v) for v in slogdet(numpy.diag([2.0, -3.0]))]
    [-1.0, 1.791759469228055]
    """
    if not _usable(a):
        sign, logabs = numpy.linalg.slogdet(a)
        return sign, logabs
    entry, _ = _factors(a)  # det A^T = det A
    if entry.chol:  # det A = prod(u_ii)^2 > 0
        logabs = 2.0 * numpy.add.accumulate(numpy.log(numpy.diagonal(entry.lus[0][0])))[-1]
        return numpy.ones((), a.dtype)[()], logabs
    if a.ndim == 2:
        lu, piv, info = entry.lus[0]
        sign, logabs = _slogdet_lu(lu, piv, info, a.dtype)
        return sign[()], logabs[()]
    pairs = [_slogdet_lu(lu, piv, info, a.dtype) for lu, piv, info in entry.lus]
    stack = a.shape[:-2]
    sign = numpy.reshape(numpy.stack([s for s, _ in pairs]), stack)[()]
    return sign, numpy.reshape(numpy.stack([v for _, v in pairs]), stack)[()]


def det(a: Any) -> Any:
    """``numpy.linalg.det(a)``: ``sign * exp(logabsdet)``, as NumPy computes it.

    >>> float(det(numpy.diag([2.0, -3.0])))
    -6.0
    """
    if not _usable(a):
        return numpy.linalg.det(a)
    sign, logabs = slogdet(a)
    return sign * numpy.exp(logabs)
