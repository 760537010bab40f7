"""Event-driven, per-core cost model: time and energy estimated from the events each core
really processed (the events themselves are counted exactly by the kernels).

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

Options (the spec's ``cost_model`` section, all off by default):

* ``core: pipelined``: cycles[t, k] = max(receive stage, neuron stage) with receive stage
  = spikes_in * spike_in + syn_ops * synop and neuron stage = the rest (updates, fired
  spikes, messages, learning) — the slowest stage instead of the sum of stages;
* ``noc_contention``: the longest-path term becomes max(longest path, busiest router port x
  link_message) where a core's port carries the messages it sends and the axon events it
  receives that step;
* ``barrier_table_ns``: barrier(tiles) from a table (step function) instead of linear;
* ``spike_fire_ns`` / ``spike_fire_pj``: a cost per spike fired, charged to the neuron stage;
* ``runtime: {model: max_affine, terms: [...]}``: latency[t] = max over terms of
  (intercept + counts . ns per count), a core term on its slowest core, a chip term on the
  chip's sums (the multi-dimensional roofline of Timcheck, Pierro & Shrestha 2026 for Loihi
  2); static energy follows that latency.

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
    C_SPIKES_OUT,
    C_SYNOPS,
    C_TRACE,
    COUNTER_NAMES,
    N_COUNTERS,
)
from neurochip.core.hw import RUNTIME_COUNTS, HardwareSpec

__all__ = ["CostModel", "account", "account_stages", "weights"]


@dataclass(frozen=True)
class CostModel:
    cycle_ns: float
    cyc: dict[str, int]
    pj: dict[str, float]
    static_mw: float
    barrier: int
    pipelined: bool = False
    link_cycles: int = 0  # per message through a router port; 0: no contention term
    # max-affine runtime: ns per count (len(RUNTIME_COUNTS), terms), intercepts (terms,),
    # chip-scope flags (terms,); None: slowest core + network + barrier
    runtime: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]] | None = None

    @classmethod
    def build(cls, hw: HardwareSpec, cores: list[int]) -> CostModel:
        t, e = hw.timing, hw.energy
        names = ["synop", "spike_in", "neuron_active", "neuron_inactive", "spike_out", "hop_ew",
                 "hop_ns", "chip_link", "learn_update", "trace_update"]
        cyc = {n: t.cycles(n) for n in names}
        pj = {n: float(getattr(e, f"{n}_pj")) for n in names}
        tiles = len({hw.tile_of(c) for c in cores}) if cores else 1
        opt = hw.cost_model
        if opt is None:
            return cls(t.cycle_ns, cyc | {"spike_fire": 0}, pj | {"spike_fire": 0.0},
                       e.static_mw_per_core, t.barrier_cycles(tiles))
        cyc["spike_fire"] = _whole(opt.spike_fire_ns, t.cycle_ns)
        pj["spike_fire"] = float(opt.spike_fire_pj)
        barrier = (t.barrier_cycles(tiles) if opt.barrier_table_ns is None
                   else _whole(opt.barrier_ns(tiles), t.cycle_ns))
        link = _whole(opt.link_message_ns, t.cycle_ns) if opt.noc_contention else 0
        runtime = None
        if opt.runtime is not None:
            terms = opt.runtime.terms
            coef = np.array([[tm.ns_per.get(n, 0.0) for tm in terms] for n in RUNTIME_COUNTS],
                            np.float64)
            runtime = (coef, np.array([tm.intercept_ns for tm in terms], np.float64),
                       np.array([tm.scope == "chip" for tm in terms], bool))
        return cls(t.cycle_ns, cyc, pj, e.static_mw_per_core, barrier,
                   opt.core == "pipelined", link, runtime)


def max_affine_cycles(flat: NDArray[np.int64], neurons: NDArray[np.int64], cm: CostModel
                      ) -> NDArray[np.int64]:
    """Step latency of the max-affine runtime model, in whole cycles (rounded up), for
    counters (M, K, N_COUNTERS): the largest over terms of intercept + counts . ns, a core
    term taken on the slowest core, a chip term on the chip's sums."""
    assert cm.runtime is not None
    coef, icpt, chip = cm.runtime
    M, K = flat.shape[0], flat.shape[1]
    X = np.empty((M, K, len(RUNTIME_COUNTS)), np.float64)
    for j, name in enumerate(RUNTIME_COUNTS):
        if name == "neurons":
            X[:, :, j] = np.asarray(neurons, np.float64)[None, :K]
        elif name == "port_messages":
            X[:, :, j] = np.maximum(flat[:, :, C_MSGS], flat[:, :, C_SPIKES_IN])
        else:
            X[:, :, j] = flat[:, :, COUNTER_NAMES.index(name)]
    per_core = X @ coef  # (M, K, terms)
    ns = np.where(chip[None, :], per_core.sum(axis=1),
                  per_core.max(axis=1, initial=0.0)) + icpt[None, :]
    cyc = np.ceil(ns.max(axis=1) / cm.cycle_ns - 1e-9)
    out: NDArray[np.int64] = np.maximum(cyc, 0).astype(np.int64)
    return out


