"""Function transforms: ``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``jacobian``,
``hessian`` and ``hvp``.

Each is written once for "differentiate these leaves"; :func:`_trace_call` lifts it to
``argnums`` and nested lists/tuples/dicts of arrays (pytrees).
"""

from __future__ import annotations

import functools
import inspect
import operator
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy

from . import primitives as P
from . import tensor as _tensor
from .graph import backward_pass
from .pytree import flatten, leaf_paths, tree_map, unflatten
from .tensor import (
    Tensor,
    _apply,
    _check_float,
    _complex_output,
    _foreign,
    _leaf,
    _ones,
    _refuse_subclass,
    _state,
    enable_grad,
)

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian", "hvp"]


def _argnums(argnums: int | tuple[int, ...] | list[int], nargs: int, fname: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        try:
            operator.index(n)
        except TypeError:
            raise TypeError(
                f"{fname}: argnums must be an int or a tuple of ints, got {argnums!r}"
            ) from None
        if not -nargs <= n < nargs:
            raise ValueError(
                f"{fname}: argnums={argnums!r} but the function was called with "
                f"{nargs} positional argument(s)"
            )
    return tuple(n % nargs for n in nums)


def _constant(x: Any) -> Any:
    """Arrays among the non-differentiated arguments reach the function as tensors."""
    if isinstance(x, (numpy.ndarray, numpy.generic)) and not isinstance(x, numpy.bool_):
        return _leaf(x, False)
    if _foreign(x):
        return _leaf(x, False)
    return x


def _variable(x: Any, fname: str, where: Callable[[], str]) -> tuple[Tensor, bool]:
    """A differentiated leaf, and whether it continues an outer recording (``grad(grad)``)."""
    if type(x) is numpy.ndarray and x.dtype.kind == "f":  # the common case, first
        return _leaf(x, True), False
    _refuse_subclass(x, lambda: f"{fname}: argument {where()}")  # (named only to refuse)
    if isinstance(x, Tensor):
        if (x.requires_grad and _state.enabled and _state.depth) or _state.tracing:
            # Continue the outer recording (grad of grad, or grad inside jit/explain).
            v = _apply(P.identity, (x,), {})
            v.requires_grad = True
            return v, True
        _check_float(numpy.asarray(x._data), lambda: f"{fname}: argument {where()}")
        return _leaf(x._data, True), False
    if _foreign(x):  # another library's array (CuPy, Dask): kept as it is, on its device
        _check_float(x, lambda: f"{fname}: argument {where()}")
        return _leaf(x, True), False
    if isinstance(x, (bool, int, numpy.integer, numpy.bool_)) or (
        isinstance(x, numpy.ndarray) and x.dtype.kind in "iub"
    ):
        raise TypeError(
            f"{fname}: argument {where()} is an integer ({_kind(x)}); gradients "
            "need floating-point inputs: pass float values (3.0, not 3; "
            "numpy.asarray(x, dtype=float))"
        )
    try:
        arr = numpy.asarray(x)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{fname}: argument {where()} is not an array ({e})") from None
    _check_float(arr, lambda: f"{fname}: argument {where()}")
    return _leaf(arr, True), False


def _kind(x: Any) -> str:
    return f"dtype {x.dtype}" if hasattr(x, "dtype") else type(x).__name__


def _trace_call(
    fun: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    nums: tuple[int, ...],
    fname: str,
    consts: tuple[int, ...] | list[int] | None = None,
) -> tuple[Any, list[list[Tensor]], list[Any], bool]:
    """Call ``fun`` with the ``nums`` arguments made into variables (pytrees flattened);
    ``consts``: the other arguments' positions, where the caller knows them."""
    new_args = list(args)
    if consts is None:
        consts = [i for i in range(len(args)) if i not in nums]
    for i in consts:
        a = args[i]
        new_args[i] = _leaf(a, False) if type(a) is numpy.ndarray else tree_map(_constant, a)
    variables: list[list[Tensor]] = []
    treedefs: list[Any] = []
    # Inside another transform's function (or a trace), the gradient must stay recorded: the
    # outer level may be differentiating a value this function receives as a constant argument
    # or closes over (grad(lambda x: grad(lambda y: x * y)(2.0))), and a plain array would cut
    # it off. Each level still differentiates only its own variables (explicit targets).
    nested = _state.depth > 0 or (_tensor._unusual > 0 and _state.tracing)
    for i in nums:
        a = args[i]
        if type(a) is numpy.ndarray and a.dtype.kind == "f":  # the common case, first
            v = _leaf(a, True)
            variables.append([v])
            treedefs.append(None)
            new_args[i] = v
            continue
        if type(a) is numpy.ndarray:
            leaves, td, paths = [a], None, [""]
        else:
            leaves, td = flatten(a)
            paths = leaf_paths(a)
        vs = []
        for leaf, path in zip(leaves, paths):
            v, outer = _variable(leaf, fname, functools.partial(_where, fun, len(args), i, path))
            nested = nested or outer
            vs.append(v)
        variables.append(vs)
        treedefs.append(td)
        new_args[i] = unflatten(td, vs)
    _state.depth += 1
    try:
        return fun(*new_args, **kwargs), variables, treedefs, nested
    finally:
        _state.depth -= 1


def _where(fun: Callable[..., Any], nargs: int, i: int, path: str) -> str:
    """How an error names argument ``i`` (its parameter name) and the leaf ``path`` in it."""
    return f"{_param_names(fun, nargs)[i]}{path}"


def _param_names(fun: Callable[..., Any], n: int) -> list[str]:
    """The names of ``fun``'s first ``n`` positional parameters (``arg2`` where it has none)."""
    try:
        params = [
            p.name
            for p in inspect.signature(fun).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"arg{i}" for i in range(n)]


def _plain(x: Any) -> Any:
    if not isinstance(x, Tensor):
        return x
    return x._data if _foreign(x._data) else numpy.asarray(x._data)


def value_and_grad(
    fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """Return a function computing ``fun``'s value and its gradient with respect to ``argnums``.

    ``fun`` takes arrays, floats or nested lists/tuples/dicts of them and returns a scalar
    (or ``(scalar, aux)`` with ``has_aux``).  Every array argument reaches ``fun`` as a
    :class:`chainrule.Tensor`, so plain NumPy code such as ``X.dot(W)`` is recorded.  Gradients
    come back as NumPy arrays in the structure of the differentiated arguments; with a tuple
    ``argnums``, as a tuple of them.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> f = lambda w, x: ((x @ w) ** 2).sum()
    >>> value, dw = cr.value_and_grad(f)(numpy.array([1.0, 2.0]), numpy.array([[1.0, 1.0]]))
    >>> float(value), dw
    (9.0, array([6., 6.]))
    """
    return _value_and_grad(fun, argnums, has_aux, "value_and_grad")


def _value_and_grad(
    fun: Callable[..., Any], argnums: int | tuple[int, ...], has_aux: bool, fname: str
) -> Callable[..., Any]:
    # for each number of arguments seen: the differentiated positions and the others
    known: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    one = isinstance(argnums, int)

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        seen = known.get(len(args))
        if seen is None:
            nums = _argnums(argnums, len(args), fname)
            seen = known[len(args)] = (nums, tuple(i for i in range(len(args)) if i not in nums))
        nums, consts = seen
        if not (kwargs or has_aux or _tensor._unusual or _state.depth):
            fast = _plain_call(fun, args, nums, consts, fname)
            if fast is not None:
                return fast[0], fast[1][0] if one else tuple(fast[1])
        # enable_grad(), without a context manager object per call (and without reading the
        # thread's switches where no thread has any off)
        enabled = _tensor._unusual == 0 or _state.enabled
        if not enabled:
            _state.enabled = True
        dropped = _state.dropped
        try:
            result, variables, treedefs, nested = _trace_call(
                fun, args, kwargs, nums, fname, consts
            )
            out, aux = _split_aux(result, has_aux, fname)
            flat = [v for vs in variables for v in vs]
            grads = _gradients(out, flat, nested, fname, _state.dropped != dropped)
        finally:
            if not enabled:
                _state.enabled = enabled
        if all(td is None for td in treedefs):  # a single array (leaf) per argument
            per_arg = grads
        else:
            it = iter(grads)
            per_arg = [unflatten(td, [next(it) for _ in vs]) for td, vs in zip(treedefs, variables)]
        structured = per_arg[0] if one else tuple(per_arg)
        value = out if nested else _plain(out)
        if has_aux:
            return (value, aux if nested else tree_map(_plain, aux)), structured
        return value, structured

    return wrapped


def _plain_call(
    fun: Callable[..., Any],
    args: tuple[Any, ...],
    nums: tuple[int, ...],
    consts: tuple[int, ...],
    fname: str,
) -> tuple[Any, list[Any]] | None:
    """``value_and_grad``'s commonest call, without the general path's bookkeeping: a float
    array for each differentiated argument, no keyword arguments, no aux, outside any other
    transform or trace and with recording on in every thread (``_unusual`` is 0). Returns
    ``(value, gradients)``, or None, having called nothing, for any other call."""
    new_args = list(args)
    ndarray = numpy.ndarray
    targets = []
    for i in nums:
        a = args[i]
        if type(a) is not ndarray or a.dtype.kind != "f":
            return None
        new_args[i] = v = _leaf(a, True)
        targets.append(v)
    for i in consts:
        a = args[i]
        new_args[i] = _leaf(a, False) if type(a) is ndarray else tree_map(_constant, a)
    dropped = _state.dropped
    _state.depth = 1
    try:
        out = fun(*new_args)
    finally:
        _state.depth = 0
    if type(out) is Tensor and out.requires_grad:
        data = out._data
        if type(data) is numpy.ndarray or isinstance(data, numpy.generic):
            if data.size == 1 and data.dtype.kind != "c":  # (else _gradients says what is wrong)
                if _tensor._unusual:
                    _tensor.restore_before_walk(out)
                found = backward_pass(out, _ones(data), targets)  # (ones: cached, read-only)
                return numpy.asarray(data), _collected(found, targets)
    # anything else (a plain result: _gradients says whether a conversion dropped it)
    return _plain(out), _gradients(out, targets, False, fname, _state.dropped != dropped)


def _split_aux(result: Any, has_aux: bool, fname: str) -> tuple[Any, Any]:
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"{fname}: has_aux=True needs the function to return a pair (scalar, aux)")
    return result[0], result[1]


def _outside_chainrule() -> int:
    """The ``stacklevel`` of a warning that points at the first frame outside chainrule."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_HERE):
        level, frame = level + 1, frame.f_back
    return level


_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gradients(
    out: Any, targets: list[Tensor], nested: bool, fname: str, dropped: bool = True
) -> list[Any]:
    """The gradients of scalar ``out`` for ``targets``. ``dropped``: whether the function
    converted a tensor that requires grad to a Python value (float(), item(), ...)."""
    size = out._data.size if isinstance(out, Tensor) else numpy.size(out)
    if size != 1:
        raise TypeError(
            f"{fname}: the function must return a scalar, got an output of shape "
            f"{numpy.shape(_plain(out))}; reduce it (sum, mean) or use a Jacobian"
        )
    found: dict[Any, Any] = {}
    if fname != "vjp" and (
        out._data.dtype.kind == "c" if isinstance(out, Tensor) else numpy.iscomplexobj(out)
    ):
        raise TypeError(_complex_output(fname, _dtype(out)))
    if not isinstance(out, Tensor) and dropped and any(t._used for t in targets):
        # the arguments went into recorded operations and a tensor became a Python value on
        # the way, yet the result is plain: zero would be a wrong gradient. (A plain result of
        # operations without a gradient, sign(x) or floor(x), is a true zero: warned below.)
        read = [t for t in targets if t._used]
        raise TypeError(
            f"{fname}: the function computed with its differentiated argument(s) "
            f"({len(read)} of {len(targets)} arrays) but returned a plain "
            f"{type(out).__name__}, so the gradient was dropped on the way: float(t), "
            "t.item() or t.numpy() of a result, a tensor written into a plain NumPy array "
            "(make that buffer a tensor: chainrule.tensor(numpy.zeros(n))), or "
            "numpy.array([...]) of tensors "
            "(numpy.stack). Return the tensor itself"
        )
    if not isinstance(out, Tensor) and not nested:
        warnings.warn(
            f"{fname}: the function returned a plain {type(out).__name__}, not a tensor computed "
            "from the differentiated arguments, so every gradient is zero. If it depends on them, "
            "a conversion dropped the gradient: float(t) or t.item() on the way, or a tensor "
            "written into a plain NumPy array (make that buffer a tensor)",
            stacklevel=_outside_chainrule(),
        )
    if isinstance(out, Tensor) and out.requires_grad:
        _tensor.restore_before_walk(out)
        data = out._data
        seed: Any = numpy.ones_like(data) if nested else _ones(data)  # cached, read-only
        found = backward_pass(
            out, _leaf(seed, False) if nested else seed, targets, create_graph=nested, prune=nested
        )
    if nested:
        return [found.get(t) if t in found else numpy.zeros_like(t._data) for t in targets]
    return _collected(found, targets)


def _collected(found: dict[Any, Any], targets: list[Tensor]) -> list[Any]:
    """Each target's gradient from ``found`` (arrays of their own: see
    :func:`~chainrule.engine.graph.backward_pass`), zeros where none was found."""
    if len(found) == len(targets):  # every target reached (the common case)
        try:
            return [found[t] for t in targets]
        except KeyError:  # (a leaf that is no target was reached: a tensor `fun` closes over)
            pass
    grads = []
    for t in targets:
        g = found.get(t)
        if g is None:
            d = t._data  # a new array of zeros: nobody else holds it
            g = numpy.zeros(d.shape, d.dtype) if type(d) is numpy.ndarray else numpy.zeros_like(d)
        grads.append(g)
    return grads


def grad(
    fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable[..., Any]:
    """Return a function computing the gradient of scalar-valued ``fun``.

    Same arguments as :func:`value_and_grad`; returns only the gradient (and ``aux`` with
    ``has_aux``, as ``(gradient, aux)``).  Nest it for higher derivatives.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> d2 = cr.grad(cr.grad(lambda x: x ** 3))
    >>> float(d2(2.0))
    12.0
    """
    vg = _value_and_grad(fun, argnums, has_aux, "grad")

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped


# ---------------------------------------------------------------------------------------------
# vjp, jvp, Jacobians, Hessians
# ---------------------------------------------------------------------------------------------


def _inner(out: Any, ct: Any) -> Any:
    """sum(out * ct) over every leaf of two matching pytrees (a recorded scalar)."""
    total: Any = 0.0
    for o, c in zip(flatten(out)[0], flatten(ct)[0]):
        total = total + (o * c).sum()
    return total


def vjp(fun: Callable[..., Any], *primals: Any) -> tuple[Any, Callable[..., Any]]:
    """Return ``fun(*primals)`` and a function mapping an output cotangent to input cotangents.

    ``vjp_fun(ct)`` returns a tuple with one gradient per primal: ``ct`` pulled back through the
    Jacobian (``ct @ J``).  It may be called many times.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> out, pull = cr.vjp(lambda x: x ** 2, numpy.array([1.0, 3.0]))
    >>> pull(numpy.array([1.0, 10.0]))
    (array([ 2., 60.]),)
    """
    nums = tuple(range(len(primals)))
    with enable_grad():
        out, variables, treedefs, nested = _trace_call(fun, primals, {}, nums, "vjp")
    flat_vars = [v for vs in variables for v in vs]

    def pullback(ct: Any) -> tuple[Any, ...]:
        with enable_grad():
            cts = [
                c if isinstance(c, Tensor) else _leaf(c if _foreign(c) else numpy.asarray(c), False)
                for c in flatten(ct)[0]
            ]
            for o, c in zip(flatten(out)[0], cts):
                if numpy.shape(_plain(o)) != numpy.shape(c._data):
                    raise ValueError(
                        f"vjp: the cotangent has shape {numpy.shape(c._data)} but "
                        f"the output has shape {numpy.shape(_plain(o))}"
                    )
            scalar = _inner(out, unflatten(flatten(ct)[1], cts))
            inner_nested = nested or any(c.requires_grad for c in cts)
            grads = (
                _gradients(scalar, flat_vars, inner_nested, "vjp")
                if isinstance(scalar, Tensor)
                else [numpy.zeros_like(v._data) for v in flat_vars]
            )
        it = iter(grads)
        return tuple(unflatten(td, [next(it) for _ in vs]) for td, vs in zip(treedefs, variables))

    return (out if nested else tree_map(_plain, out)), pullback


def jvp(
    fun: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...]
) -> tuple[Any, Any]:
    """Forward mode: ``fun(*primals)`` and its directional derivative along ``tangents``.

    Derived from the reverse rules (no second rule per operation): ``u -> vjp(u)`` is linear in
    the cotangent ``u``, and the gradient of ``<vjp(u), t>`` with respect to ``u`` is ``J t``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> cr.jvp(numpy.sin, (numpy.array([0.0]),), (numpy.array([2.0]),))
    (array([0.]), array([2.]))
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    nums = tuple(range(len(primals)))
    with enable_grad():
        out, variables, _, nested = _trace_call(fun, primals, {}, nums, "jvp")
        flat_vars = [v for vs in variables for v in vs]
        out_leaves, out_tree = flatten(out)
        us = [_leaf(numpy.zeros_like(_plain(o), dtype=_dtype(o)), True) for o in out_leaves]
        scalar = _inner(out, unflatten(out_tree, us))
        if isinstance(scalar, Tensor) and scalar.requires_grad:
            _tensor.restore_before_walk(scalar)
            data = scalar._data
            found = backward_pass(
                scalar,
                _leaf(numpy.ones_like(data), False),
                flat_vars,
                create_graph=True,
            )
        else:
            found = {}
        t_leaves = [t for tt in tangents for t in flatten(tt)[0]]
        pairing: Any = 0.0
        for v, t in zip(flat_vars, t_leaves):
            g = found.get(v)
            if g is not None:
                pairing = pairing + (g * t).sum()
        if isinstance(pairing, Tensor) and pairing.requires_grad:
            data = pairing._data
            tangent = backward_pass(pairing, numpy.ones_like(data), us, create_graph=nested)
        else:
            tangent = {}
    outs = [tangent.get(u) if tangent.get(u) is not None else numpy.zeros_like(u._data) for u in us]
    result = unflatten(out_tree, [o if nested else _plain(o) for o in outs])
    return (out if nested else tree_map(_plain, out)), result


