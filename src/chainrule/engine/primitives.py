"""Primitives: the vocabulary of recorded operations, and the registries that map NumPy onto them.

A :class:`Primitive` is one NumPy operation that chainrule records: its name, the NumPy function
that computes it, and (filled in by :mod:`chainrule.engine.rules`) one vector-Jacobian rule per
input.

NumPy calls reach chainrule through two doors, and this module owns the maps behind both:

* ``UFUNCS`` maps a ufunc (``numpy.multiply``) to its primitive.
* ``FUNCTIONS`` maps a NumPy function (``numpy.sum``) to a *binder*: a function with NumPy's own
  signature that returns ``(primitive, inputs, params)``.  Inputs are the positional values that
  may carry gradients; params are static (axes, shapes, flags).
* ``COMPOSITES`` maps a NumPy function to NumPy code that builds it from other primitives
  (``vstack`` is ``concatenate`` of ``atleast_2d``), so it needs no rule of its own.
* ``NONDIFF_UFUNCS`` / ``NONDIFF_FUNCTIONS``: operations whose results carry no gradient
  (comparisons, ``floor``, ``argmax``, …).  They are computed on the data and come back as plain
  arrays, except while tracing, when they are recorded so that the trace stays complete.

Nothing here knows about tensors; ``tensor.py`` does the dispatching.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy

__all__ = [
    "Primitive",
    "primitive",
    "UFUNCS",
    "FUNCTIONS",
    "COMPOSITES",
    "NONDIFF_UFUNCS",
    "NONDIFF_FUNCTIONS",
    "UFUNC_METHODS",
    "normalize_axis",
]


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

    __slots__ = ("name", "fun", "vjps", "vjp_argnum", "kink", "nondiff", "custom", "__weakref__")

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
# Helpers for binders
# ---------------------------------------------------------------------------------------------


def normalize_axis(axis: Any, ndim: int, fname: str) -> int | tuple[int, ...] | None:
    """Return ``axis`` as None, a non-negative int, or a sorted tuple of them."""
    if axis is None:
        return None
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
    return numpy.ndim(x.data if hasattr(x, "_prim") else x)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(numpy.shape(x.data if hasattr(x, "_prim") else x))


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
matmul = _ufunc(numpy.matmul)
remainder = _ufunc(numpy.remainder)
fmod = _ufunc(numpy.fmod)
deg2rad = _ufunc(numpy.deg2rad)
rad2deg = _ufunc(numpy.rad2deg)
copysign = _ufunc(numpy.copysign)

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

Binder = Callable[..., "tuple[Primitive, tuple[Any, ...], dict[str, Any]]"]
FUNCTIONS: dict[Callable[..., Any], Binder] = {}
COMPOSITES: dict[Callable[..., Any], Callable[..., Any]] = {}
NONDIFF_FUNCTIONS: dict[Callable[..., Any], Primitive] = {}


def _binds(*funcs: Callable[..., Any]) -> Callable[[Binder], Binder]:
    def register(binder: Binder) -> Binder:
        for f in funcs:
            FUNCTIONS[f] = binder
        return binder

    return register


def _composite(*funcs: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        for f in funcs:
            COMPOSITES[f] = impl
        return impl

    return register


for _f in (
    numpy.argmax,
    numpy.argmin,
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
    numpy.zeros_like,
    numpy.ones_like,
    numpy.empty_like,
    numpy.full_like,
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
    numpy.tril_indices_from,
    numpy.triu_indices_from,
    numpy.diag_indices_from,
):
    NONDIFF_FUNCTIONS[_f] = Primitive(_f.__name__, _f, nondiff=True)


# --- reductions --------------------------------------------------------------------------------


def _reduction(name: str, fun: Callable[..., Any]) -> Primitive:
    return Primitive(name, fun)


sum_ = _reduction(
    "sum", lambda x, axis=None, keepdims=False: numpy.add.reduce(x, axis=axis, keepdims=keepdims)
)


def _mean_fun(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    # numpy.mean's own arithmetic (a sum, then one division) without its Python overhead.
    # float64 only: numpy.mean sums float16 in float32, and divides float16/float32 sums by
    # an intp count (in float64); a Python int would be cast to the array's dtype (inf for
    # float16 above 65504 elements, inexact for float32 above 2**24).
    if type(x) is not numpy.ndarray or x.dtype is not _F64:
        return numpy.mean(x, axis=axis, keepdims=keepdims)
    # NumPy's stubs overload reduce on the literal value of keepdims; here it is a runtime bool
    total = numpy.add.reduce(x, axis=axis, keepdims=keepdims)  # type: ignore[call-overload]
    n = (
        x.size
        if axis is None
        else math.prod(x.shape[a] for a in ((axis,) if isinstance(axis, int) else axis))
    )
    return total / n if n else numpy.mean(x, axis=axis, keepdims=keepdims)


_F64 = numpy.dtype(numpy.float64)
mean = _reduction("mean", _mean_fun)
prod = _reduction(
    "prod",
    lambda x, axis=None, keepdims=False: numpy.multiply.reduce(x, axis=axis, keepdims=keepdims),
)
amax = _reduction("max", numpy.amax)
amin = _reduction("min", numpy.amin)
var = _reduction("var", numpy.var)
std = _reduction("std", numpy.std)


def _reduce_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = _NoValue,
        where: Any = _NoValue,
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(fname, out)
        if initial is not _NoValue or where is not _NoValue:
            raise TypeError(
                f"numpy.{fname}: initial= and where= are not supported on "
                "chainrule tensors; mask the input first (numpy.where)"
            )
        if dtype is not None:
            a = a.astype(dtype)
        return (
            prim,
            (a,),
            {"axis": normalize_axis(axis, _ndim(a), fname), "keepdims": bool(keepdims)},
        )

    return bind


FUNCTIONS[numpy.sum] = _reduce_binder(sum_, "sum")
FUNCTIONS[numpy.prod] = _reduce_binder(prod, "prod")
FUNCTIONS[numpy.max] = FUNCTIONS[numpy.amax] = _reduce_binder(amax, "max")
FUNCTIONS[numpy.min] = FUNCTIONS[numpy.amin] = _reduce_binder(amin, "min")
UFUNC_METHODS[numpy.add, "reduce"] = numpy.sum
UFUNC_METHODS[numpy.multiply, "reduce"] = numpy.prod
UFUNC_METHODS[numpy.maximum, "reduce"] = numpy.max
UFUNC_METHODS[numpy.minimum, "reduce"] = numpy.min


@_binds(numpy.mean)
def _mean(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("mean", out)
    if where is not _NoValue:
        raise TypeError("numpy.mean: where= is not supported on chainrule tensors")
    if dtype is not None:
        a = a.astype(dtype)
    return mean, (a,), {"axis": normalize_axis(axis, _ndim(a), "mean"), "keepdims": bool(keepdims)}


def _moment_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        ddof: float = 0,
        keepdims: bool = False,
        *,
        where: Any = _NoValue,
        mean: Any = _NoValue,
        correction: Any = _NoValue,
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(fname, out)
        if where is not _NoValue or mean is not _NoValue:
            raise TypeError(
                f"numpy.{fname}: where= and mean= are not supported on chainrule tensors"
            )
        if correction is not _NoValue:
            ddof = correction
        if dtype is not None:
            a = a.astype(dtype)
        return (
            prim,
            (a,),
            {
                "axis": normalize_axis(axis, _ndim(a), fname),
                "ddof": ddof,
                "keepdims": bool(keepdims),
            },
        )

    return bind


FUNCTIONS[numpy.var] = _moment_binder(var, "var")
FUNCTIONS[numpy.std] = _moment_binder(std, "std")

cumsum = Primitive("cumsum", numpy.cumsum)
cumprod = Primitive("cumprod", numpy.cumprod)


def _cumulative_binder(prim: Primitive, fname: str) -> Binder:
    def bind(
        a: Any, axis: Any = None, dtype: Any = None, out: Any = None
    ) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
        _no_out(fname, out)
        if dtype is not None:
            a = a.astype(dtype)
        if axis is None:
            a = ravel_like(a)
            axis = 0
        return prim, (a,), {"axis": normalize_axis(axis, _ndim(a), fname)}

    return bind


FUNCTIONS[numpy.cumsum] = _cumulative_binder(cumsum, "cumsum")
FUNCTIONS[numpy.cumprod] = _cumulative_binder(cumprod, "cumprod")
UFUNC_METHODS[numpy.add, "accumulate"] = lambda a, axis=0, dtype=None, out=None: numpy.cumsum(
    a, axis=axis, dtype=dtype, out=out
)
UFUNC_METHODS[numpy.multiply, "accumulate"] = lambda a, axis=0, dtype=None, out=None: numpy.cumprod(
    a, axis=axis, dtype=dtype, out=out
)


def ravel_like(a: Any) -> Any:
    """``a.reshape(-1)`` written so that it works on arrays and tensors alike."""
    return numpy.reshape(a, (-1,))


norm = Primitive("linalg.norm", numpy.linalg.norm)


@_binds(numpy.linalg.norm)
def _norm(
    x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(x)
    ax = normalize_axis(axis, nd, "linalg.norm")
    vector = (
        (ax is None and nd == 1) or isinstance(ax, int) or (isinstance(ax, tuple) and len(ax) == 1)
    )
    if isinstance(ax, tuple) and len(ax) == 1:
        ax = ax[0]
    if vector:
        if ord is not None and not isinstance(ord, (int, float)):
            raise TypeError(f"numpy.linalg.norm: ord={ord!r} is not a vector norm")
    elif ord not in (None, "fro"):
        raise TypeError(
            f"numpy.linalg.norm: only the Frobenius norm (ord=None or 'fro') has a "
            f"gradient rule for matrices, got ord={ord!r}; compute other matrix "
            "norms from numpy.linalg.svd outside the graph or write them from "
            "differentiable operations"
        )
    if nd == 0:
        raise ValueError("numpy.linalg.norm: needs at least a 1-d input")
    return norm, (x,), {"ord": ord, "axis": ax, "keepdims": bool(keepdims)}


# --- linear algebra ------------------------------------------------------------------------------


def _dot_fun(a: Any, b: Any) -> Any:
    # ndarray.dot is numpy.dot without the __array_function__ dispatch (0.6 us less per call)
    return a.dot(b) if type(a) is numpy.ndarray else numpy.dot(a, b)


dot = Primitive("dot", _dot_fun)
vdot = Primitive("vdot", numpy.vdot)
inner = Primitive("inner", numpy.inner)
outer = Primitive("outer", numpy.outer)
tensordot = Primitive("tensordot", numpy.tensordot)
einsum = Primitive(
    "einsum",
    lambda *ops, subscripts, optimize=False: numpy.einsum(subscripts, *ops, optimize=optimize),
)
trace = Primitive("trace", numpy.trace)
diagonal = Primitive("diagonal", numpy.diagonal)


def _scalar_as_array(a: Any, b: Any) -> tuple[Any, Any]:
    scalar = (int, float, complex)
    return (
        numpy.asarray(a) if isinstance(a, scalar) else a,
        numpy.asarray(b) if isinstance(b, scalar) else b,
    )


@_binds(numpy.dot)
def _dot(a: Any, b: Any, out: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("dot", out)
    if isinstance(a, (int, float, complex)) or isinstance(b, (int, float, complex)):
        # NumPy: dot with a scalar is multiply, the scalar taken as an array (not a weak scalar)
        return multiply, _scalar_as_array(a, b), {}
    return dot, (a, b), {}


@_binds(numpy.vdot)
def _vdot(a: Any, b: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return vdot, (a, b), {}


@_binds(numpy.inner)
def _inner(a: Any, b: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if isinstance(a, (int, float, complex)) or isinstance(b, (int, float, complex)):
        return multiply, _scalar_as_array(a, b), {}  # as NumPy does, like dot
    return inner, (a, b), {}


@_binds(numpy.outer)
def _outer(a: Any, b: Any, out: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("outer", out)
    return outer, (a, b), {}


def tensordot_axes(axes: Any, nda: int, ndb: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Normalise ``tensordot``'s ``axes`` argument to two tuples of non-negative axes."""
    if isinstance(axes, int):
        return tuple(range(nda - axes, nda)), tuple(range(axes))
    a_axes, b_axes = axes
    a_axes = (a_axes,) if isinstance(a_axes, int) else tuple(a_axes)
    b_axes = (b_axes,) if isinstance(b_axes, int) else tuple(b_axes)
    if len(a_axes) != len(b_axes):
        raise ValueError(f"tensordot: axes {axes!r} pair up unequal numbers of axes")
    return (
        tuple(_one_axis(a, nda, "tensordot") for a in a_axes),
        tuple(_one_axis(b, ndb, "tensordot") for b in b_axes),
    )


