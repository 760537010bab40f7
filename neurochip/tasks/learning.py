"""Learning tasks: data, networks and metrics for the on-chip learning demonstrations.

* digits (the data, its code, the random 64-100-10 network and the shifted images live in
  :mod:`neurochip.tasks.digits`): class targets as target spike trains; accuracy by output
  spike counts.
* SuperSpike: frozen Poisson inputs to one neuron and a target spike train
  (``compiler.training.data.spike_train_task``); the van Rossum distance.
* temporal XOR (Fig. 6): two inputs spiking early or late, plus a reference spike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import ConfigError
from neurochip.core.image import ChipImage
from neurochip.core.network import Network
from neurochip.tasks.digits import N_CLASSES, DigitsTask, decode_counts

__all__ = [
    "class_targets",
    "learn_classifier",
    "predict",
    "superspike_network",
    "van_rossum",
    "xor_network",
    "xor_task",
]

B8 = NDArray[np.bool_]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


def class_targets(labels: I64, n_classes: int, steps: int) -> B8:
    """Target spikes (N, steps, n_classes): the label's neuron spikes every step."""
    y = np.asarray(labels, np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ConfigError(f"labels must lie in [0, {n_classes})", where="class_targets",
                          field="labels")
    out = np.zeros((y.size, steps, n_classes), bool)
    out[np.arange(y.size), :, y] = True
    return out


def predict(image: ChipImage, x: B8, output: str = "out", *, backend: str = "numba") -> I64:
    """Class of each sample: the output neuron with most spikes (ties: higher voltage)."""
    from emulator.chip import Emulator

    em = Emulator(image, backend=backend)  # type: ignore[arg-type]
    inp = image.input_populations[0].name
    r = em.run({inp: x}, probes=[f"{output}.v"], spikes=[output])
    counts = r.spikes[output].sum(axis=1).astype(np.float64)
    vsum = r.probes[f"{output}.v"].astype(np.float64).sum(axis=1)
    return decode_counts(counts, vsum)


def learn_classifier(em: Any, task: DigitsTask, *, passes: int, decay_every: int = 3,
                     evaluate: Callable[[], float] | None = None, progress: bool = False,
                     seed: int = 0, output: str = "out"
                     ) -> tuple[list[float], list[Any]]:
    """Stream the training split ``passes`` times through ``em`` (an Emulator or a
    FloatLearner), lowering the learning rate by half every ``decay_every`` passes.

    Returns the test accuracy after each pass (if ``evaluate``) and the per-pass histories.
    """
    targets = {output: class_targets(task.y_train, N_CLASSES, task.steps)}
    curve: list[float] = []
    hists: list[Any] = []
    for k in range(passes):
        em.set_rate_shift(k // decay_every if decay_every > 0 else 0)
        if hasattr(em, "image") and hasattr(em, "learner"):
            h = em.learn({"in": task.x_train}, targets, shuffle=seed + k, progress=progress)
        else:
            h = em.learn(task.x_train, targets, shuffle=seed + k)
        hists.append(h)
        if evaluate is not None:
            curve.append(float(evaluate()))
    return curve, hists


# ---------------------------------------------------------------------------- SuperSpike
def superspike_network(hw: Any = "loihi_like", *, n_in: int = 100, seed: int = 0,
                       w_max: int = 8, vth: int = 400, du: int = 1024, dv: int = 512
                       ) -> Network:
    """n_in inputs -> one LIF neuron with small random excitatory weights."""
    rng = np.random.default_rng(seed)
    net = Network(hw, name="superspike")
    net.add_input("in", n_in)
    net.add_lif("out", 1, du=du, dv=dv, vth=vth)
    net.connect("in", "out", rng.integers(0, w_max + 1, (1, n_in)) * 2, sign_mode="mixed")
    return net


def van_rossum(spikes: NDArray[Any], target: NDArray[Any], tau: float = 10.0) -> float:
    """Discrete van Rossum distance: sum over steps of (exp filter of (S - S*))^2 / 2."""
    s = np.asarray(spikes, np.float64).reshape(len(spikes), -1)
    g = np.asarray(target, np.float64).reshape(len(target), -1)
    k = np.exp(-1.0 / tau)
    f = np.zeros(s.shape[1])
    acc = 0.0
    for t in range(s.shape[0]):
        f = f * k + (s[t] - g[t])
        acc += float((f * f).sum())
    return 0.5 * acc


# ---------------------------------------------------------------------------- temporal XOR
def xor_task(*, early: int = 2, late: int = 8, steps: int = 24, repeats: int = 1,
             jitter: int = 0, seed: int = 0) -> tuple[B8, I64]:
    """The four temporal-XOR patterns (inputs A, B and a reference spike at step 0)."""
    from compiler.training.data import temporal_xor

    d = temporal_xor(early=early, late=late, steps=steps, reference=True, repeats=repeats,
                     jitter=jitter, seed=seed)
    return d.x, np.asarray(d.y, np.int64)


def xor_network(hw: Any = "loihi_like", *, n_hidden: int = 32, seed: int = 0,
                max_delay: int = 8, vth: int = 30, w: int = 60) -> Network:
    """3 inputs -> hidden LIF (fixed random weights and axonal delays: coincidence
    detectors of delayed input spikes) -> 2 LIF outputs (learned)."""
    rng = np.random.default_rng(seed)
    net = Network(hw, name="temporal-xor")
    net.add_input("in", 3)
    net.add_lif("hid", n_hidden, du=2048, dv=1024, vth=vth)
    net.add_lif("out", 2, du=2048, dv=1024, vth=vth)
    wh = rng.integers(-w // 2, w + 1, (n_hidden, 3)) * 2
    net.connect("in", "hid", wh, delay=rng.integers(0, max_delay + 1, (n_hidden, 3)),
                sign_mode="mixed", storage="dense")
    net.connect("hid", "out", rng.integers(-5, 6, (2, n_hidden)) * 2, sign_mode="mixed")
    return net
