"""Hot-parameter limiting through the engine, both twins: buckets, throttling, items, LRU."""

from __future__ import annotations

from typing import Any

import pytest

from guard import FlowBlocked, Guard, ManualClock, ParamFlowBlocked
from tests.conftest import TWINS
from tests.guard.twins import use_twin


@pytest.fixture(params=TWINS)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_twin(monkeypatch, "guard.param_flow.buckets", request.param)
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(50_000)


@pytest.fixture
def g(impl: str, clock: ManualClock) -> Guard:
    return Guard(clock=clock)


def rule(**kw: Any) -> dict[str, Any]:
    return {"resource": "r", "param_index": 0, "count": 2} | kw


def call(g: Guard, *args: Any, count: int = 1) -> bool:
    try:
        g.enter("r", args=args, count=count).exit()
    except ParamFlowBlocked as exc:
        assert exc.reason == "param_flow"
        return False
    return True


def test_twin_in_use(g: Guard, impl: str) -> None:
    g.load_rules({"param_flow": [rule()]})
    check = g._core.plans["r"].checks[0]
    assert type(check).__module__ == f"guard.param_flow._buckets_{impl}"


def test_each_value_has_its_own_bucket(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule()]})
    assert [call(g, "a") for _ in range(3)] == [True, True, False]
    assert [call(g, "b") for _ in range(3)] == [True, True, False]
    clock.advance(1001)
    assert [call(g, "a") for _ in range(3)] == [True, True, False]


def test_no_partial_refill_inside_a_period(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=10)]})
    for _ in range(10):
        assert call(g, "a")
    clock.advance(999)
    assert not call(g, "a")  # 999 ms would refill 9.99 tokens in a smooth bucket: none here
    clock.advance(1)
    assert not call(g, "a")  # exactly one period: still not "more than" a period
    clock.advance(1)
    assert call(g, "a")


def test_refill_is_proportional_and_capped(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=4, burst=2, duration_sec=2)]})
    assert call(g, "a", count=6)  # first sight: max = 4 + 2 tokens, all taken
    assert not call(g, "a")
    clock.advance(3000)  # 3000 * 4 / 2000 = 6 tokens added: full again
    assert call(g, "a", count=6)
    clock.advance(2001)  # int(2001 * 4 / 2000) = 4 tokens
    assert call(g, "a", count=4)
    assert not call(g, "a")
    assert not call(g, "b", count=7)  # more than count + burst never passes


def test_refill_moves_the_period(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=2)]})
    call(g, "a")  # t0: rest 1
    clock.advance(1500)
    assert call(g, "a")  # refill (capped): rest 2 - 1 = 1, period restarts at t0+1500
    assert call(g, "a")
    assert not call(g, "a")
    clock.advance(1000)
    assert not call(g, "a")  # t0+2500: only 1000 ms since the last refill
    clock.advance(1)
    assert call(g, "a")


def test_items_override_count_per_value(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1, items={"hot": 3, 7: 0})]})
    assert [call(g, "hot") for _ in range(4)] == [True, True, True, False]
    assert [call(g, "cold") for _ in range(2)] == [True, False]
    assert not call(g, 7)  # an item count of 0 refuses that value
    assert call(g, 8)


def test_zero_count_blocks_present_argument_only(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=0, burst=5)]})
    assert not call(g, "a")
    assert call(g)  # no argument at index 0
    assert call(g, None)  # None is no value


def test_missing_argument_passes_and_negative_index(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(param_index=-1, count=1)]})
    assert call(g, "x", "last")
    assert not call(g, "y", "last")
    assert not call(g, "last")  # one argument: index -1 is that one, already spent
    assert call(g)  # no arguments at all
    g.load_rules({"param_flow": [rule(param_index=3, count=0)]})
    assert call(g, "a", "b")


def test_list_and_tuple_arguments_are_checked_per_element(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1)]})
    assert call(g, ["a", "b"])
    assert not call(g, ("c", "a"))  # "a" is spent; "c" took its token first
    assert not call(g, ["c"])
    assert call(g, {"d"})
    assert call(g, [])  # nothing to count


def test_unhashable_values_pass_unless_count_is_zero(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1, items={"x": 5})]})
    assert all(call(g, {"a": 1}) for _ in range(3))
    g.load_rules({"param_flow": [rule(count=0)]})
    assert not call(g, {"a": 1})


def test_error_carries_rule_value_and_retry_after(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=1, duration_sec=2)]})
    call(g, "a")
    clock.advance(500)
    with pytest.raises(ParamFlowBlocked) as info:
        g.enter("r", args=("a",))
    assert info.value.value == "a"
    assert info.value.rule == g.rules.param_flow[0]
    assert info.value.retry_after == pytest.approx(1.501)
    assert g.stats("r").total_block == 1


