"""jit: the generated straight-line code equals the eager path, and traces stay honest."""

from __future__ import annotations

import re
import warnings

import numpy
import pytest
from op_cases import CASES, fd_grad

import chainrule as cr
from chainrule import seed

# Selecting elements by a mask computed from values cannot be compiled once for all values
# (test_value_dependent_indexing_is_refused checks that it is refused).
VALUE_DEPENDENT = {"getitem-tensor-mask"}
# lstsq's residuals exist only at full rank, a value the compiled program cannot follow
VALUE_DEPENDENT |= {"lstsq-vector", "lstsq-matrix", "lstsq-residuals", "lstsq-singular-values"}
VALUE_DEPENDENT |= {"roots"}  # strips zero coefficients: its shape follows the values
JIT_CASES = [c for c in CASES if c.id not in VALUE_DEPENDENT]


@pytest.mark.parametrize("case", JIT_CASES, ids=[c.id for c in JIT_CASES])
def test_jit_equals_eager_for_every_rule(case):
    n = len(case.inputs)
    step = lambda *a: case.fun(*a).sum()  # noqa: E731
    eager = cr.value_and_grad(step, argnums=tuple(range(n)))
    compiled = cr.jit(eager)
    rng = numpy.random.default_rng(3)
    for trial in range(2):  # the second call runs the cached code on new values
        args = [x + 0.01 * trial * rng.standard_normal(x.shape) for x in case.inputs]
        v_e, g_e = eager(*args)
        kept = [numpy.array(x, copy=True) for x in args]
        v_j, g_j = compiled(*args)
        for x, k in zip(args, kept):  # the compiled code writes only its own temporaries
            numpy.testing.assert_array_equal(x, k)
        numpy.testing.assert_allclose(v_j, v_e, rtol=1e-13, atol=1e-13)
        for a, b in zip(g_j, g_e):
            assert a.shape == b.shape and a.dtype == b.dtype
            numpy.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
            assert not any(numpy.shares_memory(a, x) for x in args if isinstance(x, numpy.ndarray))
    assert len(compiled.cache) == 1


# Programs made of many rules at once: the compiled code reuses buffers across statements (a
# temporary read for the last time takes a later result), which single-rule programs never
# exercise.  The square gives every rule a cotangent that is not a constant.
GROUP_SIZE = 16
GROUPS = [JIT_CASES[i : i + GROUP_SIZE] for i in range(0, len(JIT_CASES), GROUP_SIZE)]


@pytest.mark.parametrize("group", GROUPS, ids=[f"{g[0].id}..{g[-1].id}" for g in GROUPS])
def test_jit_equals_eager_on_programs_of_many_rules(group):
    sizes = [len(c.inputs) for c in group]

    def total(*xs):
        out, k = 0.0, 0
        for c, n in zip(group, sizes):
            out = out + (c.fun(*xs[k : k + n]) ** 2).sum()
            k += n
        return out

    eager = cr.value_and_grad(total, argnums=tuple(range(sum(sizes))))
    compiled = cr.jit(eager)
    rng = numpy.random.default_rng(7)
    for trial in range(2):
        args = [x + 0.01 * trial * rng.standard_normal(x.shape) for c in group for x in c.inputs]
        kept = [x.copy() for x in args]
        v_e, g_e = eager(*args)
        v_j, g_j = compiled(*args)
        for x, k in zip(args, kept):
            numpy.testing.assert_array_equal(x, k)
        numpy.testing.assert_allclose(v_j, v_e, rtol=1e-12)
        for i, (a, b) in enumerate(zip(g_j, g_e)):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"input {i}")


def test_a_temporary_read_twice_in_one_statement_is_not_overwritten_halfway():
    # d/dx sum(exp(x)**2) = 2 * exp(x) * exp(x): exp(x) dies in that statement but is read by
    # its last step, so the first step must not write into it.
    x = numpy.linspace(-1.0, 1.0, 5)
    f = cr.jit(cr.grad(lambda x: (numpy.exp(x) ** 2).sum()))
    numpy.testing.assert_allclose(f(x), 2 * numpy.exp(2 * x), rtol=1e-14)


def test_a_temporary_that_has_a_view_or_is_returned_keeps_its_buffer():
    x = numpy.linspace(-1.0, 1.0, 6).reshape(2, 3)
    u = numpy.exp(x)

    def viewed(x):
        u = numpy.exp(x)
        v = u.reshape(-1)  # a view of u, read after u's last direct use
        w = u * 3.0  # a statement of its own (read twice below)
        return w.sum() + w.max() + (v * v).sum() + v.sum()

    want = (3 * u + u * u + u).sum() + 3 * u.max()
    numpy.testing.assert_allclose(cr.jit(viewed)(x), want, rtol=1e-14)

    def returned(x):
        u = numpy.exp(x)
        return u, u * 3.0  # u is an output: its buffer must not take u * 3

    got_u, got_3u = cr.jit(returned)(x)
    numpy.testing.assert_allclose(got_u, u, rtol=1e-15)
    numpy.testing.assert_allclose(got_3u, 3 * u, rtol=1e-15)


