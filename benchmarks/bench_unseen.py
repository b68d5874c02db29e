"""Workloads chainrule was not tuned for (issue 16), against a hand-written NumPy step.

Workloads (one training step: loss and the gradient of every parameter):

* ``glm``  logistic regression + L2 on a tall matrix, 20000x100, float64;
* ``rnn``  Elman RNN unrolled in a Python loop that reads ``X[t]``, 50 steps, batch 16,
           hidden 32, float64, MSE on the last state's readout;
* ``gp``   Gaussian-process negative log-likelihood, RBF kernel, 300 points, float64
           (``solve`` and ``slogdet`` of the kernel matrix);
* ``lj``   Lennard-Jones pair energy of 200 particles, float64.

Rows: ``numpy`` (forward + backward by hand, the reference), ``eager``
(``chainrule.value_and_grad``), ``jit`` (``chainrule.jit`` of it, NumPy backend), ``jit-numba``
and ``jit-auto`` (the Numba backend, and ``backend="auto"``), ``jax`` (``jax.jit`` of
``jax.value_and_grad`` of the same forward pass in ``jax.numpy``, float64, one XLA thread).
Every row's loss and gradients are checked against the hand-written ones first (rtol 1e-8).
Each row runs in its own process (this file with ``--worker``), 1 BLAS thread; the rows take
turns running timed blocks, and the table prints the median time per step and its ratio to
``numpy``.

Run from the repository root::

    PYTHONPATH=src python3 benchmarks/bench_unseen.py [--rounds 7] [--workloads glm,rnn]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))
WORKLOADS = ("glm", "rnn", "gp", "lj")
IMPLS = ("numpy", "eager", "jit", "jit-numba", "jit-auto", "jax")
JAX_WORKLOADS = ("glm", "rnn", "gp", "lj")  # those with a jax.numpy version (jax_step)
LAM = 1e-3


def data(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a workload, from ``default_rng(0)``."""
    rng = numpy.random.default_rng(0)
    if name == "glm":
        X = rng.standard_normal((20000, 100))
        y = (rng.random(20000) < 0.5).astype(numpy.float64)
        return [X, y], [rng.standard_normal(100) * 0.1]
    if name == "rnn":
        X = rng.standard_normal((50, 16, 8))
        T = rng.standard_normal((16, 1))
        Wx = rng.standard_normal((8, 32)) * 0.3
        Wh = rng.standard_normal((32, 32)) * 0.15
        Wo = rng.standard_normal((32, 1)) * 0.3
        return [X, T], [Wx, Wh, Wo]
    if name == "gp":
        x = numpy.sort(rng.random(300) * 10.0)
        y = numpy.sin(x) + 0.1 * rng.standard_normal(300)
        D2 = (x[:, None] - x[None, :]) ** 2
        return [D2, y], [numpy.array(0.0), numpy.array(0.0), numpy.array(-2.0)]
    if name == "lj":
        g = numpy.stack(numpy.meshgrid(*[numpy.arange(6.0)] * 3, indexing="ij"), -1)
        P = g.reshape(-1, 3)[:200] * 1.12 + 0.03 * rng.standard_normal((200, 3))
        mask = numpy.triu(numpy.ones((200, 200)), 1)
        return [mask, numpy.eye(200)], [P]
    raise ValueError(name)


# ---- the forward passes, as one writes them in plain NumPy (they also run on chainrule tensors)


def glm_loss(w: Any, X: Any, y: Any) -> Any:
    z = X @ w
    nll = numpy.maximum(z, 0) + numpy.log1p(numpy.exp(-numpy.abs(z))) - y * z
    return nll.mean() + LAM * (w * w).sum()


def rnn_loss(Wx: Any, Wh: Any, Wo: Any, X: Any, T: Any) -> Any:
    h = numpy.tanh(X[0] @ Wx)
    for t in range(1, X.shape[0]):
        h = numpy.tanh(X[t] @ Wx + h @ Wh)
    return ((h @ Wo - T) ** 2).mean()


def gp_loss(log_l: Any, log_s: Any, log_n: Any, D2: Any, y: Any) -> Any:
    n = y.shape[0]
    K = numpy.exp(log_s) * numpy.exp(-0.5 * D2 * numpy.exp(-2.0 * log_l))
    K = K + numpy.exp(log_n) * numpy.eye(n)
    alpha = numpy.linalg.solve(K, y)
    return 0.5 * (y @ alpha) + 0.5 * numpy.linalg.slogdet(K)[1]


