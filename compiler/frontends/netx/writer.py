"""Write netx ``.net`` files the way slayer exports them (h5py only).

Each layer is a dict of the group's fields in the file's own conventions: ``type``
("input", "dense", "dense_rec", "conv", "pool", "flatten", ...), ``shape`` stored as
(C, H, W) or (N,), arrays (``weight`` (out, in[, kH, kW]), ``bias``, ``delay``, ...), scalars
(``stride``, ``groups``, ...), and ``neuron``: a dict with ``type`` ("LOIHI", "CUBA", ...)
and its fields (``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_netx"]


def _put(g: Any, key: str, value: Any) -> None:
    if key == "type":
        g.create_dataset("type", (1,), "S10", [str(value).encode("ascii")])
    else:
        g.create_dataset(key, data=np.asarray(value))


def write_netx(path: str | Path, layers: Sequence[Mapping[str, Any]],
               simulation: Mapping[str, float] | None = None) -> Path:
    """Write ``layers`` (in order: ``layer/0``, ``layer/1``, ...) to a netx file."""
    import h5py

    p = Path(path)
    with h5py.File(p, "w") as f:
        root = f.create_group("layer")
        for i, layer in enumerate(layers):
            g = root.create_group(str(i))
            for key, value in layer.items():
                if key == "neuron":
                    ng = g.create_group("neuron")
                    for nk, nv in value.items():
                        if nk == "type":
                            ng.create_dataset("type", data=str(nv).encode("ascii"))
                        else:
                            ng.create_dataset(nk, data=np.asarray(nv))
                else:
                    _put(g, key, value)
        sim = f.create_group("simulation")
        for k, v in (simulation or {"Ts": 1, "tSample": 1}).items():
            sim.create_dataset(k, data=v)
    return p
