"""Recording a whole function, with names: the common first step of ``explain`` and ``jit``.

The function runs once on tensors while every operation is recorded (``tracing``), then the
backward pass is run through the same gradient rules with ``create_graph``, so it is recorded
too.  Names come, in this order, from: names set on tensors (``t.name = ...``), the function's
parameter names (``W[0]`` for pytree leaves), and its local variables when it returned.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine.graph import Node, Step, _counter, backward_pass
from chainrule.engine.pytree import flatten, leaf_paths, unflatten
from chainrule.engine.tensor import (
    Tensor,
    TracerBoolError,
    _leaf,
    _state,
    enable_grad,
    restore_reads,
    tracing,
)
from chainrule.engine.transforms import _param_names

__all__ = ["Recording", "record"]


@dataclasses.dataclass
class Recording:
    """A function's forward and backward pass, recorded for one set of input shapes."""

    fun_name: str
    params: list[str]  # the function's positional parameter names
    treedefs: list[Any]  # per positional argument (None: a static argument)
    static: dict[int, Any]  # positional arguments kept as Python values
    inputs: list[Tensor]  # every traced array leaf, in argument order
    input_names: list[str]  # "X", "W[0]", "params['b']"
    input_arg: list[int]  # which positional argument each input belongs to
    wrt: list[int]  # indices into ``inputs`` that are differentiated
    output: Any  # the function's result (a tensor, or a pytree)
    names: dict[Node, str]  # every named node, inputs included
    steps: list[Step]  # the backward walk, newest node first
    grads: list[Any]  # d(output)/d(input) per ``wrt``, recorded tensors
    summed_output: bool  # a non-scalar output was summed before differentiating
    branches: int = 0  # how many times Python's control flow branched on a traced value
    constants: dict[float, str] = dataclasses.field(default_factory=dict)  # 0.1 -> "LAM"
    arrays: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)  # by id()
    frozen: list[str] = dataclasses.field(default_factory=list)  # traced values made plain


def _is_array(x: Any) -> bool:
    return isinstance(x, (numpy.ndarray, numpy.generic, Tensor)) and not isinstance(x, str)


def _holds_float_array(arg: Any) -> bool:
    leaves, _ = flatten(arg)
    return any(_is_array(v) and numpy.asarray(v).dtype.kind in "fc" for v in leaves)


def _leaf_name(param: str, path: str) -> str:
    return param + path


@dataclasses.dataclass
class _Seen:
    """What the user's code bound while it ran: read from its frames, never from its source."""

    final: dict[str, Any] = dataclasses.field(default_factory=dict)  # fun's locals at return
    # (local name, tensor) in the order they were first bound, fun's and its helpers' frames
    bound: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    constants: dict[float, str] = dataclasses.field(default_factory=dict)  # LAM = 0.1
    ambiguous: set[float] = dataclasses.field(default_factory=set)
    # plain arrays the code held in a local or read from a global (data that is not an
    # argument, h = numpy.zeros(...)), by identity: (name, the array, kept alive)
    arrays: dict[int, tuple[str, Any]] = dataclasses.field(default_factory=dict)
    returned: list[tuple[str, Any]] = dataclasses.field(default_factory=list)  # (helper, value)
    # objects the function reads or holds (a layer ``dense1``): their array attributes are
    # named ``dense1.output`` when it returns
    objects: dict[str, Any] = dataclasses.field(default_factory=dict)


_TRIVIAL = {0.0, 1.0, -1.0, 2.0, 0.5}


def _library_dirs() -> tuple[str, ...]:
    import os
    import sysconfig

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [here, os.path.dirname(numpy.__file__), sysconfig.get_paths()["stdlib"]]
    return tuple(os.path.join(d, "") for d in dirs)


