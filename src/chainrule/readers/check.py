"""``check_backward``: a hand-derived backward pass, checked line by line.

Learners' backward passes are usually wrong in a handful of ways: a missing ``1/N``, a product
transposed, a bias gradient not summed over the batch, a ReLU mask on the wrong side, a sign.
Each gradient they give is compared with chainrule's (itself confirmed by finite differences);
a wrong one is diagnosed where the pattern is recognisable, and shown next to the correct
derivation line.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.gradcheck import _finite_difference
from chainrule.engine.pytree import flatten
from chainrule.program.trace import record

from .diagnose import diagnose
from .explain import Explanation
from .lines import first_wrong_line, run_traced

__all__ = ["check_backward", "BackwardCheck", "ParameterCheck"]


@dataclasses.dataclass
class ParameterCheck:
    """The verdict on one gradient someone derived by hand."""

    name: str
    correct: bool
    diagnosis: str
    derivation: str  # chainrule's line for this gradient
    theirs: str | None  # their line, when their backward function was given
    max_error: float
    kind: str = ""  # the mistake's name (chainrule.readers.diagnose.KINDS), "" when right

    def __str__(self) -> str:
        mark = "ok   " if self.correct else "WRONG"
        text = f"{mark} d{self.name}"
        if self.correct and self.diagnosis:
            text += f": right; {self.diagnosis}"
        if not self.correct:
            text += f": {self.diagnosis}"
            if self.theirs and self.theirs.replace(" ", "") != self.derivation.split("\n")[
                -1
            ].strip().replace(" ", ""):  # the same text: the mistake is in what it reads
                text += f"\n        yours:   {self.theirs}"
            text += f"\n        correct: {self.derivation}"
        return text


@dataclasses.dataclass
class BackwardCheck:
    """All verdicts, in backward order (the layer nearest the output first).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> f = lambda w, x: ((x @ w) ** 2).sum()
    >>> w, x = numpy.array([1.0, 2.0]), numpy.ones((3, 2))
    >>> report = cr.check_backward(f, (w, x), {"w": 2 * x.T @ (x @ w)})
    >>> report.passed, report.wrong
    (True, [])
    """

    parameters: list[ParameterCheck]
    explanation: Explanation
    notes: list[str] = dataclasses.field(default_factory=list)
    first_wrong_line: str | None = None  # in their backward function, when it was given

    @property
    def passed(self) -> bool:
        return all(p.correct for p in self.parameters)

    @property
    def wrong(self) -> list[str]:
        return [p.name for p in self.parameters if not p.correct]

    def _repr_html_(self) -> str:
        """The verdicts as an HTML table for Jupyter (the mistakes and lines under it)."""
        rows = []
        for p in self.parameters:
            color = "green" if p.correct else "firebrick"
            mark = "ok" if p.correct else "WRONG"
            detail = html.escape(p.diagnosis)
            if not p.correct:
                if p.theirs:
                    detail += f"<br>yours: <code>{html.escape(p.theirs)}</code>"
                detail += (
                    "<br>correct: <code>"
                    + "<br>".join(html.escape(x.strip()) for x in p.derivation.splitlines())
                    + "</code>"
                )
            rows.append(
                f'<tr><td style="color:{color}"><b>{mark}</b></td>'
                f"<td><code>d{html.escape(p.name)}</code></td>"
                f"<td>{html.escape(p.kind)}</td><td>{detail}</td></tr>"
            )
        tail = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        if self.first_wrong_line:
            tail += f"<pre>{html.escape(self.first_wrong_line)}</pre>"
        return (
            f"<div><p><b>{html.escape(str(self).splitlines()[0])}</b></p><table>"
            "<tr><th></th><th>gradient</th><th>mistake</th><th>detail</th></tr>"
            + "".join(rows)
            + "</table>"
            + tail
            + "</div>"
        )

    def __str__(self) -> str:
        lines = [
            "check_backward: "
            + (
                "all gradients are correct"
                if self.passed
                else f"{len(self.wrong)} of {len(self.parameters)} gradients are wrong"
            )
        ]
        lines += ["  " + str(p).replace("\n", "\n  ") for p in self.parameters]
        lines += [f"  Note: {n}" for n in self.notes]
        if not self.passed and self.first_wrong_line:
            lines.append("  " + self.first_wrong_line)
        elif not self.passed:
            first = self.wrong[0]
            lines.append(
                f"  Going backward from the output, d{first} is the first wrong "
                "gradient: look there first; later ones may only inherit its error."
            )
        return "\n".join(lines)


def check_backward(
    fun: Callable[..., Any],
    args: Any,
    their_grads: Any,
    *,
    backward: Callable[..., Any] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
) -> BackwardCheck:
    """Check gradients derived by hand against chainrule's and finite differences.

    Parameters
    ----------
    fun : callable
        The forward pass, returning a scalar.
    args : tuple, list or dict
        Its arguments, positionally or by parameter name.
    their_grads : dict or sequence
        The hand-derived gradients, by parameter name (``{"W1": DW1, ...}``; a ``D``/``d``
        prefix is accepted), or in the order of the parameters they differentiate.
    backward : callable, optional
        Their backward function; its source lines are shown next to the correct ones.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> f = lambda w, x: ((x @ w) ** 2).mean()
    >>> x, w = numpy.ones((4, 2)), numpy.array([1.0, 2.0])
    >>> report = cr.check_backward(f, (w, x), {"w": 2 * x.T @ (x @ w)})   # forgot 1/N
    >>> report.wrong
    ['w']
    >>> print(str(report).splitlines()[1][:60])
      WRONG dw: 4 times too large: a missing 1/N (N = Y.size = 4
    >>> cr.check_backward(f, (w, x), {"w": 2 * x.T @ (x @ w) / 4}).wrong    # fixed
    []
    """
    params = list(inspect.signature(fun).parameters)
    if isinstance(args, dict):
        missing = [p for p in params if p not in args]
        if missing:
            raise TypeError(f"check_backward: no value for parameter(s) {missing}")
        args = tuple(args[p] for p in params)
    args = tuple(args)
    theirs = _normalise(their_grads, params, args)
    wrt = [p for p in params if p in theirs]
    if not wrt:
        raise TypeError(
            f"check_backward: none of the given gradients {sorted(theirs)} names "
            f"a parameter of the function ({', '.join(params)})"
        )
    ex = Explanation(record(fun, args, {}, wrt=wrt))
    rec = ex.recording
    order = _backward_order(ex)
    their_lines = _their_lines(backward) if backward is not None else {}
    ours_all: dict[str, numpy.ndarray] = {}
    given_all: dict[str, numpy.ndarray] = {}
    notes: list[str] = []
    tied = _tied_kinks(rec)
    for j, g in zip(rec.wrt, rec.grads):
        name = rec.input_names[j]
        argnum = rec.input_arg[j]
        ours = numpy.asarray(g._data) if g is not None else numpy.zeros_like(rec.inputs[j]._data)
        numeric = _finite_difference(
            lambda *a: fun(*a),
            [numpy.asarray(a, dtype=float) if _is_float(a) else a for a in args],
            argnum,
            0,
            1e-6,
        )
        if not numpy.allclose(ours, numeric, rtol=1e-4, atol=1e-6):
            if not tied:  # pragma: no cover - chainrule's own gradient would be wrong
                raise AssertionError(
                    f"chainrule's own gradient for {name} disagrees with finite "
                    "differences; please report this as a bug"
                )
            notes.append(
                f"d{name}: finite differences straddle a kink tied exactly here ({tied}); "
                "at a tie the derivative is a convention (chainrule's: the ReLU passes "
                "nothing where its input is exactly 0, as PyTorch), not a number finite "
                "differences can confirm"
            )
        ours_all[name] = ours
        given_all[name] = numpy.asarray(theirs[name], dtype=float)
    differentiated = {rec.input_arg[k] for k in rec.wrt}
    batch = _batch_size([a for i, a in enumerate(args) if i not in differentiated])
    findings = diagnose(rec, given_all, ours_all, batch, _mean_over(rec))
    results = []
    for name, ours in ours_all.items():
        given = given_all[name]
        finding = findings.get(name)
        ok = finding is None or finding.convention
        err = (
            float(numpy.max(numpy.abs(given - ours), initial=0.0))
            if given.shape == ours.shape
            else float("inf")
        )
        results.append(
            ParameterCheck(
                name,
                ok,
                finding.text if finding is not None else "",
                _our_line(ex, name),
                their_lines.get(name.lower()),
                err,
                finding.kind if finding is not None else "",
            )
        )
    results.sort(key=lambda r: order.get(r.name, 0))
    report = BackwardCheck(results, ex, notes)
    if backward is not None and not report.passed:
        report.first_wrong_line = _first_wrong_line(backward, args, ex)
    return report


def _first_wrong_line(backward: Callable[..., Any], args: tuple[Any, ...], ex: Any) -> str | None:
    """Run their backward function once and find its first line that differs, by name."""
    from chainrule.engine.graph import Node

    try:
        _, bindings = run_traced(backward, args)
    except Exception:  # noqa: BLE001 - their function may want other arguments: no line then
        return None
    rec = ex.recording
    adjoints: dict[str, numpy.ndarray] = {}
    for step in rec.steps:
        name = rec.names.get(step.node)
        if name is not None and name not in adjoints:
            g = step.grad
            adjoints[name] = numpy.asarray(g._data if isinstance(g, Node) else g)
    correct = {}
    for line in ex.backward_lines(wrap=False):
        lhs, sep, rhs = line.partition(" = ")
        if sep and lhs.startswith("d") and lhs[1:] in adjoints:
            correct[lhs[1:]] = rhs
    return first_wrong_line(bindings, adjoints, correct)


def _tied_kinks(rec: Any) -> str:
    """Where a ReLU (maximum/minimum) has its two inputs exactly equal, as text ('' if none)."""
    seen = []
    for node in _recorded_nodes(rec):
        if node._prim in (P.maximum, P.minimum) and node._vals is not None:
            a, b = (numpy.asarray(v) for v in node._vals[:2])
            if numpy.any(numpy.broadcast_to(a == b, numpy.shape(node._data))):
                seen.append(rec.names.get(node, node._prim.name))
    return ", ".join(dict.fromkeys(seen))


def _recorded_nodes(rec: Any) -> list[Any]:
    from chainrule.engine.graph import Node

    out, stack, ids = [], [rec.output], set()
    while stack:
        n = stack.pop()
        if not isinstance(n, Node) or id(n) in ids:
            continue
        ids.add(id(n))
        out.append(n)
        stack.extend(n._args or ())
    return out


def _mean_over(rec: Any) -> tuple[int, int] | None:
    """(size, rows) of the array a mean over all elements averages, if the loss has one."""
    for node in _recorded_nodes(rec):
        if node._prim is P.mean and (node._kw or {}).get("axis") is None and node._args:
            x = node._args[0]
            shape = numpy.shape(x._data if hasattr(x, "_data") else x)
            if len(shape) >= 1:
                return int(numpy.prod(shape)), int(shape[0])
    return None


def _is_float(a: Any) -> bool:
    return numpy.asarray(a).dtype.kind == "f"


def _normalise(grads: Any, params: list[str], args: tuple[Any, ...] = ()) -> dict[str, Any]:
    if isinstance(grads, numpy.ndarray) or numpy.isscalar(grads):
        grads = [grads]  # one gradient: not a sequence of them
    if isinstance(grads, dict):
        out = {}
        for k, v in grads.items():
            key = k
            if key not in params and key[:1] in "dD" and key[1:] in params:
                key = key[1:]
            if key not in params:
                holders = [p for p, a in zip(params, args) if isinstance(a, dict) and key in a]
                hint = (
                    f"; {k!r} is a key of the dict argument {holders[0]!r}: check_backward "
                    "compares the gradients of array arguments, so pass a function of the "
                    f"arrays, e.g. lambda {', '.join(args[params.index(holders[0])])}, ...: "
                    f"fun({{...}}, ...)"
                    if holders
                    else ""
                )
                raise TypeError(
                    f"check_backward: gradient {k!r} does not name a parameter "
                    f"of the function ({', '.join(params)}){hint}"
                )
            out[key] = v
        return out
    grads = list(grads)
    in_order = dict(zip(params, grads))
    if not args or all(
        numpy.shape(g) == numpy.shape(a) for g, a in zip(grads, args) if g is not None
    ):
        return in_order
    # in order they do not fit: match each gradient to the one float argument of its shape
    floats = [(p, numpy.shape(a)) for p, a in zip(params, args) if _is_float(a)]
    by_shape: dict[str, Any] = {}
    for g in grads:
        fits = [p for p, shape in floats if shape == numpy.shape(g) and p not in by_shape]
        if len(fits) != 1:
            return in_order
        by_shape[fits[0]] = g
    return by_shape


def _backward_order(ex: Explanation) -> dict[str, int]:
    order = {}
    lines = ex.backward_lines(wrap=False)
    for name in ex.recording.input_names:
        target = f"d{name} ="
        for i, line in enumerate(lines):
            if line.startswith(target):
                order[name] = i
    return order


def _our_line(ex: Explanation, name: str) -> str:
    """chainrule's line for ``d{name}``, after the lines that define the gradients it reads."""
    lines = ex.backward_lines(wrap=False)
    defined = {ln.split(" = ", 1)[0]: ln for ln in lines if " = " in ln}
    own = defined.get(f"d{name}")
    if own is None:
        return f"d{name} = 0"
    rhs = own.split(" = ", 1)[1]
    used = [defined[w] for w in re.findall(r"\bd\w+", rhs) if w in defined and w != f"d{name}"]
    return "\n                 ".join(used + [own])


def _their_lines(backward: Callable[..., Any]) -> dict[str, str]:
    try:
        source = inspect.getsource(backward)
    except (OSError, TypeError):
        return {}
    found = {}
    for line in source.splitlines():
        # dW = ... or an accumulation dW += ...: the last such line of each gradient
        m = re.match(r"\s*[dD]_?(\w+)\s*(?:[-+*/@]|//)?=(?!=)", line)
        if m:
            found[m.group(1).lower()] = line.strip()
    return found


def _batch_size(args: list[Any]) -> int | None:
    """The number of rows of the first 2-d data argument (the batch), if any."""
    for a in args:
        leaves = flatten(a)[0]
        for v in leaves:
            if numpy.ndim(v) == 2 and numpy.shape(v)[0] > 1:
                return int(numpy.shape(v)[0])
    return None
