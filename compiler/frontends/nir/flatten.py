"""Nested NIR graphs flattened into one graph of dotted node names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compiler.frontends.nir.base import NEURON_TYPES, PORT, as_str, err

__all__ = ["Flat", "flatten"]


@dataclass
class Flat:
    nodes: dict[str, Any] = field(default_factory=dict)  # flat name -> nir node or PORT
    edges: list[tuple[str, str]] = field(default_factory=list)
    pop_name: dict[str, str] = field(default_factory=dict)  # flat neuron name -> population
    notes: list[str] = field(default_factory=list)


def _fix_input_to_wrec(name: str, g: Any, flat: Flat) -> list[tuple[str, str]]:
    """A recurrent subgraph written as ``input -> w_rec`` (some exporters) means
    ``input -> neuron``: the input is not multiplied by the recurrent weights."""
    edges = [(as_str(a), as_str(b)) for a, b in g.edges]
    ins = [k for k, v in g.nodes.items() if type(v).__name__ == "Input"]
    neurons = [k for k, v in g.nodes.items() if type(v).__name__ in NEURON_TYPES]
    dense = [k for k, v in g.nodes.items() if type(v).__name__ in ("Linear", "Affine")]
    if len(ins) != 1 or len(neurons) != 1 or len(dense) != 1:
        return edges
    i, n, w = ins[0], neurons[0], dense[0]
    es = set(edges)
    if (i, w) in es and (w, n) in es and (n, w) in es and (i, n) not in es:
        flat.notes.append(f"subgraph '{name}': 'input -> {w}' read as 'input -> {n}' (the "
                          f"recurrent-layer wiring some exporters write)")
        return [(i, n) if e == (i, w) else e for e in edges]
    return edges


def flatten(g: Any, prefix: str, flat: Flat, depth: int) -> tuple[list[str], list[str]]:
    """Add g's nodes under ``prefix``; return its input and output node names (flat)."""
    sub_in: dict[str, list[str]] = {}
    sub_out: dict[str, list[str]] = {}
    ins: list[str] = []
    outs: list[str] = []
    for name, node in g.nodes.items():
        full = prefix + str(name)
        t = type(node).__name__
        if t == "NIRGraph":
            i, o = flatten(node, full + ".", flat, depth + 1)
            sub_in[full], sub_out[full] = i, o
            inner = [k for k, v in node.nodes.items() if type(v).__name__ in NEURON_TYPES]
            if len(inner) == 1:
                flat.pop_name[f"{full}.{inner[0]}"] = full
            continue
        if t in ("Input", "Output") and depth > 0:
            flat.nodes[full] = PORT
            (ins if t == "Input" else outs).append(full)
            continue
        flat.nodes[full] = node
        if t == "Input":
            ins.append(full)
        elif t == "Output":
            outs.append(full)
    edges = _fix_input_to_wrec(prefix[:-1] or "<top>", g, flat) if depth > 0 else [
        (as_str(a), as_str(b)) for a, b in g.edges]
    _dotted_ports(edges, prefix, flat)
    seen: set[tuple[str, str]] = set()
    for a, b in edges:
        fa, fb = prefix + a, prefix + b
        fa = _dotted_group(fa, "source", flat, sub_in)
        fb = _dotted_group(fb, "target", flat, sub_in)
        for end, role in ((fa, "source"), (fb, "target")):
            if end not in flat.nodes and end not in sub_in:
                raise err(f"edge ('{fa}', '{fb}')", f"its {role} '{end}' is not a node of the "
                          "graph", "edges")
        if fa in sub_out:
            if len(sub_out[fa]) != 1:
                raise err(f"subgraph '{fa}'", f"has {len(sub_out[fa])} Output nodes; an edge "
                          "leaving it is ambiguous", "edges")
            fa = sub_out[fa][0]
        if fb in sub_in:
            if len(sub_in[fb]) != 1:
                raise err(f"subgraph '{fb}'", f"has {len(sub_in[fb])} Input nodes; an edge "
                          "into it is ambiguous", "edges")
            fb = sub_in[fb][0]
        if (fa, fb) in seen:
            flat.notes.append(f"duplicate edge ('{fa}', '{fb}') dropped (NIR edges are "
                              "identity wires; a traced export repeated it)")
            continue
        seen.add((fa, fb))
        flat.edges.append((fa, fb))
    return ins, outs


def _dotted_ports(edges: list[tuple[str, str]], prefix: str, flat: Flat) -> None:
    """The dotted layout of a subgraph (nodes ``lif1.input``, ``lif1.lif``, ``lif1.output``
    written flat): an Input fed by an edge, or an Output that feeds one, is the group's
    port, not a graph input or output."""
    fed = {prefix + b for _, b in edges}
    feeding = {prefix + a for a, _ in edges}
    for name, node in list(flat.nodes.items()):
        if "." not in name[len(prefix):] or isinstance(node, str):
            continue
        t = type(node).__name__
        group = name.rsplit(".", 1)[0]
        if (t == "Input" and (name in fed or group in fed)) or \
                (t == "Output" and (name in feeding or group in feeding)):
            flat.nodes[name] = PORT


def _dotted_group(end: str, role: str, flat: Flat, sub_in: dict[str, list[str]]) -> str:
    """An edge naming ``lif1`` where the graph holds ``lif1.*`` nodes (the dotted layout)
    means the group's port (``lif1.input`` / ``lif1.output``), else its one neuron node."""
    if end in flat.nodes or end in sub_in:
        return end
    members = [k for k in flat.nodes if k.startswith(end + ".")]
    if not members:
        return end
    port = f"{end}.{'input' if role == 'target' else 'output'}"
    if port in flat.nodes:
        return port
    neurons = [k for k in members if type(flat.nodes[k]).__name__ in NEURON_TYPES]
    if len(neurons) != 1:
        raise err(f"edge naming '{end}'", f"'{end}' is a dotted group of {len(neurons)} "
                  f"neuron nodes and no '{port}' node: its {role} is ambiguous", "edges")
    if neurons[0] not in flat.pop_name:
        flat.pop_name[neurons[0]] = end
    return neurons[0]
