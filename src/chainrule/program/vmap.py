"""``vmap``: a function of one example, applied to a whole batch without a Python loop.

The function is recorded once on one example (shapes without the batch axis) — it may be
``grad`` of something, so the recording holds the backward pass too — and the recorded program
is then run on the batch, each operation rewritten to carry a leading batch axis: elementwise
operations broadcast it, reductions and shape operations shift their axes by one, products
become one ``einsum`` with a batch index.  Operations without such a rewrite fall back to a loop
over the batch for that operation alone.

Inside another transform (``grad`` of a function that calls ``vmap``), under ``jit`` or
``explain``, or on tensors that require grad, the batch is instead run example by example on the
recording tensors themselves, and the results stacked: slower, but every operation is recorded,
so the outer level differentiates (or traces) through it exactly. The batched program runs on
plain arrays and would cut that recording off.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import contract
from chainrule.engine import primitives as P
from chainrule.engine.pytree import flatten, tree_map, unflatten
from chainrule.engine.scatter import add_at
from chainrule.engine.tensor import Tensor, TracerBoolError, _state

from .ir import CONST, INPUT, Program, Value, build, optimize
from .trace import record

__all__ = ["vmap"]


def vmap(fun: Callable[..., Any], in_axes: Any = 0, out_axes: int = 0) -> Callable[..., Any]:
    """Vectorise ``fun`` over a batch axis of its arguments.

    ``in_axes``: an int (every argument batched along that axis), ``None`` (not batched), or a
    tuple with one entry per positional argument.  Outputs get their batch axis at
    ``out_axes``.  Per-example gradients: ``vmap(grad(loss), in_axes=(None, 0, 0))``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> loss = lambda w, x, y: ((x @ w - y) ** 2).sum()
    >>> per_example = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))
    >>> per_example(numpy.ones(2), numpy.eye(2), numpy.zeros(2)).shape
    (2, 2)
    """
    cache: dict[Any, tuple[Program, Any] | None] = {}  # None: run example by example

    @functools.wraps(fun)
    def wrapped(*args: Any) -> Any:
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(axes)} entries for {len(args)} arguments")
        size = None
        batched_args, examples, flags = [], [], []
        for i, (a, ax) in enumerate(zip(args, axes)):
            leaves, td = flatten(a)
            if ax is None:
                batched_args.append(leaves)
                examples.append(a)
                flags.append([False] * len(leaves))
                continue
            moved = []
            for leaf in leaves:
                arr = numpy.asarray(leaf._data if isinstance(leaf, Tensor) else leaf)
                if arr.ndim == 0:
                    raise ValueError(f"vmap: argument {i} has no axis {ax} to map over")
                arr = numpy.moveaxis(arr, ax, 0)
                if size is None:
                    size = arr.shape[0]
                elif arr.shape[0] != size:
                    raise ValueError(
                        f"vmap: batch sizes differ: {size} and {arr.shape[0]} (argument {i})"
                    )
                moved.append(arr)
            batched_args.append(moved)
            examples.append(unflatten(td, [m[0] for m in moved]))
            flags.append([True] * len(moved))
        if size is None:
            raise ValueError("vmap: no argument is mapped (every in_axes is None)")
        if _state.depth or _state.tracing or _records(args):
            return _looped(fun, args, axes, out_axes, size)
        key = tuple(
            (tuple(numpy.shape(v)) if _is_array(v) else ("static", repr(v)), f)
            for ex, fl in zip(examples, flags)
            for v, f in zip(flatten(ex)[0], fl)
        )
        if key not in cache:
            # strict, as jit records: the program must hold for every example, so Python
            # control flow on values (if, range(int(n))) or a selection by value is not
            # followed on the first example; such a function runs example by example instead
            previous = _state.strict
            _state.strict = True
            try:
                rec = record(fun, tuple(examples), backward=False)
            except TracerBoolError:
                cache[key] = None
            else:
                leaves, tree = flatten(rec.output)
                cache[key] = (optimize(build(rec, outputs=leaves)), (tree, rec))
            finally:
                _state.strict = previous
        found = cache[key]
        if found is None:
            return _looped(fun, args, axes, out_axes, size)
        prog, (tree, rec) = found
        env: dict[int, tuple[Any, bool]] = {}
        values = iter(v for i, vs in enumerate(batched_args) if i not in rec.static for v in vs)
        value_flags = iter(f for i, fs in enumerate(flags) if i not in rec.static for f in fs)
        for inp in prog.inputs:
            env[inp.id] = (_plain(next(values)), next(value_flags))
        for v in prog.values:
            if v.op == INPUT:
                continue
            if v.op == CONST:
                env[v.id] = (v.const, False)
                continue
            env[v.id] = _run(v, env, size)
        outs = []
        for o in prog.outputs:
            data, batched = env[o.id] if isinstance(o, Value) else (o, False)
            data = numpy.asarray(data)
            if not batched:
                data = numpy.broadcast_to(data, (size,) + data.shape).copy()
            outs.append(numpy.moveaxis(data, 0, out_axes) if out_axes else data)
        return unflatten(tree, outs)

    return wrapped


def _records(args: tuple[Any, ...]) -> bool:
    return any(isinstance(leaf, Tensor) and leaf.requires_grad for leaf in flatten(args)[0])


def _looped(
    fun: Callable[..., Any], args: tuple[Any, ...], axes: Any, out_axes: int, size: int
) -> Any:
    """``fun`` on each example in turn, on the (recording) values themselves; outputs stacked."""

    def example(a: Any, ax: Any, b: int) -> Any:
        if ax is None:
            return a
        return tree_map(lambda leaf: numpy.moveaxis(leaf, ax, 0)[b], a)

    results = [fun(*(example(a, ax, b) for a, ax in zip(args, axes))) for b in range(size)]
    leaves = [flatten(r)[0] for r in results]
    tree = flatten(results[0])[1]
    stacked = [numpy.stack([ls[k] for ls in leaves], axis=out_axes) for k in range(len(leaves[0]))]
    return unflatten(tree, stacked)


def _is_array(v: Any) -> bool:
    return isinstance(v, (numpy.ndarray, numpy.generic, Tensor))


def _plain(v: Any) -> Any:
    return v._data if isinstance(v, Tensor) else v


def _run(v: Value, env: dict[int, tuple[Any, bool]], size: int) -> tuple[Any, bool]:
    prim = v.prim
    assert prim is not None
    vals, flags = [], []
    for a in v.args:
        if isinstance(a, Value):
            data, b = env[a.id]
        else:
            data, b = a, False
        vals.append(data)
        flags.append(b)
    if not any(flags):
        return prim.fun(*vals, **v.kw), False
    rule = _RULES.get(prim)
    if rule is None:
        if prim in _ELEMENTWISE or prim.fun.__class__ is numpy.ufunc:
            rule = _elementwise
        else:
            rule = _loop
    return rule(prim, vals, flags, dict(v.kw), size), True


# ---------------------------------------------------------------------------------------------
# Batching rules: the batch axis is always axis 0 of a batched value
# ---------------------------------------------------------------------------------------------


def _ex_ndim(x: Any, batched: bool) -> int:
    return numpy.ndim(x) - (1 if batched else 0)


def _align(x: Any, batched: bool, rank: int, size: int) -> Any:
    """A batched value reshaped to (B, 1, ..., example shape) with ``rank`` example axes."""
    if not batched:
        return x
    x = numpy.asarray(x)
    return x.reshape((x.shape[0],) + (1,) * (rank - (x.ndim - 1)) + x.shape[1:])


def _full(x: Any, batched: bool, size: int) -> Any:
    x = numpy.asarray(x)
    return x if batched else numpy.broadcast_to(x, (size,) + x.shape)


def _elementwise(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    rank = max((_ex_ndim(x, b) for x, b in zip(vals, flags) if x is not None), default=0)
    return prim.fun(
        *(_align(x, b, rank, size) if x is not None else x for x, b in zip(vals, flags)), **kw
    )


def _loop(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return numpy.stack(
        [prim.fun(*(x[i] if b else x for x, b in zip(vals, flags)), **kw) for i in range(size)]
    )


def _shift(axis: Any, ndim: int) -> Any:
    """Example axes to batched axes (``None``: every example axis)."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, (tuple, list)):
        return tuple((a % ndim if ndim else 0) + 1 for a in axis)
    return (axis % ndim if ndim else 0) + 1


