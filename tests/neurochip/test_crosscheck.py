"""The SANA-FE cross-check on small networks: equal spike counts, and loihi_sanafe's
energy and latency per step within 10 % of SANA-FE's (its Loihi architecture)."""

import numpy as np
import pytest

from neurochip import crosscheck  # SANA-FE (PyPI sanafe) is in the dev extra
from neurochip.core.hw import HardwareSpec, load_hw

CASES = {c.name: c for c in crosscheck.cases(steps=12, small=True)}


@pytest.mark.parametrize("name", ["dense_r40", "sparse_r30", "recurrent_r20"])
def test_loihi_sanafe_agrees_with_sanafe(name: str) -> None:
    row = crosscheck.compare(CASES[name], {"loihi_sanafe": "loihi_sanafe"}, simple=False)
    assert row["spikes_equal"] and row["spikes"] > 0
    assert abs(row["loihi_sanafe_energy_err"]) < 0.10, row
    assert abs(row["loihi_sanafe_latency_err"]) < 0.10, row
    assert row["cores"] >= 2  # the small cores spread the network over several


def test_spike_counts_match_neuron_by_neuron() -> None:
    case = CASES["conv_r30"]
    img = crosscheck.compile_case(case, "loihi_sanafe")
    ours = crosscheck.run_ours(case, "loihi_sanafe", img)
    theirs = crosscheck.run_sanafe(case, img)
    for name, counts in theirs.spike_counts.items():
        np.testing.assert_array_equal(ours.spike_counts[name], counts)
    # energy per step follows the activity step by step, not only on average
    assert np.corrcoef(ours.energy_pj, theirs.energy_pj)[0, 1] > 0.95


def test_message_schedule_follows_sanafe_step_by_step() -> None:
    """Every spike of the convolution fans out to the four cores of one tile, where
    SANA-FE's route load holds messages back: the message schedule follows its detailed
    timing model step by step, closer than the pipelined core alone."""
    case = CASES["conv_r30"]
    img = crosscheck.compile_case(case, "loihi_sanafe")
    ours = crosscheck.run_ours(case, "loihi_sanafe", img)
    theirs = crosscheck.run_sanafe(case, img)
    np.testing.assert_allclose(ours.latency_ns, theirs.latency_ns, rtol=0.01)
    d = load_hw("loihi_sanafe").to_dict()
    d["cost_model"].pop("noc_schedule")
    piped = crosscheck.run_ours(case, HardwareSpec.from_dict(d))
    err = np.abs(piped.latency_ns / theirs.latency_ns - 1).max()
    assert err > np.abs(ours.latency_ns / theirs.latency_ns - 1).max()
