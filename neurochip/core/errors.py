"""Typed errors for every layer of the toolchain.

Every error names *where* the problem is (a population, connection, node, core, rule or
field) and, when a limit was broken, the offending value and the limit. Errors that come
from bad user input also derive from :class:`ValueError`, so generic callers can catch them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BoardError",
    "ConfigError",
    "EmulatorInputError",
    "HardwareSpecError",
    "ImageError",
    "ImageFormatError",
    "LavaExportError",
    "LearningConfigError",
    "LocalityError",
    "ModelImportError",
    "NetworkError",
    "NeurochipError",
    "ParameterRangeError",
    "PlacementError",
    "QuantizationError",
    "RuleViolation",
]


class NeurochipError(Exception):
    """Base class of every error raised by neurochip.

    Parameters beyond the message are optional structured context, kept as attributes so
    tools can report them (``err.where``, ``err.field``, ``err.value``, ``err.limit``,
    ``err.rule``).
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        field: str | None = None,
        value: Any = None,
        limit: Any = None,
        rule: str | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.field = field
        self.value = value
        self.limit = limit
        self.rule = rule
        super().__init__(self._format())

    def _format(self) -> str:
        head = []
        if self.rule:
            head.append(f"rule '{self.rule}'")
        if self.where:
            head.append(self.where)
        if self.field:
            head.append(f"field '{self.field}'")
        prefix = ", ".join(head)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(NeurochipError, ValueError):
    """Bad user input (a value, a shape, a name)."""


class HardwareSpecError(ConfigError):
    """A hardware description file is missing, malformed, or inconsistent."""


class NetworkError(ConfigError):
    """The register-level network is malformed (unknown population, shape mismatch...)."""


class ParameterRangeError(NetworkError):
    """A register value does not fit the chip's number format (or Lava would alter it)."""


class PlacementError(NeurochipError):
    """The network does not fit the chip; ``rule`` names the design rule that failed."""


class RuleViolation(PlacementError):
    """A named design rule failed (alias kept for readability in rule functions)."""


class ImageFormatError(NeurochipError):
    """A chip image file is corrupt, truncated, or of an unsupported version."""


class ImageError(ImageFormatError):
    """A chip image is inconsistent or unsafe to run: a member (array or manifest field)
    breaks an index range, a size, a register format or its recorded digest.

    ``member`` names the array or manifest entry, ``index`` the first offending element
    (None when the member as a whole is wrong), ``limit`` what it had to respect.
    """

    def __init__(self, message: str, *, member: str, index: int | None = None,
                 value: Any = None, limit: Any = None, where: str | None = None) -> None:
        self.member = member
        self.index = index
        at = f"[{index}]" if index is not None else ""
        super().__init__(message, where=where, field=f"{member}{at}", value=value,
                         limit=limit)


class EmulatorInputError(ConfigError):
    """Inputs, probes or options passed to the emulator are invalid."""


class ModelImportError(ConfigError):
    """A model file (NIR, ONNX) contains something the chip cannot run."""


class QuantizationError(NeurochipError):
    """A float model cannot be mapped onto the chip's fixed-point formats."""


class LearningConfigError(ConfigError):
    """A learning rule or learning configuration is invalid."""


class LocalityError(LearningConfigError):
    """A learning rule reads a variable that is not local to the synapse's core."""


class LavaExportError(NeurochipError):
    """The image cannot be expressed as Lava processes, or Lava is unavailable."""


class BoardError(NeurochipError):
    """A board (emulator, remote or null) failed or was used incorrectly."""
