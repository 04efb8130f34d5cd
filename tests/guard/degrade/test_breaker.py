"""Circuit breakers through the engine, both twins: trips, probes, listeners, reloads."""

from __future__ import annotations

from typing import Any

import pytest

from guard import DegradeBlocked, DegradeRule, FlowBlocked, Guard, ManualClock, RuleSet
from tests.conftest import TWINS
from tests.guard.twins import use_twin


@pytest.fixture(params=TWINS)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_twin(monkeypatch, "guard.degrade.breaker", request.param)
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(10_000)


@pytest.fixture
def g(impl: str, clock: ManualClock) -> Guard:
    return Guard(clock=clock)


def call(g: Guard, clock: ManualClock, rt: int = 0, fail: bool = False, res: str = "r") -> str:
    """One entry that takes ``rt`` ms and maybe raises; returns "pass", "fail" or "blocked"."""
    try:
        with g.entry(res):
            clock.advance(rt)
            if fail:
                raise ValueError("boom")
    except DegradeBlocked:
        return "blocked"
    except ValueError:
        return "fail"
    return "pass"


def slow(**kw: Any) -> dict[str, Any]:
    rule = {"resource": "r", "strategy": "slow_ratio", "max_rt_ms": 100, "threshold": 0.5}
    rule |= {"recovery_sec": 5, "min_requests": 4, "stat_interval_ms": 1000}
    return rule | kw


def errors(strategy: str, threshold: float, **kw: Any) -> dict[str, Any]:
    rule = {"resource": "r", "strategy": strategy, "threshold": threshold}
    rule |= {"recovery_sec": 5, "min_requests": 4, "stat_interval_ms": 1000}
    return rule | kw


def test_twin_in_use(g: Guard, impl: str) -> None:
    g.load_rules({"degrade": [slow()]})
    check = g._core.plans["r"].checks[0]
    assert type(check).__module__ == f"guard.degrade._breaker_{impl}"


def test_slow_ratio_trips_strictly_above_threshold(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [slow()]})
    # 2 slow of 4 = 0.5, not above 0.5: stays closed.
    for rt in (101, 101, 100, 0):
        assert call(g, clock, rt) == "pass"
    assert g.breaker_state("r") == "closed"
    clock.set(11_000)  # a fresh stat bucket
    for rt in (101, 101, 101):  # below min_requests: no trip yet
        assert call(g, clock, rt) == "pass"
    assert g.breaker_state("r") == "closed"
    assert call(g, clock, 0) == "pass"  # 3 of 4 slow = 0.75 > 0.5
    assert g.breaker_state("r") == "open"
    assert call(g, clock) == "blocked"


def test_slow_ratio_of_one_trips_at_threshold_one(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [slow(threshold=1.0)]})
    for _ in range(4):
        call(g, clock, 200)
    assert g.breaker_state("r") == "open"


