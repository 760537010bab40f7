"""Flat tables the learning kernels run on, built once from an image (pure numpy).

Index spaces are those of ``emulator.learning.reference`` (they key the random numbers):
plastic groups ``p`` in configuration order; synapse ``gid = syn0[p] + storage index``;
axon ``gid = ax0[p] + j * ncores[p] + kloc``; learning populations in evaluation order.

Small per-group and per-population registers are packed as the columns of one int64 matrix
each (``G``, ``POP``, ``TERMS``) so the kernels receive few arrays; the column indices are
the ``G_*``, ``L_*`` and ``T_*`` constants below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emulator.learning.fixed import fields_per_draw
from emulator.tables import Tables
from neurochip.core.image import ChipImage
from neurochip.core.learning import KIND_CODES, CompiledLearning

__all__ = ["LearnTables", "build_learn_tables"]

MAXF = 8

# columns of G (one row per plastic group)
(G_CONN, G_KIND, G_NPRE, G_NPOST, G_POST0, G_PRESRC0, G_WOFF, G_SOFF, G_WMODE, G_WSHIFT,
 G_LSB, G_WLO, G_WHI, G_WFRAC, G_EFRAC, G_SYN0, G_AX0, G_NCP, G_NSYN, G_UX1, G_UX2, G_KL0,
 G_TW0, G_TW1, G_TE0, G_TE1, G_X1I, G_X1D, G_X2I, G_X2D) = range(30)
NG = 30
# columns of POP (one row per learning population, evaluation order)
(L_OFF, L_SIZE, L_THETA, L_KIND, L_SHIFT, L_RSHIFT, L_SRC, L_CHAN, L_LUT0, L_LUTN, L_LUTSH,
 L_UY1, L_UY2, L_Y1I, L_Y1D, L_Y2I, L_Y2D, L_MAT0, L_MATR, L_MATC, L_RT0, L_D0, L_D1,
 L_SLOT, L_DV) = range(25)
NL = 25
# columns of TERMS (one row per term): mantissa, datapath shift, factor count, then the
# factors' variable codes and offsets
T_MANT, T_DSH, T_NF, T_VAR, T_OFF = 0, 1, 2, 3, 3 + MAXF
NT = 3 + 2 * MAXF
# params
(P_EPOCH, P_TMAX, P_TFMAX, P_TAGMAX, P_ACC, P_PRNG, P_DB, P_LUTB, P_MAXT, P_IOX, P_IOY,
 P_COUT, P_CEW, P_CNS, P_CLINK, P_LOGF) = range(16)


@dataclass
class LearnTables:
    n_groups: int
    n_axons: int
    n_syn: int
    n_rt: int
    channels: tuple[str, ...]  # target channels (population names) in column order
    chan_size: tuple[int, ...]
    chan_off: NDArray[np.int64]
    G: NDArray[np.int64]  # (P, NG)
    kloc: NDArray[np.int64]
    AX: NDArray[np.int64]  # (2, n_axons): core slot, real (has synapses)
    TERMS: NDArray[np.int64]  # (n_terms, NT)
    POP: NDArray[np.int64]  # (L, NL)
    DEST: NDArray[np.int64]  # (2, n_dest): core slot, neurons of the population there
    lut: NDArray[np.int64]
    mat: NDArray[np.int64]
    slot_seed: NDArray[np.int64]
    pos: NDArray[np.int64]  # (K, 3): x, y, chip of each core slot
    params: NDArray[np.int64]
    trace_per_step: NDArray[np.int64]  # (K,) trace, LUT and third-factor registers per step

    def kernel_tuple(self) -> tuple[NDArray[np.int64], ...]:
        return (self.G, self.kloc, self.AX, self.TERMS, self.POP, self.DEST, self.lut,
                self.mat, self.slot_seed, self.pos, self.params, self.chan_off,
                self.trace_per_step)

    @property
    def max_group_axons(self) -> int:
        if not self.n_groups:
            return 1
        return max(1, int((self.G[:, G_NPRE] * self.G[:, G_NCP]).max()))

    @property
    def max_classes(self) -> int:
        return max(1, int(self.POP[:, L_MATR].max())) if self.POP.size else 1


def build_learn_tables(image: ChipImage, tb: Tables, cl: CompiledLearning) -> LearnTables:
    slots = {int(c): i for i, c in enumerate(tb.slot_core)}
    slot_seed = np.array([cl.core_seeds[int(c)] for c in tb.slot_core], np.int64)
    ncore = image.arrays["neurons/core"].astype(np.int64)
    P = len(cl.synapses)
    G = np.zeros((P, NG), np.int64)
    kloc_parts: list[NDArray[np.int64]] = []
    ax_slot: list[NDArray[np.int64]] = []
    ax_real: list[NDArray[np.int64]] = []
    terms: list[list[int]] = []
    pop_src0 = {p.name: (p.offset if p.kind == "input" else image.n_inputs + p.offset)
                for p in image.populations}
    syn0 = ax0 = kl0 = 0
    for p, cs in enumerate(cl.synapses):
        ci = cs.index
        c = image.connections[ci]
        post = image.population(c.post)
        pcores = sorted({int(k) for k, _, n in post.slices if n > 0})
        rank = {k: r for r, k in enumerate(pcores)}
        kl = np.array([rank[int(k)] for k in ncore[post.offset: post.offset + post.size]],
                      np.int64)
        ncp = len(pcores)
        pre_idx, post_idx = image.synapse_coords(ci)
        real = np.zeros(c.n_pre * ncp, np.int64)
        real[pre_idx * ncp + kl[post_idx]] = 1
        row = G[p]
        row[G_CONN], row[G_KIND] = ci, int(tb.c_kind[ci])
        row[G_NPRE], row[G_NPOST], row[G_POST0] = c.n_pre, c.n_post, post.offset
        row[G_PRESRC0] = pop_src0[c.pre]
        row[G_WOFF], row[G_SOFF] = int(tb.c_woff[ci]), int(tb.c_soff[ci])
        row[G_WMODE], row[G_WSHIFT] = c.decode, c.wshift
        row[G_LSB], row[G_WLO], row[G_WHI] = cs.w_lsb, cs.w_lo, cs.w_hi
        row[G_WFRAC], row[G_EFRAC] = cs.w_frac, cs.e_frac
        row[G_SYN0], row[G_AX0], row[G_NCP], row[G_NSYN] = syn0, ax0, ncp, c.n_synapses
        row[G_UX1], row[G_UX2] = int("x1" in cs.uses), int("x2" in cs.uses)
        row[G_KL0] = kl0
        row[G_X1I], row[G_X1D] = cs.x1.impulse, cs.x1.decay
        row[G_X2I], row[G_X2D] = cs.x2.impulse, cs.x2.decay
        for c0, c1, tt in ((G_TW0, G_TW1, cs.dw), (G_TE0, G_TE1, cs.de)):
            row[c0] = len(terms)
            for t in tt:
                r = [0] * NT
                r[T_MANT], r[T_DSH], r[T_NF] = t.mantissa, t.dshift, len(t.vars)
                for f, (var, off) in enumerate(zip(t.vars, t.offsets)):
                    r[T_VAR + f], r[T_OFF + f] = var, off
                terms.append(r)
            row[c1] = len(terms)
        kloc_parts.append(kl)
        ax_slot.append(np.array([slots[pcores[r % ncp]] for r in range(c.n_pre * ncp)],
                                np.int64))
        ax_real.append(real)
        syn0 += c.n_synapses
        ax0 += c.n_pre * ncp
        kl0 += post.size

    L = len(cl.populations)
    POP = np.zeros((L, NL), np.int64)
    channels: list[str] = list(cl.target_channels)
    chan_size = list(cl.target_sizes)
    luts: list[NDArray[np.int64]] = []
    mats: list[NDArray[np.int64]] = []
    d_slot: list[int] = []
    d_cnt: list[int] = []
    lut0 = mat0 = rt0 = 0
    index = {p.name: i for i, p in enumerate(cl.populations)}
    for li, pop in enumerate(cl.populations):
        row = POP[li]
        row[L_OFF], row[L_SIZE], row[L_THETA] = pop.offset, pop.size, pop.theta
        row[L_KIND] = KIND_CODES[pop.third.kind]
        row[L_SHIFT], row[L_RSHIFT] = pop.third.shift, pop.third.readout_shift
        row[L_SRC] = index[str(pop.source)] if pop.third.kind in ("dfa", "fa") else -1
        kind = pop.third.kind
        ch = pop.name if kind == "error" else (pop.target if kind == "dcll" else None)
        row[L_CHAN] = channels.index(str(ch)) if ch is not None else -1
        row[L_UY1], row[L_UY2] = int(pop.uses_y1), int(pop.uses_y2)
        row[L_Y1I], row[L_Y1D] = pop.y1.impulse, pop.y1.decay
        row[L_Y2I], row[L_Y2D] = pop.y2.impulse, pop.y2.decay
        row[L_LUT0] = lut0
        if pop.lut is not None:
            luts.append(pop.lut.astype(np.int64))
            row[L_LUTN], row[L_LUTSH] = pop.lut.size, pop.lut_shift
            lut0 += pop.lut.size
        row[L_MAT0] = mat0
        if pop.matrix is not None:
            # DFA/FA feedback (n_pop, n_src) is stored transposed so that one error message
            # reads one contiguous column; the DCLL readout (n_cls, n_pop) as it is.
            m = pop.matrix.T if pop.third.kind in ("dfa", "fa") else pop.matrix
            mats.append(np.ascontiguousarray(m, np.int64).reshape(-1))
            row[L_MATR], row[L_MATC] = pop.matrix.shape
            mat0 += pop.matrix.size
        row[L_RT0] = rt0
        if pop.third.kind == "dcll":
            rt0 += int(row[L_MATR])
        row[L_D0] = len(d_slot)
        on = ncore[pop.offset: pop.offset + pop.size]
        for k in pop.cores:
            d_slot.append(slots[k])
            d_cnt.append(int(np.count_nonzero(on == k)))
        row[L_D1] = len(d_slot)
        row[L_SLOT] = slots[pop.cores[0]] if pop.cores else 0
        row[L_DV] = image.population(pop.name).dv
    chan_off = np.zeros(len(channels) + 1, np.int64)
    np.cumsum(np.asarray(chan_size, np.int64), out=chan_off[1:])

    def cat(parts: list[NDArray[Any]]) -> NDArray[np.int64]:
        return (np.ascontiguousarray(np.concatenate(parts).astype(np.int64)) if parts
                else np.zeros(0, np.int64))

    # Registers every step updates, per core (counted as trace updates): the used x traces
    # of each real axon; per learning neuron its used y traces, its surrogate, its third
    # factor and (output layers) its target trace; the target traces of a DCLL readout.
    per_step = np.zeros(len(slots), np.int64)
    ax_slot_all, ax_real_all = cat(ax_slot), cat(ax_real)
    for p in range(P):
        a0, n_ax = int(G[p, G_AX0]), int(G[p, G_NPRE] * G[p, G_NCP])
        nx = int(G[p, G_UX1] + G[p, G_UX2])
        real = ax_real_all[a0: a0 + n_ax] != 0
        np.add.at(per_step, ax_slot_all[a0: a0 + n_ax][real], nx)
    for pop in cl.populations:
        n_upd = (int(pop.uses_y1) + int(pop.uses_y2) + int(pop.lut is not None)
                 + int(pop.third.kind != "none") + int(pop.third.kind == "error"))
        sl = np.array([slots[int(k)] for k in ncore[pop.offset: pop.offset + pop.size]], np.int64)
        np.add.at(per_step, sl, n_upd)
        if pop.third.kind == "dcll" and pop.matrix is not None:
            per_step[slots[pop.cores[0]]] += pop.matrix.shape[0]
    pos = np.ascontiguousarray(np.stack([tb.slot_x, tb.slot_y, tb.slot_chip], axis=1)
                               .astype(np.int64).reshape(-1, 3))
    params = np.array([cl.epoch, cl.trace_max, cl.tf_max, cl.tag_max, cl.acc_bits,
                       cl.prng_bits, cl.decay_bits, cl.lut_bits, image.hw.learning.max_terms,
                       tb.io_xy[0], tb.io_xy[1], *tb.route_costs,
                       fields_per_draw(cl.prng_bits).bit_length() - 1], np.int64)
    return LearnTables(
        n_groups=P, n_axons=ax0, n_syn=syn0, n_rt=rt0, channels=tuple(channels),
        chan_size=tuple(chan_size), chan_off=chan_off, G=G, kloc=cat(kloc_parts),
        AX=np.ascontiguousarray(np.stack([cat(ax_slot), cat(ax_real)]).reshape(2, ax0)),
        TERMS=np.ascontiguousarray(np.array(terms, np.int64).reshape(len(terms), NT)),
        POP=POP, DEST=np.ascontiguousarray(np.array([d_slot, d_cnt], np.int64).reshape(2, -1)),
        lut=cat(luts), mat=cat(mats), slot_seed=slot_seed, pos=pos, params=params,
        trace_per_step=per_step)
