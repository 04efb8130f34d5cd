# cython: annotation_typing=False
"""A hierarchical timing wheel with cascading (pure twin; compiled as ``_wheel_c``).

The model
---------
Level 0 has ``wheel_size`` buckets of ``tick_ms`` each; a level-``l`` bucket is a whole
level ``l - 1`` (Kafka's overflow wheels, created on demand). At ``tick_ms=1`` and
``wheel_size=512`` a level-1 bucket spans 512 ms, a level-2 one 262 s, a level-3 one 37 h.
Read a time as digits in base ``wheel_size`` (digit ``l`` counts level-``l`` buckets): a timer
goes to the highest level at which its deadline's digits differ from the clock's, in the bucket
of its deadline's digit there (Varghese and Lauck's scheme 7, a clock with several hands).

Worked example (``tick_ms=1``, ``wheel_size=512``, clock at 100): a timer due at 300 has the
clock's level-1 digit (both lie in [0, 512)), so it goes to level-0 bucket 300; one due at 700
lies in [512, 1024), so it goes to the level-1 bucket covering that range. When ``advance``
reaches 512 the bucket is *cascaded*: each timer is filed again, and 700 now differs from the
clock only at level 0, so it goes to level-0 bucket 188 (700 - 512). A timer moves at most
``levels - 1`` times, and only level-0 buckets fire.

So a pending timer's bucket is a function of its deadline and the clock: a timer record needs
no bucket field, and cancelling recomputes it.

Costs
-----
- ``schedule`` is O(levels): a few shifts (or divisions), an append to the bucket's chunks.
- ``cancel`` is O(1): the slot's generation is bumped and its bucket's live count dropped; the
  stale entry left in the bucket is skipped when the bucket is swept (a bucket emptied by
  cancels gives its memory back at once).
- ``advance`` never ticks through empty buckets: a min-heap holds one key per active
  *bucket* (not per timer, Kafka's DelayQueue idea), so its size is bounded by
  ``wheel_size * levels``. Each cascade or firing sweeps a bucket's chunks in order.

Memory layout
-------------
A timer is a slot: two int64 words in one typed array (deadline, generation) plus one list of
payloads. A bucket is a chain of fixed 32-word chunks drawn from one shared pool, each holding
``generation << 32 | slot`` entries swept in order. The only Python objects per pending timer
are its payload and the handle the caller keeps. A handle is (slot, generation): cancelling it
after the timer fired or was cancelled finds a newer generation and returns False.

Order
-----
``advance`` returns payloads by deadline, ties in scheduling order. Timers with one deadline
take the same path down the levels, and a bucket is only ever appended to and swept in
order, so its equal deadlines stay in scheduling order; a bucket holding several deadlines
(``tick_ms > 1``, or timers already due when scheduled) is sorted stably before it fires. A
timer never fires before its deadline whatever ``tick_ms`` is: a level-0 bucket that is only
partly due keeps its later timers and is re-keyed to the next millisecond.

Concurrency
-----------
None: the wheel is a plain data structure driven by the caller's clock, with no threads and no
I/O. Callers sharing one across threads hold a lock around every call (as the drivers do).
Handles do not keep their wheel alive.
"""

from __future__ import annotations

import itertools
import operator
import weakref
from array import array

import cython

if cython.compiled:
    from cython.cimports.timewheel._payloads import take_payloads

__all__ = ["Handle", "TimingWheel"]

# Internal times are ms relative to start_ms; deadlines must lie within +-2**47 ms of it
# (about 4,400 years), which keeps encoded heap keys inside a signed 64-bit integer.
_LIMIT = 1 << 47
_SPAN = 1 << 49  # the top level must span at least this far
_CHUNK = 32  # words per chunk: one link to the next chunk, then 31 entries
_SLOT_MASK = 0xFFFFFFFF
_GEN_MASK = 0x7FFFFFFF
_STALE = -(1 << 62)  # bucket minimum unknown (its earliest timer was cancelled)
_SCRATCH_KEEP = 1 << 16  # scratch words kept between advances


def _ms(value: object, what: str) -> int:
    """Check an integer millisecond argument; floats are refused (deadlines are integer ms)."""
    if type(value) is not int:
        if isinstance(value, float):
            raise TypeError(f"{what} must be an integer number of milliseconds, got {value!r}")
        value = operator.index(value)  # type: ignore[call-overload, arg-type]
    return value  # type: ignore[return-value]


