"""Our learning configuration as Lava learning rules (pure data, no Lava import).

:func:`plan_learning` reads the image's resolved learning record
(:func:`neurochip.core.learning.compiled_learning`) and writes every plastic connection's
rule as Lava sum-of-products strings (``dw``: weight, ``dt``: Lava's tag ``tag_1``, our
``e``), with the trace parameters and the learning epoch, or says why Lava cannot express
it.

Two-factor rules (no ``m``, ``sg``, ``v`` or ``u``; STDP) become a ``Loihi2FLearningRule``:
Lava's learning connection keeps the pre traces (x1, x2) and the post traces (y1, y2) and
learns from the post neuron's spikes (its ``s_out`` drives the connection's ``s_in_bap``).
The neurons stay Lava's own.

Three-factor rules (``m``, ``sg``, ...) become a ``Loihi3FLearningRule``: the post traces
come from the post neuron, which is our learning neuron (``ChipLearningLIF``). It runs our
engine's post side -- traces y1, y2, the surrogate table sg, the third factor m (``error``:
from the target spikes or values the host sends; ``reward``: the host's reward) -- and sends
each distinct post-side product of the rules (say ``m * sg``) as one of Lava's three post
traces y1, y2, y3, scaled by 2^-k (stochastically rounded) to fit Lava's 7-bit factors.

Scaling. Our term ``mant * prod * 2^shift`` (weight units; ``shift`` is the datapath shift
less the accumulator's fraction bits) becomes Lava's ``mant' * 2^exp * prod``, where Lava
right-shifts a product whose factor widths (7 per trace, 9 for w and t, plus 4 for the
mantissa) pass its 15-bit accumulator by the excess: ``exp = shift + k + excess`` (+7 per
tag factor, -7 for a tag update: Lava's tag has 9 bits, ours ``tag_bits``, so Lava's t is our
e / 2^7). Lava's scaling exponent spans -7..8: when ``exp`` would be smaller, k grows.

Not expressible (the reason is reported, see :data:`NOT_EXPRESSIBLE`): third factors that
come from other populations in the same step (``dfa``, ``fa``: a random projection of
another layer's error; ``dcll``: a random readout against another population's targets),
a rule that updates its tag every step while the weights learn every E > 1 steps (Lava runs
both once per epoch), terms with both x0 and y0, plastic connections with delays, more
than three post-side products, constants beyond Lava's 4-bit scaling mantissa.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import LavaExportError, LearningConfigError
from neurochip.core.image import ChipImage
from neurochip.core.learning import (
    CompiledLearning,
    CompiledPopulation,
    CompiledSynapse,
    DTerm,
    TraceParams,
    Var,
    compiled_learning,
)

__all__ = ["NOT_EXPRESSIBLE", "LearningPlan", "NeuronSpec", "RuleSpec", "SlotSpec",
           "plan_learning"]

#: third-factor kinds whose m a Lava learning neuron cannot compute from what reaches it
NOT_EXPRESSIBLE = {
    "dfa": "its third factor is another population's error sent through fixed random "
           "feedback weights within the same step; a Lava learning neuron receives only "
           "what a connection brings it, one step later",
    "fa": "its third factor is the next layer's error sent through fixed random feedback "
          "weights within the same step; a Lava learning neuron receives only what a "
          "connection brings it, one step later",
    "dcll": "its third factor is a fixed random readout of the layer compared with another "
            "population's targets; our learning neuron for Lava receives only its own "
            "population's targets or the reward",
}

# Lava 0.10's fixed-point learning widths (lava.magma.core.learning.constants)
_W_TRACE, _W_SYN, _W_MANT, _W_ACC = 7, 9, 4, 15
_EXP_RANGE = (-7, 8)
_MANT_RANGE = (-8, 7)
_LAVA_TAG_BITS = 9  # W_TAG_1_S
_DECAY_BITS = 12

_PRE = {int(Var.X0), int(Var.X1), int(Var.X2)}
_POST = {int(Var.Y0), int(Var.Y1), int(Var.Y2), int(Var.SG), int(Var.M), int(Var.V),
         int(Var.U)}
_THIRD = {int(Var.SG), int(Var.M), int(Var.V), int(Var.U)}
_NAME = {int(v): v.name.lower() for v in Var}


@dataclass(frozen=True)
class SlotSpec:
    """A post-side product the learning neuron sends as Lava's post trace ``y<index+1>``:
    ``clip(sround(prod(var + offset) / 2^shift), -128, 127)``."""

    factors: tuple[tuple[str, int], ...]
    shift: int
    bound: int  # largest |product|

    def label(self) -> str:
        return " * ".join(v if not o else f"({v} {'+' if o > 0 else '-'} {abs(o)})"
                          for v, o in self.factors)


@dataclass(frozen=True)
class NeuronSpec:
    """What our learning neuron computes for one population (proc_params of the process)."""

    population: str
    y1: TraceParams
    y2: TraceParams
    lut: NDArray[np.int64] | None
    lut_shift: int
    theta: int
    kind: str  # "none" | "error" | "reward"
    shift: int
    slots: tuple[SlotSpec, ...]
    trace_bits: int
    tf_bits: int

    def params(self) -> dict[str, Any]:
        return {"y1": (self.y1.impulse, self.y1.decay), "y2": (self.y2.impulse, self.y2.decay),
                "lut": None if self.lut is None else [int(x) for x in self.lut],
                "lut_shift": self.lut_shift, "theta": self.theta, "kind": self.kind,
                "tf_shift": self.shift, "trace_max": (1 << self.trace_bits) - 1,
                "tf_max": (1 << (self.tf_bits - 1)) - 1,
                "slots": [([f for f in s.factors], s.shift) for s in self.slots]}


@dataclass(frozen=True)
class RuleSpec:
    """A plastic connection's rule in Lava's terms."""

    connection: str
    pre: str
    post: str
    three_factor: bool
    dw: str | None
    dt: str | None
    traces: dict[str, float]  # x1_impulse, x1_tau, ... (Lava's LearningRule arguments)
    t_epoch: int
    tag_scale: int  # Lava's t is our e / 2^tag_scale
    text: str  # our rule text

    def rule_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"dw": self.dw, "dt": self.dt, "t_epoch": self.t_epoch,
                                **self.traces}
        return {k: v for k, v in args.items() if v is not None}


@dataclass
class LearningPlan:
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    neurons: dict[str, NeuronSpec] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (where, field, why)
    epoch: int = 1

    @property
    def expressible(self) -> bool:
        return not self.problems

    def learning_kinds(self) -> dict[str, str]:
        """Post population -> "2f" | "3f"."""
        out: dict[str, str] = {}
        for r in self.rules.values():
            out[r.post] = "3f" if r.three_factor else out.get(r.post, "2f")
        return out

    def error(self) -> LavaExportError:
        self.problems = list(dict.fromkeys(self.problems))
        where, fld, why = self.problems[0]
        more = (f" ({len(self.problems) - 1} more: "
                + "; ".join(f"{w}: {r}" for w, _, r in self.problems[1:]) + ")"
                if len(self.problems) > 1 else "")
        return LavaExportError(
            f"cannot be expressed as a Lava learning rule: {why}{more}; "
            "export_lava(image, learning='drop') exports the learned weights without the "
            "learning configuration", where=where, field=fld)


def _tau(tp: TraceParams) -> float:
    """Lava's trace time constant for our decay. Lava 0.10 carries a trace with tau 0 over
    no step at all (it is rebuilt from the impulses of each epoch), so no decay is the
    largest tau Lava's 3F rule uses for its own untouched traces (2^16 - 1)."""
    keep = 1.0 - tp.decay / (1 << _DECAY_BITS)
    if keep >= 1.0:
        return float((1 << 16) - 1)
    if keep <= 0.0:
        return 1e-3
    return -1.0 / math.log(keep)


def _bound(code: int, off: int, cl: CompiledLearning) -> int:
    var = {int(Var.Y1): cl.trace_max, int(Var.Y2): cl.trace_max,
           int(Var.SG): (1 << cl.lut_bits) - 1, int(Var.M): cl.tf_max,
           int(Var.V): (1 << 23) - 1, int(Var.U): (1 << 23) - 1}[code]
    return var + abs(off)


def _term_text(mant: int, exp: int, dep: str, factors: list[str]) -> tuple[str, str]:
    sign = "-" if mant < 0 else "+"
    m = abs(mant)
    parts = ([str(m)] if m != 1 else []) + [f"2^{exp}", dep, *factors]
    return sign, " * ".join(parts)


def _factor(name: str, off: int) -> str:
    return name if not off else f"({name} {'+' if off > 0 else '-'} {abs(off)})"


def plan_learning(image: ChipImage) -> LearningPlan:
    """The Lava form of the image's learning record, with every problem found."""
    try:
        cl = compiled_learning(image)
    except LearningConfigError as exc:
        raise LavaExportError(f"the image's learning record cannot be read: {exc}",
                              where="chip image", field="learning") from None
    plan = LearningPlan(epoch=cl.epoch)
    pops = {p.name: p for p in cl.populations}
    by_post: dict[str, list[CompiledSynapse]] = {}
    for s in cl.synapses:
        by_post.setdefault(s.post, []).append(s)
    for post, syns in by_post.items():
        _plan_population(plan, image, cl, pops.get(post), post, syns, _tag_scale(syns))
    return plan


