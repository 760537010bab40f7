"""neurochip.core.lif: the one float LIF step, and its users running it identically."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.float_sim import simulate
from compiler.ir import layered_graph
from compiler.training.bptt import forward, time_major
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import SmoothStep, Surrogate
from neurochip.core.lif import SPIKE_SIGMOID, SPIKE_STEP, LifParams, LifState, lif_step, step


def literal(prm: LifParams, bias, theta, i_prev, u_prev, drive):
    """The conventions' equations, one neuron at a time in Python floats."""
    B, n = drive.shape
    out = [np.zeros((B, n)) for _ in range(4)]
    for r in range(B):
        for j in range(n):
            i = prm.alpha * i_prev[r, j] + drive[r, j]
            p = prm.beta * u_prev[r, j] + i + bias[j]
            if not prm.spiking:
                s, u = 0.0, p
            else:
                if prm.spike == SPIKE_STEP:
                    s = 1.0 if p > theta[j] else 0.0
                else:
                    s = 1.0 / (1.0 + np.exp(-prm.steepness * (p - theta[j])))
                u = p - theta[j] * s if prm.subtract else p * (1.0 - s)
            for k, val in enumerate((i, p, s, u)):
                out[k][r, j] = val
    return out


@pytest.mark.parametrize("spiking,subtract,spike", [
    (True, True, SPIKE_STEP), (True, False, SPIKE_STEP), (False, True, SPIKE_STEP),
    (True, True, SPIKE_SIGMOID), (True, False, SPIKE_SIGMOID)])
def test_step_follows_the_conventions(spiking: bool, subtract: bool, spike: int) -> None:
    rng = np.random.default_rng(1)
    B, n = 3, 7
    prm = LifParams(0.6, 0.9, spiking, subtract, spike, 3.0)
    bias, theta = rng.normal(0, 0.2, n), rng.uniform(0.2, 1.5, n)
    i_prev, u_prev, drive = (rng.normal(0, 1, (B, n)) for _ in range(3))
    got = step(prm, bias, theta, i_prev, u_prev, drive)
    want = literal(prm, bias, theta, i_prev, u_prev, drive)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    if spiking and spike == SPIKE_STEP:
        s = got.s.astype(bool)
        assert s.any() and not s.all()
        np.testing.assert_array_equal(got.u[s], (got.p - theta)[s] if subtract else 0.0)
        np.testing.assert_array_equal(got.u[~s], got.p[~s])


def test_step_updates_the_membrane_in_place() -> None:
    rng = np.random.default_rng(2)
    prm = LifParams(0.5, 0.8, True, True)
    bias, theta = np.zeros(5), np.full(5, 0.5)
    i_prev, u, drive = (rng.normal(0, 1, (2, 5)) for _ in range(3))
    want = step(prm, bias, theta, i_prev, u, drive)
    out = LifState(np.empty((2, 5)), np.empty((2, 5)), np.empty((2, 5)), u)
    lif_step(prm, bias, theta, i_prev, u, drive, out)
    np.testing.assert_array_equal(u, want.u)
    np.testing.assert_array_equal(out.p, want.p)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_float_sim_and_training_forward_run_the_same_dynamics(reset: str) -> None:
    """A trained-network shape run by the compiler's float simulator and by the trainer's
    Numba forward pass: the same spikes, currents and voltages."""
    rng = np.random.default_rng(3)
    layers = (LayerSpec("hid", 12, alpha=0.7, beta=0.85, reset=reset),
              LayerSpec("out", 4, alpha=0.6, beta=0.9, spiking=False))
    net = SpikingNet.build(6, layers, seed=4)
    x = rng.random((5, 15, 6)) < 0.4
    g = layered_graph(n_in=6, layers=[
        dict(name="hid", weight=net.params["hid.W"] * 3.0, alpha=0.7, beta=0.85,
             threshold=1.0, reset=reset),
        dict(name="out", weight=net.params["out.W"] * 3.0, alpha=0.6, beta=0.9,
             threshold=None)])
    # the same weights, scaled by 3 on both sides so that the hidden layer fires
    tr = forward(net, time_major(x, 6), Surrogate(),
                 params={k: v * 3.0 for k, v in net.params.items()})
    r = simulate(g, {"in": x})
    hid_s = np.swapaxes(tr.layers[0].S, 0, 1)
    assert 0.05 < hid_s.mean() < 0.95
    np.testing.assert_array_equal(r.spikes["hid"], hid_s.astype(bool))
    for k, name in enumerate(("hid", "out")):
        np.testing.assert_allclose(r.i[name], np.swapaxes(tr.layers[k].I, 0, 1), atol=1e-12)
    u_hid = np.swapaxes(tr.layers[0].P - 1.0 * tr.layers[0].S if reset == "subtract"
                        else tr.layers[0].P * (1 - tr.layers[0].S), 0, 1)
    np.testing.assert_allclose(r.v["hid"], u_hid, atol=1e-12)
    np.testing.assert_allclose(r.v["out"], np.swapaxes(tr.layers[1].P, 0, 1), atol=1e-12)


def test_training_kernel_and_numpy_reference_agree_on_the_smooth_step() -> None:
    """The sigmoid forward of the step (used by gradient checks) matches bptt's numpy loop."""
    rng = np.random.default_rng(5)
    net = SpikingNet.build(4, (LayerSpec("hid", 6, recurrent=True, bias=True),
                               LayerSpec("out", 2, reset="zero")), seed=1)
    x = time_major(rng.random((3, 10, 4)) < 0.5, 4)
    a = forward(net, x, SmoothStep(3.0), kernels=True)
    b = forward(net, x, SmoothStep(3.0), kernels=False)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_allclose(la.S, lb.S, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(la.P, lb.P, rtol=1e-12, atol=1e-12)


def test_the_learning_float_reference_neuron_is_this_step() -> None:
    """The learning float reference (compiler.learning.floatref) advances its neurons
    through the one float step, population by population, on states drawn at random."""
    from compiler.learning.floatref import FloatLearner
    from neurochip.tasks.learning_demos import digits_image

    image = digits_image("dfa", seed=1, n_hidden=20)
    fl = FloatLearner(image)
    rng = np.random.default_rng(7)
    fl.u = rng.normal(0, 2000, fl.N)
    fl.v = rng.normal(0, 3000, fl.N) + fl.theta * 0.8
    slot = rng.normal(0, 50, fl.N)
    fl.pending[0] = slot
    u0, v0 = fl.u.copy(), fl.v.copy()
    s, v_pre = fl._inference(np.zeros(image.n_inputs, bool))
    unity = float(1 << image.hw.formats.decay_bits)
    fired = 0
    for p in image.lif_populations:
        sl = slice(p.offset, p.offset + p.size)
        prm = LifParams((unity - 1 - p.du) / unity if p.du >= 0 else 1.0,
                        (unity - p.dv) / unity, p.spiking, p.reset == "subtract")
        st = step(prm, fl.bias[sl], fl.theta[sl], u0[None, sl], v0[None, sl],
                  (slot * fl.in_gain)[None, sl])
        np.testing.assert_array_equal(st.i[0], fl.u[sl])
        np.testing.assert_array_equal(st.p[0], v_pre[sl])
        np.testing.assert_array_equal(st.s[0] > 0, s[sl])
        np.testing.assert_array_equal(st.u[0], fl.v[sl])
        fired += int(s[sl].sum())
    assert 0 < fired < fl.N
