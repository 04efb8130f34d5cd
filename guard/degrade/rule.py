"""Degrade rules: circuit breakers that open on slow calls or errors.

A :class:`DegradeRule` follows Sentinel 1.8's ``DegradeRule`` with readable names: the
breaker watches completions over ``stat_interval_ms``; once at least ``min_requests``
completed and the slow-call ratio, error ratio or error count is strictly above
``threshold``, it opens for ``recovery_sec``, then lets exactly one probe through.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from guard.validation import FieldChecker, plain

__all__ = ["DegradeRule", "DegradeStrategy"]


class DegradeStrategy(StrEnum):
    """What trips the breaker.

    ``slow_ratio``: the share of calls slower than ``max_rt_ms``; ``error_ratio``: the share
    of calls that raised; ``error_count``: the number of calls that raised.
    """

    SLOW_RATIO = "slow_ratio"
    ERROR_RATIO = "error_ratio"
    ERROR_COUNT = "error_count"


_RATIOS = (DegradeStrategy.SLOW_RATIO, DegradeStrategy.ERROR_RATIO)


@dataclass(frozen=True, slots=True, kw_only=True)
class DegradeRule:
    """One circuit-breaker rule (the ``degrade:`` section), validated on construction.

    :param resource: the guarded resource name; required, non-empty.
    :param strategy: ``slow_ratio`` (default), ``error_ratio`` or ``error_count``.
    :param threshold: required float; a ratio in [0, 1] for the ratio strategies, a count
        >= 0 for ``error_count``. The breaker opens when the value is strictly greater
        (a slow ratio of exactly 1.0 with threshold 1.0 also opens, as in Sentinel).
    :param max_rt_ms: integer milliseconds >= 0; a call slower than this is slow. Required
        for ``slow_ratio``, else optional (None, the default).
    :param recovery_sec: seconds (float > 0) the breaker stays open before one half-open
        probe; required.
    :param min_requests: integer > 0; no state change while fewer calls completed in the
        window (default 5).
    :param stat_interval_ms: integer milliseconds > 0, the statistics window (default 1000).
    :raises RuleError: listing every invalid field as ``"<field>: <problem>"``.
    """

    resource: str
    strategy: DegradeStrategy = DegradeStrategy.SLOW_RATIO
    threshold: float
    max_rt_ms: int | None = None
    recovery_sec: float
    min_requests: int = 5
    stat_interval_ms: int = 1000

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.string("resource")
        strategy = c.choice("strategy", DegradeStrategy)
        threshold = c.number("threshold")
        c.at_least("threshold", threshold, 0)
        if strategy in _RATIOS:
            c.at_most("threshold", threshold, 1)
        max_rt_ms = c.number("max_rt_ms", integer=True, optional=True)
        c.at_least("max_rt_ms", max_rt_ms, 0)
        if strategy is DegradeStrategy.SLOW_RATIO and self.max_rt_ms is None:
            c.fail("max_rt_ms", "required when strategy is slow_ratio")
        c.above("recovery_sec", c.number("recovery_sec"), 0)
        c.above("min_requests", c.number("min_requests", integer=True), 0)
        c.above("stat_interval_ms", c.number("stat_interval_ms", integer=True), 0)
        c.done()

    def to_dict(self) -> dict[str, Any]:
        """:returns: the rule as in the rule file (words, not enums; every key present)."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}
