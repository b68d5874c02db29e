"""The op list: every NumPy function with a gradient rule, with inputs from its domain.

Shared by the finite-difference tests (test_rules.py) and, later, by explain/jit tests.
Each case is ``(id, function, inputs)``; inputs are float64 arrays drawn away from kinks and
singularities, so that a central difference is a fair referee.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy

rng = numpy.random.default_rng(1234)


def fd_grad(f: Callable[[Any], Any], x: numpy.ndarray, eps: float = 1e-6) -> numpy.ndarray:
    """Central finite differences of a scalar function ``f`` at ``x``, entry by entry: the
    independent referee of the tests that check one gradient by hand."""
    g = numpy.zeros_like(x)
    for i in numpy.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (f(up) - f(down)) / (2 * eps)
    return g


def conv2d_loops(
    x: numpy.ndarray,
    w: numpy.ndarray,
    b: numpy.ndarray,
    stride: int,
    pad: int,
    dil: int = 1,
    groups: int = 1,
) -> numpy.ndarray:
    """A 2-D cross-correlation (NCHW input, OIHW weight, bias) by its definition, in loops:
    the referee of the convolution layers and of ``nn.functional.conv2d``."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = numpy.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + wd] = x
    ho = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    out = numpy.zeros((n, o, ho, wo)) + b[:, None, None]
    og = o // groups
    for q in range(o):
        chans = slice(q // og * cg, (q // og + 1) * cg)
        for i in range(ho):
            for j in range(wo):
                for u in range(kh):
                    for v in range(kw):
                        patch = xp[:, chans, i * stride + u * dil, j * stride + v * dil]  # n, cg
                        out[:, q, i, j] += patch @ w[q, :, u, v]
    return out


def normal(*shape: int) -> numpy.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int, lo: float = 0.5, hi: float = 2.0) -> numpy.ndarray:
    return rng.uniform(lo, hi, shape)


def signed(*shape: int, lo: float = 0.3, hi: float = 2.0) -> numpy.ndarray:
    """Values whose magnitude is in [lo, hi], of either sign (away from 0)."""
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(*shape: int) -> numpy.ndarray:
    """Well-separated values (no ties), for max/min/sort."""
    n = int(numpy.prod(shape)) if shape else 1
    return (rng.permutation(n) * 0.37 - n * 0.15).reshape(shape)


def well_conditioned(*shape: int) -> numpy.ndarray:
    """Square matrices (``shape[-1]`` x ``shape[-1]``, stacked by ``shape[:-1]``) with singular
    values well away from 0: an identity's multiple plus noise."""
    n = shape[-1]
    return rng.standard_normal(shape + (n,)) * 0.5 + 2.0 * numpy.eye(n)


def spd(*shape: int) -> numpy.ndarray:
    """Symmetric positive-definite matrices (stacked by ``shape[:-1]``)."""
    m = well_conditioned(*shape)
    return m @ numpy.swapaxes(m, -1, -2)


def symmetric(*shape: int) -> numpy.ndarray:
    """Symmetric matrices with well-separated eigenvalues (stacked by ``shape[:-1]``)."""
    n = shape[-1]
    q, _ = numpy.linalg.qr(rng.standard_normal(shape + (n,)))
    w = numpy.arange(1.0, n + 1) * 1.5 - n + rng.uniform(-0.2, 0.2, shape)
    return (q * w[..., None, :]) @ numpy.swapaxes(q, -1, -2)


def unit(*shape: int) -> numpy.ndarray:
    return rng.uniform(-0.8, 0.8, shape)


# Adding this puts NaNs into an input where the nan-functions must skip them (0 elsewhere).
NAN34 = numpy.zeros((3, 4))
NAN34[0, 1] = NAN34[2, 3] = numpy.nan
INF34 = numpy.zeros((3, 4))
INF34[1, 0], INF34[1, 2] = numpy.inf, -numpy.inf


@dataclass
class Case:
    id: str
    fun: Callable[..., Any]
    inputs: list[numpy.ndarray]


np = numpy

# Broadcasting pairs for binary functions: equal shapes, trailing, both sides, scalar.
PAIRS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,))]


def _binary(
    name: str, fun: Callable[..., Any], gen_x: Callable[..., Any], gen_y: Callable[..., Any]
) -> list[Case]:
    return [Case(f"{name}-{sx}-{sy}", fun, [gen_x(*sx), gen_y(*sy)]) for sx, sy in PAIRS]


CASES: list[Case] = []
CASES += _binary("add", np.add, normal, normal)
CASES += _binary("subtract", np.subtract, normal, normal)
CASES += _binary("multiply", np.multiply, normal, normal)
CASES += _binary("divide", np.divide, normal, signed)
CASES += _binary("true_divide", np.true_divide, normal, signed)
CASES += _binary("power", np.power, positive, normal)
CASES += _binary("float_power", np.float_power, positive, normal)
CASES += _binary("logaddexp", np.logaddexp, normal, normal)
CASES += _binary("arctan2", np.arctan2, signed, signed)
CASES += _binary("hypot", np.hypot, signed, signed)
CASES += _binary("maximum", np.maximum, lambda *s: distinct(*s), lambda *s: distinct(*s) + 0.1)
CASES += _binary("minimum", np.minimum, lambda *s: distinct(*s), lambda *s: distinct(*s) + 0.1)
CASES += _binary("fmax", np.fmax, lambda *s: distinct(*s), lambda *s: distinct(*s) + 0.1)
CASES += _binary("fmin", np.fmin, lambda *s: distinct(*s), lambda *s: distinct(*s) + 0.1)

UNARY = [
    ("negative", np.negative, normal),
    ("positive", np.positive, normal),
    ("square", np.square, normal),
    ("sqrt", np.sqrt, positive),
    ("cbrt", np.cbrt, signed),
    ("reciprocal", np.reciprocal, signed),
    ("exp", np.exp, normal),
    ("exp2", np.exp2, normal),
    ("expm1", np.expm1, normal),
    ("log", np.log, positive),
    ("log2", np.log2, positive),
    ("log10", np.log10, positive),
    ("log1p", np.log1p, positive),
    ("sin", np.sin, normal),
    ("cos", np.cos, normal),
    ("tan", np.tan, unit),
    ("arcsin", np.arcsin, unit),
    ("arccos", np.arccos, unit),
    ("arctan", np.arctan, normal),
    ("sinh", np.sinh, normal),
    ("cosh", np.cosh, normal),
    ("tanh", np.tanh, normal),
    ("arcsinh", np.arcsinh, normal),
    ("arccosh", lambda x: np.arccosh(x), lambda *s: positive(*s, lo=1.2, hi=3.0)),
    ("arctanh", np.arctanh, unit),
    ("abs", np.abs, signed),
    ("absolute", np.absolute, signed),
    ("fabs", np.fabs, signed),
    ("abs-operator", lambda x: abs(x), signed),
    ("pow-operator", lambda x: x**3, normal),
    ("rpow-operator", lambda x: 2.0**x, normal),
    ("square-via-power", lambda x: x**2, normal),
    ("relu-seed-form", lambda x: np.maximum(0, x), signed),
    ("relu-other-order", lambda x: np.maximum(x, 0.0), signed),
]
for name, fun, gen in UNARY:
    CASES.append(Case(f"{name}-(3,4)", fun, [gen(3, 4)]))
    CASES.append(Case(f"{name}-()", fun, [gen()]))

