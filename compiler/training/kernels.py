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

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from compiler.training.surrogates import SmoothStep, SpikeFunction, Surrogate
from neurochip.core.errors import ConfigError
from neurochip.core.lif import SPIKE_SIGMOID, SPIKE_STEP, LifParams, LifState, lif_step
from neurochip.core.surrogates import SURROGATE_NAMES

__all__ = ["KernelSpike", "backward_fast", "blas_threads", "count_bool", "forward_fast",
           "kernel_spike", "lif_backward", "lif_forward", "rows_from_bool"]

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


# ---------------------------------------------------------------------------- fast path
# The float32 (or any-dtype) path of the trainer: spikes travel as rows of events (CSR over
# the time-major rows r = t * B + b), the feed-forward drive and the weight gradients of a
# sparse presynaptic layer are gathers and scatters of weight rows, dense products are one
# BLAS call (per step for the recurrent one), and every array is a buffer the caller owns.
# The float64 path above is left exactly as it was (its results stay bit-identical).


@njit(cache=True)
def rows_from_bool(x, order, steps, ptr, idx):  # pragma: no cover - compiled
    """Events of the samples ``x[order]`` (N, T, n) bool, time-major rows, ``steps`` rows
    of time (silence after T): fills ``ptr`` (steps * B + 1) and ``idx``; returns nnz."""
    B = order.shape[0]
    T = x.shape[1]
    n = x.shape[2]
    nnz = 0
    ptr[0] = 0
    for t in range(steps):
        for r in range(B):
            if t < T:
                row = x[order[r], t]
                for k in range(n):
                    if row[k]:
                        idx[nnz] = k
                        nnz += 1
            ptr[t * B + r + 1] = nnz
    return nnz


@njit(cache=True)
def count_bool(x, order, steps):  # pragma: no cover - compiled
    """Number of True entries of ``x[order, :steps]``."""
    c = 0
    T = min(x.shape[1], steps)
    for r in range(order.shape[0]):
        for t in range(T):
            row = x[order[r], t]
            for k in range(x.shape[2]):
                if row[k]:
                    c += 1
    return c


@njit(cache=True)
def _gather_rows(drv, ptr, idx, val, has_val, row0, WT):  # pragma: no cover - compiled
    # drv[r] += sum over the events e of row row0 + r of val[e] * WT[idx[e]]
    B, n = drv.shape
    for r in range(B):
        for e in range(ptr[row0 + r], ptr[row0 + r + 1]):
            w = WT[idx[e]]
            if has_val:
                v = val[e]
                for j in range(n):
                    drv[r, j] += v * w[j]
            else:
                for j in range(n):
                    drv[r, j] += w[j]


@njit(cache=True)
def _forward_fast(D, has_D, in_ptr, in_idx, in_val, in_val_on, has_in, WT, VT, has_V,
                  rec_max, b, theta, prm, I, P, S, drv, rec, u, zero, record,
                  out_ptr, out_idx):  # pragma: no cover - compiled
    T, B, n = I.shape
    for r in range(B):
        for j in range(n):
            u[r, j] = 0.0
            zero[r, j] = 0.0
    nnz = 0
    out_ptr[0] = 0
    for t in range(T):
        if has_D:
            drv[:, :] = D[t]
        else:
            drv[:, :] = 0.0
        if has_in and t > 0:
            _gather_rows(drv, in_ptr, in_idx, in_val, in_val_on, (t - 1) * B, WT)
        if has_V and t > 0:
            if record and out_ptr[t * B] - out_ptr[(t - 1) * B] <= rec_max:
                _gather_rows(drv, out_ptr, out_idx, in_val, False, (t - 1) * B, VT)
            else:
                np.dot(S[t - 1], VT, rec)
                for r in range(B):
                    for j in range(n):
                        drv[r, j] += rec[r, j]
        i_prev = I[t - 1] if t > 0 else zero
        lif_step(prm, b, theta, i_prev, u, drv, LifState(I[t], P[t], S[t], u))
        if record:
            St = S[t]
            for r in range(B):
                for j in range(n):
                    if St[r, j] != 0.0:
                        out_idx[nnz] = j
                        nnz += 1
                out_ptr[t * B + r + 1] = nnz
    return nnz


@njit(cache=True)
def _scatter_rows(gT, ptr, idx, val, has_val, row0, g):  # pragma: no cover - compiled
    # gT[idx[e]] += val[e] * g[r] for the events e of row row0 + r
    B, n = g.shape
    for r in range(B):
        gr = g[r]
        for e in range(ptr[row0 + r], ptr[row0 + r + 1]):
            out = gT[idx[e]]
            if has_val:
                v = val[e]
                for j in range(n):
                    out[j] += v * gr[j]
            else:
                for j in range(n):
                    out[j] += gr[j]


