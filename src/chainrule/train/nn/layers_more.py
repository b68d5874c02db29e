"""More of PyTorch's layers: ``Embedding``, ``Conv1d``, ``GroupNorm``, ``AdaptiveAvgPool2d``
and ``KLDivLoss``, with PyTorch's names, shapes, defaults and initialisation.

Example
-------
>>> import numpy
>>> from chainrule import nn
>>> emb = nn.Embedding(10, 4, rng=0)
>>> emb(numpy.array([[1, 2, 3]])).shape
(1, 3, 4)
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from . import functional as F
from . import init
from .layers import _check_positive, _Loss, _uniform_param
from .module import Module, Parameter

__all__ = [
    "Embedding",
    "Conv1d",
    "ConvTranspose2d",
    "GroupNorm",
    "AdaptiveAvgPool2d",
    "KLDivLoss",
]


class Embedding(Module):
    """A lookup table: integer indices of any shape to rows of ``weight`` (num_embeddings,
    embedding_dim), initialised N(0, 1) as PyTorch; the ``padding_idx`` row starts at zero and
    gets no gradient.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> emb = nn.Embedding(5, 2, padding_idx=0, rng=0)
    >>> emb(numpy.array([0, 3]))[0]
    tensor([0., 0.], requires_grad=True)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} is out of range for "
                    f"{num_embeddings} embeddings"
                )
            padding_idx = padding_idx % num_embeddings
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = padding_idx
        w = init.normal((num_embeddings, embedding_dim), 0.0, 1.0, init.as_generator(rng), dtype)
        if padding_idx is not None:
            w[padding_idx] = 0.0
        self.weight = Parameter(w)

    def forward(self, input: Any) -> Any:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Conv1d(Module):
    """1-D convolution on (N, C, L) input, PyTorch's ``Conv1d``: ``stride``, ``padding`` (int,
    ``'valid'`` or ``'same'``), ``dilation``, ``groups``; weight (out, in / groups, k) and bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with ``fan_in = in / groups * k``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> conv = nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2, rng=0)
    >>> conv.weight.shape, conv(numpy.zeros((1, 4, 10))).shape
    ((6, 2, 3), (1, 6, 10))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Any = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive(
            "Conv1d",
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
            groups=groups,
        )
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv1d: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"be divisible by groups ({groups})"
            )
        if isinstance(padding, str) and padding not in ("valid", "same"):
            raise ValueError(f"Conv1d: padding must be an int, 'valid' or 'same', got {padding!r}")
        if padding == "same" and stride != 1:
            raise ValueError("Conv1d: padding='same' needs stride 1")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), padding
        self.dilation, self.groups = int(dilation), int(groups)
        g = init.as_generator(rng)
        bound = 1.0 / math.sqrt(in_channels // groups * kernel_size)
        self.weight = _uniform_param(
            (out_channels, in_channels // groups, kernel_size), bound, g, dtype
        )
        if bias:
            self.bias = _uniform_param((out_channels,), bound, g, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        return F.conv1d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size=({self.kernel_size},)"
        s += f", stride=({self.stride},)"
        if self.padding != 0:
            s += (
                f", padding={self.padding!r}"
                if isinstance(self.padding, str)
                else (f", padding=({self.padding},)")
            )
        if self.dilation != 1:
            s += f", dilation=({self.dilation},)"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ConvTranspose2d(Module):
    """Transposed 2-D convolution, PyTorch's ``ConvTranspose2d``: weight (in_channels,
    out_channels / groups, kh, kw) and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with ``fan_in =
    out_channels / groups * kh * kw`` (PyTorch's convention for this layer); ``stride``,
    ``padding``, ``output_padding``, ``groups``, ``dilation``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, rng=0)
    >>> up(numpy.zeros((1, 4, 5, 5))).shape        # doubles the size
    (1, 2, 10, 10)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive(
            "ConvTranspose2d", in_channels=in_channels, out_channels=out_channels, groups=groups
        )
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"ConvTranspose2d: in_channels ({in_channels}) and out_channels "
                f"({out_channels}) must be divisible by groups ({groups})"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride, self.padding = F._pair(stride, "stride"), F._pair(padding, "padding")
        self.output_padding = F._pair(output_padding, "output_padding")
        self.dilation, self.groups = F._pair(dilation, "dilation"), int(groups)
        g = init.as_generator(rng)
        bound = 1.0 / math.sqrt(out_channels // groups * self.kernel_size[0] * self.kernel_size[1])
        self.weight = _uniform_param(
            (in_channels, out_channels // groups) + self.kernel_size, bound, g, dtype
        )
        if bias:
            self.bias = _uniform_param((out_channels,), bound, g, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        return F.conv_transpose2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s if self.bias is not None else s + ", bias=False"


class GroupNorm(Module):
    """Group normalisation (Wu & He), PyTorch's ``GroupNorm``: per sample, per group of
    ``num_channels / num_groups`` channels; ``affine`` adds a per-channel weight (ones) and
    bias (zeros).  Same in training and evaluation.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.GroupNorm(2, 4)(numpy.array([[1.0, 3.0, 10.0, 20.0]])).data.round(4)
    array([[-1.,  1., -1.,  1.]])
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive("GroupNorm", num_groups=num_groups, num_channels=num_channels)
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.num_groups, self.num_channels, self.eps = int(num_groups), int(num_channels), eps
        self.affine = affine
        if affine:
            self.weight = Parameter(init.ones((num_channels,), dtype))
            self.bias = Parameter(init.zeros((num_channels,), dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        shape = F._shape(x)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm: expected input (N, {self.num_channels}, ...), got shape {shape}"
            )
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (PyTorch's ``AdaptiveAvgPool2d``); ``(1, 1)`` is
    global average pooling.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.AdaptiveAvgPool2d(1)(numpy.arange(8.0).reshape(1, 2, 2, 2)).reshape(2)
    array([1.5, 5.5])
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class KLDivLoss(_Loss):
    """``kl_div`` as a module (input log-probabilities; ``reduction`` ``'mean'`` by default
    as PyTorch, ``'batchmean'`` for the mathematical divergence per sample).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> p = numpy.array([[0.5, 0.5]])
    >>> float(nn.KLDivLoss(reduction="batchmean")(numpy.log(p), p))
    0.0
    """

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        if reduction == "batchmean":
            super().__init__("mean")
            self.reduction = "batchmean"
        else:
            super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Any, target: Any) -> Any:
        return F.kl_div(input, target, self.reduction, self.log_target)
