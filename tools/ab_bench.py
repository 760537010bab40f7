"""A/B benchmark of the emulator against an older commit, measured in the same run.

    python tools/ab_bench.py [--base COMMIT] [--rounds 5] [--steps 1000] [--clock cpu]
                             [--learn-limit 400] [--out bench_results/ab_bench.json]

The older commit (default: ``git merge-base HEAD main``) is checked out into a temporary
folder (``git worktree add --detach``); both trees then run, each in a fresh process with
its own tree first on PYTHONPATH:

* (a) of ``tools/bench_emulator.py``: the emulator's steps/s on the dense 1024 x 1024
  network (the Lava comparison is left out), best of 7 runs inside the process;
* the learning wall clock of ``tools/bench_learning.py`` (``cost_demo``: one pass of the
  digits training split through ``Emulator.learn`` on one core, microseconds per step).

Rounds alternate old and new (and which of them goes first), so that a machine shared with
other work slows both alike; each figure is the best over the rounds. Every process first
compiles (or loads from Numba's cache) its kernels outside the timed part. Prints a table of
old / new / ratio and writes JSON.

``--clock cpu`` (the default) times with the process's CPU time instead of the wall clock
(the benchmarks' ``time.perf_counter`` is pointed at ``time.process_time``): both measured
runs are single-threaded, so on a machine shared with other work the CPU time counts the
benchmark's own work and not the time it waited for a core. ``--clock wall`` keeps the
benchmarks as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Run inside the tree under test (its root is the working directory and on sys.path).
_BENCH_A = """
import json, sys
sys.path.insert(0, "tools")
from bench_emulator import bench_a
r = bench_a({steps}, False)
print("RESULT", json.dumps({{"steps_per_s": r["emulator_steps_per_s"]}}))
"""

_BENCH_LEARN = """
import json
from neurochip.tasks.learning_demos import cost_demo
r = cost_demo("dfa", limit={limit}, repeats={repeats})
print("RESULT", json.dumps({{"learn_us_per_step": r["wall_learning_us_per_step"],
                            "infer_us_per_step": r["wall_inference_us_per_step"]}}))
