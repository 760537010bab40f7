"""Lava's processes for an image's populations and connections, and our ChipLIF process
and its fixed-point model (created on first use, so importing this does not import
Lava).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from compiler.lava.checks import lava_weight_bits
from compiler.lava.compat import import_lava
from neurochip.core import fixedpoint as fx
from neurochip.core.image import ChipImage, PopulationInfo

__all__ = ["components", "lava_classes", "neuron_process", "synapse_process"]


@functools.cache
def lava_classes() -> SimpleNamespace:
    """Lava's processes, run config and our ChipLIF process and model, imported once."""
    import_lava()
    from lava.magma.core.decorator import implements, requires, tag
    from lava.magma.core.model.py.ports import PyOutPort
    from lava.magma.core.model.py.type import LavaPyType
    from lava.magma.core.resources import CPU
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.models import AbstractPyLifModelFixed
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode

    class ChipLIF(LIF):  # type: ignore[misc, valid-type]
        """Lava's LIF process with our core's two extra modes.

        ``reset``: "zero" (v <- 0 on a spike, as Lava's LIF) or "subtract"
        (v <- v - vth * 2**6). ``spiking=False`` makes a non-spiking readout whose
        threshold is never tested (it integrates like any LIF and never fires).
        Both are process parameters; u, v, du, dv, vth and the bias are Lava's own Vars.
        """

        def __init__(self, *, shape: tuple[int, ...], du: int, dv: int, vth: int,
                     bias_mant: NDArray[np.int64], bias_exp: NDArray[np.int64],
                     reset: str, spiking: bool, name: str | None = None) -> None:
            super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant,
                             bias_exp=bias_exp, name=name, reset=reset, spiking=spiking)

    @implements(proc=ChipLIF, protocol=LoihiProtocol)
    @requires(CPU)
    @tag("fixed_pt")
    class PyChipLifModelFixed(AbstractPyLifModelFixed):  # type: ignore[misc, valid-type]
        """Fixed-point model of :class:`ChipLIF`, bit-exact with our core.

        The sub-threshold update (current decay with the hidden +1 offset, 24-bit single
        wrap of u, saturation of v, bias) is Lava's own ``AbstractPyLifModelFixed``; only
        the threshold test and the reset differ from ``PyLifModelBitAcc``.
        """

        s_out: Any = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: Any = LavaPyType(int, np.int32, precision=17)

        def __init__(self, proc_params: Any) -> None:
            super().__init__(proc_params)
            self.subtract = proc_params["reset"] == "subtract"
            self.spiking = bool(proc_params["spiking"])
            self.effective_vth = 0

        def scale_threshold(self) -> None:
            # The 17-bit threshold mantissa is MSB-aligned with the 24-bit voltage
            # register, as the synaptic input is with the current: << vth_shift (6).
            self.effective_vth = np.left_shift(self.vth, self.vth_shift)
            self.isthrscaled = True

        def spiking_activation(self) -> NDArray[np.bool_]:
            if not self.spiking:
                # A readout's comparator is disabled: it only integrates.
                return np.zeros(self.v.shape, dtype=bool)
            return self.v > self.effective_vth  # strict, as the stock LIF

        def reset_voltage(self, spike_vector: NDArray[np.bool_]) -> None:
            if self.subtract:
                # Only where v > theta >= 0, so v - theta stays inside the saturated
                # 24-bit range: no further wrap or clip is needed.
                self.v[spike_vector] -= self.effective_vth
            else:
                self.v[spike_vector] = 0

    sign_modes = {fx.SIGN_MIXED: SignMode.MIXED, fx.SIGN_EXCITATORY: SignMode.EXCITATORY,
                  fx.SIGN_INHIBITORY: SignMode.INHIBITORY}
    return SimpleNamespace(
        LIF=LIF, ChipLIF=ChipLIF, ChipLifModel=PyChipLifModelFixed, Dense=Dense,
        DelayDense=DelayDense, Sparse=Sparse, DelaySparse=DelaySparse, RingBuffer=RingBuffer,
        Monitor=Monitor, Loihi2SimCfg=Loihi2SimCfg, RunSteps=RunSteps, SignMode=sign_modes,
    )


def neuron_process(L: SimpleNamespace, image: ChipImage, p: PopulationInfo) -> Any:
    bm = image.arrays["neurons/bias_mant"][p.offset: p.offset + p.size].astype(np.int64)
    be = image.arrays["neurons/bias_exp"][p.offset: p.offset + p.size].astype(np.int64)
    regs = {"shape": (p.size,), "du": int(p.du), "dv": int(p.dv), "vth": int(p.vth),
            "bias_mant": bm, "bias_exp": be, "name": p.name}
    if p.spiking and p.reset == "zero":
        return L.LIF(**regs)  # Lava's own model: the cross-check tests Lava itself
    return L.ChipLIF(reset=p.reset, spiking=bool(p.spiking), **regs)


def synapse_process(L: SimpleNamespace, image: ChipImage, ci: int) -> Any:
    c = image.connections[ci]
    params = {
        "weight_exp": int(c.weight_exp),
        "num_weight_bits": lava_weight_bits(c, image.hw.formats.weight_bits),
        "sign_mode": L.SignMode[c.sign_mode],
        "name": c.name,
    }
    delayed = c.has_delays or c.delay != 0
    if c.storage == "dense":
        W = image.weights(c.name)
        if not delayed:
            return L.Dense(weights=W, **params)
        return L.DelayDense(weights=W, delays=image.delays(c.name), **params)
    Ws = image.weights_sparse(c.name)
    if not delayed:
        return L.Sparse(weights=Ws, **params)
    pre_idx, post_idx = image.synapse_coords(ci)
    d = (image.arrays[f"conn/{ci}/delay"].astype(np.int64) if c.has_delays
         else np.full(pre_idx.size, c.delay, np.int64))
    # Same structure as the weights; Lava reads a stored 0 (or no entry) as delay 0.
    Ds = sp.csr_matrix((d, (post_idx, pre_idx)), shape=(c.n_post, c.n_pre))
    return L.DelaySparse(weights=Ws, delays=Ds, **params)


def components(image: ChipImage) -> list[list[str]]:
    """Populations grouped into the parts that connections join (order of the image)."""
    parent = {p.name: p.name for p in image.populations}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in image.connections:
        parent[root(c.pre)] = root(c.post)
    groups: dict[str, list[str]] = {}
    for p in image.populations:
        groups.setdefault(root(p.name), []).append(p.name)
    return list(groups.values())
