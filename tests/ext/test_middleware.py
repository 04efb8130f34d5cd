"""ext.asgi and ext.wsgi GuardMiddleware under real servers (uvicorn, wsgiref) over loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import uvicorn
import yaml

from ext import asgi, wsgi
from guard import RuleError

CONFIG: dict[str, Any] = {
    "flow": [{"resource": "orders.create", "count": 2}],
    "degrade": [
        {
            "resource": "payments",
            "strategy": "error_count",
            "threshold": 1,
            "min_requests": 1,
            "recovery_sec": 30,
        }
    ],
    "authority": [{"resource": "admin.api", "strategy": "white", "origins": ["ops"]}],
    "param_flow": [{"resource": "items.get", "param_index": 0, "count": 1}],
    "sidecar": {
        "listen": "127.0.0.1:1",  # ignored in process
        "upstreams": [{"url": "http://127.0.0.1:2"}],  # ignored in process
        "origin_header": "X-Guard-Origin",
        "default_resource": "app.other",
        "routes": [
            {"prefix": "/orders", "methods": ["POST"], "resource": "orders.create"},
            {"prefix": "/pay", "resource": "payments"},
            {"prefix": "/admin", "resource": "admin.api"},
            {"prefix": "/items", "resource": "items.get", "params": ["header:X-User"]},
        ],
    },
}


def get(port: int, path: str, method: str = "GET", **headers: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# -- the apps under protection ---------------------------------------------------------
async def asgi_app(scope: dict, receive: Callable, send: Callable) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.endswith("/boom"):
        raise RuntimeError("boom")
    status = 500 if path.endswith("/fail") else 200
    body = json.dumps({"path": path}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict, start_response: Callable) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path.endswith("/boom"):
        raise RuntimeError("boom")
    status = "500 Internal Server Error" if path.endswith("/fail") else "200 OK"
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps({"path": path}).encode()]


# -- servers ---------------------------------------------------------------------------
class UvicornThread:
    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="critical", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class WsgirefThread:
    def __init__(self, app: Any) -> None:
        self.server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(params=["asgi-uvicorn", "wsgi-wsgiref"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, int]]:
    path = tmp_path / "guard.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    if request.param == "asgi-uvicorn":
        mw: Any = asgi.GuardMiddleware(asgi_app, path)
        server: Any = UvicornThread(mw)
    else:
        mw = wsgi.GuardMiddleware(wsgi_app, str(path))
        server = WsgirefThread(mw)
    yield mw, server.port
    server.close()


def test_flow_limit_per_route_answers_429_like_the_sidecar(served: tuple[Any, int]) -> None:
    mw, port = served
    codes = [get(port, "/orders", "POST")[0] for _ in range(4)]
    assert codes[:2] == [200, 200] and codes[2:] == [429, 429]
    status, headers, body = get(port, "/orders/7", "POST")
    assert status == 429 and json.loads(body) == {
        "error": "flow_blocked",
        "resource": "orders.create",
    }
    assert headers["content-type"] == "application/json"
    assert int(headers["retry-after"]) >= 1
    # other methods and non-segment prefixes go to the default resource
    assert get(port, "/orders")[0] == 200
    assert get(port, "/ordersX", "POST")[0] == 200
    stats = mw.guard.stats("orders.create")
    assert stats.total_pass == 2 and stats.total_block == 3
    assert mw.guard.stats("app.other").total_pass == 2


def test_authority_uses_the_origin_header(served: tuple[Any, int]) -> None:
    _, port = served
    status, _, body = get(port, "/admin/users")
    assert status == 403
    assert json.loads(body) == {"error": "authority_blocked", "resource": "admin.api"}
    assert get(port, "/admin/users", X_Guard_Origin="ops")[0] == 200
    assert get(port, "/admin/users", X_Guard_Origin="OPS")[0] == 403


def test_param_flow_from_route_params(served: tuple[Any, int]) -> None:
    _, port = served
    assert get(port, "/items/1", X_User="alice")[0] == 200
    status, _, body = get(port, "/items/2", X_User="alice")
    assert status == 429 and json.loads(body)["error"] == "param_flow_blocked"
    assert get(port, "/items/3", X_User="bob")[0] == 200


def test_5xx_and_exceptions_are_traced_for_degrade(served: tuple[Any, int]) -> None:
    mw, port = served
    assert get(port, "/pay/fail")[0] == 500
    assert get(port, "/pay/fail")[0] == 500  # error count 2 > 1: the breaker opens
    # A WSGI entry exits when the server closes the response, which may be just after the
    # client has read it: wait for the second exception to be booked.
    deadline = time.monotonic() + 5
    while mw.guard.stats("payments").total_exception < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    status, headers, body = get(port, "/pay/ok")
    assert status == 503
    assert json.loads(body) == {"error": "degrade_blocked", "resource": "payments"}
    assert 29 <= int(headers["retry-after"]) <= 30
    assert mw.guard.breaker_state("payments") == "open"
    assert mw.guard.stats("payments").total_exception == 2
    # an app exception is traced too, then propagates to the server (500)
    assert get(port, "/boom")[0] == 500
    assert mw.guard.stats("app.other").total_exception == 1


def test_bad_config_is_one_rule_error_with_locations() -> None:
    bad = {
        "flow": [{"resource": "x", "count": -1}],
        "sidecar": {"routes": [{"prefix": "nope", "resource": "x"}]},
    }
    with pytest.raises(RuleError) as info:
        asgi.GuardMiddleware(asgi_app, bad)
    text = str(info.value)
    assert "flow[0].count" in text


def test_config_mapping_without_upstreams_is_accepted() -> None:
    mw = wsgi.GuardMiddleware(wsgi_app, {"sidecar": {"routes": [{"prefix": "/", "resource": "r"}]}})
    assert mw.core.route("GET", "/x", "", lambda _: None, "1.2.3.4")[0] == "r"
    text = "flow:\n  - {resource: r, count: 0}\n"
    assert asgi.GuardMiddleware(asgi_app, text).guard.rules.flow[0].count == 0
