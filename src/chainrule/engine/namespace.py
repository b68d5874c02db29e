"""``chainrule.numpy``: NumPy's namespace for code that builds arrays out of tensors.

NumPy's protocols reach a tensor handed to a NumPy function, but not one inside a Python list:
``numpy.array([t1, t2])``, ``numpy.r_[t1, t2]`` and ``numpy.mean([a, b])`` convert the list
themselves, which would drop the gradient (so chainrule raises there). Code that imports this
namespace instead (``import chainrule.numpy as np``, as one imports ``autograd.numpy`` or
``jax.numpy``) keeps those idioms. Every name is NumPy's own object or NumPy's function called
as it is; only when NumPy refuses a list that holds tensors is that list stacked into one
tensor (``numpy.stack``, recorded like any other operation) and the call made again. The plain
path costs one Python call; nothing is scanned unless NumPy raised.

``array``, ``asarray``, ``asanyarray``, ``r_`` and ``c_`` are written here; ufuncs, types,
constants and ``numpy.random`` are NumPy's objects themselves; ``linalg`` and ``fft`` are
namespaces of the same kind.

Example
-------
>>> import chainrule as cr, chainrule.numpy as np
>>> cr.grad(lambda x: np.max(np.array([x, 2 * x, 0.5])))(1.0)
array(2.)
>>> cr.grad(lambda x: np.r_[x, x ** 2].sum())(3.0)
array(7.)
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine.tensor import Tensor

__all__ = ["array", "asarray", "asanyarray", "r_", "c_", "lookup", "Namespace"]


def _holds_tensor(obj: Any) -> bool:
    if isinstance(obj, Tensor):
        return True
    return isinstance(obj, (list, tuple)) and any(_holds_tensor(o) for o in obj)


def _stacked(obj: Any) -> Any:
    """A nested list/tuple of tensors, arrays and numbers as one tensor (numpy.stack per level)."""
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (list, tuple)) and _holds_tensor(obj):
        if not obj:
            return numpy.asarray(obj)
        return numpy.stack([_stacked(o) for o in obj])
    return numpy.asarray(obj)


def _shaped(t: Any, dtype: Any, ndmin: int) -> Any:
    if dtype is not None and numpy.dtype(dtype) != t.dtype:
        t = t.astype(dtype)
    if t.ndim < ndmin:
        t = numpy.reshape(t, (1,) * (ndmin - t.ndim) + t.shape)
    return t


def array(
    object: Any, dtype: Any = None, *, copy: Any = True, order: Any = "K", subok: bool = False,
    ndmin: int = 0, like: Any = None,
) -> Any:  # fmt: skip
    """``numpy.array``, which also takes a tensor or a (nested) list holding tensors.

    Such an ``object`` becomes one tensor (stacked level by level), so the gradient flows
    to every tensor in it; anything else is ``numpy.array`` itself.

    >>> import chainrule as cr, chainrule.numpy as np
    >>> x = cr.tensor(2.0, requires_grad=True)
    >>> m = np.array([[x, 1.0], [0.0, x ** 2]])
    >>> np.linalg.det(m).backward(); x.grad                 # d(x * x**2)/dx = 3 x**2
    array(12.)
    """
    if _holds_tensor(object):
        t = _stacked(object)
        if copy and t is object:
            t = t.copy()
        return _shaped(t, dtype, ndmin)
    if like is not None:
        return numpy.array(object, dtype, copy=copy, order=order, subok=subok, ndmin=ndmin,
                           like=like)  # fmt: skip
    return numpy.array(object, dtype, copy=copy, order=order, subok=subok, ndmin=ndmin)


def asarray(a: Any, dtype: Any = None, order: Any = None, **kwargs: Any) -> Any:
    """``numpy.asarray``, which also takes a tensor (returned as it is) or a list holding tensors.

    >>> import chainrule.numpy as np
    >>> np.asarray([1, 2]).dtype
    dtype('int64')
    """
    if _holds_tensor(a):
        return _shaped(_stacked(a), dtype, 0)
    return numpy.asarray(a, dtype, order, **kwargs)


asanyarray = asarray


class _Concatenator:
    """``r_`` / ``c_``: NumPy's index tricks, also for items that are tensors."""

    def __init__(self, plain: Any, columns: bool) -> None:
        self._plain, self._columns = plain, columns

    def __getitem__(self, key: Any) -> Any:
        items = key if isinstance(key, tuple) else (key,)
        if not any(_holds_tensor(item) for item in items):
            return self._plain[key]
        if any(isinstance(item, str) for item in items):
            raise ValueError(
                f"chainrule.numpy.{'c_' if self._columns else 'r_'}: a directive string "
                "('r', 'c', '0,2', ...) together with tensors is not supported; write "
                "numpy.concatenate / numpy.stack with the axis you mean"
            )
        parts = [self._part(item) for item in items]
        return numpy.concatenate(parts, axis=-1 if self._columns else 0)

    def _part(self, item: Any) -> Any:
        if isinstance(item, slice):
            part = self._plain[item]
            return numpy.reshape(part, (-1, 1)) if self._columns else part
        part = _stacked(item) if _holds_tensor(item) else numpy.asarray(item)
        if self._columns:  # 1-D items become columns, scalars 1x1 (numpy.c_)
            return numpy.reshape(part, (-1, 1)) if part.ndim < 2 else part
        return numpy.reshape(part, (1,)) if part.ndim == 0 else part


r_ = _Concatenator(numpy.r_, columns=False)
c_ = _Concatenator(numpy.c_, columns=True)


def _lifting(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as it is, but a list argument holding tensors that NumPy refused is stacked first."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (TypeError, ValueError):
            if not any(
                isinstance(a, (list, tuple)) and _holds_tensor(a) for a in (*args, *kwargs.values())
            ):
                raise
        args = tuple(_stacked(a) if isinstance(a, (list, tuple)) else a for a in args)
        kwargs = {k: _stacked(v) if isinstance(v, (list, tuple)) else v for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    return call


_OWN = {"array": array, "asarray": asarray, "asanyarray": asanyarray, "r_": r_, "c_": c_}


class Namespace(types.ModuleType):
    """A NumPy module (``numpy``, ``numpy.linalg``, ``numpy.fft``) seen through :func:`lookup`.

    >>> import numpy, chainrule.numpy as np
    >>> np.linalg.norm is numpy.linalg.norm, np.linalg.norm.__name__
    (False, 'norm')
    """

    def __init__(self, name: str, plain: types.ModuleType) -> None:
        super().__init__(name, plain.__doc__)
        self._plain = plain

    def __getattr__(self, name: str) -> Any:
        value = lookup(self._plain, name, self.__name__)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return dir(self._plain)


_SUBMODULES = ("linalg", "fft")


def lookup(plain: types.ModuleType, name: str, where: str) -> Any:
    """The object ``chainrule.numpy`` gives for ``plain.name`` (see the module docstring).

    >>> import numpy, chainrule.engine.namespace as ns
    >>> ns.lookup(numpy, "float64", "chainrule.numpy") is numpy.float64
    True
    """
    if plain is numpy and name in _OWN:
        return _OWN[name]
    try:
        value = getattr(plain, name)
    except AttributeError:
        raise AttributeError(f"module {where!r} has no attribute {name!r}") from None
    if plain is numpy and name in _SUBMODULES:
        return Namespace(f"{where}.{name}", value)
    if callable(value) and not isinstance(value, (type, numpy.ufunc)):
        return _lifting(value)
    return value
