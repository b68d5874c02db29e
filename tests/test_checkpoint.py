"""chainrule.checkpoint: bit-exact round trips, atomic writes, and a fuzz test in which every
truncated or bit-flipped file gives CheckpointError or the exact original, never anything else."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy
import pytest

from chainrule import nn, optim
from chainrule.train.checkpoint import CheckpointError, load, save


def same(a, b):
    """Structural, type-exact and bit-exact equality."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, numpy.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, numpy.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return a.hex() == b.hex()
    return a == b


def rich_object():
    rng = numpy.random.default_rng(0)
    strided = numpy.arange(24.0).reshape(4, 6)[::2, ::3]
    return {
        "floats": {
            str(dt): rng.standard_normal((3, 2)).astype(dt)
            for dt in ("float16", "float32", "float64", "longdouble")
        },
        "ints": [
            numpy.array([-(2**63), 2**63 - 1]),
            numpy.arange(5, dtype=numpy.uint8),
            numpy.array([2**64 - 1], dtype=numpy.uint64),
        ],
        "special": numpy.array([numpy.nan, -numpy.inf, numpy.inf, -0.0, 5e-324]),
        "complex": numpy.array([1 + 2j, -0.5j]),
        "bools": numpy.array([[True, False]]),
        "strings": numpy.array(["setosa", "virginica", "ünïcødé"]),
        "empty": numpy.zeros((0, 3)),
        "zero_d": numpy.array(2.5),
        "strided": strided,
        "fortran": numpy.asfortranarray(numpy.arange(6.0).reshape(2, 3)),
        "numpy_scalars": (numpy.float32(1.5), numpy.int16(-3), numpy.bool_(True)),
        "python": [0.1, -0.0, float("nan"), float("inf"), 10**30, -7, True, None, "text", ""],
        7: {"int keys": "kept as ints", -1: [1, (2, [3])]},
        "weird/key name": numpy.ones(1),
        "weird_key_name": numpy.zeros(1),
    }


def test_round_trip_is_bit_exact(tmp_path):
    obj = rich_object()
    path = tmp_path / "rich.ckpt"
    save(obj, path)
    back = load(path)
    assert same(back, obj)
    assert back["fortran"].flags.c_contiguous and numpy.array_equal(back["fortran"], obj["fortran"])
    assert isinstance(back["numpy_scalars"][0], numpy.float32)
    # an ordinary .npz: NumPy reads it without pickle
    with numpy.load(path, allow_pickle=False) as npz:
        assert "__chainrule_manifest__" in npz.files
        numpy.testing.assert_array_equal(npz["strided"], obj["strided"])


