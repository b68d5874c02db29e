"""One LU per matrix, shared by solve, slogdet, det, inv and their rules (engine/factors.py).

The expected values come from NumPy's own functions on the current values of the matrix
(agreement to rounding: SciPy's LAPACK may block its loops differently) and, for gradients,
from central finite differences along a direction.  Every test runs with SciPy and, through the
``lapack`` fixture, with its import taken away (NumPy alone).
"""

from __future__ import annotations

import collections
import functools
import gc
import threading
import warnings

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_cases import CASES, FIRST_ORDER_ONLY

import chainrule as cr
from chainrule.engine import factors, triangular
from chainrule.engine import primitives as P
from chainrule.engine.graph import walk_memo

N = 60  # above factors.MIN_ORDER: the shared path
rng = numpy.random.default_rng(16)


@pytest.fixture(params=["scipy", "numpy"])
def lapack(request, monkeypatch):
    """Run with SciPy's LAPACK (if installed) and as if SciPy were not installed."""
    if request.param == "numpy":
        monkeypatch.setattr(factors, "_LAPACK", [None])
        monkeypatch.setattr(triangular, "_BLAS", [None])
    elif factors.scipy_lapack() is None:
        pytest.skip("SciPy is not installed")
    monkeypatch.setattr(factors._CACHE, "state", factors._State())
    return request.param


def _matrix(n=N, dtype=numpy.float64, spd=False):
    a = rng.standard_normal((n, n))
    if numpy.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal((n, n))
    a = a @ numpy.conj(a.T) + n * numpy.eye(n) if spd else a + 3 * numpy.sqrt(n) * numpy.eye(n)
    return a.astype(dtype)


def _close(got, want, rtol=1e-10):
    numpy.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * numpy.abs(want).max())


def test_the_values_are_numpys_to_rounding(lapack):
    for dtype, rtol in ((numpy.float64, 1e-10), (numpy.complex128, 1e-10), (numpy.float32, 1e-4)):
        a = _matrix(dtype=dtype)
        b = rng.standard_normal(N).astype(dtype)
        bm = rng.standard_normal((N, 3)).astype(dtype)
        _close(factors.solve(a, b), numpy.linalg.solve(a, b), rtol)
        _close(factors.solve(a, bm), numpy.linalg.solve(a, bm), rtol)
        _close(factors.solve(a.T, b), numpy.linalg.solve(a.T, b), rtol)  # the rules' A^T
        _close(factors.inv(a), numpy.linalg.inv(a), rtol)
        _close(factors.inv(a.T), numpy.linalg.inv(a.T), rtol)
        sign, logabs = factors.slogdet(a)
        want_sign, want_logabs = numpy.linalg.slogdet(a)
        _close(sign, want_sign, rtol)
        _close(logabs, want_logabs, rtol)
        assert numpy.asarray(sign).dtype == numpy.asarray(want_sign).dtype
        assert numpy.asarray(logabs).dtype == numpy.asarray(want_logabs).dtype
        unit = a / (3 * numpy.sqrt(N))  # |det| near 1, no overflow in float32
        _close(factors.det(unit), numpy.linalg.det(unit), rtol * 10)
        assert factors.solve(a, bm).flags.c_contiguous and factors.inv(a).flags.c_contiguous


def test_a_negative_determinant_and_row_swaps_give_numpys_sign(lapack):
    a = _matrix()
    a[[0, 5]] = a[[5, 0]]  # one row swap flips the sign
    assert numpy.linalg.slogdet(a)[0] == -1
    sign, logabs = factors.slogdet(a)
    assert sign == -1
    _close(logabs, numpy.linalg.slogdet(a)[1])


def test_stacks_of_matrices(lapack):
    a = numpy.stack([_matrix(), _matrix(), -_matrix()])
    b = rng.standard_normal((3, N, 2))
    _close(factors.solve(a, b), numpy.linalg.solve(a, b))
    _close(
        factors.solve(numpy.swapaxes(a, -1, -2), b),
        numpy.linalg.solve(numpy.swapaxes(a, -1, -2), b),
    )
    _close(factors.solve(a, b[0, :, 0]), numpy.linalg.solve(a, b[0, :, 0]))
    _close(factors.inv(a), numpy.linalg.inv(a))
    for got, want in zip(factors.slogdet(a), numpy.linalg.slogdet(a)):
        _close(got, want)
    assert factors.solve(a, b).shape == (3, N, 2)
    # a right-hand side that broadcasts against the stack: NumPy's own loop, same answer
    _close(factors.solve(a, b[:1]), numpy.linalg.solve(a, b[:1]))


