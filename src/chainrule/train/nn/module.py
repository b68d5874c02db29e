"""``Module``: the base class of layers and models, and the containers built on it.

A module owns *parameters* (chainrule tensors with ``requires_grad=True``), *buffers* (NumPy
arrays that are part of its state but are not trained, such as batch-norm running statistics)
and child modules.  It follows PyTorch's ``torch.nn.Module``: attribute assignment registers
them, ``named_parameters()`` yields dotted paths (``'layers.0.weight'``), ``state_dict()`` and
``load_state_dict()`` save and restore them, ``train()``/``eval()`` switch the mode, and calling
the module runs ``forward``.

Everything here uses only chainrule's public API and NumPy, so a model is plain NumPy code.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy

import chainrule as cr

__all__ = [
    "Module",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "Parameter",
    "functional_call",
    "IncompatibleKeys",
    "RemovableHandle",
]


def Parameter(data: Any, dtype: Any = None) -> cr.Tensor:
    """Make a trainable parameter: a chainrule tensor with ``requires_grad=True``.

    Assigning one to a module attribute registers it (``self.scale = nn.Parameter(...)``).

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> p = nn.Parameter(numpy.zeros(3))
    >>> p.requires_grad, p.shape
    (True, (3,))
    """
    return cr.tensor(data, requires_grad=True, dtype=dtype)


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``remove()`` takes the hook away again.

    Example
    -------
    >>> from chainrule import nn
    >>> h = nn.Identity().register_forward_hook(lambda m, a, out: None)
    >>> h.remove(); h.remove()        # removing twice is harmless
    """

    def __init__(self, hooks: dict[int, Any], key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        """Unregister the hook."""
        self._hooks.pop(self._key, None)


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` with ``strict=False`` could not match.

    Example
    -------
    >>> from chainrule import nn
    >>> nn.Linear(2, 2).load_state_dict({"weight": [[1.0, 0.0], [0.0, 1.0]]}, strict=False)
    IncompatibleKeys(missing_keys=['bias'], unexpected_keys=[])
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


def _values(x: Any) -> numpy.ndarray:
    """The NumPy values of a tensor or array (never recorded)."""
    if isinstance(x, cr.Tensor):
        return numpy.asarray(x.data)
    return numpy.asarray(x)


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class of every layer and model (PyTorch's ``nn.Module``).

    Subclasses call ``super().__init__()`` first, assign parameters (:func:`Parameter`),
    buffers (:meth:`register_buffer`) and sub-modules as attributes, and define ``forward``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> class Affine(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = nn.Parameter(numpy.ones(2))
    ...         self.shift = nn.Parameter(numpy.zeros(2))
    ...     def forward(self, x):
    ...         return x * self.scale + self.shift
    >>> m = Affine()
    >>> [name for name, _ in m.named_parameters()]
    ['scale', 'shift']
    >>> m(numpy.array([1.0, 2.0]))
    tensor([1., 2.], requires_grad=True)
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())

    # --- attribute registration -------------------------------------------------------------

    def _check_init(self) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before "
                "assigning attributes in __init__"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Module):
            self._check_init()
            self._forget(name)
            d["_modules"][name] = value
        elif isinstance(value, cr.Tensor) and value.requires_grad:
            self._check_init()
            self._forget(name)
            d["_parameters"][name] = value
        elif "_parameters" in d and name in d["_parameters"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter '{name}' "
                    "(a tensor with requires_grad=True or None is expected); to "
                    "change its values write param.data = ..."
                )
            d["_parameters"][name] = None
        elif "_buffers" in d and name in d["_buffers"]:
            d["_buffers"][name] = None if value is None else numpy.asarray(value)
        elif "_modules" in d and name in d["_modules"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to child module "
                    f"'{name}' (a Module or None is expected)"
                )
            d["_modules"][name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            d[table].pop(name, None)
        d["_non_persistent"].discard(name)
        d.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if name in d.get(table, ()):
                del d[table][name]
                d["_non_persistent"].discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        extra = [k for t in ("_parameters", "_buffers", "_modules") for k in self.__dict__[t]]
        return sorted(set(super().__dir__()) | set(extra))

    def register_parameter(self, name: str, param: cr.Tensor | None) -> None:
        """Register ``param`` (a tensor with ``requires_grad=True``, or None) as ``name``."""
        self._check_init()
        if param is not None and not (isinstance(param, cr.Tensor) and param.requires_grad):
            raise TypeError(
                f"register_parameter('{name}'): expected a chainrule tensor with "
                f"requires_grad=True (nn.Parameter(...)), got {type(param).__name__}"
            )
        self._forget(name)
        self.__dict__["_parameters"][name] = param

    def register_buffer(self, name: str, value: Any, persistent: bool = True) -> None:
        """Register a NumPy array that belongs to the state but is not trained.

        Persistent buffers appear in :meth:`state_dict` (batch-norm running statistics).
        """
        self._check_init()
        self._forget(name)
        self.__dict__["_buffers"][name] = None if value is None else numpy.asarray(value)
        if not persistent:
            self.__dict__["_non_persistent"].add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``name``."""
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module('{name}'): {type(module).__name__} is not a Module")
        self._forget(name)
        self.__dict__["_modules"][name] = module

    # --- the forward pass -------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        pre = self.__dict__.get("_forward_pre_hooks")
        if pre:
            for hook in list(pre.values()):
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        post = self.__dict__.get("_forward_hooks")
        if post:
            for hook in list(post.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def _add_hook(self, table: str, hook: Callable[..., Any]) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"{table[1:-1]}: the hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.setdefault(table, OrderedDict())
        key = max(hooks, default=-1) + 1
        hooks[key] = hook
        return RemovableHandle(hooks, key)

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, args)`` before every ``forward``; a non-None result replaces the
        positional arguments (PyTorch's rule).  Returns a handle whose ``remove()`` undoes it.

        Example
        -------
        >>> import numpy
        >>> from chainrule import nn
        >>> layer = nn.Identity()
        >>> handle = layer.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
        >>> layer(numpy.ones(2)), handle.remove(), layer(numpy.ones(2))
        (array([2., 2.]), None, array([1., 1.]))
        """
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after every ``forward``; a non-None result
        replaces the output (PyTorch's rule).  Returns a handle whose ``remove()`` undoes it.

        Example
        -------
        >>> import numpy
        >>> from chainrule import nn
        >>> shapes = []
        >>> model = nn.MLP([3, 4, 2], rng=0)
        >>> h = model.layers[0].register_forward_hook(lambda m, a, out: shapes.append(out.shape))
        >>> _ = model(numpy.ones((5, 3))); h.remove(); shapes
        [(5, 4)]
        """
        return self._add_hook("_forward_hooks", hook)

    def summary(self, *inputs: Any) -> str:
        """A table of the layers: name, type, output shape (when example ``inputs`` are
        given; the model runs once in evaluation mode, without recording) and parameter counts,
        with the totals of trainable and frozen parameters.  See
        :func:`chainrule.train.nn.summary.summary`."""
        from .summary import summary

        return summary(self, *inputs)

    # --- traversal --------------------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct children as ``(name, module)`` pairs."""
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        """Direct children."""
        for _, m in self.named_children():
            yield m

    def named_modules(
        self, prefix: str = "", _seen: set[int] | None = None
    ) -> Iterator[tuple[str, Module]]:
        """This module and all below it, each once, as ``(dotted path, module)``."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator[Module]:
        """This module and all below it."""
        for _, m in self.named_modules():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, cr.Tensor]]:
        """Parameters as ``(dotted path, tensor)``: ``('layers.0.weight', W)``, …

        A parameter shared by two modules is listed once (under its first path).
        """
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mp, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse: bool = True) -> Iterator[cr.Tensor]:
        """The parameters (tensors with ``requires_grad=True``), for an optimizer."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, numpy.ndarray]]:
        """Buffers as ``(dotted path, array)``."""
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mp, m in mods:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mp}.{name}" if mp else name), b

    def buffers(self, recurse: bool = True) -> Iterator[numpy.ndarray]:
        """The buffers."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self) -> int:
        """The number of trainable scalars."""
        return int(sum(p.size for p in self.parameters()))

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every child (recursively) and then on this module; return self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # --- modes and gradients ----------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active, batch norm uses batch statistics); return self."""
        if not isinstance(mode, bool):
            raise TypeError("train(mode): mode must be a bool")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); return self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of all parameters (``set_to_none=False`` fills zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = numpy.zeros_like(p.data)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (``False``) or unfreeze the parameters; return self.

        Frozen parameters stay registered (and in the state dict).
        """
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, target: Any) -> Module:
        """Convert every floating-point parameter and buffer to a dtype, or move every array to
        another array library with a function (PyTorch's ``.to(device)``); return self.

        ``model.to(numpy.float32)``; ``model.to(cupy.asarray)`` (to the GPU);
        ``model.to(numpy.asarray)`` or ``model.to(chainrule.to_host)`` (back to NumPy).
        """
        is_dtype = isinstance(target, (str, numpy.dtype)) or (
            isinstance(target, type) and issubclass(target, (numpy.generic, float))
        )
        if not is_dtype and callable(target):
            move = target
        else:
            dt = numpy.dtype(target)
            if dt.kind != "f":
                raise TypeError(f"Module.to: {dt} is not a floating-point dtype")
            move = lambda a: a.astype(dt) if a.dtype.kind == "f" else a  # noqa: E731
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = move(p.data)
                    if p.grad is not None:
                        p.grad = move(p.grad)
            for k, b in m._buffers.items():
                if b is not None and getattr(b, "dtype", None) is not None:
                    m._buffers[k] = move(b)
        return self

    def float(self) -> Module:
        """Convert to float32 (``to(numpy.float32)``)."""
        return self.to(numpy.float32)

    def double(self) -> Module:
        """Convert to float64 (``to(numpy.float64)``)."""
        return self.to(numpy.float64)

    @property
    def dtype(self) -> numpy.dtype[Any] | None:
        """The dtype of the first parameter (None for a module without parameters)."""
        for p in self.parameters():
            return p.dtype
        return None

    # --- state ------------------------------------------------------------------------------

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> dict[str, Any]:
        """Parameters and persistent buffers by dotted path, as a flat dict.

        The values are copies (NumPy arrays), so a saved state does not change when training
        continues; ``keep_vars=True`` gives the parameter tensors themselves.  The dict is a
        pytree: ``chainrule.grad(f)(model.state_dict())`` differentiates with respect to it
        (see :func:`functional_call`).

        Example
        -------
        >>> from chainrule import nn
        >>> sorted(nn.Linear(3, 2).state_dict())
        ['bias', 'weight']
        """
        out: dict[str, Any] = {}
        for mp, m in self.named_modules(prefix):
            base = f"{mp}." if mp else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[base + name] = p if keep_vars else numpy.array(p.data, copy=True)
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[base + name] = b if keep_vars else numpy.array(b, copy=True)
        return out

    def _state_slots(self) -> dict[str, tuple[Module, str, str]]:
        """Every state-dict key mapped to (owning module, local name, 'param' or 'buffer')."""
        slots: dict[str, tuple[Module, str, str]] = {}
        for mp, m in self.named_modules():
            base = f"{mp}." if mp else ""
            for name, p in m._parameters.items():
                if p is not None and base + name not in slots:
                    slots[base + name] = (m, name, "param")
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    slots[base + name] = (m, name, "buffer")
        return slots

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy parameters and buffers from ``state_dict`` (values are copied and cast).

        The parameter tensors stay the same objects, so an optimizer built on them keeps
        working.  With ``strict`` (the default) missing or unexpected keys raise; a shape
        mismatch always raises.  Nothing is changed when an error is raised.

        Raises
        ------
        RuntimeError
            Listing every missing key, unexpected key and shape mismatch.

        Example
        -------
        >>> from chainrule import nn
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> b.load_state_dict(a.state_dict())
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"load_state_dict: expected a dict, got {type(state_dict).__name__}")
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        problems = []
        if strict and unexpected:
            problems.append(
                "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + "."
            )
        if strict and missing:
            problems.append(
                "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + "."
            )
        staged = []
        for key, (m, name, kind) in slots.items():
            if key not in state_dict:
                continue
            current = m._parameters[name] if kind == "param" else m._buffers[name]
            cur = _values(current)
            try:
                new = _values(state_dict[key])
            except (TypeError, ValueError) as e:
                problems.append(f"value for {key} is not an array: {e}")
                continue
            if new.shape != cur.shape:
                problems.append(
                    f"size mismatch for {key}: copying a param with shape "
                    f"{new.shape} from checkpoint, the shape in current model is "
                    f"{cur.shape}."
                )
                continue
            if new.dtype.kind not in "fiub":
                problems.append(f"value for {key} has non-numeric dtype {new.dtype}")
                continue
            staged.append((m, name, kind, numpy.array(new, dtype=cur.dtype, copy=True)))
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                + "\n\t".join(problems)
            )
        with cr.no_grad():
            for m, name, kind, value in staged:
                if kind == "param":
                    m._parameters[name].data = value
                else:
                    m._buffers[name] = value
        return IncompatibleKeys(missing, unexpected)

    def functional_call(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``forward(*args, **kwargs)`` with ``params`` in place of the module's own.

        See :func:`functional_call`.
        """
        return functional_call(self, params, *args, **kwargs)

    # --- printing ---------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, m in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(m), 2))
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


def _resolve(model: Module, key: str) -> tuple[Module, str, str]:
    parts = key.split(".")
    m = model
    for p in parts[:-1]:
        child = m._modules.get(p) if isinstance(m, Module) else None
        if child is None:
            raise KeyError(key)
        m = child
    name = parts[-1]
    if name in m._parameters:
        return m, name, "param"
    if name in m._buffers:
        return m, name, "buffer"
    raise KeyError(key)


@contextlib.contextmanager
def _swapped(model: Module, params: dict[str, Any]) -> Iterator[None]:
    if not isinstance(params, dict):
        raise TypeError(
            f"functional_call: params must be a dict keyed like state_dict(), got "
            f"{type(params).__name__}"
        )
    saved = []
    try:
        for key, value in params.items():
            try:
                m, name, kind = _resolve(model, key)
            except KeyError:
                valid = ", ".join(list(model._state_slots())[:8])
                raise KeyError(
                    f"functional_call: '{key}' is not a parameter or buffer of "
                    f"{type(model).__name__} (valid keys: {valid}, ...)"
                ) from None
            table = m._parameters if kind == "param" else m._buffers
            saved.append((table, name, table[name]))
            table[name] = value
        yield
    finally:
        for table, name, old in reversed(saved):
            table[name] = old


def functional_call(model: Module, params: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``model(*args, **kwargs)`` with the parameters/buffers in ``params`` substituted.

    ``params`` is keyed like :meth:`Module.state_dict` (any subset of it); its values may be
    arrays or chainrule tensors.  This makes a model a pure function of its parameters, for
    :func:`chainrule.grad` and friends.  The module's own parameters are restored afterwards,
    even if the forward pass raises.  A buffer that the forward pass updates (batch-norm running
    statistics in training mode) is updated on the module only when it is not in ``params``.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule import nn
    >>> model = nn.Linear(2, 1)
    >>> x, y = numpy.ones((4, 2)), numpy.zeros((4, 1))
    >>> loss = lambda p: nn.functional.mse_loss(nn.functional_call(model, p, x), y)
    >>> grads = cr.grad(loss)(model.state_dict())
    >>> sorted(grads), grads["weight"].shape
    (['bias', 'weight'], (1, 2))
    """
    with _swapped(model, params):
        return model(*args, **kwargs)


class Sequential(Module):
    """Modules applied one after the other; children are named ``'0'``, ``'1'``, …

    Also accepts an ``OrderedDict`` of named modules.  Supports ``len``, iteration, indexing
    (a slice gives a ``Sequential``), assignment by index (a new head) and ``append``.

    Example
    -------
    >>> import numpy
    >>> from chainrule import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> net(numpy.ones((5, 4))).shape
    (5, 2)
    >>> [name for name, _ in net.named_parameters()][:2]
    ['0.weight', '0.bias']
    """

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(str(name), m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(
                        f"Sequential: argument {i} is a {type(m).__name__}, not a Module"
                    )
                self.add_module(str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            if m is not None:
                x = m(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(i, slice):
            return Sequential(OrderedDict(items[i]))
        return items[i][1]

    def __setitem__(self, i: int, module: Module) -> None:
        """Replace the ``i``-th module (``model[-1] = nn.Linear(...)``: a new head), keeping
        its name and place, as PyTorch."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: cannot assign a {type(module).__name__}, not a Module")
        names = list(self._modules)
        try:
            name = names[i]
        except (IndexError, TypeError):
            raise IndexError(
                f"Sequential: index {i!r} is out of range for {len(names)} modules"
            ) from None
        self._modules[name] = module

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end; return self."""
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules, registered as children ``'0'``, ``'1'``, … (no forward of its own).

    Example
    -------
    >>> from chainrule import nn
    >>> blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(blocks), len(list(blocks.parameters()))
    (3, 6)
    """

    def __init__(self, modules: Any = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; return self."""
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]  # type: ignore[no-any-return]


class ModuleDict(Module):
    """A dict of named modules (no forward of its own).

    Example
    -------
    >>> from chainrule import nn
    >>> heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
    >>> sorted(heads.state_dict())
    ['a.bias', 'a.weight', 'b.bias', 'b.weight']
    """

    def __init__(self, modules: dict[str, Module] | None = None) -> None:
        super().__init__()
        for k, m in (modules or {}).items():
            self.add_module(k, m)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]  # type: ignore[no-any-return]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Any:
        return self._modules.keys()

    def items(self) -> Any:
        return self._modules.items()

    def values(self) -> Any:
        return self._modules.values()
