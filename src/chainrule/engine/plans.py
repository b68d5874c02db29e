"""Backward plans: the eager walk over a graph it has walked before, as straight-line code.

A training loop records the same graph at every step, and the eager walk
(:func:`chainrule.engine.graph._walk_arrays`) spends most of its time deciding again what it
decided the step before: which node is next, which inputs are recorded nodes, leaves or
constants, which rule to call and where its result goes.  After a root's graph has been walked a
second time the plain way, this module writes those decisions out once as a Python function:

* a **check** that the new graph has the same structure, before anything is computed: each
  node's primitive and parameters being present or not, which inputs are recorded nodes, leaves
  that require grad or constants, which of them are the same node, and the recording order (the
  order the walk visits them in).  Shapes and dtypes are not part of it: the code below checks
  them as the walk does.  A graph that differs anywhere is walked the plain way;
* the **walk itself**, unrolled: the same rules called on the same values, their results summed
  to the input's shape and cast to its dtype as the walk does, and added up in the same order,
  so the gradients are the walk's bit for bit; a leaf's ``.grad`` and a target's gradient are
  taken through the walk's own functions (:func:`~chainrule.engine.graph.leaf_term`,
  :func:`~chainrule.engine.graph.end_term`).  Intermediate gradients live in local variables.

The rules are not copied or rewritten: a plan calls the rule functions of the table.  Plans are
kept per (primitive of the root, kind of walk), a few each, and built again for a root whose
graphs stop matching, at the 2nd, 4th, 8th, ... plain walk of it, so a program whose graph
changes at every step builds a handful of plans in all.  ``backward()`` with ``create_graph``,
a ``log`` (``explain``), ``detect_anomaly`` or pruned targets never comes here.

Importing this module installs it (:data:`chainrule.engine.graph.PLANNER`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy

from . import graph as G
from .graph import (
    Node,
    _doubled,
    end_term,
    fit,
    keeps,
    leaf_term,
    negated,
    owned,
    passthrough,
)
from .primitives import RULE_EDITS

__all__ = ["walk", "build", "clear"]

# Graphs larger than this are always walked the plain way (the function would take long to
# compile and the walk's share of the time is small next to the work such a graph does).
MAX_NODES = 3000
# Plans kept for one (root primitive, kind of walk); the most recently used first.
PER_KEY = 4

_INTERIOR, _LEAF, _IGNORED = "interior", "leaf", "ignored"


class _Entry:
    __slots__ = ("plans", "misses", "next_build")

    def __init__(self) -> None:
        self.plans: list[Callable[..., dict[Node, Any] | None]] = []
        self.misses = 0
        self.next_build = 2


_CACHE: dict[tuple[Any, bool, bool], _Entry] = {}
_LOCK = threading.Lock()
# RULE_EDITS when the plans in _CACHE were begun: a plan calls the rules it was written with
_BUILT_AT = [-1]


def clear() -> None:
    """Forget every plan (they are rebuilt as graphs are walked again)."""
    with _LOCK:
        _CACHE.clear()
        _BUILT_AT[0] = RULE_EDITS[0]


def walk(
    root: Node, seed: Any, stop: frozenset[Node], to_targets: bool, free: bool
) -> dict[Node, Any] | None:
    """Walk ``root``'s graph with a plan, or return None for the plain walk to do it.

    The arguments and the result are :func:`chainrule.engine.graph._walk_arrays`'s.
    """
    if RULE_EDITS[0] != _BUILT_AT[0]:  # a rule was set or changed since the plans were made
        clear()
    key = (root._prim, to_targets, free)
    entry = _CACHE.get(key)
    if entry is None:
        entry = _CACHE.setdefault(key, _Entry())
    plans = entry.plans
    if plans:
        found = plans[0](root, seed, stop)
        if found is not None:
            return found
        for plan in plans[1:]:
            found = plan(root, seed, stop)
            if found is not None:
                with _LOCK:  # the most recently used first
                    if plan in plans:
                        plans.remove(plan)
                        plans.insert(0, plan)
                return found
    entry.misses += 1
    if entry.misses < entry.next_build:
        return None
    entry.next_build *= 2
    made = build(root, stop, to_targets, free)
    if made is None:
        return None
    with _LOCK:
        plans.insert(0, made)
        del plans[PER_KEY:]
    return made(root, seed, stop)


def _edges(node: Node) -> list[tuple[int, Any, Any, bool]]:
    """The (input index, input, rule, twice) pairs the walk follows from ``node``: the walk's
    own choice of edges (a symmetric operation of one value with itself: one rule, twice; a
    variadic rule: every input, the rule named by its index)."""
    prim = node._prim
    args = node._args
    assert prim is not None and args is not None
    if len(args) == 2 and args[0] is args[1] and prim.symmetric:
        return [(0, args[0], prim.vjps[0], True)]
    if prim.vjp_argnum is not None:
        return [(i, a, i, False) for i, a in enumerate(args)]
    return [(i, a, r, False) for i, (a, r) in enumerate(zip(args, prim.vjps)) if r is not None]


def _kind(a: Any, stop: frozenset[Node]) -> str | None:
    """How the walk treats input ``a``: a recorded node it visits, a leaf (or target) where
    gradients are collected, or a value it ignores; None where plans do not go (a target that
    was computed, not given: its gradient is collected mid-graph)."""
    if not isinstance(a, Node) or not a.requires_grad:
        return _IGNORED
    if a._prim is None:
        return _LEAF
    if a in stop or a._args is None:
        return None
    return _INTERIOR


class _Writer:
    """The source of one plan and the objects it refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.space: dict[str, Any] = {
            "Node": Node,
            "ndarray": numpy.ndarray,
            "fit": fit,
            "doubled": _doubled,
            "leaf_term": leaf_term,
            "keeps": keeps,
            "add": numpy.add,
            "end_term": end_term,
            "owned": owned,
        }

    def name(self, obj: Any, prefix: str) -> str:
        """A name in the plan's namespace for ``obj`` (a primitive, a rule)."""
        key = id(obj)
        found = self.names.get(key)
        if found is None:
            found = self.names[key] = f"{prefix}{len(self.names)}"
            self.space[found] = obj
        return found

    def emit(self, depth: int, text: str) -> None:
        self.lines.extend("    " * depth + line for line in text.split("\n"))


