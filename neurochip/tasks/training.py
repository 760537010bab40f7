"""Ready-made training tasks and the whole pipeline: data, float training, optional
chip-aware fine-tuning, and evaluation on the chip.

==============  ===========================================================  ==============
task            network and data                                             metric
==============  ===========================================================  ==============
``digits``      sklearn 8x8 digits, fixed split (see ``digits.digits_split``),  accuracy
                regular rate code, T = 20; 64-128-10, ce on max-over-time
                readout voltage
``xor``         temporal XOR (Fig. 6): 3 inputs (A, B, reference), T = 12;    accuracy
                3-16-2, first-to-spike readout
``randman``     random manifolds: 10 classes, 100 units, 1 spike per unit,    accuracy
                dim 2, T = 100, 1000 samples per class (80/20 split);
                100-128-10, ce on max-over-time readout voltage
``superspike``  SuperSpike's task: 4 frozen input patterns (100 channels,     van Rossum
                T = 100), each with 4 target spikes for each of 2 outputs;    distance
                100-64-2, van Rossum loss (eq. 13)
==============  ===========================================================  ==============

:func:`train_task` runs it all and returns a :class:`TaskResult`. Every default here is the
documented configuration of ``neurochip train TASK``; the bundled digits model is
``train_task("digits", seed=0)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.training.data import SpikeData, randman, spike_train_task, temporal_xor
from compiler.training.losses import Loss
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import Surrogate
from compiler.training.trainer import EpochStats, History, TrainConfig, evaluate, fit
from neurochip.core.errors import ConfigError
from neurochip.tasks.digits import (
    DIGITS_SPLIT,
    DIGITS_STEPS,
    N_CLASSES,
    N_PIXELS,
    digits_inputs,
    digits_spikes,
)

__all__ = ["TASKS", "Task", "TaskData", "TaskResult", "finetune_on_chip", "get_task",
           "train_task"]


@dataclass
class TaskData:
    train: SpikeData
    test: SpikeData
    info: dict[str, Any]


@dataclass(frozen=True)
class Task:
    """A task's data, network shape and training defaults."""

    name: str
    description: str
    n_in: int
    n_out: int
    hidden: int
    steps: int
    loss: Loss
    make_data: Callable[[int, int], TaskData]  # (steps, seed) -> data
    alpha: float = 0.75
    beta: float = 0.875
    readout_spiking: bool = False
    gain: tuple[float, float] = (1.0, 1.0)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    lr_final: float = 0.05
    surrogate: str = "fast_sigmoid"
    steepness: float = 10.0
    finetune_epochs: int = 5
    finetune_lr: float = 5e-4

    @property
    def metric(self) -> str:
        return "van Rossum distance" if self.loss.name == "van_rossum" else "accuracy"

    def layers(self, hidden: int | None = None, recurrent: bool = False
               ) -> tuple[LayerSpec, LayerSpec]:
        h = self.hidden if hidden is None else hidden
        return (LayerSpec("hid", h, alpha=self.alpha, beta=self.beta, recurrent=recurrent),
                LayerSpec("out", self.n_out, alpha=self.alpha, beta=self.beta,
                          spiking=self.readout_spiking))


# ---------------------------------------------------------------------------- data
def _digits_data(steps: int, seed: int) -> TaskData:
    train, test = digits_spikes(steps, "regular")
    info = {"dataset": "digits", "split": dict(DIGITS_SPLIT), "encoding": "regular",
            "max_rate": 1.0, "steps": steps, "n_train": len(train), "n_test": len(test),
            "inputs": digits_inputs(steps, "regular")}
    return TaskData(train, test, info)


