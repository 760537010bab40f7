"""Numba kernels of the learning engine. Every ``@njit`` function of the engine lives here.

The kernels are private; :func:`learn_run` is the public wrapper that checks dtypes and
shapes first. A learning step is the inference step of ``emulator.kernels``
(``_inference_step``, called unchanged) followed by the learning phase, exactly as specified by
the pure-Python reference model ``emulator.learning.reference``, which the kernels must
equal bit for bit. The arithmetic (PRNG, stochastic rounding) mirrors
``emulator.learning.fixed`` scalar by scalar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from emulator.kernels import (
    KernelState,
    _inference_step,
    _trunc_shift,
    _work,
    check_kernel_arg,
    kernel_args,
)
from emulator.learning.tables import (
    G_AX0,
    G_EFRAC,
    G_KIND,
    G_KL0,
    G_LSB,
    G_NCP,
    G_NPOST,
    G_NPRE,
    G_POST0,
    G_PRESRC0,
    G_SOFF,
    G_SYN0,
    G_TE0,
    G_TE1,
    G_TW0,
    G_TW1,
    G_UX1,
    G_WFRAC,
    G_WHI,
    G_WLO,
    G_WMODE,
    G_WOFF,
    G_WSHIFT,
    G_X1D,
    G_X1I,
    L_CHAN,
    L_D0,
    L_D1,
    L_DV,
    L_KIND,
    L_LUT0,
    L_LUTN,
    L_LUTSH,
    L_MAT0,
    L_MATR,
    L_OFF,
    L_RSHIFT,
    L_RT0,
    L_SHIFT,
    L_SIZE,
    L_SLOT,
    L_SRC,
    L_THETA,
    L_UY1,
    L_Y1D,
    L_Y1I,
    P_ACC,
    P_CEW,
    P_CLINK,
    P_CNS,
    P_COUT,
    P_DB,
    P_EPOCH,
    P_IOX,
    P_IOY,
    P_LOGF,
    P_LUTB,
    P_MAXT,
    P_PRNG,
    P_TAGMAX,
    P_TFMAX,
    P_TMAX,
    T_DSH,
    T_MANT,
    T_NF,
    T_OFF,
    T_VAR,
    LearnTables,
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
    Tables,
)
from neurochip.core.errors import EmulatorInputError

__all__ = ["LearnKernelState", "learn_stream"]

_G = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# streams (see emulator.learning.fixed)
_S_X1, _S_X2, _S_Y1, _S_Y2, _S_YT, _S_RT, _S_TAG, _S_WGT = 1, 2, 3, 4, 5, 6, 7, 8
# third factor kinds (emulator.learning.config.THIRD_FACTOR_KINDS order)
_K_NONE, _K_ERROR, _K_DFA, _K_FA, _K_DCLL, _K_REWARD = 0, 1, 2, 3, 4, 5


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
def _field(h, f, pb):
    return np.int64((h >> np.uint64(f * pb)) & np.uint64((np.int64(1) << pb) - 1))


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
def _wdecode(b, mode, sh):
    x = np.int64(b)
    if mode == 0:
        if x >= 128:
            x -= 256
        return x << sh
    if mode == 1:
        return x << sh
    return -(x << sh)


@njit(cache=True, inline="always")
def _wencode(w, mode, sh):
    if mode == 0:
        return np.uint8((w >> sh) & 0xFF)
    if mode == 1:
        return np.uint8(w >> sh)
    return np.uint8((-w) >> sh)


@njit(cache=True, inline="always")
def _message(cnt, ssl, dsl, pos, params):
    """One error/modulation message from slot ssl (-1: the host) to slot dsl."""
    if ssl >= 0:
        sx, sy, sc = pos[ssl, 0], pos[ssl, 1], pos[ssl, 2]
        ch = ssl
    else:
        sx, sy, sc = params[P_IOX], params[P_IOY], np.int64(0)
        ch = dsl
    dx = abs(pos[dsl, 0] - sx)
    dy = abs(pos[dsl, 1] - sy)
    dl = abs(pos[dsl, 2] - sc)
    cnt[ch, C_ERR_MSGS] += 1
    cnt[ch, C_HOPS_EW] += dx
    cnt[ch, C_HOPS_NS] += dy
    cnt[ch, C_LINKS] += dl
    path = params[P_COUT] + dx * params[P_CEW] + dy * params[P_CNS] + dl * params[P_CLINK]
    if path > cnt[ch, C_ROUTE_MAX]:
        cnt[ch, C_ROUTE_MAX] = path


@njit(cache=True, inline="always")
def _post_value(code, gi, flag, NR, u, v):
    if code == 3:
        return np.int64(flag[gi] & 1)
    if code == 4:
        return NR[0, gi]
    if code == 5:
        return NR[1, gi]
    if code == 6:
        return NR[2, gi]
    if code == 7:
        return NR[3, gi]
    if code == 8:
        return np.int64(v[gi])
    return np.int64(u[gi])


@njit(cache=True)
def _statement_fast(which, n_pre, n_post, woff, syn0, mant, k1, frac, step, lo, hi, acc_lo,
                    acc_hi, mode, wsh, sl, key, lf, pb, Q, P, dw, tags, cnt, col):
    """The common case of :func:`_statement` (dense, one core, one term without synapse
    variables), with the same arithmetic and the same random numbers: the term's number is
    d = 2 gid and the final rounding's d + 1, both in the draw d >> lf."""
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    k2 = frac + step
    ln = np.int64(-1)
    lh = np.uint64(0)
    n_vis = 0
    for j in range(n_pre):
        qv = Q[j]
        if qv == 0:
            continue
        qm = mant * qv
        row = woff + j * n_post
        g0 = syn0 + j * n_post
        for i in range(n_post):
            pv = P[i]
            if pv == 0:
                continue
            gid = g0 + i
            d = gid << 1
            n = d >> lf
            if n != ln:
                lh = _draw(key, n)
                ln = n
            sh = np.uint64((d & fm) * pb)
            r0 = np.int64((lh >> sh) & mask)
            r1 = np.int64((lh >> (sh + np.uint64(pb))) & mask)
            if which == 0:
                z = _wdecode(dw[row + i], mode, wsh)
            else:
                z = tags[gid]
            acc = _clip((z << frac) + _sround(qm * pv, k1, r0, pb), acc_lo, acc_hi)
            new = _clip(_sround(acc, k2, r1, pb) << step, lo, hi)
            if which == 0:
                dw[row + i] = _wencode(new, mode, wsh)
            else:
                tags[gid] = new
            n_vis += 1
    cnt[sl, col] += n_vis


