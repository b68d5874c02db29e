"""Recurrent layers with PyTorch's names, parameters and layouts: ``LSTM`` and ``GRU``.

Input (L, N, H_in), or (N, L, H_in) with ``batch_first``, or unbatched (L, H_in); output
(L, N, D * H) (D = 2 when ``bidirectional``) and the final states (D * num_layers, N, H).
Parameters ``weight_ih_l{k}[_reverse]`` (G * H, H_in), ``weight_hh_l{k}[_reverse]`` (G * H, H),
``bias_ih_l{k}``, ``bias_hh_l{k}``, all U(-1/sqrt(H), 1/sqrt(H)); gate order i, f, g, o
(LSTM) and r, z, n (GRU), as PyTorch, so a PyTorch ``state_dict`` loads as it is.

The time loop is plain Python over the (static) sequence length, so ``jit`` unrolls it.

Example
-------
>>> import numpy
>>> from chainrule import nn
>>> lstm = nn.LSTM(3, 5, num_layers=2, batch_first=True, rng=0)
>>> out, (h, c) = lstm(numpy.zeros((4, 7, 3)))
>>> out.shape, h.shape, c.shape
((4, 7, 5), (2, 4, 5), (2, 4, 5))
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from . import functional as F
from . import init
from .layers import _check_positive, _uniform_param
from .module import Module

__all__ = ["LSTM", "GRU"]


class _RNNBase(Module):
    _gates = 1
    _mode = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        name = self._mode
        _check_positive(name, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        g = init.as_generator(rng)
        self.generator = init.default_generator().spawn(1)[0] if rng is None else g
        k = 1.0 / math.sqrt(hidden_size)
        d = 2 if bidirectional else 1
        gh = self._gates * hidden_size
        for layer in range(num_layers):
            for direction in range(d):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                n_in = input_size if layer == 0 else hidden_size * d
                setattr(self, "weight_ih" + sfx, _uniform_param((gh, n_in), k, g, dtype))
                setattr(self, "weight_hh" + sfx, _uniform_param((gh, hidden_size), k, g, dtype))
                if bias:
                    setattr(self, "bias_ih" + sfx, _uniform_param((gh,), k, g, dtype))
                    setattr(self, "bias_hh" + sfx, _uniform_param((gh,), k, g, dtype))

    def _cell(self, xw: Any, h: Any, c: Any, w_hh: Any, b_hh: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def _initial(self, hx: Any, n: int, unbatched: bool, dtype: Any) -> tuple[list[Any], Any]:
        """The initial (h, c) per layer and direction."""
        d = 2 if self.bidirectional else 1
        want = (d * self.num_layers, n, self.hidden_size)
        lstm = self._mode == "LSTM"

        def states(s: Any, what: str) -> Any:
            if s is None:
                return [numpy.zeros((n, self.hidden_size), dtype=dtype)] * (d * self.num_layers)
            shape = F._shape(s)
            expected = want[::2] if unbatched else want
            if shape != expected:
                raise ValueError(
                    f"{self._mode}: {what} must have shape {expected} (D * num_layers, "
                    f"{'' if unbatched else 'N, '}hidden_size), got {shape}"
                )
            if unbatched:
                s = numpy.expand_dims(s, 1)
            return [s[i] for i in range(d * self.num_layers)]

        if lstm:
            if hx is None:
                hx = (None, None)
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
            return states(hx[0], "h_0"), states(hx[1], "c_0")
        return states(hx, "h_0"), None

    def forward(self, input: Any, hx: Any = None) -> Any:
        name = self._mode
        shape = F._shape(input)
        if len(shape) not in (2, 3) or shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: expected input ({'N, L' if self.batch_first else 'L, N'}, "
                f"{self.input_size}) or unbatched (L, {self.input_size}), got shape {shape}"
            )
        unbatched = len(shape) == 2
        x = input
        if unbatched:
            x = numpy.expand_dims(x, 1)
        elif self.batch_first:
            x = numpy.transpose(x, (1, 0, 2))
        length, n = F._shape(x)[0], F._shape(x)[1]
        dt = self.weight_ih_l0.dtype
        h0, c0 = self._initial(hx, n, unbatched, dt)
        d = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(d):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
                b_ih = getattr(self, "bias_ih" + sfx) if self.bias else None
                b_hh = getattr(self, "bias_hh" + sfx) if self.bias else None
                xw = numpy.matmul(x, numpy.transpose(w_ih))  # every time step at once
                if b_ih is not None:
                    xw = xw + b_ih
                idx = layer * d + direction
                h = h0[idx]
                c = None if c0 is None else c0[idx]
                steps = range(length - 1, -1, -1) if direction else range(length)
                seq: list[Any] = [None] * length
                for t in steps:
                    h, c = self._cell(xw[t], h, c, w_hh, b_hh)
                    seq[t] = h
                outs.append(numpy.stack(seq))
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if d == 1 else numpy.concatenate(outs, axis=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True, self.generator)
        out = x
        hn = numpy.stack(h_n)
        cn = numpy.stack(c_n) if self._mode == "LSTM" else None  # type: ignore[arg-type]
        if unbatched:
            out, hn = out[:, 0], hn[:, 0]
            cn = None if cn is None else cn[:, 0]
        elif self.batch_first:
            out = numpy.transpose(out, (1, 0, 2))
        return (out, (hn, cn)) if self._mode == "LSTM" else (out, hn)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTM(_RNNBase):
    """Long short-term memory, PyTorch's ``nn.LSTM``: ``out, (h_n, c_n) = lstm(x, (h_0,
    c_0))``.  Each step: ``i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh)``;
    ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``; ``h' = sigmoid(o) tanh(c')``.  ``dropout``
    applies to the outputs of every layer but the last, in training.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> lstm = nn.LSTM(2, 3, bidirectional=True, rng=0)
    >>> out, (h, c) = lstm(numpy.zeros((5, 2)))          # unbatched (L, H_in)
    >>> out.shape, h.shape, lstm.weight_ih_l0_reverse.shape
    ((5, 6), (2, 3), (12, 2))
    """

    _gates = 4
    _mode = "LSTM"

    def _cell(self, xw: Any, h: Any, c: Any, w_hh: Any, b_hh: Any) -> tuple[Any, Any]:
        z = xw + numpy.matmul(h, numpy.transpose(w_hh))
        if b_hh is not None:
            z = z + b_hh
        n = self.hidden_size
        i, f = F.sigmoid(z[:, :n]), F.sigmoid(z[:, n : 2 * n])
        g, o = numpy.tanh(z[:, 2 * n : 3 * n]), F.sigmoid(z[:, 3 * n :])
        c = f * c + i * g
        return o * numpy.tanh(c), c


class GRU(_RNNBase):
    """Gated recurrent unit, PyTorch's ``nn.GRU``: ``out, h_n = gru(x, h_0)``.  Each step:
    ``r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)``, ``z`` likewise, ``n = tanh(x W_in^T +
    b_in + r (h W_hn^T + b_hn))``, ``h' = (1 - z) n + z h``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> gru = nn.GRU(2, 3, num_layers=2, rng=0)
    >>> out, h = gru(numpy.zeros((5, 4, 2)))
    >>> out.shape, h.shape, gru.weight_hh_l1.shape
    ((5, 4, 3), (2, 4, 3), (9, 3))
    """

    _gates = 3
    _mode = "GRU"

    def _cell(self, xw: Any, h: Any, c: Any, w_hh: Any, b_hh: Any) -> tuple[Any, Any]:
        hw = numpy.matmul(h, numpy.transpose(w_hh))
        if b_hh is not None:
            hw = hw + b_hh
        n = self.hidden_size
        r = F.sigmoid(xw[:, :n] + hw[:, :n])
        z = F.sigmoid(xw[:, n : 2 * n] + hw[:, n : 2 * n])
        cand = numpy.tanh(xw[:, 2 * n :] + r * hw[:, 2 * n :])
        return (1.0 - z) * cand + z * h, None
