"""lava-dl netx models on neurochip vs lava-dl's netx in Lava's CPU backend, same files,
same run: compile time and peak memory, steps per second and the ratio.

Networks (random weights, written in netx format by compiler.frontends.netx.write_netx):

* pilotnet: a PilotNet-sized conv SNN, 3x66x200 input layer (bias-driven, as lava-dl feeds
  images), 5 conv + 4 dense LIF layers, ~164 k neurons;
* mlp: 784-128-64-10 dense (the input port fed with random spikes);
* slayer: 200-256-200 dense.

Lava's rate is marginal: two runs of T1 and T2 steps (each built, compiled, run and
stopped), (T2 - T1) / (t2 - t1), so its setup time is not counted against it. The
emulator's rate is a run of T2 steps after a warm-up run. Both record the spikes of the
output layer only (and the outputs must be equal). Prints a table and writes JSON
(--out, default neurochip_out/bench_netx.json).

    PYTHONPATH=. python tools/bench_netx.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import neurochip
from compiler.frontends.netx import write_netx
from neurochip.core.errors import PlacementError

LIF = {"type": "LOIHI", "iDecay": 1024, "vDecay": 512, "refDelay": 1, "wgtExp": 0}


def _conv(rng: np.random.Generator, c_in: int, c_out: int, k: int, s: int, shape: tuple[int, ...],
          vth: int) -> dict[str, Any]:
    return {"type": "conv", "shape": list(shape),
            "weight": rng.integers(-30, 31, (c_out, c_in, k, k, 1)) * 2,
            "bias": rng.integers(-4, 8, c_out), "kernelSize": [k, k], "stride": [s, s],
            "padding": [0, 0], "dilation": [1, 1], "groups": 1, "inChannels": c_in,
            "outChannels": c_out, "neuron": {**LIF, "vThMant": vth}}


def _dense(rng: np.random.Generator, n_in: int, n: int, vth: int, wmax: int = 60
           ) -> dict[str, Any]:
    return {"type": "dense", "shape": [n], "weight": rng.integers(-wmax, wmax + 1, (n, n_in)) * 2,
            "neuron": {**LIF, "vThMant": vth}}


def pilotnet(rng: np.random.Generator) -> list[dict[str, Any]]:
    shapes, c, h, w = [], 3, 66, 200
    for c_out, k, s in ((24, 3, 2), (36, 3, 2), (64, 3, 2), (64, 3, 1), (64, 3, 1)):
        h, w = (h - k) // s + 1, (w - k) // s + 1
        shapes.append((c, c_out, k, s, (c_out, h, w)))
        c = c_out
    layers: list[dict[str, Any]] = [{"type": "input", "shape": [3, 66, 200], "weight": 64,
                                     "bias": 0, "neuron": {**LIF, "iDecay": 0, "vThMant": 80}}]
    layers += [_conv(rng, ci, co, k, s, sh, 60) for ci, co, k, s, sh in shapes]
    layers.append({"type": "flatten", "shape": [math.prod(shapes[-1][4])]})
    n_in = math.prod(shapes[-1][4])
    for n in (100, 50, 10, 1):
        layers.append(_dense(rng, n_in, n, 40))
        n_in = n
    return layers


def mlp(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    return [_dense(rng, a, b, 30) for a, b in itertools.pairwise(sizes)]


def _lava_rate(path: Path, t1: int, t2: int, **kw: Any) -> dict[str, Any]:
    from compiler.lava.netx_compat import run_netx_lava

    times = []
    for t in (t1, t2):
        extra = dict(kw)
        if "inputs" in extra:
            extra["inputs"] = extra["inputs"][:t]
        t0 = time.perf_counter()
        out = run_netx_lava(path, t, probe_state=False, **extra)
        times.append(time.perf_counter() - t0)
    rate = (t2 - t1) / max(times[1] - times[0], 1e-9)
    return {"seconds": times, "steps": [t1, t2], "steps_per_s": rate, "last": out}


def bench(name: str, layers: list[dict[str, Any]], hw: str, t1: int, t2: int, tmp: Path,
          lava: bool) -> dict[str, Any]:
    path = write_netx(tmp / f"{name}.net", layers)
    tracemalloc.start()
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"network": name, "hw": hw}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = neurochip.compile(path, hw)
    except PlacementError as exc:
        rec["compile_error"] = str(exc)[:300]
        tracemalloc.stop()
        return rec
    rec["compile_s"] = time.perf_counter() - t0
    rec["compile_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rec.update(neurons=img.n_neurons, synapses=img.n_synapses, cores=len(img.cores))
    first = img.population("0")
    rng = np.random.default_rng(1)
    run_kw: dict[str, Any] = {}
    lava_kw: dict[str, Any] = {}
    if layers[0]["type"] == "input":
        b = rng.integers(0, 60, first.size)
        run_kw["bias"] = {"0": b}
        lava_kw["bias"] = {0: b}
    else:
        x = rng.random((t2, img.population("input").size)) < 0.1
        run_kw["inputs"] = {"input": x}
        lava_kw["inputs"] = x.astype(np.int64)
    last = [row["population"] for row in img.metadata["netx"]["layers"] if row["population"]][-1]
    em = neurochip.Emulator(img)
    warm = {k: ({"input": v["input"][:2]} if k == "inputs" else v) for k, v in run_kw.items()}
    em.run(steps=2, **warm)
    em.reset()
    # the output layer's spikes are recorded, as the Lava run records them
    t0 = time.perf_counter()
    r = em.run(steps=t2, spikes=[last], **run_kw)
    rec["emulator_s"] = time.perf_counter() - t0
    rec["emulator_steps_per_s"] = t2 / rec["emulator_s"]
    rec["synaptic_ops_per_step"] = float(np.asarray(r.counters["syn_ops"]).sum()) / t2
    rec["spikes_per_step"] = float(np.asarray(r.counters["spikes_out"]).sum()) / t2
    if lava:
        n_blocks = sum(1 for row in img.metadata["netx"]["layers"] if row["population"])
        lv = _lava_rate(path, t1, t2, layers=[n_blocks - 1], **lava_kw)
        rec["lava_s"] = lv["seconds"]
        rec["lava_steps_per_s"] = lv["steps_per_s"]
        rec["ratio"] = rec["emulator_steps_per_s"] / lv["steps_per_s"]
        rec["identical_output"] = bool(np.array_equal(lv["last"][-1]["s"], r.spikes[last]))
    return rec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    ap.add_argument("--no-lava", action="store_true", help="skip the Lava runs")
    ap.add_argument("--out", default="neurochip_out/bench_netx.json")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    q = args.quick
    cases = [("pilotnet", pilotnet(rng), "loihi2_like", 3 if q else 10, 8 if q else 60),
             ("mlp", mlp(rng, (784, 128, 64, 10)), "loihi2_like", 20 if q else 50,
              120 if q else 1000),
             ("slayer", mlp(rng, (200, 256, 200)), "loihi2_like", 20 if q else 50,
              120 if q else 1000)]
    results = []
    with tempfile.TemporaryDirectory() as d:
        for name, layers, hw, t1, t2 in cases:
            rec = bench(name, layers, hw, t1, t2, Path(d), not args.no_lava)
            if "compile_error" in rec and name == "pilotnet":
                big = neurochip.load_hw(hw).to_dict()
                big["name"] = "loihi2_like_4chip"
                big["mesh"]["chips"] = 4
                spec = neurochip.HardwareSpec.from_dict(big)
                rec4 = bench(name, layers, spec, t1, t2, Path(d), not args.no_lava)
                rec4["hw"] = "loihi2_like x 4 chips"
                results.append(rec)
                rec = rec4
            results.append(rec)
            print(json.dumps({k: v for k, v in rec.items() if k != "compile_error"},
                             default=str), flush=True)
    print(f"\n{'network':10s} {'hw':24s} {'neurons':>8s} {'cores':>5s} {'compile s':>9s} "
          f"{'peak MB':>8s} {'emu st/s':>9s} {'lava st/s':>9s} {'ratio':>7s} same")
    for r in results:
        if "compile_error" in r:
            print(f"{r['network']:10s} {r['hw']!s:24s} does not fit: {r['compile_error'][:90]}")
            continue
        print(f"{r['network']:10s} {r['hw']!s:24s} {r['neurons']:8d} {r['cores']:5d} "
              f"{r['compile_s']:9.2f} {r['compile_peak_mb']:8.0f} "
              f"{r['emulator_steps_per_s']:9.1f} {r.get('lava_steps_per_s', float('nan')):9.2f} "
              f"{r.get('ratio', float('nan')):7.1f} {r.get('identical_output', '-')}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
