"""Spike functions: the hard threshold with a surrogate derivative, and a smooth stand-in.

A spike function maps the distance to threshold ``x = U - theta`` to a spike ``S`` (forward)
and gives the derivative ``dS/dx`` used by the backward pass.

Surrogate gradients (Neftci, Mostafa & Zenke 2019, Fig. 3): the forward pass keeps the
Heaviside step ``S = [x > 0]`` (exactly the chip's strict threshold) and only the backward
pass replaces its derivative by a smooth bump of steepness ``k``. Every bump peaks at 1 for
``x = 0``, so ``k`` changes the bump's width only, not its height. The shapes, their names
and the normalisation of ``x`` are defined once, in :mod:`neurochip.core.surrogates`
(``fast_sigmoid``, ``piecewise``, ``exponential``), shared with the on-chip learning rules.

:class:`SmoothStep` is different: its forward pass is itself smooth (a logistic sigmoid of
steepness ``k``) and its derivative is the true one. A network run with it is an ordinary
differentiable RNN, which is what the gradient check compares BPTT against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import ConfigError
from neurochip.core.surrogates import SURROGATE_NAMES, surrogate_derivative, surrogate_name

__all__ = [
    "SURROGATE_NAMES",
    "SmoothStep",
    "SpikeFunction",
    "Surrogate",
    "surrogate",
]

F64 = NDArray[np.float64]

class SpikeFunction(Protocol):
    """What the forward and backward passes need from a spike nonlinearity."""

    def spike(self, x: F64) -> F64:
        """S for a distance to threshold ``x`` (forward pass)."""
        ...

    def grad(self, x: F64) -> F64:
        """dS/dx used in the backward pass (true or surrogate)."""
        ...


def _check_steepness(steepness: float, where: str) -> float:
    k = float(steepness)
    if not np.isfinite(k) or k <= 0:
        raise ConfigError(f"must be a positive finite number, got {steepness!r}", where=where,
                          field="steepness", value=steepness)
    return k


@dataclass(frozen=True)
class Surrogate:
    """Heaviside forward pass, smooth surrogate derivative of steepness ``steepness``."""

    name: str = "fast_sigmoid"
    steepness: float = 10.0

    def __post_init__(self) -> None:
        # one name per shape: aliases ("piecewise_linear") become the name
        object.__setattr__(self, "name", surrogate_name(self.name))
        _check_steepness(self.steepness, f"surrogate '{self.name}'")

    def spike(self, x: F64) -> F64:
        return (x > 0).astype(x.dtype)

    def grad(self, x: F64) -> F64:
        return surrogate_derivative(self.name, self.steepness, x)

    def __str__(self) -> str:
        return f"{self.name}(k={self.steepness:g})"


@dataclass(frozen=True)
class SmoothStep:
    """A differentiable stand-in for the step: S = sigmoid(k x), with its exact derivative.

    Used to check BPTT against finite differences (the network is then smooth); never used
    to train models for the chip, whose spikes are binary.
    """

    steepness: float = 4.0

    def __post_init__(self) -> None:
        _check_steepness(self.steepness, "smooth step")

    def spike(self, x: F64) -> F64:
        return 0.5 * (1.0 + np.tanh(0.5 * self.steepness * x))  # = sigmoid(kx), overflow-free

    def grad(self, x: F64) -> F64:
        s = self.spike(x)
        return self.steepness * s * (1.0 - s)


def surrogate(name: str = "fast_sigmoid", steepness: float | None = None) -> Surrogate:
    """A surrogate by name; ``steepness`` defaults to 10 (per unit of threshold distance)."""
    return Surrogate(name, 10.0 if steepness is None else float(steepness))
