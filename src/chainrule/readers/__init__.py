"""The readers of a recorded program: ``explain`` and ``check_backward`` (teaching), and ``jit``
with its NumPy and Numba backends.

Built on the program and the engine.
"""
