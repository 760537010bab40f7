"""Hardware description of a Loihi-style chip: one spec object feeds compiler, image and emulator.

A chip is data: a YAML file in ``hw_configs/`` validated by these pydantic models. A new
chip is a new YAML file (optionally ``extends:`` another one), never a new package.

Timing: the per-operation costs are given in nanoseconds and counted in integer *cycles*
of ``timing.cycle_ns``. For a clocked chip that is the clock period. An asynchronous chip
such as Loihi has no clock; there ``cycle_ns`` is a fixed time quantum (0.1 ns) chosen so
that every published per-operation time is a whole number of quanta, which keeps the
accounting exact and integer.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from neurochip.core.errors import HardwareSpecError

__all__ = [
    "RUNTIME_COUNTS",
    "AffineTerm",
    "CoreLimits",
    "CostOptions",
    "EnergyModel",
    "HardwareSpec",
    "LearningSpec",
    "MeshSpec",
    "NumberFormats",
    "RuntimeModel",
    "TimingModel",
    "available_hw",
    "load_hw",
]


#: cores a hardware description may declare (the emulator keeps per-core tables)
MAX_CORES = 1 << 16
#: cycles one operation may take (keeps every cycle count far inside int64)
MAX_OP_CYCLES = 1 << 32
#: energy of one operation (pJ) or static power per core (mW)
MAX_PJ = 1e12
#: size of a hardware description file
MAX_SPEC_BYTES = 1 << 20
#: fields added after images and recordings were first written: left out of the
#: serialised spec (and so of its hash) while they hold their default, so that the
#: digests of existing chips do not change
_OMIT_AT_DEFAULT = (("core", "neuron_state_bits", 0), ("formats", "graded_payload_bits", 0))


class _Strict(BaseModel):
    # NaN and infinities are never a valid figure; True/False are not numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        ann = cls.model_fields[info.field_name or ""].annotation
        if ann is not bool and (isinstance(v, bool) or (
                isinstance(v, (list, tuple)) and any(isinstance(x, bool) for x in v))):
            raise ValueError(f"must be a number, not {v!r}")
        return v


class MeshSpec(_Strict):
    """Cores grouped in tiles; tiles on a 2-D mesh; chips side by side along x."""

    tiles_x: int = Field(gt=0)
    tiles_y: int = Field(gt=0)
    cores_per_tile: int = Field(gt=0)
    chips: int = Field(default=1, gt=0)
    io_tile: tuple[int, int] = (0, 0)  # where host/sensor spikes enter chip 0

    @model_validator(mode="after")
    def _io_inside(self) -> MeshSpec:
        tx, ty = self.io_tile
        if not (0 <= tx < self.tiles_x and 0 <= ty < self.tiles_y):
            raise ValueError(f"io_tile {self.io_tile} is outside the {self.tiles_x} x "
                             f"{self.tiles_y} tile mesh")
        return self

    @model_validator(mode="after")
    def _bounded(self) -> MeshSpec:
        if self.n_cores > MAX_CORES:
            raise ValueError(f"the mesh has {self.n_cores} cores; at most {MAX_CORES}")
        return self

    @property
    def cores_per_chip(self) -> int:
        return self.tiles_x * self.tiles_y * self.cores_per_tile

    @property
    def n_cores(self) -> int:
        return self.cores_per_chip * self.chips


class CoreLimits(_Strict):
    max_neurons: int = Field(gt=0, le=65535)
    synapse_memory_bits: int = Field(gt=0, le=1 << 40)
    max_input_axons: int = Field(gt=0, le=1 << 24)
    max_output_axons: int = Field(gt=0, le=1 << 24)
    #: bits of core memory one neuron's state takes out of ``synapse_memory_bits``: a chip
    #: whose memory is one budget per core shared between synapses and neuron state (Loihi 2)
    #: sets it; 0 (the default) means neuron state has memory of its own.
    neuron_state_bits: int = Field(default=0, ge=0, le=1 << 16)


class NumberFormats(_Strict):
    """Register widths. Every width is declared here once."""

    weight_bits: int = Field(default=8, ge=1, le=8)  # magnitude bits (plus sign)
    weight_exp_min: int = Field(default=-8, ge=-31, le=31)
    weight_exp_max: int = Field(default=7, ge=-31, le=31)
    u_bits: int = Field(default=24, ge=8, le=32)
    v_bits: int = Field(default=24, ge=8, le=32)
    decay_bits: int = Field(default=12, ge=1, le=16)
    vth_bits: int = Field(default=17, ge=1, le=24)
    vth_shift: int = Field(default=6, ge=0, le=16)
    input_shift: int = Field(default=6, ge=0, le=16)
    bias_mant_bits: int = Field(default=13, ge=1, le=24)  # signed
    bias_exp_bits: int = Field(default=3, ge=0, le=5)  # unsigned
    delay_bits: int = Field(default=6, ge=0, le=8)
    max_delay: int = Field(default=62, ge=0)
    #: bits of a graded spike's payload (signed); 0: the chip sends binary spikes only
    graded_payload_bits: int = Field(default=0, ge=0, le=32)

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> Any:
        # A chip without graded spikes is written as before the field existed, so its
        # spec hash (recorded in every chip image) is unchanged.
        out = handler(self)
        if isinstance(out, dict) and self.graded_payload_bits == 0:
            out.pop("graded_payload_bits", None)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> NumberFormats:
        if self.weight_exp_min > self.weight_exp_max:
            raise ValueError("weight_exp_min must be <= weight_exp_max")
        if self.max_delay > (1 << self.delay_bits) - 1:
            raise ValueError(
                f"max_delay {self.max_delay} does not fit delay_bits={self.delay_bits}"
            )
        return self

    # Ranges derived from the widths ------------------------------------------------
    @property
    def du_range(self) -> tuple[int, int]:
        # -1 selects "no current decay" through the decay offset bit (Lava/netx convention).
        return -1, (1 << self.decay_bits) - 1

    @property
    def dv_range(self) -> tuple[int, int]:
        # dv = 2**decay_bits zeroes the voltage memory (Lava accepts it).
        return 0, 1 << self.decay_bits

    @property
    def vth_range(self) -> tuple[int, int]:
        return 0, (1 << self.vth_bits) - 1

    @property
    def bias_mant_range(self) -> tuple[int, int]:
        h = 1 << (self.bias_mant_bits - 1)
        return -h, h - 1

    @property
    def bias_exp_range(self) -> tuple[int, int]:
        return 0, (1 << self.bias_exp_bits) - 1

    @property
    def weight_exp_range(self) -> tuple[int, int]:
        return self.weight_exp_min, self.weight_exp_max


class TimingModel(_Strict):
    """Per-operation times in ns, counted in integer cycles of ``cycle_ns``."""

    cycle_ns: float = Field(gt=0)
    synop_ns: float = Field(ge=0)  # one synaptic operation (read weight, accumulate)
    spike_in_ns: float = Field(ge=0)  # one axon event arriving at a core (list lookup)
    neuron_active_ns: float = Field(ge=0)
    neuron_inactive_ns: float = Field(ge=0)
    spike_out_ns: float = Field(ge=0)  # one spike message injected (within a tile)
    hop_ew_ns: float = Field(ge=0)
    hop_ns_ns: float = Field(ge=0)
    chip_link_ns: float = Field(default=0.0, ge=0)
    learn_update_ns: float = Field(ge=0)  # one synaptic variable update by the learning engine
    trace_update_ns: float = Field(default=0.0, ge=0)  # one trace/tag update
    barrier_min_ns: float = Field(ge=0)  # barrier with 1 tile
    barrier_max_ns: float = Field(ge=0)  # barrier with barrier_max_tiles
    barrier_max_tiles: int = Field(default=32, gt=0, le=1 << 20)

    @model_validator(mode="after")
    def _whole_cycles(self) -> TimingModel:
        for f in type(self).model_fields:
            if f.endswith("_ns") and f != "cycle_ns":
                c = float(getattr(self, f)) / self.cycle_ns
                if c > MAX_OP_CYCLES:
                    raise ValueError(f"{f} = {getattr(self, f)} is {c:.3g} cycles of "
                                     f"{self.cycle_ns} ns; at most {MAX_OP_CYCLES}")
                if abs(c - round(c)) > 1e-6:
                    raise ValueError(f"{f} = {getattr(self, f)} is not a whole number of "
                                     f"cycles of {self.cycle_ns} ns")
        return self

    def cycles(self, name: str) -> int:
        """Integer cycles of one operation; the YAML must give whole multiples of cycle_ns."""
        ns = float(getattr(self, f"{name}_ns"))
        c = ns / self.cycle_ns
        r = round(c)
        if abs(c - r) > 1e-6:
            raise HardwareSpecError(
                f"{ns} ns is not a whole number of cycles of {self.cycle_ns} ns",
                field=f"timing.{name}_ns",
            )
        return int(r)

    def barrier_cycles(self, tiles: int) -> int:
        """Barrier time grows linearly from 1 tile to barrier_max_tiles (then stays)."""
        lo = self.cycles("barrier_min")
        hi = self.cycles("barrier_max")
        n = min(max(tiles, 1), self.barrier_max_tiles)
        if self.barrier_max_tiles == 1:
            return hi
        return lo + (hi - lo) * (n - 1) // (self.barrier_max_tiles - 1)


class EnergyModel(_Strict):
    """Per-operation energies in pJ, and static power."""

    synop_pj: float = Field(ge=0, le=MAX_PJ)
    spike_in_pj: float = Field(default=0.0, ge=0, le=MAX_PJ)
    neuron_active_pj: float = Field(ge=0, le=MAX_PJ)
    neuron_inactive_pj: float = Field(ge=0, le=MAX_PJ)
    spike_out_pj: float = Field(ge=0, le=MAX_PJ)
    hop_ew_pj: float = Field(ge=0, le=MAX_PJ)
    hop_ns_pj: float = Field(ge=0, le=MAX_PJ)
    chip_link_pj: float = Field(default=0.0, ge=0, le=MAX_PJ)
    learn_update_pj: float = Field(ge=0, le=MAX_PJ)
    trace_update_pj: float = Field(default=0.0, ge=0, le=MAX_PJ)
    static_mw_per_core: float = Field(default=0.0, ge=0, le=MAX_PJ)


class LearningSpec(_Strict):
    """Widths and limits of the on-chip learning engine."""

    trace_bits: int = Field(default=7, ge=1, le=16)
    tag_bits: int = Field(default=16, ge=2, le=32)  # signed eligibility tag
    third_factor_bits: int = Field(default=8, ge=2, le=16)  # signed error/modulation
    surrogate_lut_bits: int = Field(default=8, ge=2, le=16)  # unsigned surrogate value
    surrogate_lut_size: int = Field(default=64, ge=4, le=4096)
    accumulator_bits: int = Field(default=16, ge=8, le=32)
    max_epoch: int = Field(default=63, ge=1)
    max_shift: int = Field(default=15, ge=0, le=31)
    prng_bits: int = Field(default=16, ge=8, le=32)
    # Sum-of-products engine: terms per statement, factors per term, signed constant width.
    max_terms: int = Field(default=4, ge=1, le=8)
    max_factors: int = Field(default=4, ge=1, le=8)
    constant_bits: int = Field(default=8, ge=2, le=16)
    feedback_bits: int = Field(default=8, ge=2, le=16)  # signed fixed random feedback weights


#: what an affine runtime term may count: the run's counters, the neurons of a core, and
#: the messages through a core's router port (the larger of those it sends and receives)
RUNTIME_COUNTS = ("syn_ops", "spikes_in", "neurons_active", "spikes_out", "messages",
                  "hops_ew", "hops_ns", "chip_links", "learn_updates", "trace_updates",
                  "error_messages", "neurons", "port_messages")


class AffineTerm(_Strict):
    """One affine piece of a max-affine runtime model: intercept + sum of count x ns.
    ``scope: core`` evaluates it on each core's counts (the step takes the largest core);
    ``scope: chip`` on the counts summed over the chip."""

    name: str
    scope: Literal["core", "chip"] = "core"
    intercept_ns: float = Field(default=0.0, ge=0, le=MAX_PJ)
    ns_per: dict[str, float] = Field(default_factory=dict)

    @field_validator("ns_per")
    @classmethod
    def _counts(cls, v: dict[str, float]) -> dict[str, float]:
        for k, ns in v.items():
            if k not in RUNTIME_COUNTS:
                raise ValueError(f"unknown count {k!r}; one of {', '.join(RUNTIME_COUNTS)}")
            if not 0 <= ns <= MAX_PJ:
                raise ValueError(f"{k}: {ns} ns must be in [0, {MAX_PJ:g}]")
        return v


class RuntimeModel(_Strict):
    """A max-affine ("roofline") step runtime: the step takes the largest of its affine
    terms (Timcheck, Pierro & Shrestha 2026, arXiv 2601.10035, for Loihi 2). It replaces
    the step latency of the per-core model; core busy times and energy per event stay."""

    model: Literal["max_affine"] = "max_affine"
    terms: list[AffineTerm] = Field(min_length=1, max_length=64)
    source: str = ""


class NocSchedule(_Strict):
    """Message-level step schedule (``emulator.timing.schedule_latency``): the congestion
    estimate of SANA-FE's ``detailed`` timing model (Boyle et al., IEEE TCAD 2025). Every
    in-flight message (sent, not yet taken by its receiving core) adds 1 / (hops + 2) to each
    link of its X-Y route; a message's network time is the larger of its hop time and the
    load on its route x the mean receive time of the in-flight messages / (hops + 1); when
    the load exceeds (hops + 1) x ``link_buffer_messages`` the sender waits for the excess x
    that mean receive time."""

    link_buffer_messages: int = Field(default=16, ge=1, le=1 << 20)
    source: str = ""


class CostOptions(_Strict):
    """Optional refinements of the cost model (``emulator.timing``); absent = the plain
    serial model. Each one is off by default so that a spec without this section is costed
    exactly as before.

    * ``core: pipelined`` — a core's step time is its slowest stage, not the sum of its
      stages: the receive stage (axon events + synaptic operations) overlaps the neuron
      stage (neuron updates, fired spikes, messages sent, learning).
    * ``noc_contention`` — each core's router port carries the messages it sends and
      receives; the busiest port's messages x ``link_message_ns`` bound the step's network
      time from below (the step's network time is the larger of that and the longest path).
    * ``barrier_table_ns`` — barrier time by tiles in use, a step function (the entry of
      the largest tile count <= tiles in use), instead of the linear min..max rule.
    * ``spike_fire_ns`` / ``spike_fire_pj`` — a cost per spike fired by a neuron (on top of
      its update), apart from the per-message ``spike_out`` cost.
    * ``runtime`` — a max-affine step runtime (:class:`RuntimeModel`) instead of slowest
      core + network + barrier.
    * ``noc_schedule`` — the step latency from a replay of the step's messages
      (:class:`NocSchedule`): each core sends its messages in neuron order, each receiving
      core processes them in arrival order, and in-flight messages load the links of their
      routes; a route loaded beyond its buffers holds the sender back.
    """

    core: Literal["serial", "pipelined"] = "serial"
    noc_contention: bool = False
    link_message_ns: float = Field(default=0.0, ge=0)
    barrier_table_ns: dict[int, float] | None = None
    spike_fire_ns: float = Field(default=0.0, ge=0)
    spike_fire_pj: float = Field(default=0.0, ge=0, le=MAX_PJ)
    runtime: RuntimeModel | None = None
    noc_schedule: NocSchedule | None = None
    source: str = ""

    @field_validator("barrier_table_ns")
    @classmethod
    def _table(cls, v: dict[int, float] | None) -> dict[int, float] | None:
        if v is not None:
            if not v:
                raise ValueError("barrier_table_ns needs at least one entry")
            for tiles, ns in v.items():
                if tiles < 1 or not 0 <= ns <= MAX_PJ:
                    raise ValueError(f"barrier_table_ns entry {tiles}: {ns} needs tiles >= 1 "
                                     f"and 0 <= ns <= {MAX_PJ:g}")
        return v

    def barrier_ns(self, tiles: int) -> float:
        """Table barrier: the entry of the largest tile count <= tiles (else the first)."""
        assert self.barrier_table_ns is not None
        keys = sorted(self.barrier_table_ns)
        below = [k for k in keys if k <= tiles]
        return float(self.barrier_table_ns[below[-1] if below else keys[0]])


class HardwareSpec(_Strict):
    name: str
    description: str = ""
    mesh: MeshSpec
    core: CoreLimits
    formats: NumberFormats = NumberFormats()
    timing: TimingModel
    energy: EnergyModel
    learning: LearningSpec = LearningSpec()
    cost_model: CostOptions | None = None

    @model_validator(mode="after")
    def _cost_cycles(self) -> HardwareSpec:
        cm = self.cost_model
        if cm is not None:
            times = {"link_message_ns": cm.link_message_ns, "spike_fire_ns": cm.spike_fire_ns}
            for tiles, ns in (cm.barrier_table_ns or {}).items():
                times[f"barrier_table_ns.{tiles}"] = ns
            for f, ns in times.items():
                c = ns / self.timing.cycle_ns
                if c > MAX_OP_CYCLES or abs(c - round(c)) > 1e-6:
                    raise ValueError(f"cost_model.{f} = {ns} is not a whole number of "
                                     f"cycles of {self.timing.cycle_ns} ns (at most "
                                     f"{MAX_OP_CYCLES})")
        return self

    # Derived quantities -----------------------------------------------------------
    @property
    def n_cores(self) -> int:
        return self.mesh.n_cores

    def core_position(self, core: int) -> tuple[int, int, int]:
        """(chip, x, y) of a core; x counts tiles across all chips (chips side by side)."""
        m = self.mesh
        if not 0 <= core < m.n_cores:
            raise HardwareSpecError(
                f"core {core} does not exist", field="core", value=core, limit=m.n_cores - 1
            )
        chip, local = divmod(core, m.cores_per_chip)
        tile = local // m.cores_per_tile
        ty, tx = divmod(tile, m.tiles_x)
        return chip, chip * m.tiles_x + tx, ty

    def tile_of(self, core: int) -> int:
        return core // self.mesh.cores_per_tile

    @property
    def index_bits(self) -> int:
        """Bits of a compartment index inside a core (sparse synapse target field)."""
        return max(1, math.ceil(math.log2(self.core.max_neurons)))

    @cached_property
    def spec_hash(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        for section, name, default in _OMIT_AT_DEFAULT:
            if d[section].get(name) == default:
                del d[section][name]
        # a spec without cost options dumps (and hashes) exactly as before they existed
        if d.get("cost_model") is None:
            d.pop("cost_model", None)
        elif d["cost_model"].get("noc_schedule") is None:
            d["cost_model"].pop("noc_schedule", None)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> HardwareSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _spec_error(exc, source) from None


def _spec_error(exc: ValidationError, source: str) -> HardwareSpecError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return HardwareSpecError(
        f"{first['msg']}{more}", where=f"hardware spec {source}", field=loc,
        value=first.get("input"),
    )


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

_Kind = Literal["name", "path"]


def _bundled_dir() -> Path:
    return Path(str(resources.files("hw_configs")))


def available_hw() -> list[str]:
    """Names of the hardware descriptions shipped in ``hw_configs/``."""
    return sorted(p.stem for p in _bundled_dir().glob("*.yaml"))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _stamp(path: Path, text: str | None = None) -> tuple[str, str]:
    """A file's path and a digest of its text (read when not given)."""
    body = path.read_bytes() if text is None else text.encode()
    return str(path), hashlib.sha256(body).hexdigest()


def _read_yaml(path: Path, seen: tuple[Path, ...] = (),
               files: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A description's mapping, its ``extends`` chain merged in; ``files`` collects the
    stamp (path, digest) of every file read."""
    if path in seen:
        raise HardwareSpecError("circular 'extends'", where=f"hardware spec {path}")
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise HardwareSpecError(f"file is {size} bytes; at most {MAX_SPEC_BYTES}",
                                    where=str(path), value=size, limit=MAX_SPEC_BYTES)
        text = path.read_text()
        if files is not None:
            files.append(_stamp(path, text))
    except OSError as exc:
        raise HardwareSpecError(f"cannot read file: {exc.strerror}", where=str(path)) from None
    except UnicodeDecodeError:
        raise HardwareSpecError("file is not UTF-8 text", where=str(path)) from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise HardwareSpecError("YAML aliases (*name) are not allowed in a "
                                        "hardware description", where=str(path))
        data = yaml.safe_load(text)
    except RecursionError:
        raise HardwareSpecError("YAML nests too deep", where=str(path)) from None
    except yaml.YAMLError as exc:
        raise HardwareSpecError(f"not valid YAML: {exc}", where=str(path)) from None
    if not isinstance(data, dict):
        raise HardwareSpecError("top level must be a mapping", where=str(path))
    parent = data.pop("extends", None)
    if parent is not None:
        ppath = _resolve(str(parent), relative_to=path.parent)
        data = _deep_merge(_read_yaml(ppath, (*seen, path), files), data)
    return data


def _resolve(name_or_path: str, relative_to: Path | None = None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_absolute() and relative_to is not None and not p.exists():
            p = relative_to / p
        if not p.exists():
            raise HardwareSpecError(f"no such file: {p}", where="load_hw")
        return p
    cand = _bundled_dir() / f"{name_or_path}.yaml"
    if not cand.exists():
        raise HardwareSpecError(
            f"unknown hardware '{name_or_path}'; bundled: {', '.join(available_hw())}",
            where="load_hw",
        )
    return cand


def load_hw(name_or_path: str | Path | HardwareSpec) -> HardwareSpec:
    """Load a hardware description by bundled name (``"loihi_like"``) or YAML path."""
    if isinstance(name_or_path, HardwareSpec):
        return name_or_path
    path = _resolve(str(name_or_path))
    # A spec is immutable: parsed once per content of its files (a sweep loads its chips
    # on every run; parsing and validating costs milliseconds, reading the files does not).
    hit = _LOADED.get(str(path))
    if hit is not None:
        try:
            if all(_stamp(Path(f[0])) == f for f in hit[0]):
                return hit[1]
        except OSError:
            pass
    files: list[tuple[str, str]] = []
    spec = HardwareSpec.from_dict(_read_yaml(path, files=files), source=str(path))
    _LOADED[str(path)] = (tuple(files), spec)
    return spec


#: load_hw's cache: per path, the stamps of the files read and the spec
_LOADED: dict[str, tuple[tuple[tuple[str, str], ...], HardwareSpec]] = {}
