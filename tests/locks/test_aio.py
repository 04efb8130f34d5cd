"""The asyncio front only: task-local ownership and cancellation safety."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aredis

from locks import LockNotOwnedError
from locks._core import lock_key
from locks.aio import RedisLock, Redlock

pytestmark = pytest.mark.redis


async def test_two_tasks_sharing_one_lock_never_share_a_token(async_client: aredis.Redis) -> None:
    lock = RedisLock(async_client, "shared", ttl=5)
    assert await lock.acquire()
    mine = lock.token

    async def intruder() -> tuple[object, ...]:
        token, owned = lock.token, await lock.owned()
        try:
            await lock.release()
            released = True
        except LockNotOwnedError:
            released = False
        return token, owned, released, await lock.acquire(blocking=False)

    assert await asyncio.create_task(intruder()) == (None, False, False, False)
    assert lock.token == mine and await lock.owned()
    await lock.release()

    async def successor() -> str | None:
        assert await lock.acquire(blocking=False)
        token = lock.token
        await lock.release()
        return token

    other = await asyncio.create_task(successor())
    assert other is not None and other != mine


async def test_late_release_of_one_task_cannot_free_anothers_lock(
    async_client: aredis.Redis,
) -> None:
    lock = RedisLock(async_client, "late", ttl=0.05)
    got_b = asyncio.Event()
    done_a = asyncio.Event()

    async def a() -> None:
        assert await lock.acquire()
        await asyncio.sleep(0.1)  # lease runs out; b takes the lock meanwhile
        await got_b.wait()
        with pytest.raises(LockNotOwnedError):
            await lock.release()
        done_a.set()

    async def b() -> None:
        await asyncio.sleep(0.07)
        assert await lock.acquire(timeout=1)
        got_b.set()
        await done_a.wait()
        assert await lock.owned()
        await lock.release()

    await asyncio.gather(a(), b())


async def test_child_task_does_not_inherit_the_hold(async_client: aredis.Redis) -> None:
    lock = RedisLock(async_client, "child", ttl=5, reentrant=True)
    assert await lock.acquire()

    async def child() -> tuple[object, bool]:
        return lock.token, await lock.acquire(blocking=False)

    assert await asyncio.create_task(child()) == (None, False)
    await lock.release()
    assert not await lock.locked()


async def _cancel_storm(client: aredis.Redis, make, key: str, rounds: int) -> int:
    """Cancel lock users at random points; after each round nobody may hold the key."""
    rng = random.Random(7)
    holder_rounds = 0
    for i in range(rounds):
        lock = make()
        contender = make() if i % 4 == 0 else None

        async def job(lk=lock) -> None:
            async with lk:
                await asyncio.sleep(rng.uniform(0, 0.0004))

        tasks = [asyncio.create_task(job())]
        if contender is not None:
            tasks.append(asyncio.create_task(job(contender)))
        await asyncio.sleep(rng.uniform(0, 0.0015))
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        holder_rounds += sum(1 for r in results if r is None)
        assert await client.exists(key) == 0, f"orphan key after round {i}"
    return holder_rounds


async def test_random_cancellations_leave_no_orphan_key(async_client: aredis.Redis) -> None:
    finished = await _cancel_storm(
        async_client, lambda: RedisLock(async_client, "storm", ttl=30), lock_key("storm"), 1000
    )
    assert finished < 1000  # most rounds were really cancelled mid-flight


async def test_random_cancellations_redlock(async_masters: list[aredis.Redis]) -> None:
    await _cancel_storm(
        async_masters[0],
        lambda: Redlock(async_masters, "rstorm", ttl=30),
        lock_key("rstorm"),
        150,
    )
    for c in async_masters:
        assert await c.exists(lock_key("rstorm")) == 0


async def test_cancelled_blocked_acquire_leaves_queue_clean(async_client: aredis.Redis) -> None:
    holder = RedisLock(async_client, "q", ttl=30)
    assert await holder.acquire()
    waiters = [asyncio.create_task(RedisLock(async_client, "q").acquire()) for _ in range(5)]
    await asyncio.sleep(0.05)
    for w in waiters[:4]:
        w.cancel()
    await asyncio.gather(*waiters[:4], return_exceptions=True)
    await holder.release()
    assert await asyncio.wait_for(waiters[4], 1.0)  # the survivor is woken, not stuck


async def test_renewal_stops_when_owner_task_ends(async_client: aredis.Redis) -> None:
    lock = RedisLock(async_client, "orphaned", ttl=0.3, auto_renew=True)

    async def forgetful() -> None:
        assert await lock.acquire()

    await asyncio.create_task(forgetful())
    await asyncio.sleep(0.7)
    assert await async_client.exists(lock_key("orphaned")) == 0
