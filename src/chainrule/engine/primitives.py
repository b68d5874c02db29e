"""Primitives: the vocabulary of recorded operations.

A :class:`Primitive` is one NumPy operation that chainrule records: its name, the NumPy function
that computes it, and (filled in by :mod:`chainrule.engine.rules`) one vector-Jacobian rule per
input.

NumPy calls reach chainrule through ufuncs and functions; three modules own the maps behind them:

* here, ``UFUNCS`` maps a ufunc (``numpy.multiply``) to its primitive, ``UFUNC_METHODS`` a
  ufunc method (``numpy.add.reduce``) to the NumPy function it means, and ``NONDIFF_UFUNCS`` /
  ``NONDIFF_FUNCTIONS`` the operations whose results carry no gradient (comparisons, ``floor``,
  ``argmax``, ...): computed on the data and returned as plain arrays, except while tracing,
  when they are recorded so that the trace stays complete;
* :mod:`~chainrule.engine.binders`: ``FUNCTIONS`` maps a NumPy function (``numpy.sum``) to a
  *binder* with NumPy's own signature that returns ``(primitive, inputs, params)``;
* :mod:`~chainrule.engine.composites`: ``COMPOSITES`` maps a NumPy function to NumPy code that
  builds it from other primitives (``vstack`` is ``concatenate`` of ``atleast_2d``), so it needs
  no rule of its own.

Nothing here knows about tensors; ``tensor.py`` does the dispatching.
"""

from __future__ import annotations

import contextlib
import math
import operator
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy

from . import factors
from .broadcast import binary
from .contract import einsum as _contract
from .reduce import accumulate, add_reduce, max_last, window_reduce, window_route
from .scatter import add_at, take_along, take_rows

__all__ = [
    "Primitive",
    "primitive",
    "UFUNCS",
    "NONDIFF_UFUNCS",
    "NONDIFF_FUNCTIONS",
    "UFUNC_METHODS",
    "normalize_axis",
    "qualified_name",
]


# How many times any primitive's rules were set or changed (a counter in a list, so that it is
# read where it is defined): chainrule.engine.plans drops its plans when it moves.
RULE_EDITS = [0]
_RULE_SLOTS = frozenset({"vjps", "vjp_argnum", "vjp_into", "symmetric"})


class Primitive:
    """One recorded operation: a name, a NumPy implementation, and its gradient rules.

    ``vjps`` holds one rule per input (``None``: no gradient flows to that input), or
    ``vjp_argnum`` one rule for any input (used by operations with a variable number of inputs).
    A rule is called as ``rule(g, out, *inputs, **params)``; ``vjp_argnum`` rules receive the
    input's index first.  ``kink`` optionally maps the inputs to the discrete branch the
    operation took (``x >= y`` for ``maximum``), which is how the gradient checker recognises
    points where a finite difference straddles a kink.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> p = cr.primitive(numpy.cbrt, name="cube_root")
    >>> p, p.name, p(numpy.array([8.0]))
    (<primitive cube_root>, 'cube_root', array([2.]))
    """

    __slots__ = (
        "name",
        "fun",
        "vjps",
        "vjp_argnum",
        "kink",
        "nondiff",
        "custom",
        "complex_ready",
        "vjp_into",
        "symmetric",
        "__weakref__",
    )

    def __init__(
        self, name: str, fun: Callable[..., Any], nondiff: bool = False, custom: bool = False
    ) -> None:
        self.name = name
        self.fun = fun
        self.custom = custom
        self.vjps: tuple[Callable[..., Any] | None, ...] = ()
        self.vjp_argnum: Callable[..., Any] | None = None
        self.kink: Callable[..., Any] | None = None
        self.nondiff = nondiff
        # Whether the rules hold for complex values too (set by chainrule.engine.rules, which
        # says which convention, or by defvjp(..., complex_ready=True) for a custom primitive):
        # recording a complex value through any other primitive raises.
        self.complex_ready = False
        # The first input's rule as an in-place update of an accumulated gradient, for the
        # eager walk (set by chainrule.engine.graph.definplace; None: the rule runs).
        self.vjp_into: Callable[..., None] | None = None
        # f(x, y) == f(y, x) and the second input's rule is the first's with the inputs
        # swapped (``+``, ``*``; set by chainrule.engine.rules): for ``x * x`` the eager walk
        # calls one rule and doubles its result instead of calling both and adding them.
        self.symmetric = False

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _RULE_SLOTS:  # what the eager walk reads of a primitive: plans are stale
            RULE_EDITS[0] += 1

    def __call__(self, *args: Any, **params: Any) -> Any:
        """Apply the primitive: on plain arrays it computes; on tensors it also records.

        Any argument whose type defines ``__chainrule_apply__`` takes over, the way NumPy hands
        a call to ``__array_function__``; this is how rules call chainrule's own primitives.
        """
        for a in args:
            apply = getattr(type(a), "__chainrule_apply__", None)
            if apply is not None:
                return apply(self, args, params)
        return self.fun(*args, **params)

    def vjp(self, argnum: int) -> Callable[..., Any] | None:
        """Return the rule for input ``argnum`` (bound to the index for variadic rules)."""
        if self.vjp_argnum is not None:
            rule = self.vjp_argnum
            return lambda g, out, *args, **kw: rule(argnum, g, out, *args, **kw)
        return self.vjps[argnum] if argnum < len(self.vjps) else None

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


def qualified_name(prim: Primitive) -> str:
    """How messages name the function of ``prim``: ``numpy.exp``, ``numpy.linalg.norm``, and
    for the primitives of SciPy's ufuncs (named so) ``scipy.special.expit``.

    >>> qualified_name(exp)
    'numpy.exp'
    """
    name = prim.name
    return name if name.startswith("scipy.") else f"numpy.{name}"


def primitive(fun: Callable[..., Any], name: str | None = None) -> Primitive:
    """Make ``fun`` a primitive of its own: recorded as one operation, differentiated by the
    rules you give it with :func:`chainrule.defvjp`. Until then, differentiating through it
    raises an error that names it (never a silent zero); ``defvjp(p, None)`` says on purpose
    that no gradient flows to an input.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> softplus = cr.primitive(lambda x: numpy.logaddexp(0, x), name="softplus")
    >>> cr.defvjp(softplus, lambda g, out, x: g / (1 + numpy.exp(-x)))
    >>> float(cr.grad(lambda x: softplus(x))(0.0))
    0.5
    """
    label: str = name or getattr(fun, "__name__", None) or "custom"
    if not label.isidentifier() or label == "<lambda>":
        raise ValueError(f"primitive: give a name that is a Python identifier (got {label!r})")
    prim = Primitive(label, fun, custom=True)
    prim.vjp_argnum = _no_rule(label)
    return prim


def _no_rule(label: str) -> Callable[..., Any]:
    """The rule of a custom primitive before ``defvjp``: differentiating through it is an error."""

    def rule(argnum: int, *args: Any, **params: Any) -> Any:
        raise TypeError(
            f"primitive {label!r} has no gradient rule for its argument {argnum}, and a "
            f"gradient reached it: give it rules with chainrule.defvjp({label}, ...), one per "
            "argument (None for an argument that gets no gradient)"
        )

    return rule


# ---------------------------------------------------------------------------------------------
# Helpers shared by the primitives, the binders and the compositions
# ---------------------------------------------------------------------------------------------


