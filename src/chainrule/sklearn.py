"""Public path of :mod:`chainrule.train.sklearn`: scikit-learn estimators (``MLPClassifier``,
``MLPRegressor``).
"""

from chainrule.train.sklearn import *  # noqa: F403
from chainrule.train.sklearn import __all__ as __all__
