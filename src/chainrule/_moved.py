"""Old module paths of the flat layout (before the layered one), mapped to where they live now.

``import chainrule.rules`` still works and gives :mod:`chainrule.engine.rules` itself (the same
module object, not a copy), with a :class:`DeprecationWarning` that names the new path. The old
modules whose names are now public functions (``chainrule.explain``, ``chainrule.jit``,
``chainrule.tensor``, ``chainrule.vmap``) cannot come back as modules without hiding those
functions, so importing them raises an :class:`ImportError` that names the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

MOVED = {
    "chainrule.anomaly": "chainrule.engine.anomaly",
    "chainrule.gradcheck": "chainrule.engine.gradcheck",
    "chainrule.graph": "chainrule.engine.graph",
    "chainrule.primitives": "chainrule.engine.primitives",
    "chainrule.pytree": "chainrule.engine.pytree",
    "chainrule.rules": "chainrule.engine.rules",
    "chainrule.transforms": "chainrule.engine.transforms",
    "chainrule.codegen": "chainrule.program.codegen",
    "chainrule.ir": "chainrule.program.ir",
    "chainrule.notation": "chainrule.program.notation",
    "chainrule.trace": "chainrule.program.trace",
    "chainrule.check": "chainrule.readers.check",
    "chainrule.numba_backend": "chainrule.readers.numba_backend",
    "chainrule.numpy_backend": "chainrule.readers.numpy_backend",
    "chainrule.checkpoint": "chainrule.train.checkpoint",
    "chainrule.training": "chainrule.train.trainer",
    "chainrule.nn.layers": "chainrule.train.nn.layers",
    "chainrule.nn.module": "chainrule.train.nn.module",
    "chainrule.train_cli": "chainrule.cli.train",
}
SHADOWED = {
    "chainrule.explain": "chainrule.readers.explain",
    "chainrule.jit": "chainrule.readers.jit",
    "chainrule.tensor": "chainrule.engine.tensor",
    "chainrule.vmap": "chainrule.program.vmap",
}


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module that now lives at ``target``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec  # the import system stamped the old path's spec on it


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old flat paths (and nothing else)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in SHADOWED:
            raise ImportError(
                f"{fullname} is now {SHADOWED[fullname]}: import it from there "
                f"({fullname} is the public function)",
                name=fullname,
            )
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(
            f"{fullname} is now {new}: import it from there", DeprecationWarning, stacklevel=2
        )
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
