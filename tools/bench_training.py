"""Benchmark of surrogate-gradient training that knows the chip; prints tables, writes JSON.

    python tools/bench_training.py                 # full run (about 10 min on 2 idle cores)
    python tools/bench_training.py --quick         # smaller sweeps (about 2 min)
    python tools/bench_training.py --out bench_results/training.json

Sections and targets:

* gradient check: BPTT vs central differences on a tiny smooth network, every loss and
  reset mode -- relative error <= 1e-6;
* digits (64-128-10, T = 20, fixed split): float >= 96 % in <= 2 min; on ``loihi_like``
  >= 95.5 %; weight-width table (8/6/4/3 bits, several seeds): post-training quantization
  (PTQ) vs chip-aware fine-tuning, both measured on the chip; 4-bit chip-aware >= 94 %;
* temporal XOR, first-to-spike: 100 % of the four patterns on the chip (several seeds);
* Randman (10 classes, 100 units, 1 spike per unit): >= 90 % test accuracy, and accuracy
  against surrogate shape and steepness;
* SuperSpike target spike trains: van Rossum distance, float and on the chip.

Every accuracy "on the chip" is NIR export -> ``neurochip.compile`` -> the emulator.
Timings depend on the machine's load, which is recorded (``os.getloadavg``) next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def _table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}")
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


# ---------------------------------------------------------------------------- sections
def bench_gradcheck() -> dict[str, Any]:
    from compiler.training.gradcheck import check_all_losses

    t0 = time.perf_counter()
    errors = check_all_losses()
    worst = max(errors.values())
    _table("Gradient check (tiny 3-4-2 net, smooth step k=4, reset path kept, eps=1e-6)",
           ["loss / reset", "max rel. error"], [[k, f"{v:.2e}"] for k, v in errors.items()])
    print(f"  worst {worst:.2e} (target <= 1e-6): {'PASS' if worst <= 1e-6 else 'FAIL'}")
    return {"errors": errors, "worst": worst, "target": 1e-6, "pass": worst <= 1e-6,
            "seconds": time.perf_counter() - t0}


def bench_digits(seeds: list[int], bits: list[int]) -> dict[str, Any]:
    from neurochip.tasks.chip_eval import evaluate_on_chip
    from neurochip.tasks.training import finetune_on_chip, get_task, train_task

    task = get_task("digits")
    t0 = time.perf_counter()
    data = task.make_data(task.steps, 0)
    encode_s = time.perf_counter() - t0
    out: dict[str, Any] = {"config": {"hidden": task.hidden, "steps": task.steps,
                                      "epochs": task.epochs, "encoding": "regular",
                                      "split": data.info["split"]},
                           "seeds": {}}
    rows = []
    for seed in seeds:
        t1 = time.perf_counter()
        res = train_task(task, seed=seed, data=data)
        total = time.perf_counter() - t1
        entry: dict[str, Any] = {
            "float": res.float_metric, "chip_8bit": res.chip_metric,
            "train_seconds": res.train_seconds, "chip_seconds": res.chip_seconds,
            "total_seconds": total + encode_s, "energy_uj": res.chip_energy_uj,
            "ptq": {}, "chip_aware": {}}
        for wb in bits:
            ptq = evaluate_on_chip(res.net, task.loss, data.test, weight_bits=wb)
            net = res.net.copy()
            t2 = time.perf_counter()
            finetune_on_chip(task, net, data, "loihi_like", weight_bits=wb, seed=seed)
            ft_s = time.perf_counter() - t2
            aware = evaluate_on_chip(net, task.loss, data.test, weight_bits=wb)
            entry["ptq"][str(wb)] = ptq.metric
            entry["chip_aware"][str(wb)] = aware.metric
            entry.setdefault("finetune_seconds", {})[str(wb)] = ft_s
        out["seeds"][str(seed)] = entry
        rows.append([seed, _pct(entry["float"]), _pct(entry["chip_8bit"]),
                     f"{entry['train_seconds']:.1f}", f"{entry['energy_uj']:.2f}"]
                    + [f"{_pct(entry['ptq'][str(b)])} / {_pct(entry['chip_aware'][str(b)])}"
                       for b in bits])
    _table("Digits 64-128-10, T=20 (float training, then loihi_like via NIR; "
           "'PTQ / chip-aware' per weight width, on the chip)",
           ["seed", "float", "chip 8b", "train s", "uJ/inf"] + [f"{b}-bit" for b in bits],
           rows)
    s0 = out["seeds"][str(seeds[0])]

    def mean(key: str, b: int) -> float:
        return float(np.mean([out["seeds"][str(s)][key][str(b)] for s in seeds]))

    out["summary"] = {
        "float": s0["float"], "chip_8bit": s0["chip_8bit"],
        "train_seconds": s0["train_seconds"], "total_seconds": s0["total_seconds"],
        "mean_ptq": {str(b): mean("ptq", b) for b in bits},
        "mean_chip_aware": {str(b): mean("chip_aware", b) for b in bits},
    }
    targets = {"float >= 96 %": s0["float"] >= 0.96,
               "train <= 120 s": s0["train_seconds"] <= 120,
               "chip >= 95.5 %": (s0["chip_8bit"] or 0) >= 0.955}
    if 4 in bits:
        targets["4-bit chip-aware >= 94 %"] = s0["chip_aware"]["4"] >= 0.94
    out["targets"] = targets
    print("  mean over seeds, PTQ -> chip-aware: " + ", ".join(
        f"{b}-bit {_pct(out['summary']['mean_ptq'][str(b)])} -> "
        f"{_pct(out['summary']['mean_chip_aware'][str(b)])}" for b in bits))
    print(f"  targets (seed {seeds[0]}): "
          + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in targets.items()))
    return out


def bench_xor(seeds: list[int]) -> dict[str, Any]:
    from compiler.training.losses import first_spike_times
    from neurochip.tasks.chip_eval import run_readout
    from neurochip.tasks.training import train_task

    rows = []
    out: dict[str, Any] = {"seeds": {}}
    for seed in seeds:
        res = train_task("xor", seed=seed)
        ev = res.extra["chip"]
        data = res.task.make_data(res.task.steps, seed)
        spikes, _ = run_readout(ev.image, res.net, data.test.x)
        t_first, _ = first_spike_times(np.swapaxes(spikes.astype(float), 0, 1))
        out["seeds"][str(seed)] = {"float": res.float_metric, "chip": res.chip_metric,
                                   "chip_first_spike_steps": t_first.astype(int).tolist(),
                                   "labels": data.test.y.tolist(),
                                   "train_seconds": res.train_seconds}
        rows.append([seed, _pct(res.float_metric), _pct(res.chip_metric),
                     " ".join(f"{a}/{b}" for a, b in t_first.astype(int).tolist())])
    _table("Temporal XOR (3-16-2, first-to-spike; first spike step of out0/out1 on the chip "
           "for patterns EE, EL, LE, LL; labels 0 1 1 0)",
           ["seed", "float", "chip", "first spikes"], rows)
    ok = sum(v["chip"] == 1.0 for v in out["seeds"].values())
    out["chip_100_percent_seeds"] = f"{ok}/{len(seeds)}"
    out["pass"] = out["seeds"][str(seeds[0])]["chip"] == 1.0
    print(f"  100 % on the chip for {ok} of {len(seeds)} seeds")
    return out


def bench_randman(sweep_epochs: int, steepness: list[float]) -> dict[str, Any]:
    from compiler.training.surrogates import SURROGATE_NAMES
    from neurochip.tasks.training import get_task, train_task

    task = get_task("randman")
    data = task.make_data(task.steps, 0)
    res = train_task(task, seed=0, data=data)
    out: dict[str, Any] = {"config": data.info | {"hidden": task.hidden, "epochs": task.epochs},
                           "float": res.float_metric, "chip": res.chip_metric,
                           "train_seconds": res.train_seconds, "pass": res.float_metric >= 0.9}
    _table(f"Randman (10 classes, 100 units, 1 spike/unit, dim 2, T=100; 100-128-10, "
           f"{task.epochs} epochs)", ["float", "chip", "train s"],
           [[_pct(res.float_metric), _pct(res.chip_metric), f"{res.train_seconds:.0f}"]])
    table: dict[str, dict[str, float]] = {}
    for name in SURROGATE_NAMES:
        table[name] = {}
        for k in steepness:
            r = train_task(task, seed=0, data=data, surrogate=name, steepness=k,
                           epochs=sweep_epochs, evaluate_chip=False)
            table[name][f"{k:g}"] = r.float_metric
            print(f"    {name:13s} k={k:<6g} {_pct(r.float_metric)}", flush=True)
    out["surrogate_sweep"] = {"epochs": sweep_epochs, "accuracy": table}
    _table(f"Randman test accuracy vs surrogate shape and steepness k ({sweep_epochs} epochs, "
           "float)", ["surrogate"] + [f"k={k:g}" for k in steepness],
           [[n] + [_pct(table[n][f"{k:g}"]) for k in steepness] for n in table])
    return out


def bench_superspike() -> dict[str, Any]:
    from neurochip.tasks.chip_eval import run_readout
    from neurochip.tasks.training import get_task, train_task

    task = get_task("superspike")
    data = task.make_data(task.steps, 0)
    silent = task.loss.van_rossum_distance(np.zeros_like(data.test.y), data.test.y)
    res = train_task(task, seed=0, data=data)
    spikes, _ = run_readout(res.extra["chip"].image, res.net, data.test.x)
    hit = total = 0
    for p in range(len(data.test.y)):
        for o in range(data.test.y.shape[2]):
            targets = np.flatnonzero(data.test.y[p, :, o])
            got = np.flatnonzero(spikes[p, :, o])
            total += len(targets)
            hit += sum(bool(got.size) and np.abs(got - t).min() <= 2 for t in targets)
    out = {"silent_distance": silent, "float": res.float_metric, "chip": res.chip_metric,
           "chip_target_spikes_within_2_steps": f"{hit}/{total}",
           "train_seconds": res.train_seconds}
    _table("SuperSpike target spike trains (100-64-2, van Rossum tau=5; lower is better)",
           ["silent output", "float", "chip", "targets hit +-2 steps (chip)"],
           [[f"{silent:.2f}", f"{res.float_metric:.2f}", f"{res.chip_metric:.2f}",
             f"{hit}/{total}"]])
    return out


TORCH_PYTHON = os.environ.get("NEUROCHIP_TORCH_PYTHON", "/work/torchenv/bin/python")


def _speed_cases(quick: bool) -> dict[str, dict[str, Any]]:
    """The two training workloads: the digits task's own data and network, and an
    SHD-sized one (700 inputs at ~1 % density, 256 recurrent, 20 readouts, T = 100)."""
    from compiler.training import LayerSpec, SpikingNet
    from neurochip.tasks.training import get_task

    task = get_task("digits")
    data = task.make_data(task.steps, 0)
    n_dig = 4 * task.batch_size
    dig_net = SpikingNet.build(task.n_in, task.layers(), seed=0, gain=task.gain)
    rng = np.random.default_rng(0)
    B, T = 32, 100
    n_shd = 4 * B
    shd_x = rng.random((n_shd, T, 700)) < 0.01
    shd_net = SpikingNet.build(700, [LayerSpec("hid", 256, recurrent=True),
                                     LayerSpec("out", 20, spiking=False)], seed=0,
                               gain=(2.0, 1.0))
    common = {"alpha": 0.75, "beta": 0.875, "threshold": 1.0, "steepness": task.steepness,
              "lr": task.lr}
    return {
        "digits": {"X": data.train.x[:n_dig], "Y": data.train.y[:n_dig], "net": dig_net,
                   "config": {**common, "batch": task.batch_size,
                              "steps": dig_net.steps(task.steps),
                              "shape": f"{task.n_in}-{task.hidden}-{task.n_out}, "
                                       f"T={task.steps}, batch {task.batch_size}"}},
        "shd": {"X": shd_x, "Y": rng.integers(0, 20, n_shd), "net": shd_net,
                "config": {**common, "batch": B, "steps": shd_net.steps(T),
                           "shape": f"700-256r-20, T={T}, batch {B}, inputs 1 % non-zero"}},
    }


class _OursRun:
    """Mini-batches as :func:`compiler.training.fit` trains them (same calls)."""

    def __init__(self, case: dict[str, Any], dtype: str) -> None:
        from compiler.training import Adam, Loss, Surrogate
        from compiler.training.trainer import FloatForward

        c = case["config"]
        self.case, self.dtype = case, dtype
        self.net = case["net"].copy()
        self.loss = Loss("ce_max")
        self.fn = Surrogate("fast_sigmoid", c["steepness"])
        self.opt = Adam(c["lr"])
        self.fwd = FloatForward(dtype, reuse=True)

    def run(self, batches: int) -> list[float]:
        from compiler.training.bptt import backward

        c = self.case["config"]
        X, Y = self.case["X"], self.case["Y"]
        B = c["batch"]
        n = len(X) // B
        times = []
        for b in range(batches):
            t0 = time.perf_counter()
            idx = np.arange((b % n) * B, (b % n + 1) * B)
            xb = self.fwd.inputs(X, idx, self.net.n_in, c["steps"])
            tr, used = self.fwd(self.net, xb, self.fn)
            v = self.loss(tr, Y[idx], self.net)
            g = backward(used, tr, self.fn, dS=v.dS, dP=v.dP, workspace=self.fwd.workspace)
            self.opt.step(self.net.params, g)
            times.append(time.perf_counter() - t0)
        return times

    def grads(self) -> dict[str, Any]:
        from compiler.training.bptt import backward

        c = self.case["config"]
        idx = np.arange(c["batch"])
        xb = self.fwd.inputs(self.case["X"], idx, self.net.n_in, c["steps"])
        tr, used = self.fwd(self.net, xb, self.fn)
        v = self.loss(tr, self.case["Y"][idx], self.net)
        g = backward(used, tr, self.fn, dS=v.dS, dP=v.dP)
        return {k: np.array(a, np.float64) for k, a in g.items()}


class _TorchPeer:
    """The torch side in its own interpreter (tools/bench_training_torch.py)."""

    def __init__(self, cases: dict[str, dict[str, Any]], path: Path, threads: int) -> None:
        import subprocess

        arrays: dict[str, Any] = {"cases": json.dumps(list(cases))}
        for name, c in cases.items():
            arrays[f"{name}/X"] = c["X"]
            arrays[f"{name}/Y"] = c["Y"]
            arrays[f"{name}/config"] = json.dumps(c["config"])
            p = c["net"].params
            arrays[f"{name}/W1"] = p["hid.W"]
            arrays[f"{name}/W2"] = p["out.W"]
            if "hid.V" in p:
                arrays[f"{name}/V1"] = p["hid.V"]
        np.savez(path, **arrays)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [TORCH_PYTHON, str(ROOT / "tools" / "bench_training_torch.py"), str(path),
             str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the torch side stopped (see its error above)")
        return dict(json.loads(line))

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _rel(a: dict[str, Any], b: dict[str, Any], names: dict[str, str]) -> float:
    return max(float(np.abs(a[o] - b[t]).max() / np.abs(b[t]).max()) for o, t in names.items())


def bench_speed(quick: bool, rounds: int, batches: int, threads: int) -> dict[str, Any]:
    """Per-batch training time against snnTorch and a plain torch loop, interleaved."""
    import tempfile

    cases = _speed_cases(quick)
    out: dict[str, Any] = {"rounds": rounds, "batches_per_round": batches,
                           "torch_threads": threads}
    impls = [("ours", "float32"), ("ours", "float64"), ("torch", "float32"),
             ("snntorch", "float32")]
    with tempfile.TemporaryDirectory() as tmp:
        peer = _TorchPeer(cases, Path(tmp) / "cases.npz", threads)
        out["torch_side"] = peer.info
        names = {"hid.W": "W1", "out.W": "W2", "hid.V": "V1"}
        for cname, case in cases.items():
            agree = {}
            for dt in ("float64", "float32"):
                mine = _OursRun(case, dt).grads()
                gpath = Path(tmp) / f"g_{cname}_{dt}.npz"
                peer.ask(case=cname, impl="torch", dtype=dt, grads=str(gpath))
                with np.load(gpath) as theirs:
                    agree[dt] = _rel(mine, dict(theirs),
                                     {o: t for o, t in names.items() if o in mine})
            runners = {f"ours {dt}": _OursRun(case, dt) for _, dt in impls[:2]}
            for r in runners.values():  # warm-up (compiles the kernels once)
                r.run(2)
            for impl, dt in impls[2:]:
                peer.ask(case=cname, impl=impl, dtype=dt, batches=2)
            times: dict[str, list[float]] = {f"{i} {d}": [] for i, d in impls}
            for rnd in range(rounds):
                order = impls[rnd % len(impls):] + impls[: rnd % len(impls)]
                for impl, dt in order:
                    key = f"{impl} {dt}"
                    if impl == "ours":
                        runners[key] = _OursRun(case, dt)
                        times[key] += runners[key].run(batches)
                    else:
                        times[key] += peer.ask(case=cname, impl=impl, dtype=dt,
                                               batches=batches)["times"]
            med = {k: float(np.median(v)) for k, v in times.items()}
            best = {k: float(np.min(v)) for k, v in times.items()}
            ours = med["ours float32"]
            ratios = {"snntorch": med["snntorch float32"] / ours,
                      "torch_loop": med["torch float32"] / ours,
                      "snntorch_vs_ours_float64": med["snntorch float32"] / med["ours float64"]}
            out[cname] = {"config": case["config"],
                          "median_ms": {k: 1e3 * v for k, v in med.items()},
                          "best_ms": {k: 1e3 * v for k, v in best.items()},
                          "ratios_median": ratios,
                          "grad_rel_diff_vs_torch_loop": agree}
            _table(f"Training speed, {cname} ({case['config']['shape']}); ms per batch "
                   f"(forward, loss, backward, Adam), {rounds} interleaved rounds of "
                   f"{batches} batches, torch with {threads} threads",
                   ["implementation", "median ms", "best ms"],
                   [[k, f"{1e3 * med[k]:.2f}", f"{1e3 * best[k]:.2f}"] for k in times])
            print(f"  {cname}: ours float32 vs snnTorch {ratios['snntorch']:.2f}x, vs torch "
                  f"float32 loop {ratios['torch_loop']:.2f}x; ours float64 vs snnTorch "
                  f"{ratios['snntorch_vs_ours_float64']:.2f}x")
            print(f"  {cname}: gradients vs the torch loop (max rel. diff): float64 "
                  f"{agree['float64']:.1e}, float32 {agree['float32']:.1e}", flush=True)
        peer.close()
    shd, dig = out["shd"]["ratios_median"], out["digits"]["ratios_median"]
    out["targets"] = {"shd >= 2x snnTorch": shd["snntorch"] >= 2.0,
                      "shd >= 1.2x torch float32 loop": shd["torch_loop"] >= 1.2,
                      "digits >= 3x snnTorch": dig["snntorch"] >= 3.0}
    print("  targets: " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}"
                                    for k, v in out["targets"].items()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds and a smaller sweep")
    ap.add_argument("--out", default=str(ROOT / "bench_results" / "training.json"))
    ap.add_argument("--only", nargs="*", default=None,
                    choices=["gradcheck", "speed", "digits", "xor", "randman", "superspike"])
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (speed)")
    ap.add_argument("--batches", type=int, default=5, help="batches per round (speed)")
    ap.add_argument("--torch-threads", type=int, default=2, help="torch threads (speed)")
    args = ap.parse_args()
    want = set(args.only or ["gradcheck", "speed", "digits", "xor", "randman", "superspike"])
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg_start": load0},
        "quick": args.quick,
    }
    if "gradcheck" in want:
        results["gradcheck"] = bench_gradcheck()
    if "speed" in want:
        results["speed"] = bench_speed(args.quick, 3 if args.quick else args.rounds,
                                       args.batches, args.torch_threads)
    if "digits" in want:
        results["digits"] = bench_digits([0] if args.quick else [0, 1, 2],
                                         [4] if args.quick else [8, 6, 4, 3])
    if "xor" in want:
        results["xor"] = bench_xor([0, 1] if args.quick else [0, 1, 2, 3, 4])
    if "randman" in want:
        results["randman"] = bench_randman(3 if args.quick else 6,
                                           [1, 10, 100] if args.quick
                                           else [0.3, 1, 3, 10, 30, 100])
    if "superspike" in want:
        results["superspike"] = bench_superspike()
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"\nwrote {out} ({results['seconds']:.0f} s; load average "
          f"{load0[0]:.1f} -> {results['machine']['loadavg_end'][0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
