"""System rules: adaptive protection of the whole process, for inbound entries only.

A :class:`SystemRule` holds the thresholds Sentinel 1.8's ``SystemRule`` checks against the
global inbound node, in this order: QPS, concurrency, average RT, load (with the BBR test),
CPU. Any threshold may be left unset (None); an empty rule protects nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from guard.validation import FieldChecker, plain

__all__ = ["SystemRule"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemRule:
    """The ``system:`` section, validated on construction; every field optional, >= 0.

    0 is a real threshold (it blocks every inbound entry it covers), None means unset.

    :param max_load: the 1-minute load average (float) above which entries are refused
        when the BBR test also says the process is past its capacity.
    :param max_cpu: CPU usage as a fraction in [0, 1] (float) above which entries are
        refused.
    :param max_avg_rt_ms: milliseconds (float) of average response time of inbound entries
        above which entries are refused.
    :param max_concurrency: integer count of inbound entries in flight above which entries
        are refused.
    :param max_qps: inbound passes per second (float) beyond which entries are refused.
    :raises RuleError: listing every invalid field as ``"<field>: <problem>"``.
    """

    max_load: float | None = None
    max_cpu: float | None = None
    max_avg_rt_ms: float | None = None
    max_concurrency: int | None = None
    max_qps: float | None = None

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.at_least("max_load", c.number("max_load", optional=True), 0)
        max_cpu = c.number("max_cpu", optional=True)
        c.at_least("max_cpu", max_cpu, 0)
        c.at_most("max_cpu", max_cpu, 1)
        c.at_least("max_avg_rt_ms", c.number("max_avg_rt_ms", optional=True), 0)
        max_concurrency = c.number("max_concurrency", integer=True, optional=True)
        c.at_least("max_concurrency", max_concurrency, 0)
        c.at_least("max_qps", c.number("max_qps", optional=True), 0)
        c.done()

    @property
    def is_empty(self) -> bool:
        """True when no threshold is set, so the rule protects nothing."""
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_dict(self) -> dict[str, Any]:
        """:returns: the section as in the rule file (unset thresholds as None)."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}
