"""Sums of elementwise expressions as one loop nest, without the expression's array.

``((X[:, None, :] - C[None]) ** 2).sum(axis=2)`` written as NumPy text makes Numba evaluate
the squared differences into a 2000x16x8 array and then sum it.  Here the sum becomes a small
``njit`` function of the expression's *leaves* (the arrays it reads: named values, inputs,
constants, anything that is not elementwise arithmetic), looping over the full broadcast
shape and computing each term where it is added::

    def _fz0(l0, l1, z):
        out = numpy.full(32000, z)
        for i0 in range(2000):
            for i1 in range(16):
                s = z
                for i2 in range(8):
                    s += (l0[i0, 0, i2] - l1[0, i1, i2]) ** 2
                out[i0 * 16 + i1] = s
        return out

Each output element receives its terms in the order of the unfused helpers (``_rsum_last``:
NumPy's pairwise order over the last axes, from a row of the terms computed first;
``_rsum_first``, ``_rsum_mid``: one after the other from ``z``, in increasing index of the
reduced axes), and each term is the same arithmetic on the same values, written by the same
forms, so the sums are the same to the bit.  A leaf is indexed by the loop counters of the axes
it spans and by 0 on the axes it is broadcast along.

An elementwise statement (or an elementwise argument of a product) is likewise one loop nest
that stores each element (:func:`fused_map`), in place of a Numba array expression.
"""

from __future__ import annotations

import ast
import math
from typing import TYPE_CHECKING, Any

import numpy

from chainrule.engine import primitives as P
from chainrule.program.ir import CONST, INPUT, Value

from .common import _INFIX, _axes, _is_basic, _shape
from .forms import _NUMPY_LOOPS, numpy_loop_from
from .helpers import pairwise_block

if TYPE_CHECKING:  # pragma: no cover
    from .writer import NumbaWriter

# Unary and binary float functions a term may apply (their Numba spelling takes scalars too).
_UFUNCS = frozenset(
    """exp log log1p expm1 tanh sqrt absolute sin cos maximum minimum square exp2 log2 log10
    sinh cosh arctan""".split()
)
_ARITH = frozenset([P.add, P.subtract, P.multiply, P.divide, P.negative, P.power])
_CHEAP = frozenset([P.add, P.subtract, P.multiply, P.negative])  # computed again, not stored


def elementwise(v: Any) -> bool:
    """Whether ``v`` is float arithmetic a term can compute element by element."""
    if not isinstance(v, Value) or v.op in (INPUT, CONST) or v.kw:
        return False
    if numpy.dtype(v.dtype).kind != "f":
        return False
    prim = v.prim
    if prim is P.where:  # a choice by a boolean array: `x if c else y` in the loop
        c = v.args[0] if len(v.args) == 3 else None
        return isinstance(c, Value) and numpy.dtype(c.dtype).kind == "b"
    if prim in _ARITH:
        if prim is P.power:  # a constant exponent only (x ** 2), never an array of them
            y = v.args[1]
            return not isinstance(y, Value) or (y.op == CONST and numpy.ndim(y.const) == 0)
        return prim in _INFIX or prim is P.negative
    return (
        prim is not None
        and prim.name in _UFUNCS
        and isinstance(prim.fun, numpy.ufunc)
        and not prim.custom
        # on large arrays NumPy's vectorised loop beats a call per element (forms.py)
        and not (prim.name in _NUMPY_LOOPS and math.prod(v.shape) >= numpy_loop_from(prim.name))
    )


def _fusable(w: NumbaWriter, v: Any) -> bool:
    """Whether ``v`` is written inside the loop (elementwise and not named)."""
    return elementwise(v) and v.id not in w.names


def summed(v: Value) -> bool:
    """Whether ``v`` is a sum or mean over some (not all) axes of a float array: the
    reductions :func:`fused_sum` writes as loops."""
    if v.prim is not P.sum_ and v.prim is not P.mean:
        return False
    if set(v.kw) - {"axis", "keepdims"} or v.kw.get("axis") is None:
        return False
    x = v.args[0]
    if not isinstance(x, Value) or numpy.dtype(x.dtype).kind != "f":
        return False
    nd = len(_shape(x))
    return 0 < len(_axes(v.kw["axis"], nd)) < nd


_VIEWS = frozenset([P.reshape, P.transpose, P.swapaxes, P.broadcast_to, P.getitem])


def _stored(a: Any, uses: dict[int, int]) -> bool:
    """Whether reading ``a`` again costs nothing: a number, an input, a constant, a value the
    program names (read more than once), or a view of one (``X[:, None, :]``)."""
    while isinstance(a, Value):
        if a.op in (INPUT, CONST) or uses.get(a.id, 0) > 1:
            return True
        if a.prim not in _VIEWS or (a.prim is P.getitem and not _is_basic(a.kw["index"])):
            return False
        a = a.args[0]
    return numpy.ndim(a) == 0


