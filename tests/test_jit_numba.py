"""jit(backend="numba"): the NumPy backend's program, compiled by Numba, computes the same numbers.

* Every function of the op list (op_cases.CASES) is either written for Numba or listed in
  FALLBACK with the reason.  Today only ``einsum`` falls back (Numba has no numpy.einsum).
* The gradients of every supported case equal the NumPy backend's to 1e-12 (float64).  Numba
  compiles slowly, so the cases are compiled as a few combined programs (the sum of the cases'
  losses: each case's gradient is untouched by the others), by two worker processes started
  when this module's first test runs, with NUMBA_OPT=0 (LLVM's optimisation level changes no
  result: no fast-math flags are used) and a temporary cache directory.
* A program with an unsupported operation runs on NumPy with exactly one JitFallbackWarning.
* A second process finds the compiled code in the disk cache: its first call is a fraction of
  the cold compilation.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy
import pytest

numba = pytest.importorskip("numba")

from op_cases import CASES  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import seed  # noqa: E402
from chainrule.readers import numba_backend  # noqa: E402

jitmod = importlib.import_module("chainrule.readers.jit")

HERE = os.path.dirname(os.path.abspath(__file__))

# Selecting by a mask computed from values cannot be compiled at all (test_jit.py).
VALUE_DEPENDENT = {"getitem-tensor-mask"}
# lstsq: its residuals exist only at full rank, a value a trace cannot follow (test_jit.py)
VALUE_DEPENDENT |= {"lstsq-vector", "lstsq-matrix", "lstsq-residuals", "lstsq-singular-values"}
VALUE_DEPENDENT |= {"roots"}  # strips zero coefficients: its shape follows the values

# The cases that run on the NumPy backend instead, with the operation and why.
FALLBACK = {
    "einsum-matmul": ("einsum", "Numba has no numpy.einsum"),
    "einsum-implicit": ("einsum", "Numba has no numpy.einsum"),
    "einsum-batch-ellipsis": ("einsum", "Numba has no numpy.einsum"),
    "einsum-trace": ("einsum", "Numba has no numpy.einsum"),
    "einsum-diag": ("einsum", "Numba has no numpy.einsum"),
    "einsum-sum-only": ("einsum", "Numba has no numpy.einsum"),
    "einsum-three": ("einsum", "Numba has no numpy.einsum"),
    "einsum-sublist": ("einsum", "Numba has no numpy.einsum"),
    "einsum-sublist-three-implicit": ("einsum", "Numba has no numpy.einsum"),
    "einsum-sublist-ellipsis": ("einsum", "Numba has no numpy.einsum"),
    "i0": ("i0", "no Numba form for this operation"),
    # numpy.fft and complex values: Numba has neither (the NumPy backend runs them)
    **{
        case: ("real", "no Numba form")
        for case in "fft fft-n-pad-axis0-ortho fft-n-cut-forward ifft ifft-n-pad fft2 ifft2-ortho "
        "fftn-s-axes ifftn rfft rfft-n-odd-axis0 rfft2-forward rfftn-s ihfft".split()
    },
    **{
        case: ("fft.irfftn", "no Numba form")
        for case in "irfft irfft-n-odd-ortho irfft-n-pad irfft2 irfftn-s-axes-forward hfft "
        "hfft-n-ortho".split()
    },
    "power-spectrum": ("fft.rfftn", "dtype complex128"),
    "eigvals-power-sum": ("linalg.eigvals", "dtype complex128"),
    "eig-abs-sum": ("linalg.eig.eigenvalues", "dtype complex128"),
    # eig: no Numba form, and complex values (either is met first, by the program's order)
    "eig-vectors-modulus": ("linalg.eig.eigenvectors", ("no Numba form", "dtype complex128")),
    "eigvals-stack": ("linalg.eigvals", ("no Numba form", "dtype complex128")),
    "eig-vectors-stack": ("linalg.eig.eigenvectors", ("no Numba form", "dtype complex128")),
    # the SVD family, pinv, eigh and the tensor solvers: LAPACK calls Numba does not make here
    **{
        case: (op, "no Numba form")
        for case, op in [
            ("svd-s", "linalg.svd.S"),
            ("svd-s-wide-stack", "linalg.svd.S"),
            ("svd-reconstruct", "linalg.svd.U"),
            ("svd-u-squared", "linalg.svd.U"),
            ("svd-vh-squared-wide", "linalg.svd.U"),
            ("svd-u-modulus", "linalg.svd.U"),
            ("svd-vh-modulus-wide", "linalg.svd.U"),
            ("svd-polar-factor", "linalg.svd.U"),
            ("svd-projector-stack", "linalg.svd.U"),
            ("svd-low-rank-stack", "linalg.svd.U"),
            ("eigh-vectors-modulus", "linalg.eigh.eigenvectors"),
            ("eigh-upper-projector", "linalg.eigh.eigenvalues"),
            ("eig-values-stack", "real"),
            ("cholesky-solve", "linalg.cholesky"),
            ("qr-complete-square", "linalg.qr.Q"),
            ("norm-nuc-axes", "linalg.svd.S"),
            ("pinv-square", "linalg.pinv"),
            ("inv-of-solve", "linalg.solve"),
            ("slogdet-stack", "linalg.logabsdet"),
            ("det-stack-product", "linalg.det"),
            ("cond", "linalg.svd.S"),
            ("cond-fro-stack", "linalg.inv"),
            ("svd-square-full", "linalg.svd.U"),
            ("pinv-tall", "linalg.pinv"),
            ("pinv-wide-stack", "linalg.pinv"),
            ("eigh-upper", "linalg.eigh.eigenvalues"),
            ("eigh-upper-vectors", "linalg.eigh.eigenvectors"),
            ("eigvalsh-upper", "linalg.eigvalsh"),
            ("norm-nuc", "linalg.svd.S"),
            ("norm-2", "linalg.svd.S"),
            ("norm-minus-2", "linalg.svd.S"),
            ("tensorinv", "linalg.inv"),
            ("tensorsolve", "linalg.solve"),
            ("svdvals", "linalg.svd.S"),
            ("matrix_norm-nuc", "linalg.svd.S"),
            ("qr-r-tall", "linalg.qr.R"),
            ("qr-q-tall", "linalg.qr.Q"),
            ("qr-square-product", "linalg.qr.Q"),
            ("qr-wide-stack", "linalg.qr.Q"),
            ("qr-mode-r", "linalg.qr.R"),
            ("qr-complete-r", "linalg.qr.R"),
        ]
    },
    "spectral-convolution": ("fft.rfftn", "dtype complex128"),
    "i0-()": ("i0", "no Numba form for this operation"),
    **{
        case: (op, "no Numba form for this operation")
        for case, op in [
            ("linalg-inv", "linalg.inv"),
            ("linalg-inv-stack", "linalg.inv"),
            ("linalg-solve-vector", "linalg.solve"),
            ("linalg-solve-matrix", "linalg.solve"),
            ("linalg-solve-stack-vector", "linalg.solve"),
            ("linalg-solve-broadcast", "linalg.solve"),
            ("linalg-det", "linalg.det"),
            ("linalg-det-stack", "linalg.det"),
            ("linalg-slogdet", "linalg.logabsdet"),
            ("linalg-slogdet-negative", "linalg.logabsdet"),
            ("linalg-cholesky", "linalg.cholesky"),
            ("linalg-cholesky-stack", "linalg.cholesky"),
            ("linalg-cholesky-upper-ignored", "linalg.cholesky"),
            ("nanmax-axis", "all"),
            ("linalg-eigvalsh", "linalg.eigvalsh"),
            ("linalg-eigh-values", "linalg.eigh.eigenvalues"),
            ("linalg-eigh-vectors", "linalg.eigh.eigenvectors"),
            ("linalg-eigh-upper-ignored", "linalg.eigh.eigenvectors"),
            ("nanmin", "all"),
            ("matrix_power-negative", "linalg.inv"),
            ("partition", "argpartition"),
            ("partition-kths-axis0", "argpartition"),
            ("partition-flat", "argpartition"),
            ("interp", "searchsorted"),
            ("interp-left-right-2d", "searchsorted"),
            ("interp-period", "searchsorted"),
        ]
    },
}

JIT_CASES = [c for c in CASES if c.id not in VALUE_DEPENDENT]
SUPPORTED = [c for c in JIT_CASES if c.id not in FALLBACK]
N_GROUPS = 16  # compiled programs: even groups in one worker, odd in the other
GROUPS = [
    SUPPORTED[i * len(SUPPORTED) // N_GROUPS : (i + 1) * len(SUPPORTED) // N_GROUPS]
    for i in range(N_GROUPS)
]
EXTRA = ["mlp-float32"]  # a float32 network with integer labels (gather/scatter)


def _loss(case):
    # the square gives every rule a cotangent that is not a constant (so nothing is folded away)
    return lambda *a: (case.fun(*a) ** 2).sum()


def _group_step(group):
    sizes = [len(c.inputs) for c in group]

    def total(*xs):
        out, k = 0.0, 0
        for c, n in zip(group, sizes):
            out = out + _loss(c)(*xs[k : k + n])
            k += n
        return out

    return cr.value_and_grad(total, argnums=tuple(range(sum(sizes))))


def _group_inputs(group, trial):
    rng = numpy.random.default_rng(3 + trial)
    return [x + 0.01 * trial * rng.standard_normal(x.shape) for c in group for x in c.inputs]


def _mlp_f32():
    rng = numpy.random.default_rng(0)
    f32 = numpy.float32
    X = rng.standard_normal((16, 8)).astype(f32)
    y = rng.integers(0, 5, size=16)
    W1 = (rng.standard_normal((8, 12)) * 0.4).astype(f32)
    W2 = (rng.standard_normal((12, 5)) * 0.4).astype(f32)
    b1 = numpy.full(12, 0.1, f32)

    def loss(W1, b1, W2, X, y):
        h = numpy.tanh(X @ W1 + b1)
        z = numpy.maximum(h, 0.5 * h) @ W2
        z = z - z.max(axis=1, keepdims=True)
        logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
        return -logp[numpy.arange(len(y)), y].mean() + 1e-3 * (W1 * W1).sum()

    return cr.value_and_grad(loss, argnums=(0, 1, 2)), [W1, b1, W2, X, y]


def _program(name):
    """(value_and_grad function, list of input lists for two trials) of one program."""
    if name == "mlp-float32":
        step, args = _mlp_f32()
        rng = numpy.random.default_rng(5)
        other = [
            a + (0.01 * rng.standard_normal(a.shape)).astype(a.dtype) if a.dtype.kind == "f" else a
            for a in args
        ]
        return step, [args, other]
    group = GROUPS[int(name)]
    return _group_step(group), [_group_inputs(group, 0), _group_inputs(group, 1)]


def _leaves(out):
    value, grads = out
    return [value] + list(grads)


# ---------------------------------------------------------------------------------------------
# Workers (run as ``python test_jit_numba.py --worker OUT NAME...``)
# ---------------------------------------------------------------------------------------------


def _worker(out_path, names):
    report = {}
    arrays = {}
    for name in names:
        step, trials = _program(name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = cr.jit(step, backend="numba")
            t0 = time.perf_counter()
            results = [_leaves(f(*args)) for args in trials]
            seconds = time.perf_counter() - t0
        report[name] = {
            "backends": sorted({c.backend for c in f.cache.values()}),
            "fallback": [c.fallback for c in f.cache.values() if c.fallback],
            "warnings": [str(w.message) for w in caught],
            "seconds": round(seconds, 2),
        }
        for t, leaves in enumerate(results):
            for i, leaf in enumerate(leaves):
                arrays[f"{name}|{t}|{i}"] = numpy.asarray(leaf)
    numpy.savez(out_path + ".npz", **arrays)
    with open(out_path + ".json", "w") as fh:
        json.dump(report, fh)


class _Workers:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="chainrule-numba-test-")
        src = os.path.dirname(os.path.dirname(os.path.abspath(cr.__file__)))
        env = dict(
            os.environ,
            CHAINRULE_CACHE_DIR=os.path.join(self.dir, "cache"),
            NUMBA_OPT="0",
            PYTHONPATH=os.pathsep.join([src, HERE, os.environ.get("PYTHONPATH", "")]),
        )
        halves = [
            [str(i) for i in range(0, N_GROUPS, 2)] + EXTRA,
            [str(i) for i in range(1, N_GROUPS, 2)],
        ]
        self.where = {}
        self.procs = []
        for k, names in enumerate(halves):
            out = os.path.join(self.dir, f"worker{k}")
            for n in names:
                self.where[n] = (k, out)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--worker", out, *names],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        self.loaded = {}

    def result(self, name):
        k, out = self.where[name]
        if k not in self.loaded:
            log, _ = self.procs[k].communicate(timeout=600)
            assert self.procs[k].returncode == 0, f"numba worker {k} failed:\n{log[-4000:]}"
            with open(out + ".json") as fh:
                report = json.load(fh)
            self.loaded[k] = (report, dict(numpy.load(out + ".npz")))
        report, arrays = self.loaded[k]
        return report[name], [
            [arrays[f"{name}|{t}|{i}"] for i in range(_count(arrays, name, t))] for t in range(2)
        ]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)


def _count(arrays, name, t):
    return sum(1 for k in arrays if k.startswith(f"{name}|{t}|"))


@pytest.fixture(scope="module", autouse=True)
def workers():
    w = _Workers()  # compiling in the background while the cheap tests run
    yield w
    w.close()


# ---------------------------------------------------------------------------------------------
# Which cases Numba takes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", JIT_CASES, ids=[c.id for c in JIT_CASES])
def test_every_case_is_written_for_numba_or_listed_as_a_fallback(case):
    n = len(case.inputs)
    step = cr.value_and_grad(_loss(case), argnums=tuple(range(n)))
    prog, _ = jitmod._trace(step, tuple(case.inputs), {}, ())
    if case.id in FALLBACK:
        op, why = FALLBACK[case.id]
        with pytest.raises(numba_backend.Unsupported) as info:
            numba_backend.generate(prog)
        reasons = why if isinstance(why, tuple) else (why,)
        assert info.value.op == op and any(r in info.value.reason for r in reasons)
    else:
        source = numba_backend.generate(prog).source
        assert "def kernel(" in source and "chainrule" in source


# ---------------------------------------------------------------------------------------------
# Same numbers
# ---------------------------------------------------------------------------------------------


def _compare(got, want, rtol, label):
    assert len(got) == len(want), label
    for i, (a, b) in enumerate(zip(got, want)):
        b = numpy.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (
            f"{label}, output {i}: {a.shape} {a.dtype} vs NumPy backend {b.shape} {b.dtype}"
        )
        scale = float(numpy.max(numpy.abs(b))) if b.size else 1.0
        numpy.testing.assert_allclose(
            a, b, rtol=rtol, atol=rtol * max(scale, 1.0), err_msg=f"{label}, output {i}"
        )


def _which(group, i):
    """The case whose input the i-th gradient belongs to (output 0 is the value)."""
    if i == 0:
        return "the value"
    k = i - 1
    for c in group:
        if k < len(c.inputs):
            return f"case {c.id}, gradient {k}"
        k -= len(c.inputs)
    return "?"  # pragma: no cover


@pytest.mark.parametrize("g", range(N_GROUPS), ids=[f"{grp[0].id}..{grp[-1].id}" for grp in GROUPS])
def test_numba_gradients_equal_the_numpy_backend(workers, g):
    report, got = workers.result(str(g))
    assert report["backends"] == ["numba"], report
    assert not report["warnings"], report["warnings"]
    step, trials = _program(str(g))
    reference = cr.jit(step)  # the NumPy backend
    for t, args in enumerate(trials):  # the second trial runs the cached kernel
        want = _leaves(reference(*args))
        assert len(got[t]) == len(want)
        for i, (a, b) in enumerate(zip(got[t], want)):
            _compare([a], [b], 1e-12, f"trial {t}, {_which(GROUPS[g], i)}")


def test_float32_network_with_integer_labels(workers):
    report, got = workers.result("mlp-float32")
    assert report["backends"] == ["numba"] and not report["warnings"], report
    step, trials = _program("mlp-float32")
    reference = cr.jit(step)
    for t, args in enumerate(trials):
        want = _leaves(reference(*args))
        assert all(numpy.asarray(w).dtype == numpy.float32 for w in want)
        _compare(got[t], want, 2e-6, f"float32 trial {t}")


# ---------------------------------------------------------------------------------------------
# Fallback, installation, auto
# ---------------------------------------------------------------------------------------------


def test_an_unsupported_operation_falls_back_with_one_warning():
    def loss(a, b):
        return (numpy.einsum("ij,jk->ik", a, b) ** 2).sum()

    step = cr.value_and_grad(loss, argnums=(0, 1))
    f = cr.jit(step, backend="numba")
    rng = numpy.random.default_rng(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [f(rng.standard_normal((3, 4)), rng.standard_normal((4, 2))) for _ in range(3)]
        results.append(f(rng.standard_normal((5, 4)), rng.standard_normal((4, 2))))
    ours = [w for w in caught if issubclass(w.category, cr.JitFallbackWarning)]
    assert len(ours) == 1 and len(caught) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "einsum" in message and "NumPy backend" in message
    assert issubclass(cr.JitFallbackWarning, UserWarning)
    assert f.cache_info() == {"signatures": 2, "numpy": 2, "numba": 0}
    entry = next(iter(f.cache.values()))
    assert entry.backend == "numpy" and "einsum" in entry.fallback
    rng = numpy.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    v, (da, db) = results[0]
    v2, (da2, db2) = step(a, b)
    assert v == v2
    numpy.testing.assert_array_equal(da, da2)
    numpy.testing.assert_array_equal(db, db2)


def test_backend_numba_without_numba_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # "import numba" now fails
    with pytest.raises(ImportError, match=r'pip install "chainrule\[fast\]"'):
        cr.jit(lambda x: x.sum(), backend="numba")
    monkeypatch.setattr(numba_backend, "available", lambda: False)
    f = cr.jit(cr.grad(lambda x: (x * x).sum()), backend="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quietly NumPy
        numpy.testing.assert_array_equal(f(numpy.ones(3)), 2 * numpy.ones(3))
    assert f.cache_info()["numpy"] == 1


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        cr.jit(lambda x: x, backend="cuda")


@pytest.fixture
def one_blas_thread():
    """Both BLAS libraries (NumPy's, and SciPy's under Numba's numpy.dot) on one thread while
    ``auto`` times its two backends in turn: threads one library leaves spinning after a call
    otherwise slow the other's next call by 10x on a 2-core machine, which a program run on
    one backend only never sees."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg.cython_blas  # noqa: F401, PLC0415 -- loaded, so that it is limited too

    with threadpoolctl.threadpool_limits(1):
        yield


def _slowed(make, seconds):
    """``make`` (jit's _compile_numba or _compile_numpy) whose compiled function sleeps first."""

    def slow_make(*a, **k):
        out = make(*a, **k)
        c = out[0] if isinstance(out, tuple) else out
        if c is not None:
            fun = c.fun

            def slow(*args):
                time.sleep(seconds)
                return fun(*args)

            c.fun = slow
        return out

    return slow_make


@pytest.mark.parametrize("slow", ["numba", "numpy"])
def test_auto_times_both_backends_at_the_first_call_and_keeps_the_faster(
    slow, tmp_path, monkeypatch, one_blas_thread
):
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    name = "_compile_numba" if slow == "numba" else "_compile_numpy"
    monkeypatch.setattr(jitmod, name, _slowed(getattr(jitmod, name), 0.02))
    f = cr.jit(cr.grad(lambda w, x: (numpy.tanh(x @ w) ** 2).sum()), backend="auto")
    w, x = numpy.full(3, 0.1), numpy.ones((2, 3))
    g = f(w, x)
    (entry,) = f.cache.values()
    fast = "numpy" if slow == "numba" else "numba"
    assert entry.backend == fast
    assert entry.timings[slow] >= 0.02 > entry.timings[fast]
    th = numpy.tanh(0.3)
    numpy.testing.assert_allclose(g, 2 * 2 * th * (1 - th * th) * numpy.ones(3), rtol=1e-12)


def test_auto_takes_numba_for_small_products_and_numpy_for_large_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    # the timing at the first call is not under test here: NumPy made slow, Numba wins it
    monkeypatch.setattr(jitmod, "_compile_numpy", _slowed(jitmod._compile_numpy, 0.01))
    f = cr.jit(cr.value_and_grad(lambda w, x: ((x @ w) ** 2).sum()), backend="auto")
    small = f(numpy.ones(3), numpy.ones((2, 3)))
    assert f.cache_info()["numba"] == 1
    # a 512 x 512 x 512 product (2.7e8 floating-point operations) is BLAS-bound: NumPy
    n = 512
    big = f(numpy.eye(n), numpy.ones((n, n)))
    assert f.cache_info() == {"signatures": 2, "numpy": 1, "numba": 1}
    assert jitmod.AUTO_NUMBA_MAX_FLOPS < 2 * n**3
    numpy.testing.assert_allclose(small[1], [12.0] * 3)
    numpy.testing.assert_allclose(big[0], n * n)


def test_auto_times_both_when_large_products_share_the_step_with_elementwise_work(
    tmp_path, monkeypatch, one_blas_thread
):
    # two 6.7e7-FLOP products around a 128 x 512 chain of tanh and arithmetic: the products
    # do not dominate (under AUTO_NUMBA_MAX_FLOP_PER_ELEMENT per element), so both are timed
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jitmod, "_compile_numpy", _slowed(jitmod._compile_numpy, 0.01))

    def loss(w, x):
        h = x @ w
        for _ in range(12):
            h = numpy.tanh(h * 0.5 + 0.25)
        return (h * h).sum()

    n, m = 512, 128
    w = numpy.full((n, n), 1.0 / n)
    x = numpy.ones((m, n))
    prog, _ = jitmod._trace(cr.value_and_grad(loss), (w, x), {}, ())
    flops = jitmod.matmul_flops(prog)
    assert flops > jitmod.AUTO_NUMBA_MAX_FLOPS
    assert flops <= jitmod.AUTO_NUMBA_MAX_FLOP_PER_ELEMENT * jitmod.other_elements(prog)
    f = cr.jit(cr.value_and_grad(loss), backend="auto")
    value, grad = f(w, x)
    (entry,) = f.cache.values()
    assert set(entry.timings) == {"numba", "numpy"}
    assert entry.backend == "numba", entry.timings
    # against the same chain by hand: h is the same in every element
    h = 1.0
    dh = []
    for _ in range(12):
        h = numpy.tanh(h * 0.5 + 0.25)
        dh.append(0.5 * (1 - h * h))
    numpy.testing.assert_allclose(value, m * n * h * h, rtol=1e-10)
    d = 2 * h * numpy.prod(dh)  # d loss / d (x @ w) per element; x is ones
    numpy.testing.assert_allclose(grad, numpy.full((n, n), m * d), rtol=1e-10)


