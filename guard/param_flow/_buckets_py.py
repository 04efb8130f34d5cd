"""Per-value buckets of hot-parameter rules (pure-Python truth of the twin).

Each rule keeps one small bucket per distinct value of its argument, in an LRU of
``min(4000 x duration_sec, 200_000)`` values (Sentinel 1.8's ParameterMetric capacity), so
memory stays flat however many distinct values arrive; an evicted value starts afresh.
The algorithms follow Sentinel's ParamFlowChecker (shared/REFERENCE.md Part A section 6):

* **reject** (token bucket): ``tokens = int(count)`` (or the value's ``items`` count),
  ``max = tokens + burst``. The first sight of a value passes and leaves ``max - acquire``.
  Within ``duration_sec`` of the last refill a call takes ``acquire`` tokens or is refused:
  there is no partial refill inside a period. Once more than a period has passed, the bucket
  gains ``elapsed x tokens / period`` (whole tokens, capped at ``max``) and the refill time
  moves to now.
* **rate_limiter** (per value): calls with one value are spaced
  ``round(1000 x acquire x duration_sec / tokens)`` ms apart; a call may queue while its
  wait is below ``max_queue_ms`` (strictly, as Sentinel), else it is refused.

A count below 1 (after truncation) refuses every call whose argument is present.

Argument C types are declared in ``_buckets_c.pxd``; numeric arguments are left
unannotated here because a Python ``int`` annotation would contradict them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import cython

from guard.errors import ParamFlowBlocked

if cython.compiled:
    from cython.cimports.guard._chain_c import Check, Entry, block, new_error, wait
else:
    from guard.chain import Check, Entry, block, new_error, wait

__all__ = ["BASE_CAPACITY", "MAX_CAPACITY", "ParamFlowCheck", "ParamRuleState", "ValueBucket"]

BLOCK = -1.0
BASE_CAPACITY = 4000
MAX_CAPACITY = 200_000
_NO_KEY = object()


class ValueBucket:
    """One value's state: tokens left and the last refill (or, throttling, pass) time."""

    def __init__(self, rest, last) -> None:  # type: ignore[no-untyped-def]
        self.rest = rest
        self.last = last


