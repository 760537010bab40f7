"""``neurochip learn``: train a chip image on chip (in the emulator) and write the result.

    neurochip learn IMAGE --rule NAME --task digits --epochs E [--out LEARNED] [--curve PNG]

IMAGE is a chip image whose network fits the task (digits: 64 inputs -> ... -> 10 outputs);
``--create`` first writes a random 64-100-10 network to IMAGE. The rule (dfa, fa, dcll) is
configured with :func:`neurochip.learning.preset` unless ``--rule image`` keeps the
image's own learning configuration. A progress bar runs per pass; after every pass the test
accuracy is measured; the learning curve goes to a PNG and the learned image to LEARNED.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from neurochip.commands import int_arg

__all__ = ["register"]

RULES = ("dfa", "fa", "dcll", "image")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "learn", help="learn on chip (in the emulator) and write the learned image",
        description="Stream a task's training split through the emulator with on-chip "
                    "learning, measure test accuracy after every pass, write the learned "
                    "image and a learning-curve PNG.")
    p.add_argument("image", help="chip image (.nchip) to start from")
    p.add_argument("--rule", default="dfa", choices=RULES,
                   help="learning rule (image: keep the image's own configuration)")
    p.add_argument("--task", default="digits", choices=("digits",), help="the task")
    p.add_argument("--epochs", type=int_arg(0, 1_000_000), default=3,
                   help="passes over the training split")
    p.add_argument("--out", help="learned image (default: IMAGE with .learned.nchip)")
    p.add_argument("--curve", help="learning-curve PNG (default: IMAGE with .curve.png)")
    p.add_argument("--create", action="store_true",
                   help="first write a random 64-100-10 digits network to IMAGE")
    p.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0,
                   help="seed of the network, PRNGs, order")
    p.add_argument("--lr-hidden", type=int_arg(0, 63), default=19,
                   help="hidden learning-rate shift")
    p.add_argument("--lr-out", type=int_arg(0, 63), default=14, help="output learning-rate shift")
    p.add_argument("--epoch", type=int_arg(1, 1_000_000), default=10,
                   help="steps between weight updates")
    p.add_argument("--decay-every", type=int_arg(0, 1_000_000), default=3,
                   help="halve the learning rate every N passes (0: never)")
    p.add_argument("--limit", type=int_arg(1, 1 << 31), default=None,
                   help="use the first N training samples")
    p.add_argument("--backend", default="numba", choices=("numba", "reference"))
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import neurochip
    from neurochip.core.errors import ConfigError
    from neurochip.learning import add_learning, preset
    from neurochip.tasks.digits import N_CLASSES, N_PIXELS, digits_network, digits_task
    from neurochip.tasks.learning import class_targets, predict
    from neurochip.tasks.learning_demos import DIGITS_SETTINGS

    path = Path(args.image)
    if args.create:
        img0 = neurochip.compile(digits_network(seed=args.seed), "loihi_like")
        img0.save(path)
        print(f"wrote a random 64-100-10 digits network to {path}")
    image = neurochip.ChipImage.load(path)
    if args.epochs < 1:
        raise ConfigError(f"must be >= 1, got {args.epochs}", where="neurochip learn",
                          field="--epochs")
    ins = image.input_populations
    outs = image.lif_populations
    if len(ins) != 1 or ins[0].size != N_PIXELS or outs[-1].size != N_CLASSES:
        raise ConfigError("the digits task needs 64 inputs and 10 outputs (the last LIF "
                          "population); use --create for a random one", where=str(path),
                          field="task")
    if args.rule == "image":
        if not image.learning:
            raise ConfigError("--rule image: the image has no learning configuration",
                              where=str(path), field="rule")
    else:
        image = add_learning(image, preset(image, args.rule, lr_hidden=args.lr_hidden,
                                           lr_out=args.lr_out, epoch=args.epoch,
                                           seed=args.seed))
    task = digits_task(DIGITS_SETTINGS["steps"], DIGITS_SETTINGS["rate"])
    xtr, ytr = task.x_train[: args.limit], task.y_train[: args.limit]
    out_name = outs[-1].name
    inp = ins[0].name
    em = neurochip.Emulator(image, backend=args.backend)
    targets = {out_name: class_targets(ytr, N_CLASSES, task.steps)}

    def accuracy(img: neurochip.ChipImage) -> float:
        return float((predict(img, task.x_test, out_name) == task.y_test).mean())

    curve = [accuracy(image)]
    if not args.json:
        print(f"learning {args.task} on chip with {args.rule}: {len(ytr)} samples x "
              f"{args.epochs} passes; initial test accuracy {100 * curve[0]:.1f} %")
    totals: list[dict[str, float]] = []
    for k in range(args.epochs):
        if args.decay_every > 0:
            em.set_rate_shift(k // args.decay_every)
        h = em.learn({inp: xtr}, targets, shuffle=args.seed + k,
                     progress=not (args.no_progress or args.json))
        curve.append(accuracy(em.learned_image()))
        t = h.totals()
        totals.append(t)
        if not args.json:
            print(f"pass {k + 1}/{args.epochs}: test accuracy {100 * curve[-1]:.1f} %, "
                  f"{t['learn_updates']:.0f} weight updates, {t['energy_pj'] / 1e6:.1f} uJ, "
                  f"{h.wall_s:.1f} s")
    learned = em.learned_image()
    out = Path(args.out) if args.out else path.with_name(path.stem + ".learned.nchip")
    learned.save(out)
    png = Path(args.curve) if args.curve else path.with_name(path.stem + ".curve.png")
    _plot(curve, png, f"{args.task}, {args.rule} on chip ({image.hw.name})")
    result = {"rule": args.rule, "task": args.task, "accuracy": curve, "learned_image": str(out),
              "curve_png": str(png), "energy_uj": [t["energy_pj"] / 1e6 for t in totals],
              "weight_updates": [t["learn_updates"] for t in totals]}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"wrote {out} and {png}; final test accuracy {100 * curve[-1]:.1f} %")
    return 0


def _plot(curve: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(len(curve)), [100 * c for c in curve], "o-")
    ax.set_xlabel("pass over the training split")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from neurochip.core.safeio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
