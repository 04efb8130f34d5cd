"""Admin API of the sidecar: health, readiness, Prometheus metrics, stats and rules."""

from __future__ import annotations

__all__: list[str] = []
