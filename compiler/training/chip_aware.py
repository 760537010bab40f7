"""Chip-aware training: the chip's fixed-point forward pass with straight-through gradients.

:class:`ChipForward` quantizes every layer with the compiler's own mapping
(:func:`compiler.registers.quantize_population`: one scale lambda per population, per
projection weight exponents, 12-bit decays, exact threshold) and runs the chip's integer
step on the whole batch, with the arithmetic of :mod:`neurochip.core.fixedpoint` (the same
definitions the emulator's reference model uses)::

    a = sum_c floor_shift(w_c @ s_c[n-1], weight_exp_c)
    u = wrap_once(decay(u, 4095 - du) + a * 2**6)          (24-bit current, wraps once)
    v = saturate(decay(v, 4096 - dv) + u + bias)            (24-bit voltage, saturates)
    spike where v > vth * 2**6; v <- 0 or v - vth * 2**6

The recorded states are divided by lambda into the float units of the model (``I = u /
lambda``, ``P = v / lambda``), and :func:`~compiler.training.bptt.backward` runs on them with
the *effective* float parameters (dequantized weights, the decays the registers realise).
The gradients update the float "shadow" weights: the rounding is passed straight through.
So a network fine-tuned this way learns to work with exactly the weights, truncations and
saturations it will have on the chip, at any weight width.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from compiler.training.bptt import LayerTrace, Trace
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import SpikeFunction
from neurochip.core import fixedpoint as fx
from neurochip.core.errors import ConfigError

if TYPE_CHECKING:
    from compiler.registers import PopulationRegisters
    from neurochip.core.hw import HardwareSpec

__all__ = ["ChipForward", "LayerRegisters", "quantize_net"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class LayerRegisters:
    """A layer's registers and the float parameters they realise."""

    regs: PopulationRegisters
    spec: LayerSpec  # with the effective alpha, beta, threshold
    params: dict[str, F64]  # dequantized W (and V, b)


def _projections(net: SpikingNet, spec: LayerSpec, params: Mapping[str, F64]) -> list[F64]:
    mats = [params[f"{spec.name}.W"]]
    if spec.recurrent:
        mats.append(params[f"{spec.name}.V"])
    return mats


def quantize_net(net: SpikingNet, hw: HardwareSpec | str, *, weight_bits: int | None = None,
                 state_max: Mapping[str, float] | None = None) -> dict[str, LayerRegisters]:
    """Registers of every layer, exactly as the compiler maps the exported network.

    Projections into a layer are ordered feed-forward first, then recurrent.
    state_max: optional calibrated bound on |I|, |U| per layer (else the compiler's
    conservative bound).
    """
    from compiler.registers import dequantize_population, quantize_population
    from neurochip.core.hw import load_hw

    spec_hw = load_hw(hw)
    out: dict[str, LayerRegisters] = {}
    for spec in net.layers:
        b = net.params.get(f"{spec.name}.b") if spec.bias else None
        regs = quantize_population(
            alpha=spec.alpha, beta=spec.beta, threshold=spec.threshold,
            bias=np.zeros(spec.size) if b is None else b,
            weights=_projections(net, spec, net.params), hw=spec_hw, weight_bits=weight_bits,
            reset=spec.reset, spiking=spec.spiking,
            state_max=None if state_max is None else state_max.get(spec.name),
            name=spec.name)
        eff = dequantize_population(regs, spec_hw)
        p = {f"{spec.name}.W": eff.weights[0]}
        if spec.recurrent:
            p[f"{spec.name}.V"] = eff.weights[1]
        if spec.bias:
            p[f"{spec.name}.b"] = np.asarray(eff.bias, np.float64)
        eff_spec = replace(spec, alpha=eff.alpha, beta=eff.beta,
                           threshold=eff.threshold if spec.spiking else spec.threshold)
        out[spec.name] = LayerRegisters(regs, eff_spec, p)
    return out


