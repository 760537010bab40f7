"""Adam (Kingma & Ba 2015) over a dict of numpy parameters, updated in place.

Per parameter ``w`` with gradient ``g`` at step ``t``::

    m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
    w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

Deterministic: no randomness, the same gradients give the same weights.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np
from numpy.typing import NDArray

from neurochip.core.errors import ConfigError

__all__ = ["Adam"]

F64 = NDArray[np.float64]


class Adam:
    """Adam with bias correction; ``lr`` may be changed between steps (schedules)."""

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, clip: float | None = None) -> None:
        b1, b2 = betas
        if not lr > 0 or not 0 <= b1 < 1 or not 0 <= b2 < 1 or not eps > 0:
            raise ConfigError(f"need lr > 0, 0 <= betas < 1, eps > 0; got lr={lr}, "
                              f"betas={betas}, eps={eps}", where="Adam", field="lr")
        if clip is not None and not clip > 0:
            raise ConfigError(f"must be positive, got {clip}", where="Adam", field="clip")
        self.lr = float(lr)
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.clip = clip
        self.t = 0
        self.m: dict[str, F64] = {}
        self.v: dict[str, F64] = {}

    def step(self, params: MutableMapping[str, F64], grads: Mapping[str, F64]) -> None:
        """One update of every parameter that has a gradient (element-wise clip first)."""
        self.t += 1
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        for key, g in grads.items():
            if key not in params:
                raise ConfigError(f"gradient for unknown parameter {key!r}", where="Adam",
                                  field=key)
            w = params[key]
            if g.shape != w.shape:
                raise ConfigError(f"gradient shape {g.shape} differs from the parameter's "
                                  f"{w.shape}", where="Adam", field=key)
            if self.clip is not None:
                g = np.clip(g, -self.clip, self.clip)
            m = self.m.setdefault(key, np.zeros_like(w))
            v = self.v.setdefault(key, np.zeros_like(w))
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            w -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
