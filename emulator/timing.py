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

from emulator.kernels import account_steps
from emulator.tables import (
    C_ACTIVE,
    C_ERR_MSGS,
    C_HOPS_EW,
    C_HOPS_NS,
    C_LEARN,
    C_LINKS,
    C_MSGS,
    C_SPIKES_IN,
    C_SYNOPS,
    C_TRACE,
    N_COUNTERS,
)
from neurochip.core.hw import HardwareSpec

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
    """cycles (..., T, K), latency in cycles (..., T), energy in pJ (..., T, K).

    Both are linear in the counters: cycles = counters @ cycle_weights + idle neurons x
    neuron_inactive, and likewise for energy (plus static power over the step latency).
    """
    cy, p = cm.cyc, cm.pj
    wc = np.zeros(N_COUNTERS, np.int64)
    we = np.zeros(N_COUNTERS, np.float64)
    wc[C_SPIKES_IN], we[C_SPIKES_IN] = cy["spike_in"], p["spike_in"]
    wc[C_SYNOPS], we[C_SYNOPS] = cy["synop"], p["synop"]
    # an active neuron costs neuron_active instead of neuron_inactive
    wc[C_ACTIVE] = cy["neuron_active"] - cy["neuron_inactive"]
    we[C_ACTIVE] = p["neuron_active"] - p["neuron_inactive"]
    wc[C_MSGS] = wc[C_ERR_MSGS] = cy["spike_out"]
    we[C_MSGS] = we[C_ERR_MSGS] = p["spike_out"]
    wc[C_LEARN], we[C_LEARN] = cy["learn_update"], p["learn_update"]
    wc[C_TRACE], we[C_TRACE] = cy["trace_update"], p["trace_update"]
    we[C_HOPS_EW], we[C_HOPS_NS], we[C_LINKS] = p["hop_ew"], p["hop_ns"], p["chip_link"]
    lead = counters.shape[:-2]
    k = counters.shape[-2]
    flat = np.ascontiguousarray(counters, dtype=np.int64).reshape(-1, k, N_COUNTERS)
    cycles = np.empty((flat.shape[0], k), np.int64)
    latency = np.empty(flat.shape[0], np.int64)
    energy = np.empty((flat.shape[0], k), np.float64)
    idle = (np.int64(cy["neuron_inactive"]), float(p["neuron_inactive"]), np.int64(cm.barrier))
    account_steps(flat, np.ascontiguousarray(neurons, dtype=np.int64), wc, we, idle,
                  float(cm.static_mw * cm.cycle_ns), (cycles, latency, energy))
    return (cycles.reshape(*lead, k), latency.reshape(lead), energy.reshape(*lead, k))
