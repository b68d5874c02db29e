"""The command line: ``chainrule demo``, ``explain``, ``check``, ``train`` and ``evaluate``.

The top layer: a thin shell over the public API (:mod:`chainrule`) and the training layer.
"""

from chainrule.cli.commands import main

__all__ = ["main"]
