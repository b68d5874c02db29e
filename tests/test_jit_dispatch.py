"""jit dispatch: calls whose parameters are lists, tuples or dicts of arrays find their compiled
program through a reader generated for their structure; every way the structure, a shape or a
dtype can change traces again (or is refused) instead of running the wrong program."""

from __future__ import annotations

import collections
import importlib.util

import numpy
import pytest

import chainrule as cr
from chainrule.engine.pytree import NotThisTree, flatten, leaf_reader

BACKENDS = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path))


def loss(p, x):
    # d/dp[0] = x, d/dp[1] = 2 p[1]: derived by hand
    return (p[0] * x).sum() + (p[1] ** 2).sum()


def dict_loss(p, x):
    return (p["w"] * x).sum() + (p["b"] ** 2).sum()


@pytest.mark.parametrize("backend", BACKENDS)
def test_list_dict_tuple_and_nested_parameters_give_the_hand_derived_gradient_every_call(backend):
    rng = numpy.random.default_rng(0)
    f = cr.jit(cr.value_and_grad(loss), backend=backend)
    fd = cr.jit(cr.value_and_grad(dict_loss), backend=backend)
    for _ in range(3):  # new values each call: nothing of the first call is frozen in
        w, b, x = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal(4)
        want = (w * x).sum() + (b**2).sum()
        for p in ([w, b], (w, b)):
            v, g = f(p, x)
            assert type(g) is type(p)
            numpy.testing.assert_allclose(v, want, rtol=1e-13)
            numpy.testing.assert_allclose(g[0], x, rtol=1e-13)
            numpy.testing.assert_allclose(g[1], 2 * b, rtol=1e-13)
        v, g = fd({"w": w, "b": b}, x)
        assert list(g) == ["w", "b"]
        numpy.testing.assert_allclose(g["w"], x, rtol=1e-13)
        numpy.testing.assert_allclose(g["b"], 2 * b, rtol=1e-13)
    assert f.cache_info()["signatures"] == 2  # list and tuple: one trace each
    assert fd.cache_info()["signatures"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_another_structure_shape_or_dtype_traces_again(backend):
    def total(p, x):
        return sum((q * x).sum() for q in p)  # d/dq = x for each q

    f = cr.jit(cr.grad(total), backend=backend)
    x = numpy.arange(3.0)
    two = [numpy.ones(3), numpy.ones(3)]
    assert len(f(two, x)) == 2
    g = f([numpy.ones(3)] * 3, x)  # one more leaf
    assert len(g) == 3 and all(numpy.array_equal(gi, x) for gi in g)
    g = f([numpy.ones((2, 3)), numpy.ones(3)], x)  # another shape
    numpy.testing.assert_array_equal(g[0], numpy.broadcast_to(x, (2, 3)))
    g = f([numpy.ones(3, numpy.float32), numpy.ones(3)], x.astype(numpy.float32))
    assert g[0].dtype == numpy.float32
    assert len(f(two, x)) == 2  # the first structure still finds its program
    assert f.cache_info()["signatures"] == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_dict_key_order_and_keys_are_part_of_the_structure(backend):
    def first(p):
        return (next(iter(p.values())) ** 2).sum()  # depends on the key order

    f = cr.jit(cr.grad(first), backend=backend)
    a, b = numpy.full(2, 3.0), numpy.full(2, 5.0)
    g = f({"a": a, "b": b})
    numpy.testing.assert_array_equal(g["a"], 2 * a)
    numpy.testing.assert_array_equal(g["b"], 0 * b)
    g = f({"b": b, "a": a})  # same keys, other order: another program
    assert list(g) == ["b", "a"]
    numpy.testing.assert_array_equal(g["b"], 2 * b)
    numpy.testing.assert_array_equal(g["a"], 0 * a)
    g = f({"a": a, "c": b})  # another key
    assert list(g) == ["a", "c"]
    assert f.cache_info()["signatures"] == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_positional_and_tree_calls_interleave(backend):
    def pos(w, b, x):
        return (w * x).sum() + (b**2).sum()

    f = cr.jit(cr.value_and_grad(loss), backend=backend)
    fp = cr.jit(cr.grad(pos, argnums=(0, 1)), backend=backend)
    w, b, x = numpy.arange(4.0), numpy.ones(3), numpy.full(4, 2.0)
    for _ in range(2):
        numpy.testing.assert_array_equal(f([w, b], x)[1][0], x)
        numpy.testing.assert_array_equal(fp(w, b, x)[1], 2 * b)
        numpy.testing.assert_array_equal(f((w, b), x)[1][1], 2 * b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_leaves_that_are_not_arrays_take_the_general_path(backend):
    f = cr.jit(cr.grad(loss), backend=backend)
    w, b, x = numpy.arange(4.0), numpy.ones(3), numpy.full(4, 2.0)
    f([w, b], x)
    g = f([cr.tensor(w), b], x)  # a Tensor leaf
    numpy.testing.assert_array_equal(g[0], x)
    with pytest.raises(TypeError, match="argument 0 mixes arrays with Python values"):
        f([w, 1.0], x)
    with pytest.raises(TypeError, match="argument 0 mixes arrays with Python values"):
        f([w, 1.0], x)  # still refused: nothing of the refusal was cached
    numpy.testing.assert_array_equal(f([w, b], x)[1], 2 * b)


def test_the_reader_checks_every_container_and_returns_the_leaves_in_flatten_order():
    Pair = collections.namedtuple("Pair", "u v")
    tree = {"a": [1, (2, 3)], "b": Pair(4, None), "c": 5}
    read = leaf_reader((flatten(tree)[1], None))
    assert read(tree, 6) == (*flatten(tree)[0], 6)
    bad = [
        {"a": [1, [2, 3]], "b": Pair(4, None), "c": 5},  # a tuple became a list
        {"a": [1, (2, 3, 0)], "b": Pair(4, None), "c": 5},  # one more leaf
        {"a": [1, (2, 3)], "b": (4, None), "c": 5},  # a namedtuple became a tuple
        {"a": [1, (2, 3)], "b": Pair(4, 0), "c": 5},  # None became a leaf
        {"a": [1, (2, 3)], "c": 5, "b": Pair(4, None)},  # key order
        {"a": [1, (2, 3)], "b": Pair(4, None)},  # a key less
    ]
    for t in bad:
        with pytest.raises(NotThisTree):
            read(t, 6)
    with pytest.raises(TypeError):
        read(tree)  # another number of arguments


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_repeated_tree_call_does_not_flatten_or_build_a_signature(backend, monkeypatch):
    jitmod = importlib.import_module("chainrule.readers.jit")
    f = cr.jit(cr.value_and_grad(dict_loss), backend=backend)
    p, x = {"w": numpy.ones(4), "b": numpy.ones(3)}, numpy.arange(4.0)
    f(p, x)

    def refuse(*a, **k):
        raise AssertionError("flattened again")

    monkeypatch.setattr(jitmod, "flatten", refuse)
    p["b"] = numpy.full(3, 2.0)  # same structure, new values
    v, g = f(p, x)
    assert v == x.sum() + 12.0
    numpy.testing.assert_array_equal(g["b"], numpy.full(3, 4.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_calling_with_alternating_structures_get_their_own_results(backend):
    import threading

    f = cr.jit(cr.grad(loss), backend=backend)
    x = numpy.arange(4.0)
    errors = []

    def work(k):
        try:
            for j in range(200):
                b = numpy.full(3, float(k + j))
                p = [x + k, b] if (j + k) % 2 else (x + k, b)
                g = f(p, x)
                assert type(g) is type(p)
                numpy.testing.assert_array_equal(g[1], 2 * b)
        except BaseException as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_d_leaves_pass_through_outputs_and_odd_layouts_after_a_repeated_call(backend):
    # The Numba glue reads the leaves of a repeated tree call itself: 0-d leaves are passed as
    # scalars, an output that is an input comes back as that leaf, and a transposed or
    # read-only leaf (which the kernel was not compiled for) takes the general path.
    def f(p):
        # d/ds = 2 s, d/dw = t (hand-derived); the second output is the leaf w itself
        return (p["s"] ** 2 + (p["w"] * p["t"]).sum(), p["w"])

    step = cr.jit(cr.value_and_grad(f, has_aux=True), backend=backend)
    rng = numpy.random.default_rng(1)
    for layout in ("c", "c", "transposed", "readonly", "c"):
        s = numpy.array(rng.standard_normal())
        w, t = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
        if layout == "transposed":
            w, t = numpy.ascontiguousarray(w.T).T, numpy.ascontiguousarray(t.T).T
        if layout == "readonly":
            w.flags.writeable = False
        (v, aux), g = step({"s": s, "w": w, "t": t})
        numpy.testing.assert_allclose(v, s**2 + (w * t).sum(), rtol=1e-14)
        numpy.testing.assert_array_equal(aux, w)
        numpy.testing.assert_allclose(g["s"], 2 * s, rtol=1e-14)
        numpy.testing.assert_allclose(g["w"], t, rtol=1e-14)
        numpy.testing.assert_allclose(g["t"], w, rtol=1e-14)
        assert list(g) == ["s", "w", "t"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_dict_keys_that_are_not_strings_come_back_as_the_same_objects(backend):
    key = ("layer", 1)  # not written as a literal into the generated code

    def f(p):
        return (p[key] ** 2).sum() + (p[2] * 3.0).sum()  # d/dp[key] = 2 p[key], d/dp[2] = 3

    step = cr.jit(cr.grad(f), backend=backend)
    a, b = numpy.arange(3.0), numpy.ones(2)
    for _ in range(2):
        g = step({key: a, 2: b})
        assert list(g) == [key, 2]
        numpy.testing.assert_array_equal(g[key], 2 * a)
        numpy.testing.assert_array_equal(g[2], numpy.full(2, 3.0))
