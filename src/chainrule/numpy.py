"""NumPy's namespace for code that builds arrays out of tensors: ``import chainrule.numpy as np``.

Everything is NumPy's own; ``np.array([t1, t2])``, ``np.r_[...]``, ``np.c_[...]`` and a list of
tensors given to a NumPy function (``np.mean([a, b])``) keep the gradient here, where plain
NumPy would convert the list and chainrule has to refuse it. Implementation:
:mod:`chainrule.engine.namespace`.

>>> import chainrule as cr, chainrule.numpy as np
>>> cr.grad(lambda x: np.mean([x, 3 * x]))(1.0)
array(2.)
"""

from typing import Any

import numpy as _numpy

from chainrule.engine.namespace import array as array
from chainrule.engine.namespace import asanyarray as asanyarray
from chainrule.engine.namespace import asarray as asarray
from chainrule.engine.namespace import c_ as c_
from chainrule.engine.namespace import lookup as _lookup
from chainrule.engine.namespace import r_ as r_

__all__ = sorted({*_numpy.__all__, "array", "asarray", "asanyarray", "r_", "c_"})


def __getattr__(name: str) -> Any:
    value = _lookup(_numpy, name, __name__)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*dir(_numpy), *__all__})
