"""The matrix products of the benchmarks' workloads, NumPy's BLAS against the peers' (one thread).

Where a workload's time is mostly matrix products (the float32 MLPs of harness.py, the GELU
MLP and, at larger sizes, the RNN and attention of bench_unseen.py), its ratio to hand-written
NumPy is set by the BLAS behind each library: NumPy calls the OpenBLAS it ships with, PyTorch
MKL (on x86) and JAX its own XLA/Eigen kernels.  This prints, for each product shape and
layout those workloads compute (``A @ B``, ``A.T @ G``, ``G @ B.T``), the time of one product
in each library and its ratio to NumPy's, so that a workload's gap can be told apart from
chainrule's own overhead.

Run from the repository root, with the peers installed (never project dependencies)::

    python3 benchmarks/bench_blas.py [--dtype float32,float64]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy  # noqa: E402

# (m, k, n, where): the forward product of an (m, k) by a (k, n) matrix
SHAPES = [
    (128, 784, 512, "mlp784 layer 1"),
    (128, 512, 512, "mlp784 layer 2"),
    (512, 1024, 2048, "mlp1024 layer 1"),
    (512, 2048, 2048, "mlp1024 layer 2"),
    (128, 256, 1024, "gelu layer 1"),
    (64, 128, 128, "rnn h=128 step"),
    (512, 64, 64, "attention projections"),
]


def best_of(f: Callable[[], Any], budget: float = 0.2) -> float:
    """The least time of one call, over blocks of calls for about ``budget`` seconds."""
    f()
    t0 = time.perf_counter()
    f()
    per = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(0.02 / per))
    best = float("inf")
    end = time.perf_counter() + budget
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def numpy_call(a: Any, b: Any, layout: str) -> Callable[[], Any]:
    if layout == "A @ B":
        return lambda: a @ b
    if layout == "A.T @ G":
        return lambda: a.T @ b
    return lambda: a @ b.T


def peers() -> dict[str, Callable[[Any, Any, str], Callable[[], Any]]]:
    """Product makers of the importable peers: (A, B, layout) -> a call computing it."""
    out: dict[str, Callable[[Any, Any, str], Callable[[], Any]]] = {}
    try:
        import torch  # noqa: PLC0415 -- a peer, optional

        torch.set_num_threads(1)

        def tmake(a: Any, b: Any, layout: str) -> Callable[[], Any]:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            if layout == "A @ B":
                return lambda: ta @ tb
            if layout == "A.T @ G":
                return lambda: ta.T @ tb
            return lambda: ta @ tb.T

        out["torch"] = tmake
    except ImportError:
        pass
    try:
        import jax  # noqa: PLC0415 -- a peer, optional

        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one CPU for its client
        import jax.numpy as jnp  # noqa: PLC0415

        jax.config.update("jax_enable_x64", True)
        ops = {
            "A @ B": jax.jit(lambda a, b: a @ b),
            "A.T @ G": jax.jit(lambda a, b: a.T @ b),
            "G @ B.T": jax.jit(lambda a, b: a @ b.T),
        }

        def jmake(a: Any, b: Any, layout: str) -> Callable[[], Any]:
            ja, jb, f = jnp.asarray(a), jnp.asarray(b), ops[layout]
            return lambda: f(ja, jb).block_until_ready()

        out["jax"] = jmake
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float32,float64")
    a = ap.parse_args()
    rng = numpy.random.default_rng(0)
    makers = peers()
    head = f"{'product':34}{'layout':>9}{'numpy us':>11}" + "".join(
        f"{name + ' us':>11}{'ratio':>7}" for name in makers
    )
    for dtype in a.dtype.split(","):
        print(f"\n{dtype} (ratio: the peer's time over NumPy's)\n{head}")
        for m, k, n, where in SHAPES:
            A = rng.standard_normal((m, k)).astype(dtype)
            B = rng.standard_normal((k, n)).astype(dtype)
            G = rng.standard_normal((m, n)).astype(dtype)
            cases = {"A @ B": (A, B), "A.T @ G": (A, G), "G @ B.T": (G, B)}
            for layout, (x, y) in cases.items():
                base = best_of(numpy_call(x, y, layout))
                row = f"{where + f' {m}x{k}x{n}':34}{layout:>9}{base * 1e6:11.1f}"
                for make in makers.values():
                    t = best_of(make(x, y, layout))
                    row += f"{t * 1e6:11.1f}{t / base:7.2f}"
                print(row, flush=True)


if __name__ == "__main__":
    main()