def test_jit_seed_step_matches_the_hand_derived_gradients():
    step = cr.jit(cr.grad(seed.forward, argnums=tuple(range(2, 10))))
    grads = step(seed.X, seed.T, *seed.PARAMS.values())
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for g, name in zip(grads, seed.PARAMS):
        numpy.testing.assert_allclose(g, expected[name], rtol=1e-12, atol=0)


def test_generated_code_has_no_graph_bookkeeping_and_shares_the_relu_mask():
    step = cr.jit(cr.grad(seed.forward, argnums=tuple(range(2, 10))))
    src = step.source(seed.X, seed.T, *seed.PARAMS.values())
    assert "chainrule" not in src and "Tensor" not in src
    assert src.count("> 0") == 3  # one mask per ReLU layer
    assert "* 1" not in src
    # batch 1: the bias gradients sum over an axis of length 1, which is a reshape, not a sum
    assert ".sum(" not in src and "add.reduce(" not in src
    assert src.count(".reshape(") == 4  # dB1..dB4 (shapes (6,) x 3 and (1,))


def test_a_new_signature_traces_again_and_the_cache_can_be_cleared():
    f = cr.jit(lambda x: (x**2).sum())
    assert f(numpy.ones(3)) == 3.0
    assert f(numpy.ones(4)) == 4.0
    assert f(numpy.ones(4, dtype=numpy.float32)).dtype == numpy.float32
    assert f.cache_info()["signatures"] == 3
    f.clear_cache()
    assert f.cache_info()["signatures"] == 0


def test_python_numbers_are_static_and_retrace_on_change():
    f = cr.jit(lambda x, k: (x * k).sum())
    assert f(numpy.ones(2), 2.0) == 4.0
    assert f(numpy.ones(2), 3.0) == 6.0


def test_value_dependent_control_flow_is_refused_not_frozen():
    def f(x):
        if x.sum() > 0:
            return x * 2
        return x * 3

    with pytest.raises(cr.TracerBoolError, match="control flow"):
        cr.jit(f)(numpy.ones(2))


def test_lstsq_is_refused_inside_jit_with_the_rewrite():
    a, b = numpy.random.default_rng(1).standard_normal((2, 5, 3))
    with pytest.raises(cr.TracerBoolError, match=r"lstsq.*pinv\(a\) @ b"):
        cr.jit(lambda a: numpy.linalg.lstsq(a, b[:, 0], rcond=None)[0].sum())(a)


def test_value_dependent_indexing_is_refused():
    with pytest.raises(cr.TracerBoolError, match="numpy.where"):
        cr.jit(lambda x: x[x > 0].sum())(numpy.array([-1.0, 2.0]))


def test_converting_a_traced_value_to_an_array_is_refused():
    with pytest.raises(cr.TracerBoolError, match="freeze"):
        cr.jit(lambda x: numpy.asarray(x) * 2)(numpy.ones(2))


def test_static_argnums_and_pytrees():
    def loss(params, x, scale):
        return scale * ((x @ params["w"] + params["b"]) ** 2).sum()

    f = cr.jit(cr.value_and_grad(loss), static_argnums=2)
    params = {"w": numpy.ones((3, 2)), "b": numpy.zeros(2)}
    x = numpy.arange(6.0).reshape(2, 3)
    v, g = f(params, x, 0.5)
    v2, g2 = cr.value_and_grad(loss)(params, x, 0.5)
    assert v == v2
    numpy.testing.assert_array_equal(g["w"], g2["w"])
    numpy.testing.assert_array_equal(g["b"], g2["b"])


def test_a_static_mask_selects_inside_a_jitted_gradient():
    # value_and_grad hands its constant arguments to the function as tensors; a static one
    # is a constant of the program (one per mask), so indexing and branching on it are fine
    def loss(w, x, mask, k):
        scale = 2.0 if mask[0] and int(k) > 1 else 1.0
        return scale * (x[mask] @ w).sum()

    step = cr.jit(cr.value_and_grad(loss), static_argnums=(2, 3))
    rng = numpy.random.default_rng(3)
    w, x = rng.standard_normal(3), rng.standard_normal((6, 3))
    for mask, k, scale in [
        (numpy.array([1, 0, 1, 0, 1, 1], bool), numpy.array(2), 2.0),
        (numpy.array([0, 1, 1, 1, 0, 0], bool), numpy.array(2), 1.0),
        (numpy.array([1, 0, 1, 0, 1, 1], bool), numpy.array(1), 1.0),
    ]:
        value, grad = step(w, x, mask, k)
        assert value == pytest.approx(scale * (x[mask] @ w).sum(), rel=1e-14)
        numpy.testing.assert_allclose(grad, scale * x[mask].sum(axis=0), rtol=1e-14)
    traced = cr.jit(cr.value_and_grad(loss), static_argnums=(3,))  # the mask traced: refused
    with pytest.raises(cr.TracerBoolError, match="static_argnums"):
        traced(w, x, numpy.array([1, 0, 1, 0, 1, 1], bool), numpy.array(1))


def cross_entropy(W, X, y):
    z = X @ W
    z = z - z.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    return -logp[numpy.arange(len(y)), y].mean()


