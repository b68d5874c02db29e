"""jit(backend="numba") writes a sum of an elementwise expression as one loop nest
(``readers/numba_backend/fusion.py``): the same numbers as the unfused program, bit for bit,
for every arrangement of summed axes, and a broadcast difference two sums read is never made
as an array.  Likewise the gradient of a mean over rows read by index adds the rows it repeats
from where they are (``statements._spread_rows``)."""

from __future__ import annotations

import re
import warnings

import numpy
import pytest

pytest.importorskip("numba")

import chainrule as cr  # noqa: E402
from chainrule.readers.numba_backend import statements, writer  # noqa: E402

RNG = numpy.random.default_rng(3)


def _loss(X, C, s, mask):
    # sums over trailing, leading, middle and scattered axes, keepdims and mean, a negated
    # sum, a scalar and a boolean mask among the leaves, unary functions inside
    d = X[:, None, :] - C[None, :, :]
    a = (d**2).sum(axis=2)
    b = numpy.exp(-0.5 * d * s).sum(axis=(0, 2), keepdims=True)
    c = (numpy.tanh(d) * mask).mean(axis=1)
    e = -(numpy.abs(X[:, None, :] * C[None, :, :]) + 1.0).sum(axis=0)
    f = numpy.log1p(d * d).sum(axis=(0, 1))
    return (numpy.log(a + 1.0)).sum() + b.sum() + (c**2).sum() + (e * e).sum() + f.sum()


def _args(dtype):
    X = RNG.standard_normal((40, 6)).astype(dtype)
    C = RNG.standard_normal((5, 6)).astype(dtype)
    mask = RNG.random((40, 5, 6)) > 0.3
    return X, C, numpy.asarray(0.7, dtype=dtype), mask


def _soft_kmeans(X, C, s, mask):
    # the squared distances' difference is read only by sums (forward and backward)
    d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    m = numpy.max(-d, axis=1, keepdims=True)
    return -(numpy.log(numpy.exp(-d - m).sum(axis=1)) + m[:, 0]).mean()


def _argnums(loss):
    return (0, 1, 2) if loss is _loss else (1,)  # soft k-means: the centres' gradient


