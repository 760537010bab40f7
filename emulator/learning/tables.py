"""Flat tables the learning kernels run on, built once from an image (pure numpy).

Index spaces are those of ``emulator.learning.reference`` (they key the random numbers):
plastic groups ``p`` in configuration order; synapse ``gid = syn0[p] + storage index``;
axon ``gid = ax0[p] + j * ncores[p] + kloc``; learning populations in evaluation order.

Small per-group and per-population registers are packed as the columns of one int64 matrix
each (``G``, ``POP``, ``TERMS``) so the kernels receive few arrays; the column indices are
the members of :class:`GroupCol`, :class:`PopCol` and :class:`TermCol` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from emulator.learning.fixed import fields_per_draw
from emulator.tables import Tables
from neurochip.core.image import ChipImage
from neurochip.core.learning import KIND_CODES, CompiledLearning

__all__ = ["GroupCol", "LearnRecord", "LearnTables", "NeuronReg", "Param", "PopCol",
           "TermCol", "build_learn_tables"]

MAXF = 8


class GroupCol(IntEnum):
    """Columns of ``G`` (one row per plastic group)."""

    CONN = 0  # connection index in the image
    KIND = 1  # ConnKind of its storage
    NPRE = 2
    NPOST = 3
    POST0 = 4  # first postsynaptic neuron
    PRESRC0 = 5  # first presynaptic source
    WOFF = 6  # dense: first weight byte
    SOFF = 7  # sparse: first row
    WMODE = 8  # WeightDecode
    WSHIFT = 9  # decode shift
    LSB = 10  # weight step: learned weights are multiples of 2^LSB
    WLO = 11  # weight range
    WHI = 12
    WFRAC = 13  # fraction bits of the weight accumulator
    EFRAC = 14  # fraction bits of the tag accumulator
    SYN0 = 15  # first synapse gid
    AX0 = 16  # first axon gid
    NCP = 17  # cores of the postsynaptic population (axons per presynaptic neuron)
    NSYN = 18
    UX1 = 19  # 1: the rule uses x1 (UX1 + 1: x2)
    UX2 = 20
    KL0 = 21  # first entry of the group's core ranks in kloc
    TW0 = 22  # dw terms TERMS[TW0:TW1]
    TW1 = 23
    TE0 = 24  # de terms TERMS[TE0:TE1]
    TE1 = 25
    X1I = 26  # x1 impulse, decay (X1I + 2 * k: trace k)
    X1D = 27
    X2I = 28
    X2D = 29


class PopCol(IntEnum):
    """Columns of ``POP`` (one row per learning population, in evaluation order)."""

    OFF = 0  # first neuron
    SIZE = 1
    THETA = 2  # threshold (surrogate centre)
    KIND = 3  # ThirdFactorCode
    SHIFT = 4  # third-factor shift
    RSHIFT = 5  # DCLL readout shift
    SRC = 6  # DFA/FA: row of the error population
    CHAN = 7  # target channel, -1 for none
    LUT0 = 8  # surrogate lookup table lut[LUT0:LUT0 + LUTN]
    LUTN = 9
    LUTSH = 10  # voltage shift into the table
    UY1 = 11  # 1: y1 used (UY1 + 1: y2)
    UY2 = 12
    Y1I = 13  # y1 impulse, decay (Y1I + 2 * k: trace k)
    Y1D = 14
    Y2I = 15
    Y2D = 16
    MAT0 = 17  # feedback / readout matrix mat[MAT0:...], MATR x MATC
    MATR = 18
    MATC = 19
    RT0 = 20  # DCLL: first target trace
    D0 = 21  # destination cores DEST[:, D0:D1]
    D1 = 22
    SLOT = 23  # core slot of its first core
    DV = 24  # voltage decay (the voltage before the reset)


class TermCol(IntEnum):
    """Columns of ``TERMS`` (one row per term): mantissa, datapath shift, factor count,
    then the factors' variable codes (VAR + f) and offsets (OFF + f), f < MAXF."""

    MANT = 0
    DSH = 1
    NF = 2
    VAR = 3
    OFF = 3 + MAXF


NT = 3 + 2 * MAXF


class Param(IntEnum):
    """Entries of ``params``."""

    EPOCH = 0  # steps between weight updates
    TMAX = 1  # trace maximum
    TFMAX = 2  # third-factor magnitude maximum
    TAGMAX = 3
    ACC = 4  # accumulator bits
    PRNG = 5  # bits per random number
    DB = 6  # decay bits of the traces
    LUTB = 7  # surrogate LUT fraction bits
    MAXT = 8  # terms per statement at most
    LOGF = 9  # log2 of the random numbers per 64-bit draw


