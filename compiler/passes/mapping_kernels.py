"""Kernels of the mapping passes: partition's axon counting and place's swap loop.

Axon counting: one pass over a connection's synapses per trial cut.

A sparse connection's (post, pre) CSR is read in the cut's rank order (rows ``order[0]``,
``order[1]``, ...; identity without an order); chunk ``c`` holds ranks ``c*s .. c*s+s-1``.
One input axon exists per distinct (pre neuron, chunk) pair. Chunks are visited in
increasing order, so the last chunk that reached each pre neuron tells whether a synapse
opens a new pair: no sort, no per-synapse temporaries, no transposed copy of the matrix.
The results equal those of the transposed (CSC) formulation the partition used before
(``tests/compiler/test_mapping_count.py`` compares them with a naive reference).

Swap loop (:func:`swap_bins`): the pairwise-swap refinement of place, the same floating
point operations in the same order as the array version it replaces, so placements stay
identical; a move updates only the cost rows of the bins that talk to the moved ones.

``cache=True``: the kernels compile once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["axon_pairs", "chunk_axons", "swap_bins"]

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
    (post, pre) CSR ``indptr``/``indices``, rows in ``order``, is cut every ``s`` ranks."""
    n_post = len(indptr) - 1
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


@njit(cache=True, nogil=True)
def _update(M: NDArray[np.float64], hit: NDArray[np.bool_], wa: NDArray[np.float64],
            wo: NDArray[np.float64], d1: NDArray[np.float64], d2: NDArray[np.float64],
            use_a: bool, use_o: bool) -> None:  # pragma: no cover - njit
    nb, P = M.shape
    for i in range(nb):
        if not hit[i]:
            continue
        x, y = wa[i], wo[i]
        if use_a and use_o:
            for j in range(P):
                M[i, j] = (M[i, j] + x * d1[j]) + y * d2[j]
        elif use_a:
            for j in range(P):
                M[i, j] = M[i, j] + x * d1[j]
        else:
            for j in range(P):
                M[i, j] = M[i, j] + y * d2[j]


@njit(cache=True, nogil=True)
def _swap(M: NDArray[np.float64], Tb: NDArray[np.float64], D: NDArray[np.float64],
          pos: NDArray[np.int64], occ: NDArray[np.int64], nbr_ptr: NDArray[np.int64],
          nbr: NDArray[np.int64], nbr_w: NDArray[np.float64], max_passes: int
          ) -> None:  # pragma: no cover - njit
    nb, P = M.shape
    delta = np.empty(P, np.float64)
    d1 = np.empty(P, np.float64)
    d2 = np.empty(P, np.float64)
    wa = np.zeros(nb, np.float64)
    wo = np.zeros(nb, np.float64)
    hit = np.zeros(nb, np.bool_)
    a_nz = np.zeros(nb, np.bool_)
    cur = np.empty(nb, np.float64)  # M[b, pos[b]]: each bin's cost where it is (a copy)
    for b in range(nb):
        a_nz[b] = nbr_ptr[b + 1] > nbr_ptr[b]
        cur[b] = M[b, pos[b]]
    for _ in range(max_passes):
        improved = False
        for a in range(nb):
            pa = pos[a]
            base = M[a, pa]
            for q in range(P):
                d = M[a, q] - base
                bq = occ[q]
                if bq >= 0:
                    d = d + (M[bq, pa] - cur[bq] + 2.0 * Tb[a, bq] * D[pa, q])
                else:
                    d = d + 0.0
                delta[q] = d
            delta[pa] = 0.0
            q = 0
            for j in range(1, P):
                if delta[j] < delta[q]:
                    q = j
            if delta[q] >= -1e-9 * (1.0 + abs(M[a, pa])):
                continue
            other = occ[q]
            for j in range(P):
                d1[j] = D[q, j] - D[pa, j]
                d2[j] = D[pa, j] - D[q, j]
            # the rows of the bins that talk to a (weight wa) or to other (wo): M += wa*d1,
            # then M += wo*d2, per element in that order, in one pass over the rows
            wa[:] = 0.0
            wo[:] = 0.0
            hit[:] = False
            for e in range(nbr_ptr[a], nbr_ptr[a + 1]):
                wa[nbr[e]] = nbr_w[e]
                hit[nbr[e]] = True
            if other >= 0:
                for e in range(nbr_ptr[other], nbr_ptr[other + 1]):
                    wo[nbr[e]] = nbr_w[e]
                    hit[nbr[e]] = True
            _update(M, hit, wa, wo, d1, d2, a_nz[a], other >= 0 and a_nz[other])
            if other >= 0:
                pos[other] = pa
            occ[pa] = other
            occ[q] = a
            pos[a] = q
            for i in range(nb):
                if hit[i] or i == a or i == other:
                    cur[i] = M[i, pos[i]]
            improved = True
        if not improved:
            break


def swap_bins(M: NDArray[np.float64], Tb: NDArray[np.float64], D: NDArray[np.float64],
              pos: NDArray[np.int64], occ: NDArray[np.int64], max_passes: int) -> None:
    """Move bins (``pos``: core of each bin; ``occ``: bin at each core, -1 free) while the
    weighted hops fall; ``M[a, q]`` is the cost of bin a at core q. In place."""
    import scipy.sparse as sp

    Tc = sp.csc_matrix(Tb)  # the bins each bin talks to (column a of Tb)
    _swap(M, np.ascontiguousarray(Tb), np.ascontiguousarray(D), pos, occ,
          Tc.indptr.astype(np.int64), Tc.indices.astype(np.int64), Tc.data.astype(np.float64),
          int(max_passes))
