"""One renewal thread for every auto-renewed lock of the process (not a thread per lock).

Entries hold only a weak reference to their lock, so a lock that is garbage-collected stops
being renewed. The renewing itself is the lock's ``_renew(hold)``, which returns the time of
the next renewal or None to stop (released, lost, or the lock changed hands).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from typing import Any

__all__ = ["schedule"]


class _Renewer:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ref[Any], Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, lock: Any, hold: Any, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), weakref.ref(lock), hold))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="locks-renew", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                due, _, ref, hold = self._heap[0]
                delay = due - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            lock = ref()
            if lock is None:
                continue
            try:
                next_due = lock._renew(hold)
            except Exception:  # _renew reports its own failures; never let the thread die
                next_due = None
            del lock
            if next_due is not None:
                with self._cond:
                    heapq.heappush(self._heap, (next_due, next(self._seq), ref, hold))


_RENEWER = _Renewer()


def schedule(lock: Any, hold: Any, due: float) -> None:
    """Renew ``hold`` of ``lock`` at monotonic time ``due`` (and then as ``_renew`` says)."""
    _RENEWER.add(lock, hold, due)
