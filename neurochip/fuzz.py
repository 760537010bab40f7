"""Fault injection for robustness tests: mutations of chip images, zip files, NIR files and
hardware descriptions, and the classification of what the toolchain made of them.

Every case ends in one of these outcomes:

* ``typed``: a :class:`neurochip.errors.NeurochipError` (the promise: a typed error);
* ``ok``: the input was accepted and ran correctly (the Numba emulator and the pure-Python
  reference agree, or the file read back is the one written);
* ``silent``: corrupted data was accepted (a damaged signed file loaded as something else);
* ``untyped``: any other exception (a broken promise);
* ``crash`` / ``hang`` / ``blowup``: seen by the parent process of a case (signal, timeout,
  memory limit), see ``tools/fuzz_report.py``.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from neurochip.core.errors import NeurochipError
from neurochip.core.image import ChipImage

__all__ = ["INTERESTING", "board_frame", "classify", "flip_bytes", "mutate_arrays",
           "mutate_manifest", "nchip_bytes", "run_image"]

INTERESTING: list[Any] = [
    -1, 0, 1, 2, 7, 8, 63, 64, 100, 255, 256, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32,
    2**40, 2**63 - 1, -2**31, -2**63, 1.5, -0.0, float("nan"), float("inf"), True, False,
    None, "", "x", "dense", "sparse", "lif", "input", [], [0], [1, 2, 3], {}, {"a": 1},
]


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [path] if path else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _leaves(v, (*path, i))
    return out


def mutate_manifest(man: dict[str, Any], rng: np.random.Generator) -> tuple[dict[str, Any], str]:
    """A copy of a manifest with one entry replaced, deleted, or duplicated."""
    m = copy.deepcopy(man)
    m.pop("digests", None)
    paths = [p for p in _leaves(m) if p[0] not in ("metadata",) or
             (len(p) > 1 and p[1] == "outputs")]
    path = paths[int(rng.integers(len(paths)))]
    parent: Any = m
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    op = int(rng.integers(10))
    if op == 0 and isinstance(parent, dict):
        del parent[key]
        return m, f"delete {'.'.join(map(str, path))}"
    old = parent[key]
    if op == 1 and isinstance(old, (int, float)) and not isinstance(old, bool):
        new: Any = old + int(rng.choice([-1, 1, -2, 2, 1000]))
    else:
        new = copy.deepcopy(INTERESTING[int(rng.integers(len(INTERESTING)))])
    parent[key] = new
    return m, f"{'.'.join(map(str, path))} = {new!r}"


def mutate_arrays(image: ChipImage, rng: np.random.Generator) -> tuple[ChipImage, str]:
    """A copy of ``image`` with one array element set to a boundary value (or resized)."""
    arrays = {k: v.copy() for k, v in image.arrays.items()}
    names = sorted(arrays)
    name = names[int(rng.integers(len(names)))]
    a = arrays[name]
    op = int(rng.integers(8))
    if op == 0 or a.size == 0:
        arrays[name] = np.concatenate([a, a[:1] if a.size else np.zeros(1, a.dtype)])
        what = f"{name}: one element appended"
    elif op == 1:
        arrays[name] = a[:-1]
        what = f"{name}: last element dropped"
    elif op == 2:
        arrays[name] = a.astype(np.int64 if a.dtype != np.int64 else np.int32)
        what = f"{name}: dtype changed"
    else:
        info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else None
        i = int(rng.integers(a.size))
        cands = [0, 1, -1, 2, int(a.flat[i]) + 1, int(a.flat[i]) - 1, 255, 256, 65536,
                 2**31, 2**31 - 1, -2**31, int(a.max(initial=0)) + 1]
        v = int(cands[int(rng.integers(len(cands)))])
        if info is not None:
            v = int(np.array(v).astype(np.int64).astype(a.dtype)) if not (
                info.min <= v <= info.max) else v
        a.flat[i] = v
        what = f"{name}[{i}] = {v}"
    img = ChipImage(image.hw, copy.deepcopy(image.populations),
                    copy.deepcopy(image.connections), copy.deepcopy(image.cores), arrays,
                    copy.deepcopy(image.learning), copy.deepcopy(image.metadata))
    return img, what


def nchip_bytes(manifest: dict[str, Any], members: dict[str, bytes]) -> bytes:
    """Zip a manifest and members (``arrays/...npy`` -> bytes) like :meth:`ChipImage.save`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        for k, v in members.items():
            zf.writestr(k, v)
    return buf.getvalue()


