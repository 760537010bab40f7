"""Step kernels: one step of one sample (neurons, observation, routing, synapses), and the
loops over steps and samples built on it.

One step t of one sample (:func:`inference_step`):

1. every LIF neuron takes its input from the ring slot of this step and is updated
   (``emulator.kernels.neurons``);
2. probes and spikes are recorded (after the reset, as Lava's monitors see them);
3. the step's spikes (host inputs, then neurons) are routed: per output axon the
   destination core's counters grow (``emulator.kernels.routing``), and each connection
   adds its weights into the ring slot of step t + 1 + delay (``emulator.kernels.synapses``).

Threads: the samples of a batch run on separate threads (:func:`run_batch_par`); one sample
of a large network runs :func:`run_threaded`, which spreads the neuron segments, the message
counting and the larger connections over the threads. Only integer sums (and maxima) are
split, so the results never depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from emulator.kernels.neurons import (
    LIF,
    _update_range,
    collect,
    count_list,
    formats,
    population,
    update_lif,
    update_model,
    update_neurons,
)
from emulator.kernels.records import COPIED, LISTED, Inputs, Network, Record, SampleState, Work
from emulator.kernels.routing import (
    charge_classes,
    charge_list,
    charge_par,
    group,
    route,
    step_sources,
)
from emulator.kernels.synapses import graded_synapses, synapses, synapses_par
from emulator.tables import C_ACTIVE, C_SPIKES_OUT


@njit(cache=True, inline="always")
def observe(t, st, rec, fired, nf, pay, general, nrn, flag):
    """Probes read the state after the reset (as Lava's monitors do): slot 0 u, 1 v, 2 and 3
    the auxiliary slots; record the spikes, and the payloads of graded ones (pay: per
    neuron; none when general is None, see :func:`inference_step`): those listed in fired,
    and the flags of the COPIED segments (nrn: Neurons, flag: this step's flags)."""
    probe_idx, probe_var, probe_out = rec.probe_idx, rec.probe_var, rec.probes
    N = st.u.shape[0]
    for p in range(probe_idx.shape[0]):
        g = probe_idx[p]
        var = probe_var[p]
        if var == 0:
            probe_out[t, p] = st.u[g]
        elif var == 1:
            probe_out[t, p] = st.v[g]
        else:
            probe_out[t, p] = st.aux[(var - 2) * N + g]
    spk_out, rec_col = rec.spikes, rec.rec_col
    if spk_out.shape[1] > 0:  # some population is recorded
        for q in range(nf):
            col = rec_col[fired[q]]
            if col >= 0:
                spk_out[t, col] = 1
        seg_list, seg_g0 = nrn.seg_list, nrn.seg_g0
        row = spk_out[t]
        for q in range(seg_list.shape[0]):
            if seg_list[q] == COPIED:
                g0 = seg_g0[q]
                n = seg_g0[q + 1] - g0
                dst = row[rec_col[g0]: rec_col[g0] + n]
                src = flag[g0: g0 + n]
                for i in range(n):
                    dst[i] = src[i] & np.uint8(1)
        val_out = rec.values
        if general is not None and val_out.shape[1] > 0:  # a recorded population is graded
            for q in range(nf):
                col = rec_col[fired[q]]
                if col >= 0:
                    val_out[t, col] = pay[fired[q]]


@njit(cache=True, inline="always")
def work(net, N):
    """The Work (scratch) record of the step loop for N neurons."""
    src = net.sources
    S = src.pop.shape[0]
    P = src.pop_src0.shape[0]
    ncls = src.cls_rep.shape[0]
    return Work(np.empty(N, np.int64), np.zeros(N, np.uint8), np.empty(S, np.int64),
                np.empty(S, np.int64), np.zeros(P, np.int64), np.zeros(ncls, np.int64),
                np.empty(ncls, np.int64), np.zeros(N, np.int16), np.zeros(S, np.int32))


@njit(cache=True, inline="always")
def inference_step(t, t0, net, inp, st, rec, wk, general):
    """One step t (of a run that started at step t0) of one sample: neurons, observation,
    routing, synapses. Returns how many neurons fired (listed in wk.fired).

    general: None for a network of LIF populations with binary spikes only
    (:func:`emulator.kernels.run.general_flag`), True otherwise. It is a type, not a
    value: with None the compiled step has no code for other neuron models and graded
    spikes at all (each run_* kernel is compiled once per kind), which keeps the binary
    LIF step as lean as it was before those existed."""
    D = net.ring_slots
    W = st.ring.shape[0] // D  # a ring slot: the neurons' inputs, then second inputs
    cnt = rec.counters[t]
    cur = (t0 + t) % D
    roff = cur * W
    npay = wk.pay[net.sources.n_inputs:]
    if general is None:
        update_lif(st, st.ring[roff: roff + W], net.neurons, wk.flag)
    else:
        update_neurons(st, st.ring[roff: roff + W], net.neurons, wk.flag, npay, t0 + t)
    nf = collect(wk.flag, net.neurons, wk.fired, cnt)
    observe(t, st, rec, wk.fired, nf, npay, general, net.neurons, wk.flag)
    ns = step_sources(t, inp, wk.fired, nf, net.sources.n_inputs, net.routes.ptr, wk.srcs, wk.pay,
                      general)
    if ns > 0:
        route(ns, net.sources, net.routes, wk, cnt)
        # synaptic input lands in the ring slots of steps t + 1 + delay
        synapses(0, net.conns.kind.shape[0], net.conns, net.syn, net.sources.pop_src0, D, st,
                 cur + 1, wk)
        if general is not None and net.conns.n_graded > 0:
            graded_synapses(net, st, cur + 1, wk)
        wk.spk_cnt[:] = 0
    return nf


@njit(cache=True)
def run_sample(T, t0, net, inp, st, rec, general):
    """Inference: T steps of one sample (its SampleState updated in place; general: see
    :func:`inference_step`)."""
    wk = work(net, st.u.shape[0])
    for t in range(T):
        inference_step(t, t0, net, inp, st, rec, wk, general)


@njit(cache=True, inline="always")
def run_one(b, T, t0, net, inp, st, rec, general):
    """run_sample of sample b of batched Inputs, SampleState and Record."""
    run_sample(T, t0, net, Inputs(inp.ptr[b], inp.src, inp.val),
               SampleState(st.u[b], st.v[b], st.ring[b], st.scratch[b], st.aux[b]),
               Record(rec.probe_idx, rec.probe_var, rec.rec_col, rec.probes[b], rec.spikes[b],
                      rec.counters[b], rec.values[b]), general)


@njit(cache=True, nogil=True)
def run_serial(T, t0, net, inp, st, rec, general):
    """run_sample over the samples of a batch, one after another."""
    for b in range(st.u.shape[0]):
        run_one(b, T, t0, net, inp, st, rec, general)


@njit(cache=True)
def _run_one_parts(b, T, t0, nrn, src, cn, syn, rt, D, inp, st, rec, general):
    """run_one with the Network given as its parts (see run_batch_par)."""
    run_one(b, T, t0, Network(nrn, src, cn, syn, rt, D), inp, st, rec, general)


@njit(cache=True, parallel=True, nogil=True)
def run_batch_par(T, t0, nrn, src, cn, syn, rt, D, inp, st, rec, general):
    """run_sample over the samples of a batch, on separate threads. It takes the parts of
    the Network (nrn, src, cn, syn, rt, D = ring_slots): a parallel loop cannot hand a
    record that holds records to its threads."""
    for b in prange(st.u.shape[0]):
        _run_one_parts(b, T, t0, nrn, src, cn, syn, rt, D, inp, st, rec, general)


@njit(cache=True, parallel=True)
def _neurons_par(st, a_in, nrn, flag, seg_out, fired_seg, pay, t):
    """Neuron updates and spike collection with the segments spread over the threads;
    each segment lists its spikes in its own range of fired_seg; seg_out (3, n_seg):
    active, spiking and listed neurons per segment (pay, t: see neurons.update_model)."""
    u, v = st.u, st.v
    seg_g0 = nrn.seg_g0
    for q in prange(nrn.seg_slot.shape[0]):
        g0 = seg_g0[q]
        g1 = seg_g0[q + 1]
        pq = nrn.seg_pop[q]
        if nrn.pop_model[pq] == LIF:
            _update_range(u[g0:g1], v[g0:g1], a_in[g0:g1], nrn.bias[g0:g1], flag[g0:g1],
                          population(nrn, pq), formats(nrn))
        else:
            update_model(pq, g0, g1, st, a_in, nrn, flag, pay, t)
        act, spk, m = count_list(flag[g0:g1], g0, nrn.seg_list[q] == LISTED,
                                 fired_seg[g0:g1])
        seg_out[0, q] = act
        seg_out[1, q] = spk
        seg_out[2, q] = m


@njit(cache=True, nogil=True)
def run_threaded(T, t0, net, inp, st, rec, par):
    """run_sample for one large sample, its work spread over par.threads threads
    (par: Threading): the neuron segments, the messages, and the targets of each
    connection with enough work this step (see ``synapses.synapses_par``). Grouping,
    recording and counting stay serial, in the same order as the serial kernel, so the
    results are identical."""
    N = st.u.shape[0]
    D = net.ring_slots
    W = st.ring.shape[0] // D  # words of a ring slot (Tables.ring_width)
    nrn, src, rt = net.neurons, net.sources, net.routes
    wk = work(net, N)
    nseg = nrn.seg_slot.shape[0]
    seg_out = np.zeros((3, nseg), np.int64)
    fired_seg = np.empty(N, np.int64)
    npost = net.conns.npost
    npmax = max(npost.max(), 1) if npost.shape[0] else 1
    counters = rec.counters
    acc_p = np.zeros((par.threads, npmax), np.int16)
    cnt_p = np.zeros((par.threads, counters.shape[1], counters.shape[2]), np.int64)
    fired = wk.fired
    for t in range(T):
        cnt = counters[t]
        cur = (t0 + t) % D
        roff = cur * W
        npay = wk.pay[src.n_inputs:]
        _neurons_par(st, st.ring[roff: roff + W], nrn, wk.flag, seg_out, fired_seg, npay, t0 + t)
        nf = np.int64(0)
        for q in range(nseg):
            k = nrn.seg_slot[q]
            cnt[k, C_ACTIVE] += seg_out[0, q]
            cnt[k, C_SPIKES_OUT] += seg_out[1, q]
            g0 = nrn.seg_g0[q]
            for i in range(seg_out[2, q]):
                fired[nf] = fired_seg[g0 + i]
                nf += 1
        observe(t, st, rec, fired, nf, npay, True, nrn, wk.flag)
        ns = step_sources(t, inp, fired, nf, src.n_inputs, rt.ptr, wk.srcs, wk.pay, True)
        if ns > 0:
            ncls, nd = group(ns, src, wk)
            if nd >= par.min_sources:
                charge_par(wk.srcs, nd, src.slot, rt, cnt, cnt_p)
            else:
                charge_list(wk.srcs, 0, nd, src.slot, rt, cnt)
            charge_classes(ncls, src, rt, wk, cnt)
            synapses_par(net, net.syn, st, cur + 1, wk, acc_p, par.min_events)
            if net.conns.n_graded > 0:
                graded_synapses(net, st, cur + 1, wk)
            wk.spk_cnt[:] = 0
