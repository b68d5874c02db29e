"""More NumPy functions as compositions of primitives: NumPy 2's array-API names
(``matrix_transpose``, ``vecdot``, ``linalg.trace``, ``cumulative_sum``, ``unstack``, ...), the
polynomial helpers (``vander``, ``polyder``, ``polymul``, ``roots``, ...) and everyday ones
(``block``, ``resize``, ``compress``, ``choose``, ``apply_along_axis``, ``modf``, ...).

Each follows NumPy's definition step by step on tensors, so values are NumPy's and gradients
come from the primitives' rules (no rule here). Importing the module registers them in
:data:`chainrule.engine.composites.COMPOSITES`.

Example
-------
>>> import numpy, chainrule as cr
>>> cr.grad(lambda p: numpy.polyval(numpy.polyder(p), 2.0))(numpy.array([1.0, 0.0, 0.0]))
array([4., 1., 0.])
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy

from .composites import WHEN_DIFFERENTIATED, _composite, _reduced_first
from .primitives import (
    UFUNC_METHODS,
    _ndim,
    _NoValue,
    _one_axis,
    _shape,
    const_like,
    host_copy,
    logsumexp,
    lstsq_x,
    scatter_add,
)

__all__: list[str] = []


def _values(x: Any) -> numpy.ndarray:
    """The values of an index-like argument (a mask, integer choices, exponents) on the host: a
    tensor's values without its gradient (a traced one raises: the result would depend on them)."""
    if hasattr(x, "_concrete"):
        x = x._concrete("reading the values of a mask, an index or polynomial coefficients")
    return numpy.asarray(host_copy(x))


# --- NumPy 2's array-API names ------------------------------------------------------------------


def _matrix_transpose(x: Any) -> Any:
    if _ndim(x) < 2:
        raise ValueError(f"matrix_transpose: needs at least 2 dimensions, got shape {_shape(x)}")
    return numpy.swapaxes(x, -1, -2)


_composite(numpy.matrix_transpose)(_matrix_transpose)
_composite(numpy.linalg.matrix_transpose)(lambda x: _matrix_transpose(x))


@_composite(numpy.vecdot, numpy.linalg.vecdot)
def _vecdot(x1: Any, x2: Any, /, *, axis: int = -1, **kw: Any) -> Any:
    if kw:
        raise TypeError(f"vecdot: {sorted(kw)} are not supported on chainrule tensors")
    return numpy.sum(numpy.conjugate(x1) * x2, axis=axis)


@_composite(numpy.linalg.outer)
def _linalg_outer(x1: Any, x2: Any, /) -> Any:
    if _ndim(x1) != 1 or _ndim(x2) != 1:
        raise ValueError(
            f"numpy.linalg.outer: needs two vectors, got shapes {_shape(x1)} and {_shape(x2)}"
        )
    return numpy.outer(x1, x2)


_composite(numpy.linalg.matmul)(lambda x1, x2, /: numpy.matmul(x1, x2))
_composite(numpy.linalg.tensordot)(lambda x1, x2, /, *, axes=2: numpy.tensordot(x1, x2, axes))
_composite(numpy.linalg.cross)(lambda x1, x2, /, *, axis=-1: numpy.cross(x1, x2, axis=axis))


@_composite(numpy.linalg.trace)
def _linalg_trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    return numpy.trace(x, offset=offset, axis1=-2, axis2=-1, dtype=dtype)


@_composite(numpy.linalg.diagonal)
def _linalg_diagonal(x: Any, /, *, offset: int = 0) -> Any:
    return numpy.diagonal(x, offset=offset, axis1=-2, axis2=-1)


@_composite(numpy.unstack)
def _unstack(x: Any, /, *, axis: int = 0) -> tuple[Any, ...]:
    moved = numpy.moveaxis(x, axis, 0)
    return tuple(moved[i] for i in range(_shape(moved)[0]))


def _cumulative(cum: Any, initial: float) -> Any:
    def run(
        x: Any, /, *, axis: Any = None, dtype: Any = None, out: Any = None,
        include_initial: bool = False,
    ) -> Any:  # fmt: skip
        if out is not None:
            raise TypeError(f"numpy.{cum.__name__}: out= is not supported with chainrule tensors")
        if axis is None:
            if _ndim(x) > 1:
                raise ValueError(
                    f"numpy.{cum.__name__}: axis must be given for a {_ndim(x)}-d array"
                )
            axis = 0
        y = cum(x, axis=axis, dtype=dtype)
        if include_initial:
            shape = list(_shape(y))
            shape[axis] = 1
            y = numpy.concatenate([const_like(numpy.full(shape, initial, y.dtype), y), y], axis)
        return y

    run.__name__ = cum.__name__
    return run


