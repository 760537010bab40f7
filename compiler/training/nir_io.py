"""NIR in and out for trained networks, through the compiler's own NIR frontend.

Export (:func:`export_nir`) hands the network to :func:`compiler.frontends.nir.write_nir` as
a layer description. That writer uses the forward-Euler convention at ``dt`` with unit
gains (``r = tau_mem/dt``, ``w_in = tau_syn/dt``, ``tau = dt/(1 - decay)``), ``v_leak =
b/(1 - beta)``, ``v_reset = 0``, and records neurochip's conventions in the file's metadata
(``neurochip.dt``, ``neurochip.decay``, ``neurochip.reset``, ``neurochip.synaptic_delay``,
``neurochip.version``); the compiler's reader honours them, so compiling the file gives
exactly the populations the trainer ran. Hidden layers become ``CubaLIF`` nodes (with a
recurrent ``Linear`` loop when recurrent), a non-spiking readout a ``CubaLI`` node, each
projection a ``Linear`` node named ``<layer>.w`` (``<layer>.w_rec``). The training settings
are stored under the metadata key ``neurochip.training`` (a JSON string).

Import (:func:`import_nir`) reads any NIR file the compiler reads (with its ``dt`` /
``decay`` / ``reset`` options or the file's metadata) and turns a layered graph -- input,
then dense projections into populations one after the other, each optionally recurrent,
the last one possibly a non-spiking readout -- into a :class:`SpikingNet` to fine-tune.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from compiler.training.model import LayerSpec, SpikingNet
from neurochip.core.errors import ModelImportError

__all__ = ["DEFAULT_DT", "TRAINING_KEY", "export_nir", "import_nir", "layer_description",
           "read_training_metadata"]

#: Time step written into exported files (seconds). Any positive value gives the same chip
#: model; 1 ms keeps the time constants readable.
DEFAULT_DT = 1e-3
#: Metadata key holding the training settings (JSON).
TRAINING_KEY = "neurochip.training"


def layer_description(net: SpikingNet) -> dict[str, Any]:
    """The network as the compiler's layer description (``compiler.ir.layered_graph``)."""
    layers = []
    for spec in net.layers:
        where = f"layer '{spec.name}'"
        if spec.alpha >= 1.0 or spec.beta >= 1.0:
            raise ModelImportError("NIR's CubaLIF/CubaLI need finite time constants: alpha and "
                                   "beta must be < 1 to export", where=where,
                                   field="alpha" if spec.alpha >= 1.0 else "beta")
        entry: dict[str, Any] = {
            "name": spec.name, "weight": net.params[f"{spec.name}.W"],
            "alpha": spec.alpha, "beta": spec.beta,
            "threshold": spec.threshold if spec.spiking else None, "reset": spec.reset,
        }
        if spec.bias:
            entry["bias"] = net.params[f"{spec.name}.b"]
        if spec.recurrent:
            entry["recurrent"] = net.params[f"{spec.name}.V"]
        layers.append(entry)
    return {"n_in": net.n_in, "layers": layers, "input_name": net.input_name,
            "output_name": "output"}


def export_nir(net: SpikingNet, path: str | Path, *, dt: float = DEFAULT_DT,
               training: Mapping[str, Any] | None = None) -> Path:
    """Write ``net`` as a NIR file (see the module docstring); returns the path.

    training: settings to record under ``neurochip.training`` (JSON-serialisable).
    """
    from compiler.frontends.nir import write_nir

    spiking_resets = {s.reset for s in net.layers if s.spiking}
    if len(spiking_resets) > 1:
        raise ModelImportError(f"layers use different reset modes {sorted(spiking_resets)}; a "
                               "NIR file records one", where="export_nir", field="reset")
    meta = {TRAINING_KEY: json.dumps(dict(training), sort_keys=True)} if training else None
    return write_nir(layer_description(net), Path(path), meta, dt=dt)


