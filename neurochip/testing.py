"""Helpers for testing a toolchain or a board: random register-level networks and inputs.

These are used by our own test suite and are meant for hardware-in-the-loop tests too:
``random_network`` draws a network that exercises every register and synapse feature the
chip has (several layers, recurrence, self connections, sparse storage, delays, biases,
weight exponents, all sign modes, reset modes, readouts).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from neurochip.core import fixedpoint as fx
from neurochip.core.hw import HardwareSpec, load_hw
from neurochip.core.network import Network

__all__ = ["assert_same_results", "random_inputs", "random_network", "random_weights"]


def random_weights(rng: np.random.Generator, shape: tuple[int, int], sign_mode: str,
                   num_weight_bits: int = 8, density: float = 1.0, scale: float = 1.0
                   ) -> NDArray[np.int64]:
    """Weights the chip keeps unchanged, in the given sign mode (0 where no synapse)."""
    lo, hi = fx.weight_range(sign_mode)
    w = rng.integers(int(lo * scale), int(hi * scale) + 1, size=shape)
    w = fx.effective_weights(w, sign_mode, num_weight_bits)
    if density < 1.0:
        w = np.where(rng.random(shape) < density, w, 0)
    return w.astype(np.int64)


def random_network(seed: int, hw: HardwareSpec | str = "loihi_like", *, layers: int = 3,
                   max_size: int = 24, n_inputs: int = 12, max_delay: int = 4,
                   recurrent: bool = True, allow_subtract: bool = True,
                   allow_readout: bool = True) -> Network:
    """A random multi-layer network using every feature of the core (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    spec = load_hw(hw)
    net = Network(spec, name=f"random{seed}")
    net.add_input("in", n_inputs)
    prev = ["in"]
    sizes = {"in": n_inputs}
    for li in range(layers):
        n = int(rng.integers(1, max_size + 1))
        readout = allow_readout and li == layers - 1 and rng.random() < 0.5
        name = f"l{li}"
        net.add_lif(
            name, n,
            du=int(rng.choice([-1, 0, int(rng.integers(0, 4096)), 4095])),
            dv=int(rng.choice([0, int(rng.integers(0, 4097)), 4096])),
            vth=int(rng.integers(0, 2000)),
            bias_mant=rng.integers(-300, 301, n) * (rng.random() < 0.5),
            bias_exp=rng.integers(0, 8, n),
            reset="subtract" if (allow_subtract and rng.random() < 0.4) else "zero",
            spiking=not readout,
        )
        sizes[name] = n
        sources = [prev[-1]] + ([p for p in prev[:-1] if rng.random() < 0.3])
        if recurrent and rng.random() < 0.5:
            sources.append(name)
        for src in sources:
            mode = str(rng.choice(list(fx.SIGN_MODES)))
            nwb = int(rng.choice([8, 8, 6, 4]))
            shape = (n, sizes[src])
            density = float(rng.choice([1.0, 0.5, 0.15]))
            w = random_weights(rng, shape, mode, nwb, density, scale=float(rng.uniform(0.2, 1.0)))
            storage: Literal["dense", "sparse"] = (
                "sparse" if density < 1.0 and rng.random() < 0.7 else "dense")
            wm: NDArray[np.int64] | sp.csr_matrix = w
            nnz = w.size
            if storage == "sparse":
                sparse_w = sp.csr_matrix(w)
                wm, nnz = sparse_w, int(sparse_w.nnz)
            if rng.random() < 0.4:
                delay: int | NDArray[np.int64] = rng.integers(0, max_delay + 1, size=nnz)
            else:
                delay = int(rng.integers(0, max_delay + 1))
            net.connect(src, name, wm, weight_exp=int(rng.integers(-3, 3)), delay=delay,
                        storage=storage, sign_mode=mode, num_weight_bits=nwb)
        prev.append(name)
    return net


def random_inputs(seed: int, steps: int, n: int, rate: float = 0.2, batch: int | None = None
                  ) -> NDArray[np.bool_]:
    rng = np.random.default_rng(seed)
    shape = (steps, n) if batch is None else (batch, steps, n)
    return rng.random(shape) < rate


def assert_same_results(a: Any, b: Any) -> None:
    """Two runs (RunResult) agree exactly: spikes, probes, counters, cycles, latency, energy.

    What a hardware-in-the-loop test asserts between a board and the emulator (energy is
    compared to 1e-6 pJ: it is a float sum).
    """
    assert a.spikes.keys() == b.spikes.keys(), (sorted(a.spikes), sorted(b.spikes))
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=f"spikes {k}")
    for k in a.probes:
        np.testing.assert_array_equal(a.probes[k], b.probes[k], err_msg=f"probe {k}")
    for k in a.counters:
        np.testing.assert_array_equal(a.counters[k], b.counters[k], err_msg=f"counter {k}")
    np.testing.assert_array_equal(a.cycles, b.cycles)
    np.testing.assert_array_equal(a.latency_cycles, b.latency_cycles)
    np.testing.assert_allclose(a.energy, b.energy, rtol=0, atol=1e-6)
