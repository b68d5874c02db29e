"""engine.reduce.add_reduce: NumPy's sum along one axis, by other routes where NumPy's loop is
short; the values are checked against sums in exact (integer-valued) or extended arithmetic."""

from __future__ import annotations

import math

import numpy
import pytest

import chainrule
from chainrule.engine.reduce import add_reduce, max_last, window_reduce, window_route

SHAPES_AXES = [
    ((200, 200, 3), 1),  # a short trailing block: one reduction per entry of it
    ((200, 200, 3), -1),  # a short last axis: slices added in order
    ((200, 200, 3), 2),
    ((50, 64, 2, 3), 1),
    ((4000, 7), -1),
    ((30, 100, 5), 0),  # block of 500: NumPy's own route
    ((10, 10), 1),  # small: NumPy's own route
    ((300, 20, 9), 1),  # block of 9: NumPy's own route
    ((300, 20, 9), -1),  # a last axis of 9: NumPy's pairwise order, slice by slice
    ((1000, 15), 1),  # 15: eight partial sums and 7 added after them
    ((600, 16), 1),  # 16: NumPy's own route
]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_add_reduce_is_the_sum(shape, axis, keepdims, dtype):
    rng = numpy.random.default_rng(0)
    x = rng.integers(-1000, 1000, shape).astype(dtype)  # integers: every order sums exactly
    got = add_reduce(x, axis, keepdims)
    want = x.astype(numpy.int64).sum(axis=axis, keepdims=keepdims)
    assert got.shape == want.shape and got.dtype == x.dtype
    numpy.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_add_reduce_rounds_like_a_sum(shape, axis):
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal(shape)
    got = add_reduce(x, axis)
    exact = numpy.apply_along_axis(math.fsum, axis, x)  # correctly rounded
    numpy.testing.assert_allclose(got, exact, rtol=0, atol=1e-12 * shape[axis])


def test_short_last_axis_is_numpys_order_bit_for_bit():
    x = numpy.random.default_rng(2).standard_normal((500, 40, 3))
    numpy.testing.assert_array_equal(add_reduce(x, -1), numpy.add.reduce(x, axis=-1))


def test_other_arrays_and_axes_go_to_numpy():
    x = numpy.arange(24.0).reshape(2, 4, 3)
    assert add_reduce(x, None) == 276.0
    assert add_reduce(x, (0, 2)).shape == (4,)
    with pytest.raises(numpy.exceptions.AxisError):
        add_reduce(numpy.ones((100, 100, 3)), 3)
    v = numpy.ones((300, 300, 3))[:, ::2]  # not contiguous
    numpy.testing.assert_array_equal(add_reduce(v, 1), numpy.full((300, 3), 150.0))


def test_float16_is_summed_as_numpy_sums_it():
    # NumPy adds float16 in float32 and rounds once: adding float16 slices would round each step
    rng = numpy.random.default_rng(4)
    for k in (3, 7, 9):
        x = (rng.standard_normal((4000, k)) * 10.0 ** rng.integers(-3, 3, (4000, k))).astype(
            numpy.float16
        )
        numpy.testing.assert_array_equal(add_reduce(x, -1), numpy.add.reduce(x, axis=-1))


def test_pair_energy_gradient_through_the_short_sums():
    # sum(axis=-1) of (n, n, 3) differences forward, summed back over a broadcast axis in the
    # backward pass: the gradient of sum_ij |p_i - p_j|^2 is 4 (n p_i - sum_j p_j)
    rng = numpy.random.default_rng(3)
    P = rng.standard_normal((120, 3))

    def f(P):
        d = P[:, None, :] - P[None, :, :]
        return (d * d).sum(axis=-1).sum()

    value, g = chainrule.value_and_grad(f)(P)
    n = P.shape[0]
    want = 4.0 * (n * P - P.sum(axis=0))
    numpy.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-10)
    numpy.testing.assert_allclose(value, 2.0 * (n * (P * P).sum() - (P.sum(axis=0) ** 2).sum()))


@pytest.mark.parametrize("k", [2, 3, 7, 8, 9, 12, 15, 16])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_short_last_axis_keeps_numpys_bits_and_signed_zeros(k, dtype):
    # below 8 entries NumPy adds them in order from 0.0 (a row of -0.0 sums to +0.0); from 8
    # on it sums pairwise (eight partial sums, then a tree); magnitudes over 12 decades make
    # any other order round differently
    rng = numpy.random.default_rng(k)
    x = rng.standard_normal((400, 10, k)) * 10.0 ** rng.integers(-6, 6, (400, 10, k))
    x = x.astype(dtype)
    x[0, 0] = -0.0
    got, want = add_reduce(x, -1), numpy.add.reduce(x, axis=-1)
    numpy.testing.assert_array_equal(got, want, strict=True)
    assert numpy.signbit(got[0, 0]) == numpy.signbit(want[0, 0])


