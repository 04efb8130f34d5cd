"""DelayQueue: a delay queue on a timing wheel, in memory or durable in SQLite.

Consumers drive the wheel themselves: ``get`` advances it to the clock under the queue's lock
and, when nothing is due, sleeps on a condition until ``next_deadline()`` (or until a producer
adds an earlier task). No thread ticks.

The wheel holds three kinds of timer: a task coming due, the ack deadline of a task in flight
(``ack_timeout``: when it fires the task is delivered again), and, for a durable queue, the
next load of the memory horizon. Only tasks due within ``memory_horizon`` seconds are held in
memory; the rest stay in the store and are loaded in windows as their time approaches.

Delivery is at-least-once. With a store, a task is durable when ``put`` returns
(``fsync="always"``), an acked task is deleted before ``ack`` returns, and on restart every
task left in the store is delivered: those already due (overdue ones, and ones that were in
flight when the process died) at once, in deadline order.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from timewheel.store import FSYNC_MODES, Row, SqliteStore
from timewheel.task import Task, TaskRecord
from timewheel.wheel import TimingWheel

__all__ = ["DelayQueue"]

_DUE, _LEASE, _HORIZON = 0, 1, 2


class DelayQueue:
    """A delay queue (SPEC section 2).

    :param path: None for an in-memory queue, or the store's file or directory (created if
        missing) for a durable one.
    :param fsync: ``"always"`` (put and ack durable before they return), ``"batch"`` (flushed
        at least every 100 ms) or ``"never"`` (left to the OS).
    :param ack_timeout: seconds a delivered task may stay un-acked before it is delivered again.
    :param memory_horizon: seconds ahead of now whose tasks are held in memory.
    :param clock: epoch seconds (``time.time``); tests pass a fake one.
    :raises ValueError: on a bad argument.
    :raises StoreError: if the store is damaged.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        fsync: str = "always",
        ack_timeout: float = 30.0,
        memory_horizon: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be > 0 seconds, got {ack_timeout!r}")
        if not memory_horizon > 0:
            raise ValueError(f"memory_horizon must be > 0 seconds, got {memory_horizon!r}")
        self._clock = clock
        self._ack_ms = max(1, round(ack_timeout * 1000))
        self._horizon_ms = max(2, round(memory_horizon * 1000))
        self._cond = threading.Condition(threading.Lock())
        self._wheel = TimingWheel(start_ms=self._now_ms())
        self._tasks: dict[str, TaskRecord] = {}  # every task held in memory, by id
        self._ready: deque[TaskRecord] = deque()
        self._putting: set[str] = set()  # ids being written; the loader leaves them alone
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._sleepers = 0  # consumers blocked in get()
        self._sleep_max = 0.0  # the latest time one of them sleeps until
        self._closed = False
        self._store: SqliteStore | None = None
        self._loaded_until = 1 << 62  # in memory: everything is "loaded"
        self._seq = 1
        # Ids are "<seq in hex>-<tail>": unique within the queue, and the random tail (kept in
        # the store) keeps them from repeating across queues.
        self._id_tail = f"{random.getrandbits(32):08x}"
        if path is not None:
            self._store = SqliteStore(path, fsync)
            self._id_tail = self._store.id_tail
            self._seq = self._store.next_seq()
            self._load_initial()

    # -- producing -----------------------------------------------------------------------

    def put(self, payload: bytes, delay: float = 0.0, at: float | None = None) -> str:
        """Add a task due after ``delay`` seconds, or at epoch seconds ``at``.

        :returns: the task id.
        :raises TypeError: if ``payload`` is not bytes.
        :raises RuntimeError: if the queue is closed.
        """
        return self.put_many([payload], delay=delay, at=at)[0]

    def put_many(
        self, payloads: Iterable[bytes], delay: float = 0.0, at: float | None = None
    ) -> list[str]:
        """Add several tasks with one deadline in one write (one fsync).

        :returns: their ids, in order (ties are delivered in this order).
        """
        deadline = self._deadline(delay, at)
        items = []
        for p in payloads:
            if not isinstance(p, bytes | bytearray | memoryview):
                raise TypeError(f"payload must be bytes, got {type(p).__name__}")
            items.append(p if type(p) is bytes else bytes(p))
        tail = "-" + self._id_tail
        with self._cond:
            self._check_open()
            first = self._seq
            self._seq += len(items)
            ids = [f"{first + i:x}{tail}" for i in range(len(items))]
            if self._store is not None:
                self._putting.update(ids)
        if self._store is not None:
            rows = [(first + i, deadline, 0, p) for i, p in enumerate(items)]
            try:
                self._store.insert(rows, wait=True)
            finally:
                with self._cond:
                    self._putting.difference_update(ids)
        with self._cond:
            if deadline < self._loaded_until:
                for i, p in enumerate(items):
                    self._hold(TaskRecord(ids[i], first + i, deadline, 0, p))
                self._wake(deadline)
        return ids

    async def aput(self, payload: bytes, delay: float = 0.0, at: float | None = None) -> str:
        """:meth:`put` without blocking the event loop on the store's fsync."""
        if self._store is None:
            return self.put(payload, delay, at)
        return await asyncio.get_running_loop().run_in_executor(None, self.put, payload, delay, at)

    def cancel(self, task_id: str) -> bool:
        """Remove a task that has not been delivered.

        :returns: True if it was waiting and is now gone; False if unknown, in flight or done.
        """
        with self._cond:
            self._check_open()
            rec = self._tasks.get(task_id)
            if rec is not None:
                if rec.lease is not None:
                    return False  # in flight: the consumer acks or nacks it
                if rec.handle is not None:
                    rec.handle.cancel()
                    rec.handle = None
                else:
                    self._ready.remove(rec)  # due, not yet handed out
                del self._tasks[task_id]
        if self._store is None:
            return rec is not None
        seq = rec.seq if rec is not None else self._seq_of(task_id)
        if seq is None:
            return False
        return self._store.delete(seq, wait=True) or rec is not None

    # -- consuming -----------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Task | None:
        """Take the next due task, waiting up to ``timeout`` seconds (forever if None).

        :returns: a :class:`Task` (ack or nack it), or None if none came due in time.
        """
        end = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                self._check_open()
                task = self._take()
                if task is not None:
                    return task
                wait = self._wait_s()
                if end is not None:
                    left = end - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                nd = self._wheel.next_deadline()
                self._sleep_max = max(self._sleep_max, float("inf") if nd is None else nd)
                self._sleepers += 1
                try:
                    self._cond.wait(wait)
                finally:
                    self._sleepers -= 1
                    if self._sleepers == 0:
                        self._sleep_max = 0.0

    async def aget(self, timeout: float | None = None) -> Task | None:
        """:meth:`get` for asyncio: waits on the loop, never blocking it."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + max(0.0, timeout)
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with self._cond:
                self._check_open()
                task = self._take()
                if task is not None:
                    return task
                wait = self._wait_s()
                self._async_waiters.append((loop, fut))
            if end is not None:
                left = end - loop.time()
                if left <= 0:
                    self._drop_waiter(fut)
                    return None
                wait = left if wait is None else min(wait, left)
            try:
                await asyncio.wait_for(fut, wait)
            except TimeoutError:
                pass
            finally:
                self._drop_waiter(fut)

    def __aiter__(self) -> AsyncIterator[Task]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Task]:
        while True:
            try:
                task = await self.aget()
            except RuntimeError:
                if self._closed:
                    return
                raise
            if task is not None:
                yield task

    def __len__(self) -> int:
        """Tasks held in memory (waiting or in flight); far-future ones in the store not counted."""
        with self._cond:
            return len(self._tasks)

    def close(self) -> None:
        """Close the queue (and its store); blocked consumers get RuntimeError."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            self._notify_async()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> DelayQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- acks (called by Task) -----------------------------------------------------------

    def _ack(self, task: Task) -> bool:
        with self._cond:
            self._check_open()
            rec = self._tasks.pop(task.id, None)
            if rec is None:
                return False
            if rec.lease is not None:
                rec.lease.cancel()
            if rec.handle is not None:
                rec.handle.cancel()
            try:
                self._ready.remove(rec)
            except ValueError:
                pass
        if self._store is not None:
            self._store.delete(rec.seq, wait=True)
        return True

    def _nack(self, task: Task, delay: float) -> bool:
        with self._cond:
            self._check_open()
            rec = self._tasks.get(task.id)
            if rec is None or rec.lease is None or rec.deliveries != task.delivery:
                return False
            rec.lease.cancel()
            rec.lease = None
            rec.deadline_ms = self._now_ms() + max(0, round(delay * 1000))
            if self._store is not None:
                self._store.update(rec.seq, rec.deadline_ms, rec.attempts, wait=False)
            if rec.deadline_ms < self._loaded_until:
                rec.handle = self._wheel.schedule_at(rec.deadline_ms, (_DUE, rec))
                self._wake(rec.deadline_ms)
            else:
                del self._tasks[rec.id]  # back to the store until its window is loaded
        return True

    # -- internals (called with the lock held) -------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _deadline(self, delay: float, at: float | None) -> int:
        if at is not None:
            return int(at * 1000)
        return self._now_ms() + max(0, round(delay * 1000))

    def _seq_of(self, task_id: str) -> int | None:
        """The row of an id of this store ("<seq in hex>-<id tail>"), or None."""
        head, sep, tail = task_id.partition("-")
        if not sep or tail != self._id_tail:
            return None
        try:
            return int(head, 16)
        except ValueError:
            return None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("DelayQueue is closed")

    def _hold(self, rec: TaskRecord) -> None:
        if rec.id in self._tasks:
            return
        self._tasks[rec.id] = rec
        rec.handle = self._wheel.schedule_at(rec.deadline_ms, (_DUE, rec))

    def _wake(self, deadline_ms: int) -> None:
        if self._sleepers and deadline_ms < self._sleep_max:
            self._cond.notify_all()
        self._notify_async()

    def _notify_async(self) -> None:
        for loop, fut in self._async_waiters:
            loop.call_soon_threadsafe(_set_done, fut)
        self._async_waiters.clear()

    def _drop_waiter(self, fut: asyncio.Future[None]) -> None:
        with self._cond:
            self._async_waiters = [w for w in self._async_waiters if w[1] is not fut]

    def _wait_s(self) -> float | None:
        nd = self._wheel.next_deadline()
        if nd is None:
            return None
        return max(0.0, (nd - self._clock() * 1000) / 1000.0)

    def _take(self) -> Task | None:
        now = self._now_ms()
        loaded = True
        while loaded:  # a window just loaded may hold tasks already due
            loaded = False
            due: list[Any] = self._wheel.advance(now)
            for kind, item in due:
                if kind == _DUE:
                    item.handle = None
                    self._ready.append(item)
                elif kind == _LEASE:
                    held: TaskRecord = item
                    if held.lease is not None and held.id in self._tasks:
                        held.lease = None
                        self._ready.append(held)  # not acked in time: deliver again
                else:
                    self._load_window(now)
                    loaded = True
        if not self._ready:
            return None
        rec = self._ready.popleft()
        rec.attempts += 1
        rec.deliveries += 1
        rec.lease = self._wheel.schedule_at(now + self._ack_ms, (_LEASE, rec))
        if self._store is not None:
            self._store.update(rec.seq, rec.deadline_ms, rec.attempts, wait=False)
        return Task(
            self, rec.id, rec.payload, rec.deadline_ms / 1000.0, rec.attempts, rec.deliveries
        )

    def _load_initial(self) -> None:
        assert self._store is not None
        now = self._now_ms()
        self._loaded_until = now + self._horizon_ms
        for row in self._store.load(None, self._loaded_until):
            self._hold(TaskRecord.from_row(row, self._id_tail))
        self._wheel.schedule_at(now + self._horizon_ms // 2, (_HORIZON, None))

    def _load_window(self, now: int) -> None:
        assert self._store is not None
        hi = now + self._horizon_ms
        rows: list[Row] = self._store.load(self._loaded_until, hi)
        for row in rows:
            rec = TaskRecord.from_row(row, self._id_tail)
            if rec.id not in self._putting:
                self._hold(rec)
        self._loaded_until = hi
        self._wheel.schedule_at(now + self._horizon_ms // 2, (_HORIZON, None))


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