def read_training_metadata(path: str | Path) -> dict[str, Any]:
    """The ``neurochip.training`` settings of a file written by :func:`export_nir` ({} if none)."""
    import nir

    try:
        g = nir.read(str(path), type_check=False)
    except Exception as exc:
        raise ModelImportError(f"not a readable NIR file: {exc}", where=f"file {path}") from None
    raw = g.metadata.get(TRAINING_KEY)
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    if isinstance(raw, np.ndarray):
        raw = raw.item()
        raw = raw.decode("utf8") if isinstance(raw, bytes) else raw
    try:
        out = json.loads(str(raw))
    except json.JSONDecodeError:
        raise ModelImportError("is not valid JSON", where=f"file {path}",
                               field=TRAINING_KEY) from None
    return dict(out)


def import_nir(path: str | Path, *, dt: float | None = None, decay: str | None = None,
               reset: str | None = None) -> SpikingNet:
    """A :class:`SpikingNet` from a layered NIR network (see the module docstring).

    dt, decay, reset: as for ``neurochip.compile`` (default: the file's metadata, else the
    exporter's conventions). Per-neuron thresholds are folded into the weights (the
    compiler's normalize pass), so each layer has one threshold.
    """
    from compiler.frontends.nir import read_nir
    from compiler.ir import Dense, Input, Neurons
    from compiler.passes.normalize import normalize

    g = normalize(read_nir(path, dt=dt, decay=decay, reset=reset))
    where = f"file {path}"
    inputs = list(g.inputs)
    if len(inputs) != 1:
        raise ModelImportError(f"a trainable network has one input, this one has {inputs}",
                               where=where, field="inputs")
    in_name = inputs[0]
    incoming: dict[str, list[Any]] = {k: [] for k in g.nodes}
    for e in g.edges:
        if e.delay or e.delay_pre is not None or e.delay_post is not None:
            raise ModelImportError("synaptic delays beyond one step are not trainable here",
                                   where=f"projection '{e.name}'", field="delay")
        if not isinstance(e.synapses, Dense):
            raise ModelImportError(f"only dense projections are trainable here, got "
                                   f"{type(e.synapses).__name__}", where=f"projection '{e.name}'")
        incoming[e.post].append(e)
    in_node = g.nodes[in_name]
    assert isinstance(in_node, Input)
    layers: list[LayerSpec] = []
    params: dict[str, Any] = {}
    prev = in_name
    remaining = set(g.populations)
    while remaining:
        nxt = [k for k in remaining
               if any(e.pre == prev and e.post == k for e in incoming[k])]
        if len(nxt) != 1:
            raise ModelImportError(f"not a layered network: {len(nxt)} populations follow "
                                   f"'{prev}' (expected exactly one)", where=where)
        name = nxt[0]
        pop = g.nodes[name]
        assert isinstance(pop, Neurons)
        ff = [e for e in incoming[name] if e.pre == prev]
        rec = [e for e in incoming[name] if e.pre == name]
        other = [e for e in incoming[name] if e.pre not in (prev, name)]
        if len(ff) != 1 or len(rec) > 1 or other:
            raise ModelImportError("each population must receive one projection from the "
                                   "previous layer and at most one from itself",
                                   where=f"population '{name}'")
        if not name.isidentifier():
            raise ModelImportError("population names must be identifiers to train",
                                   where=f"population '{name}'", field="name")
        if isinstance(pop.alpha, np.ndarray) or isinstance(pop.beta, np.ndarray):
            raise ModelImportError("time constants differ between neurons; training keeps "
                                   "one decay per layer (compile such a file, or train it "
                                   "with equal time constants)", where=f"population '{name}'",
                                   field="tau")
        has_bias = bool(np.any(pop.bias != 0))
        threshold = float(pop.threshold[0]) if pop.spiking and pop.threshold is not None else 1.0
        layers.append(LayerSpec(name, pop.size, alpha=pop.alpha, beta=pop.beta,
                                threshold=threshold, reset=pop.reset, spiking=pop.spiking,
                                recurrent=bool(rec), bias=has_bias))
        params[f"{name}.W"] = np.asarray(ff[0].synapses.weight, np.float64)
        if rec:
            params[f"{name}.V"] = np.asarray(rec[0].synapses.weight, np.float64)
        if has_bias:
            params[f"{name}.b"] = np.asarray(pop.bias, np.float64)
        remaining.discard(name)
        prev = name
    return SpikingNet(in_node.size, tuple(layers), params, input_name=in_name)
