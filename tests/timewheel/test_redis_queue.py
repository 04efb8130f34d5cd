"""RedisDelayQueue (timewheel/redis_queue.py) against a spawned redis-server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from timewheel import RedisDelayQueue

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue(redis_client: redis.Redis):
    queues: list[RedisDelayQueue] = []

    def make(name: str = "q", **kw: object) -> RedisDelayQueue:
        q = RedisDelayQueue(redis_client, name, **kw)  # type: ignore[arg-type]
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.close()


def test_order_ack_cancel(queue) -> None:
    q = queue()
    late = q.put(b"late", delay=0.2)
    a1 = q.put(b"a1")
    a2 = q.put(b"a2")
    gone = q.put(b"gone", delay=10)
    assert q.cancel(gone) is True
    assert q.cancel(gone) is False
    t1, t2 = q.get(timeout=1), q.get(timeout=1)
    assert t1 is not None and t2 is not None
    assert [t1.id, t2.id] == [a1, a2]  # equal deadlines: put order
    assert q.cancel(a1) is False  # in flight
    assert t1.ack() and t2.ack()
    assert t1.ack() is False
    start = time.monotonic()
    t3 = q.get(timeout=5)
    assert t3 is not None and t3.id == late and t3.payload == b"late"
    assert time.monotonic() - start < 5
    assert time.time() >= t3.deadline - 0.01  # not early (Redis and us share one clock here)
    t3.ack()
    assert q.get(timeout=0.1) is None


def test_unacked_task_comes_back_after_ack_timeout(queue) -> None:
    q = queue(ack_timeout=0.3, max_wait=30)
    q.put(b"x")
    first = q.get(timeout=1)
    assert first is not None and first.attempts == 1
    start = time.monotonic()
    again = q.get(timeout=5)  # woken by the local wheel at the visibility deadline
    assert again is not None and again.id == first.id and again.attempts == 2
    assert 0.25 <= time.monotonic() - start < 5
    assert again.deadline == first.deadline
    assert first.nack() is False  # stale delivery
    assert again.nack(delay=0.1) is True
    third = q.get(timeout=5)
    assert third is not None and third.attempts == 3
    third.ack()


def test_waiting_consumer_is_woken_by_a_new_earliest_task(queue) -> None:
    consumer = queue("w", max_wait=60)  # no polling to speak of: only notices wake it
    producer = queue("w")
    producer.put(b"far", delay=3600)
    got = []
    th = threading.Thread(target=lambda: got.append(consumer.get(timeout=20)))
    th.start()
    time.sleep(0.2)
    start = time.monotonic()
    producer.put(b"soon", delay=0.1)
    th.join(20)
    assert got and got[0] is not None and got[0].payload == b"soon"
    assert time.monotonic() - start < 10  # far below max_wait=60: the notice woke it


async def test_aget_and_async_for(queue) -> None:
    q = queue("a", max_wait=60)
    assert await q.aget(timeout=0.05) is None
    q.put(b"1", delay=0.05)
    q.put(b"2", delay=0.1)
    seen = []
    async for task in q:
        seen.append(task.payload)
        task.ack()
        if len(seen) == 2:
            break
    assert seen == [b"1", b"2"]
    waiter = asyncio.ensure_future(q.aget(timeout=10))
    await asyncio.sleep(0.1)
    q.put(b"3")
    task = await waiter
    assert task is not None and task.payload == b"3"


def test_rejects_decoding_client(redis_server) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisDelayQueue(client, "x")
    client.close()


def test_scripts_reload_after_script_flush(queue, redis_client: redis.Redis) -> None:
    q = queue("f")
    q.put(b"x")
    redis_client.script_flush()  # EVALSHA now gets NOSCRIPT
    task = q.get(timeout=1)
    assert task is not None and task.ack()


def spawn(port: int, name: str, idle: float, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.timewheel.redis_consumer",
            str(port),
            name,
            str(idle),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_several_consumer_processes_share_the_queue(redis_server, queue) -> None:
    producer = queue("shared")
    procs = [spawn(redis_server.port, "shared", 3) for _ in range(4)]
    ids = []
    for i in range(200):
        ids.append(producer.put(b"%d" % i, delay=(i % 20) * 0.02))
    got: list[list[str]] = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        got.append([line.split()[1] for line in out.splitlines() if line.startswith("got")])
    everything = Counter(i for lines in got for i in lines)
    assert set(everything) == set(ids)
    assert max(everything.values()) == 1  # each task delivered to exactly one consumer
    assert sum(1 for lines in got if lines) >= 2  # the work was actually shared


@pytest.mark.slow
def test_task_of_a_vanished_consumer_goes_to_another(redis_server, queue) -> None:
    producer = queue("vanish")
    tid = producer.put(b"x")
    holder = spawn(redis_server.port, "vanish", 5, "noack")
    out, _ = holder.communicate(timeout=30)
    assert f"got {tid} 1" in out
    other = spawn(redis_server.port, "vanish", 4)
    out, _ = other.communicate(timeout=30)
    assert f"got {tid} 2" in out  # after the 1 s ack timeout, with attempts counted
