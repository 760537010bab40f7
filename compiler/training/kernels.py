"""Numba kernels of the trainer: the LIF time loops of the forward and backward passes.

Every ``@njit`` function of the training package lives here, private, behind the two
validating wrappers :func:`lif_forward` and :func:`lif_backward`. They compute exactly what
the numpy loops of :mod:`compiler.training.bptt` compute (the tests compare the two), fused
into one pass over the neurons per step instead of a dozen array operations. The forward
pass advances the neurons with :func:`neurochip.core.lif.lif_step`, the float reference of
the chip's dynamics that :mod:`compiler.float_sim` runs too. Only the element-wise
recursions are here; the matrix products stay in BLAS.

One signature each (float64 arrays, absent inputs passed as empty arrays with a flag), and
``cache=True``, so the kernels compile once per machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from compiler.training.surrogates import SmoothStep, SpikeFunction, Surrogate
from neurochip.core.errors import ConfigError
from neurochip.core.lif import SPIKE_SIGMOID, SPIKE_STEP, LifParams, LifState, lif_step
from neurochip.core.surrogates import SURROGATE_NAMES

__all__ = ["KernelSpike", "kernel_spike", "lif_backward", "lif_forward"]

F64 = NDArray[np.float64]

# Spike function codes. Forward: neurochip.core.lif's SPIKE_STEP / SPIKE_SIGMOID. Derivative:
# the positions in neurochip.core.surrogates.SURROGATE_NAMES (whose formulas _dspike
# compiles; the tests compare the two), then the smooth step's true derivative.
_GRAD_CODES = {name: code for code, name in enumerate(SURROGATE_NAMES)}
_GRAD_FAST_SIGMOID = _GRAD_CODES["fast_sigmoid"]
_GRAD_PIECEWISE = _GRAD_CODES["piecewise"]
_GRAD_EXPONENTIAL = _GRAD_CODES["exponential"]
_GRAD_SIGMOID = len(SURROGATE_NAMES)


@dataclass(frozen=True)
class KernelSpike:
    """A spike function as the kernels know it: forward code, derivative code, steepness."""

    forward: int
    grad: int
    steepness: float


def kernel_spike(fn: SpikeFunction) -> KernelSpike | None:
    """The kernel form of ``fn``, or None when the kernels do not know it (numpy is used)."""
    if isinstance(fn, Surrogate):
        return KernelSpike(SPIKE_STEP, _GRAD_CODES[fn.name], float(fn.steepness))
    if isinstance(fn, SmoothStep):
        return KernelSpike(SPIKE_SIGMOID, _GRAD_SIGMOID, float(fn.steepness))
    return None


@njit(cache=True, inline="always")
def _dspike(x: float, code: int, k: float) -> float:
    ax = abs(x) * k
    if code == _GRAD_FAST_SIGMOID:
        return 1.0 / ((1.0 + ax) * (1.0 + ax))
    if code == _GRAD_PIECEWISE:
        return max(0.0, 1.0 - ax)
    if code == _GRAD_EXPONENTIAL:
        return np.exp(-ax)
    s = 0.5 * (1.0 + np.tanh(0.5 * k * x))
    return k * s * (1.0 - s)


@njit(cache=True)
def _forward(D, V, has_V, b, theta, prm, I, P, S):
    # Per step: the recurrent drive (BLAS) added to the feed-forward one, then the neuron
    # step of the float reference (neurochip.core.lif), which writes I[t], P[t], S[t].
    T, B, n = D.shape
    u = np.zeros((B, n))
    zero = np.zeros((B, n))
    buf = np.empty((B, n))
    VT = np.ascontiguousarray(V.T)
    for t in range(T):
        drive = D[t]
        if has_V and t > 0:
            rec = S[t - 1] @ VT
            for r in range(B):
                for j in range(n):
                    buf[r, j] = drive[r, j] + rec[r, j]
            drive = buf
        i_prev = I[t - 1] if t > 0 else zero
        lif_step(prm, b, theta, i_prev, u, drive, LifState(I[t], P[t], S[t], u))


@njit(cache=True)
def _backward(P, S, gS_ext, has_gS, gP_ext, has_gP, V, has_V, alpha, beta, theta, spiking,
              subtract, detach, gcode, k, gI_all, gP_sum):
    T, B, n = P.shape
    gI = np.zeros((B, n))
    gP = np.zeros((B, n))
    rec = np.zeros((B, n))
    for t in range(T - 1, -1, -1):
        if has_V:
            rec = gI @ V
        for r in range(B):
            for j in range(n):
                gU = beta * gP[r, j]
                if spiking:
                    gs = gS_ext[t, r, j] if has_gS else 0.0
                    if has_V:
                        gs += rec[r, j]
                    p = P[t, r, j]
                    if not detach:
                        gs -= theta * gU if subtract else p * gU
                    g = gs * _dspike(p - theta, gcode, k)
                    g += gU if subtract else gU * (1.0 - S[t, r, j])
                else:
                    g = gU
                if has_gP:
                    g += gP_ext[t, r, j]
                gP[r, j] = g
                gi = g + alpha * gI[r, j]
                gI[r, j] = gi
                gI_all[t, r, j] = gi
                gP_sum[j] += g


_EMPTY3 = np.zeros((0, 0, 0))
_EMPTY2 = np.zeros((0, 0))


def _check(name: str, a: F64, shape: tuple[int, ...]) -> F64:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
        got = (getattr(a, "dtype", type(a)), getattr(a, "shape", None))
        raise ConfigError(f"must be float64 of shape {shape}, got {got}", where="LIF kernel",
                          field=name)
    return np.ascontiguousarray(a)


def lif_forward(D: F64, V: F64 | None, b: F64 | None, *, alpha: float, beta: float,
                theta: float, spiking: bool, subtract: bool, spike: KernelSpike
                ) -> tuple[F64, F64, F64]:
    """(I, P, S), each (T, B, n), of one layer driven by ``D[t] = W @ x[t-1]`` (T, B, n)."""
    if D.ndim != 3:
        raise ConfigError(f"drive must be (T, B, n), got {D.shape}", where="LIF kernel",
                          field="D")
    T, B, n = D.shape
    D = _check("D", D, (T, B, n))
    Vc = _check("V", V, (n, n)) if V is not None else _EMPTY2
    bc = _check("b", b, (n,)) if b is not None else np.zeros(n)
    I, P, S = np.empty((T, B, n)), np.empty((T, B, n)), np.zeros((T, B, n))
    prm = LifParams(float(alpha), float(beta), bool(spiking), bool(subtract),
                    int(spike.forward), float(spike.steepness))
    _forward(D, Vc, V is not None, bc, np.full(n, float(theta)), prm, I, P, S)
    return I, P, S


def lif_backward(P: F64, S: F64, gS: F64 | None, gP: F64 | None, V: F64 | None, *,
                 alpha: float, beta: float, theta: float, spiking: bool, subtract: bool,
                 detach_reset: bool, spike: KernelSpike) -> tuple[F64, F64]:
    """(gI (T, B, n), sum of gP over time and batch (n,)) of one layer (see bptt)."""
    if P.ndim != 3:
        raise ConfigError(f"membrane must be (T, B, n), got {P.shape}", where="LIF kernel",
                          field="P")
    shape = P.shape
    n = shape[2]
    P = _check("P", P, shape)
    S = _check("S", S, shape)
    gSc = _check("gS", gS, shape) if gS is not None else _EMPTY3
    gPc = _check("gP", gP, shape) if gP is not None else _EMPTY3
    Vc = _check("V", V, (n, n)) if V is not None else _EMPTY2
    gI = np.empty(shape)
    gP_sum = np.zeros(n)
    _backward(P, S, gSc, gS is not None, gPc, gP is not None, Vc, V is not None, float(alpha),
              float(beta), float(theta), bool(spiking), bool(subtract), bool(detach_reset),
              int(spike.grad), float(spike.steepness), gI, gP_sum)
    return gI, gP_sum
