"""What a wrong hand-derived gradient got wrong: one-mistake hypotheses, each checked in numbers.

Each hypothesis is a *variant of the chain rule* run on the recorded forward graph of the
function (the very rules ``backward()`` uses): the backward walk with one path cut (a skip
connection, a shared weight's second use, a regulariser, the normalisation statistics), with one
activation's local derivative replaced by a typical wrong one (a ReLU mask on the wrong side or
of another layer, ``1 - Z ** 2`` for ``1 - A ** 2``), or with the whole gradient scaled (a
missing ``1/N``, ``len(X)`` for ``Y.size``, MSE's missing 2).  A variant that reproduces the
given gradients names the mistake; nothing is guessed from the text of the user's code.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.graph import Node, sum_to
from chainrule.program.trace import Recording

__all__ = ["Finding", "diagnose", "KINDS"]

# The mistakes named (kind -> what it is), in the order they are tried.
KINDS = {
    "tie-convention": "differs only where a kink is tied (a convention, not a mistake)",
    "transposed": "the transpose of the gradient",
    "swapped": "the gradient of another parameter",
    "bias-not-summed": "a bias gradient not summed over the batch",
    "bias-wrong-axis": "a bias gradient summed over the wrong axis",
    "keepdims": "summed with keepdims=True: the right numbers in the wrong shape",
    "wrong-shape": "the wrong shape",
    "sign": "minus the gradient",
    "missing-1/N": "the 1/N of a mean is missing",
    "extra-1/N": "divided by N once too often",
    "len-vs-size": "divided by len(X) where the mean is over Y.size",
    "mse-missing-2": "the 2 of the squared error is missing",
    "scale": "off by a constant factor",
    "relu-mask-side": "the ReLU mask is on the wrong side of 0",
    "relu-mask-layer": "the ReLU mask of another layer",
    "relu-mask-from-A": "multiplied by the activation A instead of the 0/1 mask",
    "relu-mask-missing": "the ReLU mask is missing",
    "relu-mask": "the ReLU mask is wrong in another way",
    "activation-derivative": "the derivative of the activation (sigmoid/tanh) is written wrongly",
    "softmax-missing": "the softmax is missing (logits used where probabilities belong)",
    "onehot-missing": "the one-hot targets are not subtracted",
    "skip-missing": "the skip connection's path is missing",
    "shared-weight-missing": "one use of a shared weight is missing",
    "regulariser-missing": "the regulariser's term is missing",
    "stats-constant": "the normalisation statistics are treated as constants",
    "path-missing": "one path of the chain rule is missing",
}


@dataclasses.dataclass
class Finding:
    """The mistake a variant of the chain rule explains."""

    kind: str
    text: str
    convention: bool = False  # a tie taken the other way: not a mistake


def _close(a: Any, b: Any) -> bool:
    a, b = numpy.asarray(a, dtype=float), numpy.asarray(b, dtype=float)
    scale = max(float(numpy.max(numpy.abs(b), initial=0.0)), 1e-12)
    return a.shape == b.shape and bool(numpy.allclose(a, b, rtol=1e-6, atol=1e-9 * scale + 1e-12))


# ---------------------------------------------------------------------------------------------
# The backward walk, with hooks
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Hooks:
    cut: frozenset[tuple[int, int]] = frozenset()  # (id(consumer), input index): no gradient
    # named value a -> (its input z, local(g, a, z) -> the gradient sent to z instead)
    jump: dict[int, tuple[Node, Callable[..., Any]]] = dataclasses.field(default_factory=dict)
    scale: dict[int, float] = dataclasses.field(default_factory=dict)  # gradient at a value * c
    replace: dict[int, Any] = dataclasses.field(default_factory=dict)  # gradient at a value := v
    swap: frozenset[int] = frozenset()  # products x * y whose factors are sent the wrong way


def walk(root: Node, targets: Sequence[Node], hooks: Hooks) -> dict[Node, Any]:
    """The backward walk of ``graph._walk`` on arrays, with paths cut or shortcut."""
    stop = set(targets)
    grads: dict[Node, Any] = {root: numpy.ones(numpy.shape(root._data))}
    heap = [(-root._seq, id(root), root)]
    found: dict[Node, Any] = {}

    def send(a: Node, gi: Any) -> None:
        data = a._data
        if numpy.shape(gi) != numpy.shape(data):
            gi = sum_to(numpy.asarray(gi), numpy.shape(data))
        prev = grads.get(a)
        if prev is None:
            grads[a] = gi
            heapq.heappush(heap, (-a._seq, id(a), a))
        else:
            grads[a] = prev + gi

    while heap:
        node = heapq.heappop(heap)[2]
        g = grads.pop(node)
        if id(node) in hooks.replace:
            g = hooks.replace[id(node)]
        if id(node) in hooks.scale:
            g = g * hooks.scale[id(node)]
        if node._prim is None or node in stop:
            found[node] = found[node] + g if node in found else g
            continue
        if id(node) in hooks.jump:
            z, local = hooks.jump[id(node)]
            send(z, local(g))
            continue
        prim, vals, kw = node._prim, node._vals, node._kw or {}
        if vals is None:
            continue
        if id(node) in hooks.swap:  # d(x * y) sent as dx = g * x, dy = g * y
            for a in node._args or ():
                send(a, g * numpy.asarray(a._data))
            continue
        for i, a in enumerate(node._args or ()):
            if not isinstance(a, Node) or not a.requires_grad or (id(node), i) in hooks.cut:
                continue
            if prim.vjp_argnum is not None:
                gi = prim.vjp_argnum(i, g, node._data, *vals, **kw)
                if gi is None:
                    continue
            else:
                rule = prim.vjps[i] if i < len(prim.vjps) else None
                if rule is None:
                    continue
                gi = rule(g, node._data, *vals, **kw)
            send(a, numpy.asarray(gi))
    return found


# ---------------------------------------------------------------------------------------------
# The structure the hypotheses are made from
# ---------------------------------------------------------------------------------------------


class Graph:
    """The recorded forward graph of one function: consumers, names, activations."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self.root = rec.output
        self.params = [rec.inputs[j] for j in rec.wrt]
        self.names = rec.names
        self.nodes: list[Node] = []
        seen: set[int] = set()
        stack = [self.root]
        while stack:
            n = stack.pop()
            if id(n) in seen or not isinstance(n, Node):
                continue
            seen.add(id(n))
            self.nodes.append(n)
            stack.extend(a for a in (n._args or ()) if isinstance(a, Node))
        self.nodes.sort(key=lambda n: n._seq)
        self.consumers: dict[int, list[tuple[Node, int]]] = {}
        for n in self.nodes:
            for i, a in enumerate(n._args or ()):
                if isinstance(a, Node) and a.requires_grad:
                    self.consumers.setdefault(id(a), []).append((n, i))
        data = [t for k, t in enumerate(rec.inputs) if k not in rec.wrt]
        self.data_ids = {id(t) for t in data}

    def grads(self, hooks: Hooks) -> dict[str, Any]:
        found = walk(self.root, self.params, hooks)
        return {
            self.rec.input_names[j]: found.get(t, numpy.zeros(numpy.shape(t._data)))
            for j, t in zip(self.rec.wrt, self.params)
        }

    def depends_on_data(self, n: Node) -> bool:
        stack, seen = [n], set()
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            if id(m) in self.data_ids:
                return True
            stack.extend(a for a in (m._args or ()) if isinstance(a, Node))
        return False

    def name(self, n: Node) -> str:
        if n in self.names:
            return self.names[n]
        for c, _ in self.consumers.get(id(n), []):
            if c in self.names:
                return f"({self.names[c]}'s input)"
        return "(an intermediate value)"

    def elementwise_input(self, a: Node) -> Node | None:
        """The one named value ``z`` that the named ``a`` is an elementwise function of."""
        if a._prim is None or not a.requires_grad:
            return None
        found: list[Node] = []
        stack, seen = list(a._args or ()), set()
        while stack:
            m = stack.pop()
            if not isinstance(m, Node) or id(m) in seen or not m.requires_grad:
                continue
            seen.add(id(m))
            if m in self.names or m._prim is None:
                found.append(m)
                continue
            if numpy.shape(m._data) != numpy.shape(a._data):
                return None
            stack.extend(m._args or ())
        if len(found) == 1 and numpy.shape(found[0]._data) == numpy.shape(a._data):
            return found[0]
        # an activation of an unnamed expression: tanh(X @ W1), maximum(0, X @ W0)
        traced = [m for m in (a._args or ()) if isinstance(m, Node) and m.requires_grad]
        if len(traced) == 1 and numpy.shape(traced[0]._data) == numpy.shape(a._data):
            return traced[0]
        return None

    def first_data_consumer(self, c: Node) -> Node:
        """The first value on the way from ``c`` to the output that also depends on data."""
        d = c
        while not self.depends_on_data(d):
            nxt = self.consumers.get(id(d))
            if not nxt:
                break
            d = nxt[0][0]
        return d