def test_auto_leaves_long_programs_to_numpy_without_compiling_them(tmp_path, monkeypatch):
    # Numba's compile time grows faster than the program: past AUTO_NUMBA_MAX_OPS operations
    # auto does not even try (a 25-step LSTM compiled for 8 minutes)
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))

    def never(*args, **kwargs):
        raise AssertionError("auto compiled a long program with Numba")

    def loss(w, x):
        h = x
        for _ in range(6):  # 6 steps of 3 operations, and their gradients
            h = numpy.tanh(h * w + 1.0)
        return h.sum()

    monkeypatch.setattr(jitmod, "_compile_numba", never)
    monkeypatch.setattr(jitmod, "AUTO_NUMBA_MAX_OPS", 20)
    f = cr.jit(cr.grad(loss), backend="auto")
    w, x = numpy.full(4, 0.5), numpy.linspace(-1, 1, 4)
    g = f(w, x)
    (entry,) = f.cache.values()
    assert entry.backend == "numpy" and entry.n_ops > 20
    numpy.testing.assert_array_equal(g, cr.grad(loss)(w, x))  # the eager path's bits
    # below the limit auto does try Numba (the guard above then fires)
    monkeypatch.setattr(jitmod, "AUTO_NUMBA_MAX_OPS", 10_000)
    with pytest.raises(AssertionError, match="auto compiled"):
        cr.jit(cr.grad(loss), backend="auto")(w, x)