def normalize_axis(axis: Any, ndim: int, fname: str) -> int | tuple[int, ...] | None:
    """Return ``axis`` as None, a non-negative int, or a sorted tuple of them."""
    if axis is None:
        return None
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, without a call
        return axis % ndim
    if isinstance(axis, (tuple, list)):
        out = tuple(sorted(_one_axis(a, ndim, fname) for a in axis))
        if len(set(out)) != len(out):
            raise ValueError(f"{fname}: repeated axis in {axis!r}")
        return out
    return _one_axis(axis, ndim, fname)


def _one_axis(axis: Any, ndim: int, fname: str) -> int:
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(
            f"{fname}: axis must be an integer or a tuple of integers, got {axis!r}"
        ) from None
    if not -ndim <= a < max(ndim, 1):
        raise numpy.exceptions.AxisError(a, ndim, f"{fname}")
    return a % ndim if ndim else 0


def _ndim(x: Any) -> int:
    d = x._data if hasattr(x, "_prim") else x
    return d.ndim if type(d) is numpy.ndarray else numpy.ndim(d)  # (numpy.ndim: 0.4 us more)


def _shape(x: Any) -> tuple[int, ...]:
    d = x._data if hasattr(x, "_prim") else x
    return d.shape if type(d) is numpy.ndarray else tuple(numpy.shape(d))


def _no_out(fname: str, out: Any) -> None:
    if out is not None:
        raise TypeError(
            f"{fname}: out= is not supported on chainrule tensors (a write into an "
            f"existing array cannot be recorded); write `y = numpy.{fname}(...)` "
            "and use the result instead"
        )


_NoValue = numpy._NoValue

# ---------------------------------------------------------------------------------------------
# Ufuncs
# ---------------------------------------------------------------------------------------------

UFUNCS: dict[numpy.ufunc, Primitive] = {}


def _ufunc(uf: numpy.ufunc, name: str | None = None) -> Primitive:
    prim = Primitive(name or uf.__name__, uf)
    UFUNCS[uf] = prim
    return prim


add = _ufunc(numpy.add)
subtract = _ufunc(numpy.subtract)
multiply = _ufunc(numpy.multiply)
divide = _ufunc(numpy.divide)  # numpy.true_divide is the same ufunc object
negative = _ufunc(numpy.negative)
positive = _ufunc(numpy.positive)
power = _ufunc(numpy.power)


def _power_fun(x: Any, y: Any) -> Any:
    """``x ** y``.  Of a float array: ``x ** 2`` is numpy.square, the loop NumPy's own
    ``x ** 2`` takes (0.2 us cheaper than numpy.power, the same bits: both are the correctly
    rounded x * x); a whole power ``x ** 3``, ``x ** -2``... is :func:`whole_power`.

    >>> _power_fun(numpy.array([-2.0, 3.0]), 3)
    array([-8., 27.])
    """
    if (type(y) is int or type(y) is float) and type(x) is numpy.ndarray:
        if y == 2:
            if x.dtype.kind == "f":
                return numpy.square(x)
        elif whole_exponent(y) and (x.dtype.char == "f" or x.dtype.char == "d") and x.ndim:
            return whole_power(x, y)
    return numpy.power(x, y)


def whole_exponent(n: Any) -> bool:
    """Whether ``n`` is a Python number that :func:`whole_power` takes: whole, not 0, 1, 2, -1
    (jit's code asks the same question of a constant exponent).

    >>> whole_exponent(3), whole_exponent(-2.0), whole_exponent(2), whole_exponent(0.5)
    (True, True, False, False)
    """
    return (type(n) is int or type(n) is float) and (n > 2 or n < -1) and float(n).is_integer()


def whole_power(x: Any, n: float) -> Any:
    """``x ** n`` for a float32/float64 array (not 0-d) and a whole ``n`` (not 0, 1, 2, -1).

    float32, ``|n| <= WIDE_POWER_MAX``: multiplied out in float64 (``((x * x) * x)``, then
    ``1 /`` for a negative ``n``) and rounded to float32 once, which is the correctly rounded
    power (the float64 products' error, below ``|n|`` units of 2**-53, can decide a rounding
    about once in 2**26 values at most).  NumPy's pow is within one unit in the last place, so
    the two differ in the last bit for about a fifth of the values, and it costs 4x as much
    (``h ** 3`` of a GELU's 128 x 1024 activations: 60 us against 240 us).

    Otherwise NumPy's ``|x| ** n``, negated where ``x`` is negative and ``n`` odd: where NumPy
    computes powers with SVML (x86 CPUs with AVX-512), its loop sends every negative ``x`` to a
    scalar fallback about 50x slower than the vector code; from ``|x|`` the result is NumPy's
    own for ``x >= 0`` and can differ from its fallback in the last bit for negative ``x``
    (both within one unit in the last place).

    Overflow and underflow warn, and raise under ``numpy.errstate(all="raise")``, as NumPy's
    ``power`` does (the float32 overflow's message says "cast").

    >>> whole_power(numpy.array([-2.0, 0.5, -numpy.inf]), -3)
    array([-0.125,  8.   , -0.   ])
    >>> whole_power(numpy.array([1.1, -3.0], numpy.float32), 3)
    array([  1.3310001, -27.       ], dtype=float32)
    """
    if x.dtype.char == "f" and abs(n) <= WIDE_POWER_MAX:
        d = x.astype(numpy.float64)
        r = d * d
        for _ in range(int(abs(n)) - 2):
            r *= d
        if n < 0:
            numpy.divide(1.0, r, out=r)
        return r.astype(numpy.float32)
    r = numpy.abs(x)
    numpy.power(r, n, out=r)
    if n % 2:
        numpy.copysign(r, x, out=r)
    return r


WIDE_POWER_MAX = 8
"""The largest ``|n|`` for which :func:`whole_power` multiplies a float32 array out in
float64 (jit's Numba code writes the same products)."""


power.fun = _power_fun


def _subtract_fun(x: Any, y: Any, **kw: Any) -> Any:
    """``x - y``: NumPy's subtract, by :func:`engine.broadcast.binary`'s routes where ``x``
    and ``y`` are broadcast against each other over short rows (the pairwise differences
    ``X[:, None, :] - C[None, :, :]``: 1.3-5x faster, the same values).

    >>> _subtract_fun(numpy.ones((2, 1, 3)), numpy.ones((1, 4, 3))).shape
    (2, 4, 3)
    """
    if not kw and type(x) is numpy.ndarray and type(y) is numpy.ndarray and x.shape != y.shape:
        return binary(numpy.subtract, x, y)
    return numpy.subtract(x, y, **kw)


