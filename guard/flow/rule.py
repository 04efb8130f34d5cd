"""Flow rules: how many entries a resource admits, measured how, and what happens past it.

A :class:`FlowRule` follows Sentinel 1.8's ``FlowRule``: a threshold (``count``) on the QPS
or the concurrency of a resource, seen from one origin (``limit_app``) through one node
(``strategy``), enforced by one controller (``control``). A ``cluster`` section makes the
count shared by every process using the same Redis (SPEC §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from guard.errors import RuleError
from guard.validation import FieldChecker, build, plain

__all__ = [
    "ClusterConfig",
    "ClusterMode",
    "ClusterThreshold",
    "ControlBehavior",
    "FlowGrade",
    "FlowRule",
    "FlowStrategy",
]


class FlowGrade(StrEnum):
    """What ``count`` limits: passed entries per second, or entries in flight."""

    QPS = "qps"
    CONCURRENCY = "concurrency"


class FlowStrategy(StrEnum):
    """Whose statistics the rule reads.

    ``direct``: the resource's own; ``relate``: those of ``ref_resource`` (throttle this
    resource when the other one is busy); ``chain``: the resource's, only for entries made
    inside the context (entrance) named ``ref_resource``.
    """

    DIRECT = "direct"
    RELATE = "relate"
    CHAIN = "chain"


class ControlBehavior(StrEnum):
    """What happens to an entry over the count (QPS grade only).

    ``reject`` refuses at once; ``warm_up`` raises the admitted rate from
    ``count / cold_factor`` to ``count`` over ``warm_up_sec``; ``rate_limiter`` spaces entries
    evenly (leaky bucket), queueing each for up to ``max_queue_ms``; ``warm_up_rate_limiter``
    spaces them at the warming rate.
    """

    REJECT = "reject"
    WARM_UP = "warm_up"
    RATE_LIMITER = "rate_limiter"
    WARM_UP_RATE_LIMITER = "warm_up_rate_limiter"


class ClusterMode(StrEnum):
    """Where a cluster rule keeps its shared count; only Redis so far."""

    REDIS = "redis"


class ClusterThreshold(StrEnum):
    """How a cluster rule's ``count`` is read.

    ``global``: the total across every process; ``avg_local``: per process, so the shared
    limit is ``count`` times the number of connected processes.
    """

    GLOBAL = "global"
    AVG_LOCAL = "avg_local"


_WARM_UP = (ControlBehavior.WARM_UP, ControlBehavior.WARM_UP_RATE_LIMITER)
_QUEUEING = (ControlBehavior.RATE_LIMITER, ControlBehavior.WARM_UP_RATE_LIMITER)
_REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """The ``cluster:`` section of a flow rule: enforce its count across processes.

    :param mode: ``redis`` (default; the only mode so far).
    :param url: Redis URL (``redis://``, ``rediss://`` or ``unix://``); required.
    :param threshold: ``global`` (default) or ``avg_local``, see :class:`ClusterThreshold`.
    :param fallback_to_local: when Redis is unreachable or slower than ``timeout_ms``,
        enforce the rule locally instead of letting everything pass (default True).
    :param timeout_ms: integer milliseconds to wait for one Redis decision (> 0, default 50).
    :param lease_ms: integer milliseconds a process may hold tokens leased from the shared
        budget, deciding locally meanwhile (default 100); ``0`` is strict mode, one Redis
        round trip per decision (exact at low rates). See ``docs/cluster.md``.
    :raises RuleError: naming each invalid field.
    """

    mode: ClusterMode = ClusterMode.REDIS
    url: str
    threshold: ClusterThreshold = ClusterThreshold.GLOBAL
    fallback_to_local: bool = True
    timeout_ms: int = 50
    lease_ms: int = 100

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.choice("mode", ClusterMode)
        url = c.string("url")
        if url is not None and urlsplit(url).scheme not in _REDIS_SCHEMES:
            c.fail("url", "must be a redis://, rediss:// or unix:// URL")
        c.choice("threshold", ClusterThreshold)
        c.boolean("fallback_to_local")
        c.above("timeout_ms", c.number("timeout_ms", integer=True), 0)
        c.at_least("lease_ms", c.number("lease_ms", integer=True), 0)
        c.done()

    def to_dict(self) -> dict[str, Any]:
        """:returns: the section as in the rule file (words, not enums)."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRule:
    """One flow rule (the ``flow:`` section), validated on construction.

    :param resource: the guarded resource name; required, non-empty.
    :param grade: ``qps`` (default: entries passed per second) or ``concurrency``
        (entries in flight).
    :param count: the threshold, a float >= 0, required; QPS per one-second sliding window.
        0 blocks everything the rule covers.
    :param limit_app: which callers the rule covers: ``default`` (every origin, the
        default), ``other`` (origins no other rule of this resource names), or one origin.
    :param strategy: ``direct`` (default), ``relate`` or ``chain``, see :class:`FlowStrategy`.
    :param ref_resource: for ``relate`` the other resource, for ``chain`` the entrance
        (context) name; required by both, else None (default).
    :param control: ``reject`` (default), ``warm_up``, ``rate_limiter`` or
        ``warm_up_rate_limiter``; a concurrency rule allows only ``reject``.
    :param warm_up_sec: seconds (float) from cold to full ``count``; > 0 for ``warm_up*``
        (default 10).
    :param cold_factor: integer > 1; a cold rule admits ``count / cold_factor`` (default 3).
    :param max_queue_ms: integer milliseconds an entry may wait in the queue; > 0 for
        ``rate_limiter*`` (default 500).
    :param cluster: a :class:`ClusterConfig` (or its mapping) to share the count across
        processes through Redis; QPS grade only. None (default) keeps the rule local.
    :raises RuleError: listing every invalid field as ``"<field>: <problem>"``.
    """

    resource: str
    grade: FlowGrade = FlowGrade.QPS
    count: float
    limit_app: str = "default"
    strategy: FlowStrategy = FlowStrategy.DIRECT
    ref_resource: str | None = None
    control: ControlBehavior = ControlBehavior.REJECT
    warm_up_sec: float = 10.0
    cold_factor: int = 3
    max_queue_ms: int = 500
    cluster: ClusterConfig | None = None

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.string("resource")
        grade = c.choice("grade", FlowGrade)
        c.at_least("count", c.number("count"), 0)
        c.string("limit_app")
        strategy = c.choice("strategy", FlowStrategy)
        c.string("ref_resource", optional=True)
        if strategy in (FlowStrategy.RELATE, FlowStrategy.CHAIN) and self.ref_resource is None:
            c.fail("ref_resource", f"required when strategy is {strategy}")
        control = c.choice("control", ControlBehavior)
        if grade is FlowGrade.CONCURRENCY and control not in (None, ControlBehavior.REJECT):
            # Sentinel silently applies reject to concurrency rules; say so instead.
            c.fail("control", "must be reject when grade is concurrency")
        warm_up_sec = c.number("warm_up_sec")
        if control in _WARM_UP:
            c.above("warm_up_sec", warm_up_sec, 0)
        c.above("cold_factor", c.number("cold_factor", integer=True), 1)
        max_queue_ms = c.number("max_queue_ms", integer=True)
        if control in _QUEUEING:
            c.above("max_queue_ms", max_queue_ms, 0)
        self._check_cluster(c, grade)
        c.done()

    def _check_cluster(self, c: FieldChecker, grade: FlowGrade | None) -> None:
        value = self.cluster
        if value is None:
            return
        if isinstance(value, Mapping):
            try:
                value = build(ClusterConfig, value)
            except RuleError as exc:
                c.extend("cluster", exc.errors)
                return
            c.set("cluster", value)
        elif not isinstance(value, ClusterConfig):
            c.fail("cluster", "must be a mapping")
            return
        if grade is FlowGrade.CONCURRENCY:
            # The shared Redis state is a sliding window of passes, which has no meaning
            # for entries in flight.
            c.fail("cluster", "requires grade qps")

    def to_dict(self) -> dict[str, Any]:
        """:returns: the rule as in the rule file (words, not enums; every key present)."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}