class NeuronReg(IntEnum):
    """Rows of the per-neuron learning registers (``LearnKernelState.n``)."""

    Y1 = 0
    Y2 = 1
    SG = 2
    M = 3
    YT = 4  # the target trace of an output layer


class LearnRecord(NamedTuple):
    """The learning tables as the kernels take them (see :class:`LearnTables`)."""

    G: NDArray[np.int64]  # (groups, GroupCol)
    kloc: NDArray[np.int64]  # per postsynaptic neuron of each group: rank of its core
    AX: NDArray[np.int64]  # (2, axons): core slot, real (has synapses)
    TERMS: NDArray[np.int64]  # (terms, TermCol)
    POP: NDArray[np.int64]  # (learning populations, PopCol)
    DEST: NDArray[np.int64]  # (2, destinations): core slot, neurons of the population there
    lut: NDArray[np.int64]  # surrogate lookup tables
    mat: NDArray[np.int64]  # feedback and readout matrices
    slot_seed: NDArray[np.int64]  # (K,) PRNG seed of each core slot
    params: NDArray[np.int64]  # (Param,)
    chan_off: NDArray[np.int64]  # (channels + 1,) first target column of each channel
    trace_per_step: NDArray[np.int64]  # (K,) registers updated every step per core


@dataclass
class LearnTables:
    n_groups: int
    n_axons: int
    n_syn: int
    n_rt: int
    channels: tuple[str, ...]  # target channels (population names) in column order
    chan_size: tuple[int, ...]
    chan_off: NDArray[np.int64]
    G: NDArray[np.int64]  # (P, len(GroupCol))
    kloc: NDArray[np.int64]
    AX: NDArray[np.int64]  # (2, n_axons): core slot, real (has synapses)
    TERMS: NDArray[np.int64]  # (n_terms, NT)
    POP: NDArray[np.int64]  # (L, len(PopCol))
    DEST: NDArray[np.int64]  # (2, n_dest): core slot, neurons of the population there
    lut: NDArray[np.int64]
    mat: NDArray[np.int64]
    slot_seed: NDArray[np.int64]
    params: NDArray[np.int64]
    trace_per_step: NDArray[np.int64]  # (K,) trace, LUT and third-factor registers per step

    def record(self) -> LearnRecord:
        """The kernels' record of these tables."""
        return LearnRecord(self.G, self.kloc, self.AX, self.TERMS, self.POP, self.DEST,
                           self.lut, self.mat, self.slot_seed, self.params, self.chan_off,
                           self.trace_per_step)

    @property
    def max_group_axons(self) -> int:
        if not self.n_groups:
            return 1
        return max(1, int((self.G[:, GroupCol.NPRE] * self.G[:, GroupCol.NCP]).max()))

    @property
    def max_classes(self) -> int:
        return max(1, int(self.POP[:, PopCol.MATR].max())) if self.POP.size else 1


