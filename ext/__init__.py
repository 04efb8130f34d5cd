"""Everything that touches the outside world: sidecar, admin API, rule sources, CLI."""

from __future__ import annotations

__all__: list[str] = []
