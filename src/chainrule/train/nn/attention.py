"""Attention layers with PyTorch's names, parameters and layouts: ``MultiheadAttention`` and
``TransformerEncoderLayer``.

Example
-------
>>> import numpy
>>> from chainrule import nn
>>> mha = nn.MultiheadAttention(8, 2, batch_first=True, rng=0)
>>> out, weights = mha(numpy.zeros((3, 5, 8)), numpy.zeros((3, 7, 8)), numpy.zeros((3, 7, 8)))
>>> out.shape, weights.shape
((3, 5, 8), (3, 5, 7))
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from . import functional as F
from . import init
from .layers import Dropout, LayerNorm, Linear, _check_positive
from .module import Module, Parameter

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]


class MultiheadAttention(Module):
    """Multi-head scaled dot-product attention, PyTorch's ``nn.MultiheadAttention``.

    ``in_proj_weight`` (3E, E) (Xavier-uniform) and ``in_proj_bias`` (zeros) project query, key
    and value; ``out_proj`` is a ``Linear(E, E)`` with a zero bias.  Inputs (L, N, E), or
    (N, L, E) with ``batch_first``, or unbatched (L, E).  ``attn_mask`` (L, S) or (N * heads,
    L, S): True (or a boolean) marks a pair that may not attend, a float mask is added to the
    scores; ``key_padding_mask`` (N, S): True marks padding keys; ``is_causal`` masks the
    future.  Returns ``(output, weights)``: the weights averaged over the heads (N, L, S), per
    head with ``average_attn_weights=False``, or None with ``need_weights=False``.  A row with
    every key masked gives NaN, as in PyTorch.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> mha = nn.MultiheadAttention(4, 2, rng=0)
    >>> x = numpy.ones((3, 2, 4))
    >>> out, w = mha(x, x, x, is_causal=True, attn_mask=nn.MultiheadAttention.causal_mask(3))
    >>> w.data[0].round(3)          # the first query sees only the first key
    array([[1.   , 0.   , 0.   ],
           [0.5  , 0.5  , 0.   ],
           [0.333, 0.333, 0.333]])
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        _check_positive("MultiheadAttention", embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                f"({num_heads})"
            )
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = embed_dim // num_heads
        self.batch_first, self.dropout_p = batch_first, float(dropout)
        g = init.as_generator(rng)
        self.in_proj_weight = Parameter(
            init.xavier_uniform((3 * embed_dim, embed_dim), rng=g, dtype=dtype)
        )
        if bias:
            self.in_proj_bias = Parameter(init.zeros((3 * embed_dim,), dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, rng=g, dtype=dtype)
        if bias:
            init.zeros_(self.out_proj.bias)
        self.attn_dropout = Dropout(dropout, rng=None if rng is None else g)

    @staticmethod
    def causal_mask(size: int) -> numpy.ndarray:
        """The (size, size) boolean mask that hides the future (True above the diagonal).

        Example
        -------
        >>> from chainrule import nn
        >>> nn.MultiheadAttention.causal_mask(2)
        array([[False,  True],
               [False, False]])
        """
        return numpy.triu(numpy.ones((size, size), dtype=bool), k=1)

    def forward(
        self,
        query: Any,
        key: Any,
        value: Any,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Any, Any]:
        e, h, d = self.embed_dim, self.num_heads, self.head_dim
        qs = F._shape(query)
        if len(qs) not in (2, 3) or qs[-1] != e:
            raise ValueError(
                f"MultiheadAttention: expected query ({'N, L' if self.batch_first else 'L, N'}, "
                f"{e}) or unbatched (L, {e}), got shape {qs}"
            )
        unbatched = len(qs) == 2
        if unbatched:
            query, key, value = (numpy.expand_dims(t, 0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (numpy.transpose(t, (1, 0, 2)) for t in (query, key, value))
        n, length = F._shape(query)[:2]
        s = F._shape(key)[1]
        w, b = self.in_proj_weight, self.in_proj_bias
        q = numpy.matmul(query, numpy.transpose(w[:e]))
        k = numpy.matmul(key, numpy.transpose(w[e : 2 * e]))
        v = numpy.matmul(value, numpy.transpose(w[2 * e :]))
        if b is not None:
            q, k, v = q + b[:e], k + b[e : 2 * e], v + b[2 * e :]

        def heads(t: Any, m: int) -> Any:  # (N, M, E) -> (N, h, M, d)
            return numpy.transpose(numpy.reshape(t, (n, m, h, d)), (0, 2, 1, 3))

        q, k, v = heads(q, length), heads(k, s), heads(v, s)
        scores = numpy.matmul(q, numpy.transpose(k, (0, 1, 3, 2))) / math.sqrt(d)  # N,h,L,S
        blocked = numpy.zeros((n, h, length, s), dtype=bool)
        if is_causal and attn_mask is None:
            attn_mask = self.causal_mask(length)
        if attn_mask is not None:
            am = numpy.asarray(attn_mask)
            if am.shape == (length, s):
                am = numpy.broadcast_to(am, (n, h, length, s))
            elif am.shape == (n * h, length, s):
                am = am.reshape(n, h, length, s)
            else:
                raise ValueError(
                    f"MultiheadAttention: attn_mask must have shape ({length}, {s}) or "
                    f"({n * h}, {length}, {s}), got {am.shape}"
                )
            if am.dtype == bool:
                blocked = blocked | am
            else:
                scores = scores + am
        if key_padding_mask is not None:
            kp = numpy.asarray(key_padding_mask)
            kp = kp[None] if unbatched and kp.ndim == 1 else kp
            if kp.shape != (n, s):
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask must have shape ({n}, {s}), "
                    f"got {kp.shape}"
                )
            if kp.dtype == bool:
                blocked = blocked | kp[:, None, None, :]
            else:
                scores = scores + kp[:, None, None, :]
        if blocked.any():
            scores = numpy.where(blocked, -numpy.inf, scores)
        weights = F.softmax(scores, dim=-1)
        if self.dropout_p and self.training:
            weights = self.attn_dropout(weights)
        out = numpy.matmul(weights, v)  # N, h, L, d
        out = numpy.reshape(numpy.transpose(out, (0, 2, 1, 3)), (n, length, e))
        out = self.out_proj(out)
        if unbatched:
            out = out[0]
        elif not self.batch_first:
            out = numpy.transpose(out, (1, 0, 2))
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = numpy.mean(weights, axis=1)
        return out, (weights[0] if unbatched else weights)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block with residual connections and layer norms,
    PyTorch's ``nn.TransformerEncoderLayer``: ``x = norm1(x + drop(sa(x)))``, ``x = norm2(x +
    drop(linear2(drop(act(linear1(x))))))``, or with ``norm_first`` ``x = x + drop(sa(norm1(x)))``
    and ``x = x + drop(ff(norm2(x)))``.  ``src_mask``, ``src_key_padding_mask`` and
    ``is_causal`` go to the attention.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, rng=0)
    >>> layer(numpy.zeros((3, 5, 8))).shape
    (3, 5, 8)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Any = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        *,
        rng: Any = None,
        dtype: Any = numpy.float64,
    ) -> None:
        super().__init__()
        g = init.as_generator(rng)
        sub = None if rng is None else g
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout, bias, batch_first, rng=g, dtype=dtype
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias, rng=g, dtype=dtype)
        self.dropout = Dropout(dropout, rng=sub)
        self.linear2 = Linear(dim_feedforward, d_model, bias, rng=g, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=sub)
        self.dropout2 = Dropout(dropout, rng=sub)
        if isinstance(activation, str):
            acts = {"relu": F.relu, "gelu": F.gelu}
            if activation not in acts:
                raise ValueError(
                    f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a function, "
                    f"got {activation!r}"
                )
            activation = acts[activation]
        self.activation = activation

    def _sa(self, x: Any, mask: Any, padding: Any, causal: bool) -> Any:
        out, _ = self.self_attn(
            x,
            x,
            x,
            key_padding_mask=padding,
            need_weights=False,
            attn_mask=mask,
            is_causal=causal,
        )
        return self.dropout1(out)

    def _ff(self, x: Any) -> Any:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(
        self,
        src: Any,
        src_mask: Any = None,
        src_key_padding_mask: Any = None,
        is_causal: bool = False,
    ) -> Any:
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff(self.norm2(x))
        x = self.norm1(x + self._sa(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff(x))
