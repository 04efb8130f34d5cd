"""The param_flow slot: compiles hot-parameter rules into one ``ParamFlowCheck`` per resource.

Value buckets are state, so a rule equal to one already loaded keeps its buckets across
reloads; a changed rule starts with none.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from guard.chain import SlotBuild
from guard.param_flow import buckets as _twin

__all__ = ["ParamFlowSlot"]


class ParamFlowSlot:
    """Check slot for ``param_flow`` rules (a flow limit per argument value)."""

    order = 3000
    name = "param_flow"

    def __init__(self) -> None:
        # (rule, n-th equal rule of its resource) -> ParamRuleState, from the last build.
        self._states: dict[tuple[Any, int], Any] = {}

    def build(self, rules: Any, engine: Any) -> SlotBuild:
        states: dict[tuple[Any, int], Any] = {}
        by_resource: dict[str, list[Any]] = defaultdict(list)
        seen: dict[Any, int] = defaultdict(int)
        for rule in rules.param_flow:
            key = (rule, seen[rule])
            seen[rule] += 1
            state = self._states.get(key) or _twin.ParamRuleState(rule)
            states[key] = state
            by_resource[rule.resource].append(state)
        build = SlotBuild()
        for resource, resource_states in by_resource.items():
            build.per_resource[resource] = _twin.ParamFlowCheck(resource_states)
        self._states = states
        return build

    def states(self, resource: str) -> list[Any]:
        """``resource``'s compiled rules (with their value buckets), in rule order."""
        return [s for s in self._states.values() if s.rule.resource == resource]
