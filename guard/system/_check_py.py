"""The system check (pure-Python truth of the twin): adaptive protection of the process.

One check serves every resource, and it looks at inbound entries only (``inbound=True``:
the traffic the process serves, not the calls it makes). It reads the engine's inbound
node and the last CPU/load sample, and refuses in Sentinel 1.8's order:

1. ``max_qps``: inbound pass QPS + this entry's count > max_qps;
2. ``max_concurrency``: inbound entries in flight > max_concurrency;
3. ``max_avg_rt_ms``: inbound average RT > max_avg_rt_ms;
4. ``max_load``: load > max_load **and** the BBR test fails: more than one entry in flight
   and more than the estimated capacity, max success QPS x min RT / 1000 (Little's law);
5. ``max_cpu``: CPU usage > max_cpu.

CPU and load come from a ``SystemStatus`` that a sampler thread refreshes once a second
(see ``guard.system.sampler``); the check only reads two numbers. Until the first sample
both are -1 (unknown), which never refuses.
"""

from __future__ import annotations

from typing import Any

import cython

from guard.errors import SystemBlocked

if cython.compiled:
    from cython.cimports.guard._chain_c import Check, Core, Entry, block, new_error
    from cython.cimports.guard.stat._window_c import StatNode
else:
    from guard.chain import Check, Core, Entry, block, new_error
    from guard.stat.window import StatNode

__all__ = ["SystemCheck", "SystemStatus"]


class SystemStatus:
    """The latest CPU usage (fraction of the CPUs available) and load; -1 when unknown."""

    def __init__(self) -> None:
        self.cpu = -1.0
        self.load = -1.0

    def __repr__(self) -> str:
        return f"SystemStatus(cpu={self.cpu:.3f}, load={self.load:.2f})"


def _threshold(value: Any) -> float:
    return -1.0 if value is None else float(value)


class SystemCheck(Check):
    """The system slot's check, shared by every resource; inbound entries only."""

    order = 2000

    def __init__(self, rule: Any, status: SystemStatus) -> None:
        super().__init__()
        self.rule = rule
        self.status = status
        # -1 marks an unset threshold (0 is a real one).
        self.max_qps = _threshold(rule.max_qps)
        self.max_concurrency = _threshold(rule.max_concurrency)
        self.max_avg_rt = _threshold(rule.max_avg_rt_ms)
        self.max_load = _threshold(rule.max_load)
        self.max_cpu = _threshold(rule.max_cpu)

    def check(self, e: Entry) -> Any:
        if not e.inbound:
            return None
        core: Core = e.core
        node: StatNode = core.inbound_node
        now: cython.longlong = e.start
        if self.max_qps >= 0.0 and node.pass_qps(now) + e.count > self.max_qps:
            return self.refuse(e, "qps")
        threads: cython.longlong = node.concurrency
        if self.max_concurrency >= 0.0 and threads > self.max_concurrency:
            return self.refuse(e, "concurrency")
        if self.max_avg_rt >= 0.0 and node.avg_rt(now) > self.max_avg_rt:
            return self.refuse(e, "avg_rt")
        status: SystemStatus = self.status
        if (
            self.max_load >= 0.0
            and status.load > self.max_load
            and threads > 1
            and threads > node.max_success_qps(now) * node.min_rt(now) / 1000.0
        ):
            return self.refuse(e, "load")
        if self.max_cpu >= 0.0 and status.cpu > self.max_cpu:
            return self.refuse(e, "cpu")
        return None

    def refuse(self, e: Entry, limit: str) -> Any:
        error = new_error(SystemBlocked, e.res.name, self.rule, None)
        error.limit = limit  # which threshold refused the entry, as Sentinel's limitType
        return block(error)