CASES += [
    Case("clip-both", lambda x: np.clip(x, -0.5, 0.7), [distinct(3, 4) / 7 + 0.013]),
    Case("clip-lower", lambda x: np.clip(x, -0.5, None), [distinct(3, 4) / 7 + 0.013]),
    Case(
        "clip-array-bounds",
        lambda x, lo, hi: np.clip(x, lo, hi),
        [distinct(3, 4) / 7 + 0.013, np.full(4, -0.4), np.full((3, 1), 0.6)],
    ),
    Case("clip-method", lambda x: x.clip(-0.5, 0.7), [distinct(3, 4) / 7 + 0.013]),
    Case("where", lambda x, y: np.where(np.arange(4) % 2 == 0, x, y), [normal(3, 4), normal(4)]),
    Case("where-tensor-cond", lambda x: np.where(x > 0, x**2, -x), [signed(3, 4)]),
    # products
    Case("dot-2d-2d", np.dot, [normal(3, 4), normal(4, 5)]),
    Case("dot-1d-2d", np.dot, [normal(4), normal(4, 5)]),
    Case("dot-2d-1d", np.dot, [normal(3, 4), normal(4)]),
    Case("dot-1d-1d", np.dot, [normal(4), normal(4)]),
    Case("dot-scalar", np.dot, [normal(), normal(3, 2)]),
    Case("dot-3d-2d", np.dot, [normal(2, 3, 4), normal(4, 5)]),
    Case("dot-3d-3d", np.dot, [normal(2, 3, 4), normal(2, 4, 3)]),
    Case("dot-method", lambda a, b: a.dot(b), [normal(3, 4), normal(4, 2)]),
    Case("matmul-2d", np.matmul, [normal(3, 4), normal(4, 5)]),
    Case("matmul-batched-broadcast", np.matmul, [normal(2, 1, 3, 4), normal(3, 4, 2)]),
    Case("matmul-1d-3d", np.matmul, [normal(4), normal(2, 4, 3)]),
    Case("matmul-3d-1d", np.matmul, [normal(2, 3, 4), normal(4)]),
    Case("matmul-1d-1d", np.matmul, [normal(4), normal(4)]),
    Case("matmul-operator", lambda a, b: a @ b, [normal(3, 4), normal(4, 2)]),
    Case("vdot", np.vdot, [normal(3, 4), normal(12)]),
    Case("inner-2d", np.inner, [normal(3, 4), normal(2, 4)]),
    Case("inner-1d", np.inner, [normal(4), normal(4)]),
    Case("outer", np.outer, [normal(3), normal(2, 2)]),
    Case(
        "tensordot-int", lambda a, b: np.tensordot(a, b, axes=2), [normal(2, 3, 4), normal(3, 4, 2)]
    ),
    Case(
        "tensordot-pairs",
        lambda a, b: np.tensordot(a, b, axes=([0, 2], [2, 1])),
        [normal(2, 3, 4), normal(3, 4, 2)],
    ),
    Case(
        "tensordot-crossed",
        lambda a, b: np.tensordot(a, b, axes=([2, 0], [1, 2])),
        [normal(2, 3, 4), normal(3, 4, 2)],
    ),
    Case("einsum-matmul", lambda a, b: np.einsum("ij,jk->ik", a, b), [normal(3, 4), normal(4, 2)]),
    Case("einsum-implicit", lambda a, b: np.einsum("ij,jk", a, b), [normal(3, 4), normal(4, 2)]),
    Case(
        "einsum-batch-ellipsis",
        lambda a, b: np.einsum("...ij,...jk->...ik", a, b),
        [normal(2, 3, 4), normal(2, 4, 2)],
    ),
    Case("einsum-trace", lambda a: np.einsum("ii->", a), [normal(3, 3)]),
    Case("einsum-diag", lambda a: np.einsum("ii->i", a), [normal(3, 3)]),
    Case("einsum-sum-only", lambda a, b: np.einsum("ij,k->k", a, b), [normal(3, 4), normal(2)]),
    Case(
        "einsum-three",
        lambda a, b, c: np.einsum("ij,jk,kl->il", a, b, c),
        [normal(2, 3), normal(3, 4), normal(4, 2)],
    ),
    # reductions
    Case("sum-all", np.sum, [normal(3, 4)]),
    Case("sum-axis0", lambda x: np.sum(x, axis=0), [normal(3, 4)]),
    Case("sum-axis-neg-keepdims", lambda x: x.sum(axis=-1, keepdims=True), [normal(2, 3, 4)]),
    Case("sum-axes-tuple", lambda x: x.sum(axis=(0, 2)), [normal(2, 3, 4)]),
    Case("mean-all", np.mean, [normal(3, 4)]),
    Case("mean-axis", lambda x: x.mean(axis=1), [normal(3, 4)]),
    Case("mean-keepdims", lambda x: np.mean(x, axis=(0, 1), keepdims=True), [normal(2, 3, 4)]),
    Case("prod-all", np.prod, [signed(2, 3)]),
    Case("prod-axis", lambda x: np.prod(x, axis=1), [signed(3, 4)]),
    Case(
        "prod-with-zero",
        lambda x: np.prod(x * np.array([1.0, 0.0, 1.0, 1.0]), axis=1),
        [signed(3, 4)],
    ),
    Case("prod-axes-keepdims", lambda x: x.prod(axis=(0, 2), keepdims=True), [signed(2, 3, 2)]),
    Case("max-all", np.max, [distinct(3, 4)]),
    Case("amax-axis", lambda x: np.amax(x, axis=0), [distinct(3, 4)]),
    Case("max-method-keepdims", lambda x: x.max(axis=1, keepdims=True), [distinct(3, 4)]),
    Case("min-all", np.min, [distinct(3, 4)]),
    Case("amin-axis", lambda x: np.amin(x, axis=1), [distinct(3, 4)]),
    Case("var-all", np.var, [normal(3, 4)]),
    Case("var-axis-ddof", lambda x: np.var(x, axis=0, ddof=1), [normal(3, 4)]),
    Case("std-all", np.std, [normal(3, 4)]),
    Case("std-axis-keepdims", lambda x: x.std(axis=1, keepdims=True), [normal(3, 4)]),
    Case("cumsum-flat", np.cumsum, [normal(3, 4)]),
    Case("cumsum-axis", lambda x: np.cumsum(x, axis=1), [normal(3, 4)]),
    Case("cumprod-axis", lambda x: np.cumprod(x, axis=1), [signed(3, 4)]),
    Case(
        "cumprod-with-zero",
        lambda x: np.cumprod(x * np.array([[1.0], [0.0], [1.0]]), axis=0),
        [signed(3, 2)],
    ),
    Case("cumprod-flat", np.cumprod, [signed(2, 3)]),
    Case("norm-vector", np.linalg.norm, [normal(5)]),
    Case("norm-frobenius", np.linalg.norm, [normal(3, 4)]),
    Case("norm-axis", lambda x: np.linalg.norm(x, axis=1), [normal(3, 4)]),
    Case("norm-ord1", lambda x: np.linalg.norm(x, ord=1), [signed(5)]),
    Case(
        "norm-ord3-keepdims",
        lambda x: np.linalg.norm(x, ord=3, axis=0, keepdims=True),
        [signed(3, 4)],
    ),
    Case("norm-inf", lambda x: np.linalg.norm(x, ord=np.inf), [distinct(5)]),
    Case("trace", np.trace, [normal(3, 4)]),
    Case("linalg-inv", np.linalg.inv, [well_conditioned(3)]),
    Case("linalg-inv-stack", np.linalg.inv, [well_conditioned(2, 3)]),
    Case("linalg-solve-vector", np.linalg.solve, [well_conditioned(3), normal(3)]),
    Case("linalg-solve-matrix", np.linalg.solve, [well_conditioned(3), normal(3, 2)]),
    Case("linalg-solve-stack-vector", np.linalg.solve, [well_conditioned(2, 3), normal(3)]),
    Case("linalg-solve-broadcast", np.linalg.solve, [well_conditioned(3), normal(2, 3, 2)]),
    Case("linalg-cholesky", np.linalg.cholesky, [spd(3)]),
    Case("linalg-cholesky-stack", np.linalg.cholesky, [spd(2, 3)]),
    Case(
        "linalg-cholesky-upper-ignored", lambda a: np.linalg.cholesky(a + np.triu(a, 1)), [spd(3)]
    ),
    Case("linalg-eigvalsh", np.linalg.eigvalsh, [symmetric(4)]),
    Case("linalg-eigh-values", lambda a: np.linalg.eigh(a).eigenvalues, [symmetric(2, 3)]),
    # eigenvectors are defined up to sign: a function of their squares is well defined
    Case("linalg-eigh-vectors", lambda a: np.linalg.eigh(a)[1] ** 2, [symmetric(4)]),
    Case(
        "linalg-eigh-upper-ignored",
        lambda a: np.linalg.eigh(a + np.triu(a, 1))[1] ** 2,
        [symmetric(3)],
    ),
    Case("linalg-det", np.linalg.det, [well_conditioned(3)]),
    Case("linalg-det-stack", np.linalg.det, [well_conditioned(2, 3)]),
    Case("linalg-slogdet", lambda a: np.linalg.slogdet(a)[1], [well_conditioned(3)]),
    Case(
        "linalg-slogdet-negative",
        lambda a: np.linalg.slogdet(a).logabsdet * 1.0,
        [well_conditioned(3) * np.array([[-1.0], [1.0], [1.0]])],
    ),
    Case("nansum", lambda x: np.nansum(x + NAN34), [normal(3, 4)]),
    Case(
        "nansum-axis-keepdims",
        lambda x: np.nansum(x + NAN34, axis=1, keepdims=True),
        [normal(3, 4)],
    ),
    Case("nanmean", lambda x: np.nanmean(x + NAN34), [normal(3, 4)]),
    Case("nanmean-axis", lambda x: np.nanmean(x + NAN34, axis=0), [normal(3, 4)]),
    Case("nanmax-axis", lambda x: np.nanmax(x + NAN34, axis=1), [distinct(3, 4)]),
    Case("nanmin", lambda x: np.nanmin(x + NAN34), [distinct(3, 4)]),
    Case("nanprod-axis", lambda x: np.nanprod(x + NAN34, axis=0), [signed(3, 4)]),
    Case("nanvar", lambda x: np.nanvar(x + NAN34), [normal(3, 4)]),
    Case("nanvar-ddof-axis", lambda x: np.nanvar(x + NAN34, axis=1, ddof=1), [normal(3, 4)]),
    Case("nanstd-keepdims", lambda x: np.nanstd(x + NAN34, axis=0, keepdims=True), [normal(3, 4)]),
    Case("sinc", np.sinc, [signed(3, 4)]),
    Case(
        "nan_to_num",
        lambda x: np.nan_to_num(x + NAN34 + INF34, posinf=5.0, neginf=-5.0),
        [normal(3, 4)],
    ),
    Case("rot90", np.rot90, [normal(3, 4)]),
    Case("rot90-k3-axes", lambda x: np.rot90(x, 3, axes=(2, 0)), [normal(2, 3, 4)]),
    Case("append", np.append, [normal(3, 4), normal(5)]),
    Case("append-axis", lambda x, y: np.append(x, y, axis=0), [normal(3, 4), normal(2, 4)]),
    Case("delete", lambda x: np.delete(x, [0, 2], axis=1), [normal(3, 4)]),
    Case("ediff1d", lambda x: np.ediff1d(x, to_begin=np.array([1.0])), [normal(3, 4)]),
    Case("trapezoid", np.trapezoid, [normal(3, 5)]),
    Case("trapezoid-x-axis0", lambda y, x: np.trapezoid(y, x, axis=0), [normal(4, 3), normal(4)]),
    Case("polyval", np.polyval, [normal(4), normal(3, 2)]),
    Case("meshgrid", lambda a, b: np.stack(np.meshgrid(a, b)), [normal(4), normal(3)]),
    Case(
        "meshgrid-ij-sparse",
        lambda a, b: sum(np.meshgrid(a, b, indexing="ij", sparse=True)),
        [normal(4), normal(3)],
    ),
    Case(
        "broadcast_arrays",
        lambda a, b: np.stack(np.broadcast_arrays(a, b)),
        [normal(3, 4), normal(4)],
    ),
    Case("kron", np.kron, [normal(2, 3), normal(3, 2)]),
    Case("kron-1d-2d", np.kron, [normal(3), normal(2, 2)]),
    Case("matrix_power", lambda a: np.linalg.matrix_power(a, 5), [well_conditioned(3) * 0.5]),
    Case("matrix_power-negative", lambda a: np.linalg.matrix_power(a, -2), [well_conditioned(3)]),
    Case("median", np.median, [distinct(3, 4)]),
    Case("median-axis-odd", lambda x: np.median(x, axis=0), [distinct(3, 4)]),
    Case(
        "median-axis-even-keepdims", lambda x: np.median(x, axis=1, keepdims=True), [distinct(3, 4)]
    ),
    Case("quantile", lambda x: np.quantile(x, 0.3), [distinct(3, 4)]),
    Case(
        "quantile-array-axis",
        lambda x: np.quantile(x, np.array([0.1, 0.5, 0.8]), axis=1),
        [distinct(3, 5)],
    ),
    Case(
        "percentile-keepdims",
        lambda x: np.percentile(x, 70, axis=0, keepdims=True),
        [distinct(4, 3)],
    ),
    Case("cov", np.cov, [normal(3, 5)]),
    Case(
        "cov-y-rowvar-bias",
        lambda x, y: np.cov(x, y, rowvar=False, bias=True),
        [normal(5, 2), normal(5, 3)],
    ),
    Case("corrcoef", np.corrcoef, [normal(3, 5)]),
    Case("diff", np.diff, [normal(3, 5)]),
    Case("diff-n2-axis0", lambda x: np.diff(x, n=2, axis=0), [normal(4, 3)]),
    Case(
        "diff-prepend-append",
        lambda x, y: np.diff(x, prepend=0.5, append=y),
        [normal(3, 4), normal(3, 2)],
    ),
    Case("trace-offset", lambda x: np.trace(x, offset=1), [normal(3, 4)]),
    Case("trace-3d-axes", lambda x: np.trace(x, axis1=0, axis2=2), [normal(3, 2, 3)]),
    Case("diagonal", np.diagonal, [normal(3, 4)]),
    Case("diagonal-offset-neg", lambda x: np.diagonal(x, offset=-1), [normal(4, 3)]),
    Case("diagonal-offset-pos", lambda x: np.diagonal(x, offset=2), [normal(3, 4)]),
    Case("diagonal-3d", lambda x: np.diagonal(x, axis1=1, axis2=2), [normal(2, 3, 3)]),
    Case("diagonal-3d-axes02", lambda x: np.diagonal(x, axis1=2, axis2=0), [normal(3, 2, 4)]),
    Case("diag-2d", np.diag, [normal(3, 3)]),
    Case("diag-1d", lambda v: np.diag(v, k=1), [normal(3)]),
    # shapes
    Case("reshape", lambda x: np.reshape(x, (2, 6)), [normal(3, 4)]),
    Case("reshape-method-varargs", lambda x: x.reshape(4, -1), [normal(3, 4)]),
    Case("ravel", np.ravel, [normal(3, 4)]),
    Case("flatten", lambda x: x.flatten(), [normal(3, 4)]),
    Case("transpose", np.transpose, [normal(2, 3, 4)]),
    Case("transpose-axes", lambda x: np.transpose(x, (1, 2, 0)), [normal(2, 3, 4)]),
    Case("T", lambda x: x.T, [normal(3, 4)]),
    Case("swapaxes", lambda x: np.swapaxes(x, 0, 2), [normal(2, 3, 4)]),
    Case("moveaxis", lambda x: np.moveaxis(x, 0, -1), [normal(2, 3, 4)]),
    Case("squeeze", np.squeeze, [normal(3, 1, 4, 1)]),
    Case("squeeze-axis", lambda x: np.squeeze(x, axis=1), [normal(3, 1, 4)]),
    Case("expand_dims", lambda x: np.expand_dims(x, (0, 2)), [normal(3, 4)]),
    Case("broadcast_to", lambda x: np.broadcast_to(x, (2, 3, 4)), [normal(3, 1)]),
    Case("concatenate", lambda a, b: np.concatenate([a, b], axis=1), [normal(3, 2), normal(3, 4)]),
    Case(
        "concatenate-none",
        lambda a, b: np.concatenate([a, b], axis=None),
        [normal(3, 2), normal(4)],
    ),
    Case("stack", lambda a, b: np.stack([a, b], axis=1), [normal(3, 2), normal(3, 2)]),
    Case("vstack", lambda a, b: np.vstack([a, b]), [normal(4), normal(2, 4)]),
    Case("hstack", lambda a, b: np.hstack([a, b]), [normal(3, 1), normal(3, 2)]),
    Case("hstack-1d", lambda a, b: np.hstack([a, b]), [normal(3), normal(2)]),
    Case("split", lambda x: np.split(x, 3, axis=1)[1] * np.split(x, 3, axis=1)[2], [normal(2, 6)]),
    Case("array_split", lambda x: sum(p.sum() ** 2 for p in np.array_split(x, 3)), [normal(7)]),
    Case("split-indices", lambda x: np.split(x, [1, 3])[1], [normal(5, 2)]),
    Case("flip", lambda x: np.flip(x, axis=0), [normal(3, 4)]),
    Case("flip-all", np.flip, [normal(3, 4)]),
    Case("fliplr", np.fliplr, [normal(3, 4)]),
    Case("roll", lambda x: np.roll(x, 2, axis=1), [normal(3, 4)]),
    Case("roll-flat", lambda x: np.roll(x, -5), [normal(3, 4)]),
    Case("roll-tuple", lambda x: np.roll(x, (1, 2), axis=(0, 1)), [normal(3, 4)]),
    Case("tile", lambda x: np.tile(x, (2, 3)), [normal(3, 2)]),
    Case("tile-more-dims", lambda x: np.tile(x, (2, 1, 2)), [normal(3)]),
    Case("repeat-int", lambda x: np.repeat(x, 3, axis=0), [normal(2, 3)]),
    Case("repeat-flat", lambda x: np.repeat(x, 2), [normal(2, 3)]),
    Case("repeat-counts", lambda x: np.repeat(x, [1, 0, 3], axis=1), [normal(2, 3)]),
    Case("pad", lambda x: np.pad(x, ((1, 2), (0, 3))), [normal(3, 4)]),
    Case("pad-constant-value", lambda x: np.pad(x, 1, constant_values=2.5), [normal(3, 4)]),
    Case("take", lambda x: np.take(x, [2, 0, 2], axis=1), [normal(3, 4)]),
    Case("take-flat", lambda x: np.take(x, [5, 5, 1]), [normal(3, 4)]),
    Case(
        "take_along_axis",
        lambda x: np.take_along_axis(x, np.array([[0, 2], [1, 1], [3, 0]]), axis=1),
        [normal(3, 4)],
    ),
    Case("sort", lambda x: np.sort(x, axis=1) * np.arange(1.0, 5.0), [distinct(3, 4)]),
    Case("sort-flat", lambda x: np.sort(x, axis=None) * np.arange(1.0, 13.0), [distinct(3, 4)]),
    Case("triu", lambda x: np.triu(x, 1), [normal(4, 4)]),
    Case("tril", np.tril, [normal(3, 4)]),
    Case("atleast_1d", lambda x: np.atleast_1d(x) * np.arange(1.0, 3.0), [normal()]),
    Case("atleast_2d", lambda x: np.atleast_2d(x) * np.ones((2, 1)), [normal(3)]),
    Case("getitem-basic", lambda x: x[1:, ::2], [normal(3, 4)]),
    Case("getitem-int", lambda x: x[1], [normal(3, 4)]),
    Case("getitem-newaxis-ellipsis", lambda x: x[..., None, 1], [normal(2, 3, 4)]),
    Case("getitem-advanced-repeat", lambda x: x[[0, 2, 0, 0]], [normal(3, 4)]),
    Case("getitem-advanced-2d", lambda x: x[[0, 1, 1], [3, 3, 0]], [normal(3, 4)]),
    Case("getitem-mask", lambda x: x[np.array([True, False, True])], [normal(3, 4)]),
    Case("getitem-tensor-mask", lambda x: x[x > 0], [signed(3, 4)]),
    Case("iterate-rows", lambda x: sum(row * (i + 1.0) for i, row in enumerate(x)), [normal(3, 4)]),
    Case("copy", lambda x: np.copy(x) * x, [normal(3)]),
    Case("astype-float32-roundtrip", lambda x: x.astype(np.float64) * 2.0, [normal(3)]),
    Case(
        "sliding_window_view-2d",
        lambda x: (
            np.lib.stride_tricks.sliding_window_view(x, (2, 3)) * np.arange(6.0).reshape(2, 3)
        ),
        [normal(4, 5)],
    ),
    Case(
        "sliding_window_view-axis",
        lambda x: np.lib.stride_tricks.sliding_window_view(x, 2, axis=-1).max(axis=-1),
        [distinct(2, 3, 4)],
    ),
    Case(
        "sliding_window_view-repeated-axis",
        lambda x: np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 1)),
        [normal(2, 5)],
    ),
    # composites NumPy builds from the above
    Case(
        "average-weights",
        lambda x, w: np.average(x, axis=0, weights=w),
        [normal(3, 4), positive(3, 4)],
    ),
    Case("cross", np.cross, [normal(2, 3), normal(2, 3)]),
    Case(
        "cross-axes",
        lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0),
        [normal(3, 2), normal(2, 3)],
    ),
    Case("cross-axis", lambda a, b: np.cross(a, b, axis=0), [normal(3, 4), normal(3, 4)]),
    Case("degrees", np.degrees, [normal(3, 4)]),
    Case("degrees-()", np.degrees, [normal()]),
    Case("radians", np.radians, [normal(3, 4) * 50]),
    Case("radians-()", np.radians, [normal() * 50]),
    Case("hsplit", lambda x: np.hsplit(x, 3)[1] * np.hsplit(x, 3)[2], [normal(2, 6)]),
    Case("hsplit-1d", lambda x: np.hsplit(x, [1, 3])[1], [normal(5)]),
    Case("hsplit-3d", lambda x: np.stack(np.hsplit(x, 2)) ** 2, [normal(2, 4, 3)]),
    Case("vsplit", lambda x: np.vsplit(x, 2)[0] - np.vsplit(x, 2)[1] ** 2, [normal(4, 3)]),
    Case("vsplit-3d-indices", lambda x: np.vsplit(x, [1, 2])[2] * 3, [normal(4, 3, 2)]),
    Case("dsplit", lambda x: np.dsplit(x, [1])[1] * 2, [normal(2, 2, 3)]),
    Case("dsplit-sections", lambda x: np.dsplit(x, 2)[0] * np.dsplit(x, 2)[1], [normal(2, 3, 4)]),
    Case("rollaxis", lambda x: np.rollaxis(x, 2), [normal(2, 3, 4)]),
    Case("rollaxis-start", lambda x: np.rollaxis(x, 0, 3), [normal(2, 3, 4)]),
    Case("rollaxis-negative", lambda x: np.rollaxis(x, -1, -2), [normal(2, 3, 4)]),
    Case(
        "select",
        lambda x, a, d: np.select([x > 0.5, x < -0.5], [x**2, a * x], default=d),
        [signed(3, 4), normal(3, 4), normal(4)],
    ),
    Case(
        "select-scalar-choices",
        lambda x: np.select([x > 1.0, x > 0.0, x < -1.0], [2.0, x**3, np.sin(x)], x * 0.5),
        [signed(3, 4)],
    ),
    Case("partition", lambda x: np.partition(x, 2, axis=1) * np.arange(4.0), [distinct(3, 4)]),
    Case(
        "partition-kths-axis0",
        lambda x: np.partition(x, [0, 3], axis=0) * np.arange(1.0, 6.0)[:, None],
        [distinct(5, 3)],
    ),
    Case("partition-flat", lambda x: np.partition(x, -2, axis=None) ** 2, [distinct(3, 4)]),
    Case("real_if_close", np.real_if_close, [normal(3)]),
    Case("real_if_close-2d", lambda x: np.real_if_close(x) ** 2, [normal(2, 3)]),
    Case("linspace", lambda a, b: np.linspace(a, b, 5), [normal(), normal()]),
    Case(
        "linspace-arrays", lambda a, b: np.linspace(a, b, 4, endpoint=False), [normal(3), normal(3)]
    ),
    Case(
        "linspace-broadcast-axis",
        lambda a, b: np.linspace(a, b, 6, axis=-1),
        [normal(), normal(2, 3)],
    ),
    Case(
        "linspace-retstep",
        lambda a, b: np.linspace(a, b, 7, retstep=True)[1] * np.linspace(a, b, 7)[1:],
        [normal(2), normal(2)],
    ),
    Case("linspace-one", lambda a, b: np.linspace(a, b, 1) + b, [normal(3), normal(3)]),
    Case("gradient", lambda f: np.gradient(f), [normal(6)]),
    Case("gradient-edge2-1d", lambda f: np.gradient(f, 0.3, edge_order=2), [normal(5)]),
    Case("gradient-2d-edge2", lambda f: np.gradient(f, 0.5, edge_order=2)[1], [normal(4, 5)]),
    Case("gradient-axis", lambda f: np.gradient(f, 2.0, axis=0), [normal(4, 3)]),
    Case(
        "gradient-axes-spacings",
        lambda f: np.stack(np.gradient(f, 0.5, 2.0, axis=(2, 0))),
        [normal(3, 2, 4)],
    ),
    Case("cross", np.cross, [normal(2, 3), normal(2, 3)]),
    Case(
        "cross-axes",
        lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0),
        [normal(3, 2), normal(2, 3)],
    ),
    Case("cross-axis", lambda a, b: np.cross(a, b, axis=0), [normal(3, 4), normal(3, 4)]),
    Case(
        "cross-broadcast-axisc",
        lambda a, b: np.cross(a, b, axisb=0, axisc=1),
        [normal(2, 4, 3), normal(3, 4)],
    ),
    Case(
        "einsum-sublist",
        lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [0, 2]),
        [normal(3, 4), normal(4, 2)],
    ),
    Case(
        "einsum-sublist-three-implicit",
        lambda a, b, c: np.einsum(a, [0, 1], b, [1, 2], c, [2]),
        [normal(3, 4), normal(4, 2), normal(2)],
    ),
    Case(
        "einsum-sublist-ellipsis",
        lambda a, b: np.einsum(a, [Ellipsis, 0, 1], b, [Ellipsis, 1], [Ellipsis, 0]),
        [normal(2, 3, 4), normal(2, 4)],
    ),
    Case("convolve", np.convolve, [normal(6), normal(3)]),
    Case("convolve-same-swapped", lambda a, v: np.convolve(a, v, "same"), [normal(3), normal(5)]),
    Case("convolve-valid", lambda a, v: np.convolve(a, v, "valid"), [normal(7), normal(4)]),
    Case("convolve-long-kernel", lambda a, v: np.convolve(a, v, "same"), [normal(15), normal(12)]),
    Case("correlate-valid", np.correlate, [normal(6), normal(3)]),
    Case("correlate-full-swapped", lambda a, v: np.correlate(a, v, "full"), [normal(2), normal(4)]),
    Case(
        "correlate-same-swapped-even",
        lambda a, v: np.correlate(a, v, "same"),
        [normal(4), normal(7)],
    ),
    Case(
        "interp",
        lambda x, fp: np.interp(x, [0.0, 1.0, 2.5, 3.0], fp),
        [np.array([-0.5, 0.2, 0.7, 1.3, 2.6, 3.5]), normal(4)],
    ),
    Case(
        "interp-left-right-2d",
        lambda x, fp, lo, hi: np.interp(x, [-1.0, 0.0, 2.0], fp, left=lo, right=hi),
        [np.array([[-2.0, -0.5, 0.4], [1.1, 1.7, 2.8]]), normal(3), normal(), normal()],
    ),
    Case(
        "interp-period",
        lambda x, fp: np.interp(x, [0.5, 1.5, 2.2, 3.0], fp, period=3.0),
        [np.array([-1.3, 0.2, 1.0, 2.6, 4.1]), normal(4)],
    ),
    Case("i0", np.i0, [normal(3, 4) * 3]),
    Case("i0-()", np.i0, [normal() * 5]),
    Case("trapezoid-x", lambda y, x: np.trapezoid(y, x), [normal(3, 5), np.cumsum(positive(5))]),
    Case(
        "trapezoid-x-2d",
        lambda y, x: np.trapezoid(y, x, axis=0),
        [normal(4, 3), np.cumsum(positive(4, 3), axis=0)],
    ),
    Case("insert", lambda x, v: np.insert(x, 1, v, axis=1), [normal(3, 4), normal(3)]),
    Case("insert-flat-many", lambda x: np.insert(x, [0, 2, 2], 7.0), [normal(2, 3)]),
    Case(
        "insert-slice-2d-values",
        lambda x, v: np.insert(x, slice(0, 4, 2), v, axis=0),
        [normal(4, 3), normal(2, 3)],
    ),
    Case("insert-flat-values", lambda x, v: np.insert(x, 3, v), [normal(2, 3), normal(2)]),
    Case("diagflat", lambda v: np.diagflat(v, 1), [normal(3)]),
    Case("diagflat-2d-negative", lambda v: np.diagflat(v, -2), [normal(2, 2)]),
    Case(
        "multi_dot",
        lambda a, b, c: np.linalg.multi_dot([a, b, c]),
        [normal(2, 3), normal(3, 4), normal(4, 2)],
    ),
    Case("ptp", lambda x: np.ptp(x, axis=1), [distinct(3, 4)]),
    Case("remainder", lambda x: np.remainder(x, 0.7), [positive(3, 4) + 0.03]),
    Case(
        "softmax-composite",
        lambda z: (
            np.exp(z - z.max(axis=1, keepdims=True))
            / np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)
        ),
        [distinct(3, 4) / 5],
    ),
]

