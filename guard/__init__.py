"""guard: Sentinel's protection model for Python.

A *resource* is any named piece of code. Each call is an *entry* that runs a slot chain in
three phases: prepare (find the statistic nodes), check (authority, system, param_flow,
flow, degrade: each passes, blocks, or asks to wait) and stat (book pass/block, and at exit
success, exception and RT into sliding windows). A refused entry raises a ``BlockError``
subclass carrying ``.resource``, ``.reason``, ``.rule`` and ``.retry_after``.

Statistics: a one-second window of 2 x 500 ms buckets (``Guard(sample_count=N)`` for finer
ones) gives QPS; a minute window of 60 x 1 s buckets gives totals. Rules are frozen
dataclasses loaded all at once (``load_rules``); an invalid set changes nothing.

Cost: the hot path (window, chain, flow controllers, ``@guard`` wrapper) is compiled with
Cython; ``GUARD_PURE=1`` selects the pure-Python twins, which behave the same.

Concurrency: engines are safe to use from many threads and asyncio tasks; statistics are
approximate under contention (check-then-record, as Sentinel).
"""

from __future__ import annotations

from typing import Any

from guard.authority.rule import AuthorityRule
from guard.clock import ManualClock
from guard.context import context
from guard.degrade.rule import DegradeRule
from guard.engine import Guard, default_engine
from guard.errors import (
    AuthorityBlocked,
    BlockError,
    DegradeBlocked,
    FlowBlocked,
    ParamFlowBlocked,
    RuleError,
    SystemBlocked,
)
from guard.flow.rule import FlowRule
from guard.param_flow.rule import ParamFlowRule
from guard.rules import RuleSet
from guard.system.rule import SystemRule

__all__ = [
    "AuthorityBlocked",
    "AuthorityRule",
    "BlockError",
    "DegradeBlocked",
    "DegradeRule",
    "FlowBlocked",
    "FlowRule",
    "Guard",
    "ManualClock",
    "ParamFlowBlocked",
    "ParamFlowRule",
    "RuleError",
    "RuleSet",
    "SystemBlocked",
    "SystemRule",
    "context",
    "default_engine",
    "entry",
    "guard",
    "load_rules",
]


def guard(resource: Any = None, **kwargs: Any) -> Any:
    """``@guard``: decorate a function as a resource of the default engine.

    See ``Guard.guard`` for the parameters.
    """
    return default_engine().guard(resource, **kwargs)


def entry(resource: str, **kwargs: Any) -> Any:
    """``with entry(name):`` / ``async with entry(name):`` on the default engine."""
    return default_engine().entry(resource, **kwargs)


def load_rules(source: Any) -> bool:
    """Replace the default engine's rules; see ``Guard.load_rules``."""
    return default_engine().load_rules(source)
