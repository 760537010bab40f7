"""compile_model: the front passes, their options, the report, and the public entry point."""

from __future__ import annotations

import io
from pathlib import Path

import nir
import numpy as np
import pytest

import neurochip
from compiler.frontends.nir import write_nir
from compiler.ir import Graph, layered_graph
from compiler.pipeline import FRONT_PASSES, MAPPING_PASSES, compile_model, import_model
from neurochip.core.errors import ConfigError, ModelImportError, QuantizationError
from neurochip.core.network import Network

HW = neurochip.load_hw("loihi_like")


def graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    return layered_graph(n_in=10, layers=[
        dict(name="hid", weight=rng.normal(0.1, 0.5, (12, 10)), alpha=0.5, beta=0.9,
             threshold=rng.uniform(0.8, 1.2, 12), recurrent=rng.normal(0, 0.2, (12, 12))),
        dict(name="out", weight=rng.normal(0, 0.5, (3, 12)), alpha=0.0, beta=0.8,
             threshold=None)])


def spikes(T=80, n=10, seed=1):
    return np.random.default_rng(seed).random((T, n)) < 0.3


def test_pass_lists_are_named() -> None:
    assert [n for n, _ in FRONT_PASSES] == ["import", "normalize", "quantize", "lower"]
    assert MAPPING_PASSES[0][0] == "check_ranges"


def test_on_pass_sees_every_pass_in_order() -> None:
    seen: list[tuple[str, str]] = []
    compile_model(graph(), HW, on_pass=lambda n, obj: seen.append((n, type(obj).__name__)))
    assert [n for n, _ in seen] == ["import", "normalize", "quantize", "lower",
                                    "check_ranges", "partition", "place", "route",
                                    "check_rules"]
    assert seen[3][1] == "Network" and seen[0][1] == "Graph"
    seen.clear()
    compile_model(graph(), HW, calibration={"in": spikes()},
                  on_pass=lambda n, obj: seen.append((n, type(obj).__name__)))
    assert ("calibrate", "dict") in seen


def test_dump_ir_after_chosen_passes() -> None:
    buf = io.StringIO()
    compile_model(graph(), HW, dump_ir="quantize", dump_file=buf)
    text = buf.getvalue()
    assert "--- IR after quantize ---" in text and "graph (quantized)" in text
    assert "after import" not in text
    buf = io.StringIO()
    compile_model(graph(), HW, dump_ir="all", dump_file=buf)
    assert buf.getvalue().count("--- IR after") == 3
    for bad in ("lower", "nope", ["import", "x"]):
        with pytest.raises(ConfigError):
            compile_model(graph(), HW, dump_ir=bad)


def test_report_and_outputs_metadata_survive_save_and_load(tmp_path: Path) -> None:
    img = compile_model(graph(), HW)
    q = img.metadata["quantization"]
    assert set(q) == {"hid", "out"}
    hid = q["hid"]
    for key in ("scale", "du", "dv", "vth", "alpha_chip", "beta_chip", "threshold",
                "threshold_chip", "projections"):
        assert key in hid
    proj = hid["projections"]["hid.w"]
    assert 0 < proj["rel_weight_error"] < 0.02 and proj["weight_exp"] is not None
    assert hid["threshold_chip"] == pytest.approx(hid["threshold"])
    assert img.metadata["outputs"] == {"output": {"population": "out", "signal": "v",
                                                  "scale": q["out"]["scale"]}}
    back = neurochip.ChipImage.load(img.save(tmp_path / "m.nchip"))
    assert back.metadata["quantization"]["hid"]["vth"] == hid["vth"]
    assert back.equals(img)


def test_calibration_sets_the_state_bound_and_reports_agreement() -> None:
    x = spikes()
    bare = compile_model(graph(), HW, calibration={"in": x})  # the compiler runs no chip
    assert "agreement" not in bare.metadata["quantization"]["hid"]
    img = neurochip.compile(graph(), HW, calibration={"in": x})  # the face: on the emulator
    q = img.metadata["quantization"]
    assert bare.metadata["quantization"]["hid"]["state_bound"] == q["hid"]["state_bound"]
    assert q["hid"]["state_bound_source"] == "calibration"
    assert q["hid"]["agreement"]["spike_agreement"] > 0.95
    assert "v_rel_error" in q["out"]["agreement"]
    worst = compile_model(graph(), HW)
    assert img.metadata["quantization"]["out"]["scale"] >= worst.metadata["quantization"][
        "out"]["scale"]
    p = compile_model(graph(), HW, calibration={"in": x}, calibration_percentile=50.0,
                      calibration_margin=1.0)
    assert p.metadata["quantization"]["hid"]["state_bound"] <= q["hid"]["state_bound"]
    with pytest.raises(ConfigError):
        compile_model(graph(), HW, calibration={"in": x}, calibration_margin=0.5)
    batched = neurochip.compile(graph(), HW,
                                calibration={"in": np.stack([x, spikes(seed=2)])})
    assert batched.metadata["quantization"]["hid"]["agreement"]["spike_agreement"] > 0.95


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_weight_bits_option(bits: int) -> None:
    img = compile_model(graph(), HW, weight_bits=bits)
    for c in img.connections:
        assert c.num_weight_bits == bits
    with pytest.raises(QuantizationError):
        compile_model(graph(), HW, weight_bits=9)


