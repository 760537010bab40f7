"""The training loop: mini-batch BPTT with Adam, seeded and reproducible.

:func:`fit` trains a :class:`~compiler.training.model.SpikingNet` in place. The forward pass
is pluggable: the float model (default) or the chip's fixed-point dynamics with
straight-through gradients (:class:`compiler.training.chip_aware.ChipForward`); the
backward pass is the same BPTT either way.

Reproducibility: the only randomness is the seeded shuffling of mini-batches (and the
initial weights, drawn by :meth:`SpikingNet.build` from its own seed); the same seed, data
and settings give the same weights on the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import DTypeLike, NDArray

from compiler.training.bptt import Trace, backward, forward, time_major
from compiler.training.data import SpikeData
from compiler.training.events import SpikeRows, Workspace, resolve_dtype
from compiler.training.losses import Loss, LossValue, RateRegularizer, argmax_or_tie
from compiler.training.model import SpikingNet, positive_int
from compiler.training.optim import Adam
from compiler.training.surrogates import SpikeFunction, Surrogate
from neurochip.core.errors import ConfigError

__all__ = ["EpochStats", "FloatForward", "Forward", "History", "TrainConfig", "evaluate",
           "fit", "predict"]

F64 = NDArray[np.float64]


class Forward(Protocol):
    """A forward pass for training: the trace, and the network whose parameters and decays
    it effectively ran (what the backward pass differentiates)."""

    def __call__(self, net: SpikingNet, x: F64, fn: SpikeFunction
                 ) -> tuple[Trace, SpikingNet]: ...


class FloatForward:
    """The float model of ``docs/conventions.md``.

    dtype: float64 (default, the reference) or float32 (the fast path, see
    :func:`~compiler.training.bptt.forward`). reuse: keep one :class:`Workspace` across
    calls (what :func:`fit` does): each trace is then valid only until the next call.
    """

    def __init__(self, dtype: DTypeLike | None = None, *, reuse: bool = False) -> None:
        self.dtype = resolve_dtype(dtype, "FloatForward")
        self.workspace = Workspace() if reuse else None

    def __call__(self, net: SpikingNet, x: F64 | SpikeRows, fn: SpikeFunction
                 ) -> tuple[Trace, SpikingNet]:
        if self.dtype == np.float64:
            return forward(net, x, fn), net
        return forward(net, x, fn, dtype=self.dtype, workspace=self.workspace), net

    def inputs(self, x: NDArray[np.bool_], idx: NDArray[np.integer], n_in: int, steps: int
               ) -> F64 | SpikeRows:
        """The batch ``x[idx]`` in the form this forward pass reads fastest."""
        if self.dtype == np.float64:
            return time_major(x[idx], n_in, steps)
        return SpikeRows.from_bool(x, idx, steps, self.workspace)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`. lr decays by cosine from ``lr`` to ``lr * lr_final``.

    dtype: the float model's precision, "float64" (default: the reference, results as in
    earlier releases) or "float32" (the fast path: about twice the speed and more on sparse
    inputs; gradients agree to float32 rounding). The weights and Adam's moments stay
    float64 either way; a chip-aware forward pass (``fwd``) keeps its own arithmetic.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    lr_final: float = 1.0
    seed: int = 0
    surrogate: Surrogate = field(default_factory=Surrogate)
    detach_reset: bool = True
    regularizer: RateRegularizer | None = None
    clip: float | None = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        resolve_dtype(self.dtype, "train config")
        for name in ("epochs", "batch_size"):
            positive_int(getattr(self, name), "train config", name)
        if not self.lr > 0 or not 0 < self.lr_final <= 1:
            raise ConfigError("need lr > 0 and 0 < lr_final <= 1", where="train config",
                              field="lr" if not self.lr > 0 else "lr_final")


@dataclass
class EpochStats:
    """One epoch: mean training loss; accuracy (or van Rossum distance) on the data."""

    epoch: int
    loss: float
    train_metric: float | None
    test_metric: float | None
    seconds: float


@dataclass
class History:
    """Per-epoch statistics of one :func:`fit`."""

    epochs: list[EpochStats] = field(default_factory=list)

    @property
    def final(self) -> EpochStats:
        if not self.epochs:
            raise ConfigError("no epoch was run", where="history")
        return self.epochs[-1]

    def as_dict(self) -> dict[str, list[float | None]]:
        return {"loss": [e.loss for e in self.epochs],
                "train_metric": [e.train_metric for e in self.epochs],
                "test_metric": [e.test_metric for e in self.epochs],
                "seconds": [e.seconds for e in self.epochs]}


def _batch_loss(net: SpikingNet, loss: Loss, reg: RateRegularizer | None, trace: Trace,
                target: NDArray[np.generic]) -> LossValue:
    value = loss(trace, target, net)
    if reg is not None:
        value = value.add(reg(trace, net))
    return value


def predict(net: SpikingNet, loss: Loss, x: NDArray[np.generic], *, batch_size: int = 256,
            fn: SpikeFunction | None = None, fwd: Forward | None = None) -> NDArray[np.int64]:
    """Predicted classes of batch-major inputs (N, T, n) by the loss's decoder."""
    fn = fn or Surrogate()
    fwd = fwd or FloatForward()
    out = []
    for s in range(0, len(x), batch_size):
        xb = time_major(x[s: s + batch_size], net.n_in, net.steps(x.shape[1]))
        tr, _ = fwd(net, xb, fn)
        out.append(argmax_or_tie(loss.logits(tr)))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def evaluate(net: SpikingNet, loss: Loss, data: SpikeData, *, batch_size: int = 256,
             fwd: Forward | None = None) -> float:
    """Accuracy (fraction) for classification losses; the mean loss for van Rossum."""
    if loss.name == "van_rossum":
        fn = Surrogate()
        fwd = fwd or FloatForward()
        total = 0.0
        for s in range(0, len(data), batch_size):
            xb = time_major(data.x[s: s + batch_size], net.n_in, net.steps(data.steps))
            tr, _ = fwd(net, xb, fn)
            total += loss(tr, data.y[s: s + batch_size], net).value * xb.shape[1]
        return total / max(len(data), 1)
    pred = predict(net, loss, data.x, batch_size=batch_size, fwd=fwd)
    return float(np.mean(pred == data.y)) if len(data) else 0.0


