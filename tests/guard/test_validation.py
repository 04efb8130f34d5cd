"""The shared field checks: number coercion, the mapping builder, key suggestions, plain()."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from guard.errors import RuleError
from guard.flow.rule import ClusterConfig, FlowGrade
from guard.validation import MISSING, FieldChecker, build, coerce_number, plain, unknown_key


@pytest.mark.parametrize(
    ("value", "integer", "expected"),
    [
        (3, False, (3.0, None)),
        (2.5, False, (2.5, None)),
        (Fraction(1, 4), False, (0.25, None)),
        (Decimal("1.5"), False, (1.5, None)),
        (4.0, True, (4, None)),
        (10**40, True, (10**40, None)),
        (True, False, (None, "must be a number, got True")),
        (False, True, (None, "must be an integer, got False")),
        ("1", False, (None, "must be a number, got '1'")),
        (None, True, (None, "must be an integer, got None")),
        (4.5, True, (None, "must be an integer, got 4.5")),
        (float("nan"), True, (None, "must be a finite number")),
        (float("-inf"), False, (None, "must be a finite number")),
        (10**400, False, (None, "must be a finite number")),
    ],
)
def test_coerce_number(value: Any, integer: bool, expected: tuple[Any, Any]) -> None:
    result = coerce_number(value, integer=integer)
    assert result == expected
    if result[0] is not None:
        assert type(result[0]) is (int if integer else float)


def test_unknown_key_suggests_only_close_names() -> None:
    assert unknown_key("contol", ["control", "count"]) == (
        "contol: unknown key (did you mean control?)"
    )
    assert unknown_key("foo", ["control", "count"]) == "foo: unknown key"
    assert unknown_key(3, ["count"]) == "3: unknown key"
    assert unknown_key("flws", ["flow"], "section") == "flws: unknown section (did you mean flow?)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    name: str
    size: int = 1

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.string("name")
        c.above("size", c.number("size", integer=True), 0)
        c.done()


def test_build_reports_field_errors_then_unknown_and_missing_keys() -> None:
    assert build(Sample, {"name": "a", "size": 2.0}) == Sample(name="a", size=2)
    with pytest.raises(RuleError) as info:
        build(Sample, {"size": 0, "nmae": "a"})
    assert info.value.errors == [
        "name: required",
        "size: must be > 0",
        "nmae: unknown key (did you mean name?)",
    ]


def test_missing_is_only_a_placeholder() -> None:
    assert repr(MISSING) == "<required>"
    with pytest.raises(RuleError, match="name: required"):
        Sample(name=MISSING)


def test_plain_turns_values_into_file_shapes() -> None:
    assert plain(FlowGrade.QPS) == "qps" and type(plain(FlowGrade.QPS)) is str
    assert plain(("a", FlowGrade.CONCURRENCY)) == ["a", "concurrency"]
    assert plain(ClusterConfig(url="redis://h"))["threshold"] == "global"
    assert plain(None) is None and plain(2.5) == 2.5
