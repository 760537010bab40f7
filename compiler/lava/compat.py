"""Make Lava 0.10 importable on Python 3.11 without editing installed files.

lava-nc 0.10.0 (its only release) declares Python < 3.11. On 3.11 exactly one thing
breaks: ``lava.magma.compiler.var_model`` uses the dataclass ``ByteEncoder`` as a mutable
default of other dataclasses, which Python 3.11 rejects because ``ByteEncoder`` is not
hashable. We install a meta-path finder that compiles that module from its source with
``@dataclass(unsafe_hash=True)`` on ``ByteEncoder``; nothing on disk changes.

The same finder makes one more source edit: Lava's multiprocessing backend calls
``multiprocessing.set_start_method('fork')`` at import, which raises once anything in the
process has fixed the start method (Numba's thread pool does, for instance). We pass
``force=True``: 'fork' is Linux's default anyway, so nothing else changes.

Only the :mod:`compiler.lava` package imports Lava.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

from neurochip.core.errors import LavaExportError

_TARGET = "lava.magma.compiler.var_model"
# module -> (source text, replacement); each edit must match exactly once.
_PATCHES = {
    _TARGET: ("@dataclass\nclass ByteEncoder:", "@dataclass(unsafe_hash=True)\nclass ByteEncoder:"),
    "lava.magma.runtime.message_infrastructure.multiprocessing": (
        "mp.set_start_method('fork')", "mp.set_start_method('fork', force=True)"),
}


class _PatchedLoader(importlib.machinery.SourceFileLoader):
    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> Any:  # type: ignore[override]
        text = data.decode("utf-8") if isinstance(data, bytes) else str(data)
        needle, patch = _PATCHES[self.name]
        if needle in text:
            text = text.replace(needle, patch, 1)
        return compile(text, path, "exec", dont_inherit=True, optimize=_optimize)

    def get_code(self, fullname: str) -> Any:
        # Always compile from source so a cached .pyc of the unpatched file is not used.
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                loader = _PatchedLoader(fullname, spec.origin)
                return importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader)
        return None


def _install_hook() -> None:
    if not any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _VarModelFinder())


def lava_available() -> bool:
    """True when lava-nc can be imported (with the 3.11 fix applied)."""
    try:
        import_lava()
    except LavaExportError:
        return False
    return True


def import_lava() -> ModuleType:
    """Import and return the ``lava`` package, raising a clear error when it is missing."""
    _install_hook()
    try:
        lava = importlib.import_module("lava")
        importlib.import_module(_TARGET)
        importlib.import_module("lava.magma.core.run_configs")
    except ModuleNotFoundError as exc:
        raise LavaExportError(
            f"Lava is not installed ({exc.name} missing); install it with "
            "`pip install --no-deps --ignore-requires-python lava-nc==0.10.0` "
            "(the Makefile's setup does this)",
            where="lava",
        ) from None
    return lava