# NumPy 2's array-API names, polynomials and everyday functions (engine/composites_more.py)
CASES += [
    Case("matrix_transpose", lambda x: np.matrix_transpose(x) * x[..., :1], [normal(2, 3, 3)]),
    Case("linalg.matrix_transpose", np.linalg.matrix_transpose, [normal(3, 4)]),
    Case("vecdot", np.vecdot, [normal(3, 4), normal(4)]),
    Case("vecdot-axis", lambda a, b: np.vecdot(a, b, axis=0), [normal(3, 4), normal(3, 1)]),
    Case(
        "linalg.vecdot-axis",
        lambda a, b: np.linalg.vecdot(a, b, axis=0),
        [normal(3, 4), normal(3, 1)],
    ),
    Case("linalg.outer", np.linalg.outer, [normal(3), normal(4)]),
    Case("linalg.matmul", np.linalg.matmul, [normal(2, 3), normal(3, 4)]),
    Case(
        "linalg.tensordot",
        lambda a, b: np.linalg.tensordot(a, b, axes=1),
        [normal(2, 3), normal(3, 2)],
    ),
    Case("linalg.trace", lambda x: np.linalg.trace(x, offset=1), [normal(2, 3, 4)]),
    Case("linalg.diagonal", np.linalg.diagonal, [normal(2, 3, 3)]),
    Case("linalg.cross", np.linalg.cross, [normal(2, 3), normal(2, 3)]),
    Case("unstack", lambda x: np.unstack(x, axis=1)[2] * np.unstack(x)[0][:1], [normal(3, 4)]),
    Case(
        "cumulative_sum",
        lambda x: np.cumulative_sum(x, axis=1, include_initial=True),
        [normal(3, 4)],
    ),
    Case("cumulative_prod", lambda x: np.cumulative_prod(x, include_initial=True), [signed(5)]),
    Case("nancumsum", lambda x: np.nancumsum(x + NAN34, axis=0), [normal(3, 4)]),
    Case("nancumprod", lambda x: np.nancumprod(x + NAN34, axis=1), [signed(3, 4)]),
    Case("logspace", lambda a, b: np.logspace(a, b, 4, base=3.0), [unit(2), unit(2)]),
    Case(
        "block", lambda a, b, c: np.block([[a, b], [c]]), [normal(2, 2), normal(2, 1), normal(1, 3)]
    ),
    Case("resize", lambda x: np.resize(x, (3, 5)), [normal(2, 3)]),
    Case("compress", lambda x: np.compress([True, False, True], x, axis=1), [normal(2, 3)]),
    Case("extract", lambda x: np.extract(np.arange(6).reshape(2, 3) % 2 == 0, x), [normal(2, 3)]),
    Case(
        "choose",
        lambda a, b: np.choose(np.array([[0, 1, 1], [1, 0, 1]]), [a, b]),
        [normal(2, 3), normal(3)],
    ),
    Case("modf", lambda x: np.modf(x)[0] * 2 + np.modf(x)[1], [positive(3, 4) + 0.03]),
    Case("divmod", lambda x: np.divmod(x, 0.7)[1], [positive(3, 4) + 0.03]),
    Case("ldexp", lambda x: np.ldexp(x, np.array([1, -2, 3])), [normal(2, 3)]),
    Case(
        "apply_along_axis",
        lambda x: np.apply_along_axis(lambda r: r * r.sum(), 1, x),
        [normal(3, 4)],
    ),
    Case("apply_along_axis-scalar", lambda x: np.apply_along_axis(np.prod, 0, x), [signed(3, 4)]),
    Case("vander", lambda x: np.vander(x, 4), [signed(3)]),
    Case("vander-increasing", lambda x: np.vander(x, increasing=True), [signed(4)]),
    Case("polyder", lambda p: np.polyder(p, 2), [normal(5)]),
    Case("polyint", lambda p, k: np.polyint(p, 2, k), [normal(4), normal(2)]),
    Case("polyadd", np.polyadd, [normal(3), normal(5)]),
    Case("polysub", np.polysub, [normal(4), normal(2)]),
    Case("polymul", np.polymul, [normal(3), normal(4)]),
    Case("poly", np.poly, [distinct(4)]),
    Case(
        "roots",
        lambda p: np.sort(np.roots(p).real),
        # roots 1, 3 and 6: apart enough that a 5% change of the coefficients (the Hypothesis
        # tests' perturbation) keeps them simple and the finite differences well conditioned
        # (roots 1, 2, 3 came within 0.4 of each other there, and second-order differences
        # missed by 1e-4)
        [np.array([1.0, -10.0, 27.0, -18.0]) + normal(4) * 0.01],
    ),
]

