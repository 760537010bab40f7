"""Mapping onto many cores: partition by every per-core resource (spatial tiles for
convolutions, fan-out), traffic-aware placement against next-fit, every problem reported at
once, and networks spread over several chips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import neurochip
from compiler.ir import Conv
from compiler.passes import mapping as mp
from compiler.passes.mapping import Mapping, mapping_traffic, partition, place, route
from neurochip.commands.inspect_cmd import traffic
from neurochip.core.errors import ConfigError, PlacementError
from neurochip.testing import random_network

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


def _hw(base: str, **sections: dict[str, object]) -> neurochip.HardwareSpec:
    """``base`` with some fields of its mesh/core sections changed."""
    d = neurochip.load_hw(base).to_dict()
    for sec, fields in sections.items():
        d[sec].update(fields)
    d["name"] = f"{base}_variant"
    return neurochip.HardwareSpec.from_dict(d)


def _map(net: neurochip.Network, hw: str | neurochip.HardwareSpec, placement: str = "traffic",
         **opts: object) -> Mapping:
    m = Mapping(net, neurochip.load_hw(hw), options={"placement": placement, **opts})
    return route(place(partition(m)))


# --------------------------------------------------------------------------------------
# partition
# --------------------------------------------------------------------------------------


def test_chunk_counting_equals_sorting_on_random_cuts() -> None:
    """The O(synapses) counts of input axons per chunk equal a brute-force np.unique."""
    rng = np.random.default_rng(3)
    hw = neurochip.load_hw("tiny4")
    for trial in range(20):
        n_post, n_pre = int(rng.integers(5, 300)), int(rng.integers(5, 300))
        W = sp.random(n_post, n_pre, density=float(rng.uniform(0.01, 0.3)), random_state=trial,
                      format="csr", data_rvs=lambda k: np.full(k, 3.0)).astype(np.int64)
        net = neurochip.Network()
        net.add_input("in", n_pre)
        pop = net.add_lif("out", n_post, du=0, dv=0, vth=10)
        net.connect("in", "out", W, storage="sparse")
        order = rng.permutation(n_post) if trial % 2 else None
        cut = mp._make_cut(pop, mp._incoming(net, pop), hw, order)
        s = int(rng.integers(1, n_post + 1))
        mem, ax, _ = mp._usage(cut, s, None)
        rank = np.empty(n_post, np.int64)
        rank[order if order is not None else np.arange(n_post)] = np.arange(n_post)
        rows = np.repeat(np.arange(n_post), np.diff(W.indptr))
        ch = rank[rows] // s
        k = -(-n_post // s)
        want_ax = np.bincount(np.unique(ch * n_pre + W.indices) // n_pre, minlength=k)
        want_mem = np.bincount(ch, minlength=k) * (8 + hw.index_bits)
        np.testing.assert_array_equal(ax, want_ax)
        np.testing.assert_array_equal(mem, want_mem)


def test_routing_from_the_partition_equals_routing_from_the_synapses() -> None:
    """route's fast path (the partition's axons) builds the same tables and usage as a
    pass over every synapse."""
    from dataclasses import replace

    cases = [(random_network(seed, "tiny4", max_size=45), "tiny4") for seed in range(6)]
    cases.append((_conv_net(c_in=2, c_out=8, hw_=32), "loihi_like"))
    multi = 0
    for net, hw in cases:
        m = place(partition(Mapping(net, neurochip.load_hw(hw))))
        multi += len(set(m.core_of.tolist())) > 1
        fast = route(m)
        slow = route(replace(m, chunk_core=None))
        for f in ("ptr", "core", "nsyn", "conn"):
            np.testing.assert_array_equal(getattr(fast.routing, f), getattr(slow.routing, f))
        for k in fast.usage:
            np.testing.assert_array_equal(fast.usage[k], slow.usage[k])
    assert multi >= 4


def _conv_net(c_in: int = 2, c_out: int = 16, hw_: int = 32, seed: int = 0
              ) -> neurochip.Network:
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 5, (c_out, c_in, 3, 3))
    conv = Conv(w, (c_in, hw_, hw_), padding=((1, 1), (1, 1)))
    net = neurochip.Network(name="conv")
    net.add_input("img", c_in * hw_ * hw_)
    net.add_lif("c1", c_out * hw_ * hw_, du=0, dv=0, vth=3)
    net.connect("img", "c1", sp.csr_matrix(conv.to_csr()).astype(np.int64), storage="sparse")
    return net


def test_convolution_is_tiled_spatially() -> None:
    # 16 x 32 x 32 outputs: 16 chunks of 1024 neurons. Cut in index order each chunk would
    # be one whole channel and need the whole input (2048 axons); as spatial tiles each is
    # 2 rows of positions with all 16 channels and needs a 4-row halo of both channels.
    m = _map(_conv_net(), "loihi_like")
    chunks = m.chunks["c1"]
    assert len(chunks) == 16
    for i, ch in enumerate(chunks):
        idx = ch.indices()
        pos, chan = idx % 1024, idx // 1024
        assert set(chan.tolist()) == set(range(16))
        assert set(pos.tolist()) == set(range(64 * i, 64 * (i + 1)))
        assert ch.input_axons <= 2 * 4 * 32
    assert max(m.usage["input_axons"]) <= 256
    # the image lists every run of the tile as a slice on the chunk's core
    p = m.slices["c1"]
    assert sum(n for _, _, n in p) == 16 * 1024
    assert len({c for c, _, _ in p}) == 16


def test_tiled_convolution_runs_like_the_index_order() -> None:
    """Tiles change where neurons live, never what they compute: spikes are identical
    under next-fit and traffic placement, and identical to the reference model."""
    net = _conv_net(c_in=2, c_out=4, hw_=16)
    x = np.random.default_rng(1).random((12, 2 * 256)) < 0.3
    hw = _hw("tiny4", core={"max_neurons": 256, "synapse_memory_bits": 1 << 17})
    a = neurochip.compile(net, hw, placement="traffic")
    b = neurochip.compile(net, hw, placement="greedy")
    assert len(a.cores) == 4
    assert any(len(p.slices) > len(set(p.cores)) for p in a.lif_populations)  # tiles
    ra = neurochip.Emulator(a).run({"img": x})
    rb = neurochip.Emulator(b).run({"img": x})
    rr = neurochip.Emulator(a, backend="reference").run({"img": x})
    assert ra.spikes["c1"].sum() > 0
    np.testing.assert_array_equal(ra.spikes["c1"], rb.spikes["c1"])
    np.testing.assert_array_equal(ra.spikes["c1"], rr.spikes["c1"])


def test_fan_out_limit_splits_the_source_of_a_wide_projection() -> None:
    # 'src' (40) projects to 5 layers of 64 (one core each): 5 axons per neuron, 200 per
    # core; with 128 output axons per core 'src' must be cut in two.
    hw = _hw("tiny4", core={"max_output_axons": 128}, mesh={"tiles_x": 4})
    net = neurochip.Network()
    net.add_input("in", 4)
    net.add_lif("src", 40, du=0, dv=0, vth=10)
    net.connect("in", "src", np.full((40, 4), 2))
    for i in range(5):
        net.add_lif(f"t{i}", 64, du=0, dv=0, vth=10)
        net.connect("src", f"t{i}", np.full((64, 40), 2))
    m = _map(net, hw)
    assert [c.count for c in m.chunks["src"]] == [20, 20]
    assert [c.output_axons for c in m.chunks["src"]] == [100, 100]
    assert max(m.usage["output_axons"]) <= 128
    img = neurochip.compile(net, hw)
    assert all(c.output_axons <= 128 for c in img.cores)


# --------------------------------------------------------------------------------------
# every problem at once
# --------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    net = neurochip.Network(name="mlp")
    net.add_input("in", 64)
    net.add_lif("hid", 400, du=0, dv=0, vth=10)
    net.add_lif("out", 10, du=0, dv=0, vth=10)
    net.connect("in", "hid", np.full((400, 64), 2))
    net.connect("hid", "out", np.full((10, 400), 2))
    with pytest.raises(PlacementError) as ei:
        neurochip.compile(net, "tiny4")
    err = ei.value
    text = str(err)
    found = err.violations  # type: ignore[attr-defined]
    assert [v.rule for v in found] == ["input_axons", "core_count"]
    # the first problem keeps the error's fields
    assert (err.rule, err.where, err.value, err.limit) == ("input_axons", "population 'out'",
                                                           400, 256)
    assert "2 problems" in text
    assert "needs 400 input axons but a core has 256 (over by 144" in text
    assert "population 'hid' (400 neurons) needs 7 of 4 cores" in text
    assert "the network needs 8 cores but 'tiny4' has 4" in text
    assert text.count("Suggestion:") == 2 and "loihi_like_2chip" in text


def test_memory_and_axon_problems_of_several_layers_are_all_listed() -> None:
    net = neurochip.Network()
    net.add_input("in", 300)
    net.add_lif("a", 8, du=0, dv=0, vth=10)
    net.add_lif("b", 8, du=0, dv=0, vth=10)
    net.connect("in", "a", np.full((8, 300), 2))
    W = sp.csr_matrix(np.full((8, 300), 2))
    net.connect("in", "b", W, storage="sparse")
    hw = _hw("tiny4", core={"synapse_memory_bits": 4096})
    with pytest.raises(PlacementError) as ei:
        neurochip.compile(net, hw)
    rules = [(v.rule, v.where) for v in ei.value.violations]  # type: ignore[attr-defined]
    assert ("input_axons", "population 'a'") in rules
    assert ("input_axons", "population 'b'") in rules
    assert ("synapse_memory", "population 'b'") in rules  # 300 x (8 + 6) bits > 4096
    assert "fewer weight bits" in str(ei.value)


def test_a_layer_projecting_onto_itself_is_not_cut_without_end() -> None:
    # all-to-all recurrence: every cut adds an axon to each neuron, so cutting by output
    # axons cannot help; the cut stops and the cores over the limit are reported, grouped.
    net = neurochip.Network()
    net.add_input("in", 4)
    net.add_lif("r", 120, du=0, dv=0, vth=10)
    net.connect("in", "r", np.full((120, 4), 2))
    net.connect("r", "r", np.full((120, 120), 1), storage="sparse")
    hw = _hw("tiny4", core={"max_output_axons": 100, "synapse_memory_bits": 1 << 20,
                            "max_input_axons": 1024}, mesh={"tiles_x": 8})
    with pytest.raises(PlacementError) as ei:
        neurochip.compile(net, hw)
    found = ei.value.violations  # type: ignore[attr-defined]
    assert {v.rule for v in found} == {"output_axons"}
    assert len(found) == 2  # 2 chunks of 60 neurons, each sending 120 axons
    assert ei.value.rule == "output_axons" and ei.value.where == "core 0"
    assert "rule 'output_axons' on 2 cores (0, 1) of r: up to 120 > 100 (over by 20)" in \
        str(ei.value)


def _block_network(n: int, fanout: int, seed: int = 0, block: int = 1024) -> neurochip.Network:
    """n LIF neurons, each with `fanout` targets inside a random block of `block`
    neurons: spread traffic (every chunk talks to most others), fan-in inside a core's
    input axons."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, n - block + 1, n)[:, None]
    mult = rng.integers(0, block // 2, n)[:, None] * 2 + 1  # odd: distinct targets
    post = start + (mult * np.arange(fanout) + rng.integers(0, block, n)[:, None]) % block
    W = sp.csr_matrix((np.full(n * fanout, 2, np.int64),
                       (post.reshape(-1), np.repeat(np.arange(n), fanout))), shape=(n, n))
    net = neurochip.Network(name=f"block{n}")
    net.add_lif("pop", n, du=2048, dv=256, vth=100, bias_mant=60, bias_exp=3)
    net.connect("pop", "pop", W, storage="sparse")
    return net


def test_a_cut_that_cannot_win_is_given_up_early_and_only_then(monkeypatch) -> None:
    """The cut in input order is sized with a bound (the index-order cut's chunks): it is
    given up exactly when sizing it fully would need more chunks, and then without a full
    pass over the synapses; otherwise it is sized as without the bound."""
    hw = neurochip.load_hw("loihi_like")
    full_passes: list[int] = []
    count = mp.chunk_axons

    def spy(indptr, indices, n_pre, order, s):  # type: ignore[no-untyped-def]
        if order is None or len(order) == len(indptr) - 1:
            full_passes.append(s)
        return count(indptr, indices, n_pre, order, s)

    monkeypatch.setattr(mp, "chunk_axons", spy)
    for net, name in ((_conv_net(), "c1"), (_block_network(20_000, 20), "pop")):
        pop = net.population(name)
        conns = mp._incoming(net, pop)
        order = mp._locality_order(pop, conns)
        assert order is not None
        full = mp._make_cut(pop, conns, hw, order)
        assert mp._size(full, hw, None, set())
        for max_k in (full.k - 1, full.k, full.k + 3):
            cut = mp._make_cut(pop, conns, hw, order)
            full_passes.clear()
            fits = mp._size(cut, hw, None, set(), max_k=max_k)
            assert fits == (full.k <= max_k)
            if fits:
                assert (cut.s, cut.k) == (full.s, full.k)
                np.testing.assert_array_equal(cut.ax, full.ax)
    # the bound partition uses, the index-order cut's chunks, is far below what the spread
    # network needs in input order: one chunk's synapses are read, not all of them
    net = _block_network(20_000, 20)
    pop = net.population("pop")
    conns = mp._incoming(net, pop)
    index = mp._make_cut(pop, conns, hw, None)
    assert mp._size(index, hw, None, set())
    cut = mp._make_cut(pop, conns, hw, mp._locality_order(pop, conns))
    full_passes.clear()
    assert not mp._size(cut, hw, None, set(), max_k=index.k)
    assert not full_passes
    # the conv layer is cut into spatial tiles; the spread network keeps its index order
    assert mp.partition(Mapping(_block_network(20_000, 20), hw)).chunks["pop"][0].neurons is None


# --------------------------------------------------------------------------------------
# placement
# --------------------------------------------------------------------------------------


def _branches(n: int = 2048, n_in: int = 16, w: int = 2, vth: int = 10) -> neurochip.Network:
    """Four branches in -> B_i -> D_i, declared B1..B4 then D1..D4."""
    net = neurochip.Network(name="bd")
    net.add_input("in", n_in)
    for i in range(1, 5):
        net.add_lif(f"B{i}", n, du=0, dv=4095, vth=vth)
        net.connect("in", f"B{i}", np.full((n, n_in), w))
    for i in range(1, 5):
        net.add_lif(f"D{i}", n, du=0, dv=4095, vth=vth)
        net.connect(f"B{i}", f"D{i}", sp.identity(n, dtype=np.int64, format="csr") * w,
                    storage="sparse")
    return net


def test_traffic_placement_beats_next_fit_by_five_on_branches() -> None:
    net = _branches()
    g = _map(net, "loihi_like", "greedy")
    t = _map(net, "loihi_like", "traffic")
    hg, ht = mapping_traffic(g)["hops_per_step"], mapping_traffic(t)["hops_per_step"]
    assert t.placement["method"] == "traffic"
    assert t.placement["hops_per_step"] == ht  # the estimate is the routed figure
    assert g.placement["hops_per_step"] == hg
    assert ht * 5 <= hg
    assert len(np.unique(t.core_of)) == len(np.unique(g.core_of)) == 16
    # deterministic (METIS runs with a fixed seed)
    np.testing.assert_array_equal(_map(net, "loihi_like").core_of, t.core_of)


def test_measured_hops_follow_the_estimate() -> None:
    """On the emulator, with every source spiking, the hop counters equal the estimate."""
    net = _branches(n=1024, n_in=8, w=255, vth=1)
    x = np.ones((4, 8), bool)
    figures = {}
    for pl in ("greedy", "traffic"):
        img = neurochip.compile(net, "loihi_like", placement=pl)
        r = neurochip.Emulator(img).run({"in": x})
        c = r.counters
        hops = (c["hops_ew"] + c["hops_ns"]).sum(axis=1)
        spiked = {p: r.spikes[p].sum(axis=1) for p in r.spikes}
        assert all(v[1:].min() == 1024 for k, v in spiked.items() if k.startswith("B"))
        est = traffic(img)["hops_per_step"]
        # step >= 1: inputs and every B neuron spike each step, D has no targets
        assert hops[1] == est
        figures[pl] = hops[1]
    assert figures["traffic"] * 5 <= figures["greedy"]


def test_greedy_is_the_old_next_fit_and_ties_keep_it() -> None:
    net = neurochip.Network()
    net.add_input("in", 4)
    for i in range(3):
        net.add_lif(f"p{i}", 40, du=0, dv=0, vth=10)
        net.connect("in", f"p{i}", np.full((40, 4), 2))
    g = neurochip.compile(net, "tiny4", placement="greedy")
    t = neurochip.compile(net, "tiny4")
    assert [p.slices for p in g.lif_populations] == [[[0, 0, 40]], [[1, 0, 40]], [[2, 0, 40]]]
    # host traffic only, all cores in tile 0 or 1: next-fit is optimal, so kept as is
    assert t.equals(g)
    with pytest.raises(ConfigError, match="placement"):
        neurochip.compile(net, "tiny4", placement="metis")


def _hops(img: neurochip.ChipImage) -> float:
    return float(traffic(img)["hops_per_step"])


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.nir")) + sorted(
    (GOLDEN / "exporters").glob("*.nir")) + [ROOT / "neurochip" / "data" / "digits.nir"],
    ids=lambda p: p.stem)
