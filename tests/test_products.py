"""Matrix products as the engine computes them (engine/primitives.py): the routes it takes for
speed (a copy of a small transposed operand, one product for a large stack times a matrix,
``dot`` or ``@``) give NumPy's own values; the rules' products are checked against finite
differences."""

from __future__ import annotations

import itertools

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.engine import primitives as P

LAYOUTS = ["C", "T"]  # a C-ordered operand, or a transposed view of one


def _operand(rng, shape, layout, dtype):
    if layout == "C" or len(shape) < 2:
        return rng.standard_normal(shape).astype(dtype)
    swapped = shape[:-2] + (shape[-1], shape[-2])
    return numpy.swapaxes(rng.standard_normal(swapped).astype(dtype), -1, -2)


PAIRS = [
    ((8, 64, 64), (64, 64)),  # a linear layer over a batch of sequences
    ((8, 64, 64), (8, 64, 64)),  # attention scores
    ((2, 3, 16, 32), (32, 8)),  # a 4-d stack
    ((2, 3, 16, 32), (3, 32, 8)),  # broadcast stacks
    ((64, 128, 64), (64, 32)),  # one product for the whole stack (over ROWS_PRODUCT)
    ((4, 128, 256), (256, 128)),  # matrices too large for the transposed copy
    ((5, 7), (7, 3)),
    ((6,), (4, 6, 2)),
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize(("sa", "sb"), PAIRS)
def test_matmul_has_numpys_values_on_every_layout(sa, sb, dtype):
    # to rounding: NumPy's own loop for a stack times a transposed operand may add up in
    # another order than the BLAS product the copy takes (jit and eager share the function)
    rng = numpy.random.default_rng(len(sa) * 10 + len(sb))
    for la, lb in itertools.product(LAYOUTS, LAYOUTS):
        a, b = _operand(rng, sa, la, dtype), _operand(rng, sb, lb, dtype)
        got = P.matmul.fun(a, b)
        want = numpy.matmul(a.astype(numpy.float64), b.astype(numpy.float64))
        assert got.dtype == dtype and got.shape == want.shape
        tol = 1e-12 if dtype == numpy.float64 else 2e-5
        numpy.testing.assert_allclose(got, want, rtol=tol, atol=tol * abs(want).max())


def test_a_transposed_small_matrix_is_copied_and_a_large_one_is_not(monkeypatch):
    seen = []
    copy = numpy.ascontiguousarray

    def counting(x, *args, **kwargs):
        seen.append(x.shape)
        return copy(x, *args, **kwargs)

    monkeypatch.setattr(numpy, "ascontiguousarray", counting)
    rng = numpy.random.default_rng(0)
    P.matmul.fun(rng.standard_normal((8, 64, 64)), rng.standard_normal((48, 64)).T)
    assert seen == [(64, 48)]
    P.matmul.fun(rng.standard_normal((4, 128, 256)), rng.standard_normal((128, 256)).T)
    assert seen == [(64, 48)]  # 128 * 256 * 128 multiply-adds a matrix: NumPy's own route
    P.matmul.fun(rng.standard_normal((64, 48)), rng.standard_normal((64, 48)).T)
    assert seen == [(64, 48)]  # two matrices: BLAS reads the transpose itself


def test_gradients_through_transposed_stacks_match_finite_differences():
    rng = numpy.random.default_rng(4)
    X = rng.standard_normal((3, 5, 4))
    W = rng.standard_normal((6, 4)) * 0.5

    def f(X, W):
        Q = X @ W.T  # a stack times a transposed matrix
        S = Q @ numpy.swapaxes(Q, 1, 2)  # a stack times a transposed stack
        return (numpy.tanh(S) @ Q).sum()

    gX, gW = cr.grad(f, argnums=(0, 1))(X, W)
    numpy.testing.assert_allclose(gX, fd_grad(lambda x: f(x, W), X), rtol=1e-6, atol=1e-8)
    numpy.testing.assert_allclose(gW, fd_grad(lambda w: f(X, w), W), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(1, 6, 6), (128, 784, 512), (300, 1, 20)])
def test_the_weight_gradient_of_a_product_in_either_spelling(shape):
    m, k, n = shape
    rng = numpy.random.default_rng(1)
    a, g = rng.standard_normal((m, k)), rng.standard_normal((m, n))
    # the rule's product is a.T @ g in either spelling
    (gb,) = cr.grad(lambda b: (cr.tensor(a) @ b * g).sum(), argnums=(0,))(
        rng.standard_normal((k, n))
    )
    numpy.testing.assert_allclose(gb, a.T @ g, rtol=1e-12, atol=1e-12)


