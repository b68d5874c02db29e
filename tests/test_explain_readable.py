"""explain as a reader sees it: names from the user's code, plain numbers, LaTeX, branches."""

from __future__ import annotations

import re

import numpy
import pytest

import chainrule as cr
from chainrule.cli import main

LAM = 0.1
RNG = numpy.random.default_rng(7)


def dense(x, W, b):
    Z = x @ W + b
    return Z


def relu(Z):
    A = numpy.maximum(0, Z)
    return A


def two_layer(X, T, W1, b1, W2, b2):
    H = relu(dense(X, W1, b1))
    Y = dense(H, W2, b2)
    return ((Y - T) ** 2).mean()


def logreg(w, b, X, y):
    z = X @ w + b
    p = 1 / (1 + numpy.exp(-z))
    return -numpy.mean(y * numpy.log(p) + (1 - y) * numpy.log(1 - p)) + LAM * numpy.sum(w**2)


def rnn(Wx, Wh, X):
    h = numpy.zeros((X.shape[1], Wh.shape[0]))
    for t in range(X.shape[0]):
        h = numpy.tanh(X[t] @ Wx + h @ Wh)
    return (h**2).sum()


def hinge(w, x):
    margin = 1 - x @ w
    if margin > 0:
        loss = margin
    else:
        loss = 0 * margin
    return loss


def two_layer_args():
    return (
        RNG.normal(size=(6, 4)),
        RNG.normal(size=(6, 2)),
        RNG.normal(size=(4, 5)),
        numpy.zeros(5),
        RNG.normal(size=(5, 2)),
        numpy.zeros(2),
    )


def generated(lines):
    return [ln for ln in lines if re.search(r"\bt\d+\b", ln)]


def test_values_made_in_helper_functions_are_named_from_the_helpers_locals():
    e = cr.explain(two_layer, *two_layer_args(), wrt=["W1", "b1", "W2", "b2"])
    assert "Z = X @ W1 + b1" in e.forward_lines()
    assert "dZ = dH * (Z > 0)" in e.backward_lines()
    assert "dW1 = X.T @ dZ" in e.backward_lines()
    assert generated(e.forward_lines() + e.backward_lines()) == []


def test_each_step_of_a_loop_is_named_after_its_variable():
    Wx, Wh, X = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 4)), RNG.normal(size=(3, 2, 3))
    e = cr.explain(rnn, Wx, Wh, X, wrt=["Wx", "Wh"])
    assert e.forward_lines()[:6] == [
        "z_h_1 = X[0] @ Wx + h_0 @ Wh",  # h_0: the user's h = numpy.zeros(...), by name
        "h_1 = numpy.tanh(z_h_1)",
        "z_h_2 = X[1] @ Wx + h_1 @ Wh",
        "h_2 = numpy.tanh(z_h_2)",
        "z_h = X[2] @ Wx + h_2 @ Wh",
        "h = numpy.tanh(z_h)",
    ]
    back = e.backward_lines()
    assert "dz_h = dh * (1 - h ** 2)" in back and "dh_2 = dz_h @ Wh.T" in back
    assert "dWx = X[2].T @ dz_h + X[1].T @ dz_h_2 + X[0].T @ dz_h_1" in back
    assert generated(e.forward_lines() + back) == []


