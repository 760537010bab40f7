"""Benchmark sparse emulation at a million neurons: 10^6 LIF neurons, fan-out 100 into
random blocks of 1024 (10^8 synapses, the network of ``tools/bench_compiler.py``), driven
by their biases at about 5 % activity; synaptic events per second on one thread and on
all threads (target of issue 19: >= 1 G events/s on 2 threads).

Each thread count gets its own emulator, warmed by 63 steps (the neurons desynchronise),
then the best of 3 runs of 20 steps. Prints a table and writes JSON (default
``bench_results/sparse.json``)::

    python tools/bench_sparse.py [--neurons 1000000] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import numba  # noqa: E402
from bench_compiler import sparse_network  # noqa: E402

import neurochip  # noqa: E402
from compiler.pipeline import compile_network  # noqa: E402

TARGET_EVENTS_PER_S = 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "sparse.json")
    args = ap.parse_args()
    n = args.neurons
    t = time.perf_counter()
    net = sparse_network(n)
    build_s = time.perf_counter() - t
    chips = max(1, -(-n // (512 * 128)))
    with tempfile.TemporaryDirectory() as d:
        yml = Path(d) / "board.yaml"
        yml.write_text(f"extends: loihi_like\nname: loihi_like_{chips}chip\n"
                       f"mesh:\n  chips: {chips}\n")
        hw = neurochip.load_hw(yml)
    t = time.perf_counter()
    img = compile_network(net, hw)
    compile_s = time.perf_counter() - t
    del net
    out: dict[str, Any] = {"benchmark": "sparse", "neurons": img.n_neurons,
                           "synapses": img.n_synapses, "cores": len(img.cores),
                           "build_s": build_s, "compile_s": compile_s, "steps": args.steps}
    top = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    for threads in sorted({1, top}):
        t = time.perf_counter()
        em = neurochip.Emulator(img, threads=threads)
        out[f"threads{threads}_tables_s"] = time.perf_counter() - t
        em.run(steps=3, spikes=None)
        em.run(steps=60, spikes=None)
        best, r = float("inf"), None
        for _ in range(3):
            t = time.perf_counter()
            r = em.run(steps=args.steps, spikes=None)
            best = min(best, time.perf_counter() - t)
        assert r is not None
        ev = int(r.counters["syn_ops"].sum())
        out[f"threads{threads}_events_per_s"] = ev / best
        out[f"threads{threads}_ms_per_step"] = 1e3 * best / args.steps
        out["spike_fraction"] = float(r.counters["spikes_out"].sum()) / (
            args.steps * img.n_neurons)
        del em
    out["threads"] = top
    out["target_events_per_s"] = TARGET_EVENTS_PER_S
    out["met"] = out[f"threads{top}_events_per_s"] >= TARGET_EVENTS_PER_S
    out["python"] = platform.python_version()
    print(f"sparse emulation: {out['neurons']:,} neurons, {out['synapses']:,} synapses, "
          f"{out['cores']} cores, {100 * out['spike_fraction']:.1f} % spiking per step")
    for th in sorted({1, top}):
        print(f"  {th} thread(s): {out[f'threads{th}_events_per_s'] / 1e9:.3f} G synaptic "
              f"events/s, {out[f'threads{th}_ms_per_step']:.1f} ms per step")
    print(f"  target >= 1 G events/s on {top} threads: {'met' if out['met'] else 'NOT met'}")
    print(f"  (build {build_s:.1f} s, compile {compile_s:.1f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
