"""Benchmark the mapping passes: traffic-aware placement against next-fit, cores used,
compile time of a 10-million-synapse network, and how many cores convolutions need.

Cases (next-fit = ``placement="greedy"``, the peer, run in the same process):

* ``branches``: in -> B1..B4 -> D1..D4 declared B first (4 x 2048 + 4 x 2048 neurons,
  16 cores): estimated NoC hops per step, and the hops the emulator counts when every
  source spikes (1024-neuron variant);
* every golden and bundled model (``tests/golden``, ``neurochip/data``): hops, both ways;
* ``conv3``: 2x32x32 -> 16x32x32 -> 32x16x16, 3x3 kernels, shared-weight convolutions
  (the default lowering: kernel stored once per core) against the expanded form
  (``conv="expanded"``, one stored synapse per pair, the peer): cores (target <= 24),
  synapse memory (target: shared <= 1/20 of expanded), and the cores the index-order cut
  (the partition before spatial tiles) needs for the expanded form;
* ``conv_throughput``: the conv3 net on the emulator, synaptic events per second of the
  conv kernel against the expanded lists' sparse kernel (interleaved rounds, best of 5);
* ``conv10M``: 2x64x64 -> 16x64x64 -> 16x64x64 (10.3 M synapses) on ``loihi_like_2chip``,
  expanded: register-level compile time (best of two; target <= 10 s), traffic vs
  next-fit; the shared-weight form's compile time beside it;
* ``nir_cnn``: the NIR paper CNN (cnn_sinabs.nir) on ``loihi_like`` at 8-bit weights:
  cores, and float vs chip prediction agreement on N-MNIST-like saccade events of the
  digits (the target's input) and on random events.

Prints a table and writes JSON (default ``bench_results/mapping.json``)::

    python tools/bench_mapping.py [--out bench_results/mapping.json] [--samples 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import neurochip  # noqa: E402
from compiler.ir import Conv, Graph, Input, Neurons, Projection  # noqa: E402
from compiler.passes import mapping as mp  # noqa: E402
from compiler.pipeline import compile_model, compile_network  # noqa: E402
from neurochip.commands.inspect_cmd import traffic  # noqa: E402

NIR_CNN = ROOT.parent / "shared" / "reference" / "nir-files" / "cnn_sinabs.nir"


def branches(n: int = 2048, n_in: int = 16, w: int = 2, vth: int = 10) -> neurochip.Network:
    net = neurochip.Network(name="branches")
    net.add_input("in", n_in)
    for i in range(1, 5):
        net.add_lif(f"B{i}", n, du=0, dv=4095, vth=vth)
        net.connect("in", f"B{i}", np.full((n, n_in), w))
    for i in range(1, 5):
        net.add_lif(f"D{i}", n, du=0, dv=4095, vth=vth)
        net.connect(f"B{i}", f"D{i}", sp.identity(n, dtype=np.int64, format="csr") * w,
                    storage="sparse")
    return net


def conv_graph(layers: list[tuple[int, int, int, int]], seed: int = 0) -> Graph:
    """(C_in, size_in, C_out, stride) per 3x3 conv layer, padding 1."""
    rng = np.random.default_rng(seed)
    c0, s0 = layers[0][0], layers[0][1]
    nodes: dict[str, Any] = {"img": Input((c0, s0, s0))}
    edges = []
    prev = "img"
    for i, (ci, si, co, st) in enumerate(layers):
        conv = Conv(rng.normal(0.05, 0.3, (co, ci, 3, 3)), (ci, si, si), stride=(st, st),
                    padding=((1, 1), (1, 1)))
        name = f"c{i + 1}"
        so = conv.out_shape[1]
        nodes[name] = Neurons((co, so, so), alpha=0.0, beta=0.9, threshold=1.0)
        edges.append(Projection(f"w{i + 1}", prev, name, conv))
        prev = name
    return Graph(nodes, tuple(edges), {"out": prev})


def lowered(graph: Graph, hw: str, conv: str = "shared") -> neurochip.Network:
    got: dict[str, Any] = {}

    def on_pass(name: str, state: Any) -> None:
        if name == "lower":
            got["net"] = state
            raise _Stop

    try:
        compile_model(graph, hw, on_pass=on_pass, conv=conv)
    except _Stop:
        pass
    return got["net"]


class _Stop(Exception):
    pass


def hops_pair(model: Any, hw: str, **opts: Any) -> dict[str, Any]:
    g = neurochip.compile(model, hw, placement="greedy", **opts)
    t = neurochip.compile(model, hw, **opts)
    hg, ht = traffic(g)["hops_per_step"], traffic(t)["hops_per_step"]
    return {"hops_greedy": hg, "hops_traffic": ht, "ratio": hg / ht if ht else None,
            "cores_greedy": len(g.cores), "cores_traffic": len(t.cores),
            "chip_links_greedy": traffic(g)["chip_links_per_step"],
            "chip_links_traffic": traffic(t)["chip_links_per_step"],
            "identical_image": t.equals(g)}


def measured_branches() -> dict[str, Any]:
    """Hops the emulator counts when the inputs and every B neuron spike each step."""
    net = branches(n=1024, n_in=8, w=255, vth=1)
    out = {}
    for pl in ("greedy", "traffic"):
        img = neurochip.compile(net, "loihi_like", placement=pl)
        r = neurochip.Emulator(img).run({"in": np.ones((4, 8), bool)})
        c = r.counters
        out[pl] = {"measured": int((c["hops_ew"] + c["hops_ns"]).sum(axis=1)[1]),
                   "estimated": traffic(img)["hops_per_step"]}
    return out


def index_order_cores(net: neurochip.Network, hw: neurochip.HardwareSpec) -> int:
    """Cores the partition before spatial tiles and fan-out cuts gives (chunks in index
    order, sized by synapse memory and input axons only)."""
    n = 0
    for pop in net.populations:
        if pop.kind != "lif":
            continue
        cut = mp._make_cut(pop, mp._incoming(net, pop), hw, None)
        mp._size(cut, hw, None, {"output_axons"})
        n += cut.k
    return n


def conv3() -> dict[str, Any]:
    g = conv_graph([(2, 32, 16, 1), (16, 32, 32, 2)])
    hw = neurochip.load_hw("loihi_like")
    net = lowered(g, "loihi_like")
    exp = lowered(g, "loihi_like", conv="expanded")
    before = index_order_cores(exp, hw)
    t0 = time.perf_counter()
    pair = hops_pair(net, "loihi_like")
    secs = time.perf_counter() - t0
    shared_img = compile_network(net, hw)
    exp_img = compile_network(exp, hw)
    mem_s = sum(c.synapse_bits for c in shared_img.cores)
    mem_e = sum(c.synapse_bits for c in exp_img.cores)
    return {"neurons": sum(p.size for p in net.populations if p.kind == "lif"),
            "synapses": net.n_synapses, "cores_index_order_before": before,
            "cores_now": pair["cores_traffic"], "cores_expanded": len(exp_img.cores),
            "cores_target": 24, "synapse_bits_shared": mem_s, "synapse_bits_expanded": mem_e,
            "memory_ratio": mem_e / mem_s, "memory_ratio_target": 20.0,
            "seconds_both_compiles": secs, **pair}


def conv_throughput(rounds: int = 5, batch: int = 8, steps: int = 40) -> dict[str, Any]:
    """Emulator synaptic events per second on the conv3 net: shared-weight convolutions
    (the conv kernel) against the same net's expanded synapse lists (the sparse kernel),
    interleaved rounds, best of each; the spike trains are checked equal."""
    g = conv_graph([(2, 32, 16, 1), (16, 32, 32, 2)])
    hw = neurochip.load_hw("loihi_like")
    imgs = {"shared": compile_network(lowered(g, "loihi_like"), hw),
            "expanded": compile_network(lowered(g, "loihi_like", conv="expanded"), hw)}
    x = np.random.default_rng(0).random((batch, steps, 2048)) < 0.1
    best: dict[str, float] = {}
    ops: dict[str, int] = {}
    spikes: dict[str, Any] = {}
    for _ in range(rounds + 1):  # the first round compiles the kernels
        for k, img in imgs.items():
            em = neurochip.Emulator(img)
            t0 = time.perf_counter()
            r = em.run({"img": x})
            dt = time.perf_counter() - t0
            best[k] = min(best.get(k, np.inf), dt) if k in ops else np.inf
            ops[k] = int(r.counters["syn_ops"].sum())
            spikes[k] = r.spikes
    same = all(np.array_equal(spikes["shared"][p], spikes["expanded"][p])
               for p in spikes["shared"])
    return {"batch": batch, "steps": steps, "syn_ops": ops["shared"],
            "syn_ops_expanded": ops["expanded"],  # fewer: its zero weights are dropped
            "spikes_equal": same,
            "seconds_shared": best["shared"], "seconds_expanded": best["expanded"],
            "events_per_s_shared": ops["shared"] / best["shared"],
            "events_per_s_expanded": ops["expanded"] / best["expanded"],
            "target_events_per_s": 2e9}


def conv10m() -> dict[str, Any]:
    g = conv_graph([(2, 64, 16, 1), (16, 64, 16, 1)], seed=2)
    net = lowered(g, "loihi_like_2chip", conv="expanded")
    shared = lowered(g, "loihi_like_2chip")
    hw = neurochip.load_hw("loihi_like_2chip")
    t_shared = np.inf
    times: dict[str, float] = {}
    imgs = {}
    for _ in range(2):  # best of two, alternating (the first run pays page faults)
        for pl in ("greedy", "traffic"):
            t0 = time.perf_counter()
            imgs[pl] = compile_network(net, hw, placement=pl)
            times[pl] = min(times.get(pl, np.inf), time.perf_counter() - t0)
        t0 = time.perf_counter()
        simg = compile_network(shared, hw)
        t_shared = min(t_shared, time.perf_counter() - t0)
    tg, tt = traffic(imgs["greedy"]), traffic(imgs["traffic"])
    return {"synapses": net.n_synapses, "seconds_traffic": times["traffic"],
            "seconds_shared": t_shared, "cores_shared": len(simg.cores),
            "seconds_greedy": times["greedy"], "target_s": 10.0,
            "cores_greedy": len(imgs["greedy"].cores), "cores_traffic": len(imgs["traffic"].cores),
            "hops_greedy": tg["hops_per_step"], "hops_traffic": tt["hops_per_step"],
            "chip_links_greedy": tg["chip_links_per_step"],
            "chip_links_traffic": tt["chip_links_per_step"]}


def nir_cnn(samples: int) -> dict[str, Any]:
    """The NIR paper CNN at 8-bit weights: float vs chip predictions (spike-count argmax of
    the output layer) on two inputs: random events (5 % density, 40 steps) and the digits
    test split as an event camera sees them move (N-MNIST-like saccades, 100 steps; the
    kind of input the network was trained on), ``samples`` each."""
    if not NIR_CNN.exists():
        return {"skipped": f"{NIR_CNN} not found"}
    from compiler.float_sim import simulate
    from compiler.frontends.nir import read_nir
    from compiler.passes.normalize import normalize
    from neurochip.tasks.digits import digits_split, saccade_events

    t0 = time.perf_counter()
    img = neurochip.compile(NIR_CNN, "loihi_like", weight_bits=8)
    secs = time.perf_counter() - t0
    g = normalize(read_nir(NIR_CNN))
    (inp,) = list(g.inputs)
    n_in = g.inputs[inp].size
    out_pop = next(iter(g.outputs.values()))
    rng = np.random.default_rng(0)
    _, X_test, _, _ = digits_split()
    inputs = {"random": (rng.random((samples, 40, n_in)) < 0.05, 40),
              "saccades": (saccade_events(X_test[:samples], 100), 100)}
    res: dict[str, Any] = {"cores": len(img.cores), "compile_s": secs, "samples": samples,
                           "target_agreement": 0.95, "target_input": "saccades"}
    for name, (x, steps) in inputs.items():
        fr = simulate(g, {inp: x})
        er = neurochip.Emulator(img).run({inp: x}, steps=steps, spikes=[out_pop])
        fc = fr.spikes[out_pop].sum(axis=1)
        cc = er.spikes[out_pop].sum(axis=1)
        res[name] = {"steps": steps,
                     "prediction_agreement": float(np.mean(fc.argmax(-1) == cc.argmax(-1))),
                     "float_spikes_per_sample": float(fc.sum() / samples),
                     "chip_spikes_per_sample": float(cc.sum() / samples)}
    res["prediction_agreement"] = res["saccades"]["prediction_agreement"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "mapping.json"))
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args(argv)
    res: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version()}
    res["branches"] = hops_pair(branches(), "loihi_like")
    res["branches_measured"] = measured_branches()
    models = sorted((ROOT / "tests" / "golden").glob("*.nir")) + sorted(
        (ROOT / "tests" / "golden" / "exporters").glob("*.nir")) + [
        ROOT / "neurochip" / "data" / "digits.nir"]
    res["models"] = {}
    for p in models:
        opts: dict[str, Any] = {"dt": 1e-3} if "norse" in p.name else {}
        if "snntorch" in p.name:
            opts["reset"] = "subtract"  # what they were trained with; the file does not say
        res["models"][p.stem] = hops_pair(p, "loihi_like", **opts)
    res["conv3"] = conv3()
    res["conv_throughput"] = conv_throughput()
    res["conv10M"] = conv10m()
    res["nir_cnn"] = nir_cnn(args.samples)

    print("placement: estimated NoC hops per step at 1 spike per source per step")
    print(f"  {'model':<16}{'next-fit':>12}{'traffic':>12}{'ratio':>8}{'cores':>8}")
    big = {k: res["conv10M"][k] for k in ("hops_greedy", "hops_traffic", "cores_traffic")}
    rows = [("branches (B/D)", res["branches"]), *res["models"].items(),
            ("conv3", res["conv3"]), ("conv10M (2chip)", big)]
    for name, r in rows:
        hg, ht = r["hops_greedy"], r["hops_traffic"]
        ratio = f"{hg / ht:.1f}x" if ht else ("=" if hg == 0 else "inf")
        print(f"  {name:<16}{hg:>12,.0f}{ht:>12,.0f}{ratio:>8}{r['cores_traffic']:>8}")
    bm = res["branches_measured"]
    print(f"branches on the emulator (every source spiking): next-fit "
          f"{bm['greedy']['measured']:,} hops, traffic {bm['traffic']['measured']:,} "
          f"(estimates {bm['greedy']['estimated']:,.0f} / {bm['traffic']['estimated']:,.0f})")
    c = res["conv3"]
    print(f"conv3 2x32x32->16x32x32->32x16x16: {c['cores_now']} cores with shared-weight "
          f"convolutions (target <= {c['cores_target']}), {c['cores_expanded']} expanded, "
          f"{c['cores_index_order_before']} with the index-order cut (expanded)")
    print(f"conv3 synapse memory: shared {c['synapse_bits_shared']:,} bits, expanded "
          f"{c['synapse_bits_expanded']:,} bits: 1/{c['memory_ratio']:.0f} "
          f"(target <= 1/{c['memory_ratio_target']:.0f})")
    c = res["conv_throughput"]
    print(f"conv3 emulator throughput (batch {c['batch']} x {c['steps']} steps, 10 % input "
          f"rate): shared-weight {c['events_per_s_shared'] / 1e9:.2f} G synaptic events/s, "
          f"expanded lists {c['events_per_s_expanded'] / 1e9:.2f} G/s "
          f"({c['events_per_s_shared'] / c['events_per_s_expanded']:.2f}x; target "
          f"{c['target_events_per_s'] / 1e9:.0f} G/s); spikes equal {c['spikes_equal']}; "
          f"synaptic events {c['syn_ops']:,} vs {c['syn_ops_expanded']:,} (the expanded "
          "form drops weights that quantized to 0)")
    c = res["conv10M"]
    print(f"conv10M ({c['synapses']:,} synapses, expanded) register-level compile: traffic "
          f"{c['seconds_traffic']:.2f} s, next-fit {c['seconds_greedy']:.2f} s "
          f"(target {c['target_s']:.0f} s); {c['cores_traffic']} cores, chip links "
          f"{c['chip_links_traffic']:,.0f} vs {c['chip_links_greedy']:,.0f}; shared-weight "
          f"form {c['seconds_shared']:.2f} s, {c['cores_shared']} cores")
    c = res["nir_cnn"]
    if "skipped" not in c:
        print(f"NIR CNN (cnn_sinabs) at 8-bit weights on loihi_like: {c['cores']} cores, "
              f"{c['compile_s']:.2f} s; float/chip prediction agreement on {c['samples']} "
              f"samples (target {c['target_agreement']:.0%} on saccade events):")
        for name in ("saccades", "random"):
            r = c[name]
            print(f"  {name:<9} {r['steps']:>4} steps: {r['prediction_agreement']:.1%} "
                  f"(spikes per sample float {r['float_spikes_per_sample']:.1f}, chip "
                  f"{r['chip_spikes_per_sample']:.1f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
