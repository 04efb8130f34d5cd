"""Client side: the asyncio Protocol that parses requests with httptools.

Requests on one connection are answered in order (HTTP/1.1 pipelining): while one is in
flight, the next parsed ones wait in ``pending`` and reading pauses. Reading also pauses
while the upstream cannot take request body bytes fast enough, so memory stays bounded.
A malformed request gets its 4xx/5xx answer on its own connection, which then closes;
other connections are untouched.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any

import httptools

from ext.sidecar.exchange import Exchange
from ext.sidecar.responses import error_response

if TYPE_CHECKING:
    from ext.sidecar.proxy import Proxy

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


class ClientConnection(asyncio.Protocol):
    """One downstream connection."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.transport: Any = None
        self.peer_ip = ""
        self.peer_ip_bytes = b""
        self.closed = False
        self.closing = False
        self.write_paused = False
        self.conn_tokens: frozenset[bytes] = frozenset()
        self.current: Exchange | None = None
        self.pending: collections.deque[Exchange] = collections.deque()
        self._reading_ex: Exchange | None = None
        self._pauses: set[str] = set()
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes, bytes]] = []
        self._head_bytes = 0
        self._host: bytes | None = None
        self._length = -1
        self._te: bytes | None = None
        self._expect = False
        self._body_bytes = 0
        self._in_head = False
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._batch = 0
        self._out: list[bytes] = []

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        self.peer_ip_bytes = self.peer_ip.encode()
        self.proxy.connections.add(self)
        self._arm(self.proxy.header_timeout)

    def data_received(self, data: bytes) -> None:
        self._batch += 1
        try:
            self._feed(data)
        finally:
            self.end_batch()

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # Upgrade is a hop-by-hop header we strip, so the request was proxied as plain
            # HTTP; go on parsing what follows with a fresh parser.
            self._parser = httptools.HttpRequestParser(self)
            rest = data[int(upgrade.args[0]) :]
            if rest:
                self._feed(rest)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.word, cause.detail)
            else:
                self.proxy.log.error("request handling failed: %r", cause)
                self._reject(400, "bad_request", "malformed request")
        except httptools.HttpParserError as exc:
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
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._host = None
        self._length = -1
        self._te = None
        self._expect = False
        self._body_bytes = 0
        self._in_head = True
        self.conn_tokens = frozenset()
        if self.current is None:
            self._arm(self.proxy.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self.proxy.max_header_bytes:
            raise _Reject(431, "headers_too_large", "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.proxy.max_header_bytes:
            raise _Reject(431, "headers_too_large", "request headers too large")
        lname = name.lower()
        self._headers.append((name, value, lname))
        if lname == b"host":
            self._host = value
        elif lname == b"content-length":
            self._length = int(value) if value.strip().isdigit() else -1
        elif lname == b"transfer-encoding":
            codings = [c.strip().lower() for c in value.split(b",")]
            for coding in codings:
                if coding not in _KNOWN_CODINGS:
                    raise _Reject(501, "unsupported_transfer_encoding", coding.decode("latin-1"))
            self._te = value if self._te is None else self._te + b", " + value
        elif lname == b"expect":
            if value.strip().lower() != b"100-continue":
                raise _Reject(417, "expectation_failed", value.decode("latin-1"))
            self._expect = True
        elif lname == b"connection":
            self.conn_tokens = self.conn_tokens | {t.strip().lower() for t in value.split(b",")}

    def on_headers_complete(self) -> None:
        parser = self._parser
        proxy = self.proxy
        method = parser.get_method()
        if method == b"CONNECT":
            raise _Reject(501, "method_not_supported", "CONNECT is not supported")
        version = parser.get_http_version()
        if version == "1.1" and self._host is None:
            raise _Reject(400, "bad_request", "HTTP/1.1 request without Host")
        framing, te_codings = "none", b""
        if self._te is not None:
            framing = "chunked"
            codings = [c.strip() for c in self._te.split(b",")]
            kept = [c for c in codings[:-1] if c.lower() != b"identity"]
            te_codings = b"".join(c + b", " for c in kept)
        elif self._length > 0:
            framing = "length"
            limit = proxy.max_body_bytes
            if limit is not None and self._length > limit:
                raise _Reject(413, "body_too_large", f"limit is {limit} bytes")
        self._deadline = None  # headers are in: no header timeout while proxying
        self._in_head = False
        ex = Exchange(
            self,
            method,
            self._url,
            self._headers,
            version,
            parser.should_keep_alive(),
            framing,
            self._length,
            self._host,
            te_codings,
        )
        ex.expect = self._expect and framing != "none"
        self._reading_ex = ex
        if self.current is None:
            self._start(ex)
        else:
            self.pending.append(ex)
            self.pause_reading("pipeline")

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

    # -- exchange lifecycle -----------------------------------------------------------
    def _start(self, ex: Exchange) -> None:
        self.current = ex
        ex.start()

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
            self._start(nxt)
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
        self._deadline = self.loop.time() + timeout
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
        if self._batch:
            self._out.append(data)
        else:
            self.transport.write(data)

    def begin_batch(self) -> None:
        """Collect writes until ``end_batch``: one send for a response head and body."""
        self._batch += 1

    def end_batch(self) -> None:
        self._batch -= 1
        if not self._batch and self._out:
            self.flush()

    def flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            if self.closed:
                return
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)

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
