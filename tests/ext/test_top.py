"""guard top: frames rendered from a real sidecar's admin API, keys, unreachable admin."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from ext.top import TopState, render_text, sparkline
from tests.ext.helpers import ROOT, Upstream, one


def guard_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ext.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def test_once_renders_resources_from_a_running_sidecar(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(
        upstream.url,
        routes=[{"prefix": "/orders", "resource": "orders.create"}],
        rules={"flow": [{"resource": "orders.create", "count": 3}]},
    )
    codes = [one(sc.port, "/orders/1").status for _ in range(8)]
    assert codes.count(429) == 5
    state = TopState(sc.admin_url)
    state.poll()  # at once: the 1 s window still holds those 8 requests
    cells = next(
        [c.strip() for c in line.split("│") if c.strip()]
        for line in render_text(state).splitlines()
        if "orders.create" in line
    )
    assert cells[:3] == ["orders.create", "3", "5"] and cells[7] == "closed"
    done = guard_cli("top", "--admin", sc.admin_url, "--once")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "orders.create" in x)
    assert "closed" in line and "pass/s" in done.stdout
    # a second poll in process: filter hides what does not match
    state = TopState(sc.admin_url, filter_text="nothing-like-this")
    state.poll()
    assert state.error is None and "orders.create" not in render_text(state)


def test_unreachable_admin_is_a_clear_message_and_exit_1() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = guard_cli("top", "--admin", f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"cannot reach http://127.0.0.1:{port}/api/stats" in done.stderr
    assert "Traceback" not in done.stderr and "--admin" in done.stderr


def test_keys_sort_filter_and_quit() -> None:
    state = TopState("http://x")
    state.stats = {
        "a.quiet": {"pass_qps": 1, "block_qps": 0, "avg_rt_ms": 90},
        "b.busy": {"pass_qps": 50, "block_qps": 10, "avg_rt_ms": 1},
        "c.mid": {"pass_qps": 20, "block_qps": 0, "avg_rt_ms": 5, "breaker_state": "open"},
    }
    assert [n for n, _ in state.rows()] == ["b.busy", "c.mid", "a.quiet"]
    state.key("s")  # -> name
    assert [n for n, _ in state.rows()] == ["a.quiet", "b.busy", "c.mid"]
    state.key("r")
    assert [n for n, _ in state.rows()] == ["c.mid", "b.busy", "a.quiet"]
    state.key("r")
    for ch in "ss":  # -> block -> rt
        state.key(ch)
    assert state.sort == "rt" and state.rows()[0][0] == "a.quiet"
    for ch in "/mi":
        state.key(ch)
    assert state.editing and [n for n, _ in state.rows()] == ["c.mid"]
    state.key("q")  # typed into the filter, not a quit
    assert state.filter == "miq"
    state.key("\x7f")
    state.key("\r")
    assert not state.editing and "filter: mi" in render_text(state)
    assert "open" in render_text(state)
    assert state.key("q") is False


def test_sparkline_scales_to_its_maximum() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([0, 5, 10]) == "▁▄█"
    assert len(sparkline(range(100))) == 60
