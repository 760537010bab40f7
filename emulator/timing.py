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
* ``noc_schedule: {link_buffer_messages: B}``: latency[t] = the end of a replay of the
  step's messages (:func:`schedule_latency`) + barrier, see below;
* ``runtime: {model: max_affine, terms: [...]}``: latency[t] = max over terms of
  (intercept + counts . ns per count), a core term on its slowest core, a chip term on the
  chip's sums (the multi-dimensional roofline of Timcheck, Pierro & Shrestha 2026 for Loihi
  2); static energy follows that latency.

The message schedule (``noc_schedule``; the semantics of SANA-FE's ``detailed`` timing
model, Boyle et al., IEEE TCAD 2025, re-implemented from its description and source):

* each core's neuron stage runs its neurons in index order (host inputs first, sent from
  the I/O tile's first core at ``spike_out`` each); the stage's neuron-update cycles of the
  step are spread evenly over the core's neurons, a spiking neuron then adds ``spike_fire``
  and ``spike_out`` per message; a message leaves when its sender has generated it;
* a message's receive time is ``spike_in + synapses it reaches on that core x synop``; the
  receiving core takes messages in the order they were sent, one at a time;
* every in-flight message (sent, not yet taken by its receiver) adds 1 / (hops + 2) to each
  link of its X-Y route (the sender's port, then the port each tile is entered by); a
  message's network time is max(hop time, load on its route x mean receive time of the
  in-flight messages / (hops + 1)), and when the load exceeds (hops + 1) x B the sender is
  held back by (load - (hops + 1) x B) x that mean receive time;
* the step ends when the last message is processed or the last core finishes its neuron
  stage, plus the barrier. Core busy times and energy per event are unchanged (static
  energy follows the new latency).

All per-operation costs come from the hardware spec (cycles are integers of
``timing.cycle_ns``). Every allocated neuron is updated every step (active when it had
synaptic input or spiked). Messages from host inputs are charged to the destination core.
The model is deterministic and is checked against hand-counted cases in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from neurochip.core.image import ChipImage

__all__ = ["CostModel", "MessagePlan", "account", "account_stages", "message_plan",
           "schedule_latency", "scheduled", "weights"]


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
    # message schedule: link buffer in messages; 0: no schedule
    schedule_buffer: int = 0

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
        sched = 0 if opt.noc_schedule is None else opt.noc_schedule.link_buffer_messages
        return cls(t.cycle_ns, cyc, pj, e.static_mw_per_core, barrier,
                   opt.core == "pipelined", link, runtime, sched)


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


# ---------------------------------------------------------------------------------------
# Message schedule (cost_model.noc_schedule)

_EAST, _WEST, _NORTH, _SOUTH, _PORTS = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class MessagePlan:
    """The static message routes of an image, per source (host inputs, then neurons).

    Sender ``K`` (one past the image's cores) stands for the I/O tile's first core when
    it holds no neurons. Per route entry e (sources' entries contiguous, ``ptr``): the
    destination core slot, hops east-west / north-south, chip links, synapses reached on
    that core, and the links of the route (``link_ptr`` / ``link_ids``)."""

    n_in: int
    sender: NDArray[np.int64]  # (n_src,) sender slot of each source
    order: list[NDArray[np.int64]]  # per sender slot (K + 1): its sources in send order
    ptr: NDArray[np.int64]
    dest: NDArray[np.int64]
    hops_ew: NDArray[np.int64]
    hops_ns: NDArray[np.int64]
    links: NDArray[np.int64]
    synapses: NDArray[np.int64]
    link_ptr: NDArray[np.int64]
    link_ids: NDArray[np.int64]


def _route_links(sx: int, sy: int, sc: int, dx: int, dy: int, height: int, cpt: int
                 ) -> list[int]:
    """Link ids of an X-Y route: the sender's core port, then the port of each tile the
    message enters (a tile's ports: east, west, north, south, then one per core)."""

    def lid(x: int, y: int, port: int) -> int:
        return (x * height + y) * (_PORTS + cpt) + port

    if (sx, sy) == (dx, dy):
        return [lid(sx, sy, _PORTS + sc)]
    out = [lid(sx, sy, _PORTS + sc)]
    step_x = 1 if dx > sx else -1
    arrive = -1
    x = sx
    while x != dx:
        if x != sx:
            out.append(lid(x, sy, arrive))
        arrive = _EAST if step_x > 0 else _WEST
        x += step_x
    step_y = 1 if dy > sy else -1
    y = sy
    while y != dy:
        if not (sx == dx and y == sy):
            out.append(lid(dx, y, arrive))
        arrive = _NORTH if step_y > 0 else _SOUTH
        y += step_y
    out.append(lid(dx, dy, arrive))
    return out


