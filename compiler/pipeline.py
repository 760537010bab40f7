"""The compiler as a short list of named passes.

Register level (what ``neurochip.compile(network, hw)`` runs)::

    check_ranges -> partition -> place -> route -> check_rules -> emit_image

Front passes for model files (import -> normalize -> quantize -> lower) run before these
and hand over a register-level :class:`~neurochip.network.Network`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from compiler.passes.emit import emit_image
from compiler.passes.mapping import Mapping, partition, place, route
from compiler.passes.rules import check_rules
from neurochip.hw import HardwareSpec
from neurochip.image import ChipImage
from neurochip.network import Network

__all__ = ["MAPPING_PASSES", "compile_network"]


def check_ranges(m: Mapping) -> Mapping:
    """Every register value fits the *target* chip's number formats."""
    m.network.check(m.hw)
    return m


MAPPING_PASSES: list[tuple[str, Callable[[Mapping], Any]]] = [
    ("check_ranges", check_ranges),
    ("partition", partition),
    ("place", place),
    ("route", route),
    ("check_rules", check_rules),
]


def compile_network(network: Network, hw: HardwareSpec, *,
                    metadata: dict[str, Any] | None = None,
                    on_pass: Callable[[str, Mapping], None] | None = None) -> ChipImage:
    """Map a register-level network onto ``hw`` and emit its chip image."""
    m = Mapping(network, hw, options={"metadata": dict(metadata or {})})
    for name, fn in MAPPING_PASSES:
        m = fn(m)
        if on_pass is not None:
            on_pass(name, m)
    m = replace(m)
    return emit_image(m)
