"""The asyncio front of :class:`RedisLock`: the twin of :mod:`locks._sync`, owned per task.

Ownership is task-local: each task's hold lives in a context variable of the lock and is
honoured only in the task that made it, so two tasks sharing one lock object never share a
token (a child task inherits the context but not the hold). Every command runs in an inner
task that a cancellation never interrupts: a cancelled acquire waits for its command, gives
back a lock it got, and only then lets the cancellation through; a cancelled release or extend
finishes first. So no key is ever left that no owner holds, and no renewal keeps running.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from locks import _renew_async, _wait_async
from locks._core import Hold, HoldView, LockCore, Plan, check_timeout, new_token
from locks.errors import LockNotOwnedError, LockTimeoutError

__all__ = ["RedisLock", "run_script", "uninterrupted"]

log = logging.getLogger("locks")
_now = time.monotonic
T = TypeVar("T")


async def run_script(client: Any, plan: Plan) -> Any:
    """EVALSHA the plan; on NOSCRIPT (first use on this server) load the script and retry."""
    script = plan.script
    try:
        return await client.execute_command(
            "EVALSHA", script.sha, len(plan.keys), *plan.keys, *plan.args
        )
    except NoScriptError:
        await client.execute_command("SCRIPT", "LOAD", script.body)
        return await client.execute_command(
            "EVALSHA", script.sha, len(plan.keys), *plan.keys, *plan.args
        )


async def uninterrupted(
    coro: Awaitable[T], on_cancel: Callable[[T], Awaitable[object]] | None = None
) -> T:
    """Await ``coro`` in its own task; a cancellation waits for it to finish, then propagates.

    :param on_cancel: given the result when the caller was cancelled, to undo its effect.
    """
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
            except Exception:
                break
        if on_cancel is not None and not task.cancelled() and task.exception() is None:
            try:
                await uninterrupted(on_cancel(task.result()))
            except Exception:  # the cancellation, not a clean-up error, is what propagates
                log.warning("clean-up after a cancelled lock call failed", exc_info=True)
        raise


class RedisLock(HoldView):
    """A lock on one Redis server, owned by the asyncio task that acquired it.

    :param client: a ``redis.asyncio.Redis`` client.
    :param name: the lock's name (the key is ``lock:{name}``, its fencing counter
        ``lock:{name}:fence``).
    :param ttl: seconds the lock lives unless released or extended.
    :param timeout: default wait of ``acquire()`` and ``async with lock:``; None waits forever.
    :param auto_renew: keep extending the lock every ttl/3 while held.
    :param reentrant: let the owning task acquire again; it frees after as many releases.
    :param on_lost: called with the lock when an automatic renewal fails (may be async).
    :param drift_factor: clock drift allowance; the local deadline is t0 + ttl - drift.
    """

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        ttl: float = 10.0,
        timeout: float | None = None,
        auto_renew: bool = False,
        reentrant: bool = False,
        on_lost: Callable[[RedisLock], object] | None = None,
        drift_factor: float = 0.01,
    ) -> None:
        self._core = LockCore(name, ttl=ttl, reentrant=reentrant, drift_factor=drift_factor)
        self._client = client
        self._clients = [client]
        self.timeout = check_timeout(timeout)
        self.auto_renew = bool(auto_renew)
        self.on_lost = on_lost
        self._var: contextvars.ContextVar[Hold | None] = contextvars.ContextVar(
            f"lock:{name}", default=None
        )

    def _hold(self) -> Hold | None:
        """The calling task's live hold (a hold inherited from a parent task does not count)."""
        hold = self._var.get()
        if hold is None or hold.count <= 0 or hold.owner is not asyncio.current_task():
            return None
        return hold

    # -- properties (name, ttl, token, fencing_token, validity: HoldView) --------------------
    def _current_hold(self) -> Hold | None:
        return self._hold()

    @property
    def reentrant(self) -> bool:
        return self._core.reentrant

    # -- acquire -----------------------------------------------------------------------------
    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock for the calling task.

        :param blocking: False tries once and returns at once.
        :param timeout: longest wait in seconds (default: the lock's ``timeout``; None: forever).
        :returns: True when held, False when the wait ran out.
        """
        wait = check_timeout(timeout) if timeout is not None else self.timeout
        if not blocking:
            return (await self._try())[0]
        deadline = None if wait is None else _now() + wait
        await _wait_async.notifier_for(self._client)  # subscribed before the first try
        key = self._core.key
        # Newcomers queue behind local waiters instead of barging in (near-FIFO hand-over).
        if not _wait_async.has_waiters(self._clients, key) and (await self._try())[0]:
            return True
        queue, me = await _wait_async.join(self._clients, key)
        try:
            pttl = 0.0
            while True:
                if queue.is_head(me):
                    me.clear()
                    held, pttl = await self._try()
                    if held:
                        return True
                remaining = None if deadline is None else deadline - _now()
                if remaining is not None and remaining <= 0:
                    return False
                bound = self._core.wait_bound(pttl, remaining) if queue.is_head(me) else remaining
                try:
                    await asyncio.wait_for(me.wait(), bound)
                except TimeoutError:
                    pass
        finally:
            _wait_async.leave(self._clients, queue, me)

    async def _try(self) -> tuple[bool, float]:
        old = self._hold()
        reuse = self._core.reentrant and old is not None and not old.lost
        token = old.token if reuse and old is not None else new_token()
        t0 = _now()
        plan = self._core.acquire_plan(token)

        async def give_back(reply: Any) -> None:
            hold, _ = self._core.on_acquire(reply, token, t0, old if reuse else None)
            if hold is not None:
                await self._release_hold(hold)

        reply = await uninterrupted(run_script(self._client, plan), give_back)
        hold, pttl = self._core.on_acquire(reply, token, t0, old if reuse else None)
        if hold is None:
            return False, pttl
        if hold is not old:
            hold.owner = asyncio.current_task()
            hold.guard = asyncio.Lock()
            self._var.set(hold)
            if self.auto_renew:
                _renew_async.schedule(self, hold, t0 + self._core.renew_period(hold))
        return True, 0.0

    # -- release / extend ----------------------------------------------------------------------
    async def release(self) -> None:
        """Release one hold of the calling task (the lock frees after the last one).

        :raises LockNotOwnedError: when the calling task does not hold the lock.
        """
        hold = self._hold()
        if hold is None:
            raise self._core.not_owned("release")
        await uninterrupted(self._release_hold(hold))

    async def _release_hold(self, hold: Hold) -> None:
        if hold.guard is None:
            hold.guard = asyncio.Lock()
        async with hold.guard:
            await self._release_locked(hold)

    async def _release_locked(self, hold: Hold) -> None:
        key = self._core.key
        origin = _wait_async.origin_of(self._clients, key)
        reply = await run_script(self._client, self._core.release_plan(hold, origin))
        try:
            freed = self._core.on_release(reply, hold)
        except LockNotOwnedError:
            hold.count = 0
            raise
        if freed:
            _wait_async.wake_local(self._clients, key)

    async def extend(self, ttl: float | None = None) -> bool:
        """Reset the lock's remaining time to ``ttl`` (default: the lock's ttl).

        :returns: True.
        :raises LockNotOwnedError: when the calling task does not hold the lock (an expired
            key is never re-created).
        """
        new_ttl = self._core.extend_ttl(ttl)
        hold = self._hold()
        if hold is None:
            raise self._core.not_owned("extend")
        if not await uninterrupted(self._extend_hold(hold, new_ttl)):
            raise self._core.not_owned("extend")
        return True

    async def _extend_hold(self, hold: Hold, ttl: float) -> bool:
        """Extend; False (and nothing sent) when the hold was released meanwhile."""
        if hold.guard is None:
            hold.guard = asyncio.Lock()
        async with hold.guard:
            if hold.count <= 0:
                return False
            t0 = _now()
            reply = await run_script(self._client, self._core.extend_plan(hold, ttl))
            try:
                self._core.on_extend(reply, hold, t0, ttl)
            except LockNotOwnedError:
                hold.count = 0
                raise
            return True

    async def _renew(self, hold: Hold) -> float | None:
        """Called by the loop's renewal task: extend, or mark the lock lost on first failure."""
        if hold.lost or hold.count <= 0:
            return None
        if hold.owner is not None and hold.owner.done():
            return None  # the owner task ended without releasing: let the lease run out
        t0 = _now()
        try:
            if not await uninterrupted(self._extend_hold(hold, hold.ttl)):
                return None  # released meanwhile
            return t0 + self._core.renew_period(hold)
        except Exception as exc:
            hold.lost = True
            log.warning("lock %s lost: renewal failed: %s", self.name, exc)
        if self.on_lost is not None:
            try:
                result = self.on_lost(self)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("lock %s: on_lost callback failed", self.name)
        return None

    # -- queries -----------------------------------------------------------------------------
    async def locked(self) -> bool:
        """True when anyone holds the lock."""
        return bool(await self._client.exists(self._core.key))

    async def owned(self) -> bool:
        """True when the calling task holds the lock (False once its local deadline passed)."""
        hold = self._hold()
        if hold is None or hold.validity(_now()) <= 0:
            return False
        reply = await self._client.execute_command(*self._core.owned_command(hold))
        return self._core.on_owned(reply, hold)

    # -- context manager -----------------------------------------------------------------------
    async def __aenter__(self) -> RedisLock:
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
            if exc is None:  # never hide the body's own exception behind this one
                raise

    def __repr__(self) -> str:
        return f"<aio RedisLock {self.name!r} ttl={self.ttl}>"
