"""The system slot: one ``SystemCheck`` for every resource, inbound entries only.

CPU and load thresholds need the sampler: the first load of a rule that sets ``max_cpu``
or ``max_load`` starts the process-wide sampler thread (one read per second, shared by all
engines, as Sentinel's status listener). The other thresholds read the engine's inbound
statistics, kept by the stat slot, so the system rule keeps no state of its own.
"""

from __future__ import annotations

from typing import Any

from guard.chain import SlotBuild
from guard.system import check as _twin
from guard.system.sampler import SystemSampler, default_sampler

__all__ = ["SystemSlot"]


class SystemSlot:
    """Check slot for the ``system`` section (adaptive protection of inbound traffic).

    :param sampler: where CPU and load come from; the process-wide sampler by default.
    """

    order = 2000
    name = "system"

    def __init__(self, sampler: SystemSampler | None = None) -> None:
        self._sampler = sampler

    @property
    def sampler(self) -> SystemSampler:
        if self._sampler is None:
            self._sampler = default_sampler()
        return self._sampler

    @sampler.setter
    def sampler(self, sampler: SystemSampler) -> None:
        self._sampler = sampler

    def build(self, rules: Any, engine: Any) -> SlotBuild:
        rule = rules.system
        if rule is None or rule.is_empty:
            return SlotBuild()
        if rule.max_cpu is not None or rule.max_load is not None:
            self.sampler.start()
            status = self.sampler.status
        else:
            status = _twin.SystemStatus()  # never read: no CPU or load threshold
        return SlotBuild(every_resource=_twin.SystemCheck(rule, status))