def test_singular_matrices_raise_as_numpy_and_have_zero_determinant(lapack):
    a = _matrix()
    a[:, 3] = a[:, 7]
    a[3] = 0.0  # an exactly zero pivot
    with pytest.raises(numpy.linalg.LinAlgError, match="Singular matrix"):
        numpy.linalg.solve(a, numpy.ones(N))  # what NumPy says
    with pytest.raises(numpy.linalg.LinAlgError, match="Singular matrix"):
        factors.solve(a, numpy.ones(N))
    with pytest.raises(numpy.linalg.LinAlgError, match="Singular matrix"):
        factors.inv(a)
    sign, logabs = factors.slogdet(a)
    assert (sign, logabs) == (0.0, -numpy.inf) == tuple(numpy.linalg.slogdet(a))
    assert factors.det(a) == 0.0


def test_a_matrix_written_in_place_between_two_calls_gives_the_new_answer(lapack):
    a, b = _matrix(), rng.standard_normal(N)
    factors.solve(a, b)
    a[3, 4] += 1.0  # the same object, the same memory, other values
    _close(factors.solve(a, b), numpy.linalg.solve(a, b))
    _close(factors.slogdet(a)[1], numpy.linalg.slogdet(a)[1])
    _close(factors.inv(a.T), numpy.linalg.inv(a.T))
    a[0, 0] = -0.0 if a[0, 0] == 0 else a[0, 0] * (1 + 1e-15)  # one bit
    _close(factors.inv(a), numpy.linalg.inv(a))
    # the transposed view written through the original: the view sees the new values
    at = a.T
    factors.solve(at, b)
    a[1, 2] -= 2.0
    _close(factors.solve(at, b), numpy.linalg.solve(at, b))


def test_another_array_in_the_same_memory_is_not_mistaken_for_the_first(lapack):
    buf = _matrix()
    first = buf[:, :]  # a view: the same address, shape and strides as buf
    b = rng.standard_normal(N)
    factors.solve(first, b)
    buf[:] = _matrix()  # new values in that memory, written through another array
    second = buf[:, :]
    _close(factors.solve(second, b), numpy.linalg.solve(buf, b))
    _close(factors.slogdet(second)[1], numpy.linalg.slogdet(buf)[1])
    del first


def test_the_inverse_handed_out_is_a_fresh_array_each_time(lapack):
    a = _matrix()
    inv = factors.inv(a)
    inv[:] = 0.0  # the caller's to write
    _close(factors.inv(a), numpy.linalg.inv(a))


def test_eager_gradients_after_an_in_place_write_use_the_new_matrix(lapack):
    a, b = _matrix(), rng.standard_normal(N)

    def f(x):
        return numpy.linalg.solve(a, x).sum() + numpy.linalg.slogdet(a + 0 * x[0])[1]

    cr.grad(f)(b)
    a[2, 9] += 3.0
    g = cr.grad(f)(b)
    _close(g, numpy.linalg.solve(a.T, numpy.ones(N)))


def test_jit_after_an_in_place_write_uses_the_new_matrix(lapack):
    b = rng.standard_normal(N)

    def f(a, x):
        return numpy.linalg.solve(a, x).sum() + numpy.linalg.slogdet(a)[1]

    jf = cr.jit(cr.value_and_grad(f, argnums=(0, 1)))
    a = _matrix()
    jf(a, b)
    a[5, 1] -= 2.5
    value, (ga, gb) = jf(a, b)
    inv = numpy.linalg.inv(a)
    x = numpy.linalg.solve(a, b)
    _close(value, x.sum() + numpy.linalg.slogdet(a)[1])
    _close(gb, inv.T @ numpy.ones(N))
    _close(ga, -numpy.outer(inv.T @ numpy.ones(N), x) + inv.T)


def test_a_tensor_written_in_place_is_factorised_again(lapack):
    a, b = _matrix(), rng.standard_normal(N)
    t = cr.tensor(a.copy())
    numpy.linalg.solve(t, b)
    t[0, 0] = t[0, 0] + 1.0
    a[0, 0] += 1.0
    _close(numpy.asarray(numpy.linalg.solve(t, b).data), numpy.linalg.solve(a, b))


