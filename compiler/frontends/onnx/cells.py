"""Stateful spiking cells exported with ``torch.onnx`` (snnTorch, Norse, Sinabs...).

These exporters write ONE time step: the cells' states are graph inputs and the new states
graph outputs, and each cell is a small subgraph of elementwise ops (Mul, Add, Sub,
Greater, Cast, Where...) between weight layers. Each exporter spells the same neuron with
different ops, so a cell is recognised by what it computes, not by its op pattern:

1. **Find the cells.** A *state input* is a graph input that reaches a comparison op
   (Greater, GreaterOrEqual, Less, LessOrEqual, Where) without passing a weight layer
   (Gemm, MatMul, Conv). The nodes that depend on a state input (again without crossing a
   weight layer) form the cells, one per connected group. A cell reads exactly one other
   dynamic tensor, its input current ``x`` (the output of the weight layers before it).
2. **Read its equation from the graph.** The cell's own nodes are run, with the file's
   constants, by ``onnx.reference`` on probe values (all neurons at once):

   * below threshold the step is affine; its coefficients give, per neuron, the membrane
     retention ``beta``, the synaptic retention ``alpha`` (two states), the input gain and
     a constant input (bias);
   * the threshold is found by bisection on ``x``; the reset by one step just above it
     (the membrane left is U - theta: "subtract"; 0: "zero"; unchanged but taken off the
     next step: snnTorch's delayed reset, see below);
   * the spike's value (snnTorch's ``graded_spikes_factor``) and whether a step far above
     threshold emits more than one spike (Sinabs' ``MultiSpike``).

   The result is the chip's neuron (docs/conventions.md section 1):
   ``I[n] = alpha I[n-1] + g x[n]``, ``U[n] = beta U[n-1] + I[n] + b``.
3. **Check it.** The cell's own nodes and the recognised neuron are run side by side for
   40 steps of random input; the spikes must agree (else a
   :class:`~neurochip.core.errors.ModelImportError` names the cell).

What cannot be represented exactly is announced with a warning naming the cell:
several spikes per step (the chip emits one), ``>=`` thresholds (the chip compares with
``>``; they differ only when U equals the threshold exactly), a delayed subtractive reset
behind a synaptic filter. snnTorch's delayed subtractive reset without a synaptic filter
(``Leaky``, ``reset_delay=True``, its default) is exact: the threshold taken off one step
late, undecayed, equals the chip's immediate reset plus a self-connection of weight
``-(1 - beta) * theta``, which the importer adds (projection ``<cell>.reset_delay``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from compiler.ir.fields import Decay
from neurochip.core.errors import ModelImportError

__all__ = ["COMPARE_OPS", "WEIGHT_OPS", "CellModel", "CellRegion", "feedback_inputs",
           "find_cells", "identify"]

WEIGHT_OPS = ("Gemm", "MatMul", "Conv", "AveragePool", "MaxPool", "ConvTranspose")
COMPARE_OPS = ("Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Where", "Sign")
_VERIFY_STEPS = 40
_MIN_AGREEMENT = 0.999
_WARN_AGREEMENT = 0.8


@dataclass
class CellRegion:
    """One cell: its nodes (indices into the graph, in order) and its boundary tensors."""

    nodes: list[int]
    label: str
    states: list[str]
    current: str
    outputs: list[str]  # region tensors read outside it (downstream layers, graph outputs)
    #: currents computed from the cell's own previous spikes (a recurrent weight layer on a
    #: feedback graph input, snnTorch's RLeaky/RSynaptic): they enter like ``current``
    recurrent: list[str] = field(default_factory=list)
    #: graph outputs that return the cell's spikes for the next step's feedback input
    feedback_outputs: list[str] = field(default_factory=list)


@dataclass
class CellModel:
    """The chip neuron a cell computes (per-neuron arrays of length n)."""

    alpha: Decay  # a float, or one retention per neuron
    beta: Decay
    gain: NDArray[np.float64]
    bias: NDArray[np.float64]          # constant membrane input
    current_bias: NDArray[np.float64]  # constant input into the synaptic current (alpha > 0)
    threshold: NDArray[np.float64]
    reset: str                         # "zero" | "subtract"
    delayed: bool                      # snnTorch's reset_delay: threshold removed a step late
    amplitude: float                   # the spike's value in the file
    spikes: str                        # the output tensor carrying the spikes
    state_outputs: list[str]
    agreement: float = 1.0
    notes: list[str] = field(default_factory=list)


def _imp(where: str, msg: str, fld: str | None = None) -> ModelImportError:
    return ModelImportError(msg, where=where, field=fld)


def find_cells(g: Any, consts: dict[str, Any]) -> tuple[list[CellRegion], set[str]]:
    """The cells of graph ``g`` and its state inputs (empty when it has none).

    A recurrent cell (snnTorch's ``RLeaky``/``RSynaptic``) also reads its previous spikes
    through a weight layer: its spikes are a graph input (the *feedback input*) and the same
    spikes a graph output. torch.onnx lists a step's inputs as ``forward(x, *states)`` and
    its outputs as ``return (y, *states)``, so graph input p pairs with graph output p. An
    input after the first whose paired output is the spike tensor of the very cell it feeds
    (through weight layers) is that cell's feedback input; the current it gives the cell
    is recurrent (``CellRegion.recurrent``).
    """
    inputs = [i.name for i in g.input if i.name not in consts]
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(g.node):
        for t in node.input:
            consumers.setdefault(t, []).append(k)

    def reach(start: str) -> set[int]:
        seen: set[int] = set()
        todo = [start]
        while todo:
            t = todo.pop()
            for k in consumers.get(t, []):
                node = g.node[k]
                if k in seen or node.op_type in WEIGHT_OPS:
                    continue
                seen.add(k)
                todo.extend(node.output)
        return seen

    reached = {name: reach(name) for name in inputs}
    states = {name for name, ks in reached.items()
              if any(g.node[k].op_type in COMPARE_OPS for k in ks)}
    if not states:
        return [], set()
    in_cell: set[int] = set().union(*(reached[s] for s in states))
    # connected groups (through tensors shared by cell nodes)
    parent = {k: k for k in in_cell}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    producer = {t: k for k in in_cell for t in g.node[k].output}
    for k in in_cell:
        for t in list(g.node[k].input) + [t for t in g.node[k].output]:
            others = [j for j in consumers.get(t, []) if j in in_cell]
            if t in producer:
                others.append(producer[t])
            for j in others:
                parent[find(j)] = find(k)
    groups: dict[int, list[int]] = {}
    for k in sorted(in_cell):
        groups.setdefault(find(k), []).append(k)
    graph_outputs = {o.name for o in g.output}
    regions = []
    for ks in groups.values():
        kset = set(ks)
        made = {t for k in ks for t in g.node[k].output}
        first = g.node[ks[0]]
        label = first.name or f"{first.op_type}_{ks[0]}"
        where = f"cell at node '{label}'"
        reads = [t for k in ks for t in g.node[k].input if t and t not in made]
        st = [s for s in inputs if s in states and s in reads]
        ext = list(dict.fromkeys(t for t in reads if t not in consts and t not in states))
        outs = list(dict.fromkeys(
            t for k in ks for t in g.node[k].output
            if t in graph_outputs or any(j not in kset for j in consumers.get(t, []))))
        rec, fb_outs = _feedback(g, inputs, states, ext, outs, consumers, in_cell)
        ext = [t for t in ext if t not in rec]
        if len(ext) != 1:
            raise _imp(where, f"reads {len(ext)} input currents {ext}: a cell must read "
                       "exactly one tensor (the output of the weight layer before it) besides "
                       "its states", "input")
        regions.append(CellRegion(ks, label, st, ext[0], outs, rec, fb_outs))
    return regions, states


def feedback_inputs(regions: list[CellRegion], g: Any) -> dict[str, CellRegion]:
    """Feedback graph input -> the recurrent cell whose previous spikes it carries."""
    g_in = [i.name for i in g.input]
    g_out = [o.name for o in g.output]
    out: dict[str, CellRegion] = {}
    for r in regions:
        for o in r.feedback_outputs:
            out[g_in[g_out.index(o)]] = r
    return out


def _feedback(g: Any, inputs: list[str], states: set[str], ext: list[str], outs: list[str],
              consumers: dict[str, list[int]], in_cell: set[int]) -> tuple[list[str], list[str]]:
    """The recurrent currents among a cell's external reads, and its feedback outputs."""
    g_in = [i.name for i in g.input]
    g_out = [o.name for o in g.output]
    data = [t for t in inputs if t not in states]
    rec: list[str] = []
    fb: list[str] = []
    for f in data[1:]:  # the first non-state input is the data input (forward(x, *states))
        p = g_in.index(f)
        if p >= len(g_out) or g_out[p] not in outs:
            continue
        # the tensors f reaches outside the cells
        seen, todo = {f}, [f]
        while todo:
            t = todo.pop()
            for k in consumers.get(t, []):
                if k in in_cell:
                    continue
                for o in g.node[k].output:
                    if o not in seen:
                        seen.add(o)
                        todo.append(o)
        mine = [t for t in ext if t in seen]
        if mine:
            rec.extend(t for t in mine if t not in rec)
            fb.append(g_out[p])
    return rec, fb


class _Probe:
    """Runs a cell's own nodes with ``onnx.reference`` on (P, n) probe values."""

    def __init__(self, g: Any, region: CellRegion, consts: dict[str, Any], opsets: Any,
                 n: int):
        from onnx.reference import ReferenceEvaluator

        nodes = [g.node[k] for k in region.nodes]
        needed = {t for nd in nodes for t in nd.input if t in consts}
        inits = [numpy_helper.from_array(np.asarray(consts[t]), t) for t in sorted(needed)]
        vi = [helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
              for t in [region.current, *region.states, *region.recurrent]]
        vo = [helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
              for t in region.outputs]
        sub = helper.make_graph(nodes, "cell", vi, vo, initializer=inits)
        model = helper.make_model(sub, opset_imports=list(opsets))
        self.run_ = ReferenceEvaluator(model)
        self.region = region
        self.n = n

    def __call__(self, x: NDArray[Any], states: list[NDArray[Any]],
                 rec: NDArray[Any] | None = None) -> dict[str, NDArray[Any]]:
        """The cell's outputs for current ``x`` and ``states`` (and ``rec`` on every
        recurrent current, else 0)."""
        feeds = {self.region.current: np.asarray(x, np.float32)}
        for s, v in zip(self.region.states, states):
            feeds[s] = np.asarray(v, np.float32)
        for t in self.region.recurrent:
            feeds[t] = np.asarray(np.zeros(np.shape(x)) if rec is None else rec, np.float32)
        res = self.run_.run(None, feeds)
        return {t: np.asarray(v, np.float64).reshape(np.shape(x))
                for t, v in zip(self.region.outputs, res)}


def identify(g: Any, region: CellRegion, consts: dict[str, Any], opsets: Any, n: int,
             downstream: set[str]) -> CellModel:
    """The chip neuron that ``region`` computes (see the module docstring)."""
    where = f"cell at node '{region.label}'"
    try:
        probe = _Probe(g, region, consts, opsets, n)
        return _identify(probe, region, n, downstream, where, g)
    except ModelImportError:
        raise
    except Exception as exc:  # onnx.reference failures: unsupported op, shape mismatch
        raise _imp(where, f"could not be evaluated on probe inputs ({type(exc).__name__}: "
                   f"{exc})", "op_type") from None


def _identify(probe: _Probe, region: CellRegion, n: int, downstream: set[str], where: str,
              g: Any) -> CellModel:
    k = len(region.states)
    if k not in (1, 2):
        raise _imp(where, f"has {k} state inputs; a LIF cell has one (membrane) or two "
                   "(synaptic current and membrane)", "input")
    zeros = np.zeros((1, n))
    z0 = [zeros] * k
    base = probe(zeros, z0)
    # the spike tensor: read downstream, else the output that is silent below threshold
    fb = set(region.feedback_outputs)
    spk_cands = [t for t in region.outputs if t in downstream and t not in fb]
    if len(spk_cands) > 1:
        raise _imp(where, f"sends several tensors {spk_cands} to the next layers; a cell "
                   "sends its spikes only", "output")
    eps = 1e-2
    rng = np.random.default_rng(0)
    for _ in range(6):
        small = probe(rng.uniform(-eps, eps, (1, n)), [rng.uniform(-eps, eps, (1, n))] * k)
        silent = [t for t in region.outputs if not np.any(small[t]) and not np.any(base[t])]
        # a feedback output may be the spike tensor itself; prefer another silent output
        silent = [t for t in silent if t not in fb] + [t for t in silent if t in fb]
        if silent:
            break
        eps *= 0.1
    if not spk_cands:
        spk_cands = silent[:1]
    if not spk_cands:
        raise _imp(where, "no output of the cell is silent for small inputs: no spike output "
                   "found", "output")
    spikes = spk_cands[0]
    # states pair up in order: graph inputs with graph outputs (as torch.onnx writes them)
    g_out = [o.name for o in g.output]
    st_out = sorted((t for t in region.outputs if t != spikes and t not in downstream
                     and t not in fb),
                    key=lambda t: g_out.index(t) if t in g_out else len(g_out))
    if len(st_out) != k:
        raise _imp(where, f"has {k} state inputs {region.states} but {len(st_out)} state "
                   f"outputs {st_out}", "output")
    if np.any(base[spikes]):
        raise _imp(where, "spikes with no input and zero state (threshold <= 0?)", "threshold")

    # affine map below threshold: new state j = sum_i A[j, i] * state_i + g_j * x + c_j
    c = np.stack([base[t][0] for t in st_out])
    A = np.zeros((k, k, n))
    gx = np.zeros((k, n))
    for i in range(k):
        st = [zeros] * k
        st[i] = np.full((1, n), eps)
        r = probe(zeros, st)
        if np.any(r[spikes]):
            raise _imp(where, "spikes for a tiny state; cannot read its threshold", "threshold")
        for j, t in enumerate(st_out):
            A[j, i] = (r[t][0] - c[j]) / eps
    r = probe(np.full((1, n), eps), z0)
    for j, t in enumerate(st_out):
        gx[j] = (r[t][0] - c[j]) / eps
    if region.recurrent:
        # the recurrent current must enter exactly as the input current does
        rr = probe(zeros, z0, np.full((1, n), eps))
        for j, t in enumerate(st_out):
            if not np.allclose((rr[t][0] - c[j]) / eps, gx[j], rtol=1e-3, atol=1e-6):
                raise _imp(where, f"its recurrent input {region.recurrent} enters state "
                           f"'{t}' with another gain than its input current; the chip sums "
                           "both into one synaptic input", "input")
    # which state is the membrane: the one the other does not depend on is the current
    order = list(range(k))
    if k == 2:
        tol = 1e-4 * max(1.0, float(np.abs(A).max()))  # float32 probes
        if np.allclose(A[0, 1], 0, atol=tol):
            order = [0, 1]  # state 0 is the current, state 1 the membrane
        elif np.allclose(A[1, 0], 0, atol=tol):
            order = [1, 0]
        else:
            raise _imp(where, "its two states feed each other; the chip's current does not "
                       "depend on the membrane", "input")
    m = order[-1]

    def uniform(v: NDArray[np.float64], what: str) -> float:
        if not np.allclose(v, v[0], rtol=1e-4, atol=1e-6):
            raise _imp(where, f"{what} differs between neurons ({v.min():.4g} .. "
                       f"{v.max():.4g}); the chip has one per population", what)
        return float(np.round(v[0], 6))

    def decay(v: NDArray[np.float64]) -> Decay:
        """One retention for the population, or one per neuron (lif_per_neuron)."""
        if np.allclose(v, v[0], rtol=1e-4, atol=1e-6):
            return float(np.round(v[0], 6))
        return np.round(v, 6)

    beta = decay(A[m, m])
    if k == 2:
        ci = order[0]
        alpha = decay(A[ci, ci])
        a_vi, g_i, g_v = A[m, ci], gx[ci], gx[m]
        if not np.allclose(a_vi * g_i, alpha * g_v, rtol=1e-3, atol=1e-9):
            raise _imp(where, "its input reaches the membrane both directly and through the "
                       "synaptic current with gains the chip cannot share", "input")
        gain = g_v
        cur_bias = a_vi * c[ci]  # a constant into the current reaches the membrane so
        cur_bias = np.where(np.abs(cur_bias) < 1e-9, 0.0, cur_bias)
    else:
        alpha, gain, cur_bias = 0.0, gx[m], np.zeros(n)
    if not (np.all(0.0 <= np.asarray(alpha)) and np.all(np.asarray(alpha) <= 1.0)
            and np.all(0.0 <= np.asarray(beta)) and np.all(np.asarray(beta) <= 1.0)):
        raise _imp(where, f"retentions alpha = {_fmt(alpha)}, beta = {_fmt(beta)} are outside "
                   "[0, 1]", "beta")
    if np.any(gain <= 0):
        raise _imp(where, "its input does not raise the membrane (gain <= 0)", "input")
    bias = np.where(np.abs(c[m]) < 1e-9, 0.0, c[m])

    def u_pre(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return bias + gain * x  # zero state: the current holds this step's input only

    # threshold: bisection on x with zero state
    lo, hi = np.zeros(n), np.full(n, eps)
    for _ in range(60):
        fired = probe(hi[None], z0)[spikes][0] != 0
        if fired.all():
            break
        hi = np.where(fired, hi, hi * 2)
    else:
        raise _imp(where, "does not spike for any input up to 1e15", "threshold")
    for _ in range(48):
        mid = 0.5 * (lo + hi)
        fired = probe(mid[None], z0)[spikes][0] != 0
        lo, hi = np.where(fired, lo, mid), np.where(fired, mid, hi)
    theta = u_pre(0.5 * (lo + hi))
    theta = np.where(np.abs(theta - np.round(theta, 5)) < 1e-5 * np.maximum(1, theta),
                     np.round(theta, 5), theta)
    notes: list[str] = []
    # one step 25 % above threshold, and one 150 % above
    x1 = (1.25 * theta - bias) / gain
    r1 = probe(x1[None], z0)
    amp_v = r1[spikes][0]
    if np.any(amp_v == 0):
        raise _imp(where, "does not spike above the threshold found", "threshold")
    amplitude = uniform(amp_v, "spike value")
    for o in region.feedback_outputs:
        if not np.array_equal(r1[o], r1[spikes]):
            raise _imp(where, f"graph output '{o}' is paired with a feedback input but is not "
                       f"the cell's spikes '{spikes}'", "output")
    x2 = (2.5 * theta - bias) / gain
    if np.any(probe(x2[None], z0)[spikes][0] / amplitude > 1.5):
        notes.append(f"cell at '{region.label}' emits several spikes in one step when the "
                     "membrane exceeds twice the threshold (e.g. Sinabs' MultiSpike); the chip "
                     "emits one, so outputs differ at high rates (the subtractive reset keeps "
                     "the excess for later steps)")
    left = r1[st_out[m]][0]
    delayed = False
    if np.allclose(left, 0.25 * theta, rtol=1e-3, atol=1e-6):
        reset = "subtract"
    elif np.allclose(left, 0.0, atol=1e-6 * max(1.0, float(theta.max()))):
        reset = "zero"
    elif np.allclose(left, 1.25 * theta, rtol=1e-4):
        delayed = True
        st = [zeros] * k
        # a membrane above threshold, chosen so that the subtractive reset's result
        # (beta f - 1) theta stays clear of the zero reset's 0 (beta = 0.8, f = 1.25 meet)
        f_ = np.where(np.abs(np.asarray(beta) * 1.25 - 1.0) > 0.1, 1.25, 1.75)
        st[m] = (f_ * theta)[None]
        r2 = probe(zeros, st)
        after = r2[st_out[m]][0]
        if np.allclose(after, beta * f_ * theta + bias - theta, rtol=1e-3, atol=1e-6):
            reset = "subtract"
        elif np.allclose(after, bias, atol=1e-6 * max(1.0, float(theta.max()))):
            reset = "zero"
            x3 = (0.3 * theta) / gain
            after3 = probe(x3[None], st)[st_out[m]][0]
            if np.allclose(after3, 0.0, atol=1e-6 * max(1.0, float(theta.max()))) and \
                    not np.allclose(bias + gain * x3, 0.0):
                notes.append(
                    f"cell at '{region.label}' zeroes its whole membrane on the step after a "
                    "spike, that step's input included (snnTorch's RLeaky/RSynaptic zero "
                    "reset, mem - reset * mem); the chip resets at the spike and keeps the "
                    "next input, so spikes differ after strong input")
        else:
            raise _imp(where, "does not reset its membrane after a spike (no reset, or a "
                       "reset the chip cannot do)", "reset")
    else:
        raise _imp(where, f"resets its membrane to {left[:3]}... after a spike: only a reset "
                   "to zero or by subtraction of the threshold runs on the chip", "reset")
    ops = {g.node[j].op_type for j in region.nodes}
    if ops & {"GreaterOrEqual", "LessOrEqual"}:
        notes.append(f"cell at '{region.label}' fires at U >= threshold, the chip at U > "
                     "threshold: they differ only where U equals the threshold exactly")
    model = CellModel(alpha=alpha, beta=beta, gain=gain, bias=bias, current_bias=cur_bias,
                      threshold=theta, reset=reset, delayed=delayed, amplitude=amplitude,
                      spikes=spikes, state_outputs=[st_out[j] for j in order], notes=notes)
    model.agreement = _verify(probe, model, st_out, order, n, k)
    if model.agreement < _MIN_AGREEMENT:
        if model.agreement >= _WARN_AGREEMENT:
            notes.append(f"cell at '{region.label}' is approximated by a LIF neuron (alpha "
                         f"{_fmt(alpha)}, beta {_fmt(beta)}, reset {reset}): on random input "
                         f"{100 * model.agreement:.1f} % of its spikes agree (it differs when "
                         "the membrane is driven far above threshold)")
        else:
            raise _imp(where, "is not a LIF neuron the chip runs: on random input only "
                       f"{100 * model.agreement:.1f} % of its spikes agree with the neuron read "
                       f"from it (alpha {_fmt(alpha)}, beta {_fmt(beta)}, reset {reset})",
                       "op_type")
    return model


def _fmt(x: Decay) -> str:
    """A retention for a message: the value, or its range over the neurons."""
    if np.ndim(x):
        return f"{float(np.min(x)):.4g} .. {float(np.max(x)):.4g} (per neuron)"
    return f"{float(x):.4g}"


def _verify(probe: _Probe, cm: CellModel, st_out: list[str], order: list[int], n: int,
            k: int) -> float:
    """Fraction of equal spikes, the cell's own nodes vs the recognised neuron."""
    rng = np.random.default_rng(1)
    P = 16
    scale = float(np.max(cm.threshold / cm.gain))
    x = rng.uniform(-0.3, 0.9, (_VERIFY_STEPS, P, n)) * scale * (1.0 - np.asarray(cm.beta)
                                                                 * 0.8)
    x[:, P // 2:] = rng.uniform(-0.5, 2.5, (_VERIFY_STEPS, P - P // 2, n)) * scale  # strong
    states = [np.zeros((P, n))] * k
    I_ = np.zeros((P, n))
    U = np.zeros((P, n))
    S = np.zeros((P, n))
    th = cm.threshold
    same = 0
    for t in range(_VERIFY_STEPS):
        r = probe(x[t], states)
        states = [r[st] for st in st_out]
        # the chip's equation; the delayed reset's correction is a self-connection
        corr = -(1 - cm.beta) * th * S if (cm.delayed and cm.reset == "subtract") else 0.0
        I_ = cm.alpha * I_ + cm.gain * x[t] + corr + (cm.current_bias if t else 0.0)
        U = cm.beta * U + I_ + cm.bias
        S = (U > th).astype(np.float64)
        U = np.where(S > 0, 0.0 if cm.reset == "zero" else U - th, U)
        same += int(np.sum((r[cm.spikes] != 0) == (S > 0)))
    return same / (_VERIFY_STEPS * P * n)
