"""``scipy.special``'s ufuncs as primitives, with their gradient rules.

SciPy's special functions are NumPy ufuncs, so a call on a tensor reaches
``Tensor.__array_ufunc__`` like ``numpy.exp`` does. This module gives each supported one a
primitive whose function is the SciPy ufunc itself (the values are SciPy's, bit for bit),
registers it in :data:`chainrule.engine.primitives.UFUNCS`, and defines its rules, written as
:mod:`chainrule.engine.rules` writes them: NumPy code on ``(g, out, *inputs)``. The rules call
SciPy's ufuncs (the rule of ``gammaln`` calls ``scipy.special.digamma``), which on recording
tensors come back to these primitives, so the same rule serves ``backward()``, gradients of
gradients, ``jit``, ``explain`` and ``vmap``.

Importing SciPy is slow, so ``import chainrule`` does not import this module: ``tensor.py``
loads it the first time ``__array_ufunc__`` meets a ufunc it does not know while
``scipy.special`` has been imported (a SciPy ufunc can only be called once it has).

Real floating-point inputs only: a complex value is refused as for any primitive whose rules
are not written for complex values. Arguments that are integer orders or shape parameters
(``zeta``'s ``s``, ``gammainc``'s ``a``) get no gradient: a gradient that reaches one raises.

Example
-------
>>> import numpy, scipy.special, chainrule as cr
>>> float(cr.grad(lambda x: scipy.special.gammaln(x))(3.0))  # digamma(3) = 3/2 - euler_gamma
0.9227843350984671
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy

from . import primitives as P
from .primitives import Primitive
from .rules import defvjp, logistic_slope

__all__ = ["PRIMITIVES"]

sc: Any = importlib.import_module("scipy.special")
_ufuncs: Any = importlib.import_module("scipy.special._ufuncs")

# The primitive of each supported function, by its name in scipy.special.
PRIMITIVES: dict[str, Primitive] = {}


def _special(name: str, uf: Any = None) -> Primitive:
    """The primitive of ``scipy.special.<name>`` (the ufunc ``uf``, by default that attribute),
    registered in the ufunc table; named ``scipy.special.<name>``, which is how messages and the
    code that ``jit`` and ``explain`` write call it."""
    uf = getattr(sc, name) if uf is None else uf
    prim = P._ufunc(uf, f"scipy.special.{name}")
    PRIMITIVES[name] = prim
    return prim


def _shape_parameter(name: str, arg: str) -> Callable[..., Any]:
    """The rule of an argument whose derivative chainrule does not have: it raises."""

    def rule(g: Any, out: Any, *inputs: Any) -> Any:
        raise TypeError(
            f"scipy.special.{name}: chainrule has no derivative in the parameter {arg} (only "
            f"in the other argument); pass {arg} as a constant (a plain array, or t.detach() "
            "of a tensor) if no gradient should flow to it"
        )

    return rule


_2_SQRTPI = 2 / math.sqrt(math.pi)  # d/dx erf(x) = 2/sqrt(pi) exp(-x^2)
_SQRTPI_2 = math.sqrt(math.pi) / 2
_SQRT_2PI = math.sqrt(2 * math.pi)
_1_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_PI = math.sqrt(2 / math.pi)
_1_SQRT2 = 1 / math.sqrt(2)
_NAN, _INF = math.nan, math.inf

expit = _special("expit")
log_expit = _special("log_expit")
logit = _special("logit")
erf = _special("erf")
erfc = _special("erfc")
erfinv = _special("erfinv")
erfcinv = _special("erfcinv")
erfcx = _special("erfcx")
ndtr = _special("ndtr")
log_ndtr = _special("log_ndtr")
ndtri = _special("ndtri")
gammaln = _special("gammaln")
gamma = _special("gamma")
loggamma = _special("loggamma")
rgamma = _special("rgamma")
digamma = _special("digamma")  # scipy.special.psi is the same ufunc
xlogy = _special("xlogy")
xlog1py = _special("xlog1py")
entr = _special("entr")
rel_entr = _special("rel_entr")
kl_div = _special("kl_div")
betaln = _special("betaln")
beta = _special("beta")
i0 = _special("i0")
i1 = _special("i1")
i0e = _special("i0e")
i1e = _special("i1e")
huber = _special("huber")
pseudo_huber = _special("pseudo_huber")
gammainc = _special("gammainc")
gammaincc = _special("gammaincc")
# The Hurwitz zeta function zeta(s, x): scipy.special.zeta(s, x) is a Python function that calls
# this ufunc (a ufunc itself in older SciPy). The derivatives of digamma are its values in x.
_zeta_ufunc = sc.zeta if isinstance(sc.zeta, numpy.ufunc) else getattr(_ufuncs, "_zeta", None)
zeta = _special("zeta", _zeta_ufunc) if _zeta_ufunc is not None else None


def _pole(x: Any) -> Any:
    """Where ``x`` is 0, -1, -2, ...: the poles of the gamma function."""
    return (x <= 0) & (x == numpy.floor(x))


def _rgamma_dx(g: Any, out: Any, x: Any) -> Any:
    # d/dx 1/Gamma(x) = -psi(x) / Gamma(x); at the poles x = -n, where 1/Gamma is 0 and psi is
    # infinite, the derivative of the reflection form sin(pi x) Gamma(1 - x) / pi:
    # cos(pi x) Gamma(1 - x) - sin(pi x) Gamma(1 - x) psi(1 - x) / pi, = (-1)^n n! at x = -n
    # (written whole, so that its own derivative is the second derivative there too).
    # Each branch reads only the points it serves (the other points get 0.5 and 0), so
    # neither branch is infinite where it is not selected.
    pole = _pole(x)
    xs = numpy.where(pole, 0.5, x)
    xp = numpy.where(pole, x, 0.0)
    gp = sc.gamma(1 - xp)
    sin_term = numpy.sin(xp * math.pi) * (1 / math.pi) * gp * sc.digamma(1 - xp)
    at_pole = numpy.cos(xp * math.pi) * gp - sin_term
    return g * numpy.where(pole, at_pole, -(out * sc.digamma(xs)))


def _digamma_dx(g: Any, out: Any, x: Any) -> Any:
    # d/dx psi(x) = psi'(x) = zeta(2, x) (the Hurwitz zeta function; x < 0 too)
    return g * sc.zeta(2, x)


def _zeta_dx(g: Any, out: Any, s: Any, x: Any) -> Any:
    # d/dx zeta(s, x) = d/dx sum_k (k + x)^-s = -s zeta(s + 1, x)
    return g * (-s * sc.zeta(s + 1, x))


def _xlog1py_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d/dx x log(1 + y) = log1p(y); 0 where x == 0 and y <= -1
    return g * numpy.log1p(numpy.where((x == 0) & (y <= -1), 0, y))


def _xlog1py_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d/dy x log(1 + y) = x / (1 + y); exactly 0 where x == 0, y == -1 included
    return g * (x / numpy.where((x == 0) & (y == -1), 1, 1 + y))


def _entr_dx(g: Any, out: Any, x: Any) -> Any:
    # entr(x) = -x log x (x > 0), 0 at 0, -inf for x < 0. d/dx = -(log x + 1) for x > 0; at 0 its
    # one-sided limit +inf (as PyTorch's entr); NaN for x < 0, where the value is -inf.
    pos = x > 0
    inside = -(numpy.log(numpy.where(pos, x, 1)) + 1)
    return g * numpy.where(pos, inside, numpy.where(x == 0, _INF, _NAN))


def _rel_entr_parts(x: Any, y: Any) -> tuple[Any, Any, Any]:
    ok = (x > 0) & (y > 0)
    return ok, numpy.where(ok, x, 1), numpy.where(ok, y, 1)


def _rel_entr_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # rel_entr = x log(x / y) for x, y > 0; 0 at x == 0, y >= 0; inf elsewhere.
    # d/dx = log(x / y) + 1; at x == 0 < y its one-sided limit -inf; NaN where the value is inf
    # or at (0, 0) (inf just beside it).
    ok, xs, ys = _rel_entr_parts(x, y)
    edge = numpy.where((x == 0) & (y > 0), -_INF, _NAN)
    return g * numpy.where(ok, numpy.log(xs / ys) + 1, edge)


def _rel_entr_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d/dy = -x / y; 0 where x == 0 and y >= 0 (the value is 0 there), NaN where it is inf
    ok, xs, ys = _rel_entr_parts(x, y)
    return g * numpy.where(ok, -xs / ys, numpy.where((x == 0) & (y >= 0), 0.0, _NAN))


def _kl_div_dx(g: Any, out: Any, x: Any, y: Any) -> Any:
    # kl_div = x log(x / y) - x + y for x, y > 0; y at x == 0, y >= 0; inf elsewhere.
    # d/dx = log(x / y); at x == 0 < y its one-sided limit -inf; NaN where the value is inf
    ok, xs, ys = _rel_entr_parts(x, y)
    edge = numpy.where((x == 0) & (y > 0), -_INF, _NAN)
    return g * numpy.where(ok, numpy.log(xs / ys), edge)


def _kl_div_dy(g: Any, out: Any, x: Any, y: Any) -> Any:
    # d/dy = 1 - x / y; 1 where x == 0 and y >= 0 (the value is y there), NaN where it is inf
    ok, xs, ys = _rel_entr_parts(x, y)
    return g * numpy.where(ok, 1 - xs / ys, numpy.where((x == 0) & (y >= 0), 1.0, _NAN))


def _over_x(x: Any) -> Any:
    return numpy.where(x == 0, 1, x)


def _i1_dx(g: Any, out: Any, x: Any) -> Any:
    # I1'(x) = I0(x) - I1(x) / x (DLMF 10.29.2), 1/2 at x = 0
    return g * numpy.where(x == 0, 0.5, sc.i0(x) - out / _over_x(x))


def _i0e_dx(g: Any, out: Any, x: Any) -> Any:
    # i0e = exp(-|x|) I0(x): d/dx = exp(-|x|) (I1(x) - sign(x) I0(x)) = i1e(x) - sign(x) i0e(x)
    # (0 at the kink x = 0, as abs's rule)
    return g * (sc.i1e(x) - numpy.sign(x) * out)


def _i1e_dx(g: Any, out: Any, x: Any) -> Any:
    # i1e = exp(-|x|) I1(x): d/dx = i0e(x) - i1e(x) / x - sign(x) i1e(x); 1/2 at x = 0
    inside = sc.i0e(x) - out / _over_x(x) - numpy.sign(x) * out
    return g * numpy.where(x == 0, 0.5, inside)


def _huber_ddelta(g: Any, out: Any, delta: Any, r: Any) -> Any:
    # huber = r^2 / 2 for |r| <= delta, delta (|r| - delta / 2) beyond, inf for delta < 0:
    # d/ddelta = 0 inside, |r| - delta beyond (continuous at |r| == delta); NaN for delta < 0
    a = numpy.absolute(r)
    inside = numpy.where(a <= delta, 0.0, a - delta)
    return g * numpy.where(delta < 0, _NAN, inside)


def _huber_dr(g: Any, out: Any, delta: Any, r: Any) -> Any:
    # d/dr = r inside, delta sign(r) beyond (continuous); NaN for delta < 0
    inside = numpy.where(numpy.absolute(r) <= delta, r, delta * numpy.sign(r))
    return g * numpy.where(delta < 0, _NAN, inside)


def _pseudo_huber_parts(delta: Any, r: Any) -> tuple[Any, Any, Any]:
    ok = delta > 0
    d = numpy.where(ok, delta, 1)
    s = numpy.hypot(1, r / d)  # sqrt(1 + (r / delta)^2), without overflow
    return ok, d, s


def _pseudo_huber_ddelta(g: Any, out: Any, delta: Any, r: Any) -> Any:
    # pseudo_huber = delta^2 (s - 1), s = sqrt(1 + u^2), u = r / delta:
    # d/ddelta = 2 delta (s - 1) - r^2 / (delta s) = delta (s - 1)^2 / s, with s - 1 written
    # u^2 / (s + 1) (no cancellation for small u). At delta == 0, where the value is 0 for every
    # r, the one-sided limit |r|; NaN for delta < 0 (the value is inf).
    ok, d, s = _pseudo_huber_parts(delta, r)
    u = r / d
    t = u * (u / (s + 1))
    edge = numpy.where(delta == 0, numpy.absolute(r), _NAN)
    return g * numpy.where(ok, d * (t * t) / s, edge)


def _pseudo_huber_dr(g: Any, out: Any, delta: Any, r: Any) -> Any:
    # d/dr = delta^2 * u / (delta s) = r / s; 0 at delta == 0; NaN for delta < 0
    ok, d, s = _pseudo_huber_parts(delta, r)
    return g * numpy.where(ok, r / s, numpy.where(delta == 0, 0.0, _NAN))


def _gammainc_density(a: Any, x: Any) -> Any:
    # d/dx P(a, x) = x^(a-1) e^-x / Gamma(a), as exp((a - 1) log x - x - gammaln(a)); xlogy makes
    # (a - 1) log x exactly 0 at a == 1, x == 0 (the density is 1 there, not NaN)
    return numpy.exp(sc.xlogy(a - 1, x) - x - sc.gammaln(a))


# fmt: off
defvjp(expit, lambda g, out, x: g * logistic_slope(x))       # the logistic function: sigmoid's
defvjp(log_expit, lambda g, out, x: g * sc.expit(-x))      # d/dx log s(x) = 1 - s(x) = s(-x)
defvjp(logit, lambda g, out, p: g / (p * (1 - p)))          # d/dp log(p / (1 - p))
defvjp(erf, lambda g, out, x: g * (_2_SQRTPI * numpy.exp(-numpy.square(x))))
defvjp(erfc, lambda g, out, x: g * (-_2_SQRTPI * numpy.exp(-numpy.square(x))))
# y = erfinv(x): erf(y) = x, so dy/dx = 1 / erf'(y) = sqrt(pi)/2 exp(y^2); erfcinv's negated
defvjp(erfinv, lambda g, out, x: g * (_SQRTPI_2 * numpy.exp(numpy.square(out))))
defvjp(erfcinv, lambda g, out, x: g * (-_SQRTPI_2 * numpy.exp(numpy.square(out))))
# erfcx = exp(x^2) erfc(x): d/dx = 2 x erfcx(x) - 2/sqrt(pi) (PyTorch's formula too)
defvjp(erfcx, lambda g, out, x: g * (2 * x * out - _2_SQRTPI))
defvjp(ndtr, lambda g, out, x: g * (_1_SQRT_2PI * numpy.exp(numpy.square(x) * -0.5)))  # phi(x)
# d/dx log Phi(x) = phi(x) / Phi(x) = sqrt(2/pi) / erfcx(-x / sqrt 2), since
# Phi(x) = erfc(-x/sqrt 2) / 2 = exp(-x^2/2) erfcx(-x/sqrt 2) / 2: finite at any x (x -> -inf: -x)
defvjp(log_ndtr, lambda g, out, x: g * (_SQRT_2_PI / sc.erfcx(x * -_1_SQRT2)))
# y = ndtri(p): Phi(y) = p, so dy/dp = 1 / phi(y) = sqrt(2 pi) exp(y^2 / 2)
defvjp(ndtri, lambda g, out, p: g * (_SQRT_2PI * numpy.exp(numpy.square(out) * 0.5)))
defvjp(gammaln, lambda g, out, x: g * sc.digamma(x))          # d/dx log|Gamma(x)| = psi(x)
defvjp(gamma, lambda g, out, x: g * (out * sc.digamma(x)))    # Gamma'(x) = Gamma(x) psi(x)
defvjp(loggamma, lambda g, out, x: g * sc.digamma(x))         # real x
defvjp(rgamma, _rgamma_dx)
defvjp(digamma, _digamma_dx)
if zeta is not None:
    defvjp(zeta, _shape_parameter("zeta", "s"), _zeta_dx)
defvjp(xlogy, *P.xlogy.vjps)  # chainrule.functions.xlogy's rules (its conventions at 0)
defvjp(xlog1py, _xlog1py_dx, _xlog1py_dy)
defvjp(entr, _entr_dx)
defvjp(rel_entr, _rel_entr_dx, _rel_entr_dy)
defvjp(kl_div, _kl_div_dx, _kl_div_dy)
# B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b): d/da log B = psi(a) - psi(a + b)
defvjp(betaln, lambda g, out, a, b: g * (sc.digamma(a) - sc.digamma(a + b)),
               lambda g, out, a, b: g * (sc.digamma(b) - sc.digamma(a + b)))
defvjp(beta, lambda g, out, a, b: g * (out * (sc.digamma(a) - sc.digamma(a + b))),
             lambda g, out, a, b: g * (out * (sc.digamma(b) - sc.digamma(a + b))))
defvjp(i0, lambda g, out, x: g * sc.i1(x))                    # I0' = I1
defvjp(i1, _i1_dx)
defvjp(i0e, _i0e_dx, kink=lambda x: numpy.sign(x))
defvjp(i1e, _i1e_dx)
defvjp(huber, _huber_ddelta, _huber_dr, kink=lambda delta, r: numpy.absolute(r) <= delta)
defvjp(pseudo_huber, _pseudo_huber_ddelta, _pseudo_huber_dr)
# regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 - P(a, x): in x only
defvjp(gammainc, _shape_parameter("gammainc", "a"),
                 lambda g, out, a, x: g * _gammainc_density(a, x))
defvjp(gammaincc, _shape_parameter("gammaincc", "a"),
                  lambda g, out, a, x: -g * _gammainc_density(a, x))
# fmt: on
