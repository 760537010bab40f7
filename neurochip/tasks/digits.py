"""The digits task, in one place: scikit-learn's 8x8 digits as the project uses them.

* The data: :func:`digits_split` is the project's fixed split,
  ``train_test_split(X / 16, y, test_size=0.25, stratify=y, random_state=0)`` (1,347 train,
  450 test images; :data:`DIGITS_SPLIT` records it).
* The code: every image becomes a rate code of :data:`DIGITS_STEPS` = 20 steps on 64 input
  channels (:func:`encode_digits`; the library's :func:`compiler.training.data.encode_rate`
  does the encoding). The trained models use the deterministic "regular" code at full rate
  (:func:`digits_spikes`, whose call the bundled model's record names); the on-chip
  learning demonstrations use it at half rate (:func:`digits_task`).
* The readouts: a trained model's readout is decoded by its loss (:func:`decode_readout`,
  e.g. the maximum over time of ``out.v``); the learned-on-chip network's by spike counts,
  ties broken by the summed voltage (:func:`decode_counts`).
* The networks and shifts of the learning demonstrations: :func:`digits_network` (random
  64-100-10, 8-bit weights), :func:`distort_digits` (moved and noisy images).
* Event-camera input for convolutional models: :func:`saccade_events` (N-MNIST-like events
  of the digits moved in three saccades).

The training task (:mod:`neurochip.tasks.training`), the on-chip learning tasks and demos,
``neurochip quickstart``, ``neurochip learn`` and the tools all take the digits from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from compiler.training.data import SpikeData, encode, encode_rate
from compiler.training.losses import Loss, decode
from neurochip.core.errors import ConfigError
from neurochip.core.network import Network

__all__ = [
    "DIGITS_SPLIT",
    "DIGITS_STEPS",
    "N_CLASSES",
    "N_PIXELS",
    "DigitsTask",
    "decode_counts",
    "decode_readout",
    "digits_inputs",
    "digits_network",
    "digits_spikes",
    "digits_split",
    "digits_split_spikes",
    "digits_task",
    "distort_digits",
    "encode_digits",
    "saccade_events",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
B8 = NDArray[np.bool_]

#: Pixels (input channels) and classes.
N_PIXELS = 64
N_CLASSES = 10
#: Steps of the rate code every digits model and demonstration uses.
DIGITS_STEPS = 20
#: The fixed split, as recorded with every trained digits model.
DIGITS_SPLIT = {"dataset": "sklearn.datasets.load_digits", "scaling": "X / 16",
                "test_size": 0.25, "stratify": True, "random_state": 0}


# ---------------------------------------------------------------------------- data
def digits_split() -> tuple[F64, F64, I64, I64]:
    """(X_train, X_test, y_train, y_test) of sklearn's digits, intensities in [0, 1].

    The project's fixed split: stratified, 25 % test, ``random_state=0`` (1,347 / 450).
    Read once per process (sklearn parses a text file each time); every call returns its
    own copies.
    """
    return tuple(a.copy() for a in _split())  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _split() -> tuple[F64, F64, I64, I64]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = d.data.astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=DIGITS_SPLIT["test_size"],
                                          stratify=y, random_state=DIGITS_SPLIT["random_state"])
    return Xtr, Xte, ytr, yte


def encode_digits(images: NDArray[np.generic], steps: int = DIGITS_STEPS,
                  encoding: str = "regular", *, max_rate: float = 1.0, seed: int = 0) -> B8:
    """Images (N, 64) in [0, 1] as spikes (N, steps, 64): a rate code ("regular" or
    "bernoulli", ``max_rate`` spikes per step at full intensity) or the latency code."""
    if encoding == "latency":
        return encode(images, encoding, steps)
    return encode(images, encoding, steps, seed=seed, max_rate=max_rate)


def digits_spikes(steps: int = DIGITS_STEPS, encoding: str = "regular", *, seed: int = 0
                  ) -> tuple[SpikeData, SpikeData]:
    """(train, test) of the fixed split as spikes (N, steps, 64), e.g. the test set the
    bundled digits model is evaluated on: ``digits_spikes(20)[1]``."""
    return (digits_split_spikes("train", steps, encoding, seed=seed),
            digits_split_spikes("test", steps, encoding, seed=seed))


def digits_split_spikes(split: str, steps: int = DIGITS_STEPS, encoding: str = "regular", *,
                        seed: int = 0, samples: int | None = None) -> SpikeData:
    """One split ("train" or "test") of :func:`digits_spikes`, the same arrays, without
    encoding the other one (the test split is a quarter of the work); samples: only its
    first samples (the same rows: a deterministic code encodes just those, the random one,
    "bernoulli", the whole split first)."""
    if split not in ("train", "test"):
        raise ConfigError(f"unknown digits split {split!r}; use 'train' or 'test'",
                          where="digits data", field="split", value=split)
    Xtr, Xte, ytr, yte = digits_split()
    X, y, s = (Xtr, ytr, seed) if split == "train" else (Xte, yte, seed + 1)
    if samples is None:
        return SpikeData(encode_digits(X, steps, encoding, seed=s), y)
    if encoding == "bernoulli":  # the coin flips depend on the whole array's shape
        return SpikeData(encode_digits(X, steps, encoding, seed=s)[:samples], y[:samples])
    return SpikeData(encode_digits(X[:samples], steps, encoding, seed=s), y[:samples])


def digits_inputs(steps: int = DIGITS_STEPS, encoding: str = "regular") -> str:
    """The call that produces a trained model's inputs, as its record names it."""
    return f"{__name__}.digits_spikes({steps}, {encoding!r})"


