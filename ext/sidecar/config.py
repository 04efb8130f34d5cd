"""The ``sidecar:`` section of guard.yaml: validation into a frozen ``SidecarConfig``.

Every problem is reported with its location (``sidecar.upstreams[0].url: ...``) and all of
them at once, as the engine does for rule sections; the caller raises one ``RuleError``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ext.sidecar.health import OutlierPolicy, parse_outlier

__all__ = [
    "LB_POLICIES",
    "Param",
    "Route",
    "SidecarConfig",
    "Upstream",
    "parse_address",
    "parse_sidecar",
]

LB_POLICIES = ("round_robin", "weighted_random", "least_active", "consistent_hash")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token (method, header name)


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One upstream instance: ``http://host:port`` and its weight."""

    url: str
    host: str
    port: int
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Param:
    """One param-flow argument source: ``header:NAME``, ``query:NAME`` or ``client_ip``."""

    kind: str  # "header" | "query" | "client_ip"
    name: str = ""  # header names are lower-cased


@dataclasses.dataclass(frozen=True)
class Route:
    """A route: path prefix (whole segments), optional methods, resource and params."""

    prefix: str
    resource: str
    methods: frozenset[str] | None = None
    params: tuple[Param, ...] = ()


@dataclasses.dataclass(frozen=True)
class SidecarConfig:
    """Validated ``sidecar:`` section. Times in milliseconds unless named ``_sec``."""

    listen: tuple[str, int] = ("127.0.0.1", 15000)
    admin: tuple[str, int] = ("127.0.0.1", 15001)
    upstreams: tuple[Upstream, ...] = ()
    lb: str = "round_robin"
    hash_key: Param | None = None
    slow_start_sec: float = 0.0
    origin_header: str | None = None
    timeout_ms: int = 30000
    connect_timeout_ms: int = 5000
    routes: tuple[Route, ...] = ()
    default_resource: str = "sidecar.default"
    drain_sec: float = 10.0
    max_header_bytes: int = 65536
    max_body_bytes: int | None = None
    pool_size: int = 128
    client_header_timeout_ms: int = 10000
    keepalive_timeout_ms: int = 75000
    rules_redis: Mapping[str, Any] | None = None
    outlier: OutlierPolicy = dataclasses.field(default_factory=OutlierPolicy)


