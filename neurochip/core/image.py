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
* ``delay`` (one byte per synapse) exists only when delays differ between synapses.

A weight byte decodes by the connection's ``decode`` rule (see
:func:`neurochip.core.fixedpoint.encode_weight_bytes`).
"""

from __future__ import annotations

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
from neurochip.core.errors import ImageFormatError
from neurochip.core.hw import HardwareSpec

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

    @property
    def cores(self) -> list[int]:
        return [s[0] for s in self.slices]


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
        if c.storage == "dense":
            pre = np.repeat(np.arange(c.n_pre, dtype=np.int64), c.n_post)
            post = np.tile(np.arange(c.n_post, dtype=np.int64), c.n_pre)
            return pre, post
        ptr = self.arrays[f"conn/{i}/ptr"]
        pre = np.repeat(np.arange(c.n_pre, dtype=np.int64), np.diff(ptr))
        return pre, self.arrays[f"conn/{i}/post"].astype(np.int64)

    # ------------------------------------------------------------------ I/O
    def manifest(self) -> dict[str, Any]:
        return _jsonable({
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "hw": {"name": self.hw.name, "hash": self.hw.spec_hash, "spec": self.hw.to_dict()},
            "populations": [asdict(p) for p in self.populations],
            "connections": [asdict(c) for c in self.connections],
            "cores": [asdict(c) for c in self.cores],
            "learning": self.learning,
            "metadata": self.metadata,
            "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                       for k, v in sorted(self.arrays.items())},
        })

    def save(self, path: str | Path) -> Path:
        """Write the image to ``path`` (conventionally ``*.nchip``)."""
        path = Path(path)
        man = json.dumps(self.manifest(), indent=1, sort_keys=True)
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.writestr("manifest.json", man)
            for name, arr in sorted(self.arrays.items()):
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr(f"arrays/{name}.npy", buf.getvalue())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ChipImage:
        """Read an image written by :meth:`save`."""
        path = Path(path)
        where = f"chip image {path}"
        if not path.exists():
            raise ImageFormatError("file does not exist", where=where)
        try:
            zf = zipfile.ZipFile(path, "r")
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImageFormatError(f"not a chip image (not a readable zip: {exc})",
                                   where=where) from None
        with zf:
            try:
                man = json.loads(zf.read("manifest.json"))
            except KeyError:
                raise ImageFormatError("manifest.json is missing", where=where) from None
            except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile, OSError,
                    EOFError, zlib.error) as exc:
                raise ImageFormatError(f"manifest.json is corrupt: {exc}", where=where) from None
            _check_manifest(man, where)
            arrays: dict[str, NDArray[Any]] = {}
            for name, meta in man["arrays"].items():
                try:
                    raw = zf.read(f"arrays/{name}.npy")
                    arr = np.load(io.BytesIO(raw), allow_pickle=False)
                except KeyError:
                    raise ImageFormatError(f"array '{name}' is missing", where=where) from None
                except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as exc:
                    raise ImageFormatError(f"array '{name}' is corrupt: {exc}",
                                           where=where) from None
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
        return cls(hw, pops, conns, cores, arrays, man.get("learning"), man.get("metadata", {}))

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
