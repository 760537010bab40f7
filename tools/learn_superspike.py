"""SuperSpike on chip: one LIF neuron learns a target spike train from frozen Poisson inputs.

    .venv/bin/python tools/learn_superspike.py [--trials 200] [--plot raster.png]

100 inputs fire a frozen Bernoulli pattern (5 % per step, 200 steps); the neuron starts from
small random weights and learns, with the SuperSpike rule (error x eligibility tag, eq. 17),
to fire at the 5 target steps. Prints the van Rossum distance before and after, for the
fixed-point engine and for its float64 reference.
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
    ap.add_argument("--trials", type=int, default=200, help="presentations per block")
    ap.add_argument("--blocks", type=int, default=3, help="blocks (rate halves after each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plot", default=None, help="distance curve PNG")
    args = ap.parse_args(argv)
    from neurochip.tasks.learning_demos import superspike_demo

    r = superspike_demo(trials=args.trials, blocks=args.blocks, seed=args.seed)
    print(f"target spikes at   {r['target_steps']}")
    print(f"initial spikes at  {r['initial_steps']}")
    print(f"learned spikes at  {r['final_steps']}")
    print(f"van Rossum distance {r['distance_initial']:.2f} -> {r['distance_final']:.2f} "
          f"({100 * r['reduction']:.1f} % less; float64 reference "
          f"{100 * r['float_reduction']:.1f} % less)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([args.trials * b for b in range(len(r["curve"]))], r["curve"], "o-")
        ax.set_xlabel("presentations")
        ax.set_ylabel("van Rossum distance")
        ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
