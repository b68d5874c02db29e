"""The recorded graph and the backward walk.

Every recorded value is a :class:`Node`: its data, the primitive that made it, the inputs it was
made from (``args``: tensors and constants as given) and the raw input values (``vals``: the
arrays the primitive actually saw, kept so that later functional updates of an input cannot
change what the rule reads).  Leaves have no primitive.  Nodes are numbered as they are made, so
"newest first" is a reverse topological order and the walk needs no recursive sort.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import numpy

from .reduce import add_reduce

if TYPE_CHECKING:  # for the annotations only: primitives does not import graph either
    from .primitives import Primitive

__all__ = [
    "Node",
    "Step",
    "backward_pass",
    "ancestors",
    "sum_to",
    "passthrough",
    "negated",
    "owned",
    "walk_memo",
]

_counter = itertools.count(1)

# Set by chainrule.detect_anomaly while it is on: called with (node, argnum, input, incoming
# gradient, outgoing gradient) when a rule turns a finite gradient into NaN or inf.
ANOMALY_REPORT: Any = None

# Set by chainrule.engine.plans when it is imported: called as _walk_arrays is, it walks a graph
# shaped like one walked before with straight-line code, or returns None.
PLANNER: Any = None

# The current backward pass's memo (walk_memo), per thread.
_WALK = threading.local()


def walk_memo() -> dict[Any, Any] | None:
    """A dict that lives for the backward pass now running in this thread (None outside one):
    where the rules of one operation's inputs share a result, as ``linalg.solve``'s two do
    (both need ``A^-T g``).  Keys should hold the objects they are made of (their ``id`` is
    then not reused while the pass runs); an entry handed on becomes the taker's, so it is
    popped, not read.

    >>> walk_memo() is None
    True
    """
    return getattr(_WALK, "memo", None)


class Node:
    """A value in the recorded graph (``chainrule.Tensor`` is the one concrete kind)."""

    __slots__ = (
        "_data",
        "grad",
        "requires_grad",
        "_prim",
        "_args",
        "_vals",
        "_kw",
        "_seq",
        "_name",
        "_used",
        "_site",
        "_pending",
        "__weakref__",
    )

    _data: Any  # the array (NumPy's, or another library's through NumPy's protocols)
    grad: Any  # the accumulated gradient: an array, or a recorded Node (create_graph)
    requires_grad: bool
    _prim: Primitive | None  # the operation that made it; None for a leaf
    _args: tuple[Any, ...] | None  # its inputs as given (Nodes among them); None once freed
    _vals: tuple[Any, ...] | None  # the inputs' data, what the rules receive
    _kw: dict[str, Any] | None  # the operation's parameters
    _seq: int  # recording number: every consumer of a node has a larger one
    _name: str | None  # a name for derivations (set explicitly or by the trace)
    _used: int  # how many recorded operations read it (in-place writes check this)
    _site: Any  # where a checking recorder saw it made (detect_anomaly)
    _pending: Any  # the gradient waiting for it during a walk (None outside a walk)


def passthrough(g: Any, out: Any, *inputs: Any, **params: Any) -> Any:
    """The rule of an input that reaches the output unchanged (either input of ``x + y``).

    An ordinary rule everywhere; the eager walk recognises it and skips the call.
    """
    return g


def negated(g: Any, out: Any, *inputs: Any, **params: Any) -> Any:
    """The rule of an input that reaches the output negated (``y`` of ``x - y``, ``-x``).

    An ordinary rule everywhere; the eager walk recognises it and negates in place a gradient
    that it made itself and handed to nobody else, instead of allocating ``-g``.
    """
    return -g


def definplace(prim: Primitive, into: Callable[..., None]) -> None:
    """Let the eager walk add ``prim``'s first-input cotangent into a gradient it owns.

    Only :func:`_walk_arrays` uses it, and only when the gradient accumulated for that input
    is an array the walk made itself (so nobody else holds it); everywhere else the rule runs.
    ``into(buffer, g, out, *inputs, **params)`` applies the rule as an update: ``buffer[index]
    += g`` for an indexed read, rather than zeros of the base's shape per read.
    """
    prim.vjp_into = into


def _cast(gi: Any, data: Any, node: Node) -> Any:
    """A gradient in its input's dtype. A complex gradient reaching a real input becomes its
    real part: under the convention of :mod:`chainrule.engine.rules` (autograd's and JAX's) the
    gradient with respect to a real value is the real part of its cotangent."""
    if gi.dtype.kind == "c" and data.dtype.kind != "c":
        gi = numpy.real(gi)
        if gi.dtype == data.dtype:
            return gi
    return gi.astype(data.dtype)


def fit(gi: Any, data: Any, node: Node) -> Any:
    """The term ``gi`` for an input whose value is ``data``: summed to its shape (reshaped where
    only length-1 axes differ) and cast to its dtype (``node``: the operation, for the message).

    >>> fit(numpy.ones((2, 3), numpy.float32), numpy.zeros(3), None)
    array([2., 2., 2.])
    """
    if gi.shape != data.shape:
        gi = gi.reshape(data.shape) if gi.size == data.size else sum_to(gi, data.shape)
    if gi.dtype is not data.dtype and gi.dtype != data.dtype:
        gi = _cast(gi, data, node)
    return gi


def _freed(node: Node) -> RuntimeError:
    op = node._prim.name if node._prim is not None else "a leaf"
    return RuntimeError(
        f"backward() reached the result of {op!r} after an earlier backward() freed that part "
        "of the graph; pass retain_graph=True to the first backward() to call it again, or run "
        "the forward pass again"
    )


def _reachable(root: Node, stop: frozenset[Node] | set[Node]) -> tuple[list[Node], bool]:
    """The nodes that require grad and that ``root`` depends on, newest (last recorded) first.

    The walk does not go past a node in ``stop``.  The flag says whether a leaf that requires
    grad but is not in ``stop`` was reached (then not every node leads to a target).
    """
    order = [root]
    seen = {root}
    other_leaf = False
    i = 0
    while i < len(order):
        node = order[i]
        i += 1
        if node in stop:
            continue
        if node._prim is None:
            other_leaf = True
            continue
        args = node._args
        if args is None:
            raise _freed(node)
        for a in args:
            if isinstance(a, Node) and a.requires_grad and a not in seen:
                seen.add(a)
                order.append(a)
    order.sort(key=_seq_of, reverse=True)
    return order, other_leaf


def _seq_of(node: Node) -> int:
    return node._seq


def _relevant(order: list[Node], targets: frozenset[Node] | set[Node]) -> set[Node]:
    """The nodes of ``order`` that depend on a target (the only ones worth differentiating)."""
    rel = set()
    for node in reversed(order):  # oldest first: parents before children
        if node in targets:
            rel.add(node)
        elif node._prim is not None and any(
            a in rel for a in node._args or () if isinstance(a, Node)
        ):
            rel.add(node)
    return rel


_SUM_AXES: dict[tuple[tuple[int, ...], tuple[int, ...]], Any] = {}


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a broadcast gradient back to ``shape`` (works on arrays and on tensors)."""
    key = (g.shape, shape)
    axes = _SUM_AXES.get(key)
    if axes is None:
        lead = len(key[0]) - len(shape)
        found = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(shape) if n == 1 and key[0][lead + i] != 1
        )
        axes = _SUM_AXES[key] = (found[0] if len(found) == 1 else found) if found else None
    if axes is not None:
        g = add_reduce(g, axes) if type(g) is numpy.ndarray else g.sum(axis=axes)
    return g if g.shape == shape else g.reshape(shape)


