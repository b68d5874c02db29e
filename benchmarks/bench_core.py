"""Core speed benchmark: chainrule against a hand-written NumPy backward pass.

Two workloads, forward + backward of every parameter per step:

* ``seed``   -- the 4-6-6-6-1 ReLU MLP of docs/seed.md (batch 1, float64, mean squared
  error), data from :mod:`chainrule.seed`.
* ``mlp784`` -- a 784-512-512-10 ReLU MLP, float32, batch 128, softmax cross-entropy with
  integer labels (mean over the batch), He initialisation from ``default_rng(0)``.

Each is run these ways:

* ``numpy``      hand-written forward + backward in plain NumPy (the reference, ratio 1.00);
* ``eager``      the same forward in plain NumPy on chainrule tensors, then ``loss.backward()``
                 (the grads are reset with ``p.grad = None`` before every step);
* ``functional`` ``chainrule.value_and_grad`` over all parameters;
* ``jit``        (reference only, where ``chainrule.jit`` exists and accepts the workload) the
                 same ``value_and_grad`` compiled to straight-line NumPy; ``--no-jit`` drops it.

Before timing, chainrule's gradients are checked against the hand-written ones (rtol 1e-10 for
float64, 1e-4 for float32).  Timing: ``time.perf_counter`` around blocks of consecutive steps,
the variants taking turns block by block (so drift in clock speed or load hits all alike), a
few untimed steps before each block; reported: the median over blocks of the time per step,
its ratio to ``numpy``, the interquartile range, the best block, and minor page faults per step.

Run (from the repository root)::

    PYTHONPATH=src python3 benchmarks/bench_core.py            # full run, about 2 minutes
    PYTHONPATH=src python3 benchmarks/bench_core.py --quick    # about 10 seconds
    PYTHONPATH=src python3 benchmarks/bench_core.py --blas-threads 1   # steadier on 2 cores
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy

try:
    import chainrule
except ImportError:  # run from a checkout without PYTHONPATH=src
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import chainrule

from chainrule import seed as seed_data

# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def blas_info() -> list[str]:
    lines = []
    try:
        import threadpoolctl  # type: ignore[import-not-found]
    except ImportError:
        lines.append("threadpoolctl: not installed (BLAS thread pools not listed)")
    else:
        for pool in threadpoolctl.threadpool_info():
            lines.append(
                f"threadpool: {pool.get('internal_api')} {pool.get('version')} "
                f"threads={pool.get('num_threads')} arch={pool.get('architecture')} "
                f"({os.path.basename(str(pool.get('filepath')))})"
            )
    try:
        cfg = numpy.show_config(mode="dicts")  # numpy >= 1.26
        deps = cfg.get("Build Dependencies", {})
        for key in ("blas", "lapack"):
            d = deps.get(key, {})
            if d:
                lines.append(f"numpy build {key}: {d.get('name')} {d.get('version', '')}")
    except Exception:  # noqa: BLE001 -- purely informational
        pass
    return lines


def print_header() -> None:
    print(
        f"python {platform.python_version()}  numpy {numpy.__version__}  "
        f"chainrule {chainrule.__version__}"
    )
    load = ""
    if hasattr(os, "getloadavg"):
        load = "  load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}  os.cpu_count()={os.cpu_count()}{load}")
    env = {
        k: os.environ[k]
        for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        if k in os.environ
    }
    print("env: " + (", ".join(f"{k}={v}" for k, v in env.items()) or "(no BLAS variables set)"))
    for line in blas_info():
        print(line)
    print()


# ---------------------------------------------------------------------------------------------
# Workload 1: the seed network (4-6-6-6-1, batch 1, float64, MSE)
# ---------------------------------------------------------------------------------------------

SEED_NAMES = ("W1", "W2", "W3", "W4", "B1", "B2", "B3", "B4")


def seed_numpy(
    X: Any, T: Any, W1: Any, W2: Any, W3: Any, W4: Any, B1: Any, B2: Any, B3: Any, B4: Any
) -> tuple[Any, list[Any]]:
    """Hand-written forward + backward; returns (loss, [dW1, dW2, dW3, dW4, dB1..dB4])."""
    Z1 = X @ W1 + B1
    A1 = numpy.maximum(Z1, 0.0)
    Z2 = A1 @ W2 + B2
    A2 = numpy.maximum(Z2, 0.0)
    Z3 = A2 @ W3 + B3
    A3 = numpy.maximum(Z3, 0.0)
    Y = A3 @ W4 + B4
    R = Y - T
    loss = (R * R).mean()
    DY = R * (2.0 / R.size)
    DW4 = A3.T @ DY
    DB4 = DY.sum(axis=0)
    DZ3 = (DY @ W4.T) * (Z3 > 0)
    DW3 = A2.T @ DZ3
    DB3 = DZ3.sum(axis=0)
    DZ2 = (DZ3 @ W3.T) * (Z2 > 0)
    DW2 = A1.T @ DZ2
    DB2 = DZ2.sum(axis=0)
    DZ1 = (DZ2 @ W2.T) * (Z1 > 0)
    DW1 = X.T @ DZ1
    DB1 = DZ1.sum(axis=0)
    return loss, [DW1, DW2, DW3, DW4, DB1, DB2, DB3, DB4]


def seed_forward(
    X: Any, T: Any, W1: Any, W2: Any, W3: Any, W4: Any, B1: Any, B2: Any, B3: Any, B4: Any
) -> Any:
    """The user's forward pass (docs/seed.md), line for line."""
    W = [W1, W2, W3, W4]
    B = [B1, B2, B3, B4]
    Z1 = X.dot(W[0]) + B[0]
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W[1]) + B[1]
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W[2]) + B[2]
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W[3]) + B[3]
    err = ((Y - T) ** 2).mean()
    return err


