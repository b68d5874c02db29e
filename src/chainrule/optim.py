"""Public path of :mod:`chainrule.train.optim`: optimizers, learning-rate schedules and gradient
clipping; ``optim.lr_scheduler`` is PyTorch's namespace of schedules.
"""

import sys as _sys

from chainrule.train import lr_scheduler as lr_scheduler
from chainrule.train.lbfgs import LBFGS as LBFGS
from chainrule.train.lr_scheduler import OneCycleLR as OneCycleLR
from chainrule.train.lr_scheduler import ReduceLROnPlateau as ReduceLROnPlateau
from chainrule.train.optim import *  # noqa: F403
from chainrule.train.optim import __all__ as _implementation

# `import chainrule.optim.lr_scheduler` works as `import torch.optim.lr_scheduler` does
_sys.modules.setdefault(__name__ + ".lr_scheduler", lr_scheduler)

__all__ = ["lr_scheduler", "OneCycleLR", "ReduceLROnPlateau", "LBFGS"]
__all__ += _implementation
