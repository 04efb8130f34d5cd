"""FlowRule and ClusterConfig: defaults, normalisation, and every validation message."""

from __future__ import annotations

import dataclasses
import json

import pytest

from guard.errors import RuleError
from guard.flow.rule import (
    ClusterConfig,
    ClusterMode,
    ClusterThreshold,
    ControlBehavior,
    FlowGrade,
    FlowRule,
    FlowStrategy,
)


def errors_of(**kwargs: object) -> list[str]:
    with pytest.raises(RuleError) as info:
        FlowRule(**kwargs)  # type: ignore[arg-type]
    return info.value.errors


def test_defaults_follow_the_spec() -> None:
    rule = FlowRule(resource="orders.create", count=100)
    assert rule.grade is FlowGrade.QPS
    assert rule.count == 100.0 and type(rule.count) is float
    assert rule.limit_app == "default"
    assert rule.strategy is FlowStrategy.DIRECT
    assert rule.ref_resource is None
    assert rule.control is ControlBehavior.REJECT
    assert rule.warm_up_sec == 10.0 and type(rule.warm_up_sec) is float
    assert rule.cold_factor == 3 and type(rule.cold_factor) is int
    assert rule.max_queue_ms == 500
    assert rule.cluster is None


def test_choice_words_become_enums_equal_to_their_words() -> None:
    rule = FlowRule(
        resource="r",
        count=1,
        grade="qps",  # type: ignore[arg-type]
        strategy="relate",  # type: ignore[arg-type]
        ref_resource="other",
        control="warm_up_rate_limiter",  # type: ignore[arg-type]
    )
    assert rule.grade is FlowGrade.QPS and rule.grade == "qps"
    assert rule.strategy is FlowStrategy.RELATE
    assert rule.control is ControlBehavior.WARM_UP_RATE_LIMITER
    assert rule == FlowRule(
        resource="r",
        count=1.0,
        grade=FlowGrade.QPS,
        strategy=FlowStrategy.RELATE,
        ref_resource="other",
        control=ControlBehavior.WARM_UP_RATE_LIMITER,
    )


def test_enum_words() -> None:
    assert [m.value for m in FlowGrade] == ["qps", "concurrency"]
    assert [m.value for m in FlowStrategy] == ["direct", "relate", "chain"]
    assert [m.value for m in ControlBehavior] == [
        "reject",
        "warm_up",
        "rate_limiter",
        "warm_up_rate_limiter",
    ]
    assert ClusterThreshold.GLOBAL == "global" and ClusterThreshold.AVG_LOCAL == "avg_local"
    assert ClusterMode.REDIS == "redis"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("grade", "QPS", "grade: must be one of qps, concurrency"),
        ("grade", 1, "grade: must be one of qps, concurrency"),
        ("strategy", "both", "strategy: must be one of direct, relate, chain"),
        (
            "control",
            "throttle",
            "control: must be one of reject, warm_up, rate_limiter, warm_up_rate_limiter",
        ),
        ("count", -1, "count: must be >= 0"),
        ("count", -0.5, "count: must be >= 0"),
        ("count", True, "count: must be a number, got True"),
        ("count", "10", "count: must be a number, got '10'"),
        ("count", None, "count: must be a number, got None"),
        ("count", float("nan"), "count: must be a finite number"),
        ("count", float("inf"), "count: must be a finite number"),
        ("resource", "", "resource: must be a non-empty string"),
        ("resource", "   ", "resource: must be a non-empty string"),
        ("resource", 5, "resource: must be a non-empty string, got 5"),
        ("resource", True, "resource: must be a non-empty string, got True"),
        ("limit_app", "", "limit_app: must be a non-empty string"),
        ("ref_resource", "", "ref_resource: must be a non-empty string"),
        ("cold_factor", 1, "cold_factor: must be > 1"),
        ("cold_factor", 2.5, "cold_factor: must be an integer, got 2.5"),
        ("warm_up_sec", "10", "warm_up_sec: must be a number, got '10'"),
        ("max_queue_ms", 1.5, "max_queue_ms: must be an integer, got 1.5"),
        ("cluster", "redis://x", "cluster: must be a mapping"),
    ],
)
def test_invalid_field_is_named(field: str, value: object, message: str) -> None:
    kwargs: dict[str, object] = {"resource": "r", "count": 1, field: value}
    assert errors_of(**kwargs) == [message]


def test_ints_for_int_fields_accept_integral_floats() -> None:
    rule = FlowRule(resource="r", count=1, cold_factor=4.0, max_queue_ms=250.0)  # type: ignore[arg-type]
    assert rule.cold_factor == 4 and type(rule.cold_factor) is int
    assert rule.max_queue_ms == 250 and type(rule.max_queue_ms) is int


def test_zero_count_is_valid() -> None:
    assert FlowRule(resource="r", count=0).count == 0.0


@pytest.mark.parametrize("strategy", ["relate", "chain"])
def test_ref_resource_required_for_relate_and_chain(strategy: str) -> None:
    assert errors_of(resource="r", count=1, strategy=strategy) == [
        f"ref_resource: required when strategy is {strategy}"
    ]
    assert FlowRule(resource="r", count=1, strategy=strategy, ref_resource="x").ref_resource == "x"  # type: ignore[arg-type]


