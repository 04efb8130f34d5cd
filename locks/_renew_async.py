"""One renewal task per event loop for every auto-renewed lock on it (not a task per lock).

Entries hold a weak reference to their lock, so a collected lock stops being renewed; the
lock's ``_renew(hold)`` coroutine returns the next due time or None to stop (released, lost, or
its owner task finished without releasing). The task exits when nothing is left to renew.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from typing import Any

__all__ = ["schedule"]


class _Renewer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, weakref.ref[Any], Any]] = []
        self.seq = itertools.count()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def add(self, lock: Any, hold: Any, due: float) -> None:
        heapq.heappush(self.heap, (due, next(self.seq), weakref.ref(lock), hold))
        self.wakeup.set()
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run(), name="locks-renew")

    async def _run(self) -> None:
        while self.heap:
            due, _, ref, hold = self.heap[0]
            delay = due - time.monotonic()
            if delay > 0:
                self.wakeup.clear()
                try:
                    await asyncio.wait_for(self.wakeup.wait(), delay)
                except TimeoutError:
                    pass
                continue
            heapq.heappop(self.heap)
            lock = ref()
            if lock is None:
                continue
            try:
                next_due = await lock._renew(hold)
            except Exception:  # _renew reports its own failures
                next_due = None
            del lock
            if next_due is not None:
                heapq.heappush(self.heap, (next_due, next(self.seq), ref, hold))


_RENEWERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Renewer] = (
    weakref.WeakKeyDictionary()
)


def schedule(lock: Any, hold: Any, due: float) -> None:
    """Renew ``hold`` of ``lock`` at monotonic time ``due`` (and then as ``_renew`` says)."""
    loop = asyncio.get_running_loop()
    renewer = _RENEWERS.get(loop)
    if renewer is None:
        renewer = _RENEWERS[loop] = _Renewer(loop)
    renewer.add(lock, hold, due)