def _xor_data(steps: int, seed: int) -> TaskData:
    late = max(2, steps // 2)
    opts = {"early": 1, "late": late, "steps": steps, "reference": True}
    info = {"dataset": "temporal_xor", **opts, "train_repeats": 8,
            "test": "the four patterns"}
    return TaskData(temporal_xor(repeats=8, **opts), temporal_xor(**opts), info)  # type: ignore[arg-type]


def _randman_data(steps: int, seed: int) -> TaskData:
    opts: dict[str, Any] = {"n_classes": 10, "n_units": 100, "steps": steps, "dim": 2,
                            "smoothness": 2.0, "samples_per_class": 1000, "seed": seed}
    d = randman(**opts)
    n_train = int(0.8 * len(d))
    info = {"dataset": "randman", **opts, "split": "first 80 % train, last 20 % test"}
    return TaskData(d.subset(np.arange(n_train)), d.subset(np.arange(n_train, len(d))), info)


def _superspike_data(steps: int, seed: int) -> TaskData:
    opts: dict[str, Any] = {"n_in": 100, "n_out": 2, "steps": steps, "n_patterns": 4,
                            "target_spikes": 4, "seed": seed}
    d = spike_train_task(**opts)
    return TaskData(d, d, {"dataset": "spike_train_task", **opts})


TASKS: dict[str, Task] = {
    "digits": Task("digits", "sklearn 8x8 digits, rate coded", N_PIXELS, N_CLASSES, 128,
                   DIGITS_STEPS, Loss("ce_max"), _digits_data, gain=(0.05, 0.05)),
    "xor": Task("xor", "temporal XOR, first-to-spike readout", 3, 2, 16, 12,
                Loss("first_spike", tau=1.0), _xor_data, alpha=0.5, readout_spiking=True,
                gain=(1.0, 1.0), epochs=100, batch_size=16, lr=1e-2, lr_final=0.1,
                finetune_epochs=20, finetune_lr=2e-3),
    "randman": Task("randman", "random manifolds in spike-time space", 100, 10, 128, 100,
                    Loss("ce_max"), _randman_data, alpha=0.875, beta=0.9375, gain=(3.0, 3.0),
                    epochs=15),
    "superspike": Task("superspike", "target spike trains (SuperSpike), van Rossum loss",
                       100, 2, 64, 100, Loss("van_rossum", tau=5.0), _superspike_data,
                       readout_spiking=True, gain=(1.0, 0.2), epochs=1000, batch_size=4,
                       lr=5e-3, finetune_epochs=100, finetune_lr=2e-4),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}", where="train",
                          field="task", value=name)
    return TASKS[name]


# ---------------------------------------------------------------------------- pipeline
def _check_chip(hw: str, weight_bits: int | None) -> None:
    """Fail before training: the chip exists and has room for ``weight_bits``."""
    from neurochip.core.hw import load_hw

    spec = load_hw(hw)
    wmax = spec.formats.weight_bits
    if weight_bits is not None and not 1 <= weight_bits <= wmax:
        raise ConfigError(f"must lie in [1, {wmax}] for chip '{spec.name}', got {weight_bits}",
                          where="train", field="weight_bits", value=weight_bits,
                          limit=(1, wmax))


@dataclass
class TaskResult:
    """What :func:`train_task` did and measured. Metrics are fractions (accuracy) or
    distances (van Rossum); ``chip_*`` are None when the chip evaluation was skipped."""

    task: Task
    net: SpikingNet
    settings: dict[str, Any]
    data_info: dict[str, Any]
    history: History
    finetune_history: History | None
    float_metric: float
    float_metric_before_finetune: float
    chip_metric: float | None = None
    chip_energy_uj: float | None = None
    train_seconds: float = 0.0
    finetune_seconds: float = 0.0
    chip_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def finetune_on_chip(task: Task, net: SpikingNet, data: TaskData, hw: str, *,
                     weight_bits: int | None = None, epochs: int | None = None, seed: int = 0,
                     surrogate: Surrogate | None = None,
                     on_epoch: Callable[[EpochStats], None] | None = None,
                     on_batch: Callable[[int], None] | None = None) -> History:
    """Chip-aware fine-tuning of ``net`` in place: the task's fine-tuning schedule on the
    fixed-point forward pass of ``hw`` at ``weight_bits`` (straight-through gradients)."""
    from compiler.training.chip_aware import ChipForward

    cfg = TrainConfig(epochs=task.finetune_epochs if epochs is None else int(epochs),
                      batch_size=task.batch_size, lr=task.finetune_lr, lr_final=task.lr_final,
                      seed=seed,
                      surrogate=surrogate or Surrogate(task.surrogate, task.steepness))
    return fit(net, task.loss, data.train, cfg, test=data.test,
               fwd=ChipForward(hw, weight_bits=weight_bits), eval_train=False,
               on_epoch=on_epoch, on_batch=on_batch)


