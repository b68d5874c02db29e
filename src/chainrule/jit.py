"""``jit``: trace once per signature, then run generated straight-line NumPy.

The first call for a signature (pytree structure, shapes, dtypes, static arguments) records the
function — which may be ``grad`` or ``value_and_grad`` of something, so the recording holds the
backward pass written by the same gradient rules — runs the exact program passes (identities
dropped, constants folded, common subexpressions shared, dead code removed), writes the program
as Python source and compiles it.  Later calls run only that code: no tensors, no graph.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable

import numpy

from .codegen import Writer
from .ir import CONST, Value, build, optimize
from .notation import Literals
from .pytree import flatten, unflatten
from .tensor import Tensor, _state
from .trace import record

__all__ = ["jit", "Compiled"]

_ids = itertools.count()


class Compiled:
    """One compiled signature: the generated source and the function made from it."""

    def __init__(self, source: str, fun: Callable[..., Any], out_tree: Any,
                 n_ops: int) -> None:
        self.source = source
        self.fun = fun
        self.out_tree = out_tree
        self.n_ops = n_ops

    def __repr__(self) -> str:
        return f"<compiled straight-line NumPy: {self.n_ops} operations>"


def _leaf_key(x: Any) -> Any:
    if isinstance(x, Tensor):
        x = x._data
    if isinstance(x, numpy.ndarray):
        return (x.shape, x.dtype.str)
    if isinstance(x, numpy.generic):
        return ((), x.dtype.str)
    if isinstance(x, (bool, int, float, complex, str)) or x is None:
        return ("static", type(x).__name__, x)
    raise TypeError(f"jit: cannot use an argument of type {type(x).__name__}; pass arrays, "
                    "numbers, or nested lists/tuples/dicts of them (or mark it static)")


def jit(fun: Callable[..., Any], static_argnums: int | tuple[int, ...] = ()
        ) -> Callable[..., Any]:
    """Compile ``fun`` (plain NumPy code, or ``grad``/``value_and_grad`` of it) per signature.

    Arrays are traced; Python numbers and the arguments in ``static_argnums`` are constants of
    the trace (a new value traces again).  Python control flow may depend on shapes and static
    values, not on array values: ``bool(t)`` on a traced array raises
    :class:`chainrule.TracerBoolError`.  The wrapper has ``cache_info()``, ``clear_cache()``
    and ``source(*args)`` (the generated code for those arguments' signature).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> step = cr.jit(cr.value_and_grad(lambda w, x: (numpy.tanh(x @ w) ** 2).sum()))
    >>> value, dw = step(numpy.ones(3), numpy.eye(3))
    >>> dw.shape
    (3,)
    """
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    cache: dict[Any, Compiled] = {}

    def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        parts = []
        for i, a in enumerate(args):
            if i in statics:
                parts.append(("static", a))
                continue
            leaves, td = flatten(a)
            arrays = [isinstance(v, (numpy.ndarray, numpy.generic, Tensor)) for v in leaves]
            if any(arrays) and not all(arrays):
                raise TypeError(f"jit: argument {i} mixes arrays with Python values; make them "
                                "all arrays, or list the argument in static_argnums")
            parts.append((repr(td), tuple(_leaf_key(v) for v in leaves)))
        kw = tuple(sorted((k, repr(flatten(v)[1]), tuple(_leaf_key(x) for x in flatten(v)[0]))
                          for k, v in kwargs.items()))
        return tuple(parts), kw

    fast: dict[Any, Compiled] = {}     # all arguments plain arrays: a cheaper key

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not kwargs and not statics:
            try:
                key = tuple([(a.shape, a.dtype) for a in args if type(a) is numpy.ndarray])
            except AttributeError:      # pragma: no cover - defensive
                key = None
            if key is not None and len(key) == len(args):
                entry = fast.get(key)
                if entry is None:
                    entry = fast[key] = _entry(args, kwargs)
                out = entry.fun(*args)
                return out[0] if entry.out_tree is None else unflatten(entry.out_tree, list(out))
        entry = _entry(args, kwargs)
        flat = [_plain(v) for i, a in enumerate(args) if i not in statics
                and _traced(a) for v in flatten(a)[0]]
        out = entry.fun(*flat)
        return out[0] if entry.out_tree is None else unflatten(entry.out_tree, list(out))

    def _entry(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Compiled:
        key = signature(args, kwargs)
        entry = cache.get(key)
        if entry is None:
            entry = cache[key] = _compile(fun, args, kwargs, statics)
        return entry

    def source(*args: Any, **kwargs: Any) -> str:
        key = signature(args, kwargs)
        if key not in cache:
            cache[key] = _compile(fun, args, kwargs, statics)
        return cache[key].source

    wrapped.cache_info = lambda: {"signatures": len(cache)}  # type: ignore[attr-defined]
    wrapped.clear_cache = lambda: (cache.clear(), fast.clear())  # type: ignore[attr-defined]
    wrapped.source = source  # type: ignore[attr-defined]
    wrapped.cache = cache  # type: ignore[attr-defined]
    return wrapped


def _plain(v: Any) -> Any:
    return v._data if isinstance(v, Tensor) else v


def _traced(a: Any) -> bool:
    leaves = flatten(a)[0]
    return bool(leaves) and all(isinstance(v, (numpy.ndarray, numpy.generic, Tensor))
                                for v in leaves)


def _compile(fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
             statics: tuple[int, ...]) -> Compiled:
    previous = _state.strict
    _state.strict = True
    try:
        rec = record(fun, args, kwargs, backward=False, static_argnums=statics)
    finally:
        _state.strict = previous
    out_leaves, out_tree = flatten(rec.output)
    prog = optimize(build(rec, outputs=out_leaves))
    consts: dict[str, Any] = {}

    def hoist(a: numpy.ndarray) -> str:
        name = f"_c{len(consts)}"
        consts[name] = a
        return name

    lit = Literals(hoist=hoist, inline_limit=0)
    params = [f"a{i}" for i in range(len(prog.inputs))]
    refs = {v.id: p for v, p in zip(prog.inputs, params)}
    writer = Writer(prog, {}, lit, refs=refs)
    body = [c for line in writer.lines() for c in line.code]
    outs = []
    for o in prog.outputs:
        text = writer.ref(o)[0]
        outs.append(text if not (isinstance(o, Value) and o.op == CONST) else
                    f"numpy.array({text})")
    name = f"_jitted_{getattr(fun, '__name__', 'f')}_{next(_ids)}"
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    src = "\n".join([f"def {name}({', '.join(params)}):"] + [f"    {c}" for c in body]
                    + [f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})", ""])
    namespace: dict[str, Any] = {"numpy": numpy, **consts}
    for v in prog.values:
        if v.prim is not None and v.prim.custom:
            namespace[v.prim.name] = v.prim.fun
    code = compile(src, f"<chainrule.jit {name}>", "exec")
    exec(code, namespace)
    single = out_tree is None        # one array out: no tree to rebuild
    return Compiled(src, namespace[name], None if single else out_tree, len(prog.ops()))
