"""Surrogate-gradient training that knows the chip (Neftci, Mostafa & Zenke 2019, III-IV).

BPTT through current-based LIF networks that run the chip's order of operations
(``docs/conventions.md``), surrogate derivatives of Fig. 3, Adam, the paper's losses and
codes, chip-aware fine-tuning on the chip's fixed-point dynamics, and NIR in and out. See
``docs/training.md``; ready-made tasks and the on-chip evaluation are application code in
:mod:`neurochip.tasks` (the digits data set: :mod:`neurochip.tasks.digits`)::

    from compiler.training import SpikingNet, LayerSpec, Loss, TrainConfig, fit
"""

from __future__ import annotations

from compiler.training.bptt import backward, forward, time_major
from compiler.training.chip_aware import ChipForward
from compiler.training.data import (
    SpikeData,
    encode,
    randman,
    spike_train_task,
    temporal_xor,
)
from compiler.training.losses import Loss, RateRegularizer
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.nir_io import export_nir, import_nir
from compiler.training.optim import Adam
from compiler.training.surrogates import SmoothStep, Surrogate
from compiler.training.trainer import (
    FloatForward,
    History,
    TrainConfig,
    evaluate,
    fit,
    predict,
)

__all__ = [
    "Adam",
    "ChipForward",
    "FloatForward",
    "History",
    "LayerSpec",
    "Loss",
    "RateRegularizer",
    "SmoothStep",
    "SpikeData",
    "SpikingNet",
    "Surrogate",
    "TrainConfig",
    "backward",
    "encode",
    "evaluate",
    "export_nir",
    "fit",
    "forward",
    "import_nir",
    "predict",
    "randman",
    "spike_train_task",
    "temporal_xor",
    "time_major",
]
