"""``Tensor``: a NumPy array that records what is done to it.

NumPy hands every ufunc call on a tensor to ``__array_ufunc__`` and every NumPy function call to
``__array_function__``; both look the operation up in the registries of
:mod:`chainrule.engine.primitives` and apply the primitive.  Operators and methods go to the same
primitives directly, without a detour through NumPy's dispatch.
"""

from __future__ import annotations

import contextlib
import opcode
import operator
import sys
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy

from . import binders as B
from . import composites as C
from . import (
    composites_more,  # noqa: F401 (registers its compositions in C.COMPOSITES)
    plans,  # noqa: F401 (installs the backward plans: engine/plans.py)
)
from . import primitives as P
from .graph import Node, _counter, backward_pass
from .rules import Size

__all__ = ["Tensor", "tensor", "no_grad", "enable_grad", "is_grad_enabled", "TracerBoolError"]

_new = object.__new__
_ndarray = numpy.ndarray
_generic = numpy.generic
_UFUNCS = P.UFUNCS
_ELEMENTWISE_PRIMS = frozenset(P.UFUNCS.values())
# the same value marked (a differentiated argument, a detached one while tracing), not a view
# the user made: a write into it is a write into a new value, as into any result
_MARKERS = frozenset({P.identity, P.stop_gradient})
_EMPTY: dict[str, Any] = {}


# How many threads have recording switched off or a trace running: while it is 0 every thread
# is in the default state (recording on, no trace), which the per-operation path checks with
# one global read instead of two reads of the thread-local state.  Kept by _State's setters.
_unusual = 0
_unusual_lock = threading.Lock()


def _switch(slot: str, default: bool) -> Any:
    """A per-thread switch (a property of ``_State``) whose setter keeps ``_unusual``, the
    count of threads that have some switch away from its default."""

    def get(self: Any) -> bool:
        return cast(bool, getattr(self, slot))

    def put(self: Any, value: bool) -> None:
        global _unusual
        with _unusual_lock:
            _unusual += (bool(value) != default) - (bool(getattr(self, slot)) != default)
            setattr(self, slot, value)

    return property(get, put)


class _State(threading.local):
    """Per-thread switches: is recording on, and is a trace (``explain``/``jit``) running."""

    _enabled = True
    _tracing = False
    enabled = _switch("_enabled", True)
    tracing = _switch("_tracing", False)
    trace_since = 0  # the first recording number of the trace's own values
    inputs_end: int | None = None  # one past the trace's inputs' numbers (None: not known)
    depth = 0  # how many grad/vjp calls are running their function right now
    strict = False  # jit: a traced value may never become a Python value or an index
    branches = 0  # explain: how many times Python branched on a traced value (bool())
    # explain: traced values the user's code copied into plain arrays (a hand-written gradient
    # computed beside the loss); None: refused. explain checks that the result ignores them.
    frozen: list[str] | None = None
    # while tracing: id(t) -> (t, its values before each in-place write), for reads of a
    # value that was overwritten later (``restore_reads``)
    versions: dict[int, tuple[Any, list[Any]]] | None = None
    # float(), complex(), item(), tolist(), .data, .numpy() of a tensor that requires grad while
    # recording: each drops a value from the gradient (a transform whose function then returns
    # a plain value raises, where a plain value of operations without a gradient, sign(x) or
    # floor(x), is a true zero)
    dropped = 0


_state = _State()


class TracerBoolError(TypeError):
    """A traced value was used where Python needs a concrete bool, int or float.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> absolute = cr.jit(lambda x: x if x.sum() > 0 else -x)   # a branch on a value
    >>> try:
    ...     absolute(numpy.ones(2))
    ... except cr.TracerBoolError as e:
    ...     print(str(e)[:60])
    bool() of a traced tensor: Python control flow cannot depend
    """


def is_grad_enabled() -> bool:
    """Return whether operations on tensors are being recorded in this thread.

    Example
    -------
    >>> import chainrule as cr
    >>> cr.is_grad_enabled()
    True
    >>> with cr.no_grad():
    ...     print(cr.is_grad_enabled())
    False
    """
    return bool(_state.enabled)


class _GradMode(contextlib.ContextDecorator):
    """Recording switched on or off in this thread for a ``with`` block (or a decorated call).

    A class rather than a generator: it is entered on every ``grad`` call, where a generator-
    based context manager costs about a microsecond.
    """

    __slots__ = ("_enabled", "_previous")

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._previous = True

    def _recreate_cm(self) -> _GradMode:  # a fresh one per decorated call (re-entrant)
        return _GradMode(self._enabled)

    def __enter__(self) -> None:
        self._previous = _state.enabled
        _state.enabled = self._enabled

    def __exit__(self, *exc: Any) -> None:
        _state.enabled = self._previous


def no_grad() -> _GradMode:
    """Context manager: operations inside are not recorded (evaluation, parameter updates).

    Also a decorator (``@cr.no_grad()``).

    Example
    -------
    >>> import chainrule as cr
    >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> with cr.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager: turn recording back on inside a ``no_grad`` block (also a decorator).

    Example
    -------
    >>> import chainrule as cr
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> with cr.no_grad():
    ...     with cr.enable_grad():
    ...         y = w * 2
    >>> y.requires_grad
    True
    """
    return _GradMode(True)


@contextlib.contextmanager
def tracing(since: int = 0, inputs_end: int | None = None) -> Iterator[None]:
    """Record every operation, differentiable or not (used by ``explain`` and ``jit``).

    Tensors numbered ``since`` or later (the trace's inputs and what is computed from them)
    are traced values: reading their data would freeze it (``t.data`` raises).  The inputs
    are numbered from ``since`` up to ``inputs_end`` (excluded; None: not known): a leaf made
    later holds a constant (a static argument, ``zeros_like``), which jit may index with."""
    previous = _state.tracing, _state.trace_since, _state.inputs_end, _state.versions
    _state.tracing = True
    _state.trace_since = since
    _state.inputs_end = inputs_end
    _state.versions = {}
    try:
        yield
    finally:
        _state.tracing, _state.trace_since, _state.inputs_end, _state.versions = previous


def _constant_leaf(t: Tensor) -> bool:
    """Inside a trace: is ``t`` a leaf that holds a constant (not an input, not computed)?"""
    end = _state.inputs_end
    return (
        t._prim is None
        and end is not None
        and not (_state.trace_since <= t._seq < end)
        and not t.requires_grad
    )


def restore_reads(roots: Any) -> None:
    """Point every recorded read of a tensor that was written in place *after* the read
    (``loss = -log(P[i, y]).sum(); P[i, y] -= 1``) at the value it read (its snapshot), so
    that the backward pass reaches the value that was read, not the one written later.

    A read whose result may share memory with the old value (a view, ``a = t[0:2]``) is
    refused: NumPy would show the write through the view, the recording would not."""
    versions = _state.versions
    if not versions:
        return
    from chainrule.engine.graph import ancestors

    for node in ancestors(flatten_tensors(roots)):
        args = node._args
        if not args:
            continue
        fixed = []
        for a in args:
            if isinstance(a, Tensor) and a._seq > node._seq and id(a) in versions:
                held, befores = versions[id(a)]
                older = [b for b in befores if b._seq < node._seq] if held is a else []
                if not older:
                    raise RuntimeError(_READ_THEN_WRITTEN)
                b = max(older, key=lambda x: x._seq)
                if numpy.may_share_memory(node._data, b._data):
                    raise RuntimeError(_VIEW_READ_THEN_WRITTEN)
                a = b
            fixed.append(a)
        node._args = tuple(fixed)


_VIEW_WRITTEN = (
    "assignment into a view of another tensor (made by basic indexing, a reshape or a "
    "transpose of it): NumPy's write would change that tensor too, chainrule records writes "
    "functionally and would not. Write into the tensor itself (y[1:] = ... rather than "
    "v = y[1:]; v[:] = ...), or into a copy (v = y[1:].copy())"
)


# ndarray methods without a Tensor method of their own: the NumPy function that is the method
_AS_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ptp": numpy.ptp,
    "choose": numpy.choose,
    "searchsorted": numpy.searchsorted,
    "compress": lambda t, condition, axis=None: numpy.compress(condition, t, axis=axis),
}
_MEMORY = ("nbytes", "itemsize", "strides", "flags")  # about the memory, not the values
_BY_VALUE = (
    "tofile",
    "dump",
    "dumps",
    "byteswap",
    "setflags",
    "ctypes",
    "base",
    "getfield",
    "setfield",
    "tobytes",
)
_FUNCTIONAL = "chainrule records operations as new values, not as changes to an array"
_IN_PLACE_HINTS = {
    "sort": f"{_FUNCTIONAL}: write t = numpy.sort(t, axis)",
    "partition": f"{_FUNCTIONAL}: write t = numpy.partition(t, kth, axis)",
    "fill": f"{_FUNCTIONAL}: write t[...] = value (or numpy.full_like(t, value))",
    "put": f"{_FUNCTIONAL}: write t[numpy.unravel_index(indices, t.shape)] = values",
    "resize": f"{_FUNCTIONAL}: write t = numpy.resize(t, shape)",
    "itemset": f"{_FUNCTIONAL}: write t[index] = value",
    "view": "a tensor is not a memory buffer: use t.astype(dtype) for a conversion, or t.data.view "
    "for the bytes (outside the graph)",
    "flat": "iterate over t.ravel() (or index t.reshape(-1)[i]) instead",
}


