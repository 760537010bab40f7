"""Reading: a ``.nir`` file or a ``nir.NIRGraph`` -> a float IR graph."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nir
import numpy as np
from numpy.typing import NDArray

from compiler.frontends.bias import add_bias_source, input_depths
from compiler.frontends.linear import apply_op, compose
from compiler.frontends.nir.base import (
    LINEAR_TYPES,
    NEURON_TYPES,
    PORT,
    SUPPORTED_TYPES,
    WIRES,
    NIRImportWarning,
    as_str,
    err,
    node_where,
    tname,
)
from compiler.frontends.nir.flatten import Flat, flatten
from compiler.frontends.nir.neurons import Pop, neuron
from compiler.frontends.nir.ops import LinearOps
from compiler.frontends.nir.profiles import discretisation
from compiler.frontends.nir.shapes import Shapes
from compiler.ir import Graph, Input, IRError, Neurons, Projection
from compiler.passes.normalize import scale_rows
from neurochip.core.errors import ModelImportError, NeurochipError
from neurochip.core.safeio import check_alloc

__all__ = ["from_nir", "read_nir"]


def read_nir(path: str | Path, *, dt: float | None = None, decay: str | None = None,
             reset: str | None = None) -> Graph:
    """Read a ``.nir`` file into a float IR graph (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise err(f"file {p}", "does not exist")
    version = None
    try:
        version = str(nir.serialization.read_version(str(p)))
    except Exception:
        version = None
    _check_hdf5_sizes(p)
    pre_notes: list[str] = []
    try:
        g = nir.read(str(p), type_check=False)
    except Exception as exc:
        g = _read_lenient(p, exc)
        pre_notes.append(f"nir.read rejected the file ({exc}); it was read without nir's "
                         "type checks and validated here")
    try:
        return from_nir(g, dt=dt, decay=decay, reset=reset, source=str(p), version=version,
                        _notes=pre_notes)
    except NeurochipError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            ZeroDivisionError) as exc:  # a malformed node the checks above did not foresee
        raise err(f"file {p}", f"malformed NIR content ({type(exc).__name__}: {exc})") from None


#: datasets, total elements and group nesting a NIR file may have
MAX_NIR_OBJECTS = 100_000
MAX_NIR_TOTAL_ELEMENTS = 1 << 29
MAX_NIR_DEPTH = 32


def _check_hdf5_sizes(p: Path) -> None:
    """Bound every dataset's shape (and their sum, and the nesting) from the HDF5 headers,
    before any array of the file is read."""
    import h5py

    where = f"file {p}"
    try:
        f = h5py.File(str(p), "r")
    except Exception as exc:
        raise err(where, f"not a readable NIR file (HDF5: {exc})") from None
    total = 0
    count = 0
    with f:
        def visit(name: str, obj: Any) -> None:
            nonlocal total, count
            count += 1
            if count > MAX_NIR_OBJECTS:
                raise err(where, f"more than {MAX_NIR_OBJECTS} HDF5 objects", "structure")
            if name.count("/") > MAX_NIR_DEPTH:
                raise err(where, f"{name!r} nests deeper than {MAX_NIR_DEPTH}", "structure")
            if isinstance(obj, h5py.Dataset):
                shape = obj.shape if obj.shape is not None else ()
                dims = check_alloc(shape, f"{where}, dataset {name!r}", "shape",
                                   error=ModelImportError)
                total += math.prod(dims)
                if total > MAX_NIR_TOTAL_ELEMENTS:
                    raise err(where, f"datasets hold more than {MAX_NIR_TOTAL_ELEMENTS} "
                              "elements in all", "structure")

        try:
            f.visititems(visit)
        except ModelImportError:
            raise
        except Exception as exc:
            raise err(where, f"not a readable NIR file (HDF5: {exc})") from None


def _read_lenient(p: Path, first: Exception) -> Any:
    """Rebuild the graph without nir's type checks (nested graphs are always type-checked
    by ``nir.read``, which rejects some valid files)."""
    try:
        import h5py
        from nir.serialization import hdf2dict

        with h5py.File(str(p), "r") as f:
            d = hdf2dict(f["node"])
        return _dict_to_node(d)
    except Exception as exc:
        raise err(f"file {p}", f"not a readable NIR file: {first} ({exc})") from None


def _dict_to_node(d: dict[str, Any]) -> Any:
    if d.get("type") == "NIRGraph":
        nodes = {k: _dict_to_node(v) for k, v in d["nodes"].items()}
        edges = [(as_str(a), as_str(b)) for a, b in d["edges"]]
        meta = {k: v for k, v in d.get("metadata", {}).items()}
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    return nir.dict2NIRNode(dict(d))


def _meta_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _meta_value(v.item())
    if isinstance(v, np.generic):
        return v.item()
    return v


