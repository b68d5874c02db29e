"""explain: the backward pass written out, and the exported code that reproduces it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy
import pytest
from op_cases import CASES

import chainrule as cr
from chainrule import seed

PARAMS = ["W1", "W2", "W3", "W4", "B1", "B2", "B3", "B4"]


def seed_explanation():
    return cr.explain(seed.forward, seed.X, seed.T, *seed.PARAMS.values(), wrt=PARAMS)


def test_seed_backward_section_is_the_hand_derived_chain_rule():
    # The derivation of docs/seed.md, written by hand: layer by layer, in the user's names.
    expected = [
        "dY = 2 * (Y - T) / Y.size",
        "dB4 = dY.sum(axis=0)",
        "dA3 = dY @ W4.T",
        "dW4 = A3.T @ dY",
        "dZ3 = dA3 * (Z3 > 0)",
        "dB3 = dZ3.sum(axis=0)",
        "dA2 = dZ3 @ W3.T",
        "dW3 = A2.T @ dZ3",
        "dZ2 = dA2 * (Z2 > 0)",
        "dB2 = dZ2.sum(axis=0)",
        "dA1 = dZ2 @ W2.T",
        "dW2 = A1.T @ dZ2",
        "dZ1 = dA1 * (Z1 > 0)",
        "dB1 = dZ1.sum(axis=0)",
        "dW1 = X.T @ dZ1",
    ]
    assert seed_explanation().backward_lines() == expected


def test_seed_forward_section_uses_the_users_names():
    assert seed_explanation().forward_lines() == [
        "Z1 = X.dot(W1) + B1",
        "A1 = numpy.maximum(0, Z1)",
        "Z2 = A1.dot(W2) + B2",
        "A2 = numpy.maximum(0, Z2)",
        "Z3 = A2.dot(W3) + B3",
        "A3 = numpy.maximum(0, Z3)",
        "Y = A3.dot(W4) + B4",
        "err = ((Y - T) ** 2).mean()",
    ]


def test_text_shows_shapes_and_the_len_X_trap():
    text = str(seed_explanation())
    assert "dW1 = X.T @ dZ1" in text and "# (4, 6)" in text
    assert "Y.size" in text and "len(X)" in text and "one output column" in text


def test_why_writes_the_chain_rule_step_for_relu_and_bias():
    why = seed_explanation().why()
    assert "∂err/∂Z3 ∋ ∂err/∂A3 · ∂A3/∂Z3" in why
    assert "dA3 ⊙ 𝟙[Z3 > 0]" in why
    assert "summed back to B1's shape (6,)" in why
    assert "A3ᵀ · dY" in why


RUNNER = textwrap.dedent("""
    import sys
    sys.modules["chainrule"] = None          # chainrule cannot be imported here
    import json, numpy
    namespace = {}
    exec(open(sys.argv[1]).read(), namespace)
    data = numpy.load(sys.argv[2])
    args = [data[f"a{i}"] for i in range(len(data.files))]
    value, grads = namespace["backward"](*args)
    numpy.savez(sys.argv[3], value=value, **grads)
