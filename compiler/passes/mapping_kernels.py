"""Kernels of the mapping passes: partition's axon counting, place's refinement, route's axons.

Axon counting: one pass over a connection's synapses per trial cut.

A sparse connection's (post, pre) CSR is read in the cut's rank order (rows ``order[0]``,
``order[1]``, ...; identity without an order); chunk ``c`` holds ranks ``c*s .. c*s+s-1``.
One input axon exists per distinct (pre neuron, chunk) pair. Chunks are visited in
increasing order, so the last chunk that reached each pre neuron tells whether a synapse
opens a new pair: no sort, no per-synapse temporaries, no transposed copy of the matrix.
The results equal those of the transposed (CSC) formulation the partition used before
(``tests/compiler/test_mapping_kernels.py`` compares them with a naive reference).

Refinement (:func:`refine_bins`): place's pairwise-swap loop. The mesh distance is a sum
of one term per axis (tile column, tile row, chip), so a bin's cost at every core is read
from three small tables per bin (the weighted distance to its neighbours for each column,
each row and each chip) instead of a (bins x cores) matrix: evaluating a bin costs one
pass over the cores, and a move updates the tables of the bins that talk to the moved
ones, each in (columns + rows + chips) steps. Memory and time scale with the bins, the
cores and the edges of the bin graph; a work budget bounds the passes of very large ones.
The moves are those of the matrix formulation it replaced (tested against it).

METIS's input (:func:`strongest_edges`): the heaviest links of every chunk.

Route's axons (:func:`core_axons`): a connection's (pre neuron, chunk) axons merged into
(pre neuron, core) axons in one pass over them, in the order a sort would give.

``cache=True``: the kernels compile once per machine.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["BinGraph", "MeshAxes", "axon_pairs", "chunk_axons", "core_axons", "refine_bins",
           "strongest_edges"]

_EMPTY = np.zeros(0, np.int64)


@njit(cache=True, nogil=True)
def _count(indptr: NDArray[np.int64], indices: NDArray[np.int32], order: NDArray[np.int64],
           use_order: bool, n_post: int, n_pre: int, s: int, k: int
           ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - njit
    ax = np.zeros(k, np.int64)
    fan = np.zeros(n_pre, np.int32)  # 32-bit: half the cache footprint of the scattered
    last = np.full(n_pre, -1, np.int32)  # reads (a chunk index and a count fit)
    for r in range(n_post):
        row = order[r] if use_order else r
        c = np.int32(r // s)
        for e in range(indptr[row], indptr[row + 1]):
            j = indices[e]
            if last[j] != c:
                last[j] = c
                ax[c] += 1
                fan[j] += 1
    return ax, fan.astype(np.int64)


@njit(cache=True, nogil=True)
def _pairs(indptr: NDArray[np.int64], indices: NDArray[np.int32], order: NDArray[np.int64],
           use_order: bool, n_post: int, n_pre: int, s: int, ptr: NDArray[np.int64]
           ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # pragma: no cover - njit
    n = ptr[n_pre]
    chunk = np.empty(n, np.int64)
    cnt = np.zeros(n, np.int64)
    nxt = ptr[:-1].copy()  # next free slot of each pre neuron
    cur = np.full(n_pre, -1, np.int64)  # its current slot
    last = np.full(n_pre, -1, np.int64)
    for r in range(n_post):
        row = order[r] if use_order else r
        c = r // s
        for e in range(indptr[row], indptr[row + 1]):
            j = indices[e]
            if last[j] != c:
                last[j] = c
                cur[j] = nxt[j]
                nxt[j] += 1
                chunk[cur[j]] = c
            cnt[cur[j]] += 1
    return chunk, cnt


def _args(indptr: NDArray[np.integer], indices: NDArray[np.integer],
          order: NDArray[np.int64] | None
          ) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int64], bool]:
    ip = np.asarray(indptr, np.int64)  # no copy for the network's own int64/int32 arrays
    ix = np.asarray(indices, np.int32)
    if order is None:
        return ip, ix, _EMPTY, False
    return ip, ix, np.asarray(order, np.int64), True


def chunk_axons(indptr: NDArray[np.integer], indices: NDArray[np.integer], n_pre: int,
                order: NDArray[np.int64] | None, s: int
                ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(input axons of each chunk, distinct chunks each pre neuron reaches) when the
    (post, pre) CSR ``indptr``/``indices``, rows in ``order`` (all rows without one; some
    rows only: the chunks of those), is cut every ``s`` ranks."""
    n_post = len(indptr) - 1 if order is None else len(order)
    k = -(-n_post // s) if n_post else 0
    ip, ix, od, use = _args(indptr, indices, order)
    return _count(ip, ix, od, use, n_post, int(n_pre), int(s), k)


def axon_pairs(indptr: NDArray[np.integer], indices: NDArray[np.integer], n_pre: int,
               order: NDArray[np.int64] | None, s: int, fan: NDArray[np.int64]
               ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """(pre neuron, chunk, synapses) of every axon, by pre neuron then chunk; ``fan`` from
    :func:`chunk_axons` with the same cut."""
    n_post = len(indptr) - 1
    ptr = np.zeros(int(n_pre) + 1, np.int64)
    np.cumsum(fan, out=ptr[1:])
    ip, ix, od, use = _args(indptr, indices, order)
    chunk, cnt = _pairs(ip, ix, od, use, n_post, int(n_pre), int(s), ptr)
    pre = np.repeat(np.arange(int(n_pre), dtype=np.int64), fan)
    return pre, chunk, cnt


class BinGraph(NamedTuple):
    """Messages per step between bins (a symmetric CSR, no diagonal) and from the host."""

    ptr: NDArray[np.int64]  # (bins + 1,)
    nbr: NDArray[np.int64]  # the other bin of each entry
    w: NDArray[np.float64]  # its messages per step
    host: NDArray[np.float64]  # (bins,) messages per step from the host into each bin


class MeshAxes(NamedTuple):
    """Where each core sits: the weighted distance between cores p and q is
    ``|x[p] - x[q]| + |y[p] - y[q]| + link_weight * |chip[p] - chip[q]|``."""

    x: NDArray[np.int64]  # (cores,) tile column, counted across chips (0 ..)
    y: NDArray[np.int64]  # tile row (0 ..)
    chip: NDArray[np.int64]  # chip (0 ..)
    host: NDArray[np.float64]  # weighted distance from the host's I/O tile
    link_weight: float  # one chip-link crossing, in tile hops


@njit(cache=True, nogil=True)
def _spread(h: NDArray[np.float64], tmp: NDArray[np.float64]) -> None:  # pragma: no cover
    """h[t] <- sum_x h[x] * |t - x|, in place (one sweep: the sum grows by the weight left
    of t and falls by the weight right of it at each step; ``tmp``: scratch)."""
    n = h.size
    total = 0.0
    f = 0.0
    for x in range(n):
        total += h[x]
        f += h[x] * x
    left = 0.0
    for t in range(n):
        tmp[t] = f
        left += h[t]
        f += left - (total - left)
    for t in range(n):
        h[t] = tmp[t]


@njit(cache=True, nogil=True)
def _shift(row: NDArray[np.float64], w: float, p: int, q: int) -> None:  # pragma: no cover
    """A neighbour of weight w moved from coordinate p to q: row[t] += w (|q-t| - |p-t|)."""
    for t in range(row.size):
        row[t] += w * (abs(q - t) - abs(p - t))


@njit(cache=True, nogil=True)
def _tables(g: BinGraph, mesh: MeshAxes, pos: NDArray[np.int64]
            ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per bin and per coordinate value, the weighted distance to its neighbours along x,
    along y and across chips: histograms of where the neighbours sit, then spread."""
    nb = pos.size
    fx = np.zeros((nb, mesh.x.max() + 1))
    fy = np.zeros((nb, mesh.y.max() + 1))
    fc = np.zeros((nb, mesh.chip.max() + 1))
    tmp = np.empty(max(fx.shape[1], fy.shape[1], fc.shape[1]))
    for b in range(nb):
        for e in range(g.ptr[b], g.ptr[b + 1]):
            p = pos[g.nbr[e]]
            fx[b, mesh.x[p]] += g.w[e]
            fy[b, mesh.y[p]] += g.w[e]
            fc[b, mesh.chip[p]] += g.w[e]
        _spread(fx[b], tmp)
        _spread(fy[b], tmp)
        _spread(fc[b], tmp)
    return fx, fy, fc


@njit(cache=True, nogil=True)
def _moved(g: BinGraph, fx: NDArray[np.float64], fy: NDArray[np.float64],
           fc: NDArray[np.float64], b: int, x0: int, y0: int, c0: int, x1: int, y1: int,
           c1: int) -> int:  # pragma: no cover - njit
    """Bin b moved from (x0, y0, chip c0) to (x1, y1, c1): update its neighbours' tables;
    returns the table entries touched."""
    for e in range(g.ptr[b], g.ptr[b + 1]):
        n, w = g.nbr[e], g.w[e]
        if x0 != x1:
            _shift(fx[n], w, x0, x1)
        if y0 != y1:
            _shift(fy[n], w, y0, y1)
        if c0 != c1:
            _shift(fc[n], w, c0, c1)
    return (g.ptr[b + 1] - g.ptr[b]) * (fx.shape[1] + fy.shape[1] + fc.shape[1])


@njit(cache=True, nogil=True)
def _at(g: BinGraph, mesh: MeshAxes, fx: NDArray[np.float64], fy: NDArray[np.float64],
        fc: NDArray[np.float64], b: int, p: int) -> float:  # pragma: no cover - njit
    """Bin b's weighted hops were it at core p."""
    return (fx[b, mesh.x[p]] + fy[b, mesh.y[p]] + mesh.link_weight * fc[b, mesh.chip[p]]
            + g.host[b] * mesh.host[p])


@njit(cache=True, nogil=True)
def _refresh(g: BinGraph, mesh: MeshAxes, fx: NDArray[np.float64], fy: NDArray[np.float64],
             fc: NDArray[np.float64], pos: NDArray[np.int64], cur: NDArray[np.float64],
             b: int) -> None:  # pragma: no cover - njit
    """The current cost of bin b and of the bins that talk to it."""
    cur[b] = _at(g, mesh, fx, fy, fc, b, pos[b])
    for e in range(g.ptr[b], g.ptr[b + 1]):
        n = g.nbr[e]
        cur[n] = _at(g, mesh, fx, fy, fc, n, pos[n])


@njit(cache=True, nogil=True)
def _refine(g: BinGraph, mesh: MeshAxes, pos: NDArray[np.int64], occ: NDArray[np.int64],
            max_passes: int, budget: int) -> int:  # pragma: no cover - njit
    nb, P = pos.size, occ.size
    lw = mesh.link_weight
    mx, my, mc = mesh.x, mesh.y, mesh.chip
    fx, fy, fc = _tables(g, mesh, pos)
    cur = np.empty(nb)  # each bin's cost where it is
    for b in range(nb):
        cur[b] = _at(g, mesh, fx, fy, fc, b, pos[b])
    wrow = np.zeros(nb)  # the weights of the bin being moved, scattered
    work = nb * (fx.shape[1] + fy.shape[1] + fc.shape[1]) + g.ptr[nb]
    for _ in range(max_passes):
        improved = False
        for a in range(nb):
            if work > budget:
                return work
            pa = pos[a]
            xa, ya, ca = mx[pa], my[pa], mc[pa]
            for e in range(g.ptr[a], g.ptr[a + 1]):
                wrow[g.nbr[e]] = g.w[e]
            base = cur[a]
            best, q = np.inf, pa
            for t in range(P):
                d = 0.0
                if t != pa:
                    # a at t, and t's bin (if any) at a's core; the link between the two
                    # counted at its new length (their tables hold it at length 0)
                    d = _at(g, mesh, fx, fy, fc, a, t) - base
                    bt = occ[t]
                    if bt >= 0:
                        dist = abs(xa - mx[t]) + abs(ya - my[t]) + lw * abs(ca - mc[t])
                        d += (_at(g, mesh, fx, fy, fc, bt, pa) - cur[bt]
                              + 2.0 * wrow[bt] * dist)
                if d < best:
                    best, q = d, t
            for e in range(g.ptr[a], g.ptr[a + 1]):
                wrow[g.nbr[e]] = 0.0
            work += P
            if best >= -1e-9 * (1.0 + abs(base)):
                continue
            other = occ[q]
            xq, yq, cq = mx[q], my[q], mc[q]
            work += _moved(g, fx, fy, fc, a, xa, ya, ca, xq, yq, cq)
            if other >= 0:
                work += _moved(g, fx, fy, fc, other, xq, yq, cq, xa, ya, ca)
                pos[other] = pa
            occ[pa] = other
            occ[q] = a
            pos[a] = q
            _refresh(g, mesh, fx, fy, fc, pos, cur, a)
            if other >= 0:
                _refresh(g, mesh, fx, fy, fc, pos, cur, other)
            improved = True
        if not improved:
            break
    return work


def refine_bins(g: BinGraph, mesh: MeshAxes, pos: NDArray[np.int64], occ: NDArray[np.int64],
                max_passes: int, budget: int) -> int:
    """Move bins (``pos``: core of each bin; ``occ``: bin at each core, -1 free) to the
    core, free or taken (then the two swap), that lowers the weighted hops most, bin after
    bin, for at most ``max_passes`` passes or until ``budget`` steps are spent (a step:
    one core tried for a bin, or one table entry updated). In place; returns the steps
    spent."""
    nb = pos.size
    if g.ptr.shape != (nb + 1,) or g.nbr.size != g.w.size or g.host.shape != (nb,):
        raise ValueError("refine_bins: graph arrays do not match the bins")
    if not (mesh.x.size == mesh.y.size == mesh.chip.size == mesh.host.size == occ.size):
        raise ValueError("refine_bins: mesh arrays do not match the cores")
    g = BinGraph(np.ascontiguousarray(g.ptr, np.int64), np.ascontiguousarray(g.nbr, np.int64),
                 np.ascontiguousarray(g.w, np.float64), np.ascontiguousarray(g.host, np.float64))
    mesh = MeshAxes(np.ascontiguousarray(mesh.x, np.int64),
                    np.ascontiguousarray(mesh.y, np.int64),
                    np.ascontiguousarray(mesh.chip, np.int64),
                    np.ascontiguousarray(mesh.host, np.float64), float(mesh.link_weight))
    return int(_refine(g, mesh, pos, occ, int(max_passes), int(budget)))


@njit(cache=True, nogil=True)
def _strongest(ptr: NDArray[np.int64], w: NDArray[np.float64], k: int
               ) -> NDArray[np.bool_]:  # pragma: no cover - njit
    keep = np.ones(w.size, np.bool_)
    for r in range(ptr.size - 1):
        a, b = ptr[r], ptr[r + 1]
        if b - a <= k:
            continue
        keep[a:b] = False
        for _ in range(k):  # k rounds of the heaviest left (the first of equal ones)
            top = -1
            for e in range(a, b):
                if not keep[e] and (top < 0 or w[e] > w[top]):
                    top = e
            keep[top] = True
    return keep


def strongest_edges(ptr: NDArray[np.integer], w: NDArray[np.floating], k: int
                    ) -> NDArray[np.bool_]:
    """Mask of the ``k`` heaviest entries of every CSR row (rows of up to k entries: all;
    equal weights: the first in the row)."""
    if k < 0:
        raise ValueError("strongest_edges: k must be >= 0")
    return _strongest(np.ascontiguousarray(ptr, np.int64), np.ascontiguousarray(w, np.float64),
                      int(k))


@njit(cache=True, nogil=True)
def _merge_cores(pre: NDArray[np.int64], chunk: NDArray[np.int64], cnt: NDArray[np.int64],
                 chunk_core: NDArray[np.int64]
                 ) -> tuple[NDArray[np.int64], ...]:  # pragma: no cover - njit
    n = pre.size
    out_j = np.empty(n, np.int64)
    out_k = np.empty(n, np.int64)
    out_n = np.empty(n, np.int64)
    m = 0
    a = 0
    while a < n:
        b = a + 1
        while b < n and pre[b] == pre[a]:
            b += 1
        # the axons of one pre neuron: their cores sorted in place (shell sort; a neuron
        # usually reaches a few chunks, already in core order), equal ones merged
        ks, ns = out_k[m:m + b - a], out_n[m:m + b - a]
        for i in range(b - a):
            ks[i] = chunk_core[chunk[a + i]]
            ns[i] = cnt[a + i]
        g = b - a
        gap = 1
        while gap < g // 3:
            gap = 3 * gap + 1
        while gap >= 1:
            for i in range(gap, g):
                kk, nn = ks[i], ns[i]
                t = i
                while t >= gap and ks[t - gap] > kk:
                    ks[t] = ks[t - gap]
                    ns[t] = ns[t - gap]
                    t -= gap
                ks[t] = kk
                ns[t] = nn
            gap //= 3
        u = 0
        for i in range(g):
            if i > 0 and ks[i] == ks[u - 1]:
                ns[u - 1] += ns[i]
            else:
                ks[u] = ks[i]
                ns[u] = ns[i]
                out_j[m + u] = pre[a]
                u += 1
        m += u
        a = b
    return out_j[:m].copy(), out_k[:m].copy(), out_n[:m].copy()


def core_axons(pre: NDArray[np.int64], chunk: NDArray[np.int64], cnt: NDArray[np.int64],
               chunk_core: NDArray[np.int64]
               ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The axons of a connection once its chunks have cores: from its (pre neuron, chunk,
    synapses) axons, grouped by pre neuron (as :func:`axon_pairs` gives them), the (pre
    neuron, core, synapses) of each distinct pair, sorted by pre neuron then core, in one
    pass (what ``np.unique`` of pre * cores + core would give, without its sort)."""
    pre = np.ascontiguousarray(pre, np.int64)
    if pre.size > 1 and bool(np.any(pre[1:] < pre[:-1])):
        raise ValueError("core_axons: axons must be grouped by pre neuron, in order")
    j, k, n = _merge_cores(pre, np.ascontiguousarray(chunk, np.int64),
                           np.ascontiguousarray(cnt, np.int64),
                           np.ascontiguousarray(chunk_core, np.int64))
    return j, k, n
