"""Waking blocked acquirers in threads: one pub/sub listener per client, FIFO queues per lock.

Every release script publishes ``"<origin> <release id> <lock key>"`` on :data:`CHANNEL`.
Each client that has ever had a blocked waiter owns one :class:`Notifier`: a daemon thread with one
subscription, which hands each message to the local :class:`WaiterQueue` of that key. A queue
wakes only its head, so hand-over is near-FIFO within a process and nobody starves; new
blocking acquirers queue behind existing waiters instead of barging. A release made in this
process wakes its queue directly (no pub/sub round trip) and tags its message with the
queue's origin so the listener does not wake the queue a second time.

A lost message (listener reconnecting, holder crashed) costs at most one wait: every head waits
no longer than the holder's remaining PTTL, then tries again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import deque
from typing import Any

from locks._core import CHANNEL

__all__ = [
    "Notifier",
    "Waiter",
    "WaiterQueue",
    "has_waiters",
    "join",
    "leave",
    "notifier_for",
    "origin_of",
    "take_hint",
    "wake_local",
]


class Waiter(threading.Event):
    """One blocked thread; ``hint`` tells a new head that a thread of ours just took the lock."""

    hint: tuple[float, int] | None = None


class WaiterQueue:
    """FIFO of the threads of this process blocked on one lock key (on one set of servers)."""

    def __init__(self, key: str, notifiers: list[Notifier]) -> None:
        self.key = key
        self.origin = os.urandom(6).hex()
        self.notifiers = notifiers
        self.waiters: deque[Waiter] = deque()
        self.last_release = ""
        self.wakes = 0  # releases signalled so far: tells a stale hint from a fresh one

    def wake(self) -> None:
        """Wake the head after a release (call with _MUTEX held)."""
        self.wakes += 1
        if self.waiters:
            self.waiters[0].set()

    def is_head(self, waiter: threading.Event) -> bool:
        with _MUTEX:
            return bool(self.waiters) and self.waiters[0] is waiter


_MUTEX = threading.Lock()
_QUEUES: dict[tuple[tuple[int, ...], str], WaiterQueue] = {}


def join(clients: list[Any], key: str) -> tuple[WaiterQueue, Waiter]:
    """Queue the calling thread behind the other local waiters of ``key``.

    :returns: the queue and this waiter's event, already set when it is the head.
    """
    notifiers = [notifier_for(c) for c in clients]  # subscribed before the caller's next try
    scope = (tuple(id(c) for c in clients), key)
    waiter = Waiter()
    with _MUTEX:
        queue = _QUEUES.get(scope)
        if queue is None:
            queue = _QUEUES[scope] = WaiterQueue(key, notifiers)
            for n in notifiers:
                n.queues.setdefault(key, []).append(queue)
        queue.waiters.append(waiter)
        if len(queue.waiters) == 1:
            waiter.set()
    return queue, waiter


def leave(
    clients: list[Any], queue: WaiterQueue, waiter: Waiter, taken_ttl: float | None = None
) -> None:
    """Leave the queue; a departing head passes its turn to the next waiter.

    :param taken_ttl: the ttl of the lock the departing head has just taken. The next head then
        waits for its release (woken locally) instead of spending a round trip on a sure loss.
    """
    with _MUTEX:
        was_head = bool(queue.waiters) and queue.waiters[0] is waiter
        with contextlib.suppress(ValueError):
            queue.waiters.remove(waiter)
        if queue.waiters:
            if was_head:
                head = queue.waiters[0]
                head.hint = None if taken_ttl is None else (taken_ttl, queue.wakes)
                head.set()
            return
        scope = (tuple(id(c) for c in clients), queue.key)
        if _QUEUES.get(scope) is queue:
            del _QUEUES[scope]
        for n in queue.notifiers:
            lst = n.queues.get(queue.key)
            if lst is not None and queue in lst:
                lst.remove(queue)
                if not lst:
                    del n.queues[queue.key]


def take_hint(queue: WaiterQueue, waiter: Waiter) -> float | None:
    """For a new head: the ttl to wait when a local thread holds the lock and has not released
    it since (else None: try now). Clears the waiter's event atomically with the check."""
    with _MUTEX:
        hint, waiter.hint = waiter.hint, None
        if hint is not None and hint[1] == queue.wakes:
            waiter.clear()
            return hint[0]
        return None


def wake_local(clients: list[Any], key: str) -> str:
    """Wake the local head waiting on ``key`` after a release made here.

    :returns: the origin tag to publish, so the listener skips the echo of this release.
    """
    if not _QUEUES:  # nobody waits anywhere in this process: the common, uncontended case
        return "-"
    with _MUTEX:
        queue = _QUEUES.get((tuple(id(c) for c in clients), key))
        if queue is None:
            return "-"
        queue.wake()
        return queue.origin


class Notifier:
    """One subscription to :data:`CHANNEL` for one client, read by one daemon thread."""

    def __init__(self, client: Any) -> None:
        self.queues: dict[str, list[WaiterQueue]] = {}
        self._stopped = threading.Event()
        self._pubsub = client.pubsub()
        self._subscribe()
        self._thread = threading.Thread(target=self._run, name="locks-notifier", daemon=True)
        self._thread.start()

    def _subscribe(self) -> None:
        self._pubsub.subscribe(CHANNEL)
        # Wait for the confirmation: a release published after it is sure to reach us.
        for _ in range(100):
            msg = self._pubsub.get_message(timeout=0.05)
            if msg is not None and msg["type"] == "subscribe":
                return

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopped.is_set():
            try:
                msg = self._pubsub.get_message(timeout=0.5)
                backoff = 0.05
            except Exception:  # connection lost: resubscribe, and let every head look again
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 1.0)
                with contextlib.suppress(Exception):
                    self._pubsub.reset()
                    self._subscribe()
                self._wake_all()
                continue
            if msg is not None and msg.get("type") == "message":
                self._dispatch(msg["data"])
        with contextlib.suppress(Exception):
            self._pubsub.close()

    def _dispatch(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        origin, _, rest = data.partition(" ")
        release, _, key = rest.partition(" ")
        with _MUTEX:
            for queue in self.queues.get(key, ()):
                if queue.origin != origin and queue.last_release != release:
                    queue.last_release = release
                    queue.wake()

    def _wake_all(self) -> None:
        with _MUTEX:
            for queues in self.queues.values():
                for queue in queues:
                    queue.wake()


_NOTIFIERS: weakref.WeakKeyDictionary[Any, Notifier] = weakref.WeakKeyDictionary()
_NOTIFIER_MUTEX = threading.Lock()


def notifier_for(client: Any) -> Notifier:
    """The client's notifier, started (and subscribed) on first use; it stops with the client."""
    notifier = _NOTIFIERS.get(client)
    if notifier is not None:
        return notifier
    with _NOTIFIER_MUTEX:
        notifier = _NOTIFIERS.get(client)
        if notifier is None:
            notifier = Notifier(client)
            _NOTIFIERS[client] = notifier
            weakref.finalize(client, notifier.stop)
    return notifier


def has_waiters(clients: list[Any], key: str) -> bool:
    """True when threads of this process already queue for ``key`` (newcomers queue behind)."""
    if not _QUEUES:
        return False
    queue = _QUEUES.get((tuple(id(c) for c in clients), key))
    return queue is not None and bool(queue.waiters)


def origin_of(clients: list[Any], key: str) -> str:
    """The origin tag a release of ``key`` made here publishes."""
    if not _QUEUES:
        return "-"
    queue = _QUEUES.get((tuple(id(c) for c in clients), key))
    return queue.origin if queue is not None else "-"
