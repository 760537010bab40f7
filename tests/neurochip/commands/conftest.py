"""Fixtures for the CLI tests: golden models, compiled images and input files."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import neurochip
from neurochip.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``neurochip ARGS`` in-process: (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, usage errors
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def compile_golden(name: str) -> neurochip.ChipImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return neurochip.compile(str(GOLDEN / f"{name}.nir"), "loihi_like")


@pytest.fixture(scope="session")
def ff_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """feed_forward.nir compiled: input 'in' (16), hidden 'hid', readout 'out' (v)."""
    path = tmp_path_factory.mktemp("images") / "ff.nchip"
    compile_golden("feed_forward").save(path)
    return path


@pytest.fixture(scope="session")
def rec_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """recurrent.nir compiled: input 'in' (8), 'rec' (recurrent), 'spk' (delay 2)."""
    path = tmp_path_factory.mktemp("images") / "rec.nchip"
    compile_golden("recurrent").save(path)
    return path


@pytest.fixture
def write_npz(tmp_path: Path) -> Callable[..., Path]:
    """Write arrays to an .npz file in tmp_path: write_npz("x.npz", in=...)."""

    def write(name: str, **arrays: np.ndarray) -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write
