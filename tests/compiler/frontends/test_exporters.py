"""NIR files written by real exporters (snnTorch 1.0.0, Norse 1.1.0) import and run on the chip.

The files and the frameworks' own recordings come from ``tools/make_exporter_files.py``
(run once with torch; these tests read only the files). What is compared:

* snnTorch feed-forward (``Synaptic``): the weights (multiples of 1/128), decays (0.5,
  0.75) and threshold (4) are chosen so that quantization is exact. With snnTorch's
  ``reset_delay=False`` (the threshold is subtracted in the step of the spike, as on the
  chip) the chip's spike trains equal snnTorch's at every step, layer k shifted by k steps,
  and so do its membranes (divided by the scale) up to snnTorch's float32 rounding. With
  snnTorch's default ``reset_delay=True`` snnTorch subtracts the *undecayed* threshold one
  step later, which the chip cannot do; the trains then agree up to each neuron's first
  spike and differ afterwards.
* snnTorch recurrent (``RSynaptic``) digits classifier: the chip's accuracy on the 450 test
  samples is within 1 point of snnTorch's.
* Norse feed-forward (``LIFCell``): imports with ``dt`` given. Norse's exporter writes
  ``w_in = 1`` and its cell adds the weighted input to the current in full; the importer's
  Norse profile reads it that way, and the chip agrees with Norse on at least 98 % of
  (step, neuron) entries (8-bit weights). Written as the literal Euler reading
  (``w_in = tau_syn/dt``), the float reference reproduces Norse exactly.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest

import neurochip
from compiler.float_sim import simulate
from compiler.frontends.nir import from_nir, read_nir
from neurochip.core.errors import ModelImportError

HERE = Path(__file__).resolve().parents[2] / "golden" / "exporters"


def _npz(name: str) -> dict[str, Any]:
    with np.load(HERE / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def _compile(model: Any, **options: Any) -> neurochip.ChipImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return neurochip.compile(model, "loihi_like", **options)


def test_manifest_records_the_exporter_versions() -> None:
    man = json.loads((HERE / "MANIFEST.json").read_text())
    assert man["versions"]["snntorch"] == "1.0.0"
    assert man["versions"]["norse"] == "1.1.0"
    assert set(man["files"]) == {"snntorch_ff", "snntorch_rec", "norse_ff"}
    for name in man["files"]:
        size = sum((HERE / f"{name}.{ext}").stat().st_size for ext in ("nir", "npz"))
        assert size < 100_000, f"{name} files should stay small"


# ------------------------------------------------------------------------ snnTorch, FF
@pytest.fixture(scope="module")
def snn_ff() -> tuple[dict[str, Any], neurochip.ChipImage, Any]:
    d = _npz("snntorch_ff")
    image = _compile(str(HERE / "snntorch_ff.nir"), reset="subtract")  # trained with it
    x = d["x"]
    T = x.shape[1]
    pops = [p.name for p in image.lif_populations]
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2,
                                        probes=[f"{p}.v" for p in pops])
    return d, image, run


def test_snntorch_ff_imports_with_snntorch_conventions(snn_ff: Any) -> None:
    _, image, _ = snn_ff
    imp = image.metadata["import"]
    assert imp["profile"] == "snntorch"
    assert imp["dt"] == pytest.approx(1e-4, rel=1e-5)  # snnTorch's hard-coded dt
    assert (imp["decay"], imp["reset"]) == ("euler", "subtract")
    assert [p.name for p in image.lif_populations] == ["lif1", "lif2"]
    assert image.metadata["outputs"]["output"]["population"] == "lif2"


def test_snntorch_ff_quantization_is_exact(snn_ff: Any) -> None:
    d, image, _ = snn_ff
    for pop, q in image.metadata["quantization"].items():
        assert q["alpha_chip"] == float(d["alpha"]), pop
        assert q["beta_chip"] == float(d["beta"]), pop
        assert q["threshold_chip"] == float(d["threshold"]), pop
        for name, pr in q["projections"].items():
            assert pr["max_abs_error"] == 0.0, name
            assert pr["zeroed"] == 0.0, name


def test_snntorch_ff_spike_trains_match_shifted_one_step_per_layer(snn_ff: Any) -> None:
    d, image, run = snn_ff
    T = d["x"].shape[1]
    theta = float(d["threshold"])
    for layer, (pop, mem) in enumerate((("lif1", "mem1"), ("lif2", "mem2")), start=1):
        ref = d[f"{pop}_immediate"]
        # The premise: no membrane sits within rounding distance of the threshold
        # (pre-reset membrane = recorded post-reset membrane + theta where it spiked).
        pre = d[f"{mem}_immediate"] + theta * ref
        assert np.abs(pre - theta).min() > 1e-4
        assert ref.any() and not ref.all()
        chip = run.spikes[pop]
        assert not chip[:, :layer].any()  # nothing arrives before the layer's latency
        np.testing.assert_array_equal(chip[:, layer: layer + T], ref)
        scale = image.metadata["quantization"][pop]["scale"]
        v = run.probes[f"{pop}.v"][:, layer: layer + T] / scale
        np.testing.assert_allclose(v, d[f"{mem}_immediate"], atol=1e-4)


def test_snntorch_ff_float_reference_matches_too(snn_ff: Any) -> None:
    d, _, _ = snn_ff
    g = read_nir(HERE / "snntorch_ff.nir", reset="subtract")
    T = d["x"].shape[1]
    fr = simulate(g, {"input": d["x"]}, steps=T + 2)
    np.testing.assert_array_equal(fr.spikes["lif1"][:, 1: T + 1], d["lif1_immediate"])
    np.testing.assert_array_equal(fr.spikes["lif2"][:, 2: T + 2], d["lif2_immediate"])


def test_snntorch_default_delayed_reset_agrees_until_the_first_spike(snn_ff: Any) -> None:
    d, _, run = snn_ff
    T = d["x"].shape[1]
    ref = d["lif1_delayed"]
    chip = run.spikes["lif1"][:, 1: T + 1]
    first = np.where(ref.any(axis=1), ref.argmax(axis=1), T - 1)  # (B, n)
    upto = np.arange(T)[None, :, None] <= first[:, None, :]
    np.testing.assert_array_equal(chip[upto], ref[upto])
    # Afterwards snnTorch's undecayed, one-step-late subtraction diverges from the chip's.
    assert 0.8 < np.mean(chip == ref) < 1.0


# ------------------------------------------------------------------- snnTorch, recurrent
def _count_predictions(spikes: Any) -> Any:
    c = spikes.sum(axis=1)
    best = c.max(axis=1, keepdims=True)
    return np.where((c == best).sum(axis=1) > 1, -1, c.argmax(axis=1))


def test_snntorch_recurrent_keeps_its_accuracy() -> None:
    d = _npz("snntorch_rec")
    x = np.unpackbits(d["x_packed"], axis=-1, count=int(d["n_in"])).astype(bool)
    T = int(d["steps"])
    assert x.shape == (len(d["labels"]), T, int(d["n_in"]))
    image = _compile(str(HERE / "snntorch_rec.nir"), reset="subtract")
    assert image.metadata["import"]["profile"] == "snntorch"
    rec = [c for c in image.connections if c.pre == c.post]
    assert len(rec) == 1, "the RSynaptic loop becomes one recurrent projection"
    out = image.metadata["outputs"]["output"]["population"]
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2, spikes=[out])
    pred = _count_predictions(run.spikes[out])
    chip_acc = float(np.mean(pred == d["labels"]))
    snn_acc = float(d["accuracy"])
    assert snn_acc == pytest.approx(float(np.mean(d["predictions"] == d["labels"])))
    assert snn_acc > 0.9
    assert abs(chip_acc - snn_acc) <= 0.01, (chip_acc, snn_acc)
    assert np.mean(pred == d["predictions"]) > 0.95


# ---------------------------------------------------------------------------- Norse
def test_norse_needs_dt() -> None:
    with pytest.raises(ModelImportError, match="dt"):
        _compile(str(HERE / "norse_ff.nir"))


def test_norse_imports_with_dt_and_runs() -> None:
    d = _npz("norse_ff")
    dt = float(d["dt"])
    image = _compile(str(HERE / "norse_ff.nir"), dt=dt)
    imp = image.metadata["import"]
    assert (imp["profile"], imp["dt"], imp["reset"]) == ("norse", dt, "zero")
    assert any("Norse's LIFCell" in n for n in imp["notes"])
    x = d["x"]
    T = x.shape[1]
    out = image.metadata["outputs"]["output"]["population"]
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2)
    assert run.spikes[out].shape == (x.shape[0], T + 2, d["out"].shape[-1])
    # The Norse profile gives the input Norse's own gain (w_in into the current in full):
    # the chip reproduces Norse's spike trains, shifted one step per layer.
    hidden = next(p.name for p in image.lif_populations if p.name != out)
    assert np.mean(run.spikes[hidden][:, 1: T + 1] == d["hidden"]) >= 0.98
    assert np.mean(run.spikes[out][:, 2: T + 2] == d["out"]) >= 0.98


def test_norse_with_its_own_synaptic_gain_reproduces_norse() -> None:
    d = _npz("norse_ff")
    dt = float(d["dt"])
    g = nir.read(str(HERE / "norse_ff.nir"))
    for node in g.nodes.values():
        if isinstance(node, nir.CubaLIF):
            node.w_in = np.asarray(node.tau_syn) / dt  # Norse's LIFCell: gain 1 into I
    x = d["x"]
    T = x.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fr = simulate(from_nir(g, dt=dt, reset="zero"), {"input": x}, steps=T + 2)
    hidden, out = "1", "3"  # Norse's exporter names nodes by their index in the Sequential
    np.testing.assert_array_equal(fr.spikes[hidden][:, 1: T + 1], d["hidden"])
    np.testing.assert_array_equal(fr.spikes[out][:, 2: T + 2], d["out"])
    image = _compile(g, dt=dt, reset="zero")
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2)
    assert np.mean(run.spikes[hidden][:, 1: T + 1] == d["hidden"]) >= 0.98
    assert np.mean(run.spikes[out][:, 2: T + 2] == d["out"]) >= 0.98


def test_snntorch_file_without_reset_asks_for_it() -> None:
    """snnTorch writes zero- and subtract-reset models identically: no silent choice."""
    with pytest.raises(ModelImportError, match="reset='zero' or reset='subtract'") as e:
        _compile(str(HERE / "snntorch_rec.nir"))
    assert e.value.field == "reset" and "node '" in str(e.value)
