from __future__ import annotations

import numpy as np
import pytest

from compiler.training.data import (
    SpikeData,
    encode,
    encode_latency,
    encode_rate,
    randman,
    spike_train_task,
    temporal_xor,
)
from neurochip.core.errors import ConfigError
from neurochip.tasks.digits import digits_split


def test_digits_split_is_the_documented_one() -> None:
    Xtr, Xte, ytr, yte = digits_split()
    assert Xtr.shape == (1347, 64) and Xte.shape == (450, 64)
    assert Xtr.min() == 0 and Xtr.max() == 1
    # stratified: every class has 25 % (+-1) of its samples in the test split
    counts_te = np.bincount(yte, minlength=10)
    counts_all = counts_te + np.bincount(ytr, minlength=10)
    assert np.all(np.abs(counts_te - 0.25 * counts_all) <= 1)
    _, Xte2, _, yte2 = digits_split()
    np.testing.assert_array_equal(Xte, Xte2)
    np.testing.assert_array_equal(yte, yte2)


def test_regular_rate_code() -> None:
    X = np.array([[0.0, 0.25, 0.5, 1.0, 0.3]])
    s = encode_rate(X, 20)
    assert s.dtype == np.bool_ and s.shape == (1, 20, 5)
    np.testing.assert_array_equal(s.sum(1)[0], np.floor(20 * X[0] + 0.5))
    assert s[0, :, 3].all() and not s[0, :, 0].any()
    np.testing.assert_array_equal(np.flatnonzero(s[0, :, 2]), np.arange(0, 20, 2))
    np.testing.assert_array_equal(encode_rate(X, 20), encode(X, "regular", 20, seed=5))


def test_bernoulli_rate_code() -> None:
    X = np.full((200, 3), 0.4)
    a = encode_rate(X, 50, mode="bernoulli", seed=1)
    np.testing.assert_array_equal(a, encode(X, "bernoulli", 50, seed=1))
    assert not np.array_equal(a, encode_rate(X, 50, mode="bernoulli", seed=2))
    assert abs(a.mean() - 0.4) < 0.01
    assert abs(encode_rate(X, 50, mode="bernoulli", max_rate=0.5).mean() - 0.2) < 0.01


def test_latency_code() -> None:
    X = np.array([[1.0, 0.5, 0.0, 0.05]])
    s = encode_latency(X, 11, threshold=0.1)
    assert s.sum() == 2  # dark and below-threshold features stay silent
    assert s[0, 0, 0] and s[0, 5, 1]
    assert encode(X, "latency", 11).sum() == 3


def test_encoder_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        encode_rate(np.array([[2.0]]), 5)
    with pytest.raises(ConfigError) as e:
        encode_rate(np.array([[0.5]]), 0)
    assert e.value.field == "steps"
    with pytest.raises(ConfigError, match="unknown mode"):
        encode_rate(np.array([[0.5]]), 5, mode="poisson")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown encoding"):
        encode(np.array([[0.5]]), "delta", 5)
    with pytest.raises(ConfigError):
        encode_rate(np.zeros(3), 5)
    with pytest.raises(ConfigError, match="max_rate"):
        encode_rate(np.array([[0.5]]), 5, max_rate=0.0)


def test_temporal_xor() -> None:
    d = temporal_xor(early=1, late=6, steps=12)
    assert d.x.shape == (4, 12, 3)
    np.testing.assert_array_equal(d.y, [0, 1, 1, 0])
    times = [[int(np.flatnonzero(d.x[p, :, c])[0]) for c in range(3)] for p in range(4)]
    assert times == [[1, 1, 0], [1, 6, 0], [6, 1, 0], [6, 6, 0]]
    assert d.x.sum() == 12  # one spike per channel and pattern
    j = temporal_xor(repeats=5, jitter=1, seed=3)
    assert len(j) == 20 and j.x[:, :, :2].sum() == 40
    assert temporal_xor(reference=False).x.shape[2] == 2
    with pytest.raises(ConfigError):
        temporal_xor(early=5, late=5)


def test_randman_one_spike_per_unit_and_deterministic() -> None:
    d = randman(n_classes=3, n_units=20, steps=50, dim=2, samples_per_class=40, seed=4)
    assert d.x.shape == (120, 50, 20)
    np.testing.assert_array_equal(d.x.sum(axis=1), 1)  # every unit exactly one spike
    np.testing.assert_array_equal(np.bincount(d.y), [40, 40, 40])
    again = randman(n_classes=3, n_units=20, steps=50, dim=2, samples_per_class=40, seed=4)
    np.testing.assert_array_equal(d.x, again.x)
    other = randman(n_classes=3, n_units=20, steps=50, dim=2, samples_per_class=40, seed=5)
    assert not np.array_equal(d.x, other.x)
    # classes differ in timing only: every class has the same spike count per unit
    t = d.x.argmax(axis=1)  # (N, units) spike times
    means = np.stack([t[d.y == c].mean(0) for c in range(3)])
    assert np.abs(means[0] - means[1]).max() > 5  # ...but different mean times
    with pytest.raises(ConfigError):
        randman(dim=0)
    with pytest.raises(ConfigError):
        randman(smoothness=-1.0)


def test_randman_manifolds_are_smooth() -> None:
    """Nearby latent points give nearby spike times (a smooth manifold, not noise)."""
    d = randman(n_classes=1, n_units=30, steps=200, dim=1, samples_per_class=400, seed=0)
    t = d.x.argmax(axis=1).astype(float)  # (400, 30)
    dist = np.abs(t[:, None, :] - t[None, :, :]).mean(-1)
    nearest = np.sort(dist, axis=1)[:, 1]
    assert np.median(nearest) < 0.1 * np.median(dist)


def test_spike_train_task() -> None:
    d = spike_train_task(n_in=30, n_out=2, steps=100, n_patterns=3, target_spikes=4, seed=1)
    assert d.x.shape == (3, 100, 30) and d.y.shape == (3, 100, 2)
    np.testing.assert_array_equal(d.y.sum(axis=1), 4)
    for p in range(3):
        for o in range(2):
            t = np.flatnonzero(d.y[p, :, o])
            assert t.min() >= 10 and t.max() < 90 and np.diff(t).min() >= 5
    with pytest.raises(ConfigError, match="do not fit"):
        spike_train_task(steps=20, target_spikes=10)


def test_spike_data_validation() -> None:
    with pytest.raises(ConfigError):
        SpikeData(np.zeros((2, 3, 4)), np.zeros(2))
    with pytest.raises(ConfigError, match="targets"):
        SpikeData(np.zeros((2, 3, 4), bool), np.zeros(3))
    d = SpikeData(np.zeros((2, 3, 4), bool), np.zeros(2))
    assert (len(d), d.steps, d.n_in) == (2, 3, 4)
