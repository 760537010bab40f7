"""The shape of every node of a flattened graph, and its convolutions as IR ``Conv``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler.frontends.nir.base import NEURON_TYPES, PORT, as_str, err, node_where, tname
from compiler.frontends.nir.flatten import Flat
from compiler.ir import Conv, IRError, pool
from neurochip.core.errors import ModelImportError
from neurochip.core.safeio import check_alloc

#: neurons one imported layer may have (far above any chip's capacity)
MAX_LAYER_NEURONS = 1 << 24

__all__ = ["Shapes"]


class Shapes:
    def __init__(self, flat: Flat, preds: dict[str, list[str]]) -> None:
        self.flat = flat
        self.preds = preds
        self.memo: dict[str, tuple[int, ...]] = {}
        self.busy: set[str] = set()

    def of(self, name: str) -> tuple[int, ...]:
        if name in self.memo:
            return self.memo[name]
        node = self.flat.nodes[name]
        t = tname(node)
        if name in self.busy:
            raise err(node_where(name, node), "is on a cycle of linear nodes with no neuron "
                      "on it (a cycle needs a neuron to break it)", "edges")
        self.busy.add(name)
        try:
            shp = self._compute(name, node, t)
        finally:
            self.busy.discard(name)
        self.memo[name] = shp
        return shp

    def input_of(self, name: str) -> tuple[int, ...]:
        node = self.flat.nodes[name]
        ps = self.preds.get(name, [])
        if not ps:
            raise err(node_where(name, node), "has no incoming edge: nothing drives it",
                      "edges")
        shapes = [self.of(p) for p in ps]
        sizes = {math.prod(s) for s in shapes}
        if len(sizes) != 1:
            raise err(node_where(name, node), f"its inputs have different sizes "
                      f"{[tuple(s) for s in shapes]} ({ps})", "input")
        best = max(shapes, key=len)
        return tuple(best)

    def _compute(self, name: str, node: Any, t: str) -> tuple[int, ...]:
        w = node_where(name, node)
        if t == "Input":
            return _shape_arr(node.input_type["input"], w)
        if t == "Output":
            return self.input_of(name)
        if t == PORT or (t == "Delay" and np.asarray(node.delay).ndim == 0):
            return self.input_of(name)
        if t in NEURON_TYPES:
            key = {"CubaLIF": "v_threshold", "LIF": "v_threshold", "IF": "v_threshold",
                   "Threshold": "threshold", "CubaLI": "v_leak", "LI": "v_leak", "I": "r"}[t]
            shp = np.asarray(getattr(node, key)).shape
            if shp == ():
                return self.input_of(name)
            return tuple(int(s) for s in shp)
        if t in ("Affine", "Linear"):
            W = np.asarray(node.weight)
            if W.ndim != 2:
                raise err(w, f"weight of shape {W.shape}: stacked (batched) weights are not "
                          "supported; expected (out, in)", "weight")
            return (int(W.shape[0]),)
        if t == "Scale":
            shp = np.asarray(node.scale).shape
            return tuple(int(s) for s in shp) if shp else self.input_of(name)
        if t == "Delay":
            return tuple(int(s) for s in np.asarray(node.delay).shape)
        if t == "Flatten":
            ins = self.input_of(name)
            it = node.input_type.get("input") if isinstance(node.input_type, dict) else None
            if it is not None and np.asarray(it).size:
                decl = _shape_arr(it, w)
                if math.prod(decl) == math.prod(ins):
                    ins = decl
            nd = len(ins)
            s, e = int(node.start_dim), int(node.end_dim)
            s = s + nd if s < 0 else s
            e = e + nd if e < 0 else e
            if not 0 <= s <= e < nd:
                raise err(w, f"start_dim={node.start_dim}, end_dim={node.end_dim} do not fit "
                          f"its input shape {ins}", "start_dim")
            return (*ins[:s], math.prod(ins[s:e + 1]), *ins[e + 1:])
        if t in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
            return self.conv(name).out_shape
        raise err(w, "unsupported node type", "type")  # pragma: no cover - filtered earlier

    def conv(self, name: str) -> Conv:
        node = self.flat.nodes[name]
        t = tname(node)
        w = node_where(name, node)
        ins = self.input_of(name)
        if t in ("SumPool2d", "AvgPool2d"):
            if len(ins) != 3:
                raise err(w, f"needs a (C, H, W) input, its input has shape {ins}", "input")
            pad = _ints(node.padding, 2, w, "padding")
            try:
                return pool("sum" if t == "SumPool2d" else "avg", ins,
                            _ints(node.kernel_size, 2, w, "kernel_size"),
                            _ints(node.stride, 2, w, "stride"), padding=pad)
            except IRError as exc:
                raise err(w, exc.message, exc.field) from None
        W = np.asarray(node.weight, np.float64)
        nd = 1 if t == "Conv1d" else 2
        if W.ndim != nd + 2:
            raise err(w, f"weight must be (C_out, C_in/groups, *kernel) with {nd} spatial "
                      f"dims, got {W.shape}", "weight")
        groups = int(np.asarray(node.groups))
        c_in = int(W.shape[1]) * groups
        decl = node.input_shape
        if decl is not None and np.asarray(decl).size:
            spatial = _ints(decl, nd, w, "input_shape")
            full = (c_in, *spatial)
            if math.prod(full) != math.prod(ins):
                raise err(w, f"input_shape {spatial} with {c_in} channels does not match its "
                          f"input of shape {ins}", "input_shape")
            ins = full
        elif len(ins) != nd + 1:
            raise err(w, f"needs a (C, *spatial) input with {nd} spatial dims (or an "
                      f"input_shape), its input has shape {ins}", "input_shape")
        stride = _ints(node.stride, nd, w, "stride")
        dil = _ints(node.dilation, nd, w, "dilation")
        pad = node.padding
        kernel = W.shape[2:]
        if isinstance(pad, (str, bytes)) or (
                isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO"):
            ptxt = as_str(pad.item() if isinstance(pad, np.ndarray) else pad)
            if ptxt == "valid":
                pads = [(0, 0)] * nd
            elif ptxt == "same":
                if any(s != 1 for s in stride):
                    raise err(w, "padding='same' needs stride 1 (as in PyTorch)", "padding")
                pads = []
                for k, d in zip(kernel, dil):
                    tot = d * (k - 1)
                    pads.append((tot // 2, tot - tot // 2))
            else:
                raise err(w, f"padding {ptxt!r} is not 'same', 'valid' or ints", "padding")
        else:
            pads = [(p, p) for p in _ints(pad, nd, w, "padding")]
        # bound the layer before it is built: neurons and synapses it would create
        if any(s_ <= 0 for s_ in stride) or any(d <= 0 for d in dil) or \
                any(a < 0 or b < 0 for a, b in pads):
            raise err(w, f"stride {stride} and dilation {dil} must be positive, padding "
                      f"{pads} non-negative", "padding")
        out_sp = [(n + a + b - d * (k - 1) - 1) // s_ + 1
                  for n, (a, b), d, k, s_ in zip(ins[1:], pads, dil, kernel, stride)]
        out_n = check_alloc((W.shape[0], *[max(o, 0) for o in out_sp]), w, "padding",
                            MAX_LAYER_NEURONS, ModelImportError)
        check_alloc((*out_n, *W.shape[1:]), w, "weight", error=ModelImportError)
        try:
            return Conv(W, ins, stride=stride, padding=tuple(pads), dilation=dil, groups=groups)
        except IRError as exc:
            raise err(w, exc.message, exc.field) from None


def _shape_arr(v: Any, where: str) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).reshape(-1)
    if not a.size or np.any(a <= 0):
        raise err(where, f"has no usable shape ({v!r})", "shape")
    return tuple(int(x) for x in a)


def _ints(v: Any, n: int, where: str, fld: str) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).reshape(-1)
    try:
        ai = a.astype(np.int64)
    except (TypeError, ValueError):
        raise err(where, f"{fld} must be integers, got {v!r}", fld) from None
    if ai.size == 1:
        ai = np.repeat(ai, n)
    if ai.size != n:
        raise err(where, f"{fld} must have {n} values, got {v!r}", fld)
    return tuple(int(x) for x in ai)
