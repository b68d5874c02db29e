"""Triangular matrices on plain arrays: telling them apart, solving with them, multiplying by
them, and the triangle operations of the Cholesky gradient, by BLAS where SciPy is installed.

A Cholesky factor ``L`` (and ``L^T`` in its gradient) is triangular; NumPy has no triangular
solve, so ``numpy.linalg.solve(L, b)`` factorises ``L`` by LU (``n^3 / 3`` operations) before
substituting, where substitution alone (``n^2`` per right-hand side, BLAS's ``trsv``/``trsm``)
gives the solution.  And ``L^T @ B`` costs half a general product as ``trmm``.  Each function
here takes plain ``ndarray`` operands of one of LAPACK's types (:data:`LAPACK_TYPES`) and needs
SciPy (:func:`available`); callers check both and use NumPy's general functions otherwise
(chainrule tensors, other types, no SciPy), so the values agree with NumPy's to rounding.

>>> import numpy
>>> low = numpy.array([[2.0, 0.0], [1.0, 4.0]])
>>> triangle(low), triangle(low.T), triangle(numpy.ones((2, 2)))
(True, False, None)
>>> solve(low, numpy.array([2.0, 9.0]), lower=True)
array([1., 2.])
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy

__all__ = [
    "LAPACK_TYPES",
    "available",
    "triangle",
    "solve",
    "lower_t_times",
    "zero_upper",
]

_PREFIX = {numpy.dtype(t): p for t, p in (("f4", "s"), ("f8", "d"), ("c8", "c"), ("c16", "z"))}
# the array types BLAS and LAPACK compute in
LAPACK_TYPES = frozenset(_PREFIX)
_BLAS: list[Any] = []


def available() -> bool:
    """Whether SciPy's BLAS can be imported (looked up once; SciPy is never a dependency).

    >>> isinstance(available(), bool)
    True
    """
    if not _BLAS:
        try:
            _BLAS.append(importlib.import_module("scipy.linalg.blas"))
        except ImportError:
            _BLAS.append(None)
    return _BLAS[0] is not None


def _routine(dtype: Any, name: str) -> Any:
    available()
    return getattr(_BLAS[0], _PREFIX[dtype] + name)


def triangle(a: Any) -> bool | None:
    """True for a lower-triangular square ``a``, False for an upper one, each with no zero on
    the diagonal (a singular matrix is left to LU, which says so); None for any other matrix.
    Costs about one read of the matrix, none for most general ones.

    >>> triangle(numpy.eye(3)), triangle(numpy.zeros((2, 2)))
    (True, None)
    """
    if a.shape[0] > 1 and a[-1, 0] and a[0, -1]:
        return None  # both far corners set: a general matrix, told apart without a copy
    if not numpy.all(numpy.diagonal(a)):
        return None
    if _upper_zero(a):
        return True
    if _upper_zero(a.T):
        return False
    return None


def _upper_zero(a: Any) -> bool:
    """Whether the square ``a`` has only zeros above its diagonal: the off-diagonal block of
    each half, then each half's diagonal block (small ones through a kept mask), no copies."""
    n = a.shape[0]
    if n <= _SMALL:
        return not numpy.any(a, where=_upper_mask(n))
    h = n // 2
    return not a[:h, h:].any() and _upper_zero(a[:h, :h]) and _upper_zero(a[h:, h:])


_SMALL = 128
# masks of matrices up to this order are kept (at most a few, 4 MB each at the largest)
_KEPT_MASK = 2048


@functools.lru_cache(maxsize=8)
def _upper_mask(n: int) -> Any:
    mask = numpy.triu(numpy.ones((n, n), dtype=bool), 1)
    mask.flags.writeable = False
    return mask


