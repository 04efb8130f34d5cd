"""The durable store behind DelayQueue: SQLite (standard library) in WAL mode, with group commit.

One writer thread owns every write. Callers hand it operations; it runs everything queued in
one transaction and commits once, so concurrent producers share one fsync (group commit).
With ``fsync="always"`` a caller that must be durable waits for that commit; ``"batch"``
callers return at once and the writer commits at least every 100 ms; ``"never"`` callers wait
for the commit, which is not fsynced (the OS writes it back when it likes).

Table ``tasks``: ``seq`` (the integer primary key, also the tie-break between equal deadlines),
``deadline_ms`` (epoch ms), ``attempts`` (deliveries so far) and ``payload``. The id users see
is ``<seq in hex>-<id_tail>``, where ``id_tail`` is a random word stored once per store, so ids
never repeat across stores. A task is deleted when acked or cancelled; nothing else needs to
be stored, since on restart every remaining task whose deadline has passed is due at once.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["FSYNC_MODES", "SqliteStore", "StoreError"]

FSYNC_MODES = ("always", "batch", "never")
STORE_FILE = "delayqueue.sqlite3"
BATCH_INTERVAL = 0.1  # seconds: "batch" commits (and so flushes) at least this often
GATHER_S = 0.001  # "always"/"never": most a commit waits for concurrent producers to join it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    deadline_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_deadline ON tasks (deadline_ms, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_FORMAT = "timewheel.delayqueue/1"

Row = tuple[int, int, int, bytes]  # seq, deadline_ms, attempts, payload


class StoreError(RuntimeError):
    """The store cannot be opened or used (damaged file, wrong format, I/O error)."""


class _Batch:
    __slots__ = ("done", "error", "ops")

    def __init__(self) -> None:
        self.ops: list[tuple[Callable[[sqlite3.Connection], Any], list[Any] | None]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """A directory (existing, or named with a trailing slash) holds ``delayqueue.sqlite3``."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        p.mkdir(parents=True, exist_ok=True)
        return p / STORE_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


