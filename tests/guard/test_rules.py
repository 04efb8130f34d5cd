"""RuleSet and the loader: sources, round trips, located errors, equality."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.authority.rule import AuthorityRule, AuthorityStrategy
from guard.degrade.rule import DegradeRule, DegradeStrategy
from guard.errors import RuleError
from guard.flow.rule import ClusterConfig, ClusterThreshold, ControlBehavior, FlowRule
from guard.param_flow.rule import ParamFlowRule
from guard.rules import KNOWN_SECTIONS, RuleSet, parse_config, parse_rules
from guard.system.rule import SystemRule

SPEC_EXAMPLE = Path(__file__).parent / "data" / "spec_example.yaml"

# The SPEC example, built by hand: what the file must load to.
EXPECTED = RuleSet(
    flow=[FlowRule(resource="orders.create", count=100)],
    degrade=[
        DegradeRule(resource="payments.charge", threshold=0.5, max_rt_ms=200, recovery_sec=10)
    ],
    authority=[AuthorityRule(resource="admin.api", origins=("ops", "backoffice"))],
    system=SystemRule(
        max_load=8.0, max_cpu=0.9, max_avg_rt_ms=200, max_concurrency=1000, max_qps=5000
    ),
    param_flow=[
        ParamFlowRule(resource="items.get", param_index=0, count=10, items={"hot-sku": 100})  # type: ignore[arg-type]
    ],
)


def errors_of(source: Any) -> list[str]:
    with pytest.raises(RuleError) as info:
        parse_rules(source)
    return info.value.errors


# --- sources -----------------------------------------------------------------------------


def test_spec_example_file_loads_by_path_and_str() -> None:
    assert parse_rules(SPEC_EXAMPLE) == EXPECTED
    assert parse_rules(str(SPEC_EXAMPLE)) == EXPECTED
    rules = parse_rules(SPEC_EXAMPLE)
    assert rules.degrade[0].strategy is DegradeStrategy.SLOW_RATIO
    assert rules.authority[0].strategy is AuthorityStrategy.WHITE
    assert rules.param_flow[0].items_map == {"hot-sku": 100.0}


def test_yaml_text_with_a_newline() -> None:
    assert parse_rules(SPEC_EXAMPLE.read_text()) == EXPECTED


def test_json_text_file_and_bytes(tmp_path: Path) -> None:
    text = json.dumps(EXPECTED.to_dict(), indent=2)
    assert parse_rules(text) == EXPECTED  # JSON text is YAML text
    json_file = tmp_path / "rules.json"
    json_file.write_text(text)
    assert parse_rules(json_file) == EXPECTED
    yaml_named = tmp_path / "rules.yaml"
    yaml_named.write_text(text)
    assert parse_rules(yaml_named) == EXPECTED  # JSON also loads as YAML
    one_line = json.dumps(EXPECTED.to_dict()).encode()
    assert b"\n" not in one_line
    assert parse_rules(one_line) == EXPECTED  # bytes are always document text


def test_json_suffix_is_case_insensitive_and_bom_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "RULES.JSON"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"flow": [{"resource": "a", "count": 1}]}).encode()
    )
    assert parse_rules(path) == RuleSet(flow=[FlowRule(resource="a", count=1)])


def test_mapping_and_ruleset_sources() -> None:
    assert parse_rules(EXPECTED.to_dict()) == EXPECTED
    assert parse_rules(EXPECTED) is EXPECTED
    assert RuleSet.from_mapping(EXPECTED.to_dict()) == EXPECTED


def test_mapping_may_hold_rule_objects() -> None:
    rule = FlowRule(resource="a", count=1)
    assert parse_rules({"flow": [rule, {"resource": "b", "count": 2}]}).flow == (
        rule,
        FlowRule(resource="b", count=2),
    )
    assert parse_rules({"system": SystemRule(max_qps=1)}).system == SystemRule(max_qps=1)


@pytest.mark.parametrize("text", ["", "\n", "# nothing here\n", "---\n", "{}\n"])
def test_empty_documents_are_empty_rule_sets(text: str, tmp_path: Path) -> None:
    if text:  # "" has no newline: it would name a file
        assert parse_rules(text) == RuleSet()
    assert parse_rules(text.encode()) == RuleSet()
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert parse_rules(path) == RuleSet()
    assert parse_rules(path).is_empty


def test_empty_sections_are_empty() -> None:
    rules = parse_rules("flow:\ndegrade: []\nsystem:\nauthority:\nparam_flow:\n")
    assert rules == RuleSet()
    assert rules.system is None


def test_other_source_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match="not int"):
        parse_rules(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_rules([{"flow": []}])  # type: ignore[arg-type]


# --- round trip, equality ----------------------------------------------------------------


FULL = RuleSet(
    flow=[
        FlowRule(resource="a", count=0),
        FlowRule(
            resource="b",
            count=12.5,
            limit_app="other",
            strategy="chain",  # type: ignore[arg-type]
            ref_resource="entrance",
            control=ControlBehavior.WARM_UP_RATE_LIMITER,
            warm_up_sec=2.5,
            cold_factor=4,
            max_queue_ms=20,
            cluster=ClusterConfig(
                url="redis://127.0.0.1:1/0",
                threshold=ClusterThreshold.AVG_LOCAL,
                fallback_to_local=False,
                timeout_ms=5,
            ),
        ),
        FlowRule(resource="c", grade="concurrency", count=3),  # type: ignore[arg-type]
    ],
    degrade=[
        DegradeRule(resource="d", strategy="error_count", threshold=2, recovery_sec=0.5),  # type: ignore[arg-type]
        DegradeRule(
            resource="d",
            strategy="error_ratio",  # type: ignore[arg-type]
            threshold=0.1,
            recovery_sec=3,
            min_requests=1,
            stat_interval_ms=250,
        ),
    ],
    authority=[AuthorityRule(resource="e", strategy="black", origins=["x"])],  # type: ignore[arg-type]
    system=SystemRule(max_cpu=0.5),
    param_flow=[
        ParamFlowRule(
            resource="f",
            param_index=-2,
            count=4,
            duration_sec=3,
            burst=1,
            control="rate_limiter",  # type: ignore[arg-type]
            max_queue_ms=100,
            items={"k": 1, "z": 0},  # type: ignore[arg-type]
        )
    ],
)


def test_to_dict_round_trips() -> None:
    data = FULL.to_dict()
    assert list(data) == list(KNOWN_SECTIONS)
    assert parse_rules(data) == FULL
    assert parse_rules(json.loads(json.dumps(data))) == FULL
    assert parse_rules(yaml.safe_dump(data)) == FULL
    assert data["flow"][1]["cluster"]["threshold"] == "avg_local"
    assert data["param_flow"][0]["items"] == {"k": 1.0, "z": 0.0}


def test_to_dict_is_plain_data() -> None:
    def check(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)
        else:
            assert value is None or type(value) in (str, int, float, bool), value

    check(FULL.to_dict())
    assert RuleSet().to_dict() == {
        "flow": [],
        "degrade": [],
        "authority": [],
        "system": None,
        "param_flow": [],
    }


def test_equal_rule_sets_are_equal_and_hash_alike() -> None:
    from_file = parse_rules(SPEC_EXAMPLE)
    again = parse_rules(SPEC_EXAMPLE.read_text())
    assert from_file == again == EXPECTED
    assert hash(from_file) == hash(again) == hash(EXPECTED)
    assert len({from_file, again, EXPECTED, FULL}) == 2
    changed = parse_rules(SPEC_EXAMPLE.read_text().replace("count: 100", "count: 101"))
    assert changed != from_file
    # The unchanged rules of a changed set still compare equal one by one.
    assert changed.degrade == from_file.degrade and changed.flow != from_file.flow


def test_rule_set_stores_lists_as_tuples_and_checks_types() -> None:
    rules = RuleSet(flow=[FlowRule(resource="a", count=1)], degrade=None)  # type: ignore[arg-type]
    assert isinstance(rules.flow, tuple) and rules.degrade == ()
    with pytest.raises(RuleError) as info:
        RuleSet(
            flow=[FlowRule(resource="a", count=1), {"resource": "b"}],  # type: ignore[list-item]
            authority="x",  # type: ignore[arg-type]
            system={"max_qps": 1},  # type: ignore[arg-type]
        )
    assert info.value.errors == [
        "flow[1]: must be a FlowRule, got {'resource': 'b'}",
        "authority: must be a list of AuthorityRule",
        "system: must be a SystemRule or None, got {'max_qps': 1}",
    ]


def test_is_empty() -> None:
    assert RuleSet().is_empty
    assert RuleSet(system=SystemRule()).is_empty
    assert not RuleSet(system=SystemRule(max_qps=1)).is_empty
    assert not EXPECTED.is_empty


# --- located errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "flow:\n- {resource: a, count: 1}\n- {resource: b, count: 1}\n"
            "- {resource: c, count: -1}\n",
            "flow[2].count: must be >= 0",
        ),
        ("flow:\n- {resource: a, count: 1, foo: 2}\n", "flow[0].foo: unknown key"),
        ("flow:\n- {resource: a, count: 1}\n- {count: 1}\n", "flow[1].resource: required"),
        ("degrade: {resource: a}\n", "degrade: must be a list"),
        ("degrade: nope\n", "degrade: must be a list"),
        ("system:\n  max_cpu: 1.5\n", "system.max_cpu: must be <= 1"),
        ("system: [1]\n", "system: must be a mapping"),
        ("system:\n  max_threads: 3\n", "system.max_threads: unknown key"),
        ("bogus: 1\n", "bogus: unknown section"),
        (
            "flow:\n- resource: a\n  count: 1\n  cluster: {url: 'redis://h', timeout_ms: 0}\n",
            "flow[0].cluster.timeout_ms: must be > 0",
        ),
        ("flow:\n- 3\n", "flow[0]: must be a mapping"),
        ("flow:\n- [resource, a]\n", "flow[0]: must be a mapping"),
        (
            "authority:\n- {resource: a, origins: [ok, '']}\n",
            "authority[0].origins[1]: must be a non-empty string",
        ),
        (
            "param_flow:\n- {resource: a, param_index: 0, count: 1, items: {hot: -1}}\n",
            "param_flow[0].items['hot']: must be >= 0",
        ),
        (
            "degrade:\n- {resource: a, threshold: 1, recovery_sec: 1}\n",
            "degrade[0].max_rt_ms: required when strategy is slow_ratio",
        ),
        (
            "flow:\n- {resource: a, count: 1, strategy: relate}\n",
            "flow[0].ref_resource: required when strategy is relate",
        ),
        # YAML 1.1 reads bare yes/on as booleans: the message shows what it got.
        (
            "authority:\n- {resource: a, origins: [yes]}\n",
            "authority[0].origins[0]: must be a non-empty string, got True",
        ),
        # PyYAML reads 1e3 (no dot) as a string: the message shows what it got.
        ("flow:\n- {resource: a, count: 1e3}\n", "flow[0].count: must be a number, got '1e3'"),
        ("flow:\n- {resource: a, count: 1, 1: x}\n", "flow[0].1: unknown key"),
        (
            "flow:\n- {resource: a, count: 1, contol: warm_up}\n",
            "flow[0].contol: unknown key (did you mean control?)",
        ),
        ("degarde: []\n", "degarde: unknown section (did you mean degrade?)"),
    ],
)
def test_each_error_is_located(text: str, message: str) -> None:
    assert errors_of(text) == [message]


def test_top_level_must_be_a_mapping() -> None:
    assert errors_of("- flow\n- degrade\n") == [
        "top level: must be a mapping with the sections flow, degrade, authority, system, "
        "param_flow"
    ]


def test_every_problem_of_the_document_in_one_error() -> None:
    text = """\
