"""Names of a cluster rule's shared state in Redis: one hash tag, so one Cluster slot."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["rule_id", "rule_keys"]


def rule_id(rule: Any) -> str:
    """The id of a cluster rule's shared window: same in every process loading the rule.

    It names what is limited (resource, origin, strategy, reference), not the count, so
    changing a rule's count keeps its window.
    """
    identity = "\0".join(
        (rule.resource, rule.limit_app, str(rule.strategy), rule.ref_resource or "")
    )
    digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:10]
    readable = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in rule.resource)
    return f"{readable[:64]}:{digest}"


def rule_keys(rule: Any) -> list[str]:
    """Redis keys of a rule's window and live-instance set (one hash tag, one slot)."""
    tag = "{guard:flow:" + rule_id(rule) + "}"
    return [tag + ":window", tag + ":instances"]
