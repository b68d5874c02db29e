"""``jit``: trace once per signature, then run generated straight-line code.

The first call for a signature (pytree structure, shapes, dtypes, static arguments) records the
function — which may be ``grad`` or ``value_and_grad`` of something, so the recording holds the
backward pass written by the same gradient rules — runs the exact program passes (identities
dropped, constants folded, common subexpressions shared, dead code removed), writes the program
as Python source and compiles it.  Later calls run only that code: no tensors, no graph.

Backends write the same program differently:

* ``"numpy"`` (default): straight-line NumPy, ``compile``d by Python;
* ``"numba"``: the same program as a ``numba.njit`` kernel (``numba_backend``): one compiled
  function, cached on disk, no per-operation interpreter overhead.  A program with an operation
  Numba cannot express runs on the NumPy backend, with one :class:`JitFallbackWarning`;
* ``"auto"``: the faster of the two on the program itself.  Programs whose matrix products
  are small (see :data:`AUTO_NUMBA_MAX_FLOPS`), or do not dominate the other operations
  (:data:`AUTO_NUMBA_MAX_FLOP_PER_ELEMENT`), are compiled by both, and the first call of the
  signature times both on its arguments (:data:`AUTO_TIMING_SECONDS`) and keeps the faster
  (``Compiled.timings``): Numba's fused loops win on small arrays, but its tanh/exp/log are
  scalar libm calls that NumPy's vectorised loops beat (the Elman RNN).  NumPy where BLAS-bound
  products dominate (no compilation, which takes seconds there, for a gain within noise) or
  the program is long (:data:`AUTO_NUMBA_MAX_OPS`: Numba would compile for minutes), or
  quietly NumPy when Numba is not installed or cannot express the program.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import contract
from chainrule.engine import primitives as P
from chainrule.engine.broadcast import binary
from chainrule.engine.primitives import pad_constant
from chainrule.engine.pytree import flatten, leaf_reader, reader_source
from chainrule.engine.reduce import add_reduce, window_reduce
from chainrule.engine.scatter import add_at, take_rows
from chainrule.engine.tensor import Tensor, _state
from chainrule.program.ir import (
    Program,
    Value,
    build,
    merge_products,
    merge_scatters,
    merge_sums,
    optimize,
    spread_ties,
)
from chainrule.program.notation import Literals, needs_scipy
from chainrule.program.trace import record

from . import numba_backend
from .numpy_backend import LINALG_CALLS, FastWriter, aliases_input

__all__ = [
    "jit",
    "Compiled",
    "JitFallbackWarning",
    "AUTO_NUMBA_MAX_FLOPS",
    "AUTO_NUMBA_MAX_FLOP_PER_ELEMENT",
    "AUTO_NUMBA_MAX_OPS",
    "AUTO_TIMING_SECONDS",
]

_ids = itertools.count()

BACKENDS = ("numpy", "numba", "auto")

# backend="auto": Numba when the program's matrix products need at most this many
# floating-point operations (2*m*k*n summed over dot/matmul/tensordot/inner/outer/vdot), NumPy
# above.
#
# Measured on the development machine (2 cores, Skylake-X, OpenBLAS 0.3.31, numpy 2.4,
# numba 0.68) with ``benchmarks/bench_numba.py --crossover``: value_and_grad of a ReLU MLP
# 8 -> h -> h -> 1 with a mean squared error, float64 and float32, h in {6, 32, 128, 512},
# batch in {1, 16, 128, 1024}; per-step time of the Numba backend over the NumPy backend
# (median of blocks).  Ranges over both dtypes:
#
#     product FLOP per step        <= 1e6       ~1e7          ~1e8         2e8          1.6e9
#     1 BLAS thread (interleaved)  0.12-0.52x   0.45-0.99x    0.83-0.86x   0.88-0.94x   0.94-1.06x
#     2 BLAS threads (sequential)  0.14-0.68x   0.17-1.32x    0.90-1.01x   0.84-1.64x   0.54-1.07x
#
# Below ~1e7 NumPy's per-operation overhead dominates and Numba wins 2-8x.  From ~1e8 the
# same OpenBLAS products dominate both (Numba's numpy.dot calls SciPy's OpenBLAS, a second
# library with its own thread pool, which makes the 2-thread figures erratic), Numba's fused
# elementwise loops save little, and its first compilation of such a program takes ~10 s
# (cached on disk afterwards).  The 784-512-512-10 MLP of the benchmarks (batch 128, 4.1e8
# FLOP) measures 0.99-1.09x.  So: Numba is considered up to 1e8, where its advantage is gone;
# below, the first call measures both backends (elementwise transcendental functions, scalar
# in Numba but for tanh, can make NumPy the faster at any size).
AUTO_NUMBA_MAX_FLOPS = 1.0e8

# backend="auto": above AUTO_NUMBA_MAX_FLOPS, both backends are still timed when the program's
# other operations are not negligible next to its products: at most this many product FLOP per
# element those operations write (:func:`other_elements`).  An element of an elementwise operation
# costs about ten times a product FLOP (NumPy ~0.1 ns, OpenBLAS sgemm ~0.011 ns per FLOP on the
# development machine), so at 200 the other operations are ~5% of the step, the share Numba's
# fused loops can win or lose by.  Measured with ``benchmarks/bench_unseen.py`` (1 thread):
# the tanh-GELU MLP (97 FLOP per element) runs at 0.94-0.97x hand-written NumPy under Numba,
# 1.02-1.12x under NumPy; the attention block (217) 0.60x under Numba, 0.45x under NumPy; the
# 784-512-512-10 ReLU MLP (395) within noise of each other, where a 10 s first compilation
# buys nothing.
AUTO_NUMBA_MAX_FLOP_PER_ELEMENT = 200.0

# backend="auto": Numba only for programs of at most this many operations.  Numba's compile
# time grows faster than the program (LLVM optimises the kernel as one function): the Elman RNN
# of bench_unseen.py (50 steps, 753 operations) takes about 12 s to compile the first time (its
# steps' fused loops shared; 25 s each step its own), an LSTM of 25 steps (1,760 operations)
# minutes, a hidden Markov model's 60 steps (2,000 operations) more than 10, longer than most
# training runs it would speed up.  Above the limit, auto is the NumPy backend, which compiles
# in a fraction of a second; backend="numba" still compiles whatever it is given.
AUTO_NUMBA_MAX_OPS = 1000


class JitFallbackWarning(UserWarning):
    """``chainrule.jit(backend="numba")`` could not compile a program with Numba and runs it
    on the NumPy backend instead (the message names the operation and why).

    Example
    -------
    >>> import warnings, chainrule as cr
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", cr.JitFallbackWarning)   # a fallback now raises
    ...     issubclass(cr.JitFallbackWarning, UserWarning)
    True
    """


class Compiled:
    """One compiled signature: the generated source and the function made from it (which
    returns the output pytree, ``out_tree`` describing it).

    ``backend`` is the backend that runs it ("numpy" or "numba"); ``fallback`` says why a
    requested Numba compilation fell back to NumPy (None when it did not)."""

    def __init__(
        self,
        source: str,
        fun: Callable[..., Any],
        out_tree: Any,
        n_ops: int,
        backend: str = "numpy",
        fallback: str | None = None,
    ) -> None:
        self.source = source
        self.fun = fun
        self.out_tree = out_tree
        self.n_ops = n_ops
        self.backend = backend
        self.fallback = fallback
        self.raw: numba_backend.Runner | None = None  # numba: the kernel call without checks
        # backend="auto": the seconds per call of each backend measured at the first call
        self.timings: dict[str, float] | None = None

    def __repr__(self) -> str:
        what = "Numba kernel" if self.backend == "numba" else "straight-line NumPy"
        return f"<compiled {what}: {self.n_ops} operations>"


def _static_key(a: Any, i: int) -> Any:
    """The cache key of static argument ``i``: the value itself, or a NumPy array's dtype,
    shape and bytes (a new program for other values, as for any other static value)."""
    if isinstance(a, numpy.ndarray):
        return ("ndarray", a.dtype.str, a.shape, a.tobytes())
    try:
        hash(a)
    except TypeError:
        raise TypeError(
            f"jit: static argument {i} ({type(a).__name__}) is not hashable; a static "
            "argument must be a number, string, tuple or NumPy array (keyed by its values): "
            "pass a tuple instead"
        ) from None
    return a


def _leaf_key(x: Any) -> Any:
    if isinstance(x, Tensor):
        x = x._data
    if isinstance(x, numpy.ndarray):
        return (x.shape, x.dtype.str)
    if isinstance(x, numpy.generic):
        return ((), x.dtype.str)
    if isinstance(x, (float, complex)):
        # by its text: 0.0 and -0.0 are different constants (arctan2, copysign, 1/x), and NaN
        # equals itself here (a NaN argument would otherwise trace again at every call)
        return ("static", type(x).__name__, repr(x))
    if isinstance(x, (bool, int, str)) or x is None:
        return ("static", type(x).__name__, x)
    if hasattr(type(x), "__array_function__") and hasattr(x, "dtype"):
        lib = type(x).__module__.split(".")[0]
        raise TypeError(
            f"jit: an argument is a {lib} array ({type(x).__name__}); jit compiles for NumPy "
            "arrays only. Call the function without jit: chainrule's eager gradients keep "
            f"{lib} arrays in their library"
        )
    raise TypeError(
        f"jit: cannot use an argument of type {type(x).__name__}; pass arrays, "
        "numbers, or nested lists/tuples/dicts of them (or mark it static)"
    )


def jit(
    fun: Callable[..., Any], static_argnums: int | tuple[int, ...] = (), backend: str = "numpy"
) -> Callable[..., Any]:
    """Compile ``fun`` (plain NumPy code, or ``grad``/``value_and_grad`` of it) per signature.

    Arrays are traced; Python numbers and the arguments in ``static_argnums`` are constants of
    the trace (a new value traces again).  Python control flow may depend on shapes and static
    values, not on array values: ``bool(t)`` on a traced array raises
    :class:`chainrule.TracerBoolError`.  The wrapper has ``cache_info()``, ``clear_cache()``
    and ``source(*args)`` (the generated code for those arguments' signature).

    ``backend``: ``"numpy"`` (straight-line NumPy), ``"numba"`` (the same program compiled by
    Numba, cached on disk in ``$CHAINRULE_CACHE_DIR`` or ``~/.cache/chainrule/numba``; needs
    ``pip install "chainrule[fast]"``; a program Numba cannot express runs on NumPy with one
    :class:`JitFallbackWarning`), or ``"auto"`` (programs with small matrix products are
    compiled by both and the first call keeps the faster on its arguments; NumPy otherwise,
    for programs of over 1,000 operations, which Numba takes minutes to compile, or when Numba
    is not installed).  Parameters passed as lists, tuples or dicts of arrays cost
    about what positional arrays do: a repeated structure is read by code generated for it.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> step = cr.jit(cr.value_and_grad(lambda w, x: (numpy.tanh(x @ w) ** 2).sum()))
    >>> value, dw = step(numpy.ones(3), numpy.eye(3))
    >>> dw.shape
    (3,)
    """
    if backend not in BACKENDS:
        raise ValueError(
            f"jit: backend must be one of {', '.join(map(repr, BACKENDS))}, not {backend!r}"
        )
    if backend == "numba":
        numba_backend.require()  # says how to install it
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    cache: dict[Any, Compiled] = {}
    warned: set[str] = set()  # fallback reasons already reported

    def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        parts = []
        for i, a in enumerate(args):
            if i in statics:
                parts.append(("static", _static_key(a, i)))
                continue
            leaves, td = flatten(a)
            arrays = [isinstance(v, (numpy.ndarray, numpy.generic, Tensor)) for v in leaves]
            if any(arrays) and not all(arrays):
                raise TypeError(
                    f"jit: argument {i} mixes arrays with Python values; make them "
                    "all arrays, or list the argument in static_argnums"
                )
            parts.append((repr(td), tuple(_leaf_key(v) for v in leaves)))
        kw = tuple(
            sorted(
                (k, repr(flatten(v)[1]), tuple(_leaf_key(x) for x in flatten(v)[0]))
                for k, v in kwargs.items()
            )
        )
        return tuple(parts), kw

    # All arguments plain arrays: a cheaper key.  Shapes select the entry (the ndarray getters
    # raise TypeError for anything else: Tensors, scalars, lists); dtypes are then compared
    # (builtin dtypes are singletons, so the tuple comparison is by identity).
    fast: dict[Any, list[tuple[tuple[Any, ...], Compiled]]] = {}
    # Numba: the kernel used last is simply called first.  It checks the shapes itself
    # (ShapeMismatch) and Numba's dispatcher the dtypes and layouts (TypeError: it compiles
    # nothing new), so a repeated call costs no key at all.
    guard: list[Any] = [None]
    # Calls whose arguments hold lists, tuples or dicts of arrays: one _Tree per structure.
    trees: list[_Tree] = []
    tree_last = [False]  # whether the last call went through ``trees`` (tried first then)

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not kwargs and not statics:
            if tree_last[0]:  # the last call had lists/dicts: try its structure first
                tree = trees[0]
                g = tree.guard
                if g is not None:  # its last program, reading the leaves itself
                    try:
                        return g(*args)
                    except _GUARD_ERRORS:  # NotThisTree is a TypeError too
                        pass
                try:
                    flat = tree.read(*args)
                except TypeError:
                    pass
                else:
                    found = tree.find(flat)
                    if found is not _MISS:
                        return found
            g = guard[0]
            if g is not None and not tree_last[0]:
                try:
                    return g(*args)
                except _GUARD_ERRORS:
                    pass
            try:
                shapes = tuple(map(_shape_of, args))
            except TypeError:
                pass
            else:
                tree_last[0] = False
                dtypes = tuple(map(_dtype_of, args))
                for dts, entry in fast.get(shapes, ()):
                    if dts == dtypes:
                        guard[0] = entry.raw
                        return entry.fun(*args)
                entry = _entry(args, kwargs)
                fast.setdefault(shapes, []).append((dtypes, entry))
                guard[0] = entry.raw
                return entry.fun(*args)
            # Lists, tuples and dicts of arrays: the readers of the structures seen, the
            # last one used first, then the same lookup on their leaves.
            for i, tree in enumerate(trees):
                try:
                    flat = tree.read(*args)
                except TypeError:  # NotThisTree, or another number of arguments
                    continue
                found = tree.find(flat)
                if found is not _MISS:
                    if i:  # first next time (a swap: never raises, even between threads)
                        trees[0], trees[i] = tree, trees[0]
                    tree_last[0] = True
                    return found
                break
        entry = _entry(args, kwargs)
        leaves = [flatten(a) if i not in statics else ([], None) for i, a in enumerate(args)]
        plain = [_plain(v) for ls, _ in leaves if _all_arrays(ls) for v in ls]
        if (
            not kwargs
            and not statics
            and all(type(v) is numpy.ndarray for ls, _ in leaves for v in ls)
        ):
            _remember(trees, tuple(td for _, td in leaves), plain, entry)
            tree_last[0] = True
        return entry.fun(*plain)

    def _entry(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Compiled:
        key = signature(args, kwargs)
        entry = cache.get(key)
        if entry is None:
            entry = cache[key] = _compile(fun, args, kwargs, statics, backend, warned)
        return entry

    def source(*args: Any, **kwargs: Any) -> str:
        key = signature(args, kwargs)
        if key not in cache:
            cache[key] = _compile(fun, args, kwargs, statics, backend, warned)
        return cache[key].source

    def cache_info() -> dict[str, int]:
        by = [c.backend for c in cache.values()]
        return {"signatures": len(cache), "numpy": by.count("numpy"), "numba": by.count("numba")}

    def clear_cache() -> None:
        cache.clear()
        fast.clear()
        trees.clear()
        tree_last[0] = False
        guard[0] = None

    wrapped.cache_info = cache_info  # type: ignore[attr-defined]  # a function attribute
    wrapped.clear_cache = clear_cache  # type: ignore[attr-defined]  # a function attribute
    wrapped.source = source  # type: ignore[attr-defined]  # a function attribute
    wrapped.cache = cache  # type: ignore[attr-defined]  # a function attribute
    return wrapped


_GUARD_ERRORS = (TypeError, numba_backend.ShapeMismatch)
_shape_of = numpy.ndarray.shape.__get__
_dtype_of = numpy.ndarray.dtype.__get__


def _plain(v: Any) -> Any:
    return v._data if isinstance(v, Tensor) else v


def _all_arrays(leaves: list[Any]) -> bool:
    return bool(leaves) and all(
        isinstance(v, (numpy.ndarray, numpy.generic, Tensor)) for v in leaves
    )


def _traced(a: Any) -> bool:
    return _all_arrays(flatten(a)[0])


class _Tree:
    """The compiled programs for calls of one argument structure (lists, tuples, dicts of
    arrays): ``read`` returns the leaves of such a call (generated code, no recursion), then
    the leaves are looked up like positional arrays: by their shapes, then their dtypes.
    Numba: the kernel used last is called first, as for positional arrays, through glue that
    reads the leaves itself (``guard(*args)``: one Python call between ``jit`` and Numba)."""

    __slots__ = ("tds", "read", "table", "guard")

    def __init__(self, tds: tuple[Any, ...]) -> None:
        self.tds = tds
        self.read = leaf_reader(tds)
        self.table: dict[Any, list[tuple[tuple[Any, ...], Compiled, Any]]] = {}
        self.guard: Any = None

    def add(self, flat: list[Any], entry: Compiled) -> None:
        """File ``entry`` under the shapes and dtypes of the leaves ``flat``."""
        shapes = tuple(map(_shape_of, flat))
        dtypes = tuple(map(_dtype_of, flat))
        row = self.table.setdefault(shapes, [])
        for dts, _, g in row:
            if dts == dtypes:
                self.guard = g
                return
        g = None
        if entry.raw is not None:
            g = entry.raw.reading(functools.partial(reader_source, self.tds))
        row.append((dtypes, entry, g))
        self.guard = g

    def find(self, flat: tuple[Any, ...]) -> Any:
        """The result of the call on the leaves ``flat``, or ``_MISS`` when no program is
        known for them (or a leaf is not an ndarray)."""
        try:
            shapes = tuple(map(_shape_of, flat))
        except TypeError:
            return _MISS
        dtypes = tuple(map(_dtype_of, flat))
        for dts, entry, g in self.table.get(shapes, ()):
            if dts == dtypes:
                self.guard = g
                return entry.fun(*flat)
        return _MISS


_MISS = object()


def _remember(trees: list[_Tree], tds: tuple[Any, ...], flat: list[Any], entry: Compiled) -> None:
    """File ``entry`` under the argument structure ``tds`` and the shapes and dtypes of the
    leaves ``flat``, so the next such call finds it without flattening."""
    i, tree = next(((i, t) for i, t in enumerate(trees) if t.tds == tds), (0, None))
    if tree is None:
        tree = _Tree(tds)
        trees.insert(0, tree)
    elif i:
        trees[0], trees[i] = tree, trees[0]
    tree.add(flat, entry)


def _trace(
    fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], statics: tuple[int, ...]
) -> tuple[Program, Any]:
    """Record ``fun`` on ``args`` and run the exact passes: the program every backend writes."""
    previous = _state.strict
    _state.strict = True
    try:
        rec = record(fun, args, kwargs, backward=False, static_argnums=statics)
    finally:
        _state.strict = previous
    out_leaves, out_tree = flatten(rec.output)
    return optimize(build(rec, outputs=out_leaves)), out_tree


def _tree_text(td: Any, leaves: list[str], ns: dict[str, Any]) -> str:
    """Source that rebuilds the output pytree ``td`` from the leaf expressions ``leaves``."""
    it = iter(leaves)

    def build(t: Any) -> str:
        if t is None:
            return next(it)
        kind, keys, children = t
        if kind == "none":
            return "None"
        parts = [build(c) for c in children]
        if kind is tuple:
            return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
        if kind is list:
            return f"[{', '.join(parts)}]"
        if kind is dict:
            names = []
            for k in keys:
                if type(k) in (str, int):  # a literal: the dict is built with constant keys
                    names.append(repr(k))
                    continue
                names.append(f"_key{len(ns)}")
                ns[names[-1]] = k
            return "{" + ", ".join(f"{n}: {p}" for n, p in zip(names, parts)) + "}"
        name = f"_tree{len(ns)}"
        ns[name] = kind
        return f"{name}({', '.join(parts)})"

    return build(td)


def _label(fun: Callable[..., Any]) -> str:
    name = f"_jitted_{getattr(fun, '__name__', 'f')}_{next(_ids)}"
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


_PRODUCTS = (P.dot, P.matmul, P.tensordot, P.inner, P.vdot, P.einsum, P.outer)


def other_elements(prog: Program) -> float:
    """Elements written by the program's operations other than its matrix products."""
    return float(sum(math.prod(v.shape) for v in prog.ops() if v.prim not in _PRODUCTS))


def _race_worth_it(prog: Program) -> bool:
    """backend="auto": whether the program may gain from Numba enough to compile it."""
    if len(prog.ops()) > AUTO_NUMBA_MAX_OPS:
        return False
    flops = matmul_flops(prog)
    return (
        flops <= AUTO_NUMBA_MAX_FLOPS
        or flops <= AUTO_NUMBA_MAX_FLOP_PER_ELEMENT * other_elements(prog)
    )


def matmul_flops(prog: Program) -> float:
    """Floating-point operations of the program's matrix products (2*m*k*n each)."""
    total = 0.0
    for v in prog.ops():
        if v.prim in _PRODUCTS:
            sizes = [math.prod(a.shape) if isinstance(a, Value) else 1 for a in v.args]
            out = math.prod(v.shape)
            if v.prim is P.outer:
                total += out
                continue
            # m*k*n = sqrt(|A| |B| |C|) for a product C = A B (batched: per batch, times batch)
            total += 2.0 * math.sqrt(max(sizes[0] * sizes[1] * out, 1))
    return total


def _compile(
    fun: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    statics: tuple[int, ...],
    backend: str = "numpy",
    warned: set[str] | None = None,
) -> Compiled:
    prog, out_tree = _trace(fun, args, kwargs, statics)
    label = _label(fun)
    want = backend
    if backend == "auto":
        want = "numba" if numba_backend.available() and _race_worth_it(prog) else "numpy"
    reason = None
    if want == "numba":
        flat = [
            _plain(v)
            for i, a in enumerate(args)
            if i not in statics and _traced(a)
            for v in flatten(a)[0]
        ]
        compiled, reason, op = _compile_numba(prog, out_tree, label, flat)
        if compiled is not None and backend == "auto":
            # Numba's per-element transcendental functions (exp, log: scalar libm) can
            # lose to NumPy's vectorised loops by more than its fused loops win: run both on
            # these very arguments and keep the faster.
            return _faster(compiled, _compile_numpy(prog, out_tree, label), flat)
        if compiled is not None:
            return compiled
        # "auto" chose Numba itself: an operation it cannot express is no news; a failure to
        # compile what it should express is, so that one is reported either way.
        if backend == "numba" or op == "compile":
            key = op or reason or "?"
            if warned is None or key not in warned:
                if warned is not None:
                    warned.add(key)
                warnings.warn(
                    f"chainrule.jit(backend={backend!r}): {reason}; "
                    f"{getattr(fun, '__name__', 'the function')} runs on the NumPy backend "
                    "for this signature (shown once per function and operation)",
                    JitFallbackWarning,
                    stacklevel=4,
                )
    return _compile_numpy(prog, out_tree, label, reason)


AUTO_TIMING_SECONDS = 0.05
"""``backend="auto"``: about how long the first call of a signature may spend timing both
backends (calls alternate, at most 5 of each, at least 2 unless one round took over 20 times
this; the fastest call of each counts; a close race goes on, see ``AUTO_MAX_ROUNDS``)."""


AUTO_MAX_ROUNDS = 20
AUTO_CLOSE = 1.3
"""... and up to ``AUTO_MAX_ROUNDS`` rounds (within twice the time) while the faster is less
than ``AUTO_CLOSE`` times faster than the other: the first calls of a fresh program are noisy
on a busy machine, and a close race is decided by more of them."""


def _clock() -> float:
    return time.perf_counter()


def _faster(numba_c: Compiled, numpy_c: Compiled, flat: list[Any]) -> Compiled:
    """The faster of two compilations of one program, timed on ``flat`` (``timings`` holds
    the seconds per call of each)."""
    best = {"numba": math.inf, "numpy": math.inf}
    spent = 0.0
    for rep in range(AUTO_MAX_ROUNDS):
        for c in (numba_c, numpy_c):
            t0 = _clock()
            c.fun(*flat)
            dt = _clock() - t0
            best[c.backend] = min(best[c.backend], dt)
            spent += dt
        if spent > AUTO_TIMING_SECONDS and (rep or spent > 20 * AUTO_TIMING_SECONDS):
            break  # two rounds or more, one only when that one took over a second
        close = max(best.values()) < AUTO_CLOSE * min(best.values())
        if rep >= 4 and not (close and spent < 2 * AUTO_TIMING_SECONDS):
            break  # five rounds; up to AUTO_MAX_ROUNDS while the two are close
    winner = numba_c if best["numba"] < best["numpy"] else numpy_c
    winner.timings = best
    return winner


def _compile_numba(
    prog: Program, out_tree: Any, label: str, flat: list[Any]
) -> tuple[Compiled | None, str | None, str | None]:
    """The Numba kernel for ``prog``, or (None, why not, which operation)."""
    try:
        gen = numba_backend.generate(merge_sums(merge_products(prog)), label)
    except numba_backend.Unsupported as e:
        return None, f"Numba cannot compile `{e.op}` ({e.reason})", e.op
    errors = numba_backend.compile_errors()  # imports numba
    try:
        with numba_backend.quiet():
            raw = numba_backend.build(
                gen,
                [tuple(v.shape) for v in prog.inputs],
                lambda leaves, ns: _tree_text(out_tree, leaves, ns),
            )
            run = numba_backend.safe(raw)
            run(*flat)  # compile now (or load from the disk cache)
        # One specialisation only: other dtypes or layouts must not compile silently (this
        # code was written for these dtypes); ``run`` copies odd layouts into this one.
        raw.kernel.disable_compile()
    except errors as e:
        return (
            None,
            (
                "Numba failed to compile the generated program ("
                f"{numba_backend.describe_failure(e, gen.source)})"
            ),
            "compile",
        )
    compiled = Compiled(gen.source, run, out_tree, len(prog.ops()), "numba")
    compiled.raw = raw
    return compiled, None, None


def _compile_numpy(
    prog: Program, out_tree: Any, label: str, fallback: str | None = None
) -> Compiled:
    consts: dict[str, Any] = {}

    def hoist(a: numpy.ndarray) -> str:
        name = f"_c{len(consts)}"
        consts[name] = a
        return name

    lit = Literals(hoist=hoist, inline_limit=0)
    prog = merge_sums(merge_products(spread_ties(merge_scatters(prog))))
    params = [f"a{i}" for i in range(len(prog.inputs))]
    refs = {v.id: p for v, p in zip(prog.inputs, params)}
    writer = FastWriter(prog, {}, lit, refs=refs)
    body = [c for line in writer.lines() for c in line.code]
    outs = []
    for o in prog.outputs:
        text = writer.ref(o)[0]
        # an output must not be (a view of) the caller's array or a cached constant
        outs.append(f"numpy.array({text})" if isinstance(o, Value) and aliases_input(o) else text)
    name = label
    namespace: dict[str, Any] = {
        "numpy": numpy,
        "_add_reduce": add_reduce,
        "_window_reduce": window_reduce,
        "_pad": pad_constant,
        "_add_at": add_at,
        "_take_rows": take_rows,
        "_binary": binary,
        **consts,
    }
    namespace.update({name: prim.fun for prim, name in LINALG_CALLS.items()})
    namespace["_matmul"] = P.matmul.fun
    namespace["_power"] = P.power.fun
    namespace["_sigmoid"] = P.sigmoid.fun
    namespace["_einsum"] = contract.einsum
    src = "\n".join(
        [f"def {name}({', '.join(params)}):"]
        + [f"    {c}" for c in body]
        + [f"    return {_tree_text(out_tree, outs, namespace)}", ""]
    )
    for v in prog.values:
        if v.prim is not None and v.prim.custom:
            namespace[v.prim.name] = v.prim.fun
    if needs_scipy(v.prim for v in prog.values):  # scipy.special.expit(...) & co.
        importlib.import_module("scipy.special")
        namespace["scipy"] = importlib.import_module("scipy")
    code = compile(src, f"<chainrule.jit {name}>", "exec")
    exec(code, namespace)
    return Compiled(src, namespace[name], out_tree, len(prog.ops()), "numpy", fallback)