def test_integer_labels_index_inside_jit_and_stay_variables():
    rng = numpy.random.default_rng(2)
    W, X = rng.standard_normal((4, 3)), rng.standard_normal((6, 4))
    step = cr.jit(cr.value_and_grad(cross_entropy))
    for _ in range(3):  # new labels each call, one compiled signature
        y = rng.integers(0, 3, 6)
        v, g = step(W, X, y)
        v_e, g_e = cr.value_and_grad(cross_entropy)(W, X, y)
        assert v == pytest.approx(float(v_e), rel=1e-14)
        numpy.testing.assert_allclose(g, g_e, rtol=1e-13)
    assert step.cache_info()["signatures"] == 1
    assert "a2]" in step.source(W, X, y)  # the labels are read at run time, not frozen


def test_functions_without_gradient_are_traced_not_frozen():
    f = cr.jit(lambda x: numpy.argmax(x, axis=1) * 1.0 + x.sum(axis=1))
    x = numpy.array([[1.0, 2.0], [3.0, 0.0]])
    f(x)
    numpy.testing.assert_array_equal(f(-x), numpy.argmax(-x, axis=1) * 1.0 + (-x).sum(axis=1))


def test_numpy_scalar_constants_keep_their_type():
    g = lambda x: x * numpy.float64(2.0)  # noqa: E731
    x = numpy.ones(3, numpy.float32)
    assert cr.jit(g)(x).dtype == g(x).dtype == numpy.float64
    h = lambda x: x * 2.0  # noqa: E731
    assert cr.jit(h)(x).dtype == h(x).dtype == numpy.float32


def test_tracing_under_a_running_profiler():
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        assert cr.jit(lambda x: (x * x).sum())(numpy.ones(3)) == 3.0
    finally:
        profiler.disable()


def test_the_gradient_of_a_mean_keeps_its_constant_small():
    # d mean(x**2)/dx = 2 x / n: the 1/n is one number spread by NumPy's broadcasting, never
    # an array of x's shape stored with the compiled code (and read on every call)
    f = cr.jit(cr.grad(lambda x: (x**2).mean()))
    x = numpy.random.default_rng(0).standard_normal((200, 300)).astype(numpy.float32)
    g = f(x)
    assert g.dtype == numpy.float32
    numpy.testing.assert_allclose(g, 2 * x / x.size, rtol=1e-6)
    (entry,) = f.cache.values()
    constants = [v for k, v in entry.fun.__globals__.items() if k.startswith("_c")]
    assert constants and all(numpy.size(c) == 1 for c in constants), [
        numpy.shape(c) for c in constants
    ]


def test_the_gradient_through_new_axes_is_the_incoming_one_reshaped():
    # x[:, None, :] keeps every element in order: its gradient is g reshaped (a -0.0 stays
    # -0.0), eager and jit alike, and the jit's program makes no array of zeros to write it
    # into
    x = numpy.array([[1.0, -2.0], [3.0, 0.5]])
    w = numpy.array([[[0.0, -1.0]], [[2.0, -0.0]]])  # d/dx (x[:, None, :] * w).sum() = w

    def f(x):
        return (x[:, None, :] * w).sum()

    def f2(x):  # None and ... around the whole array
        return (x[None, ..., None] * w.reshape(1, 2, 2, 1)).sum()

    want = w.reshape(2, 2)
    for fun in (f, f2):
        for g in (cr.grad(fun)(x), cr.jit(cr.grad(fun))(x)):
            numpy.testing.assert_array_equal(g, want, strict=True)
            assert numpy.signbit(g[1, 1])
        src = cr.jit(cr.grad(fun)).source(x)
        assert "zeros" not in src and "scatter" not in src, src


def test_a_gaussian_process_step_on_large_arrays_is_eagers_bit_for_bit():
    # scalar parameters times 90x90 arrays (sums of 8100 products in their gradients), the
    # kernel matrix through solve and slogdet (shared Cholesky factors): the jit's values
    # and gradients are the eager step's, bit for bit
    rng = numpy.random.default_rng(11)
    pts = rng.standard_normal((90, 2))
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    y = rng.standard_normal(90)

    def nll(log_l, log_s, log_n):
        k = numpy.exp(log_s) * numpy.exp(-0.5 * d2 * numpy.exp(-2.0 * log_l))
        k = k + numpy.exp(log_n) * numpy.eye(90)
        return 0.5 * (y @ numpy.linalg.solve(k, y)) + 0.5 * numpy.linalg.slogdet(k)[1]

    args = (numpy.float64(0.1), numpy.float64(0.3), numpy.float64(-1.0))
    step = cr.value_and_grad(nll, argnums=(0, 1, 2))
    (v, g), (vj, gj) = step(*args), cr.jit(step)(*args)
    assert v == vj
    for a, b in zip(g, gj):
        numpy.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("shape", [(4, 6, 5), (128, 96, 64), (300, 1, 20)])
