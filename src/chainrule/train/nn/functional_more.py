"""More of PyTorch's ``torch.nn.functional``: ``pad``, ``embedding``, ``conv1d`` (stride,
padding, dilation, groups), ``group_norm``, ``adaptive_avg_pool2d`` and ``kl_div``.

Written with NumPy functions that chainrule differentiates (``take``, ``pad``, ``matmul``,
index arrays built from shapes only), so each works on chainrule tensors eagerly, under
``jit``, ``vmap`` and ``explain``; values are never read from a traced input.  Re-exported by
:mod:`chainrule.nn.functional`.

Example
-------
>>> import numpy
>>> from chainrule.nn import functional as F
>>> F.pad(numpy.array([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect")
array([[3., 2., 1., 2., 3., 2.]])
"""

from __future__ import annotations

from typing import Any

import numpy

import chainrule as cr

__all__ = [
    "pad",
    "embedding",
    "conv1d",
    "group_norm",
    "adaptive_avg_pool2d",
    "kl_div",
    "conv_transpose2d",
]

_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(numpy.shape(x))


def _dtype(x: Any) -> Any:
    return x.dtype if isinstance(x, (cr.Tensor, numpy.ndarray)) else numpy.asarray(x).dtype


def pad(input: Any, pad: Any, mode: str = "constant", value: float = 0.0) -> Any:
    """Pad (or, with negative sizes, crop) the last axes, PyTorch's ``F.pad``.

    ``pad`` lists ``(left, right)`` pairs from the last axis backwards: ``(1, 2)`` pads the
    last axis, ``(1, 1, 2, 0)`` also the one before.  ``mode``: ``'constant'`` (``value``),
    ``'reflect'`` (mirror without repeating the edge), ``'replicate'`` (repeat the edge),
    ``'circular'`` (wrap around).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.pad(numpy.ones((1, 2)), (1, 0, 0, 1), value=9.0)
    array([[9., 1., 1.],
           [9., 9., 9.]])
    """
    shape = _shape(input)
    sizes = [int(p) for p in pad]
    if len(sizes) % 2 or len(sizes) // 2 > len(shape):
        raise ValueError(
            f"pad: expected (left, right) pairs for at most {len(shape)} axes of an input of "
            f"shape {shape}, got {tuple(pad)}"
        )
    if mode not in _MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_MODES)}, got {mode!r}")
    out = input
    for k in range(len(sizes) // 2):
        axis = len(shape) - 1 - k
        left, right = sizes[2 * k], sizes[2 * k + 1]
        n = _shape(out)[axis]
        if left < 0 or right < 0:  # crop first (PyTorch allows negative constant padding)
            if mode != "constant":
                raise ValueError(f"pad: negative padding needs mode='constant', got {mode!r}")
            keep = numpy.arange(max(0, -left), n - max(0, -right))
            out = numpy.take(out, keep, axis=axis)
            left, right, n = max(left, 0), max(right, 0), len(keep)
        if left == right == 0:
            continue
        if mode == "reflect" and (left >= n or right >= n):
            raise ValueError(
                f"pad: reflect padding ({left}, {right}) must be smaller than the axis size {n} "
                f"(input shape {shape})"
            )
        widths = [(0, 0)] * len(shape)
        widths[axis] = (left, right)
        if mode == "constant":
            out = numpy.pad(out, widths, mode="constant", constant_values=value)
        else:  # numpy.pad's own modes, differentiated as the reads they are
            out = numpy.pad(out, widths, mode=_MODES[mode])  # type: ignore[call-overload]
    return out


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of ``weight`` (num_embeddings, dim) at the integer indices ``input`` (any shape):
    the result has shape ``input.shape + (dim,)``.  Rows at ``padding_idx`` give zeros and no
    gradient (PyTorch's rule).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.embedding(numpy.array([[2, 0]]), numpy.arange(6.0).reshape(3, 2))
    array([[[4., 5.],
            [0., 1.]]])
    """
    idx = input if isinstance(input, cr.Tensor) else numpy.asarray(input)
    n = _shape(weight)[0]
    if not isinstance(idx, cr.Tensor):  # traced indices are checked when the program runs
        if idx.dtype.kind not in "iu":
            raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            raise IndexError(
                f"embedding: index {int(idx[bad].ravel()[0])} is out of range for {n} embeddings"
            )
    out = numpy.take(weight, idx, axis=0)
    if padding_idx is not None:
        keep = numpy.where(idx != padding_idx, 1.0, 0.0)
        out = out * numpy.expand_dims(keep, -1)
    return out


def _conv1d_out(length: int, k: int, stride: int, padding: int, dilation: int) -> int:
    return (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int = 1,
    padding: Any = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Any:
    """1-D convolution (cross-correlation) of (N, C_in, L) input with a (C_out, C_in / groups,
    K) weight, PyTorch's ``F.conv1d``: ``padding`` an int, ``'valid'`` or ``'same'``
    (stride 1); ``dilation`` spaces the kernel taps; ``groups`` splits the channels into
    independent groups.  Unbatched (C_in, L) input gives (C_out, L_out).

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.conv1d(numpy.arange(5.0).reshape(1, 1, 5), numpy.ones((1, 1, 2)), dilation=2)
    array([[[2., 4., 6.]]])
    """
    x = input
    unbatched = len(_shape(x)) == 2
    if unbatched:
        x = numpy.expand_dims(x, 0)
    xs, ws = _shape(x), _shape(weight)
    if len(xs) != 3 or len(ws) != 3:
        raise ValueError(
            f"conv1d: expected input (N, C, L) and weight (out, in/groups, k), got {xs} and {ws}"
        )
    n, c, length = xs
    o, cg, k = ws
    if groups < 1 or c % groups or o % groups or cg != c // groups:
        raise ValueError(
            f"conv1d: input has {c} channels and weight shape {ws} with groups={groups}; "
            f"need in_channels divisible by groups and weight.shape[1] == in_channels/groups"
        )
    if padding == "valid":
        padding = 0
    elif padding == "same":
        if stride != 1:
            raise ValueError("conv1d: padding='same' needs stride 1")
        total = dilation * (k - 1)
        x = pad(x, (total // 2, total - total // 2))
        padding = 0
    padding = int(padding)
    if padding:
        x = pad(x, (padding, padding))
    length = _shape(x)[2]
    lout = _conv1d_out(length, k, stride, 0, dilation)
    if lout < 1:
        raise ValueError(
            f"conv1d: input length {xs[2]} is too short for kernel {k} with dilation "
            f"{dilation} and padding {padding}"
        )
    from .functional import conv2d

    # a 2-D convolution of images one row high: conv2d's patch matrix and matrix product
    out = conv2d(
        numpy.expand_dims(x, 2),
        numpy.expand_dims(weight, 2),
        bias,
        stride=(1, stride),
        dilation=(1, dilation),
        groups=groups,
    )
    out = numpy.reshape(out, (n, o, lout))
    return out[0] if unbatched else out


def group_norm(
    input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """Normalise each group of channels of each sample to mean 0 and variance 1 (biased),
    then scale and shift per channel: PyTorch's ``F.group_norm`` on (N, C, *) input.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.group_norm(numpy.array([[1.0, 3.0, 10.0, 20.0]]), 2).round(4)
    array([[-1., 1., -1., 1.]])
    """
    shape = _shape(input)
    if len(shape) < 2 or shape[1] % num_groups:
        raise ValueError(
            f"group_norm: input of shape {shape} needs (N, C, ...) with C divisible by "
            f"num_groups={num_groups}"
        )
    n, c = shape[0], shape[1]
    g = numpy.reshape(input, (n, num_groups, -1))
    mean = numpy.mean(g, axis=2, keepdims=True)
    centred = g - mean
    var = numpy.mean(centred * centred, axis=2, keepdims=True)
    y = numpy.reshape(centred / numpy.sqrt(var + eps), shape)
    bshape = (1, c) + (1,) * (len(shape) - 2)
    if weight is not None:
        y = y * numpy.reshape(weight, bshape)
    if bias is not None:
        y = y + numpy.reshape(bias, bshape)
    return y


def _pool_matrix(size: int, out: int, dtype: Any) -> numpy.ndarray:
    """(out, size) averaging over PyTorch's adaptive bins [floor(i s / o), ceil((i+1) s / o))."""
    m = numpy.zeros((out, size), dtype=dtype)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    """Average-pool (N, C, H, W) (or (C, H, W)) input to ``output_size`` (an int, or a pair
    whose None entries keep the input's size) over PyTorch's adaptive bins.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.adaptive_avg_pool2d(numpy.arange(6.0).reshape(1, 1, 2, 3), (1, 2))
    array([[[[2., 3.]]]])
    """
    shape = _shape(input)
    if len(shape) not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected (N, C, H, W) or (C, H, W), got {shape}")
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    h, w = shape[-2:]
    ho = h if size[0] is None else int(size[0])
    wo = w if size[1] is None else int(size[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size}")
    dt = _dtype(input)
    dt = dt if numpy.dtype(dt).kind == "f" else numpy.float64
    ph, pw = _pool_matrix(h, ho, dt), _pool_matrix(w, wo, dt)
    return numpy.matmul(numpy.matmul(ph, input), pw.T)


def kl_div(input: Any, target: Any, reduction: str = "mean", log_target: bool = False) -> Any:
    """Kullback-Leibler divergence with ``input`` log-probabilities, PyTorch's ``F.kl_div``:
    pointwise ``target * (log target - input)`` (0 where target is 0), or with ``log_target``
    ``exp(target) * (target - input)``.  ``reduction``: ``'batchmean'`` (the divergence per
    sample, the mathematical KL), ``'sum'``, ``'mean'`` (over every element, as PyTorch) or
    ``'none'``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> p = numpy.array([[0.5, 0.5]]); q = numpy.array([[0.25, 0.75]])
    >>> round(float(F.kl_div(numpy.log(q), p, reduction="batchmean")), 6)  # KL(p || q)
    0.143841
    """
    if _shape(input) != _shape(target):
        raise ValueError(
            f"kl_div: input {_shape(input)} and target {_shape(target)} must have the same shape"
        )
    if log_target:
        point = numpy.exp(target) * (target - input)
    else:
        positive = target > 0
        safe = numpy.where(positive, target, 1.0)
        point = numpy.where(positive, target * (numpy.log(safe) - input), 0.0)
    if reduction == "none":
        return point
    if reduction == "sum":
        return numpy.sum(point)
    if reduction == "mean":
        return numpy.mean(point)
    if reduction == "batchmean":
        shape = _shape(input)
        return numpy.sum(point) / (shape[0] if shape else 1)
    raise ValueError(
        f"kl_div: reduction must be 'batchmean', 'sum', 'mean' or 'none', got {reduction!r}"
    )


def _stretch(x: Any, stride: int, axis: int) -> Any:
    """Insert ``stride - 1`` zeros between neighbours along ``axis`` (no trailing zeros)."""
    if stride == 1:
        return x
    shape = _shape(x)
    moved = numpy.moveaxis(x, axis, -1)
    zeros = numpy.zeros(_shape(moved) + (stride - 1,), dtype=_dtype(x))
    both = numpy.concatenate([numpy.expand_dims(moved, -1), zeros], axis=-1)
    flat = numpy.reshape(both, _shape(moved)[:-1] + (shape[axis] * stride,))
    flat = numpy.take(flat, numpy.arange(shape[axis] * stride - (stride - 1)), axis=-1)
    return numpy.moveaxis(flat, -1, axis)


def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Any:
    """Transposed 2-D convolution (the gradient of ``conv2d`` with respect to its input),
    PyTorch's ``F.conv_transpose2d``: ``weight`` (in_channels, out_channels / groups, kh, kw);
    output size ``(H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1``.
    Computed as a convolution of the zero-stretched, padded input with the flipped kernel.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> F.conv_transpose2d(numpy.ones((1, 1, 2, 2)), numpy.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    from .functional import _pair, conv2d

    x = input
    unbatched = len(_shape(x)) == 3
    if unbatched:
        x = numpy.expand_dims(x, 0)
    xs, ws = _shape(x), _shape(weight)
    if len(xs) != 4 or len(ws) != 4 or xs[1] != ws[0] or ws[0] % groups:
        raise ValueError(
            f"conv_transpose2d: expected input (N, C_in, H, W) and weight (C_in, C_out/groups, "
            f"kh, kw) with C_in divisible by groups={groups}, got {xs} and {ws}"
        )
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    (oh, ow), (dh, dw) = _pair(output_padding, "output_padding"), _pair(dilation, "dilation")
    if oh >= max(sh, dh) or ow >= max(sw, dw):
        raise ValueError(
            "conv_transpose2d: output_padding must be smaller than stride or dilation, "
            f"got {output_padding!r}"
        )
    kh, kw = ws[2], ws[3]
    eh, ew = dh * (kh - 1) - ph, dw * (kw - 1) - pw  # padding of the stretched input
    x = _stretch(_stretch(x, sh, 2), sw, 3)
    x = pad(x, (ew, ew + ow, eh, eh + oh))  # negative sizes crop
    cin, cog = ws[0], ws[1]
    w = numpy.reshape(weight, (groups, cin // groups, cog, kh, kw))
    w = numpy.transpose(w, (0, 2, 1, 3, 4))
    w = numpy.reshape(w, (groups * cog, cin // groups, kh, kw))
    w = numpy.flip(w, axis=(2, 3))
    out = conv2d(x, w, bias, 1, 0, (dh, dw), groups)
    return out[0] if unbatched else out
