"""Circuit breakers and the per-resource degrade check (pure-Python truth of the twin).

A breaker is CLOSED, OPEN or HALF_OPEN (Sentinel 1.8, shared/REFERENCE.md Part A section 4):

* CLOSED: every entry passes. Each completion is counted in one bucket of
  ``stat_interval_ms`` (aligned to the clock, as Sentinel's single-bucket LeapArray); once
  at least ``min_requests`` completed in the bucket and the slow ratio, error ratio or
  error count is **strictly** above the threshold (or a slow ratio of 1.0 meets a
  threshold of 1.0), the breaker opens for ``recovery_sec``.
* OPEN: entries are refused until the recovery time has passed; then the first entry
  turns the breaker HALF_OPEN and is the one probe.
* HALF_OPEN: everyone else is refused. The probe's completion decides: success (fast
  enough for ``slow_ratio``, no error for the error strategies) closes the breaker and
  clears its statistics; failure opens it for another ``recovery_sec``. A probe refused by
  another breaker of the resource (or any later check) puts the breaker back to OPEN
  without a new wait, so the next entry probes again (Sentinel #1638).

Departure from Sentinel: only the probe's own completion decides the half-open state. In
Sentinel any completion arriving while half-open decides it, so a slow call admitted long
before the breaker opened could re-open it in place of the probe.

Listeners hear every transition as ``(resource, old, new, rule, value)`` with the states'
names; ``value`` is the ratio or count that tripped the breaker, 1.0 for a failed or
refused probe, None for transitions to half-open or closed (as Sentinel's observers).

Argument C types are declared in ``_breaker_c.pxd``; numeric arguments are left
unannotated here because a Python ``int`` annotation would contradict them.
"""

from __future__ import annotations

import logging
from typing import Any

import cython

from guard.errors import DegradeBlocked

if cython.compiled:
    from cython.cimports.guard._chain_c import Check, Entry, block, new_error
else:
    from guard.chain import Check, Entry, block, new_error

__all__ = ["STATE_NAMES", "Breaker", "DegradeCheck"]

_log = logging.getLogger("guard.degrade")

# States and kinds are C ints in the compiled twin (declared in the .pxd), so the hot
# path compares machine integers rather than looking up module globals.
CLOSED = 0
OPEN = 1
HALF_OPEN = 2
STATE_NAMES = ("closed", "open", "half_open")

SLOW_RATIO = 0
ERROR_RATIO = 1
ERROR_COUNT = 2

_NO_BUCKET = -(1 << 62)


