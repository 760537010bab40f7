"""Constant inputs that start with a layer's first input: an always-on source neuron.

A trained network adds a layer's bias from the layer's first step. On the chip every
projection adds one step of latency, so a population ``d`` projections below the inputs
receives its first input at step ``d``; a bias register would start at step 0, ``d`` steps
early. A constant input of the synaptic current is instead exactly what one always-spiking
presynaptic neuron gives: a population of one neuron (no decay, bias 1 above its threshold
0.5, reset to zero) that spikes at every step, projecting ``b`` with delay ``d - 1`` so that
its first spike arrives at step ``d``. Into a population without a synaptic filter
(alpha = 0) the current is the membrane's input of that step, so a membrane bias is carried
exactly the same way. Shared by the NIR and ONNX frontends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray

from compiler.ir import Dense, Input, Neurons, Projection

__all__ = ["BIAS_SOURCE", "add_bias_source", "input_depths"]

#: the name of the always-on population (a suffix is added when the name is taken)
BIAS_SOURCE = "bias_source"
#: threshold and bias of the always-on population: U = 1 > 0.5 at every step
_ON_BIAS, _ON_THRESHOLD = 1.0, 0.5


def input_depths(inputs: Iterable[str], pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    """The fewest projections from an input to each node (breadth first over (pre, post))."""
    pairs = list(pairs)
    depth: dict[str, int] = {k: 0 for k in inputs}
    frontier = list(depth)
    while frontier:
        nxt = []
        for s, end in pairs:
            if s in frontier and end not in depth:
                depth[end] = depth[s] + 1
                nxt.append(end)
        frontier = nxt
    return depth


def add_bias_source(biases: Mapping[str, NDArray[np.float64]], depth: Mapping[str, int],
                    nodes: dict[str, Input | Neurons], edges: list[Projection],
                    used: set[str]) -> str | None:
    """Add the always-on population and one projection of ``biases[p]`` into each
    population ``p``, delayed by its depth minus one; the source's name (None: no biases)."""
    if not biases:
        return None
    name = BIAS_SOURCE
    nth = 2
    while name in nodes or name in used:
        name = f"{BIAS_SOURCE}_{nth}"
        nth += 1
    nodes[name] = Neurons((1,), alpha=0.0, beta=0.0, threshold=_ON_THRESHOLD, bias=_ON_BIAS,
                          reset="zero", spiking=True)
    used.add(name)
    for dst, b in biases.items():
        pname = f"{name}:{dst}"
        while pname in used:
            pname += "'"
        used.add(pname)
        d = max(0, depth.get(dst, 1) - 1)
        edges.append(Projection(pname, name, dst, Dense(np.asarray(b, np.float64)
                                                        .reshape(-1, 1).copy()), delay=d))
    return name
