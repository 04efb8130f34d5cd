"""Drivers: run callbacks at their deadlines on a timing wheel, sleeping until the next one.

The wheel itself (timewheel.wheel) never reads a clock and never sleeps; a driver does both,
the way Kafka's SystemTimer drives its TimingWheel. Neither driver ticks: each sleeps until
``next_deadline()`` and is woken early only when a timer earlier than that is added.

- :class:`ThreadDriver` owns one daemon thread; callbacks run on it, so keep them short (hand
  long work to an executor). It is safe to call from any thread.
- :class:`AsyncioDriver` lives on one event loop and arms a single ``loop.call_at`` for the
  earliest deadline; callbacks run on the loop. Call it from the loop's thread.

Times are integer milliseconds of a monotonic clock (``monotonic_ms``; for the asyncio driver,
the loop's own clock). A callback never runs before its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from timewheel.wheel import Handle, TimingWheel

__all__ = ["AsyncioDriver", "ThreadDriver", "Timer", "monotonic_ms"]

log = logging.getLogger("timewheel")


def monotonic_ms() -> float:
    """Milliseconds of ``time.monotonic``, as a float (the drivers floor it to fire)."""
    return time.monotonic_ns() / 1e6


class Timer:
    """A callback scheduled on a driver; :meth:`cancel` is safe from any thread."""

    __slots__ = ("_handle", "_lock", "deadline_ms")

    def __init__(self, handle: Handle, lock: Any, deadline_ms: int) -> None:
        self._handle = handle
        self._lock = lock
        self.deadline_ms = deadline_ms

    def cancel(self) -> bool:
        """Cancel the callback.

        :returns: True if it had not run yet.
        """
        if self._lock is None:
            return self._handle.cancel()
        with self._lock:
            return self._handle.cancel()


def _run_callbacks(due: list[Any]) -> None:
    for fn, args in due:
        try:
            fn(*args)
        except Exception:
            log.exception("timewheel: timer callback %r failed", fn)


class ThreadDriver:
    """Run callbacks at their deadlines on one daemon thread.

    :param tick_ms: the wheel's tick (precision does not depend on it).
    :param wheel_size: buckets per wheel level.
    :param clock: a monotonic clock in (float) milliseconds.
    :param name: the thread's name.
    """

    def __init__(
        self,
        *,
        tick_ms: int = 1,
        wheel_size: int = 512,
        clock: Callable[[], float] = monotonic_ms,
        name: str = "timewheel-driver",
    ) -> None:
        self._clock = clock
        self._wheel = TimingWheel(tick_ms, wheel_size, int(clock()))
        self._cond = threading.Condition(threading.Lock())
        self._sleep_until: float | None = None  # set only while the thread waits
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def now_ms(self) -> float:
        """The driver's clock."""
        return self._clock()

    def call_at(self, deadline_ms: int, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on the driver thread at ``deadline_ms`` (the driver's clock).

        :returns: a :class:`Timer` to cancel it.
        :raises RuntimeError: if the driver is closed.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("ThreadDriver is closed")
            handle = self._wheel.schedule_at(deadline_ms, (fn, args))
            if self._sleep_until is not None and deadline_ms < self._sleep_until:
                self._cond.notify()
            return Timer(handle, self._cond, deadline_ms)

    def call_later(self, delay_ms: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` ``delay_ms`` milliseconds from now (rounded up to whole ms)."""
        return self.call_at(-int(-(self._clock() + delay_ms) // 1), fn, *args)

    def __len__(self) -> int:
        with self._cond:
            return len(self._wheel)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the thread; pending callbacks are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> ThreadDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        cond = self._cond
        with cond:
            while not self._closed:
                now = self._clock()
                due = self._wheel.advance(int(now))
                if due:
                    cond.release()
                    try:
                        _run_callbacks(due)
                    finally:
                        cond.acquire()
                    continue
                nd = self._wheel.next_deadline()
                self._sleep_until = float("inf") if nd is None else nd
                cond.wait(None if nd is None else max(0.0, (nd - now) / 1000.0))
                self._sleep_until = None


class AsyncioDriver:
    """Run callbacks at their deadlines on an asyncio event loop, with one armed loop timer.

    :param loop: the loop (default: the running one).
    :param tick_ms: the wheel's tick.
    :param wheel_size: buckets per wheel level.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        tick_ms: int = 1,
        wheel_size: int = 512,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._wheel = TimingWheel(tick_ms, wheel_size, int(self.now_ms()))
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._closed = False

    def now_ms(self) -> float:
        """The loop's clock in milliseconds."""
        return self._loop.time() * 1000.0

    def call_at(self, deadline_ms: int, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on the loop at ``deadline_ms`` (loop clock, ms).

        :returns: a :class:`Timer` to cancel it.
        :raises RuntimeError: if the driver is closed.
        """
        if self._closed:
            raise RuntimeError("AsyncioDriver is closed")
        handle = self._wheel.schedule_at(deadline_ms, (fn, args))
        self._arm(deadline_ms)
        return Timer(handle, None, deadline_ms)

    def call_later(self, delay_ms: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` ``delay_ms`` milliseconds from now (rounded up to whole ms)."""
        return self.call_at(-int(-(self.now_ms() + delay_ms) // 1), fn, *args)

    def __len__(self) -> int:
        return len(self._wheel)

    def close(self) -> None:
        """Disarm the loop timer; pending callbacks are dropped."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, deadline_ms: int) -> None:
        if self._timer_at is not None and self._timer_at <= deadline_ms:
            return  # already woken in time
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline_ms
        self._timer = self._loop.call_at(deadline_ms / 1000.0, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        _run_callbacks(self._wheel.advance(int(self.now_ms())))
        nd = self._wheel.next_deadline()
        if nd is not None and not self._closed:
            self._arm(nd)