def message_plan(image: ChipImage) -> MessagePlan:
    """The routes of ``image``'s axon table with the synapses each message reaches."""
    hw = image.hw
    cores = list(image.used_cores)
    K = len(cores)
    slot = {c: i for i, c in enumerate(cores)}
    n_in, n_src = image.n_inputs, image.n_inputs + image.n_neurons
    io_core = (hw.mesh.io_tile[1] * hw.mesh.tiles_x + hw.mesh.io_tile[0]) \
        * hw.mesh.cores_per_tile
    io_slot = slot.get(io_core, K)
    sender = np.full(n_src, io_slot, np.int64)
    nrn_slot = np.zeros(image.n_neurons, np.int64)
    for p in image.lif_populations:
        for core, start, n in p.slices:
            a = p.offset + start
            nrn_slot[a: a + n] = slot[core]
            sender[n_in + a: n_in + a + n] = slot[core]
    # synapses per (source, destination slot)
    syn = np.zeros((n_src, K), np.int64)
    for i, conn in enumerate(image.connections):
        pre, post = image.population(conn.pre), image.population(conn.post)
        s0 = pre.offset if pre.kind == "input" else n_in + pre.offset
        if conn.storage == "dense":
            per_post = np.bincount(nrn_slot[post.offset: post.offset + post.size], minlength=K)
            syn[s0: s0 + pre.size] += per_post[None, :]
        else:
            pre_idx, post_idx = image.synapse_coords(i)
            np.add.at(syn, (s0 + pre_idx, nrn_slot[post.offset + post_idx]), 1)
    rptr = image.arrays["route/ptr"].astype(np.int64)
    lut = np.full(hw.n_cores, -1, np.int64)
    lut[cores] = np.arange(K)
    ps = np.repeat(np.arange(rptr.size - 1, dtype=np.int64), np.diff(rptr))
    dest = lut[image.arrays["route/core"].astype(np.int64)]
    pos = np.array([hw.core_position(c) for c in cores], np.int64).reshape(K, 3)
    io_pos = (hw.core_position(io_core)[0], hw.mesh.io_tile[0], hw.mesh.io_tile[1])
    spos = np.array([io_pos if sender[s] == K else tuple(pos[sender[s]]) for s in ps],
                    np.int64).reshape(-1, 3)
    local = np.array([(io_core if sender[s] == K else cores[sender[s]])
                      % hw.mesh.cores_per_tile for s in ps], np.int64)
    height, cpt = hw.mesh.tiles_y, hw.mesh.cores_per_tile
    lptr = [0]
    lids: list[int] = []
    for e in range(ps.size):
        lids += _route_links(int(spos[e, 1]), int(spos[e, 2]), int(local[e]),
                             int(pos[dest[e], 1]), int(pos[dest[e], 2]), height, cpt)
        lptr.append(len(lids))
    order = [np.flatnonzero(sender == k) for k in range(K + 1)]  # index order: hosts first
    return MessagePlan(n_in, sender, order, rptr, dest,
                       np.abs(pos[dest, 1] - spos[:, 1]), np.abs(pos[dest, 2] - spos[:, 2]),
                       np.abs(pos[dest, 0] - spos[:, 0]), syn[ps, dest],
                       np.asarray(lptr, np.int64), np.asarray(lids, np.int64))


