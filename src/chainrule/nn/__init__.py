"""Public path of :mod:`chainrule.train.nn`: layers, models, activations, losses, initialisers."""

from chainrule.train.nn import *  # noqa: F403
from chainrule.train.nn import __all__ as __all__

from chainrule.nn import functional, init  # noqa: E402,I001  (the public submodules)
