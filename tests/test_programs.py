"""Whole NumPy programs in the styles people publish (course solutions, textbook networks, a
character-level RNN, word2vec), each with its own hand-written backward pass. The forward code
runs unchanged on chainrule tensors, and chainrule's gradients equal the program's own.

The programs are written here in those styles (not copied); each keeps the idioms that used to
stop chainrule: `dy[target] -= 1`, `dscores[range(N), y] -= 1`, `numpy.zeros_like`, plain
accumulators `dW += ...`, masks written in place, `numpy.hsplit` of gates, loops over time.
"""

from __future__ import annotations

import numpy

import chainrule as cr

rng = numpy.random.default_rng(42)


def close(got, want):
    numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# --- a two-layer network, course style ---------------------------------------------------------


def two_layer_loss(W1, b1, W2, b2, X, y, reg):
    h = numpy.maximum(0, X.dot(W1) + b1)
    scores = h.dot(W2) + b2
    scores = scores - numpy.max(scores, axis=1, keepdims=True)
    exp = numpy.exp(scores)
    probs = exp / numpy.sum(exp, axis=1, keepdims=True)
    N = X.shape[0]
    loss = -numpy.sum(numpy.log(probs[numpy.arange(N), y])) / N
    loss += 0.5 * reg * (numpy.sum(W1 * W1) + numpy.sum(W2 * W2))
    return loss


def two_layer_backward(W1, b1, W2, b2, X, y, reg):
    h = numpy.maximum(0, X.dot(W1) + b1)
    scores = h.dot(W2) + b2
    scores -= numpy.max(scores, axis=1, keepdims=True)
    probs = numpy.exp(scores) / numpy.sum(numpy.exp(scores), axis=1, keepdims=True)
    N = X.shape[0]
    dscores = probs.copy()
    dscores[range(N), y] -= 1
    dscores /= N
    dW2 = h.T.dot(dscores) + reg * W2
    db2 = numpy.sum(dscores, axis=0)
    dh = dscores.dot(W2.T)
    dh[h <= 0] = 0
    dW1 = X.T.dot(dh) + reg * W1
    db1 = numpy.sum(dh, axis=0)
    return dW1, db1, dW2, db2


def test_two_layer_network():
    X, y = rng.standard_normal((6, 4)), numpy.array([0, 2, 1, 2, 0, 1])
    params = [
        rng.standard_normal((4, 5)) * 0.5,
        rng.standard_normal(5) * 0.1,
        rng.standard_normal((5, 3)) * 0.5,
        rng.standard_normal(3) * 0.1,
    ]
    grads = cr.grad(two_layer_loss, argnums=(0, 1, 2, 3))(*params, X, y, 0.1)
    for g, want in zip(grads, two_layer_backward(*params, X, y, 0.1)):
        close(g, want)


# --- a softmax classifier with loops (the "naive" solution) ------------------------------------


def softmax_loss_naive(W, X, y, reg):
    loss = 0.0
    dW = numpy.zeros_like(W)
    for i in range(X.shape[0]):
        scores = X[i].dot(W)
        scores -= numpy.max(scores)
        p = numpy.exp(scores) / numpy.sum(numpy.exp(scores))
        loss += -numpy.log(p[y[i]])
        for j in range(W.shape[1]):
            dW[:, j] += (p[j] - (j == y[i])) * X[i]
    loss = loss / X.shape[0] + reg * numpy.sum(W * W)
    dW = dW / X.shape[0] + 2 * reg * W
    return loss, dW


def test_softmax_loss_with_loops_and_accumulators():
    # the function as written, returning (loss, its own dW): has_aux carries dW along. Its data
    # are arguments, so `X[i].dot(W)` is a tensor's method (a plain X would convert W: refused)
    W, X, y = rng.standard_normal((4, 3)) * 0.1, rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    got, their_dW = cr.grad(softmax_loss_naive, has_aux=True)(W, X, y, 0.05)
    close(got, softmax_loss_naive(W, X, y, 0.05)[1])
    close(their_dW, got)