def _dtype(o: Any) -> Any:
    p = _plain(o)
    return p.dtype if _foreign(p) else numpy.asarray(p).dtype


def jacobian(
    fun: Callable[..., Any],
    argnums: int | tuple[int, ...] = 0,
    mode: str = "auto",
    holomorphic: bool = False,
) -> Callable[..., Any]:
    """Return a function computing the Jacobian of ``fun`` (shape ``out.shape + in.shape``).

    ``mode`` is ``"reverse"`` (one vjp per output element), ``"forward"`` (one jvp per input
    element), or ``"auto"``: reverse when the output has no more elements than the input.

    Complex values (as JAX): a complex output of real inputs takes forward mode (the columns
    ``d out / dx``); complex inputs with a real output take reverse mode (rows in ``grad``'s
    convention, ``df/dx - i df/dy``); complex inputs and outputs need ``holomorphic=True``,
    which promises that ``fun`` is holomorphic and gives its complex derivative ``f'(z)``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> cr.jacobian(lambda x: x ** 2)(numpy.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    if mode not in ("auto", "reverse", "forward"):
        raise ValueError(f"jacobian: mode must be 'auto', 'reverse' or 'forward', got {mode!r}")

    @functools.wraps(fun)
    def wrapped(*args: Any) -> Any:
        nums = _argnums(argnums, len(args), "jacobian")
        xs = [numpy.asarray(_plain(args[i])) for i in nums]
        m = mode
        probe = flatten(fun(*args))[0]
        if m == "auto":
            out_size = sum(numpy.size(_plain(o)) for o in probe)
            m = "reverse" if out_size <= sum(x.size for x in xs) else "forward"
        if not holomorphic:
            m = _complex_mode(m, mode, any(x.dtype.kind == "c" for x in xs), probe)
        per_leaf, out_tree = (
            _jacobian_reverse(fun, args, nums)
            if m == "reverse"
            else _jacobian_forward(fun, args, nums)
        )
        # JAX's layout: the output's structure outside, one entry per argnum inside.
        pick = (lambda js: js[0]) if isinstance(argnums, int) else tuple
        return unflatten(out_tree, [pick(js) for js in per_leaf])

    return wrapped


def _complex_mode(m: str, asked: str, complex_in: bool, outs: list[Any]) -> str:
    """The mode that is defined for these dtypes (see :func:`jacobian`), or a clear error."""
    complex_out = any(numpy.iscomplexobj(_plain(o)) for o in outs)
    if not (complex_in or complex_out):
        return m
    if complex_in and complex_out:
        raise TypeError(
            "jacobian: complex inputs and a complex output: pass holomorphic=True if the "
            "function is holomorphic (then the result is f'(z)); otherwise differentiate its "
            "real and imaginary parts separately"
        )
    want = "forward" if complex_out else "reverse"
    if asked not in ("auto", want):
        raise TypeError(
            f"jacobian: mode={asked!r} is not defined for "
            f"{'real inputs and a complex output' if complex_out else 'complex inputs'}; "
            f"use mode={want!r} (or 'auto')"
        )
    return want


def _partial(
    fun: Callable[..., Any], args: tuple[Any, ...], nums: tuple[int, ...]
) -> Callable[..., Any]:
    def f(*xs: Any) -> Any:
        full = list(args)
        for i, x in zip(nums, xs):
            full[i] = x
        return fun(*full)

    return f


def _jacobian_reverse(
    fun: Callable[..., Any], args: tuple[Any, ...], nums: tuple[int, ...]
) -> tuple[list[list[Any]], Any]:
    """One vjp per output element; ``[leaf][argnum]`` Jacobians and the output's structure."""
    out, pull = vjp(_partial(fun, args, nums), *(args[i] for i in nums))
    leaves, tree = flatten(out)
    shapes = [numpy.shape(_plain(o)) for o in leaves]
    zeros = [numpy.zeros(sh, dtype=_dtype(o)) for sh, o in zip(shapes, leaves)]
    per_leaf = []
    for n, shape in enumerate(shapes):
        rows: list[list[Any]] = [[] for _ in nums]
        for k in range(int(numpy.prod(shape))):
            ct = list(zeros)
            ct[n] = zeros[n].copy()
            ct[n].flat[k] = 1
            for r, g in zip(rows, pull(unflatten(tree, ct))):
                r.append(g)
        per_leaf.append(
            [_stack(r, shape, numpy.shape(_plain(args[i]))) for r, i in zip(rows, nums)]
        )
    return per_leaf, tree