@_binds(numpy.tensordot)
def _tensordot(a: Any, b: Any, axes: Any = 2) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return tensordot, (a, b), {"axes": tensordot_axes(axes, _ndim(a), _ndim(b))}


@_binds(numpy.einsum)
def _einsum(
    *operands: Any, out: Any = None, optimize: Any = False, **kwargs: Any
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("einsum", out)
    if kwargs:
        raise TypeError(f"numpy.einsum: {sorted(kwargs)} are not supported on chainrule tensors")
    if not operands or not isinstance(operands[0], str):
        raise TypeError(
            "numpy.einsum: chainrule supports the subscripts-string form, "
            "e.g. numpy.einsum('ij,jk->ik', a, b)"
        )
    subscripts = explicit_einsum(operands[0], [_ndim(o) for o in operands[1:]])
    return einsum, tuple(operands[1:]), {"subscripts": subscripts, "optimize": optimize}


def explicit_einsum(spec: str, ndims: list[int]) -> str:
    """Rewrite an einsum spec with '->' and without '...', so rules can read it letter by letter."""
    spec = spec.replace(" ", "")
    ins, arrow, outs = spec.partition("->")
    terms = ins.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum: {spec!r} names {len(terms)} operands, got {len(ndims)}")
    used = set(spec) - set(",.->")
    free = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
    n_ell = max(
        (nd - len(t.replace("...", "")) for t, nd in zip(terms, ndims) if "..." in t), default=0
    )
    ell = "".join(next(free) for _ in range(n_ell))
    new_terms = []
    for t, nd in zip(terms, ndims):
        if "..." in t:
            k = nd - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k :])
        if len(t) != nd:
            raise ValueError(
                f"einsum: term {t!r} of {spec!r} does not match an operand with {nd} dimensions"
            )
        new_terms.append(t)
    if arrow:
        out = outs.replace("...", ell)
    else:
        counts: dict[str, int] = {}
        for c in "".join(new_terms):
            counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return ",".join(new_terms) + "->" + out


