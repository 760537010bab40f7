"""On-chip adaptation of a compiled, offline-trained digits model to a changed input.

    .venv/bin/python tools/learn_adapt.py [--shift 1] [--noise 0.3] [--passes 2]

The 64-100-10 network is trained offline in float64 (the float reference of the DFA rule),
rounded to chip weights and compiled; its test accuracy drops on digits moved by one pixel
with uniform pixel noise. Learning on chip on the moved training digits recovers it.
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
    ap.add_argument("--shift", type=int, default=1)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--offline-passes", type=int, default=6)
    ap.add_argument("--passes", type=int, default=2, help="on-chip adaptation passes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the adapted image here")
    args = ap.parse_args(argv)
    from neurochip.tasks.learning_demos import adaptation_demo

    r = adaptation_demo(offline_passes=args.offline_passes, adapt_passes=args.passes,
                        shift=args.shift, noise=args.noise, seed=args.seed)
    print(f"offline-trained, compiled: clean {100 * r['clean_accuracy']:.1f} %, "
          f"changed input {100 * r['shifted_accuracy_before']:.1f} %")
    print(f"after on-chip adaptation: changed input {100 * r['shifted_accuracy_after']:.1f} % "
          f"(recovered {100 * r['recovered_fraction']:.0f} % of the loss); clean "
          f"{100 * r['clean_accuracy_after']:.1f} %")
    if args.out:
        r["learned_image"].save(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
