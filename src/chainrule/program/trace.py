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
from chainrule.engine.tensor import Tensor, _leaf, enable_grad, tracing
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


def _is_array(x: Any) -> bool:
    return isinstance(x, (numpy.ndarray, numpy.generic, Tensor)) and not isinstance(x, str)


def _leaf_name(param: str, path: str) -> str:
    return param + path


def _capture_locals(fun: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Wrap ``fun`` so that its local variables at return are kept (no source parsing)."""
    code = getattr(fun, "__code__", None)
    captured: dict[str, Any] = {}
    if code is None:
        return fun, captured

    def run(*args: Any, **kwargs: Any) -> Any:
        previous = sys.getprofile()
        if previous is not None:  # a profiler is running: keep it, name values t1, t2...
            return fun(*args, **kwargs)

        def profiler(frame: Any, event: str, arg: Any) -> None:
            if event == "return" and frame.f_code is code and not captured:
                captured.update(frame.f_locals)

        sys.setprofile(profiler)
        try:
            return fun(*args, **kwargs)
        finally:
            sys.setprofile(previous)

    return run, captured


def record(
    fun: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    wrt: Any = None,
    backward: bool = True,
    static_argnums: tuple[int, ...] = (),
) -> Recording:
    """Run ``fun(*args, **kwargs)`` once on tensors, recording forward and backward passes.

    ``wrt`` selects the differentiated arguments by parameter name or position (default: every
    floating-point array argument).  Python numbers and ``static_argnums`` stay constants.
    """
    kwargs = kwargs or {}
    params = _param_names(fun, len(args))
    wanted = _wanted(wrt, params)
    inputs: list[Tensor] = []
    input_names: list[str] = []
    input_arg: list[int] = []
    wrt_idx: list[int] = []
    treedefs: list[Any] = []
    static: dict[int, Any] = {}
    call_args: list[Any] = []
    for i, a in enumerate(args):
        leaves, td = flatten(a)
        if i in static_argnums or not leaves or not all(_is_array(v) for v in leaves):
            static[i] = a
            treedefs.append(None)
            call_args.append(a)
            continue
        treedefs.append(td)
        traced = []
        for v, path in zip(leaves, leaf_paths(a)):
            data = numpy.asarray(v._data if isinstance(v, Tensor) else v)
            differentiate = backward and data.dtype.kind == "f" and (wanted is None or i in wanted)
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
    run, captured = _capture_locals(fun)
    since = min((t._seq for t in inputs), default=0) or next(_counter)
    with tracing(since), enable_grad():
        output = run(*call_args, **kwargs)
        _name_locals(captured, names)
        _name_explicit(output, names)
        steps: list[Step] = []
        grads: list[Any] = []
        summed = False
        if backward and wrt_idx:
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


def _name_locals(captured: dict[str, Any], names: dict[Node, str]) -> None:
    for name, value in captured.items():
        if isinstance(value, Tensor) and value not in names and not name.startswith("_"):
            names[value] = name
    for node in list(names):
        if node._name:
            names[node] = node._name


def _name_explicit(output: Any, names: dict[Node, str]) -> None:
    from chainrule.engine.graph import ancestors

    roots = [v for v in flatten(output)[0] if isinstance(v, Tensor)]
    for node in ancestors(roots):
        if node._name:
            names[node] = node._name
