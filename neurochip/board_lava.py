"""The ``lava`` board: the chip image exported to Lava processes, run on Lava's runtime.

An independent implementation of the chip (Lava 0.10's fixed-point LIF, Dense/Sparse and
delay processes; :mod:`compiler.lava`). Lava processes run once from their
initial state, so this board keeps the inputs it was given since the last reset and
replays them before each new run: state carries over between runs exactly as on the other
boards (at the cost of re-running the history). Samples of a batch run one after another.

``run_config``: a callable ``(LavaNetwork) -> Lava RunConfig`` to run elsewhere than on
Lava's CPU runtime (e.g. a Loihi configuration where one is reachable); by default the
network's own ``Loihi2SimCfg(select_tag="fixed_pt")``.

What Lava cannot do raises :class:`UnsupportedOperation`: on-chip learning (Lava's learning
engine is not ours), per-step accounting (counters, cycles and energy are not measured:
the result's counters are empty and its cycles, latency and energy arrays have no cores /
are zero), and writing neuron state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from neurochip.board import Board, UnsupportedOperation, with_weights
from neurochip.core import neuron_models as nm
from neurochip.errors import BoardError, EmulatorInputError, LavaExportError

if TYPE_CHECKING:
    from neurochip import ChipImage, RunResult

__all__ = ["LavaBoard"]


class LavaBoard(Board):
    """Runs images in Lava; see the module docstring."""

    name = "lava"
    backend = "lava"
    #: a run must not be cut into chunks (each would replay the history)
    chunked_runs = False

    def __init__(self, *, timeout_s: float | None = 120.0,
                 run_config: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.run_config = run_config
        self._history: NDArray[np.bool_] | None = None  # (B, t, n_in) inputs since reset
        self._batched: bool | None = None
        self._work: ChipImage | None = None  # image with written weights
        self._checker: Any = None

    def _load(self, image: ChipImage) -> None:
        from compiler.lava import check_exportable

        try:
            check_exportable(image)
        except LavaExportError as exc:
            raise UnsupportedOperation(f"Lava cannot run this image: {exc}",
                                       where=self.name) from None
        # The board replays binary input histories and reads back u and v: graded spikes
        # and models with other state (sigma-delta) run through export_lava instead.
        odd = [p.name for p in image.populations
               if p.graded or (p.kind == "lif" and "u" not in nm.STATE_SLOTS.get(p.model, {}))]
        if odd:
            raise UnsupportedOperation(
                f"the Lava board runs binary spikes and u/v neurons; populations {odd} are "
                "graded or keep other state (run them with compiler.lava.export_lava)",
                where=self.name)
        self._work = image
        self.reset()

    def reset(self) -> None:
        self._history = None
        self._batched = None

    def _inputs(self, inputs: Mapping[str, Any] | None, steps: int | None
                ) -> tuple[NDArray[np.bool_], int, bool]:
        from neurochip import Emulator

        assert self._work is not None
        if self._checker is None or self._checker.image is not self._work:
            self._checker = Emulator(self._work)  # checks inputs exactly as the emulator
        X, T, batched = self._checker._inputs(inputs, steps)
        return X, T, batched

    def _lava_run(self, X: NDArray[np.bool_], probes: list[str], rec: list[str]) -> Any:
        from compiler.lava import export_lava

        assert self._work is not None
        T = X.shape[0]
        inputs = {p.name: X[:, p.offset: p.offset + p.size]
                  for p in self._work.input_populations}
        net = export_lava(self._work, inputs, T)
        if self.run_config is None:
            return net.run(T, probes=probes, spikes=rec, timeout_s=self.timeout_s)
        cfg = self.run_config(net)
        orig = net.run_config
        net.run_config = lambda: cfg  # type: ignore[method-assign]
        try:
            return net.run(T, probes=probes, spikes=rec, timeout_s=self.timeout_s)
        finally:
            net.run_config = orig  # type: ignore[method-assign]

    def run(self, inputs: Mapping[str, Any] | None = None, steps: int | None = None, *,
            probes: Iterable[str] = (), spikes: str | Iterable[str] | None = "all"
            ) -> RunResult:
        from neurochip import RunResult
        from neurochip.core.results import recorded_populations

        if self._work is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        img = self._work
        X, T, batched = self._inputs(inputs, steps)
        B = X.shape[0]
        if self._history is not None and self._history.shape[0] != B:
            raise EmulatorInputError(
                f"the board holds state for a batch of {self._history.shape[0]}; this run has "
                f"{B} samples. Call reset() first.", where=self.name, field="inputs")
        probes = [str(p) for p in probes]
        rec = recorded_populations(img, spikes, self.name)
        past = self._history if self._history is not None else np.zeros((B, 0, X.shape[2]), bool)
        t0 = past.shape[1]
        full = np.concatenate([past, X], axis=1)
        outs = [self._lava_run(full[b], probes, rec) for b in range(B)] if T else []
        size = {p.name: p.size for p in img.lif_populations}

        def pick(group: str, name: str, width: int, dtype: Any) -> NDArray[Any]:
            if not outs:
                return np.zeros((B, 0, width), dtype)
            return np.stack([getattr(o, group)[name][t0:] for o in outs]).astype(dtype)

        sp = {n: pick("spikes", n, size[n], bool) for n in rec}
        pr = {n: pick("probes", n, size[n.rpartition(".")[0]], np.int32) for n in probes}
        self._history = full
        self._batched = batched
        sq = (lambda a: a) if batched else (lambda a: a[0])
        lead = (B,) if batched else ()
        return RunResult({k: sq(v) for k, v in sp.items()}, {k: sq(v) for k, v in pr.items()},
                         {}, np.zeros((*lead, T, 0), np.int64),
                         np.zeros((*lead, T), np.int64), np.zeros((*lead, T, 0)), [],
                         float(img.hw.timing.cycle_ns),
                         t0, T, batched, {"accounting": False})

    def read_weights(self, connection: str) -> NDArray[np.int64]:
        if self._work is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        try:
            return self._work.weights(connection)
        except KeyError:
            have = [c.name for c in self._work.connections]
            raise EmulatorInputError(f"no connection {connection!r}; connections are {have}",
                                     where=self.name, field="connection") from None

    def write_weights(self, connection: str, weights: Any) -> None:
        if self._work is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        self._work = with_weights(self._work, connection, weights, self.name)
        self.reset()

    def read_state(self) -> dict[str, NDArray[np.int64]]:
        if self._work is None:
            raise BoardError("no chip image loaded; call load(image) first", where=self.name)
        img = self._work
        n = img.n_neurons
        if self._history is None or self._history.shape[1] == 0:
            return {"u": np.zeros((1, n), np.int64), "v": np.zeros((1, n), np.int64)}
        probes = [f"{p.name}.{v}" for p in img.lif_populations for v in "uv"]
        B = self._history.shape[0]
        u = np.zeros((B, n), np.int64)
        v = np.zeros((B, n), np.int64)
        for b in range(B):
            o = self._lava_run(self._history[b], probes, [])
            for p in img.lif_populations:
                u[b, p.offset: p.offset + p.size] = o.probes[f"{p.name}.u"][-1]
                v[b, p.offset: p.offset + p.size] = o.probes[f"{p.name}.v"][-1]
        return {"u": u, "v": v}
