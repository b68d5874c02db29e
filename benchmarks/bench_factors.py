"""Where sharing one LU factorisation pays (chainrule.engine.factors.MIN_ORDER).

For matrices of order n, float64, 1 BLAS thread, the median time of:

* ``solve``: one ``solve(A, b)`` alone (nothing to share: the bookkeeping's cost), through
  NumPy and through ``factors.solve`` (the copy, the lookup, ``getrf`` + ``getrs``);
* ``gp``: what a Gaussian-process step asks of the matrix: ``solve(A, b)``, ``slogdet(A)``,
  then the rules' ``solve(A^T, g)`` and ``inv(A^T)``, through NumPy (four factorisations
  and a general inverse) and through ``factors`` (one ``getrf``, ``getrs`` twice, one
  ``getri``).

Needs SciPy (its LAPACK); run from the repository root::

    PYTHONPATH=src python3 benchmarks/bench_factors.py [--sizes 8,16,32,48,64,128,300]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy  # noqa: E402

from chainrule.engine import factors  # noqa: E402


def _time(f: Callable[[], Any], budget: float = 0.2) -> float:
    f()
    n, t = 1, 0.0
    while t < 0.02:
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        t = time.perf_counter() - t0
        n *= 2
    reps = max(3, int(budget / (t / (n // 2))) // (n // 2))
    runs = []
    for _ in range(min(reps, 9)):
        t0 = time.perf_counter()
        for _ in range(n // 2):
            f()
        runs.append((time.perf_counter() - t0) / (n // 2))
    return statistics.median(runs) * 1e6


def _row(n: int, rng: Any) -> list[float]:
    """The four timings (us) at order ``n``."""
    a = rng.standard_normal((n, n)) + n * numpy.eye(n)
    b, g = rng.standard_normal(n), rng.standard_normal(n)

    def numpy_gp() -> None:
        x = a.copy()
        numpy.linalg.solve(x, b)
        numpy.linalg.slogdet(x)
        numpy.linalg.solve(x.T, g)
        numpy.linalg.inv(x.T)

    def shared_gp() -> None:
        x = a.copy()  # a new matrix each step, as a model computes it
        factors.solve(x, b)
        factors.slogdet(x)
        factors.solve(x.T, g)
        factors.inv(x.T)

    def shared_solve() -> None:
        factors.solve(a.copy(), b)

    def numpy_solve() -> None:
        numpy.linalg.solve(a.copy(), b)

    return [_time(numpy_solve), _time(shared_solve), _time(numpy_gp), _time(shared_gp)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="8,16,24,32,48,64,96,128,300")
    sizes = [int(s) for s in ap.parse_args().sizes.split(",")]
    if factors.scipy_lapack() is None:
        raise SystemExit("SciPy is not importable: factors.py runs NumPy's own functions")
    factors.MIN_ORDER = 1  # the shared path at every size
    rng = numpy.random.default_rng(0)
    print(f"{'n':>5} {'solve numpy':>12} {'shared':>9} {'gp numpy':>10} {'shared':>9}   (us)")
    for n in sizes:
        row = _row(n, rng)
        print(f"{n:>5} {row[0]:>12.1f} {row[1]:>9.1f} {row[2]:>10.1f} {row[3]:>9.1f}")


if __name__ == "__main__":
    main()
