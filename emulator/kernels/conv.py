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

The kernel bytes are held transposed, (group, c, ky, kx, o within the group), so the
innermost loop over output channels reads consecutive bytes.
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
    ch_stride = np.int64(1) if xyc else Ho * Wo  # target step from one channel to the next
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
        kbase = koff + (g * cg + cl) * kh * kw * cog
        for ky in range(kh):
            ny = y + pt - ky * dy
            if ny < 0 or ny % sy != 0:
                continue
            oy = ny // sy
            if oy >= Ho:
                continue
            for kx in range(kw):
                nx = x + pl - kx * dx
                if nx < 0 or nx % sx != 0:
                    continue
                ox = nx // sx
                if ox >= Wo:
                    continue
                o0 = g * cog
                t0 = (ox * Ho + oy) * Co + o0 if xyc else (o0 * Ho + oy) * Wo + ox
                kb0 = kbase + (ky * kw + kx) * cog
                for ol in range(cog):
                    seg[t0 + ol * ch_stride] += decode_weight(kb[kb0 + ol], wmode, lsh)