def test_products_in_the_rules_are_the_jits_spelling_and_bits(shape):
    # small products by ndarray.dot, large ones by @, outer products (inner length 1) by dot
    # (primitives.dot_is_faster), in the eager rules and in jit's code alike: eager's bits
    m, k, n = shape
    rng = numpy.random.default_rng(2)
    X = rng.standard_normal((m, k)).astype(numpy.float32)
    W = rng.standard_normal((k, n)).astype(numpy.float32)
    V = rng.standard_normal((n, 3)).astype(numpy.float32)

    def loss(W, V, X):
        return (numpy.tanh(X @ W) @ V).sum() + (numpy.tanh(X.dot(W)).dot(V) ** 2).sum()

    step = cr.value_and_grad(loss, argnums=(0, 1))
    (v, g), (vj, gj) = step(W, V, X), cr.jit(step)(W, V, X)
    assert v == vj
    for a, b in zip(g, gj):
        numpy.testing.assert_array_equal(a, b, strict=True)
    H = numpy.tanh(X.astype(float) @ W)
    dH = (1 - H**2) * (V.sum(axis=1) + (2 * (H @ V)) @ V.T)
    numpy.testing.assert_allclose(g[0], X.T.astype(float) @ dH, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("threshold", [1 << 16, None])  # one product, or matrix by matrix
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_a_linear_layer_over_a_stack_is_eagers_bits_and_matmuls_values(
    threshold, dtype, monkeypatch
):
    # X (8, 64, 32) @ W (32, 48): one product of a (512, 32) matrix where the stack is large
    # (here: over a lowered threshold), matrix by matrix below; the first-input gradient
    # (g @ W.T) likewise. The jit
    # computes the same products (eager's bits), the values are NumPy's matmul to rounding,
    # the gradients finite differences'; a transposed stack (not C-ordered) too
    from chainrule.engine import primitives as P

    if threshold is not None:
        monkeypatch.setattr(P, "ROWS_PRODUCT", threshold)
    rng = numpy.random.default_rng(5)
    X = rng.standard_normal((8, 64, 32)).astype(dtype)
    W = (rng.standard_normal((32, 48)) * 0.2).astype(dtype)
    V = (rng.standard_normal((48, 32)) * 0.2).astype(dtype)

    def loss(W, V, X):
        H = numpy.tanh(X @ W) @ V  # the second product's first input requires grad
        return (H * H).mean() + (numpy.swapaxes(X, 1, 2) @ X[0]).mean()

    step = cr.value_and_grad(loss, argnums=(0, 1))
    compiled = cr.jit(step)
    (v, g), (vj, gj) = step(W, V, X), compiled(W, V, X)
    # every product of a stack goes through the primitive's function, in eager and in jit; a
    # weight's gradient (the sum of a_i^T g_i over the stack) is one product of the stack's
    # 512 rows
    src = compiled.source(W, V, X)
    assert "_matmul(" in src
    products = [line for line in src.splitlines() if " @ " in line]
    assert len(products) == 2 and all(".reshape((512, " in line for line in products)
    assert v == vj
    for a, b in zip(g, gj):
        numpy.testing.assert_array_equal(a, b, strict=True)
    x64 = [a.astype(numpy.float64) for a in (W, V, X)]
    tol = 1e-12 if dtype == numpy.float64 else 2e-5
    numpy.testing.assert_allclose(v, loss(*x64), rtol=tol)
    want = fd_grad(lambda w: loss(w, x64[1], x64[2]), x64[0])
    numpy.testing.assert_allclose(
        g[0],
        want,
        rtol=1e-5 if dtype == numpy.float64 else 2e-2,
        atol=1e-9 if dtype == numpy.float64 else 2e-4,
    )


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_a_negated_mean_seed_is_one_negated_number_and_eagers_bits(dtype):
    # d/dx mean(y - x) = -1/n everywhere and d/dx mean(y * exp(-x)): the negation of the
    # spread 1/n is taken of the one number, and what the products compute is eager's, bit
    # for bit
    def loss(x, y):
        return (y - x).mean() + (numpy.abs(y * numpy.exp(-x))).mean()

    rng = numpy.random.default_rng(3)
    x, y = rng.standard_normal((2, 5000)).astype(dtype)
    f = cr.jit(cr.grad(loss))
    got, want = f(x, y), cr.grad(loss)(x, y)
    numpy.testing.assert_array_equal(got, want, strict=True)
    src = f.source(x, y)
    assert "-numpy.broadcast_to" not in src and "negative(numpy.broadcast_to" not in src, src


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_relu_and_its_mask_are_bit_identical_to_eager_at_special_values(dtype):
    # jit spells maximum(0, Z) with a constant row of zeros and the mask product with dtype=;
    # NaN, infinities and signed zeros must come out exactly as NumPy's own spelling gives
    special = [-0.0, 0.0, numpy.nan, -numpy.inf, numpy.inf, -1.5, 2.5, 1e-30]
    Z = numpy.array([special * 2] * 3, dtype=dtype)  # rows of 16 >= the row length
    W = numpy.linspace(-1, 1, 16 * 4).reshape(16, 4).astype(dtype)

    def f(Z, W):
        A = numpy.maximum(0, Z)
        B = numpy.minimum(Z, 1.0)
        return (A @ W).sum() + (B @ W).sum()

    step = cr.value_and_grad(f, argnums=(0, 1))
    compiled = cr.jit(step)
    with numpy.errstate(invalid="ignore"):
        want = step(Z, W)
        got = compiled(Z, W)
    assert "numpy.maximum(_c" in compiled.source(Z, W)
    for a, b in zip(numpy.atleast_1d(got[0]), numpy.atleast_1d(want[0])):
        assert numpy.asarray(a).tobytes() == numpy.asarray(b).tobytes()
    for a, b in zip(got[1], want[1]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_a_sum_over_a_length_one_axis_of_a_view_of_an_input_is_not_a_view_of_it():
    x = numpy.arange(3.0).reshape(3, 1)
    for f in (lambda x: x.T.sum(axis=0), lambda x: x.sum(axis=1), lambda x: x[:, :1].sum(1)):
        got = cr.jit(f)(x)
        numpy.testing.assert_array_equal(got, [0.0, 1.0, 2.0])
        assert not numpy.shares_memory(got, x)


def _bits_equal(got, want):
    got, want = numpy.asarray(got), numpy.asarray(want)
    return got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_a_mean_is_bit_identical_to_numpys(dtype):
    # jit writes mean as add.reduce(x) / n (float32 too): the bits of ndarray.mean, per axis
    rng = numpy.random.default_rng(3)
    x = (rng.standard_normal((7, 33, 5)) * 1e3).astype(dtype)
    for axis in (None, 0, 1, 2, (0, 2)):
        for keepdims in (False, True):
            f = cr.jit(lambda x, axis=axis, keepdims=keepdims: x.mean(axis=axis, keepdims=keepdims))
            assert _bits_equal(f(x), x.mean(axis=axis, keepdims=keepdims)), (axis, keepdims)
            assert "numpy.add.reduce" in f.source(x)


def test_distinct_positions():
    from chainrule.program.ir import Value, distinct_positions

    labels = Value(0, "input", [], {}, (4,), numpy.dtype(numpy.int64))
    rows = numpy.arange(4)
    assert distinct_positions((rows, labels), (4, 10))
    assert distinct_positions((rows[::-1].copy(), labels), (4, 10))  # any permutation
    assert distinct_positions((slice(None), 2), (4, 10))  # basic indices
    assert distinct_positions((rows[:, None], numpy.zeros((4, 1), int)), (4, 10))
    assert distinct_positions((labels, rows), (10, 4))  # rows decide
    assert not distinct_positions((labels,), (10, 4))  # labels may repeat
    assert not distinct_positions((numpy.array([0, 1, 1, 2]), labels), (4, 10))
    assert not distinct_positions((numpy.array([0, 1, -4, 3]), labels), (4, 10))  # -4 is 0
    # arange broadcast against a wider index: each row is reached several times
    wide = Value(1, "input", [], {}, (4, 3), numpy.dtype(numpy.int64))
    assert not distinct_positions((rows[:, None], wide), (4, 10))
    assert not distinct_positions((numpy.array([True, False, True, True]),), (4,))


def test_the_label_gather_gradient_is_an_assignment_and_bit_identical_to_eager():
    # logp[arange(n), y]: positions never repeat, so jit assigns instead of numpy.add.at
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal((6, 5)).astype(numpy.float32)
    y = numpy.array([4, 0, 0, 3, 4, 1])

    def loss(x, y):
        return -x[numpy.arange(x.shape[0]), y].mean()

    step = cr.value_and_grad(loss)
    compiled = cr.jit(step)
    got, want = compiled(x, y), step(x, y)
    assert _bits_equal(got[0], want[0]) and _bits_equal(got[1], want[1])
    want_g = numpy.zeros_like(x)
    want_g[numpy.arange(6), y] = -1 / numpy.float32(6)
    numpy.testing.assert_allclose(got[1], want_g, rtol=1e-7)
    src = compiled.source(x, y)
    assert "add.at" not in src and "] = " in src


def test_a_scatter_whose_positions_repeat_still_accumulates():
    x = numpy.arange(12.0).reshape(4, 3)
    y = numpy.array([2, 2, 0, 2])

    def loss(x, y):
        return (x[y, 1] * numpy.array([1.0, 2.0, 3.0, 4.0])).sum()

    g = cr.jit(cr.grad(loss))(x, y)
    want = numpy.zeros_like(x)
    numpy.add.at(want, (y, 1), [1.0, 2.0, 3.0, 4.0])
    numpy.testing.assert_array_equal(g, want)
    assert g[2, 1] == 7.0


@pytest.mark.parametrize("index_is_input", [True, False])
def test_a_unique_scatter_keeps_eagers_signed_zeros(index_is_input):
    # numpy.add.at into zeros turns -0.0 into +0.0; jit's assignment must not keep the -0.0
    x = numpy.arange(12.0).reshape(4, 3)
    y = numpy.array([2, 0, 1, 2])
    w = numpy.array([-0.0, 2.0, -0.0, -3.0])

    def loss(x, w, y):
        idx = y if index_is_input else numpy.array([2, 0, 1, 2])
        return (x[numpy.arange(4), idx] * w).sum() + (x[numpy.arange(4), idx] * -0.0).sum()

    step = cr.grad(loss, argnums=0)
    got, want = cr.jit(step)(x, w, y), step(x, w, y)
    assert _bits_equal(got, want)
    assert not numpy.signbit(got[numpy.arange(4), y][0])  # -0.0 + -0.0 into +0.0


def test_the_max_gradient_spreads_ties_with_the_same_bits_as_multiplying_first():
    # the rule divides by the tie count before spreading; the result must be bit for bit
    # g * hit / ties, special values included
    x = numpy.array(
        [
            [1.0, 3.0, 3.0, -2.0],
            [numpy.nan, 0.0, 1.0, 1.0],
            [-0.0, 0.0, -1.0, -5.0],
            [numpy.inf, numpy.inf, 2.0, 1.0],
            [2.0, 2.0, -1.0, 2.0],
        ]
    )
    for g in (
        [1.0, -2.0, 0.5, -0.0, 5.0],
        [numpy.inf, -0.0, 0.0, numpy.nan, -0.0],
        [3.0, 1e-300, -7, 1, 0.1],
    ):
        g = numpy.array(g)
        x_t = cr.tensor(x, requires_grad=True)
        with numpy.errstate(invalid="ignore", divide="ignore"):
            (x_t.max(axis=1) * g).sum().backward()
            m = x.max(axis=1, keepdims=True)
            hit = x == m
            want = g[:, None] * hit / hit.sum(axis=1, keepdims=True)
        assert _bits_equal(x_t.grad, want), (g, x_t.grad, want)


def test_large_temporaries_are_deleted_after_their_last_read_and_nothing_earlier():
    # jit deletes a big temporary's name right after the statement that reads it last; a
    # temporary read by many later statements (h) must live until the last of them
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((64, 96))
    w = rng.standard_normal((96, 80)) * 0.1
    v = rng.standard_normal((80, 80)) * 0.1

    def f(x, w, v):
        h = numpy.tanh(x @ w)  # 64 x 80 float64: 40 KiB
        a = (h * 2.0).sum()
        k = numpy.maximum(h @ v, 0)
        b = (h**2).mean() + (k * h).sum()
        c = h.T @ k
        return a + b + numpy.exp(-c * c).sum()

    step = cr.value_and_grad(f, argnums=(0, 1, 2))
    compiled = cr.jit(step)
    got, want = compiled(x, w, v), step(x, w, v)
    assert _bits_equal(got[0], want[0])
    for a, b in zip(got[1], want[1]):
        assert _bits_equal(a, b)
    assert "\n    del t" in compiled.source(x, w, v)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_a_relu_overwrites_its_input_once_the_mask_is_taken(dtype):
    # jit computes the backward mask Z > 0 right after Z, then lets maximum(0, Z) write into
    # Z; values and gradients must be eager's, bit for bit, at NaN, infinities, signed zeros
    special = [-0.0, 0.0, numpy.nan, -numpy.inf, numpy.inf, -1.5, 2.5, 1e-30]
    X = numpy.array([special * 2] * 600, dtype=dtype)  # 600 x 16: 38-75 KiB
    b = numpy.linspace(-0.0, 0.0, 16).astype(dtype)
    W = numpy.linspace(-1, 1, 16 * 4).reshape(16, 4).astype(dtype)

    def f(X, b, W):
        Z = X + b
        A = numpy.maximum(0, Z)
        Y = A @ W
        return numpy.where(numpy.isfinite(Y), Y, 0.0).sum()

    step = cr.value_and_grad(f, argnums=(1, 2))
    compiled = cr.jit(step)
    with numpy.errstate(invalid="ignore"):
        want = step(X, b, W)
        got = compiled(X, b, W)
    src = compiled.source(X, b, W)
    if X.nbytes >= 1 << 15:
        assert src.index(" > 0") < src.index("numpy.maximum(")
        assert re.search(r"numpy\.maximum\(\w+, (t\d+), out=\1\)", src), src
    assert _bits_equal(got[0], want[0])
    for a, w in zip(got[1], want[1]):
        assert _bits_equal(a, w)


# Compositions whose steps depend on values (which knot, which order, which condition): compiled
# at one input and run at another far from it, value and gradient must be eager's there (the
# op list's second call moves inputs by 0.01 only, which a frozen choice would survive).
_XP = [0.0, 1.0, 2.5, 3.0]
FOLLOWS_INPUTS = [
    (
        "interp",
        lambda x, fp: numpy.interp(x, _XP, fp) ** 2,
        (numpy.array([-0.5, 0.2, 1.3, 2.6, 3.5]), numpy.arange(4.0)),
        (numpy.array([2.9, 3.7, 0.4, -1.0, 1.1]), numpy.arange(4.0) ** 2),
    ),
    (
        "interp-xp-input-period",
        lambda x, xp, fp: numpy.interp(x, xp, fp, period=3.0) ** 2,
        (numpy.array([-0.5, 0.2, 1.3, 2.6]), numpy.array(_XP), numpy.arange(4.0)),
        (numpy.array([2.9, 3.7, 0.4, 1.1]), numpy.array([0.3, 0.9, 2.0, 2.4]), -numpy.arange(4.0)),
    ),
    (
        "partition",
        lambda x: numpy.partition(x, [0, 2], axis=0) * numpy.arange(1.0, 6.0)[:, None],
        (numpy.arange(15.0).reshape(5, 3),),
        (-numpy.arange(15.0).reshape(5, 3) % 7,),
    ),
    (
        "select",
        lambda x, d: numpy.select([x > 0.5, x < -0.5], [x**2, 3 * x], d),
        (numpy.array([1.0, -1.0, 0.0]), numpy.ones(3)),
        (numpy.array([-1.0, 0.2, 2.0]), numpy.full(3, 2.0)),
    ),
    (
        "linspace",
        lambda a, b: numpy.linspace(a, b, 5, axis=-1) ** 2,
        (numpy.zeros(2), numpy.array([1.0, 2.0])),
        (numpy.array([3.0, 0.0]), numpy.array([-1.0, 5e-324])),
    ),
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "name, f, first, second", FOLLOWS_INPUTS, ids=[c[0] for c in FOLLOWS_INPUTS]
)
def test_value_dependent_compositions_follow_their_inputs(name, f, first, second, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    eager = cr.value_and_grad(lambda *a: f(*a).sum(), argnums=0)
    compiled = cr.jit(eager, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cr.JitFallbackWarning)  # searchsorted, argpartition
        compiled(*first)
        got = compiled(*second)
    want = eager(*second)
    numpy.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    numpy.testing.assert_allclose(got[1], want[1], rtol=1e-13)
    batch = [numpy.stack([a, b]) for a, b in zip(first, second)]
    mapped = cr.vmap(f)(*batch)
    numpy.testing.assert_allclose(mapped[1], f(*second), rtol=1e-13)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
@pytest.mark.parametrize("k", [2, 3, 4, 7, 8, 9, 15, 16])
def test_a_sum_over_a_short_last_axis_has_numpys_bits(dtype, k):
    rng = numpy.random.default_rng(k)
    x = (rng.standard_normal((60, 40, k)) * rng.lognormal(0, 4, (60, 40, k))).astype(dtype)
    x[0, 0] = -0.0  # a row of negative zeros sums to -0.0
    x[0, 1, 0] = numpy.nan
    x[1, 0, :2] = [numpy.inf, -numpy.inf]
    f = cr.jit(lambda x: (x.sum(axis=-1), (x * x).sum(axis=2, keepdims=True), x.T.sum(axis=2)))
    with numpy.errstate(invalid="ignore"):
        got = f(x)
        want = (x.sum(axis=-1), (x * x).sum(axis=2, keepdims=True), x.T.sum(axis=2))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        numpy.testing.assert_array_equal(g, w, strict=True)
    assert numpy.signbit(got[0][0, 0]) == numpy.signbit(want[0][0, 0])  # -0.0 or +0.0 alike
    assert ("_add_reduce" in f.source(x)) == (k <= 15)  # the eager path's route, same bits


def test_index_helpers_of_the_shape_alone_trace_as_constants():
    # diag/triu/tril_indices_from depend on the shape only: jit, vmap and explain follow them
    def f(A, s):
        K = A @ A.T
        K[numpy.diag_indices_from(K)] += s**2
        return numpy.linalg.slogdet(K)[1] + K[numpy.triu_indices_from(K, 1)].sum()

    rng = numpy.random.default_rng(21)
    A, s = rng.standard_normal((4, 4)), numpy.array(0.5)
    want = cr.grad(f, argnums=(0, 1))(A, s)
    got = cr.jit(cr.grad(f, argnums=(0, 1)))(A, s)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, w, rtol=1e-12)
    # d/ds = 2 s trace(K^-1), from the hand derivation of logdet(K + s^2 I)
    K = A @ A.T + s**2 * numpy.eye(4)
    numpy.testing.assert_allclose(want[1], 2 * s * numpy.trace(numpy.linalg.inv(K)), rtol=1e-10)
    batch = cr.vmap(cr.grad(f), in_axes=(0, None))(numpy.stack([A, 2 * A]), s)
    numpy.testing.assert_allclose(batch[1], cr.grad(f)(2 * A, s), rtol=1e-12)
    assert "slogdet" in str(cr.explain(f, A, s)) or "logdet" in str(cr.explain(f, A, s))


def test_nonzero_under_a_trace_says_what_to_do():
    A = numpy.random.default_rng(22).standard_normal((3, 3))
    with pytest.raises(cr.TracerBoolError, match=r"numpy\.nonzero .*lengths depend on the values"):
        cr.jit(lambda K: K[numpy.nonzero(K > 0)].sum())(A)


def test_a_static_array_argument_is_keyed_by_its_values():
    def loss(w, counts):
        total = 0.0
        for i in range(len(counts)):
            for k in range(int(counts[i])):  # control flow on the static argument's values
                total = total + numpy.log(k + w**2)
        return total

    f = cr.jit(loss, static_argnums=(1,))
    w = numpy.array(1.3)
    for c in ([2.0, 0.0, 3.0], [1.0, 4.0], [2.0, 0.0, 3.0]):
        c = numpy.array(c)
        # by hand: sum over i of sum_{k < c_i} log(k + w^2)
        want = sum(numpy.log(k + 1.69) for n in c for k in range(int(n)))
        numpy.testing.assert_allclose(f(w, c), want, rtol=1e-13)
    assert len(f.cache) == 2  # the third call found the first program again
    with pytest.raises(TypeError, match=r"static argument 1 \(list\) is not hashable"):
        cr.jit(loss, static_argnums=(1,))(w, [1.0])


def test_add_at_with_an_index_argument_follows_new_indices():
    # a segment sum (an embedding bag): the index arrays are arguments, traced like x[idx]
    def bag(W, idx, seg):
        out = numpy.zeros_like(W[:3])
        numpy.add.at(out, seg, W[idx])
        return (numpy.tanh(out) ** 2).sum()

    rng = numpy.random.default_rng(23)
    W, idx = rng.standard_normal((6, 2)), numpy.array([0, 1, 1, 5, 3])
    f = cr.jit(cr.value_and_grad(bag))
    for seg in (numpy.array([0, 0, 1, 2, 2]), numpy.array([2, 1, 1, 0, 0])):
        value, grad = f(W, idx, seg)
        numpy.testing.assert_allclose(value, bag(W, idx, seg), rtol=1e-13)
        want = fd_grad(lambda w, s=seg: bag(w, idx, s), W)
        numpy.testing.assert_allclose(grad, want, rtol=1e-6)


def test_subtracting_plus_zero_is_dropped_and_minus_zero_kept():
    # x - 0 is x bit for bit (-0 and NaN included), so the program drops it; x - (-0) turns
    # -0 into +0, so it stays
    x = numpy.array([-0.0, 0.0, numpy.nan, -numpy.inf, 1.5])
    plus = cr.jit(lambda x: (x - 0.0) * 3.0)
    assert "- 0" not in plus.source(x) and "subtract" not in plus.source(x)
    numpy.testing.assert_array_equal(numpy.signbit(plus(x)), numpy.signbit((x - 0.0) * 3.0))
    minus = cr.jit(lambda x: (x - (-0.0)) * 3.0)
    got = minus(x)
    assert not numpy.signbit(got[0])  # -0 - (-0) is +0
    numpy.testing.assert_array_equal(numpy.signbit(got), numpy.signbit((x - (-0.0)) * 3.0))


def test_a_transposed_outer_product_is_written_the_other_way_round():
    # the gradient of K.T @ u in K is outer(g, u).T; jit writes outer(u, g) (a real product
    # commutes exactly) instead of reading a transposed view: the eager values, bit for bit,
    # and the gradient against a hand derivation (sum_t outer(v_t, u_t), each product's
    # cotangent spread)
    rng = numpy.random.default_rng(31)
    K, us = rng.standard_normal((4, 6)), rng.standard_normal((3, 4))

    def loss(K):
        return sum(((K.T @ u) ** 2).sum() for u in us)

    f = cr.jit(cr.grad(loss))
    assert "numpy.outer(" in f.source(K) and ").T" not in f.source(K)
    got, want = f(K), cr.grad(loss)(K)
    assert got.tobytes() == want.tobytes()
    hand = sum(numpy.outer(u, 2 * (K.T @ u)) for u in us)
    numpy.testing.assert_allclose(got, hand, rtol=1e-13)


def test_a_transpose_of_a_transpose_is_the_array_itself():
    # x.T.T and transposes that undo each other are dropped (Numba copies a view of unknown
    # layout before each product it enters); other pairs of permutations stay
    x = numpy.arange(24.0).reshape(2, 3, 4)

    def f(x):
        y = numpy.transpose(numpy.transpose(x, (1, 2, 0)), (2, 0, 1))  # undoes it
        z = numpy.transpose(numpy.transpose(x, (1, 2, 0)), (1, 2, 0))  # does not
        return y * 2.0, z * 3.0, x[0].T.T + 1.0

    g = cr.jit(f)
    source = g.source(x)
    assert source.count("transpose") == 2 and ".T.T" not in source and ".T" not in source
    for got, want in zip(g(x), f(x)):
        assert got.shape == want.shape and got.tobytes() == want.tobytes()


def test_a_returned_scatter_is_not_copied_again():
    # the gradient of rows read by an index argument is zeros the scatter made itself: not a
    # view of the index or of any input, so jit returns it as it is
    def loss(E, i):
        return (E[i] ** 2).sum()

    E, i = numpy.arange(12.0).reshape(4, 3), numpy.array([0, 2, 2])
    f = cr.jit(cr.grad(loss))
    assert "numpy.array(" not in f.source(E, i)
    want = numpy.zeros_like(E)
    numpy.add.at(want, i, 2 * E[i])
    numpy.testing.assert_array_equal(f(E, i), want)


def test_the_gradient_of_a_broadcast_subtrahend_is_summed_then_negated_as_eager_does():
    # d/db of sum(w * (x - b)) is -sum(w, axis=0): the eager walk sums first and negates the
    # small result, so a column that cancels exactly gives -0; the compiled program must do
    # the same (negating the large array first would give +0, and cost a pass over it)
    w = numpy.array([[1.0, 2.0, 0.5], [-1.0, 3.0, -0.5], [0.0, 1.0, 0.0]])
    x, b = numpy.ones((3, 3)), numpy.zeros(3)

    def loss(b, x, w):
        return (w * (x - b)).sum()

    eager = cr.grad(loss)(b, x, w)
    f = cr.jit(cr.grad(loss))
    compiled = f(b, x, w)
    numpy.testing.assert_array_equal(compiled, [-0.0, -6.0, -0.0])
    numpy.testing.assert_array_equal(numpy.signbit(compiled), numpy.signbit(eager))
    assert numpy.signbit(compiled[0])
    assert "reduce(-" not in f.source(b, x, w)
