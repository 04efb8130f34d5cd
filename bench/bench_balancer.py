"""Cost of one upstream pick per policy, side by side in one run.

Floor: ``next()`` on an ``itertools.cycle`` (the least a balancer can do). Each case makes
N picks (with ``on_start``/``on_done`` where the proxy would call them), timed in CPU time
(``time.process_time``), repeated; the table shows the median microseconds per pick and
the ratio to the floor. Run: ``.venv/bin/python bench/bench_balancer.py``.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

from ext.sidecar.balancer import make_balancer
from ext.sidecar.config import Upstream

N = 100_000
REPEATS = 5
UPS = [Upstream(f"http://10.0.0.{i}:80", f"10.0.0.{i}", 80, float(i)) for i in range(1, 5)]


def case_floor() -> Callable[[], None]:
    cycle = itertools.cycle(UPS)

    def run() -> None:
        for _ in range(N):
            next(cycle)

    return run


def case(policy: str, slow_start: bool = False) -> Callable[[], None]:
    first = make_balancer(policy, UPS[:3])
    b = make_balancer(policy, UPS, previous=first, slow_start_sec=3600 if slow_start else 0)
    keys = [str(i) for i in range(1024)]

    def run() -> None:
        pick, start, done = b.pick, b.on_start, b.on_done
        for i in range(N):
            key = keys[i & 1023]
            up = pick(lambda key=key: key)
            start(up)
            done(up, False)

    return run


def measure(fn: Callable[[], None]) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times) / N * 1e6


def main() -> None:
    cases = {"floor: itertools.cycle": case_floor()}
    for policy in ("round_robin", "weighted_random", "least_active", "consistent_hash"):
        cases[policy] = case(policy)
        cases[f"{policy} + slow start ramping"] = case(policy, slow_start=True)
    results = {name: measure(fn) for name, fn in cases.items()}
    floor = results["floor: itertools.cycle"]
    print(f"{'case (4 upstreams, weights 1:2:3:4)':40} {'us/pick':>9} {'x floor':>8}")
    for name, us in results.items():
        print(f"{name:40} {us:9.3f} {us / floor:8.1f}")


if __name__ == "__main__":
    main()
