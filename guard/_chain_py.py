"""The entry path: slot phases, resources and entries (pure-Python truth of the twin).

An entry runs three phases over its resource's *plan* (built by the engine from the slot
chain and the rules, see ``guard.chain``):

1. prepare slots attach the nodes the checks read (origin node, context node);
2. check slots return ``None`` (pass) or a ``Verdict``: block with a ``BlockError``, or wait
   N ms. Checks stop at the first block; waits add up. No slot sleeps or calls another;
3. stat slots hear ``on_pass``, ``on_block`` or, at exit, ``on_complete``.

The sync front sleeps the summed wait on the clock, the async front awaits it, then both
book the pass. RT runs from the start of the entry (queueing included) to its exit.

Hot path: the compiled twin (``_chain_c``) reads ``CLOCK_MONOTONIC`` directly when the engine
uses the real clock, and calls slots through C vtables.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import cython

from guard.context import CURRENT, on_first_use
from guard.errors import BlockError

if cython.compiled:
    from cython.cimports.guard.stat._window_c import StatNode
else:
    from guard.stat.window import StatNode

    def mono_ms() -> int:
        return int(time.monotonic() * 1000)

    def guard_entry_pool_install(cls: type) -> None:
        pass  # the compiled twin reuses freed entries and verdicts (see _chain_c.pxd)

    guard_verdict_pool_install = guard_entry_pool_install

    def guard_new_error(cls: Any, args: tuple[Any, ...]) -> Any:
        return cls(*args)  # the compiled twin calls the type's tp_new (see _chain_c.pxd)


__all__ = [
    "Check",
    "Core",
    "Entry",
    "EntryMaker",
    "NodeSelectorSlot",
    "Plan",
    "PrepareSlot",
    "Resource",
    "StatSlot",
    "StatisticSlot",
    "Verdict",
    "block",
    "enable_contexts",
    "new_entry",
    "new_error",
    "wait",
]

_TRACE_ALL = (Exception,)

# Entry states.
NEW = 0
ENTERED = 1
BLOCKED = 2
EXITED = 3


class Verdict:
    """What a check slot says when it does not simply pass: block, or wait ``wait_ms``."""

    def __init__(self, error: BlockError | None = None, wait_ms: float = 0.0) -> None:
        self.error = error
        self.wait_ms = wait_ms

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Verdict(block={self.error!r})"
        return f"Verdict(wait_ms={self.wait_ms})"


def block(error: Any) -> Verdict:
    """A blocking verdict, built without a Python-level constructor call (hot path)."""
    v: Verdict = Verdict.__new__(Verdict)
    v.error = error
    v.wait_ms = 0.0
    return v


def new_error(cls: type, resource: str, rule: Any, retry_after: Any) -> Any:
    """``cls(resource, rule, retry_after)`` for a ``BlockError`` subclass, built cheaply."""
    return guard_new_error(cls, (resource, rule, retry_after))


def wait(ms: float) -> Verdict:
    """A verdict asking the front to wait ``ms`` milliseconds before passing."""
    v: Verdict = Verdict.__new__(Verdict)
    v.error = None
    v.wait_ms = ms
    return v


class PrepareSlot:
    """Runs before the checks; attaches what they read to the entry."""

    order = 0

    def prepare(self, e: Entry) -> None:
        pass


class Check:
    """One check slot's part of a resource's plan (its rules for that resource).

    Override ``check``; set ``has_stat = True`` and override the ``on_*`` hooks if the slot
    needs feedback (a breaker learns from completions).
    """

    order = 0

    def __init__(self) -> None:
        self.has_stat = False
        self.uses_origin_node = False
        self.uses_context_node = False

    def check(self, e: Entry) -> Verdict | None:
        return None

    def on_pass(self, e: Entry) -> None:
        pass

    def on_block(self, e: Entry, error: BlockError) -> None:
        pass

    def on_complete(self, e: Entry) -> None:
        pass


class StatSlot(Check):
    """A slot of the stat phase only."""


class Plan:
    """A resource's compiled chain: the slots of each phase that apply to it."""

    def __init__(
        self,
        prepare: list[Any],
        checks: list[Any],
        stats: list[Any],
        origin_nodes: bool = False,
        context_nodes: bool = False,
    ) -> None:
        self.prepare = prepare
        self.checks = checks
        self.stats = stats
        # Keep per-origin statistics only when a rule reads them: origins come from callers
        # (a request header, say), so unconditional origin nodes would grow without bound.
        self.origin_nodes = origin_nodes
        self.context_nodes = context_nodes  # likewise: context names can be per URL

    def __repr__(self) -> str:
        names = [type(c).__name__ for c in self.checks]
        return f"Plan(checks={names})"


