"""Neuron kernels: the LIF update (64-bit lanes, and 32-bit lanes where the formats allow),
the other neuron models (:func:`update_model`), and the per-segment counting and listing
of spikes.

Per neuron g of a population, one step (``neurochip.core.fixedpoint.lif_step``)::

    u <- wrap_once(wrap32(trunc0(u * (2^ds - 1 - du) >> ds) + (a << input_shift)))
    v <- sat(trunc0(v * (2^ds - dv) >> ds) + u + bias)                      [new u]
    spike if v > theta (strict); reset v to 0, or subtract theta

The other models (``neurochip.core.neuron_models``, whose numpy functions they equal) run
in :func:`update_model`, one call per population (or segment) whose model is not LIF: the
LIF populations never pass through it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from emulator.kernels.intrinsics import bit0_mask64, trailing_zeros
from emulator.kernels.records import LISTED, Formats, Population
from emulator.tables import C_ACTIVE, C_SPIKES_OUT, ModelId, ResetMode, Tables
from neurochip.core.fixedpoint import DATAPATH_BITS

__all__ = ["narrow_formats_ok", "narrow_ok"]

_I32 = np.int32
_NARROW_SHIFT = 12  # the decay width the 32-bit neuron update is built for
ZERO = ResetMode.ZERO
NONSPIKING = ResetMode.NONSPIKING
LIF = ModelId.LIF
LIF_RESET = ModelId.LIF_RESET
TERNARY_LIF = ModelId.TERNARY_LIF
SIGMA = ModelId.SIGMA
DELTA = ModelId.DELTA
LIF_PER_NEURON = ModelId.LIF_PER_NEURON
ATRLIF = ModelId.ATRLIF
RF = ModelId.RF
RF_IZ = ModelId.RF_IZ
RF_ZERO = ModelId.RF_ZERO
_RF_LIM = (1 << 23) - 1  # Lava's resonators: 24-bit real and imaginary parts


@njit(cache=True, inline="always")
def trunc_shift(p: np.int64, shift: np.int64, rnd: np.int64) -> np.int64:
    """sign(p) * (|p| >> shift), branch-free: 2^shift - 1 (rnd) is added to negative values
    before the shift. Decays truncate the magnitude (hardware works on sign/magnitude):
    -96.7 -> -96."""
    return (p + ((p >> 63) & rnd)) >> shift


@njit(cache=True)
def _update_range(u, v, a_in, bias, flag, pop, fmt):
    """One step of the neurons of one population (array slices; pop: its Population,
    fmt: Formats).

    flag[g] gets bit 0 when neuron g spiked and bit 1 when it had synaptic input. The loops
    run from 0 over slices so LLVM can vectorise them (no negative-index checks). With
    ``fmt.narrow`` (see :func:`narrow_ok`) the 32-bit form runs, else the 64-bit one.
    """
    if fmt.narrow != 0:
        _update_range32(u, v, a_in, bias, flag, pop, fmt)
    else:
        _update_range64(u, v, a_in, bias, flag, pop, fmt)


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
def _update_range32(u, v, a_in, bias, flag, pop, fmt):
    """_update_range64 in 32-bit lanes (twice as many per vector), for the formats of
    :func:`narrow_formats_ok`: the input sum then wraps in 32 bits exactly as Lava's int32
    sum does, and the voltage sum cannot overflow."""
    k_u = _I32(4095 - pop.du)
    k_v = _I32(4096 - pop.dv)
    ish = fmt.input_shift & 31  # < 32 here; the mask lets LLVM shift in 32 bits (mod 2^32)
    u_half = _I32(1 << (fmt.u_bits - 1))
    u_low = _I32(-u_half)
    u_full = _I32(1 << fmt.u_bits)
    v_max = _I32((1 << (fmt.v_bits - 1)) - 1)
    v_min = _I32(-v_max)
    th = _I32(pop.theta)
    spiking = pop.mode != NONSPIKING
    to_zero = pop.mode == ZERO
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
def _update_range64(u, v, a_in, bias, flag, pop, fmt):
    """The neuron update in 64-bit lanes, for any register widths and decay width."""
    dshift = fmt.decay_shift
    in_shift = fmt.input_shift
    theta = pop.theta
    unity = np.int64(1) << dshift
    rnd = unity - 1
    u_keep = rnd - pop.du  # Lava's hidden +1 on the current decay
    v_keep = unity - pop.dv
    u_half = np.int64(1) << (fmt.u_bits - 1)
    u_full = np.int64(1) << fmt.u_bits
    i32_half = np.int64(1) << (DATAPATH_BITS - 1)
    i32_mask = (np.int64(1) << DATAPATH_BITS) - 1
    v_max = (np.int64(1) << (fmt.v_bits - 1)) - 1
    spiking = pop.mode != NONSPIKING
    to_zero = pop.mode == ZERO
    for g in range(u.shape[0]):
        a = np.int64(a_in[g])
        a_in[g] = 0
        x = trunc_shift(np.int64(u[g]) * u_keep, dshift, rnd) + (a << in_shift)
        # Lava adds the shifted input to the decayed current in int32: a sum beyond 32
        # bits wraps (two's complement) before the register's own wrap.
        x = ((x + i32_half) & i32_mask) - i32_half
        if x > u_half:  # one two's-complement wrap of the current register (Lava)
            x -= u_full
        elif x <= -u_half:
            x += u_full
        u[g] = x
        y = trunc_shift(np.int64(v[g]) * v_keep, dshift, rnd) + x + bias[g]
        y = min(max(y, -v_max), v_max)  # the voltage register saturates
        s = spiking & (y > theta)  # strict threshold
        if s:
            y = 0 if to_zero else y - theta
        v[g] = y
        flag[g] = np.uint8(s) | (np.uint8(a != 0) << np.uint8(1))


@njit(cache=True, inline="always")
def formats(nrn):
    """The Formats record of Neurons nrn."""
    return Formats(nrn.decay_shift, nrn.u_bits, nrn.v_bits, nrn.input_shift, nrn.narrow)


@njit(cache=True, inline="always")
def population(nrn, p):
    """The registers of LIF population p (a Population record). Outside loops only: an
    inlined record argument costs a reference count of each of its arrays per call (the
    loops over populations use :func:`population_of`)."""
    return population_of(nrn.pop_du, nrn.pop_dv, nrn.pop_theta, nrn.pop_mode, p)


@njit(cache=True, inline="always")
def population_of(du, dv, theta, mode, p):
    """The Population record of population p from the Neurons arrays pop_du, pop_dv,
    pop_theta and pop_mode."""
    return Population(np.int64(du[p]), np.int64(dv[p]), np.int64(theta[p]), mode[p])


@njit(cache=True, inline="always")
def _w32(x):
    """x in Lava's int32 datapath (two's-complement wrap), as int64."""
    return np.int64(np.int32(x))


@njit(cache=True, inline="always")
def _update_per_neuron(p, g0, g1, st, a_in, flag, nrn):
    """_update_range64 of neurons g0..g1-1 (of population p) with each neuron's own du
    and dv."""
    u, v, bias = st.u, st.v, nrn.bias
    fmt = formats(nrn)
    dshift = fmt.decay_shift
    in_shift = fmt.input_shift
    theta = np.int64(nrn.pop_theta[p])
    mode = nrn.pop_mode[p]
    unity = np.int64(1) << dshift
    rnd = unity - 1
    u_half = np.int64(1) << (fmt.u_bits - 1)
    u_full = np.int64(1) << fmt.u_bits
    i32_half = np.int64(1) << (DATAPATH_BITS - 1)
    i32_mask = (np.int64(1) << DATAPATH_BITS) - 1
    v_max = (np.int64(1) << (fmt.v_bits - 1)) - 1
    spiking = mode != NONSPIKING
    to_zero = mode == ZERO
    ndu, ndv = nrn.ndu, nrn.ndv
    for g in range(g0, g1):
        a = np.int64(a_in[g])
        a_in[g] = 0
        x = trunc_shift(np.int64(u[g]) * (rnd - np.int64(ndu[g])), dshift, rnd) + (a << in_shift)
        x = ((x + i32_half) & i32_mask) - i32_half
        if x > u_half:
            x -= u_full
        elif x <= -u_half:
            x += u_full
        u[g] = x
        y = trunc_shift(np.int64(v[g]) * (unity - np.int64(ndv[g])), dshift, rnd) + x + bias[g]
        y = min(max(y, -v_max), v_max)
        s = spiking & (y > theta)
        if s:
            y = 0 if to_zero else y - theta
        v[g] = y
        flag[g] = np.uint8(s) | (np.uint8(a != 0) << np.uint8(1))


@njit(cache=True, inline="always")
def _update_atrlif(p, g0, g1, st, a_in, flag, nrn, t):
    """ATRLIF neurons g0..g1-1 of population p: i and v by the LIF update (never
    spiking), then the threshold theta (aux 0) and refractory state r (aux 1) decay;
    spike where v - r >= theta, which adds 2 theta to r and theta_step to theta."""
    u, v, aux = st.u, st.v, st.aux
    N = u.shape[0]
    par = nrn.pop_par[p]
    theta0, step = par[0], par[1]
    fmt = formats(nrn)
    ds = fmt.decay_shift
    rnd = (np.int64(1) << ds) - 1
    k_th = (np.int64(1) << ds) - par[2]
    k_r = (np.int64(1) << ds) - par[3]
    pop = Population(np.int64(nrn.pop_du[p]), np.int64(nrn.pop_dv[p]), np.int64(0),
                     np.int8(NONSPIKING))
    _update_range64(u[g0:g1], v[g0:g1], a_in[g0:g1], nrn.bias[g0:g1], flag[g0:g1], pop, fmt)
    for g in range(g0, g1):
        th = theta0 if t == 0 else np.int64(aux[g])  # Lava sets theta at its first step
        th = _w32(trunc_shift(_w32(th - theta0) * k_th, ds, rnd) + theta0)
        r = trunc_shift(np.int64(aux[N + g]) * k_r, ds, rnd)
        s = _w32(np.int64(v[g]) - r) >= th
        if s:
            r = _w32(r + 2 * th)
            th = _w32(th + step)
        aux[g] = th
        aux[N + g] = r
        flag[g] = (flag[g] & np.uint8(2)) | np.uint8(s)


@njit(cache=True, inline="always")
def _take_inputs(a_in, g, b0):
    """Neuron g's two inputs (a_in[g], and the second at a_in[b0 + g]), cleared for the
    next step."""
    a = np.int64(a_in[g])
    b = np.int64(a_in[b0 + g])
    a_in[g] = 0
    a_in[b0 + g] = 0
    return a, b


@njit(cache=True, inline="always")
def _update_rf(m, p, g0, g1, st, a_in, flag, pay, nrn):
    """Resonate-and-fire neurons g0..g1-1 of population p (real part in u, imaginary part
    in v); a_in[par[IN2_COL] + g - first neuron] is neuron g's second input."""
    u, v = st.u, st.v
    par = nrn.pop_par[p]
    b0 = par[5] - nrn.pop_g0[p]
    if m == RF_ZERO:
        lct, lst, uth = nrn.ndu, nrn.ndv, par[0]
        for g in range(g0, g1):
            a, b = _take_inputs(a_in, g, b0)
            x, y = np.int64(u[g]), np.int64(v[g])
            kc, ks = np.int64(lct[g]), np.int64(lst[g])
            # Lava's int32 arrays: each product wraps, and // 2^15 floors
            nu = _w32(_w32((_w32(x * kc) >> 15) - (_w32(y * ks) >> 15)) + a)
            nv = _w32(_w32((_w32(y * kc) >> 15) + (_w32(x * ks) >> 15)) + b)
            o = nu if (nu > uth and nv >= 0 and y < 0) else np.int64(0)
            u[g] = nu
            v[g] = nv
            pay[g] = o
            flag[g] = np.uint8(o != 0) | (np.uint8((a != 0) | (b != 0)) << np.uint8(1))
        return
    cos, sin, db, se, th = par[0], par[1], par[2], par[3], par[4]
    rnd = (np.int64(1) << db) - 1
    for g in range(g0, g1):
        a, b = _take_inputs(a_in, g, b0)
        x, y = np.int64(u[g]), np.int64(v[g])
        re = (trunc_shift(cos * x, db, rnd) - trunc_shift(sin * y, db, rnd)
              + _w32(a << se))
        im = (trunc_shift(sin * x, db, rnd) + trunc_shift(cos * y, db, rnd)
              + _w32(b << se))
        re = min(max(re, -_RF_LIM), _RF_LIM)
        im = min(max(im, -_RF_LIM), _RF_LIM)
        if m == RF:
            s = re >= th and im >= 0 and y < 0
        else:  # RF_IZ: fires on the imaginary part, then resets
            s = im >= th
            if s:
                re = np.int64(0)
                im = th - 1
        u[g] = re
        v[g] = im
        flag[g] = np.uint8(s) | (np.uint8((a != 0) | (b != 0)) << np.uint8(1))


