"""Two exact rewrites of jit's programs (chainrule.program.ir): negations that cancel or fold
into a subtraction, and sums of scatters into disjoint slices written as one array.  Each must
leave the bits of the eager path unchanged (signed zeros, infinities and NaNs included) and
the gradient right (finite differences), and must not fire where it would change a value.
(The merged slices keep a -0.0 cotangent negative where the separate sums made it +0.0: equal
values, so the slice tests compare values, not the sign of zeros.)"""

from __future__ import annotations

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_cases import fd_grad

import chainrule as cr

SPECIAL = numpy.array([-0.0, 0.0, 1.5, -2.25, numpy.inf, -numpy.inf, numpy.nan, 1e-310, -3e38])


def _bits(x):
    # every bit but a NaN's sign and payload (IEEE leaves those to the hardware: x86 makes
    # inf * 0 a negative NaN, so -(-inf * 0) and inf * 0 differ there and nowhere else)
    x = numpy.where(numpy.isnan(x), numpy.nan, x)
    return x.view(numpy.uint64 if x.dtype.itemsize == 8 else numpy.uint32)


def _same_bits(got, want):
    numpy.testing.assert_array_equal(_bits(got), _bits(want))


def _body(src):
    return src.split("\n", 1)[1]


def test_the_chain_rule_through_exp_of_a_negation_has_no_negations_left():
    # sigmoid written by hand: the derivative chain is -(-(g) * t / t * t) before the rewrite
    def f(x):
        return (1 / (1 + numpy.exp(-x))).sum()

    x = numpy.linspace(-3, 3, 7)
    vg = cr.jit(cr.value_and_grad(f))
    value, g = vg(x)
    want_value, want_g = cr.value_and_grad(f)(x)
    _same_bits(g, want_g)
    _same_bits(value, want_value)
    numpy.testing.assert_allclose(g, fd_grad(f, x), rtol=1e-7)
    assert "-(-" not in _body(vg.source(x))


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_folded_negations_keep_every_bit_of_special_values(dtype):
    x = SPECIAL.astype(dtype)
    y = numpy.roll(SPECIAL, 3).astype(dtype)

    def f(x, y):
        n = -x
        folds = [-(-x * y), -(-(x * y) / y * x), x + -y, -x + y, x - (-y), (-x) * (-y)]
        inside = [x + -(y * x) / y, -(x / y) * y + x, x - (-y) * x, x + (-(x * y)).T]
        return [*folds, *inside, numpy.negative(-n)]

    with numpy.errstate(all="ignore"):
        want = f(x, y)
        jf = cr.jit(f)
        got = jf(x, y)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        _same_bits(a, b)
    src = _body(jf.source(x, y))
    assert "-(-" not in src and "+ -" not in src and "- -" not in src


def test_integer_negations_are_left_as_they_are():
    # -(-128) overflows in int8: -(-x * y) is not x * y there when mixed with a float
    x = numpy.array([-128, 5, -7], dtype=numpy.int8)
    y = numpy.array([1.5, 2.0, -0.5])

    def f(x, y):
        return [-(-x * y), -x + y, y - -x]

    with numpy.errstate(all="ignore"):
        want = f(x, y)
        got = cr.jit(f)(x, y)
    for a, b in zip(got, want):
        _same_bits(a, b)


def test_complex_negations_are_left_as_they_are():
    # NumPy's complex products are not symmetric in sign to the last bit: -(-x * y) may differ
    # from x * y there, so the program keeps what the code wrote
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal(500) + 1j * rng.standard_normal(500)
    y = rng.standard_normal(500) + 1j * rng.standard_normal(500)

    def f(x, y):
        return [-(-x * y), x + -(y * x) / y, (-x) / (-y)]

    jf = cr.jit(f)
    for a, b in zip(jf(x, y), f(x, y)):
        numpy.testing.assert_array_equal(a.view(numpy.uint64), b.view(numpy.uint64))
    assert _body(jf.source(x, y)).count("-") >= 4


def test_a_negation_read_twice_stays():
    def f(x):
        n = -x
        return (n * x).sum() + (n * 2.0).sum()

    x = numpy.array([0.5, -1.0, 2.0])
    _, g = cr.jit(cr.value_and_grad(f))(x)
    _same_bits(g, cr.value_and_grad(f)(x)[1])
    numpy.testing.assert_allclose(g, fd_grad(f, x), rtol=1e-7)


