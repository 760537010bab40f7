"""Float64 reference of the learning engine: the same algorithm without quantisation.

:class:`FloatLearner` runs an image's network and learning configuration in float64: the
neuron in chip order with ``alpha = (2^db - 1 - du) / 2^db`` and ``beta = (2^db - dv) / 2^db``
(``docs/conventions.md``), weights ``w * 2^weight_exp`` without flooring, no register
wrap-around; traces ``x <- min(x * keep / 2^db + impulse * spike, trace_max)`` without
rounding; the surrogate derivative evaluated exactly (not from the lookup table); third
factors, tags and weights by the same formulas with real arithmetic (shifts become exact
powers of two, no stochastic rounding, no weight step). Only the ranges stay: traces in
[0, trace_max], third factors and tags at their limits, weights in the connection's range.

It is what the fixed-point engine is tested against: same trend, bounded deviation.
It is a test and benchmark instrument (numpy, one sample at a time when learning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core import lif
from neurochip.core.errors import EmulatorInputError
from neurochip.core.image import ChipImage
from neurochip.core.learning import CompiledLearning, compiled_learning, with_rate_shift
from neurochip.core.surrogates import surrogate_derivative

__all__ = ["FloatLearner"]

F64 = NDArray[np.float64]


@dataclass
class _FConn:
    index: int
    name: str
    pre: str
    post_off: int
    n_post: int
    scale: float  # 2^weight_exp
    mask: NDArray[np.bool_]
    delays: list[tuple[int, NDArray[np.bool_]]]
    W: F64  # (post, pre) weights in weight units
    plastic: int  # index into compiled synapses, or -1


class FloatLearner:
    """Float64 network + learning rule of an image (weights start from the image's)."""

    def __init__(self, image: ChipImage) -> None:
        self.image = image
        self.cl: CompiledLearning = compiled_learning(image)
        hw = image.hw
        f = hw.formats
        self.db = f.decay_bits
        self.in_gain = float(1 << f.input_shift)
        self.N = image.n_neurons
        pops = image.lif_populations
        unity = float(1 << f.decay_bits)
        self.theta = np.zeros(self.N)
        #: each LIF population's neurons and its float step parameters (neurochip.core.lif)
        self._lif: list[tuple[slice, lif.LifParams]] = []
        for p in pops:
            sl = slice(p.offset, p.offset + p.size)
            self.theta[sl] = float(p.vth << f.vth_shift)
            self._lif.append((sl, lif.LifParams(
                alpha=(unity - 1 - p.du) / unity if p.du >= 0 else 1.0,
                beta=(unity - p.dv) / unity, spiking=p.spiking,
                subtract=p.reset == "subtract")))
        self.bias = fx.bias_value(image.arrays["neurons/bias_mant"],
                                  image.arrays["neurons/bias_exp"]).astype(np.float64)
        plastic = {s.name: k for k, s in enumerate(self.cl.synapses)}
        self.conns: list[_FConn] = []
        for i, c in enumerate(image.connections):
            pre_idx, post_idx = image.synapse_coords(i)
            mask = np.zeros((c.n_post, c.n_pre), bool)
            mask[post_idx, pre_idx] = True
            Dl = image.delays(c.name)
            ds = [(int(d), mask & (Dl == d)) for d in sorted(set(Dl[mask].tolist()))]
            self.conns.append(_FConn(i, c.name, c.pre, image.population(c.post).offset,
                                     c.n_post, 2.0 ** c.weight_exp, mask, ds,
                                     image.weights(c.name).astype(np.float64),
                                     plastic.get(c.name, -1)))
        self.max_delay = max([d for c in self.conns for d, _ in c.delays] + [0])
        self.src_off = {p.name: (p.offset, p.size, p.kind) for p in image.populations}
        self._surrogates = {n.population: n.surrogate for n in self.cl.config.neurons
                            if n.surrogate is not None}
        self._y0 = np.zeros(self.N)
        self._spikes: dict[str, NDArray[np.bool_]] = {}
        self.reset_state()
        self.reset_traces()

    # ------------------------------------------------------------------ state
    def reset_state(self) -> None:
        self.u = np.zeros(self.N)
        self.v = np.zeros(self.N)
        self.pending = np.zeros((self.max_delay + 2, self.N))
        self.t = 0

    def reset_traces(self) -> None:
        self.x1 = [np.zeros(self.image.connections[s.index].n_pre) for s in self.cl.synapses]
        self.x2 = [np.zeros(self.image.connections[s.index].n_pre) for s in self.cl.synapses]
        self.y1 = np.zeros(self.N)
        self.y2 = np.zeros(self.N)
        self.sg = np.zeros(self.N)
        self.m = np.zeros(self.N)
        self.yt = np.zeros(self.N)
        self.rt = {p.name: np.zeros(p.matrix.shape[0]) for p in self.cl.populations
                   if p.third.kind == "dcll" and p.matrix is not None}
        self.tags = [np.zeros(c.W.shape) for c in self.conns if c.plastic >= 0]
        self.clock = 0

    def set_rate_shift(self, shift: int) -> None:
        self.cl = with_rate_shift(self.cl, shift, self.image.hw)

    def weights(self, name: str) -> F64:
        for c in self.conns:
            if c.name == name:
                return c.W.copy()
        raise KeyError(name)

    # ------------------------------------------------------------------ dynamics
    def _neurons(self, u: F64, v: F64, drive: F64
                 ) -> tuple[F64, F64, NDArray[np.bool_], F64]:
        """One step of every LIF population through the one float step of the chip's
        dynamics (:func:`neurochip.core.lif.step`), on (B, N) states: the new current, the
        membrane before reset, the spikes and the membrane after reset. Input neurons keep
        u = v = 0 and never spike."""
        cur, pre, post = np.zeros_like(u), np.zeros_like(u), np.zeros_like(u)
        spk = np.zeros(u.shape, bool)
        for sl, prm in self._lif:
            st = lif.step(prm, self.bias[sl], self.theta[sl], u[:, sl], v[:, sl], drive[:, sl])
            cur[:, sl], pre[:, sl], spk[:, sl], post[:, sl] = st.i, st.p, st.s > 0, st.u
        return cur, pre, spk, post

    def _inference(self, x_in: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], F64]:
        D = self.pending.shape[0]
        slot = self.t % D
        a = self.pending[slot].copy()
        self.pending[slot] = 0.0
        u, v_pre, s, v = (x[0] for x in self._neurons(self.u[None], self.v[None],
                                                        (a * self.in_gain)[None]))
        self.u, self.v = u, v
        spikes: dict[str, NDArray[np.bool_]] = {}
        for name, (off, size, kind) in self.src_off.items():
            spikes[name] = x_in[off: off + size] if kind == "input" else s[off: off + size]
        for c in self.conns:
            sp = spikes[c.pre]
            if not sp.any():
                continue
            for d, dm in c.delays:
                contrib = (np.where(dm, c.W, 0.0) @ sp.astype(np.float64)) * c.scale
                self.pending[(self.t + 1 + d) % D, c.post_off: c.post_off + c.n_post] += contrib
        self.t += 1
        self._spikes = spikes
        return s, v_pre

    def _learn(self, s: NDArray[np.bool_], v_pre: F64, tgt: Mapping[str, NDArray[Any]],
               values: Mapping[str, bool], reward: float) -> None:
        cl = self.cl
        tmax, tfmax, top = float(cl.trace_max), float(cl.tf_max), float((1 << cl.lut_bits) - 1)
        unity = float(1 << self.db)
        spikes = self._spikes
        for k, cs in enumerate(cl.synapses):
            x0 = spikes[cs.pre].astype(np.float64)
            self.x1[k] = np.minimum(self.x1[k] * (unity - cs.x1.decay) / unity
                                    + cs.x1.impulse * x0, tmax)
            self.x2[k] = np.minimum(self.x2[k] * (unity - cs.x2.decay) / unity
                                    + cs.x2.impulse * x0, tmax)
        y0 = s.astype(np.float64)
        for p in cl.populations:
            sl = slice(p.offset, p.offset + p.size)
            self.y1[sl] = np.minimum(self.y1[sl] * (unity - p.y1.decay) / unity
                                     + p.y1.impulse * y0[sl], tmax)
            self.y2[sl] = np.minimum(self.y2[sl] * (unity - p.y2.decay) / unity
                                     + p.y2.impulse * y0[sl], tmax)
            sp = self._surrogates.get(p.name)
            if sp is not None:
                xx = (v_pre[sl] - p.theta) / p.theta
                self.sg[sl] = top * surrogate_derivative(sp.kind, sp.steepness, xx)
        for p in cl.populations:
            sl = slice(p.offset, p.offset + p.size)
            kind = p.third.kind
            sc = 2.0 ** -p.third.shift
            if kind == "error":
                tg = tgt.get(p.name)
                tv = np.zeros(p.size) if tg is None else np.asarray(tg, np.float64)
                if values.get(p.name, False):
                    self.yt[sl] = np.clip(tv, 0, tmax)
                else:
                    self.yt[sl] = np.minimum(self.yt[sl] * (unity - p.y1.decay) / unity
                                             + p.y1.impulse * (tv != 0), tmax)
                self.m[sl] = np.clip((self.yt[sl] - self.y1[sl]) * sc, -tfmax, tfmax)
            elif kind in ("dfa", "fa"):
                src = cl.population(str(p.source))
                ss = slice(src.offset, src.offset + src.size)
                delta = self.m[ss] if src.lut is None else np.clip(
                    self.m[ss] * self.sg[ss] / (1 << cl.lut_bits), -tfmax, tfmax)
                mat = np.asarray(p.matrix, np.float64)
                self.m[sl] = np.clip((mat @ delta) * sc, -tfmax, tfmax)
            elif kind == "dcll":
                R = np.asarray(p.matrix, np.float64)
                tg = tgt.get(str(p.target))
                tv = np.zeros(R.shape[0]) if tg is None else np.asarray(tg, np.float64)
                rt = self.rt[p.name]
                if values.get(str(p.target), False):
                    rt[:] = np.clip(tv, 0, tmax)
                else:
                    rt[:] = np.minimum(rt * (unity - p.y1.decay) / unity + p.y1.impulse * (tv != 0),
                                       tmax)
                r = (R @ self.y1[sl]) * 2.0 ** -p.third.readout_shift
                err = np.clip(rt - r, -tfmax, tfmax)
                self.m[sl] = np.clip((R.T @ err) * sc, -tfmax, tfmax)
            elif kind == "reward":
                self.m[sl] = float(np.clip(reward, -tfmax, tfmax))
            else:
                self.m[sl] = 0.0
        epoch_end = (self.clock + 1) % cl.epoch == 0
        plastic = [c for c in self.conns if c.plastic >= 0]
        for c, tags in zip(plastic, self.tags):
            cs = cl.synapses[c.plastic]
            if cs.de:
                de = self._terms(c, cs.de, cs.e_frac, tags)
                tags[:] = np.where(c.mask, np.clip(tags + de, -cl.tag_max, cl.tag_max), 0.0)
            if epoch_end and cs.dw:
                dw = self._terms(c, cs.dw, cs.w_frac, tags)
                c.W = np.where(c.mask, np.clip(c.W + dw, cs.w_lo, cs.w_hi), 0.0)
        self.clock += 1

    def _terms(self, c: _FConn, terms: Any, frac: int, tags: F64) -> F64:
        k = c.plastic
        post = slice(c.post_off, c.post_off + c.n_post)
        pre_spk = self._spikes[c.pre].astype(np.float64)
        post_vals = {3: self._y0[post], 4: self.y1[post], 5: self.y2[post], 6: self.sg[post],
                     7: self.m[post], 8: self.v[post], 9: self.u[post]}
        pre_vals = {0: pre_spk, 1: self.x1[k], 2: self.x2[k]}
        total = np.zeros(c.W.shape)
        for t in terms:
            val = np.full(c.W.shape, t.mantissa * 2.0 ** (t.dshift - frac))
            for code, off in zip(t.vars, t.offsets):
                if code <= 2:
                    val = val * (pre_vals[code] + off)[None, :]
                elif code <= 9:
                    val = val * (post_vals[code] + off)[:, None]
                elif code == 10:
                    val = val * (c.W + off)
                else:
                    val = val * (tags + off)
            total += val
        return total

    # ------------------------------------------------------------------ API
    def run(self, x: NDArray[np.bool_], targets: Mapping[str, NDArray[Any]] | None = None,
            reward: NDArray[Any] | None = None, learn: bool = True
            ) -> NDArray[np.bool_]:
        """Run one sample (T, n_in); returns the spikes (T, N). Learns if ``learn``."""
        T = x.shape[0]
        out = np.zeros((T, self.N), bool)
        values = {k: np.asarray(v).dtype != np.bool_ for k, v in (targets or {}).items()}
        for t in range(T):
            s, v_pre = self._inference(x[t])
            out[t] = s
            if learn:
                self._y0 = s.astype(np.float64)
                tg = {k: np.asarray(v)[t] for k, v in (targets or {}).items()}
                self._learn(s, v_pre, tg, values, 0.0 if reward is None else float(reward[t]))
        return out

    def learn(self, inputs: NDArray[np.bool_], targets: Mapping[str, NDArray[Any]] | None = None,
              reward: NDArray[Any] | None = None, *, epochs: int = 1, shuffle: int | None = None,
              reset: bool = True) -> None:
        """Learn from N samples (N, T, n_in) with targets {population: (N, T, n)}."""
        if inputs.ndim != 3 or inputs.shape[2] != self.image.n_inputs:
            raise EmulatorInputError(f"inputs must be (N, T, {self.image.n_inputs}), got "
                                     f"{inputs.shape}", where="FloatLearner.learn",
                                     field="inputs")
        rng = np.random.default_rng(shuffle) if shuffle is not None else None
        N = inputs.shape[0]
        for _ in range(epochs):
            order = rng.permutation(N) if rng is not None else np.arange(N)
            for i in order:
                if reset:
                    self.reset_state()
                    clock = self.clock
                    self.reset_traces()
                    self.clock = clock
                self.run(inputs[i], {k: v[i] for k, v in (targets or {}).items()},
                         None if reward is None else reward[i])

    def forward(self, X: NDArray[np.bool_], record: str) -> tuple[F64, F64]:
        """Inference on a batch (B, T, n_in), fresh state per sample: spike counts and the
        summed voltage (after reset) of population ``record``, each (B, size)."""
        B, T, _ = X.shape
        pop = self.image.population(record)
        sl = slice(pop.offset, pop.offset + pop.size)
        D = self.max_delay + 2
        u = np.zeros((B, self.N))
        v = np.zeros((B, self.N))
        pend = np.zeros((D, B, self.N))
        counts = np.zeros((B, pop.size))
        vsum = np.zeros((B, pop.size))
        for t in range(T):
            a = pend[t % D].copy()
            pend[t % D] = 0.0
            u, _, s, v = self._neurons(u, v, a * self.in_gain)
            counts += s[:, sl]
            vsum += v[:, sl]
            for c in self.conns:
                off, size, kind = self.src_off[c.pre]
                sp = (X[:, t, off: off + size] if kind == "input" else s[:, off: off + size])
                sp = sp.astype(np.float64)
                for d, dm in c.delays:
                    contrib = sp @ np.where(dm, c.W, 0.0).T * c.scale
                    pend[(t + 1 + d) % D, :, c.post_off: c.post_off + c.n_post] += contrib
        return counts, vsum

    def to_image(self) -> ChipImage:
        """The float weights rounded to the nearest weight the chip keeps, as a new image."""
        img = self.image
        arrays = dict(img.arrays)
        for c in self.conns:
            if c.plastic < 0:
                continue
            info = img.connections[c.index]
            step = 1 << fx.weight_lsb_shift(info.sign_mode, info.num_weight_bits)
            cs = self.cl.synapses[c.plastic]
            w = np.clip(np.rint(c.W / step) * step, cs.w_lo, cs.w_hi).astype(np.int64)
            pre_idx, post_idx = img.synapse_coords(c.index)
            b, _, _ = fx.encode_weight_bytes(w[post_idx, pre_idx], info.sign_mode)
            arrays[f"conn/{c.index}/w"] = np.ascontiguousarray(b)
        return ChipImage(img.hw, list(img.populations), list(img.connections), list(img.cores),
                         arrays, img.learning, dict(img.metadata))
