"""Rule sources: where rules come from while the process runs (file, Redis)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ext.sources.redis import RedisRuleSource

__all__ = ["RedisRuleSource"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so `guard rules ...` and the file watcher do not pay for redis.
    if name == "RedisRuleSource":
        from ext.sources.redis import RedisRuleSource

        return RedisRuleSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
