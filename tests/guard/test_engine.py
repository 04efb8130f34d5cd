"""The engine: entries, block errors, statistics, flow strategies and origins, rule reloads."""

from __future__ import annotations

import contextlib
import dataclasses
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guard as guard_pkg
from guard import (
    BlockError,
    FlowBlocked,
    FlowRule,
    Guard,
    ManualClock,
    RuleError,
    RuleSet,
    context,
    default_engine,
)

SNAPSHOT_FIELDS = {
    "pass_qps",
    "block_qps",
    "success_qps",
    "exception_qps",
    "avg_rt_ms",
    "min_rt_ms",
    "concurrency",
    "total_pass",
    "total_block",
    "total_success",
    "total_exception",
}


def engine(*flow: dict[str, Any], start: int = 0, **kwargs: Any) -> Guard:
    g = Guard(clock=ManualClock(start), **kwargs)
    if flow:
        g.load_rules({"flow": list(flow)})
    return g


def clock(g: Guard) -> ManualClock:
    c = g.clock
    assert isinstance(c, ManualClock)
    return c


def passes(g: Guard, resource: str, n: int = 1, **kwargs: Any) -> int:
    """Try ``n`` entries (entered and exited at once); return how many passed."""
    ok = 0
    for _ in range(n):
        try:
            with g.entry(resource, **kwargs):
                ok += 1
        except BlockError:
            pass
    return ok


# -- entries ---------------------------------------------------------------------------------


def test_with_entry_books_pass_success_and_concurrency() -> None:
    g = engine()
    with g.entry("r") as e:
        assert e.resource == "r"
        assert g.stats("r").concurrency == 1
        assert g.stats("r").pass_qps == 1.0
        assert g.stats("r").total_success == 0
    s = g.stats("r")
    assert (s.concurrency, s.total_pass, s.total_success, s.total_block) == (0, 1, 1, 0)
    assert g.resources() == ["r"]


def test_entry_builds_without_entering() -> None:
    g = engine({"resource": "r", "count": 0})
    e = g.entry("r")  # a zero rule blocks everything, yet building refuses nothing
    assert g.stats("r").total_pass == 0
    assert g.stats("r").total_block == 0
    with pytest.raises(FlowBlocked):
        e.__enter__()
    assert g.stats("r").total_block == 1


def test_entry_cannot_be_entered_twice() -> None:
    g = engine()
    e = g.entry("r")
    with e:
        pass
    with pytest.raises(RuntimeError, match="already entered"):
        e.__enter__()
    assert g.stats("r").total_pass == 1


def test_enter_and_exit_without_with() -> None:
    g = engine()
    e = g.enter("r")
    clock(g).advance(25)
    assert g.stats("r").concurrency == 1
    e.exit()
    e.exit()  # idempotent: booked once
    s = g.stats("r")
    assert (s.concurrency, s.total_pass, s.total_success, s.avg_rt_ms) == (0, 1, 1, 25.0)
    assert e.rt_ms == 25


async def test_aenter_and_exit_without_with() -> None:
    g = engine()
    e = await g.aenter("r")
    clock(g).advance(7)
    e.exit()
    s = g.stats("r")
    assert (s.total_pass, s.total_success, s.avg_rt_ms) == (1, 1, 7.0)


async def test_async_with_entry() -> None:
    g = engine({"resource": "r", "count": 1})
    async with g.entry("r") as e:
        assert g.stats("r").concurrency == 1
        assert e.resource == "r"
    with pytest.raises(FlowBlocked):
        async with g.entry("r"):
            pytest.fail("the body of a blocked entry must not run")
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.total_success, s.concurrency) == (1, 1, 1, 0)


def test_enter_raises_the_block_error_and_books_the_block() -> None:
    g = engine({"resource": "r", "count": 0})
    with pytest.raises(FlowBlocked):
        g.enter("r")
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.concurrency, s.block_qps) == (0, 1, 0, 1.0)


async def test_aenter_raises_the_block_error() -> None:
    g = engine({"resource": "r", "count": 0})
    with pytest.raises(FlowBlocked):
        await g.aenter("r")
    assert g.stats("r").total_block == 1