def _zeros(typecode: str, n: int) -> array:
    return array(typecode, bytes(n * array(typecode).itemsize))


def _grown(old: array, typecode: str, new_len: int) -> array:
    return old + _zeros(typecode, new_len - len(old))


class _WheelRef(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ("wid",)
    wid: int


def _forget(ref: _WheelRef) -> None:
    _WHEELS.pop(ref.wid, None)


# Live wheels by id. A handle holds only integers (wheel id, slot, generation): it is a small
# object the cyclic GC never scans, and it does not keep its wheel alive.
_WHEELS: dict[int, _WheelRef] = {}
_IDS = itertools.count(1)


def _handle_op(wid, slot, gen, cancel):
    ref = _WHEELS.get(wid)
    if ref is None:
        return False
    wheel = ref()
    if wheel is None:
        return False
    if cancel:
        return wheel._cancel(slot, gen)
    return wheel._is_pending(slot, gen)


class Handle:
    """A scheduled timer, returned by :meth:`TimingWheel.schedule`; see :meth:`cancel`.

    A handle is three integers (wheel id, slot, generation); it does not keep its wheel alive.
    """

    __slots__ = ("_gen", "_slot", "_wid")
    _wid: int
    _slot: int
    _gen: int

    def cancel(self) -> bool:
        """Cancel the timer in O(1).

        :returns: True if it was pending, False if it had fired or been cancelled already
            (or its wheel is gone).
        """
        return _handle_op(self._wid, self._slot, self._gen, True)

    @property
    def pending(self) -> bool:
        """True while the timer has neither fired nor been cancelled."""
        return _handle_op(self._wid, self._slot, self._gen, False)

    def __repr__(self) -> str:
        return f"<timewheel.Handle slot={self._slot} pending={self.pending}>"


class TimingWheel:
    """A hierarchical timing wheel driven by the caller's clock (see the module docstring).

    :param tick_ms: width of a level-0 bucket in ms (>= 1); precision never depends on it.
    :param wheel_size: buckets per level, 2..4096.
    :param start_ms: the wheel's time before the first :meth:`advance`.
    :raises ValueError: on a tick or size out of range.
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_bfill",
        "_bhead",
        "_bhk",
        "_bkey",
        "_blive",
        "_bmin",
        "_btail",
        "_clk",
        "_count",
        "_free",
        "_heap",
        "_heap_arr",
        "_hlen",
        "_levels",
        "_lsh",
        "_lt",
        "_maxl",
        "_mod",
        "_now",
        "_od",
        "_pcap",
        "_pfree",
        "_pnext",
        "_pool",
        "_pool_arr",
        "_pow2",
        "_rec",
        "_rec_arr",
        "_scap",
        "_scr",
        "_scr_arr",
        "_sd",
        "_sd_arr",
        "_size",
        "_snext",
        "_spay",
        "_tick",
        "_wid",
    )

    def __init__(self, tick_ms: int = 1, wheel_size: int = 512, start_ms: int = 0) -> None:
        tick = _ms(tick_ms, "tick_ms")
        size = _ms(wheel_size, "wheel_size")
        start = _ms(start_ms, "start_ms")
        if not 1 <= tick <= 1 << 32:
            raise ValueError(f"tick_ms must be in 1..2**32, got {tick}")
        if not 2 <= size <= 4096:
            raise ValueError(f"wheel_size must be in 2..4096, got {size}")
        if not -_LIMIT < start < _LIMIT:
            raise ValueError(f"start_ms out of range: {start}")
        self._tick = tick
        self._size = size
        self._base = start
        self._now = 0
        self._clk = 0
        self._count = 0
        ticks = [tick]
        top = tick
        while top * size < _SPAN:  # (no negative indexing: compiled with wraparound=False)
            top *= size
            ticks.append(top)
        self._maxl = len(ticks)
        self._mod = self._maxl * size  # heap item = key * _mod + bucket rank
        self._lt = array("q", ticks)
        self._pow2 = tick & (tick - 1) == 0 and size & (size - 1) == 0
        self._lsh = array("q", [t.bit_length() - 1 for t in ticks])
        self._levels = 1
        nb = self._maxl * size + 1
        self._od = nb - 1  # the bucket of timers already due when scheduled
        self._bhead = array("q", [-1]) * nb
        self._btail = array("q", [-1]) * nb
        self._bfill = _zeros("q", nb)
        self._blive = _zeros("q", nb)
        self._bkey = array("q", [-1]) * nb
        self._bhk = array("q", [-1]) * nb
        self._bmin = array("q", [_STALE]) * nb
        self._scap = 0
        self._snext = 0
        self._free = -1
        self._rec_arr = self._rec = _zeros("q", 0)
        self._spay = []  # type: list[object]
        self._pcap = 0
        self._pnext = 0
        self._pfree = -1
        self._pool_arr = self._pool = _zeros("q", 0)
        self._heap_arr = self._heap = _zeros("q", 64)
        self._hlen = 0
        self._scr_arr = self._scr = _zeros("q", 64)
        self._sd_arr = self._sd = _zeros("q", 64)
        self._wid = next(_IDS)
        ref = _WheelRef(self, _forget)
        ref.wid = self._wid
        _WHEELS[self._wid] = ref

    # -- public API ----------------------------------------------------------------------

    def schedule(self, delay_ms: int, payload: object) -> Handle:
        """Schedule ``payload`` to fire ``delay_ms`` after the last :meth:`advance` time.

        :param delay_ms: integer ms; zero or negative means due at the next advance.
        :param payload: any object, returned by :meth:`advance` when the timer fires.
        :returns: a :class:`Handle` whose ``cancel()`` removes the timer.
        :raises TypeError: if ``delay_ms`` is not an integer.
        :raises ValueError: if the deadline is more than 2**47 ms from ``start_ms``.
        """
        d = _ms(delay_ms, "delay_ms")
        if not -_LIMIT < d < _LIMIT:
            raise ValueError(f"delay_ms out of range: {d}")
        return self._add(self._checked(self._now + d), payload)

    def schedule_at(self, deadline_ms: int, payload: object) -> Handle:
        """Schedule ``payload`` to fire at the absolute time ``deadline_ms``.

        :param deadline_ms: integer ms on the caller's clock; a time already past fires at
            the next :meth:`advance`.
        :param payload: any object, returned by :meth:`advance` when the timer fires.
        :returns: a :class:`Handle`.
        :raises TypeError: if ``deadline_ms`` is not an integer.
        :raises ValueError: if it is more than 2**47 ms from ``start_ms``.
        """
        d = _ms(deadline_ms, "deadline_ms")
        if not -_LIMIT < d < _LIMIT:
            raise ValueError(f"deadline_ms out of range: {d}")
        return self._add(self._checked(d - self._base), payload)

    def advance(self, now_ms: int) -> list[object]:
        """Move the wheel's time to ``now_ms`` and return every payload now due.

        :param now_ms: the caller's clock in integer ms; a time before the wheel's current
            time does not move it back (only timers already due are returned).
        :returns: the expired payloads, ordered by deadline, ties in scheduling order.
        :raises TypeError: if ``now_ms`` is not an integer.
        :raises ValueError: if it is more than 2**47 ms from ``start_ms``.
        """
        t = _ms(now_ms, "now_ms")
        if not -_LIMIT < t < _LIMIT:
            raise ValueError(f"now_ms out of range: {t}")
        return self._advance(t - self._base)

    def next_deadline(self) -> int | None:
        """The time of the earliest pending timer, or None when the wheel is empty.

        Never later than the earliest pending deadline (exactly it at ``tick_ms=1``), and later
        than the last :meth:`advance` unless a timer is already due.
        """
        if self._count == 0:
            return None
        return self._next_internal() + self._base

    @property
    def now_ms(self) -> int:
        """The wheel's time: the last :meth:`advance` (or ``start_ms``)."""
        return self._now + self._base

    @property
    def tick_ms(self) -> int:
        return self._tick

    @property
    def wheel_size(self) -> int:
        return self._size

    @property
    def levels(self) -> int:
        """How many levels exist now (overflow wheels are created on demand)."""
        return self._levels

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (
            f"<timewheel.TimingWheel tick_ms={self._tick} wheel_size={self._size}"
            f" now_ms={self.now_ms} pending={self._count}>"
        )

    # -- scheduling ----------------------------------------------------------------------

    def _checked(self, d):
        if not -_LIMIT < d < _LIMIT:
            raise ValueError(f"deadline out of range: {d + self._base}")
        return d

    def _add(self, d, payload):
        s = self._alloc_slot()
        g = self._rec[2 * s + 1]
        self._rec[2 * s] = d
        self._spay[s] = payload
        if d <= self._now:
            if self._blive[self._od] == 0 or d < self._bmin[self._od]:
                self._bmin[self._od] = d
            self._append_entry(self._od, (g << 32) | s)
        else:
            self._file((g << 32) | s, d, self._now + 1)
        self._count += 1
        h = Handle.__new__(Handle)
        h._wid = self._wid
        h._slot = s
        h._gen = g
        return h

    def _level(self, d):
        """The level of a timer due at ``d`` (not before the clock): the highest level whose
        tick count differs between ``d`` and the clock."""
        c = self._clk
        lvl = 0
        if self._pow2:
            while lvl + 1 < self._maxl and d >> self._lsh[lvl + 1] != c >> self._lsh[lvl + 1]:
                lvl += 1
        else:
            while lvl + 1 < self._maxl and d // self._lt[lvl + 1] != c // self._lt[lvl + 1]:
                lvl += 1
        return lvl

    def _file(self, e, d, lo):
        """File entry ``e`` (deadline ``d``) in its bucket; ``lo`` bounds every key given now."""
        lvl = self._level(d)
        if self._pow2:  # shifts and masks instead of two 64-bit divisions
            sh = self._lsh[lvl]
            q = d >> sh
            idx = q & (self._size - 1)
            start = q << sh
        else:
            t = self._lt[lvl]
            q = d // t
            idx = q % self._size
            start = q * t
        b = lvl * self._size + idx
        if self._blive[b] == 0:
            if lvl >= self._levels:
                self._levels = lvl + 1
            key = start
            if key < lo:  # only the level-0 bucket of the clock's own tick starts in the past
                key = lo
            self._bkey[b] = key
            self._bmin[b] = d
            self._push_bucket(b, lvl, idx, key)
        elif d < self._bmin[b]:
            self._bmin[b] = d
        self._append_entry(b, e)

    def _append_entry(self, b, e):
        fill = self._bfill[b]
        c = self._btail[b]
        if c < 0 or fill == _CHUNK - 1:
            n = self._new_chunk()
            if c < 0:
                self._bhead[b] = n
            else:
                self._pool[c * _CHUNK] = n
            self._btail[b] = n
            c = n
            fill = 0
        fill += 1
        self._pool[c * _CHUNK + fill] = e
        self._bfill[b] = fill
        self._blive[b] += 1

    # -- cancelling ----------------------------------------------------------------------

    def _is_pending(self, s, g):
        return 0 <= s < self._snext and self._rec[2 * s + 1] == g

    def _cancel(self, s, g):
        if s < 0 or s >= self._snext or self._rec[2 * s + 1] != g:
            return False
        self._spay[s] = None  # first: the payload's line is the slowest to come
        d = self._rec[2 * s]
        b = self._bucket_at(d)
        self._blive[b] -= 1
        if self._blive[b] == 0:
            self._free_chain(self._bhead[b])
            self._reset_bucket(b)
        elif self._bmin[b] == d:
            self._bmin[b] = _STALE
        self._release_slot(s)
        self._count -= 1
        return True

    def _bucket_at(self, d):
        """The bucket of a pending timer due at ``d``: a function of ``d`` and the clock."""
        if d <= self._clk:
            return self._od  # timers in the wheel are all due after the clock
        lvl = self._level(d)
        if self._pow2:
            return lvl * self._size + ((d >> self._lsh[lvl]) & (self._size - 1))
        return lvl * self._size + (d // self._lt[lvl]) % self._size

    # -- advancing -----------------------------------------------------------------------

    def _advance(self, now):
        if now < self._now:
            now = self._now
        m = 0  # due timers gathered so far, in firing order, in _scr[:m]
        if self._blive[self._od] > 0:
            m = self._fire(self._od, now, m)
        while self._hlen > 0:
            item = self._heap[0]
            key = item // self._mod
            if key > now:
                break
            self._heap_pop()
            rank = item % self._mod
            lvl = self._maxl - 1 - rank // self._size
            b = lvl * self._size + rank % self._size
            if self._bhk[b] == key:
                self._bhk[b] = -1
            if self._bkey[b] != key or self._blive[b] == 0:
                continue  # stale: the bucket was emptied or refilled since
            self._clk = key
            if lvl == 0:
                m = self._fire(b, now, m)
            else:
                self._cascade(b, key, m)
        self._now = now
        self._clk = now
        return self._take(m)

    def _fire(self, b, now, m):
        """Append the timers of level-0 bucket ``b`` due by ``now`` to ``_scr[m:]`` in firing
        order and return the new end; re-file the rest (only when ``tick_ms > 1``)."""
        n = self._collect(b, m)
        k = m
        ordered = True
        prev = _STALE
        for i in range(m, m + n):
            d = self._sd[i]
            if d <= now:
                if d < prev:
                    ordered = False
                prev = d
                self._scr[k] = self._scr[i]
                self._sd[k] = d
                k += 1
            else:
                self._file(self._scr[i], d, now + 1)
        if not ordered:
            self._sort_scratch(m, k)
        return k

    def _cascade(self, b, key, m):
        """Re-file the timers of higher-level bucket ``b``, keeping ``_scr[:m]``."""
        n = self._collect(b, m)
        for i in range(m, m + n):
            self._file(self._scr[i], self._sd[i], key)  # down to a finer level

    def _take(self, m):
        """The payloads of the due entries ``_scr[:m]``, whose slots are released."""
        if cython.compiled:  # moves the references: see _payloads.pxd
            out = take_payloads(self._spay, cython.address(self._scr[0]), m)
        else:
            out = [None] * m
            for i in range(m):
                s = self._scr[i] & _SLOT_MASK
                out[i] = self._spay[s]
                self._spay[s] = None
        for i in range(m):
            self._release_slot(self._scr[i] & _SLOT_MASK)
        self._count -= m
        if len(self._scr) > _SCRATCH_KEEP:  # after a large drain: give the memory back
            self._scr = self._sd = None  # type: ignore[assignment]
            self._scr_arr = _zeros("q", 64)
            self._sd_arr = _zeros("q", 64)
            self._scr = self._scr_arr
            self._sd = self._sd_arr
        return out

    def _sort_scratch(self, lo, hi):
        """Sort ``_scr[lo:hi]`` by deadline, keeping filing (= scheduling) order for ties."""
        keyed = []
        for i in range(lo, hi):
            keyed.append((self._sd[i], i, self._scr[i]))
        keyed.sort()
        for i in range(lo, hi):
            d, _, e = keyed[i - lo]
            self._sd[i] = d
            self._scr[i] = e

    def _collect(self, b, at):
        """Copy bucket ``b``'s live entries and their deadlines (in filing order) to
        ``_scr[at:]`` and ``_sd[at:]``, empty it, and return how many there were."""
        if at + self._blive[b] > len(self._scr):
            self._grow_scratch(2 * (at + self._blive[b]))
        n = at
        c = self._bhead[b]
        tail = self._btail[b]
        while c >= 0:
            base = c * _CHUNK
            cnt = self._bfill[b] if c == tail else _CHUNK - 1
            for j in range(base + 1, base + cnt + 1):
                e = self._pool[j]
                s = e & _SLOT_MASK
                if self._rec[2 * s + 1] == e >> 32:
                    self._scr[n] = e
                    self._sd[n] = self._rec[2 * s]
                    n += 1
            nxt = self._pool[base]
            self._pool[base] = self._pfree
            self._pfree = c
            c = nxt
        self._reset_bucket(b)
        return n - at

    def _grow_scratch(self, cap):
        self._scr = self._sd = None  # type: ignore[assignment]  # release the typed views
        self._scr_arr = _grown(self._scr_arr, "q", cap)
        self._sd_arr = _grown(self._sd_arr, "q", cap)
        self._scr = self._scr_arr
        self._sd = self._sd_arr

    def _reset_bucket(self, b):
        self._bhead[b] = -1
        self._btail[b] = -1
        self._bfill[b] = 0
        self._blive[b] = 0
        self._bkey[b] = -1
        self._bmin[b] = _STALE

    # -- next deadline -------------------------------------------------------------------

    def _next_internal(self):
        if self._blive[self._od] > 0:
            return self._bucket_min(self._od)
        while self._hlen > 0:  # drop stale heads so the walk below stays short
            item = self._heap[0]
            key = item // self._mod
            b = self._bucket_of(item)
            if self._bkey[b] == key and self._blive[b] > 0:
                break
            self._heap_pop()
            if self._bhk[b] == key:
                self._bhk[b] = -1
        best = _LIMIT * 4
        # Visit, in heap order, only the buckets whose key is below the best minimum so far:
        # a bucket's key never exceeds its earliest deadline, so the rest cannot beat it.
        stack = [0]
        while stack:
            i = stack.pop()
            if i >= self._hlen:
                continue
            item = self._heap[i]
            key = item // self._mod
            if key >= best:
                continue
            b = self._bucket_of(item)
            if self._bkey[b] == key and self._blive[b] > 0:
                m = self._bucket_min(b)
                if m < best:
                    best = m
            stack.append(2 * i + 1)
            stack.append(2 * i + 2)
        return best

    def _bucket_of(self, item):
        rank = item % self._mod
        return (self._maxl - 1 - rank // self._size) * self._size + rank % self._size

    def _bucket_min(self, b):
        if self._bmin[b] != _STALE:
            return self._bmin[b]
        best = _LIMIT * 4
        c = self._bhead[b]
        tail = self._btail[b]
        while c >= 0:
            base = c * _CHUNK
            cnt = self._bfill[b] if c == tail else _CHUNK - 1
            for j in range(1, cnt + 1):
                e = self._pool[base + j]
                s = e & _SLOT_MASK
                if self._rec[2 * s + 1] == e >> 32 and self._rec[2 * s] < best:
                    best = self._rec[2 * s]
            c = self._pool[base]
        self._bmin[b] = best
        return best

    # -- the heap of bucket keys ---------------------------------------------------------

    def _push_bucket(self, b, lvl, idx, key):
        if self._bhk[b] == key:
            return 0  # an item with this key is still in the heap: it becomes valid again
        self._bhk[b] = key
        # Higher levels rank first at equal keys, so a cascade files its timers before the
        # level-0 bucket with the same key fires.
        self._heap_push(key * self._mod + (self._maxl - 1 - lvl) * self._size + idx)

    def _heap_push(self, item):
        n = self._hlen
        if n == len(self._heap):
            self._heap_arr = _grown(self._heap_arr, "q", 2 * n)
            self._heap = self._heap_arr
        while n > 0:
            parent = (n - 1) >> 1
            p = self._heap[parent]
            if p <= item:
                break
            self._heap[n] = p
            n = parent
        self._heap[n] = item
        self._hlen += 1

    def _heap_pop(self):
        self._hlen -= 1
        n = self._hlen
        last = self._heap[n]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and self._heap[child + 1] < self._heap[child]:
                child += 1
            if self._heap[child] >= last:
                break
            self._heap[i] = self._heap[child]
            i = child
        if n > 0:
            self._heap[i] = last

    # -- slots and chunks ----------------------------------------------------------------

    def _alloc_slot(self):
        s = self._free
        if s >= 0:
            self._free = self._rec[2 * s]
            return s
        s = self._snext
        if s == self._scap:
            self._grow_slots()
        self._snext = s + 1
        return s

    def _grow_slots(self):
        # Grow by 1/8: arrays grow in place (realloc, which for large blocks remaps pages
        # instead of copying), so a small step costs little and leaves little slack.
        cap = self._scap + (self._scap >> 3) + 64
        self._rec = None  # type: ignore[assignment]  # release the typed view: resize in place
        self._rec_arr.frombytes(bytes(16 * (cap - self._scap)))
        self._rec = self._rec_arr
        self._spay.extend([None] * (cap - self._scap))
        self._scap = cap

    def _release_slot(self, s):
        """Bump slot ``s``'s generation and free it (its payload is already cleared)."""
        self._rec[2 * s + 1] = (self._rec[2 * s + 1] + 1) & _GEN_MASK
        self._rec[2 * s] = self._free  # a free slot's deadline word links the free list
        self._free = s

    def _new_chunk(self):
        c = self._pfree
        if c >= 0:
            self._pfree = self._pool[c * _CHUNK]
        else:
            c = self._pnext
            if c == self._pcap:
                cap = self._pcap + (self._pcap >> 3) + 16
                self._pool = None  # type: ignore[assignment]  # as in _grow_slots
                self._pool_arr.frombytes(bytes(8 * _CHUNK * (cap - self._pcap)))
                self._pool = self._pool_arr
                self._pcap = cap
            self._pnext = c + 1
        self._pool[c * _CHUNK] = -1
        return c

    def _free_chain(self, c):
        while c >= 0:
            nxt = self._pool[c * _CHUNK]
            self._pool[c * _CHUNK] = self._pfree
            self._pfree = c
            c = nxt
