"""``chainrule.nn``: layers, models, activations, losses and initialisers on chainrule tensors.

PyTorch's ``torch.nn`` conventions, written in plain NumPy on chainrule's public API:

>>> import numpy, chainrule as cr
>>> from chainrule import nn
>>> model = nn.MLP([4, 8, 3], rng=0)
>>> x, y = numpy.ones((5, 4)), numpy.array([0, 1, 2, 0, 1])
>>> loss = nn.functional.cross_entropy(model(x), y)
>>> loss.backward()
>>> model.layers[0].weight.grad.shape
(8, 4)

The same model as a pure function of its parameters (for ``chainrule.grad``):

>>> grads = cr.grad(lambda p: nn.functional.cross_entropy(
...     nn.functional_call(model, p, x), y))(model.state_dict())
>>> bool(numpy.allclose(grads["layers.0.weight"], model.layers[0].weight.grad))
True
"""

from __future__ import annotations

from . import functional as functional
from . import init as init
from .attention import MultiheadAttention, TransformerEncoderLayer
from .layers import (
    ELU,
    GELU,
    MLP,
    SELU,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    HuberLoss,
    Identity,
    L1Loss,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    MSELoss,
    NLLLoss,
    ReLU,
    Sigmoid,
    SiLU,
    SmoothL1Loss,
    Softmax,
    Softplus,
    Tanh,
)
from .layers_more import (
    AdaptiveAvgPool2d,
    Conv1d,
    ConvTranspose2d,
    Embedding,
    GroupNorm,
    KLDivLoss,
)
from .module import (
    IncompatibleKeys,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    RemovableHandle,
    Sequential,
    functional_call,
)
from .recurrent import GRU, LSTM

__all__ = [
    "Module",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "Parameter",
    "functional_call",
    "IncompatibleKeys",
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
    "MLP",
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
    "RemovableHandle",
    "Embedding",
    "Conv1d",
    "GroupNorm",
    "AdaptiveAvgPool2d",
    "KLDivLoss",
    "LSTM",
    "GRU",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "ConvTranspose2d",
]
