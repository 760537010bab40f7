"""Register-level mapping: split populations into core-sized chunks, place them, route.

The state that flows through these passes is a :class:`Mapping`. Each pass returns a new
Mapping (dataclasses.replace), never mutating its input.

Synapse memory accounting (bits, per core), the model the rules check:

* dense connection: every (pre, post-on-core) pair stores ``num_weight_bits`` (+ the chip's
  ``delay_bits`` when delays differ between synapses);
* sparse connection: each synapse stores the same plus a target index of
  ``hw.index_bits`` bits (log2 of the neurons per core);
* conv connection (shared weights): every core that holds outputs of a channel stores
  that channel's kernel slice once, ``C_in/groups * kh * kw * num_weight_bits`` bits; the
  synapses are generated from the geometry and cost no memory of their own;
* a chip whose core memory is one budget shared between synapses and neuron state
  (``core.neuron_state_bits`` > 0, Loihi 2) also spends that many bits per neuron on a
  core; the core's ``synapse_bits`` usage then counts both.

Axons: one input axon per (connection, pre neuron, destination core) that has at least
one synapse; the source neuron's core spends one output axon on it. Host inputs have no
core and spend no output axons.

Partition sizes every chunk by all four per-core resources at once: neurons, synapse
memory, input axons and output axons. Output axons are estimated per (connection, pre
neuron, destination *chunk*), an upper bound of the per-core count (chunks sharing a core
share axons). A population whose neurons are connected locally (a convolution expanded to
sparse synapses) may be cut in the order of its inputs instead of its index order: chunks
then are spatial tiles (positions x all channels, rows of positions when a tile is
smaller than a row), whose input halo and fan-out are small; that order is used only when
it needs fewer chunks, or as many with fewer axons. A neuron's fan-in cannot be split over
cores (the chip sums a neuron's synaptic input on its own core), so a neuron with more
inputs than a core has axons is reported, not split.

Placement (``options["placement"]``):

* ``"greedy"``: next-fit, chunks in declaration order onto cores 0, 1, 2, ...;
* ``"traffic"`` (default): the chunk graph weighted by the spikes it carries per step
  (one message per axon per spike of its source, at the sources' expected rates) is cut
  with METIS into core-sized groups (METIS sees each chunk's ``METIS_LINKS`` heaviest
  links), packed, and the cores are placed on the mesh to minimise weighted NoC hops,
  refined by pairwise swaps of core contents (at most ``REFINE_BUDGET`` steps, which
  only networks of thousands of cores reach). The result is kept only when
  it has fewer weighted hops than next-fit and no more hops; otherwise (ties included)
  the next-fit placement is kept.

Partition and place do not raise: they record every :class:`Problem` they find in the
mapping, and ``check_rules`` raises them all at once together with the rule violations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.passes.mapping_kernels import (
    BinGraph,
    MeshAxes,
    axon_pairs,
    chunk_axons,
    core_axons,
    refine_bins,
    strongest_edges,
)
from neurochip.core.errors import ConfigError
from neurochip.core.hw import HardwareSpec
from neurochip.core.network import Connection, Network, Population

__all__ = ["PLACEMENTS", "Mapping", "Problem", "Routing", "mapping_traffic", "partition", "place",
           "route", "source_rates",
           "synapse_bits", "traffic_report"]

#: Placement methods of :func:`place`.
PLACEMENTS = ("traffic", "greedy")

SUGGEST = {
    "input_axons": "a neuron's fan-in cannot be split over cores: prune its inputs (sparse "
                   "connection), make the presynaptic layer smaller, or use a chip with more "
                   "input axons per core",
    "synapse_memory": "use fewer weight bits (weight_bits=...), sparser connections or a "
                      "smaller layer",
    "output_axons": "each neuron spends one output axon per connection and target core: "
                    "give it fewer targets, or make the target layers smaller",
    "core_count": "use a larger chip (loihi_like_2chip, or a mesh with more tiles or chips "
                  "defined in YAML), fewer weight bits, or smaller layers",
}


@dataclass(frozen=True, eq=False)
class Chunk:
    """Neurons of one population that go to one core: ``start:start+count`` or, for a
    spatial tile, the sorted indices ``neurons``."""

    population: str
    start: int
    count: int
    mem_bits: int
    input_axons: int
    output_axons: int = 0
    neurons: NDArray[np.int64] | None = None

    def indices(self) -> NDArray[np.int64]:
        if self.neurons is not None:
            return self.neurons
        return np.arange(self.start, self.start + self.count, dtype=np.int64)

    def runs(self) -> list[tuple[int, int]]:
        """(start, count) of each run of consecutive neurons."""
        if self.neurons is None:
            return [(self.start, self.count)]
        idx = self.neurons
        brk = np.flatnonzero(np.diff(idx) != 1) + 1
        a = np.concatenate([[0], brk])
        b = np.concatenate([brk, [idx.size]])
        return [(int(idx[i]), int(j - i)) for i, j in zip(a, b)]


@dataclass(frozen=True)
class Problem:
    """One reason the network does not fit, found by partition or place."""

    rule: str
    where: str
    value: int
    limit: int
    text: str
    suggestion: str
    populations: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"rule '{self.rule}', {self.where}: {self.text}. Suggestion: {self.suggestion}"


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
    problems: tuple[Problem, ...] = ()
    #: per connection: the (pre neuron, destination chunk, synapses) of each axon of the
    #: partition, chunks numbered globally in population order
    axon_pairs: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = \
        field(default_factory=list)
    chunk_core: NDArray[np.int64] | None = None  # per global chunk, set by place
    placement: dict[str, Any] = field(default_factory=dict)  # what place chose and why

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

    def all_chunks(self) -> list[Chunk]:
        return [ch for chs in self.chunks.values() for ch in chs]


def synapse_bits(conn: Connection, hw: HardwareSpec) -> int:
    """Bits of synapse memory one synapse of ``conn`` occupies (a conv connection: one
    kernel value; see :func:`conv_core_bits`)."""
    if conn.conv is not None:
        return conn.num_weight_bits
    bits = conn.num_weight_bits
    if conn.delays is not None:
        bits += hw.formats.delay_bits
    if conn.storage == "sparse":
        bits += hw.index_bits
    return bits


def conv_channel_of(conn: Connection, order: NDArray[np.int64] | None = None
                    ) -> NDArray[np.int64]:
    """Output channel of every post neuron of a conv connection (in ``order``)."""
    assert conn.conv is not None
    ch = conn.conv.channel_of_post()
    return ch if order is None else ch[order]


def conv_core_bits(conn: Connection, group: NDArray[np.integer[Any]], n_groups: int
                   ) -> NDArray[np.int64]:
    """Synapse memory of a conv connection per group of its post neurons (``group``: the
    core or chunk of each post neuron, natural order): the chip stores, on every core that
    holds outputs of a channel, that channel's kernel slice once (C_in/groups * kh * kw
    values of num_weight_bits)."""
    assert conn.conv is not None
    ch = conv_channel_of(conn)
    key = np.unique(group.astype(np.int64) * conn.conv.out_shape[0] + ch)
    per = np.bincount(key // conn.conv.out_shape[0], minlength=n_groups).astype(np.int64)
    return per * conn.conv.taps_per_channel * conn.num_weight_bits


def _conv_chunk_bits(cut: _Cut, s: int, k: int) -> NDArray[np.int64]:
    """Kernel memory of each chunk of ``cut`` when cut every s (conv inputs only)."""
    out = np.zeros(k, np.int64)
    chunk_nat = np.arange(cut.pop.size, dtype=np.int64) // s
    if cut.order is not None:
        chunk_nat[cut.order] = chunk_nat.copy()
    for i in cut.ins:
        if i.conn.conv is not None:
            out += conv_core_bits(i.conn, chunk_nat, k)
    return out


def _fmt(n: int) -> str:
    return f"{n:,}"


# ======================================================================================
# Partition
# ======================================================================================


@dataclass
class _In:
    """One incoming connection of a population: its (post, pre) CSR is read in the cut's
    rank order, one pass per trial cut (:mod:`compiler.passes.mapping_kernels`)."""

    conn: Connection
    bits: int
    n_pre: int
    dense: bool
    #: per cut size s tried: (input axons of each chunk, chunks each pre neuron reaches)
    counts: dict[int, tuple[NDArray[np.int64], NDArray[np.int64]]] = field(
        default_factory=dict)


@dataclass
class _Cut:
    pop: Population
    order: NDArray[np.int64] | None  # natural index of the neuron at each rank; None: identity
    ins: list[_In]
    mem1: NDArray[np.float64]  # synapse bits of each neuron, in rank order
    ax1: NDArray[np.int64]  # input axons of each neuron alone, in rank order
    s: int = 1
    k: int = 1
    mem: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    ax: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    out: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def _incoming(net: Network, pop: Population) -> list[Connection]:
    return [c for c in net.connections if c.post == pop.name]


def _make_cut(pop: Population, conns: list[Connection], hw: HardwareSpec,
              order: NDArray[np.int64] | None) -> _Cut:
    n = pop.size
    mem1 = np.full(n, float(hw.core.neuron_state_bits), np.float64)  # shared budget
    ax1 = np.zeros(n, np.int64)
    ins: list[_In] = []
    for c in conns:
        bits = synapse_bits(c, hw)
        per_post = np.diff(c.weights.indptr).astype(np.int64)
        if order is not None:
            per_post = per_post[order]
        if c.conv is None:  # a conv's kernel memory is per chunk: _conv_chunk_bits
            mem1 += per_post * float(bits)
        if c.storage == "dense":
            ax1 += c.shape[1]
            ins.append(_In(c, bits, c.shape[1], True))
            continue
        ax1 += per_post  # the CSR holds each (post, pre) pair once
        ins.append(_In(c, bits, c.shape[1], False))
    return _Cut(pop, order, ins, mem1, ax1)


def _counts(cut: _Cut, i: _In, s: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(input axons of each chunk, chunks each pre neuron reaches) of a sparse incoming
    connection when the cut is every s ranks: one pass over its synapses, kept per s."""
    got = i.counts.get(s)
    if got is None:
        W = i.conn.weights
        got = i.counts[s] = chunk_axons(W.indptr, W.indices, i.n_pre, cut.order, s)
    return got


