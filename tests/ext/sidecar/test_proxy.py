"""End-to-end proxying through a ``guard sidecar`` subprocess over real sockets."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator

import pytest

from tests.ext.helpers import Client, SidecarProcess, Upstream, one, request, write_config


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    config = write_config(
        tmp_path_factory.mktemp("proxy") / "guard.yaml",
        upstream.url,
        timeout_ms=500,
        max_header_bytes=4096,
        max_body_bytes=1_000_000,
        routes=[{"prefix": "/orders", "resource": "orders"}],
    )
    proc = SidecarProcess(config)
    yield proc
    assert proc.stop() == 0, proc.log()


def last_seen(upstream: Upstream, path: str) -> dict:
    return [r for r in upstream.seen if r["path"] == path][-1]


def test_get_is_proxied_with_forwarded_headers(proxy: SidecarProcess, upstream: Upstream) -> None:
    resp = one(proxy.port, "/echo?a=1&b=2", {"X-Forwarded-For": "10.0.0.9"})
    assert resp.status == 200
    seen = resp.json()
    assert seen["path"] == "/echo?a=1&b=2"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "test.local"
    assert headers["host"] == "test.local"


def test_hop_by_hop_headers_are_stripped(proxy: SidecarProcess, upstream: Upstream) -> None:
    resp = one(
        proxy.port,
        "/echo/hop",
        {
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "do-not-forward",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "Upgrade": "websocket",
            "X-Kept": "yes",
        },
    )
    assert resp.status == 200
    names = {k.lower() for k, _ in resp.json()["headers"]}
    assert "x-kept" in names
    for hop in ("x-secret", "keep-alive", "proxy-authorization", "te", "upgrade"):
        assert hop not in names
    # the connection header the upstream sees is the proxy's own, if any
    assert all(
        v.lower() in ("keep-alive", "close")
        for k, v in resp.json()["headers"]
        if k.lower() == "connection"
    )


def test_content_length_and_chunked_bodies_arrive_intact(
    proxy: SidecarProcess, upstream: Upstream
) -> None:
    body = os.urandom(300_000)
    c = Client(proxy.port)
    c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["sha256"] == hashlib.sha256(body).hexdigest()
    chunks = [body[i : i + 7000] for i in range(0, len(body), 7000)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in chunks) + b"0\r\n\r\n"
    c.send(b"POST /sink2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["size"] == len(body)
    assert resp.json()["sha256"] == hashlib.sha256(body).hexdigest()
    c.close()


def test_keep_alive_reuses_client_and_upstream_connections(
    proxy: SidecarProcess, upstream: Upstream
) -> None:
    c = Client(proxy.port)
    ports = set()
    for i in range(20):
        resp = c.get(f"/conn?i={i}")
        assert resp.status == 200
        ports.add(resp.json()["peer_port"])
    c.close()
    assert len(ports) == 1  # one pooled upstream connection served all 20


def test_pipelined_requests_answer_in_order(proxy: SidecarProcess) -> None:
    c = Client(proxy.port)
    c.send(b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(5)))
    got = [c.read_response().json()["path"] for _ in range(5)]
    assert got == [f"/echo?n={i}" for i in range(5)]
    c.close()


def test_head_response_has_no_body_and_connection_stays_usable(proxy: SidecarProcess) -> None:
    c = Client(proxy.port)
    resp = c.get("/echo/head", method="HEAD")
    assert resp.status == 200
    assert int(resp.header("content-length") or 0) > 0
    assert c.get("/echo/after").json()["path"] == "/echo/after"
    c.close()


def test_streamed_chunked_response(proxy: SidecarProcess) -> None:
    resp = one(proxy.port, "/stream?size=1000000")
    assert resp.status == 200
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == b"x" * 1_000_000


def test_http10_client_gets_close_delimited_stream(proxy: SidecarProcess) -> None:
    raw = request(proxy.port, b"GET /stream?size=100000 HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"x" * 100000


def test_expect_100_continue(proxy: SidecarProcess) -> None:
    c = Client(proxy.port)
    c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert c._line() == b"HTTP/1.1 100 Continue"  # interim answer before the body is sent
    assert c._line() == b""
    c.send(b"hello")
    resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["size"] == 5
    assert "expect" not in {k.lower() for k, _ in resp.json()["headers"]}
    c.close()


def test_upstream_5xx_is_passed_through(proxy: SidecarProcess) -> None:
    resp = one(proxy.port, "/status/503")
    assert resp.status == 503
    assert resp.json()["path"] == "/status/503"  # the app's body, not a block answer


def test_upstream_timeout_is_504(proxy: SidecarProcess) -> None:
    resp = one(proxy.port, "/slow?s=2")
    assert resp.status == 504
    assert resp.json()["error"] == "upstream_timeout"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: bogus\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 501),
    ],
    ids=[
        "garbage",
        "cl+te",
        "unknown-te",
        "big-header",
        "big-url",
        "big-body",
        "no-host",
        "dup-cl",
        "connect",
    ],
)
def test_bad_requests_get_their_status_and_others_are_unharmed(
    proxy: SidecarProcess, raw: bytes, status: int
) -> None:
    bystander = Client(proxy.port)
    assert bystander.get("/echo/before").status == 200
    reply = request(proxy.port, raw)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"connection: close" in reply.lower()
    assert bystander.get("/echo/after").status == 200
    bystander.close()


def test_chunked_body_over_limit_is_413(proxy: SidecarProcess) -> None:
    chunk = b"a" * 100_000
    wire = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(15))
    c = Client(proxy.port)
    try:
        c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    except OSError:
        pass  # the proxy may close before reading everything
    resp = c.read_response()
    assert resp.status == 413
    c.close()


def test_unreachable_upstream_is_502(start_sidecar, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connection refused
        sc = start_sidecar(f"http://127.0.0.1:{dead}")
        resp = one(sc.port, "/x")
    assert resp.status == 502
    assert resp.json()["error"] == "upstream_unavailable"
    metrics = one(sc.admin_port, "/metrics").body.decode()
    assert 'guard_exception_total{resource="sidecar.default"} 1' in metrics


def test_standard_asyncio_loop_works_too(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, "--loop", "asyncio")
    c = Client(sc.port)
    assert c.get("/echo/a").json()["path"] == "/echo/a"
    body = os.urandom(100_000)
    wire = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    assert c.read_response().json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert one(sc.port, "/stream?size=300000").body == b"x" * 300_000
    c.close()
