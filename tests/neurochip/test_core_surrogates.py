"""neurochip.core.surrogates: one table of surrogate shapes for training and chip learning."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.training.kernels import kernel_spike, lif_backward
from compiler.training.surrogates import Surrogate
from neurochip.core.errors import ConfigError
from neurochip.core.learning import SurrogateParams
from neurochip.core.surrogates import SURROGATE_NAMES, surrogate_derivative, surrogate_name

_HALF = np.linspace(0.0, 1.5, 31)
X = np.concatenate([-_HALF[:0:-1], _HALF])  # symmetric around 0, 61 points


def test_one_name_per_shape() -> None:
    assert SURROGATE_NAMES == ("fast_sigmoid", "piecewise", "exponential")
    assert surrogate_name("piecewise_linear") == "piecewise"
    assert Surrogate("piecewise_linear", 2.0) == Surrogate("piecewise", 2.0)
    assert Surrogate("piecewise_linear").name == "piecewise"
    for bad in ("arctan", 3, None):
        with pytest.raises(ConfigError, match="unknown surrogate") as e:
            surrogate_name(bad, where="layer 'x'")
        assert e.value.field == "name"


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_shapes_peak_at_one_and_are_even(name: str) -> None:
    g = surrogate_derivative(name, 3.0, X)
    assert g.max() == 1.0 == surrogate_derivative(name, 3.0, 0.0)
    np.testing.assert_array_equal(g, g[::-1])
    assert (g >= 0).all() and (np.diff(g[30:]) <= 0).all()


@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_training_and_chip_learning_compute_the_same_shape(name: str) -> None:
    """The trainer's derivative, its Numba kernel and the learning engine's lookup table
    (which older records spell 'piecewise_linear') are the same numbers."""
    want = surrogate_derivative(name, 2.5, X)
    np.testing.assert_array_equal(Surrogate(name, 2.5).grad(X), want)
    learning_kind = {"piecewise": "piecewise_linear"}.get(name, name)
    assert SurrogateParams(learning_kind, 2.5).kind == name
    # the kernel: one non-leaky neuron whose only gradient path is gS * f'(P - theta)
    P = (X + 1.0).reshape(-1, 1, 1)
    ks = kernel_spike(Surrogate(name, 2.5))
    assert ks is not None
    gI, _ = lif_backward(P, np.zeros_like(P), np.ones_like(P), None, None, alpha=0.0,
                         beta=0.0, theta=1.0, spiking=True, subtract=True, detach_reset=True,
                         spike=ks)
    np.testing.assert_allclose(gI[:, 0, 0], surrogate_derivative(name, 2.5, P[:, 0, 0] - 1.0),
                               rtol=1e-12)
