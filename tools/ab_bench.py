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

``--clock instructions`` counts executed instructions instead, with valgrind's callgrind:
deterministic, so one round per tree is enough and other work on the machine does not
matter. Each tree first runs the same steps natively (which fills its Numba cache), then once
under ``valgrind --tool=callgrind --instr-atstart=no``; a small C marker library (built with
the system compiler from ``valgrind/callgrind.h``, loaded with ctypes) switches the
instrumentation on just around the steady-state part and off after it, so start-up, imports,
cache loads and warm-up runs are not counted (both runs compile for one fixed x86-64
target, ``NUMBA_CPU_NAME=haswell``, which valgrind can run and which keys Numba's cache
alike in and out of valgrind). Measured: one ``Emulator.run`` of bench (a)'s
network and input (after a reset, the kernels warm), one ``Emulator.learn`` pass of
``cost_demo``'s training samples on a fresh emulator (after a warm-up learn), and one
batched ``Emulator.run`` of the same samples. Needs ``valgrind`` and ``cc``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
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


# The same steady-state parts for the instruction counter; marks.start()/stop() bracket
# what is counted. Only public names both trees have are used.
_COUNT = """
import json, sys, ctypes
import numpy as np
import numba
numba.set_num_threads(1)
sys.path.insert(0, "tools")
marks = ctypes.CDLL({lib!r})
import neurochip
from bench_emulator import dense_network
from neurochip.tasks import learning_demos as ld
res = {{}}
# bench (a): the dense 1024 x 1024 network, one run of {steps} steps
img = neurochip.compile(dense_network(), "loihi_like")
x = np.random.default_rng(1).random(({steps}, 1024)) < 0.05
em = neurochip.Emulator(img)
em.run({{"in": x[:5]}}, spikes=None)
em.reset(); em.run({{"in": x}}, spikes=None)
em.reset()
marks.nc_start(); em.run({{"in": x}}, spikes=None); marks.nc_stop()
# the learning pass of cost_demo ("dfa"), {limit} training samples
s = ld.DIGITS_SETTINGS
task = ld.digits_task(s["steps"], s["rate"])
xtr, ytr = task.x_train[:{limit}], task.y_train[:{limit}]
limg = ld.digits_image("dfa", seed=0)
tg = {{"out": ld.class_targets(ytr, 10, task.steps)}}
inf = neurochip.Emulator(limg)
inf.run({{"in": xtr[:4]}}); inf.reset(); inf.run({{"in": xtr}}); inf.reset()
marks.nc_start(); inf.run({{"in": xtr}}); marks.nc_stop()
warm = neurochip.Emulator(limg)
warm.learn({{"in": xtr[:4]}}, {{"out": tg["out"][:4]}})
lem = neurochip.Emulator(limg)
marks.nc_start(); lem.learn({{"in": xtr}}, tg, shuffle=0); marks.nc_stop()
print("RESULT", json.dumps({{"steps": {steps}, "learn_steps": len(ytr) * task.steps}}))
"""

# nc_stop dumps the counts of the part since nc_start (one dump per bracket, in order).
_MARKS_C = r"""
#include <valgrind/callgrind.h>
void nc_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void nc_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS; }
"""
_COUNT_PARTS = ("a_run", "inference_run", "learn_pass")
# Valgrind shows the program a CPU of its own (no AVX-512 ...), and Numba's cache is keyed on
# the CPU: the kernels would be compiled again under valgrind, very slowly. Both the native
# warm-up and the counted run therefore compile for one fixed x86-64 target valgrind runs.
_VALGRIND_CPU = {
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+crc32,+cx16,+cx8,+f16c,+fma,"
                           "+fxsr,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+sahf,+sse,+sse2,+sse3,"
                           "+sse4.1,+sse4.2,+ssse3,+xsave"),
}


def _build_marks(tmp: Path) -> Path:
    src, lib = tmp / "ncmarks.c", tmp / "libncmarks.so"
    src.write_text(_MARKS_C)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def _callgrind_totals(path: Path) -> int:
    # a dump triggered by a client request has "summary: 0" and the counts in "totals:"
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def _count(tree: Path, code: str, timeout: float, cache: Path, outdir: Path) -> dict[str, Any]:
    """``code`` natively (warms the Numba cache), then under callgrind: instructions of each
    bracketed part."""
    meta = _measure(tree, code, timeout, cache, _VALGRIND_CPU)
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1",
               NUMBA_CACHE_DIR=str(cache), PYTHONHASHSEED="0", **_VALGRIND_CPU)
    outdir.mkdir(parents=True, exist_ok=True)
    for f in outdir.glob("cg.out*"):
        f.unlink()
    base = outdir / "cg.out"
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
         f"--callgrind-out-file={base}", sys.executable, "-c", code],
        cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind in {tree} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    dumps = sorted(outdir.glob("cg.out.*"), key=lambda f: int(f.name.rsplit(".", 1)[1]))
    if len(dumps) != len(_COUNT_PARTS):
        raise RuntimeError(f"expected {len(_COUNT_PARTS)} callgrind dumps, got {dumps}")
    out: dict[str, Any] = {k: _callgrind_totals(f) for k, f in zip(_COUNT_PARTS, dumps)}
    out.update(meta)
    return out