def _add_at(sign: int) -> Callable[..., None]:
    """``numpy.add.at(t, index, v)`` (``subtract.at``) into a tensor: recorded as the write
    ``t[...] = t +- (v added into zeros at index)`` (repeats accumulate; the terms of one
    position are summed before they are added to t's value, so the result agrees with NumPy's
    to rounding)."""

    def at(a: Any, indices: Any, b: Any = None, /) -> None:
        name = "add.at" if sign > 0 else "subtract.at"
        if not isinstance(a, Tensor):
            raise TypeError(
                f"numpy.{name} into a plain NumPy array with a tensor value: NumPy would keep "
                "only the values and the gradient through them would be lost. Make the array a "
                "tensor (chainrule.tensor(numpy.zeros(...))), whose writes are recorded"
            )
        dynamic = _dynamic_index(indices) if _unusual and _state.tracing else None
        if dynamic is not None:
            # integer index arrays that are traced values (an argument of the jitted function):
            # inputs of the scatter, as they are of the gather that reads ``x[idx]``
            template, arrays = dynamic
            values = P.fill_index(template, tuple(i._data for i in arrays))
            shape = numpy.zeros(a._data.shape, dtype=bool)[values].shape
            v = numpy.broadcast_to(b, shape).astype(a._data.dtype)
            spread = P.scatter(v, *arrays, template=template, shape=a._data.shape)
        else:
            index = _index(indices)
            if type(index) is numpy.ndarray and index.dtype.kind in "iu":  # rows: no probe
                shape = index.shape + a._data.shape[1:]
            else:
                shape = numpy.zeros(a._data.shape, dtype=bool)[index].shape
            if getattr(b, "shape", None) == shape and getattr(b, "dtype", None) == a.dtype:
                v = b  # already the values to add: no broadcast, no copy
            else:
                v = numpy.broadcast_to(b, shape).astype(a._data.dtype)
            try:
                spread = P.scatter_add(v, index, a._data.shape, False)
            except IndexError as failed:
                try:  # NumPy's own message for the index (out of bounds, too many axes)
                    numpy.zeros(a._data.shape, dtype=bool)[index]
                except IndexError as e:
                    raise IndexError(f"numpy.{name}: {e}") from None
                raise failed
        a[...] = a + spread if sign > 0 else a - spread

    return at


def _method(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda self, *args, **kwargs: f(self, *args, **kwargs)


def _lacking(name: str, hint: str) -> property:
    def missing(self: Tensor) -> Any:
        raise AttributeError(f"chainrule.Tensor has no ndarray.{name}: {hint}")

    return property(missing)


def _ndarray_names() -> None:
    """The ndarray attributes a tensor has no own version of: the NumPy function that is the
    method, the memory's metadata, or an AttributeError that says what to write instead.
    (Set on the class one by one: a ``__getattr__`` would slow down every attribute read.)"""
    for name, f in _AS_FUNCTIONS.items():
        setattr(Tensor, name, _method(f))
    for name in _MEMORY:
        setattr(Tensor, name, property(operator.attrgetter(f"_data.{name}")))
    for name, hint in _IN_PLACE_HINTS.items():
        setattr(Tensor, name, _lacking(name, hint))
    for name in _BY_VALUE:
        if not hasattr(Tensor, name):
            setattr(
                Tensor,
                name,
                _lacking(
                    name,
                    f"read it from the values, t.data.{name} (a "
                    "plain array outside the graph: no gradient flows "
                    "through it)",
                ),
            )


P.UFUNC_METHODS[numpy.add, "at"] = _add_at(1)
P.UFUNC_METHODS[numpy.subtract, "at"] = _add_at(-1)


def _views(a: Tensor, b: Tensor) -> bool:
    """Whether ``a``'s data is a view of ``b``'s (NumPy arrays that may share memory)."""
    da, db = a._data, b._data
    return (
        type(da) is numpy.ndarray and type(db) is numpy.ndarray and numpy.may_share_memory(da, db)
    )


def restore_before_walk(root: Any) -> None:
    """:func:`restore_reads` for a backward pass that runs inside a trace (``jit(grad(f))``,
    ``vmap(grad(f))``): the reads of a value written in place later must reach the value they
    read before the walk follows them, not only when the trace ends."""
    if _unusual and _state.versions:
        restore_reads(root)


_READ_THEN_WRITTEN = (
    "in-place assignment into a tensor that recorded operations have already read: their "
    "gradients would be computed from the overwritten values. Assign into a copy first "
    "(u = t.copy(); u[...] = v) and use u afterwards"
)
_VIEW_READ_THEN_WRITTEN = _READ_THEN_WRITTEN + " (here a view of it, which the write changes too)"


# ---------------------------------------------------------------------------------------------
# Applying primitives
# ---------------------------------------------------------------------------------------------


def _describe(v: Any) -> str:
    if isinstance(v, (numpy.ndarray, numpy.generic)):
        return f"array{tuple(v.shape)} {v.dtype}"
    return repr(v) if isinstance(v, (int, float, bool, type(None))) else type(v).__name__


def _op_error(e: Exception, prim: P.Primitive, vals: Any) -> Exception:
    where = ", ".join(_describe(v) for v in vals)
    if prim.name.startswith("scipy.") and any(_is_complex(v) for v in vals):
        return _complex_error(prim, f" (SciPy: {e})")
    msg = f"{P.qualified_name(prim)} failed on ({where}): {e}"
    libs = sorted({type(v).__module__.split(".")[0] for v in vals if _foreign(v)})
    if libs:
        msg += (
            f". The array library ({', '.join(libs)}) may not implement this operation the way "
            "chainrule uses it: compute this part on NumPy arrays (chainrule.to_host) or write "
            "it with operations that library supports"
        )
    if type(e) in (ValueError, TypeError, IndexError):
        return type(e)(msg)
    if hasattr(e, "add_note"):
        e.add_note(f"while chainrule applied {P.qualified_name(prim)} to ({where})")
    return e


def _apply(prim: P.Primitive, args: tuple[Any, ...], kw: dict[str, Any]) -> Tensor:
    """Compute ``prim`` on the data of ``args`` and record it when a gradient may flow."""
    # One or two arguments are nearly every call: unrolled, they skip a list and a loop.
    # ``a``/``b`` end as the tensor arguments (None for others), marked as read if recorded.
    n = len(args)
    if n == 2:
        a, b = args
        if isinstance(a, Tensor):
            va = a._data
            rg = a.requires_grad
        else:
            va = int(a) if type(a) is Size else a
            rg = False
            a = None
        if isinstance(b, Tensor):
            vb = b._data
            if b.requires_grad:
                rg = True
        else:
            vb = int(b) if type(b) is Size else b
            b = None
        vals: Any = (va, vb)
        try:  # positional: cheaper than unpacking *vals
            out = prim.fun(va, vb, **kw) if kw else prim.fun(va, vb)
        except (ValueError, TypeError, IndexError) as e:
            raise _op_error(e, prim, vals) from e
    elif n == 1 and isinstance(args[0], Tensor):
        a = args[0]
        b = None
        va = a._data
        vals = (va,)
        rg = a.requires_grad
        try:
            out = prim.fun(va, **kw) if kw else prim.fun(va)
        except (ValueError, TypeError, IndexError) as e:
            raise _op_error(e, prim, vals) from e
    else:
        rg = False
        vals = []
        for x in args:
            if isinstance(x, Tensor):
                vals.append(x._data)
                if x.requires_grad:
                    rg = True
            elif type(x) is Size:
                vals.append(int(x))
            else:
                vals.append(x)
        vals = tuple(vals)
        n = 0  # mark the inputs in a loop below
        a = b = None
        try:
            out = prim.fun(*vals, **kw)
        except (ValueError, TypeError, IndexError) as e:
            raise _op_error(e, prim, vals) from e
    if type(out) is not _ndarray and not isinstance(out, _generic):
        _check_result(out, prim, args)
    t = _new(Tensor)
    t._data = out
    t.grad = t._name = t._pending = None
    t._used = 0
    if not _unusual:  # this thread records, and traces nothing (the common case)
        record = rg
    else:
        state = _state
        record = (rg and state.enabled) or state.tracing
        rg = rg and state.enabled
        if record and not rg and state.strict and state.tracing and _folds(args, out):
            record = False  # jit: computed from constants alone, a constant of the program
        if state.tracing and (prim in _ELEMENTWISE_PRIMS or type(prim.fun) is numpy.ufunc):
            # a list operand (x * [1, 2, 3]) as the array NumPy makes of it: the program
            # writes it as an array, which any rule can multiply by a NumPy scalar
            args = tuple(numpy.asarray(a) if type(a) in (list, tuple) else a for a in args)
            vals = tuple(numpy.asarray(v) if type(v) in (list, tuple) else v for v in vals)
    if record:
        req = t.requires_grad = rg and not prim.nondiff
        if req and not prim.complex_ready:
            _refuse_complex(prim, out, vals)
        t._prim = prim
        t._args = args
        t._vals = vals
        t._kw = kw
        t._seq = next(_counter)
        if a is not None:
            a._used += 1
        if b is not None:
            b._used += 1
        if n == 0:
            for x in args:
                if isinstance(x, Tensor):
                    x._used += 1
    else:
        t.requires_grad = False
        t._prim = t._args = t._vals = t._kw = None
        t._seq = 0
    return t


def _folds(args: tuple[Any, ...], out: Any) -> bool:
    """Is ``out`` a constant of the trace: are the tensors among ``args`` all constants (see
    ``_constant_leaf``), and is it no larger than they are?  (``mask[0]``, ``k > 1``,
    ``mask & other`` fold; a constant spread to a larger shape stays recorded, so that the
    program keeps the small constant, not the spread one.)"""
    largest = 0
    for x in args:
        if isinstance(x, Tensor):
            if not _constant_leaf(x):
                return False
            largest = max(largest, numpy.size(x._data))
    return numpy.size(out) <= largest


def _is_complex(v: Any) -> bool:
    dt = getattr(v, "dtype", None)
    return (dt is not None and dt.kind == "c") or type(v) is complex


def _refuse_complex(prim: P.Primitive, out: Any, vals: Any) -> None:
    """Complex values through a primitive whose rule is not written for them: refused."""
    if _is_complex(out) or any(_is_complex(v) for v in vals):
        if prim.custom:
            raise TypeError(
                f"primitive {prim.name!r} received a complex value, and its rules were not "
                "declared to hold for complex values: if they do under chainrule's convention "
                "(no conjugation for holomorphic functions), pass complex_ready=True to defvjp"
            )
        raise _complex_error(prim)


def _complex_error(prim: P.Primitive, detail: str = "") -> TypeError:
    return TypeError(
        f"{P.qualified_name(prim)}: chainrule has no gradient rule for complex values of this "
        "operation (the complex-ready ones are listed in docs/guarantees.md). Write it on "
        "the real and imaginary parts (z.real, z.imag), or call it on z.detach() if no "
        f"gradient should flow through it{detail}"
    )


def _write_into(target: Tensor, result: Any, fname: str) -> Tensor:
    if numpy.shape(_unwrap(result)) != target.shape:
        raise ValueError(
            f"{fname}: out= has shape {target.shape} but the result has shape "
            f"{numpy.shape(_unwrap(result))}"
        )
    target[...] = result
    return target


def _readers_in(t: Tensor, roots: Any) -> list[Tensor]:
    """The recorded operations that read ``t`` among the ancestors of ``roots`` (the value and
    the index of an assignment into ``t``): ``d[i] -= v`` reads ``d[i]`` and writes it back, and
    ``h[h < 0] = 0`` reads ``h`` in its own mask. Only nodes newer than ``t`` can have read it."""
    seq = t._seq
    stack = [r for r in flatten_tensors(roots) if r._seq > seq]
    seen: set[int] = set()
    found: list[Tensor] = []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        args = node._args or ()
        found.extend(node for a in args if a is t)  # once per read: t * t reads t twice
        stack.extend(a for a in args if isinstance(a, Tensor) and a._seq > seq)
    return found


def _callers_values(depth: int = 64) -> list[Any]:
    """The local variables of the calling frames (tuples, lists and dict values opened): where
    the operations that read a tensor before ``t[i] = v`` are held (``loss = numpy.sum(s)``
    before ``s[s > 0] = 1``), so that the write can move them to the value they read."""
    found: list[Any] = []

    def add(v: Any, level: int) -> None:
        if isinstance(v, Tensor):
            found.append(v)
        elif level and isinstance(v, (tuple, list, dict)) and len(v) <= 4096:
            for item in v.values() if isinstance(v, dict) else v:
                add(item, level - 1)

    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None and depth:
        for v in frame.f_locals.values():
            add(v, 2)
        frame, depth = frame.f_back, depth - 1
    return found


def _is_mask_of(index: Any, t: Tensor) -> bool:
    return (
        isinstance(index, Tensor)
        and index._data.dtype == numpy.bool_
        and index._data.shape == t._data.shape
    )


def flatten_tensors(x: Any) -> list[Tensor]:
    """The tensors in ``x``, inside tuples, lists and slices too (an index)."""
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in flatten_tensors(v)]
    if isinstance(x, slice):
        return flatten_tensors((x.start, x.stop, x.step))
    return []