# The functions whose gradient is zero almost everywhere: they return plain (no-gradient)
# arrays on tensors, and are listed here so the tests can check that.
NO_GRADIENT = [
    np.sign,
    np.floor,
    np.ceil,
    np.round,
    np.rint,
    np.trunc,
    np.argmax,
    np.argmin,
    np.argsort,
    np.isnan,
    np.greater,
]

# --- numerically stable functions (chainrule.functions) -----------------------------------------

from chainrule import functions as F  # noqa: E402


def _with_zero_row(x: numpy.ndarray) -> numpy.ndarray:
    x = x.copy()
    x[0] = 0.0
    return x


CASES += [
    Case("F.logsumexp-all", F.logsumexp, [normal(3, 4)]),
    Case("F.logsumexp-axis", lambda x: F.logsumexp(x, axis=1), [normal(3, 4)]),
    Case(
        "F.logsumexp-axes-keepdims",
        lambda x: F.logsumexp(x, axis=(0, 2), keepdims=True),
        [normal(2, 3, 4)],
    ),
    Case("F.logsumexp-large", lambda x: F.logsumexp(x, axis=0), [normal(3, 4) * 1e3]),
    Case("F.logsumexp-scalar", F.logsumexp, [normal()]),
    Case("F.softmax", F.softmax, [normal(3, 4)]),
    Case("F.softmax-axis0", lambda x: F.softmax(x, axis=0), [normal(3, 4)]),
    Case(
        "F.softmax-of-expression", lambda x, w: F.softmax(x @ w * 2.0), [normal(3, 4), normal(4, 2)]
    ),
    Case("F.log_softmax", F.log_softmax, [normal(3, 4)]),
    Case("F.log_softmax-axis-none", lambda x: F.log_softmax(x, axis=None), [normal(2, 3)]),
    Case("F.log_softmax-3d-axis1", lambda x: F.log_softmax(x, axis=1), [normal(2, 3, 2)]),
    Case("F.sigmoid", F.sigmoid, [normal(3, 4)]),
    Case("F.sigmoid-scalar", F.sigmoid, [normal()]),
    Case("F.sigmoid-of-expression", lambda x: F.sigmoid(-x * 3.0), [normal(3, 4)]),
    Case("F.log_sigmoid", F.log_sigmoid, [normal(3, 4)]),
    Case("F.softplus", F.softplus, [normal(3, 4)]),
    Case("F.logit", F.logit, [positive(3, 4, lo=0.05, hi=0.95)]),
    Case("F.xlogy", F.xlogy, [normal(3, 4), positive(3, 4)]),
    Case("F.xlogy-broadcast", F.xlogy, [normal(3, 1), positive(4)]),
    Case("F.xlogy-x-zero", F.xlogy, [_with_zero_row(normal(3, 4)), positive(3, 4)]),
    Case("F.xlogy-of-expression", lambda x, y: F.xlogy(x * 2.0 - 1.0, y), [normal(3), positive(3)]),
    Case("F.entropy", lambda p: -F.xlogy(p, p).sum(axis=-1), [positive(3, 4, lo=0.05, hi=1.0)]),
    Case(
        "F.cross_entropy-labels",
        lambda z: F.cross_entropy_with_logits(z, numpy.array([0, 3, 1])),
        [normal(3, 4)],
    ),
    Case(
        "F.cross_entropy-probabilities",
        F.cross_entropy_with_logits,
        [normal(3, 4), positive(3, 4, lo=0.05, hi=1.0)],
    ),
    Case(
        "F.binary_cross_entropy",
        F.binary_cross_entropy_with_logits,
        [normal(3, 4), positive(3, 4, lo=0.0, hi=1.0)],
    ),
    Case("F.safe_norm-all", F.safe_norm, [normal(5)]),
    Case(
        "F.safe_norm-axis-keepdims", lambda x: F.safe_norm(x, axis=1, keepdims=True), [normal(3, 4)]
    ),
    Case("F.safe_norm-at-zero", lambda x: F.safe_norm(x, axis=0, eps=0.5), [numpy.zeros((3, 2))]),
]


