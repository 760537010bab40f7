"""The neuron models and graded spikes against Lava 0.10's own fixed-point process models.

One network holds every model (SigmaDelta, Delta, Sigma, LIFReset, TernaryLIF, LIF) fed
by graded host inputs through Dense and Sparse connections with ``num_message_bits`` (and
a binary and a 2-bit graded connection). Its registers and weights are drawn at random
from a seed; it runs once in Lava (``Loihi2SimCfg(select_tag="fixed_pt")``) and on both
emulator backends, and every payload and every state variable must agree at every step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import neurochip
from neurochip.core.hw import HardwareSpec, load_hw

pytestmark = pytest.mark.lava

T = 30
SEED = 11


def graded_hw(bits: int = 24) -> HardwareSpec:
    d = load_hw("loihi_like").to_dict()
    d["name"] = f"loihi_like_graded{bits}"
    d["formats"]["graded_payload_bits"] = bits
    return HardwareSpec.from_dict(d)


def _w(rng: np.random.Generator, shape: tuple[int, int], lo: int = -60, hi: int = 60
       ) -> NDArray[np.int64]:
    """Even weights (mixed 8-bit weights Lava keeps unchanged)."""
    return rng.integers(lo, hi, shape) * 2


def draw(seed: int) -> dict[str, Any]:
    """Random registers, weights and graded inputs of the test network."""
    rng = np.random.default_rng(seed)
    P: dict[str, Any] = {"seed": seed}
    P["x"] = (rng.integers(-300, 300, (T, 6)) * (rng.random((T, 6)) < 0.6)).astype(np.int64)
    P["sd"] = dict(vth=int(rng.integers(1, 40)), bias=rng.integers(-50, 50, 5),
                   act_mode=1, cum_error=1, spike_exp=int(rng.integers(0, 3)),
                   state_exp=int(rng.integers(0, 3)))
    P["sd2"] = dict(vth=int(rng.integers(0, 20)), bias=rng.integers(-20, 20, 3),
                    act_mode=0, cum_error=0, spike_exp=0, state_exp=int(rng.integers(0, 3)))
    P["dl"] = dict(vth=int(rng.integers(1, 30)), cum_error=0,
                   spike_exp=int(rng.integers(0, 2)), state_exp=int(rng.integers(0, 3)))
    P["lr"] = dict(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                   vth=int(rng.integers(50, 400)), bias_mant=rng.integers(-100, 100, 3),
                   bias_exp=rng.integers(0, 4, 3), reset_interval=int(rng.integers(3, 9)))
    P["lr"]["reset_offset"] = int(rng.integers(0, P["lr"]["reset_interval"]))
    P["tl"] = dict(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                   vth_hi=int(rng.integers(20, 200)), vth_lo=-int(rng.integers(20, 200)),
                   bias_mant=rng.integers(-50, 50, 3), bias_exp=rng.integers(0, 3, 3))
    P["l"] = dict(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                  vth=int(rng.integers(10, 100)))
    P["W_in_sd"], P["e_in_sd"] = _w(rng, (5, 6)), -2
    P["W_in_dl"], P["e_in_dl"] = _w(rng, (4, 6)), 0
    W = _w(rng, (4, 5))
    W[rng.random(W.shape) < 0.5] = 0
    P["W_sd_sg"], P["e_sd_sg"] = W, 1
    P["W_sd_lr"], P["e_sd_lr"] = _w(rng, (3, 5), -20, 20), -3
    P["W_lr_tl"], P["e_lr_tl"] = _w(rng, (3, 3), -100, 120), 0
    P["W_tl_l"], P["e_tl_l"] = _w(rng, (2, 3), -100, 120), 0
    W = _w(rng, (3, 4), -30, 30)
    W[rng.random(W.shape) < 0.4] = 0
    P["W_dl_sd2"], P["e_dl_sd2"] = W, -1
    return P


def network(P: dict[str, Any]) -> neurochip.Network:
    net = neurochip.Network(graded_hw(), name="models")
    net.add_input("in", 6, payload_bits=16)
    net.add_neurons("sd", 5, "sigma_delta", **P["sd"])
    net.add_neurons("dl", 4, "delta", **P["dl"])
    net.add_neurons("sg", 4, "sigma")
    net.add_neurons("lr", 3, "lif_reset", **P["lr"])
    net.add_neurons("tl", 3, "ternary_lif", **P["tl"])
    net.add_neurons("l", 2, "lif", **P["l"])
    net.add_neurons("sd2", 3, "sigma_delta", **P["sd2"])
    net.connect("in", "sd", P["W_in_sd"], P["e_in_sd"], storage="dense")
    net.connect("in", "dl", P["W_in_dl"], P["e_in_dl"], storage="dense")
    net.connect("sd", "sg", P["W_sd_sg"], P["e_sd_sg"], storage="sparse")
    net.connect("sd", "lr", P["W_sd_lr"], P["e_sd_lr"], storage="dense")
    net.connect("lr", "tl", P["W_lr_tl"], P["e_lr_tl"], storage="dense")
    net.connect("tl", "l", P["W_tl_l"], P["e_tl_l"], storage="dense")
    net.connect("dl", "sd2", P["W_dl_sd2"], P["e_dl_sd2"], storage="sparse")
    return net


#: (population, Lava variable, emulator probe) of every state variable compared
STATE = [("sd", "sigma", "sd.sigma"), ("sd", "act", "sd.act"), ("sd", "residue", "sd.residue"),
         ("sd", "error", "sd.error"), ("dl", "act", "dl.act"), ("dl", "residue", "dl.residue"),
         ("sg", "sigma", "sg.sigma"), ("lr", "u", "lr.u"), ("lr", "v", "lr.v"),
         ("tl", "u", "tl.u"), ("tl", "v", "tl.v"), ("l", "u", "l.u"), ("l", "v", "l.v"),
         ("sd2", "sigma", "sd2.sigma"), ("sd2", "act", "sd2.act"),
         ("sd2", "residue", "sd2.residue")]
POPS = ["sd", "dl", "sg", "lr", "tl", "l", "sd2"]


def run_in_lava(P: dict[str, Any]) -> dict[str, NDArray[np.int64]]:
    """Run the network in Lava; {population: payloads (T, n)} and {probe: (T, n)}."""
    from compiler.lava.compat import import_lava
    from compiler.lava.runner import run_and_read

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFReset, TernaryLIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.sdn.process import ActivationMode, Delta, Sigma, SigmaDelta
    from lava.proc.sparse.process import Sparse
    from scipy.sparse import csr_matrix

    def sdn(name: str, n: int) -> Any:
        r = P[name]
        return SigmaDelta(shape=(n,), vth=r["vth"], bias=np.asarray(r["bias"]),
                          act_mode=ActivationMode(r["act_mode"]), cum_error=bool(r["cum_error"]),
                          spike_exp=r["spike_exp"], state_exp=r["state_exp"], name=name)

    procs = {
        "sd": sdn("sd", 5),
        "dl": Delta(shape=(4,), vth=P["dl"]["vth"], cum_error=bool(P["dl"]["cum_error"]),
                    spike_exp=P["dl"]["spike_exp"], state_exp=P["dl"]["state_exp"]),
        "sg": Sigma(shape=(4,)),
        "lr": LIFReset(shape=(3,), name="lr", **{k: np.asarray(v) if np.ndim(v) else v
                                                 for k, v in P["lr"].items()}),
        "tl": TernaryLIF(shape=(3,), name="tl", **{k: np.asarray(v) if np.ndim(v) else v
                                                   for k, v in P["tl"].items()}),
        "l": LIF(shape=(2,), name="l", **P["l"]),
        "sd2": sdn("sd2", 3),
    }
    src = RingBuffer(data=P["x"].T.astype(np.int32))

    def link(pre: Any, post: Any, key: str, bits: int, sparse: bool = False) -> None:
        W, e = P[f"W_{key}"], P[f"e_{key}"]
        conn = (Sparse(weights=csr_matrix(W), weight_exp=e, num_message_bits=bits)
                if sparse else Dense(weights=W, weight_exp=e, num_message_bits=bits))
        pre.s_out.connect(conn.s_in)
        conn.a_out.connect(post.a_in)

    link(src, procs["sd"], "in_sd", 16)
    link(src, procs["dl"], "in_dl", 16)
    link(procs["sd"], procs["sg"], "sd_sg", 24, sparse=True)
    link(procs["sd"], procs["lr"], "sd_lr", 24)
    link(procs["lr"], procs["tl"], "lr_tl", 0)
    link(procs["tl"], procs["l"], "tl_l", 2)
    link(procs["dl"], procs["sd2"], "dl_sd2", 24, sparse=True)
    targets: list[tuple[str, Any, Any]] = []
    for name in POPS:
        targets.append((f"{name}.s_out", procs[name].s_out, Monitor()))
    for pop, var, key in STATE:
        targets.append((key, getattr(procs[pop], var), Monitor()))
    for _, target, mon in targets:
        mon.probe(target, T)
    out: dict[str, NDArray[np.int32]] = {k: np.zeros((T, t.shape[0]), np.int32)
                                         for k, t, _ in targets}
    run_and_read(procs["sd"], Loihi2SimCfg(select_tag="fixed_pt"), RunSteps(num_steps=T),
                 targets, {}, out, 600.0)
    return {k: v.astype(np.int64) for k, v in out.items()}


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    P = draw(SEED)
    img = neurochip.compile(network(P), graded_hw())
    probes = [key for _, _, key in STATE]
    em = {be: neurochip.Emulator(img, backend=be).run({"in": P["x"]}, probes=probes)
          for be in ("numba", "reference")}
    return {"lava": run_in_lava(P), "em": em}


@pytest.mark.parametrize("pop", POPS)
def test_payloads_equal_lava(runs: dict[str, Any], pop: str) -> None:
    lava = runs["lava"][f"{pop}.s_out"]
    for be, r in runs["em"].items():
        got = r.spikes[pop]
        np.testing.assert_array_equal(got.astype(np.int64), lava, err_msg=f"{pop} ({be})")
    assert np.count_nonzero(lava) > 0, f"{pop} never spikes: the check would be empty"


def test_graded_populations_return_payloads(runs: dict[str, Any]) -> None:
    r = runs["em"]["numba"]
    for pop in ("sd", "dl", "sg", "tl", "sd2"):
        assert r.spikes[pop].dtype == np.int32
    assert r.spikes["lr"].dtype == np.bool_ and r.spikes["l"].dtype == np.bool_
    assert set(np.unique(r.spikes["tl"])) <= {-1, 0, 1}
    assert (r.spikes["tl"] < 0).any() or (r.spikes["tl"] > 0).any()


@pytest.mark.parametrize("key", [k for _, _, k in STATE])
def test_state_equals_lava(runs: dict[str, Any], key: str) -> None:
    lava = runs["lava"][key]
    for be, r in runs["em"].items():
        np.testing.assert_array_equal(r.probes[key].astype(np.int64), lava,
                                      err_msg=f"{key} ({be})")


# ------------------------------------------------------------------ Loihi 2 models
# ATRLIF, RF, RF_IZ and RFZero (each with its second input fed through port "imag") in
# one network, against Lava's PyATRLIFModelFixed, PyRFModelFixed, PyRF_IZModelFixed and
# PyRFZeroModelFixed on random parameters.

T2 = 40
SEED2 = 5


def draw2(seed: int) -> dict[str, Any]:
    """Random Lava parameters, the registers they give, weights and inputs."""
    from neurochip.core.neuron_models import rf_decays, rf_zero_decays

    rng = np.random.default_rng(seed)
    P: dict[str, Any] = {"seed": seed}
    P["b"] = rng.random((T2, 5)) < 0.35
    P["x"] = (rng.integers(-400, 400, (T2, 4)) * (rng.random((T2, 4)) < 0.5)).astype(np.int64)
    P["at"] = dict(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                   delta_theta=int(rng.integers(0, 4097)), delta_r=int(rng.integers(0, 4097)),
                   theta_0=int(rng.integers(20, 200)), theta_step=int(rng.integers(0, 60)),
                   bias_mant=rng.integers(-40, 120, 4), bias_exp=rng.integers(0, 3, 4))
    for key in ("rf", "rz"):
        period, alpha = float(rng.uniform(3, 20)), float(rng.uniform(0, 0.3))
        cos, sin = rf_decays(period, alpha, 12)
        P[key] = dict(period=period, alpha=alpha, vth=int(rng.integers(1, 40)),
                      regs=dict(cos_decay=cos, sin_decay=sin, decay_bits=12, state_exp=6))
    freqs, tau = rng.uniform(5, 80, 3), rng.uniform(0.01, 0.2, 3)
    lct, lst = rf_zero_decays(freqs, tau, 0.001)
    P["r0"] = dict(freqs=freqs, decay_tau=tau, uth=int(rng.integers(0, 30)),
                   regs=dict(lct=lct, lst=lst))
    P["W_b_at"] = _w(rng, (4, 5), -50, 100)
    P["W_b_rf"], P["W_b_rfi"] = _w(rng, (4, 5), -30, 30), _w(rng, (4, 5), -30, 30)
    P["W_b_rz"], P["W_at_rzi"] = _w(rng, (3, 5), -30, 30), _w(rng, (3, 4), -30, 30)
    P["W_x_r0"], P["W_x_r0i"] = _w(rng, (3, 4)), _w(rng, (3, 4))
    P["W_rf_l"] = _w(rng, (2, 4), 20, 120)
    P["W_r0_l"] = _w(rng, (2, 3), -20, 20)
    return P


def network2(P: dict[str, Any]) -> neurochip.Network:
    net = neurochip.Network(graded_hw(), name="loihi2_models")
    net.add_input("b", 5)
    net.add_input("x", 4, payload_bits=16)
    net.add_neurons("at", 4, "atrlif", **P["at"])
    net.add_neurons("rf", 4, "rf", vth=P["rf"]["vth"], **P["rf"]["regs"])
    net.add_neurons("rz", 3, "rf_iz", vth=P["rz"]["vth"], **P["rz"]["regs"])
    net.add_neurons("r0", 3, "rf_zero", uth=P["r0"]["uth"], **P["r0"]["regs"])
    net.add_lif("l", 2, du=500, dv=700, vth=30)
    net.connect("b", "at", P["W_b_at"], storage="dense")
    net.connect("b", "rf", P["W_b_rf"], storage="dense")
    net.connect("b", "rf", P["W_b_rfi"], storage="dense", port="imag")
    net.connect("b", "rz", P["W_b_rz"], storage="dense")
    net.connect("at", "rz", P["W_at_rzi"], storage="dense", port="imag")
    net.connect("x", "r0", P["W_x_r0"], storage="dense")
    net.connect("x", "r0", P["W_x_r0i"], storage="dense", port="imag")
    net.connect("rf", "l", P["W_rf_l"], storage="dense")
    net.connect("r0", "l", P["W_r0_l"], -6, storage="dense")
    return net


STATE2 = [("at", "i", "at.i"), ("at", "v", "at.v"), ("at", "theta", "at.theta"),
          ("at", "r", "at.r"), ("rf", "real", "rf.real"), ("rf", "imag", "rf.imag"),
          ("rz", "real", "rz.real"), ("rz", "imag", "rz.imag"), ("r0", "u", "r0.u"),
          ("r0", "v", "r0.v"), ("l", "v", "l.v")]
POPS2 = ["at", "rf", "rz", "r0", "l"]


def run_in_lava2(P: dict[str, Any]) -> dict[str, NDArray[np.int64]]:
    """The Loihi 2 network in Lava; {population.s_out: (T, n)} and {probe: (T, n)}."""
    from compiler.lava.compat import import_lava
    from compiler.lava.runner import run_and_read

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.atrlif.process import ATRLIF
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.resfire.process import RFZero
    from lava.proc.rf.process import RF
    from lava.proc.rf_iz.process import RF_IZ

    a = P["at"]
    at = ATRLIF(shape=(4,), delta_i=a["du"] / 4096, delta_v=a["dv"] / 4096,
                delta_theta=a["delta_theta"] / 4096, delta_r=a["delta_r"] / 4096,
                theta_0=a["theta_0"], theta=a["theta_0"], theta_step=a["theta_step"],
                bias_mant=np.asarray(a["bias_mant"]), bias_exp=np.asarray(a["bias_exp"]),
                name="at")
    rf = RF(shape=(4,), period=P["rf"]["period"], alpha=P["rf"]["alpha"], state_exp=6,
            decay_bits=12, vth=P["rf"]["vth"], name="rf")
    rz = RF_IZ(shape=(3,), period=P["rz"]["period"], alpha=P["rz"]["alpha"], state_exp=6,
               decay_bits=12, vth=P["rz"]["vth"], name="rz")
    r0 = RFZero(shape=(3,), freqs=P["r0"]["freqs"], decay_tau=P["r0"]["decay_tau"],
                dt=0.001, uth=P["r0"]["uth"])
    r0.name = "r0"
    lif = LIF(shape=(2,), du=500, dv=700, vth=30, name="l")
    procs = {"at": at, "rf": rf, "rz": rz, "r0": r0, "l": lif}
    src_b = RingBuffer(data=P["b"].T.astype(np.int32))
    src_x = RingBuffer(data=P["x"].T.astype(np.int32))

    def link(pre: Any, port: Any, key: str, bits: int, exp: int = 0) -> None:
        conn = Dense(weights=P[f"W_{key}"], weight_exp=exp, num_message_bits=bits)
        pre.s_out.connect(conn.s_in)
        conn.a_out.connect(port)

    link(src_b, at.a_in, "b_at", 0)
    link(src_b, rf.a_real_in, "b_rf", 0)
    link(src_b, rf.a_imag_in, "b_rfi", 0)
    link(src_b, rz.a_real_in, "b_rz", 0)
    link(at, rz.a_imag_in, "at_rzi", 0)
    link(src_x, r0.u_in, "x_r0", 16)
    link(src_x, r0.v_in, "x_r0i", 16)
    link(rf, lif.a_in, "rf_l", 0)
    link(r0, lif.a_in, "r0_l", 24, -6)
    targets: list[tuple[str, Any, Any]] = []
    for name in POPS2:
        targets.append((f"{name}.s_out", procs[name].s_out, Monitor()))
    for pop, var, key in STATE2:
        targets.append((key, getattr(procs[pop], var), Monitor()))
    for _, target, mon in targets:
        mon.probe(target, T2)
    out: dict[str, NDArray[np.int32]] = {k: np.zeros((T2, t.shape[0]), np.int32)
                                         for k, t, _ in targets}
    run_and_read(at, Loihi2SimCfg(select_tag="fixed_pt"), RunSteps(num_steps=T2),
                 targets, {}, out, 600.0)
    return {k: v.astype(np.int64) for k, v in out.items()}


@pytest.fixture(scope="module")
def runs2() -> dict[str, Any]:
    P = draw2(SEED2)
    img = neurochip.compile(network2(P), graded_hw())
    probes = [key for _, _, key in STATE2]
    em = {be: neurochip.Emulator(img, backend=be).run({"b": P["b"], "x": P["x"]},
                                                     probes=probes)
          for be in ("numba", "reference")}
    return {"lava": run_in_lava2(P), "em": em}


@pytest.mark.parametrize("pop", POPS2)
def test_loihi2_payloads_equal_lava(runs2: dict[str, Any], pop: str) -> None:
    lava = runs2["lava"][f"{pop}.s_out"]
    for be, r in runs2["em"].items():
        np.testing.assert_array_equal(r.spikes[pop].astype(np.int64), lava,
                                      err_msg=f"{pop} ({be})")
    assert np.count_nonzero(lava) > 0, f"{pop} never spikes: the check would be empty"


@pytest.mark.parametrize("key", [k for _, _, k in STATE2])
def test_loihi2_state_equals_lava(runs2: dict[str, Any], key: str) -> None:
    lava = runs2["lava"][key]
    for be, r in runs2["em"].items():
        np.testing.assert_array_equal(r.probes[key].astype(np.int64), lava,
                                      err_msg=f"{key} ({be})")
    assert np.count_nonzero(lava) > 0, key


def test_loihi2_models_export_to_lava_bit_exact(runs2: dict[str, Any]) -> None:
    """``export_lava`` builds the Loihi 2 network from the image alone (ATRLIF, RF, RF_IZ
    and RFZero with the image's integer registers, the second inputs on their "imag"
    ports): its spikes and state equal the emulator's, and Lava's own processes are used
    (no process of ours)."""
    from compiler.lava import export_lava

    P = draw2(SEED2)
    img = neurochip.compile(network2(P), graded_hw())
    lnet = export_lava(img, {"b": P["b"], "x": P["x"]}, stock_only=True)
    probes = [key for _, _, key in STATE2]
    res = lnet.run(T2, probes=probes, timeout_s=600)
    em = runs2["em"]["numba"]
    for pop in POPS2:
        np.testing.assert_array_equal(np.asarray(res.spikes[pop]).astype(np.int64),
                                      em.spikes[pop].astype(np.int64), err_msg=pop)
    for key in probes:
        np.testing.assert_array_equal(res.probes[key].astype(np.int64),
                                      em.probes[key].astype(np.int64), err_msg=key)
    assert {type(lnet[p]).__name__ for p in POPS2} == {"ATRLIF", "RF", "RF_IZ", "RFZero",
                                                      "LIF"}