_composite(numpy.cumulative_sum)(_cumulative(numpy.cumsum, 0.0))
_composite(numpy.cumulative_prod)(_cumulative(numpy.cumprod, 1.0))
_composite(numpy.astype)(lambda x, dtype, /, *, copy=True, device=None: x.astype(dtype))

# --- everyday functions ------------------------------------------------------------------------

_composite(numpy.fix)(lambda x, out=None: numpy.trunc(x))  # fix(x) is trunc(x), NaN and -0 too


@_composite(numpy.nancumsum)
def _nancumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    return numpy.cumsum(numpy.where(numpy.isnan(a), 0, a), axis=axis, dtype=dtype)


@_composite(numpy.nancumprod)
def _nancumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    return numpy.cumprod(numpy.where(numpy.isnan(a), 1, a), axis=axis, dtype=dtype)


@_composite(numpy.logspace)
def _logspace(
    start: Any, stop: Any, num: int = 50, endpoint: bool = True, base: Any = 10.0,
    dtype: Any = None, axis: int = 0,
) -> Any:  # fmt: skip
    y = numpy.linspace(start, stop, num=num, endpoint=endpoint, axis=axis)
    base = numpy.expand_dims(base, axis=axis) if _ndim(base) else base
    out = numpy.power(base, y)
    return out if dtype is None else out.astype(dtype)


@_composite(numpy.block)
def _block(arrays: Any) -> Any:
    def depth(a: Any) -> int:
        return 1 + depth(a[0]) if isinstance(a, list) and a else 0

    d = depth(arrays)
    leaves = []

    def collect(a: Any) -> None:
        if isinstance(a, list):
            for b in a:
                collect(b)
        elif isinstance(a, tuple):
            raise TypeError("numpy.block: tuples are not lists; use a list of lists")
        else:
            leaves.append(a)

    collect(arrays)
    nd = max([d] + [_ndim(a) for a in leaves])

    def build(a: Any, level: int) -> Any:
        if not isinstance(a, list):
            return numpy.reshape(a, (1,) * (nd - _ndim(a)) + _shape(a))
        return numpy.concatenate([build(b, level + 1) for b in a], axis=level - d)

    return build(arrays, 0)