def _jacobian_forward(
    fun: Callable[..., Any], args: tuple[Any, ...], nums: tuple[int, ...]
) -> tuple[list[list[Any]], Any]:
    """One jvp per input element; ``[leaf][argnum]`` Jacobians and the output's structure."""
    f = _partial(fun, args, nums)
    primals = tuple(args[i] for i in nums)
    out_leaves, tree = flatten(f(*primals))
    out_shapes = [numpy.shape(_plain(o)) for o in out_leaves]
    per_leaf: list[list[Any]] = [[] for _ in out_leaves]
    for j, i in enumerate(nums):
        in_shape = numpy.shape(_plain(args[i]))
        cols: list[list[Any]] = [[] for _ in out_leaves]
        for k in range(int(numpy.size(_plain(args[i])))):
            tangents = [numpy.zeros(numpy.shape(_plain(p)), dtype=_dtype(p)) for p in primals]
            tangents[j].flat[k] = 1
            _, t = jvp(f, primals, tuple(tangents))
            for c, tl in zip(cols, flatten(t)[0]):
                c.append(tl)
        n_in = len(in_shape)
        for n, out_shape in enumerate(out_shapes):
            stacked = _stack(cols[n], in_shape, out_shape)
            perm = tuple(range(n_in, n_in + len(out_shape))) + tuple(range(n_in))
            per_leaf[n].append(numpy.transpose(stacked, perm))
    return per_leaf, tree


def _stack(parts: list[Any], lead: tuple[int, ...], tail: tuple[int, ...]) -> Any:
    stacked = numpy.stack(parts) if parts else numpy.zeros((0,) + tuple(tail))
    return numpy.reshape(stacked, tuple(lead) + tuple(tail))


def hessian(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """Return a function computing the Hessian of scalar ``fun`` (reverse over reverse).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> cr.hessian(lambda x: (x ** 3).sum())(numpy.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacobian(grad(fun, argnums), argnums, mode="reverse")


def hvp(fun: Callable[..., Any], primals: tuple[Any, ...], vectors: tuple[Any, ...]) -> Any:
    """The Hessian of scalar ``fun`` at ``primals`` times ``vectors``, without forming it.

    Returns one array per primal.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> cr.hvp(lambda x: (x ** 3).sum(), (numpy.array([1.0, 2.0]),), (numpy.ones(2),))
    (array([ 6., 12.]),)
    """
    primals, vectors = tuple(primals), tuple(vectors)
    nums = tuple(range(len(primals)))
    g = grad(fun, argnums=nums)
    return grad(lambda *xs: _inner(g(*xs), vectors), argnums=nums)(*primals)