_NO_STOP: frozenset[Node] = frozenset()


def backward_pass(
    root: Node,
    seed: Any,
    targets: Iterable[Node] | None = None,
    create_graph: bool = False,
    retain_graph: bool = False,
    log: list[Step] | None = None,
    prune: bool = False,
) -> dict[Node, Any]:
    """Propagate ``seed`` from ``root`` back through the graph.

    With ``targets``, return ``{target: gradient}`` for the targets ``root`` depends on (the
    walk stops there): without ``create_graph``, arrays the caller may keep and write, each with
    memory of its own (none shares memory with another, or is ``seed``); with ``prune`` also
    skip every node that leads to no target (worth it when other leaves require grad, as in
    gradients of gradients).  Without targets, add each leaf's gradient into its ``.grad``.
    With ``create_graph`` the rules run on the recorded
    tensors themselves, so the gradients are recorded too and can be differentiated again.
    ``log``, if given, receives one :class:`Step` per node (what ``explain`` prints).

    Nodes are visited newest first from a heap keyed by their recording number: every consumer
    of a node was recorded after it, so its gradient is complete when it is popped; a node
    enters the heap only when a gradient reaches it.
    """
    outer = getattr(_WALK, "memo", None)  # (a pass within a pass: a rule's own gradient)
    _WALK.memo = {}
    try:
        return _backward_pass(root, seed, targets, create_graph, retain_graph, log, prune)
    finally:
        _WALK.memo = outer


