"""In-place NumPy idioms on tensors: recorded with the right gradients, or refused loudly.

Supported (recorded as functional updates, so gradients reach both the overwritten tensor and
the written values; checked against central finite differences and hand-derived gradients):
``u[idx] = v`` (slices, integers, masks, integer arrays, broadcast values), ``t += u`` and the
other augmented operators (they rebind the name; the original tensor is untouched), and
``out[i] = expr`` in a loop on a tensor.

A write into a tensor that recorded operations have already read moves those reads onto a
snapshot of the old value, when the write can find them all (in the written value's graph or
in the calling functions' variables); refused with an error that says why and what to write
instead: assigning into a leaf that requires grad, assigning into a tensor read by an operation
the write cannot find, and writing a tensor that requires grad into a plain NumPy array
(``a += t``, ``a[1:] = t``).

Also pinned here (see docs/guarantees.md): ``chainrule.tensor`` copies its input; an in-place
write into ``t.data``, or into a plain array used as a constant, is outside the graph and is
what ``backward()`` reads; rebinding ``t.data`` is safe.
"""

from __future__ import annotations

import types

import numpy
import pytest

import chainrule as cr

rng = numpy.random.default_rng(11)
C = rng.standard_normal((4, 3))


def check(f, *args):
    """Finite differences (chainrule.check_grads) agree with chainrule's gradient."""
    assert cr.check_grads(f, *args, order=1).passed


# ---------------------------------------------------------------------------------------------
# t[idx] = value
# ---------------------------------------------------------------------------------------------


def test_slice_assignment_gradients_reach_the_tensor_and_the_values():
    x, v = rng.standard_normal((4, 3)), rng.standard_normal((2, 3))

    def f(x, v):
        u = x * 1.0
        u[1:3] = v
        return (u**2 * C).sum()

    check(f, x, v)
    gx, gv = cr.grad(f, argnums=(0, 1))(x, v)
    u = x.copy()
    u[1:3] = v
    expected_x = 2 * u * C
    expected_x[1:3] = 0  # overwritten: no influence on the result
    numpy.testing.assert_allclose(gx, expected_x, rtol=1e-14)
    numpy.testing.assert_allclose(gv, (2 * u * C)[1:3], rtol=1e-14)


@pytest.mark.parametrize(
    "index",
    [
        (1,),
        (slice(None), 2),
        (numpy.array([0, 3]),),
        (numpy.array([0, 2]), numpy.array([1, 1])),
        (Ellipsis, slice(0, 2)),
        (numpy.array([True, False, True, False]),),
    ],
    ids=["int", "column", "rows", "points", "ellipsis", "row-mask"],
)
def test_assignment_with_every_kind_of_index(index):
    x = rng.standard_normal((4, 3))
    v = rng.standard_normal(numpy.zeros((4, 3))[index].shape)

    def f(x, v):
        u = x.copy()
        u[index] = v
        return (numpy.sin(u) * C).sum()

    check(f, x, v)


def test_assigning_a_broadcast_value_sums_its_gradient():
    x, s = rng.standard_normal((4, 3)), numpy.array(0.7)

    def f(x, s):
        u = x.copy()
        u[:, 1] = s  # one value written into four places
        return (u * C).sum()

    check(f, x, s)
    assert float(cr.grad(f, argnums=1)(x, s)) == pytest.approx(C[:, 1].sum(), rel=1e-14)


def test_mask_assignment_of_zero_is_a_relu():
    x = rng.uniform(0.2, 2.0, (4, 3)) * rng.choice([-1.0, 1.0], (4, 3))

    def f(x):
        u = x * 1.0
        u[u < 0] = 0  # the mask is computed from values
        return (u * C).sum()

    check(f, x)
    numpy.testing.assert_array_equal(cr.grad(f)(x), C * (x > 0))


def test_mask_assignment_of_a_tensor():
    x, v = rng.standard_normal((4, 3)), rng.standard_normal(5)
    mask = numpy.zeros((4, 3), bool)
    mask.flat[[0, 4, 5, 9, 11]] = True

    def f(x, v):
        u = x.copy()
        u[mask] = v**2
        return (u * C).sum()

    check(f, x, v)
    numpy.testing.assert_allclose(cr.grad(f, argnums=1)(x, v), 2 * v * C[mask], rtol=1e-14)


