"""Benchmark: timewheel against heapq (and asyncio's own timers) in one run.

Usage: python bench/bench_timewheel.py [--timers N] [--repeat R] [--quick]

1. Wheel vs heapq, seeded workload of N timers (default 1,000,000) with delays uniform in
   [0, 60 s): ns per schedule, per cancel (random order), per fired timer (advancing 1 ms at a
   time, cascades included) and bytes per pending timer (tracemalloc, payload excluded). heapq
   does the same work the way its documentation suggests: list entries [deadline, seq, payload]
   pushed on a heap, cancelled by marking the entry (lazy deletion), popped when due.
   CPU time (time.process_time), median of R runs.
2. Firing lateness with the asyncio driver at a 1 ms tick and 100,000 fires/s, beside
   asyncio's own loop.call_at on the same schedule: p50/p99/max ms late, and how many early.
3. DelayQueue durable puts with fsync="always" from 1 and 8 producer threads (group commit).

Results print as a table (median, ratio, target); a JSON copy goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timewheel import DelayQueue  # noqa: E402
from timewheel.drivers import AsyncioDriver  # noqa: E402
from timewheel.wheel import IMPLEMENTATION, TimingWheel  # noqa: E402

SPAN_MS = 60_000
REMOVED = object()


def cpu_ns_per(fn: Any, n: int) -> float:
    gc.collect()
    start = time.process_time_ns()
    fn()
    return (time.process_time_ns() - start) / n


# -- 1. wheel vs heapq ----------------------------------------------------------------------


def wheel_round(delays: list[int], order: list[int]) -> dict[str, float]:
    n = len(delays)
    out: dict[str, float] = {}
    wheel = TimingWheel()
    sched = wheel.schedule
    handles: list[Any] = []

    def schedule() -> None:
        handles.extend([sched(d, None) for d in delays])

    out["schedule"] = cpu_ns_per(schedule, n)
    shuffled = [handles[i] for i in order]
    handles.clear()

    def cancel() -> None:
        for h in shuffled:
            h.cancel()

    out["cancel"] = cpu_ns_per(cancel, n)
    assert len(wheel) == 0
    shuffled.clear()
    wheel = TimingWheel()
    for d in delays:
        wheel.schedule(d, None)
    adv = wheel.advance
    fired = [0]

    def expire() -> None:
        total = 0
        for now in range(SPAN_MS + 1):
            total += len(adv(now))
        fired[0] = total

    out["expire"] = cpu_ns_per(expire, n)
    assert fired[0] == n and len(wheel) == 0
    return out


def heap_round(delays: list[int], order: list[int]) -> dict[str, float]:
    n = len(delays)
    out: dict[str, float] = {}
    heap: list[list[Any]] = []
    entries: list[list[Any]] = []
    push = heapq.heappush

    def schedule() -> None:
        for seq, d in enumerate(delays):
            entry = [d, seq, None]
            push(heap, entry)
            entries.append(entry)

    out["schedule"] = cpu_ns_per(schedule, n)
    shuffled = [entries[i] for i in order]
    entries.clear()

    def cancel() -> None:
        for e in shuffled:
            e[2] = REMOVED

    out["cancel"] = cpu_ns_per(cancel, n)
    shuffled.clear()
    heap.clear()
    for seq, d in enumerate(delays):
        push(heap, [d, seq, None])
    pop = heapq.heappop
    fired = [0]

    def expire() -> None:
        total = 0
        for now in range(SPAN_MS + 1):
            due = []
            while heap and heap[0][0] <= now:
                entry = pop(heap)
                if entry[2] is not REMOVED:
                    due.append(entry[2])
            total += len(due)
        fired[0] = total

    out["expire"] = cpu_ns_per(expire, n)
    assert fired[0] == n
    return out


def traced(build: Any) -> tuple[float, Any]:
    """Bytes allocated (and still held) by ``build()``, with what it built."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = build()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used, kept


def bytes_per_timer(delays: list[int]) -> dict[str, float]:
    n = len(delays)

    def wheel_only() -> Any:
        wheel = TimingWheel()
        for d in delays:
            wheel.schedule(d, None)  # handle dropped: the caller does not keep it
        return wheel

    def wheel_and_handles() -> Any:
        wheel = TimingWheel()
        return wheel, [wheel.schedule(d, None) for d in delays]

    def heap_entries() -> Any:
        heap: list[list[Any]] = []
        for seq, d in enumerate(delays):
            heapq.heappush(heap, [d, seq, None])
        return heap

    w, kept = traced(wheel_only)
    del kept
    wh, kept = traced(wheel_and_handles)
    del kept
    h, kept = traced(heap_entries)
    del kept
    # The list holding the handles (8 bytes a slot) is the benchmark's, not the wheel's.
    return {"wheel": w / n, "wheel+handle": wh / n - 8, "heapq": h / n}


# -- 2. lateness ----------------------------------------------------------------------------


