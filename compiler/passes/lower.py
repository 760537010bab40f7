"""Lower pass: a quantized IR graph -> a register-level :class:`~neurochip.core.network.Network`.

Inputs become ``add_input``, populations ``add_lif`` (with the registers the quantize pass
chose), projections ``connect``. Convolutions (pooling too: a depthwise conv with a
constant kernel) become shared-weight ``connect_conv`` connections (``conv="shared"``,
the default): the chip stores the kernel once per core and generates the synapses from
the geometry. With ``conv="expanded"``, or for a convolution with per-synapse delays,
they are expanded into sparse synapse lists whose weights share the kernel's integer
values; weights that quantized to 0 are dropped from sparse lists (they would occupy
synapse memory and never change the input). Delays become per-synapse delays when they
differ between synapses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from compiler.ir import Conv, Dense, Graph, IRError, Projection
from neurochip.core.errors import ConfigError
from neurochip.core.hw import HardwareSpec
from neurochip.core.network import Network

__all__ = ["CONV_MODES", "lower"]

#: how convolutions are lowered
CONV_MODES = ("shared", "expanded")


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


def _conv_args(syn: Conv) -> dict[str, Any]:
    """connect_conv's arguments for an IR convolution (1-D: H = kh = 1)."""
    w = np.asarray(syn.weight, np.int64)
    pad = syn.padding
    if len(syn.kernel) == 1:
        return dict(kernel=w[:, :, None, :], in_shape=(syn.in_shape[0], 1, syn.in_shape[1]),
                    stride=(1, syn.stride[0]), padding=(0, 0, *pad[0]),
                    dilation=(1, syn.dilation[0]), groups=syn.groups)
    return dict(kernel=w, in_shape=tuple(syn.in_shape), stride=tuple(syn.stride),
                padding=(*pad[0], *pad[1]), dilation=tuple(syn.dilation), groups=syn.groups)


def lower(graph: Graph, hw: HardwareSpec, *, name: str = "network", conv: str = "shared"
          ) -> Network:
    """Build the register-level network of a quantized graph (pure: a new Network).

    conv: "shared" (convolutions keep their kernel: ``connect_conv``) or "expanded" (one
    stored synapse per pair)."""
    if conv not in CONV_MODES:
        raise ConfigError(f"must be one of {CONV_MODES}, got {conv!r}", where="compile",
                          field="conv")
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
        if (conv == "shared" and isinstance(e.synapses, Conv) and e.delay_pre is None
                and e.delay_post is None):
            net.connect_conv(e.pre, e.post, **_conv_args(e.synapses),
                             weight_exp=int(e.weight_exp or 0), delay=e.delay, name=e.name,
                             sign_mode=e.sign_mode, num_weight_bits=e.num_weight_bits)
            continue
        W, delay = _weights_and_delays(e)
        net.connect(e.pre, e.post, weights=W, weight_exp=int(e.weight_exp or 0), delay=delay,
                    name=e.name, sign_mode=e.sign_mode, num_weight_bits=e.num_weight_bits)
    return net