def build(
    root: Node, stop: frozenset[Node], to_targets: bool, free: bool
) -> Callable[..., dict[Node, Any] | None] | None:
    """The plan for graphs shaped like ``root``'s, or None where plans do not go.

    The plan is called as ``plan(root, seed, stop)`` and returns what the walk would (the
    gradients found at targets and leaves) or None, having touched nothing, for a graph of
    another structure.

    >>> import numpy, chainrule as cr
    >>> def loss(x):
    ...     return (numpy.tanh(x) * 3.0).sum()
    >>> x = cr.tensor([0.0, 1.0], requires_grad=True)
    >>> plan = build(loss(x), frozenset(), False, True)
    >>> y = cr.tensor([0.0, 2.0], requires_grad=True)
    >>> plan(loss(y), numpy.float64(1.0), frozenset())   # the same structure: walked
    {}
    >>> y.grad
    array([3.        , 0.21195247])
    >>> plan((y * 3.0).sum(), numpy.float64(1.0), frozenset()) is None   # another structure
    True
    """
    # The nodes the walk visits, newest first: that is the order the walk visits them in.
    seen = {root}
    order = [root]
    pos = 0
    while pos < len(order):
        node = order[pos]
        pos += 1
        if not node._args:  # freed (or rewritten after it was freed)
            return None
        for _, a, _, twice in _edges(node):
            kind = _kind(a, stop)
            if kind is None or (twice and node._prim.vjp_argnum is not None):  # type: ignore[union-attr]
                return None
            if kind == _INTERIOR and a not in seen:
                seen.add(a)
                order.append(a)
                if len(order) > MAX_NODES:
                    return None
    order.sort(key=lambda n: -n._seq)
    index = {n: k for k, n in enumerate(order)}
    if order[0] is not root:
        return None
    w = _Writer()
    _check(w, order, index, stop, to_targets)
    _compute(w, order, index, stop, to_targets, free)
    source = "\n".join(w.lines)
    code = compile(source, f"<chainrule backward plan, {len(order)} nodes>", "exec")
    exec(code, w.space)  # noqa: S102 (source written above from the graph's structure)
    plan: Callable[..., dict[Node, Any] | None] = w.space["plan"]
    return plan


