"""Numerical gradient checking: chainrule's gradients against central finite differences."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy

from .graph import ancestors
from .pytree import flatten, leaf_paths, unflatten
from .tensor import Tensor, _leaf, enable_grad
from .transforms import _param_names, grad

__all__ = ["check_grads", "GradientCheckError", "GradCheckReport"]


class GradientCheckError(AssertionError):
    """chainrule's gradient and the finite-difference estimate disagree; ``.report`` says where.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> square = cr.primitive(numpy.square, name="square_with_a_slip")
    >>> cr.defvjp(square, lambda g, out, x: g * x)   # should be g * 2 * x
    >>> try:
    ...     cr.check_grads(lambda x: square(x).sum(), numpy.array([1.0, 2.0]))
    ... except cr.GradientCheckError as e:
    ...     print(e.report.passed)
    ...     print(str(e).splitlines()[2].strip())
    False
    x[1]: chainrule 2, finite difference 4
    """

    def __init__(self, report: GradCheckReport) -> None:
        super().__init__(str(report))
        self.report = report


@dataclasses.dataclass
class Mismatch:
    """One element whose analytic and numerical derivatives disagree."""

    index: tuple[int, ...]
    analytic: float
    numeric: float
    kinks: list[str]


@dataclasses.dataclass
class ArgumentCheck:
    """The comparison for one differentiated argument (one pytree leaf)."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    mismatches: list[Mismatch]
    bad_count: int

    @property
    def passed(self) -> bool:
        return self.bad_count == 0


@dataclasses.dataclass
class GradCheckReport:
    """Per-argument results of :func:`check_grads`; ``passed`` is True when all agree.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> report = cr.check_grads(lambda x: (x ** 2).sum(), numpy.array([1.0, 2.0]))
    >>> report.passed, report.order
    (True, 1)
    """

    arguments: list[ArgumentCheck]
    order: int
    eps: float
    rtol: float
    atol: float

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.arguments)

    def _repr_html_(self) -> str:
        """A table for Jupyter: one row per argument, the disagreements listed under it."""
        import html

        rows = []
        for a in self.arguments:
            verdict = "ok" if a.passed else f"{a.bad_count} element(s) disagree"
            color = "green" if a.passed else "firebrick"
            rows.append(
                f"<tr><td><code>{html.escape(a.name)}</code></td><td>{a.shape}</td>"
                f"<td>{a.max_abs_error:.2e}</td><td>{a.max_rel_error:.2e}</td>"
                f'<td style="color:{color}">{verdict}</td></tr>'
            )
        head = html.escape(str(self).splitlines()[0])
        return (
            f"<div><p><b>{head}</b></p><table><tr><th>argument</th><th>shape</th>"
            "<th>max abs err</th><th>max rel err</th><th></th></tr>"
            + "".join(rows)
            + "</table>"
            + (
                "<pre>" + html.escape("\n".join(str(self).splitlines()[1:])) + "</pre>"
                if not self.passed
                else ""
            )
            + "</div>"
        )

    def __str__(self) -> str:
        head = (
            f"gradient check (order {self.order}, central differences in float64, "
            f"eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g}): "
            + ("passed" if self.passed else "FAILED")
        )
        lines = [head]
        for a in self.arguments:
            verdict = "ok" if a.passed else f"{a.bad_count} element(s) disagree"
            lines.append(
                f"  {a.name:<14} shape {str(a.shape):<10} max abs err "
                f"{a.max_abs_error:.2e}  max rel err {a.max_rel_error:.2e}  {verdict}"
            )
            for m in a.mismatches:
                lines.append(
                    f"      {a.name}{list(m.index)}: chainrule {m.analytic:.10g}, "
                    f"finite difference {m.numeric:.10g}"
                )
                for k in m.kinks:
                    lines.append(f"        note: {k}")
        if any(m.kinks for a in self.arguments for m in a.mismatches):
            lines.append(
                "  A finite difference that straddles a kink measures neither side's "
                "derivative; the disagreement there is expected. Move the point away "
                "from the kink or lower eps."
            )
        return "\n".join(lines)


def _as_float64(x: Any) -> Any:
    if isinstance(x, Tensor):
        x = x._data
    arr = numpy.asarray(x)
    if arr.dtype.kind == "c":
        return arr.astype(numpy.complex128)
    return arr.astype(numpy.float64) if arr.dtype.kind == "f" else x


