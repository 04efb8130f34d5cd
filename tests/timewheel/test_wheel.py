"""TimingWheel (timewheel/_wheel_py.py and its compiled twin) against a heapq model."""

from __future__ import annotations

import gc
import heapq
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


class Model:
    """The obvious implementation: a heap of (deadline, seq) and a set of pending seqs."""

    def __init__(self, start: int) -> None:
        self.now = start
        self.heap: list[tuple[int, int]] = []
        self.pending: set[int] = set()

    def add(self, deadline: int, seq: int) -> None:
        heapq.heappush(self.heap, (deadline, seq))
        self.pending.add(seq)

    def cancel(self, seq: int) -> bool:
        if seq in self.pending:
            self.pending.discard(seq)
            return True
        return False

    def advance(self, now: int) -> list[int]:
        self.now = max(self.now, now)
        out = []
        while self.heap and self.heap[0][0] <= self.now:
            _, seq = heapq.heappop(self.heap)
            if seq in self.pending:
                self.pending.discard(seq)
                out.append(seq)
        return out

    def earliest(self) -> int | None:
        live = [d for d, s in self.heap if s in self.pending]
        return min(live) if live else None


ops = st.lists(
    st.one_of(
        st.tuples(st.just("in"), st.integers(-20, 600)),
        st.tuples(st.just("in"), st.integers(0, 300_000)),
        st.tuples(st.just("in"), st.integers(0, 10**10)),
        st.tuples(st.just("at"), st.integers(-1000, 2000)),
        st.tuples(st.just("cancel"), st.integers(0, 200)),
        st.tuples(st.just("adv"), st.integers(0, 40)),
        st.tuples(st.just("adv"), st.integers(0, 5000)),
        st.tuples(st.just("adv"), st.integers(0, 10**9)),
        st.tuples(st.just("back"), st.integers(0, 100)),
    ),
    max_size=120,
)


def check_next(wheel: object, model: Model, tick: int) -> None:
    nd = wheel.next_deadline()  # type: ignore[attr-defined]
    earliest = model.earliest()
    if earliest is None:
        assert nd is None
        return
    assert nd is not None and nd <= earliest
    if tick == 1:
        assert nd == earliest
    assert nd > model.now or earliest <= model.now


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    tick=st.sampled_from([1, 1, 2, 7, 100]),
    size=st.sampled_from([2, 3, 8, 512]),
    start=st.integers(-(10**6), 10**6),
    steps=ops,
)
def test_matches_heap_model(
    impl: ModuleType, tick: int, size: int, start: int, steps: list
) -> None:
    wheel = impl.TimingWheel(tick_ms=tick, wheel_size=size, start_ms=start)
    model = Model(start)
    handles = []
    for op, arg in steps:
        if op == "in":
            seq = len(handles)
            handles.append(wheel.schedule(arg, seq))
            model.add(model.now + arg, seq)
        elif op == "at":
            seq = len(handles)
            handles.append(wheel.schedule_at(model.now + arg, seq))
            model.add(model.now + arg, seq)
        elif op == "cancel" and handles:
            k = arg % len(handles)
            assert handles[k].pending == (k in model.pending)
            assert handles[k].cancel() == model.cancel(k)
        elif op == "adv":
            now = model.now + arg
            assert wheel.advance(now) == model.advance(now)
        elif op == "back":
            assert wheel.advance(model.now - arg) == model.advance(model.now - arg)
        assert len(wheel) == len(model.pending)
        assert wheel.now_ms == model.now
        check_next(wheel, model, tick)
    # Draining fires everything left, in order, and leaves the wheel empty.
    assert wheel.advance(model.now + 10**11) == model.advance(model.now + 10**11)
    assert len(wheel) == 0 and wheel.next_deadline() is None


def test_fires_exactly_at_deadline_whatever_the_tick(impl: ModuleType) -> None:
    wheel = impl.TimingWheel(tick_ms=100, wheel_size=8)
    wheel.schedule(150, "a")
    wheel.schedule(101, "b")
    assert wheel.advance(100) == []
    assert wheel.next_deadline() == 101
    assert wheel.advance(149) == ["b"]
    assert wheel.advance(150) == ["a"]