_MASKED = numpy.ma.MaskedArray
_MATRIX = numpy.matrix


def _refuse_subclass(x: Any, where: str | Callable[[], str]) -> None:
    """Masked arrays and matrices change what NumPy's operations mean; refuse them loudly
    (``where``, or its call, made only to refuse, names the place)."""
    if type(x) is numpy.ndarray or not isinstance(x, numpy.ndarray):
        return
    if callable(where):
        where = where()
    if isinstance(x, _MASKED):
        raise TypeError(
            f"{where}: a masked array reached a chainrule tensor, and chainrule would compute "
            "on the hidden values too. Fill the masked entries (numpy.ma.filled(a, value)) or "
            "keep only the valid ones (a.compressed()), or use a weight array of 0s and 1s"
        )
    if isinstance(x, _MATRIX):
        raise TypeError(
            f"{where}: a numpy.matrix reached a chainrule tensor, and chainrule follows "
            "ndarray semantics (* is elementwise): convert it with numpy.asarray(m) and write "
            "matrix products with @"
        )


def _check_result(out: Any, prim: P.Primitive, args: tuple[Any, ...]) -> None:
    """A result that is neither an ndarray nor the array type of a tensor's data means another
    library's type took the operation over, which would detach the tensor: refuse it."""
    if isinstance(out, (numpy.ndarray, bool, int, float, complex)):
        _refuse_subclass(out, P.qualified_name(prim))
        return
    if _foreign(out) and any(type(getattr(a, "_data", a)) is type(out) for a in args):
        # the array library (NumPy's protocols in full: Dask, CuPy, ...) of the tensors or of
        # constants among them; wrappers that take results over (xarray, pandas) are refused
        return
    if not any(hasattr(out, k) for k in ("__array_ufunc__", "__array_function__", "__array__")):
        return  # not an array (a dtype, a tuple of them, ...)
    kind = f"{type(out).__module__}.{type(out).__qualname__}"
    raise TypeError(
        f"{P.qualified_name(prim)}: a {kind} operand took over the result of an operation on a "
        "chainrule tensor, which would detach it from the gradient. Give chainrule its values "
        "(numpy.asarray(x), or x.values / x.to_numpy()) and wrap the result afterwards"
    )


_ONES: dict[tuple[Any, Any], Any] = {}


def _ones(data: Any) -> Any:
    """A read-only one of ``data``'s (one-element) shape and dtype: the seed of ``backward()``.

    Shared between calls, so it must never be handed out: the walk treats the seed as already
    stored (a leaf that would receive it gets a copy). For a NumPy scalar (a loss reduced by
    ``mean`` or ``sum``) it is a NumPy scalar too: immutable, and the first rule's arithmetic
    on it (``g / n``) skips the array machinery.
    """
    if type(data) is not numpy.ndarray:
        if isinstance(data, numpy.generic):
            key = (None, data.dtype)
            seed = _ONES.get(key)
            if seed is None:
                seed = _ONES[key] = data.dtype.type(1)
            return seed
        if _foreign(data):
            return numpy.ones_like(data)
    key = (data.shape, data.dtype)
    seed = _ONES.get(key)
    if seed is None:
        seed = _ONES[key] = numpy.ones(data.shape, dtype=data.dtype)
        seed.flags.writeable = False
    return seed


def _leaf(data: Any, requires_grad: bool) -> Tensor:
    t = _new(Tensor)
    t._data = data
    t.grad = None
    t.requires_grad = requires_grad
    t._prim = t._args = t._vals = t._kw = t._name = t._pending = None
    t._used = 0
    t._seq = next(_counter)
    return t