class Breaker:
    """One degrade rule's breaker: its state and its completion counts.

    :param rule: the ``DegradeRule`` (reported in errors and to listeners).
    :param kind: ``SLOW_RATIO``, ``ERROR_RATIO`` or ``ERROR_COUNT``.
    :param listeners: callables told of every state change (shared, may grow later).
    """

    def __init__(
        self,
        rule: Any,
        kind: int,
        threshold: float,
        max_rt_ms: int,
        recovery_ms: int,
        min_requests: int,
        interval_ms: int,
        listeners: list[Any],
    ) -> None:
        self.rule = rule
        self.resource = str(rule.resource)
        self.kind = kind
        self.threshold = threshold
        self.max_rt_ms = max_rt_ms
        self.recovery_ms = recovery_ms
        self.min_requests = min_requests
        self.interval_ms = interval_ms
        self.listeners = listeners
        self.state = CLOSED
        self.next_retry = 0
        self.bucket_start = _NO_BUCKET
        self.total = 0
        self.bad = 0

    @property
    def state_name(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        return STATE_NAMES[self.state]

    def roll(self, now) -> None:  # type: ignore[no-untyped-def]
        """Start a fresh bucket when ``now`` is past the current one."""
        start: cython.longlong = now - now % self.interval_ms
        if start > now:  # C's remainder of a time below zero (a ManualClock may start there)
            start -= self.interval_ms
        if start != self.bucket_start:
            self.bucket_start = start
            self.total = 0
            self.bad = 0

    def try_probe(self, now) -> bool:  # type: ignore[no-untyped-def]
        """OPEN and recovered: become HALF_OPEN; the caller is the probe."""
        if self.state == OPEN and now >= self.next_retry:
            self.set_state(HALF_OPEN, None, now)
            return True
        return False

    def revert_probe(self) -> None:
        """The probe was refused by a later check: back to OPEN, retry at once."""
        if self.state == HALF_OPEN:
            self.state = OPEN
            self.notify(HALF_OPEN, OPEN, 1.0)

    def on_request(self, now, rt, error, probe) -> None:  # type: ignore[no-untyped-def]
        """Count one completion and move the state if it says so."""
        bad: cython.bint
        bad = rt > self.max_rt_ms if self.kind == SLOW_RATIO else error
        self.roll(now)
        self.total += 1
        if bad:
            self.bad += 1
        if self.state == OPEN:
            return
        if self.state == HALF_OPEN:
            if probe:
                if bad:
                    self.set_state(OPEN, 1.0, now)
                else:
                    self.set_state(CLOSED, None, now)
            return
        if self.total < self.min_requests:
            return
        value: cython.double
        value = self.bad if self.kind == ERROR_COUNT else 1.0 * self.bad / self.total
        if value > self.threshold or (
            self.kind == SLOW_RATIO and value == 1.0 and self.threshold == 1.0
        ):
            self.set_state(OPEN, value, now)

    def set_state(self, new, value, now) -> None:  # type: ignore[no-untyped-def]
        old: cython.int = self.state
        self.state = new
        if new == OPEN:
            self.next_retry = now + self.recovery_ms
        elif new == CLOSED:
            # Sentinel resets the statistics when a probe closes the breaker.
            self.total = 0
            self.bad = 0
        self.notify(old, new, value)

    def notify(self, old, new, value) -> None:  # type: ignore[no-untyped-def]
        for listener in self.listeners:
            try:
                listener(self.resource, STATE_NAMES[old], STATE_NAMES[new], self.rule, value)
            except Exception:
                # A broken listener must not break the entry that moved the breaker.
                _log.exception("breaker listener %r failed", listener)

    def retry_after(self, now) -> Any:  # type: ignore[no-untyped-def]
        """Seconds until the probe (None while a probe is in flight)."""
        if self.state != OPEN:
            return None
        left: cython.longlong = self.next_retry - now
        return (left if left > 0 else 0) / 1000.0

    def __repr__(self) -> str:
        return f"<Breaker {self.resource} {STATE_NAMES[self.state]}>"


class DegradeCheck(Check):
    """The degrade slot's check for one resource: every breaker must let the entry pass."""

    order = 5000

    def __init__(self, breakers: list[Any]) -> None:
        super().__init__()
        self.has_stat = True
        self.breakers = breakers

    def check(self, e: Entry) -> Any:
        now: cython.longlong = e.start
        probes: Any = None
        for item in self.breakers:
            b: Breaker = item
            if b.state == CLOSED:
                continue
            if b.try_probe(now):
                if probes is None:
                    probes = []
                    e.data = probes
                probes.append(b)
                continue
            return block(new_error(DegradeBlocked, e.res.name, b.rule, b.retry_after(now)))
        return None

    def on_block(self, e: Entry, error: Any) -> None:
        probes = e.data
        if type(probes) is list:
            for item in probes:
                b: Breaker = item
                b.revert_probe()

    def on_complete(self, e: Entry) -> None:
        now: cython.longlong = e.end
        rt: cython.longlong = e.end - e.start
        error: cython.bint = e.error is not None
        probes = e.data
        if type(probes) is not list:
            probes = None
        for item in self.breakers:
            b: Breaker = item
            b.on_request(now, rt, error, probes is not None and b in probes)
