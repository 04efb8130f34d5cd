"""Timing wheels and delay queues (SPEC section 2). Being built: see issue 4."""

from __future__ import annotations

__all__: list[str] = []
