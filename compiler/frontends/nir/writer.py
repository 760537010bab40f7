"""Writing: a float IR graph (or a layer list) -> a ``nir.NIRGraph`` or a ``.nir`` file."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nir
import numpy as np
from numpy.typing import NDArray

from compiler.ir import Conv, Dense, Graph, Input, Neurons, layered_graph
from neurochip.core.errors import ModelImportError
from neurochip.core.safeio import atomic_path
from neurochip.core.version import __version__

__all__ = ["to_nir", "write_nir"]


def _f64(x: Any) -> NDArray[np.float64]:
    return np.asarray(x, np.float64)


def _neuron_node(name: str, p: Neurons, dt: float) -> tuple[Any, NDArray[np.float64] | None]:
    """A NIR neuron node realising population p at dt; the bias it could not hold."""
    where = f"population '{name}'"
    shape = p.shape
    # per-neuron decays become per-neuron time constants (scalars fill the shape)
    a = np.broadcast_to(np.asarray(p.alpha, np.float64), (p.size,)).reshape(shape)
    b = np.broadcast_to(np.asarray(p.beta, np.float64), (p.size,)).reshape(shape)
    bias = p.bias.reshape(shape)
    if np.any(a >= 1.0):
        raise ModelImportError("alpha = 1 (a synaptic current that never decays) has no NIR "
                               "form", where=where, field="alpha")
    leftover = None
    th = None if p.threshold is None else p.threshold.reshape(shape)
    if np.any((a > 0) & (b >= 1.0)):
        raise ModelImportError("a synaptic filter (alpha > 0) on an integrating membrane "
                               "(beta = 1) has no NIR form", where=where, field="beta")
    if np.any(b >= 1.0) and not np.all(b >= 1.0):
        raise ModelImportError("integrating (beta = 1) and leaky neurons in one population "
                               "have no single NIR node", where=where, field="beta")
    if np.all(b >= 1.0):  # IF / I: no leak term, the bias must ride on an incoming Affine
        r = np.full(shape, 1.0 / dt)
        leftover = bias if np.any(bias) else None
        node = nir.IF(r=r, v_threshold=th, v_reset=np.zeros(shape)) if p.spiking else nir.I(r=r)
        return node, leftover
    tau_mem = dt / (1.0 - b)
    v_leak = bias / (1.0 - b)
    if np.all(a == 0):
        r = tau_mem / dt
        if p.spiking:
            return nir.LIF(tau=tau_mem, r=r, v_leak=v_leak, v_threshold=th,
                           v_reset=np.zeros(shape)), None
        return nir.LI(tau=tau_mem, r=r, v_leak=v_leak), None
    tau_syn = dt / (1.0 - a)
    kw = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=v_leak,
              w_in=tau_syn / dt)
    if p.spiking:
        return nir.CubaLIF(v_threshold=th, v_reset=np.zeros(shape), **kw), None
    return nir.CubaLI(**kw), None


def to_nir(model: Graph | Mapping[str, Any], *, dt: float = 1e-4,
           metadata: Mapping[str, Any] | None = None) -> Any:
    """A ``nir.NIRGraph`` for a float IR graph (or a layer description, see
    :func:`compiler.ir.layered_graph`), with neurochip's conventions in its metadata."""
    g = model if isinstance(model, Graph) else layered_graph(**dict(model))
    if g.quantized:
        raise ModelImportError("write the float graph, not a quantized one", where="write_nir")
    if not (math.isfinite(dt) and dt > 0):
        raise ModelImportError(f"dt must be > 0, got {dt!r}", where="write_nir", field="dt")
    resets = {p.reset for p in g.populations.values()
              if p.spiking and not (np.all(p.alpha == 0) and np.all(p.beta == 0))}
    if len(resets) > 1:
        raise ModelImportError(f"populations use different reset modes {sorted(resets)}; a NIR "
                               "file records one (neurochip.reset)", where="write_nir",
                               field="reset")
    reset = resets.pop() if resets else "subtract"
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    leftovers: dict[str, NDArray[np.float64]] = {}
    for name, node in g.nodes.items():
        if isinstance(node, Input):
            nodes[name] = nir.Input(input_type=np.asarray(node.shape))
        else:
            nodes[name], lo = _neuron_node(name, node, dt)
            if lo is not None:
                leftovers[name] = lo.reshape(-1)
    for e in g.edges:
        pre, post = g.nodes[e.pre], g.nodes[e.post]
        assert isinstance(post, Neurons)
        chain: list[tuple[str, Any]] = []
        if e.delay_pre is not None or e.delay:
            d = np.full(pre.size, float(e.delay)) + (
                0.0 if e.delay_pre is None else e.delay_pre.astype(np.float64))
            chain.append((f"{e.name}.delay", nir.Delay(delay=(d * dt).reshape(pre.shape))))
        syn = e.synapses
        bias = leftovers.pop(e.post, None)
        if isinstance(syn, Conv):
            if syn.in_shape != pre.shape:
                raise ModelImportError(f"the convolution reads shape {syn.in_shape} but "
                                       f"'{e.pre}' has shape {pre.shape}; give the source "
                                       "that shape", where=f"projection '{e.name}'")
            if any(a != b for a, b in syn.padding):
                raise ModelImportError("asymmetric padding has no NIR form",
                                       where=f"projection '{e.name}'", field="padding")
            nd = len(syn.kernel)
            cls = nir.Conv1d if nd == 1 else nir.Conv2d
            spatial = syn.in_shape[1] if nd == 1 else tuple(syn.in_shape[1:])
            cb = np.zeros(syn.out_shape[0])
            if bias is not None:
                per = bias.reshape(syn.out_shape[0], -1)
                if not np.all(per == per[:, :1]):
                    raise ModelImportError("a per-neuron bias on an integrating population fed "
                                           "by a convolution has no NIR form",
                                           where=f"population '{e.post}'", field="bias")
                cb = per[:, 0].copy()
            pads = [a for a, _ in syn.padding]
            wnode = cls(input_shape=spatial, weight=_f64(syn.weight),
                        stride=syn.stride[0] if nd == 1 else tuple(syn.stride),
                        padding=pads[0] if nd == 1 else tuple(pads),
                        dilation=syn.dilation[0] if nd == 1 else tuple(syn.dilation),
                        groups=syn.groups, bias=cb)
            if len(pre.shape) != len(syn.in_shape):
                raise ModelImportError("shape mismatch", where=f"projection '{e.name}'")
            chain.append((e.name, wnode))
            if syn.out_shape != post.shape:
                chain.append((f"{e.name}.flatten", nir.Flatten(
                    input_type={"input": np.asarray(syn.out_shape)}, start_dim=0, end_dim=-1)))
        else:
            if len(pre.shape) > 1:
                chain.insert(0, (f"{e.name}.flatten", nir.Flatten(
                    input_type={"input": np.asarray(pre.shape)}, start_dim=0, end_dim=-1)))
            W = _f64(syn.weight if isinstance(syn, Dense) else syn.to_csr().toarray())
            wnode = (nir.Affine(weight=W, bias=bias) if bias is not None
                     else nir.Linear(weight=W))
            chain.append((e.name, wnode))
        if e.delay_post is not None:
            chain.append((f"{e.name}.delay_post", nir.Delay(
                delay=(e.delay_post.astype(np.float64) * dt))))
        prev = e.pre
        for cname, cnode in chain:
            if cname in nodes:
                raise ModelImportError(f"node name {cname!r} is taken", where="write_nir")
            nodes[cname] = cnode
            edges.append((prev, cname))
            prev = cname
        edges.append((prev, e.post))
    if leftovers:
        name = next(iter(leftovers))
        raise ModelImportError("an integrating population (beta = 1) with a bias needs an "
                               "incoming dense or conv projection to carry it in NIR",
                               where=f"population '{name}'", field="bias")
    for oname, src in g.outputs.items():
        oname_n = oname if oname not in nodes else f"{oname}.out"
        nodes[oname_n] = nir.Output(output_type=np.asarray(g.nodes[src].shape))
        edges.append((src, oname_n))
    md: dict[str, Any] = {"neurochip.dt": float(dt), "neurochip.decay": "euler",
                          "neurochip.reset": reset, "neurochip.synaptic_delay": 1,
                          "neurochip.version": __version__}
    for k, v in (metadata or {}).items():
        if k.startswith("neurochip.") and k in md and v != md[k]:
            raise ModelImportError(f"metadata {k}={v!r} contradicts the graph ({md[k]!r})",
                                   where="write_nir", field="metadata")
        md[str(k)] = v
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=md, type_check=False)


def write_nir(model: Graph | Mapping[str, Any], path: str | Path,
              metadata: Mapping[str, Any] | None = None, *, dt: float = 1e-4) -> Path:
    """Write ``model`` (a float IR graph or a layer description) as a ``.nir`` file.

    See :func:`to_nir`; ``metadata`` adds keys to the top graph's metadata. Returns the path.
    """
    g = to_nir(model, dt=dt, metadata=metadata)
    p = Path(path)
    with atomic_path(p, suffix=".nir") as tmp:
        nir.write(str(tmp), g)
    return p
