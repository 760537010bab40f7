"""Synapses: what a projection does between its two populations (dense, sparse, conv)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.ir.fields import Shape, as_shape, frozen_array, ir_error

__all__ = ["Conv", "Dense", "Sparse", "Synapses", "pool"]


def _check_values(a: NDArray[Any], where: str) -> None:
    if a.dtype.kind not in "iuf":
        raise ir_error(where, "weight", f"must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ir_error(where, "weight", "must be finite")


@dataclass(frozen=True, eq=False)
class Dense:
    """All-to-all weights ``weight`` of shape (post, pre): ``input = W @ S``."""

    weight: NDArray[Any]

    def __post_init__(self) -> None:
        a = np.asarray(self.weight)
        if a.ndim != 2:
            raise ir_error("dense synapses", "weight", f"must be 2-D (post, pre), got {a.shape}")
        _check_values(a, "dense synapses")
        object.__setattr__(self, "weight", frozen_array(a, a.dtype))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weight.shape[0]), int(self.weight.shape[1]))

    @property
    def values(self) -> NDArray[Any]:
        """The distinct stored weights (what quantization acts on)."""
        return self.weight

    def to_csr(self) -> sp.csr_matrix:
        return sp.csr_matrix(self.weight)

    def with_values(self, values: NDArray[Any]) -> Dense:
        return Dense(np.asarray(values).reshape(self.weight.shape))


@dataclass(frozen=True, eq=False)
class Sparse:
    """Weights on listed (post, pre) pairs: a scipy CSR matrix, explicit entries = synapses."""

    weight: sp.csr_matrix

    def __post_init__(self) -> None:
        if not sp.issparse(self.weight):
            raise ir_error("sparse synapses", "weight", "must be a scipy.sparse matrix")
        m = sp.csr_matrix(self.weight, copy=True)
        m.sum_duplicates()
        m.sort_indices()
        _check_values(np.asarray(m.data), "sparse synapses")
        object.__setattr__(self, "weight", m)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weight.shape[0]), int(self.weight.shape[1]))

    @property
    def values(self) -> NDArray[Any]:
        return np.asarray(self.weight.data)

    def to_csr(self) -> sp.csr_matrix:
        return self.weight

    def with_values(self, values: NDArray[Any]) -> Sparse:
        m = self.weight
        return Sparse(sp.csr_matrix((np.asarray(values).reshape(-1), m.indices, m.indptr),
                                    shape=m.shape))


def _pair(v: Any, nd: int, where: str, fld: str, lo: int) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, nd)
    if a.size != nd or np.any(a < lo):
        raise ir_error(where, fld, f"must be an int >= {lo} or {nd} of them, got {v!r}")
    return tuple(int(x) for x in a)


@dataclass(frozen=True, eq=False)
class Conv:
    """Convolution (PyTorch cross-correlation) between channels-first layouts, 1-D or 2-D.

    ``weight`` (C_out, C_in/groups, *kernel); ``in_shape`` (C_in, *spatial); ``stride``,
    ``dilation`` per spatial dim; ``padding`` as (before, after) zero padding per spatial
    dim; ``groups`` divides C_in and C_out. Output element (o, *y) receives
    ``sum_{c, k} weight[o, c, k] * S[g*C_in/groups + c, y*stride - pad + k*dilation]``.
    On the chip every output neuron gets its own synapses sharing the kernel's values.
    """

    weight: NDArray[Any]
    in_shape: Shape
    stride: tuple[int, ...] = (1,)
    padding: tuple[tuple[int, int], ...] = ((0, 0),)
    dilation: tuple[int, ...] = (1,)
    groups: int = 1

    def __post_init__(self) -> None:
        where = "conv synapses"
        w = np.asarray(self.weight)
        _check_values(w, where)
        if w.ndim not in (3, 4):
            raise ir_error(where, "weight", f"must be (C_out, C_in/groups, *kernel) with 1 or 2 "
                           f"spatial dims, got shape {w.shape}")
        nd = w.ndim - 2
        ins = as_shape(self.in_shape, where, "in_shape")
        if len(ins) != nd + 1:
            raise ir_error(where, "in_shape", f"must be (C_in, *spatial) with {nd} spatial dims, "
                           f"got {ins}")
        g = int(self.groups)
        if g < 1 or ins[0] % g or w.shape[0] % g or ins[0] // g != w.shape[1]:
            raise ir_error(where, "groups", f"groups={g} does not fit C_in={ins[0]}, "
                           f"C_out={w.shape[0]}, weight C_in/groups={w.shape[1]}")
        stride = _pair(self.stride, nd, where, "stride", 1)
        dil = _pair(self.dilation, nd, where, "dilation", 1)
        pad_in = np.asarray(self.padding, dtype=np.int64)
        if pad_in.size == 1:
            pad_in = np.full((nd, 2), int(pad_in.reshape(-1)[0]))
        elif pad_in.shape == (nd,):
            pad_in = np.stack([pad_in, pad_in], axis=1)
        if pad_in.shape != (nd, 2) or np.any(pad_in < 0):
            raise ir_error(where, "padding", f"must be (before, after) >= 0 per spatial dim, got "
                           f"{self.padding!r}")
        pad = tuple((int(a), int(b)) for a, b in pad_in)
        object.__setattr__(self, "weight", frozen_array(w, w.dtype))
        object.__setattr__(self, "in_shape", ins)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "dilation", dil)
        object.__setattr__(self, "padding", pad)
        object.__setattr__(self, "groups", g)
        out = self.out_shape
        if any(s <= 0 for s in out):
            raise ir_error(where, "in_shape", f"input {ins} is too small for the kernel "
                           f"{w.shape[2:]} (output would be {out})")

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[2:])

    @property
    def out_shape(self) -> Shape:
        sp_out = []
        for n, k, s, d, (pa, pb) in zip(self.in_shape[1:], self.kernel, self.stride,
                                         self.dilation, self.padding):
            sp_out.append((n + pa + pb - d * (k - 1) - 1) // s + 1)
        return (int(self.weight.shape[0]), *sp_out)

    @property
    def shape(self) -> tuple[int, int]:
        return (math.prod(self.out_shape), math.prod(self.in_shape))

    @property
    def values(self) -> NDArray[Any]:
        return self.weight

    def with_values(self, values: NDArray[Any]) -> Conv:
        return replace(self, weight=np.asarray(values).reshape(self.weight.shape))

    def coords(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(post, pre, kernel index) of every synapse (kernel index into weight.ravel())."""
        w = self.weight
        c_out, c_in_g = int(w.shape[0]), int(w.shape[1])
        g = self.groups
        out_sp = self.out_shape[1:]
        in_sp = self.in_shape[1:]
        nd = len(out_sp)
        # Every combination of (o, c, *k, *y), then drop those that fall into the padding.
        ks = [np.arange(k) for k in self.kernel]
        ys = [np.arange(n) for n in out_sp]
        kgrid = np.stack([a.reshape(-1) for a in np.meshgrid(*ks, indexing="ij")])  # (nd, K)
        ygrid = np.stack([a.reshape(-1) for a in np.meshgrid(*ys, indexing="ij")])  # (nd, Y)
        pos = (ygrid[:, None, :] * np.asarray(self.stride)[:, None, None]
               - np.asarray([p[0] for p in self.padding])[:, None, None]
               + kgrid[:, :, None] * np.asarray(self.dilation)[:, None, None])  # (nd, K, Y)
        ok = np.all((pos >= 0) & (pos < np.asarray(in_sp)[:, None, None]), axis=0)  # (K, Y)
        k_idx, y_idx = np.nonzero(ok)
        in_flat = np.zeros(k_idx.size, np.int64)
        out_flat = np.zeros(k_idx.size, np.int64)
        for d in range(nd):
            in_flat = in_flat * in_sp[d] + pos[d, k_idx, y_idx]
            out_flat = out_flat * out_sp[d] + ygrid[d, y_idx]
        n_in_sp = math.prod(in_sp)
        n_out_sp = math.prod(out_sp)
        K = kgrid.shape[1]
        o = np.arange(c_out, dtype=np.int64)
        c = np.arange(c_in_g, dtype=np.int64)
        grp = o // (c_out // g)
        # post = o * n_out_sp + out_flat ; pre = (grp*c_in_g + c) * n_in_sp + in_flat
        post = (o[:, None, None] * n_out_sp + out_flat[None, None, :])
        pre = ((grp[:, None] * c_in_g + c[None, :])[:, :, None] * n_in_sp
               + in_flat[None, None, :])
        kidx = ((o[:, None] * c_in_g + c[None, :])[:, :, None] * K + k_idx[None, None, :])
        shape3 = (c_out, c_in_g, k_idx.size)
        return (np.broadcast_to(post, shape3).reshape(-1),
                np.broadcast_to(pre, shape3).reshape(-1),
                np.broadcast_to(kidx, shape3).reshape(-1))

    def to_csr(self) -> sp.csr_matrix:
        post, pre, kidx = self.coords()
        vals = self.weight.reshape(-1)[kidx]
        m = sp.csr_matrix((vals, (post, pre)), shape=self.shape)
        m.sum_duplicates()
        m.sort_indices()
        return m

    def row_abs_sum(self) -> NDArray[np.float64]:
        post, _, kidx = self.coords()
        w = np.abs(self.weight.reshape(-1)[kidx]).astype(np.float64)
        return np.asarray(np.bincount(post, weights=w, minlength=self.shape[0]), np.float64)


Synapses = Dense | Sparse | Conv


def pool(kind: Literal["sum", "avg"], in_shape: Shape, kernel: Sequence[int],
         stride: Sequence[int] | None = None, padding: Any = 0) -> Conv:
    """Sum or average pooling as a depthwise convolution with a constant kernel.

    Average pooling divides by the kernel area, padding included (PyTorch's default
    ``count_include_pad=True``).
    """
    ins = as_shape(in_shape, "pool", "in_shape")
    nd = len(ins) - 1
    k = _pair(kernel, nd, "pool", "kernel", 1)
    s = _pair(stride if stride is not None else k, nd, "pool", "stride", 1)
    value = 1.0 if kind == "sum" else 1.0 / math.prod(k)
    if kind not in ("sum", "avg"):
        raise ir_error("pool", "kind", f"must be 'sum' or 'avg', got {kind!r}")
    w = np.full((ins[0], 1, *k), value)
    return Conv(w, ins, stride=s, padding=padding, groups=ins[0])
