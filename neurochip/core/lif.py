"""The chip's LIF neuron in real arithmetic: one time step over explicit state.

This is the one definition of the float dynamics (``docs/conventions.md`` section 1). The
compiler's float reference simulator (:mod:`compiler.float_sim`, the compile report and the
calibration), the trainer's forward pass (:mod:`compiler.training.kernels`) and the learning
engine's float reference all advance their neurons with :func:`lif_step`. Per population,
with the drive ``D[n]`` (every synaptic input arriving at step n, already summed)::

    I[n] = alpha * I[n-1] + D[n]
    P[n] = beta  * U[n-1] + I[n] + b          membrane before the reset
    S[n] = P[n] > theta                       (SPIKE_STEP; never for non-spiking readouts)
    U[n] = P[n] - theta * S[n]                reset "subtract"
    U[n] = P[n] * (1 - S[n])                  reset "zero"

The reset is written for a graded ``S`` so that the smooth stand-in (``SPIKE_SIGMOID``,
``S = sigmoid(k (P - theta))``, used to check gradients) runs the same code; for binary
spikes it is exactly "U <- U - theta" and "U <- 0" where the neuron fired.

State arrays are ``(B, n)`` float64 (a batch of B independent copies of a population of n
neurons); the parameters are one population's scalars (:class:`LifParams`) and its
per-neuron bias and threshold.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["SPIKE_SIGMOID", "SPIKE_STEP", "LifParams", "LifState", "lif_step", "step",
           "step_per_neuron"]

F64 = NDArray[np.float64]

#: Forward spike functions: the chip's strict threshold, and a logistic stand-in.
SPIKE_STEP = 0
SPIKE_SIGMOID = 1


class LifParams(NamedTuple):
    """One population's constants.

    alpha, beta: current and membrane decay factors (kept fraction per step).
    spiking: False for a leaky-integrator readout (no spikes, no reset).
    subtract: reset by subtracting theta (else to zero). spike: SPIKE_STEP or SPIKE_SIGMOID.
    steepness: k of SPIKE_SIGMOID (unused by SPIKE_STEP).
    """

    alpha: float
    beta: float
    spiking: bool
    subtract: bool
    spike: int = SPIKE_STEP
    steepness: float = 1.0


class LifState(NamedTuple):
    """The state one step leaves, each (B, n): current I, membrane before reset P, spikes S,
    membrane after reset U (what a chip probe of ``v`` sees)."""

    i: F64
    p: F64
    s: F64
    u: F64


@njit(cache=True)
def lif_step(prm: LifParams, bias: F64, theta: F64, i_prev: F64, u_prev: F64, drive: F64,
             out: LifState) -> None:  # pragma: no cover - compiled
    """Advance one step: reads ``i_prev``, ``u_prev``, ``drive`` (B, n) and the per-neuron
    ``bias`` and ``theta`` (n,); writes ``out``. ``out.u`` may be ``u_prev`` itself (updated
    in place); ``theta`` is not read for non-spiking populations."""
    B, n = drive.shape
    I, P, S, U = out.i, out.p, out.s, out.u
    a, be = prm.alpha, prm.beta
    for r in range(B):
        for j in range(n):
            x = drive[r, j] + a * i_prev[r, j]
            I[r, j] = x
            P[r, j] = be * u_prev[r, j] + x + bias[j]
    # The spike and reset passes with their mode tests hoisted out of the inner loops
    # (keeps the loops vectorisable).
    if not prm.spiking:
        for r in range(B):
            for j in range(n):
                S[r, j] = 0.0
                U[r, j] = P[r, j]
        return
    if prm.spike == SPIKE_STEP:
        for r in range(B):
            for j in range(n):
                S[r, j] = 1.0 if P[r, j] > theta[j] else 0.0
    else:
        hk = 0.5 * prm.steepness
        for r in range(B):
            for j in range(n):
                S[r, j] = 0.5 * (1.0 + np.tanh(hk * (P[r, j] - theta[j])))
    if prm.subtract:
        for r in range(B):
            for j in range(n):
                U[r, j] = P[r, j] - theta[j] * S[r, j]
    else:
        for r in range(B):
            for j in range(n):
                U[r, j] = P[r, j] * (1.0 - S[r, j])


def step(prm: LifParams, bias: F64, theta: F64, i_prev: F64, u_prev: F64, drive: F64
         ) -> LifState:
    """:func:`lif_step` into fresh arrays: states (B, n) float64, ``bias``, ``theta`` (n,)."""
    shape = drive.shape
    out = LifState(np.empty(shape), np.empty(shape), np.empty(shape), np.empty(shape))
    lif_step(prm, _vec(bias), _vec(theta), _c(i_prev), _c(u_prev), _c(drive), out)
    return out


def step_per_neuron(prm: LifParams, alpha: F64, beta: F64, bias: F64, theta: F64,
                    i_prev: F64, u_prev: F64, drive: F64) -> LifState:
    """:func:`step` with one ``alpha`` and ``beta`` per neuron ((n,) arrays; ``prm.alpha``
    and ``prm.beta`` are not read).

    The decays are applied first (``D + alpha * I[n-1]`` and ``beta * U[n-1]``) and the rest
    is :func:`lif_step` with alpha = 0 and beta = 1, which adds nothing and multiplies by one
    exactly: with equal decays the result is bit-identical to :func:`step`.
    """
    i_in = _c(drive) + np.asarray(alpha, np.float64) * _c(i_prev)
    u_in = np.asarray(beta, np.float64) * _c(u_prev)
    return step(prm._replace(alpha=0.0, beta=1.0), bias, theta, np.zeros_like(i_in), u_in,
                i_in)


def _c(a: F64) -> F64:
    return np.ascontiguousarray(a, dtype=np.float64)


def _vec(a: F64) -> F64:
    return np.ascontiguousarray(np.asarray(a, np.float64).reshape(-1))
