"""Which Lava process each part of an image becomes, and where our compiler placed it.

Pure data, no Lava import: :func:`export_plan` is what :func:`~compiler.lava.export_lava`
builds and what ``neurochip inspect`` prints. Each entry names the Lava process, whether it
is one of Lava's own (``stock``: Lava's library process with Lava's own models, the ones
Lava's Loihi 2 backend compiles) or a process of ours with a CPU-only Python model, why,
and the placement hint: the slices ``[core, start, count]`` of the process's neurons on our
cores (for a synapse process, the slices of its postsynaptic neurons, whose cores hold its
synapses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.lava.checks import LAVA_MODELS
from neurochip.core.image import ChipImage, PopulationInfo

__all__ = ["LAVA_READOUT_VTH", "LavaExportWarning", "ProcessPlan", "export_plan",
           "export_summary", "placement_hints"]


class LavaExportWarning(UserWarning):
    """The export uses a process of ours (no Lava equivalent) or leaves learning out."""

#: vth of a readout exported as Lava's LIF: Lava compares v > vth * 2^6 and v saturates at
#: 2^23 - 1, so vth = 2^17 (threshold 2^23) is never crossed
LAVA_READOUT_VTH = 1 << 17

SUBTRACT_REASON = ("reset by subtraction (v <- v - vth * 2^6): Lava's LIF processes reset "
                   "v to zero")


@dataclass(frozen=True)
class ProcessPlan:
    """One exported process: its Lava class, whether it is Lava's own, and its placement."""

    name: str  # population or connection name
    role: str  # "source" | "neurons" | "synapses" | "target" | "reward"
    lava_process: str  # Lava class name, e.g. "LIF", "ChipLIF", "Dense", "LearningDense"
    stock: bool  # Lava's own process and models
    reason: str = ""  # why a process of ours is needed (empty when stock)
    slices: tuple[tuple[int, int, int], ...] = field(default_factory=tuple)

    @property
    def cores(self) -> list[int]:
        return sorted({s[0] for s in self.slices})

    def hint(self) -> dict[str, Any]:
        """The placement hint stored in the process's ``proc_params`` and the side file."""
        return {"lava_process": self.lava_process, "stock": self.stock, "role": self.role,
                "cores": self.cores,
                "slices": [{"core": c, "start": s, "count": n} for c, s, n in self.slices]}


def _slices(p: PopulationInfo) -> tuple[tuple[int, int, int], ...]:
    """[core, start, count] of the population's neurons, start relative to the population."""
    out = []
    for core, start, count in p.slices:
        # slices hold the population's neuron range on each core (start within the population)
        out.append((int(core), int(start), int(count)))
    return tuple(out)


def neuron_plan(p: PopulationInfo, learning: str | None = None) -> ProcessPlan:
    """The process of a LIF population. ``learning``: None, "2f" (a post population of a
    two-factor rule: Lava's own neuron, its spikes drive the learning connection) or "3f"
    (a learning neuron of ours computes the third factor)."""
    sl = _slices(p)
    if learning == "3f":
        return ProcessPlan(p.name, "neurons", "ChipLearningLIF", False,
                           "computes the third factor, the surrogate and the post traces of "
                           "our learning engine (a learning neuron of ours)", sl)
    if p.model != "lif":
        # LIFReset, TernaryLIF, Sigma, Delta, SigmaDelta: Lava's own processes
        return ProcessPlan(p.name, "neurons", LAVA_MODELS.get(p.model, p.model), True, "", sl)
    if p.spiking and p.reset == "subtract":
        return ProcessPlan(p.name, "neurons", "ChipLIF", False, SUBTRACT_REASON, sl)
    return ProcessPlan(p.name, "neurons", "LIF", True, "", sl)


def synapse_plan(image: ChipImage, ci: int, learning: bool = False) -> ProcessPlan:
    c = image.connections[ci]
    sl = _slices(image.population(c.post))
    if learning:
        kind = "LearningDense" if c.storage == "dense" else "LearningSparse"
    else:
        delayed = c.has_delays or c.delay != 0
        kind = {("dense", False): "Dense", ("dense", True): "DelayDense",
                ("sparse", False): "Sparse", ("sparse", True): "DelaySparse"}[
            ("sparse" if c.storage == "conv" else
             c.storage if c.storage in ("dense", "sparse") else "dense", delayed)]
    return ProcessPlan(c.name, "synapses", kind, True, "", sl)


def export_plan(image: ChipImage, learned: dict[str, str] | None = None,
                plastic: set[str] | None = None) -> list[ProcessPlan]:
    """The processes of the export, in order: sources, neurons, synapses.

    ``learned``: learning population -> "2f" | "3f" and ``plastic``: the connections
    exported as learning connections (both from the learning export; empty for inference).
    """
    learned = learned or {}
    plastic = plastic or set()
    out = [ProcessPlan(p.name, "source", "RingBuffer", True, "", ())
           for p in image.input_populations]
    out += [neuron_plan(p, learned.get(p.name)) for p in image.lif_populations]
    out += [synapse_plan(image, ci, c.name in plastic) for ci, c in enumerate(image.connections)]
    return out


def placement_hints(plan: list[ProcessPlan]) -> dict[str, Any]:
    """The side-file form of the placement: process name -> hint."""
    return {"format": "neurochip-lava-placement", "version": 1,
            "processes": {p.name: p.hint() for p in plan}}


def export_summary(image: ChipImage) -> dict[str, Any]:
    """What ``export_lava(image)`` would build, without Lava: whether the image exports, the
    processes with their Lava classes and placement, and what of the learning is exported
    (for ``neurochip inspect``)."""
    from compiler.lava.checks import check_exportable
    from compiler.lava.learning import plan_learning
    from neurochip.core.errors import LavaExportError

    try:
        check_exportable(image, allow_learning=bool(image.learning))
    except LavaExportError as exc:
        return {"exportable": False, "reason": str(exc), "processes": []}
    kinds: dict[str, str] = {}
    plastic: set[str] = set()
    learning = None
    if image.learning:
        try:
            lp = plan_learning(image)
        except LavaExportError as exc:
            learning = {"exported": False, "reason": str(exc)}
        else:
            if lp.expressible:
                kinds, plastic = lp.learning_kinds(), set(lp.rules)
                learning = {"exported": True, "rules": {
                    k: {"dw": r.dw, "dt": r.dt, "three_factor": r.three_factor,
                        "t_epoch": r.t_epoch} for k, r in lp.rules.items()}}
            else:
                learning = {"exported": False, "reason": str(lp.error())}
    plan = export_plan(image, kinds, plastic)
    return {"exportable": True, "stock": all(p.stock for p in plan), "learning": learning,
            "processes": [{"name": p.name, **p.hint(), "reason": p.reason} for p in plan]}
