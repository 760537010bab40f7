"""compiler.float_sim: the chip-order float model, and its agreement with the chip."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import neurochip
from compiler.float_sim import simulate, state_statistics
from compiler.ir import Dense, Graph, Input, Neurons, Projection, Sparse, layered_graph
from compiler.passes.normalize import normalize
from compiler.passes.quantize import dequantize_graph, quantize_graph
from compiler.pipeline import compile_model
from neurochip.core.errors import ConfigError

HW = neurochip.load_hw("loihi_like")


def one_neuron(alpha=0.5, beta=0.8, threshold=1.0, w=0.6, reset="subtract", bias=0.0,
               delay=0) -> Graph:
    return Graph({"in": Input((1,)), "n": Neurons((1,), alpha=alpha, beta=beta,
                                                  threshold=threshold, bias=bias,
                                                  reset=reset)},
                 (Projection("w", "in", "n", Dense([[w]]), delay=delay),), {"out": "n"})


def reference(x, alpha, beta, theta, w, reset, bias=0.0, delay=0):
    """The conventions' equations, written out literally."""
    T = len(x)
    I = U = 0.0
    S, V = [], []
    for n in range(T):
        arrive = x[n - 1 - delay] if n - 1 - delay >= 0 else 0
        I = alpha * I + w * arrive
        U = beta * U + I + bias
        s = U > theta
        if s:
            U = 0.0 if reset == "zero" else U - theta
        S.append(s)
        V.append(U)
    return np.array(S), np.array(V)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("delay", [0, 3])
