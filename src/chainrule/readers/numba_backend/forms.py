"""How each primitive is spelled for Numba as an expression: ``(writer, value) -> (text,
precedence, layout of the result)``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy

from chainrule.engine import primitives as P
from chainrule.program.ir import CONST, Value
from chainrule.program.notation import ATOM, COMPARE, POWER, PRODUCT, UNARY

from .common import (
    _INFIX,
    Unsupported,
    _axes,
    _const,
    _dt,
    _dtype,
    _Expr,
    _is_basic,
    _need_scipy,
    _shape,
)
from .helpers import VECTORISED

if TYPE_CHECKING:  # the writer imports this table; the forms only receive one
    from .writer import NumbaWriter


# ---------------------------------------------------------------------------------------------
# Forms: (writer, value) -> (text, precedence, layout of the result)
# ---------------------------------------------------------------------------------------------

Handler = Callable[["NumbaWriter", Value], "tuple[str, int, str]"]
_FORMS: dict[P.Primitive, Handler] = {}


def _form(*prims: P.Primitive) -> Callable[[Handler], Handler]:
    def register(f: Handler) -> Handler:
        for p in prims:
            _FORMS[p] = f
        return f

    return register


# Functions whose NumPy loops are vectorised (SVML, or NumPy's own SIMD code) where Numba calls
# the C library once per element: 2000x16 exp, 21 us in NumPy against 142 us in Numba.  On
# arrays of at least NUMPY_LOOP_SIZE elements the kernel calls NumPy's (writer.numpy_loop).
_NUMPY_LOOPS = frozenset(
    """exp exp2 expm1 log log2 log10 log1p sinh cosh sin cos tan arcsin arccos arctan
    arcsinh arccosh arctanh""".split()
)
NUMPY_LOOP_SIZE = 1024
# ... and from fewer elements for the functions whose C library call costs most (the
# object-mode call costs about 1.5 us).  Below those sizes the kernel computes exp in arithmetic
# that vectorises (helpers.VECTORISED: 1.1 ns a value, NumPy's loop 0.9, the C library's 2.9),
# and tanh at any size (NumPy's loop is no faster than that arithmetic fused into the loop
# that reads it; 512 values: 0.55 us, the C library's 3.9).
_LOOP_FROM = {
    "cosh": 512,
    "expm1": 512,
    "log10": 512,
    "log1p": 512,
} | dict.fromkeys(("sinh", "tan", "arctan", "arcsinh", "arccosh", "arctanh"), 384)


def numpy_loop_from(name: str) -> int:
    """The number of elements from which the kernel calls NumPy's loop for ``name``.

    >>> numpy_loop_from("cosh"), numpy_loop_from("log")
    (512, 1024)
    """
    return _LOOP_FROM.get(name, NUMPY_LOOP_SIZE)


def _own(w: NumbaWriter, name: str, element: str, dtype: Any) -> str:
    """``name`` (one of helpers.VECTORISED) of one element by the kernel's own arithmetic:
    in float64, rounded once to ``dtype``."""
    call = f"{w.helper(f'_{name}64')}(numpy.float64({element}))"
    return w.to_dtype(call, numpy.float64, dtype, True)


def _ufunc_call(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    prim = v.prim
    assert prim is not None  # forms are looked up by primitive
    ctx = w.context(v)
    args = ", ".join(w.text(a, 0, ctx) for a in v.args)
    if v.kw:
        raise Unsupported(prim.name, f"keyword arguments {sorted(v.kw)}")
    if (
        prim.name in _NUMPY_LOOPS
        and not w.scalar_refs  # not inside a fused loop's term
        and len(v.args) == 1
        and math.prod(v.shape) >= numpy_loop_from(prim.name)
        and numpy.dtype(v.dtype).kind == "f"
        and _dtype(v.args[0]) == numpy.dtype(v.dtype)
    ):
        return f"{w.numpy_loop(prim.name, v.dtype, len(v.shape))}({args})", ATOM, "C"
    dt = numpy.dtype(v.dtype)
    if prim.name in VECTORISED and dt.kind == "f" and _dtype(v.args[0]) == dt:
        # the kernel's own arithmetic (helpers.VECTORISED), in a fused loop as on an array
        if v.shape == () or w.scalar_refs:
            return _own(w, prim.name, args, dt), ATOM, "C"
        w.helper(f"_{prim.name}64")
        return f"{w.helper(f'_{prim.name}_array')}({args})", ATOM, "C"
    return f"numpy.{prim.name}({args})", ATOM, "C"


def _infix(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    assert v.prim is not None  # forms are looked up by primitive
    op, prec = _INFIX[v.prim]
    ctx = w.context(v)
    if (
        v.prim in (P.add, P.subtract, P.multiply)
        and all(_dtype(a).kind == "b" for a in v.args if isinstance(a, Value))
        and numpy.dtype(v.dtype).kind == "b"
    ):
        raise Unsupported(v.op.name, "arithmetic on booleans")
    a = w.text(v.args[0], prec, ctx)
    b = w.text(v.args[1], prec + 1, ctx)
    return f"{a} {op} {b}", prec, "C"


for _p in _INFIX:
    _FORMS[_p] = _infix


def _whole_exponent(v: Value) -> int | None:
    """The exponent of a whole power ``x ** n`` of a float array (primitives.whole_power's
    case), or None."""
    x, y = v.args
    if isinstance(y, Value):
        if y.op != CONST or numpy.ndim(y.const) != 0:
            return None
        y = y.const.item() if isinstance(y.const, numpy.ndarray) else y.const
    if not P.whole_exponent(y) or numpy.dtype(v.dtype).char not in "fd" or not v.shape:
        return None
    return int(y) if _dtype(x) == numpy.dtype(v.dtype) else None


def wide_power(v: Value) -> int | None:
    """The exponent where ``v`` is a float32 whole power that the eager path multiplies out in
    float64 (``|n| <= primitives.WIDE_POWER_MAX``): the kernel writes the same products, in a
    fused loop or a loop of its own."""
    n = _whole_exponent(v)
    return n if n is not None and v.dtype == numpy.float32 and abs(n) <= P.WIDE_POWER_MAX else None


@_form(P.power)
def _power(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    n = wide_power(v)
    if n is not None:
        if w.scalar_refs:  # a term of a fused loop
            return f"{w.wide_power(n, False)}({w.text(v.args[0])})", ATOM, "C"
        return f"{w.wide_power(n, True)}({w.contig(v.args[0])})", ATOM, "C"
    ctx = w.context(v)
    a = w.text(v.args[0], POWER + 1, ctx)
    b = w.text(v.args[1], POWER, ctx)
    return f"{a} ** {b}", POWER, "C"


@_form(P.negative)
def _negative(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    if _dtype(v.args[0]).kind == "b":
        raise Unsupported("negative", "of booleans")
    return f"-{w.text(v.args[0], UNARY)}", UNARY, "C"


@_form(P.NONDIFF_UFUNCS[numpy.invert])
def _invert(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    if _dtype(x).kind == "b":
        return f"numpy.logical_not({w.text(x)})", ATOM, "C"
    return f"numpy.invert({w.text(x)})", ATOM, "C"


@_form(P.identity, P.stop_gradient)
def _identity(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    return w.text(v.args[0], ATOM), ATOM, w.layout(v.args[0])


@_form(P.positive, P.copy)
def _copy(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    if v.shape == ():
        return w.text(x, ATOM), ATOM, "S"
    return f"{w.text(x, ATOM)}.copy()", ATOM, "C"


@_form(P.astype)
def _astype(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    if v.shape == ():
        return w.to_dtype(w.text(x, ATOM), _dtype(x), v.dtype, True), ATOM, "S"
    return f"{w.text(x, ATOM)}.astype({_dt(v.dtype)})", ATOM, "C"


@_form(P.where)
def _where(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    c, x, y = v.args
    ctx = w.context(v, [x, y]) or v.dtype
    if v.shape == () or w.scalar_refs:  # (one element of a fused loop: fusion.py)
        # a conditional expression: the loosest binding there is, so readers parenthesise it
        return (
            (
                f"{w.text(x, COMPARE + 1, ctx)} if {w.text(c, COMPARE + 1)} else "
                f"{w.text(y, COMPARE + 1, ctx)}"
            ),
            1,
            "S",
        )
    tc = w.text(c)
    if _shape(c) != v.shape:  # Numba's where broadcasts its values, not its condition
        tc = (
            f"numpy.broadcast_to({tc}, {v.shape})"
            if _shape(c) != ()
            else f"numpy.full({v.shape}, {tc})"
        )
    return f"numpy.where({tc}, {w.text(x, 0, ctx)}, {w.text(y, 0, ctx)})", ATOM, "C"


@_form(P.clip)
def _clip(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x, lo, hi = v.args
    ctx = w.context(v)
    t = w.text(x, 0, ctx)
    if lo is not None:
        t = f"numpy.maximum({t}, {w.text(lo, 0, ctx)})"
    if hi is not None:
        t = f"numpy.minimum({t}, {w.text(hi, 0, ctx)})"
    return t, ATOM, "C"


# --- reductions --------------------------------------------------------------------------------


def _reduction(kind: str) -> Handler:
    def handler(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
        kw = v.kw
        if set(kw) - {"axis", "keepdims", "ddof"}:
            extra = sorted(set(kw) - {"axis", "keepdims", "ddof"})
            raise Unsupported(kind, f"keyword arguments {extra}")
        text, lay = w.reduce(
            kind,
            v.args[0],
            kw.get("axis"),
            bool(kw.get("keepdims", False)),
            v.dtype,
            int(kw.get("ddof", 0) or 0),
        )
        return text, ATOM, lay

    return handler


_FORMS[P.sum_] = _reduction("sum")
_FORMS[P.mean] = _reduction("mean")
_FORMS[P.prod] = _reduction("prod")
_FORMS[P.amax] = _reduction("max")
_FORMS[P.amin] = _reduction("min")
_FORMS[P.var] = _reduction("var")
_FORMS[P.std] = _reduction("std")


def _accumulate(kind: str) -> Handler:
    def handler(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
        x = v.args[0]
        shape = _shape(x)
        axis = v.kw.get("axis")
        if axis is None or len(shape) <= 1:
            n = math.prod(shape)
            src, out = f"{w.flat(x)}.reshape((1, {n}))", (n,)
            r = f"{w.helper(f'_cum{kind}_last')}({src}, {_dt(v.dtype)}(0))"
            return f"{r}.reshape({out})", ATOM, "C"
        nd = len(shape)
        ax = int(axis) % nd
        perm = [d for d in range(nd) if d != ax] + [ax]
        moved = tuple(shape[d] for d in perm)
        src = (
            w.contig(x)
            if ax == nd - 1
            else f"numpy.ascontiguousarray({w.text(x, ATOM)}.transpose({tuple(perm)}))"
        )
        r = (
            f"{w.helper(f'_cum{kind}_last')}({src}.reshape(({math.prod(moved[:-1])}, "
            f"{shape[ax]})), {_dt(v.dtype)}(0)).reshape({moved})"
        )
        if ax == nd - 1:
            return r, ATOM, "C"
        inv = tuple(int(i) for i in numpy.argsort(perm))
        return f"{r}.transpose({inv})", ATOM, "A"

    return handler


_FORMS[P.cumsum] = _accumulate("sum")
_FORMS[P.cumprod] = _accumulate("prod")


@_form(P.norm)
def _norm(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    ord_, axis, keep = v.kw.get("ord"), v.kw.get("axis"), bool(v.kw.get("keepdims", False))
    shape = _shape(x)
    if _dtype(x).kind != "f":
        raise Unsupported("linalg.norm", "of a non-float array")
    axes = _axes(axis, len(shape))
    if ord_ is None and axis is None:
        # NumPy: sqrt(dot(x.ravel(), x.ravel())) for any number of dimensions
        _need_scipy("linalg.norm")
        f = w.flat(x)
        s = f"numpy.sqrt(numpy.dot({f}, {f}))"
        if keep:
            return f"numpy.full({(1,) * len(shape)}, {s})", ATOM, "C"
        return s, ATOM, "S"
    if len(axes) != 1 and not (len(axes) == 2 and ord_ in (None, "fro")):
        raise Unsupported("linalg.norm", "matrix norms other than Frobenius")
    tx = w.text(x, ATOM)
    fx = w.text(x, PRODUCT + 1)
    if ord_ in (None, 2, 2.0, "fro"):
        inner = _Expr(f"{fx} * {fx}", shape, _dtype(x))
        r, lay = w.reduce("sum", inner, axes, keep, v.dtype)
        return f"numpy.sqrt({r})", ATOM, lay if lay == "S" else "C"
    absx = _Expr(f"numpy.absolute({tx})", shape, _dtype(x))
    if ord_ == math.inf:
        r, lay = w.reduce("max", absx, axes, keep, v.dtype)
        return r, ATOM, lay
    if ord_ == -math.inf:
        r, lay = w.reduce("min", absx, axes, keep, v.dtype)
        return r, ATOM, lay
    if ord_ == 0:
        nz = _Expr(f"({tx} != 0).astype({_dt(v.dtype)})", shape, v.dtype)
        r, lay = w.reduce("sum", nz, axes, keep, v.dtype)
        return r, ATOM, lay
    if ord_ == 1:
        r, lay = w.reduce("sum", absx, axes, keep, v.dtype)
        return r, ATOM, lay
    p = float(ord_)
    ctx = numpy.dtype(v.dtype)
    pw = _Expr(f"numpy.absolute({tx}) ** {w.typed_float(p, ctx)}", shape, _dtype(x))
    r, lay = w.reduce("sum", pw, axes, keep, v.dtype)
    return f"({r}) ** {w.typed_float(1.0 / p, ctx)}", POWER, lay


@_form(P.safe_norm)
def _safe_norm(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    r, lay = w.reduce("hypot", x, v.kw.get("axis"), bool(v.kw.get("keepdims", False)), v.dtype)
    eps = w.text(v.kw["eps"], 0, v.dtype)
    return f"numpy.hypot({r}, {eps})", ATOM, "C" if lay != "S" else "S"


# --- products ------------------------------------------------------------------------------------


@_form(P.dot)
def _dot(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    a, b = v.args
    sa, sb = _shape(a), _shape(b)
    if sa == () or sb == ():
        ctx = w.context(v)
        return f"{w.text(a, PRODUCT, ctx)} * {w.text(b, PRODUCT + 1, ctx)}", PRODUCT, "C"
    if len(sa) <= 2 and len(sb) <= 2:
        return w.matmul2(a, b, v.dtype), ATOM, "C"
    return w.tensordot(a, b, [len(sa) - 1], [max(len(sb) - 2, 0)], v.dtype, v.shape), ATOM, "C"


@_form(P.matmul)
def _matmul(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    a, b = v.args
    sa, sb = _shape(a), _shape(b)
    if len(sa) <= 2 and len(sb) <= 2:
        return w.matmul2(a, b, v.dtype), ATOM, "C"
    if numpy.dtype(v.dtype).kind != "f":
        raise Unsupported("matmul", "of integers or booleans")
    if len(sb) == 2 and len(sa) >= 3:
        # a stack times one matrix (a linear layer on (batch, seq, features)): one product of
        # the stack's rows, not a product per matrix of the stack with copies of the matrix
        return w.tensordot(a, b, [len(sa) - 1], [0], v.dtype, v.shape), ATOM, "C"
    a3 = sa if len(sa) >= 2 else (1,) + sa
    b3 = sb if len(sb) >= 2 else sb + (1,)
    batch = numpy.broadcast_shapes(a3[:-2], b3[:-2])
    nb = math.prod(batch)

    def operand(x: Any, full: tuple[int, ...], mat: tuple[int, ...]) -> str:
        t = w.to_dtype(w.text(x, ATOM), _dtype(x), v.dtype, False)
        if _shape(x) != full or w.layout(x) != "C":
            t = f"{w.contig(x) if t == w.text(x, ATOM) else t}.reshape({full})"
        target = batch + mat
        if full != target:
            t = f"numpy.ascontiguousarray(numpy.broadcast_to({t}, {target}))"
        return f"{t}.reshape(({nb}, {mat[0]}, {mat[1]}))"

    _need_scipy("matmul")
    r = f"{w.helper('_bmm')}({operand(a, a3, a3[-2:])}, {operand(b, b3, b3[-2:])})"
    return f"{r}.reshape({v.shape})", ATOM, "C"


@_form(P.tensordot)
def _tensordot(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    a, b = v.args
    sa, sb = _shape(a), _shape(b)
    axes = v.kw.get("axes", 2)
    if isinstance(axes, (int, numpy.integer)):
        n = int(axes)
        ax_a, ax_b = list(range(len(sa) - n, len(sa))), list(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = [int(ax_a)] if isinstance(ax_a, (int, numpy.integer)) else list(ax_a)
        ax_b = [int(ax_b)] if isinstance(ax_b, (int, numpy.integer)) else list(ax_b)
        ax_a = [int(d) % len(sa) for d in ax_a] if sa else []
        ax_b = [int(d) % len(sb) for d in ax_b] if sb else []
    if sa == () or sb == ():
        ctx = w.context(v)
        return f"{w.text(a, PRODUCT, ctx)} * {w.text(b, PRODUCT + 1, ctx)}", PRODUCT, "C"
    return w.tensordot(a, b, ax_a, ax_b, v.dtype, v.shape), ATOM, "S" if v.shape == () else "C"


@_form(P.inner)
def _inner(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    a, b = v.args
    sa, sb = _shape(a), _shape(b)
    if sa == () or sb == ():
        ctx = w.context(v)
        return f"{w.text(a, PRODUCT, ctx)} * {w.text(b, PRODUCT + 1, ctx)}", PRODUCT, "C"
    if len(sa) == 1 and len(sb) == 1:
        return w.matmul2(a, b, v.dtype), ATOM, "S"
    return w.tensordot(a, b, [len(sa) - 1], [len(sb) - 1], v.dtype, v.shape), ATOM, "C"


@_form(P.outer)
def _outer(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    a, b = v.args
    m, n = math.prod(_shape(a)), math.prod(_shape(b))
    ctx = w.context(v)
    ta = f"{w.flat(a)}.reshape(({m}, 1))" if _shape(a) != () else w.text(a, PRODUCT, ctx)
    tb = f"{w.flat(b)}.reshape((1, {n}))" if _shape(b) != () else w.text(b, PRODUCT + 1, ctx)
    r = f"{ta} * {tb}"
    if _shape(a) == () or _shape(b) == ():
        r = f"numpy.ascontiguousarray(numpy.broadcast_to({r}, ({m}, {n})))"
    return r, PRODUCT, "C"


@_form(P.vdot)
def _vdot(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    a, b = v.args
    _need_scipy("vdot")
    return f"numpy.dot({w.flat(a)}, {w.flat(b)})", ATOM, "S"


@_form(P.einsum)
def _einsum(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    raise Unsupported("einsum", "Numba has no numpy.einsum")


@_form(P.trace)
def _trace(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    kw = v.kw
    text, lay = w.gather(
        x, lambda a: numpy.diagonal(a, kw.get("offset", 0), kw.get("axis1", 0), kw.get("axis2", 1))
    )
    dshape = numpy.diagonal(
        numpy.empty(_shape(x)), kw.get("offset", 0), kw.get("axis1", 0), kw.get("axis2", 1)
    ).shape
    diag = _Expr(text, dshape, _dtype(x))
    r, lay = w.reduce("sum", diag, len(dshape) - 1, False, v.dtype)
    return r, ATOM, lay


# --- rearrangements ------------------------------------------------------------------------------


@_form(P.reshape)
def _reshape(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    shape = tuple(v.kw["shape"])
    if _shape(x) == ():
        return (
            (w.text(x, ATOM), ATOM, "S")
            if shape == ()
            else (f"numpy.full({shape}, {w.text(x)})", ATOM, "C")
        )
    if shape == ():
        return f"{w.flat(x)}[0]", ATOM, "S"
    return f"{w.contig(x)}.reshape({shape})", ATOM, "C"


TRANSPOSES = (P.transpose, P.swapaxes, P.moveaxis)


def permutation(v: Value) -> tuple[int, ...]:
    """The axes of ``v.args[0]`` that a transpose, swapaxes or moveaxis ``v`` puts in order."""
    nd = len(_shape(v.args[0]))
    if v.prim is P.transpose:
        return tuple(int(a) % nd for a in v.kw["axes"])
    probe = numpy.empty(tuple(range(2, 2 + nd)))  # distinct sizes name the axes
    names = ("axis1", "axis2") if v.prim is P.swapaxes else ("source", "destination")
    fun = P.swapaxes.fun if v.prim is P.swapaxes else P.moveaxis.fun
    moved = fun(probe, *(v.kw[k] for k in names))
    return tuple(int(s) - 2 for s in moved.shape)


@_form(*TRANSPOSES)
def _transpose(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    nd = len(_shape(x))
    perm = permutation(v)
    if nd <= 1 or perm == tuple(range(nd)):
        return w.text(x, ATOM), ATOM, w.layout(x)
    t = w.text(x, ATOM)
    if perm == tuple(range(nd))[::-1]:
        lay = "F" if nd == 2 and w.layout(x) == "C" else "A"
        return f"{t}.T", ATOM, lay
    return f"{t}.transpose({perm})", ATOM, "A"


@_form(P.broadcast_to)
def _broadcast_to(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    shape = tuple(v.kw["shape"])
    if _shape(x) == ():
        return f"numpy.full({shape}, {w.text(x)})", ATOM, "C"
    return f"numpy.broadcast_to({w.text(x)}, {shape})", ATOM, "A"


def _rearrange(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    """flip, roll, tile, repeat, take, diagonal, sliding_window_view: a constant gather."""
    prim = v.prim
    assert prim is not None
    x = v.args[0]
    rest = [_const(a) for a in v.args[1:]]
    text, lay = w.gather(x, lambda a: prim.fun(a, *rest, **v.kw))
    return text, ATOM, lay


for _p in (
    P.flip,
    P.roll,
    P.tile,
    P.repeat,
    P.take,
    P.take_along_axis,
    P.diagonal,
    P.sliding_window_view,
):
    _FORMS[_p] = _rearrange


@_form(P.getitem)
def _getitem(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    index = v.kw["index"]
    if index is Ellipsis or (type(index) is tuple and len(index) == 1 and index[0] is Ellipsis):
        # x[...]: x itself (Numba has no getitem with an Ellipsis alone)
        return w.text(x, ATOM), ATOM, w.layout(x)
    if _is_basic(index) and _shape(x) != ():
        # Integers on the leading axes of a C-contiguous array (``X[t]``, ``X[t, i]``) give a
        # C-contiguous array, and Numba types it so: no copy before a product of it.
        ints = index if isinstance(index, tuple) else (index,)
        lay = (
            "C"
            if w.layout(x) == "C"
            and len(ints) < len(_shape(x))
            and all(isinstance(i, (int, numpy.integer)) and not isinstance(i, bool) for i in ints)
            else "A"
        )
        return f"{w.text(x, ATOM)}[{w.lit.index(index)}]", ATOM, lay
    text, lay = w.gather(x, lambda a: a[index])
    return text, ATOM, lay


@_form(P.pad)
def _pad(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    shape = _shape(x)
    kw = dict(v.kw)
    if kw.get("mode", "constant") != "constant":
        raise Unsupported("pad", f"mode {kw['mode']!r}")
    cval = kw.pop("constant_values", 0)
    kw.pop("mode", None)
    size = math.prod(shape)
    lin = (
        numpy.pad(
            numpy.arange(1, size + 1).reshape(shape),
            *([kw.pop("pad_width")] if "pad_width" in kw else []),
            **kw,
        )
        - 1
    )
    if numpy.ndim(cval) != 0:
        raise Unsupported("pad", "per-axis constant values")
    mask = lin >= 0
    k = w.const_array(numpy.where(mask, lin, 0).ravel())
    m = w.const_array(mask.ravel())
    c = w.text(cval, 0, v.dtype)
    r = f"numpy.where({m}, {w.flat(x)}[{k}], {c}).reshape({lin.shape})"
    return r, ATOM, "C"


@_form(P.correlate)
def _correlate(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    # numpy.correlate of real 1-D arrays, a no shorter than the kernel (the composite's order):
    # the sums over the overlaps, the padded zeros skipped (NumPy's sums, to rounding)
    a, k = v.args
    m = _shape(k)[0]
    left, right = P.correlate_pads(v.kw.get("mode", "valid"), m)
    size = _shape(a)[0] + left + right - m + 1
    # more taps than outputs (a kernel's gradient): a BLAS dot per output beats a loop per tap
    same = _dtype(a) == _dtype(k) == numpy.dtype(v.dtype)
    dots = size < m and same and _dtype(a).kind == "f" and importlib.util.find_spec("scipy")
    helper = "_correlate_dots" if dots else "_correlate_pads"
    r = f"{w.helper(helper)}({w.contig(a)}, {w.contig(k)}, {left}, {right})"
    return r, ATOM, "C"


@_form(P.triu, P.tril)
def _tri(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    shape = _shape(x)
    k = int(v.kw.get("k", 0))
    if v.prim is P.triu:
        mask = numpy.tri(shape[-2], shape[-1], k=k - 1, dtype=bool)  # NumPy's own triu
    else:
        mask = ~numpy.tri(shape[-2], shape[-1], k=k, dtype=bool)
    m = w.const_array(mask)
    if shape[:-2]:
        m = f"numpy.broadcast_to({m}, {shape})"
    return f"numpy.where({m}, {w.typed(0, v.dtype)}, {w.text(x)})", ATOM, "C"


@_form(P.sort)
def _sort(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    return _along_last(w, v, x, None, lambda x2, g2: f"{w.helper('_sort_last')}({x2})")


@_form(P.sort_permute)
def _sort_permute(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    g, x = v.args
    return _along_last(w, v, x, g, lambda x2, g2: f"{w.helper('_sort_permute_last')}({g2}, {x2})")


def _along_last(
    w: NumbaWriter, v: Value, x: Any, g: Any, body: Callable[[str, str], str]
) -> tuple[str, int, str]:
    shape = _shape(x)
    axis = v.kw.get("axis", -1)
    if axis is None:
        raise Unsupported(v.prim.name if v.prim else "sort", "axis=None")
    nd = len(shape)
    ax = int(axis) % nd
    perm = [d for d in range(nd) if d != ax] + [ax]
    moved = tuple(shape[d] for d in perm)
    rows = (math.prod(moved[:-1]), shape[ax])

    def prep(t: Any) -> str:
        if ax == nd - 1:
            return f"{w.contig(t)}.reshape({rows})"
        return (
            f"numpy.ascontiguousarray({w.text(t, ATOM)}.transpose({tuple(perm)})).reshape({rows})"
        )

    r = f"{body(prep(x), prep(g) if g is not None else '')}.reshape({moved})"
    if ax == nd - 1:
        return r, ATOM, "C"
    return f"{r}.transpose({tuple(int(i) for i in numpy.argsort(perm))})", ATOM, "A"


@_form(P.sigmoid)
def _sigmoid(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    t, z = w.text(x, 0), w.typed(0, v.dtype)
    one = w.typed(1, v.dtype)

    def exp(a: str) -> str:
        if v.shape != () and not w.scalar_refs:
            return f"numpy.exp({a})"
        return _own(w, "exp", a, v.dtype)

    text = f"{exp(f'numpy.minimum({t}, {z})')} / ({one} + {exp(f'-numpy.abs({t})')})"
    return text, PRODUCT, "C"


def _leading_index(template: Any, arrays: Any, op: str) -> tuple[list[Any], int, Any]:
    """The integer index arrays at the front of ``template`` (slots or constants), how many,
    and their broadcast shape; anything else after them must be a full slice."""
    lead: list[Any] = []
    for item in template:
        if isinstance(item, P.Slot):
            lead.append(("slot", arrays[item.k]))
        elif isinstance(item, numpy.ndarray) and item.dtype.kind in "iu":
            lead.append(("const", item))
        elif isinstance(item, (int, numpy.integer)) and not isinstance(item, bool):
            lead.append(("const", numpy.asarray(item)))
        else:
            break
    tail = template[len(lead) :]
    if any(not (isinstance(t, slice) and t == slice(None)) for t in tail) or not lead:
        raise Unsupported(op, "index arrays mixed with slices, masks or new axes")
    bshape = numpy.broadcast_shapes(*(_shape(a) if kind == "slot" else a.shape for kind, a in lead))
    return lead, len(lead), bshape


@_form(P.gather)
def _gather_dyn(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    arrays = v.args[1:]
    template = v.kw["template"]
    shape = _shape(x)
    lead, k, bshape = _leading_index(template, arrays, "gather")
    rest = shape[k:]
    lin = _lin_text(w, lead, shape[:k], bshape)
    m = math.prod(rest)
    table = f"{w.contig(x)}.reshape(({math.prod(shape[:k])}, {m}))"
    r = f"{w.helper('_take_rows')}({table}, {lin})"
    if v.shape == ():
        return f"{r}[0, 0]", ATOM, "S"
    return f"{r}.reshape({v.shape})", ATOM, "C"


def _lin_text(
    w: NumbaWriter, lead: list[tuple[str, Any]], dims: tuple[int, ...], bshape: tuple[int, ...]
) -> str:
    """Flat row positions of ``x[i0, i1, ...]`` over the leading ``dims``, shape ``bshape``."""
    terms = []
    shapes = []
    stride = 1
    strides = []
    for n in reversed(dims):
        strides.append(stride)
        stride *= n
    strides.reverse()
    for (kind, a), n, s in zip(lead, dims, strides):
        if kind == "slot":
            if _dtype(a).kind not in "iu":
                raise Unsupported("gather", "a non-integer index array")
            at = w.text(a)
            if _shape(a) == ():  # W[idx[b]]: Numba reads a 0-d index as a scalar
                at = f"numpy.full(1, {at})"
            t = f"{w.helper('_wrap_index')}({at}, {n})"
            shapes.append(_shape(a))
        else:
            a = numpy.where(a < 0, a + n, a)
            if numpy.any((a < 0) | (a >= n)):
                raise Unsupported("gather", "an index out of bounds")
            t = w.const_array(a.astype(numpy.intp).reshape(a.shape or (1,)))
            shapes.append(a.shape)
        terms.append(t if s == 1 else f"{t} * {s}")
    total = " + ".join(terms)
    if bshape == ():  # every term is one position
        return f"numpy.ascontiguousarray({total}).reshape((1,))"
    n = math.prod(bshape)
    if all(tuple(sh) == tuple(bshape) for sh in shapes):  # a new array of the right shape
        return f"({total}).reshape(({n},))" if len(bshape) > 1 else total
    return f"numpy.ascontiguousarray(numpy.broadcast_to({total}, {bshape})).reshape(({n},))"
