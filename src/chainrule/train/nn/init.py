"""Weight initialisers (PyTorch's ``torch.nn.init``), drawing from a ``numpy.random.Generator``.

Two forms of each:

* ``kaiming_uniform(shape, rng=..., ...)`` returns a new NumPy array;
* ``kaiming_uniform_(tensor, ..., generator=...)`` overwrites a parameter's values in place
  (outside the graph) and returns it, as in PyTorch.

``rng``/``generator`` is a ``numpy.random.Generator``, an int seed, or None for this module's
default generator (seeded with 0 at import, reseeded by :func:`manual_seed`), so models are
reproducible by default.

Fans follow PyTorch: for a weight of shape ``(out, in, *kernel)``, ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

import chainrule as cr

__all__ = [
    "manual_seed",
    "default_generator",
    "calculate_gain",
    "fan_in_and_fan_out",
    "kaiming_uniform",
    "kaiming_normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "glorot_uniform",
    "glorot_normal",
    "zeros",
    "ones",
    "uniform",
    "normal",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "he_uniform_",
    "he_normal_",
    "glorot_uniform_",
    "glorot_normal_",
    "zeros_",
    "ones_",
    "constant_",
    "uniform_",
    "normal_",
    "trunc_normal",
    "orthogonal",
    "trunc_normal_",
    "orthogonal_",
]

_default = numpy.random.default_rng(0)


def manual_seed(seed: int) -> numpy.random.Generator:
    """Reseed the default generator used when no ``rng`` is given; return it.

    Example
    -------
    >>> from chainrule import nn
    >>> _ = nn.init.manual_seed(0); a = nn.Linear(2, 2).weight.data.copy()
    >>> _ = nn.init.manual_seed(0); b = nn.Linear(2, 2).weight.data.copy()
    >>> bool((a == b).all())
    True
    """
    global _default
    _default = numpy.random.default_rng(seed)
    return _default


def default_generator() -> numpy.random.Generator:
    """The generator used when no ``rng`` is given.

    Example
    -------
    >>> from chainrule.nn import init
    >>> type(init.default_generator()).__name__
    'Generator'
    """
    return _default


def as_generator(rng: Any) -> numpy.random.Generator:
    """``rng`` as a ``numpy.random.Generator`` (None: the default one; int: a new seeded one)."""
    if rng is None:
        return _default
    if isinstance(rng, numpy.random.Generator):
        return rng
    if isinstance(rng, (int, numpy.integer)) and not isinstance(rng, bool):
        return numpy.random.default_rng(int(rng))
    raise TypeError(
        f"expected a numpy.random.Generator, an int seed or None, got {type(rng).__name__}"
    )


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    linear/conv/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope**2))
    (slope ``param``, default 0.01); selu: 3/4.

    Example
    -------
    >>> from chainrule.nn import init
    >>> round(init.calculate_gain("relu"), 6)
    1.414214
    """
    linear = {"linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid"}
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` = ``(out, in, *kernel)``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> init.fan_in_and_fan_out((16, 3, 5, 5))
    (75, 400)
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a weight with at least 2 dimensions, got shape {shape}"
        )
    receptive = int(numpy.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: tuple[int, ...], mode: str) -> int:
    fan_in, fan_out = fan_in_and_fan_out(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if numpy.ndim(shape) == 0 else tuple(int(s) for s in shape)


def uniform(
    shape: Any, low: float = 0.0, high: float = 1.0, rng: Any = None, dtype: Any = numpy.float64
) -> numpy.ndarray:
    """Values drawn from U(low, high).

    Example
    -------
    >>> from chainrule.nn import init
    >>> w = init.uniform((2, 3), -1, 1, rng=0)
    >>> w.shape, bool((abs(w) <= 1).all())
    ((2, 3), True)
    """
    return as_generator(rng).uniform(low, high, _shape(shape)).astype(dtype)


def normal(
    shape: Any, mean: float = 0.0, std: float = 1.0, rng: Any = None, dtype: Any = numpy.float64
) -> numpy.ndarray:
    """Values drawn from N(mean, std**2).

    Example
    -------
    >>> from chainrule.nn import init
    >>> init.normal((2, 2), rng=0).shape
    (2, 2)
    """
    return (mean + std * as_generator(rng).standard_normal(_shape(shape))).astype(dtype)


def zeros(shape: Any, dtype: Any = numpy.float64) -> numpy.ndarray:
    """Zeros of ``shape``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> init.zeros(2)
    array([0., 0.])
    """
    return numpy.zeros(_shape(shape), dtype=dtype)


def ones(shape: Any, dtype: Any = numpy.float64) -> numpy.ndarray:
    """Ones of ``shape``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> init.ones(2)
    array([1., 1.])
    """
    return numpy.ones(_shape(shape), dtype=dtype)


def kaiming_uniform(
    shape: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: Any = None,
    dtype: Any = numpy.float64,
) -> numpy.ndarray:
    """He/Kaiming uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``; with the defaults (leaky_relu, a=0) that is
    sqrt(2), i.e. ``b = sqrt(6 / fan_in)``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> w = init.kaiming_uniform((64, 24), rng=0)
    >>> bool(abs(w).max() <= (6 / 24) ** 0.5)
    True
    """
    shape = _shape(shape)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(shape, -bound, bound, rng, dtype)


def kaiming_normal(
    shape: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: Any = None,
    dtype: Any = numpy.float64,
) -> numpy.ndarray:
    """He/Kaiming normal: N(0, std**2) with ``std = gain / sqrt(fan)``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> w = init.kaiming_normal((400, 300), nonlinearity="relu", rng=0)
    >>> round(float(w.std() * 300 ** 0.5), 1)
    1.4
    """
    shape = _shape(shape)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return normal(shape, 0.0, std, rng, dtype)


def xavier_uniform(
    shape: Any, gain: float = 1.0, rng: Any = None, dtype: Any = numpy.float64
) -> numpy.ndarray:
    """Glorot/Xavier uniform: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> w = init.xavier_uniform((30, 20), rng=0)
    >>> bool(abs(w).max() <= (6 / 50) ** 0.5)
    True
    """
    shape = _shape(shape)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -bound, bound, rng, dtype)


def xavier_normal(
    shape: Any, gain: float = 1.0, rng: Any = None, dtype: Any = numpy.float64
) -> numpy.ndarray:
    """Glorot/Xavier normal: N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Example
    -------
    >>> from chainrule.nn import init
    >>> init.xavier_normal((3, 2), rng=0).shape
    (3, 2)
    """
    shape = _shape(shape)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


he_uniform = kaiming_uniform
he_normal = kaiming_normal
glorot_uniform = xavier_uniform
glorot_normal = xavier_normal


# --- in-place forms (PyTorch's names, with a trailing underscore) ------------------------------


def _write(t: Any, values: numpy.ndarray) -> Any:
    if isinstance(t, cr.Tensor):
        with cr.no_grad():
            t.data = values.astype(t.dtype)
        return t
    if isinstance(t, numpy.ndarray):
        t[...] = values
        return t
    raise TypeError(f"expected a chainrule tensor or a NumPy array, got {type(t).__name__}")


def _dtype(t: Any) -> Any:
    return t.dtype


def kaiming_uniform_(
    tensor: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Any:
    """Overwrite ``tensor`` with :func:`kaiming_uniform` values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> w = nn.Parameter(numpy.empty((4, 3)))
    >>> nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=0).shape
    (4, 3)
    """
    return _write(
        tensor, kaiming_uniform(tensor.shape, a, mode, nonlinearity, generator, _dtype(tensor))
    )


def kaiming_normal_(
    tensor: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Any:
    """Overwrite ``tensor`` with :func:`kaiming_normal` values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.kaiming_normal_(nn.Parameter(numpy.empty((4, 3))), generator=0).shape
    (4, 3)
    """
    return _write(
        tensor, kaiming_normal(tensor.shape, a, mode, nonlinearity, generator, _dtype(tensor))
    )


def xavier_uniform_(tensor: Any, gain: float = 1.0, generator: Any = None) -> Any:
    """Overwrite ``tensor`` with :func:`xavier_uniform` values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.xavier_uniform_(nn.Parameter(numpy.empty((4, 3))), generator=0).shape
    (4, 3)
    """
    return _write(tensor, xavier_uniform(tensor.shape, gain, generator, _dtype(tensor)))


def xavier_normal_(tensor: Any, gain: float = 1.0, generator: Any = None) -> Any:
    """Overwrite ``tensor`` with :func:`xavier_normal` values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.xavier_normal_(nn.Parameter(numpy.empty((4, 3))), generator=0).shape
    (4, 3)
    """
    return _write(tensor, xavier_normal(tensor.shape, gain, generator, _dtype(tensor)))


he_uniform_ = kaiming_uniform_
he_normal_ = kaiming_normal_
glorot_uniform_ = xavier_uniform_
glorot_normal_ = xavier_normal_


def zeros_(tensor: Any) -> Any:
    """Overwrite ``tensor`` with zeros; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.zeros_(nn.Parameter(numpy.ones(2))).data
    array([0., 0.])
    """
    return _write(tensor, numpy.zeros(tensor.shape))


def ones_(tensor: Any) -> Any:
    """Overwrite ``tensor`` with ones; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.ones_(nn.Parameter(numpy.zeros(2))).data
    array([1., 1.])
    """
    return _write(tensor, numpy.ones(tensor.shape))


def constant_(tensor: Any, val: float) -> Any:
    """Overwrite ``tensor`` with ``val``; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.constant_(nn.Parameter(numpy.zeros(2)), 0.5).data
    array([0.5, 0.5])
    """
    return _write(tensor, numpy.full(tensor.shape, float(val)))


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Any:
    """Overwrite ``tensor`` with U(a, b) values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.uniform_(nn.Parameter(numpy.zeros(2)), generator=0).shape
    (2,)
    """
    return _write(tensor, uniform(tensor.shape, a, b, generator, _dtype(tensor)))


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Any:
    """Overwrite ``tensor`` with N(mean, std**2) values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> nn.init.normal_(nn.Parameter(numpy.zeros(2)), generator=0).shape
    (2,)
    """
    return _write(tensor, normal(tensor.shape, mean, std, generator, _dtype(tensor)))


def trunc_normal(
    shape: Any,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    rng: Any = None,
    dtype: Any = numpy.float64,
) -> numpy.ndarray:
    """N(mean, std**2) values conditioned to lie in ``[a, b]`` (absolute bounds, as PyTorch's
    ``trunc_normal_``), drawn by rejection, so the distribution is exactly the truncated one.

    Example
    -------
    >>> from chainrule.nn import init
    >>> v = init.trunc_normal((1000,), std=1.0, a=-0.5, b=0.5, rng=0)
    >>> bool(v.min() >= -0.5 and v.max() <= 0.5)
    True
    """
    if not a < b:
        raise ValueError(f"trunc_normal: need a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal: std must be positive, got {std}")
    g = as_generator(rng)
    shape = _shape(shape)
    out = g.normal(mean, std, shape)
    bad = (out < a) | (out > b)
    tries = 0
    while bad.any():
        tries += 1
        if tries > 10000:
            raise ValueError(
                f"trunc_normal: [a, b] = [{a}, {b}] holds almost no mass of N({mean}, {std}**2)"
            )
        out[bad] = g.normal(mean, std, int(bad.sum()))
        bad = (out < a) | (out > b)
    return numpy.asarray(out, dtype=dtype)


def orthogonal(
    shape: Any, gain: float = 1.0, rng: Any = None, dtype: Any = numpy.float64
) -> numpy.ndarray:
    """A (semi-)orthogonal matrix (PyTorch's ``orthogonal_``): the rows of ``shape[0]`` by
    ``prod(shape[1:])`` are orthonormal (or the columns, whichever are fewer), times ``gain``;
    from the QR decomposition of a Gaussian matrix with the signs of R's diagonal, so it is
    uniformly (Haar) distributed.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import init
    >>> q = init.orthogonal((3, 5), rng=0)
    >>> bool(numpy.allclose(q @ q.T, numpy.eye(3)))
    True
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal: needs at least 2 dimensions, got shape {shape}")
    rows = shape[0]
    cols = int(numpy.prod(shape[1:]))
    flat = as_generator(rng).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = numpy.linalg.qr(flat)
    q = q * numpy.sign(numpy.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def trunc_normal_(
    tensor: Any,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: Any = None,
) -> Any:
    """Overwrite ``tensor`` with :func:`trunc_normal` values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> w = nn.init.trunc_normal_(nn.Parameter(numpy.zeros((2, 3))), std=0.02, generator=0)
    >>> bool(abs(w.data).max() <= 2.0)
    True
    """
    return _write(tensor, trunc_normal(tensor.shape, mean, std, a, b, generator, _dtype(tensor)))


def orthogonal_(tensor: Any, gain: float = 1.0, generator: Any = None) -> Any:
    """Overwrite ``tensor`` with :func:`orthogonal` values; return it.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> w = nn.init.orthogonal_(nn.Parameter(numpy.zeros((4, 4))), generator=0)
    >>> bool(numpy.allclose(w.data.T @ w.data, numpy.eye(4)))
    True
    """
    return _write(tensor, orthogonal(tensor.shape, gain, generator, _dtype(tensor)))
