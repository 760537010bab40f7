"""Cycle, latency and energy accounting checked against hand-counted cases."""

import numpy as np
import pytest
from numpy.typing import NDArray

import neurochip
from emulator.timing import CostModel, MessagePlan, schedule_latency


def three_core_net() -> neurochip.ChipImage:
    """in -> A (core 0, tile 0) -> C (core 2, tile 1); B idles on core 1 (tile 0)."""
    net = neurochip.Network()
    net.add_input("in", 1)
    for name in "ABC":
        net.add_lif(name, 64, du=4095, dv=4096, vth=100)
    w = np.zeros((64, 1), int)
    w[0, 0] = 200
    net.connect("in", "A", w, storage="dense")
    net.connect("A", "C", np.full((64, 64), 2))
    # the hand count assumes next-fit placement (A, B, C on cores 0, 1, 2)
    img = neurochip.compile(net, "tiny4", placement="greedy")
    assert [p.slices for p in img.lif_populations] == [[[0, 0, 64]], [[1, 0, 64]], [[2, 0, 64]]]
    return img


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_hand_counted_three_steps(backend: str) -> None:
    img = three_core_net()
    x = np.zeros((3, 1), bool)
    x[0] = True
    r = neurochip.Emulator(img, backend=backend).run({"in": x})
    c = r.counters
    assert r.cores == [0, 1, 2]
    # step 0: one host spike into core 0 (64 synapses); every neuron idle
    assert c["spikes_in"][0].tolist() == [1, 0, 0]
    assert c["syn_ops"][0].tolist() == [64, 0, 0]
    assert c["neurons_active"][0].tolist() == [0, 0, 0]
    # step 1: A0 fires; its message crosses one east-west tile hop to core 2
    assert c["neurons_active"][1].tolist() == [1, 0, 0]
    assert c["spikes_out"][1].tolist() == [1, 0, 0]
    assert c["messages"][1].tolist() == [1, 0, 0]
    assert c["hops_ew"][1].tolist() == [1, 0, 0] and c["hops_ns"][1].sum() == 0
    assert c["spikes_in"][1].tolist() == [0, 0, 1] and c["syn_ops"][1].tolist() == [0, 0, 64]
    # step 2: all of C received input
    assert c["neurons_active"][2].tolist() == [0, 0, 64]
    # cycles (0.1 ns): spike_in 21, synop 35, active 84, inactive 53, spike_out 21
    assert r.cycles[0].tolist() == [21 + 64 * 35 + 64 * 53, 64 * 53, 64 * 53]
    assert r.cycles[1].tolist() == [84 + 63 * 53 + 21, 64 * 53, 21 + 64 * 35 + 64 * 53]
    assert r.cycles[2].tolist() == [64 * 53, 64 * 53, 64 * 84]
    barrier = 1130 + (4650 - 1130) * 1 // 31  # two tiles in use
    assert r.latency_cycles.tolist() == [
        5653 + 21 + barrier,  # slowest core + host message (no hop) + barrier
        5653 + (21 + 41) + barrier,  # + one E-W hop
        64 * 84 + barrier,
    ]
    np.testing.assert_allclose(r.latency_ns, r.latency_cycles * 0.1)
    static = 0.8125 * r.latency_ns  # mW x ns = pJ, per core
    e0 = np.array([64 * 23.6 + 64 * 52, 64 * 52, 64 * 52]) + static[0]
    e1 = np.array([81 + 63 * 52 + 1.7 + 3.0, 64 * 52, 64 * 23.6 + 64 * 52]) + static[1]
    np.testing.assert_allclose(r.energy[0], e0)
    np.testing.assert_allclose(r.energy[1], e1)
    t = r.totals()
    assert t["syn_ops"] == 128 and t["spikes_out"] == 1
    assert t["energy_pj"] == pytest.approx(r.energy.sum())


