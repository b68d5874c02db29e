"""Numerically stable functions with stable gradients.

The textbook formulas overflow: ``numpy.log(numpy.sum(numpy.exp(x)))`` is ``inf`` for
``x = 1000``, ``1 / (1 + numpy.exp(-x))`` has a ``nan`` gradient for ``x = -1000``, and
``numpy.sqrt(numpy.sum(x ** 2))`` is ``inf`` for ``x = 1e200``.  The functions here compute the
same mathematics in forms whose values *and* gradients (first and higher order) stay finite
wherever the result is representable: for inputs of magnitude ``1e4`` in float32 and ``1e300``
in float64.  float32 stays float32.

They work on plain arrays (and return plain arrays) and on :class:`chainrule.Tensor` (and are
recorded, explained and compiled like any NumPy function).  Where a composition of NumPy
functions is already stable it is used as it is (``softplus`` is ``numpy.logaddexp(0, x)``);
where it is not, the function is a primitive of its own with a rule in
:mod:`chainrule.engine.rules` (``logsumexp``, ``softmax``, ``log_softmax``, ``sigmoid``, ``xlogy``,
``safe_norm``).

Example
-------
>>> import numpy, chainrule as cr
>>> from chainrule import functions as F
>>> x = numpy.array([1000.0, 0.0, -1000.0])
>>> float(F.logsumexp(x))
1000.0
>>> cr.grad(lambda x: F.logsumexp(x))(x)
array([1., 0., 0.])
"""

from __future__ import annotations

from typing import Any

import numpy

from . import primitives as P
from .tensor import Tensor

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "sigmoid",
    "log_sigmoid",
    "softplus",
    "logit",
    "xlogy",
    "cross_entropy_with_logits",
    "binary_cross_entropy_with_logits",
    "safe_norm",
]


def _arg(x: Any) -> Any:
    """Tensors, arrays and Python numbers as they are (Python numbers stay weakly typed);
    lists and tuples become arrays."""
    if isinstance(x, (list, tuple)):
        return numpy.asarray(x)
    return x


def _values(x: Any) -> Any:
    return x._data if isinstance(x, Tensor) else numpy.asarray(x)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis``, without overflow.

    Computed as ``m + log(sum(exp(x - m)))`` with ``m`` the maximum, so the largest term is
    ``exp(0) = 1``.  The gradient is ``softmax(x)`` (read from the output:
    ``g * exp(x - out)``), finite for any finite ``x``.

    Parameters
    ----------
    x : array_like or Tensor
    axis : int or tuple of ints, optional
        Axes to reduce (default: all).
    keepdims : bool
        Keep the reduced axes with size 1.

    Returns
    -------
    The reduction, in ``x``'s floating dtype.  A slice that is all ``-inf`` gives ``-inf``
    (as ``scipy.special.logsumexp``); its gradient is nan, as in PyTorch and JAX.

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import logsumexp
    >>> logsumexp(numpy.array([[1e4, 1e4], [0.0, -1e4]], dtype=numpy.float32), axis=1)
    array([10000.693,     0.   ], dtype=float32)
    """
    x = _arg(x)
    return P.logsumexp(
        x, axis=P.normalize_axis(axis, P._ndim(x), "logsumexp"), keepdims=bool(keepdims)
    )


def softmax(x: Any, axis: Any = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed after subtracting the maximum.

    The gradient rule is ``out * (g - sum(g * out))``: no exponential of the input is taken
    again, so it is finite whenever the values are.

    Parameters
    ----------
    x : array_like or Tensor
    axis : int, tuple of ints or None
        The axis (axes) to normalise over; default the last.

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import softmax
    >>> softmax(numpy.array([1e4, 1e4, -1e4]))
    array([0.5, 0.5, 0. ])
    """
    x = _arg(x)
    return P.softmax(x, axis=P.normalize_axis(axis, P._ndim(x), "softmax"))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """``log(softmax(x))`` along ``axis``: ``x - max - log(sum(exp(x - max)))``.

    Finite for every finite ``x`` (where ``log(softmax(x))`` gives ``-inf``).  The gradient
    rule is ``g - exp(out) * sum(g)``.

    Parameters
    ----------
    x : array_like or Tensor
    axis : int, tuple of ints or None
        The axis (axes) to normalise over; default the last.

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import log_softmax
    >>> log_softmax(numpy.array([0.0, -1e4]))
    array([     0., -10000.])
    """
    x = _arg(x)
    return P.log_softmax(x, axis=P.normalize_axis(axis, P._ndim(x), "log_softmax"))