def seed_workload() -> dict[str, Any]:
    params = [seed_data.PARAMS[n].copy() for n in SEED_NAMES]
    return {
        "name": "seed",
        "title": "seed 4-6-6-6-1, batch 1, f64",
        "inputs": (seed_data.X.copy(), seed_data.T.copy()),
        "params": params,
        "numpy": seed_numpy,
        "forward": seed_forward,
        "rtol": 1e-10,
        "atol": 1e-14,
    }


# ---------------------------------------------------------------------------------------------
# Workload 2: 784-512-512-10 MLP, batch 128, float32, softmax cross-entropy
# ---------------------------------------------------------------------------------------------


def mlp_numpy(
    X: Any, y: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any
) -> tuple[Any, list[Any]]:
    """Hand-written forward + backward; returns (loss, [dW1, dW2, dW3, db1, db2, db3])."""
    n = X.shape[0]
    rows = numpy.arange(n)
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(Z1, 0)
    Z2 = A1 @ W2 + b2
    A2 = numpy.maximum(Z2, 0)
    Z3 = A2 @ W3 + b3
    S = Z3 - Z3.max(axis=1, keepdims=True)  # stable log-softmax
    E = numpy.exp(S)
    SE = E.sum(axis=1, keepdims=True)
    logp = S - numpy.log(SE)
    loss = -logp[rows, y].mean()
    D3 = E / SE  # softmax
    D3[rows, y] -= 1
    D3 /= n  # int divisor: stays float32
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


def mlp_forward(X: Any, y: Any, W1: Any, W2: Any, W3: Any, b1: Any, b2: Any, b3: Any) -> Any:
    """The same forward pass, as one writes it in plain NumPy."""
    n = X.shape[0]
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2 + b2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2 @ W3 + b3
    S = Z3 - Z3.max(axis=1, keepdims=True)
    logp = S - numpy.log(numpy.exp(S).sum(axis=1, keepdims=True))
    return -logp[numpy.arange(n), y].mean()


