"""Partition's one-pass axon counting, place's refinement and route's axon merge against
naive references (np.unique over every synapse; the matrix version of the swap loop)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import neurochip
from compiler.passes import mapping as mp
from compiler.passes.mapping_kernels import (
    BinGraph,
    MeshAxes,
    axon_pairs,
    chunk_axons,
    core_axons,
    refine_bins,
    strongest_edges,
)


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


def _axes(hw: neurochip.HardwareSpec) -> tuple[MeshAxes, np.ndarray]:
    mesh = mp._Mesh.of(hw)
    P = hw.n_cores
    allc = np.arange(P, dtype=np.int64)
    dio = mesh.dist(np.full(P, -1, np.int64), allc)
    return (MeshAxes(mesh.x, mesh.y, mesh.chip, dio, mesh.link_weight),
            mesh.dist(allc[:, None], allc[None, :]))


def _cost(Tb: np.ndarray, hb: np.ndarray, D: np.ndarray, dio: np.ndarray,
          pos: np.ndarray) -> float:
    return float(0.5 * (Tb * D[pos][:, pos]).sum() + hb @ dio[pos])


def _random_bins(rng: np.random.Generator, nb: int, P: int, trial: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    T = sp.random(nb, nb, density=0.15, random_state=trial).toarray() * 10
    Tb = T + T.T
    np.fill_diagonal(Tb, 0.0)
    hb = rng.random(nb) * (trial % 2)
    return Tb, hb, rng.permutation(P)[:nb].astype(np.int64)


def test_refinement_kernel_equals_the_array_loop() -> None:
    """The table-based kernel makes the moves of the (bins x cores) matrix loop, on one
    chip and on two chips (a chip link weighs more than a hop)."""
    rng = np.random.default_rng(1)
    for hw_name in ("loihi_like", "loihi_like_2chip"):
        hw = neurochip.load_hw(hw_name)
        axes, D = _axes(hw)
        P = hw.n_cores
        for trial in range(6):
            nb = int(rng.integers(2, 60))
            Tb, hb, pos0 = _random_bins(rng, nb, P, trial)
            M = Tb @ D[pos0, :] + hb[:, None] * axes.host[None, :]
            want, occ_w = pos0.copy(), np.full(P, -1, np.int64)
            occ_w[want] = np.arange(nb)
            _swap_reference(M, Tb, D, want, occ_w, 10)
            got, occ = pos0.copy(), np.full(P, -1, np.int64)
            occ[got] = np.arange(nb)
            S = sp.csr_matrix(Tb)
            refine_bins(BinGraph(S.indptr, S.indices, S.data, hb), axes, got, occ, 10, 10**12)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(occ, occ_w)
            assert not np.array_equal(got, pos0)  # it moved something
            assert _cost(Tb, hb, D, axes.host, got) < _cost(Tb, hb, D, axes.host, pos0)


def test_refinement_stops_at_its_budget_and_only_improves() -> None:
    rng = np.random.default_rng(2)
    hw = neurochip.load_hw("loihi_like_2chip")
    axes, D = _axes(hw)
    P = hw.n_cores
    Tb, hb, pos0 = _random_bins(rng, 120, P, 1)
    S = sp.csr_matrix(Tb)
    g = BinGraph(S.indptr, S.indices, S.data, hb)
    costs, spent = [], []
    for budget in (0, 20_000, 200_000, 10**12):
        pos, occ = pos0.copy(), np.full(P, -1, np.int64)
        occ[pos] = np.arange(pos.size)
        spent.append(refine_bins(g, axes, pos, occ, 10, budget))
        assert np.array_equal(occ[pos], np.arange(pos.size))  # still a placement
        assert np.count_nonzero(occ >= 0) == pos.size
        costs.append(_cost(Tb, hb, D, axes.host, pos))
    assert costs[0] == _cost(Tb, hb, D, axes.host, pos0)  # no budget: no move
    assert costs[0] > costs[1] >= costs[2] >= costs[3]
    assert spent[1] < spent[2] < spent[3]


def test_strongest_edges_keeps_the_heaviest_of_every_row() -> None:
    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        A = sp.random(n, n, density=float(rng.uniform(0, 0.8)), random_state=trial,
                      format="csr")
        A.data = np.rint(A.data * 4)  # ties
        k = int(rng.integers(0, 8))
        keep = strongest_edges(A.indptr, A.data, k)
        for r in range(n):
            a, b = A.indptr[r], A.indptr[r + 1]
            want = np.zeros(b - a, bool)
            want[np.argsort(-A.data[a:b], kind="stable")[:k]] = True
            np.testing.assert_array_equal(keep[a:b], want)


def test_core_axons_equal_a_unique_over_pre_and_core() -> None:
    rng = np.random.default_rng(4)
    for trial in range(30):
        n = int(rng.integers(0, 400))
        pre = np.sort(rng.integers(0, 50, n)).astype(np.int64)
        chunk = rng.integers(0, 40, n).astype(np.int64)
        cnt = rng.integers(1, 9, n).astype(np.int64)
        chunk_core = rng.integers(0, int(rng.integers(1, 30)), 40).astype(np.int64)
        if trial % 3 == 0:  # wide groups (the sort path)
            pre = np.sort(rng.integers(0, 3, n)).astype(np.int64)
        key, inv = np.unique(pre * 100 + chunk_core[chunk], return_inverse=True)
        want_n = np.bincount(inv.reshape(-1), weights=cnt, minlength=key.size)
        j, k, c = core_axons(pre, chunk, cnt, chunk_core)
        np.testing.assert_array_equal(j, key // 100)
        np.testing.assert_array_equal(k, key % 100)
        np.testing.assert_array_equal(c, want_n.astype(np.int64))
    with pytest.raises(ValueError, match="grouped by pre"):
        core_axons(np.array([2, 1]), np.array([0, 0]), np.array([1, 1]), np.array([0]))
