"""Quantize pass: a float IR graph -> the same graph with chip registers.

Each population is mapped by :func:`compiler.registers.map_population` (one scale lambda
per population, one weight exponent per incoming projection; docs/conventions.md
section 2). Convolutions keep their shared kernel: the kernel's values are quantized once.

**Synapse groups** (``weight_groups=True``; the compile pipeline turns them on for NIR files
written by other frameworks, whose float weights were not trained on the chip's grid,
see :func:`weight_groups_for`). A dense or sparse projection whose weights would lose more than
``GROUP_ZEROED`` of their non-zero entries to 0 on one grid is split into synapse groups
(projections ``<name>:exc``, ``:exc-fine``, ``:inh``, ``:inh-fine``), when that cuts its
weight error to at most ``GROUP_GAIN`` of the single grid's: each group has one sign (the
excitatory / inhibitory grids keep a full 8-bit magnitude, where a mixed-sign grid keeps 7)
and its own weight exponent, so the small weights of a fine group (below 1/``GROUP_RATIO``
of their sign's largest) keep their precision instead of rounding to zero. The quantized
graph's ``metadata["weight_groups"]`` maps each split projection to its groups; the report
keeps one entry per float projection (``sign_mode`` ``"groups"``, the groups listed). A
convolution is split differently, since its shared kernel is visited whole for every spike:
its few largest kernel entries become a sparse group of their own (``<name>:big``) and the
rest keeps the shared kernel on a finer grid (``<name>:fine``).
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

from compiler.ir import Conv, Dense, Graph, IRError, Neurons, Projection, Sparse, Synapses
from compiler.registers import (
    ProjectionStats,
    check_weight_bits,
    dequantize_weights,
    effective_bias,
    effective_decays,
    effective_threshold,
    map_population,
    quantize_weights,
    weight_exponent,
)
from neurochip.core.errors import QuantizationError
from neurochip.core.hw import HardwareSpec

__all__ = ["dequantize_graph", "projection_stats", "quantization_report", "quantize_graph",
           "weight_groups_for"]


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
                   state_max: Mapping[str, float] | None = None,
                   weight_groups: bool = False) -> Graph:
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
    groups: dict[str, list[str]] = {}  # float projection -> its synapse groups
    taken = {e.name for e in graph.edges}
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
        sm = None if state_max is None else state_max.get(name)

        def mapped(projs: list[Projection], pop: Neurons = pop, th: float = th,
                   sm: float | None = sm, where: str = where) -> Any:
            return map_population(
                alpha=pop.alpha, beta=pop.beta, threshold=th, bias=pop.bias,
                values=[np.asarray(e.synapses.values, np.float64) for e in projs],
                stats=[projection_stats(e.synapses) for e in projs], hw=hw, weight_bits=wb,
                spiking=pop.spiking, state_max=sm, where=where)[0]

        regs = mapped(inc)
        if weight_groups:
            # Groups are cut for a scale; the mapping of the groups may choose another
            # (their largest weights differ): cut again until the scale is stable.
            for _ in range(4):
                split: list[Projection] = []
                cut: dict[str, list[str]] = {}
                for e in inc:
                    parts = _weight_groups(e, regs.scale, hw, wb, set(taken))
                    split.extend(parts)
                    if len(parts) > 1:
                        cut[e.name] = [x.name for x in parts]
                if not cut:
                    break
                regs2 = mapped(split)
                if regs2.scale == regs.scale or _ == 3:
                    groups.update(cut)
                    taken.update(x.name for x in split)
                    inc, regs = split, regs2
                    break
                regs = regs2
        nodes[name] = pop.with_(registers=regs.neuron_registers())
        for e, q, wexp, mode in zip(inc, regs.weights, regs.weight_exp, regs.sign_mode):
            new_edges[e.name] = replace(e, synapses=e.synapses.with_values(q),
                                        weight_exp=wexp, sign_mode=mode, num_weight_bits=wb)
    edges_out: list[Projection] = []
    for e in graph.edges:
        for gname in groups.get(e.name, [e.name]):
            edges_out.append(new_edges.get(gname, e))
    md = dict(graph.metadata)
    if groups:
        md["weight_groups"] = {k: list(v) for k, v in groups.items()}
    return Graph(nodes, tuple(edges_out), graph.outputs, md)


def weight_groups_for(graph: Graph | None) -> bool:
    """Whether the pipeline quantizes ``graph`` with synapse groups: a NIR file of another
    exporter (its float weights know nothing of the chip's grid). Files neurochip wrote
    (chip-aware training quantizes on the single grid) and IR graphs keep one group per
    projection, so their images stay as they were trained."""
    imp = (graph.metadata.get("import") if graph is not None else None) or {}
    return imp.get("format") == "nir" and imp.get("profile") not in (None, "neurochip")


#: a projection is split into weight groups when more than this fraction of its non-zero
#: weights would round to 0 ...
GROUP_ZEROED = 0.02
#: ... and the groups cut its weight error (Frobenius) by at least this factor
GROUP_GAIN = 0.75
#: the fine group of a sign holds the weights below max|W| / GROUP_RATIO of that sign
GROUP_RATIO = 8.0


def _single_grid(e: Projection, v: NDArray[np.float64], scale: float, hw: HardwareSpec,
                 wb: int) -> NDArray[np.float64] | None:
    """The weights ``v`` of ``e`` as one grid realises them, or None when that grid keeps
    enough of them (at most ``GROUP_ZEROED`` of the non-zero ones become 0): no groups."""
    nz = v != 0
    if not np.any(nz):
        return None
    st = projection_stats(e.synapses)
    wexp = weight_exponent(st.max_pos, st.max_neg, scale, st.sign_mode, wb, hw)
    deq = dequantize_weights(quantize_weights(v, scale, wexp, st.sign_mode, wb, hw), scale,
                             wexp, hw)
    return None if float(np.mean(deq[nz] == 0)) <= GROUP_ZEROED else deq


def _weight_groups(e: Projection, scale: float, hw: HardwareSpec, wb: int,
                   taken: set[str]) -> list[Projection]:
    """``e`` as one to four projections (synapse groups) of one sign and magnitude range
    each, when that keeps markedly more of its weights: every group has its own weight
    exponent and sign mode (excitatory / inhibitory groups use the full magnitude grid, a
    group of small weights a finer exponent). A convolution splits off its largest kernel
    entries instead (:func:`_conv_outliers`)."""
    if isinstance(e.synapses, Conv):
        return _conv_outliers(e, scale, hw, wb, taken)
    m = e.synapses.to_csr()
    v = np.asarray(m.data, np.float64)
    deq0 = _single_grid(e, v, scale, hw, wb)
    if deq0 is None:
        return [e]
    err0 = float(np.linalg.norm(deq0 - v))
    f = hw.formats
    groups: list[tuple[str, NDArray[np.bool_], NDArray[np.float64]]] = []
    for tag, sel in (("exc", v > 0), ("inh", v < 0)):
        if not np.any(sel):
            continue
        big = float(np.abs(v[sel]).max())
        fine = sel & (np.abs(v) < big / GROUP_RATIO)
        groups.append((tag, sel & ~fine, v))
        if np.any(fine):
            groups.append((f"{tag}-fine", fine, v))
    approx = np.zeros_like(v)

    def realise(sel: NDArray[np.bool_], target: NDArray[np.float64]) -> bool:
        part = target[sel]
        mp, mn = float(max(part.max(), 0.0)), float(max(-part.min(), 0.0))
        gmode = "mixed" if mp > 0 and mn > 0 else ("excitatory" if mn == 0 else "inhibitory")
        ge = weight_exponent(mp, mn, scale, gmode, wb, hw)
        if ge > f.weight_exp_max:
            return False
        gq = quantize_weights(part, scale, ge, gmode, wb, hw)
        if not np.any(gq):
            return False
        approx[sel] += dequantize_weights(gq, scale, ge, hw)
        return True

    for _, sel, target in groups:
        if not realise(sel, target):
            return [e]
    if float(np.linalg.norm(approx - v)) > GROUP_GAIN * err0:
        return [e]
    out = []
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    for tag, sel, target in groups:
        name = f"{e.name}:{tag}"
        while name in taken:
            name += "_"
        taken.add(name)
        part = sp.csr_matrix((target[sel], (rows[sel], m.indices[sel])), shape=m.shape)
        out.append(replace(e, name=name, synapses=Sparse(part)))
    return out


#: a convolution's outlier group holds at most this fraction of its kernel's entries
CONV_OUTLIERS = 0.1
#: ... the entries above max|W| / r, for the r of these that cuts the error most
CONV_OUTLIER_RATIOS = (16.0, 8.0, 4.0, 2.0)


def _grid_error(part: NDArray[np.float64], scale: float, hw: HardwareSpec, wb: int) -> float:
    """Squared error of ``part`` on the grid chosen for it alone (inf where no exponent
    fits)."""
    if not np.any(part):
        return 0.0
    mp, mn = float(max(part.max(), 0.0)), float(max(-part.min(), 0.0))
    mode = "mixed" if mp > 0 and mn > 0 else ("excitatory" if mn == 0 else "inhibitory")
    ge = weight_exponent(mp, mn, scale, mode, wb, hw)
    if ge > hw.formats.weight_exp_max:
        return float("inf")
    deq = dequantize_weights(quantize_weights(part, scale, ge, mode, wb, hw), scale, ge, hw)
    return float(np.sum((deq - part) ** 2))


def _conv_outliers(e: Projection, scale: float, hw: HardwareSpec, wb: int,
                   taken: set[str]) -> list[Projection]:
    """A convolution as two synapse groups when that keeps markedly more of its kernel:
    the kernel without its largest entries (``<name>:fine``, still one shared kernel, on a
    grid r times finer) and those few entries as the sparse synapses they expand to
    (``<name>:big``, at most ``CONV_OUTLIERS`` of the kernel). A shared kernel is visited
    tap by tap for every spike, so sign or magnitude groups of whole kernels would add
    synaptic operations; the outliers' synapses add only their own few. Unchanged (one
    element) unless more than ``GROUP_ZEROED`` of the kernel would round to 0 and the
    split cuts the weight error to at most ``GROUP_GAIN`` of the single grid's."""
    assert isinstance(e.synapses, Conv)
    v = np.asarray(e.synapses.values, np.float64)
    deq0 = _single_grid(e, v, scale, hw, wb)
    if deq0 is None:
        return [e]
    err0 = float(np.sum((deq0 - v) ** 2))
    big = float(np.abs(v).max())
    best: tuple[float, NDArray[np.bool_]] | None = None
    for r in CONV_OUTLIER_RATIOS:
        sel = np.abs(v) > big / r
        if np.mean(sel) > CONV_OUTLIERS:
            continue
        err = (_grid_error(np.where(sel, v, 0.0), scale, hw, wb)
               + _grid_error(np.where(sel, 0.0, v), scale, hw, wb))
        if best is None or err < best[0]:
            best = (err, sel)
    if best is None or not np.isfinite(best[0]) or best[0] > GROUP_GAIN ** 2 * err0:
        return [e]
    sel = best[1]
    names = []
    for tag in ("fine", "big"):
        name = f"{e.name}:{tag}"
        while name in taken:
            name += "_"
        taken.add(name)
        names.append(name)
    fine = replace(e, name=names[0], synapses=e.synapses.with_values(np.where(sel, 0.0, v)))
    m = sp.csr_matrix(e.synapses.with_values(np.where(sel, v, 0.0)).to_csr())
    m.eliminate_zeros()
    return [fine, replace(e, name=names[1], synapses=Sparse(m))]


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


