"""The moving parts of ``guard demo``: demo upstream instances, the sidecar, the load.

Everything runs on one event loop in a background thread, on free loopback ports, so the
main thread is free to draw. ``DemoWorld.start()`` returns once the proxy and the admin API
listen; ``stop()`` drains and closes everything.

The schedule repeats every ``CYCLE_SEC`` seconds of demo time:

- instance ``flaky`` answers 500 to everything from 2 s to 5 s: passive health ejects it
  (2 s, then 4 s: growing intervals), and it comes back under a 3 s slow start;
- every instance answers 500 on ``/api/report`` from 3 s to 6 s (a dependency outage): the
  ``demo.report`` breaker opens, probes while the outage lasts, then closes;
- instance ``slow`` takes about 60 ms where the others take 3 ms.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

__all__ = ["CYCLE_SEC", "DEMO_CONFIG", "INSTANCES", "OFFERED", "DemoWorld"]

CYCLE_SEC = 10.0
# name -> (weight, delay seconds)
INSTANCES = {"fast": (2, 0.003), "slow": (1, 0.06), "flaky": (1, 0.003)}
# resource -> (method, path, requests per second offered)
OFFERED = {
    "demo.search": ("GET", "/api/search", 60),
    "demo.checkout": ("POST", "/api/checkout", 60),
    "demo.report": ("GET", "/api/report", 25),
}

DEMO_CONFIG: dict[str, Any] = {
    "flow": [
        {"resource": "demo.search", "count": 40},
        {"resource": "demo.checkout", "count": 40, "control": "warm_up", "warm_up_sec": 5},
    ],
    "degrade": [
        {
            "resource": "demo.report",
            "strategy": "error_ratio",
            "threshold": 0.3,
            "min_requests": 5,
            "recovery_sec": 1,
            "stat_interval_ms": 1000,
        }
    ],
    "sidecar": {
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "lb": "round_robin",
        "slow_start_sec": 3,
        "outlier": {"consecutive_failures": 3, "base_ejection_sec": 2, "max_ejection_sec": 8},
        "timeout_ms": 5000,
        "routes": [
            {"prefix": "/api/search", "resource": "demo.search"},
            {"prefix": "/api/checkout", "methods": ["POST"], "resource": "demo.checkout"},
            {"prefix": "/api/report", "resource": "demo.report"},
        ],
        "default_resource": "demo.other",
    },
}

RULE_NOTES = {
    "demo.search": "QPS 40, reject",
    "demo.checkout": "QPS 40, warm-up 5 s",
    "demo.report": "breaker: error ratio > 30%",
}


class DemoWorld:
    """Demo upstreams + sidecar + load generator on one loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.t0 = 0.0
        self.upstream_urls: dict[str, str] = {}  # name -> url
        self.client_counts: dict[str, collections.Counter[int]] = {
            r: collections.Counter() for r in OFFERED
        }
        self.sidecar: Any = None
        self.proxy_address: tuple[str, int] = ("", 0)
        self.admin_address: tuple[str, int] = ("", 0)
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._dir = tempfile.TemporaryDirectory(prefix="guard-demo-")
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._error: BaseException | None = None

    def now(self) -> float:
        """Seconds of demo time."""
        return time.monotonic() - self.t0

    # -- lifecycle (called from the main thread) ----------------------------------------
    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self._dir.cleanup()

    # -- on the loop ----------------------------------------------------------------------
    async def _start(self) -> None:
        from ext.admin.app import start_admin
        from ext.sidecar.proxy import Proxy
        from ext.sidecar.service import Sidecar

        self.t0 = time.monotonic()
        for name, (_, delay) in INSTANCES.items():
            self.upstream_urls[name] = await self._serve_instance(name, delay)
        config = dict(DEMO_CONFIG)
        config["sidecar"] = {
            **DEMO_CONFIG["sidecar"],
            "upstreams": [
                {"url": self.upstream_urls[n], "weight": w} for n, (w, _) in INSTANCES.items()
            ],
        }
        path = Path(self._dir.name) / "guard.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        log = logging.getLogger("guard.demo")
        log.propagate = False
        log.addHandler(logging.NullHandler())
        sidecar = Sidecar(path)
        cfg = sidecar.loaded.sidecar
        assert cfg is not None
        sidecar.proxy = Proxy(sidecar.guard, cfg, sidecar.metrics, log)
        self.proxy_address = await sidecar.proxy.start()
        runner, self.admin_address = await start_admin(sidecar, *cfg.admin)
        self._runners.append(runner)
        self.sidecar = sidecar
        self.t0 = time.monotonic()  # the schedule counts from when traffic starts
        session = ClientSession(connector=TCPConnector(limit=200), timeout=ClientTimeout(total=10))
        self._session = session
        for resource, (method, path_, rate) in OFFERED.items():
            self._tasks.append(
                self.loop.create_task(self._drive(session, resource, method, path_, rate))
            )

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if getattr(self, "_session", None) is not None:
            await self._session.close()
        if self.sidecar is not None and self.sidecar.proxy is not None:
            self.sidecar.draining = True
            await self.sidecar.proxy.drain(1.0)
        for runner in self._runners:
            await runner.cleanup()

    async def _serve_instance(self, name: str, delay: float) -> str:
        async def handle(request: web.Request) -> web.Response:
            t = self.now() % CYCLE_SEC
            await asyncio.sleep(delay)
            if name == "flaky" and 2.0 <= t < 5.0:
                return web.json_response({"instance": name, "error": "crashing"}, status=500)
            if request.path.startswith("/api/report") and 3.0 <= t < 6.0:
                return web.json_response({"instance": name, "error": "db down"}, status=500)
            return web.json_response({"instance": name, "path": request.path})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def _drive(
        self, session: ClientSession, resource: str, method: str, path: str, rate: int
    ) -> None:
        """Offer ``rate`` requests a second, evenly spaced, never waiting for answers."""
        url = f"http://{self.proxy_address[0]}:{self.proxy_address[1]}{path}"
        counts = self.client_counts[resource]
        interval = 1.0 / rate
        pending: set[asyncio.Task[Any]] = set()

        async def one() -> None:
            try:
                async with session.request(method, url) as resp:
                    await resp.read()
                    counts[resp.status] += 1
            except Exception:
                counts[0] += 1  # no answer

        next_at = self.loop.time()
        while True:
            task = self.loop.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - self.loop.time()))

    # -- reading (from the main thread) ---------------------------------------------------
    def upstream_name(self, url: str) -> str:
        for name, u in self.upstream_urls.items():
            if u == url:
                return name
        return url
