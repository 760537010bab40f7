"""On-chip learning, the compiler's part: rules in, a resolved learning record out.

:func:`add_learning` parses the rules of a :class:`~neurochip.core.learning.LearningConfig`
(``rules``: the rule language and the built-in rules), checks locality (Box 3) and every
bit width against the hardware spec (``compile``), and stores the resolved record
(:mod:`neurochip.core.learning`) in a new image; the emulator's learning engine runs that
record as it is. ``presets`` builds configurations for the built-in rules; ``floatref`` is
the float64 reference of the same algorithm (no quantisation), the instrument the
fixed-point engine is tested against. Users reach all of it through
:mod:`neurochip.learning`.
"""

from __future__ import annotations

from compiler.learning.compile import add_learning, remove_learning
from compiler.learning.floatref import FloatLearner
from compiler.learning.presets import preset
from compiler.learning.rules import BUILTIN_RULES, parse_rule

__all__ = ["BUILTIN_RULES", "FloatLearner", "add_learning", "parse_rule", "preset",
           "remove_learning"]
