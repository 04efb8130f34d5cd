"""Cluster flow control: one flow rule's count shared by every process on the same Redis.

A flow rule with a ``cluster:`` section (SPEC §5) gets a :class:`ClusterController`
instead of a local one. The shared state is one sliding window per rule in Redis (1000 ms
in 100 buckets of 10 ms, Redis server time), changed only by one atomic Lua script,
``_lua/cluster_acquire.lua``, whose keys share the hash tag ``{guard:flow:<rule-id>}`` so
they live on one Redis Cluster slot.

Two ways to decide, chosen by ``cluster.lease_ms``:

* **Leasing** (``lease_ms > 0``, default 100): a background thread (one per Redis URL per
  process, see ``cluster_link``) leases a small share of the remaining budget, sized to
  this process's recent demand and at most ``limit * lease_ms / 1000`` tokens, valid for
  ``lease_ms``. A decision takes a token from the lease under a lock: no I/O, so the
  check stays cheap and the async entry path never waits on Redis. Unused tokens go back
  to their bucket when the lease expires. When the lease is empty and the window is not
  known to be exhausted, a *synchronous* caller tops it up with one round trip (at most
  ``timeout_ms``); a caller on an event-loop thread is refused and the thread is woken.
* **Strict** (``lease_ms: 0``): one round trip per decision on the caller's thread, with
  socket timeout ``timeout_ms``. Exact at low rates. Callers on an event-loop thread
  still decide from a 50 ms lease, because a check must never block the loop.

Fallback: when Redis fails, or a call outlives ``timeout_ms``, every rule on that Redis
switches to local enforcement (``global``: ``count`` divided by the live instances last
seen, counted by heartbeats in a sorted set with a 3 s TTL; ``avg_local``: ``count``), with
the rule's own control behaviour. The thread probes Redis every 100 ms and switches back
when it answers, booking the passes admitted locally in the last second so the shared
window stays honest. Transitions are logged (``guard.flow.cluster``) and counted
(:func:`cluster_metrics`). With ``fallback_to_local: false`` the rule admits everything
while Redis is down, as Sentinel does.

In cluster mode the shared count is enforced as ``reject`` (Sentinel's token server does
the same, #485); ``warm_up`` and ``rate_limiter`` apply when the rule runs locally.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from guard.flow.cluster_link import FAILURES, Link, Script, get_link, use_client
from guard.flow.controllers import Controller

__all__ = [
    "ClusterController",
    "ClusterRuleStatus",
    "cluster_metrics",
    "make_cluster_controller",
    "rule_id",
    "rule_keys",
    "use_client",
]

WINDOW_MS = 1000
#: 10 ms buckets: the shared window is 990 to 1000 ms long (Sentinel's 10 x 100 ms
#: would let up to 11% more through over a run).
BUCKETS = 100
BUCKET_S = WINDOW_MS / BUCKETS / 1000.0
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
#: Below this demand (decisions per second) a process keeps no lease.
IDLE_RATE = 0.05

BLOCK = -1.0
CLUSTER = "cluster"
FALLBACK = "fallback"

_SCRIPT = Script("cluster_acquire.lua")
_ids = itertools.count(1)
_controllers: weakref.WeakSet[ClusterController] = weakref.WeakSet()
_counters: dict[str, dict[str, int]] = {}
_get_running_loop = asyncio._get_running_loop
_monotonic = time.monotonic


def _after_fork_in_child() -> None:
    # A forked child is another instance: its own heartbeat id, no lease of the parent's.
    for c in list(_controllers):
        c._lock = threading.Lock()
        c.instance = f"{socket.gethostname()}:{os.getpid()}:{next(_ids)}"
        c.tokens = 0
        c.grants = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def rule_id(rule: Any) -> str:
    """The id of a cluster rule's shared window: same in every process loading the rule.

    It names what is limited (resource, origin, strategy, reference), not the count, so
    changing a rule's count keeps its window.
    """
    identity = "\0".join(
        (rule.resource, rule.limit_app, str(rule.strategy), rule.ref_resource or "")
    )
    digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:10]
    readable = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in rule.resource)
    return f"{readable[:64]}:{digest}"


def rule_keys(rule: Any) -> list[str]:
    """Redis keys of a rule's window and live-instance set (one hash tag, one slot)."""
    tag = "{guard:flow:" + rule_id(rule) + "}"
    return [tag + ":window", tag + ":instances"]


