"""Benchmark of on-chip learning: accuracy, fidelity to the float rule, speed and cost.

    .venv/bin/python tools/bench_learning.py [--out bench_results/learning.json]
                                            [--plot docs/img/learning_curve.png] [--quick]

Prints a table (including the lines ``DFA on-chip accuracy: NN.N %`` and
``DCLL on-chip accuracy: NN.N %``: digits test split, learned entirely on the emulator from
random weights) and writes JSON. Measurements:

* digits, 64-100-10 LIF, 8-bit weights, DFA and DCLL: test accuracy after each pass, the
  float64 reference of the same rule under the same protocol, wall time of a pass;
* SuperSpike: van Rossum distance to the target train, before and after;
* temporal XOR: accuracy on jittered test patterns;
* adaptation: offline-trained (float64) model, compiled, adapted on chip to shifted and
  noisy digits; accuracy before and after, fraction of the loss recovered;
* cost: time per step of learning against inference (wall clock on one core, and chip
  latency from the cost model), cycles and energy per learning epoch;
* learning at scale: the same wall-clock ratio with 100, 1,000 and 4,000 hidden neurons
  (lines ``learning/inference wall ratio at N hidden: X.X``), on one thread (learning
  and the batched inference it is set against alike), and with two threads for
  information (the batched inference then spreads its samples over both threads; a
  learning stream runs one sample after another and spreads only its large weight
  updates).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


SCALE_HIDDEN = (100, 1000, 4000)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "learned_image"}


def plot_curves(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, color in (("dfa", "C0"), ("dcll", "C1")):
        r = results.get(f"digits_{name}")
        if not r:
            continue
        xs = range(len(r["accuracy"]) + 1)
        ax.plot(xs, [100 * a for a in [r["initial_accuracy"], *r["accuracy"]]], "o-",
                color=color, label=f"{name.upper()} on chip (fixed point)")
        if r.get("float_accuracy"):
            ax.plot(xs, [100 * a for a in [r["initial_accuracy"], *r["float_accuracy"]]], "--",
                    color=color, alpha=0.6, label=f"{name.upper()} float64 reference")
    ax.set_xlabel("pass over the training split (1,347 digits)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Digits learned on chip from random weights (64-100-10, 8-bit)", fontsize=10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench_results/learning.json")
    ap.add_argument("--plot", default=None, help="learning-curve PNG")
    ap.add_argument("--passes", type=int, default=8, help="passes for digits")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = ap.parse_args(argv)
    from neurochip.tasks.digits import digits_task
    from neurochip.tasks.learning_demos import (
        adaptation_demo,
        cost_demo,
        digits_demo,
        superspike_demo,
        xor_demo,
    )

    quick = args.quick
    limit = 200 if quick else None
    passes = 2 if quick else args.passes
    res: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version(),
                           "quick": quick}
    t_all = time.perf_counter()
    task = digits_task()
    for rule in ("dfa", "dcll"):
        t0 = time.perf_counter()
        r = digits_demo(rule, passes=passes, limit=limit, task=task)
        r["bench_wall_s"] = time.perf_counter() - t0
        res[f"digits_{rule}"] = _clean(r)
    t0 = time.perf_counter()
    res["superspike"] = _clean(superspike_demo(trials=40 if quick else 200))
    res["superspike"]["bench_wall_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res["xor"] = _clean(xor_demo(repeats=25 if quick else 100))
    res["xor"]["bench_wall_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res["adaptation"] = _clean(adaptation_demo(offline_passes=2 if quick else 6,
                                               limit=limit))
    res["adaptation"]["bench_wall_s"] = time.perf_counter() - t0
    res["cost"] = cost_demo("dfa", limit=limit)
    res["scale"] = {}
    for n_hidden in SCALE_HIDDEN:
        res["scale"][str(n_hidden)] = {
            str(th): {k: v for k, v in cost_demo("dfa", limit=limit, n_hidden=n_hidden,
                                                 threads=th).items()
                      if k.startswith("wall_") or k in ("steps", "threads", "n_hidden")}
            for th in (1, 2)}
    res["total_wall_s"] = time.perf_counter() - t_all

    dfa, dcll, c = res["digits_dfa"], res["digits_dcll"], res["cost"]
    ss, xo, ad = res["superspike"], res["xor"], res["adaptation"]
    pe = c["per_learning_epoch"]
    rows = [
        ("digits DFA, chip / float64 (%)",
         f"{100 * dfa['final_accuracy']:.1f} / {100 * dfa.get('float_final_accuracy', 0):.1f}"),
        ("digits DCLL, chip / float64 (%)",
         f"{100 * dcll['final_accuracy']:.1f} / {100 * dcll.get('float_final_accuracy', 0):.1f}"),
        ("passes, samples per pass", f"{dfa['passes']}, {dfa['samples_per_pass']}"),
        ("one pass, one core (s)", f"{c['wall_learning_pass_s']:.2f}"),
        ("SuperSpike van Rossum before -> after",
         f"{ss['distance_initial']:.1f} -> {ss['distance_final']:.2f} "
         f"({100 * ss['reduction']:.1f} % less; float {100 * ss.get('float_reduction', 0):.1f} %)"),
        ("temporal XOR accuracy (jitter 1)",
         f"{100 * xo['accuracy_initial']:.0f} -> {100 * xo['final_accuracy']:.1f} %"),
        ("adaptation clean / shifted before / after (%)",
         f"{100 * ad['clean_accuracy']:.1f} / {100 * ad['shifted_accuracy_before']:.1f} / "
         f"{100 * ad['shifted_accuracy_after']:.1f}"),
        ("adaptation: loss recovered", f"{100 * ad['recovered_fraction']:.0f} %"),
        ("wall us/step learning / inference (1 core)",
         f"{c['wall_learning_us_per_step']:.2f} / {c['wall_inference_us_per_step']:.2f} "
         f"= {c['wall_ratio']:.2f}x"),
        ("chip ns/step learning / inference",
         f"{c['chip_learning_ns_per_step']:.0f} / {c['chip_inference_ns_per_step']:.0f} "
         f"= {c['chip_ratio']:.2f}x"),
        (f"per learning epoch ({c['epoch_steps']} steps): cycles",
         f"{pe['cycles']:.0f} ({pe['latency_us']:.1f} us)"),
        ("per learning epoch: energy (nJ)",
         f"{pe['energy_nj']:.1f}, of which weight updates {pe['weight_update_energy_nj']:.1f} "
         f"({pe['weight_updates']:.0f} x {pe['learn_update_pj']:.0f} pJ)"),
        ("per learning epoch: trace updates, error messages",
         f"{pe['trace_updates']:.0f}, {pe['error_messages']:.1f}"),
    ]
    w = max(len(a) for a, _ in rows)
    print("On-chip learning benchmark (emulator, loihi_like costs)")
    print("-" * (w + 40))
    for a, b in rows:
        print(f"{a:<{w}}  {b}")
    print("-" * (w + 40))
    print("learning at scale: wall us/step, learning / batched inference (DFA, digits)")
    print(f"{'hidden':>8} {'1 thread':>26} {'2 threads':>26}")
    for n_hidden in SCALE_HIDDEN:
        sc = res["scale"][str(n_hidden)]
        cells = [f"{sc[t]['wall_learning_us_per_step']:.1f} / "
                 f"{sc[t]['wall_inference_us_per_step']:.1f} = {sc[t]['wall_ratio']:.2f}x"
                 for t in ("1", "2")]
        print(f"{n_hidden:>8} {cells[0]:>26} {cells[1]:>26}")
    for n_hidden in SCALE_HIDDEN:
        ratio = res["scale"][str(n_hidden)]["1"]["wall_ratio"]
        print(f"learning/inference wall ratio at {n_hidden} hidden: {ratio:.1f}")
    print(f"DFA on-chip accuracy: {100 * dfa['final_accuracy']:.1f} %")
    print(f"DCLL on-chip accuracy: {100 * dcll['final_accuracy']:.1f} %")
    print(f"total {res['total_wall_s']:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(f"wrote {out}")
    if args.plot:
        plot_curves(res, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
