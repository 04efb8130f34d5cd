# cython: annotation_typing=False
# (C types come from the .pxd; the annotations are for mypy and readers)
"""One proxied request: guard decision, upstream pick, streaming both ways, outcome
(pure-Python truth of the twin; ``_exchange_c.pxd`` types it for Cython).

No task or coroutine is created per request in the common case: the guard's decision
comes from ``ext.sidecar.admission`` as a value, and only a rate-limiter rule that makes
the request wait starts a task. After the upstream connection is chosen, everything is
driven by protocol callbacks that write straight to the other side's transport, so bodies
are never buffered beyond the transports' flow-control limits. ``_finish`` runs exactly
once per passed request and closes its guard entry.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import cython

from ext.sidecar.errors import (
    ClientGoneError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from ext.sidecar.heads import (
    CONNECTION_WORDS,
    FORWARDED_HOST,
    FORWARDED_PROTO,
    RequestExtras,
)
from ext.sidecar.responses import REASONS, error_response
from guard import BlockError

if cython.compiled:
    from cython.cimports.ext.sidecar._admission_c import admit, blocked_bytes, find_header
    from cython.cimports.ext.sidecar._protocol_c import ClientConnection
    from cython.cimports.ext.sidecar._upstream_c import UpstreamConnection
else:
    from ext.sidecar._admission_py import admit, blocked_bytes, find_header

    if TYPE_CHECKING:
        from ext.sidecar._protocol_py import ClientConnection
        from ext.sidecar._upstream_py import UpstreamConnection
if TYPE_CHECKING:
    from ext.sidecar.config import Upstream

__all__ = ["Exchange"]

_BUFFER_LIMIT = 256 * 1024  # request body held while the upstream connection is opened
_NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PROTO_HOST = b"x-forwarded-proto: http\r\nx-forwarded-host: "


class Exchange:
    """State of one request from headers-complete to the last response byte."""

    def __init__(
        self,
        client: ClientConnection,
        method: bytes,
        target: bytes,
        parts: list[bytes],
        version: str,
        keep_alive: bool,
        framing: str,
        host: bytes | None,
        extra: RequestExtras | None,
    ) -> None:
        self.client = client
        self.method = method
        self.target = target
        # The forwarded fields, laid out for the upstream request head (see
        # ClientConnection.on_message_begin); dropped ones are in ``extra.dropped``.
        self.parts = parts
        self.n_parts = len(parts)
        self.version = version
        self.keep_alive = keep_alive
        self.framing = framing  # "none" | "length" | "chunked" (request body)
        self.host = host
        self.extra = extra  # the less common fields, when the request had any
        self.expect = extra is not None and extra.expect
        self.body_done = framing == "none"
        self.discard = False
        self.head_sent = False
        self.close_after = False
        self.resource = ""
        self._buffer: list[bytes] | None = None  # body bytes held until a connection is ready
        self._buffered = 0
        self._conn: UpstreamConnection | None = None
        self._entry: Any = None
        self._finished = False
        # The upstream leg's fields are set by _entered: a refused request never needs them.

    # -- request body, fed by the client connection ----------------------------------
    def request_body(self, data: bytes) -> None:
        if self.discard:
            return
        conn = self._conn
        if conn is not None:
            self._sent_body = True
            if self.framing == "chunked":
                conn.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))  # type: ignore[union-attr]
            else:
                conn.transport.write(data)  # type: ignore[union-attr]
            return
        if self._buffer is None:
            self._buffer = []
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > _BUFFER_LIMIT:
            self.client.pause_reading("buffer")

    def request_end(self) -> None:
        self.body_done = True
        conn = self._conn
        if conn is not None and self.framing == "chunked" and not self.discard:
            conn.write(b"0\r\n\r\n")

    # -- entering the guard -------------------------------------------------------------
    def start(self) -> None:
        """Route, enter the guard, then forward or answer the refusal."""
        self.resource, entry, error = admit(
            self.client, self.method, self.target, self.parts, self.n_parts, self.extra
        )
        if error is not None:
            self._blocked(error)
        else:
            self.admitted(entry)

    def admitted(self, entry: Any) -> None:
        """Go on with a request the guard let through (``entry`` None: it failed)."""
        if entry is None:
            self._guard_failed()
        elif entry.wait_ms > 0.0:
            # a rate-limiter rule queues the request: wait without blocking the loop
            clock = self.client.proxy.guard.clock
            task = self.client.loop.create_task(self._wait(entry, clock))
            task.add_done_callback(self._waited)
        else:
            entry.passed()
            self._entered(entry)

    @staticmethod
    async def _wait(entry: Any, clock: Any) -> Any:
        await clock.asleep(entry.wait_ms)
        entry.passed()
        return entry

    def _waited(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self.client.exchange_done(self)
            return
        err = task.exception()
        if err is not None:
            self.client.proxy.log.error("guard entry failed on %s: %r", self.resource, err)
            self._guard_failed()
        elif self.client.closed:
            task.result().exit()  # the client left while the rule made it wait
            self.client.exchange_done(self)
        else:
            self._entered(task.result())

    def _guard_failed(self) -> None:
        self.close_after = True
        self._answer(error_response(500, "guard_error", close=True))
        self.client.exchange_done(self)

    def _blocked(self, err: BlockError) -> None:
        client = self.client
        resource = self.resource
        reason = err.reason
        client.proxy.metrics.blocked(resource, reason)
        # A client that waits for "100 Continue" may or may not send its body now.
        close = not self.keep_alive or client.closing or (self.expect and not self.body_done)
        self.close_after = close
        self._answer(blocked_bytes(reason, resource, err.retry_after, close))
        client.exchange_done(self)

    def _entered(self, entry: Any) -> None:
        self._entry = entry
        client = self.client
        client.proxy.metrics.passed(self.resource)
        self._started = time.perf_counter()
        self._upstream: Upstream | None = None
        self._started_on: Upstream | None = None
        self._attempt = 0
        self._io = 0
        self._seen_io = 0
        self._idle_since = 0.0
        self._sent_body = False
        self._out_chunked = False
        self._resp_eof = False
        self._status = 0
        if self.expect and not self.body_done:
            client.write(_CONTINUE)  # the upstream never sees Expect: we said "go on"
        self._dispatch()

    def header(self, lname: str) -> str | None:
        """First value of a header, by lower-case name."""
        return find_header(self.parts, self.n_parts, self.extra, lname)

    # -- reaching the upstream ----------------------------------------------------------
    def _dispatch(self) -> None:
        proxy = self.client.proxy
        balancer = proxy.balancer
        self._upstream = upstream = balancer.pick(self._hash_key if balancer.needs_key else None)
        conn = proxy.pool.take_idle(upstream)
        if conn is not None:
            self._attach(conn)
        else:
            proxy.pool.connect(upstream, self._connected)

    def _hash_key(self) -> str | None:
        """The consistent-hash key: ``hash_key``'s header or query value, else the client."""
        param = self.client.proxy.balancer.hash_key
        if param is None or param.kind == "client_ip":
            return self.client.peer_ip
        if param.kind == "header":
            return self.header(param.name)
        query = self.target.partition(b"?")[2].decode("latin-1")
        return dict(parse_qsl(query, keep_blank_values=True)).get(param.name)

    def _connected(self, conn: UpstreamConnection | None, error: Exception | None) -> None:
        proxy = self.client.proxy
        if self._finished or self.client.closed:
            if conn is not None:
                proxy.pool.release(conn)
            self._finish(ClientGoneError())
            return
        if conn is None:
            assert error is not None and self._upstream is not None
            if proxy.balancer.tracks_requests:
                proxy.balancer.on_start(self._upstream)
                self._started_on = self._upstream
            if isinstance(error, TimeoutError):
                self._error(504, "upstream_timeout", str(error))
            else:
                self._error(502, "upstream_unavailable", str(error))
            self._finish(error)
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        client = self.client
        proxy = client.proxy
        if proxy.balancer.tracks_requests:
            proxy.balancer.on_start(conn.upstream)
            self._started_on = conn.upstream
        self._conn = conn
        conn.exchange = self
        conn.head_only = self.method == b"HEAD"
        self._seen_io = -1  # the proxy's next sweep starts the upstream's silence clock
        proxy.active.add(self)
        head = self._request_head(conn)
        if self._buffer:
            self._sent_body = True
            if self.framing == "chunked":
                data = b"".join(self._buffer)
                conn.transport.writelines((head, b"%x\r\n" % len(data), data, b"\r\n"))  # type: ignore[union-attr]
            else:
                conn.transport.writelines((head, *self._buffer))  # type: ignore[union-attr]
            self._buffer.clear()
            self._buffered = 0
            client.resume_reading("buffer")
        else:
            conn.transport.write(head)  # type: ignore[union-attr]
        if self.body_done and self.framing == "chunked":
            conn.write(b"0\r\n\r\n")

    def _request_head(self, conn: UpstreamConnection) -> bytes:
        parts = self.parts
        n = self.n_parts
        del parts[n:]  # a retry on a fresh connection builds the head again
        parts[0] = self.method
        parts[2] = self.target
        client = self.client
        host = self.host
        extra = self.extra
        if extra is None and host is not None:  # the common case
            parts += (client.forwarded_for, _PROTO_HOST, host, b"\r\n\r\n")
            return b"".join(parts)
        xff: bytes | None = None
        forwarded = 0
        if extra is not None:
            xff, forwarded = extra.xff, extra.forwarded
            named = extra.tokens - CONNECTION_WORDS
            if named:  # rare: the client's Connection names fields to drop
                parts = parts[:4] + [
                    p
                    for i in range(4, n, 4)
                    if parts[i].lower() not in named
                    for p in parts[i : i + 4]
                ]
                if b"x-forwarded-for" in named:
                    xff = None
                if b"x-forwarded-proto" in named:
                    forwarded &= ~FORWARDED_PROTO
                if b"x-forwarded-host" in named:
                    forwarded &= ~FORWARDED_HOST
        if xff is None:
            parts.append(client.forwarded_for)
        else:
            parts += (b"x-forwarded-for: ", xff, b", ", client.peer_ip_bytes, b"\r\n")
        if not forwarded & FORWARDED_PROTO:
            parts.append(b"x-forwarded-proto: http\r\n")
        if host is None:
            up = conn.upstream
            parts.append(b"host: %s:%d\r\n" % (up.host.encode(), up.port))
        elif not forwarded & FORWARDED_HOST:
            parts += (b"x-forwarded-host: ", host, b"\r\n")
        if self.framing == "chunked":
            assert extra is not None
            parts += (b"transfer-encoding: ", extra.te_codings, b"chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -- upstream events ----------------------------------------------------------------
    def response_head(self, status: int, fields: bytes, has_length: bool, chunked: bool) -> None:
        """The upstream's head, read by ``_upstream_py.response_fields``.

        :param fields: its field lines to forward, each with its CRLF.
        :param has_length: the head delimits the body (Content-Length, or no body).
        :param chunked: the upstream sent the body chunked.
        """
        self._status = status
        self._io += 1
        status_line = _STATUS_LINES.get(status) or _status_line(status)
        framing = b""
        if not has_length and not (
            status < 200 or status in _NO_BODY_STATUS or self.method == b"HEAD"
        ):
            # chunked or read-until-close upstream body: re-frame for the client
            self._resp_eof = not chunked
            if self.version == "1.1":
                self._out_chunked = True
                framing = b"transfer-encoding: chunked\r\n"
            else:
                self.close_after = True
        if self.close_after or not self.body_done or self._must_close():
            self.close_after = True
            end = b"connection: close\r\n\r\n"
        elif self.version == "1.0":
            end = b"connection: keep-alive\r\n\r\n"
        else:
            end = b"\r\n"
        self.head_sent = True
        # Response events arrive inside UpstreamConnection.data_received, which batches
        # the client's writes: append to the batch directly.
        self.client.out.append(b"".join((status_line, fields, framing, end)))

    def response_body(self, data: bytes) -> None:
        self._io += 1
        if self._out_chunked:
            self.client.out += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.client.out.append(data)  # batched, as the head

    def response_end(self, conn: UpstreamConnection, reusable: bool = True) -> None:
        if self._out_chunked:
            self.client.write(b"0\r\n\r\n")
        pool = self.client.proxy.pool
        if reusable and self.body_done and not conn.closed and self._conn is conn:
            pool.release(conn)
        else:
            conn.close()
        self._conn = None
        self.discard = True  # any late request bytes have nowhere to go
        status = self._status
        self._finish(UpstreamStatusError(f"upstream answered {status}") if status >= 500 else None)

    def upstream_lost(self, conn: UpstreamConnection, exc: BaseException | None) -> None:
        self._conn = None
        if self.head_sent and self._resp_eof:
            self.response_end(conn, reusable=False)  # body delimited by the close
            return
        if (
            not self.head_sent
            and conn.reused
            and not self._sent_body
            and self.framing == "none"
            and self._attempt == 0
        ):
            # A pooled connection the app closed meanwhile: try once on a fresh one.
            self._attempt = 1
            self.client.proxy.active.discard(self)
            self._release_balancer(True)
            self._dispatch()
            return
        self.upstream_failed(UpstreamError(f"{conn.upstream.url} closed the connection"))

    def upstream_failed(self, error: Exception) -> None:
        self.discard = True
        if self._conn is not None:
            self._conn.exchange = None
            self._conn.abort()
            self._conn = None
        if self.head_sent:
            self.client.abort()  # a truncated response must not look complete
        elif isinstance(error, TimeoutError):
            self._error(504, "upstream_timeout", str(error))
        else:
            self._error(502, "bad_gateway", str(error))
        self._finish(error)

    def client_lost(self) -> None:
        if self._conn is not None:
            self._conn.exchange = None
            self._conn.abort()
            self._conn = None
        if self._entry is not None:
            self._finish(ClientGoneError())

    def client_write_paused(self, paused: bool) -> None:
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.closed:
            if paused:
                conn.transport.pause_reading()
            else:
                conn.transport.resume_reading()

    def check_timeout(self, now: float, timeout: float) -> None:
        """Called by the proxy's sweep: fail with 504 after ``timeout`` s of upstream silence.

        Progress is an event counter, not a clock read per chunk; a client too slow to
        take the response (write paused) is not the upstream's fault.
        """
        if self._io != self._seen_io or self.client.write_paused:
            self._seen_io = self._io
            self._idle_since = now
        elif now - self._idle_since >= timeout:
            self.upstream_failed(UpstreamTimeoutError(f"no answer within {timeout:g}s"))

    # -- ending -------------------------------------------------------------------------
    def _must_close(self) -> bool:
        return not self.keep_alive or self.client.closing

    def _answer(self, response: bytes) -> None:
        """Write a proxy-made response; the request body, if any, is read and dropped."""
        client = self.client
        self.discard = True
        if self._buffer:
            self._buffer.clear()
            client.resume_reading("buffer")
        self.head_sent = True
        client.write(response)

    def _error(self, status: int, word: str, detail: str) -> None:
        close = self._must_close()
        self.close_after = self.close_after or close
        self._answer(error_response(status, word, detail, close=close))

    def _release_balancer(self, failed: bool) -> None:
        if self._started_on is not None:
            self.client.proxy.balancer.on_done(self._started_on, failed)
            self._started_on = None

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        client = self.client
        proxy = client.proxy
        proxy.active.discard(self)
        if self._started_on is not None:
            # 5xx answers count as failures for passive health, as connect errors do
            self._release_balancer(isinstance(error, (UpstreamError, UpstreamStatusError)))
        entry = self._entry
        if entry is not None:
            traced = error is not None and not isinstance(error, ClientGoneError)
            if traced:
                entry.trace(error)
            entry.exit()
            proxy.metrics.completed(self.resource, time.perf_counter() - self._started, traced)
        client.exchange_done(self)


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown"))
        if len(_STATUS_LINES) < 1000:
            _STATUS_LINES[status] = line
    return line
