"""Optimizers, gradient clipping and learning-rate schedules (PyTorch's ``torch.optim``).

Each optimizer takes an iterable of parameters (chainrule tensors, e.g. ``model.parameters()``)
or a list of parameter-group dicts with their own options, reads each parameter's ``.grad``
and updates ``param.data`` outside the graph.  As in PyTorch, a parameter without a gradient
is skipped: a frozen one (``requires_grad=False``, e.g. after ``layer.requires_grad_(False)``)
or one the loss did not reach keeps its values and its optimizer state.  Update rules,
defaults and ``state_dict`` layout follow PyTorch; each class's docstring gives its rule.

Example
-------
>>> import numpy, chainrule as cr
>>> from chainrule import optim
>>> w = cr.tensor([1.0, -2.0], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.1)
>>> (w ** 2).sum().backward()           # grad = 2 w = [2, -4]
>>> opt.step()
>>> w.data                               # w - 0.1 * grad
array([ 0.8, -1.6])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy

import chainrule as cr

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "clip_grad_norm_",
    "clip_grad_value_",
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "LambdaLR",
    "LinearWarmup",
    "get_optimizer",
]


def _grad_array(p: cr.Tensor) -> numpy.ndarray | None:
    """``p.grad`` as a NumPy array (None when there is none)."""
    g = p.grad
    if g is None:
        return None
    if isinstance(g, cr.Tensor):
        g = g.data
    return _arr(g)


def _arr(x: Any, dtype: Any = None) -> numpy.ndarray:
    """``x`` as an array of its own library: NumPy's, or CuPy's, Dask's, ... kept as they are
    (an optimizer never copies a parameter to the host)."""
    t = type(x)
    if t is not numpy.ndarray and hasattr(t, "__array_function__") and hasattr(x, "dtype"):
        if not isinstance(x, numpy.generic):
            return cast(numpy.ndarray, x if dtype is None or x.dtype == dtype else x.astype(dtype))
    return numpy.asarray(x, dtype=dtype)


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``.

    Subclasses define ``_update(x, grad, state, group)`` returning the new values of the
    parameter (``x``: its current values; ``state``: its mutable per-parameter dict).

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule import optim
    >>> class SignSGD(optim.Optimizer):
    ...     def __init__(self, params, lr=0.01):
    ...         super().__init__(params, {"lr": lr})
    ...     def _update(self, x, grad, state, group):
    ...         return x - group["lr"] * numpy.sign(grad)
    >>> w = cr.tensor([1.0, 1.0], requires_grad=True)
    >>> opt = SignSGD([w], lr=0.5)
    >>> w.grad = numpy.array([3.0, -0.1]); opt.step(); w.data
    array([0.5, 1.5])
    """

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[cr.Tensor, dict[str, Any]] = {}
        if isinstance(params, cr.Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of tensors "
                "(e.g. model.parameters() or [w]), got a single tensor"
            )
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(f"{type(self).__name__}: got a module; pass model.parameters()")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group ``{'params': [...], option: value, ...}``; missing options take the
        optimizer's defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, cr.Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, cr.Tensor):
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} is a "
                    f"{type(p).__name__}, not a chainrule tensor"
                )
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}: parameter {i} is not floating point")
            if id(p) in seen:
                raise ValueError(
                    f"{type(self).__name__}: some parameters appear in more than "
                    "one parameter group (or twice in one)"
                )
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; "
                f"valid: {sorted(self.defaults)}"
            )
        full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}}
        self._validate(full)
        full["params"] = params
        self.param_groups.append(full)

    def _validate(self, group: dict[str, Any]) -> None:
        lr = group.get("lr")
        if not isinstance(lr, (int, float)) or lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r}")
        wd = group.get("weight_decay", 0.0)
        if wd < 0:
            raise ValueError(f"{type(self).__name__}: invalid weight_decay {wd!r}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (``set_to_none=False`` fills zeros)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad = numpy.zeros_like(p.data)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()``'s loss if given.

        ``closure`` (optional) re-evaluates the model and calls ``backward()`` first.
        """
        loss = None
        if closure is not None:
            with cr.enable_grad():
                loss = closure()
        with cr.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    grad = _grad_array(p)
                    if grad is None:
                        continue
                    if group.get("maximize"):
                        grad = -grad
                    state = self.state.setdefault(p, {})
                    x = _arr(p.data)
                    new = self._update(x, grad, state, group)
                    p.data = _arr(new, x.dtype)
        return loss

    def _update(
        self, x: numpy.ndarray, grad: numpy.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> numpy.ndarray:
        raise NotImplementedError

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{options, 'params': [indices]}]}``.

        Parameters are numbered in group order, as in PyTorch; values are copies.
        """
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: (numpy.array(v, copy=True) if isinstance(v, numpy.ndarray) else v)
                        for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and per-parameter state saved by :meth:`state_dict`.

        Raises ``ValueError`` when the saved groups do not match this optimizer's parameters
        (number of groups, parameters per group, or state shapes).
        """
        name = type(self).__name__
        try:
            saved_groups = state_dict["param_groups"]
            saved_state = state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'"
            ) from None
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state has {len(saved_groups)} "
                f"parameter group(s), this optimizer {len(self.param_groups)}"
            )
        mapping = {}
        for i, (sg, g) in enumerate(zip(saved_groups, self.param_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has "
                    f"{len(sg['params'])} parameters in the state, "
                    f"{len(g['params'])} here"
                )
            for k, p in zip(sg["params"], g["params"]):
                mapping[int(k)] = p
        new_state: dict[cr.Tensor, dict[str, Any]] = {}
        for k, st in saved_state.items():
            p = mapping.get(int(k))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for unknown parameter {k}")
            entry = {}
            for key, v in st.items():
                if isinstance(v, numpy.ndarray) and v.ndim > 0:
                    if v.shape != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: state '{key}' of parameter "
                            f"{k} has shape {v.shape}, the parameter {p.shape}"
                        )
                    v = numpy.array(v, dtype=p.dtype, copy=True)
                elif isinstance(v, numpy.ndarray):
                    v = v.item()
                entry[key] = v
            new_state[p] = entry
        for sg, g in zip(saved_groups, self.param_groups):
            for k, v in sg.items():
                if k != "params":
                    g[k] = tuple(v) if isinstance(v, list) else v
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (PyTorch's rule).

    With ``g = grad + weight_decay * p``; if ``momentum``: ``b = g`` on the first step, then
    ``b = momentum * b + (1 - dampening) * g``, and ``g = g + momentum * b`` (nesterov) or
    ``g = b``; finally ``p = p - lr * g``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w * 3.0).sum().backward(); opt.step()
    >>> w.data          # 1 - 0.1*3 - 0.1*(0.9*3 + 3)
    array([0.13])
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
            ),
        )

    def _update(
        self, x: numpy.ndarray, grad: numpy.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> numpy.ndarray:
        g = grad + group["weight_decay"] * x if group["weight_decay"] else grad
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = _arr(g).copy()
            else:
                buf = mu * buf + (1 - group["dampening"]) * g
            state["momentum_buffer"] = buf
            g = g + mu * buf if group["nesterov"] else buf
        return _arr(x - group["lr"] * g)


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's form.

    ``t += 1``; ``g = grad + weight_decay * p``; ``m = b1 m + (1 - b1) g``;
    ``v = b2 v + (1 - b2) g**2``; ``p = p - lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t)
    + eps)`` (``amsgrad``: ``v`` replaced by its running maximum).

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = optim.Adam([w], lr=0.1)
    >>> (w * 5.0).sum().backward(); opt.step()
    >>> w.data.round(6)     # the first Adam step moves by ~lr whatever the gradient's size
    array([0.9])
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _check_adam(type(self).__name__, betas, eps)
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas),
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
                maximize=maximize,
            ),
        )

    _decoupled = False

    def _update(
        self, x: numpy.ndarray, grad: numpy.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> numpy.ndarray:
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = numpy.zeros_like(x)
            state["exp_avg_sq"] = numpy.zeros_like(x)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = numpy.zeros_like(x)
        if wd and self._decoupled:
            x = x * (1 - lr * wd)
        g = grad + wd * x if (wd and not self._decoupled) else grad
        state["step"] += 1
        t = state["step"]
        m = b1 * state["exp_avg"] + (1 - b1) * g
        v = b2 * state["exp_avg_sq"] + (1 - b2) * (g * g)
        state["exp_avg"], state["exp_avg_sq"] = m, v
        if group["amsgrad"]:
            v = numpy.maximum(state.get("max_exp_avg_sq", v), v)
            state["max_exp_avg_sq"] = v
        bc1 = 1 - b1**t
        bc2 = 1 - b2**t
        denom = numpy.sqrt(v) / math.sqrt(bc2) + eps
        return _arr(x - (lr / bc1) * m / denom)


def _check_adam(name: str, betas: Any, eps: float) -> None:
    if len(tuple(betas)) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
    if eps < 0:
        raise ValueError(f"{name}: invalid eps {eps}")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's form.

    First ``p = p * (1 - lr * weight_decay)``, then the :class:`Adam` step without weight
    decay in the gradient.  Default ``weight_decay=1e-2``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * 0.0).sum().backward(); opt.step()      # zero gradient: only the decay acts
    >>> w.data
    array([0.95])
    """

    _decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop, PyTorch's form.

    ``g = grad + weight_decay * p``; ``s = alpha s + (1 - alpha) g**2``; ``centered``:
    ``a = alpha a + (1 - alpha) g`` and ``d = sqrt(s - a**2) + eps``, else
    ``d = sqrt(s) + eps``; with ``momentum``: ``b = momentum b + g / d``, ``p = p - lr b``;
    else ``p = p - lr g / d``.  Default ``lr=1e-2``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = optim.RMSprop([w], lr=0.01)
    >>> (w * 2.0).sum().backward(); opt.step()    # 1 - 0.01 * 2 / sqrt(0.01 * 4)
    >>> w.data.round(8)
    array([0.9])
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"RMSprop: invalid alpha {alpha}")
        if momentum < 0 or eps < 0:
            raise ValueError("RMSprop: momentum and eps must be non-negative")
        super().__init__(
            params,
            dict(
                lr=lr,
                alpha=alpha,
                eps=eps,
                weight_decay=weight_decay,
                momentum=momentum,
                centered=centered,
                maximize=maximize,
            ),
        )

    def _update(
        self, x: numpy.ndarray, grad: numpy.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> numpy.ndarray:
        alpha, eps, wd, mu = group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = numpy.zeros_like(x)
            if mu > 0:
                state["momentum_buffer"] = numpy.zeros_like(x)
            if group["centered"]:
                state["grad_avg"] = numpy.zeros_like(x)
        state["step"] += 1
        g = grad + wd * x if wd else grad
        s = alpha * state["square_avg"] + (1 - alpha) * (g * g)
        state["square_avg"] = s
        if group["centered"]:
            a = alpha * state["grad_avg"] + (1 - alpha) * g
            state["grad_avg"] = a
            d = numpy.sqrt(s - a * a) + eps
        else:
            d = numpy.sqrt(s) + eps
        if mu > 0:
            b = mu * state["momentum_buffer"] + g / d
            state["momentum_buffer"] = b
            return _arr(x - group["lr"] * b)
        return _arr(x - group["lr"] * g / d)


class Adagrad(Optimizer):
    """Adagrad, PyTorch's form.

    ``t += 1``; ``g = grad + weight_decay * p``; ``clr = lr / (1 + (t - 1) lr_decay)``;
    ``s = s + g**2`` (starting from ``initial_accumulator_value``);
    ``p = p - clr * g / (sqrt(s) + eps)``.  Default ``lr=1e-2``, ``eps=1e-10``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = optim.Adagrad([w], lr=0.5)
    >>> (w * 4.0).sum().backward(); opt.step()     # 1 - 0.5 * 4 / sqrt(16)
    >>> w.data.round(8)
    array([0.5])
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        if lr_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError(
                "Adagrad: lr_decay, initial_accumulator_value and eps must be non-negative"
            )
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
                maximize=maximize,
            ),
        )

    def _update(
        self, x: numpy.ndarray, grad: numpy.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> numpy.ndarray:
        if not state:
            state["step"] = 0
            state["sum"] = numpy.full_like(x, group["initial_accumulator_value"])
        state["step"] += 1
        g = grad + group["weight_decay"] * x if group["weight_decay"] else grad
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"] + g * g
        state["sum"] = s
        return _arr(x - clr * g / (numpy.sqrt(s) + group["eps"]))


_OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def get_optimizer(name: str, params: Any, **options: Any) -> Optimizer:
    """An optimizer by name (``'sgd'``, ``'adam'``, ``'adamw'``, ``'rmsprop'``, ``'adagrad'``).

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> type(optim.get_optimizer("adam", [cr.tensor([1.0], requires_grad=True)], lr=0.1))
    <class 'chainrule.train.optim.Adam'>
    """
    try:
        cls = _OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; choose from {', '.join(sorted(_OPTIMIZERS))}"
        ) from None
    return cls(params, **options)


# =============================================================================================
# Gradient clipping
# =============================================================================================


def _with_grads(parameters: Any) -> list[cr.Tensor]:
    if isinstance(parameters, cr.Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Scale all gradients together so their joint norm is at most ``max_norm``.

    The joint norm is the ``norm_type`` norm of all gradient elements (``inf`` allowed); the
    gradients are multiplied by ``min(1, max_norm / (norm + 1e-6))`` (PyTorch).  Returns the
    norm before clipping.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([0.0, 0.0], requires_grad=True)
    >>> w.grad = numpy.array([3.0, 4.0])
    >>> optim.clip_grad_norm_([w], 1.0)
    5.0
    >>> w.grad.round(6)
    array([0.6, 0.8])
    """
    params = _with_grads(parameters)
    if not params:
        return 0.0
    grads = [_arr(_grad_array(p)) for p in params]
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        total = max(float(numpy.max(numpy.abs(g))) if g.size else 0.0 for g in grads)
    else:
        norms = [float(numpy.linalg.norm(g.ravel(), norm_type)) for g in grads]
        total = float(numpy.linalg.norm(numpy.array(norms), norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the "
            "gradients is non-finite; set error_if_nonfinite=False to clip "
            "anyway"
        )
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p, g in zip(params, grads):
            p.grad = g * numpy.asarray(coef, dtype=g.dtype)
    return total


def clip_grad_value_(parameters: Any, clip_value: float) -> None:
    """Clip every gradient element into ``[-clip_value, clip_value]``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule import optim
    >>> w = cr.tensor([0.0, 0.0], requires_grad=True)
    >>> w.grad = numpy.array([3.0, -0.5])
    >>> optim.clip_grad_value_([w], 1.0); w.grad
    array([ 1. , -0.5])
    """
    for p in _with_grads(parameters):
        p.grad = numpy.clip(_arr(_grad_array(p)), -clip_value, clip_value)


# =============================================================================================
# Learning-rate schedules
# =============================================================================================


class LRScheduler:
    """Base class: sets each group's ``lr`` from a closed form of the epoch counter.

    As in PyTorch, constructing a scheduler applies epoch 0's rate, and ``step()`` (once per
    epoch, after ``optimizer.step()``) advances it.  Subclasses define ``lr_at(epoch)``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> class Halving(optim.LRScheduler):
    ...     def lr_at(self, epoch):
    ...         return [b / 2 ** epoch for b in self.base_lrs]
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = Halving(opt); sched.step(); sched.step()
    >>> opt.param_groups[0]["lr"]
    0.25
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        elif any("initial_lr" not in g for g in optimizer.param_groups):
            raise KeyError(
                "param 'initial_lr' is not specified in param_groups when resuming "
                "an optimizer (last_epoch != -1)"
            )
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._last_lr: list[float] = []
        self.step()

    def lr_at(self, epoch: int) -> list[float]:
        """The learning rate of every group at ``epoch`` (closed form)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rates."""
        self.last_epoch += 1
        lrs = self.lr_at(self.last_epoch)
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()``."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (and callables)."""
        return {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("optimizer",) and not callable(v) and not isinstance(v, LRScheduler)
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the counter and options saved by :meth:`state_dict`."""
        for k, v in state_dict.items():
            if k == "after" or k.startswith("_after"):
                continue
            self.__dict__[k] = list(v) if isinstance(v, tuple) else v


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"]); sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be positive, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        return [b * self.gamma ** (epoch // self.step_size) for b in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= epoch)``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> optim.MultiStepLR(opt, [1, 3], 0.1).lr_at(3)
    [0.010000000000000002]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Iterable[int],
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        k = sum(1 for m in self.milestones if m <= epoch)
        return [b * self.gamma**k for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr = base_lr * gamma ** epoch``.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> optim.ExponentialLR(opt, 0.5).lr_at(2)
    [0.25]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        return [b * self.gamma**epoch for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    (PyTorch's closed form; it reaches ``eta_min`` at ``epoch = T_max``.)

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = optim.CosineAnnealingLR(opt, T_max=4)
    >>> [round(sched.lr_at(e)[0], 6) for e in range(5)]
    [1.0, 0.853553, 0.5, 0.146447, 0.0]
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        c = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Multiply the rate by a factor moving linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` epochs, then constant (PyTorch's ``LinearLR``).

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> sched = optim.LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> [sched.lr_at(e)[0] for e in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        e = min(epoch, self.total_iters)
        f = self.start_factor + (self.end_factor - self.start_factor) * e / max(self.total_iters, 1)
        return [b * f for b in self.base_lrs]


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)`` (one function, or one per group).

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=2.0)
    >>> optim.LambdaLR(opt, lambda e: 1 / (e + 1)).lr_at(3)
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Any, last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        self.lr_lambdas = (
            list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else ([lr_lambda] * n)
        )
        if len(self.lr_lambdas) != n:
            raise ValueError(f"LambdaLR: {len(self.lr_lambdas)} functions for {n} groups")
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        return [b * f(epoch) for b, f in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class LinearWarmup(LRScheduler):
    """Linear warm-up for ``warmup_epochs``, then an optional schedule ``after``.

    For ``epoch < warmup_epochs``: ``lr = base_lr * (start_factor + (1 - start_factor) *
    epoch / warmup_epochs)``; afterwards ``after``'s rate at ``epoch - warmup_epochs`` (or
    ``base_lr`` when ``after`` is None).  Build ``after`` on the same optimizer first.

    Example
    -------
    >>> import chainrule as cr
    >>> from chainrule import optim
    >>> opt = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=1.0)
    >>> cosine = optim.CosineAnnealingLR(opt, T_max=2)
    >>> sched = optim.LinearWarmup(opt, warmup_epochs=2, start_factor=0.5, after=cosine)
    >>> [sched.lr_at(e)[0] for e in range(5)]
    [0.5, 0.75, 1.0, 0.5, 0.0]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_epochs: int,
        start_factor: float = 0.1,
        after: LRScheduler | None = None,
        last_epoch: int = -1,
    ) -> None:
        if warmup_epochs < 0:
            raise ValueError(f"LinearWarmup: warmup_epochs must be >= 0, got {warmup_epochs}")
        if not 0 <= start_factor <= 1:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: `after` must schedule the same optimizer")
        self.warmup_epochs, self.start_factor = int(warmup_epochs), float(start_factor)
        self.after = after
        super().__init__(optimizer, last_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        if epoch < self.warmup_epochs:
            f = self.start_factor + (1 - self.start_factor) * epoch / self.warmup_epochs
            return [b * f for b in self.base_lrs]
        if self.after is not None:
            return self.after.lr_at(epoch - self.warmup_epochs)
        return list(self.base_lrs)

    def step(self) -> None:
        super().step()
        if self.after is not None:
            self.after.last_epoch = self.last_epoch - self.warmup_epochs
            self.after._last_lr = list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out.pop("after", None)
        if self.after is not None:
            out["after_state"] = self.after.state_dict()
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        after = state.pop("after_state", None)
        super().load_state_dict(state)
        if after is not None and self.after is not None:
            self.after.load_state_dict(after)
