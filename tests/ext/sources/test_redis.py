"""RedisRuleSource against real redis-server processes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from ext.sources import RedisRuleSource
from guard import Guard, ManualClock
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def doc(count: float, resource: str = "orders") -> str:
    return f"flow:\n  - resource: {resource}\n    count: {count}\n"


def counts(engine: Guard) -> list[float]:
    return [rule.count for rule in engine.rules.flow]


def wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> float:
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < seconds, "condition not met in time"
        time.sleep(0.001)
    return time.monotonic() - t0


def push(client: redis.Redis, key: str, document: str) -> Any:
    with client.pipeline(transaction=True) as pipe:
        pipe.set(key, document)
        pipe.publish(key, document)
        return pipe.execute()[1]


def test_start_reads_the_key(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set("guard:rules", doc(7))
    engine = Guard(clock=ManualClock(0))
    with RedisRuleSource(redis.Redis(port=redis_server.port), engine) as source:
        assert counts(engine) == [7.0]
        assert source.successes == 1


def test_push_reaches_three_subscribers_within_200ms(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engines = [Guard(clock=ManualClock(0)) for _ in range(3)]
    sources = [
        RedisRuleSource(redis.Redis(port=redis_server.port), e, key="fleet").start()
        for e in engines
    ]
    try:
        wait_for(lambda: redis_client.pubsub_numsub("fleet")[0][1] == 3)
        t0 = time.monotonic()
        assert push(redis_client, "fleet", doc(42)) == 3
        for engine in engines:
            wait_for(lambda engine=engine: counts(engine) == [42.0], 1.0)
        assert time.monotonic() - t0 < 0.2
    finally:
        for source in sources:
            source.stop()


def test_malformed_push_changes_nothing(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    results: list[tuple[bool, Any]] = []
    source = RedisRuleSource(
        redis.Redis(port=redis_server.port),
        engine,
        key="strict",
        on_result=lambda ok, error: results.append((ok, error)),
    )
    with source:
        wait_for(lambda: source.reads == 2)
        push(redis_client, "strict", doc(5))
        wait_for(lambda: counts(engine) == [5.0])
        before = engine.rules
        for bad in (doc(-1), "flow: [{resource: x, count: 1, bogus: 2}]\n", "flow: [\n", "{}}"):
            push(redis_client, "strict", bad)
        # A path-looking payload is text, never a file to read.
        push(redis_client, "strict", "/etc/passwd")
        wait_for(lambda: len(results) == 6)
        assert engine.rules is before
        assert "flow[0].count: must be >= 0" in str(results[1][1])
        assert [ok for ok, _ in results] == [True] + [False] * 5
        assert source.last_error is not None
        # A good push after bad ones still applies.
        push(redis_client, "strict", doc(6))
        wait_for(lambda: counts(engine) == [6.0])


def test_bad_stored_rules_at_start_keep_the_engine_rules(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(doc(3))
    redis_client.set("guard:rules", json.dumps({"flow": [{"resource": "a"}]}))
    with RedisRuleSource(redis.Redis(port=redis_server.port), engine) as source:
        assert source.failures == 1 and "flow[0].count: required" in str(source.last_error)
        assert counts(engine) == [3.0]


def test_reconnect_rereads_the_key(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set("guard:rules", doc(1))
    engine = Guard(clock=ManualClock(0))
    source = RedisRuleSource(redis.Redis(port=redis_server.port), engine).start()
    try:
        assert counts(engine) == [1.0]
        wait_for(lambda: source.reads == 2)  # at start, then once subscribed
        # Drop the subscriber and update in one transaction: the message is lost for sure.
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            pipe.set("guard:rules", doc(2))
            pipe.publish("guard:rules", doc(2))
            assert pipe.execute()[2] == 0
        wait_for(lambda: counts(engine) == [2.0], 5.0)
        assert source.reconnects >= 1 and source.reads >= 3
        # And the new subscription works.
        push(redis_client, "guard:rules", doc(3))
        wait_for(lambda: counts(engine) == [3.0])
    finally:
        source.stop()


def test_restarted_redis_is_followed(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    engine = Guard(clock=ManualClock(0))
    source = RedisRuleSource(redis.Redis(port=server.port), engine).start()
    try:
        server.restart()
        client = redis.Redis(port=server.port)
        wait_for(lambda: client.pubsub_numsub("guard:rules")[0][1] == 1, 5.0)
        push(client, "guard:rules", doc(4))
        wait_for(lambda: counts(engine) == [4.0])
    finally:
        source.stop()


def test_starts_without_redis_and_catches_up(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    server.kill()
    engine = Guard(clock=ManualClock(0))
    source = RedisRuleSource(redis.Redis(port=server.port, socket_connect_timeout=1), engine)
    source.start()
    try:
        assert counts(engine) == []
        server.start()
        push(redis.Redis(port=server.port), "guard:rules", doc(9))
        wait_for(lambda: counts(engine) == [9.0], 5.0)
    finally:
        source.stop()
