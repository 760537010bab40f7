"""The cost of one spike message's path through the mesh, defined once.

A message leaves its core (``spike_out``), crosses ``dx`` east-west and ``dy`` north-south
tiles and ``dl`` chip-to-chip links; its path takes::

    spike_out + dx * hop_ew + dy * hop_ns + dl * chip_link   cycles

:func:`path_cycles` is plain Python on plain integers: the reference models call it as it
is, and the kernels compile the very same function (``emulator.kernels.routing``).
"""

from __future__ import annotations

from typing import NamedTuple

from neurochip.core.hw import HardwareSpec

__all__ = ["PathCosts", "path_costs", "path_cycles"]


class PathCosts(NamedTuple):
    """Cycles of each part of a message's path (from the hardware spec's timing)."""

    spike_out: int  # leaving the sending core
    hop_ew: int  # per east-west tile hop
    hop_ns: int  # per north-south tile hop
    chip_link: int  # per chip-to-chip link crossing


def path_costs(hw: HardwareSpec) -> PathCosts:
    """The path costs of a chip, in cycles."""
    t = hw.timing
    return PathCosts(t.cycles("spike_out"), t.cycles("hop_ew"), t.cycles("hop_ns"),
                     t.cycles("chip_link"))


def path_cycles(costs: PathCosts, dx: int, dy: int, dl: int) -> int:
    """Cycles of a message crossing dx east-west and dy north-south hops and dl links."""
    return costs.spike_out + dx * costs.hop_ew + dy * costs.hop_ns + dl * costs.chip_link
