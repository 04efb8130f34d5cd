"""Lifetime counters kept by the sidecar, and their Prometheus text rendering.

The engine's statistics are sliding windows (QPS, a minute of totals); Prometheus needs
counters that only grow for the life of the process, so the proxy counts here, per request,
with a few integer additions. Gauges (concurrency, breaker state) are read from the engine
when scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["BLOCK_REASONS", "RT_BUCKETS", "Recorder", "ResourceCounters"]

BLOCK_REASONS = ("flow", "param_flow", "degrade", "authority", "system")
RT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BREAKER = {"closed": 0, "open": 1, "half_open": 2}


class ResourceCounters:
    """Counters of one resource."""

    __slots__ = ("blocks", "buckets", "exceptions", "passes", "rt_sum", "successes")

    def __init__(self) -> None:
        self.passes = 0
        self.blocks = dict.fromkeys(BLOCK_REASONS, 0)
        self.successes = 0
        self.exceptions = 0
        self.buckets = [0] * (len(RT_BUCKETS) + 1)  # last one is +Inf
        self.rt_sum = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pass": self.passes,
            "block": dict(self.blocks),
            "success": self.successes,
            "exception": self.exceptions,
            "rt_seconds_sum": self.rt_sum,
        }


class Recorder:
    """Per-resource lifetime counters plus sidecar-wide ones."""

    def __init__(self) -> None:
        self.resources: dict[str, ResourceCounters] = {}
        self.reloads = {"success": 0, "failure": 0}
        self.rejected_by_status: dict[int, int] = {}
        self.generation = 0

    def _get(self, resource: str) -> ResourceCounters:
        c = self.resources.get(resource)
        if c is None:
            c = self.resources[resource] = ResourceCounters()
        return c

    def passed(self, resource: str) -> None:
        c = self.resources.get(resource)
        if c is None:
            c = self._get(resource)
        c.passes += 1

    def blocked(self, resource: str, reason: str) -> None:
        c = self.resources.get(resource)
        if c is None:
            c = self._get(resource)
        blocks = c.blocks
        blocks[reason] = blocks.get(reason, 0) + 1

    def completed(self, resource: str, seconds: float, exception: bool) -> None:
        c = self.resources.get(resource)
        if c is None:
            c = self._get(resource)
        c.successes += 1  # as Sentinel: every completed entry, exception or not
        if exception:
            c.exceptions += 1
        c.rt_sum += seconds
        c.buckets[bisect.bisect_left(RT_BUCKETS, seconds)] += 1

    def rejected(self, status: int) -> None:
        """A request refused before it reached the engine (400, 413, 431, 501...)."""
        self.rejected_by_status[status] = self.rejected_by_status.get(status, 0) + 1

    def reload(self, success: bool) -> None:
        self.reloads["success" if success else "failure"] += 1

    def render(
        self,
        concurrency: Callable[[str], int],
        breaker_state: Callable[[str], str],
        extra: Iterable[tuple[str, str, str, float]] = (),
    ) -> str:
        """Prometheus text exposition format 0.0.4.

        :param concurrency: resource -> current concurrency (from the engine).
        :param breaker_state: resource -> "closed" | "open" | "half_open".
        :param extra: (name, type, help, value) of further unlabelled metrics.
        """
        out: list[str] = []
        items = sorted(self.resources.items())

        def family(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        family("guard_pass_total", "counter", "Requests that passed the guard.")
        for r, c in items:
            out.append(f'guard_pass_total{{resource="{_esc(r)}"}} {c.passes}')
        family("guard_block_total", "counter", "Requests blocked, by reason.")
        for r, c in items:
            for reason, n in c.blocks.items():
                out.append(f'guard_block_total{{resource="{_esc(r)}",reason="{reason}"}} {n}')
        family("guard_success_total", "counter", "Completed requests (any outcome).")
        for r, c in items:
            out.append(f'guard_success_total{{resource="{_esc(r)}"}} {c.successes}')
        family("guard_exception_total", "counter", "Upstream 5xx and proxy failures.")
        for r, c in items:
            out.append(f'guard_exception_total{{resource="{_esc(r)}"}} {c.exceptions}')
        family("guard_rt_seconds", "histogram", "Response time of passed requests.")
        for r, c in items:
            label = f'resource="{_esc(r)}"'
            total = 0
            for le, n in zip((*RT_BUCKETS, None), c.buckets):
                total += n
                le_text = "+Inf" if le is None else repr(le)
                out.append(f'guard_rt_seconds_bucket{{{label},le="{le_text}"}} {total}')
            out.append(f"guard_rt_seconds_sum{{{label}}} {c.rt_sum!r}")
            out.append(f"guard_rt_seconds_count{{{label}}} {total}")
        family("guard_concurrency", "gauge", "Requests in flight.")
        for r, _ in items:
            out.append(f'guard_concurrency{{resource="{_esc(r)}"}} {concurrency(r)}')
        family("guard_breaker_state", "gauge", "Worst breaker: 0 closed, 1 open, 2 half-open.")
        for r, _ in items:
            state = _BREAKER.get(breaker_state(r), 0)
            out.append(f'guard_breaker_state{{resource="{_esc(r)}"}} {state}')
        family("guard_rules_reload_total", "counter", "Rule reloads from file or API.")
        for result, n in self.reloads.items():
            out.append(f'guard_rules_reload_total{{result="{result}"}} {n}')
        family("guard_config_generation", "gauge", "Generation of the rules in force.")
        out.append(f"guard_config_generation {self.generation}")
        family("guard_sidecar_rejected_total", "counter", "Requests refused before the guard.")
        for status, n in sorted(self.rejected_by_status.items()):
            out.append(f'guard_sidecar_rejected_total{{status="{status}"}} {n}')
        for name, kind, text, value in extra:
            family(name, kind, text)
            out.append(f"{name} {value:g}")
        out.extend(_cluster_lines())
        return "\n".join(out) + "\n"


def _cluster_lines() -> list[str]:
    """Cluster flow rules of this process: state, live instances and transition counters."""
    from guard.flow.cluster import cluster_metrics

    rules = cluster_metrics()
    if not rules:
        return []
    out = [
        "# HELP guard_cluster_fallback 1 while a cluster rule enforces locally (Redis down).",
        "# TYPE guard_cluster_fallback gauge",
    ]
    for r in rules:
        labels = f'resource="{_esc(r.resource)}",rule="{_esc(r.rule_id)}"'
        out.append(f"guard_cluster_fallback{{{labels}}} {int(r.state == 'fallback')}")
    out += [
        "# HELP guard_cluster_transitions_total Switches to local fallback and back.",
        "# TYPE guard_cluster_transitions_total counter",
    ]
    for r in rules:
        labels = f'resource="{_esc(r.resource)}",rule="{_esc(r.rule_id)}"'
        out.append(f'guard_cluster_transitions_total{{{labels},to="local"}} {r.fallback_total}')
        out.append(f'guard_cluster_transitions_total{{{labels},to="cluster"}} {r.recovery_total}')
    out += [
        "# HELP guard_cluster_live_instances Processes sharing the rule (heartbeats).",
        "# TYPE guard_cluster_live_instances gauge",
    ]
    for r in rules:
        labels = f'resource="{_esc(r.resource)}",rule="{_esc(r.rule_id)}"'
        out.append(f"guard_cluster_live_instances{{{labels}}} {r.live_instances}")
    return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