def _whole(ns: float, cycle_ns: float) -> int:
    # the spec validator has checked that every time is a whole number of cycles
    return round(ns / cycle_ns)


def account(counters: NDArray[np.int64], neurons: NDArray[np.int64], cm: CostModel
            ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """cycles (..., T, K), latency in cycles (..., T), energy in pJ (..., T, K).

    Both are linear in the counters: cycles = counters @ cycle_weights + idle neurons x
    neuron_inactive, and likewise for energy (plus static power over the step latency).
    """
    cycles, latency, energy, _ = account_stages(counters, neurons, cm)
    return cycles, latency, energy


def weights(cm: CostModel) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Cycles per counted event by stage (2, N_COUNTERS: receive, neuron) and energy per
    counted event (N_COUNTERS,). An active neuron costs neuron_active instead of
    neuron_inactive (idle neurons are charged apart, per neuron)."""
    cy, p = cm.cyc, cm.pj
    wc = np.zeros((2, N_COUNTERS), np.int64)
    we = np.zeros(N_COUNTERS, np.float64)
    wc[0, C_SPIKES_IN], we[C_SPIKES_IN] = cy["spike_in"], p["spike_in"]
    wc[0, C_SYNOPS], we[C_SYNOPS] = cy["synop"], p["synop"]
    wc[1, C_ACTIVE] = cy["neuron_active"] - cy["neuron_inactive"]
    we[C_ACTIVE] = p["neuron_active"] - p["neuron_inactive"]
    wc[1, C_SPIKES_OUT], we[C_SPIKES_OUT] = cy["spike_fire"], p["spike_fire"]
    wc[1, C_MSGS] = wc[1, C_ERR_MSGS] = cy["spike_out"]
    we[C_MSGS] = we[C_ERR_MSGS] = p["spike_out"]
    wc[1, C_LEARN], we[C_LEARN] = cy["learn_update"], p["learn_update"]
    wc[1, C_TRACE], we[C_TRACE] = cy["trace_update"], p["trace_update"]
    we[C_HOPS_EW], we[C_HOPS_NS], we[C_LINKS] = p["hop_ew"], p["hop_ns"], p["chip_link"]
    return wc, we


def account_stages(counters: NDArray[np.int64], neurons: NDArray[np.int64], cm: CostModel
                   ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64],
                              NDArray[np.int64]]:
    """:func:`account` plus each core's stage cycles (..., T, K, 2: receive, neuron)."""
    wc, we = weights(cm)
    cy, p = cm.cyc, cm.pj
    lead = counters.shape[:-2]
    k = counters.shape[-2]
    flat = np.ascontiguousarray(counters, dtype=np.int64).reshape(-1, k, N_COUNTERS)
    cycles = np.empty((flat.shape[0], k), np.int64)
    latency = np.empty(flat.shape[0], np.int64)
    energy = np.empty((flat.shape[0], k), np.float64)
    stages = np.empty((flat.shape[0], k, 2), np.int64)
    idle = (np.int64(cy["neuron_inactive"]), float(p["neuron_inactive"]), np.int64(cm.barrier),
            np.int64(cm.pipelined), np.int64(cm.link_cycles), np.int64(C_MSGS))
    account_steps(flat, np.ascontiguousarray(neurons, dtype=np.int64), wc, we, idle,
                  float(cm.static_mw * cm.cycle_ns), (cycles, latency, energy, stages))
    if cm.runtime is not None:
        new = max_affine_cycles(flat, neurons, cm)
        energy += (cm.static_mw * cm.cycle_ns * (new - latency))[:, None]
        latency = new
    return (cycles.reshape(*lead, k), latency.reshape(lead), energy.reshape(*lead, k),
            stages.reshape(*lead, k, 2))
