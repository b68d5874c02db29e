"""Callbacks for :func:`chainrule.fit` / ``Trainer.fit`` (Keras' names and hook order).

A callback subclasses :class:`Callback` and overrides any of ``on_train_begin(logs)``,
``on_epoch_begin(epoch, logs)``, ``on_batch_begin(batch, logs)``, ``on_batch_end(batch,
logs)``, ``on_epoch_end(epoch, logs)`` and ``on_train_end(logs)``.  ``self.trainer`` is the
running :class:`~chainrule.train.trainer.Trainer` (``self.trainer.model``,
``self.trainer.optimizer``, ``self.trainer.history``); setting ``self.trainer.stop_training =
True`` ends the run after the current epoch.  Epoch logs hold ``loss``, the metrics, their
``val_*`` counterparts and ``lr``; batch logs hold ``loss`` and ``size``.

Early stopping, best-model checkpoints and the loggers are callbacks; ``fit(early_stopping=N)``
and ``fit(checkpoint_dir=...)`` build the first two for you.  A callback that keeps state
across epochs gives it in ``state_dict()`` so that ``fit(resume=True)`` restores it.

Example
-------
>>> import numpy
>>> from chainrule import nn, fit
>>> from chainrule.train.callbacks import Callback
>>> class CountBatches(Callback):
...     def on_train_begin(self, logs=None):
...         self.n = 0
...     def on_batch_end(self, batch, logs=None):
...         self.n += 1
>>> X = numpy.zeros((10, 2)); y = numpy.array([0, 1] * 5)
>>> counter = CountBatches()
>>> _ = fit(nn.Linear(2, 2, rng=0), X, y, epochs=3, batch_size=4, callbacks=[counter],
...         verbose=0)
>>> counter.n                        # 3 batches (4 + 4 + 2 samples) in each of 3 epochs
9
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy

from .checkpoint import save

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "ModelCheckpoint",
    "CSVLogger",
    "TensorBoard",
    "LambdaCallback",
]

_HIGHER_IS_BETTER = {"accuracy", "acc", "r2"}


def _higher_is_better(monitor: str, mode: str) -> bool:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode == "max"
    base = monitor[4:] if monitor.startswith("val_") else monitor
    return base in _HIGHER_IS_BETTER


class Callback:
    """Base class: every hook does nothing; ``self.trainer`` is set when training starts.

    Example
    -------
    >>> from chainrule.train.callbacks import Callback
    >>> Callback().on_epoch_end(0, {"loss": 1.0}) is None
    True
    """

    trainer: Any = None

    def set_trainer(self, trainer: Any) -> None:
        """Called by ``fit`` before ``on_train_begin``."""
        self.trainer = trainer

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        """After the last epoch (also after early stopping)."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Before epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """After epoch ``epoch``: ``logs`` has the epoch's training and validation values."""

    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        """Before mini-batch ``batch`` (0-based within the epoch)."""

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        """After the optimizer step of mini-batch ``batch``; ``logs``: ``loss``, ``size``."""

    def state_dict(self) -> dict[str, Any]:
        """State to store in ``last.ckpt`` for ``resume=True`` (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Example
    -------
    >>> from chainrule.train.callbacks import LambdaCallback
    >>> seen = []
    >>> cb = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> cb.on_epoch_end(3, {}); seen
    [3]
    """

    _HOOKS = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_batch_begin",
        "on_batch_end",
    )

    def __init__(self, **hooks: Any) -> None:
        unknown = set(hooks) - set(self._HOOKS)
        if unknown:
            raise TypeError(
                f"LambdaCallback: unknown hook(s) {sorted(unknown)}; valid: {list(self._HOOKS)}"
            )
        for name, fn in hooks.items():
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable")
            setattr(self, name, fn)


