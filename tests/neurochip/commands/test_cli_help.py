"""Every command has --help; the installed entry point works and exits non-zero on errors."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from neurochip.cli import COMMAND_MODULES, build_parser

COMMANDS = ["compile", "run", "inspect", "quickstart", "sweep", "eval"]


def _registered() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: dict[str, Any] = getattr(sub, "choices", None) or {}
    return sorted(choices)


def test_our_commands_are_registered() -> None:
    names = _registered()
    for c in COMMANDS:
        assert c in names
        assert f"neurochip.commands.{c}_cmd" in COMMAND_MODULES


@pytest.mark.parametrize("command", _registered())
def test_every_command_has_help(cli: Any, command: str) -> None:
    rc, out, _ = cli(command, "--help")
    assert rc == 0
    assert out.startswith(f"usage: neurochip {command}")
    assert "options:" in out


def test_no_command_prints_help(cli: Any) -> None:
    rc, out, _ = cli()
    assert rc == 1 and "COMMAND" in out


def test_commands_are_light_at_import() -> None:
    mods = [f"neurochip.commands.{c}_cmd" for c in COMMANDS]
    code = ("import argparse, importlib, sys\n"
            "sub = argparse.ArgumentParser().add_subparsers()\n"
            f"for m in {mods!r}: importlib.import_module(m).register(sub)\n"
            # numpy, scipy and pydantic come with neurochip.core (the chip as data), which
            # ``import neurochip`` loads; the compiler, the emulator and their heavy
            # dependencies load only when a command runs.
            "heavy = ('numba', 'nir', 'onnx', 'matplotlib', 'tqdm', 'emulator', 'compiler',\n"
            "         'h5py', 'sklearn')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_entry_point_error_exit_status(tmp_path: Any) -> None:
    p = subprocess.run([sys.executable, "-m", "neurochip.cli", "inspect",
                        str(tmp_path / "none.nchip")], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stdout == ""
    assert p.stderr.strip().startswith("neurochip inspect: error: chip image")
