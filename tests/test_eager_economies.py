"""Economies of the eager path (issue 16): ``x * x`` differentiated with one rule call, the power
rule of a negative whole exponent as a division, the walk's next node kept beside its heap.
Every gradient is checked against a hand derivation or finite differences, at the awkward points
(zeros of both signs, infinities, overflow and underflow) too."""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.engine import primitives as P


def _same_signs(got, want):
    # allclose does not see the sign of a zero; the rule's conventions do
    got, want = numpy.asarray(got), numpy.asarray(want)
    zero = want == 0
    assert (numpy.signbit(got[zero]) == numpy.signbit(want[zero])).all(), (got, want)


# ---- x * x: one rule, doubled ------------------------------------------------------------------


def count_multiply_rule_calls(monkeypatch):
    calls = []
    rules = P.multiply.vjps

    def counting(i):
        def rule(*a, **k):
            calls.append(i)
            return rules[i](*a, **k)

        return rule

    monkeypatch.setattr(P.multiply, "vjps", (counting(0), counting(1)))
    return calls


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_square_written_as_a_product_is_differentiated_once(monkeypatch, dtype):
    calls = count_multiply_rule_calls(monkeypatch)
    x = numpy.array([[1.5, -2.0, 0.0], [3.0, -0.25, 7.0]], dtype)

    def f(x):
        s = numpy.sin(x)
        return (s * s).sum()

    g = cr.grad(f)(x)
    assert calls == [0]
    assert g.dtype == dtype
    want = 2 * numpy.sin(x.astype(float)) * numpy.cos(x.astype(float))  # d sin^2 = 2 sin cos
    numpy.testing.assert_allclose(g, want, rtol=1e-6 if dtype == numpy.float32 else 1e-14)


def test_a_square_beside_another_use_of_the_same_value():
    # the doubled term meets the other consumer's gradient: d/dx (e^2 + 3e) = (2e + 3) e, e = exp x
    x = numpy.linspace(-1.0, 1.0, 7)

    def f(x):
        e = numpy.exp(x)
        return (e * e + 3.0 * e).sum()

    e = numpy.exp(x)
    numpy.testing.assert_allclose(cr.grad(f)(x), (2 * e + 3) * e, rtol=1e-14)
    t = cr.tensor(x, requires_grad=True)  # backward() into .grad: the same numbers
    f(t).backward()
    numpy.testing.assert_allclose(t.grad, (2 * e + 3) * e, rtol=1e-14)


def test_a_square_of_a_leaf_and_a_broadcast_square():
    # the leaf itself squared (its gradient is the doubled array, kept as .grad), and a product
    # whose gradient is summed back over a broadcast axis before it is doubled
    x = numpy.array([0.5, -1.5, 2.0])
    numpy.testing.assert_allclose(cr.grad(lambda x: (x * x).sum())(x), 2 * x, rtol=0)
    P_ = numpy.random.default_rng(0).standard_normal((5, 3))

    def pair_energy(P_):
        d = P_[:, None, :] - P_[None, :, :]
        return ((d * d).sum(-1) ** 2).sum()

    numpy.testing.assert_allclose(
        cr.grad(pair_energy)(P_), fd_grad(pair_energy, P_), rtol=1e-7, atol=1e-7
    )


def test_x_plus_x_and_a_complex_square():
    x = numpy.array([1.0, -2.0])
    numpy.testing.assert_array_equal(cr.grad(lambda x: (x + x).sum())(x), [2.0, 2.0])
    # real loss of complex z: grad is dL/da - i dL/db; L = Re(sum z*z) = a^2 - b^2 -> 2a + 2ib
    z = numpy.array([1.0 + 2.0j, -0.5 + 0.25j])
    g = cr.grad(lambda z: numpy.real((z * z).sum()))(z)
    numpy.testing.assert_allclose(g, 2 * z.real + 2j * z.imag, rtol=1e-15)


