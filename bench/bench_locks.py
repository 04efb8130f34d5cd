"""Lock benchmarks: ours beside the peers, side by side in one run, medians and ratios.

Run from the repository root: ``python bench/bench_locks.py`` (``--quick`` for a short run).
Every Redis here is a spawned redis-server on a free loopback port, never the system one.

Sections
  1. acquire+release, one Redis: RedisLock vs redis-py Lock vs a raw SET NX PX + EVALSHA pair
     (the floor), python-redis-lock for reference. Wall time per op (median, p99) and client CPU
     time per op (time.process_time, steadier on a shared machine).
  2. acquire+release, Redlock over 5 masters: ours vs pottery Redlock vs a raw multiplexed
     5-node SET NX PX + EVALSHA pair (the floor).
  3. asyncio fronts: locks.aio.RedisLock vs redis.asyncio Lock; locks.aio.Redlock(5).
  4. Redlock with 3 of 5 masters stalled (SIGSTOP): time for acquire(blocking=False) to fail.
  5. Contention: 8 worker threads on one name, hold 0 and 1 ms: hand-overs/s, p99 wait, and
     fairness (min/max share of the workers) for RedisLock, redis-py Lock, python-redis-lock,
     and Redlock(5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pottery  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aredis  # noqa: E402
import redis_lock  # noqa: E402

import locks  # noqa: E402
import locks.aio  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

RELEASE_LUA = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
ROWS: list[dict[str, object]] = []


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(section: str, name: str, wall: list[float], cpu: float, base: str | None) -> None:
    row = {
        "section": section,
        "name": name,
        "median_us": statistics.median(wall) * 1e6,
        "p99_us": pct(wall, 0.99) * 1e6,
        "cpu_us": cpu * 1e6,
        "base": base,
    }
    ROWS.append(row)


def interleave(impls: dict[str, Callable[[], None]], total: int, batch: int = 100) -> dict:
    """Run the implementations in alternating batches so machine load hits all alike."""
    wall: dict[str, list[float]] = {k: [] for k in impls}
    cpu: dict[str, float] = dict.fromkeys(impls, 0.0)
    for fn in impls.values():  # warm up: connections, scripts
        for _ in range(20):
            fn()
    done = 0
    while done < total:
        for name, fn in impls.items():
            c0 = time.process_time()
            for _ in range(batch):
                t0 = time.perf_counter()
                fn()
                wall[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
        done += batch
    return {k: (wall[k], cpu[k] / len(wall[k])) for k in impls}


def print_section(section: str) -> None:
    rows = [r for r in ROWS if r["section"] == section]
    base = {r["name"]: r for r in rows}
    print(f"\n== {section}")
    print(f"{'implementation':44} {'median us':>10} {'p99 us':>10} {'cpu us/op':>10} {'ratio':>14}")
    for r in rows:
        ratio = ""
        if r["base"]:
            b = base[r["base"]]
            ratio = f"{r['median_us'] / b['median_us']:.2f}x/{r['cpu_us'] / b['cpu_us']:.2f}x cpu"
        print(
            f"{r['name']:44} {r['median_us']:10.1f} {r['p99_us']:10.1f} "
            f"{r['cpu_us']:10.1f} {ratio:>14}"
        )


# -- 1. one Redis ---------------------------------------------------------------------------
def bench_single(port: int, n: int) -> None:
    client = redis.Redis(port=port)
    ours = locks.RedisLock(client, "b1", ttl=10)
    peer = client.lock("b1-peer", timeout=10)
    prl = redis_lock.Lock(client, "b1-prl", expire=10)
    release = client.register_script(RELEASE_LUA)
    sha = release.sha
    client.script_load(RELEASE_LUA)

    def raw() -> None:
        token = uuid.uuid4().hex
        client.set("b1-raw", token, nx=True, px=10000)
        client.execute_command("EVALSHA", sha, 1, "b1-raw", token)

    def mine() -> None:
        ours.acquire(blocking=False)
        ours.release()

    def redis_py() -> None:
        peer.acquire(blocking=False)
        peer.release()

    def python_redis_lock() -> None:
        prl.acquire(blocking=False)
        prl.release()

    res = interleave(
        {"raw SET NX PX + EVALSHA": raw, "locks.RedisLock": mine, "redis-py Lock": redis_py,
         "python-redis-lock": python_redis_lock},
        n,
    )  # fmt: skip
    s = "acquire+release, one Redis (sync)"
    base = "raw SET NX PX + EVALSHA"
    for name, (wall, cpu) in res.items():
        report(s, name, wall, cpu, None if name == base else base)


# -- 2. Redlock(5) ----------------------------------------------------------------------------
def bench_redlock(ports: list[int], n: int) -> None:
    clients = [redis.Redis(port=p) for p in ports]
    ours = locks.Redlock(clients, "b2", ttl=10)
    pot = pottery.Redlock(key="b2-pottery", masters=clients, auto_release_time=10)
    conns = [c.connection_pool.get_connection() for c in clients]
    for c in clients:
        c.script_load(RELEASE_LUA)
    sha = clients[0].register_script(RELEASE_LUA).sha

    def raw() -> None:
        token = uuid.uuid4().hex
        for c in conns:
            c.send_command("SET", "b2-raw", token, "NX", "PX", 10000)
        for c in conns:
            c.read_response()
        for c in conns:
            c.send_command("EVALSHA", sha, 1, "b2-raw", token)
        for c in conns:
            c.read_response()

    def mine() -> None:
        ours.acquire(blocking=False)
        ours.release()

    def pottery_() -> None:
        pot.acquire(blocking=False)
        pot.release()

    s = "acquire+release, Redlock over 5 masters (sync)"
    base = "raw multiplexed 5-node SET + EVALSHA"
    res = interleave({base: raw, "locks.Redlock": mine}, n)
    for name, (wall, cpu) in res.items():
        report(s, name, wall, cpu, None if name == base else base)
    res = interleave({"pottery Redlock": pottery_}, max(100, n // 10), batch=50)
    for name, (wall, cpu) in res.items():
        report(s, name, wall, cpu, base)


# -- 3. asyncio ------------------------------------------------------------------------------
async def bench_async(port: int, ports: list[int], n: int) -> None:
    client = aredis.Redis(port=port)
    masters = [aredis.Redis(port=p) for p in ports]
    ours = locks.aio.RedisLock(client, "b3", ttl=10)
    peer = client.lock("b3-peer", timeout=10)
    rl = locks.aio.Redlock(masters, "b3-rl", ttl=10)

    async def run(fn, count: int) -> tuple[list[float], float]:
        for _ in range(20):
            await fn()
        wall = []
        c0 = time.process_time()
        for _ in range(count):
            t0 = time.perf_counter()
            await fn()
            wall.append(time.perf_counter() - t0)
        return wall, (time.process_time() - c0) / count

    async def mine() -> None:
        await ours.acquire(blocking=False)
        await ours.release()

    async def redis_py() -> None:
        await peer.acquire(blocking=False)
        await peer.release()

    async def redlock() -> None:
        await rl.acquire(blocking=False)
        await rl.release()

    s = "acquire+release, asyncio fronts"
    results: dict[str, tuple[list[float], float]] = {"redis.asyncio Lock": ([], 0.0)}
    results["locks.aio.RedisLock"] = ([], 0.0)
    for _ in range(5):  # alternate to share the machine's load
        for name, fn in (("redis.asyncio Lock", redis_py), ("locks.aio.RedisLock", mine)):
            wall, cpu = await run(fn, n // 5)
            results[name] = (results[name][0] + wall, results[name][1] + cpu / 5)
    for name, (wall, cpu) in results.items():
        report(s, name, wall, cpu, None if name == "redis.asyncio Lock" else "redis.asyncio Lock")
    wall, cpu = await run(redlock, n // 2)
    report(s, "locks.aio.Redlock (5 masters)", wall, cpu, None)
    await client.aclose()
    for m in masters:
        await m.aclose()


# -- 4. stalled masters -----------------------------------------------------------------------
def bench_stalled(servers: list[RedisServer], tries: int, with_pottery: bool) -> None:
    node_timeout = 0.05
    clients = [redis.Redis(port=s.port, socket_timeout=0.1) for s in servers]
    ours = locks.Redlock(clients, "b4", ttl=10, node_timeout=node_timeout)
    for _ in range(5):  # warm: connections open, scripts loaded on every master
        assert ours.acquire(timeout=5)
        ours.release()
    pot = pottery.Redlock(key="b4-pottery", masters=clients, auto_release_time=10)
    assert pot.acquire(timeout=5)
    pot.release()
    for s in servers[:3]:
        s.pause()
    try:
        times = []
        for _ in range(tries):
            t0 = time.perf_counter()
            got = ours.acquire(blocking=False)
            times.append(time.perf_counter() - t0)
            assert not got
        print("\n== Redlock(5), 3 masters stalled: acquire(blocking=False) until it returns False")
        print(
            f"locks.Redlock node_timeout={node_timeout * 1000:.0f} ms: median "
            f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {tries}"
            f" tries (target <= node_timeout + 10 ms = {node_timeout * 1000 + 10:.0f} ms)"
        )
        ROWS.append({"section": "stalled", "name": "locks.Redlock", "median_ms":
                     statistics.median(times) * 1000, "max_ms": max(times) * 1000})  # fmt: skip
        if with_pottery:
            t0 = time.perf_counter()
            got = pot.acquire(blocking=False)
            took = time.perf_counter() - t0
            print(f"pottery Redlock, clients socket_timeout=100 ms (redis-py default retries): "
                  f"{took * 1000:.0f} ms (acquired={got})")  # fmt: skip
            ROWS.append({"section": "stalled", "name": "pottery", "ms": took * 1000})
    finally:
        for s in servers[:3]:
            s.resume()
    for c in clients:
        c.close()


# -- 5. contention ---------------------------------------------------------------------------
def contend(make: Callable[[int], object], enter, leave, workers: int, hold: float, secs: float):
    counts = [0] * workers
    waits: list[float] = []
    barrier = threading.Barrier(workers)
    lock_ = threading.Lock()

    def run(i: int) -> None:
        lk = make(i)
        mine: list[float] = []
        barrier.wait()
        end = time.monotonic() + secs
        while time.monotonic() < end:
            t0 = time.perf_counter()
            enter(lk)
            mine.append(time.perf_counter() - t0)
            if hold:
                time.sleep(hold)
            counts[i] += 1
            leave(lk)
        with lock_:
            waits.extend(mine)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / secs, pct(waits, 0.99) * 1000, min(counts) / max(max(counts), 1), counts


def bench_contention(port: int, ports: list[int], secs: float) -> None:
    client = redis.Redis(port=port, max_connections=64)
    masters = [redis.Redis(port=p) for p in ports]
    impls = {
        "locks.RedisLock": (
            lambda i: locks.RedisLock(client, "c1", ttl=10),
            lambda lk: lk.acquire(),
            lambda lk: lk.release(),
        ),
        "redis-py Lock (sleep=0.1)": (
            lambda i: client.lock("c2", timeout=10),
            lambda lk: lk.acquire(),
            lambda lk: lk.release(),
        ),
        "python-redis-lock": (
            lambda i: redis_lock.Lock(client, "c3", expire=10),
            lambda lk: lk.acquire(),
            lambda lk: lk.release(),
        ),
        "locks.Redlock (5 masters)": (
            lambda i: locks.Redlock(masters, "c4", ttl=10),
            lambda lk: lk.acquire(),
            lambda lk: lk.release(),
        ),
    }
    print("\n== Contention: 8 threads on one name (hand-overs/s, p99 wait, fairness min/max)")
    print(
        f"{'implementation':30} {'hold':>6} {'handovers/s':>12} {'p99 wait ms':>12} {'min/max':>8}"
    )
    for hold in (0.0, 0.001):
        for name, (make, enter, leave) in impls.items():
            rate, p99, fair, counts = contend(make, enter, leave, 8, hold, secs)
            ROWS.append({"section": "contention", "name": name, "hold_ms": hold * 1000,
                         "handovers_s": rate, "p99_wait_ms": p99, "fairness": fair,
                         "counts": counts})  # fmt: skip
            print(f"{name:30} {hold * 1000:4.0f}ms {rate:12.0f} {p99:12.1f} {fair:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--no-pottery-stall", action="store_true", help="skip pottery's ~10 s stall")
    args = ap.parse_args()
    n = 600 if args.quick else 3000
    secs = 1.0 if args.quick else 3.0
    tmp = Path(tempfile.mkdtemp(prefix="bench-locks-"))
    single = RedisServer(tmp / "single").start()
    masters = [RedisServer(tmp / f"m{i}").start() for i in range(5)]
    stalled = [RedisServer(tmp / f"s{i}").start() for i in range(5)]
    ports = [m.port for m in masters]
    try:
        print(f"python {sys.version.split()[0]}, redis-py {redis.__version__}, "
              f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")  # fmt: skip
        bench_single(single.port, n)
        print_section("acquire+release, one Redis (sync)")
        bench_redlock(ports, n // 2)
        print_section("acquire+release, Redlock over 5 masters (sync)")
        asyncio.run(bench_async(single.port, ports, n))
        print_section("acquire+release, asyncio fronts")
        bench_stalled(stalled, 20, not args.no_pottery_stall)
        bench_contention(single.port, ports, secs)
    finally:
        for s in [single, *masters, *stalled]:
            s.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_locks.json").write_text(json.dumps(ROWS, indent=1))


if __name__ == "__main__":
    main()
