"""Picks the compiled exchange (one proxied request), or its pure twin under ``GUARD_PURE=1``.

``IMPLEMENTATION`` is ``"c"`` or ``"py"``; see ``ext.sidecar._exchange_py`` for the code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard._select import load_twin

if TYPE_CHECKING:
    from ext.sidecar._exchange_py import Exchange

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("ext.sidecar._exchange")
    Exchange = _mod.Exchange

__all__ = ["IMPLEMENTATION", "Exchange"]