@njit(cache=True)
def update_model(p, g0, g1, st, a_in, nrn, flag, pay, t):
    """One step of neurons g0..g1-1 of population p, whose model is not LIF (st: the
    SampleState, whose aux holds the two auxiliary state slots, 2 N words; nrn: Neurons;
    pay: per neuron, the payload of its spike this step; t: the step, 0 first). Equals
    neurochip.core.neuron_models.model_step."""
    u, v, aux, bias = st.u, st.v, st.aux, nrn.bias
    m = nrn.pop_model[p]
    par = nrn.pop_par[p]
    fmt = formats(nrn)
    N = u.shape[0]
    if m == LIF_PER_NEURON:
        _update_per_neuron(p, g0, g1, st, a_in, flag, nrn)
        return
    if m == LIF_RESET or m == TERNARY_LIF:
        if m == LIF_RESET and (t + 1) % par[0] == par[1]:
            for g in range(g0, g1):
                u[g] = 0
                v[g] = 0
        mode = ZERO if m == LIF_RESET else NONSPIKING
        pop = Population(np.int64(nrn.pop_du[p]), np.int64(nrn.pop_dv[p]),
                         np.int64(nrn.pop_theta[p]), np.int8(mode))
        _update_range64(u[g0:g1], v[g0:g1], a_in[g0:g1], bias[g0:g1], flag[g0:g1], pop, fmt)
        if m == TERNARY_LIF:
            hi, lo = par[0], par[1]
            for g in range(g0, g1):
                y = np.int64(v[g])
                s = np.int32(y > hi) - np.int32(y < lo)
                if s != 0:
                    v[g] = 0
                pay[g] = s
                flag[g] = (flag[g] & np.uint8(2)) | np.uint8(s != 0)
        return
    if m == ATRLIF:
        _update_atrlif(p, g0, g1, st, a_in, flag, nrn, t)
        return
    if m == RF or m == RF_IZ or m == RF_ZERO:
        _update_rf(m, p, g0, g1, st, a_in, flag, pay, nrn)
        return
    if m == SIGMA:
        for g in range(g0, g1):
            a = np.int64(a_in[g])
            a_in[g] = 0
            x = _w32(np.int64(u[g]) + a)
            u[g] = x
            pay[g] = x
            flag[g] = np.uint8(x != 0) | (np.uint8(a != 0) << np.uint8(1))
        return
    # DELTA, SIGMA_DELTA: act in v, residue and error in the auxiliary slots
    vth_s, cum, sexp, e, relu = par[0], par[1] != 0, par[2], par[3], par[4] != 0
    for g in range(g0, g1):
        a = np.int64(a_in[g])
        a_in[g] = 0
        if m == DELTA:
            x = _w32(a << e)
        else:
            sg = _w32(np.int64(u[g]) + a)
            u[g] = sg
            x = _w32(sg + np.int64(bias[g]))
            if relu and x < 0:
                x = np.int64(0)
        d = _w32(_w32(x - np.int64(v[g])) + np.int64(aux[g]))
        sent = np.int64(0)
        if cum:
            err = _w32(np.int64(aux[N + g]) + d)
            if abs(err) >= vth_s:
                sent = d
            if sent != 0:
                err = np.int64(0)
            aux[N + g] = err
        elif abs(d) >= vth_s:
            sent = d
        aux[g] = _w32(d - sent)
        v[g] = x
        o = sent >> sexp
        pay[g] = o
        flag[g] = np.uint8(o != 0) | (np.uint8(a != 0) << np.uint8(1))


