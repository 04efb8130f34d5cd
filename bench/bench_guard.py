"""Cost of the guard entry path beside a plain call, a trivial decorator and the peers.

One process measures every case side by side (the pure twin runs in a child process with
GUARD_PURE=1, which measures its own trivial-decorator baseline). Figures are the median
CPU time per call over several repeats (``time.process_time``, so other load on the machine
counts less than with wall time). ``--callgrind`` adds instruction counts per call from
``valgrind --tool=callgrind``, which do not move with machine load.

    .venv/bin/python bench/bench_guard.py [--calls N] [--repeats R] [--callgrind]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from time import monotonic_ns
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import guard  # noqa: E402
from guard.chain import IMPLEMENTATION  # noqa: E402

RULES = {
    "flow": [
        {"resource": "bench.rule", "count": 1e12},
        {"resource": "bench.blocked", "count": 0},
    ]
}
ASYNC_CASES = ("async with entry(...), QPS rule", "async with no-op context manager")
FLOOR = "pure-Python floor (minimal QPS guard)"


def target(x: Any) -> Any:
    return x


def trivial_decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def cpu_ns_once(fn: Callable[[int], Any], calls: int) -> float:
    start = time.process_time_ns()
    for i in range(calls):
        fn(i)
    return (time.process_time_ns() - start) / calls


def async_ns_once(make_cm: Callable[[], Any], calls: int) -> float:
    async def loop() -> float:
        start = time.process_time_ns()
        for _ in range(calls):
            async with make_cm():
                pass
        return (time.process_time_ns() - start) / calls

    return asyncio.run(loop())


def floor_guard(fn: Callable[..., Any], count: float) -> Callable[..., Any]:
    """The least a pure-Python QPS guard can do, written for speed: one window of two
    500 ms buckets (passes; successes and RT summed), two clock reads, no minute window,
    origins, contexts, plans, slots or concurrency. The floor the pure twin is measured
    against, not a usable guard."""
    state = [0, 0, 0, 0, 0]  # current bucket number, its passes, the previous one's, successes, RT

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        now = monotonic_ns() // 1_000_000
        bucket = now // 500
        if bucket != state[0]:
            state[2] = state[1] if bucket == state[0] + 1 else 0
            state[1] = 0
            state[0] = bucket
        if state[1] + state[2] + 1 > count:
            raise RuntimeError("blocked")
        state[1] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            state[3] += 1
            state[4] += monotonic_ns() // 1_000_000 - now

    return wrapper


class NoopAsyncCM:
    async def __aenter__(self) -> NoopAsyncCM:
        return self

    async def __aexit__(self, *exc: Any) -> bool:
        return False


def build_cases() -> dict[str, Callable[[int], Any]]:
    engine = guard.Guard()
    engine.load_rules(RULES)
    cases: dict[str, Callable[[int], Any]] = {
        "plain call": target,
        "trivial decorator": trivial_decorator(target),
        "@guard, no rule": engine.guard("bench.norule")(target),
        "@guard, QPS reject rule": engine.guard("bench.rule")(target),
        "@guard, rejected (block_handler)": engine.guard(
            "bench.blocked", block_handler=lambda x, error: None
        )(target),
        FLOOR: floor_guard(target, 1e12),
    }

    def with_entry(x: Any) -> Any:
        with engine.entry("bench.rule"):
            return x

    cases["with entry(...), QPS rule"] = with_entry
    return cases


def peer_cases() -> dict[str, Callable[[int], Any]]:
    cases: dict[str, Callable[[int], Any]] = {}
    try:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter
    except ImportError:
        print("limits not installed (pip install -e '.[bench]'): peer skipped", file=sys.stderr)
    else:
        limiter = MovingWindowRateLimiter(MemoryStorage())
        item = parse("1000000000/second")

        def limited(x: Any) -> Any:
            if not limiter.hit(item, "bench"):
                raise RuntimeError("limited")
            return x

        cases["limits moving window"] = limited
    try:
        import pybreaker
    except ImportError:
        print("pybreaker not installed: peer skipped", file=sys.stderr)
    else:
        breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
        cases["pybreaker"] = breaker(target)
    return cases


def measure(calls: int, repeats: int) -> dict[str, float]:
    """Median CPU ns per call of every case. The cases take turns within each repeat, so a
    burst of load on this shared machine lands on all of them rather than on one."""
    cases = {**build_cases(), **peer_cases()}
    engine = guard.Guard()
    engine.load_rules(RULES)
    async_cases: dict[str, Callable[[], Any]] = {
        ASYNC_CASES[0]: lambda: engine.entry("bench.rule"),
        ASYNC_CASES[1]: NoopAsyncCM,
    }
    samples: dict[str, list[float]] = {name: [] for name in [*cases, *async_cases]}
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(cpu_ns_once(fn, calls))
        for name, make_cm in async_cases.items():
            samples[name].append(async_ns_once(make_cm, calls // 2))
    return {name: statistics.median(values) for name, values in samples.items()}


def run_async_case(case: str, calls: int) -> None:
    engine = guard.Guard()
    engine.load_rules(RULES)
    make_cm: Callable[[], Any] = NoopAsyncCM
    if case == ASYNC_CASES[0]:
        make_cm = lambda: engine.entry("bench.rule")  # noqa: E731

    async def loop() -> None:
        for _ in range(calls):
            async with make_cm():
                pass

    asyncio.run(loop())


def callgrind_instructions(case: str, calls: int, pure: bool = False) -> float:
    """Instructions per call of ``case``: two runs, different call counts, differenced."""
    # A fixed hash seed: string hashes steer dict probing, so counts would vary run to run.
    env = {**os.environ, "PYTHONHASHSEED": "0", **({"GUARD_PURE": "1"} if pure else {})}

    def run(n: int) -> int:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, "--one", case, "--calls", str(n)],
            capture_output=True, text=True, check=True, env=env,
        )  # fmt: skip
        for line in out.stderr.splitlines():
            if "Collected" in line:
                return int(line.split()[-1])
        raise RuntimeError(out.stderr[-2000:])

    return (run(calls + 1000) - run(1000)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # a single case, run under callgrind
        if args.one in ASYNC_CASES:
            run_async_case(args.one, args.calls)
            return
        fn = {**build_cases(), **peer_cases()}[args.one]
        for i in range(args.calls):
            fn(i)
        return
    results = measure(args.calls, args.repeats)
    if args.json:
        print(json.dumps(results))
        return
    pure = json.loads(
        subprocess.run(
            [sys.executable, __file__, "--json", "--calls", str(args.calls // 4),
             "--repeats", str(args.repeats)],
            env={**os.environ, "GUARD_PURE": "1"}, capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    report(results, pure, args)


def report(results: dict[str, float], pure: dict[str, float], args: Any) -> None:
    base = results["trivial decorator"]
    print(f"guard entry path, median CPU ns per call ({args.repeats} x {args.calls} calls; "
          f"compiled twin: {IMPLEMENTATION})")  # fmt: skip
    print(f"{'case':44} {'ns/call':>9} {'x decorator':>12}")
    for name, ns in results.items():
        if name.startswith("async"):
            continue
        print(f"{name:44} {ns:9.0f} {ns / base:12.2f}")
    pbase = pure["trivial decorator"]
    for name in ("@guard, no rule", "@guard, QPS reject rule", FLOOR):
        ns = pure[name]
        label = name if name == FLOOR else "pure twin: " + name
        print(f"{label + ' (pure run)':44} {ns:9.0f} {ns / pbase:12.2f}")
    a, n = results["async with entry(...), QPS rule"], results["async with no-op context manager"]
    print(
        f"{'async with entry(...), QPS rule':44} {a:9.0f}   {a / n:.2f} x no-op async CM ({n:.0f})"
    )
    passed, rejected = (
        results["@guard, QPS reject rule"],
        results["@guard, rejected (block_handler)"],
    )
    print(f"rejected / passed call: {rejected / passed:.2f}")
    if "limits moving window" in results:
        peer = results["limits moving window"]
        print(f"limits moving window / @guard QPS rule: {peer / passed:.1f}")
    if args.callgrind:
        print("\ninstructions per call (valgrind --tool=callgrind)")
        counts = {c: callgrind_instructions(c, 20_000) for c in
                  ("trivial decorator", "@guard, no rule", "@guard, QPS reject rule",
                   "@guard, rejected (block_handler)", "with entry(...), QPS rule",
                   *ASYNC_CASES)}  # fmt: skip
        print(f"{'case':44} {'instr/call':>10} {'x decorator':>12}")
        for name, ins in counts.items():
            print(f"{name:44} {ins:10.0f} {ins / counts['trivial decorator']:12.2f}")
        ratio = counts[ASYNC_CASES[0]] / counts[ASYNC_CASES[1]]
        print(f"async with entry / no-op async CM: {ratio:.2f}")
        passed = counts["@guard, QPS reject rule"]
        print(f"rejected / passed call: {counts['@guard, rejected (block_handler)'] / passed:.2f}")
        base = counts["trivial decorator"]
        for name in ("@guard, QPS reject rule", FLOOR):
            ins = callgrind_instructions(name, 5_000, pure=True)
            label = name if name == FLOOR else "pure twin: " + name
            print(f"{label:44} {ins:10.0f} {ins / base:12.2f}")


if __name__ == "__main__":
    main()
