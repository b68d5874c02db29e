"""``save`` and ``load``: checkpoints of nested dicts of arrays, numbers and strings.

The file is an ordinary NumPy ``.npz`` archive, readable with ``numpy.load(path,
allow_pickle=False)`` and never containing pickled objects:

* every array is one member, named after its place in the nesting (``model/layers.0.weight``);
* the member ``__chainrule_manifest__`` is a ``uint8`` array holding UTF-8 JSON: the format
  name and version, the structure (dicts with string or int keys, lists, tuples, None, bools,
  ints, floats stored as ``float.hex`` so they round-trip bit-exactly, strings), the dtype and
  shape of each array, and a SHA-256 checksum over the manifest and every array's bytes.

Writes are atomic: the archive goes to a temporary file in the target directory, is flushed to
disk and then ``os.replace``-d over the target, so a crash never leaves a half-written
checkpoint under the real name.  ``load`` checks everything before it returns: a truncated,
corrupted, bit-flipped or foreign file raises :class:`CheckpointError` naming the file, never
another exception and never a wrong value.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import zipfile
from typing import Any

import numpy
import numpy.lib.format as npformat

import chainrule as cr

__all__ = ["save", "load", "CheckpointError", "FORMAT", "VERSION"]

FORMAT = "chainrule.checkpoint"
VERSION = 1
_MANIFEST = "__chainrule_manifest__"
_MAX_MANIFEST = 256 * 1024 * 1024
_ARRAY_KINDS = "biufcUSMm"


class CheckpointError(ValueError):
    """A file is not a valid chainrule checkpoint (truncated, corrupted, or foreign).

    ``.path`` is the file, ``.reason`` what is wrong with it.  A subclass of ``ValueError``.

    Example
    -------
    >>> from chainrule.train.checkpoint import CheckpointError
    >>> str(CheckpointError("model.ckpt", "the file is empty"))
    'model.ckpt: not a valid chainrule checkpoint: the file is empty'
    """

    def __init__(self, path: Any, reason: str) -> None:
        p = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        self.path = p.decode(errors="replace") if isinstance(p, bytes) else p
        self.reason = reason if len(reason) <= 300 else reason[:297] + "..."
        super().__init__(f"{self.path}: not a valid chainrule checkpoint: {self.reason}")


# --- encoding --------------------------------------------------------------------------------


def _contiguous(a: numpy.ndarray) -> numpy.ndarray:
    return a if a.flags.c_contiguous else numpy.array(a, order="C")  # keeps 0-d arrays 0-d


def _safe(name: str) -> str:
    """A member name from a path in the saved structure: letters, digits, ``_``, ``-`` and
    single dots only (``layers/0/weight`` -> ``layers.0.weight``), so no ``..`` and no ``/``
    ever reach the archive, whatever the dict keys were."""
    s = re.sub(r"[^A-Za-z0-9_.\-]", "_", name.replace("/", "."))
    s = re.sub(r"\.{2,}", ".", s).strip(".") or "_"
    return s[:180]


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, numpy.ndarray] = {}

    def key(self, where: str) -> str:
        base = _safe(where)
        k, n = base, 1
        while k in self.arrays or k == _MANIFEST:
            n += 1
            k = f"{base}~{n}"
        return k

    def array(self, a: numpy.ndarray, where: str) -> str:
        if a.dtype.kind not in _ARRAY_KINDS or a.dtype.fields is not None:
            raise TypeError(
                f"chainrule.save: the array at {where or 'the top level'} has "
                f"dtype {a.dtype}, which cannot be saved without pickle; convert it "
                "to a numeric or string dtype"
            )
        k = self.key(where)
        self.arrays[k] = _contiguous(a)
        return k

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None:
            return {"t": "none"}
        if isinstance(obj, bool):
            return {"t": "bool", "v": obj}
        if isinstance(obj, int):
            return {"t": "int", "v": obj}
        if isinstance(obj, float):
            return {"t": "float", "v": obj.hex()}
        if isinstance(obj, str):
            return {"t": "str", "v": obj}
        if isinstance(obj, cr.Tensor):
            return {"t": "array", "k": self.array(numpy.asarray(obj.data), where)}
        if isinstance(obj, numpy.ndarray):
            return {"t": "array", "k": self.array(obj, where)}
        if isinstance(obj, numpy.generic):
            return {"t": "scalar", "k": self.array(numpy.asarray(obj), where)}
        if type(obj) is dict:
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(
                        f"chainrule.save: dict keys must be str or int, got "
                        f"{type(k).__name__} {k!r} at {where or 'the top level'}"
                    )
                tag = "s" if isinstance(k, str) else "i"
                items.append([tag, k, self.encode(v, f"{where}/{k}" if where else str(k))])
            return {"t": "dict", "v": items}
        if type(obj) in (list, tuple):
            return {
                "t": type(obj).__name__,
                "v": [
                    self.encode(v, f"{where}/{i}" if where else str(i)) for i, v in enumerate(obj)
                ],
            }
        raise TypeError(
            f"chainrule.save: cannot save a {type(obj).__name__} (at "
            f"{where or 'the top level'}); checkpoints hold dicts, lists, tuples, "
            "arrays, numbers, strings and None"
        )


def _canonical(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(manifest: dict[str, Any], arrays: dict[str, numpy.ndarray]) -> str:
    h = hashlib.sha256(_canonical(manifest))
    for k in sorted(arrays):
        a = _contiguous(arrays[k])
        h.update(k.encode("utf-8") + b"\0" + a.dtype.str.encode() + repr(a.shape).encode())
        h.update(a.reshape(-1).view(numpy.uint8).tobytes() if a.size else b"")
    return h.hexdigest()


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of arrays, numbers, strings, None) to ``path``.

    Chainrule tensors are saved as their values.  The write is atomic (a temporary file in the
    same directory, then ``os.replace``).  ``path`` is used exactly as given (no ``.npz`` is
    appended).

    Raises
    ------
    TypeError
        For an object that cannot be stored without pickle; nothing is written then.

    Example
    -------
    >>> import os, tempfile, numpy, chainrule as cr
    >>> from chainrule.train.checkpoint import save, load
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> save({"weights": {"w": numpy.arange(3.0)}, "epoch": 4, "lr": 0.1}, path)
    >>> state = load(path)
    >>> state["weights"]["w"], state["epoch"], state["lr"]
    (array([0., 1., 2.]), 4, 0.1)
    """
    enc = _Encoder()
    tree = enc.encode(obj, "")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "tree": tree,
        "arrays": {
            k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in enc.arrays.items()
        },
    }
    manifest["sha256"] = _digest(manifest, enc.arrays)
    blob = json.dumps(manifest, sort_keys=True, ensure_ascii=True).encode()
    members = dict(enc.arrays)
    members[_MANIFEST] = numpy.frombuffer(blob, dtype=numpy.uint8)

    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    _remove_stale_temporaries(directory, os.path.basename(target))
    # Created like any new file (mode 0666 less the umask, applied by the system; the
    # process-wide umask is never changed), under a name that says which process writes it.
    tmp = os.path.join(
        directory, f".{os.path.basename(target)}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    )
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **members)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _remove_stale_temporaries(directory: str, base: str) -> None:
    """Delete the temporary files that a save of the same target left when its process died
    (a save in progress in another live process is left alone)."""
    pattern = re.compile(rf"^\.{re.escape(base)}\.(\d+)\.[0-9a-f]+\.tmp$")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        m = pattern.match(name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # someone else's process (or not knowable): keep its file
    return True


# --- decoding --------------------------------------------------------------------------------


class _Bad(Exception):
    """Internal: a specific reason the file is invalid."""


def _read_header(f: Any) -> tuple[tuple[int, ...], bool, numpy.dtype[Any]]:
    version = npformat.read_magic(f)
    if version == (1, 0):
        return npformat.read_array_header_1_0(f)
    if version == (2, 0):
        return npformat.read_array_header_2_0(f)
    raise _Bad(f"unsupported .npy version {version}")


def _read_member(zf: zipfile.ZipFile, name: str, dtype: str, shape: list[int]) -> numpy.ndarray:
    member = name + ".npy"
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise _Bad(f"the array '{name}' listed in the manifest is missing") from None
    with zf.open(info) as f:
        hshape, fortran, hdtype = _read_header(f)
        header_len = f.tell()
    if hdtype.str != dtype or list(hshape) != list(shape) or hdtype.hasobject:
        raise _Bad(
            f"the array '{name}' has dtype {hdtype.str} and shape {hshape} but the "
            f"manifest says {dtype} and {tuple(shape)}"
        )
    nbytes = int(numpy.prod(hshape, dtype=object)) * hdtype.itemsize
    if header_len + nbytes != info.file_size:
        raise _Bad(
            f"the array '{name}' should take {nbytes} bytes but its member holds "
            f"{info.file_size - header_len}"
        )
    with zf.open(info) as f:
        data = f.read()  # zipfile checks the CRC-32 at the end
    if len(data) != info.file_size:
        raise _Bad(f"the array '{name}' is truncated")
    arr = npformat.read_array(io.BytesIO(data), allow_pickle=False)
    return numpy.asarray(arr)


def _decode(node: Any, arrays: dict[str, numpy.ndarray], used: set[str]) -> Any:
    if not isinstance(node, dict) or "t" not in node:
        raise _Bad("malformed structure in the manifest")
    t = node["t"]
    if t == "none":
        return None
    if t == "bool":
        v = node["v"]
        if not isinstance(v, bool):
            raise _Bad("malformed bool in the manifest")
        return v
    if t == "int":
        v = node["v"]
        if not isinstance(v, int) or isinstance(v, bool):
            raise _Bad("malformed int in the manifest")
        return v
    if t == "float":
        return float.fromhex(node["v"])
    if t == "str":
        if not isinstance(node["v"], str):
            raise _Bad("malformed string in the manifest")
        return node["v"]
    if t in ("array", "scalar"):
        k = node["k"]
        if k not in arrays or k in used:
            raise _Bad(f"the manifest refers to an unknown or repeated array '{k}'")
        used.add(k)
        return arrays[k] if t == "array" else arrays[k][()]
    if t == "dict":
        out = {}
        for tag, k, v in node["v"]:
            if (
                (tag == "s" and not isinstance(k, str))
                or (tag == "i" and (not isinstance(k, int) or isinstance(k, bool)))
                or tag not in ("s", "i")
            ):
                raise _Bad("malformed dict key in the manifest")
            out[k] = _decode(v, arrays, used)
        return out
    if t in ("list", "tuple"):
        items = [_decode(v, arrays, used) for v in node["v"]]
        return items if t == "list" else tuple(items)
    raise _Bad(f"unknown entry type {t!r} in the manifest")


def _load(path: str) -> Any:
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise _Bad("the file is empty")
    if head != b"PK\x03\x04":
        if head.startswith(b"\x93NUM"):
            raise _Bad("it is a single .npy array, not a checkpoint archive")
        raise _Bad("it is not a NumPy .npz (zip) archive")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise _Bad(f"truncated or corrupted archive ({e})") from e
    with zf:
        names = zf.namelist()
        size = os.path.getsize(path)
        for member in zf.infolist():
            # save writes stored (uncompressed) members only: a compressed one could declare
            # gigabytes from a few bytes, so it is refused before anything is decompressed
            if member.compress_type != zipfile.ZIP_STORED:
                raise _Bad(f"the member {member.filename[:60]!r} is compressed")
            if member.file_size != member.compress_size or member.file_size > size:
                raise _Bad(
                    f"the member {member.filename[:60]!r} declares {member.file_size} bytes "
                    f"in a file of {size}"
                )
        if _MANIFEST + ".npy" not in names:
            raise _Bad("no chainrule manifest in the archive (a plain .npz from elsewhere?)")
        info = zf.getinfo(_MANIFEST + ".npy")
        if info.file_size > _MAX_MANIFEST:
            raise _Bad("the manifest is implausibly large")
        with zf.open(info) as f:
            raw = f.read()
        blob = npformat.read_array(io.BytesIO(raw), allow_pickle=False)
        if blob.dtype != numpy.uint8 or blob.ndim != 1:
            raise _Bad("the manifest is not a uint8 array")
        try:
            manifest = json.loads(blob.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _Bad(f"the manifest is not valid JSON ({e})") from e
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _Bad("the manifest does not name the chainrule checkpoint format")
        version = manifest.get("version")
        if not isinstance(version, int) or version < 1:
            raise _Bad(f"invalid format version {version!r}")
        if version > VERSION:
            raise _Bad(
                f"it was written in format version {version} by a newer chainrule; "
                f"this one reads up to version {VERSION}. Upgrade chainrule"
            )
        listed = manifest.get("arrays")
        if not isinstance(listed, dict):
            raise _Bad("the manifest has no array table")
        expected = {k + ".npy" for k in listed} | {_MANIFEST + ".npy"}
        extra = sorted(set(names) - expected)
        if extra or len(names) != len(set(names)):
            shown = ", ".join(repr(e[:40]) for e in extra[:3])
            raise _Bad(f"the archive has members the manifest does not list: {shown}")
        arrays = {
            k: _read_member(zf, k, spec["dtype"], spec["shape"]) for k, spec in listed.items()
        }
    if _digest(manifest, arrays) != manifest.get("sha256"):
        raise _Bad("checksum mismatch: the contents were changed or corrupted")
    used: set[str] = set()
    obj = _decode(manifest["tree"], arrays, used)
    if used != set(arrays):
        raise _Bad("the manifest lists arrays that its structure does not use")
    return obj


def load(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint written by :func:`save`, verifying it completely first.

    Returns the saved structure: dicts, lists, tuples, NumPy arrays (bit-exact, same dtype and
    shape), NumPy scalars, Python numbers, strings and None.

    Raises
    ------
    CheckpointError
        (a ``ValueError``) naming ``path`` when the file is empty, truncated, corrupted (any
        changed byte: checked by CRC-32 per member and a SHA-256 over everything), not a
        chainrule checkpoint, or from a newer format version.
    FileNotFoundError
        When ``path`` does not exist (``OSError`` for other I/O failures).

    Example
    -------
    >>> import os, tempfile, chainrule as cr
    >>> from chainrule.train.checkpoint import load, CheckpointError
    >>> bad = os.path.join(tempfile.mkdtemp(), "bad.ckpt")
    >>> with open(bad, "wb") as f:
    ...     _ = f.write(b"not a checkpoint")
    >>> try:
    ...     load(bad)
    ... except CheckpointError as e:
    ...     print(e.reason)
    it is not a NumPy .npz (zip) archive
    """
    p = os.fspath(path)
    try:
        return _load(p)
    except _Bad as e:
        raise CheckpointError(p, str(e)) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # anything a damaged archive can make zipfile/numpy raise
        raise CheckpointError(p, f"corrupted or truncated ({type(e).__name__}: {e})") from e