flow:
  - resource: ok
    count: 1
  - resource: ""
    count: -1
    foo: 1
degrade: {}
authority:
  - {resource: a, strategy: grey, origins: []}
system: {max_cpu: 2, max_qps: -1}
bogus: 1
param_flow:
  - {resource: p, count: 1, param_index: 0.5, items: {x: -2}}
"""
    with pytest.raises(RuleError) as info:
        parse_rules(text)
    assert info.value.errors == [
        "flow[1].resource: must be a non-empty string",
        "flow[1].count: must be >= 0",
        "flow[1].foo: unknown key",
        "degrade: must be a list",
        "authority[0].strategy: must be one of white, black",
        "authority[0].origins: must not be empty",
        "system.max_cpu: must be <= 1",
        "system.max_qps: must be >= 0",
        "bogus: unknown section",
        "param_flow[0].param_index: must be an integer, got 0.5",
        "param_flow[0].items['x']: must be >= 0",
    ]
    assert str(info.value).startswith("11 rule errors:\n  flow[1].resource:")


def test_missing_required_keys_are_all_reported() -> None:
    assert errors_of({"degrade": [{}], "param_flow": [{"resource": "p"}]}) == [
        "degrade[0].resource: required",
        "degrade[0].threshold: required",
        "degrade[0].max_rt_ms: required when strategy is slow_ratio",
        "degrade[0].recovery_sec: required",
        "param_flow[0].param_index: required",
        "param_flow[0].count: required",
    ]
    assert errors_of({"authority": [{"resource": "a"}]}) == ["authority[0].origins: required"]
    assert errors_of({"flow": [{"resource": "a", "count": 1, "cluster": {}}]}) == [
        "flow[0].cluster.url: required"
    ]


# --- syntax and file errors --------------------------------------------------------------


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("flow:\n  - resource: a\n    count: [1\n")
    [message] = errors_of(path)
    assert message.startswith(f"{path}: line ")
    assert ", column " in message
    [message] = errors_of("flow:\n  - resource: a\n   count: 1\n")
    assert message == "line 3, column 4: expected <block end>, but found '<block mapping start>'"


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "flow": [\n    {"resource": "a",}\n  ]\n}\n')
    assert errors_of(path) == [
        f"{path}: line 3, column 22: Expecting property name enclosed in double quotes"
    ]


def test_duplicate_keys_are_errors_not_silently_dropped(tmp_path: Path) -> None:
    assert errors_of("flow:\n- {resource: a, count: 1}\nflow: []\n") == [
        "line 3, column 1: found duplicate key 'flow'"
    ]
    assert errors_of("flow:\n- {resource: a, count: 1, count: 2}\n") == [
        "line 2, column 27: found duplicate key 'count'"
    ]
    path = tmp_path / "dup.json"
    path.write_text('{"flow": [], "flow": []}')
    assert errors_of(path) == [f"{path}: duplicate key 'flow'"]


def test_yaml_merge_keys_still_work() -> None:
    text = """\