# ---------------------------------------------------------------------------- readouts
def decode_readout(loss: Loss, recorded: NDArray[Any], signal: str) -> I64:
    """Classes (N,) from a trained model's recorded readout (N, T, 10): its voltage
    (``signal="v"``) or its spikes (``"spikes"``), decoded as the model's loss decides."""
    if signal not in ("v", "spikes"):
        raise ConfigError(f"unknown readout signal {signal!r}; use 'v' or 'spikes'",
                          where="digits readout", field="signal", value=signal)
    rec = np.asarray(recorded)
    return decode(loss, rec if signal == "v" else None, rec if signal == "spikes" else None)


def decode_counts(counts: NDArray[Any], vsum: NDArray[Any]) -> I64:
    """Classes (N,) of the learned-on-chip readout: the output neuron with the most spikes
    (``counts`` (N, 10)), ties broken by the higher summed voltage ``vsum`` (N, 10)."""
    score = np.asarray(counts, np.float64) * 1e9 + np.asarray(vsum, np.float64)
    return np.asarray(np.argmax(score, axis=1), np.int64)


# ---------------------------------------------------------------------------- on-chip learning
@dataclass
class DigitsTask:
    """Rate-coded digits: spikes (N, T, 64) and labels, train and test, plus the images."""

    x_train: B8
    y_train: I64
    x_test: B8
    y_test: I64
    images_train: F64
    images_test: F64
    steps: int
    rate: float

    def encode(self, images: F64) -> B8:
        return encode_rate(np.clip(images, 0.0, 1.0), self.steps, max_rate=self.rate)


def digits_task(steps: int = DIGITS_STEPS, rate: float = 0.5) -> DigitsTask:
    """The digits split, rate coded with the deterministic "regular" encoder at ``rate``
    spikes per step at full intensity (the on-chip learning protocol)."""
    Xtr, Xte, ytr, yte = digits_split()
    return DigitsTask(encode_rate(Xtr, steps, max_rate=rate), ytr,
                      encode_rate(Xte, steps, max_rate=rate), yte, Xtr, Xte, steps, rate)


