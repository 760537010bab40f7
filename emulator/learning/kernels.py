"""Numba kernels of the learning engine. Every ``@njit`` function of the engine lives here.

The kernels are private; :func:`learn_stream` is the public wrapper that checks dtypes and
shapes first. A learning step is the inference step of ``emulator.kernels``
(``step.inference_step``, called unchanged) followed by the learning phase, exactly as
specified by the pure-Python reference model ``emulator.learning.reference``, which the
kernels must equal bit for bit. The arithmetic (PRNG, stochastic rounding) mirrors
``emulator.learning.fixed`` scalar by scalar.

Records (besides those of ``emulator.kernels.records``): :class:`LearnRecord` (the tables,
``emulator.learning.tables``), :class:`LearnRegs` (the registers), :class:`Teach` (targets
and reward), together :class:`Learn`; per step a :class:`StepView` of what the inference
step left; per statement a :class:`Statement` (a dense one's parts and core runs a
:class:`Rows`, what it writes a :class:`Mem`); a stream of samples a :class:`Plan`.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import njit
from numpy.typing import NDArray

from emulator.kernels import (
    KernelState,
    check_kernel_arg,
    general_flag,
    kernel_network,
    trunc_shift,
)
from emulator.kernels.records import Inputs, Record
from emulator.kernels.routing import message_cycles, path_costs
from emulator.kernels.step import inference_step, work
from emulator.kernels.weights import decode_weight
from emulator.learning.fixed import (
    STREAM_RT,
    STREAM_TAG,
    STREAM_WGT,
    STREAM_X1,
    STREAM_Y1,
    STREAM_YT,
)
from emulator.learning.tables import (
    GroupCol,
    LearnRecord,
    LearnTables,
    NeuronReg,
    Param,
    PopCol,
    TermCol,
)
from emulator.tables import (
    C_ERR_MSGS,
    C_HOPS_EW,
    C_HOPS_NS,
    C_LEARN,
    C_LINKS,
    C_ROUTE_MAX,
    C_SYNOPS,
    C_TRACE,
    N_COUNTERS,
    ConnKind,
    Tables,
)
from neurochip.core.errors import EmulatorInputError
from neurochip.core.fixedpoint import WeightDecode
from neurochip.core.learning import ThirdFactorCode, Var

__all__ = ["LearnKernelState", "learn_stream"]

I64 = NDArray[np.int64]
_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_N_STREAMS = 9  # streams 1..8 of emulator.learning.fixed (0 unused)
# short names of the table columns
GC, PC, TC = GroupCol, PopCol, TermCol
Y1, SG, M, YT = NeuronReg.Y1, NeuronReg.SG, NeuronReg.M, NeuronReg.YT


class LearnRegs(NamedTuple):
    """Learning registers of one sample stream (:class:`LearnKernelState`), and work."""

    x: I64  # (2, axons): x1, x2 per axon
    n: I64  # (NeuronReg, N): y1, y2, sg, m, yt per neuron
    rt: I64  # DCLL target traces
    tags: I64  # per synapse gid
    clock: I64  # (1,) the learning clock
    Pw: I64  # (N, max terms) postsynaptic part of each term (work)
    Qw: I64  # (max group axons, max terms) presynaptic part (work)
    wk: I64  # (N,) third-factor sums (work)
    wk2: I64  # (max classes,) DCLL errors (work)


class Teach(NamedTuple):
    """What the host gives per step (batched: a leading axis over samples)."""

    targets: NDArray[np.int32]  # (T, target columns) spikes (!= 0) or values
    chan_mode: I64  # per channel 0 spikes, 1 values
    reward: NDArray[np.int32]  # (T,)


class Learn(NamedTuple):
    """Everything the learning phase reads and writes besides the network."""

    lt: LearnRecord
    regs: LearnRegs
    teach: Teach
    threads: np.int64  # Numba threads the large weight statements may use


class StepView(NamedTuple):
    """What the inference step of this step left, for the learning phase."""

    flag: NDArray[np.uint8]  # (N,) bit 0 spiked
    u: NDArray[np.int32]  # (N,) after the step
    v: NDArray[np.int32]  # (N,) after the reset
    v_prev: NDArray[np.int32]  # (N,) before the step
    src_spk: NDArray[np.uint8]  # (S,) 1 for every source that spiked (also without axons)
    kb: NDArray[np.uint64]  # (K, streams) per-core PRNG keys of this step


class Plan(NamedTuple):
    """A stream of samples: order[k] runs k-th, each ``steps`` steps."""

    order: I64
    reset: bool  # clear neuron state and registers (not weights, not clock) per sample
    t_start: np.int64  # steps run before (the ring position when not reset)
    steps: np.int64


class Statement(NamedTuple):
    """One dw/de statement of one dense group in the common case (:func:`_statement_dense`):
    one term without synapse variables. Stochastic rounding of x / 2^k is written
    branch-free as ``((x << kl) + (((r >> ka) << kb) & km)) >> kr`` (:func:`_sr`) with the
    constants of :func:`_sround_consts`: k1* of the term, k2* of the final rounding."""

    n_post: np.int64
    nc: np.int64  # cores of the group's postsynaptic neurons (axons per presynaptic source)
    woff: np.int64  # first weight byte
    syn0: np.int64  # first synapse gid
    mant: np.int64  # the term's mantissa
    k1l: np.int64  # the term's rounding, as _sround_consts gives it
    k1a: np.int64
    k1b: np.int64
    k1m: np.int64
    k1r: np.int64
    k2l: np.int64  # the final rounding
    k2a: np.int64
    k2b: np.int64
    k2m: np.int64
    k2r: np.int64
    frac: np.int64  # accumulator fraction bits
    step: np.int64  # weight step 2^step (dw), 0 (de)
    lo: np.int64  # range of the result
    hi: np.int64
    acc_lo: np.int64  # range of the accumulator
    acc_hi: np.int64
    mode: np.int64  # WeightDecode
    wsh: np.int64  # decode shift
    lf: np.int64  # log2 random numbers per draw
    pb: np.int64  # bits per random number
    n_pre: np.int64
    post0: np.int64  # first postsynaptic neuron
    kl0: np.int64  # its entry in kloc
    stream: np.int64  # PRNG stream
    col: np.int64  # counter column
    threads: np.int64  # Numba threads a large statement may use


class Rows(NamedTuple):
    """A dense statement's parts, and its postsynaptic neurons in runs on one core."""

    Q: I64  # presynaptic part per axon
    P: I64  # postsynaptic part per neuron (contiguous)
    runs: I64  # (3, R): first and end neuron of each run, the rank of its core
    keys: NDArray[np.uint64]  # (R,) the PRNG key of each run's core


