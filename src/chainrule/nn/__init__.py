"""Public path of :mod:`chainrule.train.nn`: layers, models, activations, losses, initialisers."""

from chainrule.train.nn import *  # noqa: F403
from chainrule.train.nn import __all__ as __all__

# isort: split
# The public submodules, bound after the star import (which would bind the implementation's).
from chainrule.nn import functional as functional
from chainrule.nn import init as init
