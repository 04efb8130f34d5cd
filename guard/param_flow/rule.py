"""Hot-parameter rules: a flow limit per distinct value of one call argument.

A :class:`ParamFlowRule` follows Sentinel 1.8's ``ParamFlowRule``: each value of argument
``param_index`` gets its own token bucket of ``count`` tokens (plus ``burst``) per
``duration_sec``, or its own leaky bucket under ``rate_limiter``; ``items`` give chosen
values a count of their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from guard.validation import MISSING, FieldChecker, coerce_number, plain, shown

__all__ = ["ParamFlowControl", "ParamFlowRule", "ParamValue"]

#: The argument values an ``items`` entry may name.
ParamValue = str | int | float | bool


class ParamFlowControl(StrEnum):
    """``reject``: a token bucket per value refuses at once when empty; ``rate_limiter``:
    entries with one value are spaced evenly, each queueing for up to ``max_queue_ms``."""

    REJECT = "reject"
    RATE_LIMITER = "rate_limiter"


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamFlowRule:
    """One hot-parameter rule (the ``param_flow:`` section), validated on construction.

    :param resource: the guarded resource name; required, non-empty.
    :param param_index: which positional argument to count (integer, required); a negative
        index counts from the end, as in Python.
    :param count: tokens (float >= 0) per value per ``duration_sec``; required. 0 blocks
        every call whose argument is present.
    :param duration_sec: integer seconds > 0 of one refill period (default 1).
    :param burst: integer >= 0 of extra tokens a quiet value may spend at once (default 0).
    :param control: ``reject`` (default) or ``rate_limiter``.
    :param max_queue_ms: integer milliseconds >= 0 an entry may queue under
        ``rate_limiter`` (default 0: never wait).
    :param items: per-value counts overriding ``count``, given as a mapping
        ``value -> count`` (count a float >= 0; value a str, int, float or bool) and stored
        as a tuple of ``(value, count)`` pairs in the given order so the rule stays hashable;
        :attr:`items_map` gives the dict back. Through JSON, non-string values become strings.
    :raises RuleError: listing every invalid field as ``"<field>: <problem>"``.
    """

    resource: str
    param_index: int
    count: float
    duration_sec: int = 1
    burst: int = 0
    control: ParamFlowControl = ParamFlowControl.REJECT
    max_queue_ms: int = 0
    items: tuple[tuple[ParamValue, float], ...] = ()

    def __post_init__(self) -> None:
        c = FieldChecker(self)
        c.string("resource")
        c.number("param_index", integer=True)
        c.at_least("count", c.number("count"), 0)
        c.above("duration_sec", c.number("duration_sec", integer=True), 0)
        c.at_least("burst", c.number("burst", integer=True), 0)
        c.choice("control", ParamFlowControl)
        c.at_least("max_queue_ms", c.number("max_queue_ms", integer=True), 0)
        self._check_items(c)
        c.done()

    def _check_items(self, c: FieldChecker) -> None:
        raw: Any = self.items
        if raw is None or raw is MISSING:
            raw = ()
        if isinstance(raw, Mapping):
            pairs = list(raw.items())
        elif isinstance(raw, list | tuple) and all(
            isinstance(p, list | tuple) and len(p) == 2 for p in raw
        ):
            pairs = [tuple(p) for p in raw]
        else:
            c.fail("items", "must be a mapping of argument value to count")
            return
        stored: list[tuple[ParamValue, float]] = []
        seen: set[Any] = set()
        for value, count in pairs:
            where = f"items[{shown(value)}]"
            if not _is_param_value(value):
                c.fail(where, "value must be a string, a finite number or a boolean")
                continue
            if value in seen:  # 1, 1.0 and True are one dict key
                c.fail(where, "duplicate value")
                continue
            seen.add(value)
            number, problem = coerce_number(count)
            if problem is not None:
                c.fail(where, problem)
            elif number is not None and number < 0:
                c.fail(where, "must be >= 0")
            elif number is not None:
                stored.append((value, float(number)))
        c.set("items", tuple(stored))

    @property
    def items_map(self) -> dict[ParamValue, float]:
        """The per-value counts as a dict ``value -> count``."""
        return dict(self.items)

    def to_dict(self) -> dict[str, Any]:
        """:returns: the rule as in the rule file (words, not enums; ``items`` a dict)."""
        data = {f.name: plain(getattr(self, f.name)) for f in fields(self)}
        data["items"] = self.items_map
        return data


def _is_param_value(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int)  # bool is an int