def lj_loss(P: Any, mask: Any, eye: Any) -> Any:
    diff = P[:, None, :] - P[None, :, :]
    r2 = (diff * diff).sum(axis=-1) + eye
    inv3 = r2**-3
    return (mask * 4.0 * (inv3 * inv3 - inv3)).sum()


FORWARD: dict[str, Callable[..., Any]] = {
    "glm": glm_loss,
    "rnn": rnn_loss,
    "gp": gp_loss,
    "lj": lj_loss,
}


# ---- hand-written forward + backward


def glm_numpy(w: Any, X: Any, y: Any) -> tuple[Any, list[Any]]:
    z = X @ w
    loss = (numpy.logaddexp(0.0, z) - y * z).mean() + LAM * (w @ w)
    r = 1.0 / (1.0 + numpy.exp(-z))
    r -= y
    return loss, [X.T @ r / z.size + 2.0 * LAM * w]


def rnn_numpy(Wx: Any, Wh: Any, Wo: Any, X: Any, T: Any) -> tuple[Any, list[Any]]:
    hs = [numpy.tanh(X[0] @ Wx)]
    for t in range(1, X.shape[0]):
        hs.append(numpy.tanh(X[t] @ Wx + hs[-1] @ Wh))
    h = hs[-1]
    R = h @ Wo - T
    loss = (R * R).mean()
    dY = R * (2.0 / R.size)
    dWo = h.T @ dY
    dh = dY @ Wo.T
    dWx = numpy.zeros_like(Wx)
    dWh = numpy.zeros_like(Wh)
    for t in range(X.shape[0] - 1, -1, -1):
        dz = dh * (1.0 - hs[t] * hs[t])
        dWx += X[t].T @ dz
        if t:
            dWh += hs[t - 1].T @ dz
            dh = dz @ Wh.T
    return loss, [dWx, dWh, dWo]


def gp_numpy(log_l: Any, log_s: Any, log_n: Any, D2: Any, y: Any) -> tuple[Any, list[Any]]:
    n = y.shape[0]
    Kse = numpy.exp(log_s) * numpy.exp(-0.5 * D2 * numpy.exp(-2.0 * log_l))
    K = Kse + numpy.exp(log_n) * numpy.eye(n)
    L = numpy.linalg.cholesky(K)
    Kinv = numpy.linalg.inv(L)
    Kinv = Kinv.T @ Kinv
    alpha = Kinv @ y
    loss = 0.5 * (y @ alpha) + numpy.log(numpy.diagonal(L)).sum()
    G = 0.5 * (Kinv - numpy.outer(alpha, alpha))  # d loss / d K
    GK = G * Kse
    return loss, [
        numpy.array((GK * D2).sum() * numpy.exp(-2.0 * log_l)),
        numpy.array(GK.sum()),
        numpy.array(numpy.trace(G) * numpy.exp(log_n)),
    ]


def lj_numpy(P: Any, mask: Any, eye: Any) -> tuple[Any, list[Any]]:
    diff = P[:, None, :] - P[None, :, :]
    r2 = numpy.einsum("ijk,ijk->ij", diff, diff) + eye
    inv3 = r2**-3
    loss = (mask * 4.0 * (inv3 * inv3 - inv3)).sum()
    g = mask * 4.0 * (3.0 * inv3 - 6.0 * inv3 * inv3) / r2  # d loss / d r2
    G = g + g.T
    return loss, [2.0 * (G.sum(axis=1)[:, None] * P - G @ P)]


BY_HAND: dict[str, Callable[..., Any]] = {
    "glm": glm_numpy,
    "rnn": rnn_numpy,
    "gp": gp_numpy,
    "lj": lj_numpy,
}


def step_fn(impl: str, name: str, nparams: int) -> Callable[..., Any]:
    """One training step of ``impl``: params..., constants... -> (loss, [grads])."""
    if impl == "numpy":
        return BY_HAND[name]
    import chainrule  # noqa: PLC0415 -- workers only

    if impl == "jax":
        return jax_step(name, nparams)
    vg = chainrule.value_and_grad(FORWARD[name], argnums=tuple(range(nparams)))
    if impl.startswith("jit"):
        vg = chainrule.jit(vg, backend={"jit": "numpy"}.get(impl, impl[4:]))
    return vg


