"""Chip images exported to Lava 0.10 run bit for bit like the emulator (both backends).

Each cross-check runs one image in Lava (``Loihi2SimCfg(select_tag="fixed_pt")``) and in
``Emulator(image)`` and ``Emulator(image, backend="reference")`` and requires identical
spikes and identical u and v of every neuron at every step. The networks are drawn from
seeded generators that use every feature of the core.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

import neurochip
from compiler.lava import (
    LAVA_MAX_DELAY,
    LAVA_READOUT_VTH,
    LavaNetwork,
    check_exportable,
    export_lava,
    run_lava,
)
from neurochip.core.errors import EmulatorInputError, LavaExportError
from neurochip.core.hw import HardwareSpec
from neurochip.core.image import ChipImage
from neurochip.testing import random_weights

pytestmark = pytest.mark.lava

V_MAX = (1 << 23) - 1


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


def feature_network(seed: int, hw: str = "loihi_like",
                    sizes: tuple[int, int, int, int, int] = (30, 25, 20, 8, 6),
                    light: bool = False) -> neurochip.Network:
    """Two inputs, three hidden layers, a readout and an unconnected bias-driven population.

    Dense and sparse synapses; self (h0, h1), recurrent (h1 -> h0), skip (in0 -> h2) and
    parallel (two h1 -> h2) connections; scalar and per-synapse delays; weight exponents
    from -3 to 2; mixed, excitatory and inhibitory weights with 4..8 weight bits; biases
    with exponents; reset to zero (Lava's LIF) and by subtraction; a non-spiking readout.
    Registers and weights are drawn from ``seed``. ``light`` makes every connection
    sparse (10% density) so that large populations fit a small chip.
    """
    rng = np.random.default_rng(seed)
    net = neurochip.Network(hw, name=f"features{seed}")
    n_h0, n_h1, n_h2, n_out, n_iso = sizes
    dims = {"in0": 24, "in1": 10, "h0": n_h0, "h1": n_h1, "h2": n_h2, "out": n_out,
            "iso": n_iso}
    net.add_input("in0", dims["in0"])
    net.add_input("in1", dims["in1"])

    def lif(name: str, reset: str = "zero", spiking: bool = True, bias: bool = True) -> None:
        n = dims[name]
        net.add_lif(
            name, n,
            du=int(rng.choice([-1, 0, int(rng.integers(1, 4095)), 4095])),
            dv=int(rng.choice([0, int(rng.integers(1, 4096)), 4096])),
            vth=int(rng.integers(50, 600)),
            bias_mant=rng.integers(-300, 500, n) if bias else 0,
            bias_exp=rng.integers(0, 8, n) if bias else 0,
            reset=reset,
            spiking=spiking,
        )

    lif("h0")
    lif("h1", reset="subtract", bias=False)
    lif("h2")
    lif("out", reset=str(rng.choice(["zero", "subtract"])), spiking=False)
    lif("iso", reset="subtract")

    def conn(pre: str, post: str, storage: str, mode: str, nwb: int, wexp: int,
             delay: int | None, dmax: int = 0, density: float = 1.0, scale: float = 1.0
             ) -> None:
        """delay: one delay for every synapse, or None for per-synapse delays 0..dmax."""
        if light:
            storage, density = "sparse", min(density, 0.1)
        shape = (dims[post], dims[pre])
        w = random_weights(rng, shape, mode, nwb, density if storage == "sparse" else 1.0,
                           scale)
        wm: Any = sp.csr_matrix(w) if storage == "sparse" else w
        nnz = wm.nnz if storage == "sparse" else w.size
        d: Any = rng.integers(0, dmax + 1, nnz) if delay is None else delay
        net.connect(pre, post, wm, weight_exp=wexp, delay=d, storage=storage,
                    sign_mode=mode, num_weight_bits=nwb)

    conn("in0", "h0", "dense", "mixed", 8, 0, 0, scale=0.6)
    conn("in1", "h0", "sparse", "excitatory", 6, 1, None, dmax=5, density=0.3, scale=0.5)
    conn("h0", "h0", "dense", "inhibitory", 8, -1, 2, scale=0.4)
    conn("h0", "h1", "dense", "mixed", 5, -3, None, dmax=7)
    conn("h1", "h1", "sparse", "mixed", 8, 0, 0, density=0.2, scale=0.5)
    conn("h1", "h0", "sparse", "inhibitory", 7, 0, 1, density=0.3, scale=0.5)
    conn("h1", "h2", "dense", "excitatory", 4, 2, 0, scale=0.3)
    conn("h1", "h2", "sparse", "inhibitory", 8, -2, None, dmax=3, density=0.3)
    conn("in0", "h2", "sparse", "mixed", 8, -2, 0, density=0.2)
    conn("h2", "out", "dense", "mixed", 8, -1, 0)
    conn("h0", "out", "sparse", "excitatory", 8, 0, None, dmax=4, density=0.2, scale=0.5)
    return net


def feature_inputs(seed: int, steps: int) -> dict[str, NDArray[np.bool_]]:
    rng = np.random.default_rng(1000 + seed)
    return {"in0": rng.random((steps, 24)) < 0.2, "in1": rng.random((steps, 10)) < 0.3}


N_BURST = 1300


def saturating_network(seed: int) -> neurochip.Network:
    """Bursts of up to 1300 host spikes drive the registers to their limits.

    ``wrap1``: a * 2^6 beyond 2^23, u wraps once; ``wrap``: beyond 3 * 2^23, where the
    single wrap leaves u outside 24 bits; ``sat``: v saturates; ``over``: weight exponent
    7, so a * 2^6 passes 2^31 (Lava's 32-bit arithmetic wraps first); ``neg``: inhibitory
    drive saturating v at -(2^23 - 1), reset by subtraction; ``ro``: a readout fed by
    the others with exponent 7.
    """
    rng = np.random.default_rng(seed)
    net = neurochip.Network("loihi_like", name=f"saturating{seed}")
    net.add_input("burst", N_BURST)
    net.add_lif("wrap", 6, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4097)),
                vth=131071)
    net.add_lif("wrap1", 6, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4097)),
                vth=int(rng.integers(0, 131072)))
    net.add_lif("sat", 6, du=4095, dv=0, vth=int(rng.integers(100_000, 131072)),
                bias_mant=rng.integers(-4096, 4096, 6), bias_exp=7)
    net.add_lif("over", 6, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 200)),
                vth=131071, reset="subtract")
    net.add_lif("neg", 6, du=-1, dv=0, vth=50_000, reset="subtract",
                bias_mant=4095, bias_exp=7)
    net.add_lif("ro", 4, du=0, dv=0, vth=0, spiking=False)
    exc = random_weights(rng, (6, N_BURST), "excitatory", 8, 1.0, 1.0) | 128
    net.connect("burst", "wrap", exc, weight_exp=1, sign_mode="excitatory")
    net.connect("burst", "wrap1", exc[:, ::-1], sign_mode="excitatory")
    net.connect("burst", "sat", exc[::-1], sign_mode="excitatory")
    mixed = np.where(rng.random((6, N_BURST)) < 0.95, 254, -256)
    net.connect("burst", "over", mixed, weight_exp=7, sign_mode="mixed")
    inh = -(random_weights(rng, (6, N_BURST), "excitatory", 8, 1.0, 1.0) | 64)
    net.connect("burst", "neg", inh, weight_exp=2, sign_mode="inhibitory")
    for src in ("wrap", "wrap1", "sat", "over", "neg"):
        net.connect(src, "ro", random_weights(rng, (4, 6), "mixed", 8), weight_exp=7,
                    delay=rng.integers(0, 3, (4, 6)), sign_mode="mixed")
    net.connect("sat", "wrap", random_weights(rng, (6, 6), "mixed", 8), weight_exp=7, delay=1)
    return net


def burst_inputs(seed: int, steps: int) -> NDArray[np.bool_]:
    """Per step, none, a tenth, about half, or all channels spike."""
    rng = np.random.default_rng(2000 + seed)
    frac = rng.choice([0.0, 0.0, 0.1, 0.45, 0.55, 0.96, 1.0], size=steps)
    return rng.random((steps, N_BURST)) < frac[:, None]


# --------------------------------------------------------------------------------------
# Cross-check
# --------------------------------------------------------------------------------------


def all_probes(image: ChipImage) -> list[str]:
    return [f"{p.name}.{v}" for p in image.lif_populations for v in "uv"]


def first_difference(a: NDArray[Any], b: NDArray[Any]) -> str:
    t, i = (int(k) for k in np.argwhere(a != b)[0])
    return f"first at step {t}, neuron {i}: Lava {a[t, i]}, emulator {b[t, i]}"


def cross_check(image: ChipImage, inputs: dict[str, NDArray[np.bool_]] | None,
                steps: int) -> dict[str, Any]:
    """Run Lava and both emulator backends; require identical spikes, u and v."""
    probes = all_probes(image)
    lava = run_lava(image, inputs, steps, probes=probes, timeout_s=240)
    runs = {}
    for backend in ("numba", "reference"):
        em = neurochip.Emulator(image, backend=backend)
        runs[backend] = em.run(inputs, steps, probes=probes)
    for backend, r in runs.items():
        assert r.spikes.keys() == lava.spikes.keys()
        for k, s in lava.spikes.items():
            assert s.shape == (steps, image.population(k).size)
            assert np.array_equal(s, r.spikes[k]), \
                f"{backend}: spikes of {k!r} differ, {first_difference(s, r.spikes[k])}"
        for k, p in lava.probes.items():
            assert p.dtype == r.probes[k].dtype and p.shape == r.probes[k].shape
            assert np.array_equal(p, r.probes[k]), \
                f"{backend}: {k} differs, {first_difference(p, r.probes[k])}"
    return {"lava": lava, **runs}


# --------------------------------------------------------------------------------------
# Bit-exact cross-checks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_feature_networks_match_lava_bit_for_bit(seed: int) -> None:
    steps = 200
    image = neurochip.compile(feature_network(seed), "loihi_like")
    out = cross_check(image, feature_inputs(seed, steps), steps)
    spikes = out["lava"].spikes
    # The comparison is only meaningful if the spiking populations do spike.
    for p in image.lif_populations:
        if p.spiking and p.name != "iso":
            assert spikes[p.name].any(), f"{p.name} never spiked"
    assert not spikes["out"].any()  # the readout never spikes


def test_multi_core_placement_matches_lava() -> None:
    steps = 200
    image = neurochip.compile(feature_network(1, "tiny4", (90, 40, 30, 10, 6), light=True),
                              "tiny4")
    assert len(image.cores) > 1
    assert any(len(p.slices) > 1 for p in image.lif_populations)
    out = cross_check(image, feature_inputs(1, steps), steps)
    assert all(out["lava"].spikes[k].any() for k in ("h0", "h1", "h2"))


def test_saturating_registers_match_lava() -> None:
    steps = 200
    image = neurochip.compile(saturating_network(3), "loihi_like")
    out = cross_check(image, {"burst": burst_inputs(3, steps)}, steps)
    probes = out["lava"].probes
    # Every limit was reached: v saturated both ways, u wrapped (including values one
    # wrap leaves outside 24 bits, i.e. beyond the 32-bit wrap's reach of +-2^31 too).
    assert (probes["sat.v"] == V_MAX).any() or out["lava"].spikes["sat"].any()
    assert (probes["neg.v"] == -V_MAX).any()
    assert (probes["ro.v"] == V_MAX).any() or (probes["ro.v"] == -V_MAX).any()
    assert (np.abs(probes["wrap.u"]) > (1 << 23)).any()
    assert (probes["wrap1.u"] < 0).any() and (probes["wrap1.u"] > 0).any()
    assert (np.abs(probes["over.u"]) > (3 << 23)).any()


def test_exported_network_without_inputs_runs_any_length() -> None:
    # neurochip.export_lava(image) (the public API) gives silent sources; bias drives the net.
    net = neurochip.Network()
    net.add_input("in", 3)
    net.add_lif("a", 4, du=4000, dv=300, vth=100, bias_mant=[900, 1000, -5, 2000], bias_exp=3)
    net.add_lif("b", 3, du=-1, dv=4096, vth=60, reset="subtract")
    net.connect("in", "a", np.full((4, 3), 100))
    net.connect("a", "b", random_weights(np.random.default_rng(0), (3, 4), "mixed"),
                weight_exp=-1, delay=4)
    image = neurochip.compile(net, "loihi_like")
    lnet = neurochip.export_lava(image)
    assert isinstance(lnet, LavaNetwork) and lnet.steps == 1 and not lnet.active_inputs
    r = lnet.run(80, probes=all_probes(image), timeout_s=240)
    em = neurochip.Emulator(image).run(steps=80, probes=all_probes(image))
    for k in r.spikes:
        assert np.array_equal(r.spikes[k], em.spikes[k])
    for k in r.probes:
        assert np.array_equal(r.probes[k], em.probes[k])
    assert r.spikes["a"].any()


# --------------------------------------------------------------------------------------
# What the export builds
# --------------------------------------------------------------------------------------


def lava_class(proc: Any) -> str:
    return f"{type(proc).__module__}.{type(proc).__name__}"


def test_export_maps_every_part_to_the_matching_lava_process(tmp_path: Any) -> None:
    image = neurochip.compile(feature_network(0), "loihi_like")
    x = feature_inputs(0, 20)
    lnet = export_lava(image, x, steps=30)
    assert lnet.steps == 30
    for name, src in lnet.sources.items():
        assert lava_class(src) == "lava.proc.io.source.RingBuffer"
        data = src.data.init
        assert data.shape == (image.population(name).size, 30)
        assert np.array_equal(data[:, :20].T, x[name]) and not data[:, 20:].any()
    for p in image.lif_populations:
        proc = lnet[p.name]
        if not (p.spiking and p.reset == "subtract"):
            # reset to zero, and every readout: Lava's own LIF and its own model
            assert lava_class(proc) == "lava.proc.lif.process.LIF"
            assert proc not in lnet.models
            assert proc.vth.init == (p.vth if p.spiking else LAVA_READOUT_VTH)
        else:
            assert type(proc).__name__ == "ChipLIF"
            bases = [f"{k.__module__}.{k.__name__}" for k in type(proc).__mro__]
            assert "lava.proc.lif.process.LIF" in bases
            assert proc.proc_params["reset"] == p.reset
            assert proc.proc_params["spiking"] == p.spiking
            assert proc in lnet.models
            assert proc.vth.init == p.vth
        assert proc.du.init == p.du and proc.dv.init == p.dv
        bm = image.arrays["neurons/bias_mant"][p.offset: p.offset + p.size]
        assert np.array_equal(proc.bias_mant.init, bm)
        # the placement hint: our cores for this process's neurons
        hint = proc.proc_params["neurochip_placement"]
        assert hint["cores"] == sorted(set(p.cores))
        assert sum(s["count"] for s in hint["slices"]) == p.size
    expected = {("dense", False): "dense.process.Dense",
                ("dense", True): "dense.process.DelayDense",
                ("sparse", False): "sparse.process.Sparse",
                ("sparse", True): "sparse.process.DelaySparse"}
    for c in image.connections:
        proc = lnet[c.name]
        delayed = c.has_delays or c.delay > 0
        assert lava_class(proc) == "lava.proc." + expected[(c.storage, delayed)], c.name
        # Everything Lava would otherwise detect or default is passed explicitly.
        mode = proc.proc_params["sign_mode"]
        assert lava_class(mode) == "lava.utils.weightutils.SignMode"
        assert mode.name == c.sign_mode.upper()
        assert proc.proc_params["weight_exp"] == c.weight_exp
        assert proc.proc_params["num_weight_bits"] == c.num_weight_bits
        w = proc.weights.init
        w = w.toarray() if sp.issparse(w) else w
        assert np.array_equal(w, image.weights(c.name))
        if c.has_delays or c.delay > 0:
            d = proc.delays.init
            d = d.toarray() if sp.issparse(d) else d
            assert np.array_equal(d, image.delays(c.name))
    # "iso" has no connection: one empty link joins it to the rest so one run runs all.
    assert len(lnet.links) == 1 and lnet.links[0].weights.init.nnz == 0
    assert set(lnet.processes) == {p.name for p in image.populations} | {
        c.name for c in image.connections}
    cfg = lnet.run_config()
    assert cfg.select_tag == "fixed_pt" and cfg.exception_proc_model_map == lnet.models
    # The public entry point takes an image or a saved image file.
    path = image.save(tmp_path / "m.nchip")
    again = neurochip.export_lava(path)
    assert set(again.processes) == set(lnet.processes)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def small_image(hw: HardwareSpec | str = "loihi_like", delay: int = 0) -> ChipImage:
    net = neurochip.Network(hw)
    net.add_input("in", 4)
    net.add_lif("a", 3, du=10, dv=20, vth=30, bias_mant=[1, 2, 3], bias_exp=1)
    net.add_lif("b", 2, du=10, dv=20, vth=30, reset="subtract")
    net.connect("in", "a", np.array([[2, -4, 6, 0]] * 3), delay=delay)
    net.connect("a", "b", sp.csr_matrix(np.array([[10, 0, 0], [0, 0, 20]])),
                storage="sparse")
    return neurochip.compile(net, hw)


def spec_with(**formats: int) -> HardwareSpec:
    d = neurochip.load_hw("loihi_like").to_dict()
    d["name"] = "variant"
    d["formats"].update(formats)
    return HardwareSpec.from_dict(d)


def tampered(change: Any) -> ChipImage:
    image = small_image()
    change(image)
    return image


def _set(obj: Any, **kw: Any) -> None:
    for k, v in kw.items():
        setattr(obj, k, v)


def _put(image: ChipImage, key: str, index: int, value: int) -> None:
    image.arrays[key] = image.arrays[key].astype(np.int32)
    image.arrays[key][index] = value


ERROR_CASES = {
    "u_bits": (lambda: small_image(spec_with(u_bits=16)), "hardware spec 'variant'",
               "formats.u_bits"),
    "vth_shift": (lambda: small_image(spec_with(vth_shift=4)), "hardware spec 'variant'",
                  "formats.vth_shift"),
    "delay": (lambda: small_image(spec_with(delay_bits=7, max_delay=100), delay=70),
              "connection 'in->a'", "delay"),
    "learning": (lambda: tampered(lambda im: _set(im, learning={"rule": "stdp"})),
                 "chip image", "learning"),
    "plastic": (lambda: tampered(lambda im: _set(im.connections[1], plastic=True)),
                "connection 'a->b'", "plastic"),
    "sign_mode": (lambda: tampered(lambda im: _set(im.connections[0], sign_mode="null")),
                  "connection 'in->a'", "sign_mode"),
    "weights": (lambda: tampered(lambda im: _set(im.connections[0], num_weight_bits=5)),
                "connection 'in->a'", "weights"),
    "num_weight_bits": (lambda: tampered(lambda im: _set(im.connections[1], num_weight_bits=0)),
                        "connection 'a->b'", "num_weight_bits"),
    "du_per_neuron": (lambda: tampered(lambda im: _set(im.population("a"), du=[1, 2, 3])),
                      "population 'a'", "du"),
    "reset": (lambda: tampered(lambda im: _set(im.population("b"), reset="hold")),
              "population 'b'", "reset"),
    "bias_int16": (lambda: tampered(lambda im: _put(im, "neurons/bias_mant", 1, 40_000)),
                   "population 'a'", "bias_mant"),
    "bias_24bit": (lambda: tampered(lambda im: (_put(im, "neurons/bias_mant", 4, 4095),
                                                _put(im, "neurons/bias_exp", 4, 12))),
                   "population 'b'", "bias_exp"),
    "shape": (lambda: tampered(lambda im: _set(im.connections[1], n_post=3)),
              "connection 'a->b'", "shape"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_what_lava_cannot_express_raises_a_typed_error(case: str) -> None:
    make, where, fld = ERROR_CASES[case]
    image = make()
    with pytest.raises(LavaExportError) as err:
        export_lava(image)
    assert err.value.where == where and err.value.field == fld, str(err.value)
    with pytest.raises(LavaExportError):
        check_exportable(image)
    with pytest.raises(LavaExportError):
        neurochip.export_lava(image)


def test_lava_delay_limit_is_what_lava_accepts() -> None:
    ok = small_image(spec_with(delay_bits=7, max_delay=100), delay=LAVA_MAX_DELAY)
    check_exportable(ok)
    assert export_lava(ok).synapses["in->a"].delays.init.max() == LAVA_MAX_DELAY


@pytest.mark.parametrize("inputs, steps, fld", [
    ({"nope": np.zeros((5, 4), bool)}, 5, "inputs"),
    ({"in": np.zeros((2, 5, 4), bool)}, 5, "in"),
    ({"in": np.zeros((5, 3), bool)}, 5, "in"),
    ({"in": np.full((5, 4), 2)}, 5, "in"),
    ({"in": np.zeros((5, 4), bool)}, 4, "steps"),
    (None, -1, "steps"),
])
def test_bad_inputs_raise_typed_errors(inputs: Any, steps: int, fld: str) -> None:
    with pytest.raises(EmulatorInputError) as err:
        run_lava(small_image(), inputs, steps)
    assert err.value.field == fld


def test_bad_runs_raise_typed_errors_before_starting_lava() -> None:
    image = small_image()
    x = {"in": np.ones((5, 4), bool)}
    with pytest.raises(EmulatorInputError, match="bad probe") as err:
        export_lava(image, x).run(probes=["a.w"])
    assert err.value.field == "probes"
    with pytest.raises(EmulatorInputError) as err:
        export_lava(image, x).run(probes=["in.v"])
    with pytest.raises(EmulatorInputError) as err:
        export_lava(image, x).run(spikes=["in"])
    assert err.value.field == "spikes"
    with pytest.raises(EmulatorInputError, match="repeats its data") as err:
        export_lava(image, x).run(6)  # a RingBuffer would replay the inputs
    lnet = export_lava(image, x)
    r = lnet.run(0)  # nothing to run: empty results, Lava is not started
    assert r.spikes["a"].shape == (0, 3)
    with pytest.raises(LavaExportError, match="already run"):
        lnet.run(5)


def lava_children() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.is_alive()]


def test_a_failing_lava_worker_raises_instead_of_hanging() -> None:
    # Break a process after export, as a Lava-side failure: DelayDense's bit-accurate model
    # raises in its worker on the first step. Lava itself would then wait forever.
    image = small_image(delay=3)
    lnet = export_lava(image, {"in": np.ones((50, 4), bool)})
    lnet.synapses["in->a"].delays.init = np.full((3, 4), 70)
    t0 = time.monotonic()
    with pytest.raises(LavaExportError, match="DelayDense") as err:
        lnet.run(probes=["a.v"], timeout_s=120)
    assert time.monotonic() - t0 < 60
    assert err.value.where == "lava runtime"
    assert not lava_children()


def test_a_run_past_its_timeout_is_stopped() -> None:
    lnet = export_lava(small_image())
    t0 = time.monotonic()
    with pytest.raises(LavaExportError, match="did not finish in time"):
        lnet.run(10_000_000, spikes=None, timeout_s=2)
    assert time.monotonic() - t0 < 60
    assert not lava_children()
