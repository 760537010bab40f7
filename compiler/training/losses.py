"""Losses on a recorded forward pass, each returning its value and its gradients.

A loss reads the trace (time-major, see :mod:`compiler.training.bptt`) and returns a
:class:`LossValue`: the scalar (mean over the batch) and dL/dS, dL/dP per layer, ready for
:func:`~compiler.training.bptt.backward`. Each classification loss comes with the matching
decoder (:meth:`Loss.predict`), which the chip evaluation applies to the chip's own spikes
and voltages.

==================  ==================================================  ==================
loss                definition                                          readout
==================  ==================================================  ==================
``ce_max``          cross-entropy of ``max_n P[n]``                     non-spiking
``ce_last``         cross-entropy of ``P[T-1]``                         non-spiking
``ce_mean``         cross-entropy of ``mean_n P[n]``                    non-spiking
``ce_count``        cross-entropy of ``scale * sum_n S[n]``             spiking
``first_spike``     cross-entropy of ``-t_first / tau`` (first-to-spike)  spiking
``van_rossum``      eq. 13: ``1/2 sum_n (eps * (S - S*))[n]^2``           spiking
==================  ==================================================  ==================

First spike time (discrete, differentiable in S): with the survival ``q[n] = prod_{m<n}(1 -
S[m])``, ``t_first = sum_n n S[n] q[n] + T q[T]`` (no spike counts as a spike at T). It is
computed backwards as ``R[T] = T, R[n] = n S[n] + (1 - S[n]) R[n+1]``, ``t_first = R[0]``,
whence ``dt_first/dS[n] = q[n] (n - R[n+1])``: exact for binary spikes, so a surrogate
derivative turns it into a spike-time gradient.

Van Rossum: ``eps`` is a causal exponential kernel (``e[n] = a e[n-1] + x[n]``, ``a =
exp(-1/tau)``), optionally applied twice (an alpha-shaped kernel as in SuperSpike).

Firing-rate regularisation (:class:`RateRegularizer`) adds ``strength * mean((r - upper)_+^2 +
(lower - r)_+^2)`` over samples and neurons of the chosen spiking layers, ``r`` being each
neuron's spikes per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from compiler.training.bptt import Trace
from compiler.training.model import SpikingNet
from neurochip.core.errors import ConfigError

__all__ = [
    "LOSS_NAMES",
    "Loss",
    "LossValue",
    "RateRegularizer",
    "argmax_or_tie",
    "decode",
    "first_spike_times",
    "make_loss",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

LossName = Literal["ce_max", "ce_last", "ce_mean", "ce_count", "first_spike", "van_rossum"]
LOSS_NAMES: tuple[str, ...] = ("ce_max", "ce_last", "ce_mean", "ce_count", "first_spike",
                               "van_rossum")
_VOLTAGE_LOSSES = ("ce_max", "ce_last", "ce_mean")


@dataclass
class LossValue:
    """A loss on one batch: its value and its gradients per layer name."""

    value: float
    dS: dict[str, F64] = field(default_factory=dict)
    dP: dict[str, F64] = field(default_factory=dict)

    def add(self, other: LossValue) -> LossValue:
        out = LossValue(self.value + other.value, dict(self.dS), dict(self.dP))
        for src, dst in ((other.dS, out.dS), (other.dP, out.dP)):
            for k, v in src.items():
                dst[k] = dst[k] + v if k in dst else v
        return out


def _softmax_ce(logits: F64, labels: I64) -> tuple[float, F64]:
    """Mean cross-entropy over the batch and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    ez = np.exp(z)
    p = ez / ez.sum(axis=1, keepdims=True)
    B = logits.shape[0]
    rows = np.arange(B)
    loss = float(-np.mean(np.log(np.maximum(p[rows, labels], 1e-300))))
    g = p
    g[rows, labels] -= 1.0
    return loss, g / B


def first_spike_times(S: F64) -> tuple[F64, F64]:
    """(t_first, dt_first/dS): first spike times (B, n) of spikes S (T, B, n), T if silent."""
    T = S.shape[0]
    R = np.full(S.shape[1:], float(T))
    Rnext = np.empty_like(S)
    for n in range(T - 1, -1, -1):
        Rnext[n] = R
        R = n * S[n] + (1.0 - S[n]) * R
    q = np.ones_like(S)
    if T > 1:
        q[1:] = np.cumprod(1.0 - S[:-1], axis=0)
    steps = np.arange(T, dtype=np.float64)[:, None, None]
    return R, q * (steps - Rnext)


def _exp_filter(x: F64, a: float, reverse: bool = False) -> F64:
    out = np.empty_like(x)
    acc = np.zeros(x.shape[1:])
    order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for n in order:
        acc = a * acc + x[n]
        out[n] = acc
    return out


