"""``numpy.einsum`` through matrix products: what an einsum computes, by BLAS where it pays.

``numpy.einsum`` (``optimize=False``, NumPy's default) runs one nested loop over every index
of the expression, and even ``optimize=True`` keeps a three-operand product such as
``einsum('bi,oij,bj->bo', x, W, y)`` in that loop, because it counts multiplications rather
than asking which of them BLAS can do (256 x 10 x 32 x 32 in float64: 2.3 ms, against 0.1 ms
through a matrix product).  PyTorch and JAX contract two operands at a time with matrix
products; :func:`einsum` does the same for plain arrays:

1. an index that only one operand has and the result lacks is summed out of it first;
2. then, while two or more operands remain, the pair whose result is smallest is contracted:
   its indices become *batch* (in both, still needed), *contracted* (in both, needed nowhere
   else), *left* and *right* (in one of them); the two are transposed and reshaped to
   ``(batch, left, contracted)`` and ``(batch, contracted, right)`` and multiplied by
   ``numpy.matmul``;
3. the last operand is transposed to the result's order.

A pair that is not a real matrix product (nothing to contract, an outer product
``'bi,bj->bij'``; or, in a stack, products of fewer than :data:`MIN_PRODUCT` multiply-adds
each, a row-wise dot ``'ij,ij->i'`` of 3-vectors) is contracted by ``numpy.einsum`` itself,
which does those well; so is a whole expression of fewer than :data:`MIN_WORK`
multiply-adds, one with a repeated index in an operand (a diagonal), an index whose sizes differ
between operands (einsum's broadcasting), mixed dtypes or a dtype other than float32/64 and
complex64/128.  The plan depends only on the subscripts and the shapes, and is kept for the
next call.

The values agree with ``numpy.einsum``'s to rounding (the sums are added in BLAS's order rather
than einsum's), as PyTorch's and JAX's do; the eager pass, the gradient rules and ``jit`` all
call this function, so they agree with each other bit for bit.

>>> import numpy
>>> x, W, y = numpy.ones((64, 16)), numpy.ones((4, 16, 16)), numpy.ones((64, 16))
>>> einsum("bi,oij,bj->bo", x, W, y)[0]
array([256., 256., 256., 256.])
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy

__all__ = ["einsum", "plan"]

# Below this many multiply-adds (the product of every index's size) numpy.einsum's own loop is
# faster than planning, transposing and calling BLAS.
MIN_WORK = 1 << 15
# A pair of a stack (a batch index) goes through matmul only when each of its products has
# at least this many multiply-adds: numpy.matmul costs 10-30 ns per product of a stack, more
# than einsum's loop spends on a 4x4 by 4-vector.
MIN_PRODUCT = 64
_DTYPES = frozenset(numpy.dtype(c) for c in "fdFD")


def einsum(subscripts: str, *operands: Any, optimize: Any = False) -> Any:
    """``numpy.einsum(subscripts, *operands)`` for explicit ``subscripts`` (with ``->``, no
    ``...``), through matrix products where that pays (the module's docstring).

    >>> a, b = numpy.arange(6.0).reshape(2, 3), numpy.arange(12.0).reshape(3, 4)
    >>> bool((einsum("ij,jk->ik", a, b) == a @ b).all())
    True
    """
    if len(operands) > 1 and all(type(o) is numpy.ndarray for o in operands):
        dtype = operands[0].dtype
        if dtype in _DTYPES and all(o.dtype == dtype for o in operands):
            steps = plan(subscripts, tuple(o.shape for o in operands))
            if steps is not None:
                return _run(steps, list(operands))
    return numpy.einsum(subscripts, *operands, optimize=optimize)


@functools.lru_cache(maxsize=512)
def plan(subscripts: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[Any, ...] | None:
    """The steps :func:`einsum` takes for these subscripts and shapes, or None where
    ``numpy.einsum`` itself is used.

    Each step is ``("sum", i, axes)``, ``("einsum", i, j, spec)``, ``("matmul", i, j, ...)`` or
    ``("out", perm)``; a pair's result replaces operand ``i`` and operand ``j`` is dropped.

    >>> [s[0] for s in plan("bi,oij,bj->bo", ((64, 16), (4, 16, 16), (64, 16)))]
    ['matmul', 'matmul', 'out']
    >>> plan("ij,jk->ik", ((2, 3), (3, 4))) is None  # too small to pay
    True
    """
    ins, out = subscripts.split("->")
    terms = ins.split(",")
    if len(terms) != len(shapes) or len(set(out)) != len(out):
        return None
    size: dict[str, int] = {}
    for t, s in zip(terms, shapes):
        if len(t) != len(s) or len(set(t)) != len(t):
            return None  # a diagonal ('ii->i'): numpy.einsum
        for c, n in zip(t, s):
            if size.setdefault(c, n) != n:
                return None  # sizes that broadcast against each other: numpy.einsum
    if any(c not in size for c in out) or math.prod(size.values()) < MIN_WORK:
        return None
    steps: list[Any] = []
    terms = list(terms)
    for i, t in enumerate(terms):  # indices only this operand has, summed out first
        lone = [
            k
            for k, c in enumerate(t)
            if c not in out and all(c not in u for j, u in enumerate(terms) if j != i)
        ]
        if lone:
            steps.append(("sum", i, tuple(lone)))
            terms[i] = "".join(c for k, c in enumerate(t) if k not in lone)
    used = False
    while len(terms) > 1:
        i, j, keep = _pair(terms, out, size)
        a, b = terms[i], terms[j]
        batch = [c for c in a if c in b and c in keep]
        inner = [c for c in a if c in b and c not in keep]
        left = [c for c in a if c not in b]
        right = [c for c in b if c not in a]
        nb = math.prod(size[c] for c in batch)
        nl = math.prod(size[c] for c in left)
        nr = math.prod(size[c] for c in right)
        nc = math.prod(size[c] for c in inner)
        result = "".join(batch + left + right)
        if nc >= 2 and (nb == 1 or nl * nc * nr >= MIN_PRODUCT):
            used = True
            steps.append(
                (
                    "matmul",
                    i,
                    j,
                    tuple(a.index(c) for c in batch + left + inner),
                    tuple(b.index(c) for c in batch + inner + right),
                    (nb, nl, nc, nr),
                    tuple(size[c] for c in result),
                )
            )
        else:
            steps.append(("einsum", i, j, f"{a},{b}->{result}"))
        terms[i] = result
        del terms[j]
    if not used:
        return None  # no real matrix product anywhere: numpy.einsum's one loop is as good
    steps.append(("out", tuple(terms[0].index(c) for c in out)))
    return tuple(steps)


def _pair(terms: list[str], out: str, size: dict[str, int]) -> tuple[int, int, set[str]]:
    """The pair of operands (i < j) whose contraction gives the smallest result (the leftmost
    such pair), and the indices that result keeps (those the output or another operand has)."""
    best: Any = None
    for i in range(len(terms)):
        for j in range(i + 1, len(terms)):
            rest = set(out).union(*(t for k, t in enumerate(terms) if k not in (i, j)))
            keep = (set(terms[i]) | set(terms[j])) & rest
            n = math.prod(size[c] for c in keep)
            if best is None or n < best[0]:
                best = (n, i, j, keep)
    return best[1], best[2], best[3]


def _run(steps: tuple[Any, ...], ops: list[Any]) -> Any:
    for step in steps:
        kind = step[0]
        if kind == "sum":
            ops[step[1]] = ops[step[1]].sum(axis=step[2])
        elif kind == "einsum":
            _, i, j, spec = step
            ops[i] = numpy.einsum(spec, ops[i], ops[j])
            del ops[j]
        elif kind == "matmul":
            _, i, j, pa, pb, (nb, nl, nc, nr), shape = step
            a, b = ops[i].transpose(pa), ops[j].transpose(pb)
            if nb == 1:
                r = numpy.matmul(a.reshape(nl, nc), b.reshape(nc, nr))
            else:
                r = numpy.matmul(a.reshape(nb, nl, nc), b.reshape(nb, nc, nr))
            ops[i] = r.reshape(shape)
            del ops[j]
        else:
            r = ops[0]
            if not r.ndim:
                return r[()]  # a full contraction: a NumPy scalar, as numpy.einsum gives
            return numpy.ascontiguousarray(r.transpose(step[1]))
    raise AssertionError("an einsum plan ends with its output step")