def jax_step(name: str, nparams: int) -> Callable[..., Any]:
    """``jax.jit(jax.value_and_grad(...))`` of the same forward pass, written with jax.numpy
    (float64 enabled); the step waits for its results."""
    # one thread, as the other rows (XLA's CPU thread pool ignores OPENBLAS_NUM_THREADS)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    import jax  # noqa: PLC0415 -- the jax worker only

    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    if name == "glm":

        def loss(w: Any, X: Any, y: Any) -> Any:
            z = X @ w
            nll = jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z))) - y * z
            return nll.mean() + LAM * (w * w).sum()

    elif name == "rnn":

        def loss(Wx: Any, Wh: Any, Wo: Any, X: Any, T: Any) -> Any:
            h = jnp.tanh(X[0] @ Wx)
            for t in range(1, X.shape[0]):
                h = jnp.tanh(X[t] @ Wx + h @ Wh)
            return ((h @ Wo - T) ** 2).mean()

    elif name == "gp":

        def loss(log_l: Any, log_s: Any, log_n: Any, D2: Any, y: Any) -> Any:
            n = y.shape[0]
            K = jnp.exp(log_s) * jnp.exp(-0.5 * D2 * jnp.exp(-2.0 * log_l))
            K = K + jnp.exp(log_n) * jnp.eye(n)
            alpha = jnp.linalg.solve(K, y)
            return 0.5 * (y @ alpha) + 0.5 * jnp.linalg.slogdet(K)[1]

    elif name == "lj":

        def loss(P: Any, mask: Any, eye: Any) -> Any:
            diff = P[:, None, :] - P[None, :, :]
            r2 = (diff * diff).sum(axis=-1) + eye
            inv3 = r2**-3
            return (mask * 4.0 * (inv3 * inv3 - inv3)).sum()

    else:
        raise SystemExit(f"no JAX version of {name}")
    f = jax.jit(jax.value_and_grad(loss, argnums=tuple(range(nparams))))

    def step(*args: Any) -> Any:
        return jax.block_until_ready(f(*args))

    return step


def worker(impl: str, name: str) -> None:
    """Check, then answer "run N" requests on stdin with the seconds per step."""
    consts, params = data(name)
    step = step_fn(impl, name, len(params))
    ref_loss, ref_grads = BY_HAND[name](*params, *consts)
    if impl == "jax":  # on the device (the CPU) once, as a JAX user keeps them
        import jax  # noqa: PLC0415 -- the jax worker only

        consts, params = [jax.device_put(c) for c in consts], [jax.device_put(p) for p in params]
    loss, grads = step(*params, *consts)
    if impl == "jit-auto":
        (chosen,) = step.cache.values()  # type: ignore[attr-defined]
        print(f"[{name}: backend='auto' chose {chosen.backend}]", file=sys.stderr, flush=True)
    numpy.testing.assert_allclose(loss, ref_loss, rtol=1e-8)
    for g, r in zip(grads, ref_grads):
        numpy.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-10 * numpy.abs(r).max())
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 0.3:
        step(*params, *consts)
        n += 1
    per = (time.perf_counter() - t0) / n
    reps = max(1, int(0.05 / per))
    print(f"ok {reps}", flush=True)
    for _line in sys.stdin:
        for _ in range(2):
            step(*params, *consts)
        t0 = time.perf_counter()
        for _ in range(reps):
            step(*params, *consts)
        print((time.perf_counter() - t0) / reps, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"))
    a = ap.parse_args()
    if a.worker:
        worker(*a.worker)
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    impls = ["numpy"] + [i for i in a.impls.split(",") if i != "numpy"]
    if "jax" in impls and importlib.util.find_spec("jax") is None:
        print("(jax is not installed: no jax row)")
        impls.remove("jax")
    print(f"{'':8}" + "".join(f"{i:>22}" for i in impls))
    for name in a.workloads.split(","):
        procs = {}
        for impl in impls:
            if impl == "jax" and name not in JAX_WORKLOADS:
                continue  # no jax.numpy version of this workload: n/a
            p = subprocess.Popen(
                [sys.executable, __file__, "--worker", impl, name],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert p.stdout is not None and p.stdin is not None
            head = p.stdout.readline()
            if not head.startswith("ok"):
                raise SystemExit(f"{impl} on {name}: gradient check failed (see above)")
            procs[impl] = p
        times: dict[str, list[float]] = {i: [] for i in impls}
        for _ in range(a.rounds):
            for impl, p in procs.items():
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write("run\n")
                p.stdin.flush()
                times[impl].append(float(p.stdout.readline()))
        for p in procs.values():
            assert p.stdin is not None
            p.stdin.close()
            p.wait()
        base = statistics.median(times["numpy"])
        cells = []
        for impl in impls:
            if impl not in procs:
                cells.append("n/a")
                continue
            med = statistics.median(times[impl])
            cells.append(f"{med * 1e3:9.3f} ms {med / base:6.2f}x")
        print(f"{name:8}" + "".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
