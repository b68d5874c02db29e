"""Digits: ``chainrule train`` (MLP and CNN) against the same training in PyTorch.

Part 1 runs the command line exactly as a user would, in a fresh process, and times it from
start to exit (imports, data loading, training, evaluation, writing the checkpoint, metrics
and PNG):

    chainrule train --dataset digits              # MLP 64-128-128-10 (default)
    chainrule train --dataset digits --model cnn  # Conv2d + MaxPool2d

(run here as ``python -m chainrule.cli.train train ...``, the same code).  Both use sklearn's
digits with a stratified 80/20 split (seed 0), train statistics for standardisation, AdamW
(lr 2e-3, weight decay 0.05), a cosine schedule over 40 epochs and batches of 32.

Part 2 trains the same models in PyTorch *the same way*: the architecture and the initial
weights are copied from chainrule's freshly built model (``train_cli.build_model``, seed 0), the
mini-batches come in the same order (``default_rng((seed, epoch))``, last partial batch
dropped), and AdamW, the cosine schedule, batch norm and dropout have the same settings; only
the dropout masks differ (each library draws its own).  Everything is float64 and runs on one
thread in both (mini-batch matrices are small; see ``chainrule.train.trainer.blas_threads``).

The script checks the acceptance criteria and exits non-zero if one fails:
  * the MLP reaches >= 97 % test accuracy and the CNN >= 98 %, each within 30 s;
  * PyTorch's accuracy is within 1 percentage point of chainrule's for each model.

Run (from the repository root; needs scikit-learn and torch)::

    PYTHONPATH=src python3 benchmarks/train_digits_vs_torch.py
    PYTHONPATH=src python3 benchmarks/train_digits_vs_torch.py --epochs 10   # quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy

from chainrule import nn
from chainrule.cli.train import build_model
from chainrule.data import Standardizer, batches, holdout_split, load_dataset


def run_cli(model: str, epochs: int, out: str) -> tuple[dict, float, str]:
    cmd = [
        sys.executable,
        "-m",
        "chainrule.cli.train",
        "train",
        "--dataset",
        "digits",
        "--out",
        out,
        "--no-progress",
    ]
    if model != "mlp":
        cmd += ["--model", model]
    if epochs != 40:
        cmd += ["--epochs", str(epochs)]
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    shown = "chainrule train --dataset digits" + (f" --model {model}" if model != "mlp" else "")
    return metrics, wall, shown + (f" --epochs {epochs}" if epochs != 40 else "")


def to_torch(module: nn.Module):  # type: ignore[no-untyped-def]
    """The same architecture in torch.nn, with the same (copied) parameters, float64."""
    import torch

    def t(a):  # type: ignore[no-untyped-def]
        return torch.tensor(numpy.array(a), dtype=torch.float64)

    layers = []
    seq = module.layers if isinstance(module, nn.MLP) else module
    for m in seq:
        if isinstance(m, nn.Linear):
            tm = torch.nn.Linear(m.in_features, m.out_features, dtype=torch.float64)
            tm.weight.data, tm.bias.data = t(m.weight.data), t(m.bias.data)
        elif isinstance(m, nn.Conv2d):
            tm = torch.nn.Conv2d(
                m.in_channels,
                m.out_channels,
                m.kernel_size,
                m.stride,
                m.padding,
                dtype=torch.float64,
            )
            tm.weight.data, tm.bias.data = t(m.weight.data), t(m.bias.data)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            cls = torch.nn.BatchNorm1d if isinstance(m, nn.BatchNorm1d) else torch.nn.BatchNorm2d
            tm = cls(m.num_features, eps=m.eps, momentum=m.momentum, dtype=torch.float64)
            tm.weight.data, tm.bias.data = t(m.weight.data), t(m.bias.data)
            tm.running_mean.data, tm.running_var.data = t(m.running_mean), t(m.running_var)
        elif isinstance(m, nn.ReLU):
            tm = torch.nn.ReLU()
        elif isinstance(m, nn.MaxPool2d):
            tm = torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding)
        elif isinstance(m, nn.Flatten):
            tm = torch.nn.Flatten(m.start_dim, m.end_dim)
        elif isinstance(m, nn.Dropout):
            tm = torch.nn.Dropout(m.p)
        else:
            raise TypeError(f"no torch counterpart for {type(m).__name__}")
        layers.append(tm)
    return torch.nn.Sequential(*layers)


def train_torch(kind: str, epochs: int, seed: int = 0) -> tuple[float, float]:
    import torch

    torch.manual_seed(seed)
    ds = load_dataset("digits")
    Xtr, Xte, ytr, yte = holdout_split(ds.X, ds.y, 0.2, stratify=True, seed=seed)
    scaler = Standardizer(per_feature=kind == "mlp").fit(Xtr)
    A, B = scaler.transform(Xtr), scaler.transform(Xte)
    if kind != "mlp":
        A, B = A.reshape(-1, 1, 8, 8), B.reshape(-1, 1, 8, 8)
    spec = "mlp:128,128" if kind == "mlp" else kind
    model = to_torch(build_model(spec, 64, 10, (8, 8), None, "batch", seed))
    t0 = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    At, yt = torch.tensor(A), torch.tensor(ytr)
    for epoch in range(epochs):
        model.train()
        rng = numpy.random.default_rng((seed, epoch))
        for idx in batches(len(A), 32, True, rng, drop_last=True):
            i = torch.from_numpy(idx)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(At[i]), yt[i])
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(B)).argmax(dim=1).numpy()
    return float(numpy.mean(pred == yte)), time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("this benchmark needs PyTorch: pip install torch")
    torch.set_num_threads(1)
    print(
        f"numpy {numpy.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    ok = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, target in (("mlp", 0.97), ("cnn", 0.98)):
            metrics, wall, cmd = run_cli(kind, args.epochs, os.path.join(tmp, kind))
            acc = metrics["test"]["accuracy"]
            t_acc, t_time = train_torch(kind, args.epochs)
            rows.append((kind, cmd, acc, metrics["train_seconds"], wall, t_acc, t_time))
            if args.epochs == 40:
                ok &= acc >= target and wall <= 30.0
            ok &= abs(acc - t_acc) <= 0.01 + 1e-12
    print()
    print(
        f"{'model':<5} {'chainrule acc':>13} {'train s':>8} {'cli wall s':>10} "
        f"{'torch acc':>10} {'torch s':>8} {'diff (points)':>14}"
    )
    for kind, _cmd, acc, train_s, wall, t_acc, t_time in rows:
        print(
            f"{kind:<5} {acc:>13.2%} {train_s:>8.1f} {wall:>10.1f} {t_acc:>10.2%} "
            f"{t_time:>8.1f} {100 * (acc - t_acc):>+14.2f}"
        )
    print()
    for kind, cmd, *_ in rows:
        print(f"  {kind}: {cmd}")
    print(
        "\nacceptance (MLP >= 97 %, CNN >= 98 %, each <= 30 s; torch within 1 point): "
        + ("PASS" if ok else "FAIL")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