base: &base {resource: a, count: 5}
"""
    rules = parse_rules("flow:\n- &base {resource: a, count: 5}\n- <<: *base\n  resource: b\n")
    assert [r.resource for r in rules.flow] == ["a", "b"]
    assert rules.flow[1].count == 5.0
    assert errors_of(text) == ["base: unknown section"]


def test_unsafe_yaml_tags_are_refused() -> None:
    [message] = errors_of("flow: !!python/object/apply:os.system ['true']\n")
    assert "could not determine a constructor" in message
    assert message.startswith("line 1, column 7: ")


def test_missing_file_names_path_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert errors_of(path) == [f"{path}: cannot read: No such file or directory"]
    assert errors_of(str(path)) == [f"{path}: cannot read: No such file or directory"]


def test_directory_names_path_and_reason(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"flow: []\n# caf\xe9\n")
    [message] = errors_of(path)
    assert message.startswith(f"{path}: not UTF-8 text (")


def test_one_line_yaml_str_is_a_path_and_the_error_says_so() -> None:
    [message] = errors_of("flow: []")
    assert message == (
        "flow: []: cannot read: No such file or directory "
        "(a str without a newline is read as a path; YAML text needs a newline)"
    )


# --- sidecar section ---------------------------------------------------------------------


SIDECAR_CONFIG = """\
flow:
  - {resource: orders.create, count: 10}
