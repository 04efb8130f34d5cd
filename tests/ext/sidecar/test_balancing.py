"""Load balancing and passive health through the real proxy, over loopback."""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator

import pytest

from ext.sidecar.config import SidecarConfig, parse_sidecar
from guard import Guard
from tests.ext.helpers import InProcessProxy, RawUpstream, one


def reply(status: int, body: bytes) -> bytes:
    return b"HTTP/1.1 %d X\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        len(body),
        body,
    )


@pytest.fixture
def instances() -> Iterator[dict[str, RawUpstream]]:
    made = {
        "A": RawUpstream(reply(200, b"A")),
        "B": RawUpstream(reply(200, b"B")),
        "C": RawUpstream(reply(200, b"C")),
        "bad": RawUpstream(reply(500, b"bad")),
    }
    yield made
    for up in made.values():
        try:
            up.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once
        except OSError:
            pass
        up.close()


def config(**section: object) -> SidecarConfig:
    cfg, errors = parse_sidecar({"listen": "127.0.0.1:0", **section})
    assert errors == [] and cfg is not None, errors
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_weighted_round_robin_through_the_proxy(instances: dict[str, RawUpstream]) -> None:
    cfg = config(
        upstreams=[{"url": instances["A"].url, "weight": 3}, {"url": instances["B"].url}],
    )
    proxy = InProcessProxy(cfg, Guard())
    try:
        bodies = [one(proxy.port, "/x").body for _ in range(40)]
    finally:
        proxy.close()
    assert collections.Counter(bodies) == {b"A": 30, b"B": 10}
    assert bodies[:4] == [b"A", b"A", b"B", b"A"]  # smooth: B is not left to the end


def test_5xx_instance_is_ejected_then_traffic_avoids_it(
    instances: dict[str, RawUpstream],
) -> None:
    cfg = config(
        upstreams=[instances["A"].url, instances["bad"].url],
        outlier={"consecutive_failures": 3, "base_ejection_sec": 60},
    )
    proxy = InProcessProxy(cfg, Guard())
    try:
        statuses = [one(proxy.port, "/x").status for _ in range(30)]
        snap = proxy.proxy.balancer.snapshot()
    finally:
        proxy.close()
    assert statuses.count(500) == 3  # three in a row from "bad", then it is out
    assert statuses[-20:] == [200] * 20
    assert snap[1]["ejections"] == 1 and snap[1]["ejected_for_sec"] > 50


def test_refused_connections_eject_but_never_the_last_instance(
    instances: dict[str, RawUpstream],
) -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    cfg = config(
        upstreams=[dead[0], instances["B"].url],
        lb="least_active",
        outlier={"consecutive_failures": 2, "base_ejection_sec": 60},
    )
    proxy = InProcessProxy(cfg, Guard())
    try:
        statuses = [one(proxy.port, "/x").status for _ in range(20)]
    finally:
        proxy.close()
    assert statuses.count(502) == 2 and statuses[-10:] == [200] * 10
    # both instances down: one is ejected, the last one stays in
    proxy = InProcessProxy(config(upstreams=dead, outlier={"consecutive_failures": 2}), Guard())
    try:
        assert {one(proxy.port, "/x").status for _ in range(12)} == {502}
        assert sorted(s["ejections"] for s in proxy.proxy.balancer.snapshot()) == [0, 1]
    finally:
        proxy.close()


def test_consistent_hash_by_header_sticks_and_spreads(instances: dict[str, RawUpstream]) -> None:
    cfg = config(
        upstreams=[instances[n].url for n in "ABC"],
        lb="consistent_hash",
        hash_key="header:X-User",
    )
    proxy = InProcessProxy(cfg, Guard())
    try:
        first = {u: one(proxy.port, "/", {"X-User": u}).body for u in map(str, range(60))}
        again = {u: one(proxy.port, "/", {"X-User": u}).body for u in map(str, range(60))}
    finally:
        proxy.close()
    assert first == again
    assert set(first.values()) == {b"A", b"B", b"C"}


def test_upstream_reload_keeps_state_and_ramps_the_newcomer(
    instances: dict[str, RawUpstream],
) -> None:
    cfg = config(upstreams=[instances["A"].url], slow_start_sec=30)
    proxy = InProcessProxy(cfg, Guard())
    try:
        assert one(proxy.port, "/").body == b"A"
        new = config(upstreams=[instances["A"].url, instances["C"].url], slow_start_sec=30)
        proxy._loop.call_soon_threadsafe(proxy.proxy.apply, new)
        bodies = [one(proxy.port, "/").body for _ in range(30)]
        weights = proxy.proxy.balancer.effective_weights()
    finally:
        proxy.close()
    # C ramps from ~1% of its weight: over 30 requests it gets at most one or two
    assert bodies.count(b"C") <= 2 and bodies.count(b"A") >= 28
    assert 0 < weights[instances["C"].url] < 0.05 and weights[instances["A"].url] == 1.0