def test_user_constants_by_name_and_numbers_as_plain_literals():
    X, y = RNG.normal(size=(7, 3)), (RNG.random(7) > 0.5).astype(float)
    e = cr.explain(logreg, RNG.normal(size=3), numpy.array(0.0), X, y, wrt=["w", "b"])
    text = str(e)
    assert "LAM * (w ** 2).sum()" in text
    assert "dw = LAM * (2 * w) + X.T @ dz" in e.backward_lines()
    assert "numpy.float64" not in text and "0.1" not in text
    # the exported code stays exact: it matches grad
    ns: dict = {}
    exec(e.to_python(), ns)
    w, b = RNG.normal(size=3), numpy.array(0.3)
    _, grads = ns["backward"](w, b, X, y)
    gw, gb = cr.grad(logreg, argnums=(0, 1))(w, b, X, y)
    numpy.testing.assert_allclose(grads["w"], gw, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(grads["b"], gb, rtol=1e-12, atol=1e-14)


def test_no_negative_zero_is_shown():
    w, x = numpy.array([1.0, 2.0]), numpy.array([1.0, 1.0])  # margin = -2: the else branch
    text = str(cr.explain(hinge, w, x, wrt="w"))
    assert "-0" not in text and "dw = 0 * x" in text


def test_branch_on_a_value_is_followed_and_said():
    w, x = numpy.array([0.1, 0.2]), numpy.array([1.0, 1.0])  # margin = 0.7 > 0
    e = cr.explain(hinge, w, x, wrt="w")
    assert e.forward_lines() == ["margin = 1 - x @ w"]
    assert e.backward_lines() == ["dw = -1 * x"]
    assert any("branch these inputs took" in n for n in e.notes)


def test_jit_still_refuses_a_branch_on_a_value():
    w, x = numpy.array([0.1, 0.2]), numpy.array([1.0, 1.0])
    try:
        cr.jit(hinge)(w, x)
    except cr.TracerBoolError:
        pass
    else:  # pragma: no cover
        raise AssertionError("jit compiled one branch of an if on a value")


def test_latex_names_are_upright_greek_and_hatted():
    def layernorm(gamma, beta, X):
        mu = X.mean(axis=1, keepdims=True)
        Xhat = (X - mu) / numpy.sqrt(((X - mu) ** 2).mean(axis=1, keepdims=True) + 1e-5)
        out = gamma * Xhat + beta
        return (out**2).sum()

    tex = cr.explain(
        layernorm, RNG.normal(size=4), RNG.normal(size=4), RNG.normal(size=(3, 4)), wrt=["gamma"]
    ).to_latex()
    assert r"\mathrm{d}\gamma &=" in tex and r"\hat{X}" in tex and r"\mathrm{out}" in tex
    assert "dgamma" not in tex and "gamma}" not in tex.replace(r"\gamma", "")


def test_latex_writes_size_as_a_function_and_no_numpy_scalars():
    X, y = RNG.normal(size=(7, 3)), (RNG.random(7) > 0.5).astype(float)
    tex = cr.explain(logreg, RNG.normal(size=3), numpy.array(0.0), X, y, wrt="w").to_latex()
    assert r"\operatorname{len}(y)" in tex and "len(y)" not in tex.replace(
        r"\operatorname{len}(y)", ""
    )
    assert "float64" not in tex and r"\mathrm{LAM}" in tex


def test_a_four_d_permutation_is_not_a_transpose_mark():
    def f(K, X):
        return (numpy.tensordot(X, K, axes=((1,), (0,))).transpose((0, 2, 3, 1)) ** 2).sum()

    K, X = RNG.normal(size=(2, 3, 4, 5)), RNG.normal(size=(6, 2))
    tex = cr.explain(f, K, X, wrt="K").to_latex()
    assert r"^{\top}" not in tex and r"\operatorname{transpose}" in tex


def test_long_lines_are_wrapped_not_padding_the_table():
    def f(w, x):
        return (
            numpy.tanh(x * w) + numpy.sin(x * w) + numpy.cos(x * w) + numpy.exp(x * w) * x
            + numpy.log1p(x * w * x * w) * numpy.arctan(x * w) + numpy.sinh(x * w / 3)
        ).sum()  # fmt: skip

    text = str(cr.explain(f, numpy.ones(3), numpy.ones(3), wrt="w"))
    assert max(len(ln) for ln in text.splitlines() if not ln.startswith("  - ")) <= 120


def test_demo_why_works_and_prints_notes_once(capsys):
    assert main(["demo", "--explain", "--why"]) == 0
    out = capsys.readouterr().out
    assert out.count("Recorded for these inputs") == 1
    assert "∂err/∂W4" in out
    assert not re.search(r"-0\.0*(?![0-9])", out)  # no negative zero
    assert main(["demo", "--why"]) == 0
    assert "∂err/∂W4" in capsys.readouterr().out


def test_jupyter_renders_explanations_and_reports_as_html():
    import html

    args = two_layer_args()
    e = cr.explain(two_layer, *args, wrt=["W1", "b1", "W2", "b2"])
    page = e._repr_html_()
    assert page.startswith("<div>") and "<table" in page
    for line in e.backward_lines():
        assert html.escape(line) in page
    assert "<details>" in page and "∂" in page
    assert e._repr_latex_().startswith("\\begin{align*}")

    grads = cr.grad(two_layer, argnums=(2, 3, 4, 5))(*args)
    wrong = {"W1": -grads[0], "b1": grads[1], "W2": grads[2], "b2": grads[3]}
    report = cr.check_backward(two_layer, args, wrong)
    page = report._repr_html_()
    assert "<table" in page and "WRONG" in page and ">sign<" in page
    assert "ParameterCheck(" not in page

    check = cr.check_grads(lambda x: (x**2).sum(), numpy.array([1.0, 2.0]))
    page = check._repr_html_()
    assert "<table" in page and "passed" in page and "ArgumentCheck(" not in page


def test_why_shows_the_index_form_of_the_seeds_product_and_defines_its_notation():
    from chainrule import seed

    e = cr.explain(seed.forward, seed.X, seed.T, *seed.PARAMS.values(), wrt=list(seed.PARAMS))
    why = e.why()
    assert "∂err/∂W4[i,j] = Σₙ A3[n,i] · dY[n,j]  ⇒  dW4 = A3ᵀ · dY" in why
    assert "∂err/∂A3[n,i] = Σⱼ dY[n,j] · W4[i,j]  ⇒  dA3 = dY · W4ᵀ" in why
    assert "∂err/∂B1[j] = Σₙ dZ1[n,j]" in why
    head = why.split("\n\n")[0]
    assert "∋" in head and "Σₙ" in head and "⊙" in head  # the notation, defined once
    assert why.count("∋ t says") == 1
    # one worked element, computed by hand from the seed's numbers: A3[0,0] * dY[0,0]
    a3 = numpy.maximum(
        0,
        numpy.maximum(0, numpy.maximum(0, seed.X @ seed.W1 + seed.B1) @ seed.W2 + seed.B2) @ seed.W3
        + seed.B3,
    )
    dy = 2 * (a3 @ seed.W4 + seed.B4 - seed.T)
    assert f"dW4[0,0] = {a3[0, 0]:.4f} × {dy[0, 0]:.4f} = {a3[0, 0] * dy[0, 0]:.4f}" in why


X_GLOBAL = numpy.random.default_rng(12).standard_normal((5, 3))


def test_why_of_a_product_with_a_constant_matrix_names_it_and_brackets_the_gradient():
    # X is a global constant, not a recorded input: the index form reads its values and name
    def loss(W):
        return (numpy.tanh(X_GLOBAL @ W) ** 2).sum()

    W = numpy.full((3, 2), 0.1)
    why = cr.explain(loss, W).why()
    assert "dW = X_GLOBALᵀ · (2 · " in why
    line = next(t for t in why.splitlines() if "index form" in t)
    assert "Σₙ X_GLOBAL[n,i] · (" in line and ")[n,j]" in line
    # the worked element, by hand: sum_n X[n,0] * d(tanh^2)/dz[n,0]
    t = numpy.tanh(X_GLOBAL @ W)
    g = 2 * t * (1 - t**2)
    want = float((X_GLOBAL[:, 0] * g[:, 0]).sum())
    assert f"= {want:.4f}" in why


def softmax_ce(W, b, X, y):
    Z = X @ W + b
    Z = Z - Z.max(axis=1, keepdims=True)
    E = numpy.exp(Z)
    P = E / E.sum(axis=1, keepdims=True)
    return -numpy.log(P[numpy.arange(len(y)), y]).mean()


def sigmoid_mlp(W1, W2, X, T):
    Z = X @ W1
    A = 1 / (1 + numpy.exp(-Z))
    Y = A @ W2
    return ((Y - T) ** 2).sum()


def tanh_mlp(W1, W2, X, T):
    H = numpy.tanh(X @ W1)
    Y = H @ W2
    return 0.5 * ((Y - T) ** 2).sum()


def test_softmax_cross_entropy_reads_as_p_minus_onehot_over_n():
    W, b = RNG.normal(size=(4, 3)), numpy.zeros(3)
    X, y = RNG.normal(size=(10, 4)), RNG.integers(0, 3, size=10)
    e = cr.explain(softmax_ce, W, b, X, y, wrt=["W", "b"])
    assert e.backward_lines() == [
        "dZ_1 = (P - numpy.eye(P.shape[1])[y]) / len(y)",
        "db = dZ_1.sum(axis=0)",
        "dW = X.T @ dZ_1",
    ]
    assert "P_y = P[numpy.arange(len(y)), y]" in e.forward_lines()
    assert any("max subtracted for stability is exactly zero" in n for n in e.notes)
    why = e.why()
    assert "textbook form: softmax and cross-entropy together" in why
    assert "dP" not in why and "dE" not in why  # no step that is no longer shown
    assert generated(e.forward_lines() + e.backward_lines()) == []
    ns: dict = {}
    exec(e.to_python(), ns)  # the exported code still runs the recorded steps, exactly
    _, grads = ns["backward"](W, b, X, y)
    gW, gb = cr.grad(softmax_ce, argnums=(0, 1))(W, b, X, y)
    numpy.testing.assert_allclose(grads["W"], gW, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(grads["b"], gb, rtol=1e-12, atol=1e-15)
    # independently: the textbook formula itself, by hand
    Z = X @ W + b
    P = numpy.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    numpy.testing.assert_allclose(gW, X.T @ (P - numpy.eye(3)[y]) / 10, rtol=1e-10)


def test_logistic_regression_reads_as_p_minus_y_over_n():
    X, y = RNG.normal(size=(9, 3)), (RNG.random(9) > 0.5).astype(float)
    e = cr.explain(logreg, RNG.normal(size=3), numpy.array(0.2), X, y, wrt=["w", "b"])
    back = e.backward_lines()
    assert back[0] == "dz = (p - y) / len(y)"
    assert "dw = LAM * (2 * w) + X.T @ dz" in back
    assert generated(e.forward_lines() + back) == []


def test_sigmoid_and_tanh_derivatives_read_as_textbooks_write_them():
    X, T = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 2))
    W1, W2 = RNG.normal(size=(3, 4)), RNG.normal(size=(4, 2))
    e = cr.explain(sigmoid_mlp, W1, W2, X, T, wrt=["W1", "W2"])
    assert "dZ = dA * A * (1 - A)" in e.backward_lines()
    e = cr.explain(tanh_mlp, W1, W2, X, T, wrt=["W1", "W2"])
    assert e.backward_lines() == [
        "dY = Y - T",  # 0.5 * (2 * (Y - T)), simplified and checked in numbers
        "dH = dY @ W2.T",
        "dW2 = H.T @ dY",
        "dW1 = X.T @ (dH * (1 - H ** 2))",
    ]


