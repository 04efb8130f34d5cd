"""Canned responses the proxy writes itself: blocked, errors, and the request head it sends.

SPEC §4: flow and param_flow -> 429, degrade and system -> 503, authority -> 403, with the
JSON body ``{"error": "<reason>_blocked", "resource": ...}`` and ``Retry-After`` in whole
seconds, rounded up, when the engine knows a time.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus

__all__ = [
    "BLOCK_STATUS",
    "HOP_BY_HOP",
    "REASONS",
    "blocked_parts",
    "blocked_response",
    "error_response",
    "simple_response",
]

BLOCK_STATUS = {"flow": 429, "param_flow": 429, "degrade": 503, "system": 503, "authority": 403}

# RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones proxies still meet.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    close: bool = False,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length body."""
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown")),
        b"content-type: %s\r\ncontent-length: %d\r\n" % (content_type, len(body)),
    ]
    for name, value in extra:
        head.append(b"%s: %s\r\n" % (name, value))
    if close:
        head.append(b"connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


def blocked_parts(
    reason: str, resource: str, retry_after: float | None
) -> tuple[int, tuple[tuple[bytes, bytes], ...], bytes]:
    """Status, extra headers and JSON body of a refusal (shared with the middlewares)."""
    status = BLOCK_STATUS.get(reason, 503)
    body = json.dumps({"error": f"{reason}_blocked", "resource": resource}).encode()
    extra: tuple[tuple[bytes, bytes], ...] = ()
    if retry_after is not None:
        extra = ((b"retry-after", b"%d" % max(0, math.ceil(retry_after))),)
    return status, extra, body


def blocked_response(
    reason: str, resource: str, retry_after: float | None, *, close: bool = False
) -> bytes:
    """The answer to a request the engine refused."""
    status, extra, body = blocked_parts(reason, resource, retry_after)
    return simple_response(status, body, close=close, extra=extra)


def error_response(status: int, error: str, detail: str = "", *, close: bool = False) -> bytes:
    """A proxy error (400, 413, 431, 501, 502, 504...) with a small JSON body."""
    payload = {"error": error}
    if detail:
        payload["detail"] = detail
    return simple_response(status, json.dumps(payload).encode(), close=close)
