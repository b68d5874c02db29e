"""Reading along an axis by integer arrays (``take_along_axis``, ``x[rows, cols]``) and its
gradient: ``engine.scatter.take_along``/``take_rows`` against NumPy's own indexing, the scatter
of index tuples closed by full ranges against ``numpy.add.at`` bit for bit, and gradients
against sums written out by hand."""

from __future__ import annotations

import numpy
import pytest
from test_scatter import route  # noqa: F401 -- the fixture: NumPy's routes and Numba's loop

import chainrule as cr
from chainrule.engine.scatter import add_at, axis_range, take_along, take_rows

RNG = numpy.random.default_rng(23)

ALONG = [
    # (array shape, index shape, axis): a middle axis before a block, the last axis, the first
    ((512, 4, 16), (512, 2, 1), 1),
    ((512, 4, 16), (512, 2, 16), 1),
    ((2000, 10), (2000, 1), 1),
    ((2000, 10), (3, 10), 0),
    ((40, 6, 5, 7), (40, 6, 3, 1), 2),
    ((40, 6, 5, 7), (1, 6, 2, 7), 2),  # broadcast along the first axis
    ((6, 200), (6, 5), -1),
]


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.complex128, numpy.int32])
@pytest.mark.parametrize("case", ALONG, ids=range(len(ALONG)))
def test_take_along_is_numpys(case, dtype):
    shape, ishape, axis = case
    x = (RNG.standard_normal(shape) * 100).astype(dtype)
    n = shape[axis]
    idx = RNG.integers(-n, n, ishape)  # negative indices count from the end
    got, want = take_along(x, idx, axis), numpy.take_along_axis(x, idx, axis=axis)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


def test_take_along_refuses_out_of_range_as_numpy_does():
    x = numpy.zeros((512, 4, 16))
    for bad in (4, -5):  # one past either end: the next or previous row if not refused
        idx = numpy.zeros((512, 2, 1), dtype=numpy.intp)
        idx[7, 1, 0] = bad
        with pytest.raises(IndexError):
            take_along(x, idx, 1)
        with pytest.raises(IndexError):
            take_rows(x, (axis_range(512, 0, 3), idx, axis_range(16, 2, 3)))


@pytest.mark.parametrize("cached", [True, False])
def test_take_rows_by_index_tuples_is_fancy_indexing(cached):
    x = RNG.standard_normal((300, 5, 8))
    ranges = (
        (axis_range(300, 0, 3), axis_range(8, 2, 3))
        if cached
        else (numpy.arange(300)[:, None, None], numpy.arange(8)[None, None, :])
    )
    idx = RNG.integers(0, 5, (300, 3, 1))
    cases = [
        (ranges[0], idx, ranges[1]),  # a middle axis, closed by a full range: rows of 8
        (ranges[0], idx, numpy.arange(7, -1, -1)[None, None, :]),  # reversed: elements
        (ranges[0], idx, numpy.arange(7)[None, None, :]),  # not the whole axis
        (ranges[0][..., 0], idx[..., 0]),  # two arrays of a 3-D array: rows of 8
        (RNG.integers(0, 300, 1000), RNG.integers(0, 5, 1000), RNG.integers(0, 8, 1000)),
    ]
    for index in cases:
        got, want = take_rows(x, index), x[index]
        assert got.shape == want.shape
        numpy.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.complex64])
@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.usefixtures("route")
def test_a_scatter_closed_by_full_ranges_is_numpy_add_at_bit_for_bit(dtype, cached):
    # take_along_axis's gradient over a middle axis: the index read repeats on purpose
    c0, c2 = (
        (axis_range(512, 0, 3), axis_range(16, 2, 3))
        if cached
        else (numpy.arange(512)[:, None, None], numpy.arange(16)[None, None, :])
    )
    idx = RNG.integers(-4, 4, (512, 3, 1))
    g = (RNG.standard_normal((512, 3, 16)) * 1e3).astype(dtype)
    g[RNG.random(g.shape) < 0.05] = -0.0
    g[3, 0, :3] = [numpy.inf, -numpy.inf, numpy.nan]
    want = numpy.zeros((512, 4, 16), dtype)
    numpy.add.at(want, (c0, idx, c2), g)
    got = numpy.zeros((512, 4, 16), dtype)
    add_at(got, (c0, idx, c2), g, fresh=True)
    assert got.tobytes() == want.tobytes()
    with pytest.raises(IndexError):
        add_at(got, (c0, idx + 4, c2), g, fresh=True)  # 4 is past the end of the axis


def _by_hand(x, idx, w, axis):
    """The gradient of ``sum(w * take_along_axis(x, idx, axis))`` in x, by loops."""
    grad = numpy.zeros_like(x)
    xm, im, wm = (numpy.moveaxis(a, axis, -1) for a in (grad, idx, w))
    for pos in numpy.ndindex(*im.shape[:-1]):
        for k in range(im.shape[-1]):
            xm[pos][im[pos][k]] += wm[pos][k]
    return grad