def _scalarize(
    fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], seed: int
) -> Callable[..., Any]:
    """Make ``fun`` scalar: a non-scalar output is projected on a fixed random direction, a
    complex one on a complex direction, keeping the real part (the pairing of the rules)."""
    probe = fun(*args, **kwargs)
    rng = numpy.random.default_rng(seed)
    if isinstance(probe, (list, tuple, dict)):  # several outputs: each on a direction of its own
        leaves = [v._data if isinstance(v, Tensor) else v for v in flatten(probe)[0]]
        dirs = [_direction(rng, v) for v in leaves]

        def projected(*a: Any) -> Any:
            total: Any = 0.0
            for out, d in zip(flatten(fun(*a, **kwargs))[0], dirs):
                total = total + numpy.real((out * d).sum())
            return total

        return projected
    probe = probe._data if isinstance(probe, Tensor) else probe
    if numpy.iscomplexobj(probe):
        d = rng.standard_normal(numpy.shape(probe)) + 1j * rng.standard_normal(numpy.shape(probe))
        return lambda *a: numpy.real((fun(*a, **kwargs) * d).sum())
    if numpy.size(probe) == 1:
        return lambda *a: fun(*a, **kwargs)
    direction = rng.standard_normal(numpy.shape(probe))
    return lambda *a: (fun(*a, **kwargs) * direction).sum()


def _direction(rng: Any, v: Any) -> Any:
    shape = numpy.shape(v)
    d = rng.standard_normal(shape)
    return d + 1j * rng.standard_normal(shape) if numpy.iscomplexobj(v) else d


def _kink_signature(fun: Callable[..., Any], args: list[Any], argnum: int) -> list[tuple[str, Any]]:
    """Which branch every kinked operation took (``maximum``: which side won, …)."""
    leaves, td = flatten(args[argnum])
    variables = [_leaf(numpy.asarray(v), True) for v in leaves]
    from .pytree import tree_map
    from .transforms import _constant

    call = [tree_map(_constant, a) for a in args]
    call[argnum] = unflatten(td, variables)
    with enable_grad():
        out = fun(*call)
    if not isinstance(out, Tensor) or out._prim is None:
        return []
    sig = []
    for node in ancestors([out]):
        prim = node._prim
        if prim is not None and prim.kink is not None:
            sig.append((prim.name, prim.kink(*node._vals or (), **node._kw or {})))
    return sig


def _kinks_crossed(
    fun: Callable[..., Any],
    args: list[Any],
    argnum: int,
    leaf: int,
    index: tuple[int, ...],
    h: float,
) -> list[str]:
    notes = []
    sides = []
    for sign in (1, -1):
        leaves, td = flatten(args[argnum])
        moved = [numpy.array(v, dtype=_dtype64(v)) for v in leaves]
        moved[leaf][index] += sign * h
        call = list(args)
        call[argnum] = unflatten(td, moved)
        sides.append(_kink_signature(fun, call, argnum))
    for (name, a), (_, b) in zip(*sides):
        if numpy.shape(a) != numpy.shape(b) or not numpy.array_equal(a, b):
            notes.append(
                f"the step ±{h:.1e} crosses a kink of "
                f"{name if name.startswith('scipy.') else 'numpy.' + name} (the branch it "
                "takes differs on the two sides)"
            )
    return notes


def check_grads(
    fun: Callable[..., Any],
    *args: Any,
    argnums: int | tuple[int, ...] | None = None,
    eps: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    order: int = 1,
    max_reported: int = 5,
    seed: int = 0,
    **kwargs: Any,
) -> GradCheckReport:
    """Compare chainrule's gradients of ``fun`` with central finite differences.

    Every floating-point argument (or those in ``argnums``) is checked element by element, in
    float64.  A non-scalar output is checked through a fixed random projection.  ``order=2``
    also checks the gradient of the gradient (through a random projection of it).  Where a
    disagreeing element's finite-difference step straddles a kink (ReLU at 0, a tie in
    ``maximum``), the report says so.

    Returns the :class:`GradCheckReport`; raises :class:`GradientCheckError` (carrying it) when
    any element disagrees.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> report = cr.check_grads(lambda x: numpy.tanh(x).sum(), numpy.array([0.1, 0.7]))
    >>> report.passed
    True
    """
    args64 = [_tree64(a) for a in args]
    if argnums is None:
        nums = tuple(
            i
            for i, a in enumerate(args64)
            if flatten(a)[0] and all(_is_float(v) for v in flatten(a)[0])
        )
    else:
        nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise TypeError("check_grads: no floating-point argument to check; pass argnums")
    names = _param_names(fun, len(args64))
    f = _scalarize(fun, tuple(args64), kwargs, seed)
    h = 1e-6 if eps is None else eps
    results = _check_first_order(f, args64, nums, names, h, rtol, atol, max_reported)
    report = GradCheckReport(results, 1, h, rtol, atol)
    if report.passed and order >= 2:
        rng = numpy.random.default_rng(seed + 1)
        g = grad(f, argnums=nums)
        shapes = [[numpy.shape(v) for v in flatten(args64[i])[0]] for i in nums]
        dirs = [
            [
                rng.standard_normal(s) + (1j * rng.standard_normal(s) if _is_complex(v) else 0)
                for s, v in zip(ss, flatten(args64[i])[0])
            ]
            for ss, i in zip(shapes, nums)
        ]

        def projected(*a: Any) -> Any:
            total = 0.0
            for gi, di in zip(g(*a), dirs):
                for gl, dl in zip(flatten(gi)[0], di):
                    total = total + numpy.real((gl * dl).sum())
            return total

        inner = check_grads(
            projected,
            *args64,
            argnums=nums,
            eps=eps,
            rtol=rtol * 10,
            atol=atol * 10,
            order=order - 1,
            max_reported=max_reported,
            seed=seed + 2,
        )
        report = GradCheckReport(inner.arguments, order, h, rtol, atol)
    if not report.passed:
        raise GradientCheckError(report)
    return report


