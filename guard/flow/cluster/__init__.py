"""Cluster flow control: one flow rule's count shared by every process on the same Redis.

A flow rule with a ``cluster:`` section (SPEC §5) gets a :class:`ClusterController`
instead of a local one. The shared state is one sliding window per rule in Redis (1000 ms
in 100 buckets of 10 ms, Redis server time), changed only by one atomic Lua script,
``guard/flow/_lua/cluster_acquire.lua``, whose keys share the hash tag
``{guard:flow:<rule-id>}`` so they live on one Redis Cluster slot (``keys``).

Two ways to decide, chosen by ``cluster.lease_ms``:

* **Leasing** (``lease_ms > 0``, default 100): a background thread (one per Redis URL per
  process, see ``link``) leases a small share of the remaining budget, sized to this
  process's recent demand and at most ``limit * lease_ms / 1000`` tokens, valid for
  ``lease_ms`` (``lease``). A decision takes a token from the lease under a lock: no I/O,
  so the check stays cheap. Unused tokens go back to their bucket when the lease expires.
  When the lease is empty and the window is not known to be exhausted, a *synchronous*
  caller tops it up with one round trip; a caller on an event-loop thread decides on the
  process's local share instead (booked on the shared window with the next lease) and
  wakes the thread, so the event loop never waits for Redis.
* **Strict** (``lease_ms: 0``): one round trip per decision. Exact at low rates. Callers
  on an event-loop thread still decide from a 50 ms lease, because a check must never
  block the loop.

No decision waits longer than ``timeout_ms`` for Redis, counted from the moment it starts
waiting and covering connect, send and reply: calls are made by one sender thread per
link and the caller waits for the reply with that timeout (``calls``). The caller that
gives up decides locally at once.

Fallback: as soon as a call fails, or any request (a decision's, a lease's, a heartbeat's)
has gone ``timeout_ms`` without a reply, every rule on that Redis switches to local
enforcement (``global``: ``count`` divided by the live instances last seen, counted by
heartbeats in a sorted set with a 3 s TTL; ``avg_local``: ``count``), with the rule's own
control behaviour. Decisions after that go local without waiting. The thread probes Redis
every 100 ms and switches back when it answers, booking the passes admitted locally in the
last second so the shared window stays honest. Transitions are logged
(``guard.flow.cluster``) and counted (:func:`cluster_metrics`, ``status``). With
``fallback_to_local: false`` the rule admits everything while Redis is down, as Sentinel
does.

In cluster mode the shared count is enforced as ``reject`` (Sentinel's token server does
the same, #485); ``warm_up`` and ``rate_limiter`` apply when the rule runs locally.

Modules: ``controller`` (decisions and transitions), ``lease`` (leased tokens, no I/O),
``link`` (client, refiller, health), ``calls`` (calls with a deadline), ``keys`` (Redis
key names), ``status`` (what ``/metrics`` shows).
"""

from __future__ import annotations

from guard.flow.cluster.controller import ClusterController, make_cluster_controller
from guard.flow.cluster.keys import rule_id, rule_keys
from guard.flow.cluster.link import use_client
from guard.flow.cluster.status import ClusterRuleStatus, cluster_metrics

__all__ = [
    "ClusterController",
    "ClusterRuleStatus",
    "cluster_metrics",
    "make_cluster_controller",
    "rule_id",
    "rule_keys",
    "use_client",
]
