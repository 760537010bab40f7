"""Shared-weight convolution kernel: each spike's targets generated from kernel + geometry.

A conv connection (``ConnKind.CONV``) keeps its kernel once, as the image stores it (one
weight byte per kernel value), and its geometry as one row of ``Synapses.cgeo`` (columns
``emulator.tables.G_*``; ``Connections.soff`` holds the row). For a spiking input (c, y, x) the
kernel visits every tap (ky, kx) whose output position (oy, ox) = ((y + pad_top - ky *
dy) / sy, (x + pad_left - kx * dx) / sx) is whole and inside the output, and adds, for
every output channel o of c's group, the decoded weight of tap (o, c mod C_in/groups, ky,
kx) into target o at (oy, ox). These are exactly the synapses of the expanded form
(:meth:`neurochip.core.conv.ConvGeometry.synapses`), and integer sums do not depend on
the order, so the result equals the sparse lists' bit for bit.

The valid taps of a spike are found once (rows, then columns); for the "chw" layout the
kernel bytes keep the image's order (o, c, ky, kx) and each output channel's window is
added in turn; for "xyc" they are held as (group, c, ky, kx, o within the group), so the
innermost loop over output channels reads and writes consecutive words.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from emulator.kernels.weights import decode_weight
from emulator.tables import (
    G_C,
    G_CO,
    G_DX,
    G_DY,
    G_GROUPS,
    G_H,
    G_HO,
    G_KH,
    G_KOFF,
    G_KW,
    G_PL,
    G_PT,
    G_SX,
    G_SY,
    G_W,
    G_WO,
    G_XYC,
)

__all__ = ["conv_rows"]

@njit(cache=True)
def conv_rows(rows, geo, kb, wmode, lsh, seg):
    """seg += the synapses of the spiking inputs ``rows`` of one conv connection (geo: its
    geometry row; kb: the transposed kernel bytes of every conv connection)."""
    C, H, W = geo[G_C], geo[G_H], geo[G_W]
    Co, Ho, Wo = geo[G_CO], geo[G_HO], geo[G_WO]
    kh, kw = geo[G_KH], geo[G_KW]
    sy, sx, pt, pl, dy, dx = geo[G_SY], geo[G_SX], geo[G_PT], geo[G_PL], geo[G_DY], geo[G_DX]
    groups = geo[G_GROUPS]
    xyc = geo[G_XYC] != 0
    koff = geo[G_KOFF]
    cg = C // groups
    cog = Co // groups
    oys = np.empty(kh, np.int64)  # valid taps of this spike: output row and kernel row
    kys = np.empty(kh, np.int64)
    oxs = np.empty(kw, np.int64)
    kxs = np.empty(kw, np.int64)
    for q in range(rows.shape[0]):
        j = np.int64(rows[q])
        if xyc:
            c = j % C
            t = j // C
            y = t % H
            x = t // H
        else:
            x = j % W
            t = j // W
            y = t % H
            c = t // H
        g = c // cg
        cl = c - g * cg
        ny_ = 0
        for ky in range(kh):
            ny = y + pt - ky * dy
            if ny >= 0 and ny % sy == 0 and ny // sy < Ho:
                oys[ny_] = ny // sy
                kys[ny_] = ky
                ny_ += 1
        nx_ = 0
        for kx in range(kw):
            nx = x + pl - kx * dx
            if nx >= 0 and nx % sx == 0 and nx // sx < Wo:
                oxs[nx_] = nx // sx
                kxs[nx_] = kx
                nx_ += 1
        if ny_ == 0 or nx_ == 0:
            continue
        o0 = g * cog
        if xyc:  # kernel bytes (g, c, ky, kx, o): the output channels are consecutive
            kbase = koff + (g * cg + cl) * kh * kw * cog
            for a in range(ny_):
                for b in range(nx_):
                    t0 = (oxs[b] * Ho + oys[a]) * Co + o0
                    kb0 = kbase + (kys[a] * kw + kxs[b]) * cog
                    for ol in range(cog):
                        seg[t0 + ol] += decode_weight(kb[kb0 + ol], wmode, lsh)
        else:  # kernel bytes (o, c, ky, kx): one output channel's window at a time
            for o in range(o0, o0 + cog):
                kb0 = koff + (o * cg + cl) * kh * kw
                s0 = o * Ho * Wo
                for a in range(ny_):
                    r0 = s0 + oys[a] * Wo
                    k0 = kb0 + kys[a] * kw
                    for b in range(nx_):
                        seg[r0 + oxs[b]] += decode_weight(kb[k0 + kxs[b]], wmode, lsh)
