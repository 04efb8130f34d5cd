"""The slot chain: three phases, and the rule slots that compile rules into checks.

The engine's chain is one visible list per phase (see ``guard.engine.default_chain``):

* **prepare** slots (``PrepareSlot.prepare(entry)``) attach nodes before the checks;
* **check** slots are ``RuleSlot`` builders. On every rule load each one compiles its
  section into a ``Check`` per resource (plus, for global rules such as system protection,
  one ``Check`` for every resource), reusing the state of unchanged rules. A ``Check``
  returns ``None`` to pass or a ``Verdict`` (block with a ``BlockError``, or wait N ms);
* **stat** slots hear ``on_pass`` / ``on_block`` / ``on_complete``; so does every ``Check``
  that sets ``has_stat``.

Per resource, the engine turns this into a ``Plan`` holding only the checks that apply, so
an entry runs no slot that has nothing to say about its resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from guard._select import load_twin

if TYPE_CHECKING:
    from guard._chain_py import (
        Check,
        Core,
        Entry,
        EntryMaker,
        NodeSelectorSlot,
        Plan,
        PrepareSlot,
        Resource,
        StatisticSlot,
        StatSlot,
        Verdict,
        block,
        new_entry,
        new_error,
        wait,
    )

    IMPLEMENTATION = "py"
else:
    _mod, IMPLEMENTATION = load_twin("guard._chain")
    Check = _mod.Check
    Core = _mod.Core
    Entry = _mod.Entry
    EntryMaker = _mod.EntryMaker
    NodeSelectorSlot = _mod.NodeSelectorSlot
    Plan = _mod.Plan
    PrepareSlot = _mod.PrepareSlot
    Resource = _mod.Resource
    StatisticSlot = _mod.StatisticSlot
    StatSlot = _mod.StatSlot
    Verdict = _mod.Verdict
    new_entry = _mod.new_entry
    new_error = _mod.new_error
    block = _mod.block
    wait = _mod.wait

__all__ = [
    "IMPLEMENTATION",
    "Check",
    "Core",
    "Entry",
    "EntryMaker",
    "NodeSelectorSlot",
    "Plan",
    "PrepareSlot",
    "Resource",
    "RuleSlot",
    "SlotBuild",
    "SlotChain",
    "StatSlot",
    "StatisticSlot",
    "Verdict",
    "block",
    "new_entry",
    "new_error",
    "wait",
]


@dataclass
class SlotBuild:
    """What a rule slot compiled from one rule set."""

    per_resource: dict[str, Any] = field(default_factory=dict)
    every_resource: Any = None


class RuleSlot(Protocol):
    """A check-phase slot: compiles its rule section into per-resource checks."""

    order: ClassVar[int]
    name: ClassVar[str]

    def build(self, rules: Any, engine: Any) -> SlotBuild:
        """Compile ``rules`` (a ``RuleSet``), reusing state of rules equal to current ones."""
        ...


@dataclass
class SlotChain:
    """The slots of each phase, each list in ascending ``order``."""

    prepare: list[Any]
    check: list[Any]
    stat: list[Any]

    def __post_init__(self) -> None:
        for phase in (self.prepare, self.check, self.stat):
            phase.sort(key=lambda slot: slot.order)

    def plans(self, builds: list[SlotBuild]) -> tuple[dict[str, Any], Any]:
        """Per-resource plans plus the plan of resources no rule names."""
        names: set[str] = set()
        for b in builds:
            names.update(b.per_resource)
        plans = {name: self._plan(builds, name) for name in names}
        return plans, self._plan(builds, None)

    def _plan(self, builds: Iterable[SlotBuild], name: str | None) -> Any:
        checks = []
        for b in builds:
            check = b.per_resource.get(name) if name is not None else None
            if check is None:
                check = b.every_resource
            if check is not None:
                checks.append(check)
        stats = list(self.stat) + [c for c in checks if c.has_stat]
        # Checks that are not ``Check`` subclasses (duck-typed) read neither kind of node.
        origin_nodes = any(getattr(c, "uses_origin_node", False) for c in checks)
        context_nodes = any(getattr(c, "uses_context_node", False) for c in checks)
        return Plan(list(self.prepare), checks, stats, origin_nodes, context_nodes)