def train_task(task: str | Task, *, hidden: int | None = None, steps: int | None = None,
               surrogate: str | None = None, steepness: float | None = None,
               epochs: int | None = None, seed: int = 0, chip_aware: str | None = None,
               weight_bits: int | None = None, finetune_epochs: int | None = None,
               hw: str | None = None, evaluate_chip: bool = True,
               nir_path: str | None = None, recurrent: bool = False,
               init: SpikingNet | None = None,
               on_epoch: Callable[[str, EpochStats], None] | None = None,
               on_batch: Callable[[str, int, int], None] | None = None,
               data: TaskData | None = None, dtype: str | None = None) -> TaskResult:
    """Train a task end to end (see the module docstring for the defaults).

    chip_aware: a chip name; after float training, fine-tune on that chip's fixed-point
    dynamics (``ChipForward``) at ``weight_bits``. hw: the chip to evaluate on (default:
    ``chip_aware``, else "loihi_like"). nir_path: where the compiled NIR file is written.
    on_epoch(phase, stats) / on_batch(phase, samples_done, samples_total): progress,
    ``phase`` being "float" or "chip-aware". data: reuse already generated data.
    recurrent: make the hidden layer recurrent. init: start from this network (e.g. one
    read by ``import_nir``) instead of random weights; ``epochs=0`` then skips float training.
    dtype: precision of float training, "float64" (default) or "float32" (see TrainConfig).
    """
    t = get_task(task) if isinstance(task, str) else task
    T = t.steps if steps is None else int(steps)
    surr = Surrogate(surrogate or t.surrogate,
                     t.steepness if steepness is None else float(steepness))
    n_epochs = t.epochs if epochs is None else int(epochs)
    ft_epochs = t.finetune_epochs if finetune_epochs is None else int(finetune_epochs)
    target_hw = hw or chip_aware or "loihi_like"
    _check_chip(target_hw, weight_bits)
    if chip_aware:
        _check_chip(chip_aware, weight_bits)
    if n_epochs < 0 or (n_epochs == 0 and init is None):
        raise ConfigError(f"must be positive (or 0 with a starting network), got {n_epochs}",
                          where="train", field="epochs", value=n_epochs)
    d = data if data is not None else t.make_data(T, seed)
    if init is not None:
        if hidden is not None or recurrent:
            raise ConfigError("hidden and recurrent describe a new network; the starting "
                              "network has its own", where="train", field="init")
        if init.n_in != t.n_in or init.readout.size != t.n_out:
            raise ConfigError(f"task '{t.name}' needs {t.n_in} inputs and {t.n_out} outputs, "
                              f"the starting network has {init.n_in} and {init.readout.size}",
                              where="train", field="init")
        t.loss.check(init)
        net = init.copy()
    else:
        net = SpikingNet.build(t.n_in, t.layers(hidden, recurrent), seed=seed, gain=t.gain)
    settings: dict[str, Any] = {
        "task": t.name, "seed": seed, "hidden": net.layers[0].size,
        "recurrent": net.layers[0].recurrent, "steps": T,
        "surrogate": surr.name, "steepness": surr.steepness, "epochs": n_epochs,
        "batch_size": t.batch_size, "lr": t.lr, "lr_final": t.lr_final,
        "loss": t.loss.name, "alpha": net.layers[0].alpha, "beta": net.layers[0].beta,
        "gain": list(t.gain) if init is None else None,
        "reset": net.layers[0].reset, "chip_aware": chip_aware, "weight_bits": weight_bits,
        "finetune_epochs": ft_epochs if chip_aware else 0, "hw": target_hw,
    }
    if dtype is not None and dtype != "float64":  # default: records stay as they were
        settings["dtype"] = dtype
    total = n_epochs * len(d.train)

    def batch_cb(phase: str, total_samples: int) -> Callable[[int], None] | None:
        if on_batch is None:
            return None
        done = [0]

        def cb(n: int) -> None:
            done[0] += n
            on_batch(phase, done[0], total_samples)
        return cb

    def epoch_cb(phase: str) -> Callable[[EpochStats], None] | None:
        return None if on_epoch is None else (lambda s: on_epoch(phase, s))

    t0 = time.perf_counter()
    hist = History()
    if n_epochs > 0:
        cfg = TrainConfig(epochs=n_epochs, batch_size=t.batch_size, lr=t.lr,
                          lr_final=t.lr_final, seed=seed, surrogate=surr,
                          dtype=dtype or "float64")
        hist = fit(net, t.loss, d.train, cfg, test=d.test, eval_train=False,
                   on_epoch=epoch_cb("float"), on_batch=batch_cb("float", total))
    train_s = time.perf_counter() - t0
    before = evaluate(net, t.loss, d.test)
    ft_hist: History | None = None
    ft_s = 0.0
    if chip_aware:
        t1 = time.perf_counter()
        ft_hist = finetune_on_chip(t, net, d, chip_aware, weight_bits=weight_bits,
                                   epochs=ft_epochs, seed=seed, surrogate=surr,
                                   on_epoch=epoch_cb("chip-aware"),
                                   on_batch=batch_cb("chip-aware", ft_epochs * len(d.train)))
        ft_s = time.perf_counter() - t1
    after = evaluate(net, t.loss, d.test)
    res = TaskResult(t, net, settings, d.info, hist, ft_hist, after, before,
                     train_seconds=train_s, finetune_seconds=ft_s)
    if evaluate_chip:
        from neurochip.tasks.chip_eval import evaluate_on_chip

        ev = evaluate_on_chip(net, t.loss, d.test, target_hw, weight_bits=weight_bits,
                              path=nir_path, training=settings)
        res.chip_metric = ev.metric
        res.chip_energy_uj = ev.energy_uj
        res.chip_seconds = ev.seconds
        res.extra["chip"] = ev
    elif nir_path is not None:
        from compiler.training.nir_io import export_nir

        export_nir(net, nir_path, training=settings)
    return res

