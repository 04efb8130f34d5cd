"""System adaptive protection: refuse inbound entries when the process is overloaded."""

from __future__ import annotations

from guard.system.rule import SystemRule

__all__ = ["SystemRule"]
