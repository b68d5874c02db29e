"""A stand-in for a device array library (CuPy's behaviour, without a GPU).

``DeviceArray`` implements NumPy's protocols (``__array_ufunc__``, ``__array_function__``, NEP 35's
``like=``) and, like CuPy, refuses to become a host array: ``numpy.asarray(d)`` raises, and mixing
it with a host ndarray in one operation raises. Python numbers and NumPy scalars mix freely, as in
CuPy. Every host conversion chainrule might do behind the user's back therefore fails loudly, and
``DeviceArray.transfers`` counts the explicit ones (``.get()``).
"""

from __future__ import annotations

from typing import Any

import numpy


class HostConversionError(TypeError):
    pass


def _unwrap(x: Any) -> Any:
    if isinstance(x, DeviceArray):
        return x._a
    # host index arrays (integers, booleans) are accepted, as CuPy accepts them in indexing;
    # host floating-point data never is
    if isinstance(x, numpy.ndarray) and x.ndim > 0 and x.dtype.kind in "fc":
        raise HostConversionError(
            "DeviceArray: an operation mixed a device array with a host numpy.ndarray of shape "
            f"{x.shape}"
        )
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, numpy.ndarray):
        return DeviceArray(x)
    if isinstance(x, numpy.generic) and x.dtype.kind in "fcbiu":
        return DeviceArray(numpy.asarray(x))  # CuPy returns 0-d device arrays, not scalars
    if isinstance(x, tuple) and type(x) is not tuple:  # named tuples (slogdet, eigh)
        return type(x)(*(_wrap(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


# NEP 35: numpy.zeros(..., like=d) and numpy.asarray(host, like=d) make device arrays.
_CREATION = {
    numpy.asarray,
    numpy.array,
    numpy.zeros,
    numpy.ones,
    numpy.empty,
    numpy.full,
    numpy.eye,
    numpy.arange,
    numpy.identity,
}


class DeviceArray:
    transfers = 0
    __array_priority__ = 100

    def __init__(self, a: Any) -> None:
        self._a = numpy.asarray(a)

    # --- the protocols -----------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise HostConversionError(
            "DeviceArray: implicit conversion to a host numpy.ndarray is not allowed; "
            "call .get() to copy to the host"
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        known = (DeviceArray, numpy.ndarray, int, float, complex, bool, numpy.generic)
        if method == "at":  # cupy.add.at (CuPy 13): in place, index in the middle
            target, index, *rest = inputs
            ufunc.at(target._a, _unwrap(index), *(_unwrap(r) for r in rest))
            return None
        if not all(isinstance(i, known) for i in inputs):
            return NotImplemented
        out = kwargs.pop("out", None)
        args = [_unwrap(i) for i in inputs]
        result = getattr(ufunc, method)(*args, **_unwrap(kwargs))
        if out is not None:
            target = out[0]
            target._a[...] = result
            return target
        return _wrap(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if not all(issubclass(t, (DeviceArray, numpy.ndarray)) for t in types):
            return NotImplemented
        if func in _CREATION:  # cupy.asarray(host) & co.: an explicit copy to the device
            return DeviceArray(
                func(*(a._a if isinstance(a, DeviceArray) else a for a in args), **kwargs)
            )
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # --- the ndarray interface chainrule and users touch -----------------------------------
    def get(self) -> numpy.ndarray:
        DeviceArray.transfers += 1
        return self._a.copy()

    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @property
    def dtype(self) -> Any:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def T(self) -> DeviceArray:
        return DeviceArray(self._a.T)

    @property
    def flags(self) -> Any:
        return self._a.flags

    @property
    def real(self) -> DeviceArray:
        return DeviceArray(self._a.real)

    @property
    def imag(self) -> DeviceArray:
        return DeviceArray(self._a.imag)

    def __len__(self) -> int:
        return len(self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    def __getitem__(self, index: Any) -> DeviceArray:
        return DeviceArray(self._a[_unwrap(index)])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_unwrap(index)] = _unwrap(value)

    def __float__(self) -> float:
        DeviceArray.transfers += 1
        return float(self._a)

    def __int__(self) -> int:  # a synchronising read of one number, as CuPy's int()
        DeviceArray.transfers += 1
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def item(self) -> Any:
        DeviceArray.transfers += 1
        return self._a.item()

    def copy(self) -> DeviceArray:
        return DeviceArray(self._a.copy())

    def astype(self, dtype: Any, copy: bool = True) -> DeviceArray:
        return DeviceArray(self._a.astype(dtype, copy=copy))

    def reshape(self, *shape: Any) -> DeviceArray:
        return DeviceArray(self._a.reshape(*shape))

    def transpose(self, *axes: Any) -> DeviceArray:
        return DeviceArray(self._a.transpose(*axes))

    def sum(self, *args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(self._a.sum(*args, **kwargs))

    def mean(self, *args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(self._a.mean(*args, **kwargs))

    def max(self, *args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(self._a.max(*args, **kwargs))

    def any(self, *args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(self._a.any(*args, **kwargs))

    def all(self, *args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(self._a.all(*args, **kwargs))

    def min(self, *args: Any, **kwargs: Any) -> DeviceArray:
        return DeviceArray(self._a.min(*args, **kwargs))

    def dot(self, other: Any) -> DeviceArray:
        return DeviceArray(self._a.dot(_unwrap(other)))

    def ravel(self) -> DeviceArray:
        return DeviceArray(self._a.ravel())


def _binary(name: str) -> Any:
    uf = getattr(numpy, name)

    def op(self: DeviceArray, other: Any) -> Any:
        return uf(self, other)

    def rop(self: DeviceArray, other: Any) -> Any:
        return uf(other, self)

    return op, rop


for _name, _uf in [
    ("add", "add"),
    ("sub", "subtract"),
    ("mul", "multiply"),
    ("truediv", "true_divide"),
    ("pow", "power"),
    ("mod", "remainder"),
    ("matmul", "matmul"),
    ("gt", "greater"),
    ("ge", "greater_equal"),
    ("lt", "less"),
    ("le", "less_equal"),
    ("eq", "equal"),
    ("ne", "not_equal"),
    ("and", "logical_and"),
    ("or", "logical_or"),
]:
    _op, _rop = _binary(_uf)
    setattr(DeviceArray, f"__{_name}__", _op)
    setattr(DeviceArray, f"__r{_name}__", _rop)
DeviceArray.__neg__ = lambda self: numpy.negative(self)  # type: ignore[attr-defined]
DeviceArray.__invert__ = lambda self: numpy.invert(self)  # type: ignore[attr-defined]
DeviceArray.__hash__ = None  # type: ignore[assignment]


def device(x: Any) -> DeviceArray:
    """Copy a host array to the (pretend) device."""
    return DeviceArray(numpy.array(x))
