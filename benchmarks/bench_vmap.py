"""Per-example gradients with ``vmap(grad(loss))`` against one batched gradient.

Workload: the 784-512-512-10 ReLU MLP, float32, batch 128, softmax cross-entropy with integer
labels, He initialisation from ``default_rng(0)``.  Timed in one process, variants taking turns:

* ``batched``     ``chainrule.grad`` of the mean loss over the batch (one gradient);
* ``vmap``        ``chainrule.vmap(chainrule.grad(loss), in_axes=(None, 0, 0))``: 128 gradients;
* ``loop``        a Python loop of 128 ``chainrule.grad`` calls (what vmap replaces);
* ``write new``   no gradient at all: filling 128 gradients' worth of newly allocated float32
                  memory, the least any per-example method that returns its results must do;
* ``write again`` the same into memory written before (a lower bound below even that).

The per-example gradients are checked against the loop before timing.  Note what is being
asked: 128 per-example gradients are 128 x 670k floats (344 MB of float32) that must be written,
against 670k for the batched gradient; memory bandwidth, not Python, bounds the vmap row.

Run:  PYTHONPATH=src python3 benchmarks/bench_vmap.py [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy

import chainrule as cr


def make(batch: int):
    rng = numpy.random.default_rng(0)
    sizes = [784, 512, 512, 10]
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"W{i}"] = (rng.standard_normal((a, b)) * numpy.sqrt(2 / a)).astype(numpy.float32)
        params[f"b{i}"] = numpy.zeros(b, numpy.float32)
    X = rng.standard_normal((batch, 784)).astype(numpy.float32)
    y = rng.integers(0, 10, batch)
    return params, X, y


def logits(p, x):
    h = numpy.maximum(0, x @ p["W0"] + p["b0"])
    h = numpy.maximum(0, h @ p["W1"] + p["b1"])
    return h @ p["W2"] + p["b2"]


def example_loss(p, x, y):
    z = logits(p, x)
    z = z - z.max()
    return numpy.log(numpy.exp(z).sum()) - z[y]


def batch_loss(p, X, y):
    z = logits(p, X)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
    return -logp[numpy.arange(len(y)), y].mean()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    params, X, y = make(args.batch)
    batched = cr.grad(batch_loss)
    per_example = cr.vmap(cr.grad(example_loss), in_axes=(None, 0, 0))
    one = cr.grad(example_loss)

    def loop():
        return [one(params, X[i], y[i]) for i in range(len(X))]

    got = per_example(params, X, y)
    ref = loop()
    for k in params:
        numpy.testing.assert_allclose(
            got[k], numpy.stack([r[k] for r in ref]), rtol=2e-4, atol=1e-6
        )
    print(f"per-example gradients match a loop of grad calls ({len(X)} examples)")
    # The floor: only writing 128 gradients' worth of float32 into new memory (as vmap must,
    # since it returns them), and into memory that is already mapped (a lower bound nothing
    # that returns fresh arrays can reach).
    n_out = len(X) * sum(p.size for p in params.values())
    kept = numpy.empty(n_out, numpy.float32)

    def write_fresh():
        numpy.empty(n_out, numpy.float32).fill(1.0)

    def write_reused():
        kept.fill(1.0)

    variants = {
        "batched": lambda: batched(params, X, y),
        "vmap": lambda: per_example(params, X, y),
        "loop": loop,
        "write new": write_fresh,
        "write again": write_reused,
    }
    best = {k: float("inf") for k in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
    base = best["batched"]
    print(f"{'variant':<10}{'best of ' + str(args.rounds):>14}{'x batched':>12}")
    for name, t in best.items():
        print(f"{name:<10}{t * 1e3:>11.1f} ms{t / base:>11.2f}x")


if __name__ == "__main__":
    main()
