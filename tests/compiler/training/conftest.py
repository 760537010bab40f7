"""Fixtures of the training tests: small networks and the digits data, built once."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.training.data import SpikeData, encode
from compiler.training.model import LayerSpec, SpikingNet
from neurochip.tasks.digits import digits_split


@pytest.fixture(scope="session")
def digits10() -> tuple[SpikeData, SpikeData]:
    """The fixed digits split, regular rate code, 10 steps (short, for fast tests)."""
    Xtr, Xte, ytr, yte = digits_split()
    return SpikeData(encode(Xtr, "regular", 10), ytr), SpikeData(encode(Xte, "regular", 10), yte)


def small_net(reset: str = "subtract", *, recurrent: bool = True, bias: bool = True,
              readout_spiking: bool = False, n_in: int = 12, hidden: int = 20, seed: int = 1,
              beta_out: float = 0.95) -> SpikingNet:
    """A 2-layer net using every feature (recurrence, biases), random non-zero biases."""
    layers = [LayerSpec("hid", hidden, alpha=0.7, beta=0.9, reset=reset, recurrent=recurrent,
                        bias=bias),
              LayerSpec("out", 5, alpha=0.5, beta=beta_out, reset=reset,
                        spiking=readout_spiking, bias=bias)]
    net = SpikingNet.build(n_in, layers, seed=seed, gain=[0.3, 1.0], rec_gain=0.5)
    rng = np.random.default_rng(seed)
    for k in list(net.params):
        if k.endswith(".b"):
            net.params[k] = rng.normal(0.0, 0.05, net.params[k].shape)
    return net


@pytest.fixture
def make_net():
    return small_net