def test_a_repeated_index_gives_gradient_only_to_the_value_that_lands():
    x, v = numpy.array([1.0, 2.0, 3.0]), numpy.array([10.0, 20.0, 30.0])
    w = numpy.array([1.0, 2.0, 3.0])

    def f(x, v):
        u = x.copy()
        u[numpy.array([0, 0, 2])] = v  # NumPy: u[0] = v[1] (the last write wins)
        return (u * w).sum()

    assert f(x, v) == 20.0 * 1 + 2.0 * 2 + 30.0 * 3  # u = [v[1], x[1], v[2]]
    numpy.testing.assert_array_equal(cr.grad(f, argnums=1)(x, v), [0.0, 1.0, 3.0])


# ---------------------------------------------------------------------------------------------
# augmented assignment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "**=", "@="])
def test_augmented_assignment_rebinds_and_leaves_the_original_alone(op):
    x = rng.uniform(0.5, 2.0, (3, 3))
    u = rng.uniform(0.5, 2.0, (3, 3))
    namespace = {"numpy": numpy}
    exec(f"def f(x, u):\n    t = x\n    t {op} u\n    return t", namespace)
    f = namespace["f"]
    xt = cr.tensor(x, requires_grad=True)
    ut = cr.tensor(u, requires_grad=True)
    t = f(xt, ut)
    assert t is not xt
    numpy.testing.assert_array_equal(xt.data, x)  # the original keeps its values
    expected = f(x.copy(), u)  # NumPy's own in-place result
    numpy.testing.assert_allclose(t.data, expected, rtol=1e-15)
    # (finite differences call f on plain arrays, which the operator would modify: copy them)
    check(lambda x, u: (f(x.copy(), u) * C[:3]).sum(), x, u)


def test_a_plain_accumulator_updated_with_a_tensor_becomes_the_recorded_result():
    # `a += x` with `a` a plain array: the name is rebound to the recorded sum (as for tensors),
    # and the array's memory gets the new values for any other reference to it
    a = numpy.ones(3)
    other_reference = a
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a += x
    assert isinstance(a, cr.Tensor)
    numpy.testing.assert_array_equal(other_reference, [2.0, 3.0, 4.0])
    a *= x  # a is a tensor now: an ordinary recorded update
    (a * numpy.array([1.0, 10.0, 100.0])).sum().backward()
    # d/dx [(1 + x) * x] = 1 + 2x, weighted
    numpy.testing.assert_array_equal(x.grad, [3.0, 50.0, 700.0])


def test_an_explicit_out_into_a_plain_array_is_refused():
    a = numpy.zeros(3)
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"out= is not supported.*y = numpy\.add"):
        numpy.add(a, x, out=a)
    numpy.testing.assert_array_equal(a, 0.0)
    with pytest.raises(TypeError, match="written into a plain NumPy array"):
        a[1:] = x[1:] * 2


def _chain(exc):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.mark.parametrize(
    "write",
    [
        "out[0] = x[0] * 2",  # NumPy calls float(); it wraps our error in its own
        "out[1] += x[0]",
        "out[0:1] = x[0] * 2",  # NumPy calls __array__()
        "out[[0, 2]] = x[1]",
        "out[out > -1] = x[2]",
    ],
)
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_a_tensor_written_into_a_plain_array_is_refused(write, dtype):
    out = numpy.zeros(3, dtype)
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises((TypeError, ValueError)) as info:
        exec(write, {"out": out, "x": x})
    messages = [str(e) for e in _chain(info.value)]
    assert any("written into a plain NumPy array" in m for m in messages), messages
    assert (out == 0).all()  # nothing was stored


def test_float_of_a_tensor_that_requires_grad_still_works():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (x**2).sum()
    assert float(loss) == 14.0  # logging a loss
    out = numpy.zeros(3)
    out[0] = float(loss)  # storing the value on purpose
    out[1] = loss.detach()
    out[2] = loss.item()
    assert out.tolist() == [14.0, 14.0, 14.0]
    with cr.no_grad():  # nothing is recorded, nothing can be lost
        out[0] = x[0]
    assert out[0] == 1.0
    assert complex(x[1]) == 2.0


