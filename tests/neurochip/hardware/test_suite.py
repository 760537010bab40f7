"""The hardware-in-the-loop suite: every board must behave as the chip's specification.

Run on any board with ``pytest tests/neurochip/hardware --board=URI`` (emulator,
reference, lava, tcp://HOST:PORT, ...). The truth is the pure-Python reference model run
locally; long runs compare with the local Numba emulator (bit-exact with the reference,
tested elsewhere). An operation a board does not have skips with the board's reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import neurochip
from neurochip.board import Board, UnsupportedOperation, image_digest
from neurochip.errors import BoardError, EmulatorInputError
from neurochip.hil import demo_image, demo_inputs, learning_image, probes_of

pytestmark = pytest.mark.hardware


def truth(image: Any, inputs: Any = None, steps: int | None = None, **kw: Any) -> Any:
    return neurochip.Emulator(image, backend="reference").run(inputs, steps, **kw)


def assert_same(got: Any, want: Any) -> None:
    assert set(got.spikes) == set(want.spikes)
    for k in want.spikes:
        np.testing.assert_array_equal(got.spikes[k], want.spikes[k], err_msg=f"spikes {k}")
    assert set(got.probes) == set(want.probes)
    for k in want.probes:
        np.testing.assert_array_equal(got.probes[k], want.probes[k], err_msg=f"probe {k}")
    assert (got.steps, got.t_start, got.batched) == (want.steps, want.t_start, want.batched)


def accounting(board: Board, r: Any) -> None:
    if r.extra.get("accounting") is False:
        raise UnsupportedOperation(f"the {board.info().get('backend')} board does not measure "
                                   f"counters, cycles or energy", where=board.name)


@pytest.fixture
def image() -> neurochip.ChipImage:
    return demo_image()


# ------------------------------------------------------------------ info and loading
def test_info_names_backend_hw_image_protocol_and_versions(board, image) -> None:
    before = board.info()
    assert before["protocol"] == 2 and before["versions"]["neurochip"] == neurochip.__version__
    assert isinstance(before["backend"], str) and before["backend"]
    board.load(image)
    info = board.info()
    assert info["hw"] == {"name": image.hw.name, "hash": image.hw.spec_hash}
    assert info["image"] == image_digest(image)
    assert {"load", "run", "reset"} <= set(info["ops"])


def test_load_from_a_path(board, image, tmp_path) -> None:
    board.load(image.save(tmp_path / "m.nchip"))
    x = demo_inputs(12)
    assert_same(board.run({"in": x}), truth(image, {"in": x}))


def test_run_before_load_is_a_board_error(board) -> None:
    with pytest.raises(BoardError, match="no chip image loaded"):
        board.run(steps=3)


def test_loading_another_image_starts_fresh(board, image) -> None:
    other = neurochip.compile(neurochip.testing.random_network(37, max_size=16, max_delay=2),
                              "loihi_like")
    board.load(image)
    board.run({"in": demo_inputs(10)})
    board.load(other)
    x = demo_inputs(15, seed=4)
    assert_same(board.run({"in": x}), truth(other, {"in": x}))


# ------------------------------------------------------------------ running
def test_spikes_equal_the_reference(board, image) -> None:
    board.load(image)
    x = demo_inputs(30)
    got, want = board.run({"in": x}), truth(image, {"in": x})
    assert sum(int(s.sum()) for s in want.spikes.values()) > 50  # the check has teeth
    assert_same(got, want)


def test_probes_of_u_and_v_equal_the_reference(board, image) -> None:
    board.load(image)
    x = demo_inputs(25, seed=2)
    pr = probes_of(image)
    got = board.run({"in": x}, probes=pr)
    assert_same(got, truth(image, {"in": x}, probes=pr))
    assert all(got.probes[p].dtype.kind == "i" for p in pr)


def test_steps_beyond_the_inputs_run_silent_input(board, image) -> None:
    board.load(image)
    x = demo_inputs(10)
    assert_same(board.run({"in": x}, 25, probes=["l2.v"]),
                truth(image, {"in": x}, 25, probes=["l2.v"]))


def test_a_batch_runs_independent_samples(board, image) -> None:
    board.load(image)
    x = demo_inputs(20, batch=3, seed=5)
    got = board.run({"in": x}, probes=["l1.v"])
    assert got.batched and got.spikes["l2"].shape == (3, 20, 12)
    for b in range(3):
        one = truth(image, {"in": x[b]}, probes=["l1.v"])
        np.testing.assert_array_equal(got.spikes["l2"][b], one.spikes["l2"])
        np.testing.assert_array_equal(got.probes["l1.v"][b], one.probes["l1.v"])


def test_state_carries_over_between_runs(board, image) -> None:
    board.load(image)
    x = demo_inputs(30, seed=6)
    a = board.run({"in": x[:13]}, probes=["l0.v"])
    b = board.run({"in": x[13:]}, probes=["l0.v"])
    want = truth(image, {"in": x}, probes=["l0.v"])
    assert (a.t_start, b.t_start) == (0, 13)
    np.testing.assert_array_equal(np.concatenate([a.probes["l0.v"], b.probes["l0.v"]]),
                                  want.probes["l0.v"])
    for k in want.spikes:
        np.testing.assert_array_equal(np.concatenate([a.spikes[k], b.spikes[k]]),
                                      want.spikes[k])


def test_reset_starts_again_from_step_zero(board, image) -> None:
    board.load(image)
    x = demo_inputs(20, seed=7)
    first = board.run({"in": x}, probes=["l2.u"])
    board.run({"in": x})
    board.reset()
    again = board.run({"in": x}, probes=["l2.u"])
    assert_same(again, first)


def test_spike_recording_can_be_selected(board, image) -> None:
    board.load(image)
    x = demo_inputs(12)
    only = board.run({"in": x}, spikes=["l1"])
    assert set(only.spikes) == {"l1"}
    board.reset()
    none = board.run({"in": x}, spikes=None, probes=["l1.v"])
    assert none.spikes == {} and set(none.probes) == {"l1.v"}
    np.testing.assert_array_equal(only.spikes["l1"], truth(image, {"in": x}).spikes["l1"])


def test_counters_cycles_and_energy_equal_the_reference(board, image) -> None:
    board.load(image)
    x = demo_inputs(15, seed=8)
    got, want = board.run({"in": x}), truth(image, {"in": x})
    accounting(board, got)
    assert set(got.counters) == set(want.counters)
    for k in want.counters:
        np.testing.assert_array_equal(got.counters[k], want.counters[k], err_msg=k)
    np.testing.assert_array_equal(got.cycles, want.cycles)
    np.testing.assert_array_equal(got.latency_cycles, want.latency_cycles)
    np.testing.assert_allclose(got.energy, want.energy, rtol=0, atol=0)


def test_long_run_in_one_call(board, image) -> None:
    board.load(image)
    slow = board.info()["backend"] in ("reference", "lava")
    steps = 150 if slow else 20_000
    x = np.zeros((steps, 12), bool)
    x[::7, :5] = True
    got = board.run({"in": x}, spikes=["l2"])
    want = neurochip.Emulator(image).run({"in": x}, spikes=["l2"])
    assert got.steps == steps
    np.testing.assert_array_equal(got.spikes["l2"], want.spikes["l2"])


# ------------------------------------------------------------------ bad requests
def test_a_bad_probe_is_a_typed_error_and_the_board_survives(board, image) -> None:
    board.load(image)
    with pytest.raises(EmulatorInputError, match="bad probe"):
        board.run(steps=3, probes=["nope.v"])
    assert board.run(steps=2).steps == 2


def test_a_wrong_input_shape_is_a_typed_error(board, image) -> None:
    board.load(image)
    with pytest.raises(EmulatorInputError, match="shape"):
        board.run({"in": np.zeros((5, 3), bool)})
    with pytest.raises(EmulatorInputError, match="no input population"):
        board.run({"nope": np.zeros((5, 12), bool)})


# ------------------------------------------------------------------ weights
def test_read_weights_equal_the_image(board, image) -> None:
    board.load(image)
    for c in image.connections:
        np.testing.assert_array_equal(board.read_weights(c.name), image.weights(c.name))
    with pytest.raises(EmulatorInputError, match="no connection"):
        board.read_weights("nope")


def test_written_weights_are_read_back_and_used(board, image) -> None:
    from neurochip.board import with_weights

    board.load(image)
    name = image.connections[0].name
    W = image.weights(name)
    W2 = np.where(W > 0, 0, W)  # silence the excitatory synapses of the input layer
    board.write_weights(name, W2)
    np.testing.assert_array_equal(board.read_weights(name), W2)
    x = demo_inputs(20)
    got = board.run({"in": x})
    want = truth(with_weights(image, name, W2, "test"), {"in": x})
    assert_same(got, want)
    assert not np.array_equal(got.spikes["l0"], truth(image, {"in": x}).spikes["l0"])


def test_unrepresentable_weights_are_refused(board, image) -> None:
    board.load(image)
    c = image.connections[0]
    W = image.weights(c.name)
    with pytest.raises(EmulatorInputError):
        board.write_weights(c.name, np.full_like(W, 10_000))
    with pytest.raises(EmulatorInputError, match="shape"):
        board.write_weights(c.name, W[:, :1])
    np.testing.assert_array_equal(board.read_weights(c.name), W)  # nothing changed


# ------------------------------------------------------------------ neuron state
def test_read_state_equals_the_reference_after_a_run(board, image) -> None:
    board.load(image)
    x = demo_inputs(18, seed=9)
    board.run({"in": x})
    ref = neurochip.Emulator(image, backend="reference")
    ref.run({"in": x})
    got, want = board.read_state(), ref.state()
    for k in ("u", "v"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert np.abs(want["v"]).sum() > 0


def test_written_state_is_read_back_and_evolves_like_the_reference(board, image) -> None:
    board.load(image)
    n = image.n_neurons
    rng = np.random.default_rng(3)
    u = rng.integers(-5000, 5000, (1, n))
    v = rng.integers(0, 3000, (1, n))
    board.write_state(u=u, v=v)
    got_state = board.read_state()
    np.testing.assert_array_equal(got_state["u"], u)
    np.testing.assert_array_equal(got_state["v"], v)
    ref = neurochip.Emulator(image, backend="reference")
    ref.set_state(u, v)
    x = demo_inputs(10, seed=10)
    assert_same(board.run({"in": x}, probes=["l0.v"]), ref.run({"in": x}, probes=["l0.v"]))


def test_state_outside_the_registers_is_refused(board, image) -> None:
    board.load(image)
    n = image.n_neurons
    big = 1 << (image.hw.formats.v_bits - 1)
    with pytest.raises(EmulatorInputError, match="register"):
        board.write_state(v=np.full((1, n), big))
    with pytest.raises(EmulatorInputError, match="shape"):
        board.write_state(u=np.zeros((1, n + 1), np.int64))


# ------------------------------------------------------------------ learning
def test_learning_equals_the_reference_learning_engine(board) -> None:
    from neurochip.learning import compiled_learning

    img = learning_image()
    board.load(img)
    rng = np.random.default_rng(2)
    N, T = 3, 12
    X = rng.random((N, T, 12)) < 0.3
    cl = compiled_learning(img)
    tg = {n: rng.random((N, T, k)) < 0.3 for n, k in zip(cl.target_channels, cl.target_sizes)}
    reward = rng.integers(-4, 5, (N, T))
    h = board.learn({"in": X}, tg, reward)
    ref = neurochip.Emulator(img, backend="reference")
    hr = ref.learn({"in": X}, tg, reward)
    assert h.samples == hr.samples == N and h.steps == hr.steps
    for k in hr.counters:
        np.testing.assert_array_equal(h.counters[k], hr.counters[k], err_msg=k)
    changed = False
    for c in img.connections:
        w = board.read_weights(c.name)
        np.testing.assert_array_equal(w, ref.weights(c.name), err_msg=c.name)
        changed |= not np.array_equal(w, img.weights(c.name))
    assert hr.counters["trace_updates"].sum() > 0
    assert changed or hr.counters["learn_updates"].sum() == 0


def test_learning_needs_a_learning_configuration(board, image) -> None:
    board.load(image)
    with pytest.raises(UnsupportedOperation):
        board.learn({"in": demo_inputs(5, batch=2)})


# ------------------------------------------------------------------ golden vectors
def test_golden_vectors_replay_exactly(golden, image) -> None:
    report = golden.check("demo", image, {"in": demo_inputs(30)}, 34)
    assert report.ok and report.counts["spikes l2"] == 0