@_composite(numpy.resize)
def _resize(a: Any, new_shape: Any) -> Any:
    shape = (new_shape,) if isinstance(new_shape, int) else tuple(new_shape)
    flat = numpy.ravel(a)
    size = int(numpy.prod(shape))
    n = int(numpy.size(flat))
    if n == 0 or size == 0:
        return numpy.reshape(numpy.zeros_like(flat, shape=(size,)), shape)
    repeats = -(-size // n)
    return numpy.reshape(numpy.concatenate([flat] * repeats)[:size], shape)


def _mask(condition: Any, fname: str) -> numpy.ndarray:
    c = _values(condition)
    if c.ndim != 1:
        raise ValueError(f"numpy.{fname}: condition must be a 1-d array")
    return numpy.nonzero(c)[0]


@_composite(numpy.compress)
def _compress(condition: Any, a: Any, axis: Any = None, out: Any = None) -> Any:
    idx = _mask(condition, "compress")
    if axis is None:
        return numpy.ravel(a)[idx]
    return numpy.take(a, idx, axis=axis)


@_composite(numpy.extract)
def _extract(condition: Any, arr: Any) -> Any:
    idx = numpy.nonzero(numpy.ravel(_values(condition)))[0]
    return numpy.ravel(arr)[idx]


@_composite(numpy.choose)
def _choose(a: Any, choices: Any, out: Any = None, mode: str = "raise") -> Any:
    index = _values(a)
    n = len(choices)
    if mode == "wrap":
        index = index % n
    elif mode == "clip":
        index = numpy.clip(index, 0, n - 1)
    elif ((index < 0) | (index >= n)).any():
        raise ValueError("invalid entry in choice array")
    shape = numpy.broadcast_shapes(index.shape, *(_shape(c) for c in choices))
    stacked = numpy.stack([numpy.broadcast_to(c, shape) for c in choices])
    index = numpy.broadcast_to(index, shape)[None]
    return numpy.take_along_axis(stacked, index, axis=0)[0]


@_composite(numpy.modf)
def _modf(x: Any, out: Any = None) -> tuple[Any, Any]:
    whole = numpy.trunc(x)
    # x - trunc(x) is exact; at +-inf NumPy's fractional part is a signed zero
    frac = numpy.where(numpy.isinf(x), numpy.copysign(0.0, x), x - whole)
    return frac, whole


@_composite(numpy.divmod)
def _divmod(x1: Any, x2: Any, out: Any = None) -> tuple[Any, Any]:
    return numpy.floor_divide(x1, x2), numpy.remainder(x1, x2)


@_composite(numpy.ldexp)
def _ldexp(x1: Any, x2: Any, out: Any = None) -> Any:
    scale = numpy.exp2(_values(x2).astype(float))  # an exact power of two
    dtype = numpy.result_type(x1.dtype if hasattr(x1, "dtype") else numpy.asarray(x1).dtype,
                              numpy.float16)  # fmt: skip
    return x1 * const_like(scale.astype(dtype), x1)


@_composite(numpy.apply_along_axis)
def _apply_along_axis(func1d: Any, axis: int, arr: Any, *args: Any, **kwargs: Any) -> Any:
    nd = _ndim(arr)
    if not -nd <= axis < nd:
        raise numpy.exceptions.AxisError(axis, nd)
    axis %= nd
    moved = numpy.moveaxis(arr, axis, -1)
    outer = _shape(moved)[:-1]
    results = [func1d(moved[idx], *args, **kwargs) for idx in itertools.product(*map(range, outer))]
    if not results:
        raise ValueError("numpy.apply_along_axis: cannot apply to 0-sized slices")
    res = numpy.stack(results)
    rnd = _ndim(res) - 1
    res = numpy.reshape(res, outer + _shape(res)[1:])
    # the function's output dimensions go where the axis was (NumPy's layout)
    order = list(range(axis)) + list(range(len(outer), len(outer) + rnd))
    order += list(range(axis, len(outer)))
    return numpy.transpose(res, order)


# --- polynomials (coefficients highest power first, as numpy.polyval) ---------------------------


def _poly1d(p: Any, fname: str) -> Any:
    if isinstance(p, numpy.poly1d):
        raise TypeError(f"numpy.{fname}: give the coefficients as an array, not a numpy.poly1d")
    if _ndim(p) != 1:
        raise ValueError(f"numpy.{fname}: needs a 1-d array of coefficients, got {_shape(p)}")
    return p


@_composite(numpy.vander)
def _vander(x: Any, N: Any = None, increasing: bool = False) -> Any:  # noqa: N803 (NumPy's)
    if _ndim(x) != 1:
        raise ValueError("x must be a one-dimensional array or sequence.")
    n = _shape(x)[0] if N is None else int(N)
    ones = numpy.ones_like(x, shape=(_shape(x)[0], min(n, 1)))
    if n <= 1:
        return ones
    # NumPy's columns are running products of x (multiply.accumulate), bit for bit
    powers = numpy.cumprod(numpy.broadcast_to(x[:, None], (_shape(x)[0], n - 1)), axis=1)
    out = numpy.concatenate([ones, powers], axis=1)
    return out if increasing else out[:, ::-1]


@_composite(numpy.polyder)
def _polyder(p: Any, m: int = 1) -> Any:
    p = _poly1d(p, "polyder")
    if m < 0:
        raise ValueError("Order of derivative must be positive (see polyint)")
    for _ in range(m):
        n = _shape(p)[0] - 1
        p = p[:-1] * numpy.arange(n, 0, -1)
    return p


@_composite(numpy.polyint)
def _polyint(p: Any, m: int = 1, k: Any = None) -> Any:
    p = _poly1d(p, "polyint")
    if m < 0:
        raise ValueError("Order of integral must be positive (see polyder)")
    ks = numpy.zeros(m) if k is None else k
    if _ndim(ks) == 0:
        ks = numpy.broadcast_to(ks, (m,))
    if _shape(ks)[0] < m:
        raise ValueError("k must be a scalar or a rank-1 array of length 1 or >m.")
    for i in range(m):
        p = numpy.concatenate([p / numpy.arange(_shape(p)[0], 0, -1), numpy.reshape(ks[i], (1,))])
    return p


def _padded(a1: Any, a2: Any, fname: str) -> tuple[Any, Any]:
    a1, a2 = _poly1d(numpy.atleast_1d(a1), fname), _poly1d(numpy.atleast_1d(a2), fname)
    diff = _shape(a2)[0] - _shape(a1)[0]
    if diff > 0:
        a1 = numpy.concatenate([numpy.zeros(diff), a1])
    elif diff < 0:
        a2 = numpy.concatenate([numpy.zeros(-diff), a2])
    return a1, a2


_composite(numpy.polyadd)(lambda a1, a2: numpy.add(*_padded(a1, a2, "polyadd")))
_composite(numpy.polysub)(lambda a1, a2: numpy.subtract(*_padded(a1, a2, "polysub")))
_composite(numpy.polymul)(lambda a1, a2: numpy.convolve(a1, a2))


@_composite(numpy.poly)
def _poly(seq_of_zeros: Any) -> Any:
    z = seq_of_zeros
    if _ndim(z) == 2 and _shape(z)[0] == _shape(z)[1] and _shape(z)[0] != 0:
        z = numpy.linalg.eigvals(z)  # the characteristic polynomial of a square matrix
    elif _ndim(z) != 1:
        raise ValueError("input must be 1d or non-empty square 2d array.")
    a = numpy.ones_like(z[:1])  # on z's device, of its dtype (NumPy: ones((1,), dtype=z.dtype))
    for k in range(_shape(z)[0]):
        a = numpy.convolve(a, numpy.stack([numpy.ones_like(z[k]), -z[k]]))
    if numpy.iscomplexobj(a):
        values = _values(z)
        pos = numpy.sort(values[values.imag > 0])
        neg = numpy.sort(numpy.conjugate(values[values.imag < 0]))
        if len(pos) == len(neg) and numpy.all(neg == pos):  # conjugate pairs: a real polynomial
            a = numpy.real(a)
    return a


@_composite(numpy.roots)
def _roots(p: Any) -> Any:
    p = _poly1d(numpy.atleast_1d(p), "roots")
    nonzero = numpy.nonzero(_values(p))[0]
    if len(nonzero) == 0:
        return numpy.array([])
    trailing = _shape(p)[0] - int(nonzero[-1]) - 1
    p = p[int(nonzero[0]) : int(nonzero[-1]) + 1]
    n = _shape(p)[0]
    if n > 1:
        # the companion matrix: first row -p[1:] / p[0], ones below the diagonal
        below = numpy.eye(n - 2, n - 1) if n > 2 else numpy.zeros((0, n - 1))
        companion = numpy.concatenate([(-p[1:] / p[0])[None, :], const_like(below, p)], axis=0)
        found = numpy.linalg.eigvals(companion)
    else:
        found = numpy.zeros(0)
    if trailing:
        found = numpy.concatenate([found, numpy.zeros(trailing, found.dtype)])
    return found


# --- weighted counts ----------------------------------------------------------------------------


def _bincount(x: Any, /, weights: Any = None, minlength: int = 0) -> Any:
    """``numpy.bincount`` with weights that require grad: the weights added into zeros at the
    counted values (NumPy's own sums: in float64, one after the other, in order)."""
    xs = _values(x)
    n = len(numpy.bincount(xs, minlength=minlength))  # NumPy's checks, and the length
    if _shape(weights) != xs.shape:
        raise ValueError(
            f"numpy.bincount: weights of shape {_shape(weights)} for {xs.shape} values; "
            "they must have the same shape"
        )
    return scatter_add(weights.astype(numpy.float64), xs.astype(numpy.intp), (n,), False)


def _histogram(*args: Any, **kwargs: Any) -> Any:
    raise TypeError(
        "numpy.histogram: chainrule gives no gradient through histogram's weights. Write "
        "the weighted counts as numpy.bincount(idx, weights=w, minlength=len(edges) - 1), with "
        "edges from numpy.histogram_bin_edges and idx = numpy.searchsorted(edges, a, "
        "side='right') - 1 (the last edge closes the last bin) for the values in the range"
    )


WHEN_DIFFERENTIATED[numpy.bincount] = _bincount
WHEN_DIFFERENTIATED[numpy.histogram] = _histogram


# --- piecewise ----------------------------------------------------------------------------------


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "_prim")


