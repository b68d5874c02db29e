"""check_backward on a corpus of hand-written backward passes: one planted mistake each, or none.

Every backward pass below is written by hand (as a learner would), with one optional planted
mistake.  The correct versions are first confirmed against central finite differences, so which
gradients a mistake makes wrong is known independently of chainrule; the test then asks that
check_backward flags exactly those, never a right one, never crashes, and names the planted
kind of mistake in at least 90% of the cases.
"""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr

RNG = numpy.random.default_rng(2024)


def relu(z):
    return numpy.maximum(0, z)


def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


# --- 1. a 2-layer ReLU network, mean squared error over all of Y (3 outputs) -----------------


def mlp(W1, b1, W2, b2, X, T):
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Y = A1 @ W2 + b2
    return ((Y - T) ** 2).mean()


def mlp_backward(W1, b1, W2, b2, X, T, bug=None):
    Z1 = X @ W1 + b1
    A1 = relu(Z1)
    Y = A1 @ W2 + b2
    dY = 2 * (Y - T) / Y.size
    if bug == "missing-1/N":
        dY = 2 * (Y - T)
    if bug == "len-vs-size":
        dY = 2 * (Y - T) / len(X)
    if bug == "mse-missing-2":
        dY = (Y - T) / Y.size
    dW2 = A1.T @ dY
    if bug == "transposed":
        dW2 = dY.T @ A1
    db2 = dY.sum(axis=0)
    if bug == "keepdims":
        db2 = dY.sum(axis=0, keepdims=True)
    dA1 = dY @ W2.T
    mask = Z1 > 0
    if bug == "relu-mask-side":
        mask = Z1 < 0
    if bug == "relu-mask-missing":
        mask = 1
    dZ1 = dA1 * mask
    if bug == "relu-mask-from-A":
        dZ1 = dA1 * A1
    dW1 = X.T @ dZ1
    if bug == "sign":
        dW1 = -(X.T @ dZ1)
    db1 = dZ1.sum(axis=0)
    if bug == "bias-not-summed":
        db1 = dZ1
    if bug == "bias-wrong-axis":
        db1 = dZ1.sum(axis=1)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


MLP_ARGS = (
    RNG.normal(size=(4, 5)),
    RNG.normal(size=5) * 0.1,
    RNG.normal(size=(5, 3)),
    RNG.normal(size=3) * 0.1,
    RNG.normal(size=(8, 4)),
    RNG.normal(size=(8, 3)),
)

# --- 2. a 3-layer ReLU network with equal widths (the seed's shape) ---------------------------


def deep(W1, W2, W3, w4, X, t):
    Z1 = X @ W1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2 @ W3
    A3 = numpy.maximum(0, Z3)
    y = A3 @ w4
    return ((y - t) ** 2).mean()


def deep_backward(W1, W2, W3, w4, X, t, bug=None):
    Z1 = X @ W1
    A1 = relu(Z1)
    Z2 = A1 @ W2
    A2 = relu(Z2)
    Z3 = A2 @ W3
    A3 = relu(Z3)
    y = A3 @ w4
    dy = 2 * (y - t) / len(y)
    dw4 = A3.T @ dy
    dZ3 = numpy.outer(dy, w4) * (Z3 > 0)
    dW3 = A2.T @ dZ3
    if bug == "transposed":
        dW3 = dZ3.T @ A2
    dA2 = dZ3 @ W3.T
    dZ2 = dA2 * ((Z1 > 0) if bug == "relu-mask-layer" else (Z2 > 0))
    dW2 = A1.T @ dZ2
    dZ1 = dZ2 @ W2.T * (Z1 > 0)
    dW1 = X.T @ dZ1
    grads = {"W1": dW1, "W2": dW2, "W3": dW3, "w4": dw4}
    if bug == "swapped":
        grads["W2"], grads["W3"] = dW3, dW2
    if bug == "extra-1/N":
        grads["w4"] = dw4 / len(X)
    return grads


DEEP_ARGS = (
    RNG.normal(size=(6, 6)),
    RNG.normal(size=(6, 6)),
    RNG.normal(size=(6, 6)),
    RNG.normal(size=6),
    RNG.normal(size=(7, 6)),
    RNG.normal(size=7),
)