def solve(a: Any, b: Any, lower: bool) -> Any:
    """``a^-1 b`` for a triangular ``a`` (``lower`` or upper; only that triangle is read) with
    no zero on its diagonal: ``trsv`` for a vector ``b``, ``trsm`` for a matrix of ``n`` rows
    (of ``a``'s type).  The result is a new C-ordered array, as NumPy's ``solve``'s.

    >>> solve(numpy.array([[2.0, 1.0], [0.0, 4.0]]), numpy.array([[4.0], [8.0]]), lower=False)
    array([[1.],
           [2.]])
    """
    # a C-ordered A is read as the Fortran-ordered A^T (BLAS transposes it back: no copy)
    flip = a.flags.c_contiguous
    if b.ndim == 1:
        trsv = _routine(a.dtype, "trsv")
        return trsv(a.T, b, lower=int(not lower), trans=1) if flip else trsv(a, b, lower=int(lower))
    trsm = _routine(a.dtype, "trsm")
    n = a.shape[0]
    if n >= _BLOCKED and b.shape[1] >= _WIDE:
        return _by_blocks(a, b, lower, trsm)
    # X^T op(A)^T = B^T: the rows of B are the columns of B^T, a Fortran-ordered view of a
    # C-ordered B
    if flip:
        return trsm(1.0, a.T, b.T, side=1, lower=int(not lower), trans_a=0).T
    return trsm(1.0, a, b.T, side=1, lower=int(lower), trans_a=1).T


# Systems of at least this order and this many right-hand sides are solved by blocks of rows
# (:func:`_by_blocks`): measured on one core, OpenBLAS 0.3.30, n = m = 250: 780 -> 510 us,
# n = m = 700: 9.7 -> 7.4 ms; below, one trsm is as fast.
_BLOCKED, _WIDE, _BLOCK = 192, 16, 64


def _by_blocks(a: Any, b: Any, lower: bool, trsm: Any) -> Any:
    """Block substitution: each block of rows of X, after the blocks already solved are taken
    off its right-hand side (one matrix product, which BLAS runs several times faster than
    trsm's own updates), is solved with its diagonal block by trsm, in place.

    >>> low = numpy.tril(numpy.ones((200, 200))) + numpy.eye(200)
    >>> x = _by_blocks(low, numpy.eye(200), True, _routine(low.dtype, "trsm"))
    >>> bool(numpy.allclose(low @ x, numpy.eye(200)))
    True
    """
    n = a.shape[0]
    x = numpy.array(b, order="C")
    starts = range(0, n, _BLOCK) if lower else reversed(range(0, n, _BLOCK))
    for s in starts:
        e = min(s + _BLOCK, n)
        if lower and s:
            x[s:e] -= a[s:e, :s] @ x[:s]
        elif not lower and e < n:
            x[s:e] -= a[s:e, e:] @ x[e:]
        # the block's rows, as the Fortran-ordered X^T's columns, solved where they are
        trsm(1.0, a[s:e, s:e].T, x[s:e].T, side=1, lower=int(not lower), overwrite_b=1)
    return x


def lower_t_times(low: Any, b: Any) -> Any:
    """``low^T @ b`` for a lower-triangular matrix ``low`` (its upper triangle is not read) and
    a matrix ``b`` of its type: BLAS's ``trmm``, half the operations of a general product.  A
    new array (Fortran-ordered).

    >>> lower_t_times(numpy.array([[1.0, 0.0], [2.0, 3.0]]), numpy.eye(2))
    array([[1., 2.],
           [0., 3.]])
    """
    trmm = _routine(low.dtype, "trmm")
    if low.flags.c_contiguous:  # low^T is the Fortran-ordered upper triangle: op = none
        return trmm(1.0, low.T, b, lower=0, trans_a=0)
    return trmm(1.0, low, b, lower=1, trans_a=1)


def zero_upper(x: Any) -> Any:
    """Set the entries of the square ``x`` above its diagonal to zero, in place (``x`` is a new
    array its caller owns); returns ``x``, ``numpy.tril(x)``'s values without a new array.

    >>> zero_upper(numpy.ones((2, 2)))
    array([[1., 0.],
           [1., 1.]])
    """
    n = x.shape[0]
    if n > _KEPT_MASK:  # (a row at a time: no mask of n^2 entries for a matrix this large)
        for i in range(n - 1):
            x[i, i + 1 :] = 0
    else:
        numpy.copyto(x, 0, where=_upper_mask(n))
    return x
