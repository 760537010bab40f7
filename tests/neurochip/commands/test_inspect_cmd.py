"""``neurochip inspect``: cores, neurons, synapse memory, fan-in/out, quantization table."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import neurochip
from neurochip.core.image import ChipImage

from .conftest import GOLDEN


def test_text_tables(cli: Any, ff_image: Path) -> None:
    rc, out, err = cli("inspect", ff_image)
    assert rc == 0, err
    image = ChipImage.load(ff_image)
    core = image.cores[0]
    assert out.startswith(f"chip image for 'loihi_like': {len(image.cores)} of 128 cores, "
                          f"{image.n_neurons} neurons")
    assert "imported from nir: profile neurochip" in out
    for section in ("\ncores\n", "\npopulations\n", "\nconnections\n", "\noutputs\n",
                    "\nquantization per layer (float -> chip)\n"):
        assert section in out
    assert f"{core.neurons}/1024" in out
    assert f"{core.synapse_bits / 8192:.2f} KiB" in out
    q = image.metadata["quantization"]["hid"]
    pr = q["projections"]["hid.w"]
    assert f"{pr['rel_weight_error']:.3%}" in out
    assert "hid.w" in out and "in -> hid" in out


def test_json_description(cli: Any, rec_image: Path) -> None:
    rc, out, _ = cli("inspect", rec_image, "--json")
    assert rc == 0
    d = json.loads(out)
    image = ChipImage.load(rec_image)
    assert d["cores_used"] == len(image.cores) and d["cores_total"] == 128
    assert d["neurons"] == image.n_neurons and d["synapses"] == image.n_synapses
    pops = {p["name"]: p for p in d["populations"]}
    # rec: 8 -> 24 feed-forward plus 24 x 24 recurrent synapses; it feeds 'spk' (6) too.
    assert pops["rec"]["fan_in_synapses"] == 8 * 24 + 24 * 24
    assert pops["rec"]["fan_out_synapses"] == 24 * 24 + 24 * 6
    assert pops["in"]["fan_out_per_neuron"] == 24
    layers = {q["population"]: q for q in d["quantization"]}
    assert set(layers) == {"rec", "spk"}
    assert {p["name"] for p in layers["rec"]["projections"]} == {"rec.w", "rec.w_rec"}
    assert d["cores"][0]["synapse_bits"] == image.cores[0].synapse_bits
    assert {c["name"]: c["delay"] for c in d["connections"]}["spk.w"] == 2


def test_calibration_agreement_is_shown(cli: Any, tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((2, 30, 16)) < 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = neurochip.compile(str(GOLDEN / "feed_forward.nir"), "loihi_like",
                                calibration={"in": x})
    img.save(tmp_path / "c.nchip")
    rc, out, _ = cli("inspect", tmp_path / "c.nchip")
    assert rc == 0
    assert "% spikes" in out and "% v error" in out


def test_errors(cli: Any, tmp_path: Path) -> None:
    rc, out, err = cli("inspect", tmp_path / "none.nchip")
    assert rc == 2 and out == ""
    assert err.strip() == f"neurochip inspect: error: chip image {tmp_path}/none.nchip: " \
                          "file does not exist"
    (tmp_path / "bad.nchip").write_bytes(b"PK\x03\x04 truncated")
    rc, _, err = cli("inspect", tmp_path / "bad.nchip")
    assert rc == 2 and "not a chip image" in err and len(err.strip().splitlines()) == 1
    rc, _, err = cli("inspect")
    assert rc == 2 and "usage: neurochip inspect" in err


def test_traffic_table_names_hops_busiest_link_and_slowest_core(cli: Any, tmp_path: Path
                                                                 ) -> None:
    # 'a' on core 0 (tile 0) and 'b' on core 2 (tile 1) of tiny4 under next-fit: every
    # spike of 'a' crosses one tile link
    net = neurochip.Network()
    net.add_input("in", 4)
    net.add_lif("a", 64, du=0, dv=0, vth=10)
    net.add_lif("pad", 64, du=0, dv=0, vth=10)
    net.add_lif("b", 64, du=0, dv=0, vth=10)
    net.connect("in", "a", np.full((64, 4), 2))
    net.connect("in", "pad", np.full((64, 4), 2))
    net.connect("a", "b", np.eye(64, dtype=np.int64) * 2, storage="sparse")
    img = neurochip.compile(net, "tiny4", placement="greedy")
    img.save(tmp_path / "t.nchip")
    rc, out, _ = cli("inspect", tmp_path / "t.nchip")
    assert rc == 0
    assert "\ntraffic per step at 1 spike per neuron per step" in out
    assert "NoC hops             64\n" in out
    assert "busiest link         tile (0,0) - (1,0): 64 messages" in out
    # core 0: 4 axon events x 64 dense synapses and 64 messages sent, the most cycles
    assert "slowest core         core 0: 1,576 ns (256 synaptic ops, 4 axon events, 64 " \
           "neurons)" in out
    rc, js, _ = cli("inspect", tmp_path / "t.nchip", "--json")
    d = json.loads(js)["traffic"]
    assert d["hops_per_step"] == 64 and d["chip_links_per_step"] == 0
    assert d["slowest_core"]["core"] == 0 and d["slowest_core"]["synops_per_step"] == 256
    assert d["messages_per_step"] == 4 * 2 + 64
