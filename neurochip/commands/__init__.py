"""Subcommands of the ``neurochip`` CLI (one module each, see ``neurochip.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurochip.core.errors import ConfigError


def read_npz(path: str | Path, what: str) -> dict[str, Any]:
    """Every array of an .npz file (never pickled); errors name the file as ``what``."""
    import zipfile

    import numpy as np

    p = Path(path)
    where = f"{what} {p}"
    if not p.exists():
        raise ConfigError("file does not exist", where=where)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"not a readable .npz file ({exc})", where=where) from None