@_composite(numpy.piecewise)
def _piecewise(x: Any, condlist: Any, funclist: Any, *args: Any, **kw: Any) -> Any:
    """``numpy.piecewise``: NumPy's own steps (each function called on the values its condition
    selects, ``y[cond] = f(x[cond])``, later conditions overwriting earlier ones, an extra
    function for where no condition holds). Conditions computed inside ``jit`` or ``vmap``
    (traced) select with ``numpy.where`` instead, each function applied to the whole array:
    the same values where the functions work elementwise."""
    n2 = len(funclist)
    if numpy.isscalar(condlist) or (
        not isinstance(condlist[0], (list, numpy.ndarray)) and not _is_tensor(condlist[0])
        and _ndim(x) != 0
    ):  # fmt: skip
        condlist = [condlist]
    conds = [c.astype(bool) if _is_tensor(c) else numpy.asarray(c, dtype=bool) for c in condlist]
    if len(conds) == n2 - 1:  # the "otherwise" condition
        anyone = conds[0]
        for c in conds[1:]:
            anyone = anyone | c
        conds.append(~anyone)
    elif len(conds) != n2:
        raise ValueError(
            f"with {len(conds)} condition(s), either {len(conds)} or {len(conds) + 1} "
            "functions are expected"
        )
    shape = _shape(x)
    for c in conds:
        if _shape(c) != shape:
            raise ValueError(
                f"numpy.piecewise: a condition of shape {_shape(c)} for x of shape {shape}"
            )
    y = numpy.zeros_like(x)
    if not any(_is_tensor(c) for c in conds):
        for cond, func in zip(conds, funclist):
            if not callable(func):
                y[cond] = func
            else:
                vals = x[cond]
                if _shape(vals) != (0,):
                    y[cond] = func(vals, *args, **kw)
        return y
    dtype = numpy.dtype(_dtype(x))
    for i, (cond, func) in enumerate(zip(conds, funclist)):
        val = func(x, *args, **kw) if callable(func) else func
        try:
            numpy.broadcast_shapes(_shape(val), shape)
        except ValueError:
            raise TypeError(
                f"numpy.piecewise with conditions computed inside chainrule.jit or vmap applies "
                f"each function to the whole array: funclist[{i}] returned shape "
                f"{_shape(val)} for x of shape {shape}; give elementwise functions"
            ) from None
        y = numpy.where(cond, val, y)
        if numpy.dtype(_dtype(y)) != dtype:
            y = y.astype(dtype)
    return y