def test_residual_and_layernorm_read_in_the_users_names():
    def residual(Wa, Wb, X):
        H = numpy.maximum(0, X @ Wa)
        out = X + H @ Wb
        return (out**2).mean()

    def layernorm(gamma, beta, X):
        mu = X.mean(axis=1, keepdims=True)
        var = ((X - mu) ** 2).mean(axis=1, keepdims=True)
        Xhat = (X - mu) / numpy.sqrt(var + 1e-5)
        out = gamma * Xhat + beta
        return (out**2).sum()

    X = RNG.normal(size=(5, 4))
    e = cr.explain(residual, RNG.normal(size=(4, 4)), RNG.normal(size=(4, 4)), X, wrt=["Wa", "Wb"])
    assert e.backward_lines() == [
        "dout = 2 * out / out.size",
        "dH = dout @ Wb.T",
        "dWb = H.T @ dout",
        "dWa = X.T @ (dH * (z_H > 0))",
    ]
    e = cr.explain(layernorm, RNG.normal(size=4), RNG.normal(size=4), X)
    back = e.backward_lines()
    assert "dXhat = dout * gamma" in back and "dgamma = (dout * Xhat).sum(axis=0)" in back
    assert "dX = dXhat / sqrt_var + dX_minus_mu_from_var + dmu / X.shape[1]" in back
    assert generated(e.forward_lines() + back) == []