def test_never_more_hops_than_next_fit_on_bundled_models(path: Path) -> None:
    opts: dict[str, Any] = {"dt": 1e-3} if "norse" in path.name else {}
    if "snntorch" in path.name:
        opts["reset"] = "subtract"  # what they were trained with; the file does not say
    g = neurochip.compile(path, "loihi_like", placement="greedy", **opts)
    t = neurochip.compile(path, "loihi_like", **opts)
    assert _hops(t) <= _hops(g)
    if _hops(t) == _hops(g):
        assert t.equals(g)


def test_never_more_hops_than_next_fit_on_random_networks() -> None:
    compiled = 0
    for seed in range(12):
        net = random_network(seed, "tiny4", max_size=45)
        try:
            g = neurochip.compile(net, "tiny4", placement="greedy")
        except PlacementError:
            continue
        compiled += 1
        t = neurochip.compile(net, "tiny4")
        assert _hops(t) <= _hops(g)
        if _hops(t) == _hops(g):  # next-fit is optimal on most of these: kept as it is
            assert t.equals(g)
    assert compiled >= 8


def test_calibration_rates_weight_the_traffic() -> None:
    net = _branches(n=1024, n_in=8)
    hot = {"in": 0.5, "B1": 1.0, "B2": 1.0, "B3": 0.0, "B4": 0.0}
    m = _map(net, "loihi_like", rates=hot)
    r = mp.source_rates(m)
    assert r.size == 8 + 8 * 1024 and r[0] == 0.5
    # D populations not given get the mean of the given rates
    assert r[-1] == pytest.approx(np.mean([0.5] * 8 + [1.0] * 2048 + [0.0] * 2048))
    with pytest.raises(ConfigError, match="rates"):
        _map(net, "loihi_like", rates={"nope": 1.0})
    with pytest.raises(ConfigError, match="rates"):
        _map(net, "loihi_like", rates={"B1": -1.0})


