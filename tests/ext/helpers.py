"""Real servers for sidecar tests: an upstream app in a thread, the sidecar as a subprocess.

The upstream runs its own event loop in a daemon thread, so tests may use blocking
sockets. The sidecar is started exactly as a user would (``python -m ext.cli sidecar``),
on port 0; the bound ports are read from its log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


class Upstream:
    """An aiohttp app on a free loopback port, in a background thread.

    Paths: ``/echo`` (JSON of method, path, headers, body size and sha256), ``/status/N``,
    ``/slow?s=SEC``, ``/stream?size=N`` (streams N bytes), ``/conn`` (peer port, to see
    connection reuse). Every request is appended to ``seen``.
    """

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("upstream did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record = {
            "method": request.method,
            "path": request.path_qs,
            "headers": [(k, v) for k, v in request.headers.items()],
            "size": size,
            "sha256": digest.hexdigest(),
            "peer_port": peer[1] if peer else None,
        }
        self.seen.append(record)
        path = request.path
        if path.startswith("/status/"):
            return web.json_response(record, status=int(path.rsplit("/", 1)[1]))
        if path == "/slow":
            await asyncio.sleep(float(request.query.get("s", "1")))
        if path == "/stream":
            total = int(request.query.get("size", "0"))
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            block = b"x" * 65536
            sent = 0
            while sent < total:
                part = block[: min(len(block), total - sent)]
                await resp.write(part)
                sent += len(part)
            await resp.write_eof()
            return resp
        return web.json_response(record)

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def write_config(path: Path, upstream_url: str, **sidecar: Any) -> Path:
    """Write a guard.yaml with rule sections from ``sidecar.pop('rules')``."""
    rules = sidecar.pop("rules", {})
    section = {
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "upstreams": [{"url": upstream_url}],
        **sidecar,
    }
    path.write_text(yaml.safe_dump({**rules, "sidecar": section}, sort_keys=False))
    return path


class SidecarProcess:
    """``guard sidecar -c FILE`` as a child process."""

    _ADDR = re.compile(rb"proxy on ([\d.]+):(\d+) admin on ([\d.]+):(\d+)")

    def __init__(self, config: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(ROOT)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ext.cli", "sidecar", "-c", str(config), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )
        self.port = self.admin_port = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = self._ADDR.search(self.log_path.read_bytes())
            if found:
                self.port, self.admin_port = int(found.group(2)), int(found.group(4))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sidecar did not start:\n{self.log()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()):
                return
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} not in sidecar log:\n{self.log()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def request(
    port: int,
    raw: bytes,
    *,
    timeout: float = 10.0,
) -> bytes:
    """Send raw bytes on a new connection, half-close, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


class Response:
    """A parsed HTTP/1.1 response (enough for tests)."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A keep-alive HTTP/1.1 client over one blocking socket (reads exact framing)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by peer")
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_only: bool = False) -> Response:
        while True:
            status_line = self._line()
            status = int(status_line.split()[1])
            headers = []
            while True:
                line = self._line()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers.append((k.strip(), v.strip()))
            if status >= 200:
                break
        resp = Response(status, headers, b"")
        if head_only or status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        if te and "chunked" in te.lower():
            body = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body.append(self._exact(size))
                self._exact(2)
            resp.body = b"".join(body)
        elif resp.header("content-length") is not None:
            resp.body = self._exact(int(resp.header("content-length") or 0))
        else:
            while True:
                try:
                    self._fill()
                except ConnectionError:
                    break
            resp.body, self.buf = self.buf, b""
        return resp

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> Response:
        lines = [f"{method} {path} HTTP/1.1", "Host: test.local"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.read_response(head_only=method == "HEAD")


def one(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Response:
    """One request on a fresh connection."""
    c = Client(port)
    try:
        return c.get(path, headers, method)
    finally:
        c.close()


def metrics(admin_port: int) -> str:
    return one(admin_port, "/metrics").body.decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"{prefix!r} not found in metrics")


def iter_lines(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line and not line.startswith("#"))


class InProcessProxy:
    """The sidecar's data plane (``Proxy``) on its own event loop in a thread.

    For tests that send thousands of requests: no subprocess start-up per case, and the
    proxy's log records are collected in ``errors``.
    """

    def __init__(self, config: Any, guard: Any) -> None:
        import logging

        from ext.admin.metrics import Recorder

        self.errors: list[str] = []
        self.log = logging.getLogger(f"test.proxy.{id(self)}")
        self.log.propagate = False
        handler = logging.Handler(logging.ERROR)
        handler.emit = lambda record: self.errors.append(record.getMessage())  # type: ignore[method-assign]
        self.log.addHandler(handler)
        self.metrics = Recorder()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._config, self._guard = config, guard
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start(self) -> None:
        from ext.sidecar.proxy import Proxy

        self.proxy = Proxy(self._guard, self._config, self.metrics, self.log)
        self.port = (await self.proxy.start())[1]

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.proxy.drain(1.0), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class FastUpstream:
    """A minimal keep-alive HTTP/1.1 app (httptools) in a thread: answers ``ok`` quickly.

    ``/status/N`` answers N. Used where thousands of requests go through the proxy.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("upstream did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._conns: set[_FastProtocol] = set()
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _FastProtocol(self._conns), "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for conn in list(self._conns):
                conn.transport.close()
            self._loop.run_until_complete(asyncio.sleep(0.01))
            self._loop.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class _FastProtocol(asyncio.Protocol):
    def __init__(self, registry: set[_FastProtocol]) -> None:
        self.registry = registry

    def connection_made(self, transport: Any) -> None:
        import httptools

        self.registry.add(self)
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        status = 200
        if self.url.startswith(b"/status/") and self.url[8:11].isdigit():
            status = int(self.url[8:11])
        self.transport.write(b"HTTP/1.1 %d X\r\ncontent-length: 2\r\n\r\nok" % status)
        self.url = b""


class RawUpstream:
    """A socket server that answers every request with fixed raw bytes, then closes.

    For upstream misbehaviour: close-delimited bodies, garbage, truncated responses.
    """

    def __init__(self, reply: bytes, *, keep_alive: bool = False) -> None:
        self.reply = reply
        self.keep_alive = keep_alive  # answer every request on a connection, not just one
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" not in data:
                        break
                    data = data.partition(b"\r\n\r\n")[2]
                    conn.sendall(self.reply)
                    if not self.keep_alive:
                        break

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)