def sigmoid(x: Any) -> Any:
    """The logistic function ``1 / (1 + exp(-x))``, as ``exp(min(x, 0)) / (1 + exp(-|x|))``.

    Never overflows; the gradient rule is ``g * out * sigmoid(-x)`` (``out * (1 - out)`` with
    ``1 - out`` computed without cancellation), accurate to a few ulps on both sides and 0 (not
    nan) only where the true value underflows; use :func:`log_sigmoid` for log-probabilities.
    Neither exponent is positive, so nothing overflows; the value is within 3 ulps (measured
    against extended precision on float32 and float64).

    Parameters
    ----------
    x : array_like or Tensor

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import sigmoid
    >>> sigmoid(numpy.array([-1e4, 0.0, 1e4]))
    array([0. , 0.5, 1. ])
    """
    return P.sigmoid(_arg(x))


def log_sigmoid(x: Any) -> Any:
    """``log(sigmoid(x)) = -softplus(-x)``, as ``-numpy.logaddexp(0, -x)``.

    Equal to ``x`` for very negative ``x`` (no ``log(0)``); gradient ``sigmoid(-x)``, finite.

    Parameters
    ----------
    x : array_like or Tensor

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import log_sigmoid
    >>> log_sigmoid(numpy.array([-1e4, 0.0, 1e4]))
    array([-1.00000000e+04, -6.93147181e-01, -0.00000000e+00])
    """
    return -numpy.logaddexp(0, -_arg(x))


def softplus(x: Any) -> Any:
    """``log(1 + exp(x))``, as ``numpy.logaddexp(0, x)``: ``x`` for large ``x``, never inf.

    Its gradient is ``sigmoid(x)`` (from ``logaddexp``'s rule ``g * exp(x - out)``).

    Parameters
    ----------
    x : array_like or Tensor

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import softplus
    >>> softplus(numpy.array([-1e4, 0.0, 1e4]))
    array([0.00000000e+00, 6.93147181e-01, 1.00000000e+04])
    """
    return numpy.logaddexp(0, _arg(x))


def logit(p: Any) -> Any:
    """The inverse of :func:`sigmoid`: ``log(p / (1 - p))``, as ``log(p) - log1p(-p)``.

    ``1 - p`` is never formed by subtraction (``log1p(-p)``), so ``p`` close to 1 keeps its
    digits, and ``p`` down to the smallest normal numbers gives a finite value and gradient
    ``1 / p + 1 / (1 - p)``.  ``p = 0`` and ``p = 1`` give ``-inf`` and ``inf``.  The absolute
    error is a few ulps; near ``p = 0.5``, where the logit is close to 0, that is a larger
    relative error.

    Parameters
    ----------
    p : array_like or Tensor
        Probabilities in (0, 1).

    Example
    -------
    >>> import numpy
    >>> from chainrule.functions import logit
    >>> logit(numpy.array([0.5, 1e-300]))
    array([   0.       , -690.7755279])
    """
    p = _arg(p)
    return numpy.log(p) - numpy.log1p(-p)


def xlogy(x: Any, y: Any) -> Any:
    """``x * log(y)``, and exactly 0 wherever ``x == 0`` (even for ``y == 0``).

    As ``scipy.special.xlogy``.  Gradients: ``d/dy = x / y``, exactly 0 where ``x == 0``;
    ``d/dx = log(y)``, taken as 0 where ``x == 0`` and ``y <= 0``.  So the entropy
    ``-xlogy(p, p).sum()`` has gradient 0 (its limit) where ``p`` underflowed to 0, not nan.

    Parameters
    ----------
    x, y : array_like, Tensor or Python numbers
        Broadcast against each other.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule.functions import xlogy
    >>> p = numpy.array([0.0, 0.5, 0.5])
    >>> xlogy(p, p)
    array([ 0.        , -0.34657359, -0.34657359])
    >>> cr.grad(lambda q: -xlogy(q, q).sum())(p)
    array([-0.        , -0.30685282, -0.30685282])
    """
    return P.xlogy(_arg(x), _arg(y))


