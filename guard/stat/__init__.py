"""Statistics: sliding windows (LeapArray) and the nodes built from them."""

from __future__ import annotations

from guard.stat.window import IMPLEMENTATION, LeapArray, StatNode

__all__ = ["IMPLEMENTATION", "LeapArray", "StatNode"]
