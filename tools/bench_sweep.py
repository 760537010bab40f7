"""Benchmark ``neurochip.distributed``: a 48-job sweep serially vs on a 2-worker LocalCluster.

The sweep of issue 15: the bundled digits model x weight widths (8, 6, 4, 2) x calibrations
(none, max, p99.9) x 4 seeds of the input encoding (Bernoulli rate code), each job compiling
for loihi_like and emulating the whole digits test split (450 samples). Both runs start
warm (the emulator kernels loaded by a short untimed run of other jobs) and with empty image
caches, and they alternate (serial, distributed, serial, ...; best of each kept) so that
both see the same load on a shared machine; the distributed records must equal the serial
ones (all but the wall time and worker). The per-job overhead is the wall time per job of
``--empty`` jobs that do nothing. Targets: speed-up >= 1.7x, overhead <= 20 ms. Prints a
table and writes JSON (default ``bench_results/sweep.json``).

    python tools/bench_sweep.py [--workers 2] [--repeat 4] [--empty 200]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402

import neurochip  # noqa: E402
from neurochip.commands.quickstart_cmd import BUNDLED_MODEL  # noqa: E402
from neurochip.distributed import Job, Runner, clear_caches, same_results  # noqa: E402

TARGET_SPEEDUP = 1.7
TARGET_OVERHEAD_MS = 20.0


def sweep_jobs() -> list[Job]:
    return [Job(model=str(BUNDLED_MODEL), weight_bits=wb, calibration=cal, seed=seed,
                encoding="bernoulli")
            for wb, cal, seed in itertools.product([8, 6, 4, 2], ["none", "max", "p99.9"],
                                                   range(4))]


def warm_jobs() -> list[Job]:
    """Untimed: load every kernel the sweep uses (parameters the sweep does not have)."""
    return [Job(model=str(BUNDLED_MODEL), weight_bits=7, calibration=cal, seed=100 + i,
                encoding="bernoulli", samples=50)
            for i, cal in enumerate(["none", "max", "p99.0"] * 2)]


CPU: dict[int, list[dict[str, float]]] = {}  # id(runner) -> per run {process: cpu s}


def _cpu(runner: Runner) -> dict[str, float]:
    """CPU seconds (user + system) so far of this process and of each worker process."""
    import psutil

    out = {"client": sum(psutil.Process().cpu_times()[:2])}
    for addr, pid in runner.worker_pids().items():
        out[addr] = sum(psutil.Process(pid).cpu_times()[:2])
    return out


def timed(runner: Runner, jobs: list[Job]) -> tuple[float, list[dict[str, Any]]]:
    clear_caches()
    if runner.client is not None:
        runner.client.run(clear_caches)
    c0 = _cpu(runner)
    t0 = time.perf_counter()
    recs = runner.run(jobs)
    wall = time.perf_counter() - t0
    c1 = _cpu(runner)
    tag = id(runner) if jobs and jobs[0].kind != "empty" else -id(runner)
    CPU.setdefault(tag, []).append({k: c1[k] - c0.get(k, 0.0) for k in c1})
    return wall, recs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster")
    ap.add_argument("--repeat", type=int, default=4, help="timed runs of each (best kept)")
    ap.add_argument("--empty", type=int, default=200, help="empty jobs for the overhead")
    ap.add_argument("--out", type=Path, default=ROOT / "bench_results" / "sweep.json")
    args = ap.parse_args()
    jobs = sweep_jobs()
    empty = [Job(kind="empty", seed=i) for i in range(args.empty)]
    load0 = os.getloadavg()
    # Serial and distributed runs alternate, so that both see the same load on a shared
    # machine; the best of each is kept.
    t_start = time.perf_counter()
    with Runner(workers=0) as serial, Runner(workers=args.workers) as dist:
        start_s = time.perf_counter() - t_start
        serial.run(warm_jobs())
        dist.run(warm_jobs())
        s_times, d_times, s1_times = [], [], []
        s_recs: list[dict[str, Any]] = []
        d_recs: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            t, s_recs = timed(serial, jobs)
            s_times.append(t)
            t, d_recs = timed(dist, jobs)
            d_times.append(t)
            # serial on one core: the compiler's calibration check runs Numba's parallel
            # kernels on every core by default (the workers are single-threaded)
            threads = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                t, s1_recs = timed(serial, jobs)
            finally:
                numba.set_num_threads(threads)
            s1_times.append(t)
        s_empty = min(timed(serial, empty)[0] for _ in range(args.repeat))
        d_empty = min(timed(dist, empty)[0] for _ in range(args.repeat))
    s_cpu = min(c["client"] for c in CPU[id(serial)])
    d_runs = CPU[id(dist)]
    d_client = min(c["client"] for c in d_runs)
    d_busiest = min(max(v for k, v in c.items() if k != "client") for c in d_runs)
    d_total = min(sum(c.values()) for c in d_runs)
    cpu_bound = s_cpu / d_busiest
    empty_cpu_ms = 1e3 * min(sum(c.values()) for c in CPU[-id(dist)]) / len(empty)
    identical = same_results(s_recs, d_recs)
    failed = sum("error" in r for r in s_recs + d_recs)
    s_best, d_best, s1_best = min(s_times), min(d_times), min(s1_times)
    speedup = s_best / d_best
    speedup_1 = s1_best / d_best
    identical_1 = same_results(s1_recs, d_recs)
    overhead_ms = 1e3 * d_empty / len(empty)
    rows = [
        ("jobs", f"{len(jobs)}"),
        ("serial (in process), s",
         f"{s_best:.2f}  (runs: {', '.join(f'{t:.2f}' for t in s_times)})"),
        (f"LocalCluster, {args.workers} workers, s",
         f"{d_best:.2f}  (runs: {', '.join(f'{t:.2f}' for t in d_times)})"),
        ("serial, Numba on 1 thread, s",
         f"{s1_best:.2f}  (runs: {', '.join(f'{t:.2f}' for t in s1_times)})"),
        ("speed-up", f"{speedup:.2f}x  (target >= {TARGET_SPEEDUP}x: "
                     f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'})"),
        ("speed-up over serial on 1 thread", f"{speedup_1:.2f}x"),
        ("per-job overhead (empty job), ms", f"{overhead_ms:.2f}  (target <= "
         f"{TARGET_OVERHEAD_MS:.0f} ms: {'met' if overhead_ms <= TARGET_OVERHEAD_MS else 'MISSED'}"
         f"; serial {1e3 * s_empty / len(empty):.3f} ms)"),
        ("CPU per empty job (client, scheduler, workers), ms", f"{empty_cpu_ms:.2f}"),
        ("CPU s: serial / distributed (all) / busiest worker",
         f"{s_cpu:.2f} / {d_total:.2f} (client {d_client:.2f}) / {d_busiest:.2f}"),
        ("speed-up with a free core per worker (CPU: serial / busiest worker)",
         f"{cpu_bound:.2f}x"),
        ("identical results", "yes" if identical and identical_1 else "NO"),
        ("failed jobs", str(failed)),
        ("cluster start (untimed), s", f"{start_s:.2f}"),
        ("load average before / after", f"{load0[0]:.2f} / {os.getloadavg()[0]:.2f} on "
                                        f"{os.cpu_count()} CPUs"),
    ]
    w = max(len(k) for k, _ in rows)
    print("neurochip sweep benchmark: digits x 4 weight widths x 3 calibrations x 4 seeds")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    payload = {
        "benchmark": "sweep", "jobs": len(jobs), "workers": args.workers,
        "serial_s": s_times, "distributed_s": d_times, "speedup": speedup,
        "serial_1thread_s": s1_times, "speedup_vs_1thread": speedup_1,
        "empty_jobs": len(empty), "empty_overhead_ms": overhead_ms,
        "serial_empty_ms": 1e3 * s_empty / len(empty), "identical": identical,
        "failed": failed, "cluster_start_s": start_s, "serial_cpu_s": s_cpu,
        "distributed_cpu_s": d_total, "distributed_client_cpu_s": d_client,
        "busiest_worker_cpu_s": d_busiest, "empty_job_cpu_ms": empty_cpu_ms,
        "cpu_bound_speedup": cpu_bound, "loadavg_before": load0,
        "loadavg_after": os.getloadavg(), "cpus": os.cpu_count(),
        "targets": {"speedup": TARGET_SPEEDUP, "overhead_ms": TARGET_OVERHEAD_MS},
        "met": {"speedup": speedup >= TARGET_SPEEDUP,
                "overhead": overhead_ms <= TARGET_OVERHEAD_MS},
        "neurochip": neurochip.__version__, "python": platform.python_version(),
        "machine": platform.machine(),
        "accuracy": {f"{r['weight_bits']}/{r['calibration']}/{r['seed']}": r.get("accuracy")
                     for r in s_recs},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}")
    return 0 if identical and identical_1 and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