@pytest.mark.parametrize(
    "shape",
    [(512, 10), (8, 64, 64), (300, 10), (7, 50, 3), (130, 32), (2, 5, 40), (10, 4), (64, 200)],
)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_max_last_is_the_maximum_of_each_row(shape, dtype):
    # blocks of 64 rows and a tail, short and long rows (NumPy's own route), a small array;
    # the maximum of each row found by a Python loop, with NaN, infinities and a row of -inf
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1, shape[-1])
    flat[3, 1] = numpy.nan
    flat[5, :] = -numpy.inf
    flat[6, 0] = numpy.inf
    got = max_last(x)
    assert got.shape == shape[:-1] + (1,) and got.dtype == dtype
    want = []
    for row in flat:
        m = row[0]
        for v in row[1:]:
            if numpy.isnan(v) or numpy.isnan(m):
                m = numpy.nan
            elif v > m:
                m = v
        want.append(m)
    numpy.testing.assert_array_equal(got.reshape(-1), numpy.array(want, dtype))
    # a non-contiguous view: the same
    numpy.testing.assert_array_equal(max_last(x[..., ::-1]), got)


def test_the_stable_primitives_keep_the_textbook_bits():
    # softmax, log_softmax and logsumexp over short rows take the shift from max_last: their
    # values are those of the formulas written with numpy.max, bit for bit
    from chainrule import functions as fn

    rng = numpy.random.default_rng(2)
    for dtype in (numpy.float32, numpy.float64):
        x = (rng.standard_normal((300, 10)) * 30).astype(dtype)
        m = numpy.max(x, axis=-1, keepdims=True)
        e = numpy.exp(x - m)
        assert fn.softmax(x).tobytes() == (e / e.sum(axis=-1, keepdims=True)).tobytes()
        want = (x - m) - numpy.log(numpy.sum(numpy.exp(x - m), axis=-1, keepdims=True))
        assert fn.log_softmax(x).tobytes() == want.tobytes()
        want = numpy.log(numpy.sum(numpy.exp(x - m), axis=-1)) + m[:, 0]
        assert fn.logsumexp(x, axis=-1).tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64, None])
@pytest.mark.parametrize(
    "shape,axis",
    [((64, 8, 8, 2, 8, 2), 5), ((64, 8, 8, 2, 8, 1), 3), ((32, 4, 8, 4, 8, 4), (3, 5))],
)
def test_window_counts_of_booleans_are_numpys(shape, axis, dtype):
    # the ties of a max-pooling window: counted as bytes, then cast once; NumPy's own counts
    # and dtypes (an integer count where no dtype is asked for)
    hits = numpy.random.default_rng(5).random(shape) < 0.5
    assert window_route(shape, axis)
    got = window_reduce(numpy.add, hits, axis, True, dtype)
    want = numpy.add.reduce(hits, axis, keepdims=True, dtype=dtype)
    assert got.dtype == want.dtype
    numpy.testing.assert_array_equal(got, want, strict=True)


MID_SHAPES = [(512, 2, 16), (512, 4, 3), (2000, 12, 10), (10, 128, 2, 16), (600, 3, 64)]


@pytest.mark.parametrize("shape", MID_SHAPES)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_short_middle_axis_is_numpys_sum_bit_for_bit(shape, dtype):
    # slices added in turn: NumPy's own order over an axis that is not the last
    from chainrule.engine.reduce import own_route  # noqa: PLC0415

    rng = numpy.random.default_rng(5)
    x = (rng.standard_normal(shape) * numpy.exp(3 * rng.standard_normal(shape))).astype(dtype)
    x[0] = -0.0  # NumPy's sum of negative zeros is +0.0
    x[1, 0, 0] = numpy.inf
    x[2, 1, 0] = numpy.nan
    axis = len(shape) - 2
    assert own_route(shape, dtype, axis)  # the route is taken
    for keepdims in (False, True):
        got = add_reduce(x, axis, keepdims)
        want = numpy.add.reduce(x, axis=axis, keepdims=keepdims)
        assert got.shape == want.shape and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("shape", [(512, 2), (256, 4), (1000, 3)])
def test_short_rows_are_numpys_sum_and_max(shape):
    from chainrule.engine.reduce import own_route  # noqa: PLC0415

    x = numpy.random.default_rng(6).standard_normal(shape)
    x[0] = -0.0
    x[1, 0] = numpy.nan
    assert own_route(shape, x.dtype, 1) and window_route(shape, 1)
    assert add_reduce(x, 1).tobytes() == numpy.add.reduce(x, axis=1).tobytes()
    got, want = window_reduce(numpy.maximum, x, 1, True), x.max(axis=1, keepdims=True)
    numpy.testing.assert_array_equal(got, want)  # (NaN where NumPy has NaN)