def _dtype(x: Any) -> Any:
    return (x._data if _is_tensor(x) else numpy.asarray(x)).dtype


# --- writes into an array: put, put_along_axis, copyto, fill_diagonal ---------------------------


def _into_tensor(a: Any, values: tuple[Any, ...], fname: str) -> bool:
    """Whether the write goes into a tensor (recorded, as ``t[index] = v``); into a plain array
    it is NumPy's own, refused where a value requires grad (its gradient would be lost)."""
    if _is_tensor(a):
        return True
    if any(getattr(v, "requires_grad", False) for v in values):
        raise TypeError(
            f"numpy.{fname} into a plain NumPy array with a value that requires grad: NumPy "
            "would keep only the values and the gradient through them would be lost. Make "
            "the array a tensor (chainrule.tensor(numpy.zeros(...))), whose writes are recorded"
        )
    return False


def _cycled(v: Any, n: int) -> Any:
    """``v`` flattened and repeated (or cut) to ``n`` values, as NumPy's flat writes take it."""
    flat = numpy.ravel(v) if _is_tensor(v) else numpy.ravel(numpy.asarray(v))
    return numpy.resize(flat, (n,))


@_composite(numpy.put)
def _put(a: Any, ind: Any, v: Any, mode: str = "raise") -> None:
    """``numpy.put(t, ind, v)``: ``t``'s flat positions ``ind`` set to ``v`` (repeated as
    needed), recorded as ``t[numpy.unravel_index(ind, t.shape)] = v``."""
    if not _into_tensor(a, (v,), "put"):
        numpy.put(a, _values(ind), _values(v), mode=mode)  # type: ignore[arg-type]
        return
    size = int(numpy.prod(_shape(a)))
    idx = numpy.ravel(_values(ind)).astype(numpy.intp)
    if mode == "wrap":
        idx = idx % size if size else idx
    elif mode == "clip":
        idx = numpy.clip(idx, 0, size - 1)
    elif mode == "raise":
        if numpy.any((idx < -size) | (idx >= size)):
            bad = idx[(idx < -size) | (idx >= size)][0]
            raise IndexError(f"index {bad} is out of bounds for axis 0 with size {size}")
        idx = idx % size if size else idx
    else:
        raise ValueError(
            f"numpy.put: clipmode must be one of 'clip', 'raise', or 'wrap' ({mode!r})"
        )
    if idx.size:
        a[numpy.unravel_index(idx, _shape(a))] = _cycled(v, idx.size)


