"""Ready-made learning configurations for the built-in rules.

:func:`preset` builds a :class:`LearningConfig` for a rule name on an image whose LIF
populations form a feed-forward chain (input -> hidden ... -> output):

========  ====================================================================
rule      what learns, and the third factor each layer gets
========  ====================================================================
dfa       every layer; the output by its own error (delta rule), each hidden
          layer by the output error through a fixed random matrix (Fig. 5c)
fa        as dfa, but each hidden layer gets the error of the layer above it
          through a fixed random matrix (feedback alignment, Fig. 5b)
dcll      every layer; the output by its own error, each hidden layer by a
          fixed random local readout against the output targets (eq. 19)
superspike  the connections into the output; m is the output's own error,
          filtered per synapse by the eligibility tag (eq. 17)
stdp      every connection, pair-based STDP (no third factor)
rstdp     every connection, reward-modulated STDP (m: the reward)
========  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from neurochip.core.errors import LearningConfigError
from neurochip.core.image import ChipImage
from neurochip.core.learning import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    TraceParams,
)

__all__ = ["PRESETS", "Chain", "chain", "preset"]

PRESETS = ("dfa", "fa", "dcll", "superspike", "stdp", "rstdp")


@dataclass(frozen=True)
class Chain:
    """Populations of a feed-forward chain and the connection into each LIF layer."""

    input: str
    layers: tuple[str, ...]
    connections: tuple[str, ...]  # connections[i] feeds layers[i]

    @property
    def output(self) -> str:
        return self.layers[-1]


def chain(image: ChipImage) -> Chain:
    """The feed-forward chain input -> layer 1 -> ... -> output of an image."""
    ins = image.input_populations
    if not ins:
        raise LearningConfigError("the image has no input population", where="preset")
    cur = ins[0].name
    layers: list[str] = []
    conns: list[str] = []
    used: set[str] = {cur}
    while True:
        nxt = [c for c in image.connections if c.pre == cur and c.post not in used]
        if not nxt:
            break
        if len(nxt) > 1:
            raise LearningConfigError(
                f"population {cur!r} feeds {[c.post for c in nxt]}; presets need a single "
                f"feed-forward chain", where="preset")
        c = nxt[0]
        layers.append(c.post)
        conns.append(c.name)
        used.add(c.post)
        cur = c.post
    if not layers:
        raise LearningConfigError(f"input {ins[0].name!r} feeds no LIF population",
                                  where="preset")
    return Chain(ins[0].name, tuple(layers), tuple(conns))


def preset(image: ChipImage, rule: str, *, lr_hidden: int = 19, lr_out: int = 14,
           epoch: int = 10, feedback_shift: int = 7, readout_shift: int = 10, seed: int = 0,
           trace: TraceParams | None = None, surrogate: SurrogateParams | None = None,
           superspike: dict[str, int] | None = None, stdp: dict[str, int] | None = None,
           rstdp: dict[str, int] | None = None, error_shift: int = 0) -> LearningConfig:
    """A learning configuration for built-in rule ``rule`` on the image's chain.

    lr_hidden, lr_out: learning-rate shifts (2^-lr) of the hidden and output layers;
    epoch: steps between weight updates; feedback_shift / readout_shift: scaling of the
    random feedback sums and of the DCLL readout; seed: per-core PRNGs and random matrices.
    """
    ch = chain(image)
    tr = trace or TraceParams()
    sg = surrogate or SurrogateParams()
    out = ch.output
    hidden = ch.layers[:-1]
    syn: list[SynapseLearning] = []
    neu: list[NeuronLearning] = []
    if rule in ("dfa", "fa", "dcll"):
        for k, (h, c) in enumerate(zip(hidden, ch.connections)):
            if rule == "dfa":
                tf = ThirdFactor("dfa", source=out, shift=feedback_shift, seed=k)
            elif rule == "fa":
                tf = ThirdFactor("fa", source=ch.layers[k + 1], shift=feedback_shift, seed=k)
            else:
                tf = ThirdFactor("dcll", target=out, shift=feedback_shift,
                                 readout_shift=readout_shift, seed=k)
            syn.append(SynapseLearning(c, rule, {"lr": lr_hidden}, tr, tr))
            neu.append(NeuronLearning(h, tr, tr, sg, tf))
        syn.append(SynapseLearning(ch.connections[-1], "delta", {"lr": lr_out}, tr, tr))
        neu.append(NeuronLearning(out, tr, tr, None, ThirdFactor("error", shift=error_shift)))
        return LearningConfig(tuple(syn), tuple(neu), epoch, seed)
    if rule == "superspike":
        params = {"lr": 20, "tau_e": 3, "elig": 6, **(superspike or {})}
        syn.append(SynapseLearning(ch.connections[-1], "superspike", params, tr, tr))
        neu.append(NeuronLearning(out, tr, tr, sg, ThirdFactor("error", shift=error_shift)))
        return LearningConfig(tuple(syn), tuple(neu), 1, seed)
    if rule == "stdp":
        for c in ch.connections:
            syn.append(SynapseLearning(c, "stdp", dict(stdp or {}), tr, tr))
        return LearningConfig(tuple(syn), (), 1, seed)
    if rule == "rstdp":
        for c, layer in zip(ch.connections, ch.layers):
            syn.append(SynapseLearning(c, "rstdp", dict(rstdp or {}), tr, tr))
            neu.append(NeuronLearning(layer, tr, tr, None, ThirdFactor("reward")))
        return LearningConfig(tuple(syn), tuple(neu), 1, seed)
    raise LearningConfigError(f"unknown preset {rule!r}; presets are {', '.join(PRESETS)}",
                              rule=rule, where="preset", field="rule")