# --- gradients of solve, slogdet, inv and det of one matrix, against finite differences -----

_A0, _B, _C = _matrix(), rng.standard_normal((N, N)), rng.standard_normal((N, N))
_V, _W = rng.standard_normal(N), rng.standard_normal(N)
_SCALE = 1.0 / abs(numpy.linalg.det(_A0))


def _model(s, t):
    """Every operation reads the same matrix A(s, t)."""
    a = _A0 + s * _B + t * _C
    x = numpy.linalg.solve(a, _V)
    return (
        x @ _W
        + numpy.linalg.slogdet(a)[1]
        + (numpy.linalg.inv(a) @ _W).sum()
        + numpy.linalg.det(a) * _SCALE
        + numpy.linalg.solve(a, x) @ _V  # a second solve with the same matrix
    )


def _d(f, s, t, h=1e-5):
    return (f(s + h, t) - f(s - h, t)) / (2 * h), (f(s, t + h) - f(s, t - h)) / (2 * h)


def test_first_order_gradients_against_finite_differences(lapack):
    got = cr.grad(_model, argnums=(0, 1))(0.3, -0.2)
    want = _d(_model, 0.3, -0.2)
    for g, w in zip(got, want):
        assert float(g) == pytest.approx(w, rel=1e-6)
    jitted = cr.jit(cr.grad(_model, argnums=(0, 1)))(0.3, -0.2)
    for g, w in zip(jitted, got):
        assert float(g) == pytest.approx(float(w), rel=1e-12)


def test_second_order_gradients_against_finite_differences(lapack):
    h = 1e-4
    s, t = 0.3, -0.2
    dss = (_model(s + h, t) - 2 * _model(s, t) + _model(s - h, t)) / h**2
    dst = (
        _model(s + h, t + h) - _model(s + h, t - h) - _model(s - h, t + h) + _model(s - h, t - h)
    ) / (4 * h**2)
    got_ss = cr.grad(cr.grad(_model, argnums=0), argnums=0)(s, t)
    got_st = cr.grad(cr.grad(_model, argnums=0), argnums=1)(s, t)
    scale = max(abs(dss), abs(dst))
    assert abs(float(got_ss) - dss) < 1e-4 * scale
    assert abs(float(got_st) - dst) < 1e-4 * scale


def test_the_shared_path_factorises_each_matrix_once(monkeypatch):
    lapack = factors.scipy_lapack()
    if lapack is None:
        pytest.skip("SciPy is not installed")
    monkeypatch.setattr(factors._CACHE, "state", factors._State())
    calls = []
    real = lapack.dgetrf
    monkeypatch.setattr(lapack, "dgetrf", lambda a: calls.append(1) or real(a))
    cr.value_and_grad(_model, argnums=(0, 1))(0.3, -0.2)
    # two solves, slogdet, inv, det and the rules' A^-T g and inv(A^T): one LU of A
    assert len(calls) == 1


def test_entries_are_bounded_and_leave_with_their_array(lapack):
    if lapack == "numpy":
        pytest.skip("nothing is kept without SciPy")
    mats = [_matrix() for _ in range(factors.MAX_ENTRIES + 3)]
    for m in mats:
        factors.inv(m)
    assert len(factors._CACHE.state.entries) == factors.MAX_ENTRIES
    del mats, m
    gc.collect()
    assert len(factors._CACHE.state.entries) == 0


def test_a_byte_budget_keeps_only_the_newest_large_factorisation(lapack, monkeypatch):
    if lapack == "numpy":
        pytest.skip("nothing is kept without SciPy")
    monkeypatch.setattr(factors, "MAX_BYTES", 3 * N * N * 8)
    first, second, b = _matrix(), _matrix(), rng.standard_normal(N)
    factors.inv(first)
    factors.solve(second, b)  # the first entry (copy, LU and inverse) no longer fits
    assert [e.snap is not None for e in factors._CACHE.state.entries.values()] == [True]
    _close(factors.solve(first, b), numpy.linalg.solve(first, b))


def test_each_thread_keeps_its_own_factors(lapack):
    a, b = _matrix(), rng.standard_normal(N)
    results = {}

    def work(k):
        mine = a + k * numpy.eye(N)
        for _ in range(20):
            results[k] = factors.solve(mine, b)
            mine[0, 0] += 0.0  # unchanged values: the factors stay valid

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in range(4):
        _close(results[k], numpy.linalg.solve(a + k * numpy.eye(N), b))


