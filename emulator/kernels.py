"""Numba kernels of the emulator. Every ``@njit`` function of the emulator lives here.

The kernels are private; :func:`run_batch` is the public wrapper that checks dtypes and
shapes before calling them. They must equal the pure-Python reference model
(``emulator.reference``) bit for bit; the tests check that on random networks.

One step of one sample (``_run_sample``):

1. every LIF neuron g takes its input a from the ring slot of this step, then
   u <- wrap_once(wrap32(trunc0(u * (2^ds - 1 - du) >> ds) + (a << input_shift)))
        [current first; the sum is taken in 32-bit two's complement, as Lava's int32 LIF]
   v <- sat(trunc0(v * (2^ds - dv) >> ds) + u + bias)                      [new u]
   spike if v > theta (strict); reset v to 0, or subtract theta;
2. probes and spikes are recorded (after the reset, as Lava's monitors see them);
3. the step's spikes (host inputs, then neurons) are routed: per output axon the
   destination core's counters grow, and each connection adds its weights into the ring
   slot of step t + 1 + delay. A connection with a negative weight exponent sums into a
   scratch buffer first and floors the *sum* at the end of the step (Lava's Dense).

Threads: the samples of a batch run on separate threads (``_run_batch``); one sample of a
large network runs ``_run_threaded``, which spreads the neuron segments, the message
counting and the larger connections over the threads. Only integer sums (and maxima) are
split, so the results never depend on the number of threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros as _trailing_zeros
from numba.extending import intrinsic
from numpy.typing import NDArray

from emulator.tables import (
    C_ACTIVE,
    C_HOPS_EW,
    C_HOPS_NS,
    C_LINKS,
    C_MSGS,
    C_ROUTE_MAX,
    C_SPIKES_IN,
    C_SPIKES_OUT,
    C_SYNOPS,
    MODE_NONSPIKING,
    MODE_ZERO,
    N_COUNTERS,
    Tables,
)
from neurochip.core.errors import EmulatorInputError
from neurochip.core.fixedpoint import DATAPATH_BITS

# rows of the segment table (nrn[7], see kernel_args)
SEG_G0, SEG_SLOT, SEG_LIST, SEG_POP = 0, 1, 2, 3
__all__ = ["KernelState", "run_batch"]


def _byte_pointer(context: Any, builder: Any, signature: Any, args: Any) -> Any:
    """LLVM code of an intrinsic (arr, idx): the address of arr[idx], as a byte pointer."""
    aryty = signature.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
    return builder.bitcast(ptr, ir.IntType(8).as_pointer())


@intrinsic
def _prefetch_intrinsic(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Hint the CPU to bring arr[idx] into the cache (LLVM's prefetch: read, keep)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        i8p = _byte_pointer(context, builder, signature, args)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _nonzero_mask64_intrinsic(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Bit i set where arr[idx + i] != 0, for i < 64 (a byte array; the caller keeps
    idx + 64 within it): one 64-byte vector compare (AVX-512: a mask register)."""
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vty = ir.VectorType(ir.IntType(8), 64)
        ptr = _byte_pointer(context, builder, signature, args)
        vec = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=1)
        nz = builder.icmp_unsigned("!=", vec, ir.Constant(vty, None))
        return builder.bitcast(nz, ir.IntType(64))

    return sig, codegen


_prefetch: Any = _prefetch_intrinsic
_nonzero_mask64: Any = _nonzero_mask64_intrinsic
trailing_zeros: Any = _trailing_zeros


@njit(cache=True, inline="always")
def _prefetch_range(arr, k0, k1, step):
    """Prefetch arr[k0:k1], one element per cache line (step elements apart)."""
    if k1 > k0:
        for k in range(k0, k1, step):
            _prefetch(arr, k)
        _prefetch(arr, k1 - 1)


@njit(cache=True, inline="always")
def _trunc_shift(p: np.int64, shift: np.int64, rnd: np.int64) -> np.int64:
    # Decays truncate the magnitude (hardware works on sign/magnitude): -96.7 -> -96.
    # Branch-free form of sign(p) * (|p| >> shift): add 2^shift - 1 before shifting
    # negative values. rnd = 2^shift - 1.
    return (p + ((p >> 63) & rnd)) >> shift


@njit(cache=True)
def _update_range(u, v, a_in, du, dv, theta, mode, bias, flag, dshift, u_bits, v_bits,
                  in_shift, narrow):
    """One step of the neurons of one population (array slices, scalar registers).

    flag[g] gets bit 0 when neuron g spiked and bit 1 when it had synaptic input. The loops
    run from 0 over slices so LLVM can vectorise them (no negative-index checks). With
    ``narrow`` (see :func:`narrow_ok`) the 32-bit form runs, else the 64-bit one.
    """
    if narrow:
        _update_range32(u, v, a_in, du, dv, theta, mode, bias, flag, u_bits, v_bits, in_shift)
    else:
        _update_range64(u, v, a_in, du, dv, theta, mode, bias, flag, dshift, u_bits, v_bits,
                        in_shift)


_I32 = np.int32
_NARROW_SHIFT = 12  # the decay width the 32-bit neuron update is built for


@njit(cache=True, inline="always")
def _decay32(x, keep):
    """trunc0(x * keep >> 12) in 32-bit lanes: x = hi * 2^12 + lo (hi = x >> 12 floors,
    0 <= lo < 2^12), so x * keep >> 12 = hi * keep + (lo * keep + r) >> 12 exactly, where
    r = 2^12 - 1 for negative x turns the floor into truncation toward zero. Every term
    fits 32 bits for |x| < 2^31 and 0 <= keep <= 2^12."""
    m = _I32(4095)
    return _I32(_I32(_I32(x >> 12) * keep)
                + _I32(_I32(_I32(_I32(x & m) * keep) + _I32(_I32(x >> 31) & m)) >> 12))


