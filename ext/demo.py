"""``guard demo``: protected functions under generated traffic, printed once a second.

Three resources show three flow behaviours with the rules below: a QPS limit that rejects
the excess, a warm-up limit that starts at a third of its rate and ramps up, and a rate
limiter that queues callers and lets them through evenly spaced. Each line is one second of
one resource: pass and block QPS and the average RT.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from guard import BlockError, Guard

__all__ = ["DEMO_RULES", "add_arguments", "run"]

DEMO_RULES: dict[str, Any] = {
    "flow": [
        {"resource": "demo.search", "count": 20},
        {"resource": "demo.checkout", "count": 30, "control": "warm_up", "warm_up_sec": 5},
        {"resource": "demo.report", "count": 5, "control": "rate_limiter", "max_queue_ms": 400},
    ]
}

# Offered load per resource, calls per second (spread over the second).
OFFERED = {"demo.search": 60, "demo.checkout": 60, "demo.report": 12}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=int, default=10, help="how long to run (default 10)")


def _driver(engine: Guard, resource: str, rate: int, stop: threading.Event) -> None:
    """Call a guarded function ``rate`` times a second until ``stop``."""

    @engine.guard(resource)
    def work() -> None:
        time.sleep(0.002)

    interval = 1.0 / rate
    next_call = time.monotonic()
    while not stop.is_set():
        try:
            work()
        except BlockError:
            pass
        next_call += interval
        delay = next_call - time.monotonic()
        if delay > 0:
            stop.wait(delay)


def run(args: argparse.Namespace) -> int:
    if args.seconds < 1:
        print("guard demo: --seconds must be >= 1")
        return 2
    engine = Guard()
    engine.load_rules(DEMO_RULES)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_driver, args=(engine, name, rate, stop), daemon=True)
        for name, rate in OFFERED.items()
    ]
    print("rules: search QPS 20 (reject) | checkout QPS 30 (warm-up 5 s) | "
          "report QPS 5 (rate limiter, queue 400 ms)")  # fmt: skip
    print(f"{'t':>3} {'resource':15} {'offered':>8} {'pass/s':>7} {'block/s':>8} {'avg rt ms':>10}")
    for t in threads:
        t.start()
    # Per-second figures are differences of the minute totals: the one-second window read at
    # an arbitrary instant mixes a full bucket with a just-started one.
    last = {name: (0, 0) for name in OFFERED}
    try:
        for second in range(1, args.seconds + 1):
            time.sleep(1.0)
            for name, rate in OFFERED.items():
                s = engine.stats(name)
                passed, blocked = s.total_pass - last[name][0], s.total_block - last[name][1]
                last[name] = (s.total_pass, s.total_block)
                print(f"{second:3d} {name:15} {rate:8d} {passed:7d} {blocked:8d} "
                      f"{s.avg_rt_ms:10.1f}", flush=True)  # fmt: skip
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=2)
    print("\nlast minute totals:")
    for name in OFFERED:
        s = engine.stats(name)
        print(f"  {name:15} passed {s.total_pass:5d}  blocked {s.total_block:5d}")
    return 0
