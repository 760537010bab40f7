from __future__ import annotations

import numpy as np
import pytest

from compiler.training.surrogates import SURROGATE_NAMES, SmoothStep, Surrogate, surrogate
from neurochip.core.errors import ConfigError

X = np.linspace(-3, 3, 601)


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_surrogate_shape(name: str) -> None:
    s = Surrogate(name, 4.0)
    g = s.grad(X)
    assert g.max() == pytest.approx(1.0)  # peak 1 at the threshold
    assert s.grad(np.zeros(1))[0] == 1.0
    np.testing.assert_allclose(g, g[::-1])  # symmetric
    right = g[X >= 0]
    assert np.all(np.diff(right) <= 0)  # decreasing away from the threshold
    assert np.all(g >= 0)


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_steepness_only_rescales_the_width(name: str) -> None:
    for k in (0.5, 3.0, 25.0):
        np.testing.assert_allclose(Surrogate(name, k).grad(X), Surrogate(name, 1.0).grad(k * X))


def test_surrogate_formulas() -> None:
    x = np.array([-0.5, 0.0, 0.1, 0.4])
    np.testing.assert_allclose(Surrogate("fast_sigmoid", 10).grad(x), 1 / (1 + 10 * np.abs(x)) ** 2)
    np.testing.assert_allclose(Surrogate("piecewise", 2).grad(x), [0.0, 1.0, 0.8, 0.2])
    np.testing.assert_allclose(Surrogate("exponential", 3).grad(x), np.exp(-3 * np.abs(x)))


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_forward_is_the_chips_strict_threshold(name: str) -> None:
    s = Surrogate(name)
    np.testing.assert_array_equal(s.spike(np.array([-1e-9, 0.0, 1e-12, 2.0])), [0, 0, 1, 1])


def test_smooth_step_derivative_is_exact() -> None:
    f = SmoothStep(3.0)
    h = 1e-6
    num = (f.spike(X + h) - f.spike(X - h)) / (2 * h)
    np.testing.assert_allclose(f.grad(X), num, rtol=1e-7, atol=1e-10)
    assert f.spike(np.array([0.0]))[0] == 0.5
    assert np.all(np.isfinite(f.spike(np.array([-1e5, 1e5]))))


def test_surrogate_by_name_and_errors() -> None:
    assert surrogate("piecewise") == Surrogate("piecewise", 10.0)
    with pytest.raises(ConfigError, match="unknown surrogate") as e:
        Surrogate("arctan")
    assert e.value.field == "name"
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError) as e:
            Surrogate("fast_sigmoid", bad)
        assert e.value.field == "steepness"
    with pytest.raises(ConfigError):
        SmoothStep(0.0)