def _backward_pass(
    root: Node,
    seed: Any,
    targets: Iterable[Node] | None,
    create_graph: bool,
    retain_graph: bool,
    log: list[Step] | None,
    prune: bool,
) -> dict[Node, Any]:
    stop = frozenset(targets) if targets is not None else _NO_STOP
    relevant = None
    if prune and targets is not None:
        order, other_leaf = _reachable(root, stop)
        if other_leaf:
            relevant = _relevant(order, stop)
    free = targets is None and not (retain_graph or create_graph)
    report = ANOMALY_REPORT
    if not create_graph and log is None and report is None and relevant is None:
        return _walk_arrays(root, seed, stop, targets is not None, free)
    grads: dict[Node, Any] = {root: seed}
    heap = [(-root._seq, root)]
    found: dict[Node, Any] = {}
    stored = {id(seed)}  # arrays a leaf holds; the seed may be shared (backward())
    if report is not None:
        with numpy.errstate(all="ignore"):  # the report says more than a warning
            found = _walk(
                heap, grads, found, stop, relevant, targets, create_graph, free, stored, log, report
            )
    else:
        found = _walk(
            heap, grads, found, stop, relevant, targets, create_graph, free, stored, log, None
        )
    if targets is not None and not create_graph:
        for a, g in found.items():
            found[a] = owned(g, stored)
    return found


def _walk(
    heap: list[Any],
    grads: dict[Node, Any],
    found: dict[Node, Any],
    stop: frozenset[Node],
    relevant: set[Node] | None,
    targets: Any,
    create_graph: bool,
    free: bool,
    stored: set[int],
    log: list[Step] | None,
    report: Any,
) -> dict[Node, Any]:
    pop, push = heapq.heappop, heapq.heappush
    plain = not create_graph and log is None  # plain arrays: nothing recorded or logged
    while heap:
        node = pop(heap)[1]
        g = grads.pop(node)
        if log is not None:
            log.append(Step(node, g))
        prim = node._prim
        if prim is None or node in stop:
            if targets is not None:
                found[node] = g
            else:
                _accumulate(node, g, create_graph, stored)
            continue
        args = node._args
        if args is None:
            raise _freed(node)
        if create_graph:
            vals, out = args, node
        else:
            vals, out = node._vals, node._data
        kw = node._kw
        rules = prim.vjps
        variadic = prim.vjp_argnum
        for i, a in enumerate(args):
            if not isinstance(a, Node) or not a.requires_grad:
                continue
            if relevant is not None and a not in relevant:
                continue
            if variadic is not None:
                gi = variadic(i, g, out, *vals, **kw)
                if gi is None:
                    continue
            else:
                rule = rules[i] if i < len(rules) else None
                if rule is None:
                    continue
                if rule is negated and log is None and g.size != a._data.size:
                    # the b of x - b, broadcast: summed to b's shape first and negated there,
                    # as the eager walk does (the same bits; the negation on the smaller array)
                    gi = -sum_to(g, a._data.shape)
                else:
                    gi = rule(g, out, *vals, **kw) if kw else rule(g, out, *vals)
            if report is not None and _nonfinite(gi) and not _nonfinite(g):
                report(node, i, a, g, gi)
            data = a._data
            raw = gi
            if gi.shape != data.shape:
                if plain and gi.size == data.size:
                    gi = gi.reshape(data.shape)  # only length-1 axes differ: nothing to sum
                else:
                    gi = sum_to(gi, data.shape)
            if gi.dtype is not data.dtype and gi.dtype != data.dtype:
                gi = _cast(gi, data, node)
            prev = grads.get(a)
            if prev is None:
                grads[a] = gi
                push(heap, (-a._seq, a))
            else:
                grads[a] = prev + gi
            if log is not None:
                log[-1].terms.append((i, a, raw, gi))
        if free:
            node._args = node._vals = None
    return found


