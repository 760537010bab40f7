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

The kernel is decoded once, when the tables are built (the connection's decode rule and
shift, as int32 words: the int32 datapath wraps the same either way), and held as (group,
c, ky, kx, o within the group), so that one tap's words for every output channel are
consecutive. A spike's (c, y, x) and the valid taps of its row and column are read from
tables built with the connection (``emulator.tables.conv_taps``); then, per tap, the "xyc"
layout adds those words into consecutive targets (a loop of vector adds), and "chw" into
a position-major scratch or, for few adds, straight into targets one output plane apart."""

from __future__ import annotations

import numpy as np
from numba import njit

from emulator.tables import (
    G_C,
    G_CO,
    G_DX,
    G_GROUPS,
    G_HO,
    G_KH,
    G_KOFF,
    G_KW,
    G_POS,
    G_WO,
    G_XTAP,
    G_XYC,
    G_YTAP,
    POS_BITS,
)

__all__ = ["conv_parts", "conv_rows"]

@njit(cache=True)
def conv_rows(rows, geo, kw32, taps, seg, lo, hi):
    """seg += the synapses of the spiking inputs ``rows`` of one conv connection (geo: its
    geometry row; kw32: the decoded, transposed kernel words, taps: the tap tables of every
    conv connection) whose targets lie in the part [lo, hi) of the output: output columns
    for the "xyc" layout, output channels for "chw" (:func:`conv_parts`). Parts that do not
    overlap write different words, so threads may add them at once."""
    if geo[G_XYC] != 0:
        _conv_xyc(rows, geo, kw32, taps, seg, lo, hi)
    else:
        _conv_chw(rows, geo, kw32, taps, seg, lo, hi)


@njit(cache=True, inline="always")
def conv_parts(geo):
    """The extent that :func:`conv_rows` parts split: output columns ("xyc") or output
    channels ("chw")."""
    return geo[G_WO] if geo[G_XYC] != 0 else geo[G_CO]


@njit(cache=True, inline="always")
def _position(taps, pos0, j):
    """Input neuron j's (c, y, x), from the packed positions at pos0 in taps (divisions by
    the map's sides, three a spike, cost more than the adds of a small kernel)."""
    p = taps[pos0 + j]
    m = (np.int64(1) << POS_BITS) - 1
    return p >> (2 * POS_BITS), (p >> POS_BITS) & m, p & m


#: positions per block of the scratch's way back to channel-major order
_BLOCK = 64


@njit(cache=True, inline="always")
def _add_run(dst, d0, src, s0, n):
    """dst[d0:d0 + n] += src[s0:s0 + n], the offsets unsigned (no negative-index
    wraparound to test: the loop vectorises without it)."""
    for i in range(n):
        dst[d0 + i] += src[s0 + i]


