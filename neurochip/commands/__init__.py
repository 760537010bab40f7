"""Subcommands of the ``neurochip`` CLI (one module each, see ``neurochip.cli``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neurochip.core.errors import ConfigError, NeurochipError

#: largest step count a command accepts (the emulator holds B x steps x inputs spikes)
MAX_STEPS = 100_000_000


def int_arg(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (a bad one is a one-line usage error)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside [{lo}, {hi}]")
        return v
    parse.__name__ = "integer"
    return parse


def float_arg(lo: float = -math.inf, hi: float = math.inf, *,
              positive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [lo, hi] (> 0 when ``positive``)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or not lo <= v <= hi or (positive and v <= 0):
            want = "a positive finite number" if positive else f"a finite number in [{lo}, {hi}]"
            raise argparse.ArgumentTypeError(f"{text} is not {want}")
        return v
    parse.__name__ = "number"
    return parse


def read_npz(path: str | Path, what: str) -> dict[str, Any]:
    """Every array of an .npz file (never pickled); errors name the file as ``what``."""
    import zipfile

    p = Path(path)
    where = f"{what} {p}"
    if not p.exists():
        raise ConfigError("file does not exist", where=where)
    from neurochip.core.safeio import check_zip_directory, read_member, read_npy

    try:
        with zipfile.ZipFile(p) as zf:
            out: dict[str, Any] = {}
            for name, info in check_zip_directory(zf, where).items():
                if not name.endswith(".npy"):
                    raise ConfigError(f"member {name!r} is not an array", where=where)
                out[name[:-4]] = read_npy(read_member(zf, info, where), name, where)
            return out
    except NeurochipError as exc:
        raise ConfigError(f"not a readable .npz file ({exc.message})", where=where,
                          field=exc.field) from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"not a readable .npz file ({exc})", where=where) from None