def test_error_ratio_and_count_are_strict(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_ratio", 0.5, resource="a")]})
    for fail in (True, True, False, False):
        call(g, clock, fail=fail, res="a")
    assert g.breaker_state("a") == "closed"
    call(g, clock, fail=True, res="a")  # 3 of 5
    assert g.breaker_state("a") == "open"

    g.load_rules({"degrade": [errors("error_count", 2, resource="b", min_requests=1)]})
    call(g, clock, fail=True, res="b")
    call(g, clock, fail=True, res="b")
    assert g.breaker_state("b") == "closed"  # 2 errors, not above 2
    call(g, clock, fail=True, res="b")
    assert g.breaker_state("b") == "open"


def test_error_ratio_one_never_trips(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_ratio", 1.0)]})
    for _ in range(10):
        call(g, clock, fail=True)
    assert g.breaker_state("r") == "closed"


def test_window_resets_at_stat_interval(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_count", 2, min_requests=1, stat_interval_ms=500)]})
    call(g, clock, fail=True)
    call(g, clock, fail=True)
    clock.advance(500)  # the next bucket: the two errors no longer count
    call(g, clock, fail=True)
    assert g.breaker_state("r") == "closed"
    call(g, clock, fail=True)
    call(g, clock, fail=True)
    assert g.breaker_state("r") == "open"


def test_zero_threshold_trips_on_first_bad_call(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_count", 0, min_requests=1)]})
    assert call(g, clock) == "pass"
    assert g.breaker_state("r") == "closed"
    call(g, clock, fail=True)
    assert g.breaker_state("r") == "open"


def trip(g: Guard, clock: ManualClock) -> None:
    for _ in range(4):
        call(g, clock, fail=True)
    assert g.breaker_state("r") == "open"


def test_open_blocks_with_retry_after_until_one_probe(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_ratio", 0.5)]})
    trip(g, clock)
    clock.advance(1_500)
    with pytest.raises(DegradeBlocked) as info:
        g.enter("r")
    assert info.value.retry_after == pytest.approx(3.5)
    assert info.value.rule == g.rules.degrade[0]
    assert info.value.reason == "degrade"
    clock.advance(3_499)
    assert call(g, clock) == "blocked"
    clock.advance(1)
    probe = g.enter("r")  # recovery over: this entry is the one probe
    assert g.breaker_state("r") == "half_open"
    with pytest.raises(DegradeBlocked) as info:
        g.enter("r")  # everyone else waits for the probe
    assert info.value.retry_after is None
    probe.exit()
    assert g.breaker_state("r") == "closed"
    assert call(g, clock) == "pass"


def test_probe_success_resets_statistics(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_count", 2, min_requests=1, stat_interval_ms=60_000)]})
    for _ in range(3):
        call(g, clock, fail=True)
    clock.advance(5_000)
    assert call(g, clock) == "pass"  # the probe closes it and clears the 3 errors
    assert g.breaker_state("r") == "closed"
    call(g, clock, fail=True)
    call(g, clock, fail=True)
    assert g.breaker_state("r") == "closed"  # 2 errors since closing, not above 2


def test_failed_probe_reopens_for_a_full_recovery(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_ratio", 0.5)]})
    trip(g, clock)
    clock.advance(5_000)
    assert call(g, clock, fail=True) == "fail"
    assert g.breaker_state("r") == "open"
    clock.advance(4_999)
    assert call(g, clock) == "blocked"
    clock.advance(1)
    assert call(g, clock) == "pass"
    assert g.breaker_state("r") == "closed"


def test_slow_probe_reopens_fast_probe_closes(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [slow()]})
    for _ in range(4):
        call(g, clock, 150)
    clock.advance(5_000)
    assert call(g, clock, 101) == "pass"  # slow probe
    assert g.breaker_state("r") == "open"
    clock.advance(5_000)
    assert call(g, clock, 100, fail=True) == "fail"  # fast: errors do not matter here
    assert g.breaker_state("r") == "closed"


def test_only_the_probe_decides_half_open(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_ratio", 0.5)]})
    old = g.enter("r")  # admitted while closed, completes during the probe
    trip(g, clock)
    clock.advance(5_000)
    probe = g.enter("r")
    old.trace(ValueError("late"))
    old.exit()
    assert g.breaker_state("r") == "half_open"
    probe.exit()
    assert g.breaker_state("r") == "closed"


def test_probe_refused_by_another_breaker_reverts_to_open(g: Guard, clock: ManualClock) -> None:
    events: list[tuple[Any, ...]] = []
    g.on_breaker_change(lambda *a: events.append(a))
    a = errors("error_count", 0, min_requests=1, recovery_sec=1)
    b = errors("error_count", 0, min_requests=1, recovery_sec=10)
    g.load_rules({"degrade": [a, b]})
    call(g, clock, fail=True)  # both open: a for 1 s, b for 10 s
    assert [e[2] for e in events] == ["open", "open"]
    clock.advance(1_000)
    assert call(g, clock) == "blocked"  # a grants a probe, b refuses the entry
    rule_a = g.rules.degrade[0]
    assert events[-2:] == [
        ("r", "open", "half_open", rule_a, None),
        ("r", "half_open", "open", rule_a, 1.0),
    ]
    breakers = g._slot("degrade").breakers("r")
    assert [b.state_name for b in breakers] == ["open", "open"]
    assert call(g, clock) == "blocked"  # a probes again at once (no new wait): still b
    clock.advance(9_000)
    assert call(g, clock) == "pass"  # both probe and both close
    assert [b.state_name for b in breakers] == ["closed", "closed"]
    assert g.breaker_state("r") == "closed"


def test_probe_refused_by_earlier_slot_leaves_breaker_open(g: Guard, clock: ManualClock) -> None:
    g.load_rules(
        {
            "degrade": [errors("error_count", 0, min_requests=1)],
            "flow": [{"resource": "r", "count": 0, "limit_app": "bad"}],
        }
    )
    call(g, clock, fail=True)
    clock.advance(5_000)
    with pytest.raises(FlowBlocked):
        g.enter("r", origin="bad")  # refused before the breakers are asked
    assert g.breaker_state("r") == "open"
    assert call(g, clock) == "pass"  # the next entry is the probe
    assert g.breaker_state("r") == "closed"


def test_listener_gets_each_transition_with_value(g: Guard, clock: ManualClock) -> None:
    events: list[tuple[Any, ...]] = []
    remove = g.on_breaker_change(lambda *a: events.append(a))
    g.load_rules({"degrade": [errors("error_ratio", 0.5)]})
    rule = g.rules.degrade[0]
    for fail in (True, True, True, False):
        call(g, clock, fail=fail)
    clock.advance(5_000)
    call(g, clock, fail=True)
    clock.advance(5_000)
    call(g, clock)
    assert events == [
        ("r", "closed", "open", rule, 0.75),
        ("r", "open", "half_open", rule, None),
        ("r", "half_open", "open", rule, 1.0),
        ("r", "open", "half_open", rule, None),
        ("r", "half_open", "closed", rule, None),
    ]
    remove()
    trip(g, clock)
    assert len(events) == 5


def test_failing_listener_is_logged_not_raised(
    g: Guard, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("listener bug")

    seen: list[str] = []
    g.on_breaker_change(broken)
    g.on_breaker_change(lambda *a: seen.append(a[2]))
    g.load_rules({"degrade": [errors("error_count", 0, min_requests=1)]})
    assert call(g, clock, fail=True) == "fail"
    assert seen == ["open"]
    assert "listener bug" in caplog.text


def test_several_breakers_worst_state(g: Guard, clock: ManualClock) -> None:
    g.load_rules(
        {"degrade": [slow(min_requests=1, threshold=0.0), errors("error_count", 5, min_requests=1)]}
    )
    assert g.breaker_state("r") == "closed"
    assert g.breaker_state("unknown") == "closed"
    call(g, clock, 150)
    assert g.breaker_state("r") == "open"
    states = [b.state_name for b in g._slot("degrade").breakers("r")]
    assert states == ["open", "closed"]


def test_unchanged_rule_keeps_state_across_reload(g: Guard, clock: ManualClock) -> None:
    kept = errors("error_count", 0, min_requests=1)
    g.load_rules({"degrade": [kept]})
    call(g, clock, fail=True)
    assert g.breaker_state("r") == "open"
    changed = RuleSet(
        degrade=(DegradeRule(**kept), DegradeRule(**errors("error_ratio", 0.9, resource="x"))),
        flow=(),
    )
    assert g.load_rules(changed)
    assert g.breaker_state("r") == "open"
    clock.advance(1_000)
    with pytest.raises(DegradeBlocked) as info:
        g.enter("r")
    assert info.value.retry_after == pytest.approx(4.0)  # the same recovery deadline
    g.load_rules({"degrade": [errors("error_count", 1, min_requests=1)]})  # changed rule
    assert g.breaker_state("r") == "closed"
    g.load_rules({})
    assert call(g, clock, fail=True) == "fail"
    assert g.breaker_state("r") == "closed"


def test_blocked_entries_are_booked_as_blocks(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_count", 0, min_requests=1)]})
    call(g, clock, fail=True)
    call(g, clock)
    stats = g.stats("r")
    assert (stats.total_pass, stats.total_block, stats.total_exception) == (1, 1, 1)


async def test_async_entries_feed_the_breaker(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"degrade": [errors("error_count", 0, min_requests=1)]})

    @g.guard("r")
    async def work(fail: bool) -> str:
        if fail:
            raise ValueError
        return "ok"

    assert await work(False) == "ok"
    with pytest.raises(ValueError):
        await work(True)
    with pytest.raises(DegradeBlocked):
        await work(False)
