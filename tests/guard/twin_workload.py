"""A seeded workload over the whole engine; prints every decision and the final statistics.

Run as ``python -m tests.guard.twin_workload SEED``; test_twin_parity.py runs it under each
twin and compares the output line by line.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

from guard import BlockError, Guard, ManualClock, context
from guard.chain import IMPLEMENTATION

FLOW = [
    {"resource": "reject", "count": 5},
    {"resource": "warm", "count": 20, "control": "warm_up", "warm_up_sec": 3},
    {"resource": "queue", "count": 50, "control": "rate_limiter", "max_queue_ms": 100},
    {
        "resource": "wq",
        "count": 30,
        "control": "warm_up_rate_limiter",
        "warm_up_sec": 2,
        "max_queue_ms": 80,
    },
    {"resource": "threads", "count": 3, "grade": "concurrency"},
    {"resource": "apps", "count": 2, "limit_app": "web"},
    {"resource": "apps", "count": 1, "limit_app": "other"},
    {"resource": "chained", "count": 3, "strategy": "chain", "ref_resource": "checkout"},
    {"resource": "related", "count": 4, "strategy": "relate", "ref_resource": "reject"},
]
RESOURCES = sorted({str(r["resource"]) for r in FLOW} | {"free"})
ORIGINS = [None, "", "web", "app", "batch"]
CONTEXTS = [None, "checkout", "browse"]


def main(seed: int) -> None:
    rng = random.Random(seed)
    # A clock below zero too: the compiled twin divides as C does and must round down alike.
    clock = ManualClock(rng.choice([0, 999, 10**12, -5_000]))
    g = Guard(clock=clock, sample_count=rng.choice([1, 2, 4, 10]))
    g.load_rules({"flow": FLOW})
    held: list[Any] = []
    out = [f"start {clock.now_ms()}"]
    for step in range(1500):
        clock.advance(rng.choice([0, 0, 1, 7, 50, 130, 499, 1000]))
        roll = rng.random()
        if roll < 0.02:
            flow = [dict(r) for r in FLOW]
            if rng.random() < 0.5:
                rng.shuffle(flow)  # equal rules: state kept
            else:
                flow[rng.randrange(len(flow))]["count"] = rng.choice([0, 2, 7])
            out.append(f"{step} reload {g.load_rules({'flow': flow})}")
            continue
        if roll < 0.25 and held:
            e = held.pop(rng.randrange(len(held)))
            if rng.random() < 0.3:
                e.trace(RuntimeError("business"))
            e.exit()
            out.append(f"{step} exit {e.resource} rt={e.rt_ms}")
            continue
        res = rng.choice(RESOURCES)
        origin = rng.choice(ORIGINS)
        ctx = rng.choice(CONTEXTS)
        count = rng.choice([1, 1, 1, 2])
        try:
            if ctx is None:
                e = g.enter(res, origin=origin, count=count)
            else:
                with context(ctx, origin=rng.choice(["", "web"])):
                    e = g.enter(res, origin=origin, count=count)
        except BlockError as err:
            retry = None if err.retry_after is None else round(err.retry_after, 6)
            out.append(f"{step} block {res} {origin} {ctx} {err.reason} {retry} {clock.now_ms()}")
            continue
        out.append(f"{step} pass {res} {origin} {ctx} {clock.now_ms()}")
        if rng.random() < 0.6:
            held.append(e)
        else:
            e.exit()
    out.extend(asyncio.run(async_part(g, clock, rng)))
    for e in held:
        e.exit()
    for name in g.resources():
        s = g.stats(name).as_dict()
        out.append(" ".join(f"{k}={v!r}" for k, v in s.items()))
    print("\n".join(out))
    print(f"implementation {IMPLEMENTATION}", file=sys.stderr)


async def async_part(g: Guard, clock: ManualClock, rng: random.Random) -> list[str]:
    out = [f"async reload {g.load_rules({'flow': FLOW})}"]

    @g.guard("reject", block_handler=lambda i, error: f"handled {i} {error.reason}")
    async def limited(i: int) -> str:
        return f"limited {i}"

    @g.guard("queue", fallback=lambda i, error: f"fallback {i} {type(error).__name__}")
    async def work(i: int) -> str:
        clock.advance(rng.choice([0, 3]))
        if i % 7 == 0:
            raise KeyError(i)
        return f"done {i}"

    async def call(i: int) -> str:
        first = await limited(i)
        try:
            return f"async {first} {await work(i)} {clock.now_ms()}"
        except BlockError as err:
            return f"async {first} raised {err.reason} {clock.now_ms()}"

    for batch in range(25):
        clock.advance(rng.choice([0, 5, 20, 300]))
        # Concurrent callers fill the queue: some wait, some are refused.
        out.extend(await asyncio.gather(*(call(batch * 8 + i) for i in range(8))))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]))
