"""Layers, activation modules, loss modules and ``MLP`` (PyTorch's names, shapes and defaults).

Parameters are chainrule tensors with ``requires_grad=True``, initialised as PyTorch does
(``Linear``/``Conv2d``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias), from ``rng``
(a ``numpy.random.Generator`` or seed; None: :func:`chainrule.nn.init.default_generator`).
``dtype`` (default float64, NumPy's default) sets the parameters' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy

from . import functional as F
from . import init
from .module import Module, Parameter, Sequential

__all__ = [
    "Linear",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "Dropout",
    "LayerNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "Identity",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "SELU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "SmoothL1Loss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "MLP",
]


def _uniform_param(
    shape: tuple[int, ...], bound: float, rng: numpy.random.Generator, dtype: Any
) -> Any:
    return Parameter(init.uniform(shape, -bound, bound, rng, dtype))


def _check_positive(name: str, **values: Any) -> None:
    for k, v in values.items():
        if not isinstance(v, (int, numpy.integer)) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name}: {k} must be a positive int, got {v!r}")


class Linear(Module):
    """``y = x @ weight.T + bias``; weight (out_features, in_features), bias (out_features,).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> layer = nn.Linear(3, 2, rng=0)
    >>> layer
    Linear(in_features=3, out_features=2, bias=True)
    >>> layer.weight.shape, layer(numpy.ones((5, 3))).shape
    ((2, 3), (5, 2))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        g = init.as_generator(rng)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = _uniform_param((out_features, in_features), bound, g, dtype)
        if bias:
            self.bias = _uniform_param((out_features,), bound, g, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        shape = F._shape(x)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: expected input with last dimension {self.in_features}, "
                f"got shape {tuple(shape)}"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(Module):
    """2-D convolution (cross-correlation) on NCHW input, as PyTorch's ``Conv2d``.

    weight (out_channels, in_channels / groups, kh, kw), bias (out_channels,).  ``padding``: an
    int, a pair, ``'valid'`` or ``'same'`` (stride 1); ``dilation`` and ``groups`` as PyTorch
    (PyTorch's argument order, so ``bias`` comes after them).  Computed with
    ``sliding_window_view`` and ``tensordot`` (no Python loop over pixels).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> conv = nn.Conv2d(1, 4, 3, padding=1, rng=0)
    >>> conv
    Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> conv(numpy.zeros((2, 1, 8, 8))).shape
    (2, 4, 8, 8)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive("Conv2d", in_channels=in_channels, out_channels=out_channels, groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"be divisible by groups ({groups})"
            )
        self.dilation = F._pair(dilation, "dilation")
        self.groups = int(groups)
        if min(self.dilation) < 1:
            raise ValueError(f"Conv2d: dilation must be positive, got {dilation!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride = F._pair(stride, "stride")
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(
                f"Conv2d: kernel_size and stride must be positive, got {kernel_size!r}, {stride!r}"
            )
        self.padding = padding if isinstance(padding, str) else F._pair(padding, "padding")
        F._conv_padding(self.padding, self.kernel_size, self.stride)  # validate now
        g = init.as_generator(rng)
        fan_in = in_channels // groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = _uniform_param(
            (out_channels, in_channels // groups) + self.kernel_size, bound, g, dtype
        )
        if bias:
            self.bias = _uniform_param((out_channels,), bound, g, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        pad = repr(self.padding) if isinstance(self.padding, str) else str(self.padding)
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={pad}"
        )
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s if self.bias is not None else s + ", bias=False"


class MaxPool2d(Module):
    """Max pooling over NCHW windows (``stride`` defaults to ``kernel_size``).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.MaxPool2d(2)(numpy.zeros((3, 4, 8, 8))).shape
    (3, 4, 4, 4)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x: Any) -> Any:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    """Average pooling over NCHW windows (zero padding counted).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.AvgPool2d(2)(numpy.ones((1, 1, 4, 4))).shape
    (1, 1, 2, 2)
    """

    def forward(self, x: Any) -> Any:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class Flatten(Module):
    """Merge axes ``start_dim``..``end_dim`` (default: all but the batch axis).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.Flatten()(numpy.zeros((2, 3, 4, 4))).shape
    (2, 48)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Any:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input.

    Example
    -------
    >>> from chainrule import nn
    >>> nn.Identity()(3.0)
    3.0
    """

    def forward(self, x: Any) -> Any:
        return x


