"""THE gradient table: one vector-Jacobian rule per primitive input, written once, in NumPy.

A rule is called as ``rule(g, out, *inputs, **params)``: ``g`` is the gradient arriving at the
primitive's output, ``out`` the output itself, ``inputs`` what the primitive was applied to.
It returns the gradient for one input, possibly still in the broadcast shape of ``out``; the
backward walk (:mod:`chainrule.engine.graph`) sums it back to the input's shape and casts it to the
input's dtype, so no rule unbroadcasts.

Rules use only operators, ``.T``, ``.shape``, ``.ndim``, ``.sum``, ``.reshape`` and NumPy
functions that are themselves primitives.  That is what lets one rule serve every reading of it:
on arrays it computes the gradient; on recording tensors it records the backward pass (gradients
of gradients, ``explain``, ``jit``).

Conventions where a function has no derivative
----------------------------------------------
* ``maximum(x, y)`` / ``minimum`` / ``fmax`` / ``fmin``: at a tie the whole gradient goes to the
  **first** argument (TensorFlow's documented choice).  So ``numpy.maximum(0, Z)`` — ReLU as the
  seed writes it — differentiates as ``(Z > 0)``, exactly PyTorch's ``relu``.  HIPS autograd and
  JAX split ties in half and give 0.5 at ``Z == 0``; we do not, because the ReLU derivative
  that users write by hand, and PyTorch, use 0 there.  (``numpy.maximum(Z, 0)`` gives 1 at 0.)
* ``abs``/``fabs``: 0 at 0 (``sign(0) = 0``), as PyTorch.
* ``clip(x, lo, hi)``: gradient 1 for ``lo <= x <= hi`` (bounds included), as PyTorch's ``clamp``.
* ``max``/``min`` reductions and ``linalg.norm(ord=inf)``: ties share the gradient equally, as
  PyTorch's ``amax`` and JAX.
* ``sort``: the gradient follows the stable sorting permutation.
* ``linalg.norm`` (2-norm / Frobenius): gradient 0 at the zero vector (a subgradient).
* ``power(x, y)`` with respect to ``y`` at ``x == 0``: 0, as PyTorch.

Complex numbers
---------------
chainrule follows HIPS autograd's and JAX's convention: a rule multiplies the incoming
cotangent by the derivative **without conjugating** it, so the rules of holomorphic operations
(``exp``, ``*``, ``@``, ``solve``, ...) are the real rules, unchanged, and a rule transposes
(``.T``), never conjugate-transposes.  The pairing behind every rule is
``<a, b> = Re(sum(a * b))``.  For a real-valued ``f`` of complex ``z = x + iy``, ``grad`` returns
``df/dx - i df/dy`` (a descent step is ``z -= lr * conj(grad)``); a real input's gradient is the
real part of the cotangent that reaches it.  Only the operations that are not holomorphic need
rules of their own: ``abs`` (``conj(z) / |z|``, 0 at 0), ``conj``, ``real``, ``imag``, ``vdot``,
``var``/``std``, ``linalg.norm`` (through ``|z|``) and the factorizations (SVD, ``eigh``, ``eig``'s
vectors, ``cholesky``, ``qr``, ``pinv``), whose ``A^T`` are ``A^H``: each is the adjoint-convention
rule (PyTorch's) conjugated.  A loss that depends on the phases of complex singular vectors or
eigenvectors (LAPACK's convention) has no gradient and raises.  A primitive is marked
``complex_ready`` below once its rule is right for complex values; recording a complex value
through any other primitive raises (never a silently wrong gradient).  PyTorch's gradients are
the conjugates of these.

dtypes: rules never introduce float64 constants (NumPy scalars would upcast float32 under
NEP 50); gradients come back in their input's dtype.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any, Literal

import numpy

from . import primitives as P
from . import triangular
from .graph import definplace, negated, passthrough, walk_memo
from .primitives import Primitive
from .reduce import window_route
from .scatter import add_at, axis_range

__all__ = ["defvjp", "defvjp_argnum", "Size"]

Rule = Callable[..., Any]


def defvjp(
    prim: Primitive,
    *rules: Rule | None,
    kink: Callable[..., Any] | None = None,
    complex_ready: bool = False,
) -> None:
    """Give ``prim`` one gradient rule per input (``None``: no gradient flows to that input).

    ``complex_ready=True`` says the rules also hold for complex values under chainrule's
    convention (module docstring); without it a complex value reaching ``prim`` raises.

    Example
    -------
    >>> defvjp(P.exp, lambda g, out, x: g * out)    # doctest: +SKIP
    """
    prim.vjps = rules
    prim.vjp_argnum = None
    prim.kink = kink
    if complex_ready:
        prim.complex_ready = True


def defvjp_argnum(
    prim: Primitive,
    rule: Rule,
    kink: Callable[..., Any] | None = None,
    complex_ready: bool = False,
) -> None:
    """Give ``prim`` one rule for every input: ``rule(argnum, g, out, *inputs, **params)``.

    For operations with any number of inputs; returning ``None`` gives that input no gradient.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> total = cr.primitive(lambda *xs: sum(xs), name="total")
    >>> cr.defvjp_argnum(total, lambda argnum, g, out, *xs: g)
    >>> cr.grad(lambda a, b, c: total(a, b, c), argnums=(0, 2))(1.0, 2.0, 3.0)
    (array(1.), array(1.))
    """
    prim.vjps = ()
    prim.vjp_argnum = rule
    prim.kink = kink
    if complex_ready:
        prim.complex_ready = True


# ---------------------------------------------------------------------------------------------
# Shared helpers (NumPy code, so they too work on arrays and on tensors)
# ---------------------------------------------------------------------------------------------

# Fast paths in the rules below apply to plain NumPy values only; on tensors (create_graph,
# explain, jit) the general NumPy code runs, so what gets recorded does not change.
_PLAIN = (numpy.ndarray, numpy.generic)


def _cj(x: Any) -> Any:
    """``conj(x)`` for complex values; real values unchanged (no operation recorded)."""
    dt = getattr(x, "dtype", None)
    return numpy.conjugate(x) if dt is not None and dt.kind == "c" else x


def _keep(v: Any, axis: Any, keepdims: bool) -> Any:
    """Re-insert reduced axes into a reduction's output so it broadcasts against its input."""
    if keepdims or axis is None:
        return v
    if type(v) is numpy.ndarray:  # numpy.expand_dims's reshape, without its 1 us of Python
        axes = (axis,) if type(axis) is int else tuple(axis)
        nd = v.ndim + len(axes)
        shape = list(v.shape)
        for a in sorted(a % nd for a in axes):
            shape.insert(a, 1)
        return v.reshape(shape)
    return numpy.expand_dims(v, axis)


def _unreduce(g: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    if isinstance(g, _PLAIN) and g.size == math.prod(shape):
        return g.reshape(shape)  # plain arrays, only length-1 axes reduced: no spreading
    return P.broadcast_to(_keep(g, axis, keepdims), shape=shape)


class Size(int):
    """A count of elements that remembers what it counts (so ``explain`` can print ``Y.size``).

    ``of`` is the tensor whose elements (along ``axis``, or all of them) were counted.  Rules
    make one only when recording (on arrays they use a plain int), and recording hands NumPy
    ``int(size)``, because NumPy treats int subclasses as strongly typed (float64).
    """

    of: Any
    axis: Any

    def __new__(cls, value: int, of: Any = None, axis: Any = None) -> Size:
        obj = super().__new__(cls, value)
        obj.of = of
        obj.axis = axis
        return obj

    def __reduce__(self) -> Any:
        return (int, (int(self),))


def _count(shape: tuple[int, ...], axis: Any) -> int:
    if axis is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in ((axis,) if isinstance(axis, int) else axis))


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _permute(x: Any, perm: tuple[int, ...]) -> Any:
    if perm == tuple(range(len(perm))):
        return x
    return x.transpose(perm) if type(x) is numpy.ndarray else numpy.transpose(x, perm)


# The table below is laid out by hand: one rule per argument, aligned, reads best as a table.
# fmt: off
# ---------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------

defvjp(P.add, passthrough, passthrough)
defvjp(P.subtract, passthrough,
                   negated)
defvjp(P.multiply, lambda g, out, x, y: g * y,
                   lambda g, out, x, y: g * x)
defvjp(P.divide, lambda g, out, x, y: g / y,
                 lambda g, out, x, y: -g * out / y)
defvjp(P.negative, negated)
defvjp(P.positive, passthrough)


