"""Fixtures for the lock tests: both fronts behind one interface, and five Redlock masters.

Tests written once run against ``locks`` (sync) and ``locks.aio`` (asyncio) through the
``front`` fixture and the :func:`call` helper, which awaits what the async front returns.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

import locks
import locks.aio
from tests.redis_server import RedisServer


async def call(value: Any) -> Any:
    """Await the async front's coroutines; pass the sync front's results through."""
    return await value if inspect.isawaitable(value) else value


@dataclass
class Front:
    kind: str
    RedisLock: Any
    Redlock: Any
    client: Any
    masters: list[Any]
    servers: list[RedisServer]


async def quiesce() -> None:
    """Let late Redlock commands finish and stop the loop's listeners (before closing clients)."""
    from locks import _fanout_async, _wait_async

    await _fanout_async.drain()
    await _wait_async.close_notifiers()
    await asyncio.sleep(0)


@pytest.fixture(autouse=True)
async def _quiet_loop_shutdown() -> AsyncIterator[None]:
    """Close the lock listeners and late commands of this test's loop before it closes."""
    yield
    await quiesce()


@pytest.fixture(scope="session")
def master_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """Five independent masters for the session (fault tests start their own)."""
    root: Path = tmp_path_factory.mktemp("masters")
    servers = [RedisServer(root / f"m{i}").start() for i in range(5)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def sync_masters(master_servers: list[RedisServer]) -> Iterator[list[redis.Redis]]:
    clients = [redis.Redis(port=s.port, socket_timeout=5) for s in master_servers]
    for c in clients:
        c.flushall()
    yield clients
    for c in clients:
        c.close()


@pytest.fixture
async def async_client(redis_server: RedisServer) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis(port=redis_server.port, socket_timeout=5)
    await client.flushall()
    yield client
    await quiesce()
    await client.aclose()


@pytest.fixture
async def async_masters(master_servers: list[RedisServer]) -> AsyncIterator[list[aredis.Redis]]:
    clients = [aredis.Redis(port=s.port, socket_timeout=5) for s in master_servers]
    for c in clients:
        await c.flushall()
    yield clients
    await quiesce()
    for c in clients:
        await c.aclose()


@pytest.fixture(params=["sync", "async"])
async def front(
    request: pytest.FixtureRequest,
    redis_client: redis.Redis,
    sync_masters: list[redis.Redis],
    master_servers: list[RedisServer],
) -> AsyncIterator[Front]:
    if request.param == "sync":
        yield Front(
            "sync", locks.RedisLock, locks.Redlock, redis_client, sync_masters, master_servers
        )
        return
    client = aredis.Redis(port=redis_client.connection_pool.connection_kwargs["port"])
    masters = [aredis.Redis(port=s.port, socket_timeout=5) for s in master_servers]
    yield Front("async", locks.aio.RedisLock, locks.aio.Redlock, client, masters, master_servers)
    await quiesce()
    await client.aclose()
    for c in masters:
        await c.aclose()