def _tag_scale(syns: list[CompiledSynapse]) -> int:
    """Lava's tag holds +-255 (9 bits), ours ``tag_bits``: Lava's t is our e / 2^j with the
    smallest j that keeps one step's largest tag increment (terms without e) inside it, so
    small increments are not rounded away."""
    top = 0.0
    for s in syns:
        for t in s.de:
            if int(Var.E) in t.vars:
                continue
            top = max(top, abs(t.mantissa) * max(t.bound, 1) * 2.0 ** (t.dshift - s.e_frac))
    lim = (1 << (_LAVA_TAG_BITS - 1)) - 1
    return max(0, math.ceil(math.log2(top / lim))) if top > lim else 0


def _plan_population(plan: LearningPlan, image: ChipImage, cl: CompiledLearning,
                     cp: CompiledPopulation | None, post: str, syns: list[CompiledSynapse],
                     tag_scale: int) -> None:
    three = any(code in _THIRD for s in syns for t in (*s.dw, *s.de) for code in t.vars)
    kind = cp.third.kind if cp is not None else "none"
    where_p = f"population '{post}'"
    if kind in NOT_EXPRESSIBLE:
        plan.problems.append((where_p, "third_factor", f"third factor '{kind}': "
                              f"{NOT_EXPRESSIBLE[kind]}"))
        return
    # post-side products: slot per distinct product (3F only)
    slots: list[tuple[tuple[int, int], ...]] = []
    terms: list[tuple[CompiledSynapse, str, DTerm]] = []
    for s in syns:
        terms += [(s, "dw", t) for t in s.dw] + [(s, "de", t) for t in s.de]
    for _s, _target, t in terms:
        post_f = tuple(sorted((c, o) for c, o in zip(t.vars, t.offsets)
                              if c in _POST and c != int(Var.Y0)))
        if three and post_f and post_f not in slots:
            slots.append(post_f)
    if len(slots) > 3:
        plan.problems.append((where_p, "learning", (
            f"its rules need {len(slots)} post-side products; a Lava learning neuron sends "
            "three (y1, y2, y3)")))
        return
    base = []
    for f in slots:
        b = 1
        for c, o in f:
            b *= _bound(c, o, cl)
        base.append(max(b.bit_length() - _W_TRACE, 0))
    # first pass: the exponent of every term at the base slot shifts; raise slot shifts
    # where Lava's scaling would go below 2^-7
    k = list(base)
    pending: list[tuple[CompiledSynapse, str, DTerm, str, list[str], int, int, int | None]] = []
    for s, target, t in terms:
        conn = image.connections[s.index]
        where = f"connection '{s.name}'"
        vs = list(zip(t.vars, t.offsets))
        has_x0 = any(code == int(Var.X0) for code, _ in vs)
        has_y0 = any(code == int(Var.Y0) for code, _ in vs)
        if has_x0 and has_y0:
            plan.problems.append((where, "rule", f"a term ({t.label}) holds both x0 and y0; "
                                  "a Lava product has one dependency"))
            continue
        if any(code in (int(Var.X0), int(Var.Y0)) and off for code, off in vs):
            plan.problems.append((where, "rule", f"a term ({t.label}) offsets a spike "
                                  "(x0 or y0), which Lava uses only as a dependency"))
            continue
        dep = "x0" if has_x0 else "y0" if has_y0 else "u0"
        factors: list[str] = []
        width = 0
        n_e = 0
        for code, off in vs:
            if code in (int(Var.X0), int(Var.Y0)):
                continue
            if code in (int(Var.X1), int(Var.X2)):
                factors.append(_factor(_NAME[code], off))
                width += _W_TRACE
            elif code == int(Var.W):
                factors.append(_factor("w", off))
                width += _W_SYN
            elif code == int(Var.E):
                factors.append(_factor("t", off))
                width += _W_SYN
                n_e += 1
            elif not three:  # y1, y2: Lava's own post traces
                factors.append(_factor(_NAME[code], off))
                width += _W_TRACE
        post_f = tuple(sorted((cc, o) for cc, o in vs if cc in _POST and cc != int(Var.Y0)))
        slot = slots.index(post_f) if (three and post_f) else None
        if slot is not None:
            factors.append(f"y{slot + 1}")
            width += _W_TRACE
        excess = max(0, width + _W_MANT - _W_ACC)
        frac = s.w_frac if target == "dw" else s.e_frac
        exp0 = t.dshift - frac + excess + tag_scale * n_e - (tag_scale if target == "de" else 0)
        mant = int(t.mantissa)
        while mant and mant % 2 == 0:
            mant //= 2
            exp0 += 1
        if not _MANT_RANGE[0] <= mant <= _MANT_RANGE[1]:
            plan.problems.append((where, "rule", (
                f"a term ({t.label}) has the constant {t.mantissa}; Lava's scaling mantissa "
                "has 4 bits (-8..7)")))
            continue
        if slot is not None:
            k[slot] = max(k[slot], _EXP_RANGE[0] - exp0)
        if conn.has_delays or conn.delay != 0:
            plan.problems.append((where, "delay", "a plastic connection with delays; Lava's "
                                  "learning connections have none"))
            continue
        pending.append((s, target, t, dep, factors, mant, exp0, slot))
    if plan.problems:
        return
    texts: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for s, target, t, dep, factors, mant, exp, slot in pending:
        if slot is not None:
            exp += k[slot]
        if not _EXP_RANGE[0] <= exp <= _EXP_RANGE[1]:
            plan.problems.append((f"connection '{s.name}'", "rule", (
                f"a term ({t.label}) needs the scaling 2^{exp}; Lava's spans "
                f"2^{_EXP_RANGE[0]}..2^{_EXP_RANGE[1]}")))
            continue
        texts.setdefault((s.name, target), []).append(_term_text(mant, exp, dep, factors))
    for s in syns:
        if s.de and cl.epoch != 1:
            plan.problems.append((f"connection '{s.name}'", "epoch", (
                f"its rule updates the tag every step and the weights every {cl.epoch} "
                "steps; Lava runs both once per epoch (t_epoch)")))
    if plan.problems:
        return

    def join(parts: list[tuple[str, str]] | None) -> str | None:
        if not parts:
            return None
        out = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sign, body in parts[1:]:
            out += f" {sign} {body}"
        return out

    y = cp
    for s in syns:
        traces: dict[str, float] = {}
        for name, tp in (("x1", s.x1), ("x2", s.x2)):
            if name in s.uses:
                traces[f"{name}_impulse"] = float(tp.impulse)
                traces[f"{name}_tau"] = _tau(tp)
        if not three:
            for name in ("y1", "y2"):
                tp = getattr(y, name) if y is not None else TraceParams()
                if name in s.uses:
                    traces[f"{name}_impulse"] = float(tp.impulse)
                    traces[f"{name}_tau"] = _tau(tp)
        plan.rules[s.name] = RuleSpec(
            s.name, s.pre, s.post, three, join(texts.get((s.name, "dw"))),
            join(texts.get((s.name, "de"))), traces, cl.epoch, tag_scale, s.rule.text)
    if three:
        yp = cp
        plan.neurons[post] = NeuronSpec(
            post, yp.y1 if yp else TraceParams(), yp.y2 if yp else TraceParams(),
            yp.lut if yp else None, yp.lut_shift if yp else 0, yp.theta if yp else 0,
            kind, yp.third.shift if yp else 0,
            tuple(SlotSpec(tuple((_NAME[c], o) for c, o in f), k[i], 0)
                  for i, f in enumerate(slots)), cl.trace_bits, cl.tf_bits)
