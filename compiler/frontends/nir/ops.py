"""Linear nodes (Affine, Linear, Scale, Delay, Conv, pooling, wires) as linear operators,
composed by :func:`compiler.frontends.linear.compose` along each path.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.frontends.linear import LinearOp, check_finite
from compiler.frontends.nir.base import WIRES, Discretisation, err, node_where, tname
from compiler.frontends.nir.flatten import Flat
from compiler.frontends.nir.shapes import Shapes
from compiler.ir import Dense

__all__ = ["LinearOps"]


class LinearOps:
    def __init__(self, flat: Flat, shapes: Shapes, disc: Discretisation) -> None:
        self.flat, self.shapes, self.disc = flat, shapes, disc
        self.memo: dict[str, LinearOp] = {}

    def of(self, name: str) -> LinearOp:
        if name not in self.memo:
            self.memo[name] = self._make(name)
        return self.memo[name]

    def _make(self, name: str) -> LinearOp:
        node = self.flat.nodes[name]
        t = tname(node)
        w = node_where(name, node)
        n_in = math.prod(self.shapes.input_of(name))
        if t in WIRES:
            return LinearOp("wire")
        if t in ("Affine", "Linear"):
            W = np.asarray(node.weight, np.float64)
            if W.shape[1] != n_in:
                raise err(w, f"weight expects {W.shape[1]} inputs, gets {n_in}", "weight")
            check_finite(W, w, "weight")
            b = None
            if t == "Affine":
                b = np.asarray(node.bias, np.float64).reshape(-1)
                if b.size == 1:
                    b = np.full(W.shape[0], float(b[0]))
                if b.shape != (W.shape[0],):
                    raise err(w, f"bias has shape {np.asarray(node.bias).shape}, expected "
                              f"({W.shape[0]},)", "bias")
                check_finite(b, w, "bias")
            return LinearOp("mix", syn=Dense(W), bias=b if b is not None and np.any(b) else None)
        if t == "Scale":
            s = np.asarray(node.scale, np.float64).reshape(-1)
            if s.size == 1:
                s = np.full(n_in, float(s[0]))
            if s.size != n_in:
                raise err(w, f"scale has {s.size} values, its input {n_in}", "scale")
            check_finite(s, w, "scale")
            return LinearOp("scale", scale=s)
        if t == "Delay":
            d = np.asarray(node.delay, np.float64).reshape(-1)
            if d.size == 1:
                d = np.full(n_in, float(d[0]))
            if d.size != n_in:
                raise err(w, f"delay has {d.size} values, its input {n_in}", "delay")
            if self.disc.dt is None:
                raise err(w, "a Delay needs dt (pass dt=...)", "delay")
            steps = d / self.disc.dt
            r = np.rint(steps)
            if np.any(np.abs(steps - r) > 1e-6 * np.maximum(1.0, np.abs(r))) or np.any(r < 0):
                raise err(w, f"delays {d.tolist()[:4]}... s are not whole non-negative "
                          f"multiples of dt = {self.disc.dt}", "delay")
            return LinearOp("delay", delay=r.astype(np.int64))
        conv = self.shapes.conv(name)
        bias = None
        if t in ("Conv1d", "Conv2d"):
            b = np.asarray(node.bias, np.float64).reshape(-1)
            c_out = conv.out_shape[0]
            if b.size == 1:
                b = np.full(c_out, float(b[0]))
            if b.size != c_out:
                raise err(w, f"bias has {b.size} values for {c_out} channels", "bias")
            check_finite(b, w, "bias")
            check_finite(np.asarray(conv.weight, np.float64), w, "weight")
            if np.any(b):
                bias = np.repeat(b, math.prod(conv.out_shape[1:]))
        return LinearOp("mix", syn=conv, bias=bias)
