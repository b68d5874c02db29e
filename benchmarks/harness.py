"""Benchmark harness (issue 4): chainrule against hand-written NumPy and its peers.

One command times one training step -- forward + backward of every parameter -- on four
workloads, for every implementation, and prints one table of time ratios to hand-written NumPy,
the peak memory of one step, and the first-call time of the compiled rows.

Workloads (all ReLU MLPs; parameters ordered W1..Wk, b1..bk):

* ``seed``    the 4-6-6-6-1 network of docs/seed.md (data and weights from ``chainrule.seed``),
              batch 1, float64, MSE (mean over all elements);
* ``seed256`` the same network and weights, batch 256 (X, T from ``default_rng(0)``), float64;
* ``mlp784``  784-512-512-10, float32, batch 128, softmax cross-entropy with integer labels (mean
              over the batch), He initialisation, ``default_rng(0)`` (as in bench_core.py);
* ``mlp1024`` 1024-2048-2048-1024, float32, batch 512, MSE against random targets, He init,
              ``default_rng(0)``.

Implementations (rows): ``numpy`` (hand-written forward + backward, the reference),
``eager`` (chainrule tensors + ``loss.backward()``), ``jit``
(``chainrule.jit(chainrule.value_and_grad(..))``), ``jit-numba`` (the same with
``backend="numba"``, where chainrule's jit accepts it), ``torch`` (PyTorch eager), ``jax``
(``jax.jit(jax.value_and_grad(..))``), ``autograd`` (HIPS autograd), ``mygrad``.  Peers come
from benchmarks/requirements.txt and are skipped with a note if missing.

Method: every implementation x workload runs in its own worker process (this file with
``--worker``), so imports, allocators and memory do not interfere.  Workers load concurrently,
then one at a time make their first call (timed: for the jit rows it includes tracing and
compiling), write the loss and gradients of that first step to an .npz, warm up, and measure
the memory of one step.  The harness checks every .npz against the hand-written NumPy one (rtol
1e-10 float64 / 1e-4 float32) and drops a row that does not match, loudly.  Then the workers
take turns running blocks of consecutive steps (each block about 20 ms, preceded by a few
untimed steps on the small workloads), timed with ``time.perf_counter`` inside the worker, so
that drift in clock speed or load hits every row alike -- the method of bench_core.py.
Reported: the median over blocks of the time per step and its ratio to ``numpy``, the best
block, the memory one step adds (peak RSS, see step_memory), the first call of the jit rows.
Threads: --blas-threads N (default 1) in every worker's environment, torch.set_num_threads,
and for JAX an affinity narrowed while its CPU client is created (see _jax_cpu_client).
benchmarks/README.md describes the method, its limits and the measured table.

Run (from the repository root)::

    python3 -m pip install -r benchmarks/requirements.txt     # the peers (optional)
    PYTHONPATH=src python3 benchmarks/harness.py               # full run, about 5 minutes
    PYTHONPATH=src python3 benchmarks/harness.py --quick       # smoke test, under a minute
    PYTHONPATH=src python3 benchmarks/harness.py --markdown    # tables as Markdown
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))

# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------

WORKLOADS: dict[str, dict[str, Any]] = {
    "seed": {
        "title": "seed 4-6-6-6-1, batch 1, f64",
        "short": "seed (b1, f64)",
        "loss": "mse",
        "dtype": "float64",
    },
    "seed256": {
        "title": "seed 4-6-6-6-1, batch 256, f64",
        "short": "seed256 (b256, f64)",
        "loss": "mse",
        "dtype": "float64",
    },
    "mlp784": {
        "title": "mlp 784-512-512-10, batch 128, f32, CE",
        "short": "mlp784 (b128, f32)",
        "loss": "xent",
        "dtype": "float32",
    },
    "mlp1024": {
        "title": "mlp 1024-2048-2048-1024, batch 512, f32, MSE",
        "short": "mlp1024 (b512, f32)",
        "loss": "mse",
        "dtype": "float32",
    },
}
RTOL = {"float64": 1e-10, "float32": 1e-4}
# atol for the gradient check, as a fraction of the largest |reference gradient| element: a
# near-zero element is a sum with cancellation, whose relative error is not bounded by rtol
ATOL_REL = {"float64": 1e-11, "float32": 1e-5}

# time budget (seconds of timed blocks) and warm-up (seconds) per workload
BUDGET = {"seed": 25.0, "seed256": 25.0, "mlp784": 50.0, "mlp1024": 120.0}
BUDGET_QUICK = {"seed": 1.0, "seed256": 1.0, "mlp784": 2.0, "mlp1024": 0.0}
WARMUP_S, WARMUP_S_QUICK = 0.5, 0.05
TARGET_BLOCK_S = 0.020


def build_data(name: str) -> dict[str, numpy.ndarray]:
    """Inputs and parameters of a workload: {"X", "T" or "y", "P0".."P{2k-1}"}."""
    sys.path.insert(0, HERE)
    import bench_core  # noqa: PLC0415 -- the workload definitions of bench_core.py

    if name in ("seed", "seed256"):
        w = bench_core.seed_workload()
        X, T = w["inputs"]
        if name == "seed256":
            rng = numpy.random.default_rng(0)
            X = rng.standard_normal((256, X.shape[1]))
            T = rng.standard_normal((256, T.shape[1]))
        params = w["params"]
        data = {"X": X, "T": T}
    elif name == "mlp784":
        w = bench_core.mlp_workload(128)
        X, y = w["inputs"]
        params = w["params"]
        data = {"X": X, "y": y}
    elif name == "mlp1024":
        rng = numpy.random.default_rng(0)
        f32 = numpy.float32
        sizes = (1024, 2048, 2048, 1024)
        Ws = [
            (rng.standard_normal((a, b)) * numpy.sqrt(2.0 / a)).astype(f32)
            for a, b in zip(sizes[:-1], sizes[1:])
        ]
        bs = [numpy.zeros(b, dtype=f32) for b in sizes[1:]]
        X = rng.standard_normal((512, sizes[0])).astype(f32)
        T = rng.standard_normal((512, sizes[-1])).astype(f32)
        params = Ws + bs
        data = {"X": X, "T": T}
    else:
        raise ValueError(name)
    for i, p in enumerate(params):
        data[f"P{i}"] = numpy.ascontiguousarray(p)
    return data


def unpack(data: Any) -> tuple[numpy.ndarray, numpy.ndarray, list[numpy.ndarray]]:
    """(X, T-or-labels, params) from an .npz written by build_data."""
    X = data["X"]
    T = data["T"] if "T" in data else data["y"]
    n = sum(1 for k in data if k.startswith("P"))
    return X, T, [data[f"P{i}"] for i in range(n)]


# hand-written NumPy and chainrule forward passes: bench_core's for seed/mlp784, these for mlp1024


def mse_numpy(
    X: Any, T: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any
) -> tuple[Any, list[Any]]:
    """Hand-written forward + backward of the 3-layer MSE MLP (in-place where safe)."""
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(Z1, 0)
    Z2 = A1 @ W2 + b2
    A2 = numpy.maximum(Z2, 0)
    Y = A2 @ W3 + b3
    R = Y - T
    loss = (R * R).mean()
    D3 = R
    D3 *= 2.0 / R.size  # python float: stays float32
    dW3 = A2.T @ D3
    db3 = D3.sum(axis=0)
    D2 = D3 @ W3.T
    D2 *= Z2 > 0
    dW2 = A1.T @ D2
    db2 = D2.sum(axis=0)
    D1 = D2 @ W2.T
    D1 *= Z1 > 0
    dW1 = X.T @ D1
    db1 = D1.sum(axis=0)
    return loss, [dW1, dW2, dW3, db1, db2, db3]


def mse_forward(X: Any, T: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any) -> Any:
    """The same forward pass, as one writes it in plain NumPy."""
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2 + b2
    A2 = numpy.maximum(0, Z2)
    Y = A2 @ W3 + b3
    return ((Y - T) ** 2).mean()


def mlp_forward_take(X: Any, y: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any) -> Any:
    """bench_core.mlp_forward with the label gather written as take_along_axis."""
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2 + b2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2 @ W3 + b3
    S = Z3 - Z3.max(axis=1, keepdims=True)
    logp = S - numpy.log(numpy.exp(S).sum(axis=1, keepdims=True))
    return -numpy.take_along_axis(logp, y[:, None], axis=1).mean()


def mlp_forward_onehot(X: Any, y: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any) -> Any:
    """bench_core.mlp_forward with the label gather written as a one-hot mask."""
    n = X.shape[0]
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2 + b2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2 @ W3 + b3
    S = Z3 - Z3.max(axis=1, keepdims=True)
    logp = S - numpy.log(numpy.exp(S).sum(axis=1, keepdims=True))
    return -(logp * (y[:, None] == numpy.arange(Z3.shape[1]))).sum() / n


def chainrule_forwards(
    name: str,
) -> tuple[Callable[..., Any], Callable[..., Any], list[tuple[str, Callable[..., Any]]]]:
    """(hand-written numpy step, forward, jit fallbacks [(description, forward)])."""
    sys.path.insert(0, HERE)
    import bench_core  # noqa: PLC0415

    if name in ("seed", "seed256"):
        return bench_core.seed_numpy, bench_core.seed_forward, []
    if name == "mlp784":
        return (
            bench_core.mlp_numpy,
            bench_core.mlp_forward,
            [
                (
                    "take_along_axis(logp, y[:, None], axis=1) instead of logp[arange(n), y]",
                    mlp_forward_take,
                ),
                (
                    "a one-hot mask (y[:, None] == arange(10)) instead of logp[arange(n), y]",
                    mlp_forward_onehot,
                ),
            ],
        )
    return mse_numpy, mse_forward, []


# ---------------------------------------------------------------------------------------------
# Implementations (run inside a worker process)
# ---------------------------------------------------------------------------------------------

IMPLS: dict[str, str] = {
    "numpy": "hand-written NumPy",
    "eager": "chainrule eager",
    "jit": "chainrule jit",
    "jit-numba": "chainrule jit (numba)",
    "torch": "PyTorch eager",
    "jax": "JAX jit",
    "autograd": "HIPS autograd",
    "mygrad": "MyGrad",
}
JIT_ROWS = ("jit", "jit-numba", "jax")
DIST = {"torch": "torch", "jax": "jax", "autograd": "autograd", "mygrad": "mygrad"}


class Skip(Exception):
    """The implementation cannot run here (not installed, feature missing)."""


class Impl:
    """``candidates``: [(note, step)] tried in order at the first call; ``to_numpy(result)``."""

    def __init__(self) -> None:
        self.candidates: list[tuple[str, Callable[[], Any]]] = []
        self.to_numpy: Callable[[Any], tuple[float, list[numpy.ndarray]]] = _plain_to_numpy
        self.version = ""
        self.threads = ""
        self.describe: Callable[[], str] | None = None  # after the first call: a note
        self.release: Callable[[], None] = lambda: None  # drop gradients the library holds


def _plain_to_numpy(result: Any) -> tuple[float, list[numpy.ndarray]]:
    loss, grads = result
    return float(numpy.asarray(loss)), [numpy.asarray(g) for g in grads]


def _blas_threads_info() -> str:
    try:
        import threadpoolctl  # noqa: PLC0415
    except ImportError:
        return "BLAS threads: " + os.environ.get("OPENBLAS_NUM_THREADS", "?") + " (env)"
    pools = threadpoolctl.threadpool_info()
    return ", ".join(f"{p.get('internal_api')} threads={p.get('num_threads')}" for p in pools)


def impl_numpy(name: str, data: Any) -> Impl:
    hand, _, _ = chainrule_forwards(name)
    X, T, params = unpack(data)
    im = Impl()
    im.candidates = [("", lambda: hand(X, T, *params))]
    im.version = numpy.__version__
    im.threads = _blas_threads_info()
    return im


def impl_eager(name: str, data: Any) -> Impl:
    import chainrule  # noqa: PLC0415

    _, forward, _ = chainrule_forwards(name)
    X, T, params = unpack(data)
    # float inputs become constant tensors (X.dot(W) needs X to be one); labels stay arrays
    t_in = [chainrule.tensor(a) if a.dtype.kind == "f" else a for a in (X, T)]
    t_params = [chainrule.tensor(p, requires_grad=True) for p in params]

    def step() -> Any:
        for p in t_params:
            p.grad = None
        loss = forward(*t_in, *t_params)
        loss.backward()
        return loss, [p.grad for p in t_params]

    def release() -> None:
        for p in t_params:
            p.grad = None

    im = Impl()
    im.candidates = [("", step)]
    im.to_numpy = lambda r: (float(r[0].item()), [numpy.asarray(g) for g in r[1]])
    im.release = release
    im.version = chainrule.__version__
    im.threads = _blas_threads_info()
    return im


def _impl_chainrule_jit(name: str, data: Any, **jit_kwargs: Any) -> Impl:
    import chainrule  # noqa: PLC0415

    _, forward, fallbacks = chainrule_forwards(name)
    X, T, params = unpack(data)
    argnums = tuple(range(2, 2 + len(params)))
    im = Impl()
    for note, fwd in [("", forward), *fallbacks]:
        try:
            compiled = chainrule.jit(chainrule.value_and_grad(fwd, argnums=argnums), **jit_kwargs)
        except TypeError as e:
            if jit_kwargs and "backend" in str(e):
                raise Skip(
                    f'chainrule.jit does not accept backend="numba" (yet): {type(e).__name__}: {e}'
                ) from None
            raise

        def step(compiled: Any = compiled) -> Any:
            value, grads = compiled(X, T, *params)
            return value, list(grads)

        im.candidates.append((note, step))
        if jit_kwargs.get("backend") == "numba" and not fallbacks:

            def describe(compiled: Any = compiled) -> str:
                info = compiled.cache_info() if hasattr(compiled, "cache_info") else {}
                if info.get("numba", 1) == 0:
                    return "ran on the NumPy backend: Numba could not compile the program"
                return ""

            im.describe = describe
    im.version = chainrule.__version__
    im.threads = _blas_threads_info()
    if jit_kwargs:
        with contextlib.suppress(ImportError):
            import numba  # noqa: PLC0415

            im.version += f", numba {numba.__version__}"
            im.threads += f", numba threads={numba.get_num_threads()}"
    return im


def impl_jit(name: str, data: Any) -> Impl:
    return _impl_chainrule_jit(name, data)


def impl_jit_numba(name: str, data: Any) -> Impl:
    return _impl_chainrule_jit(name, data, backend="numba")


def impl_torch(name: str, data: Any) -> Impl:
    try:
        import torch  # noqa: PLC0415
        import torch.nn.functional as F  # noqa: N812, PLC0415
    except ImportError as e:
        raise Skip(f"PyTorch not installed ({e})") from None
    torch.set_num_threads(int(os.environ.get("HARNESS_THREADS", "1")))
    X, T, params = unpack(data)
    xent = WORKLOADS[name]["loss"] == "xent"
    Xt = torch.from_numpy(X)
    Tt = torch.from_numpy(T)  # labels: int64 from numpy, as cross_entropy wants
    P = [torch.from_numpy(p.copy()).requires_grad_() for p in params]
    k = len(P) // 2
    Ws, bs = P[:k], P[k:]

    def step() -> Any:
        for p in P:
            p.grad = None
        A = Xt
        for i in range(k):
            A = torch.addmm(bs[i], A, Ws[i])  # what nn.Linear runs: bias fused into the GEMM
            if i < k - 1:
                A = torch.relu(A)
        loss = F.cross_entropy(A, Tt) if xent else F.mse_loss(A, Tt)
        loss.backward()
        return loss, [p.grad for p in P]

    def release() -> None:
        for p in P:
            p.grad = None

    im = Impl()
    im.candidates = [("", step)]
    im.to_numpy = lambda r: (float(r[0].item()), [g.numpy().copy() for g in r[1]])
    im.release = release
    im.version = torch.__version__
    im.threads = f"torch threads={torch.get_num_threads()}"
    return im


def _jax_cpu_client(threads: int) -> str:
    """Create JAX's CPU client while the process may run on only ``threads`` CPUs.

    XLA sizes its CPU thread pool from the CPUs the process may run on (sched_getaffinity);
    XLA_FLAGS' intra_op_parallelism_threads alone did not stop jaxlib 0.10 from computing on 2
    threads.  So the affinity is narrowed while the client (and its pool) is created, then
    given back to every thread, so that JAX's one compute thread migrates like everyone's.
    """
    import jax  # noqa: PLC0415

    if not hasattr(os, "sched_getaffinity"):
        jax.devices("cpu")
        return "XLA_FLAGS only"
    full = os.sched_getaffinity(0)
    if threads >= len(full):
        jax.devices("cpu")
        return f"affinity not narrowed ({len(full)} CPUs)"
    os.sched_setaffinity(0, set(sorted(full)[:threads]))
    try:
        jax.devices("cpu")
    finally:
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), full)
    return f"XLA CPU client created on {threads} CPU(s)"


def impl_jax(name: str, data: Any) -> Impl:
    try:
        import jax  # noqa: PLC0415
        import jax.numpy as jnp  # noqa: PLC0415
    except ImportError as e:
        raise Skip(f"JAX not installed ({e})") from None
    pool = _jax_cpu_client(int(os.environ.get("HARNESS_THREADS", "1")))
    if WORKLOADS[name]["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    X, T, params = unpack(data)
    xent = WORKLOADS[name]["loss"] == "xent"
    k = len(params) // 2
    if xent:
        T = T.astype(numpy.int32)

    def loss_fn(P: list[Any], X: Any, T: Any) -> Any:
        A = X
        for i in range(k):
            A = A @ P[i] + P[k + i]
            if i < k - 1:
                A = jax.nn.relu(A)
        if xent:
            logp = jax.nn.log_softmax(A, axis=1)
            return -jnp.take_along_axis(logp, T[:, None], axis=1).mean()
        return ((A - T) ** 2).mean()

    vg = jax.jit(jax.value_and_grad(loss_fn))
    dev = jax.devices("cpu")[0]
    Pj = [jax.device_put(p, dev) for p in params]
    Xj, Tj = jax.device_put(X, dev), jax.device_put(T, dev)

    def step() -> Any:
        return jax.block_until_ready(vg(Pj, Xj, Tj))

    im = Impl()
    im.candidates = [("", step)]
    im.version = f"{jax.__version__} (jaxlib {importlib.metadata.version('jaxlib')})"
    im.threads = f"{pool}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}"
    return im


def impl_autograd(name: str, data: Any) -> Impl:
    try:
        import autograd  # noqa: PLC0415
        import autograd.numpy as anp  # noqa: PLC0415
    except ImportError as e:
        raise Skip(f"autograd not installed ({e})") from None
    X, T, params = unpack(data)
    xent = WORKLOADS[name]["loss"] == "xent"
    k = len(params) // 2
    n = X.shape[0]
    rows = numpy.arange(n)

    def loss_fn(P: list[Any]) -> Any:
        A = X
        for i in range(k):
            A = anp.dot(A, P[i]) + P[k + i]
            if i < k - 1:
                A = anp.maximum(A, 0.0)
        if xent:
            S = A - anp.max(A, axis=1, keepdims=True)
            logp = S - anp.log(anp.sum(anp.exp(S), axis=1, keepdims=True))
            return -anp.mean(logp[rows, T])
        return anp.mean((A - T) ** 2)

    vg = autograd.value_and_grad(loss_fn)
    P = list(params)

    def step() -> Any:
        return vg(P)

    im = Impl()
    im.candidates = [("", step)]
    im.version = importlib.metadata.version("autograd")
    im.threads = _blas_threads_info()
    return im


def impl_mygrad(name: str, data: Any) -> Impl:
    try:
        import mygrad as mg  # noqa: PLC0415
        from mygrad.nnet.activations import relu  # noqa: PLC0415
        from mygrad.nnet.losses import softmax_crossentropy  # noqa: PLC0415
    except ImportError as e:
        raise Skip(f"MyGrad not installed ({e})") from None
    X, T, params = unpack(data)
    xent = WORKLOADS[name]["loss"] == "xent"
    k = len(params) // 2
    P = [mg.tensor(p.copy()) for p in params]

    def step() -> Any:
        A = X
        for i in range(k):
            A = mg.matmul(A, P[i]) + P[k + i]
            if i < k - 1:
                A = relu(A)
        loss = softmax_crossentropy(A, T) if xent else mg.mean((A - T) ** 2)
        loss.backward()
        return loss, [p.grad for p in P]

    def release() -> None:
        for p in P:
            p.null_grad()

    im = Impl()
    im.candidates = [("", step)]
    im.to_numpy = lambda r: (float(r[0].item()), [numpy.array(g) for g in r[1]])
    im.release = release
    im.version = importlib.metadata.version("mygrad")
    im.threads = _blas_threads_info()
    return im


BUILDERS: dict[str, Callable[[str, Any], Impl]] = {
    "numpy": impl_numpy,
    "eager": impl_eager,
    "jit": impl_jit,
    "jit-numba": impl_jit_numba,
    "torch": impl_torch,
    "jax": impl_jax,
    "autograd": impl_autograd,
    "mygrad": impl_mygrad,
}

# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------


def _minflt() -> int:
    import resource  # noqa: PLC0415

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    with contextlib.suppress(Exception):
        import ctypes  # noqa: PLC0415

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def step_memory(step: Callable[[], Any], release: Callable[[], None]) -> dict[str, Any]:
    """Peak resident memory that one step adds to the process (KiB), and how it was measured.

    The previous step's outputs are freed (also the gradients that eager libraries keep on the
    parameters, so that every row's figure includes the gradients the step produces), then
    ``gc.collect()`` and glibc's ``malloc_trim(0)`` hand freed memory back to the kernel, then
    the peak-RSS high-water mark is reset (Linux >= 4.0: writing 5 to /proc/self/clear_refs
    sets VmHWM to the current VmRSS) and the step runs.  Result: VmHWM after the step minus
    VmRSS before it.  getrusage's ru_maxrss cannot be used after the reset: the kernel also
    keeps in it the RSS of the image before exec, i.e. of the parent that started the worker.
    Without /proc the fall-back is the ru_maxrss delta across the step, a lower bound (a
    high-water mark reached earlier, by the imports or the first call, hides the step).
    """
    import resource  # noqa: PLC0415

    scale = 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes there, KiB here
    release()
    gc.collect()
    _malloc_trim()
    base = None
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
    except OSError:
        pass
    if base is not None:
        result = step()
        peak = _status_kb("VmHWM") or 0
        method = (
            "VmHWM after the step - VmRSS before it (high-water mark reset through "
            "/proc/self/clear_refs)"
        )
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale
        result = step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale
        method = "getrusage ru_maxrss delta across the step (a lower bound)"
    del result
    return {"delta_kb": max(0, peak - base), "base_kb": base, "method": method}


def worker(impl: str, workload: str, data_path: str, npz_path: str) -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints of libraries must not reach the protocol

    def send(**msg: Any) -> None:
        out.write("@@ " + json.dumps(msg) + "\n")
        out.flush()

    t0 = time.perf_counter()
    try:
        with numpy.load(data_path) as f:
            data = {k: f[k] for k in f.files}
        im = BUILDERS[impl](workload, data)
    except Skip as e:
        send(status="skip", reason=str(e))
        return 0
    except Exception as e:  # noqa: BLE001 -- reported by the harness
        send(
            status="error",
            reason=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            if str(e)
            else type(e).__name__,
        )
        raise
    send(status="loaded", load_s=time.perf_counter() - t0, version=im.version, threads=im.threads)
    step: Callable[[], Any] | None = None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            return 0
        if cmd[0] == "init":
            warmup_s, min_warm = float(cmd[1]), int(cmd[2])
            failures = []
            first = None
            note = ""
            for cand_note, cand in im.candidates:
                t1 = time.perf_counter()
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        first = cand()
                except Exception as e:  # noqa: BLE001 -- tries the next formulation
                    msg = str(e).splitlines()[0][:200] if str(e) else ""
                    failures.append(f"{type(e).__name__}: {msg}")
                    continue
                first_s = time.perf_counter() - t1
                step, note = cand, cand_note
                break
            if step is None:
                send(status="error", reason="; ".join(failures))
                return 1
            warned = sorted(
                {
                    f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}"
                    for w in caught
                    if "Fallback" in w.category.__name__
                }
            )
            described = im.describe() if im.describe else ""
            loss, grads = im.to_numpy(first)
            numpy.savez(
                npz_path, loss=numpy.asarray(loss), **{f"g{i}": g for i, g in enumerate(grads)}
            )
            del first, grads
            # warm-up: at least min_warm steps and warmup_s seconds
            n_warm = 0
            t1 = time.perf_counter()
            while n_warm < min_warm or time.perf_counter() - t1 < warmup_s:
                t2 = time.perf_counter()
                step()
                n_warm += 1
            last = time.perf_counter() - t2
            est0 = (time.perf_counter() - t1) / n_warm
            mems = [step_memory(step, im.release) for _ in range(3 if est0 < 0.05 else 1)]
            mem = sorted(mems, key=lambda m: m["delta_kb"])[len(mems) // 2]
            # per-step estimate, for the block sizes (a slow step: the last warm-up step)
            est = last
            if est0 < 0.05:
                n_est, t1 = 0, time.perf_counter()
                while n_est < 1 or time.perf_counter() - t1 < 0.05:
                    step()
                    n_est += 1
                est = (time.perf_counter() - t1) / n_est
            send(
                status="ready",
                first_s=first_s,
                note=note,
                failed_formulations=failures,
                warmup_steps=n_warm,
                est_s=est,
                mem=mem,
                warnings=[*warned, *([described] if described else [])],
            )
        elif cmd[0] == "block":
            assert step is not None
            n, settle = int(cmd[1]), int(cmd[2])
            r = None
            for _ in range(settle):
                r = step()
            f0 = _minflt()
            c1 = time.process_time()
            t1 = time.perf_counter()
            for _ in range(n):
                r = step()
            t2 = time.perf_counter()
            c2 = time.process_time()
            faults = _minflt() - f0
            del r
            send(status="block", t=t2 - t1, n=n, faults=faults, cpu=c2 - c1)
    return 0


# ---------------------------------------------------------------------------------------------
# The harness (parent process)
# ---------------------------------------------------------------------------------------------


class Worker:
    def __init__(
        self, impl: str, workload: str, data_path: str, tmp: str, env: dict[str, str]
    ) -> None:
        self.impl, self.workload, self.data_path = impl, workload, data_path
        self.npz = os.path.join(tmp, f"grads-{workload}-{impl}.npz")
        self.stderr_path = os.path.join(tmp, f"stderr-{workload}-{impl}.txt")
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 -- closed in close()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                impl,
                workload,
                data_path,
                self.npz,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=env,
            cwd=os.path.dirname(HERE),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                self.lines.put(line[3:])
        self.lines.put(None)

    def ask(self, cmd: str | None, timeout: float) -> dict[str, Any]:
        if cmd is not None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(cmd + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                return {"status": "error", "reason": "worker died: " + self.stderr_tail()}
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            return {"status": "error", "reason": f"no answer within {timeout:.0f} s (killed)"}
        if line is None:
            self.proc.wait()
            return {
                "status": "error",
                "reason": f"worker exited (code {self.proc.returncode}): " + self.stderr_tail(),
            }
        msg: dict[str, Any] = json.loads(line)
        return msg

    def stderr_tail(self) -> str:
        self._stderr.flush()
        try:
            with open(self.stderr_path) as f:
                lines = [ln.rstrip() for ln in f if ln.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-3:])[-400:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.kill()
        self._stderr.close()


STEADY_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),  # glibc's largest allowed value
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
}


def worker_env(threads: int, malloc: str = "steady") -> dict[str, str]:
    """The workers' environment: thread counts, PYTHONPATH, and (``steady``) glibc malloc
    settings that keep freed memory in the process (see the --malloc option)."""
    env = dict(os.environ)
    if malloc == "steady":
        for k, v in STEADY_MALLOC.items():
            env.setdefault(k, v)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for k in (
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    ):
        env[k] = str(threads)
    env["HARNESS_THREADS"] = str(threads)
    eigen = "false" if threads == 1 else "true"
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen={eigen}"
        f" intra_op_parallelism_threads={threads}"
    ).strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def compare(
    got_loss: float, got: list[numpy.ndarray], ref_loss: float, ref: list[numpy.ndarray], dtype: str
) -> tuple[bool, str]:
    """Loss and gradients against a reference: count, shapes, dtypes, values (rtol, and an atol
    of ATOL_REL times the largest reference element).  Returns (ok, what differs / how close)."""
    rtol = RTOL[dtype]
    if len(got) != len(ref):
        return False, f"{len(got)} gradients, expected {len(ref)}"
    problems = []
    if not numpy.isclose(got_loss, ref_loss, rtol=rtol, atol=0):
        problems.append(
            f"loss {got_loss!r}, expected {ref_loss!r} "
            f"(relative error {abs(got_loss - ref_loss) / abs(ref_loss):.1e})"
        )
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, ref)):
        if a.shape != b.shape:
            problems.append(f"gradient {i}: shape {a.shape}, expected {b.shape}")
            continue
        if a.dtype != numpy.dtype(dtype):
            problems.append(f"gradient {i}: dtype {a.dtype}, expected {dtype}")
            continue
        atol = ATOL_REL[dtype] * float(numpy.abs(b).max()) if b.size else 0.0
        with numpy.errstate(invalid="ignore"):
            err = numpy.abs(a.astype(numpy.float64) - b) / (atol + rtol * numpy.abs(b))
        err[numpy.isnan(err)] = numpy.inf
        e = float(err.max()) if err.size else 0.0
        if e > 1.0:
            j = numpy.unravel_index(int(err.argmax()), err.shape)
            problems.append(
                f"gradient {i} {b.shape}: {int((err > 1).sum())} elements differ, "
                f"e.g. {tuple(map(int, j))}: {a[j]!r}, expected {b[j]!r}"
            )
        else:
            worst = max(worst, e)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        if len(problems) == 1 and problems[0].startswith("loss"):
            more = f"; all {len(got)} gradients match (max |err| / tol = {worst:.2g})"
        return False, "; ".join(problems[:3]) + more + f" [rtol {rtol:g}]"
    return True, f"max |err| / tol = {worst:.2g}"


def reference64(
    X: numpy.ndarray,
    T: numpy.ndarray,
    params: list[numpy.ndarray],
    loss: str,
    flips: dict[int, list[int]] | None = None,
    dtype: Any = numpy.float64,
) -> tuple[float, list[numpy.ndarray], list[numpy.ndarray]]:
    """Hand-written forward + backward of the MLP in ``dtype``, optionally with the ReLU masks
    of the given hidden units flipped ({layer: [flat indices]}); returns (loss, grads, the
    hidden pre-activations)."""
    k = len(params) // 2
    Ws = [p.astype(dtype) for p in params[:k]]
    bs = [p.astype(dtype) for p in params[k:]]
    A = X.astype(dtype)
    acts, masks, zs = [A], [], []
    for i in range(k):
        Z = A @ Ws[i] + bs[i]
        if i == k - 1:
            break
        zs.append(Z)
        m = Z > 0
        for j in (flips or {}).get(i, []):
            m.flat[j] = not m.flat[j]
        masks.append(m)
        A = Z * m
        acts.append(A)
    n = X.shape[0]
    if loss == "mse":
        R = Z - T
        value = float((R * R).mean())
        D = R * (2.0 / R.size)
    else:
        rows = numpy.arange(n)
        S = Z - Z.max(axis=1, keepdims=True)
        E = numpy.exp(S)
        SE = E.sum(axis=1, keepdims=True)
        value = float(-(S - numpy.log(SE))[rows, T].mean())
        D = E / SE
        D[rows, T] -= 1
        D /= n
    gW: list[Any] = [None] * k
    gb: list[Any] = [None] * k
    for i in reversed(range(k)):
        gW[i] = acts[i].T @ D
        gb[i] = D.sum(axis=0)
        if i > 0:
            D = (D @ Ws[i].T) * masks[i - 1]
    return value, gW + gb, zs


MAX_AMBIGUOUS = 6  # ReLU units near the kink that the check tries on both sides
MAX_COMBINATIONS = 64


def check_grads(
    dtype: str, loss: str, data_path: str, ref_path: str, path: str
) -> tuple[bool, str]:
    """A worker's first-step loss and gradients against the hand-written NumPy ones.

    If they differ, the cause may be a ReLU pre-activation that lies within rounding of 0: two
    correct implementations whose matrix products round differently (OpenBLAS, MKL, XLA) put it
    on different sides of the kink, and the gradient jumps there (in float32 a network with a
    million pre-activations has about one such unit).  Then the hidden pre-activations are
    recomputed in float64, and the gradients are accepted if they match the exact (float64)
    hand-written gradient, either as it is or with the ReLU masks flipped for some subset of the
    "ambiguous" units: those closer to 0 than 8x the largest rounding error of ``dtype`` in
    their layer, in a column whose bias gradient disagrees (a flip of unit (r, j) changes the
    bias gradient of column j), at most MAX_AMBIGUOUS of them.  A wrong
    gradient (a missing 1/N, a transposed product) cannot pass that way.
    """
    with numpy.load(path) as g:
        got_loss = float(g["loss"])
        got = [g[f"g{i}"] for i in range(sum(1 for k in g.files if k.startswith("g")))]
    with numpy.load(ref_path) as r:
        ref_loss = float(r["loss"])
        ref = [r[f"g{i}"] for i in range(sum(1 for k in r.files if k.startswith("g")))]
    ok, detail = compare(got_loss, got, ref_loss, ref, dtype)
    if (
        ok
        or detail.startswith("loss")
        or len(got) != len(ref)
        or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(got, ref))
    ):
        return ok, detail  # a ReLU unit near its kink cannot explain these
    with numpy.load(data_path) as f:
        X, T, params = unpack({k: f[k] for k in f.files})
    value64, g64, z64 = reference64(X, T, params, loss)
    ok, detail64 = compare(got_loss, got, value64, g64, dtype)
    if ok:
        return True, (
            f"{detail64} against the exact (float64) gradient; the {dtype} reference "
            f"differs from it at a ReLU kink (strict check: {detail})"
        )
    _, _, zd = reference64(X, T, params, loss, dtype=numpy.dtype(dtype))
    k = len(params) // 2
    rtol = RTOL[dtype]
    ambiguous: list[tuple[int, int]] = []
    for layer, (a, b) in enumerate(zip(zd, z64)):
        delta = max(
            8 * float(numpy.abs(a - b).max()),
            4 * float(numpy.finfo(dtype).eps) * float(numpy.abs(b).max()),
        )
        near = numpy.flatnonzero(numpy.abs(b) <= delta)
        # a flip of unit (row, j) changes the bias gradient of column j by the unit's delta:
        # only units in columns whose bias gradient disagrees can explain a mismatch
        db, ref_db = got[k + layer], g64[k + layer]
        atol = ATOL_REL[dtype] * float(numpy.abs(ref_db).max())
        bad_cols = (
            set(
                numpy.flatnonzero(numpy.abs(db - ref_db) > atol + rtol * numpy.abs(ref_db)).tolist()
            )
            if db.shape == ref_db.shape
            else set()
        )
        ambiguous += [(layer, int(j)) for j in near if int(j) % b.shape[1] in bad_cols]
    if not ambiguous or len(ambiguous) > MAX_AMBIGUOUS:
        return False, detail + (
            f" ({len(ambiguous)} ReLU pre-activations near 0 could explain it)" if ambiguous else ""
        )
    tried = 0
    for size in range(1, len(ambiguous) + 1):
        for subset in itertools.combinations(ambiguous, size):
            if tried >= MAX_COMBINATIONS:
                break
            tried += 1
            flips: dict[int, list[int]] = {}
            for layer, j in subset:
                flips.setdefault(layer, []).append(j)
            value, grads, _ = reference64(X, T, params, loss, flips)
            ok2, detail2 = compare(got_loss, got, value, grads, dtype)
            if ok2:
                return True, (
                    f"{detail2} against the exact gradient with {size} ReLU "
                    f"pre-activation(s) within {dtype} rounding of 0 on the other side "
                    f"of the kink from the reference (strict check: {detail})"
                )
    return False, detail + (
        f" (also tried {tried} ways of resolving {len(ambiguous)} ReLU "
        "pre-activations within rounding of 0)"
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_name() -> str:
    """NumPy's BLAS, with the kernels OpenBLAS chose (threadpoolctl's ``architecture``) and
    ``OPENBLAS_CORETYPE`` where the environment sets it: a machine that pins AVX2 kernels on a
    CPU with AVX-512 makes every product 1.6x slower than JAX's own code (benchmarks/README)."""
    try:
        cfg = numpy.show_config(mode="dicts")
        d = cfg.get("Build Dependencies", {}).get("blas", {})
        name = f"{d.get('name')} {d.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 -- informational
        name = "?"
    with contextlib.suppress(ImportError):
        import threadpoolctl  # type: ignore[import-not-found]  # noqa: PLC0415

        cores = {p.get("architecture") for p in threadpoolctl.threadpool_info()}
        cores.discard(None)
        if cores:
            name += f", kernels {'/'.join(sorted(cores))}"
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    return name + (f", OPENBLAS_CORETYPE={pinned} in the environment" if pinned else "")


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def chainrule_version() -> str:
    """chainrule's version as the workers import it (from src/), and the git commit."""
    sys.path.insert(0, SRC)
    try:
        import chainrule  # noqa: PLC0415

        v = str(chainrule.__version__)
    except Exception:  # noqa: BLE001 -- informational
        v = "?"
    finally:
        sys.path.remove(SRC)
    repo = os.path.dirname(HERE)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", repo, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if head:
            v += f" (git {head}{', uncommitted changes in src/' if dirty else ''})"
    return v