def _unwrap(x: Any) -> Any:
    """Replace tensors by their data, inside lists, tuples and dicts too."""
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x) if type(x) in (list, tuple) else x
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _needs_grad(x: Any) -> bool:
    if isinstance(x, Tensor):
        return x.requires_grad and _state.enabled
    if isinstance(x, (list, tuple)):
        return any(_needs_grad(v) for v in x)
    if isinstance(x, dict):
        return any(_needs_grad(v) for v in x.values())
    return False


_SIGN = P.NONDIFF_UFUNCS[numpy.sign]  # nondiff for real values only


def _nondiff(prim: P.Primitive, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    """Operations without gradient: plain results, recorded only while tracing."""
    if prim is _SIGN and _needs_grad(args) and any(_is_complex(_unwrap(a)) for a in args):
        raise TypeError(
            "numpy.sign of complex values is z / |z|, which has a gradient (unlike the real "
            "sign): write it as z / numpy.abs(z) (numpy.where(z == 0, 0, ...) at zero)"
        )
    if _unusual and _state.tracing:
        if all(not isinstance(v, (list, tuple, dict)) for v in args):
            if prim in _TUPLE_RESULTS:
                raise TracerBoolError(
                    f"{P.qualified_name(prim)} inside chainrule.jit, vmap or explain: it returns "
                    "index arrays whose lengths depend on the values, which a recording cannot "
                    "follow. Select with a mask instead (numpy.where(cond, x, 0), x * cond), "
                    "or compute the indices outside the transformed function and pass them in"
                )
            return _apply(prim, args, kw)
        if flatten_tensors(args):  # computing it now would freeze today's values
            raise TracerBoolError(
                f"{P.qualified_name(prim)} with a list or tuple argument cannot be traced by "
                "chainrule.jit or chainrule.explain: its result would be frozen. Pass arrays "
                "(numpy.asarray of the list) or compute it outside the jitted function"
            )
    return prim.fun(*_unwrap(args), **_unwrap(kw))


# Operations without gradient whose result is a tuple of arrays of value-dependent lengths
_TUPLE_RESULTS = {P.NONDIFF_FUNCTIONS[numpy.nonzero]}


def _unsupported(
    name: str, args: Any, kwargs: Any, call: Callable[..., Any], module: str | None = "numpy"
) -> Any:
    """Call ``call`` on the values, or raise if a gradient would be dropped: ``name`` is the
    function's name in ``module`` (None: ``name`` is the whole title)."""
    if _needs_grad(args) or _needs_grad(kwargs):
        title = name if module is None else f"{module}.{name}"
        raise TypeError(
            f"{title} has no gradient rule in chainrule, and it was called on a tensor "
            "that requires grad. If its result needs no gradient, call it on t.detach() (or "
            "inside chainrule.no_grad()); otherwise give it a rule with chainrule.defvjp, or "
            "write it from supported NumPy functions"
        )
    return call(*_unwrap(args), **_unwrap(kwargs))


def _ufunc_title(ufunc: numpy.ufunc) -> str:
    """How messages name a ufunc that has no primitive: ``numpy.<name>``,
    ``scipy.special.<name>`` (SciPy's special functions are ufuncs), or ``the ufunc '<name>'``."""
    name = ufunc.__name__
    if getattr(numpy, name, None) is ufunc:
        return f"numpy.{name}"
    if "scipy.special" in sys.modules and any(
        getattr(sys.modules.get(m), name, None) is ufunc
        for m in ("scipy.special", "scipy.special._ufuncs")
    ):
        return f"scipy.special.{name}"
    return f"the ufunc {name!r}"


# Whether chainrule.engine.scipy_special (the rules of scipy.special's ufuncs) is still to be
# loaded: the first ufunc that has no primitive while SciPy's special functions are imported
# loads it (import chainrule never imports SciPy, which is slow).
_special_pending = True


def _load_special() -> bool:
    """Load chainrule.engine.scipy_special if SciPy's special functions are in use and it is
    not loaded yet; whether it was loaded now (then the ufunc tables have grown)."""
    global _special_pending
    if not _special_pending or "scipy.special" not in sys.modules:
        return False
    _special_pending = False
    from . import scipy_special  # noqa: F401 (registers its primitives in P.UFUNCS)

    return True


# SciPy functions that are not ufuncs convert their inputs to NumPy arrays, and with them a
# tensor: what to write instead, in chainrule's error message.
_SCIPY_INSTEAD = {
    "logsumexp": "chainrule.functions.logsumexp(x, axis=..., keepdims=...)",
    "softmax": "chainrule.functions.softmax(x, axis=...)",
    "log_softmax": "chainrule.functions.log_softmax(x, axis=...)",
    "polygamma": (
        "(-1) ** (n + 1) * math.factorial(n) * scipy.special.zeta(n + 1, x) for n >= 1 "
        "(scipy.special.digamma(x) for n = 0): scipy.special.zeta and digamma have rules"
    ),
    "multigammaln": (
        "d * (d - 1) / 4 * numpy.log(numpy.pi) + sum(scipy.special.gammaln(a - j / 2) for j "
        "in range(d)): scipy.special.gammaln has a rule"
    ),
}


def _scipy_caller() -> str | None:
    """The SciPy function that is converting a tensor to an array (``numpy.asarray`` inside
    ``scipy.special.logsumexp``), by its public name where it has one; None when the conversion
    does not come from SciPy. Read from the calling frames, on the error path only."""
    try:
        frame: Any = sys._getframe(2)  # 0: this helper, 1: __array__, 2: who converts
    except ValueError:
        return None
    found = None
    special = sys.modules.get("scipy.special")
    while frame is not None:
        module = frame.f_globals.get("__name__", "") or ""
        if not module.startswith(("scipy.", "numpy")):
            break  # left SciPy (and NumPy's Python code between): the user's call
        if module.startswith("scipy."):
            name = frame.f_code.co_name
            if (
                special is not None
                and not name.startswith("_")
                and callable(getattr(special, name, None))
            ):
                found = f"scipy.special.{name}"
            elif found is None or not found.startswith("scipy.special."):
                found = f"{module}.{name}"
        frame = frame.f_back
    return found


def _converted_by_scipy(where: str) -> TypeError:
    name = where.rsplit(".", 1)[-1]
    instead = _SCIPY_INSTEAD.get(name) if where.startswith("scipy.special.") else None
    advice = (
        f"Instead write {instead}."
        if instead
        else "chainrule differentiates scipy.special's ufuncs (expit, log_ndtr, gammaln, "
        "xlogy, ...: see the README) and chainrule.functions (logsumexp, softmax, "
        "log_softmax, sigmoid, log_sigmoid, softplus, logit, xlogy); write the computation "
        "with those or with NumPy functions on the tensor."
    )
    return TypeError(
        f"{where} converted a chainrule tensor that requires grad to a plain NumPy array "
        "(it is not a ufunc, so chainrule cannot record it), which would drop it from the "
        f"gradient. {advice} For the values alone call it on t.detach()"
    )


def _binary(prim: P.Primitive, a: Any, b: Any) -> Any:
    return _apply(prim, (a, b), _EMPTY)


def _compare(uf: numpy.ufunc, a: Any, b: Any) -> Any:
    if _unusual and _state.tracing:
        return _apply(P.NONDIFF_UFUNCS[uf], (a, b), _EMPTY)
    return uf(a._data if isinstance(a, Tensor) else a, b._data if isinstance(b, Tensor) else b)


def _dynamic_index(ix: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """While tracing: an index holding integer tensors as (template with slots, tensors)."""
    items = ix if isinstance(ix, tuple) else (ix,)
    if not any(isinstance(i, Tensor) and i._data.dtype.kind in "iu" for i in items):
        return None
    template = []
    arrays: list[Any] = []
    for i in items:
        if isinstance(i, Tensor) and i._data.dtype.kind in "iu":
            template.append(P.Slot(len(arrays)))
            arrays.append(i)
        else:
            template.append(i)
    return tuple(template), tuple(arrays)


def _index(ix: Any) -> Any:
    if type(ix) is int or type(ix) is slice:  # x[t], x[a:b]: nothing to unwrap or refuse
        return ix
    if _state.strict and (
        (isinstance(ix, Tensor) and not _constant_leaf(ix))
        or (
            isinstance(ix, (tuple, list))
            and any(isinstance(i, Tensor) and not _constant_leaf(i) for i in ix)
        )
    ):
        # integer index arrays became ``gather`` above; what is left selects by value
        raise TracerBoolError(
            "indexing with an array that chainrule.jit traces (computed inside it, or one of "
            "its arguments): which elements are selected or written would depend on values, "
            "and the compiled code would keep today's. Use numpy.where(mask, x, 0) instead of "
            "x[mask]; an integer index argument reads as x[idx] and accumulates with "
            "numpy.add.at(out, idx, v); a mask that is an argument may be listed in jit's "
            "static_argnums (a program for each mask); or index outside the jitted function"
        )
    if isinstance(ix, Tensor):
        return ix._data
    if isinstance(ix, tuple):
        for i in ix:
            if isinstance(i, Tensor):
                return tuple(i._data if isinstance(i, Tensor) else i for i in ix)
        return ix  # (a, b), (slice, None, ...): nothing to unwrap
    if isinstance(ix, list):
        return numpy.asarray(_unwrap(ix))
    return ix


_assign = P._assign
_COPIED = (
    "_data",
    "grad",
    "requires_grad",
    "_prim",
    "_args",
    "_vals",
    "_kw",
    "_seq",
    "_name",
    "_used",
    "_pending",
)


# ---------------------------------------------------------------------------------------------
# The tensor
# ---------------------------------------------------------------------------------------------


# NumPy stores a one-element tensor into a plain array (``out[i] = t``) by calling ``float(t)``,
# exactly as ``float(loss)`` does, so the conversion alone cannot tell the two apart. The
# instruction the calling Python frame is executing can: an item assignment is STORE_SUBSCR
# (STORE_SLICE for ``out[a:b] = t`` from Python 3.12), an explicit ``float(t)`` is a call.
_ITEM_ASSIGNMENT = frozenset(
    opcode.opmap[name] for name in ("STORE_SUBSCR", "STORE_SLICE") if name in opcode.opmap
)


def _called_from_item_assignment() -> bool:
    try:
        frame = sys._getframe(2)  # 0: this helper, 1: the Tensor method NumPy called, 2: caller
    except ValueError:  # called with no Python code above (a C callback)
        return False
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] in _ITEM_ASSIGNMENT


# ``a += t`` with ``a`` a plain array: ndarray.__iadd__ calls numpy.add(a, t, out=a), which
# reaches Tensor.__array_ufunc__, and returns whatever that returns. The calling frame is then
# executing an in-place operator: BINARY_OP with an in-place argument (Python 3.11+; NumPy's
# NB_INPLACE_* codes are 13 and up), or an INPLACE_* instruction before that.
_BINARY_OP = opcode.opmap.get("BINARY_OP")
_INPLACE_OPS = frozenset(code for name, code in opcode.opmap.items() if name.startswith("INPLACE_"))


def _called_from_inplace_operator() -> bool:
    try:
        frame = sys._getframe(2)  # 0: this helper, 1: __array_ufunc__, 2: the caller
    except ValueError:
        return False
    code, i = frame.f_code.co_code, frame.f_lasti
    if not 0 <= i < len(code) - 1:
        return False
    if _BINARY_OP is not None and code[i] == _BINARY_OP:
        return code[i + 1] >= 13
    return code[i] in _INPLACE_OPS


def _written_into_array_error(t: Tensor) -> TypeError:
    return TypeError(
        f"a chainrule tensor that requires grad (shape {t.shape}, dtype {t.dtype}) was written "
        "into a plain NumPy array with `array[index] = value`. NumPy would keep only its value "
        "and the gradient through it would be lost. Make the array a tensor first "
        "(`out = chainrule.tensor(numpy.zeros(n))`): writes into tensors are recorded. To store "
        "the value alone on purpose, write `float(value)` or `value.detach()`"
    )


class Tensor(Node):
    """A NumPy array whose operations are recorded for differentiation.

    Make one with :func:`chainrule.tensor`. NumPy functions, ufuncs, operators and the common
    ndarray methods accept it and return tensors; ``backward()`` fills ``.grad`` of every leaf
    with ``requires_grad=True``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> w = cr.tensor([1.0, -2.0], requires_grad=True)
    >>> y = numpy.maximum(0, w * 3).sum()
    >>> y.backward()
    >>> w.grad
    array([3., 0.])
    """

    __slots__ = ()
    __hash__ = object.__hash__
    __array_priority__ = 1000.0

    # --- the NumPy protocols ----------------------------------------------------------------

    def __array_ufunc__(self, ufunc: numpy.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method == "__call__" and not kwargs:  # numpy.maximum(0, z): the common case first
            prim = _UFUNCS.get(ufunc)
            if prim is not None:
                return _apply(prim, inputs, _EMPTY)
        if method != "__call__":
            f = P.UFUNC_METHODS.get((ufunc, method))
            if f is None:
                return _unsupported(
                    f"{_ufunc_title(ufunc)}.{method}", inputs, kwargs, getattr(ufunc, method), None
                )
            return f(*inputs, **kwargs)
        if kwargs:
            kwargs = dict(kwargs)
            out = kwargs.pop("out", None)
            if out is not None and any(o is not None for o in out):
                if (
                    len(out) == 1
                    and type(out[0]) is numpy.ndarray
                    and inputs[0] is out[0]
                    and _called_from_inplace_operator()
                ):
                    # `a += t` with `a` a plain array: the name is rebound to the recorded
                    # result (as for `t += u`), computed from a copy of a's old values, and
                    # a's memory gets the new values for any other reference to it.
                    old = numpy.array(out[0])
                    result = self.__array_ufunc__(ufunc, method, old, *inputs[1:], **kwargs)
                    numpy.copyto(out[0], _unwrap(result), casting="same_kind")
                    return result
                if len(out) == 1 and isinstance(out[0], Tensor):
                    # out= a tensor: the result written into it as a recorded in-place update
                    # (t[...] = result, with the same rules as any write into a tensor)
                    result = self.__array_ufunc__(ufunc, method, *inputs, **kwargs)
                    return _write_into(out[0], result, _ufunc_title(ufunc))
                title = _ufunc_title(ufunc)
                raise TypeError(
                    f"{title}: out= is not supported with chainrule "
                    "tensors (a write into an existing array cannot be recorded); "
                    f"use the returned value instead: y = {title}(...) rather than "
                    f"{title}(..., out=y)"
                )
            dtype = kwargs.pop("dtype", None)
            if dtype is not None:
                inputs = tuple(i.astype(dtype) if isinstance(i, Tensor) else i for i in inputs)
            if kwargs and ufunc not in C.COMPOSITES:
                raise TypeError(
                    f"{_ufunc_title(ufunc)}: {sorted(kwargs)} are not supported "
                    "on chainrule tensors; use numpy.where to mask instead"
                )
        prim = _UFUNCS.get(ufunc)
        if prim is not None:
            return _apply(prim, inputs, _EMPTY)
        composite = C.COMPOSITES.get(ufunc)
        if composite is not None:  # a gufunc written with primitives (numpy.vecdot, axis=)
            return composite(*inputs, **kwargs)
        nd = P.NONDIFF_UFUNCS.get(ufunc)
        if nd is not None:
            return _nondiff(nd, inputs, _EMPTY)
        if _special_pending and _load_special():  # scipy.special's ufuncs: their rules now
            prim = _UFUNCS.get(ufunc)
            if prim is not None:
                return _apply(prim, inputs, _EMPTY)
        return _unsupported(_ufunc_title(ufunc), inputs, {}, ufunc, None)

    def __array_function__(
        self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any
    ) -> Any:
        target = kwargs.get("out") if kwargs else None
        if isinstance(target, Tensor):  # numpy.clip(t, lo, hi, out=t) & co.: a recorded write
            rest = {k: v for k, v in kwargs.items() if k != "out"}
            return _write_into(target, func(*args, **rest), f"numpy.{func.__name__}")
        binder = B.FUNCTIONS.get(func)
        if binder is not None:
            prim, inputs, params = binder(*args, **kwargs)
            return _apply(prim, inputs, params)
        composite = C.COMPOSITES.get(func)
        if composite is not None:
            return composite(*args, **kwargs)
        nd = P.NONDIFF_FUNCTIONS.get(func)
        if nd is not None:  # recorded while tracing, so argmax & co. are never frozen
            graded = C.WHEN_DIFFERENTIATED.get(func)
            if graded is not None and (_needs_grad(args) or _needs_grad(kwargs)):
                return graded(*args, **kwargs)  # bincount's weights & co.
            return _nondiff(nd, tuple(args), dict(kwargs) if kwargs else _EMPTY)
        if func in _METADATA:
            return func(*_unwrap(args), **_unwrap(kwargs))
        if func in _LIKE:  # zeros_like(t) & co.: a constant tensor, so writes into it record
            return _like(func, args, kwargs)
        name = getattr(func, "__name__", repr(func))
        module = getattr(func, "__module__", "") or ""
        if module.startswith("numpy.") and not module.startswith("numpy._"):
            name = f"{module[6:]}.{name}"
        return _unsupported(name, args, kwargs, func)

    @classmethod
    def __chainrule_apply__(
        cls, prim: P.Primitive, args: tuple[Any, ...], params: dict[str, Any]
    ) -> Tensor:
        return _apply(prim, args, params)

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        if _state.tracing and _state.frozen is not None and not _state.strict:
            _state.frozen.append(f"an array of shape {self._data.shape}")
            data = numpy.asarray(self._data)
            return data if dtype is None else data.astype(dtype, copy=False)
        if _unusual and _state.tracing:
            raise TracerBoolError(
                "a traced tensor was converted to a plain NumPy array; inside chainrule.jit "
                "or chainrule.explain that would freeze today's values into the recording. "
                "Keep the computation in NumPy functions and operators on tensors"
            )
        if self.requires_grad and _state.enabled and not _integral(dtype):
            # (a cast to integers or booleans, numpy.int64(t), has no gradient to drop)
            if _called_from_item_assignment():
                raise _written_into_array_error(self)
            caller = _scipy_caller()
            if caller is not None:
                raise _converted_by_scipy(caller)
            raise TypeError(
                "a chainrule tensor that requires grad was converted to a plain NumPy array, "
                "which would drop it from the gradient. Three idioms do this: (1) a Python list "
                "of tensors given to NumPy (numpy.array([t1, t2]), numpy.r_[...], numpy.c_[...], "
                "numpy.mean([a, b])): NumPy converts the list itself, so write numpy.stack([t1, "
                "t2]) (or numpy.concatenate / numpy.column_stack) and apply the function to that, "
                "or import chainrule.numpy as np, whose np.array, np.r_, ... keep the gradient; "
                "(2) an ndarray *method* given the tensor, e.g. X.dot(W) with X a plain array: "
                "make X a tensor too (chainrule.tensor(X)), or write X @ W or numpy.dot(X, W); "
                "(3) numpy.array(t) or numpy.asarray(t, dtype=...) for a working copy: write "
                "t.copy() or numpy.copy(t) (t.astype(dtype) to convert). "
                "For the values alone use t.detach() or t.numpy()"
            )
        data = numpy.asarray(self._data)
        return data if dtype is None else data.astype(dtype, copy=False)

    # --- basic attributes -------------------------------------------------------------------

    @property
    def data(self) -> Any:
        """The underlying NumPy array. Writing into it is not recorded (as in PyTorch)."""
        return self._traced_read("t.data")

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value if _foreign(value) else numpy.asarray(value)

    def _traced_read(self, what: str) -> Any:
        if _state.tracing and self._seq >= _state.trace_since and not _constant_leaf(self):
            raise TracerBoolError(
                f"{what} of a traced tensor inside chainrule.jit or chainrule.explain would "
                "freeze today's values into the compiled program. Use t.detach() for the values "
                "without gradient (it is recorded), or compute with NumPy functions on the tensor"
            )
        if self.requires_grad and _state.enabled:
            _state.dropped += 1  # t.data, t.numpy(): the values leave the gradient
        return self._data

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape  # type: ignore[no-any-return]

    @property
    def dtype(self) -> numpy.dtype[Any]:
        return self._data.dtype  # type: ignore[no-any-return]

    @property
    def ndim(self) -> int:
        return self._data.ndim  # type: ignore[no-any-return]

    @property
    def size(self) -> int:
        return self._data.size  # type: ignore[no-any-return]

    @property
    def real(self) -> Tensor:
        return _apply(P.real, (self,), _EMPTY)

    @property
    def imag(self) -> Tensor:
        return _apply(P.imag, (self,), _EMPTY)

    def conj(self) -> Tensor:
        return _apply(P.conjugate, (self,), _EMPTY)

    conjugate = conj

    @property
    def T(self) -> Tensor:
        nd = self._data.ndim
        return _apply(P.transpose, (self,), {"axes": tuple(range(nd))[::-1]})

    @property
    def mT(self) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.swapaxes](self, -1, -2))

    @property
    def name(self) -> str | None:
        """The name ``explain`` prints for this value (set it to choose one)."""
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value

    @property
    def is_leaf(self) -> bool:
        return self._prim is None

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        if _foreign(self._data):  # shown as its library shows it, never copied to the host
            grad = ", requires_grad=True" if self.requires_grad else ""
            return f"tensor({self._data!r}{grad})"
        body = numpy.array2string(numpy.asarray(self._data), separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self._data.dtype != numpy.float64 and self._data.dtype.kind == "f":
            extra = f", dtype={self._data.dtype}" + extra
        return f"tensor({body}{extra})"

    def _concrete(self, what: str) -> Any:
        if _unusual and _state.tracing and _constant_leaf(self):
            return self._data  # a static argument or a constant made inside: not traced
        if _unusual and _state.tracing and not _state.strict:
            raise TracerBoolError(
                f"{what} of a traced tensor inside chainrule.explain: the value would be "
                "frozen into the derivation as a number. Keep it an array (NumPy functions "
                "on it), or use t.detach() where it is a constant"
            )
        if _unusual and _state.tracing:
            raise TracerBoolError(
                f"{what} of a traced tensor: Python control flow cannot depend on values inside "
                "chainrule.jit (its compiled program must hold for every value). Use "
                "numpy.where for value-dependent choices, or mark the argument as static "
                "(static_argnums)"
            )
        return self._data

    def __bool__(self) -> bool:
        if _state.tracing and not _state.strict and self._data.size == 1:
            # explain follows Python's control flow on these inputs' values (and says so);
            # jit (strict) cannot, since its program must hold for any values
            _state.branches += 1
            return bool(self._data)
        return bool(self._concrete("bool()"))

    def __float__(self) -> float:
        if self.requires_grad and _state.enabled:
            if _called_from_item_assignment():
                raise _written_into_array_error(self)
            _state.dropped += 1
        return float(self._concrete("float()"))

    def __complex__(self) -> complex:
        if self.requires_grad and _state.enabled:
            if _called_from_item_assignment():
                raise _written_into_array_error(self)
            _state.dropped += 1
        return complex(self._concrete("complex()"))

    def __int__(self) -> int:
        if _state.tracing and not _state.strict and self._data.size == 1:
            _state.branches += 1  # range(int(n)) under explain: control flow, followed as if
            return int(self._data)
        return int(self._concrete("int()"))

    def __index__(self) -> int:
        if _state.tracing and not _state.strict and self._data.size == 1:
            _state.branches += 1
            return self._data.__index__()  # type: ignore[no-any-return]
        return self._concrete("index").__index__()  # type: ignore[no-any-return]

    def item(self) -> Any:
        """The value of a one-element tensor as a Python scalar."""
        if self.requires_grad and _state.enabled:
            _state.dropped += 1
        return self._concrete("item()").item()

    def tolist(self) -> Any:
        if self.requires_grad and _state.enabled:
            _state.dropped += 1
        return numpy.asarray(self._concrete("tolist()")).tolist()

    def numpy(self) -> numpy.ndarray:
        """The values as a NumPy array (no gradient)."""
        return numpy.asarray(self._traced_read("t.numpy()"))

    def detach(self) -> Tensor:
        """A tensor with the same values, cut off from the graph (shares memory).

        Inside ``jit`` and ``explain`` it is a recorded stop: the values follow new inputs and
        no gradient flows through it.
        """
        if _unusual and _state.tracing:
            return _apply(P.stop_gradient, (self,), _EMPTY)
        return _leaf(self._data, False)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` on a leaf in place and return it."""
        if not self.is_leaf:
            raise RuntimeError("requires_grad_() works on leaves only; use t.detach() first")
        if requires_grad:
            _check_float(self._data, "requires_grad_")
        self.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    # --- backward ---------------------------------------------------------------------------

    def backward(
        self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False
    ) -> None:
        """Add d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        ``gradient`` is the gradient of some final scalar with respect to ``self`` (needed when
        ``self`` is not a scalar).  The graph is freed afterwards unless ``retain_graph``;
        ``create_graph`` records the backward pass so it can be differentiated again.

        Example
        -------
        >>> import chainrule as cr
        >>> x = cr.tensor(3.0, requires_grad=True)
        >>> (x ** 2).backward()
        >>> float(x.grad)
        6.0
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: nothing it was computed "
                "from has requires_grad=True (or it was computed under no_grad()). Make the "
                "parameters with chainrule.tensor(..., requires_grad=True)"
            )
        data = self._data
        if gradient is None:
            if data.dtype.kind == "c":
                raise RuntimeError(_complex_output("backward()", data.dtype))
            if data.size != 1:
                raise RuntimeError(
                    f"backward() without `gradient` needs a scalar, but this tensor has shape "
                    f"{data.shape}. Reduce it first (t.sum(), t.mean()) or pass gradient= an "
                    "array of that shape"
                )
            seed: Any = _ones(data) if not create_graph else numpy.ones_like(data)
        else:
            g = gradient._data if isinstance(gradient, Tensor) else gradient
            if not _foreign(g):
                g = numpy.asarray(g)
            if g.shape != data.shape:
                raise ValueError(
                    f"backward(): gradient has shape {g.shape}, but the tensor "
                    f"has shape {data.shape}; they must match"
                )
            seed = g.astype(data.dtype) if _foreign(g) else numpy.array(g, dtype=data.dtype)
            if create_graph and isinstance(gradient, Tensor):
                seed = gradient
        if create_graph and not isinstance(seed, Tensor):
            seed = _leaf(seed, False)
        if self._prim is None:
            if self.grad is not None:
                self.grad = self.grad + seed
            else:
                self.grad = seed if create_graph else numpy.array(seed)
            return
        restore_before_walk(self)
        if not create_graph:
            backward_pass(self, seed, None, False, retain_graph)
            return
        with enable_grad():
            backward_pass(self, seed, None, True, retain_graph)

    # --- operators --------------------------------------------------------------------------

    def __add__(self, o: Any) -> Tensor:
        return _apply(P.add, (self, o), _EMPTY)

    def __radd__(self, o: Any) -> Tensor:
        return _apply(P.add, (o, self), _EMPTY)

    def __sub__(self, o: Any) -> Tensor:
        return _apply(P.subtract, (self, o), _EMPTY)

    def __rsub__(self, o: Any) -> Tensor:
        return _apply(P.subtract, (o, self), _EMPTY)

    def __mul__(self, o: Any) -> Tensor:
        return _apply(P.multiply, (self, o), _EMPTY)

    def __rmul__(self, o: Any) -> Tensor:
        return _apply(P.multiply, (o, self), _EMPTY)

    def __truediv__(self, o: Any) -> Tensor:
        return _apply(P.divide, (self, o), _EMPTY)

    def __rtruediv__(self, o: Any) -> Tensor:
        return _apply(P.divide, (o, self), _EMPTY)

    def __pow__(self, o: Any) -> Tensor:
        return _apply(P.power, (self, o), _EMPTY)

    def __rpow__(self, o: Any) -> Tensor:
        return _apply(P.power, (o, self), _EMPTY)

    def __matmul__(self, o: Any) -> Tensor:
        return _apply(P.matmul, (self, o), _EMPTY)

    def __rmatmul__(self, o: Any) -> Tensor:
        return _apply(P.matmul, (o, self), _EMPTY)

    def __mod__(self, o: Any) -> Tensor:
        return _apply(P.remainder, (self, o), _EMPTY)

    def __rmod__(self, o: Any) -> Tensor:
        return _apply(P.remainder, (o, self), _EMPTY)

    def __neg__(self) -> Tensor:
        return _apply(P.negative, (self,), _EMPTY)

    def __pos__(self) -> Tensor:
        return _apply(P.positive, (self,), _EMPTY)

    def __abs__(self) -> Tensor:
        return _apply(P.absolute, (self,), _EMPTY)

    def __floordiv__(self, o: Any) -> Any:
        return _compare(numpy.floor_divide, self, o)

    def __rfloordiv__(self, o: Any) -> Any:
        return _compare(numpy.floor_divide, o, self)

    def __lt__(self, o: Any) -> Any:
        return _compare(numpy.less, self, o)

    def __le__(self, o: Any) -> Any:
        return _compare(numpy.less_equal, self, o)

    def __gt__(self, o: Any) -> Any:
        return _compare(numpy.greater, self, o)

    def __ge__(self, o: Any) -> Any:
        return _compare(numpy.greater_equal, self, o)

    def __eq__(self, o: Any) -> Any:
        return _compare(numpy.equal, self, o)

    def __ne__(self, o: Any) -> Any:
        return _compare(numpy.not_equal, self, o)

    def __and__(self, o: Any) -> Any:
        return _compare(numpy.logical_and, self, o)

    def __rand__(self, o: Any) -> Any:
        return _compare(numpy.logical_and, o, self)

    def __or__(self, o: Any) -> Any:
        return _compare(numpy.logical_or, self, o)

    def __ror__(self, o: Any) -> Any:
        return _compare(numpy.logical_or, o, self)

    def __xor__(self, o: Any) -> Any:
        return _compare(numpy.logical_xor, self, o)

    def __rxor__(self, o: Any) -> Any:
        return _compare(numpy.logical_xor, o, self)

    # fmt: on

    def __invert__(self) -> Any:
        if _unusual and _state.tracing:
            return _apply(P.NONDIFF_UFUNCS[numpy.invert], (self,), _EMPTY)
        return ~self._data

    # --- indexing ---------------------------------------------------------------------------

    def __getitem__(self, index: Any) -> Tensor:
        if _unusual and _state.tracing:
            dynamic = _dynamic_index(index)
            if dynamic is not None:
                template, arrays = dynamic
                return _apply(P.gather, (self,) + arrays, {"template": template})
        return _apply(P.getitem, (self,), {"index": _index(index)})

    def __setitem__(self, index: Any, value: Any) -> None:
        """``t[index] = value``, recorded as a functional update (``t`` is a new value after)."""
        if self.requires_grad and self._prim is None and _state.enabled:
            raise RuntimeError(
                "in-place assignment into a leaf tensor that requires grad: its gradient would "
                "no longer be about the values you created. Assign into a copy (u = t.copy(); "
                "u[...] = v) or update the data under chainrule.no_grad()"
            )
        if self._prim is not None and self._prim not in _MARKERS:
            for a in self._args or ():
                if isinstance(a, Tensor) and _views(self, a):
                    # NumPy's write would change the array this one views, chainrule's not
                    raise RuntimeError(_VIEW_WRITTEN)
        readers: list[Tensor] = []
        if self._used and (_state.enabled or _state.tracing):
            readers = _readers_in(self, (value, index))
            if len(readers) != self._used and _state.versions is None:
                # eagerly, a reader kept elsewhere: look in the callers' variables (a trace
                # points the reads it cannot see here at the snapshot when it ends)
                held = _callers_values()
                readers = _readers_in(self, (value, index, held))
                ids = {id(h) for h in held}
                for r in readers:  # a view held in a variable, so read after the write
                    if id(r) in ids and _views(r, self):
                        raise RuntimeError(_VIEW_READ_THEN_WRITTEN)
            if len(readers) != self._used and _state.versions is None:
                raise RuntimeError(_READ_THEN_WRITTEN)
        recording = (
            self.requires_grad or (isinstance(value, Tensor) and value.requires_grad)
        ) and _state.enabled
        if self._prim is None and not recording and not _state.tracing:
            # a constant stays a constant; under no_grad() a parameter is updated in place
            self._data = _assign(self._data, _unwrap(value), _index(index))
            return
        before = _new(Tensor)
        for slot in _COPIED:
            object.__setattr__(before, slot, getattr(self, slot))
        for r in set(readers):  # every read of the old value now reads the snapshot of it
            r._args = tuple(before if a is self else a for a in r._args or ())
        before._used = len(readers)
        if len(readers) != self._used and _state.versions is not None:
            # tracing: the other reads are pointed at ``before`` when the trace ends
            _state.versions.setdefault(id(self), (self, []))[1].append(before)
        if _state.tracing and _is_mask_of(index, self) and numpy.ndim(_unwrap(value)) == 0:
            # h[h < 0] = 0 under jit/explain: the mask is a traced value, so the write is a
            # where(), which the program can follow for any input (same values as the write)
            after: Tensor = numpy.where(index, value, before)  # type: ignore[assignment]
            if after.dtype != before.dtype:  # (NumPy's stubs type where() as an ndarray)
                after = after.astype(before.dtype)
        else:
            after = _apply(P.setitem, (before, value), {"index": _index(index)})
        for slot in _COPIED:
            if slot not in ("grad", "_name"):
                object.__setattr__(self, slot, getattr(after, slot))

    # --- methods (each goes straight to the primitive behind the NumPy function) ---------------

    def sum(
        self,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        **kw: Any,
    ) -> Tensor:
        if (axis is None or type(axis) is int) and dtype is None and out is None and not kw:
            # the binder skipped (one axis or all of them, nothing else)
            ax = P.normalize_axis(axis, self._data.ndim, "sum")
            return _apply(P.sum_, (self,), {"axis": ax, "keepdims": bool(keepdims)})
        return _apply(*B.FUNCTIONS[numpy.sum](self, axis, dtype, out, keepdims, **kw))

    def mean(
        self,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        **kw: Any,
    ) -> Tensor:
        if (axis is None or type(axis) is int) and dtype is None and out is None and not kw:
            # the binder skipped (one axis or all of them, nothing else)
            ax = P.normalize_axis(axis, self._data.ndim, "mean")
            return _apply(P.mean, (self,), {"axis": ax, "keepdims": bool(keepdims)})
        return _apply(*B.FUNCTIONS[numpy.mean](self, axis, dtype, out, keepdims, **kw))

    def prod(
        self,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        **kw: Any,
    ) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.prod](self, axis, dtype, out, keepdims, **kw))

    def max(self, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        if (axis is None or type(axis) is int) and out is None and not kw:  # binder skipped
            ax = P.normalize_axis(axis, self._data.ndim, "max")
            return _apply(P.amax, (self,), {"axis": ax, "keepdims": bool(keepdims)})
        return _apply(*B.FUNCTIONS[numpy.max](self, axis, None, out, keepdims, **kw))

    def min(self, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        if (axis is None or type(axis) is int) and out is None and not kw:  # binder skipped
            ax = P.normalize_axis(axis, self._data.ndim, "min")
            return _apply(P.amin, (self,), {"axis": ax, "keepdims": bool(keepdims)})
        return _apply(*B.FUNCTIONS[numpy.min](self, axis, None, out, keepdims, **kw))

    def var(
        self,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        ddof: float = 0,
        keepdims: bool = False,
        **kw: Any,
    ) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.var](self, axis, dtype, out, ddof, keepdims, **kw))

    def std(
        self,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        ddof: float = 0,
        keepdims: bool = False,
        **kw: Any,
    ) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.std](self, axis, dtype, out, ddof, keepdims, **kw))

    def cumsum(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.cumsum](self, axis, dtype, out))

    def cumprod(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.cumprod](self, axis, dtype, out))

    def dot(self, b: Any, out: Any = None) -> Tensor:
        if out is None:
            return _apply(P.dot, (self, b), _EMPTY)
        return _apply(*B.FUNCTIONS[numpy.dot](self, b, out))

    def reshape(self, *shape: Any, order: str = "C") -> Tensor:
        if len(shape) == 1:
            shape = shape[0]
        return _apply(*B.FUNCTIONS[numpy.reshape](self, shape, order))

    def ravel(self, order: str = "C") -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.ravel](self, order))

    def flatten(self, order: str = "C") -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.ravel](self, order))

    def squeeze(self, axis: Any = None) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.squeeze](self, axis))

    def transpose(self, *axes: Any) -> Tensor:
        order: Any = axes
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            order = axes[0]
        return _apply(*B.FUNCTIONS[numpy.transpose](self, order or None))

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.swapaxes](self, axis1, axis2))

    def repeat(self, repeats: Any, axis: Any = None) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.repeat](self, repeats, axis))

    def take(self, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise") -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.take](self, indices, axis, out, mode))

    def clip(self, min: Any = None, max: Any = None, out: Any = None, **kw: Any) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.clip](self, min, max, out, **kw))

    def diagonal(self, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.diagonal](self, offset, axis1, axis2))

    def trace(
        self, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
    ) -> Tensor:
        return _apply(*B.FUNCTIONS[numpy.trace](self, offset, axis1, axis2, dtype, out))

    def copy(self, order: str = "K") -> Tensor:
        return _apply(P.copy, (self,), _EMPTY)

    def astype(self, dtype: Any, copy: bool = True) -> Any:  # integer dtypes: a plain array
        dt = numpy.dtype(dtype)
        if dt.kind not in "fc":  # integer or boolean values carry no gradient
            return _nondiff(P.astype, (self,), {"dtype": dt})
        if dt == self._data.dtype and not copy:
            return self
        return _apply(P.astype, (self,), {"dtype": dt})

    def argmax(self, axis: Any = None, **kw: Any) -> Any:
        return numpy.argmax(self, axis=axis, **kw)

    def argmin(self, axis: Any = None, **kw: Any) -> Any:
        return numpy.argmin(self, axis=axis, **kw)

    def argsort(self, axis: int = -1, kind: Any = None) -> Any:
        return numpy.argsort(self, axis=axis, kind=kind)

    def all(self, axis: Any = None, **kw: Any) -> Any:
        return numpy.all(self, axis=axis, **kw)

    def any(self, axis: Any = None, **kw: Any) -> Any:
        return numpy.any(self, axis=axis, **kw)

    def round(self, decimals: int = 0) -> Any:
        return numpy.round(self, decimals)

    def nonzero(self) -> Any:
        return numpy.nonzero(self)


_LIKE = {numpy.zeros_like, numpy.ones_like, numpy.empty_like, numpy.full_like}


def _like(func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """``zeros_like(t)``, ``full_like(t, v)``, ...: a constant tensor of t's shape and dtype (so
    that writes into it are recorded). A fill value that is itself a tensor stays in the graph:
    ``full_like(t, v)`` is then ``ones_like(t) * v`` (the same values, -0.0 and NaN included)."""
    fill = args[1] if len(args) > 1 else kwargs.get("fill_value")
    if func is numpy.full_like and isinstance(fill, Tensor):
        rest = {k: v for k, v in kwargs.items() if k != "fill_value"}
        ones = _leaf(numpy.ones_like(_unwrap(args[0]), **_unwrap(rest)), False)
        out = ones * fill
        return out if out.dtype == ones.dtype else out.astype(ones.dtype)
    return _leaf(func(*_unwrap(args), **_unwrap(kwargs)), False)


_METADATA = {  # functions of the shape alone: computed on the values, constants in a trace
    numpy.tril_indices_from,
    numpy.triu_indices_from,
    numpy.diag_indices_from,
    numpy.shape,
    numpy.ndim,
    numpy.size,
    numpy.iscomplexobj,
    numpy.isrealobj,
    numpy.isscalar,
} | ({numpy.size} if hasattr(numpy, "size") else set())


def _integral(dtype: Any) -> bool:
    return dtype is not None and numpy.dtype(dtype).kind in "iub"


def _foreign(x: Any) -> bool:
    """Another array library's array (CuPy, Dask, ...): it implements NumPy's protocols and is
    kept as it is (never converted to a host ndarray behind the user's back)."""
    return (
        not P.on_host(x)
        and not isinstance(x, Tensor)
        and hasattr(x, "dtype")
        and hasattr(x, "shape")
    )


def _complex_output(fname: str, dtype: Any) -> str:
    return (
        f"{fname} needs a real-valued output, got a {dtype} one: a complex value has no single "
        "gradient. Differentiate a real function of it (abs(z) ** 2, z.real), or pass the "
        "output's cotangent explicitly (backward(gradient=...), chainrule.vjp)"
    )


def _check_float(arr: numpy.ndarray, where: str | Callable[[], str]) -> None:
    """Refuse non-float data for a gradient; ``where`` (or its call, made only to refuse)
    says which argument."""
    if arr.dtype.kind not in "fc":
        if callable(where):
            where = where()
        kind = {"i": "integer", "u": "unsigned integer", "b": "boolean"}.get(
            arr.dtype.kind, str(arr.dtype)
        )
        raise TypeError(
            f"{where}: requires_grad=True needs floating-point (or complex) data, got {kind} "
            f"dtype {arr.dtype}. Gradients are defined for real and complex floating-point "
            "values: pass dtype=float (or write 1.0 instead of 1)"
        )


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a :class:`Tensor` from array-like ``data`` (the values are copied).

    Parameters
    ----------
    data : array_like
        Numbers, nested lists, or a NumPy array.
    requires_grad : bool
        Whether ``backward()`` should compute this tensor's gradient (floating point only).
    dtype : dtype, optional
        NumPy dtype of the values; by default NumPy's choice for ``data``.

    Example
    -------
    >>> import chainrule as cr
    >>> w = cr.tensor([[1.0, 2.0]], requires_grad=True)
    >>> w.shape
    (1, 2)
    """
    if isinstance(data, Tensor):
        data = data._data
    _refuse_subclass(data, "chainrule.tensor")
    if _foreign(data):  # another library's array stays its own, on its device (copied there)
        foreign = data.astype(dtype) if dtype is not None else data.copy()
        if requires_grad:
            _check_float(foreign, "chainrule.tensor")
        return _leaf(foreign, bool(requires_grad))
    try:
        arr = numpy.array(data, dtype=dtype, copy=True)
    except (ValueError, TypeError) as e:
        raise TypeError(
            f"chainrule.tensor: cannot make an array from this data ({e}). Nested "
            "lists must be rectangular and hold numbers"
        ) from None
    if arr.dtype == object or arr.dtype.kind in "OSUV":
        raise TypeError(
            f"chainrule.tensor: data of dtype {arr.dtype} is not numeric; "
            "give numbers (nested lists must be rectangular)"
        )
    if requires_grad:
        _check_float(arr, "chainrule.tensor")
    return _leaf(arr, bool(requires_grad))


_ndarray_names()
