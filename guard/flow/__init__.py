"""Flow control: limit a resource's QPS or concurrency (Sentinel 1.8 flow rules)."""

from __future__ import annotations

from guard.flow.rule import (
    ClusterConfig,
    ClusterMode,
    ClusterThreshold,
    ControlBehavior,
    FlowGrade,
    FlowRule,
    FlowStrategy,
)

__all__ = [
    "ClusterConfig",
    "ClusterMode",
    "ClusterThreshold",
    "ControlBehavior",
    "FlowGrade",
    "FlowRule",
    "FlowStrategy",
]
