"""Elementwise arithmetic of two arrays broadcast against each other over short rows.

NumPy runs an elementwise ufunc as an inner loop over the trailing axes that every operand
covers evenly.  Where one operand is broadcast across a row of a few entries (the pairwise
differences ``X[:, None, :] - C[None, :, :]`` of points in a few dimensions), that loop
runs a few elements per call and costs 2-6x its arithmetic.  :func:`binary` takes another
route there; the values are NumPy's to the bit (each element is one operation, whatever the
order of the loops):

* a last axis of at most 4 entries (coordinates in 2-D and 3-D): one call per entry, each
  running along the rows (``out[..., j] = ufunc(x[..., j], y[..., j])``), 2-5x faster;
* otherwise, rows of at most 8 entries that one operand spans whole: that operand is copied
  into the result first, and the ufunc runs in place with the other operand, whose rows are
  long (1.2-1.5x faster).

Comparisons of two float arrays (``x == m`` against a window's maximum) and a float array times
a boolean mask (the mask cast to the float's dtype first) take the per-entry route too: the
gradient through a 2 x 2 max-pooling window, 3-4x faster.

Only plain float32/float64 arrays of one dtype, C-contiguous, with a result of 4096 elements
or more take these routes; everything else is the ufunc itself.

Example
-------
>>> import numpy
>>> from chainrule.engine.broadcast import binary
>>> X, C = numpy.ones((300, 3)), numpy.arange(90.0).reshape(30, 3)
>>> D = binary(numpy.subtract, X[:, None, :], C[None, :, :])
>>> D.shape, bool((D == X[:, None, :] - C[None, :, :]).all())
((300, 30, 3), True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy

_MIN_SIZE = 4096  # below this a call's fixed cost is all there is
_SHORT = 16  # NumPy's inner loop shorter than this costs more than its arithmetic
_FEW = 4  # a last axis of at most this many entries: one call per entry
_COPY = 8  # NumPy's inner loop at most this long: copy the short operand first

NONE, PER_ENTRY, COPY_FIRST = 0, 1, 2


_ROUTES: dict[tuple[Any, Any], int] = {}  # route's answers by shapes (a loop asks again and again)
_MAX_ROUTES = 4096  # ... at most this many kept; then the table starts afresh


def route(xshape: tuple[int, ...], yshape: tuple[int, ...]) -> int:
    """How :func:`binary` computes an elementwise ufunc of C-contiguous float arrays of these
    shapes (one dtype): :data:`NONE` (the ufunc itself), :data:`PER_ENTRY` or
    :data:`COPY_FIRST` (jit's NumPy backend asks the same question of static shapes).

    >>> route((200, 1, 3), (1, 200, 3)) == PER_ENTRY, route((2000, 1, 8), (1, 16, 8))
    (True, 2)
    >>> route((200, 3), (200, 3)), route((3000, 10), (10,)), route((10, 1, 3), (1, 10, 3))
    (0, 0, 0)
    """
    key = (xshape, yshape)
    how = _ROUTES.get(key)
    if how is None:
        if len(_ROUTES) >= _MAX_ROUTES:
            _ROUTES.clear()
        how = _ROUTES[key] = _route(tuple(xshape), tuple(yshape))
    return how


def _route(xshape: tuple[int, ...], yshape: tuple[int, ...]) -> int:
    if xshape == yshape:
        return NONE
    nd = max(len(xshape), len(yshape))
    if nd < 3:
        return NONE  # a matrix and a row or column: NumPy's loop costs 1 ns an element
    xs = (1,) * (nd - len(xshape)) + tuple(xshape)
    ys = (1,) * (nd - len(yshape)) + tuple(yshape)
    try:
        shape = numpy.broadcast_shapes(xs, ys)
    except ValueError:
        return NONE  # NumPy raises its own error
    inner = _inner(xs, ys, shape)
    if math.prod(shape) < _MIN_SIZE or inner >= _SHORT:
        return NONE  # small, or NumPy's inner loop is long enough
    if shape[-1] <= _FEW and _inner(xs[:-1], ys[:-1], shape[:-1]) >= _SHORT:
        return PER_ENTRY  # (each entry's loop runs over the axes before the last, coalesced)
    short, long = sorted((_run(xs, shape), _run(ys, shape)))
    if inner <= _COPY and short == shape[-1] and long >= _SHORT:
        return COPY_FIRST  # (not a column broadcast along the rows: its copy is as slow)
    return NONE


def _run(s: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """The entries an operand of shape ``s`` covers contiguously at the end of ``shape``."""
    n = 1
    for a, b in zip(reversed(s), reversed(shape)):
        if a != b:
            break
        n *= b
    return n


def _inner(xs: tuple[int, ...], ys: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """The length of NumPy's inner loop: the trailing axes every operand covers evenly
    (all of them, or none: broadcast)."""
    n = 1
    full_x = full_y = ones_x = ones_y = True
    for i in range(len(shape) - 1, -1, -1):
        full_x = full_x and xs[i] == shape[i]
        ones_x = ones_x and xs[i] == 1
        full_y = full_y and ys[i] == shape[i]
        ones_y = ones_y and ys[i] == 1
        if not ((full_x or ones_x) and (full_y or ones_y)):
            break
        n *= shape[i]
    return n


# Comparisons of two float arrays take the per-entry route too (their result is boolean).
COMPARISONS = frozenset(
    (numpy.equal, numpy.not_equal, numpy.less, numpy.less_equal, numpy.greater,
     numpy.greater_equal)
)  # fmt: skip


def binary(ufunc: numpy.ufunc, x: Any, y: Any, out: Any = None) -> Any:
    """``ufunc(x, y, out=out)`` for an elementwise binary ufunc, faster where ``x`` and ``y``
    are broadcast against each other over short rows (see the module's docstring).  ``out``,
    if given, is a new array of the result's shape and dtype, or ``x`` or ``y`` itself.
    A comparison of two float arrays, and a float array times a boolean mask (the gradient
    through a max-pooling window), take the per-entry route as well.

    >>> P = numpy.arange(12.0).reshape(4, 3)
    >>> bool((binary(numpy.subtract, P[:, None], P[None]) == P[:, None] - P[None]).all())
    True
    """
    if (
        type(x) is numpy.ndarray
        and type(y) is numpy.ndarray
        and x.shape != y.shape
        and x.flags.c_contiguous
        and y.flags.c_contiguous
    ):
        if ufunc is numpy.multiply and x.dtype != y.dtype and route(x.shape, y.shape):
            x, y = _unmasked(x, y)  # a float times a mask: the mask in the float's dtype
        if x.dtype == y.dtype and (x.dtype.char == "d" or x.dtype.char == "f"):
            how = route(x.shape, y.shape)
            if ufunc in COMPARISONS:
                if how == PER_ENTRY and out is None:
                    return _routed(ufunc, x, y, how, numpy.empty(_shape(x, y), numpy.bool_))
            # into an operand, only one entry at a time: a copy first would overwrite it
            elif how == PER_ENTRY or (how == COPY_FIRST and out is None):
                return _routed(ufunc, x, y, how, out)
    return ufunc(x, y) if out is None else ufunc(x, y, out=out)


def _shape(x: Any, y: Any) -> tuple[int, ...]:
    return numpy.broadcast_shapes(x.shape, y.shape)


def _unmasked(x: Any, y: Any) -> tuple[Any, Any]:
    """``x`` and ``y`` with a boolean one of them as 0.0/1.0 in the other's float dtype (the
    same products: NumPy casts the mask to the float's dtype itself, element by element)."""
    for a, b in ((x, y), (y, x)):
        if a.dtype == numpy.bool_ and (b.dtype.char == "d" or b.dtype.char == "f"):
            cast = a.astype(b.dtype)
            return (cast, b) if a is x else (b, cast)
    return x, y


def _routed(ufunc: numpy.ufunc, x: Any, y: Any, how: int, out: Any) -> Any:
    shape = _shape(x, y)
    if out is None:
        out = numpy.empty(shape, x.dtype)
    if how == PER_ENTRY:
        xs = x.reshape((1,) * (len(shape) - x.ndim) + x.shape)
        ys = y.reshape((1,) * (len(shape) - y.ndim) + y.shape)
        for j in range(shape[-1]):
            ufunc(
                xs[..., j if xs.shape[-1] > 1 else 0],
                ys[..., j if ys.shape[-1] > 1 else 0],
                out=out[..., j],
            )
    elif _run(x.shape, shape) <= _run(y.shape, shape):
        out[...] = x  # the operand broadcast over short rows: copied, once
        ufunc(out, y, out=out)
    else:
        out[...] = y
        ufunc(x, out, out=out)
    return out
