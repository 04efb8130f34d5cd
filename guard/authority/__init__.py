"""Authority: admit or refuse callers of a resource by origin (white and black lists)."""

from __future__ import annotations

from guard.authority.rule import AuthorityRule, AuthorityStrategy

__all__ = ["AuthorityRule", "AuthorityStrategy"]
