"""einsum through matrix products (``chainrule.engine.contract``) against NumPy's own loop and
the peers, forward only, one thread.

For each expression: ``numpy.einsum`` (NumPy's default, ``optimize=False``), ``numpy.einsum``
with ``optimize=True``, chainrule's ``einsum`` (what the primitive, its rules and ``jit`` run),
``torch.einsum`` and a jitted ``jax.numpy.einsum`` where those are importable (never project
dependencies).  Every result is checked against NumPy's first; the table prints the best of 7
blocks per call and each one's ratio to chainrule's.

    PYTHONPATH=src python3 benchmarks/bench_einsum.py
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy  # noqa: E402

from chainrule.engine.contract import einsum  # noqa: E402

# (subscripts, shapes, what it is)
CASES: list[tuple[str, list[tuple[int, ...]], str]] = [
    ("bi,oij,bj->bo", [(256, 32), (10, 32, 32), (256, 32)], "bilinear layer"),
    ("bo,bi,bj->oij", [(256, 10), (256, 32), (256, 32)], "its weight gradient"),
    ("bqd,bkd->bqk", [(8, 64, 64), (8, 64, 64)], "attention scores"),
    ("bhqk,bhkd->bhqd", [(8, 4, 64, 64), (8, 4, 64, 16)], "attention-weighted values"),
    ("nd,md->nm", [(400, 3), (500, 3)], "pairwise dots in 3-D"),
    ("ij,jk,kl->il", [(50, 60), (60, 70), (70, 80)], "a chain of three"),
    ("bij,bjk->bik", [(2000, 4, 4), (2000, 4, 4)], "a stack of 4x4 products"),
    ("ij,ij->i", [(20000, 3), (20000, 3)], "row-wise dots (NumPy's loop kept)"),
]


def _best(f: Callable[[], Any], blocks: int = 7) -> float:
    f()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.02:
        f()
        n += 1
    best = float("inf")
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def _peers() -> dict[str, Callable[[str, list[Any]], Callable[[], Any]]]:
    out: dict[str, Callable[[str, list[Any]], Callable[[], Any]]] = {}
    try:
        import torch  # noqa: PLC0415

        torch.set_num_threads(1)

        def t(spec: str, ops: list[Any]) -> Callable[[], Any]:
            ts = [torch.from_numpy(o) for o in ops]
            return lambda: torch.einsum(spec, *ts)

        out["torch"] = t
    except ImportError:
        pass
    try:
        import jax  # noqa: PLC0415

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp  # noqa: PLC0415

        def j(spec: str, ops: list[Any]) -> Callable[[], Any]:
            f = jax.jit(lambda *a: jnp.einsum(spec, *a))
            js = [jnp.asarray(o) for o in ops]
            return lambda: f(*js).block_until_ready()

        out["jax"] = j
    except ImportError:
        pass
    return out


def _ours(spec: str, ops: list[Any]) -> dict[str, Callable[[], Any]]:
    return {
        "numpy": lambda: numpy.einsum(spec, *ops),
        "numpy opt": lambda: numpy.einsum(spec, *ops, optimize=True),
        "chainrule": lambda: einsum(spec, *ops),
    }


def main() -> None:
    rng = numpy.random.default_rng(0)
    peers = _peers()
    names = ["numpy", "numpy opt", "chainrule", *peers]
    print(f"{'expression':18} {'':34}" + "".join(f"{n:>17}" for n in names))
    for spec, shapes, what in CASES:
        ops = [rng.standard_normal(s) for s in shapes]
        want = numpy.einsum(spec, *ops)
        numpy.testing.assert_allclose(einsum(spec, *ops), want, rtol=1e-10, atol=1e-10)
        calls = _ours(spec, ops)
        for name, make in peers.items():
            calls[name] = make(spec, ops)
            numpy.testing.assert_allclose(
                numpy.asarray(calls[name]()), want, rtol=1e-10, atol=1e-10
            )
        times = {n: _best(f) for n, f in calls.items()}
        ours = times["chainrule"]
        cells = [f"{times[n] * 1e6:8.1f} us {times[n] / ours:5.1f}x" for n in names]
        print(f"{spec:18} {what:34}" + "".join(f"{c:>17}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
