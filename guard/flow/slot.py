"""The flow slot: compiles flow rules into one ``FlowCheck`` per resource.

Controllers are stateful (warm-up tokens, the leaky bucket's next free time), so a rule
equal to one already loaded keeps its controller across reloads; a changed rule starts
afresh (a new warm-up rule starts cold).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from guard.chain import SlotBuild
from guard.flow.controllers import (
    Controller,
    DefaultController,
    FlowCheck,
    FlowRuleState,
    RateLimiterController,
    WarmUpController,
    WarmUpRateLimiterController,
)

__all__ = ["FlowSlot", "make_controller"]

_LIMITS = {"default": 0, "other": 1}
_STRATEGIES = {"direct": 0, "relate": 1, "chain": 2}


def make_controller(rule: Any) -> Controller:
    """A fresh controller for ``rule`` (its control behaviour and grade)."""
    if rule.cluster is not None:  # shared through Redis, local only in fallback
        from guard.flow.cluster import make_cluster_controller

        return make_cluster_controller(rule, _local_share)
    count = float(rule.count)
    if rule.grade == "concurrency":
        return DefaultController(count, True)
    if rule.control == "warm_up":
        return WarmUpController(count, float(rule.warm_up_sec), int(rule.cold_factor))
    if rule.control == "rate_limiter":
        return RateLimiterController(count, int(rule.max_queue_ms))
    if rule.control == "warm_up_rate_limiter":
        return WarmUpRateLimiterController(
            count, float(rule.warm_up_sec), int(rule.cold_factor), int(rule.max_queue_ms)
        )
    return DefaultController(count, False)


def _local_share(rule: Any, count: float) -> Controller:
    # A cluster rule enforced locally: the same rule with this process's share.
    return make_controller(replace(rule, count=count, cluster=None))


def _sort_key(rule: Any) -> int:
    # Sentinel checks origin-specific rules before the "default" ones.
    return 1 if rule.limit_app == "default" else 0


class FlowSlot:
    """Check slot for ``flow`` rules (QPS or concurrency; direct, relate or chain)."""

    order = 4000
    name = "flow"

    def __init__(self) -> None:
        # (rule, n-th equal rule of its resource) -> controller, from the last build.
        self._controllers: dict[tuple[Any, int], Controller] = {}

    def build(self, rules: Any, engine: Any) -> SlotBuild:
        by_resource: dict[str, list[Any]] = defaultdict(list)
        for rule in rules.flow:
            by_resource[rule.resource].append(rule)
        controllers: dict[tuple[Any, int], Controller] = {}
        build = SlotBuild()
        for resource, resource_rules in by_resource.items():
            named = frozenset(
                r.limit_app for r in resource_rules if r.limit_app not in ("default", "other")
            )
            states = []
            seen: dict[Any, int] = defaultdict(int)
            for rule in sorted(resource_rules, key=_sort_key):
                key = (rule, seen[rule])
                seen[rule] += 1
                controller = self._controllers.get(key) or make_controller(rule)
                controllers[key] = controller
                states.append(self._state(rule, controller, named, engine))
            build.per_resource[resource] = FlowCheck(states)
        for key, old in self._controllers.items():
            if controllers.get(key) is not old and hasattr(old, "close"):
                old.close()  # a cluster rule that is gone: release its lease
        self._controllers = controllers
        return build

    @staticmethod
    def _state(rule: Any, controller: Controller, named: frozenset[str], engine: Any) -> Any:
        strategy = _STRATEGIES[str(rule.strategy)]
        ref_resource = None
        if strategy == 1:
            ref_resource = engine._resource(rule.ref_resource)
        return FlowRuleState(
            rule,
            controller,
            _LIMITS.get(rule.limit_app, 2),
            strategy,
            ref_resource,
            rule.ref_resource,
            named,
        )