@njit(cache=True, inline="always")
def update_lif(st, a_in, nrn, flag):
    """:func:`update_neurons` of Neurons whose populations are all LIF."""
    u, v = st.u, st.v
    pop_g0, bias = nrn.pop_g0, nrn.bias
    du, dv, theta, mode = nrn.pop_du, nrn.pop_dv, nrn.pop_theta, nrn.pop_mode
    fmt = formats(nrn)
    for p in range(du.shape[0]):
        g0 = pop_g0[p]
        g1 = pop_g0[p + 1]
        _update_range(u[g0:g1], v[g0:g1], a_in[g0:g1], bias[g0:g1], flag[g0:g1],
                      population_of(du, dv, theta, mode, p), fmt)


@njit(cache=True, inline="always")
def update_neurons(st, a_in, nrn, flag, pay, t):
    """One step of every neuron (st: SampleState; nrn: Neurons), population by
    population; a_in: the ring slot of this step (cleared as it is read); pay, t: see
    :func:`update_model`."""
    if nrn.n_models == 0:  # every population is LIF: the loop without the model test
        update_lif(st, a_in, nrn, flag)
        return
    u, v = st.u, st.v
    pop_g0, bias, pop_model = nrn.pop_g0, nrn.bias, nrn.pop_model
    du, dv, theta, mode = nrn.pop_du, nrn.pop_dv, nrn.pop_theta, nrn.pop_mode
    fmt = formats(nrn)
    for p in range(du.shape[0]):
        g0 = pop_g0[p]
        g1 = pop_g0[p + 1]
        if pop_model[p] == LIF:
            _update_range(u[g0:g1], v[g0:g1], a_in[g0:g1], bias[g0:g1], flag[g0:g1],
                          population_of(du, dv, theta, mode, p), fmt)
        else:
            update_model(p, g0, g1, st, a_in, nrn, flag, pay, t)


