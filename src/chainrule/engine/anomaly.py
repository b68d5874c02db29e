"""``detect_anomaly``: the first NaN or inf, named, with the line of your code that made it.

Off by default and then free: switching it on swaps in a checking version of the recording
function (and turns on a check in the backward walk); switching it off swaps the original back.
It is process-wide. ``CHAINRULE_DETECT_ANOMALY=1`` in the environment switches it on for a run.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy

from . import graph
from . import tensor as tensor
from .primitives import Primitive, qualified_name

__all__ = ["detect_anomaly", "AnomalyError", "set_detect_anomaly"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # chainrule/
_NUMPY_DIR = os.path.dirname(os.path.abspath(numpy.__file__))
_original_apply = tensor._apply
_lock = threading.Lock()
_depth = 0


class AnomalyError(FloatingPointError):
    """A forward value or a gradient became NaN or infinite (raised by ``detect_anomaly``).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> w = cr.tensor([1.0, 0.0], requires_grad=True)
    >>> with cr.detect_anomaly():
    ...     try:
    ...         numpy.log(w)
    ...     except cr.AnomalyError as e:
    ...         print(str(e).splitlines()[0])
    numpy.log produced inf (shape (2,))
    """


def _user_frame() -> Any:
    frame: Any = sys._getframe(2)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (
            path.startswith(_PACKAGE_DIR)
            or path.startswith(_NUMPY_DIR)
            or path.startswith("<frozen")
        ):
            return frame
        frame = frame.f_back
    return None


def _site(frame: Any) -> tuple[str, int, str, str | None]:
    if frame is None:
        return ("<unknown>", 0, "", None)
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    m = re.match(r"([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*[+\-*/@]?=(?!=)", line)
    return (frame.f_code.co_filename, frame.f_lineno, line, m.group(1) if m else None)


def _stats(x: Any) -> str:
    a = numpy.asarray(x)
    if a.dtype.kind not in "fc" or a.size == 0:
        return f"shape {a.shape} {a.dtype}"
    finite = a[numpy.isfinite(a)]
    rng = f"min {finite.min():.4g}, max {finite.max():.4g}" if finite.size else "no finite values"
    return (
        f"shape {a.shape} {a.dtype}, {rng}, any NaN: {bool(numpy.isnan(a).any())}, "
        f"any inf: {bool(numpy.isinf(a).any())}"
    )


def _names_in(frame: Any) -> dict[int, str]:
    if frame is None:
        return {}
    return {id(v): k for k, v in frame.f_locals.items() if isinstance(v, tensor.Tensor)}


def _nonfinite(x: Any) -> bool:
    a = numpy.asarray(x)
    return a.dtype.kind in "fc" and not bool(numpy.isfinite(a).all())


def _checked_apply(prim: Primitive, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    with numpy.errstate(all="ignore"):
        out = _original_apply(prim, args, kw)
    frame = _user_frame()
    if out._prim is not None:
        out._site = _site(frame)
    if _nonfinite(out._data):
        file, line, text, name = _site(frame)
        local = _names_in(frame)
        inputs = "\n".join(
            f"    input {i}{' (' + local[id(a)] + ')' if id(a) in local else ''}: "
            f"{_stats(a._data if isinstance(a, tensor.Tensor) else a)}"
            for i, a in enumerate(args)
        )
        raise AnomalyError(
            f"{qualified_name(prim)} produced {'NaN' if numpy.isnan(out._data).any() else 'inf'}"
            f"{' in ' + name if name else ''} (shape {numpy.shape(out._data)})\n"
            f"  at {file}:{line}\n    {text}\n  its inputs:\n{inputs}"
        )
    return out


def _report_gradient(node: Any, argnum: int, parent: Any, g_in: Any, g_out: Any) -> None:
    file, line, text, name = getattr(node, "_site", ("<unknown>", 0, "", None))
    raise AnomalyError(
        f"the gradient rule of {qualified_name(node._prim)}"
        f"{' (computing ' + name + ')' if name else ''} turned a finite gradient into "
        f"{'NaN' if numpy.isnan(numpy.asarray(g_out)).any() else 'inf'} for its input "
        f"{argnum} (shape {numpy.shape(parent._data)})\n  recorded at {file}:{line}\n    {text}\n"
        f"  the incoming gradient: {_stats(g_in)}\n"
        f"  that input's value: {_stats(parent._data)}"
    )


def set_detect_anomaly(on: bool) -> None:
    """Switch anomaly detection on or off for the whole process (calls nest: each ``True``
    needs its ``False``).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> cr.set_detect_anomaly(True)
    >>> x = cr.tensor([0.0], requires_grad=True)
    >>> try:
    ...     numpy.sqrt(x).sum().backward()     # d sqrt(x)/dx is inf at 0
    ... except cr.AnomalyError as e:
    ...     print(str(e).splitlines()[0])
    the gradient rule of numpy.sqrt turned a finite gradient into inf for its input 0 (shape (1,))
    >>> cr.set_detect_anomaly(False)
    """
    global _depth
    with _lock:
        _depth = max(0, _depth + (1 if on else -1))
        active = _depth > 0
        tensor._apply = _checked_apply if active else _original_apply
        graph.ANOMALY_REPORT = _report_gradient if active else None


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise :class:`AnomalyError` at the first NaN/inf in a forward value or a gradient.

    The error names the operation, the variable (from the assignment in your code), the
    shapes, statistics of its inputs, and the file and line that created it.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> w = cr.tensor([1.0, -1.0], requires_grad=True)
    >>> with cr.detect_anomaly():
    ...     y = numpy.log(w)          # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    AnomalyError: numpy.log produced NaN in y
    """
    set_detect_anomaly(True)
    try:
        yield
    finally:
        set_detect_anomaly(False)
