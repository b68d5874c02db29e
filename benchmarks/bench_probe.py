"""More models nobody tuned for (issue 16): chainrule against PyTorch eager and JAX jit.

Where ``bench_unseen.py`` times each workload against a hand-written NumPy step, this file
probes more kinds of NumPy code against the peers directly, each model written once against a
NumPy-like namespace (NumPy itself for chainrule's tensors, ``torch``, ``jax.numpy``):

* ``lnmlp``    linear, layer norm over 128 features, tanh, linear, MSE; batch 256, float64;
* ``mog``      a mixture of 8 Gaussians in 2-D: pairwise squared distances of 3000 points,
               log-sum-exp over the components, in the means, scales and weights;
* ``mf``       matrix factorisation: 20,000 ratings read as ``U[i]`` and ``V[j]`` from tables
               of 500 and 400 rows of 16, MSE + L2 (the gradients are scatter-adds);
* ``springs``  a 2-D spring network of 300 nodes: pairwise distances by broadcasting, a
               masked sum of squared stretches;
* ``softreg``  softmax regression, 5000 x 20 inputs, 10 classes;
* ``vae``      a small variational autoencoder, 100-64-(8+8)-64-100, batch 128, float32,
               reparameterised with given noise, Bernoulli likelihood + KL;
* ``poly``     least squares on 6 polynomial features ``stack([x ** k ...])`` of 20,000 points;
* ``kde``      the bandwidth of a Gaussian kernel density estimate: 400 x 1500 pairwise
               distances in 3-D, the log of the kernel means.

A second round, written after the first was tuned (issue 16, session 11):

* ``lstm``     an LSTM unrolled over 25 steps in a Python loop, batch 32, 16 inputs, 64 hidden
               units, gates sliced from one product, float32;
* ``tblock``   a transformer block: layer norm, 4-head attention by reshape and transpose,
               residual, layer norm, a tanh-GELU MLP of width 256; batch 4, 32 tokens of 64,
               float32;
* ``poisson``  Poisson regression, 50,000 x 20, with a smoothed L1 penalty;
* ``w2v``      skip-gram with negative sampling: 512 centre words, one context and 5 negatives
               each, read from two 2000 x 32 tables, float32 (scatter-adds with many repeats);
* ``cox``      Cox proportional hazards: a reversed cumulative sum of ``exp(X @ w)``, 2000 x 10;
* ``huber``    robust regression with ``numpy.where`` and ``numpy.clip``, 10,000 x 50;
* ``bilinear`` a bilinear classifier ``einsum('bi,oij,bj->bo', x, W, y)``, batch 256, 10
               classes of 32 x 32 weights, softmax cross-entropy;
* ``pool``     a linear layer, ReLU, 2 x 2 max pooling by reshape and ``max``, softmax
               cross-entropy, batch 64, float32.

A third round, written after the second was tuned (issue 16, session 12):

* ``bnmlp``    batch normalisation (``mean``/``var`` over the batch), ReLU, softmax
               cross-entropy read as ``logp[rows, labels]``; batch 256, 32-128-10, float32;
* ``sinkhorn`` entropic optimal transport between 100 and 120 points in 2-D: 30 Sinkhorn
               iterations of matrix-vector products, the gradient in the first point cloud;
* ``spectrum`` a signal of 4096 samples fitted to a magnitude spectrum through
               ``numpy.fft.rfft`` and ``abs`` (complex intermediate), with a smoothness term;
* ``nbody``    10 leapfrog steps of 64 gravitating particles in 3-D (pairwise forces by
               broadcasting, ``r2 ** -1.5``), the gradient in the initial velocities;
* ``rk4``      Lotka-Volterra integrated by 25 classic Runge-Kutta steps in a Python loop, 64
               trajectories, the gradient in the 4 rate constants (100 steps: JAX compiles
               for over 17 minutes);
* ``conv1d``   a 1-D convolution by ``sliding_window_view`` and ``einsum``, ReLU, mean over
               time, linear, MSE; batch 32, 8 channels of 256, 16 filters of 5, float32;
* ``mvn``      a multivariate normal's negative log-likelihood of 2000 points in 5-D, the
               covariance ``A A^T + 0.1 I`` through ``cholesky``, ``solve`` and the log of
               its diagonal.

A fourth round, of the issue's kinds, written after the third was tuned (issue 16, session 15):

* ``gru``      a GRU over 20 steps reading ``X[t]``, batch 16, 8 inputs, 32 hidden units, the
               gates sliced from two products, every state stacked into the output, float64;
* ``matern``   a Gaussian process's NLL with a Matern-3/2 kernel on 250 points in 2-D
               (``cholesky``, ``solve``, the log of the factor's diagonal), float64;
* ``morse``    a Morse potential over the 7140 pairs of 120 particles read by
               ``triu_indices`` (gathers ``P[i] - P[j]``, scatter-adds back), float64;
* ``causal``   causal single-head self-attention (``numpy.where`` on a lower-triangular mask),
               residual, MSE; batch 8, 48 tokens of 32, float32;
* ``glm32``    logistic regression by ``logaddexp(0, z)``, 40,000 x 32 with an intercept, float32;
* ``patches``  a 3 x 3 convolution by slicing nine shifted views, ``stack`` and ``einsum``,
               ReLU, global mean pooling, linear, MSE; batch 32, 3 x 16 x 16, float32.

A fifth round, written after the fourth was tuned (issue 16, session 17):

* ``heat``     the 1-D heat equation by explicit finite differences, 50 steps of slices and
               ``concatenate`` on 32 rods of 256 points, the gradient in the initial state and
               the conductivity, float64;
* ``phi4``     a lattice field's action on 128 x 128 sites, neighbours by ``numpy.roll``;
* ``tsne``     t-SNE's KL divergence for 400 points in 2-D (Student-t affinities, normalised);
* ``hmm``      a hidden Markov model's forward algorithm in log space, 60 steps, 32 sequences,
               8 states (a log-sum-exp over ``la[:, :, None] + logA`` each step);
* ``eigh``     the 4 smallest eigenvalues of a 64 x 64 symmetric matrix (``numpy.linalg.eigh``);
* ``fftconv``  a learned circular filter by ``rfft``/``irfft`` on 16 signals of 1024;
* ``trimmed``  least trimmed squares: the mean of the 4,500 smallest of 5,000 squared residuals
               by ``numpy.sort``.

A sixth round, written after the fifth was tuned (issue 16, session 18):

* ``gcn``      a two-layer graph convolutional network on 600 nodes (a dense normalised
               adjacency), labels read as ``logp[arange(n), labels]``, the loss over a mask of
               training nodes by ``numpy.where``; float32;
* ``contrast`` InfoNCE between two views of 256 points: a projection, rows normalised by
               ``numpy.linalg.norm``, a 256 x 256 similarity, log-sum-exp minus its diagonal;
* ``flow``     eight planar normalising-flow layers on 2000 points in 2-D, the parameters read
               as ``U[k]`` in a Python loop, the log-determinant by ``log(abs(...))``;
* ``kalman``   a Kalman filter's negative log-likelihood over 40 observations (4 states, 2
               observed): ``inv``, ``slogdet`` and ``solve`` of 2 x 2 matrices in a loop;
* ``tv``       total-variation denoising of a 128 x 128 image by ``numpy.diff`` and
               ``numpy.pad``;
* ``schrod``   the split-step Fourier method for 8 wave packets on 256 points, 30 steps of
               ``fft``/``ifft`` and complex exponentials, the gradient in the real potential;
* ``mdn``      a mixture density network (5 Gaussians) on 1024 points, the outputs sliced from
               one product; float32;
* ``ridge``    ridge regression's validation error in the log of its penalty, through
               ``numpy.linalg.inv`` of a 50 x 50 matrix.

A seventh round, written while the sixth was being tuned (issue 16, session 18):

* ``persample`` a one-hidden-layer network fitted one sample at a time in a Python loop (64
               matrix-vector products a step), as first drafts are written;
* ``hazard``   a discrete-time survival model: hazards by a logistic link, survival by
               ``numpy.cumprod`` over 20 periods, the event's terms read by
               ``take_along_axis``; 2000 subjects;
* ``cp``       a rank-8 CP decomposition of a 30 x 30 x 30 tensor by a three-operand
               ``einsum``;
* ``triplet``  a triplet loss with the hardest positive and negative of each anchor found by
               ``argmax`` and read by ``take_along_axis``; 256 points;
* ``negbin``   negative binomial regression with ``scipy.special.gammaln``, 10,000 counts;
* ``gmmfull``  a 4-component Gaussian mixture in 3-D with full precision factors
               (``numpy.matmul`` on a stack, the log-determinant from their diagonals).

An eighth round (issue 16, session 18):

* ``mpnn``     two rounds of message passing over 3,000 edges of a 500-node graph: messages
               gathered by ``H[src]``, summed at their targets by ``numpy.add.at`` into
               ``numpy.zeros_like(H)``;
* ``splitlstm`` an LSTM over 20 steps whose gates come from ``numpy.split`` and
               ``scipy.special.expit``;
* ``cplx``     a complex layer (real and imaginary weights) with its modulus as activation;
* ``kron``     a Kronecker-factored 256 x 256 linear map, ``numpy.kron`` of two 16 x 16;
* ``segmean``  means of 50 groups of 20,000 values, sums by ``numpy.add.at``;
* ``jacdet``   the log-determinants of 2,000 Jacobians (3 x 3) of a small map, batched
               ``numpy.linalg.slogdet``.

A ninth round (issue 16, session 19):

* ``holt``     Holt's linear-trend exponential smoothing of 8 series over 120 steps in a
               Python loop (vectors of 8: the cost is the calls), the gradient in the two
               smoothing constants through a logistic link;
* ``maml``     one step of model-agnostic meta-learning over 4 tasks: an inner gradient step
               of a 1-32-1 tanh network taken by the library's own ``grad``, the query loss
               differentiated through it (second order);
* ``pose``     a camera's pose from 2,000 points: Rodrigues' rotation by ``numpy.cross``, a
               pinhole projection, the reprojection error;
* ``siren``    a sine-activated network 2-64-64-1 fitting a 64 x 64 image, float32;
* ``moe``      a mixture of 4 experts routed to the top 2 of each of 512 inputs by
               ``argsort`` and ``take_along_axis``, the experts by one ``einsum``;
* ``angles``   a bond-angle potential over 1,500 triplets of 500 atoms: ``arccos`` of clipped
               cosines of gathered bond vectors;
* ``svdnorm``  matrix completion with a nuclear-norm penalty (``numpy.linalg.svd`` without
               vectors) on a 60 x 40 matrix;
* ``deconv1``  deconvolution of a 2,000-sample signal by ``numpy.convolve(.., 'same')`` with
               a 31-tap kernel and a smoothness term.

Rows: ``eager`` (``chainrule.value_and_grad``), ``jit-auto`` (``chainrule.jit`` of it,
``backend="auto"``), ``torch`` (``loss.backward()``), ``jax`` (``jax.jit(jax.value_and_grad)``,
64-bit enabled).  Each row runs in its own process with 1 BLAS thread and checks its loss and
gradients against chainrule's eager ones first (rtol 1e-8 in float64, 2e-4 in float32); the
rows take turns running timed blocks; the table prints the median time per step, eager over
PyTorch and jit over JAX (below 1: chainrule is faster).

Run from the repository root (the peers from a venv that has them, never a project
dependency)::

    PYTHONPATH=src python3 benchmarks/bench_probe.py [--rounds 7] [--models mf,kde]

(``--models`` defaults to the first two rounds; ``--round 3`` runs the third, ``--round 4``
the fourth, and so on to ``--round 9``.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)
from bench_unseen import start_worker  # noqa: E402 -- the worker handshake both files use

MODELS = ("lnmlp", "mog", "mf", "springs", "softreg", "vae", "poly", "kde")
MODELS_2 = ("lstm", "tblock", "poisson", "w2v", "cox", "huber", "bilinear", "pool")
MODELS_3 = ("bnmlp", "sinkhorn", "spectrum", "nbody", "rk4", "conv1d", "mvn")
MODELS_4 = ("gru", "matern", "morse", "causal", "glm32", "patches")
MODELS_5 = ("heat", "phi4", "tsne", "hmm", "eigh", "fftconv", "trimmed")
MODELS_6 = ("gcn", "contrast", "flow", "kalman", "tv", "schrod", "mdn", "ridge")
MODELS_7 = ("persample", "hazard", "cp", "triplet", "negbin", "gmmfull")
MODELS_8 = ("mpnn", "splitlstm", "cplx", "kron", "segmean", "jacdet")
MODELS_9 = ("holt", "maml", "pose", "siren", "moe", "angles", "svdnorm", "deconv1")
IMPLS = ("eager", "jit-auto", "torch", "jax")


def data(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a model."""
    rng = numpy.random.default_rng(0)
    f4 = numpy.float32
    if name == "lnmlp":
        X, T = rng.standard_normal((256, 64)), rng.standard_normal((256, 32))
        W1, W2 = rng.standard_normal((64, 128)) / 8, rng.standard_normal((128, 32)) / 11
        return [X, T], [W1, numpy.ones(128), numpy.zeros(128), W2]
    if name == "mog":
        return [rng.standard_normal((3000, 2)) * 2], [
            rng.standard_normal((8, 2)),
            numpy.zeros(8),
            numpy.zeros(8),
        ]
    if name == "mf":
        i, j = rng.integers(0, 500, 20000), rng.integers(0, 400, 20000)
        U, V = rng.standard_normal((500, 16)) * 0.1, rng.standard_normal((400, 16)) * 0.1
        return [i, j, rng.standard_normal(20000)], [U, V]
    if name == "springs":
        L = numpy.abs(rng.standard_normal((300, 300))) + 1
        mask = (rng.random((300, 300)) < 0.05).astype(numpy.float64)
        return [L, mask], [rng.standard_normal((300, 2)) * 5]
    if name == "softreg":
        X, Y = rng.standard_normal((5000, 20)), numpy.eye(10)[rng.integers(0, 10, 5000)]
        return [X, Y], [rng.standard_normal((20, 10)) * 0.1, numpy.zeros(10)]
    if name == "vae":
        X, eps = rng.random((128, 100)).astype(f4), rng.standard_normal((128, 8)).astype(f4)
        shapes = [(100, 64), (64,), (64, 16), (16,), (8, 64), (64,), (64, 100), (100,)]
        return [X, eps], [(rng.standard_normal(s) * 0.1).astype(f4) for s in shapes]
    if name == "poly":
        x = rng.standard_normal(20000)
        return [x, numpy.sin(x)], [numpy.zeros(6)]
    if name == "kde":
        X, Y = rng.standard_normal((1500, 3)), rng.standard_normal((400, 3))
        return [X, Y], [numpy.array(0.0)]
    return data_2(name)