def machine_lines(threads: int, malloc: str) -> list[str]:
    n = os.cpu_count()
    aff = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else n
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            mem = f", {int(f.readline().split()[1]) / 2**20:.0f} GiB RAM"
    lines = [
        f"machine: {cpu_model()}, {n} logical cores ({aff} usable){mem}, "
        f"{platform.system()} {platform.release()} {platform.machine()}"
    ]
    lines.append(
        f"python {platform.python_version()}, numpy {numpy.__version__} "
        f"(BLAS: {blas_name()}), {threads} BLAS/compute thread(s) per process, "
        f"glibc malloc {malloc}"
    )
    peers = [f"chainrule {chainrule_version()}"]
    for dist in ("torch", "jax", "jaxlib", "autograd", "mygrad", "numba"):
        v = dist_version(dist)
        peers.append(f"{dist} {v}" if v else f"{dist} (not installed)")
    lines.append("versions: " + ", ".join(peers))
    if hasattr(os, "getloadavg"):
        lines.append("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return lines


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_kb(kb: float) -> str:
    if kb < 1024:
        return f"{kb:.0f} KiB"
    return f"{kb / 1024:.1f} MiB"


def spawn_workers(name: str, impls: list[str], tmp: str, env: dict[str, str]) -> dict[str, Worker]:
    """Write the workload's data and start its workers (they import and build concurrently)."""
    data_path = os.path.join(tmp, f"data-{name}.npz")
    numpy.savez(data_path, **build_data(name))
    return {k: Worker(k, name, data_path, tmp, env) for k in impls}


def run_workload(
    name: str,
    workers: dict[str, Worker],
    args: argparse.Namespace,
    when_loaded: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, Any]]:
    """Time one workload with its spawned workers; returns {impl: result dict}."""
    spec = WORKLOADS[name]
    print(f"== {name}: {spec['title']}", flush=True)
    res: dict[str, dict[str, Any]] = {k: {"status": "pending"} for k in workers}
    data_path = workers["numpy"].data_path
    t_start = time.perf_counter()
    for k, w in workers.items():
        msg = w.ask(None, timeout=300)
        if msg["status"] != "loaded":
            res[k] = {"status": msg["status"], "reason": msg.get("reason", "")}
            w.close()
        else:
            res[k] = {
                "status": "loaded",
                "load_s": msg["load_s"],
                "version": msg["version"],
                "threads": msg["threads"],
            }
    when_loaded()
    live = {k: w for k, w in workers.items() if res[k]["status"] == "loaded"}
    warm = WARMUP_S_QUICK if args.quick else WARMUP_S
    min_warm = 1 if args.quick else 2
    for k, w in list(live.items()):  # one at a time: first call, check file, memory
        msg = w.ask(f"init {warm} {min_warm}", timeout=600)
        if msg["status"] != "ready":
            res[k] = {**res[k], "status": "error", "reason": msg.get("reason", "")}
            w.close()
            del live[k]
            continue
        res[k].update(
            status="ready",
            first_s=msg["first_s"],
            note=msg["note"],
            failed_formulations=msg["failed_formulations"],
            est_s=msg["est_s"],
            mem=msg["mem"],
            warmup_steps=msg["warmup_steps"],
            warnings=msg.get("warnings", []),
        )
    if "numpy" not in live:
        print(f"   hand-written NumPy failed: {res['numpy'].get('reason')}", flush=True)
        for w in live.values():
            w.close()
        return res
    for k in list(live):
        if k == "numpy":
            continue
        ok, detail = check_grads(
            spec["dtype"], spec["loss"], data_path, workers["numpy"].npz, workers[k].npz
        )
        res[k]["check"] = detail
        if not ok:
            print(
                f"   !!! GRADIENT MISMATCH: {IMPLS[k]} on {name}: {detail} -- row excluded",
                flush=True,
            )
            res[k]["status"] = "mismatch"
            res[k]["reason"] = detail
            live[k].close()
            del live[k]
    # blocks of about TARGET_BLOCK_S each, workers taking turns
    plan = {}
    for k in live:
        est = res[k]["est_s"]
        block = max(1, int(TARGET_BLOCK_S / est))
        settle = max(2, block // 10) if est < 2e-3 else (1 if est < 0.05 else 0)
        plan[k] = (block, settle)
    per_round = sum((b + s) * res[k]["est_s"] + 5e-4 for k, (b, s) in plan.items())
    budget = (BUDGET_QUICK if args.quick else BUDGET)[name] * args.time_scale
    n_rounds = max((2 if per_round > 1.0 else 3) if args.quick else 7, int(budget / per_round))
    samples: dict[str, list[float]] = {k: [] for k in live}
    faults = dict.fromkeys(live, 0)
    cpu = dict.fromkeys(live, 0.0)
    wall = dict.fromkeys(live, 0.0)
    for _ in range(n_rounds):
        for k in list(live):
            block, settle = plan[k]
            msg = live[k].ask(f"block {block} {settle}", timeout=600)
            if msg["status"] != "block":
                res[k].update(status="error", reason=msg.get("reason", ""))
                live[k].close()
                del live[k]
                continue
            samples[k].append(msg["t"] / msg["n"])
            faults[k] += msg["faults"]
            cpu[k] += msg["cpu"]
            wall[k] += msg["t"]
    for w in live.values():
        w.close()
    for k in live:
        v = samples[k]
        q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0], v[0], v[0]]
        res[k].update(
            status="ok",
            median=statistics.median(v),
            best=min(v),
            q1=q[0],
            q3=q[2],
            blocks=len(v),
            block=plan[k][0],
            faults=faults[k] / (plan[k][0] * len(v)),
            cpu_per_wall=cpu[k] / wall[k],
        )
    base = res["numpy"]["median"]
    for k in live:
        res[k]["ratio"] = res[k]["median"] / base
        res[k]["best_ratio"] = res[k]["best"] / res["numpy"]["best"]
    print(
        f"   {len(live)} rows timed, {n_rounds} rounds, {time.perf_counter() - t_start:.0f} s",
        flush=True,
    )
    return res