def flip_bytes(data: bytes, rng: np.random.Generator, n: int = 1) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
    return bytes(b)


def run_image(image: ChipImage, steps: int = 6, seed: int = 0) -> None:
    """Run an image on the Numba emulator and on the reference model; they must agree.

    Raises AssertionError when they differ (an accepted image that runs wrongly)."""
    from emulator.chip import Emulator

    rng = np.random.default_rng(seed)
    inputs = {p.name: rng.random((steps, p.size)) < 0.3 for p in image.input_populations}
    probes = [f"{p.name}.v" for p in image.lif_populations]
    a = Emulator(image).run(inputs, steps=steps, probes=probes)
    b = Emulator(image, backend="reference").run(inputs, steps=steps, probes=probes)
    for k in a.spikes:
        if not np.array_equal(a.spikes[k], b.spikes[k]):
            raise AssertionError(f"numba and reference spikes of {k} differ")
    for k in a.probes:
        if not np.array_equal(a.probes[k], b.probes[k]):
            raise AssertionError(f"numba and reference probe {k} differ")


def classify(fn: Any, *args: Any, **kw: Any) -> tuple[str, str]:
    """(outcome, detail) of calling ``fn``: 'typed', 'ok', 'silent' or 'untyped'."""
    try:
        r = fn(*args, **kw)
    except NeurochipError as exc:
        return "typed", f"{type(exc).__name__}: {exc}"[:300]
    except AssertionError as exc:
        return "silent", f"AssertionError: {exc}"[:300]
    except Exception as exc:  # classifying is the point
        return "untyped", f"{type(exc).__name__}: {exc}"[:300]
    if r == "silent":
        return "silent", "corrupted input accepted"
    return "ok", str(r or "")[:300]


def golden_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "tests" / "golden"


