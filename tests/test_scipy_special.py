"""scipy.special's ufuncs on tensors (chainrule.engine.scipy_special): SciPy's values bit for
bit, every rule against central finite differences and, where one is well known, against an
independent closed form; second derivatives; jit, explain and vmap; the edges SciPy defines;
and the error messages of what is not supported."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
import warnings

import numpy
import pytest

sp = pytest.importorskip("scipy.special")

from op_cases import fd_grad  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule.readers import numba_backend  # noqa: E402

jitmod = importlib.import_module("chainrule.readers.jit")
rng = numpy.random.default_rng(20240607)


def _u(lo, hi, n=5):
    return rng.uniform(lo, hi, size=n)


# (id, function, inputs, the arguments differentiated): float64 points away from singularities
CASES = [
    ("expit", sp.expit, [_u(-6, 6)], (0,)),
    ("log_expit", sp.log_expit, [_u(-30, 10)], (0,)),
    ("logit", sp.logit, [_u(0.05, 0.95)], (0,)),
    ("erf", sp.erf, [_u(-2, 2)], (0,)),
    ("erfc", sp.erfc, [_u(-2, 2)], (0,)),
    ("erfinv", sp.erfinv, [_u(-0.9, 0.9)], (0,)),
    ("erfcinv", sp.erfcinv, [_u(0.1, 1.9)], (0,)),
    ("erfcx", sp.erfcx, [_u(-1.5, 8)], (0,)),
    ("ndtr", sp.ndtr, [_u(-3, 3)], (0,)),
    ("log_ndtr", sp.log_ndtr, [_u(-20, 5)], (0,)),
    ("ndtri", sp.ndtri, [_u(0.05, 0.95)], (0,)),
    ("gammaln", sp.gammaln, [numpy.r_[_u(0.3, 8, 4), -1.5, -2.3]], (0,)),
    ("gamma", sp.gamma, [numpy.r_[_u(0.3, 4, 4), -1.5, -2.3]], (0,)),
    ("loggamma", sp.loggamma, [_u(0.3, 8)], (0,)),
    ("rgamma", sp.rgamma, [numpy.r_[_u(0.3, 4, 4), -1.5, -2.3]], (0,)),
    ("digamma", sp.digamma, [numpy.r_[_u(0.3, 8, 4), -1.5, -2.3]], (0,)),
    ("psi", sp.psi, [_u(0.3, 8)], (0,)),
    ("zeta", lambda x: sp.zeta(3.0, x), [_u(0.5, 4)], (0,)),
    ("xlogy", sp.xlogy, [_u(-2, 2), _u(0.2, 3)], (0, 1)),
    ("xlog1py", sp.xlog1py, [_u(-2, 2), _u(-0.8, 3)], (0, 1)),
    ("entr", sp.entr, [_u(0.05, 3)], (0,)),
    ("rel_entr", sp.rel_entr, [_u(0.1, 3), _u(0.1, 3)], (0, 1)),
    ("kl_div", sp.kl_div, [_u(0.1, 3), _u(0.1, 3)], (0, 1)),
    ("betaln", sp.betaln, [_u(0.3, 5), _u(0.3, 5)], (0, 1)),
    ("beta", sp.beta, [_u(0.3, 5), _u(0.3, 5)], (0, 1)),
    ("i0", sp.i0, [_u(-5, 5)], (0,)),
    ("i1", sp.i1, [_u(-5, 5)], (0,)),
    ("i0e", sp.i0e, [numpy.r_[_u(0.1, 5, 3), -_u(0.1, 5, 2)]], (0,)),
    ("i1e", sp.i1e, [_u(-5, 5)], (0,)),
    ("huber", sp.huber, [_u(0.5, 2), numpy.array([-3.0, -0.3, 0.1, 0.7, 2.5])], (0, 1)),
    ("pseudo_huber", sp.pseudo_huber, [_u(0.1, 2), _u(-3, 3)], (0, 1)),
    ("gammainc", lambda x: sp.gammainc(2.5, x), [_u(0.1, 6)], (0,)),
    ("gammaincc", lambda x: sp.gammaincc(0.7, x), [_u(0.1, 6)], (0,)),
]
IDS = [c[0] for c in CASES]


def _weights(x):
    return numpy.linspace(0.5, 1.5, numpy.size(x)).reshape(numpy.shape(x))


def _loss(fun, inputs, argnum):
    """sum(w * f(...)) as a function of input ``argnum`` alone (w: distinct weights, so the
    whole diagonal Jacobian is checked, not only its sum)."""

    def loss(x):
        args = list(inputs)
        args[argnum] = x
        out = fun(*args)
        return (out * _weights(numpy.asarray(getattr(out, "data", out)))).sum()

    return loss


@pytest.mark.parametrize("name, fun, inputs, wrt", CASES, ids=IDS)
def test_values_are_scipys_bit_for_bit(name, fun, inputs, wrt):
    tensors = [cr.tensor(x, requires_grad=i in wrt) for i, x in enumerate(inputs)]
    got = fun(*tensors)
    assert isinstance(got, cr.Tensor) and got.requires_grad
    numpy.testing.assert_array_equal(got.detach().numpy(), fun(*inputs))


@pytest.mark.parametrize("name, fun, inputs, wrt", CASES, ids=IDS)
def test_gradient_matches_finite_differences(name, fun, inputs, wrt):
    for argnum in wrt:
        loss = _loss(fun, inputs, argnum)
        got = cr.grad(loss)(inputs[argnum])
        want = fd_grad(_as_float(loss), inputs[argnum])
        numpy.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=f"{name}/{argnum}")


def _as_float(f):
    return lambda x: float(f(x))


def _norm_pdf(x):
    return numpy.exp(-(x**2) / 2) / math.sqrt(2 * math.pi)


# Derivatives from independent, well-known formulas (elementwise, in the inputs' order).
CLOSED_FORMS = {
    "expit": lambda x: [numpy.exp(-x) / (1 + numpy.exp(-x)) ** 2],
    "log_expit": lambda x: [1 / (1 + numpy.exp(x))],
    "logit": lambda p: [1 / p + 1 / (1 - p)],
    "erf": lambda x: [2 / math.sqrt(math.pi) * numpy.exp(-(x**2))],
    "erfc": lambda x: [-2 / math.sqrt(math.pi) * numpy.exp(-(x**2))],
    "erfinv": lambda x: [1 / (2 / math.sqrt(math.pi) * numpy.exp(-(sp.erfinv(x) ** 2)))],
    "ndtr": lambda x: [_norm_pdf(x)],
    "log_ndtr": lambda x: [_norm_pdf(x) / sp.ndtr(x)],
    "ndtri": lambda p: [1 / _norm_pdf(sp.ndtri(p))],
    "gammaln": lambda x: [sp.polygamma(0, x)],
    "gamma": lambda x: [sp.gamma(x) * sp.polygamma(0, x)],
    "loggamma": lambda x: [sp.polygamma(0, x)],
    "rgamma": lambda x: [-sp.polygamma(0, x) / sp.gamma(x)],
    "digamma": lambda x: [sp.polygamma(1, x)],
    "psi": lambda x: [sp.polygamma(1, x)],
    "zeta": lambda x: [-3.0 * sp.zeta(4.0, x)],
    "xlogy": lambda x, y: [numpy.log(y), x / y],
    "xlog1py": lambda x, y: [numpy.log(1 + y), x / (1 + y)],
    "entr": lambda x: [-numpy.log(x) - 1],
    "rel_entr": lambda x, y: [numpy.log(x) - numpy.log(y) + 1, -x / y],
    "kl_div": lambda x, y: [numpy.log(x) - numpy.log(y), 1 - x / y],
    "betaln": lambda a, b: [
        sp.polygamma(0, a) - sp.polygamma(0, a + b),
        sp.polygamma(0, b) - sp.polygamma(0, a + b),
    ],
    "i0": lambda x: [sp.iv(1, x)],
    "i1": lambda x: [(sp.iv(0, x) + sp.iv(2, x)) / 2],  # DLMF 10.29.1
    "i0e": lambda x: [numpy.exp(-abs(x)) * (sp.iv(1, x) - numpy.sign(x) * sp.iv(0, x))],
    "i1e": lambda x: [
        numpy.exp(-abs(x)) * ((sp.iv(0, x) + sp.iv(2, x)) / 2 - numpy.sign(x) * sp.iv(1, x))
    ],
    "huber": lambda d, r: [numpy.where(abs(r) <= d, 0, abs(r) - d), numpy.clip(r, -d, d)],
    "pseudo_huber": lambda d, r: [
        2 * d * (numpy.sqrt(1 + (r / d) ** 2) - 1) - r**2 / (d * numpy.sqrt(1 + (r / d) ** 2)),
        r / numpy.sqrt(1 + (r / d) ** 2),
    ],
    "gammainc": lambda x: [x**1.5 * numpy.exp(-x) / math.gamma(2.5)],
    "gammaincc": lambda x: [-(x**-0.3) * numpy.exp(-x) / math.gamma(0.7)],
}


@pytest.mark.parametrize(
    "name, fun, inputs, wrt",
    [c for c in CASES if c[0] in CLOSED_FORMS],
    ids=sorted(set(IDS) & set(CLOSED_FORMS), key=IDS.index),
)
def test_gradient_matches_the_closed_form(name, fun, inputs, wrt):
    forms = CLOSED_FORMS[name](*inputs)
    for argnum in wrt:
        got = cr.grad(_loss(fun, inputs, argnum))(inputs[argnum])
        want = forms[argnum] * _weights(inputs[argnum])
        numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13, err_msg=f"{name}")


SECOND = ["expit", "log_ndtr", "erf", "erfinv", "gammaln", "rgamma", "digamma", "i1", "i1e",
          "xlogy", "kl_div", "pseudo_huber", "gammainc", "ndtri"]  # fmt: skip


@pytest.mark.parametrize("name", SECOND)
def test_second_derivatives_match_finite_differences_of_the_gradient(name):
    _, fun, inputs, wrt = CASES[IDS.index(name)]
    for argnum in wrt:
        # the gradient of <v, grad f>: a Hessian-vector product, checked against differences
        v = numpy.linspace(-1.0, 1.0, inputs[argnum].size)
        directional = _directional(cr.grad(_loss(fun, inputs, argnum)), v)
        got = cr.grad(directional)(inputs[argnum])
        want = fd_grad(_as_float(directional), inputs[argnum], eps=1e-5)
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=name)


def _directional(first, v):
    return lambda x: (first(x) * v).sum()


def test_third_derivative_of_gammaln_is_polygamma_2():
    x = numpy.array([0.7, 2.0, 5.5])
    d3 = cr.grad(cr.grad(cr.grad(lambda t: sp.gammaln(t).sum())))
    for i, xi in enumerate(x):
        got = d3(xi)
        numpy.testing.assert_allclose(got, sp.polygamma(2, x)[i], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# The edges SciPy defines
# ---------------------------------------------------------------------------------------------


def _grads(fun, *inputs):
    return cr.grad(lambda *a: fun(*a).sum(), argnums=tuple(range(len(inputs))))(*inputs)


def test_xlogy_at_x_zero():
    x = numpy.array([0.0, 0.0, 0.0, 2.0])
    y = numpy.array([0.0, 0.5, 3.0, 3.0])
    dx, dy = _grads(sp.xlogy, x, y)
    # d/dx is log(y) wherever it is finite (x == 0 too: x log y is linear in x for y > 0),
    # 0 where x == 0 and y == 0; d/dy is x / y, exactly 0 wherever x == 0
    numpy.testing.assert_array_equal(dx, [0.0, numpy.log(0.5), numpy.log(3.0), numpy.log(3.0)])
    numpy.testing.assert_array_equal(dy, [0.0, 0.0, 0.0, 2.0 / 3.0])
    # the same as chainrule.functions.xlogy's rules
    ours = _grads(cr.functions.xlogy, x, y)
    numpy.testing.assert_array_equal(dx, ours[0])
    numpy.testing.assert_array_equal(dy, ours[1])
    # at x == 0, y > 0 the gradient in x is the finite difference's
    f = lambda t: float(sp.xlogy(t, 0.5).sum())  # noqa: E731
    numpy.testing.assert_allclose(dx[1], fd_grad(f, numpy.array([0.0]))[0], rtol=1e-9)


def test_entropy_like_functions_at_zero():
    x = numpy.array([0.0, 0.5])
    (d,) = _grads(sp.entr, x)
    assert d[0] == numpy.inf and d[1] == pytest.approx(-numpy.log(0.5) - 1)
    # -xlogy(p, p) has chainrule's xlogy convention (0 at p == 0); entr has the one-sided limit
    dx, dy = _grads(sp.kl_div, numpy.array([0.0, 0.0]), numpy.array([2.0, 0.0]))
    assert dx[0] == -numpy.inf and numpy.isnan(dx[1])
    numpy.testing.assert_array_equal(dy, [1.0, 1.0])  # kl_div(0, y) = y
    dx, dy = _grads(sp.rel_entr, numpy.array([0.0]), numpy.array([2.0]))
    assert dx[0] == -numpy.inf and dy[0] == 0.0  # rel_entr(0, y) = 0


def test_rgamma_at_its_zeros():
    # 1/Gamma is entire: at x = -n its derivative is (-1)^n n!, and it is smooth there
    x = numpy.array([0.0, -1.0, -2.0, -3.0])
    (d,) = _grads(sp.rgamma, x)
    numpy.testing.assert_allclose(d, [1.0, -1.0, 2.0, -6.0], rtol=1e-14)
    second = cr.grad(lambda t: cr.grad(lambda u: sp.rgamma(u).sum())(t).sum())(x)
    want = fd_grad(lambda t: float(cr.grad(lambda u: sp.rgamma(u).sum())(t).sum()), x, eps=1e-5)
    numpy.testing.assert_allclose(second, want, rtol=1e-6)


def test_bessel_derivatives_at_zero_and_log_ndtr_far_out():
    assert float(cr.grad(sp.i1)(0.0)) == 0.5
    assert float(cr.grad(sp.i1e)(0.0)) == 0.5
    assert float(cr.grad(sp.i0e)(0.0)) == 0.0  # the kink of exp(-|x|): 0, as abs's rule
    x = numpy.array([-40.0, -1e4, 40.0])
    (d,) = _grads(sp.log_ndtr, x)
    # phi/Phi ~ -x - 1/x far to the left (Mills' ratio), 0 far to the right: never nan
    numpy.testing.assert_allclose(d[:2], -x[:2] - 1 / x[:2], rtol=1e-6)
    assert d[2] == pytest.approx(0.0, abs=1e-300)


def test_gammainc_at_zero_and_pseudo_huber_at_delta_zero():
    (d,) = _grads(lambda x: sp.gammainc(1.0, x), numpy.array([0.0, 1.0]))
    numpy.testing.assert_allclose(d, [1.0, numpy.exp(-1.0)], rtol=1e-15)  # 1 - e^-x
    dd, dr = _grads(sp.pseudo_huber, numpy.array([0.0, 0.0]), numpy.array([2.0, -3.0]))
    numpy.testing.assert_array_equal(dr, [0.0, 0.0])  # the value is 0 for every r
    numpy.testing.assert_array_equal(dd, [2.0, 3.0])  # delta^2 (s - 1) ~ delta |r|


def test_float32_in_float32_out():
    x = numpy.array([0.5, 1.5], dtype=numpy.float32)
    for f in (sp.expit, sp.gammaln, sp.log_ndtr, sp.erf):
        g = cr.grad(lambda t, f=f: f(t).sum())(x)
        assert g.dtype == numpy.float32


def test_scipys_softplus_and_the_polygamma_formula():
    x = numpy.array([-3.0, 0.0, 4.0])
    if hasattr(sp, "softplus"):  # a Python function calling numpy.logaddexp
        numpy.testing.assert_allclose(_grads(sp.softplus, x)[0], sp.expit(x), rtol=1e-14)
    # what the polygamma error message proposes: a differentiable polygamma(n, x)
    n, y = 2, numpy.array([0.6, 2.5])

    def polygamma(t):
        return (-1) ** (n + 1) * math.factorial(n) * sp.zeta(n + 1, t)

    numpy.testing.assert_allclose(polygamma(y), sp.polygamma(n, y), rtol=1e-14)
    numpy.testing.assert_allclose(_grads(polygamma, y)[0], sp.polygamma(3, y), rtol=1e-12)


def test_shape_parameters_have_no_gradient():
    a, x = cr.tensor(2.0, requires_grad=True), cr.tensor(1.0, requires_grad=True)
    y = sp.gammainc(a, x)
    with pytest.raises(TypeError, match=r"scipy\.special\.gammainc: .*parameter a"):
        y.backward()
    with pytest.raises(TypeError, match=r"scipy\.special\.gammaincc: .*parameter a"):
        cr.grad(lambda a: sp.gammaincc(a, 1.0))(2.0)
    with pytest.raises(TypeError, match=r"scipy\.special\.zeta: .*parameter s"):
        cr.grad(lambda s: sp.zeta(s, 2.0))(3.0)
    # a as a constant: fine
    assert float(cr.grad(lambda x: sp.gammainc(2.0, x))(1.0)) == pytest.approx(numpy.exp(-1.0))


# ---------------------------------------------------------------------------------------------
# jit, explain, vmap
# ---------------------------------------------------------------------------------------------

N = 40
X = rng.standard_normal((N, 3))
Y01 = (rng.random(N) < 0.5).astype(float)
COUNTS = rng.poisson(3.0, N).astype(float)
POSITIVE = rng.gamma(2.0, 1.5, N)


def probit_and_logistic(w, b):
    z = X @ w + b
    probit = -(Y01 * sp.log_ndtr(z) + (1 - Y01) * sp.log_ndtr(-z)).mean()
    p = sp.expit(z)
    logistic = -(sp.xlogy(Y01, p) + sp.xlog1py(1 - Y01, -p)).mean()
    return probit + logistic + 0.1 * sp.erf(w).sum()


def gamma_and_poisson(log_shape, w):
    shape = numpy.exp(log_shape)
    rate = numpy.exp(X @ w)
    poisson = (rate - sp.xlogy(COUNTS, rate) + sp.gammaln(COUNTS + 1)).mean()
    gamma = -(
        sp.xlogy(shape, shape * rate)
        - sp.gammaln(shape)
        + sp.xlogy(shape - 1, POSITIVE)
        - shape * rate * POSITIVE
    ).mean()
    return poisson + gamma + sp.betaln(shape, 2.0) * 0.01


MODELS = [
    (probit_and_logistic, (rng.standard_normal(3) * 0.3, numpy.array(0.1))),
    (gamma_and_poisson, (numpy.array(0.4), rng.standard_normal(3) * 0.2)),
]


@pytest.mark.parametrize("model, args", MODELS, ids=[m.__name__ for m, _ in MODELS])
def test_jit_value_and_grad_agrees_with_eager(model, args):
    step = cr.value_and_grad(model, argnums=(0, 1))
    v, grads = step(*args)
    fd = fd_grad(lambda w: float(model(w, args[1])), args[0])
    numpy.testing.assert_allclose(grads[0], fd, rtol=1e-6, atol=1e-9)
    fast = cr.jit(step, backend="numpy")
    for _ in range(2):  # compiled, then the cached program
        jv, jgrads = fast(*args)
        numpy.testing.assert_allclose(jv, v, rtol=1e-13)
        for a, b in zip(jgrads, grads):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert "scipy.special." in fast.source(*args)


@pytest.mark.parametrize("model, args", MODELS, ids=[m.__name__ for m, _ in MODELS])
def test_explain_exports_runnable_code_that_imports_scipy(model, args):
    e = cr.explain(model, *args)
    code = e.to_python()
    assert "import scipy.special" in code.splitlines()[:3]
    namespace: dict = {}
    exec(compile(code, "<exported>", "exec"), namespace)
    fn = [v for k, v in namespace.items() if callable(v) and k not in ("numpy",)][-1]
    value, grads = fn(*args)
    want_v, want_g = cr.value_and_grad(model, argnums=(0, 1))(*args)
    numpy.testing.assert_allclose(value, want_v, rtol=1e-13)
    for a, b in zip(grads.values(), want_g):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_vmap_of_grad_agrees_with_a_loop():
    def f(x, a):
        return (sp.gammaln(x) * a + sp.expit(x * a) + sp.log_ndtr(x - a)).sum()

    xs = rng.uniform(0.5, 3.0, (6, 4))
    a = rng.uniform(0.5, 2.0, 4)
    got = cr.vmap(cr.grad(f), in_axes=(0, None))(xs, a)
    want = numpy.stack([cr.grad(f)(x, a) for x in xs])
    numpy.testing.assert_allclose(got, want, rtol=1e-14)
    got2 = cr.jit(cr.vmap(cr.grad(f), in_axes=(0, None)), backend="numpy")(xs, a)
    numpy.testing.assert_allclose(got2, want, rtol=1e-13)


def test_numba_falls_back_to_numpy_with_the_reason():
    pytest.importorskip("numba")
    step = cr.value_and_grad(lambda x: sp.expit(x).sum())
    x = numpy.array([0.5, -1.0])
    prog, _ = jitmod._trace(step, (x,), {}, ())
    with pytest.raises(numba_backend.Unsupported) as info:
        numba_backend.generate(prog)
    assert info.value.op.startswith("scipy.special.") and "SciPy" in info.value.reason
    f = cr.jit(step, backend="numba")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v, g = f(x)
    assert any("scipy.special" in str(w.message) for w in caught)
    numpy.testing.assert_allclose(g, sp.expit(x) * sp.expit(-x), rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# What is not supported says so, naming SciPy
# ---------------------------------------------------------------------------------------------


def test_a_scipy_ufunc_without_a_rule_is_named_as_scipys():
    t = cr.tensor(numpy.array([0.5, 1.5]), requires_grad=True)
    with pytest.raises(TypeError, match=r"^scipy\.special\.jv has no gradient rule in chainrule"):
        sp.jv(1.0, t)
    # without a gradient to lose, it computes
    numpy.testing.assert_array_equal(sp.jv(1.0, t.detach()), sp.jv(1.0, t.detach().numpy()))
    with pytest.raises(TypeError, match=r"^numpy\.frexp has no gradient rule"):
        numpy.frexp(t)
    with pytest.raises(TypeError, match=r"scipy\.special\.expit: out= is not supported"):
        sp.expit(t, out=numpy.empty(2))


def test_complex_values_are_refused_naming_the_scipy_function():
    z = cr.tensor(numpy.array([0.5 + 1j, 1.5 - 0.5j]), requires_grad=True)
    with pytest.raises(TypeError, match=r"^scipy\.special\.gamma: .*no gradient rule for complex"):
        sp.gamma(z)  # SciPy computes it; chainrule has no complex rule
    with pytest.raises(TypeError, match=r"^scipy\.special\.expit: .*no gradient rule for complex"):
        sp.expit(z)  # SciPy has no complex loop either


def test_scipy_functions_that_convert_their_input_point_to_chainrules_own():
    t = cr.tensor(numpy.array([0.5, 1.5, -1.0]), requires_grad=True)
    cases = [
        (lambda: sp.logsumexp(t), "scipy.special.logsumexp", "chainrule.functions.logsumexp"),
        (lambda: sp.softmax(t), "scipy.special.softmax", "chainrule.functions.softmax"),
        (lambda: sp.log_softmax(t), "scipy.special.log_softmax", "chainrule.functions.log_softmax"),
        (lambda: sp.polygamma(1, t), "scipy.special.polygamma", "scipy.special.zeta(n + 1, x)"),
    ]
    for call, name, instead in cases:
        with pytest.raises(TypeError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{name} converted a chainrule tensor"), message
        assert instead in message, message
    # and the equivalent it names has the gradient
    g = cr.grad(lambda x: cr.functions.logsumexp(x))(t.detach().numpy())
    numpy.testing.assert_allclose(g, sp.softmax(t.detach().numpy()), rtol=1e-15)
    # a conversion outside SciPy keeps the general message
    with pytest.raises(TypeError, match=r"^a chainrule tensor that requires grad was converted"):
        numpy.asarray(t)


def test_importing_chainrule_does_not_import_scipy_and_the_rules_load_on_first_use():
    code = (
        "import sys, numpy, chainrule as cr\n"
        "assert 'scipy' not in sys.modules\n"
        "t = cr.tensor(numpy.array([0.5, 2.0]), requires_grad=True)\n"
        "numpy.exp(t).sum().backward()\n"
        "assert 'chainrule.engine.scipy_special' not in sys.modules\n"
        "import scipy.special\n"
        "assert 'chainrule.engine.scipy_special' not in sys.modules\n"
        "scipy.special.gammaln(t).sum().backward()\n"
        "assert 'chainrule.engine.scipy_special' in sys.modules\n"
        "print(t.grad.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = numpy.array(eval(out.stdout))
    numpy.testing.assert_allclose(got, numpy.exp([0.5, 2.0]) + sp.digamma([0.5, 2.0]))
