"""The learning records a chip image carries: the configuration and its resolved form.

Two kinds of plain data, no rule language and no checking:

* The configuration: a :class:`LearningConfig` lists the plastic connections
  (:class:`SynapseLearning`: a rule and the presynaptic trace parameters) and the learning
  populations (:class:`NeuronLearning`: postsynaptic traces, surrogate derivative, third
  factor). The compiler (``compiler.learning.add_learning``, public as
  ``neurochip.learning.add_learning``) checks it against an image and the hardware spec.
* The resolved record: :class:`CompiledLearning`, what the compiler made of the
  configuration: every rule as datapath terms (:class:`DTerm`), weight ranges and fraction
  bits per plastic connection (:class:`CompiledSynapse`), per learning population its
  surrogate lookup table, feedback / readout matrix and cores (:class:`CompiledPopulation`)
  in evaluation order, the per-core PRNG seeds and the register widths. The image stores it
  (``ChipImage.learning`` plus the ``learn/...`` arrays, :func:`learning_dict`);
  :func:`compiled_learning` reads it back, and the emulator runs it as it is.

Trace dynamics (per step, every trace register; ``decay`` is a ``decay_bits`` register like
the neuron's ``du``)::

    x <- min(sround(x * (2^decay_bits - decay), decay_bits) + impulse * spike, 2^trace_bits - 1)

Third factors (``ThirdFactor.kind``), each computed per step on the chip:

* ``"none"``: no third factor (two-factor rules such as STDP).
* ``"error"``: an output layer. A target trace ``yt`` follows the target spikes (or is set
  to target values) sent by the host; ``m = sat((yt - y1) >> shift)``.
* ``"dfa"``: ``m = sat(round(sum_k B_ik * delta_k >> shift))`` with a fixed random ``B`` and
  ``delta`` the error signal of the ``source`` population (an ``"error"`` layer); the
  deltas travel from the source's core to this layer's cores as error messages.
* ``"fa"``: as ``"dfa"`` with ``source`` the next layer up (feedback alignment).
* ``"dcll"``: a fixed random local readout ``R`` of this layer's traces,
  ``r = round(R @ y1 >> readout_shift)``, against the targets of the ``target`` population
  (the pseudo-target): ``m = sat(round(R.T @ sat(yt - r) >> shift))``. All on the layer's
  core; only the targets travel.
* ``"reward"``: ``m = sat(reward)``, a value per step broadcast by the host.

The error signal a layer sends (``delta``) is its ``m``, times its surrogate derivative
when it has one: ``delta = round(m * sg >> surrogate_lut_bits)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import IntEnum
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import LearningConfigError
from neurochip.core.hw import HardwareSpec
from neurochip.core.image import ChipImage
from neurochip.core.surrogates import SURROGATE_ALIASES, SURROGATE_NAMES

__all__ = [
    "KIND_CODES",
    "LEARNING_FORMAT",
    "THIRD_FACTOR_KINDS",
    "VAR_CODES",
    "CompiledLearning",
    "CompiledPopulation",
    "CompiledSynapse",
    "DTerm",
    "LearningConfig",
    "NeuronLearning",
    "RuleText",
    "SurrogateParams",
    "SynapseLearning",
    "ThirdFactor",
    "ThirdFactorCode",
    "TraceParams",
    "Var",
    "check_term_shift",
    "compiled_learning",
    "learning_dict",
    "with_rate_shift",
]

SurrogateKind = Literal["fast_sigmoid", "piecewise", "exponential"]
SURROGATE_KINDS = SURROGATE_NAMES  # one table of shapes for training and chip learning
ThirdKind = Literal["none", "error", "dfa", "fa", "dcll", "reward"]
THIRD_FACTOR_KINDS = ("none", "error", "dfa", "fa", "dcll", "reward")


def _int(v: Any, where: str, fld: str) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise LearningConfigError(f"must be an integer, got {v!r}", where=where, field=fld)
    return int(v)


@dataclass(frozen=True)
class TraceParams:
    """A trace register: jump by ``impulse`` on a spike, decay by ``decay / 2^decay_bits``."""

    impulse: int = 16
    decay: int = 512

    def tau(self, decay_bits: int = 12) -> float:
        """Time constant in steps (inf for no decay)."""
        keep = 1.0 - self.decay / (1 << decay_bits)
        return math.inf if keep >= 1.0 else (0.0 if keep <= 0 else -1.0 / math.log(keep))


@dataclass(frozen=True)
class SurrogateParams:
    """Surrogate derivative of the voltage (Fig. 3), read from a lookup table.

    With ``x = (v - theta) / theta`` and steepness ``k``: fast sigmoid ``1 / (1 + k|x|)^2``,
    piecewise (linear) ``max(0, 1 - k|x|)``, exponential ``exp(-k|x|)``; scaled to
    ``2^surrogate_lut_bits - 1``. The table has ``size`` entries (default: the spec's
    ``surrogate_lut_size``) covering ``v`` in ``theta * (1 -+ span)``.
    """

    kind: SurrogateKind = "fast_sigmoid"
    steepness: float = 1.0
    span: float = 4.0
    size: int | None = None

    def __post_init__(self) -> None:
        # one name per shape (neurochip.core.surrogates): older spellings are read as it
        object.__setattr__(self, "kind", SURROGATE_ALIASES.get(self.kind, self.kind))


@dataclass(frozen=True, eq=False)
class ThirdFactor:
    """Where a population's third factor m comes from (see the module docstring)."""

    kind: ThirdKind = "none"
    source: str | None = None
    target: str | None = None
    shift: int = 0
    readout_shift: int = 0
    seed: int = 0
    matrix: NDArray[np.int64] | None = None  # explicit feedback / readout matrix