@njit(cache=True)
def _conv_xyc(rows, geo, kw32, taps, seg, lo, hi):
    """conv_rows for the "xyc" layout (neuron = (x * H + y) * C + c); [lo, hi): output
    columns."""
    C = geo[G_C]
    Co, Ho = geo[G_CO], geo[G_HO]
    kh, kw = geo[G_KH], geo[G_KW]
    koff = geo[G_KOFF]
    cg = C // geo[G_GROUPS]
    cog = Co // geo[G_GROUPS]
    yrow, xrow = 1 + 2 * kh, 1 + 2 * kw
    ytab, xtab, pos0 = geo[G_YTAP], geo[G_XTAP], geo[G_POS]
    ucog = np.uint64(cog)
    for q in range(rows.shape[0]):
        c, y, x = _position(taps, pos0, np.int64(rows[q]))
        xt = xtab + x * xrow
        nx_ = taps[xt]
        # the taps' output columns fall as the kernel offset grows: the first is the largest
        if nx_ == 0 or taps[xt + 1] < lo or taps[xt + nx_] >= hi:
            continue  # none of them inside the part
        yt = ytab + y * yrow
        ny_ = taps[yt]
        o0 = (c // cg) * cog if cog < Co else 0  # one group: no division
        kbase = koff + c * kh * kw * cog  # (group * cg + c mod cg) = c
        for a in range(ny_):
            oy = taps[yt + 1 + a]
            ky = taps[yt + 1 + kh + a]
            for b in range(nx_):
                ox = taps[xt + 1 + b]
                if ox < lo or ox >= hi:
                    continue
                t0 = np.uint64((ox * Ho + oy) * Co + o0)
                k0 = np.uint64(kbase + (ky * kw + taps[xt + 1 + kw + b]) * cog)
                _add_run(seg, t0, kw32, k0, ucog)


@njit(cache=True)
def _conv_chw(rows, geo, kw32, taps, seg, lo, hi):
    """conv_rows for the "chw" layout (neuron = (c * H + y) * W + x); [lo, hi): output
    channels. A tap's targets lie one output plane apart (for planes of a power-of-two
    size, words that share cache sets); unless the spikes bring few adds they are summed
    first in a scratch of the part's outputs held position-major (where a tap's targets
    are consecutive, as for "xyc"), which is then added into seg."""
    C = geo[G_C]
    Co, Ho, Wo = geo[G_CO], geo[G_HO], geo[G_WO]
    kh, kw = geo[G_KH], geo[G_KW]
    koff = geo[G_KOFF]
    cg = C // geo[G_GROUPS]
    cog = Co // geo[G_GROUPS]
    plane = Ho * Wo
    width = hi - lo
    yrow, xrow = 1 + 2 * kh, 1 + 2 * kw
    ytab, xtab, pos0 = geo[G_YTAP], geo[G_XTAP], geo[G_POS]
    # position-major scratch unless its words outnumber the adds 8 to 1
    pm = rows.shape[0] * kh * kw * min(cog, width) * 8 >= width * plane
    tmp = np.zeros(width * plane if pm else 0, np.int32)
    uplane = np.uint64(plane)
    # a part of whole groups' width in the scratch, columns undilated: runs of taps
    run = pm and width == cog and geo[G_DX] == 1
    for q in range(rows.shape[0]):
        c, y, x = _position(taps, pos0, np.int64(rows[q]))
        o0 = (c // cg) * cog if cog < Co else 0  # one group: no division
        l0 = max(lo - o0, 0)  # the group's output channels inside the part
        l1 = min(hi - o0, cog)
        if l1 <= l0:
            continue
        n = l1 - l0
        un = np.uint64(n)
        yt = ytab + y * yrow
        xt = xtab + x * xrow
        kbase = koff + c * kh * kw * cog + l0
        nxv = taps[xt]
        if run and n == cog and nxv > 0:
            # a row's taps are one run of words, in the scratch and in the kernel
            # (emulator.tables.tap_order): from the tap with the lowest output column
            ox = taps[xt + nxv]
            kx = taps[xt + kw + nxv]
            urun = np.uint64(nxv) * un
            for a in range(taps[yt]):
                oy = taps[yt + 1 + a]
                ky = taps[yt + 1 + kh + a]
                _add_run(tmp, np.uint64((oy * Wo + ox) * width), kw32,
                         np.uint64(kbase + (ky * kw + kx) * cog), urun)
            continue
        for a in range(taps[yt]):
            oy = taps[yt + 1 + a]
            ky = taps[yt + 1 + kh + a]
            for b in range(nxv):
                ox = taps[xt + 1 + b]
                k0 = np.uint64(kbase + (ky * kw + taps[xt + 1 + kw + b]) * cog)
                if pm:
                    _add_run(tmp, np.uint64((oy * Wo + ox) * width + o0 + l0 - lo), kw32, k0,
                             un)
                else:
                    t0 = np.uint64((o0 + l0) * plane + oy * Wo + ox)
                    for ol in range(un):
                        seg[t0 + ol * uplane] += kw32[k0 + ol]
    if pm:
        # back to channel-major, in blocks of positions whose scratch words stay cached
        uw = np.uint64(width)
        for b0 in range(0, plane, _BLOCK):
            nb = np.uint64(min(_BLOCK, plane - b0))
            for o in range(width):
                d0 = np.uint64((lo + o) * plane + b0)
                s0 = np.uint64(b0 * width + o)
                for p_ in range(nb):
                    seg[d0 + p_] += tmp[s0 + p_ * uw]
