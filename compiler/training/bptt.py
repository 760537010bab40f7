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
from numpy.typing import DTypeLike, NDArray

from compiler.training.events import SpikeRows, Workspace, resolve_dtype
from compiler.training.kernels import (
    KernelSpike,
    backward_fast,
    blas_threads,
    forward_fast,
    kernel_spike,
    lif_backward,
    lif_forward,
)
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import SpikeFunction
from neurochip.core.errors import ConfigError
from neurochip.core.lif import SPIKE_STEP

__all__ = ["LayerTrace", "Trace", "backward", "forward", "time_major"]

F64 = NDArray[np.float64]
Input = NDArray[np.floating] | SpikeRows

#: A presynaptic layer whose events fill at most this fraction of (T, B, n) drives its
#: projection by gathering weight rows (and gets its weight gradient by scattering) on the
#: fast path; denser ones use one dense BLAS product.
SPARSE_DENSITY = 0.2


@dataclass
class LayerTrace:
    """One layer's recorded states, each (T, B, n): current, membrane before reset, spikes.

    events: the spikes as rows of events (fast path, binary spikes only), else None.
    """

    I: F64
    P: F64
    S: F64
    events: SpikeRows | None = None


class Trace:
    """A forward pass: the input (T, B, n_in) and every layer's states.

    events: the input as rows of events when the forward pass was given them; ``x`` is then
    made dense on first access.
    """

    def __init__(self, x: F64 | None, layers: list[LayerTrace],
                 events: SpikeRows | None = None) -> None:
        if x is None and events is None:
            raise ConfigError("a trace needs its input", where="Trace", field="x")
        self._x = x
        self.layers = layers
        self.events = events

    @property
    def x(self) -> F64:
        if self._x is None:
            assert self.events is not None
            self._x = self.events.dense(self.layers[0].P.dtype if self.layers else np.float64)
        return self._x

    @property
    def out(self) -> LayerTrace:
        return self.layers[-1]

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].P.dtype if self.layers else np.dtype(np.float64)

    def input(self) -> Input:
        """The input as the passes read it: its events if given, else the dense array."""
        if self.events is not None:
            return self.events
        return self.x


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
    D = np.zeros((T, B, W.shape[0]), np.result_type(x, W))
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
    i = np.zeros((B, n), D.dtype)
    u = np.zeros((B, n), D.dtype)
    s = np.zeros((B, n), D.dtype)
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


def forward(net: SpikingNet, x: Input, fn: SpikeFunction,
            params: Mapping[str, F64] | None = None, *, kernels: bool = True,
            dtype: DTypeLike | None = None, workspace: Workspace | None = None) -> Trace:
    """Run ``net`` on time-major inputs ``x`` (T, B, n_in) (see :func:`time_major`).

    kernels: use the Numba time loops (:mod:`compiler.training.kernels`) when they know the
    spike function; False runs the plain numpy loops (the reference they are tested against).
    dtype: float64 (default: the reference, unchanged) or float32, the fast path: sparse
    inputs and spikes as events (``x`` may be given as :class:`SpikeRows`), one BLAS product
    per step for the recurrent drive of dense spikes, states in float32.
    workspace: buffers to reuse (float32 path); the trace then lives in them and stays
    valid until the next call with the same workspace.
    """
    dt = resolve_dtype(dtype, "forward")
    shape = x.shape if isinstance(x, SpikeRows) else getattr(x, "shape", None)
    if shape is None or len(shape) != 3 or shape[-1] != net.n_in:
        raise ConfigError(f"time-major inputs must have shape (T, B, {net.n_in}), got "
                          f"{shape}", where="forward", field="x")
    p = net.params if params is None else params
    ks = kernel_spike(fn) if kernels else None
    if dt == np.float32 and ks is not None:
        with blas_threads():
            return _forward_fast(net, x, p, ks, workspace or Workspace(), dt)
    xd = x.dense(dt) if isinstance(x, SpikeRows) else x
    if dt != np.float64:
        xd = np.asarray(xd, dt)
        p = {k: np.asarray(v, dt) for k, v in p.items()}
    layers: list[LayerTrace] = []
    h = xd
    for spec in net.layers:
        tr = _layer_forward(h, spec, p, fn, kernels)
        layers.append(tr)
        h = tr.S
    return Trace(xd, layers)


def _sparse(h: Input) -> bool:
    return isinstance(h, SpikeRows) and h.density <= SPARSE_DENSITY


def _events(h: SpikeRows) -> tuple[NDArray[np.int64], NDArray[np.int32],
                                   NDArray[np.floating] | None]:
    return h.ptr, h.idx, h.val


def _dense(h: Input, dt: np.dtype) -> NDArray[np.floating]:
    return h.dense(dt) if isinstance(h, SpikeRows) else np.asarray(h, dt)


def _forward_fast(net: SpikingNet, x: Input, p: Mapping[str, F64], ks: KernelSpike,
                  ws: Workspace, dt: np.dtype) -> Trace:
    layers: list[LayerTrace] = []
    h: Input = x
    for li, spec in enumerate(net.layers):
        T, B, n_in = h.shape
        n = spec.size
        W = np.asarray(p[f"{spec.name}.W"], dt)
        V = p.get(f"{spec.name}.V") if spec.recurrent else None
        b = p.get(f"{spec.name}.b") if spec.bias else None
        D = None
        events = None
        WT = None
        if _sparse(h):
            assert isinstance(h, SpikeRows)
            events = _events(h)
            WT = np.ascontiguousarray(W.T)
        else:
            X = _dense(h, dt)
            D = ws.get(f"{li}.D", (T, B, n), dt)
            D[0] = 0
            if T > 1:
                np.matmul(X[:-1].reshape(-1, n_in), W.T, out=D[1:].reshape(-1, n))
        I = ws.get(f"{li}.I", (T, B, n), dt)
        P = ws.get(f"{li}.P", (T, B, n), dt)
        S = ws.get(f"{li}.S", (T, B, n), dt)
        bufs = tuple(ws.get(f"{li}.{k}", (B, n), dt) for k in ("drv", "rec", "u", "zero"))
        record = None
        if spec.spiking and ks.forward == SPIKE_STEP:
            record = (ws.get(f"{li}.ptr", (T * B + 1,), np.int64),
                      ws.get(f"{li}.idx", (T * B * n,), np.int32))
        VT = np.ascontiguousarray(np.asarray(V, dt).T) if V is not None else None
        nnz = forward_fast(D, events, WT, VT, b, alpha=spec.alpha, beta=spec.beta,
                           theta=spec.threshold, spiking=spec.spiking,
                           subtract=spec.reset == "subtract", spike=ks,
                           rec_density=SPARSE_DENSITY, out=(I, P, S, *bufs), record=record)
        ev = SpikeRows((T, B, n), record[0], record[1][:nnz]) if record is not None else None
        layers.append(LayerTrace(I, P, S, ev))
        h = ev if ev is not None else S
    if isinstance(x, SpikeRows):
        return Trace(None, layers, x)
    return Trace(np.asarray(x, dt), layers)


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
    dt = tr.P.dtype
    gI_all = np.empty((T, B, n), dt)
    gP_sum = np.zeros(n, dt)
    gI = np.zeros((B, n), dt)
    gP = np.zeros((B, n), dt)
    a, be, th = spec.alpha, spec.beta, spec.threshold
    sub = spec.reset == "subtract"
    dsdx = fn.grad(tr.P - th) if spec.spiking else None
    for t in range(T - 1, -1, -1):
        gU = be * gP
        if spec.spiking:
            gS = np.zeros((B, n), dt) if gS_ext is None else gS_ext[t].copy()
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


def _layer_backward_fast(spec: LayerSpec, tr: LayerTrace, h: Input, p: Mapping[str, F64],
                         gS_ext: NDArray[np.floating] | None,
                         gP_ext: NDArray[np.floating] | None, ks: KernelSpike,
                         detach_reset: bool, need_input_grad: bool, ws: Workspace, li: int
                         ) -> tuple[dict[str, NDArray[np.floating]], NDArray[np.floating] | None]:
    dt = tr.P.dtype
    T, B, n = tr.P.shape
    n_in = h.shape[-1]
    W = np.asarray(p[f"{spec.name}.W"], dt)
    V = np.asarray(p[f"{spec.name}.V"], dt) if spec.recurrent else None
    in_events = gWT = own = gVT = None
    if _sparse(h):
        assert isinstance(h, SpikeRows)
        in_events = _events(h)
        gWT = ws.zeros(f"{li}.gWT", (n_in, n), dt)
    if V is not None and tr.events is not None and tr.events.density <= SPARSE_DENSITY:
        own = (tr.events.ptr, tr.events.idx)
        gVT = ws.zeros(f"{li}.gVT", (n, n), dt)
    gI_all = ws.get(f"{li}.gI", (T, B, n), dt)
    gP_sum = ws.get(f"{li}.gPsum", (n,), dt)
    bufs = tuple(ws.get(f"{li}.{k}", (B, n), dt) for k in ("gIs", "gPs", "grec"))
    backward_fast(tr.P, tr.S, gS_ext if spec.spiking else None, gP_ext, V, alpha=spec.alpha,
                  beta=spec.beta, theta=spec.threshold, spiking=spec.spiking,
                  subtract=spec.reset == "subtract", detach_reset=detach_reset, spike=ks,
                  out=(gI_all, gP_sum, *bufs), in_events=in_events, gWT=gWT,
                  own_events=own, gVT=gVT)
    grads: dict[str, NDArray[np.floating]] = {}
    gflat = gI_all[1:].reshape(-1, n)
    if gWT is not None:
        grads[f"{spec.name}.W"] = gWT.T.copy()
    else:
        grads[f"{spec.name}.W"] = gflat.T @ _dense(h, dt)[:-1].reshape(-1, n_in)
    if V is not None:
        grads[f"{spec.name}.V"] = (gVT.T.copy() if gVT is not None
                                   else gflat.T @ tr.S[:-1].reshape(-1, n))
    if spec.bias:
        grads[f"{spec.name}.b"] = gP_sum.copy()
    gx = None
    if need_input_grad:
        gx = ws.get(f"{li}.gx", (T, B, n_in), dt)
        gx[-1] = 0
        if T > 1:
            np.matmul(gflat, W, out=gx[:-1].reshape(-1, n_in))
    return grads, gx


def backward(net: SpikingNet, trace: Trace, fn: SpikeFunction, *,
             dS: Mapping[str, F64] | None = None, dP: Mapping[str, F64] | None = None,
             params: Mapping[str, F64] | None = None, detach_reset: bool = True,
             kernels: bool = True, workspace: Workspace | None = None) -> dict[str, F64]:
    """Gradients of a loss with respect to every parameter.

    dS, dP: dL/dS and dL/dP per layer name, each (T, B, n) (missing layers: zero).
    params: the weights the forward pass used (default ``net.params``).
    The precision is the trace's: a float32 trace (``forward(..., dtype="float32")``) runs
    the fast path and returns float32 gradients. workspace: buffers to reuse (float32).
    """
    p = net.params if params is None else params
    dS = dS or {}
    dP = dP or {}
    unknown = sorted((set(dS) | set(dP)) - {s.name for s in net.layers})
    if unknown:
        raise ConfigError(f"loss gradients for unknown layers {unknown}", where="backward")
    ks = kernel_spike(fn) if kernels else None
    fast = trace.dtype == np.float32 and ks is not None
    ws = workspace or Workspace()
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
        if fast:
            assert ks is not None
            lower = trace.layers[k - 1] if k > 0 else None
            h: Input = trace.input() if lower is None else (
                lower.events if lower.events is not None else lower.S)
            with blas_threads():
                g, g_from_above = _layer_backward_fast(spec, trace.layers[k], h, p, gS,
                                                       dP.get(spec.name), ks, detach_reset,
                                                       k > 0, ws, k)
        else:
            x = trace.x if k == 0 else trace.layers[k - 1].S
            if trace.dtype != np.float64:
                p = {key: np.asarray(v, trace.dtype) for key, v in p.items()}
            g, g_from_above = _layer_backward(spec, trace.layers[k], x, p, gS,
                                              dP.get(spec.name), fn, detach_reset,
                                              need_input_grad=k > 0, kernels=kernels)
        grads.update(g)
    return grads
