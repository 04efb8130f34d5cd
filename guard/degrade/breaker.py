"""Picks the compiled circuit breakers, or their pure twin under ``GUARD_PURE=1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard.degrade._breaker_py import (
        CLOSED,
        ERROR_COUNT,
        ERROR_RATIO,
        HALF_OPEN,
        OPEN,
        SLOW_RATIO,
        STATE_NAMES,
        Breaker,
        DegradeCheck,
    )

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.degrade._breaker")
    CLOSED = _mod.CLOSED
    OPEN = _mod.OPEN
    HALF_OPEN = _mod.HALF_OPEN
    SLOW_RATIO = _mod.SLOW_RATIO
    ERROR_RATIO = _mod.ERROR_RATIO
    ERROR_COUNT = _mod.ERROR_COUNT
    STATE_NAMES = _mod.STATE_NAMES
    Breaker = _mod.Breaker
    DegradeCheck = _mod.DegradeCheck

__all__ = [
    "IMPLEMENTATION",
    "CLOSED",
    "ERROR_COUNT",
    "ERROR_RATIO",
    "HALF_OPEN",
    "OPEN",
    "SLOW_RATIO",
    "STATE_NAMES",
    "Breaker",
    "DegradeCheck",
]
