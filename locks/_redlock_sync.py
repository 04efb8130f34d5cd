"""The sync front of :class:`Redlock`: multiplexed rounds over N masters, decided by the core."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from locks import _renew_sync, _wait_sync
from locks._core import Hold, HoldView, RedlockCore, check_timeout, new_token, node_timeout_for
from locks._fanout_sync import fanout, master_for
from locks.errors import LockNotOwnedError, LockTimeoutError

__all__ = ["Redlock"]

log = logging.getLogger("locks")
_now = time.monotonic


class Redlock(HoldView):
    """The Redlock algorithm over N independent Redis masters (quorum N//2+1).

    :param clients: one ``redis.Redis`` per master (no replication between them).
    :param name: the lock's name (same keys as :class:`RedisLock` on every master).
    :param ttl: seconds the lock lives on each master.
    :param timeout: default wait of ``acquire()`` and ``with lock:``; None waits forever.
    :param retry_delay: upper bound of the jittered pause between rounds (woken early by releases).
    :param retry_count: when set, at most this many rounds after the first.
    :param drift_factor: validity = ttl - elapsed - (ttl * drift_factor + 2 ms).
    :param auto_renew: keep extending the lock every ttl/3 while held.
    :param node_timeout: per-master wait of one round (default: 1% of ttl, within 20-100 ms).
    :param on_lost: called with the lock when an automatic renewal fails.
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
        self._masters = [master_for(c, self.node_timeout) for c in self._clients]
        self.timeout = check_timeout(timeout)
        self.auto_renew = bool(auto_renew)
        self.on_lost = on_lost
        self._hold: Hold | None = None
        self._mutex = threading.Lock()

    # -- properties (name, ttl, token, fencing_token, validity: HoldView) --------------------
    def _current_hold(self) -> Hold | None:
        return self._hold

    # -- acquire -----------------------------------------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock on a majority of the masters.

        :param blocking: False runs one round over the masters and returns.
        :param timeout: longest wait in seconds (default: the lock's ``timeout``; None: forever).
        :returns: True when held, False when the wait or ``retry_count`` ran out.
        """
        wait = check_timeout(timeout) if timeout is not None else self.timeout
        if not blocking:
            return self._round()
        deadline = None if wait is None else _now() + wait
        for client in self._clients:
            _wait_sync.notifier_for(client)
        key = self._core.key
        if not _wait_sync.has_waiters(self._clients, key) and self._round():
            return True
        queue, me = _wait_sync.join(self._clients, key)
        rounds = 0
        try:
            while True:
                remaining = None if deadline is None else deadline - _now()
                if remaining is not None and remaining <= 0:
                    return False
                if not queue.is_head(me):
                    me.wait(remaining)
                    continue
                if rounds > 0 or not me.is_set():
                    me.wait(self._core.retry_wait(remaining))  # a release cuts this short
                rounds += 1
                if self._core.rounds_exhausted(rounds):
                    return False
                me.clear()
                if self._round():
                    return True
        finally:
            _wait_sync.leave(self._clients, queue, me)

    def _round(self) -> bool:
        core = self._core
        token = new_token()
        t0 = _now()
        plan = core.acquire_plan(token)
        replies = fanout(self._masters, [plan] * core.n, self.node_timeout, core.round_done)
        granted, fences, _ = core.read_acquire_round(replies)
        if len(granted) >= core.quorum:
            fence = max(fences)
            ok = fences.count(fence) >= core.quorum or self._write_back(fence)
            if ok and core.validity_after(t0, _now()) > 0:
                hold = Hold(token, fence, t0 + core.ttl - core.drift, core.ttl)
                self._hold = hold
                if self.auto_renew:
                    _renew_sync.schedule(self, hold, t0 + core.renew_period(hold))
                return True
        self._cleanup(token)
        return False

    def _write_back(self, fence: int) -> bool:
        """Raise the fencing counters of a majority to ``fence`` (a max-register)."""
        core = self._core
        plan = core.fence_plan(fence)
        replies = fanout(
            self._masters,
            [plan] * core.n,
            self.node_timeout,
            lambda rs: core.count_ok(rs, fence) >= core.quorum,
        )
        return core.count_ok(replies, fence) >= core.quorum

    def _cleanup(self, token: str) -> None:
        """Undo a failed round on every master, late ones included (queued behind their backlog)."""
        hold = Hold(token, 0, 0.0, self._core.ttl)
        plan = self._core.release_plan(hold, "-")
        fanout(self._masters, [plan] * self._core.n, self.node_timeout, wait_late=False)

    # -- release / extend ----------------------------------------------------------------------
    def release(self) -> None:
        """Release the lock on every master.

        :raises LockNotOwnedError: when the lock's validity had run out or a majority of the
            masters no longer held it for this owner.
        """
        hold = self._hold
        if hold is None:
            raise self._core.not_owned("release")
        core = self._core
        with self._mutex:
            valid = hold.validity(_now()) > 0
            origin = _wait_sync.origin_of(self._clients, core.key)
            plan = core.release_plan(hold, origin)
            replies = fanout(self._masters, [plan] * core.n, self.node_timeout, wait_late=False)
            hold.count = 0
            if self._hold is hold:
                self._hold = None
            _wait_sync.wake_local(self._clients, core.key)
            refused = sum(1 for r in replies if r is not None and r == 0)
            if not valid or refused >= core.quorum:
                raise core.not_owned("release")

    def extend(self, ttl: float | None = None) -> bool:
        """Reset the remaining time on every master to ``ttl`` (default: the lock's ttl).

        :returns: True.
        :raises LockNotOwnedError: when not held, or a majority did not extend it in time.
        """
        core = self._core
        new_ttl = core.extend_ttl(ttl)
        hold = self._hold
        if hold is None:
            raise core.not_owned("extend")
        with self._mutex:
            self._extend(hold, new_ttl)
        return True

    def _extend(self, hold: Hold, ttl: float) -> None:
        core = self._core
        t0 = _now()
        if hold.validity(t0) <= 0:
            self._lose(hold)
            raise core.not_owned("extend")
        plan = core.extend_plan(hold, ttl)
        replies = fanout(
            self._masters,
            [plan] * core.n,
            self.node_timeout,
            lambda rs: core.count_ok(rs) >= core.quorum,
        )
        if core.count_ok(replies) < core.quorum or core.validity_after(t0, _now(), ttl) <= 0:
            self._lose(hold)
            raise core.not_owned("extend")
        core.on_extend(1, hold, t0, ttl)

    def _lose(self, hold: Hold) -> None:
        hold.lost = True
        hold.count = 0
        if self._hold is hold:
            self._hold = None

    def _renew(self, hold: Hold) -> float | None:
        """Called by the renewal thread: extend, or mark the lock lost on the first failure."""
        with self._mutex:
            if self._hold is not hold or hold.lost:
                return None
            t0 = _now()
            try:
                self._extend(hold, hold.ttl)
                return t0 + self._core.renew_period(hold)
            except Exception as exc:
                hold.lost = True
                log.warning("redlock %s lost: renewal failed: %s", self.name, exc)
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                log.exception("redlock %s: on_lost callback failed", self.name)
        return None

    # -- queries -----------------------------------------------------------------------------
    def locked(self) -> bool:
        """True when a majority of the masters hold the lock for someone."""
        core = self._core
        replies = fanout(self._masters, [("EXISTS", core.key)] * core.n, self.node_timeout)
        return core.count_ok(replies) >= core.quorum

    def owned(self) -> bool:
        """True when this owner holds the lock on a majority, within its validity."""
        hold = self._hold
        if hold is None or hold.validity(_now()) <= 0:
            return False
        core = self._core
        replies = fanout(self._masters, [("GET", core.key)] * core.n, self.node_timeout)
        mine = sum(1 for r in replies if core.on_owned_reply(r, hold))
        return mine >= core.quorum and hold.validity(_now()) > 0

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> Redlock:
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
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"<Redlock {self.name!r} masters={len(self._clients)} held={self._hold is not None}>"
