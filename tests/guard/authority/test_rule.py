"""AuthorityRule: origins list handling and validation messages."""

from __future__ import annotations

import pytest

from guard.authority.rule import AuthorityRule, AuthorityStrategy
from guard.errors import RuleError


def errors_of(**kwargs: object) -> list[str]:
    with pytest.raises(RuleError) as info:
        AuthorityRule(**kwargs)  # type: ignore[arg-type]
    return info.value.errors


def test_list_is_stored_as_tuple_and_rule_is_hashable() -> None:
    rule = AuthorityRule(resource="admin.api", origins=["ops", "backoffice"])  # type: ignore[arg-type]
    assert rule.origins == ("ops", "backoffice")
    assert rule.strategy is AuthorityStrategy.WHITE
    twin = AuthorityRule(resource="admin.api", strategy="white", origins=("ops", "backoffice"))  # type: ignore[arg-type]
    assert rule == twin and hash(rule) == hash(twin)


def test_black_word() -> None:
    rule = AuthorityRule(resource="r", strategy="black", origins=["bot"])  # type: ignore[arg-type]
    assert rule.strategy is AuthorityStrategy.BLACK and rule.strategy == "black"
    assert [m.value for m in AuthorityStrategy] == ["white", "black"]


def test_origins_are_case_sensitive_values() -> None:
    rule = AuthorityRule(resource="r", origins=["Ops", "ops"])  # type: ignore[arg-type]
    assert rule.origins == ("Ops", "ops")


@pytest.mark.parametrize(
    ("origins", "messages"),
    [
        ([], ["origins: must not be empty"]),
        ("ops", ["origins: must be a list of origin names"]),
        ({"ops": 1}, ["origins: must be a list of origin names"]),
        (None, ["origins: must be a list of origin names"]),
        (
            ["ops", "", 3],
            [
                "origins[1]: must be a non-empty string",
                "origins[2]: must be a non-empty string, got 3",
            ],
        ),
    ],
)
def test_invalid_origins(origins: object, messages: list[str]) -> None:
    assert errors_of(resource="r", origins=origins) == messages


def test_other_fields() -> None:
    assert errors_of(resource="", strategy="grey", origins=["a"]) == [
        "resource: must be a non-empty string",
        "strategy: must be one of white, black",
    ]


def test_to_dict_round_trips() -> None:
    rule = AuthorityRule(resource="r", strategy="black", origins=["a", "b"])  # type: ignore[arg-type]
    assert rule.to_dict() == {"resource": "r", "strategy": "black", "origins": ["a", "b"]}
    assert AuthorityRule(**rule.to_dict()) == rule
