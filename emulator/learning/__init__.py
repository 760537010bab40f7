"""On-chip learning, the emulator's part: the engine that runs a resolved learning record.

The record (:mod:`neurochip.core.learning`: datapath terms, lookup tables, feedback
matrices, seeds) comes from the chip image, where the compiler put it
(``neurochip.learning.add_learning``); nothing here parses or checks a rule. Learn with
``Emulator(image).run(..., learn=True)`` or ``Emulator(image).learn(...)`` and export
``Emulator.learned_image()``::

    import neurochip, neurochip.learning as nl
    image = nl.add_learning(image, nl.preset(image, "dfa"))
    em = neurochip.Emulator(image)
    em.learn({"in": spikes}, {"out": target_spikes}, epochs=3)
    em.learned_image().save("learned.nchip")

Modules: ``engine`` (:class:`~emulator.learning.engine.Learner`, the learning state of one
emulator, and :class:`~emulator.learning.engine.LearnHistory`), ``tables`` and ``kernels``
(Numba), ``reference`` (the pure-Python reference model), ``fixed`` (rounding and random
numbers shared by both).
"""

from __future__ import annotations

from emulator.learning.engine import Learner, LearnHistory

__all__ = ["LearnHistory", "Learner"]