def _mixed(y: Any) -> Any:
    """A real output from a complex one that reads both parts (so the check sees all of it)."""
    return (y * (0.6 - 0.8j)).real


fft = np.fft
# Discrete Fourier transforms, each with NumPy's padding/truncation (n, s), axes and norms.
CASES += [
    Case("fft", lambda x: _mixed(fft.fft(x)), [normal(6)]),
    Case("fft-n-pad-axis0-ortho", lambda x: _mixed(fft.fft(x, 7, 0, "ortho")), [normal(4, 3)]),
    Case("fft-n-cut-forward", lambda x: _mixed(fft.fft(x, n=3, norm="forward")), [normal(2, 5)]),
    Case("ifft", lambda x: _mixed(fft.ifft(x)), [normal(3, 5)]),
    Case("ifft-n-pad", lambda x: _mixed(fft.ifft(x, n=8)), [normal(5)]),
    Case("fft2", lambda x: _mixed(fft.fft2(x)), [normal(3, 4)]),
    Case("ifft2-ortho", lambda x: _mixed(fft.ifft2(x, norm="ortho")), [normal(2, 3, 4)]),
    Case("fftn-s-axes", lambda x: _mixed(fft.fftn(x, s=(5, 2), axes=(2, 0))), [normal(3, 2, 4)]),
    Case("ifftn", lambda x: _mixed(fft.ifftn(x)), [normal(2, 3, 2)]),
    Case("rfft", lambda x: _mixed(fft.rfft(x)), [normal(3, 6)]),
    Case("rfft-n-odd-axis0", lambda x: _mixed(fft.rfft(x, 5, 0)), [normal(4, 2)]),
    Case("rfft2-forward", lambda x: _mixed(fft.rfft2(x, norm="forward")), [normal(4, 4)]),
    Case("rfftn-s", lambda x: _mixed(fft.rfftn(x, s=(3, 7), axes=(1, 2))), [normal(2, 4, 5)]),
    Case("irfft", fft.irfft, [normal(2, 5)]),
    Case("irfft-n-odd-ortho", lambda x: fft.irfft(x, 7, norm="ortho"), [normal(4)]),
    Case("irfft-n-pad", lambda x: fft.irfft(x, n=12, axis=0), [normal(4, 3)]),
    Case("irfft2", fft.irfft2, [normal(3, 4)]),
    Case(
        "irfftn-s-axes-forward",
        lambda x: fft.irfftn(x, s=(4, 5), axes=(0, 2), norm="forward"),
        [normal(3, 2, 4)],
    ),
    Case("hfft", fft.hfft, [normal(4)]),
    Case("hfft-n-ortho", lambda x: fft.hfft(x, n=5, norm="ortho"), [normal(2, 4)]),
    Case("ihfft", lambda x: _mixed(fft.ihfft(x)), [normal(7)]),
    Case("fftshift", fft.fftshift, [normal(3, 5)]),
    Case("ifftshift-axes", lambda x: fft.ifftshift(x, axes=1), [normal(3, 5)]),
    Case("power-spectrum", lambda x: np.abs(fft.rfft(x)) ** 2, [normal(8)]),
    Case(
        "spectral-convolution",
        lambda x, k: fft.irfft(fft.rfft(x) * fft.rfft(k), n=8),
        [normal(2, 8), normal(8)],
    ),
]