# --- an SVM loss, vectorised -------------------------------------------------------------------


def svm_loss_vectorized(W, X, y, reg):
    N = X.shape[0]
    scores = X.dot(W)
    correct = scores[numpy.arange(N), y][:, None]
    margins = numpy.maximum(0, scores - correct + 1.0)
    margins[numpy.arange(N), y] = 0
    loss = numpy.sum(margins) / N + reg * numpy.sum(W * W)
    mask = (margins > 0).astype(float)
    mask[numpy.arange(N), y] = -numpy.sum(mask, axis=1)
    dW = X.T.dot(mask) / N + 2 * reg * W
    return loss, dW


def test_svm_loss_with_an_assignment_into_the_margins():
    W, X, y = rng.standard_normal((4, 3)) * 0.3, rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    got, their_dW = cr.grad(svm_loss_vectorized, has_aux=True)(W, X, y, 0.1)
    close(got, svm_loss_vectorized(W, X, y, 0.1)[1])
    close(their_dW, got)


# --- a character-level RNN ---------------------------------------------------------------------


def rnn_loss(Wxh, Whh, Why, bh, by, inputs, targets, hprev):
    vocab = Wxh.shape[1]
    hs = {-1: hprev}
    loss = 0.0
    for t in range(len(inputs)):
        x = numpy.zeros((vocab, 1))
        x[inputs[t]] = 1
        hs[t] = numpy.tanh(numpy.dot(Wxh, x) + numpy.dot(Whh, hs[t - 1]) + bh)
        ys = numpy.dot(Why, hs[t]) + by
        ps = numpy.exp(ys) / numpy.sum(numpy.exp(ys))
        loss += -numpy.log(ps[targets[t], 0])
    return loss


def rnn_backward(Wxh, Whh, Why, bh, by, inputs, targets, hprev):
    vocab = Wxh.shape[1]
    xs, hs, ps = {}, {-1: hprev}, {}
    for t in range(len(inputs)):
        xs[t] = numpy.zeros((vocab, 1))
        xs[t][inputs[t]] = 1
        hs[t] = numpy.tanh(numpy.dot(Wxh, xs[t]) + numpy.dot(Whh, hs[t - 1]) + bh)
        ys = numpy.dot(Why, hs[t]) + by
        ps[t] = numpy.exp(ys) / numpy.sum(numpy.exp(ys))
    dWxh, dWhh, dWhy = numpy.zeros_like(Wxh), numpy.zeros_like(Whh), numpy.zeros_like(Why)
    dbh, dby = numpy.zeros_like(bh), numpy.zeros_like(by)
    dhnext = numpy.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = numpy.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += numpy.dot(dy, hs[t].T)
        dby += dy
        dh = numpy.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += numpy.dot(dhraw, xs[t].T)
        dWhh += numpy.dot(dhraw, hs[t - 1].T)
        dhnext = numpy.dot(Whh.T, dhraw)
    return dWxh, dWhh, dWhy, dbh, dby


def test_character_level_rnn():
    vocab, hidden = 5, 4
    params = [
        rng.standard_normal((hidden, vocab)) * 0.1,
        rng.standard_normal((hidden, hidden)) * 0.1,
        rng.standard_normal((vocab, hidden)) * 0.1,
        numpy.zeros((hidden, 1)),
        numpy.zeros((vocab, 1)),
    ]
    inputs, targets = [0, 3, 1, 4, 2, 2], [3, 1, 4, 2, 2, 0]
    hprev = rng.standard_normal((hidden, 1)) * 0.1
    grads = cr.grad(rnn_loss, argnums=(0, 1, 2, 3, 4))(*params, inputs, targets, hprev)
    for g, want in zip(grads, rnn_backward(*params, inputs, targets, hprev)):
        close(g, want)


