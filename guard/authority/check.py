"""Picks the compiled authority check, or its pure twin under ``GUARD_PURE=1``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from guard.authority._check_py import AuthorityCheck, OriginList

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard.authority._check")
    AuthorityCheck = _mod.AuthorityCheck
    OriginList = _mod.OriginList

__all__ = ["IMPLEMENTATION", "AuthorityCheck", "OriginList"]