def run_count(base: str, steps: int, learn_limit: int, timeout: float,
              keep: bool = False, keep_new_cache: bool = False) -> dict[str, Any]:
    """Instruction counts of both trees' steady-state parts (see ``--clock instructions``)."""
    commit = _git("rev-parse", base)
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    tmp = Path(tempfile.gettempdir()) / f"ab_bench_{commit[:12]}"
    old_tree = tmp / "old"
    if not (keep and (old_tree / ".git").exists()):
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                       capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])
        tmp.mkdir(parents=True)
        _git("worktree", "add", "--detach", str(old_tree), commit)
    trees = {"old": old_tree, "new": ROOT}
    caches = {"old": tmp / "numba_cache_old", "new": tmp / "numba_cache_new"}
    if not keep_new_cache:
        subprocess.run(["rm", "-rf", str(caches["new"])])
    code = _COUNT.format(lib=str(_build_marks(tmp)), steps=steps, limit=learn_limit)
    counts: dict[str, dict[str, Any]] = {}
    try:  # both trees at once: the counts do not depend on what else runs
        with ThreadPoolExecutor(2) as pool:
            futs = {name: pool.submit(_count, tree, code, timeout, caches[name],
                                      tmp / f"cg_{name}") for name, tree in trees.items()}
            print(f"counting old ({old_tree}) and new ({ROOT}) ...", flush=True)
            counts = {name: f.result() for name, f in futs.items()}
    finally:
        if not keep:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                           capture_output=True)
            subprocess.run(["rm", "-rf", str(tmp)])
    ratios = {k: counts["new"][k] / counts["old"][k] for k in _COUNT_PARTS}
    return {"base": commit, "head": head, "head_dirty": dirty, "clock": "instructions",
            "steps": steps, "learn_limit": learn_limit, "learn_steps": counts["new"]["learn_steps"],
            "instructions": counts, "ratio_new_over_old_instructions": ratios,
            "tool": "valgrind --tool=callgrind (Ir)", "machine": {"cpus": os.cpu_count()}}


def _print_count(res: dict[str, Any]) -> None:
    c, q = res["instructions"], res["ratio_new_over_old_instructions"]
    per = {"a_run": res["steps"], "inference_run": res["learn_steps"],
           "learn_pass": res["learn_steps"]}
    names = {"a_run": f"(a) run of {res['steps']} steps",
             "inference_run": f"learning bench inference ({res['learn_steps']} steps)",
             "learn_pass": f"learning pass ({res['learn_steps']} steps)"}
    rows = [("instructions", "old", "new", "old/step", "new/step", "new/old")]
    for k in _COUNT_PARTS:
        rows.append((names[k], f"{c['old'][k]:,}", f"{c['new'][k]:,}",
                     f"{c['old'][k] / per[k]:,.0f}", f"{c['new'][k] / per[k]:,.0f}",
                     f"{q[k]:.4f}"))
    w = [max(len(r[i]) for r in rows) for i in range(6)]
    print(f"\nold {res['base'][:10]}  new {res['head'][:10]}"
          f"{' (+ uncommitted changes)' if res['head_dirty'] else ''}, "
          f"instructions counted by callgrind (deterministic)")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  " + "  ".join(f"{r[i]:>{w[i]}}" for i in range(1, 6)))


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


_CPU_CLOCK = "import time\ntime.perf_counter = time.process_time\n"


def _measure(tree: Path, code: str, timeout: float, cache: Path,
             extra_env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter rooted at ``tree`` (Numba's cache in ``cache``);
    its RESULT line, parsed."""
    env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1",
               NUMBA_CACHE_DIR=str(cache), **(extra_env or {}))
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
    ap.add_argument("--clock", choices=("cpu", "wall", "instructions"), default="cpu",
                    help="time with the process's CPU time (default) or the wall clock, or "
                         "count instructions with callgrind")
    ap.add_argument("--keep", action="store_true",
                    help="keep the old checkout (and its compiled kernels) for the next run")
    ap.add_argument("--keep-new-cache", action="store_true",
                    help="with --keep: reuse the new tree's Numba cache too (only when no "
                         "kernel changed since it was filled)")
    ap.add_argument("--out", default="bench_results/ab_bench.json")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.learn_limit < 1 or args.learn_repeats < 1:
        print("ab_bench: --rounds, --steps, --learn-limit and --learn-repeats must be >= 1",
              file=sys.stderr)
        return 2
    base = args.base or _git("merge-base", "HEAD", "main")
    if args.clock == "instructions":
        res = run_count(base, args.steps, args.learn_limit, args.timeout, args.keep,
                        args.keep and args.keep_new_cache)
        _print_count(res)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2))
        print(f"\nwrote {out}")
        return 0
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
