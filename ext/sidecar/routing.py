"""Route matching: file order, first match wins, prefixes match whole path segments.

``/orders`` matches ``/orders``, ``/orders/`` and ``/orders/1`` but not ``/ordersX``; the
query string is not part of the match; a route without ``methods`` takes every method.
"""

from __future__ import annotations

from collections.abc import Sequence

from ext.sidecar.config import Param, Route

__all__ = ["Match", "Router"]


class Match:
    """The resource a request maps to and where its param-flow arguments come from."""

    __slots__ = ("params", "resource")

    def __init__(self, resource: str, params: tuple[Param, ...]) -> None:
        self.resource = resource
        self.params = params


class Router:
    """Maps (method, path) to a ``Match``."""

    def __init__(self, routes: Sequence[Route], default_resource: str) -> None:
        # Bytes, as they come off the wire: no decoding per request.
        self._routes = [
            (
                r.prefix.encode(),
                None if r.methods is None else frozenset(m.encode() for m in r.methods),
                Match(r.resource, r.params),
            )
            for r in routes
        ]
        self._default = Match(default_resource, ())

    def match(self, method: bytes, path: bytes) -> Match:
        """Return the first route matching ``method`` and ``path`` (no query), else the default.

        :param method: request method as sent, upper case.
        :param path: request path without the query string.
        """
        for prefix, methods, found in self._routes:
            if methods is not None and method not in methods:
                continue
            if prefix == b"/":
                return found
            n = len(prefix)
            if path.startswith(prefix) and (len(path) == n or path[n] == 47):  # 47: b"/"
                return found
        return self._default
