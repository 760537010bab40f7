"""The records the kernels take: NamedTuples of arrays and scalars, each field named once.

Index spaces (see ``emulator.tables``): neurons ``g`` (LIF, population order), populations
``p``, neuron segments ``q`` (a run of one population's neurons on one core), sources ``s``
(inputs first, then s = n_inputs + g), connections ``c``, core slots ``k``.

The chip (built once per table set, read only but for learned weights):
:class:`Neurons`, :class:`Sources`, :class:`Connections`, :class:`Synapses`,
:class:`Routes`, together a :class:`Network`. A run: :class:`Inputs` (host spikes),
:class:`SampleState` (registers), :class:`Record` (what is probed, recorded and counted),
:class:`Work` (scratch of the step loop) and, for one large sample over threads,
:class:`Threading`. The batched kernels take the same records with one more leading axis
(over samples) on the arrays of :class:`Inputs`, :class:`SampleState` and the outputs of
:class:`Record`.

Records that a parallel loop hands to its threads must be flat (Numba's parallel loops
cannot pass a record that holds a record): :class:`Neurons` and :class:`Routes` therefore
hold their formats and path costs as plain fields, and the parallel kernels take the parts
of a :class:`Network` they need.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from emulator.paths import PathCosts
from emulator.tables import Tables

__all__ = [
    "COPIED",
    "LISTED",
    "Connections",
    "Formats",
    "Inputs",
    "Network",
    "Neurons",
    "Population",
    "Record",
    "Routes",
    "SampleState",
    "Sources",
    "Synapses",
    "Threading",
    "Work",
    "network_record",
    "segments_to_list",
]

I64 = NDArray[np.int64]


class Formats(NamedTuple):
    """Number formats of the neuron update."""

    decay_shift: np.int64  # decays are x * keep >> decay_shift
    u_bits: np.int64  # current register width (wraps once)
    v_bits: np.int64  # voltage register width (saturates)
    input_shift: np.int64  # synaptic input is added as a << input_shift
    narrow: np.int64  # 1: the update may run in 32-bit lanes (neurons.narrow_ok)


class Population(NamedTuple):
    """The registers one LIF population shares."""

    du: np.int64  # current decay
    dv: np.int64  # voltage decay
    theta: np.int64  # threshold vth << vth_shift
    mode: np.int8  # ResetMode


class Neurons(NamedTuple):
    """Neurons, their populations' registers, their segments and number formats."""

    pop_g0: I64  # (P + 1,) first neuron of each neuron population
    pop_du: NDArray[np.int32]  # (P,) current decay
    pop_dv: NDArray[np.int32]  # (P,) voltage decay
    pop_theta: NDArray[np.int32]  # (P,) threshold vth << vth_shift
    pop_mode: NDArray[np.int8]  # (P,) ResetMode
    bias: NDArray[np.int32]  # (N,) bias_mant * 2^bias_exp
    nslot: NDArray[np.int16]  # (N,) core slot
    seg_g0: I64  # (n_seg + 1,) first neuron of each segment
    seg_slot: I64  # (n_seg,) core slot of each segment
    seg_list: NDArray[np.uint8]  # (n_seg,) LISTED: the step loop lists its spikes; COPIED:
    # it copies the segment's flags into the spike record (see segments_to_list)
    seg_pop: I64  # (n_seg,) population of each segment
    decay_shift: np.int64  # the Formats, flat (see neurons.formats)
    u_bits: np.int64
    v_bits: np.int64
    input_shift: np.int64
    narrow: np.int64
    pop_model: NDArray[np.int8]  # (P,) neuron model id (neurochip.core.neuron_models)
    pop_par: NDArray[np.int64]  # (P, MODEL_PARAMS) a model's registers (tables.model_params)
    ndu: NDArray[np.int32]  # (N,) per-neuron du (lif_per_neuron) or lct (rf_zero), or ()
    ndv: NDArray[np.int32]  # (N,) per-neuron dv (lif_per_neuron) or lst (rf_zero), or ()
    n_models: np.int64  # populations whose model is not LIF (0: the LIF-only loop runs)


class Sources(NamedTuple):
    """Spike sources (host inputs, then LIF neurons) and their route classes."""

    pop: NDArray[np.int32]  # (S,) population of each source
    pop_src0: I64  # (populations,) first source of each population
    slot: NDArray[np.int32]  # (S,) core slot, -1 for a host input
    n_inputs: np.int64  # host inputs (sources 0 .. n_inputs - 1)
    cls: NDArray[np.int32]  # (S,) route class, -1 for a source charged alone
    cls_rep: I64  # (classes,) a representative source of each class


