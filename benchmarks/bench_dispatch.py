"""jit dispatch: what a call costs when the parameters are a list or a dict (the JAX idiom)
against the same compiled step called with positional arrays (issue 16).

Two functions: the seed network's ``value_and_grad`` (8 parameters + X, T; ``docs/seed.md``)
and a 2-line function of 8 small leaves, where the call is nearly all dispatch.  For each
backend (``numpy``, and ``numba`` when it is installed) the variants take turns, one timed
block each, for ``--rounds`` rounds; the table prints the median time per call and its ratio
to the positional call (target: at most 1.15x).

Run from the repository root::

    PYTHONPATH=src python3 benchmarks/bench_dispatch.py [--rounds 9] [--backends numpy,numba]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy

import chainrule as cr
from chainrule import seed

NAMES = ("W1", "W2", "W3", "W4", "B1", "B2", "B3", "B4")


def seed_positional(
    W1: Any, W2: Any, W3: Any, W4: Any, B1: Any, B2: Any, B3: Any, B4: Any, X: Any, T: Any
) -> Any:
    Z1 = X.dot(W1) + B1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W2) + B2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W3) + B3
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W4) + B4
    return ((Y - T) ** 2).mean()


def seed_list(params: list[Any], X: Any, T: Any) -> Any:
    return seed_positional(*params, X, T)


def seed_dict(params: dict[str, Any], X: Any, T: Any) -> Any:
    return seed_positional(*[params[n] for n in NAMES], X, T)


def small_positional(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, g: Any, h: Any) -> Any:
    s = a * b + c * d + e * f
    return (s * g + h).sum()


def small_list(p: list[Any]) -> Any:
    return small_positional(*p)


def small_dict(p: dict[str, Any]) -> Any:
    return small_positional(*p.values())


def variants(backend: str) -> dict[str, dict[str, Callable[[], Any]]]:
    """{workload: {variant: a call}}, each checked against the positional call first."""
    P = [seed.PARAMS[n].copy() for n in NAMES]
    X, T = seed.X.copy(), seed.T.copy()
    D = dict(zip(NAMES, P))
    L8 = [numpy.linspace(0.0, 1.0, 3) + i for i in range(8)]
    D8 = {f"p{i}": a for i, a in enumerate(L8)}
    every = tuple(range(8))

    def jit(f: Callable[..., Any], **kw: Any) -> Callable[..., Any]:
        return cr.jit(cr.value_and_grad(f, **kw), backend=backend)

    sp, sl, sd = jit(seed_positional, argnums=every), jit(seed_list), jit(seed_dict)
    tp, tl, td = jit(small_positional, argnums=every), jit(small_list), jit(small_dict)
    out = {
        "seed (8 params + X, T)": {
            "positional": lambda: sp(*P, X, T),
            "list": lambda: sl(P, X, T),
            "dict": lambda: sd(D, X, T),
        },
        "2 lines, 8 leaves": {
            "positional": lambda: tp(*L8),
            "list": lambda: tl(L8),
            "dict": lambda: td(D8),
        },
    }
    for calls in out.values():
        v0, g0 = calls["positional"]()
        for name, call in calls.items():
            v, g = call()
            g = list(g.values()) if isinstance(g, dict) else list(g)
            numpy.testing.assert_allclose(v, v0, rtol=1e-14)
            for a, b in zip(g, g0):
                numpy.testing.assert_allclose(a, b, rtol=1e-14, err_msg=name)
    return out


def per_call(call: Callable[[], Any], seconds: float = 0.05) -> float:
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(50):
            call()
        n += 50
        t = time.perf_counter() - t0
        if t >= seconds:
            return t / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    have = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])
    ap.add_argument("--backends", default=",".join(have))
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    print(f"{'':10}{'workload':26}{'positional':>12}{'list':>20}{'dict':>20}")
    for backend in a.backends.split(","):
        for workload, calls in variants(backend).items():
            times: dict[str, list[float]] = {k: [] for k in calls}
            for _ in range(a.rounds):
                for k, call in calls.items():
                    times[k].append(per_call(call))
            base = statistics.median(times["positional"])
            cells = [f"{base * 1e6:9.1f} us"]
            for k in ("list", "dict"):
                med = statistics.median(times[k])
                cells.append(f"{med * 1e6:9.1f} us {med / base:5.2f}x")
            print(f"{backend:10}{workload:26}{cells[0]:>12}{cells[1]:>20}{cells[2]:>20}")


if __name__ == "__main__":
    main()