def cell_time(r: dict[str, Any], notes: list[str], key: str) -> str:
    st = r.get("status")
    if st == "ok":
        mark = ""
        if r.get("note"):
            mark = note_mark(
                notes,
                f"{key}: traced with {r['note']} (the original "
                "formulation failed: " + "; ".join(r["failed_formulations"]) + ")",
            )
        for w in r.get("warnings", []):
            mark += note_mark(notes, f"{key}: {w}")
        return f"{r['ratio']:.2f}x ({fmt_time(r['median'])}){mark}"
    if st == "skip":
        return "skipped" + note_mark(notes, f"{key}: skipped: {r.get('reason', '')}")
    if st == "mismatch":
        return "**MISMATCH**" + note_mark(notes, f"{key}: gradient mismatch: {r.get('reason')}")
    if st is None or st == "absent":
        return "-"
    return "failed" + note_mark(notes, f"{key}: failed: {r.get('reason', '')}")


def note_mark(notes: list[str], text: str) -> str:
    if text not in notes:
        notes.append(text)
    return f" [{notes.index(text) + 1}]"


def print_tables(
    results: dict[str, dict[str, dict[str, Any]]], impls: list[str], markdown: bool
) -> None:
    wls = list(results)
    notes: list[str] = []

    def table(
        title: str, rows: list[tuple[str, list[str]]], marks: dict[str, str] | None = None
    ) -> None:
        heads = ["implementation"] + [WORKLOADS[w]["short"] + (marks or {}).get(w, "") for w in wls]
        print()
        print(f"**{title}**" if markdown else title)
        print()
        if markdown:
            print("| " + " | ".join(heads) + " |")
            print("|" + "|".join(["---"] + ["---:"] * len(wls)) + "|")
            for label, cells in rows:
                print("| " + " | ".join([label, *cells]) + " |")
        else:
            widths = [max(len(heads[0]), *(len(r[0]) for r in rows))]
            for j in range(len(wls)):
                widths.append(max(len(heads[j + 1]), *(len(r[1][j]) for r in rows)))
            print(
                "  ".join(
                    h.ljust(widths[0]) if i == 0 else h.rjust(widths[i])
                    for i, h in enumerate(heads)
                )
            )
            print("-" * (sum(widths) + 2 * len(wls)))
            for label, cells in rows:
                print(
                    "  ".join(
                        [label.ljust(widths[0])]
                        + [c.rjust(widths[i + 1]) for i, c in enumerate(cells)]
                    )
                )

    def res(w: str, k: str) -> dict[str, Any]:
        return results[w].get(k, {"status": "absent"})

    rows = [
        (IMPLS[k], [cell_time(res(w, k), notes, f"{IMPLS[k]} / {w}") for w in wls]) for k in impls
    ]
    busy = {}
    for w in wls:
        shares = [r["cpu_per_wall"] for r in results[w].values() if r.get("status") == "ok"]
        if shares and min(shares) < 0.9:
            busy[w] = note_mark(
                notes,
                f"{w}: the machine was busy: the timed workers got {min(shares):.2f}-"
                f"{max(shares):.2f} of a CPU (CPU time / wall time); medians include the "
                "waiting, the best-block table is the steadier figure",
            )
    table(
        "Time per step (forward + backward of every parameter), median, as a ratio to "
        "hand-written NumPy (absolute time in parentheses; lower is better)",
        rows,
        busy,
    )

    best_rows = []
    for k in impls:
        cells = []
        for w in wls:
            r = res(w, k)
            cells.append(f"{r['best_ratio']:.2f}x" if r.get("status") == "ok" else "-")
        best_rows.append((IMPLS[k], cells))
    table(
        "Best block as a ratio to hand-written NumPy's best block (steadier than the median "
        "when other processes share the machine)",
        best_rows,
    )

    mem_rows = []
    for k in impls:
        cells = []
        for w in wls:
            r = res(w, k)
            cells.append(
                fmt_kb(r["mem"]["delta_kb"])
                if r.get("status") in ("ok", "mismatch") and "mem" in r
                else "-"
            )
        mem_rows.append((IMPLS[k], cells))
    table("Peak memory of one step (resident memory the step adds to its process)", mem_rows)

    first_rows = []
    for k in impls:
        if k not in JIT_ROWS:
            continue
        cells = []
        for w in wls:
            r = res(w, k)
            if r.get("status") in ("ok", "mismatch") and "first_s" in r:
                extra = f" = {r['first_s'] / r['median']:.0f} steps" if "median" in r else ""
                cells.append(f"{fmt_time(r['first_s'])}{extra}")
            else:
                cells.append("-")
        first_rows.append((IMPLS[k], cells))
    if first_rows:
        table("First call of the jit rows (trace + compile + one step)", first_rows)
    if notes:
        print()
        for i, n in enumerate(notes, 1):
            print(f"[{i}] {n}" + ("  " if markdown else ""))


