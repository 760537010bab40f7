"""What a run gives back (spikes, probes, per-step and per-core accounting), and which
populations a run records: the same for every backend that runs a chip image (the
emulator, Lava, a board)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import EmulatorInputError
from neurochip.core.image import ChipImage

__all__ = ["BREAKDOWN_FIELDS", "Breakdown", "RunResult", "recorded_populations"]


#: what a breakdown row holds (per layer and per core), summed over the run's steps
BREAKDOWN_FIELDS = ("syn_ops", "neuron_updates", "spikes", "messages", "hops", "energy_pj",
                    "cycles", "time_share")


@dataclass
class Breakdown:
    """Where a run's work, energy and time went: per layer (population) and per core.

    Each row maps :data:`BREAKDOWN_FIELDS` to totals over the run (per sample when
    batched). ``layers`` and ``cores`` each sum to the run's totals (syn_ops, spikes,
    messages, hops, energy). ``cycles``: a core's busy cycles (as the cost model
    counts them, pipelined or serial); a layer's work cycles (its events x cycles per event,
    stages added). ``time_share``: a row's share of the sum of those over its table.
    Per core also ``slowest_steps`` (steps in which it was the slowest core) and
    ``port_max`` (most messages its router port carried in one step). Layer rows also split
    their energy into ``energy_synapses_pj`` (axon events, synaptic operations),
    ``energy_neurons_pj`` (updates, fired spikes, learning), ``energy_network_pj``
    (messages, hops, links) and ``energy_static_pj``. ``busiest_port`` is
    (core, step, messages) of the most loaded router port. ``exact`` names the layer
    fields that are counted exactly; the others are shared out between layers that share
    a core (in proportion to the synaptic operations each received, then to neurons).
    """

    layers: dict[str, dict[str, float]]
    cores: dict[int, dict[str, float]]
    busiest_port: tuple[int, int, int]
    slowest_core: int
    exact: tuple[str, ...]
    step_cycles: NDArray[np.float64] | None = None  # (T, cores) busy cycles, sample mean
    step_ports: NDArray[np.float64] | None = None  # (T, cores) router-port messages

    def table(self) -> str:
        """The two tables as text."""
        cols = ("syn_ops", "neuron_updates", "spikes", "messages", "hops", "energy_pj",
                "time_share")
        head = f"{'':>14}" + "".join(f"{c:>15}" for c in cols)
        out = ["per layer", head]
        for name, row in self.layers.items():
            out.append(f"{name:>14}" + "".join(_fmt(c, row[c]) for c in cols))
        out += ["per core", head + f"{'slowest_steps':>15}"]
        for core, row in self.cores.items():
            mark = " *" if core == self.slowest_core else ""
            out.append(f"{'core ' + str(core) + mark:>14}" + "".join(_fmt(c, row[c]) for c in cols)
                       + f"{row['slowest_steps']:>15.0f}")
        c, t, m = self.busiest_port
        out.append(f"slowest core (most steps): {self.slowest_core}; busiest router port: "
                   f"core {c}, {m} messages in step {t}")
        return "\n".join(out)


def _fmt(col: str, v: float) -> str:
    if col == "time_share":
        return f"{100 * v:>14.1f}%"
    if col == "energy_pj":
        return f"{v:>15.1f}"
    return f"{v:>15.0f}"


@dataclass
class RunResult:
    """Spikes, probes and per-step, per-core accounting of one ``run``.

    Unbatched runs give arrays of shape (T, ...); batched runs (B, T, ...).
    ``cycles`` and ``energy`` (pJ) are per step and per core (columns follow ``cores``);
    ``latency_ns`` is per step.
    """

    spikes: dict[str, NDArray[np.bool_]]
    probes: dict[str, NDArray[np.int32]]
    counters: dict[str, NDArray[np.int64]]
    cycles: NDArray[np.int64]
    latency_cycles: NDArray[np.int64]
    energy: NDArray[np.float64]
    cores: list[int]
    cycle_ns: float
    t_start: int
    steps: int
    batched: bool
    extra: dict[str, Any] = field(default_factory=dict)
    breakdown: Breakdown | None = None  # per layer and per core (Emulator.run(breakdown=True))

    @property
    def latency_ns(self) -> NDArray[np.float64]:
        return self.latency_cycles * self.cycle_ns

    @property
    def energy_per_step(self) -> NDArray[np.float64]:
        """Energy of each step summed over cores, pJ."""
        return self.energy.sum(axis=-1)

    def totals(self) -> dict[str, float]:
        """Whole-run totals (summed over steps and cores; per sample mean when batched)."""
        b = self.energy.shape[0] if self.batched else 1
        out = {name: float(arr.sum()) / b for name, arr in self.counters.items()
               if name != "route_cycles"}
        out["energy_pj"] = float(self.energy.sum()) / b
        out["latency_ns"] = float(self.latency_ns.sum()) / b
        out["cycles_max_core"] = float(self.cycles.sum(axis=-2).max(axis=-1).sum()) / b \
            if self.cycles.size else 0.0
        out["spikes"] = out.get("spikes_out", 0.0)
        return out

    def summary(self) -> str:
        t = self.totals()
        n = len(self.cores)
        cores = f"{n} core{'' if n == 1 else 's'}"
        return (f"{self.steps} steps on {cores}: {t['syn_ops']:.0f} synaptic ops, "
                f"{t['spikes_out']:.0f} spikes, {t['latency_ns'] / 1e3:.2f} us, "
                f"{t['energy_pj'] / 1e6:.3f} uJ")


def recorded_populations(image: ChipImage, spikes: str | Iterable[str] | None,
                         where: str) -> list[str]:
    """The LIF populations whose spikes to record: "all", None, a name, or names."""
    lif = [p.name for p in image.lif_populations]
    if spikes is None:
        return []
    if isinstance(spikes, str):
        if spikes == "all":
            return lif
        spikes = [spikes]
    out = []
    for s in spikes:
        if s not in lif:
            raise EmulatorInputError(f"cannot record spikes of {s!r}; LIF populations: {lif}",
                                     where=where, field="spikes")
        out.append(s)
    return out
