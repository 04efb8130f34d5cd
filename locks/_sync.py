"""The sync front of :class:`RedisLock`: it only sends, waits and sleeps; the core decides."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from redis.exceptions import NoScriptError

from locks import _renew_sync, _wait_sync
from locks._core import Hold, HoldView, LockCore, Plan, check_timeout, new_token
from locks.errors import LockNotOwnedError, LockTimeoutError

__all__ = ["RedisLock", "run_script"]

log = logging.getLogger("locks")
_now = time.monotonic


def run_script(client: Any, plan: Plan) -> Any:
    """EVALSHA the plan; on NOSCRIPT (first use on this server) load the script and retry."""
    script = plan.script
    try:
        return client.execute_command("EVALSHA", script.sha, len(plan.keys), *plan.keys, *plan.args)
    except NoScriptError:
        client.execute_command("SCRIPT", "LOAD", script.body)
        return client.execute_command("EVALSHA", script.sha, len(plan.keys), *plan.keys, *plan.args)


class RedisLock(HoldView):
    """A lock on one Redis server, owned by this instance.

    :param client: a ``redis.Redis`` client.
    :param name: the lock's name (the key is ``lock:{name}``, its fencing counter
        ``lock:{name}:fence``).
    :param ttl: seconds the lock lives unless released or extended.
    :param timeout: default wait of ``acquire()`` and ``with lock:``; None waits forever.
    :param auto_renew: keep extending the lock every ttl/3 while held.
    :param reentrant: let this owner acquire again; it frees after as many releases.
    :param on_lost: called with the lock when an automatic renewal fails.
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
        self._hold: Hold | None = None
        # Serialises state changes with the renewal thread, so a release racing a renewal is
        # never mistaken for a lost lock.
        self._mutex = threading.Lock()

    # -- properties (name, ttl, token, fencing_token, validity: HoldView) --------------------
    def _current_hold(self) -> Hold | None:
        return self._hold

    @property
    def reentrant(self) -> bool:
        return self._core.reentrant

    # -- acquire -----------------------------------------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock.

        :param blocking: False tries once and returns at once.
        :param timeout: longest wait in seconds (default: the lock's ``timeout``; None: forever).
        :returns: True when held, False when the wait ran out.
        """
        wait = check_timeout(timeout) if timeout is not None else self.timeout
        if not blocking:
            return self._try()[0]
        deadline = None if wait is None else _now() + wait
        _wait_sync.notifier_for(self._client)  # subscribed before the first try
        # Newcomers queue behind local waiters instead of barging in (near-FIFO hand-over).
        if not _wait_sync.has_waiters(self._clients, self._core.key) and self._try()[0]:
            return True
        queue, me = _wait_sync.join(self._clients, self._core.key)
        held = False
        try:
            pttl = 0.0
            while True:
                if queue.is_head(me):
                    hint = _wait_sync.take_hint(queue, me)
                    if hint is not None:
                        pttl = hint  # a thread of ours just took it: wait for its release
                    else:
                        me.clear()
                        held, pttl = self._try()
                        if held:
                            return True
                remaining = None if deadline is None else deadline - _now()
                if remaining is not None and remaining <= 0:
                    return False
                if queue.is_head(me):
                    me.wait(self._core.wait_bound(pttl, remaining))
                else:
                    me.wait(remaining)
        finally:
            _wait_sync.leave(self._clients, queue, me, self._core.ttl if held else None)

    def _try(self) -> tuple[bool, float]:
        old = self._hold
        reuse = self._core.reentrant and old is not None and not old.lost
        token = old.token if reuse and old is not None else new_token()
        t0 = _now()
        reply = run_script(self._client, self._core.acquire_plan(token))
        hold, pttl = self._core.on_acquire(reply, token, t0, old if reuse else None)
        if hold is None:
            return False, pttl
        if hold is not old:
            self._hold = hold
            if self.auto_renew:
                _renew_sync.schedule(self, hold, t0 + self._core.renew_period(hold))
        return True, 0.0

    # -- release / extend ----------------------------------------------------------------------
    def release(self) -> None:
        """Release one hold (the lock frees when the last reentrant hold goes).

        :raises LockNotOwnedError: when this owner does not hold the lock.
        """
        hold = self._hold
        if hold is None:
            raise self._core.not_owned("release")
        key = self._core.key
        with self._mutex:
            origin = _wait_sync.origin_of(self._clients, key)
            try:
                reply = run_script(self._client, self._core.release_plan(hold, origin))
                freed = self._core.on_release(reply, hold)
            except LockNotOwnedError:
                self._drop(hold)
                raise
            if freed:
                self._drop(hold)
                _wait_sync.wake_local(self._clients, key)

    def extend(self, ttl: float | None = None) -> bool:
        """Reset the lock's remaining time to ``ttl`` (default: the lock's ttl).

        :returns: True.
        :raises LockNotOwnedError: when this owner does not hold the lock (an expired key is
            never re-created).
        """
        new_ttl = self._core.extend_ttl(ttl)
        hold = self._hold
        if hold is None:
            raise self._core.not_owned("extend")
        with self._mutex:
            t0 = _now()
            reply = run_script(self._client, self._core.extend_plan(hold, new_ttl))
            try:
                self._core.on_extend(reply, hold, t0, new_ttl)
            except LockNotOwnedError:
                self._drop(hold)
                raise
        return True

    def _drop(self, hold: Hold) -> None:
        hold.count = 0
        if self._hold is hold:
            self._hold = None

    def _renew(self, hold: Hold) -> float | None:
        """Called by the renewal thread: extend, or mark the lock lost on the first failure."""
        with self._mutex:
            if self._hold is not hold or hold.lost or hold.count == 0:
                return None
            t0 = _now()
            try:
                reply = run_script(self._client, self._core.extend_plan(hold, hold.ttl))
                self._core.on_extend(reply, hold, t0, hold.ttl)
                return t0 + self._core.renew_period(hold)
            except Exception as exc:
                hold.lost = True
                log.warning("lock %s lost: renewal failed: %s", self.name, exc)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                log.exception("lock %s: on_lost callback failed", self.name)
        return None

    # -- queries -----------------------------------------------------------------------------
    def locked(self) -> bool:
        """True when anyone holds the lock."""
        return bool(self._client.exists(self._core.key))

    def owned(self) -> bool:
        """True when this owner holds the lock (False once the local deadline has passed)."""
        hold = self._hold
        if hold is None or hold.validity(_now()) <= 0:
            return False
        reply = self._client.execute_command(*self._core.owned_command(hold))
        return self._core.on_owned(reply, hold)

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> RedisLock:
        if not self.acquire(timeout=self.timeout):
            raise LockTimeoutError(f"{self.name}: not acquired within {self.timeout} s", self.name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except LockNotOwnedError:
            if exc is None:  # never hide the body's own exception behind this one
                raise

    def __repr__(self) -> str:
        return f"<RedisLock {self.name!r} ttl={self.ttl} held={self._hold is not None}>"
