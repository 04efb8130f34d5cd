"""SIGTERM drain: in-flight requests finish, new connections are refused, exit 0."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from tests.ext.helpers import Client, Response, Upstream, one


def test_sigterm_finishes_in_flight_then_exits_0(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, drain_sec=5)
    idle = Client(sc.port)
    assert idle.get("/echo").status == 200  # an idle keep-alive connection
    results: list[Response] = []
    slow = threading.Thread(target=lambda: results.append(one(sc.port, "/slow?s=1")))
    slow.start()
    time.sleep(0.3)
    started = time.monotonic()
    sc.signal(signal.SIGTERM)
    slow.join(10)
    assert results and results[0].status == 200
    assert results[0].header("connection") == "close"
    with pytest.raises(ConnectionError):
        idle.get("/echo")  # idle connections are closed at once
    idle.close()
    assert sc.proc.wait(10) == 0
    assert time.monotonic() - started < 4
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sc.port), timeout=1).close()
    assert "draining" in sc.log()


def test_drain_deadline_cuts_stragglers(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, drain_sec=0.5, timeout_ms=30000)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(one(sc.port, "/slow?s=2").status)
        except (ConnectionError, OSError) as exc:
            results.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    started = time.monotonic()
    sc.signal(signal.SIGTERM)
    assert sc.proc.wait(10) == 0
    assert time.monotonic() - started < 3
    t.join(10)
    assert results and not isinstance(results[0], int)  # cut, not answered
    assert "drain deadline reached" in sc.log()


def test_bad_config_exits_1_with_located_errors(tmp_path, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.ext.helpers import ROOT, write_config

    config = write_config(tmp_path / "bad.yaml", upstream.url, timeout_ms=-1)
    proc = subprocess.run(
        [sys.executable, "-m", "ext.cli", "sidecar", "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 1
    assert f"{config}: sidecar.timeout_ms: must be >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr
