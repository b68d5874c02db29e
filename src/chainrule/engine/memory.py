"""Keep freed array memory for the next step instead of handing it back to the kernel.

A differentiated step allocates every intermediate array, keeps it for the backward pass and
frees them all at once. glibc's ``malloc`` serves blocks from 128 KiB up with ``mmap`` at first,
and returns the top of its heap to the kernel when more than twice the largest block freed so
far is free there; so each step's arrays come back as fresh pages, and the kernel zero-fills
every one of them again (minor page faults). On a Lennard-Jones energy of 200 particles that was
2,000 faults per step and more than half of the step's time; the hand-written NumPy step of the
same model makes 600, PyTorch's and JAX's allocators keep their memory.

glibc raises those two thresholds by itself as large blocks are freed, up to 32 MiB for
``mmap`` (its ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit) and twice that for the trim.
:func:`keep_freed_memory` sets them there from the start: blocks below 32 MiB come from the
heap, and up to 64 MiB of free memory stays with the process for the next step. Larger arrays
keep their own ``mmap``.

It runs once when chainrule is imported, only where the C library is glibc, and only when the
process has not tuned ``malloc`` itself (any ``MALLOC_*_`` variable, or ``GLIBC_TUNABLES`` naming
malloc, leaves glibc's settings alone). ``CHAINRULE_MALLOC=system`` opts out.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for the dynamic threshold on 64-bit
TRIM_THRESHOLD = 64 << 20  # twice it, as glibc's dynamic rule would set
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_OWN_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

state = "not set"  # what keep_freed_memory did: "kept", or why not


def keep_freed_memory(environ: Mapping[str, str] | None = None) -> str:
    """Pin glibc's ``mmap`` and trim thresholds at their ceilings (32 and 64 MiB); returns
    ``"kept"``, or why nothing was changed. Safe to call again.

    >>> keep_freed_memory({"CHAINRULE_MALLOC": "system"})
    'left alone: CHAINRULE_MALLOC=system'
    >>> keep_freed_memory({"MALLOC_TRIM_THRESHOLD_": "1000000"})
    'left alone: the process sets MALLOC_TRIM_THRESHOLD_'
    """
    global state
    result = _set(os.environ if environ is None else environ)
    if environ is None:  # a check of other settings does not change what this process did
        state = result
    return result


def _set(env: Mapping[str, str]) -> str:
    if env.get("CHAINRULE_MALLOC", "").lower() in ("system", "0", "off"):
        return "left alone: CHAINRULE_MALLOC=system"
    for name in _OWN_SETTINGS:
        if name in env:
            return f"left alone: the process sets {name}"
    if "malloc" in env.get("GLIBC_TUNABLES", ""):
        return "left alone: GLIBC_TUNABLES sets malloc"
    if not sys.platform.startswith("linux"):
        return "left alone: not Linux"
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- present only in glibc (not musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "left alone: the C library is not glibc"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return "kept" if ok else "left alone: mallopt refused"
