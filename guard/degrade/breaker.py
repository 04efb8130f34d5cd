"""Picks the compiled circuit breakers, or their pure twin under ``GUARD_PURE=1``.

States are the integers ``CLOSED = 0``, ``OPEN = 1``, ``HALF_OPEN = 2`` (C constants in the
compiled twin, so not exported here); ``STATE_NAMES`` maps them to their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard.degrade._breaker_py import STATE_NAMES, Breaker, DegradeCheck

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.degrade._breaker")
    STATE_NAMES = _mod.STATE_NAMES
    Breaker = _mod.Breaker
    DegradeCheck = _mod.DegradeCheck

__all__ = ["IMPLEMENTATION", "STATE_NAMES", "Breaker", "DegradeCheck"]