def _walk_arrays(
    root: Node, seed: Any, stop: frozenset[Node], to_targets: bool, free: bool
) -> dict[Node, Any]:
    """:func:`_walk` for plain arrays with nothing logged or checked: the eager hot path.

    The same walk with every option that does not apply taken out of the loop, and these
    economies: a node's pending gradient waits in its ``_pending`` slot (None outside a walk)
    instead of a dict; the node a chain hands its gradient to waits beside the heap, not in it;
    a leaf's (or target's) gradient is added up where it arrives, so leaves never enter the
    heap (and once the walk has made a leaf's ``.grad`` as a sum, later terms are added into it
    in place: a weight read at every step of a loop); :func:`passthrough` rules are not
    called; rules of one or two inputs are called with positional arguments rather than
    ``*vals``; a symmetric operation of one value with itself (``x * x``) calls one rule and
    doubles its result.  A graph shaped like one walked before goes to :data:`PLANNER`
    (:mod:`chainrule.engine.plans`: this walk written out as straight-line code, the same bits).
    """
    leaf = root._prim is None or root in stop
    if PLANNER is not None and not leaf:
        planned = PLANNER(root, seed, stop, to_targets, free)
        if planned is not None:
            return cast("dict[Node, Any]", planned)
    found: dict[Node, Any] = {}
    stored = {id(seed)}  # arrays a leaf holds (and the seed, which may be shared)
    if leaf:
        if to_targets:
            found[root] = owned(seed, stored)
        else:
            _accumulate(root, seed, False, stored)
        return found
    pop, push = heapq.heappop, heapq.heappush
    # The nodes waiting for their turn: ``nxt`` (one node, or None) and the heap (the rest).
    # In a chain each node hands its gradient to one other node, which is next: it waits in
    # ``nxt`` and never enters the heap. The next node is always the newest of both.
    heap: list[tuple[int, Node]] = []
    nxt: Node | None = root
    root._pending = seed
    # nodes whose accumulated gradient (pending or found) is an array this walk made and handed
    # to nobody: later terms are added into it in place
    fresh: set[Node] = set()
    # leaves whose .grad is a sum this walk made (``grad + term``): later terms go in place
    summed: set[Node] = set()
    ndarray = numpy.ndarray
    stopping = bool(stop)
    try:
        while True:
            if nxt is not None:
                if heap and heap[0][0] < -nxt._seq:  # the heap's newest is newer
                    node = pop(heap)[1]
                else:
                    node, nxt = nxt, None
            elif heap:
                node = pop(heap)[1]
            else:
                break
            g = node._pending
            node._pending = None
            vals = node._vals
            if vals is None:
                raise _freed(node)
            # A node in the heap was made by an operation (leaves never enter it), so it has a
            # primitive, arguments and parameters; typed locals say so without a runtime check.
            prim: Primitive = node._prim  # type: ignore[assignment]
            args: tuple[Any, ...] = node._args  # type: ignore[assignment]
            out = node._data
            kw: dict[str, Any] = node._kw  # type: ignore[assignment]
            nv = len(vals)
            # x * x, x + x: one rule, its result doubled (bit for bit the sum of both terms)
            twice = False
            if nv == 2:
                v0, v1 = vals
                twice = args[0] is args[1] and prim.symmetric
            elif nv == 1:
                v0 = vals[0]
            variadic = prim.vjp_argnum
            into = prim.vjp_into
            # (input, rule) pairs, inputs past the last rule getting no gradient (as in _walk);
            # for a variadic rule, (input, its index)
            if twice:
                edges: Any = ((args[0], prim.vjps[0]),)
            elif variadic is None:
                edges = zip(args, prim.vjps)
            else:
                edges = ((a, i) for i, a in enumerate(args))
            for a, rule in edges:
                if rule is None or not isinstance(a, Node) or not a.requires_grad:
                    continue
                if into is not None and a in fresh and type(g) is ndarray:
                    buf = found[a] if a._prim is None or a in stop else a._pending
                    if buf.dtype == g.dtype:
                        into(buf, g, out, *vals, **kw)
                        continue
                if rule is passthrough:
                    gi = g
                elif rule is negated:
                    data = a._data
                    if g.shape != data.shape or g.dtype is not data.dtype:
                        # summed to the input's shape first (the b of x - b, broadcast): the
                        # negation runs on the smaller array, with the same bits
                        gi = -fit(g, data, node)
                    # In place where g is this walk's own array and this is its last use (the
                    # x of -x, the y of x - y) unless an earlier input's gradient (x's) holds
                    # g's memory.
                    elif (
                        a is args[-1]
                        and node in fresh
                        and type(g) is ndarray
                        and not _holds(args[:-1], g, found)
                    ):
                        gi = numpy.negative(g, out=g)
                    else:
                        gi = -g
                elif variadic is not None:
                    gi = variadic(rule, g, out, *vals, **kw)
                    if gi is None:
                        continue
                elif kw:
                    gi = rule(g, out, *vals, **kw)
                elif nv == 2:
                    gi = rule(g, out, v0, v1)
                elif nv == 1:
                    gi = rule(g, out, v0)
                else:
                    gi = rule(g, out, *vals)
                data = a._data
                if gi.shape != data.shape or gi.dtype is not data.dtype:
                    gi = fit(gi, data, node)
                # Below, a term of x * x is added twice where a sum is already waiting (the
                # bits of the two terms added one by one), and doubled where none is.
                end = a._prim is None or (stopping and a in stop)  # a leaf or a target
                if end:
                    if not to_targets:
                        if not twice and a.grad is None and keeps(gi, stored):
                            a.grad = gi  # owned()'s common case: a new array nobody else holds
                        else:
                            leaf_term(a, gi, twice, stored, summed)
                    else:
                        made = twice or rule is negated or into is not None
                        end_term(found, fresh, a, gi, made, twice, g, out, v0 if twice else None)
                    continue
                prev = a._pending
                if prev is None:
                    if twice:
                        gi = _doubled(gi, g, out, v0)
                    a._pending = gi
                    if nxt is None:
                        nxt = a
                    else:
                        push(heap, (-a._seq, a))
                    # doubled or negated here, or a new scatter: the walk's own array
                    if (twice or rule is negated or into is not None) and type(gi) is ndarray:
                        fresh.add(a)
                else:
                    a._pending = total = _added(prev, gi, twice, a in fresh)
                    if type(total) is ndarray:
                        fresh.add(a)
            if free:
                node._args = node._vals = None
    except BaseException:
        for _, node in heap:  # no pending gradient may outlive the walk
            node._pending = None
        if nxt is not None:
            nxt._pending = None
        raise
    if to_targets:  # each target's gradient an array of its own (a sum the walk made is one)
        for a, g in found.items():
            if a not in fresh:
                found[a] = owned(g, stored)
    return found


