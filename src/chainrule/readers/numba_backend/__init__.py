"""The Numba backend of ``chainrule.jit``: the same straight-line program, compiled by Numba.

``jit`` records a function once per signature and runs the exact program passes (``ir.py``);
this package writes *that* program — same values, same order, same inlining as the NumPy
backend's :class:`~chainrule.program.codegen.Writer` — as source that ``numba.njit`` accepts, and
compiles it.  No gradient rule and no tracing lives here: only how each primitive is spelled
for Numba.  Most spellings are the NumPy ones; the others are:

* reductions over some axes, ``keepdims``, ``ddof``, ``cumsum``/``cumprod``/``sort`` along an
  axis: small loops over a contiguous 2-D view (rows or columns), or a 3-D one for a sum over a
  run of middle axes, written once (``helpers.py``), because Numba's ``sum`` takes one axis at
  most and its ``max``, ``mean``, ``var``… none; the sum of a negated array subtracts as it
  reads (the same bits, no negated copy);
* float sums along rows and of whole arrays take NumPy's pairwise order (eight running sums in
  steps of eight, longer rows halved as NumPy's recursion halves them): NumPy's bits, and eight
  independent sums LLVM vectorises where one running sum was a chain of dependent additions
  (a layer norm's 256 rows of 128: 15 -> 6 us, NumPy's 10); integers and booleans are summed
  one by one, exactly;
* products: ``tensordot``, N-d ``dot``, ``inner`` become transpose + reshape + ``numpy.dot``
  (what NumPy itself does; a C-contiguous array whose trailing axes move to the front is read
  as the transpose of its reshape, a view), batched ``matmul`` a loop of ``numpy.dot``; a stack
  times one matrix (a linear layer on (batch, seq, features)) is one ``numpy.dot`` over the
  stack's rows, and the sum over the batch of a product of two stacks (that layer's weight
  gradient, ``mT(h) @ g``) one ``numpy.dot`` too (a transformer block's step 930 -> 640 us);
* rearrangements (``flip``, ``roll``, ``tile``, ``repeat``, ``take``, ``take_along_axis``,
  ``diagonal``, advanced indexing, ``pad``, ``sliding_window_view``…) and their gradients
  (``scatter_add``, ``setitem``): shapes are static, so NumPy's own function is run once, at
  compile time, on ``arange(size)``; the program gathers (or scatters) through the resulting
  constant index array;
* a sum or mean over some axes of float elementwise arithmetic (``((X[:, None] - C) ** 2)
  .sum(-1)``) is one generated loop nest that computes each term where it is summed, in the
  unfused helpers' order (``fusion.py``: a row of terms at a time for a sum over the last axes,
  summed pairwise); an operation on arrays whose every use ends in such sums is
  computed again in each loop rather than stored; likewise the rows added by a scatter
  (``U[i]``'s gradient ``e[:, None] * V[j]``) are computed where they are added, in
  ``numpy.add.at``'s order;
* every other elementwise statement of 256 or more elements, and elementwise arithmetic that a
  product or a reduction reads, is one generated loop nest too (``fused_map``: a flat loop when
  nothing broadcasts, a loop per axis otherwise), not a Numba array expression: from the third
  or so in a kernel those run 3x slower than the loops they stand for (a batch-normalised
  layer's step: 294 -> 160 us), with the same values; an unnamed ``outer(a, b)`` such a loop
  reads is ``a[i0] * b[i1]`` in it (numpy.outer's product), not an array (Sinkhorn's gradient
  adds 60 of them into K's: 0.8 -> 0.3 ms with ``K.T.T`` no longer copied before each product),
  and ``numpy.where`` by a boolean array is ``x if c else y`` there; what a term reads only by
  the outer counters (a layer norm's ``mean / (2 * std) / n`` per row) is computed before the
  inner loop, once a row (LLVM cannot move it: the stores to ``out`` might change what it
  reads); a loop whose source is one already written (the same step of a loop unrolled in
  Python) is that function again, since Numba compiles each function on its own (the Elman
  RNN of ``bench_unseen.py``, 50 steps: 25 -> 12 s to compile);
* ``exp``, ``log`` and the other transcendental functions of an array of 1024 or more
  elements call NumPy's own (vectorised) loop through Numba's object mode, about 1 us a call:
  Numba calls the C library once per element, 7x slower on 32,000 values; ``tanh`` (any size)
  and ``exp`` (below that size) are the kernel's own arithmetic, which LLVM vectorises
  (``helpers.VECTORISED``: range reduction and a Taylor polynomial; exp within 1 ulp, tanh
  within 2; 512 values of tanh in 0.55 us against the C library's 3.9 and NumPy's 0.7 plus the
  object-mode call), in a fused loop as on an array, inlined by Numba into the loop (LLVM
  left a call per element in loop nests: 7x slower);
* ``concatenate`` and ``stack``: an empty array and one helper call per part that copies it
  into its place (Numba's ``concatenate`` of a 50-tuple, and 50 slice assignments, take a
  minute to compile; the merged products of a traced loop, ``ir.merge_products``, make such
  concatenations);
* a whole power of float32 (``h ** 3``) is multiplied out in float64 and rounded once, as the
  eager path computes it (a fused loop's term or a loop of its own); of float64, Numba's own
  integer power (repeated multiplication: 20x faster than the C library's ``pow`` per element,
  3-7x faster than NumPy's, within a few units in the last place of the eager value);
* ``correlate``/``convolve`` of 1-D arrays: a loop per kernel tap over slices (indexed from 0,
  so LLVM vectorises it: 2.5x faster than NumPy's dot per output), or, for more taps than
  outputs (a kernel's gradient), one BLAS dot per output;
* Python numbers next to float32 arrays are cast to float32 (NumPy's NEP 50 "weak scalar" rule,
  which Numba does not follow), values of shape ``()`` are scalars.

Anything else raises :class:`Unsupported` naming the operation; ``jit`` then falls back to the
NumPy backend with one :class:`~chainrule.jit.JitFallbackWarning`.

The generated module is written to ``$CHAINRULE_CACHE_DIR`` (default
``~/.cache/chainrule/numba``) under the hash of its text, imported from there, and compiled with
``njit(cache=True)``: Numba's own on-disk cache, keyed by that file, makes the compilation a
once-per-machine cost.  Large constants are passed as arguments (not frozen into the machine
code), small ones are written into the module text, so the hash covers everything compiled.

The package, one job a module: ``common`` (errors, the ufuncs Numba has, small helpers),
``writer`` (:class:`NumbaWriter`), ``forms`` and ``statements`` (each primitive's spelling),
``helpers`` (the small ``njit`` functions a module may need), ``fusion`` (sums and scatters
of elementwise expressions as loops), ``module`` (:func:`generate`) and
``runtime`` (Numba itself: availability, the on-disk cache, compiling and running).
"""

from __future__ import annotations

from .common import INLINE_CONST_LIMIT, ShapeMismatch, Unsupported
from .module import Generated, generate
from .runtime import (
    INSTALL_HINT,
    Runner,
    available,
    build,
    cache_dir,
    compile_errors,
    describe_failure,
    load_module,
    quiet,
    require,
    safe,
)

__all__ = [
    "Unsupported",
    "ShapeMismatch",
    "available",
    "require",
    "cache_dir",
    "generate",
    "build",
    "INSTALL_HINT",
    "INLINE_CONST_LIMIT",
    "Generated",
    "Runner",
    "compile_errors",
    "describe_failure",
    "load_module",
    "quiet",
    "safe",
]