def test_a_float32_mean_of_many_elements_is_as_accurate_as_numpy(tmp_path, monkeypatch):
    # one float32 accumulator along 524,288 squares drifts by ~2e-4 relative; NumPy's pairwise
    # sum stays near 1e-7, and so must the kernel (it accumulates in float64)
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    x = numpy.random.default_rng(0).standard_normal((512, 1024)).astype(numpy.float32)
    exact = ((x.astype(numpy.float64) - 0.5) ** 2).mean()
    for fun in (lambda x: ((x - 0.5) ** 2).mean(), lambda x: ((x - 0.5) ** 2).sum() / x.size):
        got = cr.jit(fun, backend="numba")(x)
        assert got.dtype == numpy.float32
        assert abs(got / exact - 1) < 1e-6, got / exact - 1


@pytest.mark.parametrize(
    "shape, axis",
    [((5, 7, 3), 1), ((4, 6, 5, 2), (1, 2)), ((3, 4, 5, 6), 2), ((2, 9, 4), (1,))],
)
def test_sums_over_middle_axes_and_of_negated_arrays_are_numpys_without_copies(
    shape, axis, tmp_path, monkeypatch
):
    # a run of middle axes is summed in place (_rsum_mid), in the order of a sum along a
    # transposed copy; values, a mean, an integer count, and the gradient of a broadcast (the
    # sum a pairwise difference x[:, None] - x[None] needs) against NumPy
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal(shape)
    f = cr.jit(
        lambda x: (x.sum(axis=axis), x.mean(axis=axis), (x > 0).sum(axis=axis)), backend="numba"
    )
    for got, want in zip(f(x), (x.sum(axis=axis), x.mean(axis=axis), (x > 0).sum(axis=axis))):
        assert got.dtype == want.dtype and got.shape == want.shape
        numpy.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    assert "_rsum_mid" in f.source(x)
    p = rng.standard_normal((6, 3))

    def energy(p):
        d = p[:, None, :] - p[None, :, :]
        return ((d * d).sum(axis=-1) ** 2).sum()

    # d/dp energy = sum_j 8 r2_ij (p_i - p_j) (hand-derived: both terms of the pair)
    d = p[:, None, :] - p[None, :, :]
    r2 = (d * d).sum(-1)
    want = 8 * (r2[:, :, None] * d).sum(axis=1)
    g = cr.jit(cr.grad(energy), backend="numba")
    numpy.testing.assert_allclose(g(p), want, rtol=1e-12)
    # p[None]'s share of the gradient is summed, then negated (the eager walk's order, on the
    # small array): no negated copy of the large one; the eager path's bits
    src = g.source(p)
    assert "_rsum_mid" in src and "-_rsum_first(" in src and "_rsum_first_neg" not in src
    numpy.testing.assert_array_equal(g(p), cr.grad(energy)(p))


