"""Public path of :mod:`chainrule.train.nn.functional`: activations, losses and layers as
functions.
"""

from chainrule.train.nn.functional import *  # noqa: F403
from chainrule.train.nn.functional import __all__ as __all__