def _synaptic_input(s: F64, w: I64, exp: int) -> I64:
    """floor_shift(w @ s, exp) for a batch of 0/1 spike vectors s (B, pre) -> (B, post).

    The products are exact in float64 (|sum| < 2**53), as the chip's integer sums.
    """
    acc = np.rint(s @ w.T.astype(np.float64)).astype(np.int64)
    return fx.floor_shift(acc, exp)


def _layer_chip_forward(x: F64, lr: LayerRegisters, hw: HardwareSpec) -> LayerTrace:
    regs, spec = lr.regs, lr.spec
    f = hw.formats
    theta = regs.vth << f.vth_shift
    bias = fx.bias_value(regs.bias_mant, regs.bias_exp)
    T, B, _ = x.shape
    n = spec.size
    W = regs.weights[0]
    V = regs.weights[1] if spec.recurrent else None
    # Feed-forward input of every step at once: the chip floors each connection's sum.
    drive = np.zeros((T, B, n), np.int64)
    if T > 1:
        flat = x[:-1].reshape(-1, x.shape[-1])
        drive[1:] = _synaptic_input(flat, W, regs.weight_exp[0]).reshape(T - 1, B, n)
    u = np.zeros((B, n), np.int64)
    v = np.zeros((B, n), np.int64)
    s = np.zeros((B, n))
    I_all = np.empty((T, B, n))
    P_all = np.empty((T, B, n))
    S_all = np.zeros((T, B, n))
    lam = regs.scale
    for t in range(T):
        a = drive[t]
        if V is not None:
            a = a + _synaptic_input(s, V, regs.weight_exp[1])
        u, v, fired, v_pre = fx.lif_step(
            u, v, a, du=int(regs.du), dv=int(regs.dv), bias=bias, theta=theta, reset=spec.reset,
            spiking=spec.spiking, decay_bits=f.decay_bits, input_shift=f.input_shift,
            u_bits=f.u_bits, v_bits=f.v_bits)
        I_all[t] = u / lam
        P_all[t] = v_pre / lam  # the voltage before the reset (what the surrogate sees)
        if spec.spiking:
            s = fired.astype(np.float64)
            S_all[t] = s
    return LayerTrace(I_all, P_all, S_all)


class ChipForward:
    """Forward pass on the chip's fixed-point dynamics (see the module docstring).

    hw: the target chip; weight_bits: weight precision (default: the chip's);
    state_max: optional per-layer calibrated state bound, as given to the compiler.
    """

    def __init__(self, hw: HardwareSpec | str = "loihi_like", *, weight_bits: int | None = None,
                 state_max: Mapping[str, float] | None = None) -> None:
        from neurochip.core.hw import load_hw

        self.hw = load_hw(hw)
        f = self.hw.formats
        if weight_bits is not None and not 1 <= int(weight_bits) <= f.weight_bits:
            raise ConfigError(f"must lie in [1, {f.weight_bits}] for chip '{self.hw.name}', got "
                              f"{weight_bits}", where="chip-aware training", field="weight_bits",
                              value=weight_bits, limit=(1, f.weight_bits))
        self.weight_bits = None if weight_bits is None else int(weight_bits)
        self.state_max = dict(state_max) if state_max is not None else None

    def __call__(self, net: SpikingNet, x: F64, fn: SpikeFunction
                 ) -> tuple[Trace, SpikingNet]:
        regs = quantize_net(net, self.hw, weight_bits=self.weight_bits,
                            state_max=self.state_max)
        layers: list[LayerTrace] = []
        h = x
        for spec in net.layers:
            tr = _layer_chip_forward(h, regs[spec.name], self.hw)
            layers.append(tr)
            h = tr.S
        eff_params: dict[str, F64] = {}
        for r in regs.values():
            eff_params.update(r.params)
        eff = SpikingNet(net.n_in, tuple(regs[s.name].spec for s in net.layers), eff_params,
                         net.input_name)
        return Trace(x, layers), eff
