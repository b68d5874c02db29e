"""The ``chainrule`` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import chainrule as cr
    from chainrule import seed

    X, T = cr.tensor(seed.X), cr.tensor(seed.T)
    params = {k: cr.tensor(v, requires_grad=True) for k, v in seed.PARAMS.items()}
    W1, W2, W3, W4 = (params[k] for k in ("W1", "W2", "W3", "W4"))
    B1, B2, B3, B4 = (params[k] for k in ("B1", "B2", "B3", "B4"))

    # The user's forward pass, exactly as written in docs/seed.md.
    W = [W1, W2, W3, W4]
    B = [B1, B2, B3, B4]
    Z1 = X.dot(W[0]) + B[0]
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W[1]) + B[1]
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W[2]) + B[2]
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W[3]) + B[3]
    err = ((Y - T) ** 2).mean()
    err.backward()

    forward_values = {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2, "Z3": Z3, "A3": A3, "Y": Y}
    explain = args.explain or args.why
    try:
        report = cr.check_grads(
            seed.forward, seed.X, seed.T, *seed.PARAMS.values(), argnums=tuple(range(2, 10))
        )
        passed, check_text = True, str(report)
    except cr.GradientCheckError as e:
        passed, check_text = False, str(e.report)

    if args.json:
        doc: dict[str, Any] = {
            "forward": {k: _shown(v.data).tolist() for k, v in forward_values.items()},
            "error": float(err.data),
            "gradients": {
                f"dE/d{k}": {"shape": list(p.grad.shape), "value": _shown(p.grad).tolist()}
                for k, p in params.items()
            },
            "gradient_check": {"passed": passed, "report": check_text},
        }
        if explain:
            ex = _seed_explanation()
            doc["derivation"] = {
                "forward": ex.forward_lines(wrap=False),
                "backward": ex.backward_lines(wrap=False),
                "why": ex.why(),
                "notes": ex.notes,
            }
        print(json.dumps(doc, indent=2))
        return 0 if passed else 1

    with numpy.printoptions(precision=6, suppress=True, linewidth=100):
        print("chainrule demo: the 4-6-6-6-1 ReLU network of docs/seed.md, one sample\n")
        print("Forward pass (the user's code, run unchanged on chainrule tensors):")
        for k, v in forward_values.items():
            print(f"  {k:<3} {str(v.shape):<8} {_shown(v.data)}")
        print(f"\nerr = ((Y - T) ** 2).mean() = {float(err.data):.12g}\n")
        print("Gradients from one call, err.backward():")
        for k, p in params.items():
            print(f"  dE/d{k:<3} shape {p.grad.shape}")
            print(textwrap.indent(numpy.array2string(_shown(p.grad)), "    "))
        print()
        print(check_text)
        if explain:
            ex = _seed_explanation()
            print("\nThe derivation (chainrule explain), in the user's own names:\n")
            print(ex)
            print()
            print(ex.why(notes=False))  # the notes were printed with the derivation
    return 0 if passed else 1


def _shown(a: Any) -> Any:
    """``a`` with negative zeros made positive: a learner reads ``-0.`` as another number."""
    return numpy.asarray(a) + 0.0


def _seed_explanation() -> Any:
    import chainrule as cr
    from chainrule import seed

    return cr.explain(seed.forward, seed.X, seed.T, *seed.PARAMS.values(), wrt=list(seed.PARAMS))


def _load(target: str) -> tuple[Any, Any]:
    """``FILE.py:FUNCTION`` -> (the module, the function)."""
    import importlib.util
    import pathlib

    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise SystemExit(f"chainrule: expected FILE.py:FUNCTION, got {target!r}")
    file = pathlib.Path(path)
    if not file.is_file():
        raise SystemExit(f"chainrule: no such file: {file}")
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"chainrule: cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    fun = getattr(module, name, None)
    if not callable(fun):
        raise SystemExit(f"chainrule: {file} has no function {name!r}")
    return module, fun


def _arguments(module: Any, fun: Any, specs: list[str]) -> tuple[Any, ...]:
    """Values for ``fun``'s parameters: ``--args`` first, then module-level names."""
    import inspect

    given: dict[str, Any] = {}
    namespace = {"numpy": numpy, "np": numpy, **vars(module)}
    for spec in specs:
        if spec.endswith(".npz"):
            with numpy.load(spec, allow_pickle=False) as data:
                given.update({k: data[k] for k in data.files})
            continue
        key, sep, expr = spec.partition("=")
        if not sep:
            raise SystemExit(f"chainrule: --args takes NAME=EXPRESSION or FILE.npz, got {spec!r}")
        given[key.strip()] = eval(expr, namespace)  # noqa: S307 - the user's own expression
    values = []
    for p in inspect.signature(fun).parameters.values():
        if p.name in given:
            values.append(given[p.name])
        elif hasattr(module, p.name):
            values.append(getattr(module, p.name))
        elif p.default is not inspect.Parameter.empty:
            values.append(p.default)
        else:
            raise SystemExit(
                f"chainrule: no value for parameter {p.name!r} of "
                f"{fun.__name__}: define {p.name} at module level or pass "
                f"--args {p.name}=..."
            )
    return tuple(values)