def _arg(k: int, i: int) -> str:
    return f"x{k}_{i}"


def _check(
    w: _Writer, order: list[Node], index: dict[Node, int], stop: frozenset[Node], to_targets: bool
) -> None:
    """The first half of a plan: is the new graph shaped like this one?  (Every input read,
    every unpacking, ``._prim`` of a constant, raises AttributeError, TypeError or ValueError
    where it is not: a miss too.)"""
    w.emit(0, "def plan(n0, g0, stop):")
    w.emit(1, "try:")
    named = {0}
    for k, node in enumerate(order):
        prim = node._prim
        args = node._args
        assert prim is not None and args is not None
        tests = [f"{'not ' if node._kw else ''}n{k}._kw"]
        if k:  # (the root's primitive is the plan's key)
            tests[:0] = [f"n{k}._prim is not {w.name(prim, 'P')}", f"not n{k}.requires_grad"]
            if to_targets:
                tests.append(f"n{k} in stop")
        w.emit(2, f"if {' or '.join(tests)}:\n    return None")
        # the inputs: a node met for the first time is unpacked into its own name
        names = ["_"] * len(args)
        tests = []
        for i, a, _, twice in _edges(node):
            kind = _kind(a, stop)
            x = names[i] = _arg(k, i)
            if kind == _INTERIOR:
                m = index[a]
                if m not in named:
                    named.add(m)
                    names[i] = f"n{m}"
                else:
                    tests.append(f"{x} is not n{m}")
            elif kind == _LEAF:
                tests.append(f"{x}._prim is not None or not {x}.requires_grad")
            else:
                tests.append(f"isinstance({x}, Node) and {x}.requires_grad")
            if twice:
                names[1] = _arg(k, 1)
                tests.append(f"{names[1]} is not {names[0]}")
        w.emit(2, f"{', '.join(names)}{',' if len(names) == 1 else ''} = n{k}._args")
        if tests:
            w.emit(2, f"if {' or '.join(f'({t})' for t in tests)}:\n    return None")
    w.emit(1, "except (AttributeError, TypeError, ValueError):")
    w.emit(2, "return None")
    if len(order) > 1:
        chain = " > ".join(f"n{k}._seq" for k in range(len(order)))
        w.emit(1, f"if not ({chain}):\n    return None")


