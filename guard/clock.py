"""Clocks: the real monotonic clock, and ``ManualClock`` for exact, instant tests.

Every time in the engine is an integer count of milliseconds from a clock. The real clock
is ``time.monotonic`` (never jumps with wall-clock changes); compiled code reads the same
clock through ``clock_gettime(CLOCK_MONOTONIC)`` without a Python call.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["Clock", "ManualClock", "MonotonicClock"]


class MonotonicClock:
    """The real clock: milliseconds of ``time.monotonic()``; ``sleep`` really sleeps."""

    real = True

    def now_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def sleep(self, ms: float) -> None:
        if ms > 0:
            time.sleep(ms / 1000.0)

    async def asleep(self, ms: float) -> None:
        await asyncio.sleep(ms / 1000.0 if ms > 0 else 0)


class ManualClock:
    """A clock that moves only when told to.

    ``sleep(ms)`` (and ``await asleep(ms)``) advance the clock instead of waiting, so
    queueing and recovery timers can be tested exactly and instantly.
    """

    real = False

    def __init__(self, start_ms: int = 0) -> None:
        self._now = int(start_ms)

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` (>= 0) and return the new time."""
        if ms < 0:
            raise ValueError("ManualClock.advance: ms must be >= 0")
        self._now += int(ms)
        return self._now

    def set(self, ms: int) -> None:
        """Jump to ``ms``: forward, or backward to test a clock that went back."""
        self._now = int(ms)

    def sleep(self, ms: float) -> None:
        if ms > 0:
            self._now += round(ms)

    async def asleep(self, ms: float) -> None:
        self.sleep(ms)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock({self._now})"


Clock = MonotonicClock | ManualClock
