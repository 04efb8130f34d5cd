"""Per-upstream state the balancers share: in-flight count, slow-start ramp, passive health.

Passive health is outlier detection in Envoy's manner, driven only by real traffic:
``consecutive_failures`` failed requests in a row (connection refused or reset, timeout, or
a 5xx answer) eject an instance for ``base_ejection_sec`` times the number of times it was
ejected (so a flapping instance stays out longer, up to ``max_ejection_sec``). At most
``max_ejected_percent`` of the instances are out at once, and never all of them: when the
cap is reached a failing instance stays in. An instance that comes back (its ejection ran
out) ramps up again under ``slow_start_sec``, like a newly added one.

Slow start: an instance added by a reload, or back from an ejection, gets an effective
weight of ``weight * max(MIN_RAMP, elapsed / slow_start_sec)``, a continuous ramp from near
zero, recomputed (at most once a millisecond) while any instance ramps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ext.sidecar.config import Upstream

__all__ = ["MIN_RAMP", "Host", "OutlierPolicy", "parse_outlier"]

MIN_RAMP = 0.01  # a ramping instance starts at 1% of its weight, never at exactly zero


@dataclasses.dataclass(frozen=True)
class OutlierPolicy:
    """When to eject an upstream instance; ``consecutive_failures=0`` disables ejection."""

    consecutive_failures: int = 5
    base_ejection_sec: float = 10.0
    max_ejection_sec: float = 300.0
    max_ejected_percent: float = 50.0

    def max_ejected(self, n: int) -> int:
        """How many of ``n`` instances may be out at once: never all, at least one of two."""
        if n < 2 or self.consecutive_failures == 0:
            return 0
        return min(n - 1, max(1, int(n * self.max_ejected_percent / 100)))


_OUTLIER_KEYS = {f.name for f in dataclasses.fields(OutlierPolicy)}


def parse_outlier(raw: Any, where: str = "sidecar.outlier") -> tuple[OutlierPolicy, list[str]]:
    """Validate an ``outlier:`` mapping.

    :returns: ``(policy, errors)``; the default policy when ``raw`` is None.
    """
    if raw is None:
        return OutlierPolicy(), []
    if not isinstance(raw, Mapping):
        return OutlierPolicy(), [f"{where}: must be a mapping"]
    errors = [f"{where}.{k}: unknown key" for k in raw if k not in _OUTLIER_KEYS]
    values: dict[str, Any] = {}
    for key in _OUTLIER_KEYS & set(raw):
        value = raw[key]
        integer = key == "consecutive_failures"
        ok_type = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type) or value < 0:
            kind = "an integer" if integer else "a number"
            errors.append(f"{where}.{key}: must be {kind} >= 0")
        elif key == "max_ejected_percent" and value > 100:
            errors.append(f"{where}.{key}: must be <= 100")
        else:
            values[key] = value
    return OutlierPolicy(**values), errors


class Host:
    """Mutable state of one upstream instance, kept across reloads by URL."""

    __slots__ = (
        "active",
        "current",
        "ejected_until",
        "ejections",
        "failures",
        "failures_total",
        "picks",
        "ramp_from",
        "returned_at",
        "upstream",
    )

    def __init__(self, upstream: Upstream, ramp_from: float | None = None) -> None:
        self.upstream = upstream
        self.active = 0  # requests in flight
        self.current = 0.0  # smooth weighted round robin's running weight
        self.failures = 0  # consecutive
        self.failures_total = 0
        self.picks = 0
        self.ejections = 0
        self.ejected_until: float | None = None
        self.returned_at = float("-inf")
        self.ramp_from = ramp_from  # slow start began here (None: in full service)

    @property
    def weight(self) -> float:
        return self.upstream.weight

    def ramp(self, now: float, slow_start_sec: float) -> float:
        """Fraction of the weight in force at ``now``: 1.0 unless ramping up."""
        start = self.ramp_from
        if start is None or slow_start_sec <= 0:
            return 1.0
        done = (now - start) / slow_start_sec
        if done >= 1.0:
            self.ramp_from = None
            return 1.0
        return max(MIN_RAMP, done)

    def eject(self, now: float, policy: OutlierPolicy) -> None:
        if now - self.returned_at > policy.max_ejection_sec:
            self.ejections = 0  # well behaved for a long while: start the scale again
        self.ejections += 1
        length = min(policy.max_ejection_sec, policy.base_ejection_sec * self.ejections)
        self.ejected_until = now + length
        self.failures = 0

    def readmit(self, now: float) -> None:
        self.ejected_until = None
        self.returned_at = now
        self.ramp_from = now
        self.current = 0.0
