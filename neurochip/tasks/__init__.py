"""Application code on top of the library: the digits task (``digits``: data split, spike
code, readouts), the ready-made training tasks and their on-chip evaluation (``training``,
``chip_eval``), the on-chip learning tasks (``learning``) and the learning demonstrations
(``learning_demos``). The CLI commands call these."""
