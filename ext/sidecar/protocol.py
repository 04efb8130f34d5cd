"""Picks the compiled client-side protocol, or its pure twin under ``GUARD_PURE=1``.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; see ``ext.sidecar._protocol_py`` for the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from ext.sidecar._protocol_py import ClientConnection

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("ext.sidecar._protocol")
    ClientConnection = _mod.ClientConnection

__all__ = ["IMPLEMENTATION", "ClientConnection"]
