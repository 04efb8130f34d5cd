"""LeapArray and StatNode, both twins: bucket layout, lazy reset, deprecation, min RT, reads."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.stat.window import FIELDS, MAX_RT_MS
from tests.conftest import TWINS

PASS, BLOCK, SUCCESS, EXCEPTION, RT, MIN_RT = range(6)


@pytest.fixture(params=TWINS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(f"guard.stat._window_{request.param}")


def test_selector_and_twins_agree_on_layout(impl: ModuleType) -> None:
    from guard.stat import window

    assert window.IMPLEMENTATION in ("c", "py")
    assert FIELDS == 6
    assert MAX_RT_MS == 5000  # Sentinel's statisticMaxRt
    assert impl.LeapArray(2, 1000).min_rt(0) == MAX_RT_MS  # the twin uses the same value
    assert (window.PASS, window.BLOCK, window.SUCCESS, window.EXCEPTION) == (0, 1, 2, 3)


@pytest.mark.parametrize(
    ("sample_count", "interval_ms"), [(0, 1000), (-2, 1000), (2, 0), (3, 1000)]
)
def test_construction_checks_the_layout(
    impl: ModuleType, sample_count: int, interval_ms: int
) -> None:
    with pytest.raises(ValueError, match="multiple of"):
        impl.LeapArray(sample_count, interval_ms)


def test_bucket_index_and_length(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    assert arr.bucket_ms == 500
    assert [arr.current(t) for t in (0, 499, 500, 999, 1000, 1499, 1500, 10**12 + 600)] == [
        0, 0, 1, 1, 0, 0, 1, 1,
    ]  # fmt: skip
    quarter = impl.LeapArray(4, 1000)
    assert [quarter.current(t) for t in (0, 250, 499, 500, 999, 1000, 1250)] == [
        0,
        1,
        1,
        2,
        3,
        0,
        1,
    ]


def test_bucket_start_is_aligned(impl: ModuleType) -> None:
    # Writes anywhere inside one bucket land together; the bucket ends at its aligned edge.
    arr = impl.LeapArray(2, 1000)
    arr.add(501, PASS, 1)
    arr.add(999, PASS, 2)
    assert arr.previous(1000, PASS) == 3  # the bucket [500, 1000) as a whole
    assert arr.previous(1499, PASS) == 3
    assert arr.previous(1500, PASS) == 0  # now [1000, 1500) is the previous one
    assert [arr.window_end(t) for t in (0, 1, 499, 500, 777, 10**12 + 250)] == [
        500, 499, 1, 500, 223, 250,
    ]  # fmt: skip


def test_counts_add_per_field(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    arr.add(10, PASS, 3)
    arr.add(20, BLOCK, 2)
    arr.add(30, EXCEPTION, 1)
    arr.add_rt(40, 25, 2)
    arr.add(600, PASS, 4)
    assert [arr.sum(700, f) for f in (PASS, BLOCK, SUCCESS, EXCEPTION, RT)] == [7, 2, 2, 1, 25]


def test_stale_bucket_is_reset_lazily_by_the_next_writer(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    arr.add(100, PASS, 5)
    arr.add(100, BLOCK, 1)
    arr.add_rt(100, 3, 1)
    # Two laps later the same slot holds [2000, 2500): it starts from zero.
    arr.add(2100, PASS, 1)
    assert arr.sum(2100, PASS) == 1
    assert arr.sum(2100, BLOCK) == 0
    assert arr.sum(2100, SUCCESS) == 0
    assert arr.min_rt(2100) == MAX_RT_MS


def test_stale_bucket_is_reset_lazily_by_a_reader(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    arr.add(100, PASS, 5)
    assert arr.sum(999, PASS) == 5
    # Reading at 1000 lands on the slot of [0, 500): reset, so the old count is gone even
    # though 1000 - 0 is not more than the interval.
    assert arr.sum(1000, PASS) == 0
    arr.add(1001, PASS, 1)
    assert arr.sum(1001, PASS) == 1


def test_deprecated_buckets_are_left_out_of_every_read(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    arr.add(0, PASS, 5)
    arr.add_rt(0, 2, 1)
    arr.add(0, SUCCESS, 4)
    # At 1600 the slot of [0, 500) was not reset (1600 falls in the other slot) but
    # 1600 - 0 > 1000: it must not count.
    assert arr.sum(1600, PASS) == 0
    assert arr.sum(1600, SUCCESS) == 0
    assert arr.max_bucket(1600, SUCCESS) == 0
    assert arr.min_rt(1600) == MAX_RT_MS


def test_oldest_live_bucket_counts_up_to_the_interval(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    arr.add(499, PASS, 1)  # bucket [0, 500)
    arr.add(500, PASS, 2)  # bucket [500, 1000)
    assert arr.sum(999, PASS) == 3
    assert arr.sum(1499, PASS) == 2  # [0, 500) replaced by [1000, 1500)
    assert arr.sum(1500, PASS) == 0
    # Strictly greater than the interval: 1500 - 500 == 1000 would still be live, and it is
    # the current slot only if aligned, so check an unaligned reader of the other slot.
    arr.add(1700, PASS, 4)  # bucket [1500, 2000)
    assert arr.sum(2499, PASS) == 4  # 2499 - 1500 = 999 <= 1000
    assert arr.sum(2501, PASS) == 0


@pytest.mark.parametrize(
    ("sample_count", "write_at", "last_seen", "gone_at"),
    [
        (1, 499, 999, 1000),
        (2, 499, 999, 1000),
        (2, 500, 1499, 1500),
        (4, 260, 1249, 1250),
        (10, 499, 1399, 1400),
        (1000, 499, 1498, 1499),
    ],
)
def test_sample_count_sets_how_long_a_count_stays(
    impl: ModuleType, sample_count: int, write_at: int, last_seen: int, gone_at: int
) -> None:
    # A count lives from its bucket's start for one interval: finer buckets keep it for
    # (almost) exactly a second, two buckets for between 500 and 1000 ms.
    arr = impl.LeapArray(sample_count, 1000)
    arr.add(write_at, PASS, 1)
    assert arr.sum(last_seen, PASS) == 1
    assert arr.sum(gone_at, PASS) == 0


def test_min_rt_rules(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    assert arr.min_rt(0) == MAX_RT_MS  # no sample yet
    arr.add_rt(10, 30, 1)
    arr.add_rt(20, 12, 1)
    arr.add_rt(30, 40, 1)
    assert arr.min_rt(30) == 12
    arr.add_rt(600, 7, 1)
    assert arr.min_rt(600) == 7  # the minimum over live buckets
    assert arr.min_rt(1000) == 7  # [0, 500) reset: 7 remains
    assert arr.min_rt(1500) == MAX_RT_MS
    arr.add_rt(1600, 0, 1)
    assert arr.min_rt(1600) == 1  # floored at 1 ms, as Sentinel
    big = impl.LeapArray(2, 1000)
    big.add_rt(0, 9000, 1)  # RT is not capped since Sentinel 1.8.0
    assert big.sum(0, RT) == 9000
    assert big.min_rt(0) == MAX_RT_MS


def test_max_bucket(impl: ModuleType) -> None:
    arr = impl.LeapArray(4, 1000)
    arr.add(0, SUCCESS, 3)
    arr.add(250, SUCCESS, 9)
    arr.add(500, SUCCESS, 5)
    assert arr.max_bucket(500, SUCCESS) == 9
    assert arr.max_bucket(1250, SUCCESS) == 5  # [0,250) and [250,500) are gone


def test_previous_bucket_read(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    assert arr.previous(0, PASS) == 0
    arr.add(1100, PASS, 3)
    assert arr.previous(1100, PASS) == 0  # its own bucket is current, not previous
    assert arr.previous(1600, PASS) == 3
    assert arr.previous(2100, PASS) == 0  # [1500, 2000) was never written
    arr.add(1600, PASS, 2)
    # The previous slot holds [1500, 2000) from an earlier lap, not [2500, 3000): 0.
    assert arr.previous(3100, PASS) == 0
    assert arr.previous(2100, PASS) == 2


def test_previous_before_the_first_bucket_is_empty(
    impl: ModuleType, request: pytest.FixtureRequest
) -> None:
    # ManualClock(0) is where tests start: the bucket before the first one does not exist.
    arr = impl.LeapArray(2, 1000)
    arr.add(100, PASS, 3)
    assert arr.previous(100, PASS) == 0


def test_previous_pass_qps_in_the_first_second_is_zero(
    impl: ModuleType, request: pytest.FixtureRequest
) -> None:
    node = impl.StatNode()
    node.add_pass(0, 40)
    # Nothing passed in the second before 0; the compiled twin reports this second's 40,
    # which makes a warm-up rule installed at clock 0 after traffic start warmer than cold.
    assert node.previous_pass_qps(500) == 0


def test_clock_moving_backwards(impl: ModuleType) -> None:
    arr = impl.LeapArray(2, 1000)
    arr.add(1500, PASS, 1)
    arr.add(600, PASS, 2)  # the clock went back into the slot [1500, 2000) holds
    assert arr.sum(600, PASS) >= 2  # counts made at the earlier time are not lost
    assert arr.sum(600, BLOCK) == 0
    # Once time moves on past everything seen, only fresh counts remain.
    arr.add(3000, PASS, 1)
    assert arr.sum(3000, PASS) == 1
    assert arr.sum(3600, PASS) == 1


def test_times_below_zero_use_floor_buckets(impl: ModuleType) -> None:
    # A ManualClock may start below zero. C division truncates toward zero: without the
    # correction, -501 ms indexed bucket -1 of the ring (memory outside the array).
    arr = impl.LeapArray(2, 1000)
    arr.add(-501, PASS, 2)  # bucket [-1000, -500)
    arr.add(-1, PASS, 3)  # bucket [-500, 0)
    assert arr.sum(-1, PASS) == 5
    assert arr.previous(-1, PASS) == 2
    assert arr.window_end(-501) == 1 and arr.window_end(-500) == 500
    arr.add(499, PASS, 1)  # bucket [0, 500) takes the ring slot of [-1000, -500)
    assert arr.sum(499, PASS) == 4


def test_huge_clock_values(impl: ModuleType) -> None:
    t = 10**15 + 123
    arr = impl.LeapArray(2, 1000)
    arr.add(t, PASS, 2)
    arr.add(t + 500, PASS, 1)
    assert arr.sum(t + 500, PASS) == 3
    assert arr.previous(t + 500, PASS) == 2


def _expected_sum(events: list[tuple[int, int]], now: int, bucket_ms: int, interval: int) -> int:
    # With time never going back, a count is live iff its bucket started less than one
    # interval before now (the slot of a bucket exactly one interval old is now's own).
    return sum(c for t, c in events if now - (t - t % bucket_ms) < interval)


@settings(max_examples=150, deadline=None)
@given(
    sample_count=st.sampled_from([1, 2, 4, 5, 10, 20]),
    steps=st.lists(
        st.tuples(st.integers(0, 700), st.integers(0, 60), st.booleans()), min_size=1, max_size=40
    ),
    start=st.sampled_from([0, 1, 999, 10**12 + 7]),
)
def test_reads_match_a_brute_force_model(
    sample_count: int, steps: list[tuple[int, int, bool]], start: int
) -> None:
    # Writes book a pass of `value` and a success taking `value` ms; reads compare the
    # sums, the min RT and the best bucket with what a list of every event says.
    for twin in TWINS:
        mod = importlib.import_module(f"guard.stat._window_{twin}")
        arr = mod.LeapArray(sample_count, 1000)
        bucket_ms = arr.bucket_ms
        events: list[tuple[int, int]] = []
        now = start
        for delta, value, read in steps:
            now += delta
            if not read:
                arr.add(now, PASS, value)
                arr.add_rt(now, value, 1)
                events.append((now, value))
                continue
            live = [(t, v) for t, v in events if now - (t - t % bucket_ms) < 1000]
            assert arr.sum(now, PASS) == _expected_sum(events, now, bucket_ms, 1000)
            assert arr.sum(now, SUCCESS) == len(live)
            assert arr.sum(now, RT) == sum(v for _, v in live)
            assert arr.min_rt(now) == max(1, min([MAX_RT_MS] + [v for _, v in live]))
            per_bucket: dict[int, int] = {}
            for t, v in live:
                per_bucket[t - t % bucket_ms] = per_bucket.get(t - t % bucket_ms, 0) + v
            assert arr.max_bucket(now, PASS) == max(per_bucket.values(), default=0)


# -- StatNode --------------------------------------------------------------------------------


def test_stat_node_counters_and_derived_values(impl: ModuleType) -> None:
    node = impl.StatNode()
    assert node.second.sample_count == 2 and node.second.interval_ms == 1000
    assert node.minute.sample_count == 60 and node.minute.interval_ms == 60_000
    node.add_pass(100, 3)
    node.add_block(200, 2)
    node.add_success(300, 40, 1)
    node.add_success(300, 20, 1)
    node.add_exception(300, 1)
    assert node.pass_count(300) == 3
    assert node.pass_qps(300) == 3.0
    assert node.block_qps(300) == 2.0
    assert node.success_qps(300) == 2.0
    assert node.exception_qps(300) == 1.0
    assert node.avg_rt(300) == 30.0
    assert node.min_rt(300) == 20
    assert node.max_success_qps(300) == 4.0  # best bucket (2) x 2 buckets per second
    node.concurrency += 2
    assert node.concurrency == 2


def test_stat_node_avg_rt_is_not_truncated(
    impl: ModuleType, request: pytest.FixtureRequest
) -> None:
    node = impl.StatNode()
    node.add_success(0, 1, 1)
    node.add_success(0, 2, 1)
    assert node.avg_rt(0) == 1.5


def test_stat_node_avg_rt_without_success_is_zero(impl: ModuleType) -> None:
    node = impl.StatNode()
    node.add_pass(0, 1)
    assert node.avg_rt(0) == 0.0


def test_stat_node_sample_count(impl: ModuleType) -> None:
    node = impl.StatNode(10)
    assert node.second.bucket_ms == 100
    node.add_pass(0, 5)
    assert node.pass_qps(999) == 5.0
    assert node.pass_qps(1000) == 0.0
    two = impl.StatNode(2)
    two.add_pass(499, 5)
    assert two.pass_qps(999) == 5.0
    assert two.pass_qps(1000) == 0.0


def test_stat_node_minute_totals(impl: ModuleType) -> None:
    node = impl.StatNode()
    for second in range(60):
        node.add_pass(second * 1000 + 10, 1)
        if second == 5:
            node.add_block(5000 + 10, 4)
    assert node.total(59_999, PASS) == 60
    assert node.total(59_999, BLOCK) == 4
    assert node.pass_qps(59_999) == 1.0  # the second window only sees the last second
    assert node.total(60_000, PASS) == 59  # second 0 has left the minute
    assert node.total(65_000, BLOCK) == 0


def test_stat_node_previous_pass_qps_is_the_previous_whole_second(impl: ModuleType) -> None:
    node = impl.StatNode()
    node.add_pass(1200, 5)
    node.add_pass(1999, 2)
    assert node.previous_pass_qps(1999) == 0
    assert node.previous_pass_qps(2000) == 7
    assert node.previous_pass_qps(2999) == 7
    assert node.previous_pass_qps(3000) == 0


def _node_state(node: Any, now: int) -> tuple[Any, ...]:
    return (
        node.pass_qps(now),
        node.block_qps(now),
        node.success_qps(now),
        node.second.sum(now, RT),
        node.min_rt(now),
        node.previous_pass_qps(now),
        node.total(now, PASS),
        node.total(now, SUCCESS),
    )


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from("pbsr"), st.integers(0, 900), st.integers(1, 50)),
        min_size=1,
        max_size=60,
    )
)
def test_twins_read_the_same_numbers(ops: list[tuple[str, int, int]]) -> None:
    nodes = {
        twin: importlib.import_module(f"guard.stat._window_{twin}").StatNode(4) for twin in TWINS
    }
    now = 10**9
    seen: dict[str, list[tuple[Any, ...]]] = {twin: [] for twin in TWINS}
    for op, delta, value in ops:
        now += delta
        for twin, node in nodes.items():
            if op == "p":
                node.add_pass(now, value)
            elif op == "b":
                node.add_block(now, value)
            elif op == "s":
                node.add_success(now, value, 1)
            else:
                seen[twin].append(_node_state(node, now))
    values = list(seen.values())
    assert all(v == values[0] for v in values)
    # And the pure twin agrees with itself as a sanity check on the read path.
    assert all(len(v) == sum(op == "r" for op, _, _ in ops) for v in values)


def _uncached_reference(sample_count: int, bucket_ms: int) -> Any:
    """The bucket lookup as defined (index and start from the time alone, no cache)."""
    starts = [None] * sample_count
    counts = [0] * sample_count

    def add(now: int, value: int) -> None:
        idx = (now // bucket_ms) % sample_count
        if starts[idx] != now - now % bucket_ms:
            starts[idx], counts[idx] = now - now % bucket_ms, 0
        counts[idx] += value

    def total(now: int) -> int:
        add(now, 0)
        return sum(c for s, c in zip(starts, counts) if s is not None and now - s <= 1000)

    return add, total


@settings(max_examples=150, deadline=None)
@given(
    sample_count=st.sampled_from([1, 2, 4, 10]),
    # Jumps forward and back, within a bucket, by whole buckets and by whole laps.
    steps=st.lists(
        st.tuples(
            st.sampled_from([0, 1, -1, 250, -250, 500, -500, 1000, -1000, 2000, 999]),
            st.integers(0, 9),
        ),
        min_size=1,
        max_size=60,
    ),
    start=st.sampled_from([10_000, 0, -1, -4_999]),
)
def test_cached_bucket_lookup_matches_the_definition_when_time_jumps(
    sample_count: int, steps: list[tuple[int, int]], start: int
) -> None:
    # The compiled and pure windows remember the last bucket to skip the divisions; a clock
    # that goes back (a ManualClock, or times of entries that overlap) must not fool them.
    # Times below zero (a ManualClock may start there) land in the same buckets as in
    # Python's floor division; the compiled twin divides as C does and must correct it.
    for twin in TWINS:
        arr = importlib.import_module(f"guard.stat._window_{twin}").LeapArray(sample_count, 1000)
        add, total = _uncached_reference(sample_count, arr.bucket_ms)
        now = start
        for delta, value in steps:
            now += delta
            arr.add(now, PASS, value)
            add(now, value)
            assert arr.sum(now, PASS) == total(now), (twin, now)