OPS = ("neg", "mul", "div", "add", "sub")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 5)), min_size=2, max_size=12))
def test_random_chains_of_negations_keep_the_eager_bits(steps):
    # a random program of negations, products, quotients, sums and differences over values
    # with signed zeros and infinities: jit's rewritten program gives the eager bits
    def step(op, a, b):
        if op == "neg":
            return -a
        if op == "mul":
            return a * b
        if op == "div":
            return a / b
        return a + -b if op == "add" else a - b

    def f(x, y):
        vals = [x, y]
        for op, k in steps:
            vals.append(step(op, vals[k % len(vals)], vals[(k + 1) % len(vals)]))
        return vals[-1]

    x, y = SPECIAL, numpy.roll(SPECIAL, 4)
    with numpy.errstate(all="ignore"):
        _same_bits(cr.jit(f)(x, y), f(x, y))


def _gates(z, h):
    # a recurrent cell's gates read as slices of one pre-activation (the GRU's pattern)
    a = 1 / (1 + numpy.exp(-z[:, :3]))
    b = numpy.tanh(z[:, 3:5])
    c = z[:, 5:] ** 2
    return (a * h[:, :3]).sum() + (b * h[:, 3:5]).sum() + (c * h[:, 5:]).sum()


def test_slices_cotangents_become_one_array():
    rng = numpy.random.default_rng(0)
    z, h = rng.standard_normal((4, 8)), rng.standard_normal((4, 8))
    vg = cr.jit(cr.value_and_grad(_gates, argnums=(0, 1)))
    value, (gz, gh) = vg(z, h)
    _, (wz, wh) = cr.value_and_grad(_gates, argnums=(0, 1))(z, h)
    numpy.testing.assert_array_equal(gz, wz)
    numpy.testing.assert_array_equal(gh, wh)
    numpy.testing.assert_allclose(gz, fd_grad(lambda x: _gates(x, h), z), rtol=1e-6)
    src = _body(vg.source(z, h))
    assert src.count("numpy.empty((4, 8)") == 2  # one array for each of z's and h's gradients
    assert "zeros" not in src and "[:, :3] =" in src and "[:, 5:] =" in src


@pytest.mark.parametrize(
    "picks, merged",
    [
        ((numpy.s_[:, :3], numpy.s_[:, 2:]), False),  # overlapping: column 2 in both
        ((numpy.s_[:, ::2], numpy.s_[:, 1::2]), True),  # interleaved
        ((numpy.s_[0], numpy.s_[1:3], numpy.s_[3]), True),  # rows by integers and a slice
        ((numpy.s_[:2, :4], numpy.s_[2:, :4], numpy.s_[:, 4:]), True),  # a 2-D tiling
        ((numpy.s_[:, 1:3], numpy.s_[:, -5:-3]), True),  # negative bounds
        ((numpy.s_[:, 1:3], numpy.s_[:, -6:-4]), False),  # column 2 twice, by negative bounds
    ],
)
def test_only_disjoint_slices_are_merged(picks, merged):
    rng = numpy.random.default_rng(1)
    z, w = rng.standard_normal((4, 8)), rng.standard_normal((4, 8))

    def f(z):
        return sum(((z[p] * w[p]) ** 2).sum() for p in picks)

    vg = cr.jit(cr.value_and_grad(f))
    _, g = vg(z)
    numpy.testing.assert_array_equal(g, cr.value_and_grad(f)(z)[1])
    numpy.testing.assert_allclose(g, fd_grad(f, z), rtol=1e-6, atol=1e-7)
    src = _body(vg.source(z))
    covers = len(picks) > 2 or picks[0] == numpy.s_[:, ::2]
    make = "numpy.empty" if covers else "numpy.zeros"
    arrays = src.count("numpy.zeros") + src.count("numpy.empty")
    assert (arrays == 1 and make in src) is merged


def test_merged_slices_write_every_position_once():
    # the whole array covered: no zeros needed (numpy.empty), and nothing left unwritten
    def f(z):
        return (z[:, :2] * 3.0).sum() + (z[:, 2:] ** 2).sum()

    z = numpy.arange(8.0).reshape(2, 4)
    vg = cr.jit(cr.grad(f))
    g = vg(z)
    numpy.testing.assert_array_equal(g, numpy.where(numpy.arange(4) < 2, 3.0, 2 * z))
    assert "numpy.empty((2, 4)" in _body(vg.source(z))


def test_a_long_sum_of_slices_compiles():
    # thousands of terms added one after another: the passes walk them without recursing
    def f(x):
        total = x[0] * 0.0
        for i in range(3000):
            total = total + x[i % 4] * float(i % 7)
        return total

    x = numpy.array([1.0, -2.0, 0.5, 3.0])
    g = cr.jit(cr.grad(f))(x)
    numpy.testing.assert_array_equal(g, cr.grad(f)(x))
    want = [sum(float(i % 7) for i in range(3000) if i % 4 == k) for k in range(4)]
    numpy.testing.assert_allclose(g, want)
