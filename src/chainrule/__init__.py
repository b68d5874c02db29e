"""chainrule: exact gradients of plain NumPy code, and the chain rule shown line by line.

Example
-------
>>> import numpy, chainrule as cr
>>> W = cr.tensor([[0.5], [-1.0]], requires_grad=True)
>>> X = cr.tensor([[1.0, 2.0]])
>>> err = ((X.dot(W) - 1.0) ** 2).mean()
>>> err.backward()
>>> W.grad
array([[ -5.],
       [-10.]])
"""

from __future__ import annotations

import os as _os

from chainrule import _moved, data, functions, nn, optim  # the public modules
from chainrule.engine import rules as _rules  # noqa: F401  (completes the gradient table)
from chainrule.engine.anomaly import AnomalyError, detect_anomaly, set_detect_anomaly
from chainrule.engine.backends import to_host
from chainrule.engine.gradcheck import GradCheckReport, GradientCheckError, check_grads
from chainrule.engine.memory import keep_freed_memory as _keep_freed_memory
from chainrule.engine.primitives import Primitive, primitive
from chainrule.engine.rules import defvjp, defvjp_argnum
from chainrule.engine.tensor import (
    Tensor,
    TracerBoolError,
    enable_grad,
    is_grad_enabled,
    no_grad,
    tensor,
)
from chainrule.engine.transforms import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from chainrule.program.vmap import vmap
from chainrule.readers.check import BackwardCheck, check_backward
from chainrule.readers.explain import Explanation, explain
from chainrule.readers.jit import JitFallbackWarning, jit
from chainrule.train import callbacks as callbacks
from chainrule.train.checkpoint import CheckpointError, load, save
from chainrule.train.nn.init import manual_seed
from chainrule.train.trainer import History, Trainer, fit

_moved.install()
_keep_freed_memory()  # engine/memory.py: freed arrays stay with the process for the next step

__version__ = "0.1.0"

if _os.environ.get("CHAINRULE_DETECT_ANOMALY", "") not in ("", "0"):
    set_detect_anomaly(True)

__all__ = [
    "detect_anomaly",
    "set_detect_anomaly",
    "AnomalyError",
    "Tensor",
    "tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "TracerBoolError",
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "jacobian",
    "hessian",
    "hvp",
    "check_grads",
    "to_host",
    "GradCheckReport",
    "GradientCheckError",
    "defvjp",
    "defvjp_argnum",
    "primitive",
    "Primitive",
    "explain",
    "Explanation",
    "jit",
    "JitFallbackWarning",
    "vmap",
    "check_backward",
    "BackwardCheck",
    "functions",
    "nn",
    "optim",
    "data",
    "fit",
    "callbacks",
    "manual_seed",
    "Trainer",
    "History",
    "save",
    "load",
    "CheckpointError",
    "__version__",
]
