"""Numba itself: whether it is there, the on-disk cache, importing and compiling a generated
module, and running the kernel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy

from chainrule.engine.pytree import NotThisTree

from .module import Generated

INSTALL_HINT = 'pip install "chainrule[fast]"'

_AVAILABLE: list[bool] = []


class Runner(Protocol):
    """What :func:`build` returns: ``run(*inputs)``, with the compiled kernel as ``run.kernel``."""

    kernel: Any
    reading: Callable[[Any], Runner]

    def __call__(self, *args: Any) -> Any: ...


def available() -> bool:
    """Whether Numba is installed and imports (a Numba too old for this NumPy raises
    ImportError on import: that counts as not available)."""
    if not _AVAILABLE:
        try:
            found = importlib.util.find_spec("numba") is not None
        except (ImportError, ValueError):
            found = False
        if found:
            try:
                import numba  # noqa: F401
            except ImportError:
                found = False
        _AVAILABLE.append(found)
    return _AVAILABLE[0]


def require() -> Any:
    """Import and return ``numba``, or raise an ImportError that says how to install it."""
    try:
        import numba
    except ImportError as e:
        raise ImportError(
            "chainrule.jit(backend='numba') needs Numba, which is an optional extra: "
            f"{INSTALL_HINT}  (or use backend='numpy', or backend='auto', which uses Numba "
            "only when it is installed)"
        ) from e
    return numba


def cache_dir() -> str:
    """Where generated modules (and, next to them, Numba's cache) live."""
    d = os.environ.get("CHAINRULE_CACHE_DIR")
    if d:
        return os.path.abspath(os.path.expanduser(d))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "chainrule", "numba")


# ---------------------------------------------------------------------------------------------
# Writing, importing, compiling
# ---------------------------------------------------------------------------------------------


_PRIVATE: list[str] = []  # where this process caches when the cache directory is refused


def _private_to_user(d: str) -> bool:
    """Whether ``d`` is (or could be made) a directory that only this user can write into:
    created with mode 0700, a real directory (not a link), owned by this user, and not
    writable by group or others. Anything else could hold modules (and Numba's pickled
    index files) planted by another user, which importing would run as this one."""
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.lstat(d)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    return os.access(d, os.W_OK | os.X_OK)


def _writable_dir() -> str:
    """The cache directory if it is private to this user; else (with one warning) this
    user's one under the temporary directory if that is, or a fresh private directory for
    this process (no cache shared between processes)."""
    if _PRIVATE:
        return _PRIVATE[0]
    d = cache_dir()
    if _private_to_user(d):
        return d
    user = os.getuid() if hasattr(os, "getuid") else "user"
    shared = os.path.join(tempfile.gettempdir(), f"chainrule-numba-{user}")
    fallback = shared if _private_to_user(shared) else tempfile.mkdtemp(prefix="chainrule-")
    warnings.warn(
        f"chainrule.jit(backend='numba'): the cache directory {d} is not one only you can "
        "write into (owned by another user, a link, or writable by others), so nothing is "
        f"loaded from it; compiled kernels go to {fallback} instead. Set CHAINRULE_CACHE_DIR "
        "to a directory of yours with mode 0700",
        RuntimeWarning,
        stacklevel=2,
    )
    _PRIVATE.append(fallback)
    return fallback