def test_spread_traffic_over_many_cores_is_placed_no_worse_than_next_fit(monkeypatch) -> None:
    """A network whose chunks all talk to each other: METIS is given each chunk's heaviest
    links only, the refinement stops at its budget; the placement is valid, deterministic
    and has no more hops than next-fit."""
    net = _block_network(150_000, 12, seed=1)
    hw = "loihi_like_2chip"
    g = _map(net, hw, "greedy")
    t = _map(net, hw)
    T, _ = mp._chunk_graph(t, mp._chunk_of_source(t)[0], len(t.all_chunks()), mp.source_rates(t))
    assert int(np.diff(T.indptr).max()) > mp.METIS_LINKS
    assert mapping_traffic(t)["hops_per_step"] <= mapping_traffic(g)["hops_per_step"]
    assert t.placement["hops_per_step"] == mapping_traffic(t)["hops_per_step"]
    img = neurochip.compile(net, hw)  # the rules pass; the same placement again
    np.testing.assert_array_equal(img.arrays["neurons/core"], t.core_of)
    monkeypatch.setattr(mp, "REFINE_BUDGET", 50_000)
    small = _map(net, hw)
    assert not np.array_equal(small.core_of, t.core_of)  # stopped early
    assert mapping_traffic(small)["hops_per_step"] <= mapping_traffic(g)["hops_per_step"]
    for m in (t, small):
        assert np.unique(m.core_of).size == np.unique(g.core_of).size


