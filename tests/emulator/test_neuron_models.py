"""Neuron models and graded spikes: the kernels equal the reference model bit for bit, the
builder, the image and the emulator reject what the chip cannot hold.

(The models themselves are checked against Lava's process models in
``test_neuron_models_lava.py``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurochip
from emulator.kernels import run as kernel_run
from neurochip.core import neuron_models as nm
from neurochip.core.errors import (
    EmulatorInputError,
    ImageError,
    NetworkError,
    ParameterRangeError,
)
from neurochip.core.hw import HardwareSpec, load_hw
from neurochip.core.image import ChipImage
from neurochip.core.verify import verify_image

T = 25
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def graded_hw(bits: int = 24) -> HardwareSpec:
    d = load_hw("loihi_like").to_dict()
    d["name"] = f"loihi_like_graded{bits}"
    d["formats"]["graded_payload_bits"] = bits
    return HardwareSpec.from_dict(d)


def mixed_network(seed: int) -> tuple[neurochip.Network, np.ndarray]:
    """Every model, graded and binary inputs, dense and sparse synapses with scalar and
    per-synapse delays, weight exponents of both signs, a recurrent graded connection."""
    rng = np.random.default_rng(seed)
    net = neurochip.Network(graded_hw(), name=f"mixed{seed}")
    net.add_input("g", 8, payload_bits=12)
    net.add_input("b", 5)
    net.add_neurons("sd", 6, "sigma_delta", vth=int(rng.integers(0, 30)),
                    bias=rng.integers(-40, 40, 6), act_mode=int(rng.integers(0, 2)),
                    cum_error=int(rng.integers(0, 2)), spike_exp=int(rng.integers(0, 3)),
                    state_exp=int(rng.integers(0, 3)))
    net.add_neurons("dl", 5, "delta", vth=int(rng.integers(1, 20)), cum_error=1,
                    spike_exp=1, state_exp=int(rng.integers(0, 3)))
    net.add_neurons("sg", 4, "sigma")
    net.add_neurons("lr", 4, "lif_reset", du=int(rng.integers(0, 4096)),
                    dv=int(rng.integers(0, 4096)), vth=int(rng.integers(20, 300)),
                    bias_mant=rng.integers(-50, 80, 4), bias_exp=2, reset_interval=4,
                    reset_offset=int(rng.integers(0, 4)))
    net.add_neurons("tl", 4, "ternary_lif", du=100, dv=300, vth_hi=int(rng.integers(10, 100)),
                    vth_lo=-int(rng.integers(10, 100)), bias_mant=rng.integers(-30, 30, 4))
    net.add_lif("l", 3, du=500, dv=600, vth=50, reset="subtract")

    def w(shape: tuple[int, int], lo: int = -60, hi: int = 60) -> Any:
        return rng.integers(lo, hi, shape) * 2

    net.connect("g", "sd", w((6, 8)), -2, storage="dense")
    net.connect("b", "sd", w((6, 5)), 3)
    net.connect("g", "dl", w((5, 8)), 0, delay=rng.integers(0, 4, (5, 8)), storage="dense")
    Wsp = w((4, 6))
    Wsp[rng.random(Wsp.shape) < 0.5] = 0
    import scipy.sparse as sp
    net.connect("sd", "sg", sp.csr_matrix(Wsp), -1, storage="sparse")
    net.connect("dl", "sg", sp.csr_matrix(w((4, 5)) * (rng.random((4, 5)) < 0.4)), 1,
                delay=2, storage="sparse")
    ws = sp.csr_matrix(w((4, 6), -10, 10) * (rng.random((4, 6)) < 0.6))
    net.connect("sd", "lr", ws, -3, delay=rng.integers(0, 3, ws.nnz), storage="sparse")
    net.connect("lr", "tl", w((4, 4), -80, 120), 0)
    net.connect("tl", "l", w((3, 4), -80, 120), 1)
    net.connect("sg", "sd", w((6, 4), -4, 4), -6, name="sg-sd-recurrent")
    x = (rng.integers(-1000, 1000, (3, T, 8)) * (rng.random((3, T, 8)) < 0.5))
    return net, x


PROBES = ["sd.sigma", "sd.act", "sd.residue", "sd.error", "dl.act", "dl.residue",
          "dl.error", "sg.sigma", "lr.u", "lr.v", "tl.u", "tl.v", "l.u", "l.v"]


def _inputs(x: np.ndarray, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 100)
    return {"g": x, "b": rng.random((x.shape[0], x.shape[1], 5)) < 0.3}


def _equal(a: neurochip.RunResult, b: neurochip.RunResult) -> None:
    assert a.spikes.keys() == b.spikes.keys()
    for k in a.spikes:
        assert a.spikes[k].dtype == b.spikes[k].dtype, k
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=k)
    for k in a.probes:
        np.testing.assert_array_equal(a.probes[k], b.probes[k], err_msg=k)
    for k in a.counters:
        np.testing.assert_array_equal(a.counters[k], b.counters[k], err_msg=k)


@pytest.fixture(scope="module")
def mixed() -> tuple[ChipImage, np.ndarray]:
    net, x = mixed_network(3)
    return neurochip.compile(net, graded_hw()), x


def test_kernels_equal_reference_batched_and_split(mixed: tuple[ChipImage, np.ndarray]
                                                   ) -> None:
    img, x = mixed
    inp = _inputs(x, 3)
    ref = neurochip.Emulator(img, backend="reference").run(inp, probes=PROBES)
    for threads in (1, 2):
        _equal(neurochip.Emulator(img, threads=threads).run(inp, probes=PROBES), ref)
    # the same run in two pieces: state (auxiliary slots, delay ring) carries over
    em = neurochip.Emulator(img)
    a = em.run({k: v[:, :11] for k, v in inp.items()}, steps=11, probes=PROBES)
    b = em.run({k: v[:, 11:] for k, v in inp.items()}, steps=T - 11, probes=PROBES)
    for k in ref.spikes:
        np.testing.assert_array_equal(np.concatenate([a.spikes[k], b.spikes[k]], 1),
                                      ref.spikes[k], err_msg=k)
    for k in ref.probes:
        np.testing.assert_array_equal(np.concatenate([a.probes[k], b.probes[k]], 1),
                                      ref.probes[k], err_msg=k)
    for pop in ("sd", "dl", "sg", "tl"):
        assert np.count_nonzero(ref.spikes[pop]) > 0, pop
    assert ref.spikes["sd"].dtype == np.int32 and ref.spikes["lr"].dtype == np.bool_


def test_bias_override_keeps_the_sigma_delta_bias(mixed: tuple[ChipImage, np.ndarray]
                                                  ) -> None:
    """Replacing one population's bias mantissas leaves every other neuron's bias as the
    tables hold it, the sigma_delta model's own bias register included (both backends)."""
    img, x = mixed
    inp = _inputs(x, 3)
    b = np.arange(-2, 2)  # 4 neurons of the lif_reset population
    ref = neurochip.Emulator(img, backend="reference").run(inp, probes=PROBES,
                                                           bias={"lr": b})
    fast = neurochip.Emulator(img).run(inp, probes=PROBES, bias={"lr": b})
    _equal(fast, ref)
    plain = neurochip.Emulator(img).run(inp, probes=PROBES)
    assert not np.array_equal(plain.probes["lr.v"], fast.probes["lr.v"])
    with pytest.raises(EmulatorInputError, match="own 'bias' register") as e:
        neurochip.Emulator(img).run(inp, bias={"sd": np.zeros(6, np.int64)})
    assert e.value.field == "bias"


