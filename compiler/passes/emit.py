"""Emit the chip image: neuron registers, synapse memory (pre-major), axon tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.passes.emit_kernels import fan_out_lists
from compiler.passes.mapping import Mapping, synapse_bits, used_cores
from neurochip.core import fixedpoint as fx
from neurochip.core import neuron_models as nm
from neurochip.core.image import ChipImage, ConnectionInfo, CoreInfo, PopulationInfo

__all__ = ["connection_arrays", "emit_image"]


def connection_arrays(W: sp.csr_matrix, delays: NDArray[np.int64] | None, storage: str,
                      sign_mode: str) -> tuple[dict[str, NDArray[Any]], int, int]:
    """Synapse memory of one connection, pre-major, plus its weight decode rule."""
    n_post, n_pre = W.shape
    out: dict[str, NDArray[Any]] = {}
    if storage == "dense":
        wt = np.asarray(W.toarray(), dtype=np.int64).T.reshape(-1)  # (pre, post)
        b, decode, shift = fx.encode_weight_bytes(wt, sign_mode)
        out["w"] = np.ascontiguousarray(b)
        if delays is not None:
            # A dense connection's CSR holds every (post, pre) pair in row-major order.
            D = np.asarray(delays, np.int64).reshape(n_post, n_pre)
            out["delay"] = np.ascontiguousarray(D.T.reshape(-1).astype(np.uint8))
        return out, decode, shift
    # Sparse: the (post, pre) CSR transposed into per-pre fan-out lists (CSC order: by
    # pre, then post) by a counting sort that carries the encoded bytes along. The weights
    # are encoded in CSR order, in blocks (no int64 copy of all of them; the encoding is
    # per weight, its decode rule depends on the sign mode only).
    data = W.data
    enc = np.empty(data.size, np.uint8)
    _, decode, shift = fx.encode_weight_bytes(np.zeros(0, np.int64), sign_mode)
    step = 1 << 22
    for a in range(0, data.size, step):
        enc[a:a + step] = fx.encode_weight_bytes(data[a:a + step], sign_mode)[0]
    d8 = None if delays is None else np.asarray(delays).astype(np.uint8)
    lists = fan_out_lists(W.indptr, W.indices, n_pre, enc, d8)
    del enc, d8
    out["ptr"] = lists[0]  # per pre: its fan-out list
    out["post"] = lists[1]
    out["w"] = lists[2]
    if lists[3] is not None:
        out["delay"] = lists[3]
    return out, decode, shift


def emit_image(m: Mapping) -> ChipImage:
    net, hw = m.network, m.hw
    assert m.routing is not None and m.core_of is not None
    lif_off, in_off = m.lif_offsets(), m.input_offsets()
    pops: list[PopulationInfo] = []
    bias_m: list[NDArray[np.int64]] = []
    bias_e: list[NDArray[np.int64]] = []
    per_neuron: dict[str, list[NDArray[np.int64]]] = {}  # model registers, one per neuron
    for p in net.populations:
        if p.kind == "input":
            pops.append(PopulationInfo(p.name, "input", p.size, in_off[p.name],
                                       payload_bits=p.payload_bits))
        else:
            scalars = {k: int(v) for k, v in p.registers.items() if np.ndim(v) == 0}
            pops.append(PopulationInfo(
                p.name, "lif", p.size, lif_off[p.name], p.du, p.dv, p.vth, p.reset, p.spiking,
                [[int(c), int(s), int(n)] for c, s, n in m.slices[p.name]], p.model,
                scalars, nm.model_payload_bits(nm.MODELS[p.model], hw.formats)))
            bias_m.append(p.bias_mant)
            bias_e.append(p.bias_exp)
            for k, v in p.registers.items():
                if np.ndim(v) == 1:
                    per_neuron.setdefault(k, [])
    lif_pops = [p for p in net.populations if p.kind == "lif"]
    for k, parts in per_neuron.items():
        for p in lif_pops:
            v = p.registers.get(k)
            parts.append(np.asarray(v, np.int64) if v is not None and np.ndim(v) == 1
                         else np.zeros(p.size, np.int64))
    arrays: dict[str, NDArray[Any]] = {
        "neurons/bias_mant": (np.concatenate(bias_m) if bias_m else np.zeros(0)).astype(np.int32),
        "neurons/bias_exp": (np.concatenate(bias_e) if bias_e else np.zeros(0)).astype(np.int8),
        "neurons/core": m.core_of.astype(np.int32),
        "route/ptr": m.routing.ptr.astype(np.int64),
        "route/core": m.routing.core.astype(np.int32),
        "route/nsyn": m.routing.nsyn.astype(np.int32),
        "route/conn": m.routing.conn.astype(np.int32),
    }
    for k, parts in per_neuron.items():
        arrays[f"neurons/{k}"] = np.concatenate(parts).astype(np.int32)
    conns: list[ConnectionInfo] = []
    for i, c in enumerate(net.connections):
        if c.conv is not None:  # shared weights: the kernel once, plus its geometry
            assert c.kernel is not None
            b, decode, shift = fx.encode_weight_bytes(c.kernel.reshape(-1), c.sign_mode)
            arrays[f"conn/{i}/w"] = np.ascontiguousarray(b)
            conns.append(ConnectionInfo(
                c.name, c.pre, c.post, "conv", c.shape[1], c.shape[0], c.n_synapses,
                c.sign_mode, c.num_weight_bits, c.weight_exp, c.delay, False, decode, shift,
                conv=c.conv.to_dict()))
            continue
        arrs, decode, shift = connection_arrays(c.weights, c.delays, c.storage, c.sign_mode)
        for k, v in arrs.items():
            arrays[f"conn/{i}/{k}"] = v
        conns.append(ConnectionInfo(
            c.name, c.pre, c.post, c.storage, c.shape[1], c.shape[0], c.n_synapses, c.sign_mode,
            c.num_weight_bits, c.weight_exp, c.delay, c.delays is not None, decode, shift,
            port=c.port))
    cores = []
    pops_on: dict[int, list[str]] = {}
    for name, sl in m.slices.items():
        for cc in dict.fromkeys(int(c) for c, _, _ in sl):
            pops_on.setdefault(cc, []).append(name)
    for core in used_cores(m):
        cores.append(CoreInfo(
            core, int(m.usage["neurons"][core]), int(m.usage["synapse_bits"][core]),
            int(m.usage["input_axons"][core]), int(m.usage["output_axons"][core]),
            pops_on.get(core, [])))
    meta: dict[str, Any] = {"network": net.name,
                            "synapse_bits_per_connection": {
                                c.name: synapse_bits(c, hw) for c in net.connections}}
    meta.update(m.options.get("metadata", {}))
    return ChipImage(hw, pops, conns, cores, arrays, None, meta)
