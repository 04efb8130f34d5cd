# cython: annotation_typing=False
# (C types come from the .pxd; the annotations are for mypy and readers)
"""Upstream side: one ``UpstreamConnection`` protocol per socket and a bounded idle pool
(pure-Python truth of the twin; ``_upstream_c.pxd`` types it for Cython).

A connection carries one exchange at a time (no pipelining towards the app). Response
events are handed to the exchange (``ext.sidecar.exchange``) as they are parsed, so bodies
stream through without being buffered. The pool keeps at most ``pool_size`` idle
keep-alive connections per upstream; a connection the app closed while idle is dropped.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import cython
import httptools

from ext.sidecar.config import Upstream
from ext.sidecar.errors import UpstreamError, UpstreamTimeoutError

if cython.compiled:
    from cython.cimports.ext.sidecar._heads_c import response_fields
else:
    from ext.sidecar._heads_py import response_fields
if TYPE_CHECKING:
    from ext.sidecar._exchange_py import Exchange

__all__ = ["UpstreamConnection", "UpstreamPool"]


_MAX_HEAD = 256 * 1024  # a response head larger than this is refused (502)


class _SkipBody(Exception):
    """Raised from on_headers_complete to end a response that has no body (HEAD)."""


class UpstreamConnection:
    """One keep-alive connection to an upstream (an ``asyncio.Protocol`` but for the base
    class, which a compiled class cannot have)."""

    def __init__(self, pool: UpstreamPool, upstream: Upstream) -> None:
        self.pool = pool
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.closed = False
        self.reused = False
        self.head_only = False
        self._parser = httptools.HttpResponseParser(self)
        self._raw = b""  # bytes of the response head being received
        self._collect = True
        self._interim = False

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Bytes on an idle connection: the app is confused; never reuse it.
            self.close()
            return
        if self._collect:
            # Keep the raw head: its lines are split in one pass once the parser has
            # accepted it, far cheaper than one on_header callback per field.
            self._raw = self._raw + data if self._raw else data
            if len(self._raw) > _MAX_HEAD:
                self._fail(UpstreamError(f"response head from {self.upstream.url} too large"))
                return
        client = exchange.client
        client.batch_depth += 1  # head and body parsed from this read leave in one write
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _SkipBody):
                self._finish_head_only()
            else:
                cause = exc.__context__
                self._fail(UpstreamError(f"bad response from {self.upstream.url}: {cause}"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"bad response from {self.upstream.url}: {exc}"))
        finally:
            client.batch_depth -= 1
            if not client.batch_depth and client.out:
                client.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.upstream_lost(self, exc)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading("upstream")

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading("upstream")

    # -- httptools callbacks ----------------------------------------------------------
    def on_headers_complete(self) -> None:
        # Callbacks are most of this side's cost, so there is no on_message_begin,
        # on_status or on_header: the head's lines come from the raw bytes (llhttp has
        # validated them: CRLF endings, no folding, no space before a colon), and the
        # reason phrase is the standard one for the status.
        raw = self._raw
        if not raw.startswith(b"HTTP/"):
            # Bytes the app sent after its previous response (in the same read) began
            # this message: the head is not ours to trust.
            raise UpstreamError("response does not start with a status line")
        end = raw.find(b"\r\n\r\n")
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue / 103 Early Hints: not forwarded
            self._raw = raw[end + 4 :]  # the next head may already be here
            return
        self._collect = False
        self._raw = b""
        exchange = self.exchange
        if exchange is not None:
            kept_alive = self._parser.should_keep_alive()
            fields, has_length, chunked = response_fields(raw[: end + 2], kept_alive)
            exchange.response_head(status, fields, has_length, chunked)
        if self.head_only:
            raise _SkipBody

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.response_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._collect = True
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.response_end(self)

    # -- helpers ----------------------------------------------------------------------
    def _finish_head_only(self) -> None:
        # The parser stopped at the headers; it cannot go on, so this connection is done.
        exchange = self.exchange
        self.exchange = None
        self.close()
        if exchange is not None:
            exchange.response_end(self, reusable=False)

    def _fail(self, error: Exception) -> None:
        exchange = self.exchange
        self.exchange = None
        self.close()
        if exchange is not None:
            exchange.upstream_failed(error)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Idle keep-alive connections per upstream, at most ``pool_size`` each."""

    def __init__(self, pool_size: int, connect_timeout: float) -> None:
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        # keyed by URL: str hashes are cached, a frozen dataclass's are recomputed per lookup
        self._idle: dict[str, collections.deque[UpstreamConnection]] = {}
        self.open_connections = 0
        self.connects_total = 0
        self.reuses_total = 0

    def take_idle(self, upstream: Upstream) -> UpstreamConnection | None:
        """An idle keep-alive connection to ``upstream``, or None."""
        idle = self._idle.get(upstream.url)
        while idle:
            conn = idle.pop()  # most recently used first: least likely to be stale
            if not conn.closed and not conn.transport.is_closing():  # type: ignore[union-attr]
                conn.reused = True
                self.reuses_total += 1
                return conn
        return None

    def connect(
        self,
        upstream: Upstream,
        callback: Callable[[UpstreamConnection | None, Exception | None], None],
    ) -> None:
        """Open a new connection; ``callback(conn, None)`` or ``callback(None, error)``.

        The error is an ``UpstreamTimeoutError`` after ``connect_timeout``, else an
        ``UpstreamError``.
        """
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            # The compiled twin cannot subclass asyncio.Protocol; it has its methods.
            return cast(asyncio.Protocol, UpstreamConnection(self, upstream))

        task = loop.create_task(loop.create_connection(protocol, upstream.host, upstream.port))
        timer = loop.call_later(self.connect_timeout, task.cancel)

        def done(t: asyncio.Task[Any]) -> None:
            timer.cancel()
            if t.cancelled():
                callback(None, UpstreamTimeoutError(f"connect to {upstream.url} timed out"))
                return
            exc = t.exception()
            if exc is not None:
                reason = getattr(exc, "strerror", None) or exc
                callback(None, UpstreamError(f"cannot connect to {upstream.url}: {reason}"))
                return
            self.open_connections += 1
            self.connects_total += 1
            callback(t.result()[1], None)

        task.add_done_callback(done)

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange completed cleanly."""
        if conn.closed or self.pool_size == 0:
            conn.close()
            return
        idle = self._idle.get(conn.upstream.url)
        if idle is None:
            idle = self._idle[conn.upstream.url] = collections.deque()
        if len(idle) >= self.pool_size:
            conn.close()
            return
        conn.head_only = False
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        """Called when a connection closed."""
        self.open_connections -= 1
        idle = self._idle.get(conn.upstream.url)
        if idle:
            try:
                idle.remove(conn)
            except ValueError:
                pass

    def retain(self, upstreams: Iterable[Upstream]) -> None:
        """Close idle connections to upstreams no longer configured (after a reload)."""
        keep = {u.url for u in upstreams}
        for url in [u for u in self._idle if u not in keep]:
            idle = self._idle.pop(url)
            while idle:
                idle.pop().close()

    def idle_count(self) -> int:
        return sum(len(d) for d in self._idle.values())

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