def _usage(cut: _Cut, s: int, out1: NDArray[np.float64] | None
           ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Synapse bits, input axons and output axons of each chunk when cut every s."""
    n = cut.pop.size
    k = -(-n // s)
    chunk = np.arange(n, dtype=np.int64) // s
    mem = np.bincount(chunk, weights=cut.mem1, minlength=k).astype(np.int64)
    if any(i.conn.conv is not None for i in cut.ins):
        mem += _conv_chunk_bits(cut, s, k)
    ax = np.zeros(k, np.int64)
    for i in cut.ins:
        if i.dense:
            ax += np.bincount(chunk, minlength=k).clip(max=1) * i.n_pre
            continue
        ax += _counts(cut, i, s)[0]
    out = (np.bincount(chunk, weights=out1, minlength=k).astype(np.int64) if out1 is not None
           else np.zeros(k, np.int64))
    return mem, ax, out


def _probe_axons(cut: _Cut, s: int) -> int:
    """Input axons of the one chunk (cut every s) that holds the most synapses: a lower
    bound of the largest chunk's, from a pass over that chunk's synapses only."""
    n = cut.pop.size
    k = -(-n // s)
    c = int(np.argmax(np.bincount(np.arange(n, dtype=np.int64) // s, weights=cut.ax1,
                                  minlength=k)))
    a, b = c * s, min(n, (c + 1) * s)
    rows = cut.order[a:b] if cut.order is not None else np.arange(a, b, dtype=np.int64)
    total = 0
    for i in cut.ins:
        if i.dense:
            total += i.n_pre
            continue
        W = i.conn.weights
        total += int(chunk_axons(W.indptr, W.indices, i.n_pre, rows, b - a)[0][0])
    return total


def _size(cut: _Cut, hw: HardwareSpec, out1: NDArray[np.float64] | None,
          skip: set[str], max_k: int | None = None) -> bool:
    """The fewest, evenly sized chunks whose resources fit a core (resources in ``skip``
    do not fit even for one neuron and are left to the problem report).

    With ``max_k``, give up (return False, the cut left as it was) as soon as the cut is
    sure to need more than max_k chunks: the trial size only falls, and a lower bound of
    the next one (exact memory, one chunk's input axons) is checked before every full
    count, so a cut that cannot win costs about one pass over a chunk's synapses."""
    lim = hw.core
    n = cut.pop.size
    caps = {"synapse_memory": lim.synapse_memory_bits, "input_axons": lim.max_input_axons,
            "output_axons": lim.max_output_axons}

    def over(mem: NDArray[np.int64], ax: NDArray[np.int64], out: NDArray[np.int64]) -> float:
        vals = {"synapse_memory": mem, "input_axons": ax, "output_axons": out}
        return max([float(v.max()) / caps[r] for r, v in vals.items() if r not in skip]
                   + [0.0])

    def step(s: int, o: float) -> int:
        return max(1, min(s - 1, int(s / o)))

    s = min(lim.max_neurons, n)
    while True:
        if max_k is not None and s > 1:
            if -(-n // s) > max_k:
                return False
            k0 = -(-n // s)
            chunk = np.arange(n, dtype=np.int64) // s
            mem = np.bincount(chunk, weights=cut.mem1, minlength=k0).astype(np.int64)
            if any(i.conn.conv is not None for i in cut.ins):
                mem += _conv_chunk_bits(cut, s, k0)
            out = (np.bincount(chunk, weights=out1, minlength=k0).astype(np.int64)
                   if out1 is not None else np.zeros(k0, np.int64))
            lb = over(mem, np.array([_probe_axons(cut, s)], np.int64), out)
            if lb > 1.0 and -(-n // step(s, lb)) > max_k:
                return False
        mem, ax, out = _usage(cut, s, out1)
        o = over(mem, ax, out)
        if o <= 1.0 or s == 1:
            break
        s = step(s, o)
    k = -(-n // s)
    if max_k is not None and k > max_k:
        return False
    s2 = -(-n // k)
    if s2 < s:
        mem2, ax2, out2 = _usage(cut, s2, out1)
        if over(mem2, ax2, out2) <= 1.0:
            s, mem, ax, out = s2, mem2, ax2, out2
    cut.s, cut.k, cut.mem, cut.ax, cut.out = s, -(-n // s), mem, ax, out
    return True


def _locality_order(pop: Population, conns: list[Connection]) -> NDArray[np.int64] | None:
    """Position-major order of a locally connected population, or None.

    Neurons sorted (stably) by the smallest input index on their largest sparse incoming
    connection. For a convolution over a channels-first input that is the first position
    of the receptive field, the same for every output channel: chunks cut in this order
    are spatial tiles (runs of positions with all their channels), whose input halo and
    fan-out are small. The geometry is read from the connectivity, so register-level
    networks get it too.
    """
    sparse = [c for c in conns if c.storage in ("sparse", "conv") and c.n_synapses > 0]
    if not sparse:
        return None
    n = pop.size
    c = max(sparse, key=lambda c: c.n_synapses)
    W = c.weights
    per = np.diff(W.indptr)
    first = np.zeros(n, np.float64)
    nz = per > 0
    # neurons without inputs keep their relative place in the index order
    first[~nz] = np.flatnonzero(~nz) * (c.shape[1] / max(n, 1))
    if np.any(nz):
        first[nz] = np.minimum.reduceat(W.indices, W.indptr[:-1][nz])
    order = np.argsort(first, kind="stable").astype(np.int64)
    if np.array_equal(order, np.arange(n)):
        return None
    return order


def _single_problems(cut: _Cut, hw: HardwareSpec, out1: NDArray[np.float64] | None
                     ) -> tuple[list[Problem], set[str]]:
    """Resources that one neuron alone already exceeds."""
    lim = hw.core
    pop = cut.pop
    probs: list[Problem] = []
    skip: set[str] = set()
    nat = cut.order if cut.order is not None else np.arange(pop.size, dtype=np.int64)
    where = f"population '{pop.name}'"
    conns = [i.conn for i in cut.ins]
    if cut.ax1.size and cut.ax1.max() > lim.max_input_axons:
        r = int(np.argmax(cut.ax1))
        v = int(cut.ax1[r])
        parts = ", ".join(f"{c.name} ({c.shape[1]} {c.storage})" for c in conns)
        n_over = int((cut.ax1 > lim.max_input_axons).sum())
        probs.append(Problem(
            "input_axons", where, v, lim.max_input_axons,
            f"neuron {int(nat[r])} needs {_fmt(v)} input axons but a core has "
            f"{_fmt(lim.max_input_axons)} (over by {_fmt(v - lim.max_input_axons)}; "
            f"{_fmt(n_over)} of {_fmt(pop.size)} neurons are over); incoming: {parts}",
            SUGGEST["input_axons"], (pop.name,)))
        skip.add("input_axons")
    if cut.mem1.size and cut.mem1.max() > lim.synapse_memory_bits:
        r = int(np.argmax(cut.mem1))
        v = int(cut.mem1[r])
        probs.append(Problem(
            "synapse_memory", where, v, lim.synapse_memory_bits,
            f"neuron {int(nat[r])} needs {_fmt(v)} bits of synapse memory but a core has "
            f"{_fmt(lim.synapse_memory_bits)} (over by {_fmt(v - lim.synapse_memory_bits)})",
            SUGGEST["synapse_memory"], (pop.name,)))
        skip.add("synapse_memory")
    if out1 is not None and out1.size and out1.max() > lim.max_output_axons:
        r = int(np.argmax(out1))
        v = int(out1[r])
        probs.append(Problem(
            "output_axons", where, v, lim.max_output_axons,
            f"neuron {int(nat[r])} needs {_fmt(v)} output axons but a core has "
            f"{_fmt(lim.max_output_axons)} (over by {_fmt(v - lim.max_output_axons)})",
            SUGGEST["output_axons"], (pop.name,)))
        skip.add("output_axons")
    return probs, skip


def _fanout(net: Network, cuts: dict[str, _Cut]) -> dict[str, NDArray[np.float64]]:
    """Estimated output axons of every LIF neuron (natural index): per outgoing
    connection, the chunks of the target population it reaches."""
    out = {name: np.zeros(c.pop.size, np.float64) for name, c in cuts.items()}
    for cut in cuts.values():
        for i in cut.ins:
            c = i.conn
            if c.pre not in out:
                continue  # host input
            if i.dense:
                out[c.pre] += cut.k
                continue
            out[c.pre] += _counts(cut, i, cut.s)[1]
    return out


def _in_order(v: NDArray[np.float64], order: NDArray[np.int64] | None) -> NDArray[np.float64]:
    return v if order is None else v[order]


def partition(m: Mapping) -> Mapping:
    """Cut every LIF population into the fewest, evenly sized chunks that fit one core by
    neurons, synapse memory, input axons and (estimated) output axons."""
    hw, net = m.hw, m.network
    lim = hw.core
    cuts: dict[str, _Cut] = {}
    for pop in net.populations:
        if pop.kind != "lif":
            continue
        conns = _incoming(net, pop)
        cut = _make_cut(pop, conns, hw, None)
        _, skip = _single_problems(cut, hw, None)
        _size(cut, hw, None, skip)
        if cut.k > 1:
            order = _locality_order(pop, conns)
            if order is not None:
                alt = _make_cut(pop, conns, hw, order)
                if _size(alt, hw, None, skip, max_k=cut.k) and (
                        alt.k < cut.k or (alt.k == cut.k and alt.ax.sum() < cut.ax.sum())):
                    cut = alt
        cuts[pop.name] = cut
    # Output axons: cutting a target population changes its sources' fan-out, so cut
    # again until no chunk is over (a few rounds; recurrent layers converge or are reported).
    # A layer that projects onto itself may not get better by cutting finer (every cut
    # adds an axon to each of its neurons): then its previous cut is kept and the rules
    # report the cores over the limit.
    before: dict[str, tuple[float, tuple[Any, ...]]] = {}
    frozen: set[str] = set()
    for _ in range(8):
        fan = _fanout(net, cuts)
        changed = False
        for name, cut in cuts.items():
            if name in frozen:
                continue
            out1 = _in_order(fan[name], cut.order)
            chunk_out = np.bincount(np.arange(cut.pop.size) // cut.s, weights=out1,
                                    minlength=cut.k)
            worst = float(chunk_out.max()) if chunk_out.size else 0.0
            if name in before and worst >= before[name][0]:
                cut.s, cut.k, cut.mem, cut.ax, cut.out = before[name][1]
                frozen.add(name)
                changed = True
                continue
            if worst > lim.max_output_axons and cut.s > 1:
                before[name] = (worst, (cut.s, cut.k, cut.mem, cut.ax, cut.out))
                _, skip = _single_problems(cut, hw, out1)
                k0 = cut.k
                _size(cut, hw, out1, skip)
                changed |= cut.k != k0
        if not changed:
            break
    fan = _fanout(net, cuts)
    problems: list[Problem] = []
    chunks: dict[str, list[Chunk]] = {}
    for name, cut in cuts.items():
        out1 = _in_order(fan[name], cut.order)
        probs, _ = _single_problems(cut, hw, out1)
        problems.extend(probs)
        mem, ax, out = _usage(cut, cut.s, out1)
        chunks[name] = []
        for j in range(cut.k):
            a, b = j * cut.s, min(cut.pop.size, (j + 1) * cut.s)
            idx: NDArray[np.int64] | None = None
            start = a
            if cut.order is not None:
                idx = np.sort(cut.order[a:b])
                start = int(idx[0])
                if idx[-1] - idx[0] == b - a - 1:
                    idx = None
            chunks[name].append(Chunk(name, start, b - a, int(mem[j]), int(ax[j]),
                                      int(out[j]), idx))
    pairs = _axon_pairs(net, cuts)
    return replace(m, chunks=chunks, problems=m.problems + tuple(problems), axon_pairs=pairs)


def _axon_pairs(net: Network, cuts: dict[str, _Cut]
                ) -> list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]]:
    base, b = {}, 0
    for name, cut in cuts.items():
        base[name] = b
        b += cut.k
    found: dict[int, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = {}
    index = {id(c): ci for ci, c in enumerate(net.connections)}
    for name, cut in cuts.items():
        sizes = np.bincount(np.arange(cut.pop.size) // cut.s, minlength=cut.k).astype(np.int64)
        for i in cut.ins:
            ci = index[id(i.conn)]
            if i.dense:
                j = np.repeat(np.arange(i.n_pre, dtype=np.int64), cut.k)
                k = np.tile(np.arange(cut.k, dtype=np.int64), i.n_pre) + base[name]
                found[ci] = (j, k, np.tile(sizes, i.n_pre))
                continue
            W = i.conn.weights
            j, ch, cnt = axon_pairs(W.indptr, W.indices, i.n_pre, cut.order, cut.s,
                                    _counts(cut, i, cut.s)[1])
            found[ci] = (j, ch + base[name], cnt)
    empty = np.zeros(0, np.int64)
    return [found.get(ci, (empty, empty, empty)) for ci in range(len(net.connections))]


# ======================================================================================
# Place
# ======================================================================================


def source_rates(m: Mapping) -> NDArray[np.float64]:
    """Expected spikes per step of every source (inputs first, then LIF neurons), from
    ``options["rates"]`` ({population: rate or per-neuron rates}); populations not given
    get the mean of the given ones (1.0 when none is given)."""
    net = m.network
    given = m.options.get("rates") or {}
    if not isinstance(given, MappingABC):
        raise ConfigError("rates must map population names to spike rates", where="compile",
                          field="rates")
    pops = [p for p in net.populations if p.kind == "input"] + \
        [p for p in net.populations if p.kind == "lif"]
    names = {p.name for p in pops}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ConfigError(f"rates name populations {unknown} the network does not have",
                          where="compile", field="rates")
    vals: dict[str, NDArray[np.float64]] = {}
    for p in pops:
        if p.name not in given:
            continue
        v = np.asarray(given[p.name], np.float64)
        if v.ndim == 0:
            v = np.full(p.size, float(v))
        if v.shape != (p.size,) or not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ConfigError(f"rates of '{p.name}' must be one rate >= 0 or {p.size} of them",
                              where="compile", field="rates")
        vals[p.name] = v
    default = float(np.mean(np.concatenate(list(vals.values())))) if vals else 1.0
    return np.concatenate([vals.get(p.name, np.full(p.size, default)) for p in pops]
                          or [np.zeros(0)])


@dataclass(frozen=True)
class _Mesh:
    x: NDArray[np.int64]  # per core
    y: NDArray[np.int64]
    chip: NDArray[np.int64]
    io: tuple[int, int, int]  # (x, y, chip) where host spikes enter
    link_weight: float  # one chip-link crossing, in tile hops

    @classmethod
    def of(cls, hw: HardwareSpec) -> _Mesh:
        pos = np.array([hw.core_position(c) for c in range(hw.n_cores)], np.int64)
        t = hw.timing
        hop = (t.hop_ew_ns + t.hop_ns_ns) / 2 or 1.0
        lw = t.chip_link_ns / hop if t.chip_link_ns > 0 else 1.0
        io_x, io_y = hw.mesh.io_tile
        return cls(pos[:, 1], pos[:, 2], pos[:, 0], (io_x, io_y, 0), lw)

    def dist(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float64]:
        """Weighted distance between cores (a or b = -1: the host I/O tile)."""
        ax, ay, ac = self._xyc(a)
        bx, by, bc = self._xyc(b)
        return (np.abs(ax - bx) + np.abs(ay - by) + self.link_weight * np.abs(ac - bc)
                ).astype(np.float64)

    def _xyc(self, a: NDArray[np.int64]) -> tuple[NDArray[np.int64], ...]:
        host = a < 0
        ac = np.where(host, 0, a)
        return (np.where(host, self.io[0], self.x[ac]), np.where(host, self.io[1], self.y[ac]),
                np.where(host, self.io[2], self.chip[ac]))

    def hops_links(self, a: NDArray[np.int64], b: NDArray[np.int64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        ax, ay, ac = self._xyc(a)
        bx, by, bc = self._xyc(b)
        return np.abs(ax - bx) + np.abs(ay - by), np.abs(ac - bc)


def _chunk_of_source(m: Mapping) -> tuple[NDArray[np.int64], int]:
    """Global chunk of every source (-1: host input) and the number of chunks."""
    net = m.network
    n_in = sum(p.size for p in net.populations if p.kind == "input")
    lif_off = m.lif_offsets()
    n_lif = sum(p.size for p in net.populations if p.kind == "lif")
    out = np.full(n_in + n_lif, -1, np.int64)
    g = 0
    for name, chs in m.chunks.items():
        for ch in chs:
            out[n_in + lif_off[name] + ch.indices()] = g
            g += 1
    return out, g


def _source_axons(m: Mapping, chunk_core: NDArray[np.int64]
                  ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every axon of the network under a chunk -> core assignment: (source, core)."""
    src_off = m.source_offsets()
    net = m.network
    srcs, dsts = [], []
    for c, (j, k, n) in zip(net.connections, m.axon_pairs):
        if not j.size:
            continue
        jj, kk, _ = core_axons(j, k, n, chunk_core)
        srcs.append(jj + src_off[c.pre])
        dsts.append(kk)
    if not srcs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(srcs), np.concatenate(dsts)


def _evaluate(m: Mapping, mesh: _Mesh, chunk_core: NDArray[np.int64], src_chunk: NDArray[np.int64],
              rates: NDArray[np.float64]) -> tuple[float, float, float]:
    """(weighted cost, hops, chip-link crossings) per step of an assignment, exactly."""
    s, d = _source_axons(m, chunk_core)
    sc = np.where(src_chunk[s] >= 0, chunk_core[np.maximum(src_chunk[s], 0)], -1)
    hops, links = mesh.hops_links(sc, d)
    r = rates[s]
    return (float(r @ (hops + mesh.link_weight * links)), float(r @ hops), float(r @ links))


def _next_fit(res: NDArray[np.int64], caps: NDArray[np.int64], order: NDArray[np.int64]
              ) -> NDArray[np.int64]:
    """Bin of each chunk: chunks in ``order``, a new bin when the next does not fit."""
    b = np.zeros(res.shape[0], np.int64)
    used = np.zeros(res.shape[1], np.int64)
    cur, any_in = 0, False
    for i in order:
        if any_in and np.any(used + res[i] > caps):
            cur, used, any_in = cur + 1, np.zeros_like(used), False
        b[i] = cur
        used = used + res[i]
        any_in = True
    return b


def _chunk_graph(m: Mapping, src_chunk: NDArray[np.int64], K: int, rates: NDArray[np.float64]
                 ) -> tuple[sp.csr_matrix, NDArray[np.float64]]:
    """Messages per step between chunks (symmetric) and from the host into each chunk."""
    src_off = m.source_offsets()
    rows, cols, w = [], [], []
    host = np.zeros(K, np.float64)
    for c, (j, k, _) in zip(m.network.connections, m.axon_pairs):
        if not j.size:
            continue
        s = j + src_off[c.pre]
        a = src_chunk[s]
        r = rates[s]
        h = a < 0
        host += np.bincount(k[h], weights=r[h], minlength=K)
        rows.append(a[~h])
        cols.append(k[~h])
        w.append(r[~h])
    if rows:
        T = sp.coo_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(K, K)).tocsr()
    else:
        T = sp.csr_matrix((K, K))
    T = (T + T.T).tocsr()
    T.setdiag(0)
    T.eliminate_zeros()
    return T, host


#: links per chunk METIS is given (the heaviest; every link of a chunk with no more)
METIS_LINKS = 16


def _metis_order(T: sp.csr_matrix, load: NDArray[np.float64], nparts: int) -> NDArray[np.int64]:
    """Chunks grouped by a METIS partition of the traffic graph into ``nparts`` parts
    (vertex weight: the chunk's largest share of a core's resources), declaration order
    inside each part. METIS sees each chunk's :data:`METIS_LINKS` heaviest links (and those
    of which it is among the other end's heaviest): a graph of widely spread traffic keeps
    its strongest structure, and METIS's time stays proportional to the chunks."""
    import pymetis

    K = T.shape[0]
    if nparts <= 1 or K <= 1 or T.nnz == 0:
        return np.arange(K, dtype=np.int64)
    if int(np.diff(T.indptr).max()) > METIS_LINKS:
        keep = strongest_edges(T.indptr, T.data, METIS_LINKS)
        rows = np.repeat(np.arange(K, dtype=np.int64), np.diff(T.indptr))
        S = sp.csr_matrix((T.data[keep], (rows[keep], T.indices[keep])), shape=T.shape)
        T = S.maximum(S.T).tocsr()
        T.sort_indices()
    top = float(T.data.max())
    ew = np.maximum(1, np.rint(T.data / top * 10_000)).astype(np.int64)
    vw = np.maximum(1, np.rint(load * 1000)).astype(np.int64)
    opts = pymetis.Options()
    opts.seed = 1  # deterministic images
    adj = pymetis.CSRAdjacency(T.indptr.astype(np.int64).tolist(),
                               T.indices.astype(np.int64).tolist())
    _, parts = pymetis.part_graph(nparts, adj, vweights=vw.tolist(), eweights=ew.tolist(),
                                  options=opts)
    parts_a = np.asarray(parts, np.int64)
    # Parts in the order of their first chunk, so the result stays close to the declaration.
    first = np.full(nparts, K, np.int64)
    np.minimum.at(first, parts_a, np.arange(K))
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return np.lexsort((np.arange(K), rank[parts_a])).astype(np.int64)


#: steps the refinement may spend per candidate (a core tried for a bin or a cost-table
#: entry updated; about 0.3 s): networks of up to several hundred cores converge (or stop
#: after max_passes) long before it, 10^8 synapses on 1,879 cores stop at it
REFINE_BUDGET = 10**9


def _place_bins(Tb: sp.csr_matrix, Hb: NDArray[np.float64], mesh: _Mesh, n_cores: int,
                pos0: NDArray[np.int64], max_passes: int = 10) -> NDArray[np.int64]:
    """Core of each bin: start from ``pos0`` and swap bins (or move one to a free core)
    while the weighted hops fall (``Tb``: symmetric messages per step between bins)."""
    nb = Tb.shape[0]
    allc = np.arange(n_cores, dtype=np.int64)
    axes = MeshAxes(mesh.x, mesh.y, mesh.chip, mesh.dist(np.full(n_cores, -1, np.int64), allc),
                    mesh.link_weight)
    pos = pos0.copy()
    occ = np.full(n_cores, -1, np.int64)
    occ[pos] = np.arange(nb)
    graph = BinGraph(Tb.indptr, Tb.indices, Tb.data, np.asarray(Hb, np.float64))
    refine_bins(graph, axes, pos, occ, max_passes, REFINE_BUDGET)
    return pos


def _traffic_candidates(m: Mapping, mesh: _Mesh, res: NDArray[np.int64], caps: NDArray[np.int64],
                        greedy_bin: NDArray[np.int64], src_chunk: NDArray[np.int64],
                        rates: NDArray[np.float64]) -> list[NDArray[np.int64]]:
    """Chunk -> core assignments to try besides next-fit."""
    hw = m.hw
    K = res.shape[0]
    T, H = _chunk_graph(m, src_chunk, K, rates)
    load = (res / caps[None, :]).max(axis=1)
    nb = int(greedy_bin.max()) + 1
    bins_list = [greedy_bin]
    try:
        order = _metis_order(T, load, nb)
        mb = _next_fit(res, caps, order)
        if int(mb.max()) + 1 <= hw.n_cores:
            bins_list.append(mb)
    except ImportError:  # pragma: no cover - pymetis is a dependency
        pass
    out = []
    for bins in bins_list:
        # bins start on cores 0, 1, 2, ... (next-fit's cores) and move by pairwise swaps
        nbins = int(bins.max()) + 1
        Pm = sp.csr_matrix((np.ones(K), (bins, np.arange(K))), shape=(nbins, K))
        Tb = (Pm @ T @ Pm.T).tocsr()
        Tb.setdiag(0.0)
        Tb.eliminate_zeros()
        Tb.sort_indices()
        Hb = Pm @ H
        pos = _place_bins(Tb, Hb, mesh, hw.n_cores, np.arange(nbins, dtype=np.int64))
        out.append(pos[bins])
    return out


def place(m: Mapping) -> Mapping:
    """Assign every chunk to a core (``options["placement"]``: "traffic" or "greedy")."""
    hw, lim = m.hw, m.hw.core
    method = m.options.get("placement", "traffic")
    if method not in PLACEMENTS:
        raise ConfigError(f"placement must be one of {list(PLACEMENTS)}, got {method!r}",
                          where="compile", field="placement")
    chunks = m.all_chunks()
    K = len(chunks)
    res = np.array([[c.count, c.mem_bits, c.input_axons, c.output_axons] for c in chunks],
                   np.int64).reshape(K, 4)
    caps = np.array([lim.max_neurons, lim.synapse_memory_bits, lim.max_input_axons,
                     lim.max_output_axons], np.int64)
    # a chunk over a limit (already reported by partition) gets a core of its own
    greedy_bin = _next_fit(np.minimum(res, caps), caps, np.arange(K, dtype=np.int64))
    problems: list[Problem] = []
    chunk_core = greedy_bin
    report: dict[str, Any] = {"requested": method, "method": "greedy"}
    n_needed = int(greedy_bin.max()) + 1 if K else 0
    consistent = len(m.axon_pairs) == len(m.network.connections) and all(
        not k.size or int(k.max()) < K for _, k, _ in m.axon_pairs)
    if n_needed > hw.n_cores:
        problems.append(_core_count_problem(m, chunks, greedy_bin, n_needed))
    elif K and consistent:  # (chunks edited by hand after partition: next-fit only)
        mesh = _Mesh.of(hw)
        src_chunk, _ = _chunk_of_source(m)
        rates = source_rates(m)
        cost_g, hops_g, links_g = _evaluate(m, mesh, greedy_bin, src_chunk, rates)
        report.update(greedy_cost=cost_g, greedy_hops_per_step=hops_g,
                      greedy_chip_links_per_step=links_g, cost=cost_g, hops_per_step=hops_g,
                      chip_links_per_step=links_g)
        if method == "traffic" and cost_g > 0:
            best = (cost_g, hops_g, links_g)
            for cand in _traffic_candidates(m, mesh, np.minimum(res, caps), caps, greedy_bin,
                                            src_chunk, rates):
                cost, hops, links = _evaluate(m, mesh, cand, src_chunk, rates)
                if cost < best[0] - 1e-9 * max(1.0, best[0]) and hops <= hops_g + 1e-9:
                    best, chunk_core = (cost, hops, links), cand
            if chunk_core is not greedy_bin:
                report.update(method="traffic", cost=best[0], hops_per_step=best[1],
                              chip_links_per_step=best[2])
    slices: dict[str, list[tuple[int, int, int]]] = {}
    offsets = m.lif_offsets()
    n_lif = sum(p.size for p in m.network.populations if p.kind == "lif")
    core_of = np.zeros(n_lif, np.int32)
    g = 0
    for name, chs in m.chunks.items():
        sl: list[tuple[int, int, int]] = []
        for ch in chs:
            core = int(chunk_core[g])
            g += 1
            sl.extend((core, s, n) for s, n in ch.runs())
            core_of[offsets[name] + ch.indices()] = core
        slices[name] = sorted(sl, key=lambda t: t[1])
    report["cores_used"] = int(np.unique(chunk_core).size) if K else 0
    return replace(m, slices=slices, core_of=core_of, problems=m.problems + tuple(problems),
                   placement=report, chunk_core=np.asarray(chunk_core, np.int64))


def _core_count_problem(m: Mapping, chunks: list[Chunk], bins: NDArray[np.int64],
                        n_needed: int) -> Problem:
    hw = m.hw
    per_pop: dict[str, set[int]] = {}
    for ch, b in zip(chunks, bins):
        per_pop.setdefault(ch.population, set()).add(int(b))
    beyond = [name for name, bs in per_pop.items() if max(bs) >= hw.n_cores]
    big = sorted(((len(bs), name) for name, bs in per_pop.items()), reverse=True)
    needs = "; ".join(f"population '{name}' ({m.network.population(name).size} neurons) "
                      f"needs {n} of {hw.n_cores} cores" for n, name in big[:4] if n > 1)
    first = beyond[0]
    start = next(ch.start for ch, b in zip(chunks, bins)
                 if ch.population == first and b >= hw.n_cores)
    return Problem(
        "core_count", f"population '{first}'", n_needed, hw.n_cores,
        f"the network needs {n_needed} cores but '{hw.name}' has {hw.n_cores} (over by "
        f"{n_needed - hw.n_cores}); population '{first}' from neuron {start} does not fit"
        + (f" ({needs})" if needs else "")
        + f"; not placed: {', '.join(beyond)}",
        SUGGEST["core_count"], tuple(beyond))


def route(m: Mapping) -> Mapping:
    """Build the axon tables and count every core's resources exactly."""
    assert m.core_of is not None, "route needs placed neurons"
    hw, net = m.hw, m.network
    src_off = m.source_offsets()
    lif_off = m.lif_offsets()
    n_sources = sum(p.size for p in net.populations)
    n_in = sum(p.size for p in net.populations if p.kind == "input")
    ncores = max(hw.n_cores, int(m.core_of.max()) + 1 if m.core_of.size else 0)
    srcs, cores, nsyns, conns = [], [], [], []
    mem = np.zeros(ncores, np.int64)
    fast = (m.chunk_core is not None and len(m.axon_pairs) == len(net.connections)
            and m.chunk_core.size == sum(len(v) for v in m.chunks.values()))
    for ci, c in enumerate(net.connections):
        if fast:  # from the partition's (pre, chunk) axons: no pass over the synapses
            assert m.chunk_core is not None
            pj, pk, pn = m.axon_pairs[ci]
            j, k, cnt = core_axons(pj, pk, pn, m.chunk_core)
            srcs.append(j + src_off[c.pre])
            cores.append(k)
            nsyns.append(cnt)
            conns.append(np.full(j.size, ci, np.int64))
            if c.conv is not None:
                mem += _conv_route_bits(m, c, lif_off, ncores)
            else:
                mem += np.bincount(k, weights=cnt * synapse_bits(c, hw),
                                   minlength=ncores).astype(np.int64)
            continue
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
        if c.conv is not None:
            mem += _conv_route_bits(m, c, lif_off, ncores)
        else:
            mem += np.bincount(k, weights=cnt * synapse_bits(c, hw),
                               minlength=ncores).astype(np.int64)
    if srcs:
        s_all = np.concatenate(srcs)
        k_all = np.concatenate(cores)
        n_all = np.concatenate(nsyns)
        c_all = np.concatenate(conns)
        # each connection's axons come sorted by (source, core), connections in order:
        # a stable sort by source gives (source, connection, core)
        order = np.argsort(s_all, kind="stable")
        s_all, k_all, n_all, c_all = s_all[order], k_all[order], n_all[order], c_all[order]
    else:
        s_all = k_all = n_all = c_all = np.zeros(0, np.int64)
    ptr = np.zeros(n_sources + 1, np.int64)
    np.cumsum(np.bincount(s_all, minlength=n_sources), out=ptr[1:])
    routing = Routing(ptr, k_all.astype(np.int32), n_all.astype(np.int32), c_all.astype(np.int32))
    neurons = np.bincount(m.core_of, minlength=ncores).astype(np.int64)
    mem += neurons * hw.core.neuron_state_bits  # memory shared with neuron state
    in_axons = np.bincount(k_all, minlength=ncores).astype(np.int64)
    src_core = np.full(n_sources, -1, np.int64)
    src_core[n_in:] = m.core_of
    sc = src_core[s_all]
    out_axons = np.bincount(sc[sc >= 0], minlength=ncores).astype(np.int64)
    usage = {"neurons": neurons, "synapse_bits": mem, "input_axons": in_axons,
             "output_axons": out_axons}
    return replace(m, routing=routing, usage=usage)


def _conv_route_bits(m: Mapping, c: Connection, lif_off: dict[str, int], ncores: int
                     ) -> NDArray[np.int64]:
    assert m.core_of is not None
    post_cores = m.core_of[lif_off[c.post]: lif_off[c.post] + c.shape[0]]
    return conv_core_bits(c, post_cores, ncores)


def used_cores(m: Mapping) -> list[int]:
    u = m.usage["neurons"]
    return [int(k) for k in np.flatnonzero(u > 0)]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cores_needed_estimate(bits: int, hw: HardwareSpec) -> int:
    return math.ceil(bits / hw.core.synapse_memory_bits)


# ======================================================================================
# Traffic report (from routing tables: used by place's callers and by ``inspect``)
# ======================================================================================


def traffic_report(hw: HardwareSpec, src_core: NDArray[Any], route_ptr: NDArray[Any],
                   route_core: NDArray[Any], route_nsyn: NDArray[Any],
                   neurons: dict[int, int], rates: NDArray[np.float64]) -> dict[str, Any]:
    """Estimated traffic of a placed network per step at the sources' ``rates``.

    src_core: core of every source (-1: host input, entering at the I/O tile). Every
    spike of a source sends one message per output axon (the emulator's model): hops are
    tile hops |dx| + |dy| (x across chips), chip links the chip boundaries crossed. The
    busiest link is found with dimension-order routing (x first, then y), both directions
    of a link counted together. The slowest core is the one with the most estimated
    cycles (axon events, synaptic operations, every neuron updated as active, messages
    sent), as the emulator's cost model charges them.
    """
    n_src = src_core.size
    per = np.diff(route_ptr).astype(np.int64)
    s = np.repeat(np.arange(n_src, dtype=np.int64), per)
    d = np.asarray(route_core, np.int64)
    r = np.asarray(rates, np.float64)[s]
    mesh = _Mesh.of(hw)
    sc = np.asarray(src_core, np.int64)[s]
    hops, links = mesh.hops_links(sc, d)
    out: dict[str, Any] = {
        "rates": "given" if np.any(rates != 1.0) else "1 spike per neuron per step",
        "messages_per_step": float(r.sum()), "hops_per_step": float(r @ hops),
        "chip_links_per_step": float(r @ links)}
    # busiest link (x-first routing) -------------------------------------------------
    X = hw.mesh.tiles_x * hw.mesh.chips
    Y = hw.mesh.tiles_y
    sx, sy, _ = mesh._xyc(sc)
    dx, dy, _ = mesh._xyc(d)
    hd = np.zeros((Y, X + 1))
    lo, hi = np.minimum(sx, dx), np.maximum(sx, dx)
    np.add.at(hd, (sy, lo), r)
    np.add.at(hd, (sy, hi), -r)
    hload = np.cumsum(hd, axis=1)[:, :X - 1] if X > 1 else np.zeros((Y, 0))
    vd = np.zeros((Y + 1, X))
    lo, hi = np.minimum(sy, dy), np.maximum(sy, dy)
    np.add.at(vd, (lo, dx), r)
    np.add.at(vd, (hi, dx), -r)
    vload = np.cumsum(vd, axis=0)[:Y - 1, :] if Y > 1 else np.zeros((0, X))
    best: dict[str, Any] = {"link": "-", "messages_per_step": 0.0}
    if hload.size and hload.max() > best["messages_per_step"]:
        y, x = np.unravel_index(int(np.argmax(hload)), hload.shape)
        chip_link = (x + 1) % hw.mesh.tiles_x == 0
        best = {"link": f"tile ({x},{y}) - ({x + 1},{y})" + (" (chip link)" if chip_link else ""),
                "messages_per_step": float(hload[y, x])}
    if vload.size and vload.max() > best["messages_per_step"]:
        y, x = np.unravel_index(int(np.argmax(vload)), vload.shape)
        best = {"link": f"tile ({x},{y}) - ({x},{y + 1})",
                "messages_per_step": float(vload[y, x])}
    out["busiest_link"] = best
    # slowest core -----------------------------------------------------------------
    cores = sorted(neurons)
    if cores:
        t = hw.timing
        ncore = max(max(cores), int(d.max()) if d.size else 0) + 1
        spikes_in = np.bincount(d, weights=r, minlength=ncore)
        synops = np.bincount(d, weights=r * np.asarray(route_nsyn, np.float64),
                             minlength=ncore)
        own = sc >= 0
        msgs = np.bincount(sc[own], weights=r[own], minlength=ncore)
        nn = np.zeros(ncore)
        nn[cores] = [neurons[c] for c in cores]
        ns = (spikes_in * t.spike_in_ns + synops * t.synop_ns + nn * t.neuron_active_ns
              + msgs * t.spike_out_ns)
        k = int(cores[int(np.argmax(ns[cores]))])
        out["slowest_core"] = {"core": k, "ns_per_step": float(ns[k]),
                               "synops_per_step": float(synops[k]),
                               "spikes_in_per_step": float(spikes_in[k]),
                               "messages_per_step": float(msgs[k]), "neurons": int(nn[k])}
    return out


def mapping_traffic(m: Mapping) -> dict[str, Any]:
    """:func:`traffic_report` of a routed mapping at its ``options["rates"]``."""
    assert m.routing is not None and m.core_of is not None
    n_in = sum(p.size for p in m.network.populations if p.kind == "input")
    src_core = np.concatenate([np.full(n_in, -1, np.int64), m.core_of.astype(np.int64)])
    neurons = {int(k): int(v) for k, v in enumerate(m.usage["neurons"]) if v > 0}
    return traffic_report(m.hw, src_core, m.routing.ptr, m.routing.core, m.routing.nsyn,
                          neurons, source_rates(m))