def test_single_neuron_follows_the_conventions(reset: str, delay: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.random(60) < 0.4
    r = simulate(one_neuron(reset=reset, bias=0.05, delay=delay), {"in": x[:, None]})
    S, V = reference(x, 0.5, 0.8, 1.0, 0.6, reset, 0.05, delay)
    np.testing.assert_array_equal(r.spikes["n"][:, 0], S)
    np.testing.assert_allclose(r.v["n"][:, 0], V, atol=1e-12)
    assert S.any()


def test_one_step_latency_per_projection() -> None:
    g = layered_graph(n_in=1, layers=[
        dict(name="a", weight=[[2.0]], alpha=0.0, beta=0.0, threshold=1.0),
        dict(name="b", weight=[[2.0]], alpha=0.0, beta=0.0, threshold=1.0)])
    x = np.zeros((6, 1), bool)
    x[0] = True
    r = simulate(g, {"in": x})
    assert np.flatnonzero(r.spikes["a"][:, 0]).tolist() == [1]
    assert np.flatnonzero(r.spikes["b"][:, 0]).tolist() == [2]


def test_per_synapse_delays_and_sparse_weights() -> None:
    W = sp.csr_matrix(np.array([[1.0, 1.0]]))
    g = Graph({"in": Input((2,)), "n": Neurons((1,), alpha=0, beta=0, threshold=0.5)},
              (Projection("w", "in", "n", Sparse(W), delay=1, delay_pre=[0, 2]),))
    x = np.zeros((8, 2), bool)
    x[0] = True
    r = simulate(g, {"in": x})
    assert np.flatnonzero(r.spikes["n"][:, 0]).tolist() == [2, 4]


def test_batched_inputs_run_independent_samples() -> None:
    rng = np.random.default_rng(1)
    g = one_neuron()
    xb = rng.random((3, 40, 1)) < 0.5
    rb = simulate(g, {"in": xb})
    assert rb.batched and rb.spikes["n"].shape == (3, 40, 1)
    for b in range(3):
        np.testing.assert_array_equal(rb.spikes["n"][b], simulate(g, {"in": xb[b]}).spikes["n"])


def test_readouts_record_voltage_and_never_spike() -> None:
    g = Graph({"in": Input((1,)), "r": Neurons((1,), alpha=0.5, beta=0.5, threshold=None,
                                               spiking=False)},
              (Projection("w", "in", "r", Dense([[10.0]])),))
    r = simulate(g, {"in": np.ones((5, 1), bool)})
    assert "r" not in r.spikes and r.v["r"][-1, 0] > 10


def test_input_validation() -> None:
    g = one_neuron()
    with pytest.raises(ConfigError):
        simulate(g, {"nope": np.zeros((3, 1))})
    with pytest.raises(ConfigError):
        simulate(g, {"in": np.zeros((3, 2))})
    with pytest.raises(ConfigError):
        simulate(g, {"in": np.full((3, 1), 0.5)})
    with pytest.raises(ConfigError):
        simulate(g, {"in": np.zeros((3, 1))}, steps=2)
    r = simulate(g, steps=4)
    assert r.spikes["n"].shape == (4, 1) and not r.spikes["n"].any()


def test_state_statistics_max_and_percentile() -> None:
    g = one_neuron(alpha=0.0, beta=0.0, threshold=100.0, w=2.0)
    x = np.ones((10, 1), bool)
    assert state_statistics(g, {"in": x})["n"] == pytest.approx(2.0)
    assert state_statistics(g, {"in": x}, percentile=50)["n"] == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        state_statistics(g, {"in": x}, percentile=0)


def test_threshold_folding_keeps_every_spike() -> None:
    rng = np.random.default_rng(2)
    g = layered_graph(n_in=6, layers=[
        dict(name="h", weight=rng.normal(0, 0.7, (8, 6)), alpha=0.6, beta=0.9,
             threshold=rng.uniform(0.5, 2.0, 8), bias=rng.normal(0, 0.05, 8),
             recurrent=rng.normal(0, 0.3, (8, 8)))])
    n = normalize(g)
    x = rng.random((200, 6)) < 0.3
    a, b = simulate(g, {"in": x}), simulate(n, {"in": x})
    np.testing.assert_array_equal(a.spikes["h"], b.spikes["h"])
    assert a.spikes["h"].any()


def ff_graph(seed: int, alpha: float, beta: float, reset: str = "subtract") -> Graph:
    rng = np.random.default_rng(seed)
    return layered_graph(n_in=40, layers=[
        dict(name="h1", weight=rng.normal(0.05, 0.4, (60, 40)), alpha=alpha, beta=beta,
             threshold=1.0, reset=reset),
        dict(name="h2", weight=rng.normal(0.05, 0.4, (30, 60)), alpha=alpha, beta=beta,
             threshold=1.0, reset=reset),
        dict(name="o", weight=rng.normal(0, 0.3, (5, 30)), alpha=alpha, beta=beta,
             threshold=None)])


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_integer_dynamics_match_the_chip_exactly(reset: str) -> None:
    """alpha = 0 and beta = 1 need no decay arithmetic: the chip equals the float model of
    the registers it holds (the dequantized graph), spike for spike."""
    g = ff_graph(3, alpha=0.0, beta=1.0, reset=reset)
    q = quantize_graph(normalize(g), HW)
    x = np.random.default_rng(4).random((120, 40)) < 0.2
    fr = simulate(dequantize_graph(q, HW), {"in": x})
    img = compile_model(g, HW)
    er = neurochip.Emulator(img).run({"in": x}, probes=["o.v"])
    for k in ("h1", "h2"):
        np.testing.assert_array_equal(fr.spikes[k], er.spikes[k])
        assert fr.spikes[k].sum() > 50
    scale = img.metadata["outputs"]["output"]["scale"]
    # The readout integrates (beta = 1). A negative weight exponent floors each step's
    # summed input on the chip (by less than 2**6 voltage units), which a per-synapse
    # float weight cannot express; otherwise the voltage is exact.
    wexp = img.connection("o.w").weight_exp
    per_step = 2.0 ** 6 / scale if wexp < 0 else 1e-9
    err = np.abs(er.probes["o.v"] / scale - fr.v["o"])
    assert np.all(err <= per_step * np.arange(1, 121)[:, None] + 1e-9)


def test_float_and_chip_agree_with_ample_precision() -> None:
    """Leaky neurons: the chip's truncating decays and 8-bit weights cost almost nothing."""
    g = ff_graph(5, alpha=0.75, beta=0.875)
    x = np.random.default_rng(6).random((150, 40)) < 0.25
    img = neurochip.compile(g, HW, calibration={"in": x})  # the face adds the chip agreement
    fr = simulate(g, {"in": x})
    er = neurochip.Emulator(img).run({"in": x})
    for k in ("h1", "h2"):
        agree = np.mean(fr.spikes[k] == er.spikes[k])
        assert agree >= 0.99, (k, agree)
        assert abs(int(fr.spikes[k].sum()) - int(er.spikes[k].sum())) <= 0.03 * fr.spikes[k].sum()
        rep = img.metadata["quantization"][k]
        assert rep["agreement"]["spike_agreement"] == pytest.approx(agree)
