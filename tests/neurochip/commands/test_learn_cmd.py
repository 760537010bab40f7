"""``neurochip learn``: creates, learns, writes the learned image and the curve."""

from __future__ import annotations

import json
import pathlib

import pytest

import neurochip
from neurochip.cli import main


def test_learn_command_writes_image_and_curve(tmp_path: pathlib.Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "digits.nchip"
    out = tmp_path / "learned.nchip"
    png = tmp_path / "curve.png"
    rc = main(["learn", str(img), "--create", "--rule", "dfa", "--task", "digits", "--epochs",
               "2", "--limit", "150", "--out", str(out), "--curve", str(png), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert len(res["accuracy"]) == 3 and res["accuracy"][-1] > res["accuracy"][0]
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    learned = neurochip.ChipImage.load(out)
    assert learned.learning is not None and learned.metadata["learned"]["samples"] == 300
    # the learned image deploys like any other
    r = neurochip.Emulator(learned).run(steps=3)
    assert r.steps == 3


def test_learn_command_errors(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = neurochip.Network()
    net.add_input("in", 3)
    net.add_lif("out", 2, du=0, dv=0, vth=10)
    net.connect("in", "out", [[2, 2, 2], [2, 2, 2]])
    bad = tmp_path / "small.nchip"
    neurochip.compile(net).save(bad)
    assert main(["learn", str(bad), "--epochs", "1"]) == 2
    assert "64 inputs and 10 outputs" in capsys.readouterr().err
    assert main(["learn", str(tmp_path / "missing.nchip")]) == 2
