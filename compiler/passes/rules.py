"""Design rules: every hardware limit as a named function.

Each rule returns the list of its violations (empty when it holds); :func:`check_rules`
runs them all and raises one error with every problem at once: those partition and place
recorded (a neuron too large for any core, more cores than the chip has) and every rule
violation, each naming the rule, the core or population, the value, the limit and a
suggestion. The error's ``rule``/``where``/``value``/``limit`` are the first problem's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compiler.passes.mapping import SUGGEST, Mapping, Problem
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
                f"{self.limit:,} (over by {self.value - self.limit:,}). Suggestion: "
                f"{SUGGEST.get(self.rule, 'a smaller layer')}")


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
    """Run every rule; raise one PlacementError listing every problem and violation."""
    problems: list[Problem | Violation] = list(m.problems)
    known = {(p.rule, name) for p in m.problems for name in p.populations}
    for rule in RULES:
        for v in rule(m):
            # a core over a limit because of a neuron that partition already reported
            if any((v.rule, name) in known for name in v.populations):
                continue
            problems.append(v)
    if not problems:
        return m
    first = problems[0]
    if len(problems) == 1:
        text = str(first)
        if isinstance(first, Problem):
            text = f"{first.text}. Suggestion: {first.suggestion}"
    else:
        lines = _grouped(problems)
        listed = "; ".join(f"({i + 1}) {p}" for i, p in enumerate(lines[:12]))
        more = f" (+{len(lines) - 12} more)" if len(lines) > 12 else ""
        text = f"the network does not fit '{m.hw.name}', {len(problems)} problems: {listed}{more}"
    where = first.where if isinstance(first, Problem) else f"core {first.core}"
    err = PlacementError(text, rule=first.rule, where=where, value=first.value,
                         limit=first.limit)
    err.violations = problems  # type: ignore[attr-defined]
    raise err


def _grouped(problems: list[Problem | Violation]) -> list[str]:
    """One line per problem; a rule broken on several cores by the same populations is one
    line naming the cores and the largest excess."""
    order: list[Problem | tuple[str, tuple[str, ...]]] = []
    groups: dict[tuple[str, tuple[str, ...]], list[Violation]] = {}
    for p in problems:
        if isinstance(p, Problem):
            order.append(p)
            continue
        key = (p.rule, p.populations)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(p)
    out: list[str] = []
    for item in order:
        if isinstance(item, Problem):
            out.append(str(item))
            continue
        vs = groups[item]
        if len(vs) == 1:
            out.append(str(vs[0]))
            continue
        worst = max(vs, key=lambda v: v.value)
        cores = ", ".join(str(v.core) for v in vs[:6]) + (", ..." if len(vs) > 6 else "")
        out.append(f"rule '{worst.rule}' on {len(vs)} cores ({cores}) of "
                   f"{', '.join(worst.populations) or '-'}: up to {worst.value:,} > "
                   f"{worst.limit:,} (over by {worst.value - worst.limit:,}). "
                   f"Suggestion: {SUGGEST.get(worst.rule, 'a smaller layer')}")
    return out