def test_block_error_fields() -> None:
    g = engine({"resource": "orders", "count": 1})
    clock(g).set(100)
    passes(g, "orders")
    with pytest.raises(BlockError) as info:
        g.enter("orders")
    err = info.value
    assert isinstance(err, FlowBlocked)
    assert err.resource == "orders"
    assert err.reason == "flow"
    assert err.rule is g.rules.flow[0]
    assert err.rule == FlowRule(resource="orders", count=1)
    assert err.retry_after is not None and 0.0 < err.retry_after <= 1.0  # at most the window
    assert "orders" in str(err) and "flow" in str(err)


def test_block_error_retry_after_is_none_for_concurrency() -> None:
    g = engine({"resource": "r", "count": 0, "grade": "concurrency"})
    with pytest.raises(FlowBlocked) as info:
        g.enter("r")
    assert info.value.retry_after is None


def test_entry_count_acquires_several() -> None:
    g = engine({"resource": "r", "count": 5})
    assert passes(g, "r", count=3) == 1
    assert passes(g, "r", count=3) == 0  # 3 + 3 > 5
    assert passes(g, "r", count=2) == 1
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.total_success) == (5, 3, 5)


@pytest.mark.parametrize("count", [0, -1, 1.5, "2", True])
def test_entry_count_must_be_a_positive_int(count: Any) -> None:
    # Regression: True (an int subclass) used to be taken as an acquire of 1.
    g = engine()
    with pytest.raises(ValueError, match="count"):
        g.entry("r", count=count)


@pytest.mark.parametrize("name", ["", None, 3])
def test_resource_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(ValueError, match="resource name"):
        engine().entry(name)


def test_exception_in_the_block_is_traced_and_success_still_counts() -> None:
    g = engine()
    with pytest.raises(KeyError), g.entry("r"):
        raise KeyError("boom")
    s = g.stats("r")
    assert (s.total_success, s.total_exception, s.concurrency) == (1, 1, 0)
    assert s.exception_qps == 1.0


def test_ignored_and_untraced_exceptions_are_not_counted() -> None:
    g = engine()
    with pytest.raises(KeyError), g.entry("r", exceptions_to_ignore=(KeyError,)):
        raise KeyError("ignored")
    with pytest.raises(ValueError), g.entry("r", exceptions_to_trace=(KeyError,)):
        raise ValueError("not traced")

    class Stop(BaseException):
        pass

    with pytest.raises(Stop), g.entry("r"):
        raise Stop  # outside the default (Exception,)
    s = g.stats("r")
    assert (s.total_success, s.total_exception, s.concurrency) == (3, 0, 0)


def test_ignore_wins_over_trace_and_subclasses_match() -> None:
    g = engine()
    with pytest.raises(KeyError), g.entry("r", exceptions_to_ignore=(LookupError,)):
        raise KeyError("a LookupError")
    with pytest.raises(KeyError), g.entry("r", exceptions_to_trace=(LookupError,)):
        raise KeyError("traced as a LookupError")
    assert g.stats("r").total_exception == 1


def test_trace_by_hand() -> None:
    g = engine()
    e = g.enter("r")
    e.trace(RuntimeError("recorded"))
    e.exit()
    with g.entry("r") as e2:
        e2.trace(ValueError("also"))
    s = g.stats("r")
    assert (s.total_success, s.total_exception) == (2, 2)


def test_a_block_error_inside_an_entry_is_not_a_business_exception() -> None:
    g = engine({"resource": "inner", "count": 0})
    with pytest.raises(FlowBlocked), g.entry("outer"):
        g.enter("inner")
    assert g.stats("outer").total_exception == 0
    assert g.stats("outer").total_success == 1


def test_nested_entries_book_each_resource() -> None:
    g = engine()
    with g.entry("a"):
        clock(g).advance(5)
        with g.entry("b"):
            clock(g).advance(10)
    assert g.stats("a").avg_rt_ms == 15.0
    assert g.stats("b").avg_rt_ms == 10.0


def test_inbound_entries_feed_the_inbound_node() -> None:
    g = engine()
    passes(g, "in", 3, inbound=True)
    passes(g, "out", 2)
    s = g.inbound_stats()
    assert (s.total_pass, s.total_success, s.pass_qps) == (3, 3, 3.0)


