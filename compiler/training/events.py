"""Sparse spikes and reusable buffers for the trainer's fast (float32) path.

:class:`SpikeRows` holds time-major spikes ``(T, B, n)`` as rows of events: row ``r = t * B
+ b`` lists the active channels ``idx[ptr[r]:ptr[r + 1]]`` (ascending) and, for graded
inputs, their values. The forward pass uses it for the feed-forward (and recurrent) drive
of a sparse presynaptic layer -- a sum of weight rows per event instead of a dense product
-- and the backward pass for that projection's weight gradient (a scatter of the current's
adjoint per event).

:class:`Workspace` hands out arrays by name and shape and gives the same array back on the
next call with the same name, shape and dtype: the trainer keeps one per run so that its
(T, B, n) states are written into memory that is already mapped and cached instead of
fresh allocations each batch. Whatever a call returns is only valid until the next call
that uses the same workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from compiler.training.kernels import count_bool, rows_from_bool
from neurochip.core.errors import ConfigError

__all__ = ["DTYPES", "SpikeRows", "Workspace", "resolve_dtype"]

#: The compute precisions of the trainer: float64 (the default, bit-identical to earlier
#: releases, and what gradient checks use) and float32 (the fast path).
DTYPES = ("float64", "float32")


def resolve_dtype(dtype: DTypeLike | None, where: str = "training") -> np.dtype:
    """``dtype`` as a numpy dtype, float64 when None; a ConfigError for anything else than
    float64 or float32."""
    if dtype is None:
        return np.dtype(np.float64)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ConfigError(f"must be one of {', '.join(DTYPES)}, got {dtype!r}", where=where,
                          field="dtype", value=str(dtype))
    return dt


class Workspace:
    """Named arrays reused across calls (see the module docstring)."""

    def __init__(self) -> None:
        self._bufs: dict[tuple[str, tuple[int, ...], str], NDArray[Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        """An uninitialised C-contiguous array, the same one as last time for this key."""
        key = (name, tuple(int(s) for s in shape), np.dtype(dtype).str)
        buf = self._bufs.get(key)
        if buf is None:
            buf = self._bufs[key] = np.empty(key[1], dtype)
        return buf

    def zeros(self, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
        buf = self.get(name, shape, dtype)
        buf.fill(0)
        return buf

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._bufs.values())


@dataclass
class SpikeRows:
    """Time-major spikes (T, B, n) as rows of events (see the module docstring).

    val: the value of each event, or None when every event is 1 (binary spikes).
    """

    shape: tuple[int, int, int]
    ptr: NDArray[np.int64]
    idx: NDArray[np.int32]
    val: NDArray[np.floating] | None = None

    @property
    def nnz(self) -> int:
        return int(self.ptr[-1])

    @property
    def density(self) -> float:
        T, B, n = self.shape
        return self.nnz / max(T * B * n, 1)

    @classmethod
    def from_dense(cls, x: NDArray[np.generic], dtype: DTypeLike = np.float32) -> SpikeRows:
        """The events of a dense time-major array (T, B, n); values kept unless all are 1."""
        if x.ndim != 3:
            raise ConfigError(f"spikes must be (T, B, n), got {x.shape}", where="SpikeRows",
                              field="x")
        T, B, n = x.shape
        flat = x.reshape(T * B, n)
        rows, cols = np.nonzero(flat)
        ptr = np.zeros(T * B + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=T * B), out=ptr[1:])
        vals = flat[rows, cols]
        val = None if np.all(vals == 1) else vals.astype(dtype)
        return cls((T, B, n), ptr, cols.astype(np.int32), val)

    @classmethod
    def from_bool(cls, x: NDArray[np.bool_], order: NDArray[np.integer], steps: int,
                  ws: Workspace | None = None) -> SpikeRows:
        """The samples ``x[order]`` of batch-major bool spikes (N, T, n), time-major and
        padded with silence to ``steps`` (what ``time_major(x[order], n, steps)`` holds)."""
        if x.ndim != 3 or x.dtype != np.bool_:
            raise ConfigError(f"spikes must be bool (N, T, n), got {x.dtype} {x.shape}",
                              where="SpikeRows", field="x")
        order = np.ascontiguousarray(order, np.int64)
        N, T, n = x.shape
        if steps < T:
            raise ConfigError(f"cannot run {steps} steps on {T} input steps",
                              where="SpikeRows", field="steps")
        if order.size and (order.min() < 0 or order.max() >= N):
            raise ConfigError(f"sample indices must lie in [0, {N})", where="SpikeRows",
                              field="order")
        B = order.shape[0]
        if ws is None:
            idx = np.empty(count_bool(x, order, steps), np.int32)
            ptr = np.empty(steps * B + 1, np.int64)
        else:
            idx = ws.get("rows.idx", (steps * B * n,), np.int32)
            ptr = ws.get("rows.ptr", (steps * B + 1,), np.int64)
        nnz = rows_from_bool(x, order, steps, ptr, idx)
        return cls((steps, B, n), ptr, idx[:nnz])

    def dense(self, dtype: DTypeLike = np.float64) -> NDArray[np.floating]:
        """The time-major array (T, B, n) these events describe."""
        T, B, n = self.shape
        out = np.zeros((T * B, n), dtype)
        rows = np.repeat(np.arange(T * B), np.diff(self.ptr))
        out[rows, self.idx] = 1 if self.val is None else self.val
        return out.reshape(T, B, n)
