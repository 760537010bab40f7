"""Hypothesis-driven mutations of NIR files and hardware descriptions: every case ends in
a typed error or a correct result (a network that compiles, verifies and runs with the
Numba emulator and the reference model agreeing)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurochip
from neurochip.fuzz import classify, mutate_hw_yaml, mutate_nir_file, run_image

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
HW_YAML = (ROOT / "hw_configs" / "loihi_like.yaml").read_text()


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(["feed_forward", "recurrent"]), seed=st.integers(0, 2**32 - 1))
def test_nir_mutations_end_typed_or_correct(tmp_path: Path, name: str, seed: int) -> None:
    dst = tmp_path / f"m{seed}.nir"
    what = mutate_nir_file(GOLDEN / f"{name}.nir", dst, np.random.default_rng(seed))

    def compile_and_run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = neurochip.compile(str(dst), "loihi_like")
        run_image(img, steps=3)

    outcome, detail = classify(compile_and_run)
    assert outcome in ("typed", "ok"), f"{what}: {outcome} {detail}"


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_hw_yaml_mutations_end_typed_or_correct(tmp_path: Path, seed: int) -> None:
    text, what = mutate_hw_yaml(HW_YAML, np.random.default_rng(seed))
    p = tmp_path / f"hw{seed}.yaml"
    p.write_text(text)

    def load_compile_run() -> None:
        hw = neurochip.load_hw(p)
        net = neurochip.Network(hw)
        net.add_input("in", 4)
        net.add_lif("out", 3, du=100, dv=100, vth=10)
        net.connect("in", "out", np.full((3, 4), 40))
        run_image(neurochip.compile(net, hw), steps=3)

    outcome, detail = classify(load_compile_run)
    assert outcome in ("typed", "ok"), f"{what}: {outcome} {detail}"