def recomputable(
    v: Value, users: dict[int, list[Value]], uses: dict[int, int], outputs: set[int]
) -> bool:
    """Whether ``v`` (one cheap elementwise operation on arrays it reads) may be left unnamed and
    computed again inside each loop that needs it: every path from it ends in a fused sum
    (through single-use elementwise values), so no array of it is ever made.  XLA does the
    same with a broadcast difference that two reductions read."""
    if v.prim not in _CHEAP or not elementwise(v) or v.id in outputs:
        return False  # (a function like exp costs more to compute again than to read)
    for a in v.args:  # arrays stored or viewed (read again in each loop), or numbers
        if not _stored(a, uses):
            return False
        if isinstance(a, Value) and (elementwise(a) or numpy.dtype(a.dtype).kind not in "fb"):
            return False
    todo = list(users.get(v.id, ()))
    if not todo:
        return False
    while todo:
        u = todo.pop()
        if summed(u):
            continue
        nxt = users.get(u.id, ())
        if not elementwise(u) or u.id in outputs or len(nxt) != 1:
            return False
        todo.append(nxt[0])
    return True


def _leaves(w: NumbaWriter, x: Value) -> list[Any] | None:
    """The values the fused expression ``x`` reads, in order, or None when a leaf cannot be
    indexed by the loop (an array whose shape does not broadcast to ``x``'s)."""
    shape = _shape(x)
    found: list[Any] = []
    seen: set[int] = set()
    stack = [x]
    while stack:
        v = stack.pop()
        for a in reversed(v.args):
            if not isinstance(a, Value) and numpy.ndim(a) > 0:
                return None  # an array in the program's text, not a value: not passed in
            if _fusable(w, a):
                stack.append(a)
            elif isinstance(a, Value) and not (a.op == CONST and numpy.ndim(a.const) == 0):
                s = _shape(a)
                if len(s) > len(shape) or any(
                    n not in (1, m) for n, m in zip(s, shape[len(shape) - len(s) :])
                ):
                    return None
                if numpy.dtype(a.dtype).kind not in "fb":
                    return None
                if a.id not in seen:
                    seen.add(a.id)
                    found.append(a)
    return found


def fused_sum(
    w: NumbaWriter, x: Any, axes: list[int], z: str, neg: bool, pairwise: bool
) -> str | None:
    """A call of a generated function that sums ``x`` over ``axes`` into a 1-D array of the
    kept axes' elements (C order), or None when ``x`` is not elementwise arithmetic.
    ``pairwise``: the sum has ``x``'s dtype, so a sum over the last axes may take NumPy's
    pairwise order."""
    leaves = _leaves(w, x) if _fusable(w, x) else None
    if leaves is None:
        return None
    shape = _shape(x)
    nd = len(shape)
    kept = [d for d in range(nd) if d not in axes]
    if not kept or not axes:
        return None
    idx = [f"i{d}" for d in range(nd)]
    args, term, params = _term(w, x, leaves, idx)
    pre, term = hoist(term, idx[-1])
    flat = idx[kept[0]]
    for d in kept[1:]:
        flat = f"({flat}) * {shape[d]} + {idx[d]}"
    op = "-=" if neg else "+="
    params.append("z")
    outer = math.prod(shape[d] for d in kept)
    body = [f"def NAME({', '.join(params)}):", f"    out = numpy.full({outer}, z)"]
    trailing = axes == list(range(nd - len(axes), nd))
    count = math.prod(shape[d] for d in axes)
    if trailing and pairwise and count >= 8:
        # each output's terms into a row, summed in NumPy's pairwise order (the bits of the
        # sum of the array the expression would make; vectorised, the terms too)
        dt = numpy.dtype(x.dtype).name
        body.append(f"    buf = numpy.empty({count}, numpy.{dt})")
        j = idx[axes[0]]
        for d in axes[1:]:
            j = f"({j}) * {shape[d]} + {idx[d]}"
        body += _nest(idx, shape, pre)
        body.append("    " * (nd + 1) + f"buf[{j}] = {term}")
        pad = "    " * (len(kept) + 1)
        if count <= 128:
            body += pairwise_block("buf[{}]", str(count), f"out[{flat}]", neg, pad)
        else:
            rows = w.helper("_rsum_last_neg" if neg else "_rsum_last")
            body.append(pad + f"out[{flat}] = {rows}(buf.reshape((1, {count})), z)[0]")
        body.append("    return out")
        name = w.fused_helper("\n".join(body))
        return f"{name}({', '.join(args + [z])})"
    body += _nest(idx, shape, pre, {kept[-1]: "s = z"} if trailing else {})
    if trailing:
        body.append("    " * (nd + 1) + f"s {op} {term}")
        body.append("    " * (len(kept) + 1) + f"out[{flat}] = s")
    else:
        body.append("    " * (nd + 1) + f"out[{flat}] {op} {term}")
    body.append("    return out")
    name = w.fused_helper("\n".join(body))
    return f"{name}({', '.join(args + [z])})"