def digits_network(hw: Any = "loihi_like", *, n_hidden: int = 100, seed: int = 0,
                   w_hidden: int = 20, w_out: int = 10, vth: int = 60, dv: int = 1024
                   ) -> Network:
    """64 inputs -> n_hidden LIF -> 10 LIF, random 8-bit mixed-sign weights.

    Weights are even integers drawn uniformly from [-2 w, 2 w]; no synaptic memory
    (du = 4095); voltage decay dv; threshold vth * 64.
    """
    rng = np.random.default_rng(seed)
    net = Network(hw, name=f"digits-{n_hidden}")
    net.add_input("in", N_PIXELS)
    net.add_lif("hid", n_hidden, du=4095, dv=dv, vth=vth)
    net.add_lif("out", N_CLASSES, du=4095, dv=dv, vth=vth)
    net.connect("in", "hid", rng.integers(-w_hidden, w_hidden + 1, (n_hidden, N_PIXELS)) * 2,
                sign_mode="mixed")
    net.connect("hid", "out", rng.integers(-w_out, w_out + 1, (N_CLASSES, n_hidden)) * 2,
                sign_mode="mixed")
    return net


def distort_digits(images: F64, *, shift: int = 0, noise: float = 0.0, seed: int = 0) -> F64:
    """8x8 digit images moved right by ``shift`` pixels (zeros enter) plus uniform noise."""
    x = np.asarray(images, np.float64).reshape(-1, 8, 8)
    if shift:
        out = np.zeros_like(x)
        if shift > 0:
            out[:, :, shift:] = x[:, :, :-shift]
        else:
            out[:, :, :shift] = x[:, :, -shift:]
        x = out
    if noise > 0:
        rng = np.random.default_rng(seed)
        x = np.clip(x + noise * rng.random(x.shape), 0.0, 1.0)
    return x.reshape(-1, N_PIXELS)


#: The three saccades of :func:`saccade_events`: the image's offset (rows, columns), in
#: pixels of the upsampled image, at the path's corners (a triangle, as N-MNIST's sensor
#: moved).
SACCADE_PATH = ((0.0, 0.0), (2.0, 2.0), (4.0, 0.0), (0.0, 0.0))


def saccade_events(images: F64, steps: int, *, size: int = 34, digit: int = 28,
                   threshold: float = 0.08, p_event: float = 0.9, seed: int = 0) -> B8:
    """Digit images as an event camera sees them move (N-MNIST-like synthetic events).

    Each 8x8 image is upsampled (bilinear) to ``digit`` x ``digit`` pixels, centred on a
    ``size`` x ``size`` sensor and moved along :data:`SACCADE_PATH` over ``steps`` time
    bins. A pixel emits an ON event (channel 0) when its intensity rose by more than
    ``threshold`` since its last event, OFF (channel 1) when it fell by as much, each
    kept with probability ``p_event``. Returns (N, steps, 2 * size * size) bool events,
    channel-major (channel, row, column) flattened in C order: the input layout of a NIR
    CNN on 2 x size x size event frames (the NIR paper's N-MNIST CNN takes 2 x 34 x 34).
    """
    from scipy.ndimage import shift as nd_shift
    from scipy.ndimage import zoom

    x = np.asarray(images, np.float64).reshape(-1, 8, 8)
    if steps < 1 or not 8 <= digit <= size:
        raise ConfigError(f"need steps >= 1 and 8 <= digit <= size, got steps={steps}, "
                          f"digit={digit}, size={size}", where="saccade_events")
    rng = np.random.default_rng(seed)
    path = np.asarray(SACCADE_PATH)
    legs = len(path) - 1
    top = (size - digit) // 2
    out = np.zeros((x.shape[0], steps, 2, size, size), bool)
    for i, img in enumerate(x):
        base = np.zeros((size, size))
        base[top: top + digit, top: top + digit] = zoom(img, digit / 8, order=1).clip(0, 1)
        last = nd_shift(base, path[0], order=1)  # intensity at each pixel's last event
        for t in range(steps):
            s = (t + 1) / steps * legs
            leg = min(int(s), legs - 1)
            f = s - leg
            now = nd_shift(base, path[leg] * (1 - f) + path[leg + 1] * f, order=1)
            diff = now - last
            on, off = diff > threshold, diff < -threshold
            out[i, t, 0] = on & (rng.random(on.shape) < p_event)
            out[i, t, 1] = off & (rng.random(off.shape) < p_event)
            last = np.where(on | off, now, last)
    return out.reshape(x.shape[0], steps, -1)
