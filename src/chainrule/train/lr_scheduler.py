"""PyTorch's ``torch.optim.lr_scheduler`` namespace: every schedule, with PyTorch's names.

The closed-form schedules live in :mod:`chainrule.train.optim`; this module adds
:class:`ReduceLROnPlateau` (driven by a metric) and :class:`OneCycleLR` (stepped once per
mini-batch) and gathers them all, so ``optim.lr_scheduler.StepLR`` works as in PyTorch.

Example
-------
>>> import chainrule as cr
>>> from chainrule import optim
>>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
>>> sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
>>> for val_loss in [1.0, 0.9, 0.95, 0.97, 0.99]:
...     sched.step(val_loss)
>>> sched.get_last_lr()      # 0.95, 0.97: two epochs without improvement > patience: halved
[0.5]
"""

from __future__ import annotations

import math
from typing import Any

from .optim import (
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LinearWarmup,
    LRScheduler,
    MultiStepLR,
    Optimizer,
    StepLR,
)

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "LambdaLR",
    "LinearWarmup",
    "ReduceLROnPlateau",
    "OneCycleLR",
]


class ReduceLROnPlateau:
    """Multiply the rate by ``factor`` when a metric stops improving (PyTorch's rule).

    ``step(metric)`` once per epoch.  The metric improves when it beats the best value by
    ``threshold`` (``threshold_mode='rel'``: ``best * (1 - threshold)`` for ``mode='min'``,
    ``best * (1 + threshold)`` for ``'max'``; ``'abs'``: ``best -/+ threshold``).  After more
    than ``patience`` epochs without improvement each group's rate becomes ``max(lr * factor,
    min_lr)`` (a change smaller than ``eps`` is skipped), followed by ``cooldown`` epochs in
    which bad epochs are not counted.  ``fit`` steps it with its monitored value
    (``val_loss``, else ``loss``).

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> s = optim.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, min_lr=0.05)
    >>> for acc in [0.5, 0.4, 0.3]:
    ...     s.step(acc)
    >>> opt.param_groups[0]["lr"]
    0.05
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"ReduceLROnPlateau: expected an Optimizer, got {type(optimizer).__name__}"
            )
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau: factor should be < 1.0")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode {mode!r} is unknown; use 'min' or 'max'")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"ReduceLROnPlateau: threshold_mode {threshold_mode!r} is unknown; "
                "use 'rel' or 'abs'"
            )
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"ReduceLROnPlateau: expected {n} min_lrs, got {len(min_lr)}")
            self.min_lrs = [float(m) for m in min_lr]
        else:
            self.min_lrs = [float(min_lr)] * n
        self.mode, self.factor, self.patience = mode, float(factor), int(patience)
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.eps = int(cooldown), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [float(g["lr"]) for g in optimizer.param_groups]

    def is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` improves on ``best`` by the threshold."""
        if self.mode == "min":
            edge = (
                best * (1 - self.threshold)
                if self.threshold_mode == "rel"
                else best - self.threshold
            )
            return current < edge
        edge = (
            best * (1 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold
        )
        return current > edge

    def step(self, metrics: Any) -> None:
        """Record this epoch's metric and reduce the rates if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, lo in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(g["lr"])
                new = max(old * self.factor, lo)
                if old - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates after the last ``step``."""
        return list(self._last_lr)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""
        for k, v in state_dict.items():
            self.__dict__[k] = list(v) if isinstance(v, tuple) else v


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), stepped after every mini-batch (PyTorch's rule).

    The rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps`` (or ``epochs * steps_per_epoch``), then falls to ``initial_lr /
    final_div_factor`` (``anneal_strategy`` ``'cos'`` or ``'linear'``; ``three_phase`` adds a
    symmetric descent to the initial rate before the final fall).  With ``cycle_momentum`` the
    momentum (SGD's ``momentum``, Adam's first beta) moves the opposite way between
    ``max_momentum`` and ``base_momentum``.  As in PyTorch, ``step()`` may be called
    ``total_steps`` times after construction; one more raises.  ``fit`` steps it once per
    mini-batch.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    >>> s = optim.OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="linear")
    >>> lrs = [opt.param_groups[0]["lr"]]
    >>> for _ in range(9):
    ...     s.step(); lrs.append(opt.param_groups[0]["lr"])
    >>> [round(x, 4) for x in lrs[:4]], round(lrs[-1], 8)    # up for 3 steps, then down
    ([0.04, 0.52, 1.0, 0.8571], 4e-06)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: expected an Optimizer, got {type(optimizer).__name__}")
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(
                    "OneCycleLR: give total_steps, or epochs and steps_per_epoch "
                    "(batches per epoch: ceil(n_samples / batch_size))"
                )
            if epochs <= 0 or steps_per_epoch <= 0:
                raise ValueError("OneCycleLR: epochs and steps_per_epoch must be positive")
            total_steps = int(epochs) * int(steps_per_epoch)
        if total_steps <= 0:
            raise ValueError(f"OneCycleLR: total_steps must be positive, got {total_steps}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
            )
        self.total_steps = int(total_steps)
        self.anneal_strategy = anneal_strategy
        groups = optimizer.param_groups
        maxes = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(maxes) != len(groups):
            raise ValueError(f"OneCycleLR: expected {len(groups)} max_lr values, got {len(maxes)}")
        if last_epoch == -1:
            for g, m in zip(groups, maxes):
                g["initial_lr"] = float(m) / div_factor
                g["max_lr"] = float(m)
                g["min_lr"] = g["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        self._beta = False
        if cycle_momentum:
            if "momentum" in optimizer.defaults:
                self._beta = False
            elif "betas" in optimizer.defaults:
                self._beta = True
            else:
                raise ValueError(
                    f"OneCycleLR: {type(optimizer).__name__} has neither momentum nor betas; "
                    "pass cycle_momentum=False"
                )
            if last_epoch == -1:
                for g in groups:
                    g["max_momentum"], g["base_momentum"] = max_momentum, base_momentum
        p1 = float(pct_start * self.total_steps) - 1
        if three_phase:
            p2 = float(2 * pct_start * self.total_steps) - 2
            self.phases = [
                (p1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (p2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self.phases = [
                (p1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _at(self, group: dict[str, Any], step: int) -> tuple[float, float | None]:
        start_step = 0.0
        for i, (end_step, lr0, lr1, m0, m1) in enumerate(self.phases):
            if step <= end_step or i == len(self.phases) - 1:
                pct = (
                    (step - start_step) / (end_step - start_step) if end_step != start_step else 1.0
                )
                lr = self._anneal(group[lr0], group[lr1], pct)
                mom = self._anneal(group[m0], group[m1], pct) if self.cycle_momentum else None
                return lr, mom
            start_step = end_step
        raise AssertionError("unreachable")

    def lr_at(self, epoch: int) -> list[float]:
        return [self._at(g, epoch)[0] for g in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one mini-batch; past ``total_steps`` this raises ``ValueError``."""
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {self.last_epoch + 1} times; total_steps is "
                f"{self.total_steps} (one step per mini-batch: give epochs and steps_per_epoch "
                "to match the training run)"
            )
        super().step()
        if self.cycle_momentum:
            for g in self.optimizer.param_groups:
                mom = self._at(g, self.last_epoch)[1]
                if self._beta:
                    g["betas"] = (mom, *tuple(g["betas"])[1:])
                else:
                    g["momentum"] = mom

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["phases"] = [list(p) for p in self.phases]
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.phases = [(float(p[0]), *map(str, p[1:])) for p in self.phases]  # type: ignore[misc]
