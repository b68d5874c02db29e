"""The Numba backend's on-disk cache never loads code (or Numba's pickled index files) from a
directory another user could write into."""

from __future__ import annotations

import os
import pathlib
import pickle
import subprocess
import sys

import pytest

pytest.importorskip("numba")

RUN = """
import os, warnings, numpy, chainrule as cr
warnings.simplefilter("always")
f = cr.jit(lambda x: (numpy.tanh(x) ** 2).sum(), backend="numba")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    value = f(numpy.ones(3))
print(repr(float(value)))
print(any("only you can" in str(w.message) for w in caught))
"""


def run(cache: pathlib.Path, tmp: pathlib.Path) -> list[str]:
    env = dict(os.environ, CHAINRULE_CACHE_DIR=str(cache), TMPDIR=str(tmp))
    out = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


class Payload:
    """Unpickling this creates ``marker``: what a planted Numba index file could do."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(source: pathlib.Path, target: pathlib.Path, marker: pathlib.Path) -> None:
    """Copy the generated modules of ``source`` into ``target`` unchanged (so they would be
    used as they are) and put a booby-trapped index file where Numba looks for each one's."""
    (target / "__pycache__").mkdir(parents=True, exist_ok=True)
    for module in source.glob("cr_*.py"):
        (target / module.name).write_text(module.read_text())
    for index in (source / "__pycache__").glob("*.nbi"):
        (target / "__pycache__" / index.name).write_bytes(pickle.dumps(Payload(marker)))


def compiled_once(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, str]:
    good, tmp = tmp_path / "good", tmp_path / "tmp"
    tmp.mkdir()
    value, warned = run(good, tmp)  # a private cache: used, no warning
    assert warned == "False" and list((good / "__pycache__").glob("*.nbi"))
    assert oct(good.stat().st_mode & 0o777) == "0o700"
    return good, tmp, value


def test_the_planted_index_runs_from_a_private_directory(tmp_path):
    # the control: planted in a directory that passes the checks, the payload does run, so
    # the tests below can fail
    good, tmp, _ = compiled_once(tmp_path)
    trusted = tmp_path / "trusted"
    trusted.mkdir(mode=0o700)
    marker = tmp_path / "planted-code-ran"
    plant(good, trusted, marker)
    run(trusted, tmp)
    assert marker.exists()


def test_a_directory_writable_by_others_is_never_loaded_from(tmp_path):
    good, tmp, value = compiled_once(tmp_path)
    marker = tmp_path / "planted-code-ran"
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    plant(good, hostile, marker)
    hostile.chmod(0o777)  # anyone could have put those files there
    shared = tmp / f"chainrule-numba-{os.getuid()}"  # and the fallback under TMPDIR too
    shared.mkdir()
    plant(good, shared, marker)
    shared.chmod(0o777)
    value2, warned = run(hostile, tmp)
    assert not marker.exists()  # nothing planted was loaded
    assert warned == "True" and value2 == value  # it said so, and still computed


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs chown (root)")
def test_a_directory_owned_by_another_user_is_never_loaded_from(tmp_path):
    good, tmp, value = compiled_once(tmp_path)
    marker = tmp_path / "planted-code-ran"
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    plant(good, other, marker)
    os.chown(other, 65534, 65534)  # nobody's, mode still 0700
    value2, warned = run(other, tmp)
    assert not marker.exists() and warned == "True" and value2 == value
