"""Data-parallel training over MPI (mpi4py): every process holds the whole model and differentiates
its share of each batch; the gradients are summed across processes in a few large buffers, so
every process takes the same optimizer step and the parameters stay identical everywhere.

Run a script under ``mpiexec -n 4 python train.py``; without ``mpi4py`` (``pip install
"chainrule[mpi]"``) every function raises one line that says so, and a single process without
``mpiexec`` is a world of one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy

import chainrule as cr

__all__ = [
    "rank",
    "world_size",
    "barrier",
    "broadcast_parameters",
    "broadcast_buffers",
    "allreduce_gradients",
    "shard",
    "fit",
    "abort_on_error",
]

BUCKET_BYTES = 25 * 2**20  # gradients are summed in buffers of about this size (as PyTorch DDP)


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(
            'chainrule.distributed needs mpi4py and an MPI library: pip install "chainrule[mpi]" '
            "(mpi4py and mpich from the package index)"
        ) from None
    return MPI


def _comm() -> Any:
    return _mpi().COMM_WORLD


def rank() -> int:
    """This process's number, 0 to ``world_size() - 1``.

    Example
    -------
    >>> import chainrule.distributed as dist
    >>> dist.rank()            # 0 in a single process (without mpiexec)
    0
    """
    return int(_comm().Get_rank())


def world_size() -> int:
    """How many processes train together (1 without ``mpiexec``).

    Example
    -------
    >>> import chainrule.distributed as dist
    >>> dist.world_size()
    1
    """
    return int(_comm().Get_size())


def barrier() -> None:
    """Wait until every process reaches this point.

    Example
    -------
    >>> import chainrule.distributed as dist
    >>> dist.barrier()
    """
    _comm().Barrier()


def _params(params_or_module: Any) -> list[cr.Tensor]:
    if hasattr(params_or_module, "parameters"):
        return list(params_or_module.parameters())
    return list(params_or_module)


def broadcast_parameters(params_or_module: Any, root: int = 0) -> None:
    """Give every process the parameter values of process ``root`` (call once, before
    training, so that all start from the same point).

    Example
    -------
    >>> import chainrule as cr, chainrule.distributed as dist
    >>> model = cr.nn.Linear(3, 2)
    >>> dist.broadcast_parameters(model)      # a no-op in a world of one
    """
    comm = _comm()
    for p in _params(params_or_module):
        data = numpy.ascontiguousarray(p.data)
        comm.Bcast(data, root=root)
        p.data = data


def broadcast_buffers(module: Any, root: int = 0) -> None:
    """Give every process the buffers (batch-norm running statistics, ...) of process ``root``,
    in place, as PyTorch's DistributedDataParallel does at every step.

    Example
    -------
    >>> import chainrule as cr, chainrule.distributed as dist
    >>> dist.broadcast_buffers(cr.nn.BatchNorm1d(3))   # a no-op in a world of one
    """
    comm = _comm()
    for m in module.modules():
        for k, b in list(m._buffers.items()):
            if isinstance(b, numpy.ndarray) and b.dtype.kind in "fiu":
                data = numpy.ascontiguousarray(b)
                comm.Bcast(data, root=root)
                if data is not b:
                    m._buffers[k] = data


def _buckets(grads: list[numpy.ndarray], limit: int) -> Iterator[list[int]]:
    group: list[int] = []
    size = 0
    for i, g in enumerate(grads):
        if group and (size + g.nbytes > limit or g.dtype != grads[group[0]].dtype):
            yield group
            group, size = [], 0
        group.append(i)
        size += g.nbytes
    if group:
        yield group


def allreduce_gradients(
    params_or_module: Any, average: bool = False, bucket_bytes: int = BUCKET_BYTES
) -> None:
    """Sum (or with ``average``, average) every parameter's ``.grad`` across the processes, in
    place: the gradients are copied into a few contiguous buffers, each reduced with one
    in-place ``Allreduce``, and copied back. A parameter without a gradient counts as zeros.

    With each process's loss scaled by its share of the examples (see :func:`fit`), the sum is
    the gradient of the whole batch.

    Example
    -------
    >>> import numpy, chainrule as cr, chainrule.distributed as dist
    >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> (w * w).sum().backward()
    >>> dist.allreduce_gradients([w]); w.grad   # one process: the sum is its own gradient
    array([2., 4.])
    """
    mpi = _mpi()
    comm = mpi.COMM_WORLD
    params = [p for p in _params(params_or_module) if p.requires_grad]
    grads = [numpy.zeros_like(p.data) if p.grad is None else numpy.asarray(p.grad) for p in params]
    n = comm.Get_size()
    for group in _buckets(grads, bucket_bytes):
        buf = numpy.concatenate([grads[i].ravel() for i in group])
        comm.Allreduce(mpi.IN_PLACE, buf, op=mpi.SUM)
        if average:
            buf /= n
        start = 0
        for i in group:
            size = grads[i].size
            params[i].grad = buf[start : start + size].reshape(grads[i].shape).copy()
            start += size


def shard(n: int, batch: Iterable[int] | None = None) -> numpy.ndarray:
    """The indices this process works on: of ``range(n)``, or of the given ``batch`` indices,
    split into ``world_size()`` contiguous parts as ``numpy.array_split`` does (every index goes
    to exactly one process).

    Example
    -------
    >>> import chainrule.distributed as dist
    >>> dist.shard(5)                            # everything, in a world of one
    array([0, 1, 2, 3, 4])
    """
    idx = numpy.arange(n) if batch is None else numpy.asarray(list(batch))
    part: numpy.ndarray = numpy.array_split(idx, world_size())[rank()]
    return part


# Seconds between printing a failing process's error and stopping the job (mpiexec's
# forwarding of that process's stderr must read the line first)
_ABORT_GRACE = 0.5


def abort_on_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so that an exception in any process prints one line (with the process's
    rank) and stops every process, instead of leaving the others waiting in a collective.

    Example
    -------
    >>> import chainrule.distributed as dist
    >>> dist.abort_on_error(lambda: "done")()
    'done'
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (every error must stop the whole job)
            comm = _comm()
            print(f"chainrule.distributed: rank {comm.Get_rank()}: {e}", file=sys.stderr)
            sys.stderr.flush()
            # the launcher forwards each process's output through pipes of its own, and an
            # abort can stop it before it has read this line: give it a moment to
            time.sleep(_ABORT_GRACE)
            comm.Abort(1)
            raise

    return run


def fit(
    model: Any,
    X: numpy.ndarray,
    y: numpy.ndarray,
    loss: Callable[[Any, Any], Any],
    optimizer: Any,
    epochs: int = 1,
    batch_size: int | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> list[float]:
    """Data-parallel training: each global batch (the same on every process: shuffled with
    ``seed``) is split between the processes; each differentiates the loss of its part scaled by
    its share, the gradients are summed (:func:`allreduce_gradients`) and every process takes the
    same ``optimizer`` step. ``loss(outputs, targets)`` must be a mean over the examples.

    Returns the loss of every epoch (the mean over its batches, the same on every process);
    only process 0 prints. The parameters equal single-process training on the whole batches,
    to rounding.

    Example
    -------
    >>> import numpy, chainrule as cr, chainrule.distributed as dist
    >>> _ = cr.manual_seed(0)
    >>> model = cr.nn.Linear(2, 2)
    >>> X, y = numpy.eye(2), numpy.array([0, 1])
    >>> opt = cr.optim.SGD(model.parameters(), lr=0.5)
    >>> losses = dist.fit(model, X, y, cr.nn.functional.cross_entropy, opt, epochs=5,
    ...                   verbose=False)
    >>> losses[-1] < losses[0]
    True
    """
    broadcast_parameters(model)
    comm = _comm()
    n = len(X)
    size = n if batch_size is None else int(batch_size)
    rng = numpy.random.default_rng(seed)
    history: list[float] = []
    for epoch in range(epochs):
        order = rng.permutation(n) if batch_size is not None else numpy.arange(n)
        total = 0.0
        batches = 0
        for start in range(0, n, size):
            batch = order[start : start + size]
            mine = shard(len(batch), batch)
            optimizer.zero_grad()
            value = 0.0
            if len(mine):
                part = loss(model(X[mine]), y[mine]) * (len(mine) / len(batch))
                part.backward()
                value = float(part.data)
            allreduce_gradients(model)
            optimizer.step()
            total += comm.allreduce(value)
            batches += 1
        history.append(total / batches)
        if verbose and comm.Get_rank() == 0:
            print(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.6g}", flush=True)
    return history
