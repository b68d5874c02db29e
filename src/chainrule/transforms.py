"""Function transforms: ``grad`` and ``value_and_grad``.

Each is written once for "differentiate these leaves"; :func:`_trace_call` lifts it to
``argnums`` and nested lists/tuples/dicts of arrays (pytrees).
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable

import numpy

from . import primitives as P
from .graph import backward_pass
from .pytree import flatten, leaf_paths, tree_map, unflatten
from .tensor import Tensor, _apply, _check_float, _leaf, _state, enable_grad

__all__ = ["grad", "value_and_grad"]


def _argnums(argnums: int | tuple[int, ...] | list[int], nargs: int, fname: str
             ) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        try:
            operator.index(n)
        except TypeError:
            raise TypeError(f"{fname}: argnums must be an int or a tuple of ints, "
                            f"got {argnums!r}") from None
        if not -nargs <= n < nargs:
            raise ValueError(f"{fname}: argnums={argnums!r} but the function was called with "
                             f"{nargs} positional argument(s)")
    return tuple(n % nargs for n in nums)


def _constant(x: Any) -> Any:
    """Arrays among the non-differentiated arguments reach the function as tensors."""
    if isinstance(x, (numpy.ndarray, numpy.generic)) and not isinstance(x, numpy.bool_):
        return _leaf(x, False)
    return x


def _variable(x: Any, fname: str, where: str) -> tuple[Tensor, bool]:
    """A differentiated leaf, and whether it continues an outer recording (``grad(grad)``)."""
    if isinstance(x, Tensor):
        if (x.requires_grad and _state.enabled) or _state.tracing:
            # Continue the outer recording (grad of grad, or grad inside jit/explain).
            v = _apply(P.identity, (x,), {})
            v.requires_grad = True
            return v, True
        _check_float(numpy.asarray(x._data), f"{fname}: argument {where}")
        return _leaf(x._data, True), False
    if isinstance(x, (bool, int, numpy.integer, numpy.bool_)) or (
            isinstance(x, numpy.ndarray) and x.dtype.kind in "iub"):
        raise TypeError(f"{fname}: argument {where} is an integer ({_kind(x)}); gradients need "
                        "floating-point inputs: pass float values (3.0, not 3; "
                        "numpy.asarray(x, dtype=float))")
    try:
        arr = numpy.asarray(x)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{fname}: argument {where} is not an array ({e})") from None
    _check_float(arr, f"{fname}: argument {where}")
    return _leaf(arr, True), False


def _kind(x: Any) -> str:
    return f"dtype {x.dtype}" if hasattr(x, "dtype") else type(x).__name__


def _trace_call(fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                nums: tuple[int, ...], fname: str
                ) -> tuple[Any, list[list[Tensor]], list[Any], bool]:
    """Call ``fun`` with the ``nums`` arguments made into variables (pytrees flattened)."""
    new_args = [tree_map(_constant, a) for a in args]
    variables: list[list[Tensor]] = []
    treedefs = []
    nested = False
    names = _param_names(fun, len(args))
    for i in nums:
        leaves, td = flatten(args[i])
        paths = leaf_paths(args[i])
        vs = []
        for leaf, path in zip(leaves, paths):
            v, outer = _variable(leaf, fname, f"{names[i]}{path}")
            nested = nested or outer
            vs.append(v)
        variables.append(vs)
        treedefs.append(td)
        new_args[i] = unflatten(td, vs)
    return fun(*new_args, **kwargs), variables, treedefs, nested


def _param_names(fun: Callable[..., Any], n: int) -> list[str]:
    try:
        import inspect
        params = [p.name for p in inspect.signature(fun).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"#{i}" for i in range(n)]


def _owned(g: Any, seen: set[int]) -> Any:
    """A writable array of its own (gradients may alias each other or be broadcast views)."""
    if type(g) is not numpy.ndarray or g.base is not None or not g.flags.writeable \
            or id(g) in seen:
        g = numpy.array(g)
    seen.add(id(g))
    return g


def _plain(x: Any) -> Any:
    return numpy.asarray(x._data) if isinstance(x, Tensor) else x


def value_and_grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
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
    fname = "value_and_grad"

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), fname)
        with enable_grad():
            result, variables, treedefs, nested = _trace_call(fun, args, kwargs, nums, fname)
            out, aux = _split_aux(result, has_aux, fname)
            grads = _gradients(out, [v for vs in variables for v in vs], nested, fname)
        it = iter(grads)
        per_arg = [unflatten(td, [next(it) for _ in vs]) for td, vs in zip(treedefs, variables)]
        structured = per_arg[0] if isinstance(argnums, int) else tuple(per_arg)
        value = out if nested else _plain(out)
        if has_aux:
            return (value, aux if nested else tree_map(_plain, aux)), structured
        return value, structured

    return wrapped


def _split_aux(result: Any, has_aux: bool, fname: str) -> tuple[Any, Any]:
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"{fname}: has_aux=True needs the function to return a pair "
                        "(scalar, aux)")
    return result[0], result[1]


def _gradients(out: Any, targets: list[Tensor], nested: bool, fname: str) -> list[Any]:
    size = out._data.size if isinstance(out, Tensor) else numpy.size(out)
    if size != 1:
        raise TypeError(f"{fname}: the function must return a scalar, got an output of shape "
                        f"{numpy.shape(_plain(out))}; reduce it (sum, mean) or use a Jacobian")
    found: dict[Any, Any] = {}
    if isinstance(out, Tensor) and out.requires_grad:
        data = out._data
        seed: Any = numpy.ones(data.shape, dtype=data.dtype)
        found = backward_pass(out, _leaf(seed, False) if nested else seed, targets,
                              create_graph=nested)
    seen: set[int] = set()
    grads = []
    for t in targets:
        g = found.get(t)
        if g is None:
            g = numpy.zeros_like(t._data)
        grads.append(g if nested else _owned(g, seen))
    return grads


def grad(fun: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
         has_aux: bool = False) -> Callable[..., Any]:
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
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped
