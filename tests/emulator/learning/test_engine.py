"""The learning kernels equal the learning reference model bit for bit; the emulator API."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from neurochip.core.errors import EmulatorInputError, LearningConfigError
from neurochip.learning import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    add_learning,
    compiled_learning,
    preset,
)
from neurochip.testing import assert_same_results as assert_same_run
from neurochip.testing import random_inputs, random_network
from neurochip.testing_learning import CUSTOM_RULES, FAST, random_learning, random_targets


def assert_same_learning(a: neurochip.Emulator, b: neurochip.Emulator) -> None:
    img = a.image
    for c in img.connections:
        np.testing.assert_array_equal(a.weights(c.name), b.weights(c.name),
                                      err_msg=f"weights {c.name}")
    ra, rb = a.learner.registers(), b.learner.registers()
    for k in ra:
        np.testing.assert_array_equal(ra[k], rb[k], err_msg=f"register {k}")
    assert a.learner.clock == b.learner.clock
    assert a.learned_image().equals(b.learned_image())


def _image(seed: int, hw: str) -> neurochip.ChipImage:
    net = random_network(seed, hw, max_size=40 if hw == "tiny4" else 24, max_delay=3)
    try:
        img = neurochip.compile(net, hw)
    except neurochip.core.errors.PlacementError:
        img = neurochip.compile(net, "loihi_like")
    return random_learning(img, seed)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), hw=st.sampled_from(["loihi_like", "tiny4"]),
       rate=st.sampled_from([0.1, 0.4]))
def test_kernels_equal_reference_on_random_networks_and_rules(seed: int, hw: str,
                                                              rate: float) -> None:
    img = _image(seed, hw)
    T = 24
    x = random_inputs(seed, T, 12, rate)
    tg = random_targets(img, T, seed)
    reward = np.random.default_rng(seed).integers(-6, 7, T)
    probes = [f"{p.name}.{v}" for p in img.lif_populations for v in "uv"]
    a = neurochip.Emulator(img)
    b = neurochip.Emulator(img, backend="reference")
    for part in (slice(0, 15), slice(15, T)):  # state carries over between runs
        ra = a.run({"in": x[part]}, learn=True, targets={k: v[part] for k, v in tg.items()},
                   reward=reward[part], probes=probes)
        rb = b.run({"in": x[part]}, learn=True, targets={k: v[part] for k, v in tg.items()},
                   reward=reward[part], probes=probes)
        assert_same_run(ra, rb)
    assert_same_learning(a, b)
    # learning happened somewhere (a synapse or a tag changed, or traces moved)
    assert ra.counters["trace_updates"].sum() > 0


def test_learn_streams_equal_reference_and_per_sample_runs() -> None:
    img = _image(7, "tiny4")
    rng = np.random.default_rng(1)
    N, T = 4, 12
    X = rng.random((N, T, 12)) < 0.3
    cl = compiled_learning(img)
    tg = {n: rng.random((N, T, k)) < 0.3 for n, k in zip(cl.target_channels, cl.target_sizes)}
    rw = rng.integers(-3, 4, (N, T))
    a = neurochip.Emulator(img)
    ha = a.learn({"in": X}, tg, rw, epochs=2, shuffle=3)
    b = neurochip.Emulator(img, backend="reference")
    hb = b.learn({"in": X}, tg, rw, epochs=2, shuffle=3)
    assert_same_learning(a, b)
    np.testing.assert_array_equal(ha.order, hb.order)
    for k in ha.counters:
        np.testing.assert_array_equal(ha.counters[k], hb.counters[k])
    np.testing.assert_allclose(ha.energy_pj, hb.energy_pj)
    # the same stream, one run(learn=True) per sample after a reset
    c = neurochip.Emulator(img)
    for i in ha.order:
        c.reset()
        c.learner.reset_traces()
        c.run({"in": X[i]}, learn=True, targets={k: v[i] for k, v in tg.items()}, reward=rw[i])
    assert_same_learning(a, c)
    assert ha.samples == 2 * N and set(ha.spike_counts) == {p.name for p in img.lif_populations}


def test_every_rule_runs_bit_exact() -> None:
    """Each built-in rule and each custom test rule, on a two-layer network."""
    net = neurochip.Network()
    net.add_input("in", 10)
    net.add_lif("hid", 8, du=3000, dv=700, vth=15)
    net.add_lif("out", 3, du=3000, dv=700, vth=15)
    rng = np.random.default_rng(0)
    net.connect("in", "hid", rng.integers(-40, 60, (8, 10)) * 2)
    net.connect("hid", "out", rng.integers(-40, 60, (3, 8)) * 2)
    base = neurochip.compile(net)
    x = random_inputs(2, 30, 10, 0.4)
    tg = {"out": random_inputs(3, 30, 3, 0.3)}
    rules = ["superspike", "three_factor", "dfa", "fa", "dcll", "delta", "stdp", "rstdp",
             *CUSTOM_RULES]
    for rule in rules:
        kinds = {"dfa": "dfa", "fa": "fa", "dcll": "dcll", "rstdp": "reward"}
        kind = kinds.get(rule, "dfa")
        tf = {"dfa": ThirdFactor("dfa", source="out", shift=6),
              "fa": ThirdFactor("fa", source="out", shift=6),
              "dcll": ThirdFactor("dcll", target="out", shift=6, readout_shift=5),
              "reward": ThirdFactor("reward")}[kind]
        cfg = LearningConfig(
            (SynapseLearning("in->hid", rule, FAST.get(rule, {})),
             SynapseLearning("hid->out", "delta", {"lr": 6})),
            (NeuronLearning("hid", surrogate=SurrogateParams(), third_factor=tf),
             NeuronLearning("out", surrogate=SurrogateParams("exponential"),
                            third_factor=ThirdFactor("error"))), epoch=2, seed=5)
        img = add_learning(base, cfg)
        a, b = neurochip.Emulator(img), neurochip.Emulator(img, backend="reference")
        rw = np.full(30, 5)
        assert_same_run(a.run({"in": x}, learn=True, targets=tg, reward=rw),
                        b.run({"in": x}, learn=True, targets=tg, reward=rw))
        assert_same_learning(a, b)
        changed = not np.array_equal(a.weights("in->hid"), base.weights("in->hid"))
        assert changed, f"rule {rule} changed no weight"


@pytest.mark.parametrize("rule", ["fa", "dfa", "dcll"])
def test_registers_formed_only_when_read_equal_reference(rule: str) -> None:
    """A three-layer chain with an epoch (7 steps) that does not divide the samples (20
    steps): the surrogates and feedback sums the kernels form only on the steps that read
    them, and every step for a feedback source (FA: the second hidden layer feeds the first
    its error), leave weights, registers and counters equal to the reference model's."""
    net = neurochip.Network()
    net.add_input("in", 12)
    for name, n in (("h1", 16), ("h2", 12), ("out", 4)):
        net.add_lif(name, n, du=3000, dv=700, vth=15)
    rng = np.random.default_rng(4)
    net.connect("in", "h1", rng.integers(-40, 60, (16, 12)) * 2)
    net.connect("h1", "h2", rng.integers(-40, 60, (12, 16)) * 2)
    net.connect("h2", "out", rng.integers(-40, 60, (4, 12)) * 2)
    base = neurochip.compile(net)
    img = add_learning(base, preset(base, rule, lr_hidden=14, lr_out=12, epoch=7,
                                    feedback_shift=4, readout_shift=4, seed=2))
    X = random_inputs(5, 60, 12, 0.4).reshape(3, 20, 12)
    tg = {"out": random_inputs(6, 60, 4, 0.3).reshape(3, 20, 4)}
    a = neurochip.Emulator(img)
    ha = a.learn({"in": X}, tg, epochs=2)
    b = neurochip.Emulator(img, backend="reference")
    hb = b.learn({"in": X}, tg, epochs=2)
    assert_same_learning(a, b)
    for k in ha.counters:
        np.testing.assert_array_equal(ha.counters[k], hb.counters[k], err_msg=k)
    assert ha.counters["error_messages"].sum() > 0
    assert not np.array_equal(a.weights("in->h1"), base.weights("in->h1"))


def test_large_multicore_updates_equal_reference_on_any_thread_count() -> None:
    """Digits with 2,100 hidden neurons: the hidden layer spans three cores, so each input
    has an axon per core, and an epoch's weight update visits more synapses than
    THREADED_SYNAPSES (the vectorised rows then run on the Numba threads). One thread,
    two threads and the reference model learn the same weights and registers."""
    import numba

    from emulator.learning.kernels import THREADED_SYNAPSES
    from neurochip.tasks.digits import N_CLASSES, digits_task
    from neurochip.tasks.learning import class_targets
    from neurochip.tasks.learning_demos import digits_image

    img = digits_image("dfa", n_hidden=2100)
    hid = img.population("hid")
    assert len({int(k) for k, _, n in hid.slices if n > 0}) == 3
    task = digits_task(20, 0.5)
    x, y = task.x_train[:3], task.y_train[:3]
    tg = {"out": class_targets(y, N_CLASSES, 20)}
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            em = neurochip.Emulator(img)
            h = em.learn({"in": x}, tg)
            runs.append(em)
    finally:
        numba.set_num_threads(before)
    # an epoch (20 steps, one sample) updates more synapses than the threading threshold
    assert h.counters["learn_updates"][0] > THREADED_SYNAPSES
    ref = neurochip.Emulator(img, backend="reference")
    ref.learn({"in": x}, tg)
    assert_same_learning(runs[0], runs[1])
    assert_same_learning(runs[0], ref)
    assert not np.array_equal(runs[0].weights("in->hid"), img.weights("in->hid"))


# ------------------------------------------------------------------------------ API
def digits_like() -> neurochip.ChipImage:
    from neurochip.tasks.digits import digits_network

    img = neurochip.compile(digits_network(n_hidden=20), "loihi_like")
    return add_learning(img, preset(img, "dfa", epoch=5))


def test_learned_image_is_new_deployable_and_round_trips(tmp_path: pathlib.Path) -> None:
    img = digits_like()
    w0 = {c.name: img.weights(c.name) for c in img.connections}
    manifest0 = img.manifest()
    arrays0 = {k: v.copy() for k, v in img.arrays.items()}
    em = neurochip.Emulator(img)
    x = random_inputs(0, 20, 64, 0.3, batch=6)
    y = np.zeros((6, 20, 10), bool)
    y[:, :, 3] = True
    hist = em.learn({"in": x}, {"out": y}, epochs=2)
    assert hist.totals()["learn_updates"] > 0
    # the input image is untouched
    assert img.manifest() == manifest0
    for k, v in img.arrays.items():
        np.testing.assert_array_equal(v, arrays0[k])
    learned = em.learned_image()
    assert any(not np.array_equal(learned.weights(n), w) for n, w in w0.items())
    for c in img.connections:
        np.testing.assert_array_equal(learned.weights(c.name), em.weights(c.name))
    assert learned.metadata["learned"]["samples"] == 12
    # deploy: save, load, run inference; equal to the emulator that learned
    path = learned.save(tmp_path / "learned.nchip")
    again = neurochip.ChipImage.load(path)
    assert again.equals(learned)
    r1 = neurochip.Emulator(again).run({"in": x})
    em.reset()
    r2 = em.run({"in": x})
    for k in r1.spikes:
        np.testing.assert_array_equal(r1.spikes[k], r2.spikes[k])
    # weights survive a reset; reset_learning restores the image's weights
    em.reset()
    assert np.array_equal(em.weights("in->hid"), learned.weights("in->hid"))
    em.reset_learning()
    assert np.array_equal(em.weights("in->hid"), w0["in->hid"])


def test_rate_shift_is_checked_and_kept_in_the_learned_image() -> None:
    img = digits_like()
    em = neurochip.Emulator(img)
    em.set_rate_shift(2)
    assert em.learned_image().learning["config"]["rate_shift"] == 2  # type: ignore[index]
    with pytest.raises(LearningConfigError, match="max_shift"):
        em.set_rate_shift(10)
    # a higher shift moves weights less
    x = random_inputs(0, 20, 64, 0.3, batch=8)
    y = np.zeros((8, 20, 10), bool)
    y[:, :, 1] = True
    moved = []
    for shift in (0, 3):
        e = neurochip.Emulator(img)
        e.set_rate_shift(shift)
        e.learn({"in": x}, {"out": y})
        moved.append(np.abs(e.weights("hid->out") - img.weights("hid->out")).sum())
    assert moved[0] > moved[1]


def test_learning_inputs_are_validated() -> None:
    img = digits_like()
    em = neurochip.Emulator(img)
    x = random_inputs(0, 10, 64, 0.3)
    y = np.zeros((10, 10), bool)
    with pytest.raises(EmulatorInputError, match="one sample stream"):
        em.run({"in": random_inputs(0, 10, 64, 0.3, batch=2)}, learn=True)
    with pytest.raises(EmulatorInputError, match="only with learn=True"):
        em.run({"in": x}, targets={"out": y})
    with pytest.raises(EmulatorInputError, match="no target channel 'hid'"):
        em.run({"in": x}, learn=True, targets={"hid": y})
    with pytest.raises(EmulatorInputError, match="shape"):
        em.run({"in": x}, learn=True, targets={"out": y[:, :4]})
    with pytest.raises(EmulatorInputError, match="trace range"):
        em.run({"in": x}, learn=True, targets={"out": np.full((10, 10), 200)})
    with pytest.raises(EmulatorInputError, match="epochs"):
        em.learn({"in": x[None]}, {"out": y[None]}, epochs=0)
    with pytest.raises(LearningConfigError, match="no learning configuration"):
        neurochip.Emulator(neurochip.compile(random_network(1))).learn({"in": x[None]})


def test_target_values_drive_the_error() -> None:
    img = digits_like()
    x = random_inputs(0, 10, 64, 0.3)
    vals = np.zeros((10, 10), np.int64)
    vals[:, 2] = 100
    a = neurochip.Emulator(img)
    a.run({"in": x}, learn=True, targets={"out": vals})
    b = neurochip.Emulator(img, backend="reference")
    b.run({"in": x}, learn=True, targets={"out": vals})
    assert_same_learning(a, b)
    regs = a.learner.registers()
    out = img.population("out")
    assert regs["yt"][out.offset + 2] == 100
