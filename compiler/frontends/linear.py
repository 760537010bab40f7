"""Linear nodes between spiking populations, composed into one projection per path.

Shared by the frontends (no format package is imported here). A path from a spike
source to a population is a sequence of :class:`LinearOp`: weight layers ("mix": dense,
sparse or convolution), elementwise scales, pure reshapes ("wire") and delays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.ir import Dense, Sparse, Synapses
from compiler.passes.normalize import scale_rows
from neurochip.core.errors import ModelImportError

__all__ = ["LinearOp", "apply_op", "check_finite", "compose"]


@dataclass
class LinearOp:
    """One linear step; ``bias`` (mix ops) is added at the op's output."""

    kind: Literal["mix", "scale", "wire", "delay"]
    syn: Synapses | None = None
    scale: NDArray[np.float64] | None = None
    delay: NDArray[np.int64] | None = None
    bias: NDArray[np.float64] | None = None  # added at the op's output


def check_finite(a: NDArray[Any], where: str, fld: str) -> None:
    if not np.all(np.isfinite(a)):
        raise ModelImportError(f"{fld} holds non-finite values", where=where, field=fld)


def compose(path: list[str], seq: list[LinearOp], n_pre: int
            ) -> tuple[Synapses, int, NDArray[np.int64] | None, NDArray[np.int64] | None]:
    """One projection for a path: (synapses, delay, delay_pre, delay_post).

    ``path`` names the ops of ``seq`` (for errors). Uniform delays become one scalar
    delay; per-element delays before the first weight layer become per-presynaptic
    delays, after the last one per-postsynaptic delays (between two weight layers they
    cannot be expressed).
    """
    mixes = [i for i, o in enumerate(seq) if o.kind == "mix"]
    first = mixes[0] if mixes else len(seq)
    last = mixes[-1] if mixes else -1
    scalar = 0
    d_pre = np.zeros(n_pre, np.int64)
    d_post: NDArray[np.int64] | None = None
    for i, o in enumerate(seq):
        if o.kind != "delay":
            continue
        assert o.delay is not None
        if np.all(o.delay == o.delay[0]):
            scalar += int(o.delay[0])
        elif i < first:
            d_pre = d_pre + o.delay
        elif i > last:
            d_post = o.delay if d_post is None else d_post + o.delay
        else:
            raise ModelImportError("per-element delays between two weight layers cannot be "
                                   "expressed as synaptic delays", where=f"node '{path[i]}'",
                                   field="delay")
    if not mixes:
        s = np.ones(n_pre)
        for o in seq:
            if o.kind == "scale":
                assert o.scale is not None
                s = s * o.scale
        syn: Synapses = Sparse(sp.diags(s, format="csr"))
    elif len(mixes) == 1:
        col = np.ones(n_pre)
        for o in seq[:first]:
            if o.kind == "scale":
                assert o.scale is not None
                col = col * o.scale
        m = seq[first].syn
        assert m is not None
        row = np.ones(m.shape[0])
        for o in seq[first + 1:]:
            if o.kind == "scale":
                assert o.scale is not None
                row = row * o.scale
        syn = m
        if not np.all(col == 1):
            if np.all(col == col[0]):
                syn = syn.with_values(np.asarray(syn.values, np.float64) * col[0])
            elif isinstance(syn, Dense):
                syn = Dense(np.asarray(syn.weight, np.float64) * col[None, :])
            else:
                syn = Sparse(sp.csr_matrix(syn.to_csr(), dtype=np.float64) @ sp.diags(col))
        if not np.all(row == 1):
            syn = scale_rows(syn, row)
    else:
        M: sp.csr_matrix = sp.identity(n_pre, format="csr", dtype=np.float64)
        for o in seq:
            if o.kind == "mix":
                assert o.syn is not None
                M = sp.csr_matrix(o.syn.to_csr(), dtype=np.float64) @ M
            elif o.kind == "scale":
                assert o.scale is not None
                M = sp.diags(o.scale) @ M
        syn = Sparse(sp.csr_matrix(M))
    dpre = d_pre if np.any(d_pre) else None
    return syn, scalar, dpre, d_post


def apply_op(o: LinearOp, b: NDArray[np.float64]) -> NDArray[np.float64]:
    if o.kind == "mix":
        assert o.syn is not None
        return np.asarray(o.syn.to_csr() @ b, np.float64) if not isinstance(o.syn, Dense) \
            else np.asarray(o.syn.weight, np.float64) @ b
    if o.kind == "scale":
        assert o.scale is not None
        return b * o.scale
    return b
