"""Redis locks and Redlock (SPEC section 3). Being built: see issue 5."""

from __future__ import annotations

__all__: list[str] = []
