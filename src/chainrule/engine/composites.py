"""NumPy functions written as compositions of primitives (``nansum``, ``cov``, ``median``,
``quantile``, ...): NumPy's own algorithm, step by step, on tensors, so the values are NumPy's
bit for bit and the gradient follows from the primitives' rules.

``COMPOSITES`` maps the NumPy function to its composition; a tensor's ``__array_function__``
runs it when the function has no binder. The table is complete once this module is imported.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy

from .binders import _norm, _square_stack
from .primitives import (
    Slot,
    _EighResult,
    _EigResult,
    _ndim,
    _no_out,
    _NoValue,
    _one_axis,
    _QRResult,
    _shape,
    _SlogdetResult,
    _SVDResult,
    const_like,
    correlate,
    detsign,
    eighvals,
    eigvals,
    eigvalsh,
    eigvecs,
    eigvecsh,
    eigw,
    gather,
    host_copy,
    logabsdet,
    logdet,
    lstsq_x,
    normalize_axis,
    on_host,
    pinv,
    qr_q,
    qr_r,
    shared_factors,
    svd_s,
    svd_u,
    svd_vh,
)

COMPOSITES: dict[Callable[..., Any], Callable[..., Any]] = {}
# Functions without a gradient in general (numpy.bincount's counts) that have one in some of
# their arguments (its weights): the composition runs only when an argument requires grad;
# otherwise the function is computed as the other operations without a gradient are.
WHEN_DIFFERENTIATED: dict[Callable[..., Any], Callable[..., Any]] = {}


def _composite(*funcs: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        for f in funcs:
            COMPOSITES[f] = impl
        return impl

    return register


def _atleast(nd: int) -> Callable[..., Any]:
    def bind(*arys: Any) -> Any:
        outs = []
        for a in arys:
            shape = _shape(a)
            if len(shape) >= nd:
                outs.append(a)
                continue
            if nd == 1:
                new: tuple[int, ...] = (1,)
            elif nd == 2:
                new = (1,) * (2 - len(shape)) + shape
            else:
                new = {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)]
            outs.append(numpy.reshape(a, new))
        return outs[0] if len(outs) == 1 else tuple(outs)

    return bind


COMPOSITES[numpy.atleast_1d] = _atleast(1)
COMPOSITES[numpy.atleast_2d] = _atleast(2)
COMPOSITES[numpy.atleast_3d] = _atleast(3)


@_composite(numpy.vstack)
def _vstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    return numpy.concatenate([numpy.atleast_2d(a) for a in tup], axis=0, dtype=dtype)


@_composite(numpy.hstack)
def _hstack(tup: Any, *, dtype: Any = None, casting: str = "same_kind") -> Any:
    arrs = [numpy.atleast_1d(a) for a in tup]
    return numpy.concatenate(arrs, axis=0 if arrs and numpy.ndim(arrs[0]) == 1 else 1, dtype=dtype)


@_composite(numpy.dstack)
def _dstack(tup: Any) -> Any:
    return numpy.concatenate([numpy.atleast_3d(a) for a in tup], axis=2)


@_composite(numpy.column_stack)
def _column_stack(tup: Any) -> Any:
    return numpy.concatenate(
        [a if numpy.ndim(a) >= 2 else numpy.reshape(a, (-1, 1)) for a in tup], axis=1
    )


def _split_points(n: int, sections: Any, fname: str, even: bool) -> list[int]:
    if isinstance(sections, int) or numpy.ndim(sections) == 0:
        k = operator.index(sections)
        if k <= 0:
            raise ValueError(f"{fname}: number of sections must be larger than 0")
        if even and n % k:
            raise ValueError(
                f"{fname}: array split does not result in an equal division ({n} into {k})"
            )
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        return [sum(sizes[:i]) for i in range(k + 1)]
    cuts = [min(max(int(c) if c >= 0 else n + int(c), 0), n) for c in sections]
    return [0] + cuts + [n]


def _splitter(fname: str, even: bool) -> Callable[..., Any]:
    def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
        shape = _shape(ary)
        ax = _one_axis(axis, len(shape), fname)
        pts = _split_points(shape[ax], indices_or_sections, fname, even)
        lead = (slice(None),) * ax
        return [ary[lead + (slice(a, max(a, b)),)] for a, b in zip(pts[:-1], pts[1:])]

    return split


COMPOSITES[numpy.split] = _splitter("split", True)
COMPOSITES[numpy.array_split] = _splitter("array_split", False)


@_composite(numpy.fliplr)
def _fliplr(m: Any) -> Any:
    return numpy.flip(m, axis=1)


@_composite(numpy.flipud)
def _flipud(m: Any) -> Any:
    return numpy.flip(m, axis=0)


def _uplo(a: Any, fname: str, uplo: str) -> dict[str, str]:
    _square_stack(a, fname)
    if uplo not in ("L", "U"):
        raise ValueError(f"numpy.linalg.{fname}: UPLO must be 'L' or 'U', got {uplo!r}")
    return {} if uplo == "L" else {"UPLO": "U"}


@_composite(numpy.linalg.eigvalsh)
def _eigvalsh(a: Any, UPLO: str = "L") -> Any:  # noqa: N803 (NumPy's name)
    return eigvalsh(a, **_uplo(a, "eigvalsh", UPLO))


@_composite(numpy.linalg.eigh)
def _eigh(a: Any, UPLO: str = "L") -> Any:  # noqa: N803 (NumPy's name)
    kw = _uplo(a, "eigh", UPLO)
    with shared_factors():  # one eigh for both results
        return _EighResult(eighvals(a, **kw), eigvecsh(a, **kw))


@_composite(numpy.linalg.svd)
def _svd(
    a: Any, full_matrices: bool = True, compute_uv: bool = True, hermitian: bool = False
) -> Any:
    if _ndim(a) < 2:
        raise numpy.linalg.LinAlgError(
            f"numpy.linalg.svd: needs a matrix or a stack of them, got shape {_shape(a)}"
        )
    if not compute_uv:
        return svd_s(a)
    full = bool(full_matrices)
    with shared_factors():  # one svd for U and Vh (S alone is LAPACK's values-only call)
        u = svd_u(a, full=full)
        return _SVDResult(u, svd_s(a), svd_vh(a, u, full=full))


if hasattr(numpy.linalg, "svdvals"):  # NumPy 2

    @_composite(numpy.linalg.svdvals)
    def _svdvals(x: Any, /) -> Any:
        return numpy.linalg.svd(x, compute_uv=False)


if hasattr(numpy.linalg, "matrix_norm"):  # NumPy 2 (the array API's names)

    @_composite(numpy.linalg.matrix_norm)
    def _matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
        if _ndim(x) < 2:
            raise numpy.linalg.LinAlgError(
                f"numpy.linalg.matrix_norm: needs a matrix or a stack of them, got {_shape(x)}"
            )
        return numpy.linalg.norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)

    @_composite(numpy.linalg.vector_norm)
    def _vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
        nd = _ndim(x)
        axes = tuple(range(nd)) if axis is None else (axis,) if isinstance(axis, int) else axis
        axes = tuple(sorted({a % nd if -nd <= a < nd else a for a in axes}))
        if any(not 0 <= a < nd for a in axes):
            raise numpy.exceptions.AxisError(
                f"numpy.linalg.vector_norm: axis {axis!r} out of range for shape {_shape(x)}"
            )
        rest = tuple(a for a in range(nd) if a not in axes)
        shape = _shape(x)
        # the norm's axes moved last and flattened into one: a vector norm over one axis
        flat = numpy.reshape(
            numpy.transpose(x, rest + axes),
            tuple(shape[a] for a in rest) + (-1,),
        )
        out = numpy.linalg.norm(flat, ord=ord, axis=-1)
        if keepdims:
            out = numpy.reshape(out, tuple(1 if a in axes else shape[a] for a in range(nd)))
        return out


@_composite(numpy.linalg.eigvals)
def _eigvals(a: Any) -> Any:
    _square_stack(a, "eigvals")
    return eigvals(a)


@_composite(numpy.linalg.eig)
def _eig(a: Any) -> Any:
    _square_stack(a, "eig")
    with shared_factors():  # one eig for both results
        return _EigResult(eigw(a), eigvecs(a))


@_composite(numpy.linalg.qr)
def _qr(a: Any, mode: str = "reduced") -> Any:
    if _ndim(a) < 2:
        raise numpy.linalg.LinAlgError(f"numpy.linalg.qr: needs a matrix, got {_shape(a)}")
    if mode == "r":
        return qr_r(a)
    if mode not in ("reduced", "complete"):
        raise TypeError(
            f"numpy.linalg.qr: mode={mode!r} has no gradient rule; use 'reduced', 'complete' or 'r'"
        )
    kw = {} if mode == "reduced" else {"mode": mode}
    with shared_factors():  # one qr for both factors
        return _QRResult(qr_q(a, **kw), qr_r(a, **kw))


@_composite(numpy.linalg.pinv)
def _pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = _NoValue) -> Any:
    if rtol is not _NoValue and rtol is not None:
        rcond = rtol
    if _ndim(a) < 2:
        raise numpy.linalg.LinAlgError(f"numpy.linalg.pinv: needs a matrix, got {_shape(a)}")
    return pinv(a, rcond=rcond)


@_composite(numpy.linalg.lstsq)
def _lstsq(a: Any, b: Any, rcond: Any = None) -> Any:
    # NumPy's four results: the solution (differentiable in a and b, through the
    # pseudo-inverse), the residual sums of squares (from the solution, when m > n and the rank
    # is n; else empty), the rank (an integer) and the singular values of a (differentiable).
    if _ndim(a) != 2:
        raise numpy.linalg.LinAlgError("numpy.linalg.lstsq: a must be two-dimensional")
    x = lstsq_x(a, b, rcond=rcond)
    m, n = _shape(a)
    rank = numpy.linalg.matrix_rank(a)
    try:
        full_rank = m > n and bool(rank == n)  # explain follows it (noted); jit cannot
    except TypeError as e:  # a traced rank (jit): the residuals' shape would follow its value
        if type(e).__name__ != "TracerBoolError":
            raise
        raise type(e)(
            "numpy.linalg.lstsq inside chainrule.jit or vmap: its residuals exist only when "
            "the rank is full, which depends on the values. Write the solution as "
            "numpy.linalg.pinv(a) @ b (or numpy.linalg.solve(a.T @ a, a.T @ b)) and the "
            "residuals from it"
        ) from None
    if full_rank:
        r = b - a @ x
        sq = numpy.real(r * numpy.conj(r)) if numpy.iscomplexobj(r) else r * r  # NumPy: |r|^2
        residuals = numpy.sum(sq, axis=0)
        if _ndim(b) == 1:
            residuals = numpy.reshape(residuals, (1,))
    else:
        residuals = numpy.zeros((0,), dtype=_dtype(a))
    return x, residuals, rank, svd_s(a)


@_composite(numpy.linalg.tensorinv)
def _tensorinv(a: Any, ind: int = 2) -> Any:
    # NumPy's own steps: the first ind axes against the rest, as one square matrix
    shape = _shape(a)
    if ind <= 0:
        raise ValueError("numpy.linalg.tensorinv: ind must be a positive integer")
    rows = int(numpy.prod(shape[:ind]))
    inv = numpy.linalg.inv(numpy.reshape(a, (rows, -1)))
    return numpy.reshape(inv, shape[ind:] + shape[:ind])


@_composite(numpy.linalg.tensorsolve)
def _tensorsolve(a: Any, b: Any, axes: Any = None) -> Any:
    # NumPy's own steps: the axes moved to the end, a as a square matrix, one solve
    an = _ndim(a)
    if axes is not None:
        allaxes = list(range(an))
        for k in axes:
            allaxes.remove(k)
            allaxes.insert(an, k)
        a = numpy.transpose(a, allaxes)
    oldshape = _shape(a)[-(an - _ndim(b)) :]
    prod = int(numpy.prod(oldshape))
    x = numpy.linalg.solve(numpy.reshape(a, (-1, prod)), numpy.reshape(b, (-1,)))
    return numpy.reshape(x, oldshape)


@_composite(numpy.linalg.slogdet)
def _slogdet(a: Any) -> Any:
    _square_stack(a, "slogdet")
    with shared_factors():  # one LU for the sign and log|det|
        if numpy.iscomplexobj(a):  # the sign moves with A: sign = exp(i Im log det A)
            ld = logdet(a)
            sign = numpy.where(detsign(a) == 0, 0, numpy.exp(1j * numpy.imag(ld)))
            return _SlogdetResult(sign, numpy.real(ld))
        return _SlogdetResult(detsign(a), logabsdet(a))


@_composite(numpy.angle)
def _angle(z: Any, deg: bool = False) -> Any:
    # NumPy's own definition: arctan2(Im z, Re z), in degrees on request
    a = numpy.arctan2(numpy.imag(z), numpy.real(z))
    return a * (180 / numpy.pi) if deg else a


# Functions NumPy defines in terms of the above, given here so each needs no rule of its own.

# The NaN-ignoring reductions, as NumPy's nanfunctions compute them: NaNs replaced by the
# reduction's identity (no gradient reaches them), counts of the others as plain integers.


def _nan_args(fname: str, out: Any, extra: dict[str, Any]) -> None:
    _no_out(fname, out)
    for k, v in extra.items():
        if v is not _NoValue and v is not None:
            raise TypeError(f"numpy.{fname}: {k}= is not supported on chainrule tensors")


def _isnan(a: Any) -> Any:
    return numpy.isnan(a) if numpy.dtype(_dtype(a)).kind in "fc" else None


def _dtype(a: Any) -> Any:
    return (a._data if hasattr(a, "_prim") else numpy.asarray(a)).dtype


def _per_count(total: Any, cnt: Any) -> Any:
    # NumPy divides by the integer count in float64 and casts back (_divide_by_count)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        q = total / cnt
    return q if _dtype(q) == _dtype(total) else q.astype(_dtype(total))


def _nan_fold(fname: str, reduce: Callable[..., Any], identity: int) -> Callable[..., Any]:
    """numpy.nansum / nanprod: the reduction with each NaN replaced by its identity."""

    def fold(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = _NoValue,
        where: Any = _NoValue,
    ) -> Any:
        _nan_args(fname, out, {"initial": initial, "where": where})
        mask = _isnan(a)
        arr = a if mask is None else numpy.where(mask, identity, a)
        return reduce(arr, axis=axis, dtype=dtype, keepdims=keepdims)

    return fold


COMPOSITES[numpy.nansum] = _nan_fold("nansum", numpy.sum, 0)
COMPOSITES[numpy.nanprod] = _nan_fold("nanprod", numpy.prod, 1)


@_composite(numpy.nanmean)
def _nanmean(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
) -> Any:
    _nan_args("nanmean", out, {"where": where, "dtype": dtype})
    mask = _isnan(a)
    if mask is None:
        return numpy.mean(a, axis=axis, keepdims=keepdims)
    cnt = numpy.sum(~mask, axis=axis, dtype=numpy.intp, keepdims=keepdims)
    tot = numpy.sum(numpy.where(mask, 0, a), axis=axis, keepdims=keepdims)
    return _per_count(tot, cnt)


def _nan_extreme(reduce: Callable[..., Any], fill: float, a: Any, axis: Any, keepdims: bool) -> Any:
    mask = _isnan(a)
    if mask is None:
        return reduce(a, axis=axis, keepdims=keepdims)
    best = reduce(numpy.where(mask, fill, a), axis=axis, keepdims=keepdims)
    empty = numpy.all(mask, axis=axis, keepdims=keepdims)  # an all-NaN slice gives NaN
    return numpy.where(empty, numpy.nan, best)  # no branch on values: jit traces this too


@_composite(numpy.nanmax)
def _nanmax(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = _NoValue,
    where: Any = _NoValue,
) -> Any:
    _nan_args("nanmax", out, {"initial": initial, "where": where})
    return _nan_extreme(numpy.max, -numpy.inf, a, axis, keepdims)


@_composite(numpy.nanmin)
def _nanmin(
    a: Any,
    axis: Any = None,
    out: Any = None,
    keepdims: bool = False,
    initial: Any = _NoValue,
    where: Any = _NoValue,
) -> Any:
    _nan_args("nanmin", out, {"initial": initial, "where": where})
    return _nan_extreme(numpy.min, numpy.inf, a, axis, keepdims)


@_composite(numpy.nanvar)
def _nanvar(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
    mean: Any = _NoValue,
    correction: Any = _NoValue,
) -> Any:
    _nan_args(
        "nanvar", out, {"where": where, "dtype": dtype, "mean": mean, "correction": correction}
    )
    mask = _isnan(a)
    if mask is None:
        return numpy.var(a, axis=axis, ddof=ddof, keepdims=keepdims)
    # NumPy's steps: the mean of the others, squared deviations with NaNs as 0, / (count - ddof)
    cnt = numpy.sum(~mask, axis=axis, dtype=numpy.intp, keepdims=True)
    arr = numpy.where(mask, 0, a)
    avg = _per_count(numpy.sum(arr, axis=axis, keepdims=True), cnt)
    dev = numpy.where(mask, 0, arr - avg)
    sq = numpy.real(dev * numpy.conj(dev)) if numpy.iscomplexobj(dev) else dev * dev
    var = numpy.sum(sq, axis=axis, keepdims=keepdims)
    dof = (cnt if keepdims else numpy.squeeze(cnt, axis=axis)) - ddof
    var = _per_count(var, dof)
    return numpy.where(dof <= 0, numpy.nan, var)


@_composite(numpy.nanstd)
def _nanstd(
    a: Any,
    axis: Any = None,
    dtype: Any = None,
    out: Any = None,
    ddof: float = 0,
    keepdims: bool = False,
    *,
    where: Any = _NoValue,
    mean: Any = _NoValue,
    correction: Any = _NoValue,
) -> Any:
    return numpy.sqrt(
        _nanvar(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction)
    )


@_composite(numpy.sinc)
def _sinc(x: Any) -> Any:
    y = numpy.pi * numpy.where(x == 0, 1.0e-20, x)  # NumPy's own formula
    return numpy.sin(y) / y


@_composite(numpy.nan_to_num)
def _nan_to_num(
    x: Any, copy: bool = True, nan: float = 0.0, posinf: Any = None, neginf: Any = None
) -> Any:
    dt = numpy.dtype(_dtype(x))
    if dt.kind == "c":  # as NumPy: the real and the imaginary parts, each on its own
        parts = (numpy.real(x), numpy.imag(x))
        re, im = (_nan_to_num(p, copy, nan, posinf, neginf) for p in parts)
        return re + 1j * im
    if dt.kind != "f":
        return x
    info = numpy.finfo(dt)
    big = info.max if posinf is None else posinf
    small = info.min if neginf is None else neginf
    y = numpy.where(numpy.isnan(x), nan, x)
    inf = numpy.isinf(x)
    return numpy.where(inf & (x > 0), big, numpy.where(inf & (x < 0), small, y))


@_composite(numpy.rot90)
def _rot90(m: Any, k: int = 1, axes: tuple[int, int] = (0, 1)) -> Any:
    nd = _ndim(m)
    if len(axes) != 2 or nd < 2:
        raise ValueError("numpy.rot90: needs two axes of an array of at least 2 dimensions")
    a0, a1 = (_one_axis(a, nd, "rot90") for a in axes)
    if a0 == a1:
        raise ValueError("numpy.rot90: the axes must be different")
    k %= 4
    if k == 0:
        return m[...]
    if k == 2:
        return numpy.flip(numpy.flip(m, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return numpy.transpose(numpy.flip(m, a1), perm)
    return numpy.flip(numpy.transpose(m, perm), a1)


@_composite(numpy.append)
def _append(arr: Any, values: Any, axis: Any = None) -> Any:
    if axis is None:
        return numpy.concatenate([numpy.ravel(arr), numpy.ravel(values)], axis=0)
    return numpy.concatenate([arr, values], axis=axis)


@_composite(numpy.delete)
def _delete(arr: Any, obj: Any, axis: Any = None) -> Any:
    if axis is None:
        arr, axis = numpy.ravel(arr), 0
    ax = _one_axis(axis, _ndim(arr), "delete")
    keep = numpy.ones(_shape(arr)[ax], dtype=bool)
    keep[obj] = False
    return numpy.take(arr, numpy.flatnonzero(keep), axis=ax)


@_composite(numpy.ediff1d)
def _ediff1d(ary: Any, to_end: Any = None, to_begin: Any = None) -> Any:
    flat = numpy.ravel(ary)
    parts = [flat[1:] - flat[:-1]]
    if to_begin is not None:
        parts.insert(0, numpy.ravel(to_begin))
    if to_end is not None:
        parts.append(numpy.ravel(to_end))
    return numpy.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


@_composite(numpy.trapezoid)
def _trapezoid(y: Any, x: Any = None, dx: float = 1.0, axis: int = -1) -> Any:
    nd = _ndim(y)
    ax = _one_axis(axis, nd, "trapezoid")
    d: Any
    if x is None:
        d = dx
    elif _ndim(x) == 1:
        d = numpy.diff(x)
        d = numpy.reshape(d, tuple(_shape(d)[0] if i == ax else 1 for i in range(nd)))
    else:
        d = numpy.diff(x, axis=ax)
    hi = (slice(None),) * ax + (slice(1, None),)
    lo = (slice(None),) * ax + (slice(None, -1),)
    return numpy.sum(d * (y[hi] + y[lo]) / 2.0, axis=ax)


@_composite(numpy.polyval)
def _polyval(p: Any, x: Any) -> Any:
    # Horner's scheme, as NumPy evaluates it from y = zeros_like(x) (0 * x: the same values)
    n = _shape(p)[0]
    if n == 0:
        return numpy.zeros_like(x)
    y = 0 * x + p[0]
    for i in range(1, n):
        y = y * x + p[i]
    return y


@_composite(numpy.broadcast_arrays)
def _broadcast_arrays(*args: Any, subok: bool = False) -> Any:
    shape = numpy.broadcast_shapes(*(_shape(a) for a in args))
    return tuple(numpy.broadcast_to(a, shape) for a in args)


@_composite(numpy.meshgrid)
def _meshgrid(*xi: Any, copy: bool = True, sparse: bool = False, indexing: str = "xy") -> Any:
    if indexing not in ("xy", "ij"):
        raise ValueError("numpy.meshgrid: indexing must be 'xy' or 'ij'")
    nd = len(xi)
    one = (1,) * nd
    out = [numpy.reshape(x, one[:i] + (-1,) + one[i + 1 :]) for i, x in enumerate(xi)]
    if indexing == "xy" and nd > 1:
        out[0] = numpy.reshape(out[0], (1, -1) + one[2:])
        out[1] = numpy.reshape(out[1], (-1, 1) + one[2:])
    if not sparse:
        out = list(_broadcast_arrays(*out))
    return tuple(numpy.copy(x) if copy else x for x in out)


@_composite(numpy.kron)
def _kron(a: Any, b: Any) -> Any:
    na, nb = _ndim(a), _ndim(b)
    if na == 0 or nb == 0:
        return numpy.multiply(a, b)
    nd = max(na, nb)
    sa = (1,) * (nd - na) + _shape(a)
    sb = (1,) * (nd - nb) + _shape(b)
    pa = numpy.reshape(a, tuple(v for n in sa for v in (n, 1)))
    pb = numpy.reshape(b, tuple(v for n in sb for v in (1, n)))
    return numpy.reshape(pa * pb, tuple(x * y for x, y in zip(sa, sb)))


@_composite(numpy.linalg.matrix_power)
def _matrix_power(a: Any, n: int) -> Any:
    _square_stack(a, "matrix_power")
    if not isinstance(n, (int, numpy.integer)):
        raise TypeError("numpy.linalg.matrix_power: the exponent must be an integer")
    if n == 0:
        eye = const_like(numpy.eye(_shape(a)[-1], dtype=_dtype(a)), a)
        return numpy.broadcast_to(eye, _shape(a)).copy()
    if n < 0:
        a, n = numpy.linalg.inv(a), -n
    if n == 1:
        return a[...]
    if n == 2:
        return a @ a
    if n == 3:
        return (a @ a) @ a
    # NumPy's binary decomposition, so the products (and their rounding) are the same
    z = result = None
    while n > 0:
        z = a if z is None else z @ z
        n, bit = divmod(n, 2)
        if bit:
            result = z if result is None else result @ z
    return result


def _reduced_first(a: Any, axis: Any, fname: str) -> tuple[Any, tuple[int, ...]]:
    """``a`` with the reduced axes (None: all of them) merged into one axis, first, and the
    shape ``keepdims=True`` gives (NumPy's _ureduce: several axes are reduced as one)."""
    nd, shape = _ndim(a), _shape(a)
    if axis is None:
        return numpy.ravel(a), (1,) * nd
    ax = normalize_axis(axis, nd, fname)
    axes = (ax,) if isinstance(ax, int) else tuple(ax or ())
    rest = [d for d in range(nd) if d not in axes]
    order = list(axes) + rest
    moved = a if order == list(range(nd)) else numpy.transpose(a, order)
    if len(axes) != 1:
        moved = numpy.reshape(moved, (-1,) + tuple(shape[d] for d in rest))
    return moved, tuple(1 if d in axes else shape[d] for d in range(nd))


def _sorted_first(a: Any, axis: Any, fname: str) -> tuple[Any, tuple[int, ...]]:
    arr, kept = _reduced_first(a, axis, fname)
    if _shape(arr)[0] == 0:
        raise ValueError(f"numpy.{fname}: an empty axis has no {fname.removeprefix('nan')}")
    return numpy.sort(arr, axis=0), kept


@_composite(numpy.median)
def _median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Any:
    _no_out("median", out)
    part, kept = _sorted_first(a, axis, "median")
    n = _shape(part)[0]
    mid = slice(n // 2, n // 2 + 1) if n % 2 else slice(n // 2 - 1, n // 2 + 1)
    rout = numpy.mean(part[mid], axis=0)
    if numpy.dtype(_dtype(a)).kind == "f":
        # a NaN anywhere in the slice gives NaN, as in NumPy (sorting puts NaNs last)
        rout = numpy.where(numpy.isnan(part[-1]), numpy.nan, rout)
    return numpy.reshape(rout, kept) if keepdims else rout


@_composite(numpy.nanmedian)
def _nanmedian(
    a: Any,
    axis: Any = None,
    out: Any = None,
    overwrite_input: bool = False,
    keepdims: bool = False,
) -> Any:
    # NumPy's steps for each slice without its NaNs: the mean of its one or two middle values,
    # (low + high) / 2 (sorting puts the NaNs last; an all-NaN slice gives NaN)
    _no_out("nanmedian", out)
    if _isnan(a) is None:
        return _median(a, axis, keepdims=keepdims)
    part, kept = _sorted_first(a, axis, "nanmedian")
    count = numpy.sum(~numpy.isnan(part), axis=0, keepdims=True)
    lo = numpy.take_along_axis(part, numpy.maximum((count - 1) // 2, 0), axis=0)
    hi = numpy.take_along_axis(part, count // 2, axis=0)  # lo again for an odd count
    rout = numpy.where(count == 0, numpy.nan, (lo + hi) / 2)[0]
    return numpy.reshape(rout, kept) if keepdims else rout


# NumPy's quantile methods (Hyndman and Fan): the virtual index of q among n sorted values;
# the continuous ones interpolate between its two neighbours, the discrete ones take one value
_QUANTILE_ALPHA_BETA = {
    "interpolated_inverted_cdf": (0.0, 1.0),
    "hazen": (0.5, 0.5),
    "weibull": (0.0, 0.0),
    "median_unbiased": (1 / 3.0, 1 / 3.0),
    "normal_unbiased": (3 / 8.0, 3 / 8.0),
}
_QUANTILE_DISCRETE = ("inverted_cdf", "closest_observation", "lower", "higher", "nearest")
_QUANTILE_METHODS = (
    "inverted_cdf", "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf",
    "hazen", "weibull", "linear", "median_unbiased", "normal_unbiased", "lower", "higher",
    "midpoint", "nearest",
)  # fmt: skip


def _to_boundaries(index: Any, take_previous: Callable[[Any, Any], Any]) -> Any:
    previous = numpy.floor(index)
    res = numpy.where(take_previous(index - previous, index), previous, previous + 1)
    res = res.astype(numpy.intp)
    return numpy.where(res < 0, 0, res)


def _virtual_index(method: str, n: Any, q: Any) -> Any:
    """NumPy's ``get_virtual_index`` of each method (``n`` an int or an array of counts)."""
    if method == "linear":
        return (n - 1) * q
    if method in _QUANTILE_ALPHA_BETA:
        alpha, beta = _QUANTILE_ALPHA_BETA[method]
        return n * q + (alpha + q * (1 - alpha - beta)) - 1
    if method == "averaged_inverted_cdf":
        return n * q - 1
    if method == "inverted_cdf":
        return _to_boundaries(n * q - 1, lambda gamma, _: gamma == 0)
    if method == "closest_observation":
        return _to_boundaries(
            n * q - 1 - 0.5, lambda gamma, i: (gamma == 0) & (numpy.floor(i) % 2 == 1)
        )
    if method == "midpoint":
        return 0.5 * (numpy.floor((n - 1) * q) + numpy.ceil((n - 1) * q))
    at = (n - 1) * q
    if method == "lower":
        return numpy.floor(at).astype(numpy.intp)
    if method == "higher":
        return numpy.ceil(at).astype(numpy.intp)
    return numpy.around(at).astype(numpy.intp)  # nearest


def _quantile_of_sorted(
    srt: Any, q: numpy.ndarray, weak: bool, method: str, count: Any, dtype: Any
) -> Any:
    """NumPy's ``_quantile`` on values sorted along axis 0 (NaNs last): ``count`` is None (all
    ``n`` values count) or, for the NaN-ignoring functions, the number of values that are not
    NaN in each slice (an array of the slices' shape, computed: it follows the values under
    jit). The gradient reaches the one or two order statistics each quantile reads."""
    n = _shape(srt)[0]
    rest = _shape(srt)[1:]
    qq = q.reshape(q.shape + (1,) * len(rest)) if count is not None else q
    cnt = n if count is None else (count.astype(q.dtype) if q.dtype.kind == "f" else count)
    with numpy.errstate(invalid="ignore"):
        vi = _virtual_index(method, cnt, qq)
    integral = method in _QUANTILE_DISCRETE or (
        method == "linear" and numpy.dtype(_dtype(vi)).kind in "iu"
    )

    def pick(index: Any) -> Any:
        if count is None:
            return srt[index]
        full = numpy.broadcast_to(index, q.shape + rest)
        flat = numpy.reshape(full, (-1,) + rest)
        return numpy.reshape(numpy.take_along_axis(srt, flat, axis=0), q.shape + rest)

    if integral:
        res = pick(vi)
    else:
        # NumPy's _get_indexes: floor and floor + 1, -1 (the last value) at or above the
        # last index or for a NaN index, 0 below the first
        last = n - 1 if count is None else count - 1
        prev = numpy.floor(vi)
        above = (vi >= last) | numpy.isnan(vi)
        below = vi < 0
        prev_i = numpy.where(above, -1, numpy.where(below, 0, prev)).astype(numpy.intp)
        next_i = numpy.where(above, -1, numpy.where(below, 0, prev + 1)).astype(numpy.intp)
        if count is not None:  # -1 is the last value that is not NaN
            prev_at = numpy.where(prev_i < 0, last, prev_i)
            next_at = numpy.where(next_i < 0, last, next_i)
        else:
            prev_at, next_at = prev_i, next_i
        lo, hi = pick(prev_at), pick(next_at)
        gamma = (vi - prev_i).astype(_dtype(vi))
        if method == "averaged_inverted_cdf":
            gamma = numpy.where(gamma == 0, 0.5, 1.0).astype(_dtype(vi))
        elif method == "midpoint":
            gamma = numpy.where(vi % 1 == 0, 0.0, 0.5).astype(_dtype(vi))
        diff = hi - lo
        t: Any
        if weak and count is None:  # a Python q: gamma as a Python float (NumPy's weak_q)
            t = float(gamma)
            res = hi - diff * (1 - t) if t >= 0.5 else lo + diff * t
        else:
            if count is None:
                gamma = gamma.reshape(gamma.shape + (1,) * len(rest))
            omt = 1 - gamma
            if weak and numpy.dtype(dtype).kind == "f":  # the Python float, per slice
                gamma, omt = gamma.astype(dtype), omt.astype(dtype)
            res = numpy.where(gamma >= 0.5, hi - diff * omt, lo + diff * gamma)
    if numpy.dtype(dtype).kind == "f":  # a slice with a NaN gives NaN (sorted last)
        bad = numpy.isnan(srt[-1]) if count is None else count == 0
        res = numpy.where(bad, numpy.nan, res)
    return res


def _quantile_any(
    fname: str, a: Any, q: Any, axis: Any, method: str, keepdims: bool, nan: bool, scale: float
) -> Any:
    if hasattr(q, "_prim"):
        raise TypeError(f"numpy.{fname}: q must be plain numbers (no gradient flows to q)")
    if method not in _QUANTILE_METHODS:
        raise ValueError(
            f"numpy.{fname}: {method!r} is not a valid method. Use one of: {_QUANTILE_METHODS}"
        )
    weak = type(q) in (int, float)
    qa = numpy.asanyarray(q)
    if scale != 1:
        qa = numpy.true_divide(qa, scale, out=...)
    if qa.ndim > 2:
        raise ValueError(f"numpy.{fname}: q must be a scalar or 1d")
    if not (numpy.all(qa >= 0) and numpy.all(qa <= 1)):
        what = (
            "Percentiles must be in the range [0, 100]"
            if scale != 1
            else ("Quantiles must be in the range [0, 1]")
        )
        raise ValueError(f"numpy.{fname}: {what}")
    if numpy.dtype(_dtype(a)).kind == "c":
        raise TypeError(f"numpy.{fname}: a must be an array of real numbers (not complex)")
    srt, kept = _sorted_first(a, axis, fname)
    mask = _isnan(srt) if nan else None
    count = None if mask is None else numpy.sum(~mask, axis=0)
    res = _quantile_of_sorted(srt, qa, weak, method, count, _dtype(a))
    return numpy.reshape(res, qa.shape + kept) if keepdims else res


def _quantile_args(fname: str, out: Any, weights: Any, interpolation: Any) -> None:
    _no_out(fname, out)
    if weights is not None:
        raise TypeError(
            f"numpy.{fname}: weights= is not supported on chainrule tensors; repeat the "
            "values by their integer weights (numpy.repeat) or call it on t.detach()"
        )
    if interpolation is not None:
        raise TypeError(f"numpy.{fname}: interpolation= is deprecated by NumPy; use method=")


def _quantile_function(fname: str, nan: bool, scale: float) -> Callable[..., Any]:
    def quantile(
        a: Any,
        q: Any,
        axis: Any = None,
        out: Any = None,
        overwrite_input: bool = False,
        method: str = "linear",
        keepdims: bool = False,
        *,
        weights: Any = None,
        interpolation: Any = None,
    ) -> Any:
        _quantile_args(fname, out, weights, interpolation)
        return _quantile_any(fname, a, q, axis, method, keepdims, nan, scale)

    quantile.__name__ = fname
    return quantile


COMPOSITES[numpy.quantile] = _quantile_function("quantile", False, 1)
COMPOSITES[numpy.percentile] = _quantile_function("percentile", False, 100)
COMPOSITES[numpy.nanquantile] = _quantile_function("nanquantile", True, 1)
COMPOSITES[numpy.nanpercentile] = _quantile_function("nanpercentile", True, 100)


@_composite(numpy.cov)
def _cov(
    m: Any,
    y: Any = None,
    rowvar: bool = True,
    bias: bool = False,
    ddof: Any = None,
    fweights: Any = None,
    aweights: Any = None,
    *,
    dtype: Any = None,
) -> Any:
    if ddof is not None and ddof != int(ddof):
        raise ValueError("numpy.cov: ddof must be an integer")
    dt = numpy.dtype(dtype) if dtype is not None else numpy.result_type(_dtype(m), numpy.float64)
    X = _at_least_rows(m, dt, rowvar)
    if y is not None:
        X = numpy.concatenate([X, _at_least_rows(y, dt, rowvar)], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    n = _shape(X)[1]
    # NumPy's weights: frequencies (whole numbers) times observation weights, each checked
    # where its values are known (not while jit or vmap records the program)
    w = fw = aw = None
    if fweights is not None:
        fw = _as_float(fweights)
        values = _concrete_values(fw)
        if values is not None and not numpy.all(values == numpy.around(values)):
            raise TypeError("fweights must be integer")
        _check_weights(fw, values, n, "fweights")
        w = fw
    if aweights is not None:
        aw = _as_float(aweights)
        _check_weights(aw, _concrete_values(aw), n, "aweights")
        w = aw if w is None else w * aw
    fact: Any
    if w is None:
        fact = n - ddof
        X = X - numpy.mean(X, axis=1)[:, None]
    else:
        avg, w_sum = _average(X, axis=1, weights=w, returned=True)
        w_sum = w_sum[0]
        if ddof == 0:
            fact = w_sum
        elif aw is None:
            fact = w_sum - ddof
        else:
            fact = w_sum - ddof * numpy.sum(w * aw) / w_sum
        X = X - avg[:, None]
    if not hasattr(fact, "_prim"):
        if fact <= 0:
            warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=3)
            fact = 0.0
    else:
        fact = numpy.where(fact <= 0, 0.0, fact)
    Xt = numpy.conj(X.T) if numpy.iscomplexobj(X) else X.T  # NumPy: X @ X^H
    if w is not None:
        Xt = numpy.conj((X * w).T) if numpy.iscomplexobj(X) else (X * w).T
    c = numpy.dot(X, Xt) * numpy.true_divide(1, fact)
    return numpy.squeeze(c)


def _as_float(w: Any) -> Any:
    w = _arrayish(w)
    return w if _dtype_of(w) == numpy.float64 else w.astype(numpy.float64)


def _check_weights(w: Any, values: Any, n: int, name: str) -> None:
    if _ndim(w) > 1:
        raise RuntimeError(f"cannot handle multidimensional {name}")
    if _shape(w)[0] != n:
        raise RuntimeError(f"incompatible numbers of samples and {name}")
    if values is not None and numpy.any(values < 0):
        raise ValueError(f"{name} cannot be negative")


def _at_least_rows(m: Any, dt: Any, rowvar: bool) -> Any:
    X = m if numpy.dtype(_dtype(m)) == dt else m.astype(dt)
    if _ndim(X) == 0:
        X = numpy.reshape(X, (1, 1))
    elif _ndim(X) == 1:
        X = numpy.reshape(X, (1, -1))
    elif _ndim(X) > 2:
        raise ValueError("numpy.cov: m has more than 2 dimensions")
    return X.T if not rowvar and _shape(X)[0] != 1 else X


@_composite(numpy.corrcoef)
def _corrcoef(x: Any, y: Any = None, rowvar: bool = True, *, dtype: Any = None) -> Any:
    c = _cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return c / c
    d = numpy.diagonal(c)
    d = numpy.sqrt(numpy.real(d) if numpy.iscomplexobj(c) else d)
    c = c / d[:, None]
    c = c / d[None, :]
    if numpy.iscomplexobj(c):  # NumPy clips the real and the imaginary parts separately
        return numpy.clip(numpy.real(c), -1, 1) + 1j * numpy.clip(numpy.imag(c), -1, 1)
    return numpy.clip(c, -1, 1)


@_composite(numpy.diff)
def _diff(
    a: Any, n: int = 1, axis: int = -1, prepend: Any = _NoValue, append: Any = _NoValue
) -> Any:
    # NumPy's own steps: join prepend/append, then n times a[1:] - a[:-1] along the axis
    if n < 0:
        raise ValueError(f"numpy.diff: order must be non-negative, got n={n}")
    nd = _ndim(a)
    if nd == 0:
        raise ValueError("numpy.diff: needs at least a 1-d input")
    ax = _one_axis(axis, nd, "diff")
    parts: list[Any] = []
    for extra in (prepend, append):
        if extra is _NoValue:
            parts.append(None)
            continue
        if _ndim(extra) == 0:
            shape = list(_shape(a))
            shape[ax] = 1
            extra = numpy.broadcast_to(extra, tuple(shape))
        parts.append(extra)
    if parts[0] is not None or parts[1] is not None:
        a = numpy.concatenate([x for x in (parts[0], a, parts[1]) if x is not None], axis=ax)
    hi = (slice(None),) * ax + (slice(1, None),)
    lo = (slice(None),) * ax + (slice(None, -1),)
    for _ in range(n):
        a = a[hi] - a[lo]
    return a


@_composite(numpy.average)
def _average(
    a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *, keepdims: Any = False
) -> Any:
    # NumPy's steps: weights of a's shape, or of the shape of a along the axes (broadcast
    # along the others); sum(a * w) / sum(w) in the promoted dtype; returned: that sum too
    keepdims = False if keepdims is _NoValue else bool(keepdims)
    a = _arrayish(a)
    nd, shape = _ndim(a), _shape(a)
    axes = None
    if axis is not None:
        axes = tuple(
            _one_axis(x, nd, "average")
            for x in (axis if isinstance(axis, (tuple, list)) else (axis,))
        )
        if len(set(axes)) != len(axes):
            raise ValueError("numpy.average: repeated axis")
    if weights is None:
        avg = numpy.mean(a, axis=axes, keepdims=keepdims)
        if not returned:
            return avg
        scl = numpy.asarray(int(numpy.prod(shape)) / max(int(numpy.prod(_shape(avg))), 1))
        return avg, numpy.full(_shape(avg), scl, dtype=_dtype(avg))
    wgt = _arrayish(weights)
    if _shape(wgt) != shape:
        if axes is None:
            raise TypeError("Axis must be specified when shapes of a and weights differ.")
        if _shape(wgt) != tuple(shape[x] for x in axes):
            raise ValueError(
                "Shape of weights must be consistent with shape of a along specified axis."
            )
        perm = tuple(int(p) for p in numpy.argsort(axes))
        if perm != tuple(range(len(axes))):
            wgt = numpy.transpose(wgt, perm)
        wgt = numpy.reshape(wgt, tuple(s if x in axes else 1 for x, s in enumerate(shape)))
    dta, dtw = numpy.dtype(_dtype(a)), numpy.dtype(_dtype(wgt))
    if dta.kind in "iub":
        dt = numpy.result_type(dta, dtw, "f8")
    else:
        dt = numpy.result_type(dta, dtw)
    wgt = wgt if dtw == dt else wgt.astype(dt)
    scl = numpy.sum(wgt, axis=axes, keepdims=keepdims)
    zero = _concrete_values(scl)
    if zero is not None and numpy.any(zero == 0.0):
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    num = numpy.sum((a if dta == dt else a.astype(dt)) * wgt, axis=axes, keepdims=keepdims)
    avg = num / scl
    if not returned:
        return avg
    if _shape(scl) != _shape(avg):
        scl = numpy.broadcast_to(scl, _shape(avg)) * 1  # NumPy: a copy
    return avg, scl


def _concrete_values(x: Any) -> Any:
    """``x``'s values on the host, or None where they are traced (jit, vmap: the values are
    not known while the program is recorded, so checks on them are skipped)."""
    if not hasattr(x, "_prim"):
        return numpy.asarray(host_copy(x))
    try:
        return numpy.asarray(host_copy(x._concrete("checking the values")))
    except TypeError as e:
        if type(e).__name__ != "TracerBoolError":
            raise
        return None


@_composite(numpy.diag)
def _diag(v: Any, k: int = 0) -> Any:
    if numpy.ndim(v) == 2:
        return numpy.diagonal(v, offset=k)
    if numpy.ndim(v) != 1:
        raise ValueError("numpy.diag: input must be 1-d or 2-d")
    n = numpy.shape(v)[0] + abs(k)
    padded = numpy.pad(v, (0, abs(k)))
    mask = const_like(numpy.eye(n, k=k), v)
    if k >= 0:
        return numpy.reshape(padded, (n, 1)) * mask
    return numpy.reshape(padded, (1, n)) * mask


@_composite(numpy.cross)
def _cross(
    a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None
) -> Any:
    if axis is not None:
        axisa = axisb = axisc = axis
    a = numpy.moveaxis(a, axisa, -1) if axisa not in (-1, _ndim(a) - 1) else a
    b = numpy.moveaxis(b, axisb, -1) if axisb not in (-1, _ndim(b) - 1) else b
    if _shape(a)[-1] != 3 or _shape(b)[-1] != 3:
        raise ValueError(
            "numpy.cross: chainrule tensors need vectors of 3 components along the axis "
            f"(got {_shape(a)[-1]} and {_shape(b)[-1]})"
        )
    a0, a1, a2 = (a[..., i] for i in range(3))
    b0, b1, b2 = (b[..., i] for i in range(3))
    c = numpy.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return c if axisc in (-1, _ndim(c) - 1) else numpy.moveaxis(c, -1, axisc)


@_composite(numpy.linalg.multi_dot)
def _multi_dot(arrays: Any, *, out: Any = None) -> Any:
    _no_out("linalg.multi_dot", out)
    result = arrays[0]
    for m in arrays[1:]:
        result = numpy.dot(result, m)
    return result


@_composite(numpy.ptp)
def _ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    _no_out("ptp", out)
    return numpy.max(a, axis=axis, keepdims=keepdims) - numpy.min(a, axis=axis, keepdims=keepdims)


# ---------------------------------------------------------------------------------------------
# Splits, rearrangements and selections
# ---------------------------------------------------------------------------------------------


def _axis_split(fname: str, axis: int, least: int) -> Callable[..., Any]:
    def split(ary: Any, indices_or_sections: Any) -> list[Any]:
        nd = _ndim(ary)
        if nd < least:
            raise ValueError(f"numpy.{fname} only works on arrays of {least} or more dimensions")
        ax = 0 if (fname == "hsplit" and nd == 1) else axis
        parts: list[Any] = COMPOSITES[numpy.split](ary, indices_or_sections, axis=ax)
        return parts

    return split


COMPOSITES[numpy.hsplit] = _axis_split("hsplit", 1, 1)
COMPOSITES[numpy.vsplit] = _axis_split("vsplit", 0, 2)
COMPOSITES[numpy.dsplit] = _axis_split("dsplit", 2, 3)


@_composite(numpy.rollaxis)
def _rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    # NumPy's rules: start may be ndim (roll to the end); axis is placed before start
    n = _ndim(a)
    axis = _one_axis(axis, n, "rollaxis")
    if not -n <= start <= n:
        raise numpy.exceptions.AxisError(start, n + 1, "rollaxis: start")
    start = start + n if start < 0 else start
    if axis < start:
        start -= 1
    if axis == start:
        return a[...]
    order = [i for i in range(n) if i != axis]
    order.insert(start, axis)
    return numpy.transpose(a, order)


@_composite(numpy.select)
def _select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    # NumPy burns the choices onto the default from last to first, so the first true condition
    # wins: the same as a where() per condition, applied last to first. Gradients reach the
    # chosen choice and the default, never the conditions.
    if len(condlist) != len(choicelist):
        raise ValueError("numpy.select: list of cases must be same length as list of conditions")
    if not condlist:
        raise ValueError("numpy.select: select with an empty condition list is not possible")
    for i, cond in enumerate(condlist):
        if _dtype_of(cond) != numpy.bool_:
            raise TypeError(
                f"numpy.select: invalid entry {i} in condlist: should be boolean ndarray"
            )
    # Python numbers stay weak in the result dtype, as in NumPy (NEP 50)
    dtype = numpy.result_type(
        *[c if type(c) in (int, float, complex) else _dtype_of(c) for c in choicelist],
        default if type(default) in (int, float, complex) else _dtype_of(default),
    )
    result = default
    for cond, choice in zip(reversed(condlist), reversed(choicelist)):
        result = numpy.where(cond, choice, result)
    return result if _dtype_of(result) == dtype else result.astype(dtype)


@_composite(numpy.partition)
def _partition(
    a: Any, kth: Any, axis: Any = -1, kind: Any = "introselect", order: Any = None
) -> Any:
    # NumPy's own partition of the data (argpartition, which arranges the values exactly as
    # numpy.partition does), then a gather: the gradient goes back to where each value came from
    if order is not None:
        raise TypeError("numpy.partition: order= is not supported on chainrule tensors")
    # kth as an array: a list argument would be computed outside a trace (frozen under jit)
    idx = numpy.argpartition(a, numpy.asarray(kth), axis=axis, kind=kind)
    return numpy.take_along_axis(a, idx, axis=axis)


@_composite(numpy.real_if_close)
def _real_if_close(a: Any, tol: float = 100) -> Any:
    dt = _dtype_of(a)
    if dt.kind != "c":
        return a
    # NumPy's test: every imaginary part within tol machine epsilons (tol > 1) or tol of 0.
    # Whether the result is real depends on the values, which a trace cannot follow: asked for
    # on a traced tensor, that bool() of a traced value raises TracerBoolError.
    limit = tol * numpy.finfo(dt).eps if tol > 1 else tol
    if bool(numpy.all(numpy.abs(numpy.imag(a)) < limit)):
        return numpy.real(a)
    return a


def _arrayish(x: Any) -> Any:
    """A tensor as it is, anything else (a list, a number) as an array."""
    return x if hasattr(x, "_prim") or not on_host(x) else numpy.asarray(x)


def _dtype_of(x: Any) -> numpy.dtype[Any]:
    dtype: numpy.dtype[Any] = numpy.dtype(_arrayish(x).dtype)
    return dtype


def _id_map(fun: Callable[..., Any], pieces: list[Any], fill: bool) -> Any:
    """A pure rearrangement of ``pieces`` done by NumPy itself on element ids: ``fun`` run on
    arrays of ids gives, for each output element, the element it comes from (id -1, where
    ``fill``, a zero). The result gathers from the pieces flattened and joined."""
    sizes = [int(numpy.prod(_shape(x))) for x in pieces]
    starts = numpy.cumsum([1 if fill else 0] + sizes[:-1])
    ids = [numpy.arange(n).reshape(_shape(x)) + s for x, n, s in zip(pieces, sizes, starts)]
    where = numpy.asarray(fun(*ids)) - (1 if fill else 0)
    flat = [numpy.ravel(x) for x in pieces]
    if fill:
        dtype = numpy.result_type(*[_dtype_of(x) for x in pieces])
        flat = flat + [const_like(numpy.zeros(1, dtype=dtype), *pieces)]
        where = numpy.where(where < 0, sum(sizes), where)
    joined = numpy.concatenate(flat) if len(flat) > 1 else flat[0]
    return numpy.take(joined, where)


@_composite(numpy.insert)
def _insert(arr: Any, obj: Any, values: Any, axis: Any = None) -> Any:
    # NumPy's own insert on ids decides every case of obj, values and axis; values take arr's
    # dtype, as in NumPy
    arr = _arrayish(arr)
    dtype = _dtype_of(arr)
    values = values.astype(dtype) if hasattr(values, "_prim") else numpy.asarray(values, dtype)
    return _id_map(lambda a, v: numpy.insert(a, obj, v, axis=axis), [arr, values], False)


@_composite(numpy.diagflat)
def _diagflat(v: Any, k: int = 0) -> Any:
    return _id_map(lambda ids: numpy.diagflat(ids, k), [v], True)


# ---------------------------------------------------------------------------------------------
# Sampling, differences, interpolation, convolution
# ---------------------------------------------------------------------------------------------


def _weak(x: Any) -> Any:
    """What NumPy's promotion sees: a Python number stays weak (NEP 50), the rest its dtype."""
    return x if type(x) in (int, float, complex) else _dtype_of(x)


@_composite(numpy.linspace)
def _linspace(
    start: Any,
    stop: Any,
    num: int = 50,
    endpoint: bool = True,
    retstep: bool = False,
    dtype: Any = None,
    axis: int = 0,
    *,
    device: Any = None,
) -> Any:
    # NumPy's own steps, on tensors: delta = stop - start in the result dtype,
    # y = arange(num) * (delta / div) + start (or arange(num) / div * delta where a step is 0,
    # NumPy's care for denormals), the last sample set to stop when endpoint
    num = operator.index(num)
    if num < 0:
        raise ValueError(f"numpy.linspace: number of samples, {num}, must be non-negative.")
    if device not in (None, "cpu"):
        raise TypeError(f"numpy.linspace: device={device!r} is not supported on chainrule tensors")
    div = (num - 1) if endpoint else num
    dt = numpy.result_type(_weak(start), _weak(stop))
    if dt.kind not in "fc":
        dt = numpy.result_type(dt, 0.0)
    start, stop = (
        v if type(v) in (int, float, complex) or _dtype_of(v) == dt else _arrayish(v).astype(dt)
        for v in (start, stop)
    )
    delta = stop - start
    nd = _ndim(delta)
    y: Any = const_like(numpy.arange(0, num, dtype=dt).reshape((-1,) + (1,) * nd), delta)
    step: Any
    if div > 0:
        step = delta / div
        # any(step == 0), spelled with operations that jit's Numba backend compiles
        zero = numpy.max(numpy.where(step == 0, 1.0, 0.0)) > 0
        y = numpy.where(zero, y / div * delta, y * step)
    else:
        step = numpy.nan
        y = y * delta
    y = y + start
    if endpoint and num > 1:
        last = stop if hasattr(stop, "_prim") else numpy.asarray(stop, dtype=dt)
        last = numpy.broadcast_to(last, _shape(y)[1:])
        y = numpy.concatenate([y[:-1], numpy.reshape(last, (1,) + _shape(y)[1:])], axis=0)
    if axis != 0:
        y = numpy.moveaxis(y, 0, axis)
    if dtype is not None:
        if numpy.issubdtype(dtype, numpy.integer):
            y = numpy.floor(y)
        y = y.astype(dtype)
    return (y, step) if retstep else y


@_composite(numpy.gradient)
def _gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    # NumPy's formulas for uniform spacing: second-order central differences inside,
    # one-sided differences of the given order at the edges
    nd = _ndim(f)
    axes = (
        list(range(nd))
        if axis is None
        else [_one_axis(a, nd, "gradient") for a in ((axis,) if isinstance(axis, int) else axis)]
    )
    if len(varargs) == 0:
        dxs = [1.0] * len(axes)
    elif len(varargs) == 1 and _ndim(varargs[0]) == 0:
        dxs = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes) and all(_ndim(d) == 0 for d in varargs):
        dxs = list(varargs)
    else:
        raise TypeError(
            "numpy.gradient: chainrule tensors take scalar spacings only (one, or one per "
            "axis); for coordinates, differentiate numpy.diff(f) / numpy.diff(x) instead"
        )
    if edge_order not in (1, 2):
        raise ValueError("numpy.gradient: 'edge_order' greater than 2 not supported")
    outs = []
    for ax, dx in zip(axes, dxs):
        n = _shape(f)[ax]
        if n < edge_order + 1:
            raise ValueError(
                "numpy.gradient: shape of array too small to calculate a numerical gradient, "
                "at least (edge_order + 1) elements are required."
            )

        def at(sl: Any, ax: int = ax) -> Any:
            return f[(slice(None),) * ax + (sl,)]

        inner = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * dx)
        if edge_order == 1:
            first = (at(slice(1, 2)) - at(slice(0, 1))) / dx
            last = (at(slice(-1, None)) - at(slice(-2, -1))) / dx
        else:
            first = (
                (-1.5 / dx) * at(slice(0, 1))
                + (2.0 / dx) * at(slice(1, 2))
                + (-0.5 / dx) * at(slice(2, 3))
            )
            last = (
                (0.5 / dx) * at(slice(-3, -2))
                + (-2.0 / dx) * at(slice(-2, -1))
                + (1.5 / dx) * at(slice(-1, None))
            )
        outs.append(numpy.concatenate([first, inner, last], axis=ax))
    return outs[0] if len(outs) == 1 else tuple(outs)


def _float64(x: Any) -> Any:
    """``x`` as float64, as NumPy's compiled functions take it (a tensor through astype)."""
    x = _arrayish(x)
    if _dtype_of(x).kind == "c":
        raise TypeError("complex values are not supported on chainrule tensors")
    return x if _dtype_of(x) == numpy.float64 else x.astype(numpy.float64)


def _take(a: Any, j: Any) -> Any:
    """``numpy.take(a, j)`` of a 1-d ``a``; a computed (traced) ``j`` stays an input even when
    ``a`` is a plain array (numpy.take dispatches on ``a`` alone)."""
    if hasattr(j, "_prim") and not hasattr(a, "_prim"):
        return gather(a, j, template=(Slot(0),))
    return numpy.take(a, j)


@_composite(numpy.interp)
def _interp(
    x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None, period: Any = None
) -> Any:
    # NumPy's compiled interp, case by case, in traced operations only (jit and vmap follow
    # new x, xp and fp): NaN x gives x (with one knot: fp[0]); below xp[0] left (fp[0]), above
    # xp[-1] right (fp[-1]); at xp[-1] fp[-1]; at a knot xp[j] fp[j]; else
    # slope * (x - xp[j]) + fp[j] with xp[j] <= x < xp[j+1], and where that is NaN (infinite
    # fp) the same from xp[j+1], then fp[j] if fp[j] == fp[j+1]. Differentiable in x and fp
    # (and left/right); xp is a constant.
    if hasattr(xp, "_prim") and xp.requires_grad:
        raise TypeError(
            "numpy.interp: the gradient with respect to xp is not supported (pass xp detached)"
        )
    try:
        x, xp, fp = _float64(x), _float64(xp), _float64(fp)
        if on_host(getattr(xp, "_data", xp)):  # a host list or array of knots joins x's library
            xp = const_like(xp, x, fp)
    except TypeError:
        raise TypeError(
            "numpy.interp: complex values are not supported on chainrule tensors"
        ) from None
    if _ndim(xp) != 1 or _ndim(fp) != 1:
        raise ValueError("numpy.interp: data points must be 1D sequences")
    m = _shape(xp)[0]
    if m == 0:
        raise ValueError("numpy.interp: array of sample points is empty")
    if _shape(fp)[0] != m:
        raise ValueError("numpy.interp: fp and xp are not of the same length.")
    if period is not None:
        # NumPy's periodic form: everything modulo period, xp sorted, one knot added each side
        if period == 0:
            raise ValueError("numpy.interp: period must be a non-zero value")
        period = abs(period)
        left = right = None
        x, xp = x % period, xp % period
        order = numpy.argsort(xp)
        xp, fp = _take(xp, order), _take(fp, order)
        xp = numpy.concatenate([xp[-1:] - period, xp, xp[0:1] + period])
        fp = numpy.concatenate([fp[-1:], fp, fp[0:1]])
        m += 2
    if m == 1:
        y = numpy.broadcast_to(fp[0], _shape(x))
    else:
        j = numpy.clip(numpy.searchsorted(xp, x, side="right") - 1, 0, m - 2)
        x0, x1 = _take(xp, j), _take(xp, j + 1)
        f0, f1 = _take(fp, j), _take(fp, j + 1)
        # x1 == x0 only where j was clipped (x outside [xp[0], xp[-1]): replaced below)
        dx = x1 - x0
        slope = (f1 - f0) / numpy.where(dx == 0, 1.0, dx)
        y = slope * (x - x0) + f0
        back = slope * (x - x1) + f1
        back = numpy.where(numpy.isnan(back) & (f0 == f1), f0, back)
        y = numpy.where(numpy.isnan(y), back, y)
        y = numpy.where(x == x0, f0, y)
        y = numpy.where(x == xp[-1], fp[-1], y)
    low = fp[0] if left is None else _float64(left)
    high = fp[-1] if right is None else _float64(right)
    y = numpy.where(x < xp[0], low, y)
    y = numpy.where(x > xp[-1], high, y)
    # NumPy's one-knot branch has no NaN case: NaN x gives fp[0] there
    return y if m == 1 else numpy.where(numpy.isnan(x), x, y)


_MODES = {"valid": 0, "same": 1, "full": 2}


def _conv_mode(mode: Any) -> int:
    """NumPy's mode: 'valid', 'same', 'full' or 0, 1, 2."""
    if isinstance(mode, str):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")
        return _MODES[mode]
    if isinstance(mode, (bool, numpy.bool_)):
        raise TypeError("convolve/correlate mode not understood")
    k = operator.index(mode)
    if k not in (0, 1, 2):
        raise ValueError("integer convolve/correlate mode must be 0, 1, or 2")
    return k


def _conv_inputs(a: Any, v: Any, fname: str, ndmin: bool) -> tuple[Any, Any]:
    a, v = _arrayish(a), _arrayish(v)
    if ndmin:  # convolve takes numbers as 1-element sequences
        a, v = (numpy.reshape(x, (1,)) if _ndim(x) == 0 else x for x in (a, v))
    for x in (a, v):
        if _ndim(x) != 1:
            raise ValueError(
                f"numpy.{fname}: object too {'deep' if _ndim(x) > 1 else 'small'} for desired "
                "array (1-d sequences only)"
            )
        if _shape(x)[0] == 0:
            raise ValueError(f"numpy.{fname}: inputs cannot be empty")
    return a, v


_MODE_NAMES = ("valid", "same", "full")


def _conj_if_complex(x: Any) -> Any:
    return numpy.conjugate(x) if _dtype_of(x).kind == "c" else x


@_composite(numpy.correlate)
def _correlate(a: Any, v: Any, mode: Any = "valid") -> Any:
    name = _MODE_NAMES[_conv_mode(mode)]
    a, v = _conv_inputs(a, v, "correlate", False)
    if _shape(a)[0] >= _shape(v)[0]:
        return correlate(a, v, mode=name)
    # NumPy swaps the arguments when v is the longer one: c_av[k] = conj(c_va[-k])
    return _conj_if_complex(numpy.flip(correlate(v, a, mode=name)))


@_composite(numpy.convolve)
def _convolve(a: Any, v: Any, mode: Any = "full") -> Any:
    # NumPy: the longer one first, then the correlation with the other reversed (no conjugate;
    # the primitive conjugates its second argument, so a complex kernel is conjugated first)
    name = _MODE_NAMES[_conv_mode(mode)]
    a, v = _conv_inputs(a, v, "convolve", True)
    if _shape(v)[0] > _shape(a)[0]:
        a, v = v, a
    return correlate(a, _conj_if_complex(numpy.flip(v)), mode=name)


# --- numpy.fft: the Hermitian transforms and the shifts, as NumPy defines them ------------------

_SWAP_NORM: dict[Any, Literal["backward", "ortho", "forward"]] = {
    None: "forward",
    "backward": "forward",
    "ortho": "ortho",
    "forward": "backward",
}


def _swapped(norm: Any, fname: str) -> Literal["backward", "ortho", "forward"]:
    if norm not in _SWAP_NORM:
        raise ValueError(
            f"numpy.fft.{fname}: norm must be 'backward', 'ortho', 'forward' or None, got {norm!r}"
        )
    return _SWAP_NORM[norm]


@_composite(numpy.fft.hfft)
def _hfft(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
    _no_out("fft.hfft", out)
    if n is None:
        n = 2 * (_shape(a)[_one_axis(axis, _ndim(a), "fft.hfft")] - 1)
    return numpy.fft.irfft(numpy.conj(a), n, axis, norm=_swapped(norm, "hfft"))


@_composite(numpy.fft.ihfft)
def _ihfft(a: Any, n: Any = None, axis: int = -1, norm: Any = None, out: Any = None) -> Any:
    _no_out("fft.ihfft", out)
    return numpy.conj(numpy.fft.rfft(a, n, axis, norm=_swapped(norm, "ihfft")))


def _shift(x: Any, axes: Any, sign: int, fname: str) -> Any:
    nd = _ndim(x)
    if axes is None:
        axes = tuple(range(nd))
    elif isinstance(axes, int):
        axes = (axes,)
    axes = tuple(_one_axis(ax, nd, f"fft.{fname}") for ax in axes)
    shape = _shape(x)
    return numpy.roll(x, tuple(sign * (shape[ax] // 2) for ax in axes), axes)


@_composite(numpy.fft.fftshift)
def _fftshift(x: Any, axes: Any = None) -> Any:
    return _shift(x, axes, 1, "fftshift")


@_composite(numpy.fft.ifftshift)
def _ifftshift(x: Any, axes: Any = None) -> Any:
    return _shift(x, axes, -1, "ifftshift")


_MATRIX_ORDS = (2, -2, "nuc", 1, -1, numpy.inf, -numpy.inf)


@_composite(numpy.linalg.norm)
def _linalg_norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    nd = _ndim(x)
    matrix = (axis is None and nd == 2 and ord is not None) or (
        isinstance(axis, (tuple, list)) and len(axis) == 2
    )
    if not (matrix and ord in _MATRIX_ORDS and ord is not None):
        prim, args, params = _norm(x, ord, axis, keepdims)
        return prim(*args, **params)
    # NumPy's matrix norms, from the singular values or from column and row sums of |x|
    if nd < 2:
        raise ValueError("numpy.linalg.norm: a matrix norm needs a 2-d input")
    r, c = (_one_axis(a, nd, "linalg.norm") for a in (axis or (-2, -1)))
    if r == c:
        raise ValueError("numpy.linalg.norm: duplicate axes given")
    if ord in (2, -2, "nuc"):
        s = numpy.linalg.svd(numpy.moveaxis(x, (r, c), (-2, -1)), compute_uv=False)
        out = (
            numpy.sum(s, axis=-1)
            if ord == "nuc"
            else (numpy.max(s, axis=-1) if ord == 2 else numpy.min(s, axis=-1))
        )
    else:
        inner, outer = (r, c) if ord in (1, -1) else (c, r)
        sums = numpy.sum(numpy.abs(x), axis=inner)
        outer -= 1 if outer > inner else 0
        out = numpy.max(sums, axis=outer) if ord > 0 else numpy.min(sums, axis=outer)
    if keepdims:
        out = numpy.expand_dims(out, tuple(sorted((r, c))))
    return out


@_composite(numpy.linalg.cond)
def _cond(x: Any, p: Any = None) -> Any:
    # NumPy's own steps: the ratio of extreme singular values for p in (None, 2, -2), else
    # norm(x) * norm(inv(x)) (a singular matrix then raises LinAlgError where NumPy returns inf)
    if _ndim(x) < 2:
        raise numpy.linalg.LinAlgError(
            f"numpy.linalg.cond: needs a matrix or a stack of them, got shape {_shape(x)}"
        )
    if p is None or p == 2 or p == -2:
        s = numpy.linalg.svd(x, compute_uv=False)
        return s[..., -1] / s[..., 0] if p == -2 else s[..., 0] / s[..., -1]
    _square_stack(x, "cond")
    inv = numpy.linalg.inv(x)
    return numpy.linalg.norm(x, p, axis=(-2, -1)) * numpy.linalg.norm(inv, p, axis=(-2, -1))