@_binds(numpy.trace)
def _trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("trace", out)
    nd = _ndim(a)
    return (
        trace,
        (a,),
        {
            "offset": int(offset),
            "axis1": _one_axis(axis1, nd, "trace"),
            "axis2": _one_axis(axis2, nd, "trace"),
        },
    )


@_binds(numpy.diagonal)
def _diagonal(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(a)
    return (
        diagonal,
        (a,),
        {
            "offset": int(offset),
            "axis1": _one_axis(axis1, nd, "diagonal"),
            "axis2": _one_axis(axis2, nd, "diagonal"),
        },
    )


# --- shape manipulation --------------------------------------------------------------------------

reshape = Primitive("reshape", numpy.reshape)
transpose = Primitive("transpose", numpy.transpose)
swapaxes = Primitive("swapaxes", numpy.swapaxes)
moveaxis = Primitive("moveaxis", numpy.moveaxis)


def _broadcast_to_fun(x: Any, shape: tuple[int, ...]) -> Any:
    # numpy.broadcast_to's values; a small copy is cheaper than its view machinery
    x = numpy.asarray(x)
    if x.shape == shape:
        return x
    if math.prod(shape) > 4096:
        return numpy.broadcast_to(x, shape)
    out = numpy.empty(shape, dtype=x.dtype)
    numpy.copyto(out, x)
    return out


broadcast_to = Primitive("broadcast_to", _broadcast_to_fun)
concatenate = Primitive("concatenate", lambda *xs, axis=0: numpy.concatenate(xs, axis=axis))
stack = Primitive("stack", lambda *xs, axis=0: numpy.stack(xs, axis=axis))
flip = Primitive("flip", numpy.flip)
roll = Primitive("roll", numpy.roll)
tile = Primitive("tile", numpy.tile)
repeat = Primitive("repeat", numpy.repeat)
pad = Primitive("pad", numpy.pad)
take = Primitive("take", numpy.take)
take_along_axis = Primitive("take_along_axis", numpy.take_along_axis)
sort = Primitive("sort", numpy.sort)
triu = Primitive("triu", numpy.triu)
tril = Primitive("tril", numpy.tril)
where = Primitive("where", numpy.where)
clip = Primitive("clip", numpy.clip)
getitem = Primitive("getitem", lambda x, index: x[index])
astype = Primitive("astype", lambda x, dtype: x.astype(dtype))
copy = Primitive("copy", numpy.copy)


def _assign(x: Any, v: Any, index: Any) -> Any:
    y = numpy.array(x, copy=True)
    y[index] = v
    return y


# ``t[index] = v`` recorded as a functional update: a new array, ``x`` itself untouched.
setitem = Primitive("setitem", _assign)
# Marks where a differentiated argument enters a function (``grad`` of ``grad``): no work.
identity = Primitive("identity", lambda x: x)


def _scatter_add(g: Any, index: Any, shape: tuple[int, ...], unique: bool) -> Any:
    out = numpy.zeros(shape, dtype=g.dtype)
    if unique:
        out[index] = g
    else:
        numpy.add.at(out, index, g)
    return out


# The gradient of indexing: ``g`` added into zeros of ``shape`` at ``index``.  ``unique`` says
# that no position repeats (basic indices: ints and slices; permutations), so that a plain
# assignment is exact; other advanced indices accumulate with ``numpy.add.at``.
scatter_add = Primitive("scatter_add", _scatter_add)


def _by_sort(v: Any, x: Any, axis: int) -> Any:
    return numpy.take_along_axis(v, numpy.argsort(x, axis=axis, kind="stable"), axis=axis)


def _undo_sort(v: Any, x: Any, axis: int) -> Any:
    out = numpy.empty_like(v)
    numpy.put_along_axis(out, numpy.argsort(x, axis=axis, kind="stable"), v, axis=axis)
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
    return x[fill_index(template, ix)]


def _scatter(g: Any, *ix: Any, template: tuple[Any, ...], shape: tuple[int, ...]) -> Any:
    out = numpy.zeros(shape, dtype=numpy.asarray(g).dtype)
    numpy.add.at(out, fill_index(template, ix), g)
    return out


# Indexing by integer arrays that are themselves computed (inputs of a traced function, like
# the labels in ``logp[rows, y]``): the index arrays are inputs of the operation, so a trace
# keeps them as variables instead of freezing today's values.
gather = Primitive("gather", _gather)
scatter = Primitive("scatter", _scatter)


def _check_shape(shape: Any, fname: str) -> tuple[int, ...]:
    try:
        return (operator.index(shape),)
    except TypeError:
        try:
            return tuple(operator.index(s) for s in shape)
        except TypeError:
            raise TypeError(
                f"{fname}: shape must be an int or a sequence of ints, got {shape!r}"
            ) from None


@_binds(numpy.reshape)
def _reshape(
    a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None, copy: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if order != "C":
        raise TypeError("numpy.reshape: only order='C' is supported on chainrule tensors")
    shape = newshape if shape is None else shape
    return reshape, (a,), {"shape": resolve_shape(_shape(a), _check_shape(shape, "reshape"))}


def resolve_shape(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...]:
    """Return ``new`` with its -1 filled in, or raise NumPy's error for an impossible reshape."""
    size = math.prod(old)
    if -1 in new:
        known = math.prod(n for n in new if n != -1)
        if new.count(-1) == 1 and known and size % known == 0:
            new = tuple(size // known if n == -1 else n for n in new)
    if math.prod(new) != size or any(n < 0 for n in new):
        raise ValueError(
            f"reshape: cannot reshape an array of size {size} (shape {old}) into shape {new}"
        )
    return new


@_binds(numpy.ravel)
def _ravel(a: Any, order: str = "C") -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return _reshape(a, (-1,), order)


@_binds(numpy.squeeze)
def _squeeze(a: Any, axis: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    shape = _shape(a)
    ax = normalize_axis(axis, len(shape), "squeeze")
    axes = (ax,) if isinstance(ax, int) else ax
    if axes is None:
        new = tuple(n for n in shape if n != 1)
    else:
        for i in axes:
            if shape[i] != 1:
                raise ValueError(
                    f"squeeze: cannot select axis {i} of shape {shape}: its size is not 1"
                )
        new = tuple(n for i, n in enumerate(shape) if i not in axes)
    return reshape, (a,), {"shape": new}


@_binds(numpy.expand_dims)
def _expand_dims(a: Any, axis: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    shape = _shape(a)
    axes = normalize_axis(
        axis, len(shape) + (len(axis) if isinstance(axis, (tuple, list)) else 1), "expand_dims"
    )
    new = list(shape)
    for ax in (axes,) if isinstance(axes, int) else axes or ():
        new.insert(ax, 1)
    return reshape, (a,), {"shape": tuple(new)}


def _atleast(nd: int) -> Callable[..., Any]:
    def bind(*arys: Any) -> Any:
        outs = []
        for a in arys:
            shape = _shape(a)
            if len(shape) >= nd:
                outs.append(a)
                continue
            if nd == 1:
                new: tuple[int, ...] = (1,)
            elif nd == 2:
                new = (1,) * (2 - len(shape)) + shape
            else:
                new = {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)]
            outs.append(numpy.reshape(a, new))
        return outs[0] if len(outs) == 1 else tuple(outs)

    return bind


COMPOSITES[numpy.atleast_1d] = _atleast(1)
COMPOSITES[numpy.atleast_2d] = _atleast(2)
COMPOSITES[numpy.atleast_3d] = _atleast(3)


@_binds(numpy.transpose)
def _transpose(a: Any, axes: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(a)
    if axes is None:
        axes = tuple(range(nd))[::-1]
    axes = tuple(_one_axis(x, nd, "transpose") for x in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of {nd} axes")
    return transpose, (a,), {"axes": axes}


@_binds(numpy.swapaxes)
def _swapaxes(a: Any, axis1: int, axis2: int) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    nd = _ndim(a)
    return (
        swapaxes,
        (a,),
        {"axis1": _one_axis(axis1, nd, "swapaxes"), "axis2": _one_axis(axis2, nd, "swapaxes")},
    )


@_binds(numpy.moveaxis)
def _moveaxis(
    a: Any, source: Any, destination: Any
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return moveaxis, (a,), {"source": source, "destination": destination}


@_binds(numpy.broadcast_to)
def _broadcast_to(
    array: Any, shape: Any, subok: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return broadcast_to, (array,), {"shape": _check_shape(shape, "broadcast_to")}


@_binds(numpy.concatenate)
def _concatenate(
    arrays: Any, axis: Any = 0, out: Any = None, *, dtype: Any = None, casting: str = "same_kind"
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("concatenate", out)
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is None:
        arrays = tuple(ravel_like(a) for a in arrays)
        axis = 0
    if dtype is not None:
        arrays = tuple(a.astype(dtype) for a in arrays)
    return concatenate, arrays, {"axis": _one_axis(axis, _ndim(arrays[0]), "concatenate")}


@_binds(numpy.stack)
def _stack(
    arrays: Any, axis: int = 0, out: Any = None, *, dtype: Any = None, casting: str = "same_kind"
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("stack", out)
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array to stack")
    if dtype is not None:
        arrays = tuple(a.astype(dtype) for a in arrays)
    return stack, arrays, {"axis": _one_axis(axis, _ndim(arrays[0]) + 1, "stack")}


@_composite(numpy.vstack)
def _vstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    return numpy.concatenate([numpy.atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@_composite(numpy.hstack)
def _hstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    arrs = [numpy.atleast_1d(a) for a in tup]
    return numpy.concatenate(arrs, axis=0 if arrs and numpy.ndim(arrs[0]) == 1 else 1, dtype=dtype)


@_composite(numpy.dstack)
def _dstack(tup: Any) -> Any:
    return numpy.concatenate([numpy.atleast_3d(a) for a in tup], axis=2)


@_composite(numpy.column_stack)
def _column_stack(tup: Any) -> Any:
    return numpy.concatenate(
        [a if numpy.ndim(a) >= 2 else numpy.reshape(a, (-1, 1)) for a in tup], axis=1
    )


def _split_points(n: int, sections: Any, fname: str, even: bool) -> list[int]:
    if isinstance(sections, int) or numpy.ndim(sections) == 0:
        k = operator.index(sections)
        if k <= 0:
            raise ValueError(f"{fname}: number of sections must be larger than 0")
        if even and n % k:
            raise ValueError(
                f"{fname}: array split does not result in an equal division ({n} into {k})"
            )
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        return [sum(sizes[:i]) for i in range(k + 1)]
    cuts = [min(max(int(c) if c >= 0 else n + int(c), 0), n) for c in sections]
    return [0] + cuts + [n]


def _splitter(fname: str, even: bool) -> Callable[..., Any]:
    def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
        shape = _shape(ary)
        ax = _one_axis(axis, len(shape), fname)
        pts = _split_points(shape[ax], indices_or_sections, fname, even)
        lead = (slice(None),) * ax
        return [ary[lead + (slice(a, max(a, b)),)] for a, b in zip(pts[:-1], pts[1:])]

    return split


COMPOSITES[numpy.split] = _splitter("split", True)
COMPOSITES[numpy.array_split] = _splitter("array_split", False)


sliding_window_view = Primitive("sliding_window_view", numpy.lib.stride_tricks.sliding_window_view)


@_binds(numpy.lib.stride_tricks.sliding_window_view)
def _sliding_window_view(
    x: Any, window_shape: Any, axis: Any = None, *, subok: bool = False, writeable: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if writeable:
        raise TypeError("sliding_window_view: writeable=True is not supported on tensors")
    nd = _ndim(x)
    window = _check_shape(window_shape, "sliding_window_view")
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = tuple(
            _one_axis(a, nd, "sliding_window_view")
            for a in ((axis,) if isinstance(axis, int) else axis)
        )
    if len(axes) != len(window):
        raise ValueError(
            f"sliding_window_view: window_shape {window} and axis {axis!r} "
            "must have the same length"
        )
    return sliding_window_view, (x,), {"window_shape": window, "axis": axes}


@_binds(numpy.flip)
def _flip(m: Any, axis: Any = None) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return flip, (m,), {"axis": normalize_axis(axis, _ndim(m), "flip")}


@_composite(numpy.fliplr)
def _fliplr(m: Any) -> Any:
    return numpy.flip(m, axis=1)


@_composite(numpy.flipud)
def _flipud(m: Any) -> Any:
    return numpy.flip(m, axis=0)


@_binds(numpy.roll)
def _roll(
    a: Any, shift: Any, axis: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return roll, (a,), {"shift": shift, "axis": axis}


@_binds(numpy.tile)
def _tile(A: Any, reps: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    reps = _check_shape(reps, "tile")
    return tile, (A,), {"reps": reps}


@_binds(numpy.repeat)
def _repeat(
    a: Any, repeats: Any, axis: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if axis is None:
        a = ravel_like(a)
        axis = 0
    reps = repeats.data if hasattr(repeats, "_prim") else repeats
    reps = int(reps) if numpy.ndim(reps) == 0 else tuple(int(r) for r in numpy.ravel(reps))
    return repeat, (a,), {"repeats": reps, "axis": _one_axis(axis, _ndim(a), "repeat")}


@_binds(numpy.pad)
def _pad(
    array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if mode != "constant":
        raise TypeError(
            f"numpy.pad: mode={mode!r} has no gradient rule; only "
            "mode='constant' is supported on chainrule tensors"
        )
    nd = _ndim(array)
    width = tuple(
        tuple(int(w) for w in row)
        for row in numpy.broadcast_to(numpy.asarray(pad_width, dtype=int), (nd, 2))
    )
    cv = kwargs.pop("constant_values", 0)
    if kwargs:
        raise TypeError(f"numpy.pad: unexpected arguments {sorted(kwargs)}")
    if numpy.ndim(cv) != 0:
        raise TypeError("numpy.pad: chainrule supports one scalar constant_values")
    return pad, (array,), {"pad_width": width, "constant_values": cv}


def _plain_index(ix: Any) -> Any:
    """Indices are never differentiated: unwrap tensors used as indices."""
    return ix.data if hasattr(ix, "_prim") else ix


@_binds(numpy.take)
def _take(
    a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise"
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("take", out)
    if mode != "raise":
        raise TypeError("numpy.take: only mode='raise' is supported on chainrule tensors")
    if axis is None:
        a = ravel_like(a)
        axis = 0
    ax = _one_axis(axis, _ndim(a), "take")
    if hasattr(indices, "_prim"):  # computed indices: keep them an input (see gather)
        return gather, (a, indices), {"template": (slice(None),) * ax + (Slot(0),)}
    return take, (a,), {"indices": _plain_index(indices), "axis": ax}


@_binds(numpy.take_along_axis)
def _take_along_axis(
    arr: Any, indices: Any, axis: Any = -1
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if axis is None:
        arr = ravel_like(arr)
        axis = 0
    ax = _one_axis(axis, _ndim(arr), "take_along_axis")
    if hasattr(indices, "_prim"):  # computed indices: keep them an input (see gather)
        a_shape, i_shape = _shape(arr), _shape(indices)
        nd = len(a_shape)
        template = tuple(
            Slot(0)
            if d == ax
            else numpy.arange(max(a_shape[d], i_shape[d])).reshape(
                (1,) * d + (-1,) + (1,) * (nd - d - 1)
            )
            for d in range(nd)
        )
        return gather, (arr, indices), {"template": template}
    return take_along_axis, (arr,), {"indices": _plain_index(indices), "axis": ax}


@_binds(numpy.sort)
def _sort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if axis is None:
        a = ravel_like(a)
        axis = 0
    return sort, (a,), {"axis": _one_axis(axis, _ndim(a), "sort"), "kind": "stable"}


@_binds(numpy.triu)
def _triu(m: Any, k: int = 0) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return triu, (m,), {"k": int(k)}


@_binds(numpy.tril)
def _tril(m: Any, k: int = 0) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return tril, (m,), {"k": int(k)}


@_binds(numpy.where)
def _where(
    condition: Any, x: Any = _NoValue, y: Any = _NoValue
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    if x is _NoValue or y is _NoValue:
        raise TypeError(
            "numpy.where with one argument returns indices; call it on "
            "tensor.data (indices carry no gradient)"
        )
    return where, (condition, x, y), {}


@_binds(numpy.clip)
def _clip(
    a: Any,
    a_min: Any = _NoValue,
    a_max: Any = _NoValue,
    out: Any = None,
    *,
    min: Any = _NoValue,
    max: Any = _NoValue,
    **kwargs: Any,
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _no_out("clip", out)
    lo = a_min if a_min is not _NoValue else (None if min is _NoValue else min)
    hi = a_max if a_max is not _NoValue else (None if max is _NoValue else max)
    if lo is None and hi is None:
        raise ValueError("numpy.clip: give at least one of a_min and a_max")
    return clip, (a, lo, hi), {}


@_binds(numpy.copy)
def _copy(
    a: Any, order: str = "K", subok: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    return copy, (a,), {}


# --- solving and inverting (stacks of square matrices, as numpy.linalg takes them) -------------

inv = Primitive("linalg.inv", numpy.linalg.inv)
solve = Primitive("linalg.solve", numpy.linalg.solve)
det = Primitive("linalg.det", numpy.linalg.det)
# slogdet's two results: log|det| (differentiable) and the sign (piecewise constant).
logabsdet = Primitive("linalg.logabsdet", lambda a: numpy.linalg.slogdet(a)[1])
detsign = Primitive("linalg.detsign", lambda a: numpy.linalg.slogdet(a)[0], nondiff=True)
_SlogdetResult = type(numpy.linalg.slogdet(numpy.eye(1)))


def _square_stack(a: Any, fname: str) -> None:
    shape = _shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise numpy.linalg.LinAlgError(
            f"numpy.linalg.{fname}: needs a square matrix or a stack of them (shape "
            f"(..., n, n)), got shape {shape}"
        )


@_binds(numpy.linalg.inv)
def _inv(a: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "inv")
    return inv, (a,), {}


@_binds(numpy.linalg.solve)
def _solve(a: Any, b: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "solve")
    return solve, (a, b), {}


@_binds(numpy.linalg.det)
def _det(a: Any) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "det")
    return det, (a,), {}


cholesky = Primitive("linalg.cholesky", numpy.linalg.cholesky)


@_binds(numpy.linalg.cholesky)
def _cholesky(
    a: Any, /, *, upper: bool = False
) -> tuple[Primitive, tuple[Any, ...], dict[str, Any]]:
    _square_stack(a, "cholesky")
    if upper:
        raise TypeError(
            "numpy.linalg.cholesky: upper=True is not supported on chainrule "
            "tensors; take the transpose of the lower factor"
        )
    return cholesky, (a,), {}


# eigh's two results as two primitives (each rule needs the other result, which it asks for by
# calling the other primitive, so higher derivatives stay exact).  eigvalsh is a third: LAPACK
# computes eigenvalues alone differently, so its last bits differ from eigh's.
eigvalsh = Primitive("linalg.eigvalsh", numpy.linalg.eigvalsh)
eighvals = Primitive("linalg.eigh.eigenvalues", lambda a: numpy.linalg.eigh(a)[0])
eigvecsh = Primitive("linalg.eigh.eigenvectors", lambda a: numpy.linalg.eigh(a)[1])
_EighResult = type(numpy.linalg.eigh(numpy.eye(1)))


def _lower_only(a: Any, fname: str, uplo: str) -> None:
    _square_stack(a, fname)
    if uplo != "L":
        raise TypeError(
            f"numpy.linalg.{fname}: only UPLO='L' (the default) is supported on "
            "chainrule tensors; pass the transpose for the upper triangle"
        )


@_composite(numpy.linalg.eigvalsh)
def _eigvalsh(a: Any, UPLO: str = "L") -> Any:  # noqa: N803 (NumPy's name)
    _lower_only(a, "eigvalsh", UPLO)
    return eigvalsh(a)


@_composite(numpy.linalg.eigh)
def _eigh(a: Any, UPLO: str = "L") -> Any:  # noqa: N803 (NumPy's name)
    _lower_only(a, "eigh", UPLO)
    return _EighResult(eighvals(a), eigvecsh(a))


@_composite(numpy.linalg.slogdet)
def _slogdet(a: Any) -> Any:
    _square_stack(a, "slogdet")
    return _SlogdetResult(detsign(a), logabsdet(a))


# Functions NumPy defines in terms of the above, given here so each needs no rule of its own.

# The NaN-ignoring reductions, as NumPy's nanfunctions compute them: NaNs replaced by the
# reduction's identity (no gradient reaches them), counts of the others as plain integers.


def _nan_args(fname: str, out: Any, extra: dict[str, Any]) -> None:
    _no_out(fname, out)
    for k, v in extra.items():
        if v is not _NoValue and v is not None:
            raise TypeError(f"numpy.{fname}: {k}= is not supported on chainrule tensors")


def _isnan(a: Any) -> Any:
    return numpy.isnan(a) if numpy.dtype(_dtype(a)).kind in "fc" else None


def _dtype(a: Any) -> Any:
    return (a.data if hasattr(a, "_prim") else numpy.asarray(a)).dtype


def _per_count(total: Any, cnt: Any) -> Any:
    # NumPy divides by the integer count in float64 and casts back (_divide_by_count)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        q = total / cnt
    return q if _dtype(q) == _dtype(total) else q.astype(_dtype(total))


def _nan_fold(fname: str, reduce: Callable[..., Any], identity: int) -> Callable[..., Any]:
    """numpy.nansum / nanprod: the reduction with each NaN replaced by its identity."""

    def fold(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = _NoValue,
        where: Any = _NoValue,
    ) -> Any:
        _nan_args(fname, out, {"initial": initial, "where": where})
        mask = _isnan(a)
        arr = a if mask is None else numpy.where(mask, identity, a)
        return reduce(arr, axis=axis, dtype=dtype, keepdims=keepdims)

    return fold


COMPOSITES[numpy.nansum] = _nan_fold("nansum", numpy.sum, 0)
COMPOSITES[numpy.nanprod] = _nan_fold("nanprod", numpy.prod, 1)


@_composite(numpy.nanmean)
def _nanmean(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
) -> Any:
    _nan_args("nanmean", out, {"where": where, "dtype": dtype})
    mask = _isnan(a)
    if mask is None:
        return numpy.mean(a, axis=axis, keepdims=keepdims)
    cnt = numpy.sum(~mask, axis=axis, dtype=numpy.intp, keepdims=keepdims)
    tot = numpy.sum(numpy.where(mask, 0, a), axis=axis, keepdims=keepdims)
    return _per_count(tot, cnt)


def _nan_extreme(reduce: Callable[..., Any], fill: float, a: Any, axis: Any, keepdims: bool) -> Any:
    mask = _isnan(a)
    if mask is None:
        return reduce(a, axis=axis, keepdims=keepdims)
    best = reduce(numpy.where(mask, fill, a), axis=axis, keepdims=keepdims)
    empty = numpy.all(mask, axis=axis, keepdims=keepdims)  # an all-NaN slice gives NaN
    return numpy.where(empty, numpy.nan, best)  # no branch on values: jit traces this too


@_composite(numpy.nanmax)
def _nanmax(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = _NoValue,
    where: Any = _NoValue,
) -> Any:
    _nan_args("nanmax", out, {"initial": initial, "where": where})
    return _nan_extreme(numpy.max, -numpy.inf, a, axis, keepdims)


@_composite(numpy.nanmin)
def _nanmin(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = _NoValue,
    where: Any = _NoValue,
) -> Any:
    _nan_args("nanmin", out, {"initial": initial, "where": where})
    return _nan_extreme(numpy.min, numpy.inf, a, axis, keepdims)


@_composite(numpy.nanvar)
def _nanvar(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
    mean: Any = _NoValue,
    correction: Any = _NoValue,
) -> Any:
    _nan_args(
        "nanvar", out, {"where": where, "dtype": dtype, "mean": mean, "correction": correction}
    )
    mask = _isnan(a)
    if mask is None:
        return numpy.var(a, axis=axis, ddof=ddof, keepdims=keepdims)
    # NumPy's steps: the mean of the others, squared deviations with NaNs as 0, / (count - ddof)
    cnt = numpy.sum(~mask, axis=axis, dtype=numpy.intp, keepdims=True)
    arr = numpy.where(mask, 0, a)
    avg = _per_count(numpy.sum(arr, axis=axis, keepdims=True), cnt)
    dev = numpy.where(mask, 0, arr - avg)
    var = numpy.sum(dev * dev, axis=axis, keepdims=keepdims)
    dof = (cnt if keepdims else numpy.squeeze(cnt, axis=axis)) - ddof
    var = _per_count(var, dof)
    return numpy.where(dof <= 0, numpy.nan, var)


@_composite(numpy.nanstd)
def _nanstd(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
    mean: Any = _NoValue,
    correction: Any = _NoValue,
) -> Any:
    return numpy.sqrt(
        _nanvar(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction)
    )


@_composite(numpy.sinc)
def _sinc(x: Any) -> Any:
    y = numpy.pi * numpy.where(x == 0, 1.0e-20, x)  # NumPy's own formula
    return numpy.sin(y) / y


@_composite(numpy.nan_to_num)
def _nan_to_num(
    x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None
) -> Any:
    dt = numpy.dtype(_dtype(x))
    if dt.kind != "f":
        if dt.kind == "c":
            raise TypeError("numpy.nan_to_num: complex tensors are not supported")
        return x
    info = numpy.finfo(dt)
    big = info.max if posinf is None else posinf
    small = info.min if neginf is None else neginf
    y = numpy.where(numpy.isnan(x), nan, x)
    inf = numpy.isinf(x)
    return numpy.where(inf & (x > 0), big, numpy.where(inf & (x < 0), small, y))


@_composite(numpy.rot90)
def _rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    nd = _ndim(m)
    if len(axes) != 2 or nd < 2:
        raise ValueError("numpy.rot90: needs two axes of an array of at least 2 dimensions")
    a0, a1 = (_one_axis(a, nd, "rot90") for a in axes)
    if a0 == a1:
        raise ValueError("numpy.rot90: the axes must be different")
    k %= 4
    if k == 0:
        return m[...]
    if k == 2:
        return numpy.flip(numpy.flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return numpy.transpose(numpy.flip(m, a1), perm)
    return numpy.flip(numpy.transpose(m, perm), a1)


@_composite(numpy.append)
def _append(arr: Any, values: Any, axis: Any = None) -> Any:
    if axis is None:
        return numpy.concatenate([numpy.ravel(arr), numpy.ravel(values)], axis=0)
    return numpy.concatenate([arr, values], axis=axis)


@_composite(numpy.delete)
def _delete(arr: Any, obj: Any, axis: Any = None) -> Any:
    if axis is None:
        arr, axis = numpy.ravel(arr), 0
    ax = _one_axis(axis, _ndim(arr), "delete")
    keep = numpy.ones(_shape(arr)[ax], dtype=bool)
    keep[obj] = False
    return numpy.take(arr, numpy.flatnonzero(keep), axis=ax)


@_composite(numpy.ediff1d)
def _ediff1d(ary: Any, to_end: Any = None, to_begin: Any = None) -> Any:
    flat = numpy.ravel(ary)
    parts = [flat[1:] - flat[:-1]]
    if to_begin is not None:
        parts.insert(0, numpy.ravel(to_begin))
    if to_end is not None:
        parts.append(numpy.ravel(to_end))
    return numpy.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


@_composite(numpy.trapezoid)
def _trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Any:
    nd = _ndim(y)
    ax = _one_axis(axis, nd, "trapezoid")
    d: Any
    if x is None:
        d = dx
    elif _ndim(x) == 1:
        d = numpy.diff(x)
        d = numpy.reshape(d, tuple(_shape(d)[0] if i == ax else 1 for i in range(nd)))
    else:
        d = numpy.diff(x, axis=ax)
    hi = (slice(None),) * ax + (slice(1, None),)
    lo = (slice(None),) * ax + (slice(None, -1),)
    return numpy.sum(d * (y[hi] + y[lo]) / 2.0, axis=ax)


@_composite(numpy.polyval)
def _polyval(p: Any, x: Any) -> Any:
    # Horner's scheme, as NumPy evaluates it from y = zeros_like(x) (0 * x: the same values)
    n = _shape(p)[0]
    if n == 0:
        return numpy.zeros_like(x)
    y = 0 * x + p[0]
    for i in range(1, n):
        y = y * x + p[i]
    return y


@_composite(numpy.broadcast_arrays)
def _broadcast_arrays(*args: Any, subok: bool = False) -> Any:
    shape = numpy.broadcast_shapes(*(_shape(a) for a in args))
    return tuple(numpy.broadcast_to(a, shape) for a in args)


@_composite(numpy.meshgrid)
def _meshgrid(*xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy") -> Any:
    if indexing not in ("xy", "ij"):
        raise ValueError("numpy.meshgrid: indexing must be 'xy' or 'ij'")
    nd = len(xi)
    one = (1,) * nd
    out = [numpy.reshape(x, one[:i] + (-1,) + one[i + 1 :]) for i, x in enumerate(xi)]
    if indexing == "xy" and nd > 1:
        out[0] = numpy.reshape(out[0], (1, -1) + one[2:])
        out[1] = numpy.reshape(out[1], (-1, 1) + one[2:])
    if not sparse:
        out = list(_broadcast_arrays(*out))
    return tuple(numpy.copy(x) if copy else x for x in out)


@_composite(numpy.kron)
def _kron(a: Any, b: Any) -> Any:
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return numpy.multiply(a, b)
    nd = max(na, nb)
    sa = (1,) * (nd - na) + _shape(a)
    sb = (1,) * (nd - nb) + _shape(b)
    pa = numpy.reshape(a, tuple(v for n in sa for v in (n, 1)))
    pb = numpy.reshape(b, tuple(v for n in sb for v in (1, n)))
    return numpy.reshape(pa * pb, tuple(x * y for x, y in zip(sa, sb)))


@_composite(numpy.linalg.matrix_power)
def _matrix_power(a: Any, n: int) -> Any:
    _square_stack(a, "matrix_power")
    if not isinstance(n, (int, numpy.integer)):
        raise TypeError("numpy.linalg.matrix_power: the exponent must be an integer")
    if n == 0:
        return numpy.broadcast_to(numpy.eye(_shape(a)[-1], dtype=_dtype(a)), _shape(a)).copy()
    if n < 0:
        a, n = numpy.linalg.inv(a), -n
    if n == 1:
        return a[...]
    if n == 2:
        return a @ a
    if n == 3:
        return (a @ a) @ a
    # NumPy's binary decomposition, so the products (and their rounding) are the same
    z = result = None
    while n > 0:
        z = a if z is None else z @ z
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else result @ z
    return result


@_composite(numpy.median)
def _median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    _no_out("median", out)
    if axis is None:
        a, axis = numpy.ravel(a), 0
    elif not isinstance(axis, (int, numpy.integer)):
        raise TypeError("numpy.median: one axis (or None) on chainrule tensors")
    nd = _ndim(a)
    ax = _one_axis(axis, nd, "median")
    n = _shape(a)[ax]
    if n == 0:
        raise ValueError("numpy.median: an empty axis has no median")
    part = numpy.sort(a, axis=ax)
    mid = slice(n // 2, n // 2 + 1) if n % 2 else slice(n // 2 - 1, n // 2 + 1)
    rout = numpy.mean(part[(slice(None),) * ax + (mid,)], axis=ax, keepdims=keepdims)
    if numpy.dtype(_dtype(a)).kind in "fc":
        # a NaN anywhere in the slice gives NaN, as in NumPy (sorting puts NaNs last)
        last = part[(slice(None),) * ax + (slice(n - 1, n),)]
        nan = numpy.isnan(last if keepdims else numpy.squeeze(last, axis=ax))
        rout = numpy.where(nan, numpy.nan, rout)
    return rout


def _quantile_linear(
    fname: str, a: Any, q: numpy.ndarray, weak: bool, axis: Any, method: str, keepdims: bool
) -> Any:
    """NumPy's quantile with method="linear", step by step, on a sort (which has a gradient):
    the two neighbouring order statistics and NumPy's own two-sided interpolation formula."""
    if method != "linear":
        raise TypeError(
            f"numpy.{fname}: only method='linear' (the default) is supported on chainrule tensors"
        )
    if q.ndim > 1:
        raise ValueError(f"numpy.{fname}: q must be a scalar or 1d")
    if not (numpy.all(q >= 0) and numpy.all(q <= 1)):
        what = (
            "percentiles must be in [0, 100]"
            if fname == "percentile"
            else "quantiles must be in [0, 1]"
        )
        raise ValueError(f"numpy.{fname}: {what}")
    nd = _ndim(a)
    if axis is None:
        arr, kept = numpy.ravel(a), (1,) * nd
    else:
        if not isinstance(axis, (int, numpy.integer)):
            raise TypeError(f"numpy.{fname}: one axis (or None) on chainrule tensors")
        ax = _one_axis(axis, nd, fname)
        arr = numpy.moveaxis(a, ax, 0) if ax else a
        kept = _shape(a)[:ax] + (1,) + _shape(a)[ax + 1 :]
    n = _shape(arr)[0]
    if n == 0:
        raise ValueError(f"numpy.{fname}: an empty axis has no quantile")
    srt = numpy.sort(arr, axis=0)
    vi = numpy.asarray((n - 1) * q)
    prev = numpy.floor(vi)
    nxt = prev + 1
    prev = numpy.where(vi >= n - 1, -1, numpy.where(vi < 0, 0, prev)).astype(numpy.intp)
    nxt = numpy.where(vi >= n - 1, -1, numpy.where(vi < 0, 0, nxt)).astype(numpy.intp)
    lo, hi = srt[prev], srt[nxt]
    gamma = numpy.asarray(vi - prev, dtype=vi.dtype)
    diff = hi - lo
    t: Any
    if weak:
        t = float(gamma)
        res = hi - diff * (1 - t) if t >= 0.5 else lo + diff * t
    else:
        t = gamma.reshape(gamma.shape + (1,) * (_ndim(srt) - 1))
        res = numpy.where(t >= 0.5, hi - diff * (1 - t), lo + diff * t)
    if numpy.dtype(_dtype(a)).kind == "f":  # a slice with a NaN gives NaN (sorted last)
        res = numpy.where(numpy.isnan(srt[-1]), numpy.nan, res)
    return numpy.reshape(res, q.shape + kept) if keepdims else res


def _quantile_args(fname: str, q: Any, out: Any, weights: Any, interpolation: Any) -> None:
    _no_out(fname, out)
    if weights is not None or interpolation is not None:
        raise TypeError(
            f"numpy.{fname}: weights= and interpolation= are not supported on chainrule tensors"
        )
    if hasattr(q, "_prim"):
        raise TypeError(f"numpy.{fname}: q must be plain numbers (no gradient flows to q)")


@_composite(numpy.quantile)
def _quantile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    _quantile_args("quantile", q, out, weights, interpolation)
    weak = type(q) in (int, float)
    return _quantile_linear("quantile", a, numpy.asanyarray(q), weak, axis, method, keepdims)


@_composite(numpy.percentile)
def _percentile(
    a: Any,
    q: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    method: str = "linear",
    keepdims: bool = False,
    *,
    weights: Any = None,
    interpolation: Any = None,
) -> Any:
    _quantile_args("percentile", q, out, weights, interpolation)
    weak = type(q) in (int, float)
    q = numpy.true_divide(q, 100, out=...)
    return _quantile_linear("percentile", a, q, weak, axis, method, keepdims)


@_composite(numpy.cov)
def _cov(
    m: Any,
    y: Any = None,
    rowvar: bool = True,
    bias: bool = False,
    ddof: Any = None,
    fweights: Any = None,
    aweights: Any = None,
    *,
    dtype: Any = None,
) -> Any:
    if fweights is not None or aweights is not None:
        raise TypeError("numpy.cov: fweights= and aweights= are not supported on chainrule tensors")
    if ddof is not None and ddof != int(ddof):
        raise ValueError("numpy.cov: ddof must be an integer")
    dt = numpy.dtype(dtype) if dtype is not None else numpy.result_type(_dtype(m), numpy.float64)
    X = _at_least_rows(m, dt, rowvar)
    if y is not None:
        X = numpy.concatenate([X, _at_least_rows(y, dt, rowvar)], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    fact = _shape(X)[1] - ddof
    if fact <= 0:
        fact = 0.0
    X = X - numpy.mean(X, axis=1)[:, None]
    c = numpy.dot(X, X.T) * numpy.true_divide(1, fact)
    return numpy.squeeze(c)


def _at_least_rows(m: Any, dt: Any, rowvar: bool) -> Any:
    X = m if numpy.dtype(_dtype(m)) == dt else m.astype(dt)
    if _ndim(X) == 0:
        X = numpy.reshape(X, (1, 1))
    elif _ndim(X) == 1:
        X = numpy.reshape(X, (1, -1))
    elif _ndim(X) > 2:
        raise ValueError("numpy.cov: m has more than 2 dimensions")
    return X.T if not rowvar and _shape(X)[0] != 1 else X


@_composite(numpy.corrcoef)
def _corrcoef(x: Any, y: Any = None, rowvar: bool = True, *, dtype: Any = None) -> Any:
    c = _cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return c / c
    d = numpy.sqrt(numpy.diagonal(c))
    c = c / d[:, None]
    c = c / d[None, :]
    return numpy.clip(c, -1, 1)


@_composite(numpy.diff)
def _diff(
    a: Any, n: int = 1, axis: int = -1, prepend: Any = _NoValue, append: Any = _NoValue
) -> Any:
    # NumPy's own steps: join prepend/append, then n times a[1:] - a[:-1] along the axis
    if n < 0:
        raise ValueError(f"numpy.diff: order must be non-negative, got n={n}")
    nd = _ndim(a)
    if nd == 0:
        raise ValueError("numpy.diff: needs at least a 1-d input")
    ax = _one_axis(axis, nd, "diff")
    parts: list[Any] = []
    for extra in (prepend, append):
        if extra is _NoValue:
            parts.append(None)
            continue
        if _ndim(extra) == 0:
            shape = list(_shape(a))
            shape[ax] = 1
            extra = numpy.broadcast_to(extra, tuple(shape))
        parts.append(extra)
    if parts[0] is not None or parts[1] is not None:
        a = numpy.concatenate([x for x in (parts[0], a, parts[1]) if x is not None], axis=ax)
    hi = (slice(None),) * ax + (slice(1, None),)
    lo = (slice(None),) * ax + (slice(None, -1),)
    for _ in range(n):
        a = a[hi] - a[lo]
    return a


@_composite(numpy.average)
def _average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *, keepdims: bool = False
) -> Any:
    if weights is None:
        avg = numpy.mean(a, axis=axis, keepdims=keepdims)
        if returned:
            raise TypeError("numpy.average: returned=True is not supported on chainrule tensors")
        return avg
    if numpy.shape(weights) != numpy.shape(a):
        raise TypeError("numpy.average: weights must have the shape of a on chainrule tensors")
    num = numpy.sum(a * weights, axis=axis, keepdims=keepdims)
    return num / numpy.sum(weights, axis=axis, keepdims=keepdims)


@_composite(numpy.diag)
def _diag(v: Any, k: int = 0) -> Any:
    if numpy.ndim(v) == 2:
        return numpy.diagonal(v, offset=k)
    if numpy.ndim(v) != 1:
        raise ValueError("numpy.diag: input must be 1-d or 2-d")
    n = numpy.shape(v)[0] + abs(k)
    padded = numpy.pad(v, (0, abs(k)))
    mask = numpy.eye(n, k=k)
    if k >= 0:
        return numpy.reshape(padded, (n, 1)) * mask
    return numpy.reshape(padded, (1, n)) * mask


@_composite(numpy.cross)
def _cross(
    a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None
) -> Any:
    if axis is not None or axisa != -1 or axisb != -1 or axisc != -1:
        raise TypeError("numpy.cross: only the default axes are supported on chainrule tensors")
    a0, a1, a2 = (a[..., i] for i in range(3))
    b0, b1, b2 = (b[..., i] for i in range(3))
    return numpy.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


@_composite(numpy.linalg.multi_dot)
def _multi_dot(arrays: Any, *, out: Any = None) -> Any:
    _no_out("linalg.multi_dot", out)
    result = arrays[0]
    for m in arrays[1:]:
        result = numpy.dot(result, m)
    return result


@_composite(numpy.ptp)
def _ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    _no_out("ptp", out)
    return numpy.max(a, axis=axis, keepdims=keepdims) - numpy.min(a, axis=axis, keepdims=keepdims)


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
    shift = numpy.nan_to_num(numpy.max(x, axis=axis, keepdims=True))
    return numpy.log(
        numpy.sum(numpy.exp(x - shift), axis=axis, keepdims=keepdims)
    ) + numpy.nan_to_num(numpy.max(x, axis=axis, keepdims=keepdims))


def _softmax(x: Any, axis: Any) -> Any:
    e = numpy.exp(x - numpy.max(x, axis=axis, keepdims=True))
    return e / numpy.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: Any, axis: Any) -> Any:
    shifted = x - numpy.max(x, axis=axis, keepdims=True)
    return shifted - numpy.log(numpy.sum(numpy.exp(shifted), axis=axis, keepdims=True))


def _sigmoid(x: Any) -> Any:
    # exp(-softplus(-x)): logaddexp never overflows, exp(-large) underflows quietly to 0.
    return numpy.exp(-numpy.logaddexp(0, -x))


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
