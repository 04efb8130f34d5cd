"""The live (terminal) modes of guard top and guard demo, driven through a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from tests.ext.helpers import ROOT, Upstream, one


def spawn(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ext.cli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "140", "LINES": "40"},
        cwd=ROOT,
        close_fds=True,
    )
    os.close(follower)
    return proc, leader


def read_until(fd: int, proc: subprocess.Popen[bytes], needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and needle not in seen:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
        elif proc.poll() is not None:
            break
    return seen


def test_top_live_quits_on_q(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, routes=[{"prefix": "/", "resource": "all.traffic"}])
    one(sc.port, "/x")
    proc, fd = spawn("top", "--admin", sc.admin_url)
    try:
        screen = read_until(fd, proc, b"all.traffic", 20)
        assert b"all.traffic" in screen, screen[-2000:]
        os.write(fd, b"s")  # sort by name: the header says so
        assert b"sort: name" in read_until(fd, proc, b"sort: name", 10)
        os.write(fd, b"q")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)


def test_demo_live_layout_on_a_terminal() -> None:
    proc, fd = spawn("demo", "--seconds", "3")
    try:
        screen = read_until(fd, proc, b"upstream instances", 40)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)
    for text in (b"resources (per second)", b"load balancer", b"events", b"/dashboard", b"totals"):
        assert text in screen, (text, screen[-3000:])