def leaf_term(a: Node, gi: Any, twice: bool, stored: set[int], summed: set[Node]) -> None:
    """Add the term ``gi`` (twice for ``x * x``) into leaf ``a``'s ``.grad`` (``backward()``),
    past the common case of a first term kept as it is (:func:`keeps`).

    ``summed`` holds the leaves whose ``.grad`` this walk has made as a sum: later terms are
    added into it in place (a weight read at every step of a loop); a ``.grad`` kept from an
    earlier ``backward()`` is never written into.
    """
    before = a.grad
    if a in summed:
        numpy.add(before, gi, out=before)
        if twice:
            numpy.add(before, gi, out=before)
        return
    _accumulate(a, gi, False, stored)
    if twice:
        _accumulate(a, gi, False, stored)
    if before is not None and type(a.grad) is numpy.ndarray and a.grad is not before:
        summed.add(a)


def end_term(
    found: dict[Node, Any],
    fresh: set[Node],
    a: Node,
    gi: Any,
    made: bool,
    twice: bool,
    g: Any,
    out: Any,
    x: Any,
) -> None:
    """Add the term ``gi`` into ``found[a]``, the gradient of a target (or of a leaf reached on
    the way to the targets).

    ``made``: the term is an array the walk made (doubled, negated, a scatter), so later terms
    may go into it in place; ``fresh`` holds the nodes whose gradient is such an array.  For
    ``x * x`` (``twice``) the term counts twice: doubled as a first term (``g``, ``out`` and the
    input ``x`` say what it must not be written into), added twice after one.
    """
    prev = found.get(a)
    if prev is None:
        if twice:
            gi = _doubled(gi, g, out, x)
        found[a] = gi
        if made and type(gi) is numpy.ndarray:
            fresh.add(a)
    else:
        found[a] = total = _added(prev, gi, twice, a in fresh)
        if type(total) is numpy.ndarray:
            fresh.add(a)


def _added(prev: Any, gi: Any, twice: bool, own: bool) -> Any:
    """``prev + gi`` (``+ gi`` once more for ``x * x``), into ``prev`` itself where it is an
    array the walk made and handed to nobody (``own``)."""
    if own:
        prev += gi
        if twice:
            prev += gi
        return prev
    total = prev + gi
    if twice:
        total += gi
    return total