@_composite(numpy.put_along_axis)
def _put_along_axis(arr: Any, indices: Any, values: Any, axis: Any) -> None:
    """``numpy.put_along_axis(t, indices, values, axis)``, recorded as ``t[index] = values``
    with the full index that ``take_along_axis`` would read."""
    if not _into_tensor(arr, (values,), "put_along_axis"):
        numpy.put_along_axis(arr, _values(indices), _values(values), axis)
        return
    idx = _values(indices)
    if idx.dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    shape = _shape(arr)
    if axis is None:
        if idx.ndim != 1:
            raise ValueError(
                f"when axis=None, `indices` must have a single dimension, not {idx.ndim}"
            )
        size = int(numpy.prod(shape))
        arr[numpy.unravel_index(idx % size if size else idx, shape)] = values
        return
    nd = len(shape)
    ax = _one_axis(axis, nd, "put_along_axis")
    if idx.ndim != nd:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    index = tuple(
        idx if d == ax else numpy.arange(shape[d]).reshape((1,) * d + (-1,) + (1,) * (nd - d - 1))
        for d in range(nd)
    )
    arr[index] = values


@_composite(numpy.copyto)
def _copyto(dst: Any, src: Any, casting: str = "same_kind", where: Any = True) -> None:
    """``numpy.copyto(t, src, where=mask)``: recorded as ``t[...] = numpy.where(mask, src, t)``
    (``t[...] = src`` without a mask); the values are cast to ``t``'s dtype."""
    if not _into_tensor(dst, (src, where), "copyto"):
        numpy.copyto(dst, _values(src), casting=casting, where=_values(where))  # type: ignore[arg-type]
        return
    dtype = numpy.dtype(_dtype(dst))
    if type(src) not in (int, float, complex, bool) and not numpy.can_cast(
        _dtype(src),
        dtype,
        casting=casting,  # type: ignore[arg-type]
    ):
        raise TypeError(
            f"Cannot cast array data from {_dtype(src)!r} to {dtype!r} according to the rule "
            f"{casting!r}"
        )
    shape = _shape(dst)
    for what, x in (("src", src), ("where", where)):
        if numpy.broadcast_shapes(_shape(x), shape) != shape:
            raise ValueError(
                f"numpy.copyto: {what} of shape {_shape(x)} could not be broadcast to {shape}"
            )
    if where is True:
        dst[...] = src
        return
    mask = where.astype(bool) if _is_tensor(where) else numpy.asarray(where, dtype=bool)
    if not _is_tensor(mask) and mask.all():
        dst[...] = src
        return
    new = numpy.where(mask, src, dst)
    dst[...] = new if numpy.dtype(_dtype(new)) == dtype else new.astype(dtype)


@_composite(numpy.fill_diagonal)
def _fill_diagonal(a: Any, val: Any, wrap: bool = False) -> None:
    """``numpy.fill_diagonal(t, val, wrap)``: the positions NumPy's ``a.flat[:end:step] = val``
    writes, as ``t[index] = val`` (``val`` repeated as needed)."""
    if not _into_tensor(a, (val,), "fill_diagonal"):
        numpy.fill_diagonal(a, _values(val), wrap)
        return
    shape = _shape(a)
    if len(shape) < 2:
        raise ValueError("array must be at least 2-d")
    end = None
    if len(shape) == 2:
        step = shape[1] + 1
        if not wrap:
            end = shape[1] * shape[1]
    else:
        if len(set(shape)) != 1:
            raise ValueError("All dimensions of input must be of equal length")
        step = 1 + int(numpy.cumprod(shape[:-1]).sum())
    flat = numpy.arange(int(numpy.prod(shape)))[:end:step]
    if flat.size:
        a[numpy.unravel_index(flat, shape)] = _cycled(val, flat.size)


# --- ufunc.reduceat, logaddexp.reduce -----------------------------------------------------------


