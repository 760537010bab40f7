"""On-chip learning, the user-facing names.

Configure learning with the records below (or a :func:`preset`), check it and store it in
an image with :func:`add_learning`, then learn with ``Emulator(image).run(..., learn=True)``
or ``Emulator(image).learn(...)`` and export ``Emulator.learned_image()``::

    import neurochip
    from neurochip.learning import add_learning, preset
    image = add_learning(image, preset(image, "dfa"))
    em = neurochip.Emulator(image)
    em.learn({"in": spikes}, {"out": target_spikes}, epochs=3)
    em.learned_image().save("learned.nchip")

Three parts behind these names: the configuration and its resolved record are chip data
(:mod:`neurochip.core.learning`, stored in the image); the rule language, the locality and
width checks, the presets and the float64 reference are the compiler's
(:mod:`compiler.learning`); the engine that runs the record is the emulator's
(:mod:`emulator.learning`).
"""

from __future__ import annotations

from compiler.learning.compile import add_learning, remove_learning, resolve_learning
from compiler.learning.floatref import FloatLearner
from compiler.learning.presets import preset
from compiler.learning.rules import BUILTIN_RULES, parse_rule
from emulator.learning.engine import LearnHistory
from neurochip.core.learning import (
    CompiledLearning,
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    TraceParams,
    compiled_learning,
)

__all__ = [
    "BUILTIN_RULES",
    "CompiledLearning",
    "FloatLearner",
    "LearnHistory",
    "LearningConfig",
    "NeuronLearning",
    "SurrogateParams",
    "SynapseLearning",
    "ThirdFactor",
    "TraceParams",
    "add_learning",
    "compiled_learning",
    "parse_rule",
    "preset",
    "remove_learning",
    "resolve_learning",
]
