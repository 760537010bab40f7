"""ONNX files from the frameworks: SNN cells exported with torch.onnx, ReLU classifiers
converted by rate coding, and the bounds that keep hostile files out.

The files in tests/golden/onnx/ were written once by tools/make_onnx_files.py with
snnTorch 1.0.0, Norse 1.1.0, Sinabs 3.1.3 and torch.onnx; the .npz files hold the
framework's own output spikes on fixed inputs (or torch's test predictions).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import neurochip
from compiler.float_sim import simulate
from compiler.frontends import onnx as onnx_frontend
from compiler.frontends.onnx import ONNXImportWarning, from_onnx, read_onnx
from compiler.frontends.onnx.ann import ann_outputs, encode
from emulator.chip import Emulator
from neurochip.core.errors import ConfigError, ModelImportError
from neurochip.tasks.digits import digits_split

FILES = Path(__file__).resolve().parents[2] / "golden" / "onnx"
LAYERS = 2  # Linear -> cell -> Linear -> cell: the chip adds one step per layer

# file: (spike agreement of the float model with the framework, at least; warned?)
EXACT = {"snntorch_leaky": 1.0, "snntorch_leaky_zero": 1.0, "norse_lifcell": 1.0,
         "norse_lifcell_tau": 1.0, "norse_lifboxcell": 1.0, "sinabs_iaf": 1.0,
         "sinabs_lif": 1.0, "sinabs_lif_zero": 1.0, "snntorch_rleaky": 1.0,
         "snntorch_leaky_perneuron": 1.0}
APPROX = {"snntorch_leaky_nodelay": (0.88, "approximated"),
          "snntorch_synaptic": (0.94, "approximated"),
          "sinabs_iaf_multispike": (0.93, "several spikes"),
          "snntorch_rleaky_zero": (0.9, "zeroes its whole membrane"),
          "snntorch_rsynaptic": (0.96, "approximated")}


def _agreement(path: Path, graph: object) -> float:
    d = np.load(path.with_suffix(".npz"))
    out = next(iter(graph.outputs.values()))  # type: ignore[attr-defined]
    s = simulate(graph, {"x": d["x"]}).spikes[out]  # type: ignore[arg-type]
    return float(np.mean(s[:, LAYERS:] == (d["spikes"][:, :-LAYERS] > 0)))


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exported_cells_match_their_framework(name: str) -> None:
    path = FILES / f"{name}.onnx"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        g = read_onnx(path)
    msgs = [str(m.message) for m in w]
    assert not any("approximated" in m for m in msgs), msgs
    cells = g.metadata["import"]["cells"]
    assert len(cells) == 2 and all(c["agreement"] >= 0.999 for c in cells.values())
    assert _agreement(path, g) >= EXACT[name]
    if name.startswith("sinabs"):
        assert any(">= threshold" in m for m in msgs)  # Sinabs compares with >=


@pytest.mark.parametrize("name", sorted(APPROX))
def test_cells_the_chip_approximates_are_announced(name: str) -> None:
    path = FILES / f"{name}.onnx"
    low, word = APPROX[name]
    with pytest.warns(ONNXImportWarning, match=word):
        g = read_onnx(path)
    assert _agreement(path, g) >= low


def test_parameters_are_read_from_the_graph() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        leaky = read_onnx(FILES / "snntorch_leaky.onnx")
        zero = read_onnx(FILES / "snntorch_leaky_zero.onnx")
        norse = read_onnx(FILES / "norse_lifcell_tau.onnx")
        slif = read_onnx(FILES / "sinabs_lif.onnx")
    p = leaky.populations
    assert (p["cells.0"].beta, p["cells.1"].beta) == (0.9, 0.8)
    assert p["cells.0"].reset == "subtract" and p["cells.0"].alpha == 0.0
    # snnTorch's delayed reset: the chip's reset plus a self-connection -(1 - beta) theta
    e = leaky.edge("cells.0.reset_delay")
    np.testing.assert_allclose(e.synapses.to_csr().diagonal(), -0.1, rtol=1e-5)
    z = zero.populations["cells.0"]
    assert z.reset == "zero" and z.beta == 0.7 and np.allclose(z.threshold, 0.5)
    n = norse.populations["cells.0"]  # alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem
    assert (n.alpha, n.beta, n.reset) == (0.75, 0.875, "zero")
    assert np.allclose(n.threshold, 0.5)
    s = slif.populations["cell1"]
    assert np.isclose(s.alpha, np.exp(-1 / 5), atol=1e-6)
    assert np.isclose(s.beta, np.exp(-1 / 10), atol=1e-6)
    with pytest.raises(ModelImportError, match="contradicts") as ei:
        read_onnx(FILES / "snntorch_leaky.onnx", reset="zero")
    assert ei.value.field == "reset"


def test_recurrent_cells_read_their_feedback_as_a_self_projection() -> None:
    path = FILES / "snntorch_rleaky.onnx"
    model = onnx.load(str(path))
    W = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = read_onnx(path)
    # the fed-back spikes are the cell itself, not a network input
    assert list(g.inputs) == ["x"]
    for k, (fb, n) in enumerate((("state1_0", 16), ("state2_0", 5))):
        cell = f"cells.{k}"
        assert g.populations[cell].size == n
        rec = g.edge(f"{cell}.recurrent.Gemm")
        assert (rec.pre, rec.post) == (cell, cell)
        np.testing.assert_allclose(rec.synapses.to_csr().toarray(),
                                   W[f"{cell}.recurrent.weight"], rtol=1e-6)
        md = g.metadata["import"]["cells"][cell]["recurrent"]
        assert md["input"] == fb and md["outputs"] == [f"{fb}_out"]
        # the recurrent Linear's bias: carried from the cell's first input on
        src = g.edge(f"bias_source:{cell}")
        np.testing.assert_allclose(src.synapses.weight.reshape(-1),
                                   W[f"{cell}.recurrent.bias"], rtol=1e-6)
        assert src.delay == k and np.all(g.populations[cell].bias == 0)
    assert set(g.outputs) == {"spikes"}


def test_per_neuron_betas_become_per_neuron_decays() -> None:
    path = FILES / "snntorch_leaky_perneuron.onnx"
    W = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = read_onnx(path)
        img = neurochip.compile(path, "loihi_like")
    for cell in ("cells.0", "cells.1"):
        p = g.populations[cell]
        assert p.per_neuron_decays and p.alpha == 0.0
        np.testing.assert_allclose(p.beta, W[f"{cell}.beta"], atol=1e-6)
    assert {p.name: p.model for p in img.populations if p.kind != "input"} == {
        "cells.0": "lif_per_neuron", "cells.1": "lif_per_neuron"}


def test_constant_inputs_start_with_the_first_input() -> None:
    """A bias added from the framework's first step: exact, where a bias register would
    start one step per layer early (the files with biases agreed on 99 % before)."""
    for name in ("snntorch_leaky_zero", "sinabs_lif_zero"):
        path = FILES / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = read_onnx(path)
        src = g.metadata["import"]["bias_source"]
        assert src is not None and g.populations[src].size == 1
        delays = {e.post: e.delay for e in g.edges if e.pre == src}
        first = next(e.post for e in g.edges if e.pre == "x")  # the layer the input feeds
        assert sorted(delays.values()) == [0, 1] and delays[first] == 0
        assert _agreement(path, g) == 1.0


@pytest.mark.parametrize("name", ["snntorch_leaky", "norse_lifcell", "sinabs_iaf",
                                  "snntorch_rleaky"])
def test_exported_cells_on_the_chip(name: str) -> None:
    path = FILES / f"{name}.onnx"
    d = np.load(path.with_suffix(".npz"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = neurochip.compile(path, "loihi_like", calibration={"x": d["x"]})
    out = img.metadata["outputs"]["spikes"]["population"]
    chip = Emulator(img).run({"x": d["x"]}, steps=d["x"].shape[1]).spikes[out]
    assert np.mean(chip[:, LAYERS:] == (d["spikes"][:, :-LAYERS] > 0)) >= 0.95


def _cell_model(extra: list[onnx.NodeProto]) -> onnx.ModelProto:
    """A hand-written Leaky cell: mem' = 0.9 mem + W x - theta * S(mem_prev)."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["cur"], name="fc"),
             helper.make_node("Mul", ["mem", "beta"], ["dec"], name="cell/decay"),
             helper.make_node("Add", ["dec", "cur"], ["u"], name="cell/add"),
             *extra,
             helper.make_node("Greater", ["u2", "th"], ["gt"], name="cell/fire"),
             helper.make_node("Cast", ["gt"], ["spk"], name="cell/cast", to=1),
             helper.make_node("Mul", ["spk", "th"], ["drop"], name="cell/drop"),
             helper.make_node("Sub", ["u2", "drop"], ["mem_out"], name="cell/reset")]
    g = helper.make_graph(
        nodes, "cell",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("mem", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("spk", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("mem_out", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.full((3, 2), 0.5, np.float32), "W"),
                     numpy_helper.from_array(np.float32(0.9), "beta"),
                     numpy_helper.from_array(np.float32(1.0), "th")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_hand_written_cell_and_its_faults() -> None:
    ok = from_onnx(_cell_model([helper.make_node("Identity", ["u"], ["u2"], name="cell/id")]))
    assert ok.populations["cell"].beta == 0.9 and ok.populations["cell"].reset == "subtract"
    square = _cell_model([helper.make_node("Mul", ["u", "u"], ["u2"], name="cell/square")])
    with pytest.raises(ModelImportError) as ei:
        from_onnx(square)  # u**2 is no LIF neuron: its reset or its check fails
    assert "cell at node 'cell/decay'" in str(ei.value)
    tanh = _cell_model([helper.make_node("Tanh", ["u"], ["u2"], name="cell/squash")])
    with pytest.raises(ModelImportError, match="does not spike") as ei:
        from_onnx(tanh)  # tanh < 1 = threshold
    assert ei.value.field == "threshold"


# ---------------------------------------------------------------------------- ANN
@pytest.mark.parametrize(("name", "shape"), [("ann_mlp", (64,)), ("ann_cnn", (1, 8, 8))])
def test_ann_conversion_keeps_accuracy_at_8_bits(name: str, shape: tuple[int, ...]) -> None:
    """The first 150 images of the digits test split, 64 steps: chip within 2 points."""
    Xtr, Xte, _, yte = digits_split()
    path = FILES / f"{name}.onnx"
    img = neurochip.compile(path, "loihi_like", ann_calibration=Xtr[:300].reshape(-1, *shape),
                            weight_bits=8)
    conv = img.metadata["import"]["conversion"]
    assert conv["percentile"] == 99.9 and conv["input_scale"] == pytest.approx(1.0)
    Xt, yt = Xte[:150].reshape(-1, *shape), yte[:150]
    ann = ann_outputs(onnx.load(str(path)), Xt)["logits"].argmax(1)
    torch_pred = np.load(path.with_suffix(".npz"))["torch_pred"][:150]
    assert np.mean(ann == torch_pred) > 0.99  # the reference evaluator runs the file
    r = Emulator(img).run({conv["input"]: encode(Xt, 64, conv["input_scale"])}, steps=64,
                          probes=[f"{conv['output']}.v"])
    chip = r.probes[f"{conv['output']}.v"][:, -1].argmax(-1)
    assert np.mean(chip == yt) >= np.mean(ann == yt) - 0.02


def test_ann_needs_calibration_naming_the_option() -> None:
    with pytest.raises(ConfigError) as ei:
        neurochip.compile(FILES / "ann_mlp.onnx", "loihi_like")
    assert ei.value.field == "ann_calibration"
    with pytest.raises(ConfigError, match="negative") as ei:
        read_onnx(FILES / "ann_mlp.onnx", ann_calibration=-np.ones((4, 64)))


def _ann(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray], shape: list[object]
         ) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "ann", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k)
                     for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_batchnorm_folded_and_maxpool_announced() -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.5, (2, 1, 3, 3))
    gamma, beta_, mean, var = np.array([2.0, 0.5]), np.array([0.1, -0.2]), \
        np.array([0.3, 0.0]), np.array([4.0, 1.0])
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"],
                              name="bn", epsilon=0.0),
             helper.make_node("Relu", ["n"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "Wf"], ["y"], name="fc", transB=1)]
    m = _ann(nodes, {"W": W, "g": gamma, "b": beta_, "m": mean, "v": var,
                     "Wf": rng.normal(0, 0.3, (3, 8))}, ["N", 1, 4, 4])
    X = rng.uniform(0, 1, (20, 1, 4, 4))
    with pytest.warns(ONNXImportWarning, match="MaxPool"):
        g = from_onnx(m, ann_calibration=X, ann_percentile=100.0)
    k = gamma / np.sqrt(var)
    conv = g.edge("conv").synapses
    relu = g.populations["relu"]
    np.testing.assert_allclose(relu.bias.reshape(2, 16)[:, 0], beta_ - mean * k)
    plain = [nodes[0], helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"), nodes[5]]
    dense = from_onnx(_ann(plain,
                           {"W": W, "Wf": rng.normal(0, 0.3, (3, 32))}, ["N", 1, 4, 4]),
                      ann_calibration=X, ann_percentile=100.0)
    unfolded = dense.edge("conv").synapses.to_csr().toarray()
    folded = conv.to_csr().toarray()
    np.testing.assert_allclose(folded, unfolded * np.repeat(k, 16)[:, None], rtol=1e-5)
    assert dense.metadata["import"]["conversion"]["percentile"] == 100.0


def test_static_shape_ops_fold(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = read_onnx(FILES / "ann_cnn.onnx", ann_calibration=np.ones((2, 1, 8, 8)) * 0.5)
    ops = {n.op_type for n in onnx.load(str(FILES / "ann_cnn.onnx")).graph.node}
    assert {"Shape", "Gather", "Concat", "Reshape", "Add"} <= ops  # a residual, a view()
    assert g.populations["logits"].spiking is False


# ---------------------------------------------------------------------------- bounds
def test_hostile_sizes_are_typed_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    t = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "h",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[t])
    with pytest.raises(ModelImportError, match="over the limit") as ei:
        from_onnx(helper.make_model(g))
    assert ei.value.field == "size" and "initializer 'W'" in str(ei.value)
    big = helper.make_graph([], "h", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 1 << 23])], [])
    with pytest.raises(ModelImportError, match="features, over the limit"):
        from_onnx(helper.make_model(big))
    bomb = _ann([helper.make_node("ConstantOfShape", ["s"], ["z"], name="bomb"),
                 helper.make_node("Add", ["x", "z"], ["y"], name="add")],
                {"s": np.array([1 << 14, 1 << 14])}, ["N", 3])
    with pytest.raises(ModelImportError, match="node 'bomb'") as ei:
        from_onnx(bomb)
    assert ei.value.field == "size"
    ext = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 2],
                      data_location=TensorProto.EXTERNAL)
    g2 = helper.make_graph([], "e", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 4])], [], initializer=[ext])
    with pytest.raises(ModelImportError, match="external"):
        from_onnx(helper.make_model(g2))
    monkeypatch.setitem(onnx_frontend.LIMITS, "file_bytes", 100)
    with pytest.raises(ModelImportError, match="bytes, over the limit"):
        read_onnx(FILES / "ann_mlp.onnx")
