"""Picks the compiled ``@guard`` wrappers, or their pure twin under ``GUARD_PURE=1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard._wrap_py import AsyncGuardedFunction, GuardedFunction

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard._wrap")
    GuardedFunction = _mod.GuardedFunction
    AsyncGuardedFunction = _mod.AsyncGuardedFunction

__all__ = ["IMPLEMENTATION", "AsyncGuardedFunction", "GuardedFunction"]
