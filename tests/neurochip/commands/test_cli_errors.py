"""Every bad argument is one line on stderr and exit status 2; a bug is one line naming a
traceback file (exit status 3), never a raw traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
FF = str(GOLDEN / "feed_forward.nchip")


@pytest.fixture
def inputs(tmp_path: Path) -> str:
    p = tmp_path / "x.npz"
    np.savez(p, **{"in": np.zeros((3, 16), bool)})
    return str(p)


@pytest.mark.parametrize("args", [
    ["run", FF, "-i", "{x}", "-o", "{o}", "--steps", "1000000000000"],
    ["run", FF, "-i", "{x}", "-o", "{o}", "--steps", "-5"],
    ["run", FF, "-i", "{x}", "-o", "{o}", "--steps", "abc"],
    ["run", FF, "-i", "{x}", "-o", "{o}", "--batch-size", "0"],
    ["run", FF, "-i", "{x}", "-o", "{o}", "--threads", "-1"],
    ["run", FF, "-i", "{x}", "-o", "{o}", "--backend", "gpu"],
    ["run", str(GOLDEN / "missing.nchip"), "-i", "{x}", "-o", "{o}"],
    ["run", str(GOLDEN / "feed_forward.nir"), "-i", "{x}", "-o", "{o}"],
    ["run", FF, "-i", FF, "-o", "{o}"],
    ["compile", str(GOLDEN / "feed_forward.nir"), "--dt", "nan"],
    ["compile", str(GOLDEN / "feed_forward.nir"), "--dt", "0"],
    ["compile", str(GOLDEN / "feed_forward.nir"), "--weight-bits", "99999999999999"],
    ["compile", str(GOLDEN / "feed_forward.nir"), "--calibration-percentile", "101"],
    ["compile", str(GOLDEN / "feed_forward.nir"), "--hw", "no_such_chip", "-o", "{o}.nchip"],
    ["inspect", str(GOLDEN / "feed_forward.npz")],
    ["learn", "{o}.nchip", "--epochs", "-1"],
    ["train", "xor", "--steps", "0"],
    ["no-such-command"],
])
def test_bad_arguments_print_one_line_and_exit_2(cli: Callable[..., tuple[int, str, str]],
                                                 tmp_path: Path, inputs: str,
                                                 args: list[str]) -> None:
    argv = [a.replace("{x}", inputs).replace("{o}", str(tmp_path / "o.npz")) for a in args]
    rc, out, err = cli(*argv)
    assert rc == 2, (rc, out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error" in lines[0], err
    assert "Traceback" not in err


def test_internal_error_prints_a_traceback_file(cli: Callable[..., tuple[int, str, str]],
                                                tmp_path: Path, monkeypatch) -> None:
    import neurochip.commands.inspect_cmd as inspect_cmd

    def bug(*a: object, **k: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(inspect_cmd, "describe", bug)
    monkeypatch.setenv("NEUROCHIP_CRASH_DIR", str(tmp_path))
    rc, _out, err = cli("inspect", FF)
    assert rc == 3
    assert len(err.strip().splitlines()) == 1 and "internal error" in err
    assert "Traceback" not in err
    (tb,) = tmp_path.glob("neurochip-inspect-*.txt")
    assert tb.name in err and "ZeroDivisionError: a bug" in tb.read_text()
