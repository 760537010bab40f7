"""Per-layer and per-core breakdowns: sums equal the run's totals, exact where one layer
holds a core, and hand-counted on the three-core network."""

import numpy as np
import pytest

import neurochip
from neurochip.core.errors import EmulatorInputError
from neurochip.core.results import BREAKDOWN_FIELDS


def _net(shared: bool) -> neurochip.ChipImage:
    rng = np.random.default_rng(3)
    net = neurochip.Network()
    net.add_input("in", 20)
    net.add_lif("A", 30, du=4095, dv=0, vth=40)
    net.add_lif("B", 30 if shared else 60, du=4095, dv=1024, vth=30)
    net.add_lif("C", 8, du=4095, dv=4096, vth=10)
    net.connect("in", "A", rng.integers(0, 9, (30, 20)) * 2)
    net.connect("A", "B", rng.integers(-4, 9, (30 if shared else 60, 30)) * 2,
                storage="sparse")
    net.connect("B", "C", rng.integers(-4, 9, (8, 30 if shared else 60)) * 2)
    net.connect("B", "B", np.where(rng.random((30 if shared else 60,) * 2) < 0.1, 6, 0),
                storage="sparse")
    return neurochip.compile(net, "loihi_like" if shared else "tiny4", placement="greedy")


def three_core_net() -> neurochip.ChipImage:
    """in -> A (core 0, tile 0) -> C (core 2, tile 1); B idles on core 1 (as in
    tests/emulator/test_timing.py)."""
    net = neurochip.Network()
    net.add_input("in", 1)
    for name in "ABC":
        net.add_lif(name, 64, du=4095, dv=4096, vth=100)
    w = np.zeros((64, 1), int)
    w[0, 0] = 200
    net.connect("in", "A", w, storage="dense")
    net.connect("A", "C", np.full((64, 64), 2))
    return neurochip.compile(net, "tiny4", placement="greedy")


@pytest.mark.parametrize("shared", [True, False])
def test_breakdown_sums_equal_the_totals(shared: bool) -> None:
    img = _net(shared)
    x = np.random.default_rng(0).random((2, 25, 20)) < 0.3
    r = neurochip.Emulator(img).run({"in": x}, breakdown=True)
    bd = r.breakdown
    assert bd is not None
    t = r.totals()
    for rows in (bd.layers, bd.cores):
        assert all(set(BREAKDOWN_FIELDS) <= set(v) for v in rows.values())
        assert sum(v["syn_ops"] for v in rows.values()) == pytest.approx(t["syn_ops"])
        assert sum(v["messages"] for v in rows.values()) == pytest.approx(t["messages"])
        assert sum(v["hops"] for v in rows.values()) == pytest.approx(
            t["hops_ew"] + t["hops_ns"])
        assert sum(v["energy_pj"] for v in rows.values()) == pytest.approx(t["energy_pj"])
        assert sum(v["time_share"] for v in rows.values()) == pytest.approx(1.0)
    lif = sum(v["spikes"] for k, v in bd.layers.items() if k != "in")
    assert lif == pytest.approx(t["spikes_out"])
    assert bd.layers["in"]["spikes"] == pytest.approx(x.sum() / 2)
    for name in "ABC":  # spikes per layer are the recorded ones
        assert bd.layers[name]["spikes"] == pytest.approx(r.spikes[name].sum() / 2)
    assert sum(v["slowest_steps"] for v in bd.cores.values()) == 25


def test_layer_rows_equal_core_rows_where_one_layer_holds_each_core() -> None:
    img = _net(False)
    by_core = {p.name: p.cores for p in img.lif_populations}
    assert all(len(set(c)) == 1 for c in by_core.values())  # tiny4: one core per layer
    assert len({c[0] for c in by_core.values()}) == 3
    x = np.random.default_rng(1).random((30, 20)) < 0.3
    r = neurochip.Emulator(img).run({"in": x}, breakdown=True)
    bd = r.breakdown
    assert bd is not None
    for name, cores in by_core.items():
        row, core = bd.layers[name], bd.cores[cores[0]]
        for f in ("syn_ops", "spikes", "messages", "neuron_updates"):
            assert row[f] == pytest.approx(core[f]), (name, f)
        # a core's energy also holds the hops of host messages it receives (charged to
        # the input layer), so compare after taking those out
        host_hops = 0.0
        if name == "A":
            host_hops = bd.layers["in"]["energy_pj"]
        assert row["energy_pj"] + host_hops == pytest.approx(core["energy_pj"])


def test_hand_counted_breakdown() -> None:
    """three_core_net (tests/emulator/test_timing.py): one host spike, A0 fires once."""
    r = neurochip.Emulator(three_core_net()).run({"in": np.eye(3, 1, dtype=bool)},
                                                 breakdown=True)
    bd = r.breakdown
    assert bd is not None
    assert bd.layers["A"]["syn_ops"] == 64 and bd.layers["C"]["syn_ops"] == 64
    assert bd.layers["A"]["spikes"] == 1 and bd.layers["A"]["messages"] == 1
    assert bd.layers["A"]["hops"] == 1 and bd.layers["in"]["messages"] == 0
    assert bd.layers["B"]["syn_ops"] == 0 and bd.layers["B"]["neuron_updates"] == 64 * 3
    # cycles per step (test_timing): core 0 is the slowest in step 0, core 2 in steps 1, 2
    assert bd.slowest_core == 2 and bd.cores[2]["slowest_steps"] == 2
    assert bd.cores[0]["slowest_steps"] == 1
    assert bd.busiest_port[2] == 1
    assert "per layer" in bd.table() and "busiest router port" in bd.table()


def test_breakdown_needs_every_layer_recorded() -> None:
    img = _net(True)
    with pytest.raises(EmulatorInputError, match="spikes of every LIF population"):
        neurochip.Emulator(img).run({"in": np.zeros((3, 20), bool)}, spikes=["A"],
                                    breakdown=True)
