"""RedisDelayQueue: the DelayQueue interface over Redis, shared by many processes and machines.

Layout (all keys share the hash tag ``{name}``, so Redis Cluster keeps them on one slot):

- ``{name}:due``       sorted set: task id -> deadline (epoch ms, the Redis server's clock)
- ``{name}:inflight``  sorted set: task id -> visibility deadline of its current delivery
- ``{name}:payloads``  hash: task id -> payload bytes
- ``{name}:attempts``  hash: task id -> deliveries so far (and ``d:<id>`` -> its deadline)
- ``{name}:ids``       counter behind the ids (zero-padded, so equal deadlines keep put order)
- ``{name}:notify``    pub/sub channel: "the earliest task is now due in N ms"

Every change is one Lua script (``timewheel/_lua/*.lua``, run with EVALSHA and reloaded on
NOSCRIPT). A consumer claims due tasks atomically (due -> in flight with a visibility deadline;
in-flight tasks whose deadline passed are returned to the due set first), so each task is held
by one consumer at a time and comes back when not acked within ``ack_timeout``.

Waking: a claim that finds nothing due returns the delay until the next known deadline, and a
local timing-wheel driver wakes the waiting consumers then; a put that creates a new earliest
task publishes a notice that wakes them at once. As a safety net for a lost notice (pub/sub is
fire-and-forget) a waiting consumer re-checks at least every ``max_wait`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from importlib import resources
from typing import Any

from timewheel.drivers import ThreadDriver, monotonic_ms
from timewheel.task import Task

__all__ = ["RedisDelayQueue"]

log = logging.getLogger("timewheel")
_SCRIPTS = ("put", "claim", "ack", "nack", "cancel")


def _script_text(name: str) -> str:
    return resources.files("timewheel._lua").joinpath(f"{name}.lua").read_text("utf-8")


class RedisDelayQueue:
    """A delay queue in Redis (SPEC section 2).

    :param client: a ``redis.Redis`` (or cluster client) with ``decode_responses=False``.
    :param name: the queue's name; every process using the same name shares the queue.
    :param ack_timeout: seconds a delivered task may stay un-acked before it is delivered again.
    :param prefetch: tasks claimed per script call (the extras wait in this process, their ack
        timeout already running).
    :param max_wait: longest a waiting consumer sleeps without re-checking Redis.
    :raises ValueError: on a bad argument, or a client that decodes responses.
    """

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        ack_timeout: float = 30.0,
        prefetch: int = 1,
        max_wait: float = 5.0,
    ) -> None:
        if not name:
            raise ValueError("name must be a non-empty string")
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0 seconds, got {ack_timeout!r}")
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch!r}")
        pool = getattr(client, "connection_pool", None)
        if pool is not None and pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisDelayQueue needs a client with decode_responses=False")
        self._client = client
        self.name = name
        tag = "{" + name + "}"
        self._due, self._inflight = f"{tag}:due", f"{tag}:inflight"
        self._payloads, self._attempts = f"{tag}:payloads", f"{tag}:attempts"
        self._ids, self._channel = f"{tag}:ids", f"{tag}:notify"
        self._ack_ms = max(1, round(ack_timeout * 1000))
        self._prefetch = prefetch
        self._max_wait = max_wait
        # redis-py's Script runs EVALSHA and reloads the script on NOSCRIPT.
        self._scripts = {n: client.register_script(_script_text(n)) for n in _SCRIPTS}
        self._cond = threading.Condition()
        self._gen = 0  # bumped by every wake-up, so a consumer never sleeps through one
        self._armed: float | None = None  # local monotonic ms of the earliest armed wake
        self._buffer: deque[Task] = deque()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closed = False
        self._driver = ThreadDriver(name=f"redisdelayqueue-{name}")
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(self._channel)
        self._listener = threading.Thread(
            target=self._listen, name=f"redisdelayqueue-{name}-notify", daemon=True
        )
        self._listener.start()

    # -- producing -----------------------------------------------------------------------

    def put(self, payload: bytes, delay: float = 0.0, at: float | None = None) -> str:
        """Add a task due after ``delay`` seconds (Redis server clock) or at epoch ``at``.

        :returns: the task id.
        """
        return self.put_many([payload], delay=delay, at=at)[0]

    def put_many(
        self, payloads: Iterable[bytes], delay: float = 0.0, at: float | None = None
    ) -> list[str]:
        """Add several tasks with one deadline in one script call.

        :returns: their ids, in order.
        """
        items = []
        for p in payloads:
            if not isinstance(p, bytes | bytearray | memoryview):
                raise TypeError(f"payload must be bytes, got {type(p).__name__}")
            items.append(bytes(p))
        self._check_open()
        when = ["at", int(at * 1000)] if at is not None else ["in", max(0, round(delay * 1000))]
        ids = self._scripts["put"](
            keys=[self._due, self._payloads, self._ids],
            args=[*when, self._channel, *items],
            client=self._client,
        )
        return [i.decode() for i in ids]

    def cancel(self, task_id: str) -> bool:
        """Remove a task that is still waiting.

        :returns: True if it was waiting; False if unknown, in flight or done.
        """
        self._check_open()
        keys = [self._due, self._payloads, self._attempts]
        return bool(self._scripts["cancel"](keys=keys, args=[task_id], client=self._client))

    # -- consuming -----------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Task | None:
        """Claim the next due task, waiting up to ``timeout`` seconds (forever if None).

        :returns: a :class:`Task`, or None if none came due in time.
        """
        end = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            with self._cond:
                self._check_open()
                gen = self._gen
            task = self._claim()
            if task is not None:
                return task
            with self._cond:
                if self._gen != gen:
                    continue  # woken while claiming: look again
                wait = self._max_wait
                if end is not None:
                    wait = min(wait, end - time.monotonic())
                    if wait <= 0:
                        return None
                self._cond.wait(wait)

    async def aget(self, timeout: float | None = None) -> Task | None:
        """:meth:`get` for asyncio (Redis calls run in a worker thread)."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + max(0.0, timeout)
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with self._cond:
                self._check_open()
                self._async_waiters.append((loop, fut))
            try:
                task = await asyncio.to_thread(self._claim)
                if task is not None:
                    return task
                wait = self._max_wait
                if end is not None:
                    wait = min(wait, end - loop.time())
                    if wait <= 0:
                        return None
                try:
                    await asyncio.wait_for(fut, wait)
                except TimeoutError:
                    pass
            finally:
                with self._cond:
                    self._async_waiters = [w for w in self._async_waiters if w[1] is not fut]

    def __aiter__(self) -> AsyncIterator[Task]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Task]:
        while not self._closed:
            try:
                task = await self.aget()
            except RuntimeError:
                if self._closed:
                    return
                raise
            if task is not None:
                yield task

    def close(self) -> None:
        """Stop this process's listener and driver (the queue in Redis is untouched)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._wake_locked()
        self._listener.join(5)
        self._driver.close()
        try:
            self._pubsub.close()
        except Exception:  # the connection may be gone already
            pass

    def __enter__(self) -> RedisDelayQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- acks (called by Task) -----------------------------------------------------------

    def _ack(self, task: Task) -> bool:
        keys = [self._due, self._inflight, self._payloads, self._attempts]
        return bool(self._scripts["ack"](keys=keys, args=[task.id], client=self._client))

    def _nack(self, task: Task, delay: float) -> bool:
        keys = [self._due, self._inflight, self._attempts]
        args = [task.id, max(0, round(delay * 1000)), task.delivery, self._channel]
        return bool(self._scripts["nack"](keys=keys, args=args, client=self._client))

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("RedisDelayQueue is closed")

    def _claim(self) -> Task | None:
        with self._cond:
            if self._buffer:
                return self._buffer.popleft()
        keys = [self._due, self._inflight, self._payloads, self._attempts]
        reply = self._scripts["claim"](
            keys=keys, args=[self._ack_ms, self._prefetch], client=self._client
        )
        tasks = [
            Task(self, i.decode(), p, int(d) / 1000.0, int(a), int(a))
            for i, d, a, p in zip(reply[1::4], reply[2::4], reply[3::4], reply[4::4])
        ]
        nxt = int(reply[0])
        if nxt >= 0:
            self._arm(nxt)
        if not tasks:
            return None
        with self._cond:
            self._buffer.extend(tasks[1:])
        return tasks[0]

    def _arm(self, delay_ms: int) -> None:
        """Have the local wheel wake the consumers ``delay_ms`` from now."""
        now = monotonic_ms()
        at = now + delay_ms
        with self._cond:
            if self._closed or (self._armed is not None and now < self._armed <= at):
                return  # an earlier wake-up is already armed
            self._armed = at
        self._driver.call_at(math.ceil(at), self._wake)

    def _wake(self) -> None:
        with self._cond:
            if self._armed is not None and self._armed <= monotonic_ms():
                self._armed = None
            self._wake_locked()

    def _wake_locked(self) -> None:
        self._gen += 1
        self._cond.notify_all()
        for loop, fut in self._async_waiters:
            loop.call_soon_threadsafe(_set_done, fut)

    def _listen(self) -> None:
        while not self._closed:
            try:
                msg = self._pubsub.get_message(timeout=0.2)
            except Exception as exc:  # lost connection: redis-py resubscribes on reconnect
                if self._closed:
                    return
                log.warning("RedisDelayQueue %s: notice channel error: %s", self.name, exc)
                with self._cond:
                    self._wake_locked()  # notices may have been missed: look again
                time.sleep(0.2)
                continue
            if msg is not None and msg.get("type") == "message":
                try:
                    delay = int(msg["data"])
                except (TypeError, ValueError):
                    continue
                if delay <= 0:
                    with self._cond:
                        self._wake_locked()
                else:
                    self._arm(delay)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