class CallbackList:
    """Calls each hook on every callback in order (used by ``fit``).

    Example
    -------
    >>> from chainrule.train.callbacks import CallbackList, LambdaCallback
    >>> out = []
    >>> cbs = CallbackList([LambdaCallback(on_train_begin=lambda logs: out.append("a")),
    ...                     LambdaCallback(on_train_begin=lambda logs: out.append("b"))])
    >>> cbs.on_train_begin(); out
    ['a', 'b']
    """

    def __init__(self, callbacks: Any = None) -> None:
        callbacks = [] if callbacks is None else list(callbacks)
        for i, c in enumerate(callbacks):
            if not isinstance(c, Callback):
                raise TypeError(
                    f"callbacks[{i}] is a {type(c).__name__}, not a "
                    "chainrule.train.callbacks.Callback"
                )
        self.callbacks: list[Callback] = callbacks

    def set_trainer(self, trainer: Any) -> None:
        for c in self.callbacks:
            c.set_trainer(trainer)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        for c in self.callbacks:
            c.on_train_begin(logs)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        for c in self.callbacks:
            c.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for c in self.callbacks:
            c.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        for c in self.callbacks:
            c.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        for c in self.callbacks:
            c.on_batch_end(batch, logs)

    def state_dict(self) -> dict[str, Any]:
        """Each callback's state under its position and class name."""
        return {f"{i}:{type(c).__name__}": c.state_dict() for i, c in enumerate(self.callbacks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, c in enumerate(self.callbacks):
            key = f"{i}:{type(c).__name__}"
            if key in state:
                c.load_state_dict(state[key])


def _monitored(name: str, monitor: str, logs: dict[str, float] | None) -> float:
    if not logs or monitor not in logs:
        raise ValueError(
            f"{name}: cannot monitor {monitor!r}; the epoch logs have "
            f"{', '.join(sorted(logs or {}))}"
            + ("" if monitor[:4] != "val_" else " (val_* needs validation data)")
        )
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' ``EarlyStopping``).

    An improvement is a change of more than ``min_delta`` in the right direction (``mode``:
    ``'min'``, ``'max'``, or ``'auto'``: max for accuracy and r2, min otherwise).  With
    ``restore_best_weights`` the model gets the best epoch's weights back when training ends.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn, fit
    >>> from chainrule.train.callbacks import EarlyStopping
    >>> X = numpy.zeros((8, 1)); y = numpy.zeros(8)   # nothing to learn after epoch 1
    >>> h = fit(nn.Linear(1, 1, rng=0), X, y, loss="mse", optimizer="sgd", lr=1.0,
    ...         epochs=50, callbacks=[EarlyStopping(monitor="loss", patience=2)], verbose=0)
    >>> h.stopped_epoch is not None and len(h) < 50
    True
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(float(min_delta))
        self.higher = _higher_is_better(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best = -math.inf if self.higher else math.inf
        self.wait = 0
        self.best_epoch: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.stopped_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        pass  # state carries over on resume; a fresh callback starts fresh

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        current = _monitored("EarlyStopping", self.monitor, logs)
        if self.higher:
            improved = current > self.best + self.min_delta
        else:
            improved = current < self.best - self.min_delta
        if improved or self.best_epoch is None:
            self.best, self.wait, self.best_epoch = current, 0, epoch
            if self.restore_best_weights:
                self.best_state = self.trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            self.trainer.history.stopped_epoch = epoch
            self.trainer.note(
                f"early stopping: no improvement of {self.monitor} for {self.patience} "
                f"epochs; best epoch {self.best_epoch + 1} ({self.monitor} {self.best:.4f})"
            )

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.restore_best_weights and self.best_state is not None:
            self.trainer.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": float(self.best),
            "wait": int(self.wait),
            "best_epoch": -1 if self.best_epoch is None else int(self.best_epoch),
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch = None if int(state["best_epoch"]) < 0 else int(state["best_epoch"])
        self.best_state = state.get("best_state")


class ModelCheckpoint(Callback):
    """Save the model's ``state_dict`` to ``filepath`` after each epoch (Keras' callback).

    ``filepath`` may hold ``{epoch}`` (1-based) and any log name as format fields
    (``'ckpt/{epoch:02d}-{val_loss:.3f}.ckpt'``).  With ``save_best_only`` it is written only
    when ``monitor`` improves (``mode`` as :class:`EarlyStopping`).  The file is a chainrule
    checkpoint (:func:`chainrule.load`) of ``{'format': 'chainrule.fit.best', 'epoch': ...,
    'model': state_dict, monitor: value}``; load it with
    ``model.load_state_dict(chainrule.load(path)['model'])``.

    Example
    -------
    >>> import numpy, os, tempfile, chainrule as cr
    >>> from chainrule import nn, fit
    >>> from chainrule.train.callbacks import ModelCheckpoint
    >>> d = tempfile.mkdtemp()
    >>> X = numpy.linspace(-1, 1, 20).reshape(-1, 1); y = 2 * X[:, 0]
    >>> cb = ModelCheckpoint(os.path.join(d, "best.ckpt"), monitor="loss", save_best_only=True)
    >>> _ = fit(nn.Linear(1, 1, rng=0), X, y, loss="mse", epochs=3, callbacks=[cb], verbose=0)
    >>> sorted(cr.load(os.path.join(d, "best.ckpt"))["model"])
    ['bias', 'weight']
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ) -> None:
        self.filepath = os.fspath(filepath)
        self.monitor, self.save_best_only = monitor, save_best_only
        self.higher = _higher_is_better(monitor, mode)
        self.best = -math.inf if self.higher else math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            current = _monitored("ModelCheckpoint", self.monitor, logs)
            better = current > self.best if self.higher else current < self.best
            if not better:
                return
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise ValueError(
                f"ModelCheckpoint: filepath {self.filepath!r} names {e}, which is not in the "
                f"epoch logs ({', '.join(sorted(logs))}) nor 'epoch'"
            ) from None
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        state: dict[str, Any] = {
            "format": "chainrule.fit.best",
            "epoch": epoch,
            "model": self.trainer.model.state_dict(),
        }
        if self.monitor in logs:
            state[self.monitor] = float(logs[self.monitor])
        save(state, path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": float(self.best)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` (0-based) and every log (Keras' ``CSVLogger``).

    The columns are ``epoch`` then the log names in sorted order; ``append=True`` continues an
    existing file (a resumed run) instead of overwriting it.  Each row is written and closed at
    the end of its epoch, so the file can be watched while training runs.

    Example
    -------
    >>> import numpy, os, tempfile
    >>> from chainrule import nn, fit
    >>> from chainrule.train.callbacks import CSVLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> X = numpy.zeros((4, 2)); y = numpy.array([0, 1, 0, 1])
    >>> _ = fit(nn.Linear(2, 2, rng=0), X, y, epochs=2, callbacks=[CSVLogger(path)], verbose=0)
    >>> with open(path) as f:
    ...     lines = f.read().splitlines()
    >>> len(lines), lines[0]               # a header, then one row per epoch
    (3, 'epoch,accuracy,loss,lr')
    """

    def __init__(
        self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False
    ) -> None:
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._keys = None
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = f.readline().strip()
            if header:
                self._keys = header.split(self.sep)[1:]
        else:
            with open(self.filename, "w", newline=""):
                pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = dict(logs or {})
        # opened per row: the file is complete on disk after every epoch, even if training
        # then fails, and no handle is left open
        with open(self.filename, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.sep)
            if self._keys is None:
                self._keys = sorted(logs)
                writer.writerow(["epoch", *self._keys])
            writer.writerow([epoch, *(logs.get(k, "NA") for k in self._keys)])


class TensorBoard(Callback):
    """Write scalar event files for TensorBoard: every epoch log, and the batch loss with
    ``update_freq='batch'`` (needs ``tensorboardX``: ``pip install chainrule[tensorboard]``).

    Training values go to ``log_dir/train`` and validation values (``val_*``, without the
    prefix) to ``log_dir/validation``, under ``epoch_<name>`` tags, as Keras does, so the two
    curves share one chart.  ``tensorboard --logdir <log_dir>`` shows them.

    Example
    -------
    >>> from chainrule.train.callbacks import TensorBoard
    >>> TensorBoard("runs/exp1").log_dir
    'runs/exp1'
    """

    def __init__(
        self, log_dir: str | os.PathLike[str] = "logs", update_freq: str = "epoch"
    ) -> None:
        if update_freq not in ("epoch", "batch"):
            raise ValueError(
                f"TensorBoard: update_freq must be 'epoch' or 'batch', got {update_freq!r}"
            )
        self.log_dir, self.update_freq = os.fspath(log_dir), update_freq
        self._writers: dict[str, Any] = {}
        self._step = 0

    @staticmethod
    def _writer_class() -> Any:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError(
                "the TensorBoard callback writes event files with tensorboardX, which is not "
                "installed: pip install tensorboardX (or chainrule[tensorboard]); or log with "
                "CSVLogger instead"
            ) from None
        return SummaryWriter

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        cls = self._writer_class()
        self._writers = {
            "train": cls(os.path.join(self.log_dir, "train")),
            "validation": cls(os.path.join(self.log_dir, "validation")),
        }

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self._step += 1
        if self.update_freq == "batch" and logs and "loss" in logs and self._writers:
            self._writers["train"].add_scalar("batch_loss", float(logs["loss"]), self._step)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for k, v in (logs or {}).items():
            if not numpy.isfinite(v):
                continue
            which, name = ("validation", k[4:]) if k.startswith("val_") else ("train", k)
            self._writers[which].add_scalar(f"epoch_{name}", float(v), epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        for w in self._writers.values():
            w.close()
        self._writers = {}

    def state_dict(self) -> dict[str, Any]:
        return {"step": int(self._step)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._step = int(state["step"])
