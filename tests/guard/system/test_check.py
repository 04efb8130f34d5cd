"""System protection through the engine, both twins: inbound only, Sentinel's order, BBR."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guard import FlowBlocked, Guard, ManualClock, SystemBlocked
from guard.system.sampler import SystemSampler, default_sampler
from tests.conftest import TWINS
from tests.guard.twins import use_twin

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=TWINS)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_twin(monkeypatch, "guard.system.check", request.param)
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "host", tmp_path / "host"))


@pytest.fixture
def sampler(impl: str, host: Path) -> Iterator[SystemSampler]:
    s = SystemSampler(root=host, interval=3600)
    s.start()  # the thread samples once now, then sleeps through the test
    deadline = time.monotonic() + 5
    while s.status.load < 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert s.status.load == 3.25
    yield s
    s.stop()


@pytest.fixture
def g(impl: str, clock: ManualClock, sampler: SystemSampler) -> Guard:
    engine = Guard(clock=clock)
    engine._slot("system").sampler = sampler
    return engine


def inbound(g: Guard, res: str = "r", count: int = 1) -> str:
    try:
        g.enter(res, inbound=True, count=count).exit()
    except SystemBlocked as exc:
        assert exc.reason == "system" and exc.retry_after is None
        return str(exc.limit)
    return "pass"


def test_twin_in_use(g: Guard, impl: str) -> None:
    g.load_rules({"system": {"max_qps": 1}})
    check = g._core.default_plan.checks[0]
    assert type(check).__module__ == f"guard.system._check_{impl}"


def test_outbound_entries_are_never_checked(g: Guard) -> None:
    g.load_rules({"system": {"max_qps": 0, "max_concurrency": 0}})
    for _ in range(5):
        g.enter("r").exit()
    assert inbound(g) == "qps"


def test_qps_counts_every_inbound_resource(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"system": {"max_qps": 3}})
    assert [inbound(g, "a"), inbound(g, "b"), inbound(g, "c")] == ["pass"] * 3
    assert inbound(g, "d") == "qps"
    clock.advance(1000)
    assert inbound(g, "a", count=3) == "pass"
    clock.advance(1000)
    assert inbound(g, "a", count=4) == "qps"  # 0 + 4 > 3


def test_zero_qps_blocks_every_inbound_entry(g: Guard) -> None:
    g.load_rules({"system": {"max_qps": 0}})
    assert inbound(g) == "qps"
    assert g.stats("r").total_block == 1


def test_concurrency_is_strictly_above(g: Guard) -> None:
    g.load_rules({"system": {"max_concurrency": 2}})
    held = [g.enter("r", inbound=True) for _ in range(3)]  # 0, 1, 2 in flight: all pass
    assert inbound(g) == "concurrency"
    held.pop().exit()
    assert inbound(g) == "pass"


def test_avg_rt(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"system": {"max_avg_rt_ms": 50}})
    e = g.enter("r", inbound=True)
    clock.advance(60)
    e.exit()
    assert inbound(g) == "avg_rt"
    clock.advance(1000)  # the slow call left the window
    assert inbound(g) == "pass"


def test_order_of_checks(g: Guard, clock: ManualClock) -> None:
    g.load_rules({"system": {"max_qps": 2, "max_concurrency": 0, "max_avg_rt_ms": 0}})
    held = g.enter("r", inbound=True)  # nothing in flight, no RT yet: passes
    assert inbound(g) == "concurrency"  # qps 1 + 1 <= 2, but 1 in flight > 0
    clock.advance(7)
    held.exit()
    assert inbound(g) == "avg_rt"  # qps fine, none in flight, avg RT 7 > 0
    g.load_rules({"system": {"max_qps": 1, "max_concurrency": 0, "max_avg_rt_ms": 0}})
    held = g.enter("x")  # outbound: in no inbound statistic
    assert inbound(g) == "qps"  # qps 1 + 1 > 1 is checked first
    held.exit()


def set_load(host: Path, sampler: SystemSampler, load: float) -> None:
    (host / "proc/loadavg").write_text(f"{load} 1.00 1.00 1/100 1\n")
    sampler.sample()


def test_load_blocks_only_past_bbr_capacity(
    g: Guard, clock: ManualClock, host: Path, sampler: SystemSampler
) -> None:
    g.load_rules({"system": {"max_load": 4.0}})
    assert sampler.running  # a CPU/load threshold starts the sampler
    set_load(host, sampler, 8.0)
    # Capacity: 10 successes in one 500 ms bucket = 20/s, min RT 100 ms -> 2 in flight.
    for _ in range(10):
        e = g.enter("r", inbound=True)
        clock.advance(100)
        e.exit()
        clock.set(clock.now_ms() - 100)  # keep every call inside the same bucket
    held = [g.enter("r", inbound=True), g.enter("r", inbound=True)]  # 0, 1 in flight
    held.append(g.enter("r", inbound=True))  # 2 in flight: not above capacity 2
    assert inbound(g) == "load"  # 3 in flight > 2
    set_load(host, sampler, 3.0)
    assert inbound(g) == "pass"  # load under the threshold: BBR not consulted
    set_load(host, sampler, 8.0)
    for e in held[1:]:
        e.exit()
    assert inbound(g) == "pass"  # one in flight: BBR needs more than one
    held[0].exit()


def test_cpu_blocks_without_bbr(g: Guard, host: Path, sampler: SystemSampler) -> None:
    g.load_rules({"system": {"max_cpu": 0.5}})
    sampler.sample(now=time.monotonic() + 1000)
    (host / "proc/stat").write_text("cpu  1600 50 350 7300 200 0 0 0 0 0\n")
    sampler.sample(now=time.monotonic() + 1001)  # 70 % busy
    assert inbound(g) == "cpu"
    (host / "proc/stat").write_text("cpu  1700 50 350 8200 200 0 0 0 0 0\n")
    sampler.sample(now=time.monotonic() + 1002)  # 10 % busy
    assert inbound(g) == "pass"


def test_unknown_cpu_never_blocks(g: Guard, sampler: SystemSampler) -> None:
    g.load_rules({"system": {"max_cpu": 0.0}})
    assert sampler.status.cpu == -1.0  # one reading so far: no CPU delta yet
    assert inbound(g) == "pass"


def test_system_runs_before_flow(g: Guard) -> None:
    g.load_rules({"system": {"max_qps": 0}, "flow": [{"resource": "r", "count": 0}]})
    assert inbound(g) == "qps"
    with pytest.raises(FlowBlocked):
        g.enter("r")


def test_empty_or_removed_rule_protects_nothing(g: Guard) -> None:
    g.load_rules({"system": {}})
    assert g._core.default_plan.checks == []
    g.load_rules({"system": {"max_qps": 0}})
    assert inbound(g) == "qps"
    g.load_rules({})
    assert inbound(g) == "pass"


def test_default_engine_starts_the_shared_real_sampler() -> None:
    g = Guard(clock=ManualClock(0))
    g.load_rules({"system": {"max_cpu": 1.0}})
    sampler: Any = default_sampler()
    assert g._slot("system").sampler is sampler
    assert sampler.running
    deadline = time.monotonic() + 5
    while sampler.status.cpu < 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 0.0 <= sampler.status.cpu <= 1.0
    assert sampler.status.load >= 0.0
