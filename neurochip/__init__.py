"""neurochip: compile spiking neural networks for a Loihi-style chip, and emulate that chip.

Public API (kept stable for external test suites)::

    hw = neurochip.load_hw("loihi_like")
    net = neurochip.Network(); net.add_input(...); net.add_lif(...); net.connect(...)
    image = neurochip.compile(net, hw)         # or a .nir / .onnx path, or an IR graph
    image.save("m.nchip"); image = neurochip.ChipImage.load("m.nchip")
    result = neurochip.Emulator(image).run({"in": spikes}, steps=T, probes=["hid.v"])
    procs = neurochip.export_lava(image)
"""

from emulator.chip import Emulator, RunResult
from neurochip import errors
from neurochip.api import compile, export_lava
from neurochip.hw import HardwareSpec, available_hw, load_hw
from neurochip.image import ChipImage
from neurochip.network import Connection, Network, Population

__version__ = "0.1.0"

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