# ---------------------------------------------------------------------------------------------
# out[i] = ... in a loop
# ---------------------------------------------------------------------------------------------


def test_filling_an_output_tensor_in_a_loop():
    x, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))

    def f(x, W):
        out = cr.tensor(numpy.zeros((4, 3)))  # a constant to write into
        for i in range(4):
            out[i] = numpy.tanh(x[i] @ W) * (i + 1.0)
        return (out * C).sum()

    check(f, x, W)
    gx, gW = cr.grad(f, argnums=(0, 1))(x, W)
    d = (1 - numpy.tanh(x @ W) ** 2) * numpy.arange(1.0, 5.0)[:, None] * C
    numpy.testing.assert_allclose(gW, x.T @ d, rtol=1e-13)
    numpy.testing.assert_allclose(gx, d @ W.T, rtol=1e-13)


def test_accumulating_into_an_output_in_a_loop():
    # out[:] += v reads out and writes it back; every read of the old value feeds the write,
    # so the read is rewired to the old value and the gradient is exact
    x = rng.standard_normal((4, 3))

    def accumulate(x):
        out = cr.tensor(numpy.zeros(3))
        for i in range(4):
            out[:] += x[i] ** 2
        return out.sum()

    check(accumulate, x)
    numpy.testing.assert_allclose(cr.grad(accumulate)(x), 2 * x, rtol=1e-15)


def test_a_recurrence_written_into_its_own_output():
    x = rng.standard_normal(5)

    def scan(x):
        out = x * 1.0
        for i in range(1, 5):
            out[i] = out[i - 1] * 0.5 + x[i]
        return out.sum()

    # d sum / d x[j] = sum over i >= j of 0.5 ** (i - j)
    expected = [sum(0.5**k for k in range(5 - j)) for j in range(5)]
    numpy.testing.assert_allclose(cr.grad(scan)(x), expected, rtol=1e-15)
    check(scan, x)


def test_a_read_held_in_a_variable_keeps_the_old_value_after_the_write():
    # s = sum(2x) is read before d[0] = 5; after it d = [5, 2 x1]: f = 2 x0 + 2 x1 + 5 + 2 x1
    def f(x):
        d = x * 2
        s = d.sum()  # reads the old d, and is used after the write
        d[0] = 5.0
        return s + d.sum()

    numpy.testing.assert_allclose(cr.grad(f)(numpy.array([1.0, 2.0])), [2.0, 4.0])
    check(f, numpy.array([1.0, 2.0]))

    # the SVM idiom of course code: the loss reads the margins, then the margins are reused as
    # the backward pass's mask (scores[scores > 0] = 1). loss = sum(max(0, s - s_y + 1)) / N.
    def svm(W, X, y):
        scores = X @ W
        correct = scores[numpy.arange(len(y)), y]
        scores = scores - correct.reshape(-1, 1) + 1.0
        scores[scores <= 0] = 0
        scores[numpy.arange(len(y)), y] = 0
        loss = numpy.sum(scores) / len(y)
        scores[scores > 0] = 1  # the hand-written backward starts here, reusing the buffer
        return loss + 0.0 * scores.sum()

    X, y = rng.standard_normal((6, 3)), numpy.array([0, 2, 1, 1, 0, 2])
    check(lambda W: svm(W, X, y), rng.standard_normal((3, 3)))


@pytest.mark.parametrize("read", [lambda y: y * 3.0, lambda y: y**2, numpy.sin])
def test_a_read_before_a_write_under_jit_vmap_and_explain(read):
    # z reads y, then y is written: jit and vmap differentiate inside their trace, whose reads
    # are pointed at the old value before the walk (they used to reach the written one)
    def f(x):
        y = x * 1.0
        z = read(y)
        y[0] = 0.0
        return z.sum() + 0.5 * y.sum()

    x = numpy.array([1.0, 2.0, 3.0, 4.0])
    g = cr.grad(f)(x)
    # by hand: d/dx sum(read(x)) + 0.5 for every element but the overwritten first
    eps = 1e-6
    want = (read(x + eps) - read(x - eps)) / (2 * eps) + numpy.array([0.0, 0.5, 0.5, 0.5])
    numpy.testing.assert_allclose(g, want, rtol=1e-8)
    numpy.testing.assert_array_equal(cr.jit(cr.grad(f))(x), g)
    numpy.testing.assert_array_equal(cr.vmap(cr.grad(f))(numpy.stack([x, x]))[1], g)
    ex = cr.explain(f, x)
    ns: dict = {}
    exec(ex.to_python(), ns)
    numpy.testing.assert_allclose(ns["backward"](x)[1]["x"], g, rtol=1e-15)


