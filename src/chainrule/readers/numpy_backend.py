"""``jit``'s NumPy backend: the program written for speed rather than for reading.

``explain`` writes ``dB1 = dZ1.sum(axis=0)`` and ``Z1 = X @ W1 + B1`` because people read it.
Compiled code needs the same values with fewer and cheaper NumPy calls, so :class:`FastWriter`
changes only the spelling, never the arithmetic:

* a small product of two matrices (or an outer product) is ``A.dot(B)``, the same BLAS call
  as ``A @ B`` with less overhead (:func:`chainrule.engine.primitives.dot_is_faster`, which
  the eager rules follow too);
* ``sum``, ``mean``, ``max`` and ``min`` call ``numpy.add.reduce`` (``maximum.reduce``...)
  directly, skipping the Python layer of the ndarray methods (``mean`` in float64 and
  float32, where ``add.reduce(x) / n`` is exactly what the eager path computes); a sum over
  axes that all have length 1 is a reshape; a float sum where NumPy's inner loop is short (the 3
  coordinates of a pairwise difference) is the eager path's ``engine.reduce.add_reduce``;
* an elementwise ``+ - * /`` whose left operand is a temporary of the result's shape and dtype
  (a fresh matrix product, say) writes into that temporary (``out=``) instead of allocating:
  ``t1 = a0.dot(a2); numpy.add(t1, a5, out=t1)``, and so on down a chain
  (``X.dot(W) + b - T``).  The temporary is private to the statement, so nothing else can
  observe the write;
* otherwise such an operation writes into a named temporary that it reads for the last time
  (and of which no view exists): ``t7 = numpy.multiply(2, t5, out=t5)``;
* a large temporary is deleted (``del t3``) right after its last read, so that its memory,
  still in the CPU's caches, is what the next temporary gets; a comparison that reads a large
  temporary last is computed as soon as it can be (:func:`hoist_masks`: the ReLU mask right
  after ``Z``, which ``maximum(0, Z)`` then overwrites);
* the cotangents of disjoint slices of one array, which the readable program puts each into
  zeros and adds up, are written into one array (:func:`chainrule.program.ir.merge_scatters`,
  run on the program before it is written; the same values, but a -0.0 stays -0.0);
* NumPy's faster loops are chosen where its dispatch would miss them: ``dtype=`` for a float
  times a boolean mask, and a constant row instead of a scalar in ``maximum(0, Z)``; a scatter
  (the gradient of ``E[tokens]``) calls the eager path's ``engine.scatter.add_at`` instead of
  ``numpy.add.at``.

Every one of these produces the bits the readable spelling produces.  One change of spelling
is for sharing, not speed of a single call: ``solve``, ``inv``, ``det`` and ``slogdet`` call the
primitives' own functions (:data:`LINALG_CALLS`), which share one LU factorisation per matrix
(:mod:`chainrule.engine.factors`); their values are the eager path's, which agree with the
readable ``numpy.linalg`` spelling to rounding (bit for bit where SciPy is not installed or the
matrix is small).  Likewise a whole power of a float array (``h ** 3``, ``r2 ** -3``) calls
the primitive's function (:func:`chainrule.engine.primitives.whole_power`, from ``|h|``: NumPy's
``**`` is 50x slower on negative values where it computes with SVML), whose values are the eager
path's; they can differ from the readable ``h ** 3`` in the last bit of negative elements.
``einsum`` calls the primitive's function (``_einsum``: :mod:`chainrule.engine.contract`'s
matrix products), whose values agree with the readable ``numpy.einsum`` to rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.broadcast import COMPARISONS, PER_ENTRY, route
from chainrule.engine.reduce import own_route, window_route
from chainrule.engine.rules import Size
from chainrule.program.codegen import Line, Writer
from chainrule.program.ir import CONST, INPUT, Program, Value, const_value, is_const
from chainrule.program.notation import ATOM, PRODUCT, index_text

__all__ = ["FastWriter", "LINALG_CALLS", "aliases_input", "hoist_masks"]

_F64 = numpy.dtype(numpy.float64)
_F32 = numpy.dtype(numpy.float32)


def _exact_mean(dtype: numpy.dtype[Any], n: int) -> bool:
    """Whether ``numpy.add.reduce(x, axis) / n`` has the bits of ``x.mean(axis)``.

    ``mean`` adds up with ``add.reduce`` in the array's own dtype (except float16, which it
    accumulates in float32), then divides by the count.  In float64 that is the same
    division.  In float32 ``mean`` divides by a NumPy integer, which NumPy does in float64
    and rounds back to float32; a correctly rounded float64 quotient rounded again to float32
    is the correctly rounded float32 quotient (53 >= 2 * 24 + 2 bits), which is what
    ``/ n`` computes, as long as ``n`` itself is exact in float32.
    """
    return n > 0 and (dtype == _F64 or (dtype == _F32 and n <= 1 << 24))


# Operations whose result is a new array when it has at least one dimension (never a view).
_FRESH = set(P.UFUNCS.values()) | set(P.NONDIFF_UFUNCS.values()) | {P.dot, P.matmul}

# Elementwise operations that can write into their left operand, and those that may swap
# their operands to do so (IEEE addition and multiplication are commutative, bit for bit).
_IN_PLACE = {
    P.add: "add",
    P.subtract: "subtract",
    P.multiply: "multiply",
    P.divide: "divide",
    P.maximum: "maximum",
    P.minimum: "minimum",
    P.fmax: "fmax",
    P.fmin: "fmin",
}
# Arithmetic of two arrays broadcast over short rows goes through engine.broadcast.binary.
_BROADCAST = {P.add: "add", P.subtract: "subtract", P.multiply: "multiply", P.divide: "divide"}
# comparisons of two float arrays broadcast over short rows: broadcast.binary's per-entry route
_COMPARE = {P.NONDIFF_UFUNCS[u]: u.__name__ for u in COMPARISONS}
# maximum/minimum are never swapped: maximum(-0.0, +0.0) is its first operand.
_COMMUTATIVE = {P.add, P.multiply}

# maximum(0, Z): the scalar becomes a row of this many elements or more (see _extreme).
_EXTREMES = {P.maximum, P.minimum, P.fmax, P.fmin}
_ROW = 8


# Operations whose result never shares memory with their operands (new arrays, or NumPy scalars).
_NEW_MEMORY = _FRESH | {P.sum_, P.mean, P.amax, P.amin, P.prod, P.var, P.std}
# a scatter adds into zeros it makes itself (never into its index or its values)
_NEW_MEMORY |= {P.scatter_add, P.scatter, P.scatter_adds}


def aliases_input(v: Any) -> bool:
    """Whether value ``v`` may share memory with an input or constant of the program (through
    views: reshapes, transposes, slices...).  Such an output is copied before it is returned."""
    stack, seen = [v], set()
    while stack:
        x = stack.pop()
        if not isinstance(x, Value) or x.id in seen:
            continue
        seen.add(x.id)
        if x.op in (INPUT, CONST):
            return True
        if x.prim not in _NEW_MEMORY and not (x.prim is P.einsum and len(x.args) > 1):
            stack.extend(x.args)  # (an einsum of two or more operands is a new array)
    return False


# The primitives whose forward functions share work between calls: one LU factorisation per
# matrix (chainrule.engine.factors), one eigh, svd, qr or eig per matrix for the rules that ask
# for it again (engine.primitives._Recent), and the stable sorting order by NumPy's faster
# argsort where that is the same (engine.primitives.sorting_order); and the primitives whose
# functions take a faster route to NumPy's values: running sums and products across many
# slices at once (engine.reduce.accumulate), a max's gradient that counts ties only where
# there are some (engine.primitives.spread_ties).  Compiled code calls them by these names
# (bound in the compiled module's namespace) instead of numpy's functions, so that a jitted
# solve, slogdet, eigh and their rules decompose the matrix once, as the eager path does.
# The values are the eager path's.
LINALG_CALLS = {
    P.solve: "_linalg_solve",
    P.inv: "_linalg_inv",
    P.det: "_linalg_det",
    P.logabsdet: "_linalg_logabsdet",
    P.detsign: "_linalg_detsign",
    P.logdet: "_linalg_logdet",
    P.cholesky: "_linalg_cholesky",
    P.eighvals: "_linalg_eigh_w",
    P.eigvecsh: "_linalg_eigh_v",
    P.svd_u: "_linalg_svd_u",
    P.svd_s: "_linalg_svd_s",
    P.svd_vh: "_linalg_svd_vh",
    P.qr_q: "_linalg_qr_q",
    P.qr_r: "_linalg_qr_r",
    P.eigw: "_linalg_eig_w",
    P.eigvecs: "_linalg_eig_v",
    P.sort_permute: "_sort_permute",
    P.sort_unpermute: "_sort_unpermute",
    P.spread_ties: "_spread_ties",
    P.cumsum: "_cumsum",
    P.cumprod: "_cumprod",
}


# keyword values a call above writes as literals (UPLO, full_matrices, mode, axis)
_PLAIN_KW = (str, bool, int)


def _plain_kw(w: Any) -> bool:
    """Can a call by name write keyword value ``w`` as a literal (a tuple of ints too)?"""
    return type(w) in _PLAIN_KW or (type(w) is tuple and all(type(k) is int for k in w))


# Temporaries of at least this many bytes are deleted after their last read (_frees_early).
_FREE_EARLY = 1 << 15


# Comparisons: a float array in, a boolean mask (a quarter or an eighth of its bytes) out.
_MASKS = {
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


def _nbytes(v: Value) -> int:
    return math.prod(v.shape) * numpy.dtype(v.dtype).itemsize if v.shape is not None else 0


def hoist_masks(prog: Program) -> tuple[Program, set[int]]:
    """``prog`` with each comparison that reads a large temporary last moved up to just after
    its operands exist.

    The ReLU mask ``Z1 > 0`` of the backward pass is the last reader of ``Z1``; computed
    right after ``Z1`` (while ``Z1`` is still in the caches), it frees ``Z1`` for
    ``maximum(0, Z1)`` to overwrite (``out=``): the program keeps a boolean mask from the
    forward to the backward pass instead of a float array, and allocates one array less per
    layer.  Values are pure, so the order changes nothing else.  Returns the program and the
    ids of the values moved (which must then be statements, not inline parts of their reader).
    """
    values = prog.values
    pos = {v.id: i for i, v in enumerate(values)}
    readers: dict[int, list[int]] = {}
    for i, v in enumerate(values):
        for a in v.args:
            if isinstance(a, Value):
                readers.setdefault(a.id, []).append(i)
    outs = {o.id for o in prog.outputs}
    after: dict[int, list[Value]] = {}
    moved = set()
    for i, c in enumerate(values):
        if c.prim not in _MASKS:
            continue
        ops = [a for a in c.args if isinstance(a, Value) and a.op != CONST]
        if not ops:
            continue
        h = max(pos[a.id] for a in ops)
        frees = any(
            a.op != INPUT
            and a.id not in outs
            and _nbytes(a) >= _FREE_EARLY
            and _nbytes(a) > _nbytes(c)
            and max((r for r in readers[a.id] if r != i), default=h) < i
            for a in ops
        )
        if frees and h + 1 < i:
            after.setdefault(h, []).append(c)
            moved.add(c.id)
    if not moved:
        return prog, moved
    order = []
    for i, v in enumerate(values):
        if v.id not in moved:
            order.append(v)
        order.extend(after.get(i, ()))
    out = Program(order, prog.inputs, prog.outputs)
    out.replaced = prog.replaced
    return out, moved


def _shape(x: Any) -> tuple[int, ...] | None:
    if isinstance(x, Value):
        return tuple(x.shape) if x.shape is not None else None
    return numpy.shape(x) if isinstance(x, numpy.ndarray) else None


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


class FastWriter(Writer):
    """A :class:`~chainrule.program.codegen.Writer` for compiled code (see the module docstring)."""

    def __init__(
        self,
        prog: Program,
        names: dict[int, str],
        lit: Any = None,
        refs: dict[int, str] | None = None,
    ) -> None:
        prog, self._hoisted = hoist_masks(prog)
        super().__init__(prog, names, lit, refs=refs)

    def _needs_statement(self, v: Value) -> bool:
        return v.id in self._hoisted or super()._needs_statement(v)

    def _statement(self, prim: Any) -> Any:
        # the primitives called by name (sort_unpermute's readable form is two statements)
        return None if prim in LINALG_CALLS else super()._statement(prim)

    def _atom(self, x: Any) -> str:
        text, prec = self.ref(x)
        return text if prec >= ATOM else f"({text})"

    def expr(self, v: Value, style: str = "python") -> tuple[str, int]:
        if style == "python":
            fast = self._fast(v)
            if fast is not None:
                return fast
        return super().expr(v, style)

    def _fast(self, v: Value) -> tuple[str, int] | None:
        prim = v.prim
        if prim in LINALG_CALLS and all(_plain_kw(k) for k in v.kw.values()):
            texts = [self.ref(x)[0] for x in v.args] + [f"{k}={w!r}" for k, w in v.kw.items()]
            return f"{LINALG_CALLS[prim]}({', '.join(texts)})", ATOM
        if prim is P.power:
            x, y = v.args
            n = const_value(y) if is_const(y) and not isinstance(y, Size) else None
            if (
                isinstance(x, Value) and P.whole_exponent(n) and numpy.dtype(x.dtype).char in "fd"
            ):  # a whole power: the eager path's function (engine.primitives.whole_power)
                return f"_power({self.ref(x)[0]}, {n!r})", ATOM
            return None
        if prim is P.sigmoid and not v.kw:  # the primitive's function: its argument once
            return f"_sigmoid({self.ref(v.args[0])[0]})", ATOM
        if prim in _BROADCAST and len(v.args) == 2 and not v.kw and self._broadcast_route(v):
            # broadcast over short rows (pairwise differences): the eager path's routes
            ops = ", ".join(self.ref(x)[0] for x in v.args)
            return f"_binary(numpy.{_BROADCAST[prim]}, {ops})", ATOM
        if prim in _COMPARE and len(v.args) == 2 and not v.kw and self._broadcast_route(v):
            # x == max over a pooling window: one comparison per window entry
            ops = ", ".join(self.ref(x)[0] for x in v.args)
            return f"_binary(numpy.{_COMPARE[prim]}, {ops})", ATOM
        if prim is P.gather and self._rows_read(v):
            x, ix = v.args  # rows read by an integer array: take (engine.scatter.take_rows)
            return f"numpy.take({self.ref(x)[0]}, {self.ref(ix)[0]}, axis=0)", ATOM
        if prim is P.gather and self._elements_read(v):
            # one integer array per leading axis (take_along_axis): engine.scatter.take_rows
            a = [self.ref(x)[0] for x in v.args]
            return f"_take_rows({a[0]}, ({index_text(v.kw['template'], a[1:], self.lit)}))", ATOM
        if prim is P.einsum:  # the primitive's function: matrix products (engine.contract)
            ops = ", ".join(self.ref(x)[0] for x in v.args)
            return f"_einsum({v.kw['subscripts']!r}, {ops})", ATOM
        if prim is P.matmul or prim is P.dot:
            a, b = v.args
            sa, sb = _shape(a), _shape(b)
            stack = sa is not None and sb is not None and max(len(sa), len(sb)) > 2
            if prim is P.matmul and stack:
                # a stack of products: the primitive's own function (engine.primitives._matmul)
                return f"_matmul({self.ref(a)[0]}, {self.ref(b)[0]})", ATOM
            if (
                sa is not None
                and sb is not None
                and len(sa) == 2
                and len(sb) == 2
                and P.dot_is_faster(sa[0], sa[1], sb[1])
            ):
                return f"{self._atom(a)}.dot({self.ref(b)[0]})", ATOM
            return None
        if prim is P.sum_ or prim is P.mean:
            x = v.args[0]
            shape = _shape(x)
            if not shape or not isinstance(x, Value):  # 0-d values may be NumPy scalars
                return None
            axes = _axes(v.kw.get("axis"), len(shape))
            keepdims = bool(v.kw.get("keepdims"))
            n = math.prod(shape[a] for a in axes)
            if prim is P.mean and not _exact_mean(numpy.dtype(x.dtype), n):
                return None
            if n == 1 and tuple(v.shape) and not aliases_input(x):
                # nothing is added up: a reshape (a view of a temporary, never of an input)
                return f"{self._atom(x)}.reshape({tuple(v.shape)!r})", ATOM
            counted = x.args[0] if x.prim is P.astype else None
            if (
                prim is P.sum_
                and isinstance(counted, Value)
                and numpy.dtype(counted.dtype) == numpy.bool_
                and window_route(tuple(shape), v.kw.get("axis"))
            ):  # a count over a pooling window (max-pooling's ties): exact in any order
                keep = ", True" if keepdims else ", False"
                return (
                    f"_window_reduce(numpy.add, {self.ref(counted)[0]}, {v.kw['axis']!r}{keep}, "
                    f"numpy.{numpy.dtype(x.dtype).name})"
                ), ATOM
            if prim is P.sum_ and len(axes) == 1 and own_route(tuple(shape), x.dtype, axes[0]):
                # NumPy's reduction where its inner loop is short (the 3 coordinates of a
                # pairwise difference): the eager path's add_reduce, so the bits are the same
                keep = ", True" if keepdims else ""
                return f"_add_reduce({self.ref(x)[0]}, {axes[0]}{keep})", ATOM
            axis = v.kw.get("axis")
            text = f"numpy.add.reduce({self.ref(x)[0]}, {axis!r}" + (
                ", keepdims=True)" if keepdims else ")"
            )
            return (text, ATOM) if prim is P.sum_ or n == 1 else (f"{text} / {n}", PRODUCT)
        if prim in _EXTREMES:
            return self._extreme(v)
        if prim is P.amax or prim is P.amin:
            x = v.args[0]
            shape = _shape(x)
            if not shape or not isinstance(x, Value) or set(v.kw) - {"axis", "keepdims"}:
                return None
            ufunc = "maximum" if prim is P.amax else "minimum"
            keep = ", True" if v.kw.get("keepdims") else ""
            if window_route(tuple(shape), v.kw.get("axis")):  # a pooling window: the eager call
                return (
                    f"_window_reduce(numpy.{ufunc}, {self.ref(x)[0]}, {v.kw['axis']!r}{keep})",
                    ATOM,
                )
            return f"numpy.{ufunc}.reduce({self.ref(x)[0]}, {v.kw.get('axis')!r}" + (
                ", keepdims=True)" if v.kw.get("keepdims") else ")"
            ), ATOM
        if prim is P.pad and set(v.kw) == {"pad_width", "constant_values"}:
            # one filled array and a slice assignment (numpy.pad's Python costs ~20 us a call)
            x = v.args[0]
            return (
                f"_pad({self.ref(x)[0]}, {v.kw['pad_width']!r}, {v.kw['constant_values']!r})",
                ATOM,
            )
        return None

    def _extreme(self, v: Value) -> tuple[str, int] | None:
        """``numpy.maximum(0, Z)`` as ``numpy.maximum(_c, Z)`` with ``_c`` a row of zeros.

        NumPy's maximum/minimum have a vectorised loop only for operands that both advance
        along the innermost axis; against a scalar it runs element by element (three times
        slower on a 128 x 512 float32 array).  A constant row of the last axis's length
        broadcasts along the other axes and keeps the fast loop; the values, NaNs and signed
        zeros included, are the same.
        """
        texts = self._operands(v)
        if texts == [self.ref(x)[0] for x in v.args]:
            return None
        assert v.prim is not None  # an operation, not an input or a constant
        return f"numpy.{v.prim.fun.__name__}({texts[0]}, {texts[1]})", ATOM

    def _operands(self, v: Value) -> list[str]:
        """The operands' texts, with a scalar of maximum/minimum as a constant row."""
        texts = [self.ref(x)[0] for x in v.args]
        if v.prim not in _EXTREMES:
            return texts
        consts = [const_value(x) if is_const(x) else None for x in v.args]
        scalar = [c is not None and numpy.ndim(c) == 0 for c in consts]
        if scalar.count(True) != 1:
            return texts
        i = scalar.index(True)
        other = v.args[1 - i]
        if not isinstance(other, Value):
            return texts
        shape = tuple(other.shape)
        dt = numpy.dtype(v.dtype)
        if not shape or shape[-1] < _ROW or dt.kind != "f" or numpy.dtype(other.dtype) != dt:
            return texts
        row = numpy.full(shape[-1], consts[i], dtype=dt)
        rows = self.__dict__.setdefault("_rows", {})
        key = (row.dtype.str, row.tobytes())
        if key not in rows:
            rows[key] = self.const(row)[0]
        texts[i] = rows[key]
        return texts

    # --- in-place updates of private temporaries ------------------------------------------------

    def _views(self, v: Value) -> bool:
        """Whether ``v``'s result may share memory with an operand (as written here)."""
        if v.prim in (P.sum_, P.mean):
            x = v.args[0]
            shape = _shape(x)
            if not shape:
                return False
            sizes = [shape[a] for a in _axes(v.kw.get("axis"), len(shape))]
            return math.prod(sizes) == 1
        return v.prim not in _NEW_MEMORY

    def _same_buffer(self, v: Value, x: Any) -> bool:
        """``x`` is a new array (of its own) that could hold ``v``'s result."""
        return (
            isinstance(x, Value)
            and x.op not in (INPUT, CONST)
            and x.prim in _FRESH
            and len(x.shape) > 0
            and tuple(x.shape) == tuple(v.shape)
            and numpy.dtype(x.dtype) == numpy.dtype(v.dtype)
        )

    def _dies_here(self, x: Any, stmt: int) -> bool:
        """``x`` is a named temporary read for the last time by statement ``stmt``, and no
        value that shares its memory (a view of it) exists."""
        return (
            isinstance(x, Value)
            and x.id in self.names
            and x.id not in self.out_ids
            and self._last.get(x.id) == stmt
            and x.id not in self._viewed
        )

    def _into(self, v: Value, name: str, stmt: int, reads: list[Value]) -> list[str] | None:
        """Code that leaves ``v`` in ``name`` without allocating for ``v`` itself, or None.

        Either the left operand is an unnamed temporary of this statement (computed first,
        perhaps the same way, then updated in place), or an operand is a named temporary this
        statement reads for the last time (its buffer takes the result).  Inside a chain the
        later steps still read their operands after the write, so there the temporary must be
        read exactly once by the whole statement (``reads``, with repetitions).
        """
        ufunc = _IN_PLACE.get(v.prim) if v.prim is not None else None
        if ufunc is None or not v.shape or len(v.args) != 2:
            return None
        a, b = v.args
        other = 1  # which operand is not the buffer
        if not (self._same_buffer(v, a) and a.id not in self.names):
            if v.prim in _COMMUTATIVE and self._same_buffer(v, b) and b.id not in self.names:
                a, other = b, 0
            else:
                a = None
        loop = self._loop(v)
        if a is not None:
            first = self._into(a, name, stmt, reads) or [f"{name} = {self.ref(a)[0]}"]
            texts = [name, self._operands(v)[other]]  # (swapped only where that is exact)
            return first + [self._in_place(v, ufunc, texts, name, loop)]
        top = v is reads[-1]
        for x in v.args:
            if (
                self._same_buffer(v, x)
                and self._dies_here(x, stmt)
                and (top or sum(r is x for r in reads) == 1)
            ):
                texts = self._operands(v)
                self._taken.add(x.id)  # its name now holds v's result: no del
                return [f"{name} = " + self._in_place(v, ufunc, texts, self.names[x.id], loop)]
        return None

    def _in_place(self, v: Value, ufunc: str, texts: list[str], out: str, loop: str) -> str:
        """``ufunc`` of the operand texts into ``out``: through engine.broadcast.binary where
        the operands are broadcast over short rows (as the eager path computes them)."""
        if v.prim in _BROADCAST and self._broadcast_route(v):  # (float operands: no loop=)
            return f"_binary(numpy.{ufunc}, {texts[0]}, {texts[1]}, {out})"
        return f"numpy.{ufunc}({texts[0]}, {texts[1]}, out={out}{loop})"

    @staticmethod
    def _rows_read(v: Value) -> bool:
        """Whether gather ``v`` reads whole rows of an array of 2+ dimensions by one integer
        array of 1+ dimensions (``E[tokens]``, ``U[i, :]``): the case take_rows takes."""
        template = v.kw.get("template", ())
        if len(v.args) != 2 or not template or not isinstance(template[0], P.Slot):
            return False
        x, ix = v.args
        sx, si = _shape(x), _shape(ix)
        return (
            sx is not None
            and len(sx) > 1
            and bool(si)
            and isinstance(ix, Value)
            and numpy.dtype(ix.dtype).kind in "iu"
            and all(type(t) is slice and t == slice(None) for t in template[1:])
        )

    @staticmethod
    def _elements_read(v: Value) -> bool:
        """Whether gather ``v`` reads by integer arrays on (at least) its two leading axes
        (``logp[rows, labels]``, ``take_along_axis``'s index): the case take_rows reads by
        rows of the flat positions."""
        template = v.kw.get("template", ())
        if len(template) < 2:
            return False
        for t in template[:2]:
            if isinstance(t, P.Slot):
                ix = v.args[1 + t.k]
                if not isinstance(ix, Value) or numpy.dtype(ix.dtype).kind not in "iu":
                    return False
            elif not (isinstance(t, numpy.ndarray) and t.dtype.kind in "iu"):
                return False
        return True

    @staticmethod
    def _broadcast_route(v: Value) -> bool:
        """Whether ``v``'s two float operands (or, for a product, a float and a boolean mask)
        are broadcast over short rows (broadcast.route; for a comparison, per entry)."""
        a, b = v.args
        if not isinstance(a, Value) or not isinstance(b, Value):
            return False
        sa, sb = _shape(a), _shape(b)
        if sa is None or sb is None:
            return False
        da, db = numpy.dtype(a.dtype), numpy.dtype(b.dtype)
        if v.prim is P.multiply and da != db and {da.char, db.char} in ({"?", "f"}, {"?", "d"}):
            da = db = numpy.dtype(v.dtype)  # a mask: binary casts it to the float's dtype
        if da != db or da.char not in "fd":
            return False
        how = route(sa, sb)
        return how == PER_ENTRY if v.prim in _COMPARE else how != 0

    @staticmethod
    def _loop(v: Value) -> str:
        """``, dtype=...`` for a float result with a boolean operand (a ReLU mask): NumPy then
        runs its float loop directly (about 40% faster on a 128 x 512 float32 array than the
        loop it picks for float x bool); the mask is cast to 0.0/1.0 either way."""
        dt = numpy.dtype(v.dtype)
        if dt.kind == "f" and any(
            isinstance(x, Value) and numpy.dtype(x.dtype) == numpy.bool_ for x in v.args
        ):
            return f", dtype=numpy.{dt.name}"
        return ""

    def _reads(self, v: Value) -> list[Value]:
        """The named values (and inputs) statement ``v`` reads, through its inline parts."""
        found, stack = [], list(v.args)
        while stack:
            x = stack.pop()
            if not isinstance(x, Value) or x.op == CONST:
                continue
            if x.id in self.names or x.op == INPUT:
                found.append(x)
            else:
                stack.extend(x.args)
        return found

    def lines(self) -> list[Line]:
        base = [self._scatter_call(line) for line in super().lines()]
        self._last: dict[int, int] = {}
        self._viewed: set[int] = set()
        for stmt, line in enumerate(base):
            for x in self._reads(line.value):
                self._last[x.id] = stmt
        for v in self.prog.values:
            if v.prim is not None and self._views(v):
                self._viewed.update(a.id for a in v.args if isinstance(a, Value))
        dying: dict[int, list[Value]] = {}
        for v in self.prog.values:
            if self._last.get(v.id, len(base) - 1) < len(base) - 1 and self._frees_early(v):
                dying.setdefault(self._last[v.id], []).append(v)
        self._taken: set[int] = set()
        out = []
        for stmt, line in enumerate(base):
            code = None
            if len(line.code) == 1:
                reads = self._reads(line.value) + [line.value]  # the statement's own value last
                code = self._into(line.value, line.name, stmt, reads)
            gone = [self.names[v.id] for v in dying.get(stmt, ()) if v.id not in self._taken]
            if gone:
                code = (code or line.code) + [f"del {', '.join(gone)}"]
            out.append(line if code is None else Line(line.value, line.name, line.expr, code))
        return out

    @staticmethod
    def _scatter_call(line: Line) -> Line:
        """A scatter's ``numpy.add.at(...)`` as ``_add_at(..., fresh=True)``
        (:func:`chainrule.engine.scatter.add_at`: the same sums, on NumPy's fast loop where
        the index allows, as the eager path computes them; the line before made the zeros)."""
        if line.value.prim is not P.scatter_add and line.value.prim is not P.scatter:
            return line
        code = [
            "_add_at(" + c[len("numpy.add.at(") : -1] + ", fresh=True)"
            if c.startswith("numpy.add.at(")
            else c
            for c in line.code
        ]
        return Line(line.value, line.name, line.expr, code)

    def _frees_early(self, v: Value) -> bool:
        """Whether ``v``'s name is deleted right after the statement that reads it last.

        The buffer then goes back to the allocator while it is still in the CPU's caches,
        and the next temporary of that size reuses it (instead of memory that has to come
        from RAM): 1% of the 784-512-512-10 MLP's step.  Small arrays gain nothing from it
        and would pay for the statement.
        """
        return (
            v.id in self.names
            and v.op not in (INPUT, CONST)
            and v.id not in self.out_ids
            and v.shape is not None
            and math.prod(v.shape) * numpy.dtype(v.dtype).itemsize >= _FREE_EARLY
        )

    def size(self, s: Size) -> str:
        return str(int(s))  # never a name: names may be deleted once read
