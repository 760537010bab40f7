"""The learning state of an emulator, and the learning runs behind ``Emulator(...).learn``.

The weights being learned live in the emulator's own copy of synapse memory (the kernel
tables, or the reference model's matrices), never in the input image;
:meth:`Learner.learned_image` writes them back into a new image. A :class:`Learner` runs
the image's resolved learning record (:mod:`neurochip.core.learning`) as it is, and shares
the emulator's state only through the :class:`~emulator.state.RunState` it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emulator.kernels import spike_lists
from emulator.learning.kernels import LearnKernelState, learn_stream
from emulator.learning.reference import LearningReference, LearningState, StepInputs
from emulator.learning.tables import LearnTables, build_learn_tables
from emulator.state import RunState
from emulator.tables import COUNTER_NAMES
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import EmulatorInputError, LearningConfigError
from neurochip.core.image import ChipImage
from neurochip.core.learning import (
    CompiledLearning,
    compiled_learning,
    learning_dict,
    with_rate_shift,
)

__all__ = ["LearnHistory", "Learner"]


@dataclass
class LearnHistory:
    """Per-sample record of a :meth:`Emulator.learn` call (arrays of length samples)."""

    order: NDArray[np.int64]  # sample index of each step of the stream
    counters: dict[str, NDArray[np.int64]]  # per sample, summed over steps and cores
    energy_pj: NDArray[np.float64]
    latency_ns: NDArray[np.float64]
    spike_counts: dict[str, NDArray[np.int64]]  # per sample, per neuron of each population
    wall_s: float
    steps: int
    epoch_metrics: list[dict[str, float]] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return int(self.order.size)

    def totals(self) -> dict[str, float]:
        out = {k: float(v.sum()) for k, v in self.counters.items() if k != "route_cycles"}
        out["energy_pj"] = float(self.energy_pj.sum())
        out["latency_ns"] = float(self.latency_ns.sum())
        out["samples"] = float(self.samples)
        out["steps"] = float(self.steps)
        out["wall_s"] = self.wall_s
        return out


class Learner:
    """Learning registers and engine (kernels or reference) of one :class:`Emulator`."""

    def __init__(self, rs: RunState) -> None:
        image = rs.image
        if not image.learning:
            raise LearningConfigError(
                "the image has no learning configuration; add one with "
                "neurochip.learning.add_learning(image, config)", where="Emulator.learn")
        self.rs = rs
        self.image = image
        self.cl: CompiledLearning = compiled_learning(image)
        self.backend = rs.backend
        self.lt: LearnTables | None = None
        self.kstate: LearnKernelState | None = None
        self.ref: LearningReference | None = None
        self.rstate: LearningState | None = None
        if self.backend == "numba":
            self.lt = build_learn_tables(image, rs.tables, self.cl)
            self.kstate = LearnKernelState(rs.tables, self.lt)
        else:
            self.ref = LearningReference(image, self.cl)
            self.rstate = self.ref.new_state()
        self.samples_seen = 0

    # ------------------------------------------------------------------ state
    def set_rate_shift(self, shift: int) -> None:
        """Scale every weight term by 2^-shift (the learning-rate register), checked."""
        cl = with_rate_shift(self.cl, shift, self.image.hw)
        self.cl = cl
        if self.lt is not None:
            self.lt = build_learn_tables(self.image, self.rs.tables, cl)
        if self.ref is not None:
            self.ref.set_compiled(cl)

    @property
    def clock(self) -> int:
        if self.kstate is not None:
            return int(self.kstate.clock[0])
        assert self.rstate is not None
        return self.rstate.clock

    def reset_traces(self) -> None:
        if self.kstate is not None:
            self.kstate.reset_traces()
        else:
            assert self.rstate is not None
            self.rstate.reset_traces()

    def registers(self) -> dict[str, NDArray[np.int64]]:
        """Copies of the learning registers (traces per axon, per-neuron state, tags)."""
        n_syn = sum(self.image.connections[c.index].n_synapses for c in self.cl.synapses)
        if self.kstate is not None:
            k = self.kstate
            names = ("y1", "y2", "sg", "m", "yt")
            out = {"x1": k.x[0].copy(), "x2": k.x[1].copy(), "tags": k.tags[:n_syn].copy()}
            out.update({n: k.n[i].copy() for i, n in enumerate(names)})
            return out
        r = self.rstate
        assert r is not None
        return {"x1": r.x1.copy(), "x2": r.x2.copy(), "y1": r.y1.copy(), "y2": r.y2.copy(),
                "sg": r.sg.copy(), "m": r.m.copy(), "yt": r.yt.copy(),
                "tags": r.tags[:n_syn].copy()}

    def weights(self, name: str) -> NDArray[np.int64]:
        """Current effective weights of a connection, (post, pre)."""
        if self.ref is not None:
            return self.ref.weights(name)
        return _table_weights(self.image, self.rs, name)

    # ------------------------------------------------------------------ inputs
    def targets(self, targets: Mapping[str, Any] | None, steps: int, batch: int | None = None
                ) -> tuple[NDArray[np.int32], NDArray[np.int64], dict[str, NDArray[Any]],
                           dict[str, bool]]:
        """Targets as kernel columns (steps, ...) or (batch, steps, ...), plus modes."""
        cl = self.cl
        chans = list(cl.target_channels)
        given = dict(targets or {})
        for k in given:
            if k not in chans:
                raise EmulatorInputError(
                    f"no target channel {k!r}; this image takes targets for {chans}",
                    where="Emulator.learn", field="targets")
        shape_b = () if batch is None else (batch,)
        cols = np.zeros((*shape_b, steps, int(sum(cl.target_sizes))), np.int32)
        modes = np.zeros(len(chans), np.int64)
        per: dict[str, NDArray[Any]] = {}
        values: dict[str, bool] = {}
        off = 0
        for ci, (name, n) in enumerate(zip(chans, cl.target_sizes)):
            if name in given:
                arr = np.asarray(given[name])
                want = (*shape_b, n)
                if arr.ndim != len(shape_b) + 2 or arr.shape[-1] != n or \
                        arr.shape[:len(shape_b)] != shape_b or arr.shape[-2] > steps:
                    raise EmulatorInputError(
                        f"targets for {name!r} have shape {arr.shape}; expected "
                        f"({', '.join(map(str, shape_b))}{', ' if shape_b else ''}T <= {steps}, "
                        f"{n})", where="Emulator.learn", field=name, value=arr.shape,
                        limit=want)
                if arr.dtype == np.bool_:
                    a = arr.astype(np.int32)
                else:
                    if arr.dtype.kind not in "iu":
                        raise EmulatorInputError(
                            f"targets for {name!r} must be spikes (bool) or integer values",
                            where="Emulator.learn", field=name)
                    lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
                    if lo < 0 or hi > cl.trace_max:
                        raise EmulatorInputError(
                            f"target values for {name!r} span [{lo}, {hi}], outside the "
                            f"{cl.trace_bits}-bit trace range [0, {cl.trace_max}]",
                            where="Emulator.learn", field=name, value=(lo, hi),
                            limit=(0, cl.trace_max))
                    a = arr.astype(np.int32)
                    modes[ci] = 1
                    values[name] = True
                cols[..., : a.shape[-2], off: off + n] = a
                per[name] = cols[..., off: off + n]
            off += n
        return cols, modes, per, values

    def reward(self, reward: Any, steps: int, batch: int | None = None) -> NDArray[np.int32]:
        shape = (steps,) if batch is None else (batch, steps)
        out = np.zeros(shape, np.int32)
        if reward is None:
            return out
        r = np.asarray(reward)
        if r.dtype.kind not in "iu" and r.dtype != np.bool_:
            raise EmulatorInputError("reward must hold integers", where="Emulator.learn",
                                     field="reward")
        if r.ndim != len(shape) or r.shape[-1] > steps or r.shape[:-1] != shape[:-1]:
            raise EmulatorInputError(f"reward has shape {r.shape}; expected {shape}",
                                     where="Emulator.learn", field="reward")
        out[..., : r.shape[-1]] = r
        return out

    # ------------------------------------------------------------------ one run
    def run(self, X: NDArray[np.bool_], steps: int, pidx: NDArray[np.int64],
            pvar: NDArray[np.int8], rec_col: NDArray[np.int64], targets: Mapping[str, Any] | None,
            reward: Any) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """One learning run of one sample stream X (1, steps, n_in): raw probes, spikes,
        counters of shape (1, steps, ...)."""
        cols, modes, _, _ = self.targets(targets, steps)
        return self._run(X[0], steps, pidx, pvar, rec_col, cols, modes,
                         self.reward(reward, steps))

    def _run(self, x: NDArray[np.bool_], steps: int, pidx: NDArray[np.int64],
             pvar: NDArray[np.int8], rec_col: NDArray[np.int64], cols: NDArray[np.int32],
             modes: NDArray[np.int64], rw: NDArray[np.int32]
             ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        rs = self.rs
        if self.backend == "numba":
            inp_ptr, inp_src = spike_lists(np.ascontiguousarray(x[None]))
            return self._kernel_stream(np.zeros(1, np.int64), False, steps, inp_ptr, inp_src,
                                       pidx, pvar, rec_col, np.ascontiguousarray(cols[None]),
                                       modes, np.ascontiguousarray(rw[None]))
        assert self.ref is not None and self.rstate is not None
        # the learning reference's model holds the learned weights: inference runs use it too
        rs.ref = self.ref.model
        rstates = rs.reference_states(1)
        per = {n: cols[:, a:b] for n, a, b in _chan_spans(self.cl)}
        values = {n: bool(modes[i]) for i, n in enumerate(self.cl.target_channels)}
        io = StepInputs(per, values, rw.astype(np.int64))
        p, s, c = self.ref.run(rstates[0], self.rstate, steps, x, pidx, pvar, rec_col, io)
        return p[None], s[None], c[None]

    def _kernel_stream(self, order: NDArray[np.int64], reset: bool, steps: int,
                       inp_ptr: NDArray[np.int64], inp_src: NDArray[np.int64],
                       pidx: NDArray[np.int64], pvar: NDArray[np.int8],
                       rec_col: NDArray[np.int64], cols: NDArray[np.int32],
                       modes: NDArray[np.int64], rw: NDArray[np.int32]
                       ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """The one call into the learning kernels: samples ``order`` of the stream."""
        assert self.lt is not None and self.kstate is not None
        rs = self.rs
        return learn_stream(rs.tables, self.lt, rs.kernel_state(1), self.kstate, order, reset,
                            steps, inp_ptr, inp_src, pidx, pvar, rec_col, cols, modes, rw)

    # ------------------------------------------------------------------ streams
    def stream(self, inputs: Mapping[str, NDArray[Any]], targets: Mapping[str, Any] | None,
               reward: Any, *, epochs: int, shuffle: int | None, reset: bool,
               record: list[str], callback: Callable[[int, LearnHistory], None] | None,
               progress: bool) -> LearnHistory:
        """Learn from N samples (arrays (N, T, n)), ``epochs`` passes."""
        rs = self.rs
        if not inputs:
            raise EmulatorInputError("give the samples' inputs", where="Emulator.learn",
                                     field="inputs")
        arrays: dict[str, NDArray[np.bool_]] = {}
        N = T = -1
        for name, x in inputs.items():
            arr = np.asarray(x)
            if arr.ndim != 3:
                raise EmulatorInputError(f"input {name!r} must be (samples, T, n), got "
                                         f"{arr.shape}", where="Emulator.learn", field=name)
            if N >= 0 and (arr.shape[0] != N or arr.shape[1] != T):
                raise EmulatorInputError(f"input {name!r} has {arr.shape[:2]} samples/steps, "
                                         f"others {(N, T)}", where="Emulator.learn", field=name)
            N, T = arr.shape[0], arr.shape[1]
            arrays[name] = arr
        X_all, steps, _ = rs.inputs(arrays, T)
        cols, modes, _, _ = self.targets(targets, steps, batch=N)
        rw = self.reward(reward, steps, batch=N)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise EmulatorInputError(f"epochs must be a positive int, got {epochs!r}",
                                     where="Emulator.learn", field="epochs")
        _, pidx, pvar, _ = rs.probes(())
        rec_col, spans = rs.record(record)
        rng = np.random.default_rng(shuffle) if shuffle is not None else None
        orders: list[NDArray[np.int64]] = []
        sums: list[NDArray[np.int64]] = []
        energy: list[NDArray[np.float64]] = []
        latency: list[NDArray[np.float64]] = []
        counts: dict[str, list[NDArray[np.int64]]] = {n: [] for n in spans}
        if self.backend == "numba":
            inp_ptr, inp_src = spike_lists(X_all)
        bar = _progress(epochs * N, progress)
        hist = LearnHistory(np.zeros(0, np.int64), {}, np.zeros(0), np.zeros(0), {}, 0.0, steps)
        t0 = time.perf_counter()
        chunk = max(1, min(N, 256)) if bar is not None else N
        for ep in range(epochs):
            order = (rng.permutation(N) if rng is not None else np.arange(N)).astype(np.int64)
            orders.append(order)
            for c0 in range(0, N, chunk):
                part = order[c0: c0 + chunk]
                if self.backend == "numba":
                    _, s, c = self._kernel_stream(part, reset, steps, inp_ptr, inp_src, pidx,
                                                  pvar, rec_col, cols, modes, rw)
                else:
                    outs = []
                    for i in part:
                        if reset:
                            rs.reset()
                            self.reset_traces()
                        outs.append(self._run(X_all[i], steps, pidx, pvar, rec_col, cols[i],
                                              modes, rw[i]))
                    s = np.concatenate([o[1] for o in outs])
                    c = np.concatenate([o[2] for o in outs])
                rs.batch = 1
                # the cost of every step (not the spikes: they are summed below)
                r = rs.result(np.zeros((len(part), steps, 0), np.int32), s, c, [], [], {},
                              0, steps, True)
                sums.append(c.sum(axis=(1, 2)))
                energy.append(r.energy.sum(axis=(1, 2)))
                latency.append(r.latency_ns.sum(axis=1))
                for name, (a, b) in spans.items():
                    counts[name].append(_spike_counts(s[:, :, a:b]))
                self.samples_seen += len(part)
                if bar is not None:
                    bar.update(len(part))
            hist = _history(orders, sums, energy, latency, counts, steps,
                            time.perf_counter() - t0)
            if callback is not None:
                callback(ep, hist)
        if bar is not None:
            bar.close()
        return hist

    # ------------------------------------------------------------------ export
    def learned_image(self) -> ChipImage:
        """A new image with the learned weights (and the same learning configuration)."""
        img = self.image
        arrays = dict(img.arrays)
        for cs in self.cl.synapses:
            c = img.connections[cs.index]
            W = self.weights(c.name)
            pre_idx, post_idx = img.synapse_coords(cs.index)
            b, decode, shift = fx.encode_weight_bytes(W[post_idx, pre_idx], c.sign_mode)
            if (decode, shift) != (c.decode, c.wshift):
                raise LearningConfigError("learned weights changed the weight encoding",
                                          where=f"connection '{c.name}'", field="weights")
            arrays[f"conn/{cs.index}/w"] = np.ascontiguousarray(b)
        meta = dict(img.metadata)
        meta["learned"] = {"samples": int(self.samples_seen), "learning_steps": self.clock,
                           "from": str(img.metadata.get("network", ""))}
        return ChipImage(img.hw, list(img.populations), list(img.connections), list(img.cores),
                         arrays, learning_dict(self.cl), meta)


def _history(orders: list[NDArray[np.int64]], sums: list[NDArray[np.int64]],
             energy: list[NDArray[np.float64]], latency: list[NDArray[np.float64]],
             counts: dict[str, list[NDArray[np.int64]]], steps: int, wall: float
             ) -> LearnHistory:
    tot = np.concatenate(sums) if sums else np.zeros((0, len(COUNTER_NAMES)), np.int64)
    return LearnHistory(np.concatenate(orders), {n: tot[:, j] for j, n in
                                                 enumerate(COUNTER_NAMES)},
                        np.concatenate(energy) if energy else np.zeros(0),
                        np.concatenate(latency) if latency else np.zeros(0),
                        {n: _joined(v) for n, v in counts.items() if v}, wall, steps)


def _joined(parts: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    """The parts one after another (the part itself when there is one: no copy)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _spike_counts(s: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Spikes per sample and neuron of spike records (samples, steps, neurons), summed in
    the narrowest integer that holds the steps (twice as fast as int64 sums)."""
    acc = np.uint16 if s.shape[1] < 1 << 16 else np.int64
    return np.add.reduce(s, axis=1, dtype=acc).astype(np.int64)


def _chan_spans(cl: CompiledLearning) -> list[tuple[str, int, int]]:
    out, off = [], 0
    for n, sz in zip(cl.target_channels, cl.target_sizes):
        out.append((n, off, off + sz))
        off += sz
    return out


def _table_weights(img: ChipImage, rs: RunState, name: str) -> NDArray[np.int64]:
    tb = rs.tables
    i = img.connection_index(name)
    c = img.connections[i]
    if c.storage == "dense":
        raw = tb.dw[int(tb.c_woff[i]): int(tb.c_woff[i]) + c.n_pre * c.n_post]
    else:
        p0 = int(tb.c_soff[i])
        raw = tb.sw[int(tb.sptr[p0]): int(tb.sptr[p0 + c.n_pre])]
    w = fx.decode_weight_bytes(raw, c.decode, c.wshift)
    pre_idx, post_idx = img.synapse_coords(i)
    out = np.zeros((c.n_post, c.n_pre), np.int64)
    out[post_idx, pre_idx] = w
    return out


def _progress(total: int, on: bool) -> Any:
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc="learning", leave=False)
