"""Checkpoints against hostile files and crashed saves: sizes checked before memory is spent,
no member name from a dict key that could climb out of a folder, the umask never touched, and
temporary files of a dead save cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy
import pytest

import chainrule as cr
from chainrule.train.checkpoint import CheckpointError


def test_a_compressed_member_is_refused_before_it_is_decompressed(tmp_path):
    bomb = tmp_path / "bomb.ckpt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("__chainrule__.npy", b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros
    assert bomb.stat().st_size < 1024 * 1024
    with pytest.raises(CheckpointError, match="is compressed"):
        cr.load(bomb)


def test_a_member_declaring_more_bytes_than_the_file_has_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    cr.save({"w": numpy.arange(4.0)}, path)
    data = bytearray(path.read_bytes())
    # raise the uncompressed and compressed sizes of every central-directory entry to 4 GiB
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        data[pos + 20 : pos + 28] = (2**32 - 2).to_bytes(4, "little") * 2
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="declares|truncated|corrupted"):
        cr.load(path)


def test_dict_keys_never_become_member_names_that_climb_out(tmp_path):
    path = tmp_path / "model.ckpt"
    state = {"../../evil": numpy.ones(2), "a/..b": numpy.zeros(1), "/abs": numpy.ones(1)}
    cr.save(state, path)
    names = zipfile.ZipFile(path).namelist()
    assert not any(".." in n or "/" in n or n.startswith(".") for n in names), names
    loaded = cr.load(path)
    assert set(loaded) == set(state)
    for k in state:
        numpy.testing.assert_array_equal(loaded[k], state[k])


def test_save_never_changes_the_umask_and_the_file_gets_the_usual_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = tmp_path / "model.ckpt"
        cr.save({"w": numpy.ones(3)}, path)
        assert os.umask(0o027) == 0o027  # unchanged by save
        assert (path.stat().st_mode & 0o777) == 0o640  # 0666 less the umask
    finally:
        os.umask(old)


def test_temporaries_of_a_killed_save_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.ckpt"
    # a save killed halfway: a process writes its temporary file and dies without cleaning up
    code = (
        "import os, sys; p = sys.argv[1]; d, b = os.path.split(p);"
        "open(os.path.join(d, f'.{b}.{os.getpid()}.abc123.tmp'), 'wb').write(b'x' * 100);"
        "os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=False)
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(leftovers) == 1
    # a temporary of a live process (this one) is another save in progress: kept
    live = tmp_path / f".model.ckpt.{os.getppid()}.def456.tmp"
    live.write_bytes(b"y")
    cr.save({"w": numpy.ones(3)}, path)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".tmp")) == [live.name]
    numpy.testing.assert_array_equal(cr.load(path)["w"], numpy.ones(3))


def test_error_messages_stay_short(tmp_path):
    path = tmp_path / "junk.ckpt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__chainrule__.npy", b"\x93NUMPY" + os.urandom(4000))
        for i in range(50):
            z.writestr(("\\x00" * 500) + str(i), b"")
    with pytest.raises(CheckpointError) as info:
        cr.load(path)
    assert len(str(info.value)) < 400 + len(str(path))
