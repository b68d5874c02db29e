"""Backward plans (engine/plans.py): a graph walked before is walked by straight-line code.

A plan must give the plain walk's gradients bit for bit, and a graph of any other structure must
never run through it. The plain walk (plans off) is the reference: a separate implementation,
itself checked against finite differences and hand derivations elsewhere; a few checks here use
finite differences too.
"""

from __future__ import annotations

import numpy
import pytest
from op_cases import fd_grad

import chainrule as cr
from chainrule.engine import graph, plans


@pytest.fixture
def counted(monkeypatch):
    """Plans built afresh for this test, and a count of the walks they did."""
    plans.clear()
    hits = []
    planner = plans.walk

    def counting(*args):
        found = planner(*args)
        hits.append(found is not None)
        return found

    monkeypatch.setattr(graph, "PLANNER", counting)
    yield hits
    plans.clear()


def plain(monkeypatch):
    monkeypatch.setattr(graph, "PLANNER", None)


# --- random programs ----------------------------------------------------------------------------


def _program(seed):
    """A random program over leaves x (3, 4), y (3, 4), b (4,), M (4, 4): a chain of steps, each
    taking one or two earlier values (so values are read again, sometimes as x * x), with
    broadcasting, indexing, variadic operations, parameters and constants."""
    rng = numpy.random.default_rng(seed)
    steps = []
    for _ in range(int(rng.integers(4, 12))):
        steps.append((int(rng.integers(0, 17)), rng.random(), rng.random()))
    picks = [int(rng.integers(0, 4)) for _ in range(3)]

    def f(x, y, b, M):
        vals = [x, y]
        for op, r1, r2 in steps:
            u = vals[int(r1 * len(vals))]
            v = vals[int(r2 * len(vals))]
            if op == 0:
                z = numpy.tanh(u)
            elif op == 1:
                z = -u
            elif op == 2:
                z = u * u
            elif op == 3:
                z = u * v
            elif op == 4:
                z = u - v
            elif op == 5:
                z = u + b
            elif op == 6:
                z = numpy.maximum(u, 0.1)
            elif op == 7:
                z = u[::-1] + v[0]
            elif op == 8:
                z = numpy.concatenate([u[:1], v[1:]])
            elif op == 9:
                z = numpy.stack([u, v, u]).sum(axis=0)
            elif op == 10:
                z = u / (1.0 + v * v)
            elif op == 11:
                z = numpy.where(u > 0, u, v)
            elif op == 12:
                z = u @ M
            elif op == 13:
                z = u - u.mean(axis=0, keepdims=True)
            elif op == 14:
                z = u + u
            elif op == 15:
                z = u * 0.5 + numpy.exp(0.1 * v)
            else:
                z = numpy.einsum("ij,jk->ik", u, M) * 0.1
            vals.append(z)
        total = (vals[-1] ** 2).sum()
        for p in picks:
            total = total + vals[p % len(vals)].mean()
        return total

    return f


def _inputs(seed):
    rng = numpy.random.default_rng(1000 + seed)
    return [
        rng.standard_normal((3, 4)),
        rng.standard_normal((3, 4)),
        rng.standard_normal(4),
        rng.standard_normal((4, 4)) * 0.5,
    ]


def _backward_grads(f, arrays):
    ts = [cr.tensor(a, requires_grad=True) for a in arrays]
    f(*ts).backward()
    return [t.grad for t in ts]


