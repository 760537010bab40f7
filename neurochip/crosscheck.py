"""Cross-check of the cost model against SANA-FE (PyPI ``sanafe``), an independent
neuromorphic simulator whose Loihi architecture is calibrated against measured silicon.

One network description (:class:`Case`: populations, integer weight matrices, input spike
trains) is compiled and run here, and built again in SANA-FE with ``sanafe.load_loihi()``
with every neuron on the core our placement gave it (our tile (x, y) is SANA-FE's tile
``x * height + y``: SANA-FE numbers tiles column-major). Both run the same input spikes.

Neurons where the two models coincide: the current is not kept from step to step
(``du = 4095``; SANA-FE ``input_decay = 0``), the membrane is either kept (``dv = 0``;
``leak_decay = 1``) or cleared every step (``dv = 4096``; ``leak_decay = 0`` and a reverse
threshold at the threshold, so that a neuron below threshold is left at 0 as ours is); spike
when v > threshold, reset to 0, no bias. Weights are integers (weight exponent 0), so both
add the same numbers and the spike counts must be equal.

What is compared per step: energy (SANA-FE's total less the ``message_out`` energy of the
host input messages, which our model does not charge: host spikes are not sent by a core
here) and latency (SANA-FE's ``detailed`` timing model). SANA-FE has three synapse units
(dense, sparse, conv) with different costs; our chip has one synaptic operation, so every
connection uses SANA-FE's dense unit (``loihi_dense_synapse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurochip.core.hw import HardwareSpec, load_hw
from neurochip.core.image import ChipImage
from neurochip.core.network import Network

__all__ = ["Case", "Figures", "cases", "compare", "run_ours", "run_sanafe", "spec_for"]

#: SANA-FE's energy per message sent (axon_out.message_out, J) in its Loihi architecture
SANAFE_MESSAGE_OUT_J = 111.0e-12


@dataclass(frozen=True)
class Layer:
    name: str
    size: int
    vth: int
    keep_v: bool  # True: integrate-and-fire (v kept); False: v cleared every step


@dataclass(frozen=True)
class Conn:
    pre: str
    post: str
    w: NDArray[np.int64]  # (post, pre) integer weights
    storage: str  # "dense" (every pair a synapse) or "sparse" (non-zero weights only)


@dataclass(frozen=True)
class Case:
    """One network and its input spikes (steps, n_in) bool."""

    name: str
    kind: str
    n_in: int
    layers: tuple[Layer, ...]
    conns: tuple[Conn, ...]
    spikes: NDArray[np.bool_]
    core_neurons: int = 64  # neurons per core (a small core spreads a network over tiles)
    note: str = ""


@dataclass
class Figures:
    """Per-step energy (pJ) and latency (ns), and spikes per LIF population and neuron."""

    energy_pj: NDArray[np.float64]
    latency_ns: NDArray[np.float64]
    spike_counts: dict[str, NDArray[np.int64]]
    extra: dict[str, Any] = field(default_factory=dict)


def _weights(rng: np.random.Generator, post: int, pre: int, density: float, lo: int,
             hi: int) -> NDArray[np.int64]:
    w = 2 * rng.integers(lo, hi + 1, (post, pre))  # mixed-sign chip weights are even
    mask = rng.random((post, pre)) < density
    out: NDArray[np.int64] = np.where(mask, w, 0).astype(np.int64)
    return out


def _conv(rng: np.random.Generator, side: int, k: int, maps: int) -> NDArray[np.int64]:
    """A valid k x k convolution of a side x side image into `maps` feature maps."""
    o = side - k + 1
    ker = rng.integers(-2, 7, (maps, k, k))
    ker[ker == 0] = 1
    w = np.zeros((maps * o * o, side * side), np.int64)
    for m in range(maps):
        for y in range(o):
            for x in range(o):
                for dy in range(k):
                    for dx in range(k):
                        w[(m * o + y) * o + x, (y + dy) * side + x + dx] = \
                            2 * ker[m, dy, dx]
    return w


def cases(steps: int = 20, small: bool = False, seed: int = 0) -> list[Case]:
    """The cross-check networks: dense, sparse, recurrent, convolutional and deep ones at
    several input rates. ``small`` keeps a few tiny ones (for the test suite)."""
    rng = np.random.default_rng(seed)

    def inp(n: int, rate: float) -> NDArray[np.bool_]:
        out: NDArray[np.bool_] = rng.random((steps, n)) < rate
        return out

    out: list[Case] = []
    sizes = (16, 24) if small else (64, 128)
    n_in, n_h = sizes
    for rate in ((0.1, 0.4) if small else (0.05, 0.2, 0.5)):
        out.append(Case(f"dense_r{int(rate * 100):02d}", "dense", n_in,
                        (Layer("A", n_h, 24, False),),
                        (Conn("in", "A", _weights(rng, n_h, n_in, 1.0, -3, 6), "dense"),),
                        inp(n_in, rate), core_neurons=16 if small else 64))
    for rate in ((0.3,) if small else (0.1, 0.4)):
        out.append(Case(f"sparse_r{int(rate * 100):02d}", "sparse", n_in,
                        (Layer("A", n_h, 10, False), Layer("B", n_h // 2, 8, False)),
                        (Conn("in", "A", _weights(rng, n_h, n_in, 0.15, -2, 8), "sparse"),
                         Conn("A", "B", _weights(rng, n_h // 2, n_h, 0.2, -2, 8), "sparse")),
                        inp(n_in, rate), core_neurons=16 if small else 64))
    for rate in ((0.2,) if small else (0.1, 0.3)):
        out.append(Case(f"recurrent_r{int(rate * 100):02d}", "recurrent", n_in,
                        (Layer("R", n_h, 20, False),),
                        (Conn("in", "R", _weights(rng, n_h, n_in, 0.5, -2, 8), "dense"),
                         Conn("R", "R", _weights(rng, n_h, n_h, 0.1, -4, 5), "sparse")),
                        inp(n_in, rate), core_neurons=16 if small else 64))
    side = 6 if small else 10
    for rate in ((0.3,) if small else (0.2, 0.5)):
        w = _conv(rng, side, 3, 2 if small else 4)
        out.append(Case(f"conv_r{int(rate * 100):02d}", "conv", side * side,
                        (Layer("C", w.shape[0], 16, False),),
                        (Conn("in", "C", w, "sparse"),),
                        inp(side * side, rate), core_neurons=16 if small else 64))
    if not small:
        out.append(Case("deep_if_r20", "dense IF", n_in,
                        (Layer("A", n_h, 80, True), Layer("B", 64, 60, True),
                         Layer("C", 10, 40, True)),
                        (Conn("in", "A", _weights(rng, n_h, n_in, 1.0, -2, 5), "dense"),
                         Conn("A", "B", _weights(rng, 64, n_h, 1.0, -2, 5), "dense"),
                         Conn("B", "C", _weights(rng, 10, 64, 1.0, -2, 6), "dense")),
                        inp(n_in, 0.2), core_neurons=64,
                        note="integrate-and-fire: SANA-FE updates every neuron holding a "
                             "non-zero potential, ours only neurons with input or a spike"))
    return out


def spec_for(hw: str | HardwareSpec, case: Case) -> HardwareSpec:
    """``hw`` with ``case.core_neurons`` neurons per core (all else unchanged)."""
    base = load_hw(hw).to_dict()
    base["core"]["max_neurons"] = case.core_neurons
    return HardwareSpec.from_dict(base, source=f"{base['name']} ({case.core_neurons} neurons "
                                                f"per core)")


def build_network(case: Case) -> Network:
    net = Network()
    net.add_input("in", case.n_in)
    for ly in case.layers:
        net.add_lif(ly.name, ly.size, du=4095, dv=0 if ly.keep_v else 4096, vth=ly.vth)
    for c in case.conns:
        net.connect(c.pre, c.post, c.w, weight_exp=0, storage=c.storage)  # type: ignore[arg-type]
    return net


def compile_case(case: Case, hw: str | HardwareSpec) -> ChipImage:
    from neurochip.api import compile as compile_model

    return compile_model(build_network(case), spec_for(hw, case), placement="greedy")


def run_ours(case: Case, hw: str | HardwareSpec, image: ChipImage | None = None) -> Figures:
    """Our emulator on ``case`` for the hardware ``hw``."""
    from emulator.chip import Emulator

    img = image if image is not None else compile_case(case, hw)
    r = Emulator(img).run({"in": case.spikes}, spikes="all")
    return Figures(r.energy_per_step.astype(np.float64), r.latency_ns.astype(np.float64),
                   {n: s.sum(axis=0).astype(np.int64) for n, s in r.spikes.items()},
                   {"syn_ops": int(r.counters["syn_ops"].sum()),
                    "messages": int(r.counters["messages"].sum()),
                    "cores": len(r.cores)})


def _placement(image: ChipImage) -> dict[str, list[tuple[int, int, int]]]:
    out: dict[str, list[tuple[int, int, int]]] = {}
    for p in image.lif_populations:
        out[p.name] = [(int(c), int(a), int(n)) for c, a, n in p.slices]
    return out


def run_sanafe(case: Case, image: ChipImage, timing_model: str = "detailed") -> Figures:
    """SANA-FE's Loihi on ``case``, every neuron on the core ``image`` placed it on."""
    import sanafe

    arch = sanafe.load_loihi()
    hw = image.hw
    height = hw.mesh.tiles_y

    def sf_core(core: int) -> Any:
        _, x, y = hw.core_position(core)
        return arch.tiles[x * height + y].cores[core % hw.mesh.cores_per_tile]

    net = sanafe.Network()
    inp = net.create_neuron_group("in", case.n_in, model_attributes={},
                                  soma_hw_name="loihi_inputs")
    # host spikes enter at the I/O tile: the input neurons sit on its first core
    io_core = (hw.mesh.io_tile[1] * hw.mesh.tiles_x + hw.mesh.io_tile[0]) \
        * hw.mesh.cores_per_tile
    steps = case.spikes.shape[0]
    for i, n in enumerate(inp.neurons):
        n.set_attributes(soma_hw_name=f"loihi_inputs[{i}]",
                         model_attributes={"spikes": [int(s) for s in case.spikes[:, i]]},
                         log_spikes=False)
        n.map_to_core(sf_core(io_core))
    groups = {"in": inp}
    place = _placement(image)
    for ly in case.layers:
        attrs: dict[str, Any] = {"threshold": float(ly.vth), "reset": 0.0,
                                 "reset_mode": "hard", "input_decay": 0.0,
                                 "leak_decay": 1.0 if ly.keep_v else 0.0}
        if not ly.keep_v:
            # below threshold, leave the neuron at 0 as our cleared membrane is
            attrs |= {"reverse_threshold": float(ly.vth) + 0.5, "reverse_reset": 0.0,
                      "reverse_reset_mode": "hard"}
        g = net.create_neuron_group(ly.name, ly.size, model_attributes=attrs,
                                    soma_hw_name="loihi_lif",
                                    default_synapse_hw_name="loihi_dense_synapse",
                                    log_spikes=True)
        for core, start, n in place[ly.name]:
            for j in range(start, start + n):
                g.neurons[j].map_to_core(sf_core(core))
        groups[ly.name] = g
    for c in case.conns:
        pre, post = groups[c.pre], groups[c.post]
        if c.storage == "dense":
            # SANA-FE's dense list is row-major over (pre, post)
            pre.connect_neurons_dense(post, {"weight": c.w.T.astype(float).ravel().tolist()})
        else:
            qs, ps = np.nonzero(c.w)
            pre.connect_neurons_sparse(post, {"weight": c.w[qs, ps].astype(float).tolist()},
                                       list(zip(ps.tolist(), qs.tolist())))
    chip = sanafe.SpikingChip(arch)
    chip.load(net)
    res = chip.sim(steps, timing_model=timing_model, spike_trace=True, perf_trace=True,
                   message_trace=True, processing_threads=1)
    perf = res["perf_trace"]
    host_msgs = np.array([sum(1 for m in step if not m["placeholder"]
                              and m["src_neuron_group_id"] == "in")
                          for step in res["message_trace"]], np.int64)
    energy = np.asarray(perf["total_energy"], np.float64) - host_msgs * SANAFE_MESSAGE_OUT_J
    counts = {ly.name: np.zeros(ly.size, np.int64) for ly in case.layers}
    for step in res["spike_trace"]:
        for a in step:
            gname = a.group_name if hasattr(a, "group_name") else str(a).split(".")[0]
            if gname in counts:
                counts[gname][a.neuron_offset] += 1
    return Figures(energy * 1e12, np.asarray(perf["sim_time"], np.float64) * 1e9, counts,
                   {"spikes": int(res["spikes"]), "host_messages": int(host_msgs.sum())})


