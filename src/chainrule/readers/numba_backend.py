"""The Numba backend of ``chainrule.jit``: the same straight-line program, compiled by Numba.

``jit`` records a function once per signature and runs the exact program passes (``ir.py``);
this module writes *that* program — same values, same order, same inlining as the NumPy
backend's :class:`~chainrule.program.codegen.Writer` — as source that ``numba.njit`` accepts, and
compiles it.  No gradient rule and no tracing lives here: only how each primitive is spelled
for Numba.  Most spellings are the NumPy ones; the others are:

* reductions over some axes, ``keepdims``, ``ddof``, ``cumsum``/``cumprod``/``sort`` along an
  axis: small loops over a contiguous 2-D view (rows or columns), written once below
  (``_HELPERS``), because Numba's ``sum`` takes one axis at most and its ``max``, ``mean``,
  ``var``… none;
* products: ``tensordot``, N-d ``dot``, ``inner`` become transpose + reshape + ``numpy.dot``
  (what NumPy itself does), batched ``matmul`` a loop of ``numpy.dot``;
* rearrangements (``flip``, ``roll``, ``tile``, ``repeat``, ``take``, ``take_along_axis``,
  ``diagonal``, advanced indexing, ``pad``, ``sliding_window_view``…) and their gradients
  (``scatter_add``, ``setitem``): shapes are static, so NumPy's own function is run once, at
  compile time, on ``arange(size)``; the program gathers (or scatters) through the resulting
  constant index array;
* Python numbers next to float32 arrays are cast to float32 (NumPy's NEP 50 "weak scalar" rule,
  which Numba does not follow), values of shape ``()`` are scalars.

Anything else raises :class:`Unsupported` naming the operation; ``jit`` then falls back to the
NumPy backend with one :class:`~chainrule.jit.JitFallbackWarning`.

The generated module is written to ``$CHAINRULE_CACHE_DIR`` (default
``~/.cache/chainrule/numba``) under the hash of its text, imported from there, and compiled with
``njit(cache=True)``: Numba's own on-disk cache, keyed by that file, makes the compilation a
once-per-machine cost.  Large constants are passed as arguments (not frozen into the machine
code), small ones are written into the module text, so the hash covers everything compiled.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.rules import Size
from chainrule.program.codegen import Writer
from chainrule.program.ir import CONST, INPUT, Program, Value
from chainrule.program.notation import ATOM, COMPARE, POWER, PRODUCT, SUM, UNARY, Literals

__all__ = [
    "Unsupported",
    "ShapeMismatch",
    "available",
    "require",
    "cache_dir",
    "generate",
    "build",
    "INSTALL_HINT",
]

INSTALL_HINT = 'pip install "chainrule[fast]"'

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


_AVAILABLE: list[bool] = []


def available() -> bool:
    """Whether Numba is installed and imports (a Numba too old for this NumPy raises
    ImportError on import: that counts as not available)."""
    if not _AVAILABLE:
        try:
            found = importlib.util.find_spec("numba") is not None
        except (ImportError, ValueError):
            found = False
        if found:
            try:
                import numba  # noqa: F401
            except ImportError:
                found = False
        _AVAILABLE.append(found)
    return _AVAILABLE[0]


def require() -> Any:
    """Import and return ``numba``, or raise an ImportError that says how to install it."""
    try:
        import numba
    except ImportError as e:
        raise ImportError(
            "chainrule.jit(backend='numba') needs Numba, which is an optional extra: "
            f"{INSTALL_HINT}  (or use backend='numpy', or backend='auto', which uses Numba "
            "only when it is installed)"
        ) from e
    return numba


def cache_dir() -> str:
    """Where generated modules (and, next to them, Numba's cache) live."""
    d = os.environ.get("CHAINRULE_CACHE_DIR")
    if d:
        return os.path.abspath(os.path.expanduser(d))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "chainrule", "numba")


# ---------------------------------------------------------------------------------------------
# Helpers written into a generated module when its program uses them
# ---------------------------------------------------------------------------------------------

_DECORATOR = "@njit(cache=True, nogil=True, error_model='numpy')"