MAP_MIN_SIZE = 256
"""Elementwise statements of at least this many elements are loops (:func:`fused_map`)."""


def fused_map(w: NumbaWriter, v: Value) -> str | None:
    """A call of a generated function that computes the elementwise statement ``v`` (and the
    unnamed elementwise values it reads) in one loop nest over its shape, or None.

    Numba's own array expressions give the same values, but from the third or so in a kernel
    they run 3x slower than the loop they stand for (``x = a / a; y = x / a; z = y / a`` on
    256 x 128 float32: 34 us, the loops 11 us); every statement of a batch-normalised layer's
    backward pass is one.  Each element is the same arithmetic on the same values, written by
    the same forms: the same bits.
    """
    shape = _shape(v)
    if not elementwise(v) or not shape or math.prod(shape) < MAP_MIN_SIZE:
        return None
    leaves = _leaves(w, v)
    if leaves is None or not any(_shape(leaf) for leaf in leaves):
        return None
    dt = numpy.dtype(v.dtype).name
    if all(_shape(leaf) in ((), shape) and outer_parts(w, leaf) is None for leaf in leaves):
        # no broadcasting: one flat loop over contiguous arrays (a short last axis, a row of
        # 10 classes, would otherwise make a short inner loop)
        params = [f"l{k}" for k in range(len(leaves))]
        subs = {leaf.id: f"l{k}[i]" if _shape(leaf) else f"l{k}" for k, leaf in enumerate(leaves)}
        args = [w.flat(leaf) if _shape(leaf) else w.text(leaf, 0) for leaf in leaves]
        w.scalar_refs = subs
        try:
            term = w.expr(v)[0]
        finally:
            w.scalar_refs = {}
        size = math.prod(shape)
        body = [
            f"def NAME({', '.join(params)}):",
            f"    out = numpy.empty({size}, numpy.{dt})",
            f"    for i in range({size}):",
            f"        out[i] = {term}",
            f"    return out.reshape({tuple(shape)})",
        ]
    elif shape[-1] >= 16:  # broadcast leaves: a loop per axis, long enough to vectorise
        nd = len(shape)
        idx = [f"i{d}" for d in range(nd)]
        args, term, params = _term(w, v, leaves, idx)
        body = [
            f"def NAME({', '.join(params)}):",
            f"    out = numpy.empty({tuple(shape)}, numpy.{dt})",
        ]
        pre, term = hoist(term, idx[-1])
        body += _nest(idx, shape, pre)
        body.append("    " * (nd + 1) + f"out[{', '.join(idx)}] = {term}")
        body.append("    return out")
    else:
        return None
    name = w.fused_helper("\n".join(body))
    return f"{name}({', '.join(args)})"


def outer_parts(w: NumbaWriter, leaf: Any) -> tuple[Value, Value] | None:
    """The two vectors of an unnamed ``outer(a, b)`` of real floats that a loop can multiply
    element by element (``a[i0] * b[i1]``: numpy.outer's product, the same bits) instead of
    reading the (m, n) array of them, or None."""
    if not (
        isinstance(leaf, Value)
        and leaf.prim is P.outer
        and not leaf.kw
        and leaf.id not in w.names
        and len(leaf.args) == 2
        and numpy.dtype(leaf.dtype).kind == "f"
    ):
        return None
    a, b = leaf.args
    for v in (a, b):
        if not isinstance(v, Value) or len(_shape(v)) != 1:
            return None
        if numpy.dtype(v.dtype) != numpy.dtype(leaf.dtype):
            return None
    return a, b


def _nest(
    idx: list[str], shape: tuple[int, ...], pre: list[str], inside: dict[int, str] | None = None
) -> list[str]:
    """The headers of a loop per axis (counters ``idx``), ``inside[d]`` first in loop ``d``,
    and the lines ``pre`` (:func:`hoist`'s) just before the innermost loop."""
    lines: list[str] = []
    for d in range(len(idx)):
        pad = "    " * (d + 1)
        if d == len(idx) - 1:
            lines += [pad + line for line in pre]
        lines.append(pad + f"for {idx[d]} in range({shape[d]}):")
        if inside and d in inside:
            lines.append(pad + "    " + inside[d])
    return lines