# -- statistics ------------------------------------------------------------------------------


def test_stats_snapshot_fields_and_as_dict() -> None:
    g = engine()
    for rt in (10, 30):
        with g.entry("r"):
            clock(g).advance(rt)
    with pytest.raises(OSError), g.entry("r"):
        clock(g).advance(20)
        raise OSError
    s = g.stats("r")
    d = s.as_dict()
    assert set(d) >= SNAPSHOT_FIELDS
    assert d["resource"] == "r"
    assert d == {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
    assert s.pass_qps == 3.0 and s.success_qps == 3.0 and s.exception_qps == 1.0
    assert s.avg_rt_ms == 20.0
    assert s.min_rt_ms == 10.0
    assert (s.total_pass, s.total_success, s.total_exception) == (3, 3, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.pass_qps = 0.0  # type: ignore[misc]


def test_min_rt_is_floored_at_one_ms() -> None:
    g = engine()
    with g.entry("r"):
        pass
    assert g.stats("r").min_rt_ms == 1.0  # a 0 ms entry reads as 1 ms, as Sentinel


def test_min_rt_without_traffic_is_zero() -> None:
    g = engine()
    assert g.stats("r").min_rt_ms == 0.0
    with g.entry("r"):
        clock(g).advance(12)
    assert g.stats("r").min_rt_ms == 12.0


def test_avg_rt_keeps_fractions() -> None:
    # Two entries of 1 and 2 ms average to 1.5 ms.
    g = engine()
    for rt in (1, 2):
        with g.entry("r"):
            clock(g).advance(rt)
    assert g.stats("r").avg_rt_ms == 1.5


def test_stats_of_an_unknown_resource_are_zero_and_create_nothing() -> None:
    g = engine()
    s = g.stats("nothing")
    assert s.resource == "nothing"
    assert all(v == 0 for k, v in s.as_dict().items() if k != "resource")
    assert g.resources() == []


def test_qps_slides_but_totals_last_a_minute() -> None:
    g = engine()
    passes(g, "r", 4)
    clock(g).advance(1000)
    s = g.stats("r")
    assert s.pass_qps == 0.0 and s.total_pass == 4
    clock(g).set(59_999)
    assert g.stats("r").total_pass == 4
    clock(g).set(60_000)
    assert g.stats("r").total_pass == 0


@pytest.mark.parametrize(
    ("sample_count", "blocked_at_1000"), [(2, False), (10, True), (1000, True)]
)
def test_sample_count_gives_finer_buckets(sample_count: int, blocked_at_1000: bool) -> None:
    # Five passes at 450 ms: with 2 buckets their bucket [0, 500) is gone at 1000 ms (the
    # boundary burst Sentinel allows); with finer buckets they still count.
    g = engine({"resource": "r", "count": 5}, sample_count=sample_count)
    clock(g).set(450)
    assert passes(g, "r", 10) == 5
    clock(g).set(1000)
    assert (passes(g, "r") == 0) is blocked_at_1000
    clock(g).set(1450)
    assert passes(g, "r") == 1


@pytest.mark.parametrize("sample_count", [0, -2, 3, 7, 2.0, "2", True])
def test_sample_count_must_divide_1000(sample_count: Any) -> None:
    with pytest.raises(ValueError, match="sample_count"):
        Guard(clock=ManualClock(0), sample_count=sample_count)


# -- flow rules through the engine ---------------------------------------------------------


def test_qps_reject() -> None:
    g = engine({"resource": "r", "count": 3})
    assert passes(g, "r", 10) == 3
    clock(g).advance(500)
    assert passes(g, "r", 10) == 0  # the first bucket still counts
    clock(g).advance(500)
    assert passes(g, "r", 10) == 3
    assert passes(g, "other", 10) == 10  # rules are per resource


def test_concurrency_reject() -> None:
    g = engine({"resource": "r", "count": 2, "grade": "concurrency"})
    a = g.enter("r")
    b = g.enter("r")
    with pytest.raises(FlowBlocked):
        g.enter("r")
    a.exit()
    c = g.enter("r")
    b.exit()
    c.exit()
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.concurrency) == (3, 1, 0)


@pytest.mark.parametrize(
    "rule",
    [
        {"count": 0},
        {"count": 0, "grade": "concurrency"},
        {"count": 0, "control": "warm_up"},
        {"count": 0, "control": "rate_limiter"},
        {"count": 0, "control": "warm_up_rate_limiter"},
        {"count": 0, "limit_app": "a"},
    ],
)
def test_zero_thresholds_block_everything_they_cover(rule: dict[str, Any]) -> None:
    g = engine({"resource": "r", **rule})
    origin = rule.get("limit_app")
    for t in (0, 1000, 5000, 10**6):
        clock(g).set(t)
        assert passes(g, "r", 3, origin=origin) == 0
    if origin:
        assert passes(g, "r", 3, origin="b") == 3  # not covered: passes


def test_several_rules_must_all_pass() -> None:
    g = engine({"resource": "r", "count": 5}, {"resource": "r", "count": 2})
    assert passes(g, "r", 10) == 2


def test_rate_limiter_sleeps_on_the_clock() -> None:
    g = engine({"resource": "r", "count": 10, "control": "rate_limiter", "max_queue_ms": 250})
    c = clock(g)
    with g.entry("r"):
        assert c.now_ms() == 0  # the first request passes at once
    with g.entry("r"):
        assert c.now_ms() == 100  # queued 100 ms by sleeping on the (manual) clock
    e = g.enter("r")
    assert c.now_ms() == 200
    e.exit()
    assert e.rt_ms == 100  # RT runs from the entry's start: queueing included
    s = g.stats("r")
    assert (s.total_pass, s.total_block) == (3, 0)


def test_rate_limiter_queue_bound() -> None:
    g = engine({"resource": "r", "count": 10, "control": "rate_limiter", "max_queue_ms": 250})
    c = clock(g)
    waited = []
    for _ in range(3):
        e = g.enter("r")
        waited.append(c.now_ms())
        e.exit()
        c.set(0)  # the next caller arrives at 0 too, while the earlier one slept
    assert waited == [0, 100, 200]
    with pytest.raises(FlowBlocked) as info:
        g.enter("r")  # would wait 300 > 250
    assert c.now_ms() == 0  # a refused request does not sleep
    assert info.value.retry_after is not None
    assert 0.0 <= info.value.retry_after <= 1.0
    c.set(50)
    e = g.enter("r")  # at 50 the slot of 300 is 250 away: fits
    assert c.now_ms() == 300
    e.exit()
    s = g.stats("r")
    assert (s.total_pass, s.total_block) == (4, 1)


async def test_rate_limiter_async_front_awaits() -> None:
    import asyncio

    g = engine({"resource": "r", "count": 10, "control": "rate_limiter"})
    c = clock(g)
    ran: list[int] = []

    async def other() -> None:
        ran.append(c.now_ms())

    async with g.entry("r"):
        pass
    task = asyncio.create_task(other())
    e = await g.aenter("r")  # waits 100 ms by awaiting the clock, letting `other` run
    assert c.now_ms() == 100
    assert ran == [100]  # the loop ran another task during the wait
    e.exit()
    await task


def test_warm_up_through_the_engine_ramps() -> None:
    g = engine({"resource": "r", "count": 10, "control": "warm_up"})
    seq = []
    for s in range(14):
        clock(g).set(s * 1000)
        seq.append(passes(g, "r", 30))
    assert seq == [3, 3, 3, 3, 3, 4, 4, 4, 5, 5, 6, 7, 10, 10]


# -- limit_app and strategies ------------------------------------------------------------------


def test_limit_app_default_counts_every_origin_together() -> None:
    g = engine({"resource": "r", "count": 3})
    assert passes(g, "r", 2, origin="a") == 2
    assert passes(g, "r", 5, origin="b") == 1
    assert passes(g, "r", 5) == 0


def test_limit_app_origin_limits_that_origin_only() -> None:
    g = engine({"resource": "r", "count": 2, "limit_app": "a"})
    assert passes(g, "r", 5, origin="a") == 2
    assert passes(g, "r", 5, origin="b") == 5
    assert passes(g, "r", 5) == 5
    assert passes(g, "r", 5, origin="A") == 5  # case-sensitive


def test_limit_app_other_limits_each_unnamed_origin() -> None:
    g = engine(
        {"resource": "r", "count": 4, "limit_app": "a"},
        {"resource": "r", "count": 1, "limit_app": "other"},
    )
    assert passes(g, "r", 10, origin="a") == 4  # named by its own rule: "other" skips it
    assert passes(g, "r", 10, origin="b") == 1
    assert passes(g, "r", 10, origin="c") == 1  # each origin has its own node
    assert passes(g, "r", 10) == 10  # no origin: "other" does not apply


def test_origin_specific_rules_apply_with_default_ones() -> None:
    g = engine(
        {"resource": "r", "count": 3},
        {"resource": "r", "count": 1, "limit_app": "a"},
    )
    assert passes(g, "r", 5, origin="a") == 1
    assert passes(g, "r", 5, origin="b") == 2  # default: 3 in all
    with pytest.raises(FlowBlocked) as info:
        g.enter("r", origin="a")
    assert info.value.rule.limit_app == "a"  # origin-specific rules are checked first


def test_strategy_relate_reads_the_other_resource() -> None:
    g = engine({"resource": "write", "count": 2, "strategy": "relate", "ref_resource": "read"})
    assert passes(g, "write", 5) == 5  # read is idle
    assert passes(g, "read", 2) == 2  # read itself is not limited
    assert passes(g, "write", 5) == 0  # 2 + 1 > 2
    clock(g).advance(1000)
    assert passes(g, "write", 1) == 1


def test_strategy_relate_with_limit_app() -> None:
    g = engine(
        {
            "resource": "write",
            "count": 1,
            "strategy": "relate",
            "ref_resource": "read",
            "limit_app": "a",
        }
    )
    passes(g, "read", 1)
    assert passes(g, "write", 1, origin="a") == 0
    assert passes(g, "write", 1, origin="b") == 1


def test_strategy_chain_applies_inside_the_named_context_only() -> None:
    g = engine({"resource": "r", "count": 1, "strategy": "chain", "ref_resource": "checkout"})
    assert passes(g, "r", 5) == 5  # no context
    with context("checkout"):
        assert passes(g, "r", 5) == 1
    with context("browse"):
        assert passes(g, "r", 5) == 5
    with context("checkout"):
        assert passes(g, "r", 1) == 0  # the checkout context's node still counts 1


def test_context_origin_is_the_default_origin() -> None:
    g = engine({"resource": "r", "count": 1, "limit_app": "web"})
    with context("entry", origin="web"):
        assert passes(g, "r", 3) == 1
        assert passes(g, "r", 3, origin="app") == 3  # an explicit origin wins
    assert passes(g, "r", 3) == 3


# -- load_rules ------------------------------------------------------------------------------


def test_load_rules_returns_whether_anything_changed() -> None:
    g = engine()
    rules = {"flow": [{"resource": "r", "count": 1}]}
    assert g.load_rules(rules) is True
    assert g.load_rules(rules) is False
    assert g.load_rules("flow:\n  - {resource: r, count: 1}\n") is False
    assert g.load_rules(RuleSet(flow=(FlowRule(resource="r", count=1),))) is False
    assert g.load_rules({}) is True
    assert passes(g, "r", 5) == 5


def test_a_bad_rule_set_changes_nothing() -> None:
    g = engine({"resource": "r", "count": 2})
    before = g.rules
    passes(g, "r", 1)
    with pytest.raises(RuleError) as info:
        g.load_rules({"flow": [{"resource": "r", "count": 100}, {"resource": "s", "count": -1}]})
    assert "flow[1].count" in str(info.value)
    assert g.rules is before
    assert passes(g, "r", 5) == 1  # still limited to 2, and the pass before still counts
    with pytest.raises(RuleError):
        g.load_rules("flow: [\n")
    assert g.rules is before
    # A bad rule in another section stops the flow section from changing too.
    with pytest.raises(RuleError) as info:
        g.load_rules(
            {
                "flow": [{"resource": "r", "count": 100}],
                "degrade": [{"resource": "r", "strategy": "error_ratio", "threshold": 2}],
            }
        )
    assert "degrade[0].threshold" in str(info.value)
    assert g.rules is before
    assert passes(g, "r", 5) == 0


def test_equal_rule_set_keeps_statistics_and_warm_up_state() -> None:
    rule = {"resource": "r", "count": 10, "control": "warm_up"}
    g = engine(rule)
    for s in range(14):
        clock(g).set(s * 1000)
        passes(g, "r", 30)
    clock(g).set(14_000)
    assert g.load_rules({"flow": [dict(rule)]}) is False
    assert passes(g, "r", 30) == 10  # still warm
    assert g.stats("r").total_pass > 50


def test_unchanged_rule_in_a_changed_set_keeps_its_state() -> None:
    warm = {"resource": "r", "count": 10, "control": "warm_up"}
    g = engine(warm)
    for s in range(14):
        clock(g).set(s * 1000)
        passes(g, "r", 30)
    clock(g).set(14_000)
    assert g.load_rules({"flow": [dict(warm), {"resource": "other", "count": 1}]}) is True
    assert passes(g, "r", 30) == 10  # the warm-up rule kept its tokens
    assert passes(g, "other", 3) == 1
    # A changed rule starts afresh: cold again (after a quiet second, since warm-up
    # spends the previous second's passes from its tokens).
    clock(g).set(20_000)
    g.load_rules({"flow": [{**warm, "count": 11}]})
    assert passes(g, "r", 30) == 3


def test_unchanged_rate_limiter_keeps_its_queue() -> None:
    rl = {"resource": "r", "count": 1, "control": "rate_limiter", "max_queue_ms": 1}
    g = engine(rl)
    assert passes(g, "r", 1) == 1
    g.load_rules({"flow": [dict(rl), {"resource": "x", "count": 1}]})
    assert passes(g, "r", 1) == 0  # the slot at 0 is still taken
    g.load_rules({"flow": [{**rl, "max_queue_ms": 2}]})
    assert passes(g, "r", 1) == 1  # a changed rule: a new limiter, first request passes


def test_removing_rules_lifts_the_limit() -> None:
    g = engine({"resource": "r", "count": 0})
    assert passes(g, "r") == 0
    g.load_rules({"flow": []})
    assert passes(g, "r", 3) == 3


def test_rules_property_and_to_dict_round_trip() -> None:
    g = engine({"resource": "r", "count": 2, "control": "rate_limiter"})
    assert isinstance(g.rules, RuleSet)
    assert g.rules.flow[0].control == "rate_limiter"
    h = engine()
    assert h.load_rules(g.rules.to_dict()) is True
    assert h.rules == g.rules


def test_engines_are_isolated() -> None:
    a = engine({"resource": "r", "count": 0})
    b = engine()
    assert passes(b, "r", 3) == 3
    assert passes(a, "r", 3) == 0
    assert a.stats("r").total_block == 3 and b.stats("r").total_block == 0


# -- the default engine ----------------------------------------------------------------------


def test_module_functions_use_the_default_engine() -> None:
    g = default_engine()
    assert default_engine() is g
    saved = g.rules
    try:
        assert guard_pkg.load_rules({"flow": [{"resource": "test.engine.default", "count": 0}]})
        with pytest.raises(FlowBlocked), guard_pkg.entry("test.engine.default"):
            pass
        assert g.stats("test.engine.default").total_block >= 1
    finally:
        g.load_rules(saved)


# -- more edges ------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [5, b"web", ("a",)])
def test_origin_must_be_a_string(origin: Any) -> None:
    # Regression: the compiled chain raised a bare "Expected str, got int" while the pure
    # twin silently keyed an origin node by the object.
    g = engine({"resource": "r", "count": 1, "limit_app": "web"})
    with pytest.raises(TypeError, match="r: origin must be a str"):
        g.entry("r", origin=origin)
    assert g.stats("r").total_pass == 0


def test_exit_of_a_blocked_or_unentered_entry_books_nothing() -> None:
    g = engine({"resource": "r", "count": 0})
    e = g.entry("r")
    e.exit()  # never entered
    with pytest.raises(FlowBlocked):
        e.__enter__()
    e.exit()  # blocked
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.total_success, s.concurrency) == (0, 1, 0, 0)


