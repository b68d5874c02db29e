"""Never silently wrong: jit signatures that tell apart what changes results, and stable
functions that are accurate (not only finite) on both sides."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy
import pytest

import chainrule as cr
from chainrule import functions as F


def test_jit_tells_signed_zeros_apart():
    f = cr.jit(lambda y, x: numpy.arctan2(y, numpy.ones(1) * x))
    assert f(0.0, -1.0)[0] == math.pi
    assert f(-0.0, -1.0)[0] == -math.pi  # not the program traced for +0.0
    assert f(0.0, -1.0)[0] == math.pi


def test_a_nan_argument_does_not_retrace_at_every_call():
    g = cr.jit(lambda x, c: x * c)
    for _ in range(20):
        out = g(numpy.ones(2), float("nan"))
    assert numpy.isnan(out).all()
    assert g.cache_info()["signatures"] == 1


@pytest.mark.parametrize("x", [-40.0, -30.0, -5.0, 0.0, 5.0, 30.0, 40.0])
def test_sigmoid_gradient_is_accurate_on_both_sides(x):
    with mpmath.workdps(60):
        s = 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
        true = float(s * (1 - s))
    assert float(cr.grad(F.sigmoid)(x)) == pytest.approx(true, rel=1e-14, abs=0)


def test_standardisation_keeps_a_huge_feature_instead_of_zeroing_it():
    from chainrule.data import Standardizer

    X = numpy.array([[1e300, 1.0], [-1e300, 2.0], [5e299, 3.0]])
    Z = Standardizer().fit_transform(X)
    # the same as standardising X / 1e300 (exact spread, computed without overflow)
    small = X / numpy.array([1e300, 1.0])
    expected = (small - small.mean(0)) / small.std(0)
    numpy.testing.assert_allclose(Z, expected, rtol=1e-14)
    # ordinary data: the same bits as the textbook formula
    Y = numpy.random.default_rng(0).standard_normal((50, 4)) * 7 + 3
    s = Standardizer().fit(Y)
    assert numpy.array_equal(s.mean, Y.mean(0)) and numpy.array_equal(s.scale, Y.std(0))


def test_huge_whole_number_labels_stay_distinct_classes(tmp_path):
    from chainrule.data import load_csv

    path = tmp_path / "big.csv"
    path.write_text("a,b,label\n1,2,1e20\n3,4,2e20\n5,6,1e20\n7,8,2e20\n")
    ds = load_csv(path, task="classification")
    assert len(ds.classes) == 2 and sorted(ds.classes) == [1e20, 2e20]
    numpy.testing.assert_array_equal(ds.y, [0, 1, 0, 1])


@pytest.mark.parametrize(
    "f, want",
    [(lambda x: numpy.abs(x * 1j), 1.0), (lambda x: numpy.abs(x * (1 + 2j)) ** 2, 20.0)],
    ids=["abs-of-imaginary", "squared-modulus"],
)
def test_a_complex_intermediate_differentiates_right(f, want):
    # By hand at x = 2: |2j x| = |x| has derivative 1, |x (1+2j)|^2 = 5 x^2 has 10 x = 20.
    # (Taking the real part of the old real-only rules gave -1.0 and -12.0.)
    assert float(cr.grad(f)(2.0)) == pytest.approx(want, rel=1e-14)


def test_a_complex_output_needs_an_explicit_cotangent():
    with pytest.raises(TypeError, match="real-valued output.*complex128.*vjp"):
        cr.grad(lambda x: x * 1j)(2.0)


def test_jit_reads_globals_at_tracing_time_as_documented():
    # docs/guarantees.md: values read from outside the arguments are frozen at the first call
    namespace = {"numpy": numpy, "SCALE": 2.0}
    exec("def f(x):\n    return x * SCALE\n", namespace)
    f = cr.jit(namespace["f"])
    assert f(numpy.ones(1))[0] == 2.0
    namespace["SCALE"] = 3.0
    assert f(numpy.ones(1))[0] == 2.0  # frozen, as documented (and as in JAX)
    assert cr.jit(namespace["f"])(numpy.ones(1))[0] == 3.0  # a new jit reads it again


def test_a_function_without_gradient_given_a_list_is_refused_under_jit_not_frozen():
    f = cr.jit(lambda t: numpy.argpartition(t, [0, 2]) * 1.0)
    with pytest.raises(cr.TracerBoolError, match="argpartition.*frozen"):
        f(numpy.array([3.0, 1.0, 2.0]))


def test_a_plain_output_warns_that_every_gradient_is_zero():
    # float() of a result drops the gradient (the true derivative of sum(w^2) is 2w = [2, 4]):
    # the argument went into recorded operations, so zero would be wrong, and it raises
    with pytest.raises(TypeError, match=r"grad: the function computed with its diff.*float\(t\)"):
        cr.grad(lambda w: float(numpy.sum(w**2)))(numpy.array([1.0, 2.0]))
    # nothing recorded from the argument (float() of the argument itself): zero, with a
    # warning naming the usual causes (the true derivative of x + 1 is 1)
    with pytest.warns(UserWarning, match=r"grad: the function returned a plain float.*float\(t\)"):
        g = cr.grad(lambda x: float(x) + 1.0)(2.0)
    assert float(g) == 0.0
    with pytest.warns(UserWarning, match="value_and_grad: the function returned a plain"):
        cr.value_and_grad(lambda x: 3.0)(1.0)
    # operations without a gradient (sign, floor) make a plain value that truly has derivative
    # 0 almost everywhere (by hand: d/dx 3 sign(x) = 0 at x = 1.1; d2/dx2 |x| = 0 at x = 2.1):
    # zero with the warning, not the error, even after recorded operations (|x|'s inner grad)
    with pytest.warns(UserWarning, match="grad: the function returned a plain"):
        assert float(cr.grad(lambda x: 3.0 * numpy.sign(x))(1.1)) == 0.0
    assert float(cr.grad(cr.grad(numpy.abs))(2.1)) == 0.0  # a recorded constant: no warning
    with pytest.warns(UserWarning, match="grad: the function returned a plain"):
        assert float(cr.grad(lambda x: numpy.floor(x * 2.0))(0.3)) == 0.0
    # item() or .numpy() of a result drops it like float() (d/dw sum(w^2) = 2w): the error
    for drop in (lambda t: t.item(), lambda t: t.numpy()):
        with pytest.raises(TypeError, match=r"grad: the function computed with its diff"):
            cr.grad(lambda w, drop=drop: drop(numpy.sum(w**2)))(numpy.array([1.0, 2.0]))
    # a constant derivative inside another transform, or a recorded constant, is not warned about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(cr.grad(cr.grad(lambda x: 2 * x))(1.0)) == 0.0
        numpy.testing.assert_array_equal(cr.grad(lambda x: (x * 0).sum())(numpy.ones(2)), [0, 0])