def test_the_doubled_gradient_is_not_shared():
    # a 0-d product, and a square whose operand is a gradient seed shared with another leaf:
    # every leaf receives an array of its own
    a, b = cr.tensor(3.0, requires_grad=True), cr.tensor(numpy.ones(2), requires_grad=True)
    (a * a + (b * b).sum()).backward()
    assert float(a.grad) == 6.0
    numpy.testing.assert_array_equal(b.grad, [2.0, 2.0])
    b.grad[0] = 99.0
    c = cr.tensor(numpy.ones(2), requires_grad=True)
    (c * c).sum().backward()
    numpy.testing.assert_array_equal(c.grad, [2.0, 2.0])


def test_second_order_through_a_square():
    # d2/dx2 of sum(sin(x)^2) = 2 cos(2x)
    x = numpy.array([0.3, -1.2, 2.0])

    def f(x):
        s = numpy.sin(x)
        return (s * s).sum()

    h = cr.grad(lambda x: cr.grad(f)(x).sum())(x)
    numpy.testing.assert_allclose(h, 2 * numpy.cos(2 * x), rtol=1e-13)


# ---- power: a negative whole exponent as out / x ---------------------------------------------

AWKWARD = [0.0, -0.0, numpy.inf, -numpy.inf, -2.0, 0.5, 3.0, 1e-110, -1e-110, 1e110, 1e-300, 5e-324]
# the same kinds of points in float32's range: overflow and underflow of x**y, a subnormal x
AWKWARD32 = [0.0, -0.0, numpy.inf, -numpy.inf, -2.0, 0.5, 3.0, 1e-12, -1e-12, 1e12, 1e-38, 1e-45]


@pytest.mark.parametrize("y", [-1, -2, -3, -3.0, -4.0, -7])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_power_rule_of_a_negative_whole_exponent(y, dtype):
    x = numpy.array(AWKWARD if dtype == numpy.float64 else AWKWARD32, dtype)
    with numpy.errstate(all="ignore"):
        got = cr.grad(lambda x: (x**y).sum())(x)
        # hand derivation: y * x**(y - 1), pow of the exponent itself
        want = y * numpy.power(x, numpy.array(y - 1, dtype))
    assert got.dtype == dtype
    numpy.testing.assert_allclose(got, want, rtol=4 * numpy.finfo(dtype).eps, atol=0)
    _same_signs(got, want)


@pytest.mark.parametrize("y", [-0.5, -1.5, 0.5, 1.5, 3, 3.0])
def test_power_rule_of_other_exponents_is_unchanged(y):
    # fractional and positive exponents keep pow: at -0, pow(-0, -0.5) is +inf and the ratio
    # out / x would give the derivative the wrong sign; at 0 a positive exponent's is 0, not 0/0
    x = numpy.array(AWKWARD)
    with numpy.errstate(all="ignore"):
        got = cr.grad(lambda x: (x**y).sum())(x)
        want = y * numpy.power(x, y - 1)
    numpy.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    _same_signs(got, want)


def test_power_rule_against_finite_differences_and_second_order():
    x = numpy.array([0.7, 1.3, -2.2, 4.0])
    f = lambda x: (x**-3).sum()  # noqa: E731
    numpy.testing.assert_allclose(cr.grad(f)(x), fd_grad(f, x), rtol=1e-7)
    # d2/dx2 x**-3 = 12 x**-5 (the first derivative's division differentiates through out)
    h = cr.grad(lambda x: cr.grad(f)(x).sum())(x)
    numpy.testing.assert_allclose(h, 12 * x**-5, rtol=1e-13)


def test_power_rule_of_a_complex_base_keeps_pow():
    # complex z: d/dz z**-2 = -2 z**-3 (holomorphic; the rule is the real one, unconjugated)
    z = numpy.array([1.0 + 1.0j, -0.5 + 2.0j])
    g = cr.grad(lambda z: numpy.real((z**-2).sum()))(z)
    numpy.testing.assert_allclose(g, -2 * z**-3, rtol=1e-14)


def test_power_rule_jit_matches_eager_bit_for_bit():
    x = numpy.array([0.5, 1.25, -3.0, 2.0])
    f = cr.grad(lambda x: (x**-3).sum())
    assert cr.jit(f)(x).tobytes() == f(x).tobytes()


