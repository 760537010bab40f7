"""Every neuron model and graded spikes exported to Lava's own processes run bit for bit
like the emulator.

``lif_reset`` -> ``LIFReset``, ``ternary_lif`` -> ``TernaryLIF``, ``sigma`` / ``delta`` /
``sigma_delta`` -> ``lava.proc.sdn``'s ``Sigma`` / ``Delta`` / ``SigmaDelta``, and graded
connections -> ``Dense`` / ``Sparse`` / ``DelayDense`` / ``DelaySparse`` with
``num_message_bits``. Each network's registers, weights, delays and graded inputs are drawn
from a seed; it runs once in Lava (``Loihi2SimCfg(select_tag="fixed_pt")``) and on both
emulator backends, and every payload and every state variable must agree at every step.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import neurochip
from compiler.lava import check_exportable, export_lava
from compiler.lava.plan import export_summary
from neurochip.core.errors import EmulatorInputError, LavaExportError
from neurochip.core.hw import HardwareSpec, load_hw
from neurochip.core.neuron_models import STATE_SLOTS

pytestmark = pytest.mark.lava

T = 40


def graded_hw(bits: int = 24) -> HardwareSpec:
    d = load_hw("loihi_like").to_dict()
    d["name"] = f"loihi_like_graded{bits}"
    d["formats"]["graded_payload_bits"] = bits
    return HardwareSpec.from_dict(d)


def _w(rng: np.random.Generator, shape: tuple[int, int], lo: int = -60, hi: int = 60,
       density: float = 1.0) -> NDArray[np.int64]:
    """Even weights (mixed 8-bit weights Lava keeps unchanged), some zero."""
    W = rng.integers(lo, hi, shape) * 2
    W[rng.random(shape) >= density] = 0
    return W


def model_network(seed: int) -> tuple[neurochip.Network, dict[str, Any]]:
    """Graded and binary inputs -> sigma-delta, delta, sigma, LIF-reset, ternary LIF and LIF
    populations, through dense and sparse connections with and without delays (scalar
    and per synapse); all registers drawn from ``seed``. Returns the network and its
    inputs."""
    rng = np.random.default_rng(seed)
    net = neurochip.Network(graded_hw(), name=f"models{seed}")
    net.add_input("g", 6, payload_bits=int(rng.integers(8, 17)))
    net.add_input("b", 5)
    e = [int(rng.integers(0, 3)), int(rng.integers(0, 3))]
    net.add_neurons("sd", 5, "sigma_delta", vth=int(rng.integers(1, 40)),
                    bias=rng.integers(-50, 50, 5), act_mode=int(rng.integers(0, 2)),
                    cum_error=int(rng.integers(0, 2)), spike_exp=e[0], state_exp=e[1])
    net.add_neurons("dl", 4, "delta", vth=int(rng.integers(1, 30)),
                    cum_error=int(rng.integers(0, 2)), spike_exp=int(rng.integers(0, 2)),
                    state_exp=int(rng.integers(0, 3)))
    net.add_neurons("sg", 4, "sigma")
    ri = int(rng.integers(3, 9))
    net.add_neurons("lr", 4, "lif_reset", du=int(rng.integers(0, 4096)),
                    dv=int(rng.integers(0, 4096)), vth=int(rng.integers(50, 400)),
                    bias_mant=rng.integers(-100, 100, 4), bias_exp=rng.integers(0, 4, 4),
                    reset_interval=ri, reset_offset=int(rng.integers(0, ri)))
    net.add_neurons("tl", 3, "ternary_lif", du=int(rng.integers(0, 4096)),
                    dv=int(rng.integers(0, 4096)), vth_hi=int(rng.integers(20, 200)),
                    vth_lo=-int(rng.integers(20, 200)), bias_mant=rng.integers(-50, 50, 3),
                    bias_exp=rng.integers(0, 3, 3))
    net.add_lif("l", 3, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 1024)),
                vth=int(rng.integers(5, 40)), bias_mant=rng.integers(-10, 40, 3))
    net.connect("g", "sd", _w(rng, (5, 6)), -2, storage="dense")
    net.connect("g", "dl", _w(rng, (4, 6), density=0.7), 0, storage="sparse",
                delay=int(rng.integers(1, 4)))
    net.connect("b", "lr", _w(rng, (4, 5), 0, 100), 0, storage="sparse")
    net.connect("sd", "sg", _w(rng, (4, 5), density=0.6), 1, storage="sparse",
                delay=rng.integers(0, 4, (4, 5)))
    net.connect("sd", "lr", _w(rng, (4, 5), -20, 20), -3, storage="dense")
    net.connect("dl", "sd", _w(rng, (5, 4), -10, 10, 0.5), -2, storage="dense",
                delay=rng.integers(0, 3, (5, 4)))
    net.connect("lr", "tl", _w(rng, (3, 4), -100, 120), 0, storage="dense")
    net.connect("tl", "l", _w(rng, (3, 3), -100, 120), 0, storage="dense")
    net.connect("tl", "tl", _w(rng, (3, 3), -40, 40), 0, storage="sparse")
    bits = net.population("g").payload_bits
    hi = (1 << (bits - 1)) - 1
    x = {"g": (rng.integers(-hi // 4, hi // 4, (T, 6)) * (rng.random((T, 6)) < 0.6)),
         "b": rng.random((T, 5)) < 0.3}
    return net, x


def _probes(image: neurochip.ChipImage) -> list[str]:
    return [f"{p.name}.{v}" for p in image.lif_populations for v in STATE_SLOTS[p.model]]


@pytest.fixture(scope="module", params=[3, 17])
def runs(request: Any) -> dict[str, Any]:
    net, x = model_network(request.param)
    img = neurochip.compile(net, graded_hw())
    probes = _probes(img)
    em = {be: neurochip.Emulator(img, backend=be).run(x, probes=probes)
          for be in ("numba", "reference")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every process is Lava's own: no warning
        lnet = export_lava(img, x, stock_only=True)
    return {"img": img, "lnet": lnet, "lava": lnet.run(probes=probes, timeout_s=300),
            "em": em}


def test_every_model_is_lavas_own_process(runs: dict[str, Any]) -> None:
    lnet = runs["lnet"]
    kinds = {p.name: (p.lava_process, p.stock) for p in lnet.plan}
    assert kinds["sd"] == ("SigmaDelta", True) and kinds["dl"] == ("Delta", True)
    assert kinds["sg"] == ("Sigma", True) and kinds["lr"] == ("LIFReset", True)
    assert kinds["tl"] == ("TernaryLIF", True) and kinds["l"] == ("LIF", True)
    assert kinds["g->dl"] == ("DelaySparse", True) and kinds["dl->sd"] == ("DelayDense", True)
    assert not lnet.models  # no model of ours
    from lava.proc.lif.process import LIFReset, TernaryLIF
    from lava.proc.sdn.process import Delta, Sigma, SigmaDelta

    for name, cls in (("sd", SigmaDelta), ("dl", Delta), ("sg", Sigma), ("lr", LIFReset),
                      ("tl", TernaryLIF)):
        assert type(lnet[name]) is cls, name
        assert lnet[name].name == name
        assert lnet[name].proc_params["neurochip_placement"]["lava_process"] == cls.__name__
    img = runs["img"]
    # graded connections carry their pre population's payload width, binary ones none
    for c in img.connections:
        bits = int(lnet[c.name].num_message_bits.init)
        assert bits == img.population(c.pre).payload_bits, c.name
    assert int(lnet["sd->sg"].num_message_bits.init) == 24
    assert int(lnet["b->lr"].num_message_bits.init) == 0
    assert export_summary(img)["stock"] is True


def test_payloads_equal_emulator(runs: dict[str, Any]) -> None:
    lava = runs["lava"]
    for pop in ("sd", "dl", "sg", "lr", "tl", "l"):
        for be, r in runs["em"].items():
            assert lava.spikes[pop].dtype == r.spikes[pop].dtype, pop
            np.testing.assert_array_equal(lava.spikes[pop], r.spikes[pop],
                                          err_msg=f"{pop} ({be})")
        assert np.count_nonzero(lava.spikes[pop]) > 0, f"{pop} never spikes"
    tl = lava.spikes["tl"]
    assert (tl > 0).any() or (tl < 0).any()
    assert np.abs(lava.spikes["sd"]).max() > 1  # graded, not binary


def test_state_equals_emulator(runs: dict[str, Any]) -> None:
    lava = runs["lava"]
    for key in _probes(runs["img"]):
        for be, r in runs["em"].items():
            np.testing.assert_array_equal(lava.probes[key], r.probes[key],
                                          err_msg=f"{key} ({be})")
    assert np.abs(lava.probes["sd.sigma"]).max() > 0
    assert np.abs(lava.probes["lr.v"]).max() > 0


def test_bias_mantissas_replace_the_images() -> None:
    net, x = model_network(5)
    img = neurochip.compile(net, graded_hw())
    b = {"lr": np.array([300, -200, 150, 90]), "tl": np.array([40, -60, 0])}
    # the reference backend: the numba backend's run with replaced biases differs from it
    # (and from Lava) on networks with graded connections (an emulator issue)
    em = neurochip.Emulator(img, backend="reference").run(x, bias=b, probes=["lr.v", "tl.v"])
    r = export_lava(img, x, bias=b).run(probes=["lr.v", "tl.v"], timeout_s=300)
    for key in ("lr.v", "tl.v"):
        np.testing.assert_array_equal(r.probes[key], em.probes[key], err_msg=key)
    for pop in ("tl", "l"):
        np.testing.assert_array_equal(r.spikes[pop], em.spikes[pop], err_msg=pop)
    # the bias changes the run: the comparison is not vacuous
    plain = neurochip.Emulator(img, backend="reference").run(x, probes=["lr.v"])
    assert not np.array_equal(plain.probes["lr.v"], em.probes["lr.v"])


def test_bad_bias_and_payloads_are_refused() -> None:
    net, _ = model_network(5)
    img = neurochip.compile(net, graded_hw())
    with pytest.raises(EmulatorInputError, match="no LIF population 'sd'"):
        export_lava(img, bias={"sd": np.zeros(5, int)})
    with pytest.raises(EmulatorInputError, match=r"expected integers of shape \(4,\)"):
        export_lava(img, bias={"lr": np.zeros(3, int)})
    with pytest.raises(EmulatorInputError, match="outside the bias mantissa"):
        export_lava(img, bias={"lr": np.full(4, 1 << 15)})
    bits = img.population("g").payload_bits
    bad = np.zeros((4, 6), np.int64)
    bad[2, 1] = 1 << (bits - 1)
    with pytest.raises(EmulatorInputError, match=f"outside its {bits}-bit range"):
        export_lava(img, {"g": bad})
    with pytest.raises(EmulatorInputError, match="must hold integer payloads"):
        export_lava(img, {"g": np.full((4, 6), 0.5)})
    with pytest.raises(EmulatorInputError, match=r"bad probe 'sg\.v'"):
        export_lava(img).run(3, probes=["sg.v"])


def test_models_lava_lacks_are_refused_with_the_reason() -> None:
    net = neurochip.Network("loihi_like")
    net.add_input("in", 4)
    net.add_lif("h", 3, du=np.array([100, 200, 300]), dv=np.array([10, 20, 30]), vth=40)
    net.connect("in", "h", np.full((3, 4), 20), 0)
    img = neurochip.compile(net, "loihi_like")
    assert img.population("h").model == "lif_per_neuron"
    with pytest.raises(LavaExportError, match=r"population 'h'.*'lif_per_neuron'.*once per "
                                              "population"):
        check_exportable(img)
    assert export_summary(img)["exportable"] is False


def test_the_models_example_of_the_docs_runs(capsys: Any) -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "lava.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    (code,) = [b for b in blocks if "sigma_delta" in b]
    exec(compile(code, str(doc), "exec"), {})
    assert capsys.readouterr().out.split() == ["SigmaDelta", "LIFReset", "24", "int32", "True",
                                               "True"]
