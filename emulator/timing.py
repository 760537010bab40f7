"""Cycle, latency and energy accounting from the events each core really processed.

Per step t and core k (counters from the kernels, see ``emulator.tables``)::

    cycles[t, k] = spikes_in * spike_in + syn_ops * synop
                 + active * neuron_active + (neurons_k - active) * neuron_inactive
                 + messages * spike_out + learn_updates * learn_update
                 + trace_updates * trace_update

    latency[t]   = max_k cycles[t, k]            (the slowest core)
                 + max over messages of (spike_out + hops_ew * hop_ew
                                         + hops_ns * hop_ns + links * chip_link)
                 + barrier(tiles in use)         (linear in tiles, 1 .. barrier_max_tiles)

    energy[t, k] = syn_ops * synop + spikes_in * spike_in + active * neuron_active
                 + (neurons_k - active) * neuron_inactive + messages * spike_out
                 + hops_ew * hop_ew + hops_ns * hop_ns + links * chip_link
                 + learn_updates * learn_update + trace_updates * trace_update
                 + static_mw_per_core * latency_ns[t]

All per-operation costs come from the hardware spec (cycles are integers of
``timing.cycle_ns``). Every allocated neuron is updated every step (active when it had
synaptic input or spiked). Messages from host inputs are charged to the destination core.
The model is deterministic and is checked against hand-counted cases in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from emulator.tables import (
    C_ACTIVE,
    C_ERR_MSGS,
    C_HOPS_EW,
    C_HOPS_NS,
    C_LEARN,
    C_LINKS,
    C_MSGS,
    C_ROUTE_MAX,
    C_SPIKES_IN,
    C_SYNOPS,
    C_TRACE,
)
from neurochip.hw import HardwareSpec

__all__ = ["CostModel", "account"]


@dataclass(frozen=True)
class CostModel:
    cycle_ns: float
    cyc: dict[str, int]
    pj: dict[str, float]
    static_mw: float
    barrier: int

    @classmethod
    def build(cls, hw: HardwareSpec, cores: list[int]) -> CostModel:
        t, e = hw.timing, hw.energy
        names = ["synop", "spike_in", "neuron_active", "neuron_inactive", "spike_out", "hop_ew",
                 "hop_ns", "chip_link", "learn_update", "trace_update"]
        cyc = {n: t.cycles(n) for n in names}
        pj = {n: float(getattr(e, f"{n}_pj")) for n in names}
        tiles = len({hw.tile_of(c) for c in cores}) if cores else 1
        return cls(t.cycle_ns, cyc, pj, e.static_mw_per_core, t.barrier_cycles(tiles))


def account(counters: NDArray[np.int64], neurons: NDArray[np.int64], cm: CostModel
            ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """cycles (..., T, K), latency in cycles (..., T), energy in pJ (..., T, K)."""
    c = counters
    active = c[..., C_ACTIVE]
    inactive = neurons - active
    cy = cm.cyc
    cycles = (c[..., C_SPIKES_IN] * cy["spike_in"] + c[..., C_SYNOPS] * cy["synop"]
              + active * cy["neuron_active"] + inactive * cy["neuron_inactive"]
              + (c[..., C_MSGS] + c[..., C_ERR_MSGS]) * cy["spike_out"]
              + c[..., C_LEARN] * cy["learn_update"] + c[..., C_TRACE] * cy["trace_update"])
    route = c[..., C_ROUTE_MAX].max(axis=-1) if c.shape[-2] else np.zeros(c.shape[:-2], np.int64)
    latency = (cycles.max(axis=-1) if cycles.shape[-1] else 0) + route + cm.barrier
    p = cm.pj
    energy = (c[..., C_SYNOPS] * p["synop"] + c[..., C_SPIKES_IN] * p["spike_in"]
              + active * p["neuron_active"] + inactive * p["neuron_inactive"]
              + (c[..., C_MSGS] + c[..., C_ERR_MSGS]) * p["spike_out"]
              + c[..., C_HOPS_EW] * p["hop_ew"]
              + c[..., C_HOPS_NS] * p["hop_ns"] + c[..., C_LINKS] * p["chip_link"]
              + c[..., C_LEARN] * p["learn_update"] + c[..., C_TRACE] * p["trace_update"])
    energy = energy + cm.static_mw * (latency * cm.cycle_ns)[..., None]
    return cycles.astype(np.int64), latency.astype(np.int64), energy.astype(np.float64)
