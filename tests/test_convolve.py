"""numpy.convolve and numpy.correlate on tensors: NumPy's values, exact gradients at any length.

Both are one primitive (numpy.correlate itself); the rules are a full convolution and a valid
correlation, so the backward pass costs about what the forward does at any kernel length.
Expected gradients come from an independent construction: the dense matrix of the linear map
(its transpose applied to the cotangent) and central finite differences.
"""

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr

MODES = ("valid", "same", "full")
LENGTHS = [(9, 4), (9, 5), (4, 9), (5, 8), (1, 6), (6, 1), (7, 7), (40, 13)]


def _matrix(f, length):
    """The matrix M with f(x) == M @ x for a linear f of a vector of ``length`` values (built
    column by column from unit vectors: NumPy's own function applied to e_i)."""
    return numpy.stack([f(numpy.eye(length)[i]) for i in range(length)], axis=1)


@pytest.mark.parametrize("conv", [True, False], ids=["convolve", "correlate"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n,m", LENGTHS)
def test_values_are_numpys_and_gradients_are_the_transposed_map(conv, mode, n, m):
    rng = numpy.random.default_rng(n * 31 + m)
    a, v = rng.standard_normal(n), rng.standard_normal(m)
    fn = numpy.convolve if conv else numpy.correlate
    want = fn(a, v, mode)
    got = fn(cr.tensor(a), cr.tensor(v), mode).numpy()
    assert numpy.array_equal(got, want)  # the same NumPy call: the same bits
    w = rng.standard_normal(want.shape)

    def loss(a, v):
        return (fn(a, v, mode) * w).sum()

    ga, gv = cr.grad(loss, argnums=(0, 1))(a, v)
    # the map is linear in each argument: the gradient is its transpose applied to w
    ma, mv = _matrix(lambda e: fn(e, v, mode), n), _matrix(lambda e: fn(a, e, mode), m)
    numpy.testing.assert_allclose(ga, ma.T @ w, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gv, mv.T @ w, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gv, fd_grad(lambda x: loss(a, x), v), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("conv", [True, False], ids=["convolve", "correlate"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n,m", [(8, 3), (3, 8), (6, 6)])
def test_complex_values_and_gradients(conv, mode, n, m):
    # numpy.correlate conjugates its second argument, numpy.convolve does not; a real loss of
    # complex inputs has gradient df/dx - i df/dy (HIPS autograd's and JAX's convention)
    rng = numpy.random.default_rng(7)
    a = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    v = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    fn = numpy.convolve if conv else numpy.correlate
    assert numpy.array_equal(fn(cr.tensor(a), cr.tensor(v), mode).numpy(), fn(a, v, mode))
    w = rng.standard_normal(fn(a, v, mode).shape)

    def loss(a, v):
        return (numpy.abs(fn(a, v, mode)) ** 2 * w).sum()

    ga, gv = cr.grad(loss, argnums=(0, 1))(a, v)
    for got, f, x in ((ga, lambda z: loss(z, v), a), (gv, lambda z: loss(a, z), v)):
        dx = fd_grad(lambda r, f=f, x=x: f(r + 1j * x.imag), x.real)
        dy = fd_grad(lambda i, f=f, x=x: f(x.real + 1j * i), x.imag)
        numpy.testing.assert_allclose(got, dx - 1j * dy, rtol=1e-6, atol=1e-7)


def test_second_derivatives_through_the_rules():
    # the rules are convolutions again: d/dv of (d/da loss) . u, against finite differences
    rng = numpy.random.default_rng(3)
    a, v, u = rng.standard_normal(10), rng.standard_normal(4), rng.standard_normal(10)

    def loss(a, v):
        return (numpy.convolve(a, v, "same") ** 3).sum()

    def directional(v):
        return (cr.grad(loss)(a, v) * u).sum()

    got = cr.grad(directional)(v)
    want = fd_grad(lambda x: float((cr.grad(loss)(a, x) * u).sum()), v)
    numpy.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_jit_agrees_with_eager(backend):
    if backend == "numba":
        pytest.importorskip("numba")
    rng = numpy.random.default_rng(4)
    a, v = rng.standard_normal(50), rng.standard_normal(17)

    def loss(a, v):
        return (numpy.correlate(numpy.tanh(a), v, "same") ** 2).sum() + numpy.convolve(a, v)[3]

    step = cr.value_and_grad(loss, argnums=(0, 1))
    (v0, (ga0, gv0)), (v1, (ga1, gv1)) = step(a, v), cr.jit(step, backend=backend)(a, v)
    numpy.testing.assert_allclose(v1, v0, rtol=1e-13)
    numpy.testing.assert_allclose(ga1, ga0, rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(gv1, gv0, rtol=1e-12, atol=1e-13)


def test_vmap_of_the_gradient():
    rng = numpy.random.default_rng(5)
    xs, v = rng.standard_normal((3, 12)), rng.standard_normal(5)
    grad = cr.grad(lambda x, v: (numpy.convolve(x, v, "valid") ** 2).sum())
    got = cr.vmap(grad, in_axes=(0, None))(xs, v)
    for x, g in zip(xs, got):
        numpy.testing.assert_allclose(g, grad(x, v), rtol=1e-13)


def test_a_long_kernel_costs_a_few_convolutions():
    # 2,000 by 2,000 'same': the rules are two more NumPy convolutions (before, a window
    # product per position: an n x m temporary); the values against the dense transposed map
    rng = numpy.random.default_rng(6)
    a, v = rng.standard_normal(600), rng.standard_normal(600)
    w = rng.standard_normal(600)
    ga, gv = cr.grad(lambda a, v: (numpy.convolve(a, v, "same") * w).sum(), argnums=(0, 1))(a, v)
    ma = _matrix(lambda e: numpy.convolve(e, v, "same"), 600)
    mv = _matrix(lambda e: numpy.convolve(a, e, "same"), 600)
    numpy.testing.assert_allclose(ga, ma.T @ w, rtol=1e-10, atol=1e-10)
    numpy.testing.assert_allclose(gv, mv.T @ w, rtol=1e-10, atol=1e-10)


def test_numba_kernel_gradient_takes_one_dot_per_tap():
    # a kernel's gradient correlates the (padded) signal with the output's cotangent: 31
    # outputs of 4096-long sums. The Numba backend writes one BLAS dot per output there (the
    # loop per kernel tap elsewhere), and both agree with the eager path
    pytest.importorskip("numba")
    pytest.importorskip("scipy")
    rng = numpy.random.default_rng(7)
    x, k, y = rng.standard_normal(4096), rng.standard_normal(31), rng.standard_normal(4096)

    def loss(x, k):
        r = numpy.convolve(x, k, "same") - y
        return (r * r).sum()

    step = cr.value_and_grad(loss, argnums=(0, 1))
    fast = cr.jit(step, backend="numba")
    (v0, (gx0, gk0)), (v1, (gx1, gk1)) = step(x, k), fast(x, k)
    assert "_correlate_dots(" in fast.source(x, k) and "_correlate_pads(" in fast.source(x, k)
    numpy.testing.assert_allclose(v1, v0, rtol=1e-13)
    numpy.testing.assert_allclose(gx1, gx0, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(gk1, gk0, rtol=1e-12, atol=1e-12)
    r = numpy.convolve(x, k, "same") - y  # the kernel's gradient by hand: sum_i 2 r_i x_{i+15-j}
    xp = numpy.pad(x, 15)
    want = numpy.array([2 * r @ xp[30 - j : 30 - j + 4096] for j in range(31)])
    numpy.testing.assert_allclose(gk1, want, rtol=1e-10, atol=1e-10)
