"""The data plane: listening socket, live client connections, routing and upstream state.

Settings that requests read on every call (router, balancer, timeouts, limits) are plain
attributes, swapped whole by ``apply`` on reload, so a request sees either the old or the
new value of each, never a half-built one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from ext.admin.metrics import Recorder
from ext.sidecar.balancer import Balancer, make_balancer
from ext.sidecar.config import SidecarConfig
from ext.sidecar.exchange import Exchange
from ext.sidecar.protocol import ClientConnection
from ext.sidecar.routing import Router
from ext.sidecar.upstream import UpstreamPool

__all__ = ["Proxy"]


class Proxy:
    """HTTP/1.1 reverse proxy state shared by every client connection."""

    def __init__(
        self, guard: Any, config: SidecarConfig, metrics: Recorder, log: logging.Logger
    ) -> None:
        self.guard = guard
        self.metrics = metrics
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()  # updated by the sweep: a cheap clock for connection deadlines
        self.connections: set[ClientConnection] = set()
        self.active: set[Exchange] = set()  # exchanges waiting on an upstream
        self._sweeper: asyncio.TimerHandle | None = None
        self.server: asyncio.AbstractServer | None = None
        self.pool = UpstreamPool(config.pool_size, config.connect_timeout_ms / 1000)
        self.config = config
        self.balancer: Balancer = make_balancer(
            config.lb,
            config.upstreams,
            hash_key=config.hash_key,
            slow_start_sec=config.slow_start_sec,
            outlier=config.outlier,
        )
        self.apply(config)

    def apply(self, config: SidecarConfig) -> None:
        """Swap in hot-reloadable settings (everything but the listen addresses)."""
        old = self.config
        self.router = Router(config.routes, config.default_resource)
        self.origin_header = config.origin_header
        self.timeout = config.timeout_ms / 1000
        self.header_timeout = config.client_header_timeout_ms / 1000
        self.keepalive_timeout = config.keepalive_timeout_ms / 1000
        self.max_header_bytes = config.max_header_bytes
        self.max_body_bytes = config.max_body_bytes
        self.pool.pool_size = config.pool_size
        self.pool.connect_timeout = config.connect_timeout_ms / 1000
        if (old.upstreams, old.lb, old.hash_key, old.slow_start_sec, old.outlier) != (
            config.upstreams,
            config.lb,
            config.hash_key,
            config.slow_start_sec,
            config.outlier,
        ):
            # previous=: instances that stay keep their state; new ones ramp up
            self.balancer = make_balancer(
                config.lb,
                config.upstreams,
                hash_key=config.hash_key,
                slow_start_sec=config.slow_start_sec,
                outlier=config.outlier,
                previous=self.balancer,
            )
            self.pool.retain(config.upstreams)
        self.config = config

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (the port is real even when 0 was asked)."""
        host, port = self.config.listen

        def protocol() -> asyncio.Protocol:
            # The compiled twin cannot subclass asyncio.Protocol; it has its methods.
            return cast(asyncio.Protocol, ClientConnection(self, Exchange))

        self.server = await self.loop.create_server(
            protocol, host, port, reuse_address=True, backlog=2048
        )
        self._sweep()
        bound = self.server.sockets[0].getsockname()
        return bound[0], bound[1]

    def _sweep(self) -> None:
        # One timer for every upstream wait instead of one per request.
        self.now = now = self.loop.time()
        timeout = self.timeout
        for ex in list(self.active):
            ex.check_timeout(now, timeout)
        self._sweeper = self.loop.call_later(max(0.01, min(0.1, timeout / 10)), self._sweep)

    async def drain(self, seconds: float) -> int:
        """Stop accepting, let in-flight requests finish for up to ``seconds``.

        :returns: how many connections had to be cut at the deadline.
        """
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        deadline = self.loop.time() + seconds
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        cut = 0
        for conn in list(self.connections):
            conn.abort()
            cut += 1
        self.pool.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        return cut

    def in_flight(self) -> int:
        return sum(1 for c in self.connections if c.current is not None)
