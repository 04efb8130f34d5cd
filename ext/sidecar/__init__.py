"""``guard sidecar``: an HTTP/1.1 reverse proxy that guards every request (SPEC §4).

Data plane: ``protocol`` (client connections, httptools), ``exchange`` (one request),
``upstream`` (app connections and pool), ``balancer``, ``routing``. Control plane:
``service`` (config, reload, PUT write-back, drain), with ``ext.admin`` and
``ext.sources.file``.
"""

from __future__ import annotations

__all__: list[str] = []