@njit(cache=True, inline="always")
def _update_range32(u, v, a_in, du, dv, theta, mode, bias, flag, u_bits, v_bits, in_shift):
    """_update_range64 in 32-bit lanes (twice as many per vector), for the formats of
    :func:`narrow_formats_ok`: the input sum then wraps in 32 bits exactly as Lava's int32
    sum does, and the voltage sum cannot overflow."""
    k_u = _I32(4095 - du)
    k_v = _I32(4096 - dv)
    ish = in_shift & 31  # < 32 here; the mask lets LLVM shift in 32 bits (mod 2^32)
    u_half = _I32(1 << (u_bits - 1))
    u_low = _I32(-u_half)
    u_full = _I32(1 << u_bits)
    v_max = _I32((1 << (v_bits - 1)) - 1)
    v_min = _I32(-v_max)
    th = _I32(theta)
    spiking = mode != MODE_NONSPIKING
    to_zero = mode == MODE_ZERO
    for g in range(u.shape[0]):
        a = a_in[g]
        a_in[g] = 0
        x = _I32(_decay32(u[g], k_u) + _I32(a << ish))
        if x > u_half:
            x = _I32(x - u_full)
        elif x <= u_low:
            x = _I32(x + u_full)
        u[g] = x
        y = _I32(_I32(_decay32(v[g], k_v) + x) + bias[g])
        y = min(max(y, v_min), v_max)
        s = spiking & (y > th)
        if s:
            y = _I32(0) if to_zero else _I32(y - th)
        v[g] = y
        flag[g] = np.uint8(s) | (np.uint8(a != 0) << np.uint8(1))


@njit(cache=True, inline="always")
def _update_range64(u, v, a_in, du, dv, theta, mode, bias, flag, dshift, u_bits, v_bits,
                    in_shift):
    """The neuron update in 64-bit lanes, for any register widths and decay width."""
    unity = np.int64(1) << dshift
    rnd = unity - 1
    u_keep = rnd - du  # Lava's hidden +1 on the current decay
    v_keep = unity - dv
    u_half = np.int64(1) << (u_bits - 1)
    u_full = np.int64(1) << u_bits
    i32_half = np.int64(1) << (DATAPATH_BITS - 1)
    i32_mask = (np.int64(1) << DATAPATH_BITS) - 1
    v_max = (np.int64(1) << (v_bits - 1)) - 1
    spiking = mode != MODE_NONSPIKING
    to_zero = mode == MODE_ZERO
    for g in range(u.shape[0]):
        a = np.int64(a_in[g])
        a_in[g] = 0
        x = _trunc_shift(np.int64(u[g]) * u_keep, dshift, rnd) + (a << in_shift)
        # Lava adds the shifted input to the decayed current in int32: a sum beyond 32
        # bits wraps (two's complement) before the register's own wrap.
        x = ((x + i32_half) & i32_mask) - i32_half
        if x > u_half:  # one two's-complement wrap of the current register (Lava)
            x -= u_full
        elif x <= -u_half:
            x += u_full
        u[g] = x
        y = _trunc_shift(np.int64(v[g]) * v_keep, dshift, rnd) + x + bias[g]
        y = min(max(y, -v_max), v_max)  # the voltage register saturates
        s = spiking & (y > theta)  # strict threshold
        if s:
            y = 0 if to_zero else y - theta
        v[g] = y
        flag[g] = np.uint8(s) | (np.uint8(a != 0) << np.uint8(1))


@njit(cache=True)
def _update_neurons(u, v, a_in, nrn, flag, fmt):
    """One step of every LIF neuron, population by population.

    nrn = (pop_g0 (P+1,), pop_du, pop_dv, pop_theta, pop_mode, bias (N,), nslot (N,),
           seg (4, n_seg + 1): SEG_G0, SEG_SLOT, SEG_LIST, SEG_POP rows) -- see
    :func:`kernel_args`.
    """
    pop_g0, pop_du, pop_dv, pop_theta, pop_mode, bias = nrn[0], nrn[1], nrn[2], nrn[3], \
        nrn[4], nrn[5]
    dshift, u_bits, v_bits, in_shift, narrow = fmt
    for p in range(pop_du.shape[0]):
        g0 = pop_g0[p]
        g1 = pop_g0[p + 1]
        _update_range(u[g0:g1], v[g0:g1], a_in[g0:g1], np.int64(pop_du[p]), np.int64(pop_dv[p]),
                      np.int64(pop_theta[p]), pop_mode[p], bias[g0:g1], flag[g0:g1], dshift,
                      u_bits, v_bits, in_shift, narrow != 0)