def _segments(idx: numpy.ndarray, n: int) -> numpy.ndarray:
    """The end of each ``reduceat`` segment: up to the next index where that one is larger,
    else the one value at the index (NumPy's rule); the last runs to the end."""
    ends = numpy.empty_like(idx)
    for i, lo in enumerate(idx):
        if i == len(idx) - 1:
            ends[i] = n
        else:
            ends[i] = idx[i + 1] if lo < idx[i + 1] else lo + 1
    return ends


_REDUCE: dict[Any, Any] = {
    numpy.add: numpy.sum,
    numpy.multiply: numpy.prod,
    numpy.maximum: numpy.max,
    numpy.minimum: numpy.min,
}


def _method_input(name: str, a: Any, out: Any, dtype: Any) -> Any:
    """The array a ufunc method (``add.reduceat``, ``logaddexp.reduce``) works on: ``out=``
    refused, a plain input made an array, ``dtype=`` applied."""
    if out is not None and any(o is not None for o in (out if isinstance(out, tuple) else (out,))):
        raise TypeError(f"numpy.{name}: out= is not supported on chainrule tensors")
    if not _is_tensor(a):
        a = numpy.asarray(a)
    return a if dtype is None else a.astype(dtype)


def _reduceat(ufunc: numpy.ufunc) -> Any:
    name = f"{ufunc.__name__}.reduceat"

    def reduceat(a: Any, indices: Any, axis: int = 0, dtype: Any = None, out: Any = None) -> Any:
        a = _method_input(name, a, out, dtype)
        idx = _values(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"numpy.{name}: indices must be a 1-d array of integers")
        idx = idx.astype(numpy.intp)
        nd = _ndim(a)
        ax = _one_axis(axis, nd, name)
        n = _shape(a)[ax]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"index {bad} out-of-bounds in {name} [0, {n})")
        moved = numpy.moveaxis(a, ax, 0) if ax else a
        ends = _segments(idx, n)
        lengths = ends - idx
        # NumPy's steps, segments of one length reduced together: a sum is the first value
        # plus the (pairwise) sum of the others, a product a running one from the first value
        first = moved[idx]
        parts, order = [], []
        for length in numpy.unique(lengths):
            rows = numpy.flatnonzero(lengths == length)
            head = first[rows]
            if length > 1 and ufunc is numpy.add:
                grid = idx[rows, None] + numpy.arange(1, length)
                head = head + numpy.sum(moved[grid], axis=1)
            elif length > 1:
                grid = idx[rows, None] + numpy.arange(length)
                head = _REDUCE[ufunc](moved[grid], axis=1)
            parts.append(head)
            order.append(rows)
        if len(parts) == 1:
            res = parts[0]
        else:
            res = numpy.concatenate(parts, axis=0)[numpy.argsort(numpy.concatenate(order))]
        return numpy.moveaxis(res, 0, ax) if ax else res

    return reduceat


for _uf in (numpy.add, numpy.multiply, numpy.maximum, numpy.minimum):
    UFUNC_METHODS[_uf, "reduceat"] = _reduceat(_uf)

# longer axes than this are reduced by one logsumexp (NumPy's values to rounding, the gradient
# a softmax); shorter ones by NumPy's own fold, logaddexp(...logaddexp(a0, a1)..., an), bit for bit
LOGADDEXP_FOLD = 64


def _logaddexp_reduce(ufunc: numpy.ufunc) -> Any:
    name = f"{ufunc.__name__}.reduce"

    def reduce(
        a: Any,
        axis: Any = 0,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        initial: Any = _NoValue,
        where: Any = True,
    ) -> Any:
        a = _method_input(name, a, out, dtype)
        if dtype is None and numpy.dtype(_dtype(a)).kind not in "fc":
            a = a.astype(numpy.float64)
        shape = _shape(a)
        if where is not True:
            mask = numpy.broadcast_to(where, shape)
            a = numpy.where(mask, a, -numpy.inf)
        arr, kept = _reduced_first(a, axis, name)
        rest = _shape(arr)[1:]
        n = _shape(arr)[0]
        dt = numpy.dtype(_dtype(arr))
        if initial is not _NoValue and initial is not None:
            first = const_like(numpy.full((1,) + rest, initial, dtype=dt), a)
            arr, n = numpy.concatenate([first, arr], axis=0), n + 1
        if n == 0:
            res = const_like(numpy.full(rest, -numpy.inf, dtype=dt), a)
        elif n <= LOGADDEXP_FOLD:
            res = arr[0]
            for i in range(1, n):
                res = ufunc(res, arr[i])
        elif ufunc is numpy.logaddexp:
            res = logsumexp(arr, axis=0, keepdims=False)
        else:  # base 2: log2 sum 2^a = logsumexp(a ln 2) / ln 2
            ln2 = numpy.log(2.0)
            res = logsumexp(arr * ln2, axis=0, keepdims=False) / ln2
        return numpy.reshape(res, kept) if keepdims else res

    return reduce


