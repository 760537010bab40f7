"""Kernel of the emit pass: a sparse connection's fan-out lists.

The network holds a connection as a (post, pre) CSR; the chip reads it per pre neuron
(CSC order: by pre neuron, then post neuron). :func:`fan_out_lists` transposes it with a
counting sort, two passes over the synapses, and carries each synapse's stored byte (its
encoded weight) and delay along: no permutation array, no sort, nothing per synapse but
the outputs (32-bit post indices, the bytes). The order equals SciPy's CSR -> CSC
conversion (``tests/compiler/test_emit_kernels.py``).

``cache=True``: the kernel compiles once per machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["fan_out_lists"]


@njit(cache=True, nogil=True)
def _transpose(indptr: NDArray[np.int64], indices: NDArray[np.integer], n_pre: int,
               w: NDArray[np.uint8], d: NDArray[np.uint8], has_d: bool
               ) -> tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint8],
                          NDArray[np.uint8]]:  # pragma: no cover - njit
    nnz = indices.size
    ptr = np.zeros(n_pre + 1, np.int64)
    for e in range(nnz):
        ptr[indices[e] + 1] += 1
    for j in range(n_pre):
        ptr[j + 1] += ptr[j]
    nxt = ptr[:-1].copy()  # next free slot of each pre neuron's list
    post = np.empty(nnz, np.uint32)
    wt = np.empty(nnz, np.uint8)
    dt = np.empty(nnz if has_d else 0, np.uint8)
    for r in range(indptr.size - 1):  # rows in order: each list's posts ascend
        for e in range(indptr[r], indptr[r + 1]):
            j = indices[e]
            t = nxt[j]
            nxt[j] = t + 1
            post[t] = r
            wt[t] = w[e]
            if has_d:
                dt[t] = d[e]
    return ptr, post, wt, dt


def fan_out_lists(indptr: NDArray[np.integer], indices: NDArray[np.integer], n_pre: int,
                  w: NDArray[np.uint8], d: NDArray[np.uint8] | None
                  ) -> tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint8],
                             NDArray[np.uint8] | None]:
    """(per pre neuron: start of its list, post neuron of each synapse, its byte, its delay
    or None) of the (post, pre) CSR ``indptr``/``indices`` whose synapses store ``w`` and
    ``d`` (one byte each, CSR order)."""
    nnz = len(indices)
    if len(w) != nnz or (d is not None and len(d) != nnz):
        raise ValueError(f"fan_out_lists: {nnz} synapses but {len(w)} weights"
                         + ("" if d is None else f" and {len(d)} delays"))
    if len(indptr) - 1 >= 2**32:
        raise ValueError("fan_out_lists: post neuron indices must fit 32 bits")
    ip = np.asarray(indptr, np.int64)
    ix = np.asarray(indices, np.int32) if n_pre < 2**31 else np.asarray(indices, np.int64)
    dd = np.zeros(0, np.uint8) if d is None else np.ascontiguousarray(d, np.uint8)
    ptr, post, wt, dt = _transpose(ip, ix, int(n_pre), np.ascontiguousarray(w, np.uint8), dd,
                                   d is not None)
    return ptr, post, wt, (dt if d is not None else None)