def _same_bits(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:  # a leaf the program does not read
            assert g is None
            continue
        assert g.dtype == w.dtype and g.shape == w.shape
        assert numpy.array_equal(g, w), numpy.max(numpy.abs(g - w))


@pytest.mark.parametrize("seed", range(40))
def test_plans_give_the_plain_walks_bits_on_random_programs(seed, counted, monkeypatch):
    f = _program(seed)
    arrays = _inputs(seed)
    vg = cr.value_and_grad(f, argnums=(0, 1, 2, 3))
    with monkeypatch.context() as m:
        plain(m)
        want_bw = _backward_grads(f, arrays)
        want_vg = vg(*arrays)[1]
    for _ in range(3):  # the second walk of a structure builds its plan, the third reuses it
        _same_bits(_backward_grads(f, arrays), want_bw)
        _same_bits(list(vg(*arrays)[1]), list(want_vg))
    assert counted[-2:] == [True, True]  # the last walks went through plans


def test_random_programs_sharing_a_root_never_run_each_others_plans(counted, monkeypatch):
    # every program ends in a sum: the same plan key; they are walked in turn, so each walk
    # first meets the plans of the others
    programs = [(_program(s), _inputs(s)) for s in range(12)]
    with monkeypatch.context() as m:
        plain(m)
        wants = [_backward_grads(f, a) for f, a in programs]
    for _ in range(3):
        for (f, a), want in zip(programs, wants):
            _same_bits(_backward_grads(f, a), want)
    assert any(counted)


def test_a_plan_matches_finite_differences(counted):
    f = _program(7)
    x, y, b, M = _inputs(7)
    for _ in range(3):
        gx = _backward_grads(f, [x, y, b, M])[0]
    numpy.testing.assert_allclose(gx, fd_grad(lambda v: f(v, y, b, M), x), rtol=1e-6, atol=1e-8)
    assert counted[-1]


# --- graphs that look alike ---------------------------------------------------------------------


def test_a_constant_that_now_requires_grad_gets_its_gradient(counted):
    x = numpy.arange(3.0)
    c = numpy.array([2.0, -1.0, 0.5])
    for _ in range(3):  # a plan for "c is a constant"
        t = cr.tensor(x, requires_grad=True)
        (t * cr.tensor(c)).sum().backward()
    assert counted[-1]
    t, u = cr.tensor(x, requires_grad=True), cr.tensor(c, requires_grad=True)
    (t * u).sum().backward()
    numpy.testing.assert_array_equal(t.grad, c)
    numpy.testing.assert_array_equal(u.grad, x)


def test_a_leaf_that_no_longer_requires_grad_gets_none(counted):
    x = numpy.arange(3.0)
    c = numpy.array([2.0, -1.0, 0.5])
    for _ in range(3):  # a plan for "u is a leaf that requires grad"
        t, u = cr.tensor(x, requires_grad=True), cr.tensor(c, requires_grad=True)
        (t * u).sum().backward()
    assert counted[-1]
    t, u = cr.tensor(x, requires_grad=True), cr.tensor(c)
    (t * u).sum().backward()
    numpy.testing.assert_array_equal(t.grad, c)
    assert u.grad is None


def test_another_operation_in_the_same_place_takes_its_own_plan(counted):
    x = numpy.array([0.3, -1.2, 2.0])
    c = numpy.array([1.5, 2.0, -0.5])
    for _ in range(3):
        for f, df in ((numpy.sin, numpy.cos), (numpy.cos, lambda v: -numpy.sin(v))):
            t, u = cr.tensor(x, requires_grad=True), cr.tensor(c, requires_grad=True)
            (f(t) * u).sum().backward()
            numpy.testing.assert_array_equal(t.grad, df(x) * c)
            numpy.testing.assert_array_equal(u.grad, f(x))
    assert counted[-1]


def test_an_operation_with_and_without_parameters_takes_its_own_plan(counted):
    scaled = cr.primitive(lambda x, factor=1.0: x * factor, name="scaled")
    cr.defvjp(scaled, lambda g, out, x, factor=1.0: g * (factor + 1.0))  # (a wrong rule:
    # it tells the calls with and without factor apart by what they return)
    x = numpy.array([1.0, 2.0])
    for _ in range(3):  # a plan for the call without parameters, then one for the call with
        for kw, want in (({}, 2.0), ({"factor": 3.0}, 4.0)):
            for _ in range(3):
                t = cr.tensor(x, requires_grad=True)
                scaled(t, **kw).sum().backward()
                numpy.testing.assert_array_equal(t.grad, [want, want])
    assert counted[-1]


def test_x_times_x_and_x_times_y_take_their_own_plans(counted):
    x = numpy.array([1.0, -2.0, 3.0])
    y = numpy.array([0.5, 4.0, -1.0])
    for _ in range(3):
        t, u = cr.tensor(x, requires_grad=True), cr.tensor(y, requires_grad=True)
        (t * u).sum().backward()
        numpy.testing.assert_array_equal(t.grad, y)
        numpy.testing.assert_array_equal(u.grad, x)
        s = cr.tensor(x, requires_grad=True)
        (s * s).sum().backward()
        numpy.testing.assert_array_equal(s.grad, 2 * x)
    # one tensor passed for both: x * x through the graph of x * y
    s = cr.tensor(x, requires_grad=True)
    (s * s).sum().backward()
    numpy.testing.assert_array_equal(s.grad, 2 * x)
    assert counted[-1]


def test_the_order_of_recording_is_part_of_the_structure(counted, monkeypatch):
    # one graph recorded in six orders: the walk adds the three terms reaching h in the order
    # their consumers were recorded (newest first), and so must each plan
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal(64)
    makers = [numpy.sin, numpy.cos, lambda h: h * 3.0e7]
    orders = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]

    def f(order):
        t = cr.tensor(x, requires_grad=True)
        h = t * 1.7
        made = {i: makers[i](h) for i in order}
        (made[0] + made[1] + made[2]).sum().backward()
        return t.grad

    with monkeypatch.context() as m:
        plain(m)
        wants = [f(o) for o in orders]
    assert len({w.tobytes() for w in wants}) > 1  # the orders do give other bits
    for _ in range(3):
        for o, want in zip(orders, wants):
            numpy.testing.assert_array_equal(f(o), want)
    assert sum(counted) >= 4  # (plans are kept for four structures sharing a root)


