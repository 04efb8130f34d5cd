"""Authority through the engine, both twins: white and black lists, empty origins."""

from __future__ import annotations

import pytest

from guard import AuthorityBlocked, Guard, ManualClock, context
from tests.conftest import TWINS
from tests.guard.twins import use_twin


@pytest.fixture(params=TWINS)
def g(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Guard:
    use_twin(monkeypatch, "guard.authority.check", request.param)
    engine = Guard(clock=ManualClock(0))
    engine.load_rules(
        {
            "authority": [
                {"resource": "admin", "strategy": "white", "origins": ["ops", "backoffice"]},
                {"resource": "public", "strategy": "black", "origins": ["abuser"]},
            ]
        }
    )
    check = engine._core.plans["admin"].checks[0]
    assert type(check).__module__ == f"guard.authority._check_{request.param}"
    return engine


def passes(g: Guard, resource: str, origin: str | None) -> bool:
    try:
        g.enter(resource, origin=origin).exit()
    except AuthorityBlocked as exc:
        assert exc.reason == "authority"
        assert exc.resource == resource
        assert exc.retry_after is None
        assert exc.rule.resource == resource
        return False
    return True


def test_white_list_admits_only_named_origins(g: Guard) -> None:
    assert passes(g, "admin", "ops")
    assert passes(g, "admin", "backoffice")
    assert not passes(g, "admin", "guest")
    assert not passes(g, "admin", "OPS")  # case-sensitive


def test_white_list_blocks_missing_origin(g: Guard) -> None:
    # Departure from Sentinel: omitting the origin must not bypass a white list.
    assert not passes(g, "admin", None)
    assert not passes(g, "admin", "")


def test_black_list_blocks_named_and_admits_the_rest(g: Guard) -> None:
    assert not passes(g, "public", "abuser")
    assert passes(g, "public", "Abuser")
    assert passes(g, "public", "anyone")
    assert passes(g, "public", None)
    assert passes(g, "public", "")


def test_unlisted_resource_is_open(g: Guard) -> None:
    assert passes(g, "other", None)


def test_origin_from_context(g: Guard) -> None:
    with context("entrance", origin="ops"):
        assert passes(g, "admin", None)
    with context("entrance", origin="abuser"):
        assert not passes(g, "public", None)


def test_every_rule_of_a_resource_must_admit(g: Guard) -> None:
    g.load_rules(
        {
            "authority": [
                {"resource": "x", "strategy": "white", "origins": ["a", "b"]},
                {"resource": "x", "strategy": "black", "origins": ["b"]},
            ]
        }
    )
    assert passes(g, "x", "a")
    assert not passes(g, "x", "b")
    assert not passes(g, "x", "c")


def test_authority_runs_before_flow_and_books_a_block(g: Guard) -> None:
    g.load_rules(
        {
            "authority": [{"resource": "x", "strategy": "black", "origins": ["bad"]}],
            "flow": [{"resource": "x", "count": 0}],
        }
    )
    with pytest.raises(AuthorityBlocked):
        g.enter("x", origin="bad")
    assert g.stats("x").total_block == 1


def test_decorator_origin_callable(g: Guard) -> None:
    @g.guard("admin", origin=lambda user: user)
    def act(user: str) -> str:
        return user

    assert act("ops") == "ops"
    with pytest.raises(AuthorityBlocked):
        act("guest")
