from __future__ import annotations

import numpy as np
import pytest

from compiler.training.bptt import backward, forward, time_major
from compiler.training.gradcheck import check_all_losses, gradient_check, tiny_network
from compiler.training.kernels import KernelSpike, lif_backward, lif_forward
from compiler.training.losses import Loss
from compiler.training.model import LayerSpec, SpikingNet
from compiler.training.surrogates import SmoothStep, Surrogate
from neurochip.core.errors import ConfigError


@pytest.mark.parametrize("kernels", [True, False])
def test_bptt_equals_finite_differences(kernels: bool) -> None:
    """Every loss, both resets, recurrence and biases: relative error below 1e-6."""
    errors = check_all_losses(kernels=kernels)
    assert len(errors) == 12
    assert max(errors.values()) < 1e-6, errors


def test_detached_reset_is_not_the_exact_gradient() -> None:
    """The default drops the reset path: on the smooth network it differs from FD."""
    net = tiny_network(readout_spiking=True)
    rng = np.random.default_rng(0)
    x = (rng.random((4, 8, 3)) < 0.5).astype(float)
    y = np.array([0, 1, 1, 0])
    fn = SmoothStep(4.0)
    loss = Loss("ce_count")
    xt = time_major(x, 3, net.steps(8))
    tr = forward(net, xt, fn)
    v = loss(tr, y, net)
    exact = backward(net, tr, fn, dS=v.dS, detach_reset=False)
    approx = backward(net, tr, fn, dS=v.dS, detach_reset=True)
    assert not np.allclose(exact["hid.W"], approx["hid.W"])
    assert gradient_check(net, x, loss, y).worst < 1e-6


def test_forward_runs_the_chip_order() -> None:
    """One input spike at step 0: current at step 1 (one step of latency per projection),
    the membrane uses the new current, readout one step later again."""
    layers = [LayerSpec("hid", 1, alpha=0.5, beta=0.75, threshold=1.0, reset="subtract"),
              LayerSpec("out", 1, alpha=0.0, beta=1.0 - 1 / 4096, spiking=False)]
    net = SpikingNet(1, tuple(layers), {"hid.W": np.array([[1.5]]), "out.W": np.array([[2.0]])})
    x = np.zeros((1, 4, 1))
    x[0, 0, 0] = 1
    tr = forward(net, time_major(x, 1, net.steps(4)), Surrogate())
    h, o = tr.layers
    np.testing.assert_allclose(h.I[:, 0, 0], [0, 1.5, 0.75, 0.375, 0.1875, 0.09375])
    # P[1] = 1.5 > 1: spike, subtract 1 -> U = 0.5; P[2] = 0.75*0.5 + 0.75 = 1.125: spike
    np.testing.assert_allclose(h.P[:3, 0, 0], [0, 1.5, 1.125])
    np.testing.assert_array_equal(h.S[:, 0, 0], [0, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(o.I[:, 0, 0], [0, 0, 2, 2, 0, 0])
    assert o.S.sum() == 0  # readouts never spike


def test_zero_reset() -> None:
    net = SpikingNet(1, (LayerSpec("hid", 1, alpha=0.0, beta=0.5, reset="zero"),),
                     {"hid.W": np.array([[1.5]])})
    x = np.ones((1, 3, 1))
    tr = forward(net, time_major(x, 1, net.steps(3)), Surrogate())
    # step 1: P = 1.5 -> spike, U = 0; step 2: P = 0 + 1.5 -> spike again
    np.testing.assert_allclose(tr.out.P[:, 0, 0], [0, 1.5, 1.5, 1.5])
    np.testing.assert_array_equal(tr.out.S[:, 0, 0], [0, 1, 1, 1])


@pytest.mark.parametrize("fn", [Surrogate("fast_sigmoid", 5), Surrogate("piecewise", 2),
                                Surrogate("exponential", 3), SmoothStep(3)], ids=str)
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_kernels_equal_numpy_loops(fn, reset: str, make_net) -> None:
    net = make_net(reset, readout_spiking=True)
    rng = np.random.default_rng(3)
    x = time_major((rng.random((5, 20, 12)) < 0.3).astype(float), 12, 22)
    a = forward(net, x, fn, kernels=True)
    b = forward(net, x, fn, kernels=False)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_allclose(la.P, lb.P, rtol=0, atol=1e-12)
        np.testing.assert_allclose(la.S, lb.S, rtol=0, atol=1e-12)
    assert a.layers[0].S.sum() > 0
    v = Loss("ce_count")(a, np.array([0, 1, 2, 3, 4]), net)
    for detach in (True, False):
        ga = backward(net, a, fn, dS=v.dS, detach_reset=detach, kernels=True)
        gb = backward(net, a, fn, dS=v.dS, detach_reset=detach, kernels=False)
        for k in ga:
            np.testing.assert_allclose(ga[k], gb[k], rtol=1e-10, atol=1e-14)


def test_kernel_wrappers_validate() -> None:
    ks = KernelSpike(0, 0, 10.0)
    with pytest.raises(ConfigError, match="drive"):
        lif_forward(np.zeros((3, 4)), None, None, alpha=0.5, beta=0.5, theta=1.0, spiking=True,
                    subtract=True, spike=ks)
    with pytest.raises(ConfigError) as e:
        lif_forward(np.zeros((3, 2, 4)), np.zeros((3, 3)), None, alpha=0.5, beta=0.5,
                    theta=1.0, spiking=True, subtract=True, spike=ks)
    assert e.value.field == "V"
    with pytest.raises(ConfigError) as e:
        lif_backward(np.zeros((3, 2, 4)), np.zeros((3, 2, 4), np.float32), None, None, None,
                     alpha=0.5, beta=0.5, theta=1.0, spiking=True, subtract=True,
                     detach_reset=True, spike=ks)
    assert e.value.field == "S"


def test_forward_and_backward_errors(make_net) -> None:
    net = make_net()
    with pytest.raises(ConfigError, match="time-major"):
        forward(net, np.zeros((5, 2, 3)), Surrogate())
    with pytest.raises(ConfigError, match=r"\(B, T, 12\)"):
        time_major(np.zeros((2, 5, 3)), 12)
    with pytest.raises(ConfigError, match="cannot run"):
        time_major(np.zeros((2, 5, 12)), 12, 3)
    tr = forward(net, time_major(np.zeros((2, 5, 12)), 12, 7), Surrogate())
    with pytest.raises(ConfigError, match="unknown layers"):
        backward(net, tr, Surrogate(), dS={"nope": tr.out.S})
    with pytest.raises(ConfigError, match="non-spiking readout"):
        backward(net, tr, Surrogate(), dS={"out": tr.out.S})