def _svd(*shape: int) -> numpy.ndarray:
    """Matrices with well-separated singular values (1, 2, 3, ...), stacked by shape[:-2]."""
    m, n = shape[-2:]
    k = min(m, n)
    u, _ = numpy.linalg.qr(rng.standard_normal(shape[:-2] + (m, k)))
    v, _ = numpy.linalg.qr(rng.standard_normal(shape[:-2] + (n, k)))
    s = numpy.arange(1.0, k + 1) + rng.uniform(-0.1, 0.1, shape[:-2] + (k,))
    return (u * s[..., None, :]) @ numpy.swapaxes(v, -1, -2)


la = np.linalg
_W3 = numpy.array([1.0, -2.0, 0.5])  # weights that make a function of singular vectors unequal
# The SVD (gauge-invariant functions of the vectors: squares), the pseudo-inverse, least
# squares, eigh of the upper triangle, matrix norms and the tensor solvers.
CASES += [
    Case("svd-s", lambda a: la.svd(a, compute_uv=False), [_svd(4, 3)]),
    Case("svd-s-wide-stack", lambda a: la.svd(a)[1], [_svd(2, 3, 5)]),
    Case(
        "svd-reconstruct",
        lambda a: (lambda u, s, vh: (u * s) @ vh)(*la.svd(a, False)),
        [_svd(4, 3)],
    ),
    Case("svd-u-squared", lambda a: la.svd(a, full_matrices=False)[0] ** 2 * _W3, [_svd(5, 3)]),
    Case(
        "svd-vh-squared-wide",
        lambda a: la.svd(a, full_matrices=False)[2] ** 2 * _W3[:, None],
        [_svd(3, 4)],
    ),
    Case("svd-square-full", lambda a: la.svd(a)[0] ** 2 @ la.svd(a)[2] ** 2, [_svd(3, 3)]),
    Case("pinv-tall", la.pinv, [_svd(4, 3)]),
    Case("pinv-wide-stack", la.pinv, [_svd(2, 2, 4)]),
    Case("lstsq-vector", lambda a, b: la.lstsq(a, b, rcond=None)[0], [_svd(5, 3), normal(5)]),
    Case("lstsq-matrix", lambda a, b: la.lstsq(a, b, rcond=None)[0], [_svd(4, 2), normal(4, 3)]),
    Case("lstsq-residuals", lambda a, b: la.lstsq(a, b, rcond=None)[1], [_svd(5, 2), normal(5)]),
    Case("lstsq-singular-values", lambda a: la.lstsq(a, np.ones(4), rcond=None)[3], [_svd(4, 3)]),
    Case("eigh-upper", lambda a: la.eigh(a, UPLO="U")[0], [symmetric(3)]),
    Case("eigh-upper-vectors", lambda a: la.eigh(a, UPLO="U")[1] ** 2 * _W3, [symmetric(3)]),
    Case("eigvalsh-upper", lambda a: la.eigvalsh(a, UPLO="U"), [symmetric(2, 3)]),
    Case("norm-nuc", lambda a: la.norm(a, "nuc"), [_svd(3, 4)]),
    Case("norm-2", lambda a: la.norm(a, 2), [_svd(4, 3)]),
    Case("norm-minus-2", lambda a: la.norm(a, -2), [_svd(3, 3)]),
    Case(
        "norm-1-axes-keepdims",
        lambda a: la.norm(a, 1, axis=(2, 0), keepdims=True),
        [signed(3, 2, 4)],
    ),
    Case("norm-inf", lambda a: la.norm(a, np.inf), [distinct(3, 4)]),
    Case("norm-minus-1", lambda a: la.norm(a, -1), [distinct(3, 4)]),
    Case("tensorinv", lambda a: la.tensorinv(a, ind=2), [well_conditioned(6).reshape(2, 3, 6)]),
    Case("tensorsolve", la.tensorsolve, [well_conditioned(6).reshape(6, 2, 3), normal(6)]),
]
if hasattr(la, "svdvals"):
    CASES.append(Case("svdvals", la.svdvals, [_svd(3, 4)]))