def test_a_freed_graph_still_says_so(counted):
    x = numpy.arange(1.0, 4.0)
    for _ in range(3):
        t = cr.tensor(x, requires_grad=True)
        loss = (numpy.exp(t) * t).sum()
        loss.backward()
    assert counted[-1]
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()
    t = cr.tensor(x, requires_grad=True)
    loss = (numpy.exp(t) * t).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    numpy.testing.assert_allclose(t.grad, 2 * (numpy.exp(x) * (x + 1)), rtol=1e-15)


def test_a_gradient_kept_from_an_earlier_backward_is_not_written_into(counted):
    x = numpy.array([1.0, 2.0])
    for _ in range(3):
        t = cr.tensor(x, requires_grad=True)
        (t * 3.0).sum().backward()
        first = t.grad
        kept = first.copy()
        h = t * 3.0
        (h + h * 2.0).sum().backward()
        numpy.testing.assert_array_equal(first, kept)
        numpy.testing.assert_array_equal(t.grad, kept + 9.0)


def test_leaves_whose_gradients_are_views_of_one_array_get_their_own_memory(counted):
    # batch 1: both biases' gradients are the incoming gradient reshaped (a view of it); the
    # first may keep it, the second must get a copy (else a write into one changes the other),
    # and a broadcast's read-only view is copied too
    W = numpy.array([[1.0, -2.0], [0.5, 3.0]])
    for _ in range(4):
        x = cr.tensor(numpy.array([[1.0, 2.0]]))
        b1 = cr.tensor(numpy.array([0.1, 0.2]), requires_grad=True)
        b2 = cr.tensor(numpy.array([0.3, -0.4]), requires_grad=True)
        c = cr.tensor(numpy.array(0.5), requires_grad=True)
        y = numpy.tanh(x @ W + b1 + b2 + numpy.broadcast_to(c, (1, 2)))
        (y * y).sum().backward()
        want = 2 * y.detach().numpy()[0] * (1 - y.detach().numpy()[0] ** 2)
        for b in (b1, b2):
            numpy.testing.assert_allclose(b.grad, want, rtol=1e-14)
            assert b.grad.flags.writeable
        numpy.testing.assert_allclose(c.grad, want.sum(), rtol=1e-14)
        assert not numpy.shares_memory(b1.grad, b2.grad)
        b1.grad += 1.0  # an optimizer's in-place update of one leaf's gradient
        numpy.testing.assert_allclose(b2.grad, want, rtol=1e-14)
    assert counted[-1]  # the last walks ran through a plan