VIEWS = {  # a matrix of shape (r, c) taken from an (r, 2c) array, as a program takes it
    "C": lambda x: x[:, : x.shape[1] // 2].copy(),
    "T": lambda x: x[:, : x.shape[1] // 2].copy().T.copy().T,  # (F-ordered)
    "columns": lambda x: x[:, : x.shape[1] // 2],  # X[:, :k]
    "strided": lambda x: x[:, ::2],  # X[:, ::2]
}


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize(("va", "vb"), list(itertools.product(VIEWS, VIEWS)))
def test_an_eager_product_of_two_matrices_has_jits_bits_and_the_right_values(va, vb, dtype):
    # eager a @ b runs the primitive's function, which spells small products as a.dot(b), as
    # jit's code does; on views neither contiguous way NumPy's matmul may round otherwise, so
    # the reference is a float64 product (to rounding) and jit (bit for bit)
    rng = numpy.random.default_rng(7)

    def f(x, y):
        return VIEWS[va](x) @ VIEWS[vb](y)

    for m, k, n in [(16, 32, 32), (1, 6, 6), (5, 1, 7), (64, 64, 64)]:
        x = rng.standard_normal((m, 2 * k)).astype(dtype)
        y = rng.standard_normal((k, 2 * n)).astype(dtype)
        eager = f(cr.tensor(x), cr.tensor(y)).numpy()
        jitted = cr.jit(f)(x, y)
        assert eager.dtype == dtype and eager.shape == (m, n)
        assert numpy.array_equal(eager, jitted)
        want = f(x.astype(numpy.float64), y.astype(numpy.float64))
        tol = 1e-12 if dtype == numpy.float64 else 2e-5
        numpy.testing.assert_allclose(eager, want, rtol=tol, atol=tol * abs(want).max())


def test_a_product_of_mismatched_matrices_says_which_shapes():
    a, b = cr.tensor(numpy.ones((2, 3)), requires_grad=True), cr.tensor(numpy.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        a @ b


SMALL_STACKS = [  # a stack of small matrices times one matrix (b may keep axes of length 1)
    ((2000, 3, 3), (1, 3, 3)),  # 3 x 3 Jacobians times one matrix
    ((500, 2, 2), (2, 2)),
    ((40, 16, 4), (4, 16)),
    ((7, 5, 3, 4), (1, 4, 9)),
    ((64, 1, 3), (3, 3)),  # single rows: NumPy's own loop (another order)
]


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize(("sa", "sb"), SMALL_STACKS)
def test_a_stack_of_small_matrices_times_one_has_numpys_bits(sa, sb, dtype, monkeypatch):
    rng = numpy.random.default_rng(sum(sa))
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    products = []
    real = numpy.matmul

    def counting(x, y, *args, **kwargs):
        products.append((x.ndim, y.ndim))
        return real(x, y, *args, **kwargs)

    monkeypatch.setattr(numpy, "matmul", counting)
    got = P.matmul.fun(a, b)
    monkeypatch.setattr(numpy, "matmul", real)
    numpy.testing.assert_array_equal(got, numpy.matmul(a, b))
    assert got.shape == numpy.matmul(a, b).shape and got.flags.c_contiguous
    one_product = sa[-2] > 1  # the route this test is about: one product of all the rows
    assert products == ([(2, 2)] if one_product else [(len(sa), len(sb))])


def test_gradients_of_a_stack_of_jacobians_times_a_matrix():
    # d/dA and d/dB of sum(w * (A_i @ B)) with B kept as a (1, 3, 3) stack: by hand,
    # dA_i = w_i @ B^T and dB = sum_i A_i^T w_i, and by finite differences
    rng = numpy.random.default_rng(6)
    A, B = rng.standard_normal((50, 3, 3)), rng.standard_normal((1, 3, 3))
    w = rng.standard_normal((50, 3, 3))

    def f(A, B):
        return (w * numpy.matmul(A, B)).sum()

    gA, gB = cr.grad(f, argnums=(0, 1))(A, B)
    numpy.testing.assert_allclose(gA, w @ B[0].T, rtol=1e-13)
    numpy.testing.assert_allclose(gB, numpy.einsum("nki,nkj->ij", A, w)[None], rtol=1e-12)
    assert gB.shape == (1, 3, 3)
    numpy.testing.assert_allclose(gB, fd_grad(lambda b: f(A, b), B), rtol=1e-6, atol=1e-8)
    jA, jB = cr.jit(cr.grad(f, argnums=(0, 1)))(A, B)
    numpy.testing.assert_array_equal(jA, gA)
    numpy.testing.assert_array_equal(jB, gB)
