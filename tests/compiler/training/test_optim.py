from __future__ import annotations

import numpy as np
import pytest

from compiler.training.optim import Adam
from neurochip.core.errors import ConfigError


def test_adam_first_step_is_lr_times_sign() -> None:
    p = {"w": np.array([1.0, -2.0, 3.0])}
    Adam(lr=0.1).step(p, {"w": np.array([5.0, -0.001, 0.0])})
    np.testing.assert_allclose(p["w"], [0.9, -1.9, 3.0], atol=1e-6)


def test_adam_minimises_a_quadratic_and_is_deterministic() -> None:
    target = np.array([[1.0, -2.0], [0.5, 3.0]])

    def run() -> np.ndarray:
        p = {"w": np.zeros((2, 2))}
        opt = Adam(lr=0.05)
        for _ in range(1500):
            opt.step(p, {"w": 2 * (p["w"] - target)})
        return p["w"]

    a, b = run(), run()
    np.testing.assert_allclose(a, target, atol=1e-3)
    np.testing.assert_array_equal(a, b)


def test_adam_matches_the_textbook_update() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=4)
    p = {"w": w.copy()}
    opt = Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    m = v = np.zeros(4)
    for t in range(1, 6):
        g = rng.normal(size=4)
        opt.step(p, {"w": g})
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        w = w - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-6)
    np.testing.assert_allclose(p["w"], w, rtol=1e-12)


def test_adam_clip_and_errors() -> None:
    p = {"w": np.zeros(2)}
    opt = Adam(lr=1.0, clip=0.5)
    opt.step(p, {"w": np.array([100.0, -100.0])})
    assert opt.t == 1
    with pytest.raises(ConfigError, match="unknown parameter"):
        opt.step(p, {"v": np.zeros(2)})
    with pytest.raises(ConfigError, match="shape"):
        opt.step(p, {"w": np.zeros(3)})
    for kw in ({"lr": 0.0}, {"betas": (1.0, 0.9)}, {"eps": 0.0}, {"clip": -1.0}):
        with pytest.raises(ConfigError):
            Adam(**kw)  # type: ignore[arg-type]