@njit(cache=True)
def _statement(p, which, lt, regs, flag, u, v, src_spk, nslot, kb, wmem, cnt):
    """Run the 'dw' (which = 0) or 'de' (which = 1) statement of plastic group p."""
    G, kloc, TERMS, params = lt[0], lt[1], lt[3], lt[10]
    XR, NR, tags, Pw, Qw = regs[0], regs[1], regs[3], regs[5], regs[6]
    dw, sptr, sbase, soff_s, swide, sw = wmem
    acc_bits, pb, tag_max = params[P_ACC], params[P_PRNG], params[P_TAGMAX]
    lf = params[P_LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    q0 = G[p, G_TW0] if which == 0 else G[p, G_TE0]
    nt = (G[p, G_TW1] if which == 0 else G[p, G_TE1]) - q0
    n_post = G[p, G_NPOST]
    n_pre = G[p, G_NPRE]
    nc = G[p, G_NCP]
    a0 = G[p, G_AX0]
    g0 = G[p, G_POST0]
    s0 = G[p, G_PRESRC0]
    kl0 = G[p, G_KL0]
    syn0 = G[p, G_SYN0]
    woff = G[p, G_WOFF]
    row0 = G[p, G_SOFF]
    # postsynaptic and presynaptic parts of every term
    any_post = False
    for i in range(n_post):
        for q in range(nt):
            val = np.int64(1)
            for f in range(TERMS[q0 + q, T_NF]):
                code = TERMS[q0 + q, T_VAR + f]
                if 3 <= code <= 9:
                    val *= _post_value(code, g0 + i, flag, NR, u, v) + TERMS[q0 + q, T_OFF + f]
            Pw[i, q] = val
            if val != 0:
                any_post = True
    if not any_post:
        return
    for a in range(n_pre * nc):
        j = a // nc
        for q in range(nt):
            val = np.int64(1)
            for f in range(TERMS[q0 + q, T_NF]):
                code = TERMS[q0 + q, T_VAR + f]
                if code == 0:
                    val *= np.int64(src_spk[s0 + j]) + TERMS[q0 + q, T_OFF + f]
                elif code == 1:
                    val *= XR[0, a0 + a] + TERMS[q0 + q, T_OFF + f]
                elif code == 2:
                    val *= XR[1, a0 + a] + TERMS[q0 + q, T_OFF + f]
            Qw[a, q] = val
    frac = G[p, G_WFRAC] if which == 0 else G[p, G_EFRAC]
    step = G[p, G_LSB] if which == 0 else np.int64(0)
    lo = G[p, G_WLO] if which == 0 else -tag_max
    hi = G[p, G_WHI] if which == 0 else tag_max
    acc_lo = -(np.int64(1) << (acc_bits - 1))
    acc_hi = (np.int64(1) << (acc_bits - 1)) - 1
    col = C_LEARN if which == 0 else C_TRACE
    stream = _S_WGT if which == 0 else _S_TAG
    mode = G[p, G_WMODE]
    wsh = G[p, G_WSHIFT]
    kind = G[p, G_KIND]
    dense = kind == 0
    wide = kind == 2
    syn_factors = False
    for q in range(nt):
        for f in range(TERMS[q0 + q, T_NF]):
            if TERMS[q0 + q, T_VAR + f] >= 10:
                syn_factors = True
    if dense and nc == 1 and nt == 1 and not syn_factors:
        _statement_fast(which, n_pre, n_post, woff, syn0, TERMS[q0, T_MANT], -TERMS[q0, T_DSH],
                        frac, step, lo, hi, acc_lo, acc_hi, mode, wsh, np.int64(nslot[g0]),
                        kb[np.int64(nslot[g0]), stream], lf, pb, Qw[:, 0], Pw[:, 0], dw, tags,
                        cnt, col)
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
            w = _wdecode(byte, mode, wsh)
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
                prod = TERMS[q0 + q, T_MANT] * Qw[a, q] * Pw[ip, q]
                if syn_factors:
                    for f in range(TERMS[q0 + q, T_NF]):
                        code = TERMS[q0 + q, T_VAR + f]
                        if code == 10:
                            prod *= w + TERMS[q0 + q, T_OFF + f]
                        elif code == 11:
                            prod *= e + TERMS[q0 + q, T_OFF + f]
                acc = _clip(acc + _sround(prod, -TERMS[q0 + q, T_DSH], r, pb), acc_lo, acc_hi)
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
def _axon_traces(cnt, G, AX, XR, src_spk, kb, params):
    """Step 2: the presynaptic traces of every plastic input axon."""
    tmax, pb, db = params[P_TMAX], params[P_PRNG], params[P_DB]
    lf = params[P_LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    # Every real axon is updated (a zero trace without a spike stays zero whatever the
    # random number); a 64-bit draw serves 2^lf consecutive axons of one core.
    keep_shift = db
    for p in range(G.shape[0]):
        nc = G[p, G_NCP]
        a0 = G[p, G_AX0]
        s0 = G[p, G_PRESRC0]
        n_ax = G[p, G_NPRE] * nc
        for trc in range(2):
            if G[p, G_UX1 + trc] == 0:
                continue
            imp = G[p, G_X1I + 2 * trc]
            keep = (np.int64(1) << keep_shift) - G[p, G_X1D + 2 * trc]
            stream = _S_X1 + trc
            ln = np.int64(-1)
            lsl = np.int64(-1)
            lh = np.uint64(0)
            for a in range(a0, a0 + n_ax):
                sl = AX[0, a]
                n = a >> lf
                if n != ln or sl != lsl:
                    lh = _draw(kb[sl, stream], n)
                    ln = n
                    lsl = sl
                r = np.int64((lh >> np.uint64((a & fm) * pb)) & mask)
                x0 = np.int64(src_spk[s0 + (a - a0) // nc]) if nc > 1 else \
                    np.int64(src_spk[s0 + a - a0])
                y = _sround(XR[trc, a] * keep, keep_shift, r, pb) + imp * x0
                XR[trc, a] = min(y, tmax) * AX[1, a]  # only real axons have traces


@njit(cache=True)
def _neuron_state(cnt, POP, NR, lut, flag, v_prev, u, v, bias, nslot, dshift, v_bits, kb,
                  params):
    """Step 3: y0, the post traces and the surrogate derivative of learning neurons."""
    tmax, pb, db = params[P_TMAX], params[P_PRNG], params[P_DB]
    lf = params[P_LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    unity = np.int64(1) << dshift
    rnd = unity - 1
    v_max = (np.int64(1) << (v_bits - 1)) - 1
    L = POP.shape[0]
    for li in range(L):
        off = POP[li, L_OFF]
        size = POP[li, L_SIZE]
        for trc in range(2):
            if POP[li, L_UY1 + trc] == 0:
                continue
            imp = POP[li, L_Y1I + 2 * trc]
            dec = POP[li, L_Y1D + 2 * trc]
            stream = _S_Y1 + trc
            ln = np.int64(-1)
            lsl = np.int64(-1)
            lh = np.uint64(0)
            for gi in range(off, off + size):
                y0 = np.int64(flag[gi] & 1)
                y = NR[trc, gi]
                if y == 0 and y0 == 0:
                    continue
                sl = np.int64(nslot[gi])
                n = gi >> lf
                if n != ln or sl != lsl:
                    lh = _draw(kb[sl, stream], n)
                    ln = n
                    lsl = sl
                r = np.int64((lh >> np.uint64((gi & fm) * pb)) & mask)
                NR[trc, gi] = _trace(y, y0, imp, dec, r, db, pb, tmax)
        lutn = POP[li, L_LUTN]
        if lutn > 0:
            half = lutn // 2
            th = POP[li, L_THETA]
            lsh = POP[li, L_LUTSH]
            l0 = POP[li, L_LUT0]
            keep = unity - POP[li, L_DV]
            for gi in range(off, off + size):
                vp = np.int64(v[gi])
                if flag[gi] & 1:  # the voltage before the reset (reset in place by the update)
                    vp = _trunc_shift(np.int64(v_prev[gi]) * keep, dshift, rnd) \
                        + np.int64(u[gi]) + bias[gi]
                    vp = min(max(vp, -v_max), v_max)
                idx = _clip(((vp - th) >> lsh) + half, 0, lutn - 1)
                NR[2, gi] = lut[l0 + idx]


@njit(cache=True)
def _third_factors(t, cnt, POP, DEST, NR, rtr, mat, pos, params, chan_off, tgt, chan_mode,
                   reward, nslot, kb, wk, wk2):
    """Step 4: the third factor m of every learning population, sources first."""
    tmax, tfmax, pb, db, lutb = params[P_TMAX], params[P_TFMAX], params[P_PRNG], params[P_DB], \
        params[P_LUTB]
    lf = params[P_LOGF]
    fm = (np.int64(1) << lf) - 1
    mask = np.uint64((np.int64(1) << pb) - 1)
    L = POP.shape[0]
    for li in range(L):
        kd = POP[li, L_KIND]
        off = POP[li, L_OFF]
        size = POP[li, L_SIZE]
        shift = POP[li, L_SHIFT]
        if kd == _K_ERROR:
            ch = POP[li, L_CHAN]
            c0 = chan_off[ch]
            cm = chan_mode[ch]
            imp = POP[li, L_Y1I]
            dec = POP[li, L_Y1D]
            for i in range(size):
                gi = off + i
                tv = np.int64(tgt[t, c0 + i])
                sl = np.int64(nslot[gi])
                if tv != 0:
                    _message(cnt, -1, sl, pos, params)
                if cm == 1:
                    NR[4, gi] = _clip(tv, 0, tmax)
                elif NR[4, gi] != 0 or tv != 0:
                    h = _draw(kb[sl, _S_YT], gi >> lf)
                    r = np.int64((h >> np.uint64((gi & fm) * pb)) & mask)
                    NR[4, gi] = _trace(NR[4, gi], np.int64(tv != 0), imp, dec, r, db, pb, tmax)
                NR[3, gi] = _clip(_rhalf(NR[4, gi] - NR[0, gi], shift), -tfmax, tfmax)
        elif kd == _K_DFA or kd == _K_FA:
            s = POP[li, L_SRC]
            soff_ = POP[s, L_OFF]
            has_lut = POP[s, L_LUTN] > 0
            m0 = POP[li, L_MAT0]
            for i in range(size):
                wk[i] = 0
            for k in range(POP[s, L_SIZE]):
                gk = soff_ + k
                if has_lut:
                    dl = _clip(_rhalf(NR[3, gk] * NR[2, gk], lutb), -tfmax, tfmax)
                else:
                    dl = NR[3, gk]
                if dl == 0:
                    continue
                for d in range(POP[li, L_D0], POP[li, L_D1]):
                    _message(cnt, np.int64(nslot[gk]), DEST[0, d], pos, params)
                    cnt[DEST[0, d], C_SYNOPS] += DEST[1, d]
                col = mat[m0 + k * size: m0 + (k + 1) * size]  # stored transposed
                for i in range(size):
                    wk[i] += col[i] * dl
            for i in range(size):
                NR[3, off + i] = _clip(_rhalf(wk[i], shift), -tfmax, tfmax)
        elif kd == _K_DCLL:
            ncls = POP[li, L_MATR]
            sl = POP[li, L_SLOT]
            ch = POP[li, L_CHAN]
            c0 = chan_off[ch]
            cm = chan_mode[ch]
            r0 = POP[li, L_RT0]
            m0 = POP[li, L_MAT0]
            imp = POP[li, L_Y1I]
            dec = POP[li, L_Y1D]
            for c in range(ncls):
                tv = np.int64(tgt[t, c0 + c])
                if tv != 0:
                    _message(cnt, -1, sl, pos, params)
                if cm == 1:
                    rtr[r0 + c] = _clip(tv, 0, tmax)
                elif rtr[r0 + c] != 0 or tv != 0:
                    h = _draw(kb[sl, _S_RT], (r0 + c) >> lf)
                    r = np.int64((h >> np.uint64(((r0 + c) & fm) * pb)) & mask)
                    rtr[r0 + c] = _trace(rtr[r0 + c], np.int64(tv != 0), imp, dec, r, db, pb,
                                         tmax)
            nz = 0
            for c in range(ncls):
                acc = np.int64(0)
                for i in range(size):
                    acc += mat[m0 + c * size + i] * NR[0, off + i]
                err = _clip(rtr[r0 + c] - _rhalf(acc, POP[li, L_RSHIFT]), -tfmax, tfmax)
                wk2[c] = err
                if err != 0:
                    nz += 1
            cnt[sl, C_SYNOPS] += ncls * size + nz * size
            for i in range(size):
                wk[i] = 0
            for c in range(ncls):
                if wk2[c] == 0:
                    continue
                for i in range(size):
                    wk[i] += mat[m0 + c * size + i] * wk2[c]
            for i in range(size):
                NR[3, off + i] = _clip(_rhalf(wk[i], shift), -tfmax, tfmax)
        elif kd == _K_REWARD:
            rw = np.int64(reward[t])
            if rw != 0:
                for d in range(POP[li, L_D0], POP[li, L_D1]):
                    _message(cnt, -1, DEST[0, d], pos, params)
            for i in range(size):
                NR[3, off + i] = _clip(rw, -tfmax, tfmax)
        else:
            for i in range(size):
                NR[3, off + i] = 0


@njit(cache=True)
def _learn_phase(t, cnt, lt, regs, flag, v_prev, u, v, src_spk, bias, nslot, dshift, v_bits,
                 wmem, tgt, chan_mode, reward, kb):
    """Steps 2-6 of the reference model's learning phase for one step."""
    G, AX, POP, DEST, lut, mat, slot_seed, pos, params, chan_off = \
        lt[0], lt[2], lt[4], lt[5], lt[6], lt[7], lt[8], lt[9], lt[10], lt[11]
    trace_per_step = lt[12]
    XR, NR, rtr, clock_a, wk, wk2 = regs[0], regs[1], regs[2], regs[4], regs[7], regs[8]
    epoch = params[P_EPOCH]
    clock = clock_a[0]
    for s in range(slot_seed.shape[0]):  # per-core keys of this step, one per stream
        for st in range(1, 9):
            kb[s, st] = _base(slot_seed[s], clock, st)
    for s in range(slot_seed.shape[0]):  # trace/LUT/third-factor registers updated per step
        cnt[s, C_TRACE] += trace_per_step[s]
    _axon_traces(cnt, G, AX, XR, src_spk, kb, params)
    _neuron_state(cnt, POP, NR, lut, flag, v_prev, u, v, bias, nslot, dshift, v_bits, kb,
                  params)
    _third_factors(t, cnt, POP, DEST, NR, rtr, mat, pos, params, chan_off, tgt, chan_mode,
                   reward, nslot, kb, wk, wk2)
    # 5. tags every step, then 6. weights at the end of an epoch (they read the new tags)
    epoch_end = (clock + 1) % epoch == 0
    for p in range(G.shape[0]):
        if G[p, G_TE1] > G[p, G_TE0]:
            _statement(p, 1, lt, regs, flag, u, v, src_spk, nslot, kb, wmem, cnt)
        if epoch_end and G[p, G_TW1] > G[p, G_TW0]:
            _statement(p, 0, lt, regs, flag, u, v, src_spk, nslot, kb, wmem, cnt)
    clock_a[0] = clock + 1



@njit(cache=True)
def _learn_sample(T, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
                  u, v, ring, scratch, probe_idx, probe_var, probe_out, rec_col, spk_out,
                  counters, lt, regs, tgt, chan_mode, reward):
    """T steps of one sample with learning: the inference step of ``_run_sample`` (the
    same function), then the learning phase."""
    nslot, bias = nrn[6], nrn[5]
    dshift, v_bits = fmt[0], fmt[2]
    n_in = src[3]
    wmem = (mem[0], mem[3], mem[4], mem[5], mem[6], mem[7])
    N = u.shape[0]
    S = src[0].shape[0]
    K = lt[8].shape[0]
    fired, flag, srcs, rows_all, spk_cnt, cls_cnt, cls_list, acc16 = _work(
        N, S, src[1].shape[0], src[5].shape[0])
    v_prev = np.empty(N, np.int32)
    src_spk = np.zeros(S, np.uint8)
    kb = np.empty((max(K, 1), 9), np.uint64)
    for t in range(T):
        cnt = counters[t]
        v_prev[:] = v
        nf = _inference_step(t, t0, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt, u, v,
                             ring, scratch, probe_idx, probe_var, probe_out, rec_col, spk_out,
                             cnt, fired, flag, srcs, rows_all, spk_cnt, cls_cnt, cls_list, acc16)
        # every spike of the step (also of neurons without axons) for the learning phase
        i0, i1 = inp_ptr[t], inp_ptr[t + 1]
        for q in range(i0, i1):
            src_spk[inp_src[q]] = 1
        for q in range(nf):
            src_spk[n_in + fired[q]] = 1
        _learn_phase(t, cnt, lt, regs, flag, v_prev, u, v, src_spk, bias, nslot, dshift,
                     v_bits, wmem, tgt, chan_mode, reward, kb)
        for q in range(i0, i1):
            src_spk[inp_src[q]] = 0
        for q in range(nf):
            src_spk[n_in + fired[q]] = 0


@njit(cache=True)
def _learn_stream(order, reset, t_start, T, D, inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
                  u, v, ring, scratch, probe_idx, probe_var, probe_out, rec_col, spk_out,
                  counters, lt, regs, tgt, chan_mode, reward):
    """Samples order[0], order[1], ... one after another, each T steps, learning; with
    ``reset`` the neuron state, delay ring and learning registers (not the weights, not the
    clock) are cleared before each sample. Results of the k-th go to row k."""
    for k in range(order.shape[0]):
        b = order[k]
        if reset:
            u[:] = 0
            v[:] = 0
            ring[:] = 0
            scratch[:] = 0
            regs[0][:] = 0
            regs[1][:] = 0
            regs[2][:] = 0
            regs[3][:] = 0
            t0 = 0
        else:
            t0 = t_start + k * T
        _learn_sample(T, t0, D, inp_ptr[b], inp_src, nrn, fmt, src, cn, mem, rt, u, v, ring,
                      scratch, probe_idx, probe_var, probe_out[k], rec_col, spk_out[k],
                      counters[k], lt, regs, tgt[b], chan_mode, reward[b])


class LearnKernelState:
    """Learning registers of one sample stream, and the learning clock.

    x (2, axons): x1, x2; n (5, N): y1, y2, sg, m, yt; rt: DCLL target traces; tags.
    """

    def __init__(self, tables: Tables, lt: LearnTables) -> None:
        N = tables.n_neurons
        z = np.zeros
        self.x = z((2, lt.n_axons), np.int64)
        self.n = z((5, N), np.int64)
        self.rt = z(max(lt.n_rt, 1), np.int64)
        self.tags = z(max(lt.n_syn, 1), np.int64)
        self.clock = z(1, np.int64)
        maxt = int(lt.params[P_MAXT])
        self.Pw = z((max(N, 1), maxt), np.int64)
        self.Qw = z((lt.max_group_axons, maxt), np.int64)
        self.wk = z(max(N, 1), np.int64)
        self.wk2 = z(lt.max_classes, np.int64)

    def reset_traces(self) -> None:
        for a in (self.x, self.n, self.rt, self.tags):
            a[:] = 0

    def as_tuple(self) -> tuple[NDArray[np.int64], ...]:
        return (self.x, self.n, self.rt, self.tags, self.clock, self.Pw, self.Qw, self.wk,
                self.wk2)


def _inference_args(tb: Tables) -> tuple[Any, ...]:
    """The inference kernels' argument tuples (the same as ``run_batch`` uses)."""
    return kernel_args(tb)


def _check(name: str, arr: NDArray[Any], dtype: Any, ndim: int) -> None:
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
    nrn, fmt, src, cn, mem, rt = _inference_args(tables)
    ltt = lt.kernel_tuple()
    if steps > 0 and K > 0:
        _learn_stream(order, bool(reset), np.int64(state.t), np.int64(steps),
                      np.int64(tables.ring_slots), inp_ptr, inp_src, nrn, fmt, src, cn, mem, rt,
                      state.u[0], state.v[0], state.ring[0], state.scratch[0], probe_idx,
                      probe_var, probes, rec_col, spikes, counters, ltt, lstate.as_tuple(),
                      targets, chan_mode, reward)
        state.t = steps if reset else state.t + K * steps
    return probes, spikes, counters