@njit(cache=True, inline="always")
def _add_row(seg, row_s, row_u, wmode, lsh):
    """seg += decoded weight row. Small loops over slices so LLVM vectorises them."""
    n = seg.shape[0]
    if wmode == 0:
        if lsh == 1:  # 8-bit mixed weights, the common case: a constant shift
            for i in range(n):
                seg[i] += np.int32(row_s[i]) * np.int32(2)
        else:
            for i in range(n):
                seg[i] += np.int32(row_s[i]) << lsh
    elif wmode == 1:
        if lsh == 0:
            for i in range(n):
                seg[i] += np.int32(row_u[i])
        else:
            for i in range(n):
                seg[i] += np.int32(row_u[i]) << lsh
    else:
        if lsh == 0:
            for i in range(n):
                seg[i] -= np.int32(row_u[i])
        else:
            for i in range(n):
                seg[i] -= np.int32(row_u[i]) << lsh


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
def _dense_rows(rows, w_u, w_s, base0, stride, wmode, lsh, seg, acc16):
    """seg += the weight rows of the spiking presynaptic neurons (one target segment; row
    r starts at base0 + r * stride and is as wide as seg).

    Rows are first summed as raw bytes into 16-bit lanes (twice the SIMD width of 32-bit
    ones), 128 rows at a time so the sum cannot overflow (128 * 255 < 2^15), then decoded
    and added to the 32-bit segment. Integer sums are exact, so this equals adding the
    decoded rows one by one.
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
        if wmode == 0:
            _sum_rows16(rows, c0, c1, w_s, base0, stride, a)
        else:
            _sum_rows16(rows, c0, c1, w_u, base0, stride, a)
        if wmode == 2:
            for i in range(width):
                seg[i] -= np.int32(a[i]) << lsh
                a[i] = 0
        else:
            for i in range(width):
                seg[i] += np.int32(a[i]) << lsh
                a[i] = 0


@njit(cache=True, inline="always")
def _decode(byte, wmode, lsh):
    b = np.int64(byte)
    if wmode == 0:  # two's complement byte
        if b >= 128:
            b -= 256
        return b << lsh
    if wmode == 1:
        return b << lsh
    return -(b << lsh)


@njit(cache=True)
def _dense_rows_delayed(rows, w_u, dly, base0, npost, wmode, lsh, dst0, D, N, post0, buf,
                        boff, nbin_stride, to_scratch):
    """Per-synapse delays: each weight lands in the slot of its own delay."""
    for q in range(rows.shape[0]):
        base = base0 + rows[q] * npost
        for i in range(npost):
            w = _decode(w_u[base + i], wmode, lsh)
            d = np.int64(dly[base + i])
            if to_scratch:
                buf[boff + d * nbin_stride + i] += w
            else:
                buf[((dst0 + d) % D) * N + post0 + i] += w


# Rows ahead whose synapse lists are prefetched: a spiking neuron's list sits anywhere in
# synapse memory, so without it every row starts with a cache miss.
_PREFETCH_ROWS = 4


@njit(cache=True)
def _sparse_rows_fast(rows, sptr, sbase, soff, sw, p0, wmode, lsh, seg):
    """Narrow sparse lists, one delay, into one target segment (the common case).

    Per row, slices of its offsets and weights and of the target window starting at the
    row's base: the scatter loop then runs over unsigned offsets from fixed pointers. The
    lists of the rows _PREFETCH_ROWS ahead are prefetched.
    """
    nr = rows.shape[0]
    for q in range(min(_PREFETCH_ROWS, nr)):
        p = p0 + rows[q]
        _prefetch_range(soff, sptr[p], sptr[p + 1], 32)
        _prefetch_range(sw, sptr[p], sptr[p + 1], 64)
    for q in range(nr):
        if q + _PREFETCH_ROWS < nr:
            p = p0 + rows[q + _PREFETCH_ROWS]
            _prefetch_range(soff, sptr[p], sptr[p + 1], 32)
            _prefetch_range(sw, sptr[p], sptr[p + 1], 64)
        p = p0 + rows[q]
        k0 = sptr[p]
        n = sptr[p + 1] - k0
        _scatter_row(seg[np.uint64(sbase[p]):], soff[k0: k0 + n], sw, k0, n, wmode, lsh)


@njit(cache=True, inline="always")
def _scatter_row(win, off, sw, k0, n, wmode, lsh):
    """win[off[k]] += the decoded weight sw[k0 + k], k < n (one narrow sparse row)."""
    if wmode == 0:
        w8 = sw.view(np.int8)[k0: k0 + n]
        if lsh == 1:
            for k in range(n):
                win[np.uint64(off[k])] += np.int32(w8[k]) * np.int32(2)
        else:
            for k in range(n):
                win[np.uint64(off[k])] += np.int32(w8[k]) << lsh
    else:
        wu = sw[k0: k0 + n]
        if wmode == 1:
            for k in range(n):
                win[np.uint64(off[k])] += np.int32(wu[k]) << lsh
        else:
            for k in range(n):
                win[np.uint64(off[k])] -= np.int32(wu[k]) << lsh


@njit(cache=True)
def _sparse_rows_part(rows, sptr, sbase, send, soff, sw, p0, wmode, lsh, seg, x0, x1):
    """_sparse_rows_fast restricted to the targets x0 <= i < x1 of seg: rows whose targets
    all lie there are added whole, rows that straddle a bound synapse by synapse, the
    others skipped (send: one past each row's largest target). Threads given disjoint
    ranges never write the same word."""
    nr = rows.shape[0]
    for q in range(nr):
        if q + _PREFETCH_ROWS < nr:
            p = p0 + rows[q + _PREFETCH_ROWS]
            if sbase[p] < x1 and send[p] > x0:
                _prefetch_range(soff, sptr[p], sptr[p + 1], 32)
                _prefetch_range(sw, sptr[p], sptr[p + 1], 64)
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
                    seg[i] += np.int32(_decode(sw[k0 + k], wmode, lsh))


@njit(cache=True)
def _sparse_rows(rows, sparse, p0, wide, wmode, lsh, hasd, delay, dst0, D, N, post0, buf, boff,
                 nbin_stride, to_scratch):
    """Sparse fan-out lists: per row a base index; per synapse an offset and a weight byte."""
    sptr, sbase, soff, swide, sw, sd = sparse
    for q in range(rows.shape[0]):
        p = p0 + rows[q]
        base = np.int64(sbase[p])
        for k in range(sptr[p], sptr[p + 1]):
            i = np.int64(swide[k]) if wide else base + np.int64(soff[k])
            w = _decode(sw[k], wmode, lsh)
            d = np.int64(sd[k]) if hasd else np.int64(delay)
            if to_scratch:
                bn = d if hasd else np.int64(0)
                buf[boff + bn * nbin_stride + i] += w
            else:
                buf[((dst0 + d) % D) * N + post0 + i] += w


@njit(cache=True)
def _flush_scratch(scratch, soff, nbins, npost, hasd, delay, sh, ring, dst0, D, N, post0):
    """Floor a connection's summed input by its negative weight exponent (Lava's Dense)."""
    for bn in range(nbins):
        d = np.int64(bn) if hasd else np.int64(delay)
        off = ((dst0 + d) % D) * N + post0
        so = soff + bn * npost
        for i in range(npost):
            val = scratch[so + i]
            if val != 0:
                ring[off + i] += val >> sh
                scratch[so + i] = 0


@njit(cache=True, inline="always")
def _target(c, cn, ring, scratch, dst0, D, N):
    """The segment a connection without per-synapse delays adds into: its ring slot, or
    its scratch bins when its weight exponent is negative."""
    c_post0, c_npost, c_delay, c_scoff = cn[1], cn[2], cn[6], cn[11]
    npost = c_npost[c]
    if cn[5][c] < 0:
        return scratch[c_scoff[c]: c_scoff[c] + npost]
    off = ((dst0 + c_delay[c]) % D) * N + c_post0[c]
    return ring[off: off + npost]


@njit(cache=True, inline="always")
def _is_fast(c, cn):
    return cn[0][c] <= 1 and cn[7][c] == 0


@njit(cache=True, inline="always")
def _spiking_rows(c, cn, rows_all, spk_cnt, pop_src0):
    """The rows (presynaptic neurons) of connection c that spiked this step."""
    pi = cn[13][c]
    r0 = pop_src0[pi]
    return rows_all[r0: r0 + spk_cnt[pi]]


@njit(cache=True)
def _synapses(c0, c1, rows_all, spk_cnt, pop_src0, cn, mem, ring, scratch, dst0, D, N, acc16):
    """Connections c0..c1-1 add the rows of their spiking presynaptic neurons."""
    (c_kind, c_post0, c_npost, c_lsh, c_wmode, c_wexp, c_delay, c_hasd, c_woff, c_doff,
     c_soff, c_scoff, c_nbins, _) = cn[:14]
    dw, dws, dd = mem[0], mem[1], mem[2]
    sparse = (mem[3], mem[4], mem[5], mem[6], mem[7], mem[8])
    for c in range(c0, c1):
        rows = _spiking_rows(c, cn, rows_all, spk_cnt, pop_src0)
        if rows.shape[0] == 0:
            continue
        npost = c_npost[c]
        post0 = c_post0[c]
        wmode = c_wmode[c]
        lsh = c_lsh[c]
        neg = c_wexp[c] < 0
        hasd = c_hasd[c] != 0
        if c_kind[c] == 0 and not hasd:
            if neg:
                seg = scratch[c_scoff[c]: c_scoff[c] + npost]
            else:
                off = ((dst0 + c_delay[c]) % D) * N + post0
                seg = ring[off: off + npost]
            _dense_rows(rows, dw, dws, c_woff[c], npost, wmode, lsh, seg, acc16)
        elif c_kind[c] == 0:
            buf = scratch if neg else ring
            _dense_rows_delayed(rows, dw[c_woff[c]:], dd[c_doff[c]:], 0, npost, wmode, lsh,
                                dst0, D, N, post0, buf, c_scoff[c], npost, neg)
        elif c_kind[c] == 1 and not hasd:
            if neg:
                seg = scratch[c_scoff[c]: c_scoff[c] + npost]
            else:
                off = ((dst0 + c_delay[c]) % D) * N + post0
                seg = ring[off: off + npost]
            _sparse_rows_fast(rows, sparse[0], sparse[1], sparse[2], sparse[4], c_soff[c], wmode,
                              lsh, seg)
        else:
            buf = scratch if neg else ring
            _sparse_rows(rows, sparse, c_soff[c], c_kind[c] == 2, wmode, lsh, hasd, c_delay[c],
                         dst0, D, N, post0, buf, c_scoff[c], npost, neg)
        if neg:
            _flush_scratch(scratch, c_scoff[c], c_nbins[c], npost, hasd, c_delay[c],
                           -c_wexp[c], ring, dst0, D, N, post0)


@njit(cache=True, parallel=True)
def _synapses_par(C, rows_all, spk_cnt, pop_src0, cn, mem, ring, scratch, dst0, D, N, acc16,
                  acc_p, rowlen, send, min_events):
    """_synapses with a connection split over the threads by target when its work this
    step reaches min_events synapses: thread j adds, for every spiking row, the synapses
    whose targets fall in its own part of the connection's post range (dense rows: its
    columns; sparse rows: see :func:`_sparse_rows_part`). No two threads write the same
    word, so nothing is merged afterwards, and integer sums are exact: the result equals
    the serial one. rowlen: mean synapses per row of each connection."""
    c_kind, c_npost, c_lsh, c_wmode, c_woff, c_soff = cn[0], cn[2], cn[3], cn[4], cn[8], cn[10]
    P = acc_p.shape[0]
    for c in range(C):
        rows = _spiking_rows(c, cn, rows_all, spk_cnt, pop_src0)
        n = rows.shape[0]
        if n == 0:
            continue
        npost = c_npost[c]
        if not (P > 1 and npost >= P and n * rowlen[c] >= min_events and _is_fast(c, cn)):
            _synapses(c, c + 1, rows_all, spk_cnt, pop_src0, cn, mem, ring, scratch, dst0, D,
                      N, acc16)
            continue
        seg = _target(c, cn, ring, scratch, dst0, D, N)
        part = (npost + P - 1) // P
        for j in prange(P):
            x0 = min(j * part, npost)
            x1 = min(x0 + part, npost)
            if x1 > x0:
                if c_kind[c] == 0:
                    _dense_rows(rows, mem[0], mem[1], c_woff[c] + x0, npost, c_wmode[c],
                                c_lsh[c], seg[x0:x1], acc_p[j])
                else:
                    _sparse_rows_part(rows, mem[3], mem[4], send, mem[5], mem[7], c_soff[c],
                                      c_wmode[c], c_lsh[c], seg, x0, x1)
        if cn[5][c] < 0:
            _flush_scratch(scratch, cn[11][c], cn[12][c], npost, False, cn[6][c], -cn[5][c],
                           ring, dst0, D, N, cn[1][c])


@njit(cache=True, inline="always")
def _count_list(f, g0, lst, out):
    """One segment's flags f (neurons g0...): how many were active and spiked; with lst,
    the spiking neurons are listed in out (branch-free). Returns (act, spk, listed)."""
    act = _I32(0)  # 32-bit sums: twice the lanes of 64-bit ones (a segment < 2^31)
    spk = _I32(0)
    for i in range(f.shape[0]):
        x = f[i]
        act = _I32(act + _I32(x != 0))
        spk = _I32(spk + _I32(x & 1))
    nf = np.int64(0)
    if spk > 0 and lst:
        for i in range(f.shape[0]):
            out[nf] = g0 + i
            nf += np.int64(f[i] & 1)
    return np.int64(act), np.int64(spk), nf


@njit(cache=True, inline="always")
def _collect(flag, nrn, fired, cnt):
    """Count active and spiking neurons per core; list the neurons that fired.

    Works segment by segment (a population's neurons on one core): the counts are
    vectorised sums; only segments whose spikes are needed (they have output axons, are
    recorded, or learn) are listed in ``fired``. Returns how many neurons were listed.
    """
    seg = nrn[7]
    nf = np.int64(0)
    for q in range(seg.shape[1] - 1):
        g0 = seg[SEG_G0, q]
        act, spk, m = _count_list(flag[g0: seg[SEG_G0, q + 1]], g0, seg[SEG_LIST, q] != 0,
                                  fired[nf:])
        k = seg[SEG_SLOT, q]
        cnt[k, C_ACTIVE] += act
        cnt[k, C_SPIKES_OUT] += spk
        nf += m
    return nf


@njit(cache=True, inline="always")
def _observe(t, u, v, probe_idx, probe_var, probe_out, fired, nf, rec_col, spk_out):
    """Probes read u/v after the reset (as Lava's monitors do); record the spikes."""
    for p in range(probe_idx.shape[0]):
        g = probe_idx[p]
        probe_out[t, p] = u[g] if probe_var[p] == 0 else v[g]
    if spk_out.shape[1] > 0:  # some population is recorded
        for q in range(nf):
            col = rec_col[fired[q]]
            if col >= 0:
                spk_out[t, col] = 1


@njit(cache=True, inline="always")
def _charge(s, m, src_slot, rt, cnt):
    """Count m spikes of source s (or of its route class): at each destination core its
    axon events and synaptic operations; messages, hops, link crossings and the longest
    path at the sending core. Host inputs enter at the I/O tile of chip 0 and are charged
    where each message arrives."""
    (route_ptr, route_slot, route_nsyn, slot_x, slot_y, slot_chip, io_x, io_y,
     c_out, c_ew, c_ns, c_link) = rt
    ss = src_slot[s]
    if ss >= 0:
        sx = slot_x[ss]
        sy = slot_y[ss]
        sc = slot_chip[ss]
    else:
        sx = io_x
        sy = io_y
        sc = 0
    ew = np.int64(0)
    nsh = np.int64(0)
    links = np.int64(0)
    longest = np.int64(0)
    r0 = route_ptr[s]
    r1 = route_ptr[s + 1]
    for r in range(r0, r1):
        k = route_slot[r]
        cnt[k, C_SYNOPS] += m * route_nsyn[r]
        cnt[k, C_SPIKES_IN] += m
        dx = abs(slot_x[k] - sx)
        dy = abs(slot_y[k] - sy)
        dl = abs(slot_chip[k] - sc)
        path = c_out + dx * c_ew + dy * c_ns + dl * c_link
        if ss >= 0:
            ew += dx
            nsh += dy
            links += dl
            longest = max(longest, path)
        else:  # host messages are charged where they arrive
            cnt[k, C_HOPS_EW] += m * dx
            cnt[k, C_HOPS_NS] += m * dy
            cnt[k, C_LINKS] += m * dl
            cnt[k, C_ROUTE_MAX] = max(cnt[k, C_ROUTE_MAX], path)
    if ss >= 0 and r1 > r0:
        cnt[ss, C_MSGS] += m * (r1 - r0)
        cnt[ss, C_HOPS_EW] += m * ew
        cnt[ss, C_HOPS_NS] += m * nsh
        cnt[ss, C_LINKS] += m * links
        cnt[ss, C_ROUTE_MAX] = max(cnt[ss, C_ROUTE_MAX], longest)


@njit(cache=True, inline="always")
def _group(srcs, ns, src, rows_all, spk_cnt, cls_cnt, cls_list, direct):
    """Group the step's spiking sources (srcs[:ns]) by population (rows_all/spk_cnt: the
    rows each connection will add). Sources that share a route class are counted per
    class (cls_cnt, cls_list); the others (class -1) are listed in ``direct`` (which may
    be srcs itself). Runs of one population and of one class are counted in registers.
    Returns (number of classes, number of direct sources)."""
    src_pop, pop_src0, cls_of_src = src[0], src[1], src[4]
    ncls = 0
    nd = 0
    pi_cur = -1
    n_pi = np.int64(0)
    base = np.int64(0)
    k_cur = -1
    n_k = np.int64(0)
    for q in range(ns):
        s = srcs[q]
        pi = src_pop[s]
        if pi != pi_cur:
            if pi_cur >= 0:
                spk_cnt[pi_cur] = n_pi
            pi_cur = pi
            n_pi = spk_cnt[pi]
            base = pop_src0[pi]
        rows_all[base + n_pi] = s - base
        n_pi += 1
        k = cls_of_src[s]
        if k < 0:
            direct[nd] = s
            nd += 1
            continue
        if k != k_cur:
            if k_cur >= 0:
                if cls_cnt[k_cur] == 0:
                    cls_list[ncls] = k_cur
                    ncls += 1
                cls_cnt[k_cur] += n_k
            k_cur = k
            n_k = np.int64(0)
        n_k += 1
    if pi_cur >= 0:
        spk_cnt[pi_cur] = n_pi
    if k_cur >= 0:
        if cls_cnt[k_cur] == 0:
            cls_list[ncls] = k_cur
            ncls += 1
        cls_cnt[k_cur] += n_k
    return ncls, nd


@njit(cache=True, inline="always")
def _charge_classes(ncls, src, rt, cls_cnt, cls_list, cnt):
    """Charge each route class once, times how many of its sources spiked."""
    cls_rep, src_slot = src[5], src[2]
    for q in range(ncls):
        kc = cls_list[q]
        m = cls_cnt[kc]
        cls_cnt[kc] = 0
        _charge(cls_rep[kc], m, src_slot, rt, cnt)


@njit(cache=True, inline="always")
def _route(srcs, ns, src, rt, rows_all, spk_cnt, cls_cnt, cls_list, cnt):
    """Route the step's spiking sources (srcs[:ns]): group them (:func:`_group`) and
    charge their messages (:func:`_charge`). Sources with identical axon lists (a route
    class: e.g. every neuron of one core that only has dense fan-out) are charged once per
    class and step, multiplied by how many of them spiked. srcs is reused for the list of
    sources charged one by one."""
    ncls, nd = _group(srcs, ns, src, rows_all, spk_cnt, cls_cnt, cls_list, srcs)
    _charge_list(srcs, 0, nd, src[2], rt, cnt)
    _charge_classes(ncls, src, rt, cls_cnt, cls_list, cnt)


@njit(cache=True, inline="always")
def _charge_list(direct, a, b, src_slot, rt, cnt):
    """_charge of direct[a:b], one spike each; the routes of the sources a few places
    ahead are prefetched (they sit anywhere in the axon tables)."""
    route_ptr, route_slot = rt[0], rt[1]
    for q in range(a, min(a + 8, b)):
        _prefetch(route_ptr, direct[q])
    for q in range(a, b):
        if q + 8 < b:
            _prefetch(route_ptr, direct[q + 8])
        if q + 4 < b:
            _prefetch(route_slot, route_ptr[direct[q + 4]])
        _charge(direct[q], 1, src_slot, rt, cnt)


@njit(cache=True, parallel=True)
def _charge_par(direct, nd, src_slot, rt, cnt, cnt_p):
    """_charge of direct[:nd] with the sources split over the threads, each counting into
    its own cnt_p[j]; then summed into cnt (the longest path: the maximum)."""
    P = cnt_p.shape[0]
    chunk = (nd + P - 1) // P
    for j in prange(P):
        a = min(j * chunk, nd)
        b = min(a + chunk, nd)
        _charge_list(direct, a, b, src_slot, rt, cnt_p[j])
    for j in range(P):
        cj = cnt_p[j]
        for k in range(cnt.shape[0]):
            for i in range(cnt.shape[1]):
                if i == C_ROUTE_MAX:
                    cnt[k, i] = max(cnt[k, i], cj[k, i])
                else:
                    cnt[k, i] += cj[k, i]
                cj[k, i] = 0


@njit(cache=True, inline="always")
def _step_sources(t, inp_ptr, inp_src, fired, nf, n_in, route_ptr, only_senders, srcs):
    """The step's spiking sources: host inputs first, then the neurons that fired.

    With only_senders, neurons without axons (nothing to route) are left out.
    """
    ni = inp_ptr[t + 1] - inp_ptr[t]
    for q in range(ni):
        srcs[q] = inp_src[inp_ptr[t] + q]
    ns = ni
    for q in range(nf):
        s = n_in + fired[q]
        if not only_senders or route_ptr[s + 1] > route_ptr[s]:
            srcs[ns] = s
            ns += 1
    return ns


@njit(cache=True)
def _work(N, S, P, ncls):
    """Scratch arrays of the step loop: fired, flag, srcs, rows_all, spk_cnt, cls_cnt,
    cls_list, acc16."""
    return (np.empty(N, np.int64), np.zeros(N, np.uint8), np.empty(S, np.int64),
            np.empty(S, np.int64), np.zeros(P, np.int64), np.zeros(ncls, np.int64),
            np.empty(ncls, np.int64), np.zeros(N, np.int16))


@njit(cache=True, inline="always")
def _inference_step(t, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt, u, v, ring,
                    scratch, probe_idx, probe_var, probe_out, rec_col, spk_out, cnt, fired, flag,
                    srcs, rows_all, spk_cnt, cls_cnt, cls_list, acc16):
    """One step of one sample: neurons, observation, routing, synapses. Returns how many
    neurons fired (listed in fired)."""
    N = u.shape[0]
    cur = (t0 + t) % D
    roff = cur * N
    _update_neurons(u, v, ring[roff: roff + N], nrn, flag, fmt)
    nf = _collect(flag, nrn, fired, cnt)
    _observe(t, u, v, probe_idx, probe_var, probe_out, fired, nf, rec_col, spk_out)
    ns = _step_sources(t, inp_ptr, inp_src, fired, nf, src[3], rt[0], True, srcs)
    if ns > 0:
        _route(srcs, ns, src, rt, rows_all, spk_cnt, cls_cnt, cls_list, cnt)
        # synaptic input lands in the ring slots of steps t + 1 + delay
        _synapses(0, cn[0].shape[0], rows_all, spk_cnt, src[1], cn, mem, ring, scratch,
                  cur + 1, D, N, acc16)
        spk_cnt[:] = 0
    return nf


@njit(cache=True)
def _run_sample(T, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
                u, v, ring, scratch, probe_idx, probe_var, probe_out, rec_col, spk_out,
                counters):
    """Inference: T steps of one sample (state u, v, ring, scratch updated in place)."""
    fired, flag, srcs, rows_all, spk_cnt, cls_cnt, cls_list, acc16 = _work(
        u.shape[0], src[0].shape[0], src[1].shape[0], src[5].shape[0])
    for t in range(T):
        _inference_step(t, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt, u, v, ring,
                        scratch, probe_idx, probe_var, probe_out, rec_col, spk_out, counters[t],
                        fired, flag, srcs, rows_all, spk_cnt, cls_cnt, cls_list, acc16)


@njit(cache=True)
def _run_serial(T, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
                U, V, RING, SCR, probe_idx, probe_var, PROBE, rec_col, SPK, CNT):
    for b in range(U.shape[0]):
        _run_sample(T, t0, D, inp_ptr[b], inp_src, nrn, fmt, src, cn, mem, rt,
                    U[b], V[b], RING[b], SCR[b], probe_idx, probe_var, PROBE[b], rec_col,
                    SPK[b], CNT[b])


@njit(cache=True, parallel=True)
def _run_batch(T, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
               U, V, RING, SCR, probe_idx, probe_var, PROBE, rec_col, SPK, CNT):
    B = U.shape[0]
    for b in prange(B):
        _run_sample(T, t0, D, inp_ptr[b], inp_src, nrn, fmt, src, cn, mem, rt,
                    U[b], V[b], RING[b], SCR[b], probe_idx, probe_var, PROBE[b], rec_col,
                    SPK[b], CNT[b])


@njit(cache=True, parallel=True)
def _neurons_par(u, v, a_in, nrn, flag, fmt, seg_act, seg_spk, seg_nf, fired_seg):
    """Neuron updates and spike collection with the segments spread over the threads;
    each segment lists its spikes in its own range of fired_seg."""
    pop_du, pop_dv, pop_theta, pop_mode, bias = nrn[1], nrn[2], nrn[3], nrn[4], nrn[5]
    seg = nrn[7]
    dshift, u_bits, v_bits, in_shift, narrow = fmt
    for q in prange(seg.shape[1] - 1):
        g0 = seg[SEG_G0, q]
        g1 = seg[SEG_G0, q + 1]
        p = seg[SEG_POP, q]
        _update_range(u[g0:g1], v[g0:g1], a_in[g0:g1], np.int64(pop_du[p]), np.int64(pop_dv[p]),
                      np.int64(pop_theta[p]), pop_mode[p], bias[g0:g1], flag[g0:g1], dshift,
                      u_bits, v_bits, in_shift, narrow != 0)
        act, spk, m = _count_list(flag[g0:g1], g0, seg[SEG_LIST, q] != 0, fired_seg[g0:g1])
        seg_act[q] = act
        seg_spk[q] = spk
        seg_nf[q] = m


@njit(cache=True)
def _run_threaded(T, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
                  u, v, ring, scratch, probe_idx, probe_var, probe_out, rec_col, spk_out,
                  counters, send, threads, rowlen, min_events, min_sources):
    """_run_sample for one large sample, its work spread over ``threads`` threads: the
    neuron segments, the messages, and the targets of each connection with enough work
    this step (see :func:`_synapses_par`; send: Tables.send). Grouping, recording and
    counting stay serial, in the same order as the serial kernel, so the results are
    identical."""
    N = u.shape[0]
    fired, flag, srcs, rows_all, spk_cnt, cls_cnt, cls_list, acc16 = _work(
        N, src[0].shape[0], src[1].shape[0], src[5].shape[0])
    seg = nrn[7]
    nseg = seg.shape[1] - 1
    seg_act = np.zeros(nseg, np.int64)
    seg_spk = np.zeros(nseg, np.int64)
    seg_nf = np.zeros(nseg, np.int64)
    fired_seg = np.empty(N, np.int64)
    npmax = max(cn[2].max(), 1) if cn[2].shape[0] else 1
    acc_p = np.zeros((threads, npmax), np.int16)
    cnt_p = np.zeros((threads, counters.shape[1], counters.shape[2]), np.int64)
    for t in range(T):
        cnt = counters[t]
        cur = (t0 + t) % D
        roff = cur * N
        _neurons_par(u, v, ring[roff: roff + N], nrn, flag, fmt, seg_act, seg_spk, seg_nf,
                     fired_seg)
        nf = np.int64(0)
        for q in range(nseg):
            k = seg[SEG_SLOT, q]
            cnt[k, C_ACTIVE] += seg_act[q]
            cnt[k, C_SPIKES_OUT] += seg_spk[q]
            g0 = seg[SEG_G0, q]
            for i in range(seg_nf[q]):
                fired[nf] = fired_seg[g0 + i]
                nf += 1
        _observe(t, u, v, probe_idx, probe_var, probe_out, fired, nf, rec_col, spk_out)
        ns = _step_sources(t, inp_ptr, inp_src, fired, nf, src[3], rt[0], True, srcs)
        if ns > 0:
            ncls, nd = _group(srcs, ns, src, rows_all, spk_cnt, cls_cnt, cls_list, srcs)
            if nd >= min_sources:
                _charge_par(srcs, nd, src[2], rt, cnt, cnt_p)
            else:
                _charge_list(srcs, 0, nd, src[2], rt, cnt)
            _charge_classes(ncls, src, rt, cls_cnt, cls_list, cnt)
            _synapses_par(cn[0].shape[0], rows_all, spk_cnt, src[1], cn, mem, ring, scratch,
                          cur + 1, D, N, acc16, acc_p, rowlen, send, min_events)
            spk_cnt[:] = 0


@njit(cache=True)
def _spike_lists(X, ptr, out):
    """Host spikes, one (sample, step) per row of X (R, n) uint8 0/1 -> ptr (R + 1,), the
    spiking input indices in out.

    64 inputs at a time: one vector compare turns 64 bytes into a 64-bit mask
    (:func:`_nonzero_mask64`), whose set bits are walked with count-trailing-zeros; the
    tail of a row goes byte by byte.
    """
    R, n = X.shape
    nb = n // 64
    k = np.int64(0)
    for t in range(R):
        ptr[t] = k
        row = X[t]
        for blk in range(nb):
            m = _nonzero_mask64(row, blk * 64)
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
    """(inp_ptr (B, T + 1), inp_src) for :func:`run_batch` from host spikes (B, T, n)."""
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


@njit(cache=True)
def account_steps(cnt, neurons, wc, we, idle_c, idle_e, barrier, static_pj_per_cycle,
                  cycles, latency, energy):
    """The cost model of ``emulator.timing`` over counters (M, K, N_COUNTERS): per row and
    core, cycles = counters . wc + neurons x idle cycles, energy likewise (plus static
    power over the row's latency); latency = slowest core + longest message + barrier."""
    M, K = cnt.shape[0], cnt.shape[1]
    for m in range(M):
        slowest = np.int64(0)
        route = np.int64(0)
        for k in range(K):
            c = neurons[k] * idle_c
            e = neurons[k] * idle_e
            for i in range(cnt.shape[2]):
                c += cnt[m, k, i] * wc[i]
                e += cnt[m, k, i] * we[i]
            cycles[m, k] = c
            energy[m, k] = e
            slowest = max(slowest, c)
            route = max(route, cnt[m, k, C_ROUTE_MAX])
        lat = slowest + route + barrier
        latency[m] = lat
        for k in range(K):
            energy[m, k] += static_pj_per_cycle * lat


class KernelState:
    """Explicit state of B independent samples: current, voltage, delay ring, scratch."""

    def __init__(self, tables: Tables, batch: int) -> None:
        N = tables.n_neurons
        self.batch = batch
        self.u = np.zeros((batch, N), np.int32)
        self.v = np.zeros((batch, N), np.int32)
        self.ring = np.zeros((batch, tables.ring_slots * N), np.int32)
        self.scratch = np.zeros((batch, max(tables.scratch_len, 1)), np.int32)
        self.t = 0


def check_kernel_arg(name: str, arr: NDArray[Any], dtype: Any, ndim: int,
                     where: str = "emulator.kernels") -> None:
    """A kernel argument has the dtype, rank and C layout its kernel was compiled for."""
    if arr.dtype != dtype or arr.ndim != ndim or not arr.flags.c_contiguous:
        raise EmulatorInputError(
            f"kernel argument has dtype {arr.dtype}, ndim {arr.ndim}; expected {np.dtype(dtype)} "
            f"with ndim {ndim}, C-contiguous", where=where, field=name)


def segments_to_list(tb: Tables, rec_col: NDArray[np.int64] | None) -> NDArray[np.uint8]:
    """Per neuron segment, whether the step loop lists its spikes: the segment sends, or
    is recorded (rec_col >= 0); with rec_col None, every segment (the learning engine
    reads every spike)."""
    if rec_col is None:
        return np.ones(tb.seg_slot.size, np.uint8)
    rec = rec_col[tb.seg_g0[:-1]] >= 0 if tb.seg_slot.size else np.zeros(0, bool)
    return (tb.seg_sends.astype(bool) | rec).astype(np.uint8)


def narrow_formats_ok(dshift: int, u_bits: int, v_bits: int, in_shift: int, bias_max: int,
                      theta_max: int) -> bool:
    """Whether :func:`_update_range32` equals the 64-bit update for these formats and the
    largest |bias| and threshold: decay width 12; the input sum wraps in 32 bits as Lava's
    does (input shift below 32); and the voltage sum v + u + bias cannot leave 32 bits. After
    its single wrap the current can still reach 2^31 - 2^u_bits in magnitude (Lava wraps it
    once, not modulo), so that needs 2^u_bits > v_max + |bias|; thresholds stay below 2^30 so
    that subtracting one from a saturated voltage stays in range."""
    v_max = (1 << (v_bits - 1)) - 1
    return (dshift == _NARROW_SHIFT and u_bits <= 30 and v_bits <= 31 and in_shift < 32
            and (1 << u_bits) > v_max + bias_max and 0 <= theta_max < (1 << 30))


def narrow_ok(tb: Tables) -> bool:
    """Whether the neurons of these tables may be updated in 32-bit lanes
    (:func:`narrow_formats_ok` on their formats, biases and thresholds)."""
    dshift, u_bits, v_bits, in_shift = tb.fmt
    bias_max = int(np.abs(tb.bias.astype(np.int64)).max()) if tb.bias.size else 0
    theta_max = int(np.abs(tb.pop_theta.astype(np.int64)).max()) if tb.pop_theta.size else 0
    return narrow_formats_ok(dshift, u_bits, v_bits, in_shift, bias_max, theta_max)


def kernel_args(tb: Tables, seg_list: NDArray[np.uint8] | None = None) -> tuple[Any, ...]:
    """The kernels' argument tuples (nrn, fmt, src, cn, mem, rt) built from the tables.

    seg_list: per neuron segment, 1 when its spikes must be listed (default: all)."""
    if seg_list is None:
        seg_list = segments_to_list(tb, None)
    nseg = tb.seg_slot.size
    seg = np.zeros((4, nseg + 1), np.int64)  # rows SEG_G0, SEG_SLOT, SEG_LIST, SEG_POP
    seg[SEG_G0] = tb.seg_g0
    seg[SEG_SLOT, :nseg] = tb.seg_slot
    seg[SEG_LIST, :nseg] = seg_list
    seg[SEG_POP, :nseg] = tb.seg_pop
    nrn = (tb.pop_g0, tb.pop_du, tb.pop_dv, tb.pop_theta, tb.pop_mode, tb.bias, tb.nslot, seg)
    fmt = tuple(np.int64(x) for x in (*tb.fmt, narrow_ok(tb)))
    src = (tb.src_pop, tb.pop_src0, tb.src_slot, np.int64(tb.n_inputs), tb.cls_of_src,
           tb.cls_rep)
    cn = (tb.c_kind, tb.c_post0, tb.c_npost, tb.c_lsh, tb.c_wmode, tb.c_wexp, tb.c_delay,
          tb.c_hasd, tb.c_woff, tb.c_doff, tb.c_soff, tb.c_scoff, tb.c_nbins, tb.c_prepop)
    mem = (tb.dw, tb.dw.view(np.int8), tb.dd, tb.sptr, tb.sbase, tb.soff, tb.swide, tb.sw, tb.sd)
    costs = tuple(np.int64(c) for c in tb.route_costs)
    rt = (tb.route_ptr, tb.route_slot, tb.route_nsyn, tb.slot_x, tb.slot_y, tb.slot_chip,
          np.int32(tb.io_xy[0]), np.int32(tb.io_xy[1]), *costs)
    return nrn, fmt, src, cn, mem, rt


# One sample runs multi-threaded (see _run_threaded) from this many neurons on, and a
# connection's targets are split over the threads from this much work per step (synapses).
# Messages are charged on the threads from this many directly charged sources per step.
THREADED_MIN_NEURONS = 16384
THREADED_MIN_EVENTS = 16384
THREADED_MIN_SOURCES = 256


@contextmanager
def _thread_count(n: int) -> Iterator[None]:
    """Numba's thread count set to n inside the block (untouched when it already is)."""
    prev = numba.get_num_threads()
    if prev == n:
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


def run_batch(tables: Tables, state: KernelState, steps: int, inp_ptr: NDArray[np.int64],
              inp_src: NDArray[np.int64], probe_idx: NDArray[np.int64],
              probe_var: NDArray[np.int8], rec_col: NDArray[np.int64],
              threads: int | None = None
              ) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.int64]]:
    """Run ``steps`` steps of every sample; returns (probes, spikes, counters).

    inp_ptr: (B, steps + 1) offsets into inp_src per step; inp_src: input source ids.
    probe_idx/probe_var: neuron and variable (0 = u, 1 = v) of each probe column.
    rec_col: per neuron, its column in the spike record, or -1.
    threads: how many threads to use (default: Numba's setting). Samples of a batch run
    on separate threads; a single sample of a large network (THREADED_MIN_NEURONS) splits
    its neuron segments and its larger connections over them. Results never depend on it.
    """
    B = state.batch
    check_kernel_arg("inp_ptr", inp_ptr, np.int64, 2)
    check_kernel_arg("inp_src", inp_src, np.int64, 1)
    check_kernel_arg("probe_idx", probe_idx, np.int64, 1)
    check_kernel_arg("probe_var", probe_var, np.int8, 1)
    check_kernel_arg("rec_col", rec_col, np.int64, 1)
    if inp_ptr.shape != (B, steps + 1):
        raise EmulatorInputError(f"inp_ptr has shape {inp_ptr.shape}, expected {(B, steps + 1)}",
                                 where="emulator.kernels", field="inp_ptr")
    if rec_col.shape[0] != tables.n_neurons:
        raise EmulatorInputError("rec_col must have one entry per neuron",
                                 where="emulator.kernels", field="rec_col")
    max_threads = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if threads is not None and not 1 <= threads <= max_threads:
        raise EmulatorInputError(f"threads must be in 1..{max_threads}, got {threads}",
                                 where="emulator.kernels", field="threads")
    P = numba.get_num_threads() if threads is None else threads
    n_rec = int(rec_col.max()) + 1 if rec_col.size else 0
    nslots = tables.slot_core.size
    probes = np.zeros((B, steps, probe_idx.size), np.int32)
    spikes = np.zeros((B, steps, n_rec), np.uint8)
    counters = np.zeros((B, steps, max(nslots, 1), N_COUNTERS), np.int64)
    nrn, fmt, src, cn, mem, rt = kernel_args(tables, segments_to_list(tables, rec_col))
    args = (np.int64(steps), np.int64(state.t), np.int64(tables.ring_slots), inp_ptr, inp_src,
            nrn, fmt, src, cn, mem, rt, state.u, state.v, state.ring, state.scratch,
            probe_idx, probe_var, probes, rec_col, spikes, counters)
    if steps > 0:
        if P > 1 and B > 1:
            with _thread_count(P):
                _run_batch(*args)
        elif P > 1 and tables.n_neurons >= THREADED_MIN_NEURONS:
            with _thread_count(P):
                _run_threaded(*args[:3], inp_ptr[0], *args[4:11], state.u[0], state.v[0],
                              state.ring[0], state.scratch[0], probe_idx, probe_var,
                              probes[0], rec_col, spikes[0], counters[0], tables.send,
                              np.int64(P),
                              tables.c_rowlen, np.int64(THREADED_MIN_EVENTS),
                              np.int64(THREADED_MIN_SOURCES))
        else:  # one sample, or one thread: no parallel region to wake up
            _run_serial(*args)
    state.t += steps
    return probes, spikes, counters
