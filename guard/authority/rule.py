"""Authority rules: which callers (origins) may enter a resource.

Unlike Sentinel, where an empty origin passes every list, a white list admits only the
origins it names (a caller with no origin is blocked) and a black list blocks the origins
it names and admits the rest, the empty origin included. Origins compare case-sensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from guard.validation import MISSING, FieldChecker, non_empty_string_problem, plain

__all__ = ["AuthorityRule", "AuthorityStrategy"]


class AuthorityStrategy(StrEnum):
    """``white``: only the listed origins enter; ``black``: the listed origins are refused."""

    WHITE = "white"
    BLACK = "black"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorityRule:
    """One origin list (the ``authority:`` section), validated on construction.

    :param resource: the guarded resource name; required, non-empty.
    :param strategy: ``white`` (default) or ``black``.
    :param origins: the origin names, required and non-empty, each a non-empty string;
        a list is accepted and stored as a tuple (so the rule stays hashable).
    :raises RuleError: listing every invalid field as ``"<field>: <problem>"``.
    """

    resource: str
    strategy: AuthorityStrategy = AuthorityStrategy.WHITE
    origins: tuple[str, ...]

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.string("resource")
        c.choice("strategy", AuthorityStrategy)
        self._check_origins(c)
        c.done()

    def _check_origins(self, c: FieldChecker) -> None:
        value: Any = self.origins
        if value is MISSING:
            c.fail("origins", "required")
            return
        # A bare string would iterate as characters: refuse it rather than guess.
        if not isinstance(value, list | tuple):
            c.fail("origins", "must be a list of origin names")
            return
        if not value:
            c.fail("origins", "must not be empty")
        for i, origin in enumerate(value):
            if not (isinstance(origin, str) and origin.strip()):
                c.fail(f"origins[{i}]", non_empty_string_problem(origin))
        c.set("origins", tuple(value))

    def to_dict(self) -> dict[str, Any]:
        """:returns: the rule as in the rule file (words, not enums; a list of origins)."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}