@dataclass(frozen=True)
class NeuronLearning:
    """Per-neuron learning state of a population: traces, surrogate, third factor."""

    population: str
    y1: TraceParams = field(default_factory=TraceParams)
    y2: TraceParams = field(default_factory=TraceParams)
    surrogate: SurrogateParams | None = None
    third_factor: ThirdFactor = field(default_factory=ThirdFactor)


@dataclass(frozen=True)
class SynapseLearning:
    """A plastic connection: its rule (a built-in name or rule text) and its axon traces."""

    connection: str
    rule: str
    params: Mapping[str, int] = field(default_factory=dict)
    x1: TraceParams = field(default_factory=TraceParams)
    x2: TraceParams = field(default_factory=TraceParams)


@dataclass(frozen=True)
class LearningConfig:
    """Everything the chip needs to learn: plastic connections, learning populations,
    the epoch (weight rules run every ``epoch`` steps; tag rules every step), the seed
    of the per-core random number generators and of the random feedback matrices, and a
    global learning-rate shift applied to every weight term (the host may change it between
    passes, see ``Emulator.set_rate_shift``)."""

    synapses: tuple[SynapseLearning, ...]
    neurons: tuple[NeuronLearning, ...] = ()
    epoch: int = 1
    seed: int = 0
    rate_shift: int = 0  # every weight term is scaled by 2^-rate_shift (learning-rate register)

    def __post_init__(self) -> None:
        object.__setattr__(self, "synapses", tuple(self.synapses))
        object.__setattr__(self, "neurons", tuple(self.neurons))
        if not self.synapses:
            raise LearningConfigError("no plastic connection", where="learning config",
                                      field="synapses")
        _int(self.epoch, "learning config", "epoch")
        _int(self.seed, "learning config", "seed")
        _int(self.rate_shift, "learning config", "rate_shift")

    def neuron(self, population: str) -> NeuronLearning | None:
        for n in self.neurons:
            if n.population == population:
                return n
        return None

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (matrices are stored separately, as image arrays)."""
        def tf(t: ThirdFactor) -> dict[str, Any]:
            return {"kind": t.kind, "source": t.source, "target": t.target, "shift": t.shift,
                    "readout_shift": t.readout_shift, "seed": t.seed}
        return {
            "epoch": self.epoch, "seed": self.seed, "rate_shift": self.rate_shift,
            "synapses": [{"connection": s.connection, "rule": s.rule, "params": dict(s.params),
                          "x1": asdict(s.x1), "x2": asdict(s.x2)} for s in self.synapses],
            "neurons": [{"population": n.population, "y1": asdict(n.y1), "y2": asdict(n.y2),
                         "surrogate": asdict(n.surrogate) if n.surrogate else None,
                         "third_factor": tf(n.third_factor)} for n in self.neurons],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any],
                  matrices: Mapping[str, NDArray[np.int64]] | None = None) -> LearningConfig:
        where = "learning config"
        try:
            syn = tuple(SynapseLearning(s["connection"], s["rule"], dict(s.get("params", {})),
                                        TraceParams(**s["x1"]), TraceParams(**s["x2"]))
                        for s in d["synapses"])
            neu = []
            for n in d.get("neurons", []):
                t = dict(n["third_factor"])
                mat = (matrices or {}).get(n["population"])
                neu.append(NeuronLearning(
                    n["population"], TraceParams(**n["y1"]), TraceParams(**n["y2"]),
                    SurrogateParams(**n["surrogate"]) if n.get("surrogate") else None,
                    ThirdFactor(matrix=mat, **t)))
            return cls(syn, tuple(neu), int(d["epoch"]), int(d["seed"]),
                       int(d.get("rate_shift", 0)))
        except (KeyError, TypeError) as exc:
            raise LearningConfigError(f"malformed learning config: {exc}", where=where) from None




# ------------------------------------------------------------------------------ resolved record
#: version of the image's ``learning`` entry; 2 stores the resolved record (1 held the
#: configuration only, and every reader re-checked it)
LEARNING_FORMAT = 2

class Var(IntEnum):
    """Codes of the rule variables in :attr:`DTerm.vars` (the learning tables' factor codes)."""

    X0 = 0  # presynaptic spike
    X1 = 1  # presynaptic traces
    X2 = 2
    Y0 = 3  # postsynaptic spike
    Y1 = 4  # postsynaptic traces
    Y2 = 5
    SG = 6  # surrogate derivative
    M = 7  # third factor
    V = 8  # voltage
    U = 9  # current
    W = 10  # weight
    E = 11  # tag (eligibility)


class ThirdFactorCode(IntEnum):
    """Codes of the third-factor kinds in the learning tables (THIRD_FACTOR_KINDS order)."""

    NONE = 0
    ERROR = 1
    DFA = 2
    FA = 3
    DCLL = 4
    REWARD = 5


#: rule variable name -> code
VAR_CODES = {v.name.lower(): int(v) for v in Var}
#: third-factor kind -> code
KIND_CODES = {k: int(ThirdFactorCode[k.upper()]) for k in THIRD_FACTOR_KINDS}


@dataclass(frozen=True)
class DTerm:
    """A term as the datapath runs it: ``sround(mant * prod(var + off), -dshift)``.

    ``bound`` is the largest magnitude of the product before its shift, ``label`` the rule
    term it came from (without the learning-rate shift); both only serve to re-check the
    datapath when the host changes the learning rate (:func:`with_rate_shift`).
    """

    mantissa: int
    dshift: int  # shift into accumulator units (rule shift + fraction bits)
    vars: tuple[int, ...]
    offsets: tuple[int, ...]
    bound: int = 0
    label: str = ""


@dataclass(frozen=True)
class RuleText:
    """A rule's name (a built-in name or ``"custom"``) and its canonical text."""

    name: str
    text: str

    def canonical(self) -> str:
        return self.text


@dataclass(frozen=True)
class CompiledSynapse:
    index: int  # connection index in the image
    name: str
    pre: str
    post: str
    rule: RuleText
    dw: tuple[DTerm, ...]
    de: tuple[DTerm, ...]
    x1: TraceParams
    x2: TraceParams
    uses: frozenset[str]
    w_lo: int
    w_hi: int
    w_lsb: int
    w_frac: int
    e_frac: int


@dataclass(frozen=True, eq=False)
class CompiledPopulation:
    name: str
    offset: int
    size: int
    theta: int
    y1: TraceParams
    y2: TraceParams
    third: ThirdFactor
    lut: NDArray[np.int64] | None
    lut_shift: int
    matrix: NDArray[np.int64] | None
    source: str | None
    target: str | None
    uses_y1: bool
    uses_y2: bool
    cores: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class CompiledLearning:
    """The checked, resolved learning configuration of an image, ready for the engines."""

    config: LearningConfig
    synapses: tuple[CompiledSynapse, ...]
    populations: tuple[CompiledPopulation, ...]  # in evaluation order (sources first)
    epoch: int
    core_seeds: dict[int, int]
    target_channels: tuple[str, ...]  # populations that receive targets, with their sizes
    target_sizes: tuple[int, ...]
    trace_bits: int
    tag_bits: int
    tf_bits: int
    lut_bits: int
    acc_bits: int
    prng_bits: int
    decay_bits: int

    def population(self, name: str) -> CompiledPopulation:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def trace_max(self) -> int:
        return (1 << self.trace_bits) - 1

    @property
    def tf_max(self) -> int:
        return (1 << (self.tf_bits - 1)) - 1

    @property
    def tag_max(self) -> int:
        return (1 << (self.tag_bits - 1)) - 1


_WIDTHS = ("trace_bits", "tag_bits", "tf_bits", "lut_bits", "acc_bits", "prng_bits",
           "decay_bits")


def _bits(x: int) -> int:
    return max(int(x), 0).bit_length()


def check_term_shift(bound: int, dshift: int, shift: int, frac: int, hw: HardwareSpec, *,
                     name: str, tgt: str, rule: str, where: str) -> None:
    """Check that a term of largest product ``bound`` fits the datapath at shift ``dshift``
    (``shift`` its power of two, ``frac`` the accumulator's fraction bits): the shifter
    (``max_shift``) and the accumulator. Raises LearningConfigError naming the term."""
    ls = hw.learning
    if abs(dshift) > ls.max_shift:
        raise LearningConfigError(
            f"{name} needs a datapath shift of {dshift} (its 2^{shift} plus {frac} "
            f"fraction bits of the accumulator); the engine shifts by at most "
            f"{ls.max_shift} (max_shift)", rule=rule, where=where, field=f"{tgt}.shift",
            value=dshift, limit=ls.max_shift)
    acc_max = (1 << (ls.accumulator_bits - 1)) - 1
    worst = bound << dshift if dshift >= 0 else -((-bound) >> -dshift)
    if worst > acc_max:
        need = _bits(worst) - (ls.accumulator_bits - 1)
        raise LearningConfigError(
            f"{name} can reach {worst} in the {ls.accumulator_bits}-bit accumulator "
            f"(limit {acc_max}); shift it right by at least {need} more",
            rule=rule, where=where, field=f"{tgt}.accumulator", value=worst, limit=acc_max)


def with_rate_shift(cl: CompiledLearning, shift: int, hw: HardwareSpec) -> CompiledLearning:
    """The record with another learning-rate register value: every weight term scaled by
    ``2^-shift`` instead of ``2^-cl.config.rate_shift`` (its datapath re-checked)."""
    c = cl.config
    cfg = LearningConfig(c.synapses, c.neurons, c.epoch, c.seed, int(shift))
    delta = c.rate_shift - cfg.rate_shift
    syns = []
    for s in cl.synapses:
        dw = []
        for k, t in enumerate(s.dw):
            d = t.dshift + delta
            label = f"term {k + 1} of 'dw' ({t.label}) at rate shift {cfg.rate_shift}"
            check_term_shift(t.bound, d, d - s.w_frac, s.w_frac, hw, name=label, tgt="dw",
                             rule=s.rule.name, where=f"connection '{s.name}'")
            dw.append(replace(t, dshift=d))
        syns.append(replace(s, dw=tuple(dw)))
    return replace(cl, config=cfg, synapses=tuple(syns))


# ------------------------------------------------------------------------------ image I/O
def _term_dict(t: DTerm) -> list[Any]:
    return [t.mantissa, t.dshift, list(t.vars), list(t.offsets), t.bound, t.label]


def _term(v: list[Any]) -> DTerm:
    m, d, vs, offs, bound, label = v
    return DTerm(int(m), int(d), tuple(int(x) for x in vs), tuple(int(x) for x in offs),
                 int(bound), str(label))


def _tf_dict(t: ThirdFactor) -> dict[str, Any]:
    return {"kind": t.kind, "source": t.source, "target": t.target, "shift": t.shift,
            "readout_shift": t.readout_shift, "seed": t.seed}


def learning_dict(cl: CompiledLearning) -> dict[str, Any]:
    """The image's ``learning`` entry for a resolved record (the lookup tables and matrices
    go into the image's ``learn/lut/<population>`` and ``learn/matrix/<population>``
    arrays)."""
    syn = [{"index": s.index, "name": s.name, "pre": s.pre, "post": s.post,
            "rule": s.rule.name, "dw": [_term_dict(t) for t in s.dw],
            "de": [_term_dict(t) for t in s.de], "x1": asdict(s.x1), "x2": asdict(s.x2),
            "uses": sorted(s.uses), "w_lo": s.w_lo, "w_hi": s.w_hi, "w_lsb": s.w_lsb,
            "w_frac": s.w_frac, "e_frac": s.e_frac} for s in cl.synapses]
    pops = [{"name": p.name, "offset": p.offset, "size": p.size, "theta": p.theta,
             "y1": asdict(p.y1), "y2": asdict(p.y2), "third_factor": _tf_dict(p.third),
             "lut_shift": p.lut_shift, "source": p.source, "target": p.target,
             "uses_y1": p.uses_y1, "uses_y2": p.uses_y2, "cores": list(p.cores)}
            for p in cl.populations]
    record = {"epoch": cl.epoch, "target_channels": list(cl.target_channels),
              "target_sizes": list(cl.target_sizes), "synapses": syn, "populations": pops,
              "widths": {w: getattr(cl, w) for w in _WIDTHS}}
    return {"format": LEARNING_FORMAT, "config": cl.config.to_dict(),
            "core_seeds": {str(k): v for k, v in sorted(cl.core_seeds.items())},
            "rules": {s.name: s.rule.canonical() for s in cl.synapses},
            "record": record}


def compiled_learning(image: ChipImage) -> CompiledLearning:
    """The resolved learning record stored in ``image`` (read as it is, not re-checked;
    only its seeds are checked against the image's cores and PRNG width)."""
    if not image.learning:
        raise LearningConfigError("the image has no learning configuration; add one with "
                                  "neurochip.learning.add_learning", where="chip image")
    d = image.learning
    if d.get("format") != LEARNING_FORMAT:
        raise LearningConfigError(
            f"unsupported learning format {d.get('format')!r} (format 1 images carry no "
            f"resolved record: add the learning again with neurochip.learning.add_learning)",
            where="chip image", field="learning.format", value=d.get("format"),
            limit=LEARNING_FORMAT)
    arrays = image.arrays
    mats = {k.split("/", 2)[2]: v.astype(np.int64) for k, v in arrays.items()
            if k.startswith("learn/matrix/")}
    cfg = LearningConfig.from_dict(d["config"], mats)
    try:
        rec = d["record"]
        texts = d.get("rules", {})
        syns = tuple(CompiledSynapse(
            int(s["index"]), str(s["name"]), str(s["pre"]), str(s["post"]),
            RuleText(str(s["rule"]), str(texts.get(s["name"], ""))),
            tuple(_term(t) for t in s["dw"]), tuple(_term(t) for t in s["de"]),
            TraceParams(**s["x1"]), TraceParams(**s["x2"]), frozenset(s["uses"]),
            int(s["w_lo"]), int(s["w_hi"]), int(s["w_lsb"]), int(s["w_frac"]),
            int(s["e_frac"])) for s in rec["synapses"])
        pops = []
        for p in rec["populations"]:
            name = str(p["name"])
            lut = arrays.get(f"learn/lut/{name}")
            mat = mats.get(name)
            pops.append(CompiledPopulation(
                name, int(p["offset"]), int(p["size"]), int(p["theta"]),
                TraceParams(**p["y1"]), TraceParams(**p["y2"]),
                ThirdFactor(matrix=mat, **p["third_factor"]),
                None if lut is None else lut.astype(np.int64), int(p["lut_shift"]), mat,
                p["source"], p["target"], bool(p["uses_y1"]), bool(p["uses_y2"]),
                tuple(int(c) for c in p["cores"])))
        seeds = {int(k): int(v) for k, v in d["core_seeds"].items()}
        widths = {w: int(rec["widths"][w]) for w in _WIDTHS}
        cl = CompiledLearning(cfg, syns, tuple(pops), int(rec["epoch"]), seeds,
                              tuple(str(t) for t in rec["target_channels"]),
                              tuple(int(t) for t in rec["target_sizes"]), **widths)
    except (KeyError, TypeError, ValueError) as exc:
        raise LearningConfigError(f"malformed learning record: {exc!r}", where="chip image",
                                  field="learning.record") from None
    pb = cl.prng_bits
    for info in image.cores:
        if info.core not in seeds:
            raise LearningConfigError(f"no PRNG seed for core {info.core}",
                                      where=f"core {info.core}", field="prng_seed")
    for k, sd in seeds.items():
        if not 0 <= sd <= (1 << pb) - 1:
            raise LearningConfigError(
                f"{sd} is outside [0, {(1 << pb) - 1}] (prng_bits={pb})", where=f"core {k}",
                field="prng_seed", value=sd, limit=(0, (1 << pb) - 1))
    return cl
