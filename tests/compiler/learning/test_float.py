"""The fixed-point engine against the float64 reference of every built-in rule.

Where nothing needs rounding (no trace decay, exact shifts, exact neuron dynamics) the two
must agree exactly; elsewhere they must follow the same trend with a bounded deviation.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurochip
from neurochip.learning import (
    FloatLearner,
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    TraceParams,
    add_learning,
)
from neurochip.tasks.learning import superspike_network, van_rossum
from neurochip.testing import random_inputs


def exact_net() -> neurochip.ChipImage:
    """No leak (dv = 0), no synaptic memory (du = 4095): float and fixed neurons agree."""
    net = neurochip.Network()
    net.add_input("in", 20)
    net.add_lif("hid", 12, du=4095, dv=0, vth=60)
    net.add_lif("out", 3, du=4095, dv=0, vth=60)
    rng = np.random.default_rng(0)
    net.connect("in", "hid", rng.integers(-20, 40, (12, 20)) * 2)
    net.connect("hid", "out", rng.integers(-20, 40, (3, 12)) * 2)
    return neurochip.compile(net)


def test_float_and_fixed_agree_exactly_when_nothing_rounds() -> None:
    base = exact_net()
    keep = TraceParams(impulse=1, decay=0)  # traces count spikes exactly
    cfg = LearningConfig(
        (SynapseLearning("in->hid", "dw = 2 * x1 * y0 - 2 * y1 * x0", {}, keep, keep),
         SynapseLearning("hid->out", "dw = 2 * m * x0 - 2 * y1 * x0", {}, keep, keep)),
        (NeuronLearning("hid", keep, keep), NeuronLearning("out", keep, keep, None,
                                                           ThirdFactor("error"))), epoch=3)
    img = add_learning(base, cfg)
    X = random_inputs(1, 15, 20, 0.3, batch=6)
    tg = np.zeros((6, 15, 3), bool)
    tg[:, ::2, 0] = True
    em = neurochip.Emulator(img)
    em.learn({"in": X}, {"out": tg})
    fl = FloatLearner(img)
    fl.learn(X, {"out": tg})
    for c in ("in->hid", "hid->out"):
        assert not np.array_equal(em.weights(c), base.weights(c))
        np.testing.assert_array_equal(em.weights(c), fl.weights(c), err_msg=c)


RULES = {  # rule: (parameters, third factor of the hidden layer, epoch, min corr)
    "superspike": ({"lr": 16, "tau_e": 2, "elig": 4}, "dfa", 1, 0.8),
    "three_factor": ({"lr": 17}, "dfa", 5, 0.8),
    "dfa": ({"lr": 17}, "dfa", 5, 0.8),
    "fa": ({"lr": 17}, "fa", 5, 0.8),
    "dcll": ({"lr": 19}, "dcll", 5, 0.8),
    "delta": ({"lr": 11}, "dfa", 5, 0.8),
    "stdp": ({"lr_plus": 6, "lr_minus": 7}, "none", 1, 0.5),
    "rstdp": ({"tau_e": 3, "elig": -2, "lr": 14}, "reward", 1, 0.5),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_fixed_point_follows_the_float_rule(rule: str) -> None:
    params, kind, epoch, min_corr = RULES[rule]
    base = exact_net()
    tf = {"dfa": ThirdFactor("dfa", source="out", shift=6),
          "fa": ThirdFactor("fa", source="out", shift=6),
          "dcll": ThirdFactor("dcll", target="out", shift=6, readout_shift=5),
          "reward": ThirdFactor("reward"), "none": ThirdFactor("none")}[kind]
    syn = [SynapseLearning("in->hid", rule, params)]
    if kind not in ("none", "reward"):
        syn.append(SynapseLearning("hid->out", "delta", {"lr": 12}))
    neu = (NeuronLearning("hid", surrogate=SurrogateParams(), third_factor=tf),
           NeuronLearning("out", third_factor=ThirdFactor("error")))
    img = add_learning(base, LearningConfig(tuple(syn), neu, epoch, 1))
    N, T = 10, 25
    X = random_inputs(1, T, 20, 0.3, batch=N)
    tg = np.zeros((N, T, 3), bool)
    tg[:, :, 0] = True
    rw = np.tile(np.where(np.arange(T) % 5 == 0, 60, 0), (N, 1))
    em = neurochip.Emulator(img)
    em.learn({"in": X}, {"out": tg}, rw)
    fl = FloatLearner(img)
    fl.learn(X, {"out": tg}, rw)
    for s in syn:
        d_fix = (em.weights(s.connection) - base.weights(s.connection)).astype(float).ravel()
        d_flt = (fl.weights(s.connection) - base.weights(s.connection)).ravel()
        assert np.abs(d_flt).mean() > 1.0, "the protocol should move the weights"
        corr = np.corrcoef(d_fix, d_flt)[0, 1]
        ratio = np.linalg.norm(d_fix) / np.linalg.norm(d_flt)
        assert corr >= min_corr, f"{rule} {s.connection}: correlation {corr:.2f}"
        assert 0.7 <= ratio <= 1.4, f"{rule} {s.connection}: |dw| ratio {ratio:.2f}"


def test_superspike_reduces_the_distance_in_float_and_fixed_point() -> None:
    from compiler.training.data import spike_train_task
    from neurochip.learning import preset

    d = spike_train_task(n_in=60, steps=120, input_rate=0.05, target_spikes=3, seed=2)
    x, y = d.x[0], d.y[0]
    img = neurochip.compile(superspike_network(n_in=60, w_max=5, seed=2))
    img = add_learning(img, preset(img, "superspike", superspike={"lr": 17},
                                   trace=TraceParams(32, 512),
                                   surrogate=SurrogateParams(steepness=1.0)))
    d0 = van_rossum(neurochip.Emulator(img).run({"in": x}).spikes["out"], y)
    X, Y = np.repeat(x[None], 60, 0), np.repeat(y[None], 60, 0)
    em = neurochip.Emulator(img)
    em.learn({"in": X}, {"out": Y})
    d_fix = van_rossum(neurochip.Emulator(em.learned_image()).run({"in": x}).spikes["out"], y)
    fl = FloatLearner(img)
    fl.learn(X, {"out": Y})
    d_flt = van_rossum(fl.run(x, learn=False)[:, img.population("out").offset:][:, :1], y)
    assert d_fix < 0.5 * d0 and d_flt < 0.5 * d0
