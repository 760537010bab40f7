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
from numpy.typing import NDArray
from onnx import numpy_helper

from compiler.frontends.linear import LinearOp, apply_op, check_finite, compose
from compiler.ir import Conv, Dense, Graph, Input, IRError, Neurons, Projection, pool
from neurochip.core.errors import ModelImportError

__all__ = ["DOMAIN", "NEURON_OPS", "SUPPORTED_OPS", "ONNXImportWarning", "from_onnx",
           "read_onnx"]

DOMAIN = "neurochip"
NEURON_OPS = ("LIF", "LI")
SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Mul", "Conv", "AveragePool", "Flatten", "Reshape",
                 "Identity", "Squeeze", "Unsqueeze", "Constant")
_WIRE_OPS = ("Flatten", "Reshape", "Identity", "Squeeze", "Unsqueeze")


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


def read_onnx(path: str | Path, *, reset: str | None = None) -> Graph:
    """Read an ``.onnx`` file that follows the convention above into a float IR graph."""
    p = Path(path)
    if not p.exists():
        raise _imp(f"file {p}", "does not exist")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise _imp(f"file {p}", f"not a readable ONNX file: {exc}") from None
    return from_onnx(model, reset=reset, source=str(p))


def _attrs(node: Any) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _s(v: Any) -> Any:
    return v.decode("utf8") if isinstance(v, bytes) else v


def from_onnx(model: Any, *, reset: str | None = None, source: str = "<ModelProto>") -> Graph:
    """Convert an ONNX ``ModelProto`` following the convention into a float IR graph."""
    if reset is not None and reset not in ("zero", "subtract"):
        raise _imp("ONNX import", f"reset must be 'zero' or 'subtract', got {reset!r}", "reset")
    g = model.graph
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
    for inp in g.input:
        if inp.name in consts:
            continue  # initializers listed as inputs (older exporters)
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inp.type.tensor_type.shape.dim]
        if len(dims) < 2 or any(d is None or d <= 0 for d in dims[1:]) or dims[0] not in (None, 1):
            raise _imp(f"input '{inp.name}'", f"has shape {dims}; the convention needs "
                       "[batch, *features] with a symbolic or unit batch dimension", "shape")
        name = _clean(inp.name)
        shape = tuple(int(d) for d in dims[1:] if d is not None)
        nodes[name] = Input(shape)
        used_names.add(name)
        values[inp.name] = _Expr(shape, [(name, [], [])])
    for idx, node in enumerate(g.node):
        op = node.op_type
        label = node.name or f"{op}_{idx}"
        where = f"node '{label}' ({op})"
        dom = node.domain or ""
        if dom == DOMAIN and op in NEURON_OPS:
            _neuron(node, label, where, values, consts, nodes, edges, used_names,
                    default_reset, notes)
            continue
        if dom not in ("", "ai.onnx"):
            raise _imp(where, f"domain {dom!r} op {op} is not part of the convention "
                       f"(neurons: {DOMAIN}.{'/'.join(NEURON_OPS)})", "op_type")
        if op not in SUPPORTED_OPS:
            raise _imp(where, f"op {op} is not supported: the chip runs {DOMAIN}.LIF/LI "
                       f"neurons and the linear ops {', '.join(SUPPORTED_OPS)}", "op_type")
        if op == "Constant":
            a = _attrs(node)
            if "value" not in a:
                raise _imp(where, "only tensor constants ('value') are supported", "value")
            consts[node.output[0]] = numpy_helper.to_array(a["value"])
            continue
        values[node.output[0]] = _linear(node, op, label, where, values, consts)
    outputs: dict[str, str] = {}
    for out in g.output:
        e = values.get(out.name)
        where = f"output '{out.name}'"
        if e is None:
            raise _imp(where, "is not computed by the graph", "output")
        if e.voltage_of is not None:
            outputs[out.name] = e.voltage_of
            continue
        if e.bias is not None or len(e.terms) != 1 or e.terms[0][0] not in nodes or any(
                o.kind != "wire" for o in e.terms[0][2]) or isinstance(
                nodes[e.terms[0][0]], Input):
            raise _imp(where, "must be the output of a neurochip.LIF/LI node (through "
                       "reshapes only): the chip outputs spikes or readout voltages", "output")
        outputs[out.name] = e.terms[0][0]
    for n_ in notes:
        warnings.warn(n_, ONNXImportWarning, stacklevel=3)
    md = {"import": {"format": "onnx", "source": source, "reset": default_reset,
                     "producer": model.producer_name, "notes": notes}}
    try:
        return Graph(nodes, tuple(edges), outputs, md)
    except IRError as exc:
        raise _imp(source, str(exc)) from None


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
    if name in used:
        raise _imp(where, f"population name {name!r} is used twice", "name")
    used.add(name)
    n = x.size
    spiking = op == "LIF"
    th = np.asarray(a["threshold"], np.float64).reshape(-1) if spiking else None
    if th is not None and th.size not in (1, n):
        raise _imp(where, f"threshold has {th.size} values for {n} neurons", "threshold")
    b = np.asarray(a.get("bias", [0.0]), np.float64).reshape(-1)
    if b.size not in (1, n):
        raise _imp(where, f"bias has {b.size} values for {n} neurons", "bias")
    bias = np.broadcast_to(b, (n,)).astype(np.float64)
    alpha = float(a["alpha"])
    reset = _s(a.get("reset", default_reset))
    if x.bias is not None:
        if alpha >= 1.0:
            raise _imp(where, "a constant input into a synapse that never decays (alpha = 1) "
                       "grows without bound", "alpha")
        ib = x.bias
        if alpha > 0:
            notes.append(f"'{name}': the bias of its input passes the synaptic filter (alpha = "
                         f"{alpha:.4g}); the chip adds its steady-state value to the membrane, "
                         "so the first steps differ")
            ib = ib / (1.0 - alpha)
        bias = bias + ib
    try:
        pop = Neurons(x.shape, alpha=alpha, beta=float(a["beta"]), threshold=th, bias=bias,
                      reset=reset, spiking=spiking)
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

