"""The NIR paper's files (tests/golden/nir_paper): the Norse LIF neuron and the snnTorch
Braille RNNs, against the paper's recordings and an independent numpy model of snnTorch.

The numpy model follows snnTorch's ``RSynaptic`` / ``Synaptic`` equations (per step:
``syn = alpha syn + W x + b``, ``mem = beta mem + syn``, spike where ``mem > 1``, then the
reset in the step of the spike, as snnTorch's own NIR import builds them with
``reset_delay=False``), with alpha and beta from the file's time constants at dt = 1e-4 s
(the training parameters of the paper: ``parameters_*.json``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest

import neurochip
from compiler.float_sim import simulate
from compiler.frontends.nir import read_nir
from neurochip.core.errors import ModelImportError

HERE = Path(__file__).resolve().parents[2] / "golden" / "nir_paper"
DT = 1e-4
FILES = {"bias_zero": ("braille_noDelay_bias_zero.nir", "zero"),
         "noBias_subtract": ("braille_noDelay_noBias_subtract.nir", "subtract")}


def _quiet(fn: Any, *a: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# ------------------------------------------------------------------------ Norse LIF
def test_norse_lif_without_dt_says_where_to_look_and_suggests_no_value() -> None:
    with pytest.raises(ModelImportError) as e:
        _quiet(neurochip.compile, str(HERE / "lif_norse.nir"), "loihi_like")
    msg = str(e.value)
    assert e.value.field == "dt" and "node '1' (LIF)" in msg
    assert "script" in msg and "0.0025" in msg
    assert "1e-3" not in msg and "default" not in msg


def test_norse_lif_reproduces_the_papers_spike_times_at_dt_1e4() -> None:
    with np.load(HERE / "lif_spikes.npz") as z:
        ref = {k: z[k] for k in z.files}
    T = int(ref["steps"])
    x = np.zeros((T, 1), bool)
    x[ref["input"], 0] = True
    image = _quiet(neurochip.compile, str(HERE / "lif_norse.nir"), "loihi_like", dt=DT)
    imp = image.metadata["import"]
    assert (imp["profile"], imp["reset"], imp["option_sources"]["dt"]) == \
        ("norse", "zero", "caller")
    out = image.metadata["outputs"]["output"]["population"]
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 1, spikes=[out])
    got = np.nonzero(run.spikes[out][:, 0])[0]
    # Lava's fixed-point run exactly; Norse one step earlier (the chip's synaptic step).
    np.testing.assert_array_equal(got, ref["lava_cpu_fixed"])
    np.testing.assert_array_equal(got, ref["norse"] + 1)


# ---------------------------------------------------------------------- Braille RNNs
def snntorch_model(path: Path, reset: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden and output spikes (B, T, n) of snnTorch's equations for a Braille file."""
    n = nir.read(str(path)).nodes
    fc1, fc2, rec, l1, l2 = n["fc1"], n["fc2"], n["lif1.w_rec"], n["lif1.lif"], n["lif2"]

    def decays(node: Any) -> tuple[np.ndarray, np.ndarray]:
        return (1 - DT / np.asarray(node.tau_syn, np.float64),
                1 - DT / np.asarray(node.tau_mem, np.float64))

    def lin(node: Any, s: np.ndarray) -> np.ndarray:
        b = np.asarray(getattr(node, "bias", 0.0), np.float64)
        return s @ np.asarray(node.weight, np.float64).T + b

    def lif(syn: np.ndarray, mem: np.ndarray, cur: np.ndarray, a: np.ndarray,
            b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        syn = a * syn + cur
        mem = b * mem + syn
        s = (mem > 1.0).astype(np.float64)
        mem = mem * (1 - s) if reset == "zero" else mem - s
        return syn, mem, s

    (a1, b1), (a2, b2) = decays(l1), decays(l2)
    B, T, _ = x.shape
    syn1 = np.zeros((B, a1.size))
    mem1, s1 = syn1.copy(), syn1.copy()
    syn2 = np.zeros((B, a2.size))
    mem2 = syn2.copy()
    hid = np.zeros((B, T, a1.size), bool)
    out = np.zeros((B, T, a2.size), bool)
    for t in range(T):
        syn1, mem1, s1 = lif(syn1, mem1, lin(fc1, x[:, t]) + lin(rec, s1), a1, b1)
        syn2, mem2, s2 = lif(syn2, mem2, lin(fc2, s1), a2, b2)
        hid[:, t], out[:, t] = s1 > 0, s2 > 0
    return hid, out


def _inputs(T: int = 200, B: int = 32) -> np.ndarray:
    return np.random.default_rng(0).random((B, T, 12)) < 0.1


def _pred(s: np.ndarray) -> np.ndarray:
    return s.sum(axis=1).argmax(axis=1)


@pytest.mark.parametrize("which", list(FILES))
def test_braille_needs_the_reset(which: str) -> None:
    with pytest.raises(ModelImportError, match="reset") as e:
        _quiet(read_nir, HERE / FILES[which][0])
    assert e.value.field == "reset" and "node 'lif1.lif' (CubaLIF)" in str(e.value)


@pytest.mark.parametrize("which", list(FILES))
def test_braille_float_model_is_snntorchs_equations(which: str) -> None:
    """Bias through the synaptic filter included: the import is exact (before quantization)."""
    name, reset = FILES[which]
    x = _inputs()
    T = x.shape[1]
    hid, out = snntorch_model(HERE / name, reset, x)
    g = _quiet(read_nir, HERE / name, reset=reset)
    assert g.metadata["import"]["dt"] == pytest.approx(DT, rel=1e-5)
    fr = simulate(g, {"input": x}, steps=T + 2)
    assert out.any() and hid.any()
    np.testing.assert_array_equal(fr.spikes["lif1.lif"][:, 1: T + 1], hid)
    np.testing.assert_array_equal(fr.spikes["lif2"][:, 2: T + 2], out)


@pytest.mark.parametrize("which", list(FILES))
def test_braille_on_the_chip_agrees_with_snntorchs_equations(which: str) -> None:
    """Targets: >= 95 % of output spike entries and of class predictions (spike count)."""
    name, reset = FILES[which]
    x = _inputs()
    T = x.shape[1]
    _, out = snntorch_model(HERE / name, reset, x)
    image = _quiet(neurochip.compile, str(HERE / name), "loihi_like", reset=reset)
    run = neurochip.Emulator(image).run({"input": x}, steps=T + 2, spikes=["lif2"])
    chip = run.spikes["lif2"][:, 2: T + 2]
    assert np.mean(chip == out) >= 0.95
    assert np.mean(_pred(chip) == _pred(out)) >= 0.95


def test_braille_weights_keep_their_small_values_in_synapse_groups() -> None:
    """fc2 and w_rec of the zero-reset file: on one 8-bit grid 17-27 % of the weights round
    to zero; split into synapse groups (sign x magnitude, own exponents) under 2 %."""
    from compiler.passes.normalize import normalize
    from compiler.passes.quantize import quantization_report, quantize_graph

    hw = neurochip.load_hw("loihi_like")
    g = normalize(_quiet(read_nir, HERE / FILES["bias_zero"][0], reset="zero"))
    zeroed = {}
    for groups in (False, True):
        q = quantize_graph(g, hw, weight_groups=groups)
        rep = quantization_report(g, q, hw)
        zeroed[groups] = {k: rep[pop]["projections"][k]["zeroed"]
                          for pop, k in (("lif2", "fc2"), ("lif1.lif", "lif1.w_rec"))}
        if groups:
            assert rep["lif2"]["projections"]["fc2"]["sign_mode"] == "groups"
            assert set(q.metadata["weight_groups"]["fc2"]) <= {
                "fc2:exc", "fc2:exc-fine", "fc2:inh", "fc2:inh-fine"}
    assert min(zeroed[False].values()) > 0.15, zeroed
    assert max(zeroed[True].values()) < 0.02, zeroed


# ------------------------------------------------------------------- Sinabs CNN
CNN = HERE / "cnn_sinabs.nir"


def test_cnn_conv_kernels_split_off_their_largest_entries() -> None:
    """Convolutions 0 and 2 lose 2-4 % of their kernel entries to 0 on one 8-bit grid: the
    few largest entries become a sparse group, the rest keeps the shared kernel on a finer
    grid; the weight error falls to under half."""
    from compiler.ir import Conv, Sparse
    from compiler.passes.normalize import normalize
    from compiler.passes.quantize import quantization_report, quantize_graph

    hw = neurochip.load_hw("loihi_like")
    g = normalize(_quiet(read_nir, CNN))
    err = {}
    for groups in (False, True):
        q = quantize_graph(g, hw, weight_bits=8, weight_groups=groups)
        rep = quantization_report(g, q, hw)
        err[groups] = {k: rep[pop]["projections"][k]["rel_weight_error"]
                       for pop, k in (("1", "0"), ("3", "2"))}
        if groups:
            for k in ("0", "2"):
                fine, big = q.metadata["weight_groups"][k]
                assert (fine, big) == (f"{k}:fine", f"{k}:big")
                ef, eb = q.edge(fine), q.edge(big)
                assert isinstance(ef.synapses, Conv) and isinstance(eb.synapses, Sparse)
                kernel = np.asarray(g.edge(k).synapses.values).size
                # the outliers are a few kernel entries, each expanded over the positions
                assert eb.synapses.to_csr().nnz <= 0.1 * kernel * ef.synapses.shape[0] // (
                    ef.synapses.weight.shape[0])
                assert rep[ef.post]["projections"][k]["sign_mode"] == "groups"
    for k in ("0", "2"):
        assert err[True][k] < 0.6 * err[False][k], err


def test_cnn_places_at_8_bits_and_keeps_the_float_predictions() -> None:
    """The paper's CNN compiles on loihi_like at 8-bit weights, and the chip's predictions
    (output spike counts) equal the float model's on >= 95 % of 100 N-MNIST-like samples."""
    from compiler.passes.normalize import normalize
    from neurochip.tasks.digits import digits_split, saccade_events

    image = _quiet(neurochip.compile, CNN, "loihi_like", weight_bits=8)
    assert len(image.cores) <= 128
    _, X_test, _, _ = digits_split()
    steps = 100
    x = saccade_events(X_test[:100], steps)
    g = normalize(_quiet(read_nir, CNN))
    fl = simulate(g, {"input": x}).spikes["12"].sum(axis=1)
    chip = neurochip.Emulator(image).run({"input": x}, steps=steps,
                                         spikes=["12"]).spikes["12"].sum(axis=1)
    assert fl.sum() > 50 * 100  # the network answers (about one output spike per step)
    assert np.mean(fl.argmax(-1) == chip.argmax(-1)) >= 0.95