def test_batched_accounting_is_per_sample() -> None:
    img = three_core_net()
    x = np.zeros((2, 3, 1), bool)
    x[0, 0] = True
    r = neurochip.Emulator(img).run({"in": x})
    assert r.cycles.shape == (2, 3, 3) and r.energy.shape == (2, 3, 3)
    assert r.counters["syn_ops"][0].sum() == 128 and r.counters["syn_ops"][1].sum() == 0
    assert r.latency_cycles.shape == (2, 3)


def _with_options(base: str, **options: object) -> neurochip.HardwareSpec:
    d = neurochip.load_hw(base).to_dict()
    d["cost_model"] = options
    return neurochip.HardwareSpec.from_dict(d)


def three_core_net_on(hw: neurochip.HardwareSpec) -> neurochip.ChipImage:
    net = neurochip.Network()
    net.add_input("in", 1)
    for name in "ABC":
        net.add_lif(name, 64, du=4095, dv=4096, vth=100)
    w = np.zeros((64, 1), int)
    w[0, 0] = 200
    net.connect("in", "A", w, storage="dense")
    net.connect("A", "C", np.full((64, 64), 2))
    return neurochip.compile(net, hw, placement="greedy")


def test_pipelined_core_takes_the_slowest_stage() -> None:
    """Hand count of three_core_net with a pipelined core, a per-spike fire cost and a
    barrier table: per core max(receive, neuron stage) instead of their sum."""
    hw = _with_options("tiny4", core="pipelined", spike_fire_ns=30.0, spike_fire_pj=69.3,
                       barrier_table_ns={1: 50.0, 2: 70.0})
    r = neurochip.Emulator(three_core_net_on(hw)).run({"in": np.eye(3, 1, dtype=bool)})
    # step 0: core 0 receives 1 axon event + 64 synops (21 + 64 * 35 = 2261) while its 64
    # idle neurons take 64 * 53 = 3392: the neuron stage is the slower one
    assert r.cycles[0].tolist() == [3392, 3392, 3392]
    # step 1: A0 fires (84 + 63 * 53 + 300 fire + 21 message = 3744); core 2 receives
    # 2261 but its idle neurons take 3392
    assert r.cycles[1].tolist() == [84 + 63 * 53 + 300 + 21, 3392, 3392]
    assert r.cycles[2].tolist() == [3392, 3392, 64 * 84]
    barrier = 700  # two tiles in use: the table's entry for 2 tiles
    assert r.latency_cycles.tolist() == [3392 + 21 + barrier, 3744 + 62 + barrier,
                                         64 * 84 + barrier]
    # energy does not depend on the core's timing; the fired spike costs its fire energy
    e1 = 81 + 63 * 52 + 69.3 + 1.7 + 3.0 + 0.8125 * r.latency_ns[1]
    assert r.energy[1, 0] == pytest.approx(e1)


def test_port_contention_bounds_the_network_time() -> None:
    """With contention, the network term is max(longest path, busiest port x link)."""
    hw = _with_options("tiny4", noc_contention=True, link_message_ns=10.0)
    img = three_core_net_on(hw)
    x = np.zeros((3, 1), bool)
    x[0] = True
    r = neurochip.Emulator(img).run({"in": x})
    barrier = 1130 + (4650 - 1130) * 1 // 31
    # step 0: one host message into core 0: its port carries 1 message (100 cycles > 21)
    # step 1: core 0 sends one message, core 2 receives it: 100 > 21 + 41
    # step 2: no messages: the network term is 0
    assert r.latency_cycles.tolist() == [5653 + 100 + barrier, 5653 + 100 + barrier,
                                         64 * 84 + barrier]
    short = _with_options("tiny4", noc_contention=True, link_message_ns=1.0)
    r2 = neurochip.Emulator(three_core_net_on(short)).run({"in": x})
    # 10 cycles per message: the longest path is the larger term, as without contention
    assert r2.latency_cycles.tolist() == [5653 + 21 + barrier, 5653 + 62 + barrier,
                                          64 * 84 + barrier]


