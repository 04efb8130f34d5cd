"""The degrade slot: compiles degrade rules into one ``DegradeCheck`` per resource.

Breakers are stateful, so a rule equal to one already loaded keeps its breaker (state,
statistics, recovery time) across reloads, as Sentinel reuses the breaker of an identical
rule; a changed rule starts closed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from guard.chain import SlotBuild
from guard.degrade import breaker as _twin

__all__ = ["BreakerListener", "DegradeSlot", "make_breaker"]

#: ``listener(resource, old_state, new_state, rule, value)``.
BreakerListener = Callable[[str, str, str, Any, float | None], Any]

# The breaker kinds of _breaker_py (SLOW_RATIO, ERROR_RATIO, ERROR_COUNT).
_KINDS = {"slow_ratio": 0, "error_ratio": 1, "error_count": 2}


def make_breaker(rule: Any, listeners: list[Any]) -> Any:
    """A fresh, closed breaker for ``rule`` reporting to ``listeners``."""
    return _twin.Breaker(
        rule,
        _KINDS[str(rule.strategy)],
        float(rule.threshold),
        int(rule.max_rt_ms) if rule.max_rt_ms is not None else 0,
        round(float(rule.recovery_sec) * 1000),
        int(rule.min_requests),
        int(rule.stat_interval_ms),
        listeners,
    )


class DegradeSlot:
    """Check slot for ``degrade`` rules (circuit breakers), last in the chain."""

    order = 5000
    name = "degrade"

    def __init__(self) -> None:
        self.listeners: list[BreakerListener] = []
        # (rule, n-th equal rule of its resource) -> breaker, from the last build.
        self._breakers: dict[tuple[Any, int], Any] = {}
        self._by_resource: dict[str, list[Any]] = {}

    def build(self, rules: Any, engine: Any) -> SlotBuild:
        breakers: dict[tuple[Any, int], Any] = {}
        by_resource: dict[str, list[Any]] = defaultdict(list)
        seen: dict[Any, int] = defaultdict(int)
        for rule in rules.degrade:
            key = (rule, seen[rule])
            seen[rule] += 1
            b = self._breakers.get(key) or make_breaker(rule, self.listeners)
            breakers[key] = b
            by_resource[rule.resource].append(b)
        build = SlotBuild()
        for resource, resource_breakers in by_resource.items():
            build.per_resource[resource] = _twin.DegradeCheck(resource_breakers)
        self._breakers = breakers
        self._by_resource = dict(by_resource)
        return build

    def state(self, resource: str) -> str:
        """The worst state of ``resource``'s breakers: open, then half_open, then closed."""
        states = {b.state_name for b in self._by_resource.get(resource, ())}
        if "open" in states:
            return "open"
        if "half_open" in states:
            return "half_open"
        return "closed"

    def breakers(self, resource: str) -> list[Any]:
        """``resource``'s breakers, in rule order."""
        return list(self._by_resource.get(resource, ()))