def test_small_matrices_and_other_types_go_straight_to_numpy(monkeypatch):
    monkeypatch.setattr(factors._CACHE, "state", factors._State())
    small = _matrix(n=factors.MIN_ORDER - 1)
    factors.solve(small, numpy.ones(len(small)))
    ints = numpy.arange(N * N).reshape(N, N) % 7 + 50 * numpy.eye(N, dtype=int)
    _close(factors.solve(ints, numpy.ones(N)), numpy.linalg.solve(ints, numpy.ones(N)))
    assert len(factors._CACHE.state.entries) == 0


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, numpy.complex128])
@pytest.mark.parametrize("rhs", [(), (1,), (7,), (2000,)])
def test_small_systems_are_solved_by_one_gesv_call(dtype, rhs, lapack):
    # below MIN_ORDER, nothing is kept: with SciPy one call of its gesv (NumPy's own LAPACK
    # routine, without NumPy's copies), else NumPy; the values are NumPy's to rounding, a
    # vector right-hand side stays a vector, a singular matrix raises NumPy's error
    a = _matrix(n=5, dtype=dtype)
    b = rng.standard_normal((5, *rhs)).astype(dtype)
    got = factors.solve(a, b)
    want = numpy.linalg.solve(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
    _close(got, want, rtol=1e-5 if dtype == numpy.float32 else 1e-12)
    _close(a @ got, b, rtol=1e-5 if dtype == numpy.float32 else 1e-12)  # it solves the system
    with pytest.raises(numpy.linalg.LinAlgError, match="Singular matrix"):
        factors.solve(numpy.zeros((5, 5), dtype), b)
    assert len(factors._CACHE.state.entries) == 0


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, numpy.complex128])
@pytest.mark.parametrize("rhs", [(), (1,), (2000,)])
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_small_triangular_systems_are_solved_by_substitution(dtype, rhs, side, lapack):
    # a Cholesky factor (the multivariate normal's whitening) and its transpose (the gradient):
    # with SciPy, BLAS's trsm, no LU; the values are NumPy's to rounding, in C order; a zero on
    # the diagonal still raises NumPy's error
    a = numpy.tril(_matrix(n=6, dtype=dtype))
    if side == "upper":
        a = a.T
    b = rng.standard_normal((6, *rhs)).astype(dtype)
    got = factors.solve(a, b)
    want = numpy.linalg.solve(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    _close(got, want, rtol=tol)
    _close(a @ got, b, rtol=tol)
    if lapack == "scipy":  # substitution is exact on a diagonal system with powers of two
        d = numpy.diag(numpy.array([2.0, 4.0, 0.5, 8.0, 1.0, 0.25], dtype))
        assert triangular.triangle(d) is True and triangular.triangle(a) is (side == "lower")
        x = factors.solve(d, numpy.ones((6, 3), dtype))
        assert numpy.array_equal(x, numpy.ones((6, 3)) / numpy.diag(d)[:, None])
    singular = a.copy()
    singular[2, 2] = 0
    assert triangular.triangle(singular) is None
    with pytest.raises(numpy.linalg.LinAlgError, match="Singular matrix"):
        factors.solve(singular, b)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, numpy.complex128])
