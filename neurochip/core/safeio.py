"""Safe reading and writing of user files: capped decompression, validated ``.npy`` headers,
depth-limited JSON, bounded allocations and atomic writes.

Reading: nothing read from a file is trusted before it has been bounded. A zip's member
count, member sizes, total inflated size and compression ratio are checked from its
directory before anything is inflated, and inflation itself is capped (a directory can
lie); a ``.npy`` header's dtype, shape and size are checked against the bytes that follow
before an array is allocated; JSON is rejected past a nesting depth before it is parsed.

Writing: :func:`atomic_path` and :func:`atomic_write` write to a unique temporary file in
the target's folder, fsync it, ``os.replace`` it onto the target and fsync the folder, so
a reader sees the old file or the new one, never a mix, and an error or an interrupt
leaves the previous file untouched and no temporary file behind.
"""

from __future__ import annotations

import ast
import contextlib
import math
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import ConfigError, ImageError, NeurochipError

__all__ = [
    "DEFAULT_LIMITS",
    "ReadLimits",
    "atomic_path",
    "atomic_write",
    "check_alloc",
    "check_positive_finite",
    "check_zip_directory",
    "json_depth",
    "loads_json_limited",
    "read_member",
    "read_npy",
]


@dataclass(frozen=True)
class ReadLimits:
    """Bounds on what reading one file may cost."""

    max_members: int = 100_000
    max_member_bytes: int = 4 << 30  # one inflated member
    max_total_bytes: int = 8 << 30  # every member inflated
    max_ratio: float = 200.0  # inflated / compressed size (of a member, and of them all)
    ratio_floor_bytes: int = 1 << 20  # members smaller than this may have any ratio
    total_floor_bytes: int = 64 << 20  # archives inflating to less may have any ratio
    max_json_bytes: int = 64 << 20
    max_json_depth: int = 64
    max_elements: int = 1 << 34  # elements of one array


DEFAULT_LIMITS = ReadLimits()


# --------------------------------------------------------------------------------------
# Zip archives
# --------------------------------------------------------------------------------------


