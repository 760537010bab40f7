"""The chip's arithmetic, against values measured on Lava 0.10 (reference/lava-semantics.md).

Every case runs on both backends (Numba kernels and the pure-Python reference model).
"""

import numpy as np
import pytest

import neurochip

BACKENDS = ["numba", "reference"]


def one_to_one(w, du, dv, vth, n_in=1, **kw):
    net = neurochip.Network()
    net.add_input("in", n_in)
    w = np.atleast_2d(np.asarray(w))
    net.add_lif("o", w.shape[0], du=du, dv=dv, vth=vth, **{k: v for k, v in kw.items()
                                                           if k in ("bias_mant", "bias_exp",
                                                                    "reset", "spiking")})
    net.connect("in", "o", w, weight_exp=kw.get("weight_exp", 0), delay=kw.get("delay", 0))
    return neurochip.compile(net, "loihi_like")


def run(img, x, backend, steps=None):
    return neurochip.Emulator(img, backend=backend).run({"in": x}, steps=steps,
                                                        probes=["o.u", "o.v"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_step_latency_and_hidden_current_decay_offset(backend) -> None:
    # Lava: spike sent at step 2 -> u = 640 at step 3, then 639, 638 (du = 0 still decays).
    img = one_to_one([[10]], du=0, dv=0, vth=100)
    x = np.zeros((6, 1), bool)
    x[1] = True
    r = run(img, x, backend)
    assert r.probes["o.u"][:, 0].tolist() == [0, 0, 640, 639, 638, 637]
    assert r.probes["o.v"][:, 0].tolist() == [0, 0, 640, 1279, 1917, 2554]
    assert not r.spikes["o"].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_fires_on_arrival_step_and_resets(backend) -> None:
    img = one_to_one([[100]], du=4095, dv=2048, vth=50)
    x = np.zeros((5, 1), bool)
    x[1] = True
    r = run(img, x, backend)
    assert r.spikes["o"][:, 0].tolist() == [False, False, True, False, False]
    assert r.probes["o.u"][:, 0].tolist() == [0, 0, 6400, 0, 0]
    assert r.probes["o.v"][:, 0].tolist() == [0, 0, 0, 0, 0]  # probed after the reset


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncation_toward_zero(backend) -> None:
    # -128*3095/4096 = -96.7 -> -96 ; 384*3095/4096 = 290.2 -> 290 (Lava, du = 1000)
    img = one_to_one([[-2], [6]], du=1000, dv=4096, vth=100000)
    x = np.zeros((3, 1), bool)
    x[0] = True
    r = run(img, x, backend)
    assert r.probes["o.u"][1].tolist() == [-128, 384]
    assert r.probes["o.u"][2].tolist() == [-96, 290]


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_exponent_floors_the_sum_and_bias_has_no_x64(backend) -> None:
    # Lava §2.3: weights -8, 6 with weight_exp -1 -> a = -4, 3 -> u = -256, 192;
    # bias 3*2^2 = 12 and -3*2^1 = -6 -> v = 12, -6 then 23 (11 + 12), -11 (-5 - 6).
    img = one_to_one([[-8], [6]], du=0, dv=100, vth=10000, weight_exp=-1,
                     bias_mant=[3, -3], bias_exp=[2, 1])
    x = np.zeros((3, 1), bool)
    r = run(img, x, backend)
    assert r.probes["o.v"][0].tolist() == [12, -6]
    assert r.probes["o.v"][1].tolist() == [23, -11]
    x[0] = True
    r = run(img, x, backend)
    assert r.probes["o.u"][1].tolist() == [-256, 192]


@pytest.mark.parametrize("backend", BACKENDS)
def test_floor_is_per_connection_sum_not_per_synapse(backend) -> None:
    # Two synapses of -2 with weight_exp -2: floor((-2-2)/4) = -1, not 2*floor(-2/4) = -2.
    img = one_to_one([[-2, -2]], n_in=2, du=4095, dv=4096, vth=1000, weight_exp=-2)
    x = np.zeros((2, 2), bool)
    x[0] = True
    assert run(img, x, backend).probes["o.u"][1, 0] == -64
    x[0] = [True, False]
    assert run(img, x, backend).probes["o.u"][1, 0] == -64  # floor(-2/4) = -1


@pytest.mark.parametrize("backend", BACKENDS)
def test_current_wraps_once_and_voltage_saturates(backend) -> None:
    # 600 inputs of 255 spiking at once: a = 153000, u = 9,792,000 wraps to -6,985,216.
    img = one_to_one(np.full((1, 600), 255), n_in=600, du=0, dv=0, vth=131071)
    x = np.zeros((2, 600), bool)
    x[0] = True
    r = run(img, x, backend)
    assert r.probes["o.u"][1, 0] == 9_792_000 - (1 << 24)
    # 500 inputs: u = 8,160,000; v = u + u saturates at 2^23 - 1 > threshold: spike + reset
    img = one_to_one(np.full((1, 500), 255), n_in=500, du=0, dv=0, vth=131071)
    x = np.zeros((3, 500), bool)
    x[0] = True
    r = run(img, x, backend)
    assert r.probes["o.u"][1, 0] == 8_160_000 and r.probes["o.v"][1, 0] == 8_160_000
    u2 = 8_160_000 * 4095 // 4096
    assert r.probes["o.u"][2, 0] == u2
    assert r.spikes["o"][2, 0] and r.probes["o.v"][2, 0] == 0  # min(2u, 2^23-1) > 8388544


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_decay_and_no_memory_extremes(backend) -> None:
    img = one_to_one([[10]], du=-1, dv=4096, vth=100000)
    x = np.zeros((5, 1), bool)
    x[0] = True
    r = run(img, x, backend)
    assert r.probes["o.u"][1:, 0].tolist() == [640] * 4  # du = -1: no current decay
    assert r.probes["o.v"][1:, 0].tolist() == [640] * 4  # dv = 4096: v = u each step


@pytest.mark.parametrize("backend", BACKENDS)
def test_delays_arrive_at_t_plus_1_plus_d(backend) -> None:
    net = neurochip.Network()
    net.add_input("in", 1)
    net.add_lif("o", 3, du=4095, dv=4096, vth=1000)
    net.connect("in", "o", np.full((3, 1), 10), delay=np.array([[0], [1], [3]]))
    img = neurochip.compile(net, "loihi_like")
    x = np.zeros((8, 1), bool)
    x[1] = True
    r = neurochip.Emulator(img, backend=backend).run({"in": x}, probes=["o.u"])
    arrival = [int(np.flatnonzero(r.probes["o.u"][:, i])[0]) for i in range(3)]
    assert arrival == [2, 3, 5]


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_by_subtraction_and_readouts(backend) -> None:
    img = one_to_one([[150]], du=4095, dv=0, vth=100, reset="subtract")
    x = np.zeros((4, 1), bool)
    x[0] = True
    r = run(img, x, backend)
    # u = 9600 > 6400: spike, v = 9600 - 6400 = 3200 carried on (no leak)
    assert r.spikes["o"][:, 0].tolist() == [False, True, False, False]
    assert r.probes["o.v"][1:, 0].tolist() == [3200, 3200, 3200]
    img = one_to_one([[150]], du=4095, dv=0, vth=1, spiking=False)
    r = run(img, x, backend)
    assert not r.spikes["o"].any() and r.probes["o.v"][-1, 0] == 9600


@pytest.mark.parametrize("backend", BACKENDS)
def test_strict_threshold(backend) -> None:
    img = one_to_one([[100]], du=4095, dv=4096, vth=100)  # u = 6400 == threshold: no spike
    x = np.zeros((3, 1), bool)
    x[0] = True
    assert not run(img, x, backend).spikes["o"].any()
    img = one_to_one([[102]], du=4095, dv=4096, vth=101)
    assert run(img, x, backend).spikes["o"][1, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_recurrent_self_connection(backend) -> None:
    net = neurochip.Network()
    net.add_input("in", 1)
    net.add_lif("o", 1, du=4095, dv=4096, vth=50)
    net.connect("in", "o", [[100]])
    net.connect("o", "o", [[100]])  # a spike re-excites itself one step later
    img = neurochip.compile(net, "loihi_like")
    x = np.zeros((6, 1), bool)
    x[0] = True
    r = neurochip.Emulator(img, backend=backend).run({"in": x})
    assert r.spikes["o"][:, 0].tolist() == [False] + [True] * 5
