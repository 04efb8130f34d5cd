"""Picks the compiled flow controllers, or their pure twin under ``GUARD_PURE=1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard.flow._controllers_py import (
        Controller,
        DefaultController,
        FlowCheck,
        FlowRuleState,
        RateLimiterController,
        WarmUpController,
        WarmUpRateLimiterController,
    )

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.flow._controllers")
    Controller = _mod.Controller
    DefaultController = _mod.DefaultController
    FlowCheck = _mod.FlowCheck
    FlowRuleState = _mod.FlowRuleState
    RateLimiterController = _mod.RateLimiterController
    WarmUpController = _mod.WarmUpController
    WarmUpRateLimiterController = _mod.WarmUpRateLimiterController

__all__ = [
    "IMPLEMENTATION",
    "Controller",
    "DefaultController",
    "FlowCheck",
    "FlowRuleState",
    "RateLimiterController",
    "WarmUpController",
    "WarmUpRateLimiterController",
]
