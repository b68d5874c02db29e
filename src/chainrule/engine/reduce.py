"""Sums along one axis that NumPy's ``add.reduce`` makes slow.

NumPy reduces with an inner loop over the last axis of its iteration.  When the reduction leaves
a short contiguous block behind it (summing axis 1 of a (200, 200, 3) array: an inner loop of 3)
or reduces a short last axis (``(diff * diff).sum(axis=-1)`` over 3 coordinates), that loop runs
a few elements per call and the sum costs 10-20x its arithmetic.  Such sums arise wherever a
computation broadcasts over pairs (pairwise distances, energies) and in the backward pass of
every broadcast against a ``[:, None, :]`` view.  :func:`add_reduce` takes another route there:

* a short last axis (``n`` < 8 entries, in at least ``32 n`` rows): the slices added one after
  the other, which is the order NumPy uses for fewer than 8 entries, so the result is the same
  to the bit ((512, 2): 6.2 -> 0.8 us);
* a last axis of 8 to 15 entries (in an array of 8192 or more): NumPy's own pairwise order,
  eight partial sums combined as a tree and the rest added in turn, computed slice by slice
  across the rows (2-7x faster on 2,000 rows or more, the same bits);
* a short trailing block (fewer than 8 entries after the axis): one reduction per entry of the
  block, each with the summed axis innermost (pairwise summation along it: within rounding of
  NumPy's sum, not its bits);
* a short axis (at most 32 entries) before a block of 8 to 64 (or of fewer, after an axis of
  at most 8), in 128 or more slices (512 for a block over 32): the slices along the axis
  added one after the other, which is NumPy's own order there, so the same bits ((512, 2, 16)
  over axis 1: 25 -> 5.5 us).

Every other case is ``numpy.add.reduce``.  Only plain float32, float64 and long double arrays
of some size take the other routes (NumPy sums float16 in float32); the dtype and the shape of
the result are NumPy's.

:func:`window_reduce` does the same for reductions whose result does not depend on the order
(``maximum``, ``minimum``; ``add`` of booleans, a count) over a few short axes: a max-pooling
window's 2 x 2 entries, axes (3, 5) of a (n, c, h, 2, w, 2) view.  NumPy loops over the
window's 2 entries innermost; here the window's entries are combined slice by slice, each
call running over the whole output.  That pays where NumPy's inner loop would run short and
often (no block of 16 or more after the window, and at least 80 inner loops per entry): a
softmax's maximum over axis 1 of (32, 8, 8) stays NumPy's own.

The maximum along a short last axis has the same problem (about 0.1 us per row: the shift of a
softmax over 10 classes or 64 keys costs more than its exponentials); :func:`max_last` copies
blocks of rows transposed, so that NumPy's loop runs across the rows.

Running sums and products (``cumsum``, ``cumprod``) have it worse: NumPy's ``accumulate``
takes one element per step of its loop, about 3 ns an entry along any axis (a cumulative
product over 20 time steps of 2,000 rows: 120 us).  :func:`accumulate` runs the same steps
across all the slices at once where there are many: entry ``k`` is entry ``k - 1`` combined
with ``x[k]``, NumPy's order, so the same bits (real floats; complex ones keep NumPy's loop).

Example
-------
>>> import numpy
>>> from chainrule.engine.reduce import add_reduce
>>> x = numpy.arange(24.0).reshape(2, 4, 3)
>>> bool((add_reduce(x, 1) == x.sum(axis=1)).all()), add_reduce(x, -1, keepdims=True).shape
(True, (2, 4, 1))
"""

from __future__ import annotations

import math
from typing import Any

import numpy

_SHORT = 8  # NumPy sums fewer than 8 entries one after the other
_MIN_SIZE = 2048  # below this the call overhead of add.reduce is all there is
_SHORT_ROWS = 32  # rows of n < 8 entries are summed slice by slice from 32 n rows on
_PAIRWISE = 16  # last axes shorter than this, from 8 on, are summed in NumPy's pairwise order
_MIN_PAIRWISE = 8192  # ... in arrays at least this large (2-7x faster; smaller: no gain)
# A sum over an axis of at most _MID_AXIS entries before a block of at most _MID_BLOCK, in at
# least _MID_ROWS slices (4x as many for a block over half that), is added slice by slice
# ((512, 2, 16) over axis 1: 25 -> 5.5 us; NumPy's loop over longer blocks is as fast).
_MID_AXIS = 32
_MID_BLOCK = 64
_MID_ROWS = 128


