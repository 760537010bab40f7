"""The ``neurochip`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; that module
stays light (heavy imports happen inside the command), so ``neurochip --help`` is fast.
Errors from the toolchain and bad arguments print as one clear line and exit with status 2;
an internal error (a bug) prints one line with the path of a file holding its traceback
and exits with status 3.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from typing import NoReturn

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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``neurochip CMD: error: ...; usage: ...``), status 2."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())
        self.exit(2, f"{self.prog}: error: {message}; {usage}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # the file system said no (disk full, permissions...)
        name = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"neurochip {args.command}: error: {exc.strerror or exc}{name}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"neurochip {args.command}: error: out of memory (reduce the sizes, steps or "
              "batch given)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: keep the traceback out of the user's way
        path = _write_traceback(args.command)
        print(f"neurochip {args.command}: internal error ({type(exc).__name__}: "
              f"{str(exc)[:200]}); traceback in {path}", file=sys.stderr)
        return 3


def _write_traceback(command: str) -> str:
    """Write the current exception's traceback to a fresh file; return its path."""
    folder = os.environ.get("NEUROCHIP_CRASH_DIR") or tempfile.gettempdir()
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        fd, path = tempfile.mkstemp(prefix=f"neurochip-{command}-{stamp}-", suffix=".txt",
                                    dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"neurochip {command}: argv {sys.argv!r}\n")
            traceback.print_exc(file=fh)
        return path
    except OSError:
        return "(could not be written)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
