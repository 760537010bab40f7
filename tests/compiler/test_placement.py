"""Placement, routing and the named design rules (on the 4-core test chip)."""

import numpy as np
import pytest
import scipy.sparse as sp

import neurochip
from compiler.passes.mapping import Mapping, partition, place, route
from compiler.passes.rules import RULES, check_rules
from compiler.pipeline import MAPPING_PASSES
from neurochip.core.errors import PlacementError


def net_with(n_in: int, n_out: int, w=None, storage="auto") -> neurochip.Network:
    net = neurochip.Network(name="p")
    net.add_input("in", n_in)
    net.add_lif("out", n_out, du=0, dv=0, vth=10)
    net.connect("in", "out", np.full((n_out, n_in), 2) if w is None else w, storage=storage)
    return net


def test_pass_list_is_named() -> None:
    assert [n for n, _ in MAPPING_PASSES] == [
        "check_ranges", "partition", "place", "route", "check_rules"]
    assert {r.__name__ for r in RULES} == {
        "rule_neurons_per_core", "rule_synapse_memory", "rule_input_axons", "rule_output_axons"}


def test_population_split_evenly_by_neuron_limit() -> None:
    img = neurochip.compile(net_with(20, 100), "tiny4")
    (sl,) = [p.slices for p in img.lif_populations]
    assert sl == [[0, 0, 50], [1, 50, 50]]
    assert [c.neurons for c in img.cores] == [50, 50]
    assert [c.synapse_bits for c in img.cores] == [50 * 20 * 8] * 2
    assert [c.input_axons for c in img.cores] == [20, 20]


def test_population_split_by_synapse_memory() -> None:
    # 200 dense inputs x 8 bits = 1600 bits per neuron; 4 KiB holds 20 neurons.
    img = neurochip.compile(net_with(200, 60), "tiny4")
    assert [c.neurons for c in img.cores] == [20, 20, 20]
    assert all(c.synapse_bits <= 32768 for c in img.cores)


def test_sparse_fan_in_split_by_input_axons() -> None:
    rng = np.random.default_rng(1)
    n_in, n_out = 1000, 60
    rows = np.repeat(np.arange(n_out), 8)
    cols = rng.integers(0, n_in, rows.size)
    W = sp.csr_matrix((np.full(rows.size, 2), (rows, cols)), shape=(n_out, n_in))
    img = neurochip.compile(net_with(n_in, n_out, W, "sparse"), "tiny4")
    assert len(img.cores) >= 2
    assert all(c.input_axons <= 256 for c in img.cores)
    # every synapse is accounted for: weight 8 + index 6 bits (64 neurons per core)
    assert sum(c.synapse_bits for c in img.cores) == W.nnz * (8 + 6)


def test_small_populations_share_a_core() -> None:
    net = neurochip.Network()
    net.add_input("in", 4)
    for i in range(3):
        net.add_lif(f"p{i}", 10, du=0, dv=0, vth=10)
        net.connect("in", f"p{i}", np.full((10, 4), 2))
    img = neurochip.compile(net, "tiny4")
    assert [c.core for c in img.cores] == [0]
    assert img.cores[0].populations == ["p0", "p1", "p2"]


def test_dense_fan_in_over_axon_limit_names_rule_population_and_excess() -> None:
    with pytest.raises(PlacementError) as ei:
        neurochip.compile(net_with(300, 4), "tiny4")
    err = ei.value
    assert err.rule == "input_axons" and err.where == "population 'out'"
    assert "300" in str(err) and "256" in str(err) and "over by 44" in str(err)
    assert "in->out" in str(err)


def test_network_larger_than_chip_says_by_how_much() -> None:
    net = neurochip.Network()
    net.add_input("in", 4)
    for i in range(5):
        net.add_lif(f"p{i}", 64, du=0, dv=0, vth=10)
        net.connect("in", f"p{i}", np.full((64, 4), 2))
    with pytest.raises(PlacementError) as ei:
        neurochip.compile(net, "tiny4")
    assert ei.value.rule == "core_count"
    assert "needs 5 cores but 'tiny4' has 4 (over by 1)" in str(ei.value)
    assert "p4" in str(ei.value)


def _fan_out_net() -> neurochip.Network:
    net = neurochip.Network()
    net.add_input("in", 2)
    net.add_lif("a", 64, du=0, dv=0, vth=10)
    net.connect("in", "a", np.full((64, 2), 2))
    for i in range(3):
        net.add_lif(f"b{i}", 10, du=0, dv=0, vth=10)
        for k in range(2):
            net.connect("a", f"b{i}", np.full((10, 64), 2), name=f"a-b{i}-{k}")
    return net


def test_fan_out_splits_the_source_population() -> None:
    # each neuron of 'a' spends 6 output axons (2 connections to each of 3 layers): 64 of
    # them need 384 > 256 on one core, so partition cuts 'a' by output axons too.
    img = neurochip.compile(_fan_out_net(), "tiny4")
    (a,) = [p for p in img.lif_populations if p.name == "a"]
    assert len(set(a.cores)) == 2
    assert all(c.output_axons <= 256 for c in img.cores)
    assert sum(c.output_axons for c in img.cores) == 64 * 6


def test_output_axon_rule_reports_a_neuron_over_the_limit(tmp_path) -> None:
    (tmp_path / "fan5.yaml").write_text(
        "extends: tiny4\nname: fan5\ncore:\n  max_output_axons: 5\n")
    hw = neurochip.load_hw(tmp_path / "fan5.yaml")
    m = Mapping(_fan_out_net(), hw)
    for _, fn in MAPPING_PASSES[:-1]:
        m = fn(m)
    with pytest.raises(PlacementError) as ei:
        check_rules(m)
    err = ei.value
    assert err.rule == "output_axons" and err.where == "population 'a'"
    assert "needs 6 output axons but a core has 5 (over by 1)" in str(err)
    assert "Suggestion:" in str(err)
    assert len(err.violations) == 1  # type: ignore[attr-defined]


def test_routing_tables_count_axons_and_synapses() -> None:
    rng = np.random.default_rng(0)
    W = np.where(rng.random((100, 5)) < 0.3, 2, 0)
    net = net_with(5, 100, W, "sparse")
    m = route(place(partition(Mapping(net, neurochip.load_hw("tiny4")))))
    r = m.routing
    assert r is not None and m.core_of is not None
    for j in range(5):
        entries = {int(c): int(n) for c, n in zip(r.core[r.ptr[j]: r.ptr[j + 1]],
                                                 r.nsyn[r.ptr[j]: r.ptr[j + 1]])}
        expect: dict[int, int] = {}
        for i in np.flatnonzero(W[:, j]):
            expect[int(m.core_of[i])] = expect.get(int(m.core_of[i]), 0) + 1
        assert entries == expect
    assert int(m.usage["input_axons"].sum()) == r.core.size


def test_two_chip_board_places_beyond_one_chip() -> None:
    net = neurochip.Network()
    net.add_input("in", 64)
    net.add_lif("big", 130 * 1024, du=0, dv=0, vth=10)
    net.connect("in", "big", np.full((130 * 1024, 64), 2))
    with pytest.raises(PlacementError, match="core_count"):
        neurochip.compile(net, "loihi_like")
    img = neurochip.compile(net, "loihi_like_2chip")
    assert len(img.cores) == 130 and max(img.used_cores) == 129