def _mean(x: Any) -> float:
    """A decay as a report number (the mean for per-neuron decays)."""
    return float(np.mean(x)) if np.ndim(x) else float(x)


def _reg(x: Any) -> Any:
    """A decay register as a report value: an int, or "lo..hi" for per-neuron registers."""
    return f"{int(np.min(x))}..{int(np.max(x))}" if np.ndim(x) else int(x)


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
    owner = {g: k for k, gs in (qgraph.metadata.get("weight_groups") or {}).items() for g in gs}
    for name, q in qgraph.populations.items():
        p = fgraph.populations[name]
        r = q.registers
        assert r is not None
        a, b = effective_decays(r.du, r.dv, hw)
        eb = effective_bias(r.bias_mant, r.bias_exp, r.scale)
        entry: dict[str, Any] = {
            "scale": r.scale, "du": _reg(r.du), "dv": _reg(r.dv), "vth": r.vth,
            "bias_exp_max": int(r.bias_exp.max()) if r.bias_exp.size else 0,
            "alpha": _mean(p.alpha), "alpha_chip": _mean(a), "beta": _mean(p.beta),
            "beta_chip": _mean(b),
            "bias_max_abs_error": float(np.abs(eb - p.bias).max()) if p.bias.size else 0.0,
            "spiking": p.spiking, "reset": p.reset,
        }
        if p.per_neuron_decays:
            # one decay per neuron: the means above, the ranges and largest errors here
            entry["per_neuron_decays"] = True
            for k, fl, ch in (("alpha", p.alpha, a), ("beta", p.beta, b)):
                entry[f"{k}_range"] = [float(np.min(fl)), float(np.max(fl))]
                entry[f"{k}_max_abs_error"] = float(np.max(np.abs(np.asarray(ch)
                                                                  - np.asarray(fl))))
        if p.spiking:
            assert p.threshold is not None
            entry["threshold"] = float(p.threshold[0])
            entry["threshold_chip"] = effective_threshold(r.vth, r.scale, hw)
        if state_bounds and name in state_bounds:
            entry["state_bound"], entry["state_bound_source"] = state_bounds[name]
        projs: dict[str, Any] = {}
        grouped: dict[str, list[Projection]] = {}
        for e in qgraph.incoming(name):
            if e.name in owner:
                grouped.setdefault(owner[e.name], []).append(e)
                continue
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
        for fname, parts in grouped.items():
            projs[fname] = _group_entry(fgraph.edge(fname), parts, r.scale, hw)
        entry["projections"] = projs
        out[name] = entry
    return out


