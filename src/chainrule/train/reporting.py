"""What ``fit`` shows and keeps: :class:`History` (with its plot, and its Jupyter displays),
the progress bars and lines, and :func:`blas_threads`.

Example
-------
>>> from chainrule.train.reporting import History
>>> h = History(); h.append(0, {"loss": 1.0})
>>> h
History(epochs=1, loss=1)
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["History", "blas_threads"]


# --- history -------------------------------------------------------------------------------


class History:
    """Per-epoch logs of a :func:`fit` run (Keras-style).

    ``history`` maps each name (``'loss'``, ``'accuracy'``, ``'val_loss'``, ``'lr'``, …) to a
    list with one value per epoch; ``epoch`` lists the epoch indices (0-based);
    ``best_epoch`` is the epoch with the best monitored value, ``stopped_epoch`` the epoch at
    which early stopping ended the run (None if it did not).

    Example
    -------
    >>> from chainrule.train.trainer import History
    >>> h = History(); h.append(0, {"loss": 0.5}); h.append(1, {"loss": 0.25})
    >>> h["loss"], h.epoch
    ([0.5, 0.25], [0, 1])
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.monitor: str | None = None
        self.params: dict[str, Any] = {}

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(int(epoch))
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (also what checkpoints store)."""
        return {
            "history": {k: list(v) for k, v in self.history.items()},
            "epoch": list(self.epoch),
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "monitor": self.monitor,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        h = cls()
        h.history = {k: [float(x) for x in v] for k, v in d["history"].items()}
        h.epoch = [int(e) for e in d["epoch"]]
        h.best_epoch, h.stopped_epoch = d.get("best_epoch"), d.get("stopped_epoch")
        h.monitor = d.get("monitor")
        h.params = dict(d.get("params") or {})
        return h

    def plot(self, path: str | os.PathLike[str] | None = None, title: str | None = None) -> Any:
        """Draw the loss and metric curves (train and validation); save to ``path`` if given.

        Needs matplotlib (``pip install chainrule[train]``); uses the Agg canvas directly, so
        no display and no global pyplot state.  Returns the matplotlib ``Figure``.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib: pip install chainrule[train]"
            ) from None
        names = [k for k in self.history if not k.startswith("val_") and k != "lr"]
        panels = [n for n in names if n == "loss"] + [n for n in names if n != "loss"][:2]
        fig = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        epochs = [e + 1 for e in self.epoch]
        for i, name in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            ax.plot(epochs, self.history[name], marker=".", label=f"train {name}")
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], marker=".", label=f"validation {name}")
            if self.best_epoch is not None and (self.monitor or "").startswith("val_"):
                ax.axvline(
                    self.best_epoch + 1,
                    color="grey",
                    linestyle=":",
                    linewidth=1,
                    label="best epoch",
                )
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            if name == "loss" and min(self.history[name]) > 0:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        if path is not None:
            fig.savefig(os.fspath(path), dpi=110)
        # Jupyter shows the figure inline, without %matplotlib inline or pyplot's global state
        fig._repr_png_ = lambda: _png(fig)  # type: ignore[attr-defined]
        return fig

    def _repr_png_(self) -> bytes | None:
        """The curves as PNG for Jupyter (None without matplotlib or epochs)."""
        if not self.epoch:
            return None
        try:
            return _png(self.plot())
        except ImportError:
            return None

    def _repr_html_(self) -> str:
        """A table of the last epoch's values (and the best epoch's) for Jupyter."""
        if not self.epoch:
            return "<p>History (no epochs)</p>"
        names = list(self.history)
        rows = [("last", len(self.epoch) - 1)]
        if self.best_epoch is not None and self.best_epoch in self.epoch:
            rows.append((f"best ({self.monitor})", self.epoch.index(self.best_epoch)))
        head = "".join(f"<th>{n}</th>" for n in names)
        body = "".join(
            f"<tr><td>{label}</td><td>{self.epoch[i] + 1}</td>"
            + "".join(f"<td>{self.history[n][i]:.4g}</td>" for n in names)
            + "</tr>"
            for label, i in rows
        )
        note = (
            f"<p>stopped early after epoch {self.stopped_epoch + 1}</p>"
            if self.stopped_epoch is not None
            else ""
        )
        return f"<table><tr><th></th><th>epoch</th>{head}</tr>{body}</table>{note}"

    def __repr__(self) -> str:
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v)
        return f"History(epochs={len(self.epoch)}{', ' + last if last else ''})"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


# --- progress ------------------------------------------------------------------------------


def _fmt(logs: dict[str, float]) -> str:
    return " - ".join(f"{k} {v:.4g}" if k == "lr" else f"{k} {v:.4f}" for k, v in logs.items())


class _Progress:
    """tqdm bars when installed (``'tqdm'``), one line per epoch (``'plain'``), or silence."""

    def __init__(self, mode: Any, file: Any) -> None:
        if mode in (None, False, "none", 0):
            self.mode = "none"
        elif mode in ("auto", True, 1):
            try:
                import tqdm  # type: ignore[import-untyped]  # noqa: F401

                self.mode = "tqdm"
            except ImportError:
                self.mode = "plain"
        elif mode in ("tqdm", "plain"):
            self.mode = mode
        else:
            raise ValueError(f"progress must be 'auto', 'tqdm', 'plain' or None, got {mode!r}")
        self.file = file
        self.bar: Any = None

    def start(self, epoch: int, epochs: int, n_batches: int | None) -> None:
        self.t0 = time.perf_counter()
        self.desc = f"Epoch {epoch + 1}/{epochs}"
        if self.mode == "tqdm":
            # notebook widgets need ipywidgets; without it tqdm.auto warns "IProgress not found"
            if importlib.util.find_spec("ipywidgets") is not None:
                from tqdm.auto import tqdm as bar  # type: ignore[import-untyped]
            else:
                from tqdm import tqdm as bar
            self.bar = bar(
                total=n_batches,
                desc=self.desc,
                unit="batch",
                leave=True,
                file=self.file or sys.stderr,
                dynamic_ncols=True,
            )

    def batch(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)

    def end(self, logs: dict[str, float]) -> None:
        shown = {k: v for k, v in logs.items() if k != "lr"}
        if self.bar is not None:
            self.bar.set_postfix_str(_fmt(shown), refresh=True)
            self.bar.close()
            self.bar = None
        elif self.mode == "plain":
            dt = time.perf_counter() - self.t0
            print(
                f"{self.desc}: {_fmt(shown)} ({dt:.1f}s)", file=self.file or sys.stdout, flush=True
            )

    def note(self, text: str) -> None:
        if self.mode != "none":
            print(
                text,
                file=self.file or (sys.stderr if self.mode == "tqdm" else sys.stdout),
                flush=True,
            )


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit the BLAS thread pool to ``n`` threads inside the block (needs threadpoolctl,
    which scikit-learn installs; without it, or with ``n=None``, nothing changes).

    Mini-batch matrices are small, and on a small or busy machine a multithreaded BLAS can be
    many times slower than one thread on them.

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.trainer import blas_threads
    >>> with blas_threads(1):
    ...     float((numpy.ones((2, 2)) @ numpy.ones(2)).sum())
    4.0
    """
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield
