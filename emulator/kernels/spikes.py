"""Host spikes (B, T, n) bool to the kernels' spike lists (:class:`records.Inputs`)."""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from emulator.kernels.intrinsics import nonzero_mask64, trailing_zeros
from neurochip.core.errors import EmulatorInputError

__all__ = ["payload_lists", "spike_lists"]


@njit(cache=True)
def _spike_lists(X, ptr, out):
    """Host spikes, one (sample, step) per row of X (R, n) uint8 0/1 -> ptr (R + 1,), the
    spiking input indices in out.

    64 inputs at a time: one vector compare turns 64 bytes into a 64-bit mask
    (``intrinsics.nonzero_mask64``), whose set bits are walked with count-trailing-zeros;
    the tail of a row goes byte by byte.
    """
    R, n = X.shape
    nb = n // 64
    k = np.int64(0)
    for t in range(R):
        ptr[t] = k
        row = X[t]
        for blk in range(nb):
            m = nonzero_mask64(row, blk * 64)
            while m != np.uint64(0):
                out[k] = blk * 64 + trailing_zeros(m)
                k += 1
                m &= m - np.uint64(1)
        for i in range(nb * 64, n):  # branch-free compaction (out has one spare slot)
            out[k] = i
            k += np.int64(row[i])
    ptr[R] = k
    return k


def spike_lists(X: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(inp_ptr (B, T + 1), inp_src) for ``run_batch`` from host spikes (B, T, n)."""
    if X.dtype != np.bool_ or X.ndim != 3:
        raise EmulatorInputError(f"host spikes must be bool (B, T, n), got {X.dtype} {X.shape}",
                                 where="emulator.kernels", field="inputs")
    B, T, n = X.shape
    rows = np.ascontiguousarray(X).reshape(B * T, n).view(np.uint8)
    flat = np.zeros(B * T + 1, np.int64)
    out = np.empty(int(np.count_nonzero(X)) + 1, np.int64)
    k = _spike_lists(rows, flat, out)
    # per sample: its T + 1 offsets (the next sample's first offset closes each one)
    ptr = np.empty((B, T + 1), np.int64)
    ptr[:, :T] = flat[:-1].reshape(B, T)
    ptr[:, T] = flat[T::T] if T else 0
    return ptr, out[:k]


def payload_lists(X: NDArray[np.int32]) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                                NDArray[np.int32]]:
    """(inp_ptr, inp_src, inp_val) for ``run_batch`` from graded host inputs (B, T, n)
    int32: a spike wherever the payload is not 0, and its payload."""
    if X.dtype != np.int32 or X.ndim != 3:
        raise EmulatorInputError(f"host payloads must be int32 (B, T, n), got {X.dtype} "
                                 f"{X.shape}", where="emulator.kernels", field="inputs")
    B, T, n = X.shape
    ptr, src = spike_lists(X != 0)
    counts = np.diff(ptr, axis=1).reshape(-1)
    rows = np.repeat(np.arange(B * T, dtype=np.int64), counts)
    val = np.ascontiguousarray(X.reshape(B * T, n)[rows, src], dtype=np.int32)
    return ptr, src, val