def schedule_latency(spikes: NDArray[np.bool_], counters: NDArray[np.int64],
                     neurons: NDArray[np.int64], plan: MessagePlan, cm: CostModel
                     ) -> NDArray[np.int64]:
    """Step latency in whole cycles (rounded up) of the message schedule (see the module
    docstring) for spikes (M, n_src: host inputs then neurons, per step) and the step's
    counters (M, K, N_COUNTERS); barrier included."""
    cy = cm.cyc
    buf = float(cm.schedule_buffer)
    M, K = counters.shape[0], counters.shape[1]
    nrn = np.zeros(K + 1, np.int64)
    nrn[:K] = neurons[:K]
    out = np.empty(M, np.int64)
    for m in range(M):
        c = counters[m]
        # per-neuron update cycles of each core's neuron stage this step
        upd = np.zeros(K + 1, np.float64)
        upd[:K] = (nrn[:K] * cy["neuron_inactive"]
                   + c[:, C_ACTIVE] * (cy["neuron_active"] - cy["neuron_inactive"])
                   + c[:, C_LEARN] * cy["learn_update"] + c[:, C_TRACE] * cy["trace_update"])
        queues: list[list[tuple[float, int]]] = []  # per sender: (generation, entry or -1)
        for k in range(K + 1):
            q: list[tuple[float, int]] = []
            per = upd[k] / nrn[k] if nrn[k] else 0.0
            pending = 0.0
            last = -1  # neuron position of the last event
            srcs = plan.order[k]
            fired = srcs[spikes[m, srcs]]
            for s in fired.tolist():
                if s >= plan.n_in:
                    pos = int(np.searchsorted(srcs, s)) - int(np.searchsorted(srcs, plan.n_in))
                    pending += (pos - last) * per + cy["spike_fire"]
                    last = pos
                for e in range(int(plan.ptr[s]), int(plan.ptr[s + 1])):
                    q.append((pending + cy["spike_out"], e))
                    pending = 0.0
            n_local = nrn[k]
            q.append((pending + (n_local - 1 - last) * per if n_local else pending, -1))
            queues.append(q)
        out[m] = _replay(queues, plan, cm, buf, K)
    return out + cm.barrier


def _replay(queues: list[list[tuple[float, int]]], plan: MessagePlan, cm: CostModel,
            buf: float, K: int) -> int:
    import heapq

    cy = cm.cyc
    density: dict[int, float] = {}
    flight: list[tuple[float, int, int]] = []  # (taken by receiver at, entry, id)
    n_flight, sum_recv = 0, 0.0
    free = [0.0] * (K + 1)
    heap = [(q[0][0], k, 0) for k, q in enumerate(queues) if q]
    heapq.heapify(heap)
    end = 0.0
    uid = 0
    while heap:
        t, k, i = heapq.heappop(heap)
        while flight and flight[0][0] <= t:  # messages taken by their receiver leave
            _, e, _ = heapq.heappop(flight)
            a, b = int(plan.link_ptr[e]), int(plan.link_ptr[e + 1])
            adj = 1.0 / (b - a + 1)
            for li in plan.link_ids[a:b].tolist():
                density[li] -= adj
            n_flight -= 1
            sum_recv -= cy["spike_in"] + int(plan.synapses[e]) * cy["synop"]
        e = queues[k][i][1]
        if e >= 0:
            a, b = int(plan.link_ptr[e]), int(plan.link_ptr[e + 1])
            hops1 = b - a  # hops + 1 links
            load = sum(density.get(li, 0.0) for li in plan.link_ids[a:b].tolist())
            mean = sum_recv / n_flight if n_flight else 0.0
            if load > hops1 * buf:
                t += (load - hops1 * buf) * mean
            hop = (int(plan.hops_ew[e]) * cy["hop_ew"] + int(plan.hops_ns[e]) * cy["hop_ns"]
                   + int(plan.links[e]) * cy["chip_link"])
            arrive = t + max(float(hop), load * mean / hops1)
            d = int(plan.dest[e])
            recv = cy["spike_in"] + int(plan.synapses[e]) * cy["synop"]
            taken = max(free[d], arrive)
            free[d] = taken + recv
            end = max(end, free[d])
            heapq.heappush(flight, (taken, e, uid))
            uid += 1
            adj = 1.0 / (hops1 + 1)
            for li in plan.link_ids[a:b].tolist():
                density[li] = density.get(li, 0.0) + adj
            n_flight += 1
            sum_recv += recv
        end = max(end, t)
        if i + 1 < len(queues[k]):
            heapq.heappush(heap, (t + queues[k][i + 1][0], k, i + 1))
    return int(np.ceil(end - 1e-9))


def scheduled(image: ChipImage, inputs: NDArray[Any], neuron_spikes: NDArray[Any],
              counters: NDArray[np.int64], neurons: NDArray[np.int64], cm: CostModel,
              latency: NDArray[np.int64], energy: NDArray[np.float64]
              ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Latency (B, T) and energy (B, T, K) of a run under ``cost_model.noc_schedule``:
    inputs (B, T, n_in), every neuron's spikes (B, T, n_neurons), counters (B, T, K, N)."""
    plan = message_plan(image)
    B, T = counters.shape[0], counters.shape[1]
    spk = np.concatenate([np.asarray(inputs) != 0, np.asarray(neuron_spikes) != 0], axis=-1)
    new = np.stack([schedule_latency(spk[b], counters[b], neurons, plan, cm)
                    for b in range(B)]).reshape(B, T)
    energy = energy + (cm.static_mw * cm.cycle_ns * (new - latency))[..., None]
    return new, energy
