"""``summary(model, *inputs)``: the layers of a model with output shapes and parameter counts.

Example
-------
>>> import numpy
>>> from chainrule import nn
>>> model = nn.MLP([4, 8, 3], rng=0)
>>> model.layers[0].requires_grad_(False)
Linear(in_features=4, out_features=8, bias=True)
>>> print(model.summary(numpy.zeros((2, 4))))
Layer (type)         Output shape  Params
-----------------------------------------
layers (Sequential)  (2, 3)             0
layers.0 (Linear)    (2, 8)            40 (frozen)
layers.1 (ReLU)      (2, 8)             0
layers.2 (Linear)    (2, 3)            27
-----------------------------------------
Total params: 67
Trainable params: 27
Frozen params: 40
"""

from __future__ import annotations

from typing import Any

import numpy

import chainrule as cr

from .module import Module

__all__ = ["summary"]


def _shapes(out: Any) -> str:
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_shapes(o) for o in out) + "]"
    return str(tuple(numpy.shape(out)))


def summary(model: Module, *inputs: Any) -> str:
    """The table of :meth:`Module.summary`: one row per sub-module (own parameters only; a
    row says ``(frozen)`` when they do not require grad), then the totals.

    Example
    -------
    >>> from chainrule import nn
    >>> from chainrule.train.nn.summary import summary
    >>> summary(nn.Linear(2, 3)).splitlines()[-3]
    'Total params: 9'
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a chainrule.nn.Module, got {type(model).__name__}")
    named = [(n, m) for n, m in model.named_modules() if n]
    shapes: dict[int, str] = {}
    if inputs:
        handles = [
            m.register_forward_hook(
                lambda mod, args, out: shapes.__setitem__(id(mod), _shapes(out))
            )
            for _, m in named
        ]
        was = model.training
        model.eval()
        try:
            with cr.no_grad():
                out = model(*inputs)
            shapes[id(model)] = _shapes(out)
        finally:
            model.train(was)
            for h in handles:
                h.remove()
    rows = []
    for name, m in named or [("", model)]:
        own = [p for p in m._parameters.values() if p is not None]
        count = int(sum(p.size for p in own))
        frozen = bool(own) and not any(p.requires_grad for p in own)
        rows.append(
            (
                f"{name or type(m).__name__} ({type(m).__name__})" if name else type(m).__name__,
                shapes.get(id(m), "?" if inputs else ""),
                f"{count}" + (" (frozen)" if frozen else ""),
            )
        )
    w0 = max(len("Layer (type)"), *(len(r[0]) for r in rows))
    w1 = max(len("Output shape"), *(len(r[1]) for r in rows)) if inputs else 0
    lines = []
    head = f"{'Layer (type)':<{w0}}  " + (f"{'Output shape':<{w1}}  " if inputs else "")
    lines.append(head + f"{'Params':>6}")
    width = len(lines[0])
    lines.append("-" * width)
    for a, b, c in rows:
        num, _, tag = c.partition(" ")
        cell = f"{num:>6}" + (f" {tag}" if tag else "")
        lines.append(f"{a:<{w0}}  " + (f"{b:<{w1}}  " if inputs else "") + cell)
    lines.append("-" * width)
    total = sum(p.size for p in model.parameters())
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Frozen params: {total - trainable:,}",
    ]
    return "\n".join(line.rstrip() for line in lines)