class Mem(NamedTuple):
    """What a statement writes: weight bytes, tags, counters."""

    dw: NDArray[np.uint8]
    tags: I64
    cnt: I64


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _base(seed, clock, stream):
    s = np.uint64(seed) ^ (np.uint64(stream) << np.uint64(32))
    return _mix(_mix(s) + np.uint64(clock) * _G)


@njit(cache=True, inline="always")
def _draw(b, idx):
    return _mix(b + (np.uint64(idx) + np.uint64(1)) * _G)


@njit(cache=True, inline="always")
def _sround(x, k, r, pb):
    if k <= 0:
        return x << (-k)
    if k <= pb:
        return (x + (r >> (pb - k))) >> k
    return (x + (r << (k - pb))) >> k


@njit(cache=True, inline="always")
def _rhalf(x, k):
    if k <= 0:
        return x << (-k)
    return (x + (np.int64(1) << (k - 1))) >> k


@njit(cache=True, inline="always")
def _clip(x, lo, hi):
    return min(max(x, lo), hi)


@njit(cache=True, inline="always")
def _trace(x, spike, imp, dec, r, db, pb, tmax):
    """x <- min(sround(x * (2^db - dec), db) + imp * spike, tmax)."""
    y = _sround(np.int64(x) * ((np.int64(1) << db) - dec), db, r, pb) + imp * spike
    return min(y, tmax)


@njit(cache=True, inline="always")
def _wencode(w, mode, sh):
    """The stored byte of weight w (the inverse of the decode rule; w representable)."""
    if mode == WeightDecode.SIGNED:
        return np.uint8((w >> sh) & 0xFF)
    if mode == WeightDecode.UNSIGNED:
        return np.uint8(w >> sh)
    return np.uint8((-w) >> sh)


@njit(cache=True, inline="always")
def _message(cnt, ssl, dsl, rt):
    """One error/modulation message from slot ssl (-1: the host) to slot dsl (rt: the
    network's Routes, for the mesh and the path costs)."""
    if ssl >= 0:
        sx, sy, sc = rt.slot_x[ssl], rt.slot_y[ssl], rt.slot_chip[ssl]
        ch = ssl
    else:
        sx, sy, sc = rt.io_x, rt.io_y, np.int32(0)
        ch = dsl
    dx = np.int64(abs(rt.slot_x[dsl] - sx))
    dy = np.int64(abs(rt.slot_y[dsl] - sy))
    dl = np.int64(abs(rt.slot_chip[dsl] - sc))
    cnt[ch, C_ERR_MSGS] += 1
    cnt[ch, C_HOPS_EW] += dx
    cnt[ch, C_HOPS_NS] += dy
    cnt[ch, C_LINKS] += dl
    path = message_cycles(path_costs(rt), dx, dy, dl)
    if path > cnt[ch, C_ROUTE_MAX]:
        cnt[ch, C_ROUTE_MAX] = path


@njit(cache=True, inline="always")
def _post_value(code, gi, flag, NR, u, v):
    """A postsynaptic variable (Var Y0 .. U) of neuron gi (flag, u, v: of the StepView,
    passed as arrays: this runs per synapse term factor)."""
    if code == Var.Y0:
        return np.int64(flag[gi] & 1)
    if code == Var.Y1:
        return NR[NeuronReg.Y1, gi]
    if code == Var.Y2:
        return NR[NeuronReg.Y2, gi]
    if code == Var.SG:
        return NR[NeuronReg.SG, gi]
    if code == Var.M:
        return NR[NeuronReg.M, gi]
    if code == Var.V:
        return np.int64(v[gi])
    return np.int64(u[gi])


@njit(cache=True, inline="always")
def _sround_consts(k, pb):
    """Constants (kl, ka, kb, km, kr) of :func:`_sr` for stochastic rounding by 2^k."""
    z = np.int64(0)
    if k <= 0:
        return (-k, z, z, z, z)
    return (z, max(pb - k, z), max(k - pb, z), np.int64(-1), k)


@njit(cache=True, inline="always")
def _sr(x, r, kl, ka, kb, km, kr):
    """:func:`_sround` of x with random number r, k given as :func:`_sround_consts`."""
    return ((x << kl) + (((r >> ka) << kb) & km)) >> kr


@njit(cache=True, inline="always")
def _dense_update(s, z, qm, pv, gid, key):
    """The statement's new value of one synapse (old value z: weight or tag), with the
    random numbers 2 gid (the term) and 2 gid + 1 (the final rounding) of key."""
    d = gid << 1
    h = _draw(key, d >> s.lf)
    sh = np.uint64((d & ((np.int64(1) << s.lf) - 1)) * s.pb)
    mask = np.uint64((np.int64(1) << s.pb) - 1)
    r0 = np.int64((h >> sh) & mask)
    r1 = np.int64((h >> (sh + np.uint64(s.pb))) & mask)
    acc = _clip((z << s.frac) + _sr(qm * pv, r0, s.k1l, s.k1a, s.k1b, s.k1m, s.k1r),
                s.acc_lo, s.acc_hi)
    return _clip(_sr(acc, r1, s.k2l, s.k2a, s.k2b, s.k2m, s.k2r) << s.step, s.lo, s.hi)