class Core:
    """The engine state the hot path reads: clock, inbound node, plans and their generation."""

    def __init__(self, clock: Any, sample_count: int = 2) -> None:
        self.clock = clock
        self.real_clock = bool(getattr(clock, "real", False))
        self.sample_count = sample_count
        self.inbound_node = StatNode(sample_count)
        self.gen = 0
        self.plans: dict[str, Plan] = {}
        self.default_plan = Plan([], [], [])

    def now(self) -> int:
        if self.real_clock:
            return mono_ms()
        return int(self.clock.now_ms())

    def swap_plans(self, plans: dict[str, Plan], default_plan: Plan) -> None:
        """Install new plans in one step; resources pick them up on their next entry."""
        self.plans = plans
        self.default_plan = default_plan
        self.gen += 1


class Resource:
    """A named resource: its node, per-origin and per-context nodes, and its current plan."""

    def __init__(self, core: Core, name: str) -> None:
        self.core = core
        self.name = name
        self.node = StatNode(core.sample_count)
        self.origin_nodes: dict[str, Any] = {}
        self.context_nodes: dict[str, Any] = {}
        self.gen = -1
        self.plan = core.default_plan

    def current_plan(self) -> Plan:
        core: Core = self.core
        if self.gen != core.gen:
            self.plan = core.plans.get(self.name, core.default_plan)
            self.gen = core.gen
        return self.plan

    def origin_node(self, origin: str) -> Any:
        node = self.origin_nodes.get(origin)
        if node is None:
            node = StatNode(self.core.sample_count)
            self.origin_nodes[origin] = node
        return node

    def context_node(self, name: str) -> Any:
        node = self.context_nodes.get(name)
        if node is None:
            node = StatNode(self.core.sample_count)
            self.context_nodes[name] = node
        return node


contexts_used = False


def enable_contexts() -> None:
    """Called by ``guard.context`` on first use: from then on entries read the context."""
    global contexts_used
    contexts_used = True


on_first_use(enable_contexts)


def new_entry(core: Core, res: Resource, origin: Any, args: Any, count, inbound) -> Entry:  # type: ignore[no-untyped-def]
    """Build an unentered entry without the cost of a Python-level constructor call."""
    e: Entry = Entry.__new__(Entry)
    e._setup(core, res, origin, args, count, inbound)
    return e


class EntryMaker:
    """``Guard.entry``: checks the arguments and builds an unentered entry.

    A callable object rather than a method of ``Guard`` so that the compiled twin serves
    every ``with entry(...)`` in one C call: as a Python method, argument handling cost
    more than building the entry.
    """

    def __init__(self, core: Core, resources: dict[str, Any], make_resource: Any) -> None:
        self.core = core
        self.resources = resources  # the engine's dict, shared (resources come and go)
        self.make_resource = make_resource  # the engine's slow path: validate, sweep, add

    @cython.annotation_typing(False)  # the checks below give the user's error, not Cython's
    def __call__(
        self,
        resource: str,
        *,
        origin: str | None = None,
        args: tuple[Any, ...] = (),
        inbound: bool = False,
        count: int = 1,
        exceptions_to_trace: tuple[type[BaseException], ...] = _TRACE_ALL,
        exceptions_to_ignore: tuple[type[BaseException], ...] = (),
    ) -> Entry:
        """An unentered entry: use it with ``with`` / ``async with``.

        Entering raises the ``BlockError``; an exception leaving the block is traced
        (counted for degrade rules) unless ignored.
        """
        if type(count) is not int or count < 1:  # bool is refused too
            raise ValueError(f"{resource}: count must be an integer >= 1")
        if origin is not None and not isinstance(origin, str):
            # Checked here so both twins refuse it alike (origin nodes are keyed by str).
            raise TypeError(f"{resource}: origin must be a str or None, not {origin!r}")
        res = self.resources.get(resource)
        if res is None:
            res = self.make_resource(resource)
        if type(args) is not tuple:
            args = tuple(args)
        e: Entry = new_entry(self.core, res, origin, args, count, bool(inbound))
        # (mypy infers these attributes' types from _setup's defaults; these widen them.)
        if exceptions_to_trace is not _TRACE_ALL:
            e.trace_types = tuple(exceptions_to_trace)  # type: ignore[assignment]
        if exceptions_to_ignore:
            e.ignore_types = tuple(exceptions_to_ignore)  # type: ignore[assignment]
        return e


