"""Field checks shared by every rule class, and the mapping-to-rule builder.

Rule classes are frozen dataclasses; their ``__post_init__`` runs a :class:`FieldChecker`
over their own fields. The checker normalises values in place (a choice word becomes its
``StrEnum``, an ``int`` in a float field becomes a ``float``) and collects every problem as
``"<field>: <problem>"`` instead of stopping at the first, so a user fixes a rule in one pass.
:func:`build` turns a mapping (a YAML/JSON rule) into a rule, adding unknown and missing keys
to the same list. Locating a rule inside a file (``flow[2].``) is the loader's job.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import reprlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from guard.errors import RuleError

__all__ = [
    "MISSING",
    "FieldChecker",
    "build",
    "coerce_number",
    "non_empty_string_problem",
    "plain",
    "shown",
    "unknown_key",
]

E = TypeVar("E", bound=StrEnum)
R = TypeVar("R")


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4


def shown(value: object) -> str:
    """A short repr for messages: a YAML alias bomb must not turn into a huge string."""
    return _REPR.repr(value)


class _Missing:
    """Placeholder the loader passes for a required key absent from the file."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<required>"


#: Passed by :func:`build` for a required field the mapping lacks; reported as "required".
MISSING: Any = _Missing()


def coerce_number(value: Any, *, integer: bool = False) -> tuple[int | float | None, str | None]:
    """Check one number and normalise it.

    :param value: the candidate; ``bool`` is refused although it is an ``int``.
    :param integer: require an integral value (``5`` or ``5.0``) and return an ``int``.
    :returns: ``(number, None)`` when valid (a float unless ``integer``), else ``(None, problem)``.
    """
    kind = "an integer" if integer else "a number"
    # Decimal is not a numbers.Real, but JSON parsed with parse_float=Decimal yields it.
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        return None, f"must be {kind}, got {shown(value)}"
    if isinstance(value, numbers.Integral):
        if integer:
            return int(value), None
        try:
            return float(value), None
        except OverflowError:
            return None, "must be a finite number"
    as_float = float(value)
    if not math.isfinite(as_float):
        return None, "must be a finite number"
    if not integer:
        return as_float, None
    if not as_float.is_integer():
        return None, f"must be an integer, got {shown(value)}"
    return int(as_float), None


class FieldChecker:
    """Checks and normalises the fields of one frozen rule, collecting every problem.

    Each method reads the field by name, records ``"<field>: <problem>"`` on failure and
    returns the normalised value, or ``None`` when the field is invalid or unset; range
    helpers ignore ``None`` so one bad value is reported once.
    """

    __slots__ = ("_rule", "errors")

    def __init__(self, rule: object) -> None:
        self._rule = rule
        self.errors: list[str] = []

    def fail(self, name: str, problem: str) -> None:
        """Record one problem of field (or sub-location) ``name``."""
        self.errors.append(f"{name}: {problem}")

    def extend(self, prefix: str, errors: Iterable[str]) -> None:
        """Record the problems of a nested value, located under ``prefix``."""
        self.errors.extend(f"{prefix}.{error}" for error in errors)

    def get(self, name: str) -> Any:
        return getattr(self._rule, name)

    def set(self, name: str, value: Any) -> None:
        # The rule is frozen; normalising happens once, inside its own __post_init__.
        object.__setattr__(self._rule, name, value)

    def _present(self, name: str) -> bool:
        if self.get(name) is MISSING:
            self.fail(name, "required")
            return False
        return True

    def done(self) -> None:
        """:raises RuleError: listing every recorded problem, if any."""
        if self.errors:
            raise RuleError(self.errors)

    def choice(self, name: str, enum: type[E]) -> E | None:
        """Accept a member of ``enum`` or its word; store the member."""
        value = self.get(name)
        if not self._present(name):
            return None
        if isinstance(value, enum):
            return value
        if isinstance(value, str) and value in enum._value2member_map_:
            member = enum(value)
            self.set(name, member)
            return member
        self.fail(name, "must be one of " + ", ".join(m.value for m in enum))
        return None

    def string(self, name: str, *, optional: bool = False) -> str | None:
        """Accept a string with at least one non-blank character (or None if optional)."""
        value = self.get(name)
        if optional and value is None:
            return None
        if not self._present(name):
            return None
        if isinstance(value, str) and value.strip():
            return value
        self.fail(name, non_empty_string_problem(value))
        return None

    def boolean(self, name: str) -> bool | None:
        """Accept ``True`` or ``False`` only (no 0/1, no "yes")."""
        value = self.get(name)
        if not self._present(name):
            return None
        if isinstance(value, bool):
            return value
        self.fail(name, f"must be true or false, got {shown(value)}")
        return None

    def number(self, name: str, *, integer: bool = False, optional: bool = False) -> Any:
        """Accept a real number (not bool); store a float, or an int when ``integer``."""
        value = self.get(name)
        if optional and value is None:
            return None
        if not self._present(name):
            return None
        result, problem = coerce_number(value, integer=integer)
        if problem is not None:
            self.fail(name, problem)
            return None
        self.set(name, result)
        return result

    def at_least(self, name: str, value: float | None, bound: float) -> None:
        if value is not None and value < bound:
            self.fail(name, f"must be >= {bound:g}")

    def above(self, name: str, value: float | None, bound: float) -> None:
        if value is not None and value <= bound:
            self.fail(name, f"must be > {bound:g}")

    def at_most(self, name: str, value: float | None, bound: float) -> None:
        if value is not None and value > bound:
            self.fail(name, f"must be <= {bound:g}")


def non_empty_string_problem(value: object) -> str:
    """The message for a value that is not a non-empty string.

    A non-string is shown, since YAML turns some bare words into other types
    (``on`` is True, ``null`` is None).
    """
    if isinstance(value, str):
        return "must be a non-empty string"
    return f"must be a non-empty string, got {shown(value)}"


def unknown_key(key: object, known: Iterable[str], what: str = "key") -> str:
    """The message for an unrecognised key, with a suggestion when one is close."""
    text = f"{key if isinstance(key, str) else shown(key)}: unknown {what}"
    if isinstance(key, str):
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
        if close:
            text += f" (did you mean {close[0]}?)"
    return text


def build(cls: type[R], data: Mapping[Any, Any]) -> R:
    """Build rule class ``cls`` from a mapping of its YAML keys.

    :param cls: a rule dataclass whose ``__post_init__`` raises :class:`RuleError`.
    :param data: the rule as read from a file.
    :raises RuleError: with every problem: field errors, ``"<key>: unknown key"`` and
        ``"<field>: required"``, none of them located further.
    :returns: the rule.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in fields]
    kwargs: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in data.items():
        if isinstance(key, str) and key in names:
            kwargs[key] = value
        else:
            unknown.append(unknown_key(key, names))
    for f in fields:
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs.setdefault(f.name, MISSING)
    errors: list[str] = []
    rule: R | None = None
    try:
        rule = cls(**kwargs)
    except RuleError as exc:
        errors.extend(exc.errors)
    errors.extend(unknown)
    if errors or rule is None:
        raise RuleError(errors)
    return rule


def plain(value: Any) -> Any:
    """A field value in the rule file's shape: enum words, lists, nested dicts."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None:
        return to_dict()
    return value
