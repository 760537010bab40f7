"""NIR neuron nodes -> populations: decays, input gain, bias and threshold per node type."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compiler.frontends.linear import check_finite
from compiler.frontends.nir.base import SPIKING_TYPES, Discretisation, Reset, err, node_where, tname
from compiler.ir.fields import Decay

__all__ = ["Pop", "neuron"]


@dataclass
class Pop:
    node_name: str
    kind: str
    shape: tuple[int, ...]
    alpha: Decay  # a float, or one value per neuron
    beta: Decay
    threshold: NDArray[np.float64] | None
    bias: NDArray[np.float64]
    gain: NDArray[np.float64]  # multiplies every input (weights and linear-node biases)
    spiking: bool
    reset: Reset


def _uniform_decay(d: NDArray[np.float64], tau: NDArray[np.float64], where: str,
                   fld: str) -> Decay:
    """The population's decay: one float when every neuron has the same, else one value
    per neuron (the chip then keeps per-neuron du/dv registers)."""
    if not d.size:
        raise err(where, f"{fld} is empty", fld)
    if np.ptp(d) > 1e-9 * max(1.0, float(np.abs(d).max())):
        return np.ascontiguousarray(d, np.float64)
    return float(d[0])


def _decay(tau: NDArray[np.float64], disc: Discretisation, where: str, fld: str,
           notes: list[str]) -> Decay:
    tau = np.asarray(tau, np.float64).reshape(-1)
    if not np.all(np.isfinite(tau)) or np.any(tau <= 0):
        raise err(where, f"{fld} must be finite and > 0", fld)
    if disc.dt is None:
        raise err(where, f"{fld} needs a time step; pass dt=...", "dt")
    x = disc.dt / tau
    if disc.decay == "exp":
        return _uniform_decay(np.exp(-x), tau, where, fld)
    if np.any(x > 1 + 1e-9):
        if np.all(tau < 1.0) and disc.dt >= 1.0:
            # tau < dt = 1 step: as a time constant the Euler decay would be negative;
            # the only reading the numbers allow is a decay factor written as tau.
            notes.append(f"{where}: {fld} = {float(tau.min()):.4g} .. {float(tau.max()):.4g} "
                         f"is below dt = {disc.dt:g}; read as a decay factor (retention per "
                         "step), the only meaning these numbers can have. Check the exporter")
            return _uniform_decay(tau, tau, where, fld)
        raise err(where, f"dt = {disc.dt} exceeds {fld} = {float(tau.min()):.6g}: the Euler "
                  "decay 1 - dt/tau would be negative", fld)
    d = _uniform_decay(1.0 - x, tau, where, fld)
    return np.maximum(d, 0.0) if isinstance(d, np.ndarray) else max(0.0, d)


def neuron(name: str, node: Any, shape: tuple[int, ...], disc: Discretisation,
           notes: list[str] | None = None) -> Pop:
    t = tname(node)
    w = node_where(name, node)
    n = math.prod(shape)
    nts: list[str] = [] if notes is None else notes

    def arr(key: str, default: float | None = None) -> NDArray[np.float64]:
        v = getattr(node, key, None)
        if v is None:
            if default is None:
                raise err(w, f"lacks {key}", key)
            return np.full(n, default)
        a = np.asarray(v, np.float64).reshape(-1)
        if a.size == 1:
            a = np.full(n, float(a[0]))
        if a.size != n:
            raise err(w, f"{key} has {a.size} values for {n} neurons", key)
        check_finite(a, w, key)
        return a

    spiking = t in SPIKING_TYPES
    unit = disc.gain == "unit"
    if t in ("CubaLIF", "CubaLI"):
        alpha = _decay(arr("tau_syn"), disc, w, "tau_syn", nts)
        beta = _decay(arr("tau_mem"), disc, w, "tau_mem", nts)
        # Euler: input gain w_in*dt/tau_syn = w_in*(1 - alpha); Norse adds w_in*x in full.
        syn_gain = arr("w_in", 1.0) * (1.0 if disc.gain == "norse" else 1 - alpha)
        gain = np.ones(n) if unit else syn_gain * arr("r") * (1 - beta)
        bias = (1 - beta) * arr("v_leak", 0.0)
    elif t in ("LIF", "LI"):
        alpha = 0.0
        beta = _decay(arr("tau"), disc, w, "tau", nts)
        gain = np.ones(n) if unit else arr("r") * (1 - beta)
        bias = (1 - beta) * arr("v_leak", 0.0)
    elif t in ("IF", "I"):
        if disc.dt is None and not unit:
            raise err(w, "needs a time step to integrate r*x; pass dt=...", "dt")
        alpha, beta = 0.0, 1.0
        gain = np.ones(n) if unit else arr("r") * float(disc.dt or 1.0)
        bias = np.zeros(n)
    else:  # Threshold: memoryless Heaviside of its input
        alpha, beta = 0.0, 0.0
        gain = np.ones(n)
        bias = np.zeros(n)
    threshold = None
    if spiking:
        threshold = arr("threshold" if t == "Threshold" else "v_threshold")
        if np.any(threshold < 0):
            raise err(w, "negative thresholds cannot be represented (the chip's threshold "
                      "is unsigned)", "v_threshold")
        if t != "Threshold":
            v_reset = arr("v_reset", 0.0)
            if np.any(v_reset != 0):
                raise err(w, f"v_reset = {float(v_reset[v_reset != 0][0]):.6g}: the chip "
                          "resets to 0 or subtracts the threshold; a non-zero reset "
                          "potential cannot be represented", "v_reset")
    reset: Reset = "zero" if t == "Threshold" else disc.reset
    return Pop(name, t, shape, alpha, beta, threshold, bias, gain, spiking, reset)