if hasattr(la, "matrix_norm"):
    CASES.append(Case("matrix_norm-fro", la.matrix_norm, [normal(2, 3, 4)]))
    CASES.append(
        Case("matrix_norm-nuc", lambda x: la.matrix_norm(x, ord="nuc", keepdims=True), [_svd(3, 4)])
    )
    CASES.append(Case("vector_norm-all", la.vector_norm, [normal(3, 4)]))
    CASES.append(
        Case(
            "vector_norm-axes",
            lambda x: la.vector_norm(x, axis=(0, 2), ord=3, keepdims=True),
            [normal(2, 3, 4)],
        )
    )
CASES += [
    Case("qr-r-tall", lambda a: la.qr(a)[1], [_svd(5, 3)]),
    Case("qr-q-tall", lambda a: la.qr(a)[0], [_svd(5, 3)]),
    Case("qr-square-product", lambda a: (lambda q, r: q * r)(*la.qr(a)), [_svd(3, 3)]),
    Case(
        "qr-wide-stack",
        lambda a: (lambda q, r: q.sum(-1, keepdims=True) * r)(*la.qr(a)),
        [_svd(2, 3, 5)],
    ),
    Case("qr-mode-r", lambda a: la.qr(a, mode="r"), [_svd(4, 3)]),
    Case("qr-complete-r", lambda a: la.qr(a, mode="complete")[1], [_svd(4, 2)]),
]
# Symmetric functions of a general matrix's eigenvalues (their order is LAPACK's, arbitrary).
FIRST_ORDER_ONLY: set[str] = set()
CASES += [
    Case(
        "eigvals-power-sum",
        lambda a: (la.eigvals(a) ** 3).sum(axis=-1).real,
        [well_conditioned(2, 3)],
    ),
    Case("eig-abs-sum", lambda a: numpy.abs(la.eig(a)[0]).sum(), [well_conditioned(3)]),
]


