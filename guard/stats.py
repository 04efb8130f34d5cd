"""Read-only snapshots of a resource's statistics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from guard.stat.window import BLOCK, EXCEPTION, PASS, SUCCESS

__all__ = ["StatsSnapshot", "snapshot"]


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """A resource's statistics at one instant.

    QPS values come from the one-second sliding window; ``total_*`` from the last minute
    (60 x 1 s buckets). RTs are milliseconds.
    """

    resource: str
    pass_qps: float
    block_qps: float
    success_qps: float
    exception_qps: float
    avg_rt_ms: float
    min_rt_ms: float
    concurrency: int
    total_pass: int
    total_block: int
    total_success: int
    total_exception: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(resource: str, node: Any, now: int) -> StatsSnapshot:
    """Read ``node`` (a ``StatNode``) at ``now``."""
    success_qps = node.success_qps(now)
    return StatsSnapshot(
        resource=resource,
        pass_qps=node.pass_qps(now),
        block_qps=node.block_qps(now),
        success_qps=success_qps,
        exception_qps=node.exception_qps(now),
        avg_rt_ms=node.avg_rt(now),
        min_rt_ms=float(node.min_rt(now)) if success_qps > 0 else 0.0,
        concurrency=int(node.concurrency),
        total_pass=node.total(now, PASS),
        total_block=node.total(now, BLOCK),
        total_success=node.total(now, SUCCESS),
        total_exception=node.total(now, EXCEPTION),
    )