def build_learn_tables(image: ChipImage, tb: Tables, cl: CompiledLearning) -> LearnTables:
    GC, PC = GroupCol, PopCol
    slots = {int(c): i for i, c in enumerate(tb.slot_core)}
    slot_seed = np.array([cl.core_seeds[int(c)] for c in tb.slot_core], np.int64)
    ncore = image.arrays["neurons/core"].astype(np.int64)
    P = len(cl.synapses)
    G = np.zeros((P, len(GroupCol)), np.int64)
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
        row[GC.CONN], row[GC.KIND] = ci, int(tb.c_kind[ci])
        row[GC.NPRE], row[GC.NPOST], row[GC.POST0] = c.n_pre, c.n_post, post.offset
        row[GC.PRESRC0] = pop_src0[c.pre]
        row[GC.WOFF], row[GC.SOFF] = int(tb.c_woff[ci]), int(tb.c_soff[ci])
        row[GC.WMODE], row[GC.WSHIFT] = c.decode, c.wshift
        row[GC.LSB], row[GC.WLO], row[GC.WHI] = cs.w_lsb, cs.w_lo, cs.w_hi
        row[GC.WFRAC], row[GC.EFRAC] = cs.w_frac, cs.e_frac
        row[GC.SYN0], row[GC.AX0], row[GC.NCP], row[GC.NSYN] = syn0, ax0, ncp, c.n_synapses
        row[GC.UX1], row[GC.UX2] = int("x1" in cs.uses), int("x2" in cs.uses)
        row[GC.KL0] = kl0
        row[GC.X1I], row[GC.X1D] = cs.x1.impulse, cs.x1.decay
        row[GC.X2I], row[GC.X2D] = cs.x2.impulse, cs.x2.decay
        for c0, c1, tt in ((GC.TW0, GC.TW1, cs.dw), (GC.TE0, GC.TE1, cs.de)):
            row[c0] = len(terms)
            for t in tt:
                r = [0] * NT
                r[TermCol.MANT], r[TermCol.DSH], r[TermCol.NF] = t.mantissa, t.dshift, len(t.vars)
                for f, (var, off) in enumerate(zip(t.vars, t.offsets)):
                    r[TermCol.VAR + f], r[TermCol.OFF + f] = var, off
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
    POP = np.zeros((L, len(PopCol)), np.int64)
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
        row[PC.OFF], row[PC.SIZE], row[PC.THETA] = pop.offset, pop.size, pop.theta
        row[PC.KIND] = KIND_CODES[pop.third.kind]
        row[PC.SHIFT], row[PC.RSHIFT] = pop.third.shift, pop.third.readout_shift
        row[PC.SRC] = index[str(pop.source)] if pop.third.kind in ("dfa", "fa") else -1
        kind = pop.third.kind
        ch = pop.name if kind == "error" else (pop.target if kind == "dcll" else None)
        row[PC.CHAN] = channels.index(str(ch)) if ch is not None else -1
        row[PC.UY1], row[PC.UY2] = int(pop.uses_y1), int(pop.uses_y2)
        row[PC.Y1I], row[PC.Y1D] = pop.y1.impulse, pop.y1.decay
        row[PC.Y2I], row[PC.Y2D] = pop.y2.impulse, pop.y2.decay
        row[PC.LUT0] = lut0
        if pop.lut is not None:
            luts.append(pop.lut.astype(np.int64))
            row[PC.LUTN], row[PC.LUTSH] = pop.lut.size, pop.lut_shift
            lut0 += pop.lut.size
        row[PC.MAT0] = mat0
        if pop.matrix is not None:
            # DFA/FA feedback (n_pop, n_src) is stored transposed so that one error message
            # reads one contiguous column; the DCLL readout (n_cls, n_pop) as it is.
            m = pop.matrix.T if pop.third.kind in ("dfa", "fa") else pop.matrix
            mats.append(np.ascontiguousarray(m, np.int64).reshape(-1))
            row[PC.MATR], row[PC.MATC] = pop.matrix.shape
            mat0 += pop.matrix.size
        row[PC.RT0] = rt0
        if pop.third.kind == "dcll":
            rt0 += int(row[PC.MATR])
        row[PC.D0] = len(d_slot)
        on = ncore[pop.offset: pop.offset + pop.size]
        for k in pop.cores:
            d_slot.append(slots[k])
            d_cnt.append(int(np.count_nonzero(on == k)))
        row[PC.D1] = len(d_slot)
        row[PC.SLOT] = slots[pop.cores[0]] if pop.cores else 0
        row[PC.DV] = image.population(pop.name).dv
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
        a0, n_ax = int(G[p, GC.AX0]), int(G[p, GC.NPRE] * G[p, GC.NCP])
        nx = int(G[p, GC.UX1] + G[p, GC.UX2])
        real = ax_real_all[a0: a0 + n_ax] != 0
        np.add.at(per_step, ax_slot_all[a0: a0 + n_ax][real], nx)
    for pop in cl.populations:
        n_upd = (int(pop.uses_y1) + int(pop.uses_y2) + int(pop.lut is not None)
                 + int(pop.third.kind != "none") + int(pop.third.kind == "error"))
        sl = np.array([slots[int(k)] for k in ncore[pop.offset: pop.offset + pop.size]], np.int64)
        np.add.at(per_step, sl, n_upd)
        if pop.third.kind == "dcll" and pop.matrix is not None:
            per_step[slots[pop.cores[0]]] += pop.matrix.shape[0]
    params = np.zeros(len(Param), np.int64)
    params[[Param.EPOCH, Param.TMAX, Param.TFMAX, Param.TAGMAX, Param.ACC, Param.PRNG,
            Param.DB, Param.LUTB, Param.MAXT, Param.LOGF]] = [
        cl.epoch, cl.trace_max, cl.tf_max, cl.tag_max, cl.acc_bits, cl.prng_bits,
        cl.decay_bits, cl.lut_bits, image.hw.learning.max_terms,
        fields_per_draw(cl.prng_bits).bit_length() - 1]
    return LearnTables(
        n_groups=P, n_axons=ax0, n_syn=syn0, n_rt=rt0, channels=tuple(channels),
        chan_size=tuple(chan_size), chan_off=chan_off, G=G, kloc=cat(kloc_parts),
        AX=np.ascontiguousarray(np.stack([cat(ax_slot), cat(ax_real)]).reshape(2, ax0)),
        TERMS=np.ascontiguousarray(np.array(terms, np.int64).reshape(len(terms), NT)),
        POP=POP, DEST=np.ascontiguousarray(np.array([d_slot, d_cnt], np.int64).reshape(2, -1)),
        lut=cat(luts), mat=cat(mats), slot_seed=slot_seed, params=params,
        trace_per_step=per_step)