def _power_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d/dx x**y = y * x**(y - 1); where y == 0 that is 0 everywhere, x == 0 included (x**0 is
    # the constant 1), so the exponent there is replaced by 1 rather than computing 0 * 0**-1.
    if isinstance(y, (int, float)):
        if y == 2:
            d = 2 * x
            if type(d) is numpy.ndarray and type(g) is numpy.ndarray and d.dtype == g.dtype \
                    and d.shape == g.shape:
                d *= g  # plain arrays: the same product, in d's memory
                return d
            return g * d
        if y == 0:
            return g * (0 * x)
        if y < 0 and float(y).is_integer() and getattr(x, "dtype", None) is not None \
                and x.dtype.kind == "f":
            # x**(y - 1) as x**y / x, a division rather than a second pow (which NumPy has no
            # fast loop for). For a whole y < 0 it is right everywhere: at 0 and at infinities
            # the signs follow the exponent's parity as pow's do (+-0 -> +-inf, +-inf -> +-0),
            # and where x**y overflows or underflows, x**(y - 1) does too. Not for a fractional
            # y (pow(-0, -0.5) is +inf: the ratio's sign would be wrong), a positive one (0/0 at
            # 0) or a complex x (overflow gives inf + nan*j).
            d = out / x
            if type(d) is numpy.ndarray and type(g) is numpy.ndarray and g.dtype == d.dtype \
                    and g.shape == d.shape:
                d *= y                  # plain arrays: the same operations, in d's memory
                d *= g
                return d
            return g * (y * d)
        return g * (y * P.power(x, y - 1))  # the primitive's function (x ** 3: whole_power)
    return g * (y * x ** numpy.where(y == 0, 1, y - 1))


def _power_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d/dy x**y = x**y log x; at x == 0 the limit (for y > 0) is 0, as in PyTorch.
    return g * (out * numpy.log(numpy.where(x == 0, 1, x)))


defvjp(P.power, _power_dx, _power_dy)
defvjp(P.float_power,
       lambda g, out, x, y: g * (y * numpy.float_power(x, y - 1)),
       lambda g, out, x, y: g * (out * numpy.log(numpy.where(x == 0, 1, x))))
defvjp(P.square, lambda g, out, x: g * (2 * x))
defvjp(P.sqrt, lambda g, out, x: g / (2 * out))
defvjp(P.cbrt, lambda g, out, x: g / (3 * out ** 2))


def _bessel_i1(x: Any) -> Any:
    # I1(x) = (1/pi) * integral over [0, pi] of exp(x cos t) cos t dt, by the trapezoid rule,
    # which for this periodic, analytic integrand converges geometrically: 128 intervals give
    # double precision (relative error below 1e-14 for |x| <= 100, tested against
    # scipy.special.i1). expm1, not exp: the integral of cos t is 0, and dropping the 1 keeps
    # the relative accuracy near x = 0 (I1(x) ~ x / 2; exp's sum leaves ~1e-16 there). NumPy
    # code, so the rule below differentiates again (d/dx I1: the integral with cos^2 t).
    t = numpy.linspace(0.0, numpy.pi, 129)
    c = numpy.cos(t)
    w = numpy.full(129, 1 / 128)
    w[0] = w[-1] = 1 / 256
    c, cw = P.const_like(c, x), P.const_like(c * w, x)
    return numpy.sum(numpy.expm1(numpy.expand_dims(x, -1) * c) * cw, axis=-1)


defvjp(P.i0, lambda g, out, x: g * _bessel_i1(x))  # d I0 / dx = I1
defvjp(P.reciprocal, lambda g, out, x: -g * out ** 2)
defvjp(P.remainder, passthrough,
                    lambda g, out, x, y: -g * numpy.floor_divide(x, y),
       kink=lambda x, y: numpy.floor_divide(x, y))
defvjp(P.fmod, passthrough,
               lambda g, out, x, y: -g * numpy.trunc(x / y),
       kink=lambda x, y: numpy.trunc(x / y))
defvjp(P.deg2rad, lambda g, out, x: g * (math.pi / 180))
defvjp(P.rad2deg, lambda g, out, x: g * (180 / math.pi))

# ---------------------------------------------------------------------------------------------
# Exponentials and logarithms
# ---------------------------------------------------------------------------------------------

defvjp(P.exp, lambda g, out, x: g * out)
defvjp(P.exp2, lambda g, out, x: g * (out * P.LOG2))
defvjp(P.expm1, lambda g, out, x: g * (out + 1))
defvjp(P.log, lambda g, out, x: g / x)
defvjp(P.log2, lambda g, out, x: g / (x * P.LOG2))
defvjp(P.log10, lambda g, out, x: g / (x * P.LOG10))
defvjp(P.log1p, lambda g, out, x: g / (1 + x))
# d/dx log(e^x + e^y) = sigmoid(x - y): exact at any magnitude (exp(x - out) is not: out is
# rounded, and at 1e300 the rounding error is as large as the answer).
defvjp(P.logaddexp, lambda g, out, x, y: g * P.sigmoid(x - y),
                    lambda g, out, x, y: g * P.sigmoid(y - x))
defvjp(P.logaddexp2, lambda g, out, x, y: g * P.sigmoid((x - y) * P.LOG2),
                     lambda g, out, x, y: g * P.sigmoid((y - x) * P.LOG2))

# ---------------------------------------------------------------------------------------------
# Trigonometric and hyperbolic
# ---------------------------------------------------------------------------------------------

defvjp(P.sin, lambda g, out, x: g * numpy.cos(x))
defvjp(P.cos, lambda g, out, x: -g * numpy.sin(x))
defvjp(P.tan, lambda g, out, x: g * (1 + out ** 2))
defvjp(P.arcsin, lambda g, out, x: g / numpy.sqrt(1 - x ** 2))
defvjp(P.arccos, lambda g, out, x: -g / numpy.sqrt(1 - x ** 2))
defvjp(P.arctan, lambda g, out, x: g / (1 + x ** 2))
defvjp(P.arctan2, lambda g, out, y, x: g * x / (x ** 2 + y ** 2),
                  lambda g, out, y, x: -g * y / (x ** 2 + y ** 2))
defvjp(P.sinh, lambda g, out, x: g * numpy.cosh(x))
defvjp(P.cosh, lambda g, out, x: g * numpy.sinh(x))
defvjp(P.tanh, lambda g, out, x: g * (1 - out ** 2))
defvjp(P.arcsinh, lambda g, out, x: g / numpy.sqrt(x ** 2 + 1))
# sqrt(x - 1) * sqrt(x + 1), not sqrt(x ** 2 - 1): equal for real x > 1, and the derivative of
# NumPy's principal branch for complex x (the one-root form has the wrong sign where Re x < 0).
defvjp(P.arccosh, lambda g, out, x: g / (numpy.sqrt(x - 1) * numpy.sqrt(x + 1))
       if x.dtype.kind == "c" else g / numpy.sqrt(x ** 2 - 1))
defvjp(P.arctanh, lambda g, out, x: g / (1 - x ** 2))
defvjp(P.hypot, lambda g, out, x, y: g * x / out,
                lambda g, out, x, y: g * y / out)

# ---------------------------------------------------------------------------------------------
# Piecewise functions (the conventions at their kinks are in the module docstring)
# ---------------------------------------------------------------------------------------------

def _abs_vjp(g: Any, out: Any, x: Any) -> Any:
    if x.dtype.kind == "c":  # |z| = sqrt(x^2 + y^2): d/dx - i d/dy = conj(z) / |z|, 0 at 0
        return g * (numpy.conjugate(x) / numpy.where(out == 0, numpy.inf, out))
    return g * numpy.sign(x)


defvjp(P.absolute, _abs_vjp, kink=lambda x: numpy.sign(x))
defvjp(P.fabs, lambda g, out, x: g * numpy.sign(x), kink=lambda x: numpy.sign(x))
defvjp(P.copysign, lambda g, out, x, y: g * (numpy.sign(x) * numpy.sign(out)), None,
       kink=lambda x, y: numpy.sign(x) * numpy.sign(y))
# Ties go to the first argument: maximum(0, Z) differentiates as (Z > 0).
defvjp(P.maximum, lambda g, out, x, y: g * (x >= y),
                  lambda g, out, x, y: g * (y > x),
       kink=lambda x, y: x >= y)
defvjp(P.minimum, lambda g, out, x, y: g * (x <= y),
                  lambda g, out, x, y: g * (y < x),
       kink=lambda x, y: x <= y)
# fmax/fmin ignore NaN: the gradient goes to the argument that was returned.
defvjp(P.fmax, lambda g, out, x, y: g * ((x >= y) | numpy.isnan(y)),
               lambda g, out, x, y: g * ((y > x) | numpy.isnan(x)),
       kink=lambda x, y: x >= y)
defvjp(P.fmin, lambda g, out, x, y: g * ((x <= y) | numpy.isnan(y)),
               lambda g, out, x, y: g * ((y < x) | numpy.isnan(x)),
       kink=lambda x, y: x <= y)


def _clip_dx(g: Any, out: Any, x: Any, lo: Any, hi: Any) -> Any:
    # Bounds included, as PyTorch's clamp: the gradient passes at x == lo and x == hi.
    if lo is None:
        return g * (x <= hi)
    if hi is None:
        return g * (x >= lo)
    return g * ((x >= lo) & (x <= hi))


def _clip_kink(x: Any, lo: Any, hi: Any) -> Any:
    below = numpy.zeros(numpy.shape(x), bool) if lo is None else x < lo
    above = numpy.zeros(numpy.shape(x), bool) if hi is None else x > hi
    return below.astype(numpy.int8) - above.astype(numpy.int8)


defvjp(P.clip, _clip_dx,
       lambda g, out, x, lo, hi: g * (x < lo),
       lambda g, out, x, lo, hi: g * (x > hi),
       kink=_clip_kink)
defvjp(P.where, None,
       lambda g, out, c, x, y: numpy.where(c, g, 0),
       lambda g, out, c, x, y: numpy.where(c, 0, g))

# ---------------------------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------------------------


def _products(
    da_rest: Callable[..., Any], db_rest: Callable[..., Any], name: str
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The rules of a product (``matmul``, ``dot``): the case of two plain matrices written
    once, for both (they are the hottest rules), and the rest of each product's own rules.

    Two matrices: ``g @ b.T`` and ``a.T @ g``, spelled ``.dot`` where that is the faster call
    (:func:`chainrule.engine.primitives.dot_is_faster`, inlined; jit's code spells it alike).
    """
    nd = numpy.ndarray

    def da(g: Any, out: Any, a: Any, b: Any) -> Any:
        if type(g) is nd and type(a) is nd and type(b) is nd and a.ndim == 2 and b.ndim == 2:
            if g.size * b.shape[0] <= P.SMALL_PRODUCT or g.shape[1] == 1:  # (m, n, k)
                return g.dot(b.T)
            return g @ b.T
        return da_rest(g, out, a, b)

    def db(g: Any, out: Any, a: Any, b: Any) -> Any:
        if type(g) is nd and type(a) is nd and type(b) is nd and a.ndim == 2 and b.ndim == 2:
            if a.size * g.shape[1] <= P.SMALL_PRODUCT or a.shape[0] == 1:  # (k, m, n)
                return a.T.dot(g)
            return a.T @ g
        return db_rest(g, out, a, b)

    da.__name__, db.__name__ = f"_{name}_da", f"_{name}_db"
    return da, db


def _matmul_da(g: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 2 and b.ndim == 2:
        return g @ b.T
    if b.ndim == 1:
        if a.ndim == 1:
            return g * b
        return numpy.outer(g, b) if a.ndim == 2 else numpy.expand_dims(g, -1) * b
    if a.ndim == 1:
        return b @ g if b.ndim == 2 else (numpy.expand_dims(g, -2) @ _mT(b))[..., 0, :]
    return P.matmul(g, _mT(b))  # (a stack times one matrix: the primitive's one product)


def _matmul_db(g: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 2 and b.ndim == 2:
        return a.T @ g
    if a.ndim == 1:
        if b.ndim == 1:
            return g * a
        return numpy.outer(a, g) if b.ndim == 2 else \
            numpy.expand_dims(a, -1) * numpy.expand_dims(g, -2)
    if b.ndim == 1:
        return a.T @ g if a.ndim == 2 else (_mT(a) @ numpy.expand_dims(g, -1))[..., 0]
    if b.ndim == 2 or (b.ndim <= a.ndim and b.size == b.shape[-2] * b.shape[-1]):
        # a stack of matrices times one matrix (a layer applied to every sequence of a batch;
        # b may have axes of length 1 before it): the sum over the stack of a_i^T g_i is one
        # product of all the stack's rows
        return numpy.reshape(
            P.matmul(a.reshape(-1, a.shape[-1]).T, g.reshape(-1, g.shape[-1])), b.shape
        )
    return P.matmul(_mT(a), g)


defvjp(P.matmul, *_products(_matmul_da, _matmul_db, "matmul"))


def _tensordot_da(g: Any, out: Any, a: Any, b: Any, axes: Any) -> Any:
    a_ax, b_ax = axes
    a_free = [i for i in range(a.ndim) if i not in a_ax]
    b_free = [i for i in range(b.ndim) if i not in b_ax]
    fa = len(a_free)
    ga = numpy.tensordot(g, b, axes=(list(range(fa, fa + len(b_free))), b_free))
    # ga's axes: a's free axes, then b's contracted axes in b's order (each pairs with an a axis)
    paired = tuple(a_ax[b_ax.index(j)] for j in sorted(b_ax))
    return _permute(ga, _inverse(tuple(a_free) + paired))


def _tensordot_db(g: Any, out: Any, a: Any, b: Any, axes: Any) -> Any:
    a_ax, b_ax = axes
    a_free = [i for i in range(a.ndim) if i not in a_ax]
    b_free = [i for i in range(b.ndim) if i not in b_ax]
    gb = numpy.tensordot(a, g, axes=(a_free, list(range(len(a_free)))))
    # gb's axes: a's contracted axes in a's order (each pairs with a b axis), then b's free axes
    paired = tuple(b_ax[a_ax.index(i)] for i in sorted(a_ax))
    return _permute(gb, _inverse(paired + tuple(b_free)))


defvjp(P.tensordot, _tensordot_da, _tensordot_db)


def _dot_axes(a: Any, b: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (a.ndim - 1,), (max(b.ndim - 2, 0),)


def _dot_da(g: Any, out: Any, a: Any, b: Any) -> Any:
    if numpy.ndim(a) == 0 or numpy.ndim(b) == 0:  # t.dot(2.0): a product with a scalar
        return g * b
    if a.ndim <= 2 and b.ndim <= 2:
        return _matmul_da(g, out, a, b)
    return _tensordot_da(g, out, a, b, _dot_axes(a, b))


def _dot_db(g: Any, out: Any, a: Any, b: Any) -> Any:
    if numpy.ndim(a) == 0 or numpy.ndim(b) == 0:
        return g * a
    if a.ndim <= 2 and b.ndim <= 2:
        return _matmul_db(g, out, a, b)
    return _tensordot_db(g, out, a, b, _dot_axes(a, b))


defvjp(P.dot, *_products(_dot_da, _dot_db, "dot"))


def _inner_axes(a: Any, b: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (a.ndim - 1,), (b.ndim - 1,)


defvjp(P.inner,
       lambda g, out, a, b: g * b if a.ndim == 0 or b.ndim == 0
       else _tensordot_da(g, out, a, b, _inner_axes(a, b)),
       lambda g, out, a, b: g * a if a.ndim == 0 or b.ndim == 0
       else _tensordot_db(g, out, a, b, _inner_axes(a, b)))
# vdot(a, b) = sum(conj(a) * b): conjugate-linear in a, so a's cotangent is conjugated.
defvjp(P.vdot, lambda g, out, a, b: _cj(g * numpy.reshape(b, a.shape)),
               lambda g, out, a, b: g * _cj(numpy.reshape(a, b.shape)))
defvjp(P.outer,
       lambda g, out, a, b: numpy.reshape(g @ numpy.reshape(b, (-1,)), a.shape),
       lambda g, out, a, b: numpy.reshape(numpy.reshape(a, (-1,)) @ g, b.shape))



def _correlate_da(g: Any, out: Any, a: Any, v: Any, mode: str) -> Any:
    # c[k] = sum_j a_padded[k + j] conj(v[j]): each a_padded[i] meets g[k] v[i - k], a full
    # convolution of g with conj(v), whose padded ends are cut off again
    left = P.correlate_pads(mode, v.shape[0])[0]
    return numpy.convolve(g, _cj(v))[left : left + a.shape[0]]


def _correlate_dv(g: Any, out: Any, a: Any, v: Any, mode: str) -> Any:
    # conjugate-linear in v: conj(sum_k g[k] a_padded[k + j]), the valid correlation of the
    # conjugated padded a with g (numpy.correlate conjugates g back)
    pads = P.correlate_pads(mode, v.shape[0])
    a = _cj(a)
    return numpy.correlate(numpy.pad(a, pads) if pads[0] or pads[1] else a, g, "valid")


defvjp(P.correlate, _correlate_da, _correlate_dv)


def _einsum_vjp(argnum: int, g: Any, out: Any, *ops: Any, subscripts: str, optimize: Any) -> Any:
    ins, out_sub = subscripts.split("->")
    terms = ins.split(",")
    target = terms[argnum]
    others = [(t, op) for j, (t, op) in enumerate(zip(terms, ops)) if j != argnum]
    have = set(out_sub).union(*(t for t, _ in others))
    unused = iter(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  if c not in subscripts)
    extra: list[tuple[str, Any]] = []
    new_target = ""
    seen: set[str] = set()
    for c, n in zip(target, ops[argnum].shape):
        if c in seen:               # a repeated index (a diagonal): spread g along it with eye
            d = next(unused)
            extra.append((c + d, P.const_like(numpy.eye(n, dtype=g.dtype), g)))
            new_target += d
            continue
        seen.add(c)
        new_target += c
        if c not in have:           # summed over in this operand only: broadcast with ones
            extra.append((c, P.const_like(numpy.ones(n, dtype=g.dtype), g)))
            have.add(c)
    spec = ",".join([out_sub] + [t for t, _ in others] + [t for t, _ in extra]) + "->" + new_target
    # the primitive (engine.contract's matrix products), on arrays and on tensors alike
    return P.einsum(g, *(op for _, op in others), *(e for _, e in extra), subscripts=spec,
                    optimize=optimize)


defvjp_argnum(P.einsum, _einsum_vjp)


def _trace_vjp(g: Any, out: Any, x: Any, offset: int, axis1: int, axis2: int) -> Any:
    eye = P.const_like(numpy.eye(x.shape[axis1], x.shape[axis2], k=offset, dtype=g.dtype), g)
    if x.ndim == 2:
        return g * eye if axis1 < axis2 else g * eye.T
    gx = numpy.expand_dims(g, (-2, -1)) * eye
    return numpy.moveaxis(gx, (-2, -1), (axis1, axis2))


def _diagonal_vjp(g: Any, out: Any, x: Any, offset: int, axis1: int, axis2: int) -> Any:
    n, m = x.shape[axis1], x.shape[axis2]
    eye = P.const_like(numpy.eye(n, m, k=offset, dtype=g.dtype), g)
    d = g.shape[-1]
    lead = ((0, 0),) * (g.ndim - 1)
    if offset >= 0:     # element (r, r + offset) is out[..., r]
        gx = numpy.expand_dims(numpy.pad(g, lead + ((0, n - d),)), -1) * eye
    else:               # element (c - offset, c) is out[..., c]
        gx = numpy.expand_dims(numpy.pad(g, lead + ((0, m - d),)), -2) * eye
    if (axis1, axis2) == (x.ndim - 2, x.ndim - 1):
        return gx
    return numpy.moveaxis(gx, (-2, -1), (axis1, axis2))


defvjp(P.trace, _trace_vjp)
defvjp(P.diagonal, _diagonal_vjp)


# --- solving and inverting: X = A^-1 B, d(det A) = det A * A^-T, d(log|det A|) = A^-T ---------

def _mT(x: Any) -> Any:
    return x.swapaxes(-1, -2) if type(x) is numpy.ndarray else numpy.swapaxes(x, -1, -2)


def _solve_t(g: Any, a: Any, b: Any) -> Any:
    # A^-T g; b a vector (NumPy 2: only when b.ndim == 1) is solved as a column.  The
    # primitive, not numpy.linalg.solve: on arrays it reuses the forward's LU of A (factors.py)
    if numpy.ndim(b) == 1:
        return P.solve(_mT(a), g[..., None])[..., 0]
    return P.solve(_mT(a), g)


def _solve_vjp_b(g: Any, out: Any, a: Any, b: Any) -> Any:
    # dB = A^-T g: on arrays, the one A's rule (run first) left in the pass's memo, if it did
    memo = walk_memo()
    if memo is not None and type(g) is numpy.ndarray:
        kept = memo.pop(("solve", id(a), id(g)), None)
        if kept is not None:
            return kept[2]
    return _solve_t(g, a, b)


def _solve_vjp_a(g: Any, out: Any, a: Any, b: Any) -> Any:
    # dA = -dB X^T, X = out
    gb = _solve_t(g, a, b)
    memo = walk_memo()
    if memo is not None and type(g) is numpy.ndarray and type(gb) is numpy.ndarray:
        memo["solve", id(a), id(g)] = (a, g, gb)  # for B's rule (a and g held: ids unique)
    if numpy.ndim(b) == 1:
        return -(gb[..., :, None] * out[..., None, :])
    return -(gb @ _mT(out))


def _lower_triangle(s: Any, uplo: str = "L") -> Any:
    """The gradient of a function that reads only the lower triangle of a symmetric A (as
    NumPy's cholesky and eigh do; the upper one with UPLO='U'), from S, its gradient for
    symmetric perturbations: entry (i, j), i > j, stands for both (i, j) and (j, i); nothing
    on the other side of the diagonal is read.  A Hermitian A is read the same way: entry
    (i, j) stands for (i, j) and, conjugated, (j, i), so S^T becomes S^H, and LAPACK reads
    only the real part of the diagonal, whose gradient is therefore real."""
    n = numpy.shape(s)[-1]
    if _blas_matrices(s):  # the same values, in place of new arrays
        both = s + numpy.conjugate(s.T) if s.dtype.kind == "c" else s + s.T
        triangular.zero_upper(both.T if uplo == "U" else both)
        both.flat[:: n + 1] -= numpy.real(numpy.diagonal(s))
        return both
    eye = P.const_like(numpy.eye(n), s)
    if s.dtype.kind == "c":
        both = s + numpy.conjugate(_mT(s))
        half = numpy.triu(both) if uplo == "U" else numpy.tril(both)
        return half - numpy.real(s) * eye
    both = s + _mT(s)
    half = numpy.triu(both) if uplo == "U" else numpy.tril(both)
    return half - s * eye


def _phase_tol(dtype: Any) -> float:
    return 100 * math.sqrt(float(numpy.finfo(dtype).eps))


def _phase_free(g: Any, v: Any, where: str) -> None:
    """Refuse, loudly, a loss that depends on the phases of complex unit vectors (the columns
    of ``v``: eigenvectors, singular vectors), which LAPACK fixes by an arbitrary convention, so
    that the loss has no derivative.  Invariance under v_j -> v_j e^{i t} means
    Im(sum_i g_ij v_ij) = 0 for every column j, up to rounding: relative to the column of g,
    and at least sqrt(eps) (a cotangent that is itself rounding noise, as where a loss is
    stationary in v, is not mistaken for a dependence; PyTorch uses 1e-2).  Checked on plain
    arrays (the eager path), where it costs one product; a recorded backward pass is not."""
    if not (isinstance(g, _PLAIN) and isinstance(v, _PLAIN)) or v.dtype.kind != "c":
        return
    drift = numpy.abs(numpy.imag(numpy.sum(numpy.multiply(g, v), axis=-2)))
    scale = numpy.sqrt(numpy.sum(numpy.abs(g) ** 2, axis=-2))
    floor = math.sqrt(float(numpy.finfo(v.dtype).eps))
    if numpy.any(drift > numpy.maximum(_phase_tol(v.dtype) * scale, floor)):
        raise ValueError(
            f"{where}: the loss depends on the phases of the complex vectors (each is defined "
            "only up to a factor e^(i t), which LAPACK chooses by convention), so it has no "
            "gradient. Differentiate a phase-invariant function of them instead: |v|**2, "
            "v @ v.conj().T, u @ vh, or the eigenvalues / singular values"
        )


def _cholesky_vjp(g: Any, out: Any, a: Any) -> Any:
    # A = L L^T.  With Phi(X) = tril(X) with its diagonal halved, the gradient with respect to
    # a symmetric dA is S = L^-T Phi(L^T tril(g)) L^-1 (Murray 2016).
    phi = _phi(_lower_t_times(out, numpy.tril(g)))
    # A complex A = L L^H: the same with L^-1 conjugated, S = L^-T Phi(L^T tril(g)) conj(L)^-1
    x = _solve_lower_t(out, phi)                                # L^-T Phi
    s = _mT(_solve_lower_t(_cj(out), _mT(x)))                   # (L^-T Phi) conj(L)^-1
    return _lower_triangle(s)


def _blas_matrices(*xs: Any) -> bool:
    """Whether BLAS's triangular routines take these operands (chainrule.engine.triangular):
    plain matrices of one of LAPACK's types, and SciPy installed."""
    t = xs[0].dtype if type(xs[0]) is numpy.ndarray else None
    return (
        t in triangular.LAPACK_TYPES
        and all(type(x) is numpy.ndarray and x.ndim == 2 and x.dtype == t for x in xs)
        and triangular.available()
    )


def _lower_t_times(low: Any, b: Any) -> Any:
    """L^T @ b for a lower-triangular L: BLAS's trmm on plain matrices (half the work)."""
    if _blas_matrices(low, b):
        return triangular.lower_t_times(low, b)
    return _mT(low) @ b


def _phi(x: Any) -> Any:
    """Phi(X): the lower triangle of X with its diagonal halved (a new plain X is overwritten)."""
    if _blas_matrices(x):
        triangular.zero_upper(x)
        x.flat[:: x.shape[0] + 1] *= 0.5
        return x
    n = numpy.shape(x)[-1]
    return x * P.const_like(numpy.tril(numpy.ones((n, n))) - 0.5 * numpy.eye(n), x)


def _solve_lower_t(lower: Any, b: Any) -> Any:
    """L^-T b for a lower-triangular L: numpy.linalg.solve, or (on plain matrices, where SciPy
    is installed) BLAS's triangular solve, the same solution at a third of the cost."""
    if _blas_matrices(lower, b):
        return triangular.solve(_mT(lower), b, lower=False)
    return numpy.linalg.solve(_mT(lower), b)


def _eigvalsh_vjp(g: Any, out: Any, a: Any, UPLO: str = "L") -> Any:  # noqa: N803
    # A = V diag(w) V^T: dw_k = v_k^T dA v_k, so S = V diag(g) V^T (complex: conj(V) diag(g) V^T)
    v = P.eigvecsh(a, UPLO=UPLO)
    return _lower_triangle((_cj(v) * g[..., None, :]) @ _mT(v), UPLO)


def _eigvecsh_vjp(g: Any, out: Any, a: Any, UPLO: str = "L") -> Any:  # noqa: N803
    # dV = V (F * (V^T dA V)) with F_ij = 1 / (w_j - w_i) off the diagonal, 0 on it, so
    # S = V (F * (V^T g)) V^T.  Repeated eigenvalues have no such derivative (F is infinite).
    # Hermitian A (dV = V (F * (V^H dA V)), the phase of each v_k held): S = conj(V) (F *
    # (V^T g)) V^T, for a loss that does not depend on those phases.
    _phase_free(g, out, "numpy.linalg.eigh (eigenvectors)")
    w = P.eighvals(a, UPLO=UPLO)
    n = numpy.shape(out)[-1]
    eye = P.const_like(numpy.eye(n), w)
    f = (1 - eye) / (w[..., None, :] - w[..., :, None] + eye)
    return _lower_triangle(_cj(out) @ (f * (_mT(out) @ g)) @ _mT(out), UPLO)


defvjp(P.cholesky, _cholesky_vjp)
defvjp(P.eigvalsh, _eigvalsh_vjp)
defvjp(P.eighvals, _eigvalsh_vjp)
defvjp(P.eigvecsh, _eigvecsh_vjp)

# --- the SVD, the pseudo-inverse and least squares (real matrices; Townsend 2016, Golub &
# Pereyra 1973). A = U diag(S) Vh, thin; F_ij = 1 / (s_j^2 - s_i^2) off the diagonal, which
# is infinite where singular values repeat: there U and Vh have no derivative (as in PyTorch
# and JAX; S always has one). The loss must not depend on the signs of singular vectors.


def _svd_f(s: Any) -> Any:
    s2 = s * s
    eye = P.const_like(numpy.eye(numpy.shape(s)[-1]), s)
    return (1 - eye) / (s2[..., None, :] - s2[..., :, None] + eye)


def _thin_only(a: Any, u_or_vh: Any, which: str) -> None:
    k = min(numpy.shape(a)[-2:])
    if numpy.shape(u_or_vh)[-1 if which == "U" else -2] != k:
        raise TypeError(
            f"numpy.linalg.svd: {which} of a non-square matrix with full_matrices=True has no "
            "gradient (its extra singular vectors are not unique); pass full_matrices=False"
        )


def _svd_u_vjp(g: Any, out: Any, a: Any, full: bool = False) -> Any:
    # Complex A = U S V^H (Townsend's derivation with ^T -> ^H; autograd's and JAX's
    # convention conjugates the adjoint's result): with J = U^T g,
    # gA = conj(U) [(F * (J - J^H)) S + i Im diag(J) / S] conj(Vh) + (g - conj(U) J) S^-1 conj(Vh).
    # g includes what Vh's rule sent back through its edge to U (-i conj(U) Im diag(Vh gVh^T)),
    # so Im diag(J) is the loss's derivative along the phase of each singular pair: zero for a
    # loss with a gradient (checked on the eager path), and the diagonal term then vanishes.
    _thin_only(a, out, "U")
    _phase_free(g, out, "numpy.linalg.svd (singular vectors)")
    s = P.svd_s(a)
    vh = P.svd_vh(a, out, full=False)
    uc, vhc = _cj(out), _cj(vh)
    utg = _mT(out) @ g
    j = _svd_f(s) * (utg - _cj(_mT(utg)))
    core = j * s[..., None, :]
    if utg.dtype.kind == "c":
        eye = P.const_like(numpy.eye(numpy.shape(s)[-1]), s)
        core = core + 1j * (numpy.imag(utg) * eye) / s[..., None, :]
    inner = (g - uc @ utg) / s[..., None, :]           # (I - U U^H) gU S^-1
    return uc @ core @ vhc + inner @ vhc


def _svd_vh_vjp(argnum: int, g: Any, out: Any, a: Any, u: Any, full: bool = False) -> Any:
    # With K = Vh g^T: gA = conj(U) [S (F * (conj(K) - K^T)) + i Im diag(K) / S] conj(Vh)
    #                       + conj(U) S^-1 g (I - Vh^T conj(Vh))
    # (the phase term as if V alone held each pair's phase); to U it sends -i conj(U) Im diag(K),
    # which moves that term's derivative along the phases to U's rule (see _svd_u_vjp).
    _thin_only(a, out, "Vh")
    vtg = out @ _mT(g)                                  # V^H gV, with gV = g^T
    if argnum == 1:
        if vtg.dtype.kind != "c":
            return None
        phase = numpy.imag(numpy.diagonal(vtg, axis1=-2, axis2=-1))
        return _cj(u) * (-1j * phase)[..., None, :]
    s = P.svd_s(a)
    uc, vhc = _cj(u), _cj(out)
    core = s[..., :, None] * (_svd_f(s) * (_cj(vtg) - _mT(vtg)))
    if vtg.dtype.kind == "c":
        eye = P.const_like(numpy.eye(numpy.shape(s)[-1]), s)
        core = core + 1j * (numpy.imag(vtg) * eye) / s[..., :, None]
    inner = (g - (g @ _mT(out)) @ vhc) / s[..., :, None]  # S^-1 gV^T (I - V V^H)
    return uc @ core @ vhc + uc @ inner


def _svd_s_vjp(g: Any, out: Any, a: Any) -> Any:
    u = P.svd_u(a)
    return (_cj(u) * g[..., None, :]) @ _cj(P.svd_vh(a, u))


defvjp(P.svd_s, _svd_s_vjp)
defvjp(P.svd_u, _svd_u_vjp)
defvjp_argnum(P.svd_vh, _svd_vh_vjp)


def _qr_square(gq: Any, gr: Any, q: Any, r: Any) -> Any:
    # A = Q R with R square: gA = (gQ + Q copyltu(M)) R^-T, M = R gR^T - gQ^T Q, where
    # copyltu copies the lower triangle onto the upper one
    # copyltu(M) = tril(M, -1) + tril(M, -1)^H + Re diag(M); complex A (R's diagonal real, as
    # LAPACK makes it): gA = (gQ + conj(Q copyltu(M))) R^-T, the adjoint's rule conjugated
    m = -(_mT(gq) @ q) if gr is None else r @ _mT(gr) - (0 if gq is None else _mT(gq) @ q)
    if m.dtype.kind == "c":
        low = numpy.tril(m, -1)
        eye = P.const_like(numpy.eye(numpy.shape(m)[-1]), r)
        b = numpy.conjugate(q @ (low + numpy.conjugate(_mT(low)) + numpy.real(m) * eye))
    else:
        b = q @ (numpy.tril(m) + _mT(numpy.tril(m, -1)))
    if gq is not None:
        b = gq + b
    return _mT(numpy.linalg.solve(r, _mT(b)))


def _qr_vjp(gq: Any, gr: Any, a: Any, mode: str) -> Any:
    q, r = P.qr_q(a), P.qr_r(a)  # the reduced factors: all the formulas need
    rows, cols = numpy.shape(a)[-2:]
    if mode == "complete" and rows > cols and gq is not None:
        raise TypeError(
            "numpy.linalg.qr: Q of a tall matrix in mode='complete' has no gradient (its extra "
            "columns are not unique); use mode='reduced'"
        )
    if rows >= cols:  # (mode='complete' pads R with zero rows: constants, no gradient)
        gr = None if gr is None else gr[..., :cols, :]
        return _qr_square(gq, gr, q, r)
    # wide: A = [X | Y] with X = Q U square, Y = Q V, R = [U | V]
    gu = None if gr is None else gr[..., :, :rows]
    gv = None if gr is None else gr[..., :, rows:]
    y = a[..., :, rows:]
    if gv is not None:  # V = Q^H Y
        gq = _cj(y @ _mT(gv)) if gq is None else gq + _cj(y @ _mT(gv))
    gx = _qr_square(gq, gu, q, r[..., :, :rows])
    gy = _cj(q) @ gv if gv is not None else 0 * y
    return numpy.concatenate([gx, gy], axis=-1)


def _eig_from(g: Any, v: Any) -> Any:
    # A = V diag(w) V^-1: dw_k = (V^-1 dA V)_kk, holomorphic, so gA = V^-T diag(g) V^T
    # (distinct eigenvalues; a repeated one has no derivative)
    return _mT(numpy.linalg.inv(v)) @ (g[..., :, None] * _mT(v))


def _eigvals_vjp(g: Any, out: Any, a: Any) -> Any:
    # LAPACK orders eigenvalues computed without vectors differently from eig's for larger
    # matrices: each eigenvector is matched to its eigenvalue (the nearest of eig's values)
    w, v = P.eigw(a), P.eigvecs(a)
    near = numpy.argmin(numpy.abs(out[..., :, None] - w[..., None, :]), axis=-1)
    index = numpy.broadcast_to(near[..., None, :], numpy.shape(v))
    return _eig_from(g, numpy.take_along_axis(v, index, axis=-1))


def _eigvecs_vjp(g: Any, out: Any, a: Any) -> Any:
    # eig's unit eigenvectors (JAX's rule): dV = V (F * (V^-1 dA V)) - V Re diag(V^H dV), with
    # F_ij = 1 / (w_j - w_i) off the diagonal, so gA = V^-T (F * (V^T g')) V^T where
    # g' = g - conj(V) Re(sum(g * V, axis=-2)) takes out what would change their length.  The
    # phase of each (complex) eigenvector is LAPACK's convention: only a loss that does not
    # depend on it has a gradient (checked on the eager path); repeated eigenvalues have none.
    _phase_free(g, out, "numpy.linalg.eig (eigenvectors)")
    w = P.eigw(a)
    n = numpy.shape(out)[-1]
    eye = P.const_like(numpy.eye(n), w)
    f = (1 - eye) / (w[..., None, :] - w[..., :, None] + eye)
    gn = g - _cj(out) * numpy.real(numpy.sum(g * out, axis=-2, keepdims=True))
    return _mT(numpy.linalg.inv(out)) @ (f * (_mT(out) @ gn)) @ _mT(out)


defvjp(P.eigvals, _eigvals_vjp)
defvjp(P.eigw, lambda g, out, a: _eig_from(g, P.eigvecs(a)))
defvjp(P.eigvecs, _eigvecs_vjp)
defvjp(P.qr_q, lambda g, out, a, mode="reduced": _qr_vjp(g, None, a, mode))
defvjp(P.qr_r, lambda g, out, a, mode="reduced": _qr_vjp(None, g, a, mode))


def _chain(a: Any, b: Any, c: Any) -> Any:
    """``a @ b @ c`` multiplied in the cheaper order: for a tall (m, n) matrix, never an
    (m, m) product in between (a least-squares fit of 1e4 rows: 1.7 s and 0.8 GB otherwise)."""
    m, k = a.shape[-2:]
    n, q = b.shape[-1], c.shape[-1]
    return (a @ b) @ c if m * k * n + m * n * q <= k * n * q + m * k * q else a @ (b @ c)


def _pinv_vjp_from(g: Any, p: Any, a: Any) -> Any:
    # dA+ = -A+ dA A+ + A+ A+^T dA^T (I - A A+) + (I - A+ A) dA^T A+^T A+, transposed
    # (complex A: the transposes of dA are conjugate transposes, dA^H, so those two terms are
    # conjugated in autograd's convention)
    pt, gt = _mT(p), _mT(g)
    ph = _cj(pt)
    x = ph @ (p @ gt)
    return -_chain(pt, g, pt) + _cj((gt - a @ (p @ gt)) @ (p @ ph) + (x - _chain(x, p, a)))


def _lstsq_da(g: Any, out: Any, a: Any, b: Any, rcond: Any) -> Any:
    p = P.pinv(a, rcond=rcond)                          # x = A+ b
    gp = numpy.outer(g, b) if numpy.ndim(b) == 1 else g @ _mT(b)
    return _pinv_vjp_from(gp, p, a)


def _lstsq_db(g: Any, out: Any, a: Any, b: Any, rcond: Any) -> Any:
    return _mT(P.pinv(a, rcond=rcond)) @ g


defvjp(P.pinv, lambda g, out, a, rcond: _pinv_vjp_from(g, out, a))
defvjp(P.lstsq_x, _lstsq_da, _lstsq_db)

defvjp(P.inv, lambda g, out, a: -(_mT(out) @ g @ _mT(out)))
defvjp(P.solve, _solve_vjp_a, _solve_vjp_b)
# A^-T as inv(A^T), by the primitive (not numpy.linalg.inv): on arrays it reuses the LU of A
# the forward computed (factors.py: A^T is found as A's transposed view), and hands back a
# matrix in C order, which the elementwise products after it run fastest on
defvjp(P.det, lambda g, out, a: (g * out)[..., None, None] * P.inv(_mT(a)))
def _logdet_vjp(g: Any, out: Any, a: Any) -> Any:
    return g[..., None, None] * P.inv(_mT(a))


# log|det A|, and log det A of a complex A (log|det| + i arg det, holomorphic): one rule
defvjp(P.logabsdet, _logdet_vjp)
defvjp(P.logdet, _logdet_vjp)

# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------

defvjp(P.sum_, lambda g, out, x, axis, keepdims: _unreduce(g, x.shape, axis, keepdims))
def _size(x: Any, axis: Any) -> int:
    if axis is None and type(x) is numpy.ndarray:  # the mean of a loss: every element
        return x.size
    n = _count(x.shape, axis)
    return n if isinstance(x, numpy.ndarray) else Size(n, x, axis)


defvjp(P.mean, lambda g, out, x, axis, keepdims: _unreduce(
    g / _size(x, axis), x.shape, axis, keepdims))


# Windows of at most this many entries take _extreme_window (a 2x2 pool: 85 against 124 us on
# 64x8x8x8 float32); longer ones a broadcast compare (2000 rows of 16: 50 against 120 us).
_WINDOW_ENTRIES = 4


def _one_each(hit: Any, out: Any) -> bool:
    """Whether each reduced slice has exactly one maximum (``hit``: the comparisons with it,
    one array or a list of a window's), so that nothing is shared and ``g / 1 * hit`` is
    ``g * hit`` to the bit.  A slice without NaN has at least one, so as many hits in all as
    slices means one each: two fast whole-array counts instead of a sum per slice."""
    if type(out) is not numpy.ndarray:
        return False
    hits = hit if isinstance(hit, list) else [hit]
    if any(type(h) is not numpy.ndarray for h in hits):
        return False
    total = sum(int(numpy.count_nonzero(h)) for h in hits)
    return total == out.size and not (out.dtype.kind in "fc" and numpy.isnan(out).any())


def _extreme_vjp(g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    # Ties share the gradient equally (PyTorch's amax, JAX).  Below float64 the count of ties
    # is taken in x's dtype, so that a float32 gradient is computed in float32 (an integer
    # count would turn the division into float64, then be cast back).
    if (
        type(x) is numpy.ndarray
        and type(g) is numpy.ndarray
        and window_route(x.shape, axis)
        and _count(x.shape, axis) <= _WINDOW_ENTRIES
    ):
        return _extreme_window(g, out, x, axis, keepdims)
    hit = x == _keep(out, axis, keepdims)
    if _one_each(hit, out):
        return _keep(g, axis, keepdims) * hit
    if x.dtype == numpy.float64:
        ties = numpy.sum(hit, axis=axis, keepdims=True)
    else:
        ties = numpy.sum(hit, axis=axis, keepdims=True, dtype=x.dtype)
    # Dividing before spreading (one value per reduced slice, not per element) gives the same
    # bits: where ``hit`` is 0 both orders give a zero of g's sign (or NaN where g is not
    # finite or the slice had no maximum), where it is 1 both give ``g / ties``.
    with numpy.errstate(divide="ignore", invalid="ignore"):  # a NaN maximum: no ties, NaN
        return _keep(g, axis, keepdims) / ties * hit


def _extreme_window(g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """``_extreme_vjp`` on arrays over a few short axes (a max-pooling window's entries), one
    window entry at a time: the same arithmetic, each step a whole-output operation instead
    of a broadcast over the window's axes (NumPy's loop would run over their 2 entries)."""
    nd = x.ndim
    axes = tuple(sorted({a % nd for a in ((axis,) if isinstance(axis, int) else axis)}))
    if keepdims:
        out, g = numpy.squeeze(out, axes), numpy.squeeze(g, axes)
    if g.strides != out.strides:  # one copy into out's memory order: every step below then
        moved = numpy.empty_like(out, dtype=g.dtype)  # runs in one order, never mixed ones
        moved[...] = g
        g = moved
    entries = _window_entries(nd, axes, tuple(x.shape[a] for a in axes))
    hits = [x[index] == out for index in entries]
    if _one_each(hits, out):
        share = g
    else:
        ties = hits[0].astype(numpy.intp if x.dtype == numpy.float64 else x.dtype)
        for hit in hits[1:]:
            numpy.add(ties, hit, out=ties)
        with numpy.errstate(divide="ignore"):  # a window whose maximum is NaN: no ties
            share = g / ties
    grad = numpy.empty_like(x, dtype=share.dtype)  # in x's memory order, like its slices
    with numpy.errstate(invalid="ignore"):
        for index, hit in zip(entries, hits):
            numpy.multiply(share, hit, out=grad[index])
    return grad


@functools.lru_cache(maxsize=64)
def _window_entries(nd: int, axes: tuple[int, ...], sizes: tuple[int, ...]) -> tuple[Any, ...]:
    """The index of each window entry (``x[:, :, :, 0, :, 1]``), in NumPy's ``ndindex`` order
    (the last axis fastest); the same few windows recur at every step of a training loop."""
    entries = []
    for offsets in itertools.product(*(range(n) for n in sizes)):
        where: list[Any] = [slice(None)] * nd
        for a, k in zip(axes, offsets):
            where[a] = k
        entries.append(tuple(where))
    return tuple(entries)


def _extreme_kink(fun: Callable[..., Any]) -> Callable[..., Any]:
    return lambda x, axis, keepdims: x == fun(x, axis=axis, keepdims=True)


defvjp(P.amax, _extreme_vjp, kink=_extreme_kink(numpy.amax))
defvjp(P.amin, _extreme_vjp, kink=_extreme_kink(numpy.amin))


def _reduced_last(x: Any, axis: Any) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    """Move the reduced axes of ``x`` to the end and merge them into one."""
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    rest = tuple(i for i in range(x.ndim) if i not in axes)
    perm = rest + axes
    xt = _permute(x, perm)
    lead = tuple(x.shape[i] for i in rest)
    return numpy.reshape(xt, lead + (-1,)), perm, lead


def _prod_vjp(g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    # The product of all the other elements, from exclusive cumulative products taken from the
    # left and from the right: exact when some elements are zero (no division by x).
    xt, perm, lead = _reduced_last(x, axis)
    ones = P.const_like(numpy.ones(lead + (1,), dtype=x.dtype), x)
    left = numpy.concatenate([ones, numpy.cumprod(xt, axis=-1)[..., :-1]], axis=-1)
    right = numpy.flip(numpy.concatenate(
        [ones, numpy.cumprod(numpy.flip(xt, axis=-1), axis=-1)[..., :-1]], axis=-1), axis=-1)
    gx = numpy.reshape(g, lead + (1,)) * (left * right)
    moved = tuple(x.shape[i] for i in perm)
    return _permute(numpy.reshape(gx, moved), _inverse(perm))


defvjp(P.prod, _prod_vjp)


def _var_vjp(g: Any, out: Any, x: Any, axis: Any, ddof: float, keepdims: bool) -> Any:
    centred = _cj(x - numpy.mean(x, axis=axis, keepdims=True))  # var(z) = mean |z - mean|^2
    return _unreduce(g, x.shape, axis, keepdims) * centred * (2 / (_count(x.shape, axis) - ddof))


def _std_vjp(g: Any, out: Any, x: Any, axis: Any, ddof: float, keepdims: bool) -> Any:
    # Where the spread is exactly 0 every deviation is 0 too, and the gradient is taken as 0:
    # exact where std is constant (one element per slice), and the subgradient at the kink
    # otherwise (as abs at 0), instead of 0/0.
    centred = _cj(x - numpy.mean(x, axis=axis, keepdims=True))
    scale = g / (numpy.where(out == 0, numpy.inf, out) * (_count(x.shape, axis) - ddof))
    return _unreduce(scale, x.shape, axis, keepdims) * centred


defvjp(P.var, _var_vjp)
defvjp(P.std, _std_vjp)
def _cumsum(x: Any, axis: int) -> Any:
    """``numpy.cumsum(x, axis=axis)``: on a plain array, the primitive's own (faster) steps."""
    return P.cumsum.fun(x, axis) if type(x) is numpy.ndarray else numpy.cumsum(x, axis=axis)


defvjp(P.cumsum, lambda g, out, x, axis: numpy.flip(_cumsum(numpy.flip(g, axis), axis), axis))


def _cumprod_vjp(g: Any, out: Any, x: Any, axis: int) -> Any:
    # d out[j] / d x[i] = prod_{k <= j, k != i} x[k] for j >= i, in O(n) per slice, zeros too:
    # before a slice's first zero z, sum_{j >= i} g[j] out[j] / x[i] (out[j] holds x[i]);
    # at z, out[z - 1] * sum_{j >= z} g[j] prod_{z < k <= j} x[k]; after z, 0 (x[z] is a factor).
    n = x.shape[axis]
    if n == 0:
        return g * x
    xm = numpy.moveaxis(x, axis, -1)
    gm = numpy.moveaxis(g, axis, -1)
    om = numpy.moveaxis(out, axis, -1)
    zero = xm == 0
    tail = numpy.flip(_cumsum(numpy.flip(gm * om, axis=-1), -1), axis=-1)
    if type(zero) is numpy.ndarray and not zero.any():  # no zero: what the lines below give
        return numpy.moveaxis(tail / xm, -1, axis)
    pos = numpy.arange(n)
    first = numpy.min(numpy.where(zero, pos, n), axis=-1, keepdims=True)  # n: no zero
    gx = numpy.where(pos < first, tail / numpy.where(zero, 1, xm), 0)
    after = numpy.cumprod(numpy.where(pos > first, xm, 1), axis=-1)
    at = numpy.sum(numpy.where(pos >= first, gm * after, 0), axis=-1, keepdims=True)
    before = numpy.concatenate([numpy.ones_like(om[..., :1]), om[..., :-1]], axis=-1)
    left = numpy.take_along_axis(before, numpy.minimum(first, n - 1), axis=-1)
    gx = numpy.where(pos == first, left * at, gx)
    return numpy.moveaxis(gx, -1, axis)


defvjp(P.cumprod, _cumprod_vjp)


def _unit(x: Any) -> Any:
    """d|x|: sign(x) for real x, conj(x) / |x| for complex x (0 at 0 either way)."""
    if x.dtype.kind == "c":
        a = numpy.abs(x)
        return numpy.conjugate(x) / numpy.where(a == 0, numpy.inf, a)
    return numpy.sign(x)


def _norm_vjp(g: Any, out: Any, x: Any, ord: Any, axis: Any, keepdims: bool) -> Any:
    # Every norm is a function of |x|, so complex x enters through conj(x) (see _unit).
    ge = _keep(g, axis, keepdims)
    oe = _keep(out, axis, keepdims)
    if ord is None or ord == "fro" or ord == 2:
        return ge * _cj(x) / numpy.where(oe == 0, 1, oe)
    if ord == 1:
        return ge * _unit(x)
    if ord in (math.inf, -math.inf):
        hit = numpy.abs(x) == oe
        return ge * _unit(x) * (hit / numpy.sum(hit, axis=axis, keepdims=True))
    if ord == 0:
        return ge * 0 * x
    return ge * _cj(x) * numpy.abs(x) ** (ord - 2) / oe ** (ord - 1)


def _norm_kink(x: Any, ord: Any, axis: Any, keepdims: bool) -> Any:
    if ord in (math.inf, -math.inf):
        a = numpy.abs(x)
        return a == (numpy.amax if ord > 0 else numpy.amin)(a, axis=axis, keepdims=True)
    return numpy.sign(x) if ord == 1 else numpy.zeros(numpy.shape(x), bool)


defvjp(P.norm, _norm_vjp, kink=_norm_kink)

# ---------------------------------------------------------------------------------------------
# Shapes, joins and selections
# ---------------------------------------------------------------------------------------------

defvjp(P.reshape, lambda g, out, x, shape: numpy.reshape(g, x.shape))
defvjp(P.transpose, lambda g, out, x, axes: _permute(g, _inverse(axes)))
defvjp(P.swapaxes, lambda g, out, x, axis1, axis2: numpy.swapaxes(g, axis1, axis2))
defvjp(P.moveaxis, lambda g, out, x, source, destination: numpy.moveaxis(g, destination, source))
defvjp(P.broadcast_to, passthrough)     # the walk sums it back to x's shape
defvjp(P.astype, passthrough)           # the walk casts it back to x's dtype
defvjp(P.copy, passthrough)
defvjp(P.identity, passthrough)


def _concatenate_vjp(argnum: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    start = sum(x.shape[axis] for x in xs[:argnum])
    return g[(slice(None),) * axis + (slice(start, start + xs[argnum].shape[axis]),)]


defvjp_argnum(P.concatenate, _concatenate_vjp)
defvjp_argnum(P.stack, lambda argnum, g, out, *xs, axis: g[(slice(None),) * axis + (argnum,)])
defvjp(P.flip, lambda g, out, x, axis: numpy.flip(g, axis))
defvjp(P.roll, lambda g, out, x, shift, axis: numpy.roll(
    g, tuple(-s for s in shift) if isinstance(shift, (tuple, list)) else -shift, axis))


def _tile_vjp(g: Any, out: Any, x: Any, reps: tuple[int, ...]) -> Any:
    d = max(len(reps), x.ndim)
    shape = (1,) * (d - x.ndim) + x.shape
    reps = (1,) * (d - len(reps)) + reps
    blocks = numpy.reshape(g, tuple(v for pair in zip(reps, shape) for v in pair))
    return numpy.reshape(numpy.sum(blocks, axis=tuple(range(0, 2 * d, 2))), x.shape)


def _repeat_vjp(g: Any, out: Any, x: Any, repeats: Any, axis: int) -> Any:
    n = x.shape[axis]
    if isinstance(repeats, int):
        split = g.shape[:axis] + (n, repeats) + g.shape[axis + 1:]
        return numpy.sum(numpy.reshape(g, split), axis=axis + 1)
    index = (slice(None),) * axis + (numpy.repeat(numpy.arange(n), repeats),)
    return P.scatter_add(g, index, x.shape, False)


defvjp(P.tile, _tile_vjp)
defvjp(P.repeat, _repeat_vjp)
defvjp(P.pad, lambda g, out, x, pad_width, constant_values: g[tuple(
    slice(lo, n - hi) for (lo, hi), n in zip(pad_width, g.shape))])
def _windows_vjp(g: Any, out: Any, x: Any, window_shape: tuple[int, ...],
                 axis: tuple[int, ...]) -> Any:
    # Each window offset k reads x[..., k : k + n_out, ...] along its axis; the gradient adds
    # g's slice for that offset back there (a loop over the window, never over the data).
    if type(g) is numpy.ndarray and type(x) is numpy.ndarray:
        return _windows_add(g, x, window_shape, axis)
    total = None
    for offsets in numpy.ndindex(*window_shape):
        part = g[(Ellipsis,) + offsets]
        width = [(0, 0)] * x.ndim
        for ax, off, w in zip(axis, offsets, window_shape):
            width[ax] = (width[ax][0] + off, width[ax][1] + w - 1 - off)
        part = P.pad(part, pad_width=tuple(width), constant_values=0)
        total = part if total is None else total + part
    return total


def _windows_add(g: Any, x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    """``_windows_vjp`` on arrays: each offset's slice added in place into one zero array in
    x's memory order (the same sums in the same order, without a padded copy per offset)."""
    total = P.filled_like(x, x.shape, 0, g.dtype)
    for offsets in numpy.ndindex(*window_shape):
        part = g[(Ellipsis,) + offsets]
        start = [0] * x.ndim
        for ax, off in zip(axis, offsets):
            start[ax] += off
        total[tuple(slice(s, s + n) for s, n in zip(start, part.shape))] += part
    return total


defvjp(P.sliding_window_view, _windows_vjp)
defvjp(P.triu, lambda g, out, x, k: numpy.triu(g, k))
defvjp(P.tril, lambda g, out, x, k: numpy.tril(g, k))


def _is_basic(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis
               or (isinstance(i, numpy.integer)) for i in items)


def _new_axes_only(index: Any) -> bool:
    """An index of full slices, ``None`` and ``...`` only (``x[:, None]``): it inserts
    length-1 axes and keeps every element, in order."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or (type(i) is slice and i == slice(None))
               for i in items)


def _getitem_vjp(g: Any, out: Any, x: Any, index: Any) -> Any:
    if _new_axes_only(index):
        return numpy.reshape(g, x.shape)  # the same elements: no zeros to scatter into
    return P.scatter_add(g, index, x.shape, _is_basic(index))


defvjp(P.getitem, _getitem_vjp)


def _getitem_into(buf: Any, g: Any, out: Any, x: Any, index: Any) -> None:
    # the rule above added into the gradient accumulated so far, in place (eager walk only)
    if _is_basic(index):
        buf[index] += g
    else:
        add_at(buf, index, g)


definplace(P.getitem, _getitem_into)
def _setitem_dv(g: Any, out: Any, x: Any, v: Any, index: Any) -> Any:
    # Where an advanced index repeats a position, NumPy keeps the last write: only that copy
    # of the value reaches the output, so only it gets the gradient.
    if _is_basic(index):
        return g[index]
    slots = numpy.full(x.shape, -1)
    picked = numpy.zeros(x.shape, dtype=bool)[index]
    order = numpy.arange(picked.size).reshape(picked.shape)
    slots[index] = order
    return g[index] * (slots[index] == order)


defvjp(P.setitem, lambda g, out, x, v, index: P.setitem(g, 0, index=index), _setitem_dv)
defvjp(P.scatter_add, lambda g, out, h, index, shape, unique: g[index])
defvjp_argnum(P.gather, lambda argnum, g, out, x, *ix, template: P.scatter(
    g, *ix, template=template, shape=x.shape) if argnum == 0 else None)
defvjp_argnum(P.scatter, lambda argnum, g, out, h, *ix, template, shape: P.gather(
    g, *ix, template=template) if argnum == 0 else None)
defvjp(P.take, lambda g, out, x, indices, axis: P.scatter_add(
    g, (slice(None),) * axis + (indices,), x.shape, False))


def _along(indices: Any, axis: int, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """The full fancy index that ``take_along_axis(x, indices, axis)`` reads from ``x`` of
    ``shape`` (its ranges broadcast against ``indices``, as NumPy builds them: an axis of
    length 1 in ``x`` is read again for every index there)."""
    nd = len(shape)
    return tuple(indices if d == axis else
                 axis_range(shape[d], d, nd)
                 for d in range(nd))


defvjp(P.take_along_axis, lambda g, out, x, indices, axis: P.scatter_add(
    g, _along(indices, axis, x.shape), x.shape, False))


def _running_vjp(larger: bool) -> Callable[..., Any]:
    """The rule of ``maximum.accumulate`` (``larger``) or ``minimum.accumulate``: each output's
    gradient goes to the input where its running extreme was set.  NumPy's loop keeps the
    running value ``a`` against the next input ``b`` where ``a >= b`` (``a <= b``) or ``a`` is
    NaN, so among tied inputs the first one is the extreme (as ``maximum``'s own rule gives a
    tie to its first argument), and a NaN holds from where it appears."""

    def rule(g: Any, out: Any, x: Any, axis: int) -> Any:
        n = x.shape[axis]
        before = numpy.take(out, numpy.arange(-1, n - 1), axis=axis)  # position 0: a dummy
        kept = (before >= x) if larger else (before <= x)
        kept = kept | numpy.isnan(before)
        pos = numpy.arange(n).reshape((-1,) + (1,) * (x.ndim - 1 - axis))
        where_set = numpy.maximum.accumulate(numpy.where(kept, 0, pos), axis=axis)
        # computed positions: an input of the scatter (a trace follows them, never freezes them)
        template = tuple(P.Slot(0) if d == axis else numpy.arange(x.shape[d]).reshape(
            (1,) * d + (-1,) + (1,) * (x.ndim - d - 1)) for d in range(x.ndim))
        return P.scatter(g, where_set, template=template, shape=x.shape)

    return rule


defvjp(P.running_max, _running_vjp(True))
defvjp(P.running_min, _running_vjp(False))
defvjp(P.sort, lambda g, out, x, axis, kind: P.sort_unpermute(g, x, axis=axis),
       kink=lambda x, axis, kind: numpy.argsort(x, axis=axis, kind="stable"))
defvjp(P.sort_permute, lambda g, out, v, x, axis: P.sort_unpermute(g, x, axis=axis), None)
defvjp(P.sort_unpermute, lambda g, out, v, x, axis: P.sort_permute(g, x, axis=axis), None)

# ---------------------------------------------------------------------------------------------
# Numerically stable functions (chainrule.functions)
# ---------------------------------------------------------------------------------------------
# Each rule is finite wherever its function's value is: it reads the (stable) output rather than
# recomputing an overflowing intermediate.  Conventions:
# * ``xlogy(x, y)`` is 0 wherever ``x == 0``, so d/dy is exactly 0 there (even at y == 0), and
#   d/dx at ``x == 0, y <= 0`` is taken as 0 (the one-sided derivative is -inf at y == 0).
#   Entropy ``-xlogy(p, p)`` then has gradient 0 where p underflowed to 0, which is its limit.
# * ``logsumexp`` of a slice that is all -inf is -inf; its gradient there is nan (0/0), as in
#   PyTorch and JAX.  Its gradient is softmax(x), accurate at any magnitude.
# * ``safe_norm`` is sqrt(|x|^2 + eps^2): smooth, gradient x / out, exactly 0 at x == 0.

# d logsumexp / dx = softmax(x), computed from x (shifted by its maximum), not as the usual
# exp(x - out): out carries a rounding error of about |out| * eps, which exp would turn into a
# relative error of the same size (at x ~ 1e300: gradients 1, 1, 1 instead of 1/3 each).
defvjp(P.logsumexp, lambda g, out, x, axis, keepdims: _keep(g, axis, keepdims) * P.softmax(
    x, axis=axis))


def _softmax_dx(g: Any, out: Any, x: Any, axis: Any) -> Any:
    t = g * out
    s = numpy.sum(t, axis=axis, keepdims=True)
    if type(t) is numpy.ndarray and t.shape == out.shape:
        numpy.subtract(g, s, out=t)     # plain arrays: the same operations, in t's memory
        t *= out
        return t
    return out * (g - s)


defvjp(P.softmax, _softmax_dx)
defvjp(P.log_softmax, lambda g, out, x, axis: g - numpy.exp(out) * numpy.sum(
    g, axis=axis, keepdims=True))
def logistic_slope(x: Any) -> Any:
    """The logistic function's derivative, s(x) s(-x) = e^-|x| / (1 + e^-|x|)^2 (real x): even
    in x, and without a cancellation on either side (s (1 - s) loses 1 - s to rounding for
    large x: at x = 30 a relative error of 1.7e-4); three times faster than s(x) s(-x).

    >>> float(logistic_slope(numpy.float64(0.0))), bool(logistic_slope(numpy.array(40.0)) > 0)
    (0.25, True)
    """
    t = numpy.exp(-numpy.abs(x))
    return t / (1 + t) ** 2


defvjp(P.sigmoid, lambda g, out, x: g * logistic_slope(x))
defvjp(P.xlogy,
       lambda g, out, x, y: g * numpy.log(numpy.where((x == 0) & (y <= 0), 1, y)),
       lambda g, out, x, y: g * (x / numpy.where((x == 0) & (y == 0), 1, y)))
defvjp(P.safe_norm, lambda g, out, x, axis, keepdims, eps: _keep(g, axis, keepdims) * x / _keep(
    out, axis, keepdims))
# ---------------------------------------------------------------------------------------------
# Discrete Fourier transforms.  A DFT matrix (scaled by any ``norm``) is symmetric, so under the
# pairing Re(sum(a * b)) each transform's rule is the same transform of the cotangent; NumPy's
# zero-padding or truncation to ``s`` transposes to truncation or zero-padding back.
# ---------------------------------------------------------------------------------------------

def _fit(g: Any, axes: tuple[int, ...], lengths: Any) -> Any:
    """``g`` truncated or zero-padded along ``axes`` to ``lengths`` (NumPy's fitting to ``s``)."""
    index = [slice(None)] * g.ndim
    width = [(0, 0)] * g.ndim
    cut = grow = False
    for ax, n in zip(axes, lengths):
        have = g.shape[ax]
        if have > n:
            index[ax], cut = slice(0, n), True
        elif have < n:
            width[ax], grow = (0, n - have), True
    if cut:
        g = g[tuple(index)]
    return numpy.pad(g, tuple(width)) if grow else g


def _back(x: Any, axes: tuple[int, ...]) -> list[int]:
    return [x.shape[a] for a in axes]


# irfft's scaling of n points, as the matching scaling of a forward transform
_Norm = Literal["backward", "ortho", "forward"]
_SWAP: dict[str, _Norm] = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def _irfftn_vjp(g: Any, out: Any, y: Any, s: tuple[int, ...], axes: tuple[int, ...],
                norm: Any) -> Any:
    # The last axis: x = irfft(y) reads y[0] (and y[n/2] for even n) once and every other
    # coefficient twice (itself and its conjugate mirror), so its transpose is the conjugated
    # forward transform of g with weights 1, 2, ..., 2 (, 1); the other axes are ifft's.
    n, last = s[-1], axes[-1]
    half = numpy.conjugate(numpy.fft.rfft(g, axis=last, norm=_SWAP[norm]))
    m = n // 2 + 1
    w = numpy.full(m, 2, dtype=g.dtype)
    w[0] = 1
    if n % 2 == 0:
        w[-1] = 1
    w = P.const_like(w, g)
    gy = half * numpy.reshape(w, (m,) + (1,) * (g.ndim - 1 - last))
    if len(axes) > 1:
        gy = numpy.fft.ifftn(gy, axes=axes[:-1], norm=norm)
    return _fit(gy, axes, _back(y, axes))


def _transform(one: Any, many: Any, g: Any, axes: tuple[int, ...], norm: Any) -> Any:
    """``many(g, axes=axes)``, by ``one`` over a single axis (the same transform, less setup)."""
    return one(g, axis=axes[0], norm=norm) if len(axes) == 1 else many(g, axes=axes, norm=norm)


defvjp(P.fftn, lambda g, out, x, s, axes, norm: _fit(
    _transform(numpy.fft.fft, numpy.fft.fftn, g, axes, norm), axes, _back(x, axes)))
defvjp(P.ifftn, lambda g, out, x, s, axes, norm: _fit(
    _transform(numpy.fft.ifft, numpy.fft.ifftn, g, axes, norm), axes, _back(x, axes)))
def _rfftn_vjp(g: Any, out: Any, x: Any, s: tuple[int, ...], axes: tuple[int, ...],
               norm: Any) -> Any:
    # Re(fftn(g zero-padded to s along the last axis)), with the last axis's transform done as
    # an inverse real one: Re(sum_j z_j e^(-2 pi i jk/n)) is n irfft(w * conj(z)), weights 1,
    # 1/2, ..., 1/2 (, 1) (irfft counts each inner coefficient and its conjugate mirror, and
    # only the real part of the first and, for even n, the last). Half the work of the complex
    # transform of the padded array, and no padded copy (x of 4096: 58 -> 28 us).
    n, last = s[-1], axes[-1]
    h = numpy.fft.fftn(g, axes=axes[:-1], norm=norm) if len(axes) > 1 else g
    m = n // 2 + 1
    w = numpy.full(m, 0.5, dtype=numpy.real(numpy.empty(0, dtype=g.dtype)).dtype)
    w[0] = 1
    if n % 2 == 0:
        w[-1] = 1
    w = P.const_like(w, g)
    z = numpy.conjugate(h) * numpy.reshape(w, (m,) + (1,) * (g.ndim - 1 - last))
    return _fit(numpy.fft.irfft(z, n, axis=last, norm=_SWAP[norm]), axes, _back(x, axes))


defvjp(P.rfftn, _rfftn_vjp)
defvjp(P.irfftn, _irfftn_vjp)

# ---------------------------------------------------------------------------------------------
# Complex parts (the convention is in the module docstring)
# ---------------------------------------------------------------------------------------------

defvjp(P.conjugate, lambda g, out, x: _cj(g))
defvjp(P.real, passthrough)     # Re z = x: cotangent g (a real input takes it as it is)
defvjp(P.imag, lambda g, out, x: g * -1j if x.dtype.kind == "c" else g * 0)  # Im z = y
# fmt: on

# f(x, y) == f(y, x), and the second input's rule is the first's with the inputs swapped: the
# eager walk differentiates x * x (x + x) with one rule call, its result doubled.
P.add.symmetric = P.multiply.symmetric = True

# The rules that hold for complex values under the convention above (the others raise there):
# the holomorphic operations, the selections and rearrangements (which only move values), and
# the non-holomorphic ones written for it.
for _prim in (
    P.add, P.subtract, P.multiply, P.divide, P.negative, P.positive, P.power, P.float_power,
    P.square, P.sqrt, P.reciprocal, P.exp, P.exp2, P.expm1, P.log, P.log2, P.log10, P.log1p,
    P.sin, P.cos, P.tan, P.arcsin, P.arccos, P.arctan, P.sinh, P.cosh, P.tanh, P.arcsinh,
    P.arccosh, P.arctanh, P.absolute, P.conjugate, P.real, P.imag,
    P.maximum, P.minimum, P.fmax, P.fmin, P.clip, P.where,
    P.matmul, P.tensordot, P.dot, P.inner, P.vdot, P.outer, P.einsum, P.trace, P.diagonal,
    P.correlate,
    P.inv, P.solve, P.det, P.logabsdet, P.logdet, P.fftn, P.ifftn, P.rfftn, P.irfftn,
    P.eigvals, P.eigw, P.eigvecs, P.cholesky, P.eigvalsh, P.eighvals, P.eigvecsh, P.svd_u,
    P.svd_s, P.svd_vh, P.qr_q, P.qr_r, P.pinv, P.lstsq_x,
    P.sum_, P.mean, P.amax, P.amin, P.prod, P.var, P.std, P.cumsum, P.cumprod, P.norm,
    P.reshape, P.transpose, P.swapaxes, P.moveaxis, P.broadcast_to, P.astype, P.copy,
    P.identity, P.stop_gradient, P.concatenate, P.stack, P.flip, P.roll, P.tile, P.repeat,
    P.pad, P.sliding_window_view, P.triu, P.tril, P.getitem, P.setitem, P.scatter_add,
    P.gather, P.scatter, P.take, P.take_along_axis, P.sort, P.sort_permute, P.sort_unpermute,
):  # fmt: skip
    _prim.complex_ready = True
