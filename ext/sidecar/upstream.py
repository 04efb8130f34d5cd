"""Picks the compiled upstream connection and pool, or their pure twin (``GUARD_PURE=1``).

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; see ``ext.sidecar._upstream_py`` for the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from ext.sidecar._upstream_py import UpstreamConnection, UpstreamPool

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("ext.sidecar._upstream")
    UpstreamConnection = _mod.UpstreamConnection
    UpstreamPool = _mod.UpstreamPool

__all__ = ["IMPLEMENTATION", "UpstreamConnection", "UpstreamPool"]
