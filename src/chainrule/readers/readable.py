"""The readability pass of ``explain``: textbook forms, each checked in numbers before it is shown.

The derivation ``explain`` prints is the recorded chain rule, step by step; a textbook writes
some of its steps in closed form (``dZ = (P - onehot) / N``, ``dz = (p - y) / N``,
``dZ = dA * A * (1 - A)``).  For every backward statement this pass proposes such forms from a
small library of identities, instantiated with the derivation's own named values, and keeps one
only if *evaluating it on the traced values gives the statement's value* (to rounding).  Terms
that are zero at every element (the gradient through a softmax's max shift) are dropped the same
way.  Statements no longer read by anything shown are then left out.  Nothing here touches the
exported code or ``jit``: ``to_python()`` writes the recorded steps, exactly.
"""

from __future__ import annotations

import re
from typing import Any

import numpy

from chainrule.engine import primitives as P
from chainrule.program.codegen import Line
from chainrule.program.ir import CONST, INPUT, Value
from chainrule.program.notation import PRODUCT, SUM

from .tidy import tidy

__all__ = ["readable_lines"]

MAX_LINES = 400  # longer derivations are shown as recorded (the check costs per statement)
MAX_TRIES = 64  # candidate forms evaluated per statement


def _padded(X: Any, padding: int) -> Any:
    p = int(padding)
    return numpy.pad(X, ((0, 0), (0, 0), (p, p), (p, p))) if p else X


def _conv2d(X: Any, K: Any, stride: int = 1, padding: int = 0) -> Any:
    """``Z[n,o,i,j] = Σ_c,p,q Xp[n,c,s·i+p,s·j+q] · K[o,c,p,q]`` (``Xp``: ``X`` with
    ``padding`` zeros around each image, ``s``: the stride), the cross-correlation
    deep-learning libraries call convolution: how ``explain`` names it."""
    win = numpy.lib.stride_tricks.sliding_window_view(_padded(X, padding), K.shape[2:], axis=(2, 3))
    return numpy.einsum("nchwpq,ocpq->nohw", win[:, :, ::stride, ::stride], K)


def _correlate(X: Any, dZ: Any, stride: int = 1, padding: int = 0, size: Any = None) -> Any:
    """``dK[o,c,p,q] = Σ_n,i,j Xp[n,c,s·i+p,s·j+q] · dZ[n,o,i,j]``: a convolution's kernel
    gradient (``size``: the kernel's shape, where the stride leaves it open)."""
    Xp = _padded(X, padding)
    ho, wo = dZ.shape[2:]
    kh = Xp.shape[2] - stride * (ho - 1) if size is None else size[-2]
    kw = Xp.shape[3] - stride * (wo - 1) if size is None else size[-1]
    out = numpy.empty((dZ.shape[1], X.shape[1], kh, kw), dtype=numpy.result_type(X, dZ))
    for p in range(kh):
        for q in range(kw):
            part = Xp[
                :, :, p : p + stride * (ho - 1) + 1 : stride, q : q + stride * (wo - 1) + 1 : stride
            ]
            out[:, :, p, q] = numpy.einsum("ncij,noij->oc", part, dZ)
    return out


def _conv_transpose(dZ: Any, K: Any, stride: int = 1, padding: int = 0, size: Any = None) -> Any:
    """``dX``: each ``dZ[n,o,i,j] · K[o]`` added back where its window was read (``s·i``,
    ``s·j``), the padding then cut off; with stride 1 and no padding, ``dZ`` padded by the
    kernel size - 1 and correlated with the flipped kernel (``size``: the input's shape, where
    the stride leaves it open)."""
    kh, kw = K.shape[2:]
    ho, wo = dZ.shape[2:]
    hp = stride * (ho - 1) + kh if size is None else size[-2] + 2 * padding
    wp = stride * (wo - 1) + kw if size is None else size[-1] + 2 * padding
    out = numpy.zeros((dZ.shape[0], K.shape[1], hp, wp), dtype=numpy.result_type(dZ, K))
    for p in range(kh):
        for q in range(kw):
            part = numpy.einsum("noij,oc->ncij", dZ, K[:, :, p, q])
            out[
                :, :, p : p + stride * (ho - 1) + 1 : stride, q : q + stride * (wo - 1) + 1 : stride
            ] += part
    pad = int(padding)
    return out[:, :, pad : hp - pad, pad : wp - pad]


