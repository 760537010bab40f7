"""NIR frontend: NIR graphs -> IR, and the NIR writer. The only module importing ``nir``.

Reading (:func:`read_nir`, :func:`from_nir`)
--------------------------------------------
NIR stores continuous-time ODEs without a time step. A file is discretised with

* ``dt``: the caller's, else ``neurochip.dt`` from the file's metadata, else inferred from
  the exporter's conventions (the *source profile*, below);
* ``decay``: ``"euler"`` (default; ``x <- (1 - dt/tau) x``) or ``"exp"`` (``exp(-dt/tau)``);
* ``reset``: ``"zero"`` or ``"subtract"``: the caller's, else ``neurochip.reset``, else the
  source profile's. ``v_reset`` is never used to guess the mode (it must be 0).

With ``d(tau)`` the chosen decay, every neuron node becomes a population of the IR
(``I[n] = alpha I[n-1] + g W S[n-1]``, ``U[n] = beta U[n-1] + I[n] + b``):

============  =============  =============  ==============================  =================
node          alpha          beta           input gain g                    bias b
============  =============  =============  ==============================  =================
CubaLIF/LI    d(tau_syn)     d(tau_mem)     w_in (1-alpha) r (1-beta)       (1-beta) v_leak
LIF / LI      0              d(tau)         r (1-beta)                      (1-beta) v_leak
IF / I        0              1              r dt                            0
Threshold     0              0              1                               0
============  =============  =============  ==============================  =================

(CubaLI, LI and I are non-spiking readouts.) Both profiles use ``gain = (1 - decay) * r``,
the exact solution for an input held over one step in the exponential case. Linear nodes
between two spiking nodes (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d,
Flatten, Delay, subgraph ports) are composed into one projection per path; an Affine or
Conv bias becomes a constant membrane bias of the target (exact when alpha = 0, its
steady-state value ``g b / (1 - alpha)`` otherwise, noted in the import notes).

Source profiles (nir-notes section 5.2), tried in this order when no dt is known:

=========  =============================================  =====  ========  ========
profile    pattern                                        dt     decay     reset
=========  =============================================  =====  ========  ========
snntorch   r = tau_mem/dt, w_in = tau_syn/dt (lava-dl     dt     euler     subtract
           netx too)
spyx       r = 1 - dt/tau (r is beta), unit gains         dt     euler     subtract
rockpool   r = tau exp(-dt/tau)/dt                        dt     exp       subtract
sinabs     r = 1, IF only or tau > 1 (tau in steps)       1      exp       subtract
norse      r = 1, w_in = 1, tau in seconds (input gain w_in   ask    euler     zero
           into the current, as Norse's LIFCell)
=========  =============================================  =====  ========  ========

Population names are NIR node names (a subgraph holding exactly one neuron node, such as
an exporter's recurrent layer, names its population after the subgraph). Each top-level
Output node is resolved to the population it reads (its spikes, or ``v`` for a readout).
Anything the chip cannot run raises :class:`~neurochip.core.errors.ModelImportError` naming the
node, its type and the reason.

Writing (:func:`write_nir`, :func:`to_nir`)
-------------------------------------------
Float IR graphs (or a simple layer list, see :func:`compiler.ir.layered_graph`) are
written with the forward-Euler convention at ``dt`` (snnTorch's: ``r = tau_mem/dt``,
``w_in = tau_syn/dt``, unit gains), ``v_leak = b/(1 - beta)``, ``v_reset = 0`` and the
``neurochip.*`` metadata keys, so reading the file back gives the same IR.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nir
import numpy as np
from numpy.typing import NDArray

from compiler.frontends.linear import LinearOp, apply_op, check_finite, compose
from compiler.ir import (
    Conv,
    Dense,
    Graph,
    Input,
    IRError,
    Neurons,
    Projection,
    layered_graph,
    pool,
)
from compiler.passes.normalize import scale_rows
from neurochip.core.errors import ModelImportError, NeurochipError
from neurochip.core.safeio import atomic_path, check_alloc, check_positive_finite
from neurochip.core.version import __version__

__all__ = [
    "NEURON_TYPES",
    "SUPPORTED_TYPES",
    "Discretisation",
    "NIRImportWarning",
    "from_nir",
    "read_nir",
    "to_nir",
    "write_nir",
]

NEURON_TYPES = ("CubaLIF", "LIF", "IF", "Threshold", "CubaLI", "LI", "I")
SPIKING_TYPES = ("CubaLIF", "LIF", "IF", "Threshold")
LINEAR_TYPES = ("Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
                "Flatten", "Delay")
SUPPORTED_TYPES = ("Input", "Output", "NIRGraph", *NEURON_TYPES, *LINEAR_TYPES)
_PORT = "port"  # an Input/Output node inside a subgraph: an identity on the path
_WIRES = ("Flatten", _PORT)  # reshape only: an output may read a population through them

Decay = Literal["euler", "exp"]
Reset = Literal["zero", "subtract"]


class NIRImportWarning(UserWarning):
    """An import note worth seeing (an approximation, a dropped duplicate edge...)."""


@dataclass(frozen=True)
class Discretisation:
    """How a NIR file's continuous-time parameters are turned into steps."""

    dt: float | None
    decay: Decay
    reset: Reset
    profile: str
    gain: Literal["literal", "unit", "norse"] = "literal"
    sources: Mapping[str, str] = field(default_factory=dict)  # option -> where it came from


def _imp(where: str, msg: str, fld: str | None = None, **kw: Any) -> ModelImportError:
    return ModelImportError(msg, where=where, field=fld, **kw)


def _node_where(name: str, node: Any) -> str:
    return f"node '{name}' ({type(node).__name__})"


# ======================================================================================
# Reading
# ======================================================================================


