"""Pure-Python reference model of the chip: the executable specification.

It is written for clarity, not speed, and deliberately shares no tables with the Numba
kernels: it reads the image's *logical* description (populations, per-connection weight and
delay matrices, placement) and recomputes routing and event counts itself. The kernels must
equal it bit for bit, counters included.

One step t of one sample, exactly as Lava 0.10's fixed-point LIF and Dense models do it:

1. a = sum of every input scheduled for step t (each connection's contribution was floored
   by its weight exponent when it was scheduled);
2. u = wrap_once(wrap32(trunc0(u * (2^ds - 1 - du) / 2^ds) + a * 2^input_shift))
   (wrap32: the update is computed in 32-bit two's complement, as Lava's int32 current
   and input are; only a huge input, |a * 2^6| >= 2^31, ever wraps there)
   v = saturate(trunc0(v * (2^ds - dv) / 2^ds) + u + bias_mant * 2^bias_exp)
   spike where v > vth * 2^vth_shift (never for non-spiking readouts); reset v to 0 or
   subtract the threshold;
3. the spikes of step t (host inputs and neurons) reach their targets at step t + 1 + delay:
   per connection and delay value, acc = W_d @ s, floor-shifted by the weight exponent.

Populations of the other neuron models step by
:func:`neurochip.core.neuron_models.model_step` (a two-input model's second input, fed by
the connections of port "imag", is summed apart from its first); graded spikes carry payloads, and a
connection from a graded population adds acc = floor_shift(wrap32(W_d @ payload)) (Lava's
int32 dot product).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emulator.paths import path_costs, path_cycles
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
    N_COUNTERS,
)
from neurochip.core import fixedpoint as fx
from neurochip.core import neuron_models as nm
from neurochip.core.image import ChipImage

__all__ = ["ReferenceModel", "ReferenceState"]


@dataclass
class _Conn:
    pre: str
    post_off: int
    n_post: int
    wexp: int
    graded: bool  # the presynaptic spikes carry payloads
    by_delay: list[tuple[int, NDArray[np.int64]]]  # (delay, W masked to that delay)
    dest: list[list[tuple[int, int]]]  # per pre neuron: [(core slot, synapses there)]


@dataclass
class ReferenceState:
    u: NDArray[np.int64]
    v: NDArray[np.int64]
    aux: NDArray[np.int64]  # (2, N) state slots 2 and 3 (models that have them)
    pending: dict[int, NDArray[np.int64]] = field(default_factory=dict)
    t: int = 0


class ReferenceModel:
    """Slow, obviously-correct simulation of a chip image (one sample at a time)."""

    def __init__(self, image: ChipImage) -> None:
        self.image = image
        hw = image.hw
        f = hw.formats
        self.ds, self.u_bits, self.v_bits = f.decay_bits, f.u_bits, f.v_bits
        self.in_shift, self.vth_shift = f.input_shift, f.vth_shift
        self.N = image.n_neurons
        self.slots = {c.core: i for i, c in enumerate(image.cores)}
        core_of = np.zeros(self.N, np.int64)
        for p in image.lif_populations:
            for core, start, count in p.slices:
                core_of[p.offset + start: p.offset + start + count] = core
        self.core_of = core_of
        bm = image.arrays["neurons/bias_mant"]
        be = image.arrays["neurons/bias_exp"]
        self.bias = fx.bias_value(bm, be)
        self.costs = path_costs(hw)
        # the second inputs of two-input models follow the N neuron inputs
        self.in2: dict[str, int] = {}
        width = self.N
        for p in image.lif_populations:
            if nm.MODELS[p.model].inputs > 1:
                self.in2[p.name] = width
                width += p.size
        self.width = width
        self.conns: list[_Conn] = []
        for ci, c in enumerate(image.connections):
            W = image.weights(c.name)
            Dl = image.delays(c.name)
            pre_idx, post_idx = image.synapse_coords(ci)
            mask = np.zeros((c.n_post, c.n_pre), bool)
            mask[post_idx, pre_idx] = True
            by_delay = [(int(d), np.where(mask & (Dl == d), W, 0))
                        for d in sorted(set(Dl[mask].tolist()))]
            post = image.population(c.post)
            dest: list[list[tuple[int, int]]] = []
            for j in range(c.n_pre):
                cores = core_of[post.offset + np.flatnonzero(mask[:, j])]
                u, n = np.unique(cores, return_counts=True)
                dest.append([(self.slots[int(k)], int(m)) for k, m in zip(u, n)])
            off = self.in2[post.name] if c.port else post.offset
            self.conns.append(_Conn(c.pre, off, c.n_post, c.weight_exp,
                                    image.population(c.pre).graded, by_delay, dest))
        pos = [hw.core_position(c.core) for c in image.cores]
        self.slot_pos = pos
        io_x, io_y = hw.mesh.io_tile
        self.io_pos = (0, io_x, io_y)

    def new_state(self) -> ReferenceState:
        return ReferenceState(np.zeros(self.N, np.int64), np.zeros(self.N, np.int64),
                              np.zeros((2, self.N), np.int64))

    def _registers(self, p: Any) -> dict[str, Any]:
        """A population's model registers, its per-neuron ones read from the image."""
        regs: dict[str, Any] = dict(p.registers)
        for f in nm.MODELS[p.model].fields:
            if f.per_neuron:
                regs[f.name] = self.image.arrays[f"neurons/{f.name}"][
                    p.offset: p.offset + p.size].astype(np.int64)
        return regs

    def _source_pos(self, pop_kind: str, g: int) -> tuple[int, tuple[int, int, int]]:
        if pop_kind == "input":
            return -1, self.io_pos
        slot = self.slots[int(self.core_of[g])]
        return slot, self.slot_pos[slot]

    def run(self, st: ReferenceState, steps: int, inputs: NDArray[Any],
            probe_idx: NDArray[np.int64], probe_var: NDArray[np.int8],
            rec_col: NDArray[np.int64], graded_rec: bool = False
            ) -> tuple[NDArray[Any], ...]:
        """Simulate ``steps`` steps; ``inputs`` is (steps, n_inputs), bool or the integer
        payloads of graded inputs (0: no spike). Returns probes, spikes, counters and, with
        graded_rec, the payloads of the recorded spikes (int32 like spikes)."""
        img = self.image
        n_rec = int(rec_col.max()) + 1 if rec_col.size else 0
        probes = np.zeros((steps, probe_idx.size), np.int32)
        spikes = np.zeros((steps, n_rec), np.uint8)
        values = np.zeros((steps, n_rec if graded_rec else 0), np.int32)
        counters = np.zeros((steps, max(len(self.slots), 1), N_COUNTERS), np.int64)
        f = img.hw.formats
        regs = {p.name: self._registers(p) for p in img.lif_populations if p.model != "lif"}
        for t in range(steps):
            now = st.t + t
            a = st.pending.pop(now, np.zeros(self.width, np.int64))
            fired: dict[str, NDArray[np.bool_]] = {}
            pay: dict[str, NDArray[np.int64]] = {}
            for p in img.lif_populations:
                sl = slice(p.offset, p.offset + p.size)
                if p.model in ("lif", "lif_per_neuron"):
                    per = regs.get(p.name, {})  # lif_per_neuron: arrays, one per neuron
                    u, v, s, _ = fx.lif_step(
                        st.u[sl], st.v[sl], a[sl], du=per.get("du", p.du),
                        dv=per.get("dv", p.dv), bias=self.bias[sl],
                        theta=p.vth << self.vth_shift, reset=p.reset, spiking=p.spiking,
                        decay_bits=self.ds, input_shift=self.in_shift, u_bits=self.u_bits,
                        v_bits=self.v_bits)
                    st.u[sl], st.v[sl] = u, v
                    pay[p.name] = s.astype(np.int64)
                else:
                    b = None
                    if p.name in self.in2:  # the second input (port "imag")
                        b = a[self.in2[p.name]: self.in2[p.name] + p.size]
                    new, out = nm.model_step(
                        p.model, [st.u[sl], st.v[sl], st.aux[0, sl], st.aux[1, sl]], a[sl],
                        registers=regs[p.name], du=p.du, dv=p.dv, vth=p.vth,
                        bias=self.bias[sl], t=now, fmt=f, b=b)
                    st.u[sl], st.v[sl], st.aux[0, sl], st.aux[1, sl] = new
                    s = out != 0
                    pay[p.name] = out
                fired[p.name] = s
                active = s | (a[sl] != 0)
                if p.name in self.in2:
                    active |= a[self.in2[p.name]: self.in2[p.name] + p.size] != 0
                for i in np.flatnonzero(active):
                    counters[t, self.slots[int(self.core_of[p.offset + i])], C_ACTIVE] += 1
            slots = (st.u, st.v, st.aux[0], st.aux[1])
            for col, (g, var) in enumerate(zip(probe_idx, probe_var)):
                probes[t, col] = slots[int(var)][g]
            for p in img.lif_populations:
                for i in np.flatnonzero(fired[p.name]):
                    col = rec_col[p.offset + i]
                    if col >= 0:
                        spikes[t, col] = 1
                        if graded_rec and p.graded:
                            values[t, col] = pay[p.name][i]
            for p in img.input_populations:
                x = np.asarray(inputs[t, p.offset: p.offset + p.size]).astype(np.int64)
                fired[p.name] = x != 0
                pay[p.name] = x
            # Counters: every spiking source sends one message per output axon.
            for p in img.populations:
                for i in np.flatnonzero(fired[p.name]):
                    g = p.offset + i
                    sslot, (sc, sx, sy) = self._source_pos(p.kind, g)
                    if sslot >= 0:
                        counters[t, sslot, C_SPIKES_OUT] += 1
                    for c in self.conns:
                        if c.pre != p.name:
                            continue
                        for k, n in c.dest[i]:
                            kc, kx, ky = self.slot_pos[k]
                            dx, dy, dl = abs(kx - sx), abs(ky - sy), abs(kc - sc)
                            ch = sslot if sslot >= 0 else k
                            counters[t, k, C_SYNOPS] += n
                            counters[t, k, C_SPIKES_IN] += 1
                            if sslot >= 0:
                                counters[t, sslot, C_MSGS] += 1
                            counters[t, ch, C_HOPS_EW] += dx
                            counters[t, ch, C_HOPS_NS] += dy
                            counters[t, ch, C_LINKS] += dl
                            path = path_cycles(self.costs, dx, dy, dl)
                            counters[t, ch, C_ROUTE_MAX] = max(counters[t, ch, C_ROUTE_MAX],
                                                               path)
            # Synaptic input for later steps (per connection and delay, floored sums).
            for c in self.conns:
                xs = pay[c.pre] if c.graded else fired[c.pre].astype(np.int64)
                if not xs.any():
                    continue
                for d, Wd in c.by_delay:
                    acc = fx.floor_shift(fx.wrap(Wd @ xs, fx.DATAPATH_BITS) if c.graded
                                         else Wd @ xs, c.wexp)
                    buf = st.pending.setdefault(now + 1 + d, np.zeros(self.width, np.int64))
                    buf[c.post_off: c.post_off + c.n_post] += acc
        st.t += steps
        if graded_rec:
            return probes, spikes, counters, values
        return probes, spikes, counters
