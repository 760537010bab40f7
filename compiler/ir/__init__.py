"""The compiler's intermediate representation: a graph of populations and projections.

Small frozen dataclasses, validated when built (a malformed node raises
:class:`IRError`, never an ``assert``). A :class:`Graph` is a ``nodes`` dict (inputs and
neuron populations) plus an ``edges`` list (projections), the names of its outputs and
free metadata. The IR is *discrete*: time constants and ``dt`` are gone (the frontends
turn them into decays), and every float model in neurochip runs exactly this update, the
chip's order of operations (docs/conventions.md section 1), per neuron and step n::

    I[n] = alpha * I[n-1] + sum_c W_c @ S_c[n-1-d_c]        # current first, one-step latency
    U[n] = beta  * U[n-1] + I[n] + b                          # the membrane uses the NEW current
    S[n] = U[n] > theta                                       # strict; never for readouts
    reset "zero": U[n] <- 0 where S[n];  "subtract": U[n] <- U[n] - theta where S[n]

with ``I = U = 0`` at the start. ``S_c`` are the spikes of projection c's presynaptic node
(host inputs included) and ``d_c`` its extra delay in steps.

After the quantize pass every population carries :class:`NeuronRegisters` and every
projection integer weights, a weight exponent and a sign mode; :data:`REGISTER_TABLE` is
the one mapping from the descriptive names above to the chip's registers.

One concept per module: :mod:`~compiler.ir.nodes` (inputs, populations, their registers),
:mod:`~compiler.ir.synapses` (dense, sparse, conv), :mod:`~compiler.ir.graph` (projections,
the graph, :func:`layered_graph`), :mod:`~compiler.ir.verifier` (the verifier run between
passes), :mod:`~compiler.ir.dump` (the text dump), :mod:`~compiler.ir.fields` (the field
checks and :class:`IRError`).
"""

from __future__ import annotations

from compiler.ir.dump import format_graph
from compiler.ir.fields import IRError
from compiler.ir.graph import Graph, Projection, layered_graph
from compiler.ir.nodes import REGISTER_TABLE, Input, NeuronRegisters, Neurons, Node
from compiler.ir.synapses import Conv, Dense, Sparse, Synapses, pool
from compiler.ir.verifier import verify

__all__ = [
    "REGISTER_TABLE",
    "Conv",
    "Dense",
    "Graph",
    "IRError",
    "Input",
    "NeuronRegisters",
    "Neurons",
    "Node",
    "Projection",
    "Sparse",
    "Synapses",
    "format_graph",
    "layered_graph",
    "pool",
    "verify",
]