def check_zip_directory(zf: zipfile.ZipFile, where: str,
                        limits: ReadLimits = DEFAULT_LIMITS) -> dict[str, zipfile.ZipInfo]:
    """Bound a zip's directory before anything is inflated; name -> info (no duplicates)."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ImageError(f"{len(infos)} members; at most {limits.max_members} allowed",
                         member="<zip>", value=len(infos), limit=limits.max_members,
                         where=where)
    out: dict[str, zipfile.ZipInfo] = {}
    total = 0
    packed = 0
    for info in infos:
        name = info.filename
        if name in out:
            raise ImageError("member appears twice in the zip directory", member=name,
                             where=where)
        if info.flag_bits & 0x1:
            raise ImageError("member is encrypted", member=name, where=where)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ImageError(f"unsupported compression method {info.compress_type}",
                             member=name, value=info.compress_type, where=where)
        size = int(info.file_size)
        if size > limits.max_member_bytes:
            raise ImageError(f"inflates to {size} bytes; at most {limits.max_member_bytes}",
                             member=name, value=size, limit=limits.max_member_bytes,
                             where=where)
        if size > limits.ratio_floor_bytes:
            ratio = size / max(int(info.compress_size), 1)
            if ratio > limits.max_ratio:
                raise ImageError(
                    f"compression ratio {ratio:.0f} exceeds {limits.max_ratio:.0f} "
                    "(a decompression bomb?)", member=name, value=ratio,
                    limit=limits.max_ratio, where=where)
        total += size
        packed += int(info.compress_size)
        out[name] = info
    if total > limits.total_floor_bytes and total > limits.max_ratio * max(packed, 1):
        raise ImageError(f"members inflate to {total} bytes from {packed}: a ratio above "
                         f"{limits.max_ratio:.0f} (a decompression bomb?)", member="<zip>",
                         value=total, limit=limits.max_ratio, where=where)
    if total > limits.max_total_bytes:
        raise ImageError(f"members inflate to {total} bytes in all; at most "
                         f"{limits.max_total_bytes}", member="<zip>", value=total,
                         limit=limits.max_total_bytes, where=where)
    return out


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str,
                cap: int | None = None) -> bytes:
    """Inflate one member, never past its declared size (or ``cap``), CRC checked."""
    limit = int(info.file_size) if cap is None else min(int(info.file_size), cap)
    if cap is not None and info.file_size > cap:
        raise ImageError(f"is {info.file_size} bytes; at most {cap} allowed",
                         member=info.filename, value=info.file_size, limit=cap, where=where)
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise ImageError(f"is corrupt: {exc}", member=info.filename, where=where) from None
    if len(data) != info.file_size:
        raise ImageError(f"inflates to a size other than the {info.file_size} bytes its "
                         "directory entry declares", member=info.filename, where=where)
    return data


# --------------------------------------------------------------------------------------
# .npy arrays
# --------------------------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float: never object, void, strings


def read_npy(raw: bytes, member: str, where: str,
             limits: ReadLimits = DEFAULT_LIMITS) -> NDArray[Any]:
    """An array from ``.npy`` bytes, its header validated before anything is allocated.

    The dtype must be a plain number type, the shape non-negative and the payload exactly
    ``prod(shape) * itemsize`` bytes; the result is a read-only-free copy (writable).
    """
    def bad(msg: str, **kw: Any) -> ImageError:
        return ImageError(f"bad .npy data: {msg}", member=member, where=where, **kw)

    if len(raw) < 10 or raw[:6] != _NPY_MAGIC:
        raise bad("no .npy magic")
    major = raw[6]
    if major == 1:
        hlen, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3):
        if len(raw) < 12:
            raise bad("truncated header")
        hlen, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise bad(f"unsupported .npy version {major}")
    if hlen > 65536 or start + hlen > len(raw):
        raise bad(f"header length {hlen} does not fit the data", value=hlen)
    try:
        header = raw[start: start + hlen].decode("latin1" if major < 3 else "utf8")
        d = ast.literal_eval(header)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise bad("header is not a Python literal") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise bad("header must have exactly 'descr', 'fortran_order' and 'shape'")
    descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
    if not isinstance(descr, str) or not isinstance(fortran, bool):
        raise bad("header 'descr' must be a string and 'fortran_order' a bool")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise bad(f"unknown dtype {descr!r}") from None
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype:
        raise bad(f"dtype {descr!r} is not a plain number type")
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(type(n) is int and 0 <= n for n in shape)):
        raise bad(f"shape {shape!r} is not a tuple of non-negative ints")
    n = math.prod(shape)
    if n > limits.max_elements:
        raise bad(f"{n} elements; at most {limits.max_elements}", value=n,
                  limit=limits.max_elements)
    body = len(raw) - start - hlen
    if n * dtype.itemsize != body:
        raise bad(f"shape {shape} of {dtype} needs {n * dtype.itemsize} bytes, the member "
                  f"holds {body}", value=body, limit=n * dtype.itemsize)
    arr = np.frombuffer(raw, dtype=dtype, count=n, offset=start + hlen)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    return np.array(arr, order="C")


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """Largest nesting depth of ``[`` / ``{`` in JSON text (strings ignored)."""
    stripped = _JSON_STRING.sub(b"", raw)
    a = np.frombuffer(stripped, np.uint8)
    if a.size == 0:
        return 0
    step = ((a == ord("[")) | (a == ord("{"))).astype(np.int64) - \
        ((a == ord("]")) | (a == ord("}"))).astype(np.int64)
    return int(np.cumsum(step).max(initial=0))


def loads_json_limited(raw: bytes, member: str, where: str,
                       limits: ReadLimits = DEFAULT_LIMITS) -> Any:
    """Parse JSON bytes after bounding their size and nesting depth."""
    import json

    if len(raw) > limits.max_json_bytes:
        raise ImageError(f"is {len(raw)} bytes; at most {limits.max_json_bytes}",
                         member=member, value=len(raw), limit=limits.max_json_bytes,
                         where=where)
    depth = json_depth(raw)
    if depth > limits.max_json_depth:
        raise ImageError(f"JSON nests {depth} deep; at most {limits.max_json_depth}",
                         member=member, value=depth, limit=limits.max_json_depth, where=where)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ImageError(f"is corrupt (not valid JSON: {exc})", member=member,
                         where=where) from None


# --------------------------------------------------------------------------------------
# Values and allocations from untrusted files
# --------------------------------------------------------------------------------------


def check_positive_finite(value: Any, where: str, field: str,
                          error: type[NeurochipError] = ConfigError) -> float:
    """A real number > 0 and finite (``True`` is not a number); returned as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise error(f"must be a positive number, got {value!r}", where=where, field=field)
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise error(f"must be a positive finite number, got {v!r}", where=where, field=field,
                    value=v)
    return v


#: elements one array decoded from a model file may have (2**28: 2 GiB of float64)
MAX_MODEL_ELEMENTS = 1 << 28


def check_alloc(shape: Any, where: str, field: str, limit: int = MAX_MODEL_ELEMENTS,
                error: type[NeurochipError] = ConfigError) -> tuple[int, ...]:
    """Bound an array shape read from a file before anything of that shape is allocated."""
    try:
        dims = tuple(int(n) for n in shape)
    except (TypeError, ValueError, OverflowError):
        raise error(f"shape {shape!r} is not a tuple of integers", where=where,
                    field=field) from None
    if any(n < 0 for n in dims):
        raise error(f"shape {dims} has a negative size", where=where, field=field, value=dims)
    n = math.prod(dims)
    if n > limit:
        raise error(f"shape {dims} has {n} elements; at most {limit}", where=where,
                    field=field, value=n, limit=limit)
    return dims


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a unique temporary path next to ``path``; on success it replaces ``path``.

    For writers that want a path (``np.savez``, ``savefig``, HDF5, zip). The temporary
    name keeps ``path``'s suffix (or ``suffix``) so suffix-sniffing writers behave. On any
    exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(
        suffix if suffix is not None else path.suffix or ".tmp"), dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing; it replaces ``path`` on success."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()


def _default_mode() -> int:
    """Permissions a newly created file gets under the current umask (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()  # read once at import: os.umask is process-wide
