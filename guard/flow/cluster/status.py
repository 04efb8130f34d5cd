"""What a ``/metrics`` page shows of the cluster rules loaded in this process."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

__all__ = ["ClusterRuleStatus", "cluster_metrics", "count_transition", "register"]

_controllers: weakref.WeakSet[Any] = weakref.WeakSet()
_counters: dict[str, dict[str, int]] = {}


@dataclass(frozen=True)
class ClusterRuleStatus:
    """One cluster rule as seen by this process (what a ``/metrics`` page exports)."""

    resource: str
    rule_id: str
    url: str
    state: str  # "cluster" | "fallback"
    live_instances: int
    leased_tokens: int
    fallback_total: int
    recovery_total: int


def register(controller: Any) -> None:
    """Report ``controller`` in :func:`cluster_metrics` while it lives."""
    _controllers.add(controller)


def controllers() -> list[Any]:
    """The cluster controllers alive in this process."""
    return list(_controllers)


def count_transition(rule_id: str, what: str) -> None:
    """Count one ``"fallback"`` or ``"recovery"`` of the rule ``rule_id``."""
    counts = _counters.setdefault(rule_id, {})
    counts[what] = counts.get(what, 0) + 1


def cluster_metrics() -> list[ClusterRuleStatus]:
    """Status and transition counters of every cluster rule loaded in this process."""
    out = []
    for c in list(_controllers):
        counts = _counters.get(c.id, {})
        out.append(
            ClusterRuleStatus(
                resource=c.rule.resource,
                rule_id=c.id,
                url=c.rule.cluster.url,
                state=c.state,
                live_instances=c.live,
                leased_tokens=c.lease.tokens,
                fallback_total=counts.get("fallback", 0),
                recovery_total=counts.get("recovery", 0),
            )
        )
    return sorted(out, key=lambda s: (s.resource, s.rule_id))