class Dropout(Module):
    """Zero elements with probability ``p`` in training (scaling the rest by 1/(1-p)); the
    identity in evaluation mode.

    The mask comes from ``self.generator`` (a ``numpy.random.Generator``): from ``rng`` when
    given, else spawned from :func:`chainrule.nn.init.default_generator`, so runs are
    reproducible.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> drop = nn.Dropout(0.5, rng=0)
    >>> drop(numpy.ones(6))
    array([2., 0., 0., 0., 2., 2.])
    >>> drop.eval()(numpy.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, *, rng: Any = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be between 0 and 1, got {p}")
        self.p = float(p)
        self.generator = (
            init.default_generator().spawn(1)[0] if rng is None else init.as_generator(rng)
        )

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm(Module):
    """Normalise over the last axes ``normalized_shape``, then ``* weight + bias``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> ln = nn.LayerNorm(4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True)
    >>> ln(numpy.arange(8.0).reshape(2, 4)).shape
    (2, 4)
    """

    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        *,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        shape = (
            (int(normalized_shape),)
            if numpy.ndim(normalized_shape) == 0
            else tuple(int(s) for s in normalized_shape)
        )
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(numpy.ones(shape, dtype=dtype))
            self.bias = Parameter(numpy.zeros(shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive(type(self).__name__, num_features=num_features)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: momentum must be in [0, 1], got "
                f"{momentum!r} (momentum=None, a cumulative average, is not "
                "supported)"
            )
        self.num_features = int(num_features)
        self.eps, self.momentum = eps, float(momentum)
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(numpy.ones(num_features, dtype=dtype))
            self.bias = Parameter(numpy.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", numpy.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", numpy.ones(num_features, dtype=dtype))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def forward(self, x: Any) -> Any:
        shape = F._shape(x)
        name = type(self).__name__
        if len(shape) not in self._dims:
            raise ValueError(
                f"{name}: expected {' or '.join(f'{d}-D' for d in self._dims)} "
                f"input (N, C, ...), got shape {tuple(shape)}"
            )
        if shape[1] != self.num_features:
            raise ValueError(
                f"{name}: expected {self.num_features} channels on axis 1, got shape {tuple(shape)}"
            )
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_batch,
            self.momentum,
            self.eps,
        )

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1."""
        if self.track_running_stats:
            self.register_buffer(
                "running_mean", numpy.zeros(self.num_features, dtype=self.running_mean.dtype)
            )
            self.register_buffer(
                "running_var", numpy.ones(self.num_features, dtype=self.running_var.dtype)
            )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, with running statistics.

    Training mode normalises with batch statistics and updates ``running_mean``/
    ``running_var`` (buffers, in the state dict); evaluation mode uses the running ones.
    ``momentum`` must be a number (PyTorch's ``momentum=None`` is not supported).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> bn = nn.BatchNorm1d(2)
    >>> _ = bn(numpy.array([[1.0, 0.0], [3.0, 0.0]]))
    >>> bn.running_mean
    array([0.2, 0. ])
    >>> sorted(bn.state_dict())
    ['bias', 'running_mean', 'running_var', 'weight']
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input over N, H and W (see :class:`BatchNorm1d`).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.BatchNorm2d(3)(numpy.ones((2, 3, 4, 4))).shape
    (2, 3, 4, 4)
    """

    _dims = (4,)


# --- activation modules --------------------------------------------------------------------


class ReLU(Module):
    """max(0, x) (derivative 0 at 0).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.ReLU()(numpy.array([-1.0, 2.0]))
    array([0., 2.])
    """

    def forward(self, x: Any) -> Any:
        return F.relu(x)


class LeakyReLU(Module):
    """x for x > 0, ``negative_slope * x`` otherwise.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.LeakyReLU(0.1)(numpy.array([-1.0]))
    array([-0.1])
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Any:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """x for x > 0, ``alpha (exp(x) - 1)`` otherwise.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.ELU()(numpy.array([1.0]))
    array([1.])
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Any) -> Any:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(Module):
    """Scaled ELU with the self-normalising constants.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.SELU()(numpy.array([0.0]))
    array([0.])
    """

    def forward(self, x: Any) -> Any:
        return F.selu(x)


class GELU(Module):
    """``x * Phi(x)``; ``approximate='none'`` (default, erf to 1.2e-7) or ``'tanh'``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.GELU("tanh")
    GELU(approximate='tanh')
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """1 / (1 + exp(-x)), overflow-free.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.Sigmoid()(numpy.array([0.0]))
    array([0.5])
    """

    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.Tanh()(numpy.array([0.0]))
    array([0.])
    """

    def forward(self, x: Any) -> Any:
        return F.tanh(x)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, overflow-free.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.Softplus()(numpy.array([0.0]))
    array([0.69314718])
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: Any) -> Any:
        return F.softplus(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class SiLU(Module):
    """x * sigmoid(x).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.SiLU()(numpy.array([0.0]))
    array([0.])
    """

    def forward(self, x: Any) -> Any:
        return F.silu(x)


class Softmax(Module):
    """Softmax along ``dim`` (default the last axis), with max subtraction.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.Softmax(dim=1)(numpy.zeros((1, 2)))
    array([[0.5, 0.5]])
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Any) -> Any:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log(softmax(x)) along ``dim``, finite for any finite input.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.LogSoftmax()(numpy.array([[0.0, 1000.0]]))
    array([[-1000.,     0.]])
    """

    def forward(self, x: Any) -> Any:
        return F.log_softmax(x, self.dim)


# --- loss modules --------------------------------------------------------------------------


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or "
                f"'none', got {reduction!r}"
            )
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """``mse_loss`` as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> float(nn.MSELoss()(numpy.array([2.0]), numpy.array([0.0])))
    4.0
    """

    def forward(self, input: Any, target: Any) -> Any:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """``l1_loss`` as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> float(nn.L1Loss()(numpy.array([2.0]), numpy.array([0.0])))
    2.0
    """

    def forward(self, input: Any, target: Any) -> Any:
        return F.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """``huber_loss`` as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> float(nn.HuberLoss()(numpy.array([3.0]), numpy.array([0.0])))
    2.5
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Any, target: Any) -> Any:
        return F.huber_loss(input, target, self.reduction, self.delta)


