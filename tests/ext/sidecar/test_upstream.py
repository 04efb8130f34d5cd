"""Upstream misbehaviour and upstream changes, through a sidecar subprocess."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.ext.helpers import Client, FastUpstream, RawUpstream, Upstream, metric_value, one


def test_upstream_answers_over_raw_sockets(start_sidecar) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "eof": RawUpstream(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nhello world"),
        "garbage": RawUpstream(b"NOT HTTP AT ALL\r\n\r\n"),
        "truncated": RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"),
        "hop": RawUpstream(
            b"HTTP/1.1 200 OK\r\nConnection: X-Up\r\nX-Up: 1\r\nKeep-Alive: timeout=5\r\n"
            b"X-Kept: 1\r\nContent-Length: 2\r\n\r\nok"
        ),
        "silent": RawUpstream(b""),
    }
    try:
        eof = start_sidecar(cases["eof"].url)
        resp = one(eof.port, "/")
        assert resp.status == 200
        assert resp.header("transfer-encoding") == "chunked"  # re-framed for the client
        assert resp.body == b"hello world"

        garbage = start_sidecar(cases["garbage"].url)
        resp = one(garbage.port, "/")
        assert resp.status == 502
        text = one(garbage.admin_port, "/metrics").body.decode()
        assert metric_value(text, "guard_exception_total", resource="sidecar.default") == 1

        truncated = start_sidecar(cases["truncated"].url)
        c = Client(truncated.port)
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            resp = c.read_response()
            raise AssertionError(f"a truncated body must not look complete: {resp.body!r}")
        except ConnectionError:
            pass
        c.close()

        hop = start_sidecar(cases["hop"].url)
        resp = one(hop.port, "/")
        names = {k.lower() for k, _ in resp.headers}
        assert resp.body == b"ok"
        assert "x-kept" in names
        assert not names & {"x-up", "keep-alive"}

        silent = start_sidecar(cases["silent"].url)
        assert one(silent.port, "/").status == 502  # closed without a word
    finally:
        for raw in cases.values():
            raw.close()


def test_upstreams_hot_reload(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    fast = FastUpstream()
    try:
        sc = start_sidecar(upstream.url)
        assert one(sc.port, "/echo").json()["path"] == "/echo"
        time.sleep(1.2)  # past the start-up re-checks
        path = Path(sc.config)
        data = yaml.safe_load(path.read_text())
        data["sidecar"]["upstreams"] = [{"url": fast.url}]
        path.write_text(yaml.safe_dump(data))
        deadline = time.monotonic() + 10
        while one(sc.port, "/echo").body != b"ok":
            assert time.monotonic() < deadline, sc.log()
            time.sleep(0.05)
    finally:
        fast.close()


def test_interim_1xx_then_final_response(start_sidecar) -> None:  # type: ignore[no-untyped-def]
    raw = RawUpstream(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nX-Final:  yes \r\nContent-Length: 4\r\n\r\ndone"
    )
    try:
        sc = start_sidecar(raw.url)
        resp = one(sc.port, "/")
        assert resp.status == 201
        assert resp.header("x-final") == "yes"
        assert resp.header("link") is None  # interim answers are not forwarded
        assert resp.body == b"done"
    finally:
        raw.close()


def test_bytes_after_a_response_do_not_leak_into_the_next(start_sidecar) -> None:  # type: ignore[no-untyped-def]
    # An app that sends junk after a complete response, on a keep-alive connection.
    raw = RawUpstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nX-Junk: 1\r\n",
        keep_alive=True,
    )
    try:
        sc = start_sidecar(raw.url)
        statuses = []
        for _ in range(4):
            resp = one(sc.port, "/")
            statuses.append(resp.status)
            assert resp.header("x-junk") is None
        assert statuses[0] == 200
        assert set(statuses) <= {200, 502}
    finally:
        raw.close()
