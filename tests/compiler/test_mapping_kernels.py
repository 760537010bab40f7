"""Partition's one-pass axon counting and place's swap-loop kernel against naive references
(np.unique over every synapse; the array version of the swap loop)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

import neurochip
from compiler.passes import mapping as mp
from compiler.passes.mapping_kernels import axon_pairs, chunk_axons, swap_bins


def _naive(W: sp.csr_matrix, order: np.ndarray | None, s: int
           ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    n_post, n_pre = W.shape
    rank = np.empty(n_post, np.int64)
    rank[order if order is not None else np.arange(n_post)] = np.arange(n_post)
    rows = np.repeat(np.arange(n_post), np.diff(W.indptr))
    ch = rank[rows] // s
    k = -(-n_post // s)
    key, cnt = np.unique(W.indices.astype(np.int64) * k + ch, return_counts=True)
    pre, chunk = np.divmod(key, k)
    return (np.bincount(chunk, minlength=k), np.bincount(pre, minlength=n_pre),
            (pre, chunk, cnt))


def test_counting_equals_a_naive_unique_on_random_cuts() -> None:
    rng = np.random.default_rng(7)
    for trial in range(40):
        n_post, n_pre = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        W = sp.random(n_post, n_pre, density=float(rng.uniform(0.0, 0.4)), random_state=trial,
                      format="csr")
        order = rng.permutation(n_post) if trial % 2 else None
        s = int(rng.integers(1, n_post + 1))
        ax, fan = chunk_axons(W.indptr, W.indices, n_pre, order, s)
        want_ax, want_fan, want_pairs = _naive(W, order, s)
        np.testing.assert_array_equal(ax, want_ax)
        np.testing.assert_array_equal(fan, want_fan)
        for got, want in zip(axon_pairs(W.indptr, W.indices, n_pre, order, s, fan), want_pairs):
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want)


def _fan_network(seed: int) -> neurochip.Network:
    """Sparse layers with per-synapse delays and a recurrent layer whose fan-out forces the
    partition to cut again for output axons."""
    rng = np.random.default_rng(seed)
    net = neurochip.Network(name=f"fan{seed}")
    net.add_input("in", 64)
    na, nb = int(rng.integers(500, 3000)), int(rng.integers(3000, 12000))
    net.add_lif("a", na, du=0, dv=0, vth=10)
    net.add_lif("b", nb, du=0, dv=0, vth=10)

    def rnd(n: int, m: int, d: float, rs: int) -> sp.csr_matrix:
        return sp.random(n, m, density=d, random_state=rs, format="csr",
                         data_rvs=lambda k: np.full(k, 2.0)).astype(np.int64)

    net.connect("in", "a", rnd(na, 64, 0.1, seed))
    W = rnd(nb, na, float(rng.uniform(0.005, 0.03)), seed + 1)
    net.connect("a", "b", W, storage="sparse", delay=rng.integers(0, 5, W.nnz))
    net.connect("b", "b", rnd(nb, nb, 0.0006, seed + 2), storage="sparse")
    return net


def test_partition_counts_equal_a_naive_count_per_chunk() -> None:
    """Every chunk's input axons and every (pre, chunk) axon of the partition, on networks
    with delays and fan-out re-cuts, equal a count over every synapse."""
    hw = neurochip.load_hw("loihi_like_2chip")
    for seed in range(3):
        net = _fan_network(seed)
        m = mp.partition(mp.Mapping(net, hw))
        base, chunk_of = 0, {}
        for name, chs in m.chunks.items():
            lab = np.full(net.population(name).size, -1, np.int64)
            for j, ch in enumerate(chs):
                lab[ch.indices()] = base + j
            chunk_of[name] = lab
            base += len(chs)
        in_ax = np.zeros(base, np.int64)
        for ci, c in enumerate(net.connections):
            W = c.weights
            rows = np.repeat(np.arange(c.shape[0]), np.diff(W.indptr))
            key, cnt = np.unique(W.indices.astype(np.int64) * base + chunk_of[c.post][rows],
                                 return_counts=True)
            pre, chunk = np.divmod(key, base)
            j, k, n = m.axon_pairs[ci]
            np.testing.assert_array_equal(j, pre)
            np.testing.assert_array_equal(k, chunk)
            np.testing.assert_array_equal(n, cnt)
            in_ax += np.bincount(chunk, minlength=base)
        got = np.array([ch.input_axons for ch in m.all_chunks()])
        np.testing.assert_array_equal(got, in_ax)


def _swap_reference(M: np.ndarray, Tb: np.ndarray, D: np.ndarray, pos: np.ndarray,
                    occ: np.ndarray, max_passes: int) -> None:
    """The array version of place's swap loop."""
    nb, P = M.shape
    allc = np.arange(P)
    for _ in range(max_passes):
        improved = False
        for a in range(nb):
            pa = pos[a]
            has = occ >= 0
            bb = np.where(has, occ, 0)
            delta = M[a, :] - M[a, pa]
            delta = delta + np.where(has, M[bb, pa] - M[bb, allc] + 2 * Tb[a, bb] * D[pa, :],
                                     0.0)
            delta[pa] = 0.0
            q = int(np.argmin(delta))
            if delta[q] >= -1e-9 * (1.0 + abs(M[a, pa])):
                continue
            other = int(occ[q])
            M += np.outer(Tb[:, a], D[q, :] - D[pa, :])
            if other >= 0:
                M += np.outer(Tb[:, other], D[pa, :] - D[q, :])
                pos[other] = pa
            occ[pa] = other
            occ[q] = a
            pos[a] = q
            improved = True
        if not improved:
            break


def test_swap_kernel_equals_the_array_loop() -> None:
    rng = np.random.default_rng(1)
    hw = neurochip.load_hw("loihi_like")
    mesh = mp._Mesh.of(hw)
    P = hw.n_cores
    allc = np.arange(P, dtype=np.int64)
    D = mesh.dist(allc[:, None], allc[None, :])
    for trial in range(6):
        nb = int(rng.integers(2, 60))
        T = sp.random(nb, nb, density=0.15, random_state=trial).toarray() * 10
        Tb = T + T.T
        np.fill_diagonal(Tb, 0.0)
        pos0 = rng.permutation(P)[:nb].astype(np.int64)
        M0 = Tb @ D[pos0, :] + rng.random(nb)[:, None]
        results = []
        for fn in (swap_bins, _swap_reference):
            M, pos = M0.copy(), pos0.copy()
            occ = np.full(P, -1, np.int64)
            occ[pos] = np.arange(nb)
            fn(M, Tb, D, pos, occ, 10)
            results.append((pos, occ, M))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_array_equal(results[0][1], results[1][1])
        np.testing.assert_allclose(results[0][2], results[1][2], rtol=0, atol=1e-9)
        assert not np.array_equal(results[0][0], pos0)  # it moved something