def parse_address(text: Any) -> tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` for IPv6).

    :raises ValueError: with a short reason.
    """
    if not isinstance(text, str) or ":" not in text:
        raise ValueError("must be 'host:port'")
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"must be 'host:port', got {text!r}")
    return host, int(port_text)


def _param(text: Any) -> Param:
    if text == "client_ip":
        return Param("client_ip")
    if isinstance(text, str) and ":" in text:
        kind, _, name = text.partition(":")
        if kind in ("header", "query") and name:
            if kind == "header" and not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            return Param(kind, name.lower() if kind == "header" else name)
    raise ValueError(f"must be 'header:NAME', 'query:NAME' or 'client_ip', got {text!r}")


class _Checker:
    """Collects located errors while reading a mapping."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, where: str, problem: str) -> None:
        self.errors.append(f"{where}: {problem}")

    def number(
        self, m: Mapping[str, Any], key: str, where: str, default: Any, *, integer: bool, low: float
    ) -> Any:
        value = m.get(key, default)
        if value is None and default is None:
            return None
        ok_type = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type):
            self.fail(f"{where}.{key}", f"must be {'an integer' if integer else 'a number'}")
            return default
        if value < low:
            self.fail(f"{where}.{key}", f"must be >= {low:g}")
            return default
        return value

    def upstream(self, item: Any, where: str) -> Upstream | None:
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, Mapping):
            self.fail(where, "must be a mapping {url, weight}")
            return None
        for key in item:
            if key not in ("url", "weight"):
                self.fail(f"{where}.{key}", "unknown key")
        url = item.get("url")
        weight = self.number(item, "weight", where, 1, integer=False, low=0)
        if not isinstance(url, str):
            self.fail(f"{where}.url", "required, a string like 'http://127.0.0.1:8000'")
            return None
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme != "http":
            self.fail(f"{where}.url", f"only http:// upstreams are supported, got {url!r}")
        elif not parts.hostname or port == -1 or parts.path not in ("", "/") or parts.query:
            self.fail(f"{where}.url", f"must be 'http://host[:port]', got {url!r}")
        else:
            return Upstream(url, parts.hostname, port or 80, float(weight))
        return None

    def route(self, item: Any, where: str) -> Route | None:
        if not isinstance(item, Mapping):
            self.fail(where, "must be a mapping {prefix, methods, resource, params}")
            return None
        for key in item:
            if key not in ("prefix", "methods", "resource", "params"):
                self.fail(f"{where}.{key}", "unknown key")
        prefix, resource = item.get("prefix"), item.get("resource")
        ok = True
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            self.fail(f"{where}.prefix", "required, a path starting with '/'")
            ok = False
        if not isinstance(resource, str) or not resource:
            self.fail(f"{where}.resource", "required, a non-empty string")
            ok = False
        methods = item.get("methods")
        method_set: frozenset[str] | None = None
        if methods is not None:
            if not isinstance(methods, list) or not methods:
                self.fail(f"{where}.methods", "must be a non-empty list of HTTP methods")
                ok = False
            else:
                for i, m in enumerate(methods):
                    if not isinstance(m, str) or not _TOKEN.match(m):
                        self.fail(f"{where}.methods[{i}]", f"not an HTTP method: {m!r}")
                        ok = False
                if ok:
                    method_set = frozenset(m.upper() for m in methods)
        params: list[Param] = []
        raw_params = item.get("params") or []
        if not isinstance(raw_params, list):
            self.fail(f"{where}.params", "must be a list")
            ok = False
            raw_params = []
        for i, p in enumerate(raw_params):
            try:
                params.append(_param(p))
            except ValueError as exc:
                self.fail(f"{where}.params[{i}]", str(exc))
                ok = False
        if not ok:
            return None
        return Route(str(prefix).rstrip("/") or "/", str(resource), method_set, tuple(params))


_KEYS = {f.name for f in dataclasses.fields(SidecarConfig)}


def parse_sidecar(raw: Any, where: str = "sidecar") -> tuple[SidecarConfig | None, list[str]]:
    """Validate a ``sidecar:`` mapping.

    :param raw: the mapping read from the file.
    :param where: location prefix for messages.
    :returns: ``(config, [])`` when valid, else ``(None, errors)`` with every located problem.
    """
    c = _Checker()
    if not isinstance(raw, Mapping):
        return None, [f"{where}: must be a mapping"]
    for key in raw:
        if key not in _KEYS:
            c.fail(f"{where}.{key}", "unknown key")
    values: dict[str, Any] = {}
    for key in ("listen", "admin"):
        if key in raw:
            try:
                values[key] = parse_address(raw[key])
            except ValueError as exc:
                c.fail(f"{where}.{key}", str(exc))
    ups = raw.get("upstreams")
    if not isinstance(ups, list) or not ups:
        c.fail(f"{where}.upstreams", "required, a non-empty list of {url, weight}")
    else:
        parsed = [c.upstream(u, f"{where}.upstreams[{i}]") for i, u in enumerate(ups)]
        values["upstreams"] = tuple(u for u in parsed if u is not None)
    lb = raw.get("lb", "round_robin")
    if lb not in LB_POLICIES:
        c.fail(f"{where}.lb", f"must be one of {', '.join(LB_POLICIES)}, got {lb!r}")
    values["lb"] = lb
    if raw.get("hash_key") is not None:
        try:
            values["hash_key"] = _param(raw["hash_key"])
        except ValueError as exc:
            c.fail(f"{where}.hash_key", str(exc))
    for key in ("origin_header",):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not _TOKEN.match(value)):
            c.fail(f"{where}.{key}", f"must be a header name, got {value!r}")
        elif value is not None:
            values[key] = value.lower()
    resource = raw.get("default_resource", "sidecar.default")
    if not isinstance(resource, str) or not resource:
        c.fail(f"{where}.default_resource", "must be a non-empty string")
    values["default_resource"] = resource
    defaults = SidecarConfig()
    for key, integer, low in (
        ("slow_start_sec", False, 0),
        ("timeout_ms", True, 1),
        ("connect_timeout_ms", True, 1),
        ("drain_sec", False, 0),
        ("max_header_bytes", True, 1024),
        ("max_body_bytes", True, 0),
        ("pool_size", True, 0),
        ("client_header_timeout_ms", True, 1),
        ("keepalive_timeout_ms", True, 1),
    ):
        values[key] = c.number(raw, key, where, getattr(defaults, key), integer=integer, low=low)
    routes = raw.get("routes") or []
    if not isinstance(routes, list):
        c.fail(f"{where}.routes", "must be a list")
    else:
        parsed_routes = [c.route(r, f"{where}.routes[{i}]") for i, r in enumerate(routes)]
        values["routes"] = tuple(r for r in parsed_routes if r is not None)
    redis_source = raw.get("rules_redis")
    if redis_source is not None:
        if not isinstance(redis_source, Mapping) or not isinstance(redis_source.get("url"), str):
            c.fail(f"{where}.rules_redis", "must be a mapping {url, key}")
        else:
            values["rules_redis"] = dict(redis_source)
    values["outlier"], outlier_errors = parse_outlier(raw.get("outlier"), f"{where}.outlier")
    c.errors.extend(outlier_errors)
    if c.errors:
        return None, c.errors
    return SidecarConfig(**values), []
