"""Activations, losses and layer operations as plain functions (PyTorch's ``nn.functional``).

Every function is NumPy code: it takes chainrule tensors (recorded, differentiable) or plain
NumPy arrays (computed directly) and is written to stay finite and warning-free for extreme
inputs:

* ``log_softmax``/``cross_entropy``/``logsumexp`` subtract the row maximum before ``exp``;
* ``sigmoid``, ``softplus``, ``binary_cross_entropy_with_logits`` use ``numpy.logaddexp(0, x)``
  (no ``exp`` of a large number anywhere, in the forward or the backward pass);
* ``elu``/``selu`` evaluate ``expm1`` only on the non-positive part, so ``numpy.where`` never
  multiplies a zero gradient by an infinite local derivative.

Conventions where a derivative does not exist follow PyTorch: ``relu'(0) = 0``,
``leaky_relu'(0) = negative_slope``, ``elu'(0) = alpha``.  ``max_pool2d`` shares the gradient
equally between tied maxima of a window (chainrule's rule for ``max``); PyTorch gives it all to
one of them.  Both are valid subgradients; with real-valued data ties are rare.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy
from numpy.lib.stride_tricks import sliding_window_view

import chainrule as cr
from chainrule import functions as _stable  # the stable primitives, one implementation

__all__ = [
    # activations
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "log_sigmoid",
    "tanh",
    "softplus",
    "silu",
    "softmax",
    "log_softmax",
    "logsumexp",
    "erf",
    # layers
    "linear",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "dropout",
    "layer_norm",
    "batch_norm",
    "flatten",
    "one_hot",
    # losses
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "smooth_l1_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]


def _stop(x: Any) -> Any:
    """``x`` without gradient (a tensor's detached values, an array itself)."""
    return x.detach() if isinstance(x, cr.Tensor) else x


def _arr(x: Any) -> numpy.ndarray:
    """``x``'s values as an array: for constants (weights, statistics), never a traced value
    (inside ``jit`` a tensor's ``.data`` raises rather than freeze today's values)."""
    return cast(numpy.ndarray, _own(x.data) if isinstance(x, cr.Tensor) else _own(x))


def _own(x: Any) -> Any:
    """An array of another library (CuPy, Dask) as it is; anything else as a NumPy array."""
    t = type(x)
    if t is not numpy.ndarray and hasattr(t, "__array_function__") and hasattr(x, "dtype"):
        if not isinstance(x, numpy.generic):
            return x
    return numpy.asarray(x)


def _known(x: Any) -> numpy.ndarray | None:
    """``x``'s values where they are known now, for checks; None for a value being traced."""
    try:
        return _arr(x)
    except cr.TracerBoolError:
        return None


def _val(x: Any) -> Any:
    """``x`` itself if it is a tensor (so comparisons and indexing are recorded inside ``jit``
    and ``explain``), else as an array."""
    return x if isinstance(x, cr.Tensor) else _own(x)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(numpy.shape(x))


def _ndim(x: Any) -> int:
    return len(_shape(x))


def _dtype(x: Any) -> numpy.dtype[Any]:
    dtype: numpy.dtype[Any] = numpy.dtype(_val(x).dtype)
    return dtype


# =============================================================================================
# Activations
# =============================================================================================


def relu(x: Any) -> Any:
    """max(0, x); the derivative at 0 is 0 (PyTorch).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.relu(numpy.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    return numpy.maximum(0, x)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
    """x for x > 0, ``negative_slope * x`` otherwise.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.leaky_relu(numpy.array([-2.0, 3.0]), 0.1)
    array([-0.2,  3. ])
    """
    return numpy.where(_val(x) > 0, x, x * negative_slope)


def elu(x: Any, alpha: float = 1.0) -> Any:
    """x for x > 0, ``alpha * (exp(x) - 1)`` otherwise.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.elu(numpy.array([0.0, 1.0]))
    array([0., 1.])
    """
    return numpy.where(_val(x) > 0, x, alpha * numpy.expm1(numpy.minimum(x, 0)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x: Any) -> Any:
    """``scale * elu(x, alpha)`` with the self-normalising constants.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> round(float(F.selu(numpy.array(1.0))), 6)
    1.050701
    """
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


# Numerical Recipes' erfc (Chebyshev fit): fractional error below 1.2e-7 everywhere.
_ERFC = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


def _erfc_nonneg(z: Any) -> Any:
    t = 1.0 / (1.0 + 0.5 * z)
    poly = _ERFC[-1]
    for c in reversed(_ERFC[:-1]):
        poly = c + t * poly
    return t * numpy.exp(-z * z + poly)


def erf(x: Any) -> Any:
    """The error function, from NumPy operations (absolute error below 1.2e-7).

    NumPy has no ``erf`` ufunc; this differentiable approximation is what ``gelu`` uses.

    Example
    -------
    >>> import math, numpy
    >>> from chainrule.nn import functional as F
    >>> abs(float(F.erf(numpy.array(0.5))) - math.erf(0.5)) < 1.2e-7
    True
    """
    positive = _val(x) >= 0
    z = numpy.minimum(numpy.where(positive, x, -x), 10.0)  # erfc(10) < 1e-44
    e = _erfc_nonneg(z)
    return numpy.where(positive, 1.0 - e, e - 1.0)


def gelu(x: Any, approximate: str = "none") -> Any:
    """Gaussian error linear unit, ``x * Phi(x)``.

    ``approximate='none'`` (PyTorch's default) uses :func:`erf` (error below 1.2e-7, see there);
    ``'tanh'`` the tanh formula ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` exactly.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> round(float(F.gelu(numpy.array(1.0))), 6)
    0.841345
    """
    if approximate == "tanh":
        return 0.5 * x * (1.0 + numpy.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), computed as ``exp(-logaddexp(0, -x))`` (no overflow).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.sigmoid(numpy.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    return _stable.sigmoid(x)


def log_sigmoid(x: Any) -> Any:
    """log(sigmoid(x)) = ``-logaddexp(0, -x)``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.log_sigmoid(numpy.array([-1000.0]))
    array([-1000.])
    """
    return _stable.log_sigmoid(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.tanh(numpy.array([0.0]))
    array([0.])
    """
    return numpy.tanh(x)


def softplus(x: Any, beta: float = 1.0) -> Any:
    """``log(1 + exp(beta x)) / beta``, as ``logaddexp(0, beta x) / beta``.

    Unlike PyTorch there is no ``threshold`` switch to the identity: ``logaddexp`` is exact
    and finite everywhere.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.softplus(numpy.array([1000.0]))
    array([1000.])
    """
    if beta == 1:
        return _stable.softplus(x)
    return _stable.softplus(x * beta) / beta


def silu(x: Any) -> Any:
    """x * sigmoid(x) (swish).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.silu(numpy.array([0.0]))
    array([0.])
    """
    return x * sigmoid(x)


def logsumexp(x: Any, dim: int | tuple[int, ...] = -1, keepdim: bool = False) -> Any:
    """log(sum(exp(x))) along ``dim``, with the maximum subtracted first.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> float(F.logsumexp(numpy.array([1000.0, 1000.0])))   # 1000 + log 2
    1000.6931471805599
    """
    return _stable.logsumexp(x, axis=dim, keepdims=keepdim)


def softmax(x: Any, dim: int = -1) -> Any:
    """exp(x) / sum(exp(x)) along ``dim``, with the maximum subtracted first.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.softmax(numpy.array([[1000.0, 1000.0]]))
    array([[0.5, 0.5]])
    """
    return _stable.softmax(x, axis=dim)


def log_softmax(x: Any, dim: int = -1) -> Any:
    """log(softmax(x)) along ``dim``: ``x - logsumexp(x)``, finite for any finite logits.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.log_softmax(numpy.array([[0.0, 2000.0]]))
    array([[-2000.,     0.]])
    """
    return _stable.log_softmax(x, axis=dim)


# =============================================================================================
# Layer operations
# =============================================================================================


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """``x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.linear(numpy.ones((1, 2)), numpy.array([[1.0, 2.0]]), numpy.array([0.5]))
    array([[3.5]])
    """
    out = x @ numpy.transpose(weight)
    return out if bias is None else out + bias


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        a, b = int(v[0]), int(v[1])
    else:
        a = b = int(v)
    return a, b


def _conv_padding(
    padding: Any, kernel: tuple[int, int], stride: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    "padding='same' is not supported for strided convolutions (as in PyTorch)"
                )
            th, tw = kernel[0] - 1, kernel[1] - 1  # PyTorch: the extra row goes last
            return (th // 2, th - th // 2), (tw // 2, tw - tw // 2)
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def _batched(x: Any, nd: int, name: str) -> tuple[Any, bool]:
    d = _ndim(x)
    if d == nd - 1:
        return x[None], True
    if d != nd:
        raise ValueError(
            f"{name}: expected a {nd}-D (batched) or {nd - 1}-D input, got shape {_shape(x)}"
        )
    return x, False


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Any:
    """2-D cross-correlation on NCHW input (PyTorch's ``conv2d``).

    ``weight`` has shape (out_channels, in_channels / groups, kh, kw).  ``dilation`` spaces the
    kernel taps; ``groups`` splits the channels into independent groups (``groups =
    in_channels``: depthwise).  Implemented as ``sliding_window_view`` + one matrix product
    of the patch matrix per group (im2col): no Python loop over pixels.
    Output size per axis: ``(size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    >>> F.conv2d(x, numpy.ones((1, 1, 2, 2)), stride=2)
    array([[[[10., 18.],
             [42., 50.]]]])
    """
    x, unbatched = _batched(x, 4, "conv2d")
    ws = _shape(weight)
    if len(ws) != 4:
        raise ValueError(f"conv2d: weight must have shape (out, in, kh, kw), got {ws}")
    xs = _shape(x)
    if not isinstance(groups, int) or groups < 1 or xs[1] % groups or ws[0] % groups:
        raise ValueError(
            f"conv2d: groups={groups!r} must be a positive int dividing the input's {xs[1]} "
            f"channels and the weight's {ws[0]} output channels"
        )
    if xs[1] != ws[1] * groups:
        raise ValueError(
            f"conv2d: input has {xs[1]} channels (shape {xs}) but the weight "
            f"expects {ws[1] * groups} (weight shape {ws}, groups={groups})"
        )
    dh, dw = _pair(dilation, "dilation")
    if dh < 1 or dw < 1:
        raise ValueError(f"conv2d: dilation must be positive, got {dilation!r}")
    kernel = (dh * (ws[2] - 1) + 1, dw * (ws[3] - 1) + 1)  # the dilated kernel's extent
    sh, sw = _pair(stride, "stride")
    if sh < 1 or sw < 1:
        raise ValueError(f"conv2d: stride must be positive, got {stride!r}")
    (pt, pb), (pl, pr) = _conv_padding(padding, kernel, (sh, sw))
    if pt or pb or pl or pr:
        x = numpy.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    h, w = xs[2] + pt + pb, xs[3] + pl + pr
    if h < kernel[0] or w < kernel[1]:
        raise ValueError(
            f"conv2d: the (padded) input {h}x{w} is smaller than the kernel {kernel[0]}x{kernel[1]}"
        )
    win = sliding_window_view(x, kernel, axis=(2, 3))  # N, C, H', W', kh, kw
    if sh > 1 or sw > 1:
        win = win[:, :, ::sh, ::sw]
    if dh > 1 or dw > 1:
        win = win[:, :, :, :, ::dh, ::dw]
    # im2col: one contiguous (C*kh*kw, H'*W'*N) patch matrix per group, so that the forward
    # product and both products of the backward pass are one matrix product each (no copies
    # inside tensordot) and the bias gradient one sum along rows.  The batch is the
    # innermost axis in memory (the output is laid out C, H, W, N, seen as NCHW): images are
    # small, so a row of them is a short loop for NumPy, while the batch at each pixel runs
    # the whole row of images at once; the pooling, activations and the next layer's patches
    # then all run in long loops
    n, _, ho, wo = _shape(win)[:4]
    o, cg, kh, kw = ws
    if groups == 1:
        cols = numpy.reshape(numpy.transpose(win, (1, 4, 5, 2, 3, 0)), (cg * kh * kw, ho * wo * n))
        out = numpy.reshape(weight, (o, -1)) @ cols  # O, H'*W'*N
    else:
        win = numpy.reshape(win, (n, groups, cg, ho, wo, kh, kw))
        cols = numpy.reshape(
            numpy.transpose(win, (1, 2, 5, 6, 3, 4, 0)), (groups, cg * kh * kw, ho * wo * n)
        )
        wg = numpy.reshape(weight, (groups, o // groups, cg * kh * kw))
        out = numpy.reshape(wg @ cols, (o, ho * wo * n))  # (G, O/G, H'*W'*N) -> O, H'*W'*N
    if bias is not None:
        out = out + numpy.reshape(bias, (o, 1))
    out = numpy.transpose(numpy.reshape(out, (o, ho, wo, n)), (3, 0, 1, 2))
    return out[0] if unbatched else out


def _pool_windows(
    x: Any, kernel_size: Any, stride: Any, padding: Any, fill: float, name: str
) -> tuple[Any, bool, bool]:
    """Windows of x (..., Ho, Wo, kh, kw), or a reshaped (..., Ho, kh, Wo, kw) when possible."""
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"{name}: padding should be at most half the kernel size, got "
            f"padding={padding!r}, kernel_size={kernel_size!r}"
        )
    if ph or pw:
        x = numpy.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    _, _, h, w = _shape(x)
    if h < kh or w < kw:
        raise ValueError(f"{name}: the (padded) input {h}x{w} is smaller than the kernel {kh}x{kw}")
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    if (sh, sw) == (kh, kw):  # non-overlapping: a reshape, no copy
        n, c = _shape(x)[:2]
        if (ho * kh, wo * kw) != (h, w):  # rows or columns no window reaches
            x = x[:, :, : ho * kh, : wo * kw]
        return numpy.reshape(x, (n, c, ho, kh, wo, kw)), True, bool(ph or pw)
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return win[:, :, ::sh, ::sw], False, bool(ph or pw)


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """Maximum over ``kernel_size`` windows of NCHW input (``stride`` defaults to the kernel).

    Padding is with -inf (it never wins); output size ``(size + 2 * padding - k) // stride + 1``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.max_pool2d(numpy.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    x, unbatched = _batched(x, 4, "max_pool2d")
    win, reshaped, _ = _pool_windows(x, kernel_size, stride, padding, -numpy.inf, "max_pool2d")
    out = numpy.max(win, axis=(3, 5) if reshaped else (4, 5))
    return out[0] if unbatched else out


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """Mean over ``kernel_size`` windows of NCHW input (zero padding counted, as PyTorch's
    default ``count_include_pad=True``).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.avg_pool2d(numpy.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    x, unbatched = _batched(x, 4, "avg_pool2d")
    win, reshaped, _ = _pool_windows(x, kernel_size, stride, padding, 0.0, "avg_pool2d")
    out = numpy.mean(win, axis=(3, 5) if reshaped else (4, 5))
    return out[0] if unbatched else out


def dropout(x: Any, p: float = 0.5, training: bool = True, rng: Any = None) -> Any:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The identity when ``training`` is False.  ``rng``: a ``numpy.random.Generator``, a seed, or
    None for :func:`chainrule.nn.init.default_generator`.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> y = F.dropout(numpy.ones(1000), 0.5, rng=0)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    from .init import as_generator

    keep = as_generator(rng).random(_shape(x)) >= p
    return x * (keep / (1.0 - p)).astype(_dtype(x))


def layer_norm(
    x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """Normalise over the last ``len(normalized_shape)`` axes (biased variance), then scale
    and shift.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> y = F.layer_norm(numpy.array([[1.0, 3.0]]), (2,))
    >>> numpy.round(y, 4)
    array([[-1.,  1.]])
    """
    shape = (
        (int(normalized_shape),) if numpy.ndim(normalized_shape) == 0 else tuple(normalized_shape)
    )
    if _shape(x)[-len(shape) :] != shape:
        raise ValueError(
            f"layer_norm: input shape {_shape(x)} does not end with normalized_shape {shape}"
        )
    axes = tuple(range(-len(shape), 0))
    xc = x - numpy.mean(x, axis=axes, keepdims=True)
    var = numpy.mean(xc * xc, axis=axes, keepdims=True)
    y = xc / numpy.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(
    x: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    """Batch normalisation over every axis but the channel axis 1.

    In training, normalises with the batch mean and biased batch variance and, when
    ``running_mean``/``running_var`` are NumPy arrays, updates them in place:
    ``running = (1 - momentum) * running + momentum * batch`` (the unbiased variance for
    ``running_var``, as PyTorch).  Otherwise normalises with the running statistics.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> rm, rv = numpy.zeros(1), numpy.ones(1)
    >>> y = F.batch_norm(numpy.array([[1.0], [3.0]]), rm, rv, training=True)
    >>> numpy.round(y, 4).ravel().tolist(), rm.tolist(), rv.tolist()
    ([-1.0, 1.0], [0.2], [1.1])
    """
    nd = _ndim(x)
    if nd < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, ...), got {_shape(x)}")
    axes = (0,) + tuple(range(2, nd))
    bshape = (1, -1) + (1,) * (nd - 2)
    if training:
        count = int(numpy.prod([_shape(x)[a] for a in axes]))
        if count <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when "
                f"training, got input of shape {_shape(x)} (a last mini-batch "
                "of one sample? train with drop_last=True or another batch size)"
            )
        mean = numpy.mean(x, axis=axes, keepdims=True)
        xc = x - mean
        var = numpy.mean(xc * xc, axis=axes, keepdims=True)
        y = xc / numpy.sqrt(var + eps)
        for run, stat, scale in (
            (running_mean, mean, 1.0),
            (running_var, var, count / (count - 1)),
        ):
            if isinstance(run, numpy.ndarray):
                batch = _arr(stat).reshape(-1) * scale
                run *= 1 - momentum
                run += momentum * batch.astype(run.dtype)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        y = (x - numpy.reshape(running_mean, bshape)) / numpy.sqrt(
            numpy.reshape(running_var, bshape) + eps
        )
    if weight is not None:
        y = y * numpy.reshape(weight, bshape)
    if bias is not None:
        y = y + numpy.reshape(bias, bshape)
    return y


def flatten(x: Any, start_dim: int = 1, end_dim: int = -1) -> Any:
    """Merge axes ``start_dim``..``end_dim`` into one.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.flatten(numpy.zeros((2, 3, 4))).shape
    (2, 12)
    """
    shape = _shape(x)
    nd = len(shape)
    if nd == 0:
        return numpy.reshape(x, (1,))
    s, e = start_dim % nd, end_dim % nd
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return numpy.reshape(x, shape[:s] + (-1,) + shape[e + 1 :])


def one_hot(labels: Any, num_classes: int = -1, dtype: Any = numpy.float64) -> numpy.ndarray:
    """Integer labels as one-hot rows (``num_classes=-1``: ``max(labels) + 1``).

    Example
    -------
    >>> from chainrule.nn import functional as F
    >>> F.one_hot([0, 2], 3)
    array([[1., 0., 0.],
           [0., 0., 1.]])
    """
    y = _arr(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got dtype {y.dtype}")
    n = int(y.max()) + 1 if num_classes < 0 else int(num_classes)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"one_hot: labels must lie in [0, {n}), got [{y.min()}, {y.max()}]")
    return numpy.asarray(numpy.eye(n, dtype=dtype)[y])


# =============================================================================================
# Losses
# =============================================================================================


def _reduce(loss: Any, reduction: str, name: str) -> Any:
    if reduction == "mean":
        return numpy.mean(loss)
    if reduction == "sum":
        return numpy.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(input: Any, target: Any, name: str) -> None:
    si, st = _shape(input), _shape(target)
    if si != st and st != ():
        hint = ""
        if len(si) == len(st) + 1 and si[-1] == 1 and si[:-1] == st:
            hint = " (reshape the target to (N, 1), or the input to (N,))"
        elif len(st) == len(si) + 1 and st[-1] == 1 and st[:-1] == si:
            hint = " (reshape the input to (N, 1), or the target to (N,))"
        raise ValueError(
            f"{name}: input shape {si} and target shape {st} differ; they would "
            f"broadcast to a wrong loss{hint}"
        )


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error ``(input - target)**2``, reduced.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> float(F.mse_loss(numpy.array([1.0, 3.0]), numpy.array([0.0, 0.0])))
    5.0
    """
    _same_shape(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean absolute error ``|input - target|``, reduced (derivative 0 at equality).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> float(F.l1_loss(numpy.array([1.0, -3.0]), numpy.array([0.0, 0.0])))
    2.0
    """
    _same_shape(input, target, "l1_loss")
    return _reduce(numpy.abs(input - target), reduction, "l1_loss")


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Any:
    """Huber loss: ``0.5 d**2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.huber_loss(numpy.array([0.5, 3.0]), numpy.zeros(2), reduction="none")
    array([0.125, 2.5  ])
    """
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    _same_shape(input, target, "huber_loss")
    d = input - target
    ad = numpy.abs(d)
    loss = numpy.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Any:
    """Smooth L1: ``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``
    (``huber_loss / beta``; plain L1 for ``beta=0``).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.smooth_l1_loss(numpy.array([0.5, 3.0]), numpy.zeros(2), reduction="none")
    array([0.125, 2.5  ])
    """
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction)
    _same_shape(input, target, "smooth_l1_loss")
    d = input - target
    ad = numpy.abs(d)
    loss = numpy.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def _class_targets(target: Any, input_shape: tuple[int, ...], name: str) -> Any:
    y = _val(target)
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: class-index targets must be integers, got dtype {y.dtype} "
            f"with shape {y.shape} (input shape {input_shape}); use "
            "target.astype(int), or give class probabilities of the input's shape"
        )
    expected = input_shape[:1] + input_shape[2:] if len(input_shape) >= 2 else ()
    if y.shape != expected:
        raise ValueError(
            f"{name}: input of shape {input_shape} needs class-index targets of "
            f"shape {expected}, got {y.shape}"
        )
    return y


def _nll(
    logp: Any,
    y: numpy.ndarray,
    weight: Any,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    name: str,
) -> Any:
    shape = _shape(logp)
    c = shape[1] if len(shape) >= 2 else shape[0]
    ignored = y == ignore_index
    traced = isinstance(y, cr.Tensor)  # labels traced by jit/explain: checked when run
    if not traced:
        bad = (~ignored) & ((y < 0) | (y >= c))
        if bad.any():
            raise IndexError(
                f"{name}: target {int(y[bad].ravel()[0])} is out of bounds for {c} classes"
            )
    safe = numpy.where(ignored, 0, y)
    last = numpy.moveaxis(logp, 1, -1) if len(shape) >= 2 else logp
    # logp[n, y[n]] (and over any further axes): an index that jit and explain can follow
    picked = last[numpy.indices(_shape(safe), sparse=True) + (safe,)]
    w = None if weight is None else _arr(weight)
    if w is not None and w.shape != (c,):
        raise ValueError(f"{name}: weight must have shape ({c},), got {w.shape}")
    keep = (~ignored).astype(_dtype(logp))
    wy = keep if w is None else keep * (cr.tensor(w) if traced else w)[safe]
    loss = -picked * wy
    if label_smoothing:
        full = last if w is None else last * w
        smooth = -numpy.sum(full, axis=-1) * keep
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / c) * smooth
    if reduction == "mean":
        if traced:
            return numpy.sum(loss) / numpy.sum(wy)
        # every target ignored: 0 / 0 = nan, as PyTorch (no float(): no copy from a device)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            return numpy.sum(loss) / numpy.sum(wy)
    return _reduce(loss, reduction, name)


def nll_loss(
    input: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"
) -> Any:
    """Negative log-likelihood of class-index ``target`` under log-probabilities ``input``.

    ``input``: (N, C) (or (C,), or (N, C, d1, ...)); ``target``: integers of shape (N,)
    (or (), or (N, d1, ...)).  ``weight`` rescales classes; targets equal to ``ignore_index``
    contribute nothing; ``'mean'`` divides by the summed weights of the counted targets.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> logp = numpy.log(numpy.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> round(float(F.nll_loss(logp, numpy.array([0, 1]))), 6)     # -(log .5 + log .75) / 2
    0.490415
    """
    y = _class_targets(target, _shape(input), "nll_loss")
    return _nll(input, y, weight, ignore_index, reduction, 0.0, "nll_loss")


def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Any:
    """Cross-entropy between logits ``input`` and class indices or class probabilities.

    ``input``: unnormalised logits (N, C) (or (C,), or (N, C, d1, ...)), the class axis 1.
    ``target``: integer class indices of shape (N,) — or floating-point class probabilities of
    the same shape as ``input``.  Computed as ``log_softmax`` + negative log-likelihood, so
    logits of any size give a finite loss and gradient.  ``weight``, ``ignore_index``,
    ``reduction`` and ``label_smoothing`` have PyTorch's meaning.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> logits = numpy.array([[2000.0, 0.0], [0.0, 0.0]])
    >>> round(float(F.cross_entropy(logits, numpy.array([1, 0]))), 6)   # (2000 + log 2) / 2
    1000.346574
    """
    shape = _shape(input)
    if len(shape) == 0:
        raise ValueError("cross_entropy: input must have a class axis, got a scalar")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    dim = 1 if len(shape) >= 2 else 0
    logp = log_softmax(input, dim=dim)
    t = _val(target)
    if t.dtype.kind == "f":
        if t.shape != shape:
            raise ValueError(
                f"cross_entropy: floating-point targets are class probabilities "
                f"and must have the input's shape {shape}, got {t.shape}; for "
                "class indices pass integers (target.astype(int))"
            )
        c = shape[dim]
        probs = target
        if label_smoothing:
            probs = probs * (1.0 - label_smoothing) + label_smoothing / c
        terms = logp * probs
        if weight is not None:
            w = _arr(weight)
            if w.shape != (c,):
                raise ValueError(f"cross_entropy: weight must have shape ({c},), got {w.shape}")
            terms = terms * w.reshape((-1,) + (1,) * (len(shape) - 2)) if dim == 1 else terms * w
        loss = -numpy.sum(terms, axis=dim)
        return _reduce(loss, reduction, "cross_entropy")
    y = _class_targets(target, shape, "cross_entropy")
    return _nll(logp, y, weight, ignore_index, reduction, label_smoothing, "cross_entropy")


def binary_cross_entropy_with_logits(
    input: Any, target: Any, weight: Any = None, reduction: str = "mean", pos_weight: Any = None
) -> Any:
    """Binary cross-entropy on logits: ``(1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)``.

    ``softplus(-x) = logaddexp(0, -x)`` keeps it finite for logits of any size.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> float(F.binary_cross_entropy_with_logits(numpy.array([-1000.0]), numpy.array([1.0])))
    1000.0
    """
    _same_shape(input, target, "binary_cross_entropy_with_logits")
    sp = numpy.logaddexp(0, -input)
    if pos_weight is None:
        loss = (1.0 - target) * input + sp
    else:
        loss = (1.0 - target) * input + (1.0 + (pos_weight - 1.0) * target) * sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


_LOG_FLOOR = math.exp(-100.0)


def binary_cross_entropy(
    input: Any, target: Any, weight: Any = None, reduction: str = "mean"
) -> Any:
    """Binary cross-entropy on probabilities, each log clamped at -100 (PyTorch).

    Prefer :func:`binary_cross_entropy_with_logits` on logits: it is exact where this one
    saturates.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> float(F.binary_cross_entropy(numpy.array([0.0]), numpy.array([1.0])))
    100.0
    """
    _same_shape(input, target, "binary_cross_entropy")
    p = _known(input)  # (inside jit the values are not known yet: checked eagerly only)
    if p is not None and p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(
            "binary_cross_entropy: input values must lie in [0, 1]; for logits "
            "use binary_cross_entropy_with_logits"
        )
    log_p = numpy.log(numpy.maximum(input, _LOG_FLOOR))
    log_q = numpy.log(numpy.maximum(1.0 - input, _LOG_FLOOR))
    loss = -(target * log_p + (1.0 - target) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


# PyTorch's further functions live in their own module and are part of this namespace
from .functional_more import (  # noqa: E402
    adaptive_avg_pool2d,
    conv1d,
    conv_transpose2d,
    embedding,
    group_norm,
    kl_div,
    pad,
)

__all__ += [
    "pad",
    "embedding",
    "conv1d",
    "group_norm",
    "adaptive_avg_pool2d",
    "kl_div",
    "conv_transpose2d",
]