@pytest.mark.parametrize("rhs", [(), (3,), (N,)])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_large_triangular_systems_are_solved_without_a_factorisation(
    dtype, rhs, order, side, lapack, monkeypatch
):
    # solve(L, y) of a Cholesky factor, solve(L^T, g) in the gradient: with SciPy, substitution
    # (no getrf, nothing kept), NumPy's values to rounding, C-ordered, the operands untouched
    a = numpy.asarray(numpy.tril(_matrix(dtype=dtype)), order=order)
    if side == "upper":
        a = a.T
    b = rng.standard_normal((N, *rhs)).astype(dtype)
    a0, b0 = a.copy(), b.copy()
    if lapack == "scipy":
        real = factors.scipy_lapack()
        for name in ("sgetrf", "dgetrf", "zgetrf", "dpotrf"):
            monkeypatch.setattr(real, name, lambda *x, **k: pytest.fail("factorised"))
    got = factors.solve(a, b)
    want = numpy.linalg.solve(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
    tol = 1e-4 if dtype == numpy.float32 else 1e-11
    _close(got, want, rtol=tol)
    assert numpy.array_equal(a, a0) and numpy.array_equal(b, b0)
    assert not factors._CACHE.state.entries


def test_a_matrix_triangular_but_for_one_entry_is_not_taken_for_triangular():
    # every block the check reads: the far corner, the off-diagonal halves, the small diagonal
    # blocks near the diagonal; and a zero on the diagonal
    n = 150
    low = numpy.tril(_matrix(n=n))
    assert triangular.triangle(low) is True and triangular.triangle(low.T) is False
    for i, j in [(0, n - 1), (0, 80), (40, 70), (3, 4), (n - 2, n - 1), (100, 140), (75, 76)]:
        bad = low.copy()
        bad[i, j] = 1e-300
        assert triangular.triangle(bad) is None and triangular.triangle(bad.T) is None
    bad = low.copy()
    bad[7, 7] = 0
    assert triangular.triangle(bad) is None
    nan = low.copy()
    nan[5, 9] = numpy.nan
    assert triangular.triangle(nan) is None


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, numpy.complex64, numpy.complex128])
@pytest.mark.parametrize("n", [1, 7, 64, 130])
def test_cholesky_is_numpys_to_rounding(dtype, n, lapack):
    a = _matrix(n=n, dtype=dtype, spd=True)
    want = numpy.linalg.cholesky(a)
    for x in (a, numpy.asfortranarray(a)):
        got = factors.cholesky(x)
        assert got.dtype == want.dtype and got.flags.c_contiguous
        _close(got, want, rtol=1e-4 if numpy.finfo(dtype).eps > 1e-10 else 1e-12)
        assert not numpy.triu(got, 1).any()  # the upper triangle is zero, as NumPy's


def test_cholesky_refuses_what_numpy_refuses(lapack):
    with pytest.raises(numpy.linalg.LinAlgError, match="not positive definite"):
        factors.cholesky(-numpy.eye(70))
    stack = numpy.stack([_matrix(n=5, spd=True)] * 3)
    _close(factors.cholesky(stack), numpy.linalg.cholesky(stack))
    ints = numpy.array([[4, 2], [2, 2]])
    assert factors.cholesky(ints).dtype == numpy.linalg.cholesky(ints).dtype


def test_the_gradient_through_a_cholesky_factors_solve_against_finite_differences(lapack):
    # mvn: L = cholesky(A A^T + 0.1 I), Z = solve(L, (X - mu)^T): L and L^T are triangular
    A, mu = rng.standard_normal((4, 4)), rng.standard_normal(4)
    X = rng.standard_normal((50, 4))

    def loss(A, mu):
        L = numpy.linalg.cholesky(A @ A.T + 0.1 * numpy.eye(4))
        Z = numpy.linalg.solve(L, (X - mu).T)
        return 0.5 * (Z * Z).sum() / 50 + numpy.log(numpy.diagonal(L)).sum()

    gA, gmu = cr.grad(loss, argnums=(0, 1))(A, mu)
    for g, arg in ((gA, 0), (gmu, 1)):
        args = [A, mu]
        d = rng.standard_normal(args[arg].shape)
        up = [x + 1e-6 * d if i == arg else x for i, x in enumerate(args)]
        down = [x - 1e-6 * d if i == arg else x for i, x in enumerate(args)]
        fd = (loss(*up) - loss(*down)) / 2e-6
        numpy.testing.assert_allclose((g * d).sum(), fd, rtol=1e-6)


# --- every linalg op case of the suite, through the shared path (the order threshold lowered)

_SHARED_CASES = [c for c in CASES if any(k in c.id for k in ("solve", "inv", "det"))]


@pytest.mark.parametrize("kind", ["real", "complex"])
@pytest.mark.parametrize("case", _SHARED_CASES, ids=[c.id for c in _SHARED_CASES])
def test_the_op_cases_pass_through_the_shared_factors(case, kind, lapack, monkeypatch):
    monkeypatch.setattr(factors, "MIN_ORDER", 1)
    inputs = case.inputs
    if kind == "complex":
        z = numpy.random.default_rng(5)
        inputs = [
            x + 0.3j * z.standard_normal(x.shape) if x.dtype.kind == "f" else x for x in inputs
        ]
    order = 1 if case.id in FIRST_ORDER_ONLY else 2
    assert cr.check_grads(case.fun, *inputs, order=order).passed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", numpy.exceptions.ComplexWarning)
        want = case.fun(*inputs)
    got = case.fun(*[cr.tensor(x) for x in inputs])
    _close(numpy.asarray(getattr(got, "data", got)), want)