def test_first_traced_error_is_kept() -> None:
    g = engine()
    with pytest.raises(KeyError), g.entry("r") as e:
        e.trace(ValueError("first"))
        raise KeyError("second")
    assert isinstance(e.error, ValueError)
    assert g.stats("r").total_exception == 1


def test_reload_keeps_concurrency_of_entries_in_flight() -> None:
    g = engine({"resource": "r", "count": 2, "grade": "concurrency"})
    held = [g.enter("r"), g.enter("r")]
    g.load_rules({"flow": [{"resource": "r", "count": 3, "grade": "concurrency"}]})
    held.append(g.enter("r"))  # 2 in flight + 1 <= 3
    with pytest.raises(FlowBlocked):
        g.enter("r")
    for e in held:
        e.exit()
    assert g.stats("r").concurrency == 0


def test_reordered_equal_rules_keep_their_state() -> None:
    warm = {"resource": "r", "count": 10, "control": "warm_up"}
    other = {"resource": "s", "count": 5}
    g = engine(warm, other)
    for s in range(14):
        clock(g).set(s * 1000)
        passes(g, "r", 30)
    clock(g).set(14_000)
    assert g.load_rules({"flow": [other, warm]}) is True  # same rules, another order
    assert passes(g, "r", 30) == 10


def test_rules_apply_past_6000_resources() -> None:
    # Sentinel stops checking new resources past 6000 chains; we never leave one unchecked.
    g = engine({"resource": "late", "count": 0})
    for i in range(6500):
        with g.entry(f"res{i}"):
            pass
    assert passes(g, "late", 2) == 0
    assert len(g.resources()) == 6501