# ---- gradients the walk made itself: negated and added into in place --------------------------

N = 3000  # above the size where the walk tracks who owns an array


def test_the_y_of_x_minus_y_when_x_takes_the_same_gradient():
    # x's gradient is the incoming one passed through, y's its negation: negating in place
    # would change x's too
    rng = numpy.random.default_rng(2)
    x, y, w = rng.standard_normal((3, N))

    def f(x, y):
        return (w * numpy.exp(x - y)).sum()

    gx, gy = cr.grad(f, argnums=(0, 1))(x, y)
    numpy.testing.assert_allclose(gx, w * numpy.exp(x - y), rtol=1e-14)
    numpy.testing.assert_allclose(gy, -w * numpy.exp(x - y), rtol=1e-14)
    numpy.testing.assert_array_equal(cr.grad(lambda x: (w * (x - x)).sum())(x), 0.0)


def test_chains_of_negations_and_differences_against_a_hand_derivation():
    # f = sum(w * -(e - e*e)) + sum(v * (e - x)), e = exp(x):
    # df/dx = -w (e - 2 e^2) + v e - v
    rng = numpy.random.default_rng(3)
    x, w, v = rng.standard_normal((3, N))

    def f(x):
        e = numpy.exp(x)
        return (w * -(e - e * e)).sum() + (v * (e - x)).sum()

    e = numpy.exp(x)
    want = -w * (e - 2 * e * e) + v * e - v
    numpy.testing.assert_allclose(cr.grad(f)(x), want, rtol=1e-12, atol=1e-12)
    t = cr.tensor(x, requires_grad=True)
    f(t).backward()
    numpy.testing.assert_allclose(t.grad, want, rtol=1e-12, atol=1e-12)


def test_many_uses_of_one_value_add_up():
    # every term lands in the first one's array: d/dx sum(a sin x + b cos x + c x^2 + x^-2)
    rng = numpy.random.default_rng(4)
    a, b, c = rng.standard_normal((3, N))
    x = rng.uniform(0.5, 2.0, N)

    def f(x):
        return (a * numpy.sin(x) + b * numpy.cos(x) + c * (x * x) + x**-2).sum()

    want = a * numpy.cos(x) - b * numpy.sin(x) + 2 * c * x - 2 * x**-3
    got = cr.grad(f)(x)
    numpy.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the arrays handed out are the caller's own
    got2 = cr.grad(f)(x)
    got[:] = 0.0
    numpy.testing.assert_allclose(got2, want, rtol=1e-12, atol=1e-12)


def test_a_pair_energy_against_finite_differences():
    # the Lennard-Jones form of the benchmark (r**-3 of squared distances, x * x summed over a
    # short axis, broadcast differences), large enough for the in-place paths
    rng = numpy.random.default_rng(5)
    g = numpy.stack(numpy.meshgrid(*[numpy.arange(4.0)] * 3, indexing="ij"), -1)
    P_ = g.reshape(-1, 3)[:30] * 1.12 + 0.03 * rng.standard_normal((30, 3))
    mask, eye = numpy.triu(numpy.ones((30, 30)), 1), numpy.eye(30)

    def energy(P_):
        diff = P_[:, None, :] - P_[None, :, :]
        r2 = (diff * diff).sum(axis=-1) + eye
        inv3 = r2**-3
        return (mask * 4.0 * (inv3 * inv3 - inv3)).sum()

    got = cr.grad(energy)(P_)
    numpy.testing.assert_allclose(got, fd_grad(energy, P_), rtol=1e-6, atol=1e-6)


def test_softmax_gradient_against_finite_differences():
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((3, 5))
    from chainrule.nn import functional as F

    def f(x):
        s = F.softmax(x, dim=-1)
        return (w * s * s).sum()  # the softmax read twice

    numpy.testing.assert_allclose(cr.grad(f)(x), fd_grad(f, x), rtol=1e-7, atol=1e-9)
    numpy.testing.assert_allclose(F.softmax(x).sum(-1), 1.0, rtol=1e-15)