def own_route(shape: tuple[int, ...], dtype: Any, axis: int) -> bool:
    """Whether :func:`add_reduce` sums a C-contiguous array of this shape and dtype along
    ``axis`` otherwise than ``numpy.add.reduce`` (the jit writes the same call there).

    >>> own_route((200, 200, 3), numpy.float64, 1), own_route((4, 3), numpy.float64, 1)
    (True, False)
    """
    nd = len(shape)
    ax = axis + nd if axis < 0 else axis
    if not 0 <= ax < nd:
        return False
    n = shape[ax]
    # the shape first: it rules out nearly every call, and is the cheapest to look at
    size = math.prod(shape)
    if ax == nd - 1:
        # a short row: NumPy's loop costs ~10 ns a row, a slice ~1 us (so from 32 rows a slice)
        short = (1 < n < _SHORT and size >= _SHORT_ROWS * n * n) or (
            _SHORT <= n < _PAIRWISE and size >= _MIN_PAIRWISE
        )
    else:
        block = math.prod(shape[ax + 1 :])
        short = (1 < block < _SHORT and n > _SHORT and size >= _MIN_SIZE) or _in_turn_mid(
            shape, ax, n, block
        )
    # float16 is left to NumPy, which sums it in float32 and rounds once
    return short and numpy.dtype(dtype).char in "fdg"


def _in_turn_mid(shape: tuple[int, ...], ax: int, n: int, block: int) -> bool:
    """Whether a sum over a short axis ``ax`` (not the last) before a block of at most
    ``_MID_BLOCK`` entries, in many slices, goes slice by slice (NumPy's loop: one call per
    row and entry of the axis, a block long)."""
    return (
        1 < n <= _MID_AXIS
        and (block >= _SHORT or n <= _SHORT)
        and 1 < block <= _MID_BLOCK
        and math.prod(shape[:ax]) >= (_MID_ROWS if 2 * block <= _MID_BLOCK else 4 * _MID_ROWS)
    )


