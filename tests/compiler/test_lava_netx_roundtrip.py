"""Round trip: a lava-dl netx file compiled by us and exported back to Lava runs in Lava
exactly as lava-dl's own netx network of the same file.

Both run in Lava's fixed-point CPU models (``Loihi2SimCfg(select_tag="fixed_pt")``); every
layer's spikes (graded payloads for SDNN layers) and state variables must be identical at
every step. Convolutions arrive expanded (one synapse per kernel tap), so the export runs
them as Lava ``Sparse`` processes where netx builds ``Conv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip
from compiler.frontends.netx import write_netx
from compiler.lava import export_lava
from compiler.lava.netx_compat import run_netx_lava
from neurochip.core.neuron_models import STATE_SLOTS

pytestmark = pytest.mark.lava

NETX = Path(__file__).resolve().parents[1] / "golden" / "netx"
TINY = NETX / "tiny.net"


def _probes(img: neurochip.ChipImage) -> list[str]:
    # netx_compat reads u, v, sigma, act, residue (netx's Delta processes have no error)
    return [f"{p.name}.{v}" for p in img.lif_populations for v in STATE_SLOTS[p.model]
            if v != "error"]


def _same_as_netx(img: neurochip.ChipImage, ours: Any, netx: list[dict[str, Any]]) -> int:
    """Every layer's spikes and state equal; returns how many layers were compared."""
    pops = [r["population"] for r in img.metadata["netx"]["layers"] if r["population"]]
    assert len(pops) == len(netx)
    for name, ref in zip(pops, netx):
        np.testing.assert_array_equal(ours.spikes[name], ref["s"].astype(ours.spikes[name].dtype),
                                      err_msg=f"layer {name}: spikes")
        assert np.count_nonzero(ref["s"]) > 0, f"layer {name} is silent: the check is empty"
        state = [k for k in ref if k != "s"]
        assert state
        for v in state:
            np.testing.assert_array_equal(ours.probes[f"{name}.{v}"], ref[v],
                                          err_msg=f"layer {name}: {v}")
    return len(pops)


@pytest.mark.parametrize("reset_interval", [None, 5])
def test_tiny_net_round_trip_equals_lava_dl_netx(reset_interval: int | None) -> None:
    """lava-dl's tiny.net (input layer -> 5x5 stride-2 conv -> 1x1 conv), its images fed
    as the input layer's bias as lava-dl does; with reset_interval its layers are
    LIFReset."""
    b = np.load(NETX / "tinynet" / "input_bias.npy").astype(np.int64).reshape(-1)
    steps = 12
    img = neurochip.compile(TINY, "loihi2_like", reset_interval=reset_interval)
    lnet = export_lava(img, bias={"0": b}, steps=steps, stock_only=True)
    kinds = {p.name: p.lava_process for p in lnet.plan}
    neuron = "LIF" if reset_interval is None else "LIFReset"
    assert [kinds[n] for n in ("0", "1", "2")] == [neuron] * 3
    assert kinds["0->1"] == kinds["1->2"] == "Sparse"  # the expanded convolutions
    ours = lnet.run(steps, probes=_probes(img), timeout_s=300)
    ref = run_netx_lava(TINY, steps, bias={0: b}, reset_interval=reset_interval)
    assert _same_as_netx(img, ours, ref) == 3


def _sdnn_file(path: Path, rng: np.random.Generator) -> Path:
    """input 2x7x7 -> SDNN conv 4ch k3 stride 2 with bias -> SDNN conv 3ch k2 -> flatten
    -> SDNN dense 10 -> sigma readout 4: graded spikes through conv and dense synapses."""
    sd = {"type": "SDNN", "vThMant": 1}
    return write_netx(path, [
        {"type": "input", "shape": [2, 7, 7]},
        {"type": "conv", "shape": [4, 3, 3], "weight": rng.integers(-50, 81, (4, 2, 3, 3, 1)) * 2,
         "bias": rng.integers(-2, 6, 4), "kernelSize": [3, 3], "stride": [2, 2],
         "padding": [0, 0], "dilation": [1, 1], "groups": 1, "inChannels": 2,
         "outChannels": 4, "neuron": sd},
        {"type": "conv", "shape": [3, 2, 2], "weight": rng.integers(-40, 81, (3, 4, 2, 2, 1)) * 2,
         "kernelSize": [2, 2], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
         "groups": 1, "inChannels": 4, "outChannels": 3, "neuron": sd},
        {"type": "flatten", "shape": [12]},
        {"type": "dense", "shape": [10], "weight": rng.integers(-30, 31, (10, 12)) * 2,
         "bias": rng.integers(-3, 3, 10), "neuron": sd},
        {"type": "dense", "shape": [4], "weight": rng.integers(-30, 31, (4, 10)) * 2,
         "neuron": {"type": "SDNN", "sigma_output": True}},
    ])