def test_a_gradient_passed_to_both_inputs_of_a_sum_stays_theirs():
    # s = a + b hands the same array to a and b; a term that reaches a later (v * a was
    # recorded before s) must not be added into b's gradient too
    rng = numpy.random.default_rng(7)
    x, w, v = rng.standard_normal((3, N))

    def f(x):
        a, b = numpy.sin(x), numpy.cos(x)
        t = (v * a).sum()
        s = a + b
        return t + (w * numpy.exp(s)).sum()

    e = numpy.exp(numpy.sin(x) + numpy.cos(x))
    want = (w * e + v) * numpy.cos(x) - w * e * numpy.sin(x)
    numpy.testing.assert_allclose(cr.grad(f)(x), want, rtol=1e-12, atol=1e-12)


def test_a_negation_in_place_spares_a_reshaped_view_handed_to_the_other_input():
    # n = a - b reaches its gradient as a reshaped view of an array the walk made (the y of
    # m = z - n, summed to n's shape only by dropping a length-1 axis); its x-input a takes a
    # view of that same memory (one more length-1 axis dropped), so b's negation must not
    # happen in place
    rng = numpy.random.default_rng(8)
    a0, b0, z0, w = (rng.standard_normal(s) for s in [(50,), (1, 50), (1, 1, 50), (1, 1, 50)])

    def f(a, b, z):
        n = a - b
        m = z - n
        return (w * numpy.exp(m)).sum()

    e = w * numpy.exp(z0 - (a0 - b0))
    ga, gb, gz = cr.grad(f, argnums=(0, 1, 2))(a0, b0, z0)
    numpy.testing.assert_allclose(ga, -e.reshape(50), rtol=1e-14)
    numpy.testing.assert_allclose(gb, e.reshape(1, 50), rtol=1e-14)
    numpy.testing.assert_allclose(gz, e, rtol=1e-14)
    # the same through backward(): a keeps the view as its .grad
    ta, tb, tz = (cr.tensor(v, requires_grad=True) for v in (a0, b0, z0))
    f(ta, tb, tz).backward()
    numpy.testing.assert_allclose(ta.grad, -e.reshape(50), rtol=1e-14)
    numpy.testing.assert_allclose(tb.grad, e.reshape(1, 50), rtol=1e-14)


# ---- the walk's order: the node a chain hands to waits beside the heap --------------------------


@pytest.mark.parametrize("newer_first", [False, True])
def test_the_newest_waiting_node_goes_first_wherever_it_waits(newer_first):
    # y = a + b with b computed from a: b (newer) must be differentiated before a, or a's
    # gradient would miss b's term. One input waits beside the heap and the other in it; both
    # orders of the arguments. By hand: a = 2x, b = 3a, y = a + b = 8x, dy/dx = 8; and
    # z = y * c with c = 5x + a (c newer than a, older than b): dz/dx = 8c + 7y at x = 1.5.
    x = cr.tensor(numpy.array([1.5, -2.0]), requires_grad=True)
    a = x * 2.0
    b = a * 3.0
    y = b + a if newer_first else a + b
    y.sum().backward(retain_graph=True)
    numpy.testing.assert_array_equal(x.grad, [8.0, 8.0])
    x.grad = None
    c = x * 5.0 + a
    z = c * y if newer_first else y * c
    z.sum().backward()
    xs = numpy.array([1.5, -2.0])
    want = 8.0 * (7.0 * xs) + 7.0 * (8.0 * xs)  # z = 56 x^2, dz/dx = 112 x
    numpy.testing.assert_allclose(x.grad, want, rtol=1e-15)
    numpy.testing.assert_allclose(want, 112.0 * xs, rtol=1e-15)


