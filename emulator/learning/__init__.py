"""On-chip learning: a fixed-point, locality-checked learning engine in the emulator.

Configure learning with the records of :mod:`emulator.learning.config` (or a
:func:`~emulator.learning.presets.preset`), check it and store it in an image with
:func:`add_learning`, then learn with ``Emulator(image).run(..., learn=True)`` or
``Emulator(image).learn(...)`` and export ``Emulator.learned_image()``::

    from emulator.learning import add_learning, preset
    image = add_learning(image, preset(image, "dfa"))
    em = neurochip.Emulator(image)
    em.learn({"in": spikes}, {"out": target_spikes}, epochs=3)
    em.learned_image().save("learned.nchip")

Modules: ``rules`` (the rule language and built-in rules), ``config`` (records),
``compile`` (locality and width checks, image emission), ``reference`` (the pure-Python
reference model), ``kernels`` (Numba), ``engine`` (the emulator's learning state),
``floatref`` (float64 reference), ``presets``. The learning tasks, demonstrations and
the ``neurochip learn`` command are application code in :mod:`neurochip.tasks` and
:mod:`neurochip.commands`.
"""

from __future__ import annotations

from emulator.learning.compile import add_learning, compiled_learning, remove_learning
from emulator.learning.config import (
    LearningConfig,
    NeuronLearning,
    SurrogateParams,
    SynapseLearning,
    ThirdFactor,
    TraceParams,
)
from emulator.learning.engine import LearnHistory
from emulator.learning.floatref import FloatLearner
from emulator.learning.presets import preset
from emulator.learning.rules import BUILTIN_RULES, parse_rule

__all__ = [
    "BUILTIN_RULES",
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
]