def _conv_forms(shape: tuple[int, ...], named: dict[str, Any], phase: str) -> list[str]:
    """``conv2d``/``correlate``/``conv_transpose`` calls whose shapes fit a 4-D statement of
    shape ``shape``: every stride and padding up to 3 that the sizes allow."""
    four = [(n, tuple(x.shape)) for n, x in named.items() if len(x.shape) == 4]
    out = []
    for (an, a), (bn, b) in ((p, q) for p in four for q in four if p[0] != q[0]):
        for s_, p_ in ((s_, p_) for s_ in (1, 2, 3) for p_ in (0, 1, 2, 3)):
            extra = (f", stride={s_}" if s_ != 1 else "") + (f", padding={p_}" if p_ else "")
            if phase == "forward":  # Z = conv2d(X, K)
                ok = a[1] == b[1] and shape[:2] == (a[0], b[0])
                ok = ok and all(
                    (a[k] + 2 * p_ - b[k]) // s_ + 1 == shape[k] and a[k] + 2 * p_ >= b[k]
                    for k in (2, 3)
                )
                if ok and p_ < b[2]:
                    out.append(f"conv2d({an}, {bn}{extra})")
                continue
            # dK = correlate(X, dZ): X (n, c, h, w), dZ (n, o, ho, wo), dK (o, c, kh, kw)
            if a[0] == b[0] and shape[:2] == (b[1], a[1]):
                fits = [(a[k] + 2 * p_ - shape[k]) // s_ + 1 == b[k] for k in (2, 3)]
                if all(fits) and p_ < shape[2]:
                    exact = all(a[k] + 2 * p_ - s_ * (b[k] - 1) == shape[k] for k in (2, 3))
                    size = "" if exact else f", size={shape[2:]}"
                    out.append(f"correlate({an}, {bn}{extra}{size})")
            # dX = conv_transpose(dZ, K): dZ (n, o, ho, wo), K (o, c, kh, kw), dX (n, c, h, w)
            if a[1] == b[0] and shape[:2] == (a[0], b[1]):
                fits = [(shape[k] + 2 * p_ - b[k]) // s_ + 1 == a[k] for k in (2, 3)]
                if all(fits) and p_ < b[2]:
                    exact = all(s_ * (a[k] - 1) + b[k] - 2 * p_ == shape[k] for k in (2, 3))
                    size = "" if exact else f", size={shape[2:]}"
                    out.append(f"conv_transpose({an}, {bn}{extra}{size})")
    return out


_CONV_NOTE = (
    "conv2d(X, K, stride=s, padding=p) is the cross-correlation deep-learning libraries call "
    "convolution, Z[n,o,i,j] = Σ_c,p,q Xp[n,c,s·i+p,s·j+q] · K[o,c,p,q] (Xp: X with p zeros "
    "around each image; the output is (the input size + 2p - the kernel size) // s + 1 per "
    "axis, stride 1 and no padding when not written); its gradients are dK = correlate(X, dZ), "
    "dK[o,c,p,q] = Σ_n,i,j Xp[n,c,s·i+p,s·j+q] · dZ[n,o,i,j], and dX = conv_transpose(dZ, K), "
    "each dZ[n,o,i,j] · K[o] added back on the window it was read from (with stride 1 and no "
    "padding: dZ padded by the kernel size - 1, correlated with the flipped kernel). The "
    "recorded steps (sliding windows and a matrix product) are what to_python() writes"
)


def _data(v: Value, ex: Any) -> Any:
    if v.op == INPUT:
        i = ex.program.inputs.index(v)
        return ex.recording.inputs[i]._data
    if v.op == CONST:
        return v.const
    return None if v.node is None else v.node._data


def _same(a: Any, b: Any) -> bool:
    a, b = numpy.asarray(a), numpy.asarray(b)
    if a.shape != b.shape or a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        return False
    scale = float(numpy.max(numpy.abs(b), initial=0.0)) or 1.0
    return bool(numpy.allclose(a, b, rtol=1e-9, atol=1e-12 * scale))


def _namespace(ex: Any) -> dict[str, Any]:
    ns: dict[str, Any] = {
        "numpy": numpy,
        "conv2d": _conv2d,
        "correlate": _correlate,
        "conv_transpose": _conv_transpose,
    }
    w = ex.writer
    for v in ex.program.values:
        name = w.refs.get(v.id) if v.op == INPUT else w.names.get(v.id)
        d = _data(v, ex)
        if name and d is not None and name.isidentifier():
            ns[name] = numpy.asarray(d)
    for x, name in ex.recording.constants.items():
        ns.setdefault(name, x)
    for name, a in ex.literals.arrays.values():
        _bind(ns, name, a)
    return ns


def _elsewhere(ex: Any, base: dict[str, Any]) -> dict[str, Any] | None:
    """Every named value of the recorded program at a second, nearby point (the inputs'
    floats perturbed by a few percent), from the exact exported code: a form must hold there
    too, so that one that only matched by coincidence (w = 0) is not shown."""
    from chainrule.engine.pytree import unflatten

    rec = ex.recording
    lines = ex.to_python(name="_at").rstrip().split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("    return "):
            lines[i] = "    return locals()"
            break
    rng = numpy.random.default_rng(20240517)
    leaves = []
    for t in rec.inputs:
        d = numpy.asarray(t._data)
        if d.dtype.kind == "f":
            noise = rng.standard_normal(d.shape)
            d = (d * (1 + 0.05 * noise) + 0.05 * rng.standard_normal(d.shape)).astype(d.dtype)
        leaves.append(d)
    args = []
    for i in range(len(rec.params)):
        if i in rec.static:
            args.append(rec.static[i])
        else:
            mine = [leaves[j] for j in range(len(leaves)) if rec.input_arg[j] == i]
            args.append(unflatten(rec.treedefs[i], mine))
    ns: dict[str, Any] = {}
    try:
        with numpy.errstate(all="ignore"):
            exec("\n".join(lines), ns)  # noqa: S102 - the exported code of the user's function
            values = ns["_at"](*args)
    except Exception:  # noqa: BLE001 - no second point: no form is shown
        return None
    out = {k: v for k, v in base.items() if not isinstance(v, numpy.ndarray)}
    out.update({name: base[name] for name in ex.recording.constants.values() if name in base})
    for name, a in ex.literals.arrays.values():
        _bind(out, name, a, replace=True)
    out.update(values)
    return out


_ITEM = re.compile(r"([A-Za-z_]\w*)\[(.+)\]")


def _bind(ns: dict[str, Any], name: str, a: Any, replace: bool = False) -> None:
    """``ns[name] = a``; for an array the code held in a list or dict (``xs[0]``,
    ``model['W1']``), the item of a dict bound to the container's name."""
    m = _ITEM.fullmatch(name)
    if m is None:
        if replace or name not in ns:
            ns[name] = a
        return
    import ast

    try:
        key = ast.literal_eval(m.group(2))
    except (ValueError, SyntaxError):
        return
    held = ns.setdefault(m.group(1), {})
    if isinstance(held, dict):
        held[key] = a


def _check(text: str, ns: dict[str, Any], want: Any) -> bool:
    try:
        with numpy.errstate(all="ignore"):
            got = eval(text, {"__builtins__": {"len": len}}, ns)  # noqa: S307 - our own text
    except Exception:  # noqa: BLE001 - a candidate that does not evaluate is not shown
        return False
    return _same(got, want)


def _sum_terms(v: Value, w: Any) -> list[tuple[int, Value]]:
    """``v`` as a sum of terms (sign, value) through unnamed additions."""
    if v.prim in (P.add, P.subtract) and len(v.args) == 2:
        out = []
        for k, a in enumerate(v.args):
            sign = -1 if (v.prim is P.subtract and k == 1) else 1
            if isinstance(a, Value) and a.prim in (P.add, P.subtract) and a.id not in w.names:
                out += [(s * sign, t) for s, t in _sum_terms(a, w)]
            elif isinstance(a, Value):
                out.append((sign, a))
            else:
                return [(1, v)]
        return out
    return [(1, v)]


def _candidates(ln: Line, ex: Any, named: dict[str, Value]) -> list[tuple[str, str]]:
    """(text, note) textbook forms for the backward statement ``ln``."""
    v, w = ln.value, ex.writer
    shape = tuple(v.shape)
    out: list[tuple[str, str]] = []
    # data: arguments not differentiated, and the plain arrays the code read by name (labels
    # kept in a global or a closure), as (name, values)
    data_inputs = [
        (w.refs[x.id], numpy.asarray(_data(x, ex)))
        for k, x in enumerate(ex.program.inputs)
        if k not in ex.recording.wrt and x.id in w.refs
    ]
    data_inputs += [
        (name, a)
        for name, a in ex.literals.arrays.values()
        if name.isidentifier() and isinstance(a, numpy.ndarray)
    ]
    forward = [(n, x) for n, x in named.items() if x.phase == "forward" and x.op != INPUT]
    if len(shape) == 4:  # a convolution, written as one
        out += [(text, _CONV_NOTE) for text in _conv_forms(shape, named, v.phase)]
    for pn, p in forward:
        if tuple(p.shape) != shape or len(shape) != 2:
            continue
        pd = numpy.asarray(_data(p, ex))
        if pd.dtype.kind == "c" or not (pd.min() >= 0 and numpy.allclose(pd.sum(axis=1), 1)):
            continue
        for yn, y in data_inputs:
            if y.dtype.kind in "iu" and tuple(y.shape) == shape[:1]:
                out.append(
                    (
                        f"({pn} - numpy.eye({pn}.shape[1])[{yn}]) / len({yn})",
                        f"softmax and cross-entropy together: d/dZ of the mean of "
                        f"-log {pn}[n, {yn}[n]] is ({pn} - onehot({yn})) / N; the gradient "
                        f"through a max subtracted for stability is exactly zero (a softmax "
                        "does not change when a row is shifted by a constant)",
                    )
                )
    want = _data(v, ex)
    for pn, p in forward:  # one step's softmax (a char-RNN): p - onehot(target)
        if (
            tuple(p.shape) != shape
            or want is None
            or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
        ):
            continue
        pd = numpy.asarray(_data(p, ex), dtype=float)
        if not (pd.min() >= 0 and numpy.isclose(pd.sum(), 1)):
            continue
        k = int(numpy.argmax((pd - numpy.asarray(want, dtype=float)).ravel()))
        pick = f"[:, [{k}]]" if len(shape) == 2 else f"[{k}]"
        out.append(
            (
                f"{pn} - numpy.eye(len({pn})){pick}",
                f"softmax and cross-entropy together: d/dy of -log {pn}[k] is {pn} - onehot(k), "
                f"k the target ({k} here)",
            )
        )
    for ln_, lp in forward:  # log-softmax: rows of exp(L) sum to 1
        if tuple(lp.shape) != shape or len(shape) != 2:
            continue
        raw = numpy.asarray(_data(lp, ex))
        if raw.dtype.kind == "c":  # log-probabilities are real
            continue
        with numpy.errstate(all="ignore"):
            ld = numpy.exp(numpy.asarray(raw, dtype=float))
        if not numpy.allclose(ld.sum(axis=1), 1):
            continue
        for yn, y in data_inputs:
            if y.dtype.kind in "iu" and tuple(y.shape) == shape[:1]:
                out.append(
                    (
                        f"(numpy.exp({ln_}) - numpy.eye({ln_}.shape[1])[{yn}]) / len({yn})",
                        f"log-softmax and the negative log-likelihood together: the gradient "
                        f"of the scores is (softmax - onehot({yn})) / N, softmax = "
                        f"exp({ln_})",
                    )
                )
    for an, a in forward:
        if tuple(a.shape) != shape:
            continue
        for tn, t in data_inputs:
            if tuple(t.shape) != shape:
                continue
            n = f"len({tn})" if len(shape) == 1 else f"{tn}.size"
            out += [
                (f"({an} - {tn}) / {n}", f"({an} - {tn}) / N: the gradient of a mean "
                 "cross-entropy at the logits of a sigmoid, in closed form"),
                (f"({an} - {tn}) / ({an} * (1 - {an})) / {n}", ""),
                (f"2 * ({an} - {tn}) / {n}", ""),
                (f"{an} - {tn}", ""),
            ]  # fmt: skip
    for an, a in forward:
        da = f"d{an}"
        if tuple(a.shape) != shape or da not in named:
            continue
        out += [
            (f"{da} * {an} * (1 - {an})", f"the sigmoid's derivative: {an} * (1 - {an})"),
            (f"{da} * (1 - {an} ** 2)", f"tanh's derivative: 1 - {an} ** 2"),
            (f"{da} * {an}", ""),
        ]  # fmt: skip
    return out


def readable_lines(ex: Any, lines: list[Line]) -> tuple[list[Line], list[str], list[str]]:
    """The statements in textbook form where one is verified, the lines rewritten and the
    notes explaining the forms; statements nothing shown reads any more are left out.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> def loss(w, X, y):
    ...     p = 1 / (1 + numpy.exp(-(X @ w)))
    ...     return -numpy.mean(y * numpy.log(p) + (1 - y) * numpy.log(1 - p))
    >>> X, y = numpy.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]]), numpy.array([1.0, 0.0, 1.0])
    >>> cr.explain(loss, numpy.array([0.1, -0.2]), X, y, wrt="w").backward_lines()[0]
    'dp = (p - y) / (p * (1 - p)) / len(y)'
    """
    w = ex.writer
    if len(lines) > MAX_LINES:  # a long unrolled chain: the recorded steps, as they are
        return lines, [], []
    named: dict[str, Value] = {}
    for v in ex.program.values:
        n = w.refs.get(v.id) if v.op == INPUT else w.names.get(v.id)
        if n:
            named[n] = v
    ns = _namespace(ex)
    there = _elsewhere(ex, ns)
    if there is None:
        return lines, [], []
    notes: list[str] = []
    shown: list[str] = []
    out: list[Line] = []
    for ln in lines:
        if len(ln.code) != 1:
            out.append(ln)
            continue
        ln = _tidied(ln, ex, ns, there)  # 0 * x, x + -y, LAM * W + LAM * W, ... anywhere
        if ln.phase != "backward" and len(ln.value.shape) != 4:
            out.append(ln)
            continue
        want = _data(ln.value, ex)
        if want is None or not numpy.any(want):  # all zero: any form would match
            out.append(ln)
            continue
        if numpy.unique(numpy.asarray(want)).size < min(3, numpy.size(want)):
            out.append(ln)
            continue
        best, note = ln.expr, ""
        want_there = there.get(ln.name)
        if want_there is None:
            out.append(ln)
            continue

        def holds(text: str, want: Any = want, want_there: Any = want_there) -> bool:
            return _check(text, ns, want) and _check(text, there, want_there)

        for text, why in _candidates(ln, ex, named)[:MAX_TRIES]:  # in order of preference
            # what a course writes, even where the recorded steps are as short
            textbook = why.startswith("softmax and cross-entropy") or why is _CONV_NOTE
            if (len(text) < len(best) or textbook) and holds(text):
                best, note = text, why
                break
        terms = _sum_terms(ln.value, w)
        if len(terms) > 1 and best == ln.expr:
            kept = []
            dropped = []
            for sign, t in terms:
                td = _data(t, ex)
                if (
                    td is not None
                    and t.op != CONST
                    and _through_max(t)  # zero for every input, not only for these
                    and _same(td, numpy.zeros_like(td))
                ):
                    dropped.append(t)
                else:
                    kept.append((sign, t))
            if dropped and kept:
                text = " + ".join(("-" if s < 0 else "") + _term(w, t, s) for s, t in kept)
                text = text.replace("+ -", "- ")
                if holds(text):
                    best = text
                    note = (
                        f"in {ln.name}, the gradient through a max subtracted for stability "
                        "is left out: it is exactly zero (up to rounding), since a softmax "
                        "does not change when a row is shifted by a constant"
                    )
        if best != ln.expr:
            text = tidy(best)
            if text != best and holds(text):
                best = text
            ex.rewritten[ln.name] = note or "a shorter form of the same value"
            shown.append(f"{ln.name} = {best}")
            if note and note not in notes:
                notes.append(note)
            ln = Line(ln.value, ln.name, best, [f"{ln.name} = {best}"])
        out.append(ln)
    return [_counted(ln, ns) for ln in _prune(out, ex)], shown, notes


def _tidied(ln: Line, ex: Any, ns: dict[str, Any], there: dict[str, Any]) -> Line:
    """``ln`` with identities applied inside its expression (``readers.tidy``), where the
    result still evaluates to the statement's value here and at the second point."""
    text = tidy(ln.expr)
    if text == ln.expr:
        return ln
    want, want_there = _data(ln.value, ex), there.get(ln.name)
    if want is None or want_there is None:
        return ln
    if not (_check(text, ns, want) and _check(text, there, want_there)):
        return ln
    return Line(ln.value, ln.name, text, [f"{ln.name} = {text}"])


_ROWS = re.compile(r"numpy\.arange\((\d+)\), ([A-Za-z_]\w*)\]")


def _counted(ln: Line, ns: dict[str, Any]) -> Line:
    """``P[numpy.arange(10), y]`` as people write it: ``P[numpy.arange(len(y)), y]`` (when
    ``y`` has that length: the count is where it came from)."""

    def fix(m: re.Match[str]) -> str:
        y = ns.get(m.group(2))
        if y is not None and numpy.ndim(y) == 1 and len(y) == int(m.group(1)):
            return f"numpy.arange(len({m.group(2)})), {m.group(2)}]"
        return m.group(0)

    code = [_ROWS.sub(fix, c) for c in ln.code]
    if code == ln.code:
        return ln
    return Line(ln.value, ln.name, _ROWS.sub(fix, ln.expr), code)


def _term(w: Any, t: Value, sign: int) -> str:
    text, prec = w.ref(t)
    need = PRODUCT if sign < 0 else SUM + 1
    return f"({text})" if prec < need else text


def _through_max(v: Value, depth: int = 0) -> bool:
    if depth > 6 or not isinstance(v, Value):
        return False
    if v.prim in (P.amax, P.amin):
        return True
    return any(_through_max(a, depth + 1) for a in v.args if isinstance(a, Value))


def _prune(lines: list[Line], ex: Any) -> list[Line]:
    """Leave out backward statements that nothing shown reads (and that are no gradient of an
    input)."""
    keep_names = set(ex.grad_names) | {ex.output_name}
    out_id = ex.program.outputs[0].id
    # a gradient that is another statement's value is shown as ``dx = dy`` after the lines:
    # what those texts name is read too
    tails: set[str] = set()
    for v in ex.program.outputs:
        tails |= set(re.findall(r"[A-Za-z_]\w*", ex._value_text(v)))
    while True:
        reads: set[str] = set(tails)
        for ln in lines:
            for c in ln.code:
                found = re.findall(r"[A-Za-z_]\w*", c)
                reads |= {n for n in found if n != ln.name}
        drop = [
            ln
            for ln in lines
            if ln.name not in keep_names
            and ln.name not in reads
            and (ln.phase == "backward" or ln.value.id != out_id)
        ]
        if not drop:
            return lines
        lines = [ln for ln in lines if ln not in drop]