def test_conv2d_is_explained_as_a_convolution():
    def conv(K, X):
        Z = cr.nn.functional.conv2d(X, K)
        return (Z**2).sum()

    K, X = RNG.normal(size=(2, 3, 3, 3)), RNG.normal(size=(2, 3, 6, 5))
    e = cr.explain(conv, K, X)
    assert e.forward_lines()[0] == "Z = conv2d(X, K)"
    back = e.backward_lines()
    assert "dK = correlate(X, dZ)" in back and "dX = conv_transpose(dZ, K)" in back
    assert "sliding_window" not in str(e) and "tensordot" not in "\n".join(back)
    assert any("stride 1 and no padding when not written" in n for n in e.notes)
    # independently: dK by explicit loops over the definition of a convolution
    Z = numpy.zeros((2, 2, 4, 3))
    for o, i, j in numpy.ndindex(2, 4, 3):
        Z[:, o, i, j] = (X[:, :, i : i + 3, j : j + 3] * K[o]).sum(axis=(1, 2, 3))
    dK = numpy.zeros_like(K)
    for o, c, p, q in numpy.ndindex(*K.shape):
        dK[o, c, p, q] = (X[:, c, p : p + 4, q : q + 3] * 2 * Z[:, o]).sum()
    ns: dict = {}
    exec(e.to_python(), ns)  # the exported code keeps the recorded steps and is exact
    numpy.testing.assert_allclose(ns["backward"](K, X)[1]["K"], dK, rtol=1e-10)
    assert "sliding_window_view" in e.to_python()


