"""vmap: one example's function applied to a batch equals a loop over the batch."""

from __future__ import annotations

import numpy
import pytest
from op_cases import CASES

import chainrule as cr

rng = numpy.random.default_rng(5)
# Per-example functions whose selection depends on values cannot run as one batched program.
VALUE_DEPENDENT = {"getitem-tensor-mask"}
# lstsq: its residuals exist only at full rank, a value a trace cannot follow (test_jit.py)
VALUE_DEPENDENT |= {"lstsq-vector", "lstsq-matrix", "lstsq-residuals", "lstsq-singular-values"}
VALUE_DEPENDENT |= {"roots"}  # strips zero coefficients: its shape follows the values
VMAP_CASES = [c for c in CASES if c.id not in VALUE_DEPENDENT]


def batch_of(x, n=3):
    return numpy.stack([x + 0.01 * i * rng.standard_normal(x.shape) for i in range(n)])


@pytest.mark.parametrize("case", VMAP_CASES, ids=[c.id for c in VMAP_CASES])
def test_vmap_equals_a_loop_for_every_rule(case):
    batch = [batch_of(x) for x in case.inputs]
    got = cr.vmap(case.fun)(*batch)
    expected = numpy.stack([case.fun(*(b[i] for b in batch)) for i in range(3)])
    numpy.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", VMAP_CASES, ids=[c.id for c in VMAP_CASES])
def test_per_example_gradients_for_every_rule(case):
    n = len(case.inputs)
    batch = [batch_of(x) for x in case.inputs]
    g = cr.grad(lambda *a: case.fun(*a).sum(), argnums=tuple(range(n)))
    got = cr.vmap(g)(*batch)
    for k in range(n):
        expected = numpy.stack([g(*(b[i] for b in batch))[k] for i in range(3)])
        numpy.testing.assert_allclose(got[k], expected, rtol=1e-11, atol=1e-12)


def test_per_example_gradients_of_an_mlp_with_unbatched_parameters():
    params = {
        "W1": rng.standard_normal((4, 8)),
        "b1": rng.standard_normal(8),
        "W2": rng.standard_normal((8, 3)),
        "b2": rng.standard_normal(3),
    }
    X = rng.standard_normal((6, 4))
    Y = rng.integers(0, 3, 6)

    def loss(p, x, y):
        h = numpy.maximum(0, x @ p["W1"] + p["b1"])
        z = h @ p["W2"] + p["b2"]
        z = z - z.max()
        return numpy.log(numpy.exp(z).sum()) - (z * (numpy.arange(3) == y)).sum()

    per = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(params, X, Y.astype(float))
    for i in range(6):
        one = cr.grad(loss)(params, X[i], float(Y[i]))
        for k in params:
            numpy.testing.assert_allclose(per[k][i], one[k], rtol=1e-12, atol=1e-13)
    # and the per-example gradients add up to the batch gradient
    total = cr.grad(lambda p: sum(loss(p, X[i], float(Y[i])) for i in range(6)))(params)
    for k in params:
        numpy.testing.assert_allclose(per[k].sum(axis=0), total[k], rtol=1e-11)


def test_in_axes_and_out_axes():
    f = cr.vmap(lambda a, b: a * b, in_axes=(1, None), out_axes=1)
    a = rng.standard_normal((2, 5))
    b = rng.standard_normal(2)
    numpy.testing.assert_allclose(f(a, b), a * b[:, None])


def test_bad_batches_are_explained():
    with pytest.raises(ValueError, match="batch sizes differ"):
        cr.vmap(lambda a, b: a + b)(numpy.ones((2, 3)), numpy.ones((4, 3)))
    with pytest.raises(ValueError, match="no argument is mapped"):
        cr.vmap(numpy.sin, in_axes=None)(numpy.ones(2))


def test_no_builtin_primitive_falls_back_to_a_python_loop(monkeypatch):
    import sys

    module = sys.modules["chainrule.program.vmap"]
    looped = []
    original = module._loop
    monkeypatch.setattr(
        module, "_loop", lambda prim, *a: looped.append(prim.name) or original(prim, *a)
    )
    for case in VMAP_CASES:
        batch = [numpy.stack([x, x]) for x in case.inputs]
        cr.vmap(case.fun)(*batch)
        n = len(case.inputs)
        cr.vmap(cr.grad(lambda *a, f=case.fun: f(*a).sum(), argnums=tuple(range(n))))(*batch)
    assert looped == []


def test_label_indexing_per_example_and_shared():
    def nll(logp, y):
        return -logp[y]

    logp = rng.standard_normal((4, 3))
    y = numpy.array([2, 0, 1, 1])
    numpy.testing.assert_allclose(cr.vmap(nll)(logp, y), -logp[numpy.arange(4), y])
    g = cr.vmap(cr.grad(nll))(logp, y)
    expected = numpy.zeros((4, 3))
    expected[numpy.arange(4), y] = -1
    numpy.testing.assert_array_equal(g, expected)


def test_value_dependent_control_flow_runs_each_example_on_its_own_path():
    # recording the first example and replaying it on the batch would give the second example
    # the first one's branch, loop count and selection: such functions run example by example
    def branch(x):
        if x.sum() > 0:
            return x * 2
        return x * -1

    def repeat(x, n):
        s = 0.0
        for _ in range(int(n)):
            s = s + x
        return s

    xs = numpy.array([[1.0, 2.0], [-3.0, -1.0]])
    numpy.testing.assert_array_equal(cr.vmap(branch)(xs), [[2.0, 4.0], [3.0, 1.0]])
    numpy.testing.assert_array_equal(cr.vmap(repeat)(xs, numpy.array([1, 3])), [[1, 2], [-9, -3]])
    # d/dx of the sum of squares of the positive entries: 2x there, 0 elsewhere (by hand)
    got = cr.vmap(cr.grad(lambda x: (x[x > 0] ** 2).sum()))(xs)
    numpy.testing.assert_array_equal(got, [[2.0, 4.0], [0.0, 0.0]])
