"""Normalize pass: bring a float IR graph into the form the quantizer maps one-to-one.

The chip has one threshold register per population, so a spiking population whose
neurons have different thresholds is rescaled: neuron i's incoming weights and bias are
multiplied by ``c_i = theta_ref / theta_i`` (``theta_ref`` the population's largest
threshold). Its membrane U_i becomes ``c_i * U_i``; ``U > theta`` and both reset modes are
invariant under that scaling, so every spike train is unchanged (readouts are never
rescaled: their voltage is the output).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.ir import Conv, Dense, Graph, IRError, Neurons, Projection, Sparse, Synapses

__all__ = ["normalize", "scale_rows"]


def scale_rows(syn: Synapses, c: NDArray[np.float64]) -> Synapses:
    """Synapses whose post neuron i receives ``c[i]`` times its input.

    Keeps the structure when it can (a scalar factor, or one factor per output channel of
    a convolution); otherwise the convolution is expanded to a sparse matrix.
    """
    c = np.asarray(c, np.float64).reshape(-1)
    if c.size and np.all(c == c[0]):
        return syn.with_values(np.asarray(syn.values, np.float64) * c[0])
    if isinstance(syn, Dense):
        return Dense(np.asarray(syn.weight, np.float64) * c[:, None])
    if isinstance(syn, Conv):
        per_ch = c.reshape(syn.out_shape[0], -1)
        if np.all(per_ch == per_ch[:, :1]):
            w = np.asarray(syn.weight, np.float64)
            shape = (-1,) + (1,) * (w.ndim - 1)
            return syn.with_values(w * per_ch[:, 0].reshape(shape))
    m = syn.to_csr()
    return Sparse(sp.diags(c) @ sp.csr_matrix(m, dtype=np.float64))


def _fold_thresholds(graph: Graph, name: str, pop: Neurons
                     ) -> tuple[Neurons, dict[str, Projection]]:
    assert pop.threshold is not None
    th = pop.threshold
    ref = float(th.max())
    if np.any(th == 0):
        raise IRError("neurons with threshold 0 and neurons with a positive threshold cannot "
                      "share one chip threshold register; split the population",
                      where=f"population '{name}'", field="threshold")
    c = ref / th
    new_edges = {e.name: replace(e, synapses=scale_rows(e.synapses, c))
                 for e in graph.incoming(name)}
    return pop.with_(threshold=np.full(pop.size, ref), bias=pop.bias * c), new_edges


def normalize(graph: Graph) -> Graph:
    """Fold per-neuron thresholds into weights and biases (pure; see the module docstring)."""
    if graph.quantized:
        raise IRError("normalize runs on float graphs, this one is already quantized",
                      where="normalize")
    nodes = dict(graph.nodes)
    edges = {e.name: e for e in graph.edges}
    for name, pop in graph.populations.items():
        if not pop.spiking or pop.threshold is None:
            continue
        if np.all(pop.threshold == pop.threshold[0]):
            continue
        g = Graph(nodes, tuple(edges.values()), graph.outputs, graph.metadata)
        new_pop, new_edges = _fold_thresholds(g, name, pop)
        nodes[name] = new_pop
        edges.update(new_edges)
    return Graph(nodes, tuple(edges.values()), graph.outputs, graph.metadata)