def test_a_rule_given_again_is_the_one_used(counted):
    twice = cr.primitive(lambda x: 2.0 * x, name="twice")
    cr.defvjp(twice, lambda g, out, x: g * 3.0)  # wrong on purpose: which rule ran shows
    x = numpy.array([1.0, -1.0])
    for _ in range(3):
        t = cr.tensor(x, requires_grad=True)
        twice(t).sum().backward()
        numpy.testing.assert_array_equal(t.grad, [3.0, 3.0])
    assert counted[-1]
    cr.defvjp(twice, lambda g, out, x: g * 2.0)
    t = cr.tensor(x, requires_grad=True)
    twice(t).sum().backward()
    numpy.testing.assert_array_equal(t.grad, [2.0, 2.0])


def test_a_plan_keeps_no_tensor_alive(counted):
    import gc
    import weakref

    x = numpy.arange(4.0)
    refs = []
    for _ in range(3):
        t = cr.tensor(x, requires_grad=True)
        h = numpy.tanh(t) * 2.0
        (h * h).sum().backward()
        refs += [weakref.ref(t), weakref.ref(h)]
    assert counted[-1]
    del t, h
    gc.collect()
    assert all(r() is None for r in refs)


# --- walks to targets (value_and_grad, grad, vjp) -----------------------------------------------


def test_gradients_handed_out_through_plans_have_memory_of_their_own(counted):
    # the same cases as above, through value_and_grad: x + y hands one array to both targets,
    # batch 1 makes the biases' gradients views of one array, a broadcast's is read-only, and
    # d(s)/d(s) is the shared read-only seed; each must come back writable and unshared
    W = numpy.array([[1.0, -2.0], [0.5, 3.0]])
    x = numpy.array([[1.0, 2.0]])

    def f(b1, b2, c, s):
        y = numpy.tanh(x @ W + b1 + b2 + numpy.broadcast_to(c, (1, 2)))
        return (y * y).sum() + s

    vg = cr.value_and_grad(f, argnums=(0, 1, 2, 3))
    for _ in range(4):
        b1, b2, c = numpy.array([0.1, 0.2]), numpy.array([0.3, -0.4]), numpy.array(0.5)
        y = numpy.tanh(x @ W + b1 + b2 + c)[0]
        want = 2 * y * (1 - y * y)  # by hand: d(tanh(z)^2)/dz
        _, grads = vg(b1, b2, c, numpy.array(2.0))
        numpy.testing.assert_allclose(grads[0], want, rtol=1e-14)
        numpy.testing.assert_allclose(grads[1], want, rtol=1e-14)
        numpy.testing.assert_allclose(grads[2], want.sum(), rtol=1e-14)
        assert float(grads[3]) == 1.0
        for i, g in enumerate(grads):
            assert g.flags.writeable
            for h in grads[i + 1 :]:
                assert not numpy.shares_memory(g, h)
        for g in grads:
            g += 100.0  # an optimizer's in-place update: nothing else may change
    assert counted[-1]  # the last walks ran through a plan
    _, again = vg(b1, b2, c, numpy.array(2.0))
    numpy.testing.assert_allclose(again[0], want, rtol=1e-14)
    assert float(again[3]) == 1.0


