"""Register-level mapping: split populations into core-sized chunks, place them, route.

The state that flows through these passes is a :class:`Mapping`. Each pass returns a new
Mapping (dataclasses.replace), never mutating its input.

Synapse memory accounting (bits, per core), the model the rules check:

* dense connection: every (pre, post-on-core) pair stores ``num_weight_bits`` (+ the chip's
  ``delay_bits`` when delays differ between synapses);
* sparse connection: each synapse stores the same plus a target index of
  ``hw.index_bits`` bits (log2 of the neurons per core).

Axons: one input axon per (connection, pre neuron, destination core) that has at least
one synapse; the source neuron's core spends one output axon on it. Host inputs have no
core and spend no output axons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import PlacementError
from neurochip.core.hw import HardwareSpec
from neurochip.core.network import Connection, Network, Population

__all__ = ["Mapping", "Routing", "partition", "place", "route", "synapse_bits"]


@dataclass(frozen=True)
class Chunk:
    population: str
    start: int
    count: int
    mem_bits: int
    input_axons: int


@dataclass(frozen=True)
class Routing:
    """Axon tables: for each source (inputs first, then LIF neurons), its output axons."""

    ptr: NDArray[np.int64]  # (n_sources + 1,)
    core: NDArray[np.int32]  # destination core of each axon
    nsyn: NDArray[np.int32]  # synapses the axon's list holds on that core
    conn: NDArray[np.int32]  # connection index


@dataclass(frozen=True)
class Mapping:
    network: Network
    hw: HardwareSpec
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    slices: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    core_of: NDArray[np.int32] | None = None  # per LIF neuron (network order)
    routing: Routing | None = None
    usage: dict[str, NDArray[np.int64]] = field(default_factory=dict)  # per chip core
    options: dict[str, Any] = field(default_factory=dict)

    # Index spaces --------------------------------------------------------------
    def lif_offsets(self) -> dict[str, int]:
        out, off = {}, 0
        for p in self.network.populations:
            if p.kind == "lif":
                out[p.name] = off
                off += p.size
        return out

    def input_offsets(self) -> dict[str, int]:
        out, off = {}, 0
        for p in self.network.populations:
            if p.kind == "input":
                out[p.name] = off
                off += p.size
        return out

    def source_offsets(self) -> dict[str, int]:
        """Source index of each population's first neuron: inputs first, then LIF."""
        ins = self.input_offsets()
        n_in = sum(p.size for p in self.network.populations if p.kind == "input")
        out = dict(ins)
        for name, off in self.lif_offsets().items():
            out[name] = n_in + off
        return out


def synapse_bits(conn: Connection, hw: HardwareSpec) -> int:
    """Bits of synapse memory one synapse of ``conn`` occupies."""
    bits = conn.num_weight_bits
    if conn.delays is not None:
        bits += hw.formats.delay_bits
    if conn.storage == "sparse":
        bits += hw.index_bits
    return bits


def _incoming(net: Network, pop: Population) -> list[Connection]:
    return [c for c in net.connections if c.post == pop.name]


