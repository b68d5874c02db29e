"""A recorded computation as a straight-line program, and the passes that tidy it.

:func:`build` turns a :class:`~chainrule.program.trace.Recording` into a :class:`Program`: values in
recording order, each an input, a constant, or a primitive applied to earlier values.  The passes
rewrite it without changing what it computes:

* exact passes (``simplify``, ``cse``, ``dce``) drop identities (``x * 1``, ``x / 1``, ``x - 0``,
  reshapes and broadcasts to the same shape, ``astype`` to the same dtype), fold constants,
  share repeated subexpressions (a ReLU mask computed once) and remove what no output needs;
  ``jit`` runs only these, so its results equal the eager ones;
* for jit's NumPy backend only: ``merge_scatters`` and ``spread_ties`` (the same values, fewer
  passes over memory); for both of jit's backends: ``merge_products`` and ``merge_sums`` (a
  traced loop's independent matrix products as one product, its sums over the steps as one
  sum: the same values to rounding);
* ``prettify`` (for people only) also moves scalar factors to the right and turns
  ``a * (1 / N)`` into ``a / N``, so the seed's first backward line reads
  ``dY = 2 * (Y - T) / Y.size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.broadcast import route
from chainrule.engine.graph import Node, ancestors
from chainrule.engine.primitives import Primitive
from chainrule.engine.reduce import window_route
from chainrule.engine.rules import Size

from .trace import Recording

__all__ = ["Value", "Program", "build"]

INPUT = "input"
CONST = "const"


class Value:
    """One value of a program: an input, a constant, or ``prim(*args, **kw)``."""

    __slots__ = ("id", "op", "args", "kw", "shape", "dtype", "name", "const", "phase", "node")

    def __init__(
        self,
        id: int,
        op: Any,
        args: list[Any],
        kw: dict[str, Any],
        shape: Any,
        dtype: Any,
        const: Any = None,
        phase: str = "forward",
        node: Node | None = None,
    ) -> None:
        self.id = id
        self.op = op
        self.args = args
        self.kw = kw
        self.shape = shape
        self.dtype = dtype
        self.name: str | None = None
        self.const = const
        self.phase = phase
        self.node = node

    @property
    def prim(self) -> Primitive | None:
        return self.op if isinstance(self.op, Primitive) else None

    def __repr__(self) -> str:
        what = self.op.name if isinstance(self.op, Primitive) else self.op
        return f"<v{self.id} {self.name or ''} {what} {self.shape}>"


class Program:
    """Values in execution order; ``outputs`` are what the program returns."""

    def __init__(self, values: list[Value], inputs: list[Value], outputs: list[Value]) -> None:
        self.values = values
        self.inputs = inputs
        self.outputs = outputs
        self.replaced: dict[int, Any] = {}  # value id -> what the passes put in its place

    def resolve(self, v: Any) -> Any:
        """What ``v`` became after the passes (itself when it was kept)."""
        while isinstance(v, Value) and v.id in self.replaced:
            v = self.replaced[v.id]
        return v

    def uses(self) -> dict[int, int]:
        """How many times each value is read (by values and as an output)."""
        count: dict[int, int] = {}
        for v in self.values:
            for a in v.args:
                if isinstance(a, Value):
                    count[a.id] = count.get(a.id, 0) + 1
        for o in self.outputs:
            count[o.id] = count.get(o.id, 0) + 1
        return count

    def ops(self) -> list[Value]:
        return [v for v in self.values if v.prim is not None]


def _value_args(v: Value) -> Iterable[Value]:
    for a in v.args:
        if isinstance(a, Value):
            yield a
        elif isinstance(a, Size) and isinstance(a.of, Value):
            yield a.of


def _shape_dtype(data: Any) -> tuple[tuple[int, ...], numpy.dtype[Any]]:
    arr = numpy.asarray(data)
    return arr.shape, arr.dtype


def build(rec: Recording, outputs: list[Any] | None = None) -> Program:
    """Lower a recording to a program whose outputs are ``rec.output`` and ``rec.grads``."""
    roots = (
        outputs if outputs is not None else ([rec.output] + [g for g in rec.grads if g is not None])
    )
    out_nodes = [r for r in roots if isinstance(r, Node)]
    boundary = rec.output._seq if isinstance(rec.output, Node) else math.inf
    values: list[Value] = []
    by_node: dict[Node, Value] = {}
    input_set: dict[Node, int] = {t: i for i, t in enumerate(rec.inputs)}
    inputs: list[Value | None] = [None] * len(rec.inputs)
    for node in ancestors(out_nodes + list(rec.inputs)):
        shape, dtype = _shape_dtype(node._data)
        phase = "forward" if node._seq <= boundary else "backward"
        if node in input_set:
            v = Value(len(values), INPUT, [], {}, shape, dtype, phase="forward", node=node)
            inputs[input_set[node]] = v
        elif node._prim is None:
            v = Value(
                len(values), CONST, [], {}, shape, dtype, const=node._data, phase=phase, node=node
            )
        else:
            args = [_lower_arg(a, by_node) for a in node._args or ()]
            v = Value(
                len(values),
                node._prim,
                args,
                dict(node._kw or {}),
                shape,
                dtype,
                phase=phase,
                node=node,
            )
        by_node[node] = v
        values.append(v)
    outs = []
    for r in roots:
        if isinstance(r, Node):
            outs.append(by_node[r])
        else:
            shape, dtype = _shape_dtype(r)
            c = Value(len(values), CONST, [], {}, shape, dtype, const=numpy.asarray(r))
            values.append(c)
            outs.append(c)
    prog = Program(values, [v for v in inputs if v is not None], outs)
    for a in prog.values:
        for i, x in enumerate(a.args):
            if isinstance(x, Size) and isinstance(x.of, Node):
                a.args[i] = Size(int(x), by_node.get(x.of, None), x.axis)
    return prog


def _lower_arg(a: Any, by_node: dict[Node, Value]) -> Any:
    if isinstance(a, Node):
        return by_node[a]
    return a


# ---------------------------------------------------------------------------------------------
# Exact passes
# ---------------------------------------------------------------------------------------------


def is_const(x: Any, keep_sizes: bool = False) -> bool:
    if isinstance(x, Value):
        return bool(x.op == CONST)
    if isinstance(x, Size):
        return not keep_sizes
    return isinstance(x, (int, float, numpy.ndarray, numpy.generic, bool)) or x is None


def const_value(x: Any) -> Any:
    if isinstance(x, Value):
        return x.const
    if isinstance(x, Size):
        return int(x)
    return x


def _const_array(x: Any) -> Any:
    """Constant ``x`` as a numeric array (never a count that remembers what it counts), or
    None."""
    if isinstance(x, Size):
        return None
    try:
        arr = numpy.asarray(const_value(x))
    except Exception:  # pragma: no cover - exotic constants
        return None
    return arr if arr.dtype.kind in "fiub" and arr.size > 0 else None


def _all_ones(x: Any) -> bool:
    arr = _const_array(x)
    return arr is not None and bool(numpy.all(arr == 1))


def _all_plus_zeros(x: Any) -> bool:
    """Whether constant ``x`` is all +0 (``v - 0`` is ``v`` bit for bit, -0 and NaN included;
    ``v - (-0)`` is not: it turns -0 into +0)."""
    arr = _const_array(x)
    return arr is not None and bool(numpy.all(arr == 0)) and not numpy.signbit(arr).any()


def _shape_of(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Value) else numpy.shape(const_value(x))


def _dtype_of(x: Any) -> Any:
    return x.dtype if isinstance(x, Value) else numpy.asarray(const_value(x)).dtype


def _identity_of(v: Value) -> Any:
    """If ``v`` computes one of its arguments unchanged (same shape and dtype), that argument."""
    p = v.prim
    a = v.args

    def same(x: Any) -> bool:
        return bool(_shape_of(x) == v.shape and _dtype_of(x) == v.dtype)

    if p in (P.identity, P.stop_gradient, P.copy, P.positive):
        return a[0] if same(a[0]) else None
    if p in (P.reshape, P.broadcast_to, P.astype):
        return a[0] if same(a[0]) else None
    if p is P.transpose and tuple(v.kw["axes"]) == tuple(range(len(v.shape))):
        return a[0] if same(a[0]) else None
    if p is P.transpose and isinstance(a[0], Value) and a[0].prim is P.transpose:
        # x.T.T: the two permutations compose to the identity (Numba would copy x.T.T, an
        # array of unknown layout, before each product it enters: Sinkhorn's K.T gradients)
        inner, outer = a[0].kw.get("axes"), v.kw.get("axes")
        nd = len(v.shape)
        inner = tuple(range(nd))[::-1] if inner is None else tuple(inner)
        outer = tuple(range(nd))[::-1] if outer is None else tuple(outer)
        if len(inner) == len(outer) == nd and all(inner[outer[i]] == i for i in range(nd)):
            return a[0].args[0] if same(a[0].args[0]) else None
    if p is P.multiply:
        if _all_ones(a[1]) and same(a[0]):
            return a[0]
        if _all_ones(a[0]) and same(a[1]):
            return a[1]
    if p is P.divide and _all_ones(a[1]) and same(a[0]):
        return a[0]
    if p is P.subtract and _all_plus_zeros(a[1]) and same(a[0]):
        return a[0]
    if p is P.power and _all_ones(a[1]) and same(a[0]):
        return a[0]
    return None


_BINARY = {P.add, P.subtract, P.multiply, P.divide}


def _implicit_broadcast(v: Value) -> None:
    """``broadcast_to(a, s) * b`` -> ``a * b`` when NumPy's broadcasting gives the same shape."""
    if v.prim not in _BINARY:
        return
    for i in (0, 1):
        x = v.args[i]
        # the operand must carry its own dtype (a Value or an array, not a weakly typed
        # Python number), so that dropping the broadcast cannot change the result's dtype
        if (
            isinstance(x, Value)
            and x.prim is P.broadcast_to
            and isinstance(x.args[0], (Value, numpy.ndarray, numpy.generic))
        ):
            other = _shape_of(v.args[1 - i])
            try:
                shape = numpy.broadcast_shapes(_shape_of(x.args[0]), other)
            except ValueError:
                continue
            if shape == tuple(v.shape):
                v.args[i] = x.args[0]


