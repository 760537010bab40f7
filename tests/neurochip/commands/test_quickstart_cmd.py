"""``neurochip quickstart``: the main job on the bundled digits model, and its error paths."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from neurochip.commands import quickstart_cmd
from neurochip.commands.quickstart_cmd import BUNDLED_MODEL

PNG = b"\x89PNG\r\n\x1a\n"


def test_bundled_model_is_there() -> None:
    assert BUNDLED_MODEL.exists(), "neurochip/data/digits.nir is the main job's model"
    rec = json.loads(BUNDLED_MODEL.with_suffix(".json").read_text())
    assert rec["data"]["dataset"] == "digits" and rec["seed"] == 0


def test_main_job_meets_the_targets(cli: Any, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    rc, out, err = cli("quickstart", "--out", out_dir, "--check", "--batch-size", "200")
    assert rc == 0, err
    m = re.search(r"^float accuracy: (\d+\.\d) %", out, re.M)
    c = re.search(r"^chip accuracy: (\d+\.\d) %$", out, re.M)
    same = re.search(r"^identically classified by float reference and chip: (\d+\.\d) % "
                     r"\((\d+) of 450\)$", out, re.M)
    assert m and c and same, out
    assert float(c.group(1)) >= float(m.group(1)) - 0.5
    assert int(same.group(2)) >= 0.99 * 450
    for key in ("spikes", "synaptic ops", "cycles", "latency", "energy"):
        assert re.search(rf"^  {key} +\d", out, re.M), key
    assert "core usage: 1 of 128 cores" in out
    assert "targets: chip >= float - 0.5 points: met" in out and "99 %: met" in out
    for name in ("raster.png", "quantization.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG
    assert re.search(r"^done in \d+\.\d s$", out, re.M)


def test_run_quickstart_numbers_are_consistent() -> None:
    import numpy as np

    res = quickstart_cmd.run_quickstart(out_dir=None, progress=False, batch_size=450)
    assert res.plots == []
    assert len(res.labels) == 450 and res.run_steps == res.input_steps + 2
    assert res.chip_accuracy == pytest.approx(np.mean(res.chip_pred == res.labels))
    assert res.identical == pytest.approx(np.mean(res.chip_pred == res.float_pred))
    assert res.totals["energy_pj"] > 0 and res.totals["latency_ns"] > 0
    assert quickstart_cmd.targets_met(res)


def test_check_fails_when_a_target_is_missed(cli: Any, tmp_path: Path) -> None:
    rc, out, _ = cli("quickstart", "--weight-bits", "3", "--no-plots", "--check", "-q",
                     "--out", tmp_path / "o")
    assert rc == 1
    assert "MISSED" in out
    assert not (tmp_path / "o").exists()


def _copy_model(tmp_path: Path) -> Path:
    model = tmp_path / "m.nir"
    shutil.copy(BUNDLED_MODEL, model)
    shutil.copy(BUNDLED_MODEL.with_suffix(".json"), model.with_suffix(".json"))
    return model


def test_other_model_and_hw(cli: Any, tmp_path: Path) -> None:
    model = _copy_model(tmp_path)
    rc, out, err = cli("quickstart", "--model", model, "--hw", "loihi_like_2chip",
                       "--no-plots", "-q")
    assert rc == 0, err
    assert "m.nir on 'loihi_like_2chip'" in out


@pytest.mark.parametrize("edit, message", [
    ("missing_model", "file {tmp}/m.nir: model does not exist"),
    ("missing_record", "model record {tmp}/m.json: is missing"),
    ("bad_json", "is not valid JSON"),
    ("no_steps", "lacks 'data.steps'"),
    ("not_digits", "records the data set 'randman'"),
    ("wrong_input", "the record's input 'x' is not an input of the model"),
    ("wrong_n_test", "evaluated on 10 test samples"),
    ("bad_hw", "unknown hardware"),
])
def test_errors(cli: Any, tmp_path: Path, edit: str, message: str) -> None:
    model = _copy_model(tmp_path)
    rec_path = model.with_suffix(".json")
    rec = json.loads(rec_path.read_text())
    args = ["quickstart", "--model", str(model), "--no-plots", "-q"]
    if edit == "missing_model":
        model.unlink()
    elif edit == "missing_record":
        rec_path.unlink()
    elif edit == "bad_json":
        rec_path.write_text("{")
    elif edit == "no_steps":
        del rec["data"]["steps"]
    elif edit == "not_digits":
        rec["data"]["dataset"] = "randman"
    elif edit == "wrong_input":
        rec["chip_run"]["input"] = "x"
    elif edit == "wrong_n_test":
        rec["data"]["n_test"] = 10
    elif edit == "bad_hw":
        args += ["--hw", "no_such_chip"]
    if edit in ("no_steps", "not_digits", "wrong_input", "wrong_n_test"):
        rec_path.write_text(json.dumps(rec))
    rc, _, err = cli(*args)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurochip quickstart: error: "), err
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_missing_bundled_model(cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(quickstart_cmd, "BUNDLED_MODEL", tmp_path / "digits.nir")
    rc, _, err = cli("quickstart", "--no-plots")
    assert rc == 2 and "the bundled model does not exist" in err
