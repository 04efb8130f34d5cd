"""What ``ext.asgi`` and ``ext.wsgi`` share: the config, the route mapping and refusals.

The in-process middlewares behave as the sidecar does (SPEC §4): routes from the
``sidecar:`` section (file order, whole path segments, first match), the origin from
``origin_header`` (missing is the empty origin), route ``params`` as the entry's arguments,
and refusals with the sidecar's status codes, JSON bodies and ``Retry-After``. The route
matcher and the refusal builder are the sidecar's own (``ext.sidecar.routing``,
``ext.sidecar.responses``). Listen addresses and upstreams in the section are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from ext.sidecar.config import Param, parse_sidecar
from ext.sidecar.responses import blocked_parts
from ext.sidecar.routing import Router
from guard import BlockError, Guard, RuleError
from guard.rules import parse_config

__all__ = ["AppStatusError", "GuardCore"]

_IGNORED = ("listen", "admin", "upstreams", "lb", "hash_key", "slow_start_sec", "outlier")


class AppStatusError(Exception):
    """The app answered 5xx: traced on the entry so degrade rules count it, as the sidecar."""


class GuardCore:
    """Engine, router and origin header of one middleware.

    :param config_or_path: a guard.yaml path, YAML/JSON text, or a mapping of that shape.
    :param guard: the engine to use (default: a new ``Guard``).
    :raises RuleError: when the config is invalid, every problem located.
    """

    def __init__(self, config_or_path: Any, guard: Guard | None = None) -> None:
        rules, raw = parse_config(config_or_path)
        section = {k: v for k, v in (raw or {}).items() if k not in _IGNORED}
        # upstreams are the proxy's business; a placeholder satisfies the shared validator
        config, errors = parse_sidecar({**section, "upstreams": ["http://127.0.0.1:9"]})
        if errors or config is None:
            raise RuleError(errors)
        self.guard = guard if guard is not None else Guard()
        self.guard.load_rules(rules)
        self.router = Router(config.routes, config.default_resource)
        self.origin_header = config.origin_header  # lower case, or None

    def route(
        self,
        method: str,
        path: str,
        query: str,
        header: Callable[[str], str | None],
        client_ip: str,
    ) -> tuple[str, str, tuple[Any, ...]]:
        """Map a request to ``(resource, origin, args)``.

        :param header: returns the first value of a header by lower-case name, or None.
        """
        match = self.router.match(method.encode("latin-1"), path.encode("utf-8", "replace"))
        origin = ""
        if self.origin_header is not None:
            origin = header(self.origin_header) or ""
        args: tuple[Any, ...] = ()
        if match.params:
            args = _args(match.params, query, header, client_ip)
        return match.resource, origin, args

    @staticmethod
    def refusal(err: BlockError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers (with content type and length) and body for a refusal."""
        status, extra, body = blocked_parts(err.reason, err.resource, err.retry_after)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            *extra,
        ]
        return status, headers, body


def _args(
    params: tuple[Param, ...], query: str, header: Callable[[str], str | None], client_ip: str
) -> tuple[Any, ...]:
    values: list[Any] = []
    parsed: Mapping[str, str] | None = None
    for p in params:
        if p.kind == "header":
            values.append(header(p.name))
        elif p.kind == "query":
            if parsed is None:
                parsed = dict(parse_qsl(query, keep_blank_values=True))
            values.append(parsed.get(p.name))
        else:
            values.append(client_ip)
    return tuple(values)