subtract.fun = _subtract_fun
float_power = _ufunc(numpy.float_power)
square = _ufunc(numpy.square)
sqrt = _ufunc(numpy.sqrt)
cbrt = _ufunc(numpy.cbrt)
reciprocal = _ufunc(numpy.reciprocal)
exp = _ufunc(numpy.exp)
exp2 = _ufunc(numpy.exp2)
expm1 = _ufunc(numpy.expm1)
log = _ufunc(numpy.log)
log2 = _ufunc(numpy.log2)
log10 = _ufunc(numpy.log10)
log1p = _ufunc(numpy.log1p)
logaddexp = _ufunc(numpy.logaddexp)
logaddexp2 = _ufunc(numpy.logaddexp2)
sin = _ufunc(numpy.sin)
cos = _ufunc(numpy.cos)
tan = _ufunc(numpy.tan)
arcsin = _ufunc(numpy.arcsin)
arccos = _ufunc(numpy.arccos)
arctan = _ufunc(numpy.arctan)
arctan2 = _ufunc(numpy.arctan2)
sinh = _ufunc(numpy.sinh)
cosh = _ufunc(numpy.cosh)
tanh = _ufunc(numpy.tanh)
arcsinh = _ufunc(numpy.arcsinh)
arccosh = _ufunc(numpy.arccosh)
arctanh = _ufunc(numpy.arctanh)
absolute = _ufunc(numpy.absolute)
fabs = _ufunc(numpy.fabs)
maximum = _ufunc(numpy.maximum)
minimum = _ufunc(numpy.minimum)
fmax = _ufunc(numpy.fmax)
fmin = _ufunc(numpy.fmin)
hypot = _ufunc(numpy.hypot)
# A stack of matrices times one matrix is one product of a tall matrix from this many
# multiply-adds on (m * k * n summed over the stack): NumPy multiplies the stack matrix by
# matrix, and for a linear layer over a batch of sequences (32 x 128 x 256 times 256 x 256)
# one BLAS call makes the training step 4-10% faster.  Alone, one call is faster on smaller
# stacks too (8 x 64 x 64 times 64 x 64: 21 us against 28 us), but inside an attention step
# of that size the step was 5% slower with it (benchmarks/README.md, fifth round).
ROWS_PRODUCT = 1 << 24


# A stack of small matrices (3 x 3 Jacobians, 2 x 2 blocks: rows of at most this many entries,
# times a matrix of at most its square columns) times one matrix is one product too: NumPy's
# stacked loop costs about 50 ns per matrix, more than their arithmetic (2,000 products of
# 3 x 3: 118 us as a stack, 16 us as one product).  With so few terms per entry, two or more
# rows per matrix (NumPy multiplies a stack of single rows otherwise) and one real float dtype
# (complex products round otherwise), the products are NumPy's to the bit (tests/test_products.py).
SMALL_INNER = 4


# NumPy multiplies a stack of matrices by a transposed matrix (``W.T``, ``swapaxes(K, 1, 2)``)
# up to twice as slowly as by a C-ordered one, where the matrices are small (8 x 64 x 64 by
# 64 x 64: 49 us, 32 us after a copy); from this many multiply-adds per matrix the copy costs
# more than it saves. The values agree to rounding (NumPy's own loop for some transposed
# stacks adds up in another order than BLAS); jit's code calls this same function.
TRANSPOSED_COPY = 1 << 18


def _matmul(a: Any, b: Any) -> Any:
    """``numpy.matmul``'s values: two matrices as ``a.dot(b)`` where that is the faster
    spelling (:func:`dot_is_faster`: NumPy's matmul costs about 0.4 us more per call), a stack
    times a small transposed matrix after a copy of it, a large C-ordered stack, or a stack of
    small matrices (:data:`SMALL_INNER`), times one matrix as one product.

    >>> a, b = numpy.ones((64, 128, 64)), numpy.ones((32, 64)).T
    >>> _matmul(a, b).shape, bool((_matmul(a, b) == numpy.matmul(a, b)).all())
    ((64, 128, 32), True)
    """
    if type(a) is not numpy.ndarray or type(b) is not numpy.ndarray:
        return numpy.matmul(a, b)
    na = a.ndim
    nb = b.ndim
    if na == 2 and nb == 2:  # two matrices (most products): the spelling jit writes too
        if a.size * b.shape[1] <= SMALL_PRODUCT or a.shape[1] == 1:  # dot_is_faster(m, k, n)
            return a.dot(b)
        return numpy.matmul(a, b)
    if na < 2 or nb < 2:
        return numpy.matmul(a, b)
    if na > 2 and 2 < nb <= na and b.size == b.shape[-2] * b.shape[-1]:
        b = b.reshape(b.shape[-2:])  # one matrix with axes of length 1 before it: that matrix
        nb = 2
    transposed = b.strides[-1] != b.itemsize and b.strides[-2] == b.itemsize
    if transposed and a.shape[-2] * a.shape[-1] * b.shape[-1] <= TRANSPOSED_COPY:
        b = numpy.ascontiguousarray(b)
    if (
        na > 2
        and nb == 2
        and a.flags.c_contiguous
        and (
            a.size * b.shape[1] >= ROWS_PRODUCT
            or (
                a.shape[-2] > 1
                and a.shape[-1] <= SMALL_INNER
                and b.shape[1] <= SMALL_INNER**2
                and a.dtype == b.dtype
                and a.dtype.kind == "f"
            )
        )
    ):
        return numpy.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[1:])
    return numpy.matmul(a, b)


matmul = Primitive("matmul", _matmul)
UFUNCS[numpy.matmul] = matmul
remainder = _ufunc(numpy.remainder)
fmod = _ufunc(numpy.fmod)
deg2rad = _ufunc(numpy.deg2rad)
rad2deg = _ufunc(numpy.rad2deg)
UFUNCS[numpy.radians] = deg2rad  # other ufunc objects, the same computation (bit for bit)
UFUNCS[numpy.degrees] = rad2deg
copysign = _ufunc(numpy.copysign)
conjugate = _ufunc(numpy.conjugate)  # numpy.conj is the same ufunc object

# Results of these carry no gradient: booleans, integers, and piecewise-constant functions.
NONDIFF_UFUNCS: dict[numpy.ufunc, Primitive] = {
    uf: Primitive(uf.__name__, uf, nondiff=True)
    for uf in (
        numpy.greater,
        numpy.greater_equal,
        numpy.less,
        numpy.less_equal,
        numpy.equal,
        numpy.not_equal,
        numpy.logical_and,
        numpy.logical_or,
        numpy.logical_xor,
        numpy.logical_not,
        numpy.isnan,
        numpy.isinf,
        numpy.isfinite,
        numpy.signbit,
        numpy.floor,
        numpy.ceil,
        numpy.trunc,
        numpy.rint,
        numpy.sign,
        numpy.floor_divide,
        numpy.bitwise_and,
        numpy.bitwise_or,
        numpy.bitwise_xor,
        numpy.invert,
        numpy.left_shift,
        numpy.right_shift,
        numpy.heaviside,
        numpy.spacing,
    )
}

# ufunc.reduce / .accumulate on a tensor, mapped onto the function primitives below.
UFUNC_METHODS: dict[tuple[numpy.ufunc, str], Callable[..., Any]] = {}

# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------

NONDIFF_FUNCTIONS: dict[Callable[..., Any], Primitive] = {}


for _f in (
    numpy.argmax,
    numpy.argmin,
    numpy.nanargmax,
    numpy.nanargmin,
    numpy.isin,
    numpy.argsort,
    numpy.argwhere,
    numpy.nonzero,
    numpy.flatnonzero,
    numpy.count_nonzero,
    numpy.isclose,
    numpy.allclose,
    numpy.array_equal,
    numpy.all,
    numpy.any,
    numpy.searchsorted,
    numpy.digitize,
    numpy.bincount,
    numpy.unique,
    numpy.round,
    numpy.around,
    numpy.isreal,
    numpy.iscomplex,
    numpy.result_type,
    numpy.can_cast,
    numpy.may_share_memory,
    numpy.shares_memory,
    numpy.argpartition,
    numpy.lexsort,
    numpy.histogram,
    numpy.linalg.matrix_rank,
):
    NONDIFF_FUNCTIONS[_f] = Primitive(_f.__name__, _f, nondiff=True)


