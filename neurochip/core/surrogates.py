"""Surrogate derivatives of the spike (Neftci, Mostafa & Zenke 2019, Fig. 3): one table.

The trainer's backward pass (:mod:`compiler.training.surrogates`) and the on-chip learning
rules (a lookup table of the surrogate, filled by the learning engine) use the same three
shapes under the same names. Each is a bump of the distance to threshold ``x`` that peaks
at 1 for ``x = 0``; the steepness ``k`` sets its width only:

=================  ============================  =================================
name               derivative                    used by
=================  ============================  =================================
``fast_sigmoid``   ``1 / (1 + k|x|)^2``          SuperSpike (Zenke & Ganguli 2018)
``piecewise``      ``max(0, 1 - k|x|)``          Bellec 2018, Esser 2016, Bohte 2011
``exponential``    ``exp(-k|x|)``                SLAYER (Shrestha & Orchard 2018)
=================  ============================  =================================

Normalisation: ``x`` is the distance to threshold in units of the threshold,
``x = (U - theta) / theta``. The trainer's layers have ``theta = 1`` in the float model
(the default the compiler maps to the chip's threshold register), so there ``x = U - theta``;
on the chip, where ``theta = vth << vth_shift``, ``x = (v - theta) / theta`` is the same
number for the same neuron state.

``piecewise_linear`` is accepted as another spelling of ``piecewise`` (older learning
records use it); :func:`surrogate_name` turns either into the one name.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neurochip.core.errors import ConfigError

__all__ = ["SURROGATE_ALIASES", "SURROGATE_NAMES", "surrogate_derivative", "surrogate_name"]

F64 = NDArray[np.float64]

#: The surrogate shapes, in the order of their numeric codes in compiled kernels.
SURROGATE_NAMES: tuple[str, ...] = ("fast_sigmoid", "piecewise", "exponential")
#: Other spellings accepted on input, and the name each stands for.
SURROGATE_ALIASES: dict[str, str] = {"piecewise_linear": "piecewise"}


def surrogate_name(name: object, *, where: str = "surrogate") -> str:
    """The one name of a surrogate shape (aliases resolved); a typed error if unknown."""
    if isinstance(name, str):
        resolved = SURROGATE_ALIASES.get(name, name)
        if resolved in SURROGATE_NAMES:
            return resolved
    raise ConfigError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATE_NAMES)}",
                      where=where, field="name", value=name)


def surrogate_derivative(name: str, steepness: float, x: ArrayLike) -> F64:
    """The surrogate derivative, in [0, 1], at distance to threshold ``x`` (see above)."""
    kind = surrogate_name(name)
    kx = steepness * np.abs(np.asarray(x, np.float64))
    if kind == "fast_sigmoid":
        return np.asarray(1.0 / (1.0 + kx) ** 2)
    if kind == "piecewise":
        return np.asarray(np.maximum(0.0, 1.0 - kx))
    return np.asarray(np.exp(-kx))
