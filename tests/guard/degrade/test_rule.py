"""DegradeRule: defaults, per-strategy threshold ranges, and every validation message."""

from __future__ import annotations

import dataclasses

import pytest

from guard.degrade.rule import DegradeRule, DegradeStrategy
from guard.errors import RuleError

BASE: dict[str, object] = {
    "resource": "pay",
    "threshold": 0.5,
    "max_rt_ms": 200,
    "recovery_sec": 10,
}


def errors_of(**changes: object) -> list[str]:
    with pytest.raises(RuleError) as info:
        DegradeRule(**{**BASE, **changes})  # type: ignore[arg-type]
    return info.value.errors


def test_defaults_follow_the_spec() -> None:
    rule = DegradeRule(**BASE)  # type: ignore[arg-type]
    assert rule.strategy is DegradeStrategy.SLOW_RATIO
    assert rule.threshold == 0.5
    assert rule.max_rt_ms == 200 and type(rule.max_rt_ms) is int
    assert rule.recovery_sec == 10.0 and type(rule.recovery_sec) is float
    assert rule.min_requests == 5
    assert rule.stat_interval_ms == 1000


def test_enum_words() -> None:
    assert [m.value for m in DegradeStrategy] == ["slow_ratio", "error_ratio", "error_count"]


@pytest.mark.parametrize("strategy", ["slow_ratio", "error_ratio"])
def test_ratio_thresholds_lie_in_zero_one(strategy: str) -> None:
    for ok in (0, 0.25, 1):
        assert DegradeRule(**{**BASE, "strategy": strategy, "threshold": ok}).threshold == ok  # type: ignore[arg-type]
    assert errors_of(strategy=strategy, threshold=1.01) == ["threshold: must be <= 1"]
    assert errors_of(strategy=strategy, threshold=-0.1) == ["threshold: must be >= 0"]


def test_error_count_threshold_is_any_count() -> None:
    rule = DegradeRule(resource="r", strategy="error_count", threshold=20, recovery_sec=1.5)  # type: ignore[arg-type]
    assert rule.strategy is DegradeStrategy.ERROR_COUNT
    assert rule.threshold == 20.0 and type(rule.threshold) is float
    assert rule.max_rt_ms is None
    assert errors_of(strategy="error_count", threshold=-1) == ["threshold: must be >= 0"]


def test_max_rt_ms_required_only_for_slow_ratio() -> None:
    assert errors_of(max_rt_ms=None) == ["max_rt_ms: required when strategy is slow_ratio"]
    rule = DegradeRule(resource="r", strategy="error_ratio", threshold=0.3, recovery_sec=5)  # type: ignore[arg-type]
    assert rule.max_rt_ms is None
    # Given anyway, it is still checked.
    assert errors_of(strategy="error_ratio", max_rt_ms=-1) == ["max_rt_ms: must be >= 0"]
    assert DegradeRule(**{**BASE, "max_rt_ms": 0}).max_rt_ms == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resource", "", "resource: must be a non-empty string"),
        (
            "strategy",
            "exception_ratio",
            "strategy: must be one of slow_ratio, error_ratio, error_count",
        ),
        ("threshold", "half", "threshold: must be a number, got 'half'"),
        ("threshold", False, "threshold: must be a number, got False"),
        ("max_rt_ms", 2.5, "max_rt_ms: must be an integer, got 2.5"),
        ("recovery_sec", 0, "recovery_sec: must be > 0"),
        ("recovery_sec", -3, "recovery_sec: must be > 0"),
        ("min_requests", 0, "min_requests: must be > 0"),
        ("min_requests", 1.5, "min_requests: must be an integer, got 1.5"),
        ("stat_interval_ms", 0, "stat_interval_ms: must be > 0"),
        ("stat_interval_ms", True, "stat_interval_ms: must be an integer, got True"),
    ],
)
def test_invalid_field_is_named(field: str, value: object, message: str) -> None:
    assert errors_of(**{field: value}) == [message]


def test_every_problem_is_collected() -> None:
    assert errors_of(
        resource=None, threshold=3, max_rt_ms=None, recovery_sec=0, min_requests=-1
    ) == [
        "resource: must be a non-empty string, got None",
        "threshold: must be <= 1",
        "max_rt_ms: required when strategy is slow_ratio",
        "recovery_sec: must be > 0",
        "min_requests: must be > 0",
    ]


def test_frozen_equal_and_hashable() -> None:
    rule = DegradeRule(**BASE)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.threshold = 0.1  # type: ignore[misc]
    twin = DegradeRule(**{**BASE, "recovery_sec": 10.0, "strategy": DegradeStrategy.SLOW_RATIO})  # type: ignore[arg-type]
    assert rule == twin and hash(rule) == hash(twin)
    assert rule != DegradeRule(**{**BASE, "recovery_sec": 11})  # type: ignore[arg-type]


def test_to_dict_round_trips() -> None:
    rule = DegradeRule(resource="r", strategy="error_count", threshold=3, recovery_sec=2)  # type: ignore[arg-type]
    data = rule.to_dict()
    assert data == {
        "resource": "r",
        "strategy": "error_count",
        "threshold": 3.0,
        "max_rt_ms": None,
        "recovery_sec": 2.0,
        "min_requests": 5,
        "stat_interval_ms": 1000,
    }
    assert DegradeRule(**data) == rule
