"""Picks the compiled admission functions, or their pure twin under ``GUARD_PURE=1``.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; see ``ext.sidecar._admission_py`` for the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from ext.sidecar._admission_py import admit, blocked_bytes, find_header, route_args

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("ext.sidecar._admission")
    admit = _mod.admit
    blocked_bytes = _mod.blocked_bytes
    find_header = _mod.find_header
    route_args = _mod.route_args

__all__ = ["IMPLEMENTATION", "admit", "blocked_bytes", "find_header", "route_args"]