def test_concurrency_grade_only_allows_reject() -> None:
    rule = FlowRule(resource="r", grade="concurrency", count=3)  # type: ignore[arg-type]
    assert rule.grade is FlowGrade.CONCURRENCY
    for control in ("warm_up", "rate_limiter", "warm_up_rate_limiter"):
        assert errors_of(resource="r", grade="concurrency", count=3, control=control) == [
            "control: must be reject when grade is concurrency"
        ]


@pytest.mark.parametrize("control", ["warm_up", "warm_up_rate_limiter"])
def test_warm_up_sec_must_be_positive_for_warm_up(control: str) -> None:
    assert errors_of(resource="r", count=1, control=control, warm_up_sec=0) == [
        "warm_up_sec: must be > 0"
    ]
    # Unused by other controls, so not range-checked there (as Sentinel).
    assert FlowRule(resource="r", count=1, warm_up_sec=0).warm_up_sec == 0.0


@pytest.mark.parametrize("control", ["rate_limiter", "warm_up_rate_limiter"])
def test_max_queue_ms_must_be_positive_for_rate_limiters(control: str) -> None:
    assert errors_of(resource="r", count=1, control=control, max_queue_ms=0) == [
        "max_queue_ms: must be > 0"
    ]
    assert FlowRule(resource="r", count=1, max_queue_ms=0).max_queue_ms == 0


def test_every_problem_is_collected_in_field_order() -> None:
    assert errors_of(
        resource="",
        grade="concurrency",
        count=-1,
        strategy="chain",
        control="warm_up",
        warm_up_sec=-1,
        cold_factor=0,
    ) == [
        "resource: must be a non-empty string",
        "count: must be >= 0",
        "ref_resource: required when strategy is chain",
        "control: must be reject when grade is concurrency",
        "warm_up_sec: must be > 0",
        "cold_factor: must be > 1",
    ]


def test_rule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="count: must be >= 0"):
        FlowRule(resource="r", count=-1)


def test_frozen_slotted_and_hashable() -> None:
    rule = FlowRule(resource="r", count=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.count = 6  # type: ignore[misc]
    assert not hasattr(rule, "__dict__")
    same = FlowRule(resource="r", count=5.0, grade="qps")  # type: ignore[arg-type]
    assert rule == same and hash(rule) == hash(same)
    assert len({rule, same, FlowRule(resource="r", count=6)}) == 2


def test_cluster_mapping_becomes_config_with_defaults() -> None:
    rule = FlowRule(resource="r", count=100, cluster={"url": "redis://127.0.0.1:6380/0"})  # type: ignore[arg-type]
    assert rule.cluster == ClusterConfig(url="redis://127.0.0.1:6380/0")
    assert rule.cluster is not None
    assert rule.cluster.mode is ClusterMode.REDIS
    assert rule.cluster.threshold is ClusterThreshold.GLOBAL
    assert rule.cluster.fallback_to_local is True
    assert rule.cluster.timeout_ms == 50
    hash(rule)


def test_cluster_problems_are_located_under_cluster() -> None:
    assert errors_of(
        resource="r",
        count=1,
        cluster={
            "mode": "zookeeper",
            "url": "http://x",
            "threshold": "local",
            "fallback_to_local": "yes",
            "timeout_ms": 0,
            "flow_id": 3,
        },
    ) == [
        "cluster.mode: must be one of redis",
        "cluster.url: must be a redis://, rediss:// or unix:// URL",
        "cluster.threshold: must be one of global, avg_local",
        "cluster.fallback_to_local: must be true or false, got 'yes'",
        "cluster.timeout_ms: must be > 0",
        "cluster.flow_id: unknown key",
    ]
    assert errors_of(resource="r", count=1, cluster={}) == ["cluster.url: required"]


def test_cluster_needs_qps_grade() -> None:
    assert errors_of(resource="r", grade="concurrency", count=1, cluster={"url": "redis://h"}) == [
        "cluster: requires grade qps"
    ]


def test_cluster_config_direct() -> None:
    config = ClusterConfig(url="unix:///tmp/redis.sock", threshold="avg_local", timeout_ms=20)  # type: ignore[arg-type]
    assert config.threshold is ClusterThreshold.AVG_LOCAL
    with pytest.raises(RuleError) as info:
        ClusterConfig(url="", timeout_ms=-5)
    assert info.value.errors == ["url: must be a non-empty string", "timeout_ms: must be > 0"]
    assert FlowRule(resource="r", count=1, cluster=config).cluster is config


def test_to_dict_is_the_file_shape_and_feeds_the_constructor() -> None:
    rule = FlowRule(
        resource="r",
        count=7,
        control="warm_up",  # type: ignore[arg-type]
        cluster={"url": "rediss://h:1", "threshold": "avg_local"},  # type: ignore[arg-type]
    )
    data = rule.to_dict()
    assert data == {
        "resource": "r",
        "grade": "qps",
        "count": 7.0,
        "limit_app": "default",
        "strategy": "direct",
        "ref_resource": None,
        "control": "warm_up",
        "warm_up_sec": 10.0,
        "cold_factor": 3,
        "max_queue_ms": 500,
        "cluster": {
            "mode": "redis",
            "url": "rediss://h:1",
            "threshold": "avg_local",
            "fallback_to_local": True,
            "timeout_ms": 50,
            "lease_ms": 100,
        },
    }
    assert type(data["grade"]) is str
    assert FlowRule(**json.loads(json.dumps(data))) == rule
