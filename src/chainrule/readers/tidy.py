"""Identities applied inside a line's expression, for ``explain``'s text only.

``0 * x``, ``x + 0``, ``0 + x``, ``x - 0``, ``1 * x``, ``x / 1``, ``0 / x``, ``--x``,
``x + -y`` and ``-(-a * b)`` anywhere in an expression, and like terms of a sum collected
(``LAM * W + LAM * W`` is ``2 * LAM * W``). The caller shows the result only where it
evaluates to the recorded value (``readable.readable_lines``), so an identity that does not
hold for the values (``0 * inf``) or that changes a shape by broadcasting is never shown.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["tidy"]


def tidy(text: str) -> str:
    """``text`` with the identities applied (``text`` itself if none applies or it does not
    parse).

    Example
    -------
    >>> tidy("loss + -numpy.log(p)"), tidy("0 + a * (numpy.log(p) + 0 * numpy.log(1 - p))")
    ('loss - numpy.log(p)', 'a * numpy.log(p)')
    >>> tidy("LAM * W + LAM * W + X.T @ dZ"), tidy("-(-g * y / (1 - p)) + g * -y / p")
    ('2 * LAM * W + X.T @ dZ', 'g * y / (1 - p) - g * y / p')
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return text
    before = ast.dump(tree)
    for _ in range(8):  # to a fixed point
        tree = _Tidy().visit(tree)
        now = ast.dump(tree)
        if now == before:
            break
        before = now
    out = ast.unparse(tree)
    if ast.dump(ast.parse(text, mode="eval")) == before and len(out) >= len(text):
        return text
    return out  # changed, or the same with fewer parentheses: (-y) * p is -y * p


def _num(node: Any) -> float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value: Any = node.value
        return float(value)
    return None


def _pull(node: ast.expr) -> tuple[int, ast.expr]:
    """(sign, node without it): the minus signs of a product's or quotient's factors pulled
    out (``-g * y / p`` is ``-(g * y / p)``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        s, inner = _pull(node.operand)
        return -s, inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div, ast.MatMult)):
        sl, left = _pull(node.left)
        sr, right = _pull(node.right)
        if sl * sr == -1 or (sl == sr == -1):
            return sl * sr, ast.BinOp(left, node.op, right)
    return 1, node


def _scale(k: int, t: ast.expr) -> ast.expr:
    """``k * t`` with ``k`` on the leftmost factor (``2 * LAM * W``)."""
    if isinstance(t, ast.BinOp) and isinstance(t.op, (ast.Mult, ast.Div, ast.MatMult)):
        return ast.BinOp(_scale(k, t.left), t.op, t.right)
    return ast.BinOp(ast.Constant(k), ast.Mult(), t)


def _neg(node: ast.expr) -> ast.expr:
    """``-node``, on its leftmost factor (``-y * numpy.log(p)``, not ``-(y * ...)``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return node.operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div, ast.MatMult)):
        return ast.BinOp(_neg(node.left), node.op, node.right)
    return ast.UnaryOp(ast.USub(), node)


class _Tidy(ast.NodeTransformer):
    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        self.generic_visit(node)
        if not isinstance(node.op, ast.USub):
            return node
        x = node.operand
        if isinstance(x, ast.UnaryOp) and isinstance(x.op, ast.USub):
            return x.operand  # --x
        if _num(x) == 0:
            return ast.Constant(0)
        sign, inner = _pull(x)
        if sign < 0:
            return inner  # -(-a * b)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        self.generic_visit(node)
        a, b, op = node.left, node.right, node.op
        na, nb = _num(a), _num(b)
        if isinstance(op, ast.Mult):
            if na == 0 or nb == 0:
                return ast.Constant(0)
            if na == 1:
                return b
            if nb == 1:
                return a
        if isinstance(op, ast.Div):
            if na == 0:
                return ast.Constant(0)
            if nb == 1:
                return a
        if isinstance(op, (ast.Add, ast.Sub)):
            return _sum(node)
        return node


def _terms(node: ast.expr, sign: int, out: list[tuple[int, ast.expr]]) -> None:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _terms(node.left, sign, out)
        _terms(node.right, -sign if isinstance(node.op, ast.Sub) else sign, out)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _terms(node.operand, -sign, out)
    else:
        s, inner = _pull(node)
        out.append((sign * s, inner))


def _sum(node: ast.BinOp) -> ast.expr:
    terms: list[tuple[int, ast.expr]] = []
    _terms(node, 1, terms)
    terms = [(s, t) for s, t in terms if _num(t) != 0]
    counts: dict[str, list[Any]] = {}
    order: list[str] = []
    for s, t in terms:
        key = ast.dump(t)
        if key not in counts:
            counts[key] = [0, t]
            order.append(key)
        counts[key][0] += s
    kept: list[tuple[int, ast.expr]] = []
    for key in order:
        k, t = counts[key]
        if k == 0:
            continue
        if abs(k) == 1:
            kept.append((k, t))
        else:
            kept.append((1 if k > 0 else -1, _scale(abs(k), t)))
    if not kept:
        return ast.Constant(0)
    first_sign, out = kept[0]
    expr: ast.expr = out if first_sign > 0 else _neg(out)
    for s, t in kept[1:]:
        expr = ast.BinOp(expr, ast.Add() if s > 0 else ast.Sub(), t)
    return expr
