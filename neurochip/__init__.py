"""neurochip: compile spiking neural networks for a Loihi-style chip, and emulate that chip.

Public API (kept stable for external test suites)::

    hw = neurochip.load_hw("loihi_like")
    net = neurochip.Network(); net.add_input(...); net.add_lif(...); net.connect(...)
    image = neurochip.compile(net, hw)         # or a .nir / .onnx path, or an IR graph
    image.save("m.nchip"); image = neurochip.ChipImage.load("m.nchip")
    result = neurochip.Emulator(image).run({"in": spikes}, steps=T, probes=["hid.v"])
    procs = neurochip.export_lava(image)

Layers: :mod:`neurochip.core` (the chip as data) at the bottom; ``compiler`` and
``emulator`` are peers on it; this package's other modules (API, CLI, commands, boards,
tasks) are the face on top. ``docs/architecture.md`` draws it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neurochip.api import compile, export_lava
from neurochip.core import errors
from neurochip.core.hw import HardwareSpec, available_hw, load_hw
from neurochip.core.image import ChipImage
from neurochip.core.network import Connection, Network, Population
from neurochip.core.results import RunResult
from neurochip.core.version import __version__

if TYPE_CHECKING:
    from emulator.chip import Emulator

__all__ = [
    "ChipImage",
    "Connection",
    "Emulator",
    "HardwareSpec",
    "Network",
    "Population",
    "RunResult",
    "__version__",
    "available_hw",
    "compile",
    "errors",
    "export_lava",
    "load_hw",
]


def __getattr__(name: str) -> Any:
    # ``emulator`` is a peer package that imports ``neurochip.core``, which runs this file
    # first; binding its class here would import it half-initialised when ``emulator`` is
    # imported before ``neurochip``. So the one name from a peer is bound on first use.
    if name == "Emulator":
        from emulator.chip import Emulator

        globals()["Emulator"] = Emulator
        return Emulator
    raise AttributeError(f"module 'neurochip' has no attribute {name!r}")