def test_real_clock_engine() -> None:
    import time

    from guard.clock import MonotonicClock

    g = Guard()
    assert isinstance(g.clock, MonotonicClock)
    before = int(time.monotonic() * 1000)
    with g.entry("r"):
        pass
    s = g.stats("r")
    assert (s.total_pass, s.total_success) == (1, 1)
    assert s.avg_rt_ms < 1000
    assert before <= g.clock.now_ms() <= int(time.monotonic() * 1000)


def test_warm_up_rate_limiter_through_the_engine() -> None:
    g = engine(
        {
            "resource": "r",
            "count": 10,
            "control": "warm_up_rate_limiter",
            "max_queue_ms": 1000,
        }
    )
    c = clock(g)
    times = []
    for _ in range(3):
        e = g.enter("r")
        times.append(c.now_ms())
        e.exit()
    assert times == [0, 300, 600]  # cold: 10/3 per second


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 6),
    sample_count=st.sampled_from([1, 2, 4, 10]),
    gaps=st.lists(st.integers(0, 400), min_size=1, max_size=60),
)
def test_qps_reject_never_admits_more_than_count_in_the_window(
    count: int, sample_count: int, gaps: list[int]
) -> None:
    g = engine({"resource": "r", "count": count}, sample_count=sample_count)
    c = clock(g)
    admitted: list[int] = []
    for gap in gaps:
        c.advance(gap)
        if passes(g, "r") == 1:
            admitted.append(c.now_ms())
        # What the window holds never exceeds the count.
        assert g.stats("r").pass_qps <= count
    assert len(admitted) + g.stats("r").total_block == len(gaps)
    # Any 1-second span holds at most 2 x count (the boundary burst a sliding window allows).
    for t in admitted:
        assert sum(1 for u in admitted if t <= u < t + 1000) <= 2 * count


