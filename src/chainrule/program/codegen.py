"""Programs written out as straight-line NumPy source, one statement per named value.

A value becomes a statement when it has a name, is read more than once, is an output, or needs
statements rather than an expression (scatters); anything else is written inline into the one
expression that reads it, with parentheses exactly where precedence needs them.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.rules import Size

from .ir import CONST, INPUT, Program, Value, const_value, distinct_positions, is_const
from .notation import (
    ATOM,
    STATEMENTS,
    UNARY,
    Form,
    Literals,
    index_text,
    math_form,
    source_form,
    sym,
)

__all__ = ["Line", "Writer", "identifier"]

# An expression nests at most this many inlined operations; a longer chain is cut into
# statements (so a 100,000-step recurrence is written, compiled and read without recursion
# limits, and stays readable).
MAX_INLINE_DEPTH = 12

_DOT_CALL = Form(lambda a, kw, lit: f"numpy.dot({a[0]}, {a[1]})", ATOM, 0)


def _has_negative_zero(c: Any) -> bool:
    arr = numpy.asarray(c)
    if arr.dtype.kind == "c":
        return True  # not analysed: the general spelling
    return arr.dtype.kind == "f" and bool(numpy.any((arr == 0) & numpy.signbit(arr)))


def identifier(text: str) -> str:
    """A Python identifier made from a display name (``W[0]`` -> ``W_0``)."""
    name = re.sub(r"\W+", "_", text).strip("_") or "v"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "v_" + name
    return name


@dataclasses.dataclass
class Line:
    """One value's statement(s): ``name = expr`` (or several lines for a scatter)."""

    value: Value
    name: str
    expr: str
    code: list[str]

    @property
    def phase(self) -> str:
        return self.value.phase


# one operation of named values: repeated rather than named (``W.T``, ``X[0]`` too)
_SMALL = {
    P.add,
    P.subtract,
    P.multiply,
    P.divide,
    P.negative,
    P.power,
    P.transpose,
    P.getitem,
    P.reshape,
} | {
    P.NONDIFF_UFUNCS[u]
    for u in (
        numpy.greater,
        numpy.greater_equal,
        numpy.less,
        numpy.less_equal,
        numpy.equal,
        numpy.not_equal,
    )
}
_ELEMENTWISE = {P.add, P.subtract, P.multiply, P.divide, P.power, P.negative, P.maximum, P.minimum}
_ELEMENTWISE |= {P.exp, P.log, P.sqrt, P.tanh, P.absolute, P.square, P.log1p, P.expm1, P.sigmoid}