def mlp_workload(batch: int = 128) -> dict[str, Any]:
    rng = numpy.random.default_rng(0)
    f32 = numpy.float32
    sizes = (784, 512, 512, 10)
    Ws = [
        (rng.standard_normal((a, b)) * numpy.sqrt(2.0 / a)).astype(f32)
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    bs = [numpy.zeros(b, dtype=f32) for b in sizes[1:]]
    X = rng.standard_normal((batch, sizes[0])).astype(f32)
    y = rng.integers(0, sizes[-1], size=batch)
    return {
        "name": "mlp784",
        "title": f"mlp 784-512-512-10, batch {batch}, f32",
        "inputs": (X, y),
        "params": Ws + bs,
        "numpy": mlp_numpy,
        "forward": mlp_forward,
        "rtol": 1e-4,
        "atol": 1e-6,
    }


# ---------------------------------------------------------------------------------------------
# The three ways of running a workload
# ---------------------------------------------------------------------------------------------


def make_steps(w: dict[str, Any], with_jit: bool = False) -> dict[str, Callable[[], Any]]:
    inputs, params = w["inputs"], w["params"]
    hand, forward = w["numpy"], w["forward"]
    n_in = len(inputs)

    def step_numpy() -> Any:
        return hand(*inputs, *params)

    # eager: float inputs become constant tensors (X.dot(W) needs X to be a tensor);
    # integer labels stay plain arrays.
    t_inputs = [chainrule.tensor(a) if a.dtype.kind == "f" else a for a in inputs]
    t_params = [chainrule.tensor(p, requires_grad=True) for p in params]

    def step_eager() -> Any:
        for p in t_params:
            p.grad = None
        loss = forward(*t_inputs, *t_params)
        loss.backward()
        return loss, [p.grad for p in t_params]

    vg = chainrule.value_and_grad(forward, argnums=tuple(range(n_in, n_in + len(params))))

    def step_functional() -> Any:
        value, grads = vg(*inputs, *params)
        return value, list(grads)

    steps = {"numpy": step_numpy, "eager": step_eager, "functional": step_functional}
    if with_jit and hasattr(chainrule, "jit"):
        # for reference: the same value_and_grad, traced once and compiled to plain NumPy
        compiled = chainrule.jit(vg)

        def step_jit() -> Any:
            value, grads = compiled(*inputs, *params)
            return value, list(grads)

        steps["jit"] = step_jit
    return steps


def cross_check(w: dict[str, Any], steps: dict[str, Callable[[], Any]]) -> None:
    ref_loss, ref = steps["numpy"]()
    for kind in steps:
        if kind == "numpy":
            continue
        loss, grads = steps[kind]()
        loss = loss.item() if hasattr(loss, "item") else float(loss)
        numpy.testing.assert_allclose(
            loss, ref_loss, rtol=w["rtol"], err_msg=f"{w['name']}/{kind}: loss"
        )
        assert len(grads) == len(ref)
        for i, (g, r) in enumerate(zip(grads, ref)):
            assert isinstance(g, numpy.ndarray), f"{w['name']}/{kind}: grad {i} is {type(g)}"
            assert g.shape == r.shape and g.dtype == r.dtype, (
                f"{w['name']}/{kind}: grad {i}: {g.shape} {g.dtype} vs {r.shape} {r.dtype}"
            )
            numpy.testing.assert_allclose(
                g, r, rtol=w["rtol"], atol=w["atol"], err_msg=f"{w['name']}/{kind}: grad {i}"
            )


def _minflt() -> int:
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_steps(
    steps: dict[str, Callable[[], Any]], budget_s: float, warmup: int
) -> dict[str, dict[str, float]]:
    """Time per step (seconds) of each variant: median over blocks, in steady state.

    The variants take turns, one block of consecutive steps each (so that drift in clock speed
    or load hits all of them alike), and each block starts with a few untimed steps: the first
    steps after a switch pay for the previous variant's different memory layout (glibc gives
    big freed blocks back to the kernel and the next allocation page-faults them in again),
    which a training loop running one variant does not.  Minor page faults per timed step are
    reported too, so that such effects stay visible.
    """
    for f in steps.values():
        for _ in range(warmup):
            f()
    per = {}
    for k, f in steps.items():
        t0 = time.perf_counter()
        for _ in range(3):
            f()
        per[k] = (time.perf_counter() - t0) / 3
    # block size: about 20 ms of work for the slowest variant
    block = max(3, int(0.020 / max(per.values())))
    settle = max(2, block // 10)
    n_blocks = max(5, int(budget_s / (sum(per.values()) * (block + settle))))
    samples: dict[str, list[float]] = {k: [] for k in steps}
    faults = dict.fromkeys(steps, 0)
    perf = time.perf_counter
    for _ in range(n_blocks):
        for k, f in steps.items():
            for _ in range(settle):
                f()
            f0 = _minflt()
            t0 = perf()
            for _ in range(block):
                f()
            t1 = perf()
            faults[k] += _minflt() - f0
            samples[k].append((t1 - t0) / block)
    out = {}
    for k, v in samples.items():
        q = statistics.quantiles(v, n=4)
        out[k] = {
            "median": statistics.median(v),
            "min": min(v),
            "q1": q[0],
            "q3": q[2],
            "steps": block * len(v),
            "faults": faults[k] / (block * len(v)),
        }
    return out


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:9.1f} µs"
    return f"{seconds * 1e3:9.3f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (a few seconds)")
    ap.add_argument(
        "--only",
        choices=("seed", "mlp784"),
        action="append",
        help="run only this workload (repeatable)",
    )
    ap.add_argument(
        "--no-jit", action="store_true", help="leave out the chainrule.jit reference row"
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        metavar="N",
        help="limit BLAS to N threads (threadpoolctl, else environment + restart)",
    )
    args = ap.parse_args(argv)
    limiter = set_blas_threads(args.blas_threads) if args.blas_threads else None
    print_header()

    workloads = [seed_workload(), mlp_workload()]
    if args.only:
        workloads = [w for w in workloads if w["name"] in args.only]
    budget = {"seed": 1.5, "mlp784": 3.0} if args.quick else {"seed": 15.0, "mlp784": 30.0}
    warmup = {"seed": 200, "mlp784": 3} if args.quick else {"seed": 2000, "mlp784": 10}

    rows = []
    for w in workloads:
        steps = make_steps(w, with_jit=not args.no_jit)
        if "jit" in steps:
            try:
                steps["jit"]()
            except Exception as e:  # noqa: BLE001 -- a reference row only
                print(
                    f"{w['name']}: jit row left out ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:100]})"
                )
                del steps["jit"]
        cross_check(w, steps)
        print(
            f"{w['name']}: gradients of {', '.join(k for k in steps if k != 'numpy')} match "
            f"hand-written NumPy (rtol {w['rtol']:g})"
        )
        res = time_steps(steps, budget[w["name"]], warmup[w["name"]])
        base = res["numpy"]["median"]
        best = res["numpy"]["min"]
        for k, r in res.items():
            rows.append((w["title"], k, r, r["median"] / base, r["min"] / best))

    print()
    head = (
        f"{'workload':36} {'variant':11} {'median/step':>12} {'x numpy':>8} "
        f"{'IQR (blocks)':>23} {'best block':>11} {'x numpy':>8} {'steps':>7} "
        f"{'faults/step':>11}"
    )
    print(head)
    print("-" * len(head))
    last = None
    noisy = False
    for title, k, r, ratio, best_ratio in rows:
        shown = title if title != last else ""
        last = title
        iqr = f"{fmt(r['q1']).strip()}..{fmt(r['q3']).strip()}"
        noisy = noisy or r["q3"] > 1.15 * r["q1"]
        print(
            f"{shown:36} {k:11} {fmt(r['median']):>12} {ratio:7.2f}x {iqr:>23} "
            f"{fmt(r['min']):>11} {best_ratio:7.2f}x {r['steps']:7d} {r['faults']:11.1f}"
        )
    print()
    if noisy:
        print(
            "NOTE: some interquartile ranges are wider than 15%: the machine was busy (other "
            "processes, CPU steal); compare the best-block columns, or run again."
        )
    print("targets: seed eager <= 3x numpy (later <= 2x); mlp784 eager <= 1.10x numpy")
    del limiter
    return 0


def set_blas_threads(n: int) -> Any:
    """Limit the BLAS thread pool to ``n`` threads; returns what keeps the limit alive."""
    try:
        import threadpoolctl
    except ImportError:
        names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        if all(os.environ.get(k) == str(n) for k in names):
            return None  # already restarted with the limit
        for k in names:
            os.environ[k] = str(n)
        # BLAS reads these when it is loaded, which has happened: start again with them
        os.execv(sys.executable, [sys.executable, *sys.argv])
    return threadpoolctl.threadpool_limits(n)


if __name__ == "__main__":
    raise SystemExit(main())