def compare(case: Case, variants: Mapping[str, str | HardwareSpec] | None = None,
            timing_model: str = "detailed", simple: bool = True) -> dict[str, Any]:
    """Per-step mean energy and latency of our model (for each hardware variant) and of
    SANA-FE (its ``timing_model``, and its ``simple`` model for latency), their relative
    differences, and whether the spike counts are equal."""
    variants = variants or {"loihi_like": "loihi_like", "loihi_sanafe": "loihi_sanafe"}
    row: dict[str, Any] = {"network": case.name, "kind": case.kind}
    ref_img = compile_case(case, "loihi_sanafe")
    sf = run_sanafe(case, ref_img, timing_model)
    row["sanafe_energy_pj"] = float(sf.energy_pj.mean())
    row["sanafe_latency_ns"] = float(sf.latency_ns.mean())
    if simple:  # SANA-FE's simple model: slowest stage per core, no NoC effects
        row["sanafe_simple_latency_ns"] = float(
            run_sanafe(case, ref_img, "simple").latency_ns.mean())
    for label, hw in variants.items():
        img = compile_case(case, hw)
        if _placement(img) != _placement(ref_img):
            raise AssertionError(f"{case.name}: placement differs between {label} and "
                                 "loihi_sanafe")
        ours = run_ours(case, hw, img)
        row[f"{label}_energy_pj"] = float(ours.energy_pj.mean())
        row[f"{label}_latency_ns"] = float(ours.latency_ns.mean())
        row[f"{label}_energy_err"] = row[f"{label}_energy_pj"] / row["sanafe_energy_pj"] - 1
        row[f"{label}_latency_err"] = row[f"{label}_latency_ns"] / row["sanafe_latency_ns"] - 1
        if simple:
            row[f"{label}_latency_err_simple"] = row[f"{label}_latency_ns"] \
                / row["sanafe_simple_latency_ns"] - 1
        row["cores"] = ours.extra["cores"]
        row["spikes_equal"] = all(np.array_equal(ours.spike_counts[n], sf.spike_counts[n])
                                  for n in sf.spike_counts)
        row["spikes"] = int(sum(int(v.sum()) for v in ours.spike_counts.values()))
        row["sanafe_spikes"] = int(sum(int(v.sum()) for v in sf.spike_counts.values()))
    row["note"] = case.note
    return row
