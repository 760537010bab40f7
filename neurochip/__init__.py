"""neurochip: compile spiking neural networks for a Loihi-style chip, and emulate that chip.

Public API (kept stable for external test suites)::

    hw = neurochip.load_hw("loihi_like")
    net = neurochip.Network(); net.add_input(...); net.add_lif(...); net.connect(...)
    image = neurochip.compile(net, hw)         # or a .nir / .onnx path, or an IR graph
    image.save("m.nchip"); image = neurochip.ChipImage.load("m.nchip")
    result = neurochip.Emulator(image).run({"in": spikes}, steps=T, probes=["hid.v"])
    procs = neurochip.export_lava(image)

Names are resolved lazily so that ``import neurochip`` stays cheap and the packages
``compiler`` and ``emulator`` can import ``neurochip`` submodules without cycles.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neurochip._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "ChipImage": "neurochip.image",
    "Connection": "neurochip.network",
    "Emulator": "emulator.chip",
    "HardwareSpec": "neurochip.hw",
    "Network": "neurochip.network",
    "Population": "neurochip.network",
    "RunResult": "emulator.chip",
    "available_hw": "neurochip.hw",
    "compile": "neurochip.api",
    "export_lava": "neurochip.api",
    "load_hw": "neurochip.hw",
}

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

if TYPE_CHECKING:
    from emulator.chip import Emulator, RunResult
    from neurochip import errors
    from neurochip.api import compile, export_lava
    from neurochip.hw import HardwareSpec, available_hw, load_hw
    from neurochip.image import ChipImage
    from neurochip.network import Connection, Network, Population


_getattr, __dir__ = lazy_exports("neurochip", _EXPORTS, globals())


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("neurochip.errors")
    return _getattr(name)