@dataclass(frozen=True)
class Loss:
    """A loss on the readout layer (see the module docstring for each ``name``).

    count_scale: logits per spike for ``ce_count``; tau: time scale (steps) of the
    ``first_spike`` logits, and the van Rossum kernel's time constant; kernel_order: 1 for
    an exponential van Rossum kernel, 2 for an alpha-shaped one.
    """

    name: LossName = "ce_max"
    count_scale: float = 1.0
    tau: float = 2.0
    kernel_order: int = 1

    def __post_init__(self) -> None:
        if self.name not in LOSS_NAMES:
            raise ConfigError(f"unknown loss {self.name!r}; choose one of {', '.join(LOSS_NAMES)}",
                              where="loss", field="name", value=self.name)
        if not self.tau > 0 or not self.count_scale > 0:
            raise ConfigError("tau and count_scale must be positive", where=f"loss '{self.name}'",
                              field="tau" if not self.tau > 0 else "count_scale")
        if self.kernel_order not in (1, 2):
            raise ConfigError(f"must be 1 or 2, got {self.kernel_order}", where="loss",
                              field="kernel_order")

    @property
    def needs_spiking_readout(self) -> bool:
        return self.name not in _VOLTAGE_LOSSES

    def check(self, net: SpikingNet) -> None:
        """The readout fits the loss (spiking for spike losses, a voltage otherwise)."""
        out = net.readout
        if self.needs_spiking_readout and not out.spiking:
            raise ConfigError(f"loss '{self.name}' needs a spiking readout layer",
                              where=f"layer '{out.name}'", field="spiking")
        if not self.needs_spiking_readout and out.spiking:
            raise ConfigError(f"loss '{self.name}' reads the membrane of a non-spiking readout; "
                              f"make the last layer non-spiking", where=f"layer '{out.name}'",
                              field="spiking")

    def _vr_filter(self, x: F64) -> F64:
        a = float(np.exp(-1.0 / self.tau))
        for _ in range(self.kernel_order):
            x = _exp_filter(x, a)
        return x

    def van_rossum_distance(self, spikes: NDArray[np.generic], target: NDArray[np.generic]
                            ) -> float:
        """Mean over samples of eq. 13 for batch-major spikes and targets (B, T, n).

        The shorter of the two is padded with silence.
        """
        s = np.asarray(spikes, np.float64)
        t = np.asarray(target, np.float64)
        if s.ndim != 3 or t.ndim != 3 or s.shape[0] != t.shape[0] or s.shape[2] != t.shape[2]:
            raise ConfigError(f"spikes {s.shape} and target {t.shape} must be (B, T, n) alike",
                              where="van Rossum distance", field="target")
        T = max(s.shape[1], t.shape[1])
        d = np.zeros((T, s.shape[0], s.shape[2]))
        d[: s.shape[1]] += np.swapaxes(s, 0, 1)
        d[: t.shape[1]] -= np.swapaxes(t, 0, 1)
        e = self._vr_filter(d)
        return 0.5 * float(np.sum(e * e)) / max(s.shape[0], 1)

    @property
    def decoder(self) -> str:
        """How predictions are read from the readout's recording (for records and docs)."""
        return {
            "ce_max": "argmax over neurons of the maximum over time of v",
            "ce_last": "argmax over neurons of v at the last step",
            "ce_mean": "argmax over neurons of the mean over time of v",
            "ce_count": "argmax over neurons of the spike count",
            "first_spike": "the neuron that spikes first (a tie is no decision)",
            "van_rossum": "the output spike trains (van Rossum distance to the targets)",
        }[self.name]

    def logits(self, trace: Trace) -> F64:
        """Class scores (B, n) whose argmax is the prediction (classification losses)."""
        return _scores(self, trace.out.P, trace.out.S)

    def __call__(self, trace: Trace, target: NDArray[np.generic], net: SpikingNet) -> LossValue:
        """target: labels (B,) for classification, target spikes (B, T, n) for van Rossum."""
        out = trace.out
        name = net.readout.name
        T, B, n = out.P.shape
        if self.name == "van_rossum":
            tgt = np.asarray(target, dtype=np.float64)
            if tgt.shape[0] != B or tgt.shape[2] != n or tgt.shape[1] > T:
                raise ConfigError(f"target spikes must be (B, <= {T}, {n}), got {tgt.shape}",
                                  where="loss 'van_rossum'", field="target")
            Sstar = np.zeros_like(out.S)
            Sstar[: tgt.shape[1]] = np.swapaxes(tgt, 0, 1)
            a = float(np.exp(-1.0 / self.tau))
            e = self._vr_filter(out.S - Sstar)
            value = 0.5 * float(np.sum(e * e)) / B
            g = e / B
            for _ in range(self.kernel_order):
                g = _exp_filter(g, a, reverse=True)
            return LossValue(value, dS={name: g})
        labels = np.asarray(target, dtype=np.int64)
        if labels.shape != (B,) or labels.min(initial=0) < 0 or labels.max(initial=0) >= n:
            raise ConfigError(f"labels must be (B,) = ({B},) ints in [0, {n})",
                              where=f"loss '{self.name}'", field="target")
        if self.name == "ce_max":
            idx = np.argmax(out.P, axis=0)
            logits = np.take_along_axis(out.P, idx[None], axis=0)[0]
            value, g = _softmax_ce(logits, labels)
            dP = np.zeros_like(out.P)
            np.put_along_axis(dP, idx[None], g[None], axis=0)
            return LossValue(value, dP={name: dP})
        if self.name == "ce_last":
            value, g = _softmax_ce(out.P[-1].copy(), labels)
            dP = np.zeros_like(out.P)
            dP[-1] = g
            return LossValue(value, dP={name: dP})
        if self.name == "ce_mean":
            value, g = _softmax_ce(out.P.mean(axis=0), labels)
            return LossValue(value, dP={name: np.broadcast_to(g / T, out.P.shape).copy()})
        if self.name == "ce_count":
            value, g = _softmax_ce(self.count_scale * out.S.sum(axis=0), labels)
            return LossValue(value, dS={name: np.broadcast_to(self.count_scale * g,
                                                              out.S.shape).copy()})
        tf, dtf = first_spike_times(out.S)
        value, g = _softmax_ce(-tf / self.tau, labels)
        return LossValue(value, dS={name: dtf * (-g / self.tau)[None]})