def test_rate_limiter_spaces_each_value(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=5, control="rate_limiter", max_queue_ms=500)]})
    start = clock.now_ms()
    times = []
    for _ in range(3):
        g.enter("r", args=("a",)).exit()  # ManualClock.sleep advances the clock
        times.append(clock.now_ms() - start)
    assert times == [0, 200, 400]
    g.enter("r", args=("b",)).exit()  # another value is not queued behind "a"
    assert clock.now_ms() - start == 400


def test_rate_limiter_queue_bound_is_strict(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=5, control="rate_limiter", max_queue_ms=200)]})
    e = g.entry("r", args=("a",))
    assert e.check() is None and e.wait_ms == 0
    e.passed()
    e2 = g.entry("r", args=("a",))
    error = e2.check()  # wait 200 is not below 200
    assert isinstance(error, ParamFlowBlocked)
    clock.advance(1)
    e3 = g.entry("r", args=("a",))
    assert e3.check() is None and e3.wait_ms == 199


def test_rate_limiter_without_queue(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"param_flow": [rule(count=10, control="rate_limiter")]})
    assert call(g, "a")
    assert not call(g, "a")
    clock.advance(100)
    assert call(g, "a")


def test_lru_bounds_values_and_evicted_value_starts_afresh(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1)]})
    state = g._slot("param_flow").states("r")[0]
    assert state.capacity == 4000
    assert call(g, "first")
    assert not call(g, "first")
    for i in range(4000):
        call(g, i)
    assert len(state.buckets) == 4000
    assert call(g, "first")  # evicted: a fresh bucket
    assert not call(g, 3999)  # recently used: still spent


def test_capacity_follows_duration(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(duration_sec=3), rule(duration_sec=3600, resource="x")]})
    slot = g._slot("param_flow")
    assert slot.states("r")[0].capacity == 12_000
    assert slot.states("x")[0].capacity == 200_000


@pytest.mark.slow
def test_memory_flat_under_many_distinct_values(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1)]})
    state = g._slot("param_flow").states("r")[0]
    for i in range(100_000):
        g.enter("r", args=(f"user-{i}",)).exit()
    assert len(state.buckets) == 4000


def test_every_rule_must_pass_and_param_flow_runs_before_flow(g: Guard) -> None:
    g.load_rules(
        {
            "param_flow": [rule(count=5), rule(param_index=1, count=1)],
            "flow": [{"resource": "r", "count": 0}],
        }
    )
    with pytest.raises(FlowBlocked):  # both param rules pass, then flow refuses
        g.enter("r", args=("a", "b"))
    with pytest.raises(ParamFlowBlocked) as info:  # "b" spent: refused before flow
        g.enter("r", args=("a", "b"))
    assert info.value.rule == g.rules.param_flow[1]


def test_unchanged_rule_keeps_buckets_across_reload(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1)]})
    assert call(g, "a")
    g.load_rules({"param_flow": [rule(count=1)], "flow": [{"resource": "z", "count": 1}]})
    assert not call(g, "a")
    g.load_rules({"param_flow": [rule(count=2)]})  # changed: fresh buckets
    assert call(g, "a")


def test_guard_decorator_positional_args(g: Guard) -> None:
    g.load_rules({"param_flow": [rule(count=1)]})

    @g.guard("r", block_handler=lambda user, error: f"busy {user}")
    def serve(user: str) -> str:
        return f"ok {user}"

    assert serve("ann") == "ok ann"
    assert serve("ann") == "busy ann"
    assert serve("bob") == "ok bob"


def test_lru_order_with_repeated_values(impl: str) -> None:
    from guard.param_flow import buckets
    from guard.param_flow.rule import ParamFlowRule

    state = buckets.ParamRuleState(ParamFlowRule(resource="r", param_index=0, count=1), 2)
    assert state.pass_value("a", 1, 0) == 0.0
    assert state.pass_value("b", 1, 0) == 0.0
    assert state.pass_value("a", 1, 0) < 0  # touches "a": now the most recent
    assert state.pass_value("a", 1, 0) < 0  # repeated: already the most recent
    assert state.pass_value("c", 1, 0) == 0.0  # evicts "b", the least recent
    assert list(state.buckets) == ["a", "c"]
    assert state.pass_value("b", 1, 0) == 0.0  # fresh bucket; evicts "a"
    assert list(state.buckets) == ["c", "b"]
    assert state.pass_value("a", 1, 0) == 0.0