_HELPERS: dict[str, str] = {
    # --- the sum of a float32/float16 array with a float64 accumulator
    "_rsum_wide": """
def _rsum_wide(x):
    s = 0.0
    for i in range(x.size):
        s += x[i]
    return s
""",
    # --- reductions of a C-contiguous 2-D array: over its rows' elements (``_last``, result
    # per row) or over its rows (``_first``, result per column).  ``z`` is the typed zero of
    # the result (float32 stays float32; bool sums to int64).
    "_rsum_last": """
def _rsum_last(x, z):
    n, m = x.shape
    out = numpy.full(n, z)
    for i in range(n):
        s = z
        for j in range(m):
            s += x[i, j]
        out[i] = s
    return out
""",
    "_rsum_first": """
def _rsum_first(x, z):
    n, m = x.shape
    out = numpy.full(m, z)
    for i in range(n):
        for j in range(m):
            out[j] += x[i, j]
    return out
""",
    "_rprod_last": """
def _rprod_last(x, z):
    n, m = x.shape
    out = numpy.full(n, z)
    for i in range(n):
        s = z + 1
        for j in range(m):
            s *= x[i, j]
        out[i] = s
    return out
""",
    "_rprod_first": """
def _rprod_first(x, z):
    n, m = x.shape
    out = numpy.full(m, z + 1)
    for i in range(n):
        for j in range(m):
            out[j] *= x[i, j]
    return out
""",
    # max/min propagate NaN, as NumPy's do
    "_rmax_last": """
def _rmax_last(x, z):
    n, m = x.shape
    out = numpy.empty(n, x.dtype)
    for i in range(n):
        s = x[i, 0]
        for j in range(1, m):
            v = x[i, j]
            if v > s or v != v:
                s = v
        out[i] = s
    return out
""",
    "_rmax_first": """
def _rmax_first(x, z):
    n, m = x.shape
    out = x[0].copy()
    for i in range(1, n):
        for j in range(m):
            v = x[i, j]
            if v > out[j] or v != v:
                out[j] = v
    return out
""",
    "_rmin_last": """
def _rmin_last(x, z):
    n, m = x.shape
    out = numpy.empty(n, x.dtype)
    for i in range(n):
        s = x[i, 0]
        for j in range(1, m):
            v = x[i, j]
            if v < s or v != v:
                s = v
        out[i] = s
    return out
""",
    "_rmin_first": """
def _rmin_first(x, z):
    n, m = x.shape
    out = x[0].copy()
    for i in range(1, n):
        for j in range(m):
            v = x[i, j]
            if v < out[j] or v != v:
                out[j] = v
    return out
""",
    "_rhypot_last": """
def _rhypot_last(x, z):
    n, m = x.shape
    out = numpy.empty(n, x.dtype)
    for i in range(n):
        s = x[i, 0]
        for j in range(1, m):
            s = numpy.hypot(s, x[i, j])
        out[i] = s
    return out
""",
    # NumPy's _var: mean (sum / n), then the sum of squared deviations / (n - ddof)
    "_rvar_last": """
def _rvar_last(x, n_, d_):
    n, m = x.shape
    out = numpy.full(n, n_ - n_)
    for i in range(n):
        s = n_ - n_
        for j in range(m):
            s += x[i, j]
        mu = s / n_
        q = n_ - n_
        for j in range(m):
            d = x[i, j] - mu
            q += d * d
        out[i] = q / d_
    return out
""",
    "_cumsum_last": """
def _cumsum_last(x, z):
    n, m = x.shape
    out = numpy.full((n, m), z)
    for i in range(n):
        s = z
        for j in range(m):
            s += x[i, j]
            out[i, j] = s
    return out
""",
    "_cumprod_last": """
def _cumprod_last(x, z):
    n, m = x.shape
    out = numpy.full((n, m), z)
    for i in range(n):
        s = z + 1
        for j in range(m):
            s *= x[i, j]
            out[i, j] = s
    return out
""",
    "_sort_last": """
def _sort_last(x):
    n, m = x.shape
    out = numpy.empty((n, m), x.dtype)
    for i in range(n):
        out[i] = numpy.sort(x[i])
    return out
""",
    "_sort_permute_last": """
def _sort_permute_last(g, x):
    n, m = x.shape
    out = numpy.empty((n, m), g.dtype)
    for i in range(n):
        idx = numpy.argsort(x[i], kind='mergesort')
        for j in range(m):
            out[i, j] = g[i, idx[j]]
    return out
""",
    "_sort_unpermute_last": """
def _sort_unpermute_last(g, x):
    n, m = x.shape
    out = numpy.empty((n, m), g.dtype)
    for i in range(n):
        idx = numpy.argsort(x[i], kind='mergesort')
        for j in range(m):
            out[i, idx[j]] = g[i, j]
    return out
""",
    # batched matrix product of C-contiguous (b, m, k) and (b, k, n)
    "_bmm": """
def _bmm(a, b):
    nb = a.shape[0]
    out = numpy.empty((nb, a.shape[1], b.shape[2]), a.dtype)
    for i in range(nb):
        out[i] = numpy.dot(a[i], b[i])
    return out
""",
    # scatter through a flat index array: assignment (positions unique) or accumulation
    "_scatter_set": """
def _scatter_set(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] = g[j]
    return out
""",
    "_scatter_add": """
def _scatter_add(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] += g[j]
    return out
""",
    "_scatter_set_s": """
def _scatter_set_s(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] = g
    return out
""",
    "_scatter_add_s": """
def _scatter_add_s(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] += g
    return out
""",
    # rows of a (rows, rest) table chosen by integer arrays computed at run time
    "_take_rows": """
def _take_rows(x, lin):
    out = numpy.empty((lin.shape[0], x.shape[1]), x.dtype)
    for j in range(lin.shape[0]):
        out[j] = x[lin[j]]
    return out
""",
    "_add_rows": """
def _add_rows(out, lin, g):
    for j in range(lin.shape[0]):
        out[lin[j]] += g[j]
    return out
""",
    # an integer index array -> non-negative positions, with NumPy's bounds check
    "_wrap_index": """
def _wrap_index(i, n):
    out = numpy.empty(i.shape, numpy.intp)
    fi = i.ravel()
    fo = out.ravel()
    for j in range(fi.shape[0]):
        v = fi[j]
        if v < 0:
            v += n
        if v < 0 or v >= n:
            raise IndexError("index out of bounds")
        fo[j] = v
    return out
""",
}


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


