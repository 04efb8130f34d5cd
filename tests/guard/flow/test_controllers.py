"""Flow controllers, both twins: reject, warm-up, rate limiter, warm-up rate limiter.

Numbers follow shared/REFERENCE.md Part A section 3 (Sentinel 1.8).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from itertools import pairwise
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard import FlowBlocked, FlowRule, Guard, ManualClock
from tests.conftest import TWINS

BLOCK = -1.0


@dataclass
class Twin:
    ctl: ModuleType
    window: ModuleType

    def node(self) -> Any:
        return self.window.StatNode()


@pytest.fixture(params=TWINS)
def impl(request: pytest.FixtureRequest) -> Twin:
    return Twin(
        importlib.import_module(f"guard.flow._controllers_{request.param}"),
        importlib.import_module(f"guard.stat._window_{request.param}"),
    )


def admit(ctl: Any, node: Any, now: int, tries: int, acquire: int = 1) -> int:
    """Offer ``tries`` requests at ``now``; book the admitted ones; return how many."""
    admitted = 0
    for _ in range(tries):
        if ctl.can_pass(node, acquire, now) >= 0.0:
            node.add_pass(now, acquire)
            admitted += 1
    return admitted


# -- reject (DefaultController) ---------------------------------------------------------------


def test_reject_blocks_when_int_pass_qps_plus_acquire_exceeds_count(impl: Twin) -> None:
    ctl = impl.ctl.DefaultController(3.0, False)
    node = impl.node()
    assert admit(ctl, node, 0, 10) == 3
    assert ctl.can_pass(node, 1, 499) == BLOCK
    assert admit(ctl, node, 1000, 10) == 3  # the window slid past the first bucket


def test_reject_fractional_count_and_acquire(impl: Twin) -> None:
    node = impl.node()
    assert admit(impl.ctl.DefaultController(2.5, False), node, 0, 10) == 2  # 2 + 1 > 2.5
    fresh = impl.node()
    ctl = impl.ctl.DefaultController(3.0, False)
    assert ctl.can_pass(fresh, 3, 0) == 0.0  # 0 + 3 > 3 is false
    assert ctl.can_pass(fresh, 4, 0) == BLOCK
    fresh.add_pass(0, 1)
    assert ctl.can_pass(fresh, 3, 0) == BLOCK


def test_reject_counts_the_whole_sliding_window(impl: Twin) -> None:
    ctl = impl.ctl.DefaultController(4.0, False)
    node = impl.node()
    assert admit(ctl, node, 100, 2) == 2
    assert admit(ctl, node, 600, 10) == 2  # the bucket [0, 500) still counts
    assert admit(ctl, node, 1100, 10) == 2  # [0, 500) left; [500, 1000) still counts


def test_reject_zero_count_blocks_everything(impl: Twin) -> None:
    node = impl.node()
    assert impl.ctl.DefaultController(0.0, False).can_pass(node, 1, 0) == BLOCK
    assert impl.ctl.DefaultController(0.0, True).can_pass(node, 1, 0) == BLOCK


def test_reject_on_concurrency(impl: Twin) -> None:
    ctl = impl.ctl.DefaultController(2.0, True)
    node = impl.node()
    node.add_pass(0, 50)  # QPS does not matter to a concurrency rule
    assert ctl.can_pass(node, 1, 0) == 0.0
    node.concurrency = 1
    assert ctl.can_pass(node, 1, 0) == 0.0
    assert ctl.can_pass(node, 2, 0) == BLOCK
    node.concurrency = 2
    assert ctl.can_pass(node, 1, 0) == BLOCK
    assert ctl.retry_after(node, 0) is None  # no time is known for concurrency


# -- warm-up ---------------------------------------------------------------------------------


def test_warm_up_token_numbers(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    assert ctl.warning_token == 50
    assert ctl.max_token == 100
    assert ctl.slope == pytest.approx(0.004)
    # Integer truncation as Sentinel: (int)(7 * 3.3) = 23, 23 // 2 = 11; 2*7*3.3/4 = 11.55.
    odd = impl.ctl.WarmUpController(3.3, 7.0, 3)
    assert (odd.warning_token, odd.max_token) == (11, 22)


# Admitted per second under saturating traffic, count 10, period 10 s, cold factor 3,
# worked out by hand from REFERENCE's formulas: tokens 100, 97, 94, 91, 88, 85, 81, 77, 73,
# 68, 63, 57, 50 -> allowed 1 / ((tokens - 50) * 0.004 + 0.1); from 50 tokens on, count.
RAMP = [3, 3, 3, 3, 3, 4, 4, 4, 5, 5, 6, 7, 10, 10, 10, 10]


@pytest.mark.parametrize("start", [0, 999, 5_500, 10**12, 10**12 + 500])
def test_warm_up_starts_cold_and_ramps_to_count(impl: Twin, start: int) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    node = impl.node()
    seq = [admit(ctl, node, start + 1000 * s, 30) for s in range(16)]
    assert seq == RAMP


def test_warm_up_cold_rate_is_count_over_cold_factor(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    ctl.sync_token(0, 0)
    assert ctl.allowed_qps() == pytest.approx(10 / 3)
    assert ctl.allowed_qps() >= 10 / 3  # nextUp, as Sentinel: never below the exact rate
    ctl5 = impl.ctl.WarmUpController(100.0, 5.0, 5)
    ctl5.sync_token(0, 0)
    assert ctl5.allowed_qps() == pytest.approx(20.0)


def test_warm_up_refills_only_while_previous_qps_is_below_int_count_div_factor(
    impl: Twin,
) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    ctl.sync_token(0, 0)
    assert ctl.stored_tokens == 100
    ctl.sync_token(40, 1000)  # above warning, busy: no refill, spend 40
    assert ctl.stored_tokens == 60
    ctl.sync_token(3, 2000)  # 3 < 10 // 3 is false: no refill
    assert ctl.stored_tokens == 57
    ctl.sync_token(2, 3000)  # 2 < 3: refill 10 per elapsed second, then spend 2
    assert ctl.stored_tokens == 65
    ctl.sync_token(9, 3999)  # same second: nothing happens
    assert ctl.stored_tokens == 65


def test_warm_up_threshold_uses_integer_division(impl: Twin) -> None:
    # count 10.9: int(count) // 3 == 3, while 10.9 / 3 = 3.63 would let 3 refill.
    ctl = impl.ctl.WarmUpController(10.9, 10.0, 3)
    assert (ctl.warning_token, ctl.max_token) == (54, 108)
    ctl.sync_token(0, 0)
    ctl.sync_token(50, 1000)
    assert ctl.stored_tokens == 58
    ctl.sync_token(3, 2000)
    assert ctl.stored_tokens == 55


def test_warm_up_below_warning_always_refills(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    ctl.sync_token(0, 0)
    ctl.sync_token(70, 1000)  # 100 - 70 = 30, below the warning line
    assert ctl.stored_tokens == 30
    assert ctl.allowed_qps() == 10.0
    ctl.sync_token(10, 3000)  # busy, but below warning: + 2 s x 10, - 10
    assert ctl.stored_tokens == 40


def test_warm_up_cools_down_when_idle(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    node = impl.node()
    for s in range(16):
        admit(ctl, node, 1000 * s, 30)
    assert admit(ctl, node, 16_000, 30) == 10  # warm
    # Tokens stood at 40 (filled at 16 s). At 19 s: 40 + 30 = 70 -> 1 / (20*0.004 + 0.1) = 5.5
    assert admit(ctl, node, 19_000, 30) == 5
    # Idle long enough to refill past max: fully cold again.
    assert admit(ctl, node, 40_000, 30) == 3


@pytest.mark.parametrize("start", [0, 10**12])
def test_warm_up_rule_starts_cold_in_an_engine(start: int) -> None:
    g = Guard(clock=ManualClock(start))
    g.load_rules({"flow": [{"resource": "r", "count": 10, "control": "warm_up"}]})
    passed = 0
    for _ in range(20):
        try:
            with g.entry("r"):
                passed += 1
        except FlowBlocked:
            pass
    assert passed == 3


# -- rate limiter ----------------------------------------------------------------------------


def test_rate_limiter_first_request_passes_at_once(impl: Twin) -> None:
    for now in (0, 1, 10**12):
        ctl = impl.ctl.RateLimiterController(10.0, 500)
        assert ctl.can_pass(impl.node(), 1, now) == 0.0
    slow = impl.ctl.RateLimiterController(0.01, 0)  # one per 100 s, no queue
    assert slow.can_pass(impl.node(), 1, 0) == 0.0


def test_rate_limiter_spaces_requests_and_bounds_the_queue(impl: Twin) -> None:
    ctl = impl.ctl.RateLimiterController(10.0, 500)
    node = impl.node()
    waits = [ctl.can_pass(node, 1, 0) for _ in range(8)]
    assert waits == [0.0, 100.0, 200.0, 300.0, 400.0, 500.0, BLOCK, BLOCK]
    # A refused request does not take a place: 100 ms later one more fits.
    assert ctl.can_pass(node, 1, 100) == 500.0
    assert ctl.can_pass(node, 1, 100) == BLOCK
    # Once the queue has drained, a request passes at once.
    assert ctl.can_pass(node, 1, 10_000) == 0.0
    assert ctl.can_pass(node, 1, 10_050) == 50.0


def test_rate_limiter_acquire_and_zero_count(impl: Twin) -> None:
    ctl = impl.ctl.RateLimiterController(10.0, 1000)
    node = impl.node()
    assert ctl.can_pass(node, 3, 0) == 0.0
    assert ctl.can_pass(node, 3, 0) == pytest.approx(300.0)
    assert ctl.can_pass(node, 0, 0) == 0.0  # acquire 0 always passes
    zero = impl.ctl.RateLimiterController(0.0, 1000)
    assert zero.can_pass(node, 1, 0) == BLOCK


def test_rate_limiter_retry_after_when_no_time_is_known(impl: Twin) -> None:
    assert impl.ctl.RateLimiterController(0.0, 200).retry_after(impl.node(), 0) is None


def test_rate_limiter_retry_after_is_when_a_retry_fits(impl: Twin) -> None:
    ctl = impl.ctl.RateLimiterController(10.0, 200)
    node = impl.node()
    for _ in range(3):
        assert ctl.can_pass(node, 1, 0) >= 0.0  # passes at 0, 100, 200
    assert ctl.can_pass(node, 1, 0) == BLOCK  # would wait 300 > 200
    retry_ms = ctl.retry_after(node, 0) * 1000
    assert ctl.can_pass(node, 1, int(retry_ms) - 1) == BLOCK
    assert retry_ms == pytest.approx(100.0)


def run_sequential(
    ctl: Any, node: Any, until: float, start: int = 0, waits: list[float] | None = None
) -> list[float]:
    """Offer requests every ms until one is refused; times admitted requests go through."""
    times: list[float] = []
    now = start
    while now < until:
        while True:
            wait = ctl.can_pass(node, 1, now)
            if wait < 0.0:
                break
            times.append(now + wait)
            if waits is not None:
                waits.append(wait)
            node.add_pass(now, 1)
        now += 1
    return times


@pytest.mark.parametrize(
    ("count", "spacing_ms"),
    [(0.5, 2000.0), (3.0, 1000 / 3), (7.0, 1000 / 7), (10.0, 100.0), (1000.0, 1.0)],
)
def test_rate_limiter_spacing(impl: Twin, count: float, spacing_ms: float) -> None:
    ctl = impl.ctl.RateLimiterController(count, 0)
    times = run_sequential(ctl, impl.node(), until=10_000, start=0)
    gaps = [b - a for a, b in pairwise(times)]
    # With no queue, a request passes only once its slot has come: never early.
    assert min(gaps) >= spacing_ms - 1e-6
    assert len(times) == pytest.approx(10_000 / spacing_ms, abs=1.5)


@pytest.mark.parametrize("count", [1500.0, 2000.0, 5000.0, 3333.0])
def test_rate_limiter_counts_above_1000(impl: Twin, count: float) -> None:
    # Sentinel before 1.8.7 rounded the spacing to whole ms (0 ms above 2000/s: no limit).
    ctl = impl.ctl.RateLimiterController(count, 5)
    waits: list[float] = []
    times = run_sequential(ctl, impl.node(), until=1000, waits=waits)
    spacing = 1000.0 / count
    gaps = [b - a for a, b in pairwise(times)]
    assert min(gaps) == pytest.approx(spacing, rel=1e-6)
    assert max(gaps) == pytest.approx(spacing, rel=1e-6)
    # One second of a 1 ms clock, plus at most the 5 ms queue.
    assert count - 1 <= len(times) <= count + 5 * count / 1000 + 2
    assert max(waits) <= 5.0  # the queue bound holds
    assert max(waits) > 4.0  # and is used: the client queues as far as allowed


def test_rate_limiter_2000_per_second_is_two_per_ms(impl: Twin) -> None:
    ctl = impl.ctl.RateLimiterController(2000.0, 1)
    node = impl.node()
    per_ms = []
    for now in range(1, 11):
        n = 0
        while ctl.can_pass(node, 1, now) >= 0.0:
            n += 1
        per_ms.append(n)
    # First ms: one at once plus a 1 ms queue of two; after that, two per ms.
    assert per_ms == [3] + [2] * 9


# -- warm-up rate limiter --------------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 999, 10**12])
def test_warm_up_rate_limiter_spaces_at_the_warming_rate(impl: Twin, start: int) -> None:
    ctl = impl.ctl.WarmUpRateLimiterController(10.0, 10.0, 3, 1000)
    node = impl.node()
    assert ctl.can_pass(node, 1, start) == 0.0  # first passes at once
    assert ctl.can_pass(node, 1, start) == pytest.approx(300.0)  # cold: 10/3 per second
    assert ctl.can_pass(node, 1, start) == pytest.approx(600.0)
    assert ctl.can_pass(node, 1, start) == pytest.approx(900.0)
    assert ctl.can_pass(node, 1, start) == BLOCK  # 1200 > 1000


def test_warm_up_rate_limiter_speeds_up_to_count(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpRateLimiterController(10.0, 10.0, 3, 500)
    node = impl.node()
    times: list[float] = []
    now = 0.0
    while now < 40_000:
        wait = ctl.can_pass(node, 1, int(now))
        assert wait >= 0.0  # a lone sequential client is never refused
        now = int(now) + wait
        node.add_pass(int(now), 1)
        times.append(now)
        now = math.ceil(now)
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps[0] == pytest.approx(300.0, abs=1)
    assert all(g <= prev + 1 for prev, g in pairwise(gaps))  # never slower
    assert gaps[-1] == pytest.approx(100.0, abs=1)
    assert impl.ctl.WarmUpRateLimiterController(0.0, 10.0, 3, 500).can_pass(node, 1, 0) == BLOCK
    assert ctl.can_pass(node, 0, 50_000) == 0.0


def test_twins_select_the_same_controller_for_each_rule() -> None:
    from guard.flow.slot import make_controller

    cases = {
        "reject": "DefaultController",
        "warm_up": "WarmUpController",
        "rate_limiter": "RateLimiterController",
        "warm_up_rate_limiter": "WarmUpRateLimiterController",
    }
    for control, name in cases.items():
        assert (
            type(make_controller(FlowRule(resource="r", count=5, control=control))).__name__ == name
        )
    conc = make_controller(FlowRule(resource="r", count=5, grade="concurrency"))
    assert type(conc).__name__ == "DefaultController" and conc.concurrency


RETRY_BUG = (
    "bug: DefaultController/WarmUpController.retry_after is the time to the end of the "
    "current bucket, but passes booked in the current bucket stay in the window a whole "
    "interval from its start: one pass at 100 ms (count 1) says retry in 0.4 s, and a retry "
    "at 500 ms is refused again (capacity frees at 1000 ms, 0.9 s)"
)


@pytest.mark.parametrize("sample_count", [2, 4])
def test_reject_retry_after_is_when_capacity_frees(impl: Twin, sample_count: int) -> None:
    ctl = impl.ctl.DefaultController(1.0, False)
    node = impl.window.StatNode(sample_count)
    node.add_pass(100, 1)
    assert ctl.can_pass(node, 1, 100) == BLOCK
    retry_ms = round(ctl.retry_after(node, 100) * 1000)
    assert ctl.can_pass(node, 1, 100 + retry_ms) == 0.0


def test_warm_up_retry_after_is_when_capacity_frees(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpController(10.0, 10.0, 3)
    node = impl.node()
    assert admit(ctl, node, 100, 10) == 3  # cold: 3 pass, then refused
    assert ctl.can_pass(node, 1, 100) == BLOCK
    retry_ms = round(ctl.retry_after(node, 100) * 1000)
    assert admit(ctl, node, 100 + retry_ms, 1) == 1


def test_reject_retry_after_when_the_previous_bucket_holds_the_passes(impl: Twin) -> None:
    # Here the estimate is exact: the pass at 100 leaves the window at 1000.
    ctl = impl.ctl.DefaultController(1.0, False)
    node = impl.node()
    node.add_pass(100, 1)
    assert ctl.can_pass(node, 1, 600) == BLOCK
    retry_ms = round(ctl.retry_after(node, 600) * 1000)
    assert retry_ms == 400
    assert ctl.can_pass(node, 1, 600 + retry_ms - 1) == BLOCK
    assert ctl.can_pass(node, 1, 600 + retry_ms) == 0.0


class SentinelWarmUp:
    """REFERENCE Part A section 3's warm-up, written out plainly as a model.

    One departure, the SPEC's: the first sync fills to max_token whatever the clock reads.
    """

    def __init__(self, count: float, warm_up_sec: int, cold_factor: int) -> None:
        self.count = count
        self.cold_factor = cold_factor
        self.warning = int(warm_up_sec * count) // (cold_factor - 1)
        self.max = self.warning + int(2 * warm_up_sec * count / (1 + cold_factor))
        self.slope = (cold_factor - 1) / count / (self.max - self.warning)
        self.tokens = 0
        self.last_filled: int | None = None

    def sync(self, previous_qps: int, now: int) -> None:
        current = now - now % 1000
        if self.last_filled is None:
            value = self.max
        elif current <= self.last_filled:
            return
        else:
            value = self.tokens
            below = value < self.warning
            idle = value > self.warning and previous_qps < int(self.count) // self.cold_factor
            if below or idle:
                value = int(value + (current - self.last_filled) * self.count / 1000)
            value = min(value, self.max)
        self.tokens = max(0, value - previous_qps)
        self.last_filled = current

    def admits(self, pass_qps: int, previous_qps: int, now: int) -> bool:
        self.sync(previous_qps, now)
        if self.tokens >= self.warning:
            above = self.tokens - self.warning
            allowed = math.nextafter(1.0 / (above * self.slope + 1.0 / self.count), math.inf)
            return pass_qps + 1 <= allowed
        return pass_qps + 1 <= self.count


@settings(max_examples=150, deadline=None)
@given(
    count=st.sampled_from([5.0, 10.0, 10.9, 20.0, 33.0, 100.0]),
    warm_up_sec=st.integers(1, 12),
    cold_factor=st.integers(2, 5),
    start=st.sampled_from([0, 123_456, 10**12]),
    # Few tries per step often, so the previous second's QPS lands near count / cold_factor.
    traffic=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 400, 999, 1000, 1001, 2500, 30_000]),
            st.one_of(st.integers(0, 8), st.integers(0, 40)),
        ),
        max_size=60,
    ),
)
def test_warm_up_matches_the_reference_model(
    count: float,
    warm_up_sec: int,
    cold_factor: int,
    start: int,
    traffic: list[tuple[int, int]],
) -> None:
    for twin in TWINS:
        ctl = importlib.import_module(f"guard.flow._controllers_{twin}").WarmUpController(
            count, float(warm_up_sec), cold_factor
        )
        node = importlib.import_module(f"guard.stat._window_{twin}").StatNode()
        model = SentinelWarmUp(count, warm_up_sec, cold_factor)
        now = start
        for gap, tries in traffic:
            now += gap
            for _ in range(tries):
                expected = model.admits(int(node.pass_qps(now)), node.previous_pass_qps(now), now)
                got = ctl.can_pass(node, 1, now) >= 0.0
                assert got == expected, (twin, now, model.tokens, ctl.stored_tokens)
                if got:
                    node.add_pass(now, 1)


def test_warm_up_rate_limiter_retry_after_is_when_a_retry_fits(impl: Twin) -> None:
    ctl = impl.ctl.WarmUpRateLimiterController(10.0, 10.0, 3, 1000)
    node = impl.node()
    for _ in range(4):
        assert ctl.can_pass(node, 1, 0) >= 0.0  # cold: slots at 0, 300, 600, 900
    assert ctl.can_pass(node, 1, 0) == BLOCK  # the slot of 1200 is 1200 ms away
    retry_ms = round(ctl.retry_after(node, 0) * 1000)
    assert retry_ms == 200  # spaced at the warming rate, not at count
    assert ctl.can_pass(node, 1, retry_ms - 1) == BLOCK
    assert ctl.can_pass(node, 1, retry_ms) == pytest.approx(1000.0)


def test_zero_count_rules_know_no_retry_time(impl: Twin) -> None:
    node = impl.node()
    assert impl.ctl.DefaultController(0.0, False).retry_after(node, 0) is None
    assert impl.ctl.WarmUpController(0.0, 10.0, 3).retry_after(node, 0) is None
