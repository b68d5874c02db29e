"""Other array libraries: what chainrule does with arrays that are not NumPy's.

Arrays of any library that implements NumPy's protocols (``__array_ufunc__``,
``__array_function__``, NEP 35's ``like=``) flow through chainrule as they are: CuPy arrays stay
on their GPU, Dask arrays stay lazy and chunked. A tensor keeps its array type, the rules
allocate their constants with ``like=`` (:func:`chainrule.engine.primitives.const_like`), and
gradients come back in the input's array type. Nothing is copied to the host behind the user's
back; :func:`to_host` does it on request.
"""

from __future__ import annotations

from typing import Any

from .primitives import host_copy
from .pytree import tree_map
from .tensor import Tensor

__all__ = ["to_host"]


def _host(x: Any) -> Any:
    return host_copy(x._data if isinstance(x, Tensor) else x)


def to_host(tree: Any) -> Any:
    """Copy every array of ``tree`` (tensors, CuPy or Dask arrays, in any nesting of lists,
    tuples and dicts) to a NumPy array in host memory: CuPy's ``.get()``, Dask's ``.compute()``.
    NumPy arrays and other values come back as they are.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> cr.to_host({"w": cr.tensor([1.0, 2.0]), "n": 3})
    {'w': array([1., 2.]), 'n': 3}
    """
    return tree_map(_host, tree)
