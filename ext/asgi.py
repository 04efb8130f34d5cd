"""``GuardMiddleware`` for ASGI apps: the sidecar's per-route protection, in process.

::

    from ext.asgi import GuardMiddleware
    app = GuardMiddleware(app, "guard.yaml")

Each HTTP request is one inbound entry on its route's resource, held until the response
is complete (so RT and concurrency cover streaming bodies). A refused request gets the
sidecar's answer (429/503/403 with a JSON body and ``Retry-After``) and never reaches the
app. An exception from the app, or a 5xx status, is traced for degrade rules. Lifespan
and websocket scopes pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ext.middleware import AppStatusError, GuardCore
from guard import BlockError, Guard

__all__ = ["GuardMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class GuardMiddleware:
    """Wrap an ASGI app.

    :param app: the ASGI application.
    :param config_or_path: guard.yaml path, YAML/JSON text or mapping (rules + ``sidecar:``).
    :param guard: the engine (default: a new ``Guard``); ``self.guard`` either way.
    :raises RuleError: when the config is invalid.
    """

    def __init__(self, app: ASGIApp, config_or_path: Any, *, guard: Guard | None = None) -> None:
        self.app = app
        self.core = GuardCore(config_or_path, guard)
        self.guard = self.core.guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []

        def header(lname: str) -> str | None:
            key = lname.encode("latin-1")
            for name, value in headers:
                if name.lower() == key:
                    return value.decode("latin-1")
            return None

        client = scope.get("client")
        resource, origin, args = self.core.route(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            header,
            client[0] if client else "",
        )
        try:
            entry = await self.guard.aenter(resource, origin=origin, args=args, inbound=True)
        except BlockError as err:
            status, out_headers, body = self.core.refusal(err)
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            await send({"type": "http.response.body", "body": body})
            return
        status_seen = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except BaseException as exc:
            if isinstance(exc, Exception):
                entry.trace(exc)
            raise
        else:
            if status_seen >= 500:
                entry.trace(AppStatusError(f"app answered {status_seen}"))
        finally:
            entry.exit()
