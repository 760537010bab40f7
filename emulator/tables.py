"""Flat tables the kernels run on, built once from a chip image (pure numpy).

Index spaces:
* LIF neurons ``g`` in population order (a population's neurons are contiguous);
* sources ``s``: every input channel first, then every LIF neuron (s = n_inputs + g);
* core slots ``k``: the image's used cores, compacted (counters are per slot).

Synapse memory is kept exactly as the image stores it (one byte per dense synapse; a packed
``post << 8 | weight`` word per sparse synapse), so the emulator's memory per synapse is
that of the chip image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core import neuron_models as nm
from neurochip.core.errors import EmulatorInputError
from neurochip.core.fixedpoint import decode_weight_bytes
from neurochip.core.image import ChipImage

__all__ = ["MODEL_PARAMS", "ConnKind", "ModelId", "ResetMode", "Tables", "build_tables",
           "model_params"]

# Counter columns (per step, per core slot). Learning columns are filled by the
# learning engine.
C_SYNOPS = 0  # synaptic operations (synapses whose weight was read and accumulated)
C_SPIKES_IN = 1  # axon events delivered into the core
C_ACTIVE = 2  # neuron updates with input or a spike
C_SPIKES_OUT = 3  # spikes emitted by the core's neurons
C_MSGS = 4  # spike messages sent (one per output axon of a spiking neuron)
C_HOPS_EW = 5  # east-west tile hops of those messages (host messages: charged at destination)
C_HOPS_NS = 6  # north-south tile hops
C_LINKS = 7  # chip-to-chip link crossings
C_ROUTE_MAX = 8  # longest message path in cycles this step (max, not a sum)
C_LEARN = 9  # synaptic variables updated by the learning engine
C_TRACE = 10  # trace / tag / third-factor updates by the learning engine
C_ERR_MSGS = 11  # error / modulation messages (third factor) delivered
N_COUNTERS = 12
COUNTER_NAMES = ("syn_ops", "spikes_in", "neurons_active", "spikes_out", "messages",
                 "hops_ew", "hops_ns", "chip_links", "route_cycles", "learn_updates",
                 "trace_updates", "error_messages")



class ResetMode(IntEnum):
    """What a LIF population does when it spikes (``Tables.pop_mode``)."""

    ZERO = 0  # v <- 0
    SUBTRACT = 1  # v <- v - theta
    NONSPIKING = 2  # never spikes (a readout)


class ModelId(IntEnum):
    """A population's neuron model (``Tables.pop_model``; neurochip.core.neuron_models)."""

    LIF = 0
    LIF_RESET = 1
    TERNARY_LIF = 2
    SIGMA = 3
    DELTA = 4
    SIGMA_DELTA = 5
    LIF_PER_NEURON = 6
    ATRLIF = 7
    RF = 8
    RF_IZ = 9
    RF_ZERO = 10


assert {m.name.lower(): int(m) for m in ModelId} == nm.MODEL_IDS

#: columns of Tables.pop_par
MODEL_PARAMS = 6
#: the pop_par column of a two-input model's second-input offset in a ring slot
IN2_COL = 5


def model_params(model: str, registers: dict[str, int], vth_shift: int) -> list[int]:
    """A population's model registers as the kernels read them (``Tables.pop_par`` row):

    * lif_reset: reset_interval, reset_offset;
    * ternary_lif: vth_hi << vth_shift, vth_lo << vth_shift;
    * delta, sigma_delta: vth << E, cum_error, state_exp, E = spike_exp + state_exp,
      act_mode;
    * atrlif: theta_0 << vth_shift, theta_step << vth_shift, delta_theta, delta_r;
    * rf, rf_iz: cos_decay, sin_decay, decay_bits, state_exp, vth << state_exp;
    * rf_zero: uth (its lct and lst are per-neuron words, ``Tables.ndu`` / ``ndv``);
    * two-input models: column ``IN2_COL``, where their second input starts in a ring slot
      (set by :func:`build_tables`);
    * lif, sigma: nothing (zeros)."""
    r = registers
    if model == "lif_reset":
        out = [r["reset_interval"], r["reset_offset"]]
    elif model == "ternary_lif":
        out = [r["vth_hi"] << vth_shift, r["vth_lo"] << vth_shift]
    elif model in ("delta", "sigma_delta"):
        e = r["spike_exp"] + r["state_exp"]
        out = [r["vth"] << e, r["cum_error"], r["state_exp"], e, r.get("act_mode", 0)]
    elif model == "atrlif":
        out = [r["theta_0"] << vth_shift, r["theta_step"] << vth_shift, r["delta_theta"],
               r["delta_r"]]
    elif model in ("rf", "rf_iz"):
        out = [r["cos_decay"], r["sin_decay"], r["decay_bits"], r["state_exp"],
               r["vth"] << r["state_exp"]]
    elif model == "rf_zero":
        out = [r["uth"]]
    else:
        out = []
    return [int(x) for x in out] + [0] * (MODEL_PARAMS - len(out))