def _unary_of_broadcast(v: Value) -> None:
    """``f(broadcast_to(c, s))`` -> ``broadcast_to(f(c), s)`` for a one-input ufunc ``f`` and a
    constant ``c`` (the negated seed of a mean, ``-broadcast_to(1/n, s)``): ``f`` of one
    number instead of a full array, and the product that reads it broadcasts again."""
    if v.kw or len(v.args) != 1:
        return
    fun = v.prim.fun if v.prim is not None else None
    x = v.args[0]
    if not (
        isinstance(fun, numpy.ufunc)
        and fun.nin == 1
        and fun.nout == 1
        and isinstance(x, Value)
        and x.prim is P.broadcast_to
        and isinstance(x.args[0], Value)
        and x.args[0].op == CONST
        and isinstance(x.args[0].const, (numpy.ndarray, numpy.generic))
    ):
        return
    folded = fun(x.args[0].const)
    if numpy.asarray(folded).dtype == v.dtype:
        v.op, v.args, v.kw = P.broadcast_to, [folded], {"shape": tuple(v.shape)}


def _keepdims_sum(v: Value, uses: dict[int, int]) -> None:
    """``x.sum(axis=k).reshape(kept shape)`` -> ``x.sum(axis=k, keepdims=True)``."""
    if v.prim is not P.reshape:
        return
    s = v.args[0]
    if not (
        isinstance(s, Value)
        and s.prim is P.sum_
        and not s.kw.get("keepdims")
        and s.kw.get("axis") is not None
        and uses.get(s.id, 0) == 1
    ):
        return
    x = s.args[0]
    axes = s.kw["axis"] if isinstance(s.kw["axis"], tuple) else (s.kw["axis"],)
    kept = tuple(1 if i in axes else n for i, n in enumerate(_shape_of(x)))
    if kept == tuple(v.shape):
        v.op, v.args, v.kw = P.sum_, [x], {"axis": s.kw["axis"], "keepdims": True}


