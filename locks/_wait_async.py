"""Waking blocked acquirers in asyncio: the twin of :mod:`locks._wait_sync` for one event loop.

One listener task per (client, event loop) holds one subscription to :data:`CHANNEL` and wakes
the head of the local FIFO of each released key. The task ends, closing its subscription, when
the loop cancels it at shutdown or when its client is garbage-collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from locks._core import CHANNEL

__all__ = [
    "close_notifiers",
    "has_waiters",
    "join",
    "leave",
    "notifier_for",
    "origin_of",
    "wake_local",
]


class WaiterQueue:
    """FIFO of the tasks of one event loop blocked on one lock key (on one set of servers)."""

    def __init__(self, key: str, notifiers: list[Notifier]) -> None:
        self.key = key
        self.origin = os.urandom(6).hex()
        self.notifiers = notifiers
        self.waiters: deque[asyncio.Event] = deque()
        self.last_release = ""

    def is_head(self, waiter: asyncio.Event) -> bool:
        return bool(self.waiters) and self.waiters[0] is waiter


_Scope = tuple[int, tuple[int, ...], str]
_QUEUES: dict[_Scope, WaiterQueue] = {}


def _scope(clients: list[Any], key: str) -> _Scope:
    return (id(asyncio.get_running_loop()), tuple(id(c) for c in clients), key)


async def join(clients: list[Any], key: str) -> tuple[WaiterQueue, asyncio.Event]:
    """Queue the calling task behind the other local waiters of ``key``."""
    notifiers = [await notifier_for(c) for c in clients]
    scope = _scope(clients, key)
    waiter = asyncio.Event()
    queue = _QUEUES.get(scope)
    if queue is None:
        queue = _QUEUES[scope] = WaiterQueue(key, notifiers)
        for n in notifiers:
            n.queues.setdefault(key, []).append(queue)
    queue.waiters.append(waiter)
    if len(queue.waiters) == 1:
        waiter.set()
    return queue, waiter


def leave(clients: list[Any], queue: WaiterQueue, waiter: asyncio.Event) -> None:
    """Leave the queue; a departing head passes its turn to the next waiter."""
    was_head = queue.is_head(waiter)
    with contextlib.suppress(ValueError):
        queue.waiters.remove(waiter)
    if queue.waiters:
        if was_head:
            queue.waiters[0].set()
        return
    scope = _scope(clients, queue.key)
    if _QUEUES.get(scope) is queue:
        del _QUEUES[scope]
    for n in queue.notifiers:
        lst = n.queues.get(queue.key)
        if lst is not None and queue in lst:
            lst.remove(queue)
            if not lst:
                del n.queues[queue.key]


def has_waiters(clients: list[Any], key: str) -> bool:
    if not _QUEUES:
        return False
    queue = _QUEUES.get(_scope(clients, key))
    return queue is not None and bool(queue.waiters)


def origin_of(clients: list[Any], key: str) -> str:
    if not _QUEUES:
        return "-"
    queue = _QUEUES.get(_scope(clients, key))
    return queue.origin if queue is not None else "-"


def wake_local(clients: list[Any], key: str) -> None:
    if not _QUEUES:
        return
    queue = _QUEUES.get(_scope(clients, key))
    if queue is not None and queue.waiters:
        queue.waiters[0].set()


class Notifier:
    """One subscription to :data:`CHANNEL` for one client on one loop, read by one task."""

    def __init__(self, client: Any) -> None:
        self.queues: dict[str, list[WaiterQueue]] = {}
        self._client = weakref.ref(client)
        # Our own pool with client retries off: reconnection is this task's (cancellable)
        # backoff loop, not redis-py's, which can sleep for seconds inside get_message.
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["retry"] = Retry(NoBackoff(), 0)
        self._pool = type(pool)(connection_class=pool.connection_class, **kwargs)
        self._pubsub = Redis(connection_pool=self._pool).pubsub()
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def start(self) -> None:
        # The task subscribes by itself, so a caller cancelled meanwhile cannot leave a
        # half-made subscription behind; callers wait for `ready` under a shield.
        self.task = asyncio.get_running_loop().create_task(self._run(), name="locks-notifier")

    async def _subscribe(self) -> None:
        await self._pubsub.subscribe(CHANNEL)
        me = asyncio.current_task()
        for _ in range(100):  # the confirmation: a release published after it reaches us
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            msg = await self._pubsub.get_message(timeout=0.05)
            if msg is not None and msg["type"] == "subscribe":
                return

    async def _run(self) -> None:
        backoff = 0.05
        me = asyncio.current_task()
        try:
            with contextlib.suppress(Exception):
                await self._subscribe()
            self.ready.set()
            # redis-py can swallow a CancelledError inside get_message (redis/redis-py#2028):
            # the task's pending-cancel count still tells that the loop is shutting us down.
            while self._client() is not None and not (me is not None and me.cancelling()):
                try:
                    msg = await self._pubsub.get_message(timeout=1.0)
                    backoff = 0.05
                except asyncio.CancelledError:
                    raise
                except Exception:  # connection lost: resubscribe; every head looks again
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    with contextlib.suppress(Exception):
                        await self._pubsub.reset()
                        await self._subscribe()
                    self._wake_all()
                    continue
                if msg is not None and msg.get("type") == "message":
                    self._dispatch(msg["data"])
        finally:
            self.ready.set()  # never leave a caller waiting on a listener that is gone
            conn = self._pubsub.connection
            with contextlib.suppress(BaseException):
                if conn is not None:
                    await conn.disconnect()  # waits for the socket to close
                await self._pubsub.aclose()
            with contextlib.suppress(BaseException):
                await self._pool.disconnect()

    def _dispatch(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        origin, _, rest = data.partition(" ")
        release, _, key = rest.partition(" ")
        for queue in self.queues.get(key, ()):
            if queue.origin != origin and queue.last_release != release:
                queue.last_release = release
                if queue.waiters:
                    queue.waiters[0].set()

    def _wake_all(self) -> None:
        for queues in self.queues.values():
            for queue in queues:
                if queue.waiters:
                    queue.waiters[0].set()


_NOTIFIERS: weakref.WeakKeyDictionary[Any, dict[int, Notifier]] = weakref.WeakKeyDictionary()


async def notifier_for(client: Any) -> Notifier:
    """The notifier of ``client`` on the running loop, subscribed on first use."""
    loop = asyncio.get_running_loop()
    by_loop = _NOTIFIERS.setdefault(client, {})
    notifier = by_loop.get(id(loop))
    if notifier is None or notifier.task is None or notifier.task.done():
        notifier = Notifier(client)
        by_loop[id(loop)] = notifier
        notifier.start()
    if not notifier.ready.is_set():
        await asyncio.shield(notifier.ready.wait())
    return notifier


async def close_notifiers() -> None:
    """Stop the running loop's listener tasks and close their connections (tests, shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    tasks = []
    for by_loop in list(_NOTIFIERS.values()):
        notifier = by_loop.pop(loop_id, None)
        if notifier is not None and notifier.task is not None and not notifier.task.done():
            notifier.task.cancel()
            tasks.append(notifier.task)
    if tasks:
        await asyncio.wait(tasks, timeout=2)
