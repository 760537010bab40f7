"""Synapse kernels: the spiking rows of each connection added into the delay ring.

A connection with a negative weight exponent sums into its scratch bins first and floors
the *sum* at the end of the step (Lava's Dense). A connection whose presynaptic spikes
are graded adds weight x payload (:func:`_graded_rows`, in Lava's int32 datapath); the
binary connections never pass through it. Every weight is decoded by the rule of
``emulator.kernels.weights`` (raw byte, then scale); the loops are specialised per decode
mode so that LLVM vectorises each one with a constant mode.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from emulator.kernels.conv import conv_parts, conv_rows
from emulator.kernels.intrinsics import prefetch, prefetch_range
from emulator.kernels.weights import decode_weight, scale_weight
from emulator.tables import ConnKind
from neurochip.core.fixedpoint import WeightDecode

SIGNED = WeightDecode.SIGNED
UNSIGNED = WeightDecode.UNSIGNED
NEGATED = WeightDecode.NEGATED
DENSE = ConnKind.DENSE
SPARSE = ConnKind.SPARSE
SPARSE_WIDE = ConnKind.SPARSE_WIDE
CONV = ConnKind.CONV
_I32 = np.int32
_ONE = np.int32(1)
_ZERO = np.int32(0)

# Rows ahead whose synapse lists are prefetched: a spiking neuron's list sits anywhere in
# synapse memory, so without it every row starts with a cache miss.
_PREFETCH_ROWS = 4


@njit(cache=True, inline="always")
def _add_row(seg, row_s, row_u, wmode, lsh):
    """seg += decoded weight row (row_s / row_u: the row's bytes as int8 / uint8). Small
    loops over slices so LLVM vectorises them."""
    n = seg.shape[0]
    if wmode == SIGNED:
        if lsh == 1:  # 8-bit mixed weights, the common case: a constant shift
            for i in range(n):
                seg[i] += scale_weight(_I32(row_s[i]), SIGNED, _ONE)
        else:
            for i in range(n):
                seg[i] += scale_weight(_I32(row_s[i]), SIGNED, lsh)
    elif wmode == UNSIGNED:
        if lsh == 0:
            for i in range(n):
                seg[i] += scale_weight(_I32(row_u[i]), UNSIGNED, _ZERO)
        else:
            for i in range(n):
                seg[i] += scale_weight(_I32(row_u[i]), UNSIGNED, lsh)
    else:
        if lsh == 0:
            for i in range(n):
                seg[i] += scale_weight(_I32(row_u[i]), NEGATED, _ZERO)
        else:
            for i in range(n):
                seg[i] += scale_weight(_I32(row_u[i]), NEGATED, lsh)


@njit(cache=True, inline="always")
def _sum_rows16(rows, c0, c1, w, base0, stride, a):
    """a (int16) += the byte rows rows[c0:c1] (row r: w[base0 + r * stride:][:len(a)]),
    four at a time: the accumulator is read and written once per four rows (its traffic,
    not the adds, bounds this loop)."""
    width = a.shape[0]
    q = c0
    while q + 3 < c1:
        b1 = base0 + rows[q] * stride
        b2 = base0 + rows[q + 1] * stride
        b3 = base0 + rows[q + 2] * stride
        b4 = base0 + rows[q + 3] * stride
        r1 = w[b1: b1 + width]
        r2 = w[b2: b2 + width]
        r3 = w[b3: b3 + width]
        r4 = w[b4: b4 + width]
        for i in range(width):
            a[i] += (np.int16(r1[i]) + np.int16(r2[i])) + (np.int16(r3[i]) + np.int16(r4[i]))
        q += 4
    while q < c1:
        b1 = base0 + rows[q] * stride
        r1 = w[b1: b1 + width]
        for i in range(width):
            a[i] += np.int16(r1[i])
        q += 1


@njit(cache=True)
def _dense_rows(rows, w_s, w_u, base0, stride, wmode, lsh, seg, acc16):
    """seg += the weight rows of the spiking presynaptic neurons (one target segment; row
    r starts at base0 + r * stride and is as wide as seg).

    Rows are first summed as raw bytes into 16-bit lanes (twice the SIMD width of 32-bit
    ones), 128 rows at a time so the sum cannot overflow (128 * 255 < 2^15), then scaled
    and added to the 32-bit segment. Integer sums are exact, so this equals adding the
    decoded rows one by one. w_s / w_u: the dense weight bytes as int8 / uint8 (the
    arrays, not the Synapses record: a call increfs every array of a record it is given).
    """
    nr = rows.shape[0]
    width = seg.shape[0]
    if nr == 1:
        base = base0 + rows[0] * stride
        _add_row(seg, w_s[base: base + width], w_u[base: base + width], wmode, lsh)
        return
    a = acc16[:width]
    for c0 in range(0, nr, 128):
        c1 = min(c0 + 128, nr)
        if wmode == SIGNED:
            _sum_rows16(rows, c0, c1, w_s, base0, stride, a)
        else:
            _sum_rows16(rows, c0, c1, w_u, base0, stride, a)
        if wmode == NEGATED:
            for i in range(width):
                seg[i] += scale_weight(_I32(a[i]), NEGATED, lsh)
                a[i] = 0
        else:
            for i in range(width):
                seg[i] += scale_weight(_I32(a[i]), UNSIGNED, lsh)
                a[i] = 0


@njit(cache=True)
def _dense_rows_delayed(rows, c, conns, syn, dst0, D, N, buf, to_scratch):
    """Per-synapse delays: each weight of dense connection c lands in the slot of its own
    delay (buf: the ring, or the scratch with to_scratch)."""
    npost = conns.npost[c]
    post0 = conns.post0[c]
    wmode = conns.wmode[c]
    lsh = conns.lsh[c]
    boff = conns.scoff[c]
    w_u = syn.dw[conns.woff[c]:]
    dly = syn.dd[conns.doff[c]:]
    for q in range(rows.shape[0]):
        base = rows[q] * npost
        for i in range(npost):
            w = decode_weight(w_u[base + i], wmode, lsh)
            d = np.int64(dly[base + i])
            if to_scratch:
                buf[boff + d * npost + i] += w
            else:
                buf[((dst0 + d) % D) * N + post0 + i] += w


@njit(cache=True)
def _sparse_rows_fast(rows, syn, p0, wmode, lsh, seg):
    """Narrow sparse lists, one delay, into one target segment (the common case).

    Per row, slices of its offsets and weights and of the target window starting at the
    row's base: the scatter loop then runs over unsigned offsets from fixed pointers.
    Prefetched in two stages, so that no prefetch waits for a miss of its own: the rows'
    entries (first synapse, base) 2 x _PREFETCH_ROWS ahead, then the row's offsets and
    weights _PREFETCH_ROWS ahead (measured on 10^6 rows of 100 synapses at 5 % activity:
    0.57 G events/s on one thread against 0.46 with one stage; prefetching the target
    windows' lines too cost more than it saved).
    """
    sptr, soff, sw, sbase = syn.sptr, syn.soff, syn.sw, syn.sbase
    nr = rows.shape[0]
    far = 2 * _PREFETCH_ROWS
    for q in range(min(far, nr)):
        _prefetch_entry(sptr, sbase, p0 + rows[q])
    for q in range(min(_PREFETCH_ROWS, nr)):
        _prefetch_row(sptr, soff, sw, p0 + rows[q])
    for q in range(nr):
        if q + far < nr:
            _prefetch_entry(sptr, sbase, p0 + rows[q + far])
        if q + _PREFETCH_ROWS < nr:
            _prefetch_row(sptr, soff, sw, p0 + rows[q + _PREFETCH_ROWS])
        p = p0 + rows[q]
        k0 = sptr[p]
        n = sptr[p + 1] - k0
        _scatter_row(seg[np.uint64(sbase[p]):], soff[k0: k0 + n], sw, k0, n, wmode, lsh)


@njit(cache=True, inline="always")
def _prefetch_entry(sptr, sbase, p):
    """Bring sparse row p's entries (first synapse, target base) into the cache."""
    prefetch(sptr, p)
    prefetch(sbase, p)


@njit(cache=True, inline="always")
def _prefetch_row(sptr, soff, sw, p):
    """Bring sparse row p's offsets and weights into the cache."""
    prefetch_range(soff, sptr[p], sptr[p + 1], 32)
    prefetch_range(sw, sptr[p], sptr[p + 1], 64)


@njit(cache=True, inline="always")
def _scatter_row(win, off, sw, k0, n, wmode, lsh):
    """win[off[k]] += the decoded weight sw[k0 + k], k < n (one narrow sparse row)."""
    if wmode == SIGNED:
        w8 = sw.view(np.int8)[k0: k0 + n]
        if lsh == 1:
            for k in range(n):
                win[np.uint64(off[k])] += scale_weight(_I32(w8[k]), SIGNED, _ONE)
        else:
            for k in range(n):
                win[np.uint64(off[k])] += scale_weight(_I32(w8[k]), SIGNED, lsh)
    else:
        wu = sw[k0: k0 + n]
        if wmode == UNSIGNED:
            for k in range(n):
                win[np.uint64(off[k])] += scale_weight(_I32(wu[k]), UNSIGNED, lsh)
        else:
            for k in range(n):
                win[np.uint64(off[k])] += scale_weight(_I32(wu[k]), NEGATED, lsh)


@njit(cache=True)
def _sparse_rows_part(rows, syn, p0, wmode, lsh, seg, x0, x1):
    """_sparse_rows_fast restricted to the targets x0 <= i < x1 of seg: rows whose targets
    all lie there are added whole, rows that straddle a bound synapse by synapse, the
    others skipped. Threads given disjoint ranges never write the same word."""
    sptr, sbase, send, soff, sw = syn.sptr, syn.sbase, syn.send, syn.soff, syn.sw
    nr = rows.shape[0]
    far = 2 * _PREFETCH_ROWS
    for q in range(min(far, nr)):
        _prefetch_entry(sptr, sbase, p0 + rows[q])
        prefetch(send, p0 + rows[q])
    for q in range(nr):
        if q + far < nr:  # two stages, as in _sparse_rows_fast
            _prefetch_entry(sptr, sbase, p0 + rows[q + far])
            prefetch(send, p0 + rows[q + far])
        if q + _PREFETCH_ROWS < nr:
            p = p0 + rows[q + _PREFETCH_ROWS]
            if sbase[p] < x1 and send[p] > x0:
                _prefetch_row(sptr, soff, sw, p)
        p = p0 + rows[q]
        lo = np.int64(sbase[p])
        hi = np.int64(send[p])
        if hi <= x0 or lo >= x1:
            continue
        k0 = sptr[p]
        n = sptr[p + 1] - k0
        off = soff[k0: k0 + n]
        if lo >= x0 and hi <= x1:
            _scatter_row(seg[np.uint64(lo):], off, sw, k0, n, wmode, lsh)
        else:
            for k in range(n):
                i = lo + np.int64(off[k])
                if x0 <= i < x1:
                    seg[i] += np.int32(decode_weight(sw[k0 + k], wmode, lsh))


@njit(cache=True)
def _sparse_rows(rows, c, conns, syn, dst0, D, N, buf, to_scratch):
    """Sparse fan-out lists of connection c in general (wide rows, per-synapse delays):
    per row a base index; per synapse an offset (or a full index) and a weight byte."""
    sptr, sbase, soff, swide, sw, sd = syn.sptr, syn.sbase, syn.soff, syn.swide, syn.sw, \
        syn.sd
    p0 = conns.soff[c]
    wide = conns.kind[c] == SPARSE_WIDE
    hasd = conns.hasd[c] != 0
    delay = conns.delay[c]
    wmode = conns.wmode[c]
    lsh = conns.lsh[c]
    post0 = conns.post0[c]
    boff = conns.scoff[c]
    nbin_stride = conns.npost[c]
    for q in range(rows.shape[0]):
        p = p0 + rows[q]
        base = np.int64(sbase[p])
        for k in range(sptr[p], sptr[p + 1]):
            i = np.int64(swide[k]) if wide else base + np.int64(soff[k])
            w = decode_weight(sw[k], wmode, lsh)
            d = np.int64(sd[k]) if hasd else np.int64(delay)
            if to_scratch:
                bn = d if hasd else np.int64(0)
                buf[boff + bn * nbin_stride + i] += w
            else:
                buf[((dst0 + d) % D) * N + post0 + i] += w


@njit(cache=True)
def _graded_rows(rows, c, net, pay, dst0, N, buf, to_scratch):
    """Graded spikes through connection c (dense or sparse, with or without per-synapse
    delays): each synapse adds its decoded weight times the payload of its presynaptic
    source (pay, per row), wrapping in 32 bits as Lava's int32 dot product does; into the
    ring (N neurons per slot) or, with to_scratch, the connection's scratch bins."""
    conns, syn = net.conns, net.syn
    D = net.ring_slots
    kind = conns.kind[c]
    hasd = conns.hasd[c] != 0
    delay = np.int64(conns.delay[c])
    wmode = conns.wmode[c]
    lsh = conns.lsh[c]
    post0 = conns.post0[c]
    npost = conns.npost[c]
    boff = conns.scoff[c]
    for q in range(rows.shape[0]):
        j = rows[q]
        x = np.int64(pay[j])
        if kind == DENSE:
            base = conns.woff[c] + j * npost
            dbase = conns.doff[c] + j * npost
            for i in range(npost):
                w = np.int64(np.int32(decode_weight(syn.dw[base + i], wmode, lsh) * x))
                d = np.int64(syn.dd[dbase + i]) if hasd else delay
                if to_scratch:
                    bn = d if hasd else np.int64(0)
                    buf[boff + bn * npost + i] += w
                else:
                    buf[((dst0 + d) % D) * N + post0 + i] += w
        else:
            p = conns.soff[c] + j
            base = np.int64(syn.sbase[p])
            wide = kind == SPARSE_WIDE
            for k in range(syn.sptr[p], syn.sptr[p + 1]):
                tgt = np.int64(syn.swide[k]) if wide else base + np.int64(syn.soff[k])
                w = np.int64(np.int32(decode_weight(syn.sw[k], wmode, lsh) * x))
                d = np.int64(syn.sd[k]) if hasd else delay
                if to_scratch:
                    bn = d if hasd else np.int64(0)
                    buf[boff + bn * npost + tgt] += w
                else:
                    buf[((dst0 + d) % D) * N + post0 + tgt] += w


@njit(cache=True, inline="always")
def _flush_scratch(c, conns, scratch, ring, dst0, D, N):
    """Floor connection c's summed input by its negative weight exponent (Lava's Dense)
    and add it to the ring; the scratch bins are cleared. Inlined: it runs per connection
    and step, and a call would incref every array of the Connections record."""
    npost = conns.npost[c]
    hasd = conns.hasd[c] != 0
    sh = -conns.wexp[c]
    for bn in range(conns.nbins[c]):
        d = np.int64(bn) if hasd else np.int64(conns.delay[c])
        off = ((dst0 + d) % D) * N + conns.post0[c]
        so = conns.scoff[c] + bn * npost
        for i in range(npost):
            val = scratch[so + i]
            if val != 0:
                ring[off + i] += val >> sh
                scratch[so + i] = 0


@njit(cache=True, inline="always")
def _target(c, conns, ring, scratch, dst0, D, N):
    """The segment a connection without per-synapse delays adds into: its ring slot, or
    its scratch bins when its weight exponent is negative."""
    npost = conns.npost[c]
    if conns.wexp[c] < 0:
        return scratch[conns.scoff[c]: conns.scoff[c] + npost]
    off = ((dst0 + conns.delay[c]) % D) * N + conns.post0[c]
    return ring[off: off + npost]


@njit(cache=True, inline="always")
def _segment(neg, start, npost, ring, scratch):
    """The segment a connection without per-synapse delays adds into: from ``start`` of the
    ring, or of its scratch bins when its weight exponent is negative (neg)."""
    if neg:
        return scratch[start: start + npost]
    return ring[start: start + npost]


@njit(cache=True, inline="always")
def _is_fast(c, conns):
    return conns.kind[c] <= SPARSE and conns.hasd[c] == 0 and conns.graded[c] == 0


@njit(cache=True, inline="always")
def spiking_rows(c, conns, work, pop_src0):
    """The rows (presynaptic neurons) of connection c that spiked this step."""
    pi = conns.prepop[c]
    r0 = pop_src0[pi]
    return work.rows_all[r0: r0 + work.spk_cnt[pi]]


@njit(cache=True, inline="always")
def synapses(c0, c1, conns, syn, pop_src0, D, st, dst0, work):
    """Connections c0..c1-1 (of Connections conns, Synapses syn) add the rows of their
    spiking presynaptic neurons into the ring slots from dst0 on (D: ring slots; st:
    SampleState; work: Work with this step's rows; pop_src0: Sources.pop_src0). Inlined
    into the step, and it takes the parts of the Network it reads, not the Network: a
    record argument costs a reference count of each of its arrays per call, even inlined."""
    ring, scratch = st.ring, st.scratch
    N = ring.shape[0] // D  # words of a ring slot (Tables.ring_width)
    spk_cnt, rows_all = work.spk_cnt, work.rows_all
    for c in range(c0, c1):
        pi = conns.prepop[c]
        nrows = spk_cnt[pi]
        if nrows == 0 or conns.graded[c] != 0:
            continue  # no spikes, or graded (graded_synapses adds those)
        r0 = pop_src0[pi]
        rows = rows_all[r0: r0 + nrows]
        kind = conns.kind[c]
        neg = conns.wexp[c] < 0
        hasd = conns.hasd[c] != 0
        npost = conns.npost[c]
        start = conns.scoff[c] if neg else ((dst0 + conns.delay[c]) % D) * N + conns.post0[c]
        if kind == DENSE and not hasd:
            seg = _segment(neg, start, npost, ring, scratch)
            _dense_rows(rows, syn.dws, syn.dw, conns.woff[c], npost, conns.wmode[c],
                        conns.lsh[c], seg, work.acc16)
        elif kind == DENSE:
            _dense_rows_delayed(rows, c, conns, syn, dst0, D, N, scratch if neg else ring, neg)
        elif kind == SPARSE and not hasd:
            seg = _segment(neg, start, npost, ring, scratch)
            _sparse_rows_fast(rows, syn, conns.soff[c], conns.wmode[c], conns.lsh[c], seg)
        elif kind == CONV:  # one delay: its ring slot or scratch, like the fast kinds
            seg = _segment(neg, start, npost, ring, scratch)
            geo = syn.cgeo[conns.soff[c]]
            conv_rows(rows, geo, syn.ckw, syn.ctap, seg, 0, conv_parts(geo))
        else:
            _sparse_rows(rows, c, conns, syn, dst0, D, N, scratch if neg else ring, neg)
        if neg:
            _flush_scratch(c, conns, scratch, ring, dst0, D, N)


@njit(cache=True)
def graded_synapses(net, st, dst0, work):
    """The graded connections of the step (those :func:`synapses` leaves out): each adds
    weight x payload of its spiking presynaptic sources (:func:`_graded_rows`). Called
    once per step, and only for networks that have graded connections."""
    conns = net.conns
    ring, scratch = st.ring, st.scratch
    N = ring.shape[0] // net.ring_slots  # words of a ring slot (Tables.ring_width)
    pop_src0 = net.sources.pop_src0
    for c in range(conns.kind.shape[0]):
        if conns.graded[c] == 0:
            continue
        rows = spiking_rows(c, conns, work, pop_src0)
        if rows.shape[0] == 0:
            continue
        neg = conns.wexp[c] < 0
        r0 = pop_src0[conns.prepop[c]]
        _graded_rows(rows, c, net, work.pay[r0:], dst0, N, scratch if neg else ring, neg)
        if neg:
            _flush_scratch(c, conns, scratch, ring, dst0, net.ring_slots, N)


@njit(cache=True, parallel=True)
def synapses_par(net, syn, st, dst0, work, acc_p, min_events):
    """:func:`synapses` with a connection split over the threads by target when its work
    this step reaches min_events synapses: thread j adds, for every spiking row, the
    synapses whose targets fall in its own part of the connection's post range (dense
    rows: its columns; sparse rows: see :func:`_sparse_rows_part`). No two threads write
    the same word, so nothing is merged afterwards, and integer sums are exact: the result
    equals the serial one. acc_p: (threads, max n_post) 16-bit row sums; syn: net.syn
    (the threads are handed it directly: a parallel loop cannot pass a record taken out
    of another record)."""
    conns = net.conns
    D = net.ring_slots
    ring, scratch = st.ring, st.scratch
    N = ring.shape[0] // D  # words of a ring slot (Tables.ring_width)
    P = acc_p.shape[0]
    for c in range(conns.kind.shape[0]):
        rows = spiking_rows(c, conns, work, net.sources.pop_src0)
        n = rows.shape[0]
        if n == 0:
            continue
        npost = conns.npost[c]
        big = P > 1 and npost >= P and n * conns.rowlen[c] >= min_events
        if big and conns.kind[c] == CONV and conns.hasd[c] == 0 and conns.graded[c] == 0:
            # thread j adds the targets in its part of the output (columns or channels)
            seg = _target(c, conns, ring, scratch, dst0, D, N)
            geo = syn.cgeo[conns.soff[c]]
            ext = conv_parts(geo)
            part = (ext + P - 1) // P
            for j in prange(P):
                x0 = min(j * part, ext)
                x1 = min(x0 + part, ext)
                if x1 > x0:
                    conv_rows(rows, geo, syn.ckw, syn.ctap, seg, x0, x1)
            if conns.wexp[c] < 0:
                _flush_scratch(c, conns, scratch, ring, dst0, D, N)
            continue
        if not (big and _is_fast(c, conns)):
            synapses(c, c + 1, conns, net.syn, net.sources.pop_src0, D, st, dst0, work)
            continue
        seg = _target(c, conns, ring, scratch, dst0, D, N)
        part = (npost + P - 1) // P
        dense = conns.kind[c] == DENSE
        wmode = conns.wmode[c]
        lsh = conns.lsh[c]
        woff = conns.woff[c]
        soff = conns.soff[c]
        dws, dw = syn.dws, syn.dw
        for j in prange(P):
            x0 = min(j * part, npost)
            x1 = min(x0 + part, npost)
            if x1 > x0:
                if dense:
                    _dense_rows(rows, dws, dw, woff + x0, npost, wmode, lsh, seg[x0:x1], acc_p[j])
                else:
                    _sparse_rows_part(rows, syn, soff, wmode, lsh, seg, x0, x1)
        if conns.wexp[c] < 0:
            _flush_scratch(c, conns, scratch, ring, dst0, D, N)
