"""The eager walk's economies (one rule call doubled for ``x * x``, gradients added and negated
in place in arrays the walk made, indexed reads added into one buffer) against central finite
differences, on random programs that reuse values: the same value twice in one operation, a value
used by many later operations, views of values (reversed, transposed, sliced) read next to the
value itself, and subtraction of a value from itself or from its own view."""

from __future__ import annotations

import numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr

# (name, number of operands, function); every function keeps the (4, 4) shape
BINARY = [
    ("add", lambda a, b: a + b),
    ("subtract", lambda a, b: a - b),
    ("multiply", lambda a, b: a * b),
    ("matmul", lambda a, b: 0.5 * (a @ b)),
]
UNARY = [
    ("negative", lambda a: -a),
    ("tanh", numpy.tanh),
    ("reversed", lambda a: a[::-1]),
    ("transposed", lambda a: a.T),
    ("row-sum", lambda a: a.sum(axis=0) + a),  # a (4,) broadcast back over a
    ("rows-swapped", lambda a: a[[1, 0, 3, 2]]),
    ("slice-written", lambda a: numpy.concatenate([a[:2] * 2.0, a[2:]], axis=0)),
    ("square", lambda a: a**2),
]


@st.composite
def programs(draw, binary=None, unary=None):
    binary = range(len(BINARY)) if binary is None else binary
    unary = range(len(UNARY)) if unary is None else unary
    steps = []
    for _ in range(draw(st.integers(2, 9))):
        pool = 2 + len(steps)  # x, y, then every result so far
        if draw(st.booleans()):
            k = draw(st.sampled_from(list(binary)))
            i = draw(st.integers(0, pool - 1))
            j = draw(st.one_of(st.just(i), st.integers(0, pool - 1)))  # often the same value
            steps.append(("b", k, i, j))
        else:
            k = draw(st.sampled_from(list(unary)))
            steps.append(("u", k, draw(st.integers(0, pool - 1))))
    # which values the loss reads besides the last: some, so that a value's uses in the loss
    # are not always the first gradient it receives (each walk economy has a first-use branch)
    read = draw(st.lists(st.booleans(), min_size=2 + len(steps), max_size=2 + len(steps)))
    return steps, read


# the operations that act entry by entry (the same on a tiled array, tile by tile)
ENTRYWISE_B = [k for k, (n, _) in enumerate(BINARY) if n != "matmul"]
ENTRYWISE_U = [k for k, (n, _) in enumerate(UNARY) if n in ("negative", "tanh", "square")]


def run(program, x, y, tiles=1):
    steps, read = program
    vals = [x, y]
    for s in steps:
        if s[0] == "b":
            vals.append(BINARY[s[1]][1](vals[s[2]], vals[s[3]]))
        else:
            vals.append(UNARY[s[1]][1](vals[s[2]]))
    # the last value and the values picked, each bounded by tanh and weighted differently
    terms = [v for v, r in zip(vals[:-1], read) if r] + [vals[-1]]
    weights = [numpy.tile(w, (tiles, tiles)) for w in WEIGHTS]
    return sum((numpy.tanh(v) * w).sum() for v, w in zip(terms, weights))


WEIGHTS = [numpy.linspace(-1.0, 1.0, 16).reshape(4, 4) * (k + 1) / 7 for k in range(12)]


def fd(program, x, y, which, eps=1e-6):
    args = [x.copy(), y.copy()]
    g = numpy.zeros_like(args[which])
    for i in numpy.ndindex(g.shape):
        up = [a.copy() for a in args]
        down = [a.copy() for a in args]
        up[which][i] += eps
        down[which][i] -= eps
        g[i] = (run(program, *up) - run(program, *down)) / (2 * eps)
    return g


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 2**31 - 1))
def test_reused_values_get_the_finite_difference_gradient(program, seed):
    rng = numpy.random.default_rng(seed)
    x = rng.uniform(-0.8, 0.8, (4, 4))
    y = rng.uniform(-0.8, 0.8, (4, 4))
    # eager backward() on tensors, and value_and_grad
    xt, yt = cr.tensor(x, requires_grad=True), cr.tensor(y, requires_grad=True)
    run(program, xt, yt).backward()
    _, (gx, gy) = cr.value_and_grad(lambda a, b: run(program, a, b), argnums=(0, 1))(x, y)
    for got, which in ((xt.grad, 0), (yt.grad, 1), (gx, 0), (gy, 1)):
        got = numpy.zeros((4, 4)) if got is None else got  # backward(): an unused leaf has None
        numpy.testing.assert_allclose(got, fd(program, x, y, which), rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(ENTRYWISE_B, ENTRYWISE_U), st.integers(0, 2**31 - 1))
def test_large_arrays_take_the_in_place_routes_and_agree_with_small_ones(program, seed):
    # The in-place routes start at some size: the same entrywise program on the arrays tiled
    # 64 x 64 times must give every tile the gradient the small program gives (checked against
    # finite differences above), bit for bit up to the order of additions.
    rng = numpy.random.default_rng(seed)
    x = rng.uniform(-0.8, 0.8, (4, 4))
    y = rng.uniform(-0.8, 0.8, (4, 4))
    f = cr.value_and_grad(lambda a, b: run(program, a, b, tiles=64), argnums=(0, 1))
    small = cr.value_and_grad(lambda a, b: run(program, a, b), argnums=(0, 1))(x, y)[1]
    big = f(numpy.tile(x, (64, 64)), numpy.tile(y, (64, 64)))[1]
    for s, b in zip(small, big):
        numpy.testing.assert_allclose(b, numpy.tile(s, (64, 64)), rtol=1e-12, atol=1e-13)


def test_a_weight_read_at_every_step_accumulates_in_backward_like_a_sum():
    # backward() adds the terms of a weight used at every step of a loop into its .grad (in
    # place from the third term on); the result is the hand-derived sum, and a .grad the
    # caller kept from an earlier backward() is never written into
    rng = numpy.random.default_rng(2)
    w0 = rng.standard_normal((3, 3)) * 0.5
    xs = rng.standard_normal((6, 3))

    def run(w):
        h = cr.tensor(numpy.zeros(3)) if isinstance(w, cr.Tensor) else numpy.zeros(3)
        total = 0.0
        for x in xs:
            h = h * 0.5 + x @ w  # linear in w: d total / d w = sum_t d h_t / d w
            total = total + h.sum()
        return total

    # by hand: total = sum_t sum_i h_t[i], h_t = 0.5 h_{t-1} + x_t @ w, so
    # d total / d w[j, i] = sum_t sum_{s <= t} 0.5**(t - s) x_s[j]
    want = numpy.zeros((3, 3))
    for t in range(len(xs)):
        for s in range(t + 1):
            want += 0.5 ** (t - s) * xs[s][:, None]
    w = cr.tensor(w0, requires_grad=True)
    run(w).backward()
    numpy.testing.assert_allclose(w.grad, want, rtol=1e-12)
    kept = w.grad
    snapshot = kept.copy()
    run(w).backward()  # accumulates: twice the gradient
    numpy.testing.assert_allclose(w.grad, 2 * want, rtol=1e-12)
    numpy.testing.assert_array_equal(kept, snapshot)  # the first result, untouched
    assert w.grad is not kept