class NumbaWriter(Writer):
    """The program's values written for ``numba.njit``: the NumPy writer's statements and
    inlining, with Numba spellings (see the module docstring)."""

    def __init__(self, prog: Program, refs: dict[int, str]) -> None:
        self.consts: list[numpy.ndarray] = []
        self.helpers: set[str] = set()
        self.lay: dict[int, str] = {}  # value id -> 'C', 'F', 'A' (any) or 'S' (scalar)
        super().__init__(prog, {}, _Lits(hoist=self._hoist, inline_limit=0), refs=refs)
        for v in prog.values:
            if v.op == INPUT:
                self.lay[v.id] = "S" if v.shape == () else "C"

    # --- bookkeeping ----------------------------------------------------------------------

    def _hoist(self, a: numpy.ndarray) -> str:
        a = numpy.ascontiguousarray(a)
        if a.dtype.kind not in _OK_KINDS or a.dtype == numpy.float16:
            raise Unsupported("constant", f"an array of dtype {a.dtype}")
        for i, c in enumerate(self.consts):  # the same constant once
            if (
                c.dtype == a.dtype
                and c.shape == a.shape
                and (c is a or (c.size <= 4096 and numpy.array_equal(c, a, equal_nan=True)))
            ):
                return f"_k{i}"
        self.consts.append(a)
        return f"_k{len(self.consts) - 1}"

    def const_array(self, a: Any, dtype: Any = None) -> str:
        arr = numpy.asarray(a) if dtype is None else numpy.asarray(a, dtype=dtype)
        return self._hoist(arr)

    def helper(self, name: str) -> str:
        self.helpers.add(name)
        return name

    def _needs_statement(self, v: Value) -> bool:
        return super()._needs_statement(v) or v.prim in _LINES

    def size(self, s: Size) -> str:
        return str(int(s))

    def ref(self, x: Any, style: str = "python") -> tuple[str, int]:
        if isinstance(x, _Expr):
            return x.text_, x.prec
        return super().ref(x, style)

    def layout(self, x: Any) -> str:
        if isinstance(x, _Expr):
            return "S" if x.shape == () else x.layout
        if isinstance(x, Value):
            if x.shape == ():
                return "S"
            if x.op == CONST:
                return "C"
            if x.id not in self.lay:
                self.ref(x)  # an inline value: writing it records its layout
            return self.lay.get(x.id, "A")
        return "S" if numpy.ndim(x) == 0 else "C"

    # --- arguments ---------------------------------------------------------------------------

    def _weak(self, x: Any) -> bool:
        """A Python number in the source (NumPy treats it as a 'weak' scalar)."""
        if isinstance(x, Value):
            return (
                x.op == CONST
                and numpy.ndim(x.const) == 0
                and numpy.asarray(x.const).dtype in (numpy.float64, numpy.int64, numpy.bool_)
            )
        if isinstance(x, (bool, int, float, Size)):
            return True
        if isinstance(x, numpy.ndarray) and x.ndim == 0:
            return x.dtype in (numpy.float64, numpy.int64, numpy.bool_)
        return isinstance(x, (numpy.float64, numpy.int64, numpy.bool_))

    def context(self, v: Value, args: list[Any] | None = None) -> numpy.dtype[Any] | None:
        """The dtype a weak scalar among ``v``'s arguments is cast to (NEP 50)."""
        strong = [
            a
            for a in (v.args if args is None else args)
            if isinstance(a, Value) and not self._weak(a)
        ]
        if not strong:
            return None
        nonbool = [a.dtype for a in strong if numpy.dtype(a.dtype).kind != "b"]
        if not nonbool:
            return None
        return numpy.result_type(*nonbool)

    def text(self, x: Any, need: int = 0, ctx: Any = None) -> str:
        """The text of one argument, cast like NumPy casts a weak scalar, parenthesised if its
        precedence is below ``need``."""
        text, prec = self.ref(x)
        if ctx is not None and self._weak(x):
            ctx = numpy.dtype(ctx)
            value = (
                x.const.item() if isinstance(x, Value) else (int(x) if isinstance(x, Size) else x)
            )
            if isinstance(value, numpy.generic):
                value = value.item()
            if ctx.kind == "f" and ctx != numpy.float64:
                if ctx == numpy.float16:
                    raise Unsupported("float16", "Numba has no float16 arithmetic")
                text, prec = f"numpy.{ctx.name}({text})", ATOM
            elif (
                ctx.kind in "iu"
                and ctx != numpy.int64
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                text, prec = f"numpy.{ctx.name}({text})", ATOM
        return f"({text})" if prec < need else text

    def contig(self, x: Any, need: int = ATOM) -> str:
        """``x`` as a C-contiguous array (free when it already is one)."""
        t = self.text(x, ATOM)
        if self.layout(x) in ("C", "S"):
            return t
        return f"numpy.ascontiguousarray({t})"

    def flat(self, x: Any) -> str:
        return f"{self.contig(x)}.ravel()"

    # --- expressions -------------------------------------------------------------------------

    def expr(self, v: Value, style: str = "python") -> tuple[str, int]:
        prim = v.prim
        assert prim is not None
        if prim.custom:
            raise Unsupported(
                prim.name, "a custom primitive (a Python function that Numba cannot call)"
            )
        if numpy.dtype(v.dtype).kind not in _OK_KINDS or numpy.dtype(v.dtype) == numpy.float16:
            raise Unsupported(
                prim.name,
                f"dtype {numpy.dtype(v.dtype)} (Numba supports bool, "
                "integers, float32 and float64 here)",
            )
        handler = _FORMS.get(prim)
        if handler is None:
            if prim.name in NUMBA_UFUNCS and isinstance(prim.fun, numpy.ufunc):
                handler = _ufunc_call
            else:
                raise Unsupported(prim.name, "no Numba form for this operation")
        text, prec, lay = handler(self, v)
        self.lay[v.id] = "S" if v.shape == () else lay
        return text, prec

    # --- statements --------------------------------------------------------------------------

    def code(self) -> list[str]:
        out: list[str] = []
        for v in self.prog.values:
            if not self.is_statement(v):
                continue
            name = self.names[v.id]
            maker = _LINES.get(v.prim) if v.prim is not None else None
            if maker is not None:
                if (
                    numpy.dtype(v.dtype).kind not in _OK_KINDS
                    or numpy.dtype(v.dtype) == numpy.float16
                ):
                    raise Unsupported(v.op.name, f"dtype {numpy.dtype(v.dtype)}")
                lines, lay = maker(self, v, name)
                self.lay[v.id] = "S" if v.shape == () else lay
                out.extend(lines)
                continue
            text, _ = self.expr(v)
            out.append(f"{name} = {text}")
        return out

    # --- shared pieces -----------------------------------------------------------------------

    def to_dtype(self, text: str, src: Any, dst: Any, scalar: bool) -> str:
        if numpy.dtype(src) == numpy.dtype(dst):
            return text
        return f"{_dt(dst)}({text})" if scalar else f"{text}.astype({_dt(dst)})"

    def reduce(
        self, kind: str, x: Any, axis: Any, keepdims: bool, out_dtype: Any, ddof: int = 0
    ) -> tuple[str, str]:
        """``kind`` in sum, prod, max, min, mean, var, std, hypot over ``axis`` of ``x``."""
        shape = _shape(x)
        xdt = _dtype(x)
        odt = numpy.dtype(out_dtype)
        nd = len(shape)
        axes = _axes(axis, nd)
        kept = [d for d in range(nd) if d not in axes]
        out_shape = (
            tuple(1 if d in axes else shape[d] for d in range(nd))
            if keepdims
            else tuple(shape[d] for d in kept)
        )
        count = math.prod(shape[d] for d in axes)
        if nd == 0:  # a scalar: the reduction is itself
            t = self.text(x, ATOM)
            if kind in ("var", "std"):
                return f"{_dt(odt)}(0.0 / {max(1 - ddof, 0)})" if ddof else f"{_dt(odt)}(0.0)", "S"
            return self.to_dtype(t, xdt, odt, True), "S"
        zero = f"{_dt(odt)}(0)"
        acc = numpy.dtype(odt)
        if not kept:  # over everything: a scalar
            t = self.text(x, ATOM)
            if kind in ("sum", "mean") and xdt.kind == "f" and xdt.itemsize < 8:
                # NumPy sums float32 pairwise (error ~ log n); Numba's .sum() runs one float32
                # accumulator along the array (error ~ n: 2e-4 relative over 524,288 squares).
                # A float64 accumulator is at least as accurate as NumPy's sum.
                s = f"{self.helper('_rsum_wide')}({self.flat(x)})"
                if kind == "mean":
                    s = f"({s} / {count})"
                s = self.to_dtype(s, numpy.float64, odt, True)
                if keepdims:
                    return f"numpy.full({out_shape}, {s})", "C"
                return s, "S"
            if kind == "sum":
                s = self.to_dtype(f"{t}.sum()", numpy.int64 if xdt.kind == "b" else xdt, odt, True)
            elif kind in ("prod", "max", "min"):
                if xdt.kind == "b":
                    raise Unsupported(kind, "a reduction of booleans")
                s = self.to_dtype(f"{t}.{kind}()", xdt, odt, True)
            elif kind == "mean":
                s = f"({t}.sum() / {self.typed(count, acc)})"
                s = self.to_dtype(s, acc if xdt.kind == "f" else numpy.float64, odt, True)
            elif kind in ("var", "std"):
                x2 = f"{self.flat(x)}.reshape((1, {count}))"
                s = (
                    f"{self.helper('_rvar_last')}({x2}, {self.typed(count, acc)}, "
                    f"{self.typed(max(count - ddof, 0), acc)})[0]"
                )
                if kind == "std":
                    s = f"numpy.sqrt({s})"
            elif kind == "hypot":
                s = (
                    f"{self.helper('_rhypot_last')}({self.flat(x)}.reshape((1, {count})), "
                    f"{zero})[0]"
                )
            else:  # pragma: no cover
                raise Unsupported(kind, "unknown reduction")
            if keepdims:
                return f"numpy.full({out_shape}, {s})", "C"
            return s, "S"
        outer = math.prod(shape[d] for d in kept)
        leading = list(axes) == list(range(len(axes)))
        trailing = list(axes) == list(range(nd - len(axes), nd))
        z = zero if xdt.kind != "b" or kind != "sum" else "numpy.int64(0)"
        if kind in ("sum", "prod", "max", "min", "mean", "hypot"):
            base = {"mean": "sum"}.get(kind, kind)
            if base in ("prod", "max", "min", "hypot") and xdt.kind == "b":
                raise Unsupported(kind, "a reduction of booleans")
            if kind == "mean" and xdt.kind != "f":
                z = "numpy.float64(0)"
            if leading and base != "hypot":
                x2 = f"{self.contig(x)}.reshape(({count}, {outer}))"
                r = f"{self.helper(f'_r{base}_first')}({x2}, {z})"
            else:
                if trailing:
                    src = self.contig(x)
                else:
                    perm = tuple(kept) + tuple(axes)
                    src = f"numpy.ascontiguousarray({self.text(x, ATOM)}.transpose({perm}))"
                x2 = f"{src}.reshape(({outer}, {count}))"
                r = f"{self.helper(f'_r{base}_last')}({x2}, {z})"
            if kind == "mean":
                r = f"({r} / {self.typed(count, acc if xdt.kind == 'f' else numpy.float64)})"
        elif kind in ("var", "std"):
            perm = tuple(kept) + tuple(axes)
            src = (
                self.contig(x)
                if trailing
                else f"numpy.ascontiguousarray({self.text(x, ATOM)}.transpose({perm}))"
            )
            r = (
                f"{self.helper('_rvar_last')}({src}.reshape(({outer}, {count})), "
                f"{self.typed(count, acc)}, {self.typed(max(count - ddof, 0), acc)})"
            )
            if kind == "std":
                r = f"numpy.sqrt({r})"
        else:  # pragma: no cover
            raise Unsupported(kind, "unknown reduction")
        if out_shape != (outer,):
            r = f"{r}.reshape({out_shape})"
        return r, "C"

    def typed_float(self, f: float, dtype: Any) -> str:
        d = numpy.dtype(dtype)
        if d == numpy.float64:
            return repr(float(f))
        return f"numpy.{d.name}({float(f)!r})"

    def typed(self, n: int, dtype: Any) -> str:
        d = numpy.dtype(dtype)
        if d == numpy.float64:
            return repr(float(n))
        return f"numpy.{d.name}({n})"

    def matmul2(self, a: Any, b: Any, dtype: Any) -> str:
        """``numpy.dot`` of two 1-d/2-d operands (F-contiguous is fine for BLAS)."""
        _need_scipy("dot")
        if numpy.dtype(dtype).kind != "f":
            raise Unsupported(
                "dot", "matrix products of integers or booleans (Numba's numpy.dot is for floats)"
            )
        ta = self.text(a, ATOM) if self.layout(a) in "CFS" else self.contig(a)
        tb = self.text(b, ATOM) if self.layout(b) in "CFS" else self.contig(b)
        ta = self.to_dtype(
            ta, a.dtype if isinstance(a, Value) else numpy.asarray(a).dtype, dtype, False
        )
        tb = self.to_dtype(
            tb, b.dtype if isinstance(b, Value) else numpy.asarray(b).dtype, dtype, False
        )
        return f"numpy.dot({ta}, {tb})"

    def tensordot(
        self,
        a: Any,
        b: Any,
        axes_a: list[int],
        axes_b: list[int],
        dtype: Any,
        out_shape: tuple[int, ...],
    ) -> str:
        sa, sb = _shape(a), _shape(b)
        free_a = [d for d in range(len(sa)) if d not in axes_a]
        free_b = [d for d in range(len(sb)) if d not in axes_b]
        m = math.prod(sa[d] for d in free_a)
        k = math.prod(sa[d] for d in axes_a)
        n = math.prod(sb[d] for d in free_b)
        _need_scipy("tensordot")
        ta = self._as2d(a, free_a + list(axes_a), (m, k))
        tb = self._as2d(b, list(axes_b) + free_b, (k, n))
        if numpy.dtype(dtype).kind != "f":
            raise Unsupported("tensordot", "products of integers or booleans")
        ta = self.to_dtype(ta, _dtype(a), dtype, False)
        tb = self.to_dtype(tb, _dtype(b), dtype, False)
        r = f"numpy.dot({ta}, {tb})"
        if out_shape == ():
            return f"{r}[0, 0]"
        return f"{r}.reshape({out_shape})"

    def _as2d(self, x: Any, perm: list[int], shape2: tuple[int, int]) -> str:
        nd = len(_shape(x))
        if perm == list(range(nd)):
            src = self.contig(x)
        elif nd == 2 and perm == [1, 0] and self.layout(x) == "C":
            return f"{self.text(x, ATOM)}.T"  # F-contiguous: BLAS reads it as is
        else:
            src = f"numpy.ascontiguousarray({self.text(x, ATOM)}.transpose({tuple(perm)}))"
        if nd == 2 and _shape(x) == shape2 and perm == [0, 1]:
            return src
        return f"{src}.reshape({shape2})"

    def gather(self, x: Any, fun: Callable[[numpy.ndarray], numpy.ndarray]) -> tuple[str, str]:
        """Apply a pure rearrangement ``fun`` (shapes static) as a gather through constant
        positions computed by running ``fun`` on ``arange``."""
        shape = _shape(x)
        size = math.prod(shape)
        lin = numpy.asarray(fun(numpy.arange(size, dtype=numpy.intp).reshape(shape)))
        if len(shape) == 0:  # x is a scalar: itself, or an array of it
            if lin.ndim == 0:
                return self.text(x, ATOM), "S"
            return f"numpy.full({lin.shape}, {self.text(x)})", "C"
        if lin.ndim == 0:
            return f"{self.flat(x)}[{int(lin)}]", "S"
        if lin.shape == shape and numpy.array_equal(lin.ravel(), numpy.arange(size)):
            return self.text(x, ATOM), self.layout(x)
        k = self.const_array(numpy.ascontiguousarray(lin).ravel())
        r = f"{self.flat(x)}[{k}]"
        if lin.ndim != 1:
            r = f"{r}.reshape({lin.shape})"
        return r, "C"


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


# ---------------------------------------------------------------------------------------------
# Forms: (writer, value) -> (text, precedence, layout of the result)
# ---------------------------------------------------------------------------------------------

Handler = Callable[[NumbaWriter, Value], "tuple[str, int, str]"]
_FORMS: dict[P.Primitive, Handler] = {}


def _form(*prims: P.Primitive) -> Callable[[Handler], Handler]:
    def register(f: Handler) -> Handler:
        for p in prims:
            _FORMS[p] = f
        return f

    return register


def _ufunc_call(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    ctx = w.context(v)
    args = ", ".join(w.text(a, 0, ctx) for a in v.args)
    if v.kw:
        raise Unsupported(v.prim.name if v.prim else "?", f"keyword arguments {sorted(v.kw)}")
    return f"numpy.{v.prim.name}({args})", ATOM, "C"  # type: ignore[union-attr]


def _infix(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    op, prec = _INFIX[v.prim]  # type: ignore[index]
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


@_form(P.power)
def _power(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
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


@_form(P.identity)
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
    if v.shape == ():
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


@_form(P.transpose, P.swapaxes, P.moveaxis)
def _transpose(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    x = v.args[0]
    nd = len(_shape(x))
    if v.prim is P.transpose:
        perm = tuple(int(a) % nd for a in v.kw["axes"])
    else:
        probe = numpy.empty(tuple(range(2, 2 + nd)))  # distinct sizes name the axes
        names = ("axis1", "axis2") if v.prim is P.swapaxes else ("source", "destination")
        fun = P.swapaxes.fun if v.prim is P.swapaxes else P.moveaxis.fun
        moved = fun(probe, *(v.kw[k] for k in names))
        perm = tuple(int(s) - 2 for s in moved.shape)
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


@_form(P.concatenate, P.stack)
def _concatenate(w: NumbaWriter, v: Value) -> tuple[str, int, str]:
    parts = []
    for a in v.args:
        t = w.text(a, ATOM)
        if _shape(a) == ():
            t = f"numpy.full((), {t})"
        parts.append(w.to_dtype(t, _dtype(a), v.dtype, False))
    name = "concatenate" if v.prim is P.concatenate else "stack"
    return f"numpy.{name}(({', '.join(parts)},), axis={int(v.kw.get('axis', 0))})", ATOM, "C"


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
    if _is_basic(index) and _shape(x) != ():
        return f"{w.text(x, ATOM)}[{w.lit.index(index)}]", ATOM, "A"
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
    return f"numpy.exp(-numpy.logaddexp({w.typed(0, v.dtype)}, -{w.text(x, POWER)}))", ATOM, "C"


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
            t = f"{w.helper('_wrap_index')}({w.text(a)}, {n})"
        else:
            a = numpy.where(a < 0, a + n, a)
            if numpy.any((a < 0) | (a >= n)):
                raise Unsupported("gather", "an index out of bounds")
            t = w.const_array(a.astype(numpy.intp))
        terms.append(t if s == 1 else f"{t} * {s}")
    total = " + ".join(terms)
    n = math.prod(bshape)
    return f"numpy.ascontiguousarray(numpy.broadcast_to({total}, {bshape})).reshape(({n},))"


# ---------------------------------------------------------------------------------------------
# Statements: (writer, value, name) -> (lines, layout)
# ---------------------------------------------------------------------------------------------

Lines = Callable[[NumbaWriter, Value, str], "tuple[list[str], str]"]
_LINES: dict[P.Primitive, Lines] = {}


def _lines(*prims: P.Primitive) -> Callable[[Lines], Lines]:
    def register(f: Lines) -> Lines:
        for p in prims:
            _LINES[p] = f
        return f

    return register


def _scatter_into(
    w: NumbaWriter,
    name: str,
    base: str,
    lin: numpy.ndarray,
    g: Any,
    unique: bool,
    shape: tuple[int, ...],
) -> list[str]:
    k = w.const_array(numpy.ascontiguousarray(lin).ravel().astype(numpy.intp))
    kind = "set" if unique else "add"
    if _shape(g) == ():
        call = f"{w.helper(f'_scatter_{kind}_s')}({name}, {k}, {w.text(g, 0)})"
    else:
        gt = w.text(g, ATOM)
        if _shape(g) != lin.shape:
            gt = f"numpy.ascontiguousarray(numpy.broadcast_to({gt}, {lin.shape}))"
        elif w.layout(g) != "C":
            gt = f"numpy.ascontiguousarray({gt})"
        call = f"{w.helper(f'_scatter_{kind}')}({name}, {k}, {gt}.ravel())"
    last = f"{name} = {name}[0]" if shape == () else f"{name} = {name}.reshape({shape})"
    return [f"{name} = {base}", call, last]


@_lines(P.scatter_add)
def _scatter_add_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    g, index, shape, unique = v.args
    shape = tuple(shape)
    size = math.prod(shape)
    lin = numpy.arange(size, dtype=numpy.intp).reshape(shape)[index]
    base = f"numpy.zeros({size}, {_dt(v.dtype)})"
    return _scatter_into(w, name, base, numpy.asarray(lin), g, bool(unique), shape), "C"


@_lines(P.setitem)
def _setitem_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x, val = v.args
    shape = _shape(x)
    size = math.prod(shape)
    lin = numpy.arange(size, dtype=numpy.intp).reshape(shape)[v.kw["index"]]
    base = f"{w.flat(x)}.copy()" if shape != () else f"numpy.full(1, {w.text(x)})"
    if _dtype(x) != numpy.dtype(v.dtype):
        base = f"{base}.astype({_dt(v.dtype)})"
    return _scatter_into(w, name, base, numpy.asarray(lin), val, True, shape), "C"


@_lines(P.scatter)
def _scatter_dyn_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    g = v.args[0]
    arrays = v.args[1:]
    template = v.kw["template"]
    shape = tuple(v.kw["shape"])
    lead, k, bshape = _leading_index(template, arrays, "scatter")
    rest = shape[k:]
    m = math.prod(rest)
    n = math.prod(bshape)
    lin = _lin_text(w, lead, shape[:k], bshape)
    gt = w.text(g, ATOM)
    if _shape(g) != bshape + rest:
        gt = (
            f"numpy.broadcast_to({gt}, {bshape + rest})"
            if _shape(g) != ()
            else f"numpy.full({bshape + rest}, {gt})"
        )
    gt = f"numpy.ascontiguousarray({gt}).reshape(({n}, {m}))"
    lines = [
        f"{name} = numpy.zeros(({math.prod(shape[:k])}, {m}), {_dt(v.dtype)})",
        f"{w.helper('_add_rows')}({name}, {lin}, {gt})",
        f"{name} = {name}.reshape({shape})",
    ]
    return lines, "C"


@_lines(P.sort_unpermute)
def _unsort_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    g, x = v.args
    text, _, lay = _along_last(
        w, v, x, g, lambda x2, g2: f"{w.helper('_sort_unpermute_last')}({g2}, {x2})"
    )
    return [f"{name} = {text}"], lay


def _bind(w: NumbaWriter, name: str, x: Any) -> tuple[list[str], Any]:
    """Evaluate the argument once: bind it to ``name`` unless it is already a name."""
    text, _ = w.ref(x)
    if text.isidentifier() or not isinstance(x, Value):
        return [], x
    return [f"{name} = {text}"], _Expr(name, _shape(x), _dtype(x))


@_lines(P.logsumexp)
def _lse_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x = v.args[0]
    axis, keep = v.kw.get("axis"), bool(v.kw.get("keepdims", False))
    bind, xx = _bind(w, name, x)
    shape, dt = _shape(x), _dtype(x)
    tx = w.text(xx, SUM + 1)
    mk, _ = w.reduce("max", xx, axis, True, dt)
    e = _Expr(f"numpy.exp({tx} - numpy.nan_to_num({mk}))", shape, dt)
    s, _ = w.reduce("sum", e, axis, keep, v.dtype)
    m, _ = w.reduce("max", xx, axis, keep, dt)
    return bind + [f"{name} = numpy.log({s}) + numpy.nan_to_num({m})"], "C"


@_lines(P.softmax)
def _softmax_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x = v.args[0]
    axis = v.kw.get("axis")
    bind, xx = _bind(w, name, x)
    shape, dt = _shape(x), _dtype(x)
    mk, _ = w.reduce("max", xx, axis, True, dt)
    lines = bind + [f"{name} = numpy.exp({w.text(xx, SUM + 1)} - {mk})"]
    e = _Expr(name, shape, v.dtype)
    s, _ = w.reduce("sum", e, axis, True, v.dtype)
    return lines + [f"{name} = {name} / {s}"], "C"


@_lines(P.log_softmax)
def _log_softmax_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x = v.args[0]
    axis = v.kw.get("axis")
    bind, xx = _bind(w, name, x)
    shape, dt = _shape(x), _dtype(x)
    mk, _ = w.reduce("max", xx, axis, True, dt)
    lines = bind + [f"{name} = {w.text(xx, SUM + 1)} - {mk}"]
    e = _Expr(f"numpy.exp({name})", shape, v.dtype)
    s, _ = w.reduce("sum", e, axis, True, v.dtype)
    return lines + [f"{name} = {name} - numpy.log({s})"], "C"


@_lines(P.xlogy)
def _xlogy_lines(w: NumbaWriter, v: Value, name: str) -> tuple[list[str], str]:
    x, y = v.args
    bind, xx = _bind(w, name, x)
    ctx = v.dtype
    tx = w.text(xx, PRODUCT + 1)
    ty = w.text(y, 0, ctx)
    if v.shape == ():
        inner = f"numpy.log({w.typed(1, ctx)} if {tx} == 0 else {ty})"
        return bind + [f"{name} = {w.typed(0, ctx)} if {tx} == 0 else {tx} * {inner}"], "S"
    zero_x = f"{tx} == 0"
    if _shape(xx) != v.shape:
        zero_x = f"numpy.broadcast_to({zero_x}, {v.shape})"
    inner = f"numpy.log(numpy.where({zero_x}, {w.typed(1, ctx)}, {ty}))"
    return bind + [f"{name} = numpy.where({zero_x}, {w.typed(0, ctx)}, {tx} * {inner})"], "C"


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------


class Generated:
    """A program written for Numba: module text, the kernel's parameters and its constants."""

    def __init__(
        self,
        source: str,
        kernel: str,
        n_inputs: int,
        arg_consts: list[numpy.ndarray],
        results: list[Value],
        plan: list[tuple[str, Any]],
    ) -> None:
        self.source = source
        self.kernel = kernel
        self.n_inputs = n_inputs
        self.arg_consts = arg_consts
        self.results = results
        self.plan = plan  # per output: ("kernel", i), ("const", a) or ("input", i)


def generate(prog: Program, label: str = "f") -> Generated:
    """Write ``prog`` as a Numba module, or raise :class:`Unsupported` naming the operation."""
    params = [f"a{i}" for i in range(len(prog.inputs))]
    refs = {v.id: p for v, p in zip(prog.inputs, params)}
    for v in prog.inputs:
        dt = numpy.dtype(v.dtype)
        if dt.kind not in _OK_KINDS or dt == numpy.float16:
            raise Unsupported("input", f"an input of dtype {dt}")
    w = NumbaWriter(prog, refs)
    body = w.code()
    plan: list[tuple[str, Any]] = []
    results: list[Value] = []
    rets: list[str] = []
    input_pos = {v.id: i for i, v in enumerate(prog.inputs)}
    for o in prog.outputs:
        if isinstance(o, Value) and o.op == CONST:
            plan.append(("const", numpy.asarray(o.const)))
        elif isinstance(o, Value) and o.op == INPUT:
            plan.append(("input", input_pos[o.id]))
        else:
            if o in results:
                plan.append(("kernel", results.index(o)))
                continue
            plan.append(("kernel", len(results)))
            results.append(o)
            rets.append(w.ref(o)[0])
    # constants: small ones written into the module, large ones passed in
    inline: list[int] = []
    passed: list[int] = []
    for i, c in enumerate(w.consts):
        (inline if c.size <= INLINE_CONST_LIMIT else passed).append(i)
    kparams = params + [f"_k{i}" for i in passed]
    checks = [
        f"{p}.shape != {tuple(v.shape)}" for p, v in zip(params, prog.inputs) if v.shape != ()
    ]
    prologue = []
    for i in range(0, len(checks), 4):
        prologue += [f"if {' or '.join(checks[i : i + 4])}:", "    raise ShapeMismatch()"]
    ret = f"({', '.join(rets)}{',' if len(rets) == 1 else ''})"
    kernel = "kernel"
    lines = [
        "# generated by chainrule.jit (backend='numba'); edits are overwritten",
        f"# program: {label}",
        "import numpy",
        "from numba import njit",
        "from chainrule.readers.numba_backend import ShapeMismatch",
        "",
    ]
    for i in inline:
        lines.append(f"_k{i} = {_array_text(w.consts[i])}")
    if inline:
        lines.append("")
    for h in sorted(w.helpers):
        lines.extend(["", _DECORATOR + _HELPERS[h].rstrip(), ""])
    lines.extend(["", _DECORATOR, f"def {kernel}({', '.join(kparams)}):"])
    lines.extend(f"    {c}" for c in prologue + body)
    lines.append(f"    return {ret}")
    lines.append("")
    return Generated(
        "\n".join(lines), kernel, len(params), [w.consts[i] for i in passed], results, plan
    )


def _array_text(a: numpy.ndarray) -> str:
    body = repr(a.ravel().tolist()).replace("inf", "numpy.inf").replace("nan", "numpy.nan")
    return f"numpy.array({body}, dtype=numpy.{a.dtype.name}).reshape({a.shape})"


# ---------------------------------------------------------------------------------------------
# Writing, importing, compiling
# ---------------------------------------------------------------------------------------------


def _writable_dir() -> str:
    d = cache_dir()
    try:
        os.makedirs(d, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    user = os.getuid() if hasattr(os, "getuid") else "user"
    d = os.path.join(tempfile.gettempdir(), f"chainrule-numba-{user}")
    os.makedirs(d, exist_ok=True)
    return d


def load_module(source: str) -> Any:
    """The module for ``source``: written once under its hash, then imported (Numba keys its
    on-disk cache on that file)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    modname = f"chainrule_numba_{digest}"
    mod = sys.modules.get(modname)
    if mod is not None:
        return mod
    d = _writable_dir()
    path = os.path.join(d, f"cr_{digest}.py")
    try:
        with open(path, encoding="utf-8") as f:
            same = f.read() == source
    except OSError:
        same = False
    if not same:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[modname]
        raise
    return mod


def build(
    gen: Generated,
    input_shapes: list[tuple[int, ...]],
    assemble: Callable[[list[str], dict[str, Any]], str] | None = None,
) -> Callable[..., Any]:
    """Import the generated module and return ``run(*inputs)``: a Python function that calls
    the compiled kernel, puts constants and pass-through inputs in place, and returns
    ``assemble(output texts, namespace)`` (default: a tuple of the outputs)."""
    require()
    mod = load_module(gen.source)
    kernel = getattr(mod, gen.kernel)
    ns: dict[str, Any] = {"_kernel": kernel}
    params = [f"a{i}" for i in range(gen.n_inputs)]
    call = [f"{p}[()]" if s == () else p for p, s in zip(params, input_shapes)]
    for i, c in enumerate(gen.arg_consts):
        ns[f"_K{i}"] = c
        call.append(f"_K{i}")
    outs = []
    for j, (kind, what) in enumerate(gen.plan):
        if kind == "const":
            ns[f"_C{j}"] = what
            outs.append(
                f"_C{j}.copy()"
                if isinstance(what, numpy.ndarray) and what.ndim
                else f"_C{j}[()]"
                if isinstance(what, numpy.ndarray)
                else f"_C{j}"
            )
        elif kind == "input":
            outs.append(params[what])
        else:
            v = gen.results[what]
            if v.shape == ():
                ns[f"_T{j}"] = numpy.dtype(v.dtype).type
                outs.append(f"_T{j}(_r[{what}])")
            else:
                outs.append(f"_r[{what}]")
    result = (
        assemble(outs, ns)
        if assemble is not None
        else f"({', '.join(outs)}{',' if len(outs) == 1 else ''})"
    )
    src = (
        f"def run({', '.join(params)}):\n    _r = _kernel({', '.join(call)})\n    return {result}\n"
    )
    exec(compile(src, "<chainrule.jit numba glue>", "exec"), ns)
    run = ns["run"]
    run.kernel = kernel
    return run  # type: ignore[no-any-return]


def _behaved(a: Any) -> Any:
    if type(a) is numpy.ndarray and a.ndim and not (a.flags.carray and a.dtype.isnative):
        return numpy.array(a, order="C", dtype=a.dtype.newbyteorder("="))
    return a


def safe(run: Callable[..., Any]) -> Callable[..., Any]:
    """``run`` for any arrays: non-contiguous, read-only or unaligned ones are copied first
    (the kernel is compiled for C-contiguous, writable arrays only)."""

    def call(*args: Any) -> Any:
        return run(*map(_behaved, args))

    call.kernel = run.kernel  # type: ignore[attr-defined]
    call.raw = run  # type: ignore[attr-defined]
    return call


def compile_errors() -> tuple[type[BaseException], ...]:
    """What a failed Numba compilation raises (and what our own emitter might, at run time)."""
    import numba.core.errors as ne

    return (
        ne.NumbaError,
        NotImplementedError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        KeyError,
        AssertionError,
    )


def quiet() -> Any:
    """A context in which Numba's own warnings (performance hints...) are silenced."""
    ctx = warnings.catch_warnings()

    class _Quiet:
        def __enter__(self) -> None:
            ctx.__enter__()
            try:
                from numba.core.errors import NumbaWarning

                warnings.simplefilter("ignore", NumbaWarning)
            except ImportError:  # pragma: no cover
                pass

        def __exit__(self, *exc: Any) -> None:
            ctx.__exit__(*exc)

    return _Quiet()


def describe_failure(err: BaseException, source: str) -> str:
    """The first lines of a Numba error, with the generated line it points at."""
    msg = str(err)
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    head = next(
        (ln for ln in lines if not ln.startswith("Failed in")),
        lines[0] if lines else type(err).__name__,
    )
    m = re.findall(r"cr_[0-9a-f]+\.py\", line (\d+)", msg)
    where = ""
    if m:
        src_lines = source.splitlines()
        n = int(m[-1])
        if 0 < n <= len(src_lines):
            where = f" at `{src_lines[n - 1].strip()}`"
    return f"{type(err).__name__}: {head[:300]}{where}"