def _run(fused, args, monkeypatch, tmp_path, loss=_loss):
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path / ("on" if fused else "off")))
    if not fused:
        monkeypatch.setattr(writer, "fused_sum", lambda *a, **k: None)
    f = cr.jit(cr.value_and_grad(loss, argnums=_argnums(loss)), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the NumPy backend would warn
        value, grads = f(*args)
    return f, [numpy.asarray(value), *map(numpy.asarray, grads)]


@pytest.mark.parametrize("loss", [_loss, _soft_kmeans])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_fused_sums_are_the_unfused_programs_bit_for_bit(dtype, loss, monkeypatch, tmp_path):
    args = _args(dtype)
    f, fused = _run(True, args, monkeypatch, tmp_path, loss)
    source = f.source(*args)
    kernel = source[source.index("def kernel") :]
    if loss is _loss:
        assert source.count("def _fz") >= 5  # the sums of expressions, forward and backward
    else:
        # the distances forward, the centres' gradient backward (summed, then negated: the
        # subtrahend's share, in the eager walk's order)
        sums = [f for f in source.split("@njit") if "def _fz" in f and "+=" in f]
        assert len(sums) == 2
        # the 40x5x6 difference is never an array: each loop computes it from X and C
        assert " - a1[None, :, :]" not in kernel and " - a0[None, :, :]" not in kernel
    with monkeypatch.context() as m:
        _, unfused = _run(False, args, m, tmp_path, loss)
    for a, b in zip(fused, unfused):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # and both are the gradient: eager's, to rounding
    value, grads = cr.value_and_grad(loss, argnums=_argnums(loss))(*args)
    tol = 1e-11 if dtype == numpy.float64 else 2e-4
    for a, b in zip(fused, [value, *grads]):
        numpy.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _compiled(loss, args, monkeypatch, cache):
    """The Numba program of loss's value and gradient in its first two arguments (no fallback
    to the NumPy backend: it would warn), its source and its results."""
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(cache))
    f = cr.jit(cr.value_and_grad(loss, argnums=(0, 1)), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grads = f(*args)
    return f.source(*args), [numpy.asarray(value), *map(numpy.asarray, grads)]


def _bag(E, W, tokens):
    # a bag of embeddings: the mean over each row's tokens spreads one gradient row to each
    return ((E[tokens].mean(axis=1) @ W) ** 2).sum()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_mean_over_rows_read_by_index_adds_them_in_place(dtype, monkeypatch, tmp_path):
    E = RNG.standard_normal((50, 8)).astype(dtype)
    W = RNG.standard_normal((8, 3)).astype(dtype)
    tokens = RNG.integers(-50, 50, (12, 7))  # repeats and negative indices
    args = (E, W, tokens)

    def run(tag):
        return _compiled(_bag, args, monkeypatch, tmp_path / tag)

    source, got = run("on")
    assert "_add_rows_of(" in source
    with monkeypatch.context() as m:
        m.setattr(statements, "_spread_rows", lambda *a: None)
        plain_source, plain = run("off")
    assert "_add_rows_of(" not in plain_source
    for a, b in zip(got, plain):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # the table's gradient by hand: each read row gets the mean's share of its row's gradient
    h = E[tokens].mean(axis=1)
    dh = (2 * (h @ W)) @ W.T / tokens.shape[1]
    want = numpy.zeros_like(E)
    numpy.add.at(want, tokens, numpy.repeat(dh[:, None, :], tokens.shape[1], axis=1))
    tol = 1e-12 if dtype == numpy.float64 else 1e-4
    numpy.testing.assert_allclose(got[1], want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_exp_of_a_large_array_runs_numpys_own_loop(dtype, monkeypatch, tmp_path):
    # the gradient of sum(exp(x)) is exp(x): the kernel's must be NumPy's, to the bit
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    x = RNG.standard_normal((64, 40)).astype(dtype)
    f = cr.jit(cr.value_and_grad(lambda x: numpy.exp(x).sum()), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, g = f(x)
    assert "numba.objmode" in f.source(x)
    assert g.dtype == dtype and g.tobytes() == numpy.exp(x).tobytes()


def test_a_difference_of_a_product_is_stored_not_computed_again(monkeypatch, tmp_path):
    # X @ W is read once, by the difference: computing the difference again in each sum would
    # compute the product again too (the same numbers, twice the time), so it is stored
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))

    def loss(W, X, C):
        d = (((X @ W)[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
        return numpy.log(numpy.exp(-d).sum(axis=1)).sum()

    W, X, C = RNG.standard_normal((4, 3)), RNG.standard_normal((30, 4)), RNG.standard_normal((5, 3))
    f = cr.jit(cr.value_and_grad(loss, argnums=2), backend="numba")
    value, grads = f(W, X, C)
    kernel = f.source(W, X, C).split("def kernel")[1]
    assert "_fz" in kernel and kernel.count("numpy.dot(") == 1
    want_value, want_grads = cr.value_and_grad(loss, argnums=2)(W, X, C)
    numpy.testing.assert_allclose(value, want_value, rtol=1e-12)
    numpy.testing.assert_allclose(grads, want_grads, rtol=1e-11, atol=1e-12)


def _factorisation(U, V, i, j, r):
    # the gradient in U adds e[:, None] * V[j] (an elementwise product) at rows i
    e = (U[i] * V[j]).reshape(i.shape + (-1,)).sum(axis=-1) - r
    return (e * e).sum()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("index_shape,row", [((300,), (4,)), ((30, 7), (4,)), ((300,), (2, 3))])
def test_a_scatter_of_a_product_computes_it_where_it_adds(
    dtype, index_shape, row, monkeypatch, tmp_path
):
    U = RNG.standard_normal((20,) + row).astype(dtype)
    V = RNG.standard_normal((15,) + row).astype(dtype)
    i = RNG.integers(-20, 20, index_shape)  # repeats and negative positions
    j = RNG.integers(0, 15, index_shape)
    r = RNG.standard_normal(index_shape).astype(dtype)
    args = (U, V, i, j, r)

    def run(tag):
        return _compiled(_factorisation, args, monkeypatch, tmp_path / tag)

    source, got = run("on")
    kernel = source[source.index("def kernel") :]
    assert "_add_rows(" not in kernel  # both scatters are fused loops
    with monkeypatch.context() as m:
        m.setattr(statements, "fused_scatter", lambda *a: None)
        plain_source, plain = run("off")
    assert "_add_rows(" in plain_source
    for a, b in zip(got, plain):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # by hand: U's row i[k] gets 2 e_k V[j[k]], one read after another
    e = (U[i] * V[j]).reshape(i.shape + (-1,)).sum(axis=-1) - r
    want = numpy.zeros_like(U)
    numpy.add.at(want, i, 2 * e[(...,) + (None,) * len(row)] * V[j])
    tol = 1e-12 if dtype == numpy.float64 else 1e-4
    numpy.testing.assert_allclose(got[1], want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_tanh_of_an_rnn_state_is_computed_in_the_fused_loop(dtype, monkeypatch, tmp_path):
    # 16 x 32 values: neither the C library's tanh per element nor an object-mode call into
    # NumPy's loop, but the kernel's own arithmetic (helpers._tanh_source), in the loop that
    # reads the product
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    x = RNG.standard_normal((16, 32)).astype(dtype)
    W = RNG.standard_normal((32, 32)).astype(dtype) / 6
    f = cr.jit(cr.value_and_grad(lambda W, x: numpy.tanh(x @ W).sum()), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, g = f(W, x)
    src = f.source(W, x)
    assert "numba.objmode" not in src and "_tanh64(" in src
    want_value, want_g = cr.value_and_grad(lambda W, x: numpy.tanh(x @ W).sum())(W, x)
    tol = 1e-12 if dtype == numpy.float64 else 1e-5
    numpy.testing.assert_allclose(value, want_value, rtol=tol)
    numpy.testing.assert_allclose(g, want_g, rtol=tol, atol=tol)
    small = cr.jit(lambda x: numpy.exp(x), backend="numba")  # 512 values of exp: Numba's own
    assert "numba.objmode" not in small.source(x)


def _ulps(got, want):
    """|got - want| in units in the last place of want (0 where they are equal)."""
    got, want = numpy.asarray(got, numpy.float64), numpy.asarray(want, numpy.float64)
    spacing = numpy.spacing(numpy.maximum(numpy.abs(want), numpy.finfo(numpy.float64).tiny))
    with numpy.errstate(invalid="ignore"):  # (inf - inf where both are inf: equal, 0)
        return numpy.where(got == want, 0.0, numpy.abs(got - want) / spacing)


def test_the_kernels_tanh_is_within_two_ulp_of_the_true_value(tmp_path, monkeypatch):
    mpmath = pytest.importorskip("mpmath")
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    rng = numpy.random.default_rng(7)
    edges = numpy.array(
        [
            0.0,
            -0.0,
            5e-324,
            -5e-324,
            2.2250738585072014e-308,
            1e-300,
            1e-8,
            -1e-8,
            0.34657359027997264,
            0.3465735902799727,
            0.625,
            19.06,
            19.07,
            -19.07,
            20.0,
            20.5,
            1e300,
            -1e300,
            700.0,
        ]  # fmt: skip
    )
    x = numpy.concatenate(
        [
            edges,
            rng.standard_normal(3000),
            rng.uniform(-25, 25, 3000),
            rng.choice([-1.0, 1.0], 3000) * 10.0 ** rng.uniform(-300, 1.3, 3000),
        ]
    )
    f = cr.jit(lambda x: numpy.tanh(x), backend="numba")
    got = f(x)
    assert "_tanh64(" in f.source(x)
    mpmath.mp.prec = 120
    want = numpy.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in x])
    assert _ulps(got, want).max() <= 2
    assert numpy.array_equal(numpy.signbit(got), numpy.signbit(numpy.tanh(x)))  # -0.0 too
    special = numpy.array([numpy.inf, -numpy.inf, numpy.nan])
    numpy.testing.assert_array_equal(f(numpy.concatenate([special, x[: x.size - 3]]))[:3],
                                     [1.0, -1.0, numpy.nan])  # fmt: skip
    # float32: computed in float64 and rounded once, so within one ulp of float32
    x32 = x[numpy.abs(x) < 1e30].astype(numpy.float32)
    got32 = cr.jit(lambda x: numpy.tanh(x), backend="numba")(x32)
    assert got32.dtype == numpy.float32
    want32 = numpy.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in x32])
    err = numpy.abs(got32 - want32) / numpy.spacing(numpy.abs(want32).astype(numpy.float32))
    assert numpy.nanmax(numpy.where(got32 == want32.astype(numpy.float32), 0, err)) <= 1


def _batchnorm(W, g, X, y_rows, y):
    # a batch-normalised layer: statements broadcast (1, n) rows over the batch, a ReLU mask,
    # float32 weak scalars, a (256, 10) softmax with a short last axis (flat loops), and an
    # elementwise argument of a matrix product (the weight gradient's)
    H = X @ W
    mu, var = H.mean(axis=0, keepdims=True), H.var(axis=0, keepdims=True)
    A = numpy.maximum((H - mu) / numpy.sqrt(var + 1e-5) * g, 0)
    z = A[:, :10] * 2.0 - 1.0
    z = z - z.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    return -logp[y_rows, y].mean()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_elementwise_statements_are_loops_and_the_array_expressions_bit_for_bit(
    dtype, monkeypatch, tmp_path
):
    # Numba's own array expressions run 3x slower than their loops from the third or so in a
    # kernel; elementwise statements (and elementwise arguments of products) are written as
    # loop nests instead: the same numbers, bit for bit, as the array expressions
    rng = numpy.random.default_rng(8)
    args = (
        (rng.standard_normal((32, 128)) * 0.2).astype(dtype),
        numpy.ones(128, dtype),
        rng.standard_normal((256, 32)).astype(dtype),
        numpy.arange(256),
        rng.integers(0, 10, 256),
    )
    from chainrule.readers.numba_backend import fusion

    source, looped = _compiled(_batchnorm, args, monkeypatch, tmp_path / "on")
    kernel = source[source.index("def kernel") :]
    assert source.count("out[i] = ") >= 2 and source.count("out[i0, i1] = ") >= 3
    assert "numpy.dot(a2.T, _fz" in kernel  # the weight gradient's argument is a loop too
    with monkeypatch.context() as m:
        m.setattr(fusion, "MAP_MIN_SIZE", 10**12)
        plain_source, plain = _compiled(_batchnorm, args, m, tmp_path / "off")
    assert "out[i0, i1] = " not in plain_source
    for a, b in zip(looped, plain):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    # and the gradient is eager's, to rounding
    value, grads = cr.value_and_grad(_batchnorm, argnums=(0, 1))(*args)
    tol = 1e-11 if dtype == numpy.float64 else 2e-4
    for a, b in zip(looped, [value, *grads]):
        numpy.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _sinkhorn(X, Y, a, b):
    C = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
    K = numpy.exp(-C / 2.0)
    v = b * 0 + 1
    for _ in range(6):
        u = a / (K @ v)
        v = b / (K.T @ u)
    return (u[:, None] * K * v[None, :] * C).sum()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_outer_products_summed_in_a_loop_multiply_their_vectors_there(dtype, monkeypatch, tmp_path):
    # K's gradient gathers an outer product per matrix-vector product; the loop that adds them
    # multiplies u[i0] * g[i1] where it adds instead of reading a (100, 120) array of each,
    # and K.T.T (K's gradient through K.T) is K, not a copy made before every product
    rng = numpy.random.default_rng(4)
    args = (
        rng.standard_normal((40, 2)).astype(dtype),
        rng.standard_normal((50, 2)).astype(dtype),
        numpy.full(40, 1 / 40, dtype),
        numpy.full(50, 1 / 50, dtype),
    )
    from chainrule.readers.numba_backend import fusion

    source, fused = _compiled(_sinkhorn, args, monkeypatch, tmp_path / "on")
    kernel = source[source.index("def kernel") :]
    # (lKa[i0] * lKb[i1]) in the loop (lKa[i0] read once per row, before the inner loop)
    assert len(re.findall(r"l\d+a\[i0\]", source)) >= 6
    assert len(re.findall(r"l\d+b\[i1\]", source)) >= 6
    assert "numpy.outer" not in kernel and "ascontiguousarray" not in kernel
    with monkeypatch.context() as m:
        m.setattr(fusion, "outer_parts", lambda w, leaf: None)
        _, plain = _compiled(_sinkhorn, args, m, tmp_path / "off")
    for x, y in zip(fused, plain):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    value, grads = cr.value_and_grad(_sinkhorn, argnums=(0, 1))(*args)
    tol = 1e-10 if dtype == numpy.float64 else 1e-3
    for x, y in zip(fused, [value, *grads]):
        numpy.testing.assert_allclose(x, y, rtol=tol, atol=tol * numpy.abs(y).max())


def _huber(w, X, y):
    r = X @ w - y
    a = numpy.abs(r)
    fit = numpy.where(a < 1.0, 0.5 * r * r, a - 0.5).mean()
    return fit + 0.1 * (numpy.clip(w, -1, 1) ** 2).sum()


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_choice_by_a_mask_is_made_inside_the_loop(dtype, monkeypatch, tmp_path):
    # numpy.where(a < 1, 0.5 * r * r, a - 0.5) and its gradient's where(mask, g, 0): a
    # conditional expression in the fused loop, not a Numba array expression of each branch;
    # the same bits as the array expressions
    rng = numpy.random.default_rng(6)
    X = rng.standard_normal((2000, 8)).astype(dtype)
    y = (X @ rng.standard_normal(8) + 2 * rng.standard_normal(2000)).astype(dtype)
    args = (numpy.full(8, 0.5, dtype), X, y)
    from chainrule.readers.numba_backend import fusion

    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path / "on"))
    f = cr.jit(cr.value_and_grad(_huber), backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        looped = [numpy.asarray(v) for v in f(*args)]
    source = f.source(*args)
    assert " if l" in source and "numpy.where" not in source[source.index("def kernel") :]
    with monkeypatch.context() as m:
        m.setenv("CHAINRULE_CACHE_DIR", str(tmp_path / "off"))
        m.setattr(fusion, "MAP_MIN_SIZE", 10**12)
        g = cr.jit(cr.value_and_grad(_huber), backend="numba")
        plain = [numpy.asarray(v) for v in g(*args)]
        assert "numpy.where" in g.source(*args)
    for a, b in zip(looped, plain):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    value, grad = cr.value_and_grad(_huber)(*args)
    tol = 1e-12 if dtype == numpy.float64 else 1e-5
    numpy.testing.assert_allclose(looped[0], value, rtol=tol)
    numpy.testing.assert_allclose(looped[1], grad, rtol=tol, atol=tol)


def test_concatenations_and_stacks_copy_each_part_into_its_place(tmp_path, monkeypatch):
    # of more than a few parts, one helper call a part (numba_backend.statements: a 50-part
    # concatenate no longer takes a minute to compile); of a few, Numba's own: every axis,
    # mixed dtypes, scalars stacked, views as parts
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    a = RNG.standard_normal((3, 4, 5))
    b = RNG.standard_normal((3, 2, 5)).astype(numpy.float32)
    c = numpy.arange(60, dtype=numpy.int64).reshape(3, 4, 5)

    def f(a, b, c):
        rows = [a[i % 3] for i in range(9)]  # views of the argument
        return (
            numpy.concatenate([a, b, a[:, ::-1]] * 3, axis=1),
            numpy.concatenate([a, c, a.T.T] * 3, axis=0),
            numpy.concatenate([a, b[:, :1], c] * 3, axis=-2),
            numpy.concatenate([a, a * 2.0] * 5, axis=2),
            numpy.stack(rows, axis=0),
            numpy.stack(rows + [a[0] + 1.0], axis=1),
            numpy.stack(rows, axis=-1),
            numpy.stack([a.sum(), b.sum(), a.max()] * 3),
            numpy.concatenate([a[0, :, 0]] * 40),
            numpy.concatenate([a, b], axis=1),  # a few: numpy.concatenate
            numpy.stack([a[0], a[1] * 2.0], axis=1),
        )

    want = f(a, b, c)
    jf = cr.jit(f, backend="numba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no fallback to the NumPy backend)
        got = jf(a, b, c)
    src = jf.source(a, b, c)
    assert "_put_block(" in src and "_put_flat(" in src
    assert src.count("numpy.concatenate(") == 1 and src.count("numpy.stack(") == 1
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        numpy.testing.assert_allclose(g, w, rtol=1e-6)  # b.sum() in float32 may round apart
    for k in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10):  # copies: the same bits
        assert got[k].tobytes() == want[k].tobytes()


def test_the_kernels_exp_of_small_arrays_is_within_one_ulp(tmp_path, monkeypatch):
    # arrays under 1024 values: the kernel's own arithmetic (helpers.VECTORISED), through
    # overflow, the subnormal results and the special values
    mpmath = pytest.importorskip("mpmath")
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))
    rng = numpy.random.default_rng(11)
    edges = [0.0, -0.0, 1e-300, -5e-324, 709.78, 709.79, -708.39, -708.4, -740.0, -745.1]
    edges += [-745.2, 0.34657359027997264, -0.34657359027997264, 1.0, -1.0, 50.5]
    x = numpy.concatenate([edges, rng.standard_normal(500) * 5, rng.uniform(-750, 712, 474)])
    f = cr.jit(lambda x: numpy.exp(x), backend="numba")
    with numpy.errstate(over="ignore"):  # (the trace runs NumPy's exp on 709.79)
        got = f(x)
        assert "_exp64(" in f.source(x) and "objmode" not in f.source(x)
    mpmath.mp.prec = 120
    want = numpy.array([float(mpmath.exp(mpmath.mpf(float(v)))) for v in x])
    assert _ulps(got, want).max() <= 1
    special = numpy.array([numpy.inf, -numpy.inf, numpy.nan])
    numpy.testing.assert_array_equal(
        f(numpy.concatenate([special, x[3:]]))[:3], [numpy.inf, 0.0, numpy.nan]
    )
