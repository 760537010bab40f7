"""The cost model of ``emulator.timing`` as a kernel over counters."""

from __future__ import annotations

import numpy as np
from numba import njit

from emulator.tables import C_ROUTE_MAX

__all__ = ["account_steps"]


@njit(cache=True)
def account_steps(cnt, neurons, wc, we, idle, static_pj_per_cycle, out):
    """The cost model of ``emulator.timing`` over counters (M, K, N_COUNTERS): per row and
    core, cycles = counters . wc + neurons x idle cycles, energy likewise (plus static
    power over the row's latency); latency = slowest core + longest message + barrier.

    idle: (idle cycles, idle energy, barrier cycles) per neuron and per step;
    out: (cycles (M, K), latency (M,), energy (M, K)), written."""
    idle_c, idle_e, barrier = idle
    cycles, latency, energy = out
    M, K = cnt.shape[0], cnt.shape[1]
    for m in range(M):
        slowest = np.int64(0)
        route = np.int64(0)
        for k in range(K):
            c = neurons[k] * idle_c
            e = neurons[k] * idle_e
            for i in range(cnt.shape[2]):
                c += cnt[m, k, i] * wc[i]
                e += cnt[m, k, i] * we[i]
            cycles[m, k] = c
            energy[m, k] = e
            slowest = max(slowest, c)
            route = max(route, cnt[m, k, C_ROUTE_MAX])
        lat = slowest + route + barrier
        latency[m] = lat
        for k in range(K):
            energy[m, k] += static_pj_per_cycle * lat
