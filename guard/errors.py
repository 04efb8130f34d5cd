"""Errors of the guard engine.

``BlockError`` is the root of every refusal; each slot has its own subclass, named
``<Reason>Blocked``. ``RuleError`` (a ``ValueError``) reports invalid rules, every problem
with its location.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthorityBlocked",
    "BlockError",
    "DegradeBlocked",
    "FlowBlocked",
    "ParamFlowBlocked",
    "RuleError",
    "SystemBlocked",
]


class BlockError(Exception):
    """Raised when an entry is refused by a rule.

    Catch it to answer the caller (for example 429), or pass ``block_handler=`` /
    ``fallback=`` to ``@guard``.

    :ivar resource: the guarded resource name.
    :ivar reason: ``"flow" | "param_flow" | "degrade" | "authority" | "system"``.
    :ivar rule: the rule object that blocked.
    :ivar retry_after: seconds until a retry may pass, or None where no time is known.
    """

    reason: str = "blocked"

    # Refusals are built on the hot path, so there is no Python-level ``__init__``: the
    # positional arguments ``(resource, rule, retry_after)`` stay in ``args`` (kept by
    # BaseException in C) and the attributes read them back.
    @property
    def resource(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def rule(self) -> Any:
        return self.args[1] if len(self.args) > 1 else None

    @property
    def retry_after(self) -> float | None:
        return self.args[2] if len(self.args) > 2 else None

    def __str__(self) -> str:
        text = f"{self.resource}: blocked by {self.reason} rule"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:.3f}s)"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.resource, self.rule, self.retry_after))


class FlowBlocked(BlockError):
    """Refused by a flow rule (QPS or concurrency over its count)."""

    reason = "flow"


class ParamFlowBlocked(BlockError):
    """Refused by a hot-parameter rule for one argument value.

    :ivar value: the argument value (or list element) that was refused.
    """

    reason = "param_flow"
    value: Any = None


class DegradeBlocked(BlockError):
    """Refused because a circuit breaker is open; ``retry_after`` is the time to the probe."""

    reason = "degrade"


class AuthorityBlocked(BlockError):
    """Refused because the caller's origin is not allowed."""

    reason = "authority"


class SystemBlocked(BlockError):
    """Refused by system adaptive protection (load, CPU, RT, concurrency or QPS).

    :ivar limit: which threshold refused the entry: ``"qps"``, ``"concurrency"``,
        ``"avg_rt"``, ``"load"`` or ``"cpu"`` (None when unknown).
    """

    reason = "system"
    limit: str | None = None


class RuleError(ValueError):
    """Raised when rules are invalid; nothing was changed.

    ``errors`` lists every problem as ``"<location>: <problem>"``, for example
    ``"flow[2].count: must be >= 0"``. Fix each one and load again.
    """

    def __init__(self, errors: list[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return self.errors[0]
        return f"{len(self.errors)} rule errors:\n" + "\n".join(f"  {e}" for e in self.errors)
