"""Load-balancing policies, slow start and passive health, driven by a manual clock."""

from __future__ import annotations

import collections
import random

import pytest

from ext.sidecar.balancer import POLICIES, Balancer, hash64, make_balancer
from ext.sidecar.config import Param, Upstream, parse_sidecar
from ext.sidecar.health import MIN_RAMP, OutlierPolicy

PICKS = 100_000


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ups(*weights: float) -> list[Upstream]:
    return [
        Upstream(f"http://10.0.0.{i + 1}:80", f"10.0.0.{i + 1}", 80, float(w))
        for i, w in enumerate(weights)
    ]


def shares(balancer: Balancer, n: int = PICKS) -> dict[str, float]:
    counts = collections.Counter(balancer.pick().url for _ in range(n))
    return {url: counts[url] / n for url in (u.url for u in balancer.upstreams)}


def worst_relative_error(balancer: Balancer, weights: tuple[float, ...]) -> float:
    got = shares(balancer)
    total = sum(weights)
    return max(
        abs(got[u.url] - w / total) / (w / total)
        for u, w in zip(balancer.upstreams, weights, strict=True)
    )


WEIGHTS = (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize("policy", ["round_robin", "weighted_random", "least_active"])
def test_weights_are_honoured_within_two_percent(policy: str) -> None:
    balancer = make_balancer(policy, ups(*WEIGHTS), rng=random.Random(7))
    error = worst_relative_error(balancer, WEIGHTS)
    print(f"{policy}: worst relative error over {PICKS} picks = {error:.4%}")
    assert error < 0.02


def test_round_robin_is_smooth_as_nginx() -> None:
    rr = make_balancer("round_robin", ups(5, 1, 1))
    names = {"http://10.0.0.1:80": "a", "http://10.0.0.2:80": "b", "http://10.0.0.3:80": "c"}
    assert "".join(names[rr.pick().url] for _ in range(14)) == "aabacaa" * 2
    # fractional weights are honoured exactly over a full cycle
    rr = make_balancer("round_robin", ups(0.5, 1.5))
    got = collections.Counter(rr.pick().url for _ in range(400))
    assert [got[u.url] for u in rr.upstreams] == [100, 300]


def test_zero_weight_is_never_picked_unless_all_are_zero() -> None:
    for policy in POLICIES:
        b = make_balancer(policy, ups(0, 1), rng=random.Random(1))
        assert {b.pick(lambda: "k").url for _ in range(200)} == {"http://10.0.0.2:80"}
        b = make_balancer(policy, ups(0, 0), rng=random.Random(1))
        assert len({b.pick(lambda: None).url for _ in range(200)}) == 2


def test_least_active_prefers_fewest_in_flight() -> None:
    b = make_balancer("least_active", ups(1, 1, 1), rng=random.Random(3))
    a, bb, c = b.upstreams
    b.on_start(a)
    b.on_start(a)
    b.on_start(bb)
    assert {b.pick().url for _ in range(50)} == {c.url}
    b.on_start(c)
    b.on_done(a, False)
    # a: 1, b: 1, c: 1 -> all tied again
    assert len({b.pick().url for _ in range(200)}) == 3
    b.on_start(c)
    assert {b.pick().url for _ in range(50)} == {a.url, bb.url}


def keys_of(balancer: Balancer, keys: list[str]) -> dict[str, str]:
    return {k: balancer.pick(lambda k=k: k).url for k in keys}


def test_consistent_hash_moves_about_one_nth_when_one_of_n_leaves() -> None:
    n = 5
    keys = [f"user-{i}" for i in range(20_000)]
    full = make_balancer("consistent_hash", ups(*[1] * n))
    before = keys_of(full, keys)
    load = collections.Counter(before.values())
    assert max(load.values()) / min(load.values()) < 1.5  # the ring spreads keys evenly
    gone = full.upstreams[2]
    fewer = make_balancer("consistent_hash", [u for u in full.upstreams if u != gone])
    after = keys_of(fewer, keys)
    moved = [k for k in keys if before[k] != after[k]]
    print(f"consistent_hash: {len(moved) / len(keys):.4f} of keys moved when 1 of {n} left")
    assert all(before[k] == gone.url for k in moved)  # only the leaver's keys move
    assert len(moved) / len(keys) <= 1.25 / n
    # and an instance joining takes about 1/(n+1) of the keys, from every other one
    more = make_balancer("consistent_hash", ups(*[1] * (n + 1)))
    joined = keys_of(more, keys)
    moved_in = [k for k in keys if before[k] != joined[k]]
    assert all(joined[k] == more.upstreams[-1].url for k in moved_in)
    assert len(moved_in) / len(keys) <= 1.25 / (n + 1)


def test_consistent_hash_same_key_same_instance_and_weights() -> None:
    b = make_balancer("consistent_hash", ups(1, 3))
    assert len({b.pick(lambda: "alice").url for _ in range(50)}) == 1
    got = collections.Counter(keys_of(b, [str(i) for i in range(20_000)]).values())
    assert 0.70 < got["http://10.0.0.2:80"] / 20_000 < 0.80
    # a request without a key is balanced round robin
    assert len({b.pick(lambda: None).url for _ in range(4)}) == 2
    assert hash64("x") == hash64("x") != hash64("y")


def test_slow_start_ramps_continuously_from_near_zero() -> None:
    clock = Clock()
    first = make_balancer("round_robin", ups(1, 1), slow_start_sec=10, clock=clock)
    assert first.effective_weights() == dict.fromkeys((u.url for u in first.upstreams), 1.0)
    new_up = ups(1, 1, 1)
    b = make_balancer("round_robin", new_up, slow_start_sec=10, clock=clock, previous=first)
    newcomer = new_up[2].url
    assert b.effective_weights()[newcomer] == pytest.approx(MIN_RAMP)
    for t, expected in ((0.25, 0.025), (2.5, 0.25), (5.0, 0.5), (7.3, 0.73), (10.0, 1.0)):
        clock.t = 1000.0 + t
        assert b.effective_weights()[newcomer] == pytest.approx(expected)
        assert b.effective_weights()[new_up[0].url] == 1.0
        if t == 2.5:  # picks follow the ramp: the newcomer gets 0.25/2.25 of traffic
            assert shares(b, 9000)[newcomer] == pytest.approx(0.25 / 2.25, abs=0.01)


def test_effective_weights_none_ramping_at_start() -> None:
    b = make_balancer("round_robin", ups(2, 1), slow_start_sec=30, clock=Clock())
    assert list(b.effective_weights().values()) == [2.0, 1.0]


def failing(b: Balancer, up: Upstream, times: int) -> None:
    for _ in range(times):
        b.on_start(up)
        b.on_done(up, True)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_consecutive_failures_eject_for_growing_intervals(policy: str) -> None:
    clock = Clock()
    policy_cfg = OutlierPolicy(consecutive_failures=3, base_ejection_sec=10, max_ejection_sec=25)
    b = make_balancer(
        policy, ups(1, 1, 1), outlier=policy_cfg, clock=clock, slow_start_sec=4, rng=random.Random()
    )
    bad = b.upstreams[1]
    failing(b, bad, 2)
    b.on_done(bad, False)  # a success resets the run
    failing(b, bad, 2)
    assert bad.url in {b.pick(lambda: "k").url for _ in range(300)} | {bad.url}
    assert b.snapshot()[1]["ejections"] == 0
    failing(b, bad, 1)  # third in a row
    keys = [str(i) for i in range(300)]
    assert bad.url not in {b.pick(lambda k=k: k).url for k in keys}
    assert b.snapshot()[1]["ejected_for_sec"] == 10.0
    clock.t += 10
    # back, ramping up from near zero under slow start
    assert b.effective_weights()[bad.url] == pytest.approx(MIN_RAMP)
    clock.t += 2
    assert b.effective_weights()[bad.url] == pytest.approx(0.5)
    clock.t += 2
    assert bad.url in {b.pick(lambda k=k: k).url for k in keys}
    failing(b, bad, 3)
    assert b.snapshot()[1]["ejected_for_sec"] == 20.0  # second ejection: twice as long
    clock.t += 20
    b.effective_weights()
    failing(b, bad, 3)
    assert b.snapshot()[1]["ejected_for_sec"] == 25.0  # capped by max_ejection_sec


def test_never_ejects_all_instances() -> None:
    clock = Clock()
    b = make_balancer("round_robin", ups(1, 1), outlier=OutlierPolicy(3), clock=clock)
    one, two = b.upstreams
    failing(b, one, 3)
    failing(b, two, 10)
    assert {b.pick().url for _ in range(10)} == {two.url}
    single = make_balancer("round_robin", ups(1), outlier=OutlierPolicy(3), clock=clock)
    failing(single, single.upstreams[0], 50)
    assert single.snapshot()[0]["ejections"] == 0
    assert OutlierPolicy(max_ejected_percent=100).max_ejected(4) == 3
    assert OutlierPolicy(max_ejected_percent=10).max_ejected(4) == 1
    assert OutlierPolicy(consecutive_failures=0).max_ejected(4) == 0


def test_reload_keeps_state_of_instances_that_stay() -> None:
    clock = Clock()
    first = make_balancer("least_active", ups(1, 1), clock=clock, outlier=OutlierPolicy(2))
    a, bad = first.upstreams
    first.on_start(a)
    failing(first, bad, 2)
    reweighted = [Upstream(a.url, a.host, a.port, 5.0), bad, *ups(1, 1, 1)[2:]]
    second = make_balancer(
        "round_robin", reweighted, clock=clock, previous=first, slow_start_sec=10
    )
    snap = {s["url"]: s for s in second.snapshot()}
    assert snap[a.url]["active"] == 1 and snap[a.url]["weight"] == 5.0
    assert snap[bad.url]["ejected_for_sec"] > 0
    second.on_done(a, False)  # a request started before the reload ends after it
    assert second.snapshot()[0]["active"] == 0
    second.on_done(Upstream("http://gone:1", "gone", 1), True)  # removed instance: ignored


def test_consistent_hash_ejection_moves_only_that_instances_keys() -> None:
    clock = Clock()
    b = make_balancer("consistent_hash", ups(1, 1, 1, 1), clock=clock, outlier=OutlierPolicy(1))
    keys = [str(i) for i in range(4000)]
    before = keys_of(b, keys)
    bad = b.upstreams[0]
    failing(b, bad, 1)
    during = keys_of(b, keys)
    assert all(during[k] == before[k] for k in keys if before[k] != bad.url)
    assert bad.url not in during.values()


def test_consistent_hash_ramping_instance_takes_its_keys_back_gradually() -> None:
    clock = Clock()
    three = make_balancer("consistent_hash", ups(1, 1, 1), clock=clock)
    keys = [str(i) for i in range(6000)]
    before = keys_of(three, keys)
    four = make_balancer(
        "consistent_hash", ups(1, 1, 1, 1), clock=clock, previous=three, slow_start_sec=10
    )
    newcomer = four.upstreams[3].url
    owned = []
    for t in (0, 3, 6, 10):
        clock.t = 1000.0 + t
        owned.append(sum(1 for v in keys_of(four, keys).values() if v == newcomer))
    assert owned[0] < 0.01 * len(keys) and owned == sorted(owned) and owned[-1] > 1000
    assert owned[1] == pytest.approx(0.3 * owned[-1], rel=0.2)
    clock.t = 1010.0
    after = keys_of(four, keys)
    assert all(after[k] == before[k] for k in keys if after[k] != newcomer)


def test_hash_key_and_outlier_validation() -> None:
    config, errors = parse_sidecar(
        {
            "upstreams": ["http://a:1"],
            "lb": "consistent_hash",
            "hash_key": "query:user",
            "slow_start_sec": 2.5,
            "outlier": {"consecutive_failures": 2, "base_ejection_sec": 1},
        }
    )
    assert errors == [] and config is not None
    assert config.hash_key == Param("query", "user") and config.slow_start_sec == 2.5
    assert config.outlier == OutlierPolicy(2, 1.0)
    _, errors = parse_sidecar(
        {
            "upstreams": ["http://a:1"],
            "lb": "fastest",
            "slow_start_sec": -1,
            "outlier": {"consecutive_failures": 1.5, "max_ejected_percent": 300, "x": 1},
        }
    )
    assert sorted(errors) == [
        "sidecar.lb: must be one of round_robin, weighted_random, least_active, "
        "consistent_hash, got 'fastest'",
        "sidecar.outlier.consecutive_failures: must be an integer >= 0",
        "sidecar.outlier.max_ejected_percent: must be <= 100",
        "sidecar.outlier.x: unknown key",
        "sidecar.slow_start_sec: must be >= 0",
    ]
