"""Design rules: every hardware limit as a named function.

Each rule returns the list of its violations (empty when it holds); :func:`check_rules`
runs them all and reports every violation at once, each naming the rule, the core and
the populations on it, the value and the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compiler.passes.mapping import Mapping
from neurochip.core.errors import PlacementError

__all__ = ["RULES", "Violation", "check_rules"]


@dataclass(frozen=True)
class Violation:
    rule: str
    core: int
    value: int
    limit: int
    populations: tuple[str, ...]

    def __str__(self) -> str:
        pops = ", ".join(self.populations) or "-"
        return (f"rule '{self.rule}' on core {self.core} ({pops}): {self.value:,} > "
                f"{self.limit:,} (over by {self.value - self.limit:,})")


def _pops_on(m: Mapping, core: int) -> tuple[str, ...]:
    return tuple(name for name, sl in m.slices.items() if any(c == core for c, _, _ in sl))


def _limit_rule(name: str, usage_key: str, limit_of: Callable[[Mapping], int]
                ) -> Callable[[Mapping], list[Violation]]:
    def rule(m: Mapping) -> list[Violation]:
        lim = limit_of(m)
        used = m.usage[usage_key]
        return [Violation(name, int(k), int(used[k]), lim, _pops_on(m, int(k)))
                for k in range(used.size) if used[k] > lim]
    rule.__name__ = f"rule_{name}"
    rule.__doc__ = f"{usage_key} of every core <= its limit."
    return rule


rule_neurons_per_core = _limit_rule("neurons_per_core", "neurons",
                                    lambda m: m.hw.core.max_neurons)
rule_synapse_memory = _limit_rule("synapse_memory", "synapse_bits",
                                  lambda m: m.hw.core.synapse_memory_bits)
rule_input_axons = _limit_rule("input_axons", "input_axons",
                               lambda m: m.hw.core.max_input_axons)
rule_output_axons = _limit_rule("output_axons", "output_axons",
                                lambda m: m.hw.core.max_output_axons)

RULES: list[Callable[[Mapping], list[Violation]]] = [
    rule_neurons_per_core,
    rule_synapse_memory,
    rule_input_axons,
    rule_output_axons,
]


def check_rules(m: Mapping) -> Mapping:
    """Run every rule; raise one PlacementError listing all violations."""
    found: list[Violation] = []
    for rule in RULES:
        found.extend(rule(m))
    if found:
        first = found[0]
        text = "; ".join(str(v) for v in found[:8])
        more = f" (+{len(found) - 8} more)" if len(found) > 8 else ""
        err = PlacementError(
            f"the network does not fit '{m.hw.name}': {text}{more}",
            rule=first.rule, where=f"core {first.core}", value=first.value, limit=first.limit)
        err.violations = found  # type: ignore[attr-defined]
        raise err
    return m