class SqliteStore:
    """The SQLite file of one DelayQueue.

    :param path: the store file, or a directory to hold it; created if missing.
    :param fsync: ``"always"``, ``"batch"`` or ``"never"``.
    :raises StoreError: if the file is not a usable store.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: str = "always") -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}, got {fsync!r}")
        self.path = resolve_path(path)
        self.fsync = fsync
        self._conn = self._open()
        self._cv = threading.Condition()
        self._batch = _Batch()
        self._closed = False
        self.commits = 0  # transactions committed (one per group of writes)
        self._thread = threading.Thread(target=self._writer, name="delayqueue-store", daemon=True)
        self._thread.start()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the store to WAL mode ({mode})")
            sync = {"always": "FULL", "batch": "FULL", "never": "OFF"}[self.fsync]
            conn.execute(f"PRAGMA synchronous={sync}")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"{self.path}: damaged delay-queue store: {check}")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('format', ?)", (_FORMAT,))
            elif row[0] != _FORMAT:
                raise StoreError(f"{self.path}: not a {_FORMAT} store (format {row[0]!r})")
            row = conn.execute("SELECT value FROM meta WHERE key='id_tail'").fetchone()
            if row is None:
                row = (f"{random.getrandbits(32):08x}",)
                conn.execute("INSERT INTO meta VALUES ('id_tail', ?)", row)
            self.id_tail: str = row[0]
            return conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: damaged or not a delay-queue store: {exc}") from exc

    # -- reads (on the caller's thread, serialized with the writer by SQLite) ------------------

    def next_seq(self) -> int:
        return self._read(
            lambda c: (c.execute("SELECT MAX(seq) FROM tasks").fetchone()[0] or 0) + 1
        )

    def load(self, lo_ms: int | None, hi_ms: int) -> list[Row]:
        """Tasks with ``lo_ms <= deadline_ms < hi_ms`` (no lower bound if None), in order."""
        if lo_ms is None:
            sql = "SELECT seq, deadline_ms, attempts, payload FROM tasks WHERE deadline_ms < ?"
            args: tuple[int, ...] = (hi_ms,)
        else:
            sql = (
                "SELECT seq, deadline_ms, attempts, payload FROM tasks"
                " WHERE deadline_ms >= ? AND deadline_ms < ?"
            )
            args = (lo_ms, hi_ms)
        return self._read(lambda c: c.execute(sql + " ORDER BY deadline_ms, seq", args).fetchall())

    def count(self) -> int:
        return self._read(lambda c: c.execute("SELECT COUNT(*) FROM tasks").fetchone()[0])

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        # Reads go through the writer so they see every write submitted before them.
        return self.submit(fn, wait=True, read=True)

    # -- writes --------------------------------------------------------------------------

    def insert(self, rows: list[Row], wait: bool) -> None:
        sql = "INSERT INTO tasks (seq, deadline_ms, attempts, payload) VALUES (?,?,?,?)"
        self.submit(_many(sql, rows), wait=wait)

    def delete(self, seq: int, wait: bool) -> bool:
        return bool(self.submit(_one("DELETE FROM tasks WHERE seq=?", (seq,)), wait=wait))

    def update(self, seq: int, deadline_ms: int, attempts: int, wait: bool) -> None:
        sql = "UPDATE tasks SET deadline_ms=?, attempts=? WHERE seq=?"
        self.submit(_one(sql, (deadline_ms, attempts, seq)), wait=wait)

    def submit(
        self, fn: Callable[[sqlite3.Connection], Any], *, wait: bool, read: bool = False
    ) -> Any:
        """Queue ``fn(conn)`` for the writer; with ``wait`` block until its batch committed.

        ``"batch"`` mode never waits for writes (the writer commits within 100 ms).
        """
        box: list[Any] = []
        with self._cv:
            if self._closed:
                raise StoreError(f"{self.path}: store is closed")
            batch = self._batch
            batch.ops.append((fn, box))
            self._cv.notify()
        if not wait or (self.fsync == "batch" and not read):
            return None
        batch.done.wait()
        if batch.error is not None:
            raise StoreError(f"{self.path}: write failed: {batch.error}") from batch.error
        return box[0] if box else None

    def flush(self) -> None:
        """Block until everything submitted so far is committed."""
        self.submit(lambda c: None, wait=True, read=True)

    def close(self) -> None:
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify()
        self._thread.join()
        self._conn.close()

    def _writer(self) -> None:
        target = 1  # how many writers the last commits served: wait for about that many
        while True:
            with self._cv:
                while not self._batch.ops and not self._closed:
                    self._cv.wait()
                if self.fsync == "batch" and not self._closed:
                    # Let a batch gather for a while, but never hold a write past the interval.
                    self._cv.wait(BATCH_INTERVAL / 2)
                elif target > 1:
                    # Concurrent producers: the ones released by the last commit are about to
                    # submit again. Give them a moment (PostgreSQL's commit_delay idea), so one
                    # fsync serves them all instead of every other one.
                    end = time.monotonic() + GATHER_S
                    while len(self._batch.ops) < target and not self._closed:
                        left = end - time.monotonic()
                        if left <= 0:
                            break
                        self._cv.wait(left)
                batch, self._batch = self._batch, _Batch()
                closing = self._closed
            if batch.ops:
                target = max(1, len(batch.ops), (target * 7) // 8)
                self._commit(batch)
            if closing and not batch.ops:
                return

    def _commit(self, batch: _Batch) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, box in batch.ops:
                result = fn(conn)
                if box is not None:
                    box.append(result)
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException as exc:  # reported to every waiter of the batch
            batch.error = exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            batch.done.set()


# Operations return plain values, never cursors: a cursor released on a producer's thread would
# touch the connection while the writer uses it.
def _one(sql: str, args: tuple[Any, ...]) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        cur = conn.execute(sql, args)
        n = cur.rowcount
        cur.close()
        return n

    return run


def _many(sql: str, rows: list[Any]) -> Callable[[sqlite3.Connection], int]:
    def run(conn: sqlite3.Connection) -> int:
        cur = conn.executemany(sql, rows)
        n = cur.rowcount
        cur.close()
        return n

    return run
