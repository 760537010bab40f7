"""Temporal XOR (Fig. 6) learned on chip.

    .venv/bin/python tools/learn_xor.py [--repeats 100] [--jitter 1]

Inputs A and B each spike once, early or late (plus a reference spike at step 0); the class
is whether exactly one of them is late. Hidden LIF neurons receive the inputs through fixed
random axonal delays; both layers learn on chip with DFA. Accuracy is measured on fresh
jittered patterns.
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
    ap.add_argument("--repeats", type=int, default=100, help="copies of each pattern per block")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--jitter", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from neurochip.tasks.learning_demos import xor_demo

    r = xor_demo(repeats=args.repeats, blocks=args.blocks, jitter=args.jitter, seed=args.seed)
    curve = " -> ".join(f"{100 * a:.0f}" for a in [r["accuracy_initial"], *r["accuracy"]])
    print(f"temporal XOR test accuracy (%): {curve}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