def _chunk_usage(conns: list[Connection], hw: HardwareSpec, n: int, s: int
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Synapse bits and input axons of each chunk when a population of n is cut every s."""
    k = -(-n // s)
    mem = np.zeros(k, np.int64)
    ax = np.zeros(k, np.int64)
    for c in conns:
        bits = synapse_bits(c, hw)
        W = c.weights
        per_post = np.diff(W.indptr).astype(np.int64)
        chunk_of_post = np.arange(n) // s
        mem += np.bincount(chunk_of_post, weights=per_post * bits, minlength=k).astype(np.int64)
        if c.storage == "dense":
            ax += c.shape[1]
        else:
            rows = np.repeat(chunk_of_post, per_post)
            pairs = np.unique(rows * np.int64(c.shape[1]) + W.indices)
            ax += np.bincount(pairs // c.shape[1], minlength=k)
    return mem, ax


def _fmt(n: int) -> str:
    return f"{n:,}"


def partition(m: Mapping) -> Mapping:
    """Cut every LIF population into the fewest, evenly sized chunks that fit one core."""
    hw, net = m.hw, m.network
    lim = hw.core
    chunks: dict[str, list[Chunk]] = {}
    for pop in net.populations:
        if pop.kind != "lif":
            continue
        conns = _incoming(net, pop)
        n = pop.size
        s = min(lim.max_neurons, n)
        while True:
            mem, ax = _chunk_usage(conns, hw, n, s)
            over = max(mem.max() / lim.synapse_memory_bits, ax.max() / lim.max_input_axons)
            if over <= 1.0:
                break
            if s == 1:
                _single_neuron_error(pop, conns, hw, mem, ax)
            s = max(1, min(s - 1, int(s / over)))
        k = -(-n // s)
        s2 = -(-n // k)
        if s2 < s:
            mem2, ax2 = _chunk_usage(conns, hw, n, s2)
            if mem2.max() <= lim.synapse_memory_bits and ax2.max() <= lim.max_input_axons:
                s, mem, ax = s2, mem2, ax2
        chunks[pop.name] = [
            Chunk(pop.name, i * s, min(s, n - i * s), int(mem[i]), int(ax[i]))
            for i in range(-(-n // s))
        ]
    return replace(m, chunks=chunks)


def _single_neuron_error(pop: Population, conns: list[Connection], hw: HardwareSpec,
                         mem: NDArray[np.int64], ax: NDArray[np.int64]) -> None:
    lim = hw.core
    if ax.max() > lim.max_input_axons:
        i = int(np.argmax(ax))
        parts = ", ".join(f"{c.name} ({c.shape[1]} {'dense' if c.storage == 'dense' else 'sparse'})"
                          for c in conns)
        raise PlacementError(
            f"neuron {i} needs {_fmt(int(ax[i]))} input axons but a core has "
            f"{_fmt(lim.max_input_axons)} (over by {_fmt(int(ax[i]) - lim.max_input_axons)}); "
            f"incoming: {parts}. Use sparse connections or split the presynaptic populations.",
            rule="input_axons", where=f"population '{pop.name}'", value=int(ax[i]),
            limit=lim.max_input_axons)
    i = int(np.argmax(mem))
    raise PlacementError(
        f"neuron {i} needs {_fmt(int(mem[i]))} bits of synapse memory but a core has "
        f"{_fmt(lim.synapse_memory_bits)} (over by {_fmt(int(mem[i]) - lim.synapse_memory_bits)})",
        rule="synapse_memory", where=f"population '{pop.name}'", value=int(mem[i]),
        limit=lim.synapse_memory_bits)


def place(m: Mapping) -> Mapping:
    """Next-fit: fill cores in order (tile by tile) with the chunks, populations in order.

    Keeping consecutive populations on consecutive cores keeps most traffic inside a tile
    or between neighbouring tiles.
    """
    hw, lim = m.hw, m.hw.core
    slices: dict[str, list[tuple[int, int, int]]] = {}
    core, used_n, used_mem, used_ax = 0, 0, 0, 0
    placed_cores = 0
    failed: tuple[str, int] | None = None
    for name, chunks in m.chunks.items():
        slices[name] = []
        for ch in chunks:
            fits = (used_n + ch.count <= lim.max_neurons
                    and used_mem + ch.mem_bits <= lim.synapse_memory_bits
                    and used_ax + ch.input_axons <= lim.max_input_axons)
            if used_n > 0 and not fits:
                core, used_n, used_mem, used_ax = core + 1, 0, 0, 0
            if core >= hw.n_cores and failed is None:
                failed = (name, ch.start)
            slices[name].append((core, ch.start, ch.count))
            used_n += ch.count
            used_mem += ch.mem_bits
            used_ax += ch.input_axons
            placed_cores = core + 1
    if failed is not None:
        raise PlacementError(
            f"the network needs {placed_cores} cores but '{hw.name}' has {hw.n_cores} "
            f"(over by {placed_cores - hw.n_cores}); population '{failed[0]}' from neuron "
            f"{failed[1]} does not fit. Use a larger chip, fewer neurons, sparser or "
            f"lower-precision synapses.",
            rule="core_count", where=f"population '{failed[0]}'", value=placed_cores,
            limit=hw.n_cores)
    offsets = m.lif_offsets()
    n_lif = sum(p.size for p in m.network.populations if p.kind == "lif")
    core_of = np.zeros(n_lif, np.int32)
    for name, sl in slices.items():
        for c, start, count in sl:
            core_of[offsets[name] + start: offsets[name] + start + count] = c
    return replace(m, slices=slices, core_of=core_of)


def route(m: Mapping) -> Mapping:
    """Build the axon tables and count every core's resources exactly."""
    assert m.core_of is not None, "route needs placed neurons"
    hw, net = m.hw, m.network
    src_off = m.source_offsets()
    lif_off = m.lif_offsets()
    n_sources = sum(p.size for p in net.populations)
    n_in = sum(p.size for p in net.populations if p.kind == "input")
    ncores = hw.n_cores
    srcs, cores, nsyns, conns = [], [], [], []
    mem = np.zeros(ncores, np.int64)
    for ci, c in enumerate(net.connections):
        post_cores = m.core_of[lif_off[c.post]: lif_off[c.post] + c.shape[0]].astype(np.int64)
        n_pre = c.shape[1]
        if c.storage == "dense":
            ucores, counts = np.unique(post_cores, return_counts=True)
            j = np.repeat(np.arange(n_pre, dtype=np.int64), ucores.size)
            k = np.tile(ucores, n_pre)
            cnt = np.tile(counts, n_pre)
        else:
            W = c.weights
            rows = np.repeat(np.arange(c.shape[0], dtype=np.int64), np.diff(W.indptr))
            key = W.indices.astype(np.int64) * ncores + post_cores[rows]
            ukey, cnt = np.unique(key, return_counts=True)
            j, k = np.divmod(ukey, ncores)
        srcs.append(j + src_off[c.pre])
        cores.append(k)
        nsyns.append(cnt)
        conns.append(np.full(j.size, ci, np.int64))
        mem += np.bincount(k, weights=cnt * synapse_bits(c, hw), minlength=ncores).astype(np.int64)
    if srcs:
        s_all = np.concatenate(srcs)
        k_all = np.concatenate(cores)
        n_all = np.concatenate(nsyns)
        c_all = np.concatenate(conns)
        order = np.lexsort((k_all, c_all, s_all))
        s_all, k_all, n_all, c_all = s_all[order], k_all[order], n_all[order], c_all[order]
    else:
        s_all = k_all = n_all = c_all = np.zeros(0, np.int64)
    ptr = np.zeros(n_sources + 1, np.int64)
    np.cumsum(np.bincount(s_all, minlength=n_sources), out=ptr[1:])
    routing = Routing(ptr, k_all.astype(np.int32), n_all.astype(np.int32), c_all.astype(np.int32))
    neurons = np.bincount(m.core_of, minlength=ncores).astype(np.int64)
    in_axons = np.bincount(k_all, minlength=ncores).astype(np.int64)
    src_core = np.full(n_sources, -1, np.int64)
    src_core[n_in:] = m.core_of
    sc = src_core[s_all]
    out_axons = np.bincount(sc[sc >= 0], minlength=ncores).astype(np.int64)
    usage = {"neurons": neurons, "synapse_bits": mem, "input_axons": in_axons,
             "output_axons": out_axons}
    return replace(m, routing=routing, usage=usage)


def used_cores(m: Mapping) -> list[int]:
    u = m.usage["neurons"]
    return [int(k) for k in np.flatnonzero(u > 0)]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cores_needed_estimate(bits: int, hw: HardwareSpec) -> int:
    return math.ceil(bits / hw.core.synapse_memory_bits)