def read_nir(path: str | Path, *, dt: float | None = None, decay: str | None = None,
             reset: str | None = None) -> Graph:
    """Read a ``.nir`` file into a float IR graph (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise _imp(f"file {p}", "does not exist")
    version = None
    try:
        version = str(nir.serialization.read_version(str(p)))
    except Exception:
        version = None
    _check_hdf5_sizes(p)
    pre_notes: list[str] = []
    try:
        g = nir.read(str(p), type_check=False)
    except Exception as exc:
        g = _read_lenient(p, exc)
        pre_notes.append(f"nir.read rejected the file ({exc}); it was read without nir's "
                         "type checks and validated here")
    try:
        return from_nir(g, dt=dt, decay=decay, reset=reset, source=str(p), version=version,
                        _notes=pre_notes)
    except NeurochipError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            ZeroDivisionError) as exc:  # a malformed node the checks above did not foresee
        raise _imp(f"file {p}", f"malformed NIR content ({type(exc).__name__}: {exc})") from None


#: neurons one imported layer may have (far above any chip's capacity)
MAX_LAYER_NEURONS = 1 << 24
#: datasets, total elements and group nesting a NIR file may have
MAX_NIR_OBJECTS = 100_000
MAX_NIR_TOTAL_ELEMENTS = 1 << 29
MAX_NIR_DEPTH = 32


def _check_hdf5_sizes(p: Path) -> None:
    """Bound every dataset's shape (and their sum, and the nesting) from the HDF5 headers,
    before any array of the file is read."""
    import h5py

    where = f"file {p}"
    try:
        f = h5py.File(str(p), "r")
    except Exception as exc:
        raise _imp(where, f"not a readable NIR file (HDF5: {exc})") from None
    total = 0
    count = 0
    with f:
        def visit(name: str, obj: Any) -> None:
            nonlocal total, count
            count += 1
            if count > MAX_NIR_OBJECTS:
                raise _imp(where, f"more than {MAX_NIR_OBJECTS} HDF5 objects", "structure")
            if name.count("/") > MAX_NIR_DEPTH:
                raise _imp(where, f"{name!r} nests deeper than {MAX_NIR_DEPTH}", "structure")
            if isinstance(obj, h5py.Dataset):
                shape = obj.shape if obj.shape is not None else ()
                dims = check_alloc(shape, f"{where}, dataset {name!r}", "shape",
                                   error=ModelImportError)
                total += math.prod(dims)
                if total > MAX_NIR_TOTAL_ELEMENTS:
                    raise _imp(where, f"datasets hold more than {MAX_NIR_TOTAL_ELEMENTS} "
                               "elements in all", "structure")

        try:
            f.visititems(visit)
        except ModelImportError:
            raise
        except Exception as exc:
            raise _imp(where, f"not a readable NIR file (HDF5: {exc})") from None


def _read_lenient(p: Path, first: Exception) -> Any:
    """Rebuild the graph without nir's type checks (nested graphs are always type-checked
    by ``nir.read``, which rejects some valid files)."""
    try:
        import h5py
        from nir.serialization import hdf2dict

        with h5py.File(str(p), "r") as f:
            d = hdf2dict(f["node"])
        return _dict_to_node(d)
    except Exception as exc:
        raise _imp(f"file {p}", f"not a readable NIR file: {first} ({exc})") from None


def _dict_to_node(d: dict[str, Any]) -> Any:
    if d.get("type") == "NIRGraph":
        nodes = {k: _dict_to_node(v) for k, v in d["nodes"].items()}
        edges = [(_s(a), _s(b)) for a, b in d["edges"]]
        meta = {k: v for k, v in d.get("metadata", {}).items()}
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    return nir.dict2NIRNode(dict(d))


def _s(x: Any) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


def _meta_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _meta_value(v.item())
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------------------
# Flattening nested graphs
# --------------------------------------------------------------------------------------


@dataclass
class _Flat:
    nodes: dict[str, Any] = field(default_factory=dict)  # flat name -> nir node or _PORT
    edges: list[tuple[str, str]] = field(default_factory=list)
    pop_name: dict[str, str] = field(default_factory=dict)  # flat neuron name -> population
    notes: list[str] = field(default_factory=list)


def _tname(node: Any) -> str:
    return _PORT if isinstance(node, str) and node == _PORT else type(node).__name__


def _fix_input_to_wrec(name: str, g: Any, flat: _Flat) -> list[tuple[str, str]]:
    """A recurrent subgraph written as ``input -> w_rec`` (some exporters) means
    ``input -> neuron``: the input is not multiplied by the recurrent weights."""
    edges = [(_s(a), _s(b)) for a, b in g.edges]
    ins = [k for k, v in g.nodes.items() if type(v).__name__ == "Input"]
    neurons = [k for k, v in g.nodes.items() if type(v).__name__ in NEURON_TYPES]
    dense = [k for k, v in g.nodes.items() if type(v).__name__ in ("Linear", "Affine")]
    if len(ins) != 1 or len(neurons) != 1 or len(dense) != 1:
        return edges
    i, n, w = ins[0], neurons[0], dense[0]
    es = set(edges)
    if (i, w) in es and (w, n) in es and (n, w) in es and (i, n) not in es:
        flat.notes.append(f"subgraph '{name}': 'input -> {w}' read as 'input -> {n}' (the "
                          f"recurrent-layer wiring some exporters write)")
        return [(i, n) if e == (i, w) else e for e in edges]
    return edges


def _flatten(g: Any, prefix: str, flat: _Flat, depth: int) -> tuple[list[str], list[str]]:
    """Add g's nodes under ``prefix``; return its input and output node names (flat)."""
    sub_in: dict[str, list[str]] = {}
    sub_out: dict[str, list[str]] = {}
    ins: list[str] = []
    outs: list[str] = []
    for name, node in g.nodes.items():
        full = prefix + str(name)
        t = type(node).__name__
        if t == "NIRGraph":
            i, o = _flatten(node, full + ".", flat, depth + 1)
            sub_in[full], sub_out[full] = i, o
            inner = [k for k, v in node.nodes.items() if type(v).__name__ in NEURON_TYPES]
            if len(inner) == 1:
                flat.pop_name[f"{full}.{inner[0]}"] = full
            continue
        if t in ("Input", "Output") and depth > 0:
            flat.nodes[full] = _PORT
            (ins if t == "Input" else outs).append(full)
            continue
        flat.nodes[full] = node
        if t == "Input":
            ins.append(full)
        elif t == "Output":
            outs.append(full)
    edges = _fix_input_to_wrec(prefix[:-1] or "<top>", g, flat) if depth > 0 else [
        (_s(a), _s(b)) for a, b in g.edges]
    seen: set[tuple[str, str]] = set()
    for a, b in edges:
        fa, fb = prefix + a, prefix + b
        for end, role in ((fa, "source"), (fb, "target")):
            if end not in flat.nodes and end not in sub_in:
                raise _imp(f"edge ('{fa}', '{fb}')", f"its {role} '{end}' is not a node of the "
                           "graph", "edges")
        if fa in sub_out:
            if len(sub_out[fa]) != 1:
                raise _imp(f"subgraph '{fa}'", f"has {len(sub_out[fa])} Output nodes; an edge "
                           "leaving it is ambiguous", "edges")
            fa = sub_out[fa][0]
        if fb in sub_in:
            if len(sub_in[fb]) != 1:
                raise _imp(f"subgraph '{fb}'", f"has {len(sub_in[fb])} Input nodes; an edge "
                           "into it is ambiguous", "edges")
            fb = sub_in[fb][0]
        if (fa, fb) in seen:
            flat.notes.append(f"duplicate edge ('{fa}', '{fb}') dropped (NIR edges are "
                              "identity wires; a traced export repeated it)")
            continue
        seen.add((fa, fb))
        flat.edges.append((fa, fb))
    return ins, outs


