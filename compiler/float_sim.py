"""Float reference simulator of the IR: exactly the chip's order of operations, in float64.

Every population advances by :func:`neurochip.core.lif.lif_step`, the one definition of the
float dynamics (the trainer's forward pass runs the same step). Per population and step n
(docs/conventions.md section 1)::

    I[n] = alpha * I[n-1] + sum_c W_c @ S_c[n-1-d_c]
    U[n] = beta  * U[n-1] + I[n] + b
    S[n] = U[n] > theta                 (never for non-spiking readouts)
    reset "zero": U[n] <- 0 where S[n];  "subtract": U[n] <- U[n] - theta where S[n]

Spikes emitted at step n (host inputs included) reach their targets at step n + 1 + d.
Recorded voltages are taken after the reset, as the chip's probes see them.

Comparing :func:`simulate` on the float graph with the emulator on the compiled image shows
what quantization costs; :func:`state_statistics` gives the calibration statistics the
quantizer uses to choose each population's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.ir import Graph, Neurons, Projection
from neurochip.core import lif
from neurochip.core.errors import ConfigError

__all__ = ["FloatResult", "simulate", "state_statistics"]


@dataclass
class FloatResult:
    """Spikes and states of a float run: (T, n) arrays, or (B, T, n) for batched inputs.

    ``v`` is the membrane U after the reset (what a chip probe of ``v`` sees, divided by the
    population's scale), ``i`` the synaptic current I.
    """

    spikes: dict[str, NDArray[np.bool_]]
    v: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    i: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    steps: int = 0
    batched: bool = False


@dataclass
class _Route:
    pre: str
    post: str
    by_delay: list[tuple[int, sp.csr_matrix]]  # (delay, W restricted to that delay)


def _routes(graph: Graph) -> list[_Route]:
    out = []
    for e in graph.edges:
        out.append(_Route(e.pre, e.post, _split_by_delay(e)))
    return out


def _float_csr(e: Projection) -> sp.csr_matrix:
    m = e.synapses.to_csr()
    vals = np.asarray(m.data, np.float64)
    return sp.csr_matrix((vals, m.indices, m.indptr), shape=m.shape)


def _split_by_delay(e: Projection) -> list[tuple[int, sp.csr_matrix]]:
    m = _float_csr(e)
    if e.delay_pre is None and e.delay_post is None:
        return [(e.delay, m)]
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    d = e.synapse_delays(rows, m.indices.astype(np.int64))
    out = []
    for dv in np.unique(d):
        keep = d == dv
        sub = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
        out.append((int(dv), sub))
    return out


def _inputs(graph: Graph, inputs: Mapping[str, Any] | None, steps: int | None
            ) -> tuple[dict[str, NDArray[np.float64]], int, int, bool]:
    ins = graph.inputs
    arrays: dict[str, NDArray[np.float64]] = {}
    batch: int | None = None
    T = 0
    for name, x in (inputs or {}).items():
        if name not in ins:
            raise ConfigError(f"no input named {name!r}; inputs are {list(ins)}",
                              where="float_sim", field="inputs")
        a = np.asarray(x)
        n = ins[name].size
        if a.ndim not in (2, 3) or a.shape[-1] != n:
            raise ConfigError(f"input {name!r} has shape {a.shape}; expected (T, {n}) or "
                              f"(B, T, {n})", where="float_sim", field=name)
        if a.dtype != np.bool_ and not np.isin(a, (0, 1)).all():
            raise ConfigError(f"input {name!r} must hold spikes (bool or 0/1)",
                              where="float_sim", field=name)
        if a.ndim == 3:
            if batch is not None and a.shape[0] != batch:
                raise ConfigError(f"input {name!r} has batch {a.shape[0]}, others {batch}",
                                  where="float_sim", field=name)
            batch = a.shape[0]
        T = max(T, a.shape[-2])
        arrays[name] = a.astype(np.float64)
    if steps is None:
        steps = T
    if steps < T:
        raise ConfigError(f"inputs have {T} steps but steps={steps}", where="float_sim",
                          field="steps")
    B = batch or 1
    full: dict[str, NDArray[np.float64]] = {}
    for name, node in ins.items():
        X = np.zeros((B, steps, node.size))
        if name in arrays:
            a = arrays[name]
            X[:, : a.shape[-2]] = a if a.ndim == 3 else a[None]
        full[name] = X
    return full, int(steps), B, batch is not None


def _lif(p: Neurons) -> tuple[lif.LifParams, NDArray[np.float64], NDArray[np.float64]]:
    """The population's constants for :func:`neurochip.core.lif.lif_step`."""
    n = p.size
    bias = np.ascontiguousarray(np.broadcast_to(np.asarray(p.bias, np.float64), (n,)))
    theta = np.zeros(n) if p.threshold is None else np.ascontiguousarray(
        np.broadcast_to(np.asarray(p.threshold, np.float64), (n,)))
    a = float(np.max(p.alpha)) if p.per_neuron_decays else float(p.alpha)
    b = float(np.max(p.beta)) if p.per_neuron_decays else float(p.beta)
    prm = lif.LifParams(a, b, bool(p.spiking), p.reset == "subtract")
    return prm, bias, theta


Observer = Callable[[str, NDArray[np.float64], NDArray[np.float64]], None]


def _run(graph: Graph, inputs: Mapping[str, Any] | None, steps: int | None,
         record: bool, observe: Observer | None = None) -> FloatResult:
    X, T, B, batched = _inputs(graph, inputs, steps)
    pops = graph.populations
    routes = _routes(graph)
    neurons = {k: _lif(p) for k, p in pops.items()}
    I = {k: np.zeros((B, p.size)) for k, p in pops.items()}
    U = {k: np.zeros((B, p.size)) for k, p in pops.items()}
    pending: dict[int, dict[str, NDArray[np.float64]]] = {}
    spikes = {k: np.zeros((B, T, p.size), bool) for k, p in pops.items() if p.spiking}
    rec_v = {k: np.zeros((B, T, p.size)) for k in pops for p in [pops[k]]} if record else {}
    rec_i = {k: np.zeros((B, T, p.size)) for k in pops for p in [pops[k]]} if record else {}
    for t in range(T):
        arriving = pending.pop(t, {})
        fired: dict[str, NDArray[np.float64]] = {}
        for k, p in pops.items():
            a = arriving.get(k)
            prm, bias, theta = neurons[k]
            drive = np.zeros((B, p.size)) if a is None else a
            if p.per_neuron_decays:
                st = lif.step_per_neuron(prm, np.broadcast_to(p.alpha, (p.size,)),
                                         np.broadcast_to(p.beta, (p.size,)), bias, theta,
                                         I[k], U[k], drive)
            else:
                st = lif.step(prm, bias, theta, I[k], U[k], drive)
            if observe is not None:
                observe(k, st.i, st.p)
            if p.spiking:
                spikes[k][:, t] = st.s > 0.0
                fired[k] = st.s
            I[k], U[k] = st.i, st.u
            if record:
                rec_v[k][:, t] = st.u
                rec_i[k][:, t] = st.i
        for name in graph.inputs:
            fired[name] = X[name][:, t]
        for r in routes:
            src = fired.get(r.pre)
            if src is None or not src.any():
                continue
            for d, W in r.by_delay:
                contrib = np.asarray((W @ src.T).T)
                slot = pending.setdefault(t + 1 + d, {})
                if r.post in slot:
                    slot[r.post] = slot[r.post] + contrib
                else:
                    slot[r.post] = contrib
    sq: Callable[[NDArray[Any]], NDArray[Any]] = (lambda a: a) if batched else (lambda a: a[0])
    return FloatResult({k: sq(v) for k, v in spikes.items()},
                       {k: sq(v) for k, v in rec_v.items()},
                       {k: sq(v) for k, v in rec_i.items()}, T, batched)


def simulate(graph: Graph, inputs: Mapping[str, Any] | None = None, steps: int | None = None,
             *, record_state: bool = True) -> FloatResult:
    """Run the float model of ``graph``.

    inputs: {input name: spikes (T, n) or (B, T, n)}; missing inputs are silent. steps:
    default the inputs' length. Works on float and quantized graphs alike (a quantized
    graph's integer weights are then used as float weights, which is rarely what you want:
    simulate the float graph, or :func:`compiler.passes.quantize.dequantize_graph`).
    """
    return _run(graph, inputs, steps, record_state)


def state_statistics(graph: Graph, inputs: Mapping[str, Any], steps: int | None = None, *,
                     percentile: float | None = None) -> dict[str, float]:
    """Per population, the max (or a percentile) of |I| and of |U| before the reset.

    This is the calibration statistic: the largest scaled state the chip must hold.
    For spiking populations only positive U counts (the voltage register saturates, it does
    not wrap, so deep negative excursions are harmless for overflow).
    """
    if percentile is not None and not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile!r}",
                          where="calibration", field="percentile")
    pops = graph.populations
    samples: dict[str, list[NDArray[np.float64]]] = {k: [] for k in pops}
    peaks: dict[str, float] = dict.fromkeys(pops, 0.0)

    def observe(k: str, Ik: NDArray[np.float64], Uk: NDArray[np.float64]) -> None:
        p: Neurons = pops[k]
        uu = np.maximum(Uk, 0.0) if p.spiking else np.abs(Uk)
        both = np.maximum(np.abs(Ik), uu)
        if percentile is None:
            peaks[k] = max(peaks[k], float(both.max()) if both.size else 0.0)
        else:
            samples[k].append(both.reshape(-1).copy())

    _run(graph, inputs, steps, record=False, observe=observe)
    if percentile is None:
        return peaks
    return {k: float(np.percentile(np.concatenate(v), percentile)) if v else 0.0
            for k, v in samples.items()}
