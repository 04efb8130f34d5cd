"""The BlockError family and RuleError: fields, messages, pickling."""

from __future__ import annotations

import copy
import pickle

import pytest

from guard import (
    AuthorityBlocked,
    BlockError,
    DegradeBlocked,
    FlowBlocked,
    FlowRule,
    Guard,
    ManualClock,
    ParamFlowBlocked,
    RuleError,
    SystemBlocked,
)

REASONS = {
    FlowBlocked: "flow",
    ParamFlowBlocked: "param_flow",
    DegradeBlocked: "degrade",
    AuthorityBlocked: "authority",
    SystemBlocked: "system",
}


@pytest.mark.parametrize(("cls", "reason"), REASONS.items())
def test_each_block_error_names_its_reason(cls: type[BlockError], reason: str) -> None:
    rule = object()
    err = cls("res", rule, 1.25)
    assert isinstance(err, BlockError) and isinstance(err, Exception)
    assert (err.resource, err.reason, err.rule, err.retry_after) == ("res", reason, rule, 1.25)
    assert str(err) == f"res: blocked by {reason} rule (retry after 1.250s)"
    bare = cls("res")
    assert (bare.rule, bare.retry_after) == (None, None)
    assert str(bare) == f"res: blocked by {reason} rule"


@pytest.mark.parametrize("cls", list(REASONS))
def test_block_errors_pickle_and_copy(cls: type[BlockError]) -> None:
    rule = FlowRule(resource="res", count=3)
    err = cls("res", rule, 0.5)
    for clone in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(clone) is cls
        assert (clone.resource, clone.rule, clone.retry_after) == ("res", rule, 0.5)
        assert str(clone) == str(err)


def test_a_refusal_from_the_engine_pickles_with_its_rule() -> None:
    g = Guard(clock=ManualClock(0))
    g.load_rules({"flow": [{"resource": "r", "count": 0}]})
    with pytest.raises(FlowBlocked) as info:
        g.enter("r")
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.rule == g.rules.flow[0]
    assert clone.resource == "r" and clone.reason == "flow"
    assert "r: blocked by flow rule" in str(clone)


def test_rule_error_lists_every_problem() -> None:
    one = RuleError("flow[0].count: must be >= 0")
    assert isinstance(one, ValueError)
    assert one.errors == ["flow[0].count: must be >= 0"]
    assert str(one) == "flow[0].count: must be >= 0"
    many = RuleError(["flow[0].count: must be >= 0", "bogus: unknown section"])
    assert many.errors == ["flow[0].count: must be >= 0", "bogus: unknown section"]
    assert str(many).splitlines() == [
        "2 rule errors:",
        "  flow[0].count: must be >= 0",
        "  bogus: unknown section",
    ]
