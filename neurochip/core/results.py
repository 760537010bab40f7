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

__all__ = ["RunResult", "recorded_populations"]


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
