"""Admin API of a sidecar subprocess: health, metrics, stats, rules and their auth."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.ext.helpers import Client, Response, Upstream, metric_value, one

TOKEN = "s3cret-token"


def put(port: int, body: object, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body).encode()
    lines = ["PUT /api/rules HTTP/1.1", "Host: admin", f"Content-Length: {len(data)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    c = Client(port)
    try:
        c.send(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        return c.read_response()
    finally:
        c.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_ready_metrics_and_stats(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, routes=[{"prefix": "/orders", "resource": "orders"}])
    assert one(sc.admin_port, "/healthz").status == 200
    ready = one(sc.admin_port, "/readyz")
    assert ready.status == 200 and ready.json()["status"] == "ready"
    for _ in range(3):
        assert one(sc.port, "/orders/1").status == 200
    assert one(sc.port, "/status/500").status == 500
    resp = one(sc.admin_port, "/metrics")
    assert resp.header(
        "content-type",
    ).startswith("text/plain")  # type: ignore[union-attr]
    text = resp.body.decode()
    assert metric_value(text, "guard_pass_total", resource="orders") == 3
    assert metric_value(text, "guard_success_total", resource="orders") == 3
    assert metric_value(text, "guard_exception_total", resource="orders") == 0
    assert metric_value(text, "guard_exception_total", resource="sidecar.default") == 1
    assert metric_value(text, "guard_block_total", resource="orders", reason="flow") == 0
    assert metric_value(text, "guard_rt_seconds_count", resource="orders") == 3
    assert metric_value(text, "guard_rt_seconds_bucket", resource="orders", le="+Inf") == 3
    assert metric_value(text, "guard_concurrency", resource="orders") == 0
    assert metric_value(text, "guard_breaker_state", resource="orders") == 0
    assert metric_value(text, "guard_rules_reload_total", result="success") == 0
    assert metric_value(text, "guard_rules_reload_total", result="failure") == 0
    assert metric_value(text, "guard_config_generation") == 1
    assert "# TYPE guard_rt_seconds histogram" in text
    stats = one(sc.admin_port, "/api/stats").json()
    assert stats["orders"]["lifetime"]["pass"] == 3
    assert stats["orders"]["breaker_state"] == "closed"
    assert "pass_qps" in stats["orders"]


def test_put_rules_auth(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    no_token = start_sidecar(upstream.url, env={"GUARD_ADMIN_TOKEN": ""})
    assert put(no_token.admin_port, {"flow": []}, auth()).status == 403
    sc = start_sidecar(upstream.url, env={"GUARD_ADMIN_TOKEN": TOKEN})
    resp = put(sc.admin_port, {"flow": []})
    assert resp.status == 401
    assert resp.header(
        "www-authenticate",
    ).startswith("Bearer")  # type: ignore[union-attr]
    assert put(sc.admin_port, {"flow": []}, auth("wrong")).status == 401
    assert put(sc.admin_port, {"flow": []}, {"Authorization": TOKEN}).status == 401
    assert put(sc.admin_port, {"flow": []}, auth()).status == 200


def test_put_rules_swaps_and_writes_back(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(
        upstream.url,
        env={"GUARD_ADMIN_TOKEN": TOKEN},
        routes=[{"prefix": "/orders", "resource": "orders"}],
        timeout_ms=1234,
    )
    assert one(sc.port, "/orders").status == 200
    got = one(sc.admin_port, "/api/rules")
    etag = got.header("etag")
    assert etag
    new_rules = {"flow": [{"resource": "orders", "count": 0}]}
    resp = put(sc.admin_port, new_rules, {**auth(), "If-Match": etag})
    assert resp.status == 200, resp.body
    assert resp.header("etag") != etag
    assert one(sc.port, "/orders").status == 429
    saved = yaml.safe_load(Path(sc.config).read_text())
    assert saved["flow"][0]["resource"] == "orders"
    assert saved["flow"][0]["count"] == 0
    assert saved["sidecar"]["timeout_ms"] == 1234  # the sidecar section is kept
    assert saved["sidecar"]["routes"] == [{"prefix": "/orders", "resource": "orders"}]
    assert one(sc.admin_port, "/api/rules").json()["flow"][0]["resource"] == "orders"
    # a stale ETag is refused, nothing changes
    stale = put(sc.admin_port, {"flow": []}, {**auth(), "If-Match": etag})
    assert stale.status == 412
    assert one(sc.port, "/orders").status == 429
    text = one(sc.admin_port, "/metrics").body.decode()
    assert metric_value(text, "guard_config_generation") == 2
    assert metric_value(text, "guard_rules_reload_total", result="success") == 1


def test_put_invalid_rules_is_400_with_locations(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url, env={"GUARD_ADMIN_TOKEN": TOKEN})
    before = Path(sc.config).read_text()
    resp = put(sc.admin_port, {"flow": [{"resource": "a", "count": -1}]}, auth())
    assert resp.status == 400
    assert resp.json()["error"] == "invalid_rules"
    assert any(e.startswith("flow[0].count") for e in resp.json()["errors"])
    assert put(sc.admin_port, {"sidecar": {}}, auth()).status == 400
    bad_json = Client(sc.admin_port)
    bad_json.send(
        b"PUT /api/rules HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
        b"Content-Length: 3\r\n\r\n{x]" % TOKEN.encode()
    )
    assert bad_json.read_response().status == 400
    bad_json.close()
    assert Path(sc.config).read_text() == before


def test_put_detects_concurrent_file_edit(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    # polling every 30 s: the sidecar has not seen the edit when the PUT arrives
    sc = start_sidecar(upstream.url, "--poll", "30", env={"GUARD_ADMIN_TOKEN": TOKEN})
    path = Path(sc.config)
    edited = path.read_text().replace("flow", "flow") + "\n# edited by hand\n"
    path.write_text(edited)
    resp = put(sc.admin_port, {"flow": [{"resource": "x", "count": 1}]}, auth())
    assert resp.status == 409
    assert path.read_text() == edited  # the hand edit survives


def test_put_rules_keeps_a_json_config_json(tmp_path: Path, upstream: Upstream) -> None:
    from tests.ext.helpers import SidecarProcess

    config = tmp_path / "guard.json"
    config.write_text(
        json.dumps(
            {
                "flow": [{"resource": "a", "count": 5}],
                "sidecar": {
                    "listen": "127.0.0.1:0",
                    "admin": "127.0.0.1:0",
                    "upstreams": [{"url": upstream.url}],
                },
            }
        )
    )
    sc = SidecarProcess(config, env={"GUARD_ADMIN_TOKEN": TOKEN})
    try:
        resp = put(
            sc.admin_port, {"flow": [{"resource": "b", "count": 7}]}, {**auth(), "If-Match": "*"}
        )
        assert resp.status == 200, resp.body
        saved = json.loads(config.read_text())
        assert [r["resource"] for r in saved["flow"]] == ["b"]
        assert saved["sidecar"]["upstreams"] == [{"url": upstream.url}]
    finally:
        assert sc.stop() == 0
