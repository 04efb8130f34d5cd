"""The link's health: when Redis counts as down, and how long anyone waits for it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from guard import Guard
from guard.flow.cluster import use_client
from guard.flow.cluster.calls import PING, NoReply, Request, Script
from guard.flow.cluster.link import Link
from tests.guard.flow.cluster.helpers import (
    ALLOWANCE_S,
    attempts,
    controller,
    fallbacks,
    patient_client,
    rules,
    wait_for,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

SCRIPT = Script("cluster_acquire.lua")


def test_idle_process_falls_back_when_its_heartbeat_goes_unanswered(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # No decision at all: the refiller's heartbeat is the only request. Its client would
    # wait 5 s for a reply, yet the switch comes timeout_ms after the heartbeat was sent.
    server = redis_factory()
    use_client(server.url, patient_client(server.port))
    timeout = 0.05
    engine = Guard()
    engine.load_rules(rules("idle", server.url, 100, timeout_ms=50))
    c = controller(engine, "idle")
    wait_for(lambda: c.last_call > 0)  # the first heartbeat was answered
    with fallbacks() as seen:
        server.pause()
        try:
            wait_for(lambda: c.state == "fallback", 1.0 + timeout + 0.5)  # next heartbeat
            [(at, since)] = seen.seen
            assert timeout - 0.001 <= at - since <= timeout + ALLOWANCE_S, at - since
            # The next decision goes local without waiting.
            t0 = time.monotonic()
            assert attempts(engine, "idle", 1) == 1
            assert time.monotonic() - t0 < 0.005
        finally:
            server.resume()
    wait_for(lambda: c.state == "cluster", 2.0)


def acquire(link: Link, want: int = 1) -> object:
    """One decision's call of the lease script on ``link`` (rule "t", count 100)."""
    keys = ["{guard:flow:t}:window", "{guard:flow:t}:instances"]
    return link.call(SCRIPT, keys, [want, "100", 0, "test", 3000, "", 0, 1000, 100, 1, 0])


def test_a_call_behind_an_overdue_request_does_not_wait(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # A request has gone timeout_ms without a reply and the thread waiting for it has
    # not run yet (a busy machine): the next call finds it and gives up at once.
    server = redis_factory()
    link = Link(patient_client(server.port), 50, "overdue")
    acquire(link)  # connected
    server.pause()
    try:
        stale = Request(PING, [], [])
        with link.lock:
            stale.sent = time.monotonic() - 0.06
            link.sender.submit(stale)
        t0 = time.monotonic()
        with pytest.raises(NoReply, match="overdue"):
            acquire(link)
        assert time.monotonic() - t0 < 0.005
        assert not link.healthy
        assert stale.done.acquire(False)  # whoever waited for it was let go too
    finally:
        server.resume()


def test_every_wait_is_bounded_while_redis_is_stopped(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # The first call waits its timeout and switches the link; later ones do not wait.
    server = redis_factory()
    link = Link(patient_client(server.port), 50, "bounded")
    acquire(link)
    server.pause()
    try:
        waits = []
        for _ in range(5):
            t0 = time.monotonic()
            with pytest.raises(NoReply):
                acquire(link)
            waits.append(time.monotonic() - t0)
        assert 0.049 <= waits[0] <= 0.05 + ALLOWANCE_S, waits
        assert max(waits[1:]) < 0.005, waits
        assert link.longest_wait <= 0.05 + ALLOWANCE_S
        # A probe still goes out while the link is down, and waits its timeout.
        t0 = time.monotonic()
        with pytest.raises(NoReply):
            link.call(PING, [], [])
        assert time.monotonic() - t0 <= 0.05 + ALLOWANCE_S
    finally:
        server.resume()
    wait_for(lambda: _answers(link), 2.0)
    granted, _, _, _ = acquire(link)  # type: ignore[misc]
    assert granted == 1


def _answers(link: Link) -> bool:
    try:
        link.call(PING, [], [])
    except NoReply:
        return False
    link.mark_up()
    return link.healthy