"""


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


_CPU_CLOCK = "import time\ntime.perf_counter = time.process_time\n"


def _measure(tree: Path, code: str, timeout: float, cache: Path) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter rooted at ``tree`` (Numba's cache in ``cache``);
    its RESULT line, parsed."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1",
               NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            out: dict[str, float] = json.loads(line[len("RESULT "):])
            return out
    raise RuntimeError(f"benchmark in {tree} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def run_ab(base: str, rounds: int, steps: int, learn_limit: int, learn_repeats: int,
           timeout: float, clock: str = "cpu", keep: bool = False) -> dict[str, Any]:
    commit = _git("rev-parse", base)
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    tmp = Path(tempfile.gettempdir()) / f"ab_bench_{commit[:12]}"
    old_tree = tmp / "old"
    if not (keep and (old_tree / ".git").exists()):  # --keep: reuse it (and its Numba cache)
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                       capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])
        tmp.mkdir(parents=True)
        _git("worktree", "add", "--detach", str(old_tree), commit)
    trees = {"old": old_tree, "new": ROOT}
    # Numba's cache is keyed on each function's own file only: a kernel whose callee (in
    # another module) changed would load stale code. The new tree therefore compiles into
    # a fresh cache every run; the old one (a fixed commit) keeps its cache with --keep.
    caches = {"old": tmp / "numba_cache_old", "new": tmp / "numba_cache_new"}
    subprocess.run(["rm", "-rf", str(caches["new"])])
    prefix = _CPU_CLOCK if clock == "cpu" else ""
    codes = {"a": prefix + _BENCH_A.format(steps=steps),
             "learn": prefix + _BENCH_LEARN.format(limit=learn_limit, repeats=learn_repeats)}
    samples: dict[str, dict[str, list[float]]] = {
        k: {"steps_per_s": [], "learn_us_per_step": [], "infer_us_per_step": []}
        for k in trees}
    try:
        for name, tree in trees.items():  # compile (or load) every kernel once per tree
            print(f"warming up {name} ({tree}) ...", flush=True)
            _measure(tree, codes["a"].replace(f"bench_a({steps}", "bench_a(20"), timeout,
                     caches[name])
            _measure(tree, codes["learn"].replace(f"limit={learn_limit}", "limit=8"), timeout,
                     caches[name])
        for r in range(rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for name in order:
                for part in ("a", "learn"):
                    res = _measure(trees[name], codes[part], timeout, caches[name])
                    for k, v in res.items():
                        samples[name][k].append(v)
            print(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{n} {samples[n]['steps_per_s'][-1]:,.0f} steps/s "
                f"{samples[n]['learn_us_per_step'][-1]:.2f} us/learning step" for n in trees),
                flush=True)
    finally:
        if not keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                           capture_output=True)
            subprocess.run(["rm", "-rf", str(tmp)])
    best = {n: {"steps_per_s": max(s["steps_per_s"]),
                "learn_us_per_step": min(s["learn_us_per_step"]),
                "infer_us_per_step": min(s["infer_us_per_step"])} for n, s in samples.items()}
    ratios = {  # > 1: the new code is faster
        "a_steps_per_s": best["new"]["steps_per_s"] / best["old"]["steps_per_s"],
        "learning_speed": best["old"]["learn_us_per_step"] / best["new"]["learn_us_per_step"],
        "learning_inference_speed": (best["old"]["infer_us_per_step"]
                                     / best["new"]["infer_us_per_step"]),
    }
    return {"base": commit, "head": head, "head_dirty": dirty, "rounds": rounds,
            "steps": steps, "clock": clock, "learn_limit": learn_limit,
            "learn_repeats": learn_repeats,
            "samples": samples, "best": best, "ratio_new_over_old_speed": ratios,
            "machine": {"cpus": os.cpu_count()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=None, help="old commit (default: merge base with main)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000, help="steps of bench (a)")
    ap.add_argument("--learn-limit", type=int, default=400,
                    help="training samples of the learning pass")
    ap.add_argument("--learn-repeats", type=int, default=3,
                    help="learning passes per process (best of)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="time with the process's CPU time (default) or the wall clock")
    ap.add_argument("--keep", action="store_true",
                    help="keep the old checkout (and its compiled kernels) for the next run")
    ap.add_argument("--out", default="bench_results/ab_bench.json")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.learn_limit < 1 or args.learn_repeats < 1:
        print("ab_bench: --rounds, --steps, --learn-limit and --learn-repeats must be >= 1",
              file=sys.stderr)
        return 2
    base = args.base or _git("merge-base", "HEAD", "main")
    res = run_ab(base, args.rounds, args.steps, args.learn_limit, args.learn_repeats,
                 args.timeout, args.clock, args.keep)
    b, q = res["best"], res["ratio_new_over_old_speed"]
    rows = [("", "old", "new", "new/old speed"),
            ("(a) emulator steps/s", f"{b['old']['steps_per_s']:,.0f}",
             f"{b['new']['steps_per_s']:,.0f}", f"{q['a_steps_per_s']:.3f}"),
            ("learning us/step (1 core)", f"{b['old']['learn_us_per_step']:.3f}",
             f"{b['new']['learn_us_per_step']:.3f}", f"{q['learning_speed']:.3f}"),
            ("its inference us/step", f"{b['old']['infer_us_per_step']:.3f}",
             f"{b['new']['infer_us_per_step']:.3f}", f"{q['learning_inference_speed']:.3f}")]
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"\nold {res['base'][:10]}  new {res['head'][:10]}"
          f"{' (+ uncommitted changes)' if res['head_dirty'] else ''}, "
          f"best of {res['rounds']} alternating rounds, {res['clock']} clock")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
