"""``numpy.add.at`` on NumPy's fast path: the gradient of reading by integer arrays.

Reading rows by an integer array (``E[tokens]``, ``U[users]``) or single elements by one array
per axis (``logp[rows, labels]``) differentiates into adding the incoming gradient back at the
same positions, repeats included: ``numpy.add.at``.  NumPy runs ``add.at`` in a tight loop only
for one 1-D integer index into a 1-D array; rows of a matrix or a tuple of index arrays go
through its general iterator, element by element, 3-4x slower (10,000 rows of 32 float64: 2.2 ms
against 0.6 ms).

:func:`add_at` gives such an index the fast form: the positions in ``out.ravel()`` that
``add.at`` adds each element of ``g`` into, in the order it visits them, so every position
receives its terms in the same order and the sums are the same to the bit.  The positions of
whole rows are made a few thousand at a time: one large temporary index array per call costs
more in fresh memory than the additions themselves.  Anything else (slices among the index,
booleans, a ``g`` that broadcasts, a cast, another array library, an index out of range, which
NumPy reports) is ``numpy.add.at`` as it is.

Example
-------
>>> import numpy
>>> out = numpy.zeros((3, 2))
>>> add_at(out, numpy.array([2, 0, 2]), numpy.ones((3, 2)))
>>> out
array([[1., 1.],
       [0., 0.],
       [2., 2.]])
"""

from __future__ import annotations

from typing import Any

import numpy

__all__ = ["add_at"]

# Below this many elements of g the checks here (about 4 us) cost more than the fast loop saves
# (about 5 ns per element).
MIN_SIZE = 1024
# Positions made per call of the fast loop (64 KiB of them: a temporary the allocator reuses).
CHUNK = 1 << 13


def _rows(out: Any, index: Any) -> Any:
    """The flat row numbers (positions in ``out`` reshaped to (rows, rest)) that an index of
    integer arrays on leading axes reads, or None for any other index (or one out of range)."""
    items = index if type(index) is tuple else (index,)
    if not items or len(items) > out.ndim:
        return None
    shape = out.shape
    lin = None
    for axis, ix in enumerate(items):
        if type(ix) is not numpy.ndarray or ix.dtype.kind not in "iu":
            return None
        n = shape[axis]
        if ix.size:
            lo, hi = ix.min(), ix.max()
            if hi >= n or lo < -n:
                return None  # numpy.add.at raises NumPy's own IndexError
            if lo < 0:
                ix = numpy.where(ix < 0, ix + n, ix)
        lin = ix if lin is None else lin * n + ix
    return lin


def add_at(out: Any, index: Any, g: Any) -> None:
    """``numpy.add.at(out, index, g)``: the same sums, in the same order, faster for an index
    of integer arrays on the leading axes of a C-ordered array (the module's docstring).

    >>> out = numpy.zeros((2, 3))
    >>> add_at(out, (numpy.array([1, 1, 0]), numpy.array([2, 2, -1])), numpy.array([1., 2., 4.]))
    >>> out
    array([[0., 0., 4.],
           [0., 0., 3.]])
    """
    if (
        type(out) is numpy.ndarray
        and type(g) is numpy.ndarray
        and g.size >= MIN_SIZE
        and out.ndim > 1
        and g.dtype == out.dtype
        and out.flags.c_contiguous
    ):
        rows = _rows(out, index)
        if rows is not None:
            k = 1 if type(index) is not tuple else len(index)
            rest = out.shape[k:]
            if g.shape == rows.shape + rest:
                flat = out.reshape(-1)
                rows = rows.reshape(-1)
                width = g.size // rows.size if rows.size else 0
                if width <= 1:
                    numpy.add.at(flat, rows, g.reshape(-1))
                    return
                gr = g.reshape(rows.size, width)
                starts = (rows * width)[:, None]
                cols = numpy.arange(width)
                step = max(1, CHUNK // width)
                buf = numpy.empty((step, width), dtype=starts.dtype)
                for s in range(0, rows.size, step):
                    part = starts[s : s + step]
                    pos = buf[: len(part)]
                    numpy.add(part, cols, out=pos)
                    numpy.add.at(flat, pos.reshape(-1), gr[s : s + step].reshape(-1))
                return
    numpy.add.at(out, index, g)
