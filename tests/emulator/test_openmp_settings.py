"""The emulator's default for GNU OpenMP's spin-wait, and that a user's setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
SHOW = "import os, emulator; print(os.environ.get('GOMP_SPINCOUNT'))"


def _spincount(**env: str) -> str:
    base = {k: v for k, v in os.environ.items()
            if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True,
                         check=True, env={**base, "PYTHONPATH": ROOT, **env})
    return out.stdout.strip()


@pytest.mark.parametrize(("env", "want"), [
    ({}, "10000"),  # short spins: threads sleep soon after a batched run
    ({"GOMP_SPINCOUNT": "123"}, "123"),  # the user's choice is kept
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "None"),  # and a wait policy is left to libgomp
])
def test_the_emulator_shortens_openmps_spin_wait_unless_the_user_chose(env: dict[str, str],
                                                                       want: str) -> None:
    from emulator.kernels import GOMP_SPINCOUNT

    assert GOMP_SPINCOUNT == "10000"
    assert _spincount(**env) == want
