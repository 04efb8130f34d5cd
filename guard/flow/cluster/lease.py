"""The tokens a process holds from a cluster rule's shared window (no I/O).

A lease is a list of *grants*, one per answer of the lease script: ``[bucket, tokens
left, expiry]``, oldest first. A decision takes tokens from the oldest unexpired grants.
Tokens left in a grant when it lapses go back to the window bucket that counted them, so
the shared count does not keep tokens nobody used.

How much to hold follows demand: twice the tokens asked for over one lease period,
capped at the rule's limit times the lease period. ``asked`` counts the tokens asked for
since the rate was last sampled; the refiller samples it once per lease period and keeps
the higher of the new and old rates (so bursts lease at once), or their mean when demand
falls (so an idle process gives its share back within a few periods).

Every method is called with ``lock`` held (the controller's lock).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["IDLE_RATE", "Lease"]

#: Below this demand (decisions per second) a process keeps no lease.
IDLE_RATE = 0.05


class Lease:
    """Unused leased tokens and the demand that sizes the next lease.

    :param lease_s: how long a grant stays valid, in seconds.
    :param now: the current monotonic time.
    """

    def __init__(self, lease_s: float, now: float) -> None:
        self.lease_s = lease_s
        self.tokens = 0  # sum of the tokens left over every grant
        self.grants: list[list[Any]] = []
        self.asked = 0  # tokens asked of the lease since ``rate_at``
        self.rate = 0.0  # recent demand, tokens per second
        self.rate_at = now
        self.low_water = 0  # below this many tokens, wake the refiller

    def clear(self) -> None:
        """Drop every grant (the rule left the shared window, or a fork copied them)."""
        self.tokens = 0
        self.grants = []

    def take(self, acquire: int, now: float) -> bool:
        """Take ``acquire`` tokens from unexpired grants, oldest first, if they hold enough."""
        self.asked += acquire
        if self.tokens < acquire:
            return False
        grants = self.grants
        valid = 0
        for grant in grants:
            if grant[2] > now:
                valid += grant[1]
        if valid < acquire:
            return False
        need = acquire
        for grant in grants:
            if grant[2] > now and grant[1]:
                take = min(grant[1], need)
                grant[1] -= take
                need -= take
                if not need:
                    break
        self.tokens -= acquire
        return True

    def add(self, bucket: int, tokens: int, now: float) -> None:
        """Hold ``tokens`` granted in window bucket ``bucket`` for one lease period."""
        self.tokens += tokens
        self.grants.append([bucket, tokens, now + self.lease_s])

    def target(self, now: float, limit: float) -> int:
        """Tokens worth holding: twice the recent demand over one lease, capped.

        :param limit: the rule's shared limit per second.
        """
        elapsed = max(now - self.rate_at, self.lease_s)
        rate = max(self.rate, self.asked / elapsed)
        if rate < IDLE_RATE:
            return 0
        cap = max(1, math.ceil(limit * self.lease_s))
        return min(cap, math.ceil(rate * self.lease_s * 2))

    def sample_rate(self, now: float) -> None:
        """Fold ``asked`` into ``rate`` once per lease period."""
        elapsed = now - self.rate_at
        if elapsed >= self.lease_s:
            fresh = self.asked / elapsed
            self.rate = fresh if fresh > self.rate else (self.rate + fresh) / 2
            self.asked = 0
            self.rate_at = now

    def give_back(self, now: float, everything: bool) -> str:
        """Remove lapsed grants (all of them if ``everything``) that still hold tokens.

        :returns: what the lease script gives back: ``"<bucket>:<tokens>"`` pairs.
        """
        returned = []
        kept = []
        for grant in self.grants:
            if grant[1] and (grant[2] <= now or everything):
                returned.append(f"{grant[0]}:{grant[1]}")
                self.tokens -= grant[1]
            elif grant[1]:
                kept.append(grant)
        self.grants = kept
        return " ".join(returned)

    def next_lapse(self, default: float) -> float:
        """When the next grant with tokens left lapses, or ``default`` if sooner."""
        soonest = default
        for grant in self.grants:
            if grant[1] and grant[2] < soonest:
                soonest = grant[2]
        return soonest
