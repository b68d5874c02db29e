"""Long programs work in every reader, as they do eagerly: no recursion limit in writing,
compiling or explaining a chain of thousands of operations (an RNN unrolled for many steps, a
high-degree Horner polynomial)."""

from __future__ import annotations

import warnings

import numpy
import pytest

import chainrule as cr
from chainrule.program.codegen import MAX_INLINE_DEPTH


def recurrence(steps):
    def f(x):
        h = x
        for _ in range(steps):
            h = numpy.tanh(h * 0.5 + 0.1)
        return h.sum()

    return f


def horner(degree):
    coefficients = numpy.linspace(-1, 1, degree + 1) / degree

    def p(x):
        y = 0 * x + coefficients[0]
        for c in coefficients[1:]:
            y = y * x + c
        return y.sum()

    return p


X = numpy.array([0.3, -0.2, 0.9])


@pytest.mark.parametrize("fun", [recurrence(3000), horner(600)], ids=["rnn", "horner"])
def test_jit_of_a_long_chain_equals_eager(fun):
    eager = cr.value_and_grad(fun)
    v_e, g_e = eager(X)
    v_j, g_j = cr.jit(eager)(X)
    numpy.testing.assert_allclose(v_j, v_e, rtol=1e-13)
    numpy.testing.assert_allclose(g_j, g_e, rtol=1e-13)


def test_numba_jit_of_a_long_chain_equals_eager():
    pytest.importorskip("numba")
    fun = recurrence(150)  # (Numba's compile time grows fast with the program's length)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cr.JitFallbackWarning)  # compiled, not fallen back
        v = cr.jit(fun, backend="numba")(X)
    numpy.testing.assert_allclose(v, fun(X), rtol=1e-12)


def test_explain_of_a_long_chain_runs_and_its_code_is_right():
    fun = recurrence(2000)
    e = cr.explain(fun, X)
    ns: dict = {}
    exec(e.to_python(), ns)
    exported = [v for k, v in ns.items() if callable(v) and not k.startswith("_")][-1]
    value, grads = exported(X)
    v_e, g_e = cr.value_and_grad(fun)(X)
    numpy.testing.assert_allclose(value, v_e, rtol=1e-13)
    numpy.testing.assert_allclose(grads["x"], g_e, rtol=1e-13)
    # no line nests more than the inline limit (a chain is cut into statements)
    assert max(line.count("numpy.tanh(") for line in e.to_python().splitlines()) <= (
        MAX_INLINE_DEPTH
    )


def test_vmap_of_grad_of_a_long_chain():
    fun = recurrence(2000)
    batch = numpy.stack([X, 2 * X])
    got = cr.vmap(cr.grad(fun))(batch)
    for row, x in zip(got, batch):
        numpy.testing.assert_allclose(row, cr.grad(fun)(x), rtol=1e-13)