def add_reduce(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``numpy.add.reduce(x, axis, keepdims=keepdims)``, faster where NumPy's loop is short."""
    if (
        type(axis) is int
        and type(x) is numpy.ndarray
        and x.ndim
        and x.shape[-1] <= _MID_BLOCK  # (own_route needs a short last axis: cheap, and first)
        and own_route(x.shape, x.dtype, axis)
        and x.flags.c_contiguous
    ):
        nd = x.ndim
        ax = axis + nd if axis < 0 else axis
        n = x.shape[ax]
        if ax == nd - 1:
            out = _pairwise_last(x) if n >= _SHORT else _in_turn_last(x)
            # NumPy's sum is 0.0 + (its sum of the row): never -0.0, where x0 + x1 + ... gives
            # -0.0 for a row of negative zeros; adding +0.0 last changes only that case
            out += 0.0
            return out[..., None] if keepdims else out
        lead = x.shape[:ax]
        block = math.prod(x.shape[ax + 1 :])
        x3 = x.reshape(math.prod(lead), n, block)
        if _in_turn_mid(x.shape, ax, n, block):  # NumPy's order: x0 + x1 + ..., then 0.0 +
            out = x3[:, 0] + x3[:, 1]
            for i in range(2, n):
                out += x3[:, i]
            out += 0.0
        else:
            out = numpy.empty((x3.shape[0], block), dtype=x.dtype)
            for j in range(block):
                numpy.add.reduce(x3[:, :, j], axis=1, out=out[:, j])
        shape = lead + ((1,) if keepdims else ()) + x.shape[ax + 1 :]
        return out.reshape(shape)
    return numpy.add.reduce(x, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]


def _in_turn_last(x: Any) -> Any:
    """The entries of each row (fewer than 8) added one after the other, across the rows."""
    out = x[..., 0] + x[..., 1]
    for i in range(2, x.shape[-1]):
        out += x[..., i]
    return out


def _pairwise_last(x: Any) -> Any:
    """NumPy's pairwise sum of each row (8 to 128 entries), across the rows: eight partial
    sums ``r[j]`` of the entries ``j, j + 8, ...`` up to the last whole block of 8, combined
    as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the rest added in turn."""
    n = x.shape[-1]
    whole = n - n % _SHORT
    if whole == _SHORT:
        r = [x[..., j] for j in range(_SHORT)]
    else:
        r = [x[..., j] + x[..., j + _SHORT] for j in range(_SHORT)]
        for i in range(2 * _SHORT, whole, _SHORT):
            for j in range(_SHORT):
                r[j] += x[..., i + j]
    out = r[0] + r[1]
    out += r[2] + r[3]
    right = r[4] + r[5]
    right += r[6] + r[7]
    out += right
    for i in range(whole, n):
        out += x[..., i]
    return out


_FEW = 16  # at most this many entries per reduced window are combined slice by slice
_MIN_WINDOW = 256  # ... in arrays of at least this many entries
_CALLS_PER_ENTRY = 80  # ... when NumPy's inner loop would run this many times per entry


_WINDOWS: dict[tuple[Any, Any], bool] = {}  # window_route's answers by shape and axis
_MAX_WINDOWS = 4096  # ... at most this many kept; then the table starts afresh


def window_route(shape: tuple[int, ...], axis: Any) -> bool:
    """Whether :func:`window_reduce` combines slices for a reduction of an array of this
    shape over ``axis`` (a few short axes: at most 16 entries per result, some size).

    >>> window_route((64, 8, 4, 2, 4, 2), (3, 5)), window_route((64, 8, 4, 2, 4, 2), None)
    (True, False)
    """
    if axis is None:
        return False
    if type(axis) is not int and type(axis) is not tuple:
        return _window_route(tuple(shape), tuple(axis) if type(axis) is list else axis)
    key = (shape, axis)
    found = _WINDOWS.get(key)
    if found is None:
        if len(_WINDOWS) >= _MAX_WINDOWS:
            _WINDOWS.clear()
        found = _WINDOWS[key] = _window_route(tuple(shape), axis)
    return found


def _window_route(shape: tuple[int, ...], axis: Any) -> bool:
    if math.prod(shape) < _MIN_WINDOW:
        return False
    nd = len(shape)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not all(-nd <= a < nd for a in axes):
        return False
    ranks = sorted(a % nd for a in axes)
    if ranks == list(range(len(axes))):
        return False  # leading axes: NumPy combines whole contiguous blocks already
    entries = math.prod(int(shape[a]) for a in axes)
    if not 1 < entries <= _FEW or math.prod(shape[ranks[-1] + 1 :]) >= _FEW:
        return False  # a long block after the window: NumPy's inner loop runs along it
    # NumPy's inner loop runs once per entry and row before the block (25 ns each here); the
    # window costs one call (about 2 us) per entry but the first: (32, 8, 8) over axis 1 is
    # NumPy's (7 against 15 us), (128, 16, 8) the window's (33 against 52 us)
    return math.prod(shape[: ranks[-1] + 1]) >= _CALLS_PER_ENTRY * (entries - 1)


def window_reduce(
    ufunc: numpy.ufunc, x: Any, axis: Any, keepdims: bool = False, dtype: Any = None
) -> Any:
    """``ufunc.reduce(x, axis, keepdims=keepdims, dtype=dtype)`` for an order-free ``ufunc``
    (``maximum``, ``minimum``, or ``add`` of booleans): the same values, faster where the
    reduced axes are few and short (:func:`window_route`).

    >>> x = numpy.arange(32.0).reshape(2, 2, 4, 2)
    >>> bool((window_reduce(numpy.maximum, x, (1, 3)) == x.max(axis=(1, 3))).all())
    True
    """
    if type(x) is not numpy.ndarray or not window_route(x.shape, axis):
        return ufunc.reduce(x, axis=axis, keepdims=keepdims, dtype=dtype)
    nd = x.ndim
    axes = sorted({a % nd for a in ((axis,) if isinstance(axis, int) else axis)})
    count = ufunc is numpy.add and x.dtype == numpy.bool_
    if count:
        # a count of booleans (the ties of a max-pooling window): added as bytes, at most 16
        # per window, then cast once; a bool + bool loop with dtype= casts every element
        # through a buffer (12x slower)
        x = x.view(numpy.uint8)
    parts = []
    for offsets in numpy.ndindex(*(x.shape[a] for a in axes)):
        index: list[Any] = [slice(None)] * nd
        for a, o in zip(axes, offsets):
            index[a] = o
        parts.append(x[tuple(index)])
    if count:
        out = numpy.add(parts[0], parts[1])
        for part in parts[2:]:
            numpy.add(out, part, out=out)
        out = out.astype(dtype or numpy.dtype(numpy.int_))
    else:
        out = ufunc(parts[0], parts[1], dtype=dtype or x.dtype)  # window_route: 2 or more
        for part in parts[2:]:
            ufunc(out, part, out=out)
    if keepdims:
        return out.reshape(tuple(1 if a in axes else n for a, n in enumerate(x.shape)))
    return out


_ROW_BYTES = 256  # rows up to this long: a transposed copy is cheaper than NumPy's row loop
_BLOCK = 64  # rows transposed together (a block of 16 KiB at most: in the L1 cache)


def max_last(x: Any) -> Any:
    """``numpy.max(x, axis=-1, keepdims=True)``, faster for short rows (up to 256 bytes).

    NumPy's maximum along a contiguous last axis costs about 0.1 us per row, more than the
    arithmetic of a row of 10 classes or 64 keys (the shift of a softmax).  Here blocks of 64
    rows are copied transposed, so that NumPy's loop runs along the rows (an elementwise
    maximum, vectorised).  The maximum is exact, so the route does not change it; NaN
    propagates as in NumPy, and of +0.0 and -0.0 either may come back (a softmax's shift,
    where that cannot matter).

    >>> import numpy
    >>> x = numpy.random.default_rng(0).standard_normal((300, 10))
    >>> bool((max_last(x) == x.max(axis=-1, keepdims=True)).all())
    True
    """
    n = x.shape[-1] if type(x) is numpy.ndarray and x.ndim >= 2 else 0
    if n < 2 or x.dtype.kind != "f" or n * x.itemsize > _ROW_BYTES or x.size < 4 * _BLOCK:
        return numpy.max(x, axis=-1, keepdims=True)
    rows = x.reshape(-1, n)
    r = rows.shape[0]
    full = r - r % _BLOCK
    out = numpy.empty(r, x.dtype)
    blocks = rows[:full].reshape(-1, _BLOCK, n)
    moved = numpy.ascontiguousarray(numpy.swapaxes(blocks, 1, 2))
    numpy.maximum.reduce(moved, axis=1, out=out[:full].reshape(-1, _BLOCK))
    if full < r:
        numpy.maximum.reduce(rows[full:], axis=-1, out=out[full:])
    return out.reshape(x.shape[:-1] + (1,))


_ACCUMULATE_SLICES = 512  # running sums over at least this many slices: a call per step


def accumulate(ufunc: numpy.ufunc, x: Any, axis: int) -> Any:
    """``ufunc.accumulate(x, axis=axis)`` (``numpy.cumsum``, ``numpy.cumprod``): the same
    steps in the same order, one ufunc call per step across the slices where there are many
    (NumPy's loop takes one element at a time).

    >>> x = numpy.random.default_rng(0).random((300, 6))
    >>> bool((accumulate(numpy.multiply, x, 1) == numpy.cumprod(x, axis=1)).all())
    True
    """
    # real floats only: a complex product's loop across slices rounds otherwise than
    # accumulate's one-at-a-time loop (its own formula); a real sum or product is one rounding
    if type(x) is numpy.ndarray and x.ndim >= 2 and x.dtype.kind == "f":
        n = x.shape[axis]
        if n > 1 and x.size >= _ACCUMULATE_SLICES * n:
            out = numpy.empty_like(x)
            steps, into = numpy.moveaxis(x, axis, 0), numpy.moveaxis(out, axis, 0)
            into[0] = steps[0]
            for k in range(1, n):
                ufunc(into[k - 1], steps[k], out=into[k])
            return out
    return ufunc.accumulate(x, axis=axis)
