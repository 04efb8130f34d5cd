"""Cost of the protection slots on the entry path, and memory of hot-parameter rules.

Run: ``.venv/bin/python bench/bench_guard_slots.py`` (after ``make build``). One run prints
three tables, medians of several repeats in CPU time (``time.process_time``, steadier than
wall time on a shared machine):

1. a function called through a trivial decorator, through ``@guard`` with no rules, and
   through ``@guard`` with one non-blocking rule of each kind (authority, system, param_flow,
   flow, degrade: all five slots run on every call, inbound so the system rule applies);
2. the same five-slot call with the param_flow argument cycling over 10,000 distinct values
   (a bucket per value, LRU order kept) against one repeated value;
3. memory (tracemalloc) held by one param_flow rule after 1,000,000 distinct values.

Targets (issue 3): five slots <= 3.0x the trivial decorator; 1,000,000 values < 100 MB.
``--quick`` shortens the run. The twin in use is printed (``GUARD_PURE=1`` for pure Python).
``--instructions`` adds table 1 in instructions per call, counted by ``valgrind
--tool=callgrind`` (two runs per case, 1,000 and 21,000 calls, differenced so start-up
cancels out): ratios that do not move with the machine's load.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guard import Guard
from guard.chain import IMPLEMENTATION as CHAIN_IMPL
from guard.degrade.breaker import IMPLEMENTATION as DEGRADE_IMPL
from guard.param_flow.buckets import IMPLEMENTATION as PARAM_IMPL

FIVE_RULES: dict[str, Any] = {
    "authority": [{"resource": "work", "strategy": "white", "origins": ["app"]}],
    "system": {
        "max_qps": 1e12,
        "max_concurrency": 1_000_000,
        "max_avg_rt_ms": 1e9,
        "max_load": 1e9,
        "max_cpu": 1.0,
    },
    "param_flow": [{"resource": "work", "param_index": 0, "count": 1e12}],
    "flow": [{"resource": "work", "count": 1e12}],
    "degrade": [
        {"resource": "work", "strategy": "error_ratio", "threshold": 0.5, "recovery_sec": 1}
    ],
}


def trivial(func: Callable[..., Any]) -> Callable[..., Any]:
    """The floor: a decorator that only forwards the call."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def work(x: Any) -> Any:
    return x


def per_call_ns(fn: Callable[[Any], Any], values: list[Any], calls: int, repeats: int) -> float:
    """Median CPU nanoseconds per call of ``fn`` over ``values`` (cycled)."""
    n = len(values)
    rounds = max(1, calls // n)
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.process_time_ns()
        for _ in range(rounds):
            for v in values:
                fn(v)
        samples.append((time.process_time_ns() - start) / (rounds * n))
    return statistics.median(samples)


def table(title: str, rows: list[tuple[str, float]], base: float) -> None:
    print(f"\n{title}")
    print(f"  {'case':<44} {'ns/call':>9} {'x floor':>8}")
    for name, ns in rows:
        print(f"  {name:<44} {ns:>9.0f} {ns / base:>7.2f}x")


def entry_cases(five: Guard | None = None) -> dict[str, Callable[[Any], Any]]:
    bare = Guard()
    if five is None:
        five = Guard()
    five.load_rules(FIVE_RULES)
    return {
        "trivial decorator (floor)": trivial(work),
        "@guard, no rules": bare.guard("work")(work),
        "@guard inbound, no rules": bare.guard("work2", inbound=True)(work),
        "@guard inbound with origin, no rules": bare.guard("work3", origin="app", inbound=True)(
            work
        ),
        "@guard inbound, 5 slots, 1 rule each": five.guard("work", origin="app", inbound=True)(
            work
        ),
    }


def bench_slots(calls: int, repeats: int) -> float:
    five = Guard()
    fns = entry_cases(five)
    values = ["k"] * 100
    rows = [(name, per_call_ns(fn, values, calls, repeats)) for name, fn in fns.items()]
    blocked = five.stats("work").total_block
    assert blocked == 0, f"a rule blocked {blocked} calls: the case must not block"
    table("1. entry path, one repeated argument", rows, rows[0][1])
    ratio = rows[-1][1] / rows[0][1]
    print(f"  five slots / trivial = {ratio:.2f}x (target <= 3.0x)")
    return ratio


def bench_distinct(calls: int, repeats: int) -> None:
    g = Guard()
    g.load_rules(FIVE_RULES)
    fn = g.guard("work", origin="app", inbound=True)(work)
    floor = trivial(work)
    distinct = [f"user-{i}" for i in range(10_000)]
    rows = [
        ("trivial decorator (floor), 10,000 values", per_call_ns(floor, distinct, calls, repeats)),
        ("5 slots, one value", per_call_ns(fn, ["k"] * 100, calls, repeats)),
        ("5 slots, 10,000 distinct values", per_call_ns(fn, distinct, calls, repeats)),
    ]
    table("2. param_flow with many distinct values (LRU holds 4000)", rows, rows[0][1])


def bench_memory(values: int) -> float:
    g = Guard()
    g.load_rules({"param_flow": [{"resource": "hot", "param_index": 0, "count": 1e12}]})
    fn = g.guard("hot")(work)
    fn("warm-up")
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(values):
        fn(i)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    state = g._slot("param_flow").states("hot")[0]
    held_mb = (current - base) / 1e6
    print(f"\n3. memory of one param_flow rule after {values:,} distinct values")
    print(f"  values kept by the LRU: {len(state.buckets):,} (capacity {state.capacity:,})")
    print(f"  held: {held_mb:.2f} MB, peak: {(peak - base) / 1e6:.2f} MB (target < 100 MB)")
    return held_mb


def run_case(index: int, calls: int) -> None:
    """Child of ``--instructions``: call one case ``calls`` times under callgrind."""
    fn = list(entry_cases().values())[index]
    for _ in range(calls):
        fn("k")


def instructions(index: int, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, __file__, "--run-case", str(index), "--calls", str(calls)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split()[-1])
    raise RuntimeError("callgrind printed no instruction count")


def bench_instructions() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind on PATH")
    rows = []
    for index, name in enumerate(entry_cases()):
        per_call = (instructions(index, 21_000) - instructions(index, 1_000)) / 20_000
        rows.append((name, per_call))
    print("\n1b. entry path in instructions per call (callgrind)")
    print(f"  {'case':<44} {'instr':>9} {'x floor':>8}")
    for name, n in rows:
        print(f"  {name:<44} {n:>9.0f} {n / rows[0][1]:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    parser.add_argument("--instructions", action="store_true", help="also count instructions")
    parser.add_argument("--run-case", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_case is not None:
        run_case(args.run_case, args.calls)
        return
    calls, repeats, values = (50_000, 3, 200_000) if args.quick else (300_000, 7, 1_000_000)
    print(f"python {sys.version.split()[0]}; twins: chain={CHAIN_IMPL} degrade={DEGRADE_IMPL} ")
    print(f"param_flow={PARAM_IMPL}; {calls:,} calls x {repeats} repeats, CPU time medians")
    bench_slots(calls, repeats)
    if args.instructions:
        bench_instructions()
    bench_distinct(calls, repeats)
    bench_memory(values)


if __name__ == "__main__":
    main()
