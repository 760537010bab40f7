"""The chip image: everything a chip (or the emulator) needs to run a compiled network.

On disk an image is one ``.nchip`` file: a zip holding ``manifest.json`` (format version,
hardware spec and its hash, populations, placement, routing summary, learning config,
metadata) and one ``.npy`` file per array (neuron registers, synapse memory, axon tables).
It is loaded without pickle; a wrong version, a corrupt or truncated file gives an
:class:`~neurochip.core.errors.ImageFormatError`. Saving and loading are exact round trips.

Synapse memory layout (per connection, pre-major, i.e. one fan-out list per pre neuron):

* dense: ``w`` is (n_pre * n_post) bytes, row j holds the weights from pre neuron j;
* sparse: ``ptr`` (n_pre + 1) delimits row j in ``w`` (one byte per synapse) and ``post``
  (the target's index within the post population);
* ``delay`` (one byte per synapse) exists only when delays differ between synapses;
* conv (shared weights): ``w`` holds the kernel once (C_out * C_in/groups * kh * kw
  bytes, C order) and the connection's ``conv`` entry its geometry; the synapses, in the
  sparse order (by pre, then post), follow from it (:mod:`neurochip.core.conv`).

Neurons: ``neurons/bias_mant``, ``neurons/bias_exp``, ``neurons/core`` (one entry per
neuron), and ``neurons/<register>`` (int32, one entry per neuron, 0 outside the populations
that have it) for each per-neuron register of a non-LIF model present. A population's
``model`` (default "lif"), its per-population ``registers`` and its ``payload_bits``
(graded spikes) are written only when they differ from a plain LIF / binary population,
so images of LIF networks are unchanged and images without them load as LIF.

A weight byte decodes by the connection's ``decode`` rule (see
:func:`neurochip.core.fixedpoint.encode_weight_bytes`).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core.conv import ConvGeometry
from neurochip.core.errors import ImageError, ImageFormatError, NeurochipError
from neurochip.core.hw import HardwareSpec
from neurochip.core.safeio import (
    DEFAULT_LIMITS,
    ReadLimits,
    atomic_write,
    check_zip_directory,
    loads_json_limited,
    read_member,
    read_npy,
)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ChipImage", "ConnectionInfo", "CoreInfo",
           "PopulationInfo"]

FORMAT_NAME = "neurochip-image"
FORMAT_VERSION = 1


@dataclass
class PopulationInfo:
    name: str
    kind: str  # "input" | "lif"
    size: int
    offset: int  # first index in the input space (inputs) or in the LIF neuron space
    du: int = 0
    dv: int = 0
    vth: int = 0
    reset: str = "zero"
    spiking: bool = True
    slices: list[list[int]] = field(default_factory=list)  # [core, start, count]
    model: str = "lif"  # neurochip.core.neuron_models.MODELS
    registers: dict[str, int] = field(default_factory=dict)  # per-population model registers
    payload_bits: int = 0  # graded spikes: payload width; 0 binary

    @property
    def cores(self) -> list[int]:
        return [s[0] for s in self.slices]

    @property
    def graded(self) -> bool:
        return self.payload_bits > 0


#: PopulationInfo fields written to the manifest only when they differ from these
_POP_DEFAULTS: dict[str, Any] = {"model": "lif", "registers": {}, "payload_bits": 0}


def _pop_entry(p: PopulationInfo) -> dict[str, Any]:
    d = asdict(p)
    for k, default in _POP_DEFAULTS.items():
        if d.get(k) == default:
            del d[k]
    return d


@dataclass
class ConnectionInfo:
    name: str
    pre: str
    post: str
    storage: str  # "dense" | "sparse"
    n_pre: int
    n_post: int
    n_synapses: int
    sign_mode: str
    num_weight_bits: int
    weight_exp: int
    delay: int  # delay of every synapse when has_delays is False
    has_delays: bool
    decode: int  # weight byte decode rule (0 int8, 1 uint8, 2 -uint8)
    wshift: int  # left shift applied to the decoded byte
    plastic: bool = False
    #: storage "conv": the geometry (neurochip.core.conv.ConvGeometry.to_dict); the
    #: ``w`` array then holds the kernel, once. Written only for conv connections.
    conv: dict[str, Any] | None = None
    #: the target's input it feeds (1: the second input of a two-input model, port
    #: "imag"); written only when not 0
    port: int = 0


def _conn_entry(c: ConnectionInfo) -> dict[str, Any]:
    d = asdict(c)
    if d.get("conv") is None:
        del d["conv"]
    if not d.get("port"):
        del d["port"]
    return d


@dataclass
class CoreInfo:
    core: int
    neurons: int
    synapse_bits: int
    input_axons: int
    output_axons: int
    populations: list[str] = field(default_factory=list)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


@dataclass
class ChipImage:
    """A compiled network, placed and routed for one hardware spec."""

    hw: HardwareSpec
    populations: list[PopulationInfo]
    connections: list[ConnectionInfo]
    cores: list[CoreInfo]
    arrays: dict[str, NDArray[Any]]
    learning: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)
    _signed: bool = field(default=False, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ lookup
    def population(self, name: str) -> PopulationInfo:
        for p in self.populations:
            if p.name == name:
                return p
        have = [p.name for p in self.populations]
        raise KeyError(f"no population {name!r} in image; have {have}")

    def connection(self, name: str) -> ConnectionInfo:
        for c in self.connections:
            if c.name == name:
                return c
        have = [c.name for c in self.connections]
        raise KeyError(f"no connection {name!r} in image; have {have}")

    def connection_index(self, name: str) -> int:
        for i, c in enumerate(self.connections):
            if c.name == name:
                return i
        raise KeyError(f"no connection {name!r} in image")

    @property
    def input_populations(self) -> list[PopulationInfo]:
        return [p for p in self.populations if p.kind == "input"]

    @property
    def lif_populations(self) -> list[PopulationInfo]:
        return [p for p in self.populations if p.kind == "lif"]

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.lif_populations)

    @property
    def n_inputs(self) -> int:
        return sum(p.size for p in self.input_populations)

    @property
    def n_synapses(self) -> int:
        return sum(c.n_synapses for c in self.connections)

    @property
    def used_cores(self) -> list[int]:
        return [c.core for c in self.cores]

    # ------------------------------------------------------------------ synapses
    def weights(self, name: str) -> NDArray[np.int64]:
        """Effective integer weights of a connection as a dense (post, pre) array."""
        W = self.weights_sparse(name)
        return np.asarray(W.toarray(), dtype=np.int64)

    def weights_sparse(self, name: str) -> sp.csr_matrix:
        """Effective weights as a CSR (post, pre) matrix with one entry per synapse."""
        i = self.connection_index(name)
        c = self.connections[i]
        w = fx.decode_weight_bytes(self.arrays[f"conn/{i}/w"], c.decode, c.wshift)
        if c.storage == "conv":
            pre_idx, post_idx, kidx = self.conv_geometry(i).pre_major()
            w = w[kidx]
        else:
            pre_idx, post_idx = self.synapse_coords(i)
        return sp.csr_matrix((w, (post_idx, pre_idx)), shape=(c.n_post, c.n_pre))

    def delays(self, name: str) -> NDArray[np.int64]:
        """Per-synapse delays as a dense (post, pre) array (0 where there is no synapse)."""
        i = self.connection_index(name)
        c = self.connections[i]
        pre_idx, post_idx = self.synapse_coords(i)
        out = np.zeros((c.n_post, c.n_pre), np.int64)
        d = (self.arrays[f"conn/{i}/delay"].astype(np.int64) if c.has_delays
             else np.full(pre_idx.size, c.delay, np.int64))
        out[post_idx, pre_idx] = d
        return out

    def synapse_coords(self, i: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(pre, post) indices of every synapse of connection i, in storage order."""
        c = self.connections[i]
        if c.storage == "conv":
            pre, post, _ = self.conv_geometry(i).pre_major()
            return pre, post
        if c.storage == "dense":
            pre = np.repeat(np.arange(c.n_pre, dtype=np.int64), c.n_post)
            post = np.tile(np.arange(c.n_post, dtype=np.int64), c.n_pre)
            return pre, post
        ptr = self.arrays[f"conn/{i}/ptr"]
        pre = np.repeat(np.arange(c.n_pre, dtype=np.int64), np.diff(ptr))
        return pre, self.arrays[f"conn/{i}/post"].astype(np.int64)

    def conv_geometry(self, i: int) -> ConvGeometry:
        """The geometry of conv connection i (checked; a typed error if malformed)."""
        c = self.connections[i]
        if c.storage != "conv":
            raise ImageError(f"connection '{c.name}' is {c.storage!r}, not a convolution",
                             member=f"manifest.connections[{i}].storage")
        return ConvGeometry.from_dict(c.conv, f"connection '{c.name}'")

    # ------------------------------------------------------------------ I/O
    def manifest(self) -> dict[str, Any]:
        return _jsonable({
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "hw": {"name": self.hw.name, "hash": self.hw.spec_hash, "spec": self.hw.to_dict()},
            "populations": [_pop_entry(p) for p in self.populations],
            "connections": [_conn_entry(c) for c in self.connections],
            "cores": [asdict(c) for c in self.cores],
            "learning": self.learning,
            "metadata": self.metadata,
            "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                       for k, v in sorted(self.arrays.items())},
        })

    @property
    def digest(self) -> str:
        """sha256 of the image: its manifest and the sha256 of every array member.

        For an image read from a file this is the digest of the file's content (checked
        against the one recorded in it, when it records one); for an image built in memory
        it is computed from the current content, and is what :meth:`save` records.
        """
        if self._digest is not None:
            return self._digest
        members = {k: hashlib.sha256(v).hexdigest() for k, v in self._member_bytes().items()}
        return _image_digest(json.loads(json.dumps(self.manifest())), members)

    @property
    def signed(self) -> bool:
        """True when the file this image was read from recorded digests (all matched)."""
        return self._signed

    def _member_bytes(self) -> dict[str, bytes]:
        out = {}
        for name, arr in sorted(self.arrays.items()):
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
            out[f"arrays/{name}.npy"] = buf.getvalue()
        return out

    def save(self, path: str | Path) -> Path:
        """Write the image to ``path`` (conventionally ``*.nchip``), atomically.

        The manifest records a sha256 of every member and the image digest."""
        path = Path(path)
        man = self.manifest()
        members = self._member_bytes()
        digests = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}
        man["digests"] = {"algorithm": "sha256", "members": digests,
                          "image": _image_digest(json.loads(json.dumps(man)), digests)}
        text = json.dumps(man, indent=1, sort_keys=True)
        with atomic_write(path) as fh, zipfile.ZipFile(
                fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, raw in [("manifest.json", text.encode()), *members.items()]:
                # a fixed timestamp: saving the same image twice gives the same bytes
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, raw, compresslevel=1)
        self._digest = man["digests"]["image"]
        self._signed = True
        return path

    @classmethod
    def load(cls, path: str | Path, *, verify: bool = True,
             limits: ReadLimits = DEFAULT_LIMITS) -> ChipImage:
        """Read an image written by :meth:`save`.

        Reading is capped (member count, sizes, compression ratio, ``.npy`` headers, JSON
        depth; see :mod:`neurochip.core.safeio`), the recorded digests are checked and the
        image is verified (:func:`neurochip.core.verify.verify_image`) before it is
        returned. ``verify=False`` skips the digest check and the verifier: for debugging
        a damaged file only, never for running one.
        """
        path = Path(path)
        where = f"chip image {path}"
        if not path.exists():
            raise ImageFormatError("file does not exist", where=where)
        try:
            zf = zipfile.ZipFile(path, "r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError, OverflowError) as exc:
            raise ImageFormatError(f"not a chip image (not a readable zip: {exc})",
                                   where=where) from None
        with zf:
            return cls._read(zf, where, verify, limits)

    @classmethod
    def from_bytes(cls, data: bytes, *, verify: bool = True, where: str = "chip image",
                   limits: ReadLimits = DEFAULT_LIMITS) -> ChipImage:
        """Read an image from the bytes of a ``.nchip`` file (same checks as :meth:`load`)."""
        if len(data) > limits.max_total_bytes:
            raise ImageError(f"is {len(data)} bytes; at most {limits.max_total_bytes}",
                             member="<file>", value=len(data), limit=limits.max_total_bytes,
                             where=where)
        try:
            zf = zipfile.ZipFile(io.BytesIO(data), "r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError, OverflowError) as exc:
            raise ImageFormatError(f"not a chip image (not a readable zip: {exc})",
                                   where=where) from None
        with zf:
            return cls._read(zf, where, verify, limits)

    @classmethod
    def _read(cls, zf: zipfile.ZipFile, where: str, verify: bool,
              limits: ReadLimits) -> ChipImage:
        try:
            return cls._read_checked(zf, where, verify, limits)
        except NeurochipError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, KeyError,
                TypeError, IndexError, AttributeError, OverflowError, NotImplementedError,
                RuntimeError, MemoryError, RecursionError) as exc:
            raise ImageFormatError(f"corrupt image ({type(exc).__name__}: {exc})",
                                   where=where) from None

    @classmethod
    def _read_checked(cls, zf: zipfile.ZipFile, where: str, verify: bool,
                      limits: ReadLimits) -> ChipImage:
        infos = check_zip_directory(zf, where, limits)
        if "manifest.json" not in infos:
            raise ImageFormatError("manifest.json is missing", where=where)
        raw_man = read_member(zf, infos["manifest.json"], where, cap=limits.max_json_bytes)
        man = loads_json_limited(raw_man, "manifest.json", where, limits)
        _check_manifest(man, where)
        members = {f"arrays/{name}.npy" for name in man["arrays"]} | {"manifest.json"}
        for name in infos:
            if name not in members:
                raise ImageError("member is not part of the image (the manifest does not "
                                 "list it)", member=name, where=where)
        recorded = man.pop("digests", None)
        if recorded is not None:
            _check_digest_entry(recorded, where)
        arrays: dict[str, NDArray[Any]] = {}
        digests: dict[str, str] = {}
        for name, meta in man["arrays"].items():
            member = f"arrays/{name}.npy"
            if member not in infos:
                raise ImageFormatError(f"array '{name}' is missing", where=where)
            raw = read_member(zf, infos[member], where)
            digests[member] = hashlib.sha256(raw).hexdigest()
            if verify and recorded is not None and \
                    recorded["members"].get(member) != digests[member]:
                raise ImageError("content does not match its recorded sha256 (the file was "
                                 "altered or damaged)", member=member, where=where)
            arr = read_npy(raw, member, where, limits)
            del raw
            if str(arr.dtype) != meta["dtype"] or list(arr.shape) != list(meta["shape"]):
                raise ImageFormatError(
                    f"array '{name}' has dtype {arr.dtype} shape {arr.shape}, manifest "
                    f"says {meta['dtype']} {tuple(meta['shape'])}", where=where)
            arrays[name] = arr
        hw = HardwareSpec.from_dict(man["hw"]["spec"], source=where)
        if hw.spec_hash != man["hw"]["hash"]:
            raise ImageFormatError("hardware spec does not match its recorded hash",
                                   where=where, field="hw.hash")
        try:
            pops = [PopulationInfo(**p) for p in man["populations"]]
            conns = [ConnectionInfo(**c) for c in man["connections"]]
            cores = [CoreInfo(**c) for c in man["cores"]]
        except TypeError as exc:
            raise ImageFormatError(f"manifest has unexpected fields: {exc}", where=where) from None
        image = cls(hw, pops, conns, cores, arrays, man.get("learning"),
                    man.get("metadata", {}))
        digest = _image_digest(man, digests)
        if verify and recorded is not None:
            if set(recorded["members"]) != set(digests):
                raise ImageError("the recorded digests list other members than the image "
                                 "holds", member="manifest.json", where=where)
            if recorded["image"] != digest:
                raise ImageError("the manifest does not match the recorded image digest "
                                 "(the file was altered)", member="manifest.json",
                                 where=where, value=digest, limit=recorded["image"])
        if verify:
            from neurochip.core.verify import verify_image

            verify_image(image, where)
        image._digest = digest
        image._signed = recorded is not None and verify
        return image

    def equals(self, other: ChipImage) -> bool:
        """Exact equality of manifests and of every array (dtype, shape and values)."""
        if self.manifest() != other.manifest():
            return False
        return all(
            a.dtype == other.arrays[k].dtype and np.array_equal(a, other.arrays[k])
            for k, a in self.arrays.items()
        )

    def summary(self) -> str:
        lines = [f"chip image for '{self.hw.name}': {len(self.populations)} populations, "
                 f"{self.n_neurons} neurons, {self.n_synapses} synapses, "
                 f"{len(self.cores)}/{self.hw.n_cores} cores"]
        for p in self.populations:
            shown = p.slices if len(p.slices) <= 8 else p.slices[:4]
            where = "host" if p.kind == "input" else ", ".join(
                f"core {c}[{s}:{s + n}]" for c, s, n in shown)
            if len(shown) < len(p.slices):  # a spatially tiled population
                where += (f", ... ({len(p.slices)} slices on {len(set(p.cores))} cores)")
            lines.append(f"  {p.name:<16} {p.kind:<5} n={p.size:<6} {where}")
        return "\n".join(lines)


def _image_digest(manifest: dict[str, Any], members: dict[str, str]) -> str:
    """sha256 over the manifest (without its digests) and the members' sha256, canonical."""
    man = {k: v for k, v in manifest.items() if k != "digests"}
    payload = json.dumps({"manifest": man, "members": members}, sort_keys=True,
                         separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


_HEX64 = frozenset("0123456789abcdef")


def _check_digest_entry(d: Any, where: str) -> None:
    def ok(h: Any) -> bool:
        return isinstance(h, str) and len(h) == 64 and set(h) <= _HEX64

    if (not isinstance(d, dict) or d.get("algorithm") != "sha256"
            or not isinstance(d.get("members"), dict) or not ok(d.get("image"))
            or not all(ok(h) for h in d["members"].values())):
        raise ImageError("malformed digests entry (expected sha256 member and image "
                         "digests)", member="manifest.json", where=where)


def _check_manifest(man: Any, where: str) -> None:
    if not isinstance(man, dict) or man.get("format") != FORMAT_NAME:
        raise ImageFormatError("not a neurochip image (wrong 'format' in manifest)", where=where,
                               field="format")
    ver = man.get("version")
    if ver != FORMAT_VERSION:
        raise ImageFormatError(
            f"unsupported image version {ver!r}; this neurochip reads version {FORMAT_VERSION}",
            where=where, field="version", value=ver, limit=FORMAT_VERSION)
    for key in ("hw", "populations", "connections", "cores", "arrays"):
        if key not in man:
            raise ImageFormatError(f"manifest lacks '{key}'", where=where, field=key)
    kinds = {"hw": dict, "populations": list, "connections": list, "cores": list,
             "arrays": dict}
    for key, kind in kinds.items():
        if not isinstance(man[key], kind):
            raise ImageError(f"must be a {kind.__name__}", member=f"manifest.{key}",
                             where=where)
    hw = man["hw"]
    if not isinstance(hw.get("spec"), dict) or not isinstance(hw.get("hash"), str):
        raise ImageError("must hold a 'spec' mapping and a 'hash' string",
                         member="manifest.hw", where=where)
    for key in ("metadata", "learning"):
        if man.get(key) is not None and not isinstance(man[key], dict):
            raise ImageError("must be a mapping", member=f"manifest.{key}", where=where)
    for name, meta in man["arrays"].items():
        if (not isinstance(meta, dict) or not isinstance(meta.get("dtype"), str)
                or not isinstance(meta.get("shape"), list)):
            raise ImageError("must be {'dtype': str, 'shape': list}",
                             member=f"manifest.arrays.{name}", where=where)