# --------------------------------------------------------------------------------------
# several chips
# --------------------------------------------------------------------------------------


def test_network_larger_than_one_chip_spreads_over_two() -> None:
    net = _branches(n=17 * 1024, n_in=4)  # 136 cores of B and D: more than one chip
    with pytest.raises(PlacementError, match="core_count"):
        neurochip.compile(net, "loihi_like")
    t = _map(net, "loihi_like_2chip")
    g = _map(net, "loihi_like_2chip", "greedy")
    cores = np.unique(t.core_of)
    assert cores.size == 136 and cores.max() >= 128
    rt, rg = mapping_traffic(t), mapping_traffic(g)
    # next-fit puts D4's end on chip 1, away from its B: those spikes cross the link
    assert rg["chip_links_per_step"] > 0
    assert t.placement["chip_links_per_step"] == rt["chip_links_per_step"]
    assert rt["chip_links_per_step"] <= rg["chip_links_per_step"]
    assert rt["hops_per_step"] <= rg["hops_per_step"]


def test_mesh_of_three_chips_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "tri.yaml").write_text(
        "extends: tiny4\nname: tiny4x3\nmesh:\n  chips: 3\ntiming:\n  chip_link_ns: 41.0\n")
    hw = neurochip.load_hw(tmp_path / "tri.yaml")
    assert hw.n_cores == 12
    net = neurochip.Network()
    net.add_input("in", 8)
    net.add_lif("a", 64 * 5, du=0, dv=0, vth=10)
    net.add_lif("b", 64 * 5, du=0, dv=0, vth=10)
    net.connect("in", "a", np.full((320, 8), 2))
    net.connect("a", "b", sp.identity(320, dtype=np.int64, format="csr") * 2,
                storage="sparse")
    img = neurochip.compile(net, hw)
    chips = {hw.core_position(c)[0] for c in img.used_cores}
    assert chips == {0, 1, 2}
    rep = traffic(img)
    assert rep["chip_links_per_step"] > 0
    greedy = neurochip.compile(net, hw, placement="greedy")
    assert rep["chip_links_per_step"] <= traffic(greedy)["chip_links_per_step"]
    assert "chip link" in traffic(greedy)["busiest_link"]["link"] or \
        traffic(greedy)["busiest_link"]["messages_per_step"] > 0
