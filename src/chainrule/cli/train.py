"""``chainrule train`` and ``chainrule evaluate``: train a model on a data set from the shell.

``add_commands(subparsers)`` adds both subcommands to an ``argparse`` sub-parser object (the
``chainrule`` command line calls it); ``python -m chainrule.cli.train train ...`` runs them
on their own.

``train`` loads a bundled data set (``digits``, ``iris``, ``wine``, ``breast_cancer``,
``diabetes``) or a CSV file, makes a seeded (stratified) train/test split, standardises the
features with training statistics, trains an MLP or a small CNN with AdamW and a cosine
schedule, and writes into ``--out``:

* ``model.ckpt`` -- the model, its configuration and the scalers (``chainrule.load`` reads it);
* ``metrics.json`` -- test metrics, the last epoch's training metrics and the whole history;
* ``curve.png`` -- the training curves (needs matplotlib; skipped with a note without it);
* ``checkpoints/`` -- per-epoch checkpoints (``--resume`` continues an interrupted run).

``evaluate DIR`` rebuilds the model from ``DIR/model.ckpt``, recreates the same test split
(or reads ``--data FILE``) and reports the test metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy

from chainrule.train import nn, optim
from chainrule.train.checkpoint import CheckpointError, load, save
from chainrule.train.data import (
    DATASETS,
    DataError,
    Dataset,
    Standardizer,
    holdout_split,
    load_dataset,
)
from chainrule.train.trainer import Trainer, blas_threads

__all__ = ["add_commands", "build_model", "main", "run_train", "run_evaluate"]

DEFAULT_MODEL = "mlp:128,128"
DEFAULT_DROPOUT = {"mlp": 0.2, "cnn": 0.3, "linear": 0.0}


def parse_model(spec: str) -> tuple[str, list[int]]:
    """``'mlp:128,64'`` -> ``('mlp', [128, 64])``; ``'cnn'`` -> ``('cnn', [16, 32, 64])``.

    Example
    -------
    >>> from chainrule.cli.train import parse_model
    >>> parse_model("mlp:64,64"), parse_model("cnn"), parse_model("linear")
    (('mlp', [64, 64]), ('cnn', [16, 32, 64]), ('linear', []))
    """
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in ("mlp", "cnn", "linear"):
        raise ValueError(
            f"--model: unknown model {spec!r}; use mlp:H1,H2,... (hidden sizes), "
            "cnn[:C1,C2,F] (digits only) or linear"
        )
    try:
        sizes = [int(s) for s in rest.split(",") if s.strip()] if rest else []
    except ValueError:
        raise ValueError(f"--model: {spec!r}: sizes must be integers, e.g. mlp:64,64") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"--model: {spec!r}: sizes must be positive")
    if kind == "mlp" and not sizes:
        sizes = [128, 128]
    if kind == "cnn":
        sizes = sizes or [16, 32, 64]
        if len(sizes) != 3:
            raise ValueError(
                f"--model: {spec!r}: cnn takes three sizes, cnn:C1,C2,F (two conv "
                "layers' channels and the dense layer's width)"
            )
    if kind == "linear" and sizes:
        raise ValueError("--model: linear takes no sizes")
    return kind, sizes


def build_model(
    spec: str,
    n_features: int,
    n_outputs: int,
    image_shape: tuple[int, int] | None = None,
    dropout: float | None = None,
    norm: str | None = "batch",
    seed: int = 0,
    dtype: Any = numpy.float64,
) -> nn.Module:
    """The model that ``chainrule train --model SPEC`` trains.

    * ``mlp:H1,H2,...`` -- ``nn.MLP([n_features, H1, H2, ..., n_outputs])`` with ReLU, the
      ``norm`` (``'batch'``/``'layer'``/None) before and dropout after each hidden activation;
    * ``cnn:C1,C2,F`` (default 16,32,64) on (1, H, W) images -- two blocks of 3x3 ``Conv2d``
      (padding 1), ``BatchNorm2d`` (with ``norm='batch'``), ReLU and 2x2 ``MaxPool2d``, then
      ``Flatten``, dropout, ``Linear(C2 * H/4 * W/4, F)``, ReLU and ``Linear(F, n_outputs)``;
    * ``linear`` -- a single ``Linear`` layer.

    Example
    -------
    >>> from chainrule.cli.train import build_model
    >>> build_model("cnn", 64, 10, image_shape=(8, 8)).num_parameters()
    13802
    """
    kind, sizes = parse_model(spec)
    p = DEFAULT_DROPOUT[kind] if dropout is None else float(dropout)
    g = numpy.random.default_rng(seed)
    if kind == "linear":
        return nn.Linear(n_features, n_outputs, rng=g, dtype=dtype)
    if kind == "mlp":
        return nn.MLP(
            [n_features, *sizes, n_outputs], "relu", dropout=p, norm=norm, rng=g, dtype=dtype
        )
    if image_shape is None:
        raise ValueError("--model cnn needs image data: use --dataset digits (8x8 images)")
    h, w = image_shape
    if h % 4 or w % 4:
        raise ValueError(f"--model cnn needs image sides divisible by 4, got {h}x{w}")
    c1, c2, f = sizes

    def block(cin: int, cout: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, rng=g, dtype=dtype)]
        if norm == "batch":
            layers.append(nn.BatchNorm2d(cout, dtype=dtype))
        return layers + [nn.ReLU(), nn.MaxPool2d(2)]

    head: list[nn.Module] = [nn.Flatten()]
    if p:
        head.append(nn.Dropout(p, rng=g.spawn(1)[0]))
    head += [
        nn.Linear(c2 * (h // 4) * (w // 4), f, rng=g, dtype=dtype),
        nn.ReLU(),
        nn.Linear(f, n_outputs, rng=g, dtype=dtype),
    ]
    return nn.Sequential(*block(1, c1), *block(c1, c2), *head)


def _fingerprint(X: numpy.ndarray, y: numpy.ndarray) -> str:
    h = hashlib.sha256(numpy.ascontiguousarray(X).tobytes())
    h.update(numpy.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _inputs(
    X: numpy.ndarray, scaler: Standardizer, kind: str, image_shape: Any, dtype: Any
) -> numpy.ndarray:
    A = scaler.transform(X).astype(dtype)
    if kind == "cnn":
        A = A.reshape((len(A), 1) + tuple(image_shape))
    return A


def _split(ds: Dataset, test_size: float, seed: int) -> tuple[numpy.ndarray, ...]:
    return holdout_split(ds.X, ds.y, test_size, stratify=ds.task == "classification", seed=seed)


def _test_metrics(
    trainer: Trainer, A: numpy.ndarray, y: numpy.ndarray, task: str, y_scale: Standardizer | None
) -> dict[str, Any]:
    out = trainer.predict(A)
    if task == "classification":
        from chainrule.train.nn.functional import cross_entropy

        pred = out.argmax(axis=1)
        return {
            "accuracy": float(numpy.mean(pred == y)),
            "correct": int(numpy.sum(pred == y)),
            "n": int(len(y)),
            "loss": float(cross_entropy(out, y)),
        }
    assert y_scale is not None and y_scale.scale is not None and y_scale.mean is not None
    scale, mean = numpy.ravel(y_scale.scale)[0], numpy.ravel(y_scale.mean)[0]
    pred = out.reshape(len(out)) * scale + mean
    err = pred - y
    ss_tot = float(numpy.sum((y - y.mean()) ** 2))
    return {
        "mse": float(numpy.mean(err**2)),
        "rmse": float(numpy.sqrt(numpy.mean(err**2))),
        "mae": float(numpy.mean(numpy.abs(err))),
        "r2": float(1 - numpy.sum(err**2) / ss_tot) if ss_tot > 0 else 0.0,
        "n": int(len(y)),
    }


def _describe_test(m: dict[str, Any], task: str) -> str:
    if task == "classification":
        return (
            f"test accuracy {m['accuracy']:.4f} ({m['correct']}/{m['n']}), "
            f"test loss {m['loss']:.4f}"
        )
    return f"test rmse {m['rmse']:.4g}, mae {m['mae']:.4g}, r2 {m['r2']:.4f} ({m['n']} samples)"


def run_train(args: argparse.Namespace) -> int:
    """Implementation of ``chainrule train`` (returns the exit code).

    Example
    -------
    >>> import argparse, io, contextlib, tempfile
    >>> from chainrule.cli.train import add_commands
    >>> parser = argparse.ArgumentParser(prog="chainrule")
    >>> add_commands(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["train", "--dataset", "iris", "--epochs", "3",
    ...                           "--no-progress", "--out", tempfile.mkdtemp()])
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     code = run_train(args)
    >>> code
    0
    """
    t0 = time.perf_counter()
    lead = True  # the process that prints and writes (all of them without --distributed)
    if getattr(args, "distributed", False):
        from chainrule import distributed

        lead = distributed.rank() == 0
        if not lead:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the rest of this process)
    ds = load_dataset(args.dataset, target=args.target, task=args.task)
    kind, _ = parse_model(args.model)
    if kind == "cnn" and ds.image_shape is None:
        raise ValueError("--model cnn needs image data: use --dataset digits (8x8 images)")
    dtype = numpy.dtype(args.dtype)
    norm = None if args.norm == "none" else args.norm
    Xtr, Xte, ytr, yte = _split(ds, args.test_size, args.seed)
    scaler = Standardizer(per_feature=kind != "cnn").fit(Xtr)
    A, B = (_inputs(X, scaler, kind, ds.image_shape, dtype) for X in (Xtr, Xte))
    y_scale = None
    if ds.task == "classification":
        n_out, loss, metrics = ds.n_classes, "cross_entropy", ["accuracy"]
        target = ytr
    else:
        n_out, loss, metrics = 1, "mse", ["rmse", "r2"]
        y_scale = Standardizer().fit(ytr.reshape(-1, 1))
        target = y_scale.transform(ytr.reshape(-1, 1)).reshape(-1)
    model = build_model(
        args.model, ds.X.shape[1], n_out, ds.image_shape, args.dropout, norm, args.seed, dtype
    )
    opt = optim.get_optimizer(
        args.optimizer, model.parameters(), lr=args.lr, weight_decay=args.weight_decay
    )
    sched = (
        optim.CosineAnnealingLR(opt, T_max=max(args.epochs, 1))
        if args.schedule == "cosine"
        else None
    )
    what = f"{ds.n_classes} classes" if ds.task == "classification" else "regression"
    print(
        f"data: {ds.name}: {len(ds.X)} samples, {ds.X.shape[1]} features, {what}; "
        f"train {len(Xtr)} / test {len(Xte)} "
        f"({'stratified ' if ds.task == 'classification' else ''}split, seed {args.seed})"
    )
    print(
        f"model: {args.model} = {_summary(model)}, {model.num_parameters():,} parameters; "
        f"{type(opt).__name__}(lr={args.lr}), {args.schedule} schedule, "
        f"{args.epochs} epochs, batch {args.batch_size}"
    )
    sys.stdout.flush()
    out = os.fspath(args.out or os.path.join("runs", os.path.splitext(ds.name)[0]))
    _check_out(out)
    os.makedirs(out, exist_ok=True)
    trainer = Trainer(model, loss=loss, optimizer=opt, metrics=metrics, scheduler=sched)
    progress = None if args.no_progress else args.progress
    history = trainer.fit(
        A,
        target,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.val_split,
        early_stopping=args.early_stopping,
        seed=args.seed,
        checkpoint_dir=os.path.join(out, "checkpoints"),
        resume=args.resume,
        progress=progress,
        threads=args.threads,
        drop_last=True,
        distributed=getattr(args, "distributed", False),
    )
    if not lead:
        return 0
    train_time = time.perf_counter() - t0
    test = _test_metrics(trainer, B, yte, ds.task, y_scale)
    config = {
        "dataset": ds.name if ds.name in DATASETS else os.path.abspath(args.dataset),
        "target": None if args.target is None else str(args.target),
        "task": ds.task,
        "model": args.model,
        "dropout": args.dropout,
        "norm": args.norm,
        "seed": args.seed,
        "test_size": args.test_size,
        "dtype": dtype.name,
        "n_features": int(ds.X.shape[1]),
        "n_outputs": int(n_out),
        "image_shape": None if ds.image_shape is None else list(ds.image_shape),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
    }
    save(
        {
            "format": "chainrule.train",
            "version": 1,
            "config": config,
            "model": model.state_dict(),
            "scaler": scaler.state_dict(),
            "target_scaler": None if y_scale is None else y_scale.state_dict(),
            "classes": ds.classes,
            "data_sha256": _fingerprint(ds.X, ds.y),
        },
        os.path.join(out, "model.ckpt"),
    )
    last = {k: v[-1] for k, v in history.history.items()}
    report = {
        "dataset": config["dataset"],
        "model": args.model,
        "task": ds.task,
        "test": test,
        "final_epoch": last,
        "epochs_run": len(history),
        "best_epoch": history.best_epoch,
        "train_seconds": round(train_time, 3),
        "history": history.to_dict(),
    }
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2)
    written = ["model.ckpt", "metrics.json"]
    try:
        fig = history.plot(title=f"chainrule train --dataset {ds.name} --model {args.model}")
        if ds.task == "classification" and len(fig.axes) > 1:
            ax = fig.axes[1]  # the accuracy panel: mark the test result
            ax.axhline(
                test["accuracy"],
                color="C2",
                linestyle="--",
                linewidth=1,
                label=f"test accuracy {test['accuracy']:.4f}",
            )
            ax.legend()
        fig.savefig(os.path.join(out, "curve.png"), dpi=110)
        written.append("curve.png")
        note = ""
    except ImportError:
        note = " (curve.png skipped: matplotlib is not installed; pip install chainrule[train])"
    print(_describe_test(test, ds.task))
    print(f"wrote {', '.join(os.path.join(out, w) for w in written)}{note}")
    print(f"time {train_time:.1f} s")
    return 0


def _summary(model: nn.Module) -> str:
    if isinstance(model, nn.MLP):
        extra = [
            type(m).__name__ for m in model.layers if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm))
        ][:1]
        drops = [m.p for m in model.layers if isinstance(m, nn.Dropout)][:1]
        parts = (
            ["-".join(map(str, model.sizes)) + " ReLU MLP"]
            + extra
            + [f"dropout {d}" for d in drops]
        )
        return ", ".join(parts)
    if isinstance(model, nn.Linear):
        return f"Linear({model.in_features}, {model.out_features})"
    names = [type(m).__name__ for m in model.children()]
    return " > ".join(names)


def run_evaluate(args: argparse.Namespace) -> int:
    """Implementation of ``chainrule evaluate`` (returns the exit code).

    Example
    -------
    >>> import contextlib, io, tempfile
    >>> from chainrule.cli.train import main
    >>> out = tempfile.mkdtemp()
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     code = main(["train", "--dataset", "wine", "--epochs", "3", "--no-progress",
    ...                  "--out", out])
    >>> main(["evaluate", out, "--json"]) == 0   # doctest: +ELLIPSIS
    {
      "checkpoint": ...
    True
    """
    path = os.path.join(args.dir, "model.ckpt")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} does not exist; train first: chainrule train --dataset NAME --out {args.dir}"
        )
    state = load(path)
    if not isinstance(state, dict) or state.get("format") != "chainrule.train":
        raise CheckpointError(path, "not a model written by `chainrule train`")
    cfg = state["config"]
    kind, _ = parse_model(cfg["model"])
    if args.data is not None:
        ds = load_dataset(args.data, target=cfg["target"], task=cfg["task"])
        Xte, yte = ds.X, ds.y
        where = f"{args.data} (all {len(Xte)} rows)"
    else:
        ds = load_dataset(cfg["dataset"], target=cfg["target"], task=cfg["task"])
        if _fingerprint(ds.X, ds.y) != state["data_sha256"]:
            print(
                f"note: {cfg['dataset']} changed since training; the test split is drawn "
                "from the new contents",
                file=sys.stderr,
            )
        _, Xte, _, yte = _split(ds, cfg["test_size"], cfg["seed"])
        where = (
            f"{ds.name}, test split ({len(Xte)} samples, test_size {cfg['test_size']}, "
            f"seed {cfg['seed']})"
        )
    if ds.X.shape[1] != cfg["n_features"]:
        raise DataError(
            f"{args.data or cfg['dataset']}: {ds.X.shape[1]} features, but the "
            f"model was trained on {cfg['n_features']}"
        )
    classes = state["classes"]
    if cfg["task"] == "classification" and args.data is not None:
        # map the file's labels onto the training classes
        assert ds.classes is not None
        labels = ds.classes[ds.y]
        lookup = {c: i for i, c in enumerate(numpy.asarray(classes).tolist())}
        unknown = sorted({str(v) for v in numpy.asarray(labels).tolist() if v not in lookup})
        if unknown:
            raise DataError(f"{args.data}: labels {unknown[:5]} were not seen in training")
        yte = numpy.array([lookup[v] for v in numpy.asarray(labels).tolist()])
    dtype = numpy.dtype(cfg["dtype"])
    image_shape = None if cfg["image_shape"] is None else tuple(cfg["image_shape"])
    norm = None if cfg["norm"] == "none" else cfg["norm"]
    model = build_model(
        cfg["model"],
        cfg["n_features"],
        cfg["n_outputs"],
        image_shape,
        cfg["dropout"],
        norm,
        cfg["seed"],
        dtype,
    )
    model.load_state_dict(state["model"])
    scaler = Standardizer().load_state_dict(state["scaler"])
    y_scale = (
        None
        if state["target_scaler"] is None
        else Standardizer().load_state_dict(state["target_scaler"])
    )
    trainer = Trainer(model)
    with blas_threads(args.threads):
        test = _test_metrics(
            trainer, _inputs(Xte, scaler, kind, image_shape, dtype), yte, cfg["task"], y_scale
        )
    if args.json:
        print(json.dumps({"checkpoint": path, "data": where, "test": test}, indent=2))
    else:
        print(f"model: {cfg['model']} from {path}")
        print(f"data: {where}")
        print(_describe_test(test, cfg["task"]))
    return 0


def _number(
    kind: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """An argparse type: a finite number of ``kind`` within the bounds."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        bad = not math.isfinite(value)
        bad = bad or (low is not None and (value <= low if low_open else value < low))
        bad = bad or (high is not None and (value >= high if high_open else value > high))
        if bad:
            lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
            hi = "" if high is None else f"{high}" + (")" if high_open else "]")
            span = f"in {lo}, {hi}" if lo and hi else (f">= {low}" if not low_open else f"> {low}")
            raise argparse.ArgumentTypeError(f"{text} must be a finite number {span}")
        return value

    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT = _number(int, 1)
NONNEGATIVE_INT = _number(int, 0)
POSITIVE = _number(float, 0, low_open=True)
NONNEGATIVE = _number(float, 0)
FRACTION = _number(float, 0, 1, high_open=True)


def _check_out(out: str) -> None:
    """Fail before anything is written if ``out`` cannot be the output directory."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise ValueError(f"--out {out} is a file, not a directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out}: the directory is not writable")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot create it ({parent} is not a writable directory)")


def _errors(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except (DataError, CheckpointError, FileNotFoundError, ValueError, ImportError) as e:
            print(f"chainrule {args.command}: error: {e}", file=sys.stderr)
            return 1

    run.__doc__ = fn.__doc__
    return run


def add_commands(subparsers: Any) -> None:
    """Add the ``train`` and ``evaluate`` subcommands to an argparse ``subparsers`` object.

    Each sets ``run`` (``args.run(args)`` returns the exit code) and ``command``.

    Example
    -------
    >>> import argparse
    >>> from chainrule.cli.train import add_commands
    >>> parser = argparse.ArgumentParser(prog="chainrule")
    >>> add_commands(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["train", "--dataset", "iris"]).model
    'mlp:128,128'
    """
    t = subparsers.add_parser(
        "train",
        help="train a model on a bundled data set or a CSV file",
        description="Train an MLP (or a small CNN on digits) with AdamW and a cosine "
        "schedule; write the model, test metrics and training curves to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument(
        "--dataset",
        required=True,
        metavar="NAME|PATH.csv",
        help=f"one of {', '.join(DATASETS)} (scikit-learn's bundled data), or a "
        "CSV file whose last column is the target",
    )
    t.add_argument("--target", default=None, help="CSV: the target column (name or index)")
    t.add_argument(
        "--task",
        choices=["classification", "regression"],
        default=None,
        help="CSV: override the detected task",
    )
    t.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="mlp:H1,H2,... (hidden sizes), cnn[:C1,C2,F] (digits), or linear",
    )
    t.add_argument("--epochs", type=POSITIVE_INT, default=40)
    t.add_argument("--batch-size", type=POSITIVE_INT, default=32)
    t.add_argument("--lr", type=POSITIVE, default=2e-3, help="learning rate")
    t.add_argument(
        "--optimizer", choices=["adamw", "adam", "sgd", "rmsprop", "adagrad"], default="adamw"
    )
    t.add_argument("--weight-decay", type=NONNEGATIVE, default=0.05)
    t.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    t.add_argument(
        "--dropout",
        type=FRACTION,
        default=None,
        help="dropout probability (default: 0.2 for mlp, 0.3 for cnn)",
    )
    t.add_argument(
        "--norm",
        choices=["batch", "layer", "none"],
        default="batch",
        help="normalisation layers (cnn: batch or none)",
    )
    t.add_argument("--test-size", type=FRACTION, default=0.2)
    t.add_argument(
        "--val-split",
        type=FRACTION,
        default=0.0,
        help="hold out this fraction of the training data for validation",
    )
    t.add_argument(
        "--early-stopping",
        type=POSITIVE_INT,
        default=None,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement (use with --val-split)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    t.add_argument(
        "--threads",
        type=POSITIVE_INT,
        default=1,
        help="BLAS threads (small matrices: 1 is usually fastest)",
    )
    t.add_argument(
        "--out", default=None, metavar="DIR", help="output directory (default runs/<dataset>)"
    )
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints/last.ckpt")
    t.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over MPI: run as mpiexec -n N chainrule train ... --distributed",
    )
    t.add_argument(
        "--progress",
        choices=["auto", "tqdm", "plain"],
        default="auto",
        help="progress display (auto: tqdm when installed)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress display")
    t.set_defaults(run=_errors(run_train), command="train")

    e = subparsers.add_parser(
        "evaluate",
        help="report test metrics of a model written by `chainrule train`",
        description="Rebuild the model in DIR/model.ckpt, recreate its test split (or read "
        "--data) and report the test metrics.",
    )
    e.add_argument("dir", metavar="DIR", help="the --out directory of `chainrule train`")
    e.add_argument(
        "--data",
        default=None,
        metavar="PATH.csv",
        help="evaluate on every row of this file instead of the test split",
    )
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(run=_errors(run_evaluate), command="evaluate")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train``/``evaluate`` from ``argv`` (for ``python -m chainrule.cli.train``).

    Example
    -------
    >>> from chainrule.cli.train import main
    >>> main([])   # doctest: +ELLIPSIS
    usage: chainrule [-h] COMMAND ...
    ...
    2
    """
    parser = argparse.ArgumentParser(prog="chainrule")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    from .commands import one_line_errors

    return one_line_errors(args.command, lambda: int(args.run(args)))


if __name__ == "__main__":
    sys.exit(main())
