"""The verifier run between passes: the invariants every pass must keep."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.ir.fields import ir_error
from compiler.ir.graph import Graph
from compiler.ir.nodes import Neurons
from neurochip.core import fixedpoint as fx

__all__ = ["verify"]


def verify(graph: Graph, hw: Any = None) -> Graph:
    """Check the invariants every pass must keep; return the graph unchanged.

    * structure (checked again: a pass may have built the graph with ``replace``);
    * no projection leaves a non-spiking readout (it never emits spikes);
    * quantization is all-or-nothing: either no population/projection carries registers
      or all do, with integer weights;
    * with ``hw`` (a :class:`~neurochip.core.hw.HardwareSpec`): every register fits the chip's
      formats, weights are values the chip keeps unchanged, delays <= the chip's maximum.
    """
    Graph(graph.nodes, graph.edges, graph.outputs, graph.metadata)
    pops = graph.populations
    for e in graph.edges:
        pre = graph.nodes[e.pre]
        if isinstance(pre, Neurons) and not pre.spiking:
            raise ir_error(f"projection '{e.name}'", "pre", f"'{e.pre}' is a non-spiking readout; "
                           "it emits no spikes to project")
    n_q = sum(p.registers is not None for p in pops.values()) + sum(
        e.quantized for e in graph.edges)
    total = len(pops) + len(graph.edges)
    if 0 < n_q < total:
        missing = [k for k, p in pops.items() if p.registers is None] + [
            e.name for e in graph.edges if not e.quantized]
        raise ir_error("graph", "registers", f"partly quantized: {missing[:5]} lack registers")
    if n_q and n_q == total:
        for e in graph.edges:
            v = np.asarray(e.synapses.values)
            if v.dtype.kind not in "iu":
                raise ir_error(f"projection '{e.name}'", "synapses",
                               f"quantized weights must be integers, got {v.dtype}")
    if hw is not None:
        _verify_hw(graph, hw)
    return graph


def _verify_hw(graph: Graph, hw: Any) -> None:
    f = hw.formats
    for e in graph.edges:
        where = f"projection '{e.name}'"
        if e.max_delay > f.max_delay:
            raise ir_error(where, "delay", f"{e.max_delay} steps exceed the chip's maximum "
                           f"{f.max_delay}", value=e.max_delay, limit=f.max_delay)
        if not e.quantized:
            continue
        assert e.weight_exp is not None and e.sign_mode is not None  # narrowed for mypy
        lo, hi = f.weight_exp_range
        if not lo <= e.weight_exp <= hi:
            raise ir_error(where, "weight_exp", f"{e.weight_exp} outside [{lo}, {hi}]",
                           value=e.weight_exp, limit=(lo, hi))
        nwb = int(e.num_weight_bits or f.weight_bits)
        if not 1 <= nwb <= f.weight_bits:
            raise ir_error(where, "num_weight_bits", f"{nwb} outside [1, {f.weight_bits}]")
        w = np.asarray(e.synapses.values, np.int64).reshape(-1)
        if w.size:
            eff = fx.effective_weights(w, e.sign_mode, nwb, f.weight_bits)
            bad = np.flatnonzero(eff != w)
            if bad.size:
                raise ir_error(where, "weights", f"{bad.size} weights are not kept unchanged "
                               f"by the chip (e.g. {int(w[bad[0]])} -> {int(eff[bad[0]])}, "
                               f"{e.sign_mode}, {nwb}-bit)")
    for name, p in graph.populations.items():
        r = p.registers
        if r is None:
            continue
        where = f"population '{name}'"
        for fld, val, (lo, hi) in (("du", r.du, f.du_range), ("dv", r.dv, f.dv_range),
                                   ("vth", r.vth, f.vth_range)):
            if np.ndim(val):  # per-neuron decay registers
                arr_ = np.asarray(val)
                if arr_.size and (arr_.min() < lo or arr_.max() > hi):
                    bad_v = int(arr_[(arr_ < lo) | (arr_ > hi)][0])
                    raise ir_error(where, fld, f"{bad_v} outside [{lo}, {hi}]", value=bad_v,
                                   limit=(lo, hi))
            elif not lo <= val <= hi:
                raise ir_error(where, fld, f"{val} outside [{lo}, {hi}]", value=val, limit=(lo, hi))
        for fld, arr, (lo, hi) in (("bias_mant", r.bias_mant, f.bias_mant_range),
                                   ("bias_exp", r.bias_exp, f.bias_exp_range)):
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise ir_error(where, fld, f"values outside [{lo}, {hi}]", limit=(lo, hi))