@settings(max_examples=60, deadline=None)
@given(
    count=st.sampled_from([0.5, 1.0, 3.0, 10.0, 250.0, 2000.0]),
    max_queue_ms=st.integers(1, 800),
    gaps=st.lists(st.integers(0, 300), min_size=1, max_size=40),
)
def test_rate_limiter_spacing_and_queue_bound_hold(
    count: float, max_queue_ms: int, gaps: list[int]
) -> None:
    g = engine(
        {"resource": "r", "count": count, "control": "rate_limiter", "max_queue_ms": max_queue_ms}
    )
    c = clock(g)
    arrival = 0
    slots: list[float] = []
    from guard.flow.controllers import RateLimiterController

    for gap in gaps:
        arrival += gap
        c.set(arrival)
        try:
            e = g.enter("r")
        except FlowBlocked:
            continue
        waited = c.now_ms() - arrival
        assert waited <= max_queue_ms + 1  # sleeps round to whole ms
        e.exit()
        (check,) = g._core.plans["r"].checks
        limiter = check.states[0].controller
        assert isinstance(limiter, RateLimiterController)
        slots.append(limiter.latest_passed)
    assert slots, "the first request always passes"
    for a, b in pairwise(slots):
        assert b - a >= 1000.0 / count - 1e-6


