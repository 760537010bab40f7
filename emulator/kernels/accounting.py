"""The cost model of ``emulator.timing`` as a kernel over counters."""

from __future__ import annotations

import numpy as np
from numba import njit

from emulator.tables import C_ROUTE_MAX, C_SPIKES_IN

__all__ = ["account_steps"]


@njit(cache=True)
def account_steps(cnt, neurons, wc, we, idle, static_pj_per_cycle, out):
    """The cost model of ``emulator.timing`` over counters (M, K, N_COUNTERS): per row and
    core, the receive stage = counters . wc[0] and the neuron stage = counters . wc[1] +
    neurons x idle cycles; a core's time is their sum (serial) or the larger (pipelined).
    Energy = counters . we + neurons x idle energy (plus static power over the row's
    latency). latency = slowest core + network + barrier, where network is the longest
    message path or, with contention, at least the busiest router port's messages (sent or
    received) x link cycles.

    idle: (idle cycles, idle energy, barrier cycles, pipelined 0/1, link cycles per message
    or 0 for no contention, messages column) per neuron and per step;
    out: (cycles (M, K), latency (M,), energy (M, K), stage cycles (M, K, 2)), written."""
    idle_c, idle_e, barrier, pipelined, link_c, c_msgs = idle
    cycles, latency, energy, stages = out
    M, K = cnt.shape[0], cnt.shape[1]
    for m in range(M):
        slowest = np.int64(0)
        route = np.int64(0)
        port = np.int64(0)
        for k in range(K):
            s0 = np.int64(0)
            s1 = neurons[k] * idle_c
            e = neurons[k] * idle_e
            for i in range(cnt.shape[2]):
                s0 += cnt[m, k, i] * wc[0, i]
                s1 += cnt[m, k, i] * wc[1, i]
                e += cnt[m, k, i] * we[i]
            c = max(s0, s1) if pipelined else s0 + s1
            stages[m, k, 0] = s0
            stages[m, k, 1] = s1
            cycles[m, k] = c
            energy[m, k] = e
            slowest = max(slowest, c)
            route = max(route, cnt[m, k, C_ROUTE_MAX])
            port = max(port, cnt[m, k, c_msgs], cnt[m, k, C_SPIKES_IN])
        lat = slowest + max(route, port * link_c) + barrier
        latency[m] = lat
        for k in range(K):
            energy[m, k] += static_pj_per_cycle * lat