def test_options_off_cost_as_before() -> None:
    """An empty cost_model section (every option at its default) costs exactly as none."""
    img = three_core_net()
    x = np.eye(3, 1, dtype=bool)
    a = neurochip.Emulator(img).run({"in": x})
    b = neurochip.Emulator(three_core_net_on(_with_options("tiny4"))).run({"in": x})
    np.testing.assert_array_equal(a.cycles, b.cycles)
    np.testing.assert_array_equal(a.latency_cycles, b.latency_cycles)
    np.testing.assert_allclose(a.energy, b.energy)


def test_max_affine_runtime_takes_the_largest_term() -> None:
    """A max-affine runtime (compute term per core, NoC term over the chip) by hand."""
    runtime = {"terms": [
        {"name": "compute", "scope": "core", "intercept_ns": 100.0,
         "ns_per": {"syn_ops": 1.0, "neurons": 0.5}},
        {"name": "noc", "scope": "chip", "ns_per": {"messages": 200.0, "hops_ew": 5.0}}],
        "source": "test"}
    hw = _with_options("tiny4", runtime=runtime)
    r = neurochip.Emulator(three_core_net_on(hw)).run({"in": np.eye(3, 1, dtype=bool)})
    # step 0: core 0 has 64 synops and 64 neurons: 100 + 64 + 32 = 196 ns; no core sends
    # step 1: A0's one message with one east-west hop: 200 + 5 = 205 ns > 196 (core 2)
    # step 2: no synaptic work: 100 + 32 = 132 ns
    assert r.latency_cycles.tolist() == [1960, 2050, 1320]
    # core busy times are the per-core model's; static energy follows the new latency
    base = neurochip.Emulator(three_core_net()).run({"in": np.eye(3, 1, dtype=bool)})
    np.testing.assert_array_equal(r.cycles, base.cycles)
    extra = 0.8125 * (r.latency_ns - base.latency_ns)  # mW x ns = pJ, on each core
    np.testing.assert_allclose(r.energy - base.energy, np.repeat(extra[:, None], 3, axis=1))


def test_message_schedule_by_hand() -> None:
    """three_core_net with the message schedule: each message leaves when its sender has
    generated it and is processed when it reaches a free receiver; the step ends with the
    last message processed or the last neuron stage."""
    hw = _with_options("tiny4", noc_schedule={"link_buffer_messages": 16},
                       barrier_table_ns={1: 50.0, 2: 70.0})
    img = three_core_net_on(hw)
    x = np.eye(3, 1, dtype=bool)
    r = neurochip.Emulator(img).run({"in": x})
    barrier = 700
    # step 0: the host message leaves core 0's port after spike_out (21), reaches core 0 at
    # once (same tile) and takes 21 + 64 * 35 = 2261 (done at 2282); core 0 then runs its
    # 64 idle neurons (3392): the neuron stage ends last, at 21 + 3392
    # step 1: core 0's 64 neurons take 64 * 53 + (84 - 53) = 3423 cycles, 3423 / 64 each;
    # A0 (the first) fires and sends after 3423 / 64 + 21; the message crosses one tile
    # (41) and core 2 processes it in 2261 (done near 2376) while core 0 finishes its
    # other 63 neurons at 3423 + 21 = 3444 (the network time hides behind the neuron stage)
    # step 2: core 2's 64 active neurons: 64 * 84, no messages
    assert r.latency_cycles.tolist() == [21 + 3392 + barrier, 3444 + barrier,
                                         64 * 84 + barrier]
    # core busy times and energy per event do not depend on the schedule
    base = neurochip.Emulator(three_core_net_on(_with_options(
        "tiny4", barrier_table_ns={1: 50.0, 2: 70.0}))).run({"in": x})
    np.testing.assert_array_equal(r.cycles, base.cycles)
    extra = 0.8125 * (r.latency_ns - base.latency_ns)
    np.testing.assert_allclose(r.energy - base.energy, np.repeat(extra[:, None], 3, axis=1))
    # only the spikes asked for come back; the schedule saw them all either way
    r_a = neurochip.Emulator(img).run({"in": x}, spikes=["A"])
    assert set(r_a.spikes) == {"A"}
    np.testing.assert_array_equal(r_a.latency_cycles, r.latency_cycles)
    assert neurochip.Emulator(img).run({"in": x}, spikes=None).spikes == {}


def _plan_six_messages() -> tuple[MessagePlan, NDArray[np.int64]]:
    # six neurons on core 0 (slot 0) send one message each; five go to core 1, the last to
    # core 2, all inside one tile: each route is core 0's port (one link)
    plan = MessagePlan(
        n_in=0, sender=np.zeros(6, np.int64),
        order=[np.arange(6), np.zeros(0, np.int64), np.zeros(0, np.int64),
               np.zeros(0, np.int64)],
        ptr=np.arange(7), dest=np.array([1, 1, 1, 1, 1, 2]), hops_ew=np.zeros(6, np.int64),
        hops_ns=np.zeros(6, np.int64), links=np.zeros(6, np.int64),
        synapses=np.array([0, 0, 0, 0, 0, 1000]), link_ptr=np.arange(7),
        link_ids=np.full(6, 4, np.int64))
    return plan, np.zeros((1, 3, 12), np.int64)


@pytest.mark.parametrize(("buffer", "expect"), [(100, 1360), (1, 1410)])
def test_message_schedule_congestion_and_blocking(buffer: int, expect: int) -> None:
    """Hand count of the route load and blocking terms: messages generated every 10
    cycles, 100 cycles each at their receiver. In flight (sent, not yet taken): m2..m4 load
    core 0's port with 1/2 each; the mean receive time in flight is 100.

    buffer 100 (no blocking): m1..m5 leave at 10..50 and are taken by core 1 at 10, 110,
    210, 310, 410 (m3's network time 0.5 x 100, m4's 1.0 x 100, m5's 1.5 x 100); m6 leaves
    at 60 with m2..m5 in flight (load 2.0): it arrives at 60 + 200 and core 2 takes 100 +
    1000 synapses: 1360.
    buffer 1: m5 sees load 1.5 > 1 x 1 and waits (1.5 - 1) x 100 = 50, leaving at 100;
    m6 is generated at 110, when m2 has been taken: load 1.5 again, it waits 50, leaves at
    160, arrives at 160 + 150 = 310 and is done at 1410."""
    names = ["synop", "spike_in", "neuron_active", "neuron_inactive", "spike_out", "hop_ew",
             "hop_ns", "chip_link", "learn_update", "trace_update", "spike_fire"]
    cyc = dict.fromkeys(names, 0) | {"spike_out": 10, "spike_in": 100, "synop": 1}
    cm = CostModel(1.0, cyc, dict.fromkeys(names, 0.0), 0.0, 0, schedule_buffer=buffer)
    plan, counters = _plan_six_messages()
    lat = schedule_latency(np.ones((1, 6), bool), counters, np.array([6, 0, 0]), plan, cm)
    assert lat.tolist() == [expect]


def test_message_schedule_off_dumps_as_before() -> None:
    """Without noc_schedule a spec dumps and hashes as before the option existed."""
    hw = neurochip.load_hw("loihi_sanafe")
    d = hw.to_dict()
    assert d["cost_model"]["noc_schedule"]["link_buffer_messages"] == 16
    d["cost_model"].pop("noc_schedule")
    off = neurochip.HardwareSpec.from_dict(d)
    assert "noc_schedule" not in off.to_dict()["cost_model"]
    d["cost_model"]["noc_schedule"] = None
    assert neurochip.HardwareSpec.from_dict(d).spec_hash == off.spec_hash
    assert off.spec_hash != hw.spec_hash