class ConnKind(IntEnum):
    """How a connection's synapses are stored (``Tables.c_kind``)."""

    DENSE = 0  # one byte per (pre, post), rows of n_post bytes
    SPARSE = 1  # per row a base index, per synapse a 16-bit offset and a weight byte
    SPARSE_WIDE = 2  # per synapse a full 32-bit target index (rows spanning >= 2^16)
    CONV = 3  # shared weights: the kernel once, targets generated from the geometry


# columns of a conv connection's geometry row (Tables.cgeo; emulator.kernels.conv)
G_C, G_H, G_W, G_CO, G_HO, G_WO, G_KH, G_KW, G_SY, G_SX, G_PT, G_PL, G_DY, G_DX, \
    G_GROUPS, G_XYC, G_KOFF, G_YTAP, G_XTAP, G_POS = range(20)
GEO_COLS = 20
#: bits of each coordinate in a packed input position (``conv_taps``)
POS_BITS = 21


def geometry_row(conv: dict[str, Any], koff: int, toff: int) -> NDArray[np.int64]:
    """One ``Tables.cgeo`` row of an image's conv geometry (its kernel words from koff, its
    tap tables (:func:`conv_taps`: rows, columns, input positions) from toff in
    ``Tables.ctap``)."""
    C, H, W = (int(v) for v in conv["in_shape"])
    Co, Ho, Wo = (int(v) for v in conv["out_shape"])
    kh, kw = (int(v) for v in conv["kernel"])
    sy, sx = (int(v) for v in conv["stride"])
    pt, _, pl, _ = (int(v) for v in conv["padding"])
    dy, dx = (int(v) for v in conv["dilation"])
    return np.array([C, H, W, Co, Ho, Wo, kh, kw, sy, sx, pt, pl, dy, dx, int(conv["groups"]),
                     int(conv["layout"] == "xyc"), koff, toff, toff + H * (1 + 2 * kh),
                     toff + H * (1 + 2 * kh) + W * (1 + 2 * kw)],
                    np.int64)


def tap_order(k: int, s: int, d: int) -> NDArray[np.int64]:
    """Where each kernel offset kk of one axis sits in the conv kernel's stored order:
    with dilation 1, the offsets grouped by kk mod s (the taps one input coordinate can
    use are those of one group), each group in falling order. The taps an input reaches
    then lie next to each other in the kernel, in the order of their output coordinates
    (which fall by one as kk grows by s), so a row of them is one run of words. With
    dilation, the natural order."""
    if d != 1:
        return np.arange(k, dtype=np.int64)
    order = [kk for r in range(min(s, k)) for kk in reversed(range(r, k, s))]
    at = np.empty(k, np.int64)
    at[order] = np.arange(k)
    return at


def axis_taps(n_in: int, pad: int, k: int, d: int, s: int, n_out: int) -> NDArray[np.int64]:
    """Per input coordinate p along one axis of a convolution, its valid taps: a row
    [m, o_1..o_k, k_1..k_k] holding how many taps kk put p at a whole output coordinate
    o = (p + pad - kk * d) / s inside [0, n_out), those outputs and where each tap sits in
    the stored kernel (:func:`tap_order`; the rest of the row unused); the rows of
    p = 0..n_in-1, flattened."""
    at = tap_order(k, s, d)
    out = np.zeros((n_in, 1 + 2 * k), np.int64)
    for p in range(n_in):
        m = 0
        for kk in range(k):
            q = p + pad - kk * d
            if q >= 0 and q % s == 0 and q // s < n_out:
                out[p, 1 + m] = q // s
                out[p, 1 + k + m] = at[kk]
                m += 1
        out[p, 0] = m
    return out.reshape(-1)