class NodeSelectorSlot(PrepareSlot):
    """Prepare: resolves origin and context (from ``guard.context``) and their nodes."""

    order = 1000

    def prepare(self, e: Entry) -> None:
        if contexts_used:
            current = CURRENT.get()
            if current is not None:
                e.context_name = current.name
                if e.origin is None or e.origin == "":
                    e.origin = current.origin
        res: Resource = e.res
        plan: Plan = e.plan
        if e.origin and plan.origin_nodes:
            e.origin_node = res.origin_node(e.origin)
        if e.context_name and plan.context_nodes:
            e.context_node = res.context_node(e.context_name)


class StatisticSlot(StatSlot):
    """Stat: books pass/block/success/exception/RT/concurrency on every node of the entry."""

    order = 1000

    def on_pass(self, e: Entry) -> None:
        now: cython.longlong = e.pass_time
        count: cython.longlong = e.count
        node: StatNode = e.res.node
        node.add_pass(now, count)
        node.concurrency += count
        if e.origin_node is not None:
            node = e.origin_node
            node.add_pass(now, count)
            node.concurrency += count
        if e.context_node is not None:
            node = e.context_node
            node.add_pass(now, count)
            node.concurrency += count
        if e.inbound:
            node = e.core.inbound_node
            node.add_pass(now, count)
            node.concurrency += count

    def on_block(self, e: Entry, error: BlockError) -> None:
        now: cython.longlong = e.start
        count: cython.longlong = e.count
        node: StatNode = e.res.node
        node.add_block(now, count)
        if e.origin_node is not None:
            node = e.origin_node
            node.add_block(now, count)
        if e.context_node is not None:
            node = e.context_node
            node.add_block(now, count)
        if e.inbound:
            node = e.core.inbound_node
            node.add_block(now, count)

    def on_complete(self, e: Entry) -> None:
        self._complete(e.res.node, e)
        if e.origin_node is not None:
            self._complete(e.origin_node, e)
        if e.context_node is not None:
            self._complete(e.context_node, e)
        if e.inbound:
            self._complete(e.core.inbound_node, e)

    def _complete(self, node: StatNode, e: Entry) -> None:
        now: cython.longlong = e.end
        count: cython.longlong = e.count
        node.add_success(now, now - e.start, count)
        if e.error is not None:
            node.add_exception(now, count)
        node.concurrency -= count


