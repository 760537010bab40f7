"""Pure-Python reference model of on-chip learning: the executable specification.

It wraps the inference reference model (``emulator.reference``, run one step at a time)
and adds the learning phase after each step's spike phase, written for clarity. The Numba
learning kernels must equal it bit for bit (spikes, probes, weights, tags, traces, counters).

One step t (learning clock c, counting every learning step since the engine started):

1. spike phase: the inference step, with the current weights (a weight written at the end
   of step t first acts on spikes emitted at step t + 1);
2. axon traces: for every plastic connection, pre neuron j and core k holding some of its
   targets (an input axon of that core),
   ``x <- min(sround(x * (2^db - decay), db) + impulse * x0, 2^tb - 1)`` (x0: j spiked at t);
3. neuron state of learning populations: y0, the post traces y1, y2 (same update), and
   ``sg = lut[clip(((v_pre - theta) >> lut_shift) + size // 2, 0, size - 1)]`` where v_pre is
   the voltage of step t before the reset;
4. third factors m, population by population (feedback sources first), as described in
   ``neurochip.core.learning``; error messages are counted like spikes (one per sender and
   destination core, hops and longest path), feedback and readout products as synaptic ops;
5. tags (``de``), every step: ``e <- sat_tag(sround(sat_acc(e << F + terms), F))``;
6. at the end of an epoch (``(c + 1) % epoch == 0``) the weights (``dw``):
   ``w <- sat_w(sround(sat_acc(w << F + terms), F + lsb) << lsb)``.

Random numbers: number d of a stream is field ``d % F`` of the 64-bit draw ``d // F``
(``F = 64 // prng_bits``) under the key of the core, the clock and the stream; trace,
neuron and target-trace registers use d = their index, a statement with n terms uses
``d = gid * (n + 1) + q`` for its term q (q = n: the final rounding). Consecutive
registers therefore share draws, as a hardware generator's wide output would be shared.

A synapse is *visited* by a statement when some term has a non-zero presynaptic part (its
x factors) and a non-zero postsynaptic part (its y/sg/m/v/u factors): only visited synapses
are updated and counted (``learn_updates`` for weights, ``trace_updates`` for tags);
skipping the others changes no value. Arithmetic: see ``emulator.learning.fixed``.

Index spaces (they key the random numbers, so kernels use the same):
plastic synapse ``gid = syn0[p] + storage index``; axon ``gid = ax0[p] + j * ncores + kloc``
(``kloc``: rank of the core among the post population's cores); DCLL target traces
numbered in population evaluation order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emulator.learning import fixed as lf
from emulator.paths import path_costs, path_cycles
from emulator.reference import ReferenceModel, ReferenceState
from emulator.tables import (
    C_ERR_MSGS,
    C_HOPS_EW,
    C_HOPS_NS,
    C_LEARN,
    C_LINKS,
    C_ROUTE_MAX,
    C_SYNOPS,
    C_TRACE,
)
from neurochip.core import fixedpoint as fx
from neurochip.core.image import ChipImage
from neurochip.core.learning import CompiledLearning, CompiledSynapse, compiled_learning

__all__ = ["LearningReference", "LearningState", "StepInputs"]

I64 = NDArray[np.int64]


@dataclass
class LearningState:
    """Learning registers (traces, surrogate, third factor, tags) and the learning clock."""

    x1: I64
    x2: I64
    y1: I64
    y2: I64
    sg: I64
    m: I64
    yt: I64
    rt: I64
    tags: I64
    clock: int = 0

    def reset_traces(self) -> None:
        """Zero every trace, tag and third factor (not the weights, not the clock)."""
        for a in (self.x1, self.x2, self.y1, self.y2, self.sg, self.m, self.yt, self.rt,
                  self.tags):
            a[:] = 0


@dataclass
class StepInputs:
    """Targets (per channel, (T, n) spikes or values) and reward (T,) of one run."""

    targets: dict[str, NDArray[Any]] = field(default_factory=dict)
    target_values: dict[str, bool] = field(default_factory=dict)
    reward: NDArray[np.int64] | None = None


@dataclass
class _Syn:
    cs: CompiledSynapse
    pre_idx: I64  # storage order
    post_idx: I64
    gid0: int
    axon: I64  # axon gid of every synapse
    ax0: int
    n_axons: int
    ax_core: I64  # core of every axon
    ax_real: NDArray[np.bool_]
    pre_src: str
    W: I64  # (post, pre) effective weights
    mask: NDArray[np.bool_]
    Dl: I64


@dataclass
class _Ctx:
    st: ReferenceState
    lst: LearningState
    fired: NDArray[np.bool_]
    src_spk: dict[str, NDArray[np.bool_]]


class LearningReference:
    """Slow, obviously-correct on-chip learning for one sample stream."""

    def __init__(self, image: ChipImage, cl: CompiledLearning | None = None) -> None:
        self.image = image
        self.cl: CompiledLearning = compiled_learning(image) if cl is None else cl
        self.model = ReferenceModel(image)
        hw = image.hw
        self.N = image.n_neurons
        self.pb = self.cl.prng_bits
        self.slots = {c.core: i for i, c in enumerate(image.cores)}
        core_of = np.zeros(self.N, np.int64)
        for p in image.lif_populations:
            for core, start, count in p.slices:
                core_of[p.offset + start: p.offset + start + count] = core
        self.core_of = core_of
        self.pos = {c.core: hw.core_position(c.core) for c in image.cores}
        io_x, io_y = hw.mesh.io_tile
        self.io_pos = (0, io_x, io_y)
        self.costs = path_costs(hw)
        self.syns: list[_Syn] = []
        g0 = a0 = 0
        for cs in self.cl.synapses:
            c = image.connections[cs.index]
            post = image.population(c.post)
            pre_idx, post_idx = image.synapse_coords(cs.index)
            pcores = sorted({int(k) for k, _, n in post.slices if n > 0})
            kloc = {k: r for r, k in enumerate(pcores)}
            ncp = len(pcores)
            syn_core = core_of[post.offset + post_idx]
            axon = a0 + pre_idx * ncp + np.array([kloc[int(k)] for k in syn_core], np.int64)
            n_ax = c.n_pre * ncp
            ax_core = np.array([pcores[r % ncp] for r in range(n_ax)], np.int64)
            real = np.zeros(n_ax, bool)
            real[axon - a0] = True
            mask = np.zeros((c.n_post, c.n_pre), bool)
            mask[post_idx, pre_idx] = True
            self.syns.append(_Syn(cs, pre_idx, post_idx, g0, axon, a0, n_ax, ax_core, real,
                                  c.pre, image.weights(c.name), mask, image.delays(c.name)))
            g0 += c.n_synapses
            a0 += n_ax
        self.n_syn, self.n_axons = g0, a0
        self.rt0: dict[str, int] = {}
        r0 = 0
        for cp in self.cl.populations:
            if cp.third.kind == "dcll" and cp.matrix is not None:
                self.rt0[cp.name] = r0
                r0 += cp.matrix.shape[0]
        self.n_rt = r0

    def set_compiled(self, cl: CompiledLearning) -> None:
        """Use another checked configuration of the same plastic connections (new rates)."""
        if [s.name for s in cl.synapses] != [s.cs.name for s in self.syns]:
            raise ValueError("set_compiled cannot change the plastic connections")
        self.cl = cl
        for s, cs in zip(self.syns, cl.synapses):
            s.cs = cs

    # ------------------------------------------------------------------ state
    def new_state(self) -> LearningState:
        z = np.zeros
        return LearningState(z(self.n_axons, np.int64), z(self.n_axons, np.int64),
                             z(self.N, np.int64), z(self.N, np.int64), z(self.N, np.int64),
                             z(self.N, np.int64), z(self.N, np.int64), z(self.n_rt, np.int64),
                             z(self.n_syn, np.int64))

    def weights(self, name: str) -> I64:
        for s in self.syns:
            if s.cs.name == name:
                return s.W.copy()
        return self.image.weights(name)

    def tags(self, st: LearningState, name: str) -> I64:
        """Tags of a plastic connection as a (post, pre) array."""
        for s in self.syns:
            if s.cs.name == name:
                out = np.zeros(s.W.shape, np.int64)
                out[s.post_idx, s.pre_idx] = st.tags[s.gid0: s.gid0 + s.pre_idx.size]
                return out
        raise KeyError(name)

    # ------------------------------------------------------------------ helpers
    def _draws(self, seeds: I64, clock: int, stream: int, d: I64) -> I64:
        """Random number d of a stream: field d % F of 64-bit draw d // F (F = 64 // bits)."""
        return lf.number(seeds, clock, stream, d, self.pb)

    def _seed(self, cores: I64) -> I64:
        return np.array([self.cl.core_seeds[int(k)] for k in cores], np.int64)

    def _trace(self, x: I64, spike: NDArray[Any], tp: Any, seeds: I64, clock: int,
               stream: int, idx: I64) -> I64:
        db = self.cl.decay_bits
        keep = (1 << db) - tp.decay
        r = self._draws(seeds, clock, stream, idx)
        return np.minimum(lf.sround(x * keep, db, r, self.pb) + tp.impulse * spike,
                          self.cl.trace_max)

    def _message(self, cnt: I64, src_core: int | None, dst_core: int) -> None:
        """One error/modulation message; host messages (src None) are charged at dst."""
        sc, sx, sy = self.io_pos if src_core is None else self.pos[src_core]
        dc, dx_, dy_ = self.pos[dst_core]
        dx, dy, dl = abs(dx_ - sx), abs(dy_ - sy), abs(dc - sc)
        ch = self.slots[dst_core if src_core is None else src_core]
        cnt[ch, C_ERR_MSGS] += 1
        cnt[ch, C_HOPS_EW] += dx
        cnt[ch, C_HOPS_NS] += dy
        cnt[ch, C_LINKS] += dl
        path = path_cycles(self.costs, dx, dy, dl)
        cnt[ch, C_ROUTE_MAX] = max(cnt[ch, C_ROUTE_MAX], path)

    # ------------------------------------------------------------------ run
    def run(self, st: ReferenceState, lst: LearningState, steps: int, inputs: NDArray[np.bool_],
            probe_idx: I64, probe_var: NDArray[np.int8], rec_col: I64, io: StepInputs,
            learn: bool = True) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """Simulate ``steps`` steps with learning; returns (probes, spikes, counters)."""
        n_rec = int(rec_col.max()) + 1 if rec_col.size else 0
        probes = np.zeros((steps, probe_idx.size), np.int32)
        spikes = np.zeros((steps, n_rec), np.uint8)
        counters = np.zeros((steps, max(len(self.slots), 1), 12), np.int64)
        all_rec = np.arange(self.N, dtype=np.int64)
        for t in range(steps):
            v_prev = st.v.copy()
            p1, s1, c1 = self.model.run(st, 1, inputs[t: t + 1], probe_idx, probe_var, all_rec)
            probes[t] = p1[0]
            fired = s1[0].astype(bool) if self.N else np.zeros(0, bool)
            for g in np.flatnonzero(fired):
                if rec_col[g] >= 0:
                    spikes[t, rec_col[g]] = 1
            counters[t] = c1[0]
            if learn:
                self._learn_step(st, lst, v_prev, fired, inputs[t], t, io, counters[t])
                lst.clock += 1
        return probes, spikes, counters

    def _v_pre(self, st: ReferenceState, v_prev: I64, fired: NDArray[np.bool_]) -> I64:
        """The voltage each neuron computed this step before its reset."""
        f = self.image.hw.formats
        v = st.v.copy()
        for p in self.image.lif_populations:
            sl = slice(p.offset, p.offset + p.size)
            raw = fx.saturate(fx.decay(v_prev[sl], (1 << f.decay_bits) - p.dv, f.decay_bits)
                              + st.u[sl] + self.model.bias[sl], f.v_bits)
            v[sl] = np.where(fired[sl], raw, v[sl])
        return v

    def _learn_step(self, st: ReferenceState, lst: LearningState, v_prev: I64,
                    fired: NDArray[np.bool_], x_in: NDArray[np.bool_], t: int, io: StepInputs,
                    cnt: I64) -> None:
        cl, img, clock = self.cl, self.image, lst.clock
        src_spk: dict[str, NDArray[np.bool_]] = {}
        for p in img.populations:
            if p.kind == "input":
                src_spk[p.name] = x_in[p.offset: p.offset + p.size].astype(bool)
            else:
                src_spk[p.name] = fired[p.offset: p.offset + p.size]
        # 2. axon traces -------------------------------------------------------------
        for s in self.syns:
            n_pre = img.connections[s.cs.index].n_pre
            ncp = s.n_axons // max(n_pre, 1)
            j = np.arange(s.n_axons) // max(ncp, 1)
            x0 = src_spk[s.pre_src][j].astype(np.int64)
            idx = s.ax0 + np.arange(s.n_axons)
            seeds = self._seed(s.ax_core)
            sl = slice(s.ax0, s.ax0 + s.n_axons)
            nx = 0
            real = s.ax_real  # only axons that carry synapses exist, and have traces
            if "x1" in s.cs.uses:
                lst.x1[sl] = np.where(real, self._trace(lst.x1[sl], x0, s.cs.x1, seeds, clock,
                                                        lf.STREAM_X1, idx), 0)
                nx += 1
            if "x2" in s.cs.uses:
                lst.x2[sl] = np.where(real, self._trace(lst.x2[sl], x0, s.cs.x2, seeds, clock,
                                                        lf.STREAM_X2, idx), 0)
                nx += 1
            for a in np.flatnonzero(s.ax_real):
                cnt[self.slots[int(s.ax_core[a])], C_TRACE] += nx
        # 3. neuron state --------------------------------------------------------------
        v_pre = self._v_pre(st, v_prev, fired)
        for cp in cl.populations:
            sl = slice(cp.offset, cp.offset + cp.size)
            g = np.arange(cp.offset, cp.offset + cp.size)
            seeds = self._seed(self.core_of[g])
            y0 = fired[sl].astype(np.int64)
            n_upd = 0
            if cp.uses_y1:
                lst.y1[sl] = self._trace(lst.y1[sl], y0, cp.y1, seeds, clock, lf.STREAM_Y1, g)
                n_upd += 1
            if cp.uses_y2:
                lst.y2[sl] = self._trace(lst.y2[sl], y0, cp.y2, seeds, clock, lf.STREAM_Y2, g)
                n_upd += 1
            if cp.lut is not None:
                size = cp.lut.size
                k = np.clip(((v_pre[sl] - cp.theta) >> cp.lut_shift) + size // 2, 0, size - 1)
                lst.sg[sl] = cp.lut[k]
                n_upd += 1
            n_upd += int(cp.third.kind != "none") + int(cp.third.kind == "error")
            for gg in g:
                cnt[self.slots[int(self.core_of[gg])], C_TRACE] += n_upd
        # 4. third factors ---------------------------------------------------------------
        for cp in cl.populations:
            self._third(cp, lst, t, io, cnt)
        # 5./6. tags and weights ---------------------------------------------------------
        epoch_end = (clock + 1) % cl.epoch == 0
        ctx = _Ctx(st, lst, fired, src_spk)
        for s in self.syns:
            if s.cs.de:
                self._update(s, ctx, "de", cnt)
            if epoch_end and s.cs.dw:
                self._update(s, ctx, "dw", cnt)

    def _delta(self, src: Any, lst: LearningState) -> I64:
        sl = slice(src.offset, src.offset + src.size)
        if src.lut is None:
            return lst.m[sl].copy()
        return np.clip(lf.rhalf(lst.m[sl] * lst.sg[sl], self.cl.lut_bits), -self.cl.tf_max,
                       self.cl.tf_max)

    def _target(self, name: str, t: int, io: StepInputs, n: int) -> tuple[I64, bool]:
        arr = io.targets.get(name)
        if arr is None:
            return np.zeros(n, np.int64), False
        return np.asarray(arr[t], np.int64), bool(io.target_values.get(name, False))

    def _third(self, p: Any, lst: LearningState, t: int, io: StepInputs, cnt: I64) -> None:
        cl = self.cl
        tf_max, tmax = cl.tf_max, cl.trace_max
        sl = slice(p.offset, p.offset + p.size)
        g = np.arange(p.offset, p.offset + p.size)
        kind = p.third.kind
        if kind == "error":
            tgt, values = self._target(p.name, t, io, p.size)
            for k in np.flatnonzero(tgt):
                self._message(cnt, None, int(self.core_of[g[k]]))
            if values:
                lst.yt[sl] = np.clip(tgt, 0, tmax)
            else:
                seeds = self._seed(self.core_of[g])
                lst.yt[sl] = self._trace(lst.yt[sl], (tgt != 0).astype(np.int64), p.y1, seeds,
                                         lst.clock, lf.STREAM_YT, g)
            lst.m[sl] = np.clip(lf.rhalf(lst.yt[sl] - lst.y1[sl], p.third.shift), -tf_max,
                                tf_max)
        elif kind in ("dfa", "fa"):
            src = cl.population(str(p.source))
            delta = self._delta(src, lst)
            acc = np.zeros(p.size, np.int64)
            for k in np.flatnonzero(delta):
                sc = int(self.core_of[src.offset + k])
                for d in p.cores:
                    self._message(cnt, sc, d)
                    on_d = self.core_of[g] == d
                    cnt[self.slots[d], C_SYNOPS] += int(on_d.sum())
                acc += p.matrix[:, k] * delta[k]
            lst.m[sl] = np.clip(lf.rhalf(acc, p.third.shift), -tf_max, tf_max)
        elif kind == "dcll":
            core = p.cores[0]
            slot = self.slots[core]
            R = p.matrix
            ncls = R.shape[0]
            r0 = self.rt0[p.name]
            tgt, values = self._target(str(p.target), t, io, ncls)
            for _k in np.flatnonzero(tgt):
                self._message(cnt, None, core)
            rs = slice(r0, r0 + ncls)
            if values:
                lst.rt[rs] = np.clip(tgt, 0, tmax)
            else:
                seeds = self._seed(np.full(ncls, core))
                lst.rt[rs] = self._trace(lst.rt[rs], (tgt != 0).astype(np.int64), p.y1, seeds,
                                         lst.clock, lf.STREAM_RT, np.arange(r0, r0 + ncls))
            cnt[slot, C_TRACE] += ncls
            r = lf.rhalf(R @ lst.y1[sl], p.third.readout_shift)
            cnt[slot, C_SYNOPS] += ncls * p.size
            err = np.clip(lst.rt[rs] - r, -tf_max, tf_max)
            cnt[slot, C_SYNOPS] += int(np.count_nonzero(err)) * p.size
            lst.m[sl] = np.clip(lf.rhalf(R.T @ err, p.third.shift), -tf_max, tf_max)
        elif kind == "reward":
            rw = 0 if io.reward is None else int(io.reward[t])
            if rw != 0:
                for d in p.cores:
                    self._message(cnt, None, d)
            lst.m[sl] = int(np.clip(rw, -tf_max, tf_max))
        else:
            lst.m[sl] = 0

    def _factor(self, code: int, off: int, s: _Syn, ctx: _Ctx, st_w: I64, st_e: I64) -> I64:
        """Value of variable ``code`` (+ off) at every synapse of s (storage order)."""
        lst = ctx.lst
        post_g = self.image.population(s.cs.post).offset + s.post_idx
        if code == 0:
            val = ctx.src_spk[s.pre_src][s.pre_idx].astype(np.int64)
        elif code == 1:
            val = lst.x1[s.axon]
        elif code == 2:
            val = lst.x2[s.axon]
        elif code == 3:
            val = ctx.fired[post_g].astype(np.int64)
        elif code == 4:
            val = lst.y1[post_g]
        elif code == 5:
            val = lst.y2[post_g]
        elif code == 6:
            val = lst.sg[post_g]
        elif code == 7:
            val = lst.m[post_g]
        elif code == 8:
            val = ctx.st.v[post_g]
        elif code == 9:
            val = ctx.st.u[post_g]
        elif code == 10:
            val = st_w
        else:
            val = st_e
        return np.asarray(val, np.int64) + off

    def _update(self, s: _Syn, ctx: _Ctx, which: str, cnt: I64) -> None:
        cs, cl, lst = s.cs, self.cl, ctx.lst
        terms = cs.dw if which == "dw" else cs.de
        n = s.pre_idx.size
        gid = s.gid0 + np.arange(n)
        w = s.W[s.post_idx, s.pre_idx]
        e = lst.tags[s.gid0: s.gid0 + n]
        post_g = self.image.population(cs.post).offset + s.post_idx
        seeds = self._seed(self.core_of[post_g])
        stream = lf.STREAM_WGT if which == "dw" else lf.STREAM_TAG
        visited = np.zeros(n, bool)
        prods = []
        for term in terms:
            pre_part = np.ones(n, np.int64)
            post_part = np.ones(n, np.int64)
            syn_part = np.ones(n, np.int64)
            for code, off in zip(term.vars, term.offsets):
                val = self._factor(code, off, s, ctx, w, e)
                if code <= 2:
                    pre_part = pre_part * val
                elif code <= 9:
                    post_part = post_part * val
                else:
                    syn_part = syn_part * val
            visited |= (pre_part != 0) & (post_part != 0)
            prods.append(term.mantissa * pre_part * post_part * syn_part)
        acc_lo, acc_hi = -(1 << (cl.acc_bits - 1)), (1 << (cl.acc_bits - 1)) - 1
        if which == "dw":
            frac, lsb, lo, hi, z = cs.w_frac, cs.w_lsb, cs.w_lo, cs.w_hi, w
        else:
            frac, lsb, lo, hi, z = cs.e_frac, 0, -cl.tag_max, cl.tag_max, e
        A = z << frac
        for q, (term, P) in enumerate(zip(terms, prods)):
            r = self._draws(seeds, lst.clock, stream, gid * (len(terms) + 1) + q)
            A = np.clip(A + lf.sround(P, -term.dshift, r, self.pb), acc_lo, acc_hi)
        r = self._draws(seeds, lst.clock, stream, gid * (len(terms) + 1) + len(terms))
        new = np.clip(lf.sround(A, frac + lsb, r, self.pb) << lsb, lo, hi)
        new = np.where(visited, new, z)
        for k in np.flatnonzero(visited):
            cnt[self.slots[int(self.core_of[post_g[k]])], C_LEARN if which == "dw" else C_TRACE] \
                += 1
        if which == "dw":
            s.W[s.post_idx, s.pre_idx] = new
            self._refresh(s)
        else:
            lst.tags[s.gid0: s.gid0 + n] = new

    def _refresh(self, s: _Syn) -> None:
        """Give the inference reference model the new weights of a plastic connection."""
        conn = self.model.conns[s.cs.index]
        conn.by_delay = [(d, np.where(s.mask & (s.Dl == d), s.W, 0)) for d, _ in conn.by_delay]