# --------------------------------------------------------------------------------------
# Discretisation (dt, decay, reset) and source profiles
# --------------------------------------------------------------------------------------


def _arr(node: Any, name: str) -> NDArray[np.float64]:
    return np.asarray(getattr(node, name), dtype=np.float64)


def _close(a: NDArray[np.float64], b: float, rtol: float = 1e-4) -> bool:
    return bool(a.size) and bool(np.all(np.abs(a - b) <= rtol * abs(b)))


def _same(values: list[NDArray[np.float64]], rtol: float = 1e-4) -> float | None:
    v = np.concatenate([np.asarray(x, np.float64).reshape(-1) for x in values]) if values else \
        np.zeros(0)
    if not v.size or not np.all(np.isfinite(v)) or np.any(v <= 0):
        return None
    ref = float(np.median(v))
    return ref if _close(v, ref, rtol) else None


def _dynamics(flat: _Flat) -> list[tuple[str, str, dict[str, NDArray[np.float64]]]]:
    out = []
    for name, node in flat.nodes.items():
        t = _tname(node)
        if t in ("CubaLIF", "CubaLI"):
            out.append((name, t, {"tau_mem": _arr(node, "tau_mem"), "r": _arr(node, "r"),
                                  "tau_syn": _arr(node, "tau_syn"),
                                  "w_in": _arr(node, "w_in")}))
        elif t in ("LIF", "LI"):
            out.append((name, t, {"tau_mem": _arr(node, "tau"), "r": _arr(node, "r")}))
        elif t in ("IF", "I"):
            out.append((name, t, {"r": _arr(node, "r")}))
    return out


def _profile(flat: _Flat, dt: float | None) -> tuple[str, float | None, Decay, Reset, str, str]:
    """(profile, dt, decay, reset, gain, why) from the exporter's conventions."""
    dyn = _dynamics(flat)
    leaky = [d for _, _, d in dyn if "tau_mem" in d]
    rs = [d["r"] for _, _, d in dyn]
    w_ins = [d["w_in"] for d in leaky if "w_in" in d]
    taus = [d["tau_mem"] for d in leaky] + [d["tau_syn"] for d in leaky if "tau_syn" in d]
    if not dyn:
        return "generic", dt, "euler", "subtract", "literal", "no dynamics to infer from"
    all_r1 = all(_close(r, 1.0, 1e-9) for r in rs)
    all_w1 = all(_close(w, 1.0, 1e-9) for w in w_ins)

    def ok(cand: float | None) -> bool:
        if cand is None or (dt is not None and not math.isclose(cand, dt, rel_tol=1e-3)):
            return False
        return all(np.all(t >= cand * (1 - 1e-9)) for t in taus)

    if leaky:
        # snnTorch / lava-dl netx: r = tau_mem/dt, w_in = tau_syn/dt (unit gains).
        cands = [d["tau_mem"] / d["r"] for d in leaky]
        cands += [d["tau_syn"] / d["w_in"] for d in leaky if "tau_syn" in d]
        c = _same(cands)
        if not all_r1 and ok(c):
            return "snntorch", c, "euler", "subtract", "literal", "r = tau_mem/dt"
        # Spyx (NNX): r = beta = 1 - dt/tau; it ignores r and w_in (unit gains).
        spyx = [d["tau_mem"] * (1 - d["r"]) for d in leaky]
        c = _same(spyx)
        if not all_r1 and ok(c) and all_w1:
            return "spyx", c, "euler", "subtract", "unit", "r = 1 - dt/tau"
        # Rockpool: r = tau exp(-dt/tau) / dt  =>  dt = tau W0(1/r).
        from scipy.special import lambertw

        rock = [d["tau_mem"] * np.real(lambertw(1.0 / d["r"])) for d in leaky
                if np.all(d["r"] > 0)]
        c = _same(rock, 1e-3) if len(rock) == len(leaky) else None
        if not all_r1 and ok(c) and all_w1:
            return "rockpool", c, "exp", "subtract", "literal", "r = tau exp(-dt/tau)/dt"
    if all_r1 and all_w1:
        if all(np.all(t > 1.0) for t in taus):
            if dt is None or math.isclose(dt, 1.0):
                return ("sinabs", 1.0, "exp", "subtract", "literal",
                        "r = 1, time constants in steps")
        if taus and dt is not None:
            return "norse", dt, "euler", "zero", "norse", "r = 1, w_in = 1"
        if taus:
            raise _imp("NIR graph", "cannot infer dt: r = 1 and w_in = 1 with time constants "
                       "in seconds (a Norse-style export, which does not record dt). Pass "
                       "dt=... (Norse's default is 1e-3 s)", "dt")
    if dt is not None:
        return "generic", dt, "euler", "subtract", "literal", "dt given by the caller"
    raise _imp("NIR graph", "cannot infer dt from the parameters (no known exporter "
               "convention matches); pass dt=...", "dt")


