"""Random learning configurations for property tests (and hardware-in-the-loop checks).

:func:`random_learning` draws, for any image, a valid configuration that exercises every
part of the engine: built-in and custom rules (tags, weight and tag factors, offsets, every
variable kind), every third-factor kind the image allows (error, DFA, FA, DCLL, reward,
none), surrogate tables of every shape, trace parameters and epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.learning.compile import add_learning
from neurochip.core.errors import LearningConfigError, PlacementError
from neurochip.core.image import ChipImage
from neurochip.core.learning import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    TraceParams,
    compiled_learning,
)

__all__ = ["CUSTOM_RULES", "random_learning", "random_targets"]

# Custom rules for tests: large rates so that short runs change weights; each one passes
# the width checks of the bundled chips.
CUSTOM_RULES_M = (
    "dw = 2^-6 * m * x1 - 2^-9 * w * y0",
    "de = -2^-2 * e + 2^-2 * (x1 - 3) * sg; dw = 2^-14 * m * e",
    "dw = 3 * 2^-16 * m * sg * (x2 + 5) + 2^-3 * x0 * y1",
)
CUSTOM_RULES_SG = ("dw = 2^-7 * sg * x1 - 2^-6 * x1 * y1",)
CUSTOM_RULES = ("dw = 2^-1 * x1 * y0 - 2^-2 * y2 * x0", "dw = -2^-8 * (w - 10) * y1",
                *CUSTOM_RULES_M, *CUSTOM_RULES_SG)
FAST = {"superspike": {"lr": 14, "tau_e": 2, "elig": 4}, "three_factor": {"lr": 14},
        "dfa": {"lr": 14}, "fa": {"lr": 14}, "dcll": {"lr": 14}, "delta": {"lr": 6},
        "stdp": {"lr_plus": 2, "lr_minus": 3}, "rstdp": {"tau_e": 2, "elig": 0, "lr": 14}}


def _trace(rng: np.random.Generator) -> TraceParams:
    return TraceParams(int(rng.integers(1, 128)), int(rng.choice([0, 256, 700, 2048, 4096])))


def random_learning(image: ChipImage, seed: int, *, attempts: int = 20) -> ChipImage:
    """``image`` with a random valid learning configuration (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return add_learning(image, _draw(image, rng))
        except (LearningConfigError, PlacementError) as exc:  # e.g. memory; draw again
            last = exc
    raise LearningConfigError(f"no valid random configuration in {attempts} draws: {last}",
                              where="random_learning")


def _draw(image: ChipImage, rng: np.random.Generator) -> LearningConfig:
    lif = image.lif_populations
    conns = list(image.connections)
    k = int(rng.integers(1, len(conns) + 1))
    plastic = [conns[i] for i in sorted(rng.choice(len(conns), k, replace=False))]
    posts = sorted({c.post for c in plastic})
    # every LIF population may learn (as a feedback source), posts of plastic ones must
    pops = {p.name: p for p in lif}
    single_core = {p.name for p in lif if len({c for c, _, n in p.slices if n > 0}) == 1}
    chosen = set(posts) | {p.name for p in lif if rng.random() < 0.3}
    errors = [n for n in sorted(chosen) if rng.random() < 0.5]
    if not errors:
        errors = [sorted(chosen)[-1]]
    neurons: dict[str, NeuronLearning] = {}
    for name in sorted(chosen):
        p = pops[name]
        sg = None
        if p.vth > 0 and rng.random() < 0.7:
            sg = SurrogateParams(str(rng.choice(["fast_sigmoid", "piecewise",
                                                 "exponential"])),  # type: ignore[arg-type]
                                 float(rng.choice([0.5, 1.0, 4.0])),
                                 float(rng.choice([1.0, 4.0, 16.0])),
                                 int(rng.choice([4, 16, 64])))
        if name in errors:
            tf = ThirdFactor("error", shift=int(rng.integers(-1, 3)))
        else:
            kinds = ["none", "reward", "dfa", "fa"]
            if name in single_core:
                kinds.append("dcll")
            kind = str(rng.choice(kinds))
            if kind == "dfa":
                tf = ThirdFactor("dfa", source=str(rng.choice(errors)),
                                 shift=int(rng.integers(4, 10)), seed=int(rng.integers(0, 9)))
            elif kind == "fa":
                src = [e for e in errors if e != name]
                tf = ThirdFactor("fa", source=str(rng.choice(src)), shift=int(rng.integers(4, 10)))
            elif kind == "dcll":
                tf = ThirdFactor("dcll", target=str(rng.choice(errors)),
                                 shift=int(rng.integers(4, 10)),
                                 readout_shift=int(rng.integers(4, 9)))
            else:
                tf = ThirdFactor(kind)  # type: ignore[arg-type]
        neurons[name] = NeuronLearning(name, _trace(rng), _trace(rng), sg, tf)
    synapses = []
    for c in plastic:
        n = neurons[c.post]
        has_m = n.third_factor.kind != "none"
        has_sg = n.surrogate is not None
        options: list[tuple[str, Any]] = [("stdp", None), (CUSTOM_RULES[0], None),
                                          (CUSTOM_RULES[1], None)]
        if has_m:
            options += [("delta", None), ("rstdp", None), (CUSTOM_RULES_M[0], None)]
            if has_sg:
                options += [("superspike", None), ("three_factor", None), ("dfa", None),
                            (CUSTOM_RULES_M[1], None), (CUSTOM_RULES_M[2], None)]
        if has_sg:
            options.append((CUSTOM_RULES_SG[0], None))
        rule = options[int(rng.integers(len(options)))][0]
        params = dict(FAST.get(rule, {}))
        synapses.append(SynapseLearning(c.name, rule, params, _trace(rng), _trace(rng)))
    return LearningConfig(tuple(synapses), tuple(neurons.values()),
                          int(rng.choice([1, 1, 2, 3, 7])), int(rng.integers(0, 1 << 20)))


def random_targets(image: ChipImage, steps: int, seed: int, *, values: bool | None = None
                   ) -> dict[str, np.ndarray]:
    """Random target spikes (or values) for every target channel of an image."""
    cl = compiled_learning(image)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, n in zip(cl.target_channels, cl.target_sizes):
        use_values = bool(rng.random() < 0.3) if values is None else values
        if use_values:
            out[name] = rng.integers(0, cl.trace_max + 1, (steps, n))
        else:
            out[name] = rng.random((steps, n)) < 0.3
    return out
