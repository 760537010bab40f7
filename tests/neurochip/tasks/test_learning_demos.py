"""The on-chip learning demonstrations, in reduced form (full sizes: tools/bench_learning.py)."""

from __future__ import annotations

import pytest

from neurochip.tasks.digits import DigitsTask, digits_task
from neurochip.tasks.learning_demos import adaptation_demo, digits_demo, superspike_demo, xor_demo


@pytest.fixture(scope="module")
def task() -> DigitsTask:
    return digits_task()


@pytest.mark.parametrize("rule, floor", [("dfa", 0.6), ("dcll", 0.5)])
def test_digits_learned_on_chip_from_random_weights(task: DigitsTask, rule: str,
                                                    floor: float) -> None:
    r = digits_demo(rule, passes=2, limit=400, test_limit=300, task=task)
    assert r["initial_accuracy"] < 0.2
    assert r["accuracy"][-1] >= floor and r["accuracy"][-1] > r["accuracy"][0] - 0.05
    # the fixed-point engine stays close to its float64 reference (reduced run: 15 points)
    assert abs(r["final_accuracy"] - r["float_final_accuracy"]) <= 0.15
    c = r["counters"][-1]
    assert c["learn_updates"] > 0 and c["error_messages"] > 0 and c["trace_updates"] > 0


def test_superspike_learns_a_target_spike_train() -> None:
    r = superspike_demo(trials=60, blocks=2)
    assert r["reduction"] >= 0.8 and r["float_reduction"] >= 0.8
    assert len(r["final_steps"]) <= 2 * len(r["target_steps"])


def test_temporal_xor_is_learned_on_chip() -> None:
    r = xor_demo(repeats=25, blocks=3)
    assert r["accuracy_initial"] <= 0.6
    assert r["final_accuracy"] >= 0.85


def test_compiled_model_adapts_on_chip_to_a_changed_input() -> None:
    r = adaptation_demo(offline_passes=2, adapt_passes=1, limit=400)
    assert r["clean_accuracy"] - r["shifted_accuracy_before"] > 0.2  # the change hurts
    assert r["shifted_accuracy_after"] - r["shifted_accuracy_before"] >= 0.15
    assert r["recovered_fraction"] >= 0.3
