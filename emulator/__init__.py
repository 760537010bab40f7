"""The chip emulator: a pure-Python reference model, Numba kernels that equal it bit for bit,
multi-core stepping with routing, and cycle/latency/energy accounting."""

from emulator.chip import Emulator, RunResult

__all__ = ["Emulator", "RunResult"]
