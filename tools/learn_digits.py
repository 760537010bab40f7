"""Digits learned entirely on chip (in the emulator) from random weights, with DFA or DCLL.

    .venv/bin/python tools/learn_digits.py --rule dfa --passes 8 [--out learned.nchip]
                                           [--plot curve.png] [--no-float]

The 64-100-10 LIF network starts from random 8-bit weights; every pass streams the 1,347
training digits through ``Emulator.learn`` (the learning rate halves every 3 passes) and
measures the test accuracy. The float64 reference rule runs the same protocol.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rule", default="dfa", choices=("dfa", "fa", "dcll"))
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="first N training samples only")
    ap.add_argument("--out", default=None, help="write the learned image here")
    ap.add_argument("--plot", default=None, help="write the learning curve here (PNG)")
    ap.add_argument("--no-float", action="store_true", help="skip the float64 reference")
    args = ap.parse_args(argv)
    from neurochip.tasks.learning_demos import digits_demo

    def report(k: int, r: dict) -> None:
        print(f"pass {k + 1}: test accuracy {100 * r['accuracy'][-1]:.1f} % "
              f"({r['wall_s'][-1]:.1f} s, {r['counters'][-1]['learn_updates']:.0f} updates, "
              f"{r['energy_uj'][-1]:.0f} uJ on chip)")

    r = digits_demo(args.rule, passes=args.passes, seed=args.seed, limit=args.limit,
                    float_reference=not args.no_float, progress=True, on_pass=report)
    print(f"{args.rule.upper()} on-chip accuracy: {100 * r['final_accuracy']:.1f} %"
          f" (initial {100 * r['initial_accuracy']:.1f} %)")
    if r.get("float_accuracy"):
        print(f"float64 reference: {100 * r['float_final_accuracy']:.1f} %")
    if args.out:
        r["learned_image"].save(args.out)
        print(f"wrote {args.out}")
    if args.plot:
        from bench_learning import plot_curves

        plot_curves({f"digits_{args.rule}": r}, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