def _compute(
    w: _Writer,
    order: list[Node],
    index: dict[Node, int],
    stop: frozenset[Node],
    to_targets: bool,
    free: bool,
) -> None:
    """The second half: the walk, unrolled."""
    n = len(order)
    # The terms reaching each visited node, and which may not arrive: a variadic rule may
    # return None, and a node reached only by such terms may not be visited at all.
    sources: list[list[int]] = [[] for _ in range(n)]
    for k, node in enumerate(order):
        for _, a, _, _ in _edges(node):
            if _kind(a, stop) == _INTERIOR:
                sources[index[a]].append(k)
    variadic = [node._prim.vjp_argnum is not None for node in order]  # type: ignore[union-attr]
    missable = [False] * n
    doubtful = [False] * n  # some term may not arrive: the gradient starts as None
    for m in range(1, n):
        doubts = [variadic[k] or missable[k] for k in sources[m]]
        missable[m] = all(doubts)
        doubtful[m] = any(doubts)
    counted = [len(s) > 1 for s in sources]  # more than one term: keep a "made here" flag
    # Targets that one edge reaches: that term is their gradient, stored as it comes. A later
    # graph of the same structure may reach one target by more edges (the check does not
    # compare leaves): a term whose target already has a gradient is added to it, as the walk
    # adds it (end_term).
    single: set[Node] = set()
    if to_targets:
        reached: dict[Node, int] = {}
        for node in order:
            for _, a, _, twice in _edges(node):
                if _kind(a, stop) == _LEAF:
                    reached[a] = reached.get(a, 0) + (2 if twice else 1)
        single = {a for a, count in reached.items() if count == 1}
        w.emit(1, "found = {}\nfresh = set()\nstored = {id(g0)}")
    else:
        w.emit(1, "found = {}\nstored = {id(g0)}\nsummed = set()")
    for m in range(1, n):
        if doubtful[m]:
            w.emit(1, f"g{m} = None" + (f"\nf{m} = False" if counted[m] else ""))
    state = ["none"] * n  # each gradient as the plan is written: "none", "some", "maybe"
    state[0] = "some"
    for k, node in enumerate(order):
        prim = node._prim
        args = node._args
        assert prim is not None and args is not None
        depth = 1
        if missable[k]:
            w.emit(1, f"if g{k} is not None:")
            depth = 2
        into = prim.vjp_into
        edges = [e for e in _edges(node) if _kind(e[1], stop) != _IGNORED]
        # the output and the input values, unless every rule is a pass-through or a negation
        if into is not None or any(
            twice or rule not in (passthrough, negated) for _, _, rule, twice in edges
        ):
            nv = len(args)
            w.emit(depth, f"o = n{k}._data")
            if nv <= 4:
                vals = ", ".join(f"w{i}" for i in range(nv))
                w.emit(depth, f"{vals}{',' if nv == 1 else ''} = n{k}._vals")
            else:
                vals = "*v"
                w.emit(depth, f"v = n{k}._vals")
        kw = ", **kw" if node._kw else ""
        if node._kw:
            w.emit(depth, f"kw = n{k}._kw")
        for i, a, rule, twice in edges:
            kind = _kind(a, stop)
            m = index[a] if kind == _INTERIOR else -1
            target = f"n{m}" if kind == _INTERIOR else _arg(k, i)
            made = twice or rule is negated or into is not None
            # the rule's result, gi (None from a variadic rule: no gradient for this input)
            if rule is passthrough:
                call = f"gi = g{k}"
            elif rule is negated:  # the walk's order: summed to the input's shape, negated
                call = (
                    f"d = {target}._data\n"
                    f"if g{k}.shape != d.shape or g{k}.dtype is not d.dtype: "
                    f"gi = -fit(g{k}, d, n{k})\n"
                    f"else: gi = -g{k}"
                )
            elif variadic[k]:
                call = f"gi = {w.name(prim.vjp_argnum, 'V')}({i}, g{k}, o, {vals}{kw})"
            else:
                call = f"gi = {w.name(rule, 'R')}(g{k}, o, {vals}{kw})"
            fix = [
                f"d = {target}._data",
                f"if gi.shape != d.shape or gi.dtype is not d.dtype: gi = fit(gi, d, n{k})",
            ]
            # where the term goes
            if kind == _LEAF and not to_targets:
                if twice:
                    add = [f"leaf_term({target}, gi, True, stored, summed)"]
                else:
                    # keeps()'s commonest case inline: a new array that no leaf holds; then
                    # keeps() itself (a bias's gradient reshaped from the incoming one)
                    # and leaf_term()'s later terms into a sum this walk made, in place
                    add = [
                        f"if {target}.grad is None and type(gi) is ndarray and gi.base is None "
                        "and (i := id(gi)) not in stored:",
                        "    stored.add(i)",
                        f"    {target}.grad = gi",
                        f"elif {target}.grad is None and keeps(gi, stored):",
                        f"    {target}.grad = gi",
                        f"elif {target} in summed:",
                        f"    b = {target}.grad",
                        "    add(b, gi, out=b)",
                        "else:",
                        f"    leaf_term({target}, gi, False, stored, summed)",
                    ]
            elif kind == _LEAF and a in single and into is None:
                # the walk's hand-over (graph.owned()) inline for its common cases: a new
                # array, or a full-size writable view of one (a bias's gradient reshaped),
                # whose memory nobody was handed
                add = [
                    f"if {target} in found:",
                    f"    end_term(found, fresh, {target}, gi, {made}, False, None, None, None)",
                    "else:",
                ] + [
                    "    " + line
                    for line in [
                        "b = gi.base if type(gi) is ndarray else gi",
                        "if b is None:",
                        "    i = id(gi)",
                        "elif type(b) is ndarray and b.size == gi.size and gi.flags.writeable:",
                        "    i = id(b)",
                        "else:",
                        "    i = None",
                        "if i is None or i in stored:",
                        "    gi = owned(gi, stored)",
                        "else:",
                        "    stored.add(i)",
                        f"found[{target}] = gi",
                    ]
                ]
            elif kind == _LEAF:
                tail = f"True, g{k}, o, w0" if twice else "False, None, None, None"
                add = [f"end_term(found, fresh, {target}, gi, {made}, {tail})"]
                if not twice:  # end_term()'s later terms into an array this walk made, in place
                    add = [
                        f"p = found.get({target})",
                        f"if p is not None and {target} in fresh:",
                        "    p += gi",
                        "else:",
                        "    " + add[0],
                    ]
            else:
                add = _interior_term(m, state[m], made, twice, counted[m], k)
            if variadic[k]:
                body = [call, "if gi is not None:"] + ["    " + s for s in fix + add]
            else:
                body = [call] + fix + add
            d = depth
            # the walk's in-place update of a gradient it made (an indexed read: buf[i] += g)
            if into is not None:
                if kind == _INTERIOR and state[m] != "none":
                    test = f"f{m} and type(g{k}) is ndarray and g{m}.dtype == g{k}.dtype"
                    buf = f"g{m}"
                elif kind == _LEAF and to_targets:
                    test = (
                        f"{target} in fresh and type(g{k}) is ndarray "
                        f"and found[{target}].dtype == g{k}.dtype"
                    )
                    buf = f"found[{target}]"
                else:
                    test = ""
                if test:
                    w.emit(d, f"if {test}:")
                    w.emit(d + 1, f"{w.name(into, 'I')}({buf}, g{k}, o, {vals}{kw})")
                    w.emit(d, "else:")
                    d += 1
            w.emit(d, "\n".join(body))
            if kind == _INTERIOR:
                if not variadic[k] and depth == 1:
                    state[m] = "some"
                elif state[m] == "none":
                    state[m] = "maybe"
        if free:
            w.emit(depth, f"n{k}._args = n{k}._vals = None")
    if to_targets:
        # the other targets' gradients handed over as the walk hands them (a sum it made is
        # its own array already)
        firsts: dict[Node, str] = {}
        for k, node in enumerate(order):
            for i, a, _, _ in _edges(node):
                if _kind(a, stop) == _LEAF and a not in single:
                    firsts.setdefault(a, _arg(k, i))
        for x in firsts.values():
            w.emit(1, f"g = found.get({x})\nif g is not None and {x} not in fresh:")
            w.emit(2, f"found[{x}] = owned(g, stored)")
    w.emit(1, "return found")


def _interior_term(m: int, state: str, made: bool, twice: bool, counted: bool, k: int) -> list[str]:
    """Lines that add ``gi`` into the gradient ``g{m}`` of a visited node, as the walk adds it
    into the node's pending gradient; ``f{m}`` (kept where more than one term arrives) says
    whether that gradient is an array the plan made, which later terms may go into in place."""
    first = [f"g{m} = doubled(gi, g{k}, o, w0)" if twice else f"g{m} = gi"]
    if counted:
        first.append(f"f{m} = type(g{m}) is ndarray" if made else f"f{m} = False")
    again = [f"    g{m} += gi"] if twice else []
    later = [
        f"if f{m}:",
        f"    g{m} += gi",
        *again,
        "else:",
        f"    g{m} = g{m} + gi",
        *again,
        f"    f{m} = type(g{m}) is ndarray",
    ]
    if state == "none":
        return first
    if state == "some":
        return later
    indented = ["    " + s for s in first] + ["else:"] + ["    " + s for s in later]
    return [f"if g{m} is None:"] + indented


G.PLANNER = walk
