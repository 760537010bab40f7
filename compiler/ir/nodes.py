"""IR nodes: host inputs and neuron populations, and the registers a population gets.

:data:`REGISTER_TABLE` is the one mapping from the populations' descriptive (float) fields
to the chip's registers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from compiler.ir.fields import (
    Decay,
    ResetMode,
    Shape,
    as_decay,
    as_shape,
    frozen_array,
    ir_error,
    per_neuron,
)

__all__ = ["REGISTER_TABLE", "Input", "NeuronRegisters", "Neurons", "Node"]

#: Descriptive (float) name -> chip register, and the relation between them (lambda is the
#: population's scale, chip voltage units per float unit). The quantizer implements it;
#: docs/conventions.md section 2 explains it.
REGISTER_TABLE: tuple[tuple[str, str, str], ...] = (
    ("alpha", "du", "alpha = (4095 - du) / 4096   (du = -1: alpha = 1)"),
    ("beta", "dv", "beta = (4096 - dv) / 4096"),
    ("threshold", "vth", "vth * 2**6 = lambda * threshold"),
    ("weights", "weights, weight_exp", "w * 2**weight_exp * 2**6 = lambda * W"),
    ("bias", "bias_mant, bias_exp", "bias_mant * 2**bias_exp = lambda * bias"),
    ("reset", "reset", "same ('zero' / 'subtract')"),
    ("spiking", "spiking", "same (False: a non-spiking readout, v is probed)"),
    ("delay", "delay", "same (extra steps beyond the one-step latency)"),
)


@dataclass(frozen=True, eq=False)
class Input:
    """Host spike source: ``S[n]`` in {0, 1}^shape, given by the caller at every step.

    ``shape`` is the logical layout ((n,) or channels-first (C, H, W)); on the chip the
    elements are numbered in C order.
    """

    shape: Shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape, "input"))

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, eq=False)
class NeuronRegisters:
    """Chip registers of a quantized population (set by the quantize pass).

    ``scale`` is lambda, chip voltage units per float unit (v ~ lambda U, u ~ lambda I).
    """

    scale: float
    du: int | NDArray[np.int64]  # an (n,) array for per-neuron decays
    dv: int | NDArray[np.int64]
    vth: int
    bias_mant: NDArray[np.int64]
    bias_exp: NDArray[np.int64]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ir_error("registers", "scale", f"must be finite and > 0, got {self.scale!r}")
        for k in ("du", "dv"):
            v = getattr(self, k)
            if np.ndim(v):
                object.__setattr__(self, k, frozen_array(v, np.int64))
        object.__setattr__(self, "bias_mant", frozen_array(self.bias_mant, np.int64))
        object.__setattr__(self, "bias_exp", frozen_array(self.bias_exp, np.int64))


@dataclass(frozen=True, eq=False)
class Neurons:
    """A population of current-based LIF neurons (or non-spiking readouts).

    Per neuron and step (the chip's order; see :mod:`compiler.ir`)::

        I[n] = alpha * I[n-1] + (synaptic input, one step late)
        U[n] = beta * U[n-1] + I[n] + bias
        S[n] = U[n] > threshold;  reset "zero": U <- 0,  "subtract": U <- U - threshold

    alpha: synaptic current retention in [0, 1] (0: no synaptic memory, 1: no decay).
    beta: membrane retention in [0, 1] (1: integrate-and-fire). Each is a float when all
    neurons share it, else one value per neuron (an (n,) array; the chip then keeps a du
    and a dv register per neuron, the ``lif_per_neuron`` model).
    threshold: per neuron (or scalar), >= 0; must be None for readouts.
    bias: constant membrane input per neuron (not filtered by the synapse).
    spiking: False makes a non-spiking readout (a leaky integrator whose U is observed).
    """

    shape: Shape
    alpha: Decay
    beta: Decay
    threshold: NDArray[np.float64] | None
    bias: NDArray[np.float64]
    reset: ResetMode = "subtract"
    spiking: bool = True
    registers: NeuronRegisters | None = None

    def __init__(self, shape: Shape | int, *, alpha: Decay, beta: Decay,
                 threshold: ArrayLike | None = None, bias: ArrayLike = 0.0,
                 reset: ResetMode = "subtract", spiking: bool = True,
                 registers: NeuronRegisters | None = None) -> None:
        where = "population"
        shp = as_shape(shape, where)
        n = math.prod(shp)
        a_, b_ = as_decay(alpha, n, where, "alpha"), as_decay(beta, n, where, "beta")
        if reset not in ("zero", "subtract"):
            raise ir_error(where, "reset", f"must be 'zero' or 'subtract', got {reset!r}")
        th: NDArray[np.float64] | None
        if spiking:
            if threshold is None:
                raise ir_error(where, "threshold", "a spiking population needs a threshold")
            th = per_neuron(threshold, n, where, "threshold")
            if np.any(th < 0):
                raise ir_error(where, "threshold", f"must be >= 0 (the chip's threshold is "
                               f"unsigned), got min {float(th.min())!r}")
        else:
            if threshold is not None:
                raise ir_error(where, "threshold", "a non-spiking readout has no threshold; "
                               "pass threshold=None")
            th = None
        object.__setattr__(self, "shape", shp)
        object.__setattr__(self, "alpha", a_)
        object.__setattr__(self, "beta", b_)
        object.__setattr__(self, "threshold", th)
        object.__setattr__(self, "bias", per_neuron(bias, n, where, "bias"))
        object.__setattr__(self, "reset", reset)
        object.__setattr__(self, "spiking", bool(spiking))
        if registers is not None and not isinstance(registers, NeuronRegisters):
            raise ir_error(where, "registers", f"must be NeuronRegisters, got {type(registers)}")
        if registers is not None and registers.bias_mant.shape != (n,):
            raise ir_error(where, "registers", f"bias registers have shape "
                           f"{registers.bias_mant.shape}, the population has {n} neurons")
        object.__setattr__(self, "registers", registers)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def per_neuron_decays(self) -> bool:
        """True when alpha or beta differs between neurons."""
        return not (isinstance(self.alpha, float) and isinstance(self.beta, float))

    def with_(self, **changes: Any) -> Neurons:
        """A copy with some fields changed (validated again)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(changes)
        shape = kw.pop("shape")
        return Neurons(shape, **kw)


Node = Input | Neurons
