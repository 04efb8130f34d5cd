"""A sidecar with ``rules_redis`` follows rules pushed over Redis (SPEC section 5)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.ext.helpers import Upstream, metric_value, one
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[3]


def push(redis_server: RedisServer, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ext.cli", "rules", "push", str(path), "--redis", redis_server.url],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )  # fmt: skip


def wait_status(port: int, path: str, status: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if one(port, path).status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never answered {status}")


def test_pushed_rules_apply_and_a_bad_push_changes_nothing(  # type: ignore[no-untyped-def]
    start_sidecar, upstream: Upstream, redis_server: RedisServer, redis_client, tmp_path: Path
) -> None:
    sc = start_sidecar(
        upstream.url,
        routes=[{"prefix": "/orders", "resource": "orders"}],
        rules_redis={"url": redis_server.url, "key": "guard:rules"},
    )
    assert one(sc.port, "/orders/1").status == 200

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"flow": [{"resource": "orders", "count": 0}]}))
    done = push(redis_server, rules)
    assert done.returncode == 0, done.stderr
    wait_status(sc.port, "/orders/1", 429)
    served = one(sc.admin_port, "/api/rules").json()
    assert served["flow"][0]["resource"] == "orders" and served["flow"][0]["count"] == 0

    # A malformed document published straight to the channel keeps the last good rules.
    redis_client.set("guard:rules", b"flow: [{resource: orders, count: -1}]")
    redis_client.publish("guard:rules", b"flow: [{resource: orders, count: -1}]")
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:
        text = one(sc.admin_port, "/metrics").body.decode()
        if metric_value(text, "guard_rules_reload_total", result="failure") >= 1:
            break
        time.sleep(0.05)
    assert metric_value(text, "guard_rules_reload_total", result="failure") >= 1
    assert one(sc.port, "/orders/1").status == 429


def test_metrics_show_cluster_rules_and_their_fallback(  # type: ignore[no-untyped-def]
    start_sidecar, upstream: Upstream, redis_server: RedisServer
) -> None:
    cluster = {"mode": "redis", "url": redis_server.url, "timeout_ms": 200}
    sc = start_sidecar(
        upstream.url,
        routes=[{"prefix": "/orders", "resource": "orders"}],
        rules={"flow": [{"resource": "orders", "count": 1000, "cluster": cluster}]},
    )
    assert one(sc.port, "/orders/1").status == 200
    text = one(sc.admin_port, "/metrics").body.decode()
    rule_lines = [line for line in text.splitlines() if line.startswith("guard_cluster_fallback{")]
    assert len(rule_lines) == 1 and 'resource="orders"' in rule_lines[0]
    assert rule_lines[0].endswith(" 0")  # Redis answers: enforced cluster-wide
    redis_server.pause()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            one(sc.port, "/orders/1")
            text = one(sc.admin_port, "/metrics").body.decode()
            lines = [ln for ln in text.splitlines() if ln.startswith("guard_cluster_fallback{")]
            if lines[0].endswith(" 1"):
                break
            time.sleep(0.1)
        assert lines[0].endswith(" 1"), text
    finally:
        redis_server.resume()