# --- 3. a softmax classifier with cross-entropy ----------------------------------------------


def softmax_ce(W, b, X, y):
    Z = X @ W + b
    Z = Z - Z.max(axis=1, keepdims=True)
    P = numpy.exp(Z) / numpy.exp(Z).sum(axis=1, keepdims=True)
    return -numpy.log(P[numpy.arange(len(y)), y]).mean()


def softmax_backward(W, b, X, y, bug=None):
    Z = X @ W + b
    E = numpy.exp(Z - Z.max(axis=1, keepdims=True))
    P = E / E.sum(axis=1, keepdims=True)
    onehot = numpy.eye(W.shape[1])[y]
    N = len(y)
    dZ = (P - onehot) / N
    if bug == "softmax-missing":
        dZ = (Z - onehot) / N
    if bug == "onehot-missing":
        dZ = P / N
    if bug == "missing-1/N":
        dZ = P - onehot
    dW = X.T @ dZ
    if bug == "transposed":
        dW = dZ.T @ X
    db = dZ.sum(axis=0)
    if bug == "bias-not-summed":
        db = dZ
    return {"W": dW, "b": db}


SOFTMAX_ARGS = (
    RNG.normal(size=(4, 3)),
    numpy.zeros(3),
    RNG.normal(size=(10, 4)),
    RNG.integers(0, 3, size=10),
)

# --- 4. logistic regression with an L2 penalty ------------------------------------------------

LAM = 0.05


def logreg(w, b, X, y):
    p = 1 / (1 + numpy.exp(-(X @ w + b)))
    bce = -numpy.mean(y * numpy.log(p) + (1 - y) * numpy.log(1 - p))
    return bce + LAM * numpy.sum(w**2)


def logreg_backward(w, b, X, y, bug=None):
    p = sigmoid(X @ w + b)
    dz = (p - y) / len(y)
    if bug == "extra-1/N":
        dz = (p - y) / len(y) ** 2
    if bug == "sign":
        dz = (y - p) / len(y)
    dw = X.T @ dz + 2 * LAM * w
    if bug == "regulariser-missing":
        dw = X.T @ dz
    db = dz.sum()
    return {"w": dw, "b": db}


LOGREG_ARGS = (
    RNG.normal(size=3),
    numpy.array(0.1),
    RNG.normal(size=(12, 3)),
    (RNG.random(12) > 0.5).astype(float),
)

# --- 5. a tanh network ------------------------------------------------------------------------


def tanh_net(W1, W2, X, T):
    H = numpy.tanh(X @ W1)
    Y = H @ W2
    return 0.5 * ((Y - T) ** 2).sum()


def tanh_backward(W1, W2, X, T, bug=None):
    Z = X @ W1
    H = numpy.tanh(Z)
    Y = H @ W2
    dY = Y - T
    if bug == "mse-missing-2":
        dY = (Y - T) / 2
    dW2 = H.T @ dY
    dH = dY @ W2.T
    local = 1 - H**2
    if bug == "activation-derivative":
        local = 1 - Z**2
    if bug == "activation-derivative-2":
        local = 1 - H
    dZ = dH * local
    dW1 = X.T @ dZ
    return {"W1": dW1, "W2": dW2}


TANH_ARGS = (
    RNG.normal(size=(3, 4)) * 0.5,
    RNG.normal(size=(4, 2)),
    RNG.normal(size=(6, 3)),
    RNG.normal(size=(6, 2)),
)

# --- 6. a sigmoid network ---------------------------------------------------------------------


def sigmoid_net(W1, W2, X, T):
    Z = X @ W1
    A = 1 / (1 + numpy.exp(-Z))
    Y = A @ W2
    return ((Y - T) ** 2).sum()


def sigmoid_backward(W1, W2, X, T, bug=None):
    Z = X @ W1
    A = sigmoid(Z)
    Y = A @ W2
    dY = 2 * (Y - T)
    dW2 = A.T @ dY
    dA = dY @ W2.T
    local = A * (1 - A)
    if bug == "activation-derivative":
        local = Z * (1 - Z)
    if bug == "activation-derivative-2":
        local = 1
    dZ = dA * local
    return {"W1": X.T @ dZ, "W2": dW2}


