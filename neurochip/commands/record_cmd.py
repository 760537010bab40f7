"""``neurochip record IMAGE --input X.npz -o RUN.ngold``: record golden vectors."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "record", help="record a run as golden vectors (.ngold)",
        description="Run a chip image on a board (the emulator by default) and store the "
                    "inputs, every spike train, probe (u and v of every LIF population by "
                    "default), counter and the weights, with the hashes of the image and "
                    "of its hardware spec, in RUN.ngold (a zip of .npy arrays and JSON). "
                    "Replay it on any board with 'neurochip replay'.")
    p.add_argument("image", metavar="IMAGE", help="chip image file (.nchip)")
    p.add_argument("--input", "-i", required=True, metavar="X.npz", dest="input",
                   help="input spikes, one array per input population ((T, n) or (B, T, n))")
    p.add_argument("-o", "--output", required=True, metavar="RUN.ngold",
                   help="where to write the recording")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="steps to run (default: input length + the image's output latency)")
    p.add_argument("--probe", action="append", default=None, metavar="POP.v",
                   help="probes to record (repeatable; default: u and v of every LIF "
                        "population)")
    p.add_argument("--board", default="emulator", metavar="URI",
                   help="board that records (default emulator)")
    p.set_defaults(func=_record)


def _record(args: argparse.Namespace) -> int:
    from neurochip import golden
    from neurochip.commands.run_cmd import load_image, load_inputs, output_latency
    from neurochip.errors import ConfigError

    image = load_image(args.image)
    inputs = load_inputs(args.input, image)
    steps = args.steps
    if steps is not None and steps < 0:
        raise ConfigError(f"{steps} is negative", where="record", field="--steps")
    if steps is None:
        steps = max(a.shape[-2] for a in inputs.values()) + output_latency(image)
    rec = golden.record(image, inputs, steps, probes=args.probe or "all", board=args.board,
                        path=args.output)
    n = sum(int(s.sum()) for s in rec.result.spikes.values())
    print(f"recorded {rec.steps} steps on {rec.meta['board'].get('board')}: {n} spikes, "
          f"{len(rec.probes)} probes, image {rec.image_hash[:12]} -> {args.output}")
    return 0
