"""``numpy.add.at`` on NumPy's fast path: the gradient of reading by integer arrays (and the
reading itself, :func:`take_rows`).

Reading rows by an integer array (``E[tokens]``, ``U[users]``) or single elements by one array
per axis (``logp[rows, labels]``) differentiates into adding the incoming gradient back at the
same positions, repeats included: ``numpy.add.at``.  NumPy runs ``add.at`` in a tight loop only
for one 1-D integer index into a 1-D array; rows of a matrix or a tuple of index arrays go
through its general iterator, element by element, 3-4x slower (10,000 rows of 32 float64: 2.2 ms
against 0.6 ms).

:func:`add_at` gives such an index the fast form: the positions in ``out.ravel()`` that
``add.at`` adds each element of ``g`` into, in the order it visits them, so every position
receives its terms in the same order and the sums are the same to the bit.  Wide rows added
into zeros (a gradient) go faster still in rounds: each row's first occurrence is copied, its
second added, and so on, each round one fancy-indexed assignment of distinct rows.  The
positions of whole rows are made a few thousand at a time: one large temporary index array per
call costs more in fresh memory than the additions themselves.  Anything else (slices among
the index, booleans, a ``g`` that broadcasts, a cast, another array library, an index out of
range, which NumPy reports) is ``numpy.add.at`` as it is.

Where Numba is installed (``chainrule[fast]``), large scatters of float rows are one compiled
loop that adds row after row in ``add.at``'s order (:func:`row_loop`): NumPy needs a flat
position per element and ``add.at``'s loop, about 2.5 ns an element, the loop ~0.4 ns (20,000
rows of 16 float64: 780 -> 90 us).  The loop is compiled once per process and dtype, in
memory (nothing is cached on disk), the first time a scatter of ``NUMBA_MIN_SIZE`` elements
comes by.

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

import importlib.util
from typing import Any

import numpy

__all__ = ["add_at", "axis_range", "take_rows", "take_along", "row_loop"]

# Below this many elements of g the checks here (about 4 us) cost more than the fast loop saves
# (about 5 ns per element).
MIN_SIZE = 1024
# Positions made per call of the fast loop (64 KiB of them: a temporary the allocator reuses).
CHUNK = 1 << 13
# Rows at least this wide, added into zeros, go in rounds of distinct rows (fancy-indexed copies
# and ``+=``; narrower rows cost more per row in fancy indexing than ``add.at``'s loop saves),
# for at most MAX_ROUNDS rounds: 2560 reads of a 5000x64 float32 table, 370 -> 205 us.
MIN_WIDTH = 32
MAX_ROUNDS = 8
# Scatters of at least this many elements of g go through Numba's loop when it is installed:
# below, the 2 ns an element saved would take too many steps to repay a compilation (~0.3 s
# once per process and dtype; the import of Numba, ~0.4 s, once).
NUMBA_MIN_SIZE = 1 << 14
_LOOP: list[Any] = []


def _add_rows(out: Any, rows: Any, g: Any) -> None:  # pragma: no cover - compiled by Numba
    m = g.shape[1]
    for j in range(rows.shape[0]):
        r = rows[j]
        for c in range(m):
            out[r, c] += g[j, c]


def row_loop() -> Any:
    """``f(out2, rows, g2)``: ``numpy.add.at(out2, rows, g2)`` for rows of a 2-D ``out2`` by
    in-range row numbers, compiled by Numba, or ``None`` when Numba is not installed.

    >>> f = row_loop()
    >>> out = numpy.zeros((2, 2))
    >>> if f is not None:
    ...     f(out, numpy.array([1, 1]), numpy.ones((2, 2)))
    ... else:
    ...     numpy.add.at(out, numpy.array([1, 1]), numpy.ones((2, 2)))
    >>> out
    array([[0., 0.],
           [2., 2.]])
    """
    if not _LOOP:
        found = None
        try:
            if importlib.util.find_spec("numba") is not None:
                numba: Any = importlib.import_module("numba")
                found = numba.njit(nogil=True)(_add_rows)
        except ImportError:  # a Numba too old for this NumPy raises on import
            found = None
        _LOOP.append(found)
    return _LOOP[0]


# The read-only ranges of axis_range, by id (each kept alive by the cache, so ids stay theirs).
_RANGES: dict[tuple[int, int, int], Any] = {}
_KNOWN: dict[int, tuple[int, int, int]] = {}
MAX_RANGES = 512


def axis_range(n: int, d: int, nd: int) -> Any:
    """``numpy.arange(n)`` along axis ``d`` of ``nd`` (length 1 on the others): the index
    ``take_along_axis`` uses for every axis but its own.  Read-only and cached, so that a
    scatter or gather by it knows it in range without looking at it.

    >>> axis_range(3, 1, 2)
    array([[0, 1, 2]])
    """
    key = (n, d, nd)
    a = _RANGES.get(key)
    if a is None:
        a = numpy.arange(n).reshape((1,) * d + (-1,) + (1,) * (nd - d - 1))
        if len(_RANGES) < MAX_RANGES:
            a.flags.writeable = False
            _RANGES[key] = a
            _KNOWN[id(a)] = key
    return a


def _in_range(ix: Any, n: int) -> Any:
    """``ix`` with negative entries counted from the end, or None where an entry is out of
    ``range(-n, n)`` (a cached :func:`axis_range` is in range without a look)."""
    if ix.size and id(ix) not in _KNOWN:
        if not ix.flags.c_contiguous:
            ix = numpy.ascontiguousarray(ix)  # (a reduction over a strided view: 2x slower)
        if ix.view(numpy.dtype(f"u{ix.itemsize}")).max() < n:
            return ix  # all in [0, n): negative ones read as unsigned are larger
        lo, hi = ix.min(), ix.max()
        if hi >= n or lo < -n:
            return None  # NumPy raises its own IndexError
        if lo < 0:
            return numpy.where(ix < 0, ix + n, ix)
    return ix


def _full_range(ix: Any, n: int, m: int) -> bool:
    """Whether index item ``ix`` is ``numpy.arange(n)`` along the last of ``m`` axes (the
    index ``take_along_axis`` builds for an axis after the one it reads along)."""
    if _KNOWN.get(id(ix)) == (n, m - 1, m):
        return True
    return (
        type(ix) is numpy.ndarray
        and ix.ndim == m
        and ix.size == n
        and ix.shape[-1] == n
        and ix.dtype.kind in "iu"
        and numpy.array_equal(ix.reshape(-1), numpy.arange(n))
    )


def _peel(shape: tuple[int, ...], items: tuple[Any, ...]) -> tuple[tuple[Any, ...], int]:
    """``(items, width)``: an index of one integer array per axis whose last items are full
    ranges along the last axes (``x[i, j, arange(w)]``, ``take_along_axis`` over a middle
    axis) reads rows of ``width`` contiguous elements, by the items left (their last axes,
    of length 1, dropped).  Anything else comes back as it is, with width 1."""
    width = 1
    while len(items) == len(shape) and len(items) > 1:
        m = numpy.ndim(items[-1])
        if m == 0:
            break  # (0-d integer arrays: one element)
        lead = items[:-1]
        if not all(type(ix) is numpy.ndarray and ix.ndim == m and ix.shape[-1] == 1 for ix in lead):
            break
        if not _full_range(items[-1], shape[-1], m):
            break
        width *= shape[-1]
        shape = shape[:-1]
        items = tuple(_drop_last(ix) for ix in lead)
    return items, width


def _drop_last(ix: Any) -> Any:
    """``ix[..., 0]``: a cached range stays one (:func:`axis_range`)."""
    key = _KNOWN.get(id(ix))
    if key is not None and key[1] < key[2] - 1:
        return axis_range(key[0], key[1], key[2] - 1)
    return ix[..., 0]


def _rows(out: Any, index: Any) -> tuple[Any, int] | None:
    """``(rows, k)``: the flat row numbers (positions in ``out`` reshaped to rows of
    ``out.shape[k:]``) that an index of integer arrays on leading axes reads, or None for
    any other index (or one out of range).  Full ranges closing an index of every axis
    (:func:`_peel`) widen the rows."""
    items = index if type(index) is tuple else (index,)
    if not items or len(items) > out.ndim:
        return None
    shape = out.shape
    if len(items) == len(shape) and len(items) > 1:
        items, _ = _peel(shape, items)
    lin = None
    for axis, ix in enumerate(items):
        if type(ix) is not numpy.ndarray or ix.dtype.kind not in "iu":
            return None
        n = shape[axis]
        ix = _in_range(ix, n)
        if ix is None:
            return None
        lin = ix if lin is None else lin * n + ix
    return lin, len(items)


def add_at(out: Any, index: Any, g: Any, fresh: bool = False) -> None:
    """``numpy.add.at(out, index, g)``: the same sums, in the same order, faster for an index
    of integer arrays on the leading axes of a C-ordered array (the module's docstring).
    ``fresh`` says that ``out`` holds zeros (a gradient being made).

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
        found = _rows(out, index)
        if found is not None:
            rows, k = found
            rest = out.shape[k:]
            if g.shape == rows.shape + rest:
                rows = rows.reshape(-1)
                width = g.size // rows.size if rows.size else 0
                loop = (
                    row_loop()
                    if width > 1 and g.size >= NUMBA_MIN_SIZE and g.dtype.kind in "fc"
                    else None
                )  # (one element a row: NumPy's 1-D add.at is as fast)
                if loop is not None:
                    loop(out.reshape(-1, width), rows, g.reshape(-1, width))
                    return
                if width <= 1:
                    numpy.add.at(out.reshape(-1), rows, g.reshape(-1))
                    return
                out2 = out.reshape(-1, width)
                g2 = g.reshape(rows.size, width)
                if not (fresh and width >= MIN_WIDTH and _by_rounds(out2, rows, g2)):
                    _flat_rows(out2, rows, g2)
                return
    numpy.add.at(out, index, g)


def _flat_rows(out2: Any, rows: Any, g2: Any) -> None:
    """``numpy.add.at(out2, rows, g2)`` for whole rows, through 1-D ``add.at`` on the flat
    positions of each element, made ``CHUNK`` at a time."""
    flat = out2.reshape(-1)
    width = out2.shape[1]
    starts = (rows * width)[:, None]
    cols = numpy.arange(width)
    step = max(1, CHUNK // width)
    buf = numpy.empty((step, width), dtype=starts.dtype)
    for s in range(0, rows.size, step):
        part = starts[s : s + step]
        pos = buf[: len(part)]
        numpy.add(part, cols, out=pos)
        numpy.add.at(flat, pos.reshape(-1), g2[s : s + step].reshape(-1))


def _by_rounds(out2: Any, rows: Any, g2: Any) -> bool:
    """``numpy.add.at(out2, rows, g2)`` for whole rows into zeros, in rounds of distinct rows;
    False (nothing done) when fewer than half the rows are distinct, where that does not pay.

    Round ``r`` adds each row's ``r``-th occurrence in the order of ``rows`` (the earliest
    occurrence not yet added, found by ``numpy.minimum.at`` on 1-D), so each position receives
    its terms in ``add.at``'s order.  A round's rows are distinct, so it is one fancy-indexed
    ``+=``, and in round 0 a copy (``0 + x`` is ``x``, save the sign of a zero, which adding
    ``0.0`` restores).  Terms after ``MAX_ROUNDS`` rounds go through :func:`_flat_rows`, in
    order.
    """
    n = rows.size
    first = numpy.empty(out2.shape[0], dtype=numpy.intp)
    take = numpy.arange(n)
    now = rows
    for r in range(MAX_ROUNDS):
        first[now] = n
        numpy.minimum.at(first, now, take)
        lead = first[now] == take
        target, source = now[lead], take[lead]
        if r == 0:
            if 2 * target.size < n:
                return False
            part = numpy.take(g2, source, axis=0)  # (rows by take: take_rows)
            if part.dtype.kind in "fc":
                part += 0.0
            out2[target] = part
        else:
            out2[target] += numpy.take(g2, source, axis=0)
        if target.size == take.size:
            return True
        take = take[~lead]
        now = rows[take]
    _flat_rows(out2, now, g2[take])
    return True


_ALL = slice(None)


def take_rows(x: Any, index: Any) -> Any:
    """``x[index]``, through ``numpy.take(x, i, axis=0)`` where ``index`` is an integer array
    ``i`` (alone, or followed by full slices) reading whole rows of an array of 2 or more
    dimensions: NumPy's fancy indexing runs its general iterator there, ``take`` one copy per
    row (20,000 rows of 16 float64: 211 -> 70 us).  The same values, shape and errors (an
    index out of range raises IndexError).

    >>> E = numpy.arange(12.0).reshape(4, 3)
    >>> take_rows(E, numpy.array([[3, 0], [1, 1]])).shape
    (2, 2, 3)
    >>> take_rows(E, (numpy.array([2]), slice(None)))
    array([[6., 7., 8.]])
    """
    if type(x) is numpy.ndarray and x.ndim > 1:
        ix = index
        if type(ix) is tuple:  # (the cheap test first: most tuples are basic indices)
            if not ix or type(ix[0]) is not numpy.ndarray:
                return x[index]
            if len(ix) > 1 and type(ix[1]) is numpy.ndarray:
                return _take_elements(x, ix)
            if not all(type(s) is slice and s == _ALL for s in ix[1:]):
                return x[index]
            ix = ix[0]
        if type(ix) is numpy.ndarray and ix.ndim and ix.dtype.kind in "iu":
            return numpy.take(x, ix, axis=0)
    return x[index]


def _take_elements(x: Any, index: tuple[Any, ...]) -> Any:
    """``x[index]`` for a tuple of two or more integer arrays (``logp[rows, labels]``,
    ``take_along_axis``'s index): one ``take`` of the rows they read in ``x`` reshaped
    (NumPy's fancy indexing walks each array per element: (512, 4, 16) read along its middle
    axis, 53 -> 6 us)."""
    if x.size < MIN_SIZE or not x.flags.c_contiguous or len(index) > x.ndim:
        return x[index]
    found = _rows(x, index)  # (None unless every item is an integer array)
    if found is None:
        return x[index]
    rows, k = found
    return numpy.take(x.reshape((-1,) + x.shape[k:]), rows, axis=0)


def take_along(arr: Any, indices: Any, axis: int) -> Any:
    """``numpy.take_along_axis(arr, indices, axis)``, through :func:`take_rows` for NumPy
    arrays of integer indices: the same values, shape and errors.

    >>> take_along(numpy.arange(6.0).reshape(2, 3), numpy.array([[2], [0]]), 1)
    array([[2.],
           [3.]])
    """
    if (
        type(arr) is not numpy.ndarray
        or type(indices) is not numpy.ndarray
        or indices.dtype.kind not in "iu"
        or indices.ndim != arr.ndim
        or arr.ndim < 2
        or not -arr.ndim <= axis < arr.ndim
    ):
        return numpy.take_along_axis(arr, indices, axis=axis)
    nd = arr.ndim
    axis = axis % nd
    index = tuple(indices if d == axis else axis_range(arr.shape[d], d, nd) for d in range(nd))
    return take_rows(arr, index)
