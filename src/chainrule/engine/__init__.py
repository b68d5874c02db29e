"""The engine: primitives, the one table of gradient rules, the backward walk, tensors, pytrees,
the transforms (``grad``, ``vjp``, ``jvp``, ...), the gradient check, anomaly detection and the
numerically stable functions.

The lowest layer: it imports nothing else of chainrule's.
"""