@pytest.mark.parametrize(
    "shape,ishape,axis", [((64, 5, 16), (64, 3, 1), 1), ((300, 7), (300, 2), 1)]
)
def test_gradient_of_a_read_along_an_axis_by_hand(shape, ishape, axis):
    x = RNG.standard_normal(shape)
    idx = RNG.integers(0, shape[axis], ishape)
    w = RNG.standard_normal(numpy.take_along_axis(x, idx, axis=axis).shape)  # (its shape only)

    def f(x):
        return (w * numpy.take_along_axis(x, idx, axis=axis)).sum()

    want = _by_hand(x, numpy.broadcast_to(idx, w.shape), w, axis)
    numpy.testing.assert_allclose(cr.grad(f)(x), want, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(cr.jit(cr.grad(f))(x), want, rtol=1e-12, atol=1e-12)


def test_gradient_of_a_top_two_routing_eager_and_jit():
    # indices computed inside the function (argsort): under jit they are traced values
    X, E = RNG.standard_normal((256, 8)), RNG.standard_normal((4, 8, 16))

    def f(E, X):
        outs = numpy.einsum("bi,eio->beo", X, E)
        top = numpy.argsort(outs.sum(axis=2), axis=1)[:, -2:]
        return (numpy.take_along_axis(outs, top[:, :, None], axis=1) ** 2).sum()

    top = numpy.argsort(numpy.einsum("bi,eio->beo", X, E).sum(axis=2), axis=1)[:, -2:]
    want = numpy.zeros_like(E)  # d/dE of sum over chosen experts of (x E_e)^2, by loops
    for b in range(256):
        for e in top[b]:
            want[e] += 2 * numpy.outer(X[b], X[b] @ E[e])
    numpy.testing.assert_allclose(cr.grad(f)(E, X), want, rtol=1e-10)
    numpy.testing.assert_allclose(cr.jit(cr.grad(f))(E, X), want, rtol=1e-10)
    assert "_take_rows" in cr.jit(cr.grad(f)).source(E, X)


@pytest.mark.parametrize("computed", [False, True])
def test_a_length_one_axis_is_read_again_for_every_index(computed):
    # NumPy broadcasts the array's length-1 axes against the indices (and the indices'
    # against the array's): the gradient adds every read of the one row into it
    A = RNG.standard_normal((1, 5))
    B = RNG.standard_normal((4, 5))
    fixed = numpy.argsort(B, axis=1)[:, :3]

    def f(a, b):
        idx = numpy.argsort(b, axis=1)[:, :3] if computed else fixed
        return (numpy.take_along_axis(a, idx, axis=1) ** 2).sum()

    want = numpy.zeros_like(A)  # by loops: d/da of sum over (i, k) of a[0, idx[i, k]] ** 2
    for i in range(4):
        for k in range(3):
            want[0, fixed[i, k]] += 2 * A[0, fixed[i, k]]
    value = (numpy.take_along_axis(A, fixed, axis=1) ** 2).sum()
    for vg in (cr.value_and_grad(f), cr.jit(cr.value_and_grad(f))):
        v, g = vg(A, B)
        numpy.testing.assert_allclose(v, value, rtol=1e-14)
        numpy.testing.assert_allclose(g, want, rtol=1e-14)
    C = RNG.standard_normal((4, 5))  # and the indices broadcast along the rows
    one = numpy.array([[4, 0]])
    g = cr.grad(lambda c: (numpy.take_along_axis(c, one, axis=1) * C[:, :2]).sum())(C)
    want = numpy.zeros_like(C)
    want[:, 4], want[:, 0] = C[:, 0], C[:, 1]
    numpy.testing.assert_allclose(g, want, rtol=1e-14)


ZERO_D = [
    (numpy.array(1), numpy.array(2)),  # one element
    (numpy.array([1, 2]), numpy.array(3)),  # 0-d beside 1-d
    (numpy.array(3), numpy.arange(100)[None, :]),  # 0-d before a full range
    (numpy.array([[1], [2]]), numpy.array([3, 4, 5])),
    (numpy.array([-1]), numpy.array([-100])),
]


@pytest.mark.parametrize("index", ZERO_D, ids=range(len(ZERO_D)))
def test_index_tuples_with_zero_d_arrays_are_numpys(index):
    x = numpy.arange(4000.0).reshape(40, 100)
    got, want = take_rows(x, index), x[index]
    assert numpy.shape(got) == numpy.shape(want)
    numpy.testing.assert_array_equal(got, want)
    g = RNG.standard_normal(numpy.shape(want))
    out, ref = numpy.zeros_like(x), numpy.zeros_like(x)
    add_at(out, index, g, fresh=True)
    numpy.add.at(ref, index, g)
    assert out.tobytes() == ref.tobytes()
    # and through a tensor: the gradient of the read is the scatter
    grad = cr.grad(lambda t: (t[index] * g).sum())(x)
    numpy.testing.assert_array_equal(grad, ref)