def rnn_loss_backward_fused(Wxh, Whh, Why, bh, by, inputs, targets, hprev):
    """The same RNN with its softmax gradient built in place (`dy[target] -= 1`) inside the
    function being differentiated: a gradient-of-the-gradient check."""
    vocab = Wxh.shape[1]
    h = hprev
    total = 0.0
    for t in range(len(inputs)):
        x = numpy.zeros((vocab, 1))
        x[inputs[t]] = 1
        h = numpy.tanh(numpy.dot(Wxh, x) + numpy.dot(Whh, h) + bh)
        ys = numpy.dot(Why, h) + by
        p = numpy.exp(ys) / numpy.sum(numpy.exp(ys))
        dy = numpy.copy(p)
        dy[targets[t]] -= 1
        total = total + numpy.sum(dy * dy)
    return total


def test_the_in_place_softmax_gradient_is_itself_differentiable():
    vocab, hidden = 4, 3
    params = [
        rng.standard_normal((hidden, vocab)) * 0.3,
        rng.standard_normal((hidden, hidden)) * 0.3,
        rng.standard_normal((vocab, hidden)) * 0.3,
        numpy.zeros((hidden, 1)),
        numpy.zeros((vocab, 1)),
    ]
    args = ([0, 2, 1], [2, 1, 3], rng.standard_normal((hidden, 1)) * 0.1)
    f = lambda *p: rnn_loss_backward_fused(*p, *args)  # noqa: E731
    assert cr.check_grads(f, *params).passed


# --- an LSTM step with its gates split --------------------------------------------------------


def lstm_loss(x, h0, c0, Wx, Wh, b):
    T = x.shape[1]
    h, c = h0, c0
    total = 0.0
    for t in range(T):
        a = x[:, t].dot(Wx) + h.dot(Wh) + b
        ai, af, ao, ag = numpy.hsplit(a, 4)
        i, f, o = 1 / (1 + numpy.exp(-ai)), 1 / (1 + numpy.exp(-af)), 1 / (1 + numpy.exp(-ao))
        g = numpy.tanh(ag)
        c = f * c + i * g
        h = o * numpy.tanh(c)
        total = total + numpy.sum(h * h)
    return total


def test_lstm_with_hsplit_gates_against_finite_differences():
    N, T, D, H = 2, 3, 3, 2
    args = [
        rng.standard_normal((N, T, D)),
        rng.standard_normal((N, H)) * 0.1,
        rng.standard_normal((N, H)) * 0.1,
        rng.standard_normal((D, 4 * H)) * 0.3,
        rng.standard_normal((H, 4 * H)) * 0.3,
        rng.standard_normal(4 * H) * 0.1,
    ]
    assert cr.check_grads(lstm_loss, *args, order=2).passed


# --- word2vec, skip-gram with negative sampling ------------------------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + numpy.exp(-x))


def neg_sampling_loss(center, outside, U, negatives):
    s = sigmoid(numpy.dot(U[outside], center))
    loss = -numpy.log(s)
    for k in negatives:
        loss = loss - numpy.log(sigmoid(-numpy.dot(U[k], center)))
    return loss


def neg_sampling_grads(center, outside, U, negatives):
    s = sigmoid(numpy.dot(U[outside], center))
    dcenter = (s - 1) * U[outside]
    dU = numpy.zeros_like(U)
    dU[outside] += (s - 1) * center
    for k in negatives:
        sk = sigmoid(-numpy.dot(U[k], center))
        dcenter += (1 - sk) * U[k]
        dU[k] += (1 - sk) * center
    return dcenter, dU


def test_word2vec_negative_sampling_with_repeated_negatives():
    center, U = rng.standard_normal(4), rng.standard_normal((6, 4)) * 0.5
    negatives = [1, 4, 1, 5]  # a word drawn twice: its gradient adds up
    got = cr.grad(neg_sampling_loss, argnums=(0, 2))(center, 2, U, negatives)
    for g, want in zip(got, neg_sampling_grads(center, 2, U, negatives)):
        close(g, want)


# --- the plain-array accumulator of a loop-style layer -----------------------------------------


def affine_loop(x, w, b):
    out = numpy.zeros((x.shape[0], w.shape[1]))
    out = out + b  # rebinding: `out` becomes a recorded value
    for i in range(x.shape[0]):
        out[i] += x[i].dot(w)
    return numpy.sum(out**2)


