"""chainrule.jit backends against hand-written NumPy: NumPy, Numba, auto (and JAX if installed).

Workloads (forward + backward of every parameter per step, as in bench_core.py):

* ``seed``     the 4-6-6-6-1 ReLU MLP of docs/seed.md, batch 1, float64, mean squared error;
* ``seed256``  the same weights, batch 256 (random X, T from ``default_rng(0)``), float64;
* ``mlp784``   784-512-512-10 ReLU MLP, batch 128, float32, softmax cross-entropy with integer
               labels (bench_core.py's workload).

Rows: ``numpy`` (hand-written forward and backward, the reference), ``jit-numpy``
(``chainrule.jit(value_and_grad(forward))``), ``jit-numba`` (``backend="numba"``),
``jit-auto`` (``backend="auto"``; the backend it chose is shown), and ``jax`` (``jax.jit`` of
``jax.value_and_grad`` of the same forward in ``jax.numpy``, inputs already JAX arrays) when JAX
is importable.

Every variant's loss and gradients are checked against the hand-written ones first (rtol 1e-10
float64, 1e-4 float32).  Steady state: the variants take turns in blocks of consecutive steps
(untimed warm-up steps before each block); median over blocks of time per step, ratio to
``numpy``, best block.  First call, reported separately: each jit variant in a fresh Python
process (so that Numba's own start-up counts), once with an empty cache directory (``cold``:
tracing + compiling) and once more reusing it (``warm``: what every later process pays).

Run (from the repository root)::

    PYTHONPATH=src python3 benchmarks/bench_numba.py                    # ~3 minutes
    PYTHONPATH=src python3 benchmarks/bench_numba.py --quick            # ~1 minute
    PYTHONPATH=src python3 benchmarks/bench_numba.py --blas-threads 1   # steadier on 2 cores
    PYTHONPATH=src python3 benchmarks/bench_numba.py --sequential       # fairer with BLAS threads
    PYTHONPATH=src python3 benchmarks/bench_numba.py --crossover        # the auto threshold
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import chainrule
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, os.path.join(HERE, "..", "src"))
    import chainrule
sys.path.insert(0, HERE)

import bench_core  # noqa: E402  (the hand-written workloads)

jitmod = sys.modules["chainrule.readers.jit"]

# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------


def workload(name: str) -> dict[str, Any]:
    if name == "seed":
        return bench_core.seed_workload()
    if name == "seed256":
        w = bench_core.seed_workload()
        rng = numpy.random.default_rng(0)
        w.update(
            name="seed256",
            title="seed 4-6-6-6-1, batch 256, f64",
            inputs=(rng.standard_normal((256, 4)), rng.standard_normal((256, 1))),
        )
        return w
    if name == "mlp784":
        return bench_core.mlp_workload()
    raise ValueError(name)


WORKLOADS = ("seed", "seed256", "mlp784")


def jit_step(w: dict[str, Any], backend: str) -> Callable[[], Any]:
    n_in = len(w["inputs"])
    vg = chainrule.value_and_grad(w["forward"], argnums=tuple(range(n_in, n_in + len(w["params"]))))
    f = chainrule.jit(vg, backend=backend)
    args = (*w["inputs"], *w["params"])

    def step() -> Any:
        value, grads = f(*args)
        return value, list(grads)

    step.jitted = f  # type: ignore[attr-defined]
    step.args = args  # type: ignore[attr-defined]
    return step


def jax_step(w: dict[str, Any]) -> Callable[[], Any] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    if w["name"].startswith("seed"):

        def forward(
            X: Any, T: Any, W1: Any, W2: Any, W3: Any, W4: Any, B1: Any, B2: Any, B3: Any, B4: Any
        ) -> Any:
            A1 = jnp.maximum(0, X @ W1 + B1)
            A2 = jnp.maximum(0, A1 @ W2 + B2)
            A3 = jnp.maximum(0, A2 @ W3 + B3)
            Y = A3 @ W4 + B4
            return ((Y - T) ** 2).mean()
    else:

        def forward(
            X: Any,
            y: Any,
            W1: Any,
            W2: Any,
            W3: Any,  # type: ignore[misc]
            b1: Any,
            b2: Any,
            b3: Any,
        ) -> Any:
            A1 = jnp.maximum(0, X @ W1 + b1)
            A2 = jnp.maximum(0, A1 @ W2 + b2)
            Z3 = A2 @ W3 + b3
            S = Z3 - Z3.max(axis=1, keepdims=True)
            logp = S - jnp.log(jnp.exp(S).sum(axis=1, keepdims=True))
            return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()

    n_in = len(w["inputs"])
    f = jax.jit(jax.value_and_grad(forward, argnums=tuple(range(n_in, n_in + len(w["params"])))))
    args = [jnp.asarray(a) for a in (*w["inputs"], *w["params"])]

    def step() -> Any:
        value, grads = f(*args)
        jax.block_until_ready(grads)
        return value, list(grads)

    step.first = lambda: step()  # type: ignore[attr-defined]
    return step


# ---------------------------------------------------------------------------------------------
# First call in a fresh process
# ---------------------------------------------------------------------------------------------


def first_call_here(name: str, backend: str) -> dict[str, Any]:
    """Run in a child process: the time of the first jitted step (tracing + compiling or
    loading from the disk cache); numba and chainrule are imported before the clock starts."""
    if backend in ("numba", "auto"):
        import numba  # noqa: F401
    w = workload(name)
    step = jit_step(w, backend)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    entry = next(iter(step.jitted.cache.values()))  # type: ignore[attr-defined]
    return {"first": first, "backend": entry.backend}


def first_call(name: str, backend: str, cache: str) -> dict[str, Any]:
    env = dict(os.environ, CHAINRULE_CACHE_DIR=cache)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            os.path.dirname(os.path.dirname(os.path.abspath(chainrule.__file__))),
            env.get("PYTHONPATH", ""),
        ]
    )
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--first-call", name, backend],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Steady state
# ---------------------------------------------------------------------------------------------


def cross_check(w: dict[str, Any], steps: dict[str, Callable[[], Any]]) -> None:
    ref_loss, ref = steps["numpy"]()
    for kind, f in steps.items():
        if kind == "numpy":
            continue
        loss, grads = f()
        numpy.testing.assert_allclose(
            float(loss), ref_loss, rtol=w["rtol"], err_msg=f"{w['name']}/{kind}: loss"
        )
        for i, (g, r) in enumerate(zip(grads, ref)):
            g = numpy.asarray(g)
            assert g.shape == r.shape and g.dtype == r.dtype, (
                f"{w['name']}/{kind}: grad {i}: {g.shape} {g.dtype} vs {r.shape} {r.dtype}"
            )
            numpy.testing.assert_allclose(
                g, r, rtol=w["rtol"], atol=w["atol"], err_msg=f"{w['name']}/{kind}: grad {i}"
            )


def time_steps(
    steps: dict[str, Callable[[], Any]], budget_s: float, sequential: bool = False
) -> dict[str, dict[str, float]]:
    """Median over blocks of the time per step.  Interleaved (default): the variants take
    turns block by block, so drift in clock speed or load hits all alike.  ``sequential``: all
    blocks of one variant, then the next, after a pause: with multi-threaded BLAS, NumPy's and
    SciPy's OpenBLAS (the one Numba's numpy.dot calls) are two thread pools whose idle threads
    spin for a while after each call and slow the other one down when they alternate."""
    per = {}
    for k, f in steps.items():
        for _ in range(3):
            f()
        t0 = time.perf_counter()
        for _ in range(5):
            f()
        per[k] = (time.perf_counter() - t0) / 5
    block = max(3, int(0.020 / max(per.values())))  # ~20 ms of the slowest variant
    settle = max(2, block // 10)
    n_blocks = max(7, int(budget_s / (sum(per.values()) * (block + settle))))
    samples: dict[str, list[float]] = {k: [] for k in steps}
    perf = time.perf_counter
    order = [[k] * n_blocks for k in steps] if sequential else [list(steps)] * n_blocks
    last = None
    for turn in order:
        for k in turn:
            f = steps[k]
            if sequential and k != last:
                time.sleep(0.5)
                for _ in range(3 * settle):
                    f()
            last = k
            for _ in range(settle):
                f()
            t0 = perf()
            for _ in range(block):
                f()
            samples[k].append((perf() - t0) / block)
    return {
        k: {
            "median": statistics.median(v),
            "min": min(v),
            "q1": statistics.quantiles(v, n=4)[0],
            "q3": statistics.quantiles(v, n=4)[2],
        }
        for k, v in samples.items()
    }


def fmt(s: float) -> str:
    if s >= 1.0:
        return f"{s:7.2f} s "
    if s >= 1e-3:
        return f"{s * 1e3:7.2f} ms"
    return f"{s * 1e6:7.1f} µs"


# ---------------------------------------------------------------------------------------------
# The auto crossover
# ---------------------------------------------------------------------------------------------


def crossover(budget: float, sequential: bool = False) -> None:
    """Numba over NumPy backend for ReLU MLPs in -> h -> h -> 1 (MSE) across sizes."""
    print("jit numba / jit numpy, per step (median of blocks); 2*m*k*n FLOP of the products")
    print(
        f"{'dtype':8} {'width':>6} {'batch':>6} {'MFLOP':>10} {'numpy':>11} {'numba':>11} "
        f"{'ratio':>7}"
    )
    rng = numpy.random.default_rng(0)
    for dtype in (numpy.float64, numpy.float32):
        for h in (6, 32, 128, 512):
            for batch in (1, 16, 128, 1024):
                ws = [rng.standard_normal(s).astype(dtype) * 0.3 for s in ((8, h), (h, h), (h, 1))]
                bs = [numpy.zeros(s, dtype) for s in (h, h, 1)]
                X = rng.standard_normal((batch, 8)).astype(dtype)
                T = rng.standard_normal((batch, 1)).astype(dtype)

                def forward(
                    X: Any, T: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any
                ) -> Any:
                    A1 = numpy.maximum(0, X @ W1 + b1)
                    A2 = numpy.maximum(0, A1 @ W2 + b2)
                    return (((A2 @ W3 + b3) - T) ** 2).mean()

                vg = chainrule.value_and_grad(forward, argnums=tuple(range(2, 8)))
                args = (X, T, *ws, *bs)
                fn = chainrule.jit(vg)
                fb = chainrule.jit(vg, backend="numba")
                fb(*args)
                prog, _ = jitmod._trace(vg, args, {}, ())
                flops = jitmod.matmul_flops(prog)
                res = time_steps(
                    {"numpy": lambda f=fn, a=args: f(*a), "numba": lambda f=fb, a=args: f(*a)},
                    budget,
                    sequential,
                )
                a, b = res["numpy"]["median"], res["numba"]["median"]
                print(
                    f"{numpy.dtype(dtype).name:8} {h:6d} {batch:6d} {flops / 1e6:10.3f} "
                    f"{fmt(a):>11} {fmt(b):>11} {b / a:6.2f}x",
                    flush=True,
                )
    print(f"\nchainrule.jit.AUTO_NUMBA_MAX_FLOPS = {jitmod.AUTO_NUMBA_MAX_FLOPS:.3g}")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter timing, no warm first call")
    ap.add_argument("--only", choices=WORKLOADS, action="append", help="run only this workload")
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        metavar="N",
        help="limit BLAS to N threads (threadpoolctl, else environment + restart)",
    )
    ap.add_argument("--no-jax", action="store_true", help="leave out the JAX row")
    ap.add_argument(
        "--no-first-call",
        action="store_true",
        help="skip the first-call measurements (fresh processes)",
    )
    ap.add_argument("--crossover", action="store_true", help="measure the auto crossover")
    ap.add_argument(
        "--sequential",
        action="store_true",
        help="time the variants one after the other, not in alternating blocks "
        "(fairer with multi-threaded BLAS: see time_steps)",
    )
    ap.add_argument(
        "--first-call", nargs=2, metavar=("WORKLOAD", "BACKEND"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.first_call:
        print(json.dumps(first_call_here(*args.first_call)))
        return 0
    if args.blas_threads:
        try:  # Numba's numpy.dot calls SciPy's BLAS: load it, so that the limit covers it
            import scipy.linalg.cython_blas  # noqa: F401
        except ImportError:
            pass
    limiter = bench_core.set_blas_threads(args.blas_threads) if args.blas_threads else None
    bench_core.print_header()
    try:
        import numba

        print(f"numba {numba.__version__}", end="")
    except ImportError:
        print("numba: not installed (jit-numba rows left out)", end="")
        numba = None
    try:
        import jax

        print(f"  jax {jax.__version__}" if not args.no_jax else "")
    except ImportError:
        print("  jax: not installed")
    print()
    if args.crossover:
        crossover(0.6 if args.quick else 2.0, args.sequential)
        return 0

    names = args.only or list(WORKLOADS)
    budget = (
        {"seed": 2.0, "seed256": 3.0, "mlp784": 6.0}
        if args.quick
        else {"seed": 8.0, "seed256": 10.0, "mlp784": 25.0}
    )
    rows = []
    for name in names:
        w = workload(name)
        steps: dict[str, Callable[[], Any]] = {
            "numpy": lambda w=w: w["numpy"](*w["inputs"], *w["params"])
        }
        first: dict[str, str] = {}
        backends = ["numpy", "numba", "auto"] if numba is not None else ["numpy", "auto"]
        with tempfile.TemporaryDirectory(prefix="chainrule-bench-") as tmp:
            for backend in backends:
                cache = os.path.join(tmp, backend)  # each backend's cold start is cold
                if not args.no_first_call:
                    cold = first_call(name, backend, cache)
                    text = fmt(cold["first"]).strip()
                    if cold["backend"] == "numba" and not args.quick:
                        warm = first_call(name, backend, cache)
                        text = f"{text} cold, {fmt(warm['first']).strip()} warm"
                    first[f"jit-{backend}"] = text
                os.environ["CHAINRULE_CACHE_DIR"] = cache
                steps[f"jit-{backend}"] = jit_step(w, backend)
                steps[f"jit-{backend}"]()  # compiled (or loaded) before timing
            auto = next(iter(steps["jit-auto"].jitted.cache.values())).backend  # type: ignore
            if not args.no_jax:
                js = jax_step(w)
                if js is not None:
                    t0 = time.perf_counter()
                    js()
                    first["jax"] = fmt(time.perf_counter() - t0).strip() + " (in process)"
                    steps["jax"] = js
            cross_check(w, steps)
            print(
                f"{name}: {', '.join(k for k in steps if k != 'numpy')} match hand-written "
                f"NumPy (rtol {w['rtol']:g}); auto chose {auto}",
                flush=True,
            )
            res = time_steps(steps, budget[name], args.sequential)
        base, best = res["numpy"]["median"], res["numpy"]["min"]
        for k, r in res.items():
            label = f"jit-auto ({auto})" if k == "jit-auto" else k
            rows.append(
                (w["title"], label, first.get(k, ""), r, r["median"] / base, r["min"] / best)
            )

    print()
    head = (
        f"{'workload':34} {'variant':18} {'median/step':>11} {'x numpy':>8} "
        f"{'best block':>10} {'x numpy':>8}   first call"
    )
    print(head)
    print("-" * (len(head) + 20))
    last = None
    for title, k, fc, r, ratio, bratio in rows:
        print(
            f"{title if title != last else '':34} {k:18} {fmt(r['median']):>11} "
            f"{ratio:7.2f}x {fmt(r['min']):>10} {bratio:7.2f}x   {fc}"
        )
        last = title
    print()
    print(
        "targets: seed jit-numba <= 0.25x numpy; seed256 jit-numba <= 0.5x; "
        "mlp784 jit-auto <= 0.95x"
    )
    del limiter
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
