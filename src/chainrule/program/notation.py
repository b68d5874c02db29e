"""How each primitive prints: as NumPy source (exported code, ``jit``) and as mathematics.

A :class:`Form` is a function of the arguments' texts and the primitive's parameters, with the
precedence of its result and the precedence each argument slot needs (so parentheses appear
exactly where Python, or the reader, needs them).  Constants (arrays, slices, dtypes) are
written by a :class:`Literals` object, which the exporter and ``jit`` configure differently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.primitives import Primitive

__all__ = [
    "Form",
    "Literals",
    "ReadableLiterals",
    "SOURCE",
    "MATH",
    "source_form",
    "math_form",
    "STATEMENTS",
]

ATOM, POWER, UNARY, PRODUCT, SUM, COMPARE = 100, 90, 80, 70, 60, 50


class Form:
    """``fmt(args, kw, lit) -> str`` with result precedence ``prec`` and per-slot needs."""

    __slots__ = ("fmt", "prec", "slots")

    def __init__(self, fmt: Callable[..., str], prec: int, slots: Any = 0) -> None:
        self.fmt = fmt
        self.prec = prec
        self.slots = slots

    def slot(self, i: int) -> int:
        return (
            self.slots[i]
            if isinstance(self.slots, tuple) and i < len(self.slots)
            else (self.slots if isinstance(self.slots, int) else 0)
        )


class Literals:
    """Writes constants as Python source; large arrays go through ``hoist`` (a name)."""

    def __init__(
        self, hoist: Callable[[numpy.ndarray], str] | None = None, inline_limit: int = 64
    ) -> None:
        self.hoist = hoist
        self.inline_limit = inline_limit

    def __call__(self, x: Any) -> str:
        if isinstance(x, bool) or x is None:
            return repr(x)
        if isinstance(x, numpy.floating):  # before float: numpy.float64 subclasses it
            return self.array(numpy.asarray(x))
        if isinstance(x, int):
            return repr(int(x))
        if isinstance(x, float):
            return _float(x)
        if isinstance(x, numpy.dtype) or (isinstance(x, type) and issubclass(x, numpy.generic)):
            return f"numpy.{numpy.dtype(x).name}"
        if isinstance(x, slice):
            return f"slice({self(x.start)}, {self(x.stop)}, {self(x.step)})"
        if x is Ellipsis:
            return "..."
        if isinstance(x, str):
            return repr(x)
        if isinstance(x, tuple):
            inner = ", ".join(self(i) for i in x)
            return f"({inner},)" if len(x) == 1 else f"({inner})"
        if isinstance(x, list):
            return "[" + ", ".join(self(i) for i in x) + "]"
        if isinstance(x, (numpy.ndarray, numpy.generic)):
            return self.array(numpy.asarray(x))
        return repr(x)

    def array(self, a: numpy.ndarray) -> str:
        if a.ndim == 0 and a.dtype.kind == "f" and a.dtype == numpy.float64:
            # a NumPy float64 keeps its type in NumPy's promotion (a Python float would not)
            return f"numpy.float64({_float(float(a))})"
        if a.ndim == 0 and a.dtype.kind in "iub" and a.dtype in (numpy.int64, numpy.bool_):
            return repr(a.item())
        if (
            self.inline_limit > 0
            and a.ndim == 1
            and a.size > 1
            and a.dtype == numpy.intp
            and numpy.array_equal(a, numpy.arange(a.size))
        ):
            return f"numpy.arange({a.size})"  # rows = numpy.arange(n), as people write it
        if a.size > self.inline_limit and self.hoist is not None:
            return self.hoist(a)
        if (
            a.size
            and numpy.all(a == a.flat[0])
            and a.size > 1
            and a.dtype.kind in "fiub"
            and not (a.dtype.kind == "f" and math.isnan(a.flat[0]))
        ):
            return f"numpy.full({a.shape}, {self(a.flat[0].item())}, dtype=numpy.{a.dtype.name})"
        body = repr(a.tolist()).replace("inf", "numpy.inf").replace("nan", "numpy.nan")
        return f"numpy.array({body}, dtype=numpy.{a.dtype.name})"

    def index(self, ix: Any) -> str:
        items = ix if isinstance(ix, tuple) else (ix,)
        parts = []
        for i in items:
            if isinstance(i, slice):
                s = (
                    ("" if i.start is None else self(i.start))
                    + ":"
                    + ("" if i.stop is None else self(i.stop))
                )
                if i.step is not None:
                    s += ":" + self(i.step)
                parts.append(s)
            else:
                parts.append(self(i))
        if isinstance(ix, tuple) and len(ix) == 1:
            return parts[0] + ","
        return ", ".join(parts) if parts else "()"


class ReadableLiterals(Literals):
    """Constants as a reader writes them (``explain``'s text, never exported code): scalars as
    plain numbers (``-1`` rather than ``numpy.float64(-1.0)``, no negative zero), and numbers
    the user named (``LAM = 0.1`` at module level or in a closure) by their name.

    Example
    -------
    >>> lit = ReadableLiterals({0.1: "LAM"})
    >>> lit(numpy.float64(-1.0)), lit(numpy.float64(-0.0)), lit(0.1), lit(numpy.float64(0.1))
    ('-1', '0', 'LAM', 'LAM')
    """

    def __init__(
        self,
        named: dict[float, str] | None = None,
        inline_limit: int = 64,
        arrays: dict[int, tuple[str, Any]] | None = None,
    ) -> None:
        super().__init__(None, inline_limit)
        self.named = dict(named or {})
        self.arrays = dict(arrays or {})  # id(array) -> (the user's name, the array)

    def _scalar_or_super(self, x: Any) -> str:
        if isinstance(x, (float, numpy.floating)) or (
            isinstance(x, numpy.ndarray) and x.ndim == 0 and x.dtype.kind == "f"
        ):
            return self.number(float(x))
        return super().__call__(x)

    def __call__(self, x: Any) -> str:
        held = self.arrays.get(id(x)) if isinstance(x, numpy.ndarray) else None
        if held is not None and held[1] is x:
            return held[0]
        return self._scalar_or_super(x)

    def array(self, a: numpy.ndarray) -> str:
        held = self.arrays.get(id(a))
        if held is not None and held[1] is a:
            return held[0]
        if a.ndim == 0 and a.dtype.kind == "f":
            return self.number(float(a))
        for name, b in self.arrays.values():  # a folded transpose of the user's array
            if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and numpy.array_equal(a, b.T):
                return f"{name}.T"
        if a.dtype.kind == "f" and a.size > 1:
            # NumPy arithmetic on the user's data before it met a tensor (-y, 1 - y)
            for name, b in self.arrays.values():
                if b.shape != a.shape or b.dtype.kind not in "fiub":
                    continue
                if numpy.array_equal(a, -b.astype(a.dtype)):
                    return f"(-{name})"
                if numpy.array_equal(a, 1 - b.astype(a.dtype)):
                    return f"(1 - {name})"
        if a.size > 1:  # one row of the user's data, read in a loop: X[i]
            for name, b in self.arrays.values():
                if b.ndim != a.ndim + 1 or b.shape[1:] != a.shape or b.dtype != a.dtype:
                    continue
                rows = (b.reshape(b.shape[0], -1) == a.reshape(1, -1)).all(axis=1)
                hits = numpy.flatnonzero(rows)
                if hits.size == 1:
                    return f"{name}[{int(hits[0])}]"
        return super().array(a)

    def number(self, x: float) -> str:
        if x in self.named:
            return self.named[x]
        if -x in self.named and x != 0:
            return "-" + self.named[-x]
        if x == 0:
            return "0"  # never -0: a learner reads it as another number
        if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
            return str(int(x))
        return _float(x)


def _float(x: float) -> str:
    if math.isinf(x):
        return "numpy.inf" if x > 0 else "-numpy.inf"
    if math.isnan(x):
        return "numpy.nan"
    return repr(float(x))


def _kw(
    kw: dict[str, Any],
    lit: Literals,
    defaults: dict[str, Any],
    order: list[str],
    positional: tuple[str, ...] = (),
) -> str:
    parts = []
    for k in order:
        if k not in kw:
            continue
        v = kw[k]
        if k in defaults and _same(v, defaults[k]):
            continue
        parts.append(lit(v) if k in positional else f"{k}={lit(v)}")
    return ", ".join(parts)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # pragma: no cover - arrays compared with scalars
        return False


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# Source forms
# ---------------------------------------------------------------------------------------------


def _qr_mode(kw: dict[str, Any]) -> str:
    return f", mode={kw['mode']!r}" if kw.get("mode", "reduced") != "reduced" else ""


def _uplo(kw: dict[str, Any]) -> str:
    return f", UPLO={kw['UPLO']!r}" if kw.get("UPLO", "L") != "L" else ""


def infix(op: str, prec: int, right_assoc: bool = False) -> Form:
    slots = (prec + 1, prec) if right_assoc else (prec, prec + 1)
    return Form(lambda a, kw, lit: f"{a[0]} {op} {a[1]}", prec, slots)


def prefix(op: str) -> Form:
    return Form(lambda a, kw, lit: f"{op}{a[0]}", UNARY, (UNARY,))


def call(
    path: str,
    order: list[str] | None = None,
    defaults: dict[str, Any] | None = None,
    positional: tuple[str, ...] = (),
) -> Form:
    def form(a: list[str], kw: dict[str, Any], lit: Literals) -> str:
        keywords = _kw(kw, lit, defaults or {}, order or list(kw), positional)
        return f"{path}({_join(', '.join(a), keywords)})"

    return Form(form, ATOM, 0)


def method(
    name: str,
    order: list[str] | None = None,
    defaults: dict[str, Any] | None = None,
    positional: tuple[str, ...] = (),
) -> Form:
    def form(a: list[str], kw: dict[str, Any], lit: Literals) -> str:
        keywords = _kw(kw, lit, defaults or {}, order or list(kw), positional)
        return f"{a[0]}.{name}({_join(', '.join(a[1:]), keywords)})"

    return Form(form, ATOM, (ATOM, 0, 0, 0))


REDUCE = {"axis": None, "keepdims": False}

SOURCE: dict[Primitive, Form] = {
    P.add: infix("+", SUM),
    P.subtract: infix("-", SUM),
    P.multiply: infix("*", PRODUCT),
    P.divide: infix("/", PRODUCT),
    P.matmul: infix("@", PRODUCT),
    P.remainder: infix("%", PRODUCT),
    P.power: infix("**", POWER, right_assoc=True),
    P.negative: prefix("-"),
    P.positive: prefix("+"),
    P.dot: method("dot"),
    P.sum_: method("sum", ["axis", "keepdims"], REDUCE),
    P.mean: method("mean", ["axis", "keepdims"], REDUCE),
    P.prod: method("prod", ["axis", "keepdims"], REDUCE),
    P.amax: method("max", ["axis", "keepdims"], REDUCE),
    P.amin: method("min", ["axis", "keepdims"], REDUCE),
    P.var: method("var", ["axis", "ddof", "keepdims"], {**REDUCE, "ddof": 0}),
    P.std: method("std", ["axis", "ddof", "keepdims"], {**REDUCE, "ddof": 0}),
    P.reshape: method("reshape", ["shape"], positional=("shape",)),
    P.astype: method("astype", ["dtype"], positional=("dtype",)),
    P.copy: method("copy"),
    P.identity: Form(lambda a, kw, lit: a[0], ATOM, ATOM),
    P.stop_gradient: Form(lambda a, kw, lit: a[0], ATOM, ATOM),
    P.getitem: Form(lambda a, kw, lit: f"{a[0]}[{lit.index(kw['index'])}]", ATOM, (ATOM,)),
    P.cumsum: call("numpy.cumsum", ["axis"]),
    P.cumprod: call("numpy.cumprod", ["axis"]),
    P.norm: call(
        "numpy.linalg.norm",
        ["ord", "axis", "keepdims"],
        {"ord": None, "axis": None, "keepdims": False},
    ),
    P.tensordot: call("numpy.tensordot", ["axes"]),
    P.einsum: Form(
        lambda a, kw, lit: f"numpy.einsum({kw['subscripts']!r}, {', '.join(a)})", ATOM, 0
    ),
    P.logabsdet: Form(lambda a, kw, lit: f"numpy.linalg.slogdet({a[0]})[1]", ATOM, 0),
    P.detsign: Form(lambda a, kw, lit: f"numpy.linalg.slogdet({a[0]})[0]", ATOM, 0),
    P.eighvals: Form(lambda a, kw, lit: f"numpy.linalg.eigh({a[0]}{_uplo(kw)})[0]", ATOM, 0),
    P.eigvecsh: Form(lambda a, kw, lit: f"numpy.linalg.eigh({a[0]}{_uplo(kw)})[1]", ATOM, 0),
    P.svd_u: Form(
        lambda a, kw, lit: f"numpy.linalg.svd({a[0]}, full_matrices={kw.get('full', False)})[0]",
        ATOM,
        0,
    ),
    P.qr_q: Form(lambda a, kw, lit: f"numpy.linalg.qr({a[0]}{_qr_mode(kw)})[0]", ATOM, 0),
    P.qr_r: Form(lambda a, kw, lit: f"numpy.linalg.qr({a[0]}{_qr_mode(kw)})[1]", ATOM, 0),
    P.eigvecs: Form(lambda a, kw, lit: f"numpy.linalg.eig({a[0]})[1]", ATOM, 0),
    P.eigw: Form(lambda a, kw, lit: f"numpy.linalg.eig({a[0]})[0]", ATOM, 0),
    P.svd_s: Form(lambda a, kw, lit: f"numpy.linalg.svd({a[0]}, compute_uv=False)", ATOM, 0),
    P.svd_vh: Form(
        lambda a, kw, lit: f"numpy.linalg.svd({a[0]}, full_matrices={kw.get('full', False)})[2]",
        ATOM,
        0,
    ),
    P.lstsq_x: Form(
        lambda a, kw, lit: f"numpy.linalg.lstsq({a[0]}, {a[1]}, rcond={lit(kw['rcond'])})[0]",
        ATOM,
        0,
    ),
    P.trace: call(
        "numpy.trace", ["offset", "axis1", "axis2"], {"offset": 0, "axis1": 0, "axis2": 1}
    ),
    P.diagonal: call(
        "numpy.diagonal", ["offset", "axis1", "axis2"], {"offset": 0, "axis1": 0, "axis2": 1}
    ),
    P.swapaxes: call("numpy.swapaxes", ["axis1", "axis2"], positional=("axis1", "axis2")),
    P.moveaxis: call(
        "numpy.moveaxis", ["source", "destination"], positional=("source", "destination")
    ),
    P.broadcast_to: call("numpy.broadcast_to", ["shape"], positional=("shape",)),
    P.concatenate: Form(
        lambda a, kw, lit: f"numpy.concatenate([{', '.join(a)}], axis={kw['axis']})", ATOM, 0
    ),
    P.stack: Form(lambda a, kw, lit: f"numpy.stack([{', '.join(a)}], axis={kw['axis']})", ATOM, 0),
    P.flip: call("numpy.flip", ["axis"], {"axis": None}),
    P.roll: call("numpy.roll", ["shift", "axis"], {"axis": None}, positional=("shift",)),
    P.tile: call("numpy.tile", ["reps"], positional=("reps",)),
    P.repeat: call("numpy.repeat", ["repeats", "axis"], positional=("repeats",)),
    P.pad: call(
        "numpy.pad",
        ["pad_width", "constant_values"],
        {"constant_values": 0},
        positional=("pad_width",),
    ),
    P.take: call("numpy.take", ["indices", "axis"], positional=("indices",)),
    P.take_along_axis: call("numpy.take_along_axis", ["indices", "axis"], positional=("indices",)),
    P.sort: call("numpy.sort", ["axis", "kind"], {"axis": -1, "kind": None}),
    P.triu: call("numpy.triu", ["k"], {"k": 0}),
    P.tril: call("numpy.tril", ["k"], {"k": 0}),
    P.where: call("numpy.where"),
    P.clip: call("numpy.clip"),
    P.sliding_window_view: call(
        "numpy.lib.stride_tricks.sliding_window_view",
        ["window_shape", "axis"],
        positional=("window_shape",),
    ),
    P.sort_permute: Form(
        lambda a, kw, lit: (
            f"numpy.take_along_axis({a[0]}, numpy.argsort({a[1]}, axis={kw['axis']}, "
            f"kind='stable'), axis={kw['axis']})"
        ),
        ATOM,
        0,
    ),
}


def _fft_source(one: str, many: str) -> Form:
    """numpy.fft calls as people write them: fft(x, n=, axis=) for one axis, fftn(x, s=, axes=)
    for several, norm only when it is not the default."""

    def form(a: list[str], kw: dict[str, Any], lit: Literals) -> str:
        s, axes, norm = kw["s"], kw["axes"], kw["norm"]
        tail = "" if norm == "backward" else f", norm={norm!r}"
        if len(axes) == 1:
            return f"numpy.fft.{one}({a[0]}, n={s[0]}, axis={axes[0]}{tail})"
        return f"numpy.fft.{many}({a[0]}, s={lit(tuple(s))}, axes={lit(tuple(axes))}{tail})"

    return Form(form, ATOM, 0)


SOURCE[P.fftn] = _fft_source("fft", "fftn")
SOURCE[P.ifftn] = _fft_source("ifft", "ifftn")
SOURCE[P.rfftn] = _fft_source("rfft", "rfftn")
SOURCE[P.irfftn] = _fft_source("irfft", "irfftn")
SOURCE[P.logdet] = Form(
    lambda a, kw, lit: f"(lambda sl: sl[1] + numpy.log(sl[0]))(numpy.linalg.slogdet({a[0]}))",
    ATOM,
    0,
)

_TRANSPOSE_ALL = method("T")


def _transpose(a: list[str], kw: dict[str, Any], lit: Literals) -> str:
    axes = tuple(kw["axes"])
    if axes == tuple(range(len(axes)))[::-1]:
        return f"{a[0]}.T"
    return f"{a[0]}.transpose({lit(axes)})"


SOURCE[P.transpose] = Form(_transpose, ATOM, (ATOM,))

for _uf, _op in (
    (numpy.greater, ">"),
    (numpy.greater_equal, ">="),
    (numpy.less, "<"),
    (numpy.less_equal, "<="),
    (numpy.equal, "=="),
    (numpy.not_equal, "!="),
):
    SOURCE[P.NONDIFF_UFUNCS[_uf]] = infix(_op, COMPARE)
SOURCE[P.NONDIFF_UFUNCS[numpy.floor_divide]] = infix("//", PRODUCT)
SOURCE[P.NONDIFF_UFUNCS[numpy.invert]] = prefix("~")


def index_text(template: tuple[Any, ...], slots: list[str], lit: Literals) -> str:
    """An index with slots written as the names of the arrays that fill them."""
    parts = []
    for i in template:
        if isinstance(i, P.Slot):
            parts.append(slots[i.k])
        else:
            parts.append(lit.index((i,)).rstrip(","))
    return ", ".join(parts) + ("," if len(parts) == 1 else "")


SOURCE[P.gather] = Form(
    lambda a, kw, lit: f"{a[0]}[{index_text(kw['template'], a[1:], lit)}]", ATOM, (ATOM,)
)

# Values that need statements, not expressions: (name, args, kw, lit) -> lines.
STATEMENTS: dict[Primitive, Callable[..., list[str]]] = {}


def _scatter_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    g, index, shape, unique = raw
    dtype = kw["__dtype__"]
    lines = [f"{name} = numpy.zeros({lit(tuple(shape))}, dtype=numpy.{dtype.name})"]
    if unique:
        lines.append(f"{name}[{lit.index(index)}] = {a[0]}")
    else:
        lines.append(f"numpy.add.at({name}, {lit(index)}, {a[0]})")
    return lines


def _setitem_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    return [
        f"{name} = numpy.array({a[0]}, copy=True)",
        f"{name}[{lit.index(kw['index'])}] = {a[1]}",
    ]


def _unsort_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    ax = kw["axis"]
    return [
        f"{name} = numpy.empty_like({a[0]})",
        f"numpy.put_along_axis({name}, numpy.argsort({a[1]}, axis={ax}, kind='stable'), "
        f"{a[0]}, axis={ax})",
    ]


def _scatter_adds_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    dtype = kw["__dtype__"]
    make = "empty" if kw.get("covers") else "zeros"  # every position is written below
    lines = [f"{name} = numpy.{make}({lit(tuple(kw['shape']))}, dtype=numpy.{dtype.name})"]
    lines += [f"{name}[{lit.index(ix)}] = {g}" for g, ix in zip(a, kw["indices"])]
    return lines


STATEMENTS[P.scatter_add] = _scatter_lines
STATEMENTS[P.scatter_adds] = _scatter_adds_lines
STATEMENTS[P.sort_unpermute] = _unsort_lines
STATEMENTS[P.setitem] = _setitem_lines


def _scatter_dyn_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    dtype = kw["__dtype__"]
    return [
        f"{name} = numpy.zeros({lit(tuple(kw['shape']))}, dtype=numpy.{dtype.name})",
        f"numpy.add.at({name}, ({index_text(kw['template'], a[1:], lit)}), {a[0]})",
    ]


STATEMENTS[P.scatter] = _scatter_dyn_lines


def source_form(prim: Primitive) -> Form:
    """The source form of ``prim`` (a NumPy call by name when none is registered; the
    primitives of SciPy's ufuncs, named ``scipy.special.<name>``, call SciPy by that name)."""
    form = SOURCE.get(prim)
    if form is not None:
        return form
    if prim.custom or prim.name.startswith("scipy."):
        return call(prim.name)
    return call(f"numpy.{prim.name}")


def needs_scipy(prims: Any) -> bool:
    """Whether code that calls ``prims`` needs ``import scipy.special`` (a SciPy ufunc's
    primitive among them)."""
    return any(p is not None and not p.custom and p.name.startswith("scipy.") for p in prims)


# ---------------------------------------------------------------------------------------------
# Mathematical forms (for ``why``): unicode text, or LaTeX
# ---------------------------------------------------------------------------------------------

SYMBOLS = {
    "times": ("⊙", r"\odot"),
    "matmul": ("·", r"\cdot"),
    "T": ("ᵀ", r"^{\top}"),
    "ind": ("𝟙", r"\mathbb{1}"),
    "sum": ("Σ", r"\sum"),
    "minus": ("−", "-"),
    "le": ("≤", r"\le"),
    "ge": ("≥", r"\ge"),
    "ne": ("≠", r"\ne"),
}


def sym(key: str, latex: bool) -> str:
    return SYMBOLS[key][1 if latex else 0]


def mform(fmt: Callable[[list[str], dict[str, Any], bool], str], prec: int, slots: Any = 0) -> Form:
    return Form(fmt, prec, slots)


def _minfix(key_or_op: str, prec: int) -> Form:
    def fmt(a: list[str], kw: dict[str, Any], latex: bool) -> str:
        op = sym(key_or_op, latex) if key_or_op in SYMBOLS else key_or_op
        return f"{a[0]} {op} {a[1]}"

    return Form(fmt, prec, (prec, prec + 1))


def _mfun(name: str) -> Form:
    def fmt(a: list[str], kw: dict[str, Any], latex: bool) -> str:
        n = rf"\operatorname{{{name}}}" if latex else name
        return f"{n}({', '.join(a)})"

    return Form(fmt, ATOM, 0)


def _axis_text(kw: dict[str, Any]) -> str:
    ax = kw.get("axis")
    return "" if ax is None else f"axis {ax}"


def _msum(a: list[str], kw: dict[str, Any], latex: bool) -> str:
    ax = _axis_text(kw)
    if latex:
        return rf"\sum_{{\text{{{ax}}}}} {a[0]}" if ax else rf"\sum {a[0]}"
    return f"Σ_{{{ax}}} {a[0]}" if ax else f"Σ {a[0]}"


def _mindicator(op: str) -> Form:
    def fmt(a: list[str], kw: dict[str, Any], latex: bool) -> str:
        o = sym(op, latex) if op in SYMBOLS else op
        return f"{sym('ind', latex)}[{a[0]} {o} {a[1]}]"

    return Form(fmt, ATOM, (COMPARE + 1, COMPARE + 1))


def _mtimes(a: list[str], kw: dict[str, Any], latex: bool) -> str:
    scalar = any(_NUMBER.fullmatch(t) for t in a)
    return f"{a[0]} {sym('matmul' if scalar else 'times', latex)} {a[1]}"


def _mtranspose(a: list[str], kw: dict[str, Any], latex: bool) -> str:
    """``Aᵀ`` for a matrix; any other permutation of axes is written as the permutation."""
    axes = tuple(kw.get("axes") or ())
    if axes == (1, 0):
        return f"{a[0]}{sym('T', latex)}"
    name = r"\operatorname{transpose}" if latex else "transpose"
    return f"{name}({a[0]}, {axes})"


_NUMBER = re.compile(r"-?\d+(\.\d*)?(e-?\d+)?")

MATH: dict[Primitive, Form] = {
    P.add: _minfix("+", SUM),
    P.subtract: _minfix("minus", SUM),
    P.multiply: Form(_mtimes, PRODUCT, (PRODUCT, PRODUCT + 1)),
    P.divide: _minfix("/", PRODUCT),
    P.matmul: _minfix("matmul", PRODUCT),
    P.dot: _minfix("matmul", PRODUCT),
    P.power: Form(
        lambda a, kw, latex: f"{a[0]}^{{{a[1]}}}" if latex else f"{a[0]}^{a[1]}",
        POWER,
        (POWER + 1, ATOM),
    ),
    P.negative: Form(lambda a, kw, latex: f"{sym('minus', latex)}{a[0]}", UNARY, (UNARY,)),
    P.transpose: Form(_mtranspose, ATOM, (ATOM,)),
    P.sum_: Form(_msum, SUM, (PRODUCT,)),
    P.broadcast_to: Form(lambda a, kw, latex: a[0], ATOM, (ATOM,)),
    P.reshape: Form(lambda a, kw, latex: a[0], ATOM, (ATOM,)),
    P.identity: Form(lambda a, kw, latex: a[0], ATOM, (ATOM,)),
    P.stop_gradient: Form(lambda a, kw, latex: a[0], ATOM, (ATOM,)),
    P.maximum: _mfun("max"),
    P.minimum: _mfun("min"),
    P.conjugate: Form(
        lambda a, kw, latex: rf"\overline{{{a[0]}}}" if latex else f"conj({a[0]})", ATOM, 0
    ),
    P.real: _mfun("Re"),
    P.imag: _mfun("Im"),
}


def _fourier(text: str, latex_text: str) -> Form:
    """A discrete Fourier transform as 𝓕 (over the axes it transforms, when not all)."""

    def fmt(a: list[str], kw: dict[str, Any], latex: bool) -> str:
        return f"{latex_text if latex else text}({a[0]})"

    return Form(fmt, ATOM, 0)


MATH[P.fftn] = _fourier("𝓕", r"\mathcal{F}")
MATH[P.ifftn] = _fourier("𝓕⁻¹", r"\mathcal{F}^{-1}")
MATH[P.rfftn] = _fourier("𝓕ᵣ", r"\mathcal{F}_{r}")
MATH[P.irfftn] = _fourier("𝓕ᵣ⁻¹", r"\mathcal{F}_{r}^{-1}")
for _uf, _op in (
    (numpy.greater, ">"),
    (numpy.greater_equal, "ge"),
    (numpy.less, "<"),
    (numpy.less_equal, "le"),
    (numpy.equal, "="),
    (numpy.not_equal, "ne"),
):
    MATH[P.NONDIFF_UFUNCS[_uf]] = _mindicator(_op)


def math_form(prim: Primitive) -> Form:
    """The mathematical form of ``prim`` (its name as a function when none is registered)."""
    form = MATH.get(prim)
    return form if form is not None else _mfun(prim.name.split(".")[-1])


# ---------------------------------------------------------------------------------------------
# Numerically stable functions (chainrule.functions)
# ---------------------------------------------------------------------------------------------
# Each writes the very NumPy code its primitive runs (primitives.py, "numerically stable
# functions"), so that exported code and jit compute the eager path's numbers and never
# overflow.  The SOURCE forms are single expressions; the STATEMENTS below are what the writer
# uses: they evaluate an argument that the code reads more than once only once (an expression
# is first bound to the result's own name), and softmax/log_softmax reuse their exponentials.


def _axis_arg(kw: dict[str, Any], lit: Literals) -> str:
    return "" if kw.get("axis") is None else f", axis={lit(kw['axis'])}"


def _keep_arg(kw: dict[str, Any]) -> str:
    return ", keepdims=True" if kw.get("keepdims") else ""


def _lse_text(x: str, kw: dict[str, Any], lit: Literals) -> str:
    ax, keep = _axis_arg(kw, lit), _keep_arg(kw)
    return (
        f"numpy.log(numpy.sum(numpy.exp({x} - numpy.nan_to_num(numpy.max({x}{ax}, "
        f"keepdims=True))){ax}{keep})) + numpy.nan_to_num(numpy.max({x}{ax}{keep}))"
    )


def _softmax_text(x: str, kw: dict[str, Any], lit: Literals) -> str:
    ax = _axis_arg(kw, lit)
    e = f"numpy.exp({x} - numpy.max({x}{ax}, keepdims=True))"
    return f"{e} / numpy.sum({e}{ax}, keepdims=True)"


def _log_softmax_text(x: str, kw: dict[str, Any], lit: Literals) -> str:
    ax = _axis_arg(kw, lit)
    s = f"{x} - numpy.max({x}{ax}, keepdims=True)"
    return f"{s} - numpy.log(numpy.sum(numpy.exp({s}){ax}, keepdims=True))"


def _xlogy_text(x: str, y: str) -> str:
    return f"numpy.where({x} == 0, 0, {x} * numpy.log(numpy.where({x} == 0, 1, {y})))"


SOURCE[P.logsumexp] = Form(lambda a, kw, lit: _lse_text(a[0], kw, lit), SUM, (SUM + 1,))
SOURCE[P.softmax] = Form(lambda a, kw, lit: _softmax_text(a[0], kw, lit), PRODUCT, (SUM + 1,))
SOURCE[P.log_softmax] = Form(lambda a, kw, lit: _log_softmax_text(a[0], kw, lit), SUM, (SUM + 1,))
SOURCE[P.sigmoid] = Form(
    lambda a, kw, lit: f"numpy.exp(numpy.minimum({a[0]}, 0)) / (1 + numpy.exp(-numpy.abs({a[0]})))",
    PRODUCT,
    (0, 0),
)
SOURCE[P.xlogy] = Form(lambda a, kw, lit: _xlogy_text(a[0], a[1]), ATOM, (PRODUCT + 1, 0))
SOURCE[P.safe_norm] = Form(
    lambda a, kw, lit: (
        f"numpy.hypot(numpy.hypot.reduce({a[0]}{_axis_arg(kw, lit)}{_keep_arg(kw)}), "
        f"{lit(kw['eps'])})"
    ),
    ATOM,
    0,
)

# Texts that are cheap and safe to repeat: names, W[0], params['b'], x.T, numbers.
_CHEAP = re.compile(r"-?[\w.]+(\[[\w'\" ,:.-]*\])*")


def _once(name: str, x: str) -> tuple[list[str], str]:
    """Bind the argument text ``x`` to ``name`` first unless it is cheap to repeat."""
    if _CHEAP.fullmatch(x):
        return [], x
    return [f"{name} = {x}"], name


def _lse_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    bind, x = _once(name, a[0])
    return bind + [f"{name} = {_lse_text(x, kw, lit)}"]


def _softmax_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    bind, x = _once(name, a[0])
    ax = _axis_arg(kw, lit)
    return bind + [
        f"{name} = numpy.exp({x} - numpy.max({x}{ax}, keepdims=True))",
        f"{name} = {name} / numpy.sum({name}{ax}, keepdims=True)",
    ]


def _log_softmax_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    bind, x = _once(name, a[0])
    ax = _axis_arg(kw, lit)
    return bind + [
        f"{name} = {x} - numpy.max({x}{ax}, keepdims=True)",
        f"{name} = {name} - numpy.log(numpy.sum(numpy.exp({name}){ax}, keepdims=True))",
    ]


def _xlogy_lines(
    name: str, a: list[str], kw: dict[str, Any], lit: Literals, raw: list[Any]
) -> list[str]:
    bind, x = _once(name, a[0])
    return bind + [f"{name} = {_xlogy_text(x, a[1])}"]


STATEMENTS[P.logsumexp] = _lse_lines
STATEMENTS[P.softmax] = _softmax_lines
STATEMENTS[P.log_softmax] = _log_softmax_lines
STATEMENTS[P.xlogy] = _xlogy_lines
