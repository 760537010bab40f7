"""Source profiles (the exporters' conventions) and the discretisation of a file: dt,
decay and reset from the caller, the file's ``neurochip.*`` metadata or the profile.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compiler.frontends.nir.base import Decay, Discretisation, Reset, err, tname
from compiler.frontends.nir.flatten import Flat
from neurochip.core.errors import ModelImportError
from neurochip.core.safeio import check_positive_finite

__all__ = ["discretisation"]


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


def _dynamics(flat: Flat) -> list[tuple[str, str, dict[str, NDArray[np.float64]]]]:
    out = []
    for name, node in flat.nodes.items():
        t = tname(node)
        if t in ("CubaLIF", "CubaLI"):
            out.append((name, t, {"tau_mem": _arr(node, "tau_mem"), "r": _arr(node, "r"),
                                  "tau_syn": _arr(node, "tau_syn"),
                                  "w_in": _arr(node, "w_in")}))
        elif t in ("LIF", "LI"):
            out.append((name, t, {"tau_mem": _arr(node, "tau"), "r": _arr(node, "r")}))
        elif t in ("IF", "I"):
            out.append((name, t, {"r": _arr(node, "r")}))
    return out


#: why a profile cannot tell the reset (None: the exporter has one reset, or a default
#: that its NIR export always means)
_RESET_UNKNOWN = {
    "snntorch": "snnTorch (and lava-dl) write reset_mechanism='zero' and 'subtract' models "
                "identically",
    "spyx": "Spyx writes zero- and subtract-reset models identically",
    "generic": "the file records no reset and no exporter convention determines it",
}


def _profile(flat: Flat, dt: float | None
             ) -> tuple[str, float | None, Decay, Reset | None, str, str]:
    """(profile, dt, decay, reset, gain, why) from the exporter's conventions; reset None
    when the convention does not determine it (the caller must say)."""
    dyn = _dynamics(flat)
    leaky = [d for _, _, d in dyn if "tau_mem" in d]
    rs = [d["r"] for _, _, d in dyn]
    w_ins = [d["w_in"] for d in leaky if "w_in" in d]
    taus = [d["tau_mem"] for d in leaky] + [d["tau_syn"] for d in leaky if "tau_syn" in d]
    if not dyn:
        return "generic", dt, "euler", None, "literal", "no dynamics to infer from"
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
            return "snntorch", c, "euler", None, "literal", "r = tau_mem/dt"
        # Spyx (NNX): r = beta = 1 - dt/tau; it ignores r and w_in (unit gains).
        spyx = [d["tau_mem"] * (1 - d["r"]) for d in leaky]
        c = _same(spyx)
        if not all_r1 and ok(c) and all_w1:
            return "spyx", c, "euler", None, "unit", "r = 1 - dt/tau"
        # Rockpool: r = tau exp(-dt/tau) / dt  =>  dt = tau W0(1/r).
        from scipy.special import lambertw

        rock = [d["tau_mem"] * np.real(lambertw(1.0 / d["r"])) for d in leaky
                if np.all(d["r"] > 0)]
        c = _same(rock, 1e-3) if len(rock) == len(leaky) else None
        if not all_r1 and ok(c) and all_w1:
            return "rockpool", c, "exp", "subtract", "literal", "r = tau exp(-dt/tau)/dt"
        cubas = [(k, d) for k, t, d in dyn if "tau_syn" in d]
        # Older snnTorch exports: r = tau_mem/dt but w_in = 1; snnTorch adds the weighted
        # input to its synaptic current in full (gain 1), whatever w_in says.
        c = _same([d["tau_mem"] / d["r"] for d in leaky])
        if cubas and not all_r1 and all_w1 and ok(c):
            flat.notes.append("source profile 'snntorch' (older export: r = tau_mem/dt, "
                              "w_in = 1): the input enters each CubaLIF's current with gain "
                              "1, as snnTorch's Synaptic adds it")
            return "snntorch", c, "euler", None, "norse", "r = tau_mem/dt, w_in = 1"
        # tau_syn and tau_mem swapped: r = tau_syn/dt and w_in = tau_mem/dt.
        sw = [d["tau_syn"] / d["r"] for _, d in cubas] + \
             [d["tau_mem"] / d["w_in"] for _, d in cubas]
        c = _same(sw)
        if cubas and len(cubas) == len(leaky) and not all_r1 and ok(c):
            for k, _ in cubas:
                node = copy.copy(flat.nodes[k])
                node.tau_syn, node.tau_mem = node.tau_mem, node.tau_syn
                flat.nodes[k] = node
                flat.notes.append(f"node '{k}' (CubaLIF): tau_syn and tau_mem read swapped: "
                                  "its r = tau_syn/dt and w_in = tau_mem/dt fit the snnTorch "
                                  "convention (r = tau_mem/dt) only that way. Check the "
                                  "exporter")
            return "snntorch", c, "euler", None, "literal", "r = tau_mem/dt (taus swapped)"
    if all_r1 and all_w1:
        if all(np.all(t > 1.0) for t in taus):
            if dt is None or math.isclose(dt, 1.0):
                return ("sinabs", 1.0, "exp", "subtract", "literal",
                        "r = 1, time constants in steps")
        if taus and dt is not None:
            return "norse", dt, "euler", "zero", "norse", "r = 1, w_in = 1"
        if taus:
            raise err(_tau_node(flat), "cannot infer dt: r = 1 and w_in = 1 with time "
                      f"constants in seconds ({_tau_range(taus)}): a Norse-style export, "
                      "which does not record the step it was trained or run with. Look for "
                      "dt in the script that trained or ran the model (Norse: the dt of "
                      "LIFParameters / the cell, or the dt passed to its NIR export) and "
                      "pass dt=...", "dt")
    if dt is not None:
        return "generic", dt, "euler", None, "literal", "dt given by the caller"
    raise err(_tau_node(flat), "cannot infer dt from the parameters: no known exporter "
              "convention (snnTorch r = tau_mem/dt, Spyx r = 1 - dt/tau, Rockpool "
              "r = tau exp(-dt/tau)/dt, Sinabs time constants in steps) matches "
              f"the file's numbers ({_tau_range(taus)}). Look for dt in the script that "
              "trained or ran the model and pass dt=...", "dt")


def _tau_node(flat: Flat) -> str:
    for name, node in flat.nodes.items():
        if tname(node) in ("CubaLIF", "CubaLI", "LIF", "LI", "IF", "I"):
            return f"node '{name}' ({tname(node)})"
    return "NIR graph"


def _tau_range(taus: list[NDArray[np.float64]]) -> str:
    if not taus:
        return "no time constants"
    v = np.concatenate([np.asarray(t, np.float64).reshape(-1) for t in taus])
    return f"time constants {float(v.min()):.4g} .. {float(v.max()):.4g}"


def _reset_node(flat: Flat) -> str | None:
    """The first node whose behaviour depends on the reset mode (a spiking node that
    integrates; a Threshold node is memoryless)."""
    for name, node in flat.nodes.items():
        if tname(node) in ("CubaLIF", "LIF", "IF"):
            return f"node '{name}' ({tname(node)})"
    return None


def discretisation(flat: Flat, meta: Mapping[str, Any], dt: float | None,
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
        raise err("NIR graph", f"metadata neurochip.synaptic_delay = {m_lat}; this chip adds "
                  "exactly one step per projection", "metadata")
    if dt is not None:
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise err("NIR import", f"dt must be a positive number of seconds, got {dt!r}", "dt")
        sources["dt"] = "caller"
    elif m_dt is not None:
        dt = float(m_dt)
        sources["dt"] = "metadata"
    if m_decay is not None and m_decay not in ("euler", "exp"):
        raise err("NIR graph", f"metadata neurochip.decay = {m_decay!r}", "metadata")
    if m_reset is not None and m_reset not in ("zero", "subtract"):
        raise err("NIR graph", f"metadata neurochip.reset = {m_reset!r}", "metadata")
    if decay is not None and decay not in ("euler", "exp"):
        raise err("NIR import", f"decay must be 'euler' or 'exp', got {decay!r}", "decay")
    if reset is not None and reset not in ("zero", "subtract"):
        raise err("NIR import", f"reset must be 'zero' or 'subtract', got {reset!r}", "reset")
    has_meta = any(k.startswith("neurochip.") for k in meta)
    prof: tuple[str, float | None, Decay, Reset | None, str, str]
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
    if final_reset is None:
        node = _reset_node(flat)
        if node is not None:
            raise err(node, f"the reset is not in the file: {_RESET_UNKNOWN[name]}. Pass "
                      "reset='zero' or reset='subtract', the mode the model was trained with "
                      "(snnTorch: reset_mechanism; its default is 'subtract')", "reset")
        final_reset = "subtract"  # no neuron resets: the mode has no effect
        sources["reset"] = "irrelevant (no neuron of the file resets)"
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
    elif name == "sinabs" and any(tname(v) == "IF" for v in flat.nodes.values()):
        ifs = [k for k, v in flat.nodes.items() if tname(v) == "IF"]
        notes.append(f"source profile 'sinabs': Sinabs runs IF nodes ({', '.join(ifs[:4])}"
                     f"{'...' if len(ifs) > 4 else ''}) as IAF neurons that emit several "
                     "spikes per step (one per threshold the membrane holds) and floor the "
                     "membrane at -v_threshold; the chip emits at most one spike per step and "
                     "has no floor. Expect disagreement wherever a neuron's input exceeds its "
                     "threshold within one step or its membrane falls below -v_threshold")
    elif name in ("spyx", "rockpool"):
        notes.append(f"source profile '{name}': gains follow "
                     + ("unit gains (the exporter ignores r and w_in)" if gain == "unit" else
                        "the literal reading of r and w_in, which differs from that "
                        "framework's own model; check the float/chip agreement"))
    gain_mode: Any = gain
    return Discretisation(dt, final_decay, final_reset, name, gain_mode, sources)