def _check_name(name: str, what: str) -> None:
    import re

    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$", name):
        raise err(f"{what} '{name}'", "its name must use letters, digits, '_', '.', ':' or "
                  "'-' (rename it in the exporter)", "name")


def from_nir(graph: Any, *, dt: float | None = None, decay: str | None = None,
             reset: str | None = None, source: str = "<NIRGraph>",
             version: str | None = None, _notes: Sequence[str] = ()) -> Graph:
    """Convert a ``nir.NIRGraph`` into a float IR graph (see the module docstring)."""
    if type(graph).__name__ != "NIRGraph":
        raise err(source, f"expected a NIRGraph, got {type(graph).__name__}")
    flat = Flat(notes=list(_notes))
    flatten(graph, "", flat, 0)
    notes = flat.notes
    for name, node in flat.nodes.items():
        t = tname(node)
        if t not in SUPPORTED_TYPES and t != PORT:
            raise err(node_where(name, node), f"node type {t} is not supported (supported: "
                      f"{', '.join(SUPPORTED_TYPES)})", "type")
    meta = {str(k): _meta_value(v) for k, v in (getattr(graph, "metadata", None) or {}).items()}
    disc = discretisation(flat, meta, dt, decay, reset, notes)
    succ: dict[str, list[str]] = {k: [] for k in flat.nodes}
    preds: dict[str, list[str]] = {k: [] for k in flat.nodes}
    for a, b in flat.edges:
        succ[a].append(b)
        preds[b].append(a)
    top_inputs = [k for k, v in flat.nodes.items() if tname(v) == "Input"]
    top_outputs = [k for k, v in flat.nodes.items() if tname(v) == "Output"]
    if not top_inputs:
        raise err(source, "the graph has no Input node", "nodes")
    if not top_outputs:
        notes.append("the graph has no Output node; read populations by name")
    for k in top_inputs:
        if preds[k]:
            raise err(node_where(k, flat.nodes[k]), "an Input node cannot have incoming "
                      "edges", "edges")
    for k in top_outputs:
        if succ[k]:
            raise err(node_where(k, flat.nodes[k]), "an Output node cannot have outgoing "
                      "edges", "edges")
    shapes = Shapes(flat, preds)
    ops = LinearOps(flat, shapes, disc)
    neuron_names = [k for k, v in flat.nodes.items() if tname(v) in NEURON_TYPES]
    pops: dict[str, Pop] = {}
    for k in neuron_names:
        pops[k] = neuron(k, flat.nodes[k], shapes.of(k), disc, notes)
    # Every linear node must be driven and used.
    for k, v in flat.nodes.items():
        t = tname(v)
        if t in LINEAR_TYPES or t == PORT:
            if not preds[k]:
                raise err(node_where(k, v), "has no incoming edge: nothing drives it",
                          "edges")
            shapes.of(k)
            if not succ[k]:
                raise err(node_where(k, v), "has no outgoing edge: its result would be "
                          "dropped", "edges")
    pop_name = {k: flat.pop_name.get(k, k) for k in neuron_names}
    for k in top_inputs:
        _check_name(k, "input")
    for pn in pop_name.values():
        _check_name(pn, "node")
    # Paths from every spike source through linear nodes to neurons / outputs.
    sources = top_inputs + [k for k in neuron_names]
    projections: list[tuple[str, list[str], str]] = []
    out_map: dict[str, str] = {}
    for s in sources:
        for path, end in _paths(s, succ, flat):
            t_end = tname(flat.nodes[end])
            if s in pops and not pops[s].spiking and t_end != "Output":
                raise err(node_where(s, flat.nodes[s]), "is a non-spiking readout but feeds "
                          f"'{end}': the chip sends spikes only, never voltages", "edges")
            if t_end == "Output":
                kinds = {tname(flat.nodes[p]) for p in path}
                if s in top_inputs or not kinds <= set(WIRES):
                    raise err(node_where(end, flat.nodes[end]),
                              f"reads '{s}' through {path or 'nothing'}: an output must read "
                              "a population directly (its spikes, or the voltage of a "
                              "readout: add an LI/CubaLI node)", "edges")
                if end in out_map and out_map[end] != pop_name[s]:
                    raise err(node_where(end, flat.nodes[end]), "reads several populations "
                              "(their sum is not computed on the chip)", "edges")
                out_map[end] = pop_name[s]
                continue
            projections.append((s, path, end))
    # Biases of linear nodes, carried forward to the neurons they reach.
    in_bias: dict[str, NDArray[np.float64]] = {}
    for k in flat.nodes:
        t = tname(flat.nodes[k])
        if t not in ("Affine", "Conv1d", "Conv2d"):
            continue
        o = ops.of(k)
        if o.bias is None:
            continue
        for path, end in _paths(k, succ, flat):
            if tname(flat.nodes[end]) == "Output":
                continue
            bvec = o.bias
            for step in path:
                bvec = apply_op(ops.of(step), bvec)
            in_bias[end] = in_bias[end] + bvec if end in in_bias else bvec
    nodes: dict[str, Input | Neurons] = {}
    for k in top_inputs:
        nodes[k] = Input(shapes.of(k))
    syn_bias: dict[str, NDArray[np.float64]] = {}  # population -> bias into its current
    for k, pp in pops.items():
        bias = pp.bias.copy()
        if k in in_bias:
            ib = in_bias[k] * pp.gain
            if np.any(np.asarray(pp.alpha) > 0):  # passes the synaptic filter: a bias axon
                syn_bias[k] = ib
            else:
                bias = bias + ib
        try:
            nodes[pop_name[k]] = Neurons(pp.shape, alpha=pp.alpha, beta=pp.beta,
                                         threshold=pp.threshold, bias=bias, reset=pp.reset,
                                         spiking=pp.spiking)
        except IRError as exc:
            raise err(node_where(k, flat.nodes[k]), exc.message, exc.field) from None
    edges: list[Projection] = []
    used: set[str] = set(nodes)
    for s, path, end in projections:
        src = pop_name.get(s, s)
        dst = pop_name[end]
        n_pre = math.prod(shapes.of(s))
        where = f"path {s} -> {' -> '.join([*path, end])}"
        syn, d, dpre, dpost = compose(path, [ops.of(x) for x in path], n_pre)
        if syn.shape != (nodes[dst].size, n_pre):
            raise err(node_where(end, flat.nodes[end]), f"receives {syn.shape[0]} values "
                      f"from '{s}' but has {nodes[dst].size} neurons ({where})", "input")
        gain = pops[end].gain
        if not np.all(gain == 1):
            syn = scale_rows(syn, gain)
        mixes = [x for x in path if tname(flat.nodes[x]) not in (*WIRES, "Delay", "Scale")]
        base = ":".join(mixes or path) if path else f"{src}:{dst}"
        pname = base if base not in used else f"{base}:{src}"
        nth = 2
        while pname in used:
            pname = f"{base}:{src}:{nth}"
            nth += 1
        used.add(pname)
        edges.append(Projection(pname, src, dst, syn, delay=d, delay_pre=dpre, delay_post=dpost))
    bias_src = _bias_axons(syn_bias, pops, pop_name, projections, top_inputs, nodes, edges,
                           used, flat)
    if bias_src:
        notes.append(f"the biases of the linear layers before {sorted(syn_bias)} enter the "
                     f"synaptic current (they pass the synaptic filter): an always-on neuron "
                     f"'{bias_src}' (one spike every step) carries them exactly, delayed to "
                     "reach each population when its first input does")
    for n_ in notes:
        warnings.warn(n_, NIRImportWarning, stacklevel=3)
    md: dict[str, Any] = {
        "import": {
            "format": "nir", "source": source, "nir_version": version,
            "profile": disc.profile, "dt": disc.dt, "decay": disc.decay, "reset": disc.reset,
            "option_sources": dict(disc.sources), "notes": list(notes),
            "nodes": {pop_name[k]: {"nir_node": k, "type": pops[k].kind} for k in pops},
            "bias_source": bias_src,
        },
        "file_metadata": {k: v for k, v in meta.items()
                          if isinstance(v, (str, int, float, bool))},
    }
    return Graph(nodes, tuple(edges), out_map, md)