@njit(cache=True, inline="always")
def count_list(f, g0, lst, out):
    """One segment's flags f (neurons g0...): how many were active and spiked; with lst,
    the spiking neurons are listed in out. Returns (act, spk, listed).

    Listing is branch-free (a store and an add per neuron) when many spiked; when fewer
    than one in eight did, 64 flags at a time become a bit mask (``bit0_mask64``) whose
    set bits are walked, and only the tail goes neuron by neuron."""
    n = f.shape[0]
    act = _I32(0)  # 32-bit sums: twice the lanes of 64-bit ones (a segment < 2^31)
    spk = _I32(0)
    for i in range(n):
        x = f[i]
        act = _I32(act + _I32(x != 0))
        spk = _I32(spk + _I32(x & 1))
    nf = np.int64(0)
    if spk > 0 and lst:
        if np.int64(spk) * 8 < n:
            nb = n // 64
            for blk in range(nb):
                m = bit0_mask64(f, blk * 64)
                while m != np.uint64(0):
                    out[nf] = g0 + blk * 64 + trailing_zeros(m)
                    nf += 1
                    m &= m - np.uint64(1)
            for i in range(np.uint64(nb * 64), np.uint64(n)):  # unsigned: no wraparound
                out[nf] = g0 + np.int64(i)
                nf += np.int64(f[i] & 1)
        else:
            for i in range(n):
                out[nf] = g0 + i
                nf += np.int64(f[i] & 1)
    return np.int64(act), np.int64(spk), nf