def _transposed_outer(v: Value, uses: dict[int, int]) -> None:
    """``outer(a, b).T`` -> ``outer(b, a)`` for real floats: the same products (a real product
    commutes exactly), written in the order they are read instead of read through a transposed
    view (the gradient of ``K.T @ u`` added into ``K``'s: 2x faster)."""
    if v.prim is not P.transpose or len(v.shape) != 2 or v.kw.get("axes") not in (None, (1, 0)):
        return
    o = v.args[0]
    if (
        isinstance(o, Value)
        and o.prim is P.outer
        and not o.kw
        and len(o.args) == 2
        and uses.get(o.id, 0) == 1
        and numpy.dtype(o.dtype).kind == "f"
    ):
        v.op, v.args, v.kw = P.outer, [o.args[1], o.args[0]], {}


def _negation_in(x: Any, uses: dict[int, int], dtype: Any) -> list[tuple[Value, int]] | None:
    """Where a negation sits inside ``x``, a float value read once: ``x`` is ``-y``, or a
    product, quotient or transpose (read once) with such a value as an operand, at most
    :data:`_NEGATION_DEPTH` levels down.  The path of (value, operand) pairs down to the
    ``-y``, or None."""
    if numpy.dtype(dtype).kind != "f":
        return None
    stack: list[tuple[Any, list[tuple[Value, int]]]] = [(x, [])]
    while stack:
        y, path = stack.pop()
        if not (isinstance(y, Value) and uses.get(y.id, 0) == 1 and y.dtype == dtype):
            continue
        if (
            y.prim is P.negative
            and _shape_of(y.args[0]) == y.shape
            and _dtype_of(y.args[0]) == dtype
        ):
            return path
        if y.prim in (P.multiply, P.divide) and len(path) < _NEGATION_DEPTH:
            stack.extend((y.args[j], [*path, (y, j)]) for j in (1, 0))  # operand 0 first
        elif y.prim is P.transpose and len(path) < _NEGATION_DEPTH:
            stack.append((y.args[0], [*path, (y, 0)]))  # (-x).T is -(x.T)
    return None


# how deep inside products and quotients a negation is looked for (a long chain of products
# is not searched from every one of its links)
_NEGATION_DEPTH = 16


def _drop_negation(v: Value, i: int, path: list[tuple[Value, int]]) -> None:
    """Take out the negation :func:`_negation_in` found in operand ``i`` of ``v``: the values
    on the path (each read only by the next) then compute the negation of what they did."""
    holder, at = v, i
    for x, j in path:
        holder, at = x, j
    holder.args[at] = holder.args[at].args[0]


def _fold_negations(v: Value, uses: dict[int, int]) -> Any:
    """Negations that cancel or fold into a subtraction, exactly (IEEE negation is exact and
    rounding is symmetric in sign, so ``-(-a * b / c) == a * b / c`` and
    ``a + -b * c == a - b * c`` bit for bit, signed zeros and infinities included):
    ``-(-(x) * t / t * t)``, the chain rule through ``exp(-x)``, is ``x * t / t * t``, one
    pass over the array instead of three.
    Real floats only (an integer's negation can overflow; NumPy's complex products and
    quotients are not symmetric in sign bit for bit).  Returns what replaces ``v``, if it
    becomes one of its operands."""
    p = v.prim
    if p is P.negative:
        path = _negation_in(v.args[0], uses, v.dtype)
        if path is not None and _shape_of(v.args[0]) == v.shape:
            _drop_negation(v, 0, path)
            return v.args[0]  # -(-(w)) is w
    elif p is P.add:
        for i in (1, 0):
            path = _negation_in(v.args[i], uses, v.dtype)
            if path is not None and _dtype_of(v.args[1 - i]) == v.dtype:
                _drop_negation(v, i, path)  # a + -b, a + (-b) * c, -b + a: a - b, a - b * c
                v.op, v.args = P.subtract, [v.args[1 - i], v.args[i]]
                return None
    elif p is P.subtract:
        path = _negation_in(v.args[1], uses, v.dtype)
        if path is not None and _dtype_of(v.args[0]) == v.dtype:
            _drop_negation(v, 1, path)  # a - -b, a - (-b) / c: a + b, a + b / c
            v.op = P.add
    elif p in (P.multiply, P.divide):
        paths = [_negation_in(a, uses, v.dtype) for a in v.args]
        if paths[0] is not None and paths[1] is not None:  # (-a) * (-b): a * b
            _drop_negation(v, 0, paths[0])
            _drop_negation(v, 1, paths[1])
    return None


def fold_negations(prog: Program) -> Program:
    """The negations of ``prog`` that cancel or fold into a subtraction taken out
    (:func:`_fold_negations`): for compiled code, where each is a pass over an array; ``explain``
    keeps the rules' own forms, which its textbook patterns read."""
    uses = prog.uses()
    kept = []
    for v in prog.values:
        v.args = [prog.resolve(a) for a in v.args]
        if v.prim is not None:
            same = _fold_negations(v, uses)
            if same is not None:
                prog.replaced[v.id] = same
                # v's readers now read what replaced it (one reader, v, less)
                uses[same.id] = uses.get(same.id, 0) - 1 + uses.get(v.id, 0)
                continue
        kept.append(v)
    prog.values = kept
    prog.outputs = [prog.resolve(o) for o in prog.outputs]
    return dce(prog)