async def lateness(rate_per_ms: int, seconds: float, use_wheel: bool) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    late: list[float] = []
    n = int(rate_per_ms * seconds * 1000)
    done = loop.create_future()
    # Leave room to schedule everything before the first deadline (checked below).
    start_ms = int(loop.time() * 1000) + 500 + n // 50

    def record(deadline_ms: int) -> None:
        late.append(loop.time() * 1000 - deadline_ms)
        if len(late) == n and not done.done():
            done.set_result(None)

    if use_wheel:
        driver = AsyncioDriver(loop)
        for i in range(n):
            d = start_ms + i // rate_per_ms
            driver.call_at(d, record, d)
    else:
        for i in range(n):
            d = start_ms + i // rate_per_ms
            loop.call_at(d / 1000, record, d)
    setup_overran = loop.time() * 1000 > start_ms
    await asyncio.wait_for(done, seconds + 60 + n / 50_000)
    if setup_overran:
        print("  (warning: scheduling ran past the first deadline)")
    q = statistics.quantiles(late, n=100)
    return {
        "p50": q[49],
        "p99": q[98],
        "max": max(late),
        "early": float(sum(1 for x in late if x < 0)),
    }


# -- 3. durable puts ------------------------------------------------------------------------


def durable_puts(producers: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as d, DelayQueue(d, fsync="always") as q:
        stop = time.monotonic() + seconds
        counts = [0] * producers

        def produce(k: int) -> None:
            while time.monotonic() < stop:
                q.put(b"payload-of-a-task", delay=3600)
                counts[k] += 1

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.monotonic() - start)


def raw_fsyncs(seconds: float) -> float:
    """Appends with fsync per second on the bench directory's disk: the ceiling of one producer."""
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as d:
        path = Path(d) / "fsync.tmp"
        with open(path, "ab", buffering=0) as f:
            n, stop = 0, time.monotonic() + seconds
            while time.monotonic() < stop:
                f.write(b"x" * 64)
                os.fsync(f.fileno())
                n += 1
    return n / seconds


# -- report ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller run, for a smoke test")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.timers
    rng = random.Random(20261126)
    delays = [rng.randrange(SPAN_MS) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)

    print(f"timewheel bench: wheel={IMPLEMENTATION}, {n:,} timers, {args.repeat} runs,")
    print(f"  Python {platform.python_version()}, {platform.machine()}, CPU time medians\n")
    runs_w, runs_h = [], []
    for _ in range(args.repeat):
        runs_w.append(wheel_round(delays, order))
        runs_h.append(heap_round(delays, order))
    med = {
        k: (statistics.median(r[k] for r in runs_w), statistics.median(r[k] for r in runs_h))
        for k in ("schedule", "cancel", "expire")
    }
    mem = bytes_per_timer(delays)
    targets = {"schedule": 150, "cancel": 350, "expire": 100}
    results: dict[str, Any] = {"timers": n, "implementation": IMPLEMENTATION}
    print(f"{'op':<26}{'wheel':>10}{'heapq':>10}{'heapq/wheel':>13}   target")
    for k, (w, h) in med.items():
        extra = "  and >= 4.5x heappush" if k == "schedule" else ""
        ok = "met" if w <= targets[k] and (k != "schedule" or h / w >= 4.5) else "MISSED"
        print(
            f"{k + ' (ns)':<26}{w:>10.0f}{h:>10.0f}{h / w:>12.2f}x   <= {targets[k]}{extra}: {ok}"
        )
        results[k] = {"wheel_ns": w, "heapq_ns": h}
    ok = "met" if mem["wheel"] <= 48 else "MISSED"
    print(
        f"{'bytes/pending timer':<26}{mem['wheel']:>10.1f}{mem['heapq']:>10.1f}"
        f"{mem['heapq'] / mem['wheel']:>12.2f}x   <= 48: {ok}"
    )
    print(f"{'  + handle kept':<26}{mem['wheel+handle']:>10.1f}")
    results["bytes"] = mem

    rate, secs = 100, (1.0 if args.quick else 3.0)
    print(f"\nlateness at {rate * 1000:,} fires/s for {secs:.0f} s (ms late; 1 ms tick):")
    print(f"{'driver':<26}{'p50':>8}{'p99':>8}{'max':>8}{'early':>8}")
    for name, use_wheel in (("AsyncioDriver (wheel)", True), ("loop.call_at (heap)", False)):
        r = asyncio.run(lateness(rate, secs, use_wheel))
        flag = (
            ""
            if not use_wheel
            else (
                "   target p99 <= 2, never early: "
                + ("met" if r["p99"] <= 2 and r["early"] == 0 else "MISSED")
            )
        )
        print(f"{name:<26}{r['p50']:>8.2f}{r['p99']:>8.2f}{r['max']:>8.2f}{r['early']:>8.0f}{flag}")
        results["lateness_" + ("wheel" if use_wheel else "asyncio")] = r

    fsyncs = raw_fsyncs(1.0)
    print(f'\nDelayQueue durable put/s, fsync="always" (this disk: {fsyncs:,.0f} raw fsync/s):')
    results["raw_fsync_per_s"] = fsyncs
    for producers in (1, 8):
        rate_s = durable_puts(producers, 1.0 if args.quick else 3.0)
        flag = (
            "   target >= 5,000: " + ("met" if rate_s >= 5000 else "MISSED")
            if producers == 8
            else ""
        )
        print(f"  {producers} producer(s): {rate_s:>10,.0f} puts/s{flag}")
        results[f"durable_puts_{producers}"] = rate_s

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "timewheel.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
