"""Picks the compiled sliding window, or its pure twin under ``GUARD_PURE=1``.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``. A compiled module that fails to import warns
(it never falls back silently) and the pure twin is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

__all__ = ["FIELDS", "IMPLEMENTATION", "MAX_RT_MS", "LeapArray", "StatNode"]

if TYPE_CHECKING:
    from guard.stat._window_py import LeapArray, StatNode

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.stat._window")
    LeapArray = _mod.LeapArray
    StatNode = _mod.StatNode

# Field offsets and limits, shared by both twins (the compiled one keeps them as C constants).
PASS, BLOCK, SUCCESS, EXCEPTION, RT, MIN_RT = range(6)
FIELDS = 6
MAX_RT_MS = 5000