class TanhNet:
    def loss(self, W1, W2, X, T):
        self.Z1 = X @ W1
        self.A1 = numpy.tanh(self.Z1)
        self.Y = self.A1 @ W2
        return ((self.Y - T) ** 2).mean()


def test_values_kept_on_self_by_a_model_class_are_named_after_their_attributes():
    args = (RNG.normal(size=(3, 4)), RNG.normal(size=(4, 2)), RNG.normal(size=(5, 3)))
    e = cr.explain(TanhNet().loss, *args, RNG.normal(size=(5, 2)), wrt=["W1", "W2"])
    assert e.forward_lines()[:3] == ["Z1 = X @ W1", "A1 = numpy.tanh(Z1)", "Y = A1 @ W2"]
    assert "dZ1 = dA1 * (1 - A1 ** 2)" in e.backward_lines()


def sigmoid(x):
    return 1 / (1 + numpy.exp(-x))


def affine(x, w, b):
    out = x @ w + b
    cache = (x, w, b)
    return out, cache


def helpers_net(W1, b1, W2, X, y):
    h, _ = affine(X, W1, b1)
    p = sigmoid(h @ W2)
    return -numpy.mean(y * numpy.log(p) + (1 - y) * numpy.log(1 - p))


def test_the_callers_names_win_and_a_returned_value_is_named_after_its_helper():
    X, y = RNG.normal(size=(6, 3)), (RNG.random(6) > 0.5).astype(float)
    W1, b1, W2 = RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=4)
    e = cr.explain(helpers_net, W1, b1, W2, X, y, wrt=["W1", "b1", "W2"])
    fwd = e.forward_lines()
    assert fwd[0] == "h = X @ W1 + b1"  # the caller's h, not the helper's out
    assert any(ln.startswith("p = 1 / (1 + ") for ln in fwd)

    def unnamed(W2, X, y):
        return -numpy.mean(y * numpy.log(sigmoid(X @ W2)))

    e = cr.explain(unnamed, RNG.normal(size=3), X, y, wrt="W2")
    assert any(ln.startswith("sigmoid = 1 / (1 + ") for ln in e.forward_lines())
    assert generated(e.forward_lines() + e.backward_lines()) == []


def test_a_form_that_matches_only_by_coincidence_is_not_shown():
    def loss(w, x, y):
        pred = numpy.tanh(x @ w)
        resid = pred - y
        return (resid**2).mean()

    # at w = 0, pred = 0 and resid = -y: (resid - y) / len(y) equals 2 * resid / len(resid)
    # here, and nowhere else; the form must also hold at a second, nearby point
    x, y = RNG.normal(size=(5, 3)), numpy.arange(1.0, 6.0)
    e = cr.explain(loss, numpy.zeros(3), x, y, wrt="w")
    assert e.backward_lines()[0] == "dresid = 2 * resid / len(resid)"


