"""ParamFlowRule: items storage, ranges and validation messages."""

from __future__ import annotations

import json

import pytest

from guard.errors import RuleError
from guard.param_flow.rule import ParamFlowControl, ParamFlowRule


def errors_of(**changes: object) -> list[str]:
    kwargs: dict[str, object] = {"resource": "items.get", "param_index": 0, "count": 10}
    with pytest.raises(RuleError) as info:
        ParamFlowRule(**{**kwargs, **changes})  # type: ignore[arg-type]
    return info.value.errors


def test_defaults_follow_the_spec() -> None:
    rule = ParamFlowRule(resource="items.get", param_index=0, count=10)
    assert rule.count == 10.0 and type(rule.count) is float
    assert rule.duration_sec == 1
    assert rule.burst == 0
    assert rule.control is ParamFlowControl.REJECT
    assert rule.max_queue_ms == 0
    assert rule.items == ()
    assert rule.items_map == {}
    assert [m.value for m in ParamFlowControl] == ["reject", "rate_limiter"]


def test_items_mapping_is_stored_as_ordered_pairs() -> None:
    rule = ParamFlowRule(
        resource="r",
        param_index=-1,
        count=5,
        items={"hot-sku": 100, 42: 7, 2.5: 1, False: 0},  # type: ignore[arg-type]
    )
    assert rule.items == (("hot-sku", 100.0), (42, 7.0), (2.5, 1.0), (False, 0.0))
    assert rule.items_map == {"hot-sku": 100.0, 42: 7.0, 2.5: 1.0, False: 0.0}
    assert rule.param_index == -1
    hash(rule)
    twin = ParamFlowRule(resource="r", param_index=-1, count=5.0, items=rule.items)
    assert twin == rule and hash(twin) == hash(rule)
    # Order is part of the value: a reordered mapping is a different (but valid) rule.
    other = ParamFlowRule(resource="r", param_index=-1, count=5, items={42: 7, "hot-sku": 100})  # type: ignore[arg-type]
    assert other.items_map == {"hot-sku": 100.0, 42: 7.0}


def test_items_given_as_pairs() -> None:
    rule = ParamFlowRule(resource="r", param_index=0, count=1, items=[["a", 3], ("b", 4)])  # type: ignore[arg-type]
    assert rule.items == (("a", 3.0), ("b", 4.0))


@pytest.mark.parametrize(
    ("items", "messages"),
    [
        ({"a": -1}, ["items['a']: must be >= 0"]),
        (
            {"a": "x", 2: True},
            ["items['a']: must be a number, got 'x'", "items[2]: must be a number, got True"],
        ),
        ({None: 1}, ["items[None]: value must be a string, a finite number or a boolean"]),
        ({(1, 2): 1}, ["items[(1, 2)]: value must be a string, a finite number or a boolean"]),
        ({float("nan"): 1}, ["items[nan]: value must be a string, a finite number or a boolean"]),
        ([("a", 1), ("a", 2)], ["items['a']: duplicate value"]),
        ([(1, 1), (True, 2)], ["items[True]: duplicate value"]),
        ("hot", ["items: must be a mapping of argument value to count"]),
        ([1, 2], ["items: must be a mapping of argument value to count"]),
    ],
)
def test_invalid_items(items: object, messages: list[str]) -> None:
    assert errors_of(items=items) == messages


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resource", "", "resource: must be a non-empty string"),
        ("param_index", 1.5, "param_index: must be an integer, got 1.5"),
        ("param_index", "0", "param_index: must be an integer, got '0'"),
        ("count", -1, "count: must be >= 0"),
        ("duration_sec", 0, "duration_sec: must be > 0"),
        ("duration_sec", 0.5, "duration_sec: must be an integer, got 0.5"),
        ("burst", -1, "burst: must be >= 0"),
        ("control", "warm_up", "control: must be one of reject, rate_limiter"),
        ("max_queue_ms", -1, "max_queue_ms: must be >= 0"),
    ],
)
def test_invalid_field_is_named(field: str, value: object, message: str) -> None:
    assert errors_of(**{field: value}) == [message]


def test_rate_limiter_word_and_zero_queue() -> None:
    rule = ParamFlowRule(resource="r", param_index=1, count=0, control="rate_limiter")  # type: ignore[arg-type]
    assert rule.control is ParamFlowControl.RATE_LIMITER
    assert rule.count == 0.0


def test_to_dict_round_trips_through_json() -> None:
    rule = ParamFlowRule(resource="r", param_index=0, count=3, burst=2, items={"x": 9})  # type: ignore[arg-type]
    data = rule.to_dict()
    assert data == {
        "resource": "r",
        "param_index": 0,
        "count": 3.0,
        "duration_sec": 1,
        "burst": 2,
        "control": "reject",
        "max_queue_ms": 0,
        "items": {"x": 9.0},
    }
    assert ParamFlowRule(**json.loads(json.dumps(data))) == rule