def test_ties_keep_scheduling_order_across_cascades(impl: ModuleType) -> None:
    wheel = impl.TimingWheel()  # 1 ms x 512
    wheel.schedule_at(700, "first")  # at t=100: past 100+512, so level 1
    wheel.advance(100)
    wheel.advance(300)
    wheel.schedule_at(700, "second")  # at t=300: level 0, before "first" cascades
    wheel.schedule_at(700, "third")
    assert wheel.advance(699) == []
    assert wheel.advance(700) == ["first", "second", "third"]


def test_cascade_through_levels_and_order(impl: ModuleType) -> None:
    wheel = impl.TimingWheel(tick_ms=1, wheel_size=4)
    deadlines = [3, 17, 64, 65, 1000, 4096, 4097, 999_999]
    for d in reversed(deadlines):
        wheel.schedule(d, d)
    assert wheel.levels > 5
    fired = []
    now = 0
    while len(wheel):
        nd = wheel.next_deadline()
        assert nd is not None and nd > now
        assert wheel.advance(nd - 1) == []  # never early
        now = nd
        got = wheel.advance(now)
        assert got and all(d == now for d in got)
        fired += got
    assert fired == deadlines


def test_overdue_fires_first_in_deadline_order(impl: ModuleType) -> None:
    wheel = impl.TimingWheel(start_ms=1000)
    wheel.schedule(5, "later")
    wheel.schedule_at(10, "old")
    wheel.schedule(-500, "mid")  # 500
    wheel.schedule_at(10, "old2")
    assert wheel.next_deadline() == 10  # already due: may be before the wheel's time
    assert wheel.advance(1000) == ["old", "old2", "mid"]
    assert wheel.next_deadline() == 1005


def test_cancel_is_exactly_once(impl: ModuleType) -> None:
    wheel = impl.TimingWheel()
    h = wheel.schedule(10, "x")
    assert h.pending
    assert h.cancel() is True
    assert h.cancel() is False
    assert not h.pending
    h2 = wheel.schedule(10, "y")  # reuses the slot: the old handle must not touch it
    assert h.cancel() is False
    assert wheel.advance(10) == ["y"]
    assert h2.cancel() is False
    assert len(wheel) == 0


def test_cancelled_earliest_moves_next_deadline(impl: ModuleType) -> None:
    wheel = impl.TimingWheel()
    a = wheel.schedule(5_000, "a")  # level 1, same bucket as b
    wheel.schedule(5_100, "b")
    assert wheel.next_deadline() == 5_000
    a.cancel()
    assert wheel.next_deadline() == 5_100
    c = wheel.schedule(3, "c")
    assert wheel.next_deadline() == 3
    c.cancel()
    assert wheel.next_deadline() == 5_100


def test_handle_does_not_keep_wheel_alive(impl: ModuleType) -> None:
    wheel = impl.TimingWheel()
    h = wheel.schedule(1, "x")
    del wheel
    gc.collect()
    assert h.cancel() is False
    assert h.pending is False


def test_bad_arguments(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="wheel_size"):
        impl.TimingWheel(wheel_size=1)
    with pytest.raises(ValueError, match="tick_ms"):
        impl.TimingWheel(tick_ms=0)
    wheel = impl.TimingWheel()
    with pytest.raises(TypeError, match="integer"):
        wheel.schedule(1.5, "x")
    with pytest.raises(TypeError):
        wheel.schedule("5", "x")
    with pytest.raises(ValueError, match="range"):
        wheel.schedule_at(1 << 60, "x")
    with pytest.raises(TypeError):
        wheel.advance(2.0)
    assert len(wheel) == 0


def test_many_timers_drain_in_order(impl: ModuleType) -> None:
    import random

    rng = random.Random(7)
    wheel = impl.TimingWheel()
    deadlines = [rng.randrange(0, 200_000) for _ in range(20_000)]
    handles = [wheel.schedule_at(d, i) for i, d in enumerate(deadlines)]
    dead = set(rng.sample(range(len(handles)), 5_000))
    for i in dead:
        assert handles[i].cancel()
    expected = sorted((d, i) for i, d in enumerate(deadlines) if i not in dead)
    got = []
    for now in range(0, 200_000 + 997, 997):
        got += wheel.advance(now)
    assert got == [i for _, i in expected]


def test_selector_picks_the_compiled_twin_unless_pure() -> None:
    from tests.conftest import PURE
    from timewheel import TimingWheel, wheel

    assert ("py" if PURE else "c") == wheel.IMPLEMENTATION
    assert TimingWheel is wheel.TimingWheel
    assert TimingWheel.__module__ == f"timewheel._wheel_{wheel.IMPLEMENTATION}"
