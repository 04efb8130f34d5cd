"""ThreadDriver and AsyncioDriver (timewheel/drivers.py): real time, since sleeping is the point."""

from __future__ import annotations

import asyncio
import threading
import time

from timewheel.drivers import AsyncioDriver, ThreadDriver, monotonic_ms


def test_thread_driver_runs_in_order_never_early() -> None:
    done = threading.Event()
    fired: list[tuple[str, float, float]] = []
    with ThreadDriver() as driver:
        base = driver.now_ms()
        for name, delay in (("c", 60), ("a", 20), ("b", 40)):
            deadline = int(base) + delay
            driver.call_at(
                deadline, lambda n, d: fired.append((n, d, monotonic_ms())), name, deadline
            )
        driver.call_at(int(base) + 80, done.set)
        assert done.wait(5)
    assert [n for n, _, _ in fired] == ["a", "b", "c"]
    for _, deadline, at in fired:
        assert at >= deadline  # never early
        assert at - deadline < 1000  # and on time give or take a loaded machine


def test_thread_driver_wakes_for_an_earlier_timer_and_cancels() -> None:
    hit = threading.Event()
    with ThreadDriver() as driver:
        driver.call_later(60_000, hit.set)  # the thread now sleeps for a minute
        time.sleep(0.05)
        cancelled = driver.call_later(10, hit.set)
        assert cancelled.cancel() is True
        assert cancelled.cancel() is False
        start = time.monotonic()
        driver.call_later(30, hit.set)
        assert hit.wait(5)
        assert time.monotonic() - start < 10  # far below the minute it would otherwise sleep
        assert len(driver) == 1  # the minute-long one is still pending


def test_thread_driver_survives_a_failing_callback(caplog: object) -> None:
    ok = threading.Event()

    def boom() -> None:
        raise ValueError("boom")

    with ThreadDriver() as driver:
        driver.call_later(1, boom)
        driver.call_later(5, ok.set)
        assert ok.wait(5)


async def test_asyncio_driver_order_and_wakeup() -> None:
    loop = asyncio.get_running_loop()
    driver = AsyncioDriver()
    fired: list[tuple[str, float, int]] = []
    finished = loop.create_future()
    base = int(driver.now_ms())
    driver.call_at(base + 60_000, fired.append, ("late", 0.0, 0))
    for name, delay in (("c", 45), ("a", 15), ("b", 30)):
        driver.call_at(
            base + delay, lambda n, d: fired.append((n, driver.now_ms(), d)), name, base + delay
        )
    gone = driver.call_later(20, fired.append, ("cancelled", 0.0, 0))
    assert gone.cancel()
    driver.call_at(base + 50, finished.set_result, None)
    await asyncio.wait_for(finished, 5)
    assert [n for n, _, _ in fired] == ["a", "b", "c"]
    assert all(at >= d for _, at, d in fired)
    assert len(driver) == 1
    driver.close()
