"""auto_renew on both fronts: one scheduler, renewal at ttl/3, lost locks signalled."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest
import redis

from locks._core import lock_key
from tests.locks.conftest import Front, call

pytestmark = pytest.mark.redis


async def test_renewal_keeps_the_lock_past_its_ttl(front: Front, redis_client: redis.Redis) -> None:
    lock = front.RedisLock(front.client, "renewed", ttl=0.3, auto_renew=True)
    assert await call(lock.acquire())
    first = lock.fencing_token
    await asyncio.sleep(1.0)  # three ttls
    assert await call(lock.owned()) and lock.fencing_token == first
    assert redis_client.pttl(lock_key("renewed")) > 100
    await call(lock.release())
    await asyncio.sleep(0.4)
    assert redis_client.exists(lock_key("renewed")) == 0  # renewal stopped, nothing re-created


async def test_failed_renewal_marks_lost_and_calls_back(
    front: Front, redis_client: redis.Redis
) -> None:
    lost: list[object] = []
    lock = front.RedisLock(
        front.client, "stolen", ttl=0.3, auto_renew=True, on_lost=lambda lk: lost.append(lk)
    )
    assert await call(lock.acquire())
    redis_client.set(lock_key("stolen"), "someone-else", px=5000)  # taken over behind our back
    t0 = time.monotonic()
    while not lost and time.monotonic() - t0 < 1.0:
        await asyncio.sleep(0.01)
    assert lost == [lock]
    # found at the next renewal (ttl/3 = 0.1 s); the slack is for a loaded CI machine
    assert time.monotonic() - t0 <= 0.5
    assert not await call(lock.owned()) and lock.validity == 0.0
    assert redis_client.get(lock_key("stolen")) == b"someone-else"  # never touched


async def test_stalled_server_turns_owned_false_by_the_local_deadline(
    front: Front, redis_factory
) -> None:
    server = redis_factory()
    if front.kind == "sync":
        client = redis.Redis(port=server.port, socket_timeout=2)
    else:
        import redis.asyncio as aredis

        client = aredis.Redis(port=server.port, socket_timeout=2)
    lock = front.RedisLock(client, "stall", ttl=0.5, auto_renew=True)
    assert await call(lock.acquire())
    t0 = time.monotonic()
    server.pause()
    try:
        await asyncio.sleep(0.5 - 0.007)  # t0 + ttl - drift
        assert lock.validity == 0.0
        assert not await call(lock.owned())  # decided locally: no I/O, no exception
        assert time.monotonic() - t0 < 1.5  # a call to the frozen server would block 2 s
    finally:
        server.resume()
    await asyncio.sleep(0.05)
    if front.kind == "async":
        await client.aclose()


def test_one_renewal_thread_for_all_locks(redis_client: redis.Redis) -> None:
    import locks

    held = []
    for i in range(20):
        lk = locks.RedisLock(redis_client, f"many{i}", ttl=0.3, auto_renew=True)
        assert lk.acquire()
        held.append(lk)
    time.sleep(0.5)
    assert all(redis_client.exists(lock_key(f"many{i}")) for i in range(20))
    assert sum(1 for t in threading.enumerate() if t.name == "locks-renew") == 1
    for lk in held:
        lk.release()


def test_garbage_collected_lock_stops_renewing(redis_client: redis.Redis) -> None:
    import locks

    lk = locks.RedisLock(redis_client, "gc", ttl=0.3, auto_renew=True)
    assert lk.acquire()
    del lk
    gc.collect()
    # a renewal already running when the lock went away may extend it once more: allow a
    # few ttls, far less than a renewal that kept going would need
    deadline = time.monotonic() + 1.5
    while redis_client.exists(lock_key("gc")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_client.exists(lock_key("gc")) == 0


async def test_reentrant_and_renewed(front: Front, redis_client: redis.Redis) -> None:
    lock = front.RedisLock(front.client, "both", ttl=0.3, auto_renew=True, reentrant=True)
    assert await call(lock.acquire())
    assert await call(lock.acquire())
    await asyncio.sleep(0.7)
    await call(lock.release())
    assert await call(lock.owned())
    await asyncio.sleep(0.4)
    assert await call(lock.owned())
    await call(lock.release())
    assert redis_client.exists(lock_key("both")) == 0
