"""chainrule.functions at extreme magnitudes: finite values and gradients, float32 kept.

Every function is evaluated at inputs of magnitude 1e4 in float32 and 1e300 in float64, where
the textbook formulas overflow (``test_the_naive_formulas_fail_at_these_magnitudes`` shows that
the inputs are really extreme).  Values and gradients are compared with references computed
independently of chainrule: SciPy (``logsumexp``, ``softmax``, ``log_softmax``, ``expit``,
``log_expit``, ``logit``, ``xlogy``), mpmath at 50 digits, and analytic formulas for the
gradients evaluated in float64 from those references.
"""

from __future__ import annotations

import doctest
import warnings

import mpmath
import numpy
import pytest
import scipy.special as sp

import chainrule as cr
from chainrule import functions as F
from chainrule.engine import functions as stable_impl

mpmath.mp.dps = 50

# (dtype, scale): 1e4 in float32 (exp overflows float32 above ~88), 1e300 in float64.
EXTREMES = [(numpy.float32, 1e4), (numpy.float64, 1e300)]
IDS = ["float32-1e4", "float64-1e300"]
PATTERN = numpy.array([[1.0, -1.0, 0.5, 0.0], [-0.25, 1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
WEIGHTS = numpy.array([[0.3, -1.2, 0.7, 2.0], [1.5, -0.4, 0.9, -2.2], [0.1, 0.2, -0.3, 0.4]])


def tol(dtype, scale=0.0):
    """Tolerances for a result computed in ``dtype`` against a float64 (or better) reference.

    A few ulps relative; ``scale`` is the magnitude of the terms a formula cancels (a gradient
    ``w - sum(w * s)`` can be 0 while its terms are ~|w|), which bounds the absolute error.
    """
    eps = float(numpy.finfo(dtype).eps)
    return {"rtol": 8 * eps, "atol": max(8 * eps * scale, 8 * float(numpy.finfo(dtype).tiny))}


def weighted_grad(f, x, w=None, argnum=0, *more):
    """Gradient of sum(f(x) * w): a generic direction, so that e.g. softmax's is not zero."""

    def scalar(*args):
        out = f(*args)
        return out.sum() if w is None else (out * w).sum()

    return cr.grad(scalar, argnums=argnum)(x, *more)


def assert_finite(*arrays):
    for a in arrays:
        assert numpy.all(numpy.isfinite(a)), a


def as64(x):
    return numpy.asarray(x, dtype=numpy.float64)


# ---------------------------------------------------------------------------------------------
# the inputs are extreme: the textbook formulas fail on them
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_the_naive_formulas_fail_at_these_magnitudes(dtype, scale):
    x = (PATTERN * scale).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        naive_lse = numpy.log(numpy.sum(numpy.exp(x)))
        naive_softmax = numpy.exp(x) / numpy.exp(x).sum(axis=-1, keepdims=True)
        naive_sigmoid_grad = cr.grad(lambda x: (1 / (1 + numpy.exp(-x))).sum())(x)
        naive_norm = (
            numpy.sqrt(numpy.sum(x.astype(dtype) ** 2))
            if dtype == numpy.float64
            else numpy.sqrt(numpy.sum((x * numpy.float32(1e15)) ** 2))
        )
    assert numpy.isinf(naive_lse)
    assert not numpy.all(numpy.isfinite(naive_softmax))
    assert not numpy.all(numpy.isfinite(naive_sigmoid_grad))
    assert numpy.isinf(naive_norm)


# ---------------------------------------------------------------------------------------------
# logsumexp, softmax, log_softmax
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
@pytest.mark.parametrize("axis", [None, 1, 0])
def test_logsumexp(dtype, scale, axis):
    x = (PATTERN * scale).astype(dtype)
    value = F.logsumexp(x, axis=axis)
    assert numpy.asarray(value).dtype == dtype
    ref = sp.logsumexp(as64(x), axis=axis)
    assert_finite(value)
    numpy.testing.assert_allclose(as64(value), ref, **tol(dtype))
    # a weight per output element (axis 1: one per row; axis 0: one per column)
    w = {None: None, 1: WEIGHTS[:, 0], 0: WEIGHTS[0]}[axis]
    w = None if w is None else w.astype(dtype)
    g = weighted_grad(lambda x: F.logsumexp(x, axis=axis), x, w)
    assert g.dtype == dtype
    assert_finite(g)
    # d logsumexp / dx = softmax(x) along the reduced axes, times the incoming weight
    s = sp.softmax(as64(x), axis=axis)
    expected = s if w is None else s * numpy.expand_dims(as64(w), axis)
    numpy.testing.assert_allclose(g, expected, **tol(dtype))


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_softmax_and_log_softmax(dtype, scale):
    x = (PATTERN * scale).astype(dtype)
    w = WEIGHTS.astype(dtype)
    s_ref = sp.softmax(as64(x), axis=-1)
    ls_ref = sp.log_softmax(as64(x), axis=-1)
    s, ls = F.softmax(x), F.log_softmax(x)
    assert s.dtype == ls.dtype == dtype
    assert_finite(s, ls)
    numpy.testing.assert_allclose(as64(s), s_ref, **tol(dtype))
    numpy.testing.assert_allclose(as64(ls), ls_ref, **tol(dtype))
    gs = weighted_grad(F.softmax, x, w)
    gls = weighted_grad(F.log_softmax, x, w)
    assert gs.dtype == gls.dtype == dtype
    assert_finite(gs, gls)
    w64 = as64(w)
    wmax = float(numpy.abs(w64).sum(axis=-1).max())
    numpy.testing.assert_allclose(
        gs, s_ref * (w64 - (w64 * s_ref).sum(axis=-1, keepdims=True)), **tol(dtype, wmax)
    )
    numpy.testing.assert_allclose(
        gls, w64 - s_ref * w64.sum(axis=-1, keepdims=True), **tol(dtype, wmax)
    )


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_second_derivatives_stay_finite(dtype, scale):
    x = (numpy.array([1.0, 0.999, -1.0]) * scale).astype(dtype)
    H = cr.hessian(lambda x: F.logsumexp(x))(x)
    s = sp.softmax(as64(x))
    assert H.dtype == dtype
    assert_finite(H)
    numpy.testing.assert_allclose(H, numpy.diag(s) - numpy.outer(s, s), **tol(dtype, 1.0))
    for f in (
        lambda x: (F.softmax(x) * x).sum(),
        lambda x: F.log_softmax(x)[0],
        lambda x: F.sigmoid(x).sum(),
        lambda x: F.log_sigmoid(x).sum(),
        lambda x: F.softplus(x).sum(),
        lambda x: F.safe_norm(x),
    ):
        assert_finite(cr.hessian(f)(x))


def test_logsumexp_of_an_all_minus_inf_slice_is_minus_inf():
    x = numpy.array([[-numpy.inf, -numpy.inf], [0.0, -numpy.inf]])
    with numpy.errstate(divide="ignore"):  # log(0), as NumPy and SciPy
        value = F.logsumexp(x, axis=1)
    numpy.testing.assert_array_equal(value, [-numpy.inf, 0.0])
    numpy.testing.assert_array_equal(value, sp.logsumexp(x, axis=1))


def test_softmax_with_masked_entries():
    x = numpy.array([[0.0, -numpy.inf, 1.0], [2.0, 2.0, -numpy.inf]])
    w = WEIGHTS[:2, :3]
    s = F.softmax(x)
    numpy.testing.assert_allclose(s, sp.softmax(x, axis=-1), rtol=1e-15)
    g = weighted_grad(F.softmax, x, w)
    assert_finite(g)
    numpy.testing.assert_allclose(g, s * (w - (w * s).sum(axis=-1, keepdims=True)), rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# sigmoid, log_sigmoid, softplus, logit
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_sigmoid_family(dtype, scale):
    x = (PATTERN * scale).astype(dtype)
    x64 = as64(x)
    w = WEIGHTS.astype(dtype)
    cases = [
        (F.sigmoid, sp.expit(x64), sp.expit(x64) * sp.expit(-x64)),
        (F.log_sigmoid, sp.log_expit(x64), sp.expit(-x64)),
        (F.softplus, numpy.logaddexp(0, x64), sp.expit(x64)),
    ]
    for f, ref, deriv in cases:
        value = f(x)
        assert value.dtype == dtype
        assert_finite(value)
        numpy.testing.assert_allclose(as64(value), ref, **tol(dtype))
        g = weighted_grad(f, x, w)
        assert g.dtype == dtype
        assert_finite(g)
        numpy.testing.assert_allclose(g, deriv * as64(w), **tol(dtype))


@pytest.mark.parametrize("x", [-745.0, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 745.0])
def test_softplus_and_log_sigmoid_against_mpmath(x):
    softplus = float(mpmath.log1p(mpmath.exp(x)))
    assert float(F.softplus(numpy.float64(x))) == pytest.approx(softplus, rel=4e-16, abs=0)
    assert float(F.log_sigmoid(numpy.float64(x))) == pytest.approx(
        float(-mpmath.log1p(mpmath.exp(-x))), rel=4e-16, abs=0
    )


def test_sigmoid_relative_accuracy():
    # exp(min(x, 0)) / (1 + exp(-|x|)): a few roundings of values in (0, 1], so within 3 units
    # of the precision at any magnitude (exp(-logaddexp(0, -x)) lost about |x| of them):
    # float32 against scipy's expit in float64, float64 against mpmath
    x = numpy.linspace(-85.0, 85.0, 4001).astype(numpy.float32)
    ref = sp.expit(as64(x))
    keep = ref > numpy.finfo(numpy.float32).tiny
    err = numpy.abs(as64(F.sigmoid(x)) - ref)[keep] / ref[keep]
    assert err.max() <= 3 * numpy.finfo(numpy.float32).eps
    x = numpy.linspace(-700.0, 700.0, 401)
    got = F.sigmoid(x)
    with mpmath.workdps(40):
        ref = numpy.array([float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in x])
    keep = ref > numpy.finfo(numpy.float64).tiny
    err = numpy.abs(got - ref)[keep] / ref[keep]
    assert err.max() <= 3 * numpy.finfo(numpy.float64).eps
    with warnings.catch_warnings():  # nothing overflows, at any magnitude
        warnings.simplefilter("error")
        with numpy.errstate(over="raise", invalid="raise"):
            F.sigmoid(numpy.array([-numpy.inf, -1e308, -0.0, 0.0, 1e308, numpy.inf]))


@pytest.mark.parametrize(
    "dtype, p",
    [
        (numpy.float64, [1e-300, 1e-20, 0.5, 1 - 2.0**-53]),
        (numpy.float32, [1e-30, 1e-7, 0.5, 1 - 2.0**-24]),
    ],
    ids=["float64", "float32"],
)
def test_logit_near_0_and_1(dtype, p):
    p = numpy.array(p, dtype=dtype)
    value = F.logit(p)
    assert value.dtype == dtype
    assert_finite(value)
    numpy.testing.assert_allclose(as64(value), sp.logit(as64(p)), **tol(dtype))
    g = cr.grad(lambda p: F.logit(p).sum())(p)
    assert g.dtype == dtype
    assert_finite(g)
    p64 = as64(p)
    numpy.testing.assert_allclose(g, 1 / p64 + 1 / (1 - p64), **tol(dtype))
    # logit inverts sigmoid
    numpy.testing.assert_allclose(
        as64(F.sigmoid(F.logit(numpy.array([0.2, 0.7], dtype)))),
        [0.2, 0.7],
        rtol=10 * numpy.finfo(dtype).eps,
    )


# ---------------------------------------------------------------------------------------------
# xlogy and entropy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_xlogy_at_extremes(dtype, scale):
    x = (numpy.abs(PATTERN) * scale).astype(dtype)
    y = (numpy.abs(PATTERN[::-1]) * scale + 1).astype(dtype)
    value = F.xlogy(x, y)
    assert value.dtype == dtype
    assert_finite(value)
    numpy.testing.assert_allclose(as64(value), sp.xlogy(as64(x), as64(y)), **tol(dtype))
    gx, gy = cr.grad(lambda x, y: F.xlogy(x, y).sum(), argnums=(0, 1))(x, y)
    assert gx.dtype == gy.dtype == dtype
    assert_finite(gx, gy)
    numpy.testing.assert_allclose(gx, numpy.log(as64(y)), **tol(dtype))
    numpy.testing.assert_allclose(gy, as64(x) / as64(y), **tol(dtype))


def test_xlogy_conventions_at_zero():
    x = numpy.array([0.0, 0.0, 0.0, 2.0])
    y = numpy.array([0.0, 3.0, -1.0, 3.0])
    numpy.testing.assert_array_equal(F.xlogy(x, y), sp.xlogy(x, y))
    gx, gy = cr.grad(lambda x, y: F.xlogy(x, y).sum(), argnums=(0, 1))(x, y)
    # d/dx is log(y) (also at x == 0), taken as 0 where x == 0 and y <= 0
    numpy.testing.assert_allclose(gx, [0.0, numpy.log(3.0), 0.0, numpy.log(3.0)], rtol=1e-15)
    # d/dy is x / y: exactly 0 where x == 0 (xlogy(0, y) is 0 for every y)
    numpy.testing.assert_allclose(gy, [0.0, 0.0, 0.0, 2.0 / 3.0], rtol=1e-15)


def test_entropy_of_an_underflowed_softmax_has_a_finite_gradient():
    # softmax(z) underflows to exactly 0 for the last entry; the entropy's gradient there is
    # its limit, 0 (naive p * log(p) gives nan).
    z = numpy.array([0.0, 1.0, -1000.0])

    def entropy(z):
        p = F.softmax(z)
        return -F.xlogy(p, p).sum()

    g = cr.grad(entropy)(z)
    assert_finite(g)
    p = sp.softmax(z)
    logp = sp.log_softmax(z)
    h = -(p * logp)[:2].sum()
    expected = -p * (logp + h)  # dH/dz_i = -p_i (log p_i + H)
    numpy.testing.assert_allclose(g, expected, rtol=1e-14, atol=1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        naive = cr.grad(lambda z: -(F.softmax(z) * numpy.log(F.softmax(z))).sum())(z)
    assert not numpy.all(numpy.isfinite(naive))


# ---------------------------------------------------------------------------------------------
# cross-entropies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_cross_entropy_with_integer_labels(dtype, scale):
    z = (PATTERN * scale).astype(dtype)
    labels = numpy.array([1, 0, 3])
    loss = F.cross_entropy_with_logits(z, labels)
    assert numpy.asarray(loss).dtype == dtype
    assert_finite(loss)
    ls = sp.log_softmax(as64(z), axis=-1)
    ref = -ls[numpy.arange(3), labels].mean()
    numpy.testing.assert_allclose(as64(loss), ref, **tol(dtype))
    g = cr.grad(F.cross_entropy_with_logits)(z, labels)
    assert g.dtype == dtype
    assert_finite(g)
    onehot = numpy.eye(4)[labels]
    numpy.testing.assert_allclose(g, (sp.softmax(as64(z), axis=-1) - onehot) / 3, **tol(dtype))


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_cross_entropy_with_probabilities(dtype, scale):
    z = (PATTERN * scale).astype(dtype)
    t = numpy.abs(WEIGHTS) / numpy.abs(WEIGHTS).sum(axis=1, keepdims=True)
    t = t.astype(dtype)
    loss = F.cross_entropy_with_logits(z, t)
    assert numpy.asarray(loss).dtype == dtype
    ls = sp.log_softmax(as64(z), axis=-1)
    numpy.testing.assert_allclose(as64(loss), -(as64(t) * ls).sum(axis=1).mean(), **tol(dtype))
    gz, gt = cr.grad(F.cross_entropy_with_logits, argnums=(0, 1))(z, t)
    assert gz.dtype == gt.dtype == dtype
    assert_finite(gz, gt)
    s = sp.softmax(as64(z), axis=-1)
    t64 = as64(t)
    numpy.testing.assert_allclose(gz, (s * t64.sum(axis=1, keepdims=True) - t64) / 3, **tol(dtype))
    numpy.testing.assert_allclose(gt, -ls / 3, **tol(dtype))


def test_cross_entropy_rejects_bad_labels():
    z = numpy.zeros((2, 3))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.cross_entropy_with_logits(z, numpy.array([0, 3]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.cross_entropy_with_logits(z, numpy.array([-1, 0]))
    with pytest.raises(ValueError, match="shape"):
        F.cross_entropy_with_logits(z, numpy.array([0, 1, 2]))
    with pytest.raises(ValueError, match="integer array"):
        F.cross_entropy_with_logits(z, numpy.array([0.0, 1.0]))


def _bce_reference(x, t):
    """Mean of t*log(1+exp(-x)) + (1-t)*log(1+exp(x)) at 50 digits (mpmath)."""
    total = mpmath.mpf(0)
    for xi, ti in zip(numpy.ravel(x), numpy.ravel(t)):
        xi, ti = mpmath.mpf(float(xi)), mpmath.mpf(float(ti))
        total += ti * mpmath.log1p(mpmath.exp(-xi)) + (1 - ti) * mpmath.log1p(mpmath.exp(xi))
    return float(total / numpy.size(x))


@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_binary_cross_entropy_at_extremes(dtype, scale):
    x = (PATTERN * scale).astype(dtype)
    t = (numpy.abs(WEIGHTS) / 2.5).astype(dtype)
    loss = F.binary_cross_entropy_with_logits(x, t)
    assert numpy.asarray(loss).dtype == dtype
    assert_finite(loss)
    assert float(loss) == pytest.approx(_bce_reference(x, t), rel=8 * float(numpy.finfo(dtype).eps))
    gx, gt = cr.grad(F.binary_cross_entropy_with_logits, argnums=(0, 1))(x, t)
    assert gx.dtype == gt.dtype == dtype
    assert_finite(gx, gt)
    numpy.testing.assert_allclose(gx, (sp.expit(as64(x)) - as64(t)) / x.size, **tol(dtype))
    numpy.testing.assert_allclose(gt, -as64(x) / x.size, **tol(dtype))


def test_binary_cross_entropy_keeps_a_small_loss_exactly():
    # A confident right answer: the loss is log1p(exp(-30)) ~ 9.4e-14, which the form
    # softplus(x) - x * t would round to a few ulps of 30 (3.6e-15 each).
    x, t = numpy.array([30.0]), numpy.array([1.0])
    assert float(F.binary_cross_entropy_with_logits(x, t)) == pytest.approx(
        float(mpmath.log1p(mpmath.exp(-30))), rel=1e-15
    )


def test_binary_cross_entropy_casts_integer_targets_to_the_logits_dtype():
    x = numpy.array([0.5, -2.0], dtype=numpy.float32)
    loss = F.binary_cross_entropy_with_logits(x, numpy.array([1, 0]))
    assert numpy.asarray(loss).dtype == numpy.float32
    assert float(loss) == pytest.approx(_bce_reference(x, [1.0, 0.0]), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# safe_norm
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, scale",
    [(numpy.float32, 1e4), (numpy.float32, 1e30), (numpy.float64, 1e300), (numpy.float64, 1e-300)],
    ids=["float32-1e4", "float32-1e30", "float64-1e300", "float64-1e-300"],
)
def test_safe_norm_at_extremes(dtype, scale):
    x = (numpy.array([[3.0, -4.0, 0.0], [1.0, 1.0, 1.0]]) * scale).astype(dtype)
    eps = 1e-320 if scale < 1 else 1e-12  # eps far below the norms checked here
    value = F.safe_norm(x, axis=1, eps=eps)
    assert value.dtype == dtype
    assert_finite(value)
    ref = numpy.array(
        [
            float(mpmath.sqrt(sum(mpmath.mpf(float(v)) ** 2 for v in row) + mpmath.mpf(eps) ** 2))
            for row in x
        ]
    )
    numpy.testing.assert_allclose(as64(value), ref, rtol=8 * numpy.finfo(dtype).eps)
    w = numpy.array([0.5, -2.0], dtype=dtype)
    g = weighted_grad(lambda x: F.safe_norm(x, axis=1, eps=eps), x, w)
    assert g.dtype == dtype
    assert_finite(g)
    numpy.testing.assert_allclose(
        g, as64(x) / ref[:, None] * as64(w)[:, None], rtol=8 * numpy.finfo(dtype).eps
    )


def test_safe_norm_at_zero_has_zero_gradient_and_the_analytic_hessian():
    eps = 1e-3
    x = numpy.zeros(3)
    assert float(F.safe_norm(x, eps=eps)) == eps
    numpy.testing.assert_array_equal(cr.grad(lambda x: F.safe_norm(x, eps=eps))(x), 0.0)
    # d2/dx2 sqrt(|x|^2 + eps^2) at 0 is I / eps
    numpy.testing.assert_allclose(
        cr.hessian(lambda x: F.safe_norm(x, eps=eps))(x), numpy.eye(3) / eps, rtol=1e-14
    )
    with pytest.raises(ValueError, match="eps"):
        F.safe_norm(x, eps=0.0)


# ---------------------------------------------------------------------------------------------
# the same stability in generated code (jit) and exported code (explain)
# ---------------------------------------------------------------------------------------------

ALL = {
    "logsumexp": lambda x: F.logsumexp(x, axis=1).sum(),
    "softmax": lambda x: (F.softmax(x) * WEIGHTS.astype(x.dtype)).sum(),
    "log_softmax": lambda x: (F.log_softmax(x, axis=0) * WEIGHTS.astype(x.dtype)).sum(),
    "sigmoid": lambda x: (F.sigmoid(x) * WEIGHTS.astype(x.dtype)).sum(),
    "log_sigmoid": lambda x: F.log_sigmoid(x).sum(),
    "softplus": lambda x: F.softplus(x).sum(),
    "xlogy": lambda x: F.xlogy(numpy.abs(x), numpy.abs(x) + 1).sum(),
    "cross_entropy": lambda x: F.cross_entropy_with_logits(x, numpy.array([1, 0, 3])),
    "bce": lambda x: F.binary_cross_entropy_with_logits(x, numpy.full(x.shape, 0.25, x.dtype)),
    "safe_norm": lambda x: F.safe_norm(x, axis=1).sum(),
}


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("dtype, scale", EXTREMES, ids=IDS)
def test_jit_and_exported_code_are_as_stable_as_the_eager_path(name, dtype, scale):
    f = ALL[name]
    x = (PATTERN * scale).astype(dtype)
    value, g = cr.value_and_grad(f)(x)
    assert_finite(value, g)
    assert g.dtype == dtype
    v_jit, g_jit = cr.jit(cr.value_and_grad(f))(x)
    assert g_jit.dtype == dtype
    numpy.testing.assert_array_equal(v_jit, value)
    numpy.testing.assert_array_equal(g_jit, g)
    namespace: dict = {}
    exec(cr.explain(f, x).to_python(), namespace)
    v_exp, grads = namespace["backward"](x)
    numpy.testing.assert_allclose(v_exp, value, rtol=4 * numpy.finfo(dtype).eps)
    numpy.testing.assert_allclose(grads["x"], g, rtol=4 * numpy.finfo(dtype).eps)


def test_docstring_examples():
    # NumPy's default print options (another test may have changed the global ones)
    with numpy.printoptions(
        precision=8,
        suppress=False,
        linewidth=75,
        threshold=1000,
        floatmode="maxprec",
        sign="-",
        legacy=False,
    ):
        result = doctest.testmod(stable_impl, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20 and result.failed == 0


def test_logaddexp_gradient_with_two_huge_arguments():
    g = cr.grad(lambda x: numpy.logaddexp(x[0], x[1]))(numpy.array([1e300, 1e300]))
    numpy.testing.assert_allclose(g, [0.5, 0.5], rtol=1e-15)


def test_cross_entropy_labels_stay_variables_in_jit():
    step = cr.jit(cr.value_and_grad(F.cross_entropy_with_logits))
    z = numpy.array([[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]])
    for labels in (numpy.array([0, 1]), numpy.array([2, 2]), numpy.array([1, 0])):
        value, g = step(z, labels)
        ls = sp.log_softmax(z, axis=-1)
        assert value == pytest.approx(-ls[numpy.arange(2), labels].mean(), rel=1e-14)
        numpy.testing.assert_allclose(g, (numpy.exp(ls) - numpy.eye(3)[labels]) / 2, rtol=1e-14)
    assert len(step.cache) == 1  # one trace served every set of labels


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_sigmoid_and_its_gradient_under_jit_and_exported_are_the_eager_bits(dtype):
    # one function (the primitive's) eagerly and under jit's NumPy backend; the exported code
    # writes the same formula out
    x = (numpy.random.default_rng(3).standard_normal(500) * 30).astype(dtype)

    def loss(x):
        return (F.sigmoid(x) * numpy.logaddexp(0, x)).sum()

    eager = cr.value_and_grad(loss)(x)
    jitted = cr.jit(cr.value_and_grad(loss))(x)
    assert eager[0].tobytes() == jitted[0].tobytes()
    assert eager[1].tobytes() == jitted[1].tobytes()
    ns: dict = {}
    exec(cr.explain(loss, x).to_python(), ns)  # noqa: S102 -- our own export
    value, grads = ns["backward"](x)
    assert numpy.asarray(value).tobytes() == eager[0].tobytes()
    assert numpy.asarray(grads["x"]).tobytes() == eager[1].tobytes()