# ---------------------------------------------------------------------------------------------
# Hypotheses
# ---------------------------------------------------------------------------------------------


Variant = tuple[Finding, Callable[[], dict[str, Any]]]


_ACTIVATIONS = (P.maximum, P.tanh, P.where, P.sigmoid)


def _activations(G: Graph) -> Iterator[tuple[Node, Node, str, Any]]:
    """(a, z, kind of activation, its true derivative) for each named a = f(z) elementwise."""
    for a in G.nodes:
        if a is G.root or (a not in G.names and a._prim not in _ACTIVATIONS):
            continue  # (an unnamed activation too: numpy.maximum(0, X @ W1 + b1) inline)
        z = G.elementwise_input(a)
        if z is None:
            continue
        sub = walk(a, [z], Hooks())
        d = sub.get(z)
        if d is None:
            continue
        av, zv = numpy.asarray(a._data, float), numpy.asarray(z._data, float)
        if _close(d, (zv > 0).astype(float)) and _close(av, numpy.maximum(zv, 0)):
            yield a, z, "relu", d
        elif _leaky_slope(d, zv, av) is not None:
            yield a, z, "leaky", d
        elif _close(d, 1 - av**2):
            yield a, z, "tanh", d
        elif _close(d, av * (1 - av)):
            yield a, z, "sigmoid", d