@njit(cache=True)
def _dense_rows(which, s, j0, j1, rows, dw, tags):
    """Presynaptic rows j0..j1 of a dense statement s (which: 0 dw, 1 de; rows: Rows).
    The inner loops are branch-free (a synapse whose postsynaptic part is zero keeps its
    value) so that they vectorise; rows whose presynaptic part is zero are skipped."""
    n_post, nc, mode, wsh = s.n_post, s.nc, s.mode, s.wsh
    Q, P, runs, keys = rows.Q, rows.P, rows.runs, rows.keys
    for j in range(j0, j1):
        row = s.woff + j * n_post
        g0 = s.syn0 + j * n_post
        for ri in range(runs.shape[1]):
            qv = Q[j * nc + runs[2, ri]]
            if qv == 0:
                continue
            qm = s.mant * qv
            key = keys[ri]
            i0, i1 = runs[0, ri], runs[1, ri]
            p = P[i0:i1]
            if which == 0:
                w = dw[row + i0: row + i1]
                for i in range(i1 - i0):
                    old = w[i]
                    new = _wencode(_dense_update(s, decode_weight(old, mode, wsh), qm, p[i],
                                                 g0 + i0 + i, key), mode, wsh)
                    w[i] = new if p[i] != 0 else old
            else:
                e = tags[g0 + i0: g0 + i1]
                for i in range(i1 - i0):
                    z = e[i]
                    new = _dense_update(s, z, qm, p[i], g0 + i0 + i, key)
                    e[i] = new if p[i] != 0 else z