@dataclass(frozen=True)
class ClusterRuleStatus:
    """One cluster rule as seen by this process (what a ``/metrics`` page exports)."""

    resource: str
    rule_id: str
    url: str
    state: str  # "cluster" | "fallback"
    live_instances: int
    leased_tokens: int
    fallback_total: int
    recovery_total: int


def cluster_metrics() -> list[ClusterRuleStatus]:
    """Status and transition counters of every cluster rule loaded in this process."""
    out = []
    for c in list(_controllers):
        counts = _counters.get(c.id, {})
        out.append(
            ClusterRuleStatus(
                resource=c.rule.resource,
                rule_id=c.id,
                url=c.rule.cluster.url,
                state=c.state,
                live_instances=c.live,
                leased_tokens=c.tokens,
                fallback_total=counts.get("fallback", 0),
                recovery_total=counts.get("recovery", 0),
            )
        )
    return sorted(out, key=lambda s: (s.resource, s.rule_id))


def _count(rule_key: str, what: str) -> None:
    counts = _counters.setdefault(rule_key, {})
    counts[what] = counts.get(what, 0) + 1


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
        self.lease_s = (lease_ms or LOOP_LEASE_MS) / 1000.0
        self.local_factory = local_factory
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{next(_ids)}"
        self.state = CLUSTER
        self.local: Any = None
        self.closed = False
        self._lock = threading.Lock()
        self.tokens = 0  # leased, unused (sum over grants)
        # Leases not used up: [window bucket booked in, tokens left, monotonic expiry],
        # oldest first, so unused tokens go back to the bucket that counted them.
        self.grants: list[list[Any]] = []
        self.asked = 0  # tokens asked of the lease since the last refill
        self.rate = 0.0  # recent demand, tokens per second
        self.rate_at = time.monotonic()
        self.low_water = 0  # below this many tokens, wake the refiller
        self.remaining = 1  # budget left in the window at the last answer
        self.reply_at = 0.0
        self.last_call = 0.0
        self.live = 1
        self.debt = 0  # passes admitted locally, to book on the shared window
        self.bridge: Any = None  # local decisions on an event loop while the lease is empty
        self.local_passes: dict[int, int] = {}  # 100 ms slot -> passes while in fallback
        _controllers.add(self)
        link.attach(self)

    # -- decisions (any thread) --------------------------------------------------------

    def can_pass(self, node: Any, acquire: int, now: int) -> float:
        link = self.link
        if self.state != CLUSTER or not link.healthy:
            return self._local(node, acquire, now)
        on_loop = _get_running_loop() is not None
        if self.strict and not on_loop:
            return self._round_trip(node, acquire, now, acquire, True)
        m = _monotonic()
        with self._lock:
            self.asked += acquire
            if self.tokens >= acquire and self._take(acquire, m):
                if self.tokens < self.low_water:
                    link.wake()
                return 0.0
        if link.stalled(m):
            link.mark_down(f"no answer within {link.timeout * 1000:.0f} ms")
            return self._local(node, acquire, now)
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

    def _take(self, acquire: int, now: float) -> bool:
        """Take ``acquire`` tokens from unexpired grants, oldest first (under the lock)."""
        valid = 0
        for grant in self.grants:
            if grant[2] > now:
                valid += grant[1]
        if valid < acquire:
            return False
        need = acquire
        for grant in self.grants:
            if grant[2] > now and grant[1]:
                take = min(grant[1], need)
                grant[1] -= take
                need -= take
                if not need:
                    break
        self.tokens -= acquire
        return True

    def _round_trip(self, node: Any, acquire: int, now: int, want: int, exact: bool) -> float:
        """One script call on the caller's thread: ``exact`` decides ``acquire`` alone,
        otherwise ``want`` tokens are asked for and the surplus tops up the lease."""
        link = self.link
        if link.stalled(time.monotonic()):
            link.mark_down(f"no answer within {link.timeout * 1000:.0f} ms")
            return self._local(node, acquire, now)
        try:
            reply = link.call(_SCRIPT, self.keys, self._args(want, "", 0, exact, False))
        except FAILURES:
            return self._local(node, acquire, now)
        granted = self._apply(reply, time.monotonic(), consume=acquire)
        return 0.0 if granted >= acquire else BLOCK

    def _local(self, node: Any, acquire: int, now: int) -> float:
        if not self.fallback_to_local:
            return 0.0
        local = self.local
        if local is None:  # the link went down and this controller's on_down is under way
            local = self.local = self._local_controller()
        result = float(local.can_pass(node, acquire, now))
        if result >= 0.0:
            slot = int(time.monotonic() / SLOT_S)
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

    def _target(self, now: float) -> int:
        """Tokens worth holding: twice the recent demand over one lease, capped."""
        elapsed = max(now - self.rate_at, self.lease_s)
        rate = max(self.rate, self.asked / elapsed)
        if rate < IDLE_RATE:
            return 0
        limit = self.count * (self.live if self.per_instance else 1)
        cap = max(1, math.ceil(limit * self.lease_s))
        return min(cap, math.ceil(rate * self.lease_s * 2))

    def due_in(self, now: float) -> float:
        """Seconds until this controller needs the refiller (<= 0: now)."""
        if self.closed or self.debt:
            return 0.0
        if self.state != CLUSTER:
            return HEARTBEAT_S
        # Next lapse of a grant with tokens left (its tokens go back then), or heartbeat.
        soonest = self.last_call + HEARTBEAT_S
        for grant in self.grants:
            if grant[1]:
                soonest = min(soonest, grant[2])
        if soonest <= now:
            return 0.0
        target = self._target(now)
        if target and self.tokens * 2 < target:
            if self.remaining <= 0:
                return min(soonest, self.reply_at + RETRY_S) - now
            return 0.0
        return soonest - now

    def refill(self, link: Link) -> None:
        """Top up, give back or heartbeat with one script call (refiller thread)."""
        if self.state != CLUSTER and not self.closed:
            return
        now = time.monotonic()
        with self._lock:
            elapsed = now - self.rate_at
            if elapsed >= self.lease_s:
                fresh = self.asked / elapsed
                self.rate = fresh if fresh > self.rate else (self.rate + fresh) / 2
                self.asked = 0
                self.rate_at = now
            returned = []
            kept = []
            for grant in self.grants:
                if grant[1] and (grant[2] <= now or self.closed):
                    returned.append(f"{grant[0]}:{grant[1]}")
                    self.tokens -= grant[1]
                elif grant[1]:
                    kept.append(grant)
            self.grants = kept
            target = self._target(now)
            self.low_water = (target + 1) // 2
            want = 0 if self.closed else max(0, target - self.tokens)
            debt, self.debt = self.debt, 0
            args = self._args(want, " ".join(returned), debt, False, self.closed)
        try:
            reply = link.call(_SCRIPT, self.keys, args)
        except FAILURES:
            with self._lock:
                self.debt += debt
            raise
        self._apply(reply, time.monotonic(), consume=0)

    def _args(self, want: int, give_back: str, debt: int, exact: bool, leave: bool) -> list[Any]:
        return [
            want, repr(self.count), self.per_instance, self.instance, HEARTBEAT_TTL_MS,
            give_back, debt, WINDOW_MS, BUCKETS, int(exact), int(leave),
        ]  # fmt: skip

    def _apply(self, reply: Any, now: float, consume: int) -> int:
        granted, bucket, live, remaining = (int(x) for x in reply)
        with self._lock:
            surplus = granted - consume if granted >= consume else granted
            # Kept even if closed meanwhile: the retiring refill gives it back.
            if surplus > 0 and self.state == CLUSTER:
                self.tokens += surplus
                self.grants.append([bucket, surplus, now + self.lease_s])
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
            self.tokens = 0
            self.grants = []
        self.state = FALLBACK
        _count(self.id, "fallback")

    def on_up(self) -> None:
        slot = int(time.monotonic() / SLOT_S)
        with self._lock:
            recent = sum(n for s, n in self.local_passes.items() if s > slot - SLOTS)
            self.local_passes.clear()
            self.debt += recent
            self.tokens = 0
            self.grants = []
            self.remaining = 1
        self.state = CLUSTER
        _count(self.id, "recovery")

    def close(self) -> None:
        """Give the lease back and leave the live set (the rule was removed)."""
        if not self.closed:
            self.closed = True
            self.link.retire(self)

    def __repr__(self) -> str:
        return f"<ClusterController {self.id} {self.state} tokens={self.tokens}>"