class Writer:
    """Writes a program's values as source (``style='python'``) or mathematics (``'math'``,
    ``'latex'``), with ``names`` for the values that must be named."""

    def __init__(
        self,
        prog: Program,
        names: dict[int, str],
        lit: Literals | None = None,
        inline: bool = True,
        refs: dict[int, str] | None = None,
        repeat_small: bool = False,
    ) -> None:
        self.prog = prog
        self.lit = lit or Literals()
        self.uses = prog.uses()
        self.out_ids = {o.id for o in prog.outputs}
        self.names = dict(names)
        self.refs = refs or {}  # how inputs are referred to (``W[0]``)
        self.inline = inline
        self.repeat_small = repeat_small
        taken = set(self.names.values()) | set(self.refs.values())
        counter = 0
        depth: dict[int, int] = {}  # how deeply each inlined value nests its inlined arguments
        for v in prog.values:
            if v.id in self.names or v.op in (INPUT, CONST):
                continue
            if not self._needs_statement(v):
                d = 1 + max((depth.get(a.id, 0) for a in v.args if isinstance(a, Value)), default=0)
                if d <= MAX_INLINE_DEPTH:
                    depth[v.id] = d
                    continue
            # a statement: named values, and long chains cut into readable (and, for Python's
            # parser and the writers' recursion, bounded) pieces
            counter += 1
            while f"t{counter}" in taken:
                counter += 1
            self.names[v.id] = f"t{counter}"
            taken.add(f"t{counter}")

    def _statement(self, prim: Any) -> Any:
        """The maker of ``prim``'s statement lines, if it is written as statements."""
        return STATEMENTS.get(prim)

    def _needs_statement(self, v: Value) -> bool:
        if not self.inline:
            return True
        if v.id in self.out_ids or (v.prim is not None and v.prim in STATEMENTS):
            return True
        if self.uses.get(v.id, 0) == 1:
            return False
        # For people, a one-operation expression of named values reads better repeated
        # (``Y - T`` twice) than as a temporary; generated code never repeats work.
        return not (
            self.repeat_small
            and v.prim in _SMALL
            and all(
                not isinstance(a, Value) or a.op in (INPUT, CONST) or a.id in self.names
                for a in v.args
            )
        )

    def is_statement(self, v: Value) -> bool:
        return v.op not in (INPUT, CONST) and v.id in self.names

    # --- expressions --------------------------------------------------------------------------

    def ref(self, x: Any, style: str = "python") -> tuple[str, int]:
        """The text of an argument and its precedence."""
        if isinstance(x, Value):
            if x.op == INPUT:
                return self.refs.get(x.id, self.names.get(x.id, f"v{x.id}")), ATOM
            if x.op == CONST:
                return self.const(x.const)
            if x.id in self.names:
                return self.names[x.id], ATOM
            return self.expr(x, style)
        if isinstance(x, Size):
            return self.size(x), ATOM
        return self.const(x)

    def const(self, c: Any) -> tuple[str, int]:
        text = self.lit(c)
        return text, UNARY if text.startswith("-") else ATOM

    def size(self, s: Size) -> str:
        """``Y.size`` for the count a mean divided by, when a named value has that shape."""
        v = s.of
        while (
            isinstance(v, Value)
            and v.id not in self.names
            and v.op != INPUT
            and v.prim in _ELEMENTWISE
        ):
            nxt = [a for a in v.args if isinstance(a, Value) and a.shape == v.shape]
            if not nxt:
                break
            v = nxt[0]
        if isinstance(v, Value) and (v.id in self.names or v.op == INPUT) and s.axis is None:
            name = self.ref(v)[0]
            if self.repeat_small and len(v.shape) == 1:
                return f"len({name})"  # for people (explain): a vector's count is its length
            return f"{name}.size"
        if (
            self.repeat_small
            and isinstance(v, Value)
            and (v.id in self.names or v.op == INPUT)
            and isinstance(s.axis, int)
            and -len(v.shape) <= s.axis < len(v.shape)
        ):
            # explain: the count a mean along an axis divided by, as the shape it came from
            return f"{self.ref(v)[0]}.shape[{s.axis % len(v.shape)}]"
        return str(int(s))

    def expr(self, v: Value, style: str = "python") -> tuple[str, int]:
        assert v.prim is not None
        form = source_form(v.prim) if style == "python" else math_form(v.prim)
        if (
            v.prim is P.dot
            and style == "python"
            and not (isinstance(v.args[0], Value) and len(v.args[0].shape) > 0)
        ):
            form = _DOT_CALL
        texts = [self._wrap(a, form, i, style) for i, a in enumerate(v.args)]
        if style == "python":
            return form.fmt(texts, v.kw, self.lit), form.prec
        if v.prim is P.multiply and any(
            not isinstance(a, Value) or len(a.shape) == 0 for a in v.args
        ):  # a scalar (a number, the user's LAM) times an array: ·, never the elementwise ⊙
            return f"{texts[0]} {sym('matmul', style == 'latex')} {texts[1]}", form.prec
        return form.fmt(texts, v.kw, style == "latex"), form.prec

    def _wrap(self, a: Any, form: Form, i: int, style: str) -> str:
        text, prec = self.ref(a, style)
        return f"({text})" if prec < form.slot(i) else text

    # --- statements ---------------------------------------------------------------------------

    def _scatter(self, v: Value, name: str) -> list[str] | None:
        """``t[rows, y] = g`` instead of ``numpy.add.at(t, (rows, y), g)`` into zeros (it reads
        better, and runs faster).

        When :func:`~chainrule.program.ir.distinct_positions` proves that no position repeats,
        adding into zeros is adding ``g`` to ``+0.0`` once per position: an assignment, except that
        ``+0.0 + -0.0`` is ``+0.0``.  A constant ``g`` without negative zeros is assigned;
        any other ``g`` is added in (``t[index] += g``: one gather, one add, one write, the
        same sums ``add.at`` makes, without its per-element machinery).
        """
        if v.prim is P.scatter:
            g, ix = v.args[0], v.args[1:]
            template, shape = v.kw["template"], v.kw["shape"]
            index = P.fill_index(template, tuple(ix))
            text = index_text(template, [self.ref(x)[0] for x in ix], self.lit)
        elif v.prim is P.scatter_add and not v.args[3]:
            g, index, shape = v.args[0], v.args[1], v.args[2]
            index = index if isinstance(index, tuple) else (index,)
            text = self.lit.index(index)
        else:
            return None
        if not distinct_positions(index, tuple(shape)):
            return None
        if isinstance(g, Value) and g.prim is P.broadcast_to and g.id not in self.names:
            g = g.args[0]  # assignment broadcasts it to the indexed shape itself
        c = const_value(g) if is_const(g) and not isinstance(g, Size) else None
        op = "=" if c is not None and not _has_negative_zero(c) else "+="
        dt = numpy.dtype(v.dtype)
        return [
            f"{name} = numpy.zeros({self.lit(tuple(shape))}, dtype=numpy.{dt.name})",
            f"{name}[{text}] {op} {self.ref(g)[0]}",
        ]

    def lines(self) -> list[Line]:
        out = []
        for v in self.prog.values:
            if not self.is_statement(v):
                continue
            name = self.names[v.id]
            code = self._scatter(v, name) if v.prim is not None else None
            if code is not None:
                out.append(Line(v, name, "; ".join(code[1:]), code))
                continue
            maker = self._statement(v.prim) if v.prim is not None else None
            if maker is not None:
                texts = [self.ref(a)[0] for a in v.args]
                kw = dict(v.kw, __dtype__=numpy.dtype(v.dtype))
                code = maker(name, texts, kw, self.lit, list(v.args))
                out.append(Line(v, name, "; ".join(code[1:]) if len(code) > 1 else code[0], code))
                continue
            text, _ = self.expr(v)
            out.append(Line(v, name, text, [f"{name} = {text}"]))
        return out