class Entry:
    """One guarded call. Built unentered; ``enter``/``aenter`` run the chain.

    Use it as ``with`` / ``async with`` (``entry(...)``), or take it from
    ``Guard.enter``/``Guard.aenter`` and call ``exit()`` yourself. ``trace(exc)`` marks a
    business exception (counted for degrade rules).
    """

    def __init__(
        self,
        core: Core,
        res: Resource,
        origin: str | None = None,
        args: tuple[Any, ...] = (),
        count: int = 1,
        inbound: bool = False,
    ) -> None:
        self._setup(core, res, origin, args, count, inbound)

    # C types of the arguments are in _chain_c.pxd.
    def _setup(self, core, res, origin, args, count, inbound):  # type: ignore[no-untyped-def]
        self.core = core
        self.res = res
        self.origin = origin
        self.args = args
        self.count = count
        self.inbound = inbound
        if not cython.compiled:
            # C fields start as None / 0 in the compiled twin; the pure one needs them set.
            self.context_name = None
            self.origin_node = None
            self.context_node = None
            self.plan: Any = None
            self.error = None
            self.data = None
            self.state = NEW
            self.start = 0
            self.pass_time = 0
            self.end = 0
            self.wait_ms = 0.0
        self.trace_types = _TRACE_ALL
        self.ignore_types = ()

    @property
    def resource(self) -> str:
        """The guarded resource's name."""
        return str(self.res.name)

    def check(self) -> BlockError | None:
        """Prepare and check phases; returns the ``BlockError`` (already booked) or None.

        After None, sleep ``wait_ms`` (if > 0) and call ``passed()``.
        """
        if self.state != NEW:
            raise RuntimeError(f"{self.res.name}: entry already entered")
        res: Resource = self.res
        core: Core = self.core
        plan: Plan = res.plan if res.gen == core.gen else res.current_plan()
        self.plan = plan
        # The clock is read inline: this runs on every entry (and at exit, below).
        self.start = mono_ms() if core.real_clock else core.now()
        for slot in plan.prepare:
            prep: PrepareSlot = slot
            prep.prepare(self)
        for slot in plan.checks:
            chk: Check = slot
            verdict = chk.check(self)
            if verdict is not None:
                v: Verdict = verdict
                if v.error is not None:
                    self._blocked(plan, v.error)
                    return v.error
                self.wait_ms += v.wait_ms
        return None

    def _blocked(self, plan: Plan, error: BlockError) -> None:
        self.state = BLOCKED
        for slot in plan.stats:
            st: Check = slot
            st.on_block(self, error)

    def passed(self) -> None:
        """Stat phase of a passed entry (after any wait)."""
        core: Core = self.core
        if self.wait_ms > 0.0:
            self.pass_time = core.now()
        else:
            self.pass_time = self.start
        self.state = ENTERED
        plan: Plan = self.plan
        for slot in plan.stats:
            st: Check = slot
            st.on_pass(self)

    def enter(self) -> Entry:
        """Run the chain; raise the ``BlockError`` if refused; sleep any queueing wait."""
        error = self.check()
        if error is not None:
            raise error
        if self.wait_ms > 0.0:
            self.core.clock.sleep(self.wait_ms)
        self.passed()
        return self

    async def aenter(self) -> Entry:
        """``enter`` for asyncio: a queueing wait is awaited, never blocking the loop."""
        return await self.__aenter__()

    def trace(self, exc: BaseException) -> None:
        """Record a business exception for this entry (counted once, at exit)."""
        self.error = exc

    def traceable(self, exc: Any) -> Any:
        """True if ``exc`` counts as a business exception for this entry."""
        if isinstance(exc, BlockError):
            return False
        if self.ignore_types and isinstance(exc, self.ignore_types):
            return False
        return isinstance(exc, self.trace_types)

    def exit(self) -> None:
        """End the entry: book RT, success and any traced exception. Idempotent."""
        if self.state != ENTERED:
            return
        self.state = EXITED
        core: Core = self.core
        self.end = mono_ms() if core.real_clock else core.now()
        plan: Plan = self.plan
        for slot in plan.stats:
            st: Check = slot
            st.on_complete(self)

    def __enter__(self) -> Entry:
        return self.enter()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc is not None and self.error is None and self.traceable(exc):
            self.error = exc
        self.exit()
        return False

    async def __aenter__(self) -> Entry:
        # The body lives here (aenter() awaits it): one coroutine per `async with`.
        error = self.check()
        if error is not None:
            raise error
        if self.wait_ms > 0.0:
            await self.core.clock.asleep(self.wait_ms)
        self.passed()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc is not None and self.error is None and self.traceable(exc):
            self.error = exc
        self.exit()
        return False

    @property
    def rt_ms(self) -> int:
        """Milliseconds from entry to exit (0 before exit)."""
        return int(self.end - self.start) if self.state == EXITED else 0

    def __repr__(self) -> str:
        states = {NEW: "new", ENTERED: "entered", BLOCKED: "blocked", EXITED: "exited"}
        return f"<Entry {self.res.name} {states.get(self.state, '?')}>"


guard_entry_pool_install(Entry)  # an entry per guarded call: reuse freed ones
guard_verdict_pool_install(Verdict)  # a verdict per refused or queued call
