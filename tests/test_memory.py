"""Freed array memory stays with the process (engine/memory.py): a loop that allocates and frees
the same arrays stops paying a page fault per page after its first round."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chainrule.engine import memory

LOOP = """
import resource, numpy, chainrule
from chainrule.engine import memory
def step():
    kept = [numpy.ones(1 << 17) for _ in range(12)]   # twelve 1 MiB arrays, like a graph's
    return sum(float(a[0]) for a in kept)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(memory.state, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt is glibc's",
)


def _run(**env: str) -> tuple[str, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", LOOP], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    state, faults = out.stdout.rsplit(maxsplit=1)
    return state, float(faults)


@glibc_only
def test_freed_arrays_are_reused_without_page_faults() -> None:
    state, faults = _run()
    assert state == "kept"
    assert faults < 50  # 12 MiB allocated per round: 3,072 pages if the memory went back


@glibc_only
def test_opting_out_leaves_glibc_alone_and_the_faults_come_back() -> None:
    state, faults = _run(CHAINRULE_MALLOC="system")
    assert state == "left alone: CHAINRULE_MALLOC=system"
    assert faults > 1000  # the loop above is a real measurement, not a constant


def test_a_process_that_tunes_malloc_itself_is_left_alone() -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"):
        assert memory.keep_freed_memory({name: "1"}) == f"left alone: the process sets {name}"
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}
    assert memory.keep_freed_memory(tunables) == "left alone: GLIBC_TUNABLES sets malloc"
