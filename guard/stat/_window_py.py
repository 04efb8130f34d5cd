"""Sliding-window statistics (Sentinel's LeapArray), the pure-Python truth of the twin.

``LeapArray(sample_count, interval_ms)`` is a ring of ``sample_count`` buckets, each
``interval_ms / sample_count`` long. The bucket for time ``t`` is at index
``(t // bucket_ms) % sample_count`` and starts at ``t - t % bucket_ms``. A bucket left over from
an earlier lap is reset lazily by the first writer or reader that lands on it: no timer runs.
A bucket is *deprecated* (left out of sums) once ``now - start > interval_ms``, so a read sees
the current partial bucket plus the ``sample_count - 1`` before it. QPS divides by the full
interval in seconds, as Sentinel does.

Counters live in one flat ``array('q')`` (bucket ``i``, field ``f`` at ``i * FIELDS + f``), so a
window is two small arrays rather than an object per bucket; the compiled twin
(``_window_c``) types them as C memoryviews.

``StatNode`` pairs a second window (2 x 500 ms by default) with a minute window (60 x 1 s) and a
concurrency counter: the statistics of one resource, origin, context or the inbound total.

Argument and return C types are declared in ``_window_c.pxd``; integer arguments are left
unannotated here because a Python ``int`` annotation would contradict them.

Concurrency contract: single-threaded per call (the GIL serialises the compiled twin; the pure
twin may lose an increment under thread preemption, as Sentinel's check-then-record does).
"""

from __future__ import annotations

from array import array

import cython

__all__ = ["LeapArray", "StatNode"]

# Field offsets inside a bucket.
PASS = 0
BLOCK = 1
SUCCESS = 2
EXCEPTION = 3
RT = 4
MIN_RT = 5
FIELDS = 6

# Sentinel's statisticMaxRt: the "no sample yet" value of min RT.
MAX_RT_MS = 5000
_EMPTY = -(1 << 62)


class LeapArray:
    """A ring of time buckets, reset lazily. Times are integer milliseconds."""

    def __init__(self, sample_count: int, interval_ms: int) -> None:
        if sample_count <= 0 or interval_ms <= 0 or interval_ms % sample_count:
            raise ValueError(
                f"LeapArray: interval_ms ({interval_ms}) must be a positive multiple of "
                f"sample_count ({sample_count})"
            )
        self.sample_count = sample_count
        self.interval_ms = interval_ms
        self.bucket_ms = interval_ms // sample_count
        self.starts = array("q", [_EMPTY] * sample_count)
        self.values = array("q", [0] * (sample_count * FIELDS))
        # The bucket the last lookup landed on. Most lookups land on it again, and checking
        # that costs two compares where computing the index costs two integer divisions
        # (tens of cycles each, several per guarded call). Only the slow path below writes
        # ``starts``, and it always moves this cache there, so starts[cur_idx] == cur_start.
        self.cur_start = _EMPTY
        self.cur_idx = 0

    def current(self, now):
        """Index of the bucket holding ``now``, resetting it if it is from an earlier lap."""
        bucket_ms: cython.longlong = self.bucket_ms
        offset: cython.longlong = now - self.cur_start
        if 0 <= offset < bucket_ms:
            return self.cur_idx
        start: cython.longlong = _floor_to(now, bucket_ms)
        idx: cython.Py_ssize_t = _bucket_index(start, bucket_ms, self.sample_count)
        self.cur_start = start
        self.cur_idx = idx
        if self.starts[idx] != start:
            # Stale (earlier lap) or, after the clock went back, ahead: start it afresh.
            self.starts[idx] = start
            base: cython.Py_ssize_t = idx * FIELDS
            self.values[base + PASS] = 0
            self.values[base + BLOCK] = 0
            self.values[base + SUCCESS] = 0
            self.values[base + EXCEPTION] = 0
            self.values[base + RT] = 0
            self.values[base + MIN_RT] = MAX_RT_MS
        return idx

    def add(self, now, field, count) -> None:
        idx: cython.Py_ssize_t = self.current(now)
        self.values[idx * FIELDS + field] += count

    def add_rt(self, now, rt, count) -> None:
        """Book ``count`` successes that took ``rt`` ms in all."""
        idx: cython.Py_ssize_t = self.current(now)
        base: cython.Py_ssize_t = idx * FIELDS
        self.values[base + SUCCESS] += count
        self.values[base + RT] += rt
        if rt < self.values[base + MIN_RT]:
            self.values[base + MIN_RT] = rt

    def sum(self, now, field):
        """Sum of ``field`` over the live (not deprecated) buckets at ``now``."""
        self.current(now)
        total: cython.longlong = 0
        i: cython.Py_ssize_t
        interval: cython.longlong = self.interval_ms
        for i in range(self.sample_count):
            if now - self.starts[i] <= interval:
                total += self.values[i * FIELDS + field]
        return total

    def min_rt(self, now):
        self.current(now)
        best: cython.longlong = MAX_RT_MS
        i: cython.Py_ssize_t
        interval: cython.longlong = self.interval_ms
        for i in range(self.sample_count):
            if now - self.starts[i] <= interval and self.values[i * FIELDS + MIN_RT] < best:
                best = self.values[i * FIELDS + MIN_RT]
        return best if best > 1 else 1

    def max_bucket(self, now, field):
        """Largest single-bucket value of ``field`` among live buckets."""
        self.current(now)
        best: cython.longlong = 0
        i: cython.Py_ssize_t
        interval: cython.longlong = self.interval_ms
        for i in range(self.sample_count):
            if now - self.starts[i] <= interval and self.values[i * FIELDS + field] > best:
                best = self.values[i * FIELDS + field]
        return best

    def previous(self, now, field):
        """``field`` of the whole bucket before the one holding ``now`` (0 if none is live)."""
        bucket_ms: cython.longlong = self.bucket_ms
        start: cython.longlong = _floor_to(now, bucket_ms) - bucket_ms
        idx: cython.Py_ssize_t = _bucket_index(start, bucket_ms, self.sample_count)
        if self.starts[idx] != start:
            return 0
        return self.values[idx * FIELDS + field]

    def time_to_free(self, now, field, amount):
        """Milliseconds until buckets holding at least ``amount`` of ``field`` have left the
        window, oldest first (the whole interval if the window never holds that many)."""
        self.current(now)
        interval: cython.longlong = self.interval_ms
        freed: cython.longlong = 0
        last_start: cython.longlong = _EMPTY
        best: cython.Py_ssize_t
        best_start: cython.longlong
        start: cython.longlong
        i: cython.Py_ssize_t
        _n: cython.Py_ssize_t
        for _n in range(self.sample_count):
            best = -1
            best_start = 0
            for i in range(self.sample_count):
                start = self.starts[i]
                live_and_newer = now - start <= interval and start > last_start
                if live_and_newer and (best < 0 or start < best_start):
                    best = i
                    best_start = start
            if best < 0:
                break
            freed += self.values[best * FIELDS + field]
            if freed >= amount:
                # A bucket's slot is reused (and its counts dropped) one interval after it starts.
                return best_start + interval - now
            last_start = best_start
        return interval

    def window_end(self, now):
        """Milliseconds until the current bucket ends (when the oldest one leaves the window)."""
        return _floor_to(now, self.bucket_ms) + self.bucket_ms - now


