"""The running sidecar: config in force, reloads, PUT write-back, lifecycle and signals.

One ``Sidecar`` owns the engine, the proxy, the admin API and the file watcher. Rules
change in exactly two ways, both here: a reload of the file (watcher or SIGHUP) and
``PUT /api/rules``. Each bumps ``generation``; the ETag of ``GET /api/rules`` carries it,
so a client editing with ``If-Match`` never overwrites a change it has not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ext.admin.metrics import Recorder
from ext.sidecar.balancer import POLICIES
from ext.sidecar.configfile import LoadedConfig, file_digest, read_config, write_config
from ext.sidecar.proxy import Proxy
from guard import Guard, RuleError
from guard.rules import parse_config

__all__ = ["PutResult", "Sidecar"]

log = logging.getLogger("guard.sidecar")


def _check_runnable(loaded: LoadedConfig) -> None:
    """Problems that only running (not ``guard check``) cares about.

    :raises RuleError: e.g. a load-balancing policy this build does not have.
    """
    assert loaded.sidecar is not None
    if loaded.sidecar.lb not in POLICIES:
        raise RuleError(
            [
                f"sidecar.lb: {loaded.sidecar.lb!r} is not available in this build; "
                f"use one of {', '.join(POLICIES)}"
            ]
        )


class PutResult:
    """Outcome of ``Sidecar.put_rules``: HTTP status, JSON body, ETag."""

    def __init__(self, status: int, body: dict[str, Any], etag: str | None = None) -> None:
        self.status = status
        self.body = body
        self.etag = etag


class Sidecar:
    """A sidecar built from one config file.

    :param path: the guard.yaml path.
    :raises RuleError: when the file is missing or invalid (every problem located).
    """

    def __init__(self, path: str | Path, *, guard: Guard | None = None) -> None:
        self.path = Path(path)
        self.loaded: LoadedConfig = read_config(self.path, require_sidecar=True)
        assert self.loaded.sidecar is not None
        _check_runnable(self.loaded)
        self.guard = guard if guard is not None else Guard()
        self.guard.load_rules(self.loaded.rules)
        self.metrics = Recorder()
        self.metrics.generation = 1
        self.proxy: Proxy | None = None
        self.draining = False
        self.stop_event: asyncio.Event | None = None
        self.proxy_address: tuple[str, int] | None = None
        self.admin_address: tuple[str, int] | None = None

    # -- state -------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self.metrics.generation

    @property
    def etag(self) -> str:
        return f'"{self.generation}-{self.loaded.digest[:12]}"'

    def ready(self) -> bool:
        """Ready once rules are loaded and the upstream pool exists, until draining."""
        return self.proxy is not None and not self.draining

    # -- reload ------------------------------------------------------------------------
    def reload(self, reason: str = "file changed") -> bool:
        """Re-read the file; keep the last good config when it is bad.

        :returns: True when the file is valid (changed or not).
        """
        try:
            new = read_config(self.path, require_sidecar=True)
        except RuleError as exc:
            self.metrics.reload(False)
            for problem in exc.errors:
                log.error("%s: %s (keeping the last good rules)", self.path, problem)
            return False
        if new.digest == self.loaded.digest:
            return True  # our own write-back, or a touch
        try:
            _check_runnable(new)
        except RuleError as exc:
            self.metrics.reload(False)
            for problem in exc.errors:
                log.error("%s: %s (keeping the last good rules)", self.path, problem)
            return False
        old = self.loaded
        assert new.sidecar is not None and old.sidecar is not None
        for key in ("listen", "admin"):
            if getattr(new.sidecar, key) != getattr(old.sidecar, key):
                log.warning("%s: sidecar.%s changed; takes effect on restart", self.path, key)
        try:
            self.guard.load_rules(new.rules)
            if self.proxy is not None:
                self.proxy.apply(new.sidecar)
        except (RuleError, ValueError) as exc:
            self.metrics.reload(False)
            log.error("%s: %s (keeping the last good rules)", self.path, exc)
            return False
        self.loaded = new
        self.metrics.generation += 1
        self.metrics.reload(True)
        log.info("%s: reloaded (%s), generation %d", self.path, reason, self.generation)
        return True

    def put_rules(self, data: Any, if_match: str | None) -> PutResult:
        """Replace every rule section, write the file back atomically, then swap.

        :param data: decoded JSON body, the rule file's shape without ``sidecar``.
        :param if_match: the request's If-Match header, if any.
        """
        if not isinstance(data, Mapping):
            return PutResult(400, {"error": "invalid_rules", "errors": ["body: must be an object"]})
        if "sidecar" in data:
            return PutResult(
                400,
                {
                    "error": "invalid_rules",
                    "errors": ["sidecar: not accepted here; edit the config file"],
                },
            )
        if if_match is not None and if_match.strip() not in ("*", self.etag):
            return PutResult(412, {"error": "precondition_failed", "etag": self.etag}, self.etag)
        try:
            rules, _ = parse_config(dict(data))
        except RuleError as exc:
            return PutResult(400, {"error": "invalid_rules", "errors": exc.errors})
        if file_digest(self.path) != self.loaded.digest:
            # Someone edited the file and the watcher has not caught up: do not clobber it.
            return PutResult(
                409,
                {"error": "conflict", "detail": "the config file changed on disk; retry"},
                self.etag,
            )
        try:
            digest = write_config(
                self.path, rules.to_dict(), self.loaded.sidecar_raw, is_json=self.loaded.is_json
            )
        except OSError as exc:
            log.error("%s: write-back failed: %s", self.path, exc)
            return PutResult(500, {"error": "write_failed", "detail": str(exc)})
        self.guard.load_rules(rules)
        self.loaded = LoadedConfig(
            rules, self.loaded.sidecar, self.loaded.sidecar_raw, digest, self.loaded.is_json
        )
        self.metrics.generation += 1
        self.metrics.reload(True)
        log.info("%s: rules replaced by PUT /api/rules, generation %d", self.path, self.generation)
        return PutResult(200, self.guard.rules.to_dict(), self.etag)

    def _start_redis_rules(self) -> Any:
        """Follow ``sidecar: rules_redis`` if configured: pushes replace the rules in force.

        Whichever comes last wins: a push over Redis, or an edit of the file (re-read on
        change). The pushes are not written back to the file.
        """
        cfg = self.loaded.sidecar
        assert cfg is not None
        if not cfg.rules_redis:
            return None
        from ext.sources.redis import RedisRuleSource

        def counted(ok: bool, error: Any) -> None:
            self.metrics.reload(ok)
            if ok:
                self.metrics.generation += 1

        source = RedisRuleSource.from_url(
            cfg.rules_redis["url"],
            self.guard,
            cfg.rules_redis.get("key", "guard:rules"),
            on_result=counted,
        )
        return source.start()

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self, *, poll_interval: float | None = None) -> int:
        """Serve until SIGTERM/SIGINT, then drain; returns the exit code."""
        from ext.admin.app import start_admin
        from ext.sources.file import watch_file

        cfg = self.loaded.sidecar
        assert cfg is not None
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.proxy = Proxy(self.guard, cfg, self.metrics, log)
        self.proxy_address = await self.proxy.start()
        runner, self.admin_address = await start_admin(self, *cfg.admin)
        rules_source = self._start_redis_rules()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.reload("SIGHUP"))
        watcher = loop.create_task(
            watch_file(self.path, self.reload, self.stop_event, poll_interval=poll_interval)
        )
        # The watcher starts a moment after this point; re-check the file once it surely
        # runs, so an edit made between the first read and the watch is not missed.
        for delay in (0.25, 1.0):
            loop.call_later(delay, self.reload, "startup check")
        log.info(
            "guard sidecar: proxy on %s:%d admin on %s:%d (config %s)",
            *self.proxy_address,
            *self.admin_address,
            self.path,
        )
        await self.stop_event.wait()
        self.draining = True
        drain_sec = self.proxy.config.drain_sec
        log.info("draining: %d request(s) in flight, up to %gs", self.proxy.in_flight(), drain_sec)
        cut = await self.proxy.drain(drain_sec)
        if cut:
            log.warning("drain deadline reached: %d connection(s) cut", cut)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if rules_source is not None:
            rules_source.stop()
        await runner.cleanup()
        log.info("stopped")
        return 0
