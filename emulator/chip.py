"""The emulator's public face: ``Emulator(image).run(inputs, steps, probes=[...])``.

Objects live only at this edge; the work is done by pure functions over explicit state
(``emulator.kernels`` and ``emulator.reference``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emulator.breakdown import breakdown as cost_breakdown
from emulator.kernels import payload_lists, run_batch, spike_lists
from emulator.learning.engine import Learner, LearnHistory
from emulator.reference import ReferenceModel
from emulator.state import Backend, RunState
from emulator.tables import COUNTER_NAMES, N_COUNTERS, Tables, build_tables
from emulator.timing import scheduled
from neurochip.core import neuron_models as nm
from neurochip.core.errors import EmulatorInputError
from neurochip.core.image import ChipImage
from neurochip.core.results import RunResult, recorded_populations
from neurochip.core.verify import verify_image

__all__ = ["Emulator", "RunResult"]


class Emulator:
    """Cycle-accurate, bit-exact emulator of a chip image.

    >>> import numpy as np, neurochip
    >>> net = neurochip.Network()
    >>> _ = net.add_input("in", 2)
    >>> _ = net.add_lif("out", 1, du=4095, dv=0, vth=100)
    >>> _ = net.connect("in", "out", weights=np.array([[150, 0]]))
    >>> em = neurochip.Emulator(neurochip.compile(net, "loihi_like"))
    >>> r = em.run({"in": np.array([[1, 0], [0, 0]], bool)}, probes=["out.v"])
    >>> r.spikes["out"][:, 0].tolist(), r.probes["out.v"][:, 0].tolist()
    ([False, True], [0, 0])
    """

    def __init__(self, image: ChipImage | str | Path, *, backend: Backend = "numba",
                 threads: int | None = None) -> None:
        if not isinstance(image, ChipImage):
            image = ChipImage.load(image)
        else:
            verify_image(image, "Emulator")
        if backend not in ("numba", "reference"):
            raise EmulatorInputError(f"unknown backend {backend!r}; use 'numba' or 'reference'",
                                     where="Emulator", field="backend")
        self.image = image
        self.backend: Backend = backend
        #: threads a numba run may use (None: Numba's setting); results never depend on it
        self.threads = threads
        #: the run state this emulator shares with its learning engine
        self.run_state = RunState.build(image, backend)
        self._learner: Learner | None = None

    # ------------------------------------------------------------------ state
    @property
    def tables(self) -> Tables:
        """The emulator's copy of synapse memory (kernel tables; learning changes it)."""
        return self.run_state.tables

    @property
    def t(self) -> int:
        """Steps run since construction or the last :meth:`reset`."""
        return self.run_state.t

    def reset(self) -> None:
        """Forget all state (u, v, pending synaptic input, step counter)."""
        self.run_state.reset()

    def state(self) -> dict[str, NDArray[np.int64]]:
        """The neuron state, each entry of shape (B, N) (B = 1 before any run).

        "u" and "v": state slots 0 and 1 of every neuron (a LIF neuron's current and
        voltage; a model's first two state variables, see neuron_models.STATE_SLOTS).
        Then, when the image has populations of other models, one entry per state variable
        of theirs not named u or v (``sigma``, ``act``, ``residue``, ``error``, ``i``,
        ``theta``, ``r``, ``real``, ``imag``): its value at the neurons whose model has it,
        0 at every other neuron."""
        rs = self.run_state
        n = self.image.n_neurons
        if rs.kstate is not None:
            ks = rs.kstate
            aux = ks.aux.astype(np.int64).reshape(ks.batch, -1, n) if ks.aux.size else None
            slots = [ks.u.astype(np.int64), ks.v.astype(np.int64)]
        elif rs.rstates:
            aux = np.stack([s.aux for s in rs.rstates])
            slots = [np.stack([s.u for s in rs.rstates]), np.stack([s.v for s in rs.rstates])]
        else:
            aux = None
            slots = [np.zeros((1, n), np.int64), np.zeros((1, n), np.int64)]
        out = {"u": slots[0], "v": slots[1]}
        for p in self.image.lif_populations:
            for name, slot in nm.STATE_SLOTS[p.model].items():
                if name in ("u", "v"):
                    continue
                arr = out.setdefault(name, np.zeros_like(slots[0]))
                sl = slice(p.offset, p.offset + p.size)
                src = slots[slot] if slot < 2 else aux[:, slot - 2] if aux is not None \
                    else None
                if src is not None:
                    arr[:, sl] = src[:, sl]
        return out

    def set_state(self, u: Any = None, v: Any = None) -> None:
        """Overwrite u and/or v of every neuron: arrays of shape (B, N) (or (N,) for B = 1).

        B must equal the batch the emulator holds state for (any B before the first run or
        after :meth:`reset`). Values must fit the chip's u and v registers; pending
        synaptic input and the step counter are kept.
        """
        f = self.image.hw.formats
        n = self.image.n_neurons
        given: dict[str, NDArray[np.int64]] = {}
        for name, x, bits in (("u", u, f.u_bits), ("v", v, f.v_bits)):
            if x is None:
                continue
            arr = np.asarray(x)
            if arr.ndim == 1:
                arr = arr[None]
            if arr.ndim != 2 or arr.shape[1] != n or arr.dtype.kind not in "iu":
                raise EmulatorInputError(
                    f"{name} has shape {arr.shape} and dtype {arr.dtype}; expected integers of "
                    f"shape (B, {n})", where="Emulator.set_state", field=name)
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            bad = np.flatnonzero((arr < lo) | (arr > hi))
            if bad.size:
                b, i = divmod(int(bad[0]), n)
                raise EmulatorInputError(
                    f"neuron {i} of sample {b} has {int(arr[b, i])}, outside the {bits}-bit "
                    f"register [{lo}, {hi}]", where="Emulator.set_state", field=name,
                    value=int(arr[b, i]), limit=(lo, hi))
            given[name] = arr.astype(np.int64)
        if not given:
            return
        B = next(iter(given.values())).shape[0]
        rs = self.run_state
        held = rs.batch
        if any(a.shape[0] != B for a in given.values()) or (held is not None and held != B):
            raise EmulatorInputError(
                f"state has batch {B}; the emulator holds state for a batch of {held or B} "
                f"(call reset() first)", where="Emulator.set_state", field="u")
        rs.batch = B
        if self.backend == "numba":
            ks = rs.kernel_state(B)
            for name, arr in given.items():
                getattr(ks, name)[:] = arr.astype(np.int32)
        else:
            for name, arr in given.items():
                for b, st in enumerate(rs.reference_states(B)):
                    setattr(st, name, arr[b].copy())

    # ------------------------------------------------------------------ inputs
    def _inputs(self, inputs: Mapping[str, Any] | None, steps: int | None
                ) -> tuple[NDArray[np.bool_], int, bool]:
        return self.run_state.inputs(inputs, steps)

    def _probes(self, probes: Iterable[str]
                ) -> tuple[list[str], NDArray[np.int64], NDArray[np.int8], list[tuple[int, int]]]:
        return self.run_state.probes(probes)

    def _recorded(self, spikes: str | Iterable[str] | None) -> list[str]:
        return recorded_populations(self.image, spikes, "Emulator.run")

    # ------------------------------------------------------------------ run
    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all",
            learn: bool = False, targets: Mapping[str, Any] | None = None,
            reward: Any = None, bias: Mapping[str, Any] | None = None,
            breakdown: bool = False) -> RunResult:
        """Run ``steps`` steps (default: the inputs' length) and return spikes and probes.

        inputs: {input population: spikes (T, n) or (B, T, n)}; B samples run independently.
        probes: ["pop.u", "pop.v", ...]; spikes: "all" LIF populations, a list, or None.
        State carries over to the next call until :meth:`reset`.
        breakdown=True fills ``result.breakdown`` (per layer and per core: synaptic ops,
        neuron updates, spikes, messages, hops, energy, time share; needs spikes="all").

        bias: {population: mantissas (n,) or (B, n)} replaces those populations' bias
        mantissas for this run (the exponent is the image's); how lava-dl feeds images into
        its input layers. A (B, n) bias runs B samples (inputs without a batch are shared).

        learn=True runs the on-chip learning engine of the image's learning configuration
        (one sample stream, batch 1): targets {population: (T, n) target spikes (bool) or
        target values (int)} for its error and local-readout layers, reward (T,) ints for
        reward-modulated layers. Learned weights stay in the emulator (see
        :meth:`learned_image`); the counters then include learning updates, trace updates
        and error messages.
        """
        if learn:
            if bias is not None:
                raise EmulatorInputError("bias is not used with learn=True", where="Emulator.run",
                                         field="bias")
            if any(p.model != "lif" or p.graded for p in self.image.populations):
                raise EmulatorInputError("on-chip learning runs LIF populations with binary "
                                         "spikes only", where="Emulator.run", field="learn")
            return self._run_learning(inputs, steps, probes, spikes, targets, reward)
        if targets is not None or reward is not None:
            raise EmulatorInputError("targets and reward are used only with learn=True",
                                     where="Emulator.run", field="targets")
        rs = self.run_state
        X, steps, batched = rs.inputs(inputs, steps)
        brows = rs.biases(bias)
        if brows is not None and brows.shape[0] > 1:
            if X.shape[0] == 1 and not batched:
                X = np.ascontiguousarray(np.broadcast_to(X, (brows.shape[0], *X.shape[1:])))
                batched = True
            elif X.shape[0] != brows.shape[0]:
                raise EmulatorInputError(f"bias has batch {brows.shape[0]}, inputs have "
                                         f"{X.shape[0]}", where="Emulator.run", field="bias")
        B = X.shape[0]
        if rs.batch is not None and B != rs.batch:
            raise EmulatorInputError(
                f"the emulator holds state for a batch of {rs.batch}; this run has {B} "
                f"samples. Call reset() first.", where="Emulator.run", field="inputs")
        rs.batch = B
        pnames, pidx, pvar, spans = rs.probes(probes)
        # the message schedule replays every neuron's spikes: record them all
        sched = rs.cost.schedule_buffer > 0
        rec_col, rec_spans = rs.record("all" if sched else spikes)
        graded = rs.graded_recorded(rec_spans)
        t_start = rs.t
        raw_v = None
        if self.backend == "numba":
            kstate = rs.kernel_state(B)
            inp_val = None
            if X.dtype == np.bool_:
                inp_ptr, inp_src = spike_lists(X)
            else:
                inp_ptr, inp_src, inp_val = payload_lists(X)
            out: tuple[NDArray[Any], ...]
            if brows is None:
                out = run_batch(rs.tables, kstate, steps, inp_ptr, inp_src, pidx, pvar, rec_col,
                                self.threads, inp_val, graded)
            else:
                out = self._run_biased(kstate, brows, steps, inp_ptr, inp_src, pidx, pvar,
                                       rec_col, inp_val, graded)
            raw_p, raw_s, raw_c = out[:3]
            if graded:
                raw_v = out[3]  # type: ignore[misc]
        else:
            assert rs.ref is not None
            ref, rstates = rs.ref, rs.reference_states(B)
            keep = ref.bias
            outs = []
            try:
                for b in range(B):
                    if brows is not None:
                        ref.bias = brows[min(b, brows.shape[0] - 1)].astype(np.int64)
                    outs.append(ref.run(rstates[b], steps, X[b], pidx, pvar, rec_col, graded))
            finally:
                ref.bias = keep
            raw_p = np.stack([o[0] for o in outs])
            raw_s = np.stack([o[1] for o in outs])
            raw_c = np.stack([o[2] for o in outs])
            if graded:
                raw_v = np.stack([o[3] for o in outs])
        result = rs.result(raw_p, raw_s, raw_c, pnames, spans, rec_spans, t_start, steps,
                           batched, raw_v)
        if sched:
            self._schedule(result, X, raw_s, rec_col, spikes)
        if breakdown:
            result.breakdown = cost_breakdown(self.image, result, X, rs.cost)
        return result

    def _schedule(self, result: RunResult, X: NDArray[Any], raw_s: NDArray[Any],
                  rec_col: NDArray[np.int64], spikes: str | Iterable[str] | None) -> None:
        """Step latency from the message schedule (``cost_model.noc_schedule``), then only
        the spikes the caller asked for."""
        rs = self.run_state
        k = len(self.image.cores)
        wrap = (lambda a: a) if result.batched else (lambda a: a[None])
        raw_c = np.stack([wrap(result.counters[n]) for n in COUNTER_NAMES[:N_COUNTERS]],
                         axis=-1)
        lat, en = scheduled(self.image, X, raw_s[:, :, rec_col], raw_c[:, :, :k],
                            rs.tables.slot_neurons, rs.cost, wrap(result.latency_cycles),
                            wrap(result.energy))
        result.latency_cycles = lat if result.batched else lat[0]
        result.energy = en if result.batched else en[0]
        keep = set(recorded_populations(self.image, spikes, "Emulator.run"))
        result.spikes = {n: v for n, v in result.spikes.items() if n in keep}

    def _run_biased(self, kstate: Any, brows: NDArray[np.int32], steps: int,
                    inp_ptr: NDArray[np.int64], inp_src: NDArray[np.int64],
                    pidx: NDArray[np.int64], pvar: NDArray[np.int8], rec_col: NDArray[np.int64],
                    inp_val: Any, graded: bool) -> tuple[NDArray[Any], ...]:
        """Kernel run with replaced biases: one batched run when every sample has the same
        bias, else sample by sample (each with its own bias, on its own state rows)."""
        rs = self.run_state
        if brows.shape[0] == 1 or bool(np.all(brows == brows[:1])):
            tb = dataclasses.replace(rs.tables, bias=np.ascontiguousarray(brows[0]))
            return tuple(run_batch(tb, kstate, steps, inp_ptr, inp_src, pidx, pvar, rec_col,
                                   self.threads, inp_val, graded))
        outs = []
        t0 = kstate.t
        for b in range(brows.shape[0]):
            tb = dataclasses.replace(rs.tables, bias=np.ascontiguousarray(brows[b]))
            sub = copy.copy(kstate)
            sub.batch, sub.t = 1, t0
            for name, arr in vars(kstate).items():  # every per-sample state array: row b
                if isinstance(arr, np.ndarray) and arr.ndim >= 1 and arr.shape[0] == kstate.batch:
                    setattr(sub, name, arr[b:b + 1])
            outs.append(tuple(run_batch(tb, sub, steps, np.ascontiguousarray(inp_ptr[b:b + 1]),
                                        inp_src, pidx, pvar, rec_col, self.threads, inp_val,
                                        graded)))
        kstate.t = t0 + steps
        return tuple(np.concatenate([o[k] for o in outs]) for k in range(len(outs[0])))

    # ------------------------------------------------------------------ learning
    @property
    def learner(self) -> Learner:
        """The learning engine's state (created on first use)."""
        if self._learner is None:
            self._learner = Learner(self.run_state)
        return self._learner

    def _run_learning(self, inputs: Mapping[str, Any] | None, steps: int | None,
                      probes: Iterable[str], spikes: str | Iterable[str] | None,
                      targets: Mapping[str, Any] | None, reward: Any) -> RunResult:
        rs = self.run_state
        X, steps, batched = rs.inputs(inputs, steps)
        if X.shape[0] != 1:
            raise EmulatorInputError(
                f"learning runs one sample stream; got a batch of {X.shape[0]} (use "
                f"Emulator.learn to stream samples)", where="Emulator.run", field="inputs")
        if rs.batch is not None and rs.batch != 1:
            raise EmulatorInputError(
                f"the emulator holds state for a batch of {rs.batch}; call reset() first",
                where="Emulator.run", field="inputs")
        rs.batch = 1
        learner = self.learner
        pnames, pidx, pvar, spans = rs.probes(probes)
        rec_col, rec_spans = rs.record(spikes)
        t_start = rs.t
        raw_p, raw_s, raw_c = learner.run(X, steps, pidx, pvar, rec_col, targets, reward)
        learner.samples_seen += 1
        return rs.result(raw_p, raw_s, raw_c, pnames, spans, rec_spans, t_start, steps, batched)

    def learn(self, inputs: Mapping[str, Any], targets: Mapping[str, Any] | None = None,
              reward: Any = None, *, epochs: int = 1, shuffle: int | None = None,
              reset: bool = True, spikes: str | Iterable[str] | None = "all",
              callback: Callable[[int, LearnHistory], None] | None = None,
              progress: bool = False) -> LearnHistory:
        """Learn on chip from a stream of samples.

        inputs: {input population: (N, T, n) spikes}; targets: {population: (N, T, n)
        target spikes or values}; reward: (N, T) ints. Samples run one after another,
        ``epochs`` times (shuffled with seed ``shuffle`` if given); with ``reset`` the neuron
        state, traces and tags are cleared before each sample (the weights never are).
        ``callback(epoch, history)`` runs after every epoch (e.g. to evaluate).
        Returns per-sample counters, energy, latency and spike counts.
        """
        self.reset()
        return self.learner.stream(inputs, targets, reward, epochs=epochs, shuffle=shuffle,
                                   reset=reset, record=self._recorded(spikes),
                                   callback=callback, progress=progress)

    def set_rate_shift(self, shift: int) -> None:
        """Scale every learned weight change by 2^-shift from now on (the host lowering the
        learning rate between passes); kept in the learned image's configuration."""
        self.learner.set_rate_shift(shift)

    def weights(self, connection: str) -> NDArray[np.int64]:
        """Current effective weights of a connection, (post, pre): learned ones if any."""
        if self._learner is not None:
            return self._learner.weights(connection)
        return self.image.weights(connection)

    def learned_image(self) -> ChipImage:
        """A new chip image holding the learned weights; deploy it like any other image."""
        return self.learner.learned_image()

    def reset_learning(self) -> None:
        """Forget everything learned: weights back to the image's, learning state cleared."""
        rs = self.run_state
        rs.tables = build_tables(self.image)
        self._learner = None
        if self.backend == "reference":
            rs.ref = ReferenceModel(self.image)
        self.reset()
