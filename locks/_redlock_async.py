"""The asyncio front of :class:`Redlock`: the twin of :mod:`locks._redlock_sync`, owned per task."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from locks import _renew_async, _wait_async
from locks._async import uninterrupted
from locks._core import (
    Hold,
    HoldView,
    Plan,
    RedlockCore,
    check_timeout,
    new_token,
    node_timeout_for,
)
from locks._fanout_async import fanout, later
from locks.errors import LockNotOwnedError, LockTimeoutError

__all__ = ["Redlock"]

log = logging.getLogger("locks")
_now = time.monotonic


class Redlock(HoldView):
    """The Redlock algorithm over N independent masters, owned by the acquiring asyncio task.

    :param clients: one ``redis.asyncio.Redis`` per master (no replication between them).
    :param name: the lock's name (same keys as :class:`RedisLock` on every master).
    :param ttl: seconds the lock lives on each master.
    :param timeout: default wait of ``acquire()`` and ``async with lock:``; None waits forever.
    :param retry_delay: upper bound of the jittered pause between rounds (woken early by releases).
    :param retry_count: when set, at most this many rounds after the first.
    :param drift_factor: validity = ttl - elapsed - (ttl * drift_factor + 2 ms).
    :param auto_renew: keep extending the lock every ttl/3 while held.
    :param node_timeout: per-master wait of one round (default: 1% of ttl, within 20-100 ms).
    :param on_lost: called with the lock when an automatic renewal fails (may be async).
    """

    def __init__(
        self,
        clients: Iterable[Any],
        name: str,
        *,
        ttl: float = 10.0,
        timeout: float | None = None,
        retry_delay: float = 0.2,
        retry_count: int | None = None,
        drift_factor: float = 0.01,
        auto_renew: bool = False,
        node_timeout: float | None = None,
        on_lost: Callable[[Redlock], object] | None = None,
    ) -> None:
        self._clients = list(clients)
        self._core = RedlockCore(
            name,
            len(self._clients),
            ttl=ttl,
            retry_delay=retry_delay,
            retry_count=retry_count,
            drift_factor=drift_factor,
        )
        self.node_timeout: float = node_timeout_for(self._core.ttl, node_timeout)
        self.timeout = check_timeout(timeout)
        self.auto_renew = bool(auto_renew)
        self.on_lost = on_lost
        self._var: contextvars.ContextVar[Hold | None] = contextvars.ContextVar(
            f"redlock:{name}", default=None
        )

    def _hold(self) -> Hold | None:
        hold = self._var.get()
        if hold is None or hold.count <= 0 or hold.owner is not asyncio.current_task():
            return None
        return hold

    # -- properties (name, ttl, token, fencing_token, validity: HoldView) --------------------
    def _current_hold(self) -> Hold | None:
        return self._hold()

    # -- acquire -----------------------------------------------------------------------------
    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock on a majority of the masters for the calling task.

        :param blocking: False runs one round over the masters and returns.
        :param timeout: longest wait in seconds (default: the lock's ``timeout``; None: forever).
        :returns: True when held, False when the wait or ``retry_count`` ran out.
        """
        wait = check_timeout(timeout) if timeout is not None else self.timeout
        if not blocking:
            return await self._round()
        deadline = None if wait is None else _now() + wait
        for client in self._clients:
            await _wait_async.notifier_for(client)
        key = self._core.key
        if not _wait_async.has_waiters(self._clients, key) and await self._round():
            return True
        queue, me = await _wait_async.join(self._clients, key)
        rounds = 0
        try:
            while True:
                remaining = None if deadline is None else deadline - _now()
                if remaining is not None and remaining <= 0:
                    return False
                if not queue.is_head(me):
                    await _wait(me, remaining)
                    continue
                if rounds > 0 or not me.is_set():
                    await _wait(me, self._core.retry_wait(remaining))  # a release cuts it short
                rounds += 1
                if self._core.rounds_exhausted(rounds):
                    return False
                me.clear()
                if await self._round():
                    return True
        finally:
            _wait_async.leave(self._clients, queue, me)

    async def _round(self) -> bool:
        token = new_token()

        async def give_back(hold: Hold | None) -> None:
            if hold is not None:
                await self._release_io(hold)

        hold = await uninterrupted(self._round_io(token), give_back)
        if hold is None:
            return False
        hold.owner = asyncio.current_task()
        hold.guard = asyncio.Lock()
        self._var.set(hold)
        if self.auto_renew:
            _renew_async.schedule(self, hold, _now() + self._core.renew_period(hold))
        return True

    async def _round_io(self, token: str) -> Hold | None:
        core = self._core
        t0 = _now()
        plan = core.acquire_plan(token)
        replies, tasks = await fanout(
            self._clients, [plan] * core.n, self.node_timeout, core.round_done
        )
        granted, fences, _ = core.read_acquire_round(replies)
        if len(granted) >= core.quorum:
            fence = max(fences)
            ok = fences.count(fence) >= core.quorum or await self._write_back(fence)
            if ok and core.validity_after(t0, _now()) > 0:
                hold = Hold(token, fence, t0 + core.ttl - core.drift, core.ttl)
                hold.pending = [t for t in tasks if t is not None and not t.done()]
                return hold
        # Undo the round on every master that may hold it. A late master gets its release only
        # after its acquire command finished: sent sooner, on another connection, the release
        # could run first and leave the key behind.
        release = core.release_plan(Hold(token, 0, 0.0, core.ttl), "-")
        now: list[Plan | None] = [None] * core.n
        for i, task in enumerate(tasks):
            if task is None:
                continue
            if not task.done():
                later(task, self._clients[i], release)
            elif not core.refused(task.result()):
                now[i] = release
        await fanout(self._clients, now, self.node_timeout)
        return None

    async def _write_back(self, fence: int) -> bool:
        core = self._core
        replies, _ = await fanout(
            self._clients,
            [core.fence_plan(fence)] * core.n,
            self.node_timeout,
            lambda rs: core.count_ok(rs, fence) >= core.quorum,
        )
        return core.count_ok(replies, fence) >= core.quorum

    # -- release / extend ----------------------------------------------------------------------
    async def _settle(self, hold: Hold) -> None:
        """Let acquire commands still in flight land before following them up."""
        if hold.pending:
            await asyncio.wait(hold.pending, timeout=self.node_timeout)
            hold.pending = None

    async def release(self) -> None:
        """Release the calling task's lock on every master.

        :raises LockNotOwnedError: when the validity had run out or a majority of the masters
            no longer held it for this owner.
        """
        hold = self._hold()
        if hold is None:
            raise self._core.not_owned("release")
        await uninterrupted(self._release_io(hold))

    async def _release_io(self, hold: Hold) -> None:
        core = self._core
        guard = hold.guard if hold.guard is not None else contextlib.nullcontext()
        async with guard:
            await self._settle(hold)
            valid = hold.validity(_now()) > 0
            plan = core.release_plan(hold, _wait_async.origin_of(self._clients, core.key))
            replies, _ = await fanout(self._clients, [plan] * core.n, self.node_timeout)
            hold.count = 0
            _wait_async.wake_local(self._clients, core.key)
        refused = sum(1 for r in replies if r is not None and r == 0)
        if not valid or refused >= core.quorum:
            raise core.not_owned("release")

    async def extend(self, ttl: float | None = None) -> bool:
        """Reset the remaining time on every master to ``ttl`` (default: the lock's ttl).

        :returns: True.
        :raises LockNotOwnedError: when not held, or a majority did not extend it in time.
        """
        core = self._core
        new_ttl = core.extend_ttl(ttl)
        hold = self._hold()
        if hold is None:
            raise core.not_owned("extend")
        if not await uninterrupted(self._extend_io(hold, new_ttl)):
            raise core.not_owned("extend")
        return True

    async def _extend_io(self, hold: Hold, ttl: float) -> bool:
        core = self._core
        async with hold.guard:
            if hold.count <= 0:
                return False
            await self._settle(hold)
            t0 = _now()
            if hold.validity(t0) <= 0:
                hold.lost = True
                raise core.not_owned("extend")
            replies, _ = await fanout(
                self._clients,
                [core.extend_plan(hold, ttl)] * core.n,
                self.node_timeout,
                lambda rs: core.count_ok(rs) >= core.quorum,
            )
            if core.count_ok(replies) < core.quorum or core.validity_after(t0, _now(), ttl) <= 0:
                hold.lost = True
                raise core.not_owned("extend")
            core.on_extend(1, hold, t0, ttl)
            return True

    async def _renew(self, hold: Hold) -> float | None:
        """Called by the loop's renewal task: extend, or mark the lock lost on first failure."""
        if hold.lost or hold.count <= 0:
            return None
        if hold.owner is not None and hold.owner.done():
            return None  # the owner task ended without releasing: let the lease run out
        t0 = _now()
        try:
            if not await uninterrupted(self._extend_io(hold, hold.ttl)):
                return None
            return t0 + self._core.renew_period(hold)
        except Exception as exc:
            hold.lost = True
            log.warning("redlock %s lost: renewal failed: %s", self.name, exc)
        if self.on_lost is not None:
            try:
                result = self.on_lost(self)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("redlock %s: on_lost callback failed", self.name)
        return None

    # -- queries -----------------------------------------------------------------------------
    async def locked(self) -> bool:
        """True when a majority of the masters hold the lock for someone."""
        core = self._core
        replies, _ = await fanout(self._clients, [("EXISTS", core.key)] * core.n, self.node_timeout)
        return core.count_ok(replies) >= core.quorum

    async def owned(self) -> bool:
        """True when the calling task holds the lock on a majority, within its validity."""
        hold = self._hold()
        if hold is None or hold.validity(_now()) <= 0:
            return False
        core = self._core
        replies, _ = await fanout(self._clients, [("GET", core.key)] * core.n, self.node_timeout)
        mine = sum(1 for r in replies if core.on_owned_reply(r, hold))
        return mine >= core.quorum and hold.validity(_now()) > 0

    # -- context manager -----------------------------------------------------------------------
    async def __aenter__(self) -> Redlock:
        if not await self.acquire(timeout=self.timeout):
            raise LockTimeoutError(f"{self.name}: not acquired within {self.timeout} s", self.name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        except LockNotOwnedError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"<aio Redlock {self.name!r} masters={len(self._clients)}>"


async def _wait(event: asyncio.Event, timeout: float | None) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pass