def _sq(x: Any) -> Any:
    """|x|^2 elementwise, written so that it is also the square of a real x: a function of
    singular vectors or eigenvectors that does not depend on their signs or complex phases."""
    return (x * np.conj(x)).real


def _h(x: Any) -> Any:
    return np.conj(np.swapaxes(x, -1, -2))


# Phase-invariant functions of singular vectors and eigenvectors (their signs, and for complex
# matrices their phases, are LAPACK's convention): test_complex.py runs these with complex
# matrices too, where the squares of the cases above are refused (they depend on the phases).
CASES += [
    Case("svd-u-modulus", lambda a: _sq(la.svd(a, full_matrices=False)[0]) * _W3, [_svd(5, 3)]),
    Case(
        "svd-vh-modulus-wide",
        lambda a: _sq(la.svd(a, full_matrices=False)[2]) * _W3[:, None],
        [_svd(3, 4)],
    ),
    Case("svd-polar-factor", lambda a: (lambda u, s, vh: u @ vh)(*la.svd(a)), [_svd(3, 3)]),
    Case(
        "svd-projector-stack",
        lambda a: (lambda u, s, vh: u[..., :, :2] @ _h(u[..., :, :2]))(*la.svd(a, False)),
        [_svd(2, 4, 3)],
    ),
    Case(
        "svd-low-rank-stack",
        lambda a: (lambda u, s, vh: (u[..., :1] * s[..., None, :1]) @ vh[..., :1, :])(
            *la.svd(a, full_matrices=False)
        ),
        [_svd(2, 3, 4)],
    ),
    Case("eigh-vectors-modulus", lambda a: _sq(la.eigh(a)[1]) * _W3, [symmetric(3)]),
    Case(
        "eigh-upper-projector",
        lambda a: (lambda w, v: (v * w[..., None, :]) @ _h(v) + v[..., :1] @ _h(v[..., :1]))(
            *la.eigh(a, UPLO="U")
        ),
        [symmetric(2, 3)],
    ),
    Case("eig-vectors-modulus", lambda a: _sq(la.eig(a)[1]) * _W3, [well_conditioned(3)]),
    Case("eig-vectors-stack", lambda a: _sq(la.eig(a)[1]), [well_conditioned(2, 3)]),
    Case("eig-values-stack", lambda a: _mixed(la.eig(a)[0]), [well_conditioned(2, 3)]),
    Case("eigvals-stack", lambda a: _mixed(la.eigvals(a) ** 2), [well_conditioned(2, 3)]),
    Case("cholesky-solve", lambda a, b: la.solve(la.cholesky(a), b), [spd(3), normal(3, 2)]),
    Case(
        "qr-complete-square",
        lambda a: (lambda q, r: q @ r @ r)(*la.qr(a, "complete")),
        [_svd(3, 3)],
    ),
    Case("matrix_power-stack", lambda a: la.matrix_power(a, 3), [well_conditioned(2, 3) * 0.5]),
    Case("multi_dot-two", lambda a, b: la.multi_dot([a, b]), [normal(3, 4), normal(4, 2)]),
    Case(
        "norm-nuc-axes",
        lambda a: la.norm(a, "nuc", axis=(2, 0)),
        [numpy.moveaxis(_svd(2, 3, 3), 0, 1)],
    ),
    Case("pinv-square", la.pinv, [_svd(3, 3)]),
    Case(
        "inv-of-solve",
        lambda a, b: la.inv(la.solve(a, b)),
        [well_conditioned(3), well_conditioned(3)],
    ),
    Case("cond", la.cond, [_svd(3, 4)]),
    Case("cond-fro-stack", lambda a: la.cond(a, "fro"), [well_conditioned(2, 3)]),
    Case("slogdet-stack", lambda a: la.slogdet(a)[1], [well_conditioned(2, 3)]),
    Case("det-stack-product", lambda a: la.det(a) * la.det(_h(a)), [well_conditioned(2, 3)]),
]