def test_shapes_dtypes_and_layouts_reach_the_right_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    f = cr.jit(cr.value_and_grad(lambda x: (x * x).sum() * 0.5), backend="numba")
    v, g = f(numpy.arange(3.0))
    assert v == 2.5 and g.tolist() == [0.0, 1.0, 2.0]
    v, g = f(numpy.arange(4.0))  # new shape: a second kernel
    assert v == 7.0 and g.shape == (4,)
    v, g = f(numpy.arange(3.0))  # back to the first one
    assert v == 2.5
    v, g = f(numpy.arange(3.0, dtype=numpy.float32))  # new dtype: a third
    assert g.dtype == numpy.float32 and v.dtype == numpy.float32 and v == 2.5
    x = numpy.arange(6.0)[::2]  # not contiguous: copied, same kernel
    v, g = f(x)
    assert v == 0.5 * (0 + 4 + 16) and g.tolist() == [0.0, 2.0, 4.0]
    assert f.cache_info() == {"signatures": 3, "numpy": 0, "numba": 3}
    with pytest.raises(TypeError):
        f([1.0, 2.0])  # lists are not arrays


# ---------------------------------------------------------------------------------------------
# The disk cache, across processes
# ---------------------------------------------------------------------------------------------

FIRST_CALL = """
import json, time, sys
import numpy, numba                      # imported before the clock starts
import chainrule as cr
from chainrule import seed
step = cr.jit(cr.value_and_grad(seed.forward, argnums=tuple(range(2, 10))), backend="numba")
t0 = time.perf_counter()
value, grads = step(seed.X, seed.T, *seed.PARAMS.values())
first = time.perf_counter() - t0
entry = next(iter(step.cache.values()))
print(json.dumps({"first": first, "backend": entry.backend, "value": float(value),
                  "dw1": grads[0].tolist()}))
"""