UFUNC_METHODS[numpy.logaddexp, "reduce"] = _logaddexp_reduce(numpy.logaddexp)
UFUNC_METHODS[numpy.logaddexp2, "reduce"] = _logaddexp_reduce(numpy.logaddexp2)


@_composite(numpy.unwrap)
def _unwrap(p: Any, discont: Any = None, axis: int = -1, *, period: float = 2 * numpy.pi) -> Any:
    """``numpy.unwrap``: NumPy's steps. The corrections are whole multiples of ``period``,
    constant between jumps, so the gradient passes through unchanged (the correction's rule,
    ``ddmod - dd``, gives exactly 0)."""
    if not _is_tensor(p):
        p = numpy.asarray(p)
    nd = _ndim(p)
    ax = _one_axis(axis, nd, "unwrap")
    dd = numpy.diff(p, axis=ax)
    if discont is None:
        discont = period / 2
    dtype = numpy.result_type(_dtype(dd), period)
    if numpy.issubdtype(dtype, numpy.integer):
        high, rem = divmod(period, 2)
        ambiguous = rem == 0
    else:
        high, ambiguous = period / 2, True
    low = -high
    ddmod = numpy.mod(dd - low, period) + low
    if ambiguous:
        ddmod = numpy.where((ddmod == low) & (dd > 0), high, ddmod)
    correct = numpy.where(numpy.abs(dd) < discont, 0, ddmod - dd)
    head = (slice(None),) * ax
    rest = p[head + (slice(1, None),)] + numpy.cumsum(correct, axis=ax)
    up = numpy.concatenate([p[head + (slice(0, 1),)], rest], axis=ax)
    return up if numpy.dtype(_dtype(up)) == dtype else up.astype(dtype)


@_composite(numpy.polyfit)
def _polyfit(
    x: Any,
    y: Any,
    deg: int,
    rcond: Any = None,
    full: bool = False,
    w: Any = None,
    cov: Any = False,
) -> Any:
    """``numpy.polyfit`` (least squares): NumPy's steps, the Vandermonde matrix weighted and
    its columns scaled, then the least-squares solution (differentiable in x, y and w through
    the pseudo-inverse's rule)."""
    if full or cov:
        raise TypeError(
            "numpy.polyfit: full= and cov= are not supported on chainrule tensors; fit with "
            "the default and compute residuals from numpy.polyval(p, x) - y"
        )
    order = int(deg) + 1
    x, y = _as_float(x) + 0.0, _as_float(y) + 0.0
    if deg < 0:
        raise ValueError("expected deg >= 0")
    if _ndim(x) != 1:
        raise TypeError("expected 1D vector for x")
    if _shape(x)[0] == 0:
        raise TypeError("expected non-empty vector for x")
    if _ndim(y) < 1 or _ndim(y) > 2:
        raise TypeError("expected 1D or 2D array for y")
    if _shape(x)[0] != _shape(y)[0]:
        raise TypeError("expected x and y to have same length")
    if rcond is None:
        rcond = _shape(x)[0] * numpy.finfo(_dtype(x)).eps
    lhs = numpy.vander(x, order)
    rhs = y
    if w is not None:
        w = _as_float(w) + 0.0
        if _ndim(w) != 1:
            raise TypeError("expected a 1-d array for weights")
        if _shape(w)[0] != _shape(y)[0]:
            raise TypeError("expected w and y to have the same length")
        lhs = lhs * w[:, None]
        rhs = rhs * (w[:, None] if _ndim(rhs) == 2 else w)
    scale = numpy.sqrt((lhs * lhs).sum(axis=0))
    lhs = lhs / scale
    c = lstsq_x(lhs, rhs, rcond=rcond)
    return (c.T / scale).T


def _as_float(v: Any) -> Any:
    if _is_tensor(v):
        return v if _dtype(v).kind in "fc" else v.astype(numpy.float64)
    return numpy.asarray(v)
