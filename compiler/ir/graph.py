"""Projections and the graph: nodes by name, projections, outputs, metadata."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compiler.ir.dump import format_graph
from compiler.ir.fields import frozen_array, ir_error
from compiler.ir.nodes import Input, Neurons, Node
from compiler.ir.synapses import Conv, Dense, Sparse, Synapses
from neurochip.core import fixedpoint as fx

__all__ = ["Graph", "Projection", "layered_graph"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")


def _delay_array(v: Any, n: int, where: str, fld: str) -> NDArray[np.int64] | None:
    if v is None:
        return None
    a = np.asarray(v)
    if a.dtype.kind == "f" and not np.all(a == np.round(a)):
        raise ir_error(where, fld, "delays must be whole steps")
    a = a.astype(np.int64).reshape(-1)
    if a.shape != (n,):
        raise ir_error(where, fld, f"must hold {n} delays, got shape {np.asarray(v).shape}")
    if np.any(a < 0):
        raise ir_error(where, fld, f"delays must be >= 0, got min {int(a.min())}")
    return frozen_array(a, np.int64)


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from node ``pre`` to population ``post``, delivered ``1 + delay`` steps late.

    The delay of synapse (i, j) is ``delay + delay_pre[j] + delay_post[i]`` (the optional
    arrays come from delay nodes before or after the weights). After quantization
    ``synapses`` holds integers and ``weight_exp``, ``sign_mode`` and ``num_weight_bits``
    are set: the chip adds ``floor_shift(sum_j w_ij S_j, weight_exp) * 2**6`` to u.
    """

    name: str
    pre: str
    post: str
    synapses: Synapses
    delay: int = 0
    delay_pre: NDArray[np.int64] | None = None
    delay_post: NDArray[np.int64] | None = None
    weight_exp: int | None = None
    sign_mode: str | None = None
    num_weight_bits: int | None = None

    def __post_init__(self) -> None:
        where = f"projection '{self.name}'"
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ir_error(where, "name", "use letters, digits, '_', '.', ':' or '-'")
        if not isinstance(self.synapses, (Dense, Sparse, Conv)):
            raise ir_error(where, "synapses", f"must be Dense, Sparse or Conv, got "
                           f"{type(self.synapses).__name__}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, (int, np.integer)) \
                or self.delay < 0:
            raise ir_error(where, "delay", f"must be an int >= 0, got {self.delay!r}")
        object.__setattr__(self, "delay", int(self.delay))
        n_post, n_pre = self.synapses.shape
        object.__setattr__(self, "delay_pre", _delay_array(self.delay_pre, n_pre, where,
                                                           "delay_pre"))
        object.__setattr__(self, "delay_post", _delay_array(self.delay_post, n_post, where,
                                                            "delay_post"))
        q = (self.weight_exp, self.sign_mode, self.num_weight_bits)
        if any(x is not None for x in q) and any(x is None for x in q):
            raise ir_error(where, "weight_exp", "weight_exp, sign_mode and num_weight_bits are set "
                           "together (by the quantize pass)")
        if self.sign_mode is not None and self.sign_mode not in fx.SIGN_MODES:
            raise ir_error(where, "sign_mode", f"must be one of {fx.SIGN_MODES}")

    @property
    def quantized(self) -> bool:
        return self.weight_exp is not None

    @property
    def max_delay(self) -> int:
        d = self.delay
        if self.delay_pre is not None and self.delay_pre.size:
            d += int(self.delay_pre.max())
        if self.delay_post is not None and self.delay_post.size:
            d += int(self.delay_post.max())
        return d

    @property
    def has_delays(self) -> bool:
        """True when synapses differ in delay."""
        return any(a is not None and a.size and a.min() != a.max()
                   for a in (self.delay_pre, self.delay_post))

    def synapse_delays(self, post: NDArray[np.int64], pre: NDArray[np.int64]
                       ) -> NDArray[np.int64]:
        """Delay of each listed synapse (post[k], pre[k])."""
        d = np.full(post.shape, self.delay, np.int64)
        if self.delay_pre is not None:
            d = d + self.delay_pre[pre]
        if self.delay_post is not None:
            d = d + self.delay_post[post]
        return d


@dataclass(frozen=True, eq=False)
class Graph:
    """Nodes (inputs and populations, by name), projections, outputs and metadata.

    ``outputs`` maps an output name to the population it reads: its spikes when the
    population spikes, its voltage U (``v`` on the chip) for a non-spiking readout.
    Construction checks the structure (names, endpoints, sizes); :func:`verify` checks
    everything else.
    """

    nodes: Mapping[str, Node]
    edges: tuple[Projection, ...] = ()
    outputs: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        nodes = dict(self.nodes)
        edges = tuple(self.edges)
        outputs = dict(self.outputs)
        for name, node in nodes.items():
            where = f"node '{name}'"
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise ir_error(where, "name", "use letters, digits, '_', '.', ':' or '-'")
            if not isinstance(node, (Input, Neurons)):
                raise ir_error(where, None, f"must be an Input or Neurons, got "
                               f"{type(node).__name__}")
        seen: set[str] = set()
        for e in edges:
            where = f"projection '{getattr(e, 'name', e)}'"
            if not isinstance(e, Projection):
                raise ir_error(where, None, f"edges must be Projections, got {type(e).__name__}")
            if e.name in nodes or e.name in seen:
                raise ir_error(where, "name", "is already used by a node or another projection")
            seen.add(e.name)
            if e.pre not in nodes:
                raise ir_error(where, "pre", f"no node named {e.pre!r}")
            if e.post not in nodes:
                raise ir_error(where, "post", f"no node named {e.post!r}")
            post, pre = nodes[e.post], nodes[e.pre]
            if not isinstance(post, Neurons):
                raise ir_error(where, "post", f"'{e.post}' is an input; only populations receive "
                               "synapses")
            if e.synapses.shape != (post.size, pre.size):
                raise ir_error(where, "synapses", f"shape (post, pre) = {e.synapses.shape}, but "
                               f"'{e.post}' has {post.size} and '{e.pre}' has {pre.size} neurons")
            if isinstance(e.synapses, Conv) and math.prod(e.synapses.in_shape) != pre.size:
                raise ir_error(where, "synapses", "conv input shape does not match the source")
        for oname, src in outputs.items():
            if not isinstance(oname, str) or not oname:
                raise ir_error("outputs", None, f"output names must be non-empty strings, "
                               f"got {oname!r}")
            if src not in nodes or not isinstance(nodes[src], Neurons):
                raise ir_error(f"output '{oname}'", "source", f"{src!r} is not a population")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ access
    @property
    def inputs(self) -> dict[str, Input]:
        return {k: v for k, v in self.nodes.items() if isinstance(v, Input)}

    @property
    def populations(self) -> dict[str, Neurons]:
        return {k: v for k, v in self.nodes.items() if isinstance(v, Neurons)}

    @property
    def quantized(self) -> bool:
        """True when every population and projection carries registers."""
        pops = self.populations.values()
        return bool(pops) and all(p.registers is not None for p in pops) and all(
            e.quantized for e in self.edges)

    def incoming(self, name: str) -> list[Projection]:
        return [e for e in self.edges if e.post == name]

    def outgoing(self, name: str) -> list[Projection]:
        return [e for e in self.edges if e.pre == name]

    def edge(self, name: str) -> Projection:
        for e in self.edges:
            if e.name == name:
                return e
        raise KeyError(f"no projection named {name!r}")

    def recurrent_edges(self) -> list[Projection]:
        """Projections that close a cycle (back edges of a depth-first walk from the inputs)."""
        order: dict[str, int] = {}
        state: dict[str, int] = {}
        back: set[str] = set()
        out: dict[str, list[Projection]] = {k: [] for k in self.nodes}
        for e in self.edges:
            out[e.pre].append(e)

        def walk(start: str) -> None:
            stack: list[tuple[str, Iterator[Projection]]] = [(start, iter(out[start]))]
            state[start] = 1
            order[start] = len(order)
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                    continue
                st = state.get(nxt.post, 0)
                if st == 1:
                    back.add(nxt.name)
                elif st == 0:
                    state[nxt.post] = 1
                    order[nxt.post] = len(order)
                    stack.append((nxt.post, iter(out[nxt.post])))

        roots = list(self.inputs) + [k for k in self.nodes if k not in self.inputs]
        for r in roots:
            if state.get(r, 0) == 0:
                walk(r)
        return [e for e in self.edges if e.name in back]

    def replace_nodes(self, **changes: Node) -> Graph:
        nodes = dict(self.nodes)
        nodes.update(changes)
        return replace(self, nodes=nodes)

    def dump(self) -> str:
        return format_graph(self)


def layered_graph(*, n_in: int, layers: Sequence[Mapping[str, Any]], input_name: str = "in",
                  output_name: str = "output", metadata: Mapping[str, Any] | None = None
                  ) -> Graph:
    """A layered network: input -> dense -> population (-> dense -> population ...).

    Each layer is a mapping with ``name``, ``weight`` (post, pre), ``alpha``, ``beta``,
    ``threshold`` (None makes a non-spiking readout) and optionally ``bias`` (membrane bias
    per neuron), ``recurrent`` (post, post) weights, ``reset`` ("subtract" by default).
    Projections are named ``<layer>.w`` and ``<layer>.w_rec``; the last layer is the graph's
    output ``output_name``.
    """
    if not layers:
        raise ir_error("layered_graph", "layers", "needs at least one layer")
    nodes: dict[str, Node] = {input_name: Input((int(n_in),))}
    edges: list[Projection] = []
    prev = input_name
    for i, spec in enumerate(layers):
        spec = dict(spec)
        name = spec.get("name", f"layer{i}")
        unknown = set(spec) - {"name", "weight", "alpha", "beta", "threshold", "bias",
                               "recurrent", "reset"}
        if unknown:
            raise ir_error(f"layer '{name}'", None, f"unknown keys {sorted(unknown)}")
        W = np.asarray(spec["weight"], np.float64)
        if W.ndim != 2:
            raise ir_error(f"layer '{name}'", "weight", f"must be 2-D (post, pre), got {W.shape}")
        th = spec.get("threshold")
        nodes[name] = Neurons((W.shape[0],), alpha=spec["alpha"], beta=spec["beta"],
                              threshold=th, bias=spec.get("bias", 0.0),
                              reset=spec.get("reset", "subtract"), spiking=th is not None)
        edges.append(Projection(f"{name}.w", prev, name, Dense(W)))
        if spec.get("recurrent") is not None:
            edges.append(Projection(f"{name}.w_rec", name, name,
                                    Dense(np.asarray(spec["recurrent"], np.float64))))
        prev = name
    return Graph(nodes, tuple(edges), {output_name: prev}, dict(metadata or {}))