def _capture_locals(fun: Callable[..., Any]) -> tuple[Callable[..., Any], _Seen]:
    """Wrap ``fun`` so that the names its code (and the helper functions it calls) binds are
    kept: every tensor a local variable held, in order (``h`` in a loop: each one), the locals
    at return, and the numbers named by module globals or closure variables it reads."""
    code = getattr(fun, "__code__", None)
    seen = _Seen()
    if code is None:
        return fun, seen
    library = _library_dirs()
    known: set[int] = set()

    def note_constants(frame: Any) -> None:
        names = [(n, frame.f_globals.get(n)) for n in frame.f_code.co_names]
        local = frame.f_locals
        names += [(n, local.get(n)) for n in frame.f_code.co_freevars]
        if frame.f_code is not code:  # a helper's number parameters: softmax_loss(..., reg)
            c = frame.f_code
            params = [(n, local.get(n)) for n in c.co_varnames[: c.co_argcount]]
            names += [(n, v) for n, v in params if isinstance(v, (float, numpy.floating))]
        for n, v in names:
            if frame.f_code is code and _is_object(v) and not n.startswith("_"):
                seen.objects.setdefault(n, v)
            if isinstance(v, Tensor) and v._prim is None and not v.requires_grad:
                v = v._data  # data the user made a tensor: shown by its name too
            if isinstance(v, numpy.ndarray) and not n.startswith("_"):
                seen.arrays.setdefault(id(v), (n, v))
            if isinstance(v, (float, numpy.floating)) and not n.startswith("_"):
                x = float(v)
                if x in _TRIVIAL or x != x:
                    continue
                if seen.constants.get(x, n) != n:
                    seen.ambiguous.add(x)
                seen.constants.setdefault(x, n)

    def note_locals(frame: Any) -> None:
        local = frame.f_locals
        items = list(local.items())
        owner = local.get("self")
        if owner is not None and isinstance(getattr(owner, "__dict__", None), dict):
            # a model written as a class keeps its values on self (self.h, self.cache)
            items += [(k, v) for k, v in vars(owner).items() if isinstance(v, Tensor)]
        for name, value in items + _contents(items):
            if isinstance(value, numpy.ndarray) and not name.startswith("_"):
                seen.arrays.setdefault(id(value), (name, value))
            if isinstance(value, Tensor) and id(value) not in known and not name.startswith("_"):
                known.add(id(value))
                seen.bound.append((name, value))

    def local_tracer(frame: Any, event: str, arg: Any) -> Any:
        try:
            if event in ("line", "return"):
                note_locals(frame)
            if event == "return" and frame.f_code is code and not seen.final:
                seen.final.update(frame.f_locals)
                for n, v in frame.f_locals.items():
                    if _is_object(v) and not n.startswith("_"):
                        seen.objects.setdefault(n, v)
            if event == "return" and frame.f_code is not code and isinstance(arg, Tensor):
                seen.returned.append((frame.f_code.co_name, arg))  # sigmoid(x) -> "sigmoid"
        except Exception:  # noqa: BLE001, S110 - names are a courtesy; the user's code runs on
            pass
        return local_tracer

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        c = frame.f_code
        if c is not code and (c.co_filename.startswith(library) or c.co_filename[:1] == "<"):
            return None  # library code: NumPy, chainrule, the standard library
        try:
            caller = frame.f_back
            if c is not code and caller is not None and caller.f_trace is local_tracer:
                note_locals(caller)  # the call site's names first: f(x) names x, not f's a
            note_constants(frame)
        except Exception:  # noqa: BLE001, S110 - names are a courtesy; the user's code runs on
            pass
        return local_tracer

    def run(*args: Any, **kwargs: Any) -> Any:
        if sys.gettrace() is not None or sys.getprofile() is not None:
            # a debugger, coverage or a profiler is running: keep it, name values t1, t2...
            return fun(*args, **kwargs)
        sys.settrace(tracer)
        try:
            return fun(*args, **kwargs)
        finally:
            sys.settrace(None)

    return run, seen


def _is_object(v: Any) -> bool:
    """An instance of a user's class (a layer, a model), not a module, class or function."""
    import types

    plain = (
        type,
        types.ModuleType,
        types.FunctionType,
        types.MethodType,
        types.BuiltinFunctionType,
    )
    return (
        isinstance(getattr(v, "__dict__", None), dict)
        and not isinstance(v, plain + (Tensor, numpy.ndarray))
        and not callable(getattr(v, "__code__", None))
    )


