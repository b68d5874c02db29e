"""detect_anomaly costs nothing while it is off, and this is what it costs while on.

Seed network (batch 1, float64), forward + backward per step, three states taking turns:
``off`` (never switched on), ``off again`` (after an on/off cycle: the original recording
function is back) and ``on``.

Run:  PYTHONPATH=src python3 benchmarks/bench_anomaly.py
"""

from __future__ import annotations

import time

import chainrule as cr
from chainrule import seed

X, T = cr.tensor(seed.X), cr.tensor(seed.T)
P = [cr.tensor(v, requires_grad=True) for v in seed.PARAMS.values()]


def step() -> None:
    err = seed.forward(X, T, *P)
    err.backward()
    for p in P:
        p.grad = None


def block(n: int = 500) -> float:
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    best = {"off": float("inf"), "off again": float("inf"), "on": float("inf")}
    for _ in range(30):
        best["off"] = min(best["off"], block())
        with cr.detect_anomaly():
            best["on"] = min(best["on"], block())
        best["off again"] = min(best["off again"], block())
    for name, t in best.items():
        print(f"{name:<10} {t:7.1f} us/step  {t / best['off']:.3f}x")


if __name__ == "__main__":
    main()