def _step(e: Projection, scale: float, hw: HardwareSpec) -> float:
    f = hw.formats
    assert e.weight_exp is not None
    step_int = 1 << max(0, (f.weight_bits - int(e.num_weight_bits or f.weight_bits))
                        + (1 if e.sign_mode == "mixed" else 0))
    return float(dequantize_weights(np.asarray([step_int]), scale, e.weight_exp, hw)[0])


def _group_entry(fe: Projection, parts: list[Projection], scale: float, hw: HardwareSpec
                 ) -> dict[str, Any]:
    """The report entry of a float projection quantized as several synapse groups."""
    m = fe.synapses.to_csr()
    W = np.asarray(m.data, np.float64)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    total = sp.csr_matrix(m.shape, dtype=np.float64)
    for e in parts:
        assert e.weight_exp is not None
        qm = e.synapses.to_csr()
        total = total + sp.csr_matrix((dequantize_weights(qm.data, scale, e.weight_exp, hw),
                                       qm.indices, qm.indptr), shape=qm.shape)
    Wq = np.asarray(total.tocsr()[rows, m.indices], np.float64).reshape(-1)
    first = parts[0]
    return {
        "pre": fe.pre, "kind": type(fe.synapses).__name__.lower(),
        "synapses": int(sum(_nnz(e.synapses) for e in parts)),
        "weight_exp": first.weight_exp, "sign_mode": "groups",
        "num_weight_bits": first.num_weight_bits,
        "rel_weight_error": _rel(Wq - W, W),
        "max_abs_error": float(np.abs(Wq - W).max()) if W.size else 0.0,
        "step": min(_step(e, scale, hw) for e in parts),
        "zeroed": float(np.mean((Wq == 0)[W != 0])) if np.any(W != 0) else 0.0,
        "groups": {e.name: {"weight_exp": e.weight_exp, "sign_mode": e.sign_mode,
                            "synapses": int(_nnz(e.synapses)),
                            "step": _step(e, scale, hw)} for e in parts},
    }


def _nnz(syn: Synapses) -> int:
    if isinstance(syn, Dense):
        return int(syn.weight.size)
    m = syn.to_csr()
    return int(m.nnz) if sp.issparse(m) else 0
