"""Small, deterministic chip images and inputs for hardware-in-the-loop checks.

Every board must reproduce these bit for bit (they stay within what Lava 0.10 can run,
except :func:`learning_image`, which adds an on-chip learning configuration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from neurochip import ChipImage

__all__ = ["demo_image", "demo_inputs", "learning_image", "probes_of"]

_cache: dict[tuple[str, bool], ChipImage] = {}


def demo_image(hw: str = "loihi_like") -> ChipImage:
    """Three LIF layers (14, 10, 12 neurons): dense and sparse synapses, a recurrent
    connection, per-synapse delays; every layer spikes under :func:`demo_inputs`."""
    key = (hw, False)
    if key not in _cache:
        import neurochip
        from neurochip.testing import random_network

        _cache[key] = neurochip.compile(random_network(2, max_size=16, max_delay=2), hw)
    return _cache[key]


def learning_image(hw: str = "loihi_like") -> ChipImage:
    """:func:`demo_image` with an on-chip learning configuration (seeded)."""
    key = (hw, True)
    if key not in _cache:
        from neurochip.testing_learning import random_learning

        _cache[key] = random_learning(demo_image(hw), 3)
    return _cache[key]


def demo_inputs(steps: int = 30, batch: int | None = None, seed: int = 1,
                rate: float = 0.3) -> NDArray[np.bool_]:
    """Input spikes for :func:`demo_image`'s population ``in``: (T, 12) or (B, T, 12)."""
    rng = np.random.default_rng(seed)
    shape = (steps, 12) if batch is None else (batch, steps, 12)
    return rng.random(shape) < rate


def probes_of(image: ChipImage) -> list[str]:
    """u and v of every LIF population."""
    return [f"{p.name}.{v}" for p in image.lif_populations for v in "uv"]