def test_a_loop_that_accumulates_rows_into_its_output():
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    assert cr.check_grads(affine_loop, x, w, b).passed


# --- a recurrent net whose one method computes the loss and its own clipped backward pass -----


class ElmanCell:
    """Forward and hand-written backward in one method, the way course code writes them:
    states kept in lists, the softmax gradient made in place, gradients accumulated with += and
    clipped in place with numpy.clip(..., out=...)."""

    def __init__(self, vocab, hidden, seed):
        r = numpy.random.default_rng(seed)
        self.U = r.standard_normal((hidden, vocab)) * 0.3
        self.W = r.standard_normal((hidden, hidden)) * 0.3
        self.V = r.standard_normal((vocab, hidden)) * 0.3
        self.c = numpy.zeros((hidden, 1))

    def loss_and_grads(self, xs, ys, h0, clip):
        hs, ps = [h0], []
        loss = 0.0
        for x, y in zip(xs, ys):
            onehot = numpy.zeros((self.U.shape[1], 1))
            onehot[x] = 1.0
            hs.append(numpy.tanh(self.U @ onehot + self.W @ hs[-1] + self.c))
            z = self.V @ hs[-1]
            e = numpy.exp(z - numpy.max(z))
            ps.append(e / numpy.sum(e))
            loss = loss - numpy.log(ps[-1][y, 0])
        dU, dW, dV, dc = (numpy.zeros_like(m) for m in (self.U, self.W, self.V, self.c))
        dnext = numpy.zeros_like(h0)
        for t in reversed(range(len(xs))):
            dz = numpy.copy(ps[t])
            dz[ys[t]] -= 1
            dV += dz @ hs[t + 1].T
            draw = (1 - hs[t + 1] * hs[t + 1]) * (self.V.T @ dz + dnext)
            dc += draw
            onehot = numpy.zeros((self.U.shape[1], 1))
            onehot[xs[t]] = 1.0
            dU += draw @ onehot.T
            dW += draw @ hs[t].T
            dnext = self.W.T @ draw
        for d in (dU, dW, dV, dc):
            numpy.clip(d, -clip, clip, out=d)
        return loss, (dU, dW, dV, dc)


def test_a_method_with_its_own_clipped_backward_runs_unchanged_on_tensors():
    cell = ElmanCell(vocab=5, hidden=4, seed=3)
    xs, ys = [0, 3, 1, 4, 2], [3, 1, 4, 2, 0]
    h0 = rng.standard_normal((4, 1)) * 0.1
    _, theirs = cell.loss_and_grads(xs, ys, h0, clip=5.0)
    names = ("U", "W", "V", "c")
    params = {n: cr.tensor(getattr(cell, n), requires_grad=True) for n in names}
    for n in names:
        setattr(cell, n, params[n])
    loss, on_tensors = cell.loss_and_grads(xs, ys, h0, clip=5.0)  # unchanged, on tensors
    loss.backward()
    for n, mine, want in zip(names, on_tensors, theirs):
        close(params[n].grad, want)  # chainrule's gradient = the hand-written one (unclipped)
        close(mine.data, want)  # and the hand-written pass itself ran on tensors
    # with a clip that bites, the clipped hand-written gradient is the clipped true one, and
    # differentiating through the clipping passes nothing where it clipped
    loss, on_tensors = cell.loss_and_grads(xs, ys, h0, clip=0.05)
    dU = on_tensors[0]
    close(dU.data, numpy.clip(theirs[0], -0.05, 0.05))
    params["U"].grad = None
    dU.sum().backward()
    assert params["U"].grad is not None


# --- an SVM that reuses its margin buffer as the backward mask (read, then overwritten) ---------


def svm_loss_reusing_the_buffer(W, X, y, reg):
    N = X.shape[0]
    s = X.dot(W)
    s = s - s[numpy.arange(N), y].reshape(-1, 1) + 1.0
    s[s <= 0] = 0
    s[numpy.arange(N), y] = 0
    loss = numpy.sum(s) / N + reg * numpy.sum(W * W)
    s[s > 0] = 1  # the loss has read s; the backward pass now reuses it as the 0/1 mask
    s[numpy.arange(N), y] = -numpy.sum(s, axis=1)
    dW = X.T.dot(s) / N + 2 * reg * W
    return loss, dW