def _discretisation(flat: _Flat, meta: Mapping[str, Any], dt: float | None,
                    decay: str | None, reset: str | None, notes: list[str]) -> Discretisation:
    sources: dict[str, str] = {}
    m_dt = meta.get("neurochip.dt")
    if isinstance(m_dt, np.ndarray) and m_dt.size == 1:
        m_dt = m_dt.item()
    m_dt = None if m_dt is None else check_positive_finite(
        m_dt, "NIR graph", "metadata neurochip.dt", ModelImportError)
    m_decay = meta.get("neurochip.decay")
    m_reset = meta.get("neurochip.reset")
    m_lat = meta.get("neurochip.synaptic_delay")
    if m_lat is not None and int(m_lat) != 1:
        raise _imp("NIR graph", f"metadata neurochip.synaptic_delay = {m_lat}; this chip adds "
                   "exactly one step per projection", "metadata")
    if dt is not None:
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise _imp("NIR import", f"dt must be a positive number of seconds, got {dt!r}", "dt")
        sources["dt"] = "caller"
    elif m_dt is not None:
        dt = float(m_dt)
        sources["dt"] = "metadata"
    if m_decay is not None and m_decay not in ("euler", "exp"):
        raise _imp("NIR graph", f"metadata neurochip.decay = {m_decay!r}", "metadata")
    if m_reset is not None and m_reset not in ("zero", "subtract"):
        raise _imp("NIR graph", f"metadata neurochip.reset = {m_reset!r}", "metadata")
    if decay is not None and decay not in ("euler", "exp"):
        raise _imp("NIR import", f"decay must be 'euler' or 'exp', got {decay!r}", "decay")
    if reset is not None and reset not in ("zero", "subtract"):
        raise _imp("NIR import", f"reset must be 'zero' or 'subtract', got {reset!r}", "reset")
    has_meta = any(k.startswith("neurochip.") for k in meta)
    if has_meta:
        prof = ("neurochip", dt, "euler", "subtract", "literal", "neurochip metadata")
    else:
        prof = _profile(flat, dt)
    name, p_dt, p_decay, p_reset, gain, why = prof
    if dt is None:
        dt = p_dt
        if dt is not None:
            sources["dt"] = f"profile {name} ({why})"
    final_decay: Any = decay or m_decay or p_decay
    sources["decay"] = "caller" if decay else ("metadata" if m_decay else f"profile {name}")
    final_reset: Any = reset or m_reset or p_reset
    sources["reset"] = "caller" if reset else ("metadata" if m_reset else f"profile {name}")
    if sources.get("dt") == "caller" and m_dt is not None and not math.isclose(dt or 0, m_dt):
        notes.append(f"dt={dt!r} from the caller overrides the file's neurochip.dt={m_dt!r}")
    for opt, given, m in (("decay", decay, m_decay), ("reset", reset, m_reset)):
        if given and m and given != m:
            notes.append(f"{opt}={given!r} from the caller overrides the file's "
                         f"neurochip.{opt}={m!r}")
    if name == "norse":
        notes.append("source profile 'norse': a CubaLIF's input enters its current with gain "
                     "w_in (Norse's LIFCell adds the weighted spike to the current in full), "
                     "the membrane with gain r*dt/tau_mem")
    elif name in ("spyx", "rockpool"):
        notes.append(f"source profile '{name}': gains follow "
                     + ("unit gains (the exporter ignores r and w_in)" if gain == "unit" else
                        "the literal reading of r and w_in, which differs from that "
                        "framework's own model; check the float/chip agreement"))
    gain_mode: Any = gain
    return Discretisation(dt, final_decay, final_reset, name, gain_mode, sources)


# --------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------


