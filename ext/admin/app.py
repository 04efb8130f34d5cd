"""The admin API (aiohttp): health, readiness, metrics, stats and rules.

Read endpoints are open (the admin address is loopback by default). ``PUT /api/rules``
needs ``Authorization: Bearer $GUARD_ADMIN_TOKEN``: without the variable set it answers 403
(mutations are off), with a missing or wrong token 401. Tokens compare in constant time.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ext.admin.dashboard import dashboard, upstreams_handler

if TYPE_CHECKING:
    from ext.sidecar.service import Sidecar

__all__ = ["TOKEN_ENV", "make_app", "start_admin"]

TOKEN_ENV = "GUARD_ADMIN_TOKEN"
_SIDECAR: web.AppKey[Sidecar] = web.AppKey("sidecar")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _authorize(request: web.Request) -> web.Response | None:
    """None when allowed, else the 401/403 answer."""
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        return _json({"error": "forbidden", "detail": f"set {TOKEN_ENV} to enable changes"}, 403)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        return _json(
            {"error": "unauthorized"}, 401, {"WWW-Authenticate": 'Bearer realm="guard-admin"'}
        )
    return None


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    sidecar = request.app[_SIDECAR]
    if sidecar.ready():
        return _json({"status": "ready", "generation": sidecar.generation})
    return _json({"status": "not ready", "draining": sidecar.draining}, 503)


async def metrics(request: web.Request) -> web.Response:
    sidecar = request.app[_SIDECAR]
    guard = sidecar.guard
    proxy = sidecar.proxy
    extra = []
    if proxy is not None:
        extra = [
            (
                "guard_sidecar_connections",
                "gauge",
                "Open client connections.",
                float(len(proxy.connections)),
            ),
            (
                "guard_sidecar_upstream_connections",
                "gauge",
                "Open upstream connections.",
                float(proxy.pool.open_connections),
            ),
            (
                "guard_sidecar_upstream_connects_total",
                "counter",
                "Upstream connections opened.",
                float(proxy.pool.connects_total),
            ),
        ]
    text = sidecar.metrics.render(
        lambda r: int(guard.stats(r).concurrency), guard.breaker_state, extra
    )
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def stats(request: web.Request) -> web.Response:
    sidecar = request.app[_SIDECAR]
    guard = sidecar.guard
    names = set(guard.resources()) | set(sidecar.metrics.resources)
    out = {}
    for name in sorted(names):
        entry = dict(guard.stats(name).as_dict())
        entry["breaker_state"] = guard.breaker_state(name)
        counters = sidecar.metrics.resources.get(name)
        if counters is not None:
            entry["lifetime"] = counters.as_dict()
        out[name] = entry
    return _json(out)


async def get_rules(request: web.Request) -> web.Response:
    sidecar = request.app[_SIDECAR]
    return _json(sidecar.guard.rules.to_dict(), headers={"ETag": sidecar.etag})


async def put_rules(request: web.Request) -> web.Response:
    denied = _authorize(request)
    if denied is not None:
        return denied
    sidecar = request.app[_SIDECAR]
    try:
        data = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        return _json({"error": "invalid_json", "detail": str(exc)}, 400)
    result = sidecar.put_rules(data, request.headers.get("If-Match"))
    headers = {"ETag": result.etag} if result.etag else None
    return _json(result.body, result.status, headers)


def make_app(sidecar: Sidecar) -> web.Application:
    """Build the admin application for one sidecar."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[_SIDECAR] = sidecar
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/stats", stats)
    app.router.add_get("/api/rules", get_rules)
    app.router.add_put("/api/rules", put_rules)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/api/upstreams", upstreams_handler(lambda r: r.app[_SIDECAR]))
    return app


async def start_admin(
    sidecar: Sidecar, host: str, port: int
) -> tuple[web.AppRunner, tuple[str, int]]:
    """Serve the admin API; returns the runner (for cleanup) and the bound address."""
    runner = web.AppRunner(make_app(sidecar), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    bound = sock.getsockname()
    return runner, (bound[0], bound[1])
