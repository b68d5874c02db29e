"""``explain``: the backward pass of any recorded NumPy function, written out in its own names.

The derivation is not a second implementation: it is the recorded result of running the very
gradient rules that ``backward()`` runs (on recording tensors instead of arrays), tidied by the
program passes of :mod:`chainrule.program.ir` and written by :mod:`chainrule.program.codegen`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.engine.graph import Node
from chainrule.engine.tensor import Tensor, TracerBoolError
from chainrule.program.codegen import Line, Writer, identifier
from chainrule.program.ir import CONST, INPUT, Program, Value, build, cse, dce, prettify, simplify
from chainrule.program.notation import ATOM, Literals, ReadableLiterals, needs_scipy
from chainrule.program.trace import Recording, record

from .readable import readable_lines

__all__ = ["explain", "Explanation"]


def explain(fun: Callable[..., Any], *args: Any, wrt: Any = None, **kwargs: Any) -> Explanation:
    """Record ``fun(*args, **kwargs)`` once and explain its backward pass.

    Parameters
    ----------
    fun : callable
        Plain NumPy code returning a scalar (a non-scalar result is summed first).
    *args
        Its arguments (arrays, numbers, nested lists/tuples/dicts of arrays).
    wrt : str, int or sequence of them, optional
        The parameters to differentiate with respect to (default: every floating-point array
        argument).

    Returns
    -------
    Explanation
        ``str()`` gives the forward and backward passes line by line with shapes;
        ``.why()`` the chain-rule step behind each backward line; ``.to_python()`` standalone
        NumPy code; ``.to_latex()``, ``.to_markdown()``, ``.to_dot()``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> def loss(w, x):
    ...     h = numpy.tanh(x @ w)
    ...     return (h ** 2).sum()
    >>> e = cr.explain(loss, numpy.ones((3, 2)), numpy.ones((4, 3)), wrt="w")
    >>> print(e.backward_lines()[-1])
    dw = x.T @ (dh * (1 - h ** 2))
    """
    ex = Explanation(record(fun, args, kwargs, wrt=wrt, allow_frozen=True))
    if ex.recording.frozen:
        _check_frozen(ex, fun, kwargs)
    return ex


def _check_frozen(ex: Explanation, fun: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """The user's code copied traced values into plain arrays (``dW = numpy.zeros(...)``,
    ``dW[:, j] += X[i]``: a hand-written gradient beside the loss). Allowed only if the result
    does not depend on them: the function itself and the recorded program must agree at a
    second, nearby point, where a value frozen into the recording would have changed."""
    from chainrule.engine.pytree import unflatten

    rec = ex.recording
    rng = numpy.random.default_rng(7)
    leaves = []
    for t in rec.inputs:
        d = numpy.array(t._data, copy=True)
        if d.dtype.kind == "f":
            d = (d * (1 + 1e-4 * rng.standard_normal(d.shape))).astype(d.dtype)
            d = d + (1e-4 * rng.standard_normal(d.shape)).astype(d.dtype)
        leaves.append(d)

    def arguments() -> list[Any]:
        args = []
        for i in range(len(rec.params)):
            if i in rec.static:
                args.append(rec.static[i])
            else:
                mine = [leaves[j].copy() for j in range(len(leaves)) if rec.input_arg[j] == i]
                args.append(unflatten(rec.treedefs[i], mine))
        return args

    ns: dict[str, Any] = {}
    agree = False
    try:
        with numpy.errstate(all="ignore"):
            exec(ex.to_python(), ns)  # noqa: S102 - the exported code of the user's function
            recorded, _ = ns["backward"](*arguments())
            actual = fun(*arguments(), **kwargs)
        agree = bool(numpy.allclose(recorded, actual, rtol=1e-9, atol=1e-12))
    except Exception:  # noqa: BLE001, S110 - could not check: refused below
        pass
    if not agree:
        raise TracerBoolError(
            f"{rec.fun_name} copied a traced value into a plain NumPy array "
            f"({rec.frozen[0]}), and its result depends on it (or the function draws new "
            "random numbers each call, so this could not be checked): the recording would "
            "freeze today's values. Keep the computation on tensors: build the array from them "
            "(numpy.stack([...]) instead of h = numpy.zeros(...); h[:, t] = ...) or use a "
            "NumPy function rather than an ndarray method of a plain array (numpy.dot(X, W), "
            "not X.dot(W))"
        )
    ex.notes.append(
        f"{rec.fun_name} copied {len(rec.frozen)} traced value(s) into plain NumPy arrays "
        "(a hand-written gradient computed beside the result, it seems); the result does "
        "not depend on them (checked at a second, nearby point), so they are left out."
    )


class Explanation:
    """The recorded forward and backward passes of one call, ready to be read or exported.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> f = lambda w, x: ((x @ w) ** 2).sum()
    >>> e = cr.explain(f, numpy.ones(2), numpy.ones((3, 2)), wrt="w")
    >>> e.backward_lines()
    ['dw = x.T @ (2 * xw)']
    """

    def __init__(self, rec: Recording) -> None:
        self.recording = rec
        self.program, self._by_node = _named_program(rec)
        self.grad_names = [_grad_name(rec.input_names[j]) for j in rec.wrt]
        refs = {v.id: rec.input_names[i] for i, v in enumerate(self.program.inputs)}
        names = {v.id: v.name for v in self.program.values if v.name and v.op != INPUT}
        for out, name in zip(self.program.outputs, self._output_names()):
            if out.op != INPUT and out.id not in names:
                names[out.id] = name
        self.literals = ReadableLiterals(rec.constants, arrays=_array_names(rec, names, refs))
        # an array constant the user did not name is shown as C0, C1, ... (a note says what
        # it is), never as a long literal; the exported code writes it out
        self.constants: list[numpy.ndarray] = []
        self.literals.hoist = self._display_constant
        self.literals.inline_limit = 8
        self.writer = Writer(self.program, names, self.literals, refs=refs, repeat_small=True)
        try:
            extra = _describe_generated(self, names, refs)
        except Exception:  # noqa: BLE001 - naming is a courtesy: t1, t2 rather than a crash
            extra = {}
        if extra:  # the values that got t1, t2, ... named after what they are, written again
            self.writer = Writer(
                self.program, {**names, **extra}, self.literals, refs=refs, repeat_small=True
            )
        self.rewritten: dict[str, str] = {}  # line name -> why its textbook form holds
        try:
            self.lines, simplified, why_forms = readable_lines(self, self.writer.lines())
        except Exception:  # noqa: BLE001 - the recorded steps, as they are, rather than a crash
            self.rewritten = {}
            self.lines, simplified, why_forms = self.writer.lines(), [], []
        self.notes = (
            _notes(self)
            + [
                "Written in textbook form, each checked to equal the recorded chain rule on "
                "these inputs (to_python() keeps the recorded steps): " + "; ".join(simplified)
            ]
            * bool(simplified)
            + why_forms
        )

    # --- pieces -------------------------------------------------------------------------------

    def _display_constant(self, a: numpy.ndarray) -> str:
        for k, b in enumerate(self.constants):
            if b is a or (b.shape == a.shape and b.dtype == a.dtype and numpy.array_equal(a, b)):
                return f"C{k}"
        self.constants.append(a)
        return f"C{len(self.constants) - 1}"

    @property
    def output_name(self) -> str:
        rec = self.recording
        fallback = (
            rec.fun_name if rec.fun_name.isidentifier() and rec.fun_name != "<lambda>" else "out"
        )
        if fallback in rec.names.values():
            fallback = "out"
        return rec.names.get(rec.output, fallback) if isinstance(rec.output, Node) else fallback

    def _output_names(self) -> list[str]:
        return [self.output_name] + self.grad_names

    def _node_value(self, node: Any) -> Any:
        v = self._by_node.get(node)
        return self.program.resolve(v) if v is not None else None

    def forward_lines(self, wrap: bool = True) -> list[str]:
        """``name = expression`` for every forward statement; one longer than ``WRAP``
        characters continues on indented lines (``wrap=False``: each statement whole)."""
        out = [line for ln in self.lines if ln.phase == "forward" for line in ln.code]
        return _wrapped(out) if wrap else out

    def backward_lines(self, wrap: bool = True) -> list[str]:
        """``dname = expression`` for every backward statement, last operation first; one
        longer than ``WRAP`` characters continues on indented lines (``wrap=False``: each
        statement whole)."""
        out = [line for ln in self.lines if ln.phase == "backward" for line in ln.code]
        for name, v in zip(self.grad_names, self.program.outputs[1:]):
            text = self._value_text(v)
            if text != name:
                out.append(f"{name} = {text}")
        return _wrapped(out) if wrap else out

    def _value_text(self, v: Value) -> str:
        return self.writer.ref(v)[0]

    def _shaped(self, lines: list[Line], phase: str) -> list[tuple[str, str]]:
        rows = []
        for ln in lines:
            if ln.phase != phase:
                continue
            shape = f"{tuple(ln.value.shape)}"
            for i, code in enumerate(ln.code):
                rows.append((code, shape if i == len(ln.code) - 1 else ""))
        if phase == "backward":
            for name, v in zip(self.grad_names, self.program.outputs[1:]):
                text = self._value_text(v)
                if text != name:
                    rows.append((f"{name} = {text}", f"{tuple(v.shape)}"))
        return rows

    # --- text ---------------------------------------------------------------------------------

    def __str__(self) -> str:
        rec = self.recording
        rows = self._shaped(self.lines, "forward") + self._shaped(self.lines, "backward")
        # the table is as wide as its lines up to WRAP characters; a longer line is wrapped
        width = max([len(c) for c, _ in rows if len(c) <= WRAP] + [20]) + 2
        wrt = ", ".join(rec.input_names[j] for j in rec.wrt)
        head = [f"{rec.fun_name}: d{self.output_name}/d({wrt})"]
        head.append(
            "inputs: "
            + ", ".join(
                f"{n} {tuple(numpy.shape(t._data))} {t._data.dtype}"
                for n, t in zip(rec.input_names, rec.inputs)
            )
        )
        out = _wrapped(head) + ["", "Forward pass"]
        out += [r for c, s in self._shaped(self.lines, "forward") for r in _row(c, s, width)]
        out += ["", f"Backward pass (the chain rule, from {self.output_name} back to the inputs)"]
        out += [r for c, s in self._shaped(self.lines, "backward") for r in _row(c, s, width)]
        if self.notes:
            out += ["", "Notes"] + [r for n in self.notes for r in _note_rows(n)]
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"<Explanation of {self.recording.fun_name}: {len(self.lines)} statements>"

    def why(self, notes: bool = True) -> str:
        """Each backward line with the chain-rule step it comes from (and the notes, unless
        ``notes=False``: for printing it after ``str()``, which has them)."""
        rec = self.recording
        contributions: dict[Node, list[tuple[Node, Any, Any, int, Any]]] = {}
        adjoint_of: dict[int, Node] = {}
        for step in rec.steps:
            v = self._node_value(step.grad)
            if isinstance(v, Value) and step.node in self._by_node:
                # a named value first: dY is Y's gradient, though (Y - T) receives it too
                held = adjoint_of.get(id(v))
                if held is None or (step.node in rec.names and held not in rec.names):
                    adjoint_of[id(v)] = step.node
            for i, a, raw, fin in step.terms:
                contributions.setdefault(a, []).append((step.node, raw, fin, i, step.grad))
        out = self.output_name
        lines = [
            f"Why each backward line holds. Notation: ∂{out}/∂X is the gradient of {out} with "
            f"respect to X (dX in the code); ∂{out}/∂X ∋ t says t is one term of it (X used in "
            "several places gets one term per use, added up); · is the matrix product, ⊙ the "
            "elementwise product, ᵀ the transpose, 𝟙[c] is 1 where c holds and 0 elsewhere, "
            "Σₙ sums over the rows n (the samples).",
            "",
        ]
        for ln in self.lines:
            if ln.phase != "backward":
                continue
            node = adjoint_of.get(id(ln.value))
            lines.append(
                f"{ln.code[-1] if len(ln.code) == 1 else '; '.join(ln.code)}"
                f"   # {tuple(ln.value.shape)}"
            )
            if ln.name in self.rewritten:
                lines.append(
                    f"    textbook form: {self.rewritten[ln.name]}; checked to equal the "
                    "recorded chain rule on these inputs (to_python() has the recorded steps)"
                )
            elif node is not None and node is not rec.output:
                name = rec.names.get(node) or self._label(node)
                for consumer, raw, fin, i, g in contributions.get(node, []):
                    lines.extend(
                        "    " + t
                        for t in self._term(name, consumer, raw, fin, ln.value)
                        + self._index_form(name, consumer, raw, fin, i, g)
                    )
            lines.append("")
        if notes:
            lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def _arg_name(self, consumer: Node, k: int, x: Any) -> str:
        """The name of input ``k`` of ``consumer``: a recorded value's, or a constant's as the
        derivation writes it (``X`` for a global array)."""
        if isinstance(x, Node):
            return self.recording.names.get(x) or self._label(x)
        cv = self._by_node.get(consumer)
        if cv is not None and k < len(cv.args):
            return self.writer.ref(cv.args[k], "math")[0]
        return "c"

    def _label(self, node: Node) -> str:
        v = self._by_node.get(node)
        if v is None or v.prim is None:
            return "?"
        return f"({self.writer.expr(v, 'math')[0]})"

    def _grad_text(self, g: Any) -> str:
        """The incoming gradient as the derivation writes it, parenthesised unless it is one
        name (it is indexed and multiplied in the index form: ``(2 · z)[n,j]``)."""
        v = self._node_value(g) if isinstance(g, Node) else None
        if not isinstance(v, Value):
            return "g"
        text, prec = self.writer.ref(v, "math")
        return text if prec >= ATOM else f"({text})"

    def _index_form(
        self, name: str, consumer: Node, raw: Any, fin: Any, i: int, g: Any
    ) -> list[str]:
        """Why a product's gradient is written the way it is: element by element, then as a
        matrix product, with the shapes that force the order (and one worked element)."""
        out = self.output_name
        prim = consumer._prim
        args = consumer._args or ()
        shape = tuple(numpy.shape(fin._data if isinstance(fin, Tensor) else fin))
        gshape = tuple(numpy.shape(g._data if isinstance(g, Tensor) else g))
        if prim in (P.matmul, P.dot) and len(args) == 2:
            a, w = args
            ad, wd = (numpy.asarray(x._data if isinstance(x, Node) else x) for x in args)
            if not (ad.ndim == 2 and wd.ndim == 2):
                return []
            an, wn = self._arg_name(consumer, 0, a), self._arg_name(consumer, 1, w)
            gn = self._grad_text(g)
            gd = numpy.asarray(g._data if isinstance(g, Tensor) else g)
            if i == 1:
                text = [
                    f"    index form: ∂{out}/∂{wn}[i,j] = Σₙ {an}[n,i] · {gn}[n,j]  "
                    f"⇒  d{identifier(wn)} = {an}ᵀ · {gn}",
                    f"    shapes: {an}ᵀ is {tuple(reversed(ad.shape))} and {gn} is "
                    f"{gshape}, so {an}ᵀ · {gn} is {shape}, the shape of {wn}; the sum over n "
                    f"pairs row n of {an} with row n of {gn}, which is what putting {an}ᵀ on "
                    "the left does",
                ]
                terms = [(float(ad[n, 0]), float(gd[n, 0])) for n in range(ad.shape[0])]
                total = sum(x * y for x, y in terms)
                shown = " + ".join(f"{_num(x)} × {_num(y)}" for x, y in terms[:3])
                if len(terms) > 3:
                    shown += f" + … ({len(terms)} terms)"
                text.append(f"    e.g. d{identifier(wn)}[0,0] = {shown} = {_num(total)}")
                return text
            if i == 0:
                return [
                    f"    index form: ∂{out}/∂{an}[n,i] = Σⱼ {gn}[n,j] · {wn}[i,j]  "
                    f"⇒  d{identifier(an)} = {gn} · {wn}ᵀ",
                    f"    shapes: {gn} is {gshape} and {wn}ᵀ is "
                    f"{tuple(reversed(wd.shape))}, so {gn} · {wn}ᵀ is {shape}, "
                    f"the shape of {an}",
                ]
        rshape = tuple(numpy.shape(raw._data if isinstance(raw, Tensor) else raw))
        if len(rshape) == 2 and len(shape) == 1 and shape == rshape[1:]:
            gn = self._grad_text(g)
            return [
                f"    index form: ∂{out}/∂{name}[j] = Σₙ {gn}[n,j]: {name}[j] is added to every "
                f"row n, so each row's gradient counts once  ⇒  d{identifier(name)} = "
                f"{gn}.sum(axis=0)"
            ]
        return []

    def _term(self, name: str, consumer: Node, raw: Any, fin: Any, line_value: Value) -> list[str]:
        rec = self.recording
        out = self.output_name
        cv = self._by_node.get(consumer)
        cname = rec.names.get(consumer)
        cexpr = self.writer.expr(cv, "math")[0] if cv is not None and cv.prim is not None else "?"
        label = cname if cname else f"({cexpr})"
        text = [
            f"∂{out}/∂{name} ∋ ∂{out}/∂{label} · ∂{label}/∂{name}"
            + (f",  {cname} = {cexpr}" if cname else "")
        ]
        rv = self._node_value(raw) if isinstance(raw, Node) else None
        if isinstance(rv, Value):
            shown = (
                self.writer.expr(rv, "math")[0]
                if rv.prim is not None and (rv is line_value or not self.writer.is_statement(rv))
                else self.writer.ref(rv, "math")[0]
            )
            text.append(f"    = {shown}")
        if tuple(numpy.shape(raw._data if isinstance(raw, Tensor) else raw)) != tuple(
            numpy.shape(fin._data if isinstance(fin, Tensor) else fin)
        ):
            text.append(
                f"    then summed back to {name}'s shape "
                f"{tuple(numpy.shape(fin._data))}: {name} was broadcast to "
                f"{tuple(numpy.shape(raw._data))} in {label}"
            )
        prim = consumer._prim
        if prim in (P.maximum, P.minimum, P.fmax, P.fmin):
            text.append(
                f"    kink convention: at a tie the gradient goes to the first argument, "
                f"so maximum(0, {name}) passes nothing where {name} == 0 (PyTorch's ReLU)"
            )
        elif prim in (P.absolute, P.fabs):
            text.append(f"    |x| has derivative sign(x), taken as 0 at {name} == 0")
        return text

    # --- exports ------------------------------------------------------------------------------

    def to_python(self, name: str = "backward") -> str:
        """Source of a standalone function (NumPy only) returning the value and the gradients."""
        rec = self.recording
        hoisted: list[str] = []

        def hoist(a: numpy.ndarray) -> str:
            cname = f"_C{len(hoisted)}"
            body = repr(a.tolist()).replace("inf", "numpy.inf").replace("nan", "numpy.nan")
            hoisted.append(f"{cname} = numpy.array({body}, dtype=numpy.{a.dtype.name})")
            return cname

        self.writer.lit = Literals(hoist=hoist)
        try:
            # written again with exact literals (the text shows numbers as a reader writes them)
            body_lines = [c for ln in self.writer.lines() for c in ln.code]
            tail = [
                f"{n} = {self._value_text(v)}"
                for n, v in zip(self.grad_names, self.program.outputs[1:])
                if self._value_text(v) != n
            ]
            out_text = self._value_text(self.program.outputs[0])
        finally:
            self.writer.lit = self.literals
        params = []
        for i, p in enumerate(rec.params):
            params.append(f"{p}={rec.static[i]!r}" if i in rec.static else p)
        checks = []
        for n, t in zip(rec.input_names, rec.inputs):
            shape, dtype = tuple(numpy.shape(t._data)), numpy.asarray(t._data).dtype
            checks.append(
                f"    assert numpy.shape({n}) == {shape} and numpy.asarray({n}).dtype "
                f'== numpy.{dtype.name}, \\\n        "{n}: this code was derived for '
                f'shape {shape} {dtype.name}; derive it again for other inputs"'
            )
        grads = ", ".join(f"{rec.input_names[j]!r}: {g}" for j, g in zip(rec.wrt, self.grad_names))
        doc = (
            f'    """Value of {rec.fun_name} and its gradients, written out by chainrule.\n\n'
            "    Derived for the shapes and dtypes asserted below and for the path Python's\n"
            '    control flow took on the recorded inputs.\n    """'
        )
        custom = sorted(
            {v.prim.name for v in self.program.values if v.prim is not None and v.prim.custom}
        )
        needs = (
            [
                f"# needs your own function{'s' if len(custom) > 1 else ''} "
                f"{', '.join(custom)} (chainrule.primitive) in scope",
                "",
            ]
            if custom
            else []
        )
        imports = ["import numpy"]
        if needs_scipy(v.prim for v in self.program.values):
            imports.append("import scipy.special")
        src = (
            imports
            + [""]
            + needs
            + hoisted
            + ([""] if hoisted else [])
            + ["", f"def {name}({', '.join(params)}):", doc]
            + checks
            + [f"    {c}" for c in body_lines + tail]
            + [f"    return {out_text}, {{{grads}}}", ""]
        )
        return "\n".join(src)

    def to_markdown(self) -> str:
        """Forward and backward passes as Markdown (code blocks and notes)."""
        fwd = "\n".join(c for c, _ in self._shaped(self.lines, "forward"))
        bwd = "\n".join(
            f"{c:<40}# {s}" if s else c for c, s in self._shaped(self.lines, "backward")
        )
        parts = [
            f"**{self.recording.fun_name}**: gradients of `{self.output_name}`",
            "",
            "Forward pass",
            "",
            "```python",
            fwd,
            "```",
            "",
            "Backward pass (chain rule)",
            "",
            "```python",
            bwd,
            "```",
        ]
        if self.notes:
            parts += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(parts) + "\n"

    def _repr_html_(self) -> str:
        """Forward and backward passes as tables (code and shape), the notes, and why each
        backward line holds folded under them: how Jupyter shows an explanation."""

        def table(phase: str) -> str:
            rows = "".join(
                f"<tr><td><code>{html.escape(c)}</code></td><td>{html.escape(s)}</td></tr>"
                for c, s in self._shaped(self.lines, phase)
            )
            return f'<table style="text-align:left">{rows}</table>'

        rec = self.recording
        wrt = ", ".join(rec.input_names[j] for j in rec.wrt)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<div><p><b>{html.escape(rec.fun_name)}</b>: "
            f"d{html.escape(self.output_name)}/d({html.escape(wrt)})</p>"
            f"<p>Forward pass</p>{table('forward')}"
            f"<p>Backward pass (the chain rule, from {html.escape(self.output_name)} back "
            f"to the inputs)</p>{table('backward')}"
            + (f"<ul>{notes}</ul>" if notes else "")
            + "<details><summary>why each backward line holds</summary><pre>"
            + html.escape(self.why(notes=False))
            + "</pre></details></div>"
        )

    def _repr_latex_(self) -> str:
        return self.to_latex()

    _repr_markdown_ = to_markdown

    def to_latex(self) -> str:
        """The backward pass as a LaTeX ``align*`` environment."""
        rows = []
        for ln in self.lines:
            if ln.phase != "backward" or ln.value.prim is None:
                continue
            lhs = _latex_name(
                ln.name, set(self.writer.names.values()) | set(self.writer.refs.values())
            )
            if len(ln.code) == 1 and ln.expr != self.writer.expr(ln.value)[0]:
                scalars = set(self.recording.constants.values())
                rhs = _python_to_latex(ln.expr, scalars)  # a textbook form of the readability pass
            else:
                rhs = self.writer.expr(ln.value, "latex")[0]
            rows.append(f"{lhs} &= {_latex_names(rhs, self)}")
        return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}\n"

    def to_dot(self) -> str:
        """The recorded graph as Graphviz DOT text (forward blue, backward red)."""
        lines = ["digraph chainrule {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
        ids = {}
        for v in self.program.values:
            label = self.writer.names.get(v.id) or self.writer.refs.get(v.id)
            what = v.op if not isinstance(v.op, P.Primitive) else v.op.name
            if v.op == CONST:
                what = "const"
            text = f"{label}\\n{what} {tuple(v.shape)}" if label else f"{what} {tuple(v.shape)}"
            color = "steelblue" if v.phase == "forward" else "firebrick"
            ids[v.id] = f"v{v.id}"
            lines.append(f'  v{v.id} [label="{html.escape(text)}", color={color}];')
        for v in self.program.values:
            for a in v.args:
                if isinstance(a, Value) and a.id in ids:
                    lines.append(f"  v{a.id} -> v{v.id};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    """A number for a worked example: four decimals, and never ``-0``."""
    text = f"{x:.4f}"
    return "0.0000" if text == "-0.0000" else text


WRAP = 88  # longer lines are wrapped in the text table


def _row(code: str, shape: str, width: int) -> list[str]:
    """One table row, ``code  # shape``; a line longer than ``WRAP`` is wrapped at spaces, its
    continuation indented, and the shape follows its last piece."""
    if len(code) <= WRAP:
        return [f"  {code:<{width}}# {shape}" if shape else f"  {code}"]
    import textwrap

    pieces = textwrap.wrap(
        code, WRAP, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
    )
    last = pieces.pop()
    rows = [f"  {p}" for p in pieces]
    rows.append(f"  {last:<{width}}# {shape}" if shape else f"  {last}")
    return rows


def _wrapped(lines: list[str]) -> list[str]:
    """Each line longer than ``WRAP`` broken at spaces, its continuation indented."""
    import textwrap

    out: list[str] = []
    for line in lines:
        if len(line) <= WRAP:
            out.append(line)
            continue
        out += textwrap.wrap(
            line, WRAP, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
        )
    return out


def _note_rows(note: str) -> list[str]:
    """A note as a bullet wrapped at ``WRAP`` characters."""
    import textwrap

    return textwrap.wrap(
        note, WRAP, initial_indent="  - ", subsequent_indent="    ", break_long_words=False
    ) or ["  -"]


def _data(rec: Recording, name: str) -> Any:
    for node, n in rec.names.items():
        if n == name:
            return node._data
    return numpy.zeros(())


_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi",
    "Omega",
}  # fmt: skip


def _latex_name(name: str, known: set[str] | None = None) -> str:
    r"""A name as mathematics: ``dgamma`` -> ``\mathrm{d}\gamma`` (when ``gamma`` is a
    name: a gradient), ``Xhat`` -> ``\hat{X}``, ``h_2`` -> ``h_{2}``, ``loss`` ->
    ``\mathrm{loss}`` (several letters are one upright name, not a product of variables).

    Example
    -------
    >>> print(_latex_name("dgamma", {"gamma"}), _latex_name("Xhat"), _latex_name("W_12"))
    \mathrm{d}\gamma \hat{X} W_{12}
    >>> print(_latex_name("dense"), _latex_name("LAM"))
    \mathrm{dense} \mathrm{LAM}
    """
    import re

    if name.startswith("d") and len(name) > 1 and known is not None and name[1:] in known:
        return r"\mathrm{d}" + _latex_name(name[1:], known)
    m = re.fullmatch(r"([A-Za-z]+?)_?(\d*)", name)
    if not m:
        return r"\mathrm{" + name.replace("_", r"\_") + "}"
    base, sub = m.groups()
    return _latex_base(base) + (f"_{{{sub}}}" if sub else "")


def _latex_base(base: str) -> str:
    if base in _GREEK:
        return "\\" + base
    if base.endswith("hat") and len(base) > 3:
        return r"\hat{" + _latex_base(base[:-3]) + "}"
    return base if len(base) == 1 else r"\mathrm{" + base + "}"


def _latex_names(text: str, ex: Explanation) -> str:
    import re

    known = set(ex.writer.names.values()) | set(ex.writer.refs.values())
    text = re.sub(
        r"\b([A-Za-z_]\w*)\.size\b",
        lambda m: rf"\operatorname{{size}}({m.group(1)})",
        text,
    )
    text = re.sub(r"\blen\(", r"\\operatorname{len}(", text)
    text = re.sub(
        r"\b([A-Za-z_]\w*)\.shape\[(\d+)\]",
        lambda m: rf"\operatorname{{shape}}({m.group(1)})_{{{m.group(2)}}}",
        text,
    )
    return re.sub(
        r"(?<!\\)\b([A-Za-z_]\w*)\b",
        lambda m: (
            _latex_name(m.group(1), known)
            if m.group(1) in known or m.group(1) in ex.recording.constants.values()
            else m.group(1)
        ),
        text,
    )


def _python_to_latex(text: str, scalars: set[str] | frozenset[str] = frozenset()) -> str:
    """A textbook form (simple NumPy arithmetic) as LaTeX.

    A product whose left factor is a number or a named scalar constant (``scalars``, e.g. the
    user's ``LAM``) is written ``\\cdot``; ``\\odot`` (elementwise) is kept for array factors.

    Example
    -------
    >>> print(_python_to_latex("(P - numpy.eye(P.shape[1])[y]) / len(y)"))
    (P - \\operatorname{onehot}(y)) / len(y)
    >>> print(_python_to_latex("dA * A * (1 - A ** 2)"))
    dA \\odot A \\odot (1 - A^{2})
    >>> print(_python_to_latex("X.T @ dZ + 2 * LAM * W", {"LAM"}))
    X^{\\top} \\cdot dZ + 2 \\cdot LAM \\cdot W
    """
    text = re.sub(r"numpy\.eye\([\w.\[\]]+\)\[(\w+)\]", r"\\operatorname{onehot}(\1)", text)
    text = re.sub(r"\b(\w+)\.T\b", r"\1^{\\top}", text)
    text = re.sub(r" \*\* (\w+)", r"^{\1}", text)
    scalar = r"\d+(?:\.\d+)?" + "".join(f"|{re.escape(n)}" for n in sorted(scalars))
    text = re.sub(rf"(?<![\w.)\]])({scalar}) \* ", r"\1 \\cdot ", text)
    return text.replace(" @ ", r" \cdot ").replace(" * ", r" \odot ")


def _grad_name(input_name: str) -> str:
    return "d" + identifier(input_name)


def _named_program(rec: Recording) -> tuple[Program, dict[Node, Value]]:
    prog = build(rec)
    by_node = {v.node: v for v in prog.values if v.node is not None}
    for node, name in rec.names.items():
        v = by_node.get(node)
        if v is not None and v.op != INPUT:
            v.name = identifier(name)
    for step in rec.steps:
        node = step.node
        if node in rec.names and node is not rec.output:
            v = by_node.get(step.grad)
            if v is not None and v.name is None and v.op != INPUT:
                v.name = "d" + identifier(rec.names[node])
    for j, g in zip(rec.wrt, rec.grads):
        v = by_node.get(g)
        if v is not None and v.name is None and v.op != INPUT:
            v.name = _grad_name(rec.input_names[j])
    prog = simplify(prog, keep_sizes=True)
    prog = prettify(cse(prog))
    prog = dce(prog)
    return prog, by_node


def _notes(ex: Explanation) -> list[str]:
    rec = ex.recording
    notes = [
        f"C{k} is a constant {a.dtype} array of shape {a.shape} that the function computed or "
        "read (not an argument); to_python() writes its values out"
        for k, a in enumerate(ex.constants)
    ]
    notes += [
        "Recorded for these inputs: Python control flow (if/for on values) followed the "
        "path they took; the exported code asserts the shapes and dtypes it was derived "
        "for."
    ]
    if rec.branches:
        times = "once" if rec.branches == 1 else f"{rec.branches} times"
        notes.append(
            f"Python's control flow branched on a computed value {times} (an if or while on "
            "an array): this derivation holds for the branch these inputs took; inputs that "
            "take another branch have another derivation."
        )
    if rec.summed_output:
        notes.append(f"{ex.output_name} is not a scalar: the backward pass is that of its sum.")
    for node in (v.node for v in ex.program.values if v.node is not None):
        if node._prim is P.mean and (node._kw or {}).get("axis") is None:
            notes.extend(_mean_note(ex, node))
        notes.extend(_kink_notes(node, rec))
    return notes


def _mean_note(ex: Explanation, node: Node) -> list[str]:
    """The seed's trap: a mean over all elements is not a mean over the batch."""
    arg = node._args[0] if node._args else None
    x = arg._data if isinstance(arg, Node) else None
    if x is None or numpy.ndim(x) < 2:
        return []
    n, rows = int(numpy.size(x)), int(numpy.shape(x)[0])
    k = n // max(rows, 1)
    rec = ex.recording
    batch = next(
        (
            name
            for name, t in zip(rec.input_names, rec.inputs)
            if numpy.ndim(t._data) >= 1 and numpy.shape(t._data)[0] == rows
        ),
        None,
    )
    length = f"len({batch})" if batch else "len(...)"
    v = ex._by_node.get(arg) if isinstance(arg, Node) else None
    size = ex.writer.size(_SizeOf(n, v)) if v is not None else str(n)
    what = ex.recording.names.get(node, "the result")
    text = (
        f"{what} averages over all {n} elements of an array of shape {tuple(x.shape)}, "
        f"so its gradient carries 1/{size} (e.g. dY = 2 * (Y - T) / Y.size for a "
        f"squared error). "
    )
    if k == 1:
        text += (
            f"Here 1/{size} equals 1/{length} = 1/{rows} only because each row has one "
            f"element (one output column); with k columns, dividing by {length} alone "
            "would make every gradient k times too large."
        )
    else:
        text += (
            f"Dividing by {length} = {rows} alone would make every gradient {k} times too large."
        )
    return [text]


def _array_names(
    rec: Recording, names: dict[int, str], refs: dict[int, str]
) -> dict[int, tuple[str, Any]]:
    """The user's plain arrays by their names, renamed where a traced value has the name
    (``h = numpy.zeros(...)`` before a loop rebinds ``h``: ``h_0``)."""
    taken = set(names.values()) | set(refs.values()) | set(rec.names.values())
    out = {}
    for key, (name, a) in rec.arrays.items():
        if numpy.ndim(a) == 0:
            continue
        shown = name
        k = 0
        while shown in taken:
            shown = f"{identifier(name)}_{k}"
            k += 1
        taken.add(shown)  # x of each step of a loop over examples: x, x_0, x_1
        out[key] = (shown, a)
    return out


_GENERATED = re.compile(r"t\d+")
_REDUCTIONS = {P.sum_: "sum", P.mean: "mean", P.amax: "max", P.amin: "min", P.var: "var",
               P.std: "std", P.prod: "prod"}  # fmt: skip
_UNARY = {P.exp: "exp", P.log: "log", P.sqrt: "sqrt", P.tanh: "tanh", P.sigmoid: "sigmoid",
          P.absolute: "abs", P.square: "sq", P.log1p: "log1p", P.expm1: "expm1"}  # fmt: skip


def _describe_generated(
    ex: Explanation, names: dict[int, str], refs: dict[int, str]
) -> dict[int, str]:
    """Names for the statements the writer would call ``t1``, ``t2``, ...: a gradient after
    the value it is the gradient of (``dz_h``, the forward value named too), a forward value
    after what it computes (``E_sum``, ``exp_neg_z``, ``sqrt_var``, ``P_y``) or, fed only to
    an activation ``h``, as its pre-activation ``z_h``."""
    writer, prog, rec = ex.writer, ex.program, ex.recording
    generated = [
        v
        for v in prog.values
        if v.id not in names and _GENERATED.fullmatch(writer.names.get(v.id, ""))
    ]
    if not generated:
        return {}
    by_id = {v.id: v for v in prog.values}
    consumers: dict[int, list[Value]] = {}
    for v in prog.values:
        for a in v.args:
            if isinstance(a, Value):
                consumers.setdefault(a.id, []).append(v)
    adjoint: dict[int, Value] = {}  # backward value id -> the forward value it is the gradient of
    grads_of: dict[int, set[int]] = {}
    for step in rec.steps:
        g = ex._node_value(step.grad)
        u = ex._node_value(step.node)
        if isinstance(g, Value) and isinstance(u, Value):
            grads_of.setdefault(u.id, set()).add(g.id)
            adjoint.setdefault(g.id, u)
    # one forward value (two recorded computations shared after CSE) with two different
    # gradients: each is only a part of it, so neither may be called by its name
    adjoint = {g: u for g, u in adjoint.items() if len(grads_of.get(u.id, ())) == 1}
    part_of: dict[int, tuple[Value, Value]] = {}  # a term's value -> (input, consumer)
    for step in rec.steps:
        c = ex._node_value(step.node)
        for _, a, raw, fin in step.terms:
            av = ex._node_value(a)
            for t in (raw, fin):
                tv = ex._node_value(t)
                if isinstance(tv, Value) and isinstance(av, Value) and isinstance(c, Value):
                    part_of.setdefault(tv.id, (av, c))
    taken = set(names.values()) | set(refs.values()) | set(writer.names.values())
    extra: dict[int, str] = {}

    def known(v: Any) -> str | None:
        if not isinstance(v, Value):
            return None
        return extra.get(v.id) or names.get(v.id) or refs.get(v.id)

    def describe(v: Value, depth: int = 0) -> str | None:
        got = known(v)
        if got is not None:
            return identifier(got)
        if depth > 2 or v.prim is None:
            return None
        args = [a for a in v.args if isinstance(a, Value)]
        first = describe(args[0], depth + 1) if args else None
        if v.prim in _REDUCTIONS and first:
            return f"{first}_{_REDUCTIONS[v.prim]}"
        if v.prim in _UNARY and first:
            return f"{_UNARY[v.prim]}_{first}"
        if v.prim is P.negative and first:
            return f"neg_{first}"
        if v.prim is P.transpose and first:
            return f"{first}_T"
        if v.prim is P.gather and first:
            picked = [
                p
                for p in (describe(a, depth + 1) for a in args[1:])
                if p and not p.startswith("arange")
            ]
            return f"{first}_{'_'.join(picked)}" if picked else f"{first}_picked"
        uses = [u for u in consumers.get(v.id, []) if u.phase == "forward"]
        if (
            v.prim in (P.add, P.subtract)
            and first
            and all(not isinstance(a, Value) or a.op == CONST for a in v.args[1:])
        ):
            return first  # var + 1e-05 reads as var
        if v.prim is P.subtract and first and len(args) == 2:
            second = describe(args[1], depth + 1)
            if second:
                return f"{first}_minus_{second}"
        if v.prim is not None and v.prim.nondiff and first:
            return f"{v.prim.name}_{first}"  # a mask: isnan_x, less_x
        # the value an activation reads, besides the comparisons that make its mask
        # (h = W1 @ x; h[h < 0] = 0): its pre-activation
        diff_uses = [u for u in uses if u.prim is None or not u.prim.nondiff]
        if len(diff_uses) == 1 and diff_uses[0].prim in {P.where, P.maximum} and len(uses) > 1:
            c = known(diff_uses[0])
            if c:
                return f"z_{identifier(c)}"
        if len(uses) == 1 and uses[0].prim in {P.maximum, P.tanh, P.sigmoid, P.exp} | set(_UNARY):
            c = known(uses[0])
            if c:
                return f"z_{identifier(c)}"
        if v.prim in (P.add, P.subtract) and first and len(uses) == 1:
            c = known(uses[0])
            if c:
                return f"z_{identifier(c)}"
        if v.prim in (P.matmul, P.dot) and first and len(args) == 2:
            second = describe(args[1], depth + 1)
            if second and len(first) + len(second) <= 6:
                return f"{first}{second}"  # X @ w reads as Xw
        inside = uses and all(u.prim is P.add for u in uses)  # x @ W of x @ W + b
        if v.phase == "forward" and _linear(v, by_id) and not inside:
            z = into_name(v)  # a layer's pre-activation, written inline: shown as z_a too
            if z:
                extra[v.id] = unique(z)
                return extra[v.id]
        return None

    def downstream(c: Value) -> str | None:
        """The first named value ``c`` flows into (``var`` for ``(X - mu) ** 2``)."""
        for _ in range(4):
            uses = [u for u in consumers.get(c.id, []) if u.phase == "forward"]
            if len(uses) != 1:
                return None
            c = uses[0]
            if known(c):
                return known(c)
        return None

    def downstream_all(c: Value) -> str | None:
        """The one named value every forward use of ``c`` leads to, within a few steps."""
        frontier, found = [c], set()
        for _ in range(6):
            nxt = []
            for x in frontier:
                for u in consumers.get(x.id, []):
                    if u.phase != "forward":
                        continue
                    if known(u):
                        found.add(known(u))
                    else:
                        nxt.append(u)
            frontier = nxt
            if not frontier:
                break
        return found.pop() if len(found) == 1 and not frontier else None

    def into_name(v: Value) -> str | None:
        """``z_a`` for the pre-activation of ``a = 1 / (1 + numpy.exp(-(w @ x + b)))``,
        ``fn_in`` for the argument of what ``fn`` computes."""
        into = downstream_all(v)
        if into is None:
            return None
        if _linear(v, by_id):
            return f"z_{identifier(into)}"
        return f"{identifier(into)}_in"

    def unique(base: str) -> str:
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    for v in generated:
        if v.id in extra:
            continue
        u = adjoint.get(v.id)
        if v.phase == "backward" and u is not None:
            base = known(u) or describe(u) or into_name(u)
            if base is None:
                continue
            if known(u) is None:
                extra[u.id] = unique(base)  # the forward value is shown under that name too
                base = extra[u.id]
            extra[v.id] = unique("d" + identifier(base))
            continue
        if v.phase == "backward" and v.id in part_of:
            a, c = part_of[v.id]
            an, cn = known(a) or describe(a), known(c) or describe(c) or downstream(c)
            if an and cn:
                extra[v.id] = unique(f"d{identifier(an)}_from_{identifier(cn)}")
            continue
        base = describe(v)
        if base is not None and len(base) <= 32:
            extra[v.id] = unique(base)
        elif v.phase == "forward" and into_name(v):  # after the one value it goes into
            extra[v.id] = unique(str(into_name(v)))
    return extra


def _linear(v: Value, by_id: dict[int, Value]) -> bool:
    """``w @ x`` or ``w @ x + b``: a layer's pre-activation."""
    if v.prim in (P.matmul, P.dot):
        return True
    return v.prim is P.add and any(
        isinstance(a, Value) and a.prim in (P.matmul, P.dot) for a in v.args
    )


def _SizeOf(n: int, v: Any) -> Any:
    from chainrule.engine.rules import Size

    return Size(n, v, None)


def _kink_notes(node: Node, rec: Recording) -> list[str]:
    prim = node._prim
    if prim is None or node._vals is None or not node.requires_grad:
        return []  # no gradient goes through it (a rule's own index arithmetic): no kink to tell
    name = rec.names.get(node, prim.name)
    vals = node._vals
    if prim in (P.maximum, P.minimum, P.fmax, P.fmin):
        ties = numpy.argwhere(
            numpy.broadcast_to(
                numpy.asarray(vals[0]) == numpy.asarray(vals[1]), numpy.shape(node._data)
            )
        )
        if len(ties):
            where = ", ".join(str(tuple(int(i) for i in t)) for t in ties[:5])
            return [
                f"{name} = {prim.name}(...) is exactly at its kink (a tie) at {where}: the "
                "gradient there went to the first argument (for ReLU maximum(0, Z): 0)."
            ]
    if prim in (P.absolute, P.fabs):
        zeros = numpy.argwhere(numpy.asarray(vals[0]) == 0)
        if len(zeros):
            return [
                f"{name} = abs(...) has an input exactly 0 at "
                f"{', '.join(str(tuple(int(i) for i in t)) for t in zeros[:5])}: "
                "its gradient there is taken as 0."
            ]
    if prim in (P.amax, P.amin):
        x = numpy.asarray(vals[0])
        axis = (node._kw or {}).get("axis")
        hit = x == prim.fun(x, axis=axis, keepdims=True)
        counts = hit.sum(axis=axis)
        if numpy.any(counts > 1):
            return [
                f"{name} = {prim.name}(...) has tied extreme values: the gradient is shared "
                "equally among them."
            ]
    if prim is P.clip:
        x = numpy.asarray(vals[0])
        lo, hi = (numpy.asarray(v) if v is not None else None for v in vals[1:3])
        on = numpy.zeros(x.shape, bool)
        if lo is not None:
            on |= x == lo
        if hi is not None:
            on |= x == hi
        if on.any():
            return [
                f"{name} = clip(...) has inputs exactly on a bound: the gradient passes "
                "there (bounds included, as PyTorch's clamp)."
            ]
    return []
