"""Data-parallel training over MPI, run for real: each test starts ``mpiexec -n 2`` (MPICH's, on
the loopback interface only) with a timeout, and the processes stop with it.

The reference is single-process full-batch training on the same data, computed here; the two
must end with the same weights to 1e-12 (the sums are ordered differently, nothing else)."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy
import pytest

import chainrule as cr

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=str(pathlib.Path(sys.executable).parent))
if MPIEXEC is None:  # pragma: no cover - mpich comes with the test extra
    pytest.skip("mpiexec (the mpich wheel) is not installed", allow_module_level=True)

SRC = pathlib.Path(cr.__file__).resolve().parents[1]


def _run(tmp_path, body: str, n: int = 2, timeout: float = 60.0) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(SRC)!r})\n"
        "import numpy, chainrule as cr\n"
        "import chainrule.distributed as dist\n" + textwrap.dedent(body)
    )
    cmd = [MPIEXEC, "-host", "127.0.0.1", "-iface", "lo", "-n", str(n), sys.executable, str(script)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def _model(seed: int):
    cr.manual_seed(seed)
    return cr.nn.Sequential(cr.nn.Linear(6, 16), cr.nn.Tanh(), cr.nn.Linear(16, 3))


TRAIN = """
rng = numpy.random.default_rng(0)
X = rng.standard_normal((37, 6))
y = rng.integers(0, 3, 37)
cr.manual_seed(dist.rank() + 5)  # different starts: broadcast must make them equal
model = cr.nn.Sequential(cr.nn.Linear(6, 16), cr.nn.Tanh(), cr.nn.Linear(16, 3))
if dist.rank() == 0:
    cr.manual_seed(0)
    start = cr.nn.Sequential(cr.nn.Linear(6, 16), cr.nn.Tanh(), cr.nn.Linear(16, 3))
    for p, q in zip(model.parameters(), start.parameters()):
        p.data = q.data.copy()
opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
hist = dist.fit(model, X, y, cr.nn.functional.cross_entropy, opt, epochs=20,
                batch_size=BATCH, verbose=False)
if dist.rank() == 0:
    import json
    out = {"hist": hist, "params": [p.data.tolist() for p in model.parameters()]}
    open("result.json", "w").write(json.dumps(out))
"""


@pytest.mark.parametrize("batch", [None, 8])
def test_two_processes_train_exactly_as_one_full_batch_process(tmp_path, batch):
    proc = _run(tmp_path, f"BATCH = {batch}\n" + TRAIN)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tmp_path / "result.json").read_text())
    # the same training in this process, one batch at a time, without MPI
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((37, 6))
    y = rng.integers(0, 3, 37)
    model = _model(0)
    opt = cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    order_rng = numpy.random.default_rng(0)
    hist = []
    for _ in range(20):
        order = numpy.arange(37) if batch is None else order_rng.permutation(37)
        size = 37 if batch is None else batch
        total, count = 0.0, 0
        for start in range(0, 37, size):
            b = order[start : start + size]
            opt.zero_grad()
            loss = cr.nn.functional.cross_entropy(model(x[b]), y[b])
            loss.backward()
            opt.step()
            total += float(loss.data)
            count += 1
        hist.append(total / count)
    for p, q in zip(model.parameters(), got["params"]):
        numpy.testing.assert_allclose(numpy.asarray(q), p.data, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(got["hist"], hist, rtol=1e-12)


def test_allreduce_sums_gradients_in_fused_buckets(tmp_path):
    body = """
    ts = [cr.tensor(numpy.full(s, float(dist.rank() + 1)), requires_grad=True)
          for s in [(3,), (2, 2), (5,)]]
    for t in ts:
        t.grad = numpy.full(t.shape, float(dist.rank() + 1)) * numpy.arange(t.size).reshape(t.shape)
    dist.allreduce_gradients(ts, bucket_bytes=40)  # forces several buckets
    want = [3.0 * numpy.arange(t.size).reshape(t.shape) for t in ts]  # (1 + 2) * arange
    assert all(numpy.array_equal(t.grad, w) for t, w in zip(ts, want)), [t.grad for t in ts]
    dist.allreduce_gradients(ts, average=True)  # equal on both now: the mean is the value
    assert all(numpy.array_equal(t.grad, w) for t, w in zip(ts, want))
    open(f"done-{dist.rank()}", "w").write("ok")  # (printing would interleave)
    """
    proc = _run(tmp_path, body)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("done-*")) == ["done-0", "done-1"]


def test_a_failing_process_stops_the_job_with_its_message(tmp_path):
    body = """
    @dist.abort_on_error
    def main():
        if dist.rank() == 1:
            raise ValueError("bad shard on this process")
        dist.barrier()  # rank 0 would wait here forever without the abort
    main()
    """
    proc = _run(tmp_path, body, timeout=30)
    assert proc.returncode != 0
    assert "rank 1: bad shard on this process" in proc.stderr


def test_without_mpiexec_the_world_is_one_process():
    import chainrule.distributed as dist

    assert dist.world_size() == 1 and dist.rank() == 0
    numpy.testing.assert_array_equal(dist.shard(5), numpy.arange(5))


TRAINER = """
rng = numpy.random.default_rng(2)
X = rng.standard_normal((50, 5))
y = rng.integers(0, 3, 50)
cr.manual_seed(0)
model = cr.nn.Sequential(cr.nn.Linear(5, 12), cr.nn.Tanh(), cr.nn.Linear(12, 3))
trainer = cr.Trainer(model, loss="cross_entropy", optimizer=cr.optim.Adam(model.parameters(),
                     lr=0.01), metrics=["accuracy"])
hist = trainer.fit(X, y, epochs=4, batch_size=16, seed=3, verbose=0, distributed=DIST,
                   checkpoint_dir="ck")
if dist.rank() == 0:
    import json
    out = {"loss": hist.history["loss"], "acc": hist.history["accuracy"],
           "params": [p.data.tolist() for p in model.parameters()]}
    open(f"result-{DIST}.json", "w").write(json.dumps(out))
"""


def test_trainer_fit_distributed_equals_one_process(tmp_path):
    two = _run(tmp_path, "DIST = True\n" + TRAINER)
    assert two.returncode == 0, two.stderr
    one = _run(tmp_path, "DIST = False\n" + TRAINER, n=1)
    assert one.returncode == 0, one.stderr
    a = json.loads((tmp_path / "result-True.json").read_text())
    b = json.loads((tmp_path / "result-False.json").read_text())
    numpy.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-12)
    assert a["acc"] == b["acc"]
    for p, q in zip(a["params"], b["params"]):
        numpy.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-12)
    assert (tmp_path / "ck" / "last.ckpt").exists()  # written by process 0


def test_the_command_line_trains_data_parallel_and_writes_once(tmp_path):
    out = tmp_path / "run"
    cmd = [MPIEXEC, "-host", "127.0.0.1", "-iface", "lo", "-n", "2", sys.executable, "-m",
           "chainrule", "train", "--dataset", "iris", "--epochs", "3", "--no-progress",
           "--out", str(out), "--distributed"]  # fmt: skip
    env = {**__import__("os").environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("test accuracy") == 1  # one process speaks
    report = json.loads((out / "metrics.json").read_text())
    assert report["epochs_run"] == 3 and (out / "checkpoints" / "last.ckpt").exists()
