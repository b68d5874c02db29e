"""Nested lists, tuples and dicts of arrays ("pytrees"): flatten to leaves and rebuild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "flatten",
    "unflatten",
    "tree_map",
    "leaf_paths",
    "leaf_reader",
    "reader_source",
    "NotThisTree",
]

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


class NotThisTree(TypeError):
    """Arguments handed to a :func:`leaf_reader` do not have the structure it was made for."""


def leaf_reader(treedefs: tuple[TreeDef, ...], then: bool = False) -> Callable[..., Any]:
    """A function of positional arguments with the structures ``treedefs`` (one per argument)
    that returns their leaves in :func:`flatten` order, or raises :class:`NotThisTree`
    (a ``TypeError``) when the containers differ in type, length, dict keys or key order.
    With ``then``, it takes a function first and returns that function of the leaves
    (``read(f, *args)`` is ``f(*leaves)``, without the tuple in between).

    It is generated code with the structure written in (no recursion, no tree definition
    rebuilt), which is what lets ``jit`` find a compiled program for a call whose parameters
    are a list or a dict about as fast as for plain positional arrays.  Leaves are not
    checked: that is the caller's business.

    Example
    -------
    >>> params = {"W": [1, 2], "b": 3}
    >>> read = leaf_reader((flatten(params)[1], None))
    >>> read({"W": [10, 20], "b": 30}, 4)
    (10, 20, 30, 4)
    >>> try:
    ...     read({"b": 30, "W": [10, 20]}, 4)   # other key order: another tree
    ... except NotThisTree as e:
    ...     print(e)
    not the structure this reader was made for
    >>> leaf_reader((flatten(params)[1], None), then=True)(max, {"W": [10, 20], "b": 30}, 4)
    30
    """
    ns: dict[str, Any] = {"NotThisTree": NotThisTree, "_MSG": _MSG}
    params, refuse, leaves = reader_source(treedefs, ns)
    body = [f"    if {refuse}:", "        raise NotThisTree(_MSG)"] if refuse else []
    if then:
        body.append(f"    return _then({', '.join(leaves)})")
    else:
        body.append(f"    return ({', '.join(leaves)}{',' if len(leaves) == 1 else ''})")
    head = ", ".join((["_then"] if then else []) + params)
    src = "\n".join([f"def read({head}):", *body, ""])
    exec(compile(src, "<chainrule pytree reader>", "exec"), ns)
    read: Callable[..., Any] = ns["read"]
    return read


_MSG = "not the structure this reader was made for"


def reader_source(
    treedefs: tuple[TreeDef, ...], ns: dict[str, Any], whole: bool = True
) -> tuple[list[str], str, list[str]]:
    """The source text of a reader of arguments with the structures ``treedefs``, for code
    generators that write it into their own function: the parameter names, the condition
    (an expression; ``""`` when there is nothing to check) that is true when the arguments
    do not have these structures, and one expression per leaf in :func:`flatten` order.
    With ``whole``, a container of leaves only is one starred expression (``*a0.values()``);
    without, every leaf is its own.  Names the text refers to are added to ``ns``.

    Example
    -------
    >>> ns = {}
    >>> reader_source((flatten([1, 2])[1],), ns)
    (['a0'], 'type(a0) is not _t0 or len(a0) != 2', ['*a0'])
    >>> reader_source((flatten({"w": 1})[1],), ns, whole=False)[2]
    ['a0[_k2[0]]']
    """
    checks: list[str] = []
    leaves: list[str] = []

    def walk(td: TreeDef, expr: str) -> None:
        if td is None:
            leaves.append(expr)
            return
        kind, keys, children = td
        if kind == "none":
            checks.append(f"{expr} is not None")
            return
        name = f"_t{len(ns)}"
        ns[name] = kind
        checks.append(f"type({expr}) is not {name}")
        if kind is dict:  # the keys, in order (so the length too)
            kname = f"_k{len(ns)}"
            ns[kname] = list(keys)
            checks.append(f"[*{expr}] != {kname}")
        else:
            checks.append(f"len({expr}) != {len(children)}")
        if whole and children and all(c is None for c in children):  # unpacked at once
            leaves.append(f"*{expr}.values()" if kind is dict else f"*{expr}")
        elif kind is dict:
            for i, child in enumerate(children):
                walk(child, f"{expr}[{kname}[{i}]]")
        else:
            for i, child in enumerate(children):
                walk(child, f"{expr}[{i}]")

    params = [f"a{i}" for i in range(len(treedefs))]
    for td, p in zip(treedefs, params):
        walk(td, p)
    return params, " or ".join(checks), leaves
