"""One proxied request: guard entry, upstream pick, streaming both ways, outcome.

``Exchange.run`` is the only coroutine; everything after the upstream connection is
chosen is driven by protocol callbacks, which write straight to the other side's
transport (bodies are never buffered beyond the transports' own flow-control limits).
The coroutine waits on one future that the callbacks resolve with the outcome.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ext.sidecar.responses import HOP_BY_HOP, blocked_response, error_response
from ext.sidecar.upstream import UpstreamConnection, UpstreamError
from guard import BlockError

if TYPE_CHECKING:
    from ext.sidecar.protocol import ClientConnection

__all__ = ["Exchange", "UpstreamStatusError", "UpstreamTimeoutError"]

_BUFFER_LIMIT = 256 * 1024  # request body held while the upstream connection is opened
_NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DONE, _RETRY, _CLIENT_GONE = "done", "retry", "client_gone"


class UpstreamStatusError(Exception):
    """The upstream answered 5xx (traced for degrade rules)."""


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    """The upstream did not answer within ``timeout_ms``."""


class Exchange:
    """State of one request from headers-complete to the last response byte."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_conn",
        "_fut",
        "_last_io",
        "_out_chunked",
        "_resp_eof",
        "_sent_body",
        "_status",
        "_timeout",
        "_timer",
        "body_done",
        "client",
        "close_after",
        "content_length",
        "discard",
        "expect",
        "framing",
        "head_sent",
        "headers",
        "host",
        "keep_alive",
        "method",
        "target",
        "te_codings",
        "version",
    )

    def __init__(
        self,
        client: ClientConnection,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes, bytes]],
        version: str,
        keep_alive: bool,
        framing: str,
        content_length: int,
        host: bytes | None,
        te_codings: bytes,
    ) -> None:
        self.client = client
        self.method = method
        self.target = target
        self.headers = headers  # (name, value, lower-case name)
        self.version = version
        self.keep_alive = keep_alive
        self.framing = framing  # "none" | "length" | "chunked" (request body)
        self.content_length = content_length
        self.host = host
        self.te_codings = te_codings  # codings before "chunked", e.g. b"gzip, "
        self.body_done = framing == "none"
        self.discard = False
        self.expect = False
        self.head_sent = False
        self.close_after = False
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._conn: UpstreamConnection | None = None
        self._fut: asyncio.Future[str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._last_io = 0.0
        self._out_chunked = False
        self._resp_eof = False
        self._sent_body = False
        self._status = 0

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
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > _BUFFER_LIMIT:
            self.client.pause_reading("buffer")

    def request_end(self) -> None:
        self.body_done = True
        conn = self._conn
        if conn is not None and self.framing == "chunked" and not self.discard:
            conn.write(b"0\r\n\r\n")

    # -- the coroutine -----------------------------------------------------------------
    async def run(self) -> None:
        """Enter the guard, forward, record; always ends with ``client.exchange_done``."""
        client = self.client
        proxy = client.proxy
        path, _, query = self.target.partition(b"?")
        match = proxy.router.match(self.method.decode("latin-1"), path.decode("latin-1"))
        resource = match.resource
        args: tuple[Any, ...] = ()
        if match.params:
            args = self._args(match.params, query)
        origin = ""
        if proxy.origin_header is not None:
            origin = self.header(proxy.origin_header) or ""
        metrics = proxy.metrics
        try:
            entry = await proxy.guard.aenter(resource, origin=origin, args=args, inbound=True)
        except BlockError as err:
            metrics.blocked(resource, err.reason)
            # A client that waits for "100 Continue" may or may not send its body now.
            close = self._must_close() or (self.expect and not self.body_done)
            self.close_after = close
            self._answer(blocked_response(err.reason, resource, err.retry_after, close=close))
            client.exchange_done(self)
            return
        metrics.passed(resource)
        if self.expect and not self.body_done:
            client.write(_CONTINUE)  # the upstream never sees Expect: we said "go on"
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            error = await self._forward()
        except asyncio.CancelledError:
            error = UpstreamError("proxy shut down during the request")
            raise
        except Exception as exc:  # a bug in the proxy: answer 502, keep serving others
            proxy.log.exception("proxy failure on %s", resource)
            error = exc
            if not self.head_sent:
                self.close_after = True
                self._answer(error_response(502, "proxy_error", close=True))
            else:
                client.abort()
        finally:
            if error is not None:
                entry.trace(error)
            entry.exit()
            metrics.completed(resource, time.perf_counter() - started, error is not None)
            client.exchange_done(self)

    def _args(self, params: tuple[Any, ...], query: bytes) -> tuple[Any, ...]:
        values: list[Any] = []
        parsed: dict[str, str] | None = None
        for p in params:
            if p.kind == "header":
                values.append(self.header(p.name))
            elif p.kind == "query":
                if parsed is None:
                    parsed = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
                values.append(parsed.get(p.name))
            else:
                values.append(self.client.peer_ip)
        return tuple(values)

    def header(self, lname: str) -> str | None:
        """First value of a header, by lower-case name."""
        key = lname.encode("latin-1")
        for _, value, name in self.headers:
            if name == key:
                return value.decode("latin-1")
        return None

    def _must_close(self) -> bool:
        return not self.keep_alive or self.client.closing

    def _answer(self, response: bytes) -> None:
        """Write a proxy-made response; the request body, if any, is read and dropped."""
        self.discard = True
        self._buffer.clear()
        self.client.resume_reading("buffer")
        self.head_sent = True
        self.client.write(response)

    def _error(self, status: int, word: str, detail: str) -> None:
        close = self._must_close()
        self.close_after = self.close_after or close
        self._answer(error_response(status, word, detail, close=close))

    async def _forward(self) -> BaseException | None:
        proxy = self.client.proxy
        loop = self.client.loop
        for attempt in (0, 1):
            upstream = proxy.balancer.pick()
            try:
                conn = await proxy.pool.acquire(upstream)
            except TimeoutError:
                proxy.balancer.on_done(upstream, True)
                self._error(504, "upstream_timeout", "connect timed out")
                return UpstreamTimeoutError(f"connect to {upstream.url} timed out")
            except UpstreamError as exc:
                proxy.balancer.on_done(upstream, True)
                self._error(502, "upstream_unavailable", str(exc))
                return exc
            if self.client.closed:
                proxy.pool.release(conn)
                return None
            proxy.balancer.on_start(upstream)
            self._fut = fut = loop.create_future()
            self._attach(conn)
            now = loop.time()
            self._last_io = now
            self._timeout = proxy.timeout
            self._timer = loop.call_at(now + proxy.timeout, self._on_timer)
            try:
                outcome = await fut
            finally:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            proxy.balancer.on_done(upstream, isinstance(outcome, BaseException))
            if outcome == _RETRY and attempt == 0:
                continue
            if isinstance(outcome, BaseException):
                return outcome
            if self._status >= 500:
                return UpstreamStatusError(f"upstream answered {self._status}")
            return None
        return None

    def _attach(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        conn.exchange = self
        conn.head_only = self.method == b"HEAD"
        conn.transport.write(self._request_head(conn))  # type: ignore[union-attr]
        if self._buffer:
            self._sent_body = True
            if self.framing == "chunked":
                data = b"".join(self._buffer)
                conn.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))  # type: ignore[union-attr]
            else:
                conn.transport.writelines(self._buffer)  # type: ignore[union-attr]
            self._buffer.clear()
            self._buffered = 0
            self.client.resume_reading("buffer")
        if self.body_done and self.framing == "chunked":
            conn.write(b"0\r\n\r\n")

    def _request_head(self, conn: UpstreamConnection) -> bytes:
        client = self.client
        parts = [self.method, b" ", self.target, b" HTTP/1.1\r\n"]
        drop = HOP_BY_HOP
        conn_tokens = client.conn_tokens
        if conn_tokens:
            drop = drop | conn_tokens
        xff = proto = xhost = None
        for name, value, lname in self.headers:
            if lname in drop:
                continue
            if lname == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
                continue
            if lname == b"x-forwarded-proto":
                proto = value
            elif lname == b"x-forwarded-host":
                xhost = value
            elif lname == b"expect":
                continue  # 100-continue was answered by the proxy itself
            parts += (name, b": ", value, b"\r\n")
        ip = client.peer_ip_bytes
        parts += (b"x-forwarded-for: ", ip if xff is None else xff + b", " + ip, b"\r\n")
        if proto is None:
            parts.append(b"x-forwarded-proto: http\r\n")
        if xhost is None and self.host is not None:
            parts += (b"x-forwarded-host: ", self.host, b"\r\n")
        if self.host is None:
            up = conn.upstream
            parts.append(b"host: %s:%d\r\n" % (up.host.encode(), up.port))
        if self.framing == "chunked":
            parts += (b"transfer-encoding: ", self.te_codings, b"chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -- upstream events ----------------------------------------------------------------
    def response_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], up_keep: bool
    ) -> None:
        self._status = status
        self._last_io = self.client.loop.time()
        conn_tokens: frozenset[bytes] = frozenset()
        length = None
        chunked = False
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason or b"-")]
        lowered = [(n, v, n.lower()) for n, v in headers]
        for _, value, lname in lowered:
            if lname == b"connection":
                conn_tokens = conn_tokens | {t.strip().lower() for t in value.split(b",")}
        for name, value, lname in lowered:
            if lname == b"content-length":
                length = value
            elif lname == b"transfer-encoding":
                chunked = True
            if lname in HOP_BY_HOP or lname in conn_tokens:
                continue
            out += (name, b": ", value, b"\r\n")
        no_body = self.method == b"HEAD" or status in _NO_BODY_STATUS or status < 200
        if not no_body and length is None:
            # chunked or read-until-close upstream body: re-frame for the client
            self._resp_eof = not chunked
            if self.version == "1.1":
                self._out_chunked = True
                out.append(b"transfer-encoding: chunked\r\n")
            else:
                self.close_after = True
        if self._must_close() or self.close_after or not self.body_done:
            self.close_after = True
            out.append(b"connection: close\r\n")
        elif self.version == "1.0":
            out.append(b"connection: keep-alive\r\n")
        out.append(b"\r\n")
        self.head_sent = True
        self.client.write(b"".join(out))

    def response_body(self, data: bytes) -> None:
        self._last_io = self.client.loop.time()
        if self._out_chunked:
            self.client.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.client.write(data)

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
        self._resolve(_DONE)

    def upstream_lost(self, conn: UpstreamConnection, exc: BaseException | None) -> None:
        self._conn = None
        if self.head_sent and self._resp_eof:
            self.response_end(conn, reusable=False)  # body delimited by the close
            return
        if not self.head_sent and conn.reused and not self._sent_body and self.framing == "none":
            self._resolve(_RETRY)  # a pooled connection the app closed meanwhile
            return
        self.upstream_failed(UpstreamError(f"{conn.upstream.url} closed the connection"))

    def upstream_failed(self, error: Exception) -> None:
        self.discard = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.head_sent:
            self.client.abort()  # a truncated response must not look complete
        else:
            if isinstance(error, TimeoutError):
                self._error(504, "upstream_timeout", str(error))
            else:
                self._error(502, "bad_gateway", str(error))
        self._resolve(error)

    def client_lost(self) -> None:
        if self._conn is not None:
            self._conn.exchange = None
            self._conn.abort()
            self._conn = None
        self._resolve(_CLIENT_GONE)

    def client_write_paused(self, paused: bool) -> None:
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.closed:
            if paused:
                conn.transport.pause_reading()
            else:
                conn.transport.resume_reading()

    def _on_timer(self) -> None:
        self._timer = None
        loop = self.client.loop
        due = self._last_io + self._timeout
        if loop.time() < due:
            self._timer = loop.call_at(due, self._on_timer)
            return
        if self.client.write_paused:  # the client is slow, not the upstream
            self._timer = loop.call_at(loop.time() + self._timeout, self._on_timer)
            return
        conn = self._conn
        if conn is not None:
            conn.exchange = None
            conn.abort()
        self.upstream_failed(UpstreamTimeoutError(f"no answer within {self._timeout:g}s"))

    def _resolve(self, outcome: Any) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(outcome)
