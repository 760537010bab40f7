"""Quantize pass: a float IR graph -> the same graph with chip registers.

Each population is mapped by :func:`compiler.registers.map_population` (one scale lambda
per population, one weight exponent per incoming projection; docs/conventions.md
section 2). Convolutions keep their shared kernel: the kernel's values are quantized once.
:func:`quantization_report` compares the float and the quantized graph, and
:func:`dequantize_graph` gives the float graph the chip realises (for the float simulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.ir import Conv, Dense, Graph, IRError, Neurons, Projection, Synapses
from compiler.registers import (
    ProjectionStats,
    check_weight_bits,
    dequantize_weights,
    effective_bias,
    effective_decays,
    effective_threshold,
    map_population,
)
from neurochip.core.errors import QuantizationError
from neurochip.core.hw import HardwareSpec

__all__ = ["dequantize_graph", "projection_stats", "quantization_report", "quantize_graph"]


def projection_stats(syn: Synapses) -> ProjectionStats:
    """Largest weights and per-post-neuron |W| sums of one projection's synapses."""
    vals = np.asarray(syn.values, np.float64)
    if isinstance(syn, Dense):
        rows = np.abs(vals).sum(axis=1)
    elif isinstance(syn, Conv):
        rows = syn.row_abs_sum()
    else:
        rows = np.asarray(abs(syn.to_csr()).sum(axis=1), np.float64).reshape(-1)
    return ProjectionStats.from_values(vals, rows)


def quantize_graph(graph: Graph, hw: HardwareSpec, *, weight_bits: int | None = None,
                   state_max: Mapping[str, float] | None = None) -> Graph:
    """Every population gets registers, every projection integer weights (pure).

    state_max: per population, the largest |I| / |U| expected (calibration); populations
    not listed use the conservative bound of :func:`compiler.registers.state_bound`.
    Spiking populations must have one threshold (run :func:`~compiler.passes.normalize.
    normalize` first).
    """
    if graph.quantized:
        raise IRError("the graph is already quantized", where="quantize")
    wb = check_weight_bits(weight_bits, hw.formats, "quantize")
    nodes: dict[str, Any] = dict(graph.nodes)
    new_edges: dict[str, Projection] = {}
    for name, pop in graph.populations.items():
        where = f"population '{name}'"
        inc = graph.incoming(name)
        th = 0.0
        if pop.spiking:
            assert pop.threshold is not None
            if not np.all(pop.threshold == pop.threshold[0]):
                raise QuantizationError("neurons have different thresholds; the chip has one "
                                        "per population (run the normalize pass first)",
                                        where=where, field="threshold")
            th = float(pop.threshold[0])
        stats = [projection_stats(e.synapses) for e in inc]
        sm = None if state_max is None else state_max.get(name)
        regs, _ = map_population(alpha=pop.alpha, beta=pop.beta, threshold=th, bias=pop.bias,
                                 values=[np.asarray(e.synapses.values, np.float64) for e in inc],
                                 stats=stats, hw=hw, weight_bits=wb, spiking=pop.spiking,
                                 state_max=sm, where=where)
        nodes[name] = pop.with_(registers=regs.neuron_registers())
        for e, q, wexp, mode in zip(inc, regs.weights, regs.weight_exp, regs.sign_mode):
            new_edges[e.name] = replace(e, synapses=e.synapses.with_values(q),
                                        weight_exp=wexp, sign_mode=mode, num_weight_bits=wb)
    edges = tuple(new_edges.get(e.name, e) for e in graph.edges)
    return Graph(nodes, edges, graph.outputs, graph.metadata)


def _deq_synapses(e: Projection, scale: float, hw: HardwareSpec) -> Synapses:
    assert e.weight_exp is not None
    return e.synapses.with_values(dequantize_weights(e.synapses.values, scale, e.weight_exp, hw))


