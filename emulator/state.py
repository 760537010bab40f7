"""The run state an :class:`~emulator.chip.Emulator` shares with its learning engine.

:class:`RunState` is the one record both sides read and write: the image and backend, the
emulator's own copy of synapse memory (``tables``, which learning changes), the neuron
state of the kernels or of the reference model, and the batch it holds; plus the input,
probe, recording and result conversions both need. ``emulator.chip`` builds it and
``emulator.learning.engine`` receives it, so neither reaches into the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from emulator.kernels import KernelState
from emulator.reference import ReferenceModel, ReferenceState
from emulator.tables import COUNTER_NAMES, N_COUNTERS, Tables, build_tables
from emulator.timing import CostModel, account
from neurochip.core import neuron_models as nm
from neurochip.core.errors import EmulatorInputError
from neurochip.core.image import ChipImage, PopulationInfo
from neurochip.core.results import RunResult, recorded_populations

__all__ = ["Backend", "RunState"]


def _payloads(name: str, arr: NDArray[Any], bits: int) -> NDArray[np.int64]:
    """Graded host input: integers within the signed payload range (0: no spike)."""
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise EmulatorInputError(f"input {name!r} must hold integer payloads",
                                     where="Emulator.run", field=name)
    elif arr.dtype.kind not in "iu":
        raise EmulatorInputError(f"input {name!r} must hold integer payloads, got dtype "
                                 f"{arr.dtype}", where="Emulator.run", field=name)
    lo, hi = nm.payload_range(bits)
    bad = np.flatnonzero((arr < lo) | (arr > hi))
    if bad.size:
        flat = arr.reshape(-1)
        raise EmulatorInputError(
            f"input {name!r} holds {flat[bad[0]]}, outside the {bits}-bit payload range "
            f"[{lo}, {hi}]", where="Emulator.run", field=name, value=flat[bad[0]].item(),
            limit=(lo, hi))
    return arr.astype(np.int64)

Backend = Literal["numba", "reference"]

#: batch x steps x (inputs + neurons) one run may hold (its inputs and recorded spikes)
MAX_RUN_ENTRIES = 1 << 32


@dataclass
class RunState:
    """Mutable state of one emulator: synapse memory, neuron state, batch (see module doc)."""

    image: ChipImage
    backend: Backend
    tables: Tables  # the emulator's synapse memory (learned weights live here)
    cost: CostModel
    ref: ReferenceModel | None = None  # the reference backend's model
    kstate: KernelState | None = None  # kernel neuron state (numba backend)
    rstates: list[ReferenceState] | None = None  # reference neuron state, one per sample
    batch: int | None = None  # batch size the neuron state holds (None: none yet)
    pops: dict[str, PopulationInfo] = field(default_factory=dict)

    @classmethod
    def build(cls, image: ChipImage, backend: Backend) -> RunState:
        return cls(image, backend, build_tables(image),
                   CostModel.build(image.hw, image.used_cores),
                   ReferenceModel(image) if backend == "reference" else None,
                   pops={p.name: p for p in image.populations})

    @property
    def t(self) -> int:
        """Steps run since construction or the last :meth:`reset`."""
        if self.kstate is not None:
            return self.kstate.t
        if self.rstates:
            return self.rstates[0].t
        return 0

    def reset(self) -> None:
        """Forget the neuron state (u, v, pending synaptic input, step counter)."""
        self.kstate = None
        self.rstates = None
        self.batch = None

    def kernel_state(self, batch: int) -> KernelState:
        """The kernels' neuron state, created for ``batch`` samples if there is none."""
        if self.kstate is None:
            self.kstate = KernelState(self.tables, batch)
        return self.kstate

    def reference_states(self, batch: int) -> list[ReferenceState]:
        """The reference model's neuron states, created for ``batch`` samples if none."""
        assert self.ref is not None
        if self.rstates is None:
            self.rstates = [self.ref.new_state() for _ in range(batch)]
        return self.rstates

    @property
    def graded_inputs(self) -> bool:
        """Whether some input population sends payloads (inputs are then int32)."""
        return any(p.graded for p in self.image.input_populations)

    def inputs(self, inputs: Mapping[str, Any] | None, steps: int | None
               ) -> tuple[NDArray[Any], int, bool]:
        """Checked input spikes as one (B, steps, n_inputs) array, steps, batched: bool, or
        int32 payloads (0: no spike) when some input population is graded."""
        inputs = dict(inputs or {})
        n_in = self.image.n_inputs
        graded = self.graded_inputs
        batch: int | None = None
        T = 0
        arrays: dict[str, NDArray[Any]] = {}
        for name, x in inputs.items():
            p = self.pops.get(name)
            if p is None or p.kind != "input":
                have = [q.name for q in self.image.input_populations]
                raise EmulatorInputError(f"no input population {name!r}; inputs are {have}",
                                         where="Emulator.run", field="inputs")
            arr = np.asarray(x)
            if arr.ndim not in (2, 3) or arr.shape[-1] != p.size:
                raise EmulatorInputError(
                    f"input {name!r} has shape {arr.shape}; expected (T, {p.size}) or "
                    f"(B, T, {p.size})", where="Emulator.run", field=name)
            if p.graded:
                arr = _payloads(name, arr, p.payload_bits)
            elif arr.dtype != np.bool_:
                if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                    raise EmulatorInputError(
                        f"input {name!r} must hold spikes (bool or 0/1)", where="Emulator.run",
                        field=name)
                arr = arr.astype(bool)
            if graded:
                arr = arr.astype(np.int32)
            if arr.ndim == 3:
                if batch is not None and arr.shape[0] != batch:
                    raise EmulatorInputError(
                        f"input {name!r} has batch {arr.shape[0]}, others have {batch}",
                        where="Emulator.run", field=name)
                batch = arr.shape[0]
            T = max(T, arr.shape[-2])
            arrays[name] = arr
        if steps is None:
            if not arrays:
                raise EmulatorInputError("give inputs or a number of steps",
                                         where="Emulator.run", field="steps")
            steps = T
        if not isinstance(steps, (int, np.integer)) or steps < 0:
            raise EmulatorInputError(f"steps must be a non-negative int, got {steps!r}",
                                     where="Emulator.run", field="steps")
        if T > steps:
            raise EmulatorInputError(f"inputs have {T} steps but steps={steps}",
                                     where="Emulator.run", field="steps")
        batched = batch is not None
        B = batch or 1
        held = B * int(steps) * (n_in + self.image.n_neurons)
        if held > MAX_RUN_ENTRIES:
            raise EmulatorInputError(
                f"{B} x {steps} steps x {n_in + self.image.n_neurons} channels is "
                f"{held} spike entries; at most {MAX_RUN_ENTRIES} per run (run in pieces)",
                where="Emulator.run", field="steps", value=held, limit=MAX_RUN_ENTRIES)
        if len(arrays) == 1 and n_in:
            # one input population covering every input channel for every step: no copy
            (arr,) = arrays.values()
            if arr.shape[-1] == n_in and arr.shape[-2] == steps:
                return np.ascontiguousarray(arr.reshape(B, int(steps), n_in)), int(steps), batched
        X = np.zeros((B, int(steps), n_in), np.int32 if graded else bool)
        for name, arr in arrays.items():
            p = self.pops[name]
            X[:, : arr.shape[-2], p.offset: p.offset + p.size] = arr
        return X, int(steps), batched


    def biases(self, bias: Mapping[str, Any] | None) -> NDArray[np.int32] | None:
        """The bias of every neuron, (B, N), with the populations in ``bias`` given new
        mantissas ({population: (n,) or (B, n) ints}, checked against the chip's bias
        format; the population's bias exponent is kept); None when nothing is replaced."""
        if not bias:
            return None
        from neurochip.core import fixedpoint as fx

        where = "Emulator.run"
        lo, hi = self.image.hw.formats.bias_mant_range
        exp = self.image.arrays["neurons/bias_exp"].astype(np.int64)
        rows: dict[str, NDArray[np.int64]] = {}
        B = 1
        for name, b in bias.items():
            p = self.pops.get(name)
            if p is None or p.kind != "lif":
                lif = [q.name for q in self.image.lif_populations]
                raise EmulatorInputError(f"no neuron population {name!r} to give a bias; "
                                         f"populations are {lif}", where=where, field="bias")
            if p.model == "sigma_delta":
                raise EmulatorInputError(
                    f"population {name!r} is a sigma_delta population: its bias is the model's "
                    "own 'bias' register (in the image), not a bias mantissa", where=where,
                    field="bias")
            arr = np.asarray(b)
            if arr.ndim not in (1, 2) or arr.shape[-1] != p.size or arr.dtype.kind not in "iu":
                raise EmulatorInputError(
                    f"bias of {name!r} has shape {arr.shape} and dtype {arr.dtype}; expected "
                    f"integers of shape ({p.size},) or (B, {p.size})", where=where, field="bias")
            bad = np.flatnonzero((arr < lo) | (arr > hi))
            if bad.size:
                k = int(bad[0])
                raise EmulatorInputError(
                    f"bias of {name!r}: value {int(arr.reshape(-1)[k])} (neuron {k % p.size}) is "
                    f"outside the chip's bias mantissa [{lo}, {hi}]", where=where, field="bias",
                    value=int(arr.reshape(-1)[k]), limit=(lo, hi))
            a2 = arr.reshape(-1, p.size).astype(np.int64)
            if a2.shape[0] > 1:
                if B > 1 and a2.shape[0] != B:
                    raise EmulatorInputError(f"bias of {name!r} has batch {a2.shape[0]}, others "
                                             f"have {B}", where=where, field="bias")
                B = a2.shape[0]
            rows[name] = a2
        # every other neuron keeps the bias the tables hold (a sigma_delta population's is
        # its own register, scaled by 2^E, not bias_mant * 2^bias_exp)
        out = np.repeat(self.tables.bias.astype(np.int64)[None], B, axis=0)
        for name, a2 in rows.items():
            p = self.pops[name]
            sl = slice(p.offset, p.offset + p.size)
            out[:, sl] = fx.bias_value(a2, exp[None, sl])
        return out.astype(np.int32)

    def probes(self, probes: Iterable[str]
               ) -> tuple[list[str], NDArray[np.int64], NDArray[np.int8], list[tuple[int, int]]]:
        """Probe names, their neuron indices and state slots (0 u, 1 v, 2 and 3 the
        auxiliary slots; a model's state names, see neuron_models.STATE_SLOTS), column
        spans."""
        names: list[str] = []
        idx: list[int] = []
        var: list[int] = []
        spans: list[tuple[int, int]] = []
        for pr in probes:
            pop_name, _, v = str(pr).rpartition(".")
            p = self.pops.get(pop_name)
            slots = nm.STATE_SLOTS.get(p.model, {}) if p is not None else {}
            if p is None or p.kind != "lif" or v not in slots:
                if p is not None and p.kind == "lif":
                    raise EmulatorInputError(
                        f"bad probe {pr!r}: population {pop_name!r} ({p.model}) has the state "
                        f"variables {list(slots)}", where="Emulator.run", field="probes")
                lif = [q.name for q in self.image.lif_populations]
                raise EmulatorInputError(
                    f"bad probe {pr!r}: use '<population>.u' or '<population>.v' (or a "
                    f"model's state variable) with a neuron population of {lif}",
                    where="Emulator.run", field="probes")
            start = len(idx)
            idx.extend(range(p.offset, p.offset + p.size))
            var.extend([slots[v]] * p.size)
            names.append(str(pr))
            spans.append((start, len(idx)))
        return (names, np.asarray(idx, np.int64), np.asarray(var, np.int8), spans)


    def graded_recorded(self, rec_spans: Mapping[str, tuple[int, int]]) -> bool:
        """Whether a recorded population sends payloads (they are recorded too)."""
        return any(self.pops[n].graded for n in rec_spans)

    def record(self, spikes: str | Iterable[str] | None
               ) -> tuple[NDArray[np.int64], dict[str, tuple[int, int]]]:
        """Spike column of every neuron (-1: not recorded) and each population's span."""
        rec_col = np.full(self.image.n_neurons, -1, np.int64)
        rec_spans: dict[str, tuple[int, int]] = {}
        col = 0
        for name in recorded_populations(self.image, spikes, "Emulator.run"):
            p = self.pops[name]
            rec_col[p.offset: p.offset + p.size] = np.arange(col, col + p.size)
            rec_spans[name] = (col, col + p.size)
            col += p.size
        return rec_col, rec_spans


    def result(self, raw_p: NDArray[Any], raw_s: NDArray[Any], raw_c: NDArray[Any],
               pnames: list[str], spans: list[tuple[int, int]],
               rec_spans: dict[str, tuple[int, int]], t_start: int, steps: int,
               batched: bool, raw_v: NDArray[Any] | None = None) -> RunResult:
        """A :class:`RunResult` of raw kernel / reference outputs, with the run's cost
        (raw_v: the payloads of the recorded spikes, when some recorded population is
        graded: its spikes come back as int32 payloads). Binary spikes of a population that
        fills half the record or more are a bool view of the kernels' 0/1 bytes (a run's
        record is its own, never written again); smaller ones are copies."""
        k = len(self.image.cores)
        raw_c = raw_c[:, :, :k, :] if k else raw_c[:, :, :0, :]
        neurons = self.tables.slot_neurons
        cycles, latency, energy = account(raw_c, neurons, self.cost)
        sq = (lambda a: a) if batched else (lambda a: a[0])
        probes = {n: sq(raw_p[:, :, a:b]) for n, (a, b) in zip(pnames, spans)}
        width = raw_s.shape[-1]

        def as_bool(a: NDArray[Any]) -> NDArray[Any]:
            # a view of the record for a population that fills at least half of it (no
            # copy; keeping it keeps at most twice its size alive), else a copy of its own
            if raw_s.dtype in (np.uint8, np.bool_) and 2 * a.shape[-1] >= width:
                return a.view(bool)
            return a.astype(bool)

        spikes = {n: sq(raw_v[:, :, a:b].copy() if raw_v is not None and self.pops[n].graded
                        else as_bool(raw_s[:, :, a:b])) for n, (a, b) in rec_spans.items()}
        counters = {name: sq(raw_c[..., i]) for i, name in enumerate(COUNTER_NAMES)
                    if i < N_COUNTERS}
        return RunResult(spikes, probes, counters, sq(cycles), sq(latency), sq(energy),
                         list(self.image.used_cores), self.cost.cycle_ns, t_start, steps, batched)
