"""A readable text dump of a graph (what ``dump_ir`` prints)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from compiler.ir.nodes import Input, Neurons
from compiler.ir.synapses import Conv

if TYPE_CHECKING:
    from compiler.ir.graph import Graph

__all__ = ["format_graph"]


def _arr_summary(x: NDArray[Any] | float | None) -> str:
    if x is None:
        return "-"
    a = np.asarray(x)
    if a.size == 0:
        return "[]"
    if np.all(a == a.reshape(-1)[0]):
        return f"{a.reshape(-1)[0]:.6g}"
    return f"[{float(a.min()):.4g}..{float(a.max()):.4g}]"


def format_graph(graph: Graph) -> str:
    """A readable text dump of the graph (what ``dump_ir`` prints)."""
    stage = "quantized" if graph.quantized else "float"
    lines = [f"graph ({stage}): {len(graph.inputs)} inputs, {len(graph.populations)} "
             f"populations, {len(graph.edges)} projections"]
    for name, node in graph.nodes.items():
        if isinstance(node, Input):
            lines.append(f"  input   {name} shape={node.shape}")
            continue
        kind = "lif" if node.spiking else "readout"
        s = (f"  {kind:<8}{name} shape={node.shape} alpha={_arr_summary(node.alpha)} "
             f"beta={_arr_summary(node.beta)} threshold={_arr_summary(node.threshold)} "
             f"bias={_arr_summary(node.bias)} reset={node.reset}")
        r = node.registers
        if r is not None:
            s += (f" | scale={r.scale:.6g} du={_arr_summary(r.du)} dv={_arr_summary(r.dv)} "
                  f"vth={r.vth} "
                  f"bias_mant={_arr_summary(r.bias_mant)} bias_exp={_arr_summary(r.bias_exp)}")
        lines.append(s)
    rec = {e.name for e in graph.recurrent_edges()}
    for e in graph.edges:
        syn = e.synapses
        kind = type(syn).__name__.lower()
        extra = ""
        if isinstance(syn, Conv):
            extra = (f" kernel={syn.kernel} stride={syn.stride} pad={syn.padding} "
                     f"dil={syn.dilation} groups={syn.groups}")
        s = (f"  proj    {e.name}: {e.pre} -> {e.post} {kind}{extra} shape={syn.shape} "
             f"w={_arr_summary(np.asarray(syn.values))} delay={e.delay}"
             + ("+per-synapse" if e.delay_pre is not None or e.delay_post is not None else "")
             + (" recurrent" if e.name in rec else ""))
        if e.quantized:
            s += f" | weight_exp={e.weight_exp} {e.sign_mode} {e.num_weight_bits}-bit"
        lines.append(s)
    for oname, src in graph.outputs.items():
        p = graph.nodes[src]
        sig = "spikes" if isinstance(p, Neurons) and p.spiking else "v"
        lines.append(f"  output  {oname} <- {src} ({sig})")
    return "\n".join(lines)