def conv_taps(geo: NDArray[np.int64]) -> NDArray[np.int64]:
    """The tap tables of a conv connection from its geometry row: :func:`axis_taps` of its
    rows, then of its columns, then per input neuron j its (c, y, x) packed as
    ``c << 2 * POS_BITS | y << POS_BITS | x`` (the kernel then divides nothing)."""
    C, H, W = (int(geo[g]) for g in (G_C, G_H, G_W))
    if max(C, H, W) >= 1 << POS_BITS:
        raise EmulatorInputError(f"a conv input of shape {(C, H, W)} has a side of 2^{POS_BITS} "
                                 f"or more", where="emulator tables", field="conv")
    j = np.arange(C * H * W, dtype=np.int64)
    if geo[G_XYC]:
        c, t = j % C, j // C
        y, x = t % H, t // H
    else:
        x, t = j % W, j // W
        y, c = t % H, t // H
    pos = (c << (2 * POS_BITS)) | (y << POS_BITS) | x
    return np.concatenate([
        axis_taps(H, int(geo[G_PT]), int(geo[G_KH]), int(geo[G_DY]), int(geo[G_SY]),
                  int(geo[G_HO])),
        axis_taps(W, int(geo[G_PL]), int(geo[G_KW]), int(geo[G_DX]), int(geo[G_SX]),
                  int(geo[G_WO])), pos])


