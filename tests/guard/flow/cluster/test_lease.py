"""Leased tokens: oldest grants first, lapsed tokens go back, demand sizes the lease."""

from __future__ import annotations

import pytest

from guard.flow.cluster.lease import Lease


def test_take_uses_unexpired_grants_oldest_first() -> None:
    lease = Lease(0.1, now=0.0)
    lease.add(bucket=1000, tokens=2, now=0.0)  # valid until 0.1
    lease.add(bucket=1010, tokens=3, now=0.05)  # valid until 0.15
    assert lease.take(3, now=0.06)
    assert [g[1] for g in lease.grants] == [0, 2] and lease.tokens == 2
    assert not lease.take(3, now=0.06)  # only 2 left
    lease.add(bucket=1100, tokens=5, now=0.12)
    # The first grant lapsed at 0.1: its tokens (none left) do not count.
    assert lease.take(6, now=0.12) and lease.tokens == 1
    assert lease.asked == 3 + 3 + 6


def test_give_back_returns_lapsed_tokens_to_their_bucket() -> None:
    lease = Lease(0.1, now=0.0)
    lease.add(bucket=1000, tokens=4, now=0.0)
    lease.add(bucket=1050, tokens=2, now=0.05)
    assert lease.give_back(now=0.12, everything=False) == "1000:4"
    assert lease.tokens == 2 and lease.next_lapse(default=9.0) == pytest.approx(0.15)
    assert lease.give_back(now=0.12, everything=True) == "1050:2"
    assert lease.tokens == 0 and lease.grants == []


def test_target_follows_demand_within_the_cap() -> None:
    lease = Lease(0.1, now=0.0)
    assert lease.target(now=0.0, limit=300) == 0  # idle: no lease
    lease.asked = 50
    lease.sample_rate(now=0.5)  # 100/s
    assert lease.rate == 100.0 and lease.asked == 0
    assert lease.target(now=0.5, limit=1000) == 20  # twice the demand over 100 ms
    assert lease.target(now=0.5, limit=50) == 5  # capped at limit x lease period
    lease.sample_rate(now=1.0)  # nothing asked: the rate halves rather than dropping
    assert lease.rate == 50.0
