"""ONNX frontend: the spiking convention, every supported op, and what is rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import neurochip
from compiler.frontends.onnx import ONNXImportWarning, from_onnx, read_onnx
from compiler.ir import Conv, Dense, Sparse
from compiler.pipeline import compile_model
from neurochip.core.errors import ConfigError, ModelImportError

HW = neurochip.load_hw("loihi_like")


def model(nodes, inputs, outputs, inits=None, meta=None):
    g = helper.make_graph(
        nodes, "snn",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k)
                     for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("neurochip", 1)])
    for k, v in (meta or {}).items():
        m.metadata_props.add(key=k, value=v)
    return m


def LIF(x, y, name, **kw):
    ins = [x] + ([kw.pop("w_rec")] if "w_rec" in kw else [])
    args = dict(alpha=0.5, beta=0.9, threshold=1.0)
    args.update(kw)
    return helper.make_node("LIF", ins, [y], name=name, domain="neurochip", **args)


def LI(x, y, name, **kw):
    args = dict(alpha=0.0, beta=0.9)
    args.update(kw)
    return helper.make_node("LI", [x], [y], name=name, domain="neurochip", **args)


def mlp(rng=None, with_bias=True, recurrent=True, meta=None):
    rng = rng or np.random.default_rng(0)
    W1, b1 = rng.normal(0, 0.5, (8, 16)), rng.normal(0, 0.05, 16)
    V, W2 = rng.normal(0, 0.1, (16, 16)), rng.normal(0, 0.5, (16, 4))
    lif_kw = {"w_rec": "V"} if recurrent else {}
    nodes = [helper.make_node("Gemm", ["x", "W1"] + (["b1"] if with_bias else []), ["h_in"],
                              name="/fc1/Gemm"),
             LIF("h_in", "h", "/lif1/LIF", alpha=0.0, **lif_kw),
             helper.make_node("MatMul", ["h", "W2"], ["o_in"], name="fc2"),
             LI("o_in", "o", "out")]
    inits = {"W1": W1, "V": V, "W2": W2}
    if with_bias:
        inits["b1"] = b1
    return model(nodes, [("x", ["N", 8])], ["o", "h"], inits, meta), (W1, b1, V, W2)


def test_mlp_with_recurrence_and_readout(tmp_path: Path) -> None:
    m, (W1, b1, V, W2) = mlp()
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    ir = read_onnx(p)
    assert set(ir.inputs) == {"x"} and set(ir.populations) == {"lif1.LIF", "out"}
    np.testing.assert_allclose(ir.edge("fc1.Gemm").synapses.values, W1.T, rtol=1e-6)
    np.testing.assert_allclose(ir.edge("lif1.LIF.w_rec").synapses.values, V, rtol=1e-6)
    np.testing.assert_allclose(ir.edge("fc2").synapses.values, W2.T, rtol=1e-6)
    np.testing.assert_allclose(ir.nodes["lif1.LIF"].bias, b1, rtol=1e-6)  # alpha = 0: exact
    assert ir.outputs == {"o": "out", "h": "lif1.LIF"}
    assert not ir.nodes["out"].spiking
    img = compile_model(p, HW)
    assert img.metadata["outputs"]["o"]["signal"] == "v"
    assert img.metadata["outputs"]["h"] == {"population": "lif1.LIF", "signal": "spikes",
                                            "scale": img.metadata["outputs"]["h"]["scale"]}


def test_reset_from_metadata_attribute_and_caller() -> None:
    m, _ = mlp(meta={"neurochip.reset": "zero"})
    assert from_onnx(m).nodes["lif1.LIF"].reset == "zero"
    assert from_onnx(m, reset="subtract").nodes["lif1.LIF"].reset == "subtract"
    n = model([LIF("x", "y", "l", reset="zero")], [("x", [1, 3])], ["y"])
    assert from_onnx(n).nodes["l"].reset == "zero"


def test_gemm_attributes_and_filtered_bias() -> None:
    W = np.arange(6, dtype=float).reshape(2, 3)  # (out, in) with transB=1
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="g", transB=1, alpha=2.0,
                              beta=0.5),
             LIF("y", "s", "l", alpha=0.5)]
    m = model(nodes, [("x", ["N", 3])], ["s"], {"W": W, "b": [1.0, 2.0]})
    with pytest.warns(ONNXImportWarning, match="steady-state"):
        ir = from_onnx(m)
    np.testing.assert_allclose(ir.edge("g").synapses.values, 2 * W)
    np.testing.assert_allclose(ir.nodes["l"].bias, np.array([0.5, 1.0]) / 0.5)


def test_add_mul_and_reshapes() -> None:
    nodes = [helper.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
             helper.make_node("MatMul", ["xs", "W"], ["a"], name="mm"),
             helper.make_node("MatMul", ["x", "W"], ["b"], name="mm2"),
             helper.make_node("Add", ["a", "b"], ["ab"], name="sum"),
             helper.make_node("Add", ["ab", "c"], ["abc"], name="bias"),
             helper.make_node("Identity", ["abc"], ["id"], name="id"),
             LIF("id", "s1", "l1", alpha=0.0),
             helper.make_node("Flatten", ["s1"], ["f"], name="flat")]
    W = np.ones((3, 2))
    m = model(nodes, [("x", ["N", 3])], ["f"], {"s": [1.0, 2.0, 3.0], "W": W, "c": [0.25]})
    ir = from_onnx(m)
    by = {e.name: e for e in ir.edges}
    assert set(by) == {"mm", "mm2"}  # named after the weight layers
    np.testing.assert_allclose(by["mm"].synapses.to_csr().toarray(), [[1, 2, 3]] * 2)
    np.testing.assert_allclose(ir.nodes["l1"].bias, 0.25)
    assert ir.outputs == {"f": "l1"}


def test_conv_pool_reshape_chain() -> None:
    rng = np.random.default_rng(1)
    Wc = rng.normal(0, 0.5, (4, 2, 3, 3))
    nodes = [helper.make_node("Conv", ["x", "Wc", "bc"], ["c"], name="conv", pads=[1, 1, 1, 1],
                              strides=[1, 1]),
             LIF("c", "s", "l1", alpha=0.0),
             helper.make_node("AveragePool", ["s"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Reshape", ["p", "shape"], ["r"], name="rs"),
             helper.make_node("Gemm", ["r", "W"], ["y"], name="fc", transB=1),
             LIF("y", "o", "l2", alpha=0.0)]
    m = model(nodes, [("x", [1, 2, 6, 6])], ["o"],
              {"Wc": Wc, "bc": [0.1, 0, 0, 0], "shape": np.array([1, -1], np.float32),
               "W": rng.normal(0, 0.3, (3, 36))})
    ir = from_onnx(m)
    c = ir.edge("conv").synapses
    assert isinstance(c, Conv) and c.out_shape == (4, 6, 6)
    np.testing.assert_allclose(ir.nodes["l1"].bias.reshape(4, 36)[:, 0], [0.1, 0, 0, 0])
    fc = ir.edge("pool:fc")
    assert isinstance(fc.synapses, Sparse) and fc.synapses.shape == (3, 144)
    assert isinstance(compile_model(m, HW).connection("conv").storage, str)


def test_conv_auto_pad_same_and_conv1d() -> None:
    for auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", auto_pad=auto),
                 LIF("c", "s", "l", alpha=0.0)]
        m = model(nodes, [("x", [1, 1, 5])], ["s"], {"W": np.ones((2, 1, 2))})
        c = from_onnx(m).edge("conv").synapses
        assert isinstance(c, Conv)
        assert c.out_shape == ((2, 4) if auto == "VALID" else (2, 5))
        if auto == "SAME_UPPER":
            assert c.padding == ((0, 1),)
        if auto == "SAME_LOWER":
            assert c.padding == ((1, 0),)


def test_unsupported_ops_name_the_node() -> None:
    for op in ("Erf", "MaxPool", "Softmax"):
        nodes = [helper.make_node(op, ["x"], ["y"], name=f"my_{op}")]
        with pytest.raises(ModelImportError) as ei:
            from_onnx(model(nodes, [("x", ["N", 3])], ["y"]))
        assert f"node 'my_{op}' ({op})" in str(ei.value) and ei.value.field == "op_type"
    relu = [helper.make_node("Relu", ["x"], ["y"], name="r")]  # an ANN: needs calibration
    with pytest.raises(ConfigError) as ce:
        from_onnx(model(relu, [("x", ["N", 3])], ["y"]))
    assert ce.value.field == "ann_calibration"
    other = [helper.make_node("LIF", ["x"], ["y"], name="n", domain="com.example")]
    with pytest.raises(ModelImportError, match="domain"):
        from_onnx(model(other, [("x", ["N", 3])], ["y"]))


@pytest.mark.parametrize(("nodes", "inits", "match"), [
    ([helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")], {}, "initializer"),
    ([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"W": np.ones((4, 2))},
     "does not take"),
    ([helper.make_node("Gemm", ["x", "W"], ["y"], name="g", transA=1)], {"W": np.ones((3, 2))},
     "transA"),
    ([helper.make_node("Flatten", ["x"], ["y"], name="f", axis=0)], {}, "axis"),
    ([LIF("x", "y", "l", tau=3.0)], {}, "unknown attributes"),
    ([helper.make_node("LIF", ["x"], ["y"], name="l", domain="neurochip", alpha=0.5)], {},
     "lacks"),
    ([LIF("x", "y", "l", threshold=[1.0, 2.0])], {}, "threshold has"),
    ([LIF("x", "y", "l", alpha=1.5)], {}, "alpha"),
    ([LIF("x", "y", "l", w_rec="V")], {"V": np.ones((2, 2))}, "recurrent weight"),
    ([LI("x", "v", "r"), helper.make_node("MatMul", ["v", "W"], ["y"], name="mm")],
     {"W": np.ones((3, 3))}, "voltage"),
    ([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], {"W": np.ones((3, 3))},
     "must be the output of"),
    ([helper.make_node("Add", ["x", "c"], ["a"], name="add"), LIF("a", "y", "l", alpha=1.0)],
     {"c": [1.0]}, "grows without bound"),
    ([LIF("x", "y", "l"), LIF("y", "z", "l")], {}, "used twice"),
    ([helper.make_node("MatMul", ["nope", "W"], ["y"], name="mm")], {"W": np.ones((3, 3))},
     "not computed"),
])
def test_convention_errors(nodes, inits, match) -> None:
    outs = [nodes[-1].output[0]]
    with pytest.raises(ModelImportError, match=match):
        from_onnx(model(nodes, [("x", ["N", 3])], outs, inits))


def test_input_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelImportError, match="batch"):
        from_onnx(model([LIF("x", "y", "l")], [("x", [3])], ["y"]))
    with pytest.raises(ModelImportError, match="batch"):
        from_onnx(model([LIF("x", "y", "l")], [("x", [4, 3])], ["y"]))
    with pytest.raises(ModelImportError, match="does not exist"):
        read_onnx(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelImportError, match="readable"):
        read_onnx(bad)
    with pytest.raises(ModelImportError, match="reset"):
        from_onnx(model([LIF("x", "y", "l")], [("x", ["N", 3])], ["y"]), reset="hold")
    with pytest.raises(ModelImportError, match=r"neurochip\.reset"):
        from_onnx(model([LIF("x", "y", "l")], [("x", ["N", 3])], ["y"],
                        meta={"neurochip.reset": "x"}))


def test_constant_node_and_dense_shapes() -> None:
    nodes = [helper.make_node("Constant", [], ["W"], name="k",
                              value=numpy_helper.from_array(np.ones((3, 2), np.float32))),
             helper.make_node("MatMul", ["x", "W"], ["y"], name="mm"), LIF("y", "s", "l")]
    ir = from_onnx(model(nodes, [("x", ["N", 3])], ["s"]))
    assert isinstance(ir.edge("mm").synapses, Dense) and ir.nodes["l"].size == 2
