"""Nested lists, tuples and dicts of arrays ("pytrees"): flatten to leaves and rebuild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["flatten", "unflatten", "tree_map", "leaf_paths"]

# A tree definition: None for a leaf, else (container type, keys, child definitions).
TreeDef = Any


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """Return the leaves of ``tree`` in order and a definition to rebuild it."""
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list[Any]) -> TreeDef:
    if type(tree) in (list, tuple):
        return (type(tree), None, [_flatten(v, leaves) for v in tree])
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # namedtuple
        return (type(tree), None, [_flatten(v, leaves) for v in tree])
    if type(tree) is dict:
        keys = list(tree)
        return (dict, keys, [_flatten(tree[k], leaves) for k in keys])
    if tree is None:
        return ("none", None, [])
    leaves.append(tree)
    return None


def unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    """Rebuild the tree that ``treedef`` describes from ``leaves``."""
    if treedef is None:  # a single array: the common case, kept cheap
        return leaves[0]
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(td: TreeDef, it: Any) -> Any:
    if td is None:
        return next(it)
    kind, keys, children = td
    if kind == "none":
        return None
    values = [_unflatten(c, it) for c in children]
    if kind is dict:
        return dict(zip(keys, values))
    if kind in (list, tuple):
        return kind(values)
    return kind(*values)  # namedtuple


def tree_map(fun: Callable[[Any], Any], tree: Any) -> Any:
    """Apply ``fun`` to every leaf of ``tree``."""
    leaves, td = flatten(tree)
    return unflatten(td, [fun(v) for v in leaves])


def leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Readable paths of the leaves (``W[0]``, ``params['b']``), in flatten order."""
    if type(tree) is dict:
        return [p for k, v in tree.items() for p in leaf_paths(v, f"{prefix}[{k!r}]")]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in leaf_paths(v, f"{prefix}[{i}]")]
    if tree is None:
        return []
    return [prefix]
