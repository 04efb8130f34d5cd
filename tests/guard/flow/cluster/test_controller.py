"""Cluster flow controllers in one process, against a real redis-server."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Callable

import pytest
import redis
from redis.crc import key_slot

from guard import BlockError, FlowBlocked, Guard, ManualClock, RuleError
from guard.flow.cluster import cluster_metrics, rule_id, rule_keys, use_client
from guard.flow.rule import FlowRule
from tests.guard.flow.cluster.helpers import (
    ALLOWANCE_S,
    attempts,
    controller,
    patient_client,
    rules,
    script_calls,
    wait_for,
    window_total,
)
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis


def test_strict_mode_is_one_round_trip_per_decision(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()  # its own: no other test's heartbeat in its command counts
    client = redis.Redis(port=server.port)
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("strict", server.url, 5, lease_ms=0))
    c = controller(engine, "strict")
    wait_for(lambda: c.last_call > 0)  # the refiller's first heartbeat
    before = script_calls(client)
    assert attempts(engine, "strict", 8) == 5
    assert script_calls(client) - before == 8
    # The shared window holds exactly the five passes.
    assert window_total(client, rule_keys(engine.rules.flow[0])[0]) == 5


def test_engines_share_the_count(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    engines = [Guard(clock=ManualClock(0)) for _ in range(3)]
    for engine in engines:
        engine.load_rules(rules("shared", redis_server.url, 10, lease_ms=0))
    assert sum(attempts(engine, "shared", 6) for engine in engines) == 10
    with pytest.raises(FlowBlocked) as blocked:
        engines[0].enter("shared")
    assert blocked.value.retry_after is not None and 0 < blocked.value.retry_after <= 1.0


def test_leasing_decides_locally(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("leased", redis_server.url, 100_000))
    before = script_calls(redis_client)
    assert attempts(engine, "leased", 2000) == 2000
    # Tokens come in batches sized to demand: far fewer round trips than decisions.
    assert script_calls(redis_client) - before < 100
    c = controller(engine, "leased")
    assert c.tokens > 0


def test_leasing_respects_the_global_count(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engines = [Guard(clock=ManualClock(0)) for _ in range(2)]
    for engine in engines:
        engine.load_rules(rules("leased-limit", redis_server.url, 50))
    passed = sum(attempts(engine, "leased-limit", 40) for engine in engines for _ in range(3))
    assert passed <= 50
    assert passed >= 40  # leases are returned or used, not lost


def test_unused_lease_goes_back_to_the_window(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("giveback", redis_server.url, 1000, lease_ms=50))
    key = rule_keys(engine.rules.flow[0])[0]
    assert attempts(engine, "giveback", 30) == 30
    wait_for(lambda: window_total(redis_client, key) > 30, 0.5)
    engine.load_rules({})  # the rule is removed: its lease is returned at once
    wait_for(lambda: window_total(redis_client, key) == 30, 0.5)
    # An idle controller stops leasing and returns what it holds when the lease lapses.
    idle = Guard(clock=ManualClock(0))
    idle.load_rules(rules("idle", redis_server.url, 1000, lease_ms=50))
    assert attempts(idle, "idle", 30) == 30
    wait_for(lambda: controller(idle, "idle").tokens == 0, 2.0)


async def test_event_loop_never_waits_for_redis(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    engine = Guard()
    engine.load_rules(rules("loop", server.url, 1000, lease_ms=0, timeout_ms=200))
    c = controller(engine, "loop")
    # Event-loop callers of a strict rule decide from a lease the refiller keeps.
    for _ in range(50):
        try:
            async with engine.entry("loop"):
                pass
        except BlockError:
            pass
        await asyncio.sleep(0.002)
    assert c.tokens > 0 or c.reply_at > 0
    server.pause()
    try:
        slowest = 0.0
        for _ in range(100):
            t0 = time.monotonic()
            try:
                async with engine.entry("loop"):
                    pass
            except BlockError:
                pass
            slowest = max(slowest, time.monotonic() - t0)
            await asyncio.sleep(0.001)
        assert slowest < 0.02  # never the 200 ms a Redis call could take
    finally:
        server.resume()


async def test_first_event_loop_entries_pass_and_are_booked(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # A fresh process on an event loop has no lease yet: its first requests decide on the
    # local share (not refused) and are booked on the shared window afterwards.
    server = redis_factory()
    engine = Guard()
    engine.load_rules(rules("first", server.url, 1000))
    c = controller(engine, "first")
    passed = 0
    for _ in range(5):
        async with engine.entry("first"):
            passed += 1
    assert passed == 5
    client = redis.Redis(port=server.port)
    try:
        key = rule_keys(engine.rules.flow[0])[0]
        wait_for(lambda: c.debt == 0 and window_total(client, key) >= 5)
    finally:
        client.close()


def test_unreachable_redis_enforces_locally() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    glob = Guard(clock=ManualClock(0))
    glob.load_rules(rules("down-global", url, 3))
    assert attempts(glob, "down-global", 5) == 3  # count / live instances (1 known)
    avg = Guard(clock=ManualClock(0))
    avg.load_rules(rules("down-avg", url, 4, threshold="avg_local"))
    assert attempts(avg, "down-avg", 6) == 4
    c = controller(glob, "down-global")
    wait_for(lambda: c.state == "fallback", 0.5)  # the switch may run on the refiller
    status = {s.rule_id: s for s in cluster_metrics()}[c.id]
    assert status.state == "fallback" and status.fallback_total >= 1


def test_fallback_disabled_admits_everything() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("open", url, 1, fallback_to_local=False))
    assert attempts(engine, "open", 10) == 10


@pytest.mark.parametrize("client", ["own", "supplied"])
def test_pause_falls_back_within_timeout_and_recovers(
    redis_factory: Callable[[], RedisServer], client: str
) -> None:
    server = redis_factory()
    if client == "supplied":  # a client of the application's that would wait 5 s
        use_client(server.url, patient_client(server.port))
    timeout = 0.08
    engine = Guard()
    engine.load_rules(rules("flaky", server.url, 1000, lease_ms=0, timeout_ms=80))
    c = controller(engine, "flaky")
    assert attempts(engine, "flaky", 5) == 5 and c.state == "cluster"
    server.pause()
    try:
        t0 = time.monotonic()
        assert attempts(engine, "flaky", 1) == 1  # decided locally once the wait ran out
        waited = time.monotonic() - t0
        assert timeout - 0.001 <= waited <= timeout + ALLOWANCE_S, waited
        assert c.state == "fallback"
        t0 = time.monotonic()
        assert attempts(engine, "flaky", 20) == 20  # local now: no more waiting
        assert time.monotonic() - t0 < 0.05
    finally:
        server.resume()
    wait_for(lambda: c.state == "cluster", 2.0)
    status = {s.rule_id: s for s in cluster_metrics()}[c.id]
    assert status.recovery_total >= 1


def test_recovery_books_local_passes(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()
    engine = Guard()
    engine.load_rules(rules("debt", server.url, 40, lease_ms=0))
    c = controller(engine, "debt")
    server.kill()
    assert attempts(engine, "debt", 10) == 10
    # The refiller's heartbeat may have failed first: its switch completes by itself.
    wait_for(lambda: c.state == "fallback", 0.5)
    server.start()
    wait_for(lambda: c.state == "cluster" and c.debt == 0 and c.booking is None)
    client = redis.Redis(port=server.port)
    assert window_total(client, rule_keys(engine.rules.flow[0])[0]) == 10
    assert attempts(engine, "debt", 40) == 30


def test_a_booking_applied_but_unanswered_is_booked_once(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # A stalled Redis runs what it received once it resumes: the booking it applied while
    # its reply came too late is sent again on recovery, and must not count twice.
    server = redis_factory()
    engine = Guard()
    engine.load_rules(rules("once", server.url, 40, lease_ms=0, timeout_ms=50))
    c = controller(engine, "once")
    assert attempts(engine, "once", 3) == 3
    server.pause()
    try:
        with c._lock:
            c.debt += 7  # as if passed locally during an earlier fallback
        c.link.wake()  # the refiller sends the booking now, into the stalled server
        wait_for(lambda: c.state == "fallback", 2.0)
        assert c.booking is not None and c.booking[1] == 7  # sent, never answered
    finally:
        server.resume()
    wait_for(lambda: c.state == "cluster" and c.booking is None and c.debt == 0)
    client = redis.Redis(port=server.port)
    assert window_total(client, rule_keys(engine.rules.flow[0])[0]) == 3 + 7


def test_keys_are_hash_tagged_to_one_slot(redis_server: RedisServer) -> None:
    rule = FlowRule(resource="orders {x}", count=1, cluster={"url": redis_server.url})  # type: ignore[arg-type]
    window, instances = rule_keys(rule)
    assert window.startswith("{guard:flow:") and key_slot(window.encode()) == key_slot(
        instances.encode()
    )
    assert "{x}" not in rule_id(rule)
    # The window is named by what is limited, not by the count.
    assert rule_id(rule) == rule_id(
        FlowRule(resource="orders {x}", count=9, cluster={"url": "redis://h"})
    )  # type: ignore[arg-type]
    assert rule_id(rule) != rule_id(FlowRule(resource="orders {x}", count=1, limit_app="ops"))


def test_reload_keeps_unchanged_and_closes_removed(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    doc = rules("reload", redis_server.url, 100)
    doc["flow"].append({"resource": "other", "count": 5})
    engine.load_rules(doc)
    c = controller(engine, "reload")
    attempts(engine, "reload", 10)
    instances = rule_keys(engine.rules.flow[0])[1]
    wait_for(lambda: redis_client.zcard(instances) == 1)
    doc["flow"][1]["count"] = 6
    engine.load_rules(doc)
    assert controller(engine, "reload") is c and not c.closed
    engine.load_rules({"flow": [{"resource": "other", "count": 6}]})
    assert c.closed
    wait_for(lambda: redis_client.zcard(instances) == 0)


def test_script_is_reloaded_after_script_flush(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("noscript", redis_server.url, 3, lease_ms=0))
    assert attempts(engine, "noscript", 1) == 1
    redis_client.script_flush()
    assert attempts(engine, "noscript", 3) == 2
    assert controller(engine, "noscript").state == "cluster"


def test_lease_ms_is_validated() -> None:
    with pytest.raises(RuleError, match=r"cluster\.lease_ms: must be >= 0"):
        FlowRule(resource="r", count=1, cluster={"url": "redis://h", "lease_ms": -1})  # type: ignore[arg-type]


def test_window_frees_capacity_one_second_later(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("window", redis_server.url, 4, lease_ms=0))
    t0 = time.monotonic()
    assert attempts(engine, "window", 6) == 4
    time.sleep(max(0.0, t0 + 0.95 - time.monotonic()))
    assert attempts(engine, "window", 1) == 0  # 10 ms buckets: still inside the window
    time.sleep(max(0.0, t0 + 1.03 - time.monotonic()))
    assert attempts(engine, "window", 6) == 4
    assert window_total(redis_client, rule_keys(engine.rules.flow[0])[0]) == 4


def test_forked_child_is_an_instance_of_its_own(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("forked", redis_server.url, 1000))
    assert attempts(engine, "forked", 5) == 5
    instances = rule_keys(engine.rules.flow[0])[1]
    wait_for(lambda: redis_client.zcard(instances) == 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: decide, and let its own refiller heartbeat
        code = 1
        try:
            c = controller(engine, "forked")
            if attempts(engine, "forked", 20) == 20 and c.state == "cluster":
                code = 0
            time.sleep(0.5)
        finally:
            os._exit(code)
    wait_for(lambda: redis_client.zcard(instances) == 2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
