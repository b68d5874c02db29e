"""NumPy's signatures, bound: each NumPy function that has a primitive, with its arguments
(``axis=``, ``keepdims=``, ``out=``, ``dtype=``, shapes, indices) checked and normalised into
``(primitive, inputs, params)``.

``FUNCTIONS`` maps the NumPy function to its binder; a tensor's ``__array_function__`` looks the
function up here, binds the call and records the primitive. The table is complete once this
module is imported.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy

from .primitives import (
    Primitive,
    Slot,
    _ndim,
    _no_out,
    _NoValue,
    _one_axis,
    _shape,
    add,
    amax,
    amin,
    broadcast_to,
    cholesky,
    clip,
    concatenate,
    copy,
    cumprod,
    cumsum,
    det,
    diagonal,
    divide,
    dot,
    einsum,
    fftn,
    flip,
    gather,
    getitem,
    i0,
    ifftn,
    imag,
    inner,
    inv,
    irfftn,
    maximum,
    mean,
    minimum,
    moveaxis,
    multiply,
    norm,
    normalize_axis,
    outer,
    pad,
    prod,
    real,
    repeat,
    reshape,
    rfftn,
    roll,
    sliding_window_view,
    solve,
    sort,
    sqrt,
    stack,
    std,
    sum_,
    swapaxes,
    take,
    take_along_axis,
    tensordot,
    tile,
    trace,
    transpose,
    tril,
    triu,
    var,
    vdot,
    where,
)
from .scatter import axis_range

Binder = Callable[..., "tuple[Primitive, tuple[Any, ...], dict[str, Any]]"]
FUNCTIONS: dict[Callable[..., Any], Binder] = {}


def _binds(*funcs: Callable[..., Any]) -> Callable[[Binder], Binder]:
    def register(binder: Binder) -> Binder:
        for f in funcs:
            FUNCTIONS[f] = binder
        return binder

    return register


def _masked(a: Any, where: Any, fill: Any) -> Any:
    """``a`` with the places ``where`` leaves out replaced by ``fill`` (a reduction's identity
    or ``initial``): NumPy's reductions with ``where=`` skip them; no gradient reaches them."""
    if where is _NoValue or where is True:
        return a
    return numpy.where(where, a, fill)


def _identity_of(prim: Primitive, a: Any, initial: Any) -> Any:
    if prim is sum_:
        return 0
    if prim is prod:
        return 1
    if initial is _NoValue:
        raise ValueError(
            f"reduction operation '{'maximum' if prim is amax else 'minimum'}' does not have an "
            "identity, so to use a where mask one has to specify 'initial'"
        )
    return initial


def _reduce_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = _NoValue,
        where: Any = _NoValue,
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(fname, out)
        if dtype is not None:
            a = a.astype(dtype)
        params = {"axis": normalize_axis(axis, _ndim(a), fname), "keepdims": bool(keepdims)}
        if initial is _NoValue and (where is _NoValue or where is True):
            return prim, (a,), params
        # NumPy's where= and initial=: the left-out places hold the identity (max and min:
        # initial), and initial takes part in the reduction as one more value
        a = _masked(a, where, _identity_of(prim, a, initial))
        if initial is _NoValue:
            return prim, (a,), params
        if prim is amax or prim is amin:
            if where is _NoValue or where is True:
                # one more value: initial, first (ties between it and the data go to the data)
                shape = list(_shape(a))
                ax = params["axis"]
                axes = range(len(shape)) if ax is None else (ax,) if isinstance(ax, int) else ax
                for i in axes:
                    shape[i] = 1
                first = numpy.full(shape, initial, dtype=a.dtype)
                both = (maximum if prim is amax else minimum)(a, first)
                return prim, (both,), params
            return prim, (a,), params  # the left-out places already hold initial
        reduced = prim(a, **params)  # NumPy folds initial in first: sum + initial, prod * initial
        return (add if prim is sum_ else multiply), (reduced, initial), {}

    return bind


FUNCTIONS[numpy.sum] = _reduce_binder(sum_, "sum")
FUNCTIONS[numpy.prod] = _reduce_binder(prod, "prod")
FUNCTIONS[numpy.max] = FUNCTIONS[numpy.amax] = _reduce_binder(amax, "max")
FUNCTIONS[numpy.min] = FUNCTIONS[numpy.amin] = _reduce_binder(amin, "min")


