"""``check_backward``: a hand-derived backward pass, checked line by line.

Learners' backward passes are usually wrong in a handful of ways: a missing ``1/N``, a product
transposed, a bias gradient not summed over the batch, a ReLU mask on the wrong side, a sign.
Each gradient they give is compared with chainrule's (itself confirmed by finite differences);
a wrong one is diagnosed where the pattern is recognisable, and shown next to the correct
derivation line.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine.gradcheck import _finite_difference
from chainrule.engine.pytree import flatten
from chainrule.program.trace import record

from .explain import Explanation

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

    def __str__(self) -> str:
        mark = "ok   " if self.correct else "WRONG"
        text = f"{mark} d{self.name}"
        if not self.correct:
            text += f": {self.diagnosis}"
            if self.theirs:
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

    @property
    def passed(self) -> bool:
        return all(p.correct for p in self.parameters)

    @property
    def wrong(self) -> list[str]:
        return [p.name for p in self.parameters if not p.correct]

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
        if not self.passed:
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
      WRONG dw: 4 times too large: a missing 1/N (N = 4 samples)
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
    theirs = _normalise(their_grads, params)
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
    results = []
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
        if not numpy.allclose(ours, numeric, rtol=1e-4, atol=1e-6):  # pragma: no cover
            raise AssertionError(
                f"chainrule's own gradient for {name} disagrees with finite "
                "differences; please report this as a bug"
            )
        given = numpy.asarray(theirs[name], dtype=float)
        ok = given.shape == ours.shape and numpy.allclose(given, ours, rtol=rtol, atol=atol)
        err = (
            float(numpy.max(numpy.abs(given - ours))) if given.shape == ours.shape else float("inf")
        )
        differentiated = {rec.input_arg[k] for k in rec.wrt}
        diagnosis = "" if ok else _diagnose(given, ours, args, differentiated)
        results.append(
            ParameterCheck(
                name, ok, diagnosis, _our_line(ex, name), their_lines.get(name.lower()), err
            )
        )
    results.sort(key=lambda r: order.get(r.name, 0))
    return BackwardCheck(results, ex)


def _is_float(a: Any) -> bool:
    return numpy.asarray(a).dtype.kind == "f"


def _normalise(grads: Any, params: list[str]) -> dict[str, Any]:
    if isinstance(grads, dict):
        out = {}
        for k, v in grads.items():
            key = k
            if key not in params and key[:1] in "dD" and key[1:] in params:
                key = key[1:]
            if key not in params:
                raise TypeError(
                    f"check_backward: gradient {k!r} does not name a parameter "
                    f"of the function ({', '.join(params)})"
                )
            out[key] = v
        return out
    return dict(zip(params, grads))


def _backward_order(ex: Explanation) -> dict[str, int]:
    order = {}
    lines = ex.backward_lines()
    for name in ex.recording.input_names:
        target = f"d{name} ="
        for i, line in enumerate(lines):
            if line.startswith(target):
                order[name] = i
    return order


def _our_line(ex: Explanation, name: str) -> str:
    """chainrule's line for ``d{name}``, after the lines that define the gradients it reads."""
    lines = ex.backward_lines()
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
        m = re.match(r"\s*[dD]_?(\w+)\s*=(?!=)", line)
        if m:
            found[m.group(1).lower()] = line.strip()
    return found


def _diagnose(
    theirs: numpy.ndarray, ours: numpy.ndarray, args: tuple[Any, ...], differentiated: set[int]
) -> str:

    def close(a: numpy.ndarray, b: numpy.ndarray) -> bool:
        return a.shape == b.shape and bool(numpy.allclose(a, b, rtol=1e-6, atol=1e-9))

    batch = _batch_size([a for i, a in enumerate(args) if i not in differentiated])
    if theirs.shape != ours.shape:
        if theirs.T.shape == ours.shape and close(theirs.T, ours):
            return (
                "transposed: this is the transpose of the gradient (e.g. dZ.T @ A "
                "instead of A.T @ dZ); the gradient has the parameter's shape "
                f"{ours.shape}"
            )
        if theirs.ndim == ours.ndim + 1 and close(theirs.sum(axis=0), ours):
            return (
                f"not summed over the batch: shape {theirs.shape} instead of "
                f"{ours.shape}. A bias is added to every row, so its gradient is the sum "
                "of the rows' gradients (.sum(axis=0))"
            )
        if theirs.ndim == ours.ndim + 1 and close(theirs.mean(axis=0), ours):
            return (
                f"not reduced over the batch: shape {theirs.shape} instead of "
                f"{ours.shape}, and the right reduction here is the mean of the rows"
            )
        return (
            f"wrong shape {theirs.shape}: the parameter (and its gradient) has shape {ours.shape}"
        )
    if (
        ours.ndim == 2
        and ours.shape[0] == ours.shape[1]
        and close(theirs.T, ours)
        and not close(theirs, ours)
    ):
        return (
            "transposed: this is the transpose of the gradient (e.g. dZ.T @ A instead of A.T @ dZ)"
        )
    if close(-theirs, ours):
        return "wrong sign: this is minus the gradient"
    denom = float(numpy.vdot(ours, ours))
    if denom > 0:
        c = float(numpy.vdot(theirs, ours)) / denom
        if abs(c) > 1e-12 and close(theirs, c * ours):
            if batch and numpy.isclose(c, batch):
                return (
                    f"{batch} times too large: a missing 1/N (N = {batch} samples). The "
                    "error is a mean, so dE/dY = 2 * (Y - T) / Y.size"
                )
            if batch and numpy.isclose(c, 1 / batch):
                return (
                    f"{batch} times too small: divided by N = {batch} once too often "
                    "(a bias gradient is summed over the batch, not averaged, when dY "
                    "already carries 1/N)"
                )
            return f"off by a constant factor of {c:.6g}"
    zero_ours, zero_theirs = (
        numpy.isclose(ours, 0, atol=1e-12),
        numpy.isclose(theirs, 0, atol=1e-12),
    )
    if (zero_ours != zero_theirs).any():
        flipped = numpy.mean((zero_ours != zero_theirs)[~(zero_ours & zero_theirs)])
        if flipped > 0.5:
            return (
                "ReLU mask on the wrong side: your gradient is non-zero where it should "
                "be zero and the other way round (use (Z > 0), the derivative of "
                "max(0, Z), and the pre-activation Z of the same layer)"
            )
        return (
            "the pattern of zeros differs: check the ReLU masks (which Z, which side "
            "of 0) in this layer or the ones after it"
        )
    return (
        "differs from the chain rule (max error "
        f"{float(numpy.max(numpy.abs(theirs - ours))):.3g}); an earlier step may be "
        "wrong"
    )


def _batch_size(args: list[Any]) -> int | None:
    """The number of rows of the first 2-d data argument (the batch), if any."""
    for a in args:
        leaves = flatten(a)[0]
        for v in leaves:
            if numpy.ndim(v) == 2 and numpy.shape(v)[0] > 1:
                return int(numpy.shape(v)[0])
    return None