SIGMOID_ARGS = (
    RNG.normal(size=(3, 4)),
    RNG.normal(size=(4, 2)),
    RNG.normal(size=(5, 3)),
    RNG.normal(size=(5, 2)),
)

# --- 7. a residual block ----------------------------------------------------------------------


def residual(W0, Wa, Wb, X):
    H = numpy.maximum(0, X @ W0)
    G = numpy.maximum(0, H @ Wa)
    out = H + G @ Wb
    return (out**2).mean()


def residual_backward(W0, Wa, Wb, X, bug=None):
    P0 = X @ W0
    H = relu(P0)
    Pa = H @ Wa
    G = relu(Pa)
    out = H + G @ Wb
    dout = 2 * out / out.size
    if bug == "missing-1/N":
        dout = 2 * out
    dWb = G.T @ dout
    dG = dout @ Wb.T
    dPa = dG * (Pa > 0)
    dWa = H.T @ dPa
    dH = dPa @ Wa.T + dout
    if bug == "skip-missing":
        dH = dPa @ Wa.T
    dP0 = dH * (P0 > 0)
    if bug == "relu-mask-side":
        dP0 = dH * (P0 < 0)
    dW0 = X.T @ dP0
    return {"W0": dW0, "Wa": dWa, "Wb": dWb}


RESIDUAL_ARGS = (
    RNG.normal(size=(3, 4)),
    RNG.normal(size=(4, 4)),
    RNG.normal(size=(4, 4)),
    RNG.normal(size=(6, 3)),
)

# --- 8. a tied-weight autoencoder (a shared weight) --------------------------------------------


def autoencoder(W, X):
    H = numpy.tanh(X @ W)
    R = H @ W.T
    return ((R - X) ** 2).sum()


def autoencoder_backward(W, X, bug=None):
    Z = X @ W
    H = numpy.tanh(Z)
    R = H @ W.T
    dR = 2 * (R - X)
    dW_decoder = dR.T @ H
    dH = dR @ W
    dZ = dH * (1 - H**2)
    dW_encoder = X.T @ dZ
    dW = dW_encoder + dW_decoder
    if bug == "shared-weight-missing":
        dW = dW_encoder
    if bug == "sign":
        dW = -dW
    return {"W": dW}


AE_ARGS = (RNG.normal(size=(5, 3)) * 0.5, RNG.normal(size=(4, 5)))

# --- 9. LayerNorm -----------------------------------------------------------------------------


def layernorm(gamma, beta, X, T):
    mu = X.mean(axis=1, keepdims=True)
    var = ((X - mu) ** 2).mean(axis=1, keepdims=True)
    Xhat = (X - mu) / numpy.sqrt(var + 1e-5)
    out = gamma * Xhat + beta
    return ((out - T) ** 2).sum()


