"""The flow controller of a cluster rule: shared window, lease, round trip or local share."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from guard.flow.cluster import status
from guard.flow.cluster.calls import FAILURES, Script
from guard.flow.cluster.keys import rule_id, rule_keys
from guard.flow.cluster.lease import Lease
from guard.flow.cluster.link import Link, get_link
from guard.flow.controllers import Controller

__all__ = ["CLUSTER", "FALLBACK", "ClusterController", "make_cluster_controller"]

WINDOW_MS = 1000
#: 10 ms buckets: the shared window is 990 to 1000 ms long (Sentinel's 10 x 100 ms
#: would let up to 11% more through over a run).
BUCKETS = 100
#: Slots of the record of passes admitted locally in fallback (booked on recovery).
SLOT_S = 0.1
SLOTS = int(WINDOW_MS / 1000.0 / SLOT_S)
#: Heartbeat period and time to live of an instance in the live set.
HEARTBEAT_S = 1.0
HEARTBEAT_TTL_MS = 3000
#: Lease used by event-loop callers of a strict rule.
LOOP_LEASE_MS = 50
#: After the window answered "exhausted", wait this long before asking again.
RETRY_S = 0.05

BLOCK = -1.0
CLUSTER = "cluster"
FALLBACK = "fallback"

_SCRIPT = Script("cluster_acquire.lua")
_ids = itertools.count(1)
_get_running_loop = asyncio._get_running_loop
_monotonic = time.monotonic


def _instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{next(_ids)}"


def _after_fork_in_child() -> None:
    # A forked child is another instance: its own heartbeat id, no lease of the parent's.
    for c in status.controllers():
        c._lock = threading.Lock()
        c.instance = _instance_id()
        c.lease.clear()
        c.debt = 0  # the parent books its own local passes
        c.booking = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def make_cluster_controller(
    rule: Any, local_factory: Callable[[Any, float], Any]
) -> ClusterController:
    """A controller sharing ``rule``'s count over its ``cluster.url``.

    :param rule: a ``FlowRule`` with a ``cluster`` section.
    :param local_factory: builds the local controller used in fallback, from the rule
        and the local count.
    """
    cfg = rule.cluster
    return ClusterController(rule, get_link(cfg.url, int(cfg.timeout_ms)), local_factory)


class ClusterController(Controller):
    """Decides a cluster rule from leased tokens, per round trip, or locally in fallback.

    ``can_pass`` answers as every flow controller does: ``-1.0`` block, ``0.0`` pass.
    ``close()`` gives the lease back and leaves the live set (called when the rule is
    removed on reload).
    """

    def __init__(self, rule: Any, link: Link, local_factory: Callable[[Any, float], Any]):
        super().__init__()
        cfg = rule.cluster
        self.rule = rule
        self.link = link
        self.id = rule_id(rule)
        self.keys = rule_keys(rule)
        self.count = float(rule.count)
        self.per_instance = 1 if cfg.threshold == "avg_local" else 0
        self.fallback_to_local = bool(cfg.fallback_to_local)
        lease_ms = int(getattr(cfg, "lease_ms", 100))
        self.strict = lease_ms == 0
        self.local_factory = local_factory
        self.instance = _instance_id()
        self.state = CLUSTER
        self.local: Any = None
        self.closed = False
        self._lock = threading.Lock()  # guards the lease, debt, local_passes, remaining
        self.lease = Lease((lease_ms or LOOP_LEASE_MS) / 1000.0, _monotonic())
        self.remaining = 1  # budget left in the window at the last answer
        self.reply_at = 0.0
        self.last_call = 0.0
        self.live = 1
        self.debt = 0  # passes admitted locally, to book on the shared window
        # A booking of debt sent without a reply: (id, passes). Redis may have applied it
        # (a stalled server runs what it received once it resumes), so it is sent again
        # as it was, with its id, until an answer comes; the script books an id once.
        self.booking: tuple[str, int] | None = None
        self._bookings = itertools.count(1)
        self.bridge: Any = None  # local decisions on an event loop while the lease is empty
        self.local_passes: dict[int, int] = {}  # 100 ms slot -> passes while in fallback
        status.register(self)
        link.attach(self)

    @property
    def tokens(self) -> int:
        """Leased tokens not used yet."""
        return self.lease.tokens

    # -- decisions (any thread) --------------------------------------------------------

    def can_pass(self, node: Any, acquire: int, now: int) -> float:
        link = self.link
        if self.state != CLUSTER or not link.healthy:
            return self._local(node, acquire, now)
        on_loop = _get_running_loop() is not None
        if self.strict and not on_loop:
            return self._round_trip(node, acquire, now, acquire, True)
        m = _monotonic()
        lease = self.lease
        with self._lock:
            taken = lease.take(acquire, m)
        if taken:
            if lease.tokens < lease.low_water:
                link.wake()
            return 0.0
        link.wake()
        if self.remaining <= 0 and m - self.reply_at < RETRY_S:
            return BLOCK  # the shared window was full at the last answer
        if on_loop:
            return self._bridge(node, acquire, now)
        return self._round_trip(node, acquire, now, acquire + self._target(m), False)

    def _bridge(self, node: Any, acquire: int, now: int) -> float:
        """Decide on this process's local share while the lease is empty on an event loop.

        The loop never waits for Redis, and refusing here would turn away the first
        requests of every process (no lease yet). A pass is booked on the shared window
        with the next lease call (``debt``), so the global count still holds.
        """
        bridge = self.bridge
        if bridge is None:
            bridge = self.bridge = self._local_controller()
        result = float(bridge.can_pass(node, acquire, now))
        if result >= 0.0:
            with self._lock:
                self.debt += acquire
        return result

    def _round_trip(self, node: Any, acquire: int, now: int, want: int, exact: bool) -> float:
        """One script call, waiting at most ``timeout_ms``: ``exact`` decides ``acquire``
        alone, otherwise ``want`` tokens are asked for and the surplus tops up the lease.
        Without an answer in time the decision is local, at once."""
        try:
            reply = self.link.call(_SCRIPT, self.keys, self._args(want, "", None, exact, False))
        except FAILURES:
            return self._local(node, acquire, now)
        granted = self._apply(reply, _monotonic(), consume=acquire)
        return 0.0 if granted >= acquire else BLOCK

    def _local(self, node: Any, acquire: int, now: int) -> float:
        if not self.fallback_to_local:
            return 0.0
        local = self.local
        if local is None:  # the link went down and this controller's on_down is under way
            local = self.local = self._local_controller()
        result = float(local.can_pass(node, acquire, now))
        if result >= 0.0:
            slot = int(_monotonic() / SLOT_S)
            with self._lock:
                self.local_passes[slot] = self.local_passes.get(slot, 0) + acquire
                for old in [s for s in self.local_passes if s <= slot - SLOTS]:
                    del self.local_passes[old]
        return result

    def retry_after(self, node: Any, now: int) -> Any:
        local = self.local
        if self.state != CLUSTER and local is not None:
            return local.retry_after(node, now)
        return RETRY_S  # the shared window frees a bucket every 10 ms; ask again soon

    # -- leases (the link's refiller thread) -------------------------------------------

    def _limit(self) -> float:
        return self.count * (self.live if self.per_instance else 1)

    def _target(self, now: float) -> int:
        return self.lease.target(now, self._limit())

    def due_in(self, now: float) -> float:
        """Seconds until this controller needs the refiller (<= 0: now)."""
        if self.closed or self.debt or self.booking:
            return 0.0
        if self.state != CLUSTER:
            return HEARTBEAT_S
        # Next lapse of a grant with tokens left (its tokens go back then), or heartbeat.
        soonest = self.lease.next_lapse(self.last_call + HEARTBEAT_S)
        if soonest <= now:
            return 0.0
        target = self._target(now)
        if target and self.lease.tokens * 2 < target:
            if self.remaining <= 0:
                return min(soonest, self.reply_at + RETRY_S) - now
            return 0.0
        return soonest - now

    def refill(self, link: Link) -> None:
        """Top up, give back or heartbeat with one script call (refiller thread)."""
        if self.state != CLUSTER and not self.closed:
            return
        now = _monotonic()
        lease = self.lease
        with self._lock:
            lease.sample_rate(now)
            give_back = lease.give_back(now, self.closed)
            target = lease.target(now, self._limit())
            lease.low_water = (target + 1) // 2
            want = 0 if self.closed else max(0, target - lease.tokens)
            if self.booking is None and self.debt:
                self.booking = (f"{self.instance}:{next(self._bookings)}", self.debt)
                self.debt = 0
            booking = self.booking
            args = self._args(want, give_back, booking, False, self.closed)
        reply = link.call(_SCRIPT, self.keys, args)  # on failure the booking stays for later
        with self._lock:
            if self.booking is booking:
                self.booking = None
        self._apply(reply, _monotonic(), consume=0)

    def _args(
        self, want: int, give_back: str, booking: tuple[str, int] | None, exact: bool, leave: bool
    ) -> list[Any]:
        debt_id, debt = booking or ("", 0)
        return [
            want, repr(self.count), self.per_instance, self.instance, HEARTBEAT_TTL_MS,
            give_back, debt, WINDOW_MS, BUCKETS, int(exact), int(leave), debt_id,
        ]  # fmt: skip

    def _apply(self, reply: Any, now: float, consume: int) -> int:
        granted, bucket, live, remaining = (int(x) for x in reply)
        with self._lock:
            surplus = granted - consume if granted >= consume else granted
            # Kept even if closed meanwhile: the retiring refill gives it back.
            if surplus > 0 and self.state == CLUSTER:
                self.lease.add(bucket, surplus, now)
                if consume:  # granted on a caller's thread: the refiller must see it lapse
                    self.link.wake()
            self.live = max(1, live)
            self.remaining = remaining
            self.reply_at = self.last_call = now
        return granted

    # -- health transitions (from the link) --------------------------------------------

    def _local_controller(self) -> Any:
        share = self.count if self.per_instance else self.count / self.live
        return self.local_factory(self.rule, share)

    def on_down(self) -> None:
        self.local = self._local_controller()
        with self._lock:
            self.lease.clear()
        self.state = FALLBACK
        status.count_transition(self.id, "fallback")

    def on_up(self) -> None:
        slot = int(_monotonic() / SLOT_S)
        with self._lock:
            recent = sum(n for s, n in self.local_passes.items() if s > slot - SLOTS)
            self.local_passes.clear()
            self.debt += recent
            self.lease.clear()
            self.remaining = 1
        self.state = CLUSTER
        status.count_transition(self.id, "recovery")

    def close(self) -> None:
        """Give the lease back and leave the live set (the rule was removed)."""
        if not self.closed:
            self.closed = True
            self.link.retire(self)

    def __repr__(self) -> str:
        return f"<ClusterController {self.id} {self.state} tokens={self.lease.tokens}>"