def test_vmap_of_per_example_gradients_through_the_shared_factors(lapack):
    # per-example gradients of a GP-like loss over a stack of matrices, against a loop of
    # finite differences in the scale s of each matrix (A_k(s) = A_k + s B)
    stack = numpy.stack([_matrix() for _ in range(3)])
    b = rng.standard_normal(N)

    def loss(s, a):
        k = a + s * _B
        return numpy.linalg.solve(k, b) @ b + numpy.linalg.slogdet(k)[1]

    got = cr.vmap(cr.grad(loss), in_axes=(None, 0))(0.1, stack)
    for g, a in zip(got, stack):
        want = (loss(0.1 + 1e-5, a) - loss(0.1 - 1e-5, a)) / 2e-5
        assert float(g) == pytest.approx(want, rel=1e-6)


def test_recycled_buffers_never_show_through(lapack):
    # each new matrix of the same shape reuses the buffers of the one that died before it: the
    # answers handed out earlier must not change, and each answer is its own matrix's
    _each_answer_its_own_matrixs([_matrix for _ in range(4)])


def _each_answer_its_own_matrixs(makers):
    """Solve, invert and take the log-determinant of one new matrix after another (each made
    once the last is gone): every answer is right, and stays right afterwards."""
    b = rng.standard_normal(N)
    handed = []
    for make in makers:
        a = make()
        got = (factors.solve(a, b), factors.inv(a.T), factors.slogdet(a)[1], factors.inv(a))
        want = (numpy.linalg.solve(a, b), numpy.linalg.inv(a.T), numpy.linalg.slogdet(a)[1])
        for g, w in zip(got, want):
            _close(g, w)
        handed.append((got, want))
        del a
        gc.collect()
    for got, want in handed:
        for g, w in zip(got, want):
            _close(g, w)


# --- symmetric positive definite matrices: one Cholesky factorisation instead of an LU


@pytest.fixture
def counted(monkeypatch):
    """The number of calls of each LAPACK factorisation, with a fresh cache."""
    lapack = factors.scipy_lapack()
    if lapack is None:
        pytest.skip("SciPy is not installed")
    calls = collections.Counter()

    def counting(name):
        real = getattr(lapack, name)

        def call(*a, **k):
            calls[name] += 1
            return real(*a, **k)

        return call

    for name in ("spotrf", "dpotrf", "sgetrf", "dgetrf"):
        monkeypatch.setattr(lapack, name, counting(name))
    monkeypatch.setattr(factors._CACHE, "state", factors._State())
    return calls


@pytest.mark.parametrize("dtype, rtol", [(numpy.float64, 1e-10), (numpy.float32, 1e-4)])
def test_a_symmetric_positive_definite_matrix_is_factorised_once_by_cholesky(dtype, rtol, counted):
    a = _matrix(dtype=dtype, spd=True)
    assert numpy.array_equal(a, a.T)
    b = rng.standard_normal(N).astype(dtype)
    bm = rng.standard_normal((N, 3)).astype(dtype)
    _close(factors.solve(a, b), numpy.linalg.solve(a, b), rtol)
    _close(factors.solve(a.T, bm), numpy.linalg.solve(a.T, bm), rtol)
    _close(factors.inv(a), numpy.linalg.inv(a), rtol)
    _close(factors.inv(a.T), numpy.linalg.inv(a.T), rtol)
    sign, logabs = factors.slogdet(a)
    want_sign, want_logabs = numpy.linalg.slogdet(a)
    assert sign == want_sign == 1
    _close(logabs, want_logabs, rtol)
    assert numpy.asarray(sign).dtype == numpy.asarray(want_sign).dtype
    assert numpy.asarray(logabs).dtype == numpy.asarray(want_logabs).dtype
    assert factors.inv(a).flags.c_contiguous and factors.solve(a, bm).flags.c_contiguous
    kind = "d" if dtype == numpy.float64 else "s"
    assert counted == {f"{kind}potrf": 1}


def test_a_matrix_not_exactly_symmetric_is_factorised_by_lu(counted):
    a, b = _matrix(spd=True), rng.standard_normal(N)
    a[5, 7] += 0.5  # Cholesky reads one triangle only: it would solve another system
    _close(factors.solve(a, b), numpy.linalg.solve(a, b))
    _close(factors.inv(a), numpy.linalg.inv(a))
    c = _matrix(spd=True)
    c[20, 10] = numpy.nextafter(c[20, 10], numpy.inf)  # one bit away from symmetric
    factors.solve(c, b)
    assert counted == {"dgetrf": 2}


