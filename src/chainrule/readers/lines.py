"""A hand-written backward function run once, every array it binds kept with its line.

``check_backward`` compares these values, in the order the user's code computed them, with the
chain rule's values of the same names (``dZ2`` is the gradient of ``Z2``), and points at the
first line whose value differs.  The frames are read with a trace hook; the source is only read
to quote the line.
"""

from __future__ import annotations

import dataclasses
import linecache
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy

__all__ = ["Binding", "run_traced", "gradient_of", "first_wrong_line"]


@dataclasses.dataclass
class Binding:
    """One array the user's function bound to a local name, and the line that computed it."""

    name: str
    value: numpy.ndarray
    lineno: int
    text: str
    # a later line changed the same array in place (``dW += ...``): this was a partial value
    superseded: bool = False
    # the object the name was bound to (``value`` is a copy of it at that line)
    bound: Any = None


# Arrays up to this many elements are copied when bound, so that a later in-place change
# (``dW += ...`` in a loop) shows as a new binding on the line that made it
_SNAPSHOT = 1 << 20


def run_traced(fun: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, list[Binding]]:
    """``fun(*args)`` and the arrays its frame bound to local names, in order.

    Example
    -------
    >>> import numpy
    >>> def backward(x):
    ...     dy = 2 * x
    ...     dx = dy * 3
    ...     return dx
    >>> _, bound = run_traced(backward, (numpy.ones(2),))
    >>> [(b.name, b.text) for b in bound]
    [('x', 'def backward(x):'), ('dy', 'dy = 2 * x'), ('dx', 'dx = dy * 3')]
    """
    code = getattr(fun, "__code__", None)
    found: list[Binding] = []
    if code is None or sys.gettrace() is not None or sys.getprofile() is not None:
        return fun(*args), found
    known: dict[str, int] = {}
    latest: dict[str, int] = {}  # name -> index in found of its latest binding
    last = [code.co_firstlineno]

    def note(frame: Any) -> None:
        for name, value in frame.f_locals.items():
            if not isinstance(value, (numpy.ndarray, numpy.floating, float)) or isinstance(
                value, bool
            ):
                continue
            if known.get(name) == id(value):
                if not isinstance(value, numpy.ndarray) or value.size > _SNAPSHOT:
                    continue
                before = found[latest[name]]
                if before.value.shape == value.shape and numpy.array_equal(
                    before.value, value, equal_nan=True
                ):
                    continue
                before.superseded = True  # changed in place by the line just run
            known[name] = id(value)
            text = linecache.getline(code.co_filename, last[0]).strip()
            snap = (
                numpy.array(value, copy=True)
                if isinstance(value, numpy.ndarray) and value.size <= _SNAPSHOT
                else numpy.asarray(value)
            )
            latest[name] = len(found)
            found.append(Binding(name, snap, last[0], text, bound=value))

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event in ("line", "return"):
            note(frame)
            last[0] = frame.f_lineno
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if event == "call" and frame.f_code is code else None

    sys.settrace(tracer)
    try:
        result = fun(*args)
    finally:
        sys.settrace(None)
    return result, found


_PREFIXES = re.compile(r"^(?:d_?|D_?|grad_?|delta_?)(?P<n>\w+)$|^(?P<m>\w+?)_?grad$")


def gradient_of(name: str, names: set[str], exact: bool = False) -> str | None:
    """The forward name a local gradient variable refers to (``dZ2``, ``DZ2``, ``grad_W``,
    ``W_grad`` -> ``Z2``, ``W``), if it is one of ``names``.

    Example
    -------
    >>> gradient_of("DZ2", {"Z2"}), gradient_of("grad_W", {"W"}), gradient_of("Z2", {"Z2"})
    ('Z2', 'W', None)
    """
    m = _PREFIXES.match(name)
    if not m:
        return None
    base = m.group("n") or m.group("m")
    if base in names:
        return base
    if exact:
        return None
    lower = {n.lower(): n for n in names}
    return lower.get(base.lower())


def first_wrong_line(
    bindings: list[Binding], adjoints: dict[str, numpy.ndarray], correct: dict[str, str]
) -> str | None:
    """The first bound gradient whose value differs from the chain rule's, as text.

    Example
    -------
    >>> import numpy
    >>> bound = [Binding("dY", numpy.ones(2), 7, "dY = Y - T")]
    >>> print(first_wrong_line(bound, {"Y": 2 * numpy.ones(2)}, {"Y": "2 * (Y - T)"}))
    First line of yours that differs from the chain rule: line 7, dY (max error 1)
          yours:   dY = Y - T
          correct: dY = 2 * (Y - T)
    """
    names = set(adjoints)
    exact = {of for b in bindings if (of := gradient_of(b.name, names, exact=True)) is not None}
    for b in bindings:
        of = gradient_of(b.name, names)
        if of is None or b.superseded:
            continue
        ours = adjoints[of]
        if of not in (gradient_of(b.name, names, exact=True),) and (
            of in exact or b.value.shape != numpy.shape(ours)
        ):
            continue  # dZ matched to z only by case, while dz is there too (or does not fit)
        if b.value.shape == numpy.shape(ours) and numpy.allclose(
            b.value, ours, rtol=1e-6, atol=1e-9
        ):
            continue
        right = correct.get(of)
        how = (
            f"shape {b.value.shape} where d{of} has {numpy.shape(ours)}"
            if b.value.shape != numpy.shape(ours)
            else f"max error {float(numpy.max(numpy.abs(b.value - ours))):.3g}"
        )
        text = (
            f"First line of yours that differs from the chain rule: line {b.lineno}, "
            f"{b.name} ({how})\n"
            f"      yours:   {b.text}"
        )
        if right:
            text += f"\n      correct: {b.name} = {right}"
        return text
    return None
