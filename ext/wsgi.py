"""``GuardMiddleware`` for WSGI apps: the sidecar's per-route protection, in process.

::

    from ext.wsgi import GuardMiddleware
    application = GuardMiddleware(application, "guard.yaml")

Each request is one inbound entry on its route's resource, held until the server closes
the response iterable (so RT covers the body). A refused request gets the sidecar's answer
(429/503/403 with a JSON body and ``Retry-After``); an exception from the app, or a 5xx
status, is traced for degrade rules. A rate-limiter rule that queues makes the calling
worker thread wait, as WSGI is synchronous.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from typing import Any

from ext.middleware import AppStatusError, GuardCore
from guard import BlockError, Guard

__all__ = ["GuardMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class GuardMiddleware:
    """Wrap a WSGI app.

    :param app: the WSGI application.
    :param config_or_path: guard.yaml path, YAML/JSON text or mapping (rules + ``sidecar:``).
    :param guard: the engine (default: a new ``Guard``); ``self.guard`` either way.
    :raises RuleError: when the config is invalid.
    """

    def __init__(self, app: WSGIApp, config_or_path: Any, *, guard: Guard | None = None) -> None:
        self.app = app
        self.core = GuardCore(config_or_path, guard)
        self.guard = self.core.guard

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def header(lname: str) -> str | None:
            key = lname.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                return environ.get(key)
            return environ.get(f"HTTP_{key}")

        resource, origin, args = self.core.route(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", "") or "/",
            environ.get("QUERY_STRING", ""),
            header,
            environ.get("REMOTE_ADDR", ""),
        )
        try:
            entry = self.guard.enter(resource, origin=origin, args=args, inbound=True)
        except BlockError as err:
            status, headers, body = self.core.refusal(err)
            start_response(
                _status_line(status),
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers],
            )
            return [body]
        seen = [0]

        def start_and_watch(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen[0] = int(status[:3])
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, start_and_watch)
        except Exception as exc:
            entry.trace(exc)
            entry.exit()
            raise
        return _Guarded(result, entry, seen)


class _Guarded:
    """The app's response iterable; the entry ends when the server closes it."""

    def __init__(self, result: Iterable[bytes], entry: Any, seen: list[int]) -> None:
        self._result = result
        self._entry = entry
        self._seen = seen
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._result
        except Exception as exc:
            self._entry.trace(exc)
            raise

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            if not self._done:
                self._done = True
                if self._seen[0] >= 500:
                    self._entry.trace(AppStatusError(f"app answered {self._seen[0]}"))
                self._entry.exit()
