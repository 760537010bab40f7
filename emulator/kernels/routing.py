"""Routing kernels: the step's spiking sources grouped per population and route class,
and their messages charged to the counters (axon events, synaptic operations, messages,
hops, link crossings and the longest path)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from emulator.kernels.intrinsics import prefetch
from emulator.paths import PathCosts, path_cycles
from emulator.tables import (
    C_HOPS_EW,
    C_HOPS_NS,
    C_LINKS,
    C_MSGS,
    C_ROUTE_MAX,
    C_SPIKES_IN,
    C_SYNOPS,
)

# the one path-cost function (emulator.paths), compiled for the kernels
message_cycles: Any = njit(cache=True, inline="always")(path_cycles)


@njit(cache=True, inline="always")
def path_costs(rt):
    """The PathCosts record of Routes rt."""
    return PathCosts(rt.cost_out, rt.cost_ew, rt.cost_ns, rt.cost_link)


@njit(cache=True, inline="always")
def _charge(s, m, src_slot, rt, cnt):
    """Count m spikes of source s (or of its route class): at each destination core its
    axon events and synaptic operations; messages, hops, link crossings and the longest
    path at the sending core. Host inputs enter at the I/O tile of chip 0 and are charged
    where each message arrives (rt: Routes)."""
    slot_x, slot_y, slot_chip = rt.slot_x, rt.slot_y, rt.slot_chip
    route_slot, route_nsyn = rt.slot, rt.nsyn  # fields read in loops are taken out first
    costs = path_costs(rt)
    ss = src_slot[s]
    if ss >= 0:
        sx = slot_x[ss]
        sy = slot_y[ss]
        sc = slot_chip[ss]
    else:
        sx = rt.io_x
        sy = rt.io_y
        sc = 0
    ew = np.int64(0)
    nsh = np.int64(0)
    links = np.int64(0)
    longest = np.int64(0)
    r0 = rt.ptr[s]
    r1 = rt.ptr[s + 1]
    for r in range(r0, r1):
        k = route_slot[r]
        cnt[k, C_SYNOPS] += m * route_nsyn[r]
        cnt[k, C_SPIKES_IN] += m
        dx = abs(slot_x[k] - sx)
        dy = abs(slot_y[k] - sy)
        dl = abs(slot_chip[k] - sc)
        path = message_cycles(costs, dx, dy, dl)
        if ss >= 0:
            ew += dx
            nsh += dy
            links += dl
            longest = max(longest, path)
        else:  # host messages are charged where they arrive
            cnt[k, C_HOPS_EW] += m * dx
            cnt[k, C_HOPS_NS] += m * dy
            cnt[k, C_LINKS] += m * dl
            cnt[k, C_ROUTE_MAX] = max(cnt[k, C_ROUTE_MAX], path)
    if ss >= 0 and r1 > r0:
        cnt[ss, C_MSGS] += m * (r1 - r0)
        cnt[ss, C_HOPS_EW] += m * ew
        cnt[ss, C_HOPS_NS] += m * nsh
        cnt[ss, C_LINKS] += m * links
        cnt[ss, C_ROUTE_MAX] = max(cnt[ss, C_ROUTE_MAX], longest)


@njit(cache=True, inline="always")
def group(ns, src, work):
    """Group the step's spiking sources (work.srcs[:ns]) by population (rows_all/spk_cnt:
    the rows each connection will add). Sources that share a route class are counted per
    class (cls_cnt, cls_list); the others (class -1) are listed again at the start of
    work.srcs, to be charged one by one. Runs of one population and of one class are
    counted in registers. Returns (number of classes, number of direct sources)."""
    srcs, rows_all, spk_cnt = work.srcs, work.rows_all, work.spk_cnt
    cls_cnt, cls_list = work.cls_cnt, work.cls_list
    src_pop, pop_src0, cls_of_src = src.pop, src.pop_src0, src.cls
    ncls = 0
    nd = 0
    pi_cur = -1
    n_pi = np.int64(0)
    base = np.int64(0)
    k_cur = -1
    n_k = np.int64(0)
    for q in range(ns):
        s = srcs[q]
        pi = src_pop[s]
        if pi != pi_cur:
            if pi_cur >= 0:
                spk_cnt[pi_cur] = n_pi
            pi_cur = pi
            n_pi = spk_cnt[pi]
            base = pop_src0[pi]
        rows_all[base + n_pi] = s - base
        n_pi += 1
        k = cls_of_src[s]
        if k < 0:
            srcs[nd] = s
            nd += 1
            continue
        if k != k_cur:
            if k_cur >= 0:
                if cls_cnt[k_cur] == 0:
                    cls_list[ncls] = k_cur
                    ncls += 1
                cls_cnt[k_cur] += n_k
            k_cur = k
            n_k = np.int64(0)
        n_k += 1
    if pi_cur >= 0:
        spk_cnt[pi_cur] = n_pi
    if k_cur >= 0:
        if cls_cnt[k_cur] == 0:
            cls_list[ncls] = k_cur
            ncls += 1
        cls_cnt[k_cur] += n_k
    return ncls, nd


@njit(cache=True, inline="always")
def charge_classes(ncls, src, rt, work, cnt):
    """Charge each route class once, times how many of its sources spiked."""
    cls_list, cls_cnt, cls_rep, src_slot = work.cls_list, work.cls_cnt, src.cls_rep, src.slot
    for q in range(ncls):
        kc = cls_list[q]
        m = cls_cnt[kc]
        cls_cnt[kc] = 0
        _charge(cls_rep[kc], m, src_slot, rt, cnt)


@njit(cache=True, inline="always")
def route(ns, src, rt, work, cnt):
    """Route the step's spiking sources (work.srcs[:ns]): group them (:func:`group`) and
    charge their messages (:func:`_charge`). Sources with identical axon lists (a route
    class: e.g. every neuron of one core that only has dense fan-out) are charged once per
    class and step, multiplied by how many of them spiked."""
    ncls, nd = group(ns, src, work)
    charge_list(work.srcs, 0, nd, src.slot, rt, cnt)
    charge_classes(ncls, src, rt, work, cnt)


@njit(cache=True, inline="always")
def charge_list(direct, a, b, src_slot, rt, cnt):
    """_charge of direct[a:b], one spike each; the routes of the sources a few places
    ahead are prefetched (they sit anywhere in the axon tables)."""
    route_ptr, route_slot = rt.ptr, rt.slot
    for q in range(a, min(a + 8, b)):
        prefetch(route_ptr, direct[q])
    for q in range(a, b):
        if q + 8 < b:
            prefetch(route_ptr, direct[q + 8])
        if q + 4 < b:
            prefetch(route_slot, route_ptr[direct[q + 4]])
        _charge(direct[q], 1, src_slot, rt, cnt)


@njit(cache=True, parallel=True)
def charge_par(direct, nd, src_slot, rt, cnt, cnt_p):
    """_charge of direct[:nd] with the sources split over the threads, each counting into
    its own cnt_p[j]; then summed into cnt (the longest path: the maximum)."""
    P = cnt_p.shape[0]
    chunk = (nd + P - 1) // P
    for j in prange(P):
        a = min(j * chunk, nd)
        b = min(a + chunk, nd)
        charge_list(direct, a, b, src_slot, rt, cnt_p[j])
    for j in range(P):
        cj = cnt_p[j]
        for k in range(cnt.shape[0]):
            for i in range(cnt.shape[1]):
                if i == C_ROUTE_MAX:
                    cnt[k, i] = max(cnt[k, i], cj[k, i])
                else:
                    cnt[k, i] += cj[k, i]
                cj[k, i] = 0


@njit(cache=True, inline="always")
def step_sources(t, inp, fired, nf, n_in, route_ptr, srcs, pay, general):
    """The step's spiking sources into srcs: host inputs first, then the neurons that
    fired and have axons (neurons without any have nothing to route). n_in: the host
    inputs (Sources.n_inputs); route_ptr: Routes.ptr. Graded host inputs (inp.val not
    empty) write their payloads into pay, unless general is None (see
    ``step.inference_step``). It takes arrays, not the Network: an inlined record
    argument costs a reference count of each of its arrays per step."""
    inp_src = inp.src
    i0 = inp.ptr[t]
    ni = inp.ptr[t + 1] - i0
    for q in range(ni):
        srcs[q] = inp_src[i0 + q]
    if general is not None and inp.val.shape[0] > 0:
        inp_val = inp.val
        for q in range(ni):
            pay[inp_src[i0 + q]] = inp_val[i0 + q]
    ns = ni
    for q in range(nf):
        s = n_in + fired[q]
        if route_ptr[s + 1] > route_ptr[s]:
            srcs[ns] = s
            ns += 1
    return ns
