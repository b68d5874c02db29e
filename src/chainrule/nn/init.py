"""Public path of :mod:`chainrule.train.nn.init`: initialisers and the default generator."""

from chainrule.train.nn.init import *  # noqa: F403
from chainrule.train.nn.init import __all__ as __all__
