"""Picks the compiled system check, or its pure twin under ``GUARD_PURE=1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard.system._check_py import SystemCheck, SystemStatus

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.system._check")
    SystemCheck = _mod.SystemCheck
    SystemStatus = _mod.SystemStatus

__all__ = ["IMPLEMENTATION", "SystemCheck", "SystemStatus"]
