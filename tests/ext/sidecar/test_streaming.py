"""Bodies stream through with bounded memory; slow clients do not stall others."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.ext.helpers import Client, Upstream, one

SIZE = 50 * 1024 * 1024


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def upload(port: int, results: list[object]) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256()
    c = Client(port, timeout=60)
    c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % SIZE)
    for _ in range(SIZE // len(block)):
        c.sock.sendall(block)
        digest.update(block)
    resp = c.read_response()
    c.close()
    results.append((resp.json()["size"], resp.json()["sha256"] == digest.hexdigest()))


def download(port: int, results: list[object]) -> None:
    c = Client(port, timeout=60)
    c.send(b"GET /stream?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % SIZE)
    resp = c.read_response()
    c.close()
    results.append((len(resp.body), resp.body.count(b"x") == SIZE))


@pytest.mark.slow
def test_50mb_each_way_with_bounded_memory(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url)
    assert one(sc.port, "/echo").status == 200
    baseline = peak_rss_mb(sc.proc.pid)
    results: list[object] = []
    threads = [
        threading.Thread(target=upload, args=(sc.port, results)),
        threading.Thread(target=upload, args=(sc.port, results)),
        threading.Thread(target=download, args=(sc.port, results)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(results, key=str) == sorted([(SIZE, True), (SIZE, True), (SIZE, True)], key=str)
    grown = peak_rss_mb(sc.proc.pid) - baseline
    assert grown < 30, f"proxy peak RSS grew by {grown:.1f} MB while streaming 150 MB"


def test_slowloris_clients_do_not_stall_others(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, client_header_timeout_ms=1500)
    slow = []
    for _ in range(150):
        s = socket.create_connection(("127.0.0.1", sc.port))
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n")
        slow.append(s)
    stop = threading.Event()

    def drip() -> None:
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    pass
            time.sleep(0.1)

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        for _ in range(20):
            started = time.monotonic()
            assert one(sc.port, "/echo").status == 200
            assert time.monotonic() - started < 0.5
        # the header deadline holds even though bytes keep trickling in
        time.sleep(1.6)
        stop.set()
        dripper.join()
        answered = 0
        for s in slow:
            s.settimeout(3)
            data = b""
            try:
                while chunk := s.recv(4096):
                    data += chunk
            except OSError:
                pass
            answered += data.startswith(b"HTTP/1.1 408 ")
            s.close()
        assert answered == len(slow)
    finally:
        stop.set()
        for s in slow:
            s.close()