def simplify(prog: Program, fold: bool = True, keep_sizes: bool = False) -> Program:
    """Drop identity operations and (with ``fold``) evaluate operations on constants."""
    replace = prog.replaced

    def sub(x: Any) -> Any:
        x = prog.resolve(x)
        if isinstance(x, Size) and isinstance(x.of, Value):
            return Size(int(x), sub(x.of), x.axis)
        return x

    kept = []
    uses = prog.uses()
    for v in prog.values:
        v.args = [sub(a) for a in v.args]
        if v.prim is not None:
            _unary_of_broadcast(v)
            _implicit_broadcast(v)
            _keepdims_sum(v, uses)
            _transposed_outer(v, uses)
            same = _identity_of(v)
            if same is not None and not isinstance(same, Value):
                v.op, v.args, v.kw, v.const = CONST, [], {}, numpy.asarray(const_value(same))
                kept.append(v)
                continue
            if same is not None:
                replace[v.id] = same
                if (
                    v.name
                    and isinstance(same, Value)
                    and same.name is None
                    and same.op not in (INPUT, CONST)
                ):
                    same.name = v.name
                continue
            # broadcast_to is not folded: a constant spread to a large shape would be stored
            # (and read every call) at full size; NumPy's broadcasting spreads it for free
            # (_implicit_broadcast drops the op where the consumer broadcasts anyway)
            if (
                fold
                and v.args
                and all(is_const(a, keep_sizes) for a in v.args)
                and not v.prim.nondiff
                and v.prim not in (P.scatter_add, P.broadcast_to)
            ):
                data = v.prim.fun(*(const_value(a) for a in v.args), **v.kw)
                if (
                    all(type(a) in (int, float, bool, Size) for a in v.args)
                    and numpy.ndim(data) == 0
                ):
                    data = data.item()  # Python numbers in, a Python number out (weak type)
                v.op, v.args, v.kw, v.const = CONST, [], {}, data
        kept.append(v)
    prog.values = kept
    prog.outputs = [sub(o) for o in prog.outputs]
    return dce(prog)