class Connections(NamedTuple):
    """Per connection c: where its synapses are and how its weights decode."""

    kind: NDArray[np.int8]  # ConnKind
    post0: I64  # first target neuron
    npost: I64  # target population size
    lsh: NDArray[np.int32]  # weight shift: decode shift + max(weight_exp, 0)
    wmode: NDArray[np.int8]  # WeightDecode
    wexp: NDArray[np.int32]  # weight exponent; < 0: the summed input is floored by it
    delay: NDArray[np.int32]  # the delay of synapses without their own
    hasd: NDArray[np.int8]  # 1: per-synapse delays
    woff: I64  # dense: first weight byte in Synapses.dw
    doff: I64  # dense with delays: first delay byte in Synapses.dd
    soff: I64  # sparse: first row in Synapses.sptr
    scoff: I64  # negative exponent: first word of its scratch bins
    nbins: NDArray[np.int32]  # negative exponent: scratch bins (one per delay value)
    prepop: NDArray[np.int32]  # presynaptic population
    rowlen: I64  # mean synapses per presynaptic row (work per spike)
    graded: NDArray[np.int8]  # 1: the presynaptic spikes carry payloads (weight x payload)
    n_graded: np.int64  # connections with graded presynaptic spikes


class Synapses(NamedTuple):
    """Synapse memory as the image stores it (one byte per weight)."""

    dw: NDArray[np.uint8]  # dense weight bytes, rows of n_post
    dws: NDArray[np.int8]  # the same bytes viewed as int8
    dd: NDArray[np.uint8]  # dense delays
    sptr: I64  # per sparse row: first synapse (n_pre + 1 entries per connection)
    sbase: NDArray[np.int32]  # per sparse row: smallest target
    send: NDArray[np.int32]  # per sparse row: one past its largest target
    soff: NDArray[np.uint16]  # per sparse synapse: target - row base (narrow rows)
    swide: NDArray[np.uint32]  # per sparse synapse: target (wide connections only)
    sw: NDArray[np.uint8]  # per sparse synapse: weight byte
    sd: NDArray[np.uint8]  # per sparse synapse: delay (when some sparse conn has them)
    cgeo: I64  # (conv connections, GEO_COLS) geometry rows (see kernels.conv)
    ckw: NDArray[np.int32]  # conv kernels' decoded weights, transposed (see kernels.conv)
    ctap: I64  # conv connections' tap tables (see emulator.tables.axis_taps)


class Routes(NamedTuple):
    """Axon tables and the mesh: where each source's messages go and what they cost."""

    ptr: I64  # (S + 1,) first axon of each source
    slot: NDArray[np.int16]  # per axon: destination core slot
    nsyn: NDArray[np.uint16]  # per axon: synapses it reaches there
    slot_x: NDArray[np.int32]  # (K,) tile x of each core slot
    slot_y: NDArray[np.int32]  # (K,) tile y
    slot_chip: NDArray[np.int32]  # (K,) chip
    io_x: np.int32  # the I/O tile host inputs enter at (on chip 0)
    io_y: np.int32
    cost_out: np.int64  # the PathCosts of a message (emulator.paths), flat: see
    cost_ew: np.int64  # routing.path_costs
    cost_ns: np.int64
    cost_link: np.int64


class Network(NamedTuple):
    """Everything the kernels know of one chip image."""

    neurons: Neurons
    sources: Sources
    conns: Connections
    syn: Synapses
    routes: Routes
    ring_slots: np.int64  # D: slots of the delay ring (max delay + 2)


class Inputs(NamedTuple):
    """Host spikes: step t of a sample spikes sources src[ptr[t]:ptr[t + 1]]."""

    ptr: I64  # (T + 1,) per sample (batched: (B, T + 1))
    src: I64  # input source ids
    val: NDArray[np.int32]  # payload of each listed input spike (empty: every input binary)


class SampleState(NamedTuple):
    """Registers of a sample (batched: a leading axis over samples)."""

    u: NDArray[np.int32]  # (N,) current
    v: NDArray[np.int32]  # (N,) voltage
    ring: NDArray[np.int32]  # (D * N,) synaptic input of the next D steps, slot (t % D)
    scratch: NDArray[np.int32]  # unfloored sums of negative-exponent connections
    aux: NDArray[np.int32]  # (2 * N,) state slots 2 and 3 of the models that have them, or ()


class Record(NamedTuple):
    """What a run observes, and its outputs (batched: outputs with a leading sample axis)."""

    probe_idx: I64  # neuron of each probe column
    probe_var: NDArray[np.int8]  # 0: u, 1: v
    rec_col: I64  # (N,) column of each neuron in the spike record, or -1
    probes: NDArray[np.int32]  # (T, probes) out
    spikes: NDArray[np.uint8]  # (T, recorded) out
    counters: I64  # (T, K, N_COUNTERS) out
    values: NDArray[np.int32]  # (T, recorded) payloads out, or (T, 0) when none is graded


