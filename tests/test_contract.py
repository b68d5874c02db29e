"""engine.contract.einsum: einsum by matrix products.  Values are checked against NumPy's own
einsum loop (an independent implementation) to rounding, fallbacks against it bit for bit,
gradients against einsum formulas and finite differences, jit against eager bit for bit."""

from __future__ import annotations

import numpy
import pytest

import chainrule as cr
from chainrule.engine.contract import einsum, plan

# (subscripts, shapes, the kinds of the plan's steps; None: numpy.einsum itself)
CASES = [
    ("bi,oij,bj->bo", [(64, 16), (4, 16, 16), (64, 16)], ["matmul", "matmul", "out"]),
    ("bo,bi,bj->oij", [(64, 4), (64, 16), (64, 16)], ["einsum", "matmul", "out"]),
    ("bqd,bkd->bqk", [(4, 32, 16), (4, 32, 16)], ["matmul", "out"]),  # attention scores
    ("bhqk,bhkd->bhqd", [(2, 4, 32, 32), (2, 4, 32, 8)], ["matmul", "out"]),
    ("ij,jk,kl->il", [(20, 30), (30, 40), (40, 10)], ["matmul", "matmul", "out"]),
    ("ij,jk->ki", [(60, 40), (40, 50)], ["matmul", "out"]),  # output transposed
    ("nd,md->nm", [(200, 3), (300, 3)], ["matmul", "out"]),  # 3-D points: BLAS still pays
    ("ijk,k->", [(40, 40, 30), (30,)], ["sum", "matmul", "out"]),  # i, j summed out first
    ("ab,cd,bd->ac", [(20, 30), (25, 35), (30, 35)], ["matmul", "matmul", "out"]),
    ("ij,ij->i", [(20000, 3), (20000, 3)], None),  # row-wise dots of 3-vectors: einsum
    ("bi,bj->bij", [(500, 32), (500, 32)], None),  # an outer product: nothing to contract
    ("ij,jk->ik", [(8, 16), (16, 4)], None),  # too small to pay
    ("ii,i->i", [(300, 300), (300,)], None),  # a diagonal
    ("ij,j->i", [(300, 200), (1,)], None),  # j broadcast from length 1
]


def _operands(shapes, dtype, seed=0):
    rng = numpy.random.default_rng(seed)
    ops = [rng.standard_normal(s) for s in shapes]
    if numpy.dtype(dtype).kind == "c":
        ops = [o + 1j * rng.standard_normal(o.shape) for o in ops]
    return [o.astype(dtype) for o in ops]


@pytest.mark.parametrize("spec,shapes,kinds", CASES)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.complex128])
def test_values_agree_with_numpy_einsum(spec, shapes, kinds, dtype):
    ops = _operands(shapes, dtype)
    steps = plan(spec, tuple(o.shape for o in ops))
    assert (None if steps is None else [s[0] for s in steps]) == kinds
    got, want = einsum(spec, *ops), numpy.einsum(spec, *ops)
    assert got.shape == want.shape and got.dtype == want.dtype
    if steps is None:
        numpy.testing.assert_array_equal(got, want)  # numpy.einsum itself
    else:
        tol = 1e-5 if dtype == numpy.float32 else 1e-12
        numpy.testing.assert_allclose(got, want, rtol=tol, atol=tol * abs(want).max())
        assert got.flags.c_contiguous


def test_fallbacks_keep_numpy_einsum():
    rng = numpy.random.default_rng(1)
    a, b = rng.standard_normal((200, 100)), rng.standard_normal((100, 50))
    # mixed dtypes, integers, a single operand: numpy.einsum, bit for bit
    for spec, ops in [
        ("ij,jk->ik", [a.astype(numpy.float32), b]),
        ("ij,jk->ik", [(a * 10).astype(int), (b * 10).astype(int)]),
        ("ij->ji", [a]),
    ]:
        numpy.testing.assert_array_equal(einsum(spec, *ops), numpy.einsum(spec, *ops))


def test_random_expressions_agree_with_numpy_einsum():
    # two or three operands with indices drawn at random: shared, batch, summed, broadcast
    rng = numpy.random.default_rng(2)
    routed = 0
    for _ in range(150):
        letters = "abcdef"[: rng.integers(3, 7)]
        size = {c: int(rng.integers(1, 25)) for c in letters}
        terms = []
        for _ in range(rng.integers(2, 4)):
            k = rng.integers(1, min(4, len(letters)) + 1)
            terms.append("".join(rng.choice(list(letters), k, replace=False)))
        used = sorted(set("".join(terms)))
        out = "".join(c for c in used if rng.random() < 0.4)
        spec = ",".join(terms) + "->" + "".join(rng.permutation(list(out)))
        ops = [rng.standard_normal([size[c] for c in t]) for t in terms]
        routed += plan(spec, tuple(o.shape for o in ops)) is not None
        got, want = einsum(spec, *ops), numpy.einsum(spec, *ops)
        assert got.shape == want.shape, spec
        numpy.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * (1 + abs(want).max()))
    assert routed >= 20  # the matrix-product route was taken often enough to mean something


def _bilinear(x, W, y, C):
    return (numpy.einsum("bi,oij,bj->bo", x, W, y) * C).sum()


def test_gradients_of_a_routed_einsum():
    x, W, y, C = _operands([(64, 16), (4, 16, 16), (64, 16), (64, 4)], numpy.float64, seed=3)
    assert plan("bi,oij,bj->bo", (x.shape, W.shape, y.shape)) is not None
    gx, gW, gy = cr.grad(_bilinear, argnums=(0, 1, 2))(x, W, y, C)
    # the derivation by hand, through NumPy's own einsum loop
    numpy.testing.assert_allclose(gx, numpy.einsum("bo,oij,bj->bi", C, W, y), rtol=1e-12)
    numpy.testing.assert_allclose(gW, numpy.einsum("bo,bi,bj->oij", C, x, y), rtol=1e-12)
    numpy.testing.assert_allclose(gy, numpy.einsum("bo,oij,bi->bj", C, W, x), rtol=1e-12)
    # and finite differences on a few entries of W (the loss is linear in W: exact to rounding)
    h = 1e-3
    for idx in [(0, 0, 0), (3, 15, 7), (2, 5, 11)]:
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += h
        Wm[idx] -= h
        fd = (_bilinear(x, Wp, y, C) - _bilinear(x, Wm, y, C)) / (2 * h)
        assert abs(fd - gW[idx]) <= 1e-8 * (1 + abs(fd))


def test_second_order_through_a_routed_einsum():
    # d/dx of sum(x^T A x) by einsum, twice: the Hessian is A + A^T
    rng = numpy.random.default_rng(4)
    A = rng.standard_normal((200, 200))

    def f(x):
        return numpy.einsum("i,ij,j->", x, A, x)

    H = cr.jacobian(cr.grad(f))(rng.standard_normal(200))
    numpy.testing.assert_allclose(H, A + A.T, rtol=1e-12, atol=1e-12)


def test_jit_equals_eager_bit_for_bit():
    x, W, y, C = _operands([(64, 16), (4, 16, 16), (64, 16), (64, 4)], numpy.float64, seed=5)
    step = cr.value_and_grad(_bilinear, argnums=(0, 1, 2))
    value, grads = step(x, W, y, C)
    fast = cr.jit(step)
    assert "_einsum(" in fast.source(x, W, y, C)
    value_j, grads_j = fast(x, W, y, C)
    assert value_j == value
    for a, b in zip(grads_j, grads):
        numpy.testing.assert_array_equal(a, b)