def test_a_target_reached_twice_in_a_graph_planned_for_two_is_summed(counted):
    # a plan made for (a * 2 + b * 3).sum() with targets a and b stores each one term as it
    # comes; the graph (a * 2 + a * 3).sum() has the same structure (the check does not compare
    # leaves), and its one target must get 2 + 3, not the last term
    for _ in range(4):
        a = cr.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
        b = cr.tensor(numpy.array([3.0, 4.0]), requires_grad=True)
        out = (a * 2.0 + b * 3.0).sum()
        found = graph.backward_pass(out, numpy.float64(1.0), [a, b])
        numpy.testing.assert_array_equal(found[a], [2.0, 2.0])
        numpy.testing.assert_array_equal(found[b], [3.0, 3.0])
    assert counted[-1]
    a = cr.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
    found = graph.backward_pass((a * 2.0 + a * 3.0).sum(), numpy.float64(1.0), [a])
    numpy.testing.assert_array_equal(found[a], [5.0, 5.0])


def test_a_target_reached_by_a_one_term_edge_and_another_edge_is_summed(counted):
    # planned for (a * 2 + b * 3 + b * 4).sum(): a is reached by one term, b by two; the graph
    # (c * 2 + c * 3 + d * 4).sum() has the same structure, c now in a's place and in one of
    # b's, so as many targets are found as planned and only c's sum says whether a term of
    # c was overwritten (by hand: dc = 2 + 3, dd = 4)
    for _ in range(4):
        a = cr.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
        b = cr.tensor(numpy.array([3.0, 4.0]), requires_grad=True)
        found = graph.backward_pass((a * 2.0 + b * 3.0 + b * 4.0).sum(), numpy.float64(1.0), [a, b])
        numpy.testing.assert_array_equal(found[a], [2.0, 2.0])
        numpy.testing.assert_array_equal(found[b], [7.0, 7.0])
    assert counted[-1]
    c = cr.tensor(numpy.array([1.0, 2.0]), requires_grad=True)
    d = cr.tensor(numpy.array([3.0, 4.0]), requires_grad=True)
    found = graph.backward_pass((c * 2.0 + c * 3.0 + d * 4.0).sum(), numpy.float64(1.0), [c, d])
    numpy.testing.assert_array_equal(found[c], [5.0, 5.0])
    numpy.testing.assert_array_equal(found[d], [4.0, 4.0])


@pytest.mark.parametrize("seed", range(0, 40, 4))
def test_value_and_grads_short_path_gives_the_general_paths_bits(seed, monkeypatch):
    # the common call (arrays, no aux) takes transforms._plain_call; with has_aux the same
    # function goes through the general path (pytrees, checks): the same values and gradients,
    # each an array of its own, through plans and without
    f = _program(seed)
    arrays = _inputs(seed)
    short = cr.value_and_grad(f, argnums=(0, 1, 2, 3))
    general = cr.value_and_grad(lambda *a: (f(*a), None), argnums=(0, 1, 2, 3), has_aux=True)
    with monkeypatch.context() as m:
        plain(m)
        (want_v, _), want = general(*arrays)
    for _ in range(3):
        v, got = short(*arrays)
        (gv, _), ggot = general(*arrays)
        assert type(v) is numpy.ndarray and v.shape == () and v == want_v == gv
        _same_bits(list(got), list(want))
        _same_bits(list(ggot), list(want))
        for i, g in enumerate(got):
            assert g.flags.writeable
            for h in got[i + 1 :]:
                assert not numpy.shares_memory(g, h)


def test_a_tensor_the_function_closes_over_is_reached_but_not_a_target(counted):
    # w requires grad and is read inside the function: the walk to x's gradient reaches it as
    # a leaf too (as many leaves found as targets plus one); x's gradient is w (by hand), and
    # w.grad is not touched
    w = cr.tensor(numpy.array([2.0, 3.0]), requires_grad=True)
    vg = cr.value_and_grad(lambda x: (x * w).sum() + (x * x).sum())
    for _ in range(4):
        x = numpy.array([1.0, -1.0])
        v, g = vg(x)
        assert float(v) == 1.0  # (2 - 3) + (1 + 1)
        numpy.testing.assert_array_equal(g, [4.0, 1.0])
        assert w.grad is None
    assert counted[-1]