class Work(NamedTuple):
    """Scratch arrays of the step loop (:func:`emulator.kernels.step.work`)."""

    fired: I64  # (N,) neurons that fired this step
    flag: NDArray[np.uint8]  # (N,) bit 0 spiked, bit 1 had input
    srcs: I64  # (S,) spiking sources of the step
    rows_all: I64  # (S,) spiking rows, grouped per population at pop_src0
    spk_cnt: I64  # (populations,) spiking rows per population
    cls_cnt: I64  # (classes,) spiking sources per route class
    cls_list: I64  # (classes,) classes with spikes this step
    acc16: NDArray[np.int16]  # (N,) 16-bit row sums of the dense adds
    pay: NDArray[np.int32]  # (S,) payload of each source that spiked this step (graded ones)


class Threading(NamedTuple):
    """How one large sample spreads its work over threads (see step._run_threaded)."""

    threads: np.int64
    min_events: np.int64  # a connection is split from this much work per step (synapses)
    min_sources: np.int64  # messages are charged on threads from this many sources


#: seg_list values: the step loop lists the segment's spikes (LISTED), or copies its flags
#: straight into the spike record instead (COPIED: recorded, sends nothing, binary spikes)
LISTED, COPIED = 1, 2


def segments_to_list(tb: Tables, rec_col: NDArray[np.int64] | None) -> NDArray[np.uint8]:
    """Per neuron segment, how the step loop reads its spikes: 0 not at all; LISTED when
    the segment sends (or, with rec_col None, always: the learning engine reads every
    spike); COPIED when it is only recorded, in consecutive columns, with binary spikes
    (a copy of its flags into the record costs less than listing and writing each)."""
    if rec_col is None:
        return np.full(tb.seg_slot.size, LISTED, np.uint8)
    out = np.zeros(tb.seg_slot.size, np.uint8)
    if not tb.seg_slot.size:
        return out
    g0, g1 = tb.seg_g0[:-1], tb.seg_g0[1:]
    first, last = rec_col[g0], rec_col[np.maximum(g1 - 1, g0)]
    rec = (first >= 0) & (g1 > g0)
    # a recorded population has consecutive columns (Emulator.run), so its segments too
    runs = rec & (last - first == g1 - 1 - g0) & (tb.pop_graded[tb.seg_pop] == 0)
    out[rec] = LISTED
    out[runs] = COPIED
    out[tb.seg_sends.astype(bool)] = LISTED
    return out


def network_record(tb: Tables, narrow: bool, seg_list: NDArray[np.uint8] | None = None
                   ) -> Network:
    """The kernels' :class:`Network` record of the tables.

    narrow: whether the neurons may be updated in 32-bit lanes (``neurons.narrow_ok``);
    seg_list: per neuron segment, 1 when its spikes must be listed (default: all)."""
    if seg_list is None:
        seg_list = segments_to_list(tb, None)
    i64 = np.int64
    dshift, u_bits, v_bits, in_shift = tb.fmt
    neurons = Neurons(tb.pop_g0, tb.pop_du, tb.pop_dv, tb.pop_theta, tb.pop_mode, tb.bias,
                      tb.nslot, tb.seg_g0, tb.seg_slot, np.ascontiguousarray(seg_list, np.uint8),
                      tb.seg_pop, i64(dshift), i64(u_bits), i64(v_bits), i64(in_shift),
                      i64(narrow), tb.pop_model, tb.pop_par, tb.ndu, tb.ndv,
                      i64(int(np.count_nonzero(tb.pop_model))))
    sources = Sources(tb.src_pop, tb.pop_src0, tb.src_slot, i64(tb.n_inputs), tb.cls_of_src,
                      tb.cls_rep)
    conns = Connections(tb.c_kind, tb.c_post0, tb.c_npost, tb.c_lsh, tb.c_wmode, tb.c_wexp,
                        tb.c_delay, tb.c_hasd, tb.c_woff, tb.c_doff, tb.c_soff, tb.c_scoff,
                        tb.c_nbins, tb.c_prepop, tb.c_rowlen, tb.c_graded,
                        i64(int(tb.c_graded.sum())))
    syn = Synapses(tb.dw, tb.dw.view(np.int8), tb.dd, tb.sptr, tb.sbase, tb.send, tb.soff,
                   tb.swide, tb.sw, tb.sd, tb.cgeo, tb.ckw, tb.ctap)
    c_out, c_ew, c_ns, c_link = PathCosts(*tb.route_costs)
    routes = Routes(tb.route_ptr, tb.route_slot, tb.route_nsyn, tb.slot_x, tb.slot_y,
                    tb.slot_chip, np.int32(tb.io_xy[0]), np.int32(tb.io_xy[1]), i64(c_out),
                    i64(c_ew), i64(c_ns), i64(c_link))
    return Network(neurons, sources, conns, syn, routes, i64(tb.ring_slots))
