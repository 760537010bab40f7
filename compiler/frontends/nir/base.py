"""NIR node kinds, the import error and warning, and the discretisation record: what the
reader's parts share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from neurochip.core.errors import ModelImportError

__all__ = ["LINEAR_TYPES", "NEURON_TYPES", "PORT", "SPIKING_TYPES", "SUPPORTED_TYPES", "WIRES",
           "Decay", "Discretisation", "NIRImportWarning", "Reset", "as_str", "err", "node_where",
           "tname"]


NEURON_TYPES = ("CubaLIF", "LIF", "IF", "Threshold", "CubaLI", "LI", "I")
SPIKING_TYPES = ("CubaLIF", "LIF", "IF", "Threshold")
LINEAR_TYPES = ("Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
                "Flatten", "Delay")
SUPPORTED_TYPES = ("Input", "Output", "NIRGraph", *NEURON_TYPES, *LINEAR_TYPES)
PORT = "port"  # an Input/Output node inside a subgraph: an identity on the path
WIRES = ("Flatten", PORT)  # reshape only: an output may read a population through them

Decay = Literal["euler", "exp"]
Reset = Literal["zero", "subtract"]


class NIRImportWarning(UserWarning):
    """An import note worth seeing (an approximation, a dropped duplicate edge...)."""


@dataclass(frozen=True)
class Discretisation:
    """How a NIR file's continuous-time parameters are turned into steps."""

    dt: float | None
    decay: Decay
    reset: Reset
    profile: str
    gain: Literal["literal", "unit", "norse"] = "literal"
    sources: Mapping[str, str] = field(default_factory=dict)  # option -> where it came from


def err(where: str, msg: str, fld: str | None = None, **kw: Any) -> ModelImportError:
    """The import error for ``where`` (a file, node or edge) and field ``fld``."""
    return ModelImportError(msg, where=where, field=fld, **kw)


def node_where(name: str, node: Any) -> str:
    return f"node '{name}' ({type(node).__name__})"


def as_str(x: Any) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


def tname(node: Any) -> str:
    """A flattened node's type name (``PORT`` for a subgraph's Input/Output)."""
    return PORT if isinstance(node, str) and node == PORT else type(node).__name__