def layernorm_backward(gamma, beta, X, T, bug=None):
    mu = X.mean(axis=1, keepdims=True)
    var = ((X - mu) ** 2).mean(axis=1, keepdims=True)
    sigma = numpy.sqrt(var + 1e-5)
    Xhat = (X - mu) / sigma
    out = gamma * Xhat + beta
    dout = 2 * (out - T)
    dgamma = (dout * Xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    if bug == "bias-not-summed":
        dbeta = dout
    dXhat = dout * gamma
    dX = (
        dXhat
        - dXhat.mean(axis=1, keepdims=True)
        - Xhat * (dXhat * Xhat).mean(axis=1, keepdims=True)
    ) / sigma
    if bug == "stats-constant":
        dX = dXhat / sigma
    return {"gamma": dgamma, "beta": dbeta, "X": dX}


LN_ARGS = (
    RNG.normal(size=5),
    RNG.normal(size=5),
    RNG.normal(size=(4, 5)),
    RNG.normal(size=(4, 5)),
)

# --- 10. a tanh RNN over three steps (Wh shared across time) -----------------------------------


def rnn(Wx, Wh, X, T):
    h = numpy.zeros((X.shape[1], Wh.shape[0]))
    for t in range(X.shape[0]):
        h = numpy.tanh(X[t] @ Wx + h @ Wh)
    return ((h - T) ** 2).sum()


def rnn_backward(Wx, Wh, X, T, bug=None):
    hs = [numpy.zeros((X.shape[1], Wh.shape[0]))]
    for t in range(X.shape[0]):
        hs.append(numpy.tanh(X[t] @ Wx + hs[-1] @ Wh))
    dh = 2 * (hs[-1] - T)
    dWx = numpy.zeros_like(Wx)
    dWh = numpy.zeros_like(Wh)
    for t in reversed(range(X.shape[0])):
        da = dh * (1 - hs[t + 1] ** 2)
        dWx += X[t].T @ da
        if bug != "shared-weight-missing" or t == X.shape[0] - 1:
            dWh += hs[t].T @ da
        dh = da @ Wh.T
    if bug == "transposed":
        dWh = dWh.T
    return {"Wx": dWx, "Wh": dWh}


RNN_ARGS = (
    RNG.normal(size=(2, 3)) * 0.7,
    RNG.normal(size=(3, 3)) * 0.7,
    RNG.normal(size=(3, 4, 2)),
    RNG.normal(size=(4, 3)),
)

# --- 11. linear regression --------------------------------------------------------------------


def linreg(W, b, X, Y):
    P = X @ W + b
    return ((P - Y) ** 2).mean()


def linreg_backward(W, b, X, Y, bug=None):
    P = X @ W + b
    dP = 2 * (P - Y) / P.size
    if bug == "missing-1/N":
        dP = 2 * (P - Y)
    dW = X.T @ dP
    if bug == "sign":
        dW = X.T @ (-dP)
    db = dP.sum(axis=0)
    if bug == "keepdims":
        db = dP.sum(axis=0, keepdims=True)
    if bug == "bias-wrong-axis":
        db = dP.sum(axis=1)
    return {"W": dW, "b": db}


LINREG_ARGS = (
    RNG.normal(size=(3, 2)),
    RNG.normal(size=2),
    RNG.normal(size=(9, 3)),
    RNG.normal(size=(9, 2)),
)

# --- 12. the seed's network with zero biases and an all-zero input row (ReLU ties) -------------


def tied(W1, b1, W2, b2, X, T):
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Y = A1 @ W2 + b2
    return ((Y - T) ** 2).mean()


def tied_backward(W1, b1, W2, b2, X, T, bug=None):
    Z1 = X @ W1 + b1
    A1 = relu(Z1)
    Y = A1 @ W2 + b2
    dY = 2 * (Y - T) / Y.size
    dA1 = dY @ W2.T
    dZ1 = dA1 * ((Z1 >= 0) if bug == "tie-convention" else (Z1 > 0))
    if bug == "sign":
        dZ1 = -dZ1
    return {"W1": X.T @ dZ1, "b1": dZ1.sum(axis=0), "W2": A1.T @ dY, "b2": dY.sum(axis=0)}


TIED_X = RNG.normal(size=(5, 4))
TIED_X[2] = 0.0  # an all-zero input row: with zero biases, Z1 is exactly 0 there
TIED_ARGS = (
    RNG.normal(size=(4, 6)),
    numpy.zeros(6),
    RNG.normal(size=(6, 1)),
    numpy.zeros(1),
    TIED_X,
    RNG.normal(size=(5, 1)),
)


# --- 13. a tanh layer and a sigmoid output with binary cross-entropy -----------------------------


def bce_net(W1, b1, w2, b2, X, y):
    H = numpy.tanh(X @ W1 + b1)
    p = sigmoid(H @ w2 + b2)
    return -numpy.mean(y * numpy.log(p) + (1 - y) * numpy.log(1 - p))


def bce_backward(W1, b1, w2, b2, X, y, bug=None):
    H = numpy.tanh(X @ W1 + b1)
    p = sigmoid(H @ w2 + b2)
    dz = (p - y) / len(y)
    if bug == "sign":
        dz = (y - p) / len(y)
    dw2, db2 = H.T @ dz, dz.sum()
    dZ = numpy.outer(dz, w2) * (1 - H**2)
    if bug == "activation-derivative":
        dZ = numpy.outer(dz, w2) * (1 - H)
    dW1, db1 = X.T @ dZ, dZ.sum(axis=0)
    if bug == "bias-wrong-axis":
        db1 = dZ.sum(axis=1)
    return {"W1": dW1, "b1": db1, "w2": dw2, "b2": db2}


BCE_ARGS = (
    RNG.normal(size=(3, 4)),
    RNG.normal(size=4) * 0.1,
    RNG.normal(size=4),
    numpy.array(0.1),
    RNG.normal(size=(8, 3)),
    (RNG.random(8) > 0.5).astype(float),
)


# --- 14. softmax regression with the max shift and an L2 penalty --------------------------------

SMREG_LAM = 0.05


def smreg(W, X, y):
    Z = X @ W
    Z = Z - Z.max(axis=1, keepdims=True)
    P = numpy.exp(Z) / numpy.exp(Z).sum(axis=1, keepdims=True)
    return -numpy.log(P[numpy.arange(len(y)), y]).mean() + SMREG_LAM * numpy.sum(W * W)


def smreg_backward(W, X, y, bug=None):
    Z = X @ W
    Z = Z - Z.max(axis=1, keepdims=True)
    P = numpy.exp(Z) / numpy.exp(Z).sum(axis=1, keepdims=True)
    D = P.copy()
    D[numpy.arange(len(y)), y] -= 1
    if bug == "onehot-missing":
        D = P.copy()
    dW = X.T @ (D / len(y)) + 2 * SMREG_LAM * W
    if bug == "regulariser-missing":
        dW = X.T @ (D / len(y))
    return {"W": dW}


SMREG_ARGS = (RNG.normal(size=(4, 3)), RNG.normal(size=(10, 4)), RNG.integers(0, 3, 10))


# --- 15. a leaky-ReLU network with a mean squared error -----------------------------------------


def leaky(V1, c1, V2, X, T):
    Z = X @ V1 + c1
    A = numpy.where(Z > 0, Z, 0.1 * Z)
    return ((A @ V2 - T) ** 2).mean()


def leaky_backward(V1, c1, V2, X, T, bug=None):
    Z = X @ V1 + c1
    A = numpy.where(Z > 0, Z, 0.1 * Z)
    Y = A @ V2
    dY = 2 * (Y - T) / Y.size
    dV2 = A.T @ dY
    dZ = (dY @ V2.T) * numpy.where(Z > 0, 1.0, 0.1)
    if bug == "activation-derivative":
        dZ = (dY @ V2.T) * (Z > 0)
    dV1, dc1 = X.T @ dZ, dZ.sum(axis=0)
    if bug == "keepdims":
        dc1 = dZ.sum(axis=0, keepdims=True)
    return {"V1": dV1, "c1": dc1, "V2": dV2}


LEAKY_ARGS = (
    RNG.normal(size=(3, 5)),
    RNG.normal(size=5) * 0.1,
    RNG.normal(size=(5, 2)),
    RNG.normal(size=(6, 3)),
    RNG.normal(size=(6, 2)),
)


# --- 16. linear regression with an L1 penalty ---------------------------------------------------


def lasso(w, b, X, y):
    r = X @ w + b - y
    return 0.5 * numpy.mean(r**2) + 0.1 * numpy.sum(numpy.abs(w))


def lasso_backward(w, b, X, y, bug=None):
    r = X @ w + b - y
    dw, db = X.T @ r / len(y) + 0.1 * numpy.sign(w), r.mean()
    if bug == "regulariser-missing":
        dw = X.T @ r / len(y)
    if bug == "extra-1/N":
        db = r.mean() / len(y)
    return {"w": dw, "b": db}


LASSO_ARGS = (RNG.normal(size=4), numpy.array(0.3), RNG.normal(size=(9, 4)), RNG.normal(size=9))


# --- 17. a gated unit: out = sigmoid(X Wz) * tanh(X Wh) ----------------------------------------


def gated(Wz, Wh, X, T):
    out = sigmoid(X @ Wz) * numpy.tanh(X @ Wh)
    return 0.5 * numpy.sum((out - T) ** 2)


def gated_backward(Wz, Wh, X, T, bug=None):
    z, h = sigmoid(X @ Wz), numpy.tanh(X @ Wh)
    d = z * h - T
    dz, dh = d * h, d * z
    if bug == "product-swapped":
        dz, dh = d * z, d * h
    dWz = X.T @ (dz * z * (1 - z))
    if bug == "activation-derivative":
        dWz = X.T @ (dz * z)
    return {"Wz": dWz, "Wh": X.T @ (dh * (1 - h**2))}


GATED_ARGS = (
    RNG.normal(size=(3, 4)),
    RNG.normal(size=(3, 4)),
    RNG.normal(size=(5, 3)),
    RNG.normal(size=(5, 4)),
)

MODELS = {
    "mlp": (mlp, mlp_backward, MLP_ARGS, 4),
    "deep": (deep, deep_backward, DEEP_ARGS, 4),
    "softmax": (softmax_ce, softmax_backward, SOFTMAX_ARGS, 2),
    "logreg": (logreg, logreg_backward, LOGREG_ARGS, 2),
    "tanh": (tanh_net, tanh_backward, TANH_ARGS, 2),
    "sigmoid": (sigmoid_net, sigmoid_backward, SIGMOID_ARGS, 2),
    "residual": (residual, residual_backward, RESIDUAL_ARGS, 3),
    "autoencoder": (autoencoder, autoencoder_backward, AE_ARGS, 1),
    "layernorm": (layernorm, layernorm_backward, LN_ARGS, 3),
    "rnn": (rnn, rnn_backward, RNN_ARGS, 2),
    "linreg": (linreg, linreg_backward, LINREG_ARGS, 2),
    "tied": (tied, tied_backward, TIED_ARGS, 4),
    "bce": (bce_net, bce_backward, BCE_ARGS, 4),
    "smreg": (smreg, smreg_backward, SMREG_ARGS, 1),
    "leaky": (leaky, leaky_backward, LEAKY_ARGS, 3),
    "lasso": (lasso, lasso_backward, LASSO_ARGS, 2),
    "gated": (gated, gated_backward, GATED_ARGS, 2),
}

# (model, planted mistake, the kind check_backward must name)
BUGS = [
    ("mlp", "missing-1/N", "missing-1/N"),
    ("mlp", "len-vs-size", "len-vs-size"),
    ("mlp", "mse-missing-2", "mse-missing-2"),
    ("mlp", "transposed", "transposed"),
    ("mlp", "keepdims", "keepdims"),
    ("mlp", "relu-mask-side", "relu-mask-side"),
    ("mlp", "relu-mask-missing", "relu-mask-missing"),
    ("mlp", "relu-mask-from-A", "relu-mask-from-A"),
    ("mlp", "sign", "sign"),
    ("mlp", "bias-not-summed", "bias-not-summed"),
    ("mlp", "bias-wrong-axis", "bias-wrong-axis"),
    ("deep", "transposed", "transposed"),
    ("deep", "relu-mask-layer", "relu-mask-layer"),
    ("deep", "swapped", "swapped"),
    ("deep", "extra-1/N", "extra-1/N"),
    ("softmax", "softmax-missing", "softmax-missing"),
    ("softmax", "onehot-missing", "onehot-missing"),
    ("softmax", "missing-1/N", "missing-1/N"),
    ("softmax", "transposed", "transposed"),
    ("softmax", "bias-not-summed", "bias-not-summed"),
    ("logreg", "extra-1/N", "extra-1/N"),
    ("logreg", "sign", "sign"),
    ("logreg", "regulariser-missing", "regulariser-missing"),
    ("tanh", "mse-missing-2", "mse-missing-2"),
    ("tanh", "activation-derivative", "activation-derivative"),
    ("tanh", "activation-derivative-2", "activation-derivative"),
    ("sigmoid", "activation-derivative", "activation-derivative"),
    ("sigmoid", "activation-derivative-2", "activation-derivative"),
    ("residual", "missing-1/N", "missing-1/N"),
    ("residual", "skip-missing", "skip-missing"),
    ("residual", "relu-mask-side", "relu-mask-side"),
    ("autoencoder", "shared-weight-missing", "shared-weight-missing"),
    ("autoencoder", "sign", "sign"),
    ("layernorm", "bias-not-summed", "bias-not-summed"),
    ("layernorm", "stats-constant", "stats-constant"),
    ("rnn", "shared-weight-missing", "shared-weight-missing"),
    ("rnn", "transposed", "transposed"),
    ("linreg", "missing-1/N", "missing-1/N"),
    ("linreg", "sign", "sign"),
    ("linreg", "keepdims", "keepdims"),
    ("linreg", "bias-wrong-axis", "bias-wrong-axis"),
    ("tied", "sign", "sign"),
    ("bce", "sign", "sign"),
    ("bce", "activation-derivative", "activation-derivative"),
    ("bce", "bias-wrong-axis", "bias-wrong-axis"),
    ("smreg", "onehot-missing", "onehot-missing"),
    ("smreg", "regulariser-missing", "regulariser-missing"),
    ("leaky", "activation-derivative", "activation-derivative"),
    ("leaky", "keepdims", "keepdims"),
    ("lasso", "regulariser-missing", "regulariser-missing"),
    ("lasso", "extra-1/N", "extra-1/N"),
    ("gated", "product-swapped", "swapped"),
    ("gated", "activation-derivative", "activation-derivative"),
]

# correct backward passes: every model's, and the tie taken the other way (a convention)
CORRECT = [(m, None) for m in MODELS] + [("tied", "tie-convention"), ("mlp", None), ("deep", None)]


def numeric_gradients(fun, args, n):
    """Central differences for the first ``n`` arguments (independent of chainrule)."""
    out = []
    for k in range(n):
        x = numpy.array(args[k], dtype=float)
        g = numpy.zeros_like(x)
        for i in numpy.ndindex(x.shape):
            hi, lo = x.copy(), x.copy()
            hi[i] += 1e-6
            lo[i] -= 1e-6
            a_hi, a_lo = list(args), list(args)
            a_hi[k], a_lo[k] = hi, lo
            g[i] = (fun(*a_hi) - fun(*a_lo)) / 2e-6
        out.append(g)
    return out


@pytest.mark.parametrize("model", [m for m in MODELS if m != "tied"])
def test_the_hand_written_backward_passes_are_right(model):
    fun, backward, args, n = MODELS[model]
    mine = backward(*args)
    names = list(mine)
    numeric = dict(zip(_param_names(fun)[:n], numeric_gradients(fun, args, n)))
    for name in names:
        numpy.testing.assert_allclose(mine[name], numeric[name], rtol=1e-5, atol=1e-7)


def _param_names(fun):
    import inspect

    return list(inspect.signature(fun).parameters)


def _truly_wrong(model, bug):
    fun, backward, args, _ = MODELS[model]
    right, given = backward(*args), backward(*args, bug=bug)
    return {
        n
        for n in right
        if numpy.shape(given[n]) != numpy.shape(right[n])
        or not numpy.allclose(given[n], right[n], rtol=1e-9, atol=1e-12)
    }


def test_the_corpus_has_the_size_the_issue_asks_for():
    assert len(BUGS) >= 40 and len(CORRECT) >= 15 and len(MODELS) >= 10
    for model, bug, _ in BUGS:
        assert _truly_wrong(model, bug), (model, bug)  # every planted mistake changes something


@pytest.mark.parametrize("model, bug", CORRECT)
def test_no_correct_backward_pass_is_flagged(model, bug):
    fun, backward, args, _ = MODELS[model]
    report = cr.check_backward(fun, args, backward(*args, bug=bug))
    assert report.passed, str(report)


def test_a_tie_taken_the_other_way_is_reported_as_a_convention():
    fun, backward, args, _ = MODELS["tied"]
    report = cr.check_backward(fun, args, backward(*args, bug="tie-convention"))
    assert report.passed
    assert any(p.kind == "tie-convention" for p in report.parameters)
    assert "convention" in str(report)


@pytest.mark.parametrize("model, bug, kind", BUGS)
def test_every_wrong_gradient_is_flagged_and_only_those(model, bug, kind):
    fun, backward, args, _ = MODELS[model]
    report = cr.check_backward(fun, args, backward(*args, bug=bug))
    assert set(report.wrong) == _truly_wrong(model, bug), str(report)


def test_the_mistake_is_named_in_at_least_90_percent_of_the_cases():
    named = []
    for model, bug, kind in BUGS:
        fun, backward, args, _ = MODELS[model]
        report = cr.check_backward(fun, args, backward(*args, bug=bug))
        kinds = {p.kind for p in report.parameters if not p.correct}
        named.append(kinds == {kind})
    missed = [b[:2] for b, ok in zip(BUGS, named) if not ok]
    assert sum(named) >= 0.9 * len(BUGS), missed


def mlp_backward_with_a_mask_bug(W1, b1, W2, b2, X, T):
    Z1 = X @ W1 + b1
    A1 = numpy.maximum(0, Z1)
    Y = A1 @ W2 + b2
    dY = 2 * (Y - T) / Y.size
    dW2 = A1.T @ dY
    db2 = dY.sum(axis=0)
    dA1 = dY @ W2.T
    dZ1 = dA1 * (Z1 < 0)
    dW1 = X.T @ dZ1
    db1 = dZ1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def test_the_first_wrong_line_of_a_backward_function_is_named():
    import inspect

    grads = mlp_backward_with_a_mask_bug(*MLP_ARGS)
    report = cr.check_backward(mlp, MLP_ARGS, grads, backward=mlp_backward_with_a_mask_bug)
    source, first = inspect.getsourcelines(mlp_backward_with_a_mask_bug)
    line = first + next(i for i, s in enumerate(source) if "dZ1 = dA1 * (Z1 < 0)" in s)
    assert report.first_wrong_line is not None
    assert f"line {line}, dZ1" in report.first_wrong_line
    assert "yours:   dZ1 = dA1 * (Z1 < 0)" in report.first_wrong_line
    assert "correct: dZ1 = dA1 * (Z1 > 0)" in report.first_wrong_line
    assert report.first_wrong_line in str(report)


CLI_MODEL = """
import numpy
from chainrule import seed
X, T = seed.X, seed.T
W1, W2, W3, W4, B1, B2, B3, B4 = seed.PARAMS.values()
forward = seed.forward

def backward(X, T, W1, W2, W3, W4, B1, B2, B3, B4):
    Z1 = X.dot(W1) + B1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W2) + B2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W3) + B3
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W4) + B4
    dY = 2 * (Y - T) / Y.size
    dW4 = A3.T @ dY
    dZ3 = dY @ W4.T * (Z3 > 0)
    dW3 = A2.T @ dZ3
    dZ2 = dZ3 @ W3.T * (Z2 > 0)
    dW2 = A1.T @ dZ2
    dZ1 = dZ2 @ W2.T * (Z1 > 0)
    dW1 = X.T @ dZ1
    return {RETURN}
"""


@pytest.mark.parametrize(
    "returned, how",
    [
        ("dW1, dW2, dW3, dW4, dZ1.sum(0), dZ2.sum(0), dZ3.sum(0), dY.sum(0)", "by shape"),
        ("dW4, dW3, dW2, dW1", "by the names"),
    ],
)
def test_cli_maps_a_returned_tuple_to_the_parameters_only(tmp_path, capsys, returned, how):
    from chainrule.cli import main

    (tmp_path / "model.py").write_text(CLI_MODEL.replace("{RETURN}", returned))
    model = str(tmp_path / "model.py")
    assert main(["check", f"{model}:forward", f"{model}:backward"]) == 0
    out = capsys.readouterr().out
    assert how in out and "all gradients are correct" in out
    assert "-> X" not in out and "X," not in out.split("\n")[0]


def test_a_mistake_no_variant_reproduces_is_located_at_its_activation():
    W1, b1, W2, b2, X, T = MLP_ARGS
    Z1 = X @ W1 + b1
    Y = numpy.maximum(0, Z1) @ W2 + b2
    dZ1 = (2 * (Y - T) / Y.size @ W2.T) * (Z1 > 0.3)  # an odd threshold: no listed mistake
    given = dict(mlp_backward(*MLP_ARGS), W1=X.T @ dZ1, b1=dZ1.sum(axis=0))
    report = cr.check_backward(mlp, MLP_ARGS, given)
    assert set(report.wrong) == {"W1", "b1"}
    assert {p.kind for p in report.parameters if not p.correct} == {"relu-mask"}
    assert "dZ1 = dA1 * (Z1 > 0)" in str(report)


def test_a_wrong_scalar_gradient_is_not_called_a_constant_factor():
    w, b, X, y = LOGREG_ARGS
    given = dict(logreg_backward(*LOGREG_ARGS), b=numpy.array(0.123))
    report = cr.check_backward(logreg, LOGREG_ARGS, given)
    assert report.wrong == ["b"]
    text = str(report)
    assert "constant factor" not in text and "0.123" in text
