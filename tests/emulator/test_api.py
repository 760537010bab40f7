"""Emulator API: inputs, probes, batches, persistence, reset, and typed errors."""

from pathlib import Path

import numpy as np
import pytest

import neurochip
from neurochip.core.errors import EmulatorInputError


@pytest.fixture
def img() -> neurochip.ChipImage:
    net = neurochip.Network()
    net.add_input("in", 3)
    net.add_input("aux", 2)
    net.add_lif("h", 4, du=1000, dv=500, vth=20)
    net.add_lif("r", 2, du=4095, dv=0, vth=0, spiking=False)
    net.connect("in", "h", np.full((4, 3), 40))
    net.connect("aux", "h", np.full((4, 2), -20))
    net.connect("h", "r", np.full((2, 4), 10))
    return neurochip.compile(net, "loihi_like")


def test_shapes_defaults_and_loading_from_path(img, tmp_path: Path) -> None:
    path = img.save(tmp_path / "m.nchip")
    em = neurochip.Emulator(path)
    x = np.ones((10, 3), bool)
    r = em.run({"in": x}, probes=["h.v", "r.v", "h.u"])
    assert set(r.spikes) == {"h", "r"} and r.spikes["h"].shape == (10, 4)
    assert r.spikes["h"].dtype == bool and r.probes["r.v"].shape == (10, 2)
    assert r.cycles.shape == (10, 1) and r.latency_ns.shape == (10,)
    assert not r.spikes["r"].any() and r.probes["r.v"][-1, 0] > 0
    r2 = em.run(steps=5, spikes=["r"])
    assert set(r2.spikes) == {"r"} and r2.t_start == 10 and em.t == 15
    r3 = em.run({"in": x[:2]}, steps=4, spikes=None)
    assert r3.spikes == {} and r3.steps == 4
    em.reset()
    assert em.t == 0 and em.state()["v"].shape == (1, 6)


def test_integer_spikes_and_missing_inputs(img) -> None:
    r = neurochip.Emulator(img).run({"in": np.ones((4, 3), np.int64)}, probes=["h.v"])
    r_bool = neurochip.Emulator(img).run({"in": np.ones((4, 3), bool)}, probes=["h.v"])
    np.testing.assert_array_equal(r.probes["h.v"], r_bool.probes["h.v"])


@pytest.mark.parametrize(
    ("inputs", "kw", "match"),
    [
        ({"nope": np.zeros((2, 3))}, {}, "no input population 'nope'"),
        ({"h": np.zeros((2, 4))}, {}, "no input population 'h'"),
        ({"in": np.zeros((2, 4))}, {}, r"shape \(2, 4\); expected \(T, 3\)"),
        ({"in": np.full((2, 3), 2)}, {}, "spikes"),
        ({"in": np.zeros((5, 3))}, {"steps": 3}, "5 steps but steps=3"),
        ({}, {}, "inputs or a number of steps"),
        ({"in": np.zeros((2, 2, 3)), "aux": np.zeros((3, 2, 2))}, {}, "batch 3"),
        ({"in": np.zeros((2, 3))}, {"probes": ["h.w"]}, "bad probe 'h.w'"),
        ({"in": np.zeros((2, 3))}, {"probes": ["in.v"]}, "bad probe 'in.v'"),
        ({"in": np.zeros((2, 3))}, {"spikes": ["in"]}, "cannot record spikes of 'in'"),
        ({"in": np.zeros((2, 3))}, {"steps": -1}, "non-negative"),
    ],
)
def test_bad_inputs_are_typed_errors(img, inputs, kw, match) -> None:
    with pytest.raises(EmulatorInputError, match=match):
        neurochip.Emulator(img).run(inputs, **kw)


def test_batch_size_is_fixed_until_reset(img) -> None:
    em = neurochip.Emulator(img)
    em.run({"in": np.zeros((2, 5, 3), bool)})
    with pytest.raises(EmulatorInputError, match=r"batch of 2.*reset"):
        em.run({"in": np.zeros((5, 3), bool)})
    em.reset()
    assert em.run({"in": np.zeros((5, 3), bool)}).spikes["h"].shape == (5, 4)


def test_unknown_backend(img) -> None:
    with pytest.raises(EmulatorInputError, match="backend"):
        neurochip.Emulator(img, backend="gpu")  # type: ignore[arg-type]


def test_two_dimensional_inputs_broadcast_over_batch(img) -> None:
    xb = np.zeros((2, 6, 3), bool)
    xb[1, 0] = True
    aux = np.ones((6, 2), bool)
    r = neurochip.Emulator(img).run({"in": xb, "aux": aux}, probes=["h.u"])
    assert r.probes["h.u"].shape == (2, 6, 4)
    single = neurochip.Emulator(img).run({"in": xb[1], "aux": aux}, probes=["h.u"])
    np.testing.assert_array_equal(r.probes["h.u"][1], single.probes["h.u"])