def test_a_swap_of_slices_is_refused_everywhere_instead_of_hanging():
    # the reads y[2:], y[:2] are views of y that the writes change: refused eagerly; under
    # jit and vmap the walk inside the trace used to follow the written value in a cycle
    import signal

    def f(x):
        y = x * 1.0
        y[:2], y[2:] = y[2:] * 1.0, y[:2] * 2.0
        return (y * numpy.arange(4)).sum()

    def stop(*_):
        raise TimeoutError("the walk did not end")

    x = numpy.arange(1.0, 5.0)
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(30)
    try:
        for transform in (cr.grad, lambda f: cr.jit(cr.grad(f))):
            with pytest.raises(RuntimeError, match="already read"):
                transform(f)(x)
        with pytest.raises(RuntimeError, match="already read"):
            cr.vmap(cr.grad(f))(numpy.stack([x, x]))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_explain_shows_the_statements_a_gradient_alias_reads():
    # y = x * 1.0 is shown as x, so dx is the statement dy; the lines dy reads must be shown
    def f(x):
        y = x * 1.0
        return (y * 3.0).sum()

    text = str(cr.explain(f, numpy.arange(1.0, 5.0)))
    backward = text.split("Backward pass")[1].split("Notes")[0]
    names = {ln.split("=")[0].strip() for ln in backward.strip().splitlines()[1:]}
    for ln in backward.strip().splitlines()[1:]:
        rhs = ln.split("=", 1)[1].split("#")[0]
        for word in __import__("re").findall(r"\b(d\w+)\b", rhs):
            assert word in names, f"{word} is read but never shown:\n{text}"


def test_a_read_the_write_cannot_see_still_refuses_it():
    def f(x):
        d = x * 2
        (d * 3).sum()  # read, and the result dropped: it cannot be found, so it still counts
        d[0] = 5.0
        return d.sum()

    with pytest.raises(RuntimeError, match="already read.*copy"):
        cr.grad(f)(numpy.array([1.0, 2.0]))


def test_the_rnn_idiom_of_subtracting_one_at_the_target():
    # dy = probabilities.copy(); dy[target] -= 1 (the softmax gradient of char-rnn and CS231n)
    z = rng.standard_normal(5)

    def loss_grad_dot(z):
        p = numpy.exp(z) / numpy.exp(z).sum()
        dy = numpy.copy(p)
        dy[2] -= 1
        return (dy * numpy.arange(5.0)).sum()

    check(loss_grad_dot, z)


# ---------------------------------------------------------------------------------------------
# the refusals
# ---------------------------------------------------------------------------------------------


def test_assigning_into_a_leaf_that_requires_grad_is_refused_but_allowed_under_no_grad():
    w = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w[0] = 5.0
    numpy.testing.assert_array_equal(w.data, [1.0, 2.0, 3.0])
    with cr.no_grad():
        w[0] = 5.0  # a parameter update: not recorded
    numpy.testing.assert_array_equal(w.data, [5.0, 2.0, 3.0])
    assert w.is_leaf and w.requires_grad
    (w * w).sum().backward()
    numpy.testing.assert_array_equal(w.grad, [10.0, 4.0, 6.0])


def test_assigning_into_a_tensor_already_read_is_refused_and_changes_nothing():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    u = x * 1.0
    kept = types.SimpleNamespace(y=(u * u).sum())  # read u; kept where the write cannot look
    with pytest.raises(RuntimeError, match="already read"):
        u[0] = 10.0
    y = kept.y
    numpy.testing.assert_array_equal(u.data, [1.0, 2.0, 3.0])
    y.backward()
    numpy.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


