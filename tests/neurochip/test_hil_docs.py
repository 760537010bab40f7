"""The examples of docs/hil.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neurochip.board import open_board

DOC = Path(__file__).resolve().parents[2] / "docs" / "hil.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_python_api_example_runs(tmp_path, monkeypatch, capsys) -> None:
    (code,) = [b for b in blocks() if "from neurochip.golden" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "REPRODUCED" in out and "DIVERGED" in out and (tmp_path / "run.ngold").exists()


def test_the_test_example_passes_on_a_board() -> None:
    (code,) = [b for b in blocks() if "def test_matches_the_specification" in b]
    ns: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), ns)
    with open_board("reference") as board:
        ns["test_matches_the_specification"](board)  # type: ignore[operator]
    with pytest.raises(AssertionError), open_board("faulty:stuck=0.1+emulator") as bad:
        ns["test_matches_the_specification"](bad)  # type: ignore[operator]
