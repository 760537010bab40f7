"""Cost-model benchmark: agreement with SANA-FE, and what cost accounting costs.

    python tools/bench_costs.py [--quick] [--steps 20] [--out bench_results/costs.json]

(1) SANA-FE cross-check (``neurochip.crosscheck``): each network of ``crosscheck.cases``
    runs in our emulator under ``loihi_like``, ``loihi_sanafe`` (SANA-FE's Loihi costs,
    the message schedule, barrier table), ``loihi_sanafe`` without the message schedule
    (pipelined core and port contention: "pipelined") and with the plain serial core and
    no contention ("serial"), and in SANA-FE 2.2.9 (``sanafe.load_loihi()``, its
    ``detailed`` timing model, and its ``simple`` one for latency) with the same placement
    and input spikes. Printed per network: mean energy and latency per step and their
    relative differences, and whether every neuron's spike count is equal.
(2) Accounting cost on bench (a) of ``tools/bench_emulator.py`` (1024 -> 1024 dense, 5 %
    input, 1000 steps): the emulator's whole run, and inside the same process the cost
    model alone on that run's counters; the ratio is what accounting adds. Also the
    per-layer breakdown (``breakdown=True``), which is optional.
Prints tables and writes JSON. Times on a shared machine are noisy; the ratios are
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import neurochip
from neurochip import crosscheck
from neurochip.core.hw import HardwareSpec, load_hw


def serial_sanafe() -> HardwareSpec:
    d = load_hw("loihi_sanafe").to_dict()
    d["name"] = "loihi_sanafe_serial"
    d["cost_model"] |= {"core": "serial", "noc_contention": False}
    d["cost_model"].pop("noc_schedule", None)
    return HardwareSpec.from_dict(d, source="loihi_sanafe, serial core")


def pipelined_sanafe() -> HardwareSpec:
    d = load_hw("loihi_sanafe").to_dict()
    d["name"] = "loihi_sanafe_pipelined"
    d["cost_model"].pop("noc_schedule", None)
    return HardwareSpec.from_dict(d, source="loihi_sanafe without the message schedule")


def cross_check(steps: int, quick: bool) -> list[dict[str, Any]]:
    variants: dict[str, str | HardwareSpec] = {
        "loihi_like": "loihi_like", "loihi_sanafe": "loihi_sanafe",
        "sanafe_pipelined": pipelined_sanafe(), "sanafe_serial": serial_sanafe()}
    rows = []
    for case in crosscheck.cases(steps=steps, small=quick):
        rows.append(crosscheck.compare(case, variants))
    return rows


def accounting_cost(T: int) -> dict[str, Any]:
    from emulator.chip import Emulator
    from emulator.state import RunState
    from emulator.tables import COUNTER_NAMES, N_COUNTERS
    from emulator.timing import account

    rng = np.random.default_rng(0)
    net = neurochip.Network(name="dense1024")
    net.add_input("in", 1024)
    net.add_lif("lif", 1024, du=409, dv=204, vth=2000)
    net.connect("in", "lif", rng.integers(-128, 128, (1024, 1024)) * 2)
    img = neurochip.compile(net, "loihi_like")
    x = np.random.default_rng(1).random((T, 1024)) < 0.05
    em = Emulator(img)
    em.run({"in": x[:5]}, spikes=None)
    em.reset()
    em.run({"in": x[:5]}, breakdown=True)
    rs: RunState = em.run_state
    run_s, acc_s, bd_s = [], [], []
    for _ in range(7):
        em.reset()
        t = time.perf_counter()
        r = em.run({"in": x}, spikes=None)
        run_s.append(time.perf_counter() - t)
        raw = np.stack([r.counters[n] for n in COUNTER_NAMES[:N_COUNTERS]], axis=-1)[None]
        t = time.perf_counter()
        account(raw, rs.tables.slot_neurons, rs.cost)
        acc_s.append(time.perf_counter() - t)
        em.reset()
        t = time.perf_counter()
        em.run({"in": x}, breakdown=True)
        bd_s.append(time.perf_counter() - t)
    run, acc, bd = min(run_s), min(acc_s), min(bd_s)
    return {"steps": T, "cores": len(img.cores), "run_s": run, "accounting_s": acc,
            "accounting_share": acc / run, "run_with_breakdown_s": bd,
            "breakdown_ratio": bd / run}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small networks only")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="bench_results/costs.json")
    a = ap.parse_args(argv)
    rows = cross_check(a.steps, a.quick)
    hdr = (f"{'network':<14}{'cores':>6}{'spikes':>8}{'equal':>6} | {'SANA-FE pJ':>11}"
           f"{'like':>8}{'sanafe':>8}{'serial':>8} | {'SANA-FE ns':>11}{'like':>8}"
           f"{'sanafe':>8}{'piped':>8}{'serial':>8} | {'simple ns':>10}{'sanafe':>8}")
    print("per step, mean over the run; our figures as difference from SANA-FE's")
    print(hdr)
    for r in rows:
        pct = {k: f"{100 * v:>+7.1f}%" for k, v in r.items() if k.endswith(("_err",
                                                                           "_err_simple"))}
        print(f"{r['network']:<14}{r['cores']:>6}{r['spikes']:>8}"
              f"{'yes' if r['spikes_equal'] else 'NO':>6} | {r['sanafe_energy_pj']:>11.0f}"
              f"{pct['loihi_like_energy_err']}{pct['loihi_sanafe_energy_err']}"
              f"{pct['sanafe_serial_energy_err']} | {r['sanafe_latency_ns']:>11.1f}"
              f"{pct['loihi_like_latency_err']}{pct['loihi_sanafe_latency_err']}"
              f"{pct['sanafe_pipelined_latency_err']}{pct['sanafe_serial_latency_err']}"
              f" | {r['sanafe_simple_latency_ns']:>10.1f}"
              f"{pct['loihi_sanafe_latency_err_simple']}")
    within = [r for r in rows if abs(r["loihi_sanafe_energy_err"]) <= 0.1
              and abs(r["loihi_sanafe_latency_err"]) <= 0.1]
    piped = [r for r in rows if abs(r["sanafe_pipelined_energy_err"]) <= 0.1
             and abs(r["sanafe_pipelined_latency_err"]) <= 0.1]
    simple = [r for r in rows if abs(r["loihi_sanafe_energy_err"]) <= 0.1
              and abs(r["loihi_sanafe_latency_err_simple"]) <= 0.1]
    print(f"loihi_sanafe within 10 % of SANA-FE (energy and latency): {len(within)} of "
          f"{len(rows)} networks against its detailed timing model, {len(simple)} of "
          f"{len(rows)} against its simple one; without the message schedule {len(piped)} "
          f"of {len(rows)} against the detailed one; spike counts equal: "
          f"{sum(r['spikes_equal'] for r in rows)} of {len(rows)}")
    acc = accounting_cost(200 if a.quick else 1000)
    print(f"bench (a), {acc['steps']} steps: run {acc['run_s'] * 1e3:.1f} ms, cost accounting "
          f"{acc['accounting_s'] * 1e3:.2f} ms = {100 * acc['accounting_share']:.2f} % of the "
          f"run; with the per-layer breakdown x{acc['breakdown_ratio']:.3f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cross_check": rows, "accounting": acc}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