def dequantize_graph(qgraph: Graph, hw: HardwareSpec) -> Graph:
    """The float graph a quantized graph realises (registers divided by each scale)."""
    if not qgraph.quantized:
        raise IRError("dequantize_graph needs a quantized graph", where="dequantize")
    nodes: dict[str, Any] = dict(qgraph.nodes)
    scales: dict[str, float] = {}
    for name, pop in qgraph.populations.items():
        r = pop.registers
        assert r is not None
        a, b = effective_decays(r.du, r.dv, hw)
        th = effective_threshold(r.vth, r.scale, hw) if pop.spiking else None
        nodes[name] = Neurons(pop.shape, alpha=a, beta=b, threshold=th,
                              bias=effective_bias(r.bias_mant, r.bias_exp, r.scale),
                              reset=pop.reset, spiking=pop.spiking)
        scales[name] = r.scale
    edges = tuple(replace(e, synapses=_deq_synapses(e, scales[e.post], hw), weight_exp=None,
                          sign_mode=None, num_weight_bits=None) for e in qgraph.edges)
    return Graph(nodes, edges, qgraph.outputs, qgraph.metadata)


def _rel(err: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    n = float(np.linalg.norm(ref))
    return float(np.linalg.norm(err)) / n if n > 0 else 0.0


def quantization_report(fgraph: Graph, qgraph: Graph, hw: HardwareSpec,
                        state_bounds: Mapping[str, tuple[float, str]] | None = None
                        ) -> dict[str, Any]:
    """Per population: scale, registers, effective vs float parameters, weight errors.

    Weight errors are over the stored values (kernel entries for a convolution):
    ``rel_weight_error = ||W_chip - W|| / ||W||`` (Frobenius), ``max_abs_error``, the
    float ``step`` of one weight LSB, and ``zeroed``, the fraction of non-zero float
    weights that became 0.
    """
    f = hw.formats
    out: dict[str, Any] = {}
    for name, q in qgraph.populations.items():
        p = fgraph.populations[name]
        r = q.registers
        assert r is not None
        a, b = effective_decays(r.du, r.dv, hw)
        eb = effective_bias(r.bias_mant, r.bias_exp, r.scale)
        entry: dict[str, Any] = {
            "scale": r.scale, "du": r.du, "dv": r.dv, "vth": r.vth,
            "bias_exp_max": int(r.bias_exp.max()) if r.bias_exp.size else 0,
            "alpha": p.alpha, "alpha_chip": a, "beta": p.beta, "beta_chip": b,
            "bias_max_abs_error": float(np.abs(eb - p.bias).max()) if p.bias.size else 0.0,
            "spiking": p.spiking, "reset": p.reset,
        }
        if p.spiking:
            assert p.threshold is not None
            entry["threshold"] = float(p.threshold[0])
            entry["threshold_chip"] = effective_threshold(r.vth, r.scale, hw)
        if state_bounds and name in state_bounds:
            entry["state_bound"], entry["state_bound_source"] = state_bounds[name]
        projs: dict[str, Any] = {}
        for e in qgraph.incoming(name):
            fe = fgraph.edge(e.name)
            assert e.weight_exp is not None
            W = np.asarray(fe.synapses.values, np.float64).reshape(-1)
            Wq = dequantize_weights(np.asarray(e.synapses.values).reshape(-1), r.scale,
                                    e.weight_exp, hw)
            step_int = 1 << max(0, (f.weight_bits - int(e.num_weight_bits or f.weight_bits))
                                + (1 if e.sign_mode == "mixed" else 0))
            projs[e.name] = {
                "pre": e.pre, "kind": type(e.synapses).__name__.lower(),
                "synapses": int(_nnz(e.synapses)), "weight_exp": e.weight_exp,
                "sign_mode": e.sign_mode, "num_weight_bits": e.num_weight_bits,
                "rel_weight_error": _rel(Wq - W, W),
                "max_abs_error": float(np.abs(Wq - W).max()) if W.size else 0.0,
                "step": float(dequantize_weights(np.asarray([step_int]), r.scale,
                                                 e.weight_exp, hw)[0]),
                "zeroed": float(np.mean((Wq == 0)[W != 0])) if np.any(W != 0) else 0.0,
            }
        entry["projections"] = projs
        out[name] = entry
    return out


def _nnz(syn: Synapses) -> int:
    if isinstance(syn, Dense):
        return int(syn.weight.size)
    m = syn.to_csr()
    return int(m.nnz) if sp.issparse(m) else 0
