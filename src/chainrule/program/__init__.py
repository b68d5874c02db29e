"""The recorded program: tracing a whole function with names (``trace``), the SSA program and its
passes (``ir``), how each primitive prints (``notation``), writing programs out as source
(``codegen``), and batching a recorded program (``vmap``).

Built on the engine only.
"""