def print_details(
    results: dict[str, dict[str, dict[str, Any]]], impls: list[str], threads: int = 1
) -> None:
    print()
    print(
        "Details: median/step, IQR over blocks, best block (and its ratio), blocks x steps, "
        "minor page faults per timed step, CPU time / wall time in the timed blocks (about 1 "
        "with one thread), first call, load time, gradient check"
    )
    noisy = []
    for w, rs in results.items():
        print(f"  {w}: {WORKLOADS[w]['title']}")
        for k in impls:
            r = rs.get(k)
            if r is None:
                continue
            if r.get("status") != "ok":
                print(f"    {k:10} {r.get('status')}: {r.get('reason', '')}")
                continue
            if r["q3"] > 1.15 * r["q1"]:
                noisy.append(f"{w}/{k}")
            print(
                f"    {k:10} {fmt_time(r['median']):>10}  IQR {fmt_time(r['q1'])}.."
                f"{fmt_time(r['q3'])}  best {fmt_time(r['best'])} ({r['best_ratio']:.2f}x)  "
                f"{r['blocks']}x{r['block']}  faults {r['faults']:.1f}  "
                f"cpu/wall {r['cpu_per_wall']:.2f}  "
                f"first {fmt_time(r['first_s'])}  load {r['load_s']:.2f} s  "
                f"{r.get('check', 'reference')}"
            )
    thread_info: dict[str, str] = {}
    methods = set()
    for rs in results.values():
        for k, r in rs.items():
            if "threads" in r:
                thread_info.setdefault(k, r["threads"])
            if "mem" in r:
                methods.add(r["mem"]["method"])
    print("  threads per row: " + "; ".join(f"{k}: {v}" for k, v in thread_info.items()))
    for m in sorted(methods):
        print(f"  memory method: {m}")
    if noisy:
        print(
            "NOTE: interquartile range wider than 15% for " + ", ".join(noisy) + ": the "
            "machine was busy (other processes, CPU steal); compare best blocks or run again."
        )
    multi = [
        f"{w}/{k} ({r['cpu_per_wall']:.2f})"
        for w, rs in results.items()
        for k, r in rs.items()
        if r.get("status") == "ok" and r["cpu_per_wall"] > 1.15 * threads
    ]
    if multi:
        print(
            f"NOTE: more CPU time than {threads} x wall time (more threads computing than "
            "--blas-threads) in " + ", ".join(multi)
        )


