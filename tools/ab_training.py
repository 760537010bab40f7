"""A/B timing of digits training: this tree against an older commit, interleaved.

    python tools/ab_training.py --base HEAD~3            # 3 rounds, full digits task
    python tools/ab_training.py --base main --rounds 5 --epochs 10

The base commit is exported (``git archive``) into a temporary folder. Each round trains
``neurochip train digits`` (``train_task("digits", seed=0)``, no chip evaluation) once in
each tree, alternating which goes first, each in a fresh process after one warm-up run per
tree (the Numba kernels are cached on disk then). It prints a table of the training times
(the trainer's own wall clock, and the process's CPU time, steadier on a loaded machine),
the ratios new / base, whether the trained weights are bit-identical, and writes JSON
(default ``bench_results/ab_training.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import hashlib, json, sys, time
from neurochip.tasks.training import get_task, train_task
task = get_task("digits")
data = task.make_data(task.steps, 0)
c0 = time.process_time()
res = train_task(task, seed=0, evaluate_chip=False, epochs={epochs}, data=data)
cpu = time.process_time() - c0
h = hashlib.sha256()
for k in sorted(res.net.params):
    h.update(res.net.params[k].tobytes())
print(json.dumps({{"train_s": res.train_seconds, "cpu_s": cpu, "float": res.float_metric,
                   "weights": h.hexdigest()}}))
"""


def _train(tree: Path, epochs: int, threads: int | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env[var] = str(threads)
    out = subprocess.run([sys.executable, "-c", _CHILD.format(epochs=epochs)], cwd=tree,
                         env=env, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="git commit to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30, help="training epochs (task: 30)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS / Numba threads in the children (default: as set)")
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "ab_training.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        trees = {"base": base, "new": ROOT}
        for tree in trees.values():  # warm-up: compile and cache the kernels
            _train(tree, 1, args.threads)
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
        for r in range(args.rounds):
            order = ["base", "new"] if r % 2 == 0 else ["new", "base"]
            for name in order:
                runs[name].append(_train(trees[name], args.epochs, args.threads))
                last = runs[name][-1]
                print(f"round {r + 1} {name:4s}: {last['train_s']:7.2f} s wall, "
                      f"{last['cpu_s']:7.2f} s CPU", flush=True)
    med = {k: statistics.median(x["train_s"] for x in v) for k, v in runs.items()}
    best = {k: min(x["train_s"] for x in v) for k, v in runs.items()}
    cpu = {k: statistics.median(x["cpu_s"] for x in v) for k, v in runs.items()}
    cpu_best = {k: min(x["cpu_s"] for x in v) for k, v in runs.items()}
    same = len({x["weights"] for v in runs.values() for x in v}) == 1
    print(f"\ndigits training, {args.epochs} epochs, {args.rounds} rounds interleaved")
    print(f"  {'tree':5s} {'wall median':>12s} {'wall best':>10s} {'CPU median':>11s} "
          f"{'CPU best':>9s}")
    for k in ("base", "new"):
        print(f"  {k:5s} {med[k]:12.2f} {best[k]:10.2f} {cpu[k]:11.2f} {cpu_best[k]:9.2f}")
    print(f"  new / base: wall median {med['new'] / med['base']:.3f}, wall best "
          f"{best['new'] / best['base']:.3f}, CPU median {cpu['new'] / cpu['base']:.3f}, "
          f"CPU best {cpu_best['new'] / cpu_best['base']:.3f}; weights bit-identical: {same}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": args.base, "epochs": args.epochs, "runs": runs,
                               "median_s": med, "best_s": best, "cpu_median_s": cpu,
                               "cpu_best_s": cpu_best, "threads": args.threads,
                               "ratio_median": med["new"] / med["base"],
                               "ratio_best": best["new"] / best["base"],
                               "ratio_cpu_median": cpu["new"] / cpu["base"],
                               "ratio_cpu_best": cpu_best["new"] / cpu_best["base"],
                               "weights_identical": same,
                               "load": os.getloadavg()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
