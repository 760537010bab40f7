"""Forward pass and backpropagation through time for :class:`~compiler.training.model.SpikingNet`.

Arrays are time-major inside the trainer: ``(T, B, n)``. The forward pass records, per
layer, the current ``I``, the membrane before reset ``P`` and the spikes ``S``; that is all
the backward pass needs (the membrane after reset follows from them).

Backward pass (adjoints ``g``; ``f'`` the spike function's derivative at ``P - theta``)::

    gU[n] = beta * gP[n+1]
    gS[n] = dL/dS[n] + V^T gI[n+1] + W_next^T gI_next[n+1] - [reset path] * gU[n]
    gP[n] = dL/dP[n] + gU[n] * dU/dP[n] + gS[n] * f'(P[n] - theta)
    gI[n] = gP[n] + alpha * gI[n+1]
    dW = sum_n gI[n] S_prev[n-1]^T,  dV = sum_n gI[n] S[n-1]^T,  db = sum_n gP[n]

with ``dU/dP = 1`` (subtract) or ``1 - S`` (zero), and the reset path ``theta`` (subtract) or
``P`` (zero). ``detach_reset=True`` (the default, as in SuperSpike) drops the reset path,
i.e. treats the reset as a constant; with ``False`` and a smooth spike function the result
is the exact gradient (checked against finite differences in the tests).

A forward pass can also be supplied from outside (the chip's fixed-point dynamics, see
``compiler.training.chip_aware``): :func:`backward` only reads the recorded trace and the
weights it is given, which makes straight-through gradients the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from compiler.training.kernels import kernel_spike, lif_backward, lif_forward
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import SpikeFunction
from neurochip.core.errors import ConfigError

__all__ = ["LayerTrace", "Trace", "backward", "forward", "time_major"]

F64 = NDArray[np.float64]


@dataclass
class LayerTrace:
    """One layer's recorded states, each (T, B, n): current, membrane before reset, spikes."""

    I: F64
    P: F64
    S: F64


@dataclass
class Trace:
    """A forward pass: the input (T, B, n_in) and every layer's states."""

    x: F64
    layers: list[LayerTrace]

    @property
    def out(self) -> LayerTrace:
        return self.layers[-1]


def time_major(x: NDArray[np.generic], n_in: int, steps: int | None = None) -> F64:
    """Batch-major spikes (B, T, n) -> time-major float (steps, B, n), padded with silence."""
    arr = np.asarray(x)
    if arr.ndim != 3 or arr.shape[-1] != n_in:
        raise ConfigError(f"inputs must have shape (B, T, {n_in}), got {arr.shape}",
                          where="forward", field="x", value=arr.shape)
    B, T, _ = arr.shape
    steps = T if steps is None else int(steps)
    if steps < T:
        raise ConfigError(f"cannot run {steps} steps on {T} input steps", where="forward",
                          field="steps")
    out = np.zeros((steps, B, n_in))
    out[:T] = np.swapaxes(arr, 0, 1)
    return out


def _drive(x: F64, W: F64) -> F64:
    """Feed-forward input of every step: D[n] = W @ x[n-1] (one step of latency)."""
    T, B, n_in = x.shape
    D = np.zeros((T, B, W.shape[0]))
    if T > 1:
        D[1:] = (x[:-1].reshape(-1, n_in) @ W.T).reshape(T - 1, B, W.shape[0])
    return D


def _layer_forward(x: F64, spec: LayerSpec, p: Mapping[str, F64], fn: SpikeFunction,
                   kernels: bool) -> LayerTrace:
    D = _drive(x, p[f"{spec.name}.W"])
    V = p.get(f"{spec.name}.V") if spec.recurrent else None
    b = p.get(f"{spec.name}.b") if spec.bias else None
    ks = kernel_spike(fn) if kernels else None
    if ks is not None:
        return LayerTrace(*lif_forward(D, V, b, alpha=spec.alpha, beta=spec.beta,
                                       theta=spec.threshold, spiking=spec.spiking,
                                       subtract=spec.reset == "subtract", spike=ks))
    T, B, n = D.shape
    I_all, P_all, S_all = np.empty_like(D), np.empty_like(D), np.zeros_like(D)
    i = np.zeros((B, n))
    u = np.zeros((B, n))
    s = np.zeros((B, n))
    a, be, th = spec.alpha, spec.beta, spec.threshold
    for t in range(T):
        i = a * i + D[t]
        if V is not None:
            i += s @ V.T
        pm = be * u + i
        if b is not None:
            pm += b
        I_all[t], P_all[t] = i, pm
        if spec.spiking:
            s = fn.spike(pm - th)
            S_all[t] = s
            u = pm - th * s if spec.reset == "subtract" else pm * (1.0 - s)
        else:
            u = pm
    return LayerTrace(I_all, P_all, S_all)


def forward(net: SpikingNet, x: F64, fn: SpikeFunction,
            params: Mapping[str, F64] | None = None, *, kernels: bool = True) -> Trace:
    """Run ``net`` on time-major inputs ``x`` (T, B, n_in) (see :func:`time_major`).

    kernels: use the Numba time loops (:mod:`compiler.training.kernels`) when they know the
    spike function; False runs the plain numpy loops (the reference they are tested against).
    """
    if x.ndim != 3 or x.shape[-1] != net.n_in:
        raise ConfigError(f"time-major inputs must have shape (T, B, {net.n_in}), got "
                          f"{x.shape}", where="forward", field="x")
    p = net.params if params is None else params
    layers: list[LayerTrace] = []
    h = x
    for spec in net.layers:
        tr = _layer_forward(h, spec, p, fn, kernels)
        layers.append(tr)
        h = tr.S
    return Trace(x, layers)


