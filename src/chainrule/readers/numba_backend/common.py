"""What the parts of the Numba backend share: its errors, which ufuncs Numba has, and small
helpers on values and their shapes.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.program.ir import CONST, Value
from chainrule.program.notation import ATOM, COMPARE, PRODUCT, SUM, Literals

# Constants with at most this many elements are written into the module (Numba freezes them
# into the machine code); larger ones are passed as arguments.
INLINE_CONST_LIMIT = 256


class ShapeMismatch(Exception):
    """Raised by a compiled kernel called with shapes other than those it was written for
    (``jit`` then looks up, or traces, the right one)."""


class Unsupported(Exception):
    """An operation the Numba backend cannot express (``op``: the primitive's name)."""

    def __init__(self, op: str, reason: str) -> None:
        super().__init__(f"{op}: {reason}")
        self.op = op
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Which NumPy ufuncs Numba implements (numba docs, "Supported NumPy features": ufuncs)
# ---------------------------------------------------------------------------------------------

NUMBA_UFUNCS = frozenset(
    """
add subtract multiply divide true_divide logaddexp logaddexp2 floor_divide negative positive
power float_power remainder mod fmod absolute fabs rint sign conjugate exp exp2 log log2 log10
expm1 log1p sqrt square cbrt reciprocal sin cos tan arcsin arccos arctan arctan2 hypot sinh cosh
tanh arcsinh arccosh arctanh deg2rad rad2deg degrees radians greater greater_equal less
less_equal not_equal equal logical_and logical_or logical_xor logical_not maximum minimum fmax
fmin isfinite isinf isnan signbit copysign nextafter ldexp floor ceil trunc spacing invert
bitwise_and bitwise_or bitwise_xor left_shift right_shift
""".split()
)

_INFIX = {
    P.add: ("+", SUM),
    P.subtract: ("-", SUM),
    P.multiply: ("*", PRODUCT),
    P.divide: ("/", PRODUCT),
    P.remainder: ("%", PRODUCT),
}
for _uf, _op in (
    (numpy.greater, ">"),
    (numpy.greater_equal, ">="),
    (numpy.less, "<"),
    (numpy.less_equal, "<="),
    (numpy.equal, "=="),
    (numpy.not_equal, "!="),
):
    _INFIX[P.NONDIFF_UFUNCS[_uf]] = (_op, COMPARE)
_INFIX[P.NONDIFF_UFUNCS[numpy.floor_divide]] = ("//", PRODUCT)

_OK_KINDS = "biuf"


def _dt(d: Any) -> str:
    return f"numpy.{numpy.dtype(d).name}"


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, numpy.integer)):
        axis = (int(axis),)
    return tuple(sorted({int(a) % ndim if ndim else 0 for a in axis}))


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(i, (int, numpy.integer, slice))
        and not isinstance(i, bool)
        or i is None
        or i is Ellipsis
        for i in items
    )


class _Lits(Literals):
    """Constants for Numba: 0-d values as typed scalars, arrays hoisted (never inline)."""

    def array(self, a: numpy.ndarray) -> str:
        if a.ndim == 0:
            if a.dtype == numpy.float64:
                return super().array(a)
            if a.dtype in (numpy.int64, numpy.bool_):
                return repr(a.item())
            if a.dtype.kind not in _OK_KINDS:
                raise Unsupported("constant", f"dtype {a.dtype} is not supported by Numba")
            text = super().__call__(a.item())
            return f"numpy.{a.dtype.name}({text})"
        assert self.hoist is not None
        return self.hoist(a)


class _Expr:
    """A text standing for an array that is not a program value (a sub-expression)."""

    def __init__(
        self, text: str, shape: tuple[int, ...], dtype: Any, prec: int = 0, layout: str = "C"
    ) -> None:
        self.text_ = text
        self.shape = shape
        self.dtype = numpy.dtype(dtype)
        self.prec = ATOM if text.isidentifier() else prec
        self.layout = layout

    def __repr__(self) -> str:
        return f"<expr {self.text_} {self.shape}>"


def _need_scipy(op: str) -> None:
    """Numba's numpy.dot calls SciPy's BLAS (scipy.linalg.cython_blas)."""
    if importlib.util.find_spec("scipy") is None:
        raise Unsupported(op, "Numba's numpy.dot needs SciPy's BLAS: pip install scipy")


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, (Value, _Expr)) else numpy.shape(x)


def _dtype(x: Any) -> numpy.dtype[Any]:
    return numpy.dtype(x.dtype) if isinstance(x, (Value, _Expr)) else numpy.asarray(x).dtype


def _const(x: Any) -> Any:
    """The value of a constant argument, or raise."""
    if isinstance(x, Value):
        if x.op == CONST:
            return x.const
        raise Unsupported("index", "an index array computed inside the function")
    return x
