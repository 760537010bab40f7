"""``neurochip replay RUN.ngold --board URI``: replay golden vectors on a board."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay", help="replay golden vectors on a board and compare",
        description="Load the recording's image on a board, run its inputs and compare "
                    "everything with the recording: exactly by default, or within "
                    "tolerances. Prints the first divergence (step, population, neuron, "
                    "expected, got) and a summary. Exit status 0: reproduced; 1: diverged; "
                    "2: error (bad file, board cannot be opened).")
    p.add_argument("recording", metavar="RUN.ngold", help="recording from 'neurochip record'")
    p.add_argument("--board", default="emulator", metavar="URI",
                   help="board to check: emulator (default), reference, lava, "
                        "tcp://HOST:PORT, faulty:SPEC+INNER, ...")
    p.add_argument("--tolerance", action="append", default=[], metavar="KEY=VALUE",
                   help="jitter=STEPS (spike-time jitter), rate=FRACTION (spike-count "
                        "error per neuron), probe=ABS, probe:NAME=ABS (per probe), "
                        "counters=off; comma-separated or repeated")
    p.add_argument("--json", default=None, metavar="REPORT.json",
                   help="also write the report as JSON")
    p.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from neurochip import golden

    tol = golden.Tolerance.parse(args.tolerance)
    report = golden.replay(args.recording, args.board, tolerance=tol)
    print(report.summary())
    if args.json:
        out = {"ok": report.ok, "first": None if report.first is None else {
            **asdict(report.first), "text": str(report.first)},
            "counts": report.counts, "not_compared": report.not_compared,
            "board": report.board}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    return 0 if report.ok else 1