def _drawer(rng: Any) -> Callable[..., Any]:
    """``r(*shape, scale=, dt=)``: normal draws from ``rng``, scaled, in a dtype."""

    def r(*s: int, scale: float = 1.0, dt: Any = numpy.float64) -> Any:
        return (rng.standard_normal(s) * scale).astype(dt)

    return r


def data_2(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a second-round model."""
    rng = numpy.random.default_rng(1)
    f4 = numpy.float32
    r = _drawer(rng)

    if name == "lstm":
        return [r(25, 32, 16, dt=f4), r(32, 8, dt=f4)], [
            r(16, 256, scale=0.2, dt=f4),
            r(64, 256, scale=0.1, dt=f4),
            numpy.zeros(256, f4),
            r(64, 8, scale=0.1, dt=f4),
        ]
    if name == "tblock":
        d = 64
        return [r(4, 32, d, dt=f4)], [
            numpy.ones(d, f4),
            numpy.zeros(d, f4),
            r(d, 3 * d, scale=0.1, dt=f4),
            r(d, d, scale=0.1, dt=f4),
            numpy.ones(d, f4),
            numpy.zeros(d, f4),
            r(d, 4 * d, scale=0.1, dt=f4),
            r(4 * d, d, scale=0.05, dt=f4),
        ]
    if name == "poisson":
        X = r(50000, 20, scale=0.2)
        y = rng.poisson(numpy.exp(X @ r(20, scale=0.5))).astype(numpy.float64)
        return [X, y], [numpy.zeros(20)]
    if name == "rk4":
        return [numpy.abs(r(64, 2)) + 0.5, numpy.abs(r(64, 2)) + 0.5], [
            numpy.array([1.0, 0.4, 0.4, 1.0])
        ]
    if name == "w2v":
        c, o, neg = (
            rng.integers(0, 2000, 512),
            rng.integers(0, 2000, 512),
            rng.integers(0, 2000, (512, 5)),
        )
        return [c, o, neg], [r(2000, 32, scale=0.1, dt=f4), r(2000, 32, scale=0.1, dt=f4)]
    if name == "cox":
        return [r(2000, 10), (rng.random(2000) < 0.7).astype(numpy.float64)], [r(10, scale=0.1)]
    if name == "huber":
        X = r(10000, 50)
        return [X, X @ r(50) + r(10000) * 2], [numpy.zeros(50)]
    if name == "bilinear":
        return [r(256, 32), r(256, 32), numpy.eye(10)[rng.integers(0, 10, 256)]], [
            r(10, 32, 32, scale=0.05),
            numpy.zeros(10),
        ]
    if name == "pool":
        return [r(64, 64, dt=f4), numpy.eye(10, dtype=f4)[rng.integers(0, 10, 64)]], [
            r(64, 8 * 256, scale=0.1, dt=f4),
            r(8 * 64, 10, scale=0.05, dt=f4),
        ]
    return data_3(name)


def data_3(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a third-round model."""
    rng = numpy.random.default_rng(2)
    f4 = numpy.float32
    r = _drawer(rng)

    if name == "bnmlp":
        return [r(256, 32, dt=f4), rng.integers(0, 10, 256), numpy.arange(256)], [
            r(32, 128, scale=0.2, dt=f4),
            numpy.ones(128, f4),
            numpy.zeros(128, f4),
            r(128, 10, scale=0.1, dt=f4),
            numpy.zeros(10, f4),
        ]
    if name == "sinkhorn":
        return [r(120, 2) + 1.0, numpy.full(100, 1 / 100), numpy.full(120, 1 / 120)], [r(100, 2)]
    if name == "spectrum":
        t = numpy.arange(4096)
        clean = numpy.sin(0.05 * t) + 0.5 * numpy.sin(0.31 * t)
        return [numpy.abs(numpy.fft.rfft(clean))], [clean + r(4096, scale=0.3)]
    if name == "nbody":
        P0 = r(64, 3, scale=2.0)
        return [P0, numpy.abs(r(64)) + 0.5, P0 + r(64, 3, scale=0.05)], [r(64, 3, scale=0.3)]
    if name == "conv1d":
        return [r(32, 8, 256, dt=f4), r(32, 4, dt=f4)], [
            r(16, 8, 5, scale=0.15, dt=f4),
            numpy.zeros(16, f4),
            r(16, 4, scale=0.25, dt=f4),
        ]
    if name == "mvn":
        A = numpy.eye(5) + r(5, 5, scale=0.2)
        X = rng.multivariate_normal(numpy.zeros(5), A @ A.T + 0.1 * numpy.eye(5), 2000)
        return [X + 0.3, numpy.eye(5)], [A, numpy.zeros(5)]
    return data_4(name)


def data_4(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a fourth-round model."""
    rng = numpy.random.default_rng(3)
    f4 = numpy.float32
    r = _drawer(rng)

    if name == "gru":
        return [r(20, 16, 8), r(16, 20, 4), numpy.zeros((16, 32))], [
            r(8, 96, scale=0.3),
            r(32, 96, scale=0.15),
            numpy.zeros(96),
            r(32, 4, scale=0.2),
        ]
    if name == "matern":
        X = rng.random((250, 2)) * 4
        D = numpy.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2))
        y = numpy.sin(2 * X[:, 0]) * numpy.cos(X[:, 1]) + r(250, scale=0.1)
        return [D, y, numpy.eye(250)], [numpy.array(0.0), numpy.array(0.0), numpy.array(-2.0)]
    if name == "morse":
        i, j = numpy.triu_indices(120, 1)
        grid = numpy.stack(numpy.meshgrid(*[numpy.arange(5.0)] * 3), -1).reshape(-1, 3)
        return [i, j], [grid[:120] * 1.1 + r(120, 3, scale=0.05)]
    if name == "causal":
        mask = numpy.tril(numpy.ones((48, 48), dtype=bool))
        return [r(8, 48, 32, dt=f4), r(8, 48, 32, dt=f4), mask], [
            r(32, 32, scale=0.2, dt=f4) for _ in range(4)
        ]
    if name == "glm32":
        X = r(40000, 32, dt=f4)
        y = (X @ r(32, dt=f4) + r(40000, dt=f4) > 0).astype(f4)
        return [X, y], [numpy.zeros(32, f4), numpy.zeros((), f4)]
    if name == "patches":
        return [r(32, 3, 16, 16, dt=f4), r(32, 5, dt=f4)], [
            r(8, 3, 9, scale=0.2, dt=f4),
            numpy.zeros(8, f4),
            r(8, 5, scale=0.3, dt=f4),
        ]
    return data_5(name)


def data_5(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a fifth-round model."""
    rng = numpy.random.default_rng(5)
    r = _drawer(rng)

    if name == "heat":
        x = numpy.linspace(0, 1, 256)
        u0 = numpy.sin(numpy.pi * x[None, :] * numpy.arange(1, 33)[:, None])
        return [u0 * 0.9], [u0 + r(32, 256, scale=0.01), numpy.full(256, 0.2)]
    if name == "phi4":
        return [], [r(128, 128, scale=0.5), numpy.array(0.15), numpy.array(0.5)]
    if name == "tsne":
        X = r(400, 10)
        d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
        P = numpy.exp(-d2 / 10.0) * (1 - numpy.eye(400))
        return [P / P.sum(), 1 - numpy.eye(400)], [r(400, 2, scale=1e-2)]
    if name == "hmm":
        return [r(60, 32) * 2], [r(8, 8, scale=0.1), r(8), numpy.zeros(8)]
    if name == "eigh":
        return [r(64, 64)], [r(64, 64, scale=0.1), numpy.ones(64)]
    if name == "fftconv":
        X = r(16, 1024)
        k = numpy.exp(-numpy.arange(1024) / 8.0)
        Y = numpy.fft.irfft(numpy.fft.rfft(X) * numpy.fft.rfft(k), 1024)
        return [X, Y + r(16, 1024, scale=0.1)], [r(1024, scale=0.1)]
    if name == "trimmed":
        X = r(5000, 20)
        y = X @ r(20) + r(5000, scale=0.3) + (rng.random(5000) < 0.1) * 20.0
        return [X, y], [numpy.zeros(20)]
    return data_6(name)


def data_6(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a sixth-round model."""
    rng = numpy.random.default_rng(6)
    r = _drawer(rng)
    f4 = numpy.float32
    if name == "gcn":
        A = (rng.random((600, 600)) < 0.01).astype(numpy.float64)
        A = numpy.maximum(A, A.T) + numpy.eye(600)
        d = A.sum(axis=1) ** -0.5
        mask = rng.random(600) < 0.3
        labels = rng.integers(0, 7, 600)
        return [(d[:, None] * A * d[None, :]).astype(f4), r(600, 32, dt=f4), mask, labels], [
            r(32, 32, scale=0.2, dt=f4),
            r(32, 7, scale=0.2, dt=f4),
        ]
    if name == "contrast":
        X = r(256, 64, dt=f4)
        return [X + r(256, 64, scale=0.3, dt=f4), X + r(256, 64, scale=0.3, dt=f4)], [
            r(64, 32, scale=0.1, dt=f4)
        ]
    if name == "flow":
        return [r(2000, 2)], [r(8, 2, scale=0.5), r(8, 2, scale=0.5), r(8, scale=0.1)]
    if name == "kalman":
        H = numpy.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
        return [H, numpy.cumsum(r(40, 2), axis=0)], [
            numpy.eye(4) + r(4, 4, scale=0.05),
            numpy.full(4, -2.0),
            numpy.full(2, -1.0),
        ]
    if name == "tv":
        f = numpy.kron(rng.random((8, 8)) > 0.5, numpy.ones((16, 16))) + r(128, 128, scale=0.2)
        return [f], [f.copy()]
    if name == "schrod":
        x = numpy.linspace(-10, 10, 256, endpoint=False)
        k = 2 * numpy.pi * numpy.fft.fftfreq(256, d=x[1] - x[0])
        psi0 = numpy.exp(-((x[None, :] - numpy.arange(-4, 4)[:, None]) ** 2) + 1j * x)
        target = numpy.roll(psi0, 8, axis=1)
        return [psi0, numpy.exp(-0.5j * 0.05 * k**2), target], [0.1 * x**2 / 10]
    if name == "mdn":
        x = rng.uniform(-1, 1, (1024, 1))
        y = numpy.sin(3 * x) + 0.3 * x * rng.standard_normal((1024, 1))
        return [x.astype(f4), y.astype(f4)], [
            r(1, 64, dt=f4),
            numpy.zeros(64, f4),
            r(64, 15, scale=0.2, dt=f4),
        ]
    if name == "ridge":
        X, Xv = r(500, 50), r(200, 50)
        w = r(50) * (rng.random(50) < 0.3)
        return [X, X @ w + r(500), Xv, Xv @ w, numpy.eye(50)], [numpy.array(0.0)]
    return data_7(name)


def data_7(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a seventh-round model."""
    rng = numpy.random.default_rng(7)
    r = _drawer(rng)
    if name == "persample":
        return [r(64, 16), r(64)], [r(32, 16, scale=0.3), numpy.zeros(32), r(32, scale=0.3)]
    if name == "hazard":
        t = rng.integers(0, 20, 2000)
        return [r(2000, 10), t, (rng.random(2000) < 0.8).astype(numpy.float64)], [
            r(10, scale=0.1),
            numpy.full(20, -2.0),
        ]
    if name == "cp":
        A, B, C = r(30, 4), r(30, 4), r(30, 4)
        T = numpy.einsum("ir,jr,kr->ijk", A, B, C) + r(30, 30, 30, scale=0.1)
        return [T], [r(30, 8, scale=0.5), r(30, 8, scale=0.5), r(30, 8, scale=0.5)]
    if name == "triplet":
        labels = rng.integers(0, 8, 256)
        X = r(256, 32) + 2 * numpy.eye(8)[labels] @ r(8, 32)
        same = labels[:, None] == labels[None, :]
        return [X, same.astype(numpy.float64)], [r(32, 16, scale=0.2)]
    if name == "negbin":
        X = r(10000, 10, scale=0.3)
        y = rng.negative_binomial(3, 0.4, 10000).astype(numpy.float64)
        return [X, y], [numpy.zeros(10), numpy.array(1.0)]
    if name == "gmmfull":
        X = numpy.concatenate([r(500, 3) + 3 * k for k in range(4)])
        L0 = numpy.tile(numpy.eye(3), (4, 1, 1))
        return [X, numpy.tril(numpy.ones((3, 3)))], [r(4, 3, scale=2.0), L0 + r(4, 3, 3, scale=0.1)]
    return data_8(name)


def data_8(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of an eighth-round model."""
    rng = numpy.random.default_rng(8)
    r = _drawer(rng)
    if name == "mpnn":
        src, dst = rng.integers(0, 500, 3000), rng.integers(0, 500, 3000)
        return [r(500, 16), src, dst, r(16)], [
            r(16, 16, scale=0.2),
            r(16, 16, scale=0.2),
            r(16, 16, scale=0.2),
        ]
    if name == "splitlstm":
        return [r(20, 32, 8), r(32, 4), numpy.zeros((32, 32))], [
            r(8, 128, scale=0.2),
            r(32, 128, scale=0.1),
            numpy.zeros(128),
            r(32, 4, scale=0.1),
        ]
    if name == "cplx":
        X = r(512, 32) + 1j * r(512, 32)
        return [X, r(512, 8)], [r(32, 64, scale=0.1), r(32, 64, scale=0.1), r(64, 8, scale=0.1)]
    if name == "kron":
        return [r(16, 16, 64), r(256, 64)], [r(16, 16, scale=0.3), r(16, 16, scale=0.3)]
    if name == "segmean":
        ids = rng.integers(0, 50, 20000)
        return [r(20000, 8), ids, r(50)], [r(8, scale=0.3)]
    if name == "jacdet":
        return [r(2000, 3)], [r(3, 3, scale=0.5), r(3, 3, scale=0.5)]
    return data_9(name)


def data_9(name: str) -> tuple[list[Any], list[Any]]:
    """(constants, parameters) of a ninth-round model."""
    rng = numpy.random.default_rng(9)
    r = _drawer(rng)
    if name == "holt":
        t = numpy.arange(120.0)
        Y = 0.05 * t[:, None] * rng.random(8) + numpy.sin(t[:, None] / 7) + r(120, 8, scale=0.2)
        return [Y], [numpy.array(0.0), numpy.array(-1.0)]
    if name == "maml":
        xs = rng.uniform(-3, 3, (4, 2, 20, 1))  # 4 tasks: support and query sets
        amp, phase = rng.uniform(0.5, 2, 4), rng.uniform(0, 3, 4)
        ys = amp[:, None, None, None] * numpy.sin(xs + phase[:, None, None, None])
        return [xs, ys], [r(1, 32), numpy.zeros(32), r(32, 1, scale=0.2), numpy.zeros(1)]
    if name == "pose":
        P = r(2000, 3) + numpy.array([0.0, 0.0, 8.0])
        uv = P[:, :2] / P[:, 2:] * 500 + r(2000, 2, scale=2)
        return [P, uv], [r(3, scale=0.05), r(3, scale=0.1), numpy.array(6.0)]
    if name == "siren":
        g = numpy.linspace(-1, 1, 64)
        C = numpy.stack(numpy.meshgrid(g, g), -1).reshape(-1, 2).astype(numpy.float32)
        img = numpy.sin(5 * C[:, :1] + 1) * numpy.cos(3 * C[:, 1:] - 0.5) + 0.2 * C[:, :1]
        u = numpy.float32
        return [C, img.astype(u)], [
            rng.uniform(-1, 1, (2, 64)).astype(u) * 15,
            numpy.zeros(64, u),
            rng.uniform(-1, 1, (64, 64)).astype(u) * numpy.sqrt(6 / 64).astype(u),
            numpy.zeros(64, u),
            rng.uniform(-1, 1, (64, 1)).astype(u) * numpy.sqrt(6 / 64).astype(u),
        ]
    if name == "moe":
        return [r(512, 16), r(512, 16)], [r(16, 4, scale=0.3), r(4, 16, 16, scale=0.25)]
    if name == "angles":
        i, j, k = (rng.integers(0, 500, 1500) for _ in range(3))
        k = numpy.where(k == j, (k + 1) % 500, k)  # no bond of zero length
        i = numpy.where(i == j, (i + 2) % 500, i)
        return [i, j, k, rng.uniform(1.5, 2.2, 1500)], [r(500, 3, scale=2.0)]
    if name == "svdnorm":
        M = r(60, 4) @ r(4, 40)
        mask = (rng.random((60, 40)) < 0.3).astype(numpy.float64)
        return [M * mask, mask], [r(60, 40, scale=0.1)]
    if name == "deconv1":
        k = numpy.exp(-0.5 * (numpy.arange(-15, 16) / 4.0) ** 2)
        k /= k.sum()
        y = numpy.convolve(numpy.sign(numpy.sin(numpy.arange(2000) / 40)), k, "same")
        return [y + r(2000, scale=0.05), k], [numpy.zeros(2000)]
    raise ValueError(name)


def loss(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """The model's loss, written once: ``np`` is the namespace, ``ops`` the few calls whose
    spelling differs between NumPy and PyTorch (means and log-sum-exps along an axis, relu)."""
    if name == "lnmlp":
        W1, g, b, W2 = params
        X, T = consts
        H = X @ W1
        mu = ops.mean(H, 1)
        v = ops.mean((H - mu) ** 2, 1)
        R = np.tanh((H - mu) / np.sqrt(v + 1e-5) * g + b) @ W2 - T
        return (R * R).mean()
    if name == "mog":
        mu, logs, logw = params
        (X,) = consts
        d2 = ((X[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2)
        lp = -0.5 * d2 / np.exp(2 * logs) - 2 * logs + logw - ops.lse(logw, 0)
        return -ops.lse(lp, 1).mean()
    if name == "mf":
        U, V = params
        i, j, r = consts
        p = (U[i] * V[j]).sum(axis=1)
        return ((p - r) ** 2).mean() + 0.01 * ((U * U).sum() + (V * V).sum())
    if name == "springs":
        (P,) = params
        L, mask = consts
        D = P[:, None, :] - P[None, :, :]
        d = np.sqrt((D * D).sum(axis=-1) + 1e-9)
        return (mask * (d - L) ** 2).sum()
    if name == "softreg":
        W, b = params
        X, Y = consts
        z = X @ W + b
        return -((z - ops.lse(z, 1)[:, None]) * Y).sum() / X.shape[0]
    if name == "vae":
        W1, b1, W2, b2, W3, b3, W4, b4 = params
        X, eps = consts
        s = np.tanh(X @ W1 + b1) @ W2 + b2
        m, lv = s[:, :8], s[:, 8:]
        z = m + np.exp(0.5 * lv) * eps
        xl = np.tanh(z @ W3 + b3) @ W4 + b4
        rec = (ops.relu(xl) - xl * X + np.log(1 + np.exp(-np.abs(xl)))).sum()
        kl = -0.5 * (1 + lv - m * m - np.exp(lv)).sum()
        return (rec + kl) / X.shape[0]
    if name == "poly":
        (w,) = params
        x, y = consts
        F = ops.stack([x**k for k in range(6)])
        return ((F @ w - y) ** 2).mean()
    if name == "kde":
        (logh,) = params
        X, Y = consts
        D = Y[:, None, :] - X[None, :, :]
        h2 = np.exp(2 * logh)
        K = np.exp(-0.5 * (D * D).sum(axis=2) / h2)
        return -np.log(K.mean(axis=1) + 1e-12).mean() + 1.5 * np.log(h2)
    return loss_2(name, np, ops, params, consts)


def loss_2(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A second-round model's loss (as :func:`loss`)."""
    if name == "lstm":
        Wx, Wh, b, Wo = params
        X, T = consts
        h = c = None
        for t in range(X.shape[0]):
            z = X[t] @ Wx + b if h is None else X[t] @ Wx + h @ Wh + b
            i, f, o, u = z[:, :64], z[:, 64:128], z[:, 128:192], z[:, 192:]
            i, f, o = 1 / (1 + np.exp(-i)), 1 / (1 + np.exp(-f)), 1 / (1 + np.exp(-o))
            c = i * np.tanh(u) if c is None else f * c + i * np.tanh(u)
            h = o * np.tanh(c)
        R = h @ Wo - T
        return (R * R).mean()
    if name == "tblock":
        g1, b1, Wqkv, Wo, g2, b2, W1, W2 = params
        (X,) = consts
        B, S, D = X.shape

        def ln(x, g, b):
            mu = ops.mean(x, -1)
            v = ops.mean((x - mu) ** 2, -1)
            return (x - mu) / np.sqrt(v + 1e-5) * g + b

        h = ln(X, g1, b1)
        qkv = h @ Wqkv
        q, k, v = (
            ops.perm(qkv[:, :, i * D : (i + 1) * D].reshape(B, S, 4, D // 4), (0, 2, 1, 3))
            for i in range(3)
        )
        s = q @ ops.perm(k, (0, 1, 3, 2)) / float(numpy.sqrt(D // 4))
        s = s - ops.amax(s, -1)
        p = np.exp(s)
        p = p / ops.sum(p, -1)
        a = ops.perm(p @ v, (0, 2, 1, 3)).reshape(B, S, D)
        x = X + a @ Wo
        u = ln(x, g2, b2) @ W1
        u = 0.5 * u * (1 + np.tanh(0.7978845608 * (u + 0.044715 * u**3)))
        y = x + u @ W2
        return (y * y).mean()
    if name == "poisson":
        (w,) = params
        X, y = consts
        z = X @ w
        return (np.exp(z) - y * z).mean() + 0.01 * np.sqrt(w * w + 1e-6).sum()
    if name == "rk4":
        (th,) = params
        y0, target = consts

        def f(y):
            a, b = y[:, 0:1], y[:, 1:2]
            return ops.cat([th[0] * a - th[1] * a * b, th[2] * a * b - th[3] * b])

        y = y0
        dt = 0.08
        for _ in range(25):
            k1 = f(y)
            k2 = f(y + dt / 2 * k1)
            k3 = f(y + dt / 2 * k2)
            k4 = f(y + dt * k3)
            y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return ((y - target) ** 2).mean()
    if name == "w2v":
        Ein, Eout = params
        c, o, neg = consts
        u = Ein[c]
        pos = (u * Eout[o]).sum(axis=1)
        ng = (Eout[neg] * u[:, None, :]).sum(axis=2)
        return (ops.softplus(-pos) + ops.softplus(ng).sum(axis=1)).mean()
    if name == "cox":
        (w,) = params
        X, event = consts
        r = X @ w
        lse = np.log(ops.flip(ops.cumsum(ops.flip(np.exp(r)))))
        return -((r - lse) * event).sum() / event.sum()
    if name == "huber":
        (w,) = params
        X, y = consts
        r = X @ w - y
        a = np.abs(r)
        return (
            np.where(a < 1.0, 0.5 * r * r, a - 0.5).mean()
            + 0.1 * (np.clip(w, -1.0, 1.0) ** 2).sum()
        )
    if name == "bilinear":
        W, b = params
        x, y, Y = consts
        z = np.einsum("bi,oij,bj->bo", x, W, y) + b
        m = ops.amax(z, 1)
        lp = z - m - np.log(ops.sum(np.exp(z - m), 1))
        return -(lp * Y).sum() / x.shape[0]
    if name == "pool":
        W1, W2 = params
        X, Y = consts
        H = ops.relu(X @ W1).reshape(64, 8, 16, 16)
        P = ops.amax(ops.amax(H.reshape(64, 8, 8, 2, 8, 2), 5), 3).reshape(64, 8 * 64)
        z = P @ W2
        m = ops.amax(z, 1)
        lp = z - m - np.log(ops.sum(np.exp(z - m), 1))
        return -(lp * Y).sum() / X.shape[0]
    return loss_3(name, np, ops, params, consts)


def loss_3(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A third-round model's loss (as :func:`loss`)."""
    if name == "bnmlp":
        W1, g, b, W2, b2 = params
        X, y, rows = consts
        H = X @ W1
        mu, var = ops.mean(H, 0), ops.var(H, 0)
        A = ops.relu((H - mu) / np.sqrt(var + 1e-5) * g + b)
        z = A @ W2 + b2
        z = z - ops.amax(z, 1)
        logp = z - np.log(ops.sum(np.exp(z), 1))
        return -logp[rows, y].mean()
    if name == "sinkhorn":
        (X,) = params
        Y, a, b = consts
        C = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
        K = np.exp(-C / 2.0)
        v = b * 0 + 1
        for _ in range(30):
            u = a / (K @ v)
            v = b / (K.T @ u)
        return (u[:, None] * K * v[None, :] * C).sum()
    if name == "spectrum":
        (x,) = params
        (T,) = consts
        mag = np.abs(ops.rfft(x))
        return ((mag - T) ** 2).mean() + 0.1 * ((x[1:] - x[:-1]) ** 2).sum()
    if name == "nbody":
        (V,) = params
        P, m, target = consts

        def acc(P):
            D = P[None, :, :] - P[:, None, :]
            inv = ((D * D).sum(axis=2) + 0.01) ** -1.5
            return (D * (inv * m[None, :])[:, :, None]).sum(axis=1)

        dt = 0.01
        a = acc(P)
        for _ in range(10):
            V = V + 0.5 * dt * a
            P = P + dt * V
            a = acc(P)
            V = V + 0.5 * dt * a
        return ((P - target) ** 2).sum()
    if name == "conv1d":
        W, b, W2 = params
        X, T = consts
        h = ops.relu(np.einsum("bclk,ock->bol", ops.windows(X, 5), W) + b[None, :, None])
        R = h.mean(axis=2) @ W2 - T
        return (R * R).mean()
    if name == "mvn":
        A, mu = params
        X, eye = consts
        L = ops.cholesky(A @ A.T + 0.1 * eye)
        Z = ops.solve(L, (X - mu).T)
        return 0.5 * (Z * Z).sum() / X.shape[0] + np.log(ops.diag(L)).sum()
    return loss_4(name, np, ops, params, consts)


def loss_4(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A fourth-round model's loss (as :func:`loss`)."""
    if name == "gru":
        Wx, Wh, b, Wo = params
        X, T, h = consts
        hs = []
        for t in range(X.shape[0]):
            gx, gh = X[t] @ Wx + b, h @ Wh
            z = 1 / (1 + np.exp(-(gx[:, :32] + gh[:, :32])))
            rg = 1 / (1 + np.exp(-(gx[:, 32:64] + gh[:, 32:64])))
            n = np.tanh(gx[:, 64:] + rg * gh[:, 64:])
            h = (1 - z) * n + z * h
            hs.append(h)
        return ((ops.stack(hs) @ Wo - T) ** 2).mean()
    if name == "matern":
        log_l, log_s, log_n = params
        D, y, eye = consts
        a = 3**0.5 * D / np.exp(log_l)
        K = np.exp(2 * log_s) * (1 + a) * np.exp(-a) + (np.exp(log_n) + 1e-6) * eye
        L = ops.cholesky(K)
        alpha = ops.solve(L, y)
        return 0.5 * (alpha * alpha).sum() + np.log(ops.diag(L)).sum()
    if name == "morse":
        (P,) = params
        i, j = consts
        d = P[i] - P[j]
        r = np.sqrt((d * d).sum(axis=1))
        return (2.0 * (1 - np.exp(-1.5 * (r - 1.1))) ** 2 - 2.0).sum()
    if name == "causal":
        Wq, Wk, Wv, Wo = params
        X, T, mask = consts
        s = (X @ Wq) @ ops.perm(X @ Wk, (0, 2, 1)) / float(numpy.sqrt(32))
        s = np.where(mask, s, -1e9)
        p = np.exp(s - ops.amax(s, -1))
        a = (p / ops.sum(p, -1)) @ (X @ Wv)
        return (((X + a @ Wo) - T) ** 2).mean()
    if name == "glm32":
        w, c = params
        X, y = consts
        z = X @ w + c
        return (ops.softplus(z) - y * z).mean() + 1e-3 * (w * w).sum()
    if name == "patches":
        W, b, Wo = params
        x, T = consts
        cols = ops.stackl([x[:, :, i : i + 14, j : j + 14] for i in range(3) for j in range(3)])
        h = ops.relu(np.einsum("bchwk,fck->bfhw", cols, W) + b[None, :, None, None])
        R = h.mean(axis=(2, 3)) @ Wo - T
        return (R * R).mean()
    return loss_5(name, np, ops, params, consts)


def loss_5(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A fifth-round model's loss (as :func:`loss`)."""
    if name == "heat":
        u, kappa = params
        (T,) = consts
        for _ in range(50):
            lap = u[:, :-2] - 2 * u[:, 1:-1] + u[:, 2:]
            u = ops.cat([u[:, :1], u[:, 1:-1] + 0.25 * kappa[1:-1] * lap, u[:, -1:]])
        return ((u - T) ** 2).mean()
    if name == "phi4":
        phi, kappa, lam = params
        hop = phi * (ops.roll(phi, 1, 0) + ops.roll(phi, 1, 1))
        phi2 = phi * phi
        return (-2 * kappa * hop + phi2 + lam * (phi2 - 1) ** 2).sum()
    if name == "tsne":
        (Y,) = params
        P, off = consts
        D = Y[:, None, :] - Y[None, :, :]
        num = off / (1 + (D * D).sum(axis=2))
        Q = num / num.sum()
        return (P * (np.log(P + 1e-12) - np.log(Q + 1e-12))).sum()
    if name == "hmm":
        A, mu, pi = params
        (x,) = consts
        logA = A - ops.lse(A, 1)[:, None]
        loge = -0.5 * (x[:, :, None] - mu) ** 2
        la = pi - ops.lse(pi, 0) + loge[0]
        for t in range(1, x.shape[0]):
            la = ops.lse(la[:, :, None] + logA[None], 1) + loge[t]
        return -ops.lse(la, 1).mean()
    if name == "eigh":
        B, d = params
        (M,) = consts
        w = ops.eigvalsh(B @ B.T + M @ np.diag(d) @ M.T / 64)
        return w[:4].sum() + 0.01 * (w * w).mean()
    if name == "fftconv":
        (k,) = params
        X, Y = consts
        R = ops.irfft(ops.rfft(X) * ops.rfft(k), X.shape[-1]) - Y
        return (R * R).mean() + 1e-3 * (k * k).sum()
    if name == "trimmed":
        (w,) = params
        X, y = consts
        r2 = (X @ w - y) ** 2
        return ops.sort(r2)[:4500].mean()
    return loss_6(name, np, ops, params, consts)


def loss_6(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A sixth-round model's loss (as :func:`loss`)."""
    if name == "gcn":
        W1, W2 = params
        A, X, mask, labels = consts
        h = ops.relu(A @ (X @ W1))
        z = A @ (h @ W2)
        logp = z - ops.lse(z, 1)[:, None]
        picked = logp[np.arange(z.shape[0]), labels]
        return -np.where(mask, picked, 0).sum() / mask.sum()
    if name == "contrast":
        (W,) = params
        X1, X2 = consts
        z1, z2 = X1 @ W, X2 @ W
        z1 = z1 / ops.norm(z1, 1)
        z2 = z2 / ops.norm(z2, 1)
        S = z1 @ z2.T / 0.1
        return (ops.lse(S, 1) - ops.diag(S)).mean()
    if name == "flow":
        U, Wf, b = params
        (z,) = consts
        logdet = 0.0
        for k in range(U.shape[0]):
            t = np.tanh(z @ Wf[k] + b[k])
            z = z + U[k] * t[:, None]
            logdet = logdet + np.log(np.abs(1 + (1 - t * t) * (U[k] @ Wf[k])))
        return (0.5 * (z * z).sum(axis=1) - logdet).mean()
    if name == "kalman":
        F, logq, logr = params
        H, Y = consts
        x, P = Y[0] @ H, H.T @ H
        Q, R = np.diag(np.exp(logq)), np.diag(np.exp(logr))
        nll = 0.0
        for t in range(1, Y.shape[0]):
            x, P = F @ x, F @ P @ F.T + Q
            S = H @ P @ H.T + R
            v = Y[t] - H @ x
            K = P @ H.T @ ops.inv(S)
            nll = nll + 0.5 * (ops.logdet(S) + v @ ops.solve(S, v))
            x, P = x + K @ v, P - K @ H @ P
        return nll
    if name == "tv":
        (u,) = params
        (f,) = consts
        dx = ops.pad(np.diff(u, axis=0), ((0, 1), (0, 0)))
        dy = ops.pad(np.diff(u, axis=1), ((0, 0), (0, 1)))
        return 0.5 * ((u - f) ** 2).sum() + 0.1 * np.sqrt(dx * dx + dy * dy + 1e-4).sum()
    if name == "schrod":
        (V,) = params
        psi, kin, target = consts
        for _ in range(30):
            psi = ops.ifft(kin * ops.fft(np.exp(-0.05j * V) * psi))
        return (np.abs(psi - target) ** 2).sum()
    if name == "mdn":
        W1, b1, W2 = params
        x, y = consts
        out = np.tanh(x @ W1 + b1) @ W2
        logit, mu, logs = out[:, :5], out[:, 5:10], out[:, 10:]
        logpi = logit - ops.lse(logit, 1)[:, None]
        ll = logpi - 0.5 * ((y - mu) / np.exp(logs)) ** 2 - logs - 0.9189385
        return -ops.lse(ll, 1).mean()
    if name == "ridge":
        (loglam,) = params
        X, y, Xv, yv, eye = consts
        w = ops.inv(X.T @ X + np.exp(loglam) * eye) @ (X.T @ y)
        return ((Xv @ w - yv) ** 2).mean()
    return loss_7(name, np, ops, params, consts)


def loss_7(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A seventh-round model's loss (as :func:`loss`)."""
    if name == "persample":
        W, b, v = params
        X, y = consts
        total = 0.0
        for i in range(X.shape[0]):  # one sample at a time, as first drafts are written
            total = total + (np.tanh(W @ X[i] + b) @ v - y[i]) ** 2
        return total / X.shape[0]
    if name == "hazard":
        w, base = params
        X, t, event = consts
        h = 1 / (1 + np.exp(-(X @ w)[:, None] - base))
        S = ops.cumprod(1 - h, 1)
        ht = ops.along(h, t[:, None], 1)[:, 0]
        St = ops.along(S, t[:, None], 1)[:, 0]
        return -(event * np.log(ht * St / (1 - ht)) + (1 - event) * np.log(St)).mean()
    if name == "cp":
        A, B, C = params
        (T,) = consts
        R = np.einsum("ir,jr,kr->ijk", A, B, C) - T
        return (R * R).mean()
    if name == "triplet":
        (W,) = params
        X, same = consts
        Z = X @ W
        sq = (Z * Z).sum(axis=1)
        D = sq[:, None] + sq[None, :] - 2 * Z @ Z.T
        hardest_pos = ops.argmax(D * same, 1)
        hardest_neg = ops.argmax(-D - 1e6 * same, 1)
        dp = ops.along(D, hardest_pos[:, None], 1)[:, 0]
        dn = ops.along(D, hardest_neg[:, None], 1)[:, 0]
        return ops.relu(dp - dn + 1.0).mean()
    if name == "negbin":
        w, logr = params
        X, y = consts
        mu, r_ = np.exp(X @ w), np.exp(logr)
        ll = (
            ops.gammaln(y + r_)
            - ops.gammaln(r_)
            + r_ * np.log(r_ / (r_ + mu))
            + y * np.log(mu / (r_ + mu))
        )
        return -ll.mean()
    if name == "gmmfull":
        mu, L = params
        X, lower = consts
        Lk = L * lower  # lower-triangular factors of the precisions
        diff = X[None, :, :] - mu[:, None, :]  # (4, n, 3)
        z = np.matmul(diff, Lk)  # (4, n, 3)
        logdet = np.log(np.abs(ops.diag3(Lk))).sum(axis=1)
        logp = logdet[:, None] - 0.5 * (z * z).sum(axis=2)
        return -ops.lse(logp, 0).mean()
    return loss_8(name, np, ops, params, consts)


def loss_8(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """An eighth-round model's loss (as :func:`loss`)."""
    if name == "mpnn":
        Wm, U, Wo = params
        H, src, dst, y = consts
        for _ in range(2):  # two rounds of messages along the edges, summed at their targets
            msg = np.tanh(H[src] @ Wm)
            agg = ops.segsum(msg, dst, H)
            H = np.tanh(agg + H @ U)
        R = H.mean(axis=0) @ Wo - y
        return (R * R).sum()
    if name == "splitlstm":
        Wx, Wh, b, Wo = params
        X, T, h0 = consts
        h = c = h0
        for t in range(X.shape[0]):
            i, f, o, u = ops.split(X[t] @ Wx + h @ Wh + b, 4)
            c = ops.expit(f) * c + ops.expit(i) * np.tanh(u)
            h = ops.expit(o) * np.tanh(c)
        R = h @ Wo - T
        return (R * R).mean()
    if name == "cplx":
        Wr, Wi, Wo = params
        X, T = consts
        Z = X @ (Wr + 1j * Wi)  # a complex layer, its modulus as the activation
        R = np.abs(Z) @ Wo - T
        return (R * R).mean()
    if name == "kron":
        A, B = params
        X, Y = consts
        R = ops.kron(A, B) @ X.reshape(256, 64) - Y
        return (R * R).mean()
    if name == "segmean":
        (w,) = params
        X, ids, target = consts
        s = X @ w
        sums = ops.segsum(s, ids, target)  # group sums by numpy.add.at (numpy.bincount with
        counts = ops.segsum(s * 0 + 1, ids, target)  # weights: refused by jit, as by JAX's)
        return ((sums / counts - target) ** 2).sum()
    if name == "jacdet":
        A, B = params
        (X,) = consts
        # the Jacobian of x -> A tanh(B x) at each point: A diag(1 - tanh^2) B
        d = 1 - np.tanh(X @ B.T) ** 2
        J = np.matmul(A[None] * d[:, None, :], B[None])
        return -ops.logdet(J).mean() + 0.01 * ((A * A).sum() + (B * B).sum())
    return loss_9(name, np, ops, params, consts)


def loss_9(name: str, np: Any, ops: Any, params: list[Any], consts: list[Any]) -> Any:
    """A ninth-round model's loss (as :func:`loss`)."""
    if name == "holt":
        a, b = params
        (Y,) = consts
        alpha, beta = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
        level, trend, err = Y[0], Y[1] - Y[0], 0.0
        for t in range(1, Y.shape[0]):
            pred = level + trend
            err = err + ((Y[t] - pred) ** 2).sum()
            new = alpha * Y[t] + (1 - alpha) * pred
            trend = beta * (new - level) + (1 - beta) * trend
            level = new
        return err / (Y.shape[0] * Y.shape[1])
    if name == "maml":
        xs, ys = consts

        def net(p: Any, x: Any) -> Any:
            return np.tanh(x @ p[0] + p[1]) @ p[2] + p[3]

        def task_loss(p: Any, x: Any, y: Any) -> Any:
            return ((net(p, x) - y) ** 2).mean()

        total = 0.0
        for k in range(xs.shape[0]):
            g = ops.grad(lambda p, x=xs[k, 0], y=ys[k, 0]: task_loss(p, x, y), params)
            fast = [p - 0.05 * gp for p, gp in zip(params, g)]
            total = total + task_loss(fast, xs[k, 1], ys[k, 1])
        return total / xs.shape[0]
    if name == "pose":
        w, t, logf = params
        P, uv = consts
        theta = np.sqrt((w * w).sum() + 1e-12)
        k = w / theta
        kxp = ops.cross(k[None, :], P)
        Q = P * np.cos(theta) + kxp * np.sin(theta) + k * (P @ k)[:, None] * (1 - np.cos(theta))
        Q = Q + t
        proj = Q[:, :2] / Q[:, 2:] * np.exp(logf)
        R = proj - uv
        return (R * R).mean()
    if name == "siren":
        W1, b1, W2, b2, W3 = params
        C, img = consts
        h = np.sin(C @ W1 + b1)
        h = np.sin(30 * (h @ W2 + b2))
        R = h @ W3 - img
        return (R * R).mean()
    if name == "moe":
        Wg, E = params
        X, T = consts
        logits = X @ Wg
        top = ops.argsort(logits, 1)[:, -2:]  # the two largest gates of each row
        sel = ops.along(logits, top, 1)
        gate = np.exp(sel - ops.amax(sel, 1))
        gate = gate / ops.sum(gate, 1)
        outs = ops.einsum("bi,eio->beo", X, E)  # every expert on every row
        chosen = ops.along(outs, top[:, :, None], 1)
        Y = (gate[:, :, None] * chosen).sum(axis=1)
        R = Y - T
        return (R * R).mean()
    if name == "angles":
        (P,) = params
        i, j, k, theta0 = consts
        u, v = P[i] - P[j], P[k] - P[j]
        cos = (u * v).sum(axis=1) / np.sqrt((u * u).sum(axis=1) * (v * v).sum(axis=1))
        theta = np.arccos(np.clip(cos, -0.999999, 0.999999))
        return ((theta - theta0) ** 2).sum()
    if name == "svdnorm":
        (X,) = params
        M, mask = consts
        R = (X - M) * mask
        return 0.5 * (R * R).sum() + 0.3 * ops.svdvals(X).sum()
    if name == "deconv1":
        (x,) = params
        y, k = consts
        R = ops.convolve(x, k) - y
        d = x[1:] - x[:-1]
        return (R * R).sum() + 0.1 * (d * d).sum()
    raise ValueError(name)


class NumpyOps:
    """The calls of :func:`loss` that differ between libraries, for NumPy and jax.numpy."""

    def __init__(self, np: Any) -> None:
        self.np = np

    def mean(self, x: Any, axis: int) -> Any:
        return x.mean(axis=axis, keepdims=True)

    def lse(self, x: Any, axis: int) -> Any:
        m = x.max(axis=axis, keepdims=True)  # differentiated, as the NumPy code is: no peer
        # gets a stop_gradient the NumPy code does not have
        return (self.np.log(self.np.exp(x - m).sum(axis=axis, keepdims=True)) + m).squeeze(axis)

    def relu(self, x: Any) -> Any:
        return self.np.maximum(x, 0)

    def stack(self, xs: list[Any]) -> Any:
        return self.np.stack(xs, axis=1)

    def stackl(self, xs: list[Any]) -> Any:
        return self.np.stack(xs, axis=-1)

    def sum(self, x: Any, axis: int) -> Any:
        return x.sum(axis=axis, keepdims=True)

    def amax(self, x: Any, axis: int) -> Any:
        return x.max(axis=axis, keepdims=True)

    def perm(self, x: Any, p: Any) -> Any:
        return x.transpose(p)

    def softplus(self, x: Any) -> Any:
        return self.np.logaddexp(0, x)

    def cat(self, xs: Any) -> Any:
        return self.np.concatenate(xs, axis=1)

    def flip(self, x: Any) -> Any:
        return x[::-1]

    def cumsum(self, x: Any) -> Any:
        return self.np.cumsum(x)

    def var(self, x: Any, axis: int) -> Any:
        return x.var(axis=axis, keepdims=True)

    def rfft(self, x: Any) -> Any:
        return self.np.fft.rfft(x)

    def windows(self, x: Any, k: int) -> Any:
        if self.np is numpy:
            return numpy.lib.stride_tricks.sliding_window_view(x, k, axis=-1)
        n = x.shape[-1] - k + 1  # jax.numpy has no sliding_window_view
        return self.np.stack([x[..., i : i + n] for i in range(k)], axis=-1)

    def cholesky(self, x: Any) -> Any:
        return self.np.linalg.cholesky(x)

    def solve(self, a: Any, b: Any) -> Any:
        return self.np.linalg.solve(a, b)

    def diag(self, x: Any) -> Any:
        return self.np.diagonal(x)

    def roll(self, x: Any, shift: int, axis: int) -> Any:
        return self.np.roll(x, shift, axis=axis)

    def eigvalsh(self, x: Any) -> Any:
        return self.np.linalg.eigh(x)[0]

    def irfft(self, x: Any, n: int) -> Any:
        return self.np.fft.irfft(x, n)

    def sort(self, x: Any) -> Any:
        return self.np.sort(x)

    def norm(self, x: Any, axis: int) -> Any:
        return self.np.linalg.norm(x, axis=axis, keepdims=True)

    def inv(self, x: Any) -> Any:
        return self.np.linalg.inv(x)

    def logdet(self, x: Any) -> Any:
        return self.np.linalg.slogdet(x)[1]

    def pad(self, x: Any, widths: Any) -> Any:
        return self.np.pad(x, widths)

    def fft(self, x: Any) -> Any:
        return self.np.fft.fft(x)

    def ifft(self, x: Any) -> Any:
        return self.np.fft.ifft(x)

    def cumprod(self, x: Any, axis: int) -> Any:
        return self.np.cumprod(x, axis=axis)

    def along(self, x: Any, idx: Any, axis: int) -> Any:
        return self.np.take_along_axis(x, idx, axis=axis)

    def argmax(self, x: Any, axis: int) -> Any:
        return self.np.argmax(x, axis=axis)

    def gammaln(self, x: Any) -> Any:
        if self.np is numpy:
            import scipy.special  # noqa: PLC0415

            return scipy.special.gammaln(x)
        import jax.scipy.special  # noqa: PLC0415

        return jax.scipy.special.gammaln(x)

    def diag3(self, x: Any) -> Any:
        return self.np.diagonal(x, axis1=1, axis2=2)

    def segsum(self, v: Any, ids: Any, like: Any) -> Any:
        if self.np is numpy:
            out = numpy.zeros_like(like)  # a tensor where ``like`` is one: writes recorded
            numpy.add.at(out, ids, v)
            return out
        return self.np.zeros(like.shape, like.dtype).at[ids].add(v)

    def split(self, z: Any, k: int) -> Any:
        return self.np.split(z, k, axis=1)

    def expit(self, x: Any) -> Any:
        if self.np is numpy:
            import scipy.special  # noqa: PLC0415

            return scipy.special.expit(x)
        import jax.nn  # noqa: PLC0415

        return jax.nn.sigmoid(x)

    def kron(self, a: Any, b: Any) -> Any:
        return self.np.kron(a, b)

    def grad(self, f: Any, params: list[Any]) -> Any:
        if self.np is numpy:
            import chainrule  # noqa: PLC0415

            return chainrule.grad(f)(params)
        import jax  # noqa: PLC0415

        return jax.grad(f)(params)

    def cross(self, a: Any, b: Any) -> Any:
        return self.np.cross(a, b)

    def argsort(self, x: Any, axis: int) -> Any:
        return self.np.argsort(x, axis=axis)

    def einsum(self, spec: str, *xs: Any) -> Any:
        return self.np.einsum(spec, *xs)

    def svdvals(self, x: Any) -> Any:
        return self.np.linalg.svd(x, compute_uv=False)

    def convolve(self, x: Any, k: Any) -> Any:
        return self.np.convolve(x, k, "same")


class TorchOps:
    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def mean(self, x: Any, axis: int) -> Any:
        return x.mean(dim=axis, keepdim=True)

    def lse(self, x: Any, axis: int) -> Any:
        m = x.max(dim=axis, keepdim=True).values
        return (self.torch.log(self.torch.exp(x - m).sum(dim=axis, keepdim=True)) + m).squeeze(axis)

    def relu(self, x: Any) -> Any:
        return self.torch.relu(x)

    def stack(self, xs: list[Any]) -> Any:
        return self.torch.stack(xs, dim=1)

    def stackl(self, xs: list[Any]) -> Any:
        return self.torch.stack(xs, dim=-1)

    def sum(self, x: Any, axis: int) -> Any:
        return x.sum(dim=axis, keepdim=True)

    def amax(self, x: Any, axis: int) -> Any:
        return x.amax(dim=axis, keepdim=True)

    def perm(self, x: Any, p: Any) -> Any:
        return x.permute(p)

    def softplus(self, x: Any) -> Any:
        return self.torch.nn.functional.softplus(x)

    def cat(self, xs: Any) -> Any:
        return self.torch.cat(xs, dim=1)

    def flip(self, x: Any) -> Any:
        return self.torch.flip(x, (0,))

    def cumsum(self, x: Any) -> Any:
        return self.torch.cumsum(x, 0)

    def var(self, x: Any, axis: int) -> Any:
        return x.var(dim=axis, keepdim=True, unbiased=False)

    def rfft(self, x: Any) -> Any:
        return self.torch.fft.rfft(x)

    def windows(self, x: Any, k: int) -> Any:
        return x.unfold(-1, k, 1)

    def cholesky(self, x: Any) -> Any:
        return self.torch.linalg.cholesky(x)

    def solve(self, a: Any, b: Any) -> Any:
        return self.torch.linalg.solve(a, b)

    def diag(self, x: Any) -> Any:
        return self.torch.diagonal(x)

    def roll(self, x: Any, shift: int, axis: int) -> Any:
        return self.torch.roll(x, shift, axis)

    def eigvalsh(self, x: Any) -> Any:
        return self.torch.linalg.eigh(x)[0]

    def irfft(self, x: Any, n: int) -> Any:
        return self.torch.fft.irfft(x, n)

    def sort(self, x: Any) -> Any:
        return self.torch.sort(x).values

    def norm(self, x: Any, axis: int) -> Any:
        return self.torch.linalg.norm(x, dim=axis, keepdim=True)

    def inv(self, x: Any) -> Any:
        return self.torch.linalg.inv(x)

    def logdet(self, x: Any) -> Any:
        return self.torch.linalg.slogdet(x)[1]

    def pad(self, x: Any, widths: Any) -> Any:
        flat = [w for pair in reversed(widths) for w in pair]  # last axis first
        return self.torch.nn.functional.pad(x, flat)

    def fft(self, x: Any) -> Any:
        return self.torch.fft.fft(x)

    def ifft(self, x: Any) -> Any:
        return self.torch.fft.ifft(x)

    def cumprod(self, x: Any, axis: int) -> Any:
        return self.torch.cumprod(x, axis)

    def along(self, x: Any, idx: Any, axis: int) -> Any:
        return self.torch.take_along_dim(x, idx, axis)

    def argmax(self, x: Any, axis: int) -> Any:
        return self.torch.argmax(x, axis)

    def gammaln(self, x: Any) -> Any:
        return self.torch.lgamma(x)

    def diag3(self, x: Any) -> Any:
        return self.torch.diagonal(x, dim1=1, dim2=2)

    def segsum(self, v: Any, ids: Any, like: Any) -> Any:
        return self.torch.zeros_like(like).index_add(0, ids, v)

    def split(self, z: Any, k: int) -> Any:
        return self.torch.chunk(z, k, dim=1)

    def expit(self, x: Any) -> Any:
        return self.torch.sigmoid(x)

    def kron(self, a: Any, b: Any) -> Any:
        return self.torch.kron(a, b)

    def grad(self, f: Any, params: list[Any]) -> Any:
        return self.torch.autograd.grad(f(params), params, create_graph=True)

    def cross(self, a: Any, b: Any) -> Any:
        return self.torch.linalg.cross(a, b, dim=-1)

    def argsort(self, x: Any, axis: int) -> Any:
        return self.torch.argsort(x, dim=axis)

    def einsum(self, spec: str, *xs: Any) -> Any:
        return self.torch.einsum(spec, *xs)

    def svdvals(self, x: Any) -> Any:
        return self.torch.linalg.svdvals(x)

    def convolve(self, x: Any, k: Any) -> Any:
        w = self.torch.flip(k, (0,))[None, None]  # numpy.convolve flips its kernel
        return self.torch.nn.functional.conv1d(x[None, None], w, padding=k.shape[0] // 2)[0, 0]


def step_fn(impl: str, name: str) -> Callable[[], tuple[Any, list[Any]]] | None:
    """One training step of ``impl`` on model ``name``: () -> (loss, gradients as arrays)."""
    consts, params = data(name)
    n = len(params)
    if impl in ("eager", "jit-auto"):
        import chainrule as cr  # noqa: PLC0415

        def f(*a: Any) -> Any:
            return loss(name, numpy, NumpyOps(numpy), list(a[:n]), list(a[n:]))

        vg = cr.value_and_grad(f, argnums=tuple(range(n)))
        if impl == "jit-auto":
            vg = cr.jit(vg, backend="auto")
        return lambda: vg(*params, *consts)
    try:
        if impl == "torch":
            import torch  # noqa: PLC0415
        else:
            import jax  # noqa: PLC0415
    except ImportError:
        return None
    if impl == "torch":
        torch.set_num_threads(1)
        tc = [torch.from_numpy(c) for c in consts]

        def torch_step() -> tuple[Any, list[Any]]:
            tp = [torch.from_numpy(p).requires_grad_() for p in params]
            value = loss(name, torch, TorchOps(torch), tp, tc)
            value.backward()
            return value.item(), [p.grad.numpy() for p in tp]  # type: ignore[union-attr]

        return torch_step
    sys.path.insert(0, HERE)
    from harness import _jax_cpu_client  # noqa: PLC0415

    _jax_cpu_client(1)  # one compute thread, as harness.py and bench_unseen.py do
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: PLC0415

    ops = NumpyOps(jnp)
    vg_jax = jax.jit(jax.value_and_grad(lambda p, c: loss(name, jnp, ops, p, c)))
    jp, jc = [jnp.asarray(p) for p in params], [jnp.asarray(c) for c in consts]

    def jax_step() -> tuple[Any, list[Any]]:
        value, grads = vg_jax(jp, jc)
        jax.block_until_ready(grads)
        return value, grads

    return jax_step


def worker(impl: str, name: str, ref_file: str) -> None:
    """Check against the reference gradients, then answer "run" with seconds per step."""
    step = step_fn(impl, name)
    if step is None:
        print("missing", flush=True)
        return
    value, grads = step()
    grads = [numpy.asarray(g) for g in grads]
    if impl == "eager":
        numpy.savez(ref_file, float(value), *grads)
    else:
        ref = numpy.load(ref_file)
        rtol = 2e-4 if grads[0].dtype == numpy.float32 else 1e-8
        numpy.testing.assert_allclose(float(value), ref["arr_0"], rtol=rtol)
        for k, g in enumerate(grads):
            r = ref[f"arr_{k + 1}"]
            numpy.testing.assert_allclose(g, r, rtol=rtol, atol=rtol * float(abs(r).max()))
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.3:
        step()
        n += 1
    reps = max(1, int(0.05 * n / (time.perf_counter() - t0)))
    print(f"ok {reps}", flush=True)
    for _line in sys.stdin:
        step()
        t0 = time.perf_counter()
        for _ in range(reps):
            step()
        print((time.perf_counter() - t0) / reps, flush=True)


def _ratio(med: dict[str, float], ours: str, peer: str) -> str:
    return f"{med[ours] / med[peer]:.2f}x" if ours in med and peer in med else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None)
    ap.add_argument("--round", type=int, choices=(1, 2, 3, 4, 5, 6, 7, 8, 9), default=None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--worker", nargs=3, metavar=("IMPL", "MODEL", "REF"))
    a = ap.parse_args()
    if a.worker:
        worker(*a.worker)
        return
    every = (MODELS, MODELS_2, MODELS_3, MODELS_4, MODELS_5, MODELS_6, MODELS_7, MODELS_8, MODELS_9)
    rounds = dict(enumerate(every, 1))
    if a.models is None:
        a.models = ",".join(rounds[a.round] if a.round else MODELS + MODELS_2)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    print(f"{'':9}" + "".join(f"{i:>13}" for i in IMPLS) + f"{'eager/torch':>13}{'jit/jax':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            ref = os.path.join(tmp, f"{name}.npz")
            procs = {}
            for impl in IMPLS:  # eager first: it writes the reference gradients
                argv = [__file__, "--worker", impl, name, ref]
                p = start_worker(argv, env, f"{impl} on {name}")
                if p is not None:
                    procs[impl] = p
            times: dict[str, list[float]] = {i: [] for i in IMPLS}
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
            med = {i: statistics.median(t) for i, t in times.items() if t}
            cells = [f"{med[i] * 1e3:10.3f} ms" if i in med else "-" for i in IMPLS]
            print(
                f"{name:9}"
                + "".join(f"{c:>13}" for c in cells)
                + f"{_ratio(med, 'eager', 'torch'):>13}{_ratio(med, 'jit-auto', 'jax'):>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()
