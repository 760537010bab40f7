"""Float spiking networks for training: a stack of current-based LIF layers.

Every layer runs the float model of ``docs/conventions.md`` ("chip order")::

    I[n] = alpha * I[n-1] + W @ S_prev[n-1] + V @ S[n-1]      (V only if recurrent)
    P[n] = beta  * U[n-1] + I[n] + b                           (membrane before reset)
    S[n] = P[n] > theta                                        (never for readouts)
    U[n] = P[n] - theta * S[n]   (reset "subtract")   or   P[n] * (1 - S[n])   ("zero")

so each projection adds one step of latency, exactly as on the chip. A network of ``L``
layers fed ``T`` input steps is therefore run for ``T + L`` steps (the input padded with
silence) so that the last input reaches the readout; the chip is run for the same number
of steps.

Parameters live in one dict (``net.params``) under ``"<layer>.W"`` (post, pre),
``"<layer>.V"`` (post, post) and ``"<layer>.b"`` (post,); the optimizer updates it in place.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import ConfigError

__all__ = ["LayerSpec", "ResetMode", "SpikingNet", "positive_int"]

F64 = NDArray[np.float64]
ResetMode = Literal["zero", "subtract"]
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def positive_int(value: object, where: str, fld: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"must be a positive int, got {value!r}", where=where, field=fld,
                          value=value)
    return int(value)


@dataclass(frozen=True)
class LayerSpec:
    """One population of current-based LIF neurons and its incoming projections.

    alpha, beta: synaptic-current and membrane decay per step, in [0, 1].
    threshold: firing threshold theta (> 0). reset: "subtract" or "zero".
    spiking: False makes a non-spiking leaky-integrator readout (no threshold, no reset).
    recurrent: adds the all-to-all projection V from the layer onto itself.
    bias: adds a trainable constant membrane input b.
    """

    name: str
    size: int
    alpha: float = 0.75
    beta: float = 0.875
    threshold: float = 1.0
    reset: ResetMode = "subtract"
    spiking: bool = True
    recurrent: bool = False
    bias: bool = False

    def __post_init__(self) -> None:
        where = f"layer '{self.name}'"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigError(f"invalid layer name {self.name!r}: use letters, digits and '_'",
                              where=where, field="name")
        positive_int(self.size, where, "size")
        for fld in ("alpha", "beta"):
            v = float(getattr(self, fld))
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"must lie in [0, 1], got {v}", where=where, field=fld,
                                  value=v, limit=(0.0, 1.0))
        if not float(self.threshold) > 0:
            raise ConfigError(f"must be positive, got {self.threshold}", where=where,
                              field="threshold", value=self.threshold)
        if self.reset not in ("zero", "subtract"):
            raise ConfigError(f"must be 'zero' or 'subtract', got {self.reset!r}", where=where,
                              field="reset", value=self.reset)
        if self.recurrent and not self.spiking:
            raise ConfigError("a non-spiking readout cannot be recurrent (it emits no spikes)",
                              where=where, field="recurrent")


@dataclass
class SpikingNet:
    """A feed-forward stack of LIF layers (each optionally recurrent) and its parameters."""

    n_in: int
    layers: tuple[LayerSpec, ...]
    params: dict[str, F64] = field(default_factory=dict)
    input_name: str = "in"

    def __post_init__(self) -> None:
        positive_int(self.n_in, "network", "n_in")
        self.layers = tuple(self.layers)
        if not self.layers:
            raise ConfigError("a network needs at least one layer", where="network",
                              field="layers")
        names = [self.input_name, *(s.name for s in self.layers)]
        if len(set(names)) != len(names):
            raise ConfigError(f"layer names must be unique and differ from the input "
                              f"{self.input_name!r}; got {names}", where="network",
                              field="layers")
        for s in self.layers[:-1]:
            if not s.spiking:
                raise ConfigError("only the last layer may be a non-spiking readout",
                                  where=f"layer '{s.name}'", field="spiking")
        self.check_params()

    # ------------------------------------------------------------------ structure
    @property
    def depth(self) -> int:
        """Number of projections from the input to the readout (steps of latency)."""
        return len(self.layers)

    @property
    def readout(self) -> LayerSpec:
        return self.layers[-1]

    def fan_in(self, index: int) -> int:
        return self.n_in if index == 0 else self.layers[index - 1].size

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for i, s in enumerate(self.layers):
            shapes[f"{s.name}.W"] = (s.size, self.fan_in(i))
            if s.recurrent:
                shapes[f"{s.name}.V"] = (s.size, s.size)
            if s.bias:
                shapes[f"{s.name}.b"] = (s.size,)
        return shapes

    def check_params(self) -> None:
        """Every parameter present, with its shape, finite; nothing extra."""
        if not self.params:
            return
        shapes = self.param_shapes()
        extra = sorted(set(self.params) - set(shapes))
        if extra:
            raise ConfigError(f"unexpected parameters {extra}", where="network", field="params")
        for key, shape in shapes.items():
            if key not in self.params:
                raise ConfigError(f"missing parameter {key!r}", where="network", field=key)
            arr = np.asarray(self.params[key], dtype=np.float64)
            if arr.shape != shape:
                raise ConfigError(f"has shape {arr.shape}, expected {shape}", where="network",
                                  field=key, value=arr.shape, limit=shape)
            if not np.all(np.isfinite(arr)):
                raise ConfigError("holds non-finite values", where="network", field=key)
            self.params[key] = arr

    def steps(self, input_steps: int) -> int:
        """Steps to run for ``input_steps`` of input: one more per projection."""
        return int(input_steps) + self.depth

    def copy(self) -> SpikingNet:
        return SpikingNet(self.n_in, self.layers, {k: v.copy() for k, v in self.params.items()},
                          self.input_name)

    def with_layers(self, layers: Sequence[LayerSpec]) -> SpikingNet:
        """The same parameters under changed layer settings (decays, reset, ...)."""
        return SpikingNet(self.n_in, tuple(layers), {k: v.copy() for k, v in self.params.items()},
                          self.input_name)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, n_in: int, layers: Sequence[LayerSpec], *, seed: int = 0,
              gain: float | Sequence[float] = 1.0, rec_gain: float = 0.1,
              input_name: str = "in") -> SpikingNet:
        """Random initial weights: N(0, gain^2 / fan_in) feed-forward, rec_gain for V.

        gain: one value, or one per layer.
        """
        net = cls(n_in, tuple(layers), {}, input_name)
        if isinstance(gain, (int, float, np.integer, np.floating)):
            gains = [float(gain)] * net.depth
        else:
            gains = [float(g) for g in gain]
        if len(gains) != net.depth:
            raise ConfigError(f"expected {net.depth} gains (one per layer), got {len(gains)}",
                              where="network", field="gain")
        rng = np.random.default_rng(seed)
        params: dict[str, F64] = {}
        for i, s in enumerate(net.layers):
            fan = net.fan_in(i)
            params[f"{s.name}.W"] = rng.normal(0.0, gains[i] / np.sqrt(fan), (s.size, fan))
            if s.recurrent:
                params[f"{s.name}.V"] = rng.normal(0.0, rec_gain / np.sqrt(s.size),
                                                   (s.size, s.size))
            if s.bias:
                params[f"{s.name}.b"] = np.zeros(s.size)
        net.params = params
        net.check_params()
        return net

