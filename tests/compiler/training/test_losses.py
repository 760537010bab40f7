from __future__ import annotations

import numpy as np
import pytest

from compiler.training.bptt import LayerTrace, Trace
from compiler.training.losses import Loss, RateRegularizer, decode, first_spike_times
from compiler.training.model import LayerSpec, SpikingNet
from neurochip.core.errors import ConfigError


def _net(spiking: bool, n_out: int = 3) -> SpikingNet:
    return SpikingNet(2, (LayerSpec("hid", 2), LayerSpec("out", n_out, spiking=spiking)),
                      {"hid.W": np.zeros((2, 2)), "out.W": np.zeros((n_out, 2))})


def _trace(P: np.ndarray | None = None, S: np.ndarray | None = None) -> Trace:
    ref = P if P is not None else S
    assert ref is not None
    z = np.zeros_like(ref)
    shape = (*ref.shape[:2], 2)
    hid = LayerTrace(np.zeros(shape), np.zeros(shape), np.zeros(shape))
    return Trace(np.zeros(shape),
                 [hid, LayerTrace(z, P if P is not None else z, S if S is not None else z)])


def _ce(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-lp[np.arange(len(labels)), labels].mean())


def test_voltage_cross_entropies() -> None:
    rng = np.random.default_rng(0)
    P = rng.normal(size=(6, 4, 3))  # (T, B, n)
    y = np.array([0, 2, 1, 1])
    net = _net(False)
    for name, logits in (("ce_max", P.max(0)), ("ce_last", P[-1]), ("ce_mean", P.mean(0))):
        v = Loss(name)(_trace(P=P), y, net)
        assert v.value == pytest.approx(_ce(logits, y))
        assert set(v.dP) == {"out"} and not v.dS
        np.testing.assert_array_equal(np.argmax(Loss(name).logits(_trace(P=P)), 1),
                                      np.argmax(logits, 1))
    g = Loss("ce_max")(_trace(P=P), y, net).dP["out"]
    assert np.count_nonzero(g.any(axis=0) == 0) == 0  # one time step per (sample, neuron)
    assert np.all((g != 0).sum(axis=0) == 1)


def test_spike_count_cross_entropy() -> None:
    S = np.zeros((5, 2, 3))
    S[:, 0, 1] = 1  # sample 0: neuron 1 spikes 5 times
    S[:2, 1, 2] = 1
    v = Loss("ce_count", count_scale=0.5)(_trace(S=S), np.array([1, 2]), _net(True))
    assert v.value == pytest.approx(_ce(0.5 * S.sum(0), np.array([1, 2])))
    assert v.dS["out"].shape == S.shape


def test_first_spike_times() -> None:
    S = np.zeros((6, 1, 3))
    S[2, 0, 0] = 1
    S[4, 0, 0] = 1
    S[1, 0, 1] = 1
    t, dt = first_spike_times(S)
    np.testing.assert_array_equal(t[0], [2, 1, 6])  # silent: T
    # moving a spike earlier (before the first) lowers t_first by the gap
    assert dt[0, 0, 0] == pytest.approx(0 - 2)
    assert dt[3, 0, 0] == 0.0  # after the first spike: no effect
    assert dt[5, 0, 2] == pytest.approx(5 - 6)
    v = Loss("first_spike", tau=1.0)(_trace(S=S), np.array([1]), _net(True))
    assert v.value == pytest.approx(_ce(-t, np.array([1])))


def test_decode_and_ties() -> None:
    loss = Loss("first_spike")
    spikes = np.zeros((3, 5, 2), bool)  # (B, T, n)
    spikes[0, 1, 0] = True
    spikes[1, 3, 1] = True
    spikes[2, 2, :] = True  # both first at step 2: a tie
    np.testing.assert_array_equal(decode(loss, None, spikes), [0, 1, -1])
    v = np.array([[[0, 5], [7, 1]]])  # one sample, chip integers
    np.testing.assert_array_equal(decode(Loss("ce_max"), v, None), [0])
    np.testing.assert_array_equal(decode(Loss("ce_last"), v, None), [0])
    with pytest.raises(ConfigError, match="spikes"):
        decode(loss, v, None)


def test_van_rossum() -> None:
    loss = Loss("van_rossum", tau=4.0)
    net = _net(True, 1)
    S = np.zeros((10, 1, 1))
    S[3] = 1
    same = loss(_trace(S=S), np.swapaxes(S, 0, 1), net)
    assert same.value == 0.0
    a = np.exp(-1 / 4)
    v = loss(_trace(S=S), np.zeros((1, 10, 1)), net)
    assert v.value == pytest.approx(0.5 * sum(a ** (2 * k) for k in range(7)))
    assert loss.van_rossum_distance(np.swapaxes(S, 0, 1), np.zeros((1, 8, 1))) == \
        pytest.approx(v.value)
    two = Loss("van_rossum", tau=4.0, kernel_order=2)(_trace(S=S), np.zeros((1, 10, 1)), net)
    assert two.value > v.value
    with pytest.raises(ConfigError, match="target spikes"):
        loss(_trace(S=S), np.zeros((1, 12, 1)), net)


def test_rate_regularizer() -> None:
    net = _net(True)
    S = np.zeros((10, 2, 3))
    S[:, :, 0] = 1  # rate 1
    S[:2, :, 1] = 1  # rate 0.2
    tr = _trace(S=S)
    tr.layers[0].S[:] = 0.0
    reg = RateRegularizer(2.0, upper=0.5, lower=0.1, layers=("out",))
    v = reg(tr, net)
    # neuron 0 above (1 - 0.5)^2, neuron 2 below (0.1)^2, over B * n = 6 entries
    assert v.value == pytest.approx(2.0 * 2 * (0.25 + 0.01) / 6)
    g = v.dS["out"]
    assert np.all(g[:, :, 0] > 0) and np.all(g[:, :, 1] == 0) and np.all(g[:, :, 2] < 0)
    assert RateRegularizer(1.0, upper=1.0)(tr, net).value == 0.0
    with pytest.raises(ConfigError, match="no spiking layer"):
        RateRegularizer(layers=("nope",))(tr, net)
    with pytest.raises(ConfigError):
        RateRegularizer(strength=-1.0)


def test_loss_errors() -> None:
    with pytest.raises(ConfigError, match="unknown loss"):
        Loss("mse")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Loss("first_spike", tau=0.0)
    with pytest.raises(ConfigError):
        Loss("van_rossum", kernel_order=3)
    P = np.zeros((4, 2, 3))
    with pytest.raises(ConfigError, match="labels"):
        Loss("ce_max")(_trace(P=P), np.array([0, 3]), _net(False))
    with pytest.raises(ConfigError, match="spiking readout"):
        Loss("ce_count").check(_net(False))
    with pytest.raises(ConfigError, match="non-spiking"):
        Loss("ce_max").check(_net(True))