def _contents(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The arrays a local list, tuple or dict holds, named by how the code reaches them
    (``hs[3]`` of a list of hidden states, ``model['W1']``, ``cache[0]``), one level deep and
    only for small containers; their own names come first where they have one."""
    out: list[tuple[str, Any]] = []
    for name, value in items:
        if name.startswith("_"):
            continue
        if isinstance(value, (list, tuple)) and len(value) <= _CONTAINED:
            pairs: list[tuple[Any, Any]] = list(enumerate(value))
        elif isinstance(value, dict) and len(value) <= _CONTAINED:
            pairs = [(k, v) for k, v in value.items() if isinstance(k, (str, int))]
        else:
            continue
        out += [(f"{name}[{k!r}]", v) for k, v in pairs if _is_array(v)]
    return out


_CONTAINED = 256  # larger containers are data, not the values of a model


def record(
    fun: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    wrt: Any = None,
    backward: bool = True,
    static_argnums: tuple[int, ...] = (),
    allow_frozen: bool = False,
) -> Recording:
    """Run ``fun(*args, **kwargs)`` once on tensors, recording forward and backward passes.

    ``wrt`` selects the differentiated arguments by parameter name or position (default: every
    floating-point array argument).  Python numbers and ``static_argnums`` stay constants, except
    Python floats named by ``wrt`` or, with no ``wrt``, when no argument holds a floating-point
    array (a function of numbers alone is differentiated in them, as ``grad`` does).
    With ``allow_frozen`` a traced value the code copies into a plain array is allowed and
    listed in ``Recording.frozen`` (the caller checks that the result does not depend on it).
    """
    kwargs = kwargs or {}
    params = _param_names(fun, len(args))
    wanted = _wanted(wrt, params)
    floats_too = (
        backward
        and not static_argnums
        and (wanted is not None or not any(_holds_float_array(a) for a in args))
    )
    inputs: list[Tensor] = []
    input_names: list[str] = []
    input_arg: list[int] = []
    wrt_idx: list[int] = []
    treedefs: list[Any] = []
    static: dict[int, Any] = {}
    call_args: list[Any] = []
    for i, a in enumerate(args):
        leaves, td = flatten(a)
        if floats_too and isinstance(a, float) and (wanted is None or i in wanted):
            leaves = [numpy.float64(a)]
        if i in static_argnums or not leaves or not all(_is_array(v) for v in leaves):
            static[i] = a
            treedefs.append(None)
            call_args.append(a)
            continue
        treedefs.append(td)
        traced = []
        for v, path in zip(leaves, leaf_paths(a)):
            data = numpy.asarray(v._data if isinstance(v, Tensor) else v)
            differentiate = backward and data.dtype.kind in "fc" and (wanted is None or i in wanted)
            t = _leaf(data, differentiate)
            if differentiate:
                wrt_idx.append(len(inputs))
            inputs.append(t)
            input_names.append(_leaf_name(params[i], path))
            input_arg.append(i)
            traced.append(t)
        call_args.append(unflatten(td, traced))
    if wanted is not None:
        missing = wanted - {input_arg[j] for j in wrt_idx}
        if missing:
            raise TypeError(
                f"wrt names {sorted(params[m] for m in missing)}, which are not "
                "floating-point array arguments of the function"
            )
    names: dict[Node, str] = {t: n for t, n in zip(inputs, input_names)}
    run, seen = _capture_locals(fun)
    since = min((t._seq for t in inputs), default=0) or next(_counter)
    inputs_end = max((t._seq for t in inputs), default=since) + 1
    branches_before = _state.branches
    frozen: list[str] = []
    previous_frozen = _state.frozen
    with tracing(since, inputs_end), enable_grad():
        _state.frozen = frozen if allow_frozen else None
        try:
            output = run(*call_args, **kwargs)
        finally:
            _state.frozen = previous_frozen
        restore_reads(output)
        branches = _state.branches - branches_before
        _name_locals(seen, names, _state.versions or {}, output)
        _name_explicit(output, names)
        steps: list[Step] = []
        grads: list[Any] = []
        summed = False
        if backward and wrt_idx:
            if not isinstance(output, Tensor) and frozen:
                raise TracerBoolError(
                    f"{getattr(fun, '__name__', 'the function')} turned a traced value into a "
                    f"plain NumPy array ({frozen[0]}) on the way to its result, which would "
                    "freeze today's values: use a NumPy function rather than an ndarray method "
                    "of a plain array (numpy.dot(X, W) or X @ W, not X.dot(W)), or build arrays "
                    "from tensors (numpy.stack([...]) instead of writing them into "
                    "numpy.zeros(...))"
                )
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"{getattr(fun, '__name__', 'the function')} must return one "
                    "array to be differentiated; it returned "
                    f"{type(output).__name__}"
                )
            root = output
            if output._data.size != 1:
                root, summed = output.sum(), True
            seed = _leaf(numpy.ones(root._data.shape, dtype=root._data.dtype), False)
            targets = [inputs[j] for j in wrt_idx]
            found = backward_pass(root, seed, targets, create_graph=True, log=steps)
            grads = [found.get(t) for t in targets]
    return Recording(
        getattr(fun, "__name__", "function"),
        params,
        treedefs,
        static,
        inputs,
        input_names,
        input_arg,
        wrt_idx,
        output,
        names,
        steps,
        grads,
        summed,
        branches,
        {x: n for x, n in seen.constants.items() if x not in seen.ambiguous},
        seen.arrays,
        frozen,
    )


def _wanted(wrt: Any, params: list[str]) -> set[int] | None:
    if wrt is None:
        return None
    items = [wrt] if isinstance(wrt, (str, int)) else list(wrt)
    out = set()
    for w in items:
        if isinstance(w, int):
            out.add(w)
        elif w in params:
            out.add(params.index(w))
        else:
            raise TypeError(
                f"wrt={w!r} is not a parameter of the function (it has {', '.join(params)})"
            )
    return out


def _name_locals(
    seen: _Seen,
    names: dict[Node, str],
    versions: dict[int, tuple[Any, list[Any]]],
    output: Any = None,
) -> None:
    """The function's locals at return keep their own names; every other tensor a local
    variable of it or of its helpers held is named after that variable, numbered where the
    name is taken (``h_1``, ``h_2`` for the ``h`` of each step of a loop)."""
    for name, value in seen.final.items():
        if isinstance(value, Tensor) and value not in names and not name.startswith("_"):
            names[value] = name
    for name, obj in seen.objects.items():  # dense1.output, as the code reaches it
        if name == "self":  # a method's own values keep their short names (Z1, not self.Z1)
            continue
        for attr, value in list(vars(obj).items()):
            if isinstance(value, Tensor) and value not in names and not attr.startswith("_"):
                if value._prim is not None:
                    names[value] = f"{name}.{attr}"
    taken = set(names.values())
    count: dict[str, int] = {}
    bound = []
    for name, value in seen.bound:  # a value written in place: what it held before, first
        held, befores = versions.get(id(value), (None, []))
        bound += [(name, b) for b in befores if held is value] + [(name, value)]
    for name, value in bound:
        if value in names or value._prim is None:
            continue
        if name in taken:
            k = count.get(name, 0) + 1
            while f"{name}_{k}" in taken:
                k += 1
            count[name] = k
            name = f"{name}_{k}"
        names[value] = name
        taken.add(name)
    for helper, value in seen.returned:  # what a helper returned, if nothing named it
        if value in names or value._prim is None or not helper.isidentifier():
            continue
        if value is output:  # the function's own result keeps the function's name
            continue
        name, k = helper, 1
        while name in taken:
            k += 1
            name = f"{helper}_{k}"
        names[value] = name
        taken.add(name)
    for node in list(names):
        if node._name:
            names[node] = node._name


def _name_explicit(output: Any, names: dict[Node, str]) -> None:
    from chainrule.engine.graph import ancestors

    roots = [v for v in flatten(output)[0] if isinstance(v, Tensor)]
    for node in ancestors(roots):
        if node._name:
            names[node] = node._name