def _leaky_slope(d: Any, zv: Any, av: Any) -> float | None:
    """The slope ``alpha`` of a leaky ReLU ``a = where(z > 0, z, alpha * z)``, or None."""
    d = numpy.asarray(d, float)
    neg = zv <= 0
    if not neg.any() or neg.all() or not _close(d[~neg], numpy.ones(int((~neg).sum()))):
        return None
    alpha = float(d[neg].flat[0])
    if not 0 < abs(alpha) < 1 or not _close(d[neg], numpy.full(int(neg.sum()), alpha)):
        return None
    return alpha if _close(av, numpy.where(neg, alpha * zv, zv)) else None


def _activation_variants(G: Graph) -> Iterator[Variant]:
    acts = list(_activations(G))
    relu_inputs = [z for _, z, k, _ in acts if k == "relu"]
    for a, z, kind, _ in acts:  # (_ is the true local derivative)
        an, zn = G.name(a), G.name(z)
        av, zv = numpy.asarray(a._data, float), numpy.asarray(z._data, float)

        def jump(local: Any, a: Node = a, z: Node = z) -> Callable[[], dict[str, Any]]:
            return lambda: G.grads(Hooks(jump={id(a): (z, lambda g: g * local)}))

        if kind == "relu":
            ties = zv == 0
            if ties.any():
                f = Finding(
                    "tie-convention",
                    f"differs from chainrule only where {zn} == 0, a tie of max(0, {zn}): "
                    f"your mask counts {zn} == 0 as active (>= 0), chainrule's as inactive "
                    "(> 0, as PyTorch). Both are valid subgradients: a convention, not a bug",
                    convention=True,
                )
                yield f, jump((zv >= 0).astype(float))
            yield (
                Finding(
                    "relu-mask-side",
                    f"the ReLU mask is on the wrong side: d{zn} = d{an} * ({zn} > 0), "
                    f"the derivative of max(0, {zn}), is 1 where {zn} > 0",
                ),
                jump((zv < 0).astype(float)),
            )
            yield (
                Finding(
                    "relu-mask-from-A",
                    f"multiplied by the activation {an} instead of the 0/1 mask: "
                    f"d{zn} = d{an} * ({zn} > 0), not d{an} * {an}",
                ),
                jump(av),
            )
            yield (
                Finding(
                    "relu-mask-missing",
                    f"the ReLU mask is missing: d{zn} = d{an} * ({zn} > 0)",
                ),
                jump(numpy.ones_like(zv)),
            )
            for other in relu_inputs:
                if other is z or numpy.shape(other._data) != numpy.shape(z._data):
                    continue
                on = G.name(other)
                yield (
                    Finding(
                        "relu-mask-layer",
                        f"the ReLU mask of another layer: ({on} > 0) where d{zn} needs "
                        f"({zn} > 0), the pre-activation of {an} itself",
                    ),
                    jump((numpy.asarray(other._data) > 0).astype(float)),
                )
        elif kind == "leaky":
            alpha = _leaky_slope(_, zv, av) or 0.0
            right = f"d{zn} = d{an} * where({zn} > 0, 1, {alpha:g})"
            derivative = "activation-derivative"
            wrong_ones = (
                (f"({zn} > 0): the negative slope {alpha:g} is missing", zv > 0, derivative),
                ("nothing: the derivative is left out", numpy.ones_like(zv), derivative),
                (f"where({zn} > 0, {alpha:g}, 1): the sides swapped",
                 numpy.where(zv > 0, alpha, 1.0), "relu-mask-side"),
                (f"{an}: the activation instead of its derivative", av, "relu-mask-from-A"),
            )  # fmt: skip
            for text, local, k in wrong_ones:
                yield (
                    Finding(
                        k, f"the leaky ReLU's derivative is wrong: {right}; yours matches {text}"
                    ),
                    jump(numpy.asarray(local, float)),
                )
        else:
            right = f"1 - {an} ** 2" if kind == "tanh" else f"{an} * (1 - {an})"
            wrong = {
                f"1 - {zn} ** 2": 1 - zv**2,
                f"{zn} * (1 - {zn})": zv * (1 - zv),
                f"1 - {an} ** 2": 1 - av**2,
                f"{an} * (1 - {an})": av * (1 - av),
                f"1 - {an}": 1 - av,
                f"(1 - {an}) ** 2": (1 - av) ** 2,
                f"{an}": av,
                f"1 + {an} ** 2": 1 + av**2,
                "nothing (the derivative left out)": numpy.ones_like(av),
            }
            for text, local in wrong.items():
                if text == right:
                    continue
                yield (
                    Finding(
                        "activation-derivative",
                        f"the {kind} derivative is written wrongly: d{zn} = d{an} * ({right}), "
                        f"the derivative of {an} = {kind}({zn}) written with {an}; yours "
                        f"matches d{an} * ({text})",
                    ),
                    jump(local),
                )


