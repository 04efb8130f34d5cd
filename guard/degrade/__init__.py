"""Circuit breaking: open a resource's breaker on slow calls or errors (degrade rules)."""

from __future__ import annotations

from guard.degrade.rule import DegradeRule, DegradeStrategy

__all__ = ["DegradeRule", "DegradeStrategy"]