@_binds(numpy.mean)
def _mean(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("mean", out)
    if dtype is not None:
        a = a.astype(dtype)
    ax = normalize_axis(axis, _ndim(a), "mean")
    if where is _NoValue or where is True:
        return mean, (a,), {"axis": ax, "keepdims": bool(keepdims)}
    # NumPy's steps: the sum of the places where= keeps over their count
    if numpy.dtype(a.dtype).kind in "iub":
        a = a.astype(numpy.float64)
    total = sum_(_masked(a, where, 0), axis=ax, keepdims=bool(keepdims))
    return divide, (total, _count(a, where, ax, bool(keepdims))), {}


def _count(a: Any, where: Any, axis: Any, keepdims: bool) -> Any:
    """How many places ``where`` keeps along ``axis``, in ``a``'s float dtype."""
    mask = numpy.broadcast_to(where, _shape(a))
    count = numpy.sum(mask, axis=axis, dtype=numpy.intp, keepdims=keepdims)
    return count.astype(numpy.empty(0, a.dtype).real.dtype)


def _moment_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        ddof: float = 0,
        keepdims: bool = False,
        *,
        where: Any = _NoValue,
        mean: Any = _NoValue,
        correction: Any = _NoValue,
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(fname, out)
        if correction is not _NoValue:
            ddof = correction
        if dtype is not None:
            a = a.astype(dtype)
        ax = normalize_axis(axis, _ndim(a), fname)
        if (where is _NoValue or where is True) and mean is _NoValue:
            return prim, (a,), {"axis": ax, "ddof": ddof, "keepdims": bool(keepdims)}
        # NumPy's steps with where= (or a given mean=): the mean of the kept places, squared
        # deviations summed over them, divided by max(count - ddof, 0)
        if numpy.dtype(a.dtype).kind in "iub":
            a = a.astype(numpy.float64)
        if mean is _NoValue:
            centre = sum_(_masked(a, where, 0), axis=ax, keepdims=True) / _count(a, where, ax, True)
        else:
            centre = mean
        dev = a - centre
        sq = real(dev * numpy.conjugate(dev)) if numpy.dtype(a.dtype).kind == "c" else dev * dev
        total = sum_(_masked(sq, where, 0), axis=ax, keepdims=bool(keepdims))
        kept = True if where is _NoValue else where
        dof = numpy.maximum(_count(a, kept, ax, bool(keepdims)) - ddof, 0)
        if prim is var:
            return divide, (total, dof), {}
        return sqrt, (total / dof,), {}

    return bind


FUNCTIONS[numpy.var] = _moment_binder(var, "var")
FUNCTIONS[numpy.std] = _moment_binder(std, "std")


def _cumulative_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any, axis: Any = None, dtype: Any = None, out: Any = None
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(fname, out)
        if dtype is not None:
            a = a.astype(dtype)
        if axis is None:
            a = ravel_like(a)
            axis = 0
        return prim, (a,), {"axis": normalize_axis(axis, _ndim(a), fname)}

    return bind


FUNCTIONS[numpy.cumsum] = _cumulative_binder(cumsum, "cumsum")
FUNCTIONS[numpy.cumprod] = _cumulative_binder(cumprod, "cumprod")


def ravel_like(a: Any) -> Any:
    """``a.reshape(-1)`` written so that it works on arrays and tensors alike."""
    return numpy.reshape(a, (-1,))


def _norm(
    x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(x)
    ax = normalize_axis(axis, nd, "linalg.norm")
    vector = (
        (ax is None and nd == 1) or isinstance(ax, int) or (isinstance(ax, tuple) and len(ax) == 1)
    )
    if isinstance(ax, tuple) and len(ax) == 1:
        ax = ax[0]
    if vector:
        if ord is not None and not isinstance(ord, (int, float)):
            raise TypeError(f"numpy.linalg.norm: ord={ord!r} is not a vector norm")
    elif ord not in (None, "fro"):
        raise TypeError(f"numpy.linalg.norm: ord={ord!r} is a matrix norm made of others")
    if nd == 0:
        raise ValueError("numpy.linalg.norm: needs at least a 1-d input")
    return norm, (x,), {"ord": ord, "axis": ax, "keepdims": bool(keepdims)}


def _scalar_as_array(a: Any, b: Any) -> tuple[Any, Any]:
    scalar = (int, float, complex)
    return (
        numpy.asarray(a) if isinstance(a, scalar) else a,
        numpy.asarray(b) if isinstance(b, scalar) else b,
    )


@_binds(numpy.dot)
def _dot(a: Any, b: Any, out: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("dot", out)
    if isinstance(a, (int, float, complex)) or isinstance(b, (int, float, complex)):
        # NumPy: dot with a scalar is multiply, the scalar taken as an array (not a weak scalar)
        return multiply, _scalar_as_array(a, b), {}
    return dot, (a, b), {}


@_binds(numpy.real)
def _real(val: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return real, (val,), {}


@_binds(numpy.imag)
def _imag(val: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return imag, (val,), {}


@_binds(numpy.i0)
def _i0(x: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return i0, (x,), {}


@_binds(numpy.vdot)
def _vdot(a: Any, b: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return vdot, (a, b), {}


@_binds(numpy.inner)
def _inner(a: Any, b: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if isinstance(a, (int, float, complex)) or isinstance(b, (int, float, complex)):
        return multiply, _scalar_as_array(a, b), {}  # as NumPy does, like dot
    return inner, (a, b), {}


@_binds(numpy.outer)
def _outer(a: Any, b: Any, out: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("outer", out)
    return outer, (a, b), {}


def tensordot_axes(axes: Any, nda: int, ndb: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Normalise ``tensordot``'s ``axes`` argument to two tuples of non-negative axes."""
    if isinstance(axes, int):
        return tuple(range(nda - axes, nda)), tuple(range(axes))
    a_axes, b_axes = axes
    a_axes = (a_axes,) if isinstance(a_axes, int) else tuple(a_axes)
    b_axes = (b_axes,) if isinstance(b_axes, int) else tuple(b_axes)
    if len(a_axes) != len(b_axes):
        raise ValueError(f"tensordot: axes {axes!r} pair up unequal numbers of axes")
    return (
        tuple(_one_axis(a, nda, "tensordot") for a in a_axes),
        tuple(_one_axis(b, ndb, "tensordot") for b in b_axes),
    )


@_binds(numpy.tensordot)
def _tensordot(a: Any, b: Any, axes: Any = 2) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return tensordot, (a, b), {"axes": tensordot_axes(axes, _ndim(a), _ndim(b))}


def _sublists_to_subscripts(operands: tuple[Any, ...]) -> tuple[Any, ...]:
    """``einsum(a, [0, 1], b, [1, 2], [0, 2])`` as ``einsum('ab,bc->ac', a, b)``."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def spell(sub: Any) -> str:
        chars = []
        for s in sub:
            if s is Ellipsis:
                chars.append("...")
                continue
            try:
                if isinstance(s, (bool, numpy.bool_)):
                    raise TypeError
                k = operator.index(s)
            except TypeError:
                raise TypeError(
                    "numpy.einsum: each subscript must be either an integer or an ellipsis "
                    f"(a sublist holds integers 0-51 or Ellipsis), got {sub!r}"
                ) from None
            if not 0 <= k < len(letters):
                raise ValueError(
                    f"numpy.einsum: subscript {k} in sublist {sub!r} is not within the valid "
                    "range [0, 52)"
                )
            chars.append(letters[k])
        return "".join(chars)

    ops = list(operands)
    out = spell(ops.pop()) if len(ops) % 2 == 1 else None
    spec = ",".join(spell(sub) for sub in ops[1::2]) + ("" if out is None else "->" + out)
    return (spec, *ops[0::2])


@_binds(numpy.einsum)
def _einsum(
    *operands: Any, out: Any = None, optimize: Any = False, **kwargs: Any
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("einsum", out)
    if kwargs:
        raise TypeError(f"numpy.einsum: {sorted(kwargs)} are not supported on chainrule tensors")
    if not operands:
        raise TypeError("numpy.einsum: no operands")
    if not isinstance(operands[0], str):
        operands = _sublists_to_subscripts(operands)
    subscripts = explicit_einsum(operands[0], [_ndim(o) for o in operands[1:]])
    return einsum, tuple(operands[1:]), {"subscripts": subscripts, "optimize": optimize}


def explicit_einsum(spec: str, ndims: list[int]) -> str:
    """Rewrite an einsum spec with '->' and without '...', so rules can read it letter by letter."""
    spec = spec.replace(" ", "")
    ins, arrow, outs = spec.partition("->")
    terms = ins.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum: {spec!r} names {len(terms)} operands, got {len(ndims)}")
    used = set(spec) - set(",.->")
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
    n_ell = max(
        (nd - len(t.replace("...", "")) for t, nd in zip(terms, ndims) if "..." in t), default=0
    )
    ell = "".join(next(free) for _ in range(n_ell))
    new_terms = []
    for t, nd in zip(terms, ndims):
        if "..." in t:
            k = nd - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k :])
        if len(t) != nd:
            raise ValueError(
                f"einsum: term {t!r} of {spec!r} does not match an operand with {nd} dimensions"
            )
        new_terms.append(t)
    if arrow:
        out = outs.replace("...", ell)
    else:
        counts: dict[str, int] = {}
        for c in "".join(new_terms):
            counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ",".join(new_terms) + "->" + out


@_binds(numpy.trace)
def _trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("trace", out)
    nd = _ndim(a)
    return (
        trace,
        (a,),
        {
            "offset": int(offset),
            "axis1": _one_axis(axis1, nd, "trace"),
            "axis2": _one_axis(axis2, nd, "trace"),
        },
    )


@_binds(numpy.diagonal)
def _diagonal(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(a)
    return (
        diagonal,
        (a,),
        {
            "offset": int(offset),
            "axis1": _one_axis(axis1, nd, "diagonal"),
            "axis2": _one_axis(axis2, nd, "diagonal"),
        },
    )


def _check_shape(shape: Any, fname: str) -> tuple[int, ...]:
    if type(shape) is tuple:  # the common case: a tuple of ints, checked without exceptions
        for s in shape:
            if type(s) is not int:
                break
        else:
            return shape
    try:
        return (operator.index(shape),)
    except TypeError:
        try:
            return tuple(operator.index(s) for s in shape)
        except TypeError:
            raise TypeError(
                f"{fname}: shape must be an int or a sequence of ints, got {shape!r}"
            ) from None


@_binds(numpy.reshape)
def _reshape(
    a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None, copy: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    shape = newshape if shape is None else shape
    new = resolve_shape(_shape(a), _check_shape(shape, "reshape"))
    if order == "C":
        return reshape, (a,), {"shape": new}
    if order == "K":
        raise ValueError("numpy.reshape: order 'K' is not permitted for reshaping")
    return _reshape_in(a, new, _layout(a, order, "reshape"))


def _layout(a: Any, order: Any, fname: str) -> str:
    """NumPy's ``order``: 'C', 'F', or for 'A' (and ravel's 'K') the order of ``a``'s memory
    (read from its values when called; inside jit or vmap, from the traced example's)."""
    if order is None:
        return "C"
    if order not in ("C", "F", "A", "K"):
        raise ValueError(f"numpy.{fname}: order must be one of 'C', 'F', 'A', or 'K' ({order!r})")
    if order in ("C", "F"):
        return str(order)
    data = a._data if hasattr(a, "_prim") else numpy.asarray(a)
    flags = data.flags
    if flags.c_contiguous or (order == "A" and not flags.f_contiguous):
        return "C"
    if flags.f_contiguous:
        return "F"
    return "K"  # ravel: the axes by their strides, largest first


def _reshape_in(
    a: Any, new: tuple[int, ...], order: str
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    """A reshape that reads and writes the elements in Fortran order (the first index fastest):
    the axes reversed, a C-order reshape to the reversed shape, the axes reversed back."""
    if order == "C":
        return reshape, (a,), {"shape": new}
    nd = _ndim(a)
    if order == "K":  # ravel's memory order: the axes sorted by the size of their strides
        strides = a._data.strides if hasattr(a, "_prim") else numpy.asarray(a).strides
        perm = sorted(range(nd), key=lambda i: -abs(strides[i]))
        return reshape, (numpy.transpose(a, perm),), {"shape": new}
    flipped = numpy.transpose(a) if nd > 1 else a
    if len(new) <= 1:
        return reshape, (flipped,), {"shape": new}
    flat = numpy.reshape(flipped, new[::-1])
    return transpose, (flat,), {"axes": tuple(range(len(new)))[::-1]}


def resolve_shape(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    """Return ``new`` with its -1 filled in, or raise NumPy's error for an impossible reshape."""
    size = math.prod(old)
    if -1 in new:
        known = math.prod(n for n in new if n != -1)
        if new.count(-1) == 1 and known and size % known == 0:
            new = tuple(size // known if n == -1 else n for n in new)
    if math.prod(new) != size or (new and min(new) < 0):
        raise ValueError(
            f"reshape: cannot reshape an array of size {size} (shape {old}) into shape {new}"
        )
    return new


@_binds(numpy.ravel)
def _ravel(a: Any, order: str = "C") -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    size = math.prod(_shape(a))
    return _reshape_in(a, (size,), "C" if order == "C" else _layout(a, order, "ravel"))


@_binds(numpy.squeeze)
def _squeeze(a: Any, axis: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    shape = _shape(a)
    ax = normalize_axis(axis, len(shape), "squeeze")
    axes = (ax,) if isinstance(ax, int) else ax
    if axes is None:
        new = tuple(n for n in shape if n != 1)
    else:
        for i in axes:
            if shape[i] != 1:
                raise ValueError(
                    f"squeeze: cannot select axis {i} of shape {shape}: its size is not 1"
                )
        new = tuple(n for i, n in enumerate(shape) if i not in axes)
    return reshape, (a,), {"shape": new}


@_binds(numpy.expand_dims)
def _expand_dims(a: Any, axis: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    shape = _shape(a)
    axes = normalize_axis(
        axis, len(shape) + (len(axis) if isinstance(axis, (tuple, list)) else 1), "expand_dims"
    )
    new = list(shape)
    for ax in (axes,) if isinstance(axes, int) else axes or ():
        new.insert(ax, 1)
    return reshape, (a,), {"shape": tuple(new)}


@_binds(numpy.transpose)
def _transpose(a: Any, axes: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(a)
    if axes is None:
        axes = tuple(range(nd))[::-1]
    axes = tuple(_one_axis(x, nd, "transpose") for x in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {nd} axes")
    return transpose, (a,), {"axes": axes}


@_binds(numpy.swapaxes)
def _swapaxes(a: Any, axis1: int, axis2: int) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(a)
    return (
        swapaxes,
        (a,),
        {"axis1": _one_axis(axis1, nd, "swapaxes"), "axis2": _one_axis(axis2, nd, "swapaxes")},
    )


@_binds(numpy.moveaxis)
def _moveaxis(
    a: Any, source: Any, destination: Any
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return moveaxis, (a,), {"source": source, "destination": destination}


@_binds(numpy.broadcast_to)
def _broadcast_to(
    array: Any, shape: Any, subok: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return broadcast_to, (array,), {"shape": _check_shape(shape, "broadcast_to")}


@_binds(numpy.concatenate)
def _concatenate(
    arrays: Any, axis: Any = 0, out: Any = None, *, dtype: Any = None, casting: str = "same_kind"
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("concatenate", out)
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is None:
        arrays = tuple(ravel_like(a) for a in arrays)
        axis = 0
    if dtype is not None:
        arrays = tuple(a.astype(dtype) for a in arrays)
    return concatenate, arrays, {"axis": _one_axis(axis, _ndim(arrays[0]), "concatenate")}


@_binds(numpy.stack)
def _stack(
    arrays: Any, axis: int = 0, out: Any = None, *, dtype: Any = None, casting: str = "same_kind"
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("stack", out)
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array to stack")
    if dtype is not None:
        arrays = tuple(a.astype(dtype) for a in arrays)
    return stack, arrays, {"axis": _one_axis(axis, _ndim(arrays[0]) + 1, "stack")}


@_binds(numpy.lib.stride_tricks.sliding_window_view)
def _sliding_window_view(
    x: Any, window_shape: Any, axis: Any = None, *, subok: bool = False, writeable: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if writeable:
        raise TypeError("sliding_window_view: writeable=True is not supported on tensors")
    nd = _ndim(x)
    window = _check_shape(window_shape, "sliding_window_view")
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = tuple(
            _one_axis(a, nd, "sliding_window_view")
            for a in ((axis,) if isinstance(axis, int) else axis)
        )
    if len(axes) != len(window):
        raise ValueError(
            f"sliding_window_view: window_shape {window} and axis {axis!r} "
            "must have the same length"
        )
    return sliding_window_view, (x,), {"window_shape": window, "axis": axes}


@_binds(numpy.flip)
def _flip(m: Any, axis: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return flip, (m,), {"axis": normalize_axis(axis, _ndim(m), "flip")}


@_binds(numpy.roll)
def _roll(
    a: Any, shift: Any, axis: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return roll, (a,), {"shift": shift, "axis": axis}


@_binds(numpy.tile)
def _tile(A: Any, reps: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    reps = _check_shape(reps, "tile")
    return tile, (A,), {"reps": reps}


@_binds(numpy.repeat)
def _repeat(
    a: Any, repeats: Any, axis: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if axis is None:
        a = ravel_like(a)
        axis = 0
    reps = repeats._data if hasattr(repeats, "_prim") else repeats
    reps = int(reps) if numpy.ndim(reps) == 0 else tuple(int(r) for r in numpy.ravel(reps))
    return repeat, (a,), {"repeats": reps, "axis": _one_axis(axis, _ndim(a), "repeat")}


# numpy.pad's modes that copy elements of the array itself: the padded array is the array read
# at an index (numpy.pad of each axis's positions), so its gradient is indexing's.
_COPYING_PADS = ("edge", "reflect", "symmetric", "wrap")


@_binds(numpy.pad)
def _pad(
    array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if mode != "constant" and (
        mode not in _COPYING_PADS or kwargs.get("reflect_type", "even") != "even"
    ):
        how = f"mode={mode!r}" + (", reflect_type='odd'" if mode in _COPYING_PADS else "")
        raise TypeError(
            f"numpy.pad: {how} has no gradient rule in chainrule; the modes 'constant', "
            "'edge', 'reflect', 'symmetric' and 'wrap' (reflect_type='even') are supported on "
            "tensors. Pad t.detach() if no gradient should flow through the padding"
        )
    nd = _ndim(array)
    width = tuple(
        tuple(int(w) for w in row)
        for row in numpy.broadcast_to(numpy.asarray(pad_width, dtype=int), (nd, 2))
    )
    if mode != "constant":
        extra = sorted(set(kwargs) - {"reflect_type"})
        if extra:
            raise TypeError(f"numpy.pad: unexpected arguments {extra} for mode={mode!r}")
        rows = [
            numpy.pad(numpy.arange(n), w, mode=mode)  # type: ignore[call-overload]
            for n, w in zip(_shape(array), width)
        ]
        return getitem, (array,), {"index": numpy.ix_(*rows)}
    cv = kwargs.pop("constant_values", 0)
    if kwargs:
        raise TypeError(f"numpy.pad: unexpected arguments {sorted(kwargs)}")
    if numpy.ndim(cv) != 0:
        raise TypeError("numpy.pad: chainrule supports one scalar constant_values")
    return pad, (array,), {"pad_width": width, "constant_values": cv}


def _plain_index(ix: Any) -> Any:
    """Indices are never differentiated: unwrap tensors used as indices."""
    return ix._data if hasattr(ix, "_prim") else ix


@_binds(numpy.take)
def _take(
    a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise"
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("take", out)
    if mode != "raise":
        raise TypeError("numpy.take: only mode='raise' is supported on chainrule tensors")
    if axis is None:
        a = ravel_like(a)
        axis = 0
    ax = _one_axis(axis, _ndim(a), "take")
    if hasattr(indices, "_prim"):  # computed indices: keep them an input (see gather)
        return gather, (a, indices), {"template": (slice(None),) * ax + (Slot(0),)}
    return take, (a,), {"indices": _plain_index(indices), "axis": ax}


@_binds(numpy.take_along_axis)
def _take_along_axis(
    arr: Any, indices: Any, axis: Any = -1
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if axis is None:
        arr = ravel_like(arr)
        axis = 0
    ax = _one_axis(axis, _ndim(arr), "take_along_axis")
    if hasattr(indices, "_prim"):  # computed indices: keep them an input (see gather)
        a_shape = _shape(arr)
        nd = len(a_shape)
        template = tuple(  # NumPy's ranges: broadcast against the indices
            Slot(0) if d == ax else axis_range(a_shape[d], d, nd) for d in range(nd)
        )
        return gather, (arr, indices), {"template": template}
    return take_along_axis, (arr,), {"indices": _plain_index(indices), "axis": ax}


@_binds(numpy.sort)
def _sort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if axis is None:
        a = ravel_like(a)
        axis = 0
    # the values of every kind agree (but for the order of -0.0 and 0.0, which NumPy's own
    # call decides); the gradient follows the stable order whatever the kind (sorting_order)
    kind = "stable" if stable else kind
    return sort, (a,), {"axis": _one_axis(axis, _ndim(a), "sort"), "kind": kind}


@_binds(numpy.triu)
def _triu(m: Any, k: int = 0) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return triu, (m,), {"k": int(k)}


@_binds(numpy.tril)
def _tril(m: Any, k: int = 0) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return tril, (m,), {"k": int(k)}


@_binds(numpy.where)
def _where(
    condition: Any, x: Any = _NoValue, y: Any = _NoValue
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if x is _NoValue or y is _NoValue:
        raise TypeError(
            "numpy.where with one argument returns indices; call it on "
            "tensor.data (indices carry no gradient)"
        )
    return where, (condition, x, y), {}


@_binds(numpy.clip)
def _clip(
    a: Any,
    a_min: Any = _NoValue,
    a_max: Any = _NoValue,
    out: Any = None,
    *,
    min: Any = _NoValue,
    max: Any = _NoValue,
    **kwargs: Any,
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("clip", out)
    lo = a_min if a_min is not _NoValue else (None if min is _NoValue else min)
    hi = a_max if a_max is not _NoValue else (None if max is _NoValue else max)
    if lo is None and hi is None:
        raise ValueError("numpy.clip: give at least one of a_min and a_max")
    return clip, (a, lo, hi), {}


@_binds(numpy.copy)
def _copy(
    a: Any, order: str = "K", subok: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return copy, (a,), {}


def _square_stack(a: Any, fname: str) -> None:
    shape = _shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise numpy.linalg.LinAlgError(
            f"numpy.linalg.{fname}: needs a square matrix or a stack of them (shape "
            f"(..., n, n)), got shape {shape}"
        )


@_binds(numpy.linalg.inv)
def _inv(a: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "inv")
    return inv, (a,), {}


@_binds(numpy.linalg.solve)
def _solve(a: Any, b: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "solve")
    return solve, (a, b), {}


@_binds(numpy.linalg.det)
def _det(a: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "det")
    return det, (a,), {}


@_binds(numpy.linalg.cholesky)
def _cholesky(
    a: Any, /, *, upper: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "cholesky")
    if upper:
        raise TypeError(
            "numpy.linalg.cholesky: upper=True is not supported on chainrule "
            "tensors; take the transpose of the lower factor"
        )
    return cholesky, (a,), {}


# --- numpy.fft -----------------------------------------------------------------------------------

_NORMS = ("backward", "ortho", "forward")


def _fft_norm(norm: Any, fname: str) -> str:
    norm = "backward" if norm is None else norm
    if norm not in _NORMS:
        raise ValueError(f"numpy.fft.{fname}: norm must be one of {_NORMS} or None, got {norm!r}")
    return str(norm)


def _fft_plan(
    a: Any, s: Any, axes: Any, fname: str, default_axes: tuple[int, ...] | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """NumPy's (s, axes) of an n-dimensional transform, as non-negative axes and lengths."""
    nd = _ndim(a)
    shape = _shape(a)
    if axes is None:
        if s is not None:
            axes = tuple(range(nd - len(s), nd))
        elif default_axes is not None:
            axes = default_axes
        else:
            axes = tuple(range(nd))
    axes = tuple(_one_axis(ax, nd, f"fft.{fname}") for ax in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(
            f"numpy.fft.{fname}: repeated axes {axes} are not supported on chainrule tensors; "
            "apply the transform twice"
        )
    if s is None:
        s = tuple(shape[ax] for ax in axes)
    s = tuple(shape[ax] if n is None or n == -1 else int(n) for n, ax in zip(s, axes))
    if len(s) != len(axes):
        raise ValueError(f"numpy.fft.{fname}: s and axes must have the same length")
    if any(n < 1 for n in s):
        raise ValueError(f"numpy.fft.{fname}: invalid number of data points {s}")
    return s, axes


def _fft_binder(prim: Primitive, fname: str, default_axes: tuple[int, ...] | None) -> Binder:
    def bind(
        a: Any, s: Any = None, axes: Any = None, norm: Any = None, out: Any = None
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(f"fft.{fname}", out)
        s, axes = _fft_plan(a, s, axes, fname, default_axes)
        return prim, (a,), {"s": s, "axes": axes, "norm": _fft_norm(norm, fname)}

    return bind


def _fft1_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        if n is None and norm is None and out is None and type(axis) is int:
            shape = _shape(a)  # the usual call, fft(x) or fft(x, axis=k): nothing to check
            if -len(shape) <= axis < len(shape) and shape[axis]:
                ax = axis % len(shape)
                return prim, (a,), {"s": (shape[ax],), "axes": (ax,), "norm": "backward"}
        _no_out(f"fft.{fname}", out)
        s, axes = _fft_plan(a, None if n is None else (n,), (axis,), fname, None)
        return prim, (a,), {"s": s, "axes": axes, "norm": _fft_norm(norm, fname)}

    return bind


def _irfft_plan(
    a: Any, s: Any, axes: Any, fname: str, default_axes: tuple[int, ...] | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """irfftn's lengths: the last axis defaults to 2 (m - 1), the others to their lengths."""
    if s is None:
        _, axes = _fft_plan(a, None, axes, fname, default_axes)
        shape = _shape(a)
        s = tuple(shape[ax] for ax in axes[:-1]) + (2 * (shape[axes[-1]] - 1),)
    return _fft_plan(a, s, axes, fname, default_axes)


def _irfft_binder(fname: str, default_axes: tuple[int, ...] | None) -> Binder:
    def bind(
        a: Any, s: Any = None, axes: Any = None, norm: Any = None, out: Any = None
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(f"fft.{fname}", out)
        s, axes = _irfft_plan(a, s, axes, fname, default_axes)
        return irfftn, (a,), {"s": s, "axes": axes, "norm": _fft_norm(norm, fname)}

    return bind


@_binds(numpy.fft.irfft)
def _irfft(
    a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("fft.irfft", out)
    s, axes = _irfft_plan(a, None if n is None else (n,), (axis,), "irfft", None)
    return irfftn, (a,), {"s": s, "axes": axes, "norm": _fft_norm(norm, "irfft")}


FUNCTIONS[numpy.fft.fft] = _fft1_binder(fftn, "fft")
FUNCTIONS[numpy.fft.ifft] = _fft1_binder(ifftn, "ifft")
FUNCTIONS[numpy.fft.rfft] = _fft1_binder(rfftn, "rfft")
FUNCTIONS[numpy.fft.fft2] = _fft_binder(fftn, "fft2", (-2, -1))
FUNCTIONS[numpy.fft.ifft2] = _fft_binder(ifftn, "ifft2", (-2, -1))
FUNCTIONS[numpy.fft.rfft2] = _fft_binder(rfftn, "rfft2", (-2, -1))
FUNCTIONS[numpy.fft.fftn] = _fft_binder(fftn, "fftn", None)
FUNCTIONS[numpy.fft.ifftn] = _fft_binder(ifftn, "ifftn", None)
FUNCTIONS[numpy.fft.rfftn] = _fft_binder(rfftn, "rfftn", None)
FUNCTIONS[numpy.fft.irfft2] = _irfft_binder("irfft2", (-2, -1))
FUNCTIONS[numpy.fft.irfftn] = _irfft_binder("irfftn", None)
