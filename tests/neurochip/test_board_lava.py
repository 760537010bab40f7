"""The lava board: the image run as Lava processes on Lava's CPU runtime (slow: few, tiny)."""

from __future__ import annotations

import numpy as np
import pytest

import neurochip
from neurochip.board import UnsupportedOperation, open_board
from neurochip.golden import record, replay
from neurochip.hil import demo_image, demo_inputs, learning_image

pytestmark = pytest.mark.lava


def test_lava_board_equals_the_emulator_across_runs_and_reports_no_accounting() -> None:
    img = demo_image()
    x = demo_inputs(16)
    want = neurochip.Emulator(img).run({"in": x}, probes=["l1.v"])
    with open_board("lava") as b:
        b.load(img)
        a = b.run({"in": x[:9]}, probes=["l1.v"])
        c = b.run({"in": x[9:]}, probes=["l1.v"])  # state carries over (history replayed)
        assert (a.t_start, c.t_start) == (0, 9)
        np.testing.assert_array_equal(np.concatenate([a.probes["l1.v"], c.probes["l1.v"]]),
                                      want.probes["l1.v"])
        for k in want.spikes:
            np.testing.assert_array_equal(np.concatenate([a.spikes[k], c.spikes[k]]),
                                          want.spikes[k])
        assert a.counters == {} and a.extra["accounting"] is False
        info = b.info()
        assert info["backend"] == "lava" and info["hw"]["name"] == img.hw.name
        with pytest.raises(UnsupportedOperation, match="neuron state"):
            b.write_state(v=np.zeros((1, img.n_neurons), np.int64))
        with pytest.raises(UnsupportedOperation, match="learning"):
            b.load(learning_image())


def test_replaying_golden_vectors_on_lava_compares_all_but_accounting() -> None:
    from neurochip.board_lava import LavaBoard

    used: list[object] = []

    def config(net):  # Lava's run configuration is the caller's to choose
        cfg = net.run_config()
        used.append(cfg)
        return cfg

    rec = record(demo_image(), {"in": demo_inputs(12)}, 14)
    report = replay(rec, LavaBoard(run_config=config))
    assert len(used) == 1
    assert report.ok, report.summary()
    assert any("does not report" in s for s in report.not_compared)
    assert report.counts["probe l2.v"] == 0


def test_graded_and_sigma_delta_images_are_refused_by_name() -> None:
    net = neurochip.Network("loihi2_like", name="graded")
    net.add_input("g", 3, payload_bits=8)
    net.add_neurons("sd", 2, "sigma_delta", vth=4)
    net.connect("g", "sd", np.ones((2, 3), np.int64) * 2)
    img = neurochip.compile(net, "loihi2_like")
    with open_board("lava") as b, pytest.raises(UnsupportedOperation, match="export_lava") as e:
        b.load(img)
    assert "'g'" in str(e.value) and "'sd'" in str(e.value)
