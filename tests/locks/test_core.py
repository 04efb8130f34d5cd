"""The I/O-free core: arithmetic and reply reading, exact without any server."""

from __future__ import annotations

import pytest

from locks import LockNotOwnedError
from locks._core import (
    Hold,
    LockCore,
    RedlockCore,
    check_timeout,
    default_node_timeout,
    drift,
    fence_key,
    lock_key,
    new_token,
    quorum,
)
from locks._scripts import ACQUIRE, EXTEND, FENCE_MAX, RELEASE


def test_quorum_is_a_strict_majority() -> None:
    assert [quorum(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 2, 3, 3, 4, 4]


def test_drift_follows_the_redlock_page() -> None:
    assert drift(10.0, 0.01) == pytest.approx(0.102)
    assert drift(1.0, 0.0) == pytest.approx(0.002)


def test_tokens_are_random_and_20_bytes() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == 40 and int(t, 16) >= 0 for t in tokens)


def test_key_names_share_a_cluster_slot() -> None:
    assert lock_key("a") == "lock:{a}" and fence_key("a") == "lock:{a}:fence"


def test_validity_and_deadline() -> None:
    core = RedlockCore("x", 5, ttl=10.0)
    assert core.quorum == 3
    assert core.validity_after(100.0, 100.5) == pytest.approx(10 - 0.5 - 0.102)
    assert core.validity_after(100.0, 110.0) < 0
    hold, wait = core.on_acquire(42, "tok", 100.0, None)
    assert hold is not None and wait == 0.0
    assert hold.fencing_token == 42 and hold.deadline == pytest.approx(100 + 10 - 0.102)
    assert hold.validity(105.0) == pytest.approx(5 - 0.102)
    assert hold.validity(200.0) == 0.0
    hold.lost = True
    assert hold.validity(101.0) == 0.0


def test_loser_wait_comes_from_pttl() -> None:
    core = LockCore("x", ttl=2.0)
    hold, wait = core.on_acquire(-1503, "tok", 0.0, None)  # pttl 1500 ms
    assert hold is None and wait == pytest.approx(1.501)
    assert core.on_acquire(-1, "t", 0.0, None)[1] == 0.0  # pttl -2, vanished: try now
    assert core.on_acquire(-2, "t", 0.0, None)[1] == 2.0  # pttl -1, no expiry: after a ttl
    assert core.wait_bound(1.5, 0.2) == 0.2
    assert core.wait_bound(1.5, None) == 1.5
    assert core.wait_bound(1.5, -1) == 0.0


def test_reentrant_reply_raises_the_count() -> None:
    core = LockCore("x", ttl=2.0, reentrant=True)
    hold = Hold("tok", 7, 2.0, 2.0)
    hold.count = 2
    again, _ = core.on_acquire(0, "tok", 1.0, hold)
    assert again is hold and hold.count == 3 and hold.fencing_token == 7
    assert not core.on_release(2, hold) and hold.count == 2
    assert core.on_release(1, hold) and hold.count == 0
    with pytest.raises(LockNotOwnedError, match="x: cannot release"):
        core.on_release(0, hold)


def test_extend_marks_lost_on_refusal() -> None:
    core = LockCore("x", ttl=3.0)
    hold = Hold("tok", 1, 3.0, 3.0)
    core.on_extend(1, hold, 10.0, 6.0)
    assert hold.ttl == 6.0 and hold.deadline == pytest.approx(16 - 0.062)
    with pytest.raises(LockNotOwnedError):
        core.on_extend(0, hold, 11.0, 6.0)
    assert hold.lost


def test_plans_carry_scripts_and_arguments() -> None:
    core = LockCore("n", ttl=1.5)
    hold = Hold("tok", 1, 0.0, 1.5)
    p = core.acquire_plan("tok")
    assert p.script is ACQUIRE and p.keys == ("lock:{n}", "lock:{n}:fence")
    assert p.args == ("tok", 1500, "0")
    r = core.release_plan(hold, "orig")
    assert r.script is RELEASE and r.args[3] == "orig tok lock:{n}"
    assert core.extend_plan(hold, 2.0).script is EXTEND
    assert RedlockCore("n", 3, ttl=1).fence_plan(99).script is FENCE_MAX


def test_round_reading_and_early_end() -> None:
    core = RedlockCore("x", 5, ttl=10)
    err = ConnectionError("down")
    replies = [10, 12, None, -3003, err]
    granted, fences, wait = core.read_acquire_round(replies)
    assert granted == [0, 1] and fences == [10, 12] and wait == pytest.approx(3.001)
    assert not core.round_done(replies)  # 2 granted, 1 pending: a quorum may still form
    assert core.round_done([1, 1, 1, None, None])
    assert core.round_done([-8, err, -8, None, None])  # 3 failures: no quorum possible
    assert core.refused(-8) and not core.refused(5) and not core.refused(err)
    assert core.count_ok([1, 0, None, err, 1]) == 2
    assert core.count_ok([5, 7, 4, None], wanted=5) == 2


def test_retry_schedule_is_jittered_and_bounded() -> None:
    core = RedlockCore("x", 3, ttl=10, retry_delay=0.2, retry_count=2)
    waits = [core.retry_wait(None) for _ in range(200)]
    assert all(0.1 <= w <= 0.2 for w in waits) and len(set(waits)) > 100
    assert core.retry_wait(0.05) <= 0.05
    assert not core.rounds_exhausted(2) and core.rounds_exhausted(3)
    assert not RedlockCore("x", 3, ttl=1).rounds_exhausted(10**6)


def test_renew_period_is_a_third_of_the_ttl() -> None:
    core = LockCore("x", ttl=9.0)
    assert core.renew_period(Hold("t", 1, 0.0, 9.0)) == 3.0


def test_node_timeout_small_against_ttl() -> None:
    assert default_node_timeout(10) == 0.1
    assert default_node_timeout(1) == 0.02
    assert default_node_timeout(1000) == 0.1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": "1"}, "ttl"),
        ({"ttl": 1, "drift_factor": 0.7}, "drift_factor"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LockCore("x", **kwargs)


def test_redlock_arguments_checked() -> None:
    with pytest.raises(ValueError, match="clients"):
        RedlockCore("x", 0, ttl=1)
    with pytest.raises(ValueError, match="retry_delay"):
        RedlockCore("x", 3, ttl=1, retry_delay=-1)
    with pytest.raises(ValueError, match="retry_count"):
        RedlockCore("x", 3, ttl=1, retry_count=-1)
    assert check_timeout(None) is None and check_timeout(0) == 0.0
    with pytest.raises(ValueError, match="timeout"):
        check_timeout(float("nan"))


def test_lua_files_have_headers() -> None:
    for script in (ACQUIRE, RELEASE, EXTEND, FENCE_MAX):
        head = script.body.split("\n\n")[0]
        assert "KEYS[1]" in head and "ARGV[1]" in head and "returns" in head, script.name
        assert len(script.sha) == 40
