"""SystemRule: optional thresholds, ranges and types."""

from __future__ import annotations

import pytest

from guard.errors import RuleError
from guard.system.rule import SystemRule


def test_empty_rule_is_allowed_and_protects_nothing() -> None:
    rule = SystemRule()
    assert rule.is_empty
    assert rule.to_dict() == {
        "max_load": None,
        "max_cpu": None,
        "max_avg_rt_ms": None,
        "max_concurrency": None,
        "max_qps": None,
    }


def test_values_are_normalised() -> None:
    rule = SystemRule(
        max_load=8, max_cpu=0.9, max_avg_rt_ms=200, max_concurrency=1000.0, max_qps=5000
    )  # type: ignore[arg-type]
    assert not rule.is_empty
    assert type(rule.max_load) is float and rule.max_load == 8.0
    assert type(rule.max_avg_rt_ms) is float
    assert type(rule.max_concurrency) is int and rule.max_concurrency == 1000
    assert type(rule.max_qps) is float
    assert SystemRule(**rule.to_dict()) == rule


def test_zero_is_a_real_threshold() -> None:
    rule = SystemRule(max_qps=0, max_cpu=0, max_concurrency=0)
    assert rule.max_qps == 0.0 and rule.max_cpu == 0.0 and rule.max_concurrency == 0
    assert not rule.is_empty


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_load", -1, "max_load: must be >= 0"),
        ("max_cpu", 1.5, "max_cpu: must be <= 1"),
        ("max_cpu", -0.1, "max_cpu: must be >= 0"),
        ("max_avg_rt_ms", -5, "max_avg_rt_ms: must be >= 0"),
        ("max_concurrency", 10.5, "max_concurrency: must be an integer, got 10.5"),
        ("max_concurrency", -1, "max_concurrency: must be >= 0"),
        ("max_qps", True, "max_qps: must be a number, got True"),
        ("max_qps", "100", "max_qps: must be a number, got '100'"),
    ],
)
def test_invalid_field_is_named(field: str, value: object, message: str) -> None:
    with pytest.raises(RuleError) as info:
        SystemRule(**{field: value})  # type: ignore[arg-type]
    assert info.value.errors == [message]


def test_max_cpu_bounds_are_inclusive() -> None:
    assert SystemRule(max_cpu=1).max_cpu == 1.0
    assert SystemRule(max_cpu=0).max_cpu == 0.0


def test_every_problem_is_collected_and_rule_is_hashable() -> None:
    with pytest.raises(RuleError) as info:
        SystemRule(max_load=-1, max_cpu=2, max_qps=-3)
    assert info.value.errors == [
        "max_load: must be >= 0",
        "max_cpu: must be <= 1",
        "max_qps: must be >= 0",
    ]
    assert hash(SystemRule(max_qps=10)) == hash(SystemRule(max_qps=10.0))