def cross_entropy_with_logits(logits: Any, labels: Any) -> Any:
    """Mean cross-entropy of ``softmax(logits)`` against ``labels``, over the batch.

    ``logits`` has the classes on its last axis, shape ``(..., C)``.  ``labels`` is either

    * an integer array of class indices, shape ``(...)``, each in ``[0, C)``: the loss is
      ``-mean(log_softmax(logits)[..., labels])``; or
    * floating-point class probabilities of ``logits``' shape: the loss is
      ``-mean(sum(labels * log_softmax(logits), axis=-1))`` (labels may require grad).

    Computed from :func:`log_softmax`, so it is finite for any finite logits; its gradient with
    respect to the logits is ``(softmax(logits) - onehot) / N``.  Class indices are checked
    against ``C`` when their values are known (inside ``jit`` only on the traced call; an index
    out of range in a later call contributes 0).  Integer labels stay variables under ``jit``.

    Parameters
    ----------
    logits : array_like or Tensor, shape (..., C)
    labels : integer array of shape (...), or float array of shape (..., C)

    Returns
    -------
    The mean loss, a scalar in the logits' dtype.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule.functions import cross_entropy_with_logits
    >>> z = numpy.array([[1e4, 0.0], [0.0, 0.0]])
    >>> float(cross_entropy_with_logits(z, numpy.array([0, 1])))    # (0 + log 2) / 2
    0.34657359027997264
    >>> cr.grad(cross_entropy_with_logits)(z, numpy.array([0, 1]))
    array([[ 0.  ,  0.  ],
           [ 0.25, -0.25]])
    """
    logits = _arg(logits)
    labels = _arg(labels)
    shape = tuple(numpy.shape(_values(logits)))
    if not shape:
        raise ValueError("cross_entropy_with_logits: logits need a class axis (shape (..., C))")
    values = _values(labels)
    q = log_softmax(logits, axis=-1)
    if values.dtype.kind in "iu":
        if values.shape != shape[:-1]:
            raise ValueError(
                f"cross_entropy_with_logits: integer labels must have shape "
                f"{shape[:-1]} (logits without the class axis), got "
                f"{values.shape}"
            )
        n_classes = shape[-1]
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(
                f"cross_entropy_with_logits: class indices must be in "
                f"[0, {n_classes}), got values from {values.min()} to "
                f"{values.max()}"
            )
        hit = labels[..., None] == numpy.arange(n_classes)
        return -numpy.where(hit, q, 0).sum(axis=-1).mean()
    if values.dtype.kind != "f":
        raise TypeError(
            f"cross_entropy_with_logits: labels must be integer class indices or "
            f"floating-point probabilities, got dtype {values.dtype}"
        )
    if values.shape != shape:
        raise ValueError(
            f"cross_entropy_with_logits: probability labels must have the shape "
            f"of logits {shape}, got {values.shape}; for class indices pass an "
            "integer array"
        )
    return -(labels * q).sum(axis=-1).mean()


def binary_cross_entropy_with_logits(logits: Any, targets: Any) -> Any:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against ``targets`` in ``[0, 1]``.

    Computed as ``t * softplus(-x) + (1 - t) * softplus(x)``: both terms are non-negative, so
    nothing cancels (a confident right answer keeps its small loss to full precision) and
    nothing overflows.  The gradient with respect to the logits is ``(sigmoid(x) - t) / n``.
    Integer or boolean targets are cast to the logits' dtype.

    Parameters
    ----------
    logits : array_like or Tensor
    targets : array_like or Tensor
        Probabilities in [0, 1], broadcast against the logits.

    Returns
    -------
    The mean over all elements, a scalar.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule.functions import binary_cross_entropy_with_logits as bce
    >>> x, t = numpy.array([1e4, -1e4, 0.0]), numpy.array([1.0, 1.0, 0.0])
    >>> float(bce(x, t))                  # (0 + 1e4 + log 2) / 3
    3333.56438239352
    >>> cr.grad(bce)(x, t)
    array([ 0.        , -0.33333333,  0.16666667])
    """
    x = _arg(logits)
    t = _arg(targets)
    kind = numpy.asarray(_values(t)).dtype.kind
    if kind in "iub":
        dtype = numpy.asarray(_values(x)).dtype
        t = (t if isinstance(t, Tensor) else numpy.asarray(t)).astype(
            dtype if dtype.kind == "f" else numpy.float64
        )
    return (t * numpy.logaddexp(0, -x) + (1 - t) * numpy.logaddexp(0, x)).mean()


def safe_norm(x: Any, axis: Any = None, keepdims: bool = False, eps: float = 1e-12) -> Any:
    """The 2-norm made smooth at 0: ``sqrt(sum(x ** 2) + eps ** 2)``, without overflow.

    Computed with ``numpy.hypot`` (no squares are formed), so it is finite whenever the norm is
    representable (``x`` near ``1e300`` in float64, ``1e38`` in float32).  The gradient
    ``x / out`` is finite everywhere and exactly 0 at ``x == 0``; the second derivative is
    finite too (about ``1 / eps`` at 0).  For ``|x| >> eps`` the value is the norm to within
    ``eps ** 2 / (2 |x|)``.

    Parameters
    ----------
    x : array_like or Tensor
    axis : int or tuple of ints, optional
        Axes to reduce (default: all).
    keepdims : bool
        Keep the reduced axes with size 1.
    eps : float
        The smoothing, > 0 (a Python float, so float32 stays float32).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule.functions import safe_norm
    >>> float(safe_norm(numpy.array([3e300, 4e300])))
    5e+300
    >>> cr.grad(safe_norm)(numpy.zeros(2))
    array([0., 0.])
    """
    eps = float(eps)
    if not eps > 0:
        raise ValueError(
            f"safe_norm: eps must be > 0 (it keeps the gradient finite at 0), got {eps}"
        )
    x = _arg(x)
    return P.safe_norm(
        x, axis=P.normalize_axis(axis, P._ndim(x), "safe_norm"), keepdims=bool(keepdims), eps=eps
    )
