"""The pytest plugin, used from a temporary project outside the repository.

The plugin is found the way an installed neurochip provides it: through the ``pytest11``
entry point declared in pyproject.toml (written here into a throwaway ``.dist-info`` on
PYTHONPATH, so pytest's own entry-point loading picks it up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROJECT_TESTS = '''
import numpy as np
import pytest
from neurochip.hil import demo_image, demo_inputs


@pytest.mark.hardware
def test_runs_on_the_board(board):
    board.load(demo_image())
    r = board.run({"in": demo_inputs(10)})
    assert r.spikes["l2"].shape == (10, 12)
    print("BOARD", board.info()["backend"])


@pytest.mark.hardware
def test_learning_needs_a_board_that_learns(board):
    board.load(demo_image())
    board.read_state()
    board.write_state(v=np.zeros((1, demo_image().n_neurons), np.int64))


@pytest.mark.hardware
def test_golden(golden):
    golden.check("demo", demo_image(), {"in": demo_inputs(12)}, 14)
'''


def entry_point_dir(tmp: Path) -> Path:
    """A site folder holding a distribution with pyproject's pytest11 entry points."""
    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    site = tmp / "site"
    info = site / "neurochip_plugin_under_test-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: "
                                   "neurochip-plugin-under-test\nVersion: 0.0\n")
    lines = ["[pytest11]"] + [f"{k} = {v}" for k, v in eps["pytest11"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def run_pytest(cwd: Path, *args: str, env: dict[str, str] | None = None,
               site: Path | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NEUROCHIP_"))}
    path = [str(REPO)] + ([str(site)] if site else [])
    e["PYTHONPATH"] = os.pathsep.join(path)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs",
                           "--strict-markers", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=240)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("outside")
    proj = tmp / "lab_project"
    proj.mkdir()
    (proj / "test_lab.py").write_text(textwrap.dedent(PROJECT_TESTS))
    return proj, entry_point_dir(tmp)


def test_pyproject_declares_the_plugin_entry_point() -> None:
    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert eps["pytest11"] == {"neurochip": "neurochip.pytest_plugin"}


def test_a_project_outside_the_repo_gets_board_golden_skips_and_the_marker(project) -> None:
    proj, site = project  # the plugin comes from the entry point; "--board URI" with a space
    rec = run_pytest(proj, "-s", "--golden-update", "--board", "null", "-m", "hardware",
                     site=site)
    out = rec.stdout
    assert "neurochip board: null" in out and "BOARD null" in out, out + rec.stderr
    assert "1 failed, 1 passed, 1 skipped" in out
    # an operation the null board lacks skips with its reason
    assert "unsupported on this board" in out and "cannot read neuron state" in out
    # golden vectors recorded on the reference model catch a board that computes nothing
    assert (proj / "golden" / "demo.ngold").exists()
    assert "DIVERGED" in out and "first divergence: step" in out


def test_the_board_uri_comes_from_the_option_the_environment_or_the_default(
        monkeypatch) -> None:
    from neurochip.pytest_plugin import board_uri

    class Config:
        def __init__(self, value: str | None) -> None:
            self.value = value

        def getoption(self, name: str) -> str | None:
            assert name == "neurochip_board"
            return self.value

    monkeypatch.delenv("NEUROCHIP_BOARD", raising=False)
    assert board_uri(Config(None)) == "emulator"  # type: ignore[arg-type]
    monkeypatch.setenv("NEUROCHIP_BOARD", "lava")
    assert board_uri(Config(None)) == "lava"  # type: ignore[arg-type]
    assert board_uri(Config("tcp://h:1")) == "tcp://h:1"  # type: ignore[arg-type]


def test_the_repos_conftest_does_not_register_the_plugin_a_second_time(project) -> None:
    _, site = project
    target = "tests/neurochip/hardware/test_suite.py::test_run_before_load_is_a_board_error"
    rec = run_pytest(REPO, target, "--board", "reference", site=site)  # entry point + conftest
    assert rec.returncode == 0 and "1 passed" in rec.stdout, rec.stdout + rec.stderr


def test_an_unreachable_board_skips_with_the_reason() -> None:
    from neurochip.pytest_plugin import open_or_skip

    with pytest.raises(pytest.skip.Exception, match=r"cannot be opened.*cannot connect"):
        open_or_skip("tcp://127.0.0.1:1")
    with pytest.raises(pytest.skip.Exception, match="unknown board"):
        open_or_skip("fpga")
    open_or_skip("null").close()


def test_a_missing_golden_file_fails_and_says_how_to_record_it(request, tmp_path) -> None:
    from neurochip.board import NullBoard
    from neurochip.hil import demo_image
    from neurochip.pytest_plugin import Golden

    g = Golden(NullBoard(), request, folder=tmp_path)
    with pytest.raises(pytest.fail.Exception, match="--golden-update"):
        g.check("none", demo_image(), steps=3)