def _axis_rule(*names: str) -> Callable[..., Any]:
    def rule(
        prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
    ) -> Any:
        nd = _ex_ndim(vals[0], flags[0])
        for n in names:
            if n in kw:
                kw[n] = _shift(kw[n], nd)
        return prim.fun(*(_full(x, b, size) for x, b in zip(vals, flags)), **kw)

    return rule


def _reduction(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    nd = _ex_ndim(vals[0], True)
    kw["axis"] = _shift(kw.get("axis"), nd) if nd else ()
    if kw["axis"] == ():
        return vals[0] if prim is not P.norm else numpy.abs(vals[0])
    return prim.fun(vals[0], **kw)


def _reshape(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return numpy.reshape(vals[0], (size,) + tuple(kw["shape"]))


def _broadcast(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    shape = tuple(kw["shape"])
    return numpy.broadcast_to(_align(vals[0], True, len(shape), size), (size,) + shape)


def _transpose(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return numpy.transpose(vals[0], (0,) + tuple(a + 1 for a in kw["axes"]))


def _moveaxis(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    nd = _ex_ndim(vals[0], True)
    src, dst = kw["source"], kw["destination"]
    return numpy.moveaxis(vals[0], _shift(src, nd), _shift(dst, nd))


def _index_prefix(index: Any) -> Any:
    return (slice(None),) + (index if isinstance(index, tuple) else (index,))


def _getitem(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return vals[0][_index_prefix(kw["index"])]


def _scatter(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    g, index, shape, unique = vals
    return P._scatter_add(numpy.asarray(g), _index_prefix(index), (size,) + tuple(shape), unique)


def _setitem(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    x, v = vals
    out = numpy.array(_full(x, flags[0], size), copy=True)
    index = _index_prefix(kw["index"])
    region = out[index].ndim - 1
    out[index] = _align(v, flags[1], region, size) if flags[1] else v
    return out


def _joined(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return prim.fun(*(_full(x, b, size) for x, b in zip(vals, flags)), axis=kw["axis"] + 1)


def _pad(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return numpy.pad(
        vals[0], ((0, 0),) + tuple(kw["pad_width"]), constant_values=kw["constant_values"]
    )


def _correlate(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    # numpy.correlate(a, v, mode) per example (a no shorter than v): every window of the padded
    # a against conj(v), one einsum for the batch
    a, v = vals
    m = v.shape[-1]
    left, right = P.correlate_pads(kw.get("mode", "valid"), m)
    a = numpy.pad(a, ((0, 0),) * (a.ndim - 1) + ((left, right),))
    windows = numpy.lib.stride_tricks.sliding_window_view(a, m, axis=-1)
    v = numpy.conjugate(v) if v.dtype.kind == "c" else v
    spec = ("bkj," if flags[0] else "kj,") + ("bj" if flags[1] else "j") + "->bk"
    return numpy.einsum(spec, windows, v)


def _tile(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    x = vals[0]
    reps = tuple(kw["reps"])
    d = _ex_ndim(x, True)
    x = _align(x, True, max(d, len(reps)), size)
    return numpy.tile(x, (1,) + (1,) * max(0, d - len(reps)) + reps)


def _roll(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    x = vals[0]
    if kw["axis"] is None:
        flat = numpy.roll(x.reshape(size, -1), kw["shift"], axis=1)
        return flat.reshape(x.shape)
    return numpy.roll(x, kw["shift"], axis=_shift(kw["axis"], _ex_ndim(x, True)))


def _letters(n: int, skip: str) -> str:
    return "".join(c for c in string.ascii_letters if c not in skip)[:n]


def _einsum_batched(spec: str, vals: list[Any], flags: list[bool], optimize: Any = True) -> Any:
    ins, out = spec.split("->")
    terms = ins.split(",")
    b = next(c for c in string.ascii_letters if c not in spec)
    terms = [b + t if f else t for t, f in zip(terms, flags)]
    return contract.einsum(",".join(terms) + "->" + b + out, *vals, optimize=optimize)


def _product_spec(prim: P.Primitive, shapes: list[tuple[int, ...]], kw: dict[str, Any]) -> str:
    """The einsum spec of one example's product."""
    if prim is P.einsum:
        return str(kw["subscripts"])
    if prim in (P.dot, P.tensordot, P.inner):
        na, nb = len(shapes[0]), len(shapes[1])
        if prim is P.tensordot:
            a_ax, b_ax = kw["axes"]
        elif prim is P.inner:
            a_ax, b_ax = (na - 1,), (nb - 1,)
        else:
            if na == 0 or nb == 0:
                a_ax, b_ax = (), ()
            else:
                a_ax, b_ax = (na - 1,), (max(nb - 2, 0),)
        letters = _letters(na + nb, "")
        a = list(letters[:na])
        bl = list(letters[na : na + nb])
        for i, j in zip(a_ax, b_ax):
            bl[j] = a[i]
        out = [c for i, c in enumerate(a) if i not in a_ax] + [
            c for j, c in enumerate(bl) if j not in b_ax
        ]
        return "".join(a) + "," + "".join(bl) + "->" + "".join(out)
    raise AssertionError(f"no product spec for {prim.name}")  # pragma: no cover


def _product(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    shapes = [tuple(numpy.shape(x)[1:] if b else numpy.shape(x)) for x, b in zip(vals, flags)]
    if prim is P.matmul:
        return _matmul(vals, flags, shapes, size)
    return _einsum_batched(_product_spec(prim, shapes, kw), list(vals), list(flags))


def _matmul(vals: list[Any], flags: list[bool], shapes: list[tuple[int, ...]], size: int) -> Any:
    a, b = vals
    fa, fb = flags
    sa, sb = shapes
    # Make both operands at least 2-d per example, batch them, and let matmul broadcast.
    a2 = _full(a, fa, size)
    b2 = _full(b, fb, size)
    if len(sa) == 1:
        a2 = a2[:, None, :]
    if len(sb) == 1:
        b2 = b2[..., None]
    rank = max(a2.ndim, b2.ndim)
    a2 = a2.reshape((size,) + (1,) * (rank - a2.ndim) + a2.shape[1:])
    b2 = b2.reshape((size,) + (1,) * (rank - b2.ndim) + b2.shape[1:])
    out = a2 @ b2
    if len(sb) == 1:
        out = out[..., 0]
    if len(sa) == 1:
        out = out[..., 0, :] if len(sb) > 1 else out[..., 0]
    return out


def _outer(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    a, b = (_full(x, f, size).reshape(size, -1) for x, f in zip(vals, flags))
    return a[:, :, None] * b[:, None, :]


def _vdot(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    a, b = (_full(x, f, size).reshape(size, -1) for x, f in zip(vals, flags))
    return numpy.einsum("zi,zi->z", numpy.conjugate(a) if numpy.iscomplexobj(a) else a, b)


def _sort_pair(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    v, x = (_full(x, f, size) for x, f in zip(vals, flags))
    return prim.fun(v, x, axis=_shift(kw["axis"], numpy.ndim(v) - 1))


def _take_along(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    idx = numpy.asarray(kw["indices"])
    nd = _ex_ndim(vals[0], True)
    return numpy.take_along_axis(
        vals[0], numpy.broadcast_to(idx, (size,) + idx.shape), axis=_shift(kw["axis"], nd)
    )


def _take(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    return numpy.take(vals[0], kw["indices"], axis=_shift(kw["axis"], _ex_ndim(vals[0], True)))


def _diag_like(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    nd = _ex_ndim(vals[0], True)
    kw["axis1"] = _shift(kw["axis1"], nd)
    kw["axis2"] = _shift(kw["axis2"], nd)
    return prim.fun(vals[0], **kw)


def _argfun(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    x = vals[0]
    if kw.get("axis") is None and prim.fun in (numpy.argmax, numpy.argmin):
        return prim.fun(x.reshape(size, -1), axis=1)
    kw["axis"] = _shift(kw.get("axis", -1), _ex_ndim(x, True))
    return prim.fun(x, **kw)


def _batched_index(
    template: tuple[Any, ...], vals: list[Any], flags: list[bool], size: int, batched: bool
) -> tuple[Any, ...] | None:
    """The index of a gather/scatter whose index arrays (some per example) are all advanced
    (integer arrays and ints, no slices): one advanced index over the batch, with an arange
    over the batch first when the indexed array is batched.  None for other templates."""
    if not all(
        isinstance(i, (P.Slot, numpy.ndarray, int, numpy.integer)) for i in template
    ) or not all(isinstance(v, numpy.ndarray) for v in vals[1:]):
        return None
    rank = max(
        (_ex_ndim(v, b) for v, b in zip(vals[1:], flags[1:])), default=0
    )  # the example index's rank: constants broadcast from the right
    rank = max([rank] + [numpy.ndim(i) for i in template if not isinstance(i, P.Slot)])
    arrays = tuple(_align(v, b, rank, size) for v, b in zip(vals[1:], flags[1:]))
    index = P.fill_index(template, arrays)
    if batched:
        index = (numpy.arange(size).reshape((size,) + (1,) * rank),) + index
    return index


def _gather(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    if any(flags[1:]):  # per-example index arrays
        index = _batched_index(kw["template"], vals, flags, size, flags[0])
        if index is None:  # with slices: one gather per example
            return _loop(prim, vals, flags, kw, size)
        return numpy.asarray(vals[0])[index]
    return vals[0][_index_prefix(P.fill_index(kw["template"], tuple(vals[1:])))]


def _scatter_dyn(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    shape = (size,) + tuple(kw["shape"])
    if any(flags[1:]):
        index = _batched_index(kw["template"], vals, flags, size, True)
        if index is None:
            return _loop(prim, vals, flags, kw, size)
        g = numpy.asarray(vals[0])
        out = numpy.zeros(shape, dtype=g.dtype)
        add_at(out, index, _full(g, flags[0], size) if not flags[0] else g)
        return out
    index = _index_prefix(P.fill_index(kw["template"], tuple(vals[1:])))
    return P._scatter_add(numpy.asarray(vals[0]), index, shape, False)


def _stacked(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    """numpy.linalg functions of one stack of matrices: the batch is one more stack axis."""
    return prim.fun(vals[0], **kw)


def _solve(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    a, b = (numpy.asarray(v) for v in vals)
    fa, fb = flags
    ra = _ex_ndim(a, fa) - 2  # stack axes of one example's a
    if _ex_ndim(b, fb) == 1:  # one example's b is a vector: a column
        b = b.reshape((size,) + (1,) * ra + (b.shape[-1], 1)) if fb else b[:, None]
        a = _align(a, fa, ra + 2, size)
        return numpy.linalg.solve(a, b)[..., 0]
    rank = max(ra, _ex_ndim(b, fb) - 2) + 2
    return numpy.linalg.solve(_align(a, fa, rank, size), _align(b, fb, rank, size))


_ELEMENTWISE = {
    P.power,  # (its function is not the ufunc itself: primitives._power_fun)
    P.subtract,  # (nor is subtract's: primitives._subtract_fun)
    P.where,
    P.clip,
    P.astype,
    P.copy,
    P.identity,
    P.stop_gradient,
    P.sigmoid,
    P.xlogy,
    P.i0,
    P.real,
    P.imag,
}
_RULES: dict[P.Primitive, Callable[..., Any]] = {
    P.sum_: _reduction,
    P.mean: _reduction,
    P.prod: _reduction,
    P.amax: _reduction,
    P.amin: _reduction,
    P.var: _reduction,
    P.std: _reduction,
    P.norm: _reduction,
    P.cumsum: _axis_rule("axis"),
    P.cumprod: _axis_rule("axis"),
    P.flip: _axis_rule("axis"),
    P.sort: _axis_rule("axis"),
    P.repeat: _axis_rule("axis"),
    P.swapaxes: _axis_rule("axis1", "axis2"),
    P.sliding_window_view: _axis_rule("axis"),
    P.triu: lambda prim, vals, flags, kw, size: prim.fun(vals[0], **kw),
    P.tril: lambda prim, vals, flags, kw, size: prim.fun(vals[0], **kw),
    P.reshape: _reshape,
    P.broadcast_to: _broadcast,
    P.transpose: _transpose,
    P.moveaxis: _moveaxis,
    P.getitem: _getitem,
    P.scatter_add: _scatter,
    P.setitem: _setitem,
    P.concatenate: _joined,
    P.stack: _joined,
    P.pad: _pad,
    P.correlate: _correlate,
    P.tile: _tile,
    P.roll: _roll,
    P.dot: _product,
    P.tensordot: _product,
    P.inner: _product,
    P.einsum: _product,
    P.matmul: _product,
    P.outer: _outer,
    P.vdot: _vdot,
    P.sort_permute: _sort_pair,
    P.sort_unpermute: _sort_pair,
    P.take_along_axis: _take_along,
    P.take: _take,
    P.trace: _diag_like,
    P.diagonal: _diag_like,
    P.gather: _gather,
    P.scatter: _scatter_dyn,
    P.inv: _stacked,
    P.cholesky: _stacked,
    P.eigvalsh: _stacked,
    P.eighvals: _stacked,
    P.eigvecsh: _stacked,
    P.svd_u: _stacked,
    P.svd_s: _stacked,
    P.svd_vh: _stacked,
    P.pinv: _stacked,
    P.qr_q: _stacked,
    P.eigvals: _stacked,
    P.eigvecs: _stacked,
    P.eigw: _stacked,
    P.qr_r: _stacked,
    P.det: _stacked,
    P.logabsdet: _stacked,
    P.logdet: _stacked,
    P.fftn: _axis_rule("axes"),
    P.ifftn: _axis_rule("axes"),
    P.rfftn: _axis_rule("axes"),
    P.irfftn: _axis_rule("axes"),
    P.detsign: _stacked,
    P.solve: _solve,
    # chainrule.functions: reductions and normalisations along example axes
    P.logsumexp: _axis_rule("axis"),
    P.softmax: _axis_rule("axis"),
    P.log_softmax: _axis_rule("axis"),
    P.safe_norm: _axis_rule("axis"),
}
for _arg in (numpy.argmax, numpy.argmin, numpy.argsort):
    _RULES[P.NONDIFF_FUNCTIONS[_arg]] = _argfun


def _argpartition(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    """numpy.argpartition of batched data along the shifted axis (kth the same for all)."""
    if any(flags[1:]):
        return _loop(prim, vals, flags, kw, size)
    x = vals[0]
    if kw.get("axis", -1) is None:
        x = x.reshape(size, -1)
        kw["axis"] = 1
    else:
        kw["axis"] = _shift(kw.get("axis", -1), _ex_ndim(x, True))
    return prim.fun(x, *vals[1:], **kw)


def _searchsorted(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    """numpy.searchsorted of batched values in one sorted array: elementwise in the values
    (a batched sorted array, or a sorter, runs example by example)."""
    if flags[0] or len(vals) != 2:
        return _loop(prim, vals, flags, kw, size)
    return prim.fun(vals[0], vals[1], **kw)


_RULES[P.NONDIFF_FUNCTIONS[numpy.argpartition]] = _argpartition
_RULES[P.NONDIFF_FUNCTIONS[numpy.searchsorted]] = _searchsorted


def _logical_reduction(
    prim: P.Primitive, vals: list[Any], flags: list[bool], kw: dict[str, Any], size: int
) -> Any:
    """numpy.all / numpy.any with the axis given by keyword (as chainrule's own code calls
    them); any other spelling runs example by example."""
    if len(vals) != 1 or set(kw) - {"axis", "keepdims"}:
        return _loop(prim, vals, flags, kw, size)
    kw.setdefault("axis", None)
    return _reduction(prim, vals, flags, kw, size)


for _logical in (numpy.all, numpy.any):
    _RULES[P.NONDIFF_FUNCTIONS[_logical]] = _logical_reduction