# --- reductions --------------------------------------------------------------------------------


def _reduction(name: str, fun: Callable[..., Any]) -> Primitive:
    return Primitive(name, fun)


def _sum_fun(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # numpy.add.reduce is numpy.sum without its Python overhead (add_reduce: and without its
    # slow short loops); other array libraries (Dask) implement numpy.sum but not the ufunc
    if type(x) is numpy.ndarray:
        return add_reduce(x, axis, keepdims)
    return numpy.sum(x, axis=axis, keepdims=keepdims)


def _prod_fun(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    if type(x) is numpy.ndarray:
        return numpy.multiply.reduce(x, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]
    return numpy.prod(x, axis=axis, keepdims=keepdims)


sum_ = _reduction("sum", _sum_fun)


def _mean_fun(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # numpy.mean's own arithmetic (a sum, then one division) without its Python overhead.
    # float64 only: numpy.mean sums float16 in float32, and divides float16/float32 sums by
    # an intp count (in float64); a Python int would be cast to the array's dtype (inf for
    # float16 above 65504 elements, inexact for float32 above 2**24).
    if type(x) is not numpy.ndarray or x.dtype is not _F64:
        return numpy.mean(x, axis=axis, keepdims=keepdims)
    # NumPy's stubs overload reduce on the literal value of keepdims; here it is a runtime bool
    total = add_reduce(x, axis, keepdims)
    n = (
        x.size
        if axis is None
        else math.prod(x.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    )
    return total / n if n else numpy.mean(x, axis=axis, keepdims=keepdims)


_F64 = numpy.dtype(numpy.float64)
mean = _reduction("mean", _mean_fun)
prod = _reduction("prod", _prod_fun)


def _extreme_fun(ufunc: numpy.ufunc, fun: Callable[..., Any]) -> Callable[..., Any]:
    # a max-pooling window's few entries (axes (3, 5) of (n, c, h, 2, w, 2)) slice by slice:
    # NumPy's own reduction loops over them innermost (window_reduce; the same values)
    def extreme(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if type(x) is numpy.ndarray:  # the ufunc's reduce: numpy.max without its Python layer
            if axis is not None and window_route(x.shape, axis):
                return window_reduce(ufunc, x, axis, keepdims)
            return ufunc.reduce(x, axis=axis, keepdims=keepdims)
        return fun(x, axis=axis, keepdims=keepdims)

    extreme.__name__ = fun.__name__
    return extreme


amax = _reduction("max", _extreme_fun(numpy.maximum, numpy.amax))
amin = _reduction("min", _extreme_fun(numpy.minimum, numpy.amin))
var = _reduction("var", numpy.var)
std = _reduction("std", numpy.std)
UFUNC_METHODS[numpy.add, "reduce"] = numpy.sum
UFUNC_METHODS[numpy.multiply, "reduce"] = numpy.prod
UFUNC_METHODS[numpy.maximum, "reduce"] = numpy.max
UFUNC_METHODS[numpy.minimum, "reduce"] = numpy.min


def _cumulative(ufunc: numpy.ufunc, fun: Callable[..., Any]) -> Callable[..., Any]:
    def run(x: Any, axis: int) -> Any:
        if type(x) is numpy.ndarray:
            return accumulate(ufunc, x, axis)  # NumPy's steps, across many slices at once
        return fun(x, axis=axis)  # (another array library's own)

    run.__name__ = run.__qualname__ = fun.__name__
    return run


cumsum = Primitive("cumsum", _cumulative(numpy.add, numpy.cumsum))
cumprod = Primitive("cumprod", _cumulative(numpy.multiply, numpy.cumprod))
UFUNC_METHODS[numpy.add, "accumulate"] = lambda a, axis=0, dtype=None, out=None: numpy.cumsum(
    a, axis=axis, dtype=dtype, out=out
)
UFUNC_METHODS[numpy.multiply, "accumulate"] = lambda a, axis=0, dtype=None, out=None: numpy.cumprod(
    a, axis=axis, dtype=dtype, out=out
)


# The running maximum and minimum (numpy.maximum.accumulate): NumPy's own loop computes them;
# the rule sends each output's gradient to the input where its running extreme was set.
running_max = Primitive(
    "maximum.accumulate", lambda x, axis: numpy.maximum.accumulate(x, axis=axis)
)
running_min = Primitive(
    "minimum.accumulate", lambda x, axis: numpy.minimum.accumulate(x, axis=axis)
)


def _running(prim: Primitive, name: str) -> Callable[..., Any]:
    def accumulate(a: Any, axis: Any = 0, dtype: Any = None, out: Any = None) -> Any:
        _no_out(name, out)
        if dtype is not None:
            a = a.astype(dtype)
        return prim(a, axis=_one_axis(axis, _ndim(a), name))

    return accumulate


def _outer(uf: numpy.ufunc) -> Callable[..., Any]:
    def outer(a: Any, b: Any, **kwargs: Any) -> Any:
        # every pair: a with b's axes appended, broadcast against b (NumPy's values)
        if kwargs:
            raise TypeError(f"numpy.{uf.__name__}.outer: {sorted(kwargs)} are not supported")
        return uf(numpy.reshape(a, _shape(a) + (1,) * _ndim(b)), b)

    return outer


for _uf in list(UFUNCS):
    if _uf.nin == 2:
        UFUNC_METHODS[_uf, "outer"] = _outer(_uf)

UFUNC_METHODS[numpy.maximum, "accumulate"] = _running(running_max, "maximum.accumulate")
UFUNC_METHODS[numpy.minimum, "accumulate"] = _running(running_min, "minimum.accumulate")

norm = Primitive("linalg.norm", numpy.linalg.norm)

# --- discrete Fourier transforms ----------------------------------------------------------------
# Four primitives carry numpy.fft: every transform is one of them over some ``axes`` with lengths
# ``s`` (NumPy's zero-padding or truncation) and a ``norm``; hfft/ihfft and the shifts are
# compositions (chainrule.engine.composites).


def _over_axes(one: Callable[..., Any], many: Callable[..., Any]) -> Callable[..., Any]:
    """numpy.fft's n-dimensional transform, through its one-axis form where ``axes`` has one
    axis: the same transform (``fftn`` calls it axis by axis), without ``fftn``'s handling of
    ``s`` and ``axes`` (1 us of an 8 us transform of (8, 256))."""

    def transform(a: Any, s: Any = None, axes: Any = None, norm: Any = None) -> Any:
        if axes is not None and len(axes) == 1:
            return one(a, None if s is None else s[0], axes[0], norm)
        return many(a, s, axes, norm)

    transform.__name__ = transform.__qualname__ = many.__name__
    return transform


fftn = Primitive("fft.fftn", _over_axes(numpy.fft.fft, numpy.fft.fftn))
ifftn = Primitive("fft.ifftn", _over_axes(numpy.fft.ifft, numpy.fft.ifftn))
rfftn = Primitive("fft.rfftn", _over_axes(numpy.fft.rfft, numpy.fft.rfftn))
irfftn = Primitive("fft.irfftn", _over_axes(numpy.fft.irfft, numpy.fft.irfftn))

# --- complex parts -------------------------------------------------------------------------------

real = Primitive("real", numpy.real)
imag = Primitive("imag", numpy.imag)


# --- linear algebra ------------------------------------------------------------------------------


# ``A.dot(B)`` and ``A @ B`` of two plain matrices make the same BLAS call, at different costs:
# ``dot`` has the smaller overhead (about 0.3 us), which decides small products; ``@`` is up
# to 20% faster on large ones with a transposed operand (X.T @ D, 784x128 by 128x512 in
# float32: 360 us against 445 us), except where the inner length is 1 (an outer product,
# which ``@`` computes 4x slower). The rules and jit's generated code choose by this.
SMALL_PRODUCT = 1 << 16


def dot_is_faster(m: int, k: int, n: int) -> bool:
    """Whether ``A.dot(B)`` is the faster spelling of the product of an (m, k) and a (k, n)
    matrix (plain NumPy arrays).

    >>> dot_is_faster(1, 6, 6), dot_is_faster(128, 784, 512), dot_is_faster(20000, 1, 100)
    (True, False, True)
    """
    return m * k * n <= SMALL_PRODUCT or k == 1


def _dot_fun(a: Any, b: Any) -> Any:
    # ndarray.dot is numpy.dot without the __array_function__ dispatch (0.6 us less per call)
    return a.dot(b) if type(a) is numpy.ndarray else numpy.dot(a, b)


dot = Primitive("dot", _dot_fun)
vdot = Primitive("vdot", numpy.vdot)
inner = Primitive("inner", numpy.inner)
outer = Primitive("outer", numpy.outer)
tensordot = Primitive("tensordot", numpy.tensordot)
# contracted through matrix products where that pays (engine.contract: PyTorch's and JAX's
# way; the values agree with numpy.einsum's to rounding); the rules and jit call it too
einsum = Primitive(
    "einsum",
    lambda *ops, subscripts, optimize=False: _contract(subscripts, *ops, optimize=optimize),
)
trace = Primitive("trace", numpy.trace)
# numpy.correlate itself (its conjugation of ``v`` included) on 1-D ``a`` no shorter than ``v``:
# NumPy's direct sums, so the values are NumPy's bit for bit; ``numpy.correlate`` and
# ``numpy.convolve`` on tensors are this one primitive (chainrule.engine.composites)
correlate = Primitive("correlate", numpy.correlate)


def correlate_pads(mode: str, m: int) -> tuple[int, int]:
    """The zeros numpy.correlate adds before and after ``a`` for a kernel of ``m`` values.

    >>> correlate_pads("same", 4), correlate_pads("full", 3)
    ((2, 1), (2, 2))
    """
    return {"valid": (0, 0), "same": (m // 2, m - 1 - m // 2), "full": (m - 1, m - 1)}[mode]


i0 = Primitive("i0", numpy.i0)  # the modified Bessel function of the first kind, order 0
diagonal = Primitive("diagonal", numpy.diagonal)


# --- shape manipulation --------------------------------------------------------------------------

# On NumPy's arrays the methods: numpy.reshape, transpose and swapaxes are Python functions
# around them that cost 0.3-0.5 us more per call than the view they make.


def _reshape_fun(x: Any, shape: Any) -> Any:
    return x.reshape(shape) if type(x) is numpy.ndarray else numpy.reshape(x, shape)


def _transpose_fun(x: Any, axes: Any = None) -> Any:
    return x.transpose(axes) if type(x) is numpy.ndarray else numpy.transpose(x, axes)


def _swapaxes_fun(x: Any, axis1: int, axis2: int) -> Any:
    if type(x) is numpy.ndarray:
        return x.swapaxes(axis1, axis2)
    return numpy.swapaxes(x, axis1, axis2)


reshape = Primitive("reshape", _reshape_fun)
transpose = Primitive("transpose", _transpose_fun)
swapaxes = Primitive("swapaxes", _swapaxes_fun)
moveaxis = Primitive("moveaxis", numpy.moveaxis)


def on_host(x: Any) -> bool:
    """Whether ``x`` is NumPy's own (an ndarray, a NumPy scalar, a Python number)."""
    return (  # NumPy's scalars first: a failed hasattr costs more than isinstance
        type(x) is numpy.ndarray
        or isinstance(x, numpy.generic)
        or not hasattr(type(x), "__array_function__")
    )


def host_copy(x: Any) -> Any:
    """``x`` as a NumPy array in host memory: CuPy's ``.get()``, Dask's ``.compute()``; NumPy's
    own values as they are."""
    if type(x) is numpy.ndarray or isinstance(x, numpy.generic):
        return x
    get = getattr(x, "get", None)  # CuPy: an explicit copy from the device
    if callable(get) and hasattr(x, "shape") and not hasattr(x, "dask"):
        return get()
    compute = getattr(x, "compute", None)  # Dask: evaluate the graph
    if callable(compute) and hasattr(x, "dask"):
        return numpy.asarray(compute())
    if hasattr(type(x), "__array_function__") or hasattr(x, "__array__"):
        return numpy.asarray(x)
    return x


def zeros_like_backend(shape: tuple[int, ...], dtype: Any, ref: Any) -> Any:
    """Zeros of ``shape`` in the array library of ``ref`` (NEP 35's ``like=``)."""
    if on_host(ref):
        return numpy.zeros(shape, dtype=dtype)
    return numpy.zeros(shape, dtype=dtype, like=ref)


def const_like(c: Any, *refs: Any) -> Any:
    """A constant made with NumPy, moved to the array library of the values it meets (CuPy,
    Dask, ...: NEP 35's ``like=``); with NumPy's own arrays it is kept as it is."""
    for r in refs:
        d = getattr(r, "_data", r)  # a tensor's array, or the array itself
        if not on_host(d):
            return numpy.asarray(c, like=d)
    return c


def _broadcast_to_fun(x: Any, shape: tuple[int, ...]) -> Any:
    # numpy.broadcast_to's values; a small copy is cheaper than its view machinery
    if type(x) is not numpy.ndarray:
        if hasattr(type(x), "__array_function__") and hasattr(x, "shape"):
            return numpy.broadcast_to(x, shape)  # another library's array stays its own
        x = numpy.asarray(x)
    if x.shape == shape:
        return x
    if math.prod(shape) > 4096:
        return numpy.broadcast_to(x, shape)
    out = numpy.empty(shape, dtype=x.dtype)
    numpy.copyto(out, x)
    return out


broadcast_to = Primitive("broadcast_to", _broadcast_to_fun)


def _joined(fun: Callable[..., Any]) -> Callable[..., Any]:
    def join(*xs: Any, axis: int = 0) -> Any:
        if not all(on_host(x) for x in xs):  # host pieces join another library's arrays there
            xs = tuple(const_like(x, *xs) if on_host(x) else x for x in xs)
        return fun(xs, axis=axis)

    return join


concatenate = Primitive("concatenate", _joined(numpy.concatenate))


def _stack_fun(xs: Any, axis: int = 0) -> Any:
    """``numpy.stack(xs, axis)``; arrays of one shape and dtype along a new first axis as
    ``numpy.array(xs)``, the same array made without numpy.stack's Python steps (two 0-d
    arrays: 0.4 us against 3.7 us; 50 of (16, 32): 12 us against 24 us).

    >>> _stack_fun((numpy.array(1.0), numpy.array(2.0)))
    array([1., 2.])
    """
    if axis == 0 and xs:
        x0 = xs[0]
        if type(x0) is numpy.ndarray and x0.dtype.kind not in "OV":
            shape, dt = x0.shape, x0.dtype
            if all(type(x) is numpy.ndarray and x.shape == shape and x.dtype == dt for x in xs):
                return numpy.array(xs)
    return numpy.stack(xs, axis=axis)


stack = Primitive("stack", _joined(_stack_fun))
flip = Primitive("flip", numpy.flip)
roll = Primitive("roll", numpy.roll)
tile = Primitive("tile", numpy.tile)
repeat = Primitive("repeat", numpy.repeat)


def filled_like(
    like: numpy.ndarray, shape: tuple[int, ...], value: Any = 0, dtype: Any = None
) -> Any:
    """A new array of ``shape`` filled with ``value``, its axes laid out in memory in the order
    of ``like``'s (a channel-major view stays channel-major: later elementwise steps then
    read both in one order, which NumPy runs as one long loop instead of many short ones).

    >>> filled_like(numpy.zeros((3, 2)).T, (2, 5)).strides
    (8, 16)
    """
    dtype = like.dtype if dtype is None else dtype
    order = None
    if not like.flags.c_contiguous and len(shape) == like.ndim:
        strides, sizes = like.strides, like.shape
        order = sorted(range(like.ndim), key=lambda a: -abs(strides[a]) if sizes[a] > 1 else 0)
        if order == sorted(order):
            order = None
    moved = shape if order is None else tuple(shape[a] for a in order)
    if value == 0 and not numpy.signbit(value):  # -0.0 is filled as itself
        out = numpy.zeros(moved, dtype)
    else:
        out = numpy.full(moved, value, dtype)
    return out if order is None else out.transpose(numpy.argsort(order))


def pad_constant(array: Any, pad_width: Any, constant_values: Any = 0) -> Any:
    """``numpy.pad(array, pad_width, constant_values=constant_values)``: for a float array one
    filled array and one slice assignment (numpy.pad spends ~20 us in Python per call).

    >>> pad_constant(numpy.ones((1, 2)), ((0, 0), (1, 0)), -1.0)
    array([[-1.,  1.,  1.]])
    """
    cv = constant_values
    width = tuple(tuple(row) for row in pad_width) if isinstance(pad_width, tuple) else ()
    if (
        type(array) is not numpy.ndarray
        or array.dtype.kind not in "fc"
        or not isinstance(cv, (int, float, numpy.floating, numpy.integer))
        or len(width) != array.ndim
        or not all(len(row) == 2 and min(row) >= 0 for row in width)
    ):
        return numpy.pad(array, pad_width, constant_values=cv)
    shape = tuple(n + lo + hi for n, (lo, hi) in zip(array.shape, width))
    out = filled_like(array, shape, cv)
    out[tuple(slice(lo, lo + n) for n, (lo, _) in zip(array.shape, width))] = array
    return out


pad = Primitive("pad", pad_constant)
take = Primitive("take", numpy.take)
take_along_axis = Primitive("take_along_axis", take_along)
sort = Primitive("sort", numpy.sort)
triu = Primitive("triu", numpy.triu)
tril = Primitive("tril", numpy.tril)
where = Primitive("where", numpy.where)
clip = Primitive("clip", numpy.clip)
getitem = Primitive("getitem", take_rows)  # x[index]: rows read by an integer array, by take
astype = Primitive("astype", lambda x, dtype: x.astype(dtype))
copy = Primitive("copy", numpy.copy)


def _assign(x: Any, v: Any, index: Any) -> Any:
    y = numpy.array(x, copy=True) if on_host(x) else x.copy()
    y[index] = v
    return y


# ``t[index] = v`` recorded as a functional update: a new array, ``x`` itself untouched.
setitem = Primitive("setitem", _assign)
# Marks where a differentiated argument enters a function (``grad`` of ``grad``): no work.
identity = Primitive("identity", lambda x: x)
# ``t.detach()`` while tracing: the same values, no gradient (a recorded stop, so that jit and
# explain follow new inputs instead of freezing today's values).
stop_gradient = Primitive("stop_gradient", lambda x: x, nondiff=True)


def _scatter_add(g: Any, index: Any, shape: tuple[int, ...], unique: bool) -> Any:
    out = zeros_like_backend(shape, g.dtype, g)
    try:
        if unique:
            out[index] = g
        else:
            add_at(out, index, g, fresh=True)
    except (TypeError, ValueError, NotImplementedError) as e:
        if on_host(g):
            raise
        lib = type(g).__module__.split(".")[0]
        how = "" if unique else " with repeated or advanced indices, numpy.add.at"
        raise TypeError(
            f"numpy.scatter_add (the gradient of indexing{how}) "
            f"is not supported by {lib} arrays ({e}). Index with basic slices, or compute this "
            "part on NumPy arrays (chainrule.to_host)"
        ) from None
    return out


# The gradient of indexing: ``g`` added into zeros of ``shape`` at ``index``.  ``unique`` says
# that no position repeats (basic indices: ints and slices; permutations), so that a plain
# assignment is exact; other advanced indices accumulate with ``numpy.add.at``.
scatter_add = Primitive("scatter_add", _scatter_add)


def _scatter_adds(
    *gs: Any, indices: tuple[Any, ...], shape: tuple[int, ...], covers: bool = False
) -> Any:
    out = numpy.zeros(shape, dtype=numpy.result_type(*gs))
    for g, index in zip(gs, indices):
        out[index] = g
    return out


# A sum of scatter_adds into disjoint basic indices of one shape (the gradient of ``z`` read as
# slices ``z[:, :h]``, ``z[:, h:]``): one array, each ``g`` written into its place (zeros
# elsewhere; ``covers``: there is no elsewhere).  The values of adding the separate scatters,
# but for the sign of a zero (a -0.0 in ``g`` stays -0.0, as where the eager walk assigns the
# first cotangent of a slice).  Only jit's NumPy backend writes it
# (chainrule.program.ir.merge_scatters), in programs already differentiated.
scatter_adds = Primitive("scatter_adds", _scatter_adds)


def _spread_ties(g: Any, hit: Any, m: Any, axis: Any, count: str) -> Any:
    if (
        type(hit) is numpy.ndarray
        and numpy.count_nonzero(hit) == numpy.size(m)
        and not (numpy.asarray(m).dtype.kind in "fc" and numpy.isnan(m).any())
    ):  # each slice's extreme is in one place (a NaN extreme is in none): no ties to count
        return g * hit
    counted = hit if count == "int" else hit.astype(count)
    with numpy.errstate(divide="ignore", invalid="ignore"):  # a NaN extreme: NaN, as eager
        return g / numpy.add.reduce(counted, axis, keepdims=True) * hit


# The gradient of a max or min, ``g / ties * hit`` with ``hit = x == m`` (``m`` the extreme of
# each slice of ``x`` along ``axis``) and ``ties`` the count of ``hit`` in each slice (summed
# as ``count``: "int", NumPy's sum of booleans, or a float dtype's name): ``g * hit`` where
# every slice has its extreme in one place, the division only where some slice ties or has a
# NaN extreme.  The same bits either way (g / 1 is g), without counting per slice in the
# common case (two full passes over x's shape).  Only jit's NumPy backend writes it
# (chainrule.program.ir.spread_ties), in programs already differentiated; eager's rule
# takes the same shortcut itself.
spread_ties = Primitive("spread_ties", _spread_ties)


def sorting_order(x: Any, axis: int) -> Any:
    """``numpy.argsort(x, axis=axis, kind="stable")``, through NumPy's default argsort
    (vectorised, 3x faster) where no two entries along ``axis`` compare equal and none is NaN:
    the permutation that sorts distinct values is unique, so it is the stable one.

    >>> x = numpy.array([3.0, 1.0, 2.0, 1.0])
    >>> sorting_order(x, 0).tolist(), sorting_order(x[:3], 0).tolist()
    ([1, 3, 2, 0], [1, 2, 0])
    """
    if type(x) is not numpy.ndarray or x.ndim == 0 or x.shape[axis] < 2:
        return numpy.argsort(x, axis=axis, kind="stable")  # (another array library's own)
    order = numpy.argsort(x, axis=axis)
    s = numpy.moveaxis(numpy.take_along_axis(x, order, axis=axis), axis, -1)
    tied = (s[..., 1:] == s[..., :-1]).any()
    if tied or (s.dtype.kind in "fc" and numpy.isnan(s[..., -1]).any()):  # NaN sorts last
        return numpy.argsort(x, axis=axis, kind="stable")
    return order


def _by_sort(v: Any, x: Any, axis: int) -> Any:
    return numpy.take_along_axis(v, sorting_order(x, axis), axis=axis)


def _undo_sort(v: Any, x: Any, axis: int) -> Any:
    out = numpy.empty_like(v)
    numpy.put_along_axis(out, sorting_order(x, axis), v, axis=axis)
    return out


# ``v`` put in the order that sorting ``x`` along ``axis`` would give, and back again: the
# gradient of ``sort`` (kept as primitives so no traced index array is ever needed).
sort_permute = Primitive("sort_permute", _by_sort)
sort_unpermute = Primitive("sort_unpermute", _undo_sort)


class Slot:
    """Where a computed integer index array goes in an indexing template (``x[rows, y]``)."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Slot) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("slot", self.k))

    def __repr__(self) -> str:
        return f"Slot({self.k})"


def fill_index(template: tuple[Any, ...], arrays: tuple[Any, ...]) -> tuple[Any, ...]:
    """The index ``template`` with its slots replaced by ``arrays``."""
    return tuple(arrays[i.k] if isinstance(i, Slot) else i for i in template)


def _gather(x: Any, *ix: Any, template: tuple[Any, ...]) -> Any:
    return take_rows(x, fill_index(template, ix))


def _scatter(g: Any, *ix: Any, template: tuple[Any, ...], shape: tuple[int, ...]) -> Any:
    out = numpy.zeros(shape, dtype=numpy.asarray(g).dtype)
    add_at(out, fill_index(template, ix), g, fresh=True)
    return out


# Indexing by integer arrays that are themselves computed (inputs of a traced function, like
# the labels in ``logp[rows, y]``): the index arrays are inputs of the operation, so a trace
# keeps them as variables instead of freezing today's values.
gather = Primitive("gather", _gather)
scatter = Primitive("scatter", _scatter)


sliding_window_view = Primitive("sliding_window_view", numpy.lib.stride_tricks.sliding_window_view)


# --- solving and inverting (stacks of square matrices, as numpy.linalg takes them) -------------


class _Shared(threading.local):
    memo: dict[Any, tuple[Any, Any]] | None = None


_SHARED = _Shared()


@contextlib.contextmanager
def shared_factors() -> Iterator[None]:
    """Inside, the primitives that are results of one decomposition (slogdet's sign and
    log|det|, eigh's, eig's and qr's two factors, svd's U and Vh) compute it once for the same
    input array: the composite that calls them in a row opens it (nothing can change the array
    in between, and the memo is gone when it closes).

    >>> import numpy
    >>> with shared_factors():
    ...     a = numpy.eye(2) * 3
    ...     float(logabsdet.fun(a)), float(detsign.fun(a))
    (2.1972245773362196, 1.0)
    """
    outer = _SHARED.memo
    _SHARED.memo = {} if outer is None else outer
    try:
        yield
    finally:
        _SHARED.memo = outer


def _once(compute: Callable[..., Any], recent: bool = False) -> Callable[..., Any]:
    """``compute(a, *args)``, reused inside :func:`shared_factors` for the same array ``a``;
    with ``recent``, also for a matrix with the bits of one of the last few it decomposed
    (:class:`_Recent`: a rule asking again for the decomposition its forward call made)."""

    def run(a: Any, *args: Any) -> Any:
        memo = _SHARED.memo
        if memo is None:
            return _RECENT.get(compute, a, args) if recent else compute(a, *args)
        key = (compute, id(a), args)
        hit = memo.get(key)
        if hit is None or hit[0] is not a:
            made = _RECENT.get(compute, a, args) if recent else compute(a, *args)
            hit = memo[key] = (a, made)
        return hit[1]

    return run


class _Recent(threading.local):
    """The last few decompositions (eigh, svd, qr, eig) of matrices of order 16 and more, for
    the rules that ask for one again: the gradient of ``eigh``'s eigenvalues needs its
    eigenvectors, of ``svd``'s singular values its vectors, and the forward call had them.

    An entry keeps a copy of the matrix and of the results; a lookup finds a candidate by the
    array's address, shape, strides and dtype, and serves it only if the array's bits equal the
    copy's (the array may have been written over, or its memory reused): what is handed out
    was computed from exactly these values, as a new copy each time.  An entry goes with the
    array it was made from, and at most :data:`RECENT_ENTRIES` are kept per thread.
    """

    def __init__(self) -> None:
        self.entries: OrderedDict[Any, tuple[Any, Any, Any]] = OrderedDict()

    def get(self, compute: Callable[..., Any], a: Any, args: tuple[Any, ...]) -> Any:
        if (
            type(a) is not numpy.ndarray
            or a.ndim < 2
            or min(a.shape[-2:]) < RECENT_MIN_ORDER
            or a.nbytes > RECENT_MAX_BYTES
            or a.dtype.char not in "fdFD"
        ):
            return compute(a, *args)
        entries = self.entries
        key = (compute, args, factors.array_key(a))
        hit = entries.get(key)
        if hit is not None and hit[0].shape == a.shape and factors.same_bits(a, hit[0]):
            entries.move_to_end(key)
            return _copies(hit[1])
        made = compute(a, *args)

        def drop(ref: Any) -> None:  # the array is gone: its entry too, if it is still this one
            if entries.get(key, (None, None, None))[2] is ref:
                entries.pop(key, None)

        # (the weak reference lives in the entry: an entry pushed out takes it along, so a
        # long-lived array decomposed again and again collects no callbacks)
        entries[key] = (numpy.array(a), _copies(made), weakref.ref(a, drop))
        while len(entries) > RECENT_ENTRIES:
            entries.popitem(last=False)
        return made


def _copies(made: Any) -> Any:
    """A decomposition's results (a named tuple of arrays, or one array) as new arrays."""
    if isinstance(made, tuple):
        return type(made)(*(numpy.array(r) for r in made))
    return numpy.array(made)


_RECENT = _Recent()
RECENT_ENTRIES = 4
RECENT_MIN_ORDER = 16  # below, a copy and a comparison cost about what the decomposition does
RECENT_MAX_BYTES = 1 << 22  # larger matrices: nothing large is kept


_slogdet = _once(factors.slogdet)
_eigh = _once(lambda a, uplo: numpy.linalg.eigh(a, uplo), recent=True)
_svd = _once(lambda a, full: numpy.linalg.svd(a, full_matrices=full), recent=True)
_qr = _once(lambda a, mode: numpy.linalg.qr(a, mode=mode), recent=True)
_eig = _once(lambda a: numpy.linalg.eig(a), recent=True)

# One LU per matrix, shared across these operations and their rules where SciPy is importable
# (chainrule.engine.factors; NumPy's own functions otherwise, and for small matrices).
inv = Primitive("linalg.inv", factors.inv)
solve = Primitive("linalg.solve", factors.solve)
det = Primitive("linalg.det", factors.det)
# slogdet's two results: log|det| (differentiable) and the sign (piecewise constant).
logabsdet = Primitive("linalg.logabsdet", lambda a: _slogdet(a)[1])
detsign = Primitive("linalg.detsign", lambda a: _slogdet(a)[0], nondiff=True)


def _logdet_fun(a: Any) -> Any:
    sign, logabs = _slogdet(a)
    return logabs + numpy.log(sign)


# log det A of a complex A (slogdet's sign is not constant there: sign = exp(i Im log det A))
logdet = Primitive("linalg.logdet", _logdet_fun)
_SlogdetResult = type(numpy.linalg.slogdet(numpy.eye(1)))


cholesky = Primitive("linalg.cholesky", factors.cholesky)


# eigh's two results as two primitives (each rule needs the other result, which it asks for by
# calling the other primitive, so higher derivatives stay exact).  eigvalsh is a third: LAPACK
# computes eigenvalues alone differently, so its last bits differ from eigh's.
eigvalsh = Primitive("linalg.eigvalsh", numpy.linalg.eigvalsh)
eighvals = Primitive("linalg.eigh.eigenvalues", lambda a, UPLO="L": _eigh(a, UPLO)[0])
eigvecsh = Primitive("linalg.eigh.eigenvectors", lambda a, UPLO="L": _eigh(a, UPLO)[1])
_EighResult = type(numpy.linalg.eigh(numpy.eye(1)))


# The thin SVD A = U diag(S) Vh as three primitives (each rule asks for the other factors by
# calling their primitives, as eigh's do, so higher derivatives stay exact). ``full`` is
# numpy.linalg.svd's full_matrices; only square or thin factors have a gradient.
svd_u = Primitive("linalg.svd.U", lambda a, full=False: _svd(a, full)[0])
_svd_values = _once(lambda a: numpy.linalg.svd(a, compute_uv=False), recent=True)
svd_s = Primitive("linalg.svd.S", lambda a: _svd_values(a))
# Vh also takes U, which it does not read: the phase of each singular pair is shared by U and
# V, and through this edge the cotangent of Vh tells U's rule its part of that phase, so that
# the rule can check that the loss does not depend on it (chainrule.engine.rules).
svd_vh = Primitive("linalg.svd.Vh", lambda a, u=None, full=False: _svd(a, full)[2])
_SVDResult = type(numpy.linalg.svd(numpy.eye(1)))
# A = Q R (numpy.linalg.qr's 'reduced' and 'complete' modes) as two primitives, as the SVD
qr_q = Primitive("linalg.qr.Q", lambda a, mode="reduced": _qr(a, mode)[0])
qr_r = Primitive("linalg.qr.R", lambda a, mode="reduced": _qr(a, mode)[1])
_QRResult = type(numpy.linalg.qr(numpy.eye(1)))
# the eigenvalues of a general matrix (complex), alone and as eig's two results (LAPACK orders
# the eigenvalues it computes alone differently from eig's for larger matrices, so eig's pair
# comes from one call)
eigvals = Primitive("linalg.eigvals", numpy.linalg.eigvals)
eigw = Primitive("linalg.eig.eigenvalues", lambda a: _eig(a)[0])
eigvecs = Primitive("linalg.eig.eigenvectors", lambda a: _eig(a)[1])
_EigResult = type(numpy.linalg.eig(numpy.eye(1)))
pinv = Primitive("linalg.pinv", lambda a, rcond: numpy.linalg.pinv(a, rcond=rcond))
lstsq_x = Primitive("linalg.lstsq.x", lambda a, b, rcond: numpy.linalg.lstsq(a, b, rcond=rcond)[0])


LOG2 = math.log(2.0)
LOG10 = math.log(10.0)


# ---------------------------------------------------------------------------------------------
# --- numerically stable functions ---
# ---------------------------------------------------------------------------------------------
# The primitives behind :mod:`chainrule.functions` whose stable form is not a composition of
# the primitives above (or whose composition would lose accuracy).  NumPy has no such functions,
# so nothing dispatches to them: ``chainrule.functions`` calls them directly.  Each ``fun`` is
# exactly the NumPy code that ``notation.py`` writes out for it, so ``jit`` and exported code
# compute the same numbers as the eager path.  ``axis`` arrives normalised (``normalize_axis``).


def _logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # Shift by the maximum so exp never overflows; nan_to_num turns an infinite maximum into a
    # finite one, so a slice of -inf gives -inf (not nan), as scipy.special.logsumexp.
    shift = numpy.nan_to_num(_shift(x, axis))
    total = numpy.log(numpy.sum(numpy.exp(x - shift), axis=axis, keepdims=keepdims))
    return total + numpy.reshape(shift, numpy.shape(total))  # the maximum, taken once


def _shift(x: Any, axis: Any) -> Any:
    """The maximum along ``axis`` (kept), the stabilising shift of a softmax: along the last
    axis of a plain array by :func:`reduce.max_last` (exact, faster for short rows)."""
    if type(x) is numpy.ndarray and axis == x.ndim - 1:
        return max_last(x)
    return numpy.max(x, axis=axis, keepdims=True)


def _softmax(x: Any, axis: Any) -> Any:
    e = x - _shift(x, axis)
    if type(e) is numpy.ndarray and e.dtype.kind in "fc":
        numpy.exp(e, out=e)  # the same operations in one array's memory, not three
        e /= numpy.sum(e, axis=axis, keepdims=True)
        return e
    e = numpy.exp(e)
    return e / numpy.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: Any, axis: Any) -> Any:
    shifted = x - _shift(x, axis)
    return shifted - numpy.log(numpy.sum(numpy.exp(shifted), axis=axis, keepdims=True))


def _sigmoid(x: Any) -> Any:
    # e^x / (1 + e^x) for x < 0, 1 / (1 + e^-x) for x >= 0: neither exponent is positive, so
    # nothing overflows; within 3 ulps (exp(-logaddexp(0, -x)) was (|x| + 1) ulps, and 3-8x
    # slower: NumPy's logaddexp has no vectorised loop).
    return numpy.exp(numpy.minimum(x, 0)) / (1 + numpy.exp(-numpy.abs(x)))


def _xlogy(x: Any, y: Any) -> Any:
    # x * log(y), and 0 wherever x == 0 (even where y == 0), as scipy.special.xlogy.
    return numpy.where(x == 0, 0, x * numpy.log(numpy.where(x == 0, 1, y)))


def _safe_norm(x: Any, axis: Any = None, keepdims: bool = False, eps: float = 1e-12) -> Any:
    # sqrt(sum(x ** 2) + eps ** 2) without squaring: hypot never overflows or underflows
    # early, so the norm of values near 1e300 is finite whenever the result is.
    return numpy.hypot(numpy.hypot.reduce(x, axis=axis, keepdims=keepdims), eps)  # type: ignore[call-overload]


logsumexp = Primitive("logsumexp", _logsumexp)
softmax = Primitive("softmax", _softmax)
log_softmax = Primitive("log_softmax", _log_softmax)
sigmoid = Primitive("sigmoid", _sigmoid)
xlogy = Primitive("xlogy", _xlogy)
safe_norm = Primitive("safe_norm", _safe_norm)