sidecar:
  listen: 127.0.0.1:15000
  upstreams: [{url: "http://127.0.0.1:8000", weight: 1}]
  anything: [the, core, does, not, check, this]
"""


def test_sidecar_section_is_ignored_by_parse_rules() -> None:
    assert parse_rules(SIDECAR_CONFIG) == RuleSet(
        flow=[FlowRule(resource="orders.create", count=10)]
    )
    assert parse_rules("sidecar: 5\n") == RuleSet()


def test_parse_config_returns_the_raw_sidecar_section(tmp_path: Path) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text(SIDECAR_CONFIG)
    rules, sidecar = parse_config(path)
    assert rules.flow == (FlowRule(resource="orders.create", count=10),)
    assert sidecar is not None
    assert sidecar["listen"] == "127.0.0.1:15000"
    assert sidecar["anything"] == ["the", "core", "does", "not", "check", "this"]
    assert parse_config(SPEC_EXAMPLE) == (EXPECTED, None)
    assert parse_config(EXPECTED) == (EXPECTED, None)
    assert parse_config("sidecar:\nflow: []\n") == (RuleSet(), None)


def test_parse_config_reports_a_non_mapping_sidecar_with_rule_errors() -> None:
    with pytest.raises(RuleError) as info:
        parse_config("sidecar: [1]\nflow: [{resource: a, count: -1}]\n")
    assert info.value.errors == ["sidecar: must be a mapping", "flow[0].count: must be >= 0"]


def test_known_sections() -> None:
    assert KNOWN_SECTIONS == ("flow", "degrade", "authority", "system", "param_flow")


# --- never a traceback -------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["qps", "relate", "warm_up", "slow_ratio", "white", "redis://h", "x"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_scalars, inner, max_size=3),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "resource",
        "grade",
        "count",
        "limit_app",
        "strategy",
        "ref_resource",
        "control",
        "warm_up_sec",
        "cold_factor",
        "max_queue_ms",
        "cluster",
        "threshold",
        "max_rt_ms",
        "recovery_sec",
        "min_requests",
        "stat_interval_ms",
        "origins",
        "max_load",
        "max_cpu",
        "max_avg_rt_ms",
        "max_concurrency",
        "max_qps",
        "param_index",
        "duration_sec",
        "burst",
        "items",
        "url",
        "mode",
        "timeout_ms",
        "fallback_to_local",
        "zzz",
    ]
)
_rule_dicts = st.dictionaries(_keys, _values, max_size=8)
_documents = st.dictionaries(
    st.sampled_from([*KNOWN_SECTIONS, "sidecar", "other"]),
    st.one_of(st.lists(_rule_dicts, max_size=3), _rule_dicts, _values),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(_documents)
def test_arbitrary_documents_load_or_raise_one_located_rule_error(doc: dict[str, Any]) -> None:
    try:
        rules = parse_rules(doc)
    except RuleError as exc:
        assert exc.errors
        for error in exc.errors:
            assert error.split(".")[0].split("[")[0].split(":")[0] in (*KNOWN_SECTIONS, "other")
    else:
        assert parse_rules(rules.to_dict()) == rules
        json.dumps(rules.to_dict())


def test_fixture_is_the_spec_example() -> None:
    # Guard against the fixture drifting into something easier than the SPEC's file.
    text = SPEC_EXAMPLE.read_text()
    for needle in (
        "cluster: null",
        'items: {"hot-sku": 100}',
        "max_load: 8.0",
        "origins: [ops, backoffice]",
    ):
        assert needle in text
    assert os.path.getsize(SPEC_EXAMPLE) > 1000


def test_alias_bomb_gives_a_short_message() -> None:
    # Nine levels of nine aliases would expand to 9**9 strings if anything walked or
    # printed them in full; the loader must only look at what a rule needs.
    levels = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 9):
        refs = ", ".join([f"*l{n - 1}"] * 9)
        levels.append(f"l{n}: &l{n} [{refs}]")
    text = (
        "sidecar:\n"
        + "".join(f"  {line}\n" for line in levels)
        + "authority:\n- {resource: r, origins: [*l8]}\n"
        + "flow:\n- {resource: r, count: *l8}\n"
    )
    errors = errors_of(text)
    assert [e.split(":")[0] for e in errors] == ["authority[0].origins[0]", "flow[0].count"]
    assert all(len(e) < 300 for e in errors)


def test_rule_sets_pickle_copy_and_replace() -> None:
    import copy
    import dataclasses
    import pickle

    assert pickle.loads(pickle.dumps(FULL)) == FULL
    assert copy.deepcopy(FULL) == FULL
    changed = dataclasses.replace(FULL.flow[0], count=5)
    assert changed.count == 5.0 and changed != FULL.flow[0]
    with pytest.raises(RuleError, match="count: must be >= 0"):
        dataclasses.replace(FULL.flow[0], count=-5)