class _Shapes:
    def __init__(self, flat: _Flat, preds: dict[str, list[str]]) -> None:
        self.flat = flat
        self.preds = preds
        self.memo: dict[str, tuple[int, ...]] = {}
        self.busy: set[str] = set()

    def of(self, name: str) -> tuple[int, ...]:
        if name in self.memo:
            return self.memo[name]
        node = self.flat.nodes[name]
        t = _tname(node)
        if name in self.busy:
            raise _imp(_node_where(name, node), "is on a cycle of linear nodes with no neuron "
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
            raise _imp(_node_where(name, node), "has no incoming edge: nothing drives it",
                       "edges")
        shapes = [self.of(p) for p in ps]
        sizes = {math.prod(s) for s in shapes}
        if len(sizes) != 1:
            raise _imp(_node_where(name, node), f"its inputs have different sizes "
                       f"{[tuple(s) for s in shapes]} ({ps})", "input")
        best = max(shapes, key=len)
        return tuple(best)

    def _compute(self, name: str, node: Any, t: str) -> tuple[int, ...]:
        w = _node_where(name, node)
        if t == "Input":
            return _shape_arr(node.input_type["input"], w)
        if t == "Output":
            return self.input_of(name)
        if t == _PORT or (t == "Delay" and np.asarray(node.delay).ndim == 0):
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
                raise _imp(w, f"weight of shape {W.shape}: stacked (batched) weights are not "
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
                raise _imp(w, f"start_dim={node.start_dim}, end_dim={node.end_dim} do not fit "
                           f"its input shape {ins}", "start_dim")
            return (*ins[:s], math.prod(ins[s:e + 1]), *ins[e + 1:])
        if t in ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d"):
            return self.conv(name).out_shape
        raise _imp(w, "unsupported node type", "type")  # pragma: no cover - filtered earlier

    def conv(self, name: str) -> Conv:
        node = self.flat.nodes[name]
        t = _tname(node)
        w = _node_where(name, node)
        ins = self.input_of(name)
        if t in ("SumPool2d", "AvgPool2d"):
            if len(ins) != 3:
                raise _imp(w, f"needs a (C, H, W) input, its input has shape {ins}", "input")
            pad = _ints(node.padding, 2, w, "padding")
            try:
                return pool("sum" if t == "SumPool2d" else "avg", ins,
                            _ints(node.kernel_size, 2, w, "kernel_size"),
                            _ints(node.stride, 2, w, "stride"), padding=pad)
            except IRError as exc:
                raise _imp(w, exc.message, exc.field) from None
        W = np.asarray(node.weight, np.float64)
        nd = 1 if t == "Conv1d" else 2
        if W.ndim != nd + 2:
            raise _imp(w, f"weight must be (C_out, C_in/groups, *kernel) with {nd} spatial "
                       f"dims, got {W.shape}", "weight")
        groups = int(np.asarray(node.groups))
        c_in = int(W.shape[1]) * groups
        decl = node.input_shape
        if decl is not None and np.asarray(decl).size:
            spatial = _ints(decl, nd, w, "input_shape")
            full = (c_in, *spatial)
            if math.prod(full) != math.prod(ins):
                raise _imp(w, f"input_shape {spatial} with {c_in} channels does not match its "
                           f"input of shape {ins}", "input_shape")
            ins = full
        elif len(ins) != nd + 1:
            raise _imp(w, f"needs a (C, *spatial) input with {nd} spatial dims (or an "
                       f"input_shape), its input has shape {ins}", "input_shape")
        stride = _ints(node.stride, nd, w, "stride")
        dil = _ints(node.dilation, nd, w, "dilation")
        pad = node.padding
        kernel = W.shape[2:]
        if isinstance(pad, (str, bytes)) or (
                isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO"):
            ptxt = _s(pad.item() if isinstance(pad, np.ndarray) else pad)
            if ptxt == "valid":
                pads = [(0, 0)] * nd
            elif ptxt == "same":
                if any(s != 1 for s in stride):
                    raise _imp(w, "padding='same' needs stride 1 (as in PyTorch)", "padding")
                pads = []
                for k, d in zip(kernel, dil):
                    tot = d * (k - 1)
                    pads.append((tot // 2, tot - tot // 2))
            else:
                raise _imp(w, f"padding {ptxt!r} is not 'same', 'valid' or ints", "padding")
        else:
            pads = [(p, p) for p in _ints(pad, nd, w, "padding")]
        # bound the layer before it is built: neurons and synapses it would create
        if any(s_ <= 0 for s_ in stride) or any(d <= 0 for d in dil) or \
                any(a < 0 or b < 0 for a, b in pads):
            raise _imp(w, f"stride {stride} and dilation {dil} must be positive, padding "
                       f"{pads} non-negative", "padding")
        out_sp = [(n + a + b - d * (k - 1) - 1) // s_ + 1
                  for n, (a, b), d, k, s_ in zip(ins[1:], pads, dil, kernel, stride)]
        out_n = check_alloc((W.shape[0], *[max(o, 0) for o in out_sp]), w, "padding",
                            MAX_LAYER_NEURONS, ModelImportError)
        check_alloc((*out_n, *W.shape[1:]), w, "weight", error=ModelImportError)
        try:
            return Conv(W, ins, stride=stride, padding=tuple(pads), dilation=dil, groups=groups)
        except IRError as exc:
            raise _imp(w, exc.message, exc.field) from None


def _shape_arr(v: Any, where: str) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(np.int64).reshape(-1)
    if not a.size or np.any(a <= 0):
        raise _imp(where, f"has no usable shape ({v!r})", "shape")
    return tuple(int(x) for x in a)


def _ints(v: Any, n: int, where: str, fld: str) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).reshape(-1)
    try:
        ai = a.astype(np.int64)
    except (TypeError, ValueError):
        raise _imp(where, f"{fld} must be integers, got {v!r}", fld) from None
    if ai.size == 1:
        ai = np.repeat(ai, n)
    if ai.size != n:
        raise _imp(where, f"{fld} must have {n} values, got {v!r}", fld)
    return tuple(int(x) for x in ai)


# --------------------------------------------------------------------------------------
# Linear paths between spiking nodes
# --------------------------------------------------------------------------------------


class _Ops:
    def __init__(self, flat: _Flat, shapes: _Shapes, disc: Discretisation) -> None:
        self.flat, self.shapes, self.disc = flat, shapes, disc
        self.memo: dict[str, LinearOp] = {}

    def of(self, name: str) -> LinearOp:
        if name not in self.memo:
            self.memo[name] = self._make(name)
        return self.memo[name]

    def _make(self, name: str) -> LinearOp:
        node = self.flat.nodes[name]
        t = _tname(node)
        w = _node_where(name, node)
        n_in = math.prod(self.shapes.input_of(name))
        if t in _WIRES:
            return LinearOp("wire")
        if t in ("Affine", "Linear"):
            W = np.asarray(node.weight, np.float64)
            if W.shape[1] != n_in:
                raise _imp(w, f"weight expects {W.shape[1]} inputs, gets {n_in}", "weight")
            check_finite(W, w, "weight")
            b = None
            if t == "Affine":
                b = np.asarray(node.bias, np.float64).reshape(-1)
                if b.size == 1:
                    b = np.full(W.shape[0], float(b[0]))
                if b.shape != (W.shape[0],):
                    raise _imp(w, f"bias has shape {np.asarray(node.bias).shape}, expected "
                               f"({W.shape[0]},)", "bias")
                check_finite(b, w, "bias")
            return LinearOp("mix", syn=Dense(W), bias=b if b is not None and np.any(b) else None)
        if t == "Scale":
            s = np.asarray(node.scale, np.float64).reshape(-1)
            if s.size == 1:
                s = np.full(n_in, float(s[0]))
            if s.size != n_in:
                raise _imp(w, f"scale has {s.size} values, its input {n_in}", "scale")
            check_finite(s, w, "scale")
            return LinearOp("scale", scale=s)
        if t == "Delay":
            d = np.asarray(node.delay, np.float64).reshape(-1)
            if d.size == 1:
                d = np.full(n_in, float(d[0]))
            if d.size != n_in:
                raise _imp(w, f"delay has {d.size} values, its input {n_in}", "delay")
            if self.disc.dt is None:
                raise _imp(w, "a Delay needs dt (pass dt=...)", "delay")
            steps = d / self.disc.dt
            r = np.rint(steps)
            if np.any(np.abs(steps - r) > 1e-6 * np.maximum(1.0, np.abs(r))) or np.any(r < 0):
                raise _imp(w, f"delays {d.tolist()[:4]}... s are not whole non-negative "
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
                raise _imp(w, f"bias has {b.size} values for {c_out} channels", "bias")
            check_finite(b, w, "bias")
            check_finite(np.asarray(conv.weight, np.float64), w, "weight")
            if np.any(b):
                bias = np.repeat(b, math.prod(conv.out_shape[1:]))
        return LinearOp("mix", syn=conv, bias=bias)


# --------------------------------------------------------------------------------------
# Neurons
# --------------------------------------------------------------------------------------


@dataclass
class _Pop:
    node_name: str
    kind: str
    shape: tuple[int, ...]
    alpha: float
    beta: float
    threshold: NDArray[np.float64] | None
    bias: NDArray[np.float64]
    gain: NDArray[np.float64]  # multiplies every input (weights and linear-node biases)
    spiking: bool
    reset: Reset


def _uniform(x: NDArray[np.float64], where: str, fld: str) -> float:
    x = np.asarray(x, np.float64).reshape(-1)
    if not x.size:
        raise _imp(where, f"{fld} is empty", fld)
    if np.ptp(x) > 1e-9 * max(1.0, float(np.abs(x).max())):
        raise _imp(where, f"{fld} differs between neurons ({float(x.min()):.6g} .. "
                   f"{float(x.max()):.6g}); the chip has one decay per population", fld)
    return float(x[0])


def _decay(tau: NDArray[np.float64], disc: Discretisation, where: str, fld: str) -> float:
    tau = np.asarray(tau, np.float64).reshape(-1)
    if not np.all(np.isfinite(tau)) or np.any(tau <= 0):
        raise _imp(where, f"{fld} must be finite and > 0", fld)
    if disc.dt is None:
        raise _imp(where, f"{fld} needs a time step; pass dt=...", "dt")
    x = disc.dt / tau
    if disc.decay == "exp":
        return _uniform(np.exp(-x), where, fld)
    if np.any(x > 1 + 1e-9):
        raise _imp(where, f"dt = {disc.dt} exceeds {fld} = {float(tau.min()):.6g}: the Euler "
                   "decay 1 - dt/tau would be negative", fld)
    return max(0.0, _uniform(1.0 - x, where, fld))


def _neuron(name: str, node: Any, shape: tuple[int, ...], disc: Discretisation) -> _Pop:
    t = _tname(node)
    w = _node_where(name, node)
    n = math.prod(shape)

    def arr(key: str, default: float | None = None) -> NDArray[np.float64]:
        v = getattr(node, key, None)
        if v is None:
            if default is None:
                raise _imp(w, f"lacks {key}", key)
            return np.full(n, default)
        a = np.asarray(v, np.float64).reshape(-1)
        if a.size == 1:
            a = np.full(n, float(a[0]))
        if a.size != n:
            raise _imp(w, f"{key} has {a.size} values for {n} neurons", key)
        check_finite(a, w, key)
        return a

    spiking = t in SPIKING_TYPES
    unit = disc.gain == "unit"
    if t in ("CubaLIF", "CubaLI"):
        alpha = _decay(arr("tau_syn"), disc, w, "tau_syn")
        beta = _decay(arr("tau_mem"), disc, w, "tau_mem")
        # Euler: input gain w_in*dt/tau_syn = w_in*(1 - alpha); Norse adds w_in*x in full.
        syn_gain = arr("w_in", 1.0) * (1.0 if disc.gain == "norse" else 1 - alpha)
        gain = np.ones(n) if unit else syn_gain * arr("r") * (1 - beta)
        bias = (1 - beta) * arr("v_leak", 0.0)
    elif t in ("LIF", "LI"):
        alpha = 0.0
        beta = _decay(arr("tau"), disc, w, "tau")
        gain = np.ones(n) if unit else arr("r") * (1 - beta)
        bias = (1 - beta) * arr("v_leak", 0.0)
    elif t in ("IF", "I"):
        if disc.dt is None and not unit:
            raise _imp(w, "needs a time step to integrate r*x; pass dt=...", "dt")
        alpha, beta = 0.0, 1.0
        gain = np.ones(n) if unit else arr("r") * float(disc.dt or 1.0)
        bias = np.zeros(n)
    else:  # Threshold: memoryless Heaviside of its input
        alpha, beta = 0.0, 0.0
        gain = np.ones(n)
        bias = np.zeros(n)
    threshold = None
    if spiking:
        threshold = arr("threshold" if t == "Threshold" else "v_threshold")
        if np.any(threshold < 0):
            raise _imp(w, "negative thresholds cannot be represented (the chip's threshold "
                       "is unsigned)", "v_threshold")
        if t != "Threshold":
            v_reset = arr("v_reset", 0.0)
            if np.any(v_reset != 0):
                raise _imp(w, f"v_reset = {float(v_reset[v_reset != 0][0]):.6g}: the chip "
                           "resets to 0 or subtracts the threshold; a non-zero reset "
                           "potential cannot be represented", "v_reset")
    reset: Reset = "zero" if t == "Threshold" else disc.reset
    return _Pop(name, t, shape, alpha, beta, threshold, bias, gain, spiking, reset)


# --------------------------------------------------------------------------------------
# The importer
# --------------------------------------------------------------------------------------


def _check_name(name: str, what: str) -> None:
    import re

    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$", name):
        raise _imp(f"{what} '{name}'", "its name must use letters, digits, '_', '.', ':' or "
                   "'-' (rename it in the exporter)", "name")


def from_nir(graph: Any, *, dt: float | None = None, decay: str | None = None,
             reset: str | None = None, source: str = "<NIRGraph>",
             version: str | None = None, _notes: Sequence[str] = ()) -> Graph:
    """Convert a ``nir.NIRGraph`` into a float IR graph (see the module docstring)."""
    if type(graph).__name__ != "NIRGraph":
        raise _imp(source, f"expected a NIRGraph, got {type(graph).__name__}")
    flat = _Flat(notes=list(_notes))
    _flatten(graph, "", flat, 0)
    notes = flat.notes
    for name, node in flat.nodes.items():
        t = _tname(node)
        if t not in SUPPORTED_TYPES and t != _PORT:
            raise _imp(_node_where(name, node), f"node type {t} is not supported (supported: "
                       f"{', '.join(SUPPORTED_TYPES)})", "type")
    meta = {str(k): _meta_value(v) for k, v in (getattr(graph, "metadata", None) or {}).items()}
    disc = _discretisation(flat, meta, dt, decay, reset, notes)
    succ: dict[str, list[str]] = {k: [] for k in flat.nodes}
    preds: dict[str, list[str]] = {k: [] for k in flat.nodes}
    for a, b in flat.edges:
        succ[a].append(b)
        preds[b].append(a)
    top_inputs = [k for k, v in flat.nodes.items() if _tname(v) == "Input"]
    top_outputs = [k for k, v in flat.nodes.items() if _tname(v) == "Output"]
    if not top_inputs:
        raise _imp(source, "the graph has no Input node", "nodes")
    if not top_outputs:
        notes.append("the graph has no Output node; read populations by name")
    for k in top_inputs:
        if preds[k]:
            raise _imp(_node_where(k, flat.nodes[k]), "an Input node cannot have incoming "
                       "edges", "edges")
    for k in top_outputs:
        if succ[k]:
            raise _imp(_node_where(k, flat.nodes[k]), "an Output node cannot have outgoing "
                       "edges", "edges")
    shapes = _Shapes(flat, preds)
    ops = _Ops(flat, shapes, disc)
    neuron_names = [k for k, v in flat.nodes.items() if _tname(v) in NEURON_TYPES]
    pops: dict[str, _Pop] = {}
    for k in neuron_names:
        pops[k] = _neuron(k, flat.nodes[k], shapes.of(k), disc)
    # Every linear node must be driven and used.
    for k, v in flat.nodes.items():
        t = _tname(v)
        if t in LINEAR_TYPES or t == _PORT:
            if not preds[k]:
                raise _imp(_node_where(k, v), "has no incoming edge: nothing drives it",
                           "edges")
            shapes.of(k)
            if not succ[k]:
                raise _imp(_node_where(k, v), "has no outgoing edge: its result would be "
                           "dropped", "edges")
    pop_name = {k: flat.pop_name.get(k, k) for k in neuron_names}
    for k in top_inputs:
        _check_name(k, "input")
    for pn in pop_name.values():
        _check_name(pn, "node")
    # Paths from every spike source through linear nodes to neurons / outputs.
    sources = top_inputs + [k for k in neuron_names]
    projections: list[tuple[str, list[str], str]] = []
    out_map: dict[str, str] = {}
    for s in sources:
        for path, end in _paths(s, succ, flat):
            t_end = _tname(flat.nodes[end])
            if s in pops and not pops[s].spiking and t_end != "Output":
                raise _imp(_node_where(s, flat.nodes[s]), "is a non-spiking readout but feeds "
                           f"'{end}': the chip sends spikes only, never voltages", "edges")
            if t_end == "Output":
                kinds = {_tname(flat.nodes[p]) for p in path}
                if s in top_inputs or not kinds <= set(_WIRES):
                    raise _imp(_node_where(end, flat.nodes[end]),
                               f"reads '{s}' through {path or 'nothing'}: an output must read "
                               "a population directly (its spikes, or the voltage of a "
                               "readout: add an LI/CubaLI node)", "edges")
                if end in out_map and out_map[end] != pop_name[s]:
                    raise _imp(_node_where(end, flat.nodes[end]), "reads several populations "
                               "(their sum is not computed on the chip)", "edges")
                out_map[end] = pop_name[s]
                continue
            projections.append((s, path, end))
    # Biases of linear nodes, carried forward to the neurons they reach.
    in_bias: dict[str, NDArray[np.float64]] = {}
    for k in flat.nodes:
        t = _tname(flat.nodes[k])
        if t not in ("Affine", "Conv1d", "Conv2d"):
            continue
        o = ops.of(k)
        if o.bias is None:
            continue
        for path, end in _paths(k, succ, flat):
            if _tname(flat.nodes[end]) == "Output":
                continue
            bvec = o.bias
            for step in path:
                bvec = apply_op(ops.of(step), bvec)
            in_bias[end] = in_bias[end] + bvec if end in in_bias else bvec
    nodes: dict[str, Input | Neurons] = {}
    for k in top_inputs:
        nodes[k] = Input(shapes.of(k))
    for k, pp in pops.items():
        bias = pp.bias.copy()
        if k in in_bias:
            ib = in_bias[k] * pp.gain
            if pp.alpha >= 1.0:
                raise _imp(_node_where(k, flat.nodes[k]), "a constant input bias into a "
                           "synapse that never decays (alpha = 1) grows without bound",
                           "bias")
            if pp.alpha > 0:
                notes.append(f"'{pop_name[k]}': the bias of its input layer passes the synaptic "
                             f"filter (alpha = {pp.alpha:.4g}); the chip adds its steady-state "
                             "value to the membrane, so the first steps differ")
                ib = ib / (1.0 - pp.alpha)
            bias = bias + ib
        try:
            nodes[pop_name[k]] = Neurons(pp.shape, alpha=pp.alpha, beta=pp.beta,
                                         threshold=pp.threshold, bias=bias, reset=pp.reset,
                                         spiking=pp.spiking)
        except IRError as exc:
            raise _imp(_node_where(k, flat.nodes[k]), exc.message, exc.field) from None
    edges: list[Projection] = []
    used: set[str] = set(nodes)
    for s, path, end in projections:
        src = pop_name.get(s, s)
        dst = pop_name[end]
        n_pre = math.prod(shapes.of(s))
        where = f"path {s} -> {' -> '.join([*path, end])}"
        syn, d, dpre, dpost = compose(path, [ops.of(x) for x in path], n_pre)
        if syn.shape != (nodes[dst].size, n_pre):
            raise _imp(_node_where(end, flat.nodes[end]), f"receives {syn.shape[0]} values "
                       f"from '{s}' but has {nodes[dst].size} neurons ({where})", "input")
        gain = pops[end].gain
        if not np.all(gain == 1):
            syn = scale_rows(syn, gain)
        mixes = [x for x in path if _tname(flat.nodes[x]) not in (*_WIRES, "Delay", "Scale")]
        base = ":".join(mixes or path) if path else f"{src}:{dst}"
        pname = base if base not in used else f"{base}:{src}"
        nth = 2
        while pname in used:
            pname = f"{base}:{src}:{nth}"
            nth += 1
        used.add(pname)
        edges.append(Projection(pname, src, dst, syn, delay=d, delay_pre=dpre, delay_post=dpost))
    for n_ in notes:
        warnings.warn(n_, NIRImportWarning, stacklevel=3)
    md: dict[str, Any] = {
        "import": {
            "format": "nir", "source": source, "nir_version": version,
            "profile": disc.profile, "dt": disc.dt, "decay": disc.decay, "reset": disc.reset,
            "option_sources": dict(disc.sources), "notes": list(notes),
            "nodes": {pop_name[k]: {"nir_node": k, "type": pops[k].kind} for k in pops},
        },
        "file_metadata": {k: v for k, v in meta.items()
                          if isinstance(v, (str, int, float, bool))},
    }
    return Graph(nodes, tuple(edges), out_map, md)


def _paths(start: str, succ: dict[str, list[str]], flat: _Flat
           ) -> list[tuple[list[str], str]]:
    """Every path start -> (linear nodes)* -> neuron or Output (DFS; linear cycles refused)."""
    out: list[tuple[list[str], str]] = []
    stack: list[tuple[str, list[str]]] = [(n, []) for n in reversed(succ[start])]
    while stack:
        node, path = stack.pop()
        t = _tname(flat.nodes[node])
        if t in NEURON_TYPES or t == "Output":
            out.append((path, node))
            continue
        if node in path:
            raise _imp(_node_where(node, flat.nodes[node]), "is on a cycle of linear nodes "
                       "with no neuron on it", "edges")
        for nxt in reversed(succ[node]):
            stack.append((nxt, [*path, node]))
    return out


# ======================================================================================
# Writing
# ======================================================================================


def _f64(x: Any) -> NDArray[np.float64]:
    return np.asarray(x, np.float64)


def _neuron_node(name: str, p: Neurons, dt: float) -> tuple[Any, NDArray[np.float64] | None]:
    """A NIR neuron node realising population p at dt; the bias it could not hold."""
    where = f"population '{name}'"
    a, b = p.alpha, p.beta
    shape = p.shape
    bias = p.bias.reshape(shape)
    if a >= 1.0:
        raise ModelImportError("alpha = 1 (a synaptic current that never decays) has no NIR "
                               "form", where=where, field="alpha")
    leftover = None
    th = None if p.threshold is None else p.threshold.reshape(shape)
    if a > 0 and b >= 1.0:
        raise ModelImportError("a synaptic filter (alpha > 0) on an integrating membrane "
                               "(beta = 1) has no NIR form", where=where, field="beta")
    if b >= 1.0:  # IF / I: no leak term, the bias must ride on an incoming Affine
        r = np.full(shape, 1.0 / dt)
        leftover = bias if np.any(bias) else None
        node = nir.IF(r=r, v_threshold=th, v_reset=np.zeros(shape)) if p.spiking else nir.I(r=r)
        return node, leftover
    tau_mem = np.full(shape, dt / (1.0 - b))
    v_leak = bias / (1.0 - b)
    if a == 0:
        r = tau_mem / dt
        if p.spiking:
            return nir.LIF(tau=tau_mem, r=r, v_leak=v_leak, v_threshold=th,
                           v_reset=np.zeros(shape)), None
        return nir.LI(tau=tau_mem, r=r, v_leak=v_leak), None
    tau_syn = np.full(shape, dt / (1.0 - a))
    kw = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=v_leak,
              w_in=tau_syn / dt)
    if p.spiking:
        return nir.CubaLIF(v_threshold=th, v_reset=np.zeros(shape), **kw), None
    return nir.CubaLI(**kw), None


def to_nir(model: Graph | Mapping[str, Any], *, dt: float = 1e-4,
           metadata: Mapping[str, Any] | None = None) -> Any:
    """A ``nir.NIRGraph`` for a float IR graph (or a layer description, see
    :func:`compiler.ir.layered_graph`), with neurochip's conventions in its metadata."""
    g = model if isinstance(model, Graph) else layered_graph(**dict(model))
    if g.quantized:
        raise ModelImportError("write the float graph, not a quantized one", where="write_nir")
    if not (math.isfinite(dt) and dt > 0):
        raise ModelImportError(f"dt must be > 0, got {dt!r}", where="write_nir", field="dt")
    resets = {p.reset for p in g.populations.values()
              if p.spiking and not (p.alpha == 0 and p.beta == 0)}
    if len(resets) > 1:
        raise ModelImportError(f"populations use different reset modes {sorted(resets)}; a NIR "
                               "file records one (neurochip.reset)", where="write_nir",
                               field="reset")
    reset = resets.pop() if resets else "subtract"
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    leftovers: dict[str, NDArray[np.float64]] = {}
    for name, node in g.nodes.items():
        if isinstance(node, Input):
            nodes[name] = nir.Input(input_type=np.asarray(node.shape))
        else:
            nodes[name], lo = _neuron_node(name, node, dt)
            if lo is not None:
                leftovers[name] = lo.reshape(-1)
    for e in g.edges:
        pre, post = g.nodes[e.pre], g.nodes[e.post]
        assert isinstance(post, Neurons)
        chain: list[tuple[str, Any]] = []
        if e.delay_pre is not None or e.delay:
            d = np.full(pre.size, float(e.delay)) + (
                0.0 if e.delay_pre is None else e.delay_pre.astype(np.float64))
            chain.append((f"{e.name}.delay", nir.Delay(delay=(d * dt).reshape(pre.shape))))
        syn = e.synapses
        bias = leftovers.pop(e.post, None)
        if isinstance(syn, Conv):
            if syn.in_shape != pre.shape:
                raise ModelImportError(f"the convolution reads shape {syn.in_shape} but "
                                       f"'{e.pre}' has shape {pre.shape}; give the source "
                                       "that shape", where=f"projection '{e.name}'")
            if any(a != b for a, b in syn.padding):
                raise ModelImportError("asymmetric padding has no NIR form",
                                       where=f"projection '{e.name}'", field="padding")
            nd = len(syn.kernel)
            cls = nir.Conv1d if nd == 1 else nir.Conv2d
            spatial = syn.in_shape[1] if nd == 1 else tuple(syn.in_shape[1:])
            cb = np.zeros(syn.out_shape[0])
            if bias is not None:
                per = bias.reshape(syn.out_shape[0], -1)
                if not np.all(per == per[:, :1]):
                    raise ModelImportError("a per-neuron bias on an integrating population fed "
                                           "by a convolution has no NIR form",
                                           where=f"population '{e.post}'", field="bias")
                cb = per[:, 0].copy()
            pads = [a for a, _ in syn.padding]
            wnode = cls(input_shape=spatial, weight=_f64(syn.weight),
                        stride=syn.stride[0] if nd == 1 else tuple(syn.stride),
                        padding=pads[0] if nd == 1 else tuple(pads),
                        dilation=syn.dilation[0] if nd == 1 else tuple(syn.dilation),
                        groups=syn.groups, bias=cb)
            if len(pre.shape) != len(syn.in_shape):
                raise ModelImportError("shape mismatch", where=f"projection '{e.name}'")
            chain.append((e.name, wnode))
            if syn.out_shape != post.shape:
                chain.append((f"{e.name}.flatten", nir.Flatten(
                    input_type={"input": np.asarray(syn.out_shape)}, start_dim=0, end_dim=-1)))
        else:
            if len(pre.shape) > 1:
                chain.insert(0, (f"{e.name}.flatten", nir.Flatten(
                    input_type={"input": np.asarray(pre.shape)}, start_dim=0, end_dim=-1)))
            W = _f64(syn.weight if isinstance(syn, Dense) else syn.to_csr().toarray())
            wnode = (nir.Affine(weight=W, bias=bias) if bias is not None
                     else nir.Linear(weight=W))
            chain.append((e.name, wnode))
        if e.delay_post is not None:
            chain.append((f"{e.name}.delay_post", nir.Delay(
                delay=(e.delay_post.astype(np.float64) * dt))))
        prev = e.pre
        for cname, cnode in chain:
            if cname in nodes:
                raise ModelImportError(f"node name {cname!r} is taken", where="write_nir")
            nodes[cname] = cnode
            edges.append((prev, cname))
            prev = cname
        edges.append((prev, e.post))
    if leftovers:
        name = next(iter(leftovers))
        raise ModelImportError("an integrating population (beta = 1) with a bias needs an "
                               "incoming dense or conv projection to carry it in NIR",
                               where=f"population '{name}'", field="bias")
    for oname, src in g.outputs.items():
        oname_n = oname if oname not in nodes else f"{oname}.out"
        nodes[oname_n] = nir.Output(output_type=np.asarray(g.nodes[src].shape))
        edges.append((src, oname_n))
    md: dict[str, Any] = {"neurochip.dt": float(dt), "neurochip.decay": "euler",
                          "neurochip.reset": reset, "neurochip.synaptic_delay": 1,
                          "neurochip.version": __version__}
    for k, v in (metadata or {}).items():
        if k.startswith("neurochip.") and k in md and v != md[k]:
            raise ModelImportError(f"metadata {k}={v!r} contradicts the graph ({md[k]!r})",
                                   where="write_nir", field="metadata")
        md[str(k)] = v
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=md, type_check=False)


def write_nir(model: Graph | Mapping[str, Any], path: str | Path,
              metadata: Mapping[str, Any] | None = None, *, dt: float = 1e-4) -> Path:
    """Write ``model`` (a float IR graph or a layer description) as a ``.nir`` file.

    See :func:`to_nir`; ``metadata`` adds keys to the top graph's metadata. Returns the path.
    """
    g = to_nir(model, dt=dt, metadata=metadata)
    p = Path(path)
    with atomic_path(p, suffix=".nir") as tmp:
        nir.write(str(tmp), g)
    return p