class SmoothL1Loss(_Loss):
    """``smooth_l1_loss`` as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> float(nn.SmoothL1Loss()(numpy.array([3.0]), numpy.array([0.0])))
    2.5
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Any, target: Any) -> Any:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class CrossEntropyLoss(_Loss):
    """``cross_entropy`` (logits and class indices or probabilities) as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> round(float(nn.CrossEntropyLoss()(numpy.zeros((1, 4)), numpy.array([2]))), 6)
    1.386294
    """

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else numpy.asarray(weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Any, target: Any) -> Any:
        return F.cross_entropy(
            input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )


class NLLLoss(_Loss):
    """``nll_loss`` (log-probabilities and class indices) as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> float(nn.NLLLoss()(numpy.array([[-1.0, -2.0]]), numpy.array([1])))
    2.0
    """

    def __init__(
        self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else numpy.asarray(weight)
        self.ignore_index = ignore_index

    def forward(self, input: Any, target: Any) -> Any:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class BCELoss(_Loss):
    """``binary_cross_entropy`` (probabilities) as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> round(float(nn.BCELoss()(numpy.array([0.5]), numpy.array([1.0]))), 6)
    0.693147
    """

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else numpy.asarray(weight)

    def forward(self, input: Any, target: Any) -> Any:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``binary_cross_entropy_with_logits`` as a module.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> round(float(nn.BCEWithLogitsLoss()(numpy.array([0.0]), numpy.array([1.0]))), 6)
    0.693147
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else numpy.asarray(weight)
        self.pos_weight = None if pos_weight is None else numpy.asarray(pos_weight)

    def forward(self, input: Any, target: Any) -> Any:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, self.reduction, self.pos_weight
        )


# --- MLP -----------------------------------------------------------------------------------

ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softplus": Softplus,
    "silu": SiLU,
    "identity": Identity,
    "linear": Identity,
}


def _activation(spec: Any) -> Module:
    if isinstance(spec, str):
        try:
            return ACTIVATIONS[spec.lower()]()
        except KeyError:
            raise ValueError(
                f"unknown activation {spec!r}; choose from "
                f"{', '.join(sorted(ACTIVATIONS))}, or pass a Module class"
            ) from None
    if isinstance(spec, Module):
        raise TypeError(
            "pass an activation *class* or factory (nn.ReLU, not nn.ReLU()), so "
            "each layer gets its own instance"
        )
    if callable(spec):
        m = spec()
        if not isinstance(m, Module):
            raise TypeError(f"activation factory returned {type(m).__name__}, not a Module")
        return m
    raise TypeError(f"activation must be a name or a Module class, got {type(spec).__name__}")


class MLP(Module):
    """A multilayer perceptron: ``Linear`` layers of ``sizes`` with an activation between.

    ``sizes = [4, 6, 6, 6, 1]`` gives ``Linear(4, 6), act, Linear(6, 6), act, Linear(6, 6),
    act, Linear(6, 1)`` in ``self.layers`` (a :class:`Sequential`), so the parameters are
    ``'layers.0.weight'``, ``'layers.0.bias'``, ``'layers.2.weight'``, …  The output layer has
    no activation unless ``output_activation`` is given.  Optional ``dropout`` (after each
    hidden activation) and ``norm='batch'|'layer'`` (before each hidden activation).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> mlp = nn.MLP([4, 6, 6, 6, 1], activation="relu", rng=0)
    >>> mlp(numpy.ones((3, 4))).shape
    (3, 1)
    >>> [k for k in mlp.state_dict()][:3]
    ['layers.0.weight', 'layers.0.bias', 'layers.2.weight']
    """

    def __init__(
        self,
        sizes: Any,
        activation: Any = "relu",
        *,
        dropout: float = 0.0,
        norm: str | None = None,
        output_activation: Any = None,
        bias: bool = True,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        if norm not in (None, "batch", "layer"):
            raise ValueError(f"MLP: norm must be None, 'batch' or 'layer', got {norm!r}")
        g = init.as_generator(rng)
        self.sizes = sizes
        layers: list[Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, bias, rng=g, dtype=dtype))
            if i < len(sizes) - 2:
                if norm == "batch":
                    layers.append(BatchNorm1d(b, dtype=dtype))
                elif norm == "layer":
                    layers.append(LayerNorm(b, dtype=dtype))
                layers.append(_activation(activation))
                if dropout:
                    layers.append(Dropout(dropout, rng=g.spawn(1)[0]))
        if output_activation is not None:
            layers.append(_activation(output_activation))
        self.layers = Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return self.layers(x)
