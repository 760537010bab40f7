"""Surrogate-gradient training that knows the chip (Neftci, Mostafa & Zenke 2019, III-IV).

BPTT through current-based LIF networks that run the chip's order of operations
(``docs/conventions.md``), surrogate derivatives of Fig. 3, Adam, the paper's losses and
codes, chip-aware fine-tuning on the chip's fixed-point dynamics, NIR in and out, and
ready-made tasks. See ``docs/training.md``.

Names are resolved lazily so that importing the package (the CLI does) stays cheap::

    from compiler.training import SpikingNet, LayerSpec, Loss, TrainConfig, fit
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neurochip._lazy import lazy_exports

_EXPORTS = {
    "Adam": "compiler.training.optim",
    "ChipEvaluation": "compiler.training.chip_eval",
    "ChipForward": "compiler.training.chip_aware",
    "FloatForward": "compiler.training.trainer",
    "History": "compiler.training.trainer",
    "LayerSpec": "compiler.training.model",
    "Loss": "compiler.training.losses",
    "RateRegularizer": "compiler.training.losses",
    "SmoothStep": "compiler.training.surrogates",
    "SpikeData": "compiler.training.data",
    "SpikingNet": "compiler.training.model",
    "Surrogate": "compiler.training.surrogates",
    "TASKS": "compiler.training.tasks",
    "TrainConfig": "compiler.training.trainer",
    "backward": "compiler.training.bptt",
    "compile_net": "compiler.training.chip_eval",
    "digits_spikes": "compiler.training.data",
    "digits_split": "compiler.training.data",
    "encode": "compiler.training.data",
    "evaluate": "compiler.training.trainer",
    "evaluate_on_chip": "compiler.training.chip_eval",
    "export_nir": "compiler.training.nir_io",
    "fit": "compiler.training.trainer",
    "forward": "compiler.training.bptt",
    "import_nir": "compiler.training.nir_io",
    "predict": "compiler.training.trainer",
    "randman": "compiler.training.data",
    "spike_train_task": "compiler.training.data",
    "temporal_xor": "compiler.training.data",
    "time_major": "compiler.training.bptt",
    "train_task": "compiler.training.tasks",
}

__all__ = [
    "TASKS",
    "Adam",
    "ChipEvaluation",
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
    "compile_net",
    "digits_spikes",
    "digits_split",
    "encode",
    "evaluate",
    "evaluate_on_chip",
    "export_nir",
    "fit",
    "forward",
    "import_nir",
    "predict",
    "randman",
    "spike_train_task",
    "temporal_xor",
    "time_major",
    "train_task",
]

if TYPE_CHECKING:
    from compiler.training.bptt import backward, forward, time_major
    from compiler.training.chip_aware import ChipForward
    from compiler.training.chip_eval import ChipEvaluation, compile_net, evaluate_on_chip
    from compiler.training.data import (
        SpikeData,
        digits_spikes,
        digits_split,
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
    from compiler.training.tasks import TASKS, train_task
    from compiler.training.trainer import (
        FloatForward,
        History,
        TrainConfig,
        evaluate,
        fit,
        predict,
    )


__getattr__, __dir__ = lazy_exports("compiler.training", _EXPORTS, globals())
