"""Field checks shared by the IR's nodes, synapses and graph, and :class:`IRError`.

Every check raises :class:`IRError` naming the node and the field (never an ``assert``);
arrays kept by a node are frozen copies.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neurochip.core.errors import ConfigError

__all__ = ["Decay", "IRError", "ResetMode", "Shape", "as_decay", "as_shape", "frozen_array",
           "ir_error", "per_neuron"]

Shape = tuple[int, ...]
ResetMode = Literal["zero", "subtract"]
#: a retention factor: one per population (a float) or one per neuron (a frozen (n,) array)
Decay = float | NDArray[np.float64]


class IRError(ConfigError):
    """An IR node, projection or graph is malformed; names the node and field."""


def ir_error(where: str, fld: str | None, msg: str, **kw: Any) -> IRError:
    return IRError(msg, where=where, field=fld, **kw)


def frozen_array(x: ArrayLike, dtype: Any) -> NDArray[Any]:
    a = np.array(x, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


def as_shape(value: Any, where: str, fld: str = "shape") -> Shape:
    try:
        shp = tuple(int(s) for s in np.atleast_1d(np.asarray(value)).tolist())
    except (TypeError, ValueError):
        raise ir_error(where, fld, f"must be a tuple of positive ints, got {value!r}") from None
    if not shp or any(s <= 0 for s in shp):
        raise ir_error(where, fld, f"must be a non-empty tuple of positive ints, got {value!r}")
    return shp


def per_neuron(value: ArrayLike, n: int, where: str, fld: str) -> NDArray[np.float64]:
    a = np.asarray(value, dtype=np.float64)
    if a.size == 1:
        a = np.full(n, float(a.reshape(-1)[0]))
    a = a.reshape(-1) if a.size == n else a
    if a.shape != (n,):
        raise ir_error(where, fld, f"must be a scalar or hold {n} values (one per neuron), got "
                       f"shape {np.asarray(value).shape}")
    if not np.all(np.isfinite(a)):
        raise ir_error(where, fld, "must be finite")
    return frozen_array(a, np.float64)


def as_decay(value: Any, n: int, where: str, fld: str) -> Decay:
    """A retention factor in [0, 1]: a float when every neuron has the same one, else a
    frozen (n,) array (the chip has per-neuron decay registers for such populations)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ir_error(where, fld, f"must be a number in [0, 1], got {value!r}") from None
    if a.size != 1 and a.size != n:
        raise ir_error(where, fld, f"must be a scalar or hold {n} values (one per neuron), "
                       f"got shape {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(a >= 0.0) and np.all(a <= 1.0)):
        raise ir_error(where, fld, f"must be a number in [0, 1], got {value!r}")
    a = a.reshape(-1)
    if a.size == 1 or bool(np.all(a == a[0])):
        return float(a[0])
    return frozen_array(a, np.float64)
