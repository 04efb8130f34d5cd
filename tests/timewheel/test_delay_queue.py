"""DelayQueue (timewheel/delay_queue.py), in memory and on its SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from timewheel import DelayQueue, Task
from timewheel.store import StoreError


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def drain(q: DelayQueue) -> list[Task]:
    out = []
    while (task := q.get(timeout=0)) is not None:
        out.append(task)
    return out


@pytest.fixture(params=["memory", "sqlite"])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path):
    queues: list[DelayQueue] = []

    def make(**kw: object) -> DelayQueue:
        path = None if request.param == "memory" else tmp_path / "q"
        q = DelayQueue(path, **kw)  # type: ignore[arg-type]
        queues.append(q)
        return q

    yield make
    for q in queues:
        q.close()


def test_delivers_by_deadline_ties_in_put_order(make_queue) -> None:
    clock = FakeClock()
    q = make_queue(clock=clock)
    q.put(b"c", delay=3)
    q.put(b"a1", delay=1)
    q.put(b"b", at=clock.t + 2)
    q.put(b"a2", delay=1)
    assert q.get(timeout=0) is None
    clock.t += 0.999
    assert q.get(timeout=0) is None  # never early
    clock.t += 0.001
    assert [t.payload for t in drain(q)] == [b"a1", b"a2"]
    clock.t += 5
    tasks = drain(q)
    assert [t.payload for t in tasks] == [b"b", b"c"]
    assert tasks[0].deadline == pytest.approx(1_700_000_002.0)
    assert all(t.attempts == 1 for t in tasks)


def test_ack_timeout_redelivers_and_counts_attempts(make_queue) -> None:
    clock = FakeClock()
    q = make_queue(clock=clock, ack_timeout=10)
    q.put(b"x")
    first = q.get(timeout=0)
    assert first is not None and first.attempts == 1
    clock.t += 9.999
    assert q.get(timeout=0) is None
    clock.t += 0.001
    again = q.get(timeout=0)
    assert again is not None and again.id == first.id and again.attempts == 2
    assert first.nack() is False  # a stale delivery cannot give the task back
    assert again.ack() is True
    clock.t += 100
    assert q.get(timeout=0) is None
    assert again.ack() is False


def test_nack_with_delay(make_queue) -> None:
    clock = FakeClock()
    q = make_queue(clock=clock)
    q.put(b"x")
    t = q.get(timeout=0)
    assert t is not None and t.nack(delay=2.0)
    clock.t += 1.999
    assert q.get(timeout=0) is None
    clock.t += 0.001
    t2 = q.get(timeout=0)
    assert t2 is not None and t2.payload == b"x" and t2.attempts == 2


def test_cancel(make_queue) -> None:
    clock = FakeClock()
    q = make_queue(clock=clock)
    keep = q.put(b"keep", delay=1)
    gone = q.put(b"gone", delay=1)
    assert q.cancel(gone) is True
    assert q.cancel(gone) is False
    assert q.cancel("nope") is False
    clock.t += 1
    t = q.get(timeout=0)
    assert t is not None and t.id == keep
    assert q.cancel(keep) is False  # in flight
    assert q.get(timeout=0) is None


def test_blocking_get_is_woken_by_an_earlier_put(make_queue) -> None:
    q = make_queue()
    q.put(b"far", delay=3600)
    got: list[Task | None] = []
    consumer = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    consumer.start()
    time.sleep(0.1)
    start = time.monotonic()
    q.put(b"soon", delay=0.05)
    consumer.join(10)
    assert got and got[0] is not None and got[0].payload == b"soon"
    assert 0.04 <= time.monotonic() - start < 5
    assert q.get(timeout=0.05) is None


async def test_aget_and_async_for(make_queue) -> None:
    q = make_queue()
    assert await q.aget(timeout=0.01) is None
    waiter = asyncio.ensure_future(q.aget(timeout=10))
    await asyncio.sleep(0.05)
    await q.aput(b"one", delay=0.02)
    task = await waiter
    assert task is not None and task.payload == b"one"
    task.ack()
    for i in range(3):
        q.put(b"%d" % i)
    seen = []
    async for t in q:
        seen.append(t.payload)
        t.ack()
        if len(seen) == 3:
            break
    assert seen == [b"0", b"1", b"2"]


def test_closed_queue_rejects_use(make_queue) -> None:
    q = make_queue()
    q.close()
    with pytest.raises(RuntimeError, match="closed"):
        q.put(b"x")
    with pytest.raises(RuntimeError, match="closed"):
        q.get(timeout=0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fsync"):
        DelayQueue(fsync="sometimes")
    with pytest.raises(ValueError, match="ack_timeout"):
        DelayQueue(ack_timeout=0)
    with DelayQueue() as q, pytest.raises(TypeError, match="bytes"):
        q.put("text")  # type: ignore[arg-type]


# -- durability ---------------------------------------------------------------------------


def test_restart_delivers_overdue_in_order_and_in_flight_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    with DelayQueue(tmp_path, clock=clock, ack_timeout=30) as q:
        q.put(b"late", delay=5)
        q.put(b"early", delay=1)
        acked = q.put(b"acked", delay=0)
        q.put(b"flight", delay=0.5)
        q.put(b"future", delay=1000)
        t = q.get(timeout=0)
        assert t is not None and t.id == acked
        t.ack()
        clock.t += 0.5
        t = q.get(timeout=0)
        assert t is not None and t.payload == b"flight"  # taken, never acked
    clock.t += 10  # down for a while: "early" and "late" are now overdue
    with DelayQueue(tmp_path, clock=clock, ack_timeout=30) as q:
        tasks = drain(q)
        assert [t.payload for t in tasks] == [b"flight", b"early", b"late"]
        assert [t.attempts for t in tasks] == [2, 1, 1]
        assert all(t.ack() for t in tasks)
        clock.t += 1000
        assert [t.payload for t in drain(q)] == [b"future"]


def test_directory_or_file_path(tmp_path: Path) -> None:
    with DelayQueue(tmp_path / "sub" / "q.db") as q:
        q.put(b"x")
    assert (tmp_path / "sub" / "q.db").exists()
    with DelayQueue(tmp_path) as q:
        q.put(b"y")
    assert (tmp_path / "delayqueue.sqlite3").exists()


def test_damaged_store_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match=r"bad\.db"):
        DelayQueue(bad)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="format"):
        DelayQueue(other)


def test_torn_last_write_does_not_prevent_opening(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with DelayQueue(path) as q:
        ids = [q.put(b"x%d" % i) for i in range(20)]
    # Simulate a crash during the last write: garbage appended to the write-ahead log.
    wal = path.with_name(path.name + "-wal")
    with open(wal, "ab") as f:
        f.write(b"\x37\x7f\x06\x82" + b"\x00torn" * 300)
    with DelayQueue(path) as q:
        got = [t.id for t in drain(q)]
    assert got == ids


def test_group_commit_shares_fsyncs_between_producers(tmp_path: Path) -> None:
    with DelayQueue(tmp_path, fsync="always") as q:
        per_thread = 50

        def produce() -> None:
            for _ in range(per_thread):
                q.put(b"x")

        threads = [threading.Thread(target=produce) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store = q._store
        assert store is not None
        assert store.count() == 8 * per_thread
        assert store.commits < 8 * per_thread  # producers shared commits


@pytest.mark.parametrize("fsync", ["batch", "never"])
def test_other_fsync_modes_persist_on_close(tmp_path: Path, fsync: str) -> None:
    with DelayQueue(tmp_path, fsync=fsync) as q:
        ids = [q.put(b"%d" % i) for i in range(10)]
    with DelayQueue(tmp_path) as q:
        assert [t.id for t in drain(q)] == ids


@pytest.mark.slow
def test_memory_horizon_keeps_far_future_tasks_in_the_store(tmp_path: Path) -> None:
    clock = FakeClock()
    day = 86_400.0
    with DelayQueue(tmp_path, clock=clock, memory_horizon=60) as q:
        n = 1_000_000
        batch = 100_000
        for i in range(n // batch):  # 10 deadlines, one a day, 100,000 tasks each
            q.put_many((b"f" for _ in range(batch)), delay=day * (i + 1))
        near = q.put(b"near", delay=1)
        assert len(q) == 1  # only the near-term task is in memory
        assert q._wheel.__len__() <= 2  # it, and the horizon timer
        clock.t += 1
        t = q.get(timeout=0)
        assert t is not None and t.id == near
        t.ack()
        store = q._store
        assert store is not None and store.count() == n
        clock.t += day - 100  # 99 s before the first far deadline: still beyond the horizon
        assert q.get(timeout=0) is None
        assert len(q) == 0
        clock.t += 69.5  # now within 60 s: that window is loaded
        assert q.get(timeout=0) is None
        assert len(q) == batch  # the first day's tasks, and only them
        clock.t += 29.5
        t = q.get(timeout=0)
        assert t is not None and t.payload == b"f"
