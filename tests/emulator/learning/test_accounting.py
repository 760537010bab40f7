"""Learning costs checked against hand-counted cases: trace and synaptic-variable updates,
error messages with their hops, feedback synaptic operations, cycles and energy."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

import neurochip
from neurochip.learning import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    add_learning,
)


def three_cores() -> neurochip.ChipImage:
    """in -> A (64, core 0, tile 0) -> C (16, core 2, tile 1); B idles on core 1 (tile 0)."""
    net = neurochip.Network()
    net.add_input("in", 1)
    for name, n in (("A", 64), ("B", 64), ("C", 16)):
        net.add_lif(name, n, du=4095, dv=4096, vth=100)
    w = np.zeros((64, 1), int)
    w[0, 0] = 200
    net.connect("in", "A", w, storage="dense")
    net.connect("A", "C", np.full((16, 64), 2))
    # the hand count assumes next-fit placement (A, B, C on cores 0, 1, 2)
    img = neurochip.compile(net, "tiny4", placement="greedy")
    assert [p.slices for p in img.lif_populations] == [[[0, 0, 64]], [[1, 0, 64]], [[2, 0, 16]]]
    return img


@pytest.mark.parametrize("backend", ["numba", "reference"])
def test_hand_counted_dfa_learning(backend: Literal["numba", "reference"]) -> None:
    img = add_learning(three_cores(), LearningConfig(
        (SynapseLearning("in->A", "dfa", {"lr": 14}),
         SynapseLearning("A->C", "delta", {"lr": 8})),
        (NeuronLearning("A", surrogate=SurrogateParams(),
                        third_factor=ThirdFactor("dfa", source="C", shift=0)),
         NeuronLearning("C", third_factor=ThirdFactor("error"))), epoch=2))
    T = 4
    x = np.zeros((T, 1), bool)
    x[0] = True  # A0 fires at step 1
    tg = np.zeros((T, 16), bool)
    tg[:, 0] = True  # C0 is asked to spike every step
    em = neurochip.Emulator(img, backend=backend)
    r = em.run({"in": x}, learn=True, targets={"C": tg})
    base = neurochip.Emulator(img, backend=backend).run({"in": x})
    c = r.counters
    # cores [0, 1, 2] = A, B, C. Per step, C's core updates 64 axon traces (A->C, x1) and,
    # per C neuron, y1, m and the target trace: 64 + 3 * 16. A's core: 1 axon trace
    # (in->A) and per A neuron its surrogate and m: 1 + 2 * 64.
    assert c["trace_updates"].tolist() == [[129, 0, 112]] * T
    # error messages: the host's target spike for C0 (charged at C's core, one E-W hop
    # from the I/O tile), and C0's error m = yt - y1 != 0 sent to A's core (one E-W hop
    # back), where it reads 64 feedback weights.
    assert c["error_messages"].tolist() == [[0, 0, 2]] * T
    assert (c["hops_ew"] - base.counters["hops_ew"]).tolist() == [[0, 0, 2]] * T
    assert (c["syn_ops"] - base.counters["syn_ops"]).tolist() == [[64, 0, 0]] * T
    # weights are updated at the end of epochs (steps 1 and 3) where both factors are
    # non-zero: A0 -> C0 (A0's trace and C0's error). in->A: the input's trace (spike at
    # step 0) with every A neuron's m * sg; m = round(B[:, 0] * m_C0).
    assert c["learn_updates"][:, 1].sum() == 0
    assert c["learn_updates"][[0, 2], 2].tolist() == [0, 0]
    assert c["learn_updates"][[1, 3], 2].tolist() == [1, 1]
    n_a = int(np.count_nonzero(img.arrays["learn/matrix/A"][:, 0]))  # A neurons with m != 0
    assert c["learn_updates"][[1, 3], 0].tolist() == [n_a, n_a]
    # cycles: + learn_update (6.1 ns = 61 cycles) per update, + spike_out (21) per error
    # message, + synop (35) per feedback weight read; trace updates cost 0 in loihi_like.
    extra = r.cycles - base.cycles
    expected = 61 * c["learn_updates"] + 21 * c["error_messages"] + 35 * (
        c["syn_ops"] - base.counters["syn_ops"])
    np.testing.assert_array_equal(extra, expected)
    # energy: 120 pJ per update, 1.7 pJ per message, 3.0 pJ per E-W hop, 23.6 pJ per
    # synop, plus static power over the (longer) step
    static = 0.8125 * (r.latency_ns - base.latency_ns)[:, None]
    dyn = 120 * c["learn_updates"] + 1.7 * c["error_messages"] + 3.0 * (
        c["hops_ew"] - base.counters["hops_ew"]) + 23.6 * (c["syn_ops"] - base.counters["syn_ops"])
    np.testing.assert_allclose(r.energy - base.energy, dyn + static, rtol=1e-9, atol=1e-6)


def test_reward_and_dcll_messages() -> None:
    net = neurochip.Network("tiny4")
    net.add_input("in", 3)
    net.add_lif("h", 8, du=4095, dv=512, vth=30)
    net.add_lif("o", 2, du=4095, dv=512, vth=30)
    net.connect("in", "h", np.full((8, 3), 40))
    net.connect("h", "o", np.full((2, 8), 40))
    img = neurochip.compile(net, "tiny4")
    rew = add_learning(img, LearningConfig(
        (SynapseLearning("in->h", "rstdp"),), (NeuronLearning("h", third_factor=ThirdFactor(
            "reward")),)))
    x = np.zeros((5, 3), bool)
    rw = np.array([0, 3, 0, -2, 0])
    r = neurochip.Emulator(rew).run({"in": x}, learn=True, reward=rw)
    # one modulation message per step with a reward, to the one core holding h
    assert r.counters["error_messages"].sum(axis=1).tolist() == [0, 1, 0, 1, 0]
    dcll = add_learning(img, LearningConfig(
        (SynapseLearning("in->h", "dcll"),),
        (NeuronLearning("h", surrogate=SurrogateParams(),
                        third_factor=ThirdFactor("dcll", target="o", readout_shift=4)),)))
    tg = np.zeros((5, 2), bool)
    tg[2:, 1] = True
    r = neurochip.Emulator(dcll).run({"in": x}, learn=True, targets={"o": tg})
    # the pseudo-target spikes travel to the layer's core (one message each); the local
    # readout reads 2 x 8 weights every step, and 8 more per non-zero local error
    assert r.counters["error_messages"].sum(axis=1).tolist() == [0, 0, 1, 1, 1]
    ops = r.counters["syn_ops"].sum(axis=1)
    assert ops.tolist() == [16, 16, 24, 24, 24]