def _render(ex: Any, fmt: str, why: bool) -> str:
    if fmt == "python":
        return str(ex.to_python())
    if fmt == "latex":
        return str(ex.to_latex())
    if fmt == "markdown":
        return str(ex.to_markdown())
    if fmt == "dot":
        return str(ex.to_dot())
    return str(ex) + ("\n\n" + ex.why(notes=False) if why else "")


def _explain(args: argparse.Namespace) -> int:
    import chainrule as cr

    module, fun = _load(args.target)
    values = _arguments(module, fun, args.args)
    wrt = [w.strip() for w in args.wrt.split(",")] if args.wrt else None
    print(_render(cr.explain(fun, *values, wrt=wrt), args.format, args.why).rstrip())
    return 0


def _check(args: argparse.Namespace) -> int:
    import chainrule as cr
    from chainrule.readers.lines import run_traced

    module, forward = _load(args.forward)
    _, backward = _load(args.backward)
    values = _arguments(module, forward, args.args)
    theirs, bindings = run_traced(backward, values)
    if not isinstance(theirs, dict):
        theirs, how = _map_returned(forward, values, list(theirs), args.wrt, bindings)
        print(f"chainrule check: your backward returned a sequence; {how}\n")
    report = cr.check_backward(forward, values, theirs, backward=backward)
    print(report)
    return 0 if report.passed else 1