def load_module(source: str) -> Any:
    """The module for ``source``: written once under its hash, then imported (Numba keys its
    on-disk cache on that file)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    modname = f"chainrule_numba_{digest}"
    mod = sys.modules.get(modname)
    if mod is not None:
        return mod
    d = _writable_dir()
    path = os.path.join(d, f"cr_{digest}.py")
    try:
        with open(path, encoding="utf-8") as f:
            same = f.read() == source
    except OSError:
        same = False
    if not same:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[modname]
        raise
    return mod


def build(
    gen: Generated,
    input_shapes: list[tuple[int, ...]],
    assemble: Callable[[list[str], dict[str, Any]], str] | None = None,
) -> Runner:
    """Import the generated module and return ``run(*inputs)``: a Python function that calls
    the compiled kernel, puts constants and pass-through inputs in place, and returns
    ``assemble(output texts, namespace)`` (default: a tuple of the outputs).

    ``run.reading(read)`` is the same call for arguments that are lists, tuples or dicts of
    the inputs: ``read(namespace, whole)`` gives the reader's source, as
    :func:`chainrule.engine.pytree.reader_source` does; the function it returns raises
    ``NotThisTree`` (a ``TypeError``) for arguments of another structure."""
    require()
    kernel = getattr(load_module(gen.source), gen.kernel)
    return _glue(kernel, gen, input_shapes, assemble, None)


Read = Callable[[dict[str, Any], bool], tuple[list[str], str, list[str]]]


def _glue(
    kernel: Any,
    gen: Generated,
    input_shapes: list[tuple[int, ...]],
    assemble: Callable[[list[str], dict[str, Any]], str] | None,
    read: Read | None,
) -> Runner:
    ns: dict[str, Any] = {"_kernel": kernel}
    # a pass-through output or a 0-d input needs each leaf by itself
    whole = all(s != () for s in input_shapes) and all(k != "input" for k, _ in gen.plan)
    if read is None:
        params = leaves = [f"a{i}" for i in range(gen.n_inputs)]
        refuse = ""
    else:
        ns["NotThisTree"] = NotThisTree
        params, refuse, leaves = read(ns, whole)
    call = [f"{p}[()]" if s == () and not whole else p for p, s in zip(leaves, input_shapes)]
    for i, c in enumerate(gen.arg_consts):
        ns[f"_K{i}"] = c
        call.append(f"_K{i}")
    outs = []
    for j, (kind, what) in enumerate(gen.plan):
        if kind == "const":
            ns[f"_C{j}"] = what
            outs.append(
                f"_C{j}.copy()"
                if isinstance(what, numpy.ndarray) and what.ndim
                else f"_C{j}[()]"
                if isinstance(what, numpy.ndarray)
                else f"_C{j}"
            )
        elif kind == "input":
            outs.append(leaves[what])
        else:
            v = gen.results[what]
            if v.shape == ():
                ns[f"_T{j}"] = numpy.dtype(v.dtype).type
                outs.append(f"_T{j}(_r[{what}])")
            else:
                outs.append(f"_r[{what}]")
    result = (
        assemble(outs, ns)
        if assemble is not None
        else f"({', '.join(outs)}{',' if len(outs) == 1 else ''})"
    )
    check = f"    if {refuse}:\n        raise NotThisTree('not the structure of this call')\n"
    src = (
        f"def run({', '.join(params)}):\n{check if refuse else ''}"
        f"    _r = _kernel({', '.join(call)})\n    return {result}\n"
    )
    exec(compile(src, "<chainrule.jit numba glue>", "exec"), ns)
    run: Runner = ns["run"]
    run.kernel = kernel
    run.reading = lambda r: _glue(kernel, gen, input_shapes, assemble, r)
    return run


def _behaved(a: Any) -> Any:
    if type(a) is numpy.ndarray and a.ndim and not (a.flags.carray and a.dtype.isnative):
        return numpy.array(a, order="C", dtype=a.dtype.newbyteorder("="))
    return a


def safe(run: Runner) -> Callable[..., Any]:
    """``run`` for any arrays: non-contiguous, read-only or unaligned ones are copied first
    (the kernel is compiled for C-contiguous, writable arrays only)."""

    def call(*args: Any) -> Any:
        return run(*map(_behaved, args))

    call.kernel = run.kernel  # type: ignore[attr-defined]  # a function attribute
    call.raw = run  # type: ignore[attr-defined]  # a function attribute
    return call


def compile_errors() -> tuple[type[BaseException], ...]:
    """What a failed Numba compilation raises (and what our own emitter might, at run time)."""
    import numba.core.errors as ne

    return (
        ne.NumbaError,
        NotImplementedError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        KeyError,
        AssertionError,
    )


def quiet() -> Any:
    """A context in which Numba's own warnings (performance hints...) are silenced."""
    ctx = warnings.catch_warnings()

    class _Quiet:
        def __enter__(self) -> None:
            ctx.__enter__()
            try:
                from numba.core.errors import NumbaWarning

                warnings.simplefilter("ignore", NumbaWarning)
            except ImportError:  # pragma: no cover
                pass

        def __exit__(self, *exc: Any) -> None:
            ctx.__exit__(*exc)

    return _Quiet()


def describe_failure(err: BaseException, source: str) -> str:
    """The first lines of a Numba error, with the generated line it points at."""
    msg = str(err)
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    head = next(
        (ln for ln in lines if not ln.startswith("Failed in")),
        lines[0] if lines else type(err).__name__,
    )
    m = re.findall(r"cr_[0-9a-f]+\.py\", line (\d+)", msg)
    where = ""
    if m:
        src_lines = source.splitlines()
        n = int(m[-1])
        if 0 < n <= len(src_lines):
            where = f" at `{src_lines[n - 1].strip()}`"
    return f"{type(err).__name__}: {head[:300]}{where}"