@njit(cache=True, parallel=True)
def _dense_rows_threaded(which, s, rows, dw, tags):
    """:func:`_dense_rows` over all rows, split into blocks run on s.threads Numba
    threads (every synapse's random numbers depend on its gid alone: any split gives the
    same result)."""
    n_pre = s.n_pre
    nb = min(n_pre, 8 * s.threads)
    for b in numba.prange(nb):
        _dense_rows(which, s, b * n_pre // nb, (b + 1) * n_pre // nb, rows, dw, tags)


# a dense statement of at least this many candidate synapses runs on the Numba threads
THREADED_SYNAPSES = 1 << 15


@njit(cache=True)
def _statement_dense(which, s, Q, P, kloc, nslot, kb, mem):
    """The common case of :func:`_statement` (dense, one term without synapse variables;
    any number of cores), with the same arithmetic and random numbers: those of synapse
    gid are numbers 2 gid (the term) and 2 gid + 1 (the final rounding), on its
    postsynaptic neuron's core. Counts a visit per synapse whose both parts are non-zero
    (mem: Mem)."""
    n_post, nc, n_pre, g0 = s.n_post, s.nc, s.n_pre, s.post0
    P = np.ascontiguousarray(P)  # a column of the term table: contiguous for the vector loops
    # runs of postsynaptic neurons on one core, their non-zero postsynaptic parts
    R = 1
    for i in range(1, n_post):
        if nslot[g0 + i] != nslot[g0 + i - 1]:
            R += 1
    runs = np.empty((3, R), np.int64)
    keys = np.empty(R, np.uint64)
    nnz = np.zeros(R, np.int64)
    ri = 0
    runs[0, 0] = 0
    for i in range(n_post):
        if i > 0 and nslot[g0 + i] != nslot[g0 + i - 1]:
            runs[1, ri] = i
            ri += 1
            runs[0, ri] = i
        if P[i] != 0:
            nnz[ri] += 1
    runs[1, R - 1] = n_post
    total = np.int64(0)
    for ri in range(R):
        i0 = runs[0, ri]
        runs[2, ri] = kloc[s.kl0 + i0] if nc > 1 else 0
        sl = np.int64(nslot[g0 + i0])
        keys[ri] = kb[sl, s.stream]
        active = np.int64(0)
        for j in range(n_pre):
            if Q[j * nc + runs[2, ri]] != 0:
                active += 1
        mem.cnt[sl, s.col] += active * nnz[ri]
        total += active * nnz[ri]
    if total == 0:
        return
    rows = Rows(Q, P, runs, keys)
    if total >= THREADED_SYNAPSES and s.threads > 1:
        _dense_rows_threaded(which, s, rows, mem.dw, mem.tags)
    else:
        _dense_rows(which, s, 0, n_pre, rows, mem.dw, mem.tags)


@njit(cache=True)
def _statement(p, which, lrn, view, syn, nslot, cnt):
    """Run the 'dw' (which = 0) or 'de' (which = 1) statement of plastic group p (syn:
    the network's Synapses, nslot: the neurons' core slots)."""
    lt, regs = lrn.lt, lrn.regs
    G, kloc, TERMS, params = lt.G, lt.kloc, lt.TERMS, lt.params
    XR, NR, tags, Pw, Qw = regs.x, regs.n, regs.tags, regs.Pw, regs.Qw
    kb, src_spk, flag, u, v = view.kb, view.src_spk, view.flag, view.u, view.v
    dw, sptr, sbase, soff_s, swide, sw = syn.dw, syn.sptr, syn.sbase, syn.soff, syn.swide, \
        syn.sw
    acc_bits, pb, tag_max = params[Param.ACC], params[Param.PRNG], params[Param.TAGMAX]
    lf = params[Param.LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    q0 = G[p, GC.TW0] if which == 0 else G[p, GC.TE0]
    nt = (G[p, GC.TW1] if which == 0 else G[p, GC.TE1]) - q0
    n_post = G[p, GC.NPOST]
    n_pre = G[p, GC.NPRE]
    nc = G[p, GC.NCP]
    a0 = G[p, GC.AX0]
    g0 = G[p, GC.POST0]
    s0 = G[p, GC.PRESRC0]
    kl0 = G[p, GC.KL0]
    syn0 = G[p, GC.SYN0]
    woff = G[p, GC.WOFF]
    row0 = G[p, GC.SOFF]
    # postsynaptic and presynaptic parts of every term
    any_post = False
    for i in range(n_post):
        for q in range(nt):
            val = np.int64(1)
            for f in range(TERMS[q0 + q, TC.NF]):
                code = TERMS[q0 + q, TC.VAR + f]
                if Var.Y0 <= code <= Var.U:
                    val *= _post_value(code, g0 + i, flag, NR, u, v) + TERMS[q0 + q, TC.OFF + f]
            Pw[i, q] = val
            if val != 0:
                any_post = True
    if not any_post:
        return
    for a in range(n_pre * nc):
        j = a // nc
        for q in range(nt):
            val = np.int64(1)
            for f in range(TERMS[q0 + q, TC.NF]):
                code = TERMS[q0 + q, TC.VAR + f]
                if code == Var.X0:
                    val *= np.int64(src_spk[s0 + j]) + TERMS[q0 + q, TC.OFF + f]
                elif code == Var.X1:
                    val *= XR[0, a0 + a] + TERMS[q0 + q, TC.OFF + f]
                elif code == Var.X2:
                    val *= XR[1, a0 + a] + TERMS[q0 + q, TC.OFF + f]
            Qw[a, q] = val
    frac = G[p, GC.WFRAC] if which == 0 else G[p, GC.EFRAC]
    step = G[p, GC.LSB] if which == 0 else np.int64(0)
    lo = G[p, GC.WLO] if which == 0 else -tag_max
    hi = G[p, GC.WHI] if which == 0 else tag_max
    acc_lo = -(np.int64(1) << (acc_bits - 1))
    acc_hi = (np.int64(1) << (acc_bits - 1)) - 1
    col = C_LEARN if which == 0 else C_TRACE
    stream = STREAM_WGT if which == 0 else STREAM_TAG
    mode = G[p, GC.WMODE]
    wsh = G[p, GC.WSHIFT]
    kind = G[p, GC.KIND]
    dense = kind == ConnKind.DENSE
    wide = kind == ConnKind.SPARSE_WIDE
    syn_factors = False
    for q in range(nt):
        for f in range(TERMS[q0 + q, TC.NF]):
            if TERMS[q0 + q, TC.VAR + f] >= Var.W:
                syn_factors = True
    if dense and nt == 1 and not syn_factors:
        c1 = _sround_consts(-TERMS[q0, TC.DSH], pb)
        c2 = _sround_consts(frac + step, pb)
        st = Statement(n_post, nc, woff, syn0, TERMS[q0, TC.MANT], c1[0], c1[1], c1[2], c1[3],
                       c1[4], c2[0], c2[1], c2[2], c2[3], c2[4], frac, step, lo, hi, acc_lo,
                       acc_hi, mode, wsh, lf, pb, n_pre, g0, kl0, np.int64(stream),
                       np.int64(col), lrn.threads)
        _statement_dense(which, st, Qw[:, 0], Pw[:, 0], kloc, nslot, kb, Mem(dw, tags, cnt))
        return
    ln = np.int64(-1)
    lsl = np.int64(-1)
    lh = np.uint64(0)
    for j in range(n_pre):
        any_q = False
        for kl in range(nc):
            for q in range(nt):
                if Qw[j * nc + kl, q] != 0:
                    any_q = True
        if not any_q:
            continue
        if dense:
            k_start = np.int64(0)
            k_end = n_post
        else:
            k_start = sptr[row0 + j]
            k_end = sptr[row0 + j + 1]
        for k in range(k_start, k_end):
            if dense:
                ip = np.int64(k)
                sidx = j * n_post + ip
            else:
                ip = np.int64(swide[k]) if wide else np.int64(sbase[row0 + j]) + np.int64(soff_s[k])
                sidx = k - sptr[row0]
            a = j * nc + (kloc[kl0 + ip] if nc > 1 else 0)
            visited = False
            for q in range(nt):
                if Qw[a, q] != 0 and Pw[ip, q] != 0:
                    visited = True
                    break
            if not visited:
                continue
            byte = dw[woff + sidx] if dense else sw[k]
            gid = syn0 + sidx
            w = decode_weight(byte, mode, wsh)
            e = tags[gid]
            acc = (w if which == 0 else e) << frac
            sl = np.int64(nslot[g0 + ip])
            d = gid * (nt + 1)
            for q in range(nt + 1):
                n = d >> lf
                if n != ln or sl != lsl:
                    lh = _draw(kb[sl, stream], n)
                    ln = n
                    lsl = sl
                r = np.int64((lh >> np.uint64((d & fm) * pb)) & mask)
                d += 1
                if q == nt:
                    acc = _clip(_sround(acc, frac + step, r, pb) << step, lo, hi)
                    break
                prod = TERMS[q0 + q, TC.MANT] * Qw[a, q] * Pw[ip, q]
                if syn_factors:
                    for f in range(TERMS[q0 + q, TC.NF]):
                        code = TERMS[q0 + q, TC.VAR + f]
                        if code == Var.W:
                            prod *= w + TERMS[q0 + q, TC.OFF + f]
                        elif code == Var.E:
                            prod *= e + TERMS[q0 + q, TC.OFF + f]
                acc = _clip(acc + _sround(prod, -TERMS[q0 + q, TC.DSH], r, pb), acc_lo, acc_hi)
            if which == 0:
                b2 = _wencode(acc, mode, wsh)
                if dense:
                    dw[woff + sidx] = b2
                else:
                    sw[k] = b2
            else:
                tags[gid] = acc
            cnt[sl, col] += 1


@njit(cache=True)
def _traces_vec(x, spk, real, key, at, tc):
    """The axons q = j * nc + k (source j's copy on the k-th core, whose PRNG key is
    key; at = (a0, nc, k)): x[q] <- min(sround(x[q] * keep, db) + imp * spk[j], tmax) *
    real[q] with random number a0 + q (tc = (imp, keep, db, pb, lf, tmax)). Branch-free,
    to vectorise: a zero trace without a spike stays zero whatever the random number, so
    every axon may be updated."""
    a0, nc, k = at
    imp, keep, db, pb, lf, tmax = tc
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    if nc == 1:
        for q in range(spk.shape[0]):
            a = a0 + q
            h = _draw(key, a >> lf)
            r = np.int64((h >> np.uint64((a & fm) * pb)) & mask)
            y = _sround(x[q] * keep, db, r, pb) + imp * np.int64(spk[q])
            x[q] = min(y, tmax) * real[q]
    else:
        for j in range(spk.shape[0]):
            q = j * nc + k
            a = a0 + q
            h = _draw(key, a >> lf)
            r = np.int64((h >> np.uint64((a & fm) * pb)) & mask)
            y = _sround(x[q] * keep, db, r, pb) + imp * np.int64(spk[j])
            x[q] = min(y, tmax) * real[q]


@njit(cache=True, inline="always")
def _axon_traces(lt, regs, view):
    """Step 2: the presynaptic traces of every plastic input axon (a 64-bit draw serves
    2^lf consecutive axons of one core; only real axons, those with synapses, have
    traces)."""
    G, AX, XR, params = lt.G, lt.AX, regs.x, lt.params
    src_spk, kb = view.src_spk, view.kb
    tmax, pb, db = params[Param.TMAX], params[Param.PRNG], params[Param.DB]
    lf = params[Param.LOGF]
    for p in range(G.shape[0]):
        nc = G[p, GC.NCP]
        a0 = G[p, GC.AX0]
        s0 = G[p, GC.PRESRC0]
        n_pre = G[p, GC.NPRE]
        n_ax = n_pre * nc
        for trc in range(2):
            if G[p, GC.UX1 + trc] == 0:
                continue
            imp = G[p, GC.X1I + 2 * trc]
            keep = (np.int64(1) << db) - G[p, GC.X1D + 2 * trc]
            keys = kb[:, STREAM_X1 + trc]
            x = XR[trc, a0: a0 + n_ax]
            slot = AX[0, a0: a0 + n_ax]
            real = AX[1, a0: a0 + n_ax]
            for k in range(nc):  # axon j * nc + k: source j's copy on the k-th core
                _traces_vec(x, src_spk[s0: s0 + n_pre], real, keys[slot[k]], (a0, nc, k),
                            (imp, keep, db, pb, lf, tmax))


@njit(cache=True)
def _surrogates(sg, lut, sv, bias, c):
    """sg[i] <- lut[clip(((v_i - th) >> lsh) + n/2, 0, n - 1)] with v_i the voltage before
    the reset: a neuron that spiked (flag bit 0) was reset in place by the update, its
    voltage is recomputed from v_prev, u and the bias (sv: a StepView of the population;
    c = (th, lsh, keep, dshift, rnd, v_max)). Branch-free, to vectorise."""
    flag, v, v_prev, u = sv.flag, sv.v, sv.v_prev, sv.u
    th, lsh, keep, dshift, rnd, v_max = c
    lutn = lut.shape[0]
    half = lutn // 2
    for i in range(sg.shape[0]):
        vr = trunc_shift(np.int64(v_prev[i]) * keep, dshift, rnd) + np.int64(u[i]) + bias[i]
        vr = min(max(vr, -v_max), v_max)
        vp = vr if flag[i] & 1 else np.int64(v[i])
        sg[i] = lut[_clip(((vp - th) >> lsh) + half, 0, lutn - 1)]


@njit(cache=True, inline="always")
def _neuron_state(lt, regs, view, nrn, full):
    """Step 3: y0, the post traces and the surrogate derivative of learning neurons. The
    surrogate of a population that is no feedback source is read only by the statements:
    it is computed when ``full`` (see :func:`_learn_phase`), its register holding the
    value of the last such step otherwise."""
    POP, NR, lut, params = lt.POP, regs.n, lt.lut, lt.params
    flag, v_prev, u, v, kb = view.flag, view.v_prev, view.u, view.v, view.kb
    bias, nslot = nrn.bias, nrn.nslot
    dshift, v_bits = nrn.decay_shift, nrn.v_bits
    tmax, pb, db = params[Param.TMAX], params[Param.PRNG], params[Param.DB]
    lf = params[Param.LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    unity = np.int64(1) << dshift
    rnd = unity - 1
    v_max = (np.int64(1) << (v_bits - 1)) - 1
    L = POP.shape[0]
    for li in range(L):
        off = POP[li, PC.OFF]
        size = POP[li, PC.SIZE]
        for trc in range(2):
            if POP[li, PC.UY1 + trc] == 0:
                continue
            imp = POP[li, PC.Y1I + 2 * trc]
            dec = POP[li, PC.Y1D + 2 * trc]
            stream = STREAM_Y1 + trc
            ln = np.int64(-1)
            lsl = np.int64(-1)
            lh = np.uint64(0)
            for gi in range(off, off + size):
                y0 = np.int64(flag[gi] & 1)
                y = NR[Y1 + trc, gi]
                if y == 0 and y0 == 0:
                    continue
                sl = np.int64(nslot[gi])
                n = gi >> lf
                if n != ln or sl != lsl:
                    lh = _draw(kb[sl, stream], n)
                    ln = n
                    lsl = sl
                r = np.int64((lh >> np.uint64((gi & fm) * pb)) & mask)
                NR[Y1 + trc, gi] = _trace(y, y0, imp, dec, r, db, pb, tmax)
        lutn = POP[li, PC.LUTN]
        if lutn > 0 and (full or _feedback_source(POP, li)):
            th = POP[li, PC.THETA]
            lsh = POP[li, PC.LUTSH]
            l0 = POP[li, PC.LUT0]
            keep = unity - POP[li, PC.DV]
            g = slice(off, off + size)
            sv = StepView(flag[g], u[g], v[g], v_prev[g], view.src_spk, kb)
            _surrogates(NR[SG, g], lut[l0: l0 + lutn], sv, bias[g],
                        (th, lsh, keep, dshift, rnd, v_max))


@njit(cache=True)
def _axpy(y, x, a):
    """y += a * x (int64 vectors)."""
    for i in range(y.shape[0]):
        y[i] += x[i] * a


@njit(cache=True)
def _dot(x, y):
    """sum x * y (int64 vectors)."""
    acc = np.int64(0)
    for i in range(x.shape[0]):
        acc += x[i] * y[i]
    return acc


@njit(cache=True)
def _third_out(m, wk, shift, tfmax):
    """m <- sat(rhalf(wk, shift)): a layer's third factor from its feedback sums."""
    for i in range(m.shape[0]):
        m[i] = _clip(_rhalf(wk[i], shift), -tfmax, tfmax)


@njit(cache=True, inline="always")
def _third_factors(t, cnt, lrn, view, nrn, rt, full):
    """Step 4: the third factor m of every learning population, sources first. The
    feedback sums of a DFA or FA population that is no feedback source itself are read only
    by the statements: they are formed when ``full`` (see :func:`_learn_phase`); the
    error messages they take are counted every step."""
    lt, regs, teach = lrn.lt, lrn.regs, lrn.teach
    POP, DEST, mat, params, chan_off = lt.POP, lt.DEST, lt.mat, lt.params, lt.chan_off
    NR, rtr, wk, wk2 = regs.n, regs.rt, regs.wk, regs.wk2
    tgt, chan_mode, reward = teach.targets, teach.chan_mode, teach.reward
    nslot, kb = nrn.nslot, view.kb
    tmax, tfmax, pb, db = params[Param.TMAX], params[Param.TFMAX], params[Param.PRNG], \
        params[Param.DB]
    lutb = params[Param.LUTB]
    lf = params[Param.LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    L = POP.shape[0]
    for li in range(L):
        kd = POP[li, PC.KIND]
        off = POP[li, PC.OFF]
        size = POP[li, PC.SIZE]
        shift = POP[li, PC.SHIFT]
        if kd == ThirdFactorCode.ERROR:
            ch = POP[li, PC.CHAN]
            c0 = chan_off[ch]
            cm = chan_mode[ch]
            imp = POP[li, PC.Y1I]
            dec = POP[li, PC.Y1D]
            for i in range(size):
                gi = off + i
                tv = np.int64(tgt[t, c0 + i])
                sl = np.int64(nslot[gi])
                if tv != 0:
                    _message(cnt, -1, sl, rt)
                if cm == 1:
                    NR[YT, gi] = _clip(tv, 0, tmax)
                elif NR[YT, gi] != 0 or tv != 0:
                    h = _draw(kb[sl, STREAM_YT], gi >> lf)
                    r = np.int64((h >> np.uint64((gi & fm) * pb)) & mask)
                    NR[YT, gi] = _trace(NR[YT, gi], np.int64(tv != 0), imp, dec, r, db, pb, tmax)
                NR[M, gi] = _clip(_rhalf(NR[YT, gi] - NR[Y1, gi], shift), -tfmax, tfmax)
        elif kd == ThirdFactorCode.DFA or kd == ThirdFactorCode.FA:
            s = POP[li, PC.SRC]
            soff_ = POP[s, PC.OFF]
            has_lut = POP[s, PC.LUTN] > 0
            m0 = POP[li, PC.MAT0]
            sums = full or _feedback_source(POP, li)
            for i in range(size):
                wk[i] = 0
            for k in range(POP[s, PC.SIZE]):
                gk = soff_ + k
                if has_lut:
                    dl = _clip(_rhalf(NR[M, gk] * NR[SG, gk], lutb), -tfmax, tfmax)
                else:
                    dl = NR[M, gk]
                if dl == 0:
                    continue
                for d in range(POP[li, PC.D0], POP[li, PC.D1]):
                    _message(cnt, np.int64(nslot[gk]), DEST[0, d], rt)
                    cnt[DEST[0, d], C_SYNOPS] += DEST[1, d]
                if sums:
                    _axpy(wk[:size], mat[m0 + k * size: m0 + (k + 1) * size], dl)  # transposed
            if sums:
                _third_out(NR[M, off: off + size], wk[:size], shift, tfmax)
        elif kd == ThirdFactorCode.DCLL:
            ncls = POP[li, PC.MATR]
            sl = POP[li, PC.SLOT]
            ch = POP[li, PC.CHAN]
            c0 = chan_off[ch]
            cm = chan_mode[ch]
            r0 = POP[li, PC.RT0]
            m0 = POP[li, PC.MAT0]
            imp = POP[li, PC.Y1I]
            dec = POP[li, PC.Y1D]
            for c in range(ncls):
                tv = np.int64(tgt[t, c0 + c])
                if tv != 0:
                    _message(cnt, -1, sl, rt)
                if cm == 1:
                    rtr[r0 + c] = _clip(tv, 0, tmax)
                elif rtr[r0 + c] != 0 or tv != 0:
                    h = _draw(kb[sl, STREAM_RT], (r0 + c) >> lf)
                    r = np.int64((h >> np.uint64(((r0 + c) & fm) * pb)) & mask)
                    rtr[r0 + c] = _trace(rtr[r0 + c], np.int64(tv != 0), imp, dec, r, db, pb,
                                         tmax)
            nz = 0
            y1 = NR[Y1, off: off + size]
            for c in range(ncls):
                acc = _dot(mat[m0 + c * size: m0 + (c + 1) * size], y1)
                err = _clip(rtr[r0 + c] - _rhalf(acc, POP[li, PC.RSHIFT]), -tfmax, tfmax)
                wk2[c] = err
                if err != 0:
                    nz += 1
            cnt[sl, C_SYNOPS] += ncls * size + nz * size
            for i in range(size):
                wk[i] = 0
            for c in range(ncls):
                if wk2[c] != 0:
                    _axpy(wk[:size], mat[m0 + c * size: m0 + (c + 1) * size], wk2[c])
            _third_out(NR[M, off: off + size], wk[:size], shift, tfmax)
        elif kd == ThirdFactorCode.REWARD:
            rw = np.int64(reward[t])
            if rw != 0:
                for d in range(POP[li, PC.D0], POP[li, PC.D1]):
                    _message(cnt, -1, DEST[0, d], rt)
            for i in range(size):
                NR[M, off + i] = _clip(rw, -tfmax, tfmax)
        else:
            for i in range(size):
                NR[M, off + i] = 0


@njit(cache=True, inline="always")
def _feedback_source(POP, li):
    """Whether learning population li feeds a DFA or FA population its error (its m and
    surrogate are then read every step)."""
    for k in range(POP.shape[0]):
        kd = POP[k, PC.KIND]
        if (kd == ThirdFactorCode.DFA or kd == ThirdFactorCode.FA) and POP[k, PC.SRC] == li:
            return True
    return False


@njit(cache=True, inline="always")
def _learn_phase(t, last, cnt, net, lrn, view):
    """Steps 2-6 of the reference model's learning phase for one step (last: the last step
    of the sample). It and its steps are inlined into the step loop: a call increfs and
    decrefs every array of the records it is given, which costs more than the work of a
    small network's step.

    Registers that no later step reads back (a surrogate, the feedback sums of m) and that
    only the statements read are formed on the steps whose statements read them (every
    step when there are tag statements, the end of an epoch for the weights) and on the
    last step of a sample (whose registers the host may read); the registers equal the
    reference model's whenever they can be observed."""
    lt, regs = lrn.lt, lrn.regs
    G, slot_seed, kb = lt.G, lt.slot_seed, view.kb
    epoch = lt.params[Param.EPOCH]
    clock = regs.clock[0]
    for s in range(slot_seed.shape[0]):  # per-core keys of this step, one per stream
        for st in range(1, _N_STREAMS):
            kb[s, st] = _base(slot_seed[s], clock, st)
    for s in range(slot_seed.shape[0]):  # trace/LUT/third-factor registers updated per step
        cnt[s, C_TRACE] += lt.trace_per_step[s]
    # 5. tags every step, then 6. weights at the end of an epoch (they read the new tags)
    epoch_end = (clock + 1) % epoch == 0
    full = epoch_end or last
    for p in range(G.shape[0]):
        if G[p, GC.TE1] > G[p, GC.TE0]:
            full = True
    _axon_traces(lt, regs, view)
    _neuron_state(lt, regs, view, net.neurons, full)
    _third_factors(t, cnt, lrn, view, net.neurons, net.routes, full)
    for p in range(G.shape[0]):
        if G[p, GC.TE1] > G[p, GC.TE0]:
            _statement(p, 1, lrn, view, net.syn, net.neurons.nslot, cnt)
        if epoch_end and G[p, GC.TW1] > G[p, GC.TW0]:
            _statement(p, 0, lrn, view, net.syn, net.neurons.nslot, cnt)
    regs.clock[0] = clock + 1


@njit(cache=True)
def _learn_sample(T, t0, net, inp, st, rec, lrn, general):
    """T steps of one sample with learning: the inference step of ``step.run_sample``
    (the same function; general: see ``step.inference_step``), then the learning phase."""
    n_in = net.sources.n_inputs
    N = st.u.shape[0]
    S = net.sources.pop.shape[0]
    K = lrn.lt.slot_seed.shape[0]
    wk = work(net, N)
    fired = wk.fired
    view = StepView(wk.flag, st.u, st.v, np.empty(N, np.int32), np.zeros(S, np.uint8),
                    np.empty((max(K, 1), _N_STREAMS), np.uint64))
    src_spk = view.src_spk
    for t in range(T):
        cnt = rec.counters[t]
        view.v_prev[:] = st.v
        nf = inference_step(t, t0, net, inp, st, rec, wk, general)
        # every spike of the step (also of neurons without axons) for the learning phase
        i0, i1 = inp.ptr[t], inp.ptr[t + 1]
        for q in range(i0, i1):
            src_spk[inp.src[q]] = 1
        for q in range(nf):
            src_spk[n_in + fired[q]] = 1
        _learn_phase(t, t == T - 1, cnt, net, lrn, view)
        for q in range(i0, i1):
            src_spk[inp.src[q]] = 0
        for q in range(nf):
            src_spk[n_in + fired[q]] = 0


@njit(cache=True)
def _learn_stream(plan, net, inp, st, rec, lrn, general):
    """Samples plan.order[0], plan.order[1], ... one after another, each plan.steps steps,
    learning; with plan.reset the neuron state, delay ring and learning registers (not the
    weights, not the clock) are cleared before each sample. inp, rec and lrn.teach are
    batched (a leading axis over samples; outputs over the stream). Results of the k-th
    go to row k."""
    T = plan.steps
    regs, teach = lrn.regs, lrn.teach
    for k in range(plan.order.shape[0]):
        b = plan.order[k]
        if plan.reset:
            st.u[:] = 0
            st.v[:] = 0
            st.ring[:] = 0
            st.scratch[:] = 0
            st.aux[:] = 0
            regs.x[:] = 0
            regs.n[:] = 0
            regs.rt[:] = 0
            regs.tags[:] = 0
            t0 = np.int64(0)
        else:
            t0 = plan.t_start + k * T
        rec_k = Record(rec.probe_idx, rec.probe_var, rec.rec_col, rec.probes[k], rec.spikes[k],
                       rec.counters[k], rec.values[k])
        lrn_b = Learn(lrn.lt, regs, Teach(teach.targets[b], teach.chan_mode, teach.reward[b]),
                      lrn.threads)
        _learn_sample(T, t0, net, Inputs(inp.ptr[b], inp.src, inp.val), st, rec_k, lrn_b,
                      general)


class LearnKernelState:
    """Learning registers of one sample stream, and the learning clock.

    x (2, axons): x1, x2; n (5, N): y1, y2, sg, m, yt; rt: DCLL target traces; tags.
    """

    def __init__(self, tables: Tables, lt: LearnTables) -> None:
        N = tables.n_neurons
        z = np.zeros
        self.x = z((2, lt.n_axons), np.int64)
        self.n = z((len(NeuronReg), N), np.int64)
        self.rt = z(max(lt.n_rt, 1), np.int64)
        self.tags = z(max(lt.n_syn, 1), np.int64)
        self.clock = z(1, np.int64)
        maxt = int(lt.params[Param.MAXT])
        self.Pw = z((max(N, 1), maxt), np.int64)
        self.Qw = z((lt.max_group_axons, maxt), np.int64)
        self.wk = z(max(N, 1), np.int64)
        self.wk2 = z(lt.max_classes, np.int64)

    def reset_traces(self) -> None:
        for a in (self.x, self.n, self.rt, self.tags):
            a[:] = 0

    def record(self) -> LearnRegs:
        """The kernels' record of these registers."""
        return LearnRegs(self.x, self.n, self.rt, self.tags, self.clock, self.Pw, self.Qw,
                         self.wk, self.wk2)


def _check(name: str, arr: NDArray[np.generic], dtype: type, ndim: int) -> None:
    check_kernel_arg(name, arr, dtype, ndim, "emulator.learning.kernels")


def learn_stream(tables: Tables, lt: LearnTables, state: KernelState, lstate: LearnKernelState,
                 order: NDArray[np.int64], reset: bool, steps: int, inp_ptr: NDArray[np.int64],
                 inp_src: NDArray[np.int64], probe_idx: NDArray[np.int64],
                 probe_var: NDArray[np.int8], rec_col: NDArray[np.int64],
                 targets: NDArray[np.int32], chan_mode: NDArray[np.int64],
                 reward: NDArray[np.int32]
                 ) -> tuple[NDArray[np.int32], NDArray[np.uint8], NDArray[np.int64]]:
    """Learn from samples ``order[0], order[1], ...`` (each ``steps`` steps) in one call.

    inp_ptr (B, steps + 1) / inp_src: the B samples' input spikes (as
    :func:`emulator.kernels.spike_lists` gives them); targets (B, steps, target columns):
    spikes (!= 0) or values per channel, chan_mode: per channel 0 spikes or 1 values;
    reward (B, steps). With ``reset`` the neuron state, delay ring and learning registers
    are cleared before each sample (never the weights or the learning clock). Weights are
    updated in ``tables`` (the emulator's copy of synapse memory), registers in ``lstate``.
    Returns probes, spikes and counters, each with a leading axis over ``order``.
    """
    if state.batch != 1:
        raise EmulatorInputError("learning runs one sample stream at a time (batch 1)",
                                 where="emulator.learning.kernels", field="batch")
    _check("order", order, np.int64, 1)
    _check("inp_ptr", inp_ptr, np.int64, 2)
    _check("inp_src", inp_src, np.int64, 1)
    _check("probe_idx", probe_idx, np.int64, 1)
    _check("probe_var", probe_var, np.int8, 1)
    _check("rec_col", rec_col, np.int64, 1)
    _check("targets", targets, np.int32, 3)
    _check("chan_mode", chan_mode, np.int64, 1)
    _check("reward", reward, np.int32, 2)
    B = inp_ptr.shape[0]
    n_ch = int(lt.chan_off[-1])
    if inp_ptr.shape != (B, steps + 1):
        raise EmulatorInputError(f"inp_ptr has shape {inp_ptr.shape}, expected {(B, steps + 1)}",
                                 where="emulator.learning.kernels", field="inp_ptr")
    if targets.shape != (B, steps, n_ch) or reward.shape != (B, steps) \
            or chan_mode.shape != (len(lt.channels),):
        raise EmulatorInputError(
            f"targets {targets.shape} / reward {reward.shape} / modes {chan_mode.shape} do not "
            f"match {B} samples of {steps} steps and {n_ch} target columns",
            where="emulator.learning.kernels", field="targets")
    if order.size and (order.min() < 0 or order.max() >= B):
        raise EmulatorInputError(f"order must index the {B} samples",
                                 where="emulator.learning.kernels", field="order")
    if rec_col.shape[0] != tables.n_neurons:
        raise EmulatorInputError("rec_col must have one entry per neuron",
                                 where="emulator.learning.kernels", field="rec_col")
    n_rec = int(rec_col.max()) + 1 if rec_col.size else 0
    nslots = tables.slot_core.size
    K = order.size
    probes = np.zeros((K, steps, probe_idx.size), np.int32)
    spikes = np.zeros((K, steps, n_rec), np.uint8)
    counters = np.zeros((K, steps, max(nslots, 1), N_COUNTERS), np.int64)
    if steps > 0 and K > 0:
        plan = Plan(order, bool(reset), np.int64(state.t), np.int64(steps))
        lrn = Learn(lt.record(), lstate.record(), Teach(targets, chan_mode, reward),
                    np.int64(numba.get_num_threads()))
        _learn_stream(plan, kernel_network(tables), Inputs(inp_ptr, inp_src, np.zeros(0, np.int32)),
                      state.sample(0),
                      Record(probe_idx, probe_var, rec_col, probes, spikes, counters,
                             np.zeros((K, steps, 0), np.int32)), lrn, general_flag(tables))
        state.t = steps if reset else state.t + K * steps
    return probes, spikes, counters
