"""Shared-weight convolution geometry: which (pre, post) pairs a conv connection joins.

Layout convention (C order, channels first, the default ``layout="chw"``): a population
of shape (C, H, W) numbers neuron (c, y, x) as ``c * H * W + y * W + x``; the same holds
for the output (C_out, H_out, W_out). ``layout="xyc"`` (Lava's and netx's order) numbers
it ``(x * H + y) * C + c`` instead, for input and output alike. The kernel has shape
(C_out, C_in / groups, kh, kw) and tap (o, c, ky, kx) is
``kernel.ravel()[((o * C_in/groups + c) * kh + ky) * kw + kx]``.

Output (o, oy, ox) receives, PyTorch cross-correlation style,
``sum_{c, ky, kx} kernel[o, c, ky, kx] * S[g * C_in/groups + c, iy, ix]`` with
``g = o // (C_out / groups)``, ``iy = oy * stride_y - pad_top + ky * dilation_y`` and
``ix = ox * stride_x - pad_left + kx * dilation_x``; taps that fall into the zero padding
are no synapses. Every other tap is a synapse (also when its kernel value is 0): the
chip stores the kernel once and generates each spike's targets from this geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from neurochip.core.errors import NetworkError

__all__ = ["ConvGeometry", "conv_geometry"]


@dataclass(frozen=True)
class ConvGeometry:
    """The shape of a shared-weight 2-D convolution (1-D: H = kh = 1).

    in_shape (C, H, W), out_shape (C_out, H_out, W_out), kernel (kh, kw), stride (sy, sx),
    padding (top, bottom, left, right), dilation (dy, dx), groups."""

    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    layout: str = "chw"

    @property
    def n_pre(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_post(self) -> int:
        return math.prod(self.out_shape)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """(C_out, C_in / groups, kh, kw)."""
        return (self.out_shape[0], self.in_shape[0] // self.groups, *self.kernel)

    @property
    def kernel_size(self) -> int:
        return math.prod(self.kernel_shape)

    @property
    def taps_per_channel(self) -> int:
        """Kernel values one output channel uses: C_in / groups * kh * kw."""
        return self.kernel_size // self.out_shape[0]

    def _pairs(self, axis: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Valid (output position, kernel position, input position) along axis 0 (y) or
        1 (x), ordered by output position, then kernel position."""
        n_in, n_out = self.in_shape[1 + axis], self.out_shape[1 + axis]
        k, s, d = self.kernel[axis], self.stride[axis], self.dilation[axis]
        pad = self.padding[2 * axis]
        o = np.repeat(np.arange(n_out, dtype=np.int64), k)
        kk = np.tile(np.arange(k, dtype=np.int64), n_out)
        i = o * s - pad + kk * d
        ok = (i >= 0) & (i < n_in)
        return o[ok], kk[ok], i[ok]

    @property
    def n_synapses(self) -> int:
        """Synapses of the expanded form (taps that fall inside the input)."""
        ny = self._pairs(0)[0].size
        nx = self._pairs(1)[0].size
        return self.out_shape[0] * (self.in_shape[0] // self.groups) * ny * nx

    def synapses(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(post, pre, kernel index) of every synapse, ordered by post, then by tap."""
        C, H, W = self.in_shape
        Co, Ho, Wo = self.out_shape
        cg = C // self.groups
        kh, kw = self.kernel
        oy, ky, iy = self._pairs(0)
        ox, kx, ix = self._pairs(1)
        # spatial part: (y pair, x pair) outer product, ordered by (oy, ox) then (ky, kx)
        sp_post = (oy[:, None] * Wo + ox[None, :])
        sp_pre = (iy[:, None] * W + ix[None, :])
        sp_k = (ky[:, None] * kw + kx[None, :])
        order = np.lexsort((sp_k.ravel(), sp_post.ravel()))
        sp_post, sp_pre, sp_k = sp_post.ravel()[order], sp_pre.ravel()[order], sp_k.ravel()[order]
        o = np.arange(Co, dtype=np.int64)
        c = np.arange(cg, dtype=np.int64)
        g = o // (Co // self.groups)
        # order: o, spatial post, c, spatial tap -> sorted by post, then tap
        P = sp_post.size
        post = np.broadcast_to(o[:, None, None] * (Ho * Wo) + sp_post[None, :, None],
                               (Co, P, cg))
        pre = ((g[:, None, None] * cg + c[None, None, :]) * (H * W)
               + sp_pre[None, :, None])
        kidx = ((o[:, None, None] * cg + c[None, None, :]) * (kh * kw)
                + sp_k[None, :, None])
        post_f = post.reshape(-1).copy()
        pre_f = np.broadcast_to(pre, (Co, P, cg)).reshape(-1).copy()
        kidx_f = np.broadcast_to(kidx, (Co, P, cg)).reshape(-1).copy()
        if self.layout == "xyc":  # renumber the neurons, keep the order by post
            post_f = _xyc_of_chw(self.out_shape)[post_f]
            pre_f = _xyc_of_chw(self.in_shape)[pre_f]
            order = np.argsort(post_f, kind="stable")
            post_f, pre_f, kidx_f = post_f[order], pre_f[order], kidx_f[order]
        return post_f, pre_f, kidx_f

    def channel_of_post(self) -> NDArray[np.int64]:
        """Output channel of every post neuron (in the layout's numbering)."""
        co, ho, wo = self.out_shape
        ch = np.arange(co * ho * wo, dtype=np.int64) // (ho * wo)
        if self.layout == "xyc":
            out = np.empty_like(ch)
            out[_xyc_of_chw(self.out_shape)] = ch
            return out
        return ch

    def expand(self, kernel: NDArray[Any]) -> sp.csr_matrix:
        """The (post, pre) CSR matrix of the expanded synapses (explicit zeros kept)."""
        post, pre, kidx = self.synapses()
        vals = np.asarray(kernel, np.int64).reshape(-1)[kidx]
        m = sp.csr_matrix((vals, (post, pre)), shape=(self.n_post, self.n_pre))
        m.has_sorted_indices = False
        m.sort_indices()
        return m

    def pre_major(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """(pre, post, kernel index) of every synapse in storage order: by pre, then post
        (the order of a sparse connection's fan-out lists)."""
        post, pre, kidx = self.synapses()
        order = np.lexsort((post, pre))
        return pre[order], post[order], kidx[order]

    def to_dict(self) -> dict[str, Any]:
        return {"in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
                "kernel": list(self.kernel), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation),
                "groups": self.groups, "layout": self.layout}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ConvGeometry:
        """The geometry an image records, rebuilt and re-checked (typed errors)."""
        if not isinstance(d, dict) or set(d) != {"in_shape", "out_shape", "kernel", "stride",
                                                 "padding", "dilation", "groups", "layout"}:
            raise NetworkError("conv geometry must hold in_shape, out_shape, kernel, stride, "
                               "padding, dilation, groups and layout", where=where,
                               field="conv")
        ins = _ints(d["in_shape"], 3, where, "conv.in_shape", 1)
        outs = _ints(d["out_shape"], 3, where, "conv.out_shape", 1)
        (groups,) = _ints(d["groups"], 1, where, "conv.groups", 1)
        kern = _ints(d["kernel"], 2, where, "conv.kernel", 1)
        g = conv_geometry(ins, (outs[0], ins[0] // groups, *kern), stride=d["stride"],
                          padding=d["padding"], dilation=d["dilation"], groups=groups,
                          layout=d["layout"], where=where)
        if list(g.out_shape) != list(d["out_shape"]):
            raise NetworkError(f"out_shape {d['out_shape']} does not follow from the geometry "
                               f"(it gives {list(g.out_shape)})", where=where,
                               field="conv.out_shape")
        return g


def _ints(v: Any, n: int, where: str, fld: str, lo: int) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v, dtype=object)).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, n)
    if a.size != n:
        raise NetworkError(f"must be an int or {n} ints, got {v!r}", where=where, field=fld)
    out = []
    for x in a:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise NetworkError(f"must hold integers, got {v!r}", where=where, field=fld)
        if int(x) < lo:
            raise NetworkError(f"must be >= {lo}, got {v!r}", where=where, field=fld,
                               value=int(x), limit=lo)
        out.append(int(x))
    return tuple(out)


def _xyc_of_chw(shape: tuple[int, int, int]) -> NDArray[np.int64]:
    """Index in the (x, y, c) C-order numbering of each neuron in (c, y, x) order."""
    C, H, W = shape
    return np.arange(C * H * W, dtype=np.int64).reshape(W, H, C).transpose(2, 1, 0).reshape(-1)


def conv_geometry(in_shape: Any, kernel_shape: Any, *, stride: Any = 1, padding: Any = 0,
                  dilation: Any = 1, groups: Any = 1, layout: Any = "chw",
                  where: str = "conv") -> ConvGeometry:
    """Check a convolution's parameters and derive its output shape.

    in_shape (C, H, W); kernel_shape (C_out, C_in / groups, kh, kw); stride and dilation an
    int or (y, x); padding an int, (y, x) or (top, bottom, left, right); layout "chw"
    (neuron (c, y, x) is ``(c * H + y) * W + x``, the default) or "xyc" (``(x * H + y) *
    C + c``, the order of Lava and netx)."""
    if layout not in ("chw", "xyc"):
        raise NetworkError(f"must be 'chw' or 'xyc', got {layout!r}", where=where,
                           field="layout")
    ins = _ints(in_shape, 3, where, "in_shape", 1) if np.size(in_shape) == 3 else None
    if ins is None:
        raise NetworkError(f"must be (C, H, W), got {in_shape!r}", where=where,
                           field="in_shape")
    if np.size(kernel_shape) != 4:
        raise NetworkError(f"kernel must be 4-D (C_out, C_in/groups, kh, kw), got shape "
                           f"{tuple(kernel_shape)}", where=where, field="kernel")
    ks = _ints(kernel_shape, 4, where, "kernel", 1)
    st = _ints(stride, 2, where, "stride", 1)
    dil = _ints(dilation, 2, where, "dilation", 1)
    pz = np.size(padding)
    if pz == 2:
        py, px = _ints(padding, 2, where, "padding", 0)
        pad = (py, py, px, px)
    else:
        pad = _ints(padding, 4, where, "padding", 0)  # type: ignore[assignment]
    (g,) = _ints(groups, 1, where, "groups", 1)
    C, H, W = ins
    co, cg, kh, kw = ks
    if C % g or co % g:
        raise NetworkError(f"groups={g} must divide C_in={C} and C_out={co}", where=where,
                           field="groups", value=g)
    if cg != C // g:
        raise NetworkError(f"kernel has {cg} input channels per group; C_in / groups = "
                           f"{C // g}", where=where, field="kernel", value=cg, limit=C // g)
    ho = (H + pad[0] + pad[1] - dil[0] * (kh - 1) - 1) // st[0] + 1
    wo = (W + pad[2] + pad[3] - dil[1] * (kw - 1) - 1) // st[1] + 1
    if ho <= 0 or wo <= 0:
        raise NetworkError(f"input {ins} is too small for the {kh}x{kw} kernel (dilation "
                           f"{dil}, padding {pad}): the output would be {ho}x{wo}",
                           where=where, field="in_shape")
    return ConvGeometry(ins, (co, ho, wo), (kh, kw), st, pad, dil, g,  # type: ignore[arg-type]
                        str(layout))
