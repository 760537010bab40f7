"""BPTT against finite differences, on a network made smooth by :class:`SmoothStep`.

With the smooth stand-in for the step function and the reset path kept
(``detach_reset=False``), the network is an ordinary differentiable RNN and
:func:`~compiler.training.bptt.backward` must give its exact gradient. :func:`gradient_check`
compares it with central differences of the loss, parameter by parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from compiler.training.bptt import Trace, backward, forward, time_major
from compiler.training.losses import Loss, LossValue, RateRegularizer
from compiler.training.model import LayerSpec, ResetMode, SpikingNet
from compiler.training.surrogates import SmoothStep

__all__ = ["GradCheck", "check_all_losses", "gradient_check", "tiny_network"]

F64 = NDArray[np.float64]


@dataclass
class GradCheck:
    """Per parameter: max |BPTT - FD| / max |FD| (relative error), and the worst of them."""

    errors: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.errors.values()) if self.errors else 0.0


def tiny_network(*, reset: ResetMode = "subtract", readout_spiking: bool = False, seed: int = 2
                 ) -> SpikingNet:
    """3 inputs -> 4 recurrent LIF (bias) -> 2 readouts (bias; spiking on request)."""
    layers = [LayerSpec("hid", 4, alpha=0.5, beta=0.8, reset=reset, recurrent=True, bias=True),
              LayerSpec("out", 2, alpha=0.6, beta=0.9, reset=reset, spiking=readout_spiking,
                        recurrent=readout_spiking, bias=True)]
    net = SpikingNet.build(3, layers, seed=seed, gain=2.0, rec_gain=1.0)
    rng = np.random.default_rng(seed + 1)
    for k, v in net.params.items():
        net.params[k] = v + rng.normal(0.0, 0.1, v.shape)
    return net


def gradient_check(net: SpikingNet, x: NDArray[np.generic], loss: Loss,
                   target: NDArray[np.generic], *, steepness: float = 4.0,
                   regularizer: RateRegularizer | None = None, eps: float = 1e-6,
                   kernels: bool = True) -> GradCheck:
    """Relative error of BPTT against central differences for every parameter.

    x: batch-major inputs (B, T, n_in) (0/1 or any real input current).
    """
    fn = SmoothStep(steepness)
    xt = time_major(np.asarray(x, np.float64), net.n_in, net.steps(np.asarray(x).shape[1]))

    def value(params: dict[str, F64]) -> tuple[LossValue, Trace]:
        tr = forward(net, xt, fn, params=params, kernels=kernels)
        v = loss(tr, target, net)
        if regularizer is not None:
            v = v.add(regularizer(tr, net))
        return v, tr

    v, tr = value(net.params)
    grads = backward(net, tr, fn, dS=v.dS, dP=v.dP, detach_reset=False, kernels=kernels)
    errors: dict[str, float] = {}
    for key, w in net.params.items():
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            p: dict[str, F64] = {k: a.copy() for k, a in net.params.items()}
            p[key][idx] += eps
            up = value(p)[0].value
            p[key][idx] -= 2 * eps
            down = value(p)[0].value
            fd[idx] = (up - down) / (2 * eps)
        scale = float(np.abs(fd).max())
        errors[key] = float(np.abs(grads[key] - fd).max()) / scale if scale > 0 else float(
            np.abs(grads[key]).max())
    return GradCheck(errors)


def check_all_losses(*, eps: float = 1e-6, kernels: bool = True,
                     report: Callable[[str, GradCheck], None] | None = None) -> dict[str, float]:
    """The gradient check for every loss and both reset modes (worst error per case)."""
    rng = np.random.default_rng(0)
    x = (rng.random((4, 8, 3)) < 0.5).astype(np.float64)
    labels = np.array([0, 1, 1, 0])
    target = (rng.random((4, 10, 2)) < 0.3).astype(np.float64)
    out: dict[str, float] = {}
    resets: tuple[ResetMode, ...] = ("subtract", "zero")
    for reset in resets:
        for name in ("ce_max", "ce_last", "ce_mean", "ce_count", "first_spike", "van_rossum"):
            loss = Loss(name, tau=3.0) if name == "van_rossum" else Loss(name)  # type: ignore[arg-type]
            net = tiny_network(reset=reset, readout_spiking=loss.needs_spiking_readout)
            reg = RateRegularizer(1.0, upper=0.1, lower=0.05) if name == "ce_count" else None
            res = gradient_check(net, x, loss, target if name == "van_rossum" else labels,
                                 regularizer=reg, eps=eps, kernels=kernels)
            key = f"{name}/{reset}" + ("+rate_reg" if reg else "")
            out[key] = res.worst
            if report is not None:
                report(key, res)
    return out
