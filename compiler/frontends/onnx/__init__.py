"""ONNX frontend: a narrow, explicit convention for spiking networks. The only module
importing ``onnx``.

ONNX has no spiking neurons, so neurochip reads ONNX graphs that follow this convention
(and rejects everything else with a :class:`~neurochip.core.errors.ModelImportError` naming
the node and its op type):

* **One time step.** The graph computes one step of the network; graph inputs are spike
  tensors with a leading batch dimension (``[N, n]`` or ``[N, C, H, W]``, N symbolic or 1).
* **Neurons** are custom-domain nodes, domain ``"neurochip"`` (opset version 1):

  ``LIF(x[, w_rec])`` spiking current-based LIF, attributes ``alpha``, ``beta``
  (discrete decays in [0, 1]), ``threshold`` (float, or floats per neuron), optional
  ``bias`` (floats, a constant membrane input per neuron) and ``reset``
  ("zero" | "subtract"; default: metadata_props ``neurochip.reset``, else "subtract").
  The optional second input ``w_rec`` is an initializer of shape (n, n): recurrent
  weights, applied one step late like every projection. Its output is the spike tensor.

  ``LI(x)`` non-spiking readout (leaky integrator): ``alpha``, ``beta``, optional ``bias``;
  its output (the voltage) may only be a graph output.

  Both run the update of docs/conventions.md section 1 with x as the synaptic input.
* **Linear layers** between them, default domain: ``Gemm`` (transA = 0, B initializer),
  ``MatMul`` (initializer weights, (in, out)), ``Add`` (of an initializer: a bias; of two
  tensors: their sum), ``Mul`` (by an initializer: an elementwise scale), ``Conv``
  (initializer weights; strides, pads, dilations, group; auto_pad NOTSET/VALID/SAME_*),
  ``AveragePool`` (no ceil_mode), ``Flatten``, ``Reshape``, ``Identity``, ``Squeeze``,
  ``Unsqueeze`` and ``Constant``. A bias in front of a neuron is folded into its membrane
  bias (exactly when alpha = 0, else at its steady state, noted in the import notes).
* **Outputs**: every graph output must be the output of a neuron node (possibly through
  Flatten/Reshape); it is recorded as (population, "spikes" | "v").

Population names are the neuron nodes' names (``/`` becomes ``.``, a leading ``/`` is
dropped; a node without a name is named after its output tensor).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import scipy.sparse as sp
from numpy.typing import NDArray
from onnx import numpy_helper

from compiler.frontends.bias import add_bias_source, input_depths
from compiler.frontends.linear import LinearOp, apply_op, check_finite, compose
from compiler.frontends.onnx.ann import DEFAULT_PERCENTILE, activation_scales
from compiler.frontends.onnx.cells import (
    CellModel,
    CellRegion,
    feedback_inputs,
    find_cells,
    identify,
)
from compiler.ir import Conv, Dense, Graph, Input, IRError, Neurons, Projection, Sparse, pool
from compiler.ir.fields import Decay
from neurochip.core.errors import ModelImportError

__all__ = ["DOMAIN", "LIMITS", "NEURON_OPS", "SUPPORTED_OPS", "ONNXImportWarning", "from_onnx",
           "read_onnx"]

DOMAIN = "neurochip"
NEURON_OPS = ("LIF", "LI")
SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Mul", "Conv", "AveragePool", "Flatten", "Reshape",
                 "Identity", "Squeeze", "Unsqueeze", "Constant")
_WIRE_OPS = ("Flatten", "Reshape", "Identity", "Squeeze", "Unsqueeze")
#: Bounds on what a file may ask for (a hostile file gets a ModelImportError, field "size").
LIMITS = {"file_bytes": 1 << 30, "nodes": 100_000, "tensor_elements": 1 << 26,
          "total_elements": 1 << 28, "neurons": 1 << 22}


class ONNXImportWarning(UserWarning):
    """An import note worth seeing (an approximation)."""


def _imp(where: str, msg: str, fld: str | None = None) -> ModelImportError:
    return ModelImportError(msg, where=where, field=fld)


@dataclass
class _Expr:
    """The value of a tensor: sum over terms of (linear path applied to a source) + bias."""

    shape: tuple[int, ...]
    terms: list[tuple[str, list[str], list[LinearOp]]] = field(default_factory=list)
    bias: NDArray[np.float64] | None = None
    voltage_of: str | None = None  # set when the tensor is a readout's voltage

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _clean(name: str) -> str:
    n = name.lstrip("/").replace("/", ".")
    n = re.sub(r"[^A-Za-z0-9_.:\-]", "_", n)
    return n or "node"


def read_onnx(path: str | Path, *, reset: str | None = None, ann_calibration: Any = None,
              ann_percentile: float = DEFAULT_PERCENTILE) -> Graph:
    """Read an ``.onnx`` file (the convention, exported SNN cells or a ReLU ANN) into a
    float IR graph. The file is at most :data:`LIMITS` ``file_bytes`` long; external
    tensor data is refused (it would be read from other files)."""
    p = Path(path)
    if not p.exists():
        raise _imp(f"file {p}", "does not exist")
    size = p.stat().st_size
    if size > LIMITS["file_bytes"]:
        raise _imp(f"file {p}", f"is {size} bytes, over the limit of {LIMITS['file_bytes']}",
                   "size")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise _imp(f"file {p}", f"not a readable ONNX file: {exc}") from None
    return from_onnx(model, reset=reset, source=str(p), ann_calibration=ann_calibration,
                     ann_percentile=ann_percentile)


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _s(v: Any) -> Any:
    return v.decode("utf8") if isinstance(v, bytes) else v


def _check_bounds(model: Any, source: str) -> None:
    g = model.graph
    if len(g.node) > LIMITS["nodes"]:
        raise _imp(source, f"has {len(g.node)} nodes, over the limit of {LIMITS['nodes']}",
                   "size")
    total = 0
    for t in g.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise _imp(f"initializer '{t.name}'", "stores its data in an external file; "
                       "neurochip reads self-contained files only", "data_location")
        n = math.prod(int(d) for d in t.dims)
        if any(int(d) < 0 for d in t.dims) or n > LIMITS["tensor_elements"]:
            raise _imp(f"initializer '{t.name}'", f"has dims {list(t.dims)}, over the limit of "
                       f"{LIMITS['tensor_elements']} elements", "size")
        total += n
    if total > LIMITS["total_elements"]:
        raise _imp(source, f"holds {total} weight values, over the limit of "
                   f"{LIMITS['total_elements']}", "size")


def _fold(node: Any, label: str, ins: list[NDArray[Any]], opsets: Any) -> list[NDArray[Any]]:
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    where = f"node '{label}' ({node.op_type})"
    want = 0.0  # elements the op would make, checked before it runs
    if node.op_type in ("ConstantOfShape", "Expand") and len(ins) >= 1:
        shp = np.asarray(ins[-1] if node.op_type == "Expand" else ins[0]).reshape(-1)
        want = float(np.prod(np.maximum(shp.astype(np.float64), 1)))
        if node.op_type == "Expand":
            want = max(want, float(np.asarray(ins[0]).size))
    elif node.op_type == "Tile" and len(ins) == 2:
        want = float(np.asarray(ins[0]).size) * float(np.prod(np.asarray(ins[1], np.float64)))
    elif node.op_type == "Range" and len(ins) == 3:
        a, b, d = (float(np.asarray(v).reshape(-1)[0]) for v in ins)
        want = abs((b - a) / d) if d else math.inf
    if want > LIMITS["tensor_elements"]:
        raise _imp(where, f"would make a constant of {want:.0f} elements, over the limit of "
                   f"{LIMITS['tensor_elements']}", "size")
    names = [f"in{i}" for i in range(len(ins))]
    nd = onnx.helper.make_node(node.op_type, [names[i] if t else "" for i, t in
                                              enumerate(node.input)],
                               [f"out{i}" for i in range(len(node.output))], domain=node.domain)
    nd.attribute.extend(node.attribute)
    gr = onnx.helper.make_graph(
        [nd], "fold", [], [onnx.helper.make_tensor_value_info(f"out{i}", 0, None)
                           for i in range(len(node.output))],
        initializer=[numpy_helper.from_array(np.asarray(v), nm) for nm, v, t in
                     zip(names, ins, node.input) if t])
    try:
        res = ReferenceEvaluator(onnx.helper.make_model(gr, opset_imports=list(opsets))).run(
            None, {})
    except Exception as exc:  # the reference evaluator's errors are plain exceptions
        raise _imp(where, f"cannot be evaluated on its constant inputs ({type(exc).__name__}: "
                   f"{exc})", "input") from None
    out = [np.asarray(r) for r in res]
    for r in out:
        if r.size > LIMITS["tensor_elements"]:
            raise _imp(where, f"makes a constant of {r.size} elements, over the limit of "
                       f"{LIMITS['tensor_elements']}", "size")
    return out


def _fold_constants(g: Any, consts: dict[str, NDArray[Any]], opsets: Any) -> None:
    """Every tensor computed from constants only (Constant nodes, ops on initializers)."""
    for idx, node in enumerate(g.node):
        label = node.name or f"{node.op_type}_{idx}"
        if (node.domain or "") not in ("", "ai.onnx"):
            continue
        if node.op_type == "Constant":
            a = _attrs(node)
            if "value" in a:
                consts[node.output[0]] = numpy_helper.to_array(a["value"])
            continue
        if node.input and all(not t or t in consts for t in node.input) and node.op_type \
                not in ("Gemm", "MatMul", "Conv"):
            outs = _fold(node, label, [consts.get(t, np.zeros(0)) for t in node.input], opsets)
            for t, v in zip(node.output, outs):
                consts[t] = v


def from_onnx(model: Any, *, reset: str | None = None, source: str = "<ModelProto>",
              ann_calibration: Any = None, ann_percentile: float = DEFAULT_PERCENTILE
              ) -> Graph:
    """Convert an ONNX ``ModelProto`` into a float IR graph: the neurochip convention,
    SNN cells exported with torch.onnx (:mod:`.cells`), or a ReLU classifier converted by
    rate coding (:mod:`.ann`, needs ``ann_calibration``)."""
    if reset is not None and reset not in ("zero", "subtract"):
        raise _imp("ONNX import", f"reset must be 'zero' or 'subtract', got {reset!r}", "reset")
    _check_bounds(model, source)
    g = model.graph
    opsets = list(model.opset_import)
    meta = {p.key: p.value for p in model.metadata_props}
    m_reset = meta.get("neurochip.reset")
    if m_reset is not None and m_reset not in ("zero", "subtract"):
        raise _imp(source, f"metadata neurochip.reset = {m_reset!r}", "metadata_props")
    default_reset = reset or m_reset or "subtract"
    notes: list[str] = []
    consts: dict[str, NDArray[Any]] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    values: dict[str, _Expr] = {}
    nodes: dict[str, Input | Neurons] = {}
    edges: list[Projection] = []
    used_names: set[str] = set()
    convention = any((n.domain or "") == DOMAIN for n in g.node)
    if not convention:
        _fold_constants(g, consts, opsets)
    regions, state_inputs = ([], set()) if convention else find_cells(g, consts)
    feedback = feedback_inputs(regions, g)
    cell_names: dict[int, str] = {}

    def cell_name(r: CellRegion) -> str:
        if id(r) not in cell_names:
            scope = r.label.lstrip("/").rsplit("/", 1)[0] if "/" in r.label.lstrip("/") else ""
            cell_names[id(r)] = _clean(scope) if scope else f"cell{len(cell_names) + 1}"
        return cell_names[id(r)]
    ann = not convention and not regions and any(n.op_type == "Relu" for n in g.node)
    lam: dict[str, float] = {}
    conversion: dict[str, Any] | None = None
    if ann:
        relus = [n.output[0] for n in g.node if n.op_type == "Relu"]
        lam_in, lam = activation_scales(model, ann_calibration, relus, ann_percentile)
        conversion = {"method": "rate coding, data-based normalisation",
                      "percentile": ann_percentile, "input_scale": lam_in,
                      "encoding": "regular", "thresholds": dict(lam),
                      "decode": "argmax of the readout voltage at the last step"}
    for inp in g.input:
        if inp.name in feedback:
            # a recurrent cell's previous spikes: its own population, one step late
            r = feedback[inp.name]
            n_fb = math.prod(int(d.dim_value) for d in inp.type.tensor_type.shape.dim[1:])
            values[inp.name] = _Expr((n_fb,), [(cell_name(r), [], [])])
            continue
        if inp.name in consts or inp.name in state_inputs:
            continue  # initializers listed as inputs (older exporters); cell states
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inp.type.tensor_type.shape.dim]
        if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]) or dims[0] not in (None, 1):
            raise _imp(f"input '{inp.name}'", f"has shape {dims}; the convention needs "
                       "[batch, *features] with a symbolic or unit batch dimension", "shape")
        shape = tuple(int(d) for d in dims[1:] if d is not None)
        if math.prod(shape) > LIMITS["neurons"]:
            raise _imp(f"input '{inp.name}'", f"has {math.prod(shape)} features, over the "
                       f"limit of {LIMITS['neurons']}", "size")
        name = _clean(inp.name)
        nodes[name] = Input(shape)
        used_names.add(name)
        values[inp.name] = _Expr(shape, [(name, [], [])])
        if conversion is not None:
            conversion["input"] = inp.name
            values[inp.name] = _push(values[inp.name], name,
                                     LinearOp("scale", scale=np.full(math.prod(shape),
                                                                     conversion["input_scale"])),
                                     shape)
    region_of = {k: r for r in regions for k in r.nodes}
    pending = {id(r): r for r in regions}
    out_of = {t: r for r in regions for t in r.outputs}
    state_outs: set[str] = set()
    downstream = {t for k, nd in enumerate(g.node) for t in nd.input if k not in region_of}
    downstream |= {o.name for o in g.output if o.name not in state_inputs}
    cells_md: dict[str, Any] = {}
    carried: dict[str, NDArray[np.float64]] = {}  # cell -> constant input via the source

    def run_cell(r: CellRegion) -> None:
        pending.pop(id(r), None)
        where = f"cell at node '{r.label}'"
        x = _value(r.current, values, where)
        ds = {t for t in r.outputs if t in downstream and t not in
              {o.name for o in g.output}} or None
        cm = identify(g, r, consts, opsets, x.size, ds if ds else set())
        name = cell_name(r)
        for t in r.recurrent:  # the recurrent current joins the input current
            rec = _value(t, values, where)
            if rec.shape != x.shape and rec.size != x.size:
                raise _imp(where, f"its recurrent input has {rec.size} values for {x.size} "
                           "neurons", "input")
            if cm.amplitude != 1.0:  # the fed-back spikes carry the spike value
                rec = _Expr(rec.shape, [
                    (s_, p_, [LinearOp("scale", scale=np.full(nodes_size, cm.amplitude)),
                              *o_]) if s_ == name else (s_, p_, o_)
                    for s_, p_, o_ in rec.terms for nodes_size in [x.size]], rec.bias)
            x = _Expr(x.shape, [*x.terms, *rec.terms],
                      rec.bias if x.bias is None else (x.bias if rec.bias is None
                                                       else x.bias + rec.bias))
        _cell_population(name, where, r, cm, x, values, nodes, edges, used_names, reset,
                         notes, carried)
        state_outs.update(cm.state_outputs)
        state_outs.update(r.feedback_outputs)
        cells_md[name] = {"at": r.label, "alpha": _decay_md(cm.alpha),
                          "beta": _decay_md(cm.beta),
                          "threshold": float(np.mean(cm.threshold)), "reset": cm.reset,
                          "reset_delay": cm.delayed, "gain": float(np.mean(cm.gain)),
                          "spike_value": cm.amplitude, "agreement": cm.agreement}
        if r.recurrent:
            cells_md[name]["recurrent"] = {"input": next(f for f, rr in feedback.items()
                                                         if rr is r),
                                           "outputs": list(r.feedback_outputs)}

    for idx, node in enumerate(g.node):
        op = node.op_type
        label = node.name or f"{op}_{idx}"
        where = f"node '{label}' ({op})"
        dom = node.domain or ""
        if idx in region_of:
            r = region_of[idx]
            if id(r) in pending and idx == r.nodes[-1]:
                run_cell(r)
            continue
        for t in node.input:
            if t in out_of and id(out_of[t]) in pending:
                run_cell(out_of[t])
        if dom == DOMAIN and op in NEURON_OPS:
            _neuron(node, label, where, values, consts, nodes, edges, used_names,
                    default_reset, notes)
            continue
        if dom not in ("", "ai.onnx"):
            raise _imp(where, f"domain {dom!r} op {op} is not part of the convention "
                       f"(neurons: {DOMAIN}.{'/'.join(NEURON_OPS)})", "op_type")
        if node.output and all(t in consts for t in node.output):
            continue  # folded already
        if op == "Constant":
            a = _attrs(node)
            if "value" not in a:
                raise _imp(where, "only tensor constants ('value') are supported", "value")
            consts[node.output[0]] = numpy_helper.to_array(a["value"])
            continue
        if op == "Shape" and node.input[0] in values:
            full = np.array([1, *values[node.input[0]].shape], np.int64)  # batch 1
            a = _attrs(node)
            consts[node.output[0]] = full[int(a.get("start", 0)):a.get("end", None)]
            continue
        if node.input and all(t in consts or not t for t in node.input) and op not in (
                "Gemm", "MatMul", "Conv"):
            for t, v in zip(node.output, _fold(node, label, [consts.get(t, np.zeros(0))
                                                             for t in node.input], opsets)):
                consts[t] = v
            continue
        if op in ("Dropout", "Softmax", "LogSoftmax") and ann and node.input[0] in values:
            if op != "Dropout":
                if not any(o.name == node.output[0] for o in g.output):
                    raise _imp(where, f"{op} inside the network has no spiking form (only "
                               "at the output, where it keeps the argmax)", "op_type")
                notes.append(f"'{label}': {op} at the output is dropped (it keeps the "
                             "argmax the readout decodes)")
            values[node.output[0]] = values[node.input[0]]
            continue
        if ann and op == "Relu":
            x = _value(node.input[0], values, where)
            pname = _clean(node.name) if node.name else _clean(node.output[0])
            _population(pname, where, x, 0.0, 1.0, np.array([lam[node.output[0]]]),
                        np.zeros(x.size), "subtract", True, nodes, edges, used_names, notes)
            values[node.output[0]] = _push(
                _Expr(x.shape, [(pname, [], [])]), label,
                LinearOp("scale", scale=np.full(x.size, lam[node.output[0]])), x.shape)
            continue
        if op == "MaxPool" and ann:
            notes.append(f"'{label}': MaxPool runs as average pooling of spikes on the chip "
                         "(a maximum of rates has no synaptic form); accuracy may drop")
            values[node.output[0]] = _linear(node, "AveragePool", label, where, values, consts)
            continue
        if op == "BatchNormalization":
            values[node.output[0]] = _batchnorm(node, label, where, values, consts)
            continue
        if op not in SUPPORTED_OPS:
            why = ("a ReLU network (ANN conversion) or exported SNN cells" if not ann else
                   "the ANN conversion")
            raise _imp(where, f"op {op} is not supported: the chip runs {DOMAIN}.LIF/LI "
                       f"neurons, {why}, and the linear ops {', '.join(SUPPORTED_OPS)}",
                       "op_type")
        values[node.output[0]] = _linear(node, op, label, where, values, consts)
    for r in list(pending.values()):
        run_cell(r)
    outputs: dict[str, str] = {}
    for out in g.output:
        if out.name in state_outs:
            continue  # a cell's new state: the chip keeps it
        e = values.get(out.name)
        where = f"output '{out.name}'"
        if e is None:
            raise _imp(where, "is not computed by the graph", "output")
        if e.voltage_of is not None:
            outputs[out.name] = e.voltage_of
            continue
        if conversion is not None and not any(
                t[0] == src and not isinstance(nodes[src], Input)
                and all(o.kind != "mix" for o in t[2]) for t in e.terms for src in [t[0]]):
            name = _clean(out.name)
            _population(name, where, e, 0.0, 1.0, None, np.zeros(e.size), "subtract", False,
                        nodes, edges, used_names, notes)
            outputs[out.name] = name
            conversion["output"] = name
            continue
        if len(e.terms) == 1 and e.bias is None and all(o.kind in ("wire", "scale")
                                                        for o in e.terms[0][2]) \
                and regions and not isinstance(nodes.get(e.terms[0][0]), Input):
            outputs[out.name] = e.terms[0][0]
            continue
        if e.bias is not None or len(e.terms) != 1 or e.terms[0][0] not in nodes or any(
                o.kind != "wire" for o in e.terms[0][2]) or isinstance(
                nodes[e.terms[0][0]], Input):
            raise _imp(where, "must be the output of a neurochip.LIF/LI node (through "
                       "reshapes only): the chip outputs spikes or readout voltages", "output")
        outputs[out.name] = e.terms[0][0]
    bias_src = None
    if carried:
        depth = input_depths((k for k, v in nodes.items() if isinstance(v, Input)),
                             ((e.pre, e.post) for e in edges if e.pre != e.post))
        bias_src = add_bias_source(carried, depth, nodes, edges, used_names)
        notes.append(f"the constant inputs of {sorted(carried)} start with each cell's first "
                     f"input: an always-on neuron '{bias_src}' (one spike every step) carries "
                     "them exactly, delayed by the cell's depth")
    if regions:
        notes.append("SNN cells exported one step at a time: every weight layer adds one step "
                     "of latency on the chip, so a cell's spikes lag the framework's by one "
                     "step per layer before it")
    for n_ in notes:
        warnings.warn(n_, ONNXImportWarning, stacklevel=3)
    md: dict[str, Any] = {"import": {"format": "onnx", "source": source,
                                     "reset": default_reset,
                                     "producer": model.producer_name, "notes": notes}}
    if regions:
        md["import"]["profile"] = "exported SNN cells"
        md["import"]["cells"] = cells_md
        md["import"]["bias_source"] = bias_src
        md["import"].pop("reset")
    if conversion is not None:
        md["import"]["profile"] = "ANN conversion"
        md["import"]["conversion"] = conversion
        md["import"].pop("reset")
    try:
        return Graph(nodes, tuple(edges), outputs, md)
    except IRError as exc:
        raise _imp(source, str(exc)) from None


def _decay_md(x: Any) -> Any:
    """A cell's retention in the import metadata: a float, or a list (one per neuron)."""
    return [float(v) for v in np.asarray(x)] if np.ndim(x) else x


