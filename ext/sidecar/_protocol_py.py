# cython: annotation_typing=False
# (C types come from the .pxd; the annotations are for mypy and readers)
"""Client side: the asyncio protocol that parses requests with httptools (pure-Python
truth of the twin; ``_protocol_c.pxd`` types it for Cython).

Requests on one connection are answered in order (HTTP/1.1 pipelining): while one is in
flight, the next parsed ones wait in ``pending`` and reading pauses. Reading also pauses
while the upstream cannot take request body bytes fast enough, so memory stays bounded.
A malformed request gets its 4xx/5xx answer on its own connection, which then closes;
other connections are untouched.

Cost: every httptools callback is a C-to-Python call, so each one does as little as it
can. ``on_header`` sorts a field with one lookup (``heads.request_field_kind``): ordinary
fields go straight into the list the upstream request head is joined from, the few the
proxy must read or drop take a slower path. A refused request without a body, on a
connection with nothing in flight, is answered before any ``Exchange`` is built.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any

import cython
import httptools

from ext.sidecar.heads import (
    CONNECTION,
    CONTENT_LENGTH,
    DROP,
    EXPECT,
    FORWARDED_FOR,
    FORWARDED_HOST,
    FORWARDED_PROTO,
    HOST,
    TRANSFER_ENCODING,
    RequestExtras,
)
from ext.sidecar.responses import error_response

if cython.compiled:
    from cython.cimports.ext.sidecar._admission_c import admit, blocked_bytes
    from cython.cimports.ext.sidecar._heads_c import request_field_kind
else:
    from ext.sidecar._admission_py import admit, blocked_bytes
    from ext.sidecar._heads_py import request_field_kind
if TYPE_CHECKING:
    from ext.sidecar._exchange_py import Exchange
    from ext.sidecar.proxy import Proxy
    from guard import BlockError

__all__ = ["ClientConnection"]

# Transfer codings we can pass through (re-chunked); anything else is 501 (SPEC §4).
_KNOWN_CODINGS = frozenset({b"chunked", b"gzip", b"x-gzip", b"deflate", b"compress", b"identity"})


class _Reject(Exception):
    """Stop parsing and answer ``status`` on this connection, then close it."""

    def __init__(self, status: int, word: str, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.word = word
        self.detail = detail


class ClientConnection:
    """One downstream connection: an ``asyncio.Protocol`` in all but its base class, which
    a compiled class cannot have."""

    def __init__(self, proxy: Proxy, exchange_type: type[Exchange]) -> None:
        self.proxy = proxy
        self._exchange_type = exchange_type  # given, not imported: the exchange imports us
        self.loop = proxy.loop
        self.transport: Any = None
        self.peer_ip = ""
        self.peer_ip_bytes = b""
        self.forwarded_for = b"x-forwarded-for: \r\n"  # with the peer address, once known
        self.closed = False
        self.closing = False
        self.write_paused = False
        self.current: Exchange | None = None
        self.pending: collections.deque[Exchange] = collections.deque()
        # Writes made while a read is handled are collected here and sent as one.
        self.batch_depth = 0
        self.out: list[bytes] = []
        self._reading_ex: Exchange | None = None
        self._pauses: set[str] = set()
        self._parser = httptools.HttpRequestParser(self)
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_timer = False
        self._url = b""
        self._parts: list[bytes] = []
        self._head_bytes = 0
        self._max_head = 0
        self._body_bytes = 0
        self._host: bytes | None = None
        self._extra: RequestExtras | None = None

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.peer_ip_bytes = self.peer_ip.encode()
        self.forwarded_for = b"x-forwarded-for: " + self.peer_ip_bytes + b"\r\n"
        self.proxy.connections.add(self)
        self._arm(self.proxy.header_timeout)

    def data_received(self, data: bytes) -> None:
        self.batch_depth += 1
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._parse_failed(exc, data)
        finally:
            self.batch_depth -= 1
            if not self.batch_depth and self.out:
                self.flush()
            if self._head_timer:
                # A request head began in this read: its deadline runs from now, unless
                # it also ended here (the common case, which then never touches a clock).
                self._head_timer = False
                if self._in_head:
                    self._arm(self.proxy.header_timeout)

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._parse_failed(exc, data)

    def _parse_failed(self, exc: httptools.HttpParserError, data: bytes) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            # Upgrade is a hop-by-hop header we strip, so the request was proxied as plain
            # HTTP; go on parsing what follows with a fresh parser.
            self._parser = httptools.HttpRequestParser(self)
            rest = data[int(exc.args[0]) :]
            if rest:
                self._feed(rest)
        elif isinstance(exc, httptools.HttpParserCallbackError):
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.word, cause.detail)
            else:
                self.proxy.log.error("request handling failed: %r", cause)
                self._reject(400, "bad_request", "malformed request")
        else:
            self._reject(400, "bad_request", str(exc))

    def eof_received(self) -> bool:
        # A client may half-close after its request: answer it, then close.
        self.closing = True
        if self.current is None or self._in_head:
            return False
        # keep the write side open, unless a request body was cut short (never completes)
        return self._reading_ex is None or self._reading_ex.body_done

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self)
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.current is not None:
            self.current.client_lost()
        self.pending.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.current is not None:
            self.current.client_write_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.current is not None:
            self.current.client_write_paused(False)

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        # The upstream request head, joined once the guard lets the request through:
        # method, " ", target, " HTTP/1.1\r\n", then name, ": ", value, "\r\n" per field.
        self._parts = [b"", b" ", b"", b" HTTP/1.1\r\n"]
        self._head_bytes = 0
        self._max_head = self.proxy.max_header_bytes  # read once per request
        self._host = None
        self._extra = None
        self._head_timer = self.current is None  # armed by data_received if still needed

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise _Reject(431, "headers_too_large", "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._head_bytes + len(name) + len(value) + 4
        self._head_bytes = size
        if size > self._max_head:
            raise _Reject(431, "headers_too_large", "request headers too large")
        kind = request_field_kind(name)
        if kind == 0:
            self._parts += (name, b": ", value, b"\r\n")
        elif kind == HOST:
            self._host = value
            self._parts += (name, b": ", value, b"\r\n")
        else:
            self._special_field(kind, name, value)

    def _special_field(self, kind: int, name: bytes, value: bytes) -> None:
        """A field the proxy reads (framing, Expect, Connection, X-Forwarded-*) or drops."""
        extra = self._extra
        if extra is None:
            extra = self._extra = RequestExtras()
        if kind == CONTENT_LENGTH:
            extra.length = int(value) if value.strip().isdigit() else -1
        elif kind in (FORWARDED_PROTO, FORWARDED_HOST):
            extra.forwarded |= kind
        else:
            if kind == TRANSFER_ENCODING:
                for coding in value.split(b","):
                    coding = coding.strip().lower()
                    if coding not in _KNOWN_CODINGS:
                        word = "unsupported_transfer_encoding"
                        raise _Reject(501, word, coding.decode("latin-1"))
                extra.te = value if extra.te is None else extra.te + b", " + value
            elif kind == EXPECT:
                if value.strip().lower() != b"100-continue":
                    raise _Reject(417, "expectation_failed", value.decode("latin-1"))
                extra.expect = True
            elif kind == CONNECTION:
                extra.tokens = extra.tokens | {t.strip().lower() for t in value.split(b",")}
            elif kind == FORWARDED_FOR:
                extra.xff = value if extra.xff is None else extra.xff + b", " + value
            else:
                assert kind == DROP
            extra.dropped.append((name, value))  # not forwarded
            return
        self._parts += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        parser = self._parser
        method = parser.get_method()
        if method == b"CONNECT":
            raise _Reject(501, "method_not_supported", "CONNECT is not supported")
        keep_alive = parser.should_keep_alive()
        extra = self._extra
        framing = "none"
        # llhttp keeps a request alive without "Connection: keep-alive" only for HTTP/1.1
        # (1.0 needs the token; 0.9 and 2.0 count as 1.0), so the version is known without
        # get_http_version(), which formats a new string on every call.
        if keep_alive and (extra is None or b"keep-alive" not in extra.tokens):
            version = "1.1"
        else:
            version = parser.get_http_version()
        if self._host is None and version == "1.1":
            raise _Reject(400, "bad_request", "HTTP/1.1 request without Host")
        if extra is not None:
            framing = self._framing(extra)
        self._deadline = None  # headers are in: no header timeout while proxying
        self._in_head = False
        parts = self._parts
        if self.current is None and framing == "none":
            # Nothing in flight and no body to read: the guard decides now, and a refusal
            # is answered without building an Exchange (the cost of a blocked flood).
            resource, entry, error = admit(self, method, self._url, parts, len(parts), extra)
            if error is not None:
                self._refuse(resource, error, keep_alive)
                return
            ex = self._exchange_type(
                self, method, self._url, parts, version, keep_alive, framing, self._host, extra
            )
            ex.resource = resource
            self._reading_ex = self.current = ex
            ex.admitted(entry)
            return
        ex = self._exchange_type(
            self, method, self._url, parts, version, keep_alive, framing, self._host, extra
        )
        self._reading_ex = ex
        if self.current is None:
            self.current = ex
            ex.start()
        else:
            self.pending.append(ex)
            self.pause_reading("pipeline")

    def _refuse(self, resource: str, error: BlockError, keep_alive: bool) -> None:
        """Answer a refused body-less request that had the connection to itself."""
        reason = error.reason
        self.proxy.metrics.blocked(resource, reason)
        close = not keep_alive or self.closing
        self.write(blocked_bytes(reason, resource, error.retry_after, close))
        if close:
            self.closing = True
            self.flush()
            self.transport.close()
        else:
            self._arm(self.proxy.keepalive_timeout)

    def _framing(self, extra: RequestExtras) -> str:
        """How the request body is delimited: "none", "length" or "chunked"."""
        if extra.te is not None:
            codings = [c.strip() for c in extra.te.split(b",")]
            kept = [c for c in codings[: len(codings) - 1] if c.lower() != b"identity"]
            extra.te_codings = b"".join(c + b", " for c in kept)
            self._body_bytes = 0
            return "chunked"
        if extra.length > 0:
            limit = self.proxy.max_body_bytes
            if limit is not None and extra.length > limit:
                raise _Reject(413, "body_too_large", f"limit is {limit} bytes")
            self._body_bytes = 0
            return "length"
        extra.expect = False  # nothing to wait for
        return "none"

    def on_body(self, body: bytes) -> None:
        limit = self.proxy.max_body_bytes
        if limit is not None:
            self._body_bytes += len(body)
            if self._body_bytes > limit:
                raise _Reject(413, "body_too_large", f"limit is {limit} bytes")
        ex = self._reading_ex
        if ex is not None:
            ex.request_body(body)

    def on_message_complete(self) -> None:
        ex = self._reading_ex
        self._reading_ex = None
        if ex is not None:
            ex.request_end()
            if self.current is None and not self.closing:
                # answered before its request was fully read (a refusal): idle from now
                self._arm(self.proxy.keepalive_timeout)

    # -- exchange lifecycle -----------------------------------------------------------
    def exchange_done(self, ex: Exchange) -> None:
        """Called once per exchange when its answer has been written."""
        if self.current is not ex:
            return
        self.current = None
        if self.closed:
            return
        if ex.close_after or not ex.keep_alive or self.closing:
            self.closing = True
            if not self.transport.is_closing():  # not aborted
                self.flush()
                self.transport.close()
            return
        if self.pending:
            nxt = self.pending.popleft()
            if not self.pending:
                self.resume_reading("pipeline")
            self.current = nxt
            nxt.start()
            return
        if self._pauses:
            self.resume_reading("pipeline")
        if self._reading_ex is None:
            self._arm(self.proxy.keepalive_timeout)

    def _reject(self, status: int, word: str, detail: str) -> None:
        """Answer a request we cannot parse or accept, then close this connection."""
        self._deadline = None
        if self.current is not None and self.current is not self._reading_ex:
            # An earlier request is still being answered; close once it is done.
            self.pending.clear()
            self.closing = True
            self.pause_reading("rejected")
            return
        if self.current is not None:
            self.current.client_lost()
        self.proxy.metrics.rejected(status)
        self.closing = True
        self.write(error_response(status, word, detail, close=True))
        self.flush()
        self.transport.close()

    # -- timers: one per connection, re-armed lazily ----------------------------------
    def _arm(self, timeout: float) -> None:
        # proxy.now is the sweep's clock (at most 0.1 s old): cheaper than a clock read
        # per request, for deadlines measured in seconds.
        self._deadline = self.proxy.now + timeout
        if self._timer is None:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None or self.closed:
            return
        now = self.loop.time()
        if now < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        if self.current is not None:
            return
        if self._in_head:
            self._reject(408, "request_timeout", "request headers not received in time")
        else:
            self.closing = True
            self.flush()
            self.transport.close()

    # -- output and flow control ------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.batch_depth:
            self.out.append(data)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        out = self.out
        if out:
            if not self.closed:
                if len(out) == 1:
                    self.transport.write(out[0])
                else:
                    self.transport.writelines(out)
            # transports copy what they keep, so the list is reused
            out.clear()

    def abort(self) -> None:
        self.closing = True
        if not self.closed:
            self.transport.abort()

    def pause_reading(self, reason: str) -> None:
        if not self._pauses and not self.closed:
            self.transport.pause_reading()
        self._pauses.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self._pauses:
            self._pauses.discard(reason)
            if not self._pauses and not self.closed:
                self.transport.resume_reading()

    def close_if_idle(self) -> bool:
        """Close now when no request is in flight (drain); else close after it."""
        self.closing = True
        if self.current is None and self._reading_ex is None:
            self.flush()
            self.transport.close()
            return True
        return False
