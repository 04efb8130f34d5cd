"""``Guard``: an isolated engine with its own rules, statistics and breakers."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from guard.authority.slot import AuthoritySlot
from guard.chain import (
    Core,
    Entry,
    EntryMaker,
    NodeSelectorSlot,
    Resource,
    SlotChain,
    StatisticSlot,
)
from guard.clock import MonotonicClock
from guard.degrade.slot import DegradeSlot
from guard.flow.slot import FlowSlot
from guard.param_flow.slot import ParamFlowSlot
from guard.stat.window import BLOCK, PASS
from guard.stats import StatsSnapshot, snapshot
from guard.system.slot import SystemSlot
from guard.wrap import AsyncGuardedFunction, GuardedFunction

__all__ = ["Guard", "default_chain", "default_engine", "default_resource_name"]

F = TypeVar("F", bound=Callable[..., Any])


def default_chain() -> SlotChain:
    """The slot chain every engine runs, in order, as one visible list per phase."""
    return SlotChain(
        prepare=[NodeSelectorSlot()],
        check=[AuthoritySlot(), SystemSlot(), ParamFlowSlot(), FlowSlot(), DegradeSlot()],
        stat=[StatisticSlot()],
    )


class Guard:
    """An engine: rules, statistics and breakers of its own.

    :param clock: ``ManualClock`` for tests; the real monotonic clock by default.
    :param sample_count: buckets in the one-second window (2 as Sentinel; more buckets
        give a smoother window with less burst across bucket boundaries).

    Resources are never left unchecked, however many there are (Sentinel stops checking
    past 6000). To bound memory, once more than ``max_resources`` resources have
    statistics, those idle for over a minute (nothing in flight, no pass or block in the
    minute window) and held by nothing but the engine (no ``@guard`` function, no rule, no
    open entry) are dropped; their rules keep applying, and a dropped resource gets fresh
    statistics on its next entry.
    """

    #: How many resources keep statistics before idle ones are dropped.
    max_resources = 10_000

    def __init__(self, clock: Any = None, *, sample_count: int = 2) -> None:
        if (
            isinstance(sample_count, bool)
            or not isinstance(sample_count, int)
            or sample_count <= 0
            or 1000 % sample_count
        ):
            raise ValueError("Guard: sample_count must be a positive divisor of 1000")
        self.clock = clock if clock is not None else MonotonicClock()
        self._core = Core(self.clock, sample_count)
        self._resources: dict[str, Any] = {}
        self._sweep_at = self.max_resources
        #: ``entry(resource, *, origin=None, args=(), inbound=False, count=1,
        #: exceptions_to_trace=(Exception,), exceptions_to_ignore=())``: an unentered entry
        #: for ``with`` / ``async with`` (see ``EntryMaker``; compiled in the C twin).
        self.entry = EntryMaker(self._core, self._resources, self._resource)
        self._lock = threading.RLock()
        self.chain = default_chain()
        from guard.rules import RuleSet

        self._rules = RuleSet()
        self._install(self._rules)

    # -- rules --------------------------------------------------------------------------

    @property
    def rules(self) -> Any:
        """The current ``RuleSet``."""
        return self._rules

    def load_rules(self, source: Any) -> bool:
        """Replace all rules at once from a path, YAML/JSON text, mapping or ``RuleSet``.

        Everything is validated first: on any problem nothing changes and one ``RuleError``
        lists each one with its location. Loading rules equal to the current ones changes
        nothing; an unchanged rule inside a changed set keeps its state.

        :returns: True if the rules changed.
        :raises RuleError: the source is unreadable or any rule is invalid.
        """
        from guard.rules import parse_rules

        rules = parse_rules(source)
        with self._lock:
            if rules == self._rules:
                return False
            self._install(rules)
            self._rules = rules
            return True

    def _install(self, rules: Any) -> None:
        builds = [slot.build(rules, self) for slot in self.chain.check]
        plans, default_plan = self.chain.plans(builds)
        self._core.swap_plans(plans, default_plan)

    # -- circuit breakers -----------------------------------------------------------------

    def _slot(self, name: str) -> Any:
        for slot in self.chain.check:
            if slot.name == name:
                return slot
        raise LookupError(f"no {name} slot in this engine's chain")

    def breaker_state(self, resource: str) -> str:
        """The worst state of ``resource``'s circuit breakers.

        :returns: ``"open"`` if any breaker is open, else ``"half_open"`` if a probe is in
            flight, else ``"closed"`` (also for a resource without degrade rules).
        """
        return str(self._slot("degrade").state(resource))

    def on_breaker_change(self, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback(resource, old, new, rule, value)`` on every breaker transition.

        States are ``"closed"``, ``"open"``, ``"half_open"``; ``value`` is the ratio or count
        that tripped the breaker, 1.0 for a failed or refused probe, None otherwise. It runs
        on the thread whose entry moved the breaker; an exception it raises is logged.

        :returns: a function that removes the listener.
        """
        listeners = self._slot("degrade").listeners
        listeners.append(callback)

        def remove() -> None:
            if callback in listeners:
                listeners.remove(callback)

        return remove

    # -- resources and statistics ----------------------------------------------------------

    def _resource(self, name: str) -> Any:
        res = self._resources.get(name)
        if res is None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"resource name must be a non-empty string, not {name!r}")
            with self._lock:
                res = self._resources.get(name)
                if res is None:
                    if len(self._resources) >= self._sweep_at:
                        self._sweep()
                    res = Resource(self._core, name)
                    self._resources[name] = res
        return res

    def _sweep(self) -> None:
        """Drop idle, unreferenced resources; amortised O(1) per new resource."""
        now = self._core.now()
        resources = self._resources
        for name in list(resources):
            res = resources[name]
            # 3 references: the dict, `res` and getrefcount's argument. Any more means a
            # decorator, a rule (relate) or an open entry holds it: keep it.
            if sys.getrefcount(res) <= 3 and _idle(res.node, now):
                del resources[name]
        # Sweep again only after as many new resources again: a full sweep per insert
        # would be quadratic when nothing is idle.
        self._sweep_at = max(self.max_resources, 2 * len(resources))

    def resources(self) -> list[str]:
        """Names of the resources that have statistics, sorted."""
        return sorted(self._resources)

    def stats(self, resource: str) -> StatsSnapshot:
        """A snapshot of ``resource``'s statistics (zeros for an unknown one)."""
        res = self._resources.get(resource)
        now = self._core.now()
        if res is None:
            return snapshot(resource, Resource(self._core, resource).node, now)
        return snapshot(resource, res.node, now)

    def inbound_stats(self) -> StatsSnapshot:
        """Statistics of all inbound entries together (what system rules read)."""
        return snapshot("__inbound__", self._core.inbound_node, self._core.now())

    # -- entries ------------------------------------------------------------------------

    def enter(self, resource: str, **kwargs: Any) -> Entry:
        """Enter now (raising the ``BlockError``); call ``e.exit()`` when done."""
        return self.entry(resource, **kwargs).enter()

    async def aenter(self, resource: str, **kwargs: Any) -> Entry:
        """Enter now, awaiting any queueing wait; call ``e.exit()`` when done."""
        return await self.entry(resource, **kwargs).aenter()

    def guard(
        self,
        resource: str | Callable[..., Any] | None = None,
        *,
        origin: str | Callable[..., str | None] | None = None,
        inbound: bool = False,
        block_handler: Callable[..., Any] | None = None,
        fallback: Callable[..., Any] | None = None,
        exceptions_to_trace: tuple[type[BaseException], ...] = (Exception,),
        exceptions_to_ignore: tuple[type[BaseException], ...] = (),
    ) -> Any:
        """Decorate a plain or ``async def`` function as a guarded resource.

        :param resource: the resource name; ``f"{module}.{qualname}"`` by default.
        :param origin: the caller's origin, or a callable taking the call's arguments.
        :param block_handler: called as ``block_handler(*args, error=..., **kwargs)`` when
            the call is refused.
        :param fallback: called the same way when refused (if no block_handler) and when a
            traced business exception is raised.
        """
        if callable(resource):  # used bare: @engine.guard
            return self.guard()(resource)
        if origin is not None and not callable(origin) and not isinstance(origin, str):
            raise TypeError(f"guard: origin must be a str, a callable or None, not {origin!r}")

        def decorate(func: F) -> F:
            name = resource or default_resource_name(func)
            cls = AsyncGuardedFunction if asyncio.iscoroutinefunction(func) else GuardedFunction
            wrapped = cls(
                func,
                self._core,
                self._resource(name),
                origin,
                inbound,
                block_handler,
                fallback,
                tuple(exceptions_to_trace),
                tuple(exceptions_to_ignore),
            )
            return wrapped  # type: ignore[return-value]

        return decorate


def default_resource_name(func: Callable[..., Any]) -> str:
    """``f"{module}.{qualname}"`` of ``func``, looking through ``functools.partial`` and
    falling back to the class of a callable object (which has no ``__qualname__``)."""
    target: Any = func
    while isinstance(target, functools.partial):
        target = target.func
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{qualname}"


def _idle(node: Any, now: int) -> bool:
    """Nothing in flight and no pass or block in the minute window."""
    return bool(
        node.concurrency == 0 and node.total(now, PASS) == 0 and node.total(now, BLOCK) == 0
    )


_default: Guard | None = None
_default_lock = threading.Lock()


def default_engine() -> Guard:
    """The process-wide engine behind the module-level ``guard``, ``entry``, ``load_rules``."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Guard()
    return _default
