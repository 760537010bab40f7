"""Learning configuration records: what learns, by which rule, with which third factor.

A :class:`LearningConfig` lists the plastic connections (:class:`SynapseLearning`: a rule
and the presynaptic trace parameters) and the learning populations
(:class:`NeuronLearning`: postsynaptic traces, surrogate derivative, third factor). It is
plain data; :func:`emulator.learning.compile.add_learning` checks it against an image and
the hardware spec and stores it in the image (``ChipImage.learning`` plus arrays), from
where :func:`config_from_image` reads it back.

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
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import LearningConfigError

__all__ = [
    "THIRD_FACTOR_KINDS",
    "LearningConfig",
    "NeuronLearning",
    "SurrogateParams",
    "SynapseLearning",
    "ThirdFactor",
    "TraceParams",
    "surrogate_function",
]

SurrogateKind = Literal["fast_sigmoid", "piecewise_linear", "exponential"]
SURROGATE_KINDS = ("fast_sigmoid", "piecewise_linear", "exponential")
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
    piecewise linear ``max(0, 1 - k|x|)``, exponential ``exp(-k|x|)``; scaled to
    ``2^surrogate_lut_bits - 1``. The table has ``size`` entries (default: the spec's
    ``surrogate_lut_size``) covering ``v`` in ``theta * (1 -+ span)``.
    """

    kind: SurrogateKind = "fast_sigmoid"
    steepness: float = 1.0
    span: float = 4.0
    size: int | None = None


def surrogate_function(kind: str, steepness: float, x: NDArray[np.float64]
                       ) -> NDArray[np.float64]:
    """The surrogate derivative in [0, 1] at normalised distance to threshold ``x``."""
    a = np.abs(np.asarray(x, np.float64)) * steepness
    if kind == "fast_sigmoid":
        return np.asarray(1.0 / (1.0 + a) ** 2)
    if kind == "piecewise_linear":
        return np.asarray(np.maximum(0.0, 1.0 - a))
    if kind == "exponential":
        return np.asarray(np.exp(-a))
    raise LearningConfigError(f"unknown surrogate {kind!r}; use one of {SURROGATE_KINDS}",
                              field="surrogate.kind", value=kind)


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