def test_nir_options_are_passed_to_the_frontend(tmp_path: Path) -> None:
    p = write_nir(graph(), tmp_path / "g.nir", dt=1e-3)
    a = compile_model(p, HW)
    assert a.metadata["import"]["reset"] == "subtract"
    with pytest.warns(UserWarning, match="overrides"):
        b = compile_model(p, HW, reset="zero", dt=5e-4, decay="exp")
    imp = b.metadata["import"]
    assert (imp["reset"], imp["dt"], imp["decay"]) == ("zero", 5e-4, "exp")
    assert [x.reset for x in b.lif_populations] == ["zero", "zero"]
    assert b.population("hid").du != a.population("hid").du
    g = nir.read(str(p), type_check=False)
    c = compile_model(g, HW)  # an in-memory NIRGraph
    assert c.population("hid").du == a.population("hid").du


def test_the_public_entry_point_and_emulation(tmp_path: Path) -> None:
    p = write_nir(graph(), tmp_path / "g.nir")
    img = neurochip.compile(p, "loihi_like", weight_bits=8)
    out = img.metadata["outputs"]["output"]
    r = neurochip.Emulator(img).run({"in": spikes()}, probes=[f"{out['population']}.v"])
    assert r.spikes["hid"].shape == (80, 12) and r.spikes["hid"].any()
    assert r.probes["out.v"].shape == (80, 3)


def test_import_errors() -> None:
    with pytest.raises(ConfigError, match="IR graph"):
        import_model(graph(), dt=1e-3)
    with pytest.raises(ModelImportError, match="unknown model file type"):
        compile_model("model.h5", HW)
    with pytest.raises(ModelImportError, match="cannot compile"):
        compile_model(42, HW)
    with pytest.raises(ConfigError, match="dt and decay"):
        compile_model("m.onnx", HW, dt=1e-3)
    with pytest.raises(ConfigError):
        neurochip.compile(Network(), HW, dt=1e-3)


def test_conv_network_compiles_and_runs() -> None:
    from compiler.ir import Conv, Input, Neurons, Projection, pool

    rng = np.random.default_rng(3)
    conv = Conv(rng.normal(0.1, 0.4, (4, 1, 3, 3)), (1, 8, 8), padding=1)
    pl = pool("sum", (4, 8, 8), (2, 2))
    nodes = {"img": Input((1, 8, 8)),
             "c1": Neurons((4, 8, 8), alpha=0.0, beta=0.9, threshold=0.5),
             "p1": Neurons((4, 4, 4), alpha=0.0, beta=0.0, threshold=0.5)}
    g = Graph(nodes, (Projection("conv", "img", "c1", conv),
                      Projection("pool", "c1", "p1", pl)), {"pooled": "p1"})
    img = compile_model(g, HW)
    # shared weights (the default): the kernel is stored once, every tap is a synapse
    assert [c.storage for c in img.connections] == ["conv", "conv"]
    assert img.arrays["conn/0/w"].size == conv.weight.size
    assert img.connection("conv").n_synapses == conv.to_csr().nnz
    assert "conv" not in img.metadata["compiler"]["options"]  # the default is not recorded
    exp = compile_model(g, HW, conv="expanded")
    assert exp.metadata["compiler"]["options"]["conv"] == "expanded"
    # expanded: kernel entries that quantize to 0 are not stored as synapses
    zeroed = exp.metadata["quantization"]["c1"]["projections"]["conv"]["zeroed"]
    n_kept = exp.connection("conv").n_synapses
    assert n_kept < conv.to_csr().nnz and zeroed > 0
    assert [c.storage for c in exp.connections] == ["sparse", "sparse"]
    assert sum(c.synapse_bits for c in img.cores) < sum(c.synapse_bits for c in exp.cores)
    x = rng.random((30, 64)) < 0.4
    r = neurochip.Emulator(img).run({"img": x})
    assert r.spikes["p1"].any()
    r2 = neurochip.Emulator(exp).run({"img": x})
    for k in r.spikes:  # the same spikes: the dropped synapses had weight 0
        np.testing.assert_array_equal(r.spikes[k], r2.spikes[k])
    with pytest.raises(neurochip.errors.ConfigError) as ei:
        compile_model(g, HW, conv="dense")
    assert ei.value.field == "conv"


def test_network_name_and_delay_limit() -> None:
    assert compile_model(graph(), HW, name="demo").metadata["network"] == "demo"
    from compiler.ir import IRError, Projection

    g = graph()
    far = tuple(Projection(e.name, e.pre, e.post, e.synapses, delay=70) if e.name == "out.w"
                else e for e in g.edges)
    with pytest.raises(IRError) as ei:
        compile_model(Graph(g.nodes, far, g.outputs), HW)
    assert ei.value.field == "delay" and "out.w" in str(ei.value)