def _scores(loss: Loss, P: F64, S: F64) -> F64:
    if loss.name == "ce_max":
        return P.max(axis=0)
    if loss.name == "ce_last":
        return P[-1]
    if loss.name == "ce_mean":
        return P.mean(axis=0)
    if loss.name == "ce_count":
        return S.sum(axis=0)
    if loss.name == "first_spike":
        return -first_spike_times(S)[0]
    raise ConfigError(f"loss '{loss.name}' does not classify", where="loss", field="name")


def decode(loss: Loss, voltage: NDArray[np.generic] | None, spikes: NDArray[np.generic] | None,
           ) -> I64:
    """Predicted classes from batch-major readout recordings (B, T, n) (chip or float).

    A voltage loss reads ``voltage`` (any positive scale, e.g. the chip's integer v), a spike
    loss reads ``spikes``. Ties (e.g. two neurons spiking first in the same step) resolve to
    -1, which never equals a label, so they count as errors.
    """
    src = spikes if loss.needs_spiking_readout else voltage
    if src is None:
        raise ConfigError(f"loss '{loss.name}' needs the readout's "
                          f"{'spikes' if loss.needs_spiking_readout else 'voltage'}",
                          where="decode")
    arr = np.swapaxes(np.asarray(src, dtype=np.float64), 0, 1)
    return argmax_or_tie(_scores(loss, arr, arr))


def argmax_or_tie(scores: F64) -> I64:
    """Per row the index of the largest score, or -1 when several share it."""
    pred = np.argmax(scores, axis=1)
    best = np.take_along_axis(scores, pred[:, None], axis=1)
    ties = (scores == best).sum(axis=1) > 1
    return np.where(ties, -1, pred).astype(np.int64)


@dataclass(frozen=True)
class RateRegularizer:
    """Penalise firing rates (spikes per step) outside [lower, upper] in spiking layers."""

    strength: float = 1.0
    upper: float = 0.3
    lower: float = 0.0
    layers: tuple[str, ...] | None = None  # None: every spiking layer

    def __post_init__(self) -> None:
        if self.strength < 0 or not 0 <= self.lower <= self.upper:
            raise ConfigError("need strength >= 0 and 0 <= lower <= upper", where="rate "
                              "regulariser", field="strength" if self.strength < 0 else "lower")

    def __call__(self, trace: Trace, net: SpikingNet) -> LossValue:
        out = LossValue(0.0)
        spiking = {s.name: k for k, s in enumerate(net.layers) if s.spiking}
        chosen = list(spiking) if self.layers is None else list(self.layers)
        for lname in chosen:
            if lname not in spiking:
                raise ConfigError(f"no spiking layer {lname!r}; spiking layers: {list(spiking)}",
                                  where="rate regulariser", field="layers")
            S = trace.layers[spiking[lname]].S
            T = S.shape[0]
            r = S.mean(axis=0)
            hi = np.maximum(r - self.upper, 0.0)
            lo = np.maximum(self.lower - r, 0.0)
            m = r.size
            value = self.strength * float(np.sum(hi * hi + lo * lo)) / m
            g = self.strength * 2.0 * (hi - lo) / (m * T)
            out = out.add(LossValue(value, dS={lname: np.broadcast_to(g, S.shape).copy()}))
        return out


def make_loss(name: str, **options: float) -> Loss:
    """A :class:`Loss` by name, e.g. ``make_loss("first_spike", tau=2.0)``."""
    return Loss(name, **options)  # type: ignore[arg-type]

