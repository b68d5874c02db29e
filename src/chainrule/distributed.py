"""Public path of :mod:`chainrule.train.distributed`: data-parallel training over MPI
(``pip install "chainrule[mpi]"``, then ``mpiexec -n 4 python train.py``)."""

from chainrule.train.distributed import *  # noqa: F403
from chainrule.train.distributed import __all__ as __all__