def test_svm_that_overwrites_what_its_loss_read():
    W, X, y = rng.standard_normal((4, 3)) * 0.3, rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    Wt = cr.tensor(W, requires_grad=True)
    loss, their_dW = svm_loss_reusing_the_buffer(Wt, cr.tensor(X), y, 0.1)
    loss.backward()
    # the program's own gradient (computed on the same tensors) and central differences agree
    close(Wt.grad, their_dW.detach().numpy())
    cr.check_grads(lambda W: svm_loss_reusing_the_buffer(W, cr.tensor(X), y, 0.1)[0], W)


# --- layer objects that keep their own state (a textbook's forward/backward classes) -----------


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return numpy.dot(self.x, self.W) + self.b

    def backward(self, dout):
        self.dW = numpy.dot(self.x.T, dout)
        self.db = numpy.sum(dout, axis=0)
        return numpy.dot(dout, self.W.T).reshape(*self.shape)


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0  # a mask written into a copy of the input
        return out

    def backward(self, dout):
        dout = dout.copy()
        dout[self.mask] = 0
        return dout


class SoftmaxWithLoss:
    def forward(self, x, t):
        self.t = t
        z = x - numpy.max(x, axis=-1, keepdims=True)
        self.y = numpy.exp(z) / numpy.sum(numpy.exp(z), axis=-1, keepdims=True)
        n = self.y.shape[0]
        return -numpy.sum(numpy.log(self.y[numpy.arange(n), t])) / n

    def backward(self):
        n = self.t.shape[0]
        dx = self.y.copy()
        dx[numpy.arange(n), self.t] -= 1
        return dx / n


def test_layer_objects_with_their_own_state_run_unchanged():
    W1, b1 = rng.standard_normal((6, 5)) * 0.5, rng.standard_normal(5) * 0.1
    W2, b2 = rng.standard_normal((5, 3)) * 0.5, numpy.zeros(3)
    x, t = rng.standard_normal((4, 2, 3)), numpy.array([0, 2, 1, 1])
    params = [cr.tensor(p, requires_grad=True) for p in (W1, b1, W2, b2)]
    layers = [Affine(params[0], params[1]), Relu(), Affine(params[2], params[3])]
    head = SoftmaxWithLoss()
    h = x
    for layer in layers:
        h = layer.forward(h)
    loss = head.forward(h, t)
    loss.backward()
    # the program's own backward, run on plain arrays
    plain = [Affine(W1, b1), Relu(), Affine(W2, b2)]
    h = x
    for layer in plain:
        h = layer.forward(h)
    head.forward(h, t)
    d = head.backward()
    for layer in reversed(plain):
        d = layer.backward(d)
    for got, want in zip(params, (plain[0].dW, plain[0].db, plain[2].dW, plain[2].db)):
        close(got.grad, want)


# --- what NumPy gives no hook for: a tensor written into a plain buffer -------------------------


def test_a_tensor_written_into_a_plain_buffer_names_the_rewrite():
    def rnn_forward(x, h0, Wx, Wh):
        N, T, _ = x.shape
        h = numpy.zeros((N, T, h0.shape[1]))  # a plain NumPy buffer
        prev = h0
        for t in range(T):
            prev = numpy.tanh(x[:, t, :] @ Wx + prev @ Wh)
            h[:, t, :] = prev
        return h

    x, h0 = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5))
    Wx, Wh = rng.standard_normal((4, 5)), rng.standard_normal((5, 5))
    try:
        cr.grad(lambda Wx: rnn_forward(x, h0, Wx, Wh).sum())(Wx)
    except TypeError as e:
        assert "written into a plain NumPy array" in str(e) and "chainrule.tensor(" in str(e)
    else:
        raise AssertionError("a silent write of a tensor into a plain array")