def fit(net: SpikingNet, loss: Loss, train: SpikeData, config: TrainConfig | None = None, *,
        test: SpikeData | None = None, fwd: Forward | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
        eval_train: bool = True) -> History:
    """Train ``net`` in place with mini-batch BPTT and Adam; returns the learning curve.

    fwd: the forward pass (float by default; a ``ChipForward`` for chip-aware fine-tuning).
    on_epoch / on_batch: progress callbacks (on_batch gets the number of samples done).
    """
    cfg = config or TrainConfig()
    loss.check(net)
    if train.n_in != net.n_in:
        raise ConfigError(f"the data has {train.n_in} input channels, the network {net.n_in}",
                          where="fit", field="train")
    fwd = fwd or FloatForward(cfg.dtype, reuse=True)
    fn = cfg.surrogate
    opt = Adam(cfg.lr, clip=cfg.clip)
    ws = fwd.workspace if isinstance(fwd, FloatForward) else None
    rng = np.random.default_rng(cfg.seed)
    steps = net.steps(train.steps)
    hist = History()
    n = len(train)
    n_batches = (n + cfg.batch_size - 1) // cfg.batch_size
    total_steps = cfg.epochs * n_batches
    k = 0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        total, count = 0.0, 0
        for b in range(n_batches):
            frac = k / max(total_steps - 1, 1)
            opt.lr = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + np.cos(np.pi * frac)))
            idx = order[b * cfg.batch_size: (b + 1) * cfg.batch_size]
            if isinstance(fwd, FloatForward):
                trace, used = fwd(net, fwd.inputs(train.x, idx, net.n_in, steps), fn)
            else:
                trace, used = fwd(net, time_major(train.x[idx], net.n_in, steps), fn)
            value = _batch_loss(net, loss, cfg.regularizer, trace, train.y[idx])
            grads = backward(used, trace, fn, dS=value.dS, dP=value.dP,
                             detach_reset=cfg.detach_reset, workspace=ws)
            opt.step(net.params, grads)
            total += value.value * len(idx)
            count += len(idx)
            k += 1
            if on_batch is not None:
                on_batch(len(idx))
        seconds = time.perf_counter() - t0
        is_cls = loss.name != "van_rossum"
        tr_acc = evaluate(net, loss, train, fwd=fwd) if (eval_train and is_cls) else None
        te_acc = evaluate(net, loss, test, fwd=fwd) if test is not None else None
        stats = EpochStats(epoch + 1, total / max(count, 1), tr_acc, te_acc, seconds)
        hist.epochs.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return hist
