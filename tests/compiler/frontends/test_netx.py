"""lava-dl netx files (.net): compile, names and layout, bias input, errors; and (marker
lava) bit-exact cross-checks against lava-dl's own netx running in Lava's fixed-point
models: identical spikes, u and v of every layer at every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip
from compiler.frontends.netx import read_netx, write_netx
from neurochip.core.errors import EmulatorInputError, ModelImportError
from neurochip.core.hw import load_hw

#: lava-dl's own netx test material, copied into the repository (see its README)
REF = Path(__file__).resolve().parents[2] / "golden" / "netx"
TINY = REF / "tiny.net"

LIF = {"type": "LOIHI", "iDecay": 1024, "vDecay": 256, "vThMant": 40, "refDelay": 1,
       "wgtExp": 0}


def _layers(rng: np.random.Generator, pool: bool) -> list[dict[str, Any]]:
    """input 3x8x8 -> conv 4ch k3 pad1 -> 2x2 sum pool (or its depthwise conv) -> flatten
    -> dense 20 with per-neuron delays -> recurrent dense 10."""
    k = rng.integers(-3, 4, (2, 2))
    pool_layer: dict[str, Any] = (
        {"type": "pool", "shape": [4, 4, 4], "weight": k[None, None] * 2, "kernelSize": [2, 2],
         "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1], "neuron": LIF}
        if pool else
        {"type": "conv", "shape": [4, 4, 4], "weight": np.broadcast_to(k * 2, (4, 1, 2, 2)),
         "kernelSize": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1],
         "groups": 4, "inChannels": 4, "outChannels": 4, "neuron": LIF})
    return [
        {"type": "input", "shape": [3, 8, 8], "weight": 40, "bias": 3,
         "neuron": {**LIF, "iDecay": 0, "vDecay": 4096 // 8}},
        {"type": "conv", "shape": [4, 8, 8], "weight": rng.integers(-20, 21, (4, 3, 3, 3, 1)) * 2,
         "bias": rng.integers(-5, 30, 4), "kernelSize": [3, 3], "stride": [1, 1],
         "padding": [1, 1], "dilation": [1, 1], "groups": 1, "inChannels": 3,
         "outChannels": 4, "neuron": {**LIF, "vThMant": 30}},
        pool_layer,
        {"type": "flatten", "shape": [64]},
        {"type": "dense", "shape": [20], "weight": rng.integers(-60, 61, (20, 64)) * 2,
         "delay": rng.integers(0, 4, 20), "neuron": {**LIF, "vThMant": 20}},
        {"type": "dense_rec", "shape": [10], "weight": rng.integers(-40, 61, (10, 20)) * 2,
         "weight_rec": rng.integers(-30, 31, (10, 10)) * 2, "bias": rng.integers(0, 20, 10),
         "neuron": {**LIF, "vThMant": 15}},
    ]


def _mlp_layers(rng: np.random.Generator) -> list[dict[str, Any]]:
    """No input block: dense 30 -> 16 with odd weights, then excitatory-only 16 -> 8."""
    return [
        {"type": "dense", "shape": [16], "weight": rng.integers(-50, 51, (16, 30)),
         "neuron": {**LIF, "iDecay": 4096, "vThMant": 10}},
        {"type": "dense", "shape": [8], "weight": rng.integers(0, 90, (8, 16)),
         "bias": rng.integers(-10, 10, 8), "neuron": {**LIF, "iDecay": 0, "vThMant": 50}},
    ]


def _input_bias(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60, n)


# --------------------------------------------------------------------------------------
# Without Lava
# --------------------------------------------------------------------------------------


def test_tiny_net_golden_output() -> None:
    """lava-dl's own tinynet check: input_bias.npy as the input layer's bias, with the
    periodic u/v resets its test attaches (layer i after step i); output spikes at
    emulator steps 2..16 equal output.npy."""
    img = neurochip.compile(TINY, "loihi2_like")
    assert [p.name for p in img.populations] == ["input", "0", "1", "2"]
    meta = img.metadata["netx"]
    assert [r["type"] for r in meta["layers"]] == ["input", "conv", "conv"]
    assert meta["layers"][1]["kernel"] == [5, 5] and meta["layers"][1]["stride"] == [2, 2]
    assert meta["input_transform"] == {"weight": 36, "bias": 34}
    b = np.load(REF / "tinynet" / "input_bias.npy").astype(np.int64).reshape(-1)
    em = neurochip.Emulator(img)
    out, s0, s1, u1 = [], [], [], []
    for t in range(17):
        r = em.run(bias={"0": b}, steps=1, probes=["1.u"])
        out.append(r.spikes["2"][0])
        s0.append(r.spikes["0"][0])
        s1.append(r.spikes["1"][0])
        u1.append(r.probes["1.u"][0])
        if t < 2:  # lava-dl's Reset(interval=17, offset=i-1) of layer t+1 after step t+1
            p = img.population(str(t + 1))
            st = em.state()
            for a in st.values():
                a[:, p.offset:p.offset + p.size] = 0
            em.set_state(st["u"], st["v"])

    def gt(name: str) -> np.ndarray:  # lava-dl's (1, C, H, W, T) -> ours (T, x*y*c)
        a = np.load(REF / "tinynet" / f"{name}.npy")[0].transpose([2, 1, 0, 3])
        return a.reshape(-1, a.shape[-1]).T

    np.testing.assert_array_equal(np.array(out)[2:17], gt("output")[1:].astype(bool))
    # lava-dl's block tests: the input layer's spikes and conv layer 1's spikes and current
    np.testing.assert_array_equal(np.array(s0)[:15], gt("input")[1:].astype(bool))
    s1_gt = gt("layer1").astype(bool)
    s1_gt[0] = False
    np.testing.assert_array_equal(np.array(s1)[1:16], s1_gt[1:])
    np.testing.assert_array_equal(np.array(u1)[:16], gt("current") * 64)


def test_names_layout_and_flatten_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = write_netx(tmp_path / "n.net", _layers(rng, pool=True))
    net, meta = read_netx(path, load_hw("loihi2_like"))
    assert [p.name for p in net.populations] == ["input", "0", "1", "2", "4", "5"]
    assert meta["layers"][3] == {"group": "layer/3", "type": "flatten", "population": None,
                                 "shape": [64]}
    # neuron k of "1" is element k of Lava's (x, y, c) array; the dense after the flatten
    # reads it in torch's (c, y, x) order: column (c*4 + y)*4 + x of the file's weights
    w_file = np.asarray(_layers(np.random.default_rng(1), pool=True)[4]["weight"])
    w = net.connection("2->4").dense_weights()
    x, y, c = 1, 2, 3
    ours = (x * 4 + y) * 4 + c
    torch = (c * 4 + y) * 4 + x
    eff = w[:, ours] * 2.0 ** net.connection("2->4").weight_exp
    np.testing.assert_array_equal(eff, w_file[:, torch])


def test_bias_input_batches_and_checks(tmp_path: Path) -> None:
    path = write_netx(tmp_path / "n.net", _layers(np.random.default_rng(2), pool=True))
    img = neurochip.compile(path, "loihi2_like")
    b = np.stack([_input_bias(192, s) for s in range(3)])
    em = neurochip.Emulator(img)
    both = em.run(bias={"0": b}, steps=12)
    assert both.spikes["5"].shape == (3, 12, 10)
    for s in range(3):
        one = neurochip.Emulator(img).run(bias={"0": b[s]}, steps=12)
        np.testing.assert_array_equal(both.spikes["5"][s], one.spikes["5"])
        np.testing.assert_array_equal(both.spikes["0"][s], one.spikes["0"])
    assert both.spikes["0"][0].any()
    ref = neurochip.Emulator(img, backend="reference").run(bias={"0": b[1]}, steps=12)
    np.testing.assert_array_equal(ref.spikes["5"], both.spikes["5"][1])
    with pytest.raises(EmulatorInputError, match="outside the chip's bias mantissa"):
        neurochip.Emulator(img).run(bias={"0": np.full(192, 5000)}, steps=2)
    with pytest.raises(EmulatorInputError, match="expected integers of shape"):
        neurochip.Emulator(img).run(bias={"0": np.ones(191, int)}, steps=2)
    with pytest.raises(EmulatorInputError, match="no neuron population 'input'"):
        neurochip.Emulator(img).run(bias={"input": np.ones(192, int)}, steps=2)


def test_unsupported_layers_name_group_type_and_why(tmp_path: Path) -> None:
    hw = load_hw("loihi2_like")
    layers = [*_mlp_layers(np.random.default_rng(0)), {"type": "average", "shape": [2, 1, 1]}]
    with pytest.raises(ModelImportError, match=r"layer/2.*'average'.*float readout"):
        read_netx(write_netx(tmp_path / "a.net", layers), hw)
    layers = _mlp_layers(np.random.default_rng(0))
    layers[1]["neuron"] = {"type": "RF_IZ", "vThMant": 10}
    with pytest.raises(ModelImportError, match=r"layer/1.*'dense'.*RF_IZ.*float round trip"):
        read_netx(write_netx(tmp_path / "b.net", layers), hw)
    layers = _layers(np.random.default_rng(0), pool=True)
    layers[1]["weight"][0, 0, 0, 0, 0] = 601  # Lava's Conv keeps it; 8-bit weights cannot
    with pytest.raises(ModelImportError, match=r"layer/1.*'conv'.*no exact form"):
        read_netx(write_netx(tmp_path / "c.net", layers), hw)
    layers = _mlp_layers(np.random.default_rng(0))
    layers[0]["weight"] = layers[0]["weight"] * 2
    layers[0]["weight"][0, 0] = 600  # netx clips mixed weights to [-256, 254], announced
    with pytest.warns(UserWarning, match=r"layer/0.*clips them"):
        read_netx(write_netx(tmp_path / "e.net", layers), hw)
    with pytest.raises(ModelImportError, match="not an HDF5 file"):
        (tmp_path / "d.net").write_text("hello")
        neurochip.compile(tmp_path / "d.net", hw)


# --------------------------------------------------------------------------------------
# Against lava-dl netx in Lava
# --------------------------------------------------------------------------------------


def _lava(path: Path, steps: int, **kw: Any) -> list[dict[str, np.ndarray]]:
    from compiler.lava.netx_compat import run_netx_lava

    return run_netx_lava(path, steps, **kw)


def _same(img: neurochip.ChipImage, result: Any, lava: list[dict[str, np.ndarray]]) -> None:
    pops = [r["population"] for r in img.metadata["netx"]["layers"] if r["population"]]
    assert len(pops) == len(lava)
    for name, ref in zip(pops, lava):
        np.testing.assert_array_equal(result.spikes[name], ref["s"], err_msg=f"{name} spikes")
        state = [k for k in ref if k != "s"]
        assert state
        for v in state:
            np.testing.assert_array_equal(result.probes[f"{name}.{v}"], ref[v],
                                          err_msg=f"{name}.{v}")


def _probes(img: neurochip.ChipImage) -> list[str]:
    from neurochip.core.neuron_models import STATE_SLOTS

    return [f"{p.name}.{v}" for p in img.lif_populations for v in STATE_SLOTS[p.model]
            if v in ("u", "v", "sigma", "act", "residue")]


@pytest.mark.lava
def test_tiny_net_matches_lava_netx() -> None:
    b = np.load(REF / "tinynet" / "input_bias.npy").astype(np.int64).reshape(-1)
    img = neurochip.compile(TINY, "loihi2_like")
    r = neurochip.Emulator(img).run(bias={"0": b}, steps=12, probes=_probes(img))
    _same(img, r, _lava(TINY, 12, bias={0: b}))


@pytest.mark.lava
def test_random_conv_pool_delay_recurrent_match_lava_netx(tmp_path: Path) -> None:
    """netx builds no pool layer; Lava runs the same network with the pool written as its
    depthwise conv, the emulator runs the file with the pool."""
    rng_seed = 5
    with_pool = write_netx(tmp_path / "p.net", _layers(np.random.default_rng(rng_seed), True))
    as_conv = write_netx(tmp_path / "c.net", _layers(np.random.default_rng(rng_seed), False))
    b = _input_bias(192, 3)
    img = neurochip.compile(with_pool, "loihi2_like")
    r = neurochip.Emulator(img).run(bias={"0": b}, steps=16, probes=_probes(img))
    assert all(r.spikes[p].any() for p in ("0", "1", "2", "4", "5"))
    _same(img, r, _lava(as_conv, 16, bias={0: b}))


@pytest.mark.lava
def test_random_mlp_with_input_port_matches_lava_netx(tmp_path: Path) -> None:
    path = write_netx(tmp_path / "m.net", _mlp_layers(np.random.default_rng(7)))
    x = (np.random.default_rng(8).random((16, 30)) < 0.3).astype(np.int64)
    img = neurochip.compile(path, "loihi2_like")
    r = neurochip.Emulator(img).run({"input": x.astype(bool)}, steps=16, probes=_probes(img))
    assert r.spikes["0"].any() and r.spikes["1"].any()
    _same(img, r, _lava(path, 16, inputs=x))


def test_cli_compile_and_inspect_layer_table(tmp_path: Path, capsys: Any) -> None:
    from neurochip.cli import main

    out = tmp_path / "tiny.nchip"
    assert main(["compile", str(TINY), "--hw", "loihi2_like", "-o", str(out), "--quiet",
                 "--reset-interval", "17"]) == 0
    assert {p.model for p in neurochip.ChipImage.load(out).lif_populations} == {"lif_reset"}
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "netx layers" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("layer/1"))
    assert "conv" in row and "6x6x24" in row and "5x5" in row and "2x2" in row and "LOIHI" in row


def _sdnn_layers(rng: np.random.Generator) -> list[dict[str, Any]]:
    """input shape 2x6x6 (no neurons) -> SDNN conv 3ch k3 with bias -> flatten -> SDNN dense
    12 -> sigma readout 5: graded spikes through conv and dense synapses."""
    sd = {"type": "SDNN", "vThMant": 2}
    return [
        {"type": "input", "shape": [2, 6, 6]},
        {"type": "conv", "shape": [3, 4, 4], "weight": rng.integers(-40, 41, (3, 2, 3, 3, 1)) * 2,
         "bias": rng.integers(-2, 6, 3), "kernelSize": [3, 3], "stride": [1, 1],
         "padding": [0, 0], "dilation": [1, 1], "groups": 1, "inChannels": 2,
         "outChannels": 3, "neuron": sd},
        {"type": "flatten", "shape": [48]},
        {"type": "dense", "shape": [12], "weight": rng.integers(-30, 31, (12, 48)) * 2,
         "bias": rng.integers(-3, 3, 12), "neuron": sd},
        {"type": "dense", "shape": [5], "weight": rng.integers(-30, 31, (5, 12)) * 2,
         "neuron": {"type": "SDNN", "sigma_output": True}},
    ]


@pytest.mark.lava
def test_random_sdnn_graded_matches_lava_netx(tmp_path: Path) -> None:
    path = write_netx(tmp_path / "s.net", _sdnn_layers(np.random.default_rng(11)))
    x = (np.random.default_rng(12).random((14, 72)) < 0.3).astype(np.int64)
    img = neurochip.compile(path, "loihi2_like")
    assert [r.get("model") for r in img.metadata["netx"]["layers"]] == \
        [None, "sigma_delta", None, "sigma_delta", "sigma"]
    r = neurochip.Emulator(img).run({"input": x.astype(bool)}, steps=14, probes=_probes(img))
    assert r.spikes["1"].dtype.kind == "i" and np.abs(r.spikes["1"]).max() > 1  # graded
    assert np.abs(r.spikes["3"]).max() > 1
    _same(img, r, _lava(path, 14, inputs=x))


@pytest.mark.lava
def test_reset_interval_matches_lava_netx(tmp_path: Path) -> None:
    path = write_netx(tmp_path / "r.net", _layers(np.random.default_rng(9), pool=False))
    b = _input_bias(192, 4)
    img = neurochip.compile(path, "loihi2_like", reset_interval=4)
    assert {p.model for p in img.lif_populations} == {"lif_reset"}
    r = neurochip.Emulator(img).run(bias={"0": b}, steps=14, probes=_probes(img))
    _same(img, r, _lava(path, 14, bias={0: b}, reset_interval=4))
