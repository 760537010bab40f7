"""The emulator's public face: ``Emulator(image).run(inputs, steps, probes=[...])``.

Objects live only at this edge; the work is done by pure functions over explicit state
(``emulator.kernels`` and ``emulator.reference``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from emulator.kernels import KernelState, run_batch, spike_lists
from emulator.reference import ReferenceModel, ReferenceState
from emulator.tables import COUNTER_NAMES, N_COUNTERS, Tables, build_tables
from emulator.timing import CostModel, account
from neurochip.core.errors import EmulatorInputError
from neurochip.core.image import ChipImage
from neurochip.core.results import RunResult, recorded_populations
from neurochip.core.verify import verify_image

if TYPE_CHECKING:
    from collections.abc import Callable

    from emulator.learning.engine import Learner, LearnHistory

__all__ = ["Emulator", "RunResult"]

Backend = Literal["numba", "reference"]

#: batch x steps x (inputs + neurons) one run may hold (its inputs and recorded spikes)
MAX_RUN_ENTRIES = 1 << 32


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
        self.backend = backend
        #: threads a numba run may use (None: Numba's setting); results never depend on it
        self.threads = threads
        self.tables: Tables = build_tables(image)
        self._cost = CostModel.build(image.hw, image.used_cores)
        self._ref = ReferenceModel(image) if backend == "reference" else None
        self._kstate: KernelState | None = None
        self._rstates: list[ReferenceState] | None = None
        self._batch: int | None = None
        self._pops = {p.name: p for p in image.populations}
        self._learner: Learner | None = None

    # ------------------------------------------------------------------ state
    @property
    def t(self) -> int:
        """Steps run since construction or the last :meth:`reset`."""
        if self._kstate is not None:
            return self._kstate.t
        if self._rstates:
            return self._rstates[0].t
        return 0

    def reset(self) -> None:
        """Forget all state (u, v, pending synaptic input, step counter)."""
        self._kstate = None
        self._rstates = None
        self._batch = None

    def state(self) -> dict[str, NDArray[np.int64]]:
        """Current u and v of every neuron, shape (B, N) (B = 1 before any run)."""
        if self._kstate is not None:
            return {"u": self._kstate.u.astype(np.int64), "v": self._kstate.v.astype(np.int64)}
        if self._rstates:
            return {"u": np.stack([s.u for s in self._rstates]),
                    "v": np.stack([s.v for s in self._rstates])}
        n = self.image.n_neurons
        return {"u": np.zeros((1, n), np.int64), "v": np.zeros((1, n), np.int64)}

    # ------------------------------------------------------------------ inputs
    def _inputs(self, inputs: Mapping[str, Any] | None, steps: int | None
                ) -> tuple[NDArray[np.bool_], int, bool]:
        inputs = dict(inputs or {})
        n_in = self.image.n_inputs
        batch: int | None = None
        T = 0
        arrays: dict[str, NDArray[Any]] = {}
        for name, x in inputs.items():
            p = self._pops.get(name)
            if p is None or p.kind != "input":
                have = [q.name for q in self.image.input_populations]
                raise EmulatorInputError(f"no input population {name!r}; inputs are {have}",
                                         where="Emulator.run", field="inputs")
            arr = np.asarray(x)
            if arr.ndim not in (2, 3) or arr.shape[-1] != p.size:
                raise EmulatorInputError(
                    f"input {name!r} has shape {arr.shape}; expected (T, {p.size}) or "
                    f"(B, T, {p.size})", where="Emulator.run", field=name)
            if arr.dtype != np.bool_:
                if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                    raise EmulatorInputError(
                        f"input {name!r} must hold spikes (bool or 0/1)", where="Emulator.run",
                        field=name)
                arr = arr.astype(bool)
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
        X = np.zeros((B, int(steps), n_in), bool)
        for name, arr in arrays.items():
            p = self._pops[name]
            X[:, : arr.shape[-2], p.offset: p.offset + p.size] = arr
        return X, int(steps), batched

    def _probes(self, probes: Iterable[str]
                ) -> tuple[list[str], NDArray[np.int64], NDArray[np.int8], list[tuple[int, int]]]:
        names: list[str] = []
        idx: list[int] = []
        var: list[int] = []
        spans: list[tuple[int, int]] = []
        for pr in probes:
            pop_name, _, v = str(pr).rpartition(".")
            p = self._pops.get(pop_name)
            if p is None or p.kind != "lif" or v not in ("u", "v"):
                lif = [q.name for q in self.image.lif_populations]
                raise EmulatorInputError(
                    f"bad probe {pr!r}: use '<population>.u' or '<population>.v' with a LIF "
                    f"population of {lif}", where="Emulator.run", field="probes")
            start = len(idx)
            idx.extend(range(p.offset, p.offset + p.size))
            var.extend([0 if v == "u" else 1] * p.size)
            names.append(str(pr))
            spans.append((start, len(idx)))
        return (names, np.asarray(idx, np.int64), np.asarray(var, np.int8), spans)

    def _recorded(self, spikes: str | Iterable[str] | None) -> list[str]:
        return recorded_populations(self.image, spikes, "Emulator.run")

    # ------------------------------------------------------------------ run
    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all",
            learn: bool = False, targets: Mapping[str, Any] | None = None,
            reward: Any = None) -> RunResult:
        """Run ``steps`` steps (default: the inputs' length) and return spikes and probes.

        inputs: {input population: spikes (T, n) or (B, T, n)}; B samples run independently.
        probes: ["pop.u", "pop.v", ...]; spikes: "all" LIF populations, a list, or None.
        State carries over to the next call until :meth:`reset`.

        learn=True runs the on-chip learning engine of the image's learning configuration
        (one sample stream, batch 1): targets {population: (T, n) target spikes (bool) or
        target values (int)} for its error and local-readout layers, reward (T,) ints for
        reward-modulated layers. Learned weights stay in the emulator (see
        :meth:`learned_image`); the counters then include learning updates, trace updates
        and error messages.
        """
        if learn:
            return self._run_learning(inputs, steps, probes, spikes, targets, reward)
        if targets is not None or reward is not None:
            raise EmulatorInputError("targets and reward are used only with learn=True",
                                     where="Emulator.run", field="targets")
        X, steps, batched = self._inputs(inputs, steps)
        B = X.shape[0]
        if self._batch is not None and B != self._batch:
            raise EmulatorInputError(
                f"the emulator holds state for a batch of {self._batch}; this run has {B} "
                f"samples. Call reset() first.", where="Emulator.run", field="inputs")
        self._batch = B
        pnames, pidx, pvar, spans = self._probes(probes)
        rec = self._recorded(spikes)
        rec_col = np.full(self.image.n_neurons, -1, np.int64)
        rec_spans: dict[str, tuple[int, int]] = {}
        col = 0
        for name in rec:
            p = self._pops[name]
            rec_col[p.offset: p.offset + p.size] = np.arange(col, col + p.size)
            rec_spans[name] = (col, col + p.size)
            col += p.size
        t_start = self.t
        if self.backend == "numba":
            if self._kstate is None:
                self._kstate = KernelState(self.tables, B)
            inp_ptr, inp_src = spike_lists(X)
            raw_p, raw_s, raw_c = run_batch(self.tables, self._kstate, steps, inp_ptr, inp_src,
                                            pidx, pvar, rec_col, self.threads)
        else:
            assert self._ref is not None
            if self._rstates is None:
                self._rstates = [self._ref.new_state() for _ in range(B)]
            outs = [self._ref.run(self._rstates[b], steps, X[b], pidx, pvar, rec_col)
                    for b in range(B)]
            raw_p = np.stack([o[0] for o in outs])
            raw_s = np.stack([o[1] for o in outs])
            raw_c = np.stack([o[2] for o in outs])
        return self._result(raw_p, raw_s, raw_c, pnames, spans, rec_spans, t_start, steps,
                            batched)

    # ------------------------------------------------------------------ learning
    @property
    def learner(self) -> Learner:
        """The learning engine's state (created on first use)."""
        if self._learner is None:
            from emulator.learning.engine import Learner

            self._learner = Learner(self)
        return self._learner

    def _record(self, spikes: str | Iterable[str] | None
                ) -> tuple[NDArray[np.int64], dict[str, tuple[int, int]]]:
        rec_col = np.full(self.image.n_neurons, -1, np.int64)
        rec_spans: dict[str, tuple[int, int]] = {}
        col = 0
        for name in self._recorded(spikes):
            p = self._pops[name]
            rec_col[p.offset: p.offset + p.size] = np.arange(col, col + p.size)
            rec_spans[name] = (col, col + p.size)
            col += p.size
        return rec_col, rec_spans

    def _run_learning(self, inputs: Mapping[str, Any] | None, steps: int | None,
                      probes: Iterable[str], spikes: str | Iterable[str] | None,
                      targets: Mapping[str, Any] | None, reward: Any) -> RunResult:
        X, steps, batched = self._inputs(inputs, steps)
        if X.shape[0] != 1:
            raise EmulatorInputError(
                f"learning runs one sample stream; got a batch of {X.shape[0]} (use "
                f"Emulator.learn to stream samples)", where="Emulator.run", field="inputs")
        if self._batch is not None and self._batch != 1:
            raise EmulatorInputError(
                f"the emulator holds state for a batch of {self._batch}; call reset() first",
                where="Emulator.run", field="inputs")
        self._batch = 1
        learner = self.learner
        pnames, pidx, pvar, spans = self._probes(probes)
        rec_col, rec_spans = self._record(spikes)
        t_start = self.t
        raw_p, raw_s, raw_c = learner.run(X, steps, pidx, pvar, rec_col, targets, reward)
        learner.samples_seen += 1
        return self._result(raw_p, raw_s, raw_c, pnames, spans, rec_spans, t_start, steps,
                            batched)

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
        self.tables = build_tables(self.image)
        self._learner = None
        if self.backend == "reference":
            self._ref = ReferenceModel(self.image)
        self.reset()

    def _result(self, raw_p: NDArray[Any], raw_s: NDArray[Any], raw_c: NDArray[Any],
                pnames: list[str], spans: list[tuple[int, int]],
                rec_spans: dict[str, tuple[int, int]], t_start: int, steps: int,
                batched: bool) -> RunResult:
        k = len(self.image.cores)
        raw_c = raw_c[:, :, :k, :] if k else raw_c[:, :, :0, :]
        neurons = self.tables.slot_neurons
        cycles, latency, energy = account(raw_c, neurons, self._cost)
        sq = (lambda a: a) if batched else (lambda a: a[0])
        probes = {n: sq(raw_p[:, :, a:b]) for n, (a, b) in zip(pnames, spans)}
        spikes = {n: sq(raw_s[:, :, a:b].astype(bool)) for n, (a, b) in rec_spans.items()}
        counters = {name: sq(raw_c[..., i]) for i, name in enumerate(COUNTER_NAMES)
                    if i < N_COUNTERS}
        return RunResult(spikes, probes, counters, sq(cycles), sq(latency), sq(energy),
                         list(self.image.used_cores), self._cost.cycle_ns, t_start, steps, batched)
