"""RedisLock behaviour, written once and run against both fronts (sync and asyncio)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
import redis

from locks import LockError, LockNotOwnedError, LockTimeoutError
from locks._core import fence_key, lock_key
from tests.locks.conftest import Front, call

pytestmark = pytest.mark.redis


async def test_acquire_release_and_state(front: Front, redis_client: redis.Redis) -> None:
    lock = front.RedisLock(front.client, "orders", ttl=5)
    assert lock.token is None and lock.fencing_token is None and lock.validity == 0.0
    assert not await call(lock.locked()) and not await call(lock.owned())
    assert await call(lock.acquire())
    assert isinstance(lock.token, str) and len(lock.token) == 40
    assert redis_client.get(lock_key("orders")) == lock.token.encode()
    assert 4.8 < redis_client.pttl(lock_key("orders")) / 1000 <= 5.0
    assert 4.8 < lock.validity <= 5.0 - 0.05  # ttl - drift (5 * 0.01 + 2 ms)
    assert await call(lock.locked()) and await call(lock.owned())
    await call(lock.release())
    assert lock.token is None and lock.validity == 0.0
    assert redis_client.exists(lock_key("orders")) == 0
    assert not await call(lock.locked())


async def test_tokens_unique_and_fencing_strictly_increases(front: Front) -> None:
    lock = front.RedisLock(front.client, "fenced", ttl=5)
    tokens, fences = set(), []
    for _ in range(20):
        assert await call(lock.acquire())
        tokens.add(lock.token)
        fences.append(lock.fencing_token)
        await call(lock.release())
    assert len(tokens) == 20
    assert all(b == a + 1 for a, b in itertools.pairwise(fences))
    # seeded from the server clock in microseconds, not from 1
    assert fences[0] > 1_600_000_000 * 1_000_000


async def test_fencing_increases_across_expiry(front: Front) -> None:
    a = front.RedisLock(front.client, "exp", ttl=0.05)
    b = front.RedisLock(front.client, "exp", ttl=5)
    assert await call(a.acquire())
    first = a.fencing_token
    await asyncio.sleep(0.08)
    assert await call(b.acquire(blocking=False))
    assert b.fencing_token > first
    assert not await call(a.owned())


async def test_fencing_survives_a_restart_without_persistence(tmp_path, front: Front) -> None:
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path / "r").start()
    try:
        if front.kind == "sync":
            client = redis.Redis(port=server.port)
        else:
            import redis.asyncio as aredis

            client = aredis.Redis(port=server.port)
        lock = front.RedisLock(client, "restart", ttl=5)
        for _ in range(50):  # the counter moves on from its seed
            assert await call(lock.acquire())
            await call(lock.release())
        before = lock.fencing_token or 0
        assert await call(lock.acquire())
        before = lock.fencing_token
        server.restart()  # empty again: key and counter gone
        other = front.RedisLock(client, "restart", ttl=5)
        for _ in range(3):
            try:
                assert await call(other.acquire(blocking=False))
                break
            except redis.ConnectionError:
                continue
        assert other.fencing_token > before
        if front.kind == "async":
            await client.aclose()
        else:
            client.close()
    finally:
        server.stop()


async def test_loser_fails_fast_and_times_out(front: Front) -> None:
    a = front.RedisLock(front.client, "busy", ttl=5)
    b = front.RedisLock(front.client, "busy", ttl=5)
    assert await call(a.acquire())
    t0 = time.monotonic()
    assert not await call(b.acquire(blocking=False))
    assert not await call(b.acquire(timeout=0.15))
    assert 0.14 <= time.monotonic() - t0 < 1.0
    assert not await call(b.owned()) and b.token is None
    await call(a.release())


async def test_context_manager_raises_timeout_with_name(front: Front) -> None:
    a = front.RedisLock(front.client, "cm", ttl=5)
    b = front.RedisLock(front.client, "cm", ttl=5, timeout=0.05)
    assert await call(a.acquire())
    with pytest.raises(LockTimeoutError) as info:
        if front.kind == "sync":
            with b:
                pass
        else:
            async with b:
                pass
    assert info.value.name == "cm" and "cm" in str(info.value)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, LockError)
    await call(a.release())
    if front.kind == "sync":
        with b:
            assert b.owned()
    else:
        async with b:
            assert await b.owned()
    assert not await call(b.locked())


async def test_release_not_owned_cases(front: Front, redis_client: redis.Redis) -> None:
    lock = front.RedisLock(front.client, "rel", ttl=0.05)
    with pytest.raises(LockNotOwnedError):  # never acquired
        await call(lock.release())
    assert await call(lock.acquire())
    await call(lock.release())
    with pytest.raises(LockNotOwnedError):  # released already
        await call(lock.release())
    assert await call(lock.acquire())
    await asyncio.sleep(0.08)  # expired ...
    other = front.RedisLock(front.client, "rel", ttl=5)
    assert await call(other.acquire(blocking=False))  # ... and taken over
    with pytest.raises(LockNotOwnedError) as info:
        await call(lock.release())
    assert info.value.name == "rel"
    assert redis_client.get(lock_key("rel")) == other.token.encode()  # untouched
    await call(other.release())


async def test_extend_resets_ttl_and_never_recreates(
    front: Front, redis_client: redis.Redis
) -> None:
    lock = front.RedisLock(front.client, "ext", ttl=0.3)
    assert await call(lock.acquire())
    assert await call(lock.extend(5)) is True
    assert redis_client.pttl(lock_key("ext")) > 4000
    assert lock.validity > 4.5
    assert await call(lock.extend()) is True  # back to the lock's ttl
    assert redis_client.pttl(lock_key("ext")) <= 300
    await asyncio.sleep(0.35)
    with pytest.raises(LockNotOwnedError):
        await call(lock.extend(5))
    assert redis_client.exists(lock_key("ext")) == 0  # not re-created
    with pytest.raises(LockNotOwnedError):
        await call(lock.extend())


async def test_extend_does_not_touch_another_holders_key(
    front: Front, redis_client: redis.Redis
) -> None:
    a = front.RedisLock(front.client, "ext2", ttl=0.05)
    assert await call(a.acquire())
    await asyncio.sleep(0.08)
    b = front.RedisLock(front.client, "ext2", ttl=1)
    assert await call(b.acquire(blocking=False))
    with pytest.raises(LockNotOwnedError):
        await call(a.extend(100))
    assert redis_client.pttl(lock_key("ext2")) <= 1000


async def test_non_reentrant_owner_is_just_another_contender(front: Front) -> None:
    lock = front.RedisLock(front.client, "plain", ttl=5)
    assert await call(lock.acquire())
    assert not await call(lock.acquire(blocking=False))
    assert not await call(lock.acquire(timeout=0.05))
    await call(lock.release())


async def test_reentrant_holds_counted_in_redis(front: Front, redis_client: redis.Redis) -> None:
    lock = front.RedisLock(front.client, "re", ttl=5, reentrant=True)
    assert await call(lock.acquire())
    fence, token = lock.fencing_token, lock.token
    assert await call(lock.acquire(blocking=False))
    assert await call(lock.acquire())
    assert lock.fencing_token == fence and lock.token == token  # same acquisition
    assert redis_client.hget(lock_key("re"), token) == b"3"
    other = front.RedisLock(front.client, "re", ttl=5, reentrant=True)
    assert not await call(other.acquire(blocking=False))
    await call(lock.release())
    await call(lock.release())
    assert await call(lock.owned()) and await call(lock.locked())
    assert redis_client.hget(lock_key("re"), token) == b"1"
    await call(lock.release())
    assert not await call(lock.locked())
    with pytest.raises(LockNotOwnedError):
        await call(lock.release())
    assert await call(other.acquire(blocking=False))
    assert other.fencing_token > fence


async def test_scripts_reload_after_script_flush(front: Front, redis_client: redis.Redis) -> None:
    lock = front.RedisLock(front.client, "noscript", ttl=5)
    assert await call(lock.acquire())
    redis_client.script_flush()
    await call(lock.extend())
    await call(lock.release())
    redis_client.script_flush()
    assert await call(lock.acquire())


async def test_bad_arguments_are_clear_errors(front: Front) -> None:
    with pytest.raises(ValueError, match="ttl"):
        front.RedisLock(front.client, "x", ttl=0)
    with pytest.raises(ValueError, match="name"):
        front.RedisLock(front.client, "", ttl=1)
    with pytest.raises(ValueError, match="timeout"):
        front.RedisLock(front.client, "x", timeout=-1)
    lock = front.RedisLock(front.client, "x")
    with pytest.raises(ValueError, match="timeout"):
        await call(lock.acquire(timeout=-2))


async def test_fence_key_is_separate_and_persistent(
    front: Front, redis_client: redis.Redis
) -> None:
    lock = front.RedisLock(front.client, "fk", ttl=1)
    assert await call(lock.acquire())
    assert int(redis_client.get(fence_key("fk"))) == lock.fencing_token
    assert redis_client.ttl(fence_key("fk")) == -1
    await call(lock.release())


def test_waiter_woken_on_release_not_by_polling(redis_client: redis.Redis) -> None:
    import locks

    holder = locks.RedisLock(redis_client, "wake", ttl=30)
    waiter = locks.RedisLock(redis_client, "wake", ttl=30)
    assert holder.acquire()
    result: dict[str, float] = {}

    def wait() -> None:
        t0 = time.monotonic()
        result["ok"] = waiter.acquire(timeout=10)
        result["t"] = time.monotonic() - t0

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    holder.release()
    t.join(5)
    assert result["ok"]
    # the holder's PTTL was ~30 s: only a wake-up explains a hand-over right after release
    assert result["t"] < 0.2 + 0.3
    waiter.release()


def test_waiter_woken_by_release_from_another_client(redis_server) -> None:
    import locks

    c1 = redis.Redis(port=redis_server.port)
    c2 = redis.Redis(port=redis_server.port)
    try:
        holder = locks.RedisLock(c1, "wake2", ttl=30)
        waiter = locks.RedisLock(c2, "wake2", ttl=30)
        assert holder.acquire()
        done = threading.Event()
        threading.Thread(target=lambda: waiter.acquire(timeout=10) and done.set()).start()
        time.sleep(0.2)
        holder.release()  # published on the channel, heard by c2's listener
        assert done.wait(1.0)
        waiter.release()
    finally:
        c1.close()
        c2.close()


def test_expiry_without_release_is_noticed(redis_client: redis.Redis) -> None:
    import locks

    holder = locks.RedisLock(redis_client, "crash", ttl=0.3)
    waiter = locks.RedisLock(redis_client, "crash", ttl=5)
    assert holder.acquire()  # and never released: the holder "crashed"
    t0 = time.monotonic()
    assert waiter.acquire(timeout=5)
    assert 0.25 < time.monotonic() - t0 < 1.0  # bounded by the holder's PTTL
    waiter.release()


def test_contended_handover_is_fair_and_exclusive(redis_client: redis.Redis) -> None:
    import locks

    counts = [0] * 6
    inside = []
    overlap = []
    ready = threading.Barrier(6)

    def worker(i: int) -> None:
        lock = locks.RedisLock(redis_client, "fair", ttl=5)
        ready.wait()  # everyone starts together, even on a busy machine
        stop = time.monotonic() + 1.0
        while time.monotonic() < stop:
            with lock:
                inside.append(i)
                if len(inside) > 1:
                    overlap.append(tuple(inside))
                counts[i] += 1
                inside.remove(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap
    assert sum(counts) > 100
    assert min(counts) >= 0.85 * max(counts), counts