def parse_list(values: list[str] | None, allowed: list[str], what: str) -> list[str]:
    if not values:
        return list(allowed)
    out = []
    for v in values:
        for item in v.split(","):
            item = item.strip()
            if not item:
                continue
            if item not in allowed:
                raise SystemExit(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
            if item not in out:
                out.append(item)
    return [a for a in allowed if a in out]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Time chainrule against hand-written NumPy, PyTorch, JAX, autograd and "
        "MyGrad (one process per implementation and workload)."
    )
    ap.add_argument("--quick", action="store_true", help="short smoke-test run (< 1 minute)")
    ap.add_argument(
        "--workloads",
        action="append",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    ap.add_argument(
        "--impls",
        action="append",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(IMPLS)} (default: all; "
        "numpy, the reference, always runs)",
    )
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        metavar="N",
        help="BLAS / compute threads in every worker (default 1)",
    )
    ap.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply the timing budgets by F (default 1)",
    )
    ap.add_argument(
        "--malloc",
        choices=("steady", "default"),
        default="steady",
        help="steady (default): workers run with MALLOC_MMAP_THRESHOLD_=32 MiB and "
        "MALLOC_TRIM_THRESHOLD_=256 MiB, so glibc keeps freed blocks instead "
        "of unmapping them and faulting them in again next step (which can "
        "cost any row 10%% on mlp784, by chance); default: no MALLOC_ variables "
        "(glibc as it is for the peers; chainrule's rows get what import chainrule "
        "sets, see docs/guarantees.md)",
    )
    ap.add_argument(
        "--numba-cache",
        choices=("cold", "user"),
        default=None,
        help="cold: an empty CHAINRULE_CACHE_DIR, so the first call of the "
        "jit (numba) row includes compiling (default of a full run); user: "
        "the cache as found (default with --quick, fast after one run)",
    )
    ap.add_argument("--json", metavar="PATH", help="also write all results to PATH as JSON")
    ap.add_argument(
        "--worker", nargs=4, metavar=("IMPL", "WORKLOAD", "DATA", "NPZ"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker)

    wls = parse_list(args.workloads, list(WORKLOADS), "workload")
    impls = parse_list(args.impls, list(IMPLS), "implementation")
    if "numpy" not in impls:
        impls.insert(0, "numpy")
    t0 = time.perf_counter()
    header = machine_lines(args.blas_threads, args.malloc)
    for line in header:
        print(line)
    print(flush=True)
    env = worker_env(args.blas_threads, args.malloc)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    numba_cache = args.numba_cache or ("user" if args.quick else "cold")
    with tempfile.TemporaryDirectory(prefix="chainrule-harness-") as tmp:
        if numba_cache == "cold":
            env["CHAINRULE_CACHE_DIR"] = os.path.join(tmp, "numba-cache")
        print(
            f"numba cache: {numba_cache} ("
            f"{env.get('CHAINRULE_CACHE_DIR', 'CHAINRULE_CACHE_DIR or ~/.cache/chainrule')})\n",
            flush=True,
        )
        spawned = {wls[0]: spawn_workers(wls[0], impls, tmp, env)}
        for i, w in enumerate(wls):
            nxt = wls[i + 1] if i + 1 < len(wls) else None

            def prefetch(nxt: str | None = nxt) -> None:
                # --quick: the next workload's workers import while this one is timed (on a
                # core its single-threaded rows leave idle); a full run keeps the machine quiet
                if args.quick and nxt is not None:
                    spawned[nxt] = spawn_workers(nxt, impls, tmp, env)

            results[w] = run_workload(w, spawned.pop(w), args, prefetch)
            if nxt is not None and nxt not in spawned:
                spawned[nxt] = spawn_workers(nxt, impls, tmp, env)
    if args.markdown:
        print()
        print("Machine: " + "; ".join(h.removeprefix("machine: ") for h in header[:3]) + ".")
    print_tables(results, impls, args.markdown)
    print_details(results, impls, args.blas_threads)
    load = ""
    if hasattr(os, "getloadavg"):
        load = "; load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - t0:.0f} s{load}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": header,
                    "threads": args.blas_threads,
                    "quick": args.quick,
                    "results": results,
                },
                f,
                indent=1,
                default=str,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
