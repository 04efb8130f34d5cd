"""Rule sources: where rules come from while the process runs (file, Redis)."""

from __future__ import annotations

__all__: list[str] = []