@njit(cache=True, inline="always")
def collect(flag, nrn, fired, cnt):
    """Count active and spiking neurons per core; list the neurons that fired.

    Works segment by segment (a population's neurons on one core): the counts are
    vectorised sums; only segments whose spikes are needed (they have output axons, are
    recorded, or learn: seg_list LISTED) are listed in ``fired`` (recorded-only ones are
    copied into the record by ``step.observe``). Returns how many neurons were listed.
    """
    seg_g0, seg_list, seg_slot = nrn.seg_g0, nrn.seg_list, nrn.seg_slot
    nf = np.int64(0)
    for q in range(seg_slot.shape[0]):
        g0 = seg_g0[q]
        act, spk, m = count_list(flag[g0: seg_g0[q + 1]], g0, seg_list[q] == LISTED,
                                 fired[nf:])
        k = seg_slot[q]
        cnt[k, C_ACTIVE] += act
        cnt[k, C_SPIKES_OUT] += spk
        nf += m
    return nf


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
    lif = tb.pop_model == LIF  # other models never run the 32-bit update
    if lif.all():
        bias, theta = tb.bias, tb.pop_theta
    else:
        sizes = np.diff(tb.pop_g0)
        bias, theta = tb.bias[np.repeat(lif, sizes)], tb.pop_theta[lif]
    bias_max = int(np.abs(bias.astype(np.int64)).max()) if bias.size else 0
    theta_max = int(np.abs(theta.astype(np.int64)).max()) if theta.size else 0
    return narrow_formats_ok(dshift, u_bits, v_bits, in_shift, bias_max, theta_max)
