"""Fault tests with real processes: a holder paused past its lease, and processes racing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

import locks
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

# A store that checks fencing tokens: it refuses a write whose token is lower than one it saw.
STORE_WRITE = """
local last = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) < last then return 0 end
redis.call('set', KEYS[1], ARGV[1])
redis.call('set', KEYS[2], ARGV[2])
return 1
"""

HOLDER = textwrap.dedent(
    """
    import sys, time, redis, locks
    kind, ports, script = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], sys.argv[3]
    clients = [redis.Redis(port=p) for p in ports]
    if kind == "redis":
        lock = locks.RedisLock(clients[0], "fenced-job", ttl=0.5)
    else:
        lock = locks.Redlock(clients, "fenced-job", ttl=0.5)
    assert lock.acquire(timeout=5)
    print(lock.fencing_token, flush=True)
    time.sleep(0.3)  # the parent freezes us in here, past the lease
    owned = lock.owned()
    ok = clients[0].eval(script, 2, "store:fence", "store:value", lock.fencing_token, "stale")
    print(int(ok), int(owned), flush=True)
    """
)


def _child(code: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("kind", ["redis", "redlock"])
def test_paused_holder_is_fenced_off(kind: str, redis_factory) -> None:
    servers: list[RedisServer] = [redis_factory() for _ in range(1 if kind == "redis" else 5)]
    clients = [redis.Redis(port=s.port) for s in servers]
    try:
        ports = ",".join(str(s.port) for s in servers)
        holder = _child(HOLDER, kind, ports, STORE_WRITE)
        assert holder.stdout is not None
        stale_token = int(holder.stdout.readline())
        os.kill(holder.pid, signal.SIGSTOP)  # a long GC pause, right after acquiring
        try:
            if kind == "redis":
                lock = locks.RedisLock(clients[0], "fenced-job", ttl=5)
            else:
                lock = locks.Redlock(clients, "fenced-job", ttl=5)
            assert lock.acquire(timeout=3)  # the lease ran out while the holder was frozen
            assert lock.fencing_token > stale_token
            store = clients[0].register_script(STORE_WRITE)
            assert store(keys=["store:fence", "store:value"], args=[lock.fencing_token, "new"])
        finally:
            os.kill(holder.pid, signal.SIGCONT)
        accepted, owned = map(int, holder.stdout.readline().split())
        assert holder.wait(10) == 0
        holder.stdout.close()
        assert accepted == 0  # the stale writer was refused by the store
        assert owned == 0  # and the woken holder itself knows it lost the lock
        assert clients[0].get("store:value") == b"new"
        lock.release()
    finally:
        for c in clients:
            c.close()


RACER = textwrap.dedent(
    """
    import json, sys, time, redis, locks
    kind, ports, seconds = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], float(sys.argv[3])
    clients = [redis.Redis(port=p) for p in ports]
    if kind == "redis":
        lock = locks.RedisLock(clients[0], "race", ttl=5)
    else:
        lock = locks.Redlock(clients, "race", ttl=5, retry_delay=0.02)
    probe = clients[0]
    entries, overlaps, fences = 0, 0, []
    start = float(sys.stdin.readline())
    while time.time() < start:
        time.sleep(0.001)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with lock:
            if probe.incr("inside") != 1:
                overlaps += 1
            fences.append(lock.fencing_token)
            entries += 1
            probe.decr("inside")
    print(json.dumps({"entries": entries, "overlaps": overlaps, "fences": fences}), flush=True)
    """
)


@pytest.mark.parametrize(("kind", "procs"), [("redis", 6), ("redlock", 4)])
def test_processes_racing_one_name_never_overlap(kind: str, procs: int, redis_factory) -> None:
    servers = [redis_factory() for _ in range(1 if kind == "redis" else 5)]
    ports = ",".join(str(s.port) for s in servers)
    children = [_child(RACER, kind, ports, "1.0", stdin=True) for _ in range(procs)]
    start = time.time() + 1.0  # all start together, once every one has imported
    outputs = []
    for c in children:
        assert c.stdin is not None
        c.stdin.write(f"{start}\n")
        c.stdin.flush()
    for c in children:
        out, _ = c.communicate(timeout=30)
        assert c.returncode == 0
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(r["overlaps"] for r in outputs) == 0
    assert all(r["entries"] > 0 for r in outputs), [r["entries"] for r in outputs]
    fences = [f for r in outputs for f in r["fences"]]
    assert len(fences) == len(set(fences)) > 10  # every critical section had its own token