def _logits(G: Graph) -> Iterator[tuple[Node, str]]:
    """Named 2-D values, and the logits before a max shift (Z = Z - Z.max(axis=1, ...)): a
    hand-written gradient of softmax + cross-entropy is written for those, without the shift."""
    for z in G.nodes:
        if numpy.ndim(z._data) != 2 or not z.requires_grad:
            continue
        if z in G.names:
            yield z, G.name(z)
        args = z._args or ()
        if z._prim is P.subtract and len(args) == 2:
            z0: Node = args[0]
            m: Node = args[1]
            if (
                isinstance(z0, Node)
                and isinstance(m, Node)
                and m._prim is P.amax
                and (m._args or (None,))[0] is z0
                and z0 not in G.names
            ):
                yield z0, G.name(z) if z in G.names else G.name(z0)


def _softmax_variants(G: Graph) -> Iterator[Variant]:
    """Softmax + cross-entropy: dZ = (P - onehot) / N; the probabilities or the one-hot missing."""
    for z, zn in _logits(G):
        sub = walk(G.root, [z], Hooks()).get(z)
        if sub is None:
            continue
        zv = numpy.asarray(z._data, float)
        n = zv.shape[0]
        p = numpy.exp(zv - zv.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        onehot = p - sub * n
        if not (
            _close(onehot, numpy.round(onehot))
            and _close(numpy.round(onehot).sum(1), numpy.ones(n))
        ):
            continue
        onehot = numpy.round(onehot)

        def replace(new: Any, z: Node = z) -> Callable[[], dict[str, Any]]:
            # only the gradient reaching z changes: a penalty's path to the weights is kept
            return lambda: G.grads(Hooks(replace={id(z): new}))

        right = f"d{zn} = (P - onehot) / N with P = softmax({zn})"
        yield (
            Finding("softmax-missing", f"the softmax is missing: {right}, not ({zn} - onehot) / N"),
            replace((zv - onehot) / n),
        )
        yield (
            Finding(
                "softmax-missing",
                f"the softmax is not normalised: {right}, not (exp({zn}) - onehot) / N",
            ),
            replace((numpy.exp(zv - zv.max(axis=1, keepdims=True)) - onehot) / n),
        )
        yield (
            Finding("onehot-missing", f"the one-hot targets are not subtracted: {right}"),
            replace(p / n),
        )


def _product_variants(G: Graph) -> Iterator[Variant]:
    """d(x * y): dx = d * y and dy = d * x, with the two factors swapped."""
    for c in G.nodes:
        args = c._args or ()
        if c._prim is not P.multiply or len(args) != 2 or not c.requires_grad:
            continue
        x, y = args
        if not (
            isinstance(x, Node) and isinstance(y, Node) and x.requires_grad and y.requires_grad
        ):
            continue
        if x is y or numpy.shape(x._data) != numpy.shape(y._data):
            continue
        cn, xn, yn = G.name(c), G.name(x), G.name(y)
        f = Finding(
            "swapped",
            f"the factors of the product {cn} = {xn} * {yn} are swapped in its derivative: "
            f"d{xn} = d{cn} * {yn} and d{yn} = d{cn} * {xn}",
        )
        yield f, _swapping(G, c)


def _swapping(G: Graph, c: Node) -> Callable[[], dict[str, Any]]:
    return lambda: G.grads(Hooks(swap=frozenset({id(c)})))


def _cutting(G: Graph, edges: list[tuple[Node, int]]) -> Callable[[], dict[str, Any]]:
    cut = frozenset((id(c), i) for c, i in edges)
    return lambda: G.grads(Hooks(cut=cut))


def _scaling(G: Graph, v: Node, c: float) -> Callable[[], dict[str, Any]]:
    return lambda: G.grads(Hooks(scale={id(v): c}))


def _centres_or_scales(G: Graph, c: Node) -> bool:
    """Whether the statistic ``c`` (a mean or variance along an axis) comes back onto the
    array it summarises: a keepdims result, or one that (through ``+ eps``, ``sqrt``, a power)
    is subtracted from or divides a larger array (``h - h.mean(axis=0)``, batch norm)."""
    if (c._kw or {}).get("keepdims"):
        return True
    frontier, seen = [c], 0
    while frontier and seen < 8:
        d = frontier.pop()
        seen += 1
        for user, i in G.consumers.get(id(d), []):
            prim = user._prim
            if prim in (P.subtract, P.divide) and user._args is not None:
                other = user._args[1 - i]
                if numpy.ndim(getattr(other, "_data", other)) > numpy.ndim(d._data):
                    return True
            elif prim in (P.add, P.sqrt, P.power, P.multiply):
                frontier.append(user)
    return False


def _params_reached(G: Graph, a: Node) -> list[str]:
    """The names of the parameters ``a`` is computed from (a penalty's ``beta``)."""
    ids = {id(p): G.name(p) for p in G.params}
    found, stack, seen = [], [a], set()
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if id(m) in ids and ids[id(m)] not in found:
            found.append(ids[id(m)])
        stack.extend(x for x in (m._args or ()) if isinstance(x, Node))
    return found


def _path_variants(G: Graph) -> Iterator[Variant]:
    stats = [
        (c, 0)
        for c in G.nodes
        if c._prim in (P.mean, P.var, P.std, P.sum_)
        and (c._kw or {}).get("axis") is not None
        and c.requires_grad
        and _centres_or_scales(G, c)
    ]
    if stats:
        f = Finding(
            "stats-constant",
            "the normalisation statistics are treated as constants: the mean and the "
            "variance depend on the input too, so its gradient has their terms as well "
            "(dX = (dXhat - mean(dXhat) - Xhat * mean(dXhat * Xhat)) / sigma, the means "
            "along the normalised axis)",
        )
        yield f, _cutting(G, stats)
        for c, i in stats:
            yield f, _cutting(G, [(c, i)])
    for p in G.params:
        uses = G.consumers.get(id(p), [])
        if len(uses) < 2:
            continue
        pn = G.name(p)
        for c, i in uses:
            if G.first_data_consumer(c)._prim in (P.add, P.subtract):
                f = Finding(
                    "regulariser-missing",
                    f"the regulariser's term is missing: {pn} also enters the loss through "
                    f"the penalty, whose gradient must be added to d{pn}",
                )
            else:
                f = Finding(
                    "shared-weight-missing",
                    f"one use of the shared {pn} is missing: {pn} is used {len(uses)} times, "
                    f"and d{pn} is the sum of the gradients of every use",
                )
            yield f, _cutting(G, [(c, i)])
    for c in G.nodes:
        if c._prim not in (P.add, P.subtract) or not c.requires_grad:
            continue
        args = [a for a in (c._args or ()) if isinstance(a, Node) and a.requires_grad]
        if len(args) != 2:
            continue
        for i, a in enumerate(c._args or ()):
            if not isinstance(a, Node) or not a.requires_grad:
                continue
            if not G.depends_on_data(a):
                on = _params_reached(G, a)
                if a in G.names:
                    what = G.name(a)  # the user's own name for the penalty
                elif on:
                    what = f"the penalty on {', '.join(on)}"
                else:
                    what = "a penalty"
                f = Finding(
                    "regulariser-missing",
                    f"the regulariser's term is missing: {what} is added to the loss and "
                    "depends on the parameters, so its gradient belongs in theirs",
                )
            elif a in G.names or a._prim is None:
                f = Finding(
                    "skip-missing",
                    f"the skip connection's path is missing: {G.name(a)} is added straight "
                    f"into {G.name(c)}, so d{G.name(a)} receives d{G.name(c)} unchanged as "
                    "well as the gradient through the other branch",
                )
            else:
                f = Finding("path-missing", f"one of the two terms added in {G.name(c)} is missing")
            yield f, _cutting(G, [(c, i)])


def _scale_variants(
    G: Graph, batch: int | None, mean_over: tuple[int, int] | None
) -> Iterator[Variant]:
    """The gradient reaching one named value multiplied by -1, N, 1/N, 1/2, ..."""
    size, rows = mean_over if mean_over else (0, 0)
    factors: list[tuple[float, Finding]] = [(-1.0, Finding("sign", ""))]
    for n, what in ((rows, "len(X)"), (size, "Y.size"), (batch or 0, "N")):
        if n > 1:
            factors.append((float(n), Finding("missing-1/N", f"a missing 1/N (N = {what} = {n})")))
            factors.append(
                (1 / n, Finding("extra-1/N", f"divided by N once too often (N = {what} = {n})"))
            )
    if size and rows and size != rows:
        factors.insert(
            1,
            (
                size / rows,
                Finding(
                    "len-vs-size",
                    f"divided by len(X) = {rows} where the mean is over all Y.size = {size} "
                    "elements (dY = 2 * (Y - T) / Y.size)",
                ),
            ),
        )
    factors.append((0.5, Finding("mse-missing-2", "the 2 of the squared error is missing")))
    named = [n for n in reversed(G.nodes) if n in G.names and n._prim is not None][:40]
    for v in named:
        vn = G.name(v)
        for c, f in factors:
            what = (
                "minus the chain rule's"
                if c == -1
                else (f"{c:.6g} times too large" if c > 1 else f"{1 / c:.6g} times too small")
            )
            text = (
                f"d{vn} is {what}"
                + (f": {f.text}" if f.text else ": the sign is wrong")
                + ("" if v is G.root else f"; the gradients computed from d{vn} inherit it")
            )
            yield Finding(f.kind, text), _scaling(G, v, c)


def variants(
    G: Graph, batch: int | None = None, mean_over: tuple[int, int] | None = None
) -> Iterator[Variant]:
    yield from _activation_variants(G)
    yield from _softmax_variants(G)
    yield from _product_variants(G)
    yield from _path_variants(G)
    yield from _scale_variants(G, batch, mean_over)


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------


def diagnose(
    rec: Recording,
    theirs: dict[str, numpy.ndarray],
    ours: dict[str, numpy.ndarray],
    batch: int | None,
    mean_over: tuple[int, int] | None,
) -> dict[str, Finding]:
    """A finding for every given gradient that differs from ``ours`` (by parameter name).

    ``mean_over`` is ``(size, rows)`` of the array a mean-over-everything loss averages.

    Example
    -------
    >>> import numpy
    >>> from chainrule.program.trace import record
    >>> f = lambda w, x: ((x @ w) ** 2).mean()
    >>> w, x = numpy.array([1.0, 2.0]), numpy.ones((4, 2))
    >>> ours = {"w": 2 * x.T @ (x @ w) / 4}
    >>> found = diagnose(record(f, (w, x), wrt="w"), {"w": -ours["w"]}, ours, 4, (4, 4))
    >>> found["w"].kind
    'sign'
    """
    wrong = {n for n in theirs if not (_close(theirs[n], ours[n]))}
    if not wrong:
        return {}
    out: dict[str, Finding] = {}
    G = None
    # one mistake that explains every given gradient at once; a hypothesis that cannot be
    # run (a rule that refuses these arrays) is skipped: naming a mistake never crashes
    try:
        G = Graph(rec)
        with numpy.errstate(all="ignore"):
            for finding, make in variants(G, batch, mean_over):
                got = make()
                if all(_close(theirs[n], got[n]) for n in theirs) and any(
                    not _close(got[n], ours[n]) for n in wrong
                ):
                    return {n: finding for n in wrong}
    except Exception:  # noqa: BLE001  # pragma: no cover - see above
        pass
    for n in sorted(wrong):
        try:
            out[n] = _single(n, theirs, ours, batch, mean_over, rec)
        except Exception:  # noqa: BLE001  # pragma: no cover - see above
            out[n] = Finding("unknown", "differs from the chain rule")
    unknown = {n for n, f in out.items() if f.kind == "unknown"}
    if unknown and unknown == wrong and G is not None:
        try:
            where = _localise(G, wrong)
        except Exception:  # noqa: BLE001  # pragma: no cover - see above
            where = None
        if where is not None:
            return {n: where for n in wrong}
    return out


def _localise(G: Graph, wrong: set[str]) -> Finding | None:
    """Where a mistake no variant reproduces enters: the activation whose input feeds exactly
    the wrong gradients (everything below it wrong, everything above it right)."""
    index = {id(t): G.rec.input_names[j] for j, t in zip(G.rec.wrt, G.params)}

    def below(n: Node) -> set[str]:
        found, stack, seen = set(), [n], set()
        while stack:
            m = stack.pop()
            if not isinstance(m, Node) or id(m) in seen:
                continue
            seen.add(id(m))
            if id(m) in index:
                found.add(index[id(m)])
            stack.extend(m._args or ())
        return found

    if len(wrong) < 2:  # one wrong gradient: its own line may be the mistake as well
        return None
    for a, z, kind, _ in _activations(G):
        if below(z) == wrong:
            an, zn = G.name(a), G.name(z)
            if kind == "relu":
                return Finding(
                    "relu-mask",
                    f"the ReLU mask is wrong: every gradient computed from d{zn} is wrong and "
                    f"every one before it is right, so look at d{zn} = d{an} * ({zn} > 0)",
                )
            right = f"1 - {an} ** 2" if kind == "tanh" else f"{an} * (1 - {an})"
            return Finding(
                "activation-derivative",
                f"the {kind} derivative looks wrong: every gradient computed from d{zn} is "
                f"wrong and every one before it is right; d{zn} = d{an} * ({right})",
            )
    return None


def _single(
    name: str,
    theirs_all: dict[str, numpy.ndarray],
    ours_all: dict[str, numpy.ndarray],
    batch: int | None,
    mean_over: tuple[int, int] | None,
    rec: Recording,
) -> Finding:
    theirs, ours = numpy.asarray(theirs_all[name], float), numpy.asarray(ours_all[name], float)
    for other, g in ours_all.items():
        if other != name and g.shape == theirs.shape and _close(theirs, g):
            if not _close(g, ours):
                return Finding(
                    "swapped",
                    f"this is d{other}, the gradient of {other}: the two are swapped "
                    "(or the wrong one is returned)",
                )
    if theirs.shape != ours.shape:
        return _shape_finding(name, theirs, ours, rec)
    if ours.ndim == 2 and ours.shape[0] == ours.shape[1] and _close(theirs.T, ours):
        return Finding(
            "transposed",
            "transposed: this is the transpose of the gradient (e.g. dZ.T @ A instead of "
            "A.T @ dZ); a weight's gradient pairs its input's rows with dZ's: A.T @ dZ",
        )
    if _close(-theirs, ours):
        return Finding("sign", "wrong sign: this is minus the gradient")
    denom = float(numpy.vdot(ours, ours))
    if denom > 0:
        c = float(numpy.vdot(theirs, ours)) / denom
        if abs(c) > 1e-12 and _close(theirs, c * ours):
            found = _scale_finding(c, batch, mean_over)
            if found.kind != "scale" or ours.size > 1:
                return found
            # one number: any wrong value is "a factor" of the right one, which says nothing
            return Finding(
                "unknown",
                f"d{name} is {float(theirs.ravel()[0]):.6g} where the chain rule gives "
                f"{float(ours.ravel()[0]):.6g}; compare it line by line with the derivation",
            )
    return Finding(
        "unknown",
        "differs from the chain rule (max error "
        f"{float(numpy.max(numpy.abs(theirs - ours))):.3g}) in a way none of the common "
        "mistakes explains; compare it line by line with the derivation",
    )


def _scale_finding(c: float, batch: int | None, mean_over: tuple[int, int] | None) -> Finding:
    size, rows = mean_over if mean_over else (None, None)
    if size and rows and size != rows and numpy.isclose(c, size / rows):
        return Finding(
            "len-vs-size",
            f"{size // rows} times too large: divided by len(X) = {rows} where the mean is over "
            f"all Y.size = {size} elements (dY = 2 * (Y - T) / Y.size)",
        )
    for n, what in ((size, "Y.size"), (batch, "N")):
        if n and n > 1 and numpy.isclose(c, n):
            return Finding(
                "missing-1/N",
                f"{n} times too large: a missing 1/N (N = {what} = {n}). The loss is a mean, "
                f"so its gradient carries 1/{what}",
            )
        if n and n > 1 and numpy.isclose(c, 1 / n):
            return Finding(
                "extra-1/N",
                f"{n} times too small: divided by {what} = {n} once too often (a bias gradient "
                "is summed over the batch, not averaged, when dY already carries 1/N)",
            )
    if numpy.isclose(c, 0.5):
        return Finding(
            "mse-missing-2",
            "half the gradient: the 2 of the squared error is missing (d(Y - T)**2 = 2(Y - T))",
        )
    return Finding("scale", f"off by a constant factor of {c:.6g}")


def _shape_finding(name: str, theirs: Any, ours: Any, rec: Recording) -> Finding:
    if theirs.T.shape == ours.shape and _close(theirs.T, ours):
        return Finding(
            "transposed",
            "transposed: this is the transpose of the gradient (e.g. dZ.T @ A instead of "
            f"A.T @ dZ); the gradient has the parameter's shape {ours.shape}",
        )
    if theirs.size == ours.size and _close(theirs.reshape(ours.shape), ours):
        return Finding(
            "keepdims",
            f"the right numbers in shape {theirs.shape} instead of {ours.shape}: summed with "
            "keepdims=True; drop it (or reshape) so the gradient has the parameter's shape",
        )
    raw = _raw_gradient(name, rec)
    if raw is not None and raw.shape == theirs.shape and _close(raw, theirs):
        return Finding(
            "bias-not-summed",
            f"not summed over the batch: shape {theirs.shape} instead of {ours.shape}. A bias "
            "is added to every row, so its gradient is the sum of the rows' gradients "
            "(.sum(axis=0))",
        )
    if theirs.ndim == ours.ndim + 1 and _close(theirs.mean(axis=0), ours):
        return Finding(
            "bias-not-summed",
            f"not reduced over the batch: shape {theirs.shape} instead of {ours.shape}",
        )
    if raw is not None:
        for k in range(1, raw.ndim + 1):
            for axes in itertools.combinations(range(raw.ndim), k):
                for keep in (False, True):
                    s = raw.sum(axis=axes, keepdims=keep)
                    if s.shape == theirs.shape and _close(s, theirs):
                        return Finding(
                            "bias-wrong-axis",
                            f"summed over the wrong axis: .sum(axis={axes[0] if k == 1 else axes}"
                            f"{', keepdims=True' if keep else ''}) gives shape {theirs.shape}; "
                            f"the bias was broadcast over the batch (axis 0), so d{name} = "
                            f"dZ.sum(axis=0), shape {ours.shape}",
                        )
    return Finding(
        "wrong-shape",
        f"wrong shape {theirs.shape}: the parameter (and its gradient) has shape {ours.shape}",
    )


def _raw_gradient(name: str, rec: Recording) -> numpy.ndarray | None:
    """The gradient that arrived at parameter ``name`` before it was summed to its shape."""
    j = rec.input_names.index(name)
    t = rec.inputs[j]
    total = None
    for step in rec.steps:
        for _, a, raw, _fin in step.terms:
            if a is t:
                r = numpy.asarray(raw._data if isinstance(raw, Node) else raw, float)
                if total is None:
                    total = r
                elif total.shape == r.shape:
                    total = total + r
                else:
                    return None
    return total