def transposed_kernel(kb: NDArray[np.uint8], conv: dict[str, Any]) -> NDArray[np.uint8]:
    """The kernel bytes (C_out, C_in/groups, kh, kw) as the conv kernel reads them:
    (groups, C_in/groups, kh, kw, C_out / groups), so that a tap's bytes for the output
    channels of a group are consecutive, with each axis's offsets in :func:`tap_order`."""
    Co = int(conv["out_shape"][0])
    g = int(conv["groups"])
    kh, kw = (int(v) for v in conv["kernel"])
    sy, sx = (int(v) for v in conv["stride"])
    dy, dx = (int(v) for v in conv["dilation"])
    cg = kb.size // (Co * kh * kw)
    k = kb.reshape(g, Co // g, cg, kh, kw)
    ys, xs = np.empty(kh, np.int64), np.empty(kw, np.int64)
    ys[tap_order(kh, sy, dy)] = np.arange(kh)  # stored position -> kernel offset
    xs[tap_order(kw, sx, dx)] = np.arange(kw)
    k = k[:, :, :, ys][:, :, :, :, xs]
    return np.ascontiguousarray(k.transpose(0, 2, 3, 4, 1).reshape(-1))


@dataclass
class Tables:
    n_inputs: int
    n_neurons: int
    n_sources: int
    ring_slots: int
    #: words of one ring slot: the neurons' inputs, then the second inputs of the
    #: two-input models' neurons (N when there are none)
    ring_width: int
    # neurons: registers per LIF population (contiguous ranges), bias and core per neuron
    pop_g0: NDArray[np.int64]  # (P_lif + 1,) first neuron of each LIF population
    pop_du: NDArray[np.int32]
    pop_dv: NDArray[np.int32]
    pop_theta: NDArray[np.int32]
    pop_mode: NDArray[np.int8]  # ResetMode
    pop_model: NDArray[np.int8]  # ModelId
    pop_par: NDArray[np.int64]  # (P, MODEL_PARAMS): see model_params
    pop_graded: NDArray[np.int8]  # 1: the population's spikes carry payloads
    aux_len: int  # words of auxiliary state per sample: 2 N when some model has aux slots
    ndu: NDArray[np.int32]  # (N,) per-neuron du (lif_per_neuron) or lct (rf_zero), or ()
    ndv: NDArray[np.int32]  # (N,) per-neuron dv (lif_per_neuron) or lst (rf_zero), or ()
    bias: NDArray[np.int32]
    nslot: NDArray[np.int16]
    # segments: maximal runs of neurons of one population on one core
    seg_g0: NDArray[np.int64]  # (n_seg + 1,) first neuron of each segment
    seg_slot: NDArray[np.int64]  # core slot of each segment
    seg_sends: NDArray[np.uint8]  # 1 if some neuron of the segment has output axons
    seg_pop: NDArray[np.int64]  # LIF population of each segment
    # sources
    src_pop: NDArray[np.int32]
    pop_src0: NDArray[np.int64]
    src_slot: NDArray[np.int32]
    # route class of each source (identical axon lists), -1 for a source alone in its class
    cls_of_src: NDArray[np.int32]
    cls_rep: NDArray[np.int64]  # a representative source of each class
    # connections
    c_kind: NDArray[np.int8]  # ConnKind
    c_post0: NDArray[np.int64]
    c_npost: NDArray[np.int64]
    c_lsh: NDArray[np.int32]
    c_wmode: NDArray[np.int8]  # WeightDecode
    c_wexp: NDArray[np.int32]
    c_delay: NDArray[np.int32]
    c_hasd: NDArray[np.int8]
    c_woff: NDArray[np.int64]
    c_doff: NDArray[np.int64]
    c_soff: NDArray[np.int64]
    c_scoff: NDArray[np.int64]
    c_nbins: NDArray[np.int32]
    c_prepop: NDArray[np.int32]
    c_rowlen: NDArray[np.int64]  # mean synapses per presynaptic row (work per spike)
    c_graded: NDArray[np.int8]  # 1: the presynaptic population sends payloads
    scratch_len: int
    # synapse memory
    dw: NDArray[np.uint8]
    dd: NDArray[np.uint8]
    sptr: NDArray[np.int64]  # per sparse row: first synapse (rows of all sparse connections)
    sbase: NDArray[np.int32]  # per sparse row: smallest target index (narrow rows)
    send: NDArray[np.int32]  # per sparse row: one past its largest target (narrow rows)
    soff: NDArray[np.uint16]  # per sparse synapse: target - row base (narrow connections)
    swide: NDArray[np.uint32]  # per sparse synapse: target index (wide connections only)
    sw: NDArray[np.uint8]  # per sparse synapse: weight byte
    sd: NDArray[np.uint8]  # per sparse synapse: delay (only when some sparse conn has them)
    cgeo: NDArray[np.int64]  # (conv connections, GEO_COLS) geometry rows (kernels.conv)
    ckw: NDArray[np.int32]  # conv kernels' decoded weights, transposed (kernels.conv)
    ctap: NDArray[np.int64]  # conv connections' tap tables (axis_taps; kernels.conv)
    # routing
    route_ptr: NDArray[np.int64]
    route_slot: NDArray[np.int16]
    route_nsyn: NDArray[np.uint16]
    slot_core: NDArray[np.int64]
    slot_x: NDArray[np.int32]
    slot_y: NDArray[np.int32]
    slot_chip: NDArray[np.int32]
    slot_neurons: NDArray[np.int64]
    io_xy: tuple[int, int]
    # formats and costs
    fmt: tuple[int, int, int, int]  # decay_shift, u_bits, v_bits, input_shift
    route_costs: tuple[int, int, int, int]  # spike_out, hop_ew, hop_ns, chip_link (cycles)
    # kernel records made of these tables, by the segments they list (kernels.run): the
    # tables are never changed in place (dataclasses.replace makes new ones, which start
    # with an empty cache of their own)
    records: dict[bytes, Any] = field(default_factory=dict, init=False, repr=False,
                                      compare=False)

    def nbytes_synapses(self) -> int:
        """Bytes the emulator holds for synapse memory and axon tables."""
        arrs: list[Any] = [self.dw, self.dd, self.sptr, self.sbase, self.send, self.soff,
                           self.swide,
                           self.sw, self.sd, self.cgeo, self.ckw, self.ctap, self.route_ptr,
                           self.route_slot, self.route_nsyn]
        return int(sum(a.nbytes for a in arrs))


def _max_row_span(ptr: NDArray[np.int64], post: NDArray[Any]) -> int:
    nonempty = np.flatnonzero(np.diff(ptr) > 0)
    if nonempty.size == 0:
        return 0
    p = post.astype(np.int64)
    hi = np.maximum.reduceat(p, ptr[nonempty])
    lo = np.minimum.reduceat(p, ptr[nonempty])
    return int((hi - lo).max()) + 1


def _fanout_lists(image: ChipImage, ci: int
                  ) -> tuple[NDArray[np.int64], NDArray[Any], NDArray[np.uint8]]:
    """(row pointer, targets, weight bytes) of sparse connection ci's fan-out lists; a
    conv connection's lists are generated from its kernel and geometry."""
    if image.connections[ci].storage != "conv":
        return (image.arrays[f"conn/{ci}/ptr"], image.arrays[f"conn/{ci}/post"],
                image.arrays[f"conn/{ci}/w"])
    geom = image.conv_geometry(ci)
    pre, post, kidx = geom.pre_major()
    ptr = np.zeros(geom.n_pre + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=geom.n_pre), out=ptr[1:])
    return ptr, post, image.arrays[f"conn/{ci}/w"][kidx]