def _key(x: Any) -> Any:
    if isinstance(x, Value):
        return ("v", x.id)
    if isinstance(x, (numpy.ndarray, numpy.generic)):
        arr = numpy.asarray(x)
        return ("a", arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 64 else ("id", id(x))
    if isinstance(x, Size):
        return ("size", int(x), _key(x.of), x.axis)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple(_key(i) for i in x)
    if isinstance(x, slice):
        return ("slice", x.start, x.stop, x.step)
    if isinstance(x, dict):
        return ("dict",) + tuple((k, _key(v)) for k, v in sorted(x.items()))
    if isinstance(x, float) and math.isnan(x):
        return ("nan",)
    return (type(x).__name__, x)


def cse(prog: Program) -> Program:
    """Compute each distinct ``prim(args, kw)`` once."""
    seen: dict[Any, Value] = {}
    replace = prog.replaced

    def sub(x: Any) -> Any:
        x = prog.resolve(x)
        if isinstance(x, Size) and isinstance(x.of, Value):
            return Size(int(x), prog.resolve(x.of), x.axis)
        return x

    kept = []
    for v in prog.values:
        v.args = [sub(a) for a in v.args]
        if v.prim is not None:
            key = (v.prim, tuple(_key(a) for a in v.args), _key(v.kw))
            if key in seen:
                replace[v.id] = seen[key]
                if v.name and seen[key].name is None:
                    seen[key].name = v.name
                continue
            seen[key] = v
        kept.append(v)
    prog.values = kept
    prog.outputs = [sub(o) for o in prog.outputs]
    return prog


def dce(prog: Program) -> Program:
    """Remove values that no output needs (inputs always stay)."""
    live = {o.id for o in prog.outputs}
    for v in reversed(prog.values):
        if v.id in live:
            live.update(a.id for a in _value_args(v))
    prog.values = [v for v in prog.values if v.id in live or v.op == INPUT]
    return prog


def distinct_positions(index: tuple[Any, ...], shape: tuple[int, ...]) -> bool:
    """Whether indexing an array of ``shape`` with ``index`` provably reaches no position twice.

    ``index`` has one entry per leading axis: an int, a slice, a constant integer array, or a
    :class:`Value` (an integer array whose values are unknown until run time, like labels).
    Slices and ints never repeat a position.  The advanced (array) entries broadcast together;
    they reach distinct positions when one of them is a constant with the broadcast shape
    itself and distinct values along its axis (``arange(n)`` in ``logp[arange(n), y]``).  A
    scatter through such an index can assign instead of accumulating.
    """
    if len(index) > len(shape):
        return False
    arrays: list[tuple[int, Any]] = []
    for axis, i in enumerate(index):
        if isinstance(i, Value) and i.op == CONST:
            i = i.const
        if isinstance(i, slice) or (
            isinstance(i, (int, numpy.integer)) and not isinstance(i, bool)
        ):
            continue
        kind = i.dtype.kind if isinstance(i, (Value, numpy.ndarray)) else None
        if kind not in ("i", "u"):
            return False  # booleans, None, Ellipsis, lists: not analysed
        arrays.append((axis, i))
    if not arrays:
        return True
    try:
        full = numpy.broadcast_shapes(*(tuple(_shape_of(i)) for _, i in arrays))
    except ValueError:
        return False
    for axis, i in arrays:
        if isinstance(i, numpy.ndarray) and i.shape == full:
            n = shape[axis]
            if i.size and (i.min() < -n or i.max() >= n):
                return False
            wrapped = i % n if n else i
            if numpy.unique(wrapped).size == i.size:
                return True
    return False


def _positions(index: Any, shape: tuple[int, ...]) -> list[range] | None:
    """Per axis, the positions a basic index of ints and slices selects (None for another)."""
    items = index if isinstance(index, tuple) else (index,)
    if len(items) > len(shape):
        return None
    out = []
    for ix, n in zip(items, shape):
        if isinstance(ix, slice):
            out.append(range(*ix.indices(n)))
        elif isinstance(ix, (int, numpy.integer)) and not isinstance(ix, bool) and -n <= ix < n:
            out.append(range(int(ix) % n, int(ix) % n + 1))
        else:
            return None
    return out + [range(n) for n in shape[len(items) :]]


def _apart(a: range, b: range) -> bool:
    if not a or not b:
        return True
    if abs(a.step) == abs(b.step) == 1:
        return max(a) < min(b) or max(b) < min(a)
    return len(a) * len(b) <= 1 << 16 and set(a).isdisjoint(b)


def _disjoint(places: list[list[range]]) -> bool:
    """Whether no position is selected by two of these (each pair apart along some axis)."""
    return all(
        any(_apart(x, y) for x, y in zip(places[i], places[j]))
        for i in range(len(places))
        for j in range(i)
    )


# at most this many slices are merged into one array (their pairwise check is quadratic)
_MAX_MERGED = 64


def _inner_sums(prog: Program, uses: dict[int, int], prims: tuple[Any, ...]) -> set[int]:
    """The values of ``prims`` (additions) read once, by another of ``prims``: the inner
    nodes of a tree of sums, whose root the merging passes start from."""
    return {
        a.id
        for v in prog.values
        if v.prim in prims
        for a in v.args
        if isinstance(a, Value) and a.prim in prims and uses.get(a.id, 0) == 1
    }


def merge_scatters(prog: Program) -> Program:
    """A sum of scatters into disjoint basic indices of one shape (the gradient of ``z`` read
    as slices, ``z[:, :h]`` and ``z[:, h:]``: each slice's cotangent put into zeros, then the
    arrays added) as one ``scatter_adds``: one array, each cotangent written into its place;
    the same values (but that a -0.0 stays -0.0 where the sum made it +0.0), one array instead
    of one per slice and no additions of whole arrays.  A new program; ``prog``'s values are
    not changed."""
    uses = prog.uses()

    def leaves(top: Value) -> list[tuple[Value, list[range]]] | None:
        # the scatters a tree of additions (each inner one read only by the next) adds up, in
        # order, with the positions each writes; None if anything else is added (a loop, not a
        # recursion: sums can be long)
        found: list[tuple[Value, list[range]]] = []
        todo: list[Any] = [top]
        while todo:
            x = todo.pop()
            if not isinstance(x, Value) or x.shape != top.shape or x.dtype != top.dtype:
                return None
            places = _positions(x.args[1], x.shape) if x.prim is P.scatter_add else None
            if x.prim is P.add and (x is top or uses.get(x.id, 0) == 1):
                todo += [x.args[1], x.args[0]]
            elif places and x.args[3] and len(found) < _MAX_MERGED:
                found.append((x, places))
            else:
                return None
        return found

    inner = _inner_sums(prog, uses, (P.add,))
    merged: dict[int, list[tuple[Value, list[range]]]] = {}
    for v in prog.values:
        if v.prim is not P.add or v.id in inner or v.shape is None:
            continue
        found = leaves(v)
        if found and _disjoint([places for _, places in found]):
            merged[v.id] = found
    if not merged:
        return prog

    def merge(v: Value, now: Callable[[Any], Any]) -> Value | None:
        found = merged.get(v.id)
        if found is None:
            return None
        written = sum(math.prod(map(len, places)) for _, places in found)
        kw = {
            "indices": tuple(x.args[1] for x, _ in found),
            "shape": tuple(v.shape),
            "covers": written == math.prod(v.shape),  # disjoint: each position once
        }
        return Value(v.id, P.scatter_adds, [now(x.args[0]) for x, _ in found], kw, v.shape,
                     v.dtype, None, v.phase, v.node)  # fmt: skip

    return _replacing(prog, merge)


_Make = Callable[[Value, Callable[[Any], Any]], "Value | list[Value] | None"]


def _replacing(prog: Program, make: _Make) -> Program:
    """A new program: each value for which ``make(v, now)`` gives a replacement replaced by it
    (``now(a)``: what operand ``a`` has become; a list: new values computed first, then the
    replacement, last), and every value that reads a replaced one copied with the new
    operands; ``prog``'s values are not changed."""
    changed: dict[int, Value] = {}

    def now(a: Any) -> Any:
        return changed.get(a.id, a) if isinstance(a, Value) else a

    values = []
    for v in prog.values:
        w = make(v, now)
        if isinstance(w, list):
            values += w[:-1]
            w = w[-1]
        if w is None:
            if not any(isinstance(a, Value) and a.id in changed for a in v.args):
                values.append(v)
                continue
            w = Value(v.id, v.op, [now(a) for a in v.args], v.kw, v.shape, v.dtype, v.const,
                      v.phase, v.node)  # fmt: skip
        w.name = v.name
        changed[v.id] = w
        values.append(w)
    return dce(Program(values, prog.inputs, [now(o) for o in prog.outputs]))


_MIN_PRODUCTS = 3  # products merged into one only where there are at least this many
# ... each of at most this many multiply-adds (from about 10 us a product the call costs
# little, and merging would keep every step's operands or results alive at once)
_MAX_MERGED_PRODUCT = 1 << 18


def _matrix(x: Any) -> bool:
    return (
        isinstance(x, Value)
        and x.shape is not None
        and len(x.shape) == 2
        and numpy.dtype(x.dtype).char in "fd"
    )


_ALL = slice(None)


def _row_read(x: Any) -> tuple[Value, int, int] | None:
    """``(I, axis, t)`` where ``x`` is ``I[t]`` (axis 0) or ``I[:, t]`` (axis 1) for a 3-D
    float array ``I`` and an integer ``t`` (made non-negative)."""
    if not (isinstance(x, Value) and x.prim is P.getitem):
        return None
    index = x.kw.get("index")
    if type(index) is int:
        axis, t = 0, index
    elif type(index) is tuple and len(index) == 2 and index[0] == _ALL and type(index[1]) is int:
        axis, t = 1, index[1]
    else:
        return None
    src = x.args[0]
    if not isinstance(src, Value) or src.shape is None or len(src.shape) != 3:
        return None
    n = src.shape[axis]
    return (src, axis, t + n if t < 0 else t) if -n <= t < n else None


def merge_products(prog: Program) -> Program:
    """Matrix products of a loop unrolled by tracing, merged where they are independent (the
    schedule of jit's backends; a new program, ``prog``'s values are not changed):

    * ``X[t] @ W`` (or ``X[:, t] @ W``) for many ``t`` (an RNN's input products, one small
      product per step) is one product ``X.reshape(-1, m) @ W`` computed before the first of
      them, each ``X[t] @ W`` a view of its rows;
    * a sum of ``A_t.T @ B_t`` (the gradient of a weight used at every step, added up step
      after step) is one product ``concatenate(A).T @ concatenate(B)`` where the sum is done.

    One call instead of one per step (an Elman RNN of 50 steps: 150 products fewer).  The
    values agree with the step-by-step products to rounding, not bit for bit: BLAS may block
    a taller product differently, and the merged sum adds the terms in another order."""
    uses = prog.uses()
    ids = iter(range(max(v.id for v in prog.values) + 1, 1 << 62))
    plans: dict[int, Callable[[Value, Callable[[Any], Any]], list[Value]]] = {}

    # rows of one array times one matrix
    groups: dict[tuple[int, int, int], list[tuple[Value, int]]] = {}
    for v in prog.values:
        if (v.prim is P.matmul or v.prim is P.dot) and not v.kw and _matrix(v):
            left, right = v.args
            read = _row_read(left)
            if read is not None and _matrix(left) and _matrix(right):
                if left.dtype == right.dtype == v.dtype == read[0].dtype:
                    key = (read[0].id, read[1], right.id)
                    groups.setdefault(key, []).append((v, read[2]))
    for (_, axis, _), members in groups.items():
        first, _ = members[0]
        src = first.args[0].args[0]
        if len(members) < _MIN_PRODUCTS or 2 * len({t for _, t in members}) < src.shape[axis]:
            continue  # (most rows unread: the product of all of them would cost more)
        if math.prod(first.args[0].shape) * first.shape[1] > _MAX_MERGED_PRODUCT:
            continue
        made: dict[str, Value] = {}

        def before_first(v: Value, now: Callable[[Any], Any], made: dict[str, Value] = made,
                         src: Value = src, axis: int = axis) -> list[Value]:  # fmt: skip
            n0, n1, m = src.shape
            p = v.shape[1]
            out: list[Value] = []
            if not made:
                flat = Value(next(ids), P.reshape, [now(src)], {"shape": (n0 * n1, m)},
                             (n0 * n1, m), src.dtype, None, v.phase, v.node)  # fmt: skip
                prod = Value(next(ids), P.matmul, [flat, now(v.args[1])], {}, (n0 * n1, p),
                             v.dtype, None, v.phase, v.node)  # fmt: skip
                made["all"] = Value(next(ids), P.reshape, [prod], {"shape": (n0, n1, p)},
                                    (n0, n1, p), v.dtype, None, v.phase, v.node)  # fmt: skip
                out += [flat, prod, made["all"]]
            t = _row_read(v.args[0])[2]  # type: ignore[index]
            index = t if axis == 0 else (_ALL, t)
            out.append(Value(v.id, P.getitem, [made["all"]], {"index": index}, v.shape,
                             v.dtype, None, v.phase, v.node))  # fmt: skip
            return out

        for v, _ in members:
            plans[v.id] = before_first

    # sums of A_t.T @ B_t
    inner = _inner_sums(prog, uses, (P.add,))
    for v in prog.values:
        if v.prim is not P.add or v.id in inner or v.kw or not _matrix(v):
            continue
        terms = _product_terms(v, uses)
        if terms is None or len(terms) < _MIN_PRODUCTS:
            continue
        if math.prod(terms[0][0].shape) * terms[0][1].shape[1] > _MAX_MERGED_PRODUCT:
            continue

        def summed(
            v: Value, now: Callable[[Any], Any], terms: list[tuple[Value, Value]] = terms
        ) -> list[Value]:
            reads = [_row_read(a) for a, _ in terms]
            whole = None  # A_t = I[t] (I[:, t]) for every t of one I: the terms in I's order
            if all(reads) and len({(r[0].id, r[1]) for r in reads}) == 1:  # type: ignore[index]
                src, axis = reads[0][0], reads[0][1]  # type: ignore[index]
                order = sorted(range(len(terms)), key=lambda i: reads[i][2])  # type: ignore[index]
                if [reads[i][2] for i in order] == list(range(src.shape[axis])):  # type: ignore[index]
                    terms = [terms[i] for i in order]
                    whole = src
            out: list[Value] = []
            b_parts = [now(b) for _, b in terms]
            rows = sum(b.shape[0] for b in b_parts)
            b_shape = (rows, b_parts[0].shape[1])
            if whole is not None:
                a_shape = (rows, whole.shape[2])
                a_cat = Value(next(ids), P.reshape, [now(whole)], {"shape": a_shape}, a_shape,
                              v.dtype, None, v.phase, v.node)  # fmt: skip
                if axis == 0:
                    b_cat = Value(next(ids), P.concatenate, b_parts, {"axis": 0}, b_shape,
                                  v.dtype, None, v.phase, v.node)  # fmt: skip
                    out += [a_cat, b_cat]
                else:  # row i * n1 + t of I's rows is B_t's row i
                    n0, n1 = whole.shape[:2]
                    st = Value(next(ids), P.stack, b_parts, {"axis": 1},
                               (n0, n1, b_shape[1]), v.dtype, None, v.phase, v.node)  # fmt: skip
                    b_cat = Value(next(ids), P.reshape, [st], {"shape": b_shape}, b_shape,
                                  v.dtype, None, v.phase, v.node)  # fmt: skip
                    out += [a_cat, st, b_cat]
            else:
                a_parts = [now(a) for a, _ in terms]
                a_shape = (rows, a_parts[0].shape[1])
                a_cat = Value(next(ids), P.concatenate, a_parts, {"axis": 0}, a_shape,
                              v.dtype, None, v.phase, v.node)  # fmt: skip
                b_cat = Value(next(ids), P.concatenate, b_parts, {"axis": 0}, b_shape,
                              v.dtype, None, v.phase, v.node)  # fmt: skip
                out += [a_cat, b_cat]
            t = Value(next(ids), P.transpose, [a_cat], {"axes": (1, 0)},
                      (a_cat.shape[1], a_cat.shape[0]), v.dtype, None, v.phase, v.node)  # fmt: skip
            out.append(t)
            out.append(Value(v.id, P.matmul, [t, b_cat], {}, v.shape, v.dtype, None, v.phase,
                             v.node))  # fmt: skip
            return out

        plans[v.id] = summed
    if not plans:
        return prog
    return _replacing(prog, lambda v, now: plans[v.id](v, now) if v.id in plans else None)


def merge_sums(prog: Program) -> Program:
    """A sum of many sums over axis 0, ``s + (a_1 * b_1).sum(0) - (a_2 * b_2).sum(0) + ...``
    (the gradient of a parameter broadcast in every step of a loop: a decay rate, a bias), as
    one sum over the concatenated ``a`` and ``b`` for the terms added and one for those
    subtracted, where the sum is complete (jit's schedule; a new program).  Two
    calls a step fewer; the terms are added in another order, so the values agree to
    rounding."""
    uses = prog.uses()
    ids = iter(range(max(v.id for v in prog.values) + 1, 1 << 62))
    sums = (P.add, P.subtract)
    inner = _inner_sums(prog, uses, sums)
    plans: dict[int, list[tuple[int, Any]]] = {}
    for v in prog.values:
        if v.prim not in sums or v.id in inner or v.kw or v.shape is None:
            continue
        leaves = _signed_leaves(v, uses)
        if leaves is not None and sum(_summand(x, uses) is not None for _, x in leaves) >= 3:
            plans[v.id] = leaves
    if not plans:
        return prog

    def merge(v: Value, now: Callable[[Any], Any]) -> list[Value] | None:
        leaves = plans.get(v.id)
        if leaves is None:
            return None
        groups: dict[tuple[Any, ...], list[tuple[int, Value, list[Value]]]] = {}
        rest: list[tuple[int, Any]] = []
        for sign, x in leaves:
            parts = _summand(x, uses)
            if parts is None:
                rest.append((sign, now(x)))
            else:
                key = (sign, len(parts), tuple(p.shape for p in parts))
                groups.setdefault(key, []).append((sign, x, [now(p) for p in parts]))
        out: list[Value] = []

        def new(op: Any, args: list[Any], kw: dict[str, Any], shape: Any) -> Value:
            w = Value(next(ids), op, args, kw, shape, v.dtype, None, v.phase, v.node)
            out.append(w)
            return w

        for (sign, n, shapes), members in groups.items():
            if len(members) < 2:
                rest += [(sign, now(x)) for sign, x, _ in members]
                continue
            cats = []
            for j in range(n):
                rows = sum(parts[j].shape[0] for _, _, parts in members)
                shape = (rows,) + tuple(shapes[j][1:])
                cats.append(new(P.concatenate, [parts[j] for _, _, parts in members],
                                {"axis": 0}, shape))  # fmt: skip
            body = cats[0] if n == 1 else new(P.multiply, cats, {}, cats[0].shape)
            summed = new(P.sum_, [body], dict(members[0][1].kw), members[0][1].shape)
            rest.append((sign, summed))
        total = None
        for sign, x in rest:  # (a term may broadcast against the others: its own shape)
            if total is None:
                total = x if sign > 0 else new(P.negative, [x], {}, _shape_of(x))
            else:
                shape = numpy.broadcast_shapes(_shape_of(total), _shape_of(x))
                total = new(P.add if sign > 0 else P.subtract, [total, x], {}, shape)
        last = out.pop()  # the root keeps its id
        assert total is last
        out.append(Value(v.id, last.op, last.args, last.kw, v.shape, v.dtype, None, v.phase,
                         v.node))  # fmt: skip
        return out

    return _replacing(prog, merge)


def _signed_leaves(top: Value, uses: dict[int, int]) -> list[tuple[int, Any]] | None:
    """The terms (with their signs) that a tree of additions and subtractions (each inner one
    read only by the next) adds up, in order; None where there are too many to walk."""
    found: list[tuple[int, Any]] = []
    todo: list[tuple[int, Any]] = [(1, top)]
    while todo:
        sign, x = todo.pop()
        if (
            isinstance(x, Value)
            and x.prim in (P.add, P.subtract)
            and not x.kw
            and x.shape == top.shape
            and x.dtype == top.dtype
            and (x is top or uses.get(x.id, 0) == 1)
        ):
            todo += [(-sign if x.prim is P.subtract else sign, x.args[1]), (sign, x.args[0])]
        elif len(found) >= _MAX_TERMS:
            return None
        else:
            found.append((sign, x))
    return found


_MAX_TERMS = 4096


def _summand(x: Any, uses: dict[int, int]) -> list[Value] | None:
    """``[a, b]`` for a term ``(a * b).sum(axis=0)`` (``[a]`` for ``a.sum(axis=0)``) of
    float arrays of one shape, read only by the sum; None for any other term."""
    if not (
        isinstance(x, Value)
        and x.prim is P.sum_
        and uses.get(x.id) == 1
        and x.kw.get("axis") in (0, (0,))
        and not x.kw.get("keepdims")
        and numpy.dtype(x.dtype).char in "fd"
    ):
        return None
    body = x.args[0]
    if not isinstance(body, Value) or not body.shape or body.dtype != x.dtype:
        return None
    if (
        body.prim is P.multiply
        and not body.kw
        and uses.get(body.id) == 1
        and all(
            isinstance(a, Value) and a.shape == body.shape and a.dtype == x.dtype for a in body.args
        )  # fmt: skip
    ):
        return list(body.args)
    return [body]


def _product_terms(top: Value, uses: dict[int, int]) -> list[tuple[Value, Value]] | None:
    """The ``(A, B)`` of each ``A.T @ B`` a tree of additions (each inner one read only by the
    next) adds up, in order, all of one dtype with ``A``'s and ``B``'s of one shape each; None
    if anything else is added."""
    found: list[tuple[Value, Value]] = []
    todo: list[Any] = [top]
    while todo:
        x = todo.pop()
        if not isinstance(x, Value) or x.shape != top.shape or x.dtype != top.dtype:
            return None
        if x.prim is P.add and not x.kw and (x is top or uses.get(x.id, 0) == 1):
            todo += [x.args[1], x.args[0]]
            continue
        if not ((x.prim is P.matmul or x.prim is P.dot) and not x.kw and uses.get(x.id) == 1):
            return None
        t, b = x.args
        if not (isinstance(t, Value) and t.prim is P.transpose and t.kw.get("axes") == (1, 0)):
            return None
        a = t.args[0]
        if not (_matrix(a) and _matrix(b)) or a.dtype != top.dtype or b.dtype != top.dtype:
            return None
        if found and (a.shape != found[0][0].shape or b.shape != found[0][1].shape):
            return None
        found.append((a, b))
    return found


def _axes(axis: Any, ndim: int) -> frozenset[int] | None:
    """A reduction's ``axis`` as a set of non-negative axes (None: not one we read)."""
    if axis is None:
        return frozenset(range(ndim))
    if type(axis) is int:
        axis = (axis,)
    if type(axis) is not tuple or not all(type(a) is int and -ndim <= a < ndim for a in axis):
        return None
    return frozenset(a % ndim for a in axis)


def _extreme_compared(hit: Any) -> tuple[Any, frozenset[int]] | None:
    """If ``hit`` is ``x == m`` with ``m`` the max or min of ``x`` over some axes (kept as
    length-1 axes, or put back by a reshape): ``m`` and those axes."""
    if not isinstance(hit, Value) or hit.prim is not P.NONDIFF_UFUNCS[numpy.equal] or hit.kw:
        return None
    for x, m in (hit.args, hit.args[::-1]):
        top = m
        while isinstance(top, Value) and top.prim is P.reshape:
            top = top.args[0]
        if not (
            isinstance(x, Value)
            and isinstance(top, Value)
            and top.prim in (P.amax, P.amin)
            and top.args[0] is x
            and x.shape is not None
        ):
            continue
        axes = _axes(top.kw.get("axis"), len(x.shape))
        if axes is not None and _shape_of(m) == tuple(
            1 if k in axes else n for k, n in enumerate(x.shape)
        ):
            return m, axes
    return None


def _pooling(shape: tuple[int, ...], axes: frozenset[int]) -> bool:
    """Whether a max over ``axes`` is over windows the NumPy writer combines entry by entry
    (engine.reduce.window_route) other than along the last axis alone."""
    nd = len(shape)
    ranks = sorted(a % nd for a in axes)
    return ranks != [nd - 1] and window_route(shape, tuple(sorted(axes)))


def spread_ties(prog: Program) -> Program:
    """The gradient of a max or min as the eager rule writes it for any values, ``g / ties *
    hit`` (``hit = x == m``, ``ties`` its count in each slice), as one ``spread_ties``: it
    counts only where some slice has its extreme in two places (or none: NaN), and is
    ``g * hit`` otherwise (the same bits: ``g / 1`` is ``g``).  Two passes over x's shape
    saved per max of a softmax or log-sum-exp.  Left alone over pooling windows (a product
    broadcast over short rows, or ties counted window entry by window entry: the NumPy
    writer's per-entry routes are faster there).  A new program;
    ``prog``'s values are not changed."""
    uses = prog.uses()
    rewrites: dict[int, tuple[Any, Any, Any, frozenset[int], str]] = {}
    for v in prog.values:
        if v.prim is not P.multiply or v.kw or len(v.args) != 2:
            continue
        for q, hit in (v.args, v.args[::-1]):
            found = _extreme_compared(hit)
            if found is None or not isinstance(q, Value) or q.prim is not P.divide or q.kw:
                continue
            g, ties = q.args
            if (
                uses.get(q.id) != 1
                or not isinstance(g, Value)
                or g.dtype != v.dtype
                or not isinstance(ties, Value)
                or ties.prim is not P.sum_
                or uses.get(ties.id) != 1
                or set(ties.kw) != {"axis", "keepdims"}
                or not ties.kw["keepdims"]
                or _axes(ties.kw["axis"], len(hit.shape)) != found[1]
                or g.shape is None
                or route(tuple(g.shape), tuple(hit.shape))
                or _pooling(tuple(hit.shape), found[1])
            ):  # (a pooling window's short axes: the writer's per-entry steps are faster)
                continue
            counted = ties.args[0]
            if counted is hit:
                count = "int"
            elif (
                isinstance(counted, Value)
                and counted.prim is P.astype
                and counted.args[0] is hit
                and uses.get(counted.id) == 1
                and numpy.dtype(counted.kw["dtype"]).kind == "f"
            ):
                count = numpy.dtype(counted.kw["dtype"]).name
            else:
                continue
            rewrites[v.id] = (g, hit, found[0], found[1], count)
            break
    if not rewrites:
        return prog

    def spread(v: Value, now: Callable[[Any], Any]) -> Value | None:
        if v.id not in rewrites:
            return None
        g, hit, m, axes, count = rewrites[v.id]
        kw = {"axis": tuple(sorted(axes)), "count": count}
        return Value(v.id, P.spread_ties, [now(g), now(hit), now(m)], kw, v.shape, v.dtype,
                     None, v.phase, v.node)  # fmt: skip

    return _replacing(prog, spread)


def optimize(prog: Program) -> Program:
    """The exact passes, in order (what ``jit`` runs)."""
    return dce(cse(fold_negations(simplify(prog))))


# ---------------------------------------------------------------------------------------------
# Readability (text only)
# ---------------------------------------------------------------------------------------------


def _scalar_const_expr(x: Any) -> bool:
    """A value computed from constants and sizes only, with at most one element."""
    if isinstance(x, Value):
        if x.op == CONST:
            return int(numpy.size(x.const)) == 1
        if x.prim is None or x.prim.nondiff:
            return False
        return int(numpy.prod(x.shape)) == 1 and all(
            _scalar_const_expr(a) for a in x.args if isinstance(a, Value)
        )
    return isinstance(x, (int, float, Size, numpy.generic))


def _reciprocal(x: Any) -> bool:
    """``1 / n`` with ``n`` a constant or a count."""
    return (
        isinstance(x, Value)
        and x.prim is P.divide
        and _all_ones(x.args[0])
        and _scalar_const_expr(x.args[1])
    )


def prettify(prog: Program) -> Program:
    """Rewrites that keep the mathematics but read better (not bitwise exact)."""
    for v in prog.values:
        if v.prim is P.multiply:
            a, b = v.args
            for i in (0, 1):
                x = v.args[i]
                other = v.args[1 - i]
                if (
                    isinstance(x, Value)
                    and x.prim is P.broadcast_to
                    and _shape_of(other) == v.shape
                    and _scalar_const_expr(x.args[0])
                ):
                    v.args[i] = x.args[0]
            a, b = v.args
            if _reciprocal(a) and not _scalar_const_expr(b):
                a, b = b, a
            if _reciprocal(b):
                v.op, v.args = P.divide, [a, b.args[1]]
    return dce(prog)
