"""Cluster flow control: decisions/s and added latency, local vs Redis, 1 and 3 processes.

Run: ``.venv/bin/python bench/bench_cluster.py [--seconds 2] [--json bench/results/cluster.json]``

Spawns its own redis-server on a free loopback port. Each scenario runs N engine
processes (N = 1, 3), each deciding as fast as it can on one resource for ``--seconds``:

* ``local``: a plain flow rule (the floor: what the engine costs without Redis);
* ``leasing``: the same rule with ``cluster: {lease_ms: 100}`` (decisions from leased tokens);
* ``strict``: ``cluster: {lease_ms: 0}`` (one Redis round trip per decision).

The count is high enough that nothing is refused, so every decision is a full pass.
Per process: decisions/s (wall), CPU microseconds per decision, median and p99 latency per
decision, and Redis calls per decision (the process's own count over the measured span,
heartbeats and lease refills included). "added" is
the median minus the local median of the same process count, in the same run.

Then the accuracy run: 3 processes offering 300/s each to one global rule of 300/s for
``--accuracy-seconds``, with and without leasing: admitted/s against the limit.

Last the fallback run: the same load with ``timeout_ms: 50`` on a Redis of its own, which
is SIGSTOPped for one second mid-run. Per process: how long after the SIGSTOP it switched
to local enforcement, how long after the first request Redis left unanswered (the moment
a process can see Redis stop: it switches within ``timeout_ms`` of that), the longest
any call waited for Redis, and how long after SIGCONT it was back on the shared window.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench_cluster: redis-server is not on PATH")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-cluster-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        self.client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- workers (run in their own processes) ------------------------------------------------


def worker_throughput(spec: dict[str, Any]) -> dict[str, Any]:
    from guard import BlockError, Guard

    engine = Guard()
    engine.load_rules(spec["rules"])
    resource = spec["resource"]
    warm_until = spec["start"] - 0.3
    while time.monotonic() < spec["start"]:
        if time.monotonic() > warm_until:  # warm caches, leases and connections
            try:
                with engine.entry(resource):
                    pass
            except BlockError:
                pass
        else:
            time.sleep(0.005)
    from guard.flow.cluster import cluster_metrics
    from guard.flow.cluster.link import links

    def redis_calls() -> int:
        return sum(link.calls for link in links())

    samples: list[int] = []
    blocked = n = 0
    calls0 = redis_calls()
    end = spec["start"] + spec["seconds"]
    clock = time.perf_counter_ns
    cpu0, wall0 = time.process_time(), time.monotonic()
    while True:
        t0 = clock()
        try:
            with engine.entry(resource):
                pass
        except BlockError:
            blocked += 1
        samples.append(clock() - t0)
        n += 1
        if not n & 127 and time.monotonic() >= end:
            break
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    calls = redis_calls() - calls0
    samples.sort()
    return {
        "decisions": n,
        "blocked": blocked,
        "per_s": n / wall,
        "cpu_us": cpu / n * 1e6,
        "median_us": samples[len(samples) // 2] / 1000.0,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000.0,
        "calls": calls,
        "fallbacks": sum(s.fallback_total for s in cluster_metrics()),
    }


class Transitions(logging.Handler):
    """Fallbacks as (when, when the first unanswered request was sent); recoveries."""

    def __init__(self) -> None:
        super().__init__()
        self.fallback: list[tuple[float, float]] = []
        self.recovery: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "enforcing locally" in message:
            self.fallback.append((time.monotonic(), getattr(record, "unanswered_since", 0.0)))
        elif "enforcing cluster-wide" in message:
            self.recovery.append(time.monotonic())


def worker_paced(spec: dict[str, Any]) -> dict[str, Any]:
    from guard import BlockError, Guard
    from guard.flow.cluster.link import links

    transitions = Transitions()
    logging.getLogger("guard.flow.cluster").addHandler(transitions)
    engine = Guard()
    engine.load_rules(spec["rules"])
    resource, rate = spec["resource"], spec["rate"]
    while time.monotonic() < spec["start"]:
        time.sleep(0.001)
    for link in links():  # the run's waits, not the start-up's
        link.longest_wait = 0.0
    passed = 0
    slowest = 0.0
    for i in range(int(rate * spec["seconds"])):
        delay = spec["start"] + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        try:
            with engine.entry(resource):
                passed += 1
        except BlockError:
            pass
        slowest = max(slowest, time.monotonic() - t0)
    return {
        "passed": passed,
        "slowest": slowest,
        "longest_wait": max((link.longest_wait for link in links()), default=0.0),
        "fallback": transitions.fallback,
        "recovery": transitions.recovery,
    }


# -- driver ------------------------------------------------------------------------------


def run_workers(
    kind: str, spec: dict[str, Any], processes: int, during: Any = None
) -> list[dict[str, Any]]:
    """Run ``processes`` workers; ``during(start)`` runs meanwhile (the fault run)."""
    spec = {**spec, "start": time.monotonic() + 1.5 + 0.3 * processes}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, json.dumps(spec)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(processes)
    ]
    if during is not None:
        during(spec["start"])
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=spec["seconds"] + 60)
        if proc.returncode != 0:
            raise SystemExit(f"bench_cluster: a {kind} worker failed")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def rules_for(
    mode: str, url: str, resource: str, count: float, timeout_ms: int = 1000
) -> dict[str, Any]:
    rule: dict[str, Any] = {"resource": resource, "count": count}
    if mode != "local":
        # 1000 ms by default: on a busy machine a 50 ms stall would measure the fallback.
        lease_ms = 100 if mode == "leasing" else 0
        rule["cluster"] = {"url": url, "lease_ms": lease_ms, "timeout_ms": timeout_ms}
    return {"flow": [rule]}


def throughput(redis: Redis, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for processes in (1, 3):
        for mode in ("local", "leasing", "strict"):
            resource = f"bench.{mode}.{processes}"
            spec = {"rules": rules_for(mode, redis.url, resource, 1e9), "resource": resource}
            spec["seconds"] = seconds
            results = run_workers("throughput", spec, processes)
            calls = sum(r["calls"] for r in results)  # refiller and callers, measured span
            decisions = sum(r["decisions"] for r in results)
            rows.append(
                {
                    "mode": mode,
                    "processes": processes,
                    "per_s": statistics.median(r["per_s"] for r in results),
                    "cpu_us": statistics.median(r["cpu_us"] for r in results),
                    "median_us": statistics.median(r["median_us"] for r in results),
                    "p99_us": statistics.median(r["p99_us"] for r in results),
                    "calls_per_decision": calls / decisions,
                    "blocked": sum(r["blocked"] for r in results),
                    "fallbacks": sum(r["fallbacks"] for r in results),
                }
            )
    for row in rows:
        local = next(r for r in rows if r["mode"] == "local" and r["processes"] == row["processes"])
        row["added_us"] = row["median_us"] - local["median_us"]
        row["vs_local"] = row["per_s"] / local["per_s"]
    return rows


def accuracy(redis: Redis, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for mode in ("leasing", "strict"):
        resource = f"accuracy.{mode}"
        spec = {"rules": rules_for(mode, redis.url, resource, 300), "resource": resource}
        spec.update(rate=300.0, seconds=seconds)
        passed = sum(r["passed"] for r in run_workers("paced", spec, 3))
        rows.append({"mode": mode, "admitted_per_s": passed / seconds, "limit": 300})
    return rows


def fallback(timeout_ms: int) -> list[dict[str, Any]]:
    """3 paced processes per mode; their Redis is SIGSTOPped from 1 s to 2 s into the run."""
    return [fallback_run(mode, timeout_ms) for mode in ("leasing", "strict")]


def fallback_run(mode: str, timeout_ms: int) -> dict[str, Any]:
    redis = Redis()
    marks: dict[str, float] = {}

    def fault(start: float) -> None:
        time.sleep(max(0.0, start + 1.0 - time.monotonic()))
        marks["paused"] = time.monotonic()
        redis.pause()
        time.sleep(1.0)
        marks["resumed"] = time.monotonic()
        redis.resume()

    resource = f"fallback.{mode}"
    spec = {"rules": rules_for(mode, redis.url, resource, 300, timeout_ms), "resource": resource}
    spec.update(rate=300.0, seconds=3.0)
    try:
        results = run_workers("paced", spec, 3, fault)
    finally:
        redis.stop()
    paused, resumed = marks["paused"], marks["resumed"]
    switched = []
    for r in results:
        after = [(at, since) for at, since in r["fallback"] if at >= paused]
        if after:
            switched.append(after[0])
    back = [min(t for t in r["recovery"] if t >= resumed) for r in results
            if any(t >= resumed for t in r["recovery"])]  # fmt: skip
    return {
        "mode": mode,
        "timeout_ms": timeout_ms,
        "switched": len(switched),
        "after_stop_ms": [(at - paused) * 1000 for at, _ in switched],
        "after_unanswered_ms": [(at - since) * 1000 for at, since in switched],
        "longest_wait_ms": max(r["longest_wait"] for r in results) * 1000,
        "slowest_decision_ms": max(r["slowest"] for r in results) * 1000,
        "recovery_ms": [(t - resumed) * 1000 for t in back],
    }


def _median_max(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "-"


def print_fallback(rows: list[dict[str, Any]]) -> None:
    print("fallback: 3 processes x 300/s offered, one global rule of 300/s, Redis SIGSTOPped 1 s")
    print("  switch to local: after the SIGSTOP, and after the first request Redis left")
    print("  unanswered (when a process can see it stop); median / max over the processes")
    columns = [("mode", 8), ("timeout_ms", 10), ("after SIGSTOP ms", 17),
               ("after unanswered ms", 20), ("longest wait ms", 16),
               ("slowest decision ms", 20), ("back after SIGCONT ms", 22)]  # fmt: skip
    print("  " + " ".join(f"{n:>{w}}" if i else f"{n:{w}}" for i, (n, w) in enumerate(columns)))
    for r in rows:
        cells = [f"{r['mode']:8}", f"{r['timeout_ms']:>10}",
                 f"{_median_max(r['after_stop_ms']):>17}",
                 f"{_median_max(r['after_unanswered_ms']):>20}",
                 f"{r['longest_wait_ms']:>16.1f}", f"{r['slowest_decision_ms']:>20.1f}",
                 f"{_median_max(r['recovery_ms']):>22}"]  # fmt: skip
        if r["switched"] != 3:
            cells.append(f"({3 - r['switched']} did not switch)")
        print("  " + " ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--accuracy-seconds", type=float, default=6.0)
    parser.add_argument("--timeout-ms", type=int, default=50, help="of the fallback run")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, spec = args.worker
        work = worker_throughput if kind == "throughput" else worker_paced
        print(json.dumps(work(json.loads(spec))))
        return 0
    from guard.flow.controllers import IMPLEMENTATION

    redis = Redis()
    try:
        rows = throughput(redis, args.seconds)
        acc = accuracy(redis, args.accuracy_seconds)
    finally:
        redis.stop()
    fall = fallback(args.timeout_ms)
    print(f"cluster flow control (controllers: {IMPLEMENTATION}, {os.cpu_count()} cores, "
          f"{args.seconds:g} s per scenario; medians over processes)")  # fmt: skip
    columns = [("mode", 8), ("procs", 5), ("decisions/s", 12), ("x local", 8), ("cpu us", 8),
               ("median us", 10), ("added us", 9), ("p99 us", 8), ("calls/dec", 10),
               ("fallbacks", 9)]  # fmt: skip
    head = " ".join(f"{name:>{width}}" if i else f"{name:{width}}"
                    for i, (name, width) in enumerate(columns))  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = [f"{r['mode']:8}", f"{r['processes']:>5}", f"{r['per_s']:>12,.0f}",
                 f"{r['vs_local']:>8.2f}", f"{r['cpu_us']:>8.2f}", f"{r['median_us']:>10.2f}",
                 f"{r['added_us']:>9.2f}", f"{r['p99_us']:>8.1f}",
                 f"{r['calls_per_decision']:>10.4f}", f"{r['fallbacks']:>9}"]  # fmt: skip
        print(" ".join(cells))
    print()
    print(f"accuracy: 3 processes x 300/s offered, one global rule of 300/s, "
          f"{args.accuracy_seconds:g} s")  # fmt: skip
    for a in acc:
        error = (a["admitted_per_s"] - a["limit"]) / a["limit"] * 100
        print(f"  {a['mode']:8} admitted {a['admitted_per_s']:.1f}/s ({error:+.1f}% of 300)")
    print()
    print_fallback(fall)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        results = {"throughput": rows, "accuracy": acc, "fallback": fall}
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