def test_sdnn_conv_round_trip_equals_lava_dl_netx(tmp_path: Path) -> None:
    path = _sdnn_file(tmp_path / "sdnn.net", np.random.default_rng(21))
    steps = 14
    x = (np.random.default_rng(22).random((steps, 98)) < 0.35).astype(np.int64)
    img = neurochip.compile(path, "loihi2_like")
    models = [p.model for p in img.lif_populations]
    assert models == ["sigma_delta", "sigma_delta", "sigma_delta", "sigma"]
    lnet = export_lava(img, {"input": x.astype(bool)}, steps, stock_only=True)
    kinds = [p.lava_process for p in lnet.plan if p.role == "neurons"]
    assert kinds == ["SigmaDelta", "SigmaDelta", "SigmaDelta", "Sigma"]
    ours = lnet.run(probes=_probes(img), timeout_s=300)
    assert all(np.abs(ours.spikes[p.name]).max() > 1 for p in img.lif_populations)  # graded
    ref = run_netx_lava(path, steps, inputs=x)
    assert _same_as_netx(img, ours, ref) == 4


def test_conv_delay_recurrent_round_trip_equals_lava_dl_netx(tmp_path: Path) -> None:
    """input layer (bias-fed) -> conv 4ch k3 pad 1 -> depthwise conv k2 stride 2 -> flatten
    -> dense 20 with per-neuron delays -> recurrent dense 10 (CUBA LIF throughout)."""
    rng = np.random.default_rng(31)
    lif = {"type": "LOIHI", "iDecay": 1024, "vDecay": 256, "vThMant": 40, "refDelay": 1,
           "wgtExp": 0}
    k = rng.integers(-3, 4, (2, 2)) * 2
    path = write_netx(tmp_path / "cdr.net", [
        {"type": "input", "shape": [3, 8, 8], "weight": 40, "bias": 3,
         "neuron": {**lif, "iDecay": 0, "vDecay": 512}},
        {"type": "conv", "shape": [4, 8, 8], "weight": rng.integers(-20, 21, (4, 3, 3, 3, 1)) * 2,
         "bias": rng.integers(-5, 30, 4), "kernelSize": [3, 3], "stride": [1, 1],
         "padding": [1, 1], "dilation": [1, 1], "groups": 1, "inChannels": 3,
         "outChannels": 4, "neuron": {**lif, "vThMant": 30}},
        {"type": "conv", "shape": [4, 4, 4], "weight": np.broadcast_to(k, (4, 1, 2, 2)),
         "kernelSize": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1],
         "groups": 4, "inChannels": 4, "outChannels": 4, "neuron": lif},
        {"type": "flatten", "shape": [64]},
        {"type": "dense", "shape": [20], "weight": rng.integers(-60, 61, (20, 64)) * 2,
         "delay": rng.integers(0, 4, 20), "neuron": {**lif, "vThMant": 20}},
        {"type": "dense_rec", "shape": [10], "weight": rng.integers(-40, 61, (10, 20)) * 2,
         "weight_rec": rng.integers(-30, 31, (10, 10)) * 2, "bias": rng.integers(0, 20, 10),
         "neuron": {**lif, "vThMant": 15}},
    ])
    b = np.random.default_rng(32).integers(0, 60, 192)
    steps = 16
    img = neurochip.compile(path, "loihi2_like")
    lnet = export_lava(img, bias={"0": b}, steps=steps, stock_only=True)
    kinds = {p.lava_process for p in lnet.plan if p.role == "synapses"}
    assert "DelayDense" in kinds or "DelaySparse" in kinds  # the dense layer's delays
    ours = lnet.run(steps, probes=_probes(img), timeout_s=300)
    ref = run_netx_lava(path, steps, bias={0: b})
    assert _same_as_netx(img, ours, ref) == 5
