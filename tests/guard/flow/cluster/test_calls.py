"""Calls with a deadline: the sender thread, its pipelines, and requests given up on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from guard import Guard, ManualClock
from guard.flow.cluster import rule_keys
from guard.flow.cluster.calls import PING, RUNNING, NoReply, Request, Script, _execute
from guard.flow.cluster.link import Link
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
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

SCRIPT = Script("cluster_acquire.lua")
KEYS = ["{guard:flow:calls}:window", "{guard:flow:calls}:instances"]


def decision(want: int = 1) -> Request:
    return Request(SCRIPT, KEYS, [want, "100", 0, "test", 3000, "", 0, 1000, 100, 1, 0])


def test_concurrent_strict_decisions_share_pipelines_and_stay_exact(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()  # its own: no other test's heartbeat in its command counts
    redis_client = redis.Redis(port=server.port)
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(rules("piped", server.url, 100, lease_ms=0, timeout_ms=1000))
    c = controller(engine, "piped")
    wait_for(lambda: c.last_call > 0)
    before = script_calls(redis_client)
    passed: list[int] = []

    def worker() -> None:
        passed.append(attempts(engine, "piped", 30))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(passed) == 100  # 240 offered within one window: exactly the count
    calls = script_calls(redis_client) - before
    assert calls in (240, 241), calls  # one call per decision (+ a heartbeat)
    assert c.link.sender.pipelined > 0  # callers that queued up went out together
    assert window_total(redis_client, rule_keys(engine.rules.flow[0])[0]) == 100


def test_a_pipeline_reloads_a_flushed_script(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.script_flush()
    requests = [decision(), decision(), decision()]
    outcomes = _execute(redis_client, requests)
    assert [error for _, error in outcomes] == [None, None, None]
    assert [int(reply[0]) for reply, _ in outcomes] == [1, 1, 1]
    assert redis_client.script_exists(SCRIPT.sha) == [True]


def test_a_failed_pipeline_fails_each_request(redis_factory: Callable[[], RedisServer]) -> None:
    server = redis_factory()
    client = redis.Redis(port=server.port, socket_timeout=1, retry=Retry(NoBackoff(), 0))
    server.kill()
    outcomes = _execute(client, [decision(), decision()])
    assert all(
        reply is None and isinstance(error, redis.ConnectionError) for reply, error in outcomes
    )


def test_a_request_given_up_before_it_was_sent_is_never_sent(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # A is sent and stuck (Redis stopped); B queues behind it. A's wait runs out, the link
    # goes down and B is let go. When Redis answers again, A's call runs there but B's is
    # never sent, so it grants no token nobody will use.
    server = redis_factory()
    client = patient_client(server.port)
    link = Link(client, 50, "given-up")
    link.call(SCRIPT, KEYS, [0, "100", 0, "test", 3000, "", 0, 1000, 100, 1, 0])  # connected
    calls_before = script_calls(client)
    server.pause()
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            link.call(SCRIPT, KEYS, decision().args)
        except NoReply as exc:
            errors.append(exc)

    first = threading.Thread(target=ask)
    first.start()
    wait_for(lambda: bool(link.sender.pending) and link.sender.pending[0].state == RUNNING, 1.0)
    t0 = time.monotonic()
    ask()  # queued behind the first, let go when the first's wait runs out
    assert time.monotonic() - t0 <= 0.05 + ALLOWANCE_S
    first.join()
    assert len(errors) == 2 and not link.healthy
    server.resume()
    wait_for(lambda: not link.sender.pending, 2.0)
    assert script_calls(client) - calls_before == 1  # A only
    assert window_total(client, KEYS[0]) == 1


def test_a_skipped_request_leaves_the_queue_in_order(
    redis_factory: Callable[[], RedisServer],
) -> None:
    # X is stuck in Redis; A and B queue behind it and go out as one batch, B given up
    # on. Once everything is through, nothing is left looking unanswered.
    server = redis_factory()
    client = patient_client(server.port)
    link = Link(client, 1000, "skipped")
    link.call(PING, [], [])
    server.pause()
    x, a, b = decision(), decision(), decision()
    with link.lock:
        link.sender.submit(x)
    wait_for(lambda: x.state == RUNNING, 1.0)
    with link.lock:
        link.sender.submit(a)
        link.sender.submit(b)
        assert link.sender.drop(b)
    server.resume()
    assert a.done.acquire(True, 2.0) and a.error is None
    wait_for(lambda: not link.sender.pending, 1.0)
    assert link.sender.oldest_unanswered() == 0.0