def _layer_backward(spec: LayerSpec, tr: LayerTrace, x: F64, p: Mapping[str, F64],
                    gS_ext: F64 | None, gP_ext: F64 | None, fn: SpikeFunction,
                    detach_reset: bool, need_input_grad: bool, kernels: bool
                    ) -> tuple[dict[str, F64], F64 | None]:
    W = p[f"{spec.name}.W"]
    V = p.get(f"{spec.name}.V") if spec.recurrent else None
    ks = kernel_spike(fn) if kernels else None
    if ks is not None:
        gI_all, gP_sum = lif_backward(
            tr.P, tr.S, gS_ext if spec.spiking else None, gP_ext, V, alpha=spec.alpha,
            beta=spec.beta, theta=spec.threshold, spiking=spec.spiking,
            subtract=spec.reset == "subtract", detach_reset=detach_reset, spike=ks)
    else:
        gI_all, gP_sum = _layer_backward_numpy(spec, tr, V, gS_ext, gP_ext, fn, detach_reset)
    return _weight_grads(spec, tr, x, W, V, gI_all, gP_sum, need_input_grad)


def _layer_backward_numpy(spec: LayerSpec, tr: LayerTrace, V: F64 | None, gS_ext: F64 | None,
                          gP_ext: F64 | None, fn: SpikeFunction, detach_reset: bool
                          ) -> tuple[F64, F64]:
    T, B, n = tr.P.shape
    gI_all = np.empty((T, B, n))
    gP_sum = np.zeros(n)
    gI = np.zeros((B, n))
    gP = np.zeros((B, n))
    a, be, th = spec.alpha, spec.beta, spec.threshold
    sub = spec.reset == "subtract"
    dsdx = fn.grad(tr.P - th) if spec.spiking else None
    for t in range(T - 1, -1, -1):
        gU = be * gP
        if spec.spiking:
            gS = np.zeros((B, n)) if gS_ext is None else gS_ext[t].copy()
            if V is not None:
                gS += gI @ V
            if not detach_reset:
                gS -= (th * gU) if sub else (tr.P[t] * gU)
            gPn = gS * dsdx[t]  # type: ignore[index]
            gPn += gU if sub else gU * (1.0 - tr.S[t])
        else:
            gPn = gU
        if gP_ext is not None:
            gPn = gPn + gP_ext[t]
        gI = gPn + a * gI
        gP = gPn
        gI_all[t] = gI
        gP_sum += gPn.sum(axis=0)
    return gI_all, gP_sum


def _weight_grads(spec: LayerSpec, tr: LayerTrace, x: F64, W: F64, V: F64 | None, gI_all: F64,
                  gP_sum: F64, need_input_grad: bool) -> tuple[dict[str, F64], F64 | None]:
    T, B, n = tr.P.shape
    grads: dict[str, F64] = {}
    n_in = x.shape[-1]
    gflat = gI_all[1:].reshape(-1, n)
    grads[f"{spec.name}.W"] = gflat.T @ x[:-1].reshape(-1, n_in)
    if V is not None:
        grads[f"{spec.name}.V"] = gflat.T @ tr.S[:-1].reshape(-1, n)
    if spec.bias:
        grads[f"{spec.name}.b"] = gP_sum
    gx: F64 | None = None
    if need_input_grad:
        gx = np.zeros_like(x)
        gx[:-1] = (gflat @ W).reshape(T - 1, B, n_in)
    return grads, gx


def backward(net: SpikingNet, trace: Trace, fn: SpikeFunction, *,
             dS: Mapping[str, F64] | None = None, dP: Mapping[str, F64] | None = None,
             params: Mapping[str, F64] | None = None, detach_reset: bool = True,
             kernels: bool = True) -> dict[str, F64]:
    """Gradients of a loss with respect to every parameter.

    dS, dP: dL/dS and dL/dP per layer name, each (T, B, n) (missing layers: zero).
    params: the weights the forward pass used (default ``net.params``).
    """
    p = net.params if params is None else params
    dS = dS or {}
    dP = dP or {}
    unknown = sorted((set(dS) | set(dP)) - {s.name for s in net.layers})
    if unknown:
        raise ConfigError(f"loss gradients for unknown layers {unknown}", where="backward")
    grads: dict[str, F64] = {}
    g_from_above: F64 | None = None
    for k in range(net.depth - 1, -1, -1):
        spec = net.layers[k]
        gS = dS.get(spec.name)
        if g_from_above is not None:
            gS = g_from_above if gS is None else gS + g_from_above
        if gS is not None and not spec.spiking:
            raise ConfigError("a non-spiking readout has no spikes to differentiate",
                              where=f"layer '{spec.name}'", field="dS")
        x = trace.x if k == 0 else trace.layers[k - 1].S
        g, g_from_above = _layer_backward(spec, trace.layers[k], x, p, gS, dP.get(spec.name),
                                          fn, detach_reset, need_input_grad=k > 0,
                                          kernels=kernels)
        grads.update(g)
    return grads