# ---- the seed of a scalar loss ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
def test_a_scalar_loss_seeded_with_a_numpy_scalar_gives_owned_arrays(dtype):
    # mean and sum reduce to a NumPy scalar, so backward()'s seed is one (shared, immutable).
    # By hand: d/dw mean(w * 3) = 3 / n, d/dw sum(w) = 1; each .grad a writable array of w's
    # dtype that no other .grad shares, the same on every call.
    w = cr.tensor(numpy.array([0.5, -1.0, 2.0, 4.0], dtype=dtype), requires_grad=True)
    v = cr.tensor(numpy.array([1.0, 2.0], dtype=dtype), requires_grad=True)
    grads = []
    for _ in range(2):
        w.grad = v.grad = None
        loss = (w * 3).mean() + v.sum()
        assert isinstance(loss._data, numpy.generic)
        loss.backward()
        for g, n in ((w.grad, 4), (v.grad, 2)):
            assert type(g) is numpy.ndarray and g.dtype == dtype and g.flags.writeable
            assert g.shape == (n,)
        numpy.testing.assert_array_equal(w.grad, numpy.full(4, dtype(3) / dtype(4), dtype))
        numpy.testing.assert_array_equal(v.grad, numpy.ones(2, dtype))
        assert not numpy.may_share_memory(w.grad, v.grad)
        grads.append((w.grad, v.grad))
    grads[1][1][...] = 7  # writing into one call's gradient leaves the other's alone
    numpy.testing.assert_array_equal(grads[0][1], numpy.ones(2, dtype))
    x = cr.tensor(numpy.float64(3.0), requires_grad=True)  # the loss is the leaf itself
    x.backward()
    assert type(x.grad) is numpy.ndarray and x.grad.flags.writeable and float(x.grad) == 1.0


# ---- x ** 2 computed by numpy.square ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("two", [2, 2.0])
def test_a_float_array_squared_has_numpy_powers_values(dtype, two):
    # the primitive's function takes numpy.square for x ** 2: the same correctly rounded x * x
    # as numpy.power, at zeros of both signs, infinities, NaN, subnormals and overflow
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal(2000) * 10.0 ** rng.integers(-40, 40, 2000)
    specials = [0.0, -0.0, numpy.inf, -numpy.inf, numpy.nan, 5e-324, -3e-310, 1e200]
    x = numpy.concatenate([x, specials])
    with numpy.errstate(all="ignore"):
        x = x.astype(dtype)
        want = numpy.power(x, two)
        got = (cr.tensor(x) ** two).numpy()
        jitted = cr.jit(lambda v: v**two)(x)
    assert got.dtype == want.dtype
    assert numpy.array_equal(got, want, equal_nan=True)
    assert numpy.array_equal(numpy.signbit(got), numpy.signbit(want))
    assert numpy.array_equal(jitted, want, equal_nan=True)


def test_squares_of_other_kinds_and_under_vmap_still_follow_numpy_power():
    ints = numpy.array([-3, 0, 7])
    assert numpy.array_equal((cr.tensor(ints) ** 2).numpy(), numpy.power(ints, 2))
    z = numpy.array([1 + 2j, -0.5j])
    assert numpy.array_equal((cr.tensor(z) ** 2).numpy(), numpy.power(z, 2))
    xs = numpy.random.default_rng(4).standard_normal((5, 3))
    got = cr.vmap(cr.grad(lambda v: (v**2).sum()))(xs)
    numpy.testing.assert_allclose(got, 2 * xs, rtol=1e-15)


# ---- whole powers x ** 3, x ** -2 computed from |x| -------------------------------------------


def _ulps(got, exact, dtype):
    """|got - exact| in units of the last place of the exact value (exact: Fractions)."""
    from fractions import Fraction

    out = []
    for g, e in zip(got, exact):
        spacing = numpy.spacing(numpy.abs(dtype(float(e))))
        out.append(float(abs(Fraction(float(g)) - e) / Fraction(float(spacing))))
    return max(out)


