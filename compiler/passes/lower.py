"""Lower pass: a quantized IR graph -> a register-level :class:`~neurochip.core.network.Network`.

Inputs become ``add_input``, populations ``add_lif`` (with the registers the quantize pass
chose), projections ``connect``. Convolutions are expanded into sparse synapse lists whose
weights share the kernel's integer values; weights that quantized to 0 are dropped from
sparse lists (they would occupy synapse memory and never change the input). Delays
become per-synapse delays when they differ between synapses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from compiler.ir import Dense, Graph, IRError, Projection
from neurochip.core.hw import HardwareSpec
from neurochip.core.network import Network

__all__ = ["lower"]


def _weights_and_delays(e: Projection) -> tuple[Any, Any]:
    syn = e.synapses
    per_synapse = e.delay_pre is not None or e.delay_post is not None
    if isinstance(syn, Dense):
        W = np.asarray(syn.weight, np.int64)
        if not per_synapse:
            return W, e.delay
        n_post, n_pre = W.shape
        post = np.repeat(np.arange(n_post, dtype=np.int64), n_pre)
        pre = np.tile(np.arange(n_pre, dtype=np.int64), n_post)
        return W, e.synapse_delays(post, pre).reshape(n_post, n_pre)
    m = sp.csr_matrix(syn.to_csr(), dtype=np.int64, copy=True)
    m.eliminate_zeros()
    m.sum_duplicates()
    m.sort_indices()
    if not per_synapse:
        return m, e.delay
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return m, e.synapse_delays(rows, m.indices.astype(np.int64))


def lower(graph: Graph, hw: HardwareSpec, *, name: str = "network") -> Network:
    """Build the register-level network of a quantized graph (pure: a new Network)."""
    if not graph.quantized and graph.populations:
        raise IRError("lower needs a quantized graph (run the quantize pass first)",
                      where="lower")
    net = Network(hw, name=name)
    for nname, inp in graph.inputs.items():
        net.add_input(nname, inp.size)
    for nname, pop in graph.populations.items():
        r = pop.registers
        assert r is not None
        net.add_lif(nname, pop.size, du=r.du, dv=r.dv, vth=r.vth, bias_mant=r.bias_mant,
                    bias_exp=r.bias_exp, reset=pop.reset, spiking=pop.spiking)
    for e in graph.edges:
        W, delay = _weights_and_delays(e)
        net.connect(e.pre, e.post, weights=W, weight_exp=int(e.weight_exp or 0), delay=delay,
                    name=e.name, sign_mode=e.sign_mode, num_weight_bits=e.num_weight_bits)
    return net