def _map_returned(
    forward: Any, values: tuple[Any, ...], grads: list[Any], wrt: str | None, bindings: Any
) -> tuple[dict[str, Any], str]:
    """Which parameter each returned gradient belongs to: by ``--wrt``, by the names the
    backward function gave them (``dW1`` -> ``W1``), or by shape in parameter order."""
    import inspect

    from chainrule.readers.lines import gradient_of

    params = list(inspect.signature(forward).parameters)
    floats = [p for p, v in zip(params, values) if numpy.asarray(v).dtype.kind == "f"]
    shapes = dict(zip(params, (numpy.shape(v) for v in values)))
    if wrt:
        names = [w.strip() for w in wrt.split(",")]
        if len(names) != len(grads):
            raise SystemExit(
                f"chainrule: --wrt names {len(names)} parameters but the backward returned "
                f"{len(grads)} gradients"
            )
        return dict(zip(names, grads)), "matched by --wrt: " + ", ".join(names)
    by_name = []
    for g in grads:
        bound = [b.name for b in bindings if b.bound is g]
        of = next(
            (gradient_of(n, set(floats)) for n in reversed(bound) if gradient_of(n, set(floats))),
            None,
        )
        by_name.append(of)
    named = [n for n in by_name if n]
    if len(named) == len(grads) and len(set(named)) == len(named):
        pairs = ", ".join(
            f"{next(b.name for b in reversed(bindings) if b.bound is g)} -> {n}"
            for g, n in zip(grads, named)
        )
        how = f"matched by the names in your backward function ({pairs})"
        return dict(zip(named, grads)), how
    taken: list[str] = []
    for g in grads:
        match = next((p for p in floats if p not in taken and shapes[p] == numpy.shape(g)), None)
        if match is None:
            raise SystemExit(
                f"chainrule: gradient {len(taken) + 1} of the sequence your backward returned "
                f"has shape {numpy.shape(g)}, which no remaining parameter of "
                f"{forward.__name__} has; return a dict {{name: gradient}} or pass --wrt"
            )
        taken.append(match)
    return (
        dict(zip(taken, grads)),
        "matched by shape, in parameter order: " + ", ".join(taken) + " (pass --wrt to choose)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule", description="Exact gradients of plain NumPy code, shown step by step."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="solve the seed network: forward values, all eight gradients and a numerical check",
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.add_argument(
        "--explain",
        action="store_true",
        help="also print the derivation: every backward line and why it holds",
    )
    demo.add_argument(
        "--why",
        action="store_true",
        help="print the derivation and the chain-rule step of every backward line (as --explain)",
    )
    demo.set_defaults(run=_demo)

    explain = sub.add_parser(
        "explain",
        help="write out the backward pass of a function in your file, in its own variable names",
    )
    explain.add_argument("target", metavar="FILE.py:FUNCTION")
    explain.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="NAME=EXPR|FILE.npz",
        help="argument values (default: module-level names like the parameters)",
    )
    explain.add_argument(
        "--wrt",
        help="comma-separated parameters to differentiate "
        "(default: every floating-point array argument)",
    )
    explain.add_argument(
        "--format", choices=["text", "python", "latex", "markdown", "dot"], default="text"
    )
    explain.add_argument(
        "--why", action="store_true", help="add the chain-rule step of every backward line"
    )
    explain.set_defaults(run=_explain)

    check = sub.add_parser(
        "check",
        help="check a hand-written backward pass against the "
        "chain rule and name each wrong gradient",
    )
    check.add_argument("forward", metavar="FILE.py:FORWARD")
    check.add_argument(
        "backward",
        metavar="FILE.py:BACKWARD",
        help="returns a dict of gradients by parameter name (or a sequence in --wrt order)",
    )
    check.add_argument("--args", action="append", default=[], metavar="NAME=EXPR|FILE.npz")
    check.add_argument("--wrt", help="the parameters a sequence of gradients refers to")
    check.set_defaults(run=_check)

    from .train import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    A mistake in the input (a bad option value, an error in the user's file or function) is
    one line on stderr and exit code 1, never a traceback; ``CHAINRULE_DEBUG=1`` shows it.

    Example
    -------
    >>> from chainrule.cli import main
    >>> main(["check", "no_such_file.py:f", "no_such_file.py:g"])
    Traceback (most recent call last):
    SystemExit: chainrule: no such file: no_such_file.py
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    return one_line_errors(args.command, lambda: int(args.run(args)))


def one_line_errors(command: str, run: Any) -> int:
    """``run()``, with any exception but an interrupt reported as one line (exit code 1)."""
    import os
    import traceback

    try:
        return int(run())
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - the command line's last resort
        if os.environ.get("CHAINRULE_DEBUG", "") not in ("", "0"):
            raise
        where = ""
        if isinstance(e, SyntaxError):
            pass  # its message names the file and the line
        else:
            package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            user = [
                f
                for f in traceback.extract_tb(e.__traceback__)
                if not f.filename.startswith((package, os.path.dirname(numpy.__file__)))
                and not f.filename.startswith("<frozen")
            ]
            if user:  # the last line of the user's own code that was running
                f = user[-1]
                where = f" (at {f.filename}:{f.lineno} in {f.name})"
        message = " ".join(str(e).split()) or type(e).__name__
        if len(message) > 300:
            message = message[:297] + "..."
        print(f"chainrule {command}: {type(e).__name__}: {message}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
