""":class:`NumbaWriter`: a recorded program written as source that ``numba.njit`` accepts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.rules import Size
from chainrule.program.codegen import Writer
from chainrule.program.ir import CONST, INPUT, Program, Value
from chainrule.program.notation import ATOM

from .common import (
    _OK_KINDS,
    NUMBA_UFUNCS,
    Unsupported,
    _axes,
    _dt,
    _dtype,
    _Expr,
    _Lits,
    _need_scipy,
    _shape,
)
from .forms import _FORMS, TRANSPOSES, _ufunc_call, permutation
from .fusion import elementwise, fused_map, fused_sum, recomputable, summed
from .statements import _LINES


class NumbaWriter(Writer):
    """The program's values written for ``numba.njit``: the NumPy writer's statements and
    inlining, with Numba spellings (see the module docstring)."""

    def __init__(self, prog: Program, refs: dict[int, str]) -> None:
        self.consts: list[numpy.ndarray] = []
        self.helpers: set[str] = set()
        self.lay: dict[int, str] = {}  # value id -> 'C', 'F', 'A' (any) or 'S' (scalar)
        self.generated: list[
            str
        ] = []  # functions written for this program (fused sums, NumPy loops)
        self.numpy_loops: set[str] = set()
        self.fused: dict[str, str] = {}  # fused helpers by their source: one function each
        self.scalar_refs: dict[int, str] = {}  # while writing a fused term: leaf id -> element
        self.users: dict[int, list[Value]] = {}
        self.mapped: dict[int, str | None] = {}  # inline values written by fused_map
        for v in prog.values:
            for a in v.args:
                if isinstance(a, Value):
                    self.users.setdefault(a.id, []).append(v)
        super().__init__(prog, {}, _Lits(hoist=self._hoist, inline_limit=0), refs=refs)
        for v in prog.values:
            if v.op == INPUT:
                self.lay[v.id] = "S" if v.shape == () else "C"

    # --- bookkeeping ----------------------------------------------------------------------

    def _hoist(self, a: numpy.ndarray) -> str:
        a = numpy.ascontiguousarray(a)
        if a.dtype.kind not in _OK_KINDS or a.dtype == numpy.float16:
            raise Unsupported("constant", f"an array of dtype {a.dtype}")
        for i, c in enumerate(self.consts):  # the same constant once
            if (
                c.dtype == a.dtype
                and c.shape == a.shape
                and (c is a or (c.size <= 4096 and numpy.array_equal(c, a, equal_nan=True)))
            ):
                return f"_k{i}"
        self.consts.append(a)
        return f"_k{len(self.consts) - 1}"

    def const_array(self, a: Any, dtype: Any = None) -> str:
        arr = numpy.asarray(a) if dtype is None else numpy.asarray(a, dtype=dtype)
        return self._hoist(arr)

    def helper(self, name: str) -> str:
        self.helpers.add(name)
        return name

    def _needs_statement(self, v: Value) -> bool:
        if v.prim in _LINES:
            return True
        if (
            self.inline
            and self.uses.get(v.id, 0) > 1
            and recomputable(v, self.users, self.uses, self.out_ids)
        ):
            return False  # computed again in each fused sum that reads it (fusion.py)
        return super()._needs_statement(v)

    def size(self, s: Size) -> str:
        return str(int(s))

    def numpy_loop(self, ufunc: str, dtype: Any, ndim: int) -> str:
        """A function that runs NumPy's own loop of ``ufunc`` on an array (Numba's object mode
        for that one call, about 1 us): the same bits as NumPy, vectorised."""
        dt = numpy.dtype(dtype).name
        name = f"_np_{ufunc}_{dt}_{ndim}"
        if name not in self.numpy_loops:
            self.numpy_loops.add(name)
            kind = f"{dt}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"
            self.generated.append(
                f"def {name}(x):\n"
                f"    with numba.objmode(r='{kind}'):\n"
                f"        r = numpy.ascontiguousarray(numpy.{ufunc}(x))\n"
                "    return r"
            )
        return name

    def wide_power(self, n: int, array: bool) -> str:
        """A function of a float32 ``x`` that computes ``x ** n`` as the eager path does
        (primitives.whole_power): multiplied out in float64, left to right, and rounded once;
        ``array``: its loop over a C-contiguous array."""
        name = f"_wide_power_{n}".replace("-", "m")
        if name not in self.numpy_loops:
            self.numpy_loops.add(name)
            prod = " * ".join(["d"] * abs(n))
            r = f"1.0 / ({prod})" if n < 0 else prod
            self.generated.append(
                f"def {name}(x):\n    d = numpy.float64(x)\n    return numpy.float32({r})"
            )
        if not array:
            return name
        loop = name + "_array"
        if loop not in self.numpy_loops:
            self.numpy_loops.add(loop)
            self.generated.append(
                f"def {loop}(x):\n"
                "    out = numpy.empty(x.shape, numpy.float32)\n"
                "    xf, of = x.ravel(), out.ravel()\n"
                "    for i in range(of.size):\n"
                f"        of[i] = {name}(xf[i])\n"
                "    return out"
            )
        return loop

    def _array_argument(self, x: Value) -> bool:
        """Whether the unnamed value ``x`` is read as a whole array by an operation that is not
        itself elementwise arithmetic nor a fused sum or scatter (a product, a reduction)."""
        users = self.users.get(x.id, [])
        if len(users) != 1:
            return False
        u = users[0]
        return not elementwise(u) and not summed(u) and u.prim is not P.scatter_add

    def fused_helper(self, source: str) -> str:
        """Add a generated function (``NAME`` in ``source``) to the module; its name."""
        name = self.fused.get(source)
        if name is None:  # (a loop unrolled in Python writes the same helper every step)
            name = self.fused[source] = f"_fz{len(self.generated)}"
            self.generated.append(source.replace("NAME", name, 1))
        return name

    def ref(self, x: Any, style: str = "python") -> tuple[str, int]:
        if self.scalar_refs and isinstance(x, Value) and x.id in self.scalar_refs:
            return self.scalar_refs[x.id], ATOM
        if (
            not self.scalar_refs
            and isinstance(x, Value)
            and x.op not in (INPUT, CONST)
            and x.id not in self.names
            and self._array_argument(x)
        ):  # elementwise arithmetic read by a product or a call: one loop nest (fusion.py)
            if x.id not in self.mapped:
                fused = fused_map(self, x)
                if fused is None:
                    self.mapped[x.id] = None
                else:
                    self.mapped[x.id] = fused
                    self.lay[x.id] = "C"
            if self.mapped[x.id] is not None:
                return self.mapped[x.id], ATOM  # type: ignore[return-value]
        if isinstance(x, _Expr):
            return x.text_, x.prec
        return super().ref(x, style)

    def layout(self, x: Any) -> str:
        if isinstance(x, _Expr):
            return "S" if x.shape == () else x.layout
        if isinstance(x, Value):
            if x.shape == ():
                return "S"
            if x.op == CONST:
                return "C"
            if x.id not in self.lay:
                self.ref(x)  # an inline value: writing it records its layout
            return self.lay.get(x.id, "A")
        return "S" if numpy.ndim(x) == 0 else "C"

    # --- arguments ---------------------------------------------------------------------------

    def _weak(self, x: Any) -> bool:
        """A Python number in the source (NumPy treats it as a 'weak' scalar)."""
        if isinstance(x, Value):
            return (
                x.op == CONST
                and numpy.ndim(x.const) == 0
                and numpy.asarray(x.const).dtype in (numpy.float64, numpy.int64, numpy.bool_)
            )
        if isinstance(x, (bool, int, float, Size)):
            return True
        if isinstance(x, numpy.ndarray) and x.ndim == 0:
            return x.dtype in (numpy.float64, numpy.int64, numpy.bool_)
        return isinstance(x, (numpy.float64, numpy.int64, numpy.bool_))

    def context(self, v: Value, args: list[Any] | None = None) -> numpy.dtype[Any] | None:
        """The dtype a weak scalar among ``v``'s arguments is cast to (NEP 50)."""
        strong = [
            a
            for a in (v.args if args is None else args)
            if isinstance(a, Value) and not self._weak(a)
        ]
        if not strong:
            return None
        nonbool = [a.dtype for a in strong if numpy.dtype(a.dtype).kind != "b"]
        if not nonbool:
            return None
        return numpy.result_type(*nonbool)

    def text(self, x: Any, need: int = 0, ctx: Any = None) -> str:
        """The text of one argument, cast like NumPy casts a weak scalar, parenthesised if its
        precedence is below ``need``."""
        text, prec = self.ref(x)
        if ctx is not None and self._weak(x):
            ctx = numpy.dtype(ctx)
            value = (
                x.const.item() if isinstance(x, Value) else (int(x) if isinstance(x, Size) else x)
            )
            if isinstance(value, numpy.generic):
                value = value.item()
            if ctx.kind == "f" and ctx != numpy.float64:
                if ctx == numpy.float16:
                    raise Unsupported("float16", "Numba has no float16 arithmetic")
                text, prec = f"numpy.{ctx.name}({text})", ATOM
            elif (
                ctx.kind in "iu"
                and ctx != numpy.int64
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                text, prec = f"numpy.{ctx.name}({text})", ATOM
        return f"({text})" if prec < need else text

    def contig(self, x: Any, need: int = ATOM) -> str:
        """``x`` as a C-contiguous array (free when it already is one)."""
        t = self.text(x, ATOM)
        if self.layout(x) in ("C", "S"):
            return t
        return f"numpy.ascontiguousarray({t})"

    def flat(self, x: Any) -> str:
        return f"{self.contig(x)}.ravel()"

    # --- expressions -------------------------------------------------------------------------

    def expr(self, v: Value, style: str = "python") -> tuple[str, int]:
        prim = v.prim
        assert prim is not None
        if prim.custom:
            raise Unsupported(
                prim.name, "a custom primitive (a Python function that Numba cannot call)"
            )
        if numpy.dtype(v.dtype).kind not in _OK_KINDS or numpy.dtype(v.dtype) == numpy.float16:
            raise Unsupported(
                prim.name,
                f"dtype {numpy.dtype(v.dtype)} (Numba supports bool, "
                "integers, float32 and float64 here)",
            )
        handler = _FORMS.get(prim)
        if handler is None:
            if prim.name.startswith("scipy."):
                raise Unsupported(
                    prim.name, "a SciPy function (Numba cannot call scipy.special's ufuncs)"
                )
            if prim.name in NUMBA_UFUNCS and isinstance(prim.fun, numpy.ufunc):
                handler = _ufunc_call
            else:
                raise Unsupported(prim.name, "no Numba form for this operation")
        text, prec, lay = handler(self, v)
        self.lay[v.id] = "S" if v.shape == () else lay
        return text, prec

    # --- statements --------------------------------------------------------------------------

    def code(self) -> list[str]:
        out: list[str] = []
        for v in self.prog.values:
            if not self.is_statement(v):
                continue
            name = self.names[v.id]
            maker = _LINES.get(v.prim) if v.prim is not None else None
            if maker is not None:
                if (
                    numpy.dtype(v.dtype).kind not in _OK_KINDS
                    or numpy.dtype(v.dtype) == numpy.float16
                ):
                    raise Unsupported(v.op.name, f"dtype {numpy.dtype(v.dtype)}")
                lines, lay = maker(self, v, name)
                self.lay[v.id] = "S" if v.shape == () else lay
                out.extend(lines)
                continue
            fused = fused_map(self, v)
            if fused is not None:  # elementwise arithmetic: one loop nest (fusion.py)
                self.lay[v.id] = "C"
                out.append(f"{name} = {fused}")
                continue
            text, _ = self.expr(v)
            out.append(f"{name} = {text}")
        return out

    # --- shared pieces -----------------------------------------------------------------------

    def to_dtype(self, text: str, src: Any, dst: Any, scalar: bool) -> str:
        if numpy.dtype(src) == numpy.dtype(dst):
            return text
        return f"{_dt(dst)}({text})" if scalar else f"{text}.astype({_dt(dst)})"

    def reduce(
        self, kind: str, x: Any, axis: Any, keepdims: bool, out_dtype: Any, ddof: int = 0
    ) -> tuple[str, str]:
        """``kind`` in sum, prod, max, min, mean, var, std, hypot over ``axis`` of ``x``."""
        shape = _shape(x)
        xdt = _dtype(x)
        odt = numpy.dtype(out_dtype)
        nd = len(shape)
        axes = _axes(axis, nd)
        kept = [d for d in range(nd) if d not in axes]
        out_shape = (
            tuple(1 if d in axes else shape[d] for d in range(nd))
            if keepdims
            else tuple(shape[d] for d in kept)
        )
        count = math.prod(shape[d] for d in axes)
        if nd == 0:  # a scalar: the reduction is itself
            t = self.text(x, ATOM)
            if kind in ("var", "std"):
                return f"{_dt(odt)}(0.0 / {max(1 - ddof, 0)})" if ddof else f"{_dt(odt)}(0.0)", "S"
            return self.to_dtype(t, xdt, odt, True), "S"
        zero = f"{_dt(odt)}(0)"
        acc = numpy.dtype(odt)
        if not kept:  # over everything: a scalar
            t = self.text(x, ATOM)
            if kind in ("sum", "mean") and xdt.kind == "f" and xdt.itemsize >= 4 and odt == xdt:
                # NumPy's pairwise sum (the same bits; Numba's .sum() runs one accumulator along
                # the array: error ~ n, 2e-4 relative over 524,288 float32 squares, and a
                # chain of dependent additions LLVM cannot vectorise)
                s = f"{self.helper('_rsum_last')}({self.flat(x)}.reshape((1, {count})), {zero})[0]"
                if kind == "mean":
                    s = f"({s} / {self.typed(count, acc)})"
                if keepdims:
                    return f"numpy.full({out_shape}, {s})", "C"
                return s, "S"
            if kind in ("sum", "mean") and xdt.kind == "f":
                # float16: a float64 accumulator, at least as accurate as NumPy's float32 one
                s = f"{self.helper('_rsum_wide')}({self.flat(x)})"
                if kind == "mean":
                    s = f"({s} / {count})"
                s = self.to_dtype(s, numpy.float64, odt, True)
                if keepdims:
                    return f"numpy.full({out_shape}, {s})", "C"
                return s, "S"
            if kind == "sum":
                s = self.to_dtype(f"{t}.sum()", numpy.int64 if xdt.kind == "b" else xdt, odt, True)
            elif kind in ("prod", "max", "min"):
                if xdt.kind == "b":
                    raise Unsupported(kind, "a reduction of booleans")
                s = self.to_dtype(f"{t}.{kind}()", xdt, odt, True)
            elif kind == "mean":
                s = f"({t}.sum() / {self.typed(count, acc)})"
                s = self.to_dtype(s, acc if xdt.kind == "f" else numpy.float64, odt, True)
            elif kind in ("var", "std"):
                x2 = f"{self.flat(x)}.reshape((1, {count}))"
                s = (
                    f"{self.helper('_rvar_last')}({x2}, {self.typed(count, acc)}, "
                    f"{self.typed(max(count - ddof, 0), acc)})[0]"
                )
                if kind == "std":
                    s = f"numpy.sqrt({s})"
            elif kind == "hypot":
                s = (
                    f"{self.helper('_rhypot_last')}({self.flat(x)}.reshape((1, {count})), "
                    f"{zero})[0]"
                )
            else:  # pragma: no cover
                raise Unsupported(kind, "unknown reduction")
            if keepdims:
                return f"numpy.full({out_shape}, {s})", "C"
            return s, "S"
        outer = math.prod(shape[d] for d in kept)
        # the sum of a negated float array (the gradient of y in x - y, summed to y's shape):
        # subtracted as it is read, bit for bit that sum, without the negated array
        neg = ""
        negated = isinstance(x, Value) and x.prim is P.negative
        if negated and kind in ("sum", "mean") and xdt.kind == "f":
            x, neg = x.args[0], "_neg"
        leading = list(axes) == list(range(len(axes)))
        trailing = list(axes) == list(range(nd - len(axes), nd))
        z = zero if xdt.kind != "b" or kind != "sum" else "numpy.int64(0)"
        if kind in ("sum", "prod", "max", "min", "mean", "hypot"):
            base = {"mean": "sum"}.get(kind, kind)
            if base in ("prod", "max", "min", "hypot") and xdt.kind == "b":
                raise Unsupported(kind, "a reduction of booleans")
            if kind == "mean" and xdt.kind != "f":
                z = "numpy.float64(0)"
            run = list(axes) == list(range(axes[0], axes[0] + len(axes)))
            fused = None
            if base == "sum":  # a product of stacks, or elementwise arithmetic summed as computed
                fused = None if neg else self._summed_stack(x, axes, odt)
                if fused is None:
                    pairwise = xdt.kind == "f" and odt == xdt
                    fused = fused_sum(self, x, list(axes), z, bool(neg), pairwise)
            if fused is not None:
                r = fused
            elif leading and base != "hypot":
                x2 = f"{self.contig(x)}.reshape(({count}, {outer}))"
                r = f"{self.helper(f'_r{base}_first{neg}')}({x2}, {z})"
            elif run and not trailing and base == "sum":  # a run of middle axes: no copy
                before = math.prod(shape[: axes[0]])
                x3 = f"{self.contig(x)}.reshape(({before}, {count}, {outer // before}))"
                r = f"{self.helper(f'_rsum_mid{neg}')}({x3}, {z})"
            else:
                if trailing:
                    src = self.contig(x)
                else:
                    perm = tuple(kept) + tuple(axes)
                    src = f"numpy.ascontiguousarray({self.text(x, ATOM)}.transpose({perm}))"
                x2 = f"{src}.reshape(({outer}, {count}))"
                # floats in NumPy's pairwise order; integers and booleans one by one (exact)
                seq = "_seq" if base == "sum" and (xdt.kind != "f" or odt != xdt) else ""
                r = f"{self.helper(f'_r{base}_last{seq}{neg}')}({x2}, {z})"
            if kind == "mean":
                r = f"({r} / {self.typed(count, acc if xdt.kind == 'f' else numpy.float64)})"
        elif kind in ("var", "std"):
            perm = tuple(kept) + tuple(axes)
            n_d = f"{self.typed(count, acc)}, {self.typed(max(count - ddof, 0), acc)}"
            if leading:  # down the columns: no transposed copy
                x2 = f"{self.contig(x)}.reshape(({count}, {outer}))"
                r = f"{self.helper('_rvar_first')}({x2}, {n_d})"
            else:
                src = (
                    self.contig(x)
                    if trailing
                    else f"numpy.ascontiguousarray({self.text(x, ATOM)}.transpose({perm}))"
                )
                r = f"{self.helper('_rvar_last')}({src}.reshape(({outer}, {count})), {n_d})"
            if kind == "std":
                r = f"numpy.sqrt({r})"
        else:  # pragma: no cover
            raise Unsupported(kind, "unknown reduction")
        if out_shape != (outer,):
            r = f"{r}.reshape({out_shape})"
        return r, "C"

    def typed_float(self, f: float, dtype: Any) -> str:
        d = numpy.dtype(dtype)
        if d == numpy.float64:
            return repr(float(f))
        return f"numpy.{d.name}({float(f)!r})"

    def typed(self, n: int, dtype: Any) -> str:
        d = numpy.dtype(dtype)
        if d == numpy.float64:
            return repr(float(n))
        return f"numpy.{d.name}({n})"

    def matmul2(self, a: Any, b: Any, dtype: Any) -> str:
        """``numpy.dot`` of two 1-d/2-d operands (F-contiguous is fine for BLAS)."""
        _need_scipy("dot")
        if numpy.dtype(dtype).kind != "f":
            raise Unsupported(
                "dot", "matrix products of integers or booleans (Numba's numpy.dot is for floats)"
            )
        ta = self.text(a, ATOM) if self.layout(a) in "CFS" else self.contig(a)
        tb = self.text(b, ATOM) if self.layout(b) in "CFS" else self.contig(b)
        ta = self.to_dtype(
            ta, a.dtype if isinstance(a, Value) else numpy.asarray(a).dtype, dtype, False
        )
        tb = self.to_dtype(
            tb, b.dtype if isinstance(b, Value) else numpy.asarray(b).dtype, dtype, False
        )
        return f"numpy.dot({ta}, {tb})"

    def tensordot(
        self,
        a: Any,
        b: Any,
        axes_a: list[int],
        axes_b: list[int],
        dtype: Any,
        out_shape: tuple[int, ...],
    ) -> str:
        sa, sb = _shape(a), _shape(b)
        free_a = [d for d in range(len(sa)) if d not in axes_a]
        free_b = [d for d in range(len(sb)) if d not in axes_b]
        m = math.prod(sa[d] for d in free_a)
        k = math.prod(sa[d] for d in axes_a)
        n = math.prod(sb[d] for d in free_b)
        _need_scipy("tensordot")
        ta = self._as2d(a, free_a + list(axes_a), (m, k))
        tb = self._as2d(b, list(axes_b) + free_b, (k, n))
        if numpy.dtype(dtype).kind != "f":
            raise Unsupported("tensordot", "products of integers or booleans")
        ta = self.to_dtype(ta, _dtype(a), dtype, False)
        tb = self.to_dtype(tb, _dtype(b), dtype, False)
        r = f"numpy.dot({ta}, {tb})"
        if out_shape == ():
            return f"{r}[0, 0]"
        return f"{r}.reshape({out_shape})"

    def _summed_stack(self, x: Any, axes: tuple[int, ...], odt: Any) -> str | None:
        """``(A @ B).sum(axis=batch axes)`` of two stacks of matrices (a weight's gradient
        through a linear layer on (batch, seq, features): ``mT(h) @ g`` summed over the batch)
        as one product over the stacks' rows, ``tensordot(A, B, (batch + [k], batch + [k]))``,
        not a product per matrix then a sum; None for anything else."""
        if not (isinstance(x, Value) and x.prim is P.matmul and x.id not in self.names):
            return None
        a, b = x.args
        shape = _shape(x)
        nd = len(shape)
        if (
            nd < 3
            or list(axes) != list(range(nd - 2))
            or not all(isinstance(t, Value) and _shape(t)[:-2] == shape[:-2] for t in (a, b))
            or len(_shape(a)) != nd
            or len(_shape(b)) != nd
            or numpy.dtype(odt) != numpy.dtype(x.dtype)
        ):
            return None
        batch = list(range(nd - 2))
        out = (shape[-2] * shape[-1],)
        return self.tensordot(a, b, batch + [nd - 1], batch + [nd - 2], x.dtype, out)

    def _as2d(self, x: Any, perm: list[int], shape2: tuple[int, int]) -> str:
        """``x.transpose(perm).reshape(shape2)`` as BLAS may read it: a view where one is
        (the axes in order, or a block of trailing axes moved in front of the rest of a
        C-contiguous array: the transpose of its reshape, F-contiguous), a copy otherwise.
        An unnamed transpose of an array is seen through (its axes composed with ``perm``)."""
        if isinstance(x, Value) and x.prim in TRANSPOSES and x.id not in self.names:
            p = permutation(x)
            x, perm = x.args[0], [p[q] for q in perm]
        shape = _shape(x)
        nd = len(shape)
        j = perm[0]
        rotated = 0 < j < nd and perm == list(range(j, nd)) + list(range(j))
        if rotated and self.layout(x) == "C" and math.prod(shape[j:]) == shape2[0]:
            t = self.text(x, ATOM)  # F-contiguous: BLAS reads it as is
            return f"{t}.T" if nd == 2 else f"{t}.reshape(({shape2[1]}, {shape2[0]})).T"
        if perm == list(range(nd)):
            src = self.contig(x)
        else:
            src = f"numpy.ascontiguousarray({self.text(x, ATOM)}.transpose({tuple(perm)}))"
        if nd == 2 and _shape(x) == shape2 and perm == [0, 1]:
            return src
        return f"{src}.reshape({shape2})"

    def gather(self, x: Any, fun: Callable[[numpy.ndarray], numpy.ndarray]) -> tuple[str, str]:
        """Apply a pure rearrangement ``fun`` (shapes static) as a gather through constant
        positions computed by running ``fun`` on ``arange``."""
        shape = _shape(x)
        size = math.prod(shape)
        lin = numpy.asarray(fun(numpy.arange(size, dtype=numpy.intp).reshape(shape)))
        if len(shape) == 0:  # x is a scalar: itself, or an array of it
            if lin.ndim == 0:
                return self.text(x, ATOM), "S"
            return f"numpy.full({lin.shape}, {self.text(x)})", "C"
        if lin.ndim == 0:
            return f"{self.flat(x)}[{int(lin)}]", "S"
        if lin.shape == shape and numpy.array_equal(lin.ravel(), numpy.arange(size)):
            return self.text(x, ATOM), self.layout(x)
        k = self.const_array(numpy.ascontiguousarray(lin).ravel())
        r = f"{self.flat(x)}[{k}]"
        if lin.ndim != 1:
            r = f"{r}.reshape({lin.shape})"
        return r, "C"