def hoist(term: str, inner: str) -> tuple[list[str], str]:
    """``term`` (one element of a loop nest) with its parts that read arrays but not the
    innermost counter ``inner`` taken out as ``h0 = ...``, ``h1 = ...`` lines to write before
    the innermost loop.  In ``l0[i0, 0] / (2 * l1[i0, 0]) / 128 * l2[i0, i1]`` the quotient
    is one per row: LLVM cannot move it out itself (the stores to ``out`` might change
    ``l0``), so it would divide twice per element.  The same operations on the same values in
    the same order: the same bits.  Branches of a conditional are left where they are.

    >>> hoist("l0[i0, 0] / 2 * l1[i0, i1]", "i1")
    (['h0 = l0[i0, 0] / 2'], 'h0 * l1[i0, i1]')
    """
    lines: list[str] = []
    names: dict[str, str] = {}

    def free(node: ast.AST) -> bool:  # reads an array, and not at the innermost counter
        names_in = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        loads = any(isinstance(n, ast.Subscript) for n in ast.walk(node))
        return loads and inner not in names_in

    class Hoist(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> ast.AST:
            if isinstance(node, ast.expr) and free(node):
                text = ast.unparse(node)
                if text not in names:
                    names[text] = f"h{len(names)}"
                    lines.append(f"{names[text]} = {text}")
                return ast.Name(names[text], ast.Load())
            if isinstance(node, ast.IfExp):
                return node
            return super().generic_visit(node)

    tree = Hoist().visit(ast.parse(term, mode="eval"))
    if not lines:
        return [], term
    return lines, ast.unparse(tree)


def _term(
    w: NumbaWriter, x: Value, leaves: list[Any], idx: list[str]
) -> tuple[list[str], str, list[str]]:
    """The texts of the leaves (the arrays passed in), of one element of ``x`` at the loop
    counters ``idx`` and the parameter names: each leaf indexed by the counters of the axes it
    spans, 0 elsewhere; an outer product's two vectors each by the counter of its axis."""
    shape = _shape(x)
    nd = len(shape)
    args: list[str] = []
    params: list[str] = []
    subs: dict[int, str] = {}
    for k, leaf in enumerate(leaves):
        s = _shape(leaf)
        off = nd - len(s)
        at = [idx[off + t] if s[t] == shape[off + t] else "0" for t in range(len(s))]
        parts = outer_parts(w, leaf)
        if parts is not None:  # (the arrays written before the override, as all args)
            args += [w.text(parts[0], 0), w.text(parts[1], 0)]
            params += [f"l{k}a", f"l{k}b"]
            subs[leaf.id] = f"(l{k}a[{at[0]}] * l{k}b[{at[1]}])"
            continue
        args.append(w.text(leaf, 0))
        params.append(f"l{k}")
        subs[leaf.id] = f"l{k}[{', '.join(at)}]" if s else f"l{k}"
    w.scalar_refs = subs
    try:
        term = w.expr(x)[0]
    finally:
        w.scalar_refs = {}
    return args, term, params


def fused_scatter(w: NumbaWriter, g: Any, lead: int, out: str, lin: str) -> str | None:
    """A call of a generated function that adds the rows of ``g`` (its first ``lead`` axes
    index the rows, flattened; the rest is a row) into rows ``lin`` of the 2-D ``out``,
    computing each element of ``g`` where it is added; None when ``g`` is not elementwise
    arithmetic.  The additions go in ``_add_rows``' order (numpy.add.at's), so the sums are
    the same to the bit as adding the array ``g``.

    For ``U[i]``'s gradient ``e[:, None] * V[j]``, ``out[lin[i0], i1] += l0[i0, 0] * l1[i0, i1]``
    in a loop: no (reads, width) array of the products is made.
    """
    leaves = _leaves(w, g) if _fusable(w, g) else None
    shape = _shape(g)
    nd = len(shape)
    if leaves is None or not 0 < lead < nd:
        return None
    idx = [f"i{d}" for d in range(nd)]
    args, term, lparams = _term(w, g, leaves, idx)
    pre, term = hoist(term, idx[-1])

    def flat(dims: range) -> str:
        text = idx[dims[0]]
        for d in dims[1:]:
            text = f"({text}) * {shape[d]} + {idx[d]}"
        return text

    params = ["out", "lin", *lparams]
    body = [f"def NAME({', '.join(params)}):"]
    body += _nest(idx, shape, pre, {lead - 1: f"r = lin[{flat(range(lead))}]"})
    body.append("    " * (nd + 1) + f"out[r, {flat(range(lead, nd))}] += {term}")
    body.append("    return out")
    name = w.fused_helper("\n".join(body))
    return f"{name}({', '.join([out, lin] + args)})"