class ParamRuleState:
    """One hot-parameter rule compiled: its settings, item counts and value buckets.

    :param capacity: how many values the LRU keeps (Sentinel's capacity by default).
    """

    def __init__(self, rule: Any, capacity: int | None = None) -> None:
        self.rule = rule
        self.param_index = int(rule.param_index)
        self.count = int(rule.count)  # Sentinel truncates the count to whole tokens
        self.burst = int(rule.burst)
        self.duration_sec = int(rule.duration_sec)
        self.duration_ms = self.duration_sec * 1000
        self.throttle = rule.control == "rate_limiter"
        self.max_queue_ms = int(rule.max_queue_ms)
        self.items = {value: int(count) for value, count in rule.items}
        self.has_items = bool(self.items)
        if capacity is None:
            capacity = min(BASE_CAPACITY * self.duration_sec, MAX_CAPACITY)
        self.capacity = max(1, capacity)
        self.buckets: OrderedDict[Any, ValueBucket] = OrderedDict()
        self.last_key: Any = _NO_KEY
        self.last_bucket: Any = None

    def bucket(self, value: Any) -> Any:
        """``value``'s bucket, now the most recently used, or None."""
        if value is self.last_key:
            # Already the most recently used (last in the LRU): nothing to move. A hot
            # value repeated call after call takes this path.
            return self.last_bucket
        buckets = self.buckets
        b = buckets.get(value)
        if b is not None:
            buckets.move_to_end(value)
            self.last_key = value
            self.last_bucket = b
        return b

    def add(self, value: Any, rest, last) -> None:  # type: ignore[no-untyped-def]
        """A new bucket for ``value``, evicting the least recently used past capacity."""
        buckets = self.buckets
        b = ValueBucket(rest, last)
        buckets[value] = b
        self.last_key = value
        self.last_bucket = b
        if len(buckets) > self.capacity:
            buckets.popitem(False)  # never the value just added: capacity >= 1

    def pass_value(self, value: Any, acquire, now) -> float:  # type: ignore[no-untyped-def]
        """-1.0 refuses, 0.0 passes now, > 0 passes after waiting that many ms."""
        tokens: cython.longlong = self.count
        if self.has_items:
            item = self.items.get(value)
            if item is not None:
                tokens = item
        if tokens <= 0:
            return BLOCK
        if self.throttle:
            return self.space(value, tokens, acquire, now)
        max_count: cython.longlong = tokens + self.burst
        if acquire > max_count:
            return BLOCK
        b = self.bucket(value)
        if b is None:
            self.add(value, max_count - acquire, now)
            return 0.0
        vb: ValueBucket = b
        elapsed: cython.longlong = now - vb.last
        rest: cython.longlong
        if elapsed > self.duration_ms:
            added: cython.longlong = elapsed * tokens // self.duration_ms
            rest = min(vb.rest + added, max_count) - acquire
            if rest < 0:
                return BLOCK
            vb.rest = rest
            vb.last = now
            return 0.0
        if vb.rest - acquire >= 0:
            vb.rest -= acquire
            return 0.0
        return BLOCK

    def space(self, value: Any, tokens, acquire, now) -> float:  # type: ignore[no-untyped-def]
        """Rate limiter for one value: wait until its next slot, or refuse."""
        cost: cython.longlong = int(1000.0 * acquire * self.duration_sec / tokens + 0.5)
        b = self.bucket(value)
        if b is None:
            self.add(value, 0, now)  # the first call a value makes passes at once
            return 0.0
        vb: ValueBucket = b
        expected: cython.longlong = vb.last + cost
        if expected <= now:
            vb.last = now
            return 0.0
        delay: cython.longlong = expected - now
        if delay < self.max_queue_ms:
            vb.last = expected
            return delay
        return BLOCK

    def retry_after(self, value: Any, now) -> float:  # type: ignore[no-untyped-def]
        """Seconds until ``value`` may pass again, at most one period."""
        left: cython.double = self.duration_ms
        try:
            b = self.buckets.get(value)
        except TypeError:  # unhashable: never has a bucket
            b = None
        if b is not None:
            vb: ValueBucket = b
            if self.throttle:
                left = vb.last - now - self.max_queue_ms + 1
            else:
                left = vb.last + self.duration_ms + 1 - now
        left = min(max(left, 0.0), self.duration_ms)
        return left / 1000.0


class ParamFlowCheck(Check):
    """The param_flow slot's check for one resource: every rule, every value must pass.

    A missing argument (index out of range) or None passes. A list, tuple, set or
    frozenset argument is checked element by element (tokens taken by earlier elements
    stay taken, as Sentinel). Unhashable values cannot be counted: they pass unless the
    rule's count is 0.
    """

    order = 3000

    def __init__(self, states: list[Any]) -> None:
        super().__init__()
        self.states = states

    def check(self, e: Entry) -> Any:
        args = e.args
        n: cython.Py_ssize_t = len(args)
        idx: cython.Py_ssize_t
        now: cython.longlong = e.start
        total: cython.double = 0.0
        result: cython.double
        for item in self.states:
            state: ParamRuleState = item
            idx = state.param_index
            if idx < 0:
                idx += n
            if idx < 0 or idx >= n:
                continue
            value = args[idx]
            if value is None:
                continue
            kind = type(value)
            if kind is list or kind is tuple or kind is set or kind is frozenset:
                for element in value:
                    if element is None:
                        continue
                    result = self.one(state, element, e.count, now)
                    if result < 0.0:
                        return self.refuse(e, state, element, now)
                    total += result
                continue
            result = self.one(state, value, e.count, now)
            if result < 0.0:
                return self.refuse(e, state, value, now)
            total += result
        if total > 0.0:
            return wait(total)
        return None

    def one(self, state: ParamRuleState, value: Any, acquire, now) -> float:  # type: ignore[no-untyped-def]
        kind = type(value)
        if kind is str or kind is int:  # the usual keys: hashable, no try block to set up
            return state.pass_value(value, acquire, now)
        try:
            return state.pass_value(value, acquire, now)
        except TypeError:  # unhashable: cannot have a bucket; only a zero count refuses it
            return BLOCK if state.count <= 0 else 0.0

    def refuse(self, e: Entry, state: ParamRuleState, value: Any, now) -> Any:  # type: ignore[no-untyped-def]
        error = new_error(ParamFlowBlocked, e.res.name, state.rule, state.retry_after(value, now))
        error.value = value
        return block(error)
