"""Data sets and spike encoders for training.

All arrays are batch-major like the emulator's inputs: spikes ``(N, T, n)`` bool, labels
``(N,)`` int. Every generator is seeded and deterministic.

* Encoders: :func:`encode_rate` (Bernoulli rate code, or its deterministic "regular"
  counterpart), :func:`encode_latency` (one spike per pixel, brighter = earlier).
* :func:`temporal_xor` -- Fig. 6 of Neftci, Mostafa & Zenke: two inputs, each spiking once,
  early or late; the class is whether they differ.
* :func:`randman` -- random manifolds in spike-time space (after Zenke & Vogels 2021; our
  own generator): each class is a smooth random map from a ``dim``-dimensional latent
  coordinate to one spike time per input unit.
* :func:`spike_train_task` -- SuperSpike's task: frozen random input patterns, each with
  target output spike trains to reproduce (van Rossum loss).

The digits task (scikit-learn's 8x8 digits, the project's fixed split and its 20-step rate
code) is application code: :mod:`neurochip.tasks.digits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from compiler.training.model import positive_int
from neurochip.core.errors import ConfigError

__all__ = [
    "SpikeData",
    "encode",
    "encode_latency",
    "encode_rate",
    "randman",
    "spike_train_task",
    "temporal_xor",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B8 = NDArray[np.bool_]

@dataclass
class SpikeData:
    """Encoded samples: spikes (N, T, n) bool and labels (N,) (or target spikes)."""

    x: B8
    y: NDArray[np.generic]

    def __post_init__(self) -> None:
        if self.x.ndim != 3 or self.x.dtype != np.bool_:
            raise ConfigError(f"spikes must be a bool array (N, T, n), got {self.x.dtype} "
                              f"{self.x.shape}", where="data", field="x")
        if len(self.y) != len(self.x):
            raise ConfigError(f"{len(self.x)} samples but {len(self.y)} targets", where="data",
                              field="y")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_in(self) -> int:
        return int(self.x.shape[2])

    def subset(self, idx: NDArray[np.integer]) -> SpikeData:
        return SpikeData(self.x[idx], self.y[idx])


def _check_unit(X: NDArray[np.generic], where: str) -> F64:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ConfigError(f"expected (N, features), got shape {arr.shape}", where=where,
                          field="X")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ConfigError("intensities must lie in [0, 1]", where=where, field="X",
                          value=(float(arr.min()), float(arr.max())), limit=(0, 1))
    return arr


# ---------------------------------------------------------------------------- encoders
def encode_rate(X: NDArray[np.generic], steps: int, *, max_rate: float = 1.0,
                mode: Literal["bernoulli", "regular"] = "regular", seed: int = 0) -> B8:
    """Rate code: intensity x in [0, 1] -> spikes with probability ``max_rate * x`` per step.

    mode "bernoulli": independent coin flips (seeded). mode "regular": the deterministic
    version, an integrate-and-fire encoder (phase += max_rate * x; spike when it reaches 1)
    that emits ``floor(steps * max_rate * x)`` evenly spaced spikes, or one more.
    """
    arr = _check_unit(X, "encode_rate")
    T = positive_int(steps, "encode_rate", "steps")
    if not 0 < max_rate <= 1:
        raise ConfigError(f"must lie in (0, 1], got {max_rate}", where="encode_rate",
                          field="max_rate", value=max_rate)
    p = max_rate * arr
    if mode == "bernoulli":
        rng = np.random.default_rng(seed)
        return rng.random((arr.shape[0], T, arr.shape[1])) < p[:, None, :]
    if mode == "regular":
        # Phase starts at 1/2 so that the spikes sit in the middle of their intervals; the
        # count after n steps is floor(n p + 1/2).
        n = np.arange(1, T + 1, dtype=np.float64)[None, :, None]
        counts = np.floor(n * p[:, None, :] + 0.5 + 1e-9)
        prev = np.floor((n - 1) * p[:, None, :] + 0.5 + 1e-9)
        return counts > prev
    raise ConfigError(f"unknown mode {mode!r}; use 'bernoulli' or 'regular'",
                      where="encode_rate", field="mode", value=mode)


def encode_latency(X: NDArray[np.generic], steps: int, *, threshold: float = 0.0) -> B8:
    """Latency code: one spike per feature at step ``round((1 - x) * (steps - 1))``.

    Features at or below ``threshold`` stay silent (the background of an image).
    """
    arr = _check_unit(X, "encode_latency")
    T = positive_int(steps, "encode_latency", "steps")
    t = np.rint((1.0 - arr) * (T - 1)).astype(np.int64)
    out = np.zeros((arr.shape[0], T, arr.shape[1]), bool)
    n_idx, f_idx = np.nonzero(arr > threshold)
    out[n_idx, t[n_idx, f_idx], f_idx] = True
    return out


def encode(X: NDArray[np.generic], encoding: str, steps: int, *, seed: int = 0,
           **options: float) -> B8:
    """Dispatch on an encoding name: "regular", "bernoulli" (rate codes) or "latency".

    seed: used by "bernoulli" only (the other codes are deterministic).
    """
    if encoding in ("regular", "bernoulli"):
        return encode_rate(X, steps, mode=encoding, seed=seed, **options)  # type: ignore[arg-type]
    if encoding == "latency":
        return encode_latency(X, steps, **options)
    raise ConfigError(f"unknown encoding {encoding!r}; use 'regular', 'bernoulli' or 'latency'",
                      where="encode", field="encoding", value=encoding)


# ---------------------------------------------------------------------------- temporal XOR
def temporal_xor(*, early: int = 1, late: int = 6, steps: int = 12, reference: bool = True,
                 repeats: int = 1, jitter: int = 0, seed: int = 0) -> SpikeData:
    """The four temporal-XOR patterns (Fig. 6): inputs A and B spike once, early or late.

    Label 1 when exactly one of them is late (early/late, late/early), 0 when both are early
    or both late. reference: add a third input that always spikes at step 0 (the "bias
    spike" of temporal coding, giving the network a time origin). repeats/jitter: copies of
    each pattern with spike times moved by up to +-jitter steps (seeded).
    Patterns come in the order (early, early), (early, late), (late, early), (late, late).
    """
    positive_int(steps, "temporal_xor", "steps")
    positive_int(repeats, "temporal_xor", "repeats")
    if not 0 <= early < late or late + jitter >= steps or early - jitter < 0:
        raise ConfigError(f"need 0 <= early - jitter, early < late, late + jitter < steps; got "
                          f"early={early}, late={late}, jitter={jitter}, steps={steps}",
                          where="temporal_xor", field="late")
    rng = np.random.default_rng(seed)
    n_in = 3 if reference else 2
    xs, ys = [], []
    for _ in range(repeats):
        for a_late in (0, 1):
            for b_late in (0, 1):
                x = np.zeros((steps, n_in), bool)
                for ch, is_late in ((0, a_late), (1, b_late)):
                    t = (late if is_late else early)
                    if jitter:
                        t += int(rng.integers(-jitter, jitter + 1))
                    x[t, ch] = True
                if reference:
                    x[0, 2] = True
                xs.append(x)
                ys.append(a_late ^ b_late)
    return SpikeData(np.stack(xs), np.asarray(ys, np.int64))


# ---------------------------------------------------------------------------- Randman
def randman(*, n_classes: int = 10, n_units: int = 100, steps: int = 100, dim: int = 1,
            smoothness: float = 2.0, n_freqs: int = 4, samples_per_class: int = 300,
            seed: int = 0) -> SpikeData:
    """Random-manifold spike-timing data: every unit spikes exactly once per sample.

    Class c is a smooth random map from a latent point z in [0, 1]^dim to spike times: for
    unit i, ``h_ci(z) = mean_j g_cij(z_j)`` with random Fourier series
    ``g_cij(z) = sum_{k=1..n_freqs} k^-smoothness a_cijk sin(2 pi (k z + phi_cijk))``
    (a, phi uniform in [0, 1)), each ``g`` rescaled to [0, 1] over its period; unit i of a
    sample of class c spikes at step ``floor(h_ci(z) * (steps - 1))``. Spike counts and
    rates are the same for every class, so only the timing carries the class. A larger
    ``dim`` or a smaller ``smoothness`` makes the task harder. Samples are shuffled.
    """
    for name, v in (("n_classes", n_classes), ("n_units", n_units), ("steps", steps),
                    ("dim", dim), ("n_freqs", n_freqs), ("samples_per_class",
                                                         samples_per_class)):
        positive_int(v, "randman", name)
    if not smoothness >= 0:
        raise ConfigError(f"must be >= 0, got {smoothness}", where="randman",
                          field="smoothness")
    rng = np.random.default_rng(seed)
    k = np.arange(1, n_freqs + 1, dtype=np.float64)
    amp = rng.random((n_classes, n_units, dim, n_freqs)) * k ** (-smoothness)
    phase = rng.random((n_classes, n_units, dim, n_freqs))
    grid = np.linspace(0.0, 1.0, 512, endpoint=False)

    def series(c: int, z: F64) -> F64:
        # z: (m,) latent coordinates of one dimension -> (m, n_units, dim) values
        arg = 2 * np.pi * (k[None, None, None, :] * z[:, None, None, None]
                           + phase[c][None])
        return (amp[c][None] * np.sin(arg)).sum(axis=-1)

    xs, ys = [], []
    for c in range(n_classes):
        g = series(c, grid)  # (512, n_units, dim): same series for every latent dimension
        lo, hi = g.min(axis=0), g.max(axis=0)
        z = rng.random((samples_per_class, dim))
        h = np.zeros((samples_per_class, n_units))
        for j in range(dim):
            gj = series(c, z[:, j])[:, :, j]  # dimension j's series at z_j
            h += (gj - lo[:, j]) / np.maximum(hi[:, j] - lo[:, j], 1e-12)
        h /= dim
        t = np.clip(np.floor(h * (steps - 1)).astype(np.int64), 0, steps - 1)
        x = np.zeros((samples_per_class, steps, n_units), bool)
        x[np.arange(samples_per_class)[:, None], t, np.arange(n_units)[None, :]] = True
        xs.append(x)
        ys.append(np.full(samples_per_class, c, np.int64))
    X = np.concatenate(xs)
    Y = np.concatenate(ys)
    order = rng.permutation(len(Y))
    return SpikeData(X[order], Y[order])


# ---------------------------------------------------------------------------- SuperSpike
def spike_train_task(*, n_in: int = 100, n_out: int = 1, steps: int = 200,
                     n_patterns: int = 1, input_rate: float = 0.05, target_spikes: int = 5,
                     seed: int = 0) -> SpikeData:
    """SuperSpike's task: frozen random input patterns and target output spike trains.

    Each of ``n_patterns`` inputs is a frozen Bernoulli pattern of ``input_rate`` per step;
    its target asks each of the ``n_out`` outputs for ``target_spikes`` spikes at random
    distinct steps, at least 5 steps apart, in the middle 80 % of the window. ``y`` holds
    the target spikes (N, steps, n_out).
    """
    for name, v in (("n_in", n_in), ("n_out", n_out), ("steps", steps),
                    ("n_patterns", n_patterns), ("target_spikes", target_spikes)):
        positive_int(v, "spike_train_task", name)
    if not 0 < input_rate < 1:
        raise ConfigError(f"must lie in (0, 1), got {input_rate}", where="spike_train_task",
                          field="input_rate")
    lo, hi = int(0.1 * steps), int(0.9 * steps)
    slots = np.arange(lo, hi, 5)
    if slots.size < target_spikes:
        raise ConfigError(f"{target_spikes} target spikes 5 steps apart do not fit {steps} "
                          f"steps", where="spike_train_task", field="target_spikes")
    rng = np.random.default_rng(seed)
    x = rng.random((n_patterns, steps, n_in)) < input_rate
    y = np.zeros((n_patterns, steps, n_out), bool)
    for p in range(n_patterns):
        for o in range(n_out):
            y[p, rng.choice(slots, target_spikes, replace=False), o] = True
    return SpikeData(x, y)