""")


def test_exported_seed_code_runs_without_chainrule(tmp_path):
    code = seed_explanation().to_python()
    assert "chainrule" not in code.replace("written out by chainrule", "")
    (tmp_path / "backward.py").write_text(code)
    (tmp_path / "runner.py").write_text(RUNNER)
    args = [seed.X, seed.T, *seed.PARAMS.values()]
    numpy.savez(tmp_path / "in.npz", **{f"a{i}": a for i, a in enumerate(args)})
    subprocess.run(
        [
            sys.executable,
            str(tmp_path / "runner.py"),
            str(tmp_path / "backward.py"),
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        check=True,
    )
    out = numpy.load(tmp_path / "out.npz")
    expected = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    for name in PARAMS:
        numpy.testing.assert_allclose(out[name], expected[name], rtol=1e-12, atol=0)
    assert float(out["value"]) == seed.forward(seed.X, seed.T, **seed.PARAMS)


def test_exported_code_guards_the_recorded_shapes():
    namespace: dict = {}
    exec(seed_explanation().to_python(), namespace)
    with pytest.raises(AssertionError, match="derived for shape"):
        namespace["backward"](numpy.ones((2, 4)), seed.T, *seed.PARAMS.values())


VALUE_SHAPED = {"roots"}  # numpy.roots strips zero coefficients, read from the values


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exported_code_reproduces_every_rule(case):
    """For every function with a gradient rule: record it, export it, run it on new inputs."""
    names = [f"x{i}" for i in range(len(case.inputs))]
    fun = _named(case.fun, names)
    if case.id in VALUE_SHAPED:  # the result's shape follows the values: refused, loudly
        with pytest.raises(cr.TracerBoolError, match="values"):
            cr.explain(fun, *case.inputs)
        return
    explanation = cr.explain(fun, *case.inputs)
    namespace: dict = {}
    exec(explanation.to_python(), namespace)
    rng = numpy.random.default_rng(7)
    fresh = [x + 0.01 * rng.standard_normal(x.shape) if x.size else x for x in case.inputs]
    value, grads = namespace["backward"](*fresh)
    total = lambda *a: case.fun(*a).sum()  # noqa: E731
    expected = cr.grad(total, argnums=tuple(range(len(fresh))))(*fresh)
    numpy.testing.assert_allclose(value, case.fun(*fresh), rtol=1e-12, atol=1e-12)
    for name, e in zip(names, expected):
        numpy.testing.assert_allclose(grads[name], e, rtol=1e-10, atol=1e-12, err_msg=name)


def _named(fun, names):
    """``fun`` with parameters called x0, x1, ... (so the exported code has those names)."""
    ns = {"f": fun}
    exec(f"def g({', '.join(names)}):\n    return f({', '.join(names)})", ns)
    return ns["g"]


def test_names_can_be_given_explicitly():
    def f(x):
        h = x * 2.0
        h.name = "doubled"
        return (h**2).sum()

    lines = cr.explain(f, numpy.ones(3)).backward_lines()
    assert any(line.startswith("ddoubled = ") for line in lines)


def test_an_exact_kink_is_pointed_out():
    def relu_loss(z):
        a = numpy.maximum(0, z)
        return a.sum()

    e = cr.explain(relu_loss, numpy.array([-1.0, 0.0, 2.0]))
    assert any("exactly at its kink" in n and "(1,)" in n for n in e.notes)


def test_formats_render():
    e = seed_explanation()
    assert e.to_latex().startswith("\\begin{align*}") and r"\mathbb{1}[Z_{3} > 0]" in e.to_latex()
    assert e.to_markdown().count("```python") == 2
    dot = e.to_dot()
    assert dot.startswith("digraph") and "dW1" in dot and "->" in dot
    assert e._repr_markdown_() == e.to_markdown()


def test_label_indexing_is_written_with_the_labels_name():
    def ce(W, X, y):
        z = X @ W
        logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
        return -logp[numpy.arange(len(y)), y].mean()

    rng = numpy.random.default_rng(4)
    W, X, y = rng.standard_normal((4, 3)), rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    e = cr.explain(ce, W, X, y, wrt="W")
    assert any(", y]" in line for line in e.forward_lines())
    namespace: dict = {}
    exec(e.to_python(), namespace)
    y2 = rng.integers(0, 3, 5)
    _, grads = namespace["backward"](W, X, y2)
    numpy.testing.assert_allclose(grads["W"], cr.grad(ce)(W, X, y2), rtol=1e-12)


def test_the_cross_entropy_gradient_reads_as_people_write_it():
    # logp[arange(n), y]: its gradient is written as an update at (rows, labels), not as
    # numpy.add.at, and the exported code gives eager's gradient for other labels too
    rng = numpy.random.default_rng(3)
    Z, y = rng.standard_normal((5, 3)), numpy.array([0, 2, 1, 2, 2])

    def loss(Z, y):
        S = Z - Z.max(axis=1, keepdims=True)
        logp = S - numpy.log(numpy.exp(S).sum(axis=1, keepdims=True))
        return -logp[numpy.arange(Z.shape[0]), y].mean()

    explanation = cr.explain(loss, Z, y)
    code = explanation.to_python()
    assert "dlogp[numpy.arange(5), y] " in code and "add.at" not in code
    # the text reads in textbook form (softmax - onehot) / N, checked in numbers
    assert "dZ = (numpy.exp(logp) - numpy.eye(logp.shape[1])[y]) / len(y)" in str(explanation)
    namespace: dict = {}
    exec(explanation.to_python(), namespace)
    y2 = numpy.array([1, 1, 1, 0, 2])
    value, grads = namespace["backward"](Z, y2)
    want = cr.grad(loss)(Z, y2)
    numpy.testing.assert_allclose(grads["Z"], want, rtol=1e-12)
    soft = numpy.exp(Z - Z.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    soft[numpy.arange(5), y2] -= 1  # the hand-derived softmax - onehot
    numpy.testing.assert_allclose(grads["Z"], soft / 5, rtol=1e-12, atol=1e-15)


def test_a_function_of_python_floats_alone_is_differentiated_in_them():
    # as grad does: d/dx (x^2 y) = 2xy = 6, d/dy = x^2 = 2.25 at (1.5, 2.0)
    e = cr.explain(lambda x, y: x**2 * y, 1.5, 2.0)
    ns: dict = {}
    exec(e.to_python(), ns)
    _, grads = [v for k, v in ns.items() if callable(v) and not k.startswith("_")][-1](1.5, 2.0)
    numpy.testing.assert_allclose([grads["x"], grads["y"]], [6.0, 2.25])
    # with an array argument present, a Python number stays a constant (unless wrt names it)
    e2 = cr.explain(lambda x, w: (x * w**2).sum(), 1.5, numpy.ones(2))
    assert "dx" not in e2.to_python() and "dw" in e2.to_python()
    e3 = cr.explain(lambda x, w: (x * w**2).sum(), 1.5, numpy.ones(2), wrt="x")
    assert "dx" in e3.to_python()


def test_kink_notes_only_for_values_the_gradient_goes_through():
    # cumprod's rule finds the first zero with a min over integer positions (ties everywhere):
    # no gradient goes through it, so no note; a max of tied values the gradient does go through
    x = numpy.array([1.5, 2.0, 2.5, 3.0])
    assert "tied extreme" not in str(cr.explain(lambda x: numpy.cumprod(x).sum(), x))
    assert "tied extreme" not in str(cr.explain(lambda x: numpy.vander(x, 3).sum(), x))
    tied = numpy.array([1.0, 3.0, 3.0])
    assert "max = max(...) has tied extreme values" in str(cr.explain(lambda x: x.max(), tied))


def test_explain_follows_a_loop_count_taken_from_a_value():
    # range(int(counts[i])) is Python control flow, followed on these inputs as `if` is
    def loss(w, counts):
        total = 0.0
        for i in range(len(counts)):
            for k in range(int(counts[i])):
                total = total + numpy.log(k + w**2)
        return total

    w, counts = numpy.array(1.3), numpy.array([2, 0, 3])
    e = cr.explain(loss, w, counts, wrt="w")
    assert "followed the path" in str(e)
    ns: dict = {}
    exec(e.to_python(), ns)
    value, grads = ns["backward"](w, counts)
    # by hand: d/dw sum log(k + w^2) = sum 2w / (k + w^2) over k < 2 and k < 3
    want = sum(2 * 1.3 / (k + 1.69) for n in counts for k in range(int(n)))
    numpy.testing.assert_allclose(grads["w"], want, rtol=1e-12)
    with pytest.raises(cr.TracerBoolError, match=r"int\(\) of a traced tensor.*chainrule\.jit"):
        cr.jit(loss)(w, counts)