def _batchnorm(node: Any, label: str, where: str, values: dict[str, _Expr],
               consts: dict[str, NDArray[Any]]) -> _Expr:
    """Inference BatchNormalization folded: a per-channel scale and bias."""
    x = _value(node.input[0], values, where)
    s, b, mean, var = (_const(t, consts, where, f)
                       for t, f in zip(node.input[1:5], ("scale", "B", "mean", "var")))
    eps = float(_attrs(node).get("epsilon", 1e-5))
    C = x.shape[0]
    if any(v.size != C for v in (s, b, mean, var)):
        raise _imp(where, f"parameters of {s.size} channels for a tensor of {C} channels",
                   "scale")
    k = s / np.sqrt(var + eps)
    rep = x.size // C
    scale = np.repeat(k, rep)
    shift = np.repeat(b - mean * k, rep)
    e = _push(x, label, LinearOp("scale", scale=scale), x.shape)
    e.bias = shift if e.bias is None else e.bias + shift
    return e


def _cell_population(name: str, where: str, r: CellRegion, cm: CellModel, x: _Expr,
                     values: dict[str, _Expr], nodes: dict[str, Input | Neurons],
                     edges: list[Projection], used: set[str], reset: str | None,
                     notes: list[str], carried: dict[str, NDArray[np.float64]]) -> None:
    if reset is not None and reset != cm.reset:
        raise _imp(where, f"resets by {cm.reset!r} (read from the graph); the option "
                   f"reset={reset!r} contradicts the file", "reset")
    xs = x
    if not np.allclose(cm.gain, 1.0, rtol=1e-6):
        xs = _push(x, r.label, LinearOp("scale", scale=cm.gain.copy()), x.shape)
    # Constant inputs start with the cell's first input, as in the framework: into the
    # current (the weight layers' biases, a constant current input) and, without a synaptic
    # filter, into the membrane too, they ride on the always-on source (exact; added by
    # the caller once the depths are known). A membrane bias behind a filter stays a bias.
    current = cm.current_bias + (0.0 if xs.bias is None else xs.bias)
    membrane = np.asarray(cm.bias, np.float64)
    if np.all(np.asarray(cm.alpha) == 0.0):
        current, membrane = current + membrane, np.zeros_like(membrane)
    elif np.any(membrane):
        notes.append(f"'{name}': its constant membrane input (behind a synaptic filter) is a "
                     "bias register, which starts one step per layer before the first input")
    if np.any(current):
        carried[name] = np.asarray(current, np.float64)
    notes.extend(cm.notes)
    _population(name, where, _Expr(xs.shape, list(xs.terms)), cm.alpha, cm.beta,
                cm.threshold, membrane, cm.reset, True, nodes, edges, used, notes)
    if cm.delayed and cm.reset == "subtract" and np.any(np.asarray(cm.beta) < 1.0):
        rname = f"{name}.reset_delay"
        used.add(rname)
        w = -(1.0 - cm.beta) * cm.threshold
        edges.append(Projection(rname, name, name, Sparse(sp.diags(w, format="csr"))))
    out = _Expr(x.shape, [(name, [], [])])
    if cm.amplitude != 1.0:
        out = _push(out, r.label, LinearOp("scale", scale=np.full(x.size, cm.amplitude)),
                    x.shape)
    values[cm.spikes] = out


