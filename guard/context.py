"""The calling context: entrance name and default origin, carried by contextvars.

``with context("checkout", origin="web"):`` names the entrance (used by flow rules with
``strategy: chain``) and gives entries inside it a default origin. It belongs to the caller,
not to an engine, so entries of every ``Guard`` see it, and it follows asyncio tasks and
``contextvars.copy_context().run`` across threads.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["CURRENT", "CallContext", "context", "current_context", "on_first_use"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """The active context: its entrance ``name`` and default ``origin`` ("" for none)."""

    name: str
    origin: str = ""


CURRENT: ContextVar[CallContext | None] = ContextVar("guard_context", default=None)
# The values each active ``with context(...)`` replaced, innermost last. Kept in a context
# variable rather than on the ``context`` object, so one object may be entered again while
# active, or by many threads and tasks at once (a module-level ``CHECKOUT = context(...)``),
# and each exit restores what its own thread or task had.
_SAVED: ContextVar[tuple[CallContext | None, ...]] = ContextVar("guard_context_saved", default=())

_first_use_hooks: list[Callable[[], None]] = []
_used = False


def on_first_use(hook: Callable[[], None]) -> None:
    """Run ``hook`` when a context is first entered (at once if one already was).

    Entries skip reading the context variable until then: it costs nothing to callers
    that never use contexts.
    """
    _first_use_hooks.append(hook)
    if _used:
        hook()


def _mark_used() -> None:
    global _used
    if not _used:
        _used = True
        for hook in _first_use_hooks:
            hook()


def current_context() -> CallContext | None:
    """The context of the calling task or thread, or None."""
    return CURRENT.get()


class context:
    """Set the calling context for the ``with`` (or ``async with``) block.

    :param name: the entrance (context) name, matched by ``strategy: chain`` rules.
    :param origin: the caller's origin for entries that do not name one.
    """

    def __init__(self, name: str, origin: str | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("context: name must be a non-empty string")
        self._value = CallContext(name, origin or "")

    def __enter__(self) -> CallContext:
        _mark_used()
        _SAVED.set((*_SAVED.get(), CURRENT.get()))
        CURRENT.set(self._value)
        return self._value

    def __exit__(self, *exc: Any) -> None:
        saved = _SAVED.get()
        if saved:
            CURRENT.set(saved[-1])
            _SAVED.set(saved[:-1])

    async def __aenter__(self) -> CallContext:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)
