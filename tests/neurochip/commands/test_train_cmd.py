from __future__ import annotations

import json
import re

import pytest

from neurochip.cli import main


def test_train_is_listed(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for opt in ("--hidden", "--steps", "--surrogate", "--epochs", "--chip-aware", "-o"):
        assert opt in out


def test_train_xor_writes_model_record_and_curve(capsys, tmp_path) -> None:
    out = tmp_path / "sub" / "xor.nir"
    assert main(["train", "xor", "-q", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^float accuracy: 100\.0 %$", text, re.M)
    assert re.search(r"^chip accuracy: 100\.0 %$", text, re.M)
    assert out.exists() and out.with_suffix(".png").stat().st_size > 1000
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["command"] == f"neurochip train xor --seed 0 -o {out}"
    assert rec["seed"] == 0 and rec["float"] == 1.0 and rec["chip"] == 1.0
    assert rec["data"]["dataset"] == "temporal_xor"
    assert "seconds" not in json.dumps(rec)  # reproducible: no timings, no timestamps


def test_train_digits_chip_aware(capsys, tmp_path) -> None:
    out = tmp_path / "d.nir"
    args = ["train", "digits", "-q", "--epochs", "2", "--hidden", "16", "--steps", "8",
            "--surrogate", "piecewise", "--steepness", "3", "--recurrent",
            "--chip-aware", "loihi_like",
            "--weight-bits", "4", "--finetune-epochs", "1", "--seed", "2", "-o", str(out),
            "--curve", str(tmp_path / "c.png")]
    assert main(args) == 0
    text = capsys.readouterr().out
    for line in ("float accuracy before chip-aware fine-tuning: ", "float accuracy: ",
                 "chip accuracy: "):
        assert re.search(rf"^{line}\d+\.\d %$", text, re.M), text
    assert (tmp_path / "c.png").exists()
    rec = json.loads(out.with_suffix(".json").read_text())
    s = rec["settings"]
    assert (s["hidden"], s["steps"], s["surrogate"], s["steepness"]) == (16, 8, "piecewise", 3.0)
    assert (s["chip_aware"], s["weight_bits"], s["finetune_epochs"]) == ("loihi_like", 4, 1)
    assert s["recurrent"] and "--recurrent" in rec["command"]
    assert rec["data"]["split"]["random_state"] == 0


def test_train_errors(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["train", "digits", "--surrogate", "arctan"])
    assert e.value.code == 2
    assert main(["train", "xor", "-q", "--weight-bits", "9", "-o", str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err
    assert "neurochip train: error:" in err and "weight_bits" in err
    assert main(["train", "xor", "-q", "--chip-aware", "nochip", "-o",
                 str(tmp_path / "x.nir")]) == 2
    assert "nochip" in capsys.readouterr().err
    assert not (tmp_path / "x.nir").exists()


def test_fine_tune_an_imported_network(capsys, tmp_path) -> None:
    """--from NIR --epochs 0: no float training, only chip-aware fine-tuning of the file."""
    first = tmp_path / "a.nir"
    assert main(["train", "digits", "-q", "--epochs", "2", "--hidden", "16", "--steps", "8",
                 "--no-chip", "-o", str(first)]) == 0
    capsys.readouterr()
    out = tmp_path / "b.nir"
    assert main(["train", "digits", "-q", "--from", str(first), "--epochs", "0", "--steps", "8",
                 "--chip-aware", "loihi_like", "--weight-bits", "4", "--finetune-epochs", "1",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^chip accuracy: \d+\.\d %$", text, re.M)
    rec = json.loads(out.with_suffix(".json").read_text())
    assert f"--from {first}" in rec["command"] and rec["settings"]["epochs"] == 0
    assert main(["train", "xor", "-q", "--from", str(first), "--epochs", "0",
                 "-o", str(tmp_path / "c.nir")]) == 2
    assert "needs 3 inputs" in capsys.readouterr().err