def test_model_and_optimizer_state_round_trip(tmp_path):
    model = nn.MLP([3, 8, 2], norm="batch", rng=0)
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = numpy.random.default_rng(1).standard_normal((6, 3))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), numpy.array([0, 1, 1, 0, 1, 0])).backward()
        opt.step()
    path = tmp_path / "run.ckpt"
    save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    state = load(path)
    other = nn.MLP([3, 8, 2], norm="batch", rng=99)
    other.load_state_dict(state["model"])
    model.eval(), other.eval()
    numpy.testing.assert_array_equal(model(x).data, other(x).data)
    assert same(state["optimizer"], opt.state_dict())


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    save({"v": numpy.arange(3)}, path)
    save({"v": numpy.arange(4)}, path)  # replaces the file
    assert load(path)["v"].tolist() == [0, 1, 2, 3]
    assert os.listdir(tmp_path) == ["model.ckpt"]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(numpy, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save({"v": numpy.arange(9)}, path)
    monkeypatch.undo()
    assert load(path)["v"].tolist() == [0, 1, 2, 3]  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["model.ckpt"]


@pytest.mark.parametrize(
    "obj,what",
    [
        ({"a": numpy.array([object()], dtype=object)}, "dtype object"),
        ({"a": {1, 2}}, "set"),
        ({(1, 2): 3}, "dict keys"),
        ({"a": lambda: 0}, "function"),
    ],
)
def test_unsavable_objects_raise_and_write_nothing(tmp_path, obj, what):
    with pytest.raises(TypeError, match=what):
        save(obj, tmp_path / "x.ckpt")
    assert os.listdir(tmp_path) == []


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_foreign_and_damaged_files_raise_checkpoint_error_naming_the_file(tmp_path):
    assert issubclass(CheckpointError, ValueError)
    cases = {
        "empty.ckpt": (b"", "empty"),
        "text.ckpt": (b"hello, world\n", "not a NumPy .npz"),
    }
    buf = io.BytesIO()
    numpy.save(buf, numpy.arange(3))
    cases["array.npy"] = (buf.getvalue(), "single .npy array")
    buf = io.BytesIO()
    numpy.savez(buf, weights=numpy.arange(3))
    cases["plain.npz"] = (buf.getvalue(), "no chainrule manifest")
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        _write(path, data)
        with pytest.raises(CheckpointError, match=reason) as e:
            load(path)
        assert str(path) in str(e.value)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.ckpt")


def _rewrite_manifest(src, dst, change):
    with numpy.load(src, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    manifest = json.loads(members["__chainrule_manifest__"].tobytes())
    change(manifest, members)
    members["__chainrule_manifest__"] = numpy.frombuffer(json.dumps(manifest).encode(), numpy.uint8)
    with open(dst, "wb") as f:
        numpy.savez(f, **members)


def test_newer_version_tampered_values_and_extra_members_are_refused(tmp_path):
    good = tmp_path / "good.ckpt"
    save({"w": numpy.arange(4.0), "lr": 0.5}, good)
    bad = tmp_path / "bad.ckpt"
    _rewrite_manifest(good, bad, lambda m, a: m.update(version=2))
    with pytest.raises(CheckpointError, match="newer chainrule"):
        load(bad)
    # a consistent archive whose float in the manifest was edited: the checksum catches it
    _rewrite_manifest(good, bad, lambda m, a: m["tree"]["v"][1][2].update(v=(0.25).hex()))
    with pytest.raises(CheckpointError, match="checksum"):
        load(bad)
    # an array replaced by another of the same shape and dtype
    _rewrite_manifest(good, bad, lambda m, a: a.update(w=numpy.arange(4.0)[::-1].copy()))
    with pytest.raises(CheckpointError, match="checksum"):
        load(bad)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("extra.npy", b"")
    with pytest.raises(CheckpointError, match="does not list"):
        load(bad)


def test_fuzz_truncation_and_bit_flips_never_crash_or_mislead(tmp_path):
    """Every prefix of the file, and 3000 random single-bit flips (plus every bit of the first
    and last 64 bytes): load() either raises CheckpointError or returns the exact original."""
    model = nn.MLP([3, 4, 2], rng=0)
    opt = optim.Adam(model.parameters())
    obj = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "lr": 0.1,
        "name": "run",
        "scalar": numpy.float32(1.5),
        "history": (0.5, 0.25),
    }
    path = tmp_path / "orig.ckpt"
    save(obj, path)
    raw = path.read_bytes()
    target = tmp_path / "fuzz.ckpt"
    outcomes = {"error": 0, "identical": 0}
    for n in range(len(raw)):
        _write(target, raw[:n])
        with pytest.raises(CheckpointError):
            load(target)
    rng = numpy.random.default_rng(0)
    nbits = len(raw) * 8
    bits = set(rng.choice(nbits, size=3000, replace=False).tolist())
    bits |= set(range(64 * 8)) | set(range(nbits - 64 * 8, nbits))
    for bit in sorted(bits):
        data = bytearray(raw)
        data[bit // 8] ^= 1 << (bit % 8)
        _write(target, bytes(data))
        try:
            back = load(target)
        except CheckpointError as e:
            assert str(target) in str(e)
            outcomes["error"] += 1
        else:
            # a flip in a field that does not affect the contents (e.g. a zip timestamp)
            assert same(back, obj), f"bit {bit} gave a different object"
            outcomes["identical"] += 1
    assert outcomes["error"] > 0.8 * len(bits)
