"""Route matching and the sidecar section's validation."""

from __future__ import annotations

import pytest

from ext.sidecar.balancer import RoundRobin, make_balancer
from ext.sidecar.config import Param, SidecarConfig, parse_sidecar
from ext.sidecar.routing import Router


def router() -> Router:
    config, errors = parse_sidecar(
        {
            "upstreams": [{"url": "http://127.0.0.1:8000"}],
            "routes": [
                {
                    "prefix": "/orders",
                    "methods": ["POST"],
                    "resource": "orders.create",
                    "params": ["header:X-User", "query:sku", "client_ip"],
                },
                {"prefix": "/orders/", "resource": "orders.any"},
                {"prefix": "/", "methods": ["DELETE"], "resource": "deletes"},
            ],
            "default_resource": "fallback",
        }
    )
    assert errors == [] and config is not None
    return Router(config.routes, config.default_resource)


@pytest.mark.parametrize(
    ("method", "path", "resource"),
    [
        ("POST", "/orders", "orders.create"),
        ("POST", "/orders/", "orders.create"),
        ("POST", "/orders/1/items", "orders.create"),
        ("POST", "/ordersX", "fallback"),  # whole segments only
        ("GET", "/orders/1", "orders.any"),  # methods filter, then the next route
        ("GET", "/orders", "orders.any"),  # trailing slash of a prefix is not required
        ("DELETE", "/anything", "deletes"),
        ("GET", "/", "fallback"),
    ],
)
def test_first_matching_route_in_file_order(method: str, path: str, resource: str) -> None:
    assert router().match(method.encode(), path.encode()).resource == resource


def test_route_params_are_parsed() -> None:
    match = router().match(b"POST", b"/orders")
    assert match.params == (Param("header", "x-user"), Param("query", "sku"), Param("client_ip"))


def test_defaults() -> None:
    config, errors = parse_sidecar({"upstreams": ["http://10.0.0.1"]})
    assert errors == [] and config is not None
    assert config.upstreams[0].port == 80
    assert config.listen == ("127.0.0.1", 15000)
    assert config.admin == ("127.0.0.1", 15001)
    assert config.drain_sec == 10
    assert config.timeout_ms == 30000
    assert config.default_resource == "sidecar.default"
    assert isinstance(make_balancer(config.lb, config.upstreams), RoundRobin)


def test_round_robin_follows_list_order() -> None:
    config, _ = parse_sidecar({"upstreams": ["http://a:1", "http://b:2", "http://c:3"]})
    assert isinstance(config, SidecarConfig)
    rr = make_balancer("round_robin", config.upstreams)
    assert [rr.pick().host for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]
    with pytest.raises(ValueError, match="not available"):
        make_balancer("no_such_policy", config.upstreams)


def test_errors_are_located_and_all_reported() -> None:
    _, errors = parse_sidecar(
        {
            "listen": "x",
            "upstreams": [{"url": "http://h:1", "extra": 1}, 5],
            "timeout_ms": 0,
            "routes": [{"prefix": "/a", "resource": "", "methods": "GET"}],
            "origin_header": "bad header",
        }
    )
    joined = "\n".join(errors)
    for where in (
        "sidecar.listen:",
        "sidecar.upstreams[0].extra: unknown key",
        "sidecar.upstreams[1]:",
        "sidecar.timeout_ms: must be >= 1",
        "sidecar.routes[0].resource:",
        "sidecar.routes[0].methods:",
        "sidecar.origin_header:",
    ):
        assert where in joined, joined
    _, errors = parse_sidecar({})
    assert errors == ["sidecar.upstreams: required, a non-empty list of {url, weight}"]
