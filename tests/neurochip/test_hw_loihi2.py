"""The Loihi 2-like chip: its figures, and one memory budget per core shared between
synapses and neuron state."""

import numpy as np

import neurochip
from neurochip.core.hw import load_hw


def test_loihi2_like_figures() -> None:
    hw = load_hw("loihi2_like")
    assert hw.n_cores == 128
    assert hw.core.max_neurons == 8192
    assert hw.core.synapse_memory_bits == 192 * 1024 * 8
    assert hw.core.neuron_state_bits == 64
    assert hw.formats.graded_payload_bits == 24
    assert hw.index_bits == 13
    # Loihi 1 Table 2 times scaled by the stated speed-ups, in 0.01 ns quanta
    assert hw.timing.cycles("synop") == 35 and hw.timing.cycles("neuron_active") == 420


def test_new_fields_at_default_leave_old_specs_unchanged() -> None:
    hw = load_hw("loihi_like")
    d = hw.to_dict()
    assert "neuron_state_bits" not in d["core"] and "graded_payload_bits" not in d["formats"]
    assert type(hw).from_dict(d).spec_hash == hw.spec_hash
    d2 = load_hw("loihi2_like").to_dict()
    assert d2["core"]["neuron_state_bits"] == 64


def _net(n: int) -> neurochip.Network:
    net = neurochip.Network()
    net.add_input("in", 16)
    net.add_lif("hid", n, du=0, dv=0, vth=100)
    w = np.full((n, 16), 10)
    net.connect("in", "hid", weights=w, weight_exp=0, delay=0)
    return net


def test_neuron_state_shares_the_core_memory_budget() -> None:
    base = load_hw("loihi2_like")
    small = base.to_dict()
    # room for 100 neurons of 16 dense 8-bit synapses alone, 50 with 128 bits of state each
    small["core"]["synapse_memory_bits"] = 100 * 16 * 8
    small["core"]["neuron_state_bits"] = 0
    no_state = type(base).from_dict(small)
    small["core"]["neuron_state_bits"] = 128
    shared = type(base).from_dict(small)
    a = neurochip.compile(_net(400), no_state)
    b = neurochip.compile(_net(400), shared)
    assert len({c.core for c in a.cores}) == 4
    assert len({c.core for c in b.cores}) == 8
    assert max(c.synapse_bits for c in b.cores) <= 100 * 16 * 8