# ---------------------------------------------------------------------------------------------
# copy semantics (docs/guarantees.md)
# ---------------------------------------------------------------------------------------------


def test_tensor_copies_its_input():
    a = numpy.array([1.0, 2.0])
    w = cr.tensor([3.0, 4.0], requires_grad=True)
    t = cr.tensor(a)
    y = (w * t).sum()
    a[0] = 100.0  # the original changes, the tensor not
    y.backward()
    numpy.testing.assert_array_equal(t.data, [1.0, 2.0])
    numpy.testing.assert_array_equal(w.grad, [1.0, 2.0])


def test_a_plain_array_constant_is_read_at_backward_time():
    c = numpy.array([1.0, 2.0])
    w = cr.tensor([3.0, 4.0], requires_grad=True)
    y = (w * c).sum()  # c is recorded by reference
    c[0] = 100.0
    y.backward()
    numpy.testing.assert_array_equal(w.grad, [100.0, 2.0])


def test_writing_into_data_is_outside_the_graph_and_rebinding_is_safe():
    w = cr.tensor([3.0, 4.0], requires_grad=True)
    x = cr.tensor([1.0, 2.0])
    y = (w * x).sum()
    x.data[0] = 100.0  # in place: the recorded array changes
    y.backward()
    numpy.testing.assert_array_equal(w.grad, [100.0, 2.0])
    w.grad = None
    x = cr.tensor([1.0, 2.0])
    y = (w * x).sum()
    x.data = numpy.array([100.0, 100.0])  # rebinding: the recorded array stays
    y.backward()
    numpy.testing.assert_array_equal(w.grad, [1.0, 2.0])


@pytest.mark.parametrize(
    "write",
    [
        lambda y: y[1:].__setitem__(slice(None), 0.0),  # v = y[1:]; v[:] = 0
        lambda y: y.reshape(2, 2).__setitem__((0, 1), 7.0),
        lambda y: y.T.__setitem__(0, 1.0),
        lambda y: numpy.exp(y[:2], out=y[2:]),
    ],
)
def test_a_write_into_a_view_of_a_tensor_is_refused(write):
    # NumPy's write would change y too; chainrule's functional write would not: refused
    def f(x):
        y = x * 1.0
        write(y)
        return y.sum()

    with pytest.raises(RuntimeError, match="view of another tensor"):
        cr.grad(f)(numpy.arange(1.0, 5.0))


def test_a_write_into_a_tensor_whose_view_is_used_later_is_refused():
    def f(x):
        y = x * 1.0
        v = y[::2]  # a view: NumPy would show the write through it
        y[0] = 5.0
        return v.sum()

    with pytest.raises(RuntimeError, match="a view of it"):
        cr.grad(f)(numpy.arange(1.0, 5.0))


def test_writes_that_no_view_can_observe_still_work():
    # a copy of the slice, the slice written through the tensor itself, and out[:] += v
    # (whose view is consumed by the write itself): NumPy's values and gradients
    def f(x):
        y = x * 1.0
        v = y[1:].copy()
        v[:] = 0.0
        y[:2] = 2.0 * x[2:]
        y[:] += x
        return (y * numpy.arange(4.0)).sum() + v.sum()

    x = numpy.arange(1.0, 5.0)
    # by hand: y = [2 x2 + x0, 2 x3 + x1, 2 x2, 2 x3], weighted by 0, 1, 2, 3
    numpy.testing.assert_allclose(cr.grad(f)(x), [0.0, 1.0, 2 * 2, 2 * 1 + 2 * 3])


def test_a_write_into_a_detached_value_under_jit_is_a_write_into_a_new_value():
    # detach() while tracing records a stop_gradient that holds the same array: not a view the
    # user made, so the write is allowed there as it is eagerly (d = 2x with d[0] = 5, by hand)
    def f(x):
        d = (x * 2.0).detach()
        d[0] = 5.0
        return (x * d).sum()

    x = numpy.arange(1.0, 4.0)
    numpy.testing.assert_array_equal(cr.grad(f)(x), [5.0, 4.0, 6.0])
    numpy.testing.assert_array_equal(cr.jit(cr.grad(f))(x), [5.0, 4.0, 6.0])
