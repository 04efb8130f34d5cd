"""Shared fixtures: spawned redis-server processes and the py/c twin switch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer

PURE = os.environ.get("GUARD_PURE") == "1"
# Which twins a parametrized `impl` test runs against: both normally, only the pure one
# under GUARD_PURE=1 (the second CI pass). A missing extension fails the "c" case.
TWINS = ["py"] if PURE else ["py", "c"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests must use their own key names or flush."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[object]:
    import redis

    client = redis.Redis(port=redis_server.port, socket_timeout=5)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Start extra, test-owned servers (for Redlock and fault tests); all stopped at the end."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(servers)}").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
