"""Primitives that Numba needs as statements (scatters, sorts, stable functions):
``(writer, value, name) -> (lines, layout)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy

from chainrule.engine import primitives as P
from chainrule.program.ir import Value
from chainrule.program.notation import ATOM, PRODUCT, SUM

from .common import _dt, _dtype, _Expr, _shape
from .forms import _along_last, _leading_index, _lin_text
from .fusion import fused_scatter

if TYPE_CHECKING:  # the writer imports this table; the forms only receive one
    from .writer import NumbaWriter


# ---------------------------------------------------------------------------------------------
# Statements: (writer, value, name) -> (lines, layout)
# ---------------------------------------------------------------------------------------------

Lines = Callable[["NumbaWriter", Value, str], "tuple[list[str], str]"]
_LINES: dict[P.Primitive, Lines] = {}


def _lines(*prims: P.Primitive) -> Callable[[Lines], Lines]:
    def register(f: Lines) -> Lines:
        for p in prims:
            _LINES[p] = f
        return f

    return register


def _scatter_into(
    w: NumbaWriter,
    name: str,
    base: str,
    lin: numpy.ndarray,
    g: Any,
    unique: bool,
    shape: tuple[int, ...],
) -> list[str]:
    k = w.const_array(numpy.ascontiguousarray(lin).ravel().astype(numpy.intp))
    kind = "set" if unique else "add"
    if _shape(g) == ():
        call = f"{w.helper(f'_scatter_{kind}_s')}({name}, {k}, {w.text(g, 0)})"
    else:
        gt = w.text(g, ATOM)
        if _shape(g) != lin.shape:
            gt = f"numpy.ascontiguousarray(numpy.broadcast_to({gt}, {lin.shape}))"
        elif w.layout(g) != "C":
            gt = f"numpy.ascontiguousarray({gt})"
        call = f"{w.helper(f'_scatter_{kind}')}({name}, {k}, {gt}.ravel())"
    last = f"{name} = {name}[0]" if shape == () else f"{name} = {name}.reshape({shape})"
    return [f"{name} = {base}", call, last]


@_lines(P.scatter_add)
def _scatter_add_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    g, index, shape, unique = v.args
    shape = tuple(shape)
    size = math.prod(shape)
    lin = numpy.arange(size, dtype=numpy.intp).reshape(shape)[index]
    base = f"numpy.zeros({size}, {_dt(v.dtype)})"
    return _scatter_into(w, name, base, numpy.asarray(lin), g, bool(unique), shape), "C"


@_lines(P.setitem)
def _setitem_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x, val = v.args
    shape = _shape(x)
    size = math.prod(shape)
    lin = numpy.arange(size, dtype=numpy.intp).reshape(shape)[v.kw["index"]]
    base = f"{w.flat(x)}.copy()" if shape != () else f"numpy.full(1, {w.text(x)})"
    if _dtype(x) != numpy.dtype(v.dtype):
        base = f"{base}.astype({_dt(v.dtype)})"
    return _scatter_into(w, name, base, numpy.asarray(lin), val, True, shape), "C"


def _spread_rows(
    w: NumbaWriter, g: Any, bshape: tuple[int, ...], rest: tuple[int, ...]
) -> tuple[str, str] | None:
    """For ``g`` an unnamed ``broadcast_to`` that repeats whole rows of a smaller array (the
    gradient of a mean over the rows read, ``E[tokens].mean(axis=1)``): that array as
    (rows, rest) and the constant row each of g's rows copies, so the scatter reads them in
    place instead of making the repeated array."""
    if not (isinstance(g, Value) and g.prim is P.broadcast_to and g.id not in w.names):
        return None
    src = g.args[0]
    full = bshape + rest
    ss = _shape(src)
    if _shape(g) != full or len(ss) > len(full):
        return None
    ss = (1,) * (len(full) - len(ss)) + tuple(ss)
    if ss[len(bshape) :] != rest:
        return None
    lead = ss[: len(bshape)]
    n = math.prod(lead)
    rows = numpy.broadcast_to(numpy.arange(n, dtype=numpy.intp).reshape(lead), bshape).ravel()
    text = f"numpy.ascontiguousarray({w.text(src, ATOM)}).reshape(({n}, {math.prod(rest)}))"
    return text, w.const_array(rows)


@_lines(P.scatter)
def _scatter_dyn_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    g = v.args[0]
    arrays = v.args[1:]
    template = v.kw["template"]
    shape = tuple(v.kw["shape"])
    lead, k, bshape = _leading_index(template, arrays, "scatter")
    rest = shape[k:]
    m = math.prod(rest)
    n = math.prod(bshape)
    lin = _lin_text(w, lead, shape[:k], bshape)
    spread = _spread_rows(w, g, bshape, rest)
    if spread is not None:  # g repeats rows of a smaller array: read them where they are
        src, rows = spread
        return [
            f"{name} = numpy.zeros(({math.prod(shape[:k])}, {m}), {_dt(v.dtype)})",
            f"{w.helper('_add_rows_of')}({name}, {lin}, {src}, {rows})",
            f"{name} = {name}.reshape({shape})",
        ], "C"
    if _shape(g) == bshape + rest and rest:  # g's elements computed where they are added
        fused = fused_scatter(w, g, len(bshape), name, lin)
        if fused is not None:
            return [
                f"{name} = numpy.zeros(({math.prod(shape[:k])}, {m}), {_dt(v.dtype)})",
                fused,
                f"{name} = {name}.reshape({shape})",
            ], "C"
    gt = w.text(g, ATOM)
    if _shape(g) != bshape + rest:
        gt = (
            f"numpy.broadcast_to({gt}, {bshape + rest})"
            if _shape(g) != ()
            else f"numpy.full({bshape + rest}, {gt})"
        )
    gt = f"numpy.ascontiguousarray({gt}).reshape(({n}, {m}))"
    lines = [
        f"{name} = numpy.zeros(({math.prod(shape[:k])}, {m}), {_dt(v.dtype)})",
        f"{w.helper('_add_rows')}({name}, {lin}, {gt})",
        f"{name} = {name}.reshape({shape})",
    ]
    return lines, "C"


_FEW_PARTS = 8


@_lines(P.concatenate, P.stack)
def _concatenate_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    """Numba's ``concatenate`` (``stack``) of a few parts; of more, one array with each part
    copied into its place: Numba types ``numpy.concatenate`` of a tuple of n arrays, and n
    slice assignments, with code that grows with n (the 50 steps of a merged RNN product: a
    minute of compiling); a call of one helper per part does not."""
    shape = tuple(v.shape)
    axis = int(v.kw.get("axis", 0))
    axis += len(shape) if axis < 0 else 0
    if len(v.args) <= _FEW_PARTS:  # Numba's own: quick to compile, and a copy a row
        parts = []
        for a in v.args:
            t = w.text(a, ATOM)
            if _shape(a) == ():
                t = f"numpy.full((), {t})"
            parts.append(w.to_dtype(t, _dtype(a), v.dtype, False))
        fn = "concatenate" if v.prim is P.concatenate else "stack"
        return [f"{name} = numpy.{fn}(({', '.join(parts)},), axis={axis})"], "C"
    outer, total, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])
    lines = [f"{name} = numpy.empty(({outer}, {total}, {inner}), {_dt(v.dtype)})"]
    at = 0
    for a in v.args:
        n = 1 if v.prim is P.stack else _shape(a)[axis]
        t = w.text(a, ATOM)
        if _shape(a) == ():  # (a stack of scalars)
            lines.append(f"{name}[0, {at}, 0] = {t}")
        elif outer == 1:  # a run of the flat array
            lines.append(f"{w.helper('_put_flat')}({name}.ravel(), {at * inner}, {t})")
        else:
            lines.append(f"{w.helper('_put_block')}({name}, {at}, {n}, {t})")
        at += n
    lines.append(f"{name} = {name}.reshape({shape})")
    return lines, "C"


@_lines(P.sort_unpermute)
def _unsort_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    g, x = v.args
    text, _, lay = _along_last(
        w, v, x, g, lambda x2, g2: f"{w.helper('_sort_unpermute_last')}({g2}, {x2})"
    )
    return [f"{name} = {text}"], lay


def _bind(w: NumbaWriter, name: str, x: Any) -> tuple[list[str], Any]:
    """Evaluate the argument once: bind it to ``name`` unless it is already a name."""
    text, _ = w.ref(x)
    if text.isidentifier() or not isinstance(x, Value):
        return [], x
    return [f"{name} = {text}"], _Expr(name, _shape(x), _dtype(x))


@_lines(P.logsumexp)
def _lse_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x = v.args[0]
    axis, keep = v.kw.get("axis"), bool(v.kw.get("keepdims", False))
    bind, xx = _bind(w, name, x)
    shape, dt = _shape(x), _dtype(x)
    tx = w.text(xx, SUM + 1)
    mk, _ = w.reduce("max", xx, axis, True, dt)
    e = _Expr(f"numpy.exp({tx} - numpy.nan_to_num({mk}))", shape, dt)
    s, _ = w.reduce("sum", e, axis, keep, v.dtype)
    m, _ = w.reduce("max", xx, axis, keep, dt)
    return bind + [f"{name} = numpy.log({s}) + numpy.nan_to_num({m})"], "C"


@_lines(P.softmax)
def _softmax_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x = v.args[0]
    axis = v.kw.get("axis")
    bind, xx = _bind(w, name, x)
    shape, dt = _shape(x), _dtype(x)
    mk, _ = w.reduce("max", xx, axis, True, dt)
    lines = bind + [f"{name} = numpy.exp({w.text(xx, SUM + 1)} - {mk})"]
    e = _Expr(name, shape, v.dtype)
    s, _ = w.reduce("sum", e, axis, True, v.dtype)
    return lines + [f"{name} = {name} / {s}"], "C"


@_lines(P.log_softmax)
def _log_softmax_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x = v.args[0]
    axis = v.kw.get("axis")
    bind, xx = _bind(w, name, x)
    shape, dt = _shape(x), _dtype(x)
    mk, _ = w.reduce("max", xx, axis, True, dt)
    lines = bind + [f"{name} = {w.text(xx, SUM + 1)} - {mk}"]
    e = _Expr(f"numpy.exp({name})", shape, v.dtype)
    s, _ = w.reduce("sum", e, axis, True, v.dtype)
    return lines + [f"{name} = {name} - numpy.log({s})"], "C"


@_lines(P.xlogy)
def _xlogy_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x, y = v.args
    bind, xx = _bind(w, name, x)
    ctx = v.dtype
    tx = w.text(xx, PRODUCT + 1)
    ty = w.text(y, 0, ctx)
    if v.shape == ():
        inner = f"numpy.log({w.typed(1, ctx)} if {tx} == 0 else {ty})"
        return bind + [f"{name} = {w.typed(0, ctx)} if {tx} == 0 else {tx} * {inner}"], "S"
    zero_x = f"{tx} == 0"
    if _shape(xx) != v.shape:
        zero_x = f"numpy.broadcast_to({zero_x}, {v.shape})"
    inner = f"numpy.log(numpy.where({zero_x}, {w.typed(1, ctx)}, {ty}))"
    return bind + [f"{name} = numpy.where({zero_x}, {w.typed(0, ctx)}, {tx} * {inner})"], "C"