def test_latex_a_named_scalar_times_an_array_is_cdot_never_odot():
    X, y = RNG.normal(size=(7, 3)), (RNG.random(7) > 0.5).astype(float)
    tex = cr.explain(logreg, RNG.normal(size=3), numpy.array(0.0), X, y, wrt="w").to_latex()
    dw = next(line for line in tex.splitlines() if line.startswith(r"\mathrm{d}w &="))
    assert r"\mathrm{LAM} \cdot (2 \cdot w)" in dw and r"\odot" not in dw
    # a number times an array is a plain product, an array times an array stays elementwise

    def f(A, B):
        return ((A * B) ** 2).sum()

    e = cr.explain(f, RNG.normal(size=3), RNG.normal(size=3), wrt="A")
    assert r"\mathrm{d}A &= 2 \cdot (A \odot B) \odot B" in e.to_latex()


def test_identities_and_like_terms_inside_expressions():
    def policy(W, x, took, adv):
        p = 1 / (1 + numpy.exp(-(x @ W)))
        return -adv * (took * numpy.log(p) + (1 - took) * numpy.log(1 - p)) + LAM * (W * W).sum()

    W, x = RNG.normal(size=3), RNG.normal(size=3)
    e = cr.explain(policy, W, x, 1.0, 0.7, wrt="W")
    fwd, back = e.forward_lines(), e.backward_lines()
    # took = 1: the (1 - took) term is 0 * log(1 - p), left out of the text; W * W read twice
    assert any(ln.endswith("= -0.7 * numpy.log(p) + LAM * (W * W).sum()") for ln in fwd), fwd
    assert any("2 * LAM * W" in ln for ln in back), back
    assert not [ln for ln in fwd + back if re.search(r"\b0 \*|\+ 0\b|\+ -|--", ln)]
    ns: dict = {}
    exec(e.to_python(), ns)  # the exported code keeps the recorded steps, exactly
    _, grads = ns["backward"](W, x, 1.0, 0.7)
    p = 1 / (1 + numpy.exp(-(x @ W)))
    numpy.testing.assert_allclose(grads["W"], -0.7 * (1 - p) * x + 2 * LAM * W, rtol=1e-12)


@pytest.mark.parametrize(
    "stride, padding, size, lines",
    [
        (2, 1, 7, ["dK = correlate(X, dZ, stride=2, padding=1)",
                   "dX = conv_transpose(dZ, K, stride=2, padding=1)"]),
        # (6 + 2 - 3) // 2 + 1 = 3 windows leave the last row and column of X unread: the
        # sizes are then written out, since the stride alone leaves them open
        (2, 1, 6, ["dK = correlate(X, dZ, stride=2, padding=1, size=(3, 3))",
                   "dX = conv_transpose(dZ, K, stride=2, padding=1, size=(6, 6))"]),
    ],
)  # fmt: skip
def test_a_strided_padded_conv2d_is_explained_as_a_convolution(stride, padding, size, lines):
    def conv(K, X):
        Z = cr.nn.functional.conv2d(X, K, stride=stride, padding=padding)
        return (Z**2).sum()

    K, X = RNG.normal(size=(2, 3, 3, 3)), RNG.normal(size=(2, 3, size, size))
    e = cr.explain(conv, K, X)
    assert e.forward_lines()[0] == f"Z = conv2d(X, K, stride={stride}, padding={padding})"
    back = e.backward_lines()
    assert all(ln in back for ln in lines), back
    assert "sliding_window_view" not in str(e) and "tensordot" not in "\n".join(back)
    ns: dict = {}
    exec(e.to_python(), ns)  # the exported code keeps the recorded steps, exactly
    _, grads = ns["backward"](K, X)
    for name, arr, idx in (("K", K, (1, 2, 0, 1)), ("X", X, (0, 1, size - 1, 2))):
        plus, minus = arr.copy(), arr.copy()
        plus[idx] += 1e-6
        minus[idx] -= 1e-6
        args = {"K": (plus, X), "X": (K, plus)}[name], {"K": (minus, X), "X": (K, minus)}[name]
        numeric = (conv(*args[0]) - conv(*args[1])) / 2e-6
        assert abs(grads[name][idx] - numeric) < 1e-5 * max(1, abs(numeric))
