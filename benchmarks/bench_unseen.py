"""Workloads chainrule was not tuned for (issue 16), against a hand-written NumPy step.

Workloads (one training step: loss and the gradient of every parameter):

* ``glm``  logistic regression + L2 on a tall matrix, 20000x100, float64;
* ``rnn``  Elman RNN unrolled in a Python loop that reads ``X[t]``, 50 steps, batch 16,
           hidden 32, float64, MSE on the last state's readout;
* ``gp``   Gaussian-process negative log-likelihood, RBF kernel, 300 points, float64
           (``solve`` and ``slogdet`` of the kernel matrix);
* ``lj``   Lennard-Jones pair energy of 200 particles, float64;
* ``cnn``  small CNN on 8x8 images, batch 64, float32: conv3x3(1->8) + max-pool + relu,
           conv3x3(8->16) + max-pool + relu, linear(64->10), softmax cross-entropy
           (``chainrule.nn.functional`` conv2d / max_pool2d / relu / log_softmax);
* ``attention``  single-head self-attention block with a residual, batch 8, sequence 64,
           width 64, float32, softmax over the keys, MSE to a target;
* ``embed``  bag-of-embeddings classifier: rows of a 5000x64 table read at 128x20 token ids,
           averaged, a linear layer to 20 classes, softmax cross-entropy, float32 (the
           gradient of the table is a scatter-add of 2560 rows);
* ``gelu``  two-layer MLP with the tanh GELU (``h ** 3``), batch 128, 256-1024-256, float32,
           MSE to a target (the hand-written step writes the cube as ``h * h * h``);
* ``deconv``  deblurring a 4096-sample signal: ``numpy.convolve(x, k, "same")`` with a
           31-tap kernel against an observation, plus total variation, float64, in the signal
           and the kernel (PyTorch: ``conv1d`` with the flipped kernel);
* ``softkm``  soft k-means: squared distances of 2000 points to 16 centres in 8 dimensions by
           broadcasting (a 2000x16x8 temporary), then a log-sum-exp over the centres, float64.

Rows: ``numpy`` (forward + backward by hand, the reference), ``eager``
(``chainrule.value_and_grad``), ``jit`` (``chainrule.jit`` of it, NumPy backend), ``jit-numba``
and ``jit-auto`` (the Numba backend, and ``backend="auto"``, which prints its choice), and the peers
when they are importable: ``torch`` (PyTorch eager, ``torch.autograd.grad``), ``jax``
(``jax.jit(jax.value_and_grad)``, 64-bit enabled) and ``autograd`` (HIPS autograd's
``value_and_grad``); a row whose library is missing prints ``-``.  Every row's loss and
gradients are checked against the hand-written ones first (rtol 1e-8 in float64, 2e-4 in
float32); ``--check`` also checks the hand-written gradients against central finite
differences.  Each row runs in its own process (this file with ``--worker``), 1 BLAS thread
(JAX: its CPU client made while the process may use one CPU, as ``harness.py`` does); the rows
take turns running timed blocks, and the table prints the median time per step and its ratio
to ``numpy``, and names any row whose CPU time exceeded its wall time by over 15% (a row that
computed on more than one thread).

Run from the repository root (the peers from a venv that has them, never a project
dependency)::

    PYTHONPATH=src python3 benchmarks/bench_unseen.py [--rounds 7] [--workloads glm,rnn]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import numpy
from numpy.lib.stride_tricks import sliding_window_view

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))
WORKLOADS = ("glm", "rnn", "gp", "lj", "cnn", "attention", "embed", "gelu", "deconv", "softkm")
IMPLS = ("numpy", "eager", "jit", "jit-numba", "jit-auto", "torch", "jax", "autograd")
PEERS = ("torch", "jax", "autograd")
LAM = 1e-3
F: Any = None  # the nn.functional namespace the forward passes read (set per worker)


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
    f4 = numpy.float32
    if name == "cnn":
        x = rng.standard_normal((64, 1, 8, 8)).astype(f4)
        Y = numpy.eye(10, dtype=f4)[rng.integers(0, 10, 64)]
        shapes = [(8, 1, 3, 3), (8,), (16, 8, 3, 3), (16,), (64, 10), (10,)]
        scales = [1 / 3, 0.1, 1 / 8.5, 0.1, 1 / 8, 0.1]
        return [x, Y], [(rng.standard_normal(sh) * c).astype(f4) for sh, c in zip(shapes, scales)]
    if name == "attention":
        X = rng.standard_normal((8, 64, 64)).astype(f4)
        T = rng.standard_normal((8, 64, 64)).astype(f4)
        return [X, T], [(rng.standard_normal((64, 64)) / 8).astype(f4) for _ in range(4)]
    if name == "embed":
        E = (rng.standard_normal((5000, 64)) * 0.1).astype(f4)
        W = (rng.standard_normal((64, 20)) * 0.1).astype(f4)
        tokens = rng.integers(0, 5000, (128, 20))
        Y = numpy.eye(20, dtype=f4)[rng.integers(0, 20, 128)]
        return [tokens, Y], [E, W, numpy.zeros(20, f4)]
    if name == "gelu":
        X = rng.standard_normal((128, 256)).astype(f4)
        T = rng.standard_normal((128, 256)).astype(f4)
        W1 = (rng.standard_normal((256, 1024)) / 16).astype(f4)
        W2 = (rng.standard_normal((1024, 256)) / 32).astype(f4)
        return [X, T], [W1, numpy.zeros(1024, f4), W2, numpy.zeros(256, f4)]
    if name == "deconv":
        y = rng.standard_normal(4096)
        return [y], [rng.standard_normal(4096), rng.standard_normal(31) / 31]
    if name == "softkm":
        return [rng.standard_normal((2000, 8))], [rng.standard_normal((16, 8))]
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


def cnn_loss(W1: Any, b1: Any, W2: Any, b2: Any, W3: Any, b3: Any, x: Any, Y: Any) -> Any:
    a = F.relu(F.max_pool2d(F.conv2d(x, W1, b1, padding=1), 2))
    a = F.relu(F.max_pool2d(F.conv2d(a, W2, b2, padding=1), 2))
    logits = numpy.reshape(a, (a.shape[0], -1)) @ W3 + b3
    return -(Y * F.log_softmax(logits, dim=-1)).sum() / Y.shape[0]


def attention_loss(Wq: Any, Wk: Any, Wv: Any, Wo: Any, X: Any, T: Any) -> Any:
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    A = F.softmax((Q @ numpy.swapaxes(K, 1, 2)) * 0.125, dim=-1) @ V
    R = A @ Wo + X - T
    return (R * R).mean()


def embed_loss(E: Any, W: Any, b: Any, tokens: Any, Y: Any) -> Any:
    h = E[tokens].mean(axis=1)
    z = h @ W + b
    m = numpy.max(z, axis=1, keepdims=True)
    lse = numpy.log(numpy.exp(z - m).sum(axis=1, keepdims=True)) + m
    return -((z - lse) * Y).sum() / Y.shape[0]


def gelu_loss(W1: Any, b1: Any, W2: Any, b2: Any, X: Any, T: Any) -> Any:
    H = X @ W1 + b1
    G = 0.5 * H * (1.0 + numpy.tanh(0.7978845608 * (H + 0.044715 * H**3)))
    R = G @ W2 + b2 - T
    return (R * R).mean()


def deconv_loss(x: Any, k: Any, y: Any) -> Any:
    r = numpy.convolve(x, k, "same") - y
    return (r * r).sum() + 0.1 * numpy.abs(x[1:] - x[:-1]).sum()


def softkm_loss(C: Any, X: Any) -> Any:
    d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    m = numpy.max(-d, axis=1, keepdims=True)
    return -(numpy.log(numpy.exp(-d - m).sum(axis=1)) + m[:, 0]).mean()


FORWARD: dict[str, Callable[..., Any]] = {
    "glm": glm_loss,
    "rnn": rnn_loss,
    "gp": gp_loss,
    "lj": lj_loss,
    "cnn": cnn_loss,
    "attention": attention_loss,
    "embed": embed_loss,
    "gelu": gelu_loss,
    "deconv": deconv_loss,
    "softkm": softkm_loss,
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


def _conv_same(x: Any, W: Any) -> Any:
    """3x3 cross-correlation, padding 1, NCHW x, OIHW W -> NCHW (im2col by a window view)."""
    win = sliding_window_view(numpy.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 3))
    return numpy.tensordot(win, W, ([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2), win


def _pool_relu(z: Any) -> tuple[Any, Any]:
    """2x2 max-pool then relu; the mask of the winners that survive the relu."""
    n, c, h, w = z.shape
    zr = z.reshape(n, c, h // 2, 2, w // 2, 2)
    m = zr.max(axis=(3, 5))
    a = numpy.maximum(m, 0)
    return a, (zr == m[:, :, :, None, :, None]) & (m > 0)[:, :, :, None, :, None]


def _unpool(da: Any, mask: Any) -> Any:
    n, c, h, _, w, _ = mask.shape
    return (mask * da[:, :, :, None, :, None]).reshape(n, c, 2 * h, 2 * w)


def cnn_numpy(
    W1: Any, b1: Any, W2: Any, b2: Any, W3: Any, b3: Any, x: Any, Y: Any
) -> tuple[Any, list[Any]]:
    z1, win1 = _conv_same(x, W1)
    a1, m1 = _pool_relu(z1 + b1[:, None, None])
    z2, win2 = _conv_same(a1, W2)
    a2, m2 = _pool_relu(z2 + b2[:, None, None])
    f = a2.reshape(a2.shape[0], -1)
    logits = f @ W3 + b3
    mx = logits.max(axis=1, keepdims=True)
    e = numpy.exp(logits - mx)
    s = e.sum(axis=1, keepdims=True)
    n = Y.shape[0]
    loss = -(Y * (logits - mx - numpy.log(s))).sum() / n
    dlog = (e / s * Y.sum(axis=1, keepdims=True) - Y) / n
    df = dlog @ W3.T
    dz2 = _unpool(df.reshape(a2.shape), m2)
    da1 = _conv_same(dz2, W2[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))[0]  # full correlation
    dz1 = _unpool(da1, m1)
    return loss, [
        numpy.tensordot(dz1, win1, ([0, 2, 3], [0, 2, 3])),
        dz1.sum(axis=(0, 2, 3)),
        numpy.tensordot(dz2, win2, ([0, 2, 3], [0, 2, 3])),
        dz2.sum(axis=(0, 2, 3)),
        f.T @ dlog,
        dlog.sum(axis=0),
    ]


def attention_numpy(Wq: Any, Wk: Any, Wv: Any, Wo: Any, X: Any, T: Any) -> tuple[Any, list[Any]]:
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    S = Q @ K.transpose(0, 2, 1) * numpy.float32(0.125)
    P = numpy.exp(S - S.max(axis=-1, keepdims=True))
    P /= P.sum(axis=-1, keepdims=True)
    A = P @ V
    R = A @ Wo + X - T
    loss = (R * R).mean()
    dR = R * numpy.float32(2.0 / R.size)
    dA = dR @ Wo.T
    dP = dA @ V.transpose(0, 2, 1)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)) * numpy.float32(0.125)
    dQ, dK, dV = dS @ K, dS.transpose(0, 2, 1) @ Q, P.transpose(0, 2, 1) @ dA
    Xf = X.reshape(-1, X.shape[-1]).T
    d = X.shape[-1]
    return loss, [
        Xf @ dQ.reshape(-1, d),
        Xf @ dK.reshape(-1, d),
        Xf @ dV.reshape(-1, d),
        A.reshape(-1, d).T @ dR.reshape(-1, d),
    ]


def embed_numpy(E: Any, W: Any, b: Any, tokens: Any, Y: Any) -> tuple[Any, list[Any]]:
    n, k = tokens.shape
    h = E[tokens].mean(axis=1)
    z = h @ W + b
    m = z.max(axis=1, keepdims=True)
    e = numpy.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    loss = -((z - m - numpy.log(s)) * Y).sum() / n
    dz = (e / s * Y.sum(axis=1, keepdims=True) - Y) / n
    dh = (dz @ W.T) / k
    dE = numpy.zeros_like(E)
    numpy.add.at(dE, tokens.ravel(), numpy.repeat(dh, k, axis=0))  # one row per token read
    return loss, [dE, h.T @ dz, dz.sum(axis=0)]


def gelu_numpy(W1: Any, b1: Any, W2: Any, b2: Any, X: Any, T: Any) -> tuple[Any, list[Any]]:
    c, a = numpy.float32(0.7978845608), numpy.float32(0.044715)
    H = X @ W1 + b1
    H2 = H * H
    t = numpy.tanh(c * (H + a * (H2 * H)))
    G = 0.5 * H * (1.0 + t)
    R = G @ W2 + b2 - T
    loss = (R * R).mean()
    dR = R * numpy.float32(2.0 / R.size)
    dH = dR @ W2.T
    dH *= 0.5 * (1.0 + t) + 0.5 * H * (1.0 - t * t) * c * (1.0 + 3.0 * a * H2)
    return loss, [X.T @ dH, dH.sum(axis=0), G.T @ dR, dR.sum(axis=0)]


def deconv_numpy(x: Any, k: Any, y: Any) -> tuple[Any, list[Any]]:
    r = numpy.convolve(x, k, "same") - y
    dx1 = x[1:] - x[:-1]
    loss = r @ r + 0.1 * numpy.abs(dx1).sum()
    dz = 2.0 * r
    # z = correlate(pad(x), k[::-1]) (odd kernel: m // 2 zeros each side): the gradient in x is
    # the 'same' correlation of dz with k; in k, the valid correlation of the padded x with dz,
    # reversed
    dx = numpy.correlate(dz, k, "same")
    s = 0.1 * numpy.sign(dx1)
    dx[1:] += s
    dx[:-1] -= s
    h = k.shape[0] // 2
    dk = numpy.correlate(numpy.pad(x, (h, h)), dz, "valid")[::-1]
    return loss, [dx, dk]


def softkm_numpy(C: Any, X: Any) -> tuple[Any, list[Any]]:
    d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    a = -d
    m = a.max(axis=1, keepdims=True)
    e = numpy.exp(a - m)
    s = e.sum(axis=1, keepdims=True)
    loss = -(numpy.log(s) + m).mean()
    w = e / (s * X.shape[0])  # d loss / d d: the softmax over the centres, over n
    # d/dC of sum_ik w_ik |x_i - c_k|^2 = 2 (c_k sum_i w_ik - sum_i w_ik x_i)
    return loss, [2.0 * (C * w.sum(axis=0)[:, None] - w.T @ X)]


BY_HAND: dict[str, Callable[..., Any]] = {
    "glm": glm_numpy,
    "rnn": rnn_numpy,
    "gp": gp_numpy,
    "lj": lj_numpy,
    "cnn": cnn_numpy,
    "attention": attention_numpy,
    "embed": embed_numpy,
    "gelu": gelu_numpy,
    "deconv": deconv_numpy,
    "softkm": softkm_numpy,
}


def _rebind(f: Callable[..., Any], **names: Any) -> Callable[..., Any]:
    """The same forward source, with ``numpy`` / ``F`` read from another library."""
    return types.FunctionType(f.__code__, {**f.__globals__, **names}, f.__name__, f.__defaults__)


def _jax_step(name: str, nparams: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    import jax  # noqa: PLC0415 -- peer, workers only

    sys.path.insert(0, HERE)
    from harness import _jax_cpu_client  # noqa: PLC0415

    # XLA_FLAGS alone leave jaxlib computing on 2 threads (a matrix-vector product read 1.6
    # CPU-seconds per second): its pool is sized from the CPUs the process may use
    _jax_cpu_client(1)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: PLC0415

    def conv2d(x: Any, W: Any, b: Any, padding: int) -> Any:
        pad = [(padding, padding)] * 2
        return jax.lax.conv_general_dilated(x, W, (1, 1), pad) + b[:, None, None]

    def max_pool2d(x: Any, k: int) -> Any:
        n, c, h, w = x.shape
        return x.reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))

    JF = types.SimpleNamespace(
        conv2d=conv2d,
        max_pool2d=max_pool2d,
        relu=jax.nn.relu,
        softmax=lambda x, dim: jax.nn.softmax(x, axis=dim),
        log_softmax=lambda x, dim: jax.nn.log_softmax(x, axis=dim),
    )
    f = _rebind(FORWARD[name], numpy=jnp, F=JF)
    vg = jax.jit(jax.value_and_grad(f, argnums=tuple(range(nparams))))
    return (lambda *a: jax.block_until_ready(vg(*a))), (lambda a, _p: jnp.asarray(a))


def _autograd_step(name: str, nparams: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    import autograd  # noqa: PLC0415 -- peer, workers only
    import autograd.numpy as anp  # noqa: PLC0415
    from autograd.scipy.special import logsumexp  # noqa: PLC0415

    def conv2d(x: Any, W: Any, b: Any, padding: int) -> Any:
        xp = anp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), "constant")
        h, w = xp.shape[2] - W.shape[2] + 1, xp.shape[3] - W.shape[3] + 1
        out = b[:, None, None]
        for i in range(W.shape[2]):
            for j in range(W.shape[3]):
                out = out + anp.einsum(
                    "nchw,oc->nohw", xp[:, :, i : i + h, j : j + w], W[:, :, i, j]
                )
        return out

    def max_pool2d(x: Any, k: int) -> Any:
        n, c, h, w = x.shape
        return anp.max(anp.reshape(x, (n, c, h // k, k, w // k, k)), axis=(3, 5))

    AF = types.SimpleNamespace(
        conv2d=conv2d,
        max_pool2d=max_pool2d,
        relu=lambda x: anp.maximum(x, 0.0),
        softmax=lambda x, dim: anp.exp(x - logsumexp(x, axis=dim, keepdims=True)),
        log_softmax=lambda x, dim: x - logsumexp(x, axis=dim, keepdims=True),
    )
    f = _rebind(FORWARD[name], numpy=anp, F=AF)
    vg = autograd.value_and_grad(f, argnum=tuple(range(nparams)))
    return vg, (lambda a, _p: a)


def _torch_step(name: str, nparams: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    import torch  # noqa: PLC0415 -- peer, workers only

    torch.set_num_threads(1)
    tnp = types.SimpleNamespace(
        maximum=lambda a, b: torch.clamp(a, min=b),
        eye=lambda n: torch.eye(n, dtype=torch.float64),
        max=lambda x, axis, keepdims: torch.amax(x, dim=axis, keepdim=keepdims),
        **{
            k: getattr(torch, k)
            for k in ("tanh", "exp", "log", "log1p", "abs", "reshape", "swapaxes")
        },
        linalg=torch.linalg,
        # numpy.convolve(x, k, "same") of an odd kernel: conv1d (a correlation) with k flipped
        convolve=lambda x, k, mode: torch.nn.functional.conv1d(
            x[None, None], k.flip(0)[None, None], padding=k.shape[0] // 2
        )[0, 0],
    )
    f = _rebind(FORWARD[name], numpy=tnp, F=torch.nn.functional)

    def step(*a: Any) -> Any:
        loss = f(*a)
        return loss.detach(), torch.autograd.grad(loss, a[:nparams])

    return step, (lambda a, p: torch.from_numpy(a).requires_grad_(p))


def step_fn(
    impl: str, name: str, nparams: int
) -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """One training step of ``impl``: params..., constants... -> (loss, [grads]), and the
    conversion of a NumPy argument (``array, is_param``) to what the step takes; ``None`` when
    the peer library is not importable."""
    if impl == "numpy":
        return BY_HAND[name], (lambda a, _p: a)
    if impl in PEERS:
        try:
            __import__(impl)
        except ImportError:
            return None
        return {"torch": _torch_step, "jax": _jax_step, "autograd": _autograd_step}[impl](
            name, nparams
        )
    import chainrule  # noqa: PLC0415 -- workers only
    import chainrule.nn.functional  # noqa: PLC0415

    f = _rebind(FORWARD[name], F=chainrule.nn.functional)
    vg = chainrule.value_and_grad(f, argnums=tuple(range(nparams)))
    if impl.startswith("jit"):  # jit (the NumPy backend), jit-numba, jit-auto
        vg = chainrule.jit(vg, backend={"jit": "numpy"}.get(impl, impl[4:]))
    return vg, (lambda a, _p: a)


def _close(got: Any, ref: Any, what: str) -> None:
    got = numpy.asarray(got)
    if ref.dtype == numpy.float32:
        rtol, atol = 2e-4, 2e-5 * numpy.abs(ref).max()
    else:
        rtol, atol = 1e-8, 1e-10 * numpy.abs(ref).max()
    numpy.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=what)


def fd_check(name: str) -> None:
    """The hand-written gradient against central finite differences (in float64)."""
    consts, params = data(name)
    c64 = [c if c.dtype.kind in "iu" else numpy.asarray(c, numpy.float64) for c in consts]
    p64 = [numpy.asarray(p, numpy.float64) for p in params]
    _, grads = BY_HAND[name](*p64, *c64)
    rng = numpy.random.default_rng(1)
    for k, (p, g) in enumerate(zip(p64, grads)):
        for _ in range(5):
            i = tuple(int(rng.integers(0, s)) for s in p.shape)
            old = p[i].copy()
            p[i] = old + 1e-6
            up = BY_HAND[name](*p64, *c64)[0]
            p[i] = old - 1e-6
            down = BY_HAND[name](*p64, *c64)[0]
            p[i] = old
            fd = (up - down) / 2e-6
            scale = max(1e-3, float(numpy.abs(g).max()))
            if abs(fd - g[i]) > 1e-5 * scale:
                raise SystemExit(f"{name}: hand-written d/d param {k}{i} = {g[i]}, fd {fd}")
    print(f"{name}: hand-written gradient agrees with finite differences", flush=True)


def worker(impl: str, name: str) -> None:
    """Check, then answer "run N" requests on stdin with the seconds per step."""
    consts, params = data(name)
    made = step_fn(impl, name, len(params))
    if made is None:
        print("missing", flush=True)
        return
    step, convert = made
    args = [convert(p, True) for p in params] + [convert(c, False) for c in consts]
    try:
        loss, grads = step(*args)
    except NotImplementedError as e:  # a peer without a rule this workload needs
        if impl not in PEERS:
            raise
        print(f"[{impl} on {name}: {e}]", file=sys.stderr, flush=True)
        print("missing", flush=True)
        return
    if impl == "jit-auto":
        (chosen,) = step.cache.values()  # type: ignore[attr-defined]
        print(f"[{name}: backend='auto' chose {chosen.backend}]", file=sys.stderr, flush=True)
    ref_loss, ref_grads = BY_HAND[name](*params, *consts)
    _close(loss, numpy.asarray(ref_loss), f"{impl} {name}: loss")
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        _close(g, r, f"{impl} {name}: gradient of parameter {k}")
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 0.3:
        step(*args)
        n += 1
    per = (time.perf_counter() - t0) / n
    reps = max(1, int(0.05 / per))
    print(f"ok {reps}", flush=True)
    for _line in sys.stdin:
        for _ in range(2):
            step(*args)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(reps):
            step(*args)
        wall = time.perf_counter() - t0
        print(wall / reps, (time.process_time() - c0) / wall, flush=True)


def start_worker(argv: list[str], env: dict[str, str], what: str) -> Any:
    """A worker process (this interpreter running ``argv``) once it has said "ok" (its
    gradients checked), or None if it says "missing" (a peer not installed)."""
    p = subprocess.Popen(
        [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert p.stdout is not None and p.stdin is not None
    head = p.stdout.readline()
    if head.startswith("missing"):
        p.wait()
        return None
    if not head.startswith("ok"):
        raise SystemExit(f"{what}: gradient check failed (see above)")
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="finite-difference the hand-written")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"))
    a = ap.parse_args()
    if a.worker:
        worker(*a.worker)
        return
    if a.check:
        for name in a.workloads.split(","):
            fd_check(name)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    impls = ["numpy"] + [i for i in a.impls.split(",") if i != "numpy"]
    sys.path.insert(0, HERE)
    from harness import blas_name  # noqa: PLC0415

    print(f"NumPy's BLAS: {blas_name()}")
    print(f"{'':10}" + "".join(f"{i:>22}" for i in impls))
    for name in a.workloads.split(","):
        procs = {}
        for impl in impls:
            p = start_worker([__file__, "--worker", impl, name], env, f"{impl} on {name}")
            if p is not None:
                procs[impl] = p
        times: dict[str, list[float]] = {i: [] for i in impls}
        cpu: dict[str, list[float]] = {i: [] for i in impls}  # CPU seconds per wall second
        for _ in range(a.rounds):
            for impl, p in procs.items():
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write("run\n")
                p.stdin.flush()
                per_step, busy = map(float, p.stdout.readline().split())
                times[impl].append(per_step)
                cpu[impl].append(busy)
        for p in procs.values():
            assert p.stdin is not None
            p.stdin.close()
            p.wait()
        base = statistics.median(times["numpy"])
        cells = []
        for impl in impls:
            if not times[impl]:
                cells.append("-")
                continue
            med = statistics.median(times[impl])
            cells.append(f"{med * 1e3:9.3f} ms {med / base:6.2f}x")
        print(f"{name:10}" + "".join(f"{c:>22}" for c in cells), flush=True)
        busy = {i: statistics.median(c) for i, c in cpu.items() if c}
        over = [f"{i} {b:.2f}" for i, b in busy.items() if b > 1.15]
        if over:  # a row that computed on more than one thread is not a one-thread figure
            print(f"{'':10}CPU/wall over 1.15 (more than one thread): {', '.join(over)}")


if __name__ == "__main__":
    main()
