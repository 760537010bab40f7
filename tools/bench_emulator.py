"""Emulator benchmark: speed against Lava, batching, sparse scale, memory, a full chip.

    python tools/bench_emulator.py [--quick] [--no-lava] [--out bench_results/emulator.json]

(a) input 1024 -> 1024 LIF, dense random 8-bit weights (on as many loihi_like cores as
    its synapse memory needs), 5 % input spike probability, 1000 steps; the emulator and
    Lava 0.10 fixed_pt run the same network in this process, and the ratio is reported;
(b) a batch of 32 samples of (a), on one thread and on all threads;
(c) 1e5 neurons, 1e7 sparse synapses (100 per neuron, random targets within a
    neighbourhood so the chip's fan-in limit holds), about 5 % of neurons spiking per step;
(d) emulator memory per dense and per sparse synapse;
(e) a full loihi_like chip: 128 cores x 1024 neurons at >= 90 % synapse memory.
Prints a table and writes JSON. Absolute times on shared machines are noisy: compare the
ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import neurochip


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dense_network(seed: int = 0) -> neurochip.Network:
    rng = np.random.default_rng(seed)
    net = neurochip.Network(name="dense1024")
    net.add_input("in", 1024)
    net.add_lif("lif", 1024, du=409, dv=204, vth=2000)
    net.connect("in", "lif", rng.integers(-128, 128, (1024, 1024)) * 2)  # mixed, even
    return net


def timed(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_a(T: int, with_lava: bool) -> dict[str, Any]:
    img = neurochip.compile(dense_network(), "loihi_like")
    rng = np.random.default_rng(1)
    x = rng.random((T, 1024)) < 0.05
    em = neurochip.Emulator(img)
    em.run({"in": x[:5]}, spikes=None)  # compile the kernels

    def go() -> neurochip.RunResult:
        em.reset()
        return em.run({"in": x}, spikes=None)

    dt, r = timed(go, 7)
    events = int(r.counters["syn_ops"].sum())
    out: dict[str, Any] = {
        "cores": len(img.cores), "steps": T, "synaptic_events": events,
        "emulator_s": dt, "emulator_steps_per_s": T / dt, "emulator_events_per_s": events / dt,
    }
    if with_lava:
        out.update(lava_reference(img, x))
        out["speedup_vs_lava_steady"] = out["emulator_steps_per_s"] / out["lava_steady_steps_per_s"]
        out["speedup_vs_lava_run"] = out["emulator_steps_per_s"] / out["lava_run_steps_per_s"]
    return out


def lava_reference(img: neurochip.ChipImage, x: np.ndarray) -> dict[str, Any]:
    """Lava 0.10 fixed_pt on the exported image: a whole run, and the steady state.

    Whole run: export + compile + spawn + run + stop, as a user experiences it. Steady
    state: on another exported network, the run after a 1-step warm-up. Best of two each,
    as the emulator's figure is a best of several.
    """
    from compiler.lava import export_lava
    from compiler.lava.compat import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps

    T = x.shape[0]
    whole = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        net = export_lava(img, {"in": x})
        net.run(T, spikes=None)
        whole = min(whole, time.perf_counter() - t)
    steady = float("inf")
    for _ in range(2):
        net = export_lava(img, {"in": x})
        root = net.neurons["lif"]
        cfg = net.run_config()
        try:
            root.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            t = time.perf_counter()
            root.run(condition=RunSteps(num_steps=T - 1), run_cfg=cfg)
            steady = min(steady, time.perf_counter() - t)
        finally:
            root.stop()
    return {"lava_run_s": whole, "lava_run_steps_per_s": T / whole,
            "lava_steady_steps_per_s": (T - 1) / steady}


def bench_b(T: int, batch: int) -> dict[str, Any]:
    import numba

    img = neurochip.compile(dense_network(), "loihi_like")
    rng = np.random.default_rng(2)
    x = rng.random((batch, T, 1024)) < 0.05
    out: dict[str, Any] = {"batch": batch}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        em = neurochip.Emulator(img)
        em.run({"in": x[:, :3]}, spikes=None)

        def go(em: neurochip.Emulator = em) -> neurochip.RunResult:
            em.reset()
            return em.run({"in": x}, spikes=None)

        dt, r = timed(go, 5)  # the first runs of a new size also pay page faults
        ev = int(r.counters["syn_ops"].sum())
        out[f"threads{threads}_s"] = dt
        out[f"threads{threads}_events_per_s"] = ev / dt
        out[f"threads{threads}_events_per_s_per_thread"] = ev / dt / threads
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return out


def sparse_network(n: int = 100_000, fanout: int = 100, block: int = 1024, seed: int = 3,
                   bias: tuple[int, int] = (50, 80), wmax: int = 3) -> neurochip.Network:
    """Each neuron targets `fanout` distinct random neurons inside a random block of `block`.

    Random targets over the whole network would give every core ~63,000 distinct source
    neurons, far above the 4096 input axons a Loihi core has; drawing them from a
    neighbourhood keeps the chip's fan-in rule satisfied.
    """
    rng = np.random.default_rng(seed)
    pre = np.repeat(np.arange(n), fanout)
    start = np.repeat(rng.integers(0, n - block, n), fanout)
    mult = np.repeat(rng.integers(0, block // 2, n) * 2 + 1, fanout)  # odd: a permutation
    shift = np.repeat(rng.integers(0, block, n), fanout)
    k = np.tile(np.arange(fanout), n)
    post = start + (mult * k + shift) % block
    w = (rng.integers(-wmax, wmax + 1, n * fanout) * 2).astype(np.int64)
    W = sp.csr_matrix((w, (post, pre)), shape=(n, n))
    net = neurochip.Network(name="sparse1e5")
    # biases make every neuron tick at its own period (~20 steps on average)
    net.add_lif("pop", n, du=2048, dv=256, vth=100, bias_mant=rng.integers(*bias, n), bias_exp=3)
    net.connect("pop", "pop", W, storage="sparse")
    return net


def bench_c(T: int) -> dict[str, Any]:
    import numba

    t = time.perf_counter()
    net = sparse_network()
    build = time.perf_counter() - t
    t = time.perf_counter()
    img = neurochip.compile(net, "loihi_like_2chip")
    comp = time.perf_counter() - t
    out: dict[str, Any] = {"neurons": img.n_neurons, "synapses": img.n_synapses,
                           "cores": len(img.cores), "build_s": build, "compile_s": comp,
                           "steps": T}
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        em = neurochip.Emulator(img, threads=threads)
        em.run(steps=3, spikes=None)
        em.run(steps=100, spikes=None)  # let the neurons desynchronise

        def go(em: neurochip.Emulator = em) -> neurochip.RunResult:
            return em.run(steps=T, spikes=None)

        dt, r = timed(go, 5)
        ev = int(r.counters["syn_ops"].sum())
        out[f"threads{threads}_run_s"] = dt
        out[f"threads{threads}_steps_per_s"] = T / dt
        out[f"threads{threads}_events_per_s"] = ev / dt
        out["spike_fraction"] = float(r.counters["spikes_out"].sum()) / (T * img.n_neurons)
        out["bytes_per_synapse"] = em.tables.nbytes_synapses() / img.n_synapses
    out["threads"] = numba.config.NUMBA_NUM_THREADS
    out["events_per_s"] = out[f"threads{out['threads']}_events_per_s"]
    return out


def bench_d() -> dict[str, Any]:
    img = neurochip.compile(dense_network(), "loihi_like")
    em = neurochip.Emulator(img)
    dense = em.tables.nbytes_synapses() / img.n_synapses
    return {"dense_bytes_per_synapse": dense}


def full_chip_network(n_axons: int = 118) -> neurochip.Network:
    rng = np.random.default_rng(4)
    n = 128 * 1024
    net = neurochip.Network(name="fullchip")
    net.add_input("in", n_axons)
    net.add_lif("chip", n, du=1024, dv=512, vth=600, bias_mant=rng.integers(0, 60, n))
    net.connect("in", "chip", (rng.integers(-100, 101, (n, n_axons)) * 2).astype(np.int16))
    return net


def bench_e(T: int) -> dict[str, Any]:
    rss0 = _rss_mb()
    net = full_chip_network()
    t = time.perf_counter()
    img = neurochip.compile(net, "loihi_like")
    comp = time.perf_counter() - t
    del net
    mem_frac = min(c.synapse_bits for c in img.cores) / img.hw.core.synapse_memory_bits
    t = time.perf_counter()
    em = neurochip.Emulator(img)
    load = time.perf_counter() - t
    x = np.random.default_rng(5).random((T, 118)) < 0.05
    em.run({"in": x[:3]}, spikes=None)
    em.reset()
    dt, r = timed(lambda: (em.reset(), em.run({"in": x}, spikes=None))[1], 2)
    return {"cores": len(img.cores), "neurons": img.n_neurons, "synapses": img.n_synapses,
            "min_core_memory_fraction": mem_frac, "compile_s": comp, "emulator_load_s": load,
            "steps": T, "steps_per_s": T / dt,
            "events_per_s": float(r.counters["syn_ops"].sum()) / dt,
            "rss_mb": _rss_mb(), "rss_growth_mb": _rss_mb() - rss0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke run)")
    ap.add_argument("--no-lava", action="store_true", help="skip the Lava comparison")
    ap.add_argument("--only", default="abcde", help="which parts to run, e.g. 'ad'")
    ap.add_argument("--out", default="bench_results/emulator.json")
    args = ap.parse_args(argv)
    T = 200 if args.quick else 1000
    res: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    parts = {"a": lambda: bench_a(T, not args.no_lava), "b": lambda: bench_b(T, 32),
             "c": lambda: bench_c(T // 4 if args.quick else 200), "d": bench_d,
             "e": lambda: bench_e(T // 4 if args.quick else 100)}
    for k in args.only:
        print(f"running ({k}) ...", flush=True)
        res[k] = parts[k]()
    rows = []
    if "a" in res:
        a = res["a"]
        rows += [("(a) dense 1024x1024, 5 %, cores", f"{a['cores']}"),
                 ("(a) emulator steps/s", f"{a['emulator_steps_per_s']:,.0f}"),
                 ("(a) emulator synaptic events/s", f"{a['emulator_events_per_s']:.3g}")]
        if "lava_steady_steps_per_s" in a:
            rows += [("(a) Lava steps/s (whole run / steady)",
                      f"{a['lava_run_steps_per_s']:,.0f} / {a['lava_steady_steps_per_s']:,.0f}"),
                     ("(a) speed-up vs Lava (whole run / steady)",
                      f"{a['speedup_vs_lava_run']:.0f}x / {a['speedup_vs_lava_steady']:.0f}x")]
    if "b" in res:
        b = res["b"]
        rows += [("(b) batch 32, events/s on 1 thread", f"{b['threads1_events_per_s']:.3g}")]
        for k, v in b.items():
            if k.endswith("events_per_s") and not k.startswith("threads1_"):
                rows.append((f"(b) batch 32, events/s ({k.split('_')[0]})", f"{v:.3g}"))
        if "a" in res:
            rows.append(("(b) batch gain per thread vs (a)",
                         f"{b['threads1_events_per_s'] / res['a']['emulator_events_per_s']:.2f}x"))
    if "c" in res:
        c = res["c"]
        rows += [("(c) sparse: neurons / synapses / cores",
                  f"{c['neurons']:,} / {c['synapses']:,} / {c['cores']}"),
                 ("(c) spike fraction per step", f"{c['spike_fraction']:.3f}"),
                 ("(c) compile s", f"{c['compile_s']:.1f}"),
                 ("(c) synaptic events/s, 1 thread", f"{c['threads1_events_per_s']:.3g}"),
                 (f"(c) synaptic events/s, {c['threads']} threads", f"{c['events_per_s']:.3g}"),
                 ("(d) bytes per sparse synapse", f"{c['bytes_per_synapse']:.2f}")]
    if "d" in res:
        rows.append(("(d) bytes per dense synapse", f"{res['d']['dense_bytes_per_synapse']:.3f}"))
    if "e" in res:
        e = res["e"]
        rows += [("(e) full chip: cores / neurons / synapses",
                  f"{e['cores']} / {e['neurons']:,} / {e['synapses']:,}"),
                 ("(e) min synapse memory use per core", f"{e['min_core_memory_fraction']:.1%}"),
                 ("(e) compile s", f"{e['compile_s']:.1f}"),
                 ("(e) emulator RSS MB", f"{e['rss_mb']:.0f}"),
                 ("(e) steps/s", f"{e['steps_per_s']:,.0f}")]
    w = max(len(r[0]) for r in rows) if rows else 10
    print("\n" + "\n".join(f"{k:<{w}}  {v}" for k, v in rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
