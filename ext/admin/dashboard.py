"""``GET /dashboard``: one self-contained page (inline CSS, JS and canvas charts, no CDN)
that polls ``/api/stats`` and ``/api/upstreams`` every second. ``GET /api/upstreams`` lists
the balancer's instances: weight, effective weight (slow start), picks, in flight,
failures and ejection.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from aiohttp import web

__all__ = ["dashboard", "page", "upstreams_handler"]

# The page's scripts and styles are inline; nothing else may load.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:"
)


@functools.cache
def page() -> str:
    """The dashboard HTML, read once from the package."""
    return resources.files("ext.admin").joinpath("dashboard.html").read_text(encoding="utf-8")


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(
        text=page(),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
    )


def upstreams_handler(get_sidecar: Any) -> Any:
    """Build the ``/api/upstreams`` handler around a function returning the sidecar."""

    async def upstreams(request: web.Request) -> web.Response:
        proxy = getattr(get_sidecar(request), "proxy", None)
        data = [] if proxy is None else proxy.balancer.snapshot()
        return web.Response(text=json.dumps(data), content_type="application/json")

    return upstreams