def test_a_symmetric_indefinite_matrix_falls_back_to_lu_and_is_remembered(counted):
    m = rng.standard_normal((N, N))
    a = m + m.T  # symmetric, eigenvalues of both signs
    b = rng.standard_normal(N)
    _close(factors.solve(a, b), numpy.linalg.solve(a, b))
    for got, want in zip(factors.slogdet(a), numpy.linalg.slogdet(a)):
        _close(got, want)
    assert counted == {"dpotrf": 1, "dgetrf": 1}
    # the next symmetric matrix of this order goes to LU without trying Cholesky
    factors.solve(_matrix(spd=True), b)
    assert counted == {"dpotrf": 1, "dgetrf": 2}


def _gp(s, t):
    """A Gaussian process's negative log-likelihood in its two log-scales (K is symmetric
    bit for bit: the squared distances are)."""
    k = numpy.exp(s) * _KSE + numpy.exp(t) * numpy.eye(N)
    return 0.5 * (_V @ numpy.linalg.solve(k, _V)) + 0.5 * numpy.linalg.slogdet(k)[1]


_PTS = rng.standard_normal((N, 3))
_KSE = numpy.exp(-0.5 * ((_PTS[:, None] - _PTS[None]) ** 2).sum(-1))


def test_gaussian_process_gradients_through_cholesky_against_finite_differences(counted):
    got = cr.grad(_gp, argnums=(0, 1))(0.3, -0.2)
    for g, w in zip(got, _d(_gp, 0.3, -0.2)):
        assert float(g) == pytest.approx(w, rel=1e-6)
    assert set(counted) == {"dpotrf"}
    jitted = cr.jit(cr.grad(_gp, argnums=(0, 1)))(0.3, -0.2)
    for g, w in zip(jitted, got):
        assert float(g) == pytest.approx(float(w), rel=1e-12)
    h = 1e-4
    dss = (_gp(0.3 + h, -0.2) - 2 * _gp(0.3, -0.2) + _gp(0.3 - h, -0.2)) / h**2
    got_ss = cr.grad(cr.grad(_gp, argnums=0), argnums=0)(0.3, -0.2)
    assert float(got_ss) == pytest.approx(dss, rel=1e-4)


def test_recycled_buffers_between_cholesky_and_lu_never_show_through(counted):
    # two symmetric positive definite matrices, then a general one, twice
    spd = functools.partial(_matrix, spd=True)
    _each_answer_its_own_matrixs([spd, spd, _matrix] * 2)
    assert counted == {"dpotrf": 4, "dgetrf": 2}


@pytest.mark.parametrize("n", [factors.TRIANGLE_BLOCK + 1, 250])
@pytest.mark.parametrize("dtype, rtol", [(numpy.float64, 1e-10), (numpy.float32, 1e-4)])
def test_large_symmetric_positive_definite_inverses_by_halves(n, dtype, rtol, counted):
    # above TRIANGLE_BLOCK the triangular factor is inverted by halves (uneven ones at 97)
    a = _matrix(n=n, dtype=dtype, spd=True)
    _close(factors.inv(a), numpy.linalg.inv(a), rtol)
    u = numpy.triu(rng.standard_normal((n, n)) + 3 * numpy.sqrt(n) * numpy.eye(n)).astype(dtype)
    lapack = factors.scipy_lapack()
    trtri = lapack.dtrtri if dtype == numpy.float64 else lapack.strtri
    got = factors._upper_inverse(
        numpy.asfortranarray(u), numpy.full((n, n), numpy.nan, dtype, "F"), trtri
    )
    _close(got, numpy.linalg.inv(u), rtol)
    assert not numpy.tril(got, -1).any()  # the lower triangle written as zeros


# --- random sequences of calls on matrices of every kind the shared factors tell apart


def _kind_matrix(kind, n, seed):
    r = numpy.random.default_rng(seed)
    m = r.standard_normal((n, n))
    if kind == "general":
        return m + 3 * numpy.sqrt(n) * numpy.eye(n)
    if kind == "spd":
        return m @ m.T + n * numpy.eye(n)
    if kind == "indefinite":  # symmetric, eigenvalues of both signs
        return m + m.T
    a = m @ m.T + n * numpy.eye(n)  # "nearly": one entry off symmetric by one bit
    a[n - 2, 1] = numpy.nextafter(a[n - 2, 1], numpy.inf)
    return a


