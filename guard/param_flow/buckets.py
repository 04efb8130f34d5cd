"""Picks the compiled hot-parameter buckets, or their pure twin under ``GUARD_PURE=1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard.param_flow._buckets_py import (
        BASE_CAPACITY,
        MAX_CAPACITY,
        ParamFlowCheck,
        ParamRuleState,
        ValueBucket,
    )

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.param_flow._buckets")
    BASE_CAPACITY = _mod.BASE_CAPACITY
    MAX_CAPACITY = _mod.MAX_CAPACITY
    ParamFlowCheck = _mod.ParamFlowCheck
    ParamRuleState = _mod.ParamRuleState
    ValueBucket = _mod.ValueBucket

__all__ = [
    "IMPLEMENTATION",
    "BASE_CAPACITY",
    "MAX_CAPACITY",
    "ParamFlowCheck",
    "ParamRuleState",
    "ValueBucket",
]
