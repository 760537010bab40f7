"""Per-layer and per-core breakdown of a run's cost (:class:`neurochip.core.results.Breakdown`).

Per core, everything comes from the kernels' per-core counters and ``emulator.timing``.
Per layer, the counts are rebuilt from the run's spikes and the image's synapses, with
no per-layer counters in the kernels (they would slow every run down):

* spikes: each population's recorded spikes (host inputs: the input spikes);
* synaptic operations: per synapse, the spikes of its presynaptic source, charged to the
  postsynaptic population;
* messages and hops: one message per spike and destination core of the source (a route
  entry), charged to the sending population; host messages' hops to the input population;
* axon events and neuron updates: exact where a core holds one population; where several
  share a core, the core's count is shared out in proportion to the synaptic operations
  each received (neuron updates: to the neurons each holds, for the idle ones).

Energy per layer is the cost model's energy of those counts (static power shared by
neurons), so layers and cores each sum to the run's totals; a mismatch with the kernels'
counters is raised, never hidden.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from emulator.tables import (
    C_ACTIVE,
    C_HOPS_EW,
    C_HOPS_NS,
    C_LINKS,
    C_MSGS,
    C_SPIKES_IN,
    C_SPIKES_OUT,
    C_SYNOPS,
    COUNTER_NAMES,
    N_COUNTERS,
)
from emulator.timing import CostModel, weights
from neurochip.core.errors import EmulatorInputError
from neurochip.core.image import ChipImage
from neurochip.core.results import Breakdown, RunResult

__all__ = ["breakdown"]

EXACT = ("syn_ops", "spikes", "messages", "hops")


def _raw(result: RunResult) -> NDArray[np.int64]:
    """Counters as (B, T, K, N_COUNTERS)."""
    arr = np.stack([result.counters[n] for n in COUNTER_NAMES[:N_COUNTERS]], axis=-1)
    return arr if result.batched else arr[None]


def breakdown(image: ChipImage, result: RunResult, inputs: NDArray[np.bool_],
              cost: CostModel) -> Breakdown:
    """The breakdown of ``result`` (a run of ``image`` on ``inputs`` (B, T, n_in))."""
    lif = image.lif_populations
    missing = [p.name for p in lif if p.name not in result.spikes]
    if missing:
        raise EmulatorInputError(f"a breakdown needs the spikes of every LIF population; "
                                 f"not recorded: {missing}", where="Emulator.run",
                                 field="spikes")
    raw = _raw(result)
    B = raw.shape[0]
    cores = list(result.cores)
    K = len(cores)
    slot = {c: i for i, c in enumerate(cores)}
    hw = image.hw
    pos = np.array([hw.core_position(c) for c in cores], np.int64).reshape(K, 3)

    # spikes per source: host inputs, then LIF neurons (the emulator's source order)
    n_in = image.n_inputs
    spk_in = inputs.reshape(-1, inputs.shape[-1]).sum(axis=0).astype(np.int64)
    spk_lif = np.zeros(image.n_neurons, np.int64)
    for p in lif:
        s = result.spikes[p.name]
        spk_lif[p.offset: p.offset + p.size] = s.reshape(-1, p.size).sum(axis=0)
    spk = np.concatenate([spk_in, spk_lif])
    names = [p.name for p in image.populations]
    src_layer = np.zeros(n_in + image.n_neurons, np.int64)
    src_slot = np.full(n_in + image.n_neurons, -1, np.int64)
    nrn_slot = np.zeros(image.n_neurons, np.int64)
    for i, p in enumerate(image.populations):
        if p.kind == "input":
            src_layer[p.offset: p.offset + p.size] = i
        else:
            src_layer[n_in + p.offset: n_in + p.offset + p.size] = i
            for core, start, n in p.slices:
                a = p.offset + start
                nrn_slot[a: a + n] = slot[core]
                src_slot[n_in + a: n_in + a + n] = slot[core]
    L = len(names)
    syn = np.zeros((L, K), np.int64)  # synaptic operations received, per layer and core
    for i, conn in enumerate(image.connections):
        pre, post = image.population(conn.pre), image.population(conn.post)
        s0 = pre.offset if pre.kind == "input" else n_in + pre.offset
        row = syn[names.index(post.name)]
        if conn.storage == "dense":  # every (pre, post) pair is a synapse
            per_post = np.bincount(nrn_slot[post.offset: post.offset + post.size],
                                   minlength=K)
            row += per_post * int(spk[s0: s0 + pre.size].sum())
            continue
        pre_idx, post_idx = image.synapse_coords(i)
        row += np.bincount(nrn_slot[post.offset + post_idx], weights=spk[s0 + pre_idx],
                           minlength=K).astype(np.int64)
    # one message per spike and output axon (the image's axon table: route entries)
    rptr = image.arrays["route/ptr"].astype(np.int64)
    lut = np.full(hw.n_cores, -1, np.int64)
    lut[cores] = np.arange(K)
    ps = np.repeat(np.arange(rptr.size - 1, dtype=np.int64), np.diff(rptr))
    pd = lut[image.arrays["route/core"].astype(np.int64)]
    m = spk[ps]  # messages (axon events) of each (source, destination core) pair
    host = src_slot[ps] < 0
    sx = np.where(host, hw.mesh.io_tile[0], pos[np.maximum(src_slot[ps], 0), 1])
    sy = np.where(host, hw.mesh.io_tile[1], pos[np.maximum(src_slot[ps], 0), 2])
    sc = np.where(host, 0, pos[np.maximum(src_slot[ps], 0), 0])
    dx = np.abs(pos[pd, 1] - sx)
    dy = np.abs(pos[pd, 2] - sy)
    dl = np.abs(pos[pd, 0] - sc)

    # per-layer counters (L, N_COUNTERS), summed over samples; checked against the kernels
    per_core = raw.sum(axis=(0, 1))  # (K, N)
    lay = np.zeros((L, N_COUNTERS), np.float64)
    lay[:, C_SYNOPS] = syn.sum(axis=1)
    lay_src = src_layer[ps]
    lay[:, C_MSGS] = np.bincount(lay_src[~host], weights=m[~host], minlength=L)
    for col, d in ((C_HOPS_EW, dx), (C_HOPS_NS, dy), (C_LINKS, dl)):
        lay[:, col] = np.bincount(lay_src, weights=m * d, minlength=L)
    lay[:, C_SPIKES_OUT] = np.bincount(src_layer[n_in:], weights=spk_lif, minlength=L)
    expect = {C_SYNOPS: syn.sum(), C_MSGS: m[~host].sum(), C_HOPS_EW: (m * dx).sum(),
              C_HOPS_NS: (m * dy).sum(), C_LINKS: (m * dl).sum(), C_SPIKES_OUT: spk_lif.sum()}
    for col, v in expect.items():
        if int(v) != int(per_core[:, col].sum()):
            raise AssertionError(f"breakdown: {COUNTER_NAMES[col]} rebuilt from spikes is "
                                 f"{int(v)}, the kernels counted {int(per_core[:, col].sum())}")
    # shared per core: axon events and active updates by synaptic operations received
    neurons = np.zeros((L, K), np.float64)
    for i, p in enumerate(image.populations):
        for core, _, n in p.slices:
            neurons[i, slot[core]] += n
    share = np.where(syn.sum(axis=0) > 0, syn / np.maximum(syn.sum(axis=0), 1), 0.0)
    nshare = neurons / np.maximum(neurons.sum(axis=0), 1)
    share = np.where(syn.sum(axis=0)[None, :] > 0, share, nshare)
    lay[:, C_SPIKES_IN] = share @ per_core[:, C_SPIKES_IN]
    lay[:, C_ACTIVE] = share @ per_core[:, C_ACTIVE]
    for col in range(N_COUNTERS):
        if col not in expect and col not in (C_SPIKES_IN, C_ACTIVE):
            lay[:, col] = nshare @ per_core[:, col]  # learning columns, route max (unused)

    wc, we = weights(cost)
    steps = raw.shape[1]
    idle_c, idle_e = cost.cyc["neuron_inactive"], cost.pj["neuron_inactive"]
    n_updates = neurons.sum(axis=1) * steps * B
    lat_total = float(result.latency_cycles.sum())
    static = cost.static_mw * cost.cycle_ns * lat_total  # pJ per core, over the run
    # static power: each core's share to its layers by neurons
    lay_energy = lay @ we + n_updates * idle_e + static * nshare.sum(axis=1)
    cols = [c for c in range(N_COUNTERS) if c != 8]  # every counter but the route maximum
    lay_cycles = lay[:, cols] @ (wc[0, cols] + wc[1, cols]) + n_updates * idle_c
    core_cycles = result.cycles.reshape(-1, K).sum(axis=0).astype(np.float64)
    busy = max(float(core_cycles.sum()), 1.0)
    parts = {"energy_synapses_pj": [C_SPIKES_IN, C_SYNOPS],
             "energy_network_pj": [C_MSGS, C_HOPS_EW, C_HOPS_NS, C_LINKS]}
    e_parts = {k: lay[:, cs] @ we[cs] for k, cs in parts.items()}
    e_parts["energy_static_pj"] = static * nshare.sum(axis=1)
    e_parts["energy_neurons_pj"] = lay_energy - sum(e_parts.values())
    layers = {}
    for i, name in enumerate(names):
        layers[name] = {
            "syn_ops": lay[i, C_SYNOPS] / B, "neuron_updates": n_updates[i] / B,
            "spikes": (spk_in[image.population(name).offset:
                              image.population(name).offset + image.population(name).size].sum()
                       if image.populations[i].kind == "input" else lay[i, C_SPIKES_OUT]) / B,
            "messages": lay[i, C_MSGS] / B,
            "hops": (lay[i, C_HOPS_EW] + lay[i, C_HOPS_NS]) / B,
            "energy_pj": float(lay_energy[i]) / B, "cycles": float(lay_cycles[i]) / B,
            "time_share": float(lay_cycles[i]) / max(float(lay_cycles.sum()), 1.0)}
        layers[name] |= {k: float(v[i]) / B for k, v in e_parts.items()}
    cyc = result.cycles.reshape(-1, K)
    slowest = np.bincount(np.argmax(cyc, axis=1), minlength=K) if cyc.size else np.zeros(K)
    ports = np.maximum(raw[..., C_MSGS], raw[..., C_SPIKES_IN]).reshape(-1, K)
    energy = result.energy.reshape(-1, K).sum(axis=0)
    core_rows: dict[int, dict[str, float]] = {}
    for k, c in enumerate(cores):
        core_rows[c] = {
            "syn_ops": per_core[k, C_SYNOPS] / B,
            "neuron_updates": float(image.cores[k].neurons * steps * B) / B,
            "spikes": per_core[k, C_SPIKES_OUT] / B, "messages": per_core[k, C_MSGS] / B,
            "hops": (per_core[k, C_HOPS_EW] + per_core[k, C_HOPS_NS]) / B,
            "energy_pj": float(energy[k]) / B, "cycles": float(core_cycles[k]) / B,
            "time_share": float(core_cycles[k]) / busy,
            "slowest_steps": float(slowest[k]) / B,
            "port_max": float(ports[:, k].max()) if ports.size else 0.0}
    if ports.size:
        flat = int(np.argmax(ports))
        row, k = divmod(flat, K)
        busiest = (cores[k], row % steps, int(ports[row, k]))
    else:
        busiest = (cores[0] if cores else 0, 0, 0)
    slow = cores[int(np.argmax(slowest))] if K else 0
    return Breakdown(layers, core_rows, busiest, slow, EXACT,
                     cyc.reshape(B, steps, K).mean(axis=0).astype(np.float64),
                     ports.reshape(B, steps, K).mean(axis=0).astype(np.float64))
