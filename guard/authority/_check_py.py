"""The authority check for one resource (pure-Python truth of the twin).

Every rule of the resource must admit the caller's origin. A white list admits only the
origins it names, so a caller without an origin (None or "") is refused: the list cannot be
bypassed by leaving the origin out (a deliberate departure from Sentinel, where an empty
origin passes every list). A black list refuses the origins it names and admits the rest,
the empty origin included. Origins compare exactly (case-sensitive).
"""

from __future__ import annotations

from typing import Any

import cython

from guard.errors import AuthorityBlocked

if cython.compiled:
    from cython.cimports.guard._chain_c import Check, Entry, block, new_error
else:
    from guard.chain import Check, Entry, block, new_error

__all__ = ["AuthorityCheck", "OriginList"]


class OriginList:
    """One authority rule compiled: its origins as a frozenset and its strategy."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.origins = frozenset(rule.origins)
        self.white = rule.strategy == "white"

    def admits(self, origin: Any) -> bool:
        """True if ``origin`` (a string, or None for no origin) may enter."""
        if self.white:
            return origin is not None and origin in self.origins
        return origin is None or origin not in self.origins


class AuthorityCheck(Check):
    """The authority slot's check for one resource."""

    order = 1000

    def __init__(self, lists: list[Any]) -> None:
        super().__init__()
        self.lists = lists

    def check(self, e: Entry) -> Any:
        origin = e.origin
        for item in self.lists:
            rule: OriginList = item
            if not rule.admits(origin):
                return block(new_error(AuthorityBlocked, e.res.name, rule.rule, None))
        return None