@pytest.mark.parametrize("n", [3, 4, 5, -2, -3, 3.0, 7])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_whole_powers_of_negative_values_are_faithful_and_follow_the_sign_rule(n, dtype):
    from fractions import Fraction

    rng = numpy.random.default_rng(5)
    x = (rng.standard_normal(400) * 3).astype(dtype)
    with numpy.errstate(all="ignore"):
        got = (cr.tensor(x) ** n).numpy()
        if dtype is numpy.float64:
            # NumPy's own values where x >= 0, bit for bit; |x| ** n with pow's sign rule
            # elsewhere
            pos = x >= 0
            assert numpy.array_equal(got[pos], numpy.power(x[pos], n))
            mirrored = numpy.power(-x[~pos], n) * (-1 if int(n) % 2 else 1)
            assert numpy.array_equal(got[~pos], mirrored.astype(dtype))
    exact = [Fraction(float(v)) ** int(n) for v in x]  # exact rational arithmetic
    # float64: within one unit in the last place of the exact power; float32, computed in
    # float64 and rounded once: the correctly rounded power
    assert _ulps(got, exact, dtype) <= (1.0 if dtype is numpy.float64 else 0.5)
    assert got.dtype == dtype


@pytest.mark.parametrize("n", [3, 4, -2, -3])
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_whole_powers_at_the_awkward_points_match_numpy(n, dtype):
    # zeros of both signs, infinities, NaN, subnormals, overflow and underflow: NumPy's values
    # and signs, and the same warnings (numpy.power's divide by zero / overflow)
    fi = numpy.finfo(dtype)
    x = numpy.array(
        [
            0.0,
            -0.0,
            numpy.inf,
            -numpy.inf,
            numpy.nan,
            1.0,
            -1.0,
            fi.max,
            -fi.max,
            fi.tiny,
            -fi.tiny,
            fi.smallest_subnormal,
            -fi.smallest_subnormal,
            1e-3,
            -1e3,
        ],
        dtype,
    )
    with numpy.errstate(all="ignore"):
        want = numpy.power(x, n)
        got = (cr.tensor(x) ** n).numpy()
    if dtype is numpy.float32:
        # the finite results that are no power of two: correctly rounded (float32 powers are
        # multiplied out in float64), where NumPy's pow may be a unit off
        from fractions import Fraction

        odd = numpy.isfinite(want) & (want != 0) & (numpy.frexp(want)[0] != 0.5)
        odd &= numpy.abs(want) != 1
        assert _ulps(got[odd], [Fraction(float(v)) ** n for v in x[odd]], dtype) <= 0.5
        got, want = got[~odd], want[~odd]
    assert numpy.array_equal(got, want, equal_nan=True)
    assert numpy.array_equal(
        numpy.signbit(got[~numpy.isnan(got)]), numpy.signbit(want[~numpy.isnan(want)])
    )
    with numpy.errstate(all="raise"), pytest.raises(FloatingPointError):
        cr.tensor(numpy.array([0.0, 2.0], dtype)) ** -3 if n < 0 else (
            cr.tensor(numpy.array([fi.max], dtype)) ** n
        )


def test_whole_powers_gradients_and_jit_agree_with_eager():
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal(300)
    f = lambda x: (0.5 * x * (1.0 + numpy.tanh(0.8 * (x + 0.044715 * x**3)))).sum()  # noqa: E731
    g = cr.grad(f)(x)
    # hand derivation of the tanh GELU: 0.5 (1 + tanh u) + 0.5 x (1 - tanh(u)^2) u'
    t = numpy.tanh(0.8 * (x + 0.044715 * x * x * x))
    want = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.8 * (1 + 3 * 0.044715 * x * x)
    numpy.testing.assert_allclose(g, want, rtol=1e-13, atol=1e-15)
    # hand derivation of x**4: 4 x**3
    g4 = cr.grad(lambda x: (x**4).sum())(x)
    numpy.testing.assert_allclose(g4, 4 * x * x * x, rtol=4e-16 * 8)
    # jit's code calls the same function: values and gradients bit for bit, negatives included
    for fn in (f, lambda x: (x**4).sum(), lambda x: (x**-3 * x**5).sum()):
        vg = cr.value_and_grad(fn)
        (v1, g1), (v2, g2) = vg(x), cr.jit(vg)(x)
        assert numpy.asarray(v1).tobytes() == numpy.asarray(v2).tobytes()
        assert g1.tobytes() == g2.tobytes()
    xs = rng.standard_normal((4, 6))
    got = cr.vmap(cr.grad(lambda v: (v**3).sum()))(xs)
    numpy.testing.assert_allclose(got, 3 * xs * xs, rtol=1e-15)