def _const(name: str, consts: Mapping[str, NDArray[Any]], where: str, what: str
           ) -> NDArray[np.float64]:
    if name not in consts:
        raise _imp(where, f"{what} must be an initializer (a constant), got tensor {name!r}",
                   "input")
    a = np.asarray(consts[name], np.float64)
    check_finite(a, where, what)
    return a


def _value(name: str, values: Mapping[str, _Expr], where: str) -> _Expr:
    if name not in values:
        raise _imp(where, f"reads tensor {name!r}, which is not computed from the graph "
                   "inputs", "input")
    v = values[name]
    if v.voltage_of is not None:
        raise _imp(where, f"reads the voltage of readout '{v.voltage_of}': the chip sends "
                   "spikes only", "input")
    return v


def _push(e: _Expr, label: str, op: LinearOp, shape: tuple[int, ...]) -> _Expr:
    bias = None if e.bias is None else apply_op(op, e.bias)
    if op.bias is not None:
        bias = op.bias if bias is None else bias + op.bias
    return _Expr(shape, [(s, [*path, label], [*ops, op]) for s, path, ops in e.terms], bias)


def _linear(node: Any, op: str, label: str, where: str, values: dict[str, _Expr],
            consts: dict[str, NDArray[Any]]) -> _Expr:
    a = _attrs(node)
    if op in _WIRE_OPS:
        x = _value(node.input[0], values, where)
        if op == "Flatten":
            axis = int(a.get("axis", 1))
            if axis != 1:
                raise _imp(where, f"axis={axis}: only Flatten(axis=1) (keep the batch) is "
                           "supported", "axis")
            shape: tuple[int, ...] = (x.size,)
        elif op == "Reshape":
            target = _const(node.input[1], consts, where, "shape").astype(np.int64).tolist()
            if not target or target[0] not in (0, 1, -1):
                raise _imp(where, f"shape {target} must keep the batch dimension first",
                           "shape")
            rest = [int(t) for t in target[1:]]
            if rest.count(-1) > 1:
                raise _imp(where, f"shape {target} has several -1", "shape")
            if -1 in rest:
                known = math.prod(t for t in rest if t != -1)
                rest[rest.index(-1)] = x.size // max(known, 1)
            shape = tuple(rest)
            if math.prod(shape) != x.size:
                raise _imp(where, f"shape {target} does not hold {x.size} elements", "shape")
        else:
            shape = x.shape
        return _push(x, label, LinearOp("wire"), shape)
    if op in ("Gemm", "MatMul"):
        x = _value(node.input[0], values, where)
        W = _const(node.input[1], consts, where, "weight")
        if op == "MatMul":
            if W.ndim != 2 or W.shape[0] != x.size:
                raise _imp(where, f"weight of shape {W.shape} does not take {x.size} inputs",
                           "weight")
            return _push(x, label, LinearOp("mix", syn=Dense(W.T)), (W.shape[1],))
        if int(a.get("transA", 0)):
            raise _imp(where, "transA=1 is not supported", "transA")
        Wm = (W if int(a.get("transB", 0)) else W.T) * float(a.get("alpha", 1.0))
        if Wm.ndim != 2 or Wm.shape[1] != x.size:
            raise _imp(where, f"weight of shape {W.shape} does not take {x.size} inputs",
                       "weight")
        b = None
        if len(node.input) > 2 and node.input[2]:
            b = np.broadcast_to(_const(node.input[2], consts, where, "bias").reshape(-1),
                                (Wm.shape[0],)) * float(a.get("beta", 1.0))
            b = np.array(b) if np.any(b) else None
        return _push(x, label, LinearOp("mix", syn=Dense(Wm), bias=b), (Wm.shape[0],))
    if op == "Add":
        x_name, y_name = node.input[0], node.input[1]
        if y_name in consts or x_name in consts:
            t_name, c_name = (x_name, y_name) if y_name in consts else (y_name, x_name)
            x = _value(t_name, values, where)
            c = _const(c_name, consts, where, "addend").reshape(-1)
            if c.size not in (1, x.size):
                raise _imp(where, f"addend of {c.size} values for a tensor of {x.size}",
                           "input")
            add = np.broadcast_to(c, (x.size,)).astype(np.float64)
            bias = add.copy() if x.bias is None else x.bias + add
            return _Expr(x.shape, list(x.terms), bias)
        x, y = _value(x_name, values, where), _value(y_name, values, where)
        if x.size != y.size:
            raise _imp(where, f"adds tensors of {x.size} and {y.size} elements", "input")
        total: NDArray[np.float64] | None = x.bias
        if y.bias is not None:
            total = y.bias if total is None else total + y.bias
        return _Expr(x.shape, x.terms + y.terms, total)
    if op == "Mul":
        x_name, y_name = node.input[0], node.input[1]
        c_name = y_name if y_name in consts else x_name
        t_name = x_name if c_name == y_name else y_name
        x = _value(t_name, values, where)
        s = _const(c_name, consts, where, "scale").reshape(-1)
        if s.size not in (1, x.size):
            raise _imp(where, f"scale of {s.size} values for a tensor of {x.size}", "input")
        return _push(x, label, LinearOp("scale", scale=np.broadcast_to(s, (x.size,)).copy()),
                     x.shape)
    if op == "Conv":
        x = _value(node.input[0], values, where)
        W = _const(node.input[1], consts, where, "weight")
        nd = W.ndim - 2
        if nd not in (1, 2) or len(x.shape) != nd + 1:
            raise _imp(where, f"a {nd}-D convolution of a tensor shaped {x.shape} is not "
                       "supported (1-D or 2-D, channels first)", "weight")
        strides = [int(v) for v in a.get("strides", [1] * nd)]
        dil = [int(v) for v in a.get("dilations", [1] * nd)]
        pads_flat = [int(v) for v in a.get("pads", [0] * (2 * nd))]
        auto = _s(a.get("auto_pad", "NOTSET"))
        kernel = W.shape[2:]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for n, k, s_, d in zip(x.shape[1:], kernel, strides, dil):
                out = -(-n // s_)
                tot = max(0, (out - 1) * s_ + d * (k - 1) + 1 - n)
                lo = tot // 2 if auto == "SAME_UPPER" else tot - tot // 2
                pads.append((lo, tot - lo))
        elif auto in ("NOTSET", "VALID"):
            pads = [(0, 0)] * nd if auto == "VALID" else [
                (pads_flat[i], pads_flat[i + nd]) for i in range(nd)]
        else:
            raise _imp(where, f"auto_pad {auto!r} is not supported", "auto_pad")
        try:
            conv = Conv(W, x.shape, stride=tuple(strides), padding=tuple(pads),
                        dilation=tuple(dil), groups=int(a.get("group", 1)))
        except IRError as exc:
            raise _imp(where, exc.message, exc.field) from None
        b = None
        if len(node.input) > 2 and node.input[2]:
            bc = _const(node.input[2], consts, where, "bias").reshape(-1)
            if np.any(bc):
                b = np.repeat(bc, math.prod(conv.out_shape[1:]))
        return _push(x, label, LinearOp("mix", syn=conv, bias=b), conv.out_shape)
    # AveragePool
    x = _value(node.input[0], values, where)
    if int(a.get("ceil_mode", 0)):
        raise _imp(where, "ceil_mode=1 is not supported", "ceil_mode")
    if len(x.shape) != 3:
        raise _imp(where, f"needs a (C, H, W) input, got {x.shape}", "input")
    ksize = [int(v) for v in a.get("kernel_shape", [])]
    pads_flat = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    if pads_flat[:2] != pads_flat[2:]:
        raise _imp(where, "asymmetric padding is not supported", "pads")
    if any(pads_flat) and not int(a.get("count_include_pad", 0)):
        raise _imp(where, "padding that is not counted in the average (count_include_pad=0) "
                   "is not supported", "count_include_pad")
    try:
        conv = pool("avg", x.shape, ksize, [int(v) for v in a.get("strides", ksize)],
                    padding=pads_flat[:2])
    except IRError as exc:
        raise _imp(where, exc.message, exc.field) from None
    return _push(x, label, LinearOp("mix", syn=conv), conv.out_shape)


def _neuron(node: Any, label: str, where: str, values: dict[str, _Expr],
            consts: dict[str, NDArray[Any]], nodes: dict[str, Input | Neurons],
            edges: list[Projection], used: set[str], default_reset: str,
            notes: list[str]) -> None:
    a = _attrs(node)
    op = node.op_type
    allowed = {"alpha", "beta", "threshold", "bias", "reset"} if op == "LIF" else {
        "alpha", "beta", "bias"}
    extra = set(a) - allowed
    if extra:
        raise _imp(where, f"unknown attributes {sorted(extra)} (allowed: {sorted(allowed)})",
                   sorted(extra)[0])
    for req in ("alpha", "beta") + (("threshold",) if op == "LIF" else ()):
        if req not in a:
            raise _imp(where, f"lacks the attribute {req!r}", req)
    x = _value(node.input[0], values, where)
    name = _clean(node.name) if node.name else _clean(node.output[0])
    n = x.size
    spiking = op == "LIF"
    th = np.asarray(a["threshold"], np.float64).reshape(-1) if spiking else None
    if th is not None and th.size not in (1, n):
        raise _imp(where, f"threshold has {th.size} values for {n} neurons", "threshold")
    b = np.asarray(a.get("bias", [0.0]), np.float64).reshape(-1)
    if b.size not in (1, n):
        raise _imp(where, f"bias has {b.size} values for {n} neurons", "bias")
    bias = np.broadcast_to(b, (n,)).astype(np.float64)
    _population(name, where, x, float(a["alpha"]), float(a["beta"]), th, bias,
                _s(a.get("reset", default_reset)), spiking, nodes, edges, used, notes)
    if len(node.input) > 1 and node.input[1]:
        if not spiking:
            raise _imp(where, "a readout cannot be recurrent (it emits no spikes)", "input")
        V = _const(node.input[1], consts, where, "recurrent weight")
        if V.shape != (n, n):
            raise _imp(where, f"recurrent weight has shape {V.shape}, expected ({n}, {n})",
                       "input")
        rname = f"{name}.w_rec"
        if rname in used:
            raise _imp(where, f"name {rname!r} is taken", "name")
        used.add(rname)
        edges.append(Projection(rname, name, name, Dense(V)))
    out = _Expr(x.shape, [(name, [], [])]) if spiking else _Expr(x.shape, voltage_of=name)
    values[node.output[0]] = out


def _population(name: str, where: str, x: _Expr, alpha: Decay, beta: Decay,
                th: NDArray[np.float64] | None, bias: NDArray[np.float64], reset: str,
                spiking: bool, nodes: dict[str, Input | Neurons], edges: list[Projection],
                used: set[str], notes: list[str]) -> None:
    """A population fed by the linear expression ``x``, one projection per source path."""
    if name in used:
        raise _imp(where, f"population name {name!r} is used twice", "name")
    used.add(name)
    if x.size > LIMITS["neurons"]:
        raise _imp(where, f"has {x.size} neurons, over the limit of {LIMITS['neurons']}",
                   "size")
    bias = np.asarray(bias, np.float64)
    if x.bias is not None:
        if np.any(np.asarray(alpha) >= 1.0):
            raise _imp(where, "a constant input into a synapse that never decays (alpha = 1) "
                       "grows without bound", "alpha")
        ib = x.bias
        if np.any(np.asarray(alpha) > 0):
            notes.append(f"'{name}': the bias of its input passes the synaptic filter (alpha = "
                         f"{float(np.max(alpha)):.4g}); the chip adds its steady-state value to "
                         "the membrane, so the first steps differ")
            ib = ib / (1.0 - alpha)
        bias = bias + ib
    try:
        pop = Neurons(x.shape, alpha=alpha, beta=beta, threshold=th, bias=bias,
                      reset=reset, spiking=spiking)  # type: ignore[arg-type]
    except IRError as exc:
        raise _imp(where, exc.message, exc.field) from None
    nodes[name] = pop
    for src, path, ops in x.terms:
        syn, d, dpre, dpost = compose(path, ops, nodes[src].size)
        mix = [p for p, o in zip(path, ops) if o.kind == "mix"] or path
        pname = ":".join(_clean(p) for p in mix) if mix else f"{src}:{name}"
        base, k = pname, 2
        while pname in used:
            pname = f"{base}:{k}"
            k += 1
        used.add(pname)
        edges.append(Projection(pname, src, name, syn, delay=d, delay_pre=dpre,
                                delay_post=dpost))
