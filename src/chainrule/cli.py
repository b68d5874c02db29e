"""The ``chainrule`` command line: a thin layer over the public API."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any, Sequence

import numpy

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    import chainrule as cr
    from chainrule import seed

    X, T = cr.tensor(seed.X), cr.tensor(seed.T)
    params = {k: cr.tensor(v, requires_grad=True) for k, v in seed.PARAMS.items()}
    W1, W2, W3, W4 = (params[k] for k in ("W1", "W2", "W3", "W4"))
    B1, B2, B3, B4 = (params[k] for k in ("B1", "B2", "B3", "B4"))

    # The user's forward pass, exactly as written in shared/SEED.md.
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
    try:
        report = cr.check_grads(seed.forward, seed.X, seed.T, *seed.PARAMS.values(),
                                argnums=tuple(range(2, 10)))
        passed, check_text = True, str(report)
    except cr.GradientCheckError as e:
        passed, check_text = False, str(e.report)

    if args.json:
        doc = {
            "forward": {k: v.data.tolist() for k, v in forward_values.items()},
            "error": float(err.data),
            "gradients": {f"dE/d{k}": {"shape": list(p.grad.shape), "value": p.grad.tolist()}
                          for k, p in params.items()},
            "gradient_check": {"passed": passed, "report": check_text},
        }
        print(json.dumps(doc, indent=2))
        return 0 if passed else 1

    numpy.set_printoptions(precision=6, suppress=True, linewidth=100)
    print("chainrule demo: the 4-6-6-6-1 ReLU network of shared/SEED.md, one sample\n")
    print("Forward pass (the user's code, run unchanged on chainrule tensors):")
    for k, v in forward_values.items():
        print(f"  {k:<3} {str(v.shape):<8} {v.data}")
    print(f"\nerr = ((Y - T) ** 2).mean() = {float(err.data):.12g}\n")
    print("Gradients from one call, err.backward():")
    for k, p in params.items():
        print(f"  dE/d{k:<3} shape {p.grad.shape}")
        print(textwrap.indent(numpy.array2string(p.grad), "    "))
    print()
    print(check_text)
    return 0 if passed else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule", description="Exact gradients of plain NumPy code, shown step by step.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="solve the seed network: forward values, all eight "
                          "gradients and a numerical check")
    demo.add_argument("--json", action="store_true", help="print the results as JSON")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    result: Any = args.run(args)
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