def test_a_second_process_reuses_the_disk_cache(tmp_path):
    src = os.path.dirname(os.path.dirname(os.path.abspath(cr.__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(
        CHAINRULE_CACHE_DIR=str(tmp_path),
        PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    )

    def run():
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold = run()
    files = sorted(os.listdir(tmp_path))
    assert any(f.startswith("cr_") and f.endswith(".py") for f in files), files
    assert any(f.endswith(".nbi") for f in os.listdir(tmp_path / "__pycache__"))
    warm = run()
    assert cold["backend"] == warm["backend"] == "numba"
    assert warm["value"] == cold["value"] and warm["dw1"] == cold["dw1"]
    eager = cr.value_and_grad(seed.forward, argnums=2)(*_seed_args())[0]
    assert math.isclose(cold["value"], float(eager), rel_tol=1e-12)
    # the cold call compiles (seconds); the warm one loads the machine code
    assert warm["first"] < 0.25 * cold["first"], (cold["first"], warm["first"])


def _seed_args():
    return (seed.X, seed.T, *seed.PARAMS.values())


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--worker":
    _worker(sys.argv[2], sys.argv[3:])


def test_rows_read_by_one_index_element_in_a_loop_compile_for_numba():
    # W[idx[b]]: a 0-d index (Numba reads it as a scalar) for the read and its scatter
    def loss(W, idx):
        total = 0.0
        for b in range(len(idx)):
            total = total + (W[idx[b]] ** 2).sum()
        return total

    W, idx = numpy.arange(12.0).reshape(4, 3), numpy.array([2, 0, 2])
    f = cr.jit(cr.value_and_grad(loss), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error", cr.JitFallbackWarning)
        value, grad = f(W, idx)
    assert next(iter(f.cache.values())).backend == "numba"
    # by hand: the sum of squares of rows 2, 0, 2; its gradient 2 W[r] per read of row r
    assert value == (W[2] ** 2).sum() * 2 + (W[0] ** 2).sum()
    want = numpy.zeros_like(W)
    want[2], want[0] = 4 * W[2], 2 * W[0]
    numpy.testing.assert_array_equal(grad, want)
    other = numpy.array([-1, 1, 3])  # a negative index wraps as NumPy's does
    numpy.testing.assert_allclose(f(W, other)[1], cr.grad(loss)(W, other), rtol=1e-15)


def test_whole_powers_equal_the_eager_path_bit_for_bit():
    # float32 x ** n is multiplied out in float64 and rounded once, in fused loops and in a loop
    # of its own alike: the powers and their gradients (5 x ** 4 w: another whole power) are
    # the eager path's bit for bit, negative values included (before: Numba's pow per element,
    # a unit off for some values, 4x slower). Sums are left out: Numba's add in another order.
    # float64 powers are Numba's repeated multiplications: the eager values to rounding
    rng = numpy.random.default_rng(11)

    def powers(x, w):
        return 0.044715 * x**3 + x**-3 * w, (x * w) ** 5

    def grad_of(x, w):
        return cr.grad(lambda x: ((x * w) ** 5).sum() + (x**-4 * w).sum())(x)

    for dtype, n in ((numpy.float32, 3000), (numpy.float32, 40), (numpy.float64, 3000)):
        x = (rng.standard_normal(n) * 2 + 0.1).astype(dtype)
        w = rng.standard_normal(n).astype(dtype)
        eager = [numpy.asarray(t) for t in powers(cr.tensor(x), w)], grad_of(x, w)
        for f, want in zip((powers, grad_of), eager):
            fast = cr.jit(f, backend="numba")
            got = fast(x, w)
            src = fast.source(x, w)
            assert ("_wide_power_" in src) == (dtype == numpy.float32)
            for a, b in zip(numpy.atleast_2d(got), numpy.atleast_2d(want)):
                assert a.dtype == b.dtype
                if dtype == numpy.float32:
                    assert a.tobytes() == b.tobytes()
                else:
                    numpy.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * abs(b).max())
    # and the float32 values are the correctly rounded cubes (exact rational arithmetic)
    from fractions import Fraction

    x = (rng.standard_normal(64) * 3).astype(numpy.float32)
    got = cr.jit(lambda x: x**3, backend="numba")(x)
    for g, v in zip(got, x):
        e = Fraction(float(v)) ** 3
        assert abs(Fraction(float(g)) - e) <= Fraction(float(numpy.spacing(numpy.abs(g)))) / 2


def test_a_loop_unrolled_in_python_writes_its_fused_helper_once(tmp_path, monkeypatch):
    # an Elman step repeated 6 times: the same fused loop each step, one function in the module
    # (Numba compiles each function on its own); the gradients the eager path's and the
    # NumPy backend's, checked against central differences
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    rng = numpy.random.default_rng(8)
    X, Wx, Wh = (
        rng.standard_normal((6, 16, 8)),
        rng.standard_normal((8, 32)) / 3,
        rng.standard_normal((32, 32)) / 6,
    )

    def loss(Wx, Wh):
        h = numpy.tanh(X[0] @ Wx)
        for t in range(1, X.shape[0]):
            h = numpy.tanh(X[t] @ Wx + h @ Wh)
        return (h * h).sum()

    g = cr.jit(cr.grad(loss, argnums=(0, 1)), backend="numba")
    got = g(Wx, Wh)
    src = g.source(Wx, Wh)
    adds = [line for line in src.splitlines() if line.startswith("def _fz")]
    assert len(adds) < 6 and src.count("_fz") > 6  # fewer helpers than the steps that call them
    eager = cr.grad(loss, argnums=(0, 1))(Wx, Wh)
    for a, b in zip(got, eager):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    d = rng.standard_normal(Wh.shape)
    fd = (loss(Wx, Wh + 1e-6 * d) - loss(Wx, Wh - 1e-6 * d)) / 2e-6
    numpy.testing.assert_allclose((got[1] * d).sum(), fd, rtol=1e-6)


def test_messages_gathered_and_summed_at_their_targets_compile_for_numba():
    # H[src] gathered, numpy.add.at into zeros_like(H), twice: the backward reads a whole
    # array as x[...], which Numba cannot index with (it is x itself)
    def loss(W, H, src, dst):
        for _ in range(2):
            agg = numpy.zeros_like(H)
            numpy.add.at(agg, dst, numpy.tanh(H[src] @ W))
            H = numpy.tanh(agg + H)
        return (H.mean(axis=0) ** 2).sum()

    rng = numpy.random.default_rng(3)
    W, H = rng.standard_normal((4, 4)) * 0.3, rng.standard_normal((9, 4))
    src, dst = rng.integers(0, 9, 20), rng.integers(0, 9, 20)
    f = cr.jit(cr.value_and_grad(loss), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error", cr.JitFallbackWarning)
        value, grad = f(W, H, src, dst)
    assert next(iter(f.cache.values())).backend == "numba"
    want_value, want = cr.value_and_grad(loss)(W, H, src, dst)
    assert value == pytest.approx(float(want_value), rel=1e-13)
    numpy.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-14)
    e = numpy.zeros_like(W)
    e[1, 2] = 1e-6  # and one entry by central differences
    fd = (loss(W + e, H, src, dst) - loss(W - e, H, src, dst)) / 2e-6
    assert grad[1, 2] == pytest.approx(fd, rel=1e-6)


def test_a_close_race_at_the_first_call_is_run_longer(monkeypatch):
    # a fake clock: Numba's first five calls take 1.25 ms (a busy machine), then 1.0 ms;
    # NumPy's 1.1 ms. Five rounds would keep NumPy; a close race runs on and finds Numba
    import types  # noqa: PLC0415

    now = [0.0]
    calls = {"numba": 0, "numpy": 0}

    def timed(backend, cost):
        def run(*_):
            calls[backend] += 1
            now[0] += cost(calls[backend])

        return types.SimpleNamespace(backend=backend, fun=run, timings=None)

    numba_c = timed("numba", lambda k: 1.25e-3 if k <= 5 else 1.0e-3)
    numpy_c = timed("numpy", lambda k: 1.1e-3)
    monkeypatch.setattr(jitmod, "_clock", lambda: now[0])
    winner = jitmod._faster(numba_c, numpy_c, [])
    assert winner is numba_c and calls["numba"] > 5
    # a clear winner after five rounds stops there
    calls.update(numba=0, numpy=0)
    numba_c = timed("numba", lambda k: 3e-3)
    assert jitmod._faster(numba_c, numpy_c, []) is numpy_c and calls["numba"] == 5