def _bucket_index(start, bucket_ms, sample_count):
    """Ring index of the bucket starting at ``start`` (a multiple of ``bucket_ms``)."""
    idx: cython.Py_ssize_t = (start // bucket_ms) % sample_count
    if idx < 0:  # C's remainder of a negative time (a ManualClock may go below zero)
        idx += sample_count
    return idx


def _floor_to(t, step):
    """``t`` rounded down to a multiple of ``step`` (> 0), for negative ``t`` too: the
    compiled twin divides as C does, truncating toward zero."""
    start: cython.longlong = t - t % step
    if start > t:
        start -= step
    return start


class StatNode:
    """Statistics of one resource (or origin, context, inbound total).

    :param sample_count: buckets in the one-second window (Sentinel's default is 2).
    """

    def __init__(self, sample_count: int = 2) -> None:
        self.second = LeapArray(sample_count, 1000)
        self.minute = LeapArray(60, 60_000)
        self.concurrency = 0

    # The four writers touch both windows inline (one ``current`` call per window): they
    # run on every entry and exit.
    def add_pass(self, now, count) -> None:
        win: LeapArray = self.second
        win.values[win.current(now) * FIELDS + PASS] += count
        win = self.minute
        win.values[win.current(now) * FIELDS + PASS] += count

    def add_block(self, now, count) -> None:
        win: LeapArray = self.second
        win.values[win.current(now) * FIELDS + BLOCK] += count
        win = self.minute
        win.values[win.current(now) * FIELDS + BLOCK] += count

    def add_success(self, now, rt, count) -> None:
        self.second.add_rt(now, rt, count)
        win: LeapArray = self.minute
        win.values[win.current(now) * FIELDS + SUCCESS] += count

    def add_exception(self, now, count) -> None:
        win: LeapArray = self.second
        win.values[win.current(now) * FIELDS + EXCEPTION] += count
        win = self.minute
        win.values[win.current(now) * FIELDS + EXCEPTION] += count

    def pass_count(self, now):
        """Passes in the one-second window (what a QPS rule compares to its count)."""
        return self.second.sum(now, PASS)

    def pass_qps(self, now) -> float:
        return self.second.sum(now, PASS) * 1000.0 / self.second.interval_ms

    def block_qps(self, now) -> float:
        return self.second.sum(now, BLOCK) * 1000.0 / self.second.interval_ms

    def success_qps(self, now) -> float:
        return self.second.sum(now, SUCCESS) * 1000.0 / self.second.interval_ms

    def exception_qps(self, now) -> float:
        return self.second.sum(now, EXCEPTION) * 1000.0 / self.second.interval_ms

    def avg_rt(self, now) -> float:
        success: cython.longlong = self.second.sum(now, SUCCESS)
        if success <= 0:
            return 0.0
        rt: cython.double = self.second.sum(now, RT)
        return rt / success

    def min_rt(self, now):
        return self.second.min_rt(now)

    def max_success_qps(self, now) -> float:
        """Best single bucket's successes scaled to a second (BBR's capacity estimate)."""
        best = self.second.max_bucket(now, SUCCESS)
        return best * self.second.sample_count * 1000.0 / self.second.interval_ms

    def previous_pass_qps(self, now):
        """Passes in the previous whole second of the minute window (warm-up's input)."""
        return self.minute.previous(now, PASS)

    def total(self, now, field):
        """``field`` summed over the last minute."""
        return self.minute.sum(now, field)
