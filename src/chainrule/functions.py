"""Public path of :mod:`chainrule.engine.functions`: numerically stable functions with their own
gradient rules.
"""

from chainrule.engine.functions import *  # noqa: F403
from chainrule.engine.functions import __all__ as __all__