def test_threaded_sample_equals_reference(mixed: tuple[ChipImage, np.ndarray],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One sample split over threads (segments, connections) gives the same results."""
    img, x = mixed
    inp = {k: v[0] for k, v in _inputs(x, 3).items()}
    ref = neurochip.Emulator(img, backend="reference").run(inp, probes=PROBES)
    monkeypatch.setattr(kernel_run, "THREADED_MIN_NEURONS", 1)
    monkeypatch.setattr(kernel_run, "THREADED_MIN_EVENTS", 1)
    _equal(neurochip.Emulator(img, threads=2).run(inp, probes=PROBES), ref)


def test_model_image_round_trip(mixed: tuple[ChipImage, np.ndarray], tmp_path: Path) -> None:
    img, _ = mixed
    back = ChipImage.load(img.save(tmp_path / "m.nchip"))
    assert back.equals(img)
    assert back.hw.formats.graded_payload_bits == 24
    sd = back.population("sd")
    assert sd.model == "sigma_delta" and sd.payload_bits == 24 and "bias" not in sd.registers
    assert back.population("g").payload_bits == 12
    assert back.arrays["neurons/bias"].shape == (back.n_neurons,)


def test_lif_images_are_unchanged_and_old_images_load_as_lif() -> None:
    old = ChipImage.load(GOLDEN / "feed_forward.nchip")
    assert all(p.model == "lif" and p.payload_bits == 0 for p in old.populations)
    man = old.manifest()
    assert all("model" not in p and "payload_bits" not in p for p in man["populations"])
    assert "graded_payload_bits" not in man["hw"]["spec"]["formats"]


@pytest.mark.parametrize("damage, field", [
    (lambda im: im.population("sd").registers.update(vth=1 << 24), "vth"),
    (lambda im: im.population("lr").registers.update(reset_offset=9), "reset_offset"),
    (lambda im: im.population("tl").registers.pop("vth_lo"), "registers"),
    (lambda im: setattr(im.population("sg"), "model", "izhikevich"), "model"),
    (lambda im: setattr(im.population("sd"), "payload_bits", 8), "payload_bits"),
    (lambda im: setattr(im.population("g"), "payload_bits", 30), "payload_bits"),
    (lambda im: im.arrays.__setitem__("neurons/bias", np.full(im.n_neurons, 1 << 20,
                                                             np.int32)), "bias"),
    (lambda im: im.arrays.pop("neurons/bias"), "neurons/bias"),
])
def test_verifier_rejects_bad_model_entries(mixed: tuple[ChipImage, np.ndarray],
                                            damage: Any, field: str) -> None:
    img, _ = mixed
    bad = ChipImage.from_bytes(_bytes(img), verify=False)
    damage(bad)
    with pytest.raises(ImageError) as ei:
        verify_image(bad)
    assert field in str(ei.value)


def _bytes(img: ChipImage) -> bytes:
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = img.save(Path(d) / "x.nchip")
        buf = io.BytesIO(p.read_bytes())
    return buf.getvalue()


# ------------------------------------------------------------------------------ builder


def _assert_rejected(model: str, regs: dict[str, Any], field: str, err: type
                     ) -> neurochip.Network:
    """add_neurons refuses the registers with ``err`` naming ``field`` and the population."""
    net = neurochip.Network(graded_hw())
    with pytest.raises(err) as ei:
        net.add_neurons("pop", 3, model, **regs)
    assert ei.value.field == field and ei.value.where == "population 'pop'"
    return net


@pytest.mark.parametrize("model, regs, field, err", [
    ("sigma_delta", {}, "vth", NetworkError),
    ("sigma_delta", {"vth": -1}, "vth", ParameterRangeError),
    ("sigma_delta", {"vth": 1 << 22, "spike_exp": 2, "state_exp": 1}, "vth",
     ParameterRangeError),
    ("sigma_delta", {"vth": 1, "bias": 1 << 15}, "bias", ParameterRangeError),
    ("sigma_delta", {"vth": 1, "bias": 5000, "state_exp": 7, "spike_exp": 7}, "bias",
     ParameterRangeError),
    ("sigma_delta", {"vth": 1, "act_mode": "tanh"}, "act_mode", NetworkError),
    ("sigma_delta", {"vth": 1, "state_exp": 8}, "state_exp", ParameterRangeError),
    ("sigma_delta", {"vth": 1, "du": 3}, "du", NetworkError),
    ("delta", {"vth": 1, "bias": 3}, "bias", NetworkError),
    ("delta", {"vth": 1, "cum_error": 2}, "cum_error", ParameterRangeError),
    ("sigma", {"vth": 1}, "vth", NetworkError),
    ("lif_reset", {"du": 1, "dv": 1, "vth": 5}, "reset_interval", NetworkError),
    ("lif_reset", {"du": 1, "dv": 1, "vth": 5, "reset_interval": 0}, "reset_interval",
     ParameterRangeError),
    ("lif_reset", {"du": 1, "dv": 1, "vth": 5, "reset_interval": 4, "reset_offset": 4},
     "reset_offset", ParameterRangeError),
    ("lif_reset", {"du": 5000, "dv": 1, "vth": 5, "reset_interval": 4}, "du",
     ParameterRangeError),
    ("ternary_lif", {"du": 1, "dv": 1, "vth_hi": 1 << 17, "vth_lo": 0}, "vth_hi",
     ParameterRangeError),
    ("ternary_lif", {"du": 1, "dv": 1, "vth": 4, "vth_hi": 1, "vth_lo": 0}, "vth",
     NetworkError),
    ("ternary_lif", {"du": 1, "dv": 1, "vth_hi": 4, "vth_lo": -4, "bias_mant": 1 << 13},
     "bias_mant", ParameterRangeError),
    ("hodgkin_huxley", {}, "model", NetworkError),
])
def test_builder_rejects_bad_registers(model: str, regs: dict[str, Any], field: str,
                                       err: type) -> None:
    net = _assert_rejected(model, regs, field, err)
    assert [p.name for p in net.populations] == []


def test_graded_models_need_a_chip_with_graded_spikes() -> None:
    net = neurochip.Network("loihi_like")
    for model, regs in (("sigma", {}), ("sigma_delta", {"vth": 1}),
                        ("ternary_lif", {"du": 1, "dv": 1, "vth_hi": 1, "vth_lo": -1})):
        with pytest.raises(NetworkError, match="binary spikes only"):
            net.add_neurons("pop", 2, model, **regs)
    with pytest.raises(ParameterRangeError, match="binary spikes only"):
        net.add_input("in", 2, payload_bits=8)
    net.add_neurons("lr", 2, "lif_reset", du=1, dv=1, vth=1, reset_interval=3)  # binary
    g = neurochip.Network(graded_hw(16))
    with pytest.raises(ParameterRangeError) as ei:
        g.add_input("in", 2, payload_bits=17)
    assert ei.value.field == "payload_bits" and ei.value.limit == (2, 16)
    g.add_input("in", 2, payload_bits=16)
    g.add_neurons("sd", 2, "sigma_delta", vth=1)
    assert g.population("sd").payload_bits == 16
    assert g.population("in").graded
    with pytest.raises(ParameterRangeError, match="binary spikes only"):
        neurochip.compile(g, "loihi_like")


def test_add_neurons_lif_is_add_lif() -> None:
    net = neurochip.Network()
    a = net.add_neurons("a", 3, du=5, dv=6, vth=7, bias_mant=[1, 2, 3], reset="subtract")
    b = net.add_lif("b", 3, du=5, dv=6, vth=7, bias_mant=[1, 2, 3], reset="subtract")
    assert (a.model, a.du, a.dv, a.vth, a.reset) == (b.model, b.du, b.dv, b.vth, b.reset)
    np.testing.assert_array_equal(a.bias_mant, b.bias_mant)


def test_models_table_is_consistent() -> None:
    for name, m in nm.MODELS.items():
        assert nm.MODEL_IDS[name] == m.id
        assert set(nm.STATE_SLOTS[name]) == set(m.state)
        assert (nm.AUX_SLOTS[name] > 0) == any(s >= 2 for s in nm.STATE_SLOTS[name].values())
        for f in m.fields:
            lo, hi = f.range
            assert lo < hi and (lo < 0) == f.signed


# ------------------------------------------------------------------------------ emulator


def test_emulator_rejects_bad_graded_inputs_and_probes(mixed: tuple[ChipImage, np.ndarray]
                                                       ) -> None:
    img, x = mixed
    em = neurochip.Emulator(img)
    with pytest.raises(EmulatorInputError, match="12-bit payload range") as ei:
        em.run({"g": np.full((3, 8), 1 << 11)})
    assert ei.value.field == "g"
    with pytest.raises(EmulatorInputError, match="integer payloads"):
        em.run({"g": np.full((3, 8), 0.5)})
    with pytest.raises(EmulatorInputError, match="must hold spikes"):
        em.run({"b": np.full((3, 5), 2)})
    with pytest.raises(EmulatorInputError, match="state variables"):
        em.run({"g": x[0]}, probes=["sd.v"])
    with pytest.raises(EmulatorInputError, match="state variables"):
        em.run({"g": x[0]}, probes=["lr.sigma"])
    with pytest.raises(EmulatorInputError, match="LIF populations"):
        em.run({"g": x[0]}, learn=True)
    r = em.run({"g": np.full((2, 8), -(1 << 11))}, probes=["sg.sigma"])  # the range's end
    assert r.spikes["sd"].shape == (2, 6)


# ------------------------------------------------------------------------------ docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "neuron_models.md"


def test_the_docs_example_runs_and_the_table_lists_every_register() -> None:
    import re

    text = DOC.read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    ns: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), ns)
    r = ns["r"]
    assert r.spikes["sd"].dtype == np.int32 and np.count_nonzero(r.spikes["sd"]) > 0
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines()
            if line.startswith("| `")}
    assert set(rows) == set(nm.MODELS)
    for name, m in nm.MODELS.items():
        assert m.lava in rows[name]
        for f in m.fields:
            assert f.name in rows[name], (name, f.name)
        for s in m.state:
            assert s in rows[name], (name, s)


# ------------------------------------------------------------------------------ per-neuron decays


@pytest.mark.parametrize("reset, spiking", [("zero", True), ("subtract", True),
                                            ("zero", False)])
def test_per_neuron_decays_equal_one_population_per_neuron(reset: str, spiking: bool) -> None:
    """A population with its own du and dv per neuron runs exactly as one LIF population
    (the path the Lava cross-checks cover) per neuron."""
    rng = np.random.default_rng(7)
    n = 5
    du, dv = rng.integers(-1, 4096, n), rng.integers(0, 4097, n)
    bm = rng.integers(-100, 200, n)
    net = neurochip.Network()
    net.add_input("in", 4)
    W = rng.integers(-100, 100, (n, 4)) * 2
    pop = net.add_lif("pn", n, du=du, dv=dv, vth=80, bias_mant=bm, bias_exp=1, reset=reset,
                      spiking=spiking)
    assert pop.model == "lif_per_neuron"
    net.connect("in", "pn", W, -1)
    for i in range(n):
        net.add_lif(f"s{i}", 1, du=int(du[i]), dv=int(dv[i]), vth=80, bias_mant=int(bm[i]),
                    bias_exp=1, reset=reset, spiking=spiking)
        net.connect("in", f"s{i}", W[i:i + 1], -1)
    img = neurochip.compile(net)
    x = rng.random((T, 4)) < 0.4
    pr = ["pn.u", "pn.v"] + [f"s{i}.{v}" for i in range(n) for v in "uv"]
    for be in ("reference", "numba"):
        r = neurochip.Emulator(img, backend=be).run({"in": x}, probes=pr)
        for i in range(n):
            for v in "uv":
                np.testing.assert_array_equal(r.probes[f"pn.{v}"][:, i],
                                              r.probes[f"s{i}.{v}"][:, 0], err_msg=f"{be} {v}")
            np.testing.assert_array_equal(r.spikes["pn"][:, i], r.spikes[f"s{i}"][:, 0])
    assert spiking is False or r.spikes["pn"].any()


def test_per_neuron_decays_builder() -> None:
    net = neurochip.Network()
    assert net.add_lif("same", 3, du=[7, 7, 7], dv=np.full(3, 9), vth=5).model == "lif"
    assert net.population("same").du == 7 and net.population("same").dv == 9
    with pytest.raises(ParameterRangeError) as ei:
        net.add_lif("bad", 3, du=[1, 2, 4096], dv=0, vth=5)
    assert ei.value.field == "du" and ei.value.limit == (-1, 4095)
    with pytest.raises(ParameterRangeError) as ei:
        net.add_lif("bad", 3, du=0, dv=[0, 4097, 1], vth=5)
    assert ei.value.field == "dv"
    with pytest.raises(NetworkError):
        net.add_lif("bad", 3, du=[1, 2], dv=0, vth=5)
    p = net.add_neurons("pn", 2, "lif_per_neuron", du=[1, 2], dv=[3, 4], vth=5)
    assert p.model == "lif_per_neuron" and p.registers["du"].tolist() == [1, 2]


# ------------------------------------------------------------------ Loihi 2 models


def loihi2_network(seed: int) -> tuple[neurochip.Network, dict[str, Any]]:
    """ATRLIF, RF, RF_IZ and RFZero with both inputs fed (dense, sparse, delayed, graded),
    a recurrent ATRLIF connection and an RF readout into LIF."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    net = neurochip.Network(graded_hw(), name=f"loihi2_{seed}")
    net.add_input("b", 6)
    net.add_input("g", 4, payload_bits=12)
    net.add_neurons("at", 5, "atrlif", du=int(rng.integers(0, 4096)),
                    dv=int(rng.integers(0, 4096)), bias_mant=rng.integers(-30, 80, 5),
                    bias_exp=1, delta_theta=int(rng.integers(0, 4097)),
                    delta_r=int(rng.integers(0, 4097)), theta_0=int(rng.integers(20, 100)),
                    theta_step=int(rng.integers(0, 40)))
    cos, sin = nm.rf_decays(float(rng.uniform(3, 15)), float(rng.uniform(0, 0.2)), 12)
    net.add_neurons("rf", 4, "rf", cos_decay=cos, sin_decay=sin, state_exp=6, vth=15)
    cos, sin = nm.rf_decays(float(rng.uniform(3, 15)), float(rng.uniform(0, 0.2)), 11)
    net.add_neurons("rz", 4, "rf_iz", cos_decay=cos, sin_decay=sin, decay_bits=11,
                    state_exp=5, vth=int(rng.integers(5, 30)))
    lct, lst = nm.rf_zero_decays(rng.uniform(5, 80, 3), rng.uniform(0.01, 0.2, 3))
    net.add_neurons("r0", 3, "rf_zero", lct=lct, lst=lst, uth=int(rng.integers(0, 20)))
    net.add_lif("l", 3, du=400, dv=500, vth=40)

    def w(shape: tuple[int, int], lo: int = -60, hi: int = 60) -> Any:
        return rng.integers(lo, hi, shape) * 2

    net.connect("b", "at", w((5, 6), -40, 90))
    net.connect("at", "at", w((5, 5), -30, 10), delay=1)
    net.connect("b", "rf", w((4, 6), -30, 30), storage="dense")
    net.connect("b", "rf", sp.csr_matrix(w((4, 6), -30, 30) * (rng.random((4, 6)) < 0.5)),
                storage="sparse", port="imag", delay=rng.integers(0, 3, (4, 6)))
    net.connect("at", "rz", w((4, 5), -30, 30))
    net.connect("b", "rz", w((4, 6), -30, 30), port="imag", delay=2)
    net.connect("g", "r0", w((3, 4)), -1)
    net.connect("g", "r0", w((3, 4)), port="imag")
    net.connect("r0", "r0", w((3, 3), -4, 4), -6, port="imag")
    net.connect("rf", "l", w((3, 4), 20, 100))
    net.connect("rz", "l", w((3, 4), -50, 50))
    x = {"b": rng.random((2, T, 6)) < 0.35,
         "g": rng.integers(-800, 800, (2, T, 4)) * (rng.random((2, T, 4)) < 0.5)}
    return net, x


PROBES2 = ["at.i", "at.v", "at.theta", "at.r", "rf.real", "rf.imag", "rz.real", "rz.imag",
           "r0.u", "r0.v", "l.u", "l.v"]


@pytest.fixture(scope="module")
def loihi2() -> tuple[ChipImage, dict[str, Any]]:
    net, x = loihi2_network(4)
    return neurochip.compile(net, graded_hw()), x


def test_loihi2_models_kernels_equal_reference(loihi2: tuple[ChipImage, dict[str, Any]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    img, x = loihi2
    ref = neurochip.Emulator(img, backend="reference").run(x, probes=PROBES2)
    for threads in (1, 2):
        _equal(neurochip.Emulator(img, threads=threads).run(x, probes=PROBES2), ref)
    em = neurochip.Emulator(img)  # in two pieces: the second inputs' ring carries over
    a = em.run({k: v[:, :9] for k, v in x.items()}, steps=9, probes=PROBES2)
    b = em.run({k: v[:, 9:] for k, v in x.items()}, steps=T - 9, probes=PROBES2)
    for k in ref.probes:
        np.testing.assert_array_equal(np.concatenate([a.probes[k], b.probes[k]], 1),
                                      ref.probes[k], err_msg=k)
    for pop in ("at", "rf", "rz", "r0", "l"):
        assert np.count_nonzero(ref.spikes[pop]) > 0, pop
    assert ref.spikes["r0"].dtype == np.int32 and ref.spikes["rf"].dtype == np.bool_
    # theta starts at theta_0 * 2^6 and rises with each spike
    th0 = img.population("at").registers["theta_0"] << img.hw.formats.vth_shift
    assert (ref.probes["at.theta"][:, 0] == th0).all() and (ref.probes["at.theta"] > th0).any()
    one = {k: v[0] for k, v in x.items()}
    monkeypatch.setattr(kernel_run, "THREADED_MIN_NEURONS", 1)
    monkeypatch.setattr(kernel_run, "THREADED_MIN_EVENTS", 1)
    ref1 = neurochip.Emulator(img, backend="reference").run(one, probes=PROBES2)
    _equal(neurochip.Emulator(img, threads=2).run(one, probes=PROBES2), ref1)


def test_second_input_is_its_own_sum() -> None:
    """A connection feeds the real part, one made with port="imag" the imaginary part
    (a spike of step t arrives at step t + 1)."""
    res = {}
    for port in ("real", "imag"):
        net = neurochip.Network(graded_hw())
        net.add_input("b", 3)
        net.add_neurons("rz", 2, "rf_iz", cos_decay=4096, sin_decay=0, decay_bits=12,
                        state_exp=0, vth=10**6)
        net.connect("b", "rz", np.array([[10, 0, 0], [0, 20, 0]]), port=port)
        res[port] = neurochip.Emulator(neurochip.compile(net, graded_hw())).run(
            {"b": np.eye(3, dtype=bool)[[0, 1, 2, 2]]}, probes=["rz.real", "rz.imag"]).probes
    want = np.array([[0, 0], [10, 0], [10, 20], [10, 20]])
    np.testing.assert_array_equal(res["real"]["rz.real"], want)
    np.testing.assert_array_equal(res["imag"]["rz.imag"], want)
    assert not res["real"]["rz.imag"].any() and not res["imag"]["rz.real"].any()


def test_port_round_trips_and_is_verified(loihi2: tuple[ChipImage, dict[str, Any]],
                                          tmp_path: Path) -> None:
    img, _ = loihi2
    back = ChipImage.load(img.save(tmp_path / "l2.nchip"))
    assert back.equals(img)
    ports = {c.name: c.port for c in back.connections}
    assert ports["b->rf#1"] == 1 and ports["b->rf"] == 0
    assert all("port" not in c or c["port"] == 1 for c in back.manifest()["connections"])
    bad = ChipImage.from_bytes(_bytes(img), verify=False)
    next(c for c in bad.connections if c.name == "b->at").port = 1  # a one-input model
    with pytest.raises(ImageError, match="port"):
        verify_image(bad)


@pytest.mark.parametrize("model, regs, field, err", [
    ("rf", {"sin_decay": 1, "vth": 1}, "cos_decay", NetworkError),
    ("rf", {"cos_decay": 1, "sin_decay": 1, "vth": 1, "decay_bits": 0}, "decay_bits",
     ParameterRangeError),
    ("rf", {"cos_decay": 1, "sin_decay": 1, "vth": 1 << 20, "state_exp": 6}, "vth",
     ParameterRangeError),
    ("rf_iz", {"cos_decay": 1 << 13, "sin_decay": 1, "vth": 1}, "cos_decay",
     ParameterRangeError),
    ("rf_zero", {"lct": [1, 2, 1 << 17], "lst": 0}, "lct", ParameterRangeError),
    ("atrlif", {"du": 1, "dv": 1, "delta_theta": 4097, "delta_r": 0, "theta_0": 5},
     "delta_theta", ParameterRangeError),
    ("atrlif", {"du": 1, "dv": 1, "delta_theta": 1, "delta_r": 0, "theta_0": 1 << 12},
     "theta_0", ParameterRangeError),
    ("atrlif", {"du": 1, "dv": 1, "vth": 3, "delta_theta": 1, "delta_r": 0, "theta_0": 5},
     "vth", NetworkError),
])
def test_builder_rejects_bad_loihi2_registers(model: str, regs: dict[str, Any], field: str,
                                              err: type) -> None:
    _assert_rejected(model, regs, field, err)


def test_port_imag_needs_a_two_input_model() -> None:
    net = neurochip.Network(graded_hw())
    net.add_input("in", 2)
    net.add_lif("l", 2, du=1, dv=1, vth=5)
    net.add_neurons("rf", 2, "rf", cos_decay=1, sin_decay=1, vth=1)
    with pytest.raises(NetworkError, match="has one input") as ei:
        net.connect("in", "l", np.ones((2, 2), np.int64) * 2, port="imag")
    assert ei.value.field == "port" and "in->l" in ei.value.where
    with pytest.raises(NetworkError, match="must be one of") as ei:
        net.connect("in", "rf", np.ones((2, 2), np.int64) * 2, port="b")
    assert ei.value.field == "port"
    assert net.connect("in", "rf", np.ones((2, 2), np.int64) * 2, port="imag").port == 1
    assert [c.name for c in net.connections] == ["in->rf"]


def test_rf_decays_follow_lava_float_arithmetic() -> None:
    assert nm.rf_decays(4.0, 0.0, 12) == (0, 4096)  # cos(pi/2) ~ 6e-17 truncates to 0
    cos, sin = nm.rf_decays(10.0, 0.1, 12)
    assert (cos, sin) == (int(0.9 * np.cos(np.pi / 5) * 4096), int(0.9 * np.sin(np.pi / 5) * 4096))
    lct, lst = nm.rf_zero_decays([0.0, 250.0], [1e9, 1e9], 0.001)
    assert lct.tolist()[0] == 32767 and lst.tolist()[0] == 0 and lst.tolist()[1] == 32767


def test_state_names_every_model_state(mixed: tuple[ChipImage, np.ndarray],
                                       loihi2: tuple[ChipImage, dict[str, Any]]) -> None:
    """Emulator.state() holds u, v and each model's other state variables (both backends
    alike), equal to the last probe values."""
    for img, inp, probes in ((mixed[0], _inputs(mixed[1], 3), PROBES),
                             (loihi2[0], loihi2[1], PROBES2)):
        fresh = neurochip.Emulator(img).state()
        names = {v for p in img.lif_populations for v in nm.STATE_SLOTS[p.model]}
        assert set(fresh) == names | {"u", "v"}
        assert all(a.shape == (1, img.n_neurons) and not a.any() for a in fresh.values())
        got = {}
        for be in ("numba", "reference"):
            em = neurochip.Emulator(img, backend=be)
            r = em.run(inp, probes=probes)
            got[be] = st = em.state()
            for key in probes:
                pop, _, var = key.rpartition(".")
                p = img.population(pop)
                np.testing.assert_array_equal(st[var][:, p.offset:p.offset + p.size],
                                              r.probes[key][:, -1], err_msg=f"{be} {key}")
        for k in got["numba"]:
            np.testing.assert_array_equal(got["numba"][k], got["reference"][k], err_msg=k)
    sd = mixed[0].population("sd")
    lr = mixed[0].population("lr")
    st = got_mixed = neurochip.Emulator(mixed[0]).state()
    del got_mixed
    assert not st["residue"][:, lr.offset:lr.offset + lr.size].any()
    assert {"sigma", "act", "residue", "error"} <= set(st) and sd.model == "sigma_delta"