def _bias_axons(syn_bias: dict[str, NDArray[np.float64]], pops: dict[str, Pop],
                pop_name: dict[str, str], projections: list[tuple[str, list[str], str]],
                top_inputs: list[str], nodes: dict[str, Input | Neurons],
                edges: list[Projection], used: set[str], flat: Flat) -> str | None:
    """A linear layer's bias that enters a synaptic current (alpha > 0) is carried by an
    always-on source neuron (:mod:`compiler.frontends.bias`), delayed so that it starts
    with each population's first input, as in the framework."""
    depth = input_depths(top_inputs, ((s, end) for s, _, end in projections))
    return add_bias_source({pop_name[k]: b for k, b in syn_bias.items()},
                           {pop_name[k]: depth[k] for k in syn_bias if k in depth},
                           nodes, edges, used)


def _paths(start: str, succ: dict[str, list[str]], flat: Flat
           ) -> list[tuple[list[str], str]]:
    """Every path start -> (linear nodes)* -> neuron or Output (DFS; linear cycles refused)."""
    out: list[tuple[list[str], str]] = []
    stack: list[tuple[str, list[str]]] = [(n, []) for n in reversed(succ[start])]
    while stack:
        node, path = stack.pop()
        t = tname(flat.nodes[node])
        if t in NEURON_TYPES or t == "Output":
            out.append((path, node))
            continue
        if node in path:
            raise err(node_where(node, flat.nodes[node]), "is on a cycle of linear nodes "
                      "with no neuron on it", "edges")
        for nxt in reversed(succ[node]):
            stack.append((nxt, [*path, node]))
    return out