_CALLS = {
    "solve": (lambda a, b: factors.solve(a, b), lambda a, b: numpy.linalg.solve(a, b)),
    "solve_t": (lambda a, b: factors.solve(a.T, b), lambda a, b: numpy.linalg.solve(a.T, b)),
    "inv": (lambda a, b: factors.inv(a), lambda a, b: numpy.linalg.inv(a)),
    "inv_t": (lambda a, b: factors.inv(a.T), lambda a, b: numpy.linalg.inv(a.T)),
    "slogdet": (lambda a, b: factors.slogdet(a), lambda a, b: numpy.linalg.slogdet(a)),
}


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["general", "spd", "indefinite", "nearly"]),
            st.sampled_from([factors.MIN_ORDER, 61, factors.TRIANGLE_BLOCK + 5, 130]),
            st.lists(st.sampled_from(sorted(_CALLS)), min_size=1, max_size=4),
            st.booleans(),  # write into the matrix in place before the calls
        ),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(0, 2**16),
)
def test_random_call_sequences_agree_with_numpy(steps, seed):
    # matrices of the kinds the cache treats differently (LU, Cholesky, Cholesky refused and
    # remembered, one bit from symmetric), orders around the thresholds, calls in any order,
    # some matrices written in place between calls: every answer NumPy's to rounding
    if factors.scipy_lapack() is None:
        pytest.skip("SciPy is not installed")
    previous = factors._CACHE.state
    factors._CACHE.state = factors._State()
    try:
        for i, (kind, n, calls, write) in enumerate(steps):
            a = _kind_matrix(kind, n, seed + i)
            b = numpy.random.default_rng(seed + 1000 + i).standard_normal(n)
            for j, name in enumerate(calls):
                if write and j == 1:
                    a[0, n - 1] += 0.25  # no longer what was factorised (nor symmetric)
                mine, numpys = _CALLS[name]
                got, want = mine(a, b), numpys(a, b)
                for g, w in zip(
                    numpy.atleast_1d(*got) if name == "slogdet" else [got],
                    numpy.atleast_1d(*want) if name == "slogdet" else [want],
                ):
                    _close(g, w, 1e-8)
    finally:
        factors._CACHE.state = previous


def test_solves_rules_solve_for_the_transpose_once(lapack, monkeypatch):
    # A's rule (-A^-T g X^T) and B's (A^-T g) share A^-T g within a backward pass
    a, b = _matrix(5), rng.standard_normal((5, 40))
    calls = []
    real = P.solve.fun
    monkeypatch.setattr(P.solve, "fun", lambda *x: calls.append(1) or real(*x))
    ga, gb = cr.grad(lambda a, b: (numpy.linalg.solve(a, b) ** 2).sum(), argnums=(0, 1))(a, b)
    assert len(calls) == 2  # the forward solve and one with A^T
    # against the formulas, each from NumPy: dB = A^-T 2X, dA = -dB X^T
    x = numpy.linalg.solve(a, b)
    want_b = numpy.linalg.solve(a.T, 2 * x)
    _close(gb, want_b)
    _close(ga, -want_b @ x.T)
    assert walk_memo() is None  # the memo went with its pass


def test_two_solves_reached_by_one_gradient_array_share_nothing_wrongly(lapack):
    # z = solve(A, B1) + solve(A, B2): the addition hands the same gradient array to both
    # solves; A's rule of the first must not give the second's B its value (B1 is a constant
    # here, so the first solve's B rule never takes it)
    a, b1, b2 = _matrix(6), rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    w = rng.standard_normal((6, 3))

    def f(a, b2):
        return ((numpy.linalg.solve(a, b1) + numpy.linalg.solve(a, b2)) * w).sum()

    ga, gb2 = cr.grad(f, argnums=(0, 1))(a, b2)
    gsol = numpy.linalg.solve(a.T, w)
    _close(gb2, gsol)
    _close(ga, -gsol @ (numpy.linalg.solve(a, b1) + numpy.linalg.solve(a, b2)).T)
    # and through finite differences along a direction
    da = rng.standard_normal(a.shape)
    h = 1e-6
    fd = (f(a + h * da, b2) - f(a - h * da, b2)) / (2 * h)
    numpy.testing.assert_allclose((ga * da).sum(), fd, rtol=1e-6)