def test_memory_per_resource_is_bounded_whatever_the_origins() -> None:
    import tracemalloc

    g = engine()
    with g.entry("r", origin="warm-up"):
        pass
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            with g.entry("r", origin=f"client-{i}"):
                pass
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert g.stats("r").total_pass == 10_001
    assert grown < 8 * 1024 * 1024, f"{grown / 1e6:.0f} MB for 10 000 origins"


def test_reloads_while_threads_enter() -> None:
    import threading

    g = engine({"resource": "r", "count": 1000})
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    with g.entry("r"):
                        pass
                except FlowBlocked:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(200):
            g.load_rules({"flow": [{"resource": "r", "count": 1000 + i % 2}]})
            clock(g).advance(5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    s = g.stats("r")
    assert s.concurrency == 0
    assert s.total_pass > 0


@pytest.mark.parametrize(
    ("rule", "kwargs", "ctx"),
    [
        ({"limit_app": "web"}, {"origin": "web"}, None),
        ({"limit_app": "other"}, {"origin": "app"}, None),
        ({"strategy": "chain", "ref_resource": "checkout"}, {}, "checkout"),
    ],
)
def test_sample_count_applies_to_origin_and_context_nodes(
    rule: dict[str, Any], kwargs: dict[str, Any], ctx: str | None
) -> None:
    def run(sample_count: int) -> bool:
        g = engine({"resource": "r", "count": 5, **rule}, sample_count=sample_count)
        with context(ctx) if ctx else contextlib.nullcontext():
            clock(g).set(450)
            assert passes(g, "r", 10, **kwargs) == 5
            clock(g).set(1000)
            return passes(g, "r", 1, **kwargs) == 0

    assert run(2) is False  # two buckets: the passes at 450 left with [0, 500)
    assert run(10) is True  # ten buckets: they count until 1400


@pytest.mark.slow
def test_memory_per_resource_is_bounded_whatever_the_context_names() -> None:
    import tracemalloc

    g = engine()
    with context("warm-up"), g.entry("r"):
        pass
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            with context(f"/orders/{i}"), g.entry("r"):
                pass
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert g.stats("r").total_pass == 10_001
    # 16 MB leaves room for a Sentinel-like cap of 2000 names (~10 MB).
    assert grown < 16 * 1024 * 1024, f"{grown / 1e6:.0f} MB for 10 000 context names"


async def test_async_with_entry_awaits_a_queueing_wait() -> None:
    import asyncio

    g = engine({"resource": "r", "count": 10, "control": "rate_limiter", "max_queue_ms": 150})
    c = clock(g)
    ran: list[int] = []

    async def other() -> None:
        ran.append(c.now_ms())

    async with g.entry("r"):
        assert c.now_ms() == 0
    task = asyncio.create_task(other())
    async with g.entry("r") as e:
        assert c.now_ms() == 100  # waited by awaiting the clock
        assert ran == [100]  # and the loop ran another task meanwhile
    await task
    assert e.rt_ms == 100  # the wait is part of the RT
    c.set(50)
    async with g.entry("r"):  # the slot of 200 is 150 ms away from 50: fits the queue
        assert c.now_ms() == 200
    c.set(0)
    with pytest.raises(FlowBlocked):
        async with g.entry("r"):  # the slot of 300 is 300 ms away: over 150
            pytest.fail("the body of a refused entry must not run")
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.concurrency) == (3, 1, 0)
