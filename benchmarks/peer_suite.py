"""HIPS autograd's own test suite, run unchanged on chainrule through a thin adapter.

The adapter is a package named ``autograd`` written into a temporary folder: each of autograd's
public names (``grad``, ``make_vjp``, ``jacobian``, ``hessian_tensor_product``, ...) is one or
two lines over chainrule's public API, ``autograd.test_util.check_grads`` is
``chainrule.check_grads`` (first and second order), and ``autograd.numpy`` is either NumPy
itself (``--namespace numpy``: what user code that imports NumPy gets) or ``chainrule.numpy``
(``--namespace chainrule``: the namespace in which lists of tensors keep the gradient). The
tests are autograd's, unchanged, from a checkout of its repository (nothing of it is copied
here).

Run from the repository root (pytest and autograd's test dependencies in the environment)::

    git clone https://github.com/HIPS/autograd /tmp/autograd
    PYTHONPATH=src python3 benchmarks/peer_suite.py /tmp/autograd/tests [--namespace numpy]

It prints passed/failed per test file and the share passed, for the systematic files (the
operations: the figure issues 14 and 15 quote) and for those plus the transform files.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

SYSTEMATIC = ["test_binary_ops.py", "test_complex.py", "test_fft.py", "test_linalg.py",
              "test_numpy.py", "test_scalar_ops.py", "test_systematic.py"]  # fmt: skip
TRANSFORMS = ["test_graphs.py", "test_jacobian.py", "test_truediv.py", "test_direct.py",
              "test_wrappers.py", "test_ufunc_dispatch.py"]  # fmt: skip

ADAPTER = """
import numpy as _np
import chainrule as _cr


def _fix(fun, args, argnum):
    return lambda x: fun(*args[:argnum], x, *args[argnum + 1:])


def grad(fun, argnum=0):
    return _cr.grad(fun, argnums=argnum)


def value_and_grad(fun, argnum=0):
    return _cr.value_and_grad(fun, argnums=argnum)


def jacobian(fun, argnum=0):
    return _cr.jacobian(fun, argnums=argnum)


def hessian(fun, argnum=0):
    return _cr.hessian(fun, argnums=argnum)


def grad_and_aux(fun, argnum=0):
    return _cr.grad(fun, argnums=argnum, has_aux=True)


def make_vjp(fun, argnum=0):
    def at(*args):
        ans, pull = _cr.vjp(_fix(fun, args, argnum), args[argnum])
        return (lambda g: pull(g)[0]), ans
    return at


def make_jvp(fun, argnum=0):
    return lambda *args: (lambda v: _cr.jvp(_fix(fun, args, argnum), (args[argnum],), (v,)))


def elementwise_grad(fun, argnum=0):
    def at(*args):
        vjp, ans = make_vjp(fun, argnum)(*args)
        return vjp(_np.ones_like(_np.asarray(ans)))
    return at


def deriv(fun, argnum=0):
    return lambda *args: make_jvp(fun, argnum)(*args)(_np.ones_like(args[argnum]))[1]


def holomorphic_grad(fun, argnum=0):
    return _cr.grad(lambda *a: _np.real(fun(*a)), argnums=argnum)


def make_hvp(fun, argnum=0):
    return make_vjp(grad(fun, argnum), argnum)


def hessian_tensor_product(fun, argnum=0):
    g = grad(fun, argnum)
    return grad(lambda *a: _np.tensordot(g(*a[:-1]), a[-1], _np.ndim(a[-1])), argnum)


hessian_vector_product = hessian_tensor_product


def tensor_jacobian_product(fun, argnum=0):
    return jacobian(lambda *a: _np.tensordot(a[-1], fun(*a[:-1]), axes=_np.ndim(a[-1])), argnum)


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f, g=lambda x: 1.0 / 2 * _np.sum(x**2, axis=-1), f_argnum=0):
    def at(*args):
        f_vjp, f_x = make_vjp(f, f_argnum)(*args)
        g_hvp, _ = make_vjp(grad(g))(f_x)
        return lambda v: f_vjp(g_hvp(make_jvp(f, f_argnum)(*args)(v)[1]))
    return at


def checkpoint(fun):
    return fun


