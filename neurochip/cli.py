"""The ``neurochip`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; that module
stays light (heavy imports happen inside the command), so ``neurochip --help`` is fast.
Errors from the toolchain print as one clear message and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from neurochip.core.errors import NeurochipError
from neurochip.core.version import __version__

# Modules that register subcommands, in the order they are listed by --help.
COMMAND_MODULES = [
    "neurochip.commands.compile_cmd",
    "neurochip.commands.run_cmd",
    "neurochip.commands.inspect_cmd",
    "neurochip.commands.quickstart_cmd",
    "neurochip.commands.board_cmd",
    "neurochip.commands.record_cmd",
    "neurochip.commands.replay_cmd",
    "neurochip.commands.sweep_cmd",
    "neurochip.commands.eval_cmd",
    "neurochip.commands.train_cmd",
    "neurochip.commands.learn_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurochip",
        description="Compile spiking neural networks for a Loihi-style chip and emulate it.",
    )
    parser.add_argument("--version", action="version", version=f"neurochip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except NeurochipError as exc:
        print(f"neurochip {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
