"""``neurochip compile``: every option and every error path (exit status and message)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip
from neurochip.core.image import ChipImage

from .conftest import GOLDEN, compile_golden

FF = GOLDEN / "feed_forward.nir"
NORSE = GOLDEN / "exporters" / "norse_ff.nir"


def _x(shape: tuple[int, ...], seed: int = 0) -> Any:
    return np.random.default_rng(seed).random(shape) < 0.3


def test_compile_writes_the_same_image_as_the_api(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "ff.nchip"
    rc, stdout, err = cli("compile", FF, "--hw", "loihi_like", "-o", out)
    assert rc == 0, err
    assert ChipImage.load(out).equals(compile_golden("feed_forward"))
    assert "imported feed_forward.nir: profile neurochip" in stdout
    assert f"wrote {out}" in stdout


def test_default_output_is_the_model_with_suffix_nchip(cli: Any, tmp_path: Path) -> None:
    model = tmp_path / "m.nir"
    model.write_bytes(FF.read_bytes())
    rc, _, err = cli("compile", model, "-q")
    assert rc == 0, err
    assert (tmp_path / "m.nchip").exists()


def test_quiet_prints_nothing(cli: Any, tmp_path: Path) -> None:
    rc, out, err = cli("compile", FF, "-o", tmp_path / "a.nchip", "--quiet")
    assert (rc, out, err) == (0, "", "")


def test_dt_decay_reset_options(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "o.nchip"
    rc, _, err = cli("compile", FF, "-o", out, "--dt", "2e-4", "--decay", "exp",
                     "--reset", "zero")
    assert rc == 0, err
    meta = ChipImage.load(out).metadata
    assert (meta["import"]["dt"], meta["import"]["decay"], meta["import"]["reset"]) == \
        (2e-4, "exp", "zero")
    assert meta["import"]["option_sources"]["dt"] == "caller"
    assert meta["compiler"]["options"]["reset"] == "zero"
    assert "note:" in err  # the caller's dt overrides the file's neurochip.dt


def test_norse_file_needs_dt_and_compiles_with_it(cli: Any, tmp_path: Path) -> None:
    rc, _, err = cli("compile", NORSE, "-o", tmp_path / "n.nchip")
    assert rc == 2
    assert "neurochip compile: error:" in err and "--dt SECONDS" in err
    rc, out, err = cli("compile", NORSE, "-o", tmp_path / "n.nchip", "--dt", "1e-3")
    assert rc == 0, err
    assert "profile norse" in out


def test_weight_bits(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "w.nchip"
    rc, _, err = cli("compile", FF, "-o", out, "--weight-bits", "4")
    assert rc == 0, err
    assert {c.num_weight_bits for c in ChipImage.load(out).connections} == {4}


def test_calibration_options(cli: Any, tmp_path: Path, write_npz: Any) -> None:
    cal = write_npz("cal.npz", **{"in": _x((3, 40, 16))})
    out = tmp_path / "c.nchip"
    rc, stdout, err = cli("compile", FF, "-o", out, "--calibration", cal,
                          "--calibration-percentile", "99.5", "--calibration-margin", "3")
    assert rc == 0, err
    meta = ChipImage.load(out).metadata
    opts = meta["compiler"]["options"]
    assert (opts["calibration"], opts["calibration_percentile"],
            opts["calibration_margin"]) == (True, 99.5, 3.0)
    assert "spike_agreement" in meta["quantization"]["hid"]["agreement"]
    assert "calibration: hid float/chip spike agreement" in stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = neurochip.compile(str(FF), "loihi_like", calibration={"in": _x((3, 40, 16))},
                                calibration_percentile=99.5, calibration_margin=3.0)
    assert ChipImage.load(out).equals(ref)


def test_dump_ir_and_name(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "d.nchip"
    rc, _, err = cli("compile", FF, "-o", out, "--dump-ir", "quantize", "--name", "mynet")
    assert rc == 0
    assert "--- IR after quantize ---" in err and "--- IR after import ---" not in err
    rc, _, err = cli("compile", FF, "-o", out, "--dump-ir", "all", "-q")
    assert "--- IR after import ---" in err and "--- IR after normalize ---" in err


def test_onnx_model(cli: Any, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    W1 = rng.normal(0, 0.5, (8, 16)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["a"], name="fc1"),
             helper.make_node("LIF", ["a"], ["s"], name="lif1", domain="neurochip",
                              alpha=0.5, beta=0.9, threshold=1.0)]
    g = helper.make_graph(nodes, "snn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("s", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(W1, "W1")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("neurochip", 1)])
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    rc, _, err = cli("compile", path, "-o", tmp_path / "m.nchip", "--reset", "zero")
    assert rc == 0, err
    img = ChipImage.load(tmp_path / "m.nchip")
    assert img.population("lif1").reset == "zero"
    rc, _, err = cli("compile", path, "-o", tmp_path / "m.nchip", "--dt", "1e-3")
    assert rc == 2 and "dt and decay apply to NIR files" in err


@pytest.mark.parametrize("args, message", [
    (["missing.nir"], "model missing.nir: file does not exist"),
    (["{tmp}/model.txt"], "unknown model type '.txt'"),
    (["{tmp}/garbage.nir"], "not a readable NIR file"),
    ([str(FF), "--hw", "no_such_chip"], "unknown hardware 'no_such_chip'"),
    ([str(FF), "--weight-bits", "9"], "field 'weight_bits'"),
    ([str(FF), "--dt", "0"], "dt must be a positive number"),
    ([str(FF), "--calibration", "nope.npz"], "calibration file nope.npz: file does not exist"),
    ([str(FF), "--calibration", "{tmp}/garbage.nir"], "not a readable .npz file"),
    ([str(FF), "--calibration", "{tmp}/flat.npz"], "calibration inputs are (T, n)"),
    ([str(FF), "--calibration", "{tmp}/empty.npz"], "holds no arrays"),
    ([str(FF), "--calibration", "{tmp}/cal.npz", "--calibration-margin", "0.5"],
     "calibration_margin must be >= 1"),
    ([str(FF), "--calibration-percentile", "90"], "needs --calibration"),
    ([str(FF), "-o", "{tmp}/no/such/dir/x.nchip"], "folder does not exist"),
])
def test_errors_are_one_clear_message(cli: Any, tmp_path: Path, args: list[str],
                                      message: str) -> None:
    (tmp_path / "model.txt").write_text("x")
    (tmp_path / "garbage.nir").write_bytes(b"\x00not hdf5" * 40)
    np.savez(tmp_path / "flat.npz", **{"in": np.zeros(16, bool)})
    np.savez(tmp_path / "empty.npz")
    np.savez(tmp_path / "cal.npz", **{"in": _x((2, 10, 16))})
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.nchip")]
    rc, out, err = cli("compile", *args)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurochip compile: error: "), err
    assert message in err


@pytest.mark.parametrize("args", [["--decay", "rk4"], ["--reset", "value"],
                                  ["--weight-bits", "eight"], ["--dump-ir", "lower"], []])
def test_usage_errors_exit_2(cli: Any, args: list[str]) -> None:
    rc, _, err = cli("compile", *([str(FF)] if args else []), *args)
    assert rc == 2
    assert "usage: neurochip compile" in err


def test_placement_option(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "ff.nchip"
    rc, stdout, err = cli("compile", FF, "-o", out, "--placement", "greedy")
    assert rc == 0, err
    # one core: next-fit and traffic-aware placement give the same image
    assert ChipImage.load(out).equals(compile_golden("feed_forward"))
    assert "placement greedy (asked greedy): 0 NoC hops per step (estimated)" in stdout
    rc, _, err = cli("compile", FF, "-o", out, "--placement", "metis")
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("neurochip compile: error: argument --placement: invalid choice: "
                          "'metis' (choose from 'traffic', 'greedy'); usage: ")
