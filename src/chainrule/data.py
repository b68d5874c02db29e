"""Public path of :mod:`chainrule.train.data`: bundled data sets, CSV loading, splitting,
standardising and batching.
"""

from chainrule.train.data import *  # noqa: F403
from chainrule.train.data import __all__ as __all__