def _route_hashes(core: NDArray[np.int64], nsyn: NDArray[np.int64], local: NDArray[np.int64],
                  start: NDArray[np.int64], lens: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per source, a 64-bit hash of its axon list (entries start[i]:start[i] + lens[i] of
    core and nsyn; local: each entry's place in its list): a mixed word per entry, summed
    with wrap-around. Equal lists hash equal; _route_classes verifies the rest."""
    with np.errstate(over="ignore"):
        word = ((core * np.int64(0x9E3779B1) + nsyn * np.int64(0x85EBCA77)
                 + local * np.int64(0xC2B2AE3D) + 1) * np.int64(0x27D4EB2F165667C5))
        word ^= word >> np.int64(29)
    h = np.zeros(lens.size, np.int64)
    has = lens > 0
    if has.any():
        h[has] = np.add.reduceat(word, start[has])
    return h


def _route_classes(image: ChipImage, src_pop: NDArray[np.int32], pop_src0: NDArray[np.int64],
                   src_slot: NDArray[np.int32]) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Group sources whose axon lists are identical (same core, same targets and counts).

    Only populations whose every outgoing connection is dense or a convolution are
    grouped: their neurons on one core reach the same cores with the same number of
    synapses (dense), or do so wherever the kernel lies whole inside each target core's
    part of the output (conv: all but the borders). A source's list is hashed, sources of
    one core with equal lengths and hashes are grouped, and each member is then verified
    entry by entry against its group's first source: any that differs is charged on its
    own, so a hash collision costs speed, never a count.
    """
    ptr = image.arrays["route/ptr"]
    rcore = image.arrays["route/core"].astype(np.int64)
    rnsyn = image.arrays["route/nsyn"].astype(np.int64)
    S = src_pop.size
    cls = np.arange(S, dtype=np.int64)
    regular = {p.name: True for p in image.populations}
    for c in image.connections:
        if c.storage not in ("dense", "conv"):
            regular[c.pre] = False
    for pi, p in enumerate(image.populations):
        if not regular[p.name] or p.size < 2:
            continue
        s0 = int(pop_src0[pi])
        srcs = np.arange(s0, s0 + p.size)
        a, b = int(ptr[s0]), int(ptr[s0 + p.size])
        lens = (ptr[srcs + 1] - ptr[srcs]).astype(np.int64)
        # per entry a mixed 64-bit word of (position in its list, core, count), summed
        # per source (wrapping): equal lists give equal sums
        owner = np.repeat(np.arange(p.size), lens)
        local = np.arange(b - a) - (ptr[srcs] - a)[owner]
        h = _route_hashes(rcore[a:b], rnsyn[a:b], local, (ptr[srcs] - a).astype(np.int64),
                          lens)
        key = np.stack([src_slot[srcs].astype(np.int64), lens, h], axis=1)
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        rep = srcs[first[inv.reshape(-1)]]
        # verify every entry against the representative's
        ok = np.ones(p.size, bool)
        if b > a:
            rep_entry = ptr[rep][owner] + local
            bad = (rcore[a:b] != rcore[rep_entry]) | (rnsyn[a:b] != rnsyn[rep_entry])
            ok[np.unique(owner[bad])] = False
        cls[srcs[ok]] = rep[ok]
    reps, cls_of_src = np.unique(cls, return_inverse=True)
    alone = np.bincount(cls_of_src, minlength=reps.size)[cls_of_src] == 1
    cls_of_src[alone] = -1  # charged one by one
    return cls_of_src.astype(np.int32), reps.astype(np.int64)


def _segments(pop_g0: NDArray[np.int64], nslot: NDArray[np.int32],
              route_ptr: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                                      NDArray[np.uint8], NDArray[np.int64]]:
    """Split the neurons where the population or the core changes; per segment, whether
    any of its neurons has output axons (route_ptr: the LIF neurons' part, N + 1 entries)."""
    N = nslot.size
    cut = np.zeros(N + 1, bool)
    cut[pop_g0] = True
    if N:
        cut[1:N] |= nslot[1:] != nslot[:-1]
    g0 = np.flatnonzero(cut).astype(np.int64)
    g0 = g0[g0 < N] if N else np.zeros(0, np.int64)
    bounds = np.concatenate([g0, [N]]).astype(np.int64)
    slot = nslot[g0].astype(np.int64)
    c = np.concatenate([[0], np.cumsum(np.diff(route_ptr) > 0)])
    sends = (c[bounds[1:]] > c[bounds[:-1]]).astype(np.uint8)
    pop = np.searchsorted(pop_g0, g0, side="right").astype(np.int64) - 1
    return bounds, slot, sends.reshape(-1), pop


def build_tables(image: ChipImage) -> Tables:
    hw = image.hw
    fmtd = hw.formats
    pops = image.populations
    n_in = image.n_inputs
    n_lif = image.n_neurons
    S = n_in + n_lif
    cores = [c.core for c in image.cores]

    # neurons -------------------------------------------------------------------------
    lif = image.lif_populations
    pop_g0 = np.array([p.offset for p in lif] + [n_lif], np.int64)
    pop_du = np.array([p.du for p in lif], np.int32)
    pop_dv = np.array([p.dv for p in lif], np.int32)
    pop_theta = np.array([p.vth << fmtd.vth_shift for p in lif], np.int32)
    pop_mode = np.array([ResetMode.NONSPIKING if not p.spiking else
                         ResetMode.SUBTRACT if p.reset == "subtract" else ResetMode.ZERO
                         for p in lif], np.int8)
    if np.any(np.diff(pop_g0) < 0) or (lif and any(
            lif[i].offset + lif[i].size != pop_g0[i + 1] for i in range(len(lif)))):
        raise ValueError("LIF populations must be contiguous and in order")
    pop_model = np.array([nm.MODEL_IDS[p.model] for p in lif], np.int8)
    pop_par = np.array([model_params(p.model, p.registers, fmtd.vth_shift) for p in lif],
                       np.int64).reshape(len(lif), MODEL_PARAMS)
    pop_graded = np.array([p.graded for p in lif], np.int8)
    aux_len = 2 * n_lif if any(nm.AUX_SLOTS[p.model] for p in lif) else 0
    bm = image.arrays["neurons/bias_mant"].astype(np.int64)
    be = image.arrays["neurons/bias_exp"].astype(np.int64)
    bias = np.where(be >= 0, bm << np.maximum(be, 0), bm >> np.maximum(-be, 0)).astype(np.int32)
    ndu = ndv = np.zeros(0, np.int32)
    if any(p.model in ("lif_per_neuron", "rf_zero") for p in lif):
        # per-neuron model words: du and dv of lif_per_neuron, lct and lst of rf_zero
        ndu, ndv = np.zeros(n_lif, np.int32), np.zeros(n_lif, np.int32)
        for p in lif:
            sl = slice(p.offset, p.offset + p.size)
            names = {"lif_per_neuron": ("du", "dv"), "rf_zero": ("lct", "lst")}.get(p.model)
            if names:
                ndu[sl] = image.arrays[f"neurons/{names[0]}"][sl]
                ndv[sl] = image.arrays[f"neurons/{names[1]}"][sl]
    # second inputs of two-input models: after the N neuron inputs of each ring slot
    in2 = {}
    ring_width = n_lif
    for i, p in enumerate(lif):
        if nm.MODELS[p.model].inputs > 1:
            in2[p.name] = pop_par[i, IN2_COL] = ring_width
            ring_width += p.size
    for i, p in enumerate(lif):
        if p.model == "sigma_delta":  # the model's own per-neuron bias, scaled by 2^E
            sl = slice(p.offset, p.offset + p.size)
            e = int(pop_par[i, 3])
            bias[sl] = (image.arrays["neurons/bias"][sl].astype(np.int64) << e).astype(np.int32)
    ncore = image.arrays["neurons/core"]
    nslot = np.zeros(0, np.int32)
    if n_lif:
        lut = np.full(max(cores) + 1, -1, np.int32)
        lut[cores] = np.arange(len(cores), dtype=np.int32)
        nslot = lut[ncore]

    # sources -------------------------------------------------------------------------
    pop_index = {p.name: i for i, p in enumerate(pops)}
    src_pop = np.zeros(S, np.int32)
    pop_src0 = np.zeros(len(pops), np.int64)
    for i, p in enumerate(pops):
        s0 = p.offset if p.kind == "input" else n_in + p.offset
        pop_src0[i] = s0
        src_pop[s0: s0 + p.size] = i
    src_slot = np.full(S, -1, np.int32)
    src_slot[n_in:] = nslot

    # connections ----------------------------------------------------------------------
    C = len(image.connections)
    c_kind = np.zeros(C, np.int8)
    c_post0 = np.zeros(C, np.int64)
    c_npost = np.zeros(C, np.int64)
    c_lsh = np.zeros(C, np.int32)
    c_wmode = np.zeros(C, np.int8)
    c_wexp = np.zeros(C, np.int32)
    c_delay = np.zeros(C, np.int32)
    c_hasd = np.zeros(C, np.int8)
    c_woff = np.zeros(C, np.int64)
    c_doff = np.zeros(C, np.int64)
    c_soff = np.zeros(C, np.int64)
    c_scoff = np.zeros(C, np.int64)
    c_nbins = np.zeros(C, np.int32)
    c_prepop = np.array([pop_index[c.pre] for c in image.connections], np.int32)
    c_rowlen = np.zeros(C, np.int64)
    c_graded = np.array([image.population(c.pre).graded for c in image.connections], np.int8)
    dws, dds, sptrs, sbases, sends, soffs, swides, sws, sds = [], [], [], [], [], [], [], [], []
    dw_len = dd_len = sp_len = ss_len = sc_len = 0
    any_sparse_delay = any(c.has_delays and c.storage == "sparse" for c in image.connections)
    wide: dict[int, bool] = {}
    # A conv connection runs on the conv kernel (CONV); one with graded presynaptic spikes
    # runs as the sparse lists it generates (the graded path reads lists).
    lists = {ci: _fanout_lists(image, ci) for ci, c in enumerate(image.connections)
             if c.storage == "sparse" or (c.storage == "conv" and c_graded[ci])}
    cgeos: list[NDArray[np.int64]] = []
    ckws: list[NDArray[np.int32]] = []
    ctaps: list[NDArray[np.int64]] = []
    ctap_len = 0
    ckb_len = 0
    for ci, (lptr, lpost, _) in lists.items():
        wide[ci] = _max_row_span(lptr, lpost) >= (1 << 16)
    any_wide = any(wide.values())
    max_delay = 0
    for ci, c in enumerate(image.connections):
        post = image.population(c.post)
        c_post0[ci] = in2[post.name] if c.port else post.offset
        c_npost[ci] = c.n_post
        c_wmode[ci] = c.decode
        c_wexp[ci] = c.weight_exp
        c_lsh[ci] = c.wshift + max(c.weight_exp, 0)
        c_delay[ci] = c.delay
        c_hasd[ci] = 1 if c.has_delays else 0
        w = lists[ci][2] if ci in lists else image.arrays[f"conn/{ci}/w"]
        d = image.arrays.get(f"conn/{ci}/delay")
        cmax = int(d.max()) if (d is not None and d.size) else c.delay
        max_delay = max(max_delay, cmax)
        if c.weight_exp < 0:
            c_nbins[ci] = cmax + 1 if c.has_delays else 1
            c_scoff[ci] = sc_len
            sc_len += int(c_nbins[ci]) * c.n_post
        c_rowlen[ci] = w.size // max(image.population(c.pre).size, 1)
        if c.storage == "conv" and ci not in lists:
            c_kind[ci] = ConnKind.CONV
            c_soff[ci] = len(cgeos)  # its geometry row
            c_rowlen[ci] = c.n_synapses // max(c.n_pre, 1)
            assert c.conv is not None
            cgeos.append(geometry_row(c.conv, ckb_len, ctap_len))
            ctaps.append(conv_taps(cgeos[-1]))
            ctap_len += ctaps[-1].size
            # decoded once here (the connection's rule and shift), as int32 words that the
            # int32 datapath adds as they are: the same sums as decoding byte by byte
            ckws.append(decode_weight_bytes(transposed_kernel(w, c.conv), c.decode,
                                            int(c_lsh[ci])).astype(np.int32))
            ckb_len += w.size
        elif c.storage == "dense":
            c_kind[ci] = ConnKind.DENSE
            c_woff[ci] = dw_len
            dws.append(w)
            dw_len += w.size
            if d is not None:
                c_doff[ci] = dd_len
                dds.append(d)
                dd_len += d.size
        else:
            # Narrow rows: Loihi-style lists with a base index per row and 16-bit offsets
            # (3 bytes per synapse); rows spanning 2^16 targets or more keep full indices.
            c_kind[ci] = ConnKind.SPARSE_WIDE if wide[ci] else ConnKind.SPARSE
            ptr = lists[ci][0]
            post_idx = lists[ci][1].astype(np.int64)
            c_soff[ci] = sp_len
            sptrs.append(ptr + ss_len)  # n_pre + 1 entries per connection
            sp_len += ptr.size
            rows = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
            base = np.zeros(ptr.size - 1, np.int64)
            end = np.zeros(ptr.size - 1, np.int64)  # empty rows: [0, 0)
            nonempty = np.diff(ptr) > 0
            if post_idx.size:
                base[nonempty] = np.minimum.reduceat(post_idx, ptr[:-1][nonempty])
                end[nonempty] = np.maximum.reduceat(post_idx, ptr[:-1][nonempty]) + 1
            sbases.append(np.concatenate([base, [0]]).astype(np.int32))
            sends.append(np.concatenate([end, [0]]).astype(np.int32))
            soffs.append((post_idx - base[rows]).astype(np.uint16) if not wide[ci]
                         else np.zeros(post_idx.size, np.uint16))
            if any_wide:
                swides.append(post_idx.astype(np.uint32))
            sws.append(w.astype(np.uint8))
            if any_sparse_delay:
                sds.append(d if d is not None else np.full(w.size, c.delay, np.uint8))
            ss_len += w.size

    def cat(parts: list[NDArray[Any]], dtype: Any) -> NDArray[Any]:
        return np.ascontiguousarray(np.concatenate(parts).astype(dtype, copy=False)) \
            if parts else np.zeros(0, dtype)

    # routing --------------------------------------------------------------------------
    cls_of_src, cls_rep = _route_classes(image, src_pop, pop_src0, src_slot)
    route_core = image.arrays["route/core"]
    route_ptr = image.arrays["route/ptr"].astype(np.int64)
    seg_g0, seg_slot, seg_sends, seg_pop = _segments(pop_g0, nslot, route_ptr[n_in:])
    lut2 = np.full(hw.n_cores, -1, np.int32)
    lut2[cores] = np.arange(len(cores), dtype=np.int32)
    route_slot = lut2[route_core] if route_core.size else np.zeros(0, np.int32)
    pos = [hw.core_position(c) for c in cores]
    slot_neurons = np.array([c.neurons for c in image.cores], np.int64)
    io_x, io_y = hw.mesh.io_tile
    t = hw.timing
    costs = (t.cycles("spike_out"), t.cycles("hop_ew"), t.cycles("hop_ns"), t.cycles("chip_link"))
    return Tables(
        n_inputs=n_in, n_neurons=n_lif, n_sources=S, ring_slots=max_delay + 2,
        ring_width=ring_width,
        pop_g0=pop_g0, pop_du=pop_du, pop_dv=pop_dv, pop_theta=pop_theta, pop_mode=pop_mode,
        pop_model=pop_model, pop_par=pop_par, pop_graded=pop_graded, aux_len=aux_len,
        ndu=ndu, ndv=ndv,
        bias=bias, nslot=nslot.astype(np.int16),
        src_pop=src_pop, pop_src0=pop_src0, cls_of_src=cls_of_src, cls_rep=cls_rep,
        src_slot=src_slot,
        c_kind=c_kind, c_post0=c_post0, c_npost=c_npost, c_lsh=c_lsh, c_wmode=c_wmode,
        c_wexp=c_wexp, c_delay=c_delay, c_hasd=c_hasd, c_woff=c_woff, c_doff=c_doff,
        c_soff=c_soff, c_scoff=c_scoff, c_nbins=c_nbins, c_prepop=c_prepop,
        c_rowlen=c_rowlen, c_graded=c_graded, scratch_len=sc_len,
        dw=cat(dws, np.uint8), dd=cat(dds, np.uint8), sptr=cat(sptrs, np.int64),
        sbase=cat(sbases, np.int32), send=cat(sends, np.int32), soff=cat(soffs, np.uint16),
        swide=cat(swides, np.uint32), sw=cat(sws, np.uint8), sd=cat(sds, np.uint8),
        cgeo=(np.stack(cgeos) if cgeos else np.zeros((0, GEO_COLS), np.int64)),
        ckw=cat(ckws, np.int32), ctap=cat(ctaps, np.int64),
        seg_g0=seg_g0, seg_slot=seg_slot, seg_sends=seg_sends, seg_pop=seg_pop,
        route_ptr=route_ptr,
        route_slot=np.ascontiguousarray(route_slot, dtype=np.int16),
        route_nsyn=image.arrays["route/nsyn"].astype(np.uint16),
        slot_core=np.array(cores, np.int64),
        slot_x=np.array([p[1] for p in pos], np.int32),
        slot_y=np.array([p[2] for p in pos], np.int32),
        slot_chip=np.array([p[0] for p in pos], np.int32),
        slot_neurons=slot_neurons, io_xy=(int(io_x), int(io_y)),
        fmt=(fmtd.decay_bits, fmtd.u_bits, fmtd.v_bits, fmtd.input_shift),
        route_costs=costs,
    )