@njit(cache=True)
def _dspike_row(p, theta, code, k, out):  # pragma: no cover - compiled
    # out[j] = _dspike(p[j] - theta), the code test hoisted out of the loop (vectorises)
    n = p.shape[0]
    if code == _GRAD_FAST_SIGMOID:
        for j in range(n):
            ax = abs(p[j] - theta) * k
            out[j] = 1.0 / ((1.0 + ax) * (1.0 + ax))
    elif code == _GRAD_PIECEWISE:
        for j in range(n):
            out[j] = max(0.0, 1.0 - abs(p[j] - theta) * k)
    elif code == _GRAD_EXPONENTIAL:
        for j in range(n):
            out[j] = np.exp(-abs(p[j] - theta) * k)
    else:
        for j in range(n):
            sg = 0.5 * (1.0 + np.tanh(0.5 * k * (p[j] - theta)))
            out[j] = k * sg * (1.0 - sg)


@njit(cache=True)
def _backward_fast(P, S, gS_ext, has_gS, gP_ext, has_gP, V, has_V, alpha, beta, theta,
                   spiking, subtract, detach, gcode, k, gI_all, gP_sum, gI, gP, rec,
                   in_ptr, in_idx, in_val, in_val_on, has_in, gWT, own_ptr, own_idx,
                   own_events, gVT):  # pragma: no cover - compiled
    # The recursion of _backward, each flag tested once per row so that the loops over the
    # neurons vectorise; gs, f' and g of a row go through three row buffers.
    T, B, n = P.shape
    gs = np.empty(n, gI.dtype)
    ds = np.empty(n, gI.dtype)
    g = np.empty(n, gI.dtype)
    for r in range(B):
        for j in range(n):
            gI[r, j] = 0.0
            gP[r, j] = 0.0
            rec[r, j] = 0.0
    for j in range(n):
        gP_sum[j] = 0.0
    for t in range(T - 1, -1, -1):
        if has_V and t < T - 1:
            np.dot(gI, V, rec)
        for r in range(B):
            gPr = gP[r]
            gIr = gI[r]
            if spiking:
                Pr = P[t, r]
                Sr = S[t, r]
                if has_gS:
                    ext = gS_ext[t, r]
                    if has_V:
                        for j in range(n):
                            gs[j] = ext[j] + rec[r, j]
                    else:
                        for j in range(n):
                            gs[j] = ext[j]
                elif has_V:
                    for j in range(n):
                        gs[j] = rec[r, j]
                else:
                    for j in range(n):
                        gs[j] = 0.0
                _dspike_row(Pr, theta, gcode, k, ds)
                if detach and subtract:
                    for j in range(n):
                        g[j] = gs[j] * ds[j] + beta * gPr[j]
                elif detach:
                    for j in range(n):
                        gU = beta * gPr[j]
                        g[j] = gs[j] * ds[j] + gU * (1.0 - Sr[j])
                elif subtract:
                    for j in range(n):
                        gU = beta * gPr[j]
                        g[j] = (gs[j] - theta * gU) * ds[j] + gU
                else:
                    for j in range(n):
                        gU = beta * gPr[j]
                        g[j] = (gs[j] - Pr[j] * gU) * ds[j] + gU * (1.0 - Sr[j])
            else:
                for j in range(n):
                    g[j] = beta * gPr[j]
            if has_gP:
                ext = gP_ext[t, r]
                for j in range(n):
                    g[j] += ext[j]
            out = gI_all[t, r]
            for j in range(n):
                gPr[j] = g[j]
                gi = g[j] + alpha * gIr[j]
                gIr[j] = gi
                out[j] = gi
                gP_sum[j] += g[j]
        # dW = sum_t gI[t] x[t-1]^T, dV = sum_t gI[t] S[t-1]^T over the events of step t-1
        if t > 0:
            if has_in:
                _scatter_rows(gWT, in_ptr, in_idx, in_val, in_val_on, (t - 1) * B, gI)
            if own_events:
                _scatter_rows(gVT, own_ptr, own_idx, in_val, False, (t - 1) * B, gI)


#: BLAS threads of the fast path. Its products are small (one (B, n) x (n, n) per step) and a
#: second thread mostly waits for the first -- or, on a loaded machine, for the scheduler:
#: one thread is faster on 2 cores and far steadier.
FAST_BLAS_THREADS = 1
_controller: list[Any] = []


def blas_threads(n: int = FAST_BLAS_THREADS) -> AbstractContextManager[Any]:
    """A context in which every loaded BLAS (numpy's, and scipy's that the kernels call)
    runs ``n`` threads (a no-op context if threadpoolctl is missing)."""
    if not _controller:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (load the kernels' BLAS first)
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
            _controller.append(None)
        else:
            _controller.append(ThreadpoolController())
    ctl = _controller[0]
    return nullcontext() if ctl is None else ctl.limit(limits=n, user_api="blas")


def _c(a: NDArray[np.generic], dtype: np.dtype) -> NDArray[np.generic]:
    return np.ascontiguousarray(a, dtype=dtype)


_NO_EVENTS = (np.zeros(1, np.int64), np.zeros(0, np.int32))


def forward_fast(D: NDArray[np.floating] | None,
                 events: tuple[NDArray[np.int64], NDArray[np.int32],
                               NDArray[np.floating] | None] | None,
                 WT: NDArray[np.floating] | None, VT: NDArray[np.floating] | None,
                 b: NDArray[np.floating] | None, *, alpha: float, beta: float, theta: float,
                 spiking: bool, subtract: bool, spike: KernelSpike, rec_density: float,
                 out: tuple[NDArray[np.floating], ...],
                 record: tuple[NDArray[np.int64], NDArray[np.int32]] | None) -> int:
    """One layer's forward pass into the caller's buffers; returns the number of events.

    The drive of step t is ``D[t]`` (dense, may be None) plus the sum of ``WT[k] * val`` over
    the input events ``(ptr, idx, val)`` of step t - 1 (may be None), plus the recurrent
    product: a sum of ``VT`` rows over the layer's own events of step t - 1 when they fill at
    most ``rec_density`` of the step, else one BLAS product ``S[t-1] @ VT``.
    out: (I, P, S) (T, B, n), then the step buffers drv, rec, u, zero (B, n), all one dtype.
    record: (ptr (T*B+1,), idx (T*B*n,)) to record the spikes as events, or None.
    """
    I, P, S, drv, rec, u, zero = out
    dt = I.dtype
    B, n = I.shape[1:]
    for a in out:
        if a.dtype != dt or not a.flags.c_contiguous:
            raise ConfigError("buffers must be C-contiguous and of one dtype",
                              where="LIF kernel", field="out")
    Dc = _c(D, dt) if D is not None else np.zeros((1, 1, 1), dt)
    if events is not None:
        in_ptr, in_idx, in_val = events
        in_val_c = _c(in_val, dt) if in_val is not None else np.zeros(0, dt)
    else:
        in_ptr, in_idx = _NO_EVENTS
        in_val, in_val_c = None, np.zeros(0, dt)
    WTc = _c(WT, dt) if WT is not None else np.zeros((1, 1), dt)
    VTc = _c(VT, dt) if VT is not None else np.zeros((1, 1), dt)
    bc = _c(b, dt) if b is not None else np.zeros(n, dt)
    rptr, ridx = record if record is not None else _NO_EVENTS
    # decays in the state's dtype, so that the step runs in it (float32: twice the lanes)
    prm = LifParams(dt.type(alpha), dt.type(beta), bool(spiking),  # type: ignore[arg-type]
                    bool(subtract), int(spike.forward), float(spike.steepness))
    rec_max = int(rec_density * B * n) if record is not None else -1
    return int(_forward_fast(Dc, D is not None, in_ptr, in_idx, in_val_c, in_val is not None,
                             events is not None, WTc, VTc, VT is not None, rec_max, bc,
                             np.full(n, theta, dt), prm, I, P, S, drv, rec, u, zero,
                             record is not None, rptr, ridx))


def backward_fast(P: NDArray[np.floating], S: NDArray[np.floating],
                  gS: NDArray[np.floating] | None, gP: NDArray[np.floating] | None,
                  V: NDArray[np.floating] | None, *, alpha: float, beta: float, theta: float,
                  spiking: bool, subtract: bool, detach_reset: bool, spike: KernelSpike,
                  out: tuple[NDArray[np.floating], ...],
                  in_events: tuple[NDArray[np.int64], NDArray[np.int32],
                                   NDArray[np.floating] | None] | None,
                  gWT: NDArray[np.floating] | None,
                  own_events: tuple[NDArray[np.int64], NDArray[np.int32]] | None,
                  gVT: NDArray[np.floating] | None) -> None:
    """One layer's backward pass into the caller's buffers (see :func:`lif_backward`).

    out: gI_all (T, B, n), gP_sum (n,), then the step buffers gI, gP, rec (B, n).
    in_events / gWT: the input's events and the (n_in, n) array that receives
    ``dW^T = sum_t x[t-1] gI[t]^T`` (both or neither); own_events / gVT: the same for ``dV``.
    """
    gI_all, gP_sum, gI, gPb, rec = out
    dt = gI_all.dtype
    empty3 = np.zeros((0, 0, 0), dt)
    if in_events is not None:
        in_ptr, in_idx, in_val = in_events
        in_val_c = _c(in_val, dt) if in_val is not None else np.zeros(0, dt)
    else:
        in_ptr, in_idx = _NO_EVENTS
        in_val, in_val_c = None, np.zeros(0, dt)
    optr, oidx = own_events if own_events is not None else _NO_EVENTS
    dummy = np.zeros((1, 1), dt)
    _backward_fast(_c(P, dt), _c(S, dt), _c(gS, dt) if gS is not None else empty3,
                   gS is not None, _c(gP, dt) if gP is not None else empty3, gP is not None,
                   _c(V, dt) if V is not None else dummy, V is not None, dt.type(alpha),
                   dt.type(beta), dt.type(theta), bool(spiking), bool(subtract),
                   bool(detach_reset), int(spike.grad), dt.type(spike.steepness), gI_all,
                   gP_sum, gI, gPb, rec, in_ptr, in_idx, in_val_c, in_val is not None,
                   in_events is not None, gWT if gWT is not None else dummy, optr, oidx,
                   own_events is not None, gVT if gVT is not None else dummy)
