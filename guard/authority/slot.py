"""The authority slot: compiles authority rules into one ``AuthorityCheck`` per resource.

Authority rules keep no state, so every load simply rebuilds the checks.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from guard.authority import check as _twin
from guard.chain import SlotBuild

__all__ = ["AuthoritySlot"]


class AuthoritySlot:
    """Check slot for ``authority`` rules (origin white/black lists), first in the chain."""

    order = 1000
    name = "authority"

    def build(self, rules: Any, engine: Any) -> SlotBuild:
        by_resource: dict[str, list[Any]] = defaultdict(list)
        for rule in rules.authority:
            by_resource[rule.resource].append(_twin.OriginList(rule))
        build = SlotBuild()
        for resource, lists in by_resource.items():
            build.per_resource[resource] = _twin.AuthorityCheck(lists)
        return build
