"""Public path of :mod:`chainrule.train.nn`: layers, models, activations, losses, initialisers."""

from chainrule.nn import functional as functional
from chainrule.nn import init as init
from chainrule.train.nn import *  # noqa: F403
from chainrule.train.nn import __all__ as _implementation

__all__ = ["functional", "init"]
__all__ += _implementation
