"""Clocks: ManualClock moves only when told to; the real clock is monotonic."""

from __future__ import annotations

import asyncio
import time

import pytest

from guard import ManualClock
from guard.clock import MonotonicClock


def test_manual_clock_moves_only_when_told() -> None:
    c = ManualClock()
    assert c.now_ms() == 0
    assert c.advance(250) == 250
    assert c.now_ms() == 250
    c.set(10**12)
    assert c.now_ms() == 10**12
    c.set(5)  # backwards, to test a clock that went back
    assert c.now_ms() == 5
    assert ManualClock(start_ms=42).now_ms() == 42
    assert repr(ManualClock(7)) == "ManualClock(7)"


def test_manual_clock_refuses_to_advance_backwards() -> None:
    c = ManualClock(10)
    with pytest.raises(ValueError, match="ms must be >= 0"):
        c.advance(-1)
    assert c.now_ms() == 10


def test_manual_clock_sleep_advances_instead_of_waiting() -> None:
    c = ManualClock(0)
    started = time.monotonic()
    c.sleep(60_000)
    assert c.now_ms() == 60_000
    c.sleep(99.6)  # times are whole milliseconds
    assert c.now_ms() == 60_100
    c.sleep(0)
    c.sleep(-5)
    assert c.now_ms() == 60_100
    assert time.monotonic() - started < 5  # a minute of "sleep" took no real time


async def test_manual_clock_asleep_advances_and_yields() -> None:
    c = ManualClock(0)
    ran: list[int] = []

    async def other() -> None:
        ran.append(c.now_ms())

    task = asyncio.create_task(other())
    await c.asleep(1500)
    assert c.now_ms() == 1500
    assert ran == [1500]  # the loop ran other tasks during the wait
    await task


def test_monotonic_clock_reads_time_monotonic() -> None:
    c = MonotonicClock()
    before = int(time.monotonic() * 1000)
    now = c.now_ms()
    after = int(time.monotonic() * 1000)
    assert before <= now <= after
    assert c.real is True and ManualClock.real is False
    c.sleep(0)  # returns at once
    c.sleep(-1)