def _is_float(v: Any) -> bool:
    return numpy.asarray(v).dtype.kind in "fc"


def _is_complex(v: Any) -> bool:
    return numpy.asarray(_unwrap(v)).dtype.kind == "c"


def _dtype64(v: Any) -> Any:
    return numpy.complex128 if _is_complex(v) else numpy.float64


def _tree64(a: Any) -> Any:
    leaves, td = flatten(a)
    return unflatten(td, [_as_float64(v) for v in leaves])


def _check_first_order(
    f: Callable[..., Any],
    args: list[Any],
    nums: tuple[int, ...],
    names: list[str],
    h: float,
    rtol: float,
    atol: float,
    max_reported: int,
) -> list[ArgumentCheck]:
    analytic = grad(f, argnums=nums)(*args)
    results = []
    for argnum, g_tree in zip(nums, analytic):
        leaves, td = flatten(args[argnum])
        g_leaves = flatten(g_tree)[0]
        for li, (path, x, ga) in enumerate(zip(leaf_paths(args[argnum]), leaves, g_leaves)):
            numeric = _finite_difference(f, args, argnum, li, h)
            ga = numpy.asarray(_unwrap(ga), dtype=_dtype64(x))
            err = numpy.abs(ga - numeric)
            bad = err > atol + rtol * numpy.abs(numeric)
            bad |= numpy.isnan(ga) != numpy.isnan(numeric)
            rel = err / numpy.maximum(numpy.abs(numeric), atol)
            worst = numpy.argsort(-numpy.where(bad, err, -1).ravel(), kind="stable")
            mismatches = []
            for flat in worst[:max_reported]:
                if not bad.ravel()[flat]:
                    break
                idx = tuple(int(i) for i in numpy.unravel_index(flat, numpy.shape(x)))
                mismatches.append(
                    Mismatch(
                        idx,
                        _number(ga.ravel()[flat]),
                        _number(numeric.ravel()[flat]),
                        _kinks_crossed(
                            f,
                            args,
                            argnum,
                            li,
                            idx,
                            h * max(1.0, abs(complex(numpy.asarray(x).ravel()[flat]))),
                        ),
                    )
                )
            results.append(
                ArgumentCheck(
                    names[argnum] + path,
                    tuple(numpy.shape(x)),
                    float(numpy.nanmax(err, initial=0.0)),
                    float(numpy.nanmax(rel, initial=0.0)),
                    mismatches,
                    int(bad.sum()),
                )
            )
    return results


def _number(v: Any) -> Any:
    return complex(v) if numpy.iscomplexobj(v) else float(v)


def _unwrap(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else x


def _finite_difference(
    f: Callable[..., Any], args: list[Any], argnum: int, leaf: int, h: float
) -> numpy.ndarray:
    """Central differences; for a complex element, ``df/dx - i df/dy`` (the rules' convention)."""
    leaves, td = flatten(args[argnum])
    dtype = _dtype64(leaves[leaf])
    base = numpy.array(leaves[leaf], dtype=dtype)
    out = numpy.zeros(base.shape, dtype=dtype)
    units = (1, 1j) if dtype is numpy.complex128 else (1,)
    for idx in numpy.ndindex(base.shape):
        step = h * max(1.0, abs(complex(base[idx])))
        for unit in units:
            values = []
            for sign in (1, -1):
                moved = base.copy()
                moved[idx] += sign * step * unit
                new_leaves = list(leaves)
                new_leaves[leaf] = moved
                call = list(args)
                call[argnum] = unflatten(td, new_leaves)
                values.append(float(numpy.asarray(_unwrap(f(*call))).reshape(())))
            out[idx] += (values[0] - values[1]) / (2 * step) * (1 if unit == 1 else -1j)
    return out
