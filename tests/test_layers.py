"""The layers contract (pyproject.toml, checked by ``make lint``): it holds on the tree, and
a planted forbidden import makes it fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def _copy_tree(tmp: Path) -> Path:
    for pkg in ("neurochip", "compiler", "emulator"):
        shutil.copytree(ROOT / pkg, tmp / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def test_contract_holds_on_the_tree() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(("module", "target"), [
    ("compiler/ir/graph.py", "emulator.chip"),       # a peer importing its peer
    ("emulator/timing.py", "compiler.pipeline"),
    ("neurochip/core/hw.py", "neurochip.board"),     # the bottom importing the face
    ("neurochip/core/image.py", "compiler.ir"),      # the bottom importing a peer
    ("compiler/float_sim.py", "neurochip.tasks.training"),  # a peer importing the face
    ("emulator/learning/engine.py", "compiler.learning.rules"),  # the engine re-checking
    ("neurochip/core/learning.py", "compiler.learning.compile"),  # the record checking
])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, module: str,
                                                target: str) -> None:
    tree = _copy_tree(tmp_path)
    with open(tree / module, "a") as f:
        f.write(f"\nimport {target}  # planted\n")
    res = _lint(tree)
    assert res.returncode != 0
    assert "face -> compiler | emulator -> neurochip.core BROKEN" in res.stdout, res.stdout
    assert target in res.stdout, res.stdout


def test_a_module_outside_every_layer_breaks_the_contract(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    (tree / "neurochip" / "stray.py").write_text('"""A module nobody placed in a layer."""\n')
    res = _lint(tree)
    assert res.returncode != 0
    assert "neurochip.stray" in res.stdout


def test_lower_layers_never_import_the_face_package_itself() -> None:
    # ``import neurochip`` from below would reach the face through the package's __init__,
    # which the layers contract (about submodules) does not see.
    graph = grimp.build_graph("neurochip", "compiler", "emulator", cache_dir=None)
    lower = [m for m in graph.modules
             if m.split(".")[0] in ("compiler", "emulator") or m.startswith("neurochip.core")]
    offenders = [m for m in lower if "neurochip" in graph.find_modules_directly_imported_by(m)]
    assert offenders == []


def test_the_learning_engine_does_not_import_the_emulator_face() -> None:
    # ``emulator.chip`` builds the engine and hands it a ``RunState``; the engine never
    # imports ``emulator.chip`` back, not even inside a function.
    graph = grimp.build_graph("neurochip", "compiler", "emulator", cache_dir=None)
    assert graph.find_shortest_chain("emulator.learning.engine", "emulator.chip") is None
    assert graph.find_shortest_chain("emulator.chip", "emulator.learning.engine") is not None
    assert graph.find_shortest_chain("emulator.learning", "compiler") is None