tuple = tuple  # autograd's differentiable tuple: a plain tuple holds tensors here
"""

TEST_UTIL = """
from itertools import product
import numpy
import chainrule as cr


def check_grads(fun, *args, argnum=None, modes=None, order=2):
    if args and isinstance(args[0], (int, tuple)):  # check_grads(fun, argnum)(x, ...)
        argnum, args = args[0], args[1:]

    def check(*xs, **kwargs):
        nums = range(len(xs)) if argnum is None else (
            argnum if isinstance(argnum, tuple) else (argnum,))

        def at(*chosen):
            full = list(xs)
            for i, v in zip(nums, chosen):
                full[i] = v
            return fun(*full, **kwargs)

        cr.check_grads(at, *[xs[i] for i in nums], order=min(order, 2), rtol=1e-5, atol=1e-6)
    if args:  # check_grads(fun, x)
        return check(*args)
    return check


def combo_check(fun, *args, **kwargs):
    def run(*arg_lists, **kwarg_lists):
        options = [[(k, v) for v in vs] for k, vs in kwarg_lists.items()]
        for a in product(*arg_lists):
            for kw in product(*options):
                check_grads(fun)(*a, **dict(kw))
    return run


def check_equivalent(x, y):
    numpy.testing.assert_allclose(numpy.asarray(x), numpy.asarray(y), rtol=1e-6, atol=1e-6)


def scalar_close(a, b):
    return abs(a - b) < 1e-6 or abs(a - b) / abs(a + b) < 1e-6
"""

TRACER = """
import chainrule as _cr


def isbox(x):
    return isinstance(x, _cr.Tensor)
"""

NAMESPACES = {
    "numpy": "from numpy import *  # noqa\nfrom numpy import random, fft, linalg  # noqa\n",
    "chainrule": "from chainrule.numpy import *  # noqa\n"
    "from chainrule.numpy import random, fft, linalg  # noqa\n",
}


def write_adapter(root: str, namespace: str) -> None:
    package = os.path.join(root, "autograd")
    os.makedirs(os.path.join(package, "numpy"))
    files = {
        "__init__.py": ADAPTER,
        "test_util.py": TEST_UTIL,
        "tracer.py": TRACER,
        "numpy/__init__.py": NAMESPACES[namespace],
        "numpy/random.py": "from numpy.random import *  # noqa\n",
    }
    for name, text in files.items():
        with open(os.path.join(package, name), "w") as f:
            f.write(text)


def run(tests: str, files: list[str], root: str, show: bool = False) -> tuple[int, int]:
    env = dict(os.environ)
    src = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    env["PYTHONPATH"] = os.pathsep.join([root, src, env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-W", "ignore",
           f"--rootdir={root}", *files]  # fmt: skip
    out = subprocess.run(cmd, cwd=tests, env=env, capture_output=True, text=True).stdout
    if show:
        for line in out.splitlines():
            if line.startswith(("FAILED", "ERROR")):
                print("   ", line[:150])
    tail = out.strip().splitlines()[-1] if out.strip() else ""
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", tail)) else 0
    failed = sum(int(n) for n in re.findall(r"(\d+) (?:failed|errors?)\b", tail))
    return passed, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", help="autograd's tests folder (from a clone of its repository)")
    parser.add_argument("--namespace", choices=sorted(NAMESPACES), default="numpy")
    parser.add_argument("--failures", action="store_true", help="list the failing tests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        write_adapter(root, args.namespace)
        totals = {"systematic": [0, 0], "with transforms": [0, 0]}
        for name in SYSTEMATIC + TRANSFORMS:
            if not os.path.exists(os.path.join(args.tests, name)):
                continue
            p, f = run(args.tests, [name], root, args.failures)
            print(f"{name:24s} {p:4d} passed {f:4d} failed")
            for key in totals:
                if key == "with transforms" or name in SYSTEMATIC:
                    totals[key][0] += p
                    totals[key][1] += f
        for key, (p, f) in totals.items():
            share = p / (p + f) if p + f else 0.0
            print(f"{key:24s} {p:4d} of {p + f:4d} passed ({share:.1%}), autograd.numpy = "
                  f"{args.namespace}")  # fmt: skip


if __name__ == "__main__":
    main()
