"""Public path of :mod:`chainrule.train.optim`: optimizers, learning-rate schedules and gradient
clipping.
"""

from chainrule.train.optim import *  # noqa: F403
from chainrule.train.optim import __all__ as __all__