def mutate_nir_file(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """Copy a NIR (HDF5) file and replace, reshape or delete one of its datasets."""
    import shutil

    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        dsets: list[str] = []
        f.visititems(lambda k, o: dsets.append(k) if isinstance(o, h5py.Dataset) else None)
        k = dsets[int(rng.integers(len(dsets)))]
        old = np.asarray(f[k][()])
        op = int(rng.integers(8))
        del f[k]
        if op == 0:
            return f"{k} deleted"
        new: Any
        if op == 1 and old.dtype.kind in "iuf":
            new = np.full(old.shape, [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, 1e-30][
                int(rng.integers(7))])
        elif op == 2 and old.dtype.kind in "iuf" and old.size:
            new = old.astype(np.float64).copy()
            new.flat[int(rng.integers(old.size))] = [np.nan, 0.0, 1e9, -1e9, 10_000][
                int(rng.integers(5))]
        elif op == 3:
            new = old.reshape(-1)[: max(old.size - 1, 0)]
        elif op == 4:
            new = np.zeros((int(rng.integers(1, 5)),) * int(rng.integers(0, 4)))
        elif op == 5:
            new = np.bytes_(["LIF", "Linear", "Conv2d", "Affine", "x", ""][int(rng.integers(6))])
        elif op == 6:
            new = np.array([10_000, 10_000]) if old.size else np.array(7)
        else:
            new = np.concatenate([old.reshape(-1), old.reshape(-1)]) if old.size \
                else np.zeros(3)
        f[k] = new
        return f"{k} = {repr(f[k][()])[:60]}"


def mutate_hw_yaml(text: str, rng: np.random.Generator) -> tuple[str, str]:
    """A hardware description with one field deleted or replaced, or the text truncated."""
    import yaml

    d = yaml.safe_load(text)
    sec = sorted(d)[int(rng.integers(len(d)))]
    op = int(rng.integers(6))
    if op == 5:
        cut = int(rng.integers(len(text)))
        return text[:cut], f"truncated at {cut}"
    if isinstance(d[sec], dict) and d[sec]:
        key = sorted(d[sec])[int(rng.integers(len(d[sec])))]
        if op == 0:
            del d[sec][key]
            return yaml.safe_dump(d), f"{sec}.{key} deleted"
        val = INTERESTING[int(rng.integers(len(INTERESTING)))]
        d[sec][key] = val
        return yaml.safe_dump(d), f"{sec}.{key} = {val!r}"
    val = INTERESTING[int(rng.integers(len(INTERESTING)))]
    d[sec] = val
    return yaml.safe_dump(d), f"{sec} = {val!r}"


_OPS = ["info", "load", "run", "learn", "read_weights", "write_weights", "read_state",
        "write_state", "reset", "cancel", "hello", "auth", "close", "x"]
_FIELDS = ["steps", "probes", "spikes", "chunk", "connection", "epochs", "shuffle", "targets",
           "digest", "protocol", "reset"]
_ARRAYS = ["image", "weights", "u", "v", "reward", "inputs/in", "inputs/x", "targets/o", ""]
_DTYPES = ["|b1", "|u1", "<i4", "<i8", "<f8", "<f4", ">i2"]


def board_frame(rng: np.random.Generator) -> tuple[bytes, str]:
    """A board-protocol frame (:mod:`neurochip.board_wire`) that is malformed in one of
    many ways, or a well-formed request with out-of-range fields; and what was done."""
    import struct

    from neurochip.board_wire import MAGIC, VERSION, pack

    def pick() -> Any:
        return copy.deepcopy(INTERESTING[int(rng.integers(len(INTERESTING)))])

    header: dict[str, Any] = {"id": int(rng.integers(1, 1000)),
                              "op": _OPS[int(rng.integers(len(_OPS)))]}
    for f in _FIELDS:
        if rng.integers(3) == 0:
            header[f] = pick()
    if header["op"] == "run" and rng.integers(2):
        header["steps"] = int(rng.integers(0, 20))
    arrays = {}
    for _ in range(int(rng.integers(0, 3))):
        shape = tuple(int(s) for s in rng.integers(0, 5, int(rng.integers(0, 4))))
        arrays[_ARRAYS[int(rng.integers(len(_ARRAYS)))]] = np.zeros(
            shape, _DTYPES[int(rng.integers(len(_DTYPES)))])
    frame = pack(header, arrays)
    op = int(rng.integers(8))
    what = f"{header['op']} with {sorted(k for k in header if k not in ('id', 'op'))}"
    pre = struct.Struct(">3sBIQ")
    _, _, hlen, plen = pre.unpack(frame[:pre.size])
    body = frame[pre.size:]
    if op == 0:
        return frame, f"well formed: {what}"
    if op == 1:
        return flip_bytes(frame, rng, int(rng.integers(1, 5))), f"bits flipped: {what}"
    if op == 2:
        cut = int(rng.integers(len(frame)))
        return frame[:cut], f"truncated at {cut}: {what}"
    if op == 3:
        version = [0, 1, VERSION, 3, 255][int(rng.integers(5))]
        hl = [0, 1, hlen - 1, hlen + 1, 2**32 - 1, hlen][int(rng.integers(6))]
        pl = [0, plen + 1, 2**40, 2**64 - 1, plen][int(rng.integers(5))]
        return (pre.pack(MAGIC, version, max(hl, 0), max(pl, 0)) + body,
                f"version {version}, lengths {hl}/{pl}: {what}")
    if op == 4:
        table = [[pick() if rng.integers(3) == 0 else "inputs/in",
                  pick() if rng.integers(2) else "<i4",
                  pick() if rng.integers(2) else [2, 3],
                  pick() if rng.integers(2) else 0] for _ in range(int(rng.integers(1, 3)))]
        hb = json.dumps({**header, "arrays": table}).encode()
        payload = bytes(int(rng.integers(0, 64)))
        return (pre.pack(MAGIC, VERSION, len(hb), len(payload)) + hb + payload,
                f"array table {str(table)[:60]}")
    if op == 5:
        hb = [b"[" * 10_000 + b"]" * 10_000, b"[1, 2]", b"\xff\xfe\x00", b"null", b"{",
              json.dumps({"id": 1, "op": "run", "steps": "1" * 5000}).encode()][
            int(rng.integers(6))]
        return pre.pack(MAGIC, VERSION, len(hb), 0) + hb, f"header {hb[:20]!r}"
    if op == 6:
        return rng.bytes(int(rng.integers(1, 64))), "random bytes"
    return frame + frame, f"two requests at once: {what}"
