"""Rule sets and the rule-file loader.

A :class:`RuleSet` holds every rule of an engine, one tuple per section of the rule file
(SPEC §1 "Rule file"). It is frozen and hashable: two sets built from the same file are
equal, which is how an engine knows a reload changed nothing.

:func:`parse_rules` reads a rule set from a path, YAML/JSON text, a mapping or a
``RuleSet``. Loading is all or nothing: every problem in the whole document is collected,
each with its location (``flow[2].count: must be >= 0``, ``bogus: unknown section``), and
raised as one :class:`~guard.errors.RuleError`. YAML goes through PyYAML's safe loader only.
A ``sidecar:`` section (the proxy's settings, validated by ``ext``) is accepted and
ignored here; :func:`parse_config` returns it alongside the rules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from guard.authority.rule import AuthorityRule
from guard.degrade.rule import DegradeRule
from guard.errors import RuleError
from guard.flow.rule import FlowRule
from guard.param_flow.rule import ParamFlowRule
from guard.system.rule import SystemRule
from guard.validation import build, shown, unknown_key

__all__ = ["KNOWN_SECTIONS", "RuleSet", "RuleSource", "parse_config", "parse_rules"]

#: The rule sections of a rule file, in the order ``RuleSet.to_dict`` writes them.
KNOWN_SECTIONS: tuple[str, ...] = ("flow", "degrade", "authority", "system", "param_flow")

_SIDECAR = "sidecar"
_LIST_SECTIONS: dict[str, type] = {
    "flow": FlowRule,
    "degrade": DegradeRule,
    "authority": AuthorityRule,
    "param_flow": ParamFlowRule,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    """Every rule of one engine, one field per rule-file section; frozen and hashable.

    :param flow: :class:`~guard.flow.rule.FlowRule` s (a list is stored as a tuple).
    :param degrade: :class:`~guard.degrade.rule.DegradeRule` s.
    :param authority: :class:`~guard.authority.rule.AuthorityRule` s.
    :param system: one :class:`~guard.system.rule.SystemRule`, or None for no system
        protection.
    :param param_flow: :class:`~guard.param_flow.rule.ParamFlowRule` s.
    :raises RuleError: when a section is not a list of its rule class.
    """

    flow: tuple[FlowRule, ...] = ()
    degrade: tuple[DegradeRule, ...] = ()
    authority: tuple[AuthorityRule, ...] = ()
    system: SystemRule | None = None
    param_flow: tuple[ParamFlowRule, ...] = ()

    def __post_init__(self) -> None:
        errors: list[str] = []
        for section, cls in _LIST_SECTIONS.items():
            value: Any = getattr(self, section)
            if value is None:
                value = ()
            if not isinstance(value, list | tuple):
                errors.append(f"{section}: must be a list of {cls.__name__}")
                continue
            for i, rule in enumerate(value):
                if not isinstance(rule, cls):
                    errors.append(f"{section}[{i}]: must be a {cls.__name__}, got {shown(rule)}")
            object.__setattr__(self, section, tuple(value))
        if self.system is not None and not isinstance(self.system, SystemRule):
            errors.append(f"system: must be a SystemRule or None, got {shown(self.system)}")
        if errors:
            raise RuleError(errors)

    @property
    def is_empty(self) -> bool:
        """True when the set holds no rule at all (an empty ``system`` counts as none)."""
        lists_empty = not (self.flow or self.degrade or self.authority or self.param_flow)
        return lists_empty and (self.system is None or self.system.is_empty)

    def to_dict(self) -> dict[str, Any]:
        """The rule file's shape: plain dicts, lists and words, JSON-serialisable.

        ``parse_rules(rs.to_dict()) == rs``. Every section and every rule key is written.

        :returns: ``{"flow": [...], "degrade": [...], "authority": [...], "system": {...} |
            None, "param_flow": [...]}``.
        """
        return {
            "flow": [rule.to_dict() for rule in self.flow],
            "degrade": [rule.to_dict() for rule in self.degrade],
            "authority": [rule.to_dict() for rule in self.authority],
            "system": None if self.system is None else self.system.to_dict(),
            "param_flow": [rule.to_dict() for rule in self.param_flow],
        }

    @classmethod
    def from_mapping(cls, data: Mapping[Any, Any]) -> RuleSet:
        """Build a rule set from a mapping in the rule file's shape (``sidecar:`` ignored).

        :param data: sections as read from YAML/JSON; missing sections are empty.
        :raises RuleError: listing every problem with its location.
        :returns: the rule set.
        """
        return _from_document(data, check_sidecar=False)[0]


#: What :func:`parse_rules` and :func:`parse_config` accept.
RuleSource: TypeAlias = RuleSet | Mapping[str, Any] | str | bytes | os.PathLike[str]


def parse_rules(source: RuleSource) -> RuleSet:
    """Read a rule set from any rule source.

    :param source: a ``RuleSet`` (returned as is); a mapping in the rule file's shape; an
        ``os.PathLike`` or a ``str`` without a newline, read as a path (``.json`` files as
        JSON, others as YAML, which also reads JSON); a ``str`` containing a
        newline, or ``bytes``, read as YAML/JSON text. An empty document is an empty
        rule set.
    :raises RuleError: listing every problem with its location; a syntax error names the
        file (if any), line and column; an unreadable file names the path and the reason.
    :raises TypeError: for a source of another type.
    :returns: the rule set.
    """
    if isinstance(source, RuleSet):
        return source
    return _from_document(_read_source(source), check_sidecar=False)[0]


def parse_config(source: RuleSource) -> tuple[RuleSet, Mapping[str, Any] | None]:
    """Read a rule set and the raw ``sidecar:`` section of a config file (guard.yaml).

    :param source: as for :func:`parse_rules`.
    :raises RuleError: as :func:`parse_rules`, and when ``sidecar`` is not a mapping.
    :returns: ``(rules, sidecar)``; ``sidecar`` is the unvalidated mapping, or None when
        the document has no (or a null) ``sidecar:`` section.
    """
    if isinstance(source, RuleSet):
        return source, None
    return _from_document(_read_source(source), check_sidecar=True)


def _from_document(data: Any, *, check_sidecar: bool) -> tuple[RuleSet, Any]:
    if data is None:
        return RuleSet(), None
    if not isinstance(data, Mapping):
        sections = ", ".join(KNOWN_SECTIONS)
        raise RuleError(f"top level: must be a mapping with the sections {sections}")
    errors: list[str] = []
    found: dict[str, Any] = {}
    sidecar: Any = None
    for key, value in data.items():
        if key == _SIDECAR:
            sidecar = value
            if check_sidecar and value is not None and not isinstance(value, Mapping):
                errors.append(f"{_SIDECAR}: must be a mapping")
        elif key == "system":
            found[key] = _parse_system(value, errors)
        elif key in _LIST_SECTIONS:
            found[key] = _parse_list(key, value, errors)
        else:
            errors.append(unknown_key(key, (*KNOWN_SECTIONS, _SIDECAR), "section"))
    if errors:
        raise RuleError(errors)
    return RuleSet(**found), sidecar


def _parse_list(section: str, value: Any, errors: list[str]) -> tuple[Any, ...]:
    cls = _LIST_SECTIONS[section]
    if value is None:  # "flow:" with nothing under it
        return ()
    if not isinstance(value, list | tuple):
        errors.append(f"{section}: must be a list")
        return ()
    rules = []
    for i, item in enumerate(value):
        where = f"{section}[{i}]"
        if isinstance(item, cls):
            rules.append(item)
        elif not isinstance(item, Mapping):
            errors.append(f"{where}: must be a mapping")
        else:
            try:
                rules.append(build(cls, item))
            except RuleError as exc:
                errors.extend(f"{where}.{error}" for error in exc.errors)
    return tuple(rules)


def _parse_system(value: Any, errors: list[str]) -> SystemRule | None:
    if value is None or isinstance(value, SystemRule):
        return value
    if not isinstance(value, Mapping):
        errors.append("system: must be a mapping")
        return None
    try:
        return build(SystemRule, value)
    except RuleError as exc:
        errors.extend(f"system.{error}" for error in exc.errors)
        return None


def _read_source(source: Any) -> Any:
    """The raw document of a source: a mapping, or what its text parses to."""
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes):  # e.g. an HTTP body: always text, even on one line
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RuleError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        return _parse_text(text, name=None, as_json=False)
    if isinstance(source, str) and "\n" in source:
        return _parse_text(source, name=None, as_json=False)
    if isinstance(source, str | os.PathLike):
        return _read_file(source)
    raise TypeError(
        "rules must come from a path, YAML/JSON text, a mapping or a RuleSet, "
        f"not {type(source).__name__}"
    )


def _read_file(path: str | os.PathLike[str]) -> Any:
    name = os.fsdecode(path)
    try:
        # utf-8-sig: tolerate the byte-order mark some editors write.
        text = Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        hint = ""
        if isinstance(path, str) and any(ch in path for ch in ":{["):
            hint = " (a str without a newline is read as a path; YAML text needs a newline)"
        raise RuleError(f"{name}: cannot read: {exc.strerror}{hint}") from exc
    except OSError as exc:
        raise RuleError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise RuleError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return _parse_text(text, name=name, as_json=name.lower().endswith(".json"))


class _DuplicateKeyError(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key {key!r}")
        result[key] = value
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no object construction beyond plain data), refusing duplicate
    keys: plain ``safe_load`` keeps the last one, silently dropping a whole section."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merges may be overridden by explicit keys, as YAML allows
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base constructor reports it with its position
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _parse_text(text: str, *, name: str | None, as_json: bool) -> Any:
    where = f"{name}: " if name else ""
    if as_json:
        try:
            return json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise RuleError(f"{where}line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
        except _DuplicateKeyError as exc:
            raise RuleError(f"{where}{exc}") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise RuleError(f"{where}{problem}") from exc
        raise RuleError(
            f"{where}line {mark.line + 1}, column {mark.column + 1}: {problem}"
        ) from exc
    except yaml.YAMLError as exc:
        raise RuleError(f"{where}{exc}") from exc