def _holds(inputs: tuple[Any, ...], g: numpy.ndarray, found: dict[Node, Any]) -> bool:
    """Whether the gradient any of ``inputs`` has received so far (pending, found or kept as
    its ``.grad``) may share memory with ``g``."""
    for x in inputs:
        if isinstance(x, Node):
            for h in (x._pending, found.get(x), x.grad):
                if type(h) is numpy.ndarray and numpy.may_share_memory(h, g):
                    return True
    return False


def _doubled(gi: Any, g: Any, out: Any, x: Any) -> Any:
    """``gi + gi``, in place when ``gi`` is an array the rule made (not ``g``, ``out`` or the
    input ``x`` passed through, not a view): the walk then holds the only reference."""
    if (
        type(gi) is numpy.ndarray
        and gi is not g
        and gi is not out
        and gi is not x
        and gi.flags.owndata
        and gi.flags.writeable
    ):
        return numpy.add(gi, gi, out=gi)
    return gi + gi


class Step:
    """One node's turn in the backward walk: its total gradient and what it passed on."""

    __slots__ = ("node", "grad", "terms")

    def __init__(self, node: Node, grad: Any) -> None:
        self.node = node
        self.grad = grad
        # (input index, input node, the rule's result, that result summed to the input's shape)
        self.terms: list[tuple[int, Node, Any, Any]] = []


def _nonfinite(x: Any) -> bool:
    a = numpy.asarray(x._data if isinstance(x, Node) else x)
    return a.dtype.kind in "fc" and not bool(numpy.isfinite(a).all())


def _accumulate(leaf: Node, g: Any, create_graph: bool, stored: set[int]) -> None:
    """Add ``g`` into ``leaf.grad``, never leaving two leaves sharing one writable array.

    The array is kept unless another leaf (or the caller: ``stored`` starts with the seed) holds
    its memory, or it is a read-only view (``broadcast_to``) or a view of a larger array.
    """
    if leaf.grad is not None:
        # A recorded .grad (from backward(create_graph=True)) stays recorded, as in PyTorch:
        # the new gradient is added to it out of place, so it can be differentiated again.
        total = leaf.grad + g
        # NumPy returns a scalar for 0-d + 0-d; .grad is always an array (or a tensor)
        if isinstance(total, numpy.generic):
            total = numpy.asarray(total)
        leaf.grad = total
        return
    leaf.grad = g if create_graph else owned(g, stored)  # a recorded tensor is never written


def keeps(g: Any, stored: set[int]) -> bool:
    """:func:`owned`'s common case, cheap enough for the walk's hot path: ``g`` is an ndarray
    that is new, or a full-size writable view of one, whose memory no array in ``stored``
    shares; then its memory is added to ``stored`` and ``g`` can be kept as it is.

    >>> stored = set()
    >>> g = numpy.zeros(3)
    >>> keeps(g, stored), keeps(g, stored)   # the second holder must copy
    (True, False)
    """
    if type(g) is not numpy.ndarray:
        return False
    base = g.base
    if base is None:
        key = id(g)
    elif type(base) is numpy.ndarray and base.size == g.size and g.flags.writeable:
        key = id(base)
    else:
        return False
    if key in stored:
        return False
    stored.add(key)
    return True


def owned(g: Any, stored: set[int]) -> numpy.ndarray:
    """``g`` as a writable array whose memory no array in ``stored`` shares (ids of arrays, or
    of the arrays they view), which is then added to ``stored``.

    ``g`` is kept when it can be: a new array, or a full-size writable view of one that nobody
    else holds (a bias gradient reshaped from the incoming gradient).  Otherwise it is copied:
    a NumPy scalar, a read-only view (``broadcast_to``), a view of a larger array, or memory
    already handed out.
    """
    if keeps(g, stored):
        return cast(numpy.ndarray, g)
    if type(g) is not numpy.ndarray and not isinstance(g, numpy.generic):
        # another library's array (CuPy, Dask): kept on its device, copied there if shared
        if id(g) in stored:
            g = g.copy()
        stored.add(id(g))
        return cast(numpy.ndarray, g)
    g = numpy.array(g)  # a scalar, a read-only or partial view, or memory already handed out
    stored.add(id(g))
    return cast(numpy.ndarray, g)


def ancestors(roots: Iterable[Node]) -> list[Node]:
    """Every node the ``roots`` were computed from (constants' nodes included), oldest first."""
    order: list[Node] = []
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        if node._prim is not None and node._args is not None:
            stack.extend(a for a in node._args if isinstance(a, Node))
    order.sort(key=_seq_of)
    return order
