"""Data-parallel throughput over MPI: a compute-bound MLP step on 1 and 2 processes, and the time
of one in-place Allreduce against the gradient's size.

    python benchmarks/distributed.py            # starts mpiexec itself (loopback only)

Needs ``pip install ".[mpi]"``. Prints examples per second for each process count and the
speed-up, then allreduce times. One BLAS thread per process, so two processes use two cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time, numpy
sys.path.insert(0, SRC)
import chainrule as cr, chainrule.distributed as dist
from mpi4py import MPI
comm = MPI.COMM_WORLD
cr.manual_seed(0)
model = cr.nn.Sequential(cr.nn.Linear(256, 512), cr.nn.ReLU(), cr.nn.Linear(512, 512),
                         cr.nn.ReLU(), cr.nn.Linear(512, 10))
opt = cr.optim.SGD(model.parameters(), lr=0.01)
rng = numpy.random.default_rng(1)
X = rng.standard_normal((1024, 256)); y = rng.integers(0, 10, 1024)
mine = dist.shard(len(X))
def step():
    opt.zero_grad()
    loss = cr.nn.functional.cross_entropy(model(X[mine]), y[mine]) * (len(mine) / len(X))
    loss.backward()
    dist.allreduce_gradients(model)
    opt.step()
for _ in range(3): step()
comm.Barrier(); t0 = time.perf_counter(); steps = 20
for _ in range(steps): step()
comm.Barrier(); dt = time.perf_counter() - t0
res = {"examples_per_s": steps * len(X) / dt}
sizes = [2**k for k in range(10, 25, 2)]
times = []
for n in sizes:
    buf = numpy.ones(n)
    comm.Barrier(); t0 = time.perf_counter()
    for _ in range(5): comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    times.append((time.perf_counter() - t0) / 5)
res["allreduce"] = list(zip(sizes, times))
if comm.Get_rank() == 0: print(json.dumps(res))
"""


def main() -> None:
    mpiexec = shutil.which("mpiexec", path=str(pathlib.Path(sys.executable).parent))
    if mpiexec is None:
        sys.exit('benchmarks/distributed.py needs mpiexec: pip install ".[mpi]"')
    src = str(pathlib.Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    results = {}
    for n in (1, 2):
        code = f"SRC = {src!r}\n" + WORKER
        cmd = [
            mpiexec,
            "-host",
            "127.0.0.1",
            "-iface",
            "lo",
            "-n",
            str(n),
            sys.executable,
            "-c",
            code,
        ]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        if out.returncode != 0:
            sys.exit(out.stderr)
        results[n] = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{n} process(es): {results[n]['examples_per_s']:9.0f} examples/s "
            f"({time.perf_counter() - t0:.1f} s with start-up)"
        )
    speedup = results[2]["examples_per_s"] / results[1]["examples_per_s"]
    print(f"speed-up on 2 processes: {speedup:.2f}x")
    print("Allreduce (2 processes, float64, in place): elements -> time")
    for size, t in results[2]["allreduce"]:
        print(f"  {size:>10d}  {t * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
