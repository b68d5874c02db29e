"""``fit``: mini-batch training with progress, validation, early stopping and checkpoints.

>>> import numpy, chainrule as cr
>>> from chainrule import nn
>>> from chainrule.train.trainer import fit
>>> rng = numpy.random.default_rng(0)
>>> X = rng.standard_normal((200, 2)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
>>> model = nn.MLP([2, 16, 2], rng=0)
>>> history = fit(model, X, y, epochs=20, lr=0.05, progress=None)
>>> history.history["accuracy"][-1] > 0.95
True

Everything is deterministic for a given ``seed``: epoch ``e`` shuffles with
``numpy.random.default_rng((seed, e))``, and a checkpoint holds every piece of state (model,
optimizer, scheduler, early-stopping counters, history, dropout generators), so a run resumed
from epoch k ends bit-for-bit where the uninterrupted run ends.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy

import chainrule as cr

from . import nn, optim
from .callbacks import CallbackList, CSVLogger, EarlyStopping, ModelCheckpoint, TensorBoard
from .checkpoint import load, save
from .data import batches, holdout_split
from .lr_scheduler import OneCycleLR, ReduceLROnPlateau
from .nn import functional as F
from .nn.layers_more import Embedding
from .reporting import History, _Progress, blas_threads
from .targets import (
    FITTING_LOSS,
    accuracy,
    binary_accuracy,
    class_sample_weights,
    encode_labels,
    is_text,
    loss_kind,
    per_sample_loss,
)

__all__ = ["fit", "Trainer", "History", "METRICS", "LOSSES", "blas_threads"]


def _values(x: Any) -> numpy.ndarray:
    return numpy.asarray(x.data) if isinstance(x, cr.Tensor) else numpy.asarray(x)


def _is_multi(X: Any) -> bool:
    """Several inputs: a tuple of arrays, or a list whose items are all arrays (Keras)."""
    if isinstance(X, tuple):
        return True
    return (
        isinstance(X, list)
        and len(X) > 1
        and all(isinstance(a, (numpy.ndarray, cr.Tensor)) for a in X)
    )


def _take(X: Any, idx: Any) -> Any:
    return tuple(x[idx] for x in X) if isinstance(X, tuple) else X[idx]


def _apply(model: nn.Module, xb: Any) -> Any:
    return model(*xb) if isinstance(xb, tuple) else model(xb)


def _count(X: Any) -> int:
    return len(X[0]) if isinstance(X, tuple) else len(X)


def _concat(parts: list[Any]) -> Any:
    if parts and isinstance(parts[0], tuple):
        return tuple(
            numpy.concatenate([_values(p[i]) for p in parts]) for i in range(len(parts[0]))
        )
    return numpy.concatenate([_values(p) for p in parts])


def _is_loader(X: Any, y: Any) -> bool:
    """Batches from an iterable (a DataLoader, a list of (x, y) pairs), not arrays."""
    if y is not None or isinstance(X, (numpy.ndarray, cr.Tensor, tuple)):
        return False
    if isinstance(X, list):
        return bool(X) and all(isinstance(b, tuple) for b in X)
    return hasattr(X, "__iter__")


# --- metrics -------------------------------------------------------------------------------


def _err(pred: numpy.ndarray, y: numpy.ndarray) -> numpy.ndarray:
    return numpy.asarray(
        pred.reshape(len(pred), -1) - numpy.asarray(y, dtype=float).reshape(len(pred), -1)
    )


def mse(pred: numpy.ndarray, y: numpy.ndarray) -> float:
    """Mean squared error.

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.trainer import mse
    >>> mse(numpy.array([1.0, 3.0]), numpy.array([0.0, 0.0]))
    5.0
    """
    return float(numpy.mean(_err(pred, y) ** 2))


def rmse(pred: numpy.ndarray, y: numpy.ndarray) -> float:
    """Root mean squared error."""
    return math.sqrt(mse(pred, y))


def mae(pred: numpy.ndarray, y: numpy.ndarray) -> float:
    """Mean absolute error."""
    return float(numpy.mean(numpy.abs(_err(pred, y))))


def r2(pred: numpy.ndarray, y: numpy.ndarray) -> float:
    """Coefficient of determination (1 is perfect; averaged over output columns).

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.trainer import r2
    >>> r2(numpy.array([1.0, 2.0, 3.0]), numpy.array([1.0, 2.0, 3.0]))
    1.0
    """
    yy = numpy.asarray(y, dtype=float).reshape(len(pred), -1)
    ss_res = numpy.sum(_err(pred, y) ** 2, axis=0)
    ss_tot = numpy.sum((yy - yy.mean(axis=0)) ** 2, axis=0)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        score = numpy.where(
            ss_tot > 0,
            1 - ss_res / numpy.where(ss_tot > 0, ss_tot, 1.0),
            numpy.where(ss_res == 0, 1.0, 0.0),
        )
    return float(numpy.mean(score))


METRICS: dict[str, Callable[[numpy.ndarray, numpy.ndarray], float]] = {
    "accuracy": accuracy,
    "acc": accuracy,
    "mse": mse,
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
}
_HIGHER_IS_BETTER = {"accuracy", "acc", "r2"}

# --- losses --------------------------------------------------------------------------------

LOSSES: dict[str, Callable[..., Any]] = {
    "cross_entropy": F.cross_entropy,
    "ce": F.cross_entropy,
    "nll": F.nll_loss,
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "mae": F.l1_loss,
    "huber": F.huber_loss,
    "smooth_l1": F.smooth_l1_loss,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "bce": F.binary_cross_entropy,
}


def _resolve_loss(loss: Any, y: numpy.ndarray) -> tuple[Callable[..., Any], str]:
    if loss is None:
        loss = "cross_entropy" if y.dtype.kind in "iub" or is_text(y) else "mse"
    if isinstance(loss, str):
        try:
            return LOSSES[loss.lower()], loss.lower()
        except KeyError:
            raise ValueError(
                f"unknown loss {loss!r}; choose from {', '.join(sorted(LOSSES))} "
                "or pass a function loss(output, target)"
            ) from None
    if callable(loss):
        return loss, getattr(loss, "__name__", type(loss).__name__)
    raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")


def _generators(model: nn.Module) -> dict[str, numpy.random.Generator]:
    return {
        name: m.generator
        for name, m in model.named_modules()
        if isinstance(getattr(m, "generator", None), numpy.random.Generator)
    }


# --- the trainer ---------------------------------------------------------------------------


class Trainer:
    """Train and evaluate a module with a loss, an optimizer, metrics and a schedule.

    Parameters
    ----------
    model : nn.Module
    loss : name (``'cross_entropy'``, ``'mse'``, ``'bce_with_logits'``, ``'huber'``, ``'l1'``,
        ``'nll'``, …) or a function ``loss(output, target)``; default: cross-entropy for
        integer targets, mean squared error otherwise.  With a named elementwise loss a 1-D
        target is matched to an (N, 1) output.
    optimizer : an :class:`chainrule.optim.Optimizer` on ``model.parameters()``, a name
        (``'adam'``, ``'sgd'``, …), a factory ``f(params)``, or None for Adam.
    lr : learning rate when the optimizer is given by name or None (default: the optimizer's).
    metrics : names (``'accuracy'``, ``'mse'``, ``'rmse'``, ``'mae'``, ``'r2'``) or functions
        ``metric(outputs, targets) -> float``; default ``['accuracy']`` for classification
        losses.
    scheduler : a scheduler on the optimizer (``optim.lr_scheduler.*``), or a factory
        ``f(optimizer)``.  ``ReduceLROnPlateau`` steps after each epoch with the monitored
        value; ``OneCycleLR`` after each mini-batch; the others after each epoch.
    scheduler_interval : ``'epoch'`` or ``'batch'`` to override when a scheduler steps.
    clip_grad_norm : clip the joint gradient norm to this value before every step.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> from chainrule.train.trainer import Trainer
    >>> X = numpy.linspace(-1, 1, 64).reshape(-1, 1); y = 3 * X[:, 0]
    >>> trainer = Trainer(nn.Linear(1, 1, rng=0), loss="mse", optimizer="sgd", lr=0.3)
    >>> _ = trainer.fit(X, y, epochs=30, batch_size=16, progress=None)
    >>> round(trainer.evaluate(X, y)["loss"], 6)
    0.0
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Any = None,
        optimizer: Any = None,
        lr: float | None = None,
        metrics: Any = None,
        scheduler: Any = None,
        clip_grad_norm: float | None = None,
        scheduler_interval: str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"Trainer: model must be a chainrule.nn.Module, got {type(model).__name__}"
            )
        if not list(model.parameters()):
            raise ValueError("Trainer: the model has no parameters to train")
        half = [n for n, p in model.named_parameters() if numpy.dtype(p.dtype).itemsize < 4]
        if half:
            raise ValueError(
                f"Trainer: parameter {half[0]!r} is {model.dtype}; training in half precision "
                "needs loss scaling and float32 master weights, which fit does not do (the "
                "loss would underflow or overflow within a few steps); train in float32 "
                "(model.float()) and convert afterwards (model.to(numpy.float16))"
            )
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError(
                "Trainer: every parameter of the model is frozen (requires_grad=False); "
                "unfreeze some with module.requires_grad_(True)"
            )
        self.model = model
        self._loss_spec = loss
        if optimizer is None or isinstance(optimizer, str):
            name = optimizer or "adam"
            opts = {} if lr is None else {"lr": lr}
            self.optimizer = optim.get_optimizer(name, model.parameters(), **opts)
        elif isinstance(optimizer, optim.Optimizer):
            if lr is not None:
                raise ValueError("Trainer: pass lr to the optimizer you built, not to fit()")
            self.optimizer = optimizer
        elif callable(optimizer):
            self.optimizer = optimizer(model.parameters())
        else:
            raise TypeError(
                f"optimizer must be an Optimizer, a name or a factory, got "
                f"{type(optimizer).__name__}"
            )
        if scheduler is not None and not isinstance(
            scheduler, (optim.LRScheduler, ReduceLROnPlateau)
        ):
            if not callable(scheduler):
                raise TypeError(
                    "Trainer: scheduler must be a scheduler on the optimizer or a factory "
                    f"f(optimizer), got {type(scheduler).__name__}"
                )
            scheduler = scheduler(self.optimizer)
        if scheduler is not None and getattr(scheduler, "optimizer", None) is not self.optimizer:
            raise ValueError("Trainer: the scheduler must be built on the trainer's optimizer")
        self.scheduler = scheduler
        if scheduler_interval is None:
            scheduler_interval = "batch" if isinstance(scheduler, OneCycleLR) else "epoch"
        if scheduler_interval not in ("epoch", "batch"):
            raise ValueError(
                "Trainer: scheduler_interval must be 'epoch' or 'batch', "
                f"got {scheduler_interval!r}"
            )
        if isinstance(scheduler, ReduceLROnPlateau) and scheduler_interval == "batch":
            raise ValueError("Trainer: ReduceLROnPlateau steps per epoch, on the monitored value")
        self.scheduler_interval = scheduler_interval
        self.history = History()
        self.stop_training = False
        self.clip_grad_norm = clip_grad_norm
        self._metrics_spec = metrics
        self.loss_fn: Callable[..., Any] | None = None
        self.loss_name = ""
        self.loss_kind = "custom"
        self.classes_: numpy.ndarray | None = None

    # --- helpers ----------------------------------------------------------------------------

    def _setup(self, y: numpy.ndarray) -> None:
        if self.loss_fn is None:
            self.loss_fn, self.loss_name = _resolve_loss(self._loss_spec, y)
            self.loss_kind = loss_kind(self.loss_fn)
        kind = self.loss_kind
        spec = self._metrics_spec
        if spec is None:
            spec = ["accuracy"] if kind in ("class", "binary_logits", "binary_prob") else []
        if isinstance(spec, str) or callable(spec):
            spec = [spec]
        self.metrics: dict[str, Callable[..., float]] = {}
        for m in spec:
            if isinstance(m, str):
                if m not in METRICS:
                    raise ValueError(
                        f"unknown metric {m!r}; choose from "
                        f"{', '.join(sorted(METRICS))} or pass a function"
                    )
                fn = METRICS[m]
                if fn is accuracy and kind in ("binary_logits", "binary_prob"):
                    fn = binary_accuracy(0.0 if kind == "binary_logits" else 0.5)
                self.metrics["accuracy" if m == "acc" else m] = fn
            elif callable(m):
                self.metrics[getattr(m, "__name__", "metric")] = m
            else:
                raise TypeError(f"metrics must be names or functions, got {type(m).__name__}")

    def _dtype(self) -> numpy.dtype[Any]:
        return self.model.dtype or numpy.dtype(numpy.float64)

    def _inputs(self, X: Any) -> Any:
        """``X`` as a float array of the model's dtype, or a tuple of them for several inputs."""
        if _is_multi(X):
            xs = tuple(self._inputs_one(x, f"X[{i}]") for i, x in enumerate(X))
            lengths = [len(x) for x in xs]
            if len(set(lengths)) > 1:
                raise ValueError(f"fit: the inputs have different numbers of samples: {lengths}")
            return xs
        return self._inputs_one(X, "X")

    def _inputs_one(self, X0: Any, name: str) -> numpy.ndarray:
        X: numpy.ndarray = numpy.asarray(_values(X0))
        if X.dtype.kind not in "fiub":
            raise TypeError(f"fit: {name} must be numeric, got dtype {X.dtype}")
        if X.ndim == 0:
            raise ValueError(f"fit: {name} must hold one row per sample, got a scalar")
        if X.dtype.kind in "iu" and self._takes_indices():
            return X  # token ids for an Embedding stay integers
        if not numpy.all(numpy.isfinite(X)):
            raise ValueError(f"fit: {name} contains NaN or infinity")
        return numpy.asarray(X, dtype=self._dtype())

    def _takes_indices(self) -> bool:
        """Whether the model looks up integer inputs (it holds an ``nn.Embedding``)."""
        return any(isinstance(m, Embedding) for m in self.model.modules())

    def _prepare(self, X: Any, y: Any) -> tuple[Any, numpy.ndarray]:
        X = self._inputs(X)
        y = numpy.asarray(y.data if isinstance(y, cr.Tensor) else y)
        if _count(X) != len(y):
            raise ValueError(f"fit: X has {_count(X)} samples but y has {len(y)}")
        if len(y) == 0:
            raise ValueError("fit: no samples")
        return X, self._targets(y)

    def _targets(self, y: numpy.ndarray) -> numpy.ndarray:
        """The targets in the form the loss takes, or a one-line error naming the loss that
        fits them."""
        kind, name = self.loss_kind, self.loss_name
        if is_text(y):
            if kind not in ("class", "custom"):
                raise ValueError(
                    f"fit: y holds text labels (e.g. {str(y.ravel()[0])!r}) but loss {name!r} "
                    f"needs numbers; for class labels use {FITTING_LOSS['labels']}"
                )
            y, self.classes_ = encode_labels(y, self.classes_)
            return y
        if y.dtype.kind not in "fiub":
            raise TypeError(f"fit: y must be numbers or text labels, got dtype {y.dtype}")
        if y.dtype.kind == "f" and not numpy.all(numpy.isfinite(y)):
            raise ValueError("fit: y contains NaN or infinity")
        if kind == "class":
            if y.ndim == 1:
                if y.dtype.kind == "f":
                    if not numpy.all(y == numpy.round(y)):
                        raise ValueError(
                            f"fit: loss {name!r} needs class labels, but y holds fractional "
                            f"numbers (e.g. {y[y != numpy.round(y)][0]}); for regression use "
                            f"{FITTING_LOSS['numbers']}"
                        )
                return y.astype(numpy.int64)
            one_hot = (
                y.ndim == 2
                and bool(numpy.all((y == 0) | (y == 1)))
                and bool(numpy.all(y.sum(axis=1) == 1))
            )
            if y.ndim >= 2 and y.dtype.kind in "iu" and not one_hot:
                return y.astype(numpy.int64)  # a class per position: (N, d1, ...) sequences
            if y.ndim == 2:  # one-hot rows or class probabilities
                if numpy.any(y < 0) or not numpy.allclose(y.sum(axis=1), 1.0):
                    raise ValueError(
                        f"fit: loss {name!r} takes 2-D targets only as one-hot rows or class "
                        f"probabilities (rows of non-negative numbers summing to 1); for "
                        f"several labels per sample use {FITTING_LOSS['multilabel']}"
                    )
                return y.astype(self._dtype())
            return y.astype(numpy.int64) if y.dtype.kind in "iub" else y
        if kind == "custom":
            return y.astype(self._dtype(), copy=False) if y.dtype.kind == "f" else y
        if kind in ("binary_logits", "binary_prob") and numpy.any((y < 0) | (y > 1)):
            raise ValueError(
                f"fit: loss {name!r} needs 0/1 targets (or probabilities), but y holds "
                f"values outside [0, 1] (e.g. {y[(y < 0) | (y > 1)][0]}); for several classes "
                f"use {FITTING_LOSS['labels']}"
            )
        return y.astype(self._dtype())

    def _loss(self, out: Any, y: numpy.ndarray, weight: numpy.ndarray | None = None) -> Any:
        assert self.loss_fn is not None
        kind = self.loss_kind
        if kind in ("elementwise", "binary_logits", "binary_prob"):
            shape = numpy.shape(_values(out))
            if y.ndim == len(shape) - 1 and shape[-1] == 1:
                y = y.reshape(y.shape + (1,))
            if tuple(y.shape) != tuple(shape):
                hint = (
                    f"for class labels use {FITTING_LOSS['labels']}"
                    if len(shape) == 2 and shape[1] > 1 and y.ndim == 1
                    else "make the model output one value per target value"
                )
                raise ValueError(
                    f"fit: loss {self.loss_name!r} compares the model's outputs of shape "
                    f"{shape} with targets of shape {tuple(y.shape)}; {hint}"
                )
        if weight is None:
            return self.loss_fn(out, y)
        each = per_sample_loss(self.loss_fn, kind, out, y)
        # a batch whose weights are all zero contributes a zero loss (and gradient)
        return numpy.sum(each * weight) / max(float(numpy.sum(weight)), 1e-300)

    def _weights(
        self, sample_weight: Any, class_weight: Any, y: numpy.ndarray
    ) -> numpy.ndarray | None:
        """One weight per sample from ``sample_weight`` times ``class_weight`` (None: none)."""
        w = None
        if sample_weight is not None:
            w = numpy.asarray(_values(sample_weight), dtype=float).reshape(-1)
            if w.shape != (len(y),):
                raise ValueError(
                    f"fit: sample_weight must have one weight per sample ({len(y)}), got "
                    f"shape {numpy.shape(sample_weight)}"
                )
            if not numpy.all(numpy.isfinite(w)) or numpy.any(w < 0):
                raise ValueError("fit: sample_weight must be finite and non-negative")
        if class_weight is not None:
            if self.classes_ is not None and isinstance(class_weight, dict):
                index = {str(c): i for i, c in enumerate(self.classes_.tolist())}
                unknown = [k for k in class_weight if str(k) not in index]
                if unknown:
                    raise ValueError(
                        f"fit: class_weight names {unknown[0]!r}, not among the labels "
                        f"{self.classes_.tolist()[:10]}"
                    )
                class_weight = {index[str(k)]: v for k, v in class_weight.items()}
            cw = class_sample_weights(class_weight, y)
            w = cw if w is None else w * cw
        if w is not None:
            w = w.astype(self._dtype())
        return w

    def _scores(self, pred: numpy.ndarray, y: numpy.ndarray, prefix: str = "") -> dict[str, float]:
        return {prefix + k: float(f(pred, y)) for k, f in self.metrics.items()}

    # --- evaluation -------------------------------------------------------------------------

    def predict(self, X: Any, batch_size: int = 512) -> numpy.ndarray:
        """Model outputs for ``X`` in evaluation mode, without recording (NumPy array).

        Example
        -------
        >>> import numpy
        >>> from chainrule import nn
        >>> from chainrule.train.trainer import Trainer
        >>> Trainer(nn.Linear(2, 3, rng=0)).predict(numpy.zeros((4, 2))).shape
        (4, 3)
        """
        X = self._inputs(X)
        was = self.model.training
        self.model.eval()
        outs = []
        try:
            with cr.no_grad():
                for idx in batches(_count(X), batch_size, shuffle=False):
                    outs.append(_values(_apply(self.model, _take(X, idx))))
        finally:
            self.model.train(was)
        return numpy.concatenate(outs) if outs else numpy.empty((0,))

    def evaluate(self, X: Any, y: Any, batch_size: int = 512) -> dict[str, float]:
        """``{'loss': ..., metric: ...}`` on ``X, y`` in evaluation mode.

        Example
        -------
        >>> import numpy
        >>> from chainrule import nn
        >>> from chainrule.train.trainer import Trainer
        >>> t = Trainer(nn.Linear(2, 3, rng=0))
        >>> sorted(t.evaluate(numpy.zeros((4, 2)), numpy.array([0, 1, 2, 0])))
        ['accuracy', 'loss']
        """
        y0 = numpy.asarray(y.data if isinstance(y, cr.Tensor) else y)
        self._setup(y0)
        X, y = self._prepare(X, y0)
        pred = self.predict(X, batch_size)
        with cr.no_grad():
            loss = float(_values(self._loss(pred, y)))
        return {"loss": loss, **self._scores(pred, y)}

    # --- training ---------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        epochs: int = 10,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        early_stopping: int | None = None,
        monitor: str | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
        seed: int = 0,
        shuffle: bool = True,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        progress: Any = "auto",
        file: Any = None,
        threads: int | None = None,
        drop_last: bool = False,
        callbacks: Any = None,
        verbose: int | None = None,
        sample_weight: Any = None,
        class_weight: Any = None,
        distributed: bool = False,
    ) -> History:
        """Train for ``epochs`` passes over ``X, y``; return the :class:`History`.

        Parameters
        ----------
        X, y : inputs and targets: ``X`` an array, or a tuple (or list) of arrays for a model
            with several inputs (``model(*X)``); or, with ``y`` left out, batches from a
            ``DataLoader`` or any re-iterable of ``(x, y)`` / ``(x, y, sample_weight)`` pairs
            (``set_epoch(epoch)`` is called on it when it has one, so resuming repeats the
            order; ``batch_size``, ``shuffle`` and ``seed`` are then the loader's business).
        epochs, batch_size : passes over the data, and samples per step (last batch smaller).
        validation_data : ``(X_val, y_val)`` evaluated after every epoch (``val_*`` logs).
        validation_split : else hold out this fraction of ``X, y`` (stratified for integer
            labels, from ``seed``).
        early_stopping : stop after this many epochs without improvement of ``monitor``
            (default ``'val_loss'``, or ``'loss'`` without validation) by more than
            ``min_delta``; with ``restore_best`` the best epoch's weights are restored.
        seed : shuffling seed; epoch ``e`` uses ``numpy.random.default_rng((seed, e))``.
        checkpoint_dir : write ``last.ckpt`` (everything needed to resume) after every epoch
            and ``best.ckpt`` (the model state) when the monitored value improves.
        resume : continue from ``checkpoint_dir/last.ckpt`` if it exists (same data, seed
            and batch size required); the result equals an uninterrupted run.
        progress : ``'auto'`` (a tqdm bar per epoch when tqdm is installed, else one line per
            epoch), ``'tqdm'``, ``'plain'`` or None; ``file`` is where it goes.
        threads : limit BLAS threads while training (see :func:`blas_threads`).
        drop_last : leave out each epoch's incomplete last batch (as PyTorch's ``DataLoader``;
            useful with batch normalisation, which cannot train on a batch of one).
        callbacks : :class:`~chainrule.train.callbacks.Callback` objects (``EarlyStopping``,
            ``ModelCheckpoint``, ``CSVLogger``, ``TensorBoard``, your own), called in order;
            ``early_stopping`` and ``checkpoint_dir`` add theirs after them.
        verbose : Keras' switch, overriding ``progress``: 0 silent, 1 a progress bar per
            epoch, 2 one line per epoch.
        sample_weight : one non-negative weight per sample; each mini-batch's loss becomes
            ``sum(w_i * loss_i) / sum(w_i)`` (PyTorch's weighted mean).
        class_weight : ``{label: weight}`` (Keras) or ``'balanced'`` (scikit-learn's
            ``n / (n_classes * count)``), multiplied into the sample weights.
        distributed : data-parallel training over MPI (run under ``mpiexec -n N``; see
            :mod:`chainrule.distributed`): process 0's parameters are broadcast, every batch
            is split between the processes and their gradients summed, so the result equals
            one process's training to rounding; only process 0 shows progress and writes
            checkpoints and callbacks' files.

        Targets: integer labels, text labels (encoded in sorted order; ``trainer.classes_``),
        one-hot rows or class probabilities for cross-entropy; 0/1 columns for the binary
        losses (one or several labels per sample, with element-wise accuracy); numbers for
        the regression losses.  A target that does not fit the loss raises an error that
        names the loss that fits.
        """
        if verbose is not None:
            if verbose not in (0, 1, 2):
                raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
            progress = {0: None, 1: "auto", 2: "plain"}[int(verbose)]
        self._dist: Any = None
        if distributed:
            from . import distributed as dist

            self._dist = dist
            dist.broadcast_parameters(self.model)
            if dist.rank() != 0:  # one voice and one writer: process 0
                progress = None
                writers = (CSVLogger, TensorBoard, ModelCheckpoint)
                callbacks = [c for c in callbacks or [] if not isinstance(c, writers)]
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"fit: batch_size must be a positive int, got {batch_size!r}")
        loader = None
        if _is_loader(X, y):
            loader = X
            if iter(loader) is loader:
                raise TypeError(
                    "fit: X is an iterator, which one epoch would use up; pass something that "
                    "can be iterated again every epoch (a DataLoader, a list of batches)"
                )
            if validation_split or sample_weight is not None or class_weight is not None:
                raise ValueError(
                    "fit: with batches from a loader, give validation_data instead of "
                    "validation_split, and weights as a third item of each batch"
                )
            first = self._unbatch(next(iter(loader)))
            y0 = numpy.asarray(_values(first[1]))
            if is_text(y0):
                raise ValueError(
                    "fit: text labels from a loader: one batch does not show every class; "
                    "encode them first (classes, y = numpy.unique(y, return_inverse=True))"
                )
            self._setup(y0)
            X, y = None, self._targets(y0)  # X and y come from the loader every epoch
            w = None
        else:
            if y is None:
                raise TypeError(
                    "fit: y is missing; give targets, or batches of (x, y) from a DataLoader"
                )
            y0 = numpy.asarray(y.data if isinstance(y, cr.Tensor) else y)
            self._setup(y0)
            X, y = self._prepare(X, y0)
            w = self._weights(sample_weight, class_weight, y)
        if validation_data is not None and validation_split:
            raise ValueError("fit: give validation_data or validation_split, not both")
        if validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
            itr, iv, y, yv = holdout_split(
                numpy.arange(_count(X)),
                y,
                validation_split,
                stratify=y.dtype.kind in "iu",
                seed=seed,
            )
            X, Xv = _take(X, itr), _take(X, iv)
            w = None if w is None else w[itr]
            validation_data = (Xv, yv)
        val = None
        if validation_data is not None:
            if _is_loader(validation_data, None):
                pairs = [self._unbatch(b) for b in validation_data]
                validation_data = (
                    _concat([p[0] for p in pairs]),
                    numpy.concatenate([_values(p[1]) for p in pairs]),
                )
            val = self._prepare(*validation_data)
        monitor = monitor or ("val_loss" if val is not None else "loss")
        base = monitor[4:] if monitor.startswith("val_") else monitor
        higher = base in _HIGHER_IS_BETTER
        known = {"loss", *self.metrics}
        if base not in known or (monitor.startswith("val_") and val is None):
            raise ValueError(
                f"fit: cannot monitor {monitor!r}; available: "
                f"{', '.join(sorted(known))}"
                + (" (and val_* with validation data)" if val is None else "")
            )

        history = History()
        history.monitor = monitor
        history.params = {
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "samples": -1 if loader is not None else int(_count(X)),
            "loss": self.loss_name,
        }
        best = -math.inf if higher else math.inf
        start = 0
        ckdir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        if resume and ckdir is None:
            raise ValueError("fit: resume=True needs checkpoint_dir")
        cbs = CallbackList(callbacks)
        if early_stopping is not None:
            cbs.callbacks.append(
                EarlyStopping(
                    monitor,
                    patience=early_stopping,
                    min_delta=min_delta,
                    mode="max" if higher else "min",
                    restore_best_weights=restore_best,
                )
            )
        writer = self._dist is None or self._dist.rank() == 0
        if ckdir is not None and writer:
            cbs.callbacks.append(
                ModelCheckpoint(
                    os.path.join(ckdir, "best.ckpt"),
                    monitor=monitor,
                    save_best_only=True,
                    mode="max" if higher else "min",
                )
            )
        fingerprint = {
            "seed": seed,
            "batch_size": batch_size,
            "n_train": -1 if loader is not None else int(_count(X)),
            "shuffle": shuffle,
            "drop_last": drop_last,
        }
        self.stop_training = False
        if ckdir is not None:
            os.makedirs(ckdir, exist_ok=True)
            last = os.path.join(ckdir, "last.ckpt")
            if resume and os.path.exists(last):
                start, best, history = self._restore(last, fingerprint, cbs)
                if history.stopped_epoch is not None:
                    start = epochs  # the run had already stopped early
        self.history = history
        bar = _Progress(progress, file)
        self._bar = bar
        if start > 0:
            bar.note(f"resumed from {os.path.join(ckdir or '', 'last.ckpt')} after epoch {start}")
        cbs.set_trainer(self)
        with blas_threads(threads):
            cbs.on_train_begin({})
            for epoch in range(start, epochs):
                cbs.on_epoch_begin(epoch, {})
                source: Iterator[tuple[Any, Any, Any]]
                n_batches: int | None
                if loader is not None:
                    if hasattr(loader, "set_epoch"):  # the same order on resume
                        loader.set_epoch(epoch)
                    source = (self._unbatch(b) for b in loader)
                    n_batches = len(loader) if hasattr(loader, "__len__") else None
                else:
                    source, n_batches = self._array_batches(
                        X, y, w, epoch, batch_size, shuffle, seed, drop_last
                    )
                logs = self._train_epoch(source, n_batches, epoch, epochs, bar, cbs)
                if self._dist is not None:  # one set of running statistics, process 0's
                    self._dist.broadcast_buffers(self.model)
                if val is not None:
                    scores = self._evaluate_prepared(*val)
                    logs.update({f"val_{k}": v for k, v in scores.items()})
                logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
                bar.end(logs)
                history.append(epoch, logs)
                current = logs[monitor]
                if self.scheduler is not None and self.scheduler_interval == "epoch":
                    if isinstance(self.scheduler, ReduceLROnPlateau):
                        self.scheduler.step(current)
                    else:
                        self.scheduler.step()
                improved = (current > best + min_delta) if higher else (current < best - min_delta)
                if improved or history.best_epoch is None:
                    best = current
                    history.best_epoch = epoch
                cbs.on_epoch_end(epoch, dict(logs))
                if ckdir is not None and writer:
                    self._checkpoint(
                        os.path.join(ckdir, "last.ckpt"), epoch + 1, best, cbs, history, fingerprint
                    )
                if self.stop_training:
                    if history.stopped_epoch is None:
                        history.stopped_epoch = epoch
                    break
            cbs.on_train_end({})
        return history

    def note(self, text: str) -> None:
        """Print a message the way progress is shown (nothing with ``verbose=0``)."""
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.note(text)

    def _unbatch(self, item: Any) -> tuple[Any, Any, Any]:
        """``(x, y)`` or ``(x, y, sample_weight)`` from a loader; ``x`` may be a tuple."""
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise TypeError(
                "fit: each batch from the loader must be (x, y) or (x, y, sample_weight), "
                f"got a {type(item).__name__}"
                + (f" of {len(item)} items" if isinstance(item, (tuple, list)) else "")
            )
        xb = tuple(item[0]) if isinstance(item[0], list) and _is_multi(item[0]) else item[0]
        return xb, item[1], (item[2] if len(item) == 3 else None)

    def _array_batches(
        self,
        X: Any,
        y: numpy.ndarray,
        w: numpy.ndarray | None,
        epoch: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ) -> tuple[Iterator[tuple[Any, Any, Any]], int]:
        rng = numpy.random.default_rng((seed, epoch))
        n = _count(X)
        n_batches = n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)
        source = (
            (_take(X, idx), y[idx], None if w is None else w[idx])
            for idx in batches(n, batch_size, shuffle, rng, drop_last)
        )
        return source, n_batches

    def _train_epoch(
        self,
        source: Any,
        n_batches: int | None,
        epoch: int,
        epochs: int,
        bar: _Progress,
        cbs: CallbackList | None = None,
    ) -> dict[str, float]:
        model, opt = self.model, self.optimizer
        model.train()
        bar.start(epoch, epochs, n_batches)
        total, seen = 0.0, 0
        outs: list[tuple[numpy.ndarray, numpy.ndarray]] = []
        params = [p for g in opt.param_groups for p in g["params"]]
        cbs = cbs or CallbackList()
        for b, (xb, yb, wb) in enumerate(source):
            xb = self._inputs(xb)
            yb = self._targets(numpy.asarray(_values(yb)))
            size = len(yb)
            if _count(xb) != size:
                raise ValueError(f"fit: batch {b + 1} has {_count(xb)} inputs but {size} targets")
            if wb is not None:
                wb = self._weights(wb, None, yb)
            cbs.on_batch_begin(b, {"size": size})
            opt.zero_grad()
            dist = getattr(self, "_dist", None)
            if dist is not None:  # this process's part of the batch, its loss scaled by share
                mine = dist.shard(size)
                share = len(mine) / size if wb is None else float(wb[mine].sum() / wb.sum())
                xb, yb_all, yb = _take(xb, mine), yb, yb[mine]
                wb = None if wb is None else wb[mine]
            out = _apply(model, xb)
            loss = self._loss(out, yb, wb) if len(yb) else None
            if dist is not None:
                loss = 0.0 * sum(p.sum() for p in params) if loss is None else loss * share
            if not (isinstance(loss, cr.Tensor) and loss.requires_grad):
                raise RuntimeError(
                    "fit: the loss does not depend on any trainable parameter "
                    "(is the model's output computed from its parameters?)"
                )
            value = float(loss)
            if dist is not None:  # the whole batch's loss, the same on every process
                value = float(dist._comm().allreduce(value))
            if not math.isfinite(value):
                bar.end({"loss": value})
                raise FloatingPointError(
                    f"fit: the loss became {value} at epoch {epoch + 1}, "
                    f"batch {b + 1}; lower the learning rate or clip the "
                    "gradients (clip_grad_norm=...)"
                )
            loss.backward()
            if dist is not None:
                dist.allreduce_gradients(params)
            if self.clip_grad_norm is not None:
                optim.clip_grad_norm_(params, self.clip_grad_norm)
            opt.step()
            if self.scheduler is not None and self.scheduler_interval == "batch":
                self.scheduler.step()
            total += value * size
            seen += size
            cbs.on_batch_end(b, {"loss": value, "size": size})
            if self.metrics:
                if dist is not None:  # every process scores the whole batch
                    parts = dist._comm().allgather(numpy.asarray(_values(out)))
                    outs.append((numpy.concatenate(parts), yb_all))
                else:
                    outs.append((_values(out), yb))
            bar.batch(total / seen)
        if seen == 0:
            raise ValueError(f"fit: epoch {epoch + 1} had no batches (an empty loader?)")
        logs = {"loss": total / seen}
        if self.metrics and outs:
            pred = numpy.concatenate([o for o, _ in outs])
            logs.update(self._scores(pred, numpy.concatenate([t for _, t in outs])))
        return logs

    def _evaluate_prepared(self, X: numpy.ndarray, y: numpy.ndarray) -> dict[str, float]:
        pred = self.predict(X)
        with cr.no_grad():
            loss = float(_values(self._loss(pred, y)))
        return {"loss": loss, **self._scores(pred, y)}

    # --- checkpoints ------------------------------------------------------------------------

    def _checkpoint(
        self,
        path: str,
        epochs_done: int,
        best: float,
        cbs: CallbackList,
        history: History,
        fingerprint: dict[str, Any],
    ) -> None:
        gens = {k: g.bit_generator.state for k, g in _generators(self.model).items()}
        save(
            {
                "format": "chainrule.fit",
                "epochs_done": epochs_done,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "best": float(best),
                "callbacks": cbs.state_dict(),
                "history": json.dumps(history.to_dict()),
                "generators": json.dumps(gens),
                "fit": fingerprint,
            },
            path,
        )

    def _restore(
        self, path: str, fingerprint: dict[str, Any], cbs: CallbackList
    ) -> tuple[int, float, History]:
        state = load(path)
        if not isinstance(state, dict) or state.get("format") != "chainrule.fit":
            raise ValueError(f"{path}: not a training checkpoint written by fit()")
        if "callbacks" not in state:
            raise ValueError(
                f"{path}: written by an older chainrule whose early-stopping state cannot be "
                "resumed; start a new run (or use a new checkpoint_dir)"
            )
        saved = state["fit"]
        diff = [k for k in fingerprint if saved.get(k) != fingerprint[k]]
        if diff:
            raise ValueError(
                f"{path}: cannot resume: the run was started with "
                + ", ".join(f"{k}={saved.get(k)!r}" for k in diff)
                + " but now "
                + ", ".join(f"{k}={fingerprint[k]!r}" for k in diff)
                + "; use the same data and settings, or a new checkpoint_dir"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        gens = _generators(self.model)
        for k, s in json.loads(state["generators"]).items():
            if k in gens:
                gens[k].bit_generator.state = s
        cbs.load_state_dict(state["callbacks"])
        history = History.from_dict(json.loads(state["history"]))
        return int(state["epochs_done"]), float(state["best"]), history


def fit(
    model: nn.Module,
    X: Any,
    y: Any = None,
    *,
    loss: Any = None,
    optimizer: Any = None,
    lr: float | None = None,
    metrics: Any = None,
    scheduler: Any = None,
    clip_grad_norm: float | None = None,
    **kwargs: Any,
) -> History:
    """Train ``model`` on ``X, y`` with mini-batches; return the :class:`History`.

    ``loss``, ``optimizer``, ``lr``, ``metrics``, ``scheduler`` and ``clip_grad_norm`` are
    :class:`Trainer`'s; every other keyword (``epochs``, ``batch_size``, ``validation_data``,
    ``validation_split``, ``early_stopping``, ``seed``, ``checkpoint_dir``, ``resume``,
    ``progress``, …) is :meth:`Trainer.fit`'s.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> from chainrule.train.trainer import fit
    >>> X = numpy.linspace(-1, 1, 50).reshape(-1, 1); y = 2 * X[:, 0] + 1
    >>> h = fit(nn.Linear(1, 1, rng=0), X, y, loss="mse", optimizer="sgd", lr=0.2,
    ...         epochs=40, batch_size=10, progress=None)
    >>> h["loss"][-1] < 1e-6
    True
    """
    trainer = Trainer(
        model,
        loss=loss,
        optimizer=optimizer,
        lr=lr,
        metrics=metrics,
        scheduler=scheduler,
        clip_grad_norm=clip_grad_norm,
    )
    return trainer.fit(X, y, **kwargs)
