"""``neurochip train TASK``: train a task, write NIR, check it on the chip.

Light on purpose (``neurochip --help`` imports it): everything heavy is imported inside
:func:`run`.
"""

from __future__ import annotations

import argparse
from typing import Any

from neurochip.commands import float_arg, int_arg
from neurochip.core.surrogates import SURROGATE_NAMES

__all__ = ["register", "run"]

_TASK_NAMES = ("digits", "xor", "randman", "superspike")
_SURROGATES = SURROGATE_NAMES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train a spiking network with surrogate gradients and check it on the chip",
        description="Train TASK with BPTT and surrogate gradients (float model in the chip's "
                    "order of operations), optionally fine-tune it on the chip's fixed-point "
                    "dynamics, write it as NIR (with a .json record and a learning-curve "
                    ".png next to it), compile it for the chip and evaluate the test split "
                    "on the emulator.")
    p.add_argument("task", choices=_TASK_NAMES, metavar="TASK",
                   help=f"one of {', '.join(_TASK_NAMES)}")
    p.add_argument("-o", "--output", default=None,
                   help="NIR file to write (default: TASK.nir in the current directory)")
    p.add_argument("--hidden", type=int_arg(1, 1 << 20), default=None, help="hidden neurons")
    p.add_argument("--steps", type=int_arg(1, 1_000_000), default=None, help="input time steps T")
    p.add_argument("--surrogate", choices=_SURROGATES, default=None,
                   help="surrogate derivative shape")
    p.add_argument("--steepness", type=float_arg(positive=True), default=None,
                   help="surrogate steepness")
    p.add_argument("--epochs", type=int_arg(0, 1_000_000), default=None,
                   help="float training epochs")
    p.add_argument("--recurrent", action="store_true", help="make the hidden layer recurrent")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None,
                   help="precision of float training (default float64, the reference; "
                        "float32 is faster, most on long sparse inputs)")
    p.add_argument("--from", dest="init", metavar="NIR", default=None,
                   help="start from this NIR network instead of random weights (with "
                        "--epochs 0: only fine-tune and evaluate it)")
    p.add_argument("--seed", type=int_arg(0, 2**32 - 1), default=0,
                   help="seed of weights, batches and data")
    p.add_argument("--chip-aware", metavar="HW", default=None,
                   help="fine-tune on this chip's fixed-point dynamics after float training")
    p.add_argument("--weight-bits", type=int_arg(1, 64), default=None,
                   help="weight precision on the chip (default: the chip's)")
    p.add_argument("--finetune-epochs", type=int_arg(0, 1_000_000), default=None,
                   help="epochs of chip-aware fine-tuning")
    p.add_argument("--hw", default=None,
                   help="chip to evaluate on (default: the --chip-aware chip, else loihi_like)")
    p.add_argument("--curve", default=None,
                   help="learning-curve picture (default: the output with .png)")
    p.add_argument("--no-chip", action="store_true", help="skip compiling and the chip run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (options in a fixed order)."""
    parts = ["neurochip", "train", args.task]
    for flag, value in (("--hidden", args.hidden), ("--steps", args.steps),
                        ("--surrogate", args.surrogate), ("--steepness", args.steepness),
                        ("--epochs", args.epochs), ("--from", args.init),
                        ("--seed", args.seed),
                        ("--chip-aware", args.chip_aware), ("--weight-bits", args.weight_bits),
                        ("--finetune-epochs", args.finetune_epochs), ("--hw", args.hw),
                        ("--dtype", args.dtype)):
        if value is not None:
            parts += [flag, str(value)]
    if args.recurrent:
        parts.append("--recurrent")
    if args.no_chip:
        parts.append("--no-chip")
    parts += ["-o", str(args.output)]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from neurochip.tasks.training import get_task, train_task

    task = get_task(args.task)
    init = None
    if args.init is not None:
        from compiler.training.nir_io import import_nir

        init = import_nir(args.init)
    if args.output is None:
        args.output = f"{args.task}.nir"
    out = Path(args.output)
    curve = Path(args.curve) if args.curve else out.with_suffix(".png")
    record = out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    bars: dict[str, Any] = {}

    def on_batch(phase: str, done: int, total: int) -> None:
        if args.quiet:
            return
        from tqdm import tqdm

        bar = bars.get(phase)
        if bar is None:
            bar = bars[phase] = tqdm(total=total, desc=f"{task.name} ({phase})", unit="sample",
                                     leave=True, dynamic_ncols=True)
        bar.update(done - bar.n)

    def on_epoch(phase: str, stats: Any) -> None:
        bar = bars.get(phase)
        if bar is not None:
            post = {"epoch": stats.epoch, "loss": f"{stats.loss:.4f}"}
            if stats.test_metric is not None:
                post["test"] = (f"{100 * stats.test_metric:.1f}%" if task.metric == "accuracy"
                                else f"{stats.test_metric:.3f}")
            bar.set_postfix(post)

    try:
        res = train_task(task, hidden=args.hidden, steps=args.steps, surrogate=args.surrogate,
                         steepness=args.steepness, epochs=args.epochs, seed=args.seed,
                         chip_aware=args.chip_aware, weight_bits=args.weight_bits,
                         finetune_epochs=args.finetune_epochs, hw=args.hw,
                         evaluate_chip=not args.no_chip, nir_path=str(out),
                         recurrent=args.recurrent, init=init, dtype=args.dtype,
                         on_epoch=on_epoch, on_batch=on_batch)
    finally:
        for bar in bars.values():
            bar.close()

    from compiler.training.plot import plot_learning_curve

    plot_learning_curve(res.history, curve, finetune=res.finetune_history, metric=task.metric,
                        chip_metric=res.chip_metric,
                        title=f"neurochip train {task.name} (seed {args.seed})")
    acc = task.metric == "accuracy"
    rec: dict[str, Any] = {
        "command": _command(args), "seed": args.seed, "task": task.name,
        "settings": res.settings, "data": res.data_info, "metric": task.metric,
        "float": res.float_metric, "chip": res.chip_metric,
    }
    out_layer = res.net.readout
    rec["chip_run"] = {
        "input": res.net.input_name, "run_steps": res.net.steps(res.settings["steps"]),
        "readout": f"{out_layer.name}.v" if not out_layer.spiking else f"{out_layer.name} spikes",
        "decode": task.loss.decoder,
    }
    if args.chip_aware:
        rec["float_before_finetune"] = res.float_metric_before_finetune
    rec["files"] = {"model": out.name, "curve": curve.name}
    from neurochip.core.safeio import atomic_write

    with atomic_write(record, "w") as fh:
        fh.write(json.dumps(rec, indent=2, sort_keys=True) + "\n")

    def fmt(v: float) -> str:
        return f"{100 * v:.1f} %" if acc else f"{v:.3f}"

    name = "accuracy" if acc else "van Rossum distance"
    if args.chip_aware:
        print(f"float {name} before chip-aware fine-tuning: "
              f"{fmt(res.float_metric_before_finetune)}")
    print(f"float {name}: {fmt(res.float_metric)}")
    if res.chip_metric is not None:
        wb = f", {args.weight_bits}-bit weights" if args.weight_bits else ""
        print(f"chip {name}: {fmt(res.chip_metric)}")
        print(f"  on {res.settings['hw']}{wb}: {res.chip_energy_uj:.2f} uJ per inference "
              "(emulator energy model)")
    print(f"wrote {out}, {record}, {curve}  (training {res.train_seconds:.1f} s"
          + (f" + fine-tuning {res.finetune_seconds:.1f} s" if args.chip_aware else "") + ")")
    return 0
