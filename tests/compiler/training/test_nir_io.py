from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from compiler.training.bptt import forward, time_major
from compiler.training.data import SpikeData
from compiler.training.losses import Loss
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.nir_io import (
    TRAINING_KEY,
    export_nir,
    import_nir,
    read_training_metadata,
)
from compiler.training.surrogates import Surrogate
from compiler.training.trainer import predict
from neurochip.core.errors import ModelImportError
from neurochip.tasks.chip_eval import evaluate_on_chip


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("readout_spiking", [False, True])
def test_export_import_round_trip(reset, readout_spiking, make_net, tmp_path) -> None:
    net = make_net(reset, readout_spiking=readout_spiking)
    p = export_nir(net, tmp_path / "m.nir", training={"task": "t", "steps": 7})
    back = import_nir(p)
    assert back.n_in == net.n_in and back.input_name == "in"
    for a, b in zip(net.layers, back.layers):
        assert (a.name, a.size, a.spiking, a.recurrent, a.bias) == \
               (b.name, b.size, b.spiking, b.recurrent, b.bias)
        assert b.alpha == pytest.approx(a.alpha, abs=1e-15)
        assert b.beta == pytest.approx(a.beta, abs=1e-15)
        if a.spiking:
            assert (b.threshold, b.reset) == (a.threshold, a.reset)
    assert set(back.params) == set(net.params)
    for k in net.params:
        np.testing.assert_allclose(back.params[k], net.params[k], rtol=1e-12, atol=1e-15)
    x = time_major(np.random.default_rng(0).random((3, 7, 12)) < 0.3, 12, net.steps(7))
    a, b = forward(net, x, Surrogate()), forward(back, x, Surrogate())
    np.testing.assert_array_equal(a.layers[0].S, b.layers[0].S)


def test_file_carries_our_conventions(make_net, tmp_path) -> None:
    p = export_nir(make_net(), tmp_path / "m.nir", dt=2e-3, training={"seed": 3})
    g = nir.read(str(p))
    md = g.metadata
    assert float(md["neurochip.dt"]) == 2e-3
    assert md["neurochip.decay"] == "euler"
    assert md["neurochip.reset"] == "subtract"
    assert int(md["neurochip.synaptic_delay"]) == 1
    assert "neurochip.version" in md
    assert json.loads(md[TRAINING_KEY]) == {"seed": 3}
    assert read_training_metadata(p) == {"seed": 3}
    types = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert types["hid"] == "CubaLIF" and types["out"] == "CubaLI"
    assert types["hid.w"] == "Linear" and types["hid.w_rec"] == "Linear"
    # our importer honours the file's dt: same decays as trained
    assert import_nir(p).layers[0].alpha == pytest.approx(0.7)


def test_import_a_foreign_file_with_options(tmp_path) -> None:
    """An snnTorch-style file (no neurochip metadata): dt and reset come from the caller."""
    dt = 1e-4
    n = 3
    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Linear(weight=np.full((n, 2), 0.5)),
        "lif": nir.CubaLIF(tau_syn=np.full(n, 2 * dt), tau_mem=np.full(n, 4 * dt),
                           r=np.full(n, 4.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                           v_reset=np.zeros(n), w_in=np.full(n, 2.0)),
        "output": nir.Output(output_type=np.array([n])),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    p = tmp_path / "foreign.nir"
    nir.write(str(p), g)
    net = import_nir(p, dt=dt, reset="zero")
    (layer,) = net.layers
    assert layer.alpha == pytest.approx(0.5) and layer.beta == pytest.approx(0.75)
    assert layer.reset == "zero" and layer.spiking
    np.testing.assert_allclose(net.params["lif.W"], 0.5)


def test_import_rejects_what_it_cannot_train(tmp_path) -> None:
    n = 2
    lif = dict(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3), r=np.full(n, 4.0),
               v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n),
               w_in=np.full(n, 2.0))
    nodes = {"input": nir.Input(input_type=np.array([2])),
             "fa": nir.Linear(weight=np.eye(2)), "fb": nir.Linear(weight=np.eye(2)),
             "a": nir.CubaLIF(**lif), "b": nir.CubaLIF(**lif),
             "oa": nir.Output(output_type=np.array([n])),
             "ob": nir.Output(output_type=np.array([n]))}
    edges = [("input", "fa"), ("fa", "a"), ("input", "fb"), ("fb", "b"), ("a", "oa"),
             ("b", "ob")]
    p = tmp_path / "branch.nir"
    nir.write(str(p), nir.NIRGraph(nodes=nodes, edges=edges))
    with pytest.raises(ModelImportError, match="layered"):
        import_nir(p, dt=1e-3, reset="subtract")


def test_export_errors(tmp_path) -> None:
    net = SpikingNet(2, (LayerSpec("hid", 2, alpha=1.0),), {"hid.W": np.eye(2)})
    with pytest.raises(ModelImportError) as e:
        export_nir(net, tmp_path / "x.nir")
    assert e.value.field == "alpha"
    mixed = SpikingNet(2, (LayerSpec("a", 2, reset="zero"), LayerSpec("b", 2)),
                       {"a.W": np.eye(2), "b.W": np.eye(2)})
    with pytest.raises(ModelImportError, match="reset"):
        export_nir(mixed, tmp_path / "y.nir")
    with pytest.raises(ModelImportError, match="not a readable"):
        (tmp_path / "bad.nir").write_text("not hdf5")
        read_training_metadata(tmp_path / "bad.nir")


def test_compiled_file_agrees_with_the_float_model(make_net, tmp_path) -> None:
    """Float model and chip differ only by quantization: 8-bit predictions mostly agree."""
    net = make_net(recurrent=False, bias=False)
    rng = np.random.default_rng(1)
    x = rng.random((60, 20, 12)) < 0.3
    loss = Loss("ce_max")
    pred = predict(net, loss, x)
    ev = evaluate_on_chip(net, loss, SpikeData(x, pred), path=tmp_path / "m.nir")
    assert (tmp_path / "m.nir").exists()
    assert ev.metric > 0.9
    assert ev.energy_uj > 0 and ev.syn_ops > 0


def test_import_rejects_delays(tmp_path) -> None:
    n = 2
    nodes = {"input": nir.Input(input_type=np.array([2])),
             "d": nir.Delay(delay=np.full(2, 2e-3)),
             "fc": nir.Linear(weight=np.eye(2)),
             "lif": nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3),
                                r=np.full(n, 4.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                                v_reset=np.zeros(n), w_in=np.full(n, 2.0)),
             "out": nir.Output(output_type=np.array([n]))}
    edges = [("input", "d"), ("d", "fc"), ("fc", "lif"), ("lif", "out")]
    p = tmp_path / "delay.nir"
    nir.write(str(p), nir.NIRGraph(nodes=nodes, edges=edges))
    with pytest.raises(ModelImportError) as e:
        import_nir(p, dt=1e-3, reset="subtract")
    assert e.value.field == "delay"
