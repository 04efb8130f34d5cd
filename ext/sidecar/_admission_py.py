# cython: annotation_typing=False
# (C types come from the .pxd; the annotations are for mypy and readers)
"""What the proxy decides about a request before it reaches an upstream (pure-Python
truth of the twin; ``_admission_c.pxd`` types it for Cython).

``admit`` routes a request (``ext.sidecar.routing``), reads the origin header and the
route's param-flow arguments, and asks the guard through ``Entry.check()``, which returns a
refusal instead of raising it: a refused request costs no exception and no coroutine.
``blocked_bytes`` builds each distinct refusal answer once (SPEC §4 status, JSON body,
Retry-After).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ext.sidecar.responses import blocked_response

if TYPE_CHECKING:
    from ext.sidecar._protocol_py import ClientConnection
    from ext.sidecar.heads import RequestExtras
    from guard import BlockError

__all__ = ["admit", "blocked_bytes", "find_header", "route_args"]

_BLOCK_CACHE_MAX = 4096


_blocked_cache: dict[tuple[str, str, float | None, bool], bytes] = {}


def blocked_bytes(reason: str, resource: str, retry_after: float | None, close: bool) -> bytes:
    # Rejections must stay cheap (a blocked flood is when they matter): build each distinct
    # answer once. retry_after is rounded up to whole seconds anyway, so keys repeat.
    key = (reason, resource, None if retry_after is None else -(-retry_after // 1), close)
    data = _blocked_cache.get(key)
    if data is None:
        if len(_blocked_cache) >= _BLOCK_CACHE_MAX:
            _blocked_cache.clear()
        data = _blocked_cache[key] = blocked_response(reason, resource, retry_after, close=close)
    return data


def admit(
    client: ClientConnection,
    method: bytes,
    target: bytes,
    parts: list[bytes],
    n_parts: int,
    extra: RequestExtras | None,
) -> tuple[str, Any, BlockError | None]:
    """Route a request and check it with the guard: ``(resource, entry, refusal)``.

    The entry is None when the engine failed (logged here; the caller answers 500).
    """
    proxy = client.proxy
    path = target
    query = b""
    if 63 in path:  # b"?": an int test is much cheaper than a bytes search
        path, _, query = path.partition(b"?")
    match = proxy.router.match(method, path)
    resource = match.resource
    args: tuple[Any, ...] = ()
    if match.params:
        args = route_args(client, match.params, query, parts, n_parts, extra)
    origin = ""
    if proxy.origin_header is not None:
        origin = find_header(parts, n_parts, extra, proxy.origin_header) or ""
    try:
        entry = proxy.guard.entry(resource, origin=origin, args=args, inbound=True)
        return resource, entry, entry.check()  # a refusal is booked already
    except Exception:
        proxy.log.exception("guard entry failed on %s", resource)
        return resource, None, None


def route_args(
    client: ClientConnection,
    params: tuple[Any, ...],
    query: bytes,
    parts: list[bytes],
    n_parts: int,
    extra: RequestExtras | None,
) -> tuple[Any, ...]:
    """A route's param-flow arguments: header, query or client address values."""
    values: list[Any] = []
    parsed: dict[str, str] | None = None
    for p in params:
        if p.kind == "header":
            values.append(find_header(parts, n_parts, extra, p.name))
        elif p.kind == "query":
            if parsed is None:
                parsed = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
            values.append(parsed.get(p.name))
        else:
            values.append(client.peer_ip)
    return tuple(values)


def find_header(
    parts: list[bytes], n_parts: int, extra: RequestExtras | None, lname: str
) -> str | None:
    """First value of a request header, by lower-case name (forwarded or dropped)."""
    key = lname.encode("latin-1")
    for i in range(4, n_parts, 4):
        if parts[i].lower() == key:
            return parts[i + 2].decode("latin-1")
    if extra is not None:
        for name, value in extra.dropped:
            if name.lower() == key:
                return value.decode("latin-1")
    return None
